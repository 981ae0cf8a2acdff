"""Command line: `python main.py learn|run|render|propose-banks|train-sptmod|devices|plugins ...`
(headless work). One module per command, each with add_parser(sub) and its cmd_ function."""
from __future__ import annotations

import argparse
import sys

from app.cli import devices, learn, plugins, propose_banks, render, run, train_sptmod
from app.cli.args import _positive_seconds
from app.cli.errors import EXIT_USAGE, UsageError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="main.py", description="Dualtone: learn audio circuits live. Without a command it opens "
                                    "the window; the commands below work without one.")
    p.add_argument("--preset", metavar="NAME|FILE", help="open this preset (a factory name or a file) "
                   "instead of restoring the last session")
    p.add_argument("--seconds", type=_positive_seconds, metavar="S",
                   help="learn for S seconds of audio, then exit (with --screenshot: save it first)")
    p.add_argument("--screenshot", metavar="FILE.png",
                   help="save the window as a PNG after --seconds (default 5) and exit; renders "
                        "offscreen when there is no display")
    p.add_argument("--device", dest="gui_device", metavar="NAME", help="audio device for the window")
    p.add_argument("--blocksize", dest="gui_blocksize", type=int, default=128, metavar="B",
                   help="frames per audio callback for the window (default 128)")
    sub = p.add_subparsers(dest="command")
    for command in (learn, run, propose_banks, render, train_sptmod, devices, plugins):
        command.add_parser(sub)
    return p


def main(argv=None, gui=None) -> int:
    """gui(preset, seconds, screenshot, device, blocksize) -> exit code opens the window; main.py
    passes it in (app/ never imports ui/)."""
    parser = build_parser()
    # argparse exits with 2 on bad flags, which is the contract's code for bad input
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        if gui is None:
            parser.print_help()
            return 0
        return gui(preset=args.preset, seconds=args.seconds, screenshot=args.screenshot,
                   device=args.gui_device, blocksize=args.gui_blocksize)
    try:
        return args.func(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
