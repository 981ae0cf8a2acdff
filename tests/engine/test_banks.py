"""LACTOSE banks: selection at the boundaries, clamping, hysteresis, crossfade, which banks move in
each gradient mode, exact gradients against finite differences through feedback with bank
switches, the command line, and presets that keep their banks."""
import json
import time
import subprocess
import sys

import numpy as np
import pytest

from app.preset import document as presets

from app.preset import store
from engine.learn.banks import Banks, expand
from engine.learn.learner import Learner, ParamSpec, Settings
from engine.sources import LcgNoise
from tests.paths import REPO

BOUNDS = [-1.0, -0.5, 0.0, 0.5, 1.0]
ASYM = "y = tanh(2*x) if x > 0 else 0.5*tanh(0.7*x)"


def learner(banks, circuit="y = a*tanh(d*x)", target=ASYM, lr=1e-2, optimizer="adam", learning=True,
            window=1, params=None):
    params = params or [ParamSpec("a", 1.0, 0.0, 4.0), ParamSpec("d", 1.0, 0.01, 10.0)]
    return Learner(circuit, params, target=target,
                   settings=Settings(loss="mse", window=window, optimizer=optimizer, lr=lr, learning=learning),
                   banks=banks)


def trace_of(L, x):
    _, tr = L.process(x, trace_every=1)
    return tr


def test_selection_is_half_open_and_clamps_outside_the_boundaries():
    b = Banks(BOUNDS, condition="input")
    x = np.array([-3.0, -1.0, -0.5000001, -0.5, -0.1, 0.0, 0.49, 0.5, 0.999, 1.0, 7.0, -1e9])
    expected = [0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 3, 0]
    assert [b.select(v) for v in x] == expected
    L = learner(b, learning=False)
    tr = trace_of(L, x)
    assert tr[:, -1].tolist() == expected            # the kernel's active bank, per sample


def test_hysteresis_holds_a_bank_until_the_condition_passes_the_boundary_by_h():
    b = Banks([-1.0, 0.0, 1.0], condition="input", hysteresis=0.1)
    x = np.array([-0.5, 0.05, -0.05, 0.09, 0.11, 0.05, -0.05, -0.09, -0.11, 0.0])
    L = learner(b, learning=False)
    got = trace_of(L, x)[:, -1].tolist()
    assert got == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    prev, ref = None, []
    for v in x:
        prev = b.select(v, prev)
        ref.append(prev)
    assert got == ref


def test_a_level_condition_follows_the_envelope_in_dbfs():
    b = Banks([-120.0, -20.0, 0.0], condition="level", attack_ms=0.0, release_ms=0.0)
    L = learner(b, learning=False)
    x = np.concatenate([np.full(100, 0.01), np.full(100, 0.5)])   # -40 dBFS, then -6 dBFS
    bank = trace_of(L, x)[:, -1]
    assert set(bank[5:100]) == {0} and set(bank[105:]) == {1}


def test_separated_mode_moves_only_the_active_bank_with_the_summed_gradient():
    b = Banks(BOUNDS, condition="input", mode="separated")
    L = learner(b, optimizer="sgd", lr=0.05)
    x = LcgNoise().read(4000)
    tr = trace_of(L, x)
    P = len(L.param_names)
    values, grads, bank = tr[:, 2:2 + P], tr[:, 2 + P:2 + 2 * P], tr[:, -1].astype(int)
    names = L.param_names
    for n in range(len(x) - 1):
        moved = {names[j].split("@")[1] for j in range(P) if values[n + 1, j] != values[n, j]}
        assert moved <= {str(bank[n])}
        for base in ("a", "d"):
            j_active = names.index(f"{base}@{bank[n]}")
            summed = sum(grads[n, names.index(f"{base}@{k}")] for k in range(4))
            step = values[n, j_active] - values[n + 1, j_active]
            lo, hi = (0.0, 4.0) if base == "a" else (0.01, 10.0)
            if lo < values[n, j_active] - 0.05 * summed < hi:       # not clipped by the range
                assert step == pytest.approx(0.05 * summed, rel=1e-12, abs=1e-15)
    assert len(set(bank)) == 4


def test_exact_mode_steps_every_bank_with_a_gradient_and_no_other():
    b = Banks([-1.0, 0.0, 1.0], condition="input", mode="exact")
    # feedback: a bank's parameters keep a gradient through the state after the bank is left
    L = learner(b, circuit="y = (1 - c)*x + c*y@1", target="y = (1 - 0.8)*x + 0.8*y@1",
                params=[ParamSpec("c", 0.2, 0.0, 0.95)], optimizer="adam", lr=1e-3, window=4)
    tr = trace_of(L, LcgNoise().read(3000))
    values, grads = tr[:, 2:4], tr[:, 4:6]
    both = 0
    for n in range(len(tr) - 1):
        for j in range(2):
            assert (values[n + 1, j] != values[n, j]) == (grads[n, j] != 0.0)
        both += bool(grads[n, 0] != 0.0 and grads[n, 1] != 0.0)
    assert both > 1000          # through the state, the inactive bank has a gradient too


@pytest.mark.parametrize("mode", ["exact", "separated"])
def test_bank_gradients_match_finite_differences_through_feedback_with_bank_switches(mode):
    """Learning paused: each bank's parameter is a constant, so the loss at sample n is a function
    of the bank values, and the trace's gradient must be its derivative."""
    circuit = "y = (1 - c)*x + c*y@1 + g*tanh(y@2)"
    params = [ParamSpec("c", 0.5, 0.0, 0.95), ParamSpec("g", 0.1, -1.0, 1.0)]
    b = Banks([-1.0, -0.2, 0.3, 1.0], condition="input", mode=mode, hysteresis=0.05)
    target = "y = (1 - 0.7)*x + 0.7*y@1 + 0.3*tanh(y@2)"
    x = LcgNoise().read(600)
    base = {"c@0": 0.3, "c@1": 0.6, "c@2": 0.8, "g@0": -0.2, "g@1": 0.1, "g@2": 0.4}

    def run(values):
        L = learner(b, circuit=circuit, target=target, params=params, learning=False, window=8)
        L.reset(values)
        out, tr = L.process(x, trace_every=1)
        return L, out[:, 2], tr

    L, _, tr = run(base)
    names = L.param_names
    P = len(names)
    switches = int(np.sum(np.diff(tr[:, -1]) != 0))
    assert switches > 50
    eps = 1e-6
    for name in names:
        up, down = dict(base), dict(base)
        up[name] += eps
        down[name] -= eps
        fd = (run(up)[1] - run(down)[1]) / (2 * eps)
        grad = tr[:, 2 + P + names.index(name)]
        scale = max(1e-3, float(np.max(np.abs(fd))))
        assert np.max(np.abs(grad[20:] - fd[20:])) < 1e-5 * scale, name


def test_four_banks_beat_one_parameter_set_on_the_asymmetric_shaper_by_100x():
    x = LcgNoise().read(48000 * 2)
    single = learner(None)
    out1, _ = single.process(x)
    banked = learner(Banks(BOUNDS, condition="input"))
    out4, _ = banked.process(x)
    tail = slice(-24000, None)
    assert np.mean(out4[tail, 2]) * 100 < np.mean(out1[tail, 2])


def test_crossfade_glides_the_parameters_between_banks():
    fade_ms = 1.0                        # 48 samples
    b = Banks([-1.0, 0.0, 1.0], condition="input", crossfade_ms=fade_ms)
    L = Learner("y = a*x", [ParamSpec("a", 0.0, -2, 2)], target="y = x",
                settings=Settings(learning=False), banks=b)
    L.reset({"a@0": 0.0, "a@1": 1.0})
    x = np.concatenate([np.full(200, -0.5), np.full(200, 0.5)])
    out, _ = L.process(x)
    gain = out[:, 1] / x
    assert gain[199] == 0.0 and gain[399] == pytest.approx(1.0)
    ramp = gain[200:248]
    assert np.all(np.diff(ramp) > 0) and ramp[0] < 0.05            # no jump at the switch


def test_reserved_names_and_bad_banks_are_refused():
    with pytest.raises(ValueError, match="reserved"):
        expand("lactose_bank = x\ny = a*lactose_bank", ["a"], Banks(BOUNDS, condition="input"), 48000)
    for bad, msg in (([0.0], "at least two"), ([0.0, 0.0], "strictly increasing"),
                     ([0.0, float("nan")], "finite")):
        with pytest.raises(ValueError, match=msg):
            Banks(bad).validate()
    with pytest.raises(ValueError, match="not a signal"):
        learner(Banks(BOUNDS, condition="nosuch"))
    with pytest.raises(ValueError, match="bank mode"):
        Banks(BOUNDS, mode="both").validate()


def test_a_signal_of_the_circuit_can_be_the_condition():
    b = Banks([-1.0, 0.0, 1.0], condition="s")
    L = Learner("s = -x\ny = a*s", [ParamSpec("a", 1.0)], target="y = -2*x", settings=Settings(learning=False),
                banks=b)
    x = np.array([0.5, 0.5, -0.5, -0.5])
    bank = trace_of(L, x)[:, -1].tolist()
    assert bank == [1, 0, 0, 1]          # s one sample late: s[-1] = 0 -> bank 1; then -0.5, -0.5, 0.5


def _learn_cli(*extra, trace=None):
    cmd = [sys.executable, str(REPO / "main.py"), "learn", "--circuit", "y = a*tanh(d*x)",
           "--param", "a=1:0:4", "--param", "d=1:0.01:10", "--target", ASYM, "--loss", "mse",
           "--optimizer", "adam", "--lr", "0.01", "--samples", "48000", "--quiet", *extra]
    if trace:
        cmd += ["--trace", str(trace), "--trace-every", "4800"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_learn_with_banks_reports_each_bank_and_traces_param_at_bank_columns(tmp_path):
    r = _learn_cli("--banks=-1,-0.5,0,0.5,1", "--condition", "input", "--bank-mode", "exact",
                   trace=tmp_path / "t.csv")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert [b["bank"] for b in res["banks"]] == [0, 1, 2, 3]
    assert res["banks"][3]["range"] == [0.5, 1.0]
    assert abs(res["banks"][3]["params"]["d"] - 2.0) < 0.05 and abs(res["banks"][0]["params"]["a"] - 0.5) < 0.05
    header = (tmp_path / "t.csv").read_text().splitlines()[0].split(",")
    assert header == ["n", "loss"] + [f"{p}@{k}" for p in "ad" for k in range(4)] + ["active_bank"]
    rows = np.loadtxt(tmp_path / "t.csv", delimiter=",", skiprows=1)
    assert set(rows[:, -1]) <= {0, 1, 2, 3}


@pytest.mark.parametrize("args, message", [
    (["--banks", "0,0"], "strictly increasing"),
    (["--banks", "a,b"], "is not a number"),
    (["--banks", "0,1", "--condition", "note"], "follows live MIDI"),
    (["--hysteresis", "0.1"], "needs --banks"),
])
def test_bad_bank_flags_are_one_line_and_exit_2(args, message):
    r = _learn_cli(*args)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1


def test_a_preset_with_banks_round_trips_with_each_banks_learned_values(tmp_path, monkeypatch):
    monkeypatch.setenv("DUALTONE_CONFIG_DIR", str(tmp_path))
    from app.session import CircuitSpec, Session
    from app.workspace import Workspace
    spec = CircuitSpec("y = a*tanh(d*x)", [ParamSpec("a", 1.0, 0.0, 4.0), ParamSpec("d", 1.0, 0.01, 10.0)],
                       target=ASYM, settings=Settings(loss="mse", optimizer="adam", lr=0.01),
                       banks=Banks(BOUNDS, condition="input", mode="exact", hysteresis=0.01))
    ws = Workspace(Session(48000, 128, device="virtual"))
    try:
        ws.session.load(spec)
        ws.session.learner.process(LcgNoise().read(48000))       # learn offline, then save
        before = ws.session.learner.bank_params()
        path = ws.save(tmp_path / "banked.json")
        doc = json.loads(path.read_text())
        assert doc["banks"]["boundaries"] == BOUNDS and doc["banks"]["mode"] == "exact"
        assert doc["banks"]["learned"] == before
        loaded = presets.load(path)
        assert loaded.spec.banks == spec.banks
        ws.apply(loaded)
        slot = ws.session.memory.active
        names = ws.session.param_names
        restored = [{b: slot.init[names.index(f"{b}@{k}")] for b in "ad"} for k in range(4)]
        assert restored == before
    finally:
        ws.close(autosave=False)


@pytest.mark.parametrize("banks, message", [
    ({"boundaries": [0, 1], "mode": "both"}, "unknown bank mode"),
    ({"boundaries": [1, 0]}, "strictly increasing"),
    ({"boundaries": "0,1"}, "boundaries must be a list"),
    ({"boundaries": [0, 1], "learned": [{"drive": 99}]}, "outside the range"),
    ({"boundaries": [0, 1], "learned": [{"zz": 1}]}, "not a learnable parameter"),
    ({"boundaries": [0, 1], "colour": "red"}, "unknown field"),
])
def test_bad_banks_in_a_preset_are_listed(banks, message):
    doc = presets.to_json(presets.load(store.resolve("tanh-drive")))
    doc["banks"] = banks
    with pytest.raises(presets.PresetError) as e:
        presets.parse_document(doc)
    assert any(message in p for p in e.value.problems), e.value.problems


def test_a_midi_note_selects_the_bank_live_and_telemetry_shows_it():
    from app.session import CircuitSpec, Session
    spec = CircuitSpec("y = a*x", [ParamSpec("a", 0.5, 0.0, 2.0)], target="y = x",
                       settings=Settings(optimizer="sgd", loss="mse", lr=0.01), banks=Banks([0, 60, 128], condition="note"))
    with Session(48000, 128, device="virtual") as s:
        s.load(spec)
        s.set_source("midi")
        s.start()
        for note, bank in ((72, 1), (48, 0), (96, 1)):
            s.voice(440.0 * 2 ** ((note - 69) / 12), True, 0.8)
            end = time.monotonic() + 5
            snap = None
            while time.monotonic() < end:
                rows = s.telemetry.drain()
                if rows.shape[0]:
                    snap = s.telemetry.decode(rows[-1])
                    if snap.bank == bank and abs(snap.condition - note) < 1e-9:
                        break
                time.sleep(0.01)
            assert snap is not None and snap.bank == bank and snap.condition == pytest.approx(note)
        assert s.learner.active_bank == 1


@pytest.mark.parametrize("mode", ["separated", "exact"])
def test_a_topology_per_bank_learns_each_range_with_its_own_circuit(mode):
    b = Banks([-1.0, 0.0, 1.0], condition="input", mode=mode, circuits=["y = a*x", "y = a*tanh(d*x)"])
    L = Learner("y = a*tanh(d*x)", [ParamSpec("a", 1.0, -4, 4), ParamSpec("d", 1.0, 0.01, 10)],
                target="y = tanh(3*x) if x > 0 else 0.4*x",
                settings=Settings(loss="mse", optimizer="adam", lr=0.01), banks=b)
    assert L.param_names == ["a@0", "a@1", "d@1"]             # bank 0's linear circuit has no d
    out, _ = L.process(LcgNoise().read(96000))
    p = L.bank_params()
    assert p[0] == {"a": pytest.approx(0.4, abs=1e-6)}
    assert p[1]["a"] == pytest.approx(1.0, abs=1e-3) and p[1]["d"] == pytest.approx(3.0, abs=1e-2)
    assert np.mean(out[-4800:, 2]) < 1e-10


def test_topologies_keep_their_own_state_and_crossfade_their_outputs():
    # bank 0 integrates (a one-pole with state), bank 1 is memoryless: switching must not mix state
    b = Banks([-1.0, 0.0, 1.0], condition="input", crossfade_ms=1.0,
              circuits=["y = (1 - c)*x + c*y@1", "y = g*x"])
    L = Learner("y = g*x", [ParamSpec("c", 0.9, 0, 0.99), ParamSpec("g", 2.0, -4, 4)], target="y = x",
                settings=Settings(learning=False), banks=b)
    x = np.concatenate([np.full(300, -0.5), np.full(300, 0.5)])
    out, _ = L.process(x)
    y = out[:, 1]
    assert y[299] == pytest.approx(-0.5, abs=1e-6)                # the one-pole settled on -0.5
    assert y[599] == pytest.approx(1.0)                          # g*x after the fade
    assert abs(y[300] - y[299]) < 0.1                            # no jump at the switch


def test_learn_accepts_a_circuit_per_bank():
    r = subprocess.run([sys.executable, str(REPO / "main.py"), "learn", "--circuit", "y = a*tanh(d*x)",
                        "--param", "a=1:-4:4", "--param", "d=1:0.01:10", "--target",
                        "y = tanh(3*x) if x > 0 else 0.4*x", "--optimizer", "adam", "--lr", "0.01",
                        "--samples", "96000", "--quiet", "--banks=-1,0,1", "--condition", "input",
                        "--bank-circuit", "y = a*x", "--bank-circuit", "y = a*tanh(d*x)"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    banks = json.loads(r.stdout)["banks"]
    assert banks[0]["params"]["a"] == pytest.approx(0.4, abs=1e-6) and "d" not in banks[0]["params"]


def test_propose_banks_finds_the_break_of_the_target_and_reports_the_gain():
    r = subprocess.run([sys.executable, str(REPO / "main.py"), "propose-banks", "--target",
                        "y = tanh(2*x) if x > 0.3 else 0.5*tanh(0.7*x)", "--banks", "2", "--condition",
                        "input", "--samples", "48000"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["boundaries"][1] == pytest.approx(0.3, abs=1e-3)
    assert res["improvement_vs_quantiles"] > 100 and res["improvement_vs_one_bank"] > 100
    assert "quantile split" in r.stderr and res["banks_flag"].startswith("--banks=")
    bad = subprocess.run([sys.executable, str(REPO / "main.py"), "propose-banks", "--target", "y = x",
                          "--banks", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "K" in bad.stderr and bad.stderr.count("\n") == 1


def test_run_headless_learns_banks_live_and_reports_them():
    r = subprocess.run([sys.executable, str(REPO / "main.py"), "run", "--headless", "--seconds", "1.5",
                        "--device", "virtual", "--quiet", "--circuit", "y = a*tanh(d*x)",
                        "--param", "a=1:0:4", "--param", "d=1:0.01:10", "--target", ASYM,
                        "--optimizer", "adam", "--lr", "0.01", "--banks=-1,-0.5,0,0.5,1",
                        "--condition", "input", "--hysteresis", "0.01"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(res["banks"]) == 4 and 0 <= res["active_bank"] < 4
    assert set(res["params"]) == {f"{p}@{k}" for p in "ad" for k in range(4)}
    assert res["banks"][3]["params"]["d"] == pytest.approx(2.0, abs=0.05)
