"""``caa bench``: time training steps of one model in the released, default and fast modes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError

#: Kept here as well as in caalib.models so registering the command imports no torch.
_TOPOLOGIES = ("pool", "nopool", "atrous")
_POOLINGS = ("flatten", "max", "avg", "roi", "att", "roi+att")
_STRATEGIES = ("single", "joint", "teacher_forcing", "multi_task")
_COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time training steps (released / default / fast) and the hardware's matmul rate",
        description="Time training steps of one model on synthetic data in the released, "
                    "default and fast modes, in one process, with the device's measured "
                    "matmul rate, and write the figures as JSON.",
    )
    add_arguments(p)
    p.set_defaults(func=run_bench_command)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``caa bench`` (shared with ``python -m caalib.bench`` and
    benchmarks/bench_training.py)."""
    p.add_argument("--topology", choices=_TOPOLOGIES, default="atrous")
    p.add_argument("--pooling", choices=_POOLINGS, default="att")
    p.add_argument("--strategy", choices=_STRATEGIES, default="multi_task")
    p.add_argument("--cond-layer", type=int, choices=(1, 2, 3, 4), default=None,
                   help="conditioned block (default 4 for the conditioned strategies)")
    p.add_argument("--attention", choices=("released", "paper"), default="released")
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
    p.add_argument("--compile-mode", choices=_COMPILE_MODES, default="default",
                   help="torch.compile mode of the compiled mode (default: the engine's)")
    p.add_argument("--accelerator", choices=("auto", "cpu", "cuda"), default=None,
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


def settings_from_args(args: argparse.Namespace):  # -> BenchSettings (lazy torch import)
    """Options -> BenchSettings; only the options given override the defaults/--cpu-quick."""
    from ..bench import BenchSettings

    over: dict = {}
    for opt, key in (("topology", "topology"), ("pooling", "pooling"),
                     ("strategy", "strategy"), ("attention", "attention"), ("width", "width"),
                     ("batch", "batch"), ("frames", "frames"), ("mels", "mels"),
                     ("steps", "steps"), ("warmup", "warmup"), ("accelerator", "accelerator"),
                     ("threads", "threads"), ("matmul_size", "matmul_size"),
                     ("feature_clips", "feature_clips"), ("seed", "seed"),
                     ("compile_mode", "compile_mode")):
        value = getattr(args, opt)
        if value is not None:
            over[key] = value
    conditioned = args.strategy in ("teacher_forcing", "multi_task")
    over["cond_layer"] = (args.cond_layer if args.cond_layer is not None else 4) \
        if conditioned else None
    if not conditioned and args.cond_layer is not None:
        raise ConfigError(f"--cond-layer: strategy {args.strategy!r} has no conditioning")
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
    from ..bench import format_report, resolve_accelerator, run_bench, write_record

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
