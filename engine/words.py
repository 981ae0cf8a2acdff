"""Word indices of shared arrays from one declaration per table.

The arrays the audio callback shares with the rest of the program (the host table, the mailbox,
telemetry rows, slot tables, a kernel's settings) are addressed by named word indices. Each
table declares its words once, in order, as text — one per line, an optional `:N` for a run of N
words, an optional `# comment` — and `declare` defines the module constants (PREFIX + NAME) and
returns the next free index, from which the table's size follows. Numba reads the constants as
compile-time integers, as it would hand-written ones.
"""


def declare(namespace: dict, prefix: str, text: str, start: int = 0, end: int | None = None) -> int:
    """Define namespace[prefix + NAME] = index for the words of `text` from `start`; return the
    index after the last. `end`: the first index this group may not reach (raises if it does)."""
    index = start
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        name, _, count = entry.partition(":")
        name = prefix + name.strip()
        if not name.isidentifier() or name in namespace:
            raise ValueError(f"word {name!r} is not a new identifier")
        namespace[name] = index
        index += int(count) if count else 1
    if end is not None and index > end:
        raise ValueError(f"the {prefix}* words from {start} reach {index}, past {end}")
    return index
