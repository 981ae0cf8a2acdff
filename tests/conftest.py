"""Shared fixtures. The test command (`./dev test`) starts a JACK dummy server before pytest and
exports its name in DUALTONE_JACK_SERVER (and JACK_DEFAULT_SERVER, which PortAudio and rtmidi use)."""
import os
import shutil
import subprocess

import pytest

LIVE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "live")


def pytest_collection_modifyitems(items):
    """Everything under tests/live/ runs against the real JACK server: marked `live`, so
    `pytest -m "not live"` gives a quick offline pass (the default command runs all)."""
    for item in items:
        if str(item.fspath).startswith(LIVE_DIR + os.sep):
            item.add_marker(pytest.mark.live)


def _jack_answers(name: str) -> bool:
    env = dict(os.environ, JACK_DEFAULT_SERVER=name)
    try:
        return subprocess.run(["jack_lsp"], env=env, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def jack_server() -> str:
    """The name of the running JACK dummy server; fails (never skips) when there is none, because
    the audio and MIDI tests are core tests: run them through `./dev test`."""
    name = os.environ.get("DUALTONE_JACK_SERVER")
    if not name or shutil.which("jack_lsp") is None:
        pytest.fail("no JACK dummy server: run the tests with ./dev test, which starts one")
    if not _jack_answers(name):
        pytest.fail(f"the JACK server '{name}' does not answer")
    return name
