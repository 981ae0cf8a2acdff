"""LV2 through liblilv: discovery against the installed swh-lv2 and fomp descriptions, instances
run from Python, the URID map, factory presets, and what makes a plugin unusable. A bundle of our
own (a tiny plugin written here against lv2.h's layout and built with the system gcc, plus
descriptions and presets) checks what the host passes: options, the URID map, atom headers."""
import ctypes
import json
import threading
import time

import numpy as np
import pytest

from app.plugins import lv2
from app.plugins import urid as U
from app.plugins.catalogue import PluginInfo, Port
from app.plugins.instance import PluginError
from tests.plugins.build import lv2_test_bundle

SWH = "http://plugin.org.uk/swh-plugins/"
FOMP = "http://drobilla.net/plugins/fomp/"
AMP, LATENCY, BUTTLOW, DIVIDER, OFFSET = (f"lv2:{SWH}{k}" for k in
                                         ("amp", "artificialLatency", "buttlow_iir", "divider", "offset"))
MVCLPF1, PHASER_LFO, REVERB = (f"lv2:{FOMP}{k}" for k in ("mvclpf1", "cs_phaser1_lfo", "reverb"))
TEST = "urn:dualtone:test:"

# ------------------------------------------------------------------ our test bundle

PROBE_C = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct { const char *URI; void *data; } Feature;
typedef struct Descriptor {
    const char *URI;
    void *(*instantiate)(const struct Descriptor *, double, const char *, const Feature *const *);
    void (*connect_port)(void *, uint32_t, void *);
    void (*activate)(void *);
    void (*run)(void *, uint32_t);
    void (*deactivate)(void *);
    void (*cleanup)(void *);
    const void *(*extension_data)(const char *);
} Descriptor;
typedef struct { void *handle; uint32_t (*map)(void *, const char *); } Map;
typedef struct { void *handle; const char *(*unmap)(void *, uint32_t); } Unmap;
typedef struct { uint32_t context, subject, key, size, type; const void *value; } Option;

#define ATOM "http://lv2plug.in/ns/ext/atom#"
#define BUFSZ "http://lv2plug.in/ns/ext/buf-size#"

typedef struct {
    float *port[10];
    float rate, max_block, unmap_ok, activations;
    uint32_t sequence;
} Probe;

static void *instantiate(const Descriptor *d, double sr, const char *bundle, const Feature *const *f) {
    Map *map = NULL; Unmap *unmap = NULL; const Option *options = NULL;
    for (; f && *f; f++) {
        if (!strcmp((*f)->URI, "http://lv2plug.in/ns/ext/urid#map")) map = (*f)->data;
        else if (!strcmp((*f)->URI, "http://lv2plug.in/ns/ext/urid#unmap")) unmap = (*f)->data;
        else if (!strcmp((*f)->URI, "http://lv2plug.in/ns/ext/options#options")) options = (*f)->data;
    }
    if (!map || !unmap || !options) return NULL;
    Probe *p = calloc(1, sizeof(Probe));
    uint32_t k_rate = map->map(map->handle, "http://lv2plug.in/ns/ext/parameters#sampleRate");
    uint32_t k_max = map->map(map->handle, BUFSZ "maxBlockLength");
    uint32_t t_float = map->map(map->handle, ATOM "Float"), t_int = map->map(map->handle, ATOM "Int");
    for (const Option *o = options; o->key; o++) {
        if (o->key == k_rate && o->type == t_float && o->size == 4) p->rate = *(const float *)o->value;
        if (o->key == k_max && o->type == t_int && o->size == 4) p->max_block = *(const int32_t *)o->value;
    }
    p->sequence = map->map(map->handle, ATOM "Sequence");
    const char *back = unmap->unmap(unmap->handle, p->sequence);
    p->unmap_ok = back && !strcmp(back, ATOM "Sequence")
                  && map->map(map->handle, ATOM "Sequence") == p->sequence && p->sequence != t_float;
    return p;
}

static void connect_port(void *h, uint32_t i, void *data) { if (i < 10) ((Probe *)h)->port[i] = data; }
static void activate(void *h) { ((Probe *)h)->activations += 1; }

static void run(void *h, uint32_t n) {
    Probe *p = h;
    const uint32_t *atom = (const uint32_t *)p->port[2];
    float gain = *p->port[3];
    for (uint32_t i = 0; i < n; i++) p->port[1][i] = p->port[0][i] * gain;
    *p->port[4] = p->rate;
    *p->port[5] = p->max_block;
    *p->port[6] = atom[0] == 8 && atom[1] == p->sequence;      /* an empty atom:Sequence */
    *p->port[7] = p->unmap_ok;
    *p->port[8] = 7;
    *p->port[9] = p->activations;
}

static void cleanup(void *h) { free(h); }

static const Descriptor probe = {"urn:dualtone:test:probe", instantiate, connect_port, activate, run,
                                 NULL, cleanup, NULL};

__attribute__((visibility("default"))) const Descriptor *lv2_descriptor(uint32_t index) {
    return index == 0 ? &probe : NULL;
}
"""

PREFIXES = """\
@prefix lv2: <http://lv2plug.in/ns/lv2core#> .
@prefix atom: <http://lv2plug.in/ns/ext/atom#> .
@prefix bufsz: <http://lv2plug.in/ns/ext/buf-size#> .
@prefix doap: <http://usefulinc.com/ns/doap#> .
@prefix ev: <http://lv2plug.in/ns/ext/event#> .
@prefix foaf: <http://xmlns.com/foaf/0.1/> .
@prefix opts: <http://lv2plug.in/ns/ext/options#> .
@prefix pprops: <http://lv2plug.in/ns/ext/port-props#> .
@prefix pset: <http://lv2plug.in/ns/ext/presets#> .
@prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix urid: <http://lv2plug.in/ns/ext/urid#> .
@prefix work: <http://lv2plug.in/ns/ext/worker#> .
"""

MANIFEST = PREFIXES + """
<urn:dualtone:test:probe> a lv2:Plugin ; lv2:binary <probe.so> ; rdfs:seeAlso <plugins.ttl> .
<urn:dualtone:test:enum> a lv2:Plugin ; lv2:binary <probe.so> ; rdfs:seeAlso <plugins.ttl> .
<urn:dualtone:test:worker> a lv2:Plugin ; lv2:binary <probe.so> ; rdfs:seeAlso <plugins.ttl> .
<urn:dualtone:test:fixed> a lv2:Plugin ; lv2:binary <probe.so> ; rdfs:seeAlso <plugins.ttl> .
<urn:dualtone:test:events> a lv2:Plugin ; lv2:binary <probe.so> ; rdfs:seeAlso <plugins.ttl> .
<urn:dualtone:test:missing> a lv2:Plugin ; lv2:binary <missing.so> ; rdfs:seeAlso <plugins.ttl> .
<urn:dualtone:preset:loud> a pset:Preset ; lv2:appliesTo <urn:dualtone:test:probe> ; rdfs:seeAlso <presets.ttl> .
<urn:dualtone:preset:quiet> a pset:Preset ; lv2:appliesTo <urn:dualtone:test:probe> ; rdfs:seeAlso <presets.ttl> .
"""

MONO = """
    lv2:port [ a lv2:InputPort, lv2:AudioPort ; lv2:index 0 ; lv2:symbol "in" ; lv2:name "In" ] ,
             [ a lv2:OutputPort, lv2:AudioPort ; lv2:index 1 ; lv2:symbol "out" ; lv2:name "Out" ]"""

PLUGINS = PREFIXES + f"""
<urn:dualtone:test:probe> a lv2:Plugin, lv2:AmplifierPlugin ;
    doap:name "Dualtone probe" ; doap:maintainer [ foaf:name "Dualtone Tests" ] ;
    lv2:minorVersion 3 ; lv2:microVersion 7 ;
    lv2:requiredFeature urid:map, urid:unmap, opts:options, bufsz:boundedBlockLength ;
    lv2:optionalFeature lv2:hardRTCapable ;
    {MONO} ,
    [ a lv2:InputPort, atom:AtomPort ; atom:bufferType atom:Sequence ; lv2:index 2 ;
      lv2:symbol "events" ; lv2:name "Events" ] ,
    [ a lv2:InputPort, lv2:ControlPort ; lv2:index 3 ; lv2:symbol "gain" ; lv2:name "Gain" ;
      lv2:default 1.0 ; lv2:minimum 0.0 ; lv2:maximum 4.0 ] ,
    [ a lv2:OutputPort, lv2:ControlPort ; lv2:index 4 ; lv2:symbol "rate" ; lv2:name "Rate" ] ,
    [ a lv2:OutputPort, lv2:ControlPort ; lv2:index 5 ; lv2:symbol "max_block" ; lv2:name "Max block" ] ,
    [ a lv2:OutputPort, lv2:ControlPort ; lv2:index 6 ; lv2:symbol "sequence_ok" ; lv2:name "Sequence ok" ] ,
    [ a lv2:OutputPort, lv2:ControlPort ; lv2:index 7 ; lv2:symbol "unmap_ok" ; lv2:name "Unmap ok" ] ,
    [ a lv2:OutputPort, lv2:ControlPort ; lv2:index 8 ; lv2:symbol "latency" ; lv2:name "Latency" ;
      lv2:designation lv2:latency ] ,
    [ a lv2:OutputPort, lv2:ControlPort ; lv2:index 9 ; lv2:symbol "activations" ; lv2:name "Activations" ] .

<urn:dualtone:test:enum> a lv2:Plugin ;
    doap:name "Dualtone enum" ;
    {MONO} ,
    [ a lv2:InputPort, lv2:ControlPort ; lv2:index 2 ; lv2:symbol "mode" ; lv2:name "Mode" ;
      lv2:portProperty lv2:enumeration, lv2:integer ; lv2:default 1.7 ; lv2:minimum 0 ; lv2:maximum 4 ;
      lv2:scalePoint [ rdfs:label "Four" ; rdf:value 4 ] , [ rdfs:label "Zero" ; rdf:value 0 ] ,
                     [ rdfs:label "Two" ; rdf:value 2 ] ] ,
    [ a lv2:InputPort, lv2:ControlPort ; lv2:index 3 ; lv2:symbol "bare" ; lv2:name "Bare" ] ,
    [ a lv2:InputPort, lv2:ControlPort ; lv2:index 4 ; lv2:symbol "low" ; lv2:name "Low" ;
      lv2:minimum -5 ; lv2:default -9 ] ,
    [ a lv2:InputPort, lv2:ControlPort ; lv2:index 5 ; lv2:symbol "bypass" ; lv2:name "Bypass" ;
      lv2:portProperty lv2:toggled ; lv2:default 1 ] ,
    [ a lv2:InputPort, lv2:ControlPort ; lv2:index 6 ; lv2:symbol "cutoff" ; lv2:name "Cutoff" ;
      lv2:portProperty lv2:sampleRate, pprops:logarithmic ; lv2:minimum 0.001 ; lv2:maximum 0.25 ;
      lv2:default 0.01 ] ,
    [ a lv2:OutputPort, lv2:ControlPort ; lv2:index 7 ; lv2:symbol "lat" ; lv2:name "Lat" ;
      lv2:portProperty lv2:reportsLatency ] .

<urn:dualtone:test:worker> a lv2:Plugin ; doap:name "Dualtone worker" ;
    lv2:requiredFeature urid:map, work:schedule ; {MONO} .
<urn:dualtone:test:fixed> a lv2:Plugin ; doap:name "Dualtone fixed" ;
    lv2:requiredFeature bufsz:fixedBlockLength ; {MONO} .
<urn:dualtone:test:events> a lv2:Plugin ; doap:name "Dualtone events" ; {MONO} ,
    [ a lv2:InputPort, ev:EventPort ; lv2:index 2 ; lv2:symbol "midi" ; lv2:name "MIDI" ] .
<urn:dualtone:test:missing> a lv2:Plugin ; doap:name "Dualtone missing" ; {MONO} .
"""

PRESETS = PREFIXES + """
<urn:dualtone:preset:loud> a pset:Preset ; lv2:appliesTo <urn:dualtone:test:probe> ; rdfs:label "Loud" ;
    lv2:port [ lv2:symbol "gain" ; pset:value 2.5 ] , [ lv2:symbol "gone" ; pset:value 9.0 ] .
<urn:dualtone:preset:quiet> a pset:Preset ; lv2:appliesTo <urn:dualtone:test:probe> ; rdfs:label "Quiet" ;
    lv2:port [ lv2:symbol "gain" ; pset:value 0.25 ] .
"""


@pytest.fixture(scope="module")
def test_bundle(tmp_path_factory):
    """A folder holding dualtone-test.lv2 (the probe plugin built with gcc, descriptions, presets)."""
    return lv2_test_bundle(tmp_path_factory.mktemp("lv2"))


@pytest.fixture(scope="module")
def found(test_bundle):
    """Discovery over our bundle and the system's, LV2_PATH set for the whole module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LV2_PATH", f"{test_bundle}:/usr/lib/lv2")
        yield {i.id: i for i in lv2.discover(48000.0)}


def _sine(n, f=0.01, amplitude=0.5):
    return (amplitude * np.sin(2 * np.pi * f * np.arange(n))).astype(np.float32)


# ------------------------------------------------------------------ discovery

def test_discovery_reads_swh_amp_as_its_ttl_says(found):
    amp = found[AMP]
    # amp-swh.lv2/plugin.ttl: doap:name "Simple amplifier", maintainer Steve Harris, a
    # :AmplifierPlugin; port 0 gain "Amps gain (dB)" -70..+70 default 0; 1 input, 2 output (audio)
    assert (amp.api, amp.name, amp.maker, amp.category) == ("lv2", "Simple amplifier", "Steve Harris", "Amplifier")
    assert amp.ports == (Port(0, "gain", "Amps gain (dB)", "control", False),
                         Port(1, "input", "Input", "audio", False), Port(2, "output", "Output", "audio", True))
    (gain,) = amp.controls
    assert (gain.index, gain.symbol, gain.minimum, gain.maximum, gain.default) == (0, "gain", -70.0, 70.0, 0.0)
    assert not (gain.log or gain.integer or gain.toggled or gain.enumerated)
    assert amp.latency_port is None and amp.required_features == () and amp.usable
    assert amp.library == "/usr/lib/lv2/amp-swh.lv2" and amp.version == ""


def test_discovery_reads_a_fomp_filter_with_its_sample_rate_bounds(found):
    f = found[MVCLPF1]
    # fomp.lv2/mvclpf1.ttl: minor 2 micro 0; audio in/out, three CV inputs, six controls; freq is
    # logarithmic and lv2:sampleRate, 0.000030517578..0.5 (x 48 kHz), default 440 (already Hz)
    assert (f.name, f.maker, f.category, f.version) == ("Moog Low-Pass Filter 1", "David Robillard",
                                                        "Lowpass Filter", "2.0")
    assert [p.type for p in f.ports] == ["audio", "audio", "cv", "cv", "cv"] + ["control"] * 6
    assert [c.symbol for c in f.controls] == ["in_gain", "freq", "exp_fm_gain", "res", "res_gain", "out_gain"]
    freq = f.control("freq")
    assert freq.log and freq.minimum == pytest.approx(0.000030517578 * 48000) and freq.maximum == 24000.0
    assert freq.default == 440.0
    assert (f.control("res").minimum, f.control("res").maximum, f.control("res").default) == (0.0, 1.0, 0.25)
    assert (f.control("in_gain").minimum, f.control("in_gain").maximum) == (-60.0, 10.0)
    assert f.usable


def test_sample_rate_defaults_within_the_unscaled_bounds_are_scaled():
    # butterworth-swh.lv2: cutoff 0.0001..0.45 x SR, default 0.112575 (a fraction of SR as well)
    cutoff = next(i for i in lv2.discover(44100.0) if i.id == BUTTLOW).control("cutoff")
    assert (cutoff.minimum, cutoff.maximum) == (pytest.approx(4.41), pytest.approx(19845.0))
    assert cutoff.default == pytest.approx(0.112575 * 44100) and cutoff.log


def test_integer_toggled_and_scale_points_from_real_plugins(found):
    denominator = found[DIVIDER].control("denominator")          # divider-swh: 1..8, default 1, integer
    assert denominator.integer and (denominator.minimum, denominator.maximum, denominator.default) == (1.0, 8.0, 1.0)
    automatable = found[OFFSET].control("automatable")           # offset-swh: toggled, default 0
    assert automatable.toggled and (automatable.minimum, automatable.maximum, automatable.default) == (0.0, 1.0, 0.0)
    # cs_phaser1_lfo's waveform has scale points but no lv2:enumeration: a plain slider
    waveform = found[PHASER_LFO].control("lfo_waveform")
    assert not waveform.enumerated and waveform.points == () and (waveform.minimum, waveform.maximum) == (-1.0, 1.0)


def test_enumerations_missing_bounds_and_toggles(found):
    e = found[f"lv2:{TEST}enum"]
    assert e.category == "" and e.maker == "" and e.version == "" and e.usable
    mode = e.control("mode")
    assert mode.points == (0.0, 2.0, 4.0) and mode.labels == ("Zero", "Two", "Four")
    assert mode.default == 2.0 and mode.integer and mode.enumerated       # 1.7: the nearest point
    bare = e.control("bare")
    assert (bare.minimum, bare.maximum, bare.default) == (0.0, 1.0, 0.0)
    low = e.control("low")                                                # min -5, no max: -5..1
    assert (low.minimum, low.maximum, low.default) == (-5.0, 1.0, -5.0)  # default -9 clamped
    bypass = e.control("bypass")
    assert bypass.toggled and (bypass.minimum, bypass.maximum, bypass.default) == (0.0, 1.0, 1.0)
    cutoff = e.control("cutoff")
    assert cutoff.log and (cutoff.minimum, cutoff.maximum, cutoff.default) == (48.0, 12000.0, 480.0)
    assert e.latency_port == 7                                            # lv2:reportsLatency
    assert [c.index for c in e.controls] == [2, 3, 4, 5, 6]


def test_latency_ports_by_property_and_by_designation(found):
    assert found[LATENCY].latency_port == 3          # latency-swh: port 3 has :reportsLatency
    assert found[f"lv2:{TEST}probe"].latency_port == 8     # lv2:designation lv2:latency


def test_probe_plugin_description(found):
    p = found[f"lv2:{TEST}probe"]
    assert (p.name, p.maker, p.category, p.version) == ("Dualtone probe", "Dualtone Tests", "Amplifier", "3.7")
    assert set(p.required_features) == {"http://lv2plug.in/ns/ext/urid#map", "http://lv2plug.in/ns/ext/urid#unmap",
                                        "http://lv2plug.in/ns/ext/options#options",
                                        "http://lv2plug.in/ns/ext/buf-size#boundedBlockLength"}
    assert p.usable and [q.type for q in p.ports[:4]] == ["audio", "audio", "atom", "control"]


def test_what_makes_a_plugin_unusable(found):
    assert found[f"lv2:{TEST}worker"].unusable == "needs worker:schedule, which Dualtone does not provide"
    assert found[f"lv2:{TEST}fixed"].unusable == "needs buf-size:fixedBlockLength, which Dualtone does not provide"
    assert found[f"lv2:{TEST}events"].unusable == "port 'midi' has an unsupported type"
    assert found[f"lv2:{SWH}analogueOsc"].unusable.startswith("0 audio inputs and 1 audio output:")
    assert found[REVERB].required_features == ("http://lv2plug.in/ns/lv2core#isLive",) and found[REVERB].usable
    with pytest.raises(PluginError, match="worker:schedule"):
        lv2.Lv2Instance(found[f"lv2:{TEST}worker"], 48000, 64)


def test_a_hand_made_info_needing_the_worker_is_refused():
    ports = (Port(0, "in", "In", "audio", False), Port(1, "out", "Out", "audio", True))
    feature = "http://lv2plug.in/ns/ext/worker#schedule"
    reason = lv2._problem([feature], list(ports), True)
    assert reason == "needs worker:schedule, which Dualtone does not provide"
    info = PluginInfo(id="lv2:urn:nowhere", api="lv2", name="x", maker="", category="", ports=ports, controls=(),
                      latency_port=None, required_features=(feature,), unusable=reason)
    with pytest.raises(PluginError, match="needs worker:schedule"):
        lv2.Lv2Instance(info, 48000, 64)


def test_discovery_with_lilvs_default_path_is_fast_and_sorted(monkeypatch):
    monkeypatch.delenv("LV2_PATH", raising=False)
    start = time.perf_counter()
    infos = lv2.discover()
    assert time.perf_counter() - start < 2.0
    assert AMP in {i.id for i in infos} and not any(i.id.startswith(f"lv2:{TEST}") for i in infos)
    assert [i.name.lower() for i in infos] == sorted(i.name.lower() for i in infos)
    assert all(i.api == "lv2" and i.id.startswith("lv2:") for i in infos)


# ------------------------------------------------------------------ instances

def test_swh_amp_applies_its_gain_in_float32(found):
    inst = lv2.Lv2Instance(found[AMP], 48000, 512)
    assert inst.run_address and inst.handle
    inst.controls[0] = 6.0
    inst.activate()
    x = _sine(512)
    inst.audio_in[0] = x
    inst.run(512)
    expected = x * np.float32(10 ** (6.0 / 20))
    np.testing.assert_allclose(inst.audio_out[0], expected, rtol=1e-6, atol=1e-9)
    inst.controls[0] = -20.0
    inst.run(100)
    np.testing.assert_allclose(inst.audio_out[0, :100], x[:100] * np.float32(0.1), rtol=1e-6, atol=1e-9)
    inst.close()
    inst.close()                     # idempotent
    assert inst.run_address == 0


def test_reported_latency_follows_the_delay_control(found):
    # latency-swh.lv2's run: latency = f_round(delay * 0.001 * fs); its output copies the input
    inst = lv2.Lv2Instance(found[LATENCY], 48000, 256)
    assert inst.latency == 0                            # not run yet
    inst.controls[0] = 10.0                             # ms
    inst.activate()
    inst.audio_in[0] = _sine(256)
    inst.run(256)
    assert inst.latency == 480
    inst.run(64)
    assert inst.latency == 480
    inst.controls[0] = 2.5
    inst.run(64)
    assert inst.latency == 120
    inst.close()


def test_the_host_passes_options_urid_map_and_atom_headers(found):
    info = found[f"lv2:{TEST}probe"]
    inst = lv2.Lv2Instance(info, 44100, 300)
    assert list(inst.atom_urids) == [U.urid("http://lv2plug.in/ns/ext/atom#Sequence"),
                                     U.urid("http://lv2plug.in/ns/ext/atom#Chunk")]
    inst.controls[0] = 1.5
    inst.activate()
    x = _sine(300)
    inst.audio_in[0] = x
    inst.run(300)
    rate, max_block, sequence_ok, unmap_ok, _latency, activations = inst.control_outputs
    assert (rate, max_block, sequence_ok, unmap_ok, activations) == (44100.0, 300.0, 1.0, 1.0, 1.0)
    assert inst.latency == 7
    np.testing.assert_array_equal(inst.audio_out[0], x * np.float32(1.5))
    inst.restart()
    inst.run(10)
    assert inst.control_outputs[5] == 2.0
    inst.close()
    inst.close()


def test_a_plugin_whose_library_is_missing_refuses_to_instantiate(found):
    with pytest.raises(PluginError, match="refused to instantiate"):
        lv2.Lv2Instance(found[f"lv2:{TEST}missing"], 48000, 64)


def test_many_instances_and_rediscovery_keep_working(found, test_bundle, monkeypatch):
    monkeypatch.setenv("LV2_PATH", f"{test_bundle}:/usr/lib/lv2")
    first = [lv2.Lv2Instance(found[AMP], 48000, 64) for _ in range(3)]
    again = {i.id: i for i in lv2.discover()}          # a new world; the old one stays for `first`
    second = lv2.Lv2Instance(again[AMP], 48000, 64)
    for inst in first + [second]:
        inst.activate()
        inst.audio_in[0] = 1.0
        inst.run(64)
        assert inst.audio_out[0, 0] == 1.0             # 0 dB
        inst.close()


# ------------------------------------------------------------------ the URID map

def test_urid_map_is_stable_distinct_and_inverted_by_unmap():
    a, b = U.urid("http://example.org/a"), U.urid("http://example.org/b")
    assert a and b and a != b
    assert U.urid("http://example.org/a") == a
    assert U.unmap(a) == "http://example.org/a" and U.unmap(b) == "http://example.org/b"
    assert U.urid("") == 0 and U.urid("x" * U.SLOT) == 0 and U.unmap(0) is None
    free = next(k for k in range(1, U.CAPACITY + 1) if U.unmap(k) is None)
    assert U.unmap(free) is None and U.unmap(U.CAPACITY + 1) is None


def test_urid_map_called_through_its_c_struct_from_several_threads():
    """Plugins call map through LV2_URID_Map from any thread: ctypes calls release the GIL, so
    these run at once and must agree."""
    fn = U.MAP_FN(U.MAP.map)
    uris = [f"urn:dualtone:thread:{k}".encode() for k in range(300)]
    results = [None] * 4

    def work(slot):
        results[slot] = [fn(U.MAP.handle, u) for u in (uris if slot % 2 else uris[::-1])]

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    forward = results[1]
    assert results[3] == forward and results[0][::-1] == forward and results[2][::-1] == forward
    assert len(set(forward)) == len(uris) and 0 not in forward
    unmap = U.UNMAP_FN(U.UNMAP.unmap)
    assert [ctypes.string_at(unmap(U.UNMAP.handle, i)) for i in forward] == uris


# ------------------------------------------------------------------ presets

def test_factory_presets_are_read_as_control_values(found):
    presets = lv2.factory_presets(found[f"lv2:{TEST}probe"])
    assert presets == {"Loud": {"gain": 2.5}, "Quiet": {"gain": 0.25}}    # "gone" is not a port
    assert list(presets) == ["Loud", "Quiet"]
    assert lv2.factory_presets(found[AMP]) == {}


def test_learn_starts_the_plugin_from_one_of_its_presets(test_bundle, monkeypatch, capsys):
    from app.cli.main import main
    from app.plugins import registry
    monkeypatch.setenv("LV2_PATH", f"{test_bundle}:/usr/lib/lv2")
    registry.forget()
    try:
        base = ["learn", "--quiet", "--plugin", f"lv2:{TEST}probe", "--circuit", "y = g*x", "--param", "g=1:-4:4",
                "--optimizer", "adam", "--lr", "0.01", "--samples", "48000"]
        assert main(base + ["--plugin-preset", "Quiet"]) == 0
        res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert res["plugin"]["controls"]["gain"] == 0.25
        assert main(base + ["--plugin-preset", "Quiet", "--hidden", "gain=0.5"]) == 0     # --hidden wins
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["plugin"]["controls"]["gain"] == 0.5
        assert main(base + ["--plugin-preset", "Loudest"]) == 2
        assert "no such preset (its presets: 'Loud', 'Quiet')" in capsys.readouterr().err
    finally:
        registry.forget()
