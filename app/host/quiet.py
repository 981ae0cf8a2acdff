"""Keeping the audio libraries' own chatter out of the terminal.

libjack writes "Cannot connect to server socket" and "jack server is not running" straight to
file descriptor 2 whenever PortAudio or the MIDI client probes for a JACK server that is not
there; Python's sys.stderr never sees it. Around those probes the descriptor points at /dev/null
(unless the user asked for --verbose); anything Python raises there still propagates."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager


@contextmanager
def quiet_stderr(enabled: bool = True):
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
