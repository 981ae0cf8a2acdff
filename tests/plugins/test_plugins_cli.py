"""`python main.py plugins`: the catalogue as JSON or a table, --search, --probe."""
import json
import re

from app.cli.main import main
from app.plugins import registry

TO_JSON_FIELDS = {"id", "name", "maker", "category", "audio_inputs", "audio_outputs", "controls",
                  "latency_port", "required_features", "usable", "unusable_reason"}


def _json(capsys, *args):
    assert main(["plugins", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_objects_have_exactly_the_catalogue_fields(capsys):
    found = _json(capsys, "--search", "low pass")
    assert found
    for d in found:
        assert set(d) == TO_JSON_FIELDS
        assert d == registry.find(d["id"]).to_json()


def test_lpf_cutoff_range_follows_the_sample_rate(capsys):
    (lpf,) = [d for d in _json(capsys, "--search", "lpf") if d["id"] == "ladspa:1041"]
    (cutoff,) = lpf["controls"]
    assert cutoff["symbol"] == "cutoff_frequency_hz"
    assert (cutoff["min"], cutoff["max"], cutoff["default"]) == (0.0, 24000.0, 440.0)
    assert (lpf["audio_inputs"], lpf["audio_outputs"], lpf["latency_port"]) == (1, 1, None)
    (lpf,) = [d for d in _json(capsys, "--search", "lpf", "--sample-rate", "44100") if d["id"] == "ladspa:1041"]
    assert lpf["controls"][0]["max"] == 22050.0


def test_a_search_matching_nothing_says_so(capsys):
    assert main(["plugins", "--search", "no such plugin zzqx"]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == "no plugin matches 'no such plugin zzqx'"
    assert captured.out == ""


def test_a_bad_sample_rate_is_a_usage_error(capsys):
    assert main(["plugins", "--sample-rate", "-5"]) == 2
    assert capsys.readouterr().err.startswith("error: --sample-rate -5")


def test_the_table_lists_the_crash_plugin_as_usable_until_probed(crash_plugins, capsys):
    assert main(["plugins", "--search", "dualtone"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "MAKER"]
    (crash,) = [line for line in lines if line.startswith(crash_plugins["crash"])]
    assert "Dualtone Crash Test" in crash and "1→1" in crash and "crashed" not in crash
    assert lines[-1] == "4 plugins (4 usable)"

    assert main(["plugins", "--search", "dualtone crash", "--probe"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    (crash,) = [line for line in lines if line.startswith(crash_plugins["crash"])]
    assert crash.endswith("crashed (SIGSEGV) when probed")
    assert lines[-1] == "1 plugin (0 usable)"
    assert "ladspa:4242001: crashed (SIGSEGV) when probed" in captured.err


def test_probe_adds_its_verdict_to_the_json(crash_plugins, capsys):
    by_id = {d["id"]: d for d in _json(capsys, "--search", "dualtone crash", "--probe")}
    by_id.update({d["id"]: d for d in _json(capsys, "--search", "dualtone nan", "--probe")})
    by_id.update({d["id"]: d for d in _json(capsys, "--search", "dualtone allocating", "--probe")})
    for d in by_id.values():
        assert set(d) == TO_JSON_FIELDS | {"probe"}
        assert set(d["probe"]) == {"ok", "reason", "us_per_block", "latency", "allocates"}
        assert d["usable"] is True                 # the catalogue's word; the probe's is beside it
    crash, nan, alloc = (by_id[crash_plugins[k]]["probe"] for k in ("crash", "nan", "alloc"))
    assert crash == {"ok": False, "reason": "crashed (SIGSEGV) when probed", "us_per_block": None,
                     "latency": 0, "allocates": None}
    assert not nan["ok"] and nan["reason"] == "produced non-finite output on noise"
    assert alloc["ok"] and alloc["reason"] == "" and alloc["us_per_block"] > 0 and alloc["latency"] == 0


def test_the_table_of_good_plugins_with_probe(capsys):
    assert main(["plugins", "--search", "artificial latency", "--probe"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (row,) = [line for line in lines if line.startswith("ladspa:1914")]
    assert "yes (120000)" in row and "µs/block" in row
    assert re.fullmatch(r"\d+ plugins? \(\d+ usable\)", lines[-1])
