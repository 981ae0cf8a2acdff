"""Samples until learning converges: Gauss-Newton at its defaults against SGD and Adam at their
best learning rate from a grid, on every factory preset's circuit (those whose ground truth is a
circuit: the model, plugin and recording presets need outside files) and on circuits chosen to be
hard for first-order methods.

Gauss-Newton runs at its defaults (window 1); the first-order grid tries windows 1 and 16.
Converged: every parameter within 1e-3 of its true value (relative for |value| > 1) from that
sample to the end of the run, and for at least the run's last tenth (a parameter merely passing
through its value at the end is not converged). Deterministic (no timings): the same numbers on every machine.

    .venv/bin/python benchmarks/convergence.py [--seconds 10] [--only biquad,fir8] [--markdown]
"""
import argparse
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repo root, so engine imports

import numpy as np  # noqa: E402

from app.preset import document as presets  # noqa: E402
from engine.learn.banks import Banks  # noqa: E402
from engine.learn.learner import Learner, ParamSpec, Settings  # noqa: E402
from engine.sources import LcgNoise, oscillator_block  # noqa: E402

SR = 48000.0
ROOT = Path(__file__).resolve().parents[1]
LRS = [10.0 ** k for k in range(-4, 3)]           # the first-order grid: 1e-4 ... 100
FIRST_ORDER = ["sgd", "adam"]
WINDOWS = [1, 16]
CHUNK = 48000
OUTSIDE = ("model", "plugin", "recording", "device")


@dataclass
class Case:
    name: str
    circuit: str
    params: list
    truth: dict                       # learnable parameter (name@bank with banks) -> true value
    target: str | None = None
    hidden: dict = field(default_factory=dict)
    source: str = "lcg-noise"
    hz: float = 110.0
    banks: Banks | None = None
    p0: float | None = None           # a preset that saves its own Gauss-Newton p0 (None: the default)


def source(kind, hz, n):
    if kind in ("lcg-noise", "noise"):
        return LcgNoise().read(n)
    out = np.empty(n)
    oscillator_block(out, n, 0.0, hz, SR, 1.0, kind == "saw")
    return out


def preset_cases():
    cases = []
    for path in sorted((ROOT / "presets").glob("*.json")):
        preset = presets.load(path)
        spec = preset.spec
        if any(getattr(spec, k) for k in OUTSIDE) or spec.settings.loss == "spectral":
            continue                  # outside files; the spectral loss's presets: benchmarks/frequency.py
        names = [p.name for p in spec.params]
        truth = LACTOSE_TRUTH if spec.banks is not None else {k: spec.hidden[k] for k in names if k in spec.hidden}
        if len(truth) < len(names):
            continue
        kind = preset.source if preset.source in ("lcg-noise", "noise", "sine", "saw") else "saw"
        own_p0 = spec.settings.p0 if spec.settings.p0 != Settings().p0 else None
        cases.append(Case(path.stem, spec.circuit, list(spec.params), truth, spec.target, dict(spec.hidden),
                          kind, preset.source_hz, spec.banks, own_p0))
    return cases


# the lactose-asymmetric preset: tanh(2x) above 0, 0.5*tanh(0.7x) below, four banks over [-1, 1]
LACTOSE_TRUTH = {f"{p}@{k}": v for k in range(4) for p, v in
                 (("a", 0.5 if k < 2 else 1.0), ("d", 0.7 if k < 2 else 2.0))}
BUTTERWORTH = dict(b0=0.0976, b1=0.1953, b2=0.0976, a1=-0.9428, a2=0.3333)
PEAK = ("w = 2*pi*f0/SR\nA = 10^(gain/40)\nalpha = sin(w)/2\ncw = cos(w)\na0 = 1 + alpha/A\n"
        "y = ((1 + alpha*A)*x - 2*cw*x@1 + (1 - alpha*A)*x@2 + 2*cw*y@1 - (1 - alpha/A)*y@2)/a0")

EXTRA = [
    Case("direct-form biquad from 0", "y = b0*x + b1*x@1 + b2*x@2 - a1*y@1 - a2*y@2",
         [ParamSpec("b0"), ParamSpec("b1"), ParamSpec("b2"), ParamSpec("a1", 0.0, -1.99, 1.99),
          ParamSpec("a2", 0.0, -0.99, 0.99)], BUTTERWORTH, hidden=BUTTERWORTH),
    Case("cookbook peak (Hz, dB)", PEAK, [ParamSpec("f0", 1000.0, 20.0, 20000.0, True),
                                          ParamSpec("gain", 0.0, -24.0, 24.0)],
         {"f0": 3000.0, "gain": 9.0}, hidden={"f0": 3000.0, "gain": 9.0}),
    Case("8-tap FIR from 0", "y = " + " + ".join(["b0*x"] + [f"b{k}*x@{k}" for k in range(1, 8)]),
         [ParamSpec(f"b{k}", 0.0, -1.0, 1.0) for k in range(8)],
         {f"b{k}": math.sin(k + 1) * 0.8 ** k for k in range(8)},
         hidden={f"b{k}": math.sin(k + 1) * 0.8 ** k for k in range(8)}),
    Case("tanh drive into one-pole", "d = tanh(drive*x)\ny = (1 - c)*d + c*y@1",
         [ParamSpec("drive", 1.0, 0.1, 20.0), ParamSpec("c", 0.0, 0.0, 0.99)],
         {"drive": 5.0, "c": 0.9}, hidden={"drive": 5.0, "c": 0.9}),
    Case("feedback comb", "y = dry*x + fb*y@48", [ParamSpec("dry", 1.0, 0.0, 1.0), ParamSpec("fb", 0.0, -0.99, 0.99)],
         {"dry": 0.3, "fb": 0.85}, hidden={"dry": 0.3, "fb": 0.85}),
    Case("LACTOSE asymmetric shaper", "y = a*tanh(d*x)",
         [ParamSpec("a", 1.0, 0.0, 4.0), ParamSpec("d", 1.0, 0.1, 10.0)],
         {"a@0": 0.5, "d@0": 0.7, "a@1": 1.0, "d@1": 2.0},
         target="y = tanh(2*x) if x > 0 else 0.5*tanh(0.7*x)", banks=Banks([-1.0, 0.0, 1.0], condition="input")),
]


def converged_at(L, x, truth):
    """Samples until every parameter stays within tolerance to the end of x (None: never)."""
    names = L.param_names
    idx = [names.index(k) for k in truth]
    want = np.array(list(truth.values()))
    tol = np.where(np.abs(want) > 1.0, 1e-3 * np.abs(want), 1e-3)
    last_off = -1
    P = len(names)
    for start in range(0, len(x), CHUNK):
        _, tr = L.process(x[start:start + CHUNK], trace_every=1)
        values = tr[:, 2:2 + P][:, idx]
        off = np.nonzero(np.any(~(np.abs(values - want) <= tol), axis=1))[0]
        if len(off):
            last_off = start + int(off[-1])
    return None if last_off + 1 > 0.9 * len(x) else last_off + 1


def learner(case, settings):
    return Learner(case.circuit, case.params, target=case.target, hidden=case.hidden, settings=settings,
                   sample_rate=SR, banks=case.banks)


def run_case(case, n, gn_settings, first_order=True):
    x = source(case.source, case.hz, n)
    L = learner(case, gn_settings)
    gn = converged_at(L, x, case.truth)
    best = {}
    for opt in FIRST_ORDER if first_order else ():
        for window in WINDOWS:
            for lr in LRS:
                L.configure(Settings(optimizer=opt, lr=lr, window=window))
                L.reset()
                at = converged_at(L, x, case.truth)
                if at is not None and (opt not in best or at < best[opt][0]):
                    best[opt] = (at, lr, window)
    return gn, best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--markdown", action="store_true", help="print the table for benchmarks/README.md")
    ap.add_argument("--p0", type=float, default=None, help="Gauss-Newton's p0 (default: its default)")
    ap.add_argument("--gn-only", action="store_true", help="skip the first-order grid")
    ap.add_argument("--forgetting-start", type=float, default=None, help="Gauss-Newton's (default: its default)")
    a = ap.parse_args()
    n = int(a.seconds * SR)
    cases = preset_cases() + EXTRA
    if a.only:
        keep = set(a.only.split(","))
        cases = [c for c in cases if c.name in keep]
    # a preset that saves its own p0 also runs as its users get it (the first-order grid is the same)
    cases = [v for c in cases for v in ([c] if c.p0 is None else
                                       [replace(c, p0=None), replace(c, name=f"{c.name} (its preset's p0 {c.p0:g})")])]
    rows = []
    for case in cases:
        gn_settings = Settings(optimizer="gauss-newton")
        if a.p0 is not None or case.p0 is not None:
            gn_settings.p0 = a.p0 if a.p0 is not None else case.p0
        if a.forgetting_start is not None:
            gn_settings.c2 = a.forgetting_start
        gn, best = run_case(case, n, gn_settings, not a.gn_only)
        rows.append((case, gn, best))
        print(f"{case.name}: gauss-newton {gn}; " + "; ".join(
            f"{o} {best[o][0]} (lr {best[o][1]:g}, window {best[o][2]})" if o in best else f"{o} never"
            for o in FIRST_ORDER), flush=True)
    if a.markdown:
        print(f"\n| circuit | P | source | Gauss-Newton (defaults) | best SGD (lr, window) | best Adam (lr, window) | GN / best |")
        print("|---|---|---|---|---|---|---|")
        for case, gn, best in rows:
            def cell(o):
                return f"{best[o][0]:,} ({best[o][1]:g}, {best[o][2]})" if o in best else f"> {n:,}"
            firsts = [best[o][0] for o in FIRST_ORDER if o in best]
            ratio = f"{gn / max(min(firsts), 1):.3g}" if gn is not None and firsts else "—"
            print(f"| {case.name} | {len(case.truth)} | {case.source} | {f'{gn:,}' if gn is not None else f'> {n:,}'} "
                  f"| {cell('sgd')} | {cell('adam')} | {ratio} |")


if __name__ == "__main__":
    main()
