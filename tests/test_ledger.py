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
    with pytest.warns(UserWarning, match="not the `sim-tiny` simulation set"):
        code = main(["claims", "--profile", "tiny", str(results), "--data",
                     str(tiny_dataset_2018), "--reference", "tiny-ref"])
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


# ---------------------------------------------------------------- reference bundles


def _git_head() -> str | None:
    import subprocess

    done = subprocess.run(["git", "-C", str(Path(__file__).resolve().parents[1]), "rev-parse",
                           "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def test_reference_bundle_holds_runs_digests_and_provenance(tiny_ledger) -> None:
    import hashlib
    import json

    import torch

    results, ledger = tiny_ledger
    bundle = results / "reference" / "tiny-ref"
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        ["ledger.csv", "ledger.md", "runs.csv", "arms.csv", "provenance.json"])
    assert (bundle / "ledger.csv").read_text() == (results / "claims" / "ledger.csv").read_text()
    runs = pd.read_csv(bundle / "runs.csv")
    run_dirs = sorted((simulation_dir(results, "tiny") / "runs").iterdir())
    assert list(runs["name"]) == [d.name for d in run_dirs] and len(runs) == 12
    for row, run in zip(runs.itertuples(), run_dirs, strict=True):
        raw = (run / "predictions.csv").read_bytes()
        assert row.file_sha256 == hashlib.sha256(raw).hexdigest()
        pred = pd.read_csv(run / "predictions.csv", dtype=str).sort_values("filename")
        text = "".join(f"{f},{p}\n" for f, p in zip(pred["filename"], pred["predicted"],
                                                    strict=True))
        assert row.labels_sha256 == hashlib.sha256(text.encode()).hexdigest()
        devices = [row.train_source] if row.strategy == "single" else ["a", "b", "c"]
        for d, acc in _acc(run, devices).items():
            assert getattr(row, f"acc_{d}") == pytest.approx(acc, abs=1e-12)
    # arms.csv: one arm worked from the two seeds' predictions
    arms = pd.read_csv(bundle / "arms.csv")
    mt = arms[(arms["strategy"] == "multi_task")].iloc[0]
    names = [f"dcase2018-atrous-att-multi_task-L4-tiny-s{s}" for s in (0, 1)]
    b = [100 * _acc(simulation_dir(results, "tiny") / "runs" / n, ["b"])["b"] for n in names]
    assert mt["n_seeds"] == 2 and mt["mean_b"] == pytest.approx(sum(b) / 2, abs=1e-3)
    assert mt["sd_b"] == pytest.approx(abs(b[0] - b[1]) / math.sqrt(2), abs=1e-3)
    prov = json.loads((bundle / "provenance.json").read_text())
    assert prov["commit"] == _git_head()
    assert prov["command"].startswith("caa claims --profile tiny ")
    assert prov["command"].endswith("--reference tiny-ref")
    assert prov["profile"] == "tiny" and prov["runs"] == 12
    assert prov["runs_trained_here"] == 12 and runs["trained_here"].all()  # a fresh dir
    assert prov["commit_source"] == ("git" if prov["commit"] else None)
    assert prov["machine"]["torch"] == torch.__version__
    assert prov["wall_time_s"] > 0 and prov["runs_training_time_s"] > 0
    assert prov["ledger_profile"]["seeds"] == LEDGER_PROFILES["tiny"].seeds
    from caalib.reference import references

    (ref,) = references(results)
    label = ref.label()
    assert ref.name == "tiny-ref" and f"torch {torch.__version__}" in label
    assert (prov["commit"] or "unknown")[:10] in label and "12 runs" in label
    assert "cudnn" not in label  # a CPU run: CUDA's versions decide nothing of its numbers


def test_reference_check_passes_on_its_own_runs(tiny_ledger, capsys) -> None:
    results, _ = tiny_ledger
    bundle = results / "reference" / "tiny-ref"
    assert main(["claims", str(results), "--check-reference", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "12 run(s): 12 identical" in out and out.rstrip().endswith("REPRODUCED")


def test_reference_check_names_what_differs(tiny_ledger, tmp_path) -> None:
    import shutil

    from caalib.reference import check_reference, read_reference

    results, _ = tiny_ledger
    bundle = tmp_path / "ref"
    shutil.copytree(results / "reference" / "tiny-ref", bundle)
    runs = pd.read_csv(bundle / "runs.csv", dtype=str, keep_default_na=False)
    runs.loc[0, "file_sha256"] = "0" * 64  # scores differ, labels the same
    runs.loc[1, "file_sha256"] = "0" * 64
    runs.loc[1, "acc_a"] = "0.123"  # a different accuracy
    runs.loc[2, "name"] = "dcase2018-atrous-att-joint-tiny-s9"  # a run the rerun lacks
    runs.to_csv(bundle / "runs.csv", index=False)
    here = dict(read_reference(bundle).provenance["machine"], device_name="Other GPU")
    check = check_reference(bundle, results, here=here)
    status = check.status.set_index("name")["status"]
    assert status.iloc[0] == "same labels" and status.iloc[1] == "differs"
    assert status.loc["dcase2018-atrous-att-joint-tiny-s9"] == "missing"
    assert (status.iloc[3:] == "identical").all() and not check.reproduced
    text = check.text()
    assert "acc_a '0.123'" in text or "acc_a 0.123" in text
    assert "device_name" in text and "Other GPU" in text
    assert text.endswith("NOT REPRODUCED")
    assert main(["claims", str(results), "--check-reference", str(bundle)]) == 1


def test_reference_partial_check_of_some_reruns(tiny_ledger, tmp_path, capsys) -> None:
    import shutil

    results, _ = tiny_ledger
    bundle = results / "reference" / "tiny-ref"
    runs = simulation_dir(results, "tiny") / "runs"
    rerun = tmp_path / "rerun"
    picked = sorted(runs.iterdir())[:2]
    for run in picked:
        shutil.copytree(run, simulation_dir(rerun, "tiny") / "runs" / run.name)
    assert main(["claims", str(rerun), "--check-reference", str(bundle), "--partial"]) == 0
    out = capsys.readouterr().out
    assert "12 run(s): 10 not rerun, 2 identical" in out and out.rstrip().endswith("REPRODUCED")
    assert main(["claims", str(rerun), "--check-reference", str(bundle)]) == 1
    out = capsys.readouterr().out
    assert "10 missing" in out and out.rstrip().endswith("NOT REPRODUCED")
    empty = tmp_path / "empty"  # nothing rerun: nothing reproduced, even partially
    assert main(["claims", str(empty), "--check-reference", str(bundle), "--partial"]) == 1
    assert main(["claims", "--profile", "tiny", str(empty), "--partial"]) == 2


def test_reference_bundle_takes_the_curves_outputs_not_its_runs(tiny_ledger, tmp_path) -> None:
    import shutil

    from caalib.reference import write_reference

    results, ledger = tiny_ledger
    curve = results / "shift-curve" / "tiny"
    try:
        (curve / "shift-1.5" / "runs" / "r").mkdir(parents=True)
        (curve / "shift-1.5" / "runs" / "r" / "checkpoint.pt").write_bytes(b"x" * 1000)
        (curve / "shift_curve.png").write_bytes(b"png")
        # no summary yet: an unfinished curve is not a result
        bundle = write_reference(results, "tiny", "a", ledger=ledger, command="c",
                                 wall_time_s=1.0, out_root=tmp_path)
        assert not (bundle / "shift-curve").exists()
        (curve / "shift_curve_summary.csv").write_text("shift\n")
        bundle = write_reference(results, "tiny", "b", ledger=ledger, command="c",
                                 wall_time_s=1.0, out_root=tmp_path)
        assert sorted(p.name for p in (bundle / "shift-curve").iterdir()) == [
            "shift_curve.png", "shift_curve_summary.csv"]
        import json

        said = json.loads((bundle / "provenance.json").read_text())["shift_curve"]
        assert said["from"] == "shift-curve/tiny" and "not this command" in said["made_by"]
        assert sorted(said["files"]) == ["shift_curve.png", "shift_curve_summary.csv"]
        from caalib.reference import figures, read_reference

        assert figures(read_reference(bundle)) == [bundle / "shift-curve" / "shift_curve.png"]
    finally:
        shutil.rmtree(results / "shift-curve")


def test_commit_of_a_copy_without_git_comes_from_the_variable(monkeypatch) -> None:
    from caalib import reference

    monkeypatch.setattr(reference, "_git", lambda args, root: None)
    monkeypatch.delenv(reference.COMMIT_VARIABLE, raising=False)
    assert reference.code_version() == {"commit": None, "commit_source": None,
                                        "uncommitted_changes": None}
    monkeypatch.setenv(reference.COMMIT_VARIABLE, "abc123")
    assert reference.code_version() == {"commit": "abc123", "commit_source": "STUDY_COMMIT",
                                        "uncommitted_changes": None}


def test_reference_name_refused_before_training(tmp_path, capsys) -> None:
    results = tmp_path / "results"
    assert main(["claims", "--profile", "tiny", str(results), "--reference", "../up"]) == 1
    assert "reference name '../up'" in capsys.readouterr().err
    assert not results.exists()


def test_reference_bundle_missing_file_is_named(tmp_path) -> None:
    from caalib.reference import ReferenceError, read_reference

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ledger.csv").write_text("claim\n")
    with pytest.raises(ReferenceError, match=r"b/runs.csv: missing"):
        read_reference(tmp_path / "b")


@pytest.mark.parametrize("damage, message", [
    ("ledger", r"ledger.csv: (not a ledger|missing column)"),
    ("machine", r"provenance.json: 'machine' must be an object"),
    ("accuracy", r"runs.csv, line 2: acc_a 'high' is not a number"),
])
def test_damaged_reference_bundle_is_one_clear_error(tiny_ledger, tmp_path, damage,
                                                     message) -> None:
    import json
    import shutil

    from caalib.reference import ReferenceError, read_reference

    results, _ = tiny_ledger
    bundle = tmp_path / "ref"
    shutil.copytree(results / "reference" / "tiny-ref", bundle)
    if damage == "ledger":
        (bundle / "ledger.csv").write_text("claim,verdict\nx,supported\n")
    elif damage == "machine":
        prov = json.loads((bundle / "provenance.json").read_text())
        (bundle / "provenance.json").write_text(json.dumps(dict(prov, machine="gpu")))
    else:
        runs = pd.read_csv(bundle / "runs.csv", dtype=str)
        runs.loc[0, "acc_a"] = "high"
        runs.to_csv(bundle / "runs.csv", index=False)
    with pytest.raises(ReferenceError, match=message):
        read_reference(bundle)


def test_claims_dry_run_lists_and_trains_nothing(tiny_ledger, tmp_path, capsys) -> None:
    results, _ = tiny_ledger
    assert main(["claims", "--profile", "tiny", str(results), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("done     dcase2018-") == 12 and "12 simulation runs" in out
    assert "0 run(s)" in out  # nothing pending: a zero floor
    fresh = tmp_path / "fresh"
    assert main(["claims", "--profile", "tiny", str(fresh), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "12 run(s):" in out and "done " not in out
    assert not fresh.exists()


def test_claims_jobs_auto_on_cpu(tiny_ledger, tiny_dataset_2018, capsys) -> None:
    results, _ = tiny_ledger
    with pytest.warns(UserWarning, match="not the `sim-tiny` simulation set"):
        assert main(["claims", "--profile", "tiny", str(results), "--jobs", "auto", "--data",
                     str(tiny_dataset_2018)]) == 0
    assert "--jobs auto: 1 (nothing to train)" in capsys.readouterr().out


def test_default_simulation_data_must_be_the_profiles(tmp_path) -> None:
    from caalib.ledger import ensure_data

    other = tmp_path / "data"
    other.mkdir()
    (other / "meta.csv").write_text("filename\tscene_label\n")
    with pytest.raises(LedgerError, match=r"data: not empty; it holds no synth.json .* not the "
                       r"`sim-tiny` simulation set"):
        ensure_data(LEDGER_PROFILES["tiny"], other, progress=False)
    with pytest.warns(UserWarning, match="verdicts are about this data"):
        assert ensure_data(LEDGER_PROFILES["tiny"], other, progress=False,
                           explicit=True) == other
