"""``caa claims``: the ledger of the paper's claims.

Only its first column is built: ``caa claims --paper-only RESULTS_DIR`` checks every claim
of ``results/paper/claims.csv`` against the paper's own Tables I-III
(:mod:`caalib.claims`, rules in docs/claims.md) and writes
``RESULTS_DIR/claims/paper_evidence.csv`` and ``.md``. The controlled-simulation and
real-data columns are not built yet: without ``--paper-only`` the command says so and
exits with status 2, writing nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: Exit status of ``caa claims`` without ``--paper-only`` (the columns are not built).
NOT_BUILT = 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("claims", help="the paper's claims checked against its own tables",
                       description="Each claim of the paper (results/paper/claims.csv) "
                       "checked against the paper's own Tables I-III, with a verdict by the "
                       "rules of docs/claims.md: RESULTS_DIR/claims/paper_evidence.csv and "
                       ".md, both or neither; other files there are kept. Only --paper-only "
                       "is built: the simulation and real-data columns are not yet.")
    p.add_argument("results_dir", type=Path)
    p.add_argument("--paper-only", action="store_true",
                   help="only the paper's-own-numbers column (the only one built so far)")
    p.add_argument("--out", type=Path, default=None, help="default: RESULTS_DIR/claims")
    p.add_argument("--claims", type=Path, default=None,
                   help="claims file (default: results/paper/claims.csv of the study)")
    p.set_defaults(func=_claims)


def _claims(args: argparse.Namespace) -> int:
    if not args.paper_only:
        print("caa claims: only the paper's-own-numbers column is built; the controlled-"
              "simulation and real-data columns (seeds, effect sizes, minimum detectable "
              "effects) are not built yet. Run 'caa claims --paper-only RESULTS_DIR'.",
              file=sys.stderr)
        return NOT_BUILT
    from ..claims import write_paper_evidence

    out = args.out or args.results_dir / "claims"
    written, evidence = write_paper_evidence(out, args.claims)
    width = max(len(c) for c in evidence["claim"])
    print(f"{'claim':<{width}}  {'for/against/tied':>16}  verdict")
    for r in evidence.itertuples():
        fat = "-" if r.check == "none" else f"{r.n_for}/{r.n_against}/{r.n_tied}"
        print(f"{r.claim:<{width}}  {fat:>16}  {r.verdict}")
    print(f"wrote {len(written)} files to {out}")
    return 0
