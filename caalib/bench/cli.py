"""The options of ``caa bench`` and what running it does, shared by ``caa bench``
(registered by :mod:`caalib.commands.bench`), ``python -m caalib.bench`` and
``benchmarks/bench_training.py`` - the last two without the rest of the CLI, whose other
stages need librosa/soundfile."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import CaaError, ConfigError
from ..spec import (
    ATTENTION_VARIANTS,
    COND_LAYERS,
    CONDITIONED_STRATEGIES,
    POOLINGS,
    STRATEGIES,
    TOPOLOGIES,
)
from .environment import resolve_accelerator
from .report import format_report, write_record
from .runner import run_bench
from .settings import ACCELERATORS, COMPILE_MODES, BenchSettings

#: ``--cond-layer`` when a conditioned strategy is asked for without one (the option's
#: default, not the validator's: an unconditioned strategy with a layer is an error).
DEFAULT_COND_LAYER = 4


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``caa bench``."""
    p.add_argument("--topology", choices=TOPOLOGIES, default="atrous")
    p.add_argument("--pooling", choices=POOLINGS, default="att")
    p.add_argument("--strategy", choices=STRATEGIES, default="multi_task")
    p.add_argument("--cond-layer", type=int, choices=COND_LAYERS, default=None,
                   help=f"conditioned block (default {DEFAULT_COND_LAYER} for the "
                        "conditioned strategies)")
    p.add_argument("--attention", choices=ATTENTION_VARIANTS, default="released")
    p.add_argument("--width", type=float, default=None, help="channel multiplier (default 1)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 16)")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default 320)")
    p.add_argument("--mels", type=int, default=None, help="mel bins (default 64)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per mode (default 30)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps first (default 5; covers cudnn.benchmark tuning and "
                        "torch.compile)")
    p.add_argument("--modes", default=None,
                   help="comma-separated, from released, default, fast, compiled "
                        "(default released,default,fast)")
    p.add_argument("--compile", action="store_true",
                   help="also time the fast mode under torch.compile (mode 'compiled')")
    p.add_argument("--compile-mode", choices=COMPILE_MODES, default="default",
                   help="torch.compile mode of the compiled mode (default: the engine's)")
    p.add_argument("--accelerator", choices=ACCELERATORS, default=None,
                   help="torch device (default auto: CUDA when present)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--matmul-size", type=int, default=None,
                   help="square matmul size for the hardware rate (default 8192 GPU, 1024 CPU)")
    p.add_argument("--no-features", action="store_true", help="skip the feature timing")
    p.add_argument("--feature-clips", type=int, default=None,
                   help="synthetic 10 s clips for the feature timing (default 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="JSON output (default results/bench/<model>-<size>-<device>.json)")
    p.add_argument("--cpu-quick", action="store_true",
                   help="tiny CPU run (width 1/16, 64 frames, batch 8, 4 steps) that checks "
                        "the harness in well under a minute")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    """Options -> BenchSettings; only the options given override the defaults/--cpu-quick."""
    over: dict = {}
    for opt in ("topology", "pooling", "strategy", "attention", "width", "batch", "frames",
                "mels", "steps", "warmup", "accelerator", "threads", "matmul_size",
                "feature_clips", "seed", "compile_mode"):
        value = getattr(args, opt)
        if value is not None:
            over[opt] = value
    conditioned = args.strategy in CONDITIONED_STRATEGIES
    if not conditioned and args.cond_layer is not None:
        raise ConfigError(f"--cond-layer: strategy {args.strategy!r} has no conditioning")
    over["cond_layer"] = (args.cond_layer if args.cond_layer is not None
                          else DEFAULT_COND_LAYER) if conditioned else None
    if args.modes is not None:
        over["modes"] = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if args.compile:
        modes = over.get("modes", ("released", "default", "fast"))
        over["modes"] = modes if "compiled" in modes else (*modes, "compiled")
    if args.no_features:
        over["features"] = False
    if args.cpu_quick:
        if args.accelerator not in (None, "cpu"):
            raise ConfigError("--cpu-quick runs on the CPU; drop --accelerator")
        return BenchSettings.quick(**over)
    return BenchSettings(**over)


def run_bench_command(args: argparse.Namespace) -> int:
    """Run, write the JSON record, print the summary (or the record); 1 if a mode failed."""
    settings = settings_from_args(args)
    device = resolve_accelerator(settings.accelerator)
    out = args.out or Path("results/bench") / f"{settings.default_name(device.type)}.json"
    record = run_bench(settings, progress=not args.quiet)
    path = write_record(record, out)
    if args.json:
        print(json.dumps(record, indent=2, default=str))
    else:
        print(format_report(record))
    print(f"wrote {path}", file=sys.stderr)
    failed = [k for k, m in record["modes"].items() if "error" in m]
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m caalib.bench``: the ``caa bench`` options without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="python -m caalib.bench",
                                     description="Time training steps (see caa bench).")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_bench_command(args)
    except CaaError as exc:
        print(f"caa bench: error: {exc}", file=sys.stderr)
        return 1
