"""A picture of how well a learned circuit matches a recording: the spectra of the target and
the learned output, and a stretch of both waveforms. matplotlib is an optional extra."""
from __future__ import annotations

import numpy as np

from app.recordings.metrics import esr

INSTALL = "pip install 'dualtone[report]' (or .venv/bin/pip install matplotlib==3.11.2)"


class ReportError(ValueError):
    pass


def write_report(path: str, target, learned, sample_rate: float, title: str,
                 params: dict[str, float] | None = None):
    """A PNG at path: Welch power spectra (dB over log frequency) and about 20 ms of both
    waveforms from the middle, the ESR and the learned values in the subtitle."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        raise ReportError(f"--report needs matplotlib: {INSTALL}") from None
    from scipy.signal import welch
    target = np.asarray(target, dtype=np.float64)
    learned = np.asarray(learned, dtype=np.float64)
    fig = Figure(figsize=(10, 7), dpi=100)
    top, bottom = fig.subplots(2, 1)
    nper = int(min(8192, max(256, target.size // 8)))
    for data, label, style in ((target, "target (the recording)", "-"), (learned, "learned circuit", "--")):
        f, p = welch(data, sample_rate, nperseg=min(nper, data.size))
        keep = f > 0
        top.semilogx(f[keep], 10 * np.log10(np.maximum(p[keep], 1e-30)), style, label=label, linewidth=1.2)
    top.set_xlabel("frequency (Hz)")
    top.set_ylabel("power (dB/Hz)")
    top.grid(True, which="both", alpha=0.3)
    top.legend(loc="lower left")
    n = min(int(0.02 * sample_rate), target.size)
    start = max((target.size - n) // 2, 0)
    t_ms = 1000.0 * (start + np.arange(n)) / sample_rate
    bottom.plot(t_ms, target[start:start + n], "-", label="target (the recording)", linewidth=1.2)
    bottom.plot(t_ms, learned[start:start + n], "--", label="learned circuit", linewidth=1.2)
    bottom.set_xlabel("time (ms)")
    bottom.set_ylabel("amplitude")
    bottom.grid(True, alpha=0.3)
    bottom.legend(loc="upper right")
    values = ", ".join(f"{k} = {v:.6g}" for k, v in (params or {}).items())
    fig.suptitle(f"{title}\nESR {esr(target, learned):.3g}" + (f"   {values}" if values else ""))
    fig.tight_layout()
    try:
        fig.savefig(path, format="png")
    except OSError as e:
        raise ReportError(f"--report {path}: cannot write it ({e.strerror or e})") from None
