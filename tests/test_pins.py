"""What the tests run with is what pyproject.toml pins: a fresh machine installs exactly this."""
import re
import tomllib
from importlib.metadata import PackageNotFoundError, version

import pytest

from tests.paths import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
REQUIREMENTS = PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"] \
    + PROJECT["optional-dependencies"]["train"]


def test_every_dependency_is_pinned_exactly():
    loose = [r for r in REQUIREMENTS if not re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.+]*", r)]
    assert not loose, f"not pinned with ==: {loose}"


@pytest.mark.parametrize("requirement", REQUIREMENTS)
def test_the_installed_version_is_the_pinned_one(requirement):
    name, pinned = requirement.split("==")
    try:
        installed = version(name)
    except PackageNotFoundError:
        pytest.fail(f"{name} is not installed (./dev test installs .[test,train])")
    # a local build tag (torch's "+cpu") is the same release
    assert installed.split("+")[0] == pinned, f"{name} {installed} installed, {pinned} pinned"
