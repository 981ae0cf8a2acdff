"""A LACTOSE preset survives the autosave round trip whole: its bank row (boundaries, condition,
mode, hysteresis, crossfade, follower times, level_db) and the circuit panel's condition box, which
once reverted from "input" to "level" after a restore."""
from dataclasses import asdict

import pytest

from app.preset import store
from tests.ui.test_gui import make_window, wait_loaded


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    d = tmp_path / "config"
    monkeypatch.setenv("DUALTONE_CONFIG_DIR", str(d))
    return d


def bank_row(banks) -> dict:
    return {k: v for k, v in asdict(banks).items() if k != "circuits"}


def test_a_lactose_bank_row_and_its_condition_survive_an_autosave_restore(qtbot, config_dir):
    w = make_window(qtbot, autosave=True)
    w.open_preset("lactose-asymmetric")
    wait_loaded(qtbot, w)
    before = w.session.spec.banks
    assert before.condition == "input" and w.circuit.condition.currentText() == "input"
    w.circuit.bank_mode.setCurrentText("exact")          # an edit of the row, applied
    w.circuit.request_apply()
    wait_loaded(qtbot, w, 2)
    applied = bank_row(w.session.spec.banks)
    assert applied["mode"] == "exact" and applied["condition"] == "input"
    w.close()                                             # autosaves on exit
    saved = store.read_autosave()
    assert saved is not None and saved.banks["condition"] == "input" and saved.banks["mode"] == "exact"

    w2 = make_window(qtbot)
    assert w2.restore_autosave()
    wait_loaded(qtbot, w2)
    assert bank_row(w2.session.spec.banks) == applied
    assert w2.circuit.condition.currentText() == "input"
    assert w2.circuit.bank_mode.currentText() == "exact"
    assert w2.circuit.banks.text() == "-1, -0.5, 0, 0.5, 1"
    assert w2.session.param_names == w.session.param_names
    # applying the restored panel unchanged keeps the row (the panel does not fall back to "level")
    w2.circuit.request_apply()
    wait_loaded(qtbot, w2, 2)
    assert bank_row(w2.session.spec.banks) == applied
    w2.close()
