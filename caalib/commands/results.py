"""``caa tables``, ``significance``, ``figures``, ``compare`` and ``paper-check``.

Thin wrappers: everything they do is in caalib.results and caalib.stats so notebooks
call the same code (notebook 04 ``write_tables``, 05 ``write_significance``, 03 and 06
the selection and figure functions behind ``write_figures``). A run the readers skip
(misplaced, misnamed, a duplicate) comes as a :class:`caalib.rundir.RunStoreWarning`;
each is printed as one line, ``caa <command>: warning: <message>``, on standard error.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from ..constants import DATASETS, DEVICES
from ..rundir import RunStoreWarning
from . import add_deprecated_alias


@contextlib.contextmanager
def _run_store_warnings(command: str) -> Iterator[None]:
    """Print every RunStoreWarning raised meanwhile as one line (even on failure)."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RunStoreWarning)
            yield
    finally:
        for w in caught:
            if issubclass(w.category, RunStoreWarning):
                print(f"caa {command}: warning: {' '.join(str(w.message).split())}",
                      file=sys.stderr)
            else:  # anything else goes where it would have gone
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _with_warnings(command: str, func: Callable[[argparse.Namespace], int]
                   ) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with _run_store_warnings(command):
            return func(args)
    return run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tables", help="Tables I-III (ours beside the paper's) from a results dir",
                       description="Tables I-III and per-run tables from the finished runs "
                       "directly under RESULTS_DIR/runs. The output directory is replaced "
                       "whole (table*.csv/md, runs/, per-profile folders); other files in "
                       "it are kept. On failure the previous output stays as it was.")
    p.add_argument("results_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="default: RESULTS_DIR/tables")
    p.add_argument("--layers", choices=("paper", "ours"), default="paper",
                   help="conditioned layer for Tables II/III: the paper's Table I best "
                        "layers (default) or our own")
    p.add_argument("--profile", default=None, help="only runs of this training profile")
    p.add_argument("--no-per-run", action="store_true", help="skip per-run tables")
    p.set_defaults(func=_with_warnings("tables", _tables))

    p = sub.add_parser("significance",
                       help="z-tests, McNemar tests and bootstrap CIs (notebook 05's tables)",
                       description="The paper's two z-tests under each plausible n "
                       "(significance_paper.csv), our strategies compared per model, the "
                       "paper's way and paired (significance_ours.csv), and each run's "
                       "bootstrap confidence interval (bootstrap_ci.csv), from the finished "
                       "runs directly under RESULTS_DIR/runs. The three files are replaced "
                       "all at once; other files in the output directory (Tables I-III) are "
                       "kept. On failure the previous output stays as it was.")
    p.add_argument("results_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="default: RESULTS_DIR/tables")
    p.add_argument("--profile", default=None,
                   help="only runs of this training profile (required with several)")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="default: dcase2018 when there are runs of it")
    p.add_argument("--resamples", type=int, default=None,
                   help="bootstrap resamples per run (default: 200 on tiny, else 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    p.set_defaults(func=_with_warnings("significance", _significance))

    p = sub.add_parser("figures", help="Figs. 5-7 and training curves from a results dir",
                       description="Figs. 5-7 and training curves from the finished runs "
                       "directly under RESULTS_DIR/runs. The figures (fig5-*, fig6, fig7, "
                       "training_curves) are replaced all at once; other files in the output "
                       "directory are kept. On failure the previous output stays as it was.")
    p.add_argument("results_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="default: RESULTS_DIR/figures")
    p.add_argument("--profile", default=None, help="only runs of this training profile")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="dataset of Figs. 6/7 and the training curves (default: dcase2018 "
                        "when there are runs of it); Fig. 5 is drawn for every dataset")
    p.add_argument("--run", type=Path, default=None,
                   help="run for Figs. 6 and 7 (default: the paper's CAA-Net, multi-task "
                        "atrous + attention at layer 4, with a stated fallback)")
    p.set_defaults(func=_with_warnings("figures", _figures))

    p = sub.add_parser("compare", help="McNemar's exact test on two runs' predictions")
    p.add_argument("run1", type=Path)
    p.add_argument("run2", type=Path)
    p.add_argument("--source", choices=DEVICES, default=None,
                   help="only the clips of this recording device (a, b or c)")
    add_deprecated_alias(p, "--device", "--source", "source", "compare", choices=DEVICES)
    p.set_defaults(func=_with_warnings("compare", _compare))

    p = sub.add_parser("paper-check", help="consistency of the paper's tables and its z-tests")
    p.set_defaults(func=_paper_check)


def _tables(args: argparse.Namespace) -> int:
    from ..results.tables import write_tables

    out = args.out or args.results_dir / "tables"
    written = write_tables(args.results_dir, out, layers=args.layers, profile=args.profile,
                           per_run=not args.no_per_run)
    print(f"wrote {len(written)} files to {out}")
    return 0


def _significance(args: argparse.Namespace) -> int:
    from ..stats import write_significance

    out = args.out or args.results_dir / "tables"
    written, tables = write_significance(args.results_dir, out, profile=args.profile,
                                         dataset=args.dataset, n_resamples=args.resamples,
                                         seed=args.seed)
    print(f"wrote {len(written)} files to {out} ({len(tables['ours'])} test rows, "
          f"{len(tables['bootstrap'])} runs bootstrapped)")
    return 0


def _figures(args: argparse.Namespace) -> int:
    from ..results.figures import write_figures

    out = args.out or args.results_dir / "figures"
    made, chosen = write_figures(args.results_dir, out, profile=args.profile, run=args.run,
                                 dataset=args.dataset)
    print(f"wrote {len(made)} files to {out}")
    print(f"Fig. 6 from {chosen.fig6.name}: {chosen.fig6.reason}")
    print(f"Fig. 7 from {chosen.fig7.name}: {chosen.fig7.reason}" if chosen.fig7 else
          "Fig. 7 not drawn: no run with attention maps")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from ..stats import paired_runs_test

    r = paired_runs_test(args.run1, args.run2, source=args.source)
    print(f"clips {r.n}: only run1 right {r.b}, only run2 right {r.c}, "
          f"exact McNemar p = {r.p:.4g}")
    return 0


def _paper_check(args: argparse.Namespace) -> int:
    from ..results.paper import KNOWN_ERRATA, consistency_problems
    from ..stats import paper_claims

    problems = consistency_problems()
    for key, note in KNOWN_ERRATA.items():
        print(f"known erratum {' '.join(key)}: {note}")
    for p in problems:
        print(f"NEW discrepancy: {p}")
    df = paper_claims()
    for r in df.itertuples():
        print(f"{r.acc1} vs {r.acc2} ({r.claim}), n={r.n} [{r.n_choice}]: z={r.z:.3f} "
              f"p={r.p:.3g} -> p < {r.stated_bound:g} {'holds' if r.holds else 'FAILS'}")
    return 1 if problems else 0
