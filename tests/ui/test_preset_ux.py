"""What is open and whether it changed: the preset's description shown, edited and saved; its name
with a modified marker in the title and the preset box; unapplied edits never dropped without
asking (by a preset, or by a ground truth from the menus); a changed circuit asks for new words on
Save As; the circuit panel's notes placed where the word was typed; the compile stage said in words."""
import json

import pytest

from app.preset import document as presets
from app.preset import store
from tests.ui.test_gui import config_dir, make_window, wait_loaded, window   # noqa: F401 (fixtures)


def test_the_description_is_shown_edited_and_saved(qtbot, window, tmp_path):
    shown = window.circuit.description.toPlainText()
    assert shown == presets.load(store.resolve("gain+dc")).description and shown.strip()
    window.circuit.description.setPlainText("Two knobs, one noise: my first capture.")
    assert window.workspace.description == "Two knobs, one noise: my first capture."
    assert window.windowTitle() == "Dualtone — gain+dc •"
    path = tmp_path / "mine.json"
    assert window.save_as(path) == path
    assert json.loads(path.read_text())["description"] == "Two knobs, one noise: my first capture."
    assert window.windowTitle() == "Dualtone — mine"


def test_the_title_and_the_preset_box_name_what_is_open_and_mark_changes(qtbot, window, tmp_path):
    box = window.circuit.factory
    assert window.windowTitle() == "Dualtone — gain+dc" and box.currentText() == "gain+dc"
    window.circuit.circuit.setPlainText("y = gain*x")                   # typed, not applied
    window.circuit.check()
    assert window.windowTitle() == "Dualtone — gain+dc •" and box.currentText() == "gain+dc •"
    window.circuit.circuit.setPlainText("y = gain*x + dc")              # typed back: unchanged
    window.circuit.check()
    assert window.windowTitle() == "Dualtone — gain+dc"
    window.circuit.params.setPlainText("gain = 0 : -1 : 2")
    window.circuit.circuit.setPlainText("y = gain*x")
    window.circuit.request_apply()                                      # applied: still not saved
    wait_loaded(qtbot, window, 2)
    assert window.windowTitle() == "Dualtone — gain+dc •" and box.currentText() == "gain+dc •"
    window.ask_description = lambda current: current                   # (Save As asks: see below)
    window.save_as(tmp_path / "gain-only.json")
    assert window.windowTitle() == "Dualtone — gain-only" and box.currentText() == "gain-only"
    box.activated.emit(box.findText("one-pole"))                        # a factory pick
    wait_loaded(qtbot, window, 3)
    assert box.currentText() == "one-pole" and window.windowTitle() == "Dualtone — one-pole"
    assert box.findText("factory presets…") < 0


def _type_an_edit(window):
    window.circuit.circuit.setPlainText("y = 2*gain*x + dc")
    window.circuit.check()
    assert window.circuit.has_unapplied_edits()


def test_opening_another_preset_over_unapplied_edits_asks_first(qtbot, window):
    asked = []
    _type_an_edit(window)
    window.ask_unapplied_edits = lambda: asked.append("cancel") or "cancel"
    assert window.open_preset("one-pole") is False
    assert asked == ["cancel"] and window.busy is False
    assert window.circuit.circuit.toPlainText() == "y = 2*gain*x + dc"    # the edits are still there
    assert window.session.param_names == ["gain", "dc"]
    assert window.circuit.factory.currentText() == "gain+dc •"

    window.ask_unapplied_edits = lambda: asked.append("apply") or "apply"
    assert window.open_preset("one-pole") is False                      # applies them and stays
    wait_loaded(qtbot, window, 2)
    assert window.session.spec.circuit == "y = 2*gain*x + dc" and not window.circuit.has_unapplied_edits()

    window.circuit.circuit.setPlainText("y = 3*gain*x + dc")
    assert window.circuit.has_unapplied_edits()
    window.ask_unapplied_edits = lambda: asked.append("discard") or "discard"
    assert window.open_preset("one-pole")
    wait_loaded(qtbot, window, 3)
    assert window.session.param_names == ["a"] and asked == ["cancel", "apply", "discard"]


def _use_model(window):
    return window.use_model(str(next(store.FACTORY_DIR.rglob("*.npz"))))


def _use_plugin(window):
    return window.use_plugin("ladspa:1041")                  # ladspa-sdk's low pass


def _use_recording(window):
    from app.recordings.pair import RecordingSpec, sha256_of
    dry, wet = store.FACTORY_DIR / "recordings" / "drive-dry.wav", store.FACTORY_DIR / "recordings" / "drive-wet.wav"
    return window.use_recording(RecordingSpec(str(dry), str(wet), None, sha256_of(dry), sha256_of(wet)), 0)


@pytest.mark.parametrize("use, reads", [(_use_model, "sptmod"), (_use_plugin, "plugin"),
                                        (_use_recording, "recording")])
def test_a_ground_truth_from_the_menu_over_unapplied_edits_asks_first(qtbot, window, use, reads):
    asked = []
    _type_an_edit(window)
    window.ask_unapplied_edits = lambda: asked.append("cancel") or "cancel"
    assert use(window) is False                              # Cancel: nothing changes
    assert not window.busy and window.loaded == 1 and window.session.spec.target is None
    assert window.circuit.circuit.toPlainText() == "y = 2*gain*x + dc"
    assert window.circuit.factory.currentText() == "gain+dc •"

    window.ask_unapplied_edits = lambda: asked.append("apply") or "apply"
    assert use(window) is False                              # Apply: the edits, not the ground truth
    wait_loaded(qtbot, window, 2)
    assert window.session.spec.circuit == "y = 2*gain*x + dc" and window.session.spec.target is None

    window.circuit.circuit.setPlainText("y = 3*gain*x + dc")
    window.ask_unapplied_edits = lambda: asked.append("discard") or "discard"
    assert use(window)                                       # Discard: the ground truth replaces them
    wait_loaded(qtbot, window, 3)
    assert window.session.spec.target == f"y = {reads}"
    assert window.circuit.circuit.toPlainText() == "y = 2*gain*x + dc"
    assert asked == ["cancel", "apply", "discard"]


def test_back_to_the_circuit_from_the_menu_asks_too(qtbot, window):
    assert _use_model(window)
    wait_loaded(qtbot, window, 2)
    _type_an_edit(window)
    window.ask_unapplied_edits = lambda: "cancel"
    window.drop_model()
    assert not window.busy and window.session.spec.model is not None
    assert window.circuit.circuit.toPlainText() == "y = 2*gain*x + dc"


def test_no_question_without_unapplied_edits(qtbot, window):
    window.ask_unapplied_edits = lambda: (_ for _ in ()).throw(AssertionError("asked for nothing"))
    assert window.open_preset("one-pole")
    wait_loaded(qtbot, window, 2)


def test_save_as_after_a_changed_circuit_asks_for_a_new_description(qtbot, window, tmp_path):
    window.circuit.circuit.setPlainText("y = gain*x*x + dc")
    window.circuit.request_apply()
    wait_loaded(qtbot, window, 2)
    asked = []
    window.ask_description = lambda current: asked.append(current) or None      # Cancel
    assert window.save_as(tmp_path / "a.json") is None and not (tmp_path / "a.json").exists()
    window.ask_description = lambda current: "A square law with an offset."
    assert window.save_as(tmp_path / "b.json") == tmp_path / "b.json"
    assert presets.load(tmp_path / "b.json").description == "A square law with an offset."
    assert asked == [presets.load(store.resolve("gain+dc")).description]    # offered the old words
    assert window.circuit.description.toPlainText() == "A square law with an offset."
    # saved: the circuit is no longer "changed", so the next Save As does not ask again
    window.ask_description = lambda current: (_ for _ in ()).throw(AssertionError("asked twice"))
    assert window.save_as(tmp_path / "c.json") == tmp_path / "c.json"


def test_a_new_name_is_a_note_underlined_where_it_was_typed(qtbot, window):
    panel = window.circuit
    panel.circuit.setPlainText("y = gain*x + dc\ny2 = y + wobble")
    c = panel.check()
    assert c.undeclared == ["wobble"] and panel.apply.isEnabled()
    assert panel.error.text() == ("circuit line 2, col 10: new parameter 'wobble' — it will be declared "
                                  "as wobble = 0 : -1 : 1 on Apply")
    assert panel.circuit.marked == (2, 10) and panel.params.marked is None


def test_a_wrong_range_is_one_message(qtbot, window):
    panel = window.circuit
    panel.params.setPlainText("gain = 0 : 2 : -1\ndc = 0")
    panel.check()
    assert panel.error.text() == "params line 1, col 1: 'gain': min 2 is above max -1"
    assert not panel.apply.isEnabled() and panel.circuit.marked is None


def test_the_compile_stage_is_said_in_words_that_fit(qtbot, window):
    panel = window.circuit
    stage = "loading the plugin (probed in a subprocess on first use)"
    panel.set_busy(stage, 0.3)
    assert not panel.progress.isTextVisible() and panel.stage.text() == stage
    assert panel.stage.isVisible() and panel.stage.wordWrap()
    assert panel.stage.heightForWidth(panel.width()) >= panel.stage.fontMetrics().lineSpacing()
    panel.set_busy(None)
    assert not panel.stage.isVisible() and panel.apply.isEnabled()


def test_errors_have_a_fixed_place_and_do_not_push_the_editors(qtbot, window):
    panel = window.circuit
    before = panel.circuit.geometry()
    panel.circuit.setPlainText("y = gain*\ny = (\nz = ]")
    panel.params.setPlainText("gain = 0 : 2 : -1\ndc = x\nq = 1")
    panel.check()
    qtbot.wait(50)
    assert panel.error.text()
    assert panel.circuit.geometry() == before


def test_typing_the_old_circuit_back_over_an_applied_change_still_marks_it(qtbot, window):
    panel = window.circuit
    panel.circuit.setPlainText("y = 2*gain*x + dc")
    panel.request_apply()
    wait_loaded(qtbot, window, 2)
    panel.circuit.setPlainText("y = gain*x + dc")          # the opened text, but not what runs
    panel.check()
    assert panel.has_unapplied_edits() and window.modified()
    assert window.windowTitle() == "Dualtone — gain+dc •"


def test_saving_with_unapplied_edits_keeps_the_marker_and_says_the_file_lacks_them(qtbot, window, tmp_path):
    _type_an_edit(window)
    window.ask_description = lambda current: (_ for _ in ()).throw(AssertionError("asked"))
    out = window.save_as(tmp_path / "mine.json")            # the running circuit did not change: no question
    assert out == tmp_path / "mine.json"
    assert json.loads(out.read_text())["circuit"] == "y = gain*x + dc"     # what runs, not what is typed
    assert window.windowTitle() == "Dualtone — mine •" and window.circuit.factory.currentText() == "mine •"
    assert "without the circuit panel's unapplied edits" in window.statusBar().currentMessage()
    window.circuit.circuit.setPlainText("y = gain*x + dc")   # typed back: nothing left unsaved
    window.circuit.check()
    assert window.windowTitle() == "Dualtone — mine"


def test_save_as_asks_for_words_only_when_the_running_circuit_changed(qtbot, window, tmp_path):
    _type_an_edit(window)                                    # typed only: the file gets the old circuit
    window.ask_description = lambda current: (_ for _ in ()).throw(AssertionError("asked"))
    assert window.save_as(tmp_path / "a.json") == tmp_path / "a.json"
    assert not window.runs_another_circuit()


def test_answering_apply_with_broken_edits_says_so_and_opens_nothing(qtbot, window):
    window.circuit.circuit.setPlainText("y = gain*")
    window.circuit.check()
    window.ask_unapplied_edits = lambda: "apply"
    assert window.open_preset("one-pole") is False
    assert not window.busy and window.session.param_names == ["gain", "dc"]
    assert "problems" in window.statusBar().currentMessage()
    assert window.circuit.circuit.toPlainText() == "y = gain*"


def test_a_new_name_alone_is_a_dim_note_but_beside_an_error_apply_is_off(qtbot, window):
    from ui.theme import DIM, ERROR
    panel = window.circuit
    colour = lambda: panel.error.palette().color(panel.error.foregroundRole()).name()   # noqa: E731
    panel.circuit.setPlainText("y = gain*x + dc + wobble")
    panel.check()
    assert panel.apply.isEnabled() and colour() == DIM
    panel.params.setPlainText("gain = 0 : 2 : -1\ndc = 0")
    panel.check()
    assert "new parameter 'wobble'" in panel.error.text() and "min 2 is above max -1" in panel.error.text()
    assert not panel.apply.isEnabled() and colour() == ERROR
    panel.set_busy(None)                                     # a compile finishing does not turn it back on
    assert not panel.apply.isEnabled()


def test_apply_stays_off_while_compiling_whatever_is_typed(qtbot, window):
    panel = window.circuit
    panel.set_busy("compiling…", 0.5)
    panel.circuit.setPlainText("y = 2*gain*x + dc")
    panel.check()
    assert not panel.apply.isEnabled()
    panel.set_busy(None)
    assert panel.apply.isEnabled()


def test_the_description_is_cut_at_what_a_preset_can_store(qtbot, window, tmp_path):
    from app.preset.fields import TEXT_LIMITS
    limit = TEXT_LIMITS["description"]
    window.circuit.description.setPlainText("x" * (limit + 100))
    assert len(window.circuit.description.toPlainText()) == limit == len(window.workspace.description)
    out = window.save_as(tmp_path / "long.json")
    assert out is not None and len(presets.load(out).description) == limit
