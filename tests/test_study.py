"""`caa study` runs the series in order and stops at the first failing notebook."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from caalib.cli import main
from caalib.study import StudyError, run_study


def _notebook(path: Path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'profile = "demo"\ndata_dir = ""\ndataset = ""\nresults_dir = ""\nfigures_dir = ""'
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture()
def series(tmp_path: Path) -> Path:
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    _notebook(nbdir / "01_ok.ipynb",
              "from pathlib import Path\n"
              "Path(results_dir, 'ran_01.txt').write_text(profile + ' ' + dataset)")
    _notebook(nbdir / "02_broken.ipynb", "x = 1", "raise RuntimeError('boom in cell two')")
    _notebook(nbdir / "03_never.ipynb",
              "from pathlib import Path\nPath(results_dir, 'ran_03.txt').write_text('x')")
    return nbdir


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    (d / "meta.csv").write_text("filename\tscene_label\tidentifier\tsource_label\n")
    (d / "evaluation_setup").mkdir()
    (d / "evaluation_setup" / "fold1_train.csv").write_text("filename\tscene_label\n")
    return d


def test_stops_at_first_failing_notebook_naming_it_and_the_cell(
    series: Path, data_dir: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    with pytest.raises(StudyError) as err:
        run_study(profile="tiny", data_dir=data_dir, dataset="dcase2019",
                  results_dir=results, figures_dir=tmp_path / "figs",
                  notebook_dir=series, progress=False)
    msg = str(err.value)
    assert "notebook 02_broken.ipynb failed" in msg
    assert "cell 3 (`raise RuntimeError('boom in cell two')`)" in msg  # as the reader counts
    assert "RuntimeError: boom in cell two" in msg
    # the first notebook ran with the injected parameters; the third never ran
    assert (results / "ran_01.txt").read_text() == "tiny dcase2019"
    assert (results / "notebooks" / "01_ok.ipynb").is_file()
    assert not (results / "ran_03.txt").exists()


def test_only_selects_notebooks_by_prefix(series: Path, data_dir: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    out = run_study(profile="tiny", data_dir=data_dir, results_dir=results,
                    figures_dir=tmp_path / "figs", notebook_dir=series, only=["01", "03"],
                    progress=False)
    assert [p.name for p in out.executed] == ["01_ok.ipynb", "03_never.ipynb"]
    assert (results / "ran_03.txt").exists()


def test_missing_dataset_is_a_clear_cli_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["study", "--profile", "tiny", "--data", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert "meta.csv not found" in err and "caa synth" in err


def test_unknown_profile_is_rejected(data_dir: Path) -> None:
    with pytest.raises(StudyError, match="unknown profile 'huge'"):
        run_study(profile="huge", data_dir=data_dir, progress=False)


def test_dataset_follows_the_data_layout(data_dir: Path, series: Path, tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="does not match .* dcase2019 layout"):
        run_study(profile="tiny", data_dir=data_dir, dataset="dcase2018",
                  results_dir=tmp_path / "r", notebook_dir=series, progress=False)
    out = run_study(profile="tiny", data_dir=data_dir, results_dir=tmp_path / "r",
                    figures_dir=tmp_path / "f", notebook_dir=series, only=["01"],
                    progress=False)
    assert out.executed and (tmp_path / "r" / "ran_01.txt").read_text() == "tiny dcase2019"
