"""``caa train`` (one run) and ``caa sweep`` (a paper table)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..constants import ALL_DEVICES, TRAIN_DEVICES
from ..errors import ConfigError
from . import add_deprecated_alias


def register(sub: argparse._SubParsersAction) -> None:
    _register_train(sub)
    _register_sweep(sub)


def _register_train(sub: argparse._SubParsersAction) -> None:
    from ..spec import STRATEGIES, TOPOLOGIES
    from ..training.config import (
        ACCELERATORS,
        ATTENTION_MODES,
        LAMBDA_MODES,
        LR_DECAY_MODES,
        PROFILES_NAMES,
    )

    p = sub.add_parser(
        "train",
        help="train and evaluate one model into a run directory",
        description="Train one CAA-Net model with one strategy; a finished run directory "
        "with the same config is skipped, a partial one resumes from its checkpoint.",
    )
    p.add_argument("--data", required=True, help="dataset directory (real or synthetic)")
    p.add_argument("--topology", required=True, choices=TOPOLOGIES)
    p.add_argument("--pooling", required=True, help="max, avg, flatten, roi, att or roi+att")
    p.add_argument("--strategy", required=True, choices=STRATEGIES)
    trainable = [d for d in ALL_DEVICES if any(d in t for t in TRAIN_DEVICES.values())]
    p.add_argument("--source", choices=trainable, default=None,
                   help="recording device (DCASE source) a single-device run trains on "
                        "(a, b or c; on the 2020 layout also s1, s2 or s3)")
    add_deprecated_alias(p, "--device", "--source", "source", "train", choices=trainable)
    p.add_argument("--cond-layer", type=int, default=None,
                   help="conditioned block (1-4) for teacher_forcing / multi_task")
    p.add_argument("--profile", required=True, choices=PROFILES_NAMES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=None, help="override the profile's")
    p.add_argument("--lr-decay", choices=LR_DECAY_MODES, default="released")
    p.add_argument("--lambda-mode", choices=LAMBDA_MODES, default="released")
    p.add_argument("--attention", choices=ATTENTION_MODES, default="released")
    _add_recipe_flags(p)
    add_variant_flags(p)
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=None,
                   help="TF32 for fp32 CUDA ops (default: on with bf16, off with fp32)")
    p.add_argument("--accelerator", choices=ACCELERATORS, default="auto",
                   help="torch device (default: cuda when available)")
    p.add_argument("--fast", action=argparse.BooleanOptionalAction, default=True,
                   help="on CUDA: channels_last, fused Adam, and bf16 when --precision auto")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--cpu-threads", type=int, default=1,
                   help="torch threads on the CPU; part of the run's identity (default 1)")
    p.add_argument("--force", action="store_true", help="retrain even if the run is done")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="run directory")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from ..training import TrainConfig, summary_line, train

    overrides = dict(
        topology=args.topology, pooling=args.pooling, strategy=args.strategy,
        train_source=args.source, cond_layer=args.cond_layer, seed=args.seed,
        lr_decay=args.lr_decay, lambda_mode=args.lambda_mode, attention=args.attention,
        accelerator=args.accelerator, fast=args.fast, compile=args.compile,
        resampler=args.resampler, precision=args.precision, tf32=args.tf32,
        cpu_threads=args.cpu_threads, **variant_overrides(args),
    )
    if args.iterations is not None:
        overrides["iterations"] = args.iterations
    from ..datasets import detect_layout

    if Path(args.data).is_dir():
        overrides["dataset"] = detect_layout(args.data)
    config = TrainConfig.from_profile(args.profile, **overrides)
    note = cpu_time_note([config])
    if note:
        print(f"caa train: note: {note}", file=sys.stderr)
    metrics = train(config, args.out, data_dir=args.data, force=args.force,
                    progress=not args.no_progress)
    print(f"[train] {config.run_name}: {summary_line(metrics)} "
          f"({metrics.get('iterations')} iterations, {metrics.get('wall_time_s', 0):.1f} s)")
    print(f"[train] run directory: {args.out}")
    return 0


def cpu_time_note(configs: list[Any]) -> str | None:
    """For paper-size runs that would train on the CPU: a lower bound on their time at
    this CPU's measured matmul rate (None otherwise), said before they start."""
    from ..accelerator import resolve_torch_device
    from ..training.estimate import floor

    heavy = [c for c in configs if c.profile == "paper"
             and resolve_torch_device(c.accelerator, field="accelerator").type == "cpu"]
    if not heavy:
        return None
    return (f"paper-size training on the CPU: {floor(heavy).text()}, evaluation not "
            "counted. A GPU, or --profile demo, is the practical route")


def _add_recipe_flags(p: argparse.ArgumentParser) -> None:
    """Flags that change what a run computes beyond the model: part of its identity."""
    from ..training.config import PRECISIONS, RESAMPLERS

    p.add_argument("--resampler", choices=RESAMPLERS, default="kaiser_best",
                   help="48 -> 44.1 kHz resampling of the features (default kaiser_best, "
                        "as released)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="bf16 autocast or true fp32 (default auto: bf16 on CUDA, fp32 on "
                        "CPU; the released code trained in fp32)")


def add_variant_flags(p: argparse.ArgumentParser, sweep: bool = False) -> None:
    """The unseen-device policy and the augmentations (docs/unseen-devices.md): part of
    a run's identity, named in its run name when off their defaults."""
    from ..rundir import UNSEEN_AND_AUGMENT_DEFAULTS as d
    from ..spec import AUGMENTATIONS, UNSEEN_SOURCE_POLICIES

    where = (" (teacher-forcing and multi-task runs only; the others keep the default)"
             if sweep else " (teacher_forcing / multi_task only)")
    p.add_argument("--unseen-source", choices=UNSEEN_SOURCE_POLICIES,
                   default=d["unseen_source"],
                   help="what the conditioning gets for a device seen only in evaluation: "
                        f"nearest known device or none (default {d['unseen_source']})" + where)
    p.add_argument("--augment", default=d["augment"], metavar="NAMES",
                   help="training-time augmentations, '+'-joined: "
                        f"{', '.join(AUGMENTATIONS)} (default: none, as released)")
    p.add_argument("--mixstyle-p", type=float, default=d["mixstyle_p"],
                   help=f"Freq-MixStyle: probability per batch (default {d['mixstyle_p']})")
    p.add_argument("--mixstyle-alpha", type=float, default=d["mixstyle_alpha"],
                   help=f"Freq-MixStyle: Beta(alpha, alpha) mix (default {d['mixstyle_alpha']})")
    p.add_argument("--dir-p", type=float, default=d["dir_p"],
                   help="device impulse responses: probability per device-A clip "
                        f"(default {d['dir_p']})")
    p.add_argument("--mixup-alpha", type=float, default=d["mixup_alpha"],
                   help=f"mixup: Beta(alpha, alpha) weight (default {d['mixup_alpha']})")


def variant_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields of :func:`add_variant_flags`."""
    return dict(unseen_source=args.unseen_source, augment=args.augment,
                mixstyle_p=args.mixstyle_p, mixstyle_alpha=args.mixstyle_alpha,
                dir_p=args.dir_p, mixup_alpha=args.mixup_alpha)


def _register_sweep(sub: argparse._SubParsersAction) -> None:
    from ..training.config import PROFILES_NAMES

    p = sub.add_parser(
        "sweep",
        help="train the runs of one of the paper's tables that are not done yet",
        description="Enumerate Table I, II or III and train what is missing under "
        "RESULTS/runs/ (finished runs are skipped, partial ones resume).",
    )
    p.add_argument("--table", required=True, choices=("I", "II", "III"))
    p.add_argument("--profile", required=True, choices=PROFILES_NAMES)
    p.add_argument("--data", required=True, help="dataset directory")
    p.add_argument("--results", default="results", help="results directory (default results)")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..K-1 (default 1)")
    p.add_argument("--models", default=None,
                   help="comma-separated topology:pooling, e.g. atrous:att,pool:att")
    _add_recipe_flags(p)
    add_variant_flags(p, sweep=True)
    p.add_argument("--dry-run", action="store_true",
                   help="list the runs and their status, and the time the pending ones "
                        "need at least (FLOPs at the measured matmul rate)")
    p.add_argument("--measure", action="store_true",
                   help="with --dry-run: also time a few steps of each distinct model here "
                        "and estimate the wall time from that throughput")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: in this process (default); ray: one Ray task per run "
                        "(pip install .[cluster]; see docs/cluster.md)")
    p.add_argument("--ray-address", default=None,
                   help="an existing Ray cluster (auto, HOST:6379, ray://HOST:10001); "
                        "default: start a local Ray instance over this machine")
    p.add_argument("--jobs", type=_jobs, default=1,
                   help="runs trained at once by the local executor, each in its own "
                        "process with --cpu-threads threads (results equal --jobs 1's); "
                        "auto: usable CPUs / --cpu-threads on CPU, and on a GPU as many as "
                        "its memory and matmul rate hold for the heaviest pending model "
                        "(measured first; docs/training.md)")
    p.add_argument("--cpu-threads", type=int, default=1,
                   help="torch threads of each CPU run; part of a run's identity because "
                        "CPU numbers depend on it (default 1)")
    p.add_argument("--gpus-per-run", type=float, default=None,
                   help="GPUs per Ray task (fractions allowed; default 1 when GPUs exist)")
    p.set_defaults(func=_sweep)


def _jobs(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got {text!r}"
                                         ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got {text!r}")
    return value


def _n_frames(data_dir: str) -> int:
    """Frames of the dataset's clips (320 for 10 s), from its first clip's length."""
    from ..features.cache import dataset_sizes

    return dataset_sizes(data_dir)[1]


def print_plan(plan: Any, tag: str, where: str = "") -> set[str]:
    """Each run of ``plan`` (``training.sweep.plan_frame``) with its status, the counts,
    and the names of those still to train (``caa sweep`` and ``caa claims --dry-run``)."""
    for row in plan.itertuples():
        print(f"{row.status:8s} {row.run_name}")
    counts = plan["status"].value_counts().to_dict()
    print(f"[{tag}] {len(plan)} {where}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return set(plan.loc[plan["status"] != "done", "run_name"])


def _sweep(args: argparse.Namespace) -> int:
    from ..training.sweep import (
        TABLE_DATASET,
        SweepFailed,
        enumerate_runs,
        parse_models,
        plan_frame,
        run_sweep,
    )

    dataset = TABLE_DATASET[args.table]
    if Path(args.data).is_dir():
        from ..datasets import detect_layout

        layout = detect_layout(args.data)
        if layout != dataset:
            print(f"[sweep] note: Table {args.table} is a {dataset} table; {args.data} has "
                  f"the {layout} layout, so the runs are labelled {layout}")
        dataset = layout
    configs = enumerate_runs(args.table, args.profile, dataset, seeds=args.seeds,
                             models=parse_models(args.models), resampler=args.resampler,
                             precision=args.precision, cpu_threads=args.cpu_threads,
                             **{k: v for k, v in variant_overrides(args).items()
                                if k != "unseen_source"})
    # the unseen-device policy is the conditioned strategies' alone
    configs = [c.replace(unseen_source=args.unseen_source) if c.conditioned else c
               for c in configs]
    if args.dry_run:
        from ..features.cache import dataset_sizes
        from ..training.estimate import floor

        todo = print_plan(plan_frame(configs, args.results, args.data), "sweep", "runs")
        pending = list({c.run_name: c for c in configs if c.run_name in todo}.values())
        n_eval, frames = dataset_sizes(args.data)
        least = floor(pending, n_eval, n_frames=frames)
        print(f"[sweep] to train: {least.text()} (the floor)")
        if args.measure and pending:
            from ..training.throughput import estimate

            est = estimate(pending, n_eval, n_frames=frames, progress=not args.no_progress)
            jobs = args.jobs if isinstance(args.jobs, int) else None
            if jobs is None:
                from ..training.throughput import auto_jobs

                jobs, _ = auto_jobs(pending, n_frames=frames, measured=est)
            print(f"[sweep] estimate: {est.text()}; with --jobs {jobs}, about "
                  f"{est.hours / jobs:.2f} h if the runs shared the machine without slowing "
                  f"each other (an upper bound on the gain); the floor is "
                  f"{100 * least.hours / est.hours:.0f} % of the one-after-another estimate")
        elif pending:
            print("[sweep] add --measure to estimate the wall time from the throughput of "
                  "each model measured here")
        return 0
    note = cpu_time_note(configs)
    if note:
        print(f"caa sweep: note: {note}", file=sys.stderr)
    if args.executor == "ray" and args.jobs != 1:
        raise ConfigError("--jobs is the local executor's; Ray schedules its own tasks")
    from ..accelerator import usable_cpus

    if args.jobs == "auto":
        from ..training.throughput import auto_jobs

        plan = plan_frame(configs, args.results, args.data)
        todo = set(plan.loc[plan["status"] != "done", "run_name"])
        pending = [c for c in configs if c.run_name in todo]
        args.jobs, why = auto_jobs(pending, n_frames=_n_frames(args.data))
        print(f"[sweep] --jobs auto: {args.jobs} ({why})")
    if args.jobs * args.cpu_threads > usable_cpus():
        print(f"[sweep] note: --jobs {args.jobs} x --cpu-threads {args.cpu_threads} exceeds "
              f"the {usable_cpus()} CPUs here; runs will compete (results are unchanged)")
    if args.executor == "ray":
        from ..cluster import run_sweep_ray

        summary = run_sweep_ray(configs, args.results, args.data, address=args.ray_address,
                                gpus_per_run=args.gpus_per_run, progress=not args.no_progress)
    else:
        if args.ray_address or args.gpus_per_run is not None:
            raise ConfigError("--ray-address and --gpus-per-run need --executor ray")
        try:
            summary = run_sweep(configs, args.results, args.data, progress=not args.no_progress,
                                jobs=args.jobs)
        except SweepFailed as exc:
            _print_summary(args.table, exc.summary)
            raise
    _print_summary(args.table, summary)
    return 0


def _print_summary(table: str, summary: Any) -> None:
    counts = summary["status"].value_counts().to_dict()
    said = ", ".join(f"{counts[k]} {label}" for k, label in (
        ("ran", "trained"), ("skipped", "already done"), ("locked", "left to another process"),
        ("failed", "failed")) if counts.get(k))
    wall = summary.attrs.get("wall_time_s", 0.0)
    print(f"[sweep] Table {table}: {len(summary)} runs ({said}) in {wall:.0f} s")
    for row in summary.itertuples():
        if row.status in ("locked", "failed"):
            print(f"[sweep] {row.status}: {row.run_name}: {row.error}")
    cols = ["run_name", "status", *(c for c in summary.columns if c.startswith("acc_"))]
    print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
