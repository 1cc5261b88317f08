"""The claims ledger (caa claims --profile): comparisons from the claims data, the
pre-registered verdict rules, and a whole tiny ledger built through the sweep.

Expected values are worked out by hand (rule cases, crafted runs whose accuracies are
set) or recomputed here from the runs' predictions.csv with plain pandas.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from helpers import make_run

from caalib.claims import load_claims, paper_evidence
from caalib.cli import main
from caalib.ledger import (
    LEDGER_COLUMNS,
    LEDGER_FILES,
    LEDGER_PROFILES,
    MIN_SEEDS,
    Arm,
    Comparison,
    LedgerError,
    build_ledger,
    claim_comparison,
    simulation_dir,
    simulation_verdict,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def claims():
    return {c.claim: c for c in load_claims()}


# ---------------------------------------------------------------- claims -> comparisons


def test_comparisons_come_from_the_claims_data(claims) -> None:
    models = (("pool", "att"), ("atrous", "att"))
    tf = claim_comparison(claims["tf_beats_mt"], models)
    assert isinstance(tf, Comparison) and tf.kind == "wins"
    assert set(tf.better) == {Arm("pool", "att", "teacher_forcing"),
                              Arm("atrous", "att", "teacher_forcing")}
    assert set(tf.worse) == {Arm("pool", "att", "multi_task"), Arm("atrous", "att", "multi_task")}
    assert tf.devices == ("a", "b", "c")
    sim = claim_comparison(claims["joint_comparable_single_bc"], models)
    assert sim.kind == "similar" and sim.devices == ("b", "c")
    assert {a.strategy for a in sim.better} == {"joint"}
    z = claim_comparison(claims["z_68_vs_65"], models)
    assert z.better == (Arm("atrous", "att", "multi_task"),)
    assert z.worse == (Arm("atrous", "att", "single"),)
    assert z.better[0].cond_layer == 4 and z.worse[0].cond_layer is None
    nets = claim_comparison(claims["atrous_beats_cnns"], models)  # pairs share pooling
    assert nets.better == (Arm("atrous", "att", "teacher_forcing"),)
    assert nets.worse == (Arm("pool", "att", "teacher_forcing"),)
    # what is not simulated says why
    assert "different clips" in claim_comparison(claims["device_a_best"], models)
    assert "does not train" in claim_comparison(claims["z_68_vs_49"], models)
    assert "table1" in claim_comparison(claims["layers_similar"], models)
    assert claim_comparison(claims["tram_confused"], models) == "needs real data"


# ---------------------------------------------------------------- the rules, by hand

@pytest.mark.parametrize("kind, est, low, high, mde, seeds, claimed, expected", [
    ("wins", 4.0, 1.0, 7.0, 2.0, 5, 3.0, "supported"),
    ("wins", 4.0, 1.0, 7.0, 2.0, 4, 3.0, "inconclusive"),     # too few seeds
    ("wins", 4.0, 1.0, 7.0, 3.5, 5, 3.0, "inconclusive"),     # could not see 3 points
    ("wins", -4.0, -7.0, -1.0, 9.0, 5, 3.0, "contradicted"),  # CI below 0
    ("wins", 0.2, -1.0, 1.5, 2.0, 5, 3.0, "contradicted"),    # powered, excludes +3
    ("wins", 0.2, -1.0, 1.5, 4.0, 5, 3.0, "inconclusive"),    # excludes +3, not powered
    ("wins", 1.0, 0.5, 1.5, 1.0, 5, 3.0, "supported"),        # above 0, below the claim
    ("wins", 4.0, 1.0, 7.0, 2.0, 5, -1.0, "inconclusive"),    # the paper's effect is <= 0
    ("similar", 0.1, -1.0, 1.2, 2.0, 5, math.nan, "supported"),
    ("similar", 0.1, -1.0, 1.2, 4.0, 5, math.nan, "inconclusive"),  # margin above 3
    ("similar", 0.1, -1.0, 2.5, 2.0, 5, math.nan, "inconclusive"),
    ("similar", 6.0, 4.0, 8.0, 2.0, 5, math.nan, "contradicted"),
    ("similar", 0.1, -1.0, 1.2, 2.0, 2, math.nan, "inconclusive"),
    ("wins", math.nan, math.nan, math.nan, math.nan, 5, 3.0, "inconclusive"),
])
def test_verdict_rules(kind, est, low, high, mde, seeds, claimed, expected) -> None:
    assert simulation_verdict(kind, est, low, high, mde, seeds, claimed) == expected


def test_underpowered_is_never_supported() -> None:
    for seeds in range(MIN_SEEDS):
        assert simulation_verdict("wins", 50, 40, 60, 0.1, seeds, 10) == "inconclusive"
        assert simulation_verdict("similar", 0, -0.1, 0.1, 0.5, seeds, math.nan) == \
            "inconclusive"


# ---------------------------------------------------------------- a whole tiny ledger


@pytest.fixture(scope="module")
def tiny_ledger(tmp_path_factory, tiny_dataset_2018, tiny_features_2018):
    results = tmp_path_factory.mktemp("ledger") / "results"
    code = main(["claims", "--profile", "tiny", str(results), "--data",
                 str(tiny_dataset_2018)])
    assert code == 0
    return results, pd.read_csv(results / "claims" / LEDGER_FILES[0])


def test_tiny_ledger_is_well_formed_and_inconclusive(tiny_ledger, claims) -> None:
    results, ledger = tiny_ledger
    assert tuple(ledger.columns) == LEDGER_COLUMNS
    assert list(ledger["claim"]) == list(claims)
    assert (results / "claims" / LEDGER_FILES[1]).is_file()
    # the paper's-own-numbers column is the first column's output, unchanged
    ev = paper_evidence()
    assert list(ledger["paper_evidence"]) == list(ev["paper_evidence"])
    assert list(ledger["paper_verdict"]) == list(ev["verdict"])
    # tiny trains 2 seeds: every verdict inconclusive, the simulated ones with numbers
    assert set(ledger["verdict"]) == {"inconclusive"}
    simulated = ledger[ledger["estimate"].notna()]
    assert set(simulated["claim"]) == {
        "conditional_best_most", "tf_beats_mt", "joint_comparable_single_bc",
        "conditional_improves_bc", "best_is_caanet", "z_68_vs_65",
        "caanet_beats_single_joint", "conditional_beats_single_joint"}
    assert (simulated["n_seeds"] == LEDGER_PROFILES["tiny"].seeds).all()
    assert (simulated["ci_low"] <= simulated["estimate"]).all()
    assert (simulated["estimate"] <= simulated["ci_high"]).all()
    assert simulated["p_value"].between(0, 1).all() and (simulated["mde"] > 0).all()
    assert ledger["real_data"].isna().all()  # no paper-profile runs: never filled in
    assert "underpowered" in simulated["comparison"].iloc[0]


def _acc(run: Path, devices: list[str]) -> dict[str, float]:
    pred = pd.read_csv(run / "predictions.csv")
    pred["ok"] = pred["scene_label"] == pred["predicted"]
    return {d: pred.loc[pred["source"] == d, "ok"].mean() for d in devices}


def test_tiny_estimate_recomputed_from_predictions(tiny_ledger) -> None:
    results, ledger = tiny_ledger
    runs = simulation_dir(results, "tiny") / "runs"
    diffs = []
    for seed in (0, 1):
        mt = _acc(runs / f"dcase2018-atrous-att-multi_task-L4-tiny-s{seed}", ["a", "b", "c"])
        single = {d: _acc(runs / f"dcase2018-atrous-att-single-{d}-tiny-s{seed}", [d])[d]
                  for d in "abc"}
        diffs.append([mt[d] - single[d] for d in "abc"])
    expected = 100 * pd.DataFrame(diffs).mean(axis=0).mean()
    row = ledger.set_index("claim").loc["z_68_vs_65"]
    assert row["estimate"] == pytest.approx(expected, abs=1e-9)


def test_real_data_column_from_paper_runs(tmp_path) -> None:
    runs = tmp_path / "results" / "runs"
    for seed in range(5):
        make_run(runs, strategy="multi_task", cond_layer=4, profile="paper", seed=seed,
                 acc={"a": 0.75, "b": 0.75, "c": 0.75})
        for d in "abc":
            make_run(runs, strategy="single", cond_layer=None, train_source=d,
                     profile="paper", seed=seed, acc={d: 0.5})
    ledger = build_ledger(tmp_path / "results", "tiny", train=False).set_index("claim")
    real = ledger.loc["z_68_vs_65", "real_data"]
    # 75 % against 50 % on every device and seed: +25 points, 5 seeds
    assert "+25.0 points" in real and "5 seed(s)" in real
    assert ledger.loc["tf_beats_mt", "real_data"] == ""  # no teacher-forcing run
    assert math.isnan(ledger.loc["z_68_vs_65", "estimate"])  # no simulation was run


def _faithfulness(results: Path, deltas: list[float]) -> None:
    (results / "explain").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"run": [f"r{i}" for i in range(len(deltas))], "model": "atrous+att",
                  "localisation": [0.3 + d for d in deltas],
                  "localisation_chance": 0.3}).to_csv(results / "explain" / "faithfulness.csv",
                                                      index=False)


def test_attention_claim_reads_faithfulness(tmp_path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    row = build_ledger(results, "tiny", train=False).set_index("claim")
    assert row.loc["attention_locates_evidence", "verdict"] == "inconclusive"
    assert "not measured" in row.loc["attention_locates_evidence", "comparison"]
    _faithfulness(results, [0.1, 0.2, 0.15, 0.3, 0.25])
    row = build_ledger(results, "tiny", train=False).set_index("claim")
    r = row.loc["attention_locates_evidence"]
    assert r["verdict"] == "supported" and r["n_seeds"] == 5
    assert r["estimate"] == pytest.approx(100 * 0.2)  # mean of the five deltas
    _faithfulness(results, [0.1, 0.2])  # two runs: too few
    row = build_ledger(results, "tiny", train=False).set_index("claim")
    assert row.loc["attention_locates_evidence", "verdict"] == "inconclusive"
    (results / "explain" / "faithfulness.csv").write_text("run,model\nx,y\n")
    with pytest.raises(LedgerError, match="faithfulness.csv: missing column"):
        build_ledger(results, "tiny", train=False)


def test_attention_claim_takes_attention_rows_as_caa_explain_writes_them(tmp_path) -> None:
    """caa explain writes a row per run x device x method, localisation as a ratio to
    chance (1); the claim averages each run's attention rows over devices and ignores the
    gradient rows."""
    from caalib.explain.faithfulness import ATTENTION

    results = tmp_path / "results"
    (results / "explain").mkdir(parents=True)
    rows = []
    for i in range(5):
        for j, dev in enumerate("abc"):
            rows.append({"run": f"r{i}", "model": "atrous+att", "source": dev,
                         "method": ATTENTION, "localisation": 1.0 + 0.1 * i + 0.3 * j,
                         "localisation_chance": 1.0})
            rows.append({"run": f"r{i}", "model": "atrous+att", "source": dev,
                         "method": "integrated_gradients", "localisation": 9.0,
                         "localisation_chance": 1.0})
    pd.DataFrame(rows).to_csv(results / "explain" / "faithfulness.csv", index=False)
    r = build_ledger(results, "tiny", train=False).set_index("claim").loc[
        "attention_locates_evidence"]
    # by hand: run i's mean over devices is 0.1 i + 0.3; the mean over runs 0.5
    assert r["n_seeds"] == 5 and r["estimate"] == pytest.approx(50.0)
    assert r["verdict"] == "supported"


def test_cli_needs_a_profile_or_paper_only(tmp_path, capsys) -> None:
    assert main(["claims", str(tmp_path / "results")]) == 2
    assert "--profile" in capsys.readouterr().err
    assert main(["claims", "--profile", "huge", str(tmp_path / "results")]) == 1
    assert "huge" in capsys.readouterr().err
    assert not (tmp_path / "results" / "claims").exists()


def test_ledger_says_which_models_its_verdicts_are_about() -> None:
    from caalib.ledger import profile_scope

    demo = profile_scope("demo")
    assert "0.0625 of the paper's width" in demo and "400 iterations" in demo
    assert "not the published ones" in demo
    gpu = profile_scope("gpu")
    assert "paper-size" in gpu and "1,500 iterations" in gpu and "not the published" not in gpu
