"""``caa tables``, ``caa figures``, ``caa compare`` and ``caa paper-check``.

Thin wrappers: everything they do is in caalib.results and caalib.stats so notebooks
call the same code.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import CaaError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tables", help="Tables I-III (ours beside the paper's) from a results dir")
    p.add_argument("results_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="default: RESULTS_DIR/tables")
    p.add_argument("--layers", choices=("paper", "ours"), default="paper",
                   help="conditioned layer for Tables II/III: the paper's Table I best "
                        "layers (default) or our own")
    p.add_argument("--profile", default=None, help="only runs of this training profile")
    p.add_argument("--no-per-run", action="store_true", help="skip per-run tables")
    p.set_defaults(func=_tables)

    p = sub.add_parser("figures", help="Figs. 5-7 and training curves from a results dir")
    p.add_argument("results_dir", type=Path)
    p.add_argument("--out", type=Path, default=None, help="default: RESULTS_DIR/figures")
    p.add_argument("--profile", default=None, help="only runs of this training profile")
    p.add_argument("--run", type=Path, default=None,
                   help="run for Figs. 6 and 7 (default: best Avg among finished runs)")
    p.set_defaults(func=_figures)

    p = sub.add_parser("compare", help="McNemar's exact test on two runs' predictions")
    p.add_argument("run1", type=Path)
    p.add_argument("run2", type=Path)
    p.add_argument("--device", choices=("a", "b", "c"), default=None)
    p.set_defaults(func=_compare)

    p = sub.add_parser("paper-check", help="consistency of the paper's tables and its z-tests")
    p.set_defaults(func=_paper_check)


def _tables(args: argparse.Namespace) -> int:
    from ..results.tables import write_tables

    out = args.out or args.results_dir / "tables"
    written = write_tables(args.results_dir, out, layers=args.layers, profile=args.profile,
                           per_run=not args.no_per_run)
    print(f"wrote {len(written)} files to {out}")
    return 0


def _figures(args: argparse.Namespace) -> int:
    from ..results.figures import fig5, fig6, fig7, training_curves
    from ..results.runs import load_runs

    out = args.out or args.results_dir / "figures"
    runs = load_runs(args.results_dir)
    if args.profile:
        runs = runs[runs["profile"] == args.profile]
    if runs.empty:
        raise CaaError(f"{args.results_dir}: no finished runs")
    made = []
    for dataset in sorted(set(runs["dataset"])):
        sub = runs[(runs["dataset"] == dataset) & (runs["strategy"] == "teacher_forcing")]
        if not sub.empty:
            made += fig5(runs, out, dataset=dataset, name=f"fig5-{dataset}").values()
    best = Path(args.run) if args.run else Path(runs.loc[runs["acc_avg"].idxmax(), "path"])
    made += fig6(best, out).values()
    with_att = [best] if (best / "attention.npz").is_file() else [
        Path(p) for p in runs.sort_values("acc_avg", ascending=False)["path"]
        if (Path(p) / "attention.npz").is_file()]
    if with_att:
        made += fig7(with_att[0], out).values()
    hist = [Path(p) for p in runs["path"] if (Path(p) / "history.csv").is_file()]
    if hist:
        made += training_curves(hist, out).values()
    print(f"wrote {len(made)} files to {out} (Figs. 6/7 from {best.name})")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from ..stats import paired_runs_test

    r = paired_runs_test(args.run1, args.run2, device=args.device)
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
