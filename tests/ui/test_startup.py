"""Starting the window with a preset that cannot be used: a person gets the window (on the last
session or the startup preset) with the problems in its dialog; a script (--seconds/--screenshot) still gets
exit code 2 (tests/ui/test_gui.py). libjack's chatter on fd 2 stays out of the terminal unless
--verbose: at start-up, where `run --headless` opens audio and MIDI, and where the window opens MIDI."""
import json

from pyqtgraph.Qt import QtWidgets

from tests.ui.test_gui import config_dir   # noqa: F401 (fixture)


def _windows() -> set:
    from ui.main_window import MainWindow
    return {w for w in QtWidgets.QApplication.topLevelWidgets() if isinstance(w, MainWindow)}


def _new_window(before: set):
    (window,) = _windows() - before          # the one run() made (earlier tests' may linger)
    return window


def test_a_bad_preset_on_the_command_line_opens_the_window_with_the_problem_dialog(qtbot, config_dir,
                                                                                  tmp_path, monkeypatch):
    import ui.app
    from ui.main_window import MainWindow
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "dualtone-preset", "version": 2, "name": "bad", "circuit": 3}))
    monkeypatch.setattr(QtWidgets.QApplication, "exec", lambda self: 0)     # do not block the test
    before = _windows()
    assert ui.app.run(preset=str(bad), device="virtual") == 0
    window = _new_window(before)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.loaded >= 1 and not window.busy, timeout=60000)
    assert window.error_dialog is not None and window.error_dialog.isVisible()
    assert window.error_dialog.text() == f"{bad} was not opened:"
    assert window.error_dialog.informativeText().startswith("•")
    from app.preset import store
    assert window.workspace.name == store.STARTUP_PRESET     # nothing was lost: the default opened
    window.close()


def test_the_start_shows_a_splash_until_the_window_is_up(qtbot, config_dir, monkeypatch):
    import ui.app
    from ui.main_window import MainWindow
    seen = []
    real = ui.app._splash

    def spy(*args):
        splash = real(*args)
        seen.append((splash.isVisible(), splash.message(), splash))
        return splash
    monkeypatch.setattr(ui.app, "_splash", spy)
    monkeypatch.setattr(QtWidgets.QApplication, "exec", lambda self: 0)
    before = _windows()
    assert ui.app.run(device="virtual") == 0
    window = _new_window(before)
    qtbot.addWidget(window)
    assert seen and seen[0][0] and "starting the audio engine" in seen[0][1]
    splash = seen[0][2]
    qtbot.waitUntil(lambda: not splash.isVisible(), timeout=5000)
    qtbot.waitUntil(lambda: window.loaded >= 1 and not window.busy, timeout=60000)
    window.close()


def test_jack_chatter_on_file_descriptor_2_is_kept_out_unless_verbose(capfd):
    import os
    from app.cli.main import build_parser
    from app.host.quiet import quiet_stderr
    with quiet_stderr():
        os.write(2, b"Cannot connect to server socket err = No such file or directory\n")
    os.write(2, b"after\n")
    with quiet_stderr(enabled=False):                 # --verbose
        os.write(2, b"jack server is not running\n")
    err = capfd.readouterr().err
    assert err == "after\njack server is not running\n"
    assert build_parser().parse_args(["--verbose"]).verbose is True
    assert build_parser().parse_args([]).verbose is False


CHATTER = b"Cannot connect to server socket err = No such file or directory\n"


class _ChattyPort:
    """Stands in for an rtmidi port whose JACK client, opening, writes to fd 2 as libjack does."""
    connected_to = None

    def __init__(self, *args, **kwargs):
        import os
        os.write(2, CHATTER)

    def close(self):
        pass


def test_run_headless_keeps_jack_chatter_out_where_it_opens_audio_and_midi_unless_verbose(capfd, monkeypatch):
    import os
    import app.midi.ports
    import app.session
    from app.cli.main import main
    real_open = app.session.open_stream

    def chatty_open(*args, **kwargs):
        os.write(2, CHATTER)
        return real_open(*args, **kwargs)
    monkeypatch.setattr(app.session, "open_stream", chatty_open)
    monkeypatch.setattr(app.midi.ports, "MidiInput", _ChattyPort)
    run = ["run", "--headless", "--preset", "gain+dc", "--device", "virtual", "--seconds", "0.2", "--quiet",
           "--source", "midi"]
    assert main(run) == 0
    assert CHATTER.decode() not in capfd.readouterr().err
    for verbose in (["--verbose"] + run, run + ["--verbose"]):      # before or after the command
        assert main(verbose) == 0
        assert capfd.readouterr().err.count(CHATTER.decode()) == 2     # the audio stream, the MIDI port


def test_the_window_keeps_jack_chatter_out_when_it_opens_a_midi_port_unless_verbose(qtbot, config_dir, capfd,
                                                                                      monkeypatch):
    from tests.ui.test_gui import make_window
    window = make_window(qtbot)
    assert window.verbose is False
    monkeypatch.setattr(window.workspace, "open_midi", lambda connect=None: _ChattyPort())
    window.change_midi("")
    assert CHATTER.decode() not in capfd.readouterr().err
    assert window.statusBar().currentMessage() == "MIDI: 'Dualtone MIDI in'"
    window.verbose = True                                         # ui/app.run passes --verbose here
    window.change_midi("")
    assert capfd.readouterr().err == CHATTER.decode()
    window.close()


def test_a_script_still_gets_exit_2_and_one_line_for_a_bad_preset(tmp_path, capsys):
    import ui.app
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    shot = tmp_path / "x.png"
    assert ui.app.run(preset=str(bad), seconds=1, screenshot=str(shot), device="virtual") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: not valid JSON") and err.count("\n") == 1
    assert not shot.exists()
