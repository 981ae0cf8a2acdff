"""Shared by the benchmark scripts: put the repo root on sys.path and build Learners from
`learn` command-line arguments (tests/difflib_cases.py CASES is the single source of truth)."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

from app.cli.args import flags_spec, learner_from_spec  # noqa: E402
from app.cli.main import build_parser  # noqa: E402
from tests.difflib_cases import CASES, REFERENCE  # noqa: E402,F401

SR = 48000.0


def learner_from_args(args, sample_rate=SR):
    """A Learner exactly as `main.py learn ARGS` would build it."""
    a = build_parser().parse_args(["learn", *args, "--samples", "1"])
    return learner_from_spec(flags_spec(a), sample_rate)
