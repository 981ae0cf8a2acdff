"""Divergence is detected and said: the health watch's rules, `learn` and `run` (a warning line,
"diverged" in the JSON, exit code 3), and a live session pausing itself. `skipped` keeps its
meaning (bad input samples); diverged steps have their own count."""
import math
import subprocess
import sys
import time

import numpy as np
import pytest

from app.session import CircuitSpec, Session
from engine.learn.health import GROWTH_LIMIT, PERSIST_SECONDS, LearningWatch, STALL_SECONDS
from engine.learn.learner import ParamSpec, Settings
from tests.app.test_cli import learn, result_of
from tests.paths import REPO

UNSTABLE = ["--circuit", "y = x + a*y@1", "--param", "a=0:-3:3", "--hidden", "a=0.95", "--optimizer", "sgd",
            "--lr", "1.0"]
SR = 48000.0


# ---------------------------------------------------------------- the watch's rules

def test_a_non_finite_parameter_is_divergence_at_once_a_non_finite_loss_once_it_lasts():
    w = LearningWatch(SR)
    assert w.observe(100, 0.1, {"a": 0.3}) is None
    found = w.observe(200, 0.1, {"a": math.nan})
    assert found is not None and found.at_sample == 200 and "'a'" in found.reason
    assert w.observe(300, 0.1, {"a": math.nan}) is None          # said once
    w = LearningWatch(SR)
    assert w.observe(20000, math.inf, {"a": 0.3}) is None         # one bad reading: not yet
    assert w.observe(20000 + int(0.05 * SR), 0.2, {"a": 0.3}) is None     # it recovered
    assert w.observe(40000, math.inf, {"a": 0.3}) is None
    found = w.observe(40000 + int(PERSIST_SECONDS * SR), math.inf, {"a": 0.3})
    assert found.reason == "the loss became non-finite" and found.at_sample == 40000


def test_blow_ups_on_many_samples_for_half_a_second_are_divergence_a_few_are_not():
    w = LearningWatch(SR)
    w.reset(diverged_steps=5, samples=1000)                      # counted before: the baseline
    step = int(0.1 * SR)
    # a resonant filter overflowing a few hundred times early on, then settling: not divergence
    for k in range(1, 20):
        assert w.observe(1000 + k * step, 0.1, {"a": 0.3}, diverged_steps=5 + min(k, 3) * 400) is None
    w = LearningWatch(SR)
    w.reset(diverged_steps=5, samples=1000)
    found = None
    k = 0
    while found is None and k < 20:
        k += 1
        found = w.observe(1000 + k * step, 0.1, {"a": 0.3}, diverged_steps=5 + k * step // 2,
                          first_diverged=1100)
    assert found is not None and k == 5                           # half a second of blow-ups
    assert found.at_sample == 1100 and "keeps going non-finite" in found.reason
    assert "diverged at 0.02 s (sample 1100)" in found.describe(SR)
    assert "learning rate is probably too high" in found.describe(SR)


def test_loss_growth_by_orders_of_magnitude_counts_a_turned_knob_does_not():
    w = LearningWatch(SR)
    early = int(0.2 * SR)
    assert w.observe(early, 0.5, {"a": 0.1}) is None             # the early scale: 0.5
    assert w.observe(int(SR), 1e-12, {"a": 0.1}) is None         # converged
    assert w.observe(int(2 * SR), 0.4, {"a": 0.1}) is None       # a knob turned: back to the scale
    assert w.observe(int(3 * SR), 0.5 * GROWTH_LIMIT * 0.9, {"a": 0.1}) is None
    assert w.observe(int(4 * SR), 0.5 * GROWTH_LIMIT * 1.1, {"a": 0.1}) is None    # must last
    found = w.observe(int(4.2 * SR), 0.5 * GROWTH_LIMIT * 2, {"a": 0.1})
    assert found is not None and "grew" in found.reason and found.at_sample == int(4 * SR)


def test_a_stall_is_no_progress_with_a_parameter_at_its_range_edge():
    w = LearningWatch(SR, {"cutoff": (20.0, 20000.0), "res": (-6.0, 30.0)})
    w.observe(1000, 1.0, {"cutoff": 800.0, "res": 0.0})
    quiet = int((STALL_SECONDS + 1) * SR)
    w.observe(1000 + quiet, 0.95, {"cutoff": 2700.0, "res": 10.0})
    assert w.stall is None                                        # stuck, but nothing pinned
    w.observe(1000 + quiet + 10, 0.95, {"cutoff": 2700.0, "res": -6.0})
    assert w.stall is not None and w.stall.pinned == {"res": -6.0}
    assert "'res' at -6" in w.stall.describe() and "not improved for 11 s" in w.stall.describe()
    w.observe(1000 + quiet + 20, 0.5, {"cutoff": 2700.0, "res": -6.0})
    assert w.stall is None                                        # improving again


# ---------------------------------------------------------------- learn

def test_learn_that_diverges_warns_reports_and_exits_3():
    r = learn(*UNSTABLE, "--samples", "480000", "--quiet")
    assert r.returncode == 3, r.stderr
    warning = [line for line in r.stderr.splitlines() if line.startswith("warning: learning diverged")]
    assert len(warning) == 1 and "learning rate is probably too high" in warning[0]
    res = result_of(r)
    assert res["diverged"]["at_sample"] < 2000
    assert "non-finite" in res["diverged"]["reason"]
    assert res["diverged_steps"] > 0 and res["skipped"] == 0       # not bad input
    assert res["samples"] < 480000                                 # it stopped there


def test_learn_at_a_learning_rate_that_works_reports_no_divergence():
    r = learn(*UNSTABLE[:-1], "1e-4", "--samples", "96000", "--quiet")
    assert r.returncode == 0, r.stderr
    res = result_of(r)
    assert "diverged" not in res and "diverged_steps" not in res
    assert res["params"]["a"] == pytest.approx(0.95, abs=1e-6)


# ---------------------------------------------------------------- run and a live session

def test_run_that_diverges_pauses_learning_and_exits_3():
    r = subprocess.run([sys.executable, "main.py", "run", "--headless", *UNSTABLE, "--seconds", "1",
                        "--device", "virtual", "--every", "0.25"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 3, r.stderr
    assert any(line.startswith("warning: learning diverged") and line.endswith("learning paused")
               for line in r.stderr.splitlines()), r.stderr
    res = result_of(r)
    assert res["diverged"]["at_sample"] < 48000 and res["diverged_steps"] > 0


def test_a_live_session_pauses_itself_and_a_reset_at_half_the_rate_starts_over():
    spec = CircuitSpec("y = x + a*y@1", [ParamSpec("a", 0.0, -3, 3)], hidden={"a": 0.95},
                       settings=Settings(optimizer="sgd", lr=1.0))
    with Session(48000, 256, device="virtual") as s:
        s.load(spec)
        s.start()
        found = None
        end = time.monotonic() + 20
        while found is None and time.monotonic() < end:
            time.sleep(0.02)
            s.frame()
            found = s.health.diverged
        assert found is not None, "the divergence was not noticed"
        assert s.learner.settings.learning is False                 # paused itself
        s.configure(lr=1e-4)
        s.reset_learning()
        s.set_learning(True)
        assert s.health.diverged is None                             # the watch starts over
        end = time.monotonic() + 20
        while s.learner.samples < 96000 and time.monotonic() < end:
            time.sleep(0.02)
            s.frame()
        assert s.health.diverged is None
        assert abs(s.params()["a"] - 0.95) < 1e-3
