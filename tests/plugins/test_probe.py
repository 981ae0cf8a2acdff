"""The probe (app/plugins/probe.py): a plugin that crashes, hangs or produces NaN is caught in a
child process and reported in one line while this process lives on; a good plugin is measured;
results are cached per plugin version and a corrupt cache is survived."""
import dataclasses
import json
import math
import os

import pytest

from app.plugins import probe as probe_module, registry
from app.plugins.probe import ProbeResult, probe, usable


def _count_children(monkeypatch) -> list:
    calls = []
    real = probe_module.subprocess.run

    def counting(*args, **kwargs):
        calls.append(args[0] if args else kwargs.get("args"))
        return real(*args, **kwargs)

    monkeypatch.setattr(probe_module.subprocess, "run", counting)
    return calls


def _probe_children(calls) -> list:
    """The probe children among the subprocesses (not the audit library's gcc)."""
    return [c for c in calls if "app.plugins.probe" in c]


# ------------------------------------------------------------------ misbehaving plugins

def test_a_crashing_plugin_is_reported_and_this_process_survives(crash_plugins):
    r = probe(registry.find(crash_plugins["crash"]), fresh=True)
    assert not r.ok
    assert r.reason == "crashed (SIGSEGV) when probed"
    assert os.getpid() > 0 and registry.find("ladspa:dualtone_crash").label == "dualtone_crash"


def test_a_hanging_plugin_is_stopped_after_the_timeout(crash_plugins):
    r = probe(registry.find(crash_plugins["hang"]), fresh=True, timeout=6)
    assert not r.ok
    assert r.reason == "hung for more than 6 s when probed"
    assert probe_module.TIMEOUT == 20.0        # the default the reason names: "more than 20 s"


def test_a_plugin_producing_nan_is_refused(crash_plugins):
    r = probe(registry.find(crash_plugins["nan"]), fresh=True)
    assert not r.ok and not r.finite
    assert r.reason == "produced non-finite output on noise"


def test_usable_gives_the_catalogue_reason_first_then_the_probe_reason(crash_plugins, monkeypatch):
    info = registry.find(crash_plugins["crash"])
    assert info.usable                          # the catalogue cannot tell
    assert usable(info) == "crashed (SIGSEGV) when probed"
    calls = _count_children(monkeypatch)
    refused = dataclasses.replace(info, unusable="3 audio inputs and 1 audio outputs: nope")
    assert usable(refused) == "3 audio inputs and 1 audio outputs: nope"
    assert probe(refused) == ProbeResult(ok=False, reason="3 audio inputs and 1 audio outputs: nope")
    assert calls == []                          # an unusable plugin is never run


def test_a_child_that_fails_without_crashing_gives_its_reason_and_is_not_cached(crash_plugins):
    ghost = dataclasses.replace(registry.find(crash_plugins["crash"]), id="ladspa:4242999")
    r = probe(ghost, fresh=True)
    assert not r.ok
    assert r.reason.startswith("failed with exit code 1 when probed: no plugin 'ladspa:4242999'")
    assert "\n" not in r.reason
    assert "4242999" not in (probe_module.cache_path().read_text() if probe_module.cache_path().exists() else "")


# ------------------------------------------------------------------ good plugins

@pytest.mark.parametrize("plugin_id", ["ladspa:1048", "ladspa:1041"])
def test_a_good_plugin_is_measured(plugin_id):
    r = probe(registry.find(plugin_id), fresh=True)
    assert r.ok and r.reason == "" and r.finite
    assert math.isfinite(r.us_per_block) and 0 < r.us_per_block < 10_000
    assert r.latency == 0
    assert usable(registry.find(plugin_id)) == ""


def test_artificial_latency_reports_what_its_default_delay_implies():
    found = [i for i in registry.search("artificial latency") if i.api == "ladspa"]
    assert found, "swh-plugins' Artificial latency is not installed"
    info = found[0]
    delay_ms = info.controls[0]
    assert delay_ms.symbol == "delay_ms" and info.latency_port is not None
    r = probe(info, 48000.0, fresh=True)
    assert r.ok
    expected = round(delay_ms.default / 1000 * 48000)
    assert delay_ms.default == 2500.0           # swh's default: the middle of 0..10000 ms
    assert r.latency == expected == 120000


def test_the_allocation_audit_sees_malloc_in_run(crash_plugins):
    assert probe_module.audit_library() is not None, "the allocation audit needs gcc and glibc (./dev installs them)"
    r = probe(registry.find(crash_plugins["alloc"]), fresh=True)
    assert r.ok and r.allocates is True         # a warning, not a refusal


def test_the_allocation_audit_passes_a_clean_plugin():
    assert probe_module.audit_library() is not None, "the allocation audit needs gcc and glibc (./dev installs them)"
    r = probe(registry.find("ladspa:1048"), fresh=True)
    assert r.ok and r.allocates is False


# ------------------------------------------------------------------ the cache

def test_the_second_probe_comes_from_the_cache(crash_plugins, monkeypatch):
    info = registry.find(crash_plugins["crash"])
    calls = _count_children(monkeypatch)
    first = probe(info)
    assert len(_probe_children(calls)) == 1
    assert probe(info) == first
    assert usable(info) == first.reason
    assert len(_probe_children(calls)) == 1     # no second child
    assert probe(info, fresh=True) == first
    assert len(_probe_children(calls)) == 2     # fresh ignores the cache
    # another sample rate is another measurement
    probe(info, sample_rate=44100.0)
    assert len(_probe_children(calls)) == 3
    cached = json.loads(probe_module.cache_path().read_text())
    assert cached["version"] == probe_module.CACHE_VERSION
    assert len(cached["probes"]) == 2


def test_a_new_version_of_the_library_is_probed_again(crash_plugins, monkeypatch):
    info = registry.find(crash_plugins["crash"])
    calls = _count_children(monkeypatch)
    probe(info)
    probe(info)
    assert len(_probe_children(calls)) == 1
    st = os.stat(info.library)
    os.utime(info.library, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        assert probe(info).reason == "crashed (SIGSEGV) when probed"
        assert len(_probe_children(calls)) == 2
    finally:
        os.utime(info.library, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe garbage", b"[]", b"null",
                                     b'{"version": 1, "probes": []}',
                                     b'{"version": 1, "probes": {"ladspa:1048 @ 48000 Hz, 256 frames": 7}}',
                                     b"[" * 100000])
def test_a_corrupt_cache_is_ignored_and_rewritten(content):
    path = probe_module.cache_path()
    path.write_bytes(content)
    info = registry.find("ladspa:1048")
    r = probe(info)
    assert r.ok
    cached = json.loads(path.read_text())
    assert cached["version"] == probe_module.CACHE_VERSION and len(cached["probes"]) == 1


def test_a_damaged_entry_is_probed_again(monkeypatch):
    info = registry.find("ladspa:1048")
    probe(info)
    path = probe_module.cache_path()
    cached = json.loads(path.read_text())
    (entry,) = cached["probes"].values()
    entry["result"]["latency"] = "many"
    path.write_text(json.dumps(cached))
    calls = _count_children(monkeypatch)
    assert probe(info).ok
    assert len(_probe_children(calls)) == 1
    assert json.loads(path.read_text())["probes"] != cached["probes"]


def test_without_a_usable_config_folder_the_probe_still_works(monkeypatch):
    monkeypatch.setenv("DUALTONE_CONFIG_DIR", "/proc/nope")
    monkeypatch.setattr(probe_module, "_audit_library", [])
    assert probe(registry.find("ladspa:1048")).ok
