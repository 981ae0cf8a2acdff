"""engine/learn/spec_check.py: the one check of circuit texts against parameter declarations and
hidden values, and its three callers (the Learner, the circuit panel's check_edit, the preset
loader) reporting what it finds."""
import math

import pytest

import app.preset.document as presets
import app.workspace as workspace
import engine.learn.learner as learner_module
from app.preset import store
from app.preset.document import PresetError
from app.workspace import check_edit
from engine.circuit.language import CircuitError
from engine.learn import spec_check as sc
from engine.learn.banks import Banks
from engine.learn.learner import Learner, ParamSpec as P, Settings
from engine.learn.spec_check import Problem, check_spec

SR = 48000.0


def one(problems) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def fields(p: Problem) -> tuple:
    return p.kind, p.name, p.where, p.line, p.col, p.message


# ---------------------------------------------------------------- a spec with nothing wrong

@pytest.mark.parametrize("circuit, target, specs, hidden, kw", [
    ("y = gain*x + dc", None, [P("gain"), P("dc")], {"gain": 0.5, "dc": 0.5}, {}),
    ("y = g*x", "y = g*tanh(drive*x)", [P("g")], {"drive": 3.0}, {}),
    ("y = g*x", "y = g*tanh(drive*x)", [P("g")], {}, {"target_specs": [P("drive", 1.0, 0.1, 50.0)]}),
    ("y = g*x", "y = tanh(drive*x)", [P("g", 0.5, 0, 1), P("drive", 1, 0, 2)], {},
     {"shared": True, "check_init": True, "require_param": True}),
    ("y = x", None, [P("g"), P("h")], {}, {"bank_circuits": ["y = g*x", "y = h*x"]}),
])
def test_a_good_spec_has_no_problems(circuit, target, specs, hidden, kw):
    assert check_spec(circuit, target, specs, hidden, SR, **kw) == []


def test_graphs_are_handed_back_when_asked():
    graphs = {}
    assert check_spec("y = g*x", None, [P("g")], {}, SR, graphs=graphs) == []
    assert graphs["circuit"].params == ["g"] and graphs["target"] is graphs["circuit"]
    graphs = {}
    check_spec("y = g*x", "y = 2*x", [P("g")], {}, SR, bank_circuits=["y = g*x"], graphs=graphs)
    assert sorted(graphs) == ["bank 0 circuit", "circuit", "target"]
    assert graphs["target"].params == []


# ---------------------------------------------------------------- each kind of problem

def test_a_text_that_does_not_parse():
    p = one(check_spec("y = g*x +", None, [P("g")], {}, SR))
    assert fields(p) == (sc.SYNTAX, "", "circuit", 1, 10, "syntax error: invalid syntax")
    assert isinstance(p.error, CircuitError) and str(p) == str(p.error)
    p = one(check_spec("y = g*x", "y = x.real", [P("g")], {}, SR))
    assert fields(p) == (sc.SYNTAX, "", "target", 1, 5, "attributes (a.b) are not part of the circuit language")


def test_a_text_the_parser_gives_up_on(monkeypatch):
    def give_up(*args, **kwargs):
        raise MemoryError()
    monkeypatch.setattr(sc, "parse", give_up)
    p = one(check_spec("y = g*x", None, [P("g")], {}, SR))
    assert fields(p) == (sc.UNREADABLE, "", "circuit", 1, 1, "cannot be read (MemoryError)")
    assert isinstance(p.error, MemoryError) and p.exception() is p.error


def test_an_initial_value_outside_its_range_only_when_asked():
    specs = [P("g", 5.0, 0.0, 1.0)]
    assert check_spec("y = g*x", None, specs, {}, SR) == []
    p = one(check_spec("y = g*x", None, specs, {}, SR, check_init=True, spec_lines={"g": 3}))
    assert fields(p) == (sc.INIT_OUTSIDE, "g", "params", 3, 1, "'g': the initial value 5 is outside [0, 1]")


def test_a_declared_parameter_on_a_dead_line_and_one_the_circuit_lacks():
    found = check_spec("u = g*x\ny = dc + x", None, [P("g"), P("dc"), P("q")], {}, SR)
    assert [fields(p) for p in found] == [
        (sc.DEAD, "g", "params", 1, 1,
         "parameter 'g' does not affect the output: the line it is on does not feed the last line"),
        (sc.MISSING, "q", "params", 3, 1, "the circuit has no parameter named 'q' (its parameters: dc)"),
    ]
    assert all(type(p.exception()) is ValueError for p in found)


def test_an_undeclared_parameter_is_placed_in_the_circuit():
    p = one(check_spec("y = g*x\nz = y + h", None, [P("g")], {}, SR))
    assert fields(p) == (sc.UNDECLARED, "h", "circuit", 2, 9,
                         "'h' is a parameter (not x, pi, SR, a function or an assigned name) but it has "
                         "no declaration with an initial value")
    e = p.exception()
    assert isinstance(e, CircuitError) and (e.line, e.col, e.source) == (2, 9, "circuit")


def test_bank_circuits_own_the_declarations():
    p = one(check_spec("y = x", None, [P("g")], {}, SR, bank_circuits=["y = g*x", "y = x + h"]))
    assert fields(p) == (sc.BANK_CIRCUIT, "h", "bank 1 circuit", 1, 9,
                         "'h' is a parameter but it has no declaration with an initial value")
    assert isinstance(p.exception(), CircuitError)
    p = one(check_spec("y = x", None, [P("g"), P("k")], {}, SR, bank_circuits=["y = g*x", "y = x"]))
    assert fields(p) == (sc.BANK_UNUSED, "k", "params", 2, 1, "no bank's circuit uses the parameter 'k'")


def test_shared_declarations_cover_both_texts():
    found = check_spec("y = g*x", "y = g*x + w", [P("g"), P("q")], {}, SR, shared=True)
    assert [fields(p) for p in found] == [
        (sc.NOT_USED, "q", "params", 2, 1, "'q' is declared but neither circuit uses it"),
        (sc.UNDECLARED, "w", "target", 1, 11, "'w' is a parameter (not x, pi, SR, a function or an "
                                              "assigned name) but it has no declaration with an initial value"),
    ]


def test_target_only_declarations():
    found = check_spec("y = g*x", "y = g*x + w", [P("g")], {}, SR, target_specs=[P("g"), P("k"), P("w")])
    assert [fields(p) for p in found] == [
        (sc.TARGET_LEARNABLE, "g", "target_params", 1, 1,
         "'g' is a learnable parameter; declare it with the circuit's parameters only"),
        (sc.NOT_IN_TARGET, "k", "target_params", 2, 1, "the target has no parameter named 'k'"),
    ]


def test_hidden_values():
    found = check_spec("y = g*x", "y = g*tanh(x) + w + v", [P("g")], {"zz": 1.0, "v": math.nan}, SR)
    assert [fields(p) for p in found] == [
        (sc.HIDDEN_UNKNOWN, "zz", "hidden", 1, 1, "the target has no parameter named 'zz' (its parameters: g, w, v)"),
        (sc.HIDDEN_NEEDED, "w", "target", 1, 17, "the target's parameter 'w' needs a hidden value"),
        (sc.HIDDEN_NOT_FINITE, "v", "hidden", 2, 1, "the hidden value of 'v' must be a finite number"),
    ]
    assert all(type(p.exception()) is ValueError for p in found)
    # a target-only declaration gives the value; a value that is no number keeps the parser's error
    assert check_spec("y = g*x", "y = w*x", [P("g")], {}, SR, target_specs=[P("w", 1.0)]) == []
    p = one(check_spec("y = g*x", "y = w*x", [P("g")], {"w": "abc"}, SR))
    assert (p.kind, p.name, p.where) == (sc.HIDDEN_NOT_FINITE, "w", "hidden")
    assert type(p.exception()) is ValueError and "could not convert" in str(p.exception())


def test_a_circuit_with_nothing_to_learn_only_when_asked():
    assert check_spec("y = x", None, [], {}, SR) == []
    p = one(check_spec("y = x", None, [], {}, SR, require_param=True))
    assert fields(p) == (sc.NO_PARAMS, "", "circuit", 1, 1, "the circuit has no parameter to learn")


def test_problems_come_in_the_order_the_learner_meets_them():
    found = check_spec("y = g*x + h", "y = (", [P("g"), P("q")], {"zz": 1.0}, SR)
    assert [p.kind for p in found] == [sc.MISSING, sc.UNDECLARED, sc.SYNTAX]
    with pytest.raises(ValueError, match=r"^the circuit has no parameter named 'q'"):
        Learner("y = g*x + h", [P("g"), P("q")], target="y = (", hidden={"zz": 1.0})


# ---------------------------------------------------------------- the three callers report it

def _learner_error(*args, **kwargs):
    with pytest.raises(Exception) as e:
        Learner(*args, settings=Settings(learning=False), **kwargs)
    return e.value


@pytest.mark.parametrize("circuit, specs, kw", [
    ("y = g*x +", [P("g")], {}),
    ("u = g*x\ny = x", [P("g")], {}),
    ("y = g*x", [P("g"), P("q")], {}),
    ("y = g*x\nz = y + h", [P("g")], {}),
    ("y = g*x", [P("g")], {"target": "y = (x"}),
    ("y = g*x", [P("g")], {"target": "y = g*x", "hidden": {"zz": 1.0}}),
    ("y = g*x", [P("g")], {"target": "y = w*x"}),
    ("y = g*x", [P("g")], {"target": "y = w*x", "hidden": {"w": math.inf}}),
    ("y = x", [P("g")], {"banks": Banks([-60.0, -30.0, 0.0], circuits=["y = g*x", "y = x + h"])}),
    ("y = x", [P("g"), P("k")], {"banks": Banks([-60.0, -30.0, 0.0], circuits=["y = g*x", "y = x"])}),
])
def test_the_learner_raises_the_first_problem_as_its_error(circuit, specs, kw):
    first = check_spec(circuit, kw.get("target"), specs, kw.get("hidden", {}), SR,
                       bank_circuits=kw["banks"].circuits if "banks" in kw else None)[0]
    e = _learner_error(circuit, specs, **kw)
    assert type(e) is type(first.exception())
    assert str(e) == (str(first) if isinstance(e, CircuitError) else first.message)


def test_the_learners_error_comes_from_check_spec(monkeypatch):
    calls = []

    def fake(*args, **kwargs):
        calls.append(args)
        return [Problem("params", 1, 1, "made up by check_spec", sc.MISSING, "g")]
    monkeypatch.setattr(learner_module, "check_spec", fake)
    with pytest.raises(ValueError, match="^made up by check_spec$"):
        Learner("y = g*x", [P("g")])
    assert calls and calls[0][0] == "y = g*x"


def test_check_edit_shows_check_specs_problems():
    declarations = "g = 0 : -1 : 1\n# a comment\nq = 0 : -1 : 1"
    c = check_edit("y = g*x", "", declarations, {}, Settings(), SR)
    expected = check_spec("y = g*x", None, [P("g", 0, -1, 1), P("q", 0, -1, 1)], {}, SR, shared=True,
                          spec_lines={"g": 1, "q": 3})
    assert c.spec is None and c.problems == expected
    assert c.problems == [Problem("params", 3, 1, "'q' is declared but neither circuit uses it")]
    # an undeclared name is worded as the panel's offer to declare it, and placed where it was typed
    c = check_edit("y = g*x + w", "", "g = 0 : -1 : 1", {}, Settings(), SR)
    assert c.undeclared == ["w"]
    assert c.problems == [Problem("circuit", 1, 11, "new parameter 'w' — it will be declared as "
                                                    "w = 0 : -1 : 1 on Apply")]
    assert workspace.Problem is Problem          # the old import place still works


def test_check_edits_problems_come_from_check_spec(monkeypatch):
    made_up = Problem("target", 2, 3, "made up by check_spec", sc.SYNTAX)
    monkeypatch.setattr(workspace, "check_spec", lambda *args, **kwargs: [made_up])
    c = check_edit("y = g*x", "", "g = 0 : -1 : 1", {}, Settings(), SR)
    assert c.spec is None and c.problems == [made_up]


def _gain_dc() -> dict:
    return presets.to_json(presets.load(store.resolve("gain+dc")))


def test_a_preset_words_check_specs_problems():
    doc = _gain_dc()
    doc["circuit"] = "y = gain*x"
    with pytest.raises(PresetError) as e:
        presets.parse_document(doc)
    params = [P(d["name"], d["init"], -math.inf if d["min"] is None else d["min"],
                math.inf if d["max"] is None else d["max"]) for d in doc["params"]]
    found = check_spec(doc["circuit"], doc["target"], params, doc["hidden"], SR)
    assert [(p.kind, p.name) for p in found] == [(sc.MISSING, "dc"), (sc.HIDDEN_UNKNOWN, "dc")]
    assert e.value.problems[:2] == ["params 'dc': the circuit has no parameter named 'dc'",
                                    "hidden 'dc': the target has no parameter named 'dc'"]


def test_a_presets_problems_come_from_check_spec(monkeypatch):
    made_up = [Problem("params", 1, 1, "", sc.DEAD, "gain"),
               Problem("hidden", 1, 1, "", sc.HIDDEN_UNKNOWN, "nope")]
    monkeypatch.setattr(presets, "check_spec", lambda *args, **kwargs: made_up)
    with pytest.raises(PresetError) as e:
        presets.parse_document(_gain_dc())
    assert e.value.problems == [
        "params 'gain': does not affect the output (its line does not feed the last line)",
        "hidden 'nope': the target has no parameter named 'nope'"]


@pytest.mark.parametrize("declaration, message", [
    ("g = 0 : 2 : -1", "'g': min 2 is above max -1"),
    ("g = 0 : 1 : 0.5 log", "'g': min 1 is above max 0.5"),
    ("g = 1 : -1 : 1 log", "'g': a logarithmic scale needs a range above 0, got [-1.0, 1.0]"),
])
def test_a_wrong_range_is_one_message_on_its_line_not_also_a_new_parameter(declaration, message):
    c = check_edit("y = g*x", "", declaration, {}, Settings(), SR)
    assert c.spec is None and c.undeclared == []
    assert c.problems == [Problem("params", 1, 1, message)]
