"""The circuit and learning flags shared by `learn` and `run`, and their parsing."""
from __future__ import annotations

import argparse
import math
import sys

from app.cli.errors import UsageError, parse_float as _float
from app.truths import OUTSIDE_DECAY
from engine.learn import spectral as SP
from engine.learn.losses import DEFAULT as DEFAULT_LOSS, LOSSES, NAMES as LOSS_NAMES
from engine.learn.optimizers import BY_NAME, DEFAULT as DEFAULT_OPTIMIZER, DEFAULT_P0, NAMES as OPTIMIZER_NAMES, OPTIMIZERS


def parse_param(text: str):
    """NAME=INIT[:MIN:MAX[:log]]; an empty MIN or MAX means unbounded (also -inf / inf); log puts
    the parameter on a logarithmic axis (a frequency, a time: the optimisers step it in log space)."""
    from engine.learn.learner import ParamSpec
    form = "NAME=INIT, NAME=INIT:MIN:MAX or NAME=INIT:MIN:MAX:log"
    if "=" not in text:
        raise UsageError(f"--param {text}: expected {form}")
    name, rest = text.split("=", 1)
    name = name.strip()
    if not name.isidentifier():
        raise UsageError(f"--param {text}: '{name}' is not a valid parameter name")
    parts = rest.split(":")
    log = len(parts) == 4 and parts[3].strip() == "log"
    if len(parts) not in (1, 3) and not log:
        raise UsageError(f"--param {text}: expected {form}")
    init = _float(parts[0], f"--param {name} initial value")
    lo = -math.inf if len(parts) == 1 or parts[1].strip() == "" else _float(parts[1], f"--param {name} minimum")
    hi = math.inf if len(parts) == 1 or parts[2].strip() == "" else _float(parts[2], f"--param {name} maximum")
    if not math.isfinite(init):
        raise UsageError(f"--param {name}: the initial value must be finite")
    if lo > hi:
        raise UsageError(f"--param {name}: minimum {lo:g} is above maximum {hi:g}")
    if log and not (0.0 < lo and math.isfinite(hi)):
        raise UsageError(f"--param {name}: a log axis needs a range above 0 with a finite maximum, "
                         f"got {lo:g}:{hi:g}")
    return ParamSpec(name, init, lo, hi, log=log)


def parse_hidden(text: str):
    if "=" not in text:
        raise UsageError(f"--hidden {text}: expected NAME=VALUE")
    name, v = text.split("=", 1)
    value = _float(v, f"--hidden {name}")
    if not math.isfinite(value):
        raise UsageError(f"--hidden {name}: the value must be finite")
    return name.strip(), value


def _positive_seconds(text):
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"'{text}': must be a positive number of seconds")
    return v


def _json_float(v):
    return v if math.isfinite(v) else None


def add_learning_args(p: argparse.ArgumentParser, circuit_required: bool = True):
    """The circuit and learning flags shared by `learn` and `run`."""
    p.add_argument("--circuit", required=circuit_required,
                   help="the learnable circuit, e.g. 'y = gain*x + dc'")
    p.add_argument("--target", help="the ground-truth circuit (default: --circuit with the --hidden values)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=INIT[:MIN:MAX[:log]]",
                   help="declare a learnable parameter (repeat per parameter); :log puts it on a "
                        "logarithmic axis (a frequency, a time), stepped in log space by every optimiser")
    p.add_argument("--hidden", action="append", default=[], metavar="NAME=VALUE",
                   help="a hidden (ground-truth) parameter value")
    p.add_argument("--loss", choices=LOSS_NAMES, default=DEFAULT_LOSS,
                   help="; ".join(f"{loss.name}: {loss.description}" for loss in LOSSES))
    p.add_argument("--huber-delta", type=float, default=1.0, metavar="D")
    p.add_argument("--window", type=int, default=1, metavar="W", help="sliding-window length in samples")
    p.add_argument("--optimizer", "--optimiser", choices=OPTIMIZER_NAMES, default=DEFAULT_OPTIMIZER,
                   help="; ".join(f"{o.name}: {o.description}" for o in OPTIMIZERS))
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    for o in OPTIMIZERS:                       # one flag per named constant: --momentum, --beta1, ...
        for flag, default in o.constants:
            p.add_argument(f"--{flag}", type=float, help=f"{o.name}'s {flag} (default {default:g})")
    with_eps = [o.name for o in OPTIMIZERS if o.eps]
    p.add_argument("--eps", type=float, help=f"epsilon of {'/'.join(with_eps)} (default 1e-8)")
    p.add_argument("--spectral-hop", type=int, default=SP.DEFAULT_HOP, metavar="N",
                   help=f"the spectral loss: samples per block, one step each (default {SP.DEFAULT_HOP})")
    p.add_argument("--spectral-fmin", type=float, default=SP.DEFAULT_FMIN, metavar="HZ",
                   help=f"the spectral loss: its lowest bin (default {SP.DEFAULT_FMIN:g} Hz, at least {SP.MIN_FMIN:g})")
    p.add_argument("--spectral-fmax", type=float, default=SP.DEFAULT_FMAX, metavar="HZ",
                   help=f"the spectral loss: its highest bin (default {SP.DEFAULT_FMAX:g} Hz, at most "
                        f"{SP.NYQUIST_SHARE:g} x the sample rate)")
    p.add_argument("--p0", type=float, default=DEFAULT_P0,
                   help="gauss-newton's initial uncertainty P, in units of each parameter's range "
                        f"width squared (a unit width for an unbounded range; default {DEFAULT_P0:g}: "
                        "trust the data over the starting point; lower it if the first steps jump "
                        "into the wrong basin)")
    p.add_argument("--clip", type=float, default=0.0, help="clip the gradient's L2 norm to this (0 = off)")
    p.add_argument("--lr-decay", type=float, default=None, metavar="F",
                   help="multiply the learning rate by F every --lr-decay-every steps (default 1; "
                        f"against a --plugin, a recording or a device {OUTSIDE_DECAY[0]:g} every "
                        f"{OUTSIDE_DECAY[1]} steps, down to {OUTSIDE_DECAY[2]:g} x --lr, so float32 "
                        "rounding noise, a recording's loop seam or a device's noise do not keep "
                        "moving the parameters once they converged)")
    p.add_argument("--lr-decay-every", type=int, default=None, metavar="E")
    p.add_argument("--lr-min", type=float, default=None)
    p.add_argument("--plugin", metavar="ID",
                   help="a LADSPA or LV2 plugin as the ground truth (ladspa:<UniqueID or label> or "
                        "lv2:<URI>; `plugins` lists them): its output is the target's 'plugin' signal "
                        "(the target defaults to  y = plugin); set its controls with --hidden SYMBOL=VALUE")
    p.add_argument("--plugin-channel", choices=["left", "right"], default="left",
                   help="the output channel of a stereo plugin that is learned (default left)")
    p.add_argument("--plugin-preset", metavar="LABEL",
                   help="start the --plugin's controls from one of its own presets (LV2); --hidden "
                        "values override it")
    p.add_argument("--range-mode", choices=["project", "straight-through"], default="project",
                   help="project: keep each parameter's accumulator inside its range (no wind-up); "
                        "straight-through: diff.lib's behaviour (the accumulator may leave the range)")
    p.add_argument("--banks", metavar="B0,B1,...,BK",
                   help="LACTOSE banks: K+1 increasing boundaries on the condition make K parameter sets")
    p.add_argument("--condition", default="level", metavar="level|input|note|velocity|SIGNAL",
                   help="what selects the bank: the input level in dBFS (default), the raw input "
                        "sample, the MIDI note or velocity (run only), or a signal of the circuit "
                        "(its value one sample earlier)")
    p.add_argument("--bank-mode", choices=["separated", "exact"], default="separated",
                   help="separated: gradient for the active bank only (LACTOSE); exact: tangents for "
                        "every bank through the circuit's state")
    p.add_argument("--hysteresis", type=float, default=0.0, metavar="H",
                   help="a bank changes only when the condition passes a boundary by H")
    p.add_argument("--crossfade-ms", type=float, default=0.0, metavar="T",
                   help="glide the parameters from the outgoing to the incoming bank over T ms")
    p.add_argument("--bank-circuit", action="append", default=None, metavar="TEXT",
                   help="a topology per bank: give it once per bank, in bank order (each bank's "
                        "circuit runs with its own state; the active bank's output is heard)")
    p.add_argument("--sr", type=float, default=None, help="sample rate in Hz (default 48000)")
    p.add_argument("--seed", type=int, default=0, help="seed of --input noise")


def flag_dest(flag: str) -> str:
    """An option's argparse dest: --forgetting-start -> forgetting_start."""
    return flag.replace("-", "_")


RATE_FLAGS = {"lr": "--lr", "clip": "--clip", "lr_decay": "--lr-decay", "lr_decay_every": "--lr-decay-every",
              "lr_min": "--lr-min", "eps": "--eps"}     # what only the first-order optimisers read


def note_unused_rate_flags(a, settings):
    """One stderr line when rate flags were typed for an optimiser that sets its own step (the
    default, gauss-newton): they would otherwise be ignored silently. Settings that are refused
    get their one error line instead."""
    optimizer = settings.optimizer
    try:
        settings.validate()
    except ValueError:
        return
    if not BY_NAME[optimizer].sets_its_own_step:
        return
    typed = [flag for dest, flag in RATE_FLAGS.items() if dest in getattr(a, "given", ())]
    if typed:
        others = "|".join(o.name for o in OPTIMIZERS if not o.sets_its_own_step)
        print(f"note: {optimizer} sets its own step, so {', '.join(typed)} "
              f"{'is' if len(typed) == 1 else 'are'} not used; add --optimizer {others} to use "
              f"{'it' if len(typed) == 1 else 'them'}", file=sys.stderr)


def settings_from_args(a):
    from engine.learn.learner import Settings
    constants = [getattr(a, flag_dest(flag)) for flag, _ in BY_NAME[a.optimizer].constants] + [None, None]
    decay, every, lr_min = a.lr_decay, a.lr_decay_every, a.lr_min
    outside = any(getattr(a, k, None) for k in ("plugin", "target_file", "target_input"))
    if outside and decay is None and every is None:
        decay, every = OUTSIDE_DECAY[0], OUTSIDE_DECAY[1]
        lr_min = OUTSIDE_DECAY[2] * a.lr if lr_min is None else lr_min
    settings = Settings(loss=a.loss, huber_delta=a.huber_delta, window=a.window, optimizer=a.optimizer,
                        lr=a.lr, c1=constants[0], c2=constants[1], eps=a.eps,
                        clip=a.clip, lr_decay=1.0 if decay is None else decay,
                        lr_decay_every=0 if every is None else every,
                        lr_min=0.0 if lr_min is None else lr_min, range_mode=a.range_mode, p0=a.p0,
                        spectral_hop=a.spectral_hop, spectral_fmin=a.spectral_fmin, spectral_fmax=a.spectral_fmax)
    note_unused_rate_flags(a, settings)
    return settings


def plugin_args(a):
    """--plugin and its --hidden controls: (plugin id or None, channel, {symbol: value} of its
    controls, the remaining --hidden values for the target circuit's parameters)."""
    hidden = dict(parse_hidden(t) for t in a.hidden)
    if not getattr(a, "plugin", None):
        return None, 0, {}, hidden
    from app.plugins import registry
    from app.plugins.instance import PluginError
    try:
        info = registry.find(a.plugin)
    except PluginError as e:
        raise UsageError(f"--plugin {e}") from None
    controls = {}
    if getattr(a, "plugin_preset", None):
        presets = registry.factory_presets(info)
        if a.plugin_preset not in presets:
            have = ", ".join(f"'{k}'" for k in presets) or "none"
            raise UsageError(f"--plugin-preset '{a.plugin_preset}': {info.id} has no such preset (its presets: {have})")
        controls = {k: info.control(k).clamp(v) for k, v in presets[a.plugin_preset].items()}
    controls.update({k: v for k, v in hidden.items() if info.control(k) is not None})   # --hidden wins
    rest = {k: v for k, v in hidden.items() if info.control(k) is None}
    return info.id, 1 if a.plugin_channel == "right" else 0, controls, rest


def banks_from_args(a, live: bool = False):
    """--banks/--condition/... as engine.learn.banks.Banks (None without --banks)."""
    if a.banks is None:
        for flag, given in (("--hysteresis", a.hysteresis), ("--crossfade-ms", a.crossfade_ms),
                            ("--bank-circuit", a.bank_circuit)):
            if given:
                raise UsageError(f"{flag} needs --banks")
        return None
    from engine.learn.banks import Banks
    if a.condition in ("note", "velocity") and not live:
        raise UsageError(f"--condition {a.condition} follows live MIDI: use it with run --headless "
                         "(and --source midi or --midi-connect)")
    bounds = [_float(t, "--banks boundary") for t in a.banks.split(",")]
    banks = Banks(bounds, condition=a.condition, mode=a.bank_mode, hysteresis=a.hysteresis,
                  crossfade_ms=a.crossfade_ms, circuits=a.bank_circuit)
    try:
        banks.validate()
    except ValueError as e:
        raise UsageError(f"--banks: {e}") from None
    return banks


def check_hidden_in_range(specs, hidden: dict):
    """A --hidden value must lie in its parameter's declared range (a hidden value the learner
    cannot reach is a typo, not an experiment)."""
    for sp in specs:
        v = hidden.get(sp.name)
        if v is not None and not sp.lo <= v <= sp.hi:
            raise UsageError(f"--hidden {sp.name}={v:g} is outside {sp.name}'s range {sp.lo:g} … {sp.hi:g}")


def flags_spec(a):
    """The circuit flags as a CircuitSpec (what learn builds its learner from and saves)."""
    from app.session import CircuitSpec
    specs = [parse_param(t) for t in a.param]
    names = [s.name for s in specs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise UsageError(f"--param {sorted(dup)[0]} is given twice")
    _, _, _, hidden = plugin_args(a)
    check_hidden_in_range(specs, hidden)
    target = a.target or ("y = plugin" if getattr(a, "plugin", None) else
                          "y = recording" if getattr(a, "target_file", None) else None)
    return CircuitSpec(a.circuit, specs, target=target, hidden=hidden, settings=settings_from_args(a),
                       banks=banks_from_args(a))


def learner_from_spec(spec, sample_rate, streams: int = 1, knobs=()):
    """The offline Learner of a CircuitSpec, less the hidden values that are the ground truth's
    knobs (a plugin's controls, a recording's 'align'); a bad circuit is one UsageError line."""
    from engine.learn.learner import Learner
    try:
        return Learner(spec.circuit, list(spec.params), target=spec.target,
                       hidden={k: v for k, v in spec.hidden.items() if k not in knobs},
                       settings=spec.settings, sample_rate=sample_rate, banks=spec.banks, streams=streams)
    except ValueError as e:          # CircuitError is a ValueError
        msg = str(e)
        if "has no declaration" in msg:
            msg += " (add --param NAME=INIT[:MIN:MAX])"
        raise UsageError(msg) from None
