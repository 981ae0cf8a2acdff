"""A stand-in for a device plugged into the audio interface, for the hardware-in-the-loop tests:
a second JACK client, in its own process, that applies a known circuit to what it hears, with a
known extra delay of its own, and sends the result back.

    python tests/live/loop_device.py --name dev --delay 37 --khz 1.2 --drive 3 --send 2 --return 1

Per sample: v = (1 - c) x + c v[-1] with c = exp(-2 pi 1000 khz / 48000), y = post tanh(drive v),
played `delay` samples late. --send K / --return C: it listens to the K-th output and answers on
the C-th input (from 1, as Dualtone's --send-output and --target-input count) of the PortAudio
stream that opens after it started. PortAudio's JACK client is "PortAudio" (or "PortAudio-01"
when another process has that name) and numbers its ports on from the last stream it opened in
that process (a second stream's are in_2, in_3, out_2, out_3), so the ports are found by their
order among the new ones. The return is kept exclusive (PortAudio connects its inputs to the
system's capture ports when it starts). Prints "ready" once active; runs until stdin closes."""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import math
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, types
from numba.core.extending import intrinsic

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from engine.blockabi import address_as_voidptr  # noqa: E402  (the repo root is on the path now)


@njit(cache=True, nogil=True)
def device_block(x, y, state, line, c, drive, post):
    """state: [v, ring position]; line: the delay ring (its length is delay + 1)."""
    v = state[0]
    pos = int(state[1])
    size = line.shape[0]
    for i in range(x.shape[0]):
        v = (1.0 - c) * x[i] + c * v
        line[pos] = post * math.tanh(drive * v)
        y[i] = line[(pos + 1) % size]              # written `size - 1` samples ago
        pos = (pos + 1) % size
    state[0] = v
    state[1] = pos


@intrinsic
def _port_buffer(typingctx, get_buffer, port, frames):
    """libjack's `void *jack_port_get_buffer(jack_port_t *, jack_nframes_t)` called through its
    address (all three arguments int64)."""
    if not all(a == types.int64 for a in (get_buffer, port, frames)):
        return None

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(i8p, [i8p, ir.IntType(32)])
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        return builder.call(fn, [builder.inttoptr(args[1], i8p), builder.trunc(args[2], ir.IntType(32))])
    return types.voidptr(get_buffer, port, frames), codegen


# the cfunc's argument: int64 words
W_GET_BUFFER, W_IN, W_OUT, W_STATE, W_LINE, W_LINE_SIZE, W_CONSTANTS, WORDS = range(8)


@cfunc(types.int32(types.uint32, types.voidptr), nogil=True, cache=True)
def device_process(frames, arg):
    """JACK's process callback: the device on one cycle of its input port into its output port."""
    w = carray(arg, (WORDS,), dtype=np.int64)
    n = np.int64(frames)
    x = carray(_port_buffer(w[W_GET_BUFFER], w[W_IN], n), (n,), dtype=np.float32)
    y = carray(_port_buffer(w[W_GET_BUFFER], w[W_OUT], n), (n,), dtype=np.float32)
    state = carray(address_as_voidptr(w[W_STATE]), (2,), dtype=np.float64)
    line = carray(address_as_voidptr(w[W_LINE]), (w[W_LINE_SIZE],), dtype=np.float64)
    k = carray(address_as_voidptr(w[W_CONSTANTS]), (3,), dtype=np.float64)
    device_block(x, y, state, line, k[0], k[1], k[2])
    return 0


def _address(cdata) -> int:
    """The address in a python-jack (cffi) pointer."""
    import jack
    return int(jack._ffi.cast("uintptr_t", cdata))


def device_response(x, delay, khz, drive, post=1.0, rate=48000.0):
    """The same device offline, in float64."""
    x = np.asarray(x, dtype=np.float64)
    y = np.empty_like(x)
    device_block(x, y, np.zeros(2), np.zeros(delay + 1), math.exp(-2 * math.pi * 1000 * khz / rate), drive, post)
    return y


SETTLED_S = 1.0       # the routing is left alone once it has been right this long
STREAM_PORT = re.compile(r"(PortAudio[^:]*):(in|out)_(\d+)")


def _stream_port(names: list, direction: str, channel: int):
    """The `channel`-th (from 1) port of a direction of the PortAudio stream among `names`."""
    found = sorted((m.group(1), int(m.group(3)), n) for n in names
                   for m in [STREAM_PORT.fullmatch(n)] if m and m.group(2) == direction)
    return found[channel - 1][2] if len(found) >= channel else None


def _keep_routed(client, ours_in, ours_out, send, ret, stop):
    """Connect the stream's send output to our input and our output to its return input once
    they exist, and keep everything else off that input. Once the routing has stayed right for
    SETTLED_S this thread ends (its polling is load on the machine the test measures)."""
    old = {p.name for p in client.get_ports()}
    right_since = None
    while not stop.is_set():
        right = False
        try:
            new = [p.name for p in client.get_ports() if p.name not in old]
            listen, answer = _stream_port(new, "out", send), _stream_port(new, "in", ret)
            if listen is not None and answer is not None:
                if not any(p.name == listen for p in client.get_all_connections(ours_in)):
                    client.connect(listen, ours_in)
                for p in client.get_all_connections(answer):
                    if p.name != ours_out.name:
                        client.disconnect(p, answer)
                if not any(p.name == answer for p in client.get_all_connections(ours_out)):
                    client.connect(ours_out, answer)
                right = any(p.name == listen for p in client.get_all_connections(ours_in)) and \
                    [p.name for p in client.get_all_connections(answer)] == [ours_out.name]
        except Exception:                          # a port that vanished meanwhile: try again
            pass
        now = time.monotonic()
        right_since = (right_since or now) if right else None
        if right_since is not None and now - right_since >= SETTLED_S:
            return
        time.sleep(0.002)


def main(argv=None) -> int:
    import jack
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--delay", type=int, default=0)
    p.add_argument("--khz", type=float, default=1.2)
    p.add_argument("--drive", type=float, default=3.0)
    p.add_argument("--post", type=float, default=1.0)
    p.add_argument("--send", type=int, help="the stream's output channel the device listens to (from 1)")
    p.add_argument("--return", dest="ret", type=int, help="the stream's input channel it answers on (from 1)")
    a = p.parse_args(argv)
    client = jack.Client(a.name, no_start_server=True)
    rate = client.samplerate
    ours_in = client.inports.register("in")
    ours_out = client.outports.register("out")
    state, line = np.zeros(2), np.zeros(a.delay + 1)
    constants = np.array([math.exp(-2 * math.pi * 1000 * a.khz / rate), a.drive, a.post])
    libjack = ctypes.CDLL("libjack.so.0")
    words = np.zeros(WORDS, dtype=np.int64)     # kept alive with the arrays it points at until exit
    words[W_GET_BUFFER] = ctypes.cast(libjack.jack_port_get_buffer, ctypes.c_void_p).value
    words[W_IN], words[W_OUT] = _address(ours_in._ptr), _address(ours_out._ptr)
    words[W_STATE], words[W_LINE], words[W_LINE_SIZE] = state.ctypes.data, line.ctypes.data, line.size
    words[W_CONSTANTS] = constants.ctypes.data
    libjack.jack_set_process_callback.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    if libjack.jack_set_process_callback(_address(client._ptr), device_process.address, words.ctypes.data):
        raise RuntimeError("JACK refused the process callback")

    stop = threading.Event()
    client.activate()
    router = threading.Thread(target=_keep_routed, args=(client, ours_in, ours_out, a.send, a.ret, stop),
                              daemon=True)
    if a.send and a.ret:
        router.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()                            # until the test closes our stdin
    finally:
        stop.set()
        client.deactivate(ignore_errors=True)
        client.close()
    return 0


@contextlib.contextmanager
def loop_device(name: str, delay: int, khz: float = 1.2, drive: float = 3.0, post: float = 1.0,
                send: int | None = 2, ret: int | None = 1):
    """Run the device in a child process; yields it once its JACK client is active."""
    cmd = [sys.executable, os.path.abspath(__file__), "--name", name, "--delay", str(delay), "--khz", str(khz),
           "--drive", str(drive), "--post", str(post)]
    cmd += ["--send", str(send), "--return", str(ret)] if send and ret else []
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()               # "ready", or nothing when it failed
        if line.strip() != "ready":
            proc.kill()
            raise RuntimeError(f"the loop device did not start: {proc.stderr.read()[-2000:]}")
        yield proc
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
