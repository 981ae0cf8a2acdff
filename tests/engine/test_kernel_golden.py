"""The generated kernel text of a few circuits, pinned: a change to the code writer shows up here
as a diff to read, not as a mystery in a benchmark. When a change is meant, regenerate with
DUALTONE_REGEN_GOLDEN=1 and review the diff of tests/data/kernels/ in the commit."""
import difflib
import os

import pytest

from engine.learn.banks import Banks
from engine.learn.learner import Learner, ParamSpec, Settings
from tests.paths import DATA

GOLDEN = DATA / "kernels"
CIRCUITS = {
    "gain_dc": dict(circuit="y = gain*x + dc", params=[ParamSpec("gain", 0.0), ParamSpec("dc", 0.0)],
                    hidden={"gain": 0.5, "dc": 0.5}),
    "one_pole_window": dict(circuit="y = x + a*y@1", params=[ParamSpec("a", 0.0, -0.99, 0.99)],
                            hidden={"a": 0.5}, settings=Settings(window=16, optimizer="adam")),
    "banked_tanh": dict(circuit="y = a*tanh(d*x)", params=[ParamSpec("a", 1.0), ParamSpec("d", 1.0)],
                        hidden={"a": 0.8, "d": 2.0}, banks=Banks([-60.0, -20.0, 0.0])),
}


@pytest.mark.parametrize("name", sorted(CIRCUITS))
def test_generated_kernel_text_is_pinned(name):
    spec = dict(CIRCUITS[name])
    learner = Learner(spec.pop("circuit"), spec.pop("params"), **spec)
    text = learner.compiled.source
    path = GOLDEN / f"{name}.py.txt"
    if os.environ.get("DUALTONE_REGEN_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    pinned = path.read_text(encoding="utf-8")
    if text != pinned:
        diff = "".join(difflib.unified_diff(pinned.splitlines(True), text.splitlines(True),
                                            str(path), "generated", n=2))
        pytest.fail(f"the kernel text of {name} changed (DUALTONE_REGEN_GOLDEN=1 if meant):\n{diff[:4000]}")
