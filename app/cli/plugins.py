"""`plugins`: the installed LADSPA and LV2 plugins Dualtone can host (a table, or JSON), optionally
probed one by one in a child process (app/plugins/probe.py)."""
from __future__ import annotations

import json
import math
import re
import sys

from app.cli.errors import UsageError, parse_float
from app.words import plural

NAME_WIDTH, MAKER_WIDTH = 36, 24


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _maker(text: str) -> str:
    """The maker without an e-mail address ('Steve Harris <steve@…>' -> 'Steve Harris')."""
    return re.sub(r"\s*<[^>]*>", "", text).strip() or text


def _probe_all(infos, sample_rate: float) -> list:
    from app.plugins.probe import probe
    from app.progress import Progress
    progress = Progress(len(infos), True, unit="plugins", delay=0.0, tty_only=True)
    results = []
    for k, info in enumerate(infos):
        progress.update(k, prefix=f"probing {k + 1}/{len(infos)}: {_clip(info.name, 30):<30} ")
        r = probe(info, sample_rate)
        if not r.ok and not info.unusable:
            progress.line(f"{info.id}: {r.reason}")
        results.append(r)
    progress.close()
    return results


def _note(info, r) -> str:
    if info.unusable:
        return info.unusable
    if r is None:
        return ""
    if not r.ok:
        return r.reason
    parts = [f"{r.us_per_block:.1f} µs/block" if math.isfinite(r.us_per_block) else ""]
    if r.allocates:
        parts.append("allocates in run")
    return ", ".join(p for p in parts if p)


def _table(infos, probes) -> list[str]:
    rows = [("ID", "NAME", "MAKER", "IN→OUT", "CONTROLS", "LATENCY", "NOTE")]
    for info, r in zip(infos, probes):
        latency = "yes" if info.latency_port is not None else "no"
        if r is not None and r.ok and r.latency:
            latency += f" ({r.latency})"
        rows.append((info.id, _clip(info.name, NAME_WIDTH), _clip(_maker(info.maker), MAKER_WIDTH),
                     f"{len(info.audio_inputs)}→{len(info.audio_outputs)}", str(len(info.controls)),
                     latency, _note(info, r)))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]) - 1)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1]
            for row in rows]


def cmd_plugins(a) -> int:
    from app.plugins import registry
    sample_rate = parse_float(a.sample_rate, "--sample-rate")
    if not (math.isfinite(sample_rate) and sample_rate > 0):
        raise UsageError(f"--sample-rate {a.sample_rate}: must be a positive number of Hz")
    if a.search is not None:
        infos = registry.search(a.search, sample_rate)
        if not infos:
            print(f"no plugin matches '{a.search}'", file=sys.stderr)
            return 1
    else:
        infos = registry.catalogue(sample_rate)
    probes = _probe_all(infos, sample_rate) if a.probe else [None] * len(infos)
    if a.json:
        out = []
        for info, r in zip(infos, probes):
            d = info.to_json()
            if r is not None:
                p = r.to_json()
                d["probe"] = {k: p[k] for k in ("ok", "reason", "us_per_block", "latency", "allocates")}
            out.append(d)
        print(json.dumps(out))
        return 0
    for line in _table(infos, probes):
        print(line.rstrip())
    n_usable = sum(1 for info, r in zip(infos, probes) if info.usable and (r is None or r.ok))
    print(f"{plural(len(infos), 'plugin')} ({n_usable} usable)")
    return 0


def add_parser(sub):
    pp = sub.add_parser("plugins", help="list the installed LADSPA and LV2 plugins",
                        description="List the installed LADSPA and LV2 plugins: id, name, maker, audio "
                                    "inputs→outputs, controls, whether a latency port exists, and why a "
                                    "plugin cannot be used.")
    pp.add_argument("--json", action="store_true",
                    help="one JSON array of plugin objects (id, name, maker, category, audio_inputs, "
                         "audio_outputs, controls, latency_port, required_features, usable, unusable_reason)")
    pp.add_argument("--search", metavar="TEXT",
                    help="only plugins whose id, name, maker or category contain every word of TEXT")
    pp.add_argument("--probe", action="store_true",
                    help="also run each listed plugin on noise in a separate process (crash, hang, "
                         "non-finite output, cost per block, latency); results are cached per plugin version")
    pp.add_argument("--sample-rate", default="48000", metavar="HZ",
                    help="the sample rate control ranges and the probe use (default 48000)")
    pp.set_defaults(func=cmd_plugins)
