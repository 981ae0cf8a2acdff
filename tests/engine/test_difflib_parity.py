"""`python main.py learn` reproduces diff.lib's five shared reference runs (README 3.6 criterion:
|ours - ref| <= 1e-9 |ref| + 1e-10 on every column and row)."""
import csv
import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.difflib_cases import CASES, REFERENCE
from tests.paths import REPO

ROOT = REPO
RTOL, ATOL = 1e-9, 1e-10


def read_csv(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    data = np.array([[float(v) for v in r] for r in rows[1:]])
    return {h: data[:, k] for k, h in enumerate(header)}


def run_learn(case, samples, trace, every=1):
    cmd = [sys.executable, str(ROOT / "main.py"), "learn", *CASES[case]["args"],
           "--input", "lcg-noise", "--samples", str(samples), "--trace", str(trace),
           "--trace-every", str(every), "--trace-grads", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), read_csv(trace)


def worst(ours, ref):
    err = np.abs(ours - ref)
    excess = err - (RTOL * np.abs(ref) + ATOL)
    k = int(np.argmax(excess))
    return float(err.max()), float(excess[k]), k


@pytest.mark.parametrize("case", sorted(CASES))
def test_per_sample_file(case, tmp_path):
    result, ours = run_learn(case, 48000, tmp_path / "t.csv")
    ref = read_csv(REFERENCE / f"{case}.48k_per_sample.csv.gz")
    assert len(ours["n"]) == len(ref["n"]) == 48000
    np.testing.assert_array_equal(ours["n"], ref["n"])
    for ref_col, our_col in CASES[case]["columns"].items():
        err, excess, k = worst(ours[our_col], ref[ref_col])
        assert excess <= 0, f"{case}.{ref_col}: row {k}: ours {ours[our_col][k]!r} ref {ref[ref_col][k]!r}"
    assert result["skipped"] == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_100_second_file(case, tmp_path):
    result, ours = run_learn(case, 4_800_000, tmp_path / "t.csv", every=4800)
    ref = read_csv(REFERENCE / f"{case}.100s_every4800.csv")
    np.testing.assert_array_equal(ours["n"], ref["n"])
    rows = slice(None)
    if case == "gain":
        # MAE never contracts: last-bit differences flip the sign of a tiny error after ~28 s
        # (README 3.6). Per row up to 25 s; statistics over 10..100 s.
        rows = ref["n"] <= 1_200_000
        late = ref["n"] >= 480_000
        p = ours["gain"][late]
        assert abs(p.mean() - 0.5) < 1e-4
        assert 0.0013 <= p.std() <= 0.0016
        assert np.abs(p - 0.5).max() < 0.007
    for ref_col, our_col in CASES[case]["columns"].items():
        if ref_col not in ref:
            continue
        err, excess, k = worst(ours[our_col][rows], ref[ref_col][rows])
        assert excess <= 0, f"{case}.{ref_col}: row {k}: ours {ours[our_col][rows][k]!r} ref {ref[ref_col][rows][k]!r}"
