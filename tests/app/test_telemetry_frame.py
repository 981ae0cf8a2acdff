"""The typed frame the window reads (app/host/telemetry.Frame): only the running slot's rows with
the current parameter count, the columns named, the CPU load against the block's deadline."""
import numpy as np
import pytest

from app.host import layout as H
from app.host.telemetry import TelemetryReader


def _row(slot, t, loss, params, cpu_us, bank=0, condition=0.0):
    r = np.zeros(H.TEL_COLS)
    r[H.T_SLOT], r[H.T_TIME], r[H.T_LOSS], r[H.T_CPU_US] = slot, t, loss, cpu_us
    r[H.T_N_PARAMS], r[H.T_BANK], r[H.T_CONDITION] = len(params), bank, condition
    r[H.TEL_HEADER:H.TEL_HEADER + len(params)] = params
    return r


def test_a_frame_keeps_the_running_slots_rows_and_names_their_columns():
    reader = TelemetryReader(memory=None)
    rows = np.array([_row(0, 0.1, 1.0, [9.0, 9.0], 10.0),            # the old slot, fading out
                     _row(1, 0.2, 0.5, [0.1, 0.2], 20.0),
                     _row(1, 0.3, 0.25, [0.3], 99.0),                 # a row of another circuit
                     _row(1, 0.4, 0.125, [0.5, 0.6], 40.0, bank=2, condition=-12.0)])
    f = reader.frame(rows, active_slot=1, names=["gain", "dc"], deadline_us=80.0)
    assert f.names == ["gain", "dc"]
    assert f.time.tolist() == [0.2, 0.4] and f.loss.tolist() == [0.5, 0.125]
    assert f.params.tolist() == [[0.1, 0.2], [0.5, 0.6]]
    assert f.latest == {"gain": 0.5, "dc": 0.6}
    assert (f.bank, f.condition) == (2, -12.0)
    assert f.cpu_load == pytest.approx(0.5)                           # 40 us of an 80 us block


def test_no_frame_when_nothing_belongs_to_the_running_slot():
    reader = TelemetryReader(memory=None)
    assert reader.frame(np.empty((0, H.TEL_COLS)), 0, ["g"], 80.0) is None
    assert reader.frame(np.array([_row(0, 0.1, 1.0, [1.0], 5.0)]), 1, ["g"], 80.0) is None
    assert reader.frame(np.array([_row(1, 0.1, 1.0, [1.0], 5.0)]), 1, [], 80.0) is None
