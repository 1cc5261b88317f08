"""The paper's Tables I-III as data, and the checks the paper's own text implies.

The tables were typeset by hand (study notes section 5), so they are data to check,
not truth. The CSVs under ``results/paper/`` are the source; they were transcribed from
the paper and diffed programmatically against its table rows. Accuracies are kept in
percent exactly as printed (one decimal).

Known inconsistencies are listed in :data:`KNOWN_ERRATA` (and explained in
docs/paper-errata.md) so that the checks can name them explicitly and still fail on any
new discrepancy.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..constants import PAPER_BEST_LAYERS as _PAPER_BEST_LAYERS
from ..errors import CaaError
from ..spec import COND_LAYERS, TOPOLOGIES
from ..spec import POOLINGS as POOLINGS  # re-exported: the tables' vocabulary is caalib.spec's
from ..spec import STRATEGIES as STRATEGIES

#: Where the transcribed tables live (repository root / results / paper).
PAPER_DIR = Path(__file__).resolve().parents[2] / "results" / "paper"

NETWORKS: tuple[str, ...] = TOPOLOGIES  # the tables' word for a topology
TABLE_DEVICES: tuple[str, ...] = ("a", "b", "c", "avg")
LAYERS: tuple[int, ...] = COND_LAYERS

#: How the paper names the topologies (table row labels).
NETWORK_TITLES: dict[str, str] = {
    "pool": "CNN w/ pool",
    "nopool": "CNN w/o pool",
    "atrous": "Atrous CNN",
}

#: Table I's best conditioned layer per model, as the study notes (section 5) list them.
#: Table II's teacher-forcing and multi-task rows, and Table III, use these layers.
#: nopool+roi is a tie in Table I (52.9 at layers 1 and 2); the notes pick layer 1.
PAPER_BEST_LAYERS = _PAPER_BEST_LAYERS

#: Worst-case rounding gap between a printed Avg and the mean of the printed A, B, C.
#: Each of A, B, C is rounded to 0.1 (error <= 0.05 each, so <= 0.05 on their mean) and
#: Avg itself is rounded from the unrounded mean (error <= 0.05): at most 0.1 in total.
#: Anything beyond that cannot be rounding.
AVG_TOLERANCE = 0.1 + 1e-9

#: Rows whose printed Avg is not the mean of the printed A, B, C (beyond rounding):
#: (table, dataset, network, pooling, strategy) -> note. See docs/paper-errata.md.
KNOWN_ERRATA: dict[tuple[str, str, str, str, str], str] = {
    ("table2", "dcase2018", "pool", "avg", "multi_task"): (
        "Avg printed 59.7 but mean(A 65.4, B 60.0, C 58.3) = 61.23"
    ),
}

_TABLE_COLUMNS = {
    "table1": ["network", "pooling", "layer", "accuracy"],
    "table2": ["dataset", "network", "pooling", "strategy", "device", "accuracy"],
    "table3": ["dataset", "network", "pooling", "strategy", "device", "accuracy"],
}


def load_paper_table(name: str, paper_dir: str | Path | None = None) -> pd.DataFrame:
    """Load ``table1``/``table2``/``table3`` in long form and validate its vocabulary.

    Validation is strict because a silently mistyped label would make a comparison row
    vanish from the joined tables instead of failing.
    """
    if name not in _TABLE_COLUMNS:
        raise CaaError(f"unknown paper table {name!r}; expected one of {sorted(_TABLE_COLUMNS)}")
    path = Path(paper_dir or PAPER_DIR) / f"{name}.csv"
    if not path.is_file():
        raise CaaError(f"{path}: paper table not found")
    df = pd.read_csv(path)
    if list(df.columns) != _TABLE_COLUMNS[name]:
        raise CaaError(f"{path}: columns {list(df.columns)}, expected {_TABLE_COLUMNS[name]}")
    allowed = {
        "network": NETWORKS,
        "pooling": POOLINGS,
        "strategy": STRATEGIES,
        "device": TABLE_DEVICES,
        "layer": LAYERS,
        "dataset": ("dcase2018", "dcase2019"),
    }
    for col in df.columns:
        if col == "accuracy":
            bad = ~df[col].between(0, 100)
        else:
            bad = ~df[col].isin(allowed[col])
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise CaaError(f"{path}, line {i + 2}: bad {col} value {df[col].iloc[i]!r}")
    key = [c for c in df.columns if c != "accuracy"]
    dup = df.duplicated(key)
    if dup.any():
        i = int(dup.to_numpy().nonzero()[0][0])
        raise CaaError(f"{path}, line {i + 2}: duplicate row {df.iloc[i][key].tolist()}")
    return df


#: The paper's table of each dataset's strategy comparison.
STRATEGY_TABLES: dict[str, str] = {"dcase2018": "table2", "dcase2019": "table3"}


def paper_accuracies(dataset: str, network: str, pooling: str, strategy: str,
                     paper_dir: str | Path | None = None) -> dict[str, float]:
    """The paper's accuracies (percent, as printed) of one model and strategy.

    From Table II (DCASE 2018) or Table III (DCASE 2019), keyed ``a``, ``b``, ``c``,
    ``avg``; empty when the paper does not report that model and strategy. The
    conditional strategies' numbers are at the paper's best layer
    (:data:`PAPER_BEST_LAYERS`).
    """
    if dataset not in STRATEGY_TABLES:
        raise CaaError(f"unknown dataset {dataset!r}; expected one of {sorted(STRATEGY_TABLES)}")
    t = load_paper_table(STRATEGY_TABLES[dataset], paper_dir)
    row = t[(t["dataset"] == dataset) & (t["network"] == network) & (t["pooling"] == pooling)
            & (t["strategy"] == strategy)]
    acc = dict(zip(row["device"], row["accuracy"], strict=True))
    return {d: float(acc[d]) for d in TABLE_DEVICES if d in acc}


def wide_devices(table: pd.DataFrame) -> pd.DataFrame:
    """Table II/III with one row per model x strategy and columns a, b, c, avg."""
    keys = ["dataset", "network", "pooling", "strategy"]
    wide = table.pivot(index=keys, columns="device", values="accuracy")
    return wide.reindex(columns=list(TABLE_DEVICES)).reset_index()


def average_discrepancies(table: pd.DataFrame, name: str,
                          tolerance: float = AVG_TOLERANCE) -> pd.DataFrame:
    """Rows whose printed Avg differs from mean(A, B, C) by more than ``tolerance``.

    Columns: table, dataset, network, pooling, strategy, a, b, c, avg, mean_abc, gap,
    known (True when the row is listed in :data:`KNOWN_ERRATA`).
    """
    wide = wide_devices(table)
    wide["mean_abc"] = wide[["a", "b", "c"]].mean(axis=1)
    wide["gap"] = wide["avg"] - wide["mean_abc"]
    bad = wide[wide["gap"].abs() > tolerance].copy()
    bad.insert(0, "table", name)
    bad["known"] = [
        (name, r.dataset, r.network, r.pooling, r.strategy) in KNOWN_ERRATA
        for r in bad.itertuples()
    ]
    return bad.reset_index(drop=True)


def table1_best_layers(table1: pd.DataFrame) -> dict[tuple[str, str], list[int]]:
    """Every layer that reaches the row maximum in Table I (ties give several)."""
    out: dict[tuple[str, str], list[int]] = {}
    for (net, pool), grp in table1.groupby(["network", "pooling"], sort=False):
        best = grp["accuracy"].max()
        out[(net, pool)] = sorted(int(x) for x in grp.loc[grp["accuracy"] == best, "layer"])
    return out


def consistency_problems(paper_dir: str | Path | None = None) -> list[str]:
    """All consistency failures of the paper tables that are not known errata.

    Checks: each row's Avg is the mean of A, B, C within :data:`AVG_TOLERANCE`; Table
    II's teacher-forcing Avg equals Table I at the study notes' best layer; that layer
    is a best layer of Table I. An empty list means only the known errata remain.
    """
    t1 = load_paper_table("table1", paper_dir)
    t2 = load_paper_table("table2", paper_dir)
    t3 = load_paper_table("table3", paper_dir)
    problems: list[str] = []
    for name, t in (("table2", t2), ("table3", t3)):
        for r in average_discrepancies(t, name).itertuples():
            if not r.known:
                problems.append(
                    f"{name} {r.dataset} {r.network} {r.pooling} {r.strategy}: Avg {r.avg} "
                    f"but mean(A, B, C) = {r.mean_abc:.2f}"
                )
    best = table1_best_layers(t1)
    t1_idx = t1.set_index(["network", "pooling", "layer"])["accuracy"]
    tf = t2[(t2.strategy == "teacher_forcing") & (t2.device == "avg")]
    for r in tf.itertuples():
        layer = PAPER_BEST_LAYERS.get((r.network, r.pooling))
        if layer is None:
            problems.append(f"table2 {r.network} {r.pooling}: no best layer listed")
            continue
        if layer not in best[(r.network, r.pooling)]:
            problems.append(f"table1 {r.network} {r.pooling}: best layers "
                            f"{best[(r.network, r.pooling)]}, study notes say {layer}")
        if abs(t1_idx[(r.network, r.pooling, layer)] - r.accuracy) > 1e-9:
            problems.append(f"table2 {r.network} {r.pooling} teacher_forcing Avg {r.accuracy} "
                            f"!= table1 layer {layer} {t1_idx[(r.network, r.pooling, layer)]}")
    return problems
