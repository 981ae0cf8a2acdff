"""What a parsed circuit needs, found without compiling it: which parameters each signal's
derivative depends on (its tangents), and how much state its delay lines take."""
from __future__ import annotations

from engine.circuit.primitives import TABLE

MAX_STATE_BYTES = 256 * 2 ** 20     # a circuit's delay lines may take at most this much memory


def tangent_sets(graph, slot_of: dict) -> dict:
    """Per node, the parameter slots whose tangent is not structurally zero (fixed point)."""
    sets = {n.id: frozenset() for n in graph.nodes}
    changed = True
    while changed:
        changed = False
        for n in graph.nodes:
            if n.kind == "param":
                s = frozenset([slot_of[n.name]]) if n.name in slot_of else frozenset()
            elif n.kind == "prim":
                s = frozenset() if TABLE[n.prim].zero_derivative else \
                    frozenset().union(*(sets[a] for a in n.args))
            elif n.kind == "select":
                s = sets[n.args[1]] | sets[n.args[2]]
            elif n.kind == "delay":
                s = sets[n.args[0]] | (sets[n.args[1]] if n.const_delay < 0 else frozenset())
            elif n.kind == "phasor":
                s = sets[n.args[0]]
            else:
                s = frozenset()
            if s != sets[n.id]:
                sets[n.id] = s
                changed = True
    return sets


def _pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def ring_length(depth: int) -> int:
    """Samples in the ring of a signal read up to `depth` samples back (a power of two, so the
    kernel wraps with a mask)."""
    return _pow2(depth + 1)


def delay_depths(graph) -> dict:
    """Per delayed signal (node id), how far back it is read: the longest delay, one more for an
    interpolated (fractional or variable) one."""
    need: dict[int, int] = {}
    for n in graph.nodes:
        if n.kind == "delay":
            frac = n.const_delay < 0 or n.const_delay != int(n.const_delay)
            need[n.args[0]] = max(need.get(n.args[0], 0), n.max_delay + (2 if frac else 1))
    return need


def state_bytes(graph, learnable=None) -> int:
    """Bytes of the delay lines of one stream: a ring per delayed signal for its value and one per
    tangent it carries. learnable: the parameter names that get tangents (default: all of them,
    an upper bound for a target circuit, which has none)."""
    names = graph.params if learnable is None else learnable
    sets = tangent_sets(graph, {p: k for k, p in enumerate(names)})
    total = 0
    for src, depth in delay_depths(graph).items():
        tangents = 0 if graph.node(src).kind == "input" else len(sets[src])
        total += ring_length(depth) * (1 + tangents) * 8
    return total
