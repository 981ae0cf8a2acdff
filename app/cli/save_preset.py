"""`learn/run --save-preset FILE`: what was learned, written as a preset the window, `run
--preset` and `learn --preset` open. Checked before anything compiles (the folder exists; an
existing file needs --force, as train-sptmod's --out), written after learning (never with a NaN
or Inf value: a diverged run keeps its last finite values or writes nothing)."""
from __future__ import annotations

import math
import os
from pathlib import Path

from app.cli.errors import UsageError


def check_save_path(path: str | None, force: bool = False) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if p.suffix != ".json":
        raise UsageError(f"--save-preset {path}: a preset file ends in .json")
    if not p.resolve().parent.is_dir():
        raise UsageError(f"--save-preset {path}: the folder {p.resolve().parent} does not exist")
    if p.is_dir():
        raise UsageError(f"--save-preset {path}: is a folder")
    if p.exists() and not force:
        raise UsageError(f"--save-preset {path}: the file exists (add --force to replace it)")
    return p


def source_fields(source: str) -> dict:
    """An --input/--source spelling as a preset's audio fields."""
    from engine.sources import SOURCE_CODES as SOURCES
    kind, _, hz = source.partition(":")
    if kind in ("sine", "saw") and hz:
        return {"source": kind, "source_hz": float(hz)}
    if kind in SOURCES:
        return {"source": kind}
    return {"source": "file", "source_file": os.path.abspath(source)}


def save_learned(path: Path, spec, learner, description: str, force: bool = False, **audio) -> str | None:
    """Write spec with the learner's values as a preset; returns None when written, else why not.
    audio: the Preset's other fields (audio, MIDI, insert)."""
    from app.preset import document as presets
    learned = learner.params()
    bad = sorted(n for n, v in learned.items() if not math.isfinite(v))
    if bad:
        return f"'{bad[0]}' is not finite ({learned[bad[0]]})"
    banks = None if spec.banks is None else presets.banks_to_json(spec.banks, learner.bank_params())
    preset = presets.Preset(name=path.stem, description=description, spec=spec,
                            learned={} if banks is not None else learned, banks=banks, **audio)
    try:
        presets.save(preset, path, overwrite=force)
    except (presets.PresetError, OSError) as e:
        return str(e)
    return None
