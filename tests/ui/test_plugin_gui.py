"""Plugins in the window, offscreen (pytest-qt): the browser lists, searches, describes and probes
(on a thread, the selected plugin only), a plugin becomes the ground truth or the output insert
with its controls as knobs, a knob's widget follows its kind (slider, stepped slider, check box,
combo box) and MIDI learn turns every kind, an edited circuit keeps the plugin, an LV2 plugin's
factory preset is where its knobs start, and an unknown or unusable plugin gives one dialog and
changes nothing."""
import math
import time

import pytest
from pyqtgraph.Qt import QtWidgets

from app.knobs import KnobBank, KnobSpec
from app.midi.control import MidiControl
from app.plugins import registry
from app.plugins.probe import ProbeResult
from app.session import Session
from app.workspace import Workspace
from tests.paths import REPO
from tests.plugins.build import lv2_test_bundle

LPF = "ladspa:1041"                  # ladspa-sdk's Simple Low Pass Filter
SR = 48000.0
GOLDEN_MODEL = REPO / "tests" / "reference" / "sptmod" / "golden_SPTMod25_p7.npz"


@pytest.fixture(scope="module")
def shared_config(tmp_path_factory):
    """One config folder for the module's windows: a plugin is probed once, then cached there."""
    return tmp_path_factory.mktemp("config")


@pytest.fixture
def config_dir(shared_config, monkeypatch):
    monkeypatch.setenv("DUALTONE_CONFIG_DIR", str(shared_config))
    return shared_config


@pytest.fixture(scope="module")
def preset_bundle(tmp_path_factory):
    """A folder holding dualtone-test.lv2 (tests/plugins/test_lv2.py's: the probe plugin, a gain
    with the presets Loud (gain 2.5) and Quiet (gain 0.25), built with gcc)."""
    return lv2_test_bundle(tmp_path_factory.mktemp("lv2"))


@pytest.fixture
def with_presets(preset_bundle, monkeypatch):
    """LV2_PATH holds our bundle and the system's; the catalogue is read again with it, and again
    without it afterwards."""
    monkeypatch.setenv("LV2_PATH", f"{preset_bundle}:/usr/lib/lv2")
    registry.forget()
    yield preset_bundle
    registry.forget()


def make_window(qtbot):
    from ui.main_window import MainWindow
    w = MainWindow(Workspace(Session(48000, 128, device="virtual")), [], [], autosave=False)
    qtbot.addWidget(w)
    w.show()
    return w


def wait_loaded(qtbot, w, count):
    qtbot.waitUntil(lambda: w.loaded >= count and not w.busy, timeout=60000)


@pytest.fixture
def window(qtbot, config_dir):
    w = make_window(qtbot)
    w.open_preset("gain+dc")
    wait_loaded(qtbot, w, 1)
    yield w
    w.close()


def browser(qtbot, **kw):
    from ui.panels.plugin_browser import PluginBrowser
    b = PluginBrowser(SR, **kw)
    qtbot.addWidget(b)
    b.show()
    return b


def a_toggled_plugin():
    """A usable plugin with a toggled control (a stereo LADSPA one first: it also has a channel
    choice and, for TAP Reverberator, an integer control)."""
    found = [i for i in registry.catalogue(SR) if not i.unusable and any(c.toggled for c in i.controls)]
    found.sort(key=lambda i: (i.api != "ladspa", len(i.audio_outputs) != 2, i.id))
    # ./dev installs tap-plugins (TAP Reverberator) and swh-lv2, which have toggled controls
    assert found, "no usable plugin with a toggled control: run the tests through ./dev test"
    return found[0]


# ---------------------------------------------------------------- the browser

def test_the_browser_lists_searches_describes_and_probes_the_selected_plugin(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("DUALTONE_CONFIG_DIR", str(tmp_path / "fresh"))     # nothing probed yet
    registry.catalogue(SR)                     # discovery is the registry's (once per process)
    t0 = time.perf_counter()
    b = browser(qtbot)
    assert time.perf_counter() - t0 < 1.0, "the table of the catalogue takes under a second"
    everything = b.visible_ids()
    assert LPF in everything and len(everything) == len(registry.catalogue(SR))
    assert b.probing is None and b.probes == {}                # nothing is probed before a selection

    b.search.setText("low pass")
    found = b.visible_ids()
    assert LPF in found and len(found) < len(everything)
    for pid in found:
        i = b.by_id[pid]
        text = f"{i.id} {i.name} {i.maker} {i.category} {' '.join(i.aliases)}".lower()
        assert "low" in text and "pass" in text
    assert "shown" in b.count.text() and str(len(found)) in b.count.text()

    assert b.select("ladspa:lpf") and b.selected.id == LPF             # an alias finds it too
    detail = b.detail.toPlainText()
    assert "Simple Low Pass Filter" in detail and LPF in detail
    assert "cutoff_frequency_hz" in detail and "0 … 24000" in detail and "default 440" in detail
    assert "latency port: none" in detail
    assert "probing" in b.probe_status.text() and b.probing == LPF
    assert not b.channel.isVisible()                                 # mono: no channel to choose
    qtbot.waitUntil(lambda: "µs" in b.probe_status.text(), timeout=30000)
    result = b.probes[LPF]
    assert result.ok and math.isfinite(result.us_per_block) and result.us_per_block > 0
    assert f"{result.us_per_block:.3g} µs" in b.probe_status.text()
    assert list(b.probes) == [LPF]                                    # only the selected one
    assert b.use_truth.isEnabled() and b.use_insert.isEnabled()
    assert not b.preset.isVisible()                                  # LADSPA: no presets
    with qtbot.waitSignal(b.chosen, timeout=1000) as chosen:
        b.use_truth.click()
    assert chosen.args == ["truth", LPF, 0, {}]                       # {}: its defaults


def test_unusable_plugins_are_greyed_with_their_reason_and_cannot_be_chosen(qtbot, config_dir):
    from ui.theme import DIM
    b = browser(qtbot)
    bad = next((i for i in b.plugins if i.unusable), None)
    assert bad is not None, "swh's oscillators (no audio input) are unusable: run the tests through ./dev test"
    row = next(r for r in range(b.table.rowCount()) if b._row_id(r) == bad.id)
    item = b.table.item(row, 0)
    assert item.foreground().color().name() == DIM and bad.unusable in item.toolTip()
    assert b.select(bad.id)
    assert bad.unusable in b.detail.toPlainText()
    assert not b.use_truth.isEnabled() and not b.use_insert.isEnabled()
    assert b.probing is None and bad.id not in b.probes                # never probed
    with qtbot.assertNotEmitted(b.chosen):
        b._choose("truth")


def test_a_failed_probe_says_why_and_disables_the_buttons(qtbot, config_dir):
    calls = []

    def crashing(info, sample_rate, frames):
        calls.append(info.id)
        time.sleep(0.2)
        return ProbeResult(ok=False, reason="crashed (SIGSEGV) when probed", finite=False)

    b = browser(qtbot, probe=crashing)
    b.select(LPF)
    assert b.use_truth.isEnabled()                       # while probing, the choice stays open
    qtbot.waitUntil(lambda: "probe failed" in b.probe_status.text(), timeout=5000)
    assert "crashed (SIGSEGV)" in b.probe_status.text()
    assert not b.use_truth.isEnabled() and not b.use_insert.isEnabled()
    assert calls == [LPF]


# ---------------------------------------------------------------- the window

def test_a_plugin_becomes_the_ground_truth_its_knob_turns_it_and_an_edit_keeps_it(qtbot, window):
    s = window.session
    assert window.use_plugin("ladspa:lpf")               # the alias names the same plugin
    wait_loaded(qtbot, window, 2)
    assert s.spec.plugin == LPF and s.spec.target == "y = plugin" and s.spec.model is None
    assert window.hidden.title() == "Ground truth: Simple Low Pass Filter (ladspa:1041)"
    assert not window.hidden.channel_row.isVisibleTo(window.hidden)    # mono
    assert "cutoff_frequency_hz" in window.hidden.rows
    assert s.hidden()["cutoff_frequency_hz"] == 440.0                  # the plugin's default
    slider = window.hidden.rows["cutoff_frequency_hz"][0]
    assert isinstance(slider, QtWidgets.QSlider) and slider.maximum() == 1000
    slider.setValue(250)
    assert s.hidden()["cutoff_frequency_hz"] == pytest.approx(6000.0)
    assert s.memory.active.truth.controls["cutoff_frequency_hz"] == pytest.approx(6000.0)
    # an edited learnable circuit keeps the plugin, and its knob where it is
    window.circuit.circuit.setPlainText("y = gain*x + dc + bias")
    window.circuit.request_apply()
    wait_loaded(qtbot, window, 3)
    assert s.spec.plugin == LPF and s.param_names == ["gain", "dc", "bias"]
    assert s.hidden()["cutoff_frequency_hz"] == pytest.approx(6000.0)
    assert window.hidden.title().startswith("Ground truth: Simple Low Pass Filter")
    # back to the circuit as the ground truth
    window.drop_model()
    wait_loaded(qtbot, window, 4)
    assert s.spec.plugin is None and s.spec.target is None
    assert "cutoff_frequency_hz" not in window.hidden.rows and window.hidden.title() == window.hidden.TITLE
    # a model after a plugin: one ground truth at a time
    assert window.use_plugin(LPF)
    wait_loaded(qtbot, window, 5)
    assert window.use_model(GOLDEN_MODEL)
    wait_loaded(qtbot, window, 6)
    assert s.spec.model is not None and s.spec.plugin is None and s.spec.target == "y = sptmod"
    assert window.hidden.title() == window.hidden.TITLE and "cutoff_frequency_hz" not in s.hidden()


def test_the_browser_inserts_a_plugin_on_the_output_with_knobs(qtbot, window):
    s = window.session
    b = window.plugin_dialog("insert")
    assert b is not None and b.isVisible() and b.use_insert.isDefault()
    assert b.select(LPF)
    qtbot.waitUntil(lambda: LPF in b.probes, timeout=30000)
    b.use_insert.click()
    assert not b.isVisible()
    qtbot.waitUntil(lambda: not window.busy and s.insert() is not None, timeout=30000)
    assert s.insert()["plugin"] == LPF and s.spec.plugin is None      # the ground truth is unchanged
    assert {"gain", "dc", "insert:cutoff_frequency_hz"} <= set(window.hidden.rows)
    window.hidden.rows["insert:cutoff_frequency_hz"][0].setValue(500)
    assert s.insert()["controls"]["cutoff_frequency_hz"] == pytest.approx(12000.0)
    assert window.plugin_dialog("truth") is b                          # kept, with its probes
    assert b.use_truth.isDefault() and LPF in b.probes
    b.reject()
    assert window.use_insert_plugin(None) and s.insert() is None
    assert "insert:cutoff_frequency_hz" not in window.hidden.rows


PROBE = "lv2:urn:dualtone:test:probe"


def test_a_factory_preset_is_where_the_plugins_knobs_start(qtbot, window, with_presets):
    s = window.session
    b = window.plugin_dialog("truth")
    assert b is not None and PROBE in b.by_id
    assert b.select(PROBE)
    assert b.preset.isVisible() and b.preset.isEnabled() and b.preset_label.isVisible()
    assert [b.preset.itemText(k) for k in range(b.preset.count())] == ["defaults", "Loud", "Quiet"]
    assert b.preset.currentText() == "defaults" and b.preset_values() == {}
    qtbot.waitUntil(lambda: PROBE in b.probes, timeout=30000)
    assert b.probes[PROBE].ok and b.probes[PROBE].latency == 7
    b.preset.setCurrentIndex(b.preset.findText("Quiet"))
    assert b.preset_values() == {"gain": 0.25}
    with qtbot.waitSignal(b.chosen, timeout=1000) as chosen:
        b.use_truth.click()
    assert chosen.args == ["truth", PROBE, 0, {"gain": 0.25}]
    assert not b.isVisible()
    wait_loaded(qtbot, window, 2)
    assert s.spec.plugin == PROBE and s.spec.target == "y = plugin"
    assert s.hidden()["gain"] == 0.25                                  # not the default 1.0
    assert window.hidden.title().startswith("Ground truth: Dualtone probe")

    # the insert starts from a preset too; a plugin without presets shows no choice
    assert window.plugin_dialog("insert") is b
    assert b.select(LPF) and not b.preset.isVisible() and b.preset_values() == {}
    assert b.select("lv2:urn:dualtone:test:enum") and not b.preset.isVisible()
    assert b.select(PROBE) and b.preset.isVisible() and b.preset.currentText() == "defaults"
    b.preset.setCurrentIndex(b.preset.findText("Loud"))
    b.use_insert.click()
    qtbot.waitUntil(lambda: not window.busy and s.insert() is not None, timeout=30000)
    assert s.insert()["plugin"] == PROBE and s.insert()["controls"]["gain"] == 2.5
    assert s.hidden()["gain"] == 0.25                                  # the ground truth is unchanged
    assert window.use_insert_plugin(None) and s.insert() is None


def test_preset_values_are_clamped_and_foreign_symbols_left_out(qtbot, window, with_presets):
    s = window.session
    assert window.use_plugin(PROBE, controls={"gain": 9.0, "gone": 3.0})    # gain is 0 … 4
    wait_loaded(qtbot, window, 2)
    assert s.hidden()["gain"] == 4.0 and "gone" not in s.hidden()


def test_toggle_and_integer_controls_get_their_widgets_and_midi_turns_them(qtbot, window):
    info = a_toggled_plugin()
    s = window.session
    assert window.use_plugin(info.id)
    wait_loaded(qtbot, window, 2)
    assert s.spec.plugin == info.id
    toggled = next(c for c in info.controls if c.toggled)
    box = window.hidden.rows[toggled.symbol][0]
    assert isinstance(box, QtWidgets.QCheckBox)
    assert box.isChecked() == (toggled.clamp(toggled.default) == toggled.maximum)
    box.setChecked(not box.isChecked())                                 # a click goes to the session
    assert s.hidden()[toggled.symbol] == (1.0 if box.isChecked() else 0.0)
    assert window.hidden.rows[toggled.symbol][1].text() == ("on" if box.isChecked() else "off")
    # MIDI learn from the check box's menu path, then the controller turns it both ways
    window.hidden.start_midi_learn(toggled.symbol)
    midi = window.workspace.midi
    midi.feed_bytes(bytes([0xB0, 21, 0]), 0.0)
    assert midi.mappings[21] == f"hidden:{toggled.symbol}" and s.hidden()[toggled.symbol] == 0.0
    window.tick()
    assert not box.isChecked() and window.hidden.rows[toggled.symbol][2].text() == "CC 21"
    midi.feed_bytes(bytes([0xB0, 21, 127]), 0.0)
    window.tick()
    assert s.hidden()[toggled.symbol] == 1.0 and box.isChecked()
    integer = next((c for c in info.controls if c.integer and not c.toggled), None)
    if integer is not None:                   # TAP Reverberator's reverb type: one position per type
        slider = window.hidden.rows[integer.symbol][0]
        knob = window.hidden.knobs[integer.symbol]
        assert isinstance(slider, QtWidgets.QSlider) and knob.kind == "integer"
        assert slider.maximum() - slider.minimum() == knob.steps - 1
        slider.setValue(3)
        assert s.hidden()[integer.symbol] == math.ceil(knob.lo) + 3
    if len(info.audio_outputs) == 2:          # a stereo ground truth: choose the learned channel
        assert window.hidden.channel_row.isVisibleTo(window.hidden)
        assert window.hidden.channel.currentText() == "left"
        window.hidden.channel.setCurrentIndex(1)
        window.hidden.channel.activated.emit(1)
        wait_loaded(qtbot, window, 3)
        assert s.spec.plugin == info.id and s.spec.plugin_channel == 1
        assert window.hidden.channel.currentText() == "right"
        assert s.hidden()[toggled.symbol] == 1.0                        # the knobs stayed
        if integer is not None:
            assert s.hidden()[integer.symbol] == math.ceil(window.hidden.knobs[integer.symbol].lo) + 3


class _KnobSession:
    """Just what HiddenPanel and MidiControl use of a session, over a real KnobBank."""

    sample_rate, spec, learner = SR, None, object()

    def __init__(self, specs: dict):
        self.knob_bank = KnobBank()
        for spec, value in specs.items():
            self.knob_bank.define(spec, value)

    def knobs(self):
        return self.knob_bank.specs()

    def hidden(self):
        return self.knob_bank.values("hidden:")

    def set_hidden(self, name, value):
        self.knob_bank.set(f"hidden:{name}", value)

    def set_insert_control(self, name, value):
        self.knob_bank.set(f"insert:{name}", value)

    def set_knob(self, name, fraction):              # MIDI's way in
        self.knob_bank.set_fraction(name, fraction)


def test_every_knob_kind_has_its_widget_and_midi_learn_turns_each(qtbot):
    """No installed plugin has an enumerated control: the panel is given one directly."""
    from ui.panels.knobs import HiddenPanel, KnobCheck, KnobCombo, KnobSlider, knob_widget
    mode = KnobSpec("hidden:mode", 0, 2, "enum", ("sine", "square", "saw"))
    kinds = {mode: 0.0, KnobSpec("hidden:bypass", 0, 1, "toggle"): 0.0,
             KnobSpec("hidden:voices", 1, 5, "integer"): 2.0, KnobSpec("hidden:freq", 20, 20000, "log"): 1000.0,
             KnobSpec("hidden:gain", -1, 1): 0.0}
    expected = {"mode": KnobCombo, "bypass": KnobCheck, "voices": KnobSlider, "freq": KnobSlider, "gain": KnobSlider}
    for spec in kinds:
        assert type(knob_widget(spec)) is expected[spec.name.split(":")[1]]
    session = _KnobSession(kinds)
    midi = MidiControl(session)
    panel = HiddenPanel(session, midi)
    qtbot.addWidget(panel)
    panel.rebuild()
    rows = panel.rows
    assert {n: type(w) for n, (w, _, _) in rows.items()} == expected
    combo, field, _ = rows["mode"]
    assert [combo.itemText(k) for k in range(combo.count())] == ["sine", "square", "saw"]
    combo.setCurrentIndex(2)                                         # a choice reaches the knob
    assert session.hidden()["mode"] == 2.0 and field.text() == "saw"
    voices = rows["voices"][0]
    assert (voices.minimum(), voices.maximum()) == (0, 4)            # a position per whole number
    voices.setValue(4)
    assert session.hidden()["voices"] == 5.0 and rows["voices"][1].text() == "5"
    rows["freq"][0].setValue(500)                                    # log: the middle is sqrt(lo*hi)
    assert session.hidden()["freq"] == pytest.approx(math.sqrt(20 * 20000))
    rows["bypass"][0].setChecked(True)
    assert session.hidden()["bypass"] == 1.0
    panel.set_value("mode", 7)                                       # typed: clamped to the choices
    assert session.hidden()["mode"] == 2.0
    field.setReadOnly(False)
    field.setText("Square")                                          # typed by label
    field.returnPressed.emit()
    assert session.hidden()["mode"] == 1.0 and combo.currentText() == "square"
    # MIDI learn on each kind: the mapped controller turns the knob, the widget follows
    for cc, name, value, shown in ((20, "mode", 0, lambda w: w.currentText() == "sine"),
                                   (21, "bypass", 0, lambda w: not w.isChecked()),
                                   (22, "voices", 64, lambda w: w.value() == 2),
                                   (23, "gain", 127, lambda w: w.value() == w.maximum())):
        panel.start_midi_learn(name)
        panel.sync()
        assert rows[name][2].text() == "learn…"
        midi.feed_bytes(bytes([0xB0, cc, value]), 0.0)
        assert midi.mappings[cc] == f"hidden:{name}"
        assert session.hidden()[name] == panel.knobs[name].value_at(value / 127)
        panel.sync()
        assert shown(rows[name][0]) and rows[name][2].text() == f"CC {cc}"
    assert session.hidden()["voices"] == 3.0


def test_an_unknown_or_unusable_plugin_gives_one_dialog_and_changes_nothing(qtbot, window, monkeypatch):
    s = window.session
    dialogs = []
    monkeypatch.setattr(window, "show_problems", lambda title, intro, problems: dialogs.append((title, intro, problems)))
    before, loaded = s.spec, window.loaded
    assert not window.use_plugin("ladspa:999999")
    assert len(dialogs) == 1 and "no plugin 'ladspa:999999' is installed" in dialogs[0][2][0]
    assert not window.use_plugin("not a plugin id")
    assert len(dialogs) == 2 and "is not a plugin id" in dialogs[1][2][0]
    assert not window.use_insert_plugin("ladspa:999999") and len(dialogs) == 3
    bad = next((i for i in registry.catalogue(SR) if i.unusable), None)
    if bad is not None:
        assert not window.use_plugin(bad.id)
        assert len(dialogs) == 4 and dialogs[3][2] == [bad.unusable]
    qtbot.wait(100)
    assert s.spec is before and window.loaded == loaded and not window.busy
    assert s.insert() is None and set(window.hidden.rows) == {"gain", "dc"}
    assert window.hidden.title() == window.hidden.TITLE


def test_a_plugin_that_fails_to_load_gives_one_dialog_and_the_circuit_keeps_playing(qtbot, window, monkeypatch):
    """The probe's verdict comes on the worker thread (session.load): it, too, is one dialog."""
    from app.plugins import probe as probe_module
    s = window.session
    monkeypatch.setattr(probe_module, "probe",
                        lambda info, *a, **k: ProbeResult(ok=False, reason="crashed (SIGSEGV) when probed"))
    dialogs = []
    monkeypatch.setattr(window, "show_problems", lambda title, intro, problems: dialogs.append((title, intro, problems)))
    before = s.spec
    assert window.use_plugin(LPF)                    # found and usable: the load is under way
    qtbot.waitUntil(lambda: not window.busy, timeout=30000)
    assert len(dialogs) == 1 and "crashed (SIGSEGV)" in dialogs[0][2][0]
    assert s.spec is before and s.spec.plugin is None and s.running
