"""``caa study``: the whole notebook series, headless."""

from __future__ import annotations

import argparse
import time

from ..constants import DATASETS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="execute the notebook series headless with papermill",
        description="Execute notebooks/NN_*.ipynb in order; executed copies go to "
        "RESULTS/notebooks, figures to FIGURES.",
    )
    p.add_argument("--profile", default="demo", choices=("tiny", "demo", "paper"))
    p.add_argument("--data", default="data/demo", help="dataset directory (real or synthetic)")
    p.add_argument("--dataset", default=None, choices=DATASETS,
                   help="dcase2018 or dcase2019 (default: the layout of --data)")
    p.add_argument("--results", default="results", help="results directory")
    p.add_argument("--figures", default="figures", help="figures directory")
    p.add_argument("--jobs", type=int, default=None,
                   help="runs trained at once (default: the CPUs this process may use, at "
                        "most 4); the numbers do not depend on it")
    p.add_argument(
        "--only", nargs="*", default=None, metavar="NN",
        help="run only the notebooks whose names start with these prefixes",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..study import run_study

    start = time.perf_counter()
    result = run_study(
        profile=args.profile,
        data_dir=args.data,
        dataset=args.dataset,
        results_dir=args.results,
        figures_dir=args.figures,
        only=args.only,
        jobs=args.jobs,
    )
    total = time.perf_counter() - start
    print(f"[study] {len(result.executed)} notebooks in {total:.0f} s")
    print(f"[study] executed notebooks: {args.results}/notebooks/")
    print(f"[study] tables: {args.results}/tables/   figures: {args.figures}/")
    return 0
