"""Which runs a figure or a test is drawn from: one rule for the notebooks and ``caa``.

Every function takes :func:`caalib.results.runs.load_runs`' frame (already narrowed to
a profile where the caller wants one) and picks rows from it; none reads more than
whether a run holds its optional files. The rules:

* :func:`pick_runs`: the runs of one model and strategy as Tables II/III count them:
  the paper's best conditioned layer (Table I) for the conditional strategies when
  such a run exists (else the lowest layer present), the lowest seed, one run per
  device for single-device training. The significance tests
  (:func:`caalib.stats.strategy_tests`) compare these.
* :func:`headline_run`: the run behind Figs. 6 and 7, the paper's CAA-Net (multi-task
  atrous CNN + attention) with a stated fallback when it is missing;
  :func:`figure_runs` adds the run for Fig. 7 (one with attention maps). ``caa figures``
  without ``--run`` and notebook 06 both call it.
* :func:`curve_runs`: the runs whose training curves are drawn (notebook 03 and
  ``caa figures``): the CAA-Net topology (atrous + attention) under every strategy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..constants import PAPER_BEST_LAYERS
from ..errors import CaaError
from ..rundir import ATTENTION_FILE, HISTORY_FILE, check_run
from ..spec import ATTENTION_POOLINGS, CONDITIONED_STRATEGIES
from .paper import STRATEGY_TABLES, paper_accuracies
from .runs import read_run

#: The paper's CAA-Net: (topology, pooling, strategy).
CAA_NET: tuple[str, str, str] = ("atrous", "att", "multi_task")
#: The dataset of the paper's Figs. 5-7, chosen when the runs hold it.
DEFAULT_DATASET = "dcase2018"


def choose_dataset(runs: pd.DataFrame, dataset: str | None = None) -> str:
    """``dataset`` when given, else DCASE 2018 when the runs hold it (or hold nothing),
    else the first dataset of the runs by name."""
    if dataset is not None:
        return dataset
    present = sorted(set(runs["dataset"].dropna()))
    return DEFAULT_DATASET if not present or DEFAULT_DATASET in present else present[0]


def pick_runs(runs: pd.DataFrame, topology: str, pooling: str, strategy: str,
              dataset: str = DEFAULT_DATASET) -> pd.DataFrame:
    """The runs of one model and strategy, one per device for ``single``, lowest seed.

    Conditioned strategies use the paper's best layer (Table I) when such a run exists,
    as Table II does; otherwise the lowest layer present.
    """
    sel = runs[(runs["dataset"] == dataset) & (runs["topology"] == topology)
               & (runs["pooling"] == pooling) & (runs["strategy"] == strategy)]
    if sel.empty:
        return sel
    if strategy in CONDITIONED_STRATEGIES:
        layer = PAPER_BEST_LAYERS.get((topology, pooling))
        layers = sorted(int(v) for v in sel["cond_layer"].dropna().unique())
        chosen = layer if layer in layers else (layers[0] if layers else None)
        sel = sel[sel["cond_layer"] == chosen]
    sel = sel.sort_values("seed", kind="stable")
    if strategy == "single":
        return sel.drop_duplicates("train_source").sort_values("train_source")
    return sel.head(1)


@dataclass(frozen=True)
class RunChoice:
    """A run picked for a figure (its :func:`~caalib.results.runs.load_runs` row) and why."""

    row: pd.Series
    reason: str

    @property
    def path(self) -> Path:
        return Path(self.row["path"])

    @property
    def name(self) -> str:
        return str(self.row["name"])


@dataclass(frozen=True)
class FigureRuns:
    """The runs behind Fig. 6 (confusion matrices) and Fig. 7 (attention maps; None when
    no run of the dataset has attention maps)."""

    fig6: RunChoice
    fig7: RunChoice | None


def _by_avg(runs: pd.DataFrame) -> pd.DataFrame:
    """Best Avg first; ties keep the order by name (load_runs sorts by name)."""
    return runs.sort_values("acc_avg", ascending=False, kind="stable", na_position="last")


def headline_run(runs: pd.DataFrame, dataset: str = DEFAULT_DATASET) -> RunChoice:
    """The run behind Figs. 6 and 7: multi-task atrous + attention (the paper's CAA-Net).

    In order: that model at the paper's best layer (Table I, layer 4), lowest seed; at
    another layer when there is no run at layer 4; the best multi-task run with an
    attention head by Avg; the best run by Avg. The reason says which rule applied.
    Raises a CaaError when there is no run of ``dataset`` at all.
    """
    sel = runs[runs["dataset"] == dataset]
    if sel.empty:
        raise CaaError(f"no finished run on {dataset}: train the plan's runs first "
                       "(notebook 03, caa sweep)")
    topology, pooling, strategy = CAA_NET
    best = PAPER_BEST_LAYERS[(topology, pooling)]
    caa = pick_runs(sel, topology, pooling, strategy, dataset)
    if not caa.empty:
        row = caa.iloc[0]
        layer = row["cond_layer"]
        why = (f"the paper's CAA-Net (multi-task atrous CNN + attention at its best layer "
               f"L{best}), seed {row['seed']}" if layer == best else
               f"multi-task atrous CNN + attention at layer L{layer}, seed {row['seed']}: "
               f"no run at the paper's layer L{best}")
        return RunChoice(row, why)
    att = _by_avg(sel[(sel["strategy"] == strategy)
                      & sel["pooling"].isin(list(ATTENTION_POOLINGS))])
    if not att.empty:
        return RunChoice(att.iloc[0], f"no multi-task atrous + attention run on {dataset}; "
                                      "the best multi-task run with an attention head by Avg")
    return RunChoice(_by_avg(sel).iloc[0], f"no multi-task run with an attention head on "
                                           f"{dataset}; the best run by Avg")


def figure_runs(runs: pd.DataFrame, dataset: str = DEFAULT_DATASET,
                run: str | Path | None = None) -> FigureRuns:
    """The runs behind Figs. 6 and 7.

    Fig. 6: ``run`` when given (a finished run directory, checked), else
    :func:`headline_run`. Fig. 7: the same run when it holds attention maps, else the
    best run of ``dataset`` by Avg that does, else None (no Fig. 7).
    """
    if run is not None:
        check_run(run)
        first = RunChoice(pd.Series(read_run(run)), "the run asked for")
    else:
        first = headline_run(runs, dataset)
    if (first.path / ATTENTION_FILE).is_file():
        return FigureRuns(first, RunChoice(first.row, "the run of Fig. 6"))
    sel = _by_avg(runs[runs["dataset"] == dataset])
    with_maps = [i for i, p in zip(sel.index, sel["path"], strict=True)
                 if (Path(p) / ATTENTION_FILE).is_file()]
    if not with_maps:
        return FigureRuns(first, None)
    return FigureRuns(first, RunChoice(sel.loc[with_maps[0]], f"{first.name} has no attention "
                                       "maps; the best run by Avg that has them"))


def curve_runs(runs: pd.DataFrame, dataset: str = DEFAULT_DATASET) -> list[Path]:
    """The run directories whose training curves are drawn, in the order of ``runs``.

    The runs of ``dataset`` with a history of the CAA-Net topology (atrous CNN +
    attention, every strategy), or every run of ``dataset`` with a history when there
    is none of that topology.
    """
    sel = runs[runs["dataset"] == dataset]
    sel = sel[[(Path(p) / HISTORY_FILE).is_file() for p in sel["path"]]]
    topology, pooling, _ = CAA_NET
    caa = sel[(sel["topology"] == topology) & (sel["pooling"] == pooling)]
    return [Path(p) for p in (caa if not caa.empty else sel)["path"]]


def _percent(acc: dict[str, float]) -> str:
    return ", ".join(f"{k.upper() if k != 'avg' else 'Avg'} {v:.1f} %" for k, v in acc.items())


def describe_run(choice: RunChoice | None, figure: str = "Fig. 6",
                 paper_dir: str | Path | None = None) -> str:
    """One Markdown line: the run behind ``figure``, its accuracies beside the paper's
    (Table II/III, same model and strategy, from results/paper/) and why it was chosen."""
    if choice is None:
        return f"*{figure}: no run with attention maps, not drawn.*"
    r = choice.row
    ours = {d: 100.0 * float(r[f"acc_{d}"]) for d in ("a", "b", "c", "avg")
            if pd.notna(r.get(f"acc_{d}"))}
    line = f"{figure} from run `{choice.name}`: {_percent(ours)}"
    paper = (paper_accuracies(r["dataset"], r["topology"], r["pooling"], r["strategy"],
                              paper_dir) if r["dataset"] in STRATEGY_TABLES else {})
    if paper:
        table = "Table II" if STRATEGY_TABLES[r["dataset"]] == "table2" else "Table III"
        layer = PAPER_BEST_LAYERS.get((r["topology"], r["pooling"]))
        at = f" at L{layer}" if r["strategy"] in CONDITIONED_STRATEGIES else ""
        line += f" (paper, {table}{at}: {_percent(paper)})"
    return f"{line}; {choice.reason}."


__all__ = ["CAA_NET", "DEFAULT_DATASET", "FigureRuns", "RunChoice", "choose_dataset",
           "curve_runs", "describe_run", "figure_runs", "headline_run", "pick_runs"]
