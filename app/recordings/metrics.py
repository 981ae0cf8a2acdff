"""How close a learned output is to its target."""
import numpy as np


def esr(target, output) -> float:
    """The error-to-signal ratio sum((t - y)^2) / sum(t^2), as NAM and the SPTMod trainer report
    it; nan for a silent target. Pairs with a non-finite value are left out."""
    t = np.asarray(target, dtype=np.float64)
    y = np.asarray(output, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(y)
    energy = float(np.sum(np.square(t[ok])))
    if energy == 0.0:
        return float("nan")
    return float(np.sum(np.square(t[ok] - y[ok])) / energy)
