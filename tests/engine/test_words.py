"""Word indices come from one declaration per table (engine/words.py): every table's words are
distinct and fit its size, and the mailbox's callback-written and session-written words never
share an index (each word has one writer)."""
import pytest

from app.host import layout as H
from app.host.processors import words as PW
from engine import blockabi as B
from engine import layout as LY
from engine.words import declare


def test_declare_numbers_words_in_order_with_runs_and_comments():
    ns = {}
    end = declare(ns, "X_", """
        A            # one word
        B:4          # a run of four
        C
    """, start=10)
    assert ns == {"X_A": 10, "X_B": 11, "X_C": 15} and end == 16


def test_declare_refuses_overflow_and_duplicates():
    with pytest.raises(ValueError, match="reach 13, past 12"):
        declare({}, "X_", "A\nB:2\n", start=10, end=12)
    with pytest.raises(ValueError, match="'X_A' is not a new identifier"):
        declare({"X_A": 0}, "X_", "A")
    with pytest.raises(ValueError, match="not a new identifier"):
        declare({}, "X_", "two words")


def _words(module, prefix, exclude=()):
    return {n: v for n, v in vars(module).items()
            if n.startswith(prefix) and isinstance(v, int) and n not in exclude}


@pytest.mark.parametrize("module,prefix,size,exclude", [
    (H, "H_", H.HOST_WORDS, ()),
    (H, "R_", H.R_WORDS, ("R_WORDS",)),
    (H, "T_", H.TEL_HEADER, ()),
    (H, "SC_", H.SCOPE_COLS, ()),
    (H, "M_", H.MIDI_COLS, ()),
    (B, "S_", B.SLOT_WORDS, ()),
    (LY, "CF_", LY.CF_HEADER, ("CF_HEADER",)),
    (LY, "ST_", LY.ST_HEADER, ("ST_HEADER",)),
    (PW, "PR_", PW.HEADER_WORDS, ()),
])
def test_each_table_has_distinct_words_within_its_size(module, prefix, size, exclude):
    words = _words(module, prefix, exclude)
    assert words and len(set(words.values())) == len(words)
    assert min(words.values()) == 0 and max(words.values()) < size


def test_the_mailbox_has_one_writer_per_word():
    words = _words(H, "C_")
    runs = {"C_DC_STATE": 4}
    taken = {}
    for name, v in words.items():
        for k in range(runs.get(name, 1)):
            assert v + k not in taken, f"{name} overlaps {taken.get(v + k)}"
            taken[v + k] = name
    callback = {"C_CALLBACKS", "C_XRUNS", "C_LIMITED", "C_SWAP_ACK", "C_CONTROL_ACK", "C_DC_STATE",
                "C_OUT_PEAK", "C_ACTIVE_SLOT"}
    session = {"C_SAMPLE_RATE", "C_SWAP_REQ", "C_CONTROL_REQ", "C_DC_BLOCK", "C_KNOB_TAU", "C_MUTE"}
    assert all(words[n] < H.CALLBACK_WRITES for n in callback)
    assert all(H.CALLBACK_WRITES <= words[n] < H.CTL_WORDS for n in session)
