"""LACTOSE banks against one parameter set and against "the level as an extra input", measured.

    .venv/bin/python benchmarks/lactose_experiment.py [--seconds 4] [--png docs/lactose.png] [--quick]

Three level-dependent targets (T1 a compressor's static curve, T2 an asymmetric tanh shaper, T3 a
one-pole low-pass whose coefficient follows the input level), each learned by a circuit of the same
family as (a) one parameter set, (b) the same circuit whose parameters are cubic polynomials of the
condition signal computed in the circuit text (4 coefficients per parameter = the parameter count of
K = 4 banks), (c) K = 2, 4, 8 banks, uniform boundaries over the condition's observed range, in
separated and exact modes, (d) K = 4 separated banks on boundaries from engine.learn.bank_proposal (its
least-squares fit, and its circuit fit), and for T1 (e) K = 4 banks on the input value instead of the
level. Every run of every target sees the same input samples and the same settings within a target.
Prints markdown tables; writes a PNG of the loss curves (pyqtgraph, offscreen). Method and
conclusions: docs/lactose.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

import numpy as np  # noqa: E402

from engine.learn.bank_proposal import condition_signal, follower_coefficient, propose  # noqa: E402
from engine.learn.banks import Banks  # noqa: E402
from engine.learn.learner import Learner, ParamSpec, Settings  # noqa: E402
from engine.sources import LcgNoise  # noqa: E402

SR = 48000
ATTACK_MS, RELEASE_MS = 1.0, 50.0          # the level follower of the banks and of T3's target
SWEEP_HZ = 2.0                             # input level sweep: -30..0 dB, period 0.5 s
FINAL_S = 0.5                              # final loss: mean per-sample loss over the last 0.5 s
CONV_S = 0.5                               # convergence: trailing running mean over 0.5 s ...
CONV_FACTOR = 2.0                          # ... stays below 2x the final loss from then on
EVAL_S = 1.0                               # frozen evaluation after learning
WARMUP_S = 0.01                            # the level's observed range ignores the first 10 ms
DEGREE = 3                                 # (b): cubic in the condition -> 4 coefficients per parameter

KA, KR = follower_coefficient(ATTACK_MS, SR), follower_coefficient(RELEASE_MS, SR)
ENV_LINE = f"env = env@1 + ({KA!r} if abs(x) > env@1 else {KR!r})*(abs(x) - env@1)"
LEV_DB_LINE = "lev = (20*log10(env + 1e-12) + 15)/15"        # -30..0 dBFS -> -1..1


def make_input(n: int) -> np.ndarray:
    """LCG noise (diff.lib's) times a raised-cosine level sweep between 0 and -30 dBFS at 2 Hz,
    starting loud, so every level occurs in every 0.5 s and every 0.5 s window has the same level
    distribution."""
    t = np.arange(n) / SR
    db = -15.0 + 15.0 * np.cos(2 * np.pi * SWEEP_HZ * t)
    return LcgNoise().read(n) * 10.0 ** (db / 20.0)


@dataclass
class Target:
    key: str
    title: str
    target: str                 # ground truth circuit
    circuit: str                # learnable circuit (one set / banks)
    params: list                # ParamSpec of the learnable circuit
    condition: str              # bank condition: level | input
    settings: Settings
    poly_prologue: list         # circuit lines that compute `lev` for (b)
    poly_clamp: dict = field(default_factory=dict)   # param -> (lo, hi) clamp of its polynomial
    poly_note: str = ""
    alt_condition: str = ""     # (e): K = 4 separated banks on this condition too (uniform, proposed)


TARGETS = [
    Target(
        "T1", "compressor static curve (threshold -12 dB, ratio 4, memoryless on |x|)",
        target="L = 20*log10(abs(x) + 1e-9)\n"
               "g = min(0, -0.75*(L + 12))\n"
               "y = x*exp(0.11512925464970229*g)",
        circuit="y = a*x + b*x*abs(x)",
        params=[ParamSpec("a", 1.0, 0.0, 4.0), ParamSpec("b", 0.0, -4.0, 4.0)],
        condition="level",
        settings=Settings(loss="mse", window=1, optimizer="adam", lr=3e-3),
        poly_prologue=[ENV_LINE, LEV_DB_LINE],
        poly_note="lev = (level dBFS + 15)/15 from the same 1 ms/50 ms follower as the banks",
        alt_condition="input"),
    Target(
        "T2", "asymmetric tanh shaper",
        target="y = tanh(2*x) if x > 0 else 0.5*tanh(0.7*x)",
        circuit="y = a*tanh(d*x)",
        params=[ParamSpec("a", 1.0, 0.0, 4.0), ParamSpec("d", 1.0, 0.01, 10.0)],
        condition="input",
        settings=Settings(loss="mse", window=1, optimizer="adam", lr=1e-2),
        poly_prologue=["lev = x"],
        poly_note="lev = x (the bank condition 'input')"),
    Target(
        "T3", "one-pole low-pass, coefficient 0.3 + 0.6*min(env, 1) of the input level",
        target=f"{ENV_LINE}\nc = 0.3 + 0.6*min(env, 1)\ny = (1 - c)*x + c*y@1",
        circuit="y = (1 - c)*x + c*y@1",
        params=[ParamSpec("c", 0.5, 0.0, 0.99)],
        condition="level",
        settings=Settings(loss="mse", window=1, optimizer="adam", lr=3e-3),
        poly_prologue=[ENV_LINE, LEV_DB_LINE],
        poly_clamp={"c": (0.0, 0.99)},
        poly_note="lev = (level dBFS + 15)/15, same follower; c = clip(poly, 0, 0.99) for stability"),
]


def poly_variant(t: Target):
    """(b): every parameter p becomes p_0 + p_1*lev + p_2*lev^2 + p_3*lev^3 inside the circuit."""
    lines, params = list(t.poly_prologue), []
    for sp in t.params:
        terms = [f"{sp.name}_0"] + [f"{sp.name}_{k}*lev" + (f"^{k}" if k > 1 else "") for k in range(1, DEGREE + 1)]
        expr = " + ".join(terms)
        if sp.name in t.poly_clamp:
            lo, hi = t.poly_clamp[sp.name]
            expr = f"min(max({expr}, {lo}), {hi})"
        lines.append(f"{sp.name} = {expr}")
        params.append(ParamSpec(f"{sp.name}_0", sp.init, sp.lo, sp.hi))
        params += [ParamSpec(f"{sp.name}_{k}", 0.0, -10.0, 10.0) for k in range(1, DEGREE + 1)]
    return "\n".join(lines + [t.circuit]), params


def converge_at(loss: np.ndarray, final: float) -> int | None:
    """The first n >= CONV_S*SR from which on the mean loss over the trailing CONV_S (one whole level
    sweep, so the level distribution of every window is the same) stays below CONV_FACTOR*final.
    CONV_S*SR itself means "within the first window"; None: not by the end."""
    w = int(CONV_S * SR)
    cs = np.concatenate(([0.0], np.cumsum(loss)))
    rm = (cs[w:] - cs[:-w]) / w                  # rm[i]: mean of loss[i : i + w], ends at sample i + w
    above = np.flatnonzero(~(rm < CONV_FACTOR * final))
    if above.size == 0:
        return w
    if above[-1] == rm.size - 1:
        return None
    return int(above[-1] + 1 + w)


def running_mean(loss: np.ndarray, w: int) -> np.ndarray:
    cs = np.concatenate(([0.0], np.cumsum(loss)))
    n = np.arange(1, loss.size + 1)
    return (cs[n] - cs[np.maximum(n - w, 0)]) / np.minimum(n, w)


def freeze_points(n_learn: int) -> list:
    """Where learning is frozen for the evaluation: 4 points of the last sweep period (the level is
    then -15 dB falling, -30 dB, -15 dB rising, and 0 dB at the end of learning)."""
    step = int(FINAL_S * SR) // 4
    return [n_learn - int(FINAL_S * SR) + k * step for k in range(1, 4)] + [n_learn]


def run(t: Target, label: str, circuit: str, params: list, x: np.ndarray, n_learn: int, banks=None):
    """Learn on x[:n_learn]; at each freeze point, copy the whole state, evaluate with learning off on
    the held-out x[n_learn:], and restore the state. Timing: learning calls only, best of 3."""
    t0 = time.perf_counter()
    learner = Learner(circuit, params, target=t.target, settings=Settings(**vars(t.settings)),
                      sample_rate=SR, banks=banks)
    t_build = time.perf_counter() - t0
    learning, frozen = Settings(**vars(t.settings)), Settings(**vars(t.settings))
    frozen.learning = False
    learner.process(x[:64].copy())                 # warm the call path, then start clean
    learner.reset()
    loss, evals, start, t_learn = np.empty(n_learn), [], 0, 0.0
    for stop in freeze_points(n_learn):
        t0 = time.perf_counter()
        out, _ = learner.process(x[start:stop])
        t_learn += time.perf_counter() - t0
        loss[start:stop] = out[:, 2]
        snapshot = learner.st.copy()
        learner.configure(frozen)
        ev, _ = learner.process(x[n_learn:])
        evals.append(float(np.mean(ev[:, 2])))
        learner.st[:] = snapshot
        learner.configure(learning)
        start = stop
    params = learner.bank_params() if banks is not None else learner.params()
    for _ in range(2):                             # timing repeats from a reset learner
        learner.reset()
        t0 = time.perf_counter()
        learner.process(x[:n_learn])
        t_learn = min(t_learn, time.perf_counter() - t0)
    final = float(np.mean(loss[-int(FINAL_S * SR):]))
    return dict(target=t.key, label=label, P=len(learner.param_names), final=final,
                conv=converge_at(loss, final), eval=float(np.mean(evals)), eval_max=max(evals),
                build=t_build, learn=t_learn, ns=t_learn / n_learn * 1e9, loss=loss, params=params)


def uniform_boundaries(c: np.ndarray, K: int) -> list:
    w = int(WARMUP_S * SR)
    lo, hi = float(np.min(c[w:])), float(np.max(c[w:]))
    return list(np.linspace(lo, hi, K + 1))


def bank_kw(t: Target, condition: str | None = None) -> dict:
    return dict(condition=condition or t.condition, attack_ms=ATTACK_MS, release_ms=RELEASE_MS)


def fmt_conv(n):
    if n is None:
        return "not by the end"
    return f"{'<= ' if n == int(CONV_S * SR) else ''}{n} ({n / SR * 1000:.0f} ms)"


def experiment(x: np.ndarray, n_learn: int, ks=(2, 4, 8)):
    results, proposals = [], {}
    for t in TARGETS:
        c = condition_signal(x[:n_learn], t.condition, SR, ATTACK_MS, RELEASE_MS)
        results.append(run(t, "(a) one set", t.circuit, t.params, x, n_learn))
        pc, pp = poly_variant(t)
        results.append(run(t, "(b) cubic in the condition", pc, pp, x, n_learn))
        for K in ks:
            b = uniform_boundaries(c, K)
            for mode in ("separated", "exact"):
                results.append(run(t, f"(c) K={K} {mode}", t.circuit, t.params, x, n_learn,
                                   Banks(b, mode=mode, **bank_kw(t))))
        for cond, row in [(t.condition, "(d)")] + ([(t.alt_condition, "(e)")] if t.alt_condition else []):
            on = "" if cond == t.condition else f" on {cond}"
            if row == "(e)":
                c = condition_signal(x[:n_learn], cond, SR, ATTACK_MS, RELEASE_MS)
                results.append(run(t, f"(e) K=4 separated on {cond}, uniform", t.circuit, t.params, x,
                                   n_learn, Banks(uniform_boundaries(c, 4), mode="separated", **bank_kw(t, cond))))
            for how, fit in (("least squares", None), ("circuit fit", (t.circuit, t.params, t.settings))):
                # the proposal sees the training input and the target's samples on it
                t0 = time.perf_counter()
                prop = propose(x[:n_learn], t.target, K=4, condition=cond, fit=fit, sample_rate=SR,
                               attack_ms=ATTACK_MS, release_ms=RELEASE_MS)
                proposals[f"{t.key}{on}, {how}"] = (prop, time.perf_counter() - t0)
                results.append(run(t, f"{row} K=4 separated{on}, proposed ({how})", t.circuit, t.params,
                                   x, n_learn, Banks(prop.boundaries, mode="separated", **bank_kw(t, cond))))
    return results, proposals


def table(results) -> str:
    head = ("| target | variant | params | final loss (last 0.5 s) | samples to converge | "
            "frozen eval loss (mean of 4) | frozen eval (worst of 4) | learn time (4 s audio) | ns/sample | "
            "build+compile |")
    rows = [head, "|" + "---|" * 10]
    for r in results:
        rows.append(f"| {r['target']} | {r['label']} | {r['P']} | {r['final']:.3g} | {fmt_conv(r['conv'])} | "
                    f"{r['eval']:.3g} | {r['eval_max']:.3g} | {r['learn'] * 1000:.1f} ms | {r['ns']:.0f} | "
                    f"{r['build']:.1f} s |")
    return "\n".join(rows)


def factors(results, what: str) -> str:
    rows = ["| target | one set / (b) cubic | one set / K=4 sep | one set / K=4 exact | one set / K=4 proposed (lsq) "
            "| one set / K=4 proposed (circuit) | (b) / K=4 sep | K=4 exact / K=4 sep |", "|" + "---|" * 8]
    for key in [t.key for t in TARGETS]:
        r = {q["label"]: q[what] for q in results if q["target"] == key}
        one, poly = r["(a) one set"], r["(b) cubic in the condition"]
        sep, ex = r["(c) K=4 separated"], r["(c) K=4 exact"]
        pl = r["(d) K=4 separated, proposed (least squares)"]
        pc = r["(d) K=4 separated, proposed (circuit fit)"]
        rows.append(f"| {key} | {one / poly:.3g} | {one / sep:.3g} | {one / ex:.3g} | {one / pl:.3g} | "
                    f"{one / pc:.3g} | {poly / sep:.3g} | {ex / sep:.3g} |")
    return "\n".join(rows)


def done_when(seconds: float) -> str:
    """The issue's done-when run: T2 on plain LcgNoise (no level sweep), [-1,-0.5,0,0.5,1] input banks."""
    t = TARGETS[1]
    x = LcgNoise().read(int(seconds * SR) + int(EVAL_S * SR))
    n = int(seconds * SR)
    res = [run(t, "one set", t.circuit, t.params, x, n)]
    for mode in ("separated", "exact"):
        res.append(run(t, f"K=4 {mode}", t.circuit, t.params, x, n,
                       Banks([-1, -0.5, 0, 0.5, 1], condition="input", mode=mode)))
    one = res[0]["final"]
    lines = [f"T2 on plain LcgNoise, {seconds:g} s, banks [-1, -0.5, 0, 0.5, 1] on the input:"]
    for r in res:
        lines.append(f"  {r['label']:<14} final loss {r['final']:.3g}  (one set / this = {one / r['final']:.3g}x)")
    return "\n".join(lines)


COLORS = {"(a) one set": (0, 0, 0), "(b) cubic in the condition": (140, 140, 140),
          "(c) K=2 separated": (120, 170, 255), "(c) K=4 separated": (30, 90, 230),
          "(c) K=8 separated": (10, 30, 130), "(c) K=2 exact": (255, 170, 110),
          "(c) K=4 exact": (230, 100, 20), "(c) K=8 exact": (140, 50, 0),
          "(d) K=4 separated, proposed (least squares)": (30, 170, 60),
          "(d) K=4 separated, proposed (circuit fit)": (120, 210, 40),
          "(e) K=4 separated on input, uniform": (200, 40, 200),
          "(e) K=4 separated on input, proposed (least squares)": (230, 30, 60),
          "(e) K=4 separated on input, proposed (circuit fit)": (255, 150, 200)}
PLOT_FLOOR = 1e-12


def write_png(results, path: Path):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg
    import pyqtgraph.exporters
    from pyqtgraph.Qt import QtCore, QtWidgets
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])  # noqa: F841
    pg.setConfigOptions(antialias=True, background="w", foreground="k")
    win = pg.GraphicsLayoutWidget()
    win.resize(1500, 900)
    keys = [t.key for t in TARGETS]
    w = int(CONV_S * SR)
    pens = {}
    for i, key in enumerate(keys):
        title = next(t.title for t in TARGETS if t.key == key)
        plot = win.addPlot(row=i // 2, col=i % 2, title=f"{key}: {title}")
        plot.setLogMode(x=False, y=True)
        plot.setLabel("bottom", "time", units="s")
        plot.setLabel("left", f"loss, trailing {CONV_S:g} s mean")
        plot.getAxis("left").enableAutoSIPrefix(False)
        plot.showGrid(x=True, y=True, alpha=0.3)
        for r in (q for q in results if q["target"] == key):
            rm = running_mean(r["loss"], w)
            idx = np.unique(np.linspace(int(0.005 * SR), rm.size - 1, 800).astype(int))
            style = QtCore.Qt.PenStyle.DashLine if "exact" in r["label"] else QtCore.Qt.PenStyle.SolidLine
            pen = pg.mkPen(COLORS.get(r["label"], (200, 0, 200)), width=2, style=style)
            plot.plot(idx / SR, np.maximum(rm[idx], PLOT_FLOOR), pen=pen, name=r["label"])
            pens[r["label"]] = pen
    legend_box = win.addViewBox(row=1, col=1)
    legend_box.setMouseEnabled(False, False)
    legend = pg.LegendItem(labelTextSize="10pt")
    legend.setParentItem(legend_box)
    legend.anchor((0, 0), (0, 0), offset=(20, 20))
    for label, pen in pens.items():
        legend.addItem(pg.PlotDataItem([0, 1], [0, 0], pen=pen), label + ("  (dashed)" if "exact" in label else ""))
    win.show()
    for _ in range(3):
        app.processEvents()
    exporter = pg.exporters.ImageExporter(win.scene())
    exporter.parameters()["width"] = 1500
    path.parent.mkdir(parents=True, exist_ok=True)
    exporter.export(str(path))
    win.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="learning length per run (default 4)")
    ap.add_argument("--png", default=str(ROOT / "docs" / "lactose.png"), help="'' to skip the figure")
    ap.add_argument("--quick", action="store_true", help="1 s of learning, K = 4 only (a smoke run)")
    a = ap.parse_args(argv)
    seconds = 1.0 if a.quick else a.seconds
    n_learn = int(seconds * SR)
    x = make_input(n_learn + int(EVAL_S * SR))
    t_start = time.perf_counter()
    print(f"# LACTOSE experiment: {seconds:g} s of learning ({n_learn} samples at {SR} Hz) + "
          f"{EVAL_S:g} s frozen evaluation per run\n")
    print("input: LCG noise x a 0..-30 dBFS raised-cosine level sweep at 2 Hz, starting loud "
          "(the same samples for every run)")
    print(f"final loss: mean per-sample loss over the last {FINAL_S:g} s of learning; samples to converge: "
          f"first sample n >= {int(CONV_S * SR)} from which on the mean loss over the trailing {CONV_S:g} s "
          f"(one level sweep) stays below {CONV_FACTOR:g}x the final loss; frozen eval: learning frozen "
          f"at 4 points of the last 0.5 s "
          f"(levels -15 dB falling, -30 dB, -15 dB rising, 0 dB = the end), the mean loss over the "
          f"{EVAL_S:g} s of input after the learning part, with the state restored after each; "
          f"learn time: best of 3\n")
    for t in TARGETS:
        pc, _ = poly_variant(t)
        lr = t.settings.lr
        print(f"{t.key}: {t.title}\n  target:   {t.target.replace(chr(10), ' | ')}\n  learnable: {t.circuit}"
              f"  ({', '.join(f'{p.name}={p.init:g} in [{p.lo:g}, {p.hi:g}]' for p in t.params)})\n"
              f"  banks: condition {t.condition}; (b): {t.poly_note}\n"
              f"  (b) circuit: {pc.replace(chr(10), ' | ')}\n  settings: mse, window 1, adam lr {lr:g}\n")
    results, proposals = experiment(x, n_learn, ks=(4,) if a.quick else (2, 4, 8))
    print(table(results))
    print()
    print("Factors of the final loss (online, last 0.5 s; > 1: the second variant is better):\n")
    print(factors(results, "final"))
    print()
    print("Factors of the frozen evaluation loss (mean of 4 freeze points):\n")
    print(factors(results, "eval"))
    print()
    for key, (prop, secs) in proposals.items():
        print(f"{key} proposal ({secs * 1000:.0f} ms, {prop.evaluations} segment fits):")
        print(prop.report())
        print()
    print("Bank parameters at the end of learning, K=4:")
    for r in results:
        if r["label"].startswith(("(c) K=4", "(d)", "(e)")):
            vals = "; ".join(", ".join(f"{k}={v:.3g}" for k, v in bank.items()) for bank in r["params"])
            print(f"  {r['target']} {r['label']}: {vals}")
    print()
    print(done_when(seconds))
    r2 = {q["label"]: q for q in results if q["target"] == "T2"}
    f2 = r2["(a) one set"]["final"] / r2["(c) K=4 separated"]["final"]
    print(f"\nT2 factor on the swept input (one set / K=4 separated, uniform boundaries): {f2:.3g}x "
          f"(done-when wants >= 100x)")
    if a.png:
        write_png(results, Path(a.png))
        print(f"\nwrote {a.png}")
    print(f"\ntotal wall time {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
