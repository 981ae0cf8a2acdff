"""Cyclic garbage collection on the GUI thread only, while a window is open.

Python's cyclic collector runs in whichever thread happens to allocate when a threshold is
crossed. When that is a worker thread (a circuit compiling with Numba allocates a great deal), it
frees the Qt widgets caught in reference cycles there, and PySide then deadlocks or crashes against
the GUI thread (seen: a worker inside QObject::~QObject waiting for the GIL while the GUI thread,
holding the GIL, waited for that object's mutex). So while a window is open the automatic collector
is off and a timer on the GUI thread collects whenever a generation is due.
"""
from __future__ import annotations

import gc
import threading

from pyqtgraph.Qt import QtCore

_lock = threading.Lock()
_holders = 0
_was_enabled = True


def _due_generation() -> int | None:
    """The oldest generation whose allocation count passed its threshold (as the automatic
    collector would pick), or None."""
    counts, limits = gc.get_count(), gc.get_threshold()
    for generation in (2, 1, 0):
        if limits[generation] and counts[generation] > limits[generation]:
            return generation
    return None


class GuiThreadCollector(QtCore.QObject):
    """Owned by a window: turns automatic collection off for its lifetime (counted across windows)
    and collects from a GUI-thread timer instead. `stop()` hands collection back."""

    def __init__(self, parent: QtCore.QObject, interval_ms: int = 250):
        super().__init__(parent)
        global _holders, _was_enabled
        with _lock:
            if _holders == 0:
                _was_enabled = gc.isenabled()
                gc.disable()
            _holders += 1
        self.collections = 0
        self._active = True
        self._timer = QtCore.QTimer(self, interval=interval_ms)
        self._timer.timeout.connect(self.collect_if_due)
        self._timer.start()

    def collect_if_due(self) -> int | None:
        generation = _due_generation()
        if generation is not None:
            gc.collect(generation)
            self.collections += 1
        return generation

    def stop(self):
        """Called on the GUI thread as the window closes: a last collection here, then the
        automatic collector comes back once no window holds it."""
        global _holders
        if not self._active:
            return
        self._active = False
        self._timer.stop()
        gc.collect()
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()

