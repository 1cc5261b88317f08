"""``caa unseen``: seen- against unseen-device accuracy of the strategies and the
augmentations on a 2020-layout dataset (docs/unseen-devices.md, "The comparison")."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..constants import ACCELERATORS

#: caalib.unseen_plan.UNSEEN_PROFILES, named here so building the parser imports no torch.
UNSEEN_PROFILE_NAMES = ("tiny", "demo", "paper")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "unseen",
        help="seen- vs unseen-device accuracy: strategies, unseen policies, augmentations",
        description="Train CAA-Net (atrous + attention) jointly, with teacher forcing and "
                    "with multi-task training under each unseen-device policy, and jointly "
                    "with each augmentation, over seeds, on a DCASE 2020-layout dataset "
                    "(runs go to RESULTS_DIR/runs; finished ones are skipped), then write "
                    "RESULTS_DIR/unseen/comparison.{csv,md,png,pdf} and "
                    "comparison_seeds.csv.")
    p.add_argument("results", metavar="RESULTS_DIR", type=Path, help="results directory")
    p.add_argument("--data", required=True, type=Path,
                   help="a dcase2020-layout dataset (caa synth DIR --layout dcase2020)")
    p.add_argument("--profile", required=True, choices=UNSEEN_PROFILE_NAMES,
                   help="tiny (tests), demo (CPU), paper (GPU)")
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds 0..K-1 (default: the profile's: tiny 1, demo 3, paper 3)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained at once (the numbers do not depend on it)")
    p.add_argument("--accelerator", choices=ACCELERATORS, default="auto",
                   help="torch device (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..unseen_plan import run_comparison

    if args.jobs < 1:
        raise ConfigError(f"--jobs: must be a positive integer, got {args.jobs}")
    start = time.perf_counter()
    out = run_comparison(args.results, args.data, args.profile, seeds=args.seeds,
                         jobs=args.jobs, progress=not args.no_progress,
                         accelerator=args.accelerator)
    sweep = out["sweep"]
    counts = sweep["status"].value_counts().to_dict()
    print(f"[unseen] {len(sweep)} runs ({counts.get('ran', 0)} trained, "
          f"{counts.get('skipped', 0)} already done) in {time.perf_counter() - start:.0f} s")
    print(out[".md"].read_text(encoding="utf-8"), end="")
    for suffix in (".csv", ".png"):
        print(f"[unseen] {out[suffix]}")
    return 0
