"""Knobs (app/knobs.py): the one value <-> position mapping for every kind, and the bank that holds
one value per knob."""
import math

import pytest
from hypothesis import given, strategies as st

from app.knobs import KnobBank, KnobError, KnobSpec, around

fractions = st.floats(0.0, 1.0)


@given(fractions, st.floats(-1e3, 1e3), st.floats(1e-3, 1e3))
def test_linear_round_trip(f, lo, width):
    k = KnobSpec("g", lo, lo + width)
    assert k.fraction_of(k.value_at(f)) == pytest.approx(f, abs=1e-9)


@given(fractions, st.floats(1e-4, 1e2), st.floats(1.01, 1e5))
def test_log_round_trip_and_midpoint_is_geometric(f, lo, ratio):
    k = KnobSpec("hz", lo, lo * ratio, "log")
    assert k.fraction_of(k.value_at(f)) == pytest.approx(f, abs=1e-9)
    assert k.value_at(0.5) == pytest.approx(math.sqrt(k.lo * k.hi), rel=1e-12)


def test_the_ends_and_beyond_clamp():
    k = KnobSpec("g", -1.0, 3.0)
    assert (k.value_at(0.0), k.value_at(1.0), k.value_at(-5), k.value_at(7)) == (-1.0, 3.0, -1.0, 3.0)
    assert (k.fraction_of(-9.0), k.fraction_of(9.0), k.fraction_of(1.0)) == (0.0, 1.0, 0.5)
    assert k.fraction_of(math.nan) == 0.0 and k.value_at(math.nan) == -1.0


@given(st.integers(-20, 20), st.integers(0, 40))
def test_integer_knob_is_stepped(lo, n):
    k = KnobSpec("taps", lo, lo + n, "integer")
    values = {k.value_at(i / 997) for i in range(998)}
    assert values == set(float(v) for v in range(lo, lo + n + 1))
    for v in range(lo, lo + n + 1):
        assert k.value_at(k.fraction_of(v)) == v
    assert k.steps == n + 1


def test_toggle_and_enum_with_labels():
    t = KnobSpec("bypass", 0, 1, "toggle")
    assert [t.value_at(f) for f in (0.0, 0.49, 0.5, 1.0)] == [0, 0, 1, 1]
    assert (t.text(0), t.text(1), t.steps) == ("off", "on", 2)
    e = KnobSpec("mode", 0, 2, "enum", ("lp", "bp", "hp"))
    assert [e.text(e.value_at(f)) for f in (0.0, 0.3, 0.5, 0.8, 1.0)] == ["lp", "bp", "bp", "hp", "hp"]
    assert e.clamp(1.4) == 1 and e.clamp(9) == 2


def test_bad_specs_are_refused_in_one_line():
    with pytest.raises(KnobError, match=r"^knob 'f': a log knob needs a positive minimum, not 0$"):
        KnobSpec("f", 0.0, 10.0, "log")
    with pytest.raises(KnobError, match=r"^knob 'g': the range \[2, 1\] is not finite and increasing$"):
        KnobSpec("g", 2.0, 1.0)
    with pytest.raises(KnobError, match=r"^knob 'm': 2 labels for 3 values$"):
        KnobSpec("m", 0, 2, "enum", ("a", "b"))
    with pytest.raises(KnobError, match="unknown kind 'cubic'"):
        KnobSpec("c", 0, 1, "cubic")


def test_unbounded_declarations_get_a_range_around_the_value():
    assert around("dc", 0.3, -math.inf, math.inf) == KnobSpec("dc", -1.0, 1.0)
    assert around("dc", -4.0, 0.0, math.inf) == KnobSpec("dc", -8.0, 8.0)
    assert around("f", 100.0, 20.0, 2e4, log=True).kind == "log"
    assert around("g", 0.0, -1.0, 1.0, log=True).kind == "linear"     # log needs lo > 0


def test_the_bank_holds_one_clamped_value_per_knob_and_applies_it():
    written = []
    bank = KnobBank()
    bank.define(KnobSpec("hidden:g", 0.0, 2.0), 5.0, written.append)       # clamped at definition
    bank.define(KnobSpec("insert:drive", 1.0, 100.0, "log"), 10.0)
    assert bank.value("hidden:g") == 2.0 and written == []
    assert bank.set("hidden:g", 0.5) == 0.5 and written == [0.5]
    assert bank.set_fraction("hidden:g", 1.5) == 2.0 and written == [0.5, 2.0]
    assert bank.fraction("insert:drive") == pytest.approx(0.5)
    assert bank.values("hidden:") == {"g": 2.0}
    assert bank.names() == ["hidden:g", "insert:drive"]
    with pytest.raises(KnobError, match=r"^knob 'hidden:g': nan is not a finite number$"):
        bank.set("hidden:g", math.nan)
    assert bank.value("hidden:g") == 2.0 and written == [0.5, 2.0]           # unchanged
    bank.forget("insert:")
    assert "insert:drive" not in bank
    with pytest.raises(KnobError, match=r"^no knob named 'insert:drive' \(knobs: hidden:g\)$"):
        bank.value("insert:drive")


def test_the_bank_logs_turns_for_circuits_built_meanwhile():
    bank = KnobBank()
    written = []
    bank.define(KnobSpec("hidden:a", 0.0, 1.0), 0.2, written.append)
    start = bank.seq                              # a build begins here
    assert bank.set("hidden:a", 0.7) == 0.7 and written == [0.7]
    bank.forget("hidden:")                         # the old circuit's knobs go away...
    assert "hidden:a" not in bank
    assert bank.turned_since(start) == {"hidden:a": 0.7}    # ...but the turn is remembered
    assert bank.turned_since(bank.seq) == {}


def test_an_unbounded_knob_is_not_clamped_and_its_slider_spans_around_its_value():
    bank = KnobBank()
    bank.define(lambda v: around("hidden:g", v, -math.inf, math.inf), 0.5, clamp=False, name="hidden:g")
    assert bank.spec("hidden:g") == KnobSpec("hidden:g", -1.0, 1.0)
    assert bank.set("hidden:g", 7.0) == 7.0                    # a typed value is kept as typed
    assert bank.spec("hidden:g") == KnobSpec("hidden:g", -14.0, 14.0)
    assert bank.fraction("hidden:g") == pytest.approx(0.75)
