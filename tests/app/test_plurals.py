"""Counts in messages agree with their nouns: '1 sample', never '1 samples' (app/words.py)."""
from app.plugins.catalogue import Port, audio_path_problem
from app.recordings.align import Alignment
from app.words import plural


def test_one_is_singular_and_every_other_count_plural():
    assert [plural(n, "sample") for n in (0, 1, 2, -1, -3)] == \
        ["0 samples", "1 sample", "2 samples", "-1 sample", "-3 samples"]
    assert plural(1, "bad input sample") == "1 bad input sample"


def test_messages_that_can_count_one_say_it_in_the_singular():
    assert Alignment(1, 2.0, 1).describe(48000.0) == "latency 1 sample (0.02 ms), confidence 2.0"
    ports = [Port(0, "out", "Out", "audio", True)]            # an oscillator: no input, one output
    assert audio_path_problem(ports).startswith("0 audio inputs and 1 audio output: ")
