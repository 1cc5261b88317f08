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
import sys
from pathlib import Path

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
    p.add_argument("--jobs", type=int, default=1, help="simulation runs trained at once")
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


def _claims(args: argparse.Namespace) -> int:
    out = args.out or args.results_dir / "claims"
    if args.paper_only and args.profile:
        print("caa claims: --paper-only and --profile exclude each other", file=sys.stderr)
        return NOT_BUILT
    if args.paper_only:
        return _paper_only(args, out)
    if not args.profile:
        print("caa claims: choose --profile tiny|demo|gpu (the whole ledger: trains the "
              "simulation's missing runs) or --paper-only (the paper's own numbers only)",
              file=sys.stderr)
        return NOT_BUILT
    if args.jobs < 1:
        print(f"caa claims: --jobs must be at least 1, got {args.jobs}", file=sys.stderr)
        return NOT_BUILT
    from ..ledger import profile_scope, write_ledger

    written, ledger = write_ledger(args.results_dir, args.profile, out_dir=out,
                                   data_dir=args.data, jobs=args.jobs,
                                   claims_path=args.claims)
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
    return 0
