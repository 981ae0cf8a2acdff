"""Test plugins built with the system's gcc: one C file into a shared object, and the LV2 test
bundle of tests/plugins/test_lv2.py (a gain with presets, descriptions of odd plugins)."""
import shutil
import subprocess
from pathlib import Path

import pytest


def shared_object(source: Path, target: Path) -> Path:
    """gcc -shared source -> target; fails the test (never skips) without gcc or on an error."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail(f"gcc is needed to build {source.name} (./dev installs it)")
    done = subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(target), str(source)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return target


def lv2_test_bundle(root: Path) -> Path:
    """root/dualtone-test.lv2: the probe plugin, its descriptions and presets; returns root."""
    from tests.plugins.test_lv2 import MANIFEST, PLUGINS, PRESETS, PROBE_C
    bundle = root / "dualtone-test.lv2"
    bundle.mkdir()
    (bundle / "probe.c").write_text(PROBE_C)
    shared_object(bundle / "probe.c", bundle / "probe.so")
    (bundle / "manifest.ttl").write_text(MANIFEST)
    (bundle / "plugins.ttl").write_text(PLUGINS)
    (bundle / "presets.ttl").write_text(PRESETS)
    return root
