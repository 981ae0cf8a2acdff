"""Generated kernels on disk: each is written once, as a module named after a hash of its text, and
imported; Numba compiles it on first use and loads it from its own cache afterwards. The folder is
named after the engine's sources (engine/numba_cache.py), so an engine change never reuses a kernel."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.circuit import compiler
from engine.circuit.compiler import BankPlan, Layout, Variant
from engine.circuit.language import Graph


# one kernel module written and imported at a time: a module is in sys.modules before its body has
# run, so a second thread asking for the same kernel meanwhile (the session's compile thread and
# the window's) would find it without `process` or `block` (and the two would share one temporary
# file name). Numba compiles one function at a time anyway, so this costs no parallelism.
_IMPORT_LOCK = threading.RLock()


def kernel_cache_dir() -> Path:
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "dualtone-cache")
    d = Path(base) / "dualtone_kernels"
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass
class CompiledLearner:
    process: object          # the Numba kernel
    layout: Layout
    source: str
    path: Path
    block_address: int = 0   # C entry for hosts: int64 block(void *slot_table, int64 n); 0 for batches


def compile_pair(learn: Graph, target: Graph, sample_rate: float,
                 window_capacity: int = 4096, banks: BankPlan | None = None,
                 streams: int = 1, spectral: bool = False, variant: Variant = Variant()) -> CompiledLearner:
    """Generate, write (once) and import the kernel; Numba compiles it or loads it from cache."""
    source, lay = compiler.generate(learn, target, sample_rate, window_capacity, banks, streams, spectral, variant)
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]   # the folder is per engine source tree
    modname = f"dualtone_kernel_{digest}"
    path = kernel_cache_dir() / f"{modname}.py"
    with _IMPORT_LOCK:
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(source)
            os.replace(tmp, path)       # atomic: a concurrent process never imports a half file
        mod = sys.modules.get(modname)
        if mod is None:
            spec = importlib.util.spec_from_file_location(modname, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[modname] = mod
            try:
                spec.loader.exec_module(mod)
            except Exception:
                sys.modules.pop(modname, None)
                raise
    block = getattr(mod, "block", None)          # batches have no C entry
    return CompiledLearner(process=mod.process, layout=lay, source=source, path=path,
                           block_address=block.address if block is not None else 0)
