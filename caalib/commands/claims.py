"""``caa claims``: the ledger of the paper's claims.

``caa claims --paper-only RESULTS_DIR`` checks every claim of ``results/paper/claims.csv``
against the paper's own Tables I-III (:mod:`caalib.claims`) and writes
``RESULTS_DIR/claims/paper_evidence.csv`` and ``.md``. ``caa claims --profile
tiny|demo|gpu RESULTS_DIR`` builds the whole ledger (:mod:`caalib.ledger`): it trains
the simulation's missing runs through the sweep machinery, compares them clip by clip
and writes ``RESULTS_DIR/claims/ledger.csv`` and ``.md`` (rules in docs/claims.md).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from .train import _jobs, print_plan

#: Exit status of ``caa claims`` with neither ``--paper-only`` nor ``--profile``.
NOT_BUILT = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("claims", help="the ledger of the paper's claims",
                       description="Each claim of the paper (results/paper/claims.csv) "
                       "checked against the paper's own Tables I-III (--paper-only: "
                       "RESULTS_DIR/claims/paper_evidence.csv and .md) or, with --profile, "
                       "the whole ledger: the paper's numbers, a controlled simulation "
                       "(several seeds, paired bootstrap CIs, McNemar mid-p, minimum "
                       "detectable effects; missing runs are trained first) and the "
                       "paper-profile runs on real data found in RESULTS_DIR/runs: "
                       "RESULTS_DIR/claims/ledger.csv and .md. Files are written both or "
                       "neither; other files there are kept. Rules: docs/claims.md.")
    p.add_argument("results_dir", type=Path)
    p.add_argument("--paper-only", action="store_true",
                   help="only the paper's-own-numbers column")
    p.add_argument("--profile", default=None, metavar="PROFILE",
                   help="size of the simulation (tiny: the tests' seconds, always "
                   "inconclusive; demo: 2 CPU cores, under an hour; gpu: one GPU, about "
                   "ten minutes)")
    p.add_argument("--data", type=Path, default=None,
                   help="the simulation's dataset (default RESULTS_DIR/simulation/PROFILE/"
                   "data, synthesised when missing)")
    p.add_argument("--jobs", type=_jobs, default=1,
                   help="simulation runs trained at once, or auto (on a GPU: from each "
                   "model's measured memory and share of the matmul rate; on a CPU: the "
                   "usable cores)")
    p.add_argument("--dry-run", action="store_true",
                   help="list the simulation's runs and their status and the time the "
                   "pending ones need at least (FLOPs at the measured matmul rate); train "
                   "and write nothing")
    p.add_argument("--reference", metavar="NAME", default=None,
                   help="also write the reference bundle RESULTS_DIR/reference/NAME: the "
                   "ledger, the simulation's runs (accuracies, prediction digests), per-arm "
                   "accuracies, the shift curve of the profile when drawn, and "
                   "provenance.json (commit, command, machine, versions, wall time)")
    p.add_argument("--check-reference", metavar="BUNDLE", type=Path, default=None,
                   help="compare the simulation runs of RESULTS_DIR (a rerun of the "
                   "bundle's command) with the reference bundle BUNDLE run by run; exit 1 "
                   "unless every run has the bundle's accuracies and predicted labels")
    p.add_argument("--partial", action="store_true",
                   help="with --check-reference: RESULTS_DIR reran some of the bundle's runs; "
                   "compare those (the others are 'not rerun', not 'missing')")
    p.add_argument("--out", type=Path, default=None, help="default: RESULTS_DIR/claims")
    p.add_argument("--claims", type=Path, default=None,
                   help="claims file (default: results/paper/claims.csv of the study)")
    p.set_defaults(func=_claims)


def _paper_only(args: argparse.Namespace, out: Path) -> int:
    from ..claims import write_paper_evidence

    written, evidence = write_paper_evidence(out, args.claims)
    width = max(len(c) for c in evidence["claim"])
    print(f"{'claim':<{width}}  {'for/against/tied':>16}  verdict")
    for r in evidence.itertuples():
        fat = "-" if r.check == "none" else f"{r.n_for}/{r.n_against}/{r.n_tied}"
        print(f"{r.claim:<{width}}  {fat:>16}  {r.verdict}")
    print(f"wrote {len(written)} files to {out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..reference import check_reference

    result = check_reference(args.check_reference, args.results_dir, partial=args.partial)
    print(result.text())
    return 0 if result.reproduced else 1


def _plan(args: argparse.Namespace) -> tuple[list, set[str], Any]:
    """The simulation's configs, the names of those still to train (the others were
    trained before, perhaps elsewhere: a bundle's ``trained_here`` says which), and the
    plan frame."""
    from ..ledger import planned_configs, simulation_dir
    from ..training.sweep import plan_frame

    configs = planned_configs(args.profile, args.claims)
    plan = plan_frame(configs, simulation_dir(args.results_dir, args.profile))
    return configs, set(plan.loc[plan["status"] != "done", "run_name"]), plan


def _dry_run(args: argparse.Namespace) -> int:
    """The simulation's plan: runs, status, and the FLOP floor of what is pending."""
    from ..ledger import simulation_dir, simulation_sizes
    from ..training.estimate import floor

    configs, _, plan = _plan(args)
    sim = simulation_dir(args.results_dir, args.profile)
    todo = print_plan(plan, "claims", f"simulation runs under {sim / 'runs'}")
    n_eval, frames = simulation_sizes(args.profile, args.data or sim / "data")
    pending = [c for c in configs if c.run_name in todo]
    print(f"[claims] to train: {floor(pending, n_eval, n_frames=frames).text()} (the floor; "
          f"{n_eval} evaluate clips of {frames} frames)")
    return 0


def _claims(args: argparse.Namespace) -> int:
    out = args.out or args.results_dir / "claims"
    if args.paper_only and args.profile:
        print("caa claims: --paper-only and --profile exclude each other", file=sys.stderr)
        return NOT_BUILT
    if args.check_reference is not None:
        if args.paper_only or args.profile or args.reference or args.dry_run:
            print("caa claims: --check-reference reads the profile from the bundle; it takes "
                  "no --profile, --paper-only, --reference or --dry-run", file=sys.stderr)
            return NOT_BUILT
        return _check(args)
    if args.partial:
        print("caa claims: --partial goes with --check-reference", file=sys.stderr)
        return NOT_BUILT
    if args.paper_only:
        if args.reference or args.dry_run:
            print("caa claims: --reference and --dry-run need --profile", file=sys.stderr)
            return NOT_BUILT
        return _paper_only(args, out)
    if not args.profile:
        print("caa claims: choose --profile tiny|demo|gpu (the whole ledger: trains the "
              "simulation's missing runs) or --paper-only (the paper's own numbers only)",
              file=sys.stderr)
        return NOT_BUILT
    from ..ledger import LEDGER_PROFILES, LedgerError, profile_scope, write_ledger

    if args.profile not in LEDGER_PROFILES:
        raise LedgerError(f"--profile: {args.profile!r} is not one of "
                          f"{', '.join(LEDGER_PROFILES)}")
    if args.dry_run:
        return _dry_run(args)
    if args.reference is not None:
        from ..reference import check_name

        check_name(args.reference)  # before hours of training, not after
    pending = code = None
    if args.jobs == "auto" or args.reference is not None:
        configs, pending, _ = _plan(args)
        if args.jobs == "auto":
            args.jobs = _auto_jobs(args, [c for c in configs if c.run_name in pending])
    if args.reference is not None:
        from ..reference import code_version

        code = code_version()  # the code this command runs
    start = time.perf_counter()
    written, ledger = write_ledger(args.results_dir, args.profile, out_dir=out,
                                   data_dir=args.data, jobs=args.jobs,
                                   claims_path=args.claims)
    wall = time.perf_counter() - start
    width = max(len(c) for c in ledger["claim"])
    print(f"{'claim':<{width}}  {'paper':<12}  {'estimate [95% CI]':<22}  {'MDE':>5}  "
          f"seeds  simulation")
    for r in ledger.itertuples():
        est = "-" if math.isnan(r.estimate) else \
            f"{r.estimate:+.1f} [{r.ci_low:+.1f}, {r.ci_high:+.1f}]"
        mde = "-" if math.isnan(r.mde) else f"{r.mde:.1f}"
        print(f"{r.claim:<{width}}  {r.paper_verdict[:12]:<12}  {est:<22}  {mde:>5}  "
              f"{r.n_seeds:>5}  {r.verdict}")
    print(profile_scope(args.profile))
    print(f"wrote {len(written)} files to {out}")
    if args.reference is not None:
        from ..reference import write_reference

        words = getattr(args, "argv", sys.argv[1:])  # set by caalib.cli.main
        bundle = write_reference(args.results_dir, args.profile, args.reference,
                                 ledger=ledger, command=shlex.join(["caa", *words]),
                                 wall_time_s=wall, data_dir=args.data, trained=pending,
                                 code=code)
        print(f"wrote the reference bundle {bundle} (check a rerun with caa claims "
              f"--check-reference {bundle} RERUN_RESULTS_DIR)")
    return 0


def _auto_jobs(args: argparse.Namespace, pending: list) -> int:
    """``--jobs auto`` for the runs still to train, priced at the simulation's clips."""
    from ..ledger import simulation_dir, simulation_sizes
    from ..training.throughput import auto_jobs

    sim = simulation_dir(args.results_dir, args.profile)
    _, frames = simulation_sizes(args.profile, args.data or sim / "data")
    jobs, why = auto_jobs(pending, n_frames=frames)
    print(f"[claims] --jobs auto: {jobs} ({why})")
    return jobs
