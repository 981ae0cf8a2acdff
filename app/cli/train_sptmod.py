"""`train-sptmod`: train an SPTMod model from recordings (app/train/; PyTorch is imported only
when the command runs)."""
from __future__ import annotations

import json

from app.cli.errors import UsageError, one_line


def add_parser(sub):
    """Register `train-sptmod` on an argparse subparsers object."""
    p = sub.add_parser(
        "train-sptmod", help="train an SPTMod model from recordings (needs PyTorch)",
        description="Train an SPTMod model (truncated backpropagation through time) from "
                    "input/target recordings of a device and write a Dualtone model file. "
                    "Progress goes to stderr, a JSON summary line to stdout.")
    p.add_argument("--input", nargs="+", metavar="IN.wav", help="device input recording(s)")
    p.add_argument("--target", nargs="+", metavar="OUT.wav",
                   help="device output recording(s), one per --input, same length and rate")
    p.add_argument("--controls-file", metavar="FILE.json",
                   help='control values per pair: {"controls": [{"name", "min", "max", '
                        '"default"}, ...], "items": [[values of pair 0], ...]}')
    p.add_argument("--config", default="sptmod25", metavar="sptmod24|sptmod25|FILE.json",
                   help="network configuration (default sptmod25)")
    p.add_argument("--out", metavar="MODEL", help="the model file to write (checkpoint: MODEL.ckpt)")
    p.add_argument("--epochs", type=int, default=20, help="epochs (default 20)")
    p.add_argument("--subsequences", "-N", type=int, default=3, dest="subsequences", metavar="N",
                   help="TBPTT sub-sequences per group, N (default 3)")
    p.add_argument("--batch", "-B", type=int, default=8, metavar="B", help="batch size B (default 8)")
    p.add_argument("--length", "-L", type=int, default=8192, metavar="L",
                   help="sub-sequence length L, a multiple of 64 (default 8192)")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (default 5e-4)")
    p.add_argument("--validation", type=float, default=0.2,
                   help="fraction at the end of every pair kept for validation (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--dtype", default="float32", help="training precision: float32 (default) or float64")
    p.add_argument("--threads", type=int, default=0,
                   help="PyTorch CPU threads (default 0: PyTorch's choice)")
    p.add_argument("--resume", action="store_true", help="continue from MODEL.ckpt")
    p.add_argument("--force", action="store_true", help="replace an existing model / checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_train_sptmod)
    return p


def options_from_args(a):
    from app.train.sptmod_train import TrainOptions
    return TrainOptions(inputs=list(a.input or []), targets=list(a.target or []), out=a.out,
                        controls_file=a.controls_file, config=a.config, epochs=a.epochs,
                        N=a.subsequences, B=a.batch, L=a.length, lr=a.lr,
                        validation=a.validation, seed=a.seed, resume=a.resume, force=a.force,
                        quiet=a.quiet, dtype=a.dtype, threads=a.threads)


def cmd_train_sptmod(a) -> int:
    from app.train.sptmod_train import NEEDS_TORCH, TrainInputError, train
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UsageError(NEEDS_TORCH) from None
    try:
        summary = train(options_from_args(a))
    except TrainInputError as e:
        raise UsageError(one_line(e)) from None
    print(json.dumps(summary))
    return 0
