"""`propose-banks`: LACTOSE bank boundaries for a target, with what they gain."""
from __future__ import annotations

import argparse
import json
import sys

from app.cli.args import parse_hidden
from app.cli.errors import UsageError
from app.cli.inputs import make_source


def cmd_propose_banks(a) -> int:
    """Propose LACTOSE bank boundaries for a target from its input, and say what they gain."""
    from engine.learn.bank_proposal import propose
    sr_given = a.sr is not None
    sample_rate = a.sr if sr_given else 48000.0
    if a.samples < 1:
        raise UsageError("--samples must be a whole number >= 1")
    source, sample_rate = make_source(a.input, sample_rate, a.seed, sr_given)
    x = source.read(a.samples)
    hidden = dict(parse_hidden(t) for t in a.hidden)
    try:
        prop = propose(x, a.target, K=a.count, condition=a.condition, sample_rate=sample_rate,
                       hidden=hidden, memory=not a.memoryless)
    except ValueError as e:
        raise UsageError(str(e).splitlines()[0]) from None
    if not a.quiet:
        print(prop.report(), file=sys.stderr)
    if a.count_spelled_banks:           # after the work, so an error stays the only line
        print("note: --banks K is now --count K here (learn's --banks is a list of boundaries)",
              file=sys.stderr)
    flag = ",".join(f"{b:.6g}" for b in prop.boundaries)
    print(json.dumps({"boundaries": [float(b) for b in prop.boundaries], "condition": prop.condition,
                      "banks_flag": f"--banks={flag} --condition {prop.condition}",
                      "loss": prop.loss, "quantile_loss": prop.quantile_loss, "single_loss": prop.single_loss,
                      "improvement_vs_quantiles": prop.improvement.vs_quantile,
                      "improvement_vs_one_bank": prop.improvement.vs_single, "samples_per_bank": prop.counts}))
    return 0


class _OldCountSpelling(argparse.Action):
    """--banks K, the count's old spelling: still taken, with a note (learn's --banks is a list)."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.count = values
        namespace.count_spelled_banks = True


def add_parser(sub):
    pp = sub.add_parser("propose-banks", help="propose LACTOSE bank boundaries for a target",
                        description="Fit a cheap model per candidate bank (least squares on a small basis "
                                    "of x, with one sample of memory) and choose the K-bank split of the "
                                    "condition with the least error; print a table on stderr and one "
                                    "JSON line with the boundaries and the improvement over level "
                                    "quantiles and over one bank.")
    pp.add_argument("--target", required=True, help="the ground-truth circuit")
    pp.add_argument("--hidden", action="append", default=[], metavar="NAME=VALUE")
    pp.add_argument("--count", type=int, default=4, metavar="K", help="how many banks (default 4)")
    pp.add_argument("--banks", dest="count", type=int, action=_OldCountSpelling, help=argparse.SUPPRESS)
    pp.add_argument("--condition", choices=["level", "input"], default="level")
    pp.add_argument("--input", default="lcg-noise", metavar="lcg-noise|noise|sine:HZ|FILE")
    pp.add_argument("--samples", type=int, default=48000, metavar="N")
    pp.add_argument("--sr", type=float, default=None)
    pp.add_argument("--seed", type=int, default=0)
    pp.add_argument("--memoryless", action="store_true", help="fit without the one-sample memory terms")
    pp.add_argument("--quiet", action="store_true", help="no table on stderr")
    pp.set_defaults(count_spelled_banks=False)
    pp.set_defaults(func=cmd_propose_banks)

