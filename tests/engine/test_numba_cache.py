"""Numba's disk cache does not notice a changed constant in another module; the program's cache
folder is named after its sources, so an update never runs stale compiled code."""
import json
import os
import subprocess
import sys

from engine import numba_cache
from tests.paths import REPO

WORDS = "X = {value}\n"
FUNCTION = """from numba import njit
import pkg.words as W

@njit(cache=True)
def read():
    return W.X
"""
RUN = """import json, sys
sys.path.insert(0, {repo!r}); sys.path.insert(0, {tmp!r})
from pathlib import Path
if {configure}:
    from engine import numba_cache
    numba_cache.configure([Path({tmp!r}) / "pkg"])
from pkg.fn import read
print(json.dumps(read()))
"""


def _tree(tmp_path, value):
    pkg = tmp_path / "pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "words.py").write_text(WORDS.format(value=value))
    (pkg / "fn.py").write_text(FUNCTION)


def _read(tmp_path, cache, configure):
    code = RUN.format(repo=str(REPO), tmp=str(tmp_path), configure=configure)
    env = {"NUMBA_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_plain_numba_caching_returns_a_stale_constant_and_the_tagged_folder_does_not(tmp_path):
    _tree(tmp_path, 1)
    assert _read(tmp_path, tmp_path / "plain", False) == 1
    assert _read(tmp_path, tmp_path / "tagged", True) == 1
    _tree(tmp_path, 2)                                  # an update renumbers a word
    assert _read(tmp_path, tmp_path / "plain", False) == 1          # numba alone: stale
    assert _read(tmp_path, tmp_path / "tagged", True) == 2          # a fresh folder per source tree


def test_the_tag_follows_the_sources(tmp_path):
    _tree(tmp_path, 1)
    a = numba_cache.source_tag([tmp_path / "pkg"])
    assert a == numba_cache.source_tag([tmp_path / "pkg"])
    _tree(tmp_path, 2)
    assert numba_cache.source_tag([tmp_path / "pkg"]) != a


def test_the_program_runs_from_a_folder_named_after_its_sources():
    assert os.environ["NUMBA_CACHE_DIR"].endswith(numba_cache.source_tag())
    assert os.path.dirname(os.environ["NUMBA_CACHE_DIR"]) == os.environ[numba_cache.BASE_VARIABLE]
