"""Where Numba keeps compiled code on disk.

Numba's cache keys a compiled function by its own source file only, not by the constants it
reads from other modules — the word indices of the shared tables, the kernel layouts. After an
update that renumbers them, a stale cached audio callback would read the wrong words (seen
here: the live learner stopped converging). So the cache lives in a folder named after a hash of
every Python file under engine/ and app/host/: an update gets a fresh folder, an unchanged tree
reuses its own. Runs when the `engine` package is imported, before anything imports numba.
"""
import hashlib
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOTS = (ROOT / "engine", ROOT / "app" / "host")      # where compiled code and its constants live
BASE_VARIABLE = "DUALTONE_NUMBA_CACHE_BASE"     # the folder the user chose (inherited by children)


def source_tag(roots=SOURCE_ROOTS) -> str:
    """A short hash of the path and content of every .py file under roots."""
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(Path(root).rglob("*.py")):
            digest.update(str(path.relative_to(root.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def configure(roots=SOURCE_ROOTS) -> str:
    """Point NUMBA_CACHE_DIR at <the chosen folder>/<source tag>; return that folder."""
    base = (os.environ.get(BASE_VARIABLE) or os.environ.get("NUMBA_CACHE_DIR")
            or os.path.join(tempfile.gettempdir(), "dualtone-cache"))
    folder = os.path.join(base, source_tag(roots))
    os.environ[BASE_VARIABLE] = base
    os.environ["NUMBA_CACHE_DIR"] = folder
    config = sys.modules.get("numba.core.config")
    if config is not None:                  # numba came first: tell it directly
        config.CACHE_DIR = folder
    return folder
