"""A LADSPA or LV2 plugin as a processor kind. The callback calls the plugin's `run` through its
address (no Python, nothing captured, so cache=True works), with flush-to-zero and
denormals-are-zero set around the call and the caller's MXCSR restored. Controls are float32
ports: the latched goals (float64, in the plugin's units) are written at each block start,
continuous ones gliding, stepped ones jumping. The latency port is read after every run.

A non-finite output cannot be cured on the audio thread (LADSPA/LV2 reset a plugin with
deactivate/activate, which are not real-time safe): the step stops calling `run` and plays
silence while PL_RESTART_PENDING is set, and the PluginProcessor's watcher restarts the instance
off the audio thread and clears it."""
from __future__ import annotations

import math
import platform
import threading

import numpy as np
from llvmlite import ir
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from engine import blockabi as B
from engine.words import declare
from app.host.processors.base import Processor, f64, i64
from app.host.processors.words import KIND_WORDS, PR_IN, PR_LATENCY, PR_MAX_FRAMES, PR_OUT, PR_RING_LEN, PROCESSOR_WORDS
from app.plugins.atoms import reset_atoms
from app.plugins.instance import API_LADSPA, PluginInstance

declare(globals(), "PL_", """
    RUN                # address of the plugin's run function
    HANDLE             # its instance handle
    API                # instance.API_LADSPA (64-bit sample count) or API_LV2 (32-bit)
    AUDIO_IN           # float32[n_in, max_frames]: what the plugin reads
    N_IN
    AUDIO_OUT          # float32[n_out, max_frames]: what it writes
    N_OUT
    CHANNEL            # the output channel heard and learned (0 left, 1 right)
    PORTS              # float32[n_controls]: the control input ports
    N_CONTROLS
    GOALS              # float64[n_controls]: the latched control values (PR_CTL_TARGET)
    STEPPED            # int64[n_controls]: 1 for integer, toggled and enumerated controls
    GLIDE_SAMPLES      # a continuous control's glide time constant, in samples
    CTL_OUT            # float32[]: the control output ports
    LATENCY_SLOT       # index of the latency port in CTL_OUT (-1: none)
    ATOMS              # int64[n_atoms, 3]: atom port buffers to prepare before each run
    N_ATOMS
    URIDS              # int64[2]: atom:Sequence, atom:Chunk
    RESTART_PENDING    # 1: the output went non-finite; silent until restarted off the audio thread
    RUNS               # calls of run so far
""", start=KIND_WORDS, end=PROCESSOR_WORDS)

GLIDE_SECONDS = 0.02        # as the hidden knobs' glide
MAX_LATENCY = 1 << 14       # samples the learner's input can be delayed to match
FTZ_DAZ = 0x8040            # MXCSR bits 15 (flush to zero) and 6 (denormals are zero)
_X86 = platform.machine() in ("x86_64", "AMD64", "i686", "i386")


@intrinsic
def _call_run_64(typingctx, fn_address, handle, n):
    """LADSPA: void run(LADSPA_Handle, unsigned long SampleCount) (64-bit on LP64)."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), ir.IntType(64)])
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(fn, [builder.inttoptr(args[1], ir.IntType(8).as_pointer()), args[2]])
        return context.get_dummy_value()
    return types.none(types.int64, types.int64, types.int64), codegen


@intrinsic
def _call_run_32(typingctx, fn_address, handle, n):
    """LV2: void run(LV2_Handle, uint32_t sample_count)."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), ir.IntType(32)])
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(fn, [builder.inttoptr(args[1], ir.IntType(8).as_pointer()), builder.trunc(args[2], ir.IntType(32))])
        return context.get_dummy_value()
    return types.none(types.int64, types.int64, types.int64), codegen


def _mxcsr_function(name, writes):
    """Code calling LLVM's stmxcsr (read into memory) or ldmxcsr (load from memory)."""
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        slot = cgutils.alloca_once(builder, i32)
        if writes:
            builder.store(builder.trunc(args[0], i32), slot)
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        builder.call(fn, [builder.bitcast(slot, ir.IntType(8).as_pointer())])
        if writes:
            return context.get_dummy_value()
        return builder.zext(builder.load(slot), ir.IntType(64))
    return codegen


@intrinsic
def _read_mxcsr(typingctx):
    """The calling thread's SSE control/status register (llvm.x86.sse.stmxcsr)."""
    return types.int64(), _mxcsr_function("llvm.x86.sse.stmxcsr", writes=False)


@intrinsic
def _write_mxcsr(typingctx, value):
    return types.none(types.int64), _mxcsr_function("llvm.x86.sse.ldmxcsr", writes=True)


if not _X86:            # elsewhere the plugins run with the thread's floating-point mode as it is
    @njit(nogil=True, cache=True)
    def _read_mxcsr_or_zero():
        return 0

    @njit(nogil=True, cache=True)
    def _write_mxcsr_if_x86(value):
        pass
else:
    @njit(nogil=True, cache=True)
    def _read_mxcsr_or_zero():
        return _read_mxcsr()

    @njit(nogil=True, cache=True)
    def _write_mxcsr_if_x86(value):
        _write_mxcsr(value)


@njit(nogil=True, cache=True)
def _f32(address, n):
    return carray(B.address_as_voidptr(address), (n,), dtype=np.float32)


@njit(nogil=True, cache=True)
def _f32_2d(address, rows, cols):
    return carray(B.address_as_voidptr(address), (rows, cols), dtype=np.float32)


@njit(nogil=True, cache=True)
def _set_controls(t, n):
    """The control ports move towards their goals: continuous ones by a one-pole glide over this
    block, stepped ones at once."""
    k = t[PL_N_CONTROLS]
    ports = _f32(t[PL_PORTS], k)
    goals = f64(t[PL_GOALS], k)
    stepped = i64(t[PL_STEPPED], k)
    tau = t[PL_GLIDE_SAMPLES]
    a = 1.0 - math.exp(-n / tau) if tau > 0 else 1.0
    for c in range(k):
        g = goals[c]
        if stepped[c] or a >= 1.0:
            ports[c] = np.float32(g)
        else:
            cur = np.float64(ports[c])
            nxt = cur + a * (g - cur)
            if abs(g - nxt) <= 1e-7 * (abs(g) + 1e-30):
                nxt = g
            ports[c] = np.float32(nxt)


@njit(nogil=True, cache=True)
def plugin_step(t, n):
    """The plugin over PR_IN[:n] into PR_OUT[:n]; False when its output is not finite."""
    maxf = t[PR_MAX_FRAMES]
    y = f64(t[PR_OUT], maxf)
    if t[PL_RESTART_PENDING]:
        for i in range(n):
            y[i] = 0.0
        return True
    xin = f64(t[PR_IN], maxf)
    ain = _f32_2d(t[PL_AUDIO_IN], t[PL_N_IN], maxf)
    aout = _f32_2d(t[PL_AUDIO_OUT], t[PL_N_OUT], maxf)
    for c in range(t[PL_N_IN]):                 # a stereo plugin hears the mono input on both sides
        for i in range(n):
            ain[c, i] = np.float32(xin[i])
    _set_controls(t, n)
    if t[PL_N_ATOMS] > 0:
        atoms = carray(B.address_as_voidptr(t[PL_ATOMS]), (t[PL_N_ATOMS], 3), dtype=np.int64)
        reset_atoms(atoms, i64(t[PL_URIDS], 2))
    saved = _read_mxcsr_or_zero()
    _write_mxcsr_if_x86(saved | FTZ_DAZ)
    if t[PL_API] == API_LADSPA:
        _call_run_64(t[PL_RUN], t[PL_HANDLE], n)
    else:
        _call_run_32(t[PL_RUN], t[PL_HANDLE], n)
    _write_mxcsr_if_x86(saved)
    t[PL_RUNS] += 1
    ch = t[PL_CHANNEL]
    for i in range(n):
        y[i] = np.float64(aout[ch, i])
    slot = t[PL_LATENCY_SLOT]
    if slot >= 0:
        v = np.float64(_f32(t[PL_CTL_OUT], slot + 1)[slot])
        if v - v == 0.0:
            t[PR_LATENCY] = min(max(int(round(v)), 0), t[PR_RING_LEN] // 2)
    return True


@njit(nogil=True, cache=True)
def plugin_reset(t):
    """Ask for a restart off the audio thread; silent until then."""
    t[PL_RESTART_PENDING] = 1


class PluginProcessor(Processor):
    """instance: a PluginInstance (activated here); channel: the output channel used (0/1).
    Controls are given in info.controls order, in the plugin's units."""

    def __init__(self, instance: PluginInstance, max_frames: int, channel: int = 0):
        info = instance.info
        if max_frames > instance.max_frames:
            raise ValueError(f"the instance holds {instance.max_frames} frames, not {max_frames}")
        if not 0 <= channel < instance.audio_out.shape[0]:
            raise ValueError(f"{info.id} has {instance.audio_out.shape[0]} output channel(s), not {channel + 1}")
        self.goals = instance.controls.astype(np.float64)
        k = self.goals.size
        super().__init__("plugin", max_frames, MAX_LATENCY, self.goals, np.arange(k))
        self.instance = instance
        self.stepped = np.array([int(c.integer or c.toggled or c.enumerated) for c in info.controls], dtype=np.int64)
        t = self.table
        t[PL_RUN], t[PL_HANDLE], t[PL_API] = instance.run_address, instance.handle, instance.api_code
        t[PL_AUDIO_IN], t[PL_N_IN] = B.address(instance.audio_in), instance.audio_in.shape[0]
        t[PL_AUDIO_OUT], t[PL_N_OUT] = B.address(instance.audio_out), instance.audio_out.shape[0]
        t[PL_CHANNEL] = channel
        t[PL_PORTS], t[PL_N_CONTROLS] = B.address(instance.controls), k
        t[PL_GOALS] = self._keep(self.goals)
        t[PL_STEPPED] = self._keep(self.stepped)
        t[PL_GLIDE_SAMPLES] = max(int(GLIDE_SECONDS * instance.sample_rate), 1)
        t[PL_CTL_OUT], t[PL_LATENCY_SLOT] = B.address(instance.control_outputs), instance.latency_slot
        t[PL_ATOMS], t[PL_N_ATOMS] = B.address(instance.atom_ports), instance.atom_ports.shape[0]
        self._urids = np.ascontiguousarray(instance.atom_urids, dtype=np.int64)
        t[PL_URIDS] = B.address(self._urids)
        instance.activate()
        self._closed = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="plugin restarts", daemon=True)
        self._watcher.start()

    def arrays(self) -> tuple:
        i = self.instance
        return (*self.buffers, i.audio_in, i.audio_out, i.controls, i.control_outputs, i.atom_ports,
                *i.atom_buffers)

    def prepare_controls(self, values):
        """Control values in info.controls order (the plugin's units), clamped; they take effect
        at the next latch."""
        self.prepare(np.array([c.clamp(v) for c, v in zip(self.instance.info.controls, values)]))

    def glide_now(self):
        """Set the ports to their goals at once (before the first block)."""
        self.instance.controls[:] = self.goals

    def _watch(self):
        while not self._closed.wait(0.02):
            self.service()

    def service(self):
        """Restart the instance if the audio thread asked for it (off the audio thread)."""
        if self.table[PL_RESTART_PENDING]:
            self.instance.restart()
            self.table[PL_RESTART_PENDING] = 0

    @property
    def runs(self) -> int:
        return int(self.table[PL_RUNS])

    def close(self):
        """Stop the watcher and free the instance: only once no callback runs this table."""
        self._closed.set()
        self.instance.close()
