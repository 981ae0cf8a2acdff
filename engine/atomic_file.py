"""Writing a file so that a reader, or a crash, sees either the old file or the whole new one.
Used for presets and model files: nothing a user made is ever half-written."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO, Callable


def _fsync_dir(directory: Path):
    """Make a rename durable (best effort: some systems cannot open or fsync a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:             # exists, but not ours to signal
        return True
    return True


def sweep_stale_temporaries(path) -> int:
    """Remove the temporary files a killed writer of `path` left behind (their writer's process
    is gone); a live writer's file is kept. Returns how many were removed."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    pattern = re.compile(r"\." + re.escape(path.name) + r"\.(\d+)\.[0-9a-f]{8}\.tmp")
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        m = pattern.fullmatch(name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            try:
                os.unlink(folder / name)
                removed += 1
            except OSError:
                pass
    return removed


def atomic_write(path, write: Callable[[BinaryIO], None], overwrite: bool = False) -> Path:
    """write(f) fills a temporary file in the same folder (same file system, so the rename is
    atomic); it is flushed and fsynced, then renamed over `path`. Without overwrite an existing
    file raises FileExistsError, and a hard link is used so that a file appearing meanwhile is
    never clobbered. On any failure the temporary file is removed and `path` is untouched.
    Temporary files of earlier writers that were killed mid-write are swept first."""
    path = Path(path)
    sweep_stale_temporaries(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists")
    folder = path.parent if str(path.parent) else Path(".")
    tmp = folder / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        # 0o666 lets the umask decide the permissions, as for any new file
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"{path} already exists") from None
            except OSError:             # a file system without hard links
                if path.exists():
                    raise FileExistsError(f"{path} already exists") from None
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)
    return path
