"""The desktop window, offscreen (pytest-qt): it opens on the default preset, the hidden sliders
drive the running session, formula errors are marked where they are, presets round-trip, a bad
preset gives one dialog and touches nothing, and screenshot mode writes a PNG."""
import json
import os
import subprocess
import sys

import pytest

from app.host import layout as H
from app.preset import document as presets
from app.preset import store
from app.session import Session
from app.workspace import Workspace, check_edit, parse_declarations
from engine.learn.learner import Settings
from tests.paths import REPO



@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    d = tmp_path / "config"
    monkeypatch.setenv("DUALTONE_CONFIG_DIR", str(d))
    return d


def make_window(qtbot, device="virtual", autosave=False):
    from ui.main_window import MainWindow
    session = Session(48000, 128, device=device)
    w = MainWindow(Workspace(session), [], [], autosave=autosave)
    qtbot.addWidget(w)
    w.show()
    return w


def wait_loaded(qtbot, w, count=1):
    qtbot.waitUntil(lambda: w.loaded >= count and not w.busy, timeout=60000)


@pytest.fixture
def window(qtbot, config_dir):
    w = make_window(qtbot)
    w.open_preset("gain+dc")
    wait_loaded(qtbot, w)
    yield w
    w.close()


def test_a_first_start_opens_a_preset_that_learns_with_the_default_optimizer(qtbot, config_dir):
    from engine.learn.optimizers import DEFAULT
    w = make_window(qtbot)
    assert not w.restore_autosave()          # nothing saved yet: the app then opens the startup preset
    w.open_preset(store.STARTUP_PRESET)
    wait_loaded(qtbot, w)
    assert DEFAULT == "gauss-newton" and w.session.learner.settings.optimizer == DEFAULT
    assert w.learning.optimizer.currentText() == DEFAULT
    hidden = w.session.hidden()
    start = {sp.name: sp.init for sp in presets.load(store.resolve(store.STARTUP_PRESET)).spec.params}
    assert all(hidden[n] != start[n] for n in hidden)                     # something to learn ...
    qtbot.waitUntil(lambda: all(abs(w.session.params()[n] - hidden[n]) < 1e-3 * max(1.0, abs(hidden[n]))
                                for n in hidden), timeout=20000)          # ... and it is learned
    w.close()


def test_gain_and_dc_opens_with_its_circuit_knobs_and_hidden_values(qtbot, config_dir):
    w = make_window(qtbot)
    w.open_preset("gain+dc")
    wait_loaded(qtbot, w)
    assert w.windowTitle() == "Dualtone — gain+dc"
    assert w.circuit.circuit.toPlainText() == "y = gain*x + dc"
    assert set(w.hidden.rows) == {"gain", "dc"} and set(w.learned.rows) == {"gain", "dc"}
    assert w.session.running and w.session.hidden() == {"gain": 0.5, "dc": 0.5}
    w.close()


def test_the_learned_bars_follow_telemetry_and_reach_the_hidden_values(qtbot, window):
    qtbot.waitUntil(lambda: abs(window.session.params()["gain"] - 0.5) < 1e-3, timeout=30000)
    qtbot.wait(200)
    bar = window.learned.rows["gain"][0]
    assert bar.hidden == 0.5 and abs(bar.learned - 0.5) < 1e-2
    t, loss = window.loss_history.visible_data()
    assert len(loss) > 10 and loss[-1] < loss[0] * 1e-3


def test_moving_a_hidden_slider_changes_the_running_sessions_hidden_value(qtbot, window):
    slider = window.hidden.rows["gain"][0]
    knob = window.hidden.knobs["gain"]
    slider.setValue(900)
    expected = knob.value_at(0.9)
    assert window.session.hidden()["gain"] == pytest.approx(expected)
    learner_slot = window.session.memory.active
    k = window.session.learner.layout.hidden.index("gain")
    assert learner_slot.hidden_goal[k] == pytest.approx(expected)      # what the callback glides to
    # and the learner follows it live
    qtbot.waitUntil(lambda: abs(window.session.params()["gain"] - expected) < 1e-2, timeout=30000)


def test_typing_a_hidden_value_clamps_it_to_the_declared_range(qtbot, window):
    field = window.hidden.rows["dc"][1]
    qtbot.mouseDClick(field, __import__("pyqtgraph.Qt", fromlist=["QtCore"]).QtCore.Qt.MouseButton.LeftButton)
    assert not field.isReadOnly()
    field.setText("123")
    field.returnPressed.emit()
    knob = window.hidden.knobs["dc"]
    assert window.session.hidden()["dc"] == knob.hi


def test_formula_errors_are_shown_inline_at_their_line_and_column(qtbot, window):
    panel = window.circuit
    panel.circuit.setPlainText("y = gain*x + dc\nz = y + foo(x)")
    c = panel.check()
    assert c.spec is None
    p = c.problems[0]
    assert (p.where, p.line) == ("circuit", 2)
    assert panel.circuit.marked == (p.line, p.col)
    assert "line 2" in panel.error.text() and "foo" in panel.error.text()
    panel.circuit.setPlainText("y = gain*x + dc")
    assert panel.check().spec is not None and panel.circuit.marked is None and panel.error.text() == ""


def test_applying_an_edited_circuit_swaps_it_live_and_declares_new_names(qtbot, window):
    panel = window.circuit
    panel.circuit.setPlainText("y = gain*x + dc + bias")
    panel.request_apply()
    assert "bias = 0 : -1 : 1" in panel.params.toPlainText()
    wait_loaded(qtbot, window, 2)
    assert window.session.param_names == ["gain", "dc", "bias"]
    assert set(window.hidden.rows) == {"gain", "dc", "bias"}
    assert window.session.running


def test_declarations_parse_and_report_their_line():
    specs, problems = parse_declarations("gain = 0 : -1 : 2\nfc = 1000 : 20 : 20000 log\nq = zz")
    assert [s.name for s in specs] == ["gain", "fc"] and specs[1].log and specs[0].hi == 2
    assert len(problems) == 1 and problems[0].line == 3
    c = check_edit("y = a*x", "", "a = 5 : 0 : 1", {}, Settings(), 48000)
    assert c.spec is None and "outside" in c.problems[0].message


def test_save_then_open_restores_everything(qtbot, window, tmp_path):
    s = window.session
    window.hidden.set_value("gain", 0.8)
    s.configure(optimizer="adam", lr=0.003, window=16)
    s.set_output("error")
    window.workspace.midi.map_cc(74, "hidden:gain")
    mappings = window.workspace.midi.mappings
    assert mappings[74] == "hidden:gain"
    qtbot.wait(300)
    path = tmp_path / "mine.json"
    assert window.save_as(path) == path
    saved = presets.load(path)
    learned = saved.learned
    assert saved.spec.hidden["gain"] == 0.8 and saved.spec.settings.optimizer == "adam"
    assert saved.midi == mappings and saved.output == "error"
    # change everything, then open the file again
    window.open_preset("one-pole")
    wait_loaded(qtbot, window, 2)
    assert window.session.param_names == ["a"]
    window.open_preset(path)
    wait_loaded(qtbot, window, 3)
    assert window.session.param_names == ["gain", "dc"]
    assert window.session.hidden()["gain"] == 0.8
    st = window.session.learner.settings
    assert (st.optimizer, st.lr, st.window) == ("adam", 0.003, 16)
    assert window.session.output == "error"
    assert window.workspace.midi.mappings == mappings
    assert window.learning.optimizer.currentText() == "adam"
    assert str(path) in store.recent()
    # the learned values were restored (before learning moves them again): compare the reset values
    slot = window.session.memory.active
    assert [slot.init[k] for k in range(2)] == [learned["gain"], learned["dc"]]


def test_save_as_asks_before_replacing_a_file(qtbot, window, tmp_path, monkeypatch):
    path = tmp_path / "keep.json"
    path.write_text("precious")
    monkeypatch.setattr(window, "confirm_overwrite", lambda p: False)
    assert window.save_as(path) is None
    assert path.read_text() == "precious"
    monkeypatch.setattr(window, "confirm_overwrite", lambda p: True)
    assert window.save_as(path) == path
    assert presets.load(path).name == "keep"


BAD_PRESETS = {
    "corrupt": b"{\"format\": \"dualtone-preset\", \"version\": 2, \"circuit\": ",
    "truncated": None,          # filled from a real preset below
    "wrong version": json.dumps({"format": "dualtone-preset", "version": 99}).encode(),
    "wrong types": json.dumps({"format": "dualtone-preset", "version": 2, "name": 5, "circuit": ["y"],
                               "params": "gain"}).encode(),
    "huge array": None,
    "forbidden syntax": None,
}


def _bad(kind: str) -> bytes:
    good = json.loads((store.FACTORY_DIR / "gain+dc.json").read_text())
    if kind == "truncated":
        return (store.FACTORY_DIR / "gain+dc.json").read_bytes()[:200]
    if kind == "huge array":
        good["params"] = [{"name": f"p{k}", "init": 0.0, "min": -1.0, "max": 1.0} for k in range(100000)]
        return json.dumps(good).encode()
    if kind == "forbidden syntax":
        good["circuit"] = "y = __import__('os').system('rm -rf /')"
        return json.dumps(good).encode()
    return BAD_PRESETS[kind]


@pytest.mark.parametrize("kind", list(BAD_PRESETS))
def test_a_bad_preset_gives_one_dialog_and_changes_nothing(qtbot, window, tmp_path, kind):
    folder = tmp_path / "presets"
    folder.mkdir()
    bad = folder / "bad.json"
    bad.write_bytes(_bad(kind))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    spec_before = window.session.spec
    assert window.open_preset(bad) is False
    assert window.error_dialog is not None and window.error_dialog.isVisible()
    assert window.error_dialog.informativeText().startswith("•")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert window.session.spec is spec_before and window.session.running


def test_autosave_restores_the_learned_state_on_the_next_start(qtbot, config_dir):
    w = make_window(qtbot, autosave=True)
    w.open_preset("gain+dc")
    wait_loaded(qtbot, w)
    w.hidden.set_value("gain", 0.25)
    # converged, not just passing 0.25 on the way (it kept moving before the close, 3e-3 once)
    qtbot.waitUntil(lambda: abs(w.session.params()["gain"] - 0.25) < 1e-5, timeout=30000)
    w.close()                                       # autosaves on exit
    saved = store.read_autosave()
    assert saved is not None and saved.spec.hidden["gain"] == 0.25
    assert abs(saved.learned["gain"] - 0.25) < 1e-3
    w2 = make_window(qtbot)
    assert w2.restore_autosave()
    wait_loaded(qtbot, w2)
    assert w2.session.hidden()["gain"] == 0.25
    assert w2.session.memory.active.init[0] == saved.learned["gain"]
    w2.close()


def test_the_autosave_timer_writes_while_running(qtbot, config_dir):
    from ui.main_window import MainWindow
    session = Session(48000, 128, device="virtual")
    w = MainWindow(Workspace(session), [], [], autosave_seconds=0.2, autosave=True)
    qtbot.addWidget(w)
    w.open_preset("gain")
    wait_loaded(qtbot, w)
    qtbot.waitUntil(lambda: store.autosave_path().exists(), timeout=5000)
    assert store.read_autosave().name == "gain"
    w.close()


def test_space_toggles_learning_but_not_while_typing_a_formula(qtbot, window):
    from pyqtgraph.Qt import QtCore
    window.activateWindow()
    window.learning.run.setFocus()
    window.run_action.trigger()
    assert window.session.learner.settings.learning is False
    window.run_action.trigger()
    assert window.session.learner.settings.learning is True
    window.circuit.circuit.setFocus()
    qtbot.keyClick(window.circuit.circuit, QtCore.Qt.Key.Key_Space)
    assert window.session.learner.settings.learning is True


def test_screenshot_mode_writes_a_png_and_reports_what_it_learned(tmp_path):
    shot = tmp_path / "shot.png"
    env = dict(os.environ, DUALTONE_CONFIG_DIR=str(tmp_path / "cfg"))
    env.pop("DISPLAY", None)
    env.pop("QT_QPA_PLATFORM", None)                  # the app must pick offscreen by itself
    r = subprocess.run([sys.executable, str(REPO / "main.py"), "--preset", "gain+dc", "--seconds", "2",
                        "--screenshot", str(shot), "--device", "virtual"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert abs(summary["params"]["gain"] - 0.5) < 1e-2 and abs(summary["params"]["dc"] - 0.5) < 1e-2
    assert summary["loss_last"] < summary["loss_first"] * 1e-3
    assert not (tmp_path / "cfg" / "autosave.json").exists()     # a screenshot run keeps your session


def test_without_a_display_the_window_says_why_and_how_to_go_on(tmp_path):
    env = dict(os.environ, DUALTONE_CONFIG_DIR=str(tmp_path / "cfg"))
    for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(k, None)
    r = subprocess.run([sys.executable, str(REPO / "main.py")], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert "no display" in r.stderr and "--screenshot" in r.stderr and r.stderr.count("\n") == 1


def test_an_unknown_preset_is_one_line_and_exit_2(tmp_path):
    env = dict(os.environ, DUALTONE_CONFIG_DIR=str(tmp_path / "cfg"))
    r = subprocess.run([sys.executable, str(REPO / "main.py"), "--preset", "no-such-thing", "--seconds", "1",
                        "--screenshot", str(tmp_path / "x.png")], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "no-such-thing" in r.stderr and "gain+dc" in r.stderr
    assert not (tmp_path / "x.png").exists()


def test_midi_learn_from_the_slider_maps_a_controller_that_then_turns_the_knob(qtbot, window):
    window.hidden.start_midi_learn("gain")
    window.tick()
    assert window.hidden.rows["gain"][2].text() == "learn…"
    window.workspace.midi.feed_bytes(bytes([0xB0, 20, 127]), 0.0)      # CC 20 moved: mapped and applied
    assert window.workspace.midi.mappings[20] == "hidden:gain"
    assert window.session.hidden()["gain"] == window.hidden.knobs["gain"].hi
    window.workspace.midi.feed_bytes(bytes([0xB0, 20, 0]), 0.0)
    window.tick()
    assert window.session.hidden()["gain"] == window.hidden.knobs["gain"].lo
    assert window.hidden.rows["gain"][0].value() == 0                  # the slider follows the controller
    assert window.hidden.rows["gain"][2].text() == "CC 20"


def test_learning_controls_change_the_running_learner(qtbot, window):
    lc = window.learning
    lc.optimizer.setCurrentText("adam")
    lc.loss.setCurrentText("mae")
    lc.window.setValue(8)
    lc.lr.setValue(lc.lr_position(1e-4))
    qtbot.waitUntil(lambda: not window.session.settings_pending, timeout=60000)   # their kernel, swapped in
    st = window.session.learner.settings
    assert (st.optimizer, st.loss, st.window) == ("adam", "mae", 8)
    assert st.lr == pytest.approx(1e-4, rel=0.02)
    window.session.set_hidden("gain", 0.9)
    qtbot.wait(100)
    lc.reset.click()
    slot = window.session.memory.active
    assert list(slot.init[:2]) == [0.0, 0.0]                             # back to the declarations


def test_gauss_newton_from_the_dropdown_greys_out_the_learning_rate(qtbot, window):
    lc = window.learning
    lc.lr.setValue(lc.lr_position(1e-2))
    lc.optimizer.setCurrentText("gauss-newton")
    qtbot.waitUntil(lambda: not window.session.settings_pending, timeout=60000)   # their kernel, swapped in
    st = window.session.learner.settings
    assert st.optimizer == "gauss-newton" and st.lr == pytest.approx(1e-2, rel=0.02)
    assert not lc.lr.isEnabled() and "sets its own step" in lc.lr.toolTip()
    window.session.set_hidden("gain", 0.9)
    qtbot.waitUntil(lambda: abs(window.session.params()["gain"] - 0.9) < 1e-6, timeout=5000)
    lc.optimizer.setCurrentText("sgd")                  # one click back to a rate
    qtbot.waitUntil(lambda: not window.session.settings_pending, timeout=60000)   # their kernel, swapped in
    assert lc.lr.isEnabled() and window.session.learner.settings.optimizer == "sgd"


def test_the_spectral_loss_from_the_dropdown_compiles_the_circuit_again_and_keeps_what_it_learned(qtbot, window):
    """Most kernels are compiled without the spectral loss's bank (it costs compile time): choosing
    it compiles the same circuit with it in the background; the parameters carry over, and going
    back to mse needs no compile."""
    qtbot.waitUntil(lambda: window.session.params()["gain"] != 0.0, timeout=5000)
    loaded = window.loaded
    assert not window.session.learner.spectral_ready
    window.learning.loss.setCurrentText("spectral")
    wait_loaded(qtbot, window, loaded + 1)
    learner = window.session.learner
    assert learner.spectral_ready and learner.settings.loss == "spectral"
    assert window.learning.loss.currentText() == "spectral"
    assert "compiled for the spectral loss" in window.statusBar().currentMessage()
    window.learning.loss.setCurrentText("mse")
    qtbot.waitUntil(lambda: not window.session.settings_pending, timeout=60000)   # their kernel, swapped in
    assert window.session.learner is learner and learner.settings.loss == "mse"


def test_the_scope_shows_what_the_spectral_loss_compares_while_it_learns(qtbot, window):
    """pitch-chase learns a pitch with the spectral loss: under the spectra, the bank's two
    distributions and their cumulative curves, whose shaded gap (W1) closes as the pitch is
    found, and what the pitch lock does; another loss hides that plot."""
    window.open_preset("pitch-chase")
    wait_loaded(qtbot, window, 2)
    bank = window.scope.bank
    qtbot.waitUntil(lambda: bank.isVisible() and bank.w1 < 0.05, timeout=30000)
    curves = bank.curves()
    _, ct = curves["target cumulative"]
    _, cl = curves["learned cumulative"]
    assert ct[-1] == pytest.approx(1.0, abs=1e-9) and cl[-1] == pytest.approx(1.0, abs=1e-9)
    assert max(curves["target"][1].max(), curves["learned"][1].max()) == pytest.approx(1.0)
    assert "W1 = " in bank.label()
    # the pitch's frequency-locked loop holds it: the label says so, at the 440 Hz target's bin
    # (the lock's first engaged blocks still read a few cents: the label may say "on" a block
    # before the error is in; offline the same run reads 5.2 cents at engagement, 0.0 a fifth of
    # a second later)
    qtbot.waitUntil(lambda: "pitch lock: on" in bank.label()
                    and abs(window.session.frequency_lock().error_cents) < 5.0, timeout=10000)
    lock = window.session.frequency_lock()
    assert lock.engaged and lock.bin_hz == pytest.approx(440.0, rel=0.03) and abs(lock.error_cents) < 5.0
    assert f"at {lock.bin_hz:.0f} Hz" in bank.label()
    window.learning.loss.setCurrentText("mse")
    qtbot.waitUntil(lambda: not bank.isVisible(), timeout=5000)
    assert window.session.frequency_lock() is None


def test_output_and_source_choices_reach_the_callback(qtbot, window):
    window.audio.output.setCurrentText("error")
    assert window.session.memory.ctl[H.C_OUTPUT_MODE] == H.OUTPUT_MODES["error"]
    window.change_source("sine", 440.0)
    assert window.session.memory.ctl[H.C_SOURCE] == H.SOURCES["sine"]
    assert window.session.memory.ctl[H.C_SOURCE_HZ] == 440.0
    window.change_source("input", 440.0)          # the virtual clock has no input: falls back, says so
    assert window.session.memory.ctl[H.C_SOURCE] == H.SOURCES["lcg-noise"]
    assert "input" in window.statusBar().currentMessage()


def test_the_bank_view_shows_the_banks_lights_the_active_one_and_moves_a_boundary(qtbot, window, tmp_path):
    window.open_preset("lactose-asymmetric")
    wait_loaded(qtbot, window, 2)
    view = window.bank_view
    assert view.isVisible() and view.boundaries == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert [line.movable for line in view.lines] == [False, True, True, True, False]
    assert set(window.learned.rows) == {f"{p}@{k}" for p in "ad" for k in range(4)}
    qtbot.waitUntil(lambda: window.session.counters()["callbacks"] > 200, timeout=20000)
    qtbot.wait(100)
    active = int(window.session.learner.active_bank)
    lo, hi = view.lit.getRegion()
    assert (lo, hi) == (view.boundaries[view.active], view.boundaries[view.active + 1])
    assert view.boundaries[view.active] <= view.now.value() <= view.boundaries[view.active + 1]
    xs, ys = view.step_data()
    assert len(xs) == 8                               # a step per bank for the chosen parameter
    window.session.set_learning(False)                # hold the values still to compare them
    before = window.session.params()
    view.lines[2].setValue(0.1)                       # drag the middle boundary
    view._dragged()
    wait_loaded(qtbot, window, 3)
    assert window.session.spec.banks.boundaries == [-1.0, -0.5, 0.1, 0.5, 1.0]
    assert window.circuit.banks.text() == "-1, -0.5, 0.1, 0.5, 1"
    slot = window.session.memory.active
    names = window.session.param_names
    assert [slot.init[k] for k in range(len(names))] == [before[n] for n in names]   # learning kept
    # and banks survive a save -> open round trip
    path = tmp_path / "banked.json"
    window.save_as(path)
    window.open_preset("gain+dc")
    wait_loaded(qtbot, window, 4)
    assert not window.bank_view.isVisible()
    window.open_preset(path)
    wait_loaded(qtbot, window, 5)
    assert window.session.spec.banks.boundaries == [-1.0, -0.5, 0.1, 0.5, 1.0]
    assert window.bank_view.isVisible()


def test_banks_typed_in_the_circuit_panel_are_checked_and_applied(qtbot, window):
    panel = window.circuit
    panel.banks.setText("0.5, 0.2")
    c = panel.check()
    assert c.spec is None and "strictly increasing" in panel.error.text()
    panel.banks.setText("-1, 0, 1")
    panel.condition.setCurrentText("input")
    panel.bank_mode.setCurrentText("exact")
    panel.request_apply()
    wait_loaded(qtbot, window, 2)
    b = window.session.spec.banks
    assert (b.boundaries, b.condition, b.mode) == ([-1.0, 0.0, 1.0], "input", "exact")
    assert window.session.param_names == ["gain@0", "gain@1", "dc@0", "dc@1"]


def test_garbage_cycles_are_collected_on_the_gui_thread_only_while_a_window_is_open(qtbot, config_dir):
    import gc
    import threading
    import weakref

    class Node:
        pass

    assert gc.isenabled()
    w = make_window(qtbot)
    assert not gc.isenabled(), "a worker thread could collect the window's widgets"
    collected_on = []
    node = Node()
    node.me = node                       # a cycle only the cyclic collector frees
    weakref.finalize(node, lambda: collected_on.append(threading.current_thread().name))
    del node
    alive = [[] for _ in range(gc.get_threshold()[0] + 10)]    # enough to make a collection due
    qtbot.waitUntil(lambda: bool(collected_on), timeout=5000)
    assert collected_on == [threading.main_thread().name] and w.collector.collections >= 1
    del alive
    w.close()
    assert gc.isenabled()


GOLDEN_MODEL = REPO / "tests" / "reference" / "sptmod" / "golden_SPTMod25_p7.npz"


def test_an_sptmod_model_becomes_the_ground_truth_with_its_controls_as_knobs(qtbot, window, tmp_path):
    from engine.sptmod.file import load_model
    model = load_model(GOLDEN_MODEL)
    assert window.use_model(GOLDEN_MODEL)
    wait_loaded(qtbot, window, 2)
    s = window.session
    assert s.spec.target == "y = sptmod" and s.spec.model_sha256 == model.sha256
    assert set(window.hidden.knobs) == set(model.control_names)
    slider = window.hidden.rows["p3"][0]
    slider.setValue(slider.maximum())                      # the knob turns the model's control
    assert s.hidden()["p3"] == 1.0 and s.memory.active.processor.stream.controls[3] == 1.0
    # an edited learnable circuit keeps the model and where its knobs are
    window.circuit.circuit.setPlainText("y = gain*x + dc + bias")
    window.circuit.request_apply()
    wait_loaded(qtbot, window, 3)
    assert s.spec.model_sha256 == model.sha256 and s.hidden()["p3"] == 1.0
    # saved and reopened: the same model, the same knob
    path = tmp_path / "neural.json"
    window.workspace.save(path)
    window.drop_model()
    wait_loaded(qtbot, window, 4)
    assert s.spec.model is None and "p3" not in s.hidden()
    assert window.open_preset(path)
    wait_loaded(qtbot, window, 5)
    assert s.spec.model_sha256 == model.sha256 and s.hidden()["p3"] == 1.0


def test_a_file_that_is_not_a_model_gives_one_dialog_and_changes_nothing(qtbot, window, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    before = window.session.spec
    assert not window.use_model(bad)
    assert window.error_dialog is not None and "not a usable SPTMod model" in window.error_dialog.text()
    assert window.session.spec is before


def test_the_sptmod_compressor_preset_plays_its_model_in_the_window(qtbot, window):
    assert window.open_preset("sptmod-compressor")
    wait_loaded(qtbot, window, 2)
    s = window.session
    assert s.spec.model is not None and s.param_names == ["threshold", "ratio"]
    c0 = s.counters()["callbacks"]
    qtbot.waitUntil(lambda: s.counters()["callbacks"] > c0 + 100, timeout=10000)
    assert s.counters()["model_restarts"] == 0 and s.counters()["nonfinite_out"] == 0
    assert window.circuit.target.toPlainText() == "y = sptmod"
    notes = [w.text() for w in window.hidden.findChildren(type(window.status_label))]
    assert any("compressor-sptmod25.npz has no controls" in t for t in notes)


def test_an_sptmod_insert_on_the_output_has_knobs_and_is_saved_with_the_preset(qtbot, window, tmp_path):
    from engine.sptmod.file import load_model
    model = load_model(GOLDEN_MODEL)
    assert window.use_insert(GOLDEN_MODEL)
    s = window.session
    assert s.insert()["sha256"] == model.sha256
    slider = window.hidden.rows["insert:p2"][0]              # beside the hidden knobs
    assert {"gain", "dc", "insert:p2"} <= set(window.hidden.rows)
    slider.setValue(0)
    assert s.insert()["controls"]["p2"] == 0.0
    window.workspace.midi.map_cc(30, "insert:p2")            # MIDI-learnable like any knob
    window.workspace.save(tmp_path / "with-insert.json")
    assert window.use_insert(None) and s.insert() is None and "insert:p2" not in window.hidden.rows
    assert window.open_preset(tmp_path / "with-insert.json")
    wait_loaded(qtbot, window, 2)
    assert s.insert()["controls"]["p2"] == 0.0 and window.workspace.midi.mappings[30] == "insert:p2"
    assert "insert:p2" in window.hidden.rows


def test_a_preset_named_at_start_is_read_and_checked_once(qtbot, config_dir, monkeypatch, tmp_path):
    """ui/app.run reads the preset (to fail early) and hands the window what it read: no second
    resolve/load on the way down (a file changed in between would otherwise be a different preset)."""
    import ui.app
    from app.preset import document
    reads = []
    real_load = document.load
    monkeypatch.setattr(document, "load", lambda path: reads.append(str(path)) or real_load(path))
    shot = tmp_path / "shot.png"
    assert ui.app.run(preset="gain", seconds=0.3, screenshot=str(shot), device="virtual") == 0
    assert shot.stat().st_size > 0
    assert len(reads) == 1 and reads[0].endswith("gain.json")


def test_the_app_starts_with_an_unusable_config_folder_and_says_so(tmp_path):
    env = dict(os.environ, DUALTONE_CONFIG_DIR="/proc/nope", QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, str(REPO / "main.py"), "--seconds", "0.3", "--screenshot",
                        str(tmp_path / "x.png"), "--device", "virtual"], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == ["warning: the config folder /proc/nope cannot be used (No such file or "
                        "directory): running without autosave or the recent list"]
    assert json.loads(r.stdout.splitlines()[-1])["preset"] == store.STARTUP_PRESET
