"""The vendored diff.lib reference files are byte-for-byte the published ones: each file's SHA-256
starts with the prefix listed in the reference README's file table (section 4)."""
import hashlib
import re

import pytest

from tests.difflib_cases import REFERENCE

TABLE = dict(re.findall(r"^\| `([^`]+\.csv(?:\.gz)?)` \|.*\| ([0-9a-f]{16}) \|$",
                        (REFERENCE / "README.md").read_text(), flags=re.M))


def test_the_readme_lists_all_ten_files():
    assert len(TABLE) == 10


@pytest.mark.parametrize("name", sorted(TABLE))
def test_reference_file_is_unedited(name):
    assert hashlib.sha256((REFERENCE / name).read_bytes()).hexdigest()[:16] == TABLE[name]


SPTMOD = REFERENCE.parent / "sptmod"
SPTMOD_TABLE = dict(re.findall(r"`(golden_[^`]+\.npz)` ([0-9a-f]{64})",
                               (SPTMOD / "README.md").read_text()))


def test_the_sptmod_readme_lists_both_golden_files():
    assert set(SPTMOD_TABLE) == {"golden_SPTMod24_p0.npz", "golden_SPTMod25_p7.npz"}


@pytest.mark.parametrize("name", sorted(SPTMOD_TABLE))
def test_sptmod_golden_file_is_unedited(name):
    assert hashlib.sha256((SPTMOD / name).read_bytes()).hexdigest() == SPTMOD_TABLE[name]
