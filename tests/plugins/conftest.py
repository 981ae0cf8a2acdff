"""Fixtures for the plugin tests: a LADSPA library of misbehaving plugins built from
crash_plugin.c with the system gcc, the config folder (the probe's cache) in a temporary folder."""

import pytest

from app.plugins import registry
from tests.paths import TESTS
from tests.plugins.build import shared_object

CRASH_SOURCE = TESTS / "plugins" / "crash_plugin.c"
CRASH_IDS = {"crash": "ladspa:4242001", "hang": "ladspa:4242002", "nan": "ladspa:4242003",
             "alloc": "ladspa:4242004"}


@pytest.fixture(autouse=True)
def _private_config(tmp_path, monkeypatch):
    """Probe results go to a config folder of the test's own, never the user's."""
    monkeypatch.setenv("DUALTONE_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture(scope="session")
def crash_library_dir(tmp_path_factory):
    """A folder holding only dualtone_test.so, built from crash_plugin.c."""
    folder = tmp_path_factory.mktemp("ladspa")
    shared_object(CRASH_SOURCE, folder / "dualtone_test.so")
    return folder


@pytest.fixture
def crash_plugins(crash_library_dir, monkeypatch):
    """LADSPA_PATH names only the test library: the catalogue's LADSPA plugins are
    dualtone_crash (4242001), dualtone_hang (4242002), dualtone_nan (4242003) and
    dualtone_alloc (4242004). Yields the ids by kind."""
    monkeypatch.setenv("LADSPA_PATH", str(crash_library_dir))
    registry.forget()
    yield dict(CRASH_IDS)
    registry.forget()
