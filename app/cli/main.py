"""Command line: `python main.py learn|run|render|propose-banks|train-sptmod|devices|plugins ...`
(headless work). One module per command, each with add_parser(sub) and its cmd_ function."""
from __future__ import annotations

import argparse
import difflib
import re
import sys

from app.cli import devices, learn, plugins, propose_banks, render, run, train_sptmod
from app.cli.args import _positive_seconds
from app.cli.errors import EXIT_USAGE, UsageError


NEGATIVE_VALUE = re.compile(r"^-[\d.]")     # -1, -0.5, -1,0,1: a value, never a flag


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one `error:` line (exit 2, as every other bad input) that
    suggests the nearest flag for a typo (Python 3.11's argparse has no suggestions)."""

    def error(self, message):
        hint = self._suggestion(message)
        print(f"error: {self.prog.split()[-1] if ' ' in self.prog else self.prog}: {message}{hint}",
              file=sys.stderr)
        raise SystemExit(2)

    def _suggestion(self, message) -> str:
        m = re.search(r"unrecognized arguments: (\S+)", message)
        if m is None:
            return ""
        flags = {s for parser in _all_parsers(self) for action in parser._actions for s in action.option_strings}
        close = difflib.get_close_matches(m.group(1).split("=")[0], sorted(flags), n=1, cutoff=0.7)
        return f" (did you mean {close[0]}?)" if close else ""


def _all_parsers(parser):
    """This parser and its subcommands' parsers."""
    out = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out.extend(_all_parsers(sub))
    return out


def join_negative_values(argv: list[str]) -> list[str]:
    """`--banks -1,0,1` as `--banks=-1,0,1`: argparse reads a value that starts with '-' and is
    not a plain number as a flag ("expected one argument")."""
    out = []
    for token in argv:
        if out and NEGATIVE_VALUE.match(token) and out[-1].startswith("--") and "=" not in out[-1]:
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
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
    p.add_argument("--verbose", action="store_true",
                   help="let the audio libraries print their own messages (JACK's connection probes)")
    sub = p.add_subparsers(dest="command")
    for command in (learn, run, propose_banks, render, train_sptmod, devices, plugins):
        command.add_parser(sub)
    return p


_UNSET = object()


def given_options(argv: list[str]) -> set[str]:
    """The dests of the options typed on this command line (a value typed equal to its default
    included): what a flag given with --preset overrides. argv has already parsed cleanly once."""
    parser = build_parser()
    for p in _all_parsers(parser):
        for action in p._actions:
            if action.option_strings:     # an appending flag starts from None: it has a list once given
                action.default = None if isinstance(action, argparse._AppendAction) else _UNSET
    return {k for k, v in vars(parser.parse_args(argv)).items() if v is not _UNSET and v is not None}


def main(argv=None, gui=None) -> int:
    """gui(preset, seconds, screenshot, device, blocksize, verbose) -> exit code opens the window; main.py
    passes it in (app/ never imports ui/)."""
    parser = build_parser()
    # argparse exits with 2 on bad flags, which is the contract's code for bad input
    argv_ = join_negative_values(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv_)
    if not getattr(args, "func", None):
        if gui is None:
            parser.print_help()
            return 0
        return gui(preset=args.preset, seconds=args.seconds, screenshot=args.screenshot,
                   device=args.gui_device, blocksize=args.gui_blocksize, verbose=args.verbose)
    args.given = given_options(argv_)
    try:
        return args.func(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
