"""The user's config folder (presets' recent list and autosave, the plugin probe's cache):
DUALTONE_CONFIG_DIR, else $XDG_CONFIG_HOME/dualtone, else ~/.config/dualtone."""
from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    env = os.environ.get("DUALTONE_CONFIG_DIR")
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if env:
        d = Path(env)
    elif xdg and os.path.isabs(xdg):     # the XDG spec says to ignore a relative value
        d = Path(xdg) / "dualtone"
    else:
        d = Path.home() / ".config" / "dualtone"
    try:
        d.mkdir(parents=True, exist_ok=True)
        if not os.access(d, os.W_OK | os.X_OK):
            raise PermissionError(13, "not writable")
    except OSError as e:
        raise ConfigUnavailable(f"the config folder {d} cannot be used ({e.strerror or e})") from None
    return d


class ConfigUnavailable(OSError):
    """The config folder cannot be created or written: no autosave and no recent list."""


def config_problem() -> str | None:
    """Why the config folder cannot be used, in one line; None when it can."""
    try:
        config_dir()
    except ConfigUnavailable as e:
        return str(e)
    return None
