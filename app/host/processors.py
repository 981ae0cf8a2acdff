"""SPTMod inside the audio callback: as the source of a target's `sptmod` signal (run_model), or
as an insert effect on the output (run_insert, one model per channel, before the safety stage).

A slot whose target reads `sptmod` carries a model table (int64 words: the addresses of a
float64 SptModStream's arrays and of the host's own buffers). Each chunk, the callback
1. feeds the model the source block (NaN/Inf replaced by 0: a non-finite sample would stay in the
   model's state until a reset, reference README 3.9);
2. writes the model output into the target column of the slot's `out`, where the kernel reads it;
3. gives the learnable circuit the source delayed by the model's FIFO latency (64 - gcd of the
   chunk lengths; 0 for blocks that are multiples of 64), so target and learned output compare
   the same input samples;
4. restarts the model (zero state, counted) if its output is ever non-finite.
Nothing here allocates; the arrays belong to the ModelProcessor that built the table.

Controls change at a block boundary, never mid-block: the host computes the new FiLM
coefficients off the audio thread into the table's pending buffer and raises C_CONTROL_REQ; at its
next block start the callback copies every ready pending buffer into the weights it reads
(latch_controls) and acknowledges, so the two channels of an insert always change together.
"""
from __future__ import annotations

import math

import numpy as np
from numba import carray, njit

from engine import blockabi as B
from engine.sptmod.stream import G_P, stream_block

(M_WF, M_WF_LEN, M_RO, M_RO_LEN, M_BM, M_BM_ROWS, M_BM_COLS, M_GM, M_GM_LEN, M_WK, M_WK_LEN,
 M_IST, M_IN, M_Y, M_DRY, M_RING, M_RING_LEN, M_RING_POS, M_GCD, M_LAT, M_RESTARTS,
 M_MAX_FRAMES,
 M_FILM_PENDING,    # float64[M_FILM_LEN]: the next FiLM coefficients (written off the audio thread)
 M_FILM_INDEX,      # int64[M_FILM_LEN]: where each goes in the weights
 M_FILM_LEN,
 M_FILM_READY,      # 1: the pending coefficients wait for the next block start
 ) = range(26)
MODEL_WORDS = 32


def model_table(stream, max_frames: int, keep: list) -> np.ndarray:
    """The table for a float64 SptModStream; the buffers it allocates are appended to `keep`
    (the caller holds them as long as the table is in use)."""
    if stream.dtype != np.float64:
        raise ValueError("the callback runs SPTMod in float64")
    wf, ro, bm, gm, wk, ist = stream.arrays()
    P = int(gm[G_P])
    ring_len = 1 << int(math.ceil(math.log2(2 * P)))          # holds any latency < P
    xin, y, dry = (np.zeros(max_frames) for _ in range(3))
    ring = np.zeros(ring_len)
    keep.extend([xin, y, dry, ring])
    t = np.zeros(MODEL_WORDS, dtype=np.int64)
    t[M_WF], t[M_WF_LEN] = B.address(wf), wf.size
    t[M_RO], t[M_RO_LEN] = B.address(ro), ro.size
    t[M_BM], t[M_BM_ROWS], t[M_BM_COLS] = B.address(bm), bm.shape[0], bm.shape[1]
    t[M_GM], t[M_GM_LEN] = B.address(gm), gm.size
    t[M_WK], t[M_WK_LEN] = B.address(wk), wk.size
    t[M_IST] = B.address(ist)
    t[M_IN], t[M_Y], t[M_DRY] = B.address(xin), B.address(y), B.address(dry)
    t[M_RING], t[M_RING_LEN] = B.address(ring), ring_len
    t[M_GCD] = P
    t[M_MAX_FRAMES] = max_frames
    return t


class ModelProcessor:
    """A float64 SptModStream as the callback runs it: its table, the buffers the table points
    to, and double-buffered controls (prepare_controls now, latched at a block start)."""

    def __init__(self, stream, max_frames: int):
        self.stream = stream
        self.buffers: list = []
        self.table = model_table(stream, max_frames, self.buffers)
        self.film_index = stream.film_index()
        self.film_pending = np.zeros(self.film_index.size)
        self.buffers += [self.film_index, self.film_pending]
        t = self.table
        t[M_FILM_PENDING], t[M_FILM_INDEX] = B.address(self.film_pending), B.address(self.film_index)
        t[M_FILM_LEN] = self.film_index.size

    def arrays(self) -> tuple:
        """Every array the callback reaches through the table (to keep resident)."""
        return (*self.stream.arrays(), *self.buffers)

    def prepare_controls(self, values):
        """Compute the FiLM coefficients for these control values into the pending buffer; the
        caller waits for any earlier request to be acknowledged first, then requests a latch."""
        self.film_pending[:] = self.stream.stage_controls(values)
        self.table[M_FILM_READY] = 1

    def latch_now(self):
        """Take the pending coefficients here (only while the callback does not run this table)."""
        latch_controls(self.table)

    @property
    def restarts(self) -> int:
        return int(self.table[M_RESTARTS])

    @property
    def latency(self) -> int:
        return int(self.table[M_LAT])


@njit(nogil=True, cache=True)
def latch_controls(t):
    """At a block start: pending FiLM coefficients (if any) into the weights the model reads."""
    if t[M_FILM_READY] == 0:
        return
    wf = _f64(t[M_WF], t[M_WF_LEN])
    pending = _f64(t[M_FILM_PENDING], t[M_FILM_LEN])
    index = _i64(t[M_FILM_INDEX], t[M_FILM_LEN])
    for k in range(t[M_FILM_LEN]):
        wf[index[k]] = pending[k]
    t[M_FILM_READY] = 0


def dry_address(table: np.ndarray) -> int:
    """Where the learnable circuit's (delayed) input lives: the slot's S_X for a model slot."""
    return int(table[M_DRY])


@njit(nogil=True, cache=True)
def _f64(address, n):
    return carray(B.address_as_voidptr(address), (n,), dtype=np.float64)


@njit(nogil=True, cache=True)
def _i64(address, n):
    return carray(B.address_as_voidptr(address), (n,), dtype=np.int64)


@njit(nogil=True, cache=True)
def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


@njit(nogil=True, cache=True)
def _model_step(t, x, n):
    """model(x[:n]) into the table's y buffer (returned): the FIFO's delay grows once for a chunk
    off the frame grid; non-finite input is fed as 0; a model that blows up restarts silent."""
    maxf = t[M_MAX_FRAMES]
    wf = _f64(t[M_WF], t[M_WF_LEN])
    ro = _i64(t[M_RO], t[M_RO_LEN])
    bm = carray(B.address_as_voidptr(t[M_BM]), (t[M_BM_ROWS], t[M_BM_COLS]), dtype=np.int64)
    gm = _i64(t[M_GM], t[M_GM_LEN])
    wk = _f64(t[M_WK], t[M_WK_LEN])
    ist = _i64(t[M_IST], 2)
    xin = _f64(t[M_IN], maxf)
    y = _f64(t[M_Y], maxf)
    P = gm[G_P]
    add = 0
    g = t[M_GCD]
    if n % g != 0:
        g2 = _gcd(g, n)
        add = (P - g2) - t[M_LAT]
        t[M_GCD] = g2
        t[M_LAT] = P - g2
    for i in range(n):
        v = x[i]
        xin[i] = v if v - v == 0.0 else 0.0
    missing = stream_block(xin, y, n, add, wf, ro, bm, gm, wk, ist)
    ok = missing == 0
    for i in range(n):
        if not (y[i] - y[i] == 0.0):
            ok = False
    if not ok:
        for i in range(wk.shape[0]):
            wk[i] = 0.0
        ist[0] = 0
        ist[1] = 0
        t[M_GCD] = P
        t[M_LAT] = 0
        t[M_RESTARTS] += 1
        for i in range(n):
            y[i] = 0.0
    return y


@njit(nogil=True, cache=True)
def run_model(t, x, out, n):
    """One chunk as a ground truth: model(x) -> out[:n, 0]; the delayed x -> the dry buffer."""
    y = _model_step(t, x, n)
    for i in range(n):
        out[i, 0] = y[i]
    dry = _f64(t[M_DRY], t[M_MAX_FRAMES])
    ring = _f64(t[M_RING], t[M_RING_LEN])
    lat = t[M_LAT]
    mask = t[M_RING_LEN] - 1
    pos = t[M_RING_POS]
    for i in range(n):
        ring[pos & mask] = x[i]
        dry[i] = ring[(pos - lat) & mask]
        pos += 1
    t[M_RING_POS] = pos


@njit(nogil=True, cache=True)
def run_insert(t, buf, n):
    """One chunk as an insert effect: buf[:n] is replaced by model(buf[:n]) (delayed by the
    model's FIFO latency when chunks are off the 64-sample grid)."""
    y = _model_step(t, buf, n)
    for i in range(n):
        buf[i] = y[i]


def reset_model(table: np.ndarray, stream) -> None:
    """Back to a fresh stream (call only while the callback does not run this slot)."""
    wf, ro, bm, gm, wk, ist = stream.arrays()
    wk[:] = 0.0
    ist[:] = 0
    table[M_GCD], table[M_LAT], table[M_RING_POS] = int(gm[G_P]), 0, 0
