"""First-use compile time vs cached start, each in a fresh process with an empty kernel cache.

Prints seconds to construct a Learner and get its kernel (parse + generate + compile or load) for circuits of growing
size; the second column is the same circuit in a new process, loading the kernel from disk."""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIR = lambda k: "y = " + " + ".join(["b0*x"] + [f"b{i}*x@{i}" for i in range(1, k)])
CIRCUITS = {
    "gain": ("y = gain*x", ["gain"]),
    "one-pole": ("y = x + a*y@1", ["a"]),
    "biquad": ("y = b0*x + b1*x@1 + b2*x@2 - a1*y@1 - a2*y@2", ["b0", "b1", "b2", "a1", "a2"]),
    "fir16": (FIR(16), [f"b{i}" for i in range(16)]),
    "fir64": (FIR(64), [f"b{i}" for i in range(64)]),
}
PROBE = """
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from engine.learn.learner import Learner, ParamSpec
t1 = time.perf_counter()
Learner({text!r}, [ParamSpec(n, 0.0) for n in {names!r}]).kernel()   # the kernel compiles at first use
t2 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "learner": t2 - t1}}))
"""


def timed(text, names, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT), text=text, names=names)],
                         env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def main():
    print(f"{'circuit':10} {'P':>3} {'first use s':>12} {'cached s':>9} {'engine import s':>16}")
    for name, (text, names) in CIRCUITS.items():
        with tempfile.TemporaryDirectory() as cache:
            timed("y = x", [], cache)            # warm the engine's own helper functions
            first = timed(text, names, cache)
            second = timed(text, names, cache)
        print(f"{name:10} {len(names):>3} {first['learner']:>12.2f} {second['learner']:>9.3f} "
              f"{second['import']:>16.2f}")


if __name__ == "__main__":
    main()
