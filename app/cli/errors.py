"""What every command reports the same way: bad input is a UsageError, printed as one
`error:` line on stderr with exit code 2."""
from __future__ import annotations

import math

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr, exit code 2."""


def parse_float(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise UsageError(f"{what}: '{text}' is not a number") from None
    if math.isnan(v):
        raise UsageError(f"{what}: NaN is not allowed")
    return v


def one_line(text) -> str:
    return " ".join(str(text).split())
