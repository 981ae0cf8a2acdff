"""SPTMod (a float64 SptModStream) as a processor kind. Its FIFO delays the output by
64 - gcd(64, every chunk length so far): 0 for chunks on the 64-sample grid; the latency grows
once when a chunk falls off it. Its controls are the FiLM coefficients inside the weights."""
import numpy as np
from numba import carray, njit

from engine import blockabi as B
from engine.sptmod.kernels import G_P, stream_block
from app.host.processors.base import Processor, f64, i64
from app.host.processors.words import KIND_WORDS, PR_IN, PR_LATENCY, PR_MAX_FRAMES, PR_OUT, PROCESSOR_WORDS
from engine.words import declare

declare(globals(), "S_", """
    WF                 # the stream's arrays (SptModStream.arrays) and their sizes
    WF_LEN
    RO
    RO_LEN
    BM
    BM_ROWS
    BM_COLS
    GM
    GM_LEN
    WK
    WK_LEN
    IST
    GCD                # gcd of 64 and every chunk length since the last reset
""", start=KIND_WORDS, end=PROCESSOR_WORDS)


class SptModProcessor(Processor):
    def __init__(self, stream, max_frames: int):
        if stream.dtype != np.float64:
            raise ValueError("the callback runs SPTMod in float64")
        wf, ro, bm, gm, wk, ist = stream.arrays()
        P = int(gm[G_P])
        super().__init__("sptmod", max_frames, P, wf, stream.film_index())
        self.stream = stream
        t = self.table
        t[S_WF], t[S_WF_LEN] = B.address(wf), wf.size
        t[S_RO], t[S_RO_LEN] = B.address(ro), ro.size
        t[S_BM], t[S_BM_ROWS], t[S_BM_COLS] = B.address(bm), bm.shape[0], bm.shape[1]
        t[S_GM], t[S_GM_LEN] = B.address(gm), gm.size
        t[S_WK], t[S_WK_LEN] = B.address(wk), wk.size
        t[S_IST] = B.address(ist)
        t[S_GCD] = P

    def arrays(self) -> tuple:
        return (*self.stream.arrays(), *self.buffers)

    def prepare_controls(self, values):
        """The model's control values: their FiLM coefficients are computed here, off the audio
        thread, and take effect at the next latch."""
        self.prepare(self.stream.stage_controls(values))


@njit(nogil=True, cache=True)
def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


@njit(nogil=True, cache=True)
def sptmod_step(t, n):
    """The model over PR_IN[:n] into PR_OUT[:n]; False when the stream could not deliver."""
    wf = f64(t[S_WF], t[S_WF_LEN])
    ro = i64(t[S_RO], t[S_RO_LEN])
    bm = carray(B.address_as_voidptr(t[S_BM]), (t[S_BM_ROWS], t[S_BM_COLS]), dtype=np.int64)
    gm = i64(t[S_GM], t[S_GM_LEN])
    wk = f64(t[S_WK], t[S_WK_LEN])
    ist = i64(t[S_IST], 2)
    xin = f64(t[PR_IN], t[PR_MAX_FRAMES])
    y = f64(t[PR_OUT], t[PR_MAX_FRAMES])
    P = gm[G_P]
    add = 0
    g = t[S_GCD]
    if n % g != 0:                      # off the frame grid: the FIFO's delay grows once
        g2 = _gcd(g, n)
        add = (P - g2) - t[PR_LATENCY]
        t[S_GCD] = g2
        t[PR_LATENCY] = P - g2
    return stream_block(xin, y, n, add, wf, ro, bm, gm, wk, ist) == 0


@njit(nogil=True, cache=True)
def sptmod_reset(t):
    """A fresh stream: zero state, latency back to 0 (the controls are kept)."""
    wk = f64(t[S_WK], t[S_WK_LEN])
    ist = i64(t[S_IST], 2)
    for i in range(wk.shape[0]):
        wk[i] = 0.0
    ist[0] = 0
    ist[1] = 0
    gm = i64(t[S_GM], t[S_GM_LEN])
    t[S_GCD] = gm[G_P]
    t[PR_LATENCY] = 0
