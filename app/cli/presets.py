"""--preset NAME|FILE, shared by `learn` and `run` (--save-preset is app/cli/save_preset.py).

The preset is the circuit, its declarations, the hidden values, the banks, the ground truth and
the learning settings; learning starts from its learned values (as the window
does). Given alongside it, --hidden NAME=VALUE and the learning-settings flags (SETTINGS_FLAGS)
override the preset's values; the flags that change the circuit's structure (STRUCTURE_FLAGS) are
refused: that is another preset."""
from __future__ import annotations

import dataclasses

from app.cli.args import check_hidden_in_range, flag_dest, note_unused_rate_flags, parse_hidden
from app.cli.errors import UsageError, one_line
from engine.learn.optimizers import OPTIMIZERS

# the flags that would change what the preset's circuit is: (flag, argparse dest)
STRUCTURE_FLAGS = (("--circuit", "circuit"), ("--target", "target"), ("--param", "param"),
                   ("--sptmod", "sptmod"), ("--plugin", "plugin"), ("--plugin-channel", "plugin_channel"),
                   ("--plugin-preset", "plugin_preset"), ("--banks", "banks"), ("--condition", "condition"),
                   ("--bank-mode", "bank_mode"), ("--hysteresis", "hysteresis"),
                   ("--crossfade-ms", "crossfade_ms"), ("--bank-circuit", "bank_circuit"))
# the learning settings a flag given with --preset overrides: Settings field -> argparse dest
SETTINGS_FLAGS = {"loss": "loss", "huber_delta": "huber_delta", "window": "window", "optimizer": "optimizer",
                  "lr": "lr", "eps": "eps", "clip": "clip", "lr_decay": "lr_decay",
                  "lr_decay_every": "lr_decay_every", "lr_min": "lr_min", "range_mode": "range_mode",
                  "p0": "p0", "spectral_hop": "spectral_hop", "spectral_fmin": "spectral_fmin",
                  "spectral_fmax": "spectral_fmax"}
OVERRIDE_HELP = ("--hidden and the learning settings (--loss, --huber-delta, --window, --optimizer and "
                 "its constants, --p0, --lr, --eps, --clip, --lr-decay, --lr-decay-every, --lr-min, "
                 "--range-mode, --spectral-hop/-fmin/-fmax) given with it override the preset's; --circuit, --target, --param, "
                 "--sptmod, --plugin and the bank flags are refused (edit the preset instead)")


def given_flags(a) -> set[str]:
    """The argparse dests given on the command line (app/cli/main.py records them); without that
    record, the ones whose value is set."""
    given = getattr(a, "given", None)
    if given is not None:
        return set(given)
    return {k for k, v in vars(a).items() if v not in (None, [], False)}


def open_preset(a, name: str, flag: str = "--preset"):
    """(preset, spec) for --preset NAME|FILE with the overrides given alongside applied; the
    structure flags refused; every problem a one-line UsageError."""
    from app.preset import document as presets
    from app.preset import store
    given = given_flags(a)
    refused = [f for f, dest in STRUCTURE_FLAGS if dest in given]
    if refused:
        raise UsageError(f"{refused[0]} cannot be combined with {flag} (edit the preset instead)")
    try:
        preset = presets.load(store.resolve(name))
    except presets.PresetError as e:
        raise UsageError(f"{flag} {one_line(e)}") from None
    spec = preset.spec
    overrides = dict(parse_hidden(t) for t in a.hidden)
    check_hidden_in_range(list(spec.params) + list(spec.hidden_params), overrides)
    spec.hidden.update(overrides)
    spec.settings = _settings(a, spec.settings, given)
    return preset, spec


def _settings(a, base, given: set[str]):
    """The preset's learning settings with the flags given on the command line in their place."""
    changes = {fieldname: getattr(a, dest) for fieldname, dest in SETTINGS_FLAGS.items() if dest in given}
    optimizer = changes.get("optimizer", base.optimizer)
    if optimizer != base.optimizer:        # the preset's constants belong to its own optimiser
        changes["c1"] = changes["c2"] = None
    constants = next(o for o in OPTIMIZERS if o.name == optimizer).constants
    for k, (flag, _) in enumerate(constants):
        if flag_dest(flag) in given:
            changes[f"c{k + 1}"] = getattr(a, flag_dest(flag))
    settings = dataclasses.replace(base, **changes)
    note_unused_rate_flags(a, settings)
    return settings


def start_values(preset) -> dict:
    """The values learning starts from: the preset's learned values (per bank 'name@k' with
    banks), as the window resumes them."""
    from engine.learn.banks import display_name
    if preset is None:
        return {}
    if preset.spec.banks is not None:
        return {display_name(name, k): v for k, values in enumerate((preset.banks or {}).get("learned", []))
                for name, v in values.items()}
    return dict(preset.learned)


# what a preset saved from a learn or run --preset keeps of the preset it started from
KEPT = ("source", "source_hz", "source_file", "output", "source_db", "volume_db", "mute", "midi", "insert",
        "plugin_version")


def kept_fields(preset) -> dict:
    return {k: getattr(preset, k) for k in KEPT}


def plugin_controls(spec) -> dict:
    """The preset's plugin control values among its hidden values ({} without a plugin)."""
    if spec.plugin is None:
        return {}
    from app.plugins import registry
    from app.plugins.instance import PluginError
    try:
        info = registry.find(spec.plugin)
    except PluginError as e:
        raise UsageError(f"--preset: {e}") from None
    return {k: v for k, v in spec.hidden.items() if info.control(k) is not None}
