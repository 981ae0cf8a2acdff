"""Gauss-Newton with batches: the streams stacked as measurements (what the kernel does) against
their sensitivities and residuals averaged into one measurement per sample (as first-order
optimisers average the streams' gradients). Samples until the direct-form biquad from zero is
within 1e-3 on every parameter, for B = 1, 2, 4 streams of different noise and two values of p0.

Stacked runs in the engine (Learner with streams=B); averaged in numpy through the tests' reference
recursion (tests/engine/test_gauss_newton.py, which agrees with the kernel to 1e-12), on the same
output-error biquad. The B = 1 column is computed both ways as a check. Deterministic.

    .venv/bin/python benchmarks/gauss_newton_batches.py
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repo root

import numpy as np  # noqa: E402

from engine.learn.learner import Learner, Settings  # noqa: E402
from engine.sources import LcgNoise  # noqa: E402
from tests.engine.test_gauss_newton import (BIQUAD, BIQUAD_PARAMS, BUTTERWORTH, Reference,  # noqa: E402
                                            samples_to_converge)

N = 4000
TRUTH = np.array(list(BUTTERWORTH.values()))


def streams(B):
    cols = [LcgNoise().read(N)] + [np.random.default_rng(k).uniform(-1.0, 1.0, N) for k in range(2, 1 + B)]
    return np.stack(cols, axis=1)


def stacked(x, p0):
    s = Settings(optimizer="gauss-newton", p0=p0)
    if x.shape[1] == 1:
        L = Learner(BIQUAD, BIQUAD_PARAMS, hidden=BUTTERWORTH, settings=s)
        _, tr = L.process(np.ascontiguousarray(x[:, 0]), trace_every=1)
    else:
        L = Learner(BIQUAD, BIQUAD_PARAMS, hidden=BUTTERWORTH, settings=s, streams=x.shape[1])
        _, tr = L.process_batch(x, trace_every=1)
    return samples_to_converge(tr, TRUTH)


def averaged(x, p0):
    """Each stream's output-error biquad and its five tangents run at the current parameters; one
    update per sample with the mean sensitivity and the mean residual."""
    B = x.shape[1]
    ref = Reference(BIQUAD_PARAMS, p0=p0)
    b0, b1, b2, a1, a2 = TRUTH
    xh = np.zeros((B, 3))                   # x, x@1, x@2 per stream
    y = np.zeros((B, 3))                    # the target's y@1, y@2 (index 1, 2)
    yh = np.zeros((B, 3))                   # the learner's
    psi = np.zeros((B, 3, 5))               # its tangents, now and one and two samples back
    values = np.empty((N, 5))
    for n in range(N):
        th = ref.value()
        values[n] = th
        xh = np.roll(xh, 1, axis=1)
        xh[:, 0] = x[n]
        y = np.roll(y, 1, axis=1)
        y[:, 0] = b0 * xh[:, 0] + b1 * xh[:, 1] + b2 * xh[:, 2] - a1 * y[:, 1] - a2 * y[:, 2]
        yh = np.roll(yh, 1, axis=1)
        psi = np.roll(psi, 1, axis=1)
        regress = np.stack([xh[:, 0], xh[:, 1], xh[:, 2], -yh[:, 1], -yh[:, 2]], axis=1)
        yh[:, 0] = regress @ th
        psi[:, 0] = regress - th[3] * psi[:, 1] - th[4] * psi[:, 2]
        ref.step(psi[:, 0].mean(axis=0), float((y[:, 0] - yh[:, 0]).mean()))
    return samples_to_converge(np.column_stack([np.zeros((N, 2)), values]), TRUTH)


def main():
    print("| p0 | streams | stacked (the kernel) | averaged (numpy) |")
    print("|---|---|---|---|")
    for p0 in (0.5, Settings().p0):
        for B in (1, 2, 4):
            x = streams(B)
            print(f"| {p0:g} | {B} | {stacked(x, p0)} | {averaged(x, p0)} |", flush=True)


if __name__ == "__main__":
    main()
