"""Cost per sample of Gauss-Newton against Adam, side by side in one run, on P-tap FIRs (every
parameter reaches the output, so P is dense: the worst case, O(P^2) per sample).

    .venv/bin/python benchmarks/gauss_newton_cost.py [--samples 480000] [--repeats 5]
"""
import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repo root, so engine imports

from engine.learn.learner import Learner, ParamSpec, Settings  # noqa: E402
from engine.sources import LcgNoise  # noqa: E402

SIZES = [1, 2, 5, 8, 16, 64]


def fir(taps):
    circuit = "y = " + " + ".join(["b0*x"] + [f"b{k}*x@{k}" for k in range(1, taps)])
    params = [ParamSpec(f"b{k}", 0.0, -1.0, 1.0) for k in range(taps)]
    hidden = {f"b{k}": math.sin(k + 1) * 0.8 ** k for k in range(taps)}
    return circuit, params, hidden


def seconds_per_sample(L, x, repeats):
    best = math.inf
    for _ in range(repeats):
        L.reset()
        t0 = time.perf_counter()
        L.process(x)
        best = min(best, time.perf_counter() - t0)
    return best / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=480_000)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    x = LcgNoise().read(a.samples)
    print("| P | Adam ns/sample | Gauss-Newton ns/sample | GN / Adam |")
    print("|---|---|---|---|")
    for P in SIZES:
        circuit, params, hidden = fir(P)
        L = Learner(circuit, params, hidden=hidden, settings=Settings(optimizer="adam", lr=1e-3))
        L.process(x[:1000])                               # compiled, warm
        costs = {}
        for _ in range(2):                                # interleaved: both see the same machine state
            for opt, s in (("adam", Settings(optimizer="adam", lr=1e-3)), ("gauss-newton", Settings(optimizer="gauss-newton"))):
                L.configure(s)
                c = seconds_per_sample(L, x, a.repeats)
                costs[opt] = min(costs.get(opt, math.inf), c)
        adam, gn = costs["adam"] * 1e9, costs["gauss-newton"] * 1e9
        print(f"| {P} | {adam:.1f} | {gn:.1f} | {gn / adam:.2f} |", flush=True)


if __name__ == "__main__":
    main()
