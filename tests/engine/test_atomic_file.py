"""Atomic writes (engine/atomic_file.py) leave nothing behind, even when a writer is killed."""
import os
import signal
import subprocess
import sys

from engine.atomic_file import atomic_write
from tests.paths import REPO

HANGING_WRITER = """
import sys, time
sys.path.insert(0, {repo!r})
from engine.atomic_file import atomic_write
def write(f):
    f.write(b"half")
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
atomic_write({path!r}, write, overwrite=True)
"""


def _temporaries(folder, name):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".tmp"))


def test_a_writer_killed_mid_save_leaves_a_temporary_that_the_next_save_sweeps(tmp_path):
    target = tmp_path / "autosave.json"
    proc = subprocess.Popen([sys.executable, "-c", HANGING_WRITER.format(repo=str(REPO), path=str(target))],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = _temporaries(tmp_path, "autosave.json")
    assert len(left) == 1 and f".{proc.pid}." in left[0]            # what kill -9 leaves
    live = tmp_path / f".autosave.json.{os.getppid()}.0123abcd.tmp"  # a writer still running
    live.write_bytes(b"busy")
    other = tmp_path / f".other.json.{proc.pid}.0123abcd.tmp"        # another file's: not ours
    other.write_bytes(b"x")
    atomic_write(target, lambda f: f.write(b"{}"), overwrite=True)
    assert target.read_bytes() == b"{}"
    assert _temporaries(tmp_path, "autosave.json") == [live.name]
    assert other.exists()


def test_sweeping_never_removes_this_process_own_temporary(tmp_path):
    target = tmp_path / "p.json"
    mine = tmp_path / f".p.json.{os.getpid()}.89abcdef.tmp"
    seen = []

    def write(f):
        seen.append(_temporaries(tmp_path, "p.json"))       # our own temporary is there meanwhile
        f.write(b"x")
    mine.write_bytes(b"")
    atomic_write(target, write, overwrite=True)
    assert mine.exists() and len(seen[0]) == 2
