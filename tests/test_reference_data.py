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
