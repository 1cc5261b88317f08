"""``caa synth`` and ``caa check``: make a synthetic dataset, vet any dataset."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from ..constants import DATASETS

#: The synthetic-data profiles (caalib.synth.SYNTH_PROFILES), named here so that building
#: the parser does not import the audio stack (the CLI must start where none is installed).
SYNTH_PROFILE_NAMES = ("tiny", "demo", "full", "sim-tiny", "sim-demo", "sim-gpu")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth", help="synthesise a multi-device acoustic scene dataset in the DCASE layout",
        description="Write a synthetic DCASE Task 1B-style development set (devices A, B, C; "
                    "meta.csv; evaluation_setup/) to OUT_DIR.")
    p.add_argument("out_dir", metavar="OUT_DIR", type=Path)
    p.add_argument("--profile", metavar="{" + ",".join(SYNTH_PROFILE_NAMES) + "}", default="demo",
                   help="dataset size (default: demo)")
    p.add_argument("--layout", choices=list(DATASETS), default="dcase2018",
                   help="on-disk layout of the fold files (default: dcase2018)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--skip-existing", action="store_true",
                   help="do nothing when OUT_DIR already holds this exact dataset")
    p.add_argument("--workers", type=int, default=None,
                   help="processes to render with (default: the profile's)")
    p.add_argument("--shift", type=float, default=None, metavar="X",
                   help="device-shift strength: 0 = phones differ from device A only in "
                        "sample rate and channels, 1 = as designed, above 1 = further "
                        "(default: the profile's; docs/simulation.md)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_synth)

    c = subparsers.add_parser(
        "check", help="check a dataset's metadata, splits and audio files",
        description="Exit 0 with a one-line summary when DATA_DIR is sound; otherwise print "
                    "one line per problem (stdout) and exit 1. Implausible but usable audio "
                    "(low sample rate, mis-scaled peak, silence, a container its .wav name "
                    "does not say) is printed as 'caa check: warning: ...' on stderr.")
    c.add_argument("data_dir", metavar="DATA_DIR", type=Path)
    c.add_argument("--quick", action="store_true",
                   help="skip decoding the audio (no NaN, peak or silence test); headers are "
                        "still read")
    c.add_argument("--progress", action="store_true", help="show a progress bar")
    c.set_defaults(func=_check)


def _synth(args: argparse.Namespace) -> int:
    from ..datasets import read_dataset, summarize
    from ..errors import ConfigError
    from ..synth import SYNTH_PROFILES, ensure_synthesized, synthesize
    from ..synth.evidence import EVIDENCE_VERSION

    if args.profile not in SYNTH_PROFILES:
        raise ConfigError(
            f"--profile: unknown profile {args.profile!r}; allowed: {', '.join(SYNTH_PROFILES)}"
        )
    if args.seed < 0:
        raise ConfigError(f"--seed must be non-negative, got {args.seed}")
    shift = SYNTH_PROFILES[args.profile].shift if args.shift is None else args.shift
    if not math.isfinite(shift) or shift < 0:
        raise ConfigError(f"--shift must be a finite number >= 0, got {args.shift}")
    settings = (f"profile {args.profile}, layout {args.layout}, seed {args.seed}, "
                f"shift {shift:g}")
    start = time.perf_counter()
    if args.skip_existing:
        out, action = ensure_synthesized(args.out_dir, args.profile, args.layout, args.seed,
                                         shift, progress=not args.quiet, workers=args.workers)
        if action == "reused":
            print(f"{args.out_dir}: already holds the synthetic dataset ({settings}); "
                  "nothing to do")
            return 0
        if action == "refreshed":
            print(f"{out}: rewrote its evidence masks (evidence.npz, version "
                  f"{EVIDENCE_VERSION}: they were missing or of an older definition; the "
                  f"audio is unchanged) in {time.perf_counter() - start:.1f} s")
            return 0
    else:
        out = synthesize(args.out_dir, profile=args.profile, layout=args.layout,
                         seed=args.seed, progress=not args.quiet, workers=args.workers,
                         shift=shift)
    df = read_dataset(out)
    print(f"{out}: {summarize(df)} ({settings}) in {time.perf_counter() - start:.1f} s")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..datasets import check_dataset_report, read_dataset, summarize

    report = check_dataset_report(args.data_dir, deep=not args.quick, progress=args.progress)
    for line in report.warnings:
        print(f"caa check: warning: {line}", file=sys.stderr)
    n_warn = len(report.warnings)
    warned = f"{n_warn} warning{'s' * (n_warn != 1)}"
    if report.problems:
        for line in report.problems:
            print(line)
        n = len(report.problems)
        print(f"caa check: {n} problem{'s' * (n > 1)}, {warned} in {args.data_dir}",
              file=sys.stderr)
        return 1
    tail = f" ({warned} on stderr)" if n_warn else ""
    print(f"OK {args.data_dir}: {summarize(read_dataset(args.data_dir))}{tail}")
    return 0
