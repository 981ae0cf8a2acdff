"""A plugin instance and the buffers it is connected to. Everything here runs off the audio
thread: instantiate, connect every port to a preallocated buffer, activate, deactivate, free.
The callback needs only `run_address`, `handle` and the buffer addresses (processors/plugin.py).

API modules subclass PluginInstance: they set run_address, handle and the ctypes functions
_connect_fn, _activate_fn, _deactivate_fn, and implement _cleanup."""
from __future__ import annotations

import ctypes

import numpy as np

from app.plugins.catalogue import PluginInfo

API_LADSPA, API_LV2 = 1, 2          # run's sample count: unsigned long (64-bit) / uint32_t
ATOM_CAPACITY = 8192                # bytes per atom port buffer (a sequence with no events)


class PluginError(RuntimeError):
    """A plugin that cannot be loaded or run here (one line, said to the user)."""


class PluginInstance:
    api_code = 0

    def __init__(self, info: PluginInfo, sample_rate: float, max_frames: int):
        if info.unusable:
            raise PluginError(f"{info.id}: {info.unusable}")
        self.info = info
        self.sample_rate = float(sample_rate)
        self.max_frames = int(max_frames)
        self.run_address = 0
        self.handle = 0
        self.active = False
        self._closed = False
        n_in, n_out = len(info.audio_inputs), len(info.audio_outputs)
        self.audio_in = np.zeros((n_in, max_frames), dtype=np.float32)
        self.audio_out = np.zeros((n_out, max_frames), dtype=np.float32)
        # control inputs in info.controls order, set to their defaults
        self.controls = np.array([c.default for c in info.controls], dtype=np.float32)
        outs = [p for p in info.ports if p.type == "control" and p.output]
        self.control_outputs = np.zeros(max(len(outs), 1), dtype=np.float32)
        self.latency_slot = next((k for k, p in enumerate(outs) if p.index == info.latency_port), -1)
        self._cv = np.zeros(max_frames, dtype=np.float32)          # every CV input reads silence
        self._cv_out: list[np.ndarray] = []
        atoms = [p for p in info.ports if p.type == "atom"]
        self.atom_buffers = [np.zeros(ATOM_CAPACITY // 8, dtype=np.int64) for _ in atoms]
        # one row per atom port: address, capacity in bytes, 1 for an output
        self.atom_ports = np.array([[a.ctypes.data, ATOM_CAPACITY, int(p.output)]
                                    for a, p in zip(self.atom_buffers, atoms)], dtype=np.int64).reshape(-1, 3)
        self._outs = outs

    # ---- the C calls: API modules set these ctypes functions (activate/deactivate may be None)
    _connect_fn = _activate_fn = _deactivate_fn = None

    def _connect(self, port: int, address: int):
        self._connect_fn(self.handle, port, address)

    def _activate(self):
        if self._activate_fn is not None:
            self._activate_fn(self.handle)

    def _deactivate(self):
        if self._deactivate_fn is not None:
            self._deactivate_fn(self.handle)

    def _cleanup(self):
        raise NotImplementedError

    # ---- the life cycle
    def connect_all(self):
        """Connect every port to its buffer (done once, before activate)."""
        ins = iter(range(self.audio_in.shape[0]))
        outs = iter(range(self.audio_out.shape[0]))
        ctl = {c.index: k for k, c in enumerate(self.info.controls)}
        out_ctl = {p.index: k for k, p in enumerate(self._outs)}
        atom = iter(range(len(self.atom_buffers)))
        for p in self.info.ports:
            if p.type == "audio":
                buf = self.audio_out[next(outs)] if p.output else self.audio_in[next(ins)]
                self._connect(p.index, buf.ctypes.data)
            elif p.type == "control":
                if p.output:
                    self._connect(p.index, self.control_outputs.ctypes.data + 4 * out_ctl[p.index])
                else:
                    self._connect(p.index, self.controls.ctypes.data + 4 * ctl[p.index])
            elif p.type == "cv" and p.output:       # its own buffer: never fed back into a CV input
                self._cv_out.append(np.zeros(self.max_frames, dtype=np.float32))
                self._connect(p.index, self._cv_out[-1].ctypes.data)
            elif p.type == "cv":
                self._connect(p.index, self._cv.ctypes.data)
            elif p.type == "atom":
                self._connect(p.index, self.atom_buffers[next(atom)].ctypes.data)
            else:
                raise PluginError(f"{self.info.id}: port '{p.symbol}' has a type Dualtone cannot feed")

    def activate(self):
        if not self.active:
            self._activate()
            self.active = True

    def deactivate(self):
        if self.active:
            self._deactivate()
            self.active = False

    def restart(self):
        """Deactivate and activate: the plugin's state starts over (after a non-finite output)."""
        self.deactivate()
        self.activate()

    def close(self):
        """Free the instance (only once no callback can call it any more)."""
        if not self._closed:
            self._closed = True
            self.deactivate()
            self._cleanup()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ---- a Python-side run, for the probe, the tests and the benchmark
    def run(self, n: int):
        """Call run(handle, n) through ctypes (the callback calls the same address from Numba)."""
        if n > self.max_frames:
            raise ValueError(f"{n} frames: at most {self.max_frames}")
        if self._run_fn is None:
            count = ctypes.c_ulong if self.api_code == API_LADSPA else ctypes.c_uint32
            self._run_fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, count)(self.run_address)
        if self.atom_ports.shape[0]:
            from app.plugins.atoms import reset_atoms
            reset_atoms(self.atom_ports, self.atom_urids)
        self._run_fn(self.handle, n)

    _run_fn = None

    # LV2 instances set these to urid:map's ids of atom:Sequence and atom:Chunk
    atom_urids = np.zeros(2, dtype=np.int64)

    @property
    def latency(self) -> int:
        """The latency the plugin reports (valid after its first run), 0 without a latency port."""
        if self.latency_slot < 0:
            return 0
        v = float(self.control_outputs[self.latency_slot])
        return max(int(round(v)), 0) if np.isfinite(v) else 0
