"""Counts in words, for every message that shows one (the status line, dialogs, CLI errors)."""
from __future__ import annotations


def plural(n: int, word: str) -> str:
    """'1 sample', '2 samples', '0 samples', '-1 sample': the count and the noun that agrees with it.
    word is the singular; a phrase ('bad input sample') gets its last word's 's'."""
    return f"{n} {word}{'' if abs(n) == 1 else 's'}"
