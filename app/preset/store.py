"""Where presets live: the factory folder, the user's config folder, the recent list and the
autosave (the document format itself is app/preset/document.py)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from engine.atomic_file import atomic_write
from app.config import ConfigUnavailable, config_dir, config_problem  # noqa: F401  (part of this module's API)
from app.preset.document import Preset, PresetError, load, save

FACTORY_DIR = Path(__file__).resolve().parents[2] / "presets"
MAX_RECENT = 10
# What a first start (or a lost autosave) opens: a circuit that learns with the default optimiser
# (Gauss-Newton) and that only it learns quickly. The diff.lib presets keep SGD for parity.
STARTUP_PRESET = "tanh-drive"


# ------------------------------------------------------------------ finding presets

def factory_presets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(FACTORY_DIR.glob("*.json"), key=lambda p: p.stem)}


def resolve(name_or_file: str) -> Path:
    """An existing file path as given, else a factory preset by name."""
    try:
        path = Path(name_or_file).expanduser()
        if path.is_file():
            return path
    except (OSError, RuntimeError, ValueError):   # "~nobody/x", a NUL byte: not a usable path
        pass
    factory = factory_presets()
    if name_or_file in factory:
        return factory[name_or_file]
    raise PresetError([f"no such file and no factory preset of that name; factory presets: "
                       f"{', '.join(factory) or 'none'}"], str(name_or_file))


def _recent_file() -> Path:
    return config_dir() / "recent.json"


def recent() -> list[str]:
    """Recently opened or saved preset files, most recent first (only those that still exist)."""
    try:
        items = json.loads(_recent_file().read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return []                    # missing or corrupt: simply no history
    if not isinstance(items, list):
        return []
    out = []
    for p in items:
        if isinstance(p, str) and p not in out and os.path.isfile(p):
            out.append(p)
    return out[:MAX_RECENT]


def add_recent(path) -> None:
    """Put path first in the recent list. The list is a convenience: a failure to store it is
    ignored so that it never turns a successful save into an error."""
    p = str(Path(path).expanduser().resolve())
    try:
        items = [p] + [q for q in recent() if q != p]
        data = json.dumps(items[:MAX_RECENT], indent=2, ensure_ascii=False).encode("utf-8")
        atomic_write(_recent_file(), lambda f: f.write(data), overwrite=True)
    except (OSError, UnicodeEncodeError):
        pass


def autosave_path() -> Path:
    return config_dir() / "autosave.json"


def write_autosave(preset: Preset) -> None:
    save(preset, autosave_path(), overwrite=True)


def read_autosave() -> Preset | None:
    """The autosaved preset, or None. An invalid autosave is renamed aside (never deleted: it is
    the user's work) so that it does not fail every start."""
    try:
        path = autosave_path()
    except ConfigUnavailable:
        return None
    if not path.exists():
        return None
    try:
        return load(path)
    except PresetError:
        stamp = int(time.time())
        aside = path.with_name(f"autosave.corrupt-{stamp}.json")
        k = 1
        while aside.exists():
            aside, k = path.with_name(f"autosave.corrupt-{stamp}-{k}.json"), k + 1
        try:
            os.replace(path, aside)
        except OSError:
            pass
        return None
