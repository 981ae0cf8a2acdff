"""The five diff.lib reference runs (../shared/reference/difflib) as `learn` command lines.

Shared by the parity tests and the benchmarks. `columns` maps each reference CSV column to the
column of our trace with the same meaning (README 3.0: p[n] used at n, L[n], raw g[n])."""
import math
from pathlib import Path

# An unedited copy of ../shared/reference/difflib, so a clone anywhere runs the parity tests;
# tests/engine/test_reference_data.py checks every file against the SHA-256 table in its README.
REFERENCE = Path(__file__).resolve().parent / "reference" / "difflib"

FIR_TAPS = " + ".join(["b0*x"] + [f"b{k}*x@{k}" for k in range(1, 8)])

CASES = {
    "gain": dict(
        args=["--circuit", "y = gain*x", "--param", "gain=0", "--hidden", "gain=0.5",
              "--loss", "mae", "--window", "32", "--optimizer", "sgd", "--lr", "1e-3"],
        columns={"gain": "gain", "loss": "loss", "gradient_0": "grad_gain"}),
    "gain+dc": dict(
        args=["--circuit", "y = gain*x + dc", "--param", "gain=0", "--param", "dc=0",
              "--hidden", "gain=0.5", "--hidden", "dc=0.5",
              "--loss", "mse", "--window", "32", "--optimizer", "sgd", "--lr", "1e-2"],
        columns={"loss": "loss", "gradient_0": "grad_gain", "gradient_1": "grad_dc",
                 "Learned_gain": "gain", "Learned_dc": "dc"}),
    "one-pole": dict(
        args=["--circuit", "y = x + a*y@1", "--param", "a=0::0.99", "--hidden", "a=0.5",
              "--loss", "mse", "--window", "16", "--optimizer", "sgd", "--lr", "5e-4"],
        columns={"Learned_feedback": "a", "loss": "loss", "gradient_0": "grad_a"}),
    "fir": dict(
        args=["--circuit", f"y = {FIR_TAPS}"]
        + sum((["--param", f"b{k}=0"] for k in range(8)), [])
        + sum((["--hidden", f"b{k}={math.sin(k)!r}"] for k in range(8)), [])
        + ["--loss", "mse", "--window", "8", "--optimizer", "sgd", "--lr", "0.1"],
        columns={**{f"b{k}": f"b{k}" for k in range(8)}, "loss": "loss"}),
    "dcsq": dict(
        # diff.lib clamps with max(theta, 1e-10) and lets theta integrate underneath
        args=["--circuit", "y = x + dc^2", "--param", "dc=0:1e-10:", "--hidden", "dc=0.75",
              "--loss", "mse", "--window", "1", "--optimizer", "sgd", "--lr", "1e-3",
              "--range-mode", "straight-through"],
        columns={"dc": "dc", "loss": "loss", "gradient_0": "grad_dc"}),
}
