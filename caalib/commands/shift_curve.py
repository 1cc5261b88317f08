"""``caa shift-curve``: B/C accuracy of each training strategy along the device shift."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

#: caalib.shift_curve.CURVE_PROFILES, named here so building the parser imports no torch.
CURVE_PROFILE_NAMES = ("tiny", "demo", "gpu")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "shift-curve",
        help="train every strategy on simulated data at several device-shift strengths",
        description="Synthesise one simulation dataset per device-shift strength (0: the "
                    "phones differ from device A only in sample rate and channels; 1: as "
                    "designed; above 1: further), train single-device, joint, teacher-"
                    "forcing and multi-task runs over seeds at each (finished runs are "
                    "skipped), and write OUT/shift_curve_seeds.csv, "
                    "OUT/shift_curve_summary.csv and OUT/shift_curve.{png,pdf,csv}.")
    p.add_argument("--profile", choices=CURVE_PROFILE_NAMES, default="demo",
                   help="size: tiny (tests), demo (2 CPU cores), gpu (default: demo)")
    p.add_argument("--out", type=Path, default=None,
                   help="curve directory (default: results/shift-curve/<profile>)")
    p.add_argument("--data-root", type=Path, default=Path("data/shift-curve"),
                   help="where the datasets go (default: data/shift-curve)")
    p.add_argument("--shifts", type=float, nargs="+", default=None, metavar="S",
                   help="shift strengths (default: the profile's)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per run (default: the "
                   "profile's)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained at once (the numbers do not depend on it)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..shift_curve import curve_profile, run_shift_curve

    prof = curve_profile(args.profile, args.shifts, args.seeds)
    out = args.out or Path("results") / "shift-curve" / args.profile
    start = time.perf_counter()
    paths = run_shift_curve(args.profile, out, args.data_root, shifts=prof.shifts,
                            seeds=prof.seeds, jobs=args.jobs, progress=not args.quiet)
    print(f"[shift-curve] {len(prof.shifts)} shift levels x {prof.seeds} seed(s) "
          f"({prof.synth}, training profile {prof.train}) in "
          f"{time.perf_counter() - start:.0f} s")
    for key in ("seeds", "summary", "figure_png"):
        print(f"[shift-curve] {paths[key]}")
    return 0
