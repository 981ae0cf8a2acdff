"""The processor table: a common header every kind shares, the kind's words after it, and the
generic behaviour run.py gives every kind (latency-aligned dry signal, controls latched whole)."""
import numpy as np

from app.host import processors as PR
from app.host.processors import sptmod as SP
from app.host.processors import words as W
from engine.sptmod.file import load_model
from engine.sptmod.stream import SptModStream
from tests.paths import REFERENCE

GOLDEN = REFERENCE / "sptmod" / "golden_SPTMod25_p7.npz"


def _header_words():
    return {n: v for n, v in vars(W).items() if n.startswith("PR_")}


def test_header_words_are_distinct_and_the_kind_words_follow_them():
    header = _header_words()
    assert sorted(header.values()) == list(range(W.HEADER_WORDS))
    kind = [v for n, v in vars(SP).items() if n.startswith("S_") and isinstance(v, int)]
    assert min(kind) == W.KIND_WORDS and max(kind) < W.PROCESSOR_WORDS
    assert len(set(kind)) == len(kind)


def _processor(max_frames=256):
    model = load_model(GOLDEN)
    stream = SptModStream(model.config, model.weights, max_block=max_frames)
    stream.set_controls(model.control_defaults)
    return model, PR.SptModProcessor(stream, max_frames)


def test_as_a_target_the_dry_signal_is_the_input_delayed_by_the_latency():
    model, p = _processor()
    rng = np.random.default_rng(1)
    x = 0.3 * rng.standard_normal(100 * 6)
    out = np.zeros((256, 3))
    dry = []
    for k in range(0, x.size, 100):                    # off the 64-sample grid: latency 60
        PR.run_as_target(p.table, x[k:k + 100], out, 100)
        dry.append(p.dry[:100].copy())
    assert p.latency == 60
    np.testing.assert_array_equal(np.concatenate(dry), np.concatenate([np.zeros(60), x[:-60]]))


def test_prepared_controls_wait_for_the_latch():
    model, p = _processor()
    weights = p.stream.arrays()[0]
    before = weights.copy()
    p.prepare_controls([0.9] * model.config.n_params)
    np.testing.assert_array_equal(weights, before)
    PR.latch_controls(p.table)
    ref = SptModStream(model.config, model.weights)
    ref.set_controls([0.9] * model.config.n_params)
    np.testing.assert_array_equal(weights, ref.arrays()[0])
    assert p.table[W.PR_CTL_READY] == 0
    PR.latch_controls(p.table)                          # nothing pending: nothing changes
    np.testing.assert_array_equal(weights, ref.arrays()[0])


def test_a_non_finite_input_reaches_the_processor_as_zero():
    model, p = _processor()
    ref = SptModStream(model.config, model.weights)
    ref.set_controls(model.control_defaults)
    x = np.full(128, 0.1)
    x[5], x[9] = np.nan, np.inf
    buf = x.copy()
    PR.run_as_insert(p.table, buf, 128)
    np.testing.assert_array_equal(buf, ref.process(np.where(np.isfinite(x), x, 0.0)))
    assert p.restarts == 0
