"""The real-time host on a real JACK server (the dummy driver `./dev test` starts): real rate,
bit-exact self-loopback, live convergence, a busy main thread, MIDI, bad input, circuit swaps."""
import os
import sys
import threading
import time

import numpy as np
import pytest

from app.host import layout as H
from app.session import CircuitSpec, Session
from engine.learn.learner import ParamSpec, Settings
from tests.live.host_xruns import run_live, xrun_allowance
from tests.paths import REPO

CEILING = np.float32(10 ** (-1 / 20))
REPO = str(REPO)
GAIN_DC = CircuitSpec("y = gain*x + dc", [ParamSpec("gain", 0.0), ParamSpec("dc", 0.0)],
                      hidden={"gain": 0.5, "dc": 0.5}, settings=Settings(optimizer="sgd", window=32, lr=0.01))


@pytest.fixture
def jack(jack_server):
    import jack as jack_client
    client = jack_client.Client(f"dualtone-test-{os.getpid()}", no_start_server=True)
    yield client                   # tests set their process callback, then activate
    client.deactivate(ignore_errors=True)
    client.close()


@pytest.fixture
def session(jack_server):
    s = Session(48000, 128)
    yield s
    s.close()


def _ports(client, is_input):
    """PortAudio's audio ports for our stream (the JACK client is named 'PortAudio')."""
    ports = client.get_ports("PortAudio:", is_audio=True, is_input=is_input, is_output=not is_input)
    assert ports, "our stream's JACK ports are missing"
    return ports


def _wait_callbacks(session, n, timeout=10.0):
    end = time.monotonic() + timeout
    start = session.counters()["callbacks"]
    while session.counters()["callbacks"] - start < n:
        assert time.monotonic() < end, "the stream stopped calling back"
        time.sleep(0.01)


def test_stream_runs_at_the_real_rate(session):
    session.load(GAIN_DC)
    info = session.start()
    assert "JACK" in info.host_api and not info.virtual and info.blocksize == 128
    _wait_callbacks(session, 10)
    c0, t0 = session.counters()["callbacks"], time.monotonic()
    time.sleep(2.0)
    calls, elapsed = session.counters()["callbacks"] - c0, time.monotonic() - t0
    expected = elapsed * 48000 / 128
    assert 0.95 * expected <= calls <= 1.05 * expected


def test_self_loopback_is_bit_exact_with_a_two_block_round_trip(session, jack):
    session.load(CircuitSpec("y = g*x", [ParamSpec("g", 1.0)], hidden={"g": 1.0},
                             settings=Settings(learning=False)))
    session.set_source("sine", hz=997.0)
    session.set_source_gain(0.5)
    session.set_output("target")
    session.start()
    jack.activate()
    outs, ins = _ports(jack, False), _ports(jack, True)
    for p in ins:
        for q in jack.get_all_connections(p):
            jack.disconnect(q, p)
    for o, i in zip(outs, ins):
        jack.connect(o, i)
    _wait_callbacks(session, 10)
    since = session.telemetry.scope_position       # everything from here on is looped back
    _wait_callbacks(session, 100)
    data, _ = session.telemetry.scope_since(since)
    sent = data[:, H.SC_OUT_LEFT].astype(np.float32)
    got = data[:, H.SC_INPUT].astype(np.float32)
    lags = [lag for lag in range(0, 2049)
            if np.array_equal(got[lag:], sent[:sent.size - lag])]
    assert lags == [256], f"round trip lags found: {lags}"
    assert np.max(np.abs(sent)) > 0.4


def _with_one_retry(check):
    """Run an xrun-counting check; if it fails, run it once more and keep the second verdict.
    The host's own stalls come in bursts (tests/live/host_xruns.py); a real regression fails both."""
    try:
        check()
    except AssertionError as first:
        print(f"retrying once after: {first}", file=sys.stderr)
        check()


def test_the_done_when_command_converges_live(jack_server):
    cmd = [sys.executable, os.path.join(REPO, "main.py"), "run", "--headless", "--seconds", "10",
           "--circuit", "y = gain*x + dc", "--param", "gain=0", "--param", "dc=0",
           "--hidden", "gain=0.5", "--hidden", "dc=0.5", "--loss", "mse", "--window", "32",
           "--optimizer", "sgd", "--lr", "0.01", "--source", "lcg-noise"]

    def check():
        r, res = run_live(cmd)
        assert abs(res["params"]["gain"] - 0.5) < 1e-3 and abs(res["params"]["dc"] - 0.5) < 1e-3
        assert "loss=" in r.stderr and "callbacks=" in r.stderr          # live telemetry lines
        assert res["callback_us_median"] > 0 and res["skipped"] == 0
        assert res["callback_us_max"] >= res["callback_us_p99"] >= res["callback_us_median"]
    _with_one_retry(check)


def _phase(session, seconds, load):
    c = session.counters()
    t0 = time.monotonic()
    load(t0 + seconds)
    elapsed = time.monotonic() - t0
    d = session.counters()
    return d["callbacks"] - c["callbacks"], d["xruns"] - c["xruns"], elapsed * 48000 / 128


def _idle(until):
    while time.monotonic() < until:
        time.sleep(0.05)


def _busy_python(until):
    table = {}
    while time.monotonic() < until:
        for i in range(20000):              # pure Python: holds the GIL all the time
            table[i % 977] = [i] * 3


def test_a_busy_main_thread_does_not_raise_the_xrun_rate(session, qapp):
    import pyqtgraph as pg
    session.load(GAIN_DC)
    session.start()
    _wait_callbacks(session, 10)
    plot = pg.PlotWidget()
    plot.resize(800, 400)
    plot.show()
    curve = plot.plot(np.zeros(2048))
    rng = np.random.default_rng(0)

    def _qt_repaint(until):
        nxt = time.monotonic()
        while time.monotonic() < until:
            curve.setData(rng.standard_normal(2048))
            plot.repaint()
            qapp.processEvents()
            nxt += 1 / 30
            time.sleep(max(0.0, nxt - time.monotonic()))

    # Qt's first paints allocate its caches (fonts, pixmaps): a one-off at window creation, not
    # the steady load this test is about, so they happen before the measured phases
    _qt_repaint(time.monotonic() + 1.0)

    def check():
        results = {name: _phase(session, 4.0, load) for name, load in
                   (("idle", _idle), ("python", _busy_python), ("qt", _qt_repaint))}
        idle_calls, idle_xruns, _ = results["idle"]
        for name, (calls, xruns, expected) in results.items():
            assert calls >= 0.95 * expected, f"{name}: {calls} callbacks of {expected:.0f} expected"
            assert xruns <= xrun_allowance(calls, (idle_xruns, idle_calls)), \
                f"{name}: {xruns} xruns in {calls} callbacks vs {idle_xruns} idle"
    try:
        _with_one_retry(check)
    finally:
        plot.close()


def test_a_jack_midi_note_on_changes_the_oscillator_frequency(session, jack_server):
    import rtmidi
    from app.midi.control import MidiControl
    from app.midi.ports import MidiInput
    from tests.live.test_midi_jack import connection_settles
    session.load(GAIN_DC)
    session.set_source("midi")
    session.start()
    name = f"dualtone-test-midi-{os.getpid()}"
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=f"sender-{os.getpid()}")
    try:
        with MidiInput(MidiControl(session).feed_bytes, api=rtmidi.API_UNIX_JACK, virtual_name=name):
            ports = out.get_ports()
            out.open_port(next(i for i, p in enumerate(ports) if p.endswith(":" + name)))
            connection_settles()
            ctl = session.memory.ctl
            for note, hz in ((69, 440.0), (81, 880.0)):
                out.send_message([0x90, note, 100])
                end = time.monotonic() + 5
                while ctl[H.C_VOICE_FREQ] != hz and time.monotonic() < end:
                    time.sleep(0.01)
                assert ctl[H.C_VOICE_FREQ] == hz and ctl[H.C_VOICE_GATE] == 1.0
                # the whole analysed window must come after the note (16384 samples = 128 blocks)
                _wait_callbacks(session, (1 << 14) // 128 + 8)
                src = session.telemetry.scope(1 << 14)[:, H.SC_SOURCE]
                spectrum = np.abs(np.fft.rfft(src * np.hanning(src.size)))
                assert abs(np.argmax(spectrum) * 48000 / src.size - hz) < 10
            # last-note priority: releasing 81 falls back to the held 69; releasing 69 closes the gate
            for note, hz, gate in ((81, 440.0, 1.0), (69, 440.0, 0.0)):
                out.send_message([0x80, note, 0])
                end = time.monotonic() + 5
                while (ctl[H.C_VOICE_FREQ], ctl[H.C_VOICE_GATE]) != (hz, gate) and time.monotonic() < end:
                    time.sleep(0.01)
                assert (ctl[H.C_VOICE_FREQ], ctl[H.C_VOICE_GATE]) == (hz, gate)
    finally:
        out.close_port()
        out.delete()


def test_nan_and_inf_from_the_input_port_never_reach_the_speakers_or_the_parameters(session, jack):
    """Another JACK client plays garbage into our input and records what we send out."""
    pattern = np.random.default_rng(3).uniform(-0.5, 0.5, 128).astype(np.float32)
    pattern[[5, 40, 77, 100]] = [np.nan, np.inf, -np.inf, 3e38]
    recorded = []
    lock = threading.Lock()
    bad_out = jack.outports.register("garbage")
    listen = jack.inports.register("listen")

    @jack.set_process_callback
    def _process(frames):
        buf = bad_out.get_array()
        buf[:] = np.resize(pattern, frames)
        with lock:
            recorded.append(listen.get_array().copy())

    session.load(GAIN_DC)
    session.set_source("input")
    session.set_output("learned")
    session.start()
    jack.activate()
    ins, outs = _ports(jack, True), _ports(jack, False)
    for q in jack.get_all_connections(ins[0]):
        jack.disconnect(q, ins[0])
    jack.connect(bad_out, ins[0])
    jack.connect(outs[0], listen)
    _wait_callbacks(session, 200)
    with lock:
        heard = np.concatenate(recorded[-150:])
    assert heard.size > 0 and np.all(np.isfinite(heard)) and np.max(np.abs(heard)) <= CEILING
    counters = session.counters()
    assert counters["bad_input"] > 0 and counters["skipped"] == counters["bad_input"]
    params = session.params()
    assert all(np.isfinite(v) for v in params.values())


def test_circuit_swap_mid_stream_plays_no_garbage(session):
    session.load(GAIN_DC)
    session.set_source_gain(0.9)
    session.start()
    _wait_callbacks(session, 20)
    start = session.telemetry.scope_position
    calls_before = session.counters()["callbacks"]
    future = session.load_async(CircuitSpec("y = tanh(a*x) + b*x@1", [ParamSpec("a", 1.0), ParamSpec("b", 0.0)],
                                            hidden={"a": 4.0, "b": 0.3}, settings=Settings(optimizer="sgd", lr=0.01)))
    future.result(timeout=120)
    assert session.param_names == ["a", "b"]
    assert session.counters()["callbacks"] > calls_before      # the old circuit kept playing
    _wait_callbacks(session, 20)
    data, _ = session.telemetry.scope_since(max(start, session.telemetry.scope_position - 60000))
    out = data[:, H.SC_OUT_LEFT].astype(np.float32)      # what the device received
    assert np.all(np.isfinite(out)) and np.max(np.abs(out)) <= CEILING
    assert session.counters()["nonfinite_out"] == 0
    assert session.memory.slots[1 - session.memory.active_index] is None   # old circuit released


def test_insert_controls_turned_while_audio_runs_arrive_whole(session):
    """Twenty turns while the callback runs: each waits for the block start that takes it, and
    both channels end with exactly the last value's coefficients."""
    from engine.sptmod.file import load_model
    from engine.sptmod.stream import SptModStream
    from tests.paths import REFERENCE
    golden = REFERENCE / "sptmod" / "golden_SPTMod25_p7.npz"
    model = load_model(golden)
    session.load(GAIN_DC)
    session.set_insert(str(golden), {"p1": 0.5}, model.sha256)
    session.start()
    _wait_callbacks(session, 5)
    for v in np.linspace(0.0, 1.0, 20):
        session.set_insert_control("p1", float(v))
        ctl = session.memory.ctl
        assert ctl[H.C_CONTROL_ACK] == ctl[H.C_CONTROL_REQ]      # taken before the call returned
    ref = SptModStream(model.config, model.weights)
    ref.set_controls([1.0 if n == "p1" else d for n, d in zip(model.control_names, model.control_defaults)])
    for st in session.memory.insert.streams:
        np.testing.assert_array_equal(st.arrays()[0], ref.arrays()[0])
    assert session.counters()["nonfinite_out"] == 0
