"""The circuit language: text in Python expression syntax -> a graph of nodes.

The text is parsed with the standard `ast` module and walked; it is never passed to eval/exec.
One assignment per line; the last assigned name (or a bare expression on the last line) is the
output. `x` is the input, `pi` and `SR` are constants, any other free name is a parameter.
`s@k` delays s by k samples and binds tighter than `*` and `^` (as in Faust); `^` is accepted as
`**`. A name may refer to itself (or to a later line) through a delay: that is feedback.

Errors of every kind raise CircuitError, which carries a 1-based line and column.
"""
from __future__ import annotations

import ast
import io
import math
import sys
import tokenize
from dataclasses import dataclass, field

from engine import layout as LY
from engine.circuit.analysis import MAX_STATE_BYTES, state_bytes
from engine.circuit.primitives import CALLABLE, TABLE

INPUT = "x"
# the output of the ground truth the host runs on x (an SPTMod model, a plugin, a recording of a
# device, a device on the audio interface): only a target may read it, under the name of what
# produces it
EXTERNALS = ("sptmod", "plugin", "recording", "device")
EXTERNAL = EXTERNALS[0]
# live control values read from cfg (layout.py); reserved for LACTOSE bank conditions
CONTROLS = {"lactose_note": LY.CF_NOTE, "lactose_velocity": LY.CF_VELOCITY}
CONSTANTS = {"pi": math.pi}          # SR is added per compile (it is the sample rate)
STATEFUL = {"phasor": 1, "osc": 1, "saw": 1, "blsaw": 1}   # handled by the compiler, not the table
RESERVED = {INPUT, *EXTERNALS, "pi", "SR"} | set(CALLABLE) | set(STATEFUL)
MAX_VARIABLE_DELAY = 1 << 16         # buffer for a delay whose amount is not a bounded parameter


class CircuitError(ValueError):
    """A circuit text that cannot be compiled; str() reads 'line L, col C: message'."""

    def __init__(self, message: str, line: int = 1, col: int = 1, source: str = "circuit"):
        self.message, self.line, self.col, self.source = message, line, col, source
        super().__init__(f"{source} line {line}, col {col}: {message}")


# ------------------------------------------------------------------ graph
@dataclass
class Node:
    id: int
    kind: str                 # const | input | param | prim | delay | phasor | select
    args: tuple = ()
    prim: str = ""            # table name for kind == prim
    value: float = 0.0        # for const
    name: str = ""            # parameter name, or delayed signal name
    min_delay: int = 0        # delay: amounts are clamped to [min_delay, max_delay]
    max_delay: int = 0
    const_delay: float = -1.0  # delay: the amount when constant, else -1
    pos: tuple = (1, 1)


@dataclass
class Graph:
    nodes: list                       # in evaluation order
    output: int
    params: list                      # free names, in order of first appearance
    text: str
    signals: dict = field(default_factory=dict)   # name -> node id of each assigned line
    unused_params: list = field(default_factory=list)  # free names on lines that do not feed the output

    def node(self, i: int) -> Node:
        return self.nodes[self._index[i]]

    @property
    def uses_external(self) -> bool:
        """True when the circuit reads `sptmod` or `plugin`, a target supplied per sample by the host."""
        return any(n.kind == "external" for n in self.nodes)

    @property
    def external_name(self) -> str | None:
        """Which outside ground truth the circuit reads (EXTERNALS), None when none."""
        return next((n.name for n in self.nodes if n.kind == "external"), None)

    def __post_init__(self):
        self._index = {n.id: k for k, n in enumerate(self.nodes)}


# ------------------------------------------------------------------ text preprocessing
def _rewrite_caret(text: str, source: str):
    """Replace the Faust power operator ^ by ** (tokens, so strings/comments are untouched).

    Returns the new text and, per line, the list of columns (0-based, in the new text) after which
    one extra character was inserted, to map error columns back to the user's text."""
    lines = text.splitlines(keepends=True)
    shifts: dict[int, list[int]] = {}
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return text, shifts          # let ast.parse report the problem with its position
    carets = [t.start for t in toks if t.type == tokenize.OP and t.string == "^"]
    for row, col in reversed(carets):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + "**" + line[col + 1:]
    for row, col in carets:
        shifts.setdefault(row, []).append(col)
    return "".join(lines), shifts


def _user_col(shifts, line, col0):
    """Map a 0-based column in the rewritten text to a 1-based column in the user's text."""
    before = [c for c in sorted(shifts.get(line, []))]
    extra, k = 0, 0
    for c in before:
        if c + extra < col0:
            extra += 1
            k += 1
    return col0 - k + 1


# ------------------------------------------------------------------ AST -> expression trees
# Expression trees are tuples: ("num", v) ("name", s) ("call", fname, [args]) ("delay", src, amount)
# ("if", cond, a, b) ("phasor", f); every tree carries its (line, col) as the last element.

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow",
           ast.Mod: "mod"}
_CMPOPS = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq", ast.NotEq: "ne"}
_MULTIPLICATIVE = (ast.Mult, ast.Div, ast.Mod, ast.MatMult, ast.FloorDiv)
_ADDITIVE = (ast.Add, ast.Sub)

_FORBIDDEN = {
    ast.Attribute: "attributes (a.b) are not part of the circuit language",
    ast.Subscript: "subscripts (a[k]) are not part of the circuit language; write s@k to delay s by k samples",
    ast.Lambda: "lambdas are not part of the circuit language",
    ast.ListComp: "comprehensions are not part of the circuit language",
    ast.SetComp: "comprehensions are not part of the circuit language",
    ast.DictComp: "comprehensions are not part of the circuit language",
    ast.GeneratorExp: "comprehensions are not part of the circuit language",
    ast.List: "lists are not part of the circuit language",
    ast.Tuple: "tuples are not part of the circuit language",
    ast.Dict: "dicts are not part of the circuit language",
    ast.Set: "sets are not part of the circuit language",
    ast.JoinedStr: "strings are not part of the circuit language",
    ast.NamedExpr: "':=' is not part of the circuit language; use one assignment per line",
    ast.Starred: "'*' unpacking is not part of the circuit language",
    ast.Await: "'await' is not part of the circuit language",
    ast.Yield: "'yield' is not part of the circuit language",
    ast.YieldFrom: "'yield' is not part of the circuit language",
}


class _Parser:
    def __init__(self, text: str, source: str):
        self.source = source
        self.text, self.shifts = _rewrite_caret(text, source)
        self.synthetic: list = []        # (name, tree, pos) lifted delayed expressions
        self.name_positions: list = []   # (name, (line, col)) of every name, for parameter order

    def err(self, msg, node=None, pos=None):
        if pos is None:
            pos = self.pos(node) if node is not None else (1, 1)
        raise CircuitError(msg, pos[0], pos[1], self.source)

    def pos(self, node):
        line = getattr(node, "lineno", 1) or 1
        return line, _user_col(self.shifts, line, self.char_col(line, getattr(node, "col_offset", 0) or 0))

    def char_col(self, line, byte_col):
        """ast counts columns in UTF-8 bytes; users count characters."""
        lines = self.text.splitlines()
        if not 1 <= line <= len(lines):
            return byte_col
        return len(lines[line - 1].encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))

    # -- statements
    def parse(self):
        if not self.text.strip():
            self.err("the circuit is empty; write an expression such as  y = gain*x")
        try:
            tree = ast.parse(self.text, mode="exec")
        except SyntaxError as e:
            line = e.lineno or 1
            col = _user_col(self.shifts, line, max((e.offset or 1) - 1, 0))
            raise CircuitError(f"syntax error: {e.msg}", line, col, self.source) from None
        stmts = []
        body = tree.body
        for k, st in enumerate(body):
            if isinstance(st, ast.Assign):
                if len(st.targets) != 1 or not isinstance(st.targets[0], ast.Name):
                    self.err("assign to one plain name per line, e.g.  y = a*x", st)
                name = st.targets[0].id
                if name in RESERVED:
                    self.err(f"'{name}' is a built-in name and cannot be assigned; choose another name",
                             st.targets[0])
                if name.startswith("_"):
                    self.err(f"names starting with '_' are reserved; rename '{name}'", st.targets[0])
                if any(s[0] == name for s in stmts):
                    self.err(f"'{name}' is assigned twice; each name gets one line "
                             f"(use {name}@1 to refer to its previous value)", st.targets[0])
                stmts.append((name, self.expr(st.value), self.pos(st)))
            elif isinstance(st, ast.Expr) and k == len(body) - 1:
                stmts.append(("_out", self.expr(st.value), self.pos(st)))
            elif isinstance(st, (ast.Import, ast.ImportFrom)):
                self.err("imports are not allowed in circuits", st)
            elif isinstance(st, ast.Expr):
                self.err("only the last line may be a bare expression; give this line a name, e.g.  s = ...", st)
            elif isinstance(st, ast.AugAssign):
                self.err("augmented assignment (+=, ...) is not allowed; each name gets one line", st)
            else:
                kind = type(st).__name__.lower()
                self.err(f"'{kind}' statements are not part of the circuit language; "
                         "write one assignment per line", st)
        return stmts

    # -- expressions
    def expr(self, node):
        p = self.pos(node)
        for typ, msg in _FORBIDDEN.items():
            if isinstance(node, typ):
                self.err(msg, node)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                self.err(f"only numbers are allowed as constants, not {node.value!r}", node)
            try:
                return ("num", float(node.value), p)
            except OverflowError:
                self.err("this number is too large", node)
        if isinstance(node, ast.Name):
            self.name_positions.append((node.id, p))
            return ("name", node.id, p)
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, _MULTIPLICATIVE):
                return self.multiplicative(node)
            if isinstance(node.op, _ADDITIVE):
                return self.additive(node)
            op = _BINOPS.get(type(node.op))
            if op is None:
                self.err(f"operator '{_opname(node.op)}' is not part of the circuit language", node)
            return ("call", op, [self.expr(node.left), self.expr(node.right)], p)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return ("call", "neg", [self.expr(node.operand)], p)
            if isinstance(node.op, ast.UAdd):
                return self.expr(node.operand)
            if isinstance(node.op, ast.Not):
                return ("call", "not", [self.expr(node.operand)], p)
            self.err("operator '~' is not part of the circuit language", node)
        if isinstance(node, ast.IfExp):
            return ("if", self.expr(node.test), self.expr(node.body), self.expr(node.orelse), p)
        if isinstance(node, ast.Compare):
            parts, left = [], self.expr(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                name = _CMPOPS.get(type(op))
                if name is None:
                    self.err(f"comparison '{_opname(op)}' is not part of the circuit language", node)
                right = self.expr(right_node)
                parts.append(("call", name, [left, right], p))
                left = right
            out = parts[0]
            for q in parts[1:]:
                out = ("call", "and", [out, q], p)
            return out
        if isinstance(node, ast.BoolOp):
            name = "and" if isinstance(node.op, ast.And) else "or"
            vals = [self.expr(v) for v in node.values]
            out = vals[0]
            for v in vals[1:]:
                out = ("call", name, [out, v], p)
            return out
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                self.err("only the listed functions can be called, by name (e.g. sin(x))", node)
            fname = node.func.id
            if node.keywords:
                self.err(f"{fname}() takes positional arguments only", node)
            if fname in STATEFUL:
                arity = STATEFUL[fname]
            elif fname in TABLE and fname in CALLABLE:
                arity = TABLE[fname].arity
            else:
                self.err(f"unknown function '{fname}'; available: "
                         + ", ".join(sorted(set(CALLABLE) | set(STATEFUL))), node)
            if len(node.args) != arity:
                self.err(f"{fname}() takes {arity} argument{'s' if arity != 1 else ''}, "
                         f"got {len(node.args)}", node)
            args = [self.expr(a) for a in node.args]
            if fname == "phasor":
                return ("phasor", args[0], p)
            if fname == "osc":        # sin(2 pi phasor(f)): its derivative follows from the rules
                ph = ("phasor", args[0], p)
                return ("call", "sin", [("call", "mul", [("num", 2 * math.pi, p), ph], p)], p)
            if fname == "saw":        # 2 phasor(f) - 1
                ph = ("phasor", args[0], p)
                return ("call", "sub", [("call", "mul", [("num", 2.0, p), ph], p), ("num", 1.0, p)], p)
            if fname == "blsaw":
                return _band_limited_saw(args[0], p)
            return ("call", fname, args, p)
        self.err(f"'{type(node).__name__}' is not part of the circuit language", node)

    def multiplicative(self, node):
        """Rebuild a chain of * / % @ so that @ binds tighter than the others (Faust's rule).

        Python gives a*y@1 as (a*y)@1; Faust, and Dualtone, read a*(y@1). A left operand is part of
        the chain only if it is not parenthesized (its start column equals the chain's)."""
        operands, ops = [], []
        cur = node
        while True:
            operands.append(cur.right)
            ops.append(cur.op)
            left = cur.left
            if (isinstance(left, ast.BinOp) and isinstance(left.op, _MULTIPLICATIVE)
                    and (left.lineno, left.col_offset) == (cur.lineno, cur.col_offset)):
                cur = left
                continue
            operands.append(left)
            break
        operands.reverse()
        ops.reverse()
        terms = [self.expr(operands[0])]
        term_ops = []
        for k, (op, rnode) in enumerate(zip(ops, operands[1:])):
            right = self.expr(rnode)
            if isinstance(op, ast.MatMult):
                terms[-1] = self.delay_into_power(operands[k], terms[-1], right, rnode)
            elif isinstance(op, ast.FloorDiv):
                self.err("'//' is not part of the circuit language; use floor(a/b)", node)
            else:
                term_ops.append(op)
                terms.append(right)
        out = terms[0]
        for op, t in zip(term_ops, terms[1:]):
            out = ("call", _BINOPS[type(op)], [out, t], self.pos(node))
        return out

    def additive(self, node):
        """A chain of + and - summed pairwise: a + b + c - d + e is ((a + b) + (c - d)) + e, a
        balanced tree (exact signs: -c + d is d - c). Its rounding error grows with log n instead
        of n, and its dependent additions are log n deep instead of n - 1: a 64-tap FIR's output
        is 6 additions after its parameters, not 63, and learning runs through that path every
        sample (issue 17). Up to three terms it is the left-to-right sum. A parenthesized left
        operand is kept whole, as in multiplicative()."""
        parts, cur = [], node
        while True:
            parts.append((isinstance(cur.op, ast.Sub), cur.right))
            left = cur.left
            if (isinstance(left, ast.BinOp) and isinstance(left.op, _ADDITIVE)
                    and (left.lineno, left.col_offset) == (cur.lineno, cur.col_offset)):
                cur = left
                continue
            parts.append((False, left))
            break
        p = self.pos(node)
        terms = [(negated, self.expr(t)) for negated, t in reversed(parts)]   # as written
        while len(terms) > 1:      # the first group stays positive: it holds the first term
            paired = []
            for (na, a), (nb, b) in zip(terms[0::2], terms[1::2]):
                if na == nb:
                    paired.append((na, ("call", "add", [a, b], p)))
                elif nb:
                    paired.append((False, ("call", "sub", [a, b], p)))
                else:
                    paired.append((False, ("call", "sub", [b, a], p)))
            terms = paired + terms[len(paired) * 2:]
        return terms[0][1]

    def delay_into_power(self, left_node, left, amount, at):
        """Faust: @ binds tighter than ^, so x^y@1 is x^(y@1); Python parsed (x**y)@1. Push the
        delay into the exponent of an unparenthesized power (recursively: ** is right-assoc)."""
        if (isinstance(left_node, ast.BinOp) and isinstance(left_node.op, ast.Pow)
                and left[0] == "call" and left[1] == "pow" and not self.parenthesized(left_node)):
            base, exponent = left[2]
            return ("call", "pow", [base, self.delay_into_power(left_node.right, exponent, amount, at)],
                    left[-1])
        return self.delay(left, amount, at)

    def parenthesized(self, node):
        lines = self.text.splitlines()
        line = lines[node.end_lineno - 1].encode("utf-8")[node.end_col_offset:].decode("utf-8", "ignore")
        return line.lstrip().startswith(")")

    def delay(self, src, amount, at):
        p = src[-1]
        if src[0] != "name":               # lift a delayed expression into its own hidden line
            name = f"_d{len(self.synthetic)}"
            self.synthetic.append((name, src, p))
            src = ("name", name, p)
        return ("delay", src, amount, p)


def _opname(op):
    return {ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
            ast.Invert: "~", ast.FloorDiv: "//", ast.Is: "is", ast.IsNot: "is not", ast.In: "in",
            ast.NotIn: "not in"}.get(type(op), type(op).__name__)


# ------------------------------------------------------------------ trees -> graph
def _band_limited_saw(f, p):
    """saw(f) with its jump smoothed over the two samples around it by a polynomial band-limited
    step (PolyBLEP): 2 ph - 1 - r, where with dt = f/SR, just after the wrap (ph < dt, t = ph/dt)
    r = 2t - t^2 - 1 and just before it (ph > 1 - dt, t = (ph - 1)/dt) r = t^2 + 2t + 1. Built
    from the language's own nodes, so its derivative follows from the rules - including the wrap's
    movement with f, which the naive saw's jump hides from its tangent."""
    def call(name, *a):
        return ("call", name, list(a), p)

    def num(v):
        return ("num", float(v), p)
    ph = ("phasor", f, p)
    dt = call("div", f, ("name", "SR", p))
    after = call("div", ph, dt)
    before = call("div", call("sub", ph, num(1)), dt)
    r_after = call("sub", call("sub", call("mul", num(2), after), call("mul", after, after)), num(1))
    r_before = call("add", call("add", call("mul", before, before), call("mul", num(2), before)), num(1))
    r = ("if", call("lt", ph, dt), r_after,
         ("if", call("gt", ph, call("sub", num(1), dt)), r_before, num(0), p), p)
    return call("sub", call("sub", call("mul", num(2), ph), num(1)), r)


def _const_value(tree, consts):
    """The tree's value if it is built from numbers and constants only, else None."""
    kind = tree[0]
    if kind == "num":
        return tree[1]
    if kind == "name":
        return consts.get(tree[1])
    if kind == "call":
        vals = [_const_value(a, consts) for a in tree[2]]
        if any(v is None for v in vals):
            return None
        return float(TABLE[tree[1]].value(*vals))
    if kind == "if":
        c = _const_value(tree[1], consts)
        if c is None:
            return None
        return _const_value(tree[2] if c != 0.0 else tree[3], consts)
    return None


def _refs(tree, out, consts, below_feedback_delay=False):
    """Collect (name, undelayed) references; a reference through a delay of at least one sample
    does not order the lines (it reads the past)."""
    kind = tree[0]
    if kind == "name":
        out.append((tree[1], not below_feedback_delay, tree[-1]))
    elif kind == "call":
        for a in tree[2]:
            _refs(a, out, consts, below_feedback_delay)
    elif kind == "if":
        for a in tree[1:4]:
            _refs(a, out, consts, below_feedback_delay)
    elif kind == "phasor":
        _refs(tree[1], out, consts, below_feedback_delay)
    elif kind == "delay":
        k = _const_value(tree[2], consts)
        _refs(tree[1], out, consts, below_feedback_delay or k is None or k >= 1.0)
        _refs(tree[2], out, consts, below_feedback_delay)


def parse(text: str, sample_rate: float = 48000.0, source: str = "circuit",
          param_ranges: dict | None = None) -> Graph:
    """Parse circuit text into a Graph. param_ranges maps parameter names to (lo, hi) and bounds
    the buffer of a delay whose amount is a parameter."""
    if not isinstance(text, str):
        raise CircuitError("the circuit must be text", 1, 1, source)
    if len(text) > 100_000:
        raise CircuitError("the circuit text is longer than 100,000 characters", 1, 1, source)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 6000))
    try:
        return _parse(text, sample_rate, source, param_ranges)
    except (RecursionError, MemoryError):
        # CPython's own parser reports deep nesting as MemoryError ("parser stack overflow")
        raise CircuitError("the circuit is nested too deeply; split long expressions over "
                           "several lines", 1, 1, source) from None
    finally:
        sys.setrecursionlimit(limit)


def _parse(text, sample_rate, source, param_ranges):
    P = _Parser(text, source)
    stmts = P.parse()
    if not stmts:
        raise CircuitError("the circuit is empty; write an expression such as  y = gain*x", 1, 1, source)
    stmts = stmts + P.synthetic
    consts = dict(CONSTANTS, SR=float(sample_rate))
    assigned = {s[0]: k for k, s in enumerate(stmts)}
    user_order = {s[0]: k for k, s in enumerate(stmts)}

    # ordering dependencies between lines (undelayed references only)
    deps = {}
    for name, tree, pos in stmts:
        refs = []
        _refs(tree, refs, consts)
        deps[name] = [(r, p) for r, und, p in refs if und and r in assigned]
        for r, und, p in refs:
            if r == name and und:
                raise CircuitError(f"'{name}' refers to itself without a delay; feedback needs at "
                                   f"least one sample of delay, e.g. {name}@1", p[0], p[1], source)
    order = _toposort(stmts, deps, source)

    params: list[str] = []
    nodes: list[Node] = []
    ids: dict[str, int] = {}
    pending_delays: list[Node] = []
    param_ranges = param_ranges or {}
    const_cache: dict[float, int] = {}

    def new(kind, **kw):
        n = Node(len(nodes), kind, **kw)
        nodes.append(n)
        return n.id

    def const(v, pos):
        if v in const_cache and not (v == 0.0 and math.copysign(1, v) < 0):
            return const_cache[v]
        i = new("const", value=float(v), pos=pos)
        const_cache[v] = i
        return i

    input_id = new("input", name=INPUT)
    param_ids: dict[str, int] = {}
    control_ids: dict[str, int] = {}
    external_id: list[int] = []

    def lower(tree):
        kind, pos = tree[0], tree[-1]
        cv = _const_value(tree, consts)
        if cv is not None:
            if not math.isfinite(cv):
                raise CircuitError("this constant expression is not a finite number", pos[0], pos[1], source)
            return const(cv, pos)
        if kind == "name":
            nm = tree[1]
            if nm == INPUT:
                return input_id
            if nm in EXTERNALS:
                if source != "target":
                    raise CircuitError(f"'{nm}' (the ground truth's output) can only be read by "
                                       "the target, the circuit being chased", pos[0], pos[1], source)
                if not external_id:
                    external_id.append(new("external", name=nm, pos=pos))
                elif nodes[external_id[0]].name != nm:
                    raise CircuitError(f"the target reads both '{nodes[external_id[0]].name}' and '{nm}': "
                                       "one outside ground truth at a time", pos[0], pos[1], source)
                return external_id[0]
            if nm in CONTROLS and nm not in assigned:
                if nm not in control_ids:
                    control_ids[nm] = new("control", name=nm, value=float(CONTROLS[nm]), pos=pos)
                return control_ids[nm]
            if nm in assigned:
                return ids[nm]
            if nm not in param_ids:
                param_ids[nm] = new("param", name=nm, pos=pos)
                params.append(nm)
            return param_ids[nm]
        if kind == "call":
            args = tuple(lower(a) for a in tree[2])
            return new("prim", args=args, prim=tree[1], pos=pos)
        if kind == "if":
            return new("select", args=(lower(tree[1]), lower(tree[2]), lower(tree[3])), pos=pos)
        if kind == "phasor":
            return new("phasor", args=(lower(tree[1]),), pos=pos)
        if kind == "delay":
            src_name = tree[1][1]
            amount = _const_value(tree[2], consts)
            if amount is not None:
                if not (amount >= 0.0) or amount > 1 << 24:
                    raise CircuitError(f"a delay must be between 0 and {1 << 24} samples, got {amount:g}",
                                       pos[0], pos[1], source)
                if amount == 0.0 and src_name in assigned:
                    return ids[src_name]
                if amount == 0.0 and src_name == INPUT:
                    return input_id
            if src_name not in assigned and src_name != INPUT:
                p = tree[1][-1]
                raise CircuitError(f"only signals can be delayed; '{src_name}' is a "
                                   f"{'constant' if src_name in consts else 'parameter'}",
                                   p[0], p[1], source)
            amount_id = lower(tree[2]) if amount is None else const(amount, pos)
            feedback = src_name != INPUT and (src_name not in ids)
            if amount is not None:
                lo = 1 if feedback else 0
                hi = int(math.ceil(amount))
                if feedback and amount < 1.0:
                    raise CircuitError(f"feedback through '{src_name}' needs a delay of at least one "
                                       f"sample, got {amount:g}", pos[0], pos[1], source)
            else:
                lo = 1 if feedback else 0
                amt_tree = tree[2]
                hi = MAX_VARIABLE_DELAY
                if amt_tree[0] == "name" and amt_tree[1] in param_ranges:
                    rhi = param_ranges[amt_tree[1]][1]
                    if math.isfinite(rhi):
                        hi = max(int(math.ceil(rhi)) + 1, lo + 1)
                if hi > 1 << 24:
                    raise CircuitError("a variable delay must be bounded by at most 16,777,216 samples",
                                       pos[0], pos[1], source)
            d = Node(len(nodes), "delay", args=(-1, amount_id), name=src_name, min_delay=lo,
                     max_delay=max(hi, lo), const_delay=-1.0 if amount is None else float(amount), pos=pos)
            nodes.append(d)
            if src_name == INPUT:
                d.args = (input_id, amount_id)
            else:
                pending_delays.append(d)
            return d.id
        raise CircuitError("internal: unknown expression", pos[0], pos[1], source)

    for k in order:
        name, tree, pos = stmts[k]
        ids[name] = lower(tree)
    for d in pending_delays:
        d.args = (ids[d.name], d.args[1])

    output_name = [s[0] for s in stmts if not s[0].startswith("_d")][-1]
    out = ids[output_name]
    nodes = _prune(nodes, out)
    first_seen = {n.name: n.pos for n in nodes if n.kind == "param"}
    for nm, pos in P.name_positions:      # order of first appearance in the text
        if nm in first_seen:
            first_seen[nm] = min(first_seen[nm], pos)
    used = sorted(first_seen, key=lambda nm: first_seen[nm])
    graph = Graph(nodes=nodes, output=out, params=used, text=text,
                  signals={k: v for k, v in ids.items() if not k.startswith("_")},
                  unused_params=[p for p in params if p not in first_seen])
    _check_state_size(graph, source)
    return graph


def _check_state_size(graph: Graph, source: str):
    """Refuse, before anything is allocated, a circuit whose delay lines would not fit: sixteen
    2^24-sample delays would take gigabytes and end the app in the OOM killer, with no message."""
    need = state_bytes(graph)
    if need > MAX_STATE_BYTES:
        longest = max((n for n in graph.nodes if n.kind == "delay"), key=lambda n: n.max_delay)
        raise CircuitError(f"the delay lines need {need / 2 ** 20:,.0f} MB of state (at most "
                           f"{MAX_STATE_BYTES // 2 ** 20} MB); use shorter delays", *longest.pos, source)


def _toposort(stmts, deps, source):
    names = [s[0] for s in stmts]
    state = {n: 0 for n in names}        # 0 new, 1 on stack, 2 done
    order: list[int] = []
    index = {n: k for k, n in enumerate(names)}

    def visit(n, stack):
        if state[n] == 2:
            return
        if state[n] == 1:
            cyc = stack[stack.index(n):] + [n]
            line, col = stmts[index[n]][2]
            shown = " -> ".join(c for c in cyc if not c.startswith("_d"))
            raise CircuitError(f"feedback loop without a delay: {shown}; delay one of these "
                               f"signals by at least one sample, e.g. {cyc[0]}@1", line, col, source)
        state[n] = 1
        for r, _ in deps[n]:
            visit(r, stack + [n])
        state[n] = 2
        order.append(index[n])

    for n in names:
        visit(n, [])
    return order


def _prune(nodes, out):
    by_id = {n.id: n for n in nodes}
    keep, todo = set(), [out]
    while todo:
        i = todo.pop()
        if i in keep or i < 0:
            continue
        keep.add(i)
        todo.extend(by_id[i].args)
    return [n for n in nodes if n.id in keep]
