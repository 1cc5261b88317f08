"""``caa`` writes every table and figure a notebook writes, and the very same files.

Each test runs a command on a crafted results directory (or the tiny dataset) and
calls the functions the notebook calls, in the notebook's way, into a second
directory; the two must hold the same files with the same contents (PDFs, which carry
their creation time, only by name). Which run each figure comes from is checked too:
the CLI and notebook 06 share one rule (caalib.results.selection).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers import make_run

from caalib.cli import main
from caalib.constants import DEVICES
from caalib.errors import CaaError
from caalib.results import load_runs
from caalib.results.figures import (
    device_spectrum_figure,
    fig5,
    fig6,
    fig7,
    receptive_field_figure,
    training_curves,
    write_figures,
)
from caalib.results.paper import paper_accuracies
from caalib.results.selection import (
    choose_dataset,
    curve_runs,
    describe_run,
    figure_runs,
    headline_run,
)
from caalib.results.tables import write_tables
from caalib.stats import SIGNIFICANCE_FILES, significance_tables, write_significance


def _same_files(cli: Path, notebook: Path) -> list[str]:
    """The two directories hold the same file names and, but for PDFs, the same bytes."""
    a = sorted(str(p.relative_to(cli)) for p in cli.rglob("*") if p.is_file())
    b = sorted(str(p.relative_to(notebook)) for p in notebook.rglob("*") if p.is_file())
    assert a == b
    for rel in a:
        if not rel.endswith(".pdf"):
            assert (cli / rel).read_bytes() == (notebook / rel).read_bytes(), rel
    return a


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo plan's shape: atrous + att under every strategy, a Table I slice, a
    pooled model, a second profile and a DCASE 2019 run."""
    res = tmp_path_factory.mktemp("agree") / "results"
    root = res / "runs"
    make_run(root, strategy="multi_task", cond_layer=4, acc={"a": 0.75, "b": 0.5, "c": 0.5},
             attention=True, history=True)
    make_run(root, strategy="multi_task", cond_layer=2, acc={"a": 1.0, "b": 1.0, "c": 1.0},
             attention=True, history=True)  # better, but not the paper's layer
    make_run(root, strategy="joint", cond_layer=None, acc={"a": 0.75, "b": 0.25, "c": 0.5},
             attention=True, history=True)
    for layer in (3, 4):
        make_run(root, strategy="teacher_forcing", cond_layer=layer, history=True,
                 acc={"a": 0.5, "b": 0.5, "c": 0.25}, attention=True)
    for dev, a in zip(DEVICES, (0.75, 0.5, 0.25), strict=True):
        make_run(root, strategy="single", cond_layer=None, train_source=dev, acc={dev: a},
                 history=True)
    make_run(root, topology="pool", pooling="max", strategy="teacher_forcing", cond_layer=2,
             acc={"a": 1.0, "b": 0.75, "c": 0.75}, history=True)
    make_run(root, strategy="multi_task", profile="demo", acc={"a": 1.0, "b": 1.0, "c": 1.0})
    make_run(root, dataset="dcase2019", strategy="joint", cond_layer=None)
    return res


def _notebook_runs(results: Path, profile: str, dataset: str) -> pd.DataFrame:
    runs = load_runs(results)
    return runs[(runs["profile"] == profile) & (runs["dataset"] == dataset)]


# ---------------------------------------------------------------- notebook 04 / 05
def test_caa_tables_and_significance_write_what_notebooks_04_and_05_write(
        results: Path, tmp_path: Path, capsys) -> None:
    cli, nb = tmp_path / "cli", tmp_path / "nb"
    assert main(["tables", str(results), "--out", str(cli), "--profile", "tiny"]) == 0
    assert main(["significance", str(results), "--out", str(cli), "--profile", "tiny"]) == 0
    assert "wrote 3 files" in capsys.readouterr().out
    # notebook 04, then notebook 05
    write_tables(results, nb, profile="tiny")
    written, sig = write_significance(results, nb, profile="tiny", dataset="dcase2018")
    names = _same_files(cli, nb)
    assert {"table1.csv", "table2.md", *SIGNIFICANCE_FILES.values()} <= set(names)
    assert any(n.startswith("runs/") for n in names)  # the per-run tables were kept
    assert [p.name for p in written] == list(SIGNIFICANCE_FILES.values())
    # The files hold the tables of the notebook-facing function, on the notebook's runs.
    again = significance_tables(_notebook_runs(results, "tiny", "dcase2018"), "dcase2018",
                                n_resamples=200)
    for key, table in again.items():
        assert (cli / SIGNIFICANCE_FILES[key]).read_text() == table.to_csv(index=False)
        pd.testing.assert_frame_equal(sig[key], table)
    ours = sig["ours"]
    assert {"multi_task"} == set(ours["strategy1"]) - {"teacher_forcing"}
    assert set(ours["run1"][ours["strategy1"] == "multi_task"]) == {
        "dcase2018-atrous-att-multi_task-L4-tiny-s0"}  # the paper's layer, not the best one
    assert len(sig["bootstrap"]) == 9  # every tiny dcase2018 run
    # Rewriting the tables keeps the significance files, and the reverse.
    before = {n: (cli / n).read_bytes() for n in SIGNIFICANCE_FILES.values()}
    assert main(["tables", str(results), "--out", str(cli), "--profile", "tiny"]) == 0
    assert {n: (cli / n).read_bytes() for n in SIGNIFICANCE_FILES.values()} == before


def test_caa_significance_rules(results: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "t"
    with pytest.raises(CaaError, match=r"several profiles \['demo', 'tiny'\]"):
        write_significance(results, out)
    assert main(["significance", str(results), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("caa significance: error: ") and err.count("\n") == 1
    assert not out.exists()
    (out / "mine").mkdir(parents=True)  # a directory no command of ours wrote
    with pytest.raises(CaaError, match="holds directory mine"):
        write_significance(results, out, profile="tiny")
    _, sig = write_significance(results, tmp_path / "t19", profile="tiny",
                                dataset="dcase2019", n_resamples=20)
    assert sig["ours"].empty and list(sig["bootstrap"]["run"]) == [
        "dcase2019-atrous-att-joint-tiny-s0"]


# ---------------------------------------------------------------- notebooks 03 / 06
def test_caa_figures_writes_what_notebooks_03_and_06_write(results: Path,
                                                           tmp_path: Path, capsys) -> None:
    cli, nb = tmp_path / "cli", tmp_path / "nb"
    assert main(["figures", str(results), "--out", str(cli), "--profile", "tiny"]) == 0
    out = capsys.readouterr().out
    assert ("Fig. 6 from dcase2018-atrous-att-multi_task-L4-tiny-s0: the paper's CAA-Net"
            in out)
    # notebook 03's training curves, then notebook 06
    runs = load_runs(results)
    runs = runs[runs["profile"] == "tiny"]
    training_curves(curve_runs(runs, "dcase2018"), nb)
    runs = _notebook_runs(results, "tiny", "dcase2018")
    fig5(runs, nb, dataset="dcase2018")
    chosen = figure_runs(runs, "dcase2018")
    fig6(chosen.fig6.path, nb)
    fig7(chosen.fig7.path, nb)
    names = _same_files(cli, nb)
    assert {n.split(".")[0] for n in names} == {"fig5-dcase2018", "fig6", "fig7",
                                                "training_curves"}  # no 2019 teacher forcing
    curves = pd.read_csv(cli / "training_curves.csv")
    assert set(curves["run"]) == {p.name for p in curve_runs(runs, "dcase2018")}
    assert not curves["run"].str.contains("pool-max").any()  # the CAA-Net topology only
    assert len(set(curves["run"])) == 8


def test_run_selection_and_its_fallbacks(results: Path, tmp_path: Path) -> None:
    runs = load_runs(results)
    tiny = runs[runs["profile"] == "tiny"]
    assert choose_dataset(tiny) == "dcase2018"
    assert choose_dataset(tiny[tiny["dataset"] == "dcase2019"]) == "dcase2019"
    assert choose_dataset(tiny.iloc[:0]) == "dcase2018"
    caa = headline_run(tiny)
    assert caa.name == "dcase2018-atrous-att-multi_task-L4-tiny-s0"
    # Not at the paper's layer: the lowest layer present, said so.
    other = headline_run(tiny[tiny["cond_layer"] != 4])
    assert other.row["cond_layer"] == 2 and "no run at the paper's layer L4" in other.reason
    # No multi-task run: the best run by Avg (the pooled teacher-forcing one), said so.
    best = headline_run(tiny[tiny["strategy"] != "multi_task"])
    assert best.row["topology"] == "pool" and "best run by Avg" in best.reason
    # Fig. 7 needs attention maps: the pooled run has none, so the best run with them.
    chosen = figure_runs(tiny[tiny["strategy"] != "multi_task"])
    assert chosen.fig6.row["topology"] == "pool"
    assert chosen.fig7 is not None and chosen.fig7.name == (
        "dcase2018-atrous-att-joint-tiny-s0") and "no attention maps" in chosen.fig7.reason
    given = figure_runs(tiny, run=chosen.fig6.path)
    assert given.fig6.name == chosen.fig6.name and given.fig6.reason == "the run asked for"
    assert figure_runs(tiny[tiny["strategy"] == "single"]).fig7 is None
    # The line notebook 06 shows: ours beside the paper's numbers from results/paper/.
    line = describe_run(caa)
    assert "A 75.0 %, B 50.0 %, C 50.0 %, Avg 58.3 %" in line
    assert "(paper, Table II at L4: A 72.4 %, B 68.9 %, C 62.8 %, Avg 68.0 %)" in line
    assert paper_accuracies("dcase2018", "atrous", "att", "multi_task") == {
        "a": 72.4, "b": 68.9, "c": 62.8, "avg": 68.0}
    assert describe_run(None, "Fig. 7").startswith("*Fig. 7: no run")
    with pytest.raises(CaaError, match="no finished run on dcase2019"):
        write_figures(results, tmp_path / "f", profile="demo", dataset="dcase2019")


# ---------------------------------------------------------------- notebooks 01 / 02
def test_caa_device_spectrum_and_receptive_field_write_what_notebooks_01_and_02_write(
        tiny_dataset_2018: Path, tiny_features_2018: Path, tmp_path: Path, capsys) -> None:
    from caalib.features import default_feature_path, extract_features, load_features
    from caalib.receptive_field import receptive_field_table
    from caalib.results.spectra import example_logmel, parallel_device_spectrum

    cli, nb = tmp_path / "cli", tmp_path / "nb"
    assert main(["device-spectrum", str(tiny_dataset_2018), "--out", str(cli), "--quiet"]) == 0
    assert main(["receptive-field", "--data", str(tiny_dataset_2018), "--out", str(cli)]) == 0
    assert "wrote 3 files" in capsys.readouterr().out
    # notebook 01
    features = load_features(extract_features(tiny_dataset_2018,
                                              default_feature_path(tiny_dataset_2018)))
    spectrum = parallel_device_spectrum(features.feature, features.meta)
    device_spectrum_figure(nb, spectrum)
    # notebook 02
    rf = receptive_field_table(measure=True)
    _clip, logmel = example_logmel(tiny_dataset_2018)
    receptive_field_figure(nb, rf, logmel)
    names = _same_files(cli, nb)
    assert {n.split(".")[0] for n in names} == {"device_spectrum", "receptive_field"}
    back = pd.read_csv(cli / "device_spectrum.csv")
    assert list(back.columns) == ["mel_bin", *DEVICES] and len(back) == 64
