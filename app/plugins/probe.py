"""The probe: a plugin's first use runs it in a child process, so that one which crashes, hangs or
produces NaN takes the child down, never Dualtone. The child (`python -m app.plugins.probe ID
--sr SR --frames N`) instantiates the plugin, activates it, runs blocks of seeded white noise with
the controls at their defaults, checks every output sample is finite, measures the median cost of
a block and reads the latency, then prints one JSON line. The parent (`probe`) turns the child's
fate into a ProbeResult with a one-line reason.

Results are cached in the config folder (plugin-probes.json), keyed by plugin id, sample rate and
block size, and checked against a fingerprint of the plugin's library (path, mtime, size), so a
plugin is probed once per version. A corrupt cache file is ignored and rewritten.

Allocation audit: when gcc is present, a small LD_PRELOAD library (built once into the config
folder) counts malloc/calloc/realloc/free/memalign calls made on the calling thread inside the
plugin's `run` only; the child runs its first blocks through it (`allocates` in the result; None
when the audit could not be made)."""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from app.plugins.catalogue import PluginInfo

REPO = Path(__file__).resolve().parents[2]
CACHE_NAME = "plugin-probes.json"
CACHE_VERSION = 1              # bump when the probe's measurement changes: older entries are dropped
TIMEOUT = 20.0                 # seconds a child may take
BLOCKS = 40                    # timed blocks
AUDIT_BLOCKS = 8               # blocks run through the allocation audit first (the first run included)
AMPLITUDE = 0.5
SEED = 1234
AUDIT_ENV = "DUALTONE_PROBE_AUDIT"

_cache_lock = threading.Lock()


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str = ""                   # one line, "" when ok
    us_per_block: float = math.nan     # median cost of one run() call, µs
    latency: int = 0                   # what the plugin reports after running
    finite: bool = True                # a whole run showed only finite output (False when it did not finish)
    allocates: bool | None = None      # run() called malloc & co.; None: not audited

    def to_json(self) -> dict:
        return {"ok": self.ok, "reason": self.reason,
                "us_per_block": self.us_per_block if math.isfinite(self.us_per_block) else None,
                "latency": self.latency, "finite": self.finite, "allocates": self.allocates}

    @classmethod
    def from_json(cls, d) -> "ProbeResult":
        """From to_json's dict; ValueError/TypeError/KeyError when it is not one."""
        if not isinstance(d, dict):
            raise TypeError("not an object")
        us = d["us_per_block"]
        if us is not None and (isinstance(us, bool) or not isinstance(us, (int, float))):
            raise TypeError("us_per_block")
        for name in ("ok", "finite"):
            if not isinstance(d[name], bool):
                raise TypeError(name)
        if not isinstance(d["reason"], str) or isinstance(d["latency"], bool) \
                or not isinstance(d["latency"], int) or d.get("allocates") not in (True, False, None):
            raise TypeError("reason, latency or allocates")
        return cls(ok=d["ok"], reason=d["reason"], us_per_block=math.nan if us is None else float(us),
                   latency=d["latency"], finite=d["finite"], allocates=d.get("allocates"))


# ------------------------------------------------------------------ the parent

def probe(info: PluginInfo, sample_rate: float = 48000.0, frames: int = 256, fresh: bool = False,
          timeout: float = TIMEOUT) -> ProbeResult:
    """The probe's verdict on this plugin (from the cache when this version was probed before at
    this sample rate and block size, unless fresh). Never raises for the plugin's misbehaviour."""
    if info.unusable:
        return ProbeResult(ok=False, reason=info.unusable)
    key = f"{info.id} @ {float(sample_rate):.10g} Hz, {int(frames)} frames"
    fp = fingerprint(info)
    if not fresh:
        cached = _cached(key, fp)
        if cached is not None:
            return cached
    result, keep = _run_child(info, float(sample_rate), int(frames), timeout)
    if keep:
        _store(key, fp, result)
    return result


def usable(info: PluginInfo, sample_rate: float = 48000.0, frames: int = 256) -> str:
    """"" when the plugin can be used, else why not: the catalogue's reason first, then the probe's."""
    if info.unusable:
        return info.unusable
    return probe(info, sample_rate, frames).reason


def _run_child(info: PluginInfo, sample_rate: float, frames: int, timeout: float) -> tuple[ProbeResult, bool]:
    """(result, whether to cache it). A result explained by the plugin (it ran, crashed, hung or
    produced NaN) is cached; a child that failed for another reason is not."""
    cmd = [sys.executable, "-m", "app.plugins.probe", info.id, "--sr", f"{sample_rate:.10g}",
           "--frames", str(frames)]
    env = dict(os.environ)
    shim = audit_library()
    if shim is not None:
        env[AUDIT_ENV] = str(shim)
        env["LD_PRELOAD"] = " ".join(p for p in (str(shim), os.environ.get("LD_PRELOAD", "")) if p)
    try:
        done = subprocess.run(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        return ProbeResult(ok=False, reason=f"hung for more than {timeout:g} s when probed", finite=False), True
    except OSError as e:
        return ProbeResult(ok=False, reason=f"could not start the probe ({e.strerror or e})"), False
    if done.returncode < 0:
        return ProbeResult(ok=False, reason=f"crashed ({_signal_name(-done.returncode)}) when probed",
                           finite=False), True
    report = _report(done.stdout, info.id)
    if done.returncode != 0 or report is None or not report.get("ok"):
        why = (report or {}).get("reason") or _last_line(done.stderr)
        what = f"failed with exit code {done.returncode}" if done.returncode else "printed no result"
        return ProbeResult(ok=False, reason=f"{what} when probed" + (f": {why}" if why else ""),
                           finite=False), False
    try:
        us = float(report["us_per_block"])
        latency = int(report["latency"])
        finite = bool(report["finite"])
        allocates = report.get("allocates")
    except (KeyError, TypeError, ValueError):
        return ProbeResult(ok=False, reason="printed a malformed result when probed"), False
    allocates = allocates if allocates in (True, False) else None
    if not finite:
        return ProbeResult(ok=False, reason="produced non-finite output on noise", us_per_block=us,
                           latency=latency, finite=False, allocates=allocates), True
    return ProbeResult(ok=True, us_per_block=us, latency=latency, finite=True, allocates=allocates), True


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _report(stdout: str, plugin_id: str) -> dict | None:
    """The child's JSON line (the last one naming this plugin: a plugin may print too)."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if isinstance(d, dict) and d.get("id") == plugin_id:
            return d
    return None


def _last_line(text: str) -> str:
    lines = [s.strip() for s in text.splitlines() if s.strip()]
    return lines[-1][:300] if lines else ""


# ------------------------------------------------------------------ the cache

def fingerprint(info: PluginInfo) -> list:
    """What changes when the plugin's files do: LADSPA [path, mtime_ns, size] of the library; LV2
    [bundle, newest mtime_ns, total size] of the bundle's .so and .ttl files."""
    path = info.library
    if path.startswith("file://"):
        path = path[len("file://"):]
    try:
        if os.path.isdir(path):
            newest, size = 0, 0
            for folder, _dirs, files in os.walk(path):
                for name in files:
                    if name.endswith((".so", ".ttl")):
                        st = os.stat(os.path.join(folder, name))
                        newest, size = max(newest, st.st_mtime_ns), size + st.st_size
            return [path, newest, size]
        st = os.stat(path)
        return [path, st.st_mtime_ns, st.st_size]
    except OSError:
        return [path, None, None]


def cache_path() -> Path:
    from app.config import config_dir
    return config_dir() / CACHE_NAME


def _read_cache() -> dict:
    """The cached entries {key: {"fingerprint": [...], "result": {...}}}; {} when the file is missing,
    unreadable, corrupt or of another version."""
    try:
        d = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(d, dict) or d.get("version") != CACHE_VERSION or not isinstance(d.get("probes"), dict):
        return {}
    return d["probes"]


def _cached(key: str, fp: list) -> ProbeResult | None:
    with _cache_lock:
        entry = _read_cache().get(key)
    if not isinstance(entry, dict) or entry.get("fingerprint") != fp:
        return None
    try:
        return ProbeResult.from_json(entry.get("result"))
    except (KeyError, TypeError, ValueError):
        return None                      # a damaged entry: probe again


def _store(key: str, fp: list, result: ProbeResult):
    from engine.atomic_file import atomic_write
    with _cache_lock:
        try:
            path = cache_path()
        except OSError:                  # no usable config folder: no cache, the probe still works
            return
        probes = _read_cache()
        probes[key] = {"fingerprint": fp, "result": result.to_json()}
        text = json.dumps({"version": CACHE_VERSION, "probes": probes}, indent=1, sort_keys=True)
        try:
            atomic_write(path, lambda f: f.write(text.encode("utf-8")), overwrite=True)
        except OSError:
            pass


def forget(plugin_id: str | None = None):
    """Drop the cached probes of one plugin (every one when None): probed again on next use."""
    from engine.atomic_file import atomic_write
    with _cache_lock:
        try:
            path = cache_path()
        except OSError:
            return
        probes = {k: v for k, v in _read_cache().items()
                  if plugin_id is not None and not k.startswith(f"{plugin_id} @ ")}
        text = json.dumps({"version": CACHE_VERSION, "probes": probes}, indent=1, sort_keys=True)
        try:
            atomic_write(path, lambda f: f.write(text.encode("utf-8")), overwrite=True)
        except OSError:
            pass


# ------------------------------------------------------------------ the allocation audit

AUDIT_SOURCE = r"""
/* Dualtone's allocation audit, preloaded into the probe's child: counts the allocator calls made
   on the calling thread while dualtone_audit_run runs a plugin's run(). The real allocator is
   reached through glibc's exported __libc_* entry points. */
#include <errno.h>
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static __thread int counting __attribute__((tls_model("initial-exec")));
static __thread long counted __attribute__((tls_model("initial-exec")));

void *malloc(size_t n) { if (counting) counted++; return __libc_malloc(n); }
void *calloc(size_t k, size_t n) { if (counting) counted++; return __libc_calloc(k, n); }
void *realloc(void *p, size_t n) { if (counting) counted++; return __libc_realloc(p, n); }
void free(void *p) { if (counting && p) counted++; __libc_free(p); }
void *memalign(size_t a, size_t n) { if (counting) counted++; return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { if (counting) counted++; return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    if (counting) counted++;
    if (a < sizeof(void *) || (a & (a - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(a, n);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

typedef void (*run_ulong)(void *, unsigned long);
typedef void (*run_uint32)(void *, unsigned int);

/* api 1: LADSPA (unsigned long count), else LV2 (uint32_t count) */
long dualtone_audit_run(void *run, void *handle, unsigned long n, int api) {
    counted = 0;
    counting = 1;
    if (api == 1) ((run_ulong)run)(handle, n);
    else ((run_uint32)run)(handle, (unsigned int)n);
    counting = 0;
    return counted;
}

/* 2 when the interposition works (one malloc, one free) */
long dualtone_audit_selftest(void) {
    counted = 0;
    counting = 1;
    void *volatile p = malloc(16);
    free(p);
    counting = 0;
    return counted;
}
"""

_audit_library: list = []               # [path or None] once built (or found impossible) in this process


def audit_library() -> Path | None:
    """The audit's preload library, built with gcc into the config folder once per source version;
    None without gcc or a config folder, or when the folder's path cannot go into LD_PRELOAD."""
    if _audit_library and (_audit_library[0] is None or _audit_library[0].is_file()):
        return _audit_library[0]
    try:
        path = _build_audit_library()
    except (OSError, subprocess.SubprocessError):
        path = None
    if path is not None and any(c in str(path) for c in " :\t\n"):
        path = None                     # LD_PRELOAD splits at spaces and colons: no audit then
    _audit_library[:] = [path]
    return path


def _build_audit_library() -> Path | None:
    from app.config import config_dir
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None or not sys.platform.startswith("linux"):
        return None
    digest = hashlib.sha256(AUDIT_SOURCE.encode()).hexdigest()[:12]
    folder = config_dir() / "probe"
    target = folder / f"alloc-audit-{digest}.so"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}.{os.urandom(4).hex()}"
    source, tmp = folder / f".alloc-audit.{tag}.c", folder / f".alloc-audit.{tag}.so"
    try:
        source.write_text(AUDIT_SOURCE, encoding="utf-8")
        done = subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-fno-builtin", "-o", str(tmp), str(source)],
                              capture_output=True, timeout=60)
        if done.returncode != 0:
            return None
        os.replace(tmp, target)
    finally:
        for p in (source, tmp):
            try:
                p.unlink()
            except OSError:
                pass
    return target


class _Audit:
    """The preloaded audit library seen from the child (None from load() when absent or not preloaded)."""

    def __init__(self, lib):
        import ctypes
        self.lib = lib
        lib.dualtone_audit_run.restype = ctypes.c_long
        lib.dualtone_audit_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int]

    @classmethod
    def load(cls):
        import ctypes
        path = os.environ.get(AUDIT_ENV)
        if not path:
            return None
        try:
            lib = ctypes.CDLL(path)
            lib.dualtone_audit_selftest.restype = ctypes.c_long
            if lib.dualtone_audit_selftest() != 2:      # loaded, but not interposed: no audit
                return None
        except (OSError, AttributeError):
            return None
        return cls(lib)

    def run(self, instance, n: int) -> int:
        """instance.run(n) through the audit: the allocator calls run() made."""
        from app.plugins.atoms import reset_atoms
        reset_atoms(instance.atom_ports, instance.atom_urids)
        return int(self.lib.dualtone_audit_run(instance.run_address, instance.handle, n, instance.api_code))


# ------------------------------------------------------------------ the child

def measure(plugin_id: str, sample_rate: float, frames: int, blocks: int = BLOCKS, seed: int = SEED) -> dict:
    """Run the plugin here (this is the child's work: it may crash or hang this process)."""
    import numpy as np

    from app.plugins import registry
    info = registry.find(plugin_id, sample_rate)
    inst = registry.instantiate(info, sample_rate, frames)
    rng = np.random.default_rng(seed)
    finite = True
    audit = _Audit.load()
    allocations = None
    try:
        inst.activate()

        def feed():
            inst.audio_in[:, :frames] = rng.uniform(-AMPLITUDE, AMPLITUDE, inst.audio_in[:, :frames].shape)

        if audit is not None:
            allocations = 0
            for _ in range(AUDIT_BLOCKS):
                feed()
                allocations += audit.run(inst, frames)
                finite = finite and bool(np.isfinite(inst.audio_out[:, :frames]).all())
        costs = []
        for _ in range(blocks):
            feed()
            t0 = time.perf_counter()
            inst.run(frames)
            costs.append(time.perf_counter() - t0)
            finite = finite and bool(np.isfinite(inst.audio_out[:, :frames]).all())
        latency = inst.latency
    finally:
        inst.close()
    return {"id": plugin_id, "ok": True, "finite": finite, "us_per_block": float(np.median(costs) * 1e6),
            "latency": int(latency), "frames": frames,
            "allocates": None if allocations is None else allocations > 0, "allocations": allocations}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m app.plugins.probe",
                                description="Run one plugin on noise and print one JSON line (the probe's child).")
    p.add_argument("plugin_id")
    p.add_argument("--sr", type=float, default=48000.0)
    p.add_argument("--frames", type=int, default=256)
    p.add_argument("--blocks", type=int, default=BLOCKS)
    a = p.parse_args(argv)
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))     # a crashing plugin leaves no core file
    except (ImportError, ValueError, OSError):
        pass
    # the result goes to the real stdout; whatever the plugin prints goes to stderr
    sys.stdout.flush()
    result_fd = os.dup(1)
    os.dup2(2, 1)
    out = os.fdopen(result_fd, "w")
    from app.plugins.instance import PluginError
    if a.frames < 1 or a.blocks < 1 or not (math.isfinite(a.sr) and a.sr > 0):
        print(json.dumps({"id": a.plugin_id, "ok": False, "reason": "bad --sr, --frames or --blocks"}), file=out)
        out.flush()
        return 2
    try:
        report = measure(a.plugin_id, a.sr, a.frames, a.blocks)
    except PluginError as e:
        print(json.dumps({"id": a.plugin_id, "ok": False, "reason": " ".join(str(e).split())}), file=out)
        out.flush()
        return 1
    print(json.dumps(report), file=out)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
