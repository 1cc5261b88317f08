"""``caa features``: extract (or reuse) a dataset's log-mel feature file."""

from __future__ import annotations

import argparse
import sys
import warnings

from . import add_deprecated_alias


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "features",
        help="extract log-mel features of a dataset into one HDF5 file",
        description="Compute the study's log-mel features (study notes section 1) for every "
        "clip of DATA_DIR/meta.csv. An existing file made from the same inputs and recipe "
        "is reused unless --force.",
    )
    p.add_argument("data_dir", metavar="DATA_DIR", help="dataset directory (holds meta.csv)")
    p.add_argument("--out", default=None, metavar="FILE.h5",
                   help="output file (default: DATA_DIR/features/logmel.h5, or "
                   "logmel-soxr_hq.h5 with --resampler soxr_hq)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="clips per HDF5 write and per torch batch (default 64)")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel workers, each running whole clips (default: the usable "
                        "CPUs, at most 32)")
    p.add_argument("--accelerator", default="cpu",
                   help="cpu or cuda: the torch device the STFT + mel runs on with "
                        "--transform auto")
    add_deprecated_alias(p, "--device", "--accelerator", "accelerator", "features")
    p.add_argument("--transform", choices=("auto", "numpy", "torch"), default="auto",
                   help="STFT + mel per clip in the workers (numpy, float64) or batched in "
                        "torch on --accelerator (float64); auto: numpy on cpu, torch on cuda. "
                        "Both give the reference's numbers")
    p.add_argument("--parallel", choices=("auto", "processes", "threads"), default="auto",
                   help="worker kind; auto: threads (measured fastest on 2 cores); "
                        "processes are forked on Linux")
    p.add_argument("--resampler", choices=("kaiser_best", "soxr_hq"), default="kaiser_best",
                   help="48 -> 44.1 kHz resampling: resampy kaiser_best (as released, "
                        "default) or soxr HQ (today's librosa default)")
    p.add_argument("--force", action="store_true", help="rebuild even if the file is current")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import h5py

    from ..features import default_feature_path, extract_features

    out = (args.out if args.out is not None
           else default_feature_path(args.data_dir, args.resampler))
    with warnings.catch_warnings(record=True) as caught:  # SIGTERM: see cli.main
        warnings.simplefilter("always")
        path = extract_features(
            args.data_dir, out, batch_size=args.batch_size, workers=args.workers,
            accelerator=args.accelerator, progress=not args.quiet, force=args.force,
            resampler=args.resampler, transform=args.transform, parallel=args.parallel,
        )
    for w in caught:
        print(f"caa features: warning: {w.message}", file=sys.stderr)
    with h5py.File(path, "r") as h5:
        n, t, f = h5["feature"].shape
    print(f"[features] {path}: {n} clips x {t} frames x {f} mel bins")
    return 0
