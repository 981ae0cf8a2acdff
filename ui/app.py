"""Starting the desktop app: a display check, the Qt application, the window, the first preset
(the autosaved session, or the one asked for), and screenshot mode:

    python main.py --preset gain+dc --seconds 5 --screenshot shot.png

learns for S seconds of audio after the preset has compiled, saves the window as a PNG, exits 0."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_USAGE = 0, 2


def has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM"):
        return True               # the user chose a platform (offscreen, xcb, wayland, ...)
    if sys.platform != "linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


NO_DISPLAY = ("no display: $DISPLAY and $WAYLAND_DISPLAY are unset, so the window cannot open. "
              "Run it on a desktop, or try  python main.py --preset gain+dc --seconds 5 --screenshot shot.png "
              "(renders offscreen)  or  python main.py run --headless --seconds 10 ... (no window)")


def run(preset: str | None = None, seconds: float | None = None, screenshot: str | None = None,
        device=None, blocksize: int = 128, sample_rate: float = 48000.0, verbose: bool = False) -> int:
    t_start = time.monotonic()
    if not has_display():
        if screenshot is None:
            print(f"error: {NO_DISPLAY}", file=sys.stderr)
            return EXIT_USAGE
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from app.preset import document as presets
    from app.preset import store
    opening = refused = None
    scripted = screenshot is not None or seconds is not None
    if preset is not None:
        try:                        # read and checked once, here: fail early with the problems listed
            path = store.resolve(preset)
            opening = presets.load(path), path
        except presets.PresetError as e:
            if scripted:            # a script wants the exit code
                print(f"error: {e}", file=sys.stderr)
                return EXIT_USAGE
            refused = e             # a person gets the window, and the problems in its dialog
    if screenshot is not None:
        parent = Path(screenshot).resolve().parent
        if not parent.is_dir():
            print(f"error: --screenshot {screenshot}: the folder {parent} does not exist", file=sys.stderr)
            return EXIT_USAGE

    from pyqtgraph.Qt import QtCore, QtWidgets
    from app.host.quiet import quiet_stderr
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("Dualtone")
    splash = _splash(QtWidgets, QtCore)       # the first start compiles the engine: say so
    with quiet_stderr(not verbose):
        from app.host.stream import list_devices
        from app.session import Session, SessionError
    from app.workspace import Workspace
    from ui.main_window import MainWindow

    config_problem = store.config_problem()
    if config_problem is not None:          # still useful without them: say so, never crash
        print(f"warning: {config_problem}: running without autosave or the recent list", file=sys.stderr)
    try:
        with quiet_stderr(not verbose):       # libjack's probes print to fd 2
            session = Session(sample_rate, blocksize, device=device)
    except SessionError as e:
        splash.close()
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    with quiet_stderr(not verbose):
        try:
            from app.midi.ports import list_ports
            midi_ports = list_ports()
        except Exception:
            midi_ports = []
        devices = list_devices()
    window = MainWindow(Workspace(session), devices, midi_ports,
                        autosave=screenshot is None and config_problem is None, verbose=verbose)
    if config_problem is not None:
        window.say(f"{config_problem}: no autosave, no recent list")
    window.show()
    splash.finish(window)
    result = {"code": EXIT_OK}
    said = {"refused": None}       # the dialog about a refused --preset is not a failed first load
    timing = {}
    # runs once the first paint of the window has been processed
    QtCore.QTimer.singleShot(0, lambda: timing.setdefault("window_shown_s", time.monotonic() - t_start))

    def started():
        if screenshot is None and seconds is None:
            return
        deadline = time.monotonic() + (seconds if seconds is not None else 5.0)

        def finish():
            if time.monotonic() < deadline:
                return
            poll.stop()
            if screenshot is not None:
                window.tick()
                app.processEvents()
                window.grab().save(screenshot, "PNG")
                if not (os.path.exists(screenshot) and os.path.getsize(screenshot) > 0):
                    print(f"error: could not write {screenshot}", file=sys.stderr)
                    result["code"] = 1
                else:
                    print(_summary(window, screenshot, timing))
            window.close()
        poll = QtCore.QTimer(window, interval=50)
        poll.timeout.connect(finish)
        poll.start()

    def wait_for_first_load():
        if window.loaded:
            first.stop()
            timing["learning_s"] = time.monotonic() - t_start
            started()
        elif not window.busy and window.error_dialog is not None \
                and window.error_dialog is not said["refused"]:
            first.stop()                     # the preset failed: report and leave
            print(f"error: {window.error_dialog.informativeText()}", file=sys.stderr)
            result["code"] = EXIT_USAGE
            window.close()
    first = QtCore.QTimer(window, interval=20)
    first.timeout.connect(wait_for_first_load)
    first.start()

    if opening is not None:
        window.apply_preset(*opening)
    elif not window.restore_autosave():
        window.open_preset(store.STARTUP_PRESET)
    if refused is not None:                 # the window is up on the last session: say why not the preset
        window.show_problems("Cannot open preset", f"{refused.origin} was not opened:", refused.problems)
        said["refused"] = window.error_dialog
    app.exec()
    return result["code"]


def _splash(QtWidgets, QtCore):
    """A small window while the engine compiles (15 s on a cold numba cache, under 2 s after)."""
    from pyqtgraph.Qt import QtGui
    pix = QtGui.QPixmap(460, 90)
    pix.fill(QtGui.QColor(30, 30, 34))
    splash = QtWidgets.QSplashScreen(pix)
    splash.setObjectName("splash")
    splash.showMessage("Dualtone\nstarting the audio engine (the first start compiles it: about 15 s)…",
                       QtCore.Qt.AlignmentFlag.AlignCenter, QtGui.QColor(220, 220, 220))
    splash.show()
    QtWidgets.QApplication.processEvents()
    return splash


def _summary(window, screenshot, timing) -> str:
    """One JSON line with what the screenshot shows, for scripts and closing notes."""
    import json
    s = window.session
    losses = window.loss_history.visible_data()[1]
    out = {"screenshot": screenshot, "preset": window.workspace.name,
           "params": s.params(), "hidden": s.hidden(),
           "loss_first": float(losses[0]) if len(losses) else None,
           "loss_last": float(losses[-1]) if len(losses) else None,
           "callbacks": s.counters()["callbacks"], "xruns": s.counters()["xruns"],
           "status": s.status_message, **timing,
           "gui_frame_ms_median": float(sorted(window.frame_ms)[len(window.frame_ms) // 2]) if window.frame_ms else None}
    return json.dumps(out)
