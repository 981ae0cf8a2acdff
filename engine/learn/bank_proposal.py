"""Choosing LACTOSE bank boundaries from data (the paper's future work: "policies to search for the
optimal branching conditions given a dataset").

    from engine.learn.bank_proposal import propose
    prop = propose(x, y, K=4, condition="level")      # y: target samples, a function of x, or circuit text
    prop.boundaries       # K+1 strictly increasing floats; the outer two are the condition's min and max
    prop.improvement      # .vs_quantile, .vs_single: how many times lower the chosen split's loss is
    prop.report()         # a short text table
    Banks(prop.boundaries, condition="level")        # or prop.banks()

The method, in one dimension:

1. The condition signal c[n] is computed as engine/learn/banks.py defines it: "input" is x itself;
   "level" is the attack/release follower of |x| (env += (ka if |x| > env else kr)*(|x| - env), with
   k = 1 - exp(-1/(ms*SR/1000))), in dBFS 20*log10(env + 1e-12) or linear. An array of the same
   length as x may be given instead (a control signal).
2. The samples are sorted by c. A split into K banks is then K-1 cut points in that order, and a
   bank's cost is the squared error left after fitting a cheap model to the bank's samples alone.
   The default model is least squares of y on a fixed basis [1, x, x^2, x^3, tanh(3x)]
   plus, with memory=True, x[n-1] and y[n-1] (so a one-pole filter is fitted exactly per bank; this
   is an equation-error fit, cheap, and exact for any recursion of first order in y). The basis is
   smooth on purpose (no |x|): a kink or a jump of the target, at 0 or anywhere, is what a cut should
   go to, as a bank of a smooth learnable circuit cannot bend there either. Its sufficient
   statistics (Z^T Z for Z = [basis | y]) add up over samples, so the cost of any range of the sorted
   order comes from prefix sums.
3. Candidate cuts are the quantiles j/C of c (C = `candidates`); dynamic programming over them gives
   the split with the least summed cost exactly (for that candidate set).
4. Each inner cut is then refined in turn, keeping the others fixed, on finer and finer quantiles
   between its neighbouring candidates, zooming in around the best position down to single samples,
   until no cut moves.
5. A boundary is placed midway between the last condition value below the cut and the first one at
   or above it, so Banks.select puts every sample in the bank the proposal scored it in.

`fit` may also be a callable fit(x_seg, y_seg) -> mean loss per sample (the best loss a per-bank
model reaches on those samples), or a learnable circuit (circuit, params[, settings]) learned by an
engine Learner on each candidate bank's samples and then scored with learning off (circuit_fit); the
circuit form needs the target as circuit text.
Those are far more expensive per segment, so they use fewer candidates by default. A bank's samples
are handed over in time order; they are not contiguous in time, so a recursive circuit sees its
state jump between the pieces.

engine/ code: numpy and numba only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

CONDITIONS = ("level", "input")
BASIS_NAMES = ["1", "x", "x^2", "x^3", "tanh(3x)"]
MEMORY_NAMES = ["x@1", "y@1"]


# ---------------------------------------------------------------- the condition signal

@njit(cache=True, nogil=True)
def _follow(x, ka, kr, out):
    e = 0.0
    for i in range(x.shape[0]):
        a = abs(x[i])
        e = e + (ka if a > e else kr) * (a - e)
        out[i] = e


def follower_coefficient(ms: float, sample_rate: float) -> float:
    """The one-pole coefficient of engine/learn/banks.py's level follower for a time constant in ms."""
    return 1.0 - math.exp(-1.0 / max(ms * 1e-3 * sample_rate, 1e-9))


def condition_signal(x, condition="level", sample_rate=48000.0, attack_ms=1.0, release_ms=50.0,
                     level_db=True) -> np.ndarray:
    """c[n] as the bank kernel computes it (engine/learn/banks.py): x for "input"; for "level" the
    attack/release follower of |x|, in dBFS (20*log10(env + 1e-12)) or linear."""
    x = _samples(x, "x")
    if isinstance(condition, np.ndarray) or isinstance(condition, (list, tuple)):
        c = np.asarray(condition, dtype=np.float64)
        if c.shape != x.shape:
            raise ValueError(f"the condition signal has {c.size} samples but x has {x.size}")
        if not np.all(np.isfinite(c)):
            raise ValueError("the condition signal contains NaN or infinite values")
        return c
    if condition == "input":
        return x.copy()
    if condition != "level":
        raise ValueError(f"unknown condition '{condition}'; choose one of {', '.join(CONDITIONS)} "
                         "or pass the condition signal as an array")
    for what, v in (("attack", attack_ms), ("release", release_ms), ("sample rate", sample_rate)):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"the {what} must be a finite number >= 0, got {v}")
    env = np.empty_like(x)
    _follow(x, follower_coefficient(attack_ms, sample_rate), follower_coefficient(release_ms, sample_rate), env)
    return 20.0 * np.log10(env + 1e-12) if level_db else env


def _samples(a, what) -> np.ndarray:
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an array of numbers") from None
    if a.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{what} is empty")
    if not np.all(np.isfinite(a)):
        bad = int(np.flatnonzero(~np.isfinite(a))[0])
        raise ValueError(f"{what} contains NaN or infinite values (first at sample {bad})")
    return a


# ---------------------------------------------------------------- segment costs

def basis_matrix(x, y, memory=True) -> np.ndarray:
    """The least-squares basis, one row per sample (columns: BASIS_NAMES [+ MEMORY_NAMES])."""
    cols = [np.ones_like(x), x, x * x, x * x * x, np.tanh(3.0 * x)]
    if memory:
        cols += [np.concatenate(([0.0], x[:-1])), np.concatenate(([0.0], y[:-1]))]
    return np.stack(cols, axis=1)


class _LeastSquares:
    """Cost of a range [a, b) of the sorted order: the residual sum of squares of y regressed on the
    basis over those samples (ridge 1e-10 relative, on RMS-normalised columns)."""

    def __init__(self, x, y, order, memory):
        A = basis_matrix(x, y, memory)
        scale = np.sqrt(np.mean(A * A, axis=0))
        A = A / np.where(scale > 0, scale, 1.0)
        self.Z = np.ascontiguousarray(np.column_stack([A, y])[order])
        self.p = A.shape[1]
        self.names = BASIS_NAMES + (MEMORY_NAMES if memory else [])

    def prefix(self, knots) -> np.ndarray:
        """P[i] = statistics of the sorted range [knots[0], knots[i])."""
        q = self.p + 1
        P = np.zeros((len(knots), q, q))
        for i in range(1, len(knots)):
            blk = self.Z[knots[i - 1]:knots[i]]
            P[i] = P[i - 1] + blk.T @ blk
        return P

    def _rss(self, S) -> np.ndarray:
        S = np.asarray(S)
        p = self.p
        G, b, yy = S[..., :p, :p], S[..., :p, p], S[..., p, p]
        lam = 1e-10 * np.maximum(np.trace(G, axis1=-2, axis2=-1), 1e-300) / p
        G = G + lam[..., None, None] * np.eye(p)
        w = np.linalg.solve(G, b[..., None])[..., 0]
        return np.maximum(yy - np.sum(b * w, axis=-1), 0.0)

    def pair_costs(self, knots) -> np.ndarray:
        P = self.prefix(knots)
        m = len(knots)
        C = np.full((m, m), np.inf)
        for i in range(m - 1):
            C[i, i + 1:] = self._rss(P[i + 1:] - P[i])
        return C

    def split_costs(self, a, fs, b) -> np.ndarray:
        P = self.prefix([a, *fs, b])
        inner = P[1:-1]
        return self._rss(inner - P[0]) + self._rss(P[-1] - inner)

    def cost(self, a, b) -> float:
        return float(self.pair_costs([a, b])[0, 1])


class _CallableCost:
    """Cost of a range from a user fit: fit(x_seg, y_seg) -> mean loss, times the sample count."""

    def __init__(self, x, y, order, fit):
        self.x, self.y, self.order, self.fit = x, y, order, fit
        self._memo = {}

    def cost(self, a, b) -> float:
        key = (int(a), int(b))
        if key not in self._memo:
            idx = np.sort(self.order[a:b])
            v = float(self.fit(self.x[idx], self.y[idx]))
            if not math.isfinite(v):
                raise ValueError(f"the fit returned {v} for samples {a}..{b} of the sorted condition")
            self._memo[key] = v * (b - a)
        return self._memo[key]

    def pair_costs(self, knots) -> np.ndarray:
        m = len(knots)
        C = np.full((m, m), np.inf)
        for i in range(m - 1):
            for j in range(i + 1, m):
                C[i, j] = self.cost(knots[i], knots[j])
        return C

    def split_costs(self, a, fs, b) -> np.ndarray:
        return np.array([self.cost(a, f) + self.cost(f, b) for f in fs])


def circuit_fit(circuit: str, params: list, target: str, hidden: dict | None = None, settings=None,
                sample_rate: float = 48000.0, max_samples: int = 24000, passes: int = 2):
    """A fit callable that learns `circuit` (engine Learner, Adam lr 1e-2 unless `settings`) against
    the target circuit on a bank's samples (at most `max_samples`, the first ones in time) for
    `passes` passes, then runs them once more with learning off: the mean loss of that frozen pass.
    Frozen, because an online learner tracks a slowly changing condition inside the segment, and its
    loss while learning would hide what one parameter set cannot do there."""
    from dataclasses import replace

    from engine.learn.learner import Learner, Settings          # engine-internal; imported only when used
    learning = settings or Settings(loss="mse", optimizer="adam", lr=1e-2)
    frozen = replace(learning, learning=False)
    learner = Learner(circuit, list(params), target=target, hidden=hidden, settings=replace(learning),
                      sample_rate=sample_rate)

    def fit(xs, ys):
        xs = xs[:max_samples]
        learner.reset()
        learner.configure(learning)
        learner.process(np.tile(xs, passes))
        learner.configure(frozen)
        out, _ = learner.process(xs)
        return float(np.mean(out[:, 2]))
    fit.learner = learner
    return fit


def _target_samples(x, target, hidden, sample_rate):
    if isinstance(target, str):
        from engine.learn.learner import Learner, ParamSpec, Settings
        hidden = dict(hidden or {})
        learner = Learner(target, [ParamSpec(k, float(v)) for k, v in hidden.items()], target=target,
                          hidden=hidden, settings=Settings(learning=False), sample_rate=sample_rate)
        out, _ = learner.process(x)
        return out[:, 0].copy()
    if callable(target):
        return _samples(target(x), "the target function's output")
    return _samples(target, "the target")


# ---------------------------------------------------------------- the proposal

@dataclass
class Improvement:
    vs_quantile: float        # quantile split's loss / chosen split's loss (>= 1: the proposal is better)
    vs_single: float          # one bank's loss / chosen split's loss

    def __str__(self):
        return f"{self.vs_quantile:.3g}x vs quantiles, {self.vs_single:.3g}x vs one bank"


@dataclass
class Proposal:
    boundaries: list                  # K+1 strictly increasing floats on the condition's axis
    K: int
    condition: str                    # "level", "input" or "signal" (an array was given)
    loss: float                       # per-bank fit's mean loss per sample, chosen split
    quantile_boundaries: list
    quantile_loss: float
    single_loss: float
    improvement: Improvement
    counts: list                      # samples per bank (chosen split)
    bank_losses: list                 # per-bank fit's mean loss per sample, per bank
    fit: str                          # what scored the splits
    level_db: bool = True
    attack_ms: float = 1.0
    release_ms: float = 50.0
    evaluations: int = 0              # segment costs evaluated (a measure of the search's work)
    cuts: list = field(default_factory=list)   # inner cuts as indices into the sorted condition

    def banks(self, **kw):
        """engine.learn.banks.Banks with these boundaries (and this condition's follower settings)."""
        from engine.learn.banks import Banks
        if self.condition not in CONDITIONS and "condition" not in kw:
            raise ValueError("the proposal was made on a condition array: pass condition=<signal name>")
        args = dict(condition=self.condition, attack_ms=self.attack_ms, release_ms=self.release_ms,
                    level_db=self.level_db)
        args.update(kw)
        return Banks(list(self.boundaries), **args)

    def report(self) -> str:
        unit = " dBFS" if self.condition == "level" and self.level_db else ""
        lines = [f"LACTOSE boundary proposal: K={self.K}, condition {self.condition}{unit}, fit {self.fit}",
                 f"{'bank':>4}  {'from':>10}  {'to':>10}  {'samples':>8}  {'fit loss':>10}"]
        for k in range(self.K):
            lines.append(f"{k:>4}  {self.boundaries[k]:>10.4g}  {self.boundaries[k + 1]:>10.4g}  "
                         f"{self.counts[k]:>8}  {self.bank_losses[k]:>10.3g}")
        q = ", ".join(f"{v:.4g}" for v in self.quantile_boundaries[1:-1]) or "-"
        lines.append(f"chosen split  loss {self.loss:.3g}")
        lines.append(f"quantile split loss {self.quantile_loss:.3g} (inner {q}): "
                     f"{self.improvement.vs_quantile:.3g}x the chosen")
        lines.append(f"one bank      loss {self.single_loss:.3g}: {self.improvement.vs_single:.3g}x the chosen")
        return "\n".join(lines)


def _ratio(a, b):
    if b > 0:
        return a / b
    return 1.0 if a <= 0 else math.inf


def propose(x, target, K: int = 4, condition="level", fit=None, sample_rate: float = 48000.0,
            attack_ms: float = 1.0, release_ms: float = 50.0, level_db: bool = True,
            hidden: dict | None = None, memory: bool = True, candidates: int | None = None,
            min_fraction: float = 0.005) -> Proposal:
    """Propose K+1 bank boundaries for `condition` from input x and the target.

    target: the target's samples (same length as x), a function of x, or circuit text (with its
    parameter values in `hidden`). fit: None (least squares on a fixed basis, see the module doc),
    a callable fit(x_seg, y_seg) -> mean loss, or (circuit, params[, settings]) learned per bank.
    condition: "level", "input", or an array (a control signal as long as x)."""
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
        raise ValueError(f"K (the number of banks) must be a whole number >= 1, got {K!r}")
    x = _samples(x, "x")
    y = _target_samples(x, target, hidden, sample_rate)
    if y.shape != x.shape:
        raise ValueError(f"the target has {y.size} samples but x has {x.size}")
    c = condition_signal(x, condition, sample_rate, attack_ms, release_ms, level_db)
    fit_name = "least squares on [" + ", ".join(BASIS_NAMES + (MEMORY_NAMES if memory else [])) + "]"
    if isinstance(fit, (tuple, list)):
        if not isinstance(target, str):
            raise ValueError("a circuit fit needs the target as circuit text (the Learner runs both)")
        if len(fit) not in (2, 3):
            raise ValueError("a circuit fit is (circuit, params) or (circuit, params, settings)")
        fit_name = f"learned circuit '{fit[0]}'"
        fit = circuit_fit(fit[0], fit[1], target, hidden, fit[2] if len(fit) == 3 else None, sample_rate)
    elif fit is not None:
        if not callable(fit):
            raise ValueError("fit must be None, a callable fit(x, y) -> loss, or (circuit, params)")
        fit_name = getattr(fit, "__name__", "callable")
    cond_name = condition if isinstance(condition, str) else "signal"
    return propose_boundaries(c, x, y, K, fit=fit, memory=memory, candidates=candidates,
                              min_fraction=min_fraction, _meta=dict(condition=cond_name, fit=fit_name,
                                                                    level_db=level_db, attack_ms=attack_ms,
                                                                    release_ms=release_ms))


def propose_boundaries(condition_values, x, y, K: int, fit=None, memory: bool = True,
                       candidates: int | None = None, min_fraction: float = 0.005, _meta=None) -> Proposal:
    """The search itself, on an explicit condition signal (see propose for the arguments)."""
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
        raise ValueError(f"K (the number of banks) must be a whole number >= 1, got {K!r}")
    c = _samples(condition_values, "the condition signal")
    x = _samples(x, "x")
    y = _samples(y, "the target")
    if not (c.shape == x.shape == y.shape):
        raise ValueError(f"the condition, x and the target must have the same length "
                         f"(got {c.size}, {x.size}, {y.size})")
    if not (0.0 <= min_fraction < 1.0 / K):
        raise ValueError(f"min_fraction must be in [0, 1/K), got {min_fraction}")
    meta = _meta or dict(condition="signal", fit="least squares" if fit is None else "callable",
                         level_db=True, attack_ms=1.0, release_ms=50.0)
    N = x.size
    order = np.argsort(c, kind="stable")
    cs = c[order]
    lo, hi = float(cs[0]), float(cs[-1])
    if hi <= lo:
        raise ValueError("the condition is constant: no range to split into banks")
    distinct = 1 + int(np.count_nonzero(np.diff(cs)))
    if distinct < K:
        raise ValueError(f"the condition takes {distinct} distinct value(s): too few for {K} banks")
    cost = _LeastSquares(x, y, order, memory) if fit is None else _CallableCost(x, y, order, fit)
    min_count = max(1, int(math.ceil(min_fraction * N)))
    if fit is None:
        min_count = max(min_count, 2 * cost.p)
    if N < K * min_count:
        raise ValueError(f"{N} samples are too few for {K} banks of at least {min_count} samples")
    if candidates is None:
        candidates = 64 if fit is None else 12
    candidates = max(int(candidates), K)

    def snap(t):
        """The nearest cut at or before t (else after) where the sorted condition changes value."""
        t = int(min(max(t, 1), N - 1))
        s = int(np.searchsorted(cs, cs[t], "left"))
        if s == 0:
            s = int(np.searchsorted(cs, cs[t], "right"))
        return s if 0 < s < N else None

    def boundaries_of(cuts):
        return [lo] + [0.5 * (cs[t - 1] + cs[t]) for t in cuts] + [hi]

    def split_loss(cuts):
        edges = [0, *cuts, N]
        per = [cost.cost(a, b) for a, b in zip(edges, edges[1:])]
        return per, edges

    # quantile split (the baseline) and one bank
    qcuts = sorted({t for t in (snap(round(j * N / K)) for j in range(1, K)) if t is not None})
    q_per, _ = split_loss(qcuts)
    single = cost.cost(0, N)
    evaluations = 0

    cuts = []
    if K > 1:
        # dynamic programming over quantile candidates (exact for that candidate set)
        knots = sorted({0, N} | {t for t in (snap(round(j * N / candidates)) for j in range(1, candidates))
                                  if t is not None})
        knots = np.array(knots)
        C = cost.pair_costs(knots)
        evaluations += len(knots) * (len(knots) - 1) // 2
        counts = knots[None, :] - knots[:, None]
        C[counts < min_count] = np.inf
        m = len(knots)
        D = np.full((K + 1, m), np.inf)
        arg = np.zeros((K + 1, m), dtype=np.int64)
        D[0, 0] = 0.0
        for k in range(1, K + 1):
            for j in range(1, m):
                v = D[k - 1, :j] + C[:j, j]
                i = int(np.argmin(v))
                D[k, j], arg[k, j] = v[i], i
        if not math.isfinite(D[K, m - 1]):
            raise ValueError(f"no split into {K} banks of at least {min_count} samples exists on "
                             f"{m - 2} candidate cuts; lower K or raise candidates")
        j, path = m - 1, []
        for k in range(K, 0, -1):
            j = arg[k, j]
            path.append(j)
        cuts = [int(knots[i]) for i in reversed(path[:-1])]

        # refine each inner cut on finer quantiles between its neighbouring candidates
        fine = 32 if fit is None else 6       # positions per zoom level (a callable costs more)
        for _ in range(20):
            moved = False
            for j in range(len(cuts)):
                a = 0 if j == 0 else cuts[j - 1]
                b = N if j == len(cuts) - 1 else cuts[j + 1]
                pos = int(np.searchsorted(knots, cuts[j]))
                w_lo = int(knots[max(pos - 1, 0)])
                w_hi = int(knots[min(pos + 1, m - 1)])
                best = cuts[j]
                best_cost = float(cost.split_costs(a, [best], b)[0])
                while True:
                    w_lo, w_hi = max(w_lo, a + min_count), min(w_hi, b - min_count)
                    if w_hi < w_lo:
                        break
                    fs = sorted({t for t in (snap(v) for v in np.linspace(w_lo, w_hi, fine + 1).round())
                                 if t is not None and a + min_count <= t <= b - min_count})
                    if not fs:
                        break
                    sc = cost.split_costs(a, fs, b)
                    evaluations += 2 * len(fs)
                    i = int(np.argmin(sc))
                    if sc[i] < best_cost * (1 - 1e-12) - 1e-300:
                        best, best_cost = fs[i], float(sc[i])
                    step = (w_hi - w_lo) / fine
                    if step <= 1:
                        break
                    w_lo, w_hi = int(math.floor(best - step)), int(math.ceil(best + step))
                if best != cuts[j]:
                    cuts[j], moved = best, True
            if not moved:
                break

    per, edges = split_loss(cuts)
    total = sum(per)
    chosen_loss, quantile_loss, single_loss = total / N, sum(q_per) / N, single / N
    if len(qcuts) == K - 1 and quantile_loss < chosen_loss:   # the candidates may miss the quantile cuts
        cuts, per, edges = qcuts, q_per, [0, *qcuts, N]
        chosen_loss = quantile_loss
    counts = [b - a for a, b in zip(edges, edges[1:])]
    return Proposal(
        boundaries=[float(v) for v in boundaries_of(cuts)], K=K, condition=meta["condition"],
        loss=chosen_loss, quantile_boundaries=[float(v) for v in boundaries_of(qcuts)],
        quantile_loss=quantile_loss, single_loss=single_loss,
        improvement=Improvement(_ratio(quantile_loss, chosen_loss), _ratio(single_loss, chosen_loss)),
        counts=counts, bank_losses=[p / n for p, n in zip(per, counts)], fit=meta["fit"],
        level_db=meta["level_db"], attack_ms=meta["attack_ms"], release_ms=meta["release_ms"],
        evaluations=evaluations, cuts=list(cuts))
