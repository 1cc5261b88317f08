"""The paper's claims as data, and what the paper's own tables say about each.

``results/paper/claims.csv`` holds one row per claim: the sentence quoted with its
section, and a machine-checkable comparison on Tables I-III (which table, which cells,
which factor, which levels are claimed better, with which quantifier). :func:`load_claims`
validates it, naming the line and field of any malformed row; :func:`claim_units`
breaks a claim into units (pairs or groups of table cells), each ``for``, ``against``
or ``tied``; :func:`paper_evidence` turns them into one line of evidence and a verdict
per claim; :func:`write_paper_evidence` writes ``paper_evidence.csv`` and ``.md``
(``caa claims --paper-only``).

The rules, fixed before any verdict was computed (docs/claims.md explains them):

1. Units. ``wins``: every pair of a ``better``-level cell and a ``worse``-level cell that
   agree on every other key in scope. ``best``: every group of cells agreeing on all keys
   but the factor; ``for`` when the best ``better`` level beats the best competitor.
   ``similar`` / ``differs``: a group's spread (max - min over the compared levels)
   against the noise tolerance of rule 4. ``ztest``: the one pair under each n choice.
2. Rounding and ties. Printed to 0.1, each number is within 0.05 of its unrounded value:
   a printed difference of at least 0.1 fixes the sign, equal printed numbers are a tie
   (|difference| <= 0.05). A spread within 0.1 of the tolerance is a tie. A z-test is run
   at the least and most favourable unrounded values (+-0.05 each); if they disagree, tie.
3. The known erratum (:data:`caalib.results.paper.KNOWN_ERRATA`): a unit using that Avg is
   evaluated with the printed Avg and with mean(A, B, C); if the outcomes differ, tie.
4. "Similar": spread <= q95(k) * SE, q95(k) the 95 % studentized-range quantile of k
   values (infinite df; k = 2 gives 1.96 sqrt 2), SE one accuracy's standard error on the
   DCASE 2018 evaluate split at p = 0.5 under the paper's unpaired clip-proportion model:
   sqrt(0.25 / n_d) per device, (1/3) sqrt(sum_d 0.25 / n_d) for the Avg.
5. Quantifiers from the wording: "most(ly)" -> most; an explicit universal ("each", "the
   three", one named comparison) -> all; a generic sentence ("X performs better than Y",
   "X can improve Y") -> most.
6. Verdicts, n units, f for, a against: most -> supported if f > n/2; all -> supported if
   f = n; both -> contradicted if a > n/2, else mixed. ztest -> supported if the bound
   holds under every n choice, contradicted if under none, else mixed (rests on n).
7. z-tests: :func:`caalib.stats.ztest_proportions`, one-tailed, pooled SE, the same n for
   both systems, each n of :data:`caalib.stats.PAPER_N_CHOICES`. The right test for two
   models scored on the same clips is a paired one (McNemar); it needs per-clip
   predictions, which are not published, so the verdict rests on the n choice.
8. ``check`` ``none`` (attention maps, confusions): ``not checkable from tables``, with
   what would check it; never filled in.

This module reads the tables through :mod:`caalib.results.paper` and builds on
:mod:`caalib.stats` for the z-test; neither imports it (it is not re-exported by
:mod:`caalib.results`, whose other modules stay below :mod:`caalib.stats`).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy.stats import studentized_range

from .atomic import write_text
from .constants import DATASETS
from .errors import CaaError
from .results.output import staged_output
from .results.paper import KNOWN_ERRATA, PAPER_DIR, TABLE_DEVICES, load_paper_table
from .spec import COND_LAYERS, POOLINGS, STRATEGIES, TOPOLOGIES
from .stats import DCASE2018_EVAL_CLIPS, PAPER_N_CHOICES, ztest_proportions

#: The claims file (committed data, beside Tables I-III).
CLAIMS_CSV = PAPER_DIR / "claims.csv"

#: Columns of claims.csv, in order.
CLAIM_COLUMNS: tuple[str, ...] = (
    "claim", "statement", "section", "source", "table", "check", "scope", "factor",
    "better", "worse", "collapse", "quantifier", "quoted", "p_bound", "needs", "notes",
)
CHECKS: tuple[str, ...] = ("wins", "best", "similar", "differs", "ztest", "none")
QUANTIFIERS: tuple[str, ...] = ("most", "all")
NEEDS: tuple[str, ...] = ("simulation", "real data")
VERDICTS: tuple[str, ...] = ("supported", "contradicted", "mixed", "not checkable from tables")
OUTCOMES: tuple[str, ...] = ("for", "against", "tied")

#: The table(s) a claim may name, and their key columns (Table I read as device avg).
CLAIM_TABLES: dict[str, tuple[str, ...]] = {
    "table1": ("table1",), "table2": ("table2",), "table3": ("table3",),
    "table2+table3": ("table2", "table3"),
}
_KEYS: dict[str, tuple[str, ...]] = {
    "table1": ("dataset", "network", "pooling", "layer", "device"),
    "table2": ("dataset", "network", "pooling", "strategy", "device"),
    "table3": ("dataset", "network", "pooling", "strategy", "device"),
}
_VOCAB: dict[str, tuple[object, ...]] = {
    "dataset": DATASETS, "network": TOPOLOGIES, "pooling": POOLINGS,
    "strategy": STRATEGIES, "layer": COND_LAYERS, "device": TABLE_DEVICES,
}

#: Printed to 0.1: a difference up to this is a tie (rule 2).
TIE = 0.05
#: The printed spread of k numbers is within this of the true spread (rule 2).
SPREAD_ROUNDING = 0.1
#: Coverage of the "similar" tolerance (rule 4).
SIMILAR_COVERAGE = 0.95

#: Files of :func:`write_paper_evidence` (``caa claims --paper-only``) in RESULTS_DIR/claims.
PAPER_EVIDENCE_FILES: tuple[str, ...] = ("paper_evidence.csv", "paper_evidence.md")
EVIDENCE_COLUMNS: tuple[str, ...] = (
    "claim", "statement", "source", "check", "quantifier", "units", "n_for", "n_against",
    "n_tied", "paper_evidence", "verdict",
)

#: Columns of :func:`claim_units`.
UNIT_COLUMNS: tuple[str, ...] = (
    "unit", "better_level", "worse_level", "better", "worse", "diff", "tolerance", "erratum",
    "outcome",
)

_ID = re.compile(r"^[a-z0-9_]+$")


class ClaimsError(CaaError):
    """claims.csv is malformed, or a claim does not match the paper's tables."""


@dataclass(frozen=True)
class Claim:
    """One validated row of claims.csv (``line``: its line in the file, header = 1)."""

    claim: str
    statement: str
    section: str
    source: str
    table: str
    check: str
    scope: dict[str, tuple[object, ...]]
    factor: tuple[str, ...]
    better: tuple[tuple[object, ...], ...]
    worse: tuple[tuple[object, ...], ...]
    collapse: str
    quantifier: str
    quoted: tuple[float, ...]
    p_bound: float | None
    needs: str
    notes: str
    line: int
    path: str

    def where(self) -> str:
        return f"{self.path}, line {self.line} (claim {self.claim!r})"


# ---------------------------------------------------------------- loading, validation


def _value(key: str, text: str) -> object:
    vocab = _VOCAB[key]
    if key == "layer":
        if not text.isdigit() or int(text) not in vocab:
            raise ValueError(f"{key} {text!r} is not one of {list(vocab)}")
        return int(text)
    if text not in vocab:
        raise ValueError(f"{key} {text!r} is not one of {list(vocab)}")
    return text


def _keys_of(table: str) -> tuple[str, ...]:
    keys: list[str] = []
    for t in CLAIM_TABLES[table]:
        keys += [k for k in _KEYS[t] if k not in keys]
    return tuple(keys)


def _parse_scope(text: str, keys: tuple[str, ...]) -> dict[str, tuple[object, ...]]:
    scope: dict[str, tuple[object, ...]] = {}
    if not text:
        return scope
    for part in text.split(";"):
        key, eq, values = part.partition("=")
        if not eq or not values:
            raise ValueError(f"{part!r} is not key=value[|value...]")
        if key not in keys:
            raise ValueError(f"key {key!r} is not one of {list(keys)}")
        if key in scope:
            raise ValueError(f"key {key!r} given twice")
        scope[key] = tuple(_value(key, v) for v in values.split("|"))
    return scope


def _parse_levels(text: str, factor: tuple[str, ...]) -> tuple[tuple[object, ...], ...]:
    levels = []
    for level in text.split("|"):
        parts = level.split("/")
        if len(parts) != len(factor):
            raise ValueError(f"level {level!r} needs {len(factor)} part(s) "
                             f"({'/'.join(factor)})")
        levels.append(tuple(_value(k, v) for k, v in zip(factor, parts, strict=True)))
    if len(set(levels)) != len(levels):
        raise ValueError(f"{text!r} repeats a level")
    return tuple(levels)


def _parse_row(row: dict[str, str], line: int, path: str) -> Claim:
    def fail(field: str, message: str) -> ClaimsError:
        who = f" (claim {row.get('claim')!r})" if row.get("claim") else ""
        return ClaimsError(f"{path}, line {line}{who}: {field}: {message}")

    r = {k: (row.get(k) or "").strip() for k in CLAIM_COLUMNS}
    if not _ID.match(r["claim"]):
        raise fail("claim", f"{r['claim']!r} is not an id ([a-z0-9_]+)")
    for field in ("statement", "section", "source"):
        if not r[field]:
            raise fail(field, "empty")
    if r["check"] not in CHECKS:
        raise fail("check", f"{r['check']!r} is not one of {list(CHECKS)}")
    check = r["check"]
    if check == "none":
        for field in ("table", "scope", "factor", "better", "worse", "collapse", "quantifier",
                      "quoted", "p_bound"):
            if r[field]:
                raise fail(field, "must be empty when check is none")
        if r["needs"] not in NEEDS:
            raise fail("needs", f"{r['needs']!r} is not one of {list(NEEDS)}")
        return Claim(r["claim"], r["statement"], r["section"], r["source"], "", check, {},
                     (), (), (), "", "", (), None, r["needs"], r["notes"], line, path)
    if r["needs"]:
        raise fail("needs", "only for check none")
    if r["table"] not in CLAIM_TABLES:
        raise fail("table", f"{r['table']!r} is not one of {list(CLAIM_TABLES)}")
    keys = _keys_of(r["table"])
    try:
        scope = _parse_scope(r["scope"], keys)
    except ValueError as exc:
        raise fail("scope", str(exc)) from None
    factor = tuple(r["factor"].split("+")) if r["factor"] else ()
    if not factor:
        raise fail("factor", "empty")
    for key in factor:
        if key not in keys:
            raise fail("factor", f"key {key!r} is not one of {list(keys)}")
    if len(set(factor)) != len(factor):
        raise fail("factor", "repeats a key")
    if not r["better"]:
        raise fail("better", "empty")
    levels: dict[str, tuple[tuple[object, ...], ...]] = {}
    for field in ("better", "worse"):
        try:
            levels[field] = _parse_levels(r[field], factor) if r[field] else ()
        except ValueError as exc:
            raise fail(field, str(exc)) from None
        for level in levels[field]:
            for key, v in zip(factor, level, strict=True):
                if key in scope and v not in scope[key]:
                    raise fail(field, f"{key} {v!r} is outside the scope {list(scope[key])}")
    if set(levels["better"]) & set(levels["worse"]):
        raise fail("worse", "shares a level with better")
    if check in ("wins", "ztest") and not levels["worse"]:
        raise fail("worse", f"required for check {check}")
    if check in ("similar", "differs"):
        if levels["worse"]:
            raise fail("worse", f"must be empty for check {check} (better lists the levels "
                       "compared)")
        if len(levels["better"]) < 2:
            raise fail("better", f"check {check} compares at least two levels")
        if any(t == "table3" for t in CLAIM_TABLES[r["table"]]) or \
                set(scope.get("dataset", ("dcase2018",))) != {"dcase2018"}:
            raise fail("table", f"check {check} is defined on DCASE 2018 only (rule 4)")
    collapse = r["collapse"]
    if collapse and (collapse not in keys or collapse in factor):
        raise fail("collapse", f"{collapse!r} is not a key of the table outside the factor")
    if check == "ztest":
        if r["quantifier"]:
            raise fail("quantifier", "must be empty for check ztest")
        if len(levels["better"]) != 1 or len(levels["worse"]) != 1:
            raise fail("better", "a ztest compares one better and one worse level")
    elif r["quantifier"] not in QUANTIFIERS:
        raise fail("quantifier", f"{r['quantifier']!r} is not one of {list(QUANTIFIERS)}")
    try:
        quoted = tuple(float(x) for x in r["quoted"].split("|")) if r["quoted"] else ()
    except ValueError:
        raise fail("quoted", f"{r['quoted']!r} is not numbers separated by |") from None
    if any(not 0 <= q <= 100 for q in quoted):
        raise fail("quoted", f"{r['quoted']!r}: accuracies are percentages in [0, 100]")
    if check == "ztest":
        if len(quoted) != 2:
            raise fail("quoted", "a ztest quotes the better and the worse accuracy (a|b)")
        try:
            p_bound = float(r["p_bound"])
        except ValueError:
            raise fail("p_bound", f"{r['p_bound']!r} is not a number") from None
        if not 0 < p_bound < 1:
            raise fail("p_bound", f"{p_bound} is not in (0, 1)")
    else:
        if r["p_bound"]:
            raise fail("p_bound", "only for check ztest")
        p_bound = None
    return Claim(r["claim"], r["statement"], r["section"], r["source"], r["table"], check,
                 scope, factor, levels["better"], levels["worse"], collapse, r["quantifier"],
                 quoted, p_bound, "", r["notes"], line, path)


def load_claims(path: str | Path | None = None) -> list[Claim]:
    """Read and validate claims.csv (default :data:`CLAIMS_CSV`).

    Any problem raises one :class:`ClaimsError` line naming the file, the line, the claim
    and the field. Whether a claim's cells exist in the tables is checked when it is
    evaluated (:func:`claim_units`), with the same kind of message.
    """
    path = Path(path) if path is not None else CLAIMS_CSV
    if not path.is_file():
        raise ClaimsError(f"{path}: claims file not found")
    shown = path.name
    claims: list[Claim] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise ClaimsError(f"{shown}: empty file") from None
        if tuple(header) != CLAIM_COLUMNS:
            missing = [c for c in CLAIM_COLUMNS if c not in header]
            extra = [c for c in header if c not in CLAIM_COLUMNS]
            raise ClaimsError(f"{shown}, line 1: columns {header}; expected "
                              f"{list(CLAIM_COLUMNS)} (missing {missing}, unexpected {extra})")
        start = reader.line_num + 1
        seen: dict[str, int] = {}
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(CLAIM_COLUMNS):
                raise ClaimsError(f"{shown}, line {line}: {len(fields)} fields, expected "
                                  f"{len(CLAIM_COLUMNS)} (a comma inside an unquoted text?)")
            c = _parse_row(dict(zip(CLAIM_COLUMNS, fields, strict=True)), line, shown)
            if c.claim in seen:
                raise ClaimsError(f"{shown}, line {line} (claim {c.claim!r}): claim: "
                                  f"duplicate of line {seen[c.claim]}")
            seen[c.claim] = line
            claims.append(c)
    if not claims:
        raise ClaimsError(f"{shown}: no claims")
    return claims


# ---------------------------------------------------------------- the paper's cells


def paper_cells(table: str, paper_dir: str | Path | None = None) -> pd.DataFrame:
    """The cells of ``table`` (a :data:`CLAIM_TABLES` name) in long form.

    Columns: the table's keys (Table I gains ``dataset`` dcase2018 and ``device`` avg),
    ``accuracy`` as printed, ``alt`` (the same, except a :data:`KNOWN_ERRATA` row's Avg,
    which is the mean of its printed A, B, C there) and ``erratum`` (True on that Avg).
    """
    frames = []
    keys = _keys_of(table)
    for name in CLAIM_TABLES[table]:
        t = load_paper_table(name, paper_dir).copy()
        if name == "table1":
            t["dataset"] = "dcase2018"
            t["device"] = "avg"
        t["alt"] = t["accuracy"].astype(float)
        t["erratum"] = False
        if name != "table1":
            for (tab, ds, net, pool, strat) in KNOWN_ERRATA:
                if tab != name:
                    continue
                row = ((t.dataset == ds) & (t.network == net) & (t.pooling == pool)
                       & (t.strategy == strat))
                at = row & (t.device == "avg")
                t.loc[at, "alt"] = t.loc[row & t.device.isin(("a", "b", "c")), "accuracy"].mean()
                t.loc[at, "erratum"] = True
        frames.append(t[[*keys, "accuracy", "alt", "erratum"]])
    return pd.concat(frames, ignore_index=True)


def accuracy_se(device: str) -> float:
    """Rule 4: one accuracy's standard error (points) on the DCASE 2018 evaluate split at
    p = 0.5, clips independent: per device, or for the Avg of devices A, B, C."""
    if device == "avg":
        var = sum(0.25 / n for n in DCASE2018_EVAL_CLIPS.values()) / 9.0
    elif device in DCASE2018_EVAL_CLIPS:
        var = 0.25 / DCASE2018_EVAL_CLIPS[device]
    else:
        raise ValueError(f"unknown device {device!r}")
    return 100.0 * math.sqrt(var)


def similar_tolerance(device: str, k: int) -> float:
    """Rule 4: the largest spread (points) of ``k`` accuracies that sampling noise alone
    gives 95 % of the time, for models of equal true accuracy."""
    if k < 2:
        raise ValueError("a spread needs at least two values")
    q = float(studentized_range.ppf(SIMILAR_COVERAGE, k, math.inf))
    return q * accuracy_se(device)


# ---------------------------------------------------------------- units and verdicts


def _sign(diff: float) -> str:
    return "for" if diff > TIE else "against" if diff < -TIE else "tied"


def _within(spread: float, tol: float) -> str:
    """``for`` when the spread is surely within ``tol``, ``against`` when surely beyond."""
    if spread <= tol - SPREAD_ROUNDING:
        return "for"
    if spread > tol + SPREAD_ROUNDING:
        return "against"
    return "tied"


def _fmt(level: tuple[object, ...]) -> str:
    return "/".join(f"layer {v}" if isinstance(v, int) else str(v) for v in level)


def _label(row: pd.Series, keys: list[str]) -> str:
    return " ".join(f"layer {row[k]}" if k == "layer" else str(row[k]) for k in keys)


def _scoped(claim: Claim, paper_dir: str | Path | None) -> tuple[pd.DataFrame, list[str]]:
    cells = paper_cells(claim.table, paper_dir)
    for key, values in claim.scope.items():
        cells = cells[cells[key].isin(values)]
    if cells.empty:
        raise ClaimsError(f"{claim.where()}: scope selects no cell of {claim.table}")
    for q in claim.quoted:
        if not (cells["accuracy"] - q).abs().lt(1e-9).any():
            raise ClaimsError(f"{claim.where()}: quoted {q} is not a cell in scope")
    cells = cells.reset_index(drop=True)
    cells["level"] = list(zip(*(cells[k] for k in claim.factor), strict=True))
    rest = [k for k in _keys_of(claim.table) if k not in claim.factor and k != claim.collapse]
    if claim.collapse:
        agg = cells.groupby([*rest, "level"], sort=False)
        cells = agg.agg(accuracy=("accuracy", "max"), alt=("alt", "max"),
                        erratum=("erratum", "any")).reset_index()
    return cells, rest


def _shown_keys(cells: pd.DataFrame, rest: list[str]) -> list[str]:
    """The keys that tell units apart (those with one value in scope are left out)."""
    return [k for k in rest if cells[k].nunique() > 1]


def _pairs(claim: Claim, cells: pd.DataFrame, rest: list[str]) -> pd.DataFrame:
    better = cells[cells["level"].isin(claim.better)]
    worse = cells[cells["level"].isin(claim.worse)]
    pairs = better.reset_index(names="_pos").merge(worse, on=rest, suffixes=("_b", "_w"))
    # the table's order, then the levels' order as the claim gives them
    order = {lv: i for i, lv in enumerate((*claim.better, *claim.worse))}
    pairs = pairs.assign(_ob=pairs["level_b"].map(order), _ow=pairs["level_w"].map(order))
    first = pairs.groupby(rest, sort=False)["_pos"].transform("min")
    return (pairs.assign(_first=first)
            .sort_values(["_first", "_ob", "_ow"], kind="stable").reset_index(drop=True))


def claim_units(claim: Claim, paper_dir: str | Path | None = None) -> pd.DataFrame:
    """The units of one claim (rule 1) with their outcome (rules 2-4).

    Columns (:data:`UNIT_COLUMNS`): ``unit`` (the keys that tell units apart),
    ``better_level``/``worse_level`` and ``better``/``worse`` (for ``wins``/``ztest`` the
    two cells, for ``best`` the best better level and the best competitor, for
    ``similar``/``differs`` the maximum and the minimum), ``diff`` (better - worse, or the
    spread), ``tolerance`` (``similar``/``differs``, else NaN), ``erratum`` (the outcome
    depends on the known erratum, rule 3, so the unit is tied) and ``outcome``
    (``for``/``against``/``tied``). ``ztest`` claims have one row per n choice
    (:func:`ztest_units`). ``none`` claims have no units.
    """
    if claim.check == "none":
        return pd.DataFrame(columns=list(UNIT_COLUMNS))
    if claim.check == "ztest":
        return ztest_units(claim, paper_dir)
    cells, rest = _scoped(claim, paper_dir)
    shown = _shown_keys(cells, rest)
    rows = []
    if claim.check == "wins":
        pairs = _pairs(claim, cells, rest)
        for _, p in pairs.iterrows():
            outs = {_sign(p[f"{col}_b"] - p[f"{col}_w"]) for col in ("accuracy", "alt")}
            where = _label(p, shown)
            rows.append({
                "unit": where, "better_level": _fmt(p["level_b"]),
                "worse_level": _fmt(p["level_w"]), "better": p["accuracy_b"],
                "worse": p["accuracy_w"],
                "diff": p["accuracy_b"] - p["accuracy_w"], "tolerance": math.nan,
                "erratum": len(outs) > 1, "outcome": outs.pop() if len(outs) == 1 else "tied",
            })
    else:
        for key, grp in cells.groupby(rest, sort=False) if rest else [((), cells)]:
            key = key if isinstance(key, tuple) else (key,)
            where = _label(pd.Series(dict(zip(rest, key, strict=True))), shown)
            if claim.check == "best":
                rows.append(_best_unit(claim, grp, where))
            else:
                rows.append(_spread_unit(claim, grp, where, dict(zip(rest, key, strict=True))))
    if not rows:
        raise ClaimsError(f"{claim.where()}: no {'pair' if claim.check == 'wins' else 'group'} "
                          f"of cells to compare in {claim.table}")
    return pd.DataFrame(rows, columns=list(UNIT_COLUMNS))


def _missing(claim: Claim, grp: pd.DataFrame, levels: tuple[tuple[object, ...], ...],
             where: str, what: str) -> ClaimsError:
    have = sorted(_fmt(lv) for lv in set(grp["level"]))
    return ClaimsError(f"{claim.where()}: {where or 'the table'} has no {what} level "
                       f"({', '.join(_fmt(lv) for lv in levels) or 'other'}; it has "
                       f"{', '.join(have)})")


def _best_unit(claim: Claim, grp: pd.DataFrame, where: str) -> dict[str, object]:
    better = grp[grp["level"].isin(claim.better)]
    rivals = grp[grp["level"].isin(claim.worse)] if claim.worse else \
        grp[~grp["level"].isin(claim.better)]
    if better.empty:
        raise _missing(claim, grp, claim.better, where, "better")
    if rivals.empty:
        raise _missing(claim, grp, claim.worse, where, "competing")
    outs = {_sign(better[c].max() - rivals[c].max()) for c in ("accuracy", "alt")}
    b = better.loc[better["accuracy"].idxmax()]
    r = rivals.loc[rivals["accuracy"].idxmax()]
    return {
        "unit": where, "better_level": _fmt(b["level"]), "worse_level": _fmt(r["level"]),
        "better": b["accuracy"], "worse": r["accuracy"], "diff": b["accuracy"] - r["accuracy"],
        "tolerance": math.nan,
        "erratum": len(outs) > 1, "outcome": outs.pop() if len(outs) == 1 else "tied",
    }


def _spread_unit(claim: Claim, grp: pd.DataFrame, where: str,
                 key: dict[str, object]) -> dict[str, object]:
    sel = grp[grp["level"].isin(claim.better)]
    if sel["level"].nunique() != len(claim.better):
        raise _missing(claim, grp, claim.better, where, "compared")
    device = str(key.get("device", sel["device"].iloc[0] if "device" in sel else "avg"))
    if sel["device"].nunique() != 1:
        raise ClaimsError(f"{claim.where()}: a spread needs one device per group")
    tol = similar_tolerance(device, len(claim.better))
    outs = set()
    for col in ("accuracy", "alt"):
        inside = _within(sel[col].max() - sel[col].min(), tol)
        flip = {"for": "against", "against": "for", "tied": "tied"}
        outs.add(inside if claim.check == "similar" else flip[inside])
    hi = sel.loc[sel["accuracy"].idxmax()]
    lo = sel.loc[sel["accuracy"].idxmin()]
    return {
        "unit": where, "better_level": _fmt(hi["level"]), "worse_level": _fmt(lo["level"]),
        "better": hi["accuracy"], "worse": lo["accuracy"],
        "diff": hi["accuracy"] - lo["accuracy"], "tolerance": tol,
        "erratum": len(outs) > 1, "outcome": outs.pop() if len(outs) == 1 else "tied",
    }


def ztest_units(claim: Claim, paper_dir: str | Path | None = None) -> pd.DataFrame:
    """A ``ztest`` claim under each n of :data:`caalib.stats.PAPER_N_CHOICES` (rules 2, 7).

    Columns as :func:`claim_units`, plus ``n_choice``, ``n``, ``z``, ``p`` (at the printed
    values), ``p_worst``/``p_best`` (at the least/most favourable unrounded values) and
    ``bound``. ``for``: p < bound even at the least favourable values; ``against``: p >=
    bound even at the most favourable; ``tied``: rounding decides.
    """
    cells, rest = _scoped(claim, paper_dir)
    pairs = _pairs(claim, cells, rest)
    if len(pairs) != 1:
        raise ClaimsError(f"{claim.where()}: a ztest needs exactly one pair of cells, the "
                          f"scope gives {len(pairs)}")
    p = pairs.iloc[0]
    hi, lo = float(p["accuracy_b"]), float(p["accuracy_w"])
    if abs(hi - claim.quoted[0]) > 1e-9 or abs(lo - claim.quoted[1]) > 1e-9:
        raise ClaimsError(f"{claim.where()}: quoted {claim.quoted[0]} vs {claim.quoted[1]}, "
                          f"the table has {hi} vs {lo}")
    bound = claim.p_bound
    assert bound is not None

    def test(a: float, b: float, n: int) -> tuple[str, float, float]:
        worst = ztest_proportions(a - TIE, b + TIE, n, n, "greater", percent=True)
        best = ztest_proportions(min(a + TIE, 100.0), max(b - TIE, 0.0), n, n, "greater",
                                 percent=True)
        outcome = "for" if worst.p < bound else "against" if best.p >= bound else "tied"
        return outcome, worst.p, best.p

    rows = []
    for label, n in PAPER_N_CHOICES.items():
        printed = ztest_proportions(hi, lo, n, n, "greater", percent=True)
        outcome, p_worst, p_best = test(hi, lo, n)
        alt = test(float(p["alt_b"]), float(p["alt_w"]), n)[0]
        rows.append({
            "unit": f"n = {n:,} ({label})", "better_level": _fmt(p["level_b"]),
            "worse_level": _fmt(p["level_w"]), "better": hi, "worse": lo, "diff": hi - lo,
            "tolerance": math.nan, "erratum": alt != outcome,
            "outcome": outcome if alt == outcome else "tied", "n_choice": label, "n": n,
            "z": printed.z, "p": printed.p, "p_worst": p_worst, "p_best": p_best,
            "bound": bound,
        })
    return pd.DataFrame(rows)


def verdict(check: str, quantifier: str, n_for: int, n_against: int, n_tied: int) -> str:
    """Rule 6."""
    n = n_for + n_against + n_tied
    if check == "none":
        return "not checkable from tables"
    if n == 0:
        raise ValueError("a verdict needs at least one unit")
    if check == "ztest":
        return "supported" if n_for == n else "contradicted" if n_against == n else "mixed"
    if quantifier not in QUANTIFIERS:
        raise ValueError(f"quantifier {quantifier!r} is not one of {list(QUANTIFIERS)}")
    if (n_for > n / 2) if quantifier == "most" else (n_for == n):
        return "supported"
    if n_against > n / 2:
        return "contradicted"
    return "mixed"


_UNIT_WORD = {"wins": "pairs", "best": "groups", "similar": "groups", "differs": "groups",
              "ztest": "n choices"}


def _listing(units: pd.DataFrame, outcome: str, limit: int = 6) -> str:
    sel = units[units["outcome"] == outcome]
    if sel.empty:
        return ""
    parts = []
    for r in sel.head(limit).itertuples():
        where = f"{r.unit}: " if r.unit else ""
        flag = " [erratum]" if r.erratum else ""
        if math.isnan(r.tolerance):
            parts.append(f"{where}{r.better_level} {r.better:.1f} vs {r.worse_level} "
                         f"{r.worse:.1f}{flag}")
        else:
            parts.append(f"{where}spread {r.diff:.1f} ({r.better_level} {r.better:.1f}, "
                         f"{r.worse_level} {r.worse:.1f}){flag}")
    more = f"; and {len(sel) - limit} more" if len(sel) > limit else ""
    return f"{outcome}: " + "; ".join(parts) + more


def describe(claim: Claim, units: pd.DataFrame) -> str:
    """One line of evidence in words for a claim and its units."""
    if claim.check == "none":
        return f"needs {claim.needs}"
    counts = units["outcome"].value_counts()
    f, a, t = (int(counts.get(o, 0)) for o in OUTCOMES)
    n = len(units)
    if claim.check == "ztest":
        def ns(outcome: str) -> str:
            return ", ".join(f"{r.n:,} (p = {r.p:.2g})" for r in units.itertuples()
                             if r.outcome == outcome)
        parts = [f"{label} n = {ns(o)}" for o, label in
                 (("for", "holds with"), ("against", "fails with"),
                  ("tied", "rounding (+-0.05) decides with")) if ns(o)]
        rests = ("the verdict rests on the n choice" if 0 < f < n else
                 f"the same under every n choice ({', '.join(f'{x:,}' for x in units['n'])})")
        return (f"{claim.quoted[0]:.1f} vs {claim.quoted[1]:.1f}, one-tailed unpaired z-test, "
                f"p < {claim.p_bound:g}: " + "; ".join(parts) + f"; {rests}. Both models "
                "were scored on the same clips, so the right test is paired (McNemar), which "
                "needs per-clip predictions the paper does not publish")
    head = f"{f} of {n} {_UNIT_WORD[claim.check]} for, {a} against, {t} tied"
    if claim.check == "wins":
        head += f"; mean difference {units['diff'].mean():+.2f} points"
    if claim.check in ("similar", "differs"):
        tols = sorted({round(x, 1) for x in units["tolerance"]})
        head += f"; tolerance {', '.join(f'{x:.1f}' for x in tols)} points (rule 4)"
    shown = ("for", "against", "tied") if n <= 5 else ("against", "tied")
    rest = [s for s in (_listing(units, o) for o in shown) if s]
    return head + ("; " + "; ".join(rest) if rest else "")


def paper_evidence(claims: list[Claim] | None = None,
                   paper_dir: str | Path | None = None) -> pd.DataFrame:
    """The paper's-own-numbers column: one row per claim (:data:`EVIDENCE_COLUMNS`)."""
    claims = load_claims() if claims is None else claims
    rows = []
    for c in claims:
        units = claim_units(c, paper_dir)
        counts = units["outcome"].value_counts()
        f, a, t = (int(counts.get(o, 0)) for o in OUTCOMES)
        rows.append({
            "claim": c.claim, "statement": c.statement, "source": c.source, "check": c.check,
            "quantifier": c.quantifier or ("n choices" if c.check == "ztest" else ""),
            "units": len(units), "n_for": f, "n_against": a, "n_tied": t,
            "paper_evidence": describe(c, units),
            "verdict": verdict(c.check, c.quantifier, f, a, t),
        })
    return pd.DataFrame(rows, columns=list(EVIDENCE_COLUMNS))


# ---------------------------------------------------------------- output


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def evidence_markdown(evidence: pd.DataFrame, claims: list[Claim],
                      paper_dir: str | Path | None = None) -> str:
    """paper_evidence.md: the verdict table, the rules in one line each, the z-tests."""
    lines = [
        "# The paper's claims: what its own numbers say",
        "",
        "Verdicts from the paper's Tables I-III by the rules of docs/claims.md, written "
        "before any verdict was computed. Descriptive: do the printed numbers go the way "
        "the sentence says? Whether a difference is real is the simulation's question "
        "(not built yet).",
        "",
        "| claim | source | check | for / against / tied | verdict | paper's own numbers |",
        "|---|---|---|---|---|---|",
    ]
    for r in evidence.itertuples():
        fat = "-" if r.check == "none" else f"{r.n_for} / {r.n_against} / {r.n_tied}"
        lines.append(f"| {r.claim} | {_md_cell(r.source)} | {r.check} {r.quantifier} | {fat} "
                     f"| **{r.verdict}** | {_md_cell(r.paper_evidence)} |")
    lines += [
        "",
        "## Rules (docs/claims.md)",
        "",
        "- Printed to 0.1: equal printed numbers are a tie; a difference of 0.1 fixes the "
        "sign. A spread within 0.1 of the tolerance is a tie; a z-test whose outcome "
        "changes within +-0.05 of each number is a tie.",
        "- The known erratum (Table II, CNN w/ pool + avg, multi-task, Avg 59.7 vs mean "
        "61.23): a unit whose outcome depends on it is a tie.",
        "- Similar: spread <= q95(k) x SE (studentized range; SE at p = 0.5 on the DCASE "
        "2018 evaluate split, clips and models independent).",
        "- most: supported if more than half the units are for; all: if every unit is; "
        "contradicted if more than half are against; otherwise mixed.",
        "- z-tests: supported if p < bound under every n, contradicted under none, else "
        "mixed. Two models scored on the same clips need a paired test (McNemar), which "
        "the published numbers (no per-clip predictions) cannot support.",
        "",
        "## The z-tests under each plausible n",
        "",
        "| claim | n | z | p (printed) | p (least / most favourable rounding) | bound | outcome |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in claims:
        if c.check != "ztest":
            continue
        for r in ztest_units(c, paper_dir).itertuples():
            lines.append(f"| {c.claim} | {r.n:,} ({r.n_choice}) | {r.z:.3f} | {r.p:.3g} | "
                         f"{r.p_worst:.3g} / {r.p_best:.3g} | {r.bound:g} | {r.outcome} |")
    return "\n".join(lines) + "\n"


def owned_by_claims(name: str) -> bool:
    """The entries of RESULTS_DIR/claims this part of ``caa claims`` writes."""
    return name in PAPER_EVIDENCE_FILES


def write_paper_evidence(out_dir: str | Path, claims_path: str | Path | None = None,
                         paper_dir: str | Path | None = None,
                         owns: Callable[[str], bool] = owned_by_claims
                         ) -> tuple[list[Path], pd.DataFrame]:
    """Write paper_evidence.csv and .md to ``out_dir``, both or neither.

    Everything is computed first; then the two files replace their predecessors at once
    (:func:`caalib.results.output.staged_output`); other files in ``out_dir`` are kept.
    Returns the written paths and the evidence table.
    """
    claims = load_claims(claims_path)
    evidence = paper_evidence(claims, paper_dir)
    md = evidence_markdown(evidence, claims, paper_dir)
    out = Path(out_dir)
    with staged_output(out, owns, what="caa claims") as stage:
        write_text(stage / PAPER_EVIDENCE_FILES[0], evidence.to_csv(index=False))
        write_text(stage / PAPER_EVIDENCE_FILES[1], md)
    return [out / name for name in PAPER_EVIDENCE_FILES], evidence
