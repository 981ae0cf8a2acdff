"""One check of a circuit spec: the circuit text (and target, and per-bank circuits) against the
parameter declarations and the hidden values. Parsing only, never compiling: fast enough to run
on every keystroke.

    problems = check_spec("y = g*x", None, [ParamSpec("g", 0.0)], {}, 48000.0)    # [] : fine

Three callers, each wording the result its own way:
  * the Learner raises the first problem (`problem.exception()`: a CircuitError for a circuit
    text's own problem or an undeclared parameter, else a ValueError; the messages here are the
    Learner's);
  * the circuit panel (app/workspace.py `check_edit`) shows them inline: `shared=True`,
    `check_init=True`, `require_param=True`;
  * the preset loader (app/preset/document.py) lists them in its own words, by `kind` and `name`.

The problems come in the order the Learner meets them: the declarations' ranges, the circuit's
text, the banks' circuits, the declarations against the circuit, the circuit's undeclared
parameters, the target's text, the target-only declarations, then the hidden values. A caller
that lists several problems may sort them by kind.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.circuit.language import CircuitError, Graph, parse

# ---- kinds of problem (Problem.kind); `name` is the parameter it is about ("" for a text's own)
SYNTAX = "syntax"                    # the text is not a circuit (error: the CircuitError)
UNREADABLE = "unreadable"            # the parser gave up otherwise (error: the exception)
INIT_OUTSIDE = "init outside"        # check_init: a declaration's initial value is outside its range
BANK_CIRCUIT = "bank circuit"        # a bank's circuit has a parameter with no declaration
BANK_UNUSED = "bank unused"          # a declaration no bank's circuit uses
DEAD = "dead"                        # a declared parameter on a line that does not feed the output
MISSING = "missing"                  # a declaration the circuit has no parameter for
UNDECLARED = "undeclared"            # a parameter of the circuit (shared: or target) with no declaration
NOT_USED = "not used"                # shared: a declaration neither the circuit nor the target uses
TARGET_LEARNABLE = "target learnable"  # a target-only declaration of a parameter the circuit learns
NOT_IN_TARGET = "not in target"      # a target-only declaration the target has no parameter for
HIDDEN_UNKNOWN = "hidden unknown"    # a hidden value for a name that is not a target parameter
HIDDEN_NEEDED = "hidden needed"      # a target parameter with no hidden value and no declaration
HIDDEN_NOT_FINITE = "hidden not finite"
NO_PARAMS = "no params"              # require_param: the circuit has nothing to learn

HIDDEN_KINDS = frozenset({HIDDEN_UNKNOWN, HIDDEN_NEEDED, HIDDEN_NOT_FINITE})
_CIRCUIT_ERRORS = frozenset({SYNTAX, UNDECLARED, BANK_CIRCUIT})


@dataclass
class Problem:
    """One error in what the user typed, placed for inline display (1-based line and column)."""
    where: str            # "circuit" | "target" | "params" | "target_params" | "hidden" | "bank K circuit" | ...
    line: int
    col: int
    message: str
    # what kind of problem (the constants above) and the parameter it names; not part of equality
    kind: str = field(default="", compare=False)
    name: str = field(default="", compare=False)
    error: BaseException | None = field(default=None, compare=False, repr=False)

    def __str__(self):
        return f"{self.where} line {self.line}, col {self.col}: {self.message}"

    def exception(self) -> BaseException:
        """What the Learner raises for this problem: the parser's own exception for a text that
        does not parse, a positioned CircuitError for an undeclared parameter, else ValueError."""
        if self.error is not None:
            return self.error
        if self.kind in _CIRCUIT_ERRORS:
            return CircuitError(self.message, self.line, self.col, self.where)
        return ValueError(self.message)


def _node_pos(graph: Graph, name: str) -> tuple[int, int]:
    return next(n.pos for n in graph.nodes if n.kind == "param" and n.name == name)


def check_spec(circuit: str | None, target: str | None, specs: list, hidden: dict,
               sample_rate: float, *, target_specs: list = (), bank_circuits: list | None = None,
               shared: bool = False, check_init: bool = False, require_param: bool = False,
               spec_lines: dict | None = None, ranges: dict | None = None,
               graphs: dict | None = None) -> list[Problem]:
    """Every problem of a circuit spec, positioned, in the order the Learner meets them.

    circuit: the learnable circuit's text (None: none could be read; its checks are skipped).
    target:  the ground truth's text, None for "the circuit itself".
    specs:   the declarations (ParamSpec) of the circuit's parameters. Each must be a parameter of
             the circuit (of some bank's circuit with bank_circuits), and each of the circuit's
             parameters needs one.
    hidden:  name -> value for the target's parameters; a target parameter without one takes
             its declaration's initial value, else it is a problem.
    target_specs: declarations of target-only parameters (knob ranges); each must be a
             parameter of the target, not one the circuit learns.
    bank_circuits: a topology per bank: the banks' circuit texts; then the declarations belong
             to these (checked there), `circuit` is only the default ground truth.
    shared:  the declarations cover both texts (the circuit panel): a declaration may belong to
             either, and every parameter of either needs one.
    check_init: each declaration's initial value must lie in its range.
    require_param: the circuit must have a parameter to learn.
    spec_lines: name -> the line of its declaration (default: its place in the list).
    ranges:  name -> (lo, hi) for the parser (delay bounds); default: from the declarations.
    graphs:  if given, filled with the Graphs that parsed: "circuit", "target" (the circuit's
             graph when target is None) and "bank K circuit".
    """
    problems: list[Problem] = []
    graphs = {} if graphs is None else graphs
    declared = {s.name: s for s in specs}
    target_declared = {s.name: s for s in target_specs}
    if ranges is None:
        ranges = {s.name: (s.lo, s.hi) for s in target_specs}
        ranges.update({s.name: (s.lo, s.hi) for s in specs})

    def add(where, line, col, message, kind, name="", error=None):
        problems.append(Problem(where, line, col, message, kind, name, error))

    def decl_line(k: int, name: str) -> int:
        return spec_lines.get(name, k + 1) if spec_lines is not None else k + 1

    def read(text: str, where: str) -> Graph | None:
        try:
            g = parse(text, sample_rate, where, ranges)
        except CircuitError as e:
            add(where, e.line, e.col, e.message, SYNTAX, error=e)
            return None
        except (ValueError, RecursionError, MemoryError) as e:
            add(where, 1, 1, f"cannot be read ({type(e).__name__})", UNREADABLE, error=e)
            return None
        graphs[where] = g
        return g

    if check_init:
        for k, s in enumerate(specs):
            if not s.lo <= s.init <= s.hi:
                add("params", decl_line(k, s.name), 1, f"'{s.name}': the initial value {s.init:g} is "
                    f"outside [{s.lo:g}, {s.hi:g}]", INIT_OUTSIDE, s.name)

    graph = None if circuit is None else read(circuit, "circuit")
    circuit_params = () if graph is None else graph.params
    if bank_circuits is not None:
        bank_graphs = []
        for k, text in enumerate(bank_circuits):
            where = f"bank {k} circuit"
            g = read(text, where)
            bank_graphs.append(g)
            for name in () if g is None else g.params:
                if name not in declared:
                    add(where, *_node_pos(g, name), f"'{name}' is a parameter but it has no declaration "
                        "with an initial value", BANK_CIRCUIT, name)
        if all(g is not None for g in bank_graphs):
            used = set().union(*(set(g.params) for g in bank_graphs))
            for k, s in enumerate(specs):
                if s.name not in used:
                    add("params", decl_line(k, s.name), 1,
                        f"no bank's circuit uses the parameter '{s.name}'", BANK_UNUSED, s.name)
    elif graph is not None and not shared:
        have = ", ".join(graph.params) or "none"
        for k, s in enumerate(specs):
            if s.name in graph.unused_params:
                add("params", decl_line(k, s.name), 1, f"parameter '{s.name}' does not affect the "
                    "output: the line it is on does not feed the last line", DEAD, s.name)
            elif s.name not in graph.params:
                add("params", decl_line(k, s.name), 1, f"the circuit has no parameter named "
                    f"'{s.name}' (its parameters: {have})", MISSING, s.name)
    for name in circuit_params:
        if name not in declared:
            add("circuit", *_node_pos(graph, name), f"'{name}' is a parameter (not x, pi, SR, a function "
                "or an assigned name) but it has no declaration with an initial value", UNDECLARED, name)

    tgraph = graph if target is None else read(target, "target")
    if tgraph is not None:
        graphs["target"] = tgraph
    if shared:
        texts = [g for g in (graph, None if target is None else tgraph) if g is not None]
        names = {n for g in texts for n in g.params}
        for k, s in enumerate(specs):
            if texts and s.name not in names:
                add("params", decl_line(k, s.name), 1, f"'{s.name}' is declared but neither circuit uses it",
                    NOT_USED, s.name)
        if target is not None and tgraph is not None:
            for name in tgraph.params:
                if name not in declared and name not in circuit_params:
                    add("target", *_node_pos(tgraph, name), f"'{name}' is a parameter (not x, pi, SR, a "
                        "function or an assigned name) but it has no declaration with an initial value",
                        UNDECLARED, name)
    if tgraph is not None:
        for k, t in enumerate(target_specs):
            if t.name in declared or t.name in circuit_params:
                add("target_params", k + 1, 1, f"'{t.name}' is a learnable parameter; declare it with "
                    "the circuit's parameters only", TARGET_LEARNABLE, t.name)
            if t.name not in tgraph.params:
                add("target_params", k + 1, 1, f"the target has no parameter named '{t.name}'",
                    NOT_IN_TARGET, t.name)
        have = ", ".join(tgraph.params) or "none"
        for k, name in enumerate(hidden):
            if name not in tgraph.params:
                add("hidden", k + 1, 1, f"the target has no parameter named '{name}' (its parameters: "
                    f"{have})", HIDDEN_UNKNOWN, name)
        where = "circuit" if target is None else "target"
        for name in tgraph.params:
            if name in hidden:
                try:
                    v = float(hidden[name])
                except (TypeError, ValueError) as e:      # not a number at all
                    add("hidden", list(hidden).index(name) + 1, 1, str(e), HIDDEN_NOT_FINITE, name, e)
                    continue
            elif name in declared:
                v = declared[name].init
            elif name in target_declared:
                v = target_declared[name].init
            elif name in circuit_params or shared:
                continue                 # an undeclared parameter: reported above
            else:
                add(where, *_node_pos(tgraph, name), f"the target's parameter '{name}' needs a hidden value",
                    HIDDEN_NEEDED, name)
                continue
            if not math.isfinite(v):
                add("hidden", list(hidden).index(name) + 1 if name in hidden else 1, 1,
                    f"the hidden value of '{name}' must be a finite number", HIDDEN_NOT_FINITE, name)
    if require_param and graph is not None and not graph.params:
        add("circuit", 1, 1, "the circuit has no parameter to learn", NO_PARAMS)
    return problems
