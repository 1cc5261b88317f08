"""``caa explain``: do the heat maps explain? Attention and gradients against the
simulator's evidence masks (docs/explanations.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from ..explain.faithfulness import MAX_CLIPS, STEPS

    p = sub.add_parser(
        "explain", help="score attention maps and gradients against the evidence masks",
        description="For each finished run: its attention (heads with attention) and "
        "integrated gradients (every head) scored against the evidence masks `caa synth` "
        "writes: localisation, pointing game, deletion and insertion curves against a "
        "random order, per device. Writes OUT/faithfulness.csv and "
        "OUT/faithfulness_curves.{png,pdf,csv}, all or nothing.")
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    p.add_argument("--data", type=Path, required=True,
                   help="the synthetic dataset the runs trained on (holds evidence.npz)")
    p.add_argument("--out", type=Path, default=None,
                   help="default: RESULTS_DIR/explain, RESULTS_DIR the parent of runs/")
    p.add_argument("--max-clips", type=int, default=MAX_CLIPS,
                   help=f"clips scored per device and run (default {MAX_CLIPS})")
    p.add_argument("--steps", type=int, default=STEPS,
                   help=f"points of each deletion/insertion curve after 0 (default {STEPS})")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_explain)


def default_out(run_dir: Path) -> Path:
    """RESULTS_DIR/explain for a run under RESULTS_DIR/runs/, else beside the run."""
    run_dir = Path(run_dir).resolve()
    parent = run_dir.parent
    return (parent.parent if parent.name == "runs" else parent) / "explain"


def _explain(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..explain import write_explain

    if args.max_clips < 1 or args.steps < 1:
        raise ConfigError("--max-clips and --steps must be at least 1")
    out = args.out or default_out(args.run_dirs[0])
    table, paths = write_explain(args.run_dirs, args.data, out, max_clips=args.max_clips,
                                 steps=args.steps, seed=args.seed, progress=True)
    cols = ["run", "source", "method", "n_clips", "localisation", "pointing",
            "pointing_chance", "deletion_auc", "random_deletion_auc", "faithfulness"]
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {len(paths)} files to {out}")
    return 0
