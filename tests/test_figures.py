"""Every figure writes PNG + PDF + CSV from crafted runs, and the CSV holds the inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import make_run

from caalib.errors import CaaError
from caalib.results.figures import (
    device_spectrum_figure,
    fig5,
    fig6,
    fig7,
    plot_parallel,
    receptive_field_figure,
    training_curves,
)
from caalib.results.runs import RunStoreError, load_runs


def _check(paths: dict[str, Path]) -> pd.DataFrame:
    assert set(paths) == {"png", "pdf", "csv"}
    assert paths["png"].read_bytes()[:4] == b"\x89PNG" and paths["png"].stat().st_size > 5000
    assert paths["pdf"].read_bytes()[:4] == b"%PDF" and paths["pdf"].stat().st_size > 2000
    assert not list(paths["png"].parent.glob(".*"))  # no temporary files left
    return pd.read_csv(paths["csv"])


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("res")
    make_run(root, cond_layer=4, seed=0, acc={"a": 0.75, "b": 0.5, "c": 0.25},
             attention=True, history=True)
    make_run(root, cond_layer=4, seed=1, acc={"a": 0.25, "b": 0.5, "c": 0.75}, history=True)
    make_run(root, topology="pool", pooling="max", cond_layer=2,
             acc={"a": 1.0, "b": 0.75, "c": 0.5})
    return root


def test_fig5(runs_dir: Path, tmp_path: Path) -> None:
    data = _check(fig5(load_runs(runs_dir), tmp_path))
    r = data[(data.topology == "atrous") & (data.layer == 4)].set_index("device")
    assert r.loc["a", "accuracy"] == pytest.approx(50.0) and r.loc["a", "n_seeds"] == 2
    assert r.loc["avg", "paper_avg"] == 67.0
    p = data[(data.topology == "pool") & (data.device == "b")].iloc[0]
    assert p["accuracy"] == pytest.approx(75.0) and p["paper_avg"] == 63.8
    with pytest.raises(CaaError, match="no finished teacher-forcing"):
        fig5(load_runs(runs_dir).iloc[0:0], tmp_path)


def test_fig6(runs_dir: Path, tmp_path: Path) -> None:
    run = next(runs_dir.glob("*atrous*s0"))
    data = _check(fig6(run, tmp_path))
    assert len(data) == 3 * 100
    a = data[(data.device == "a") & (data.true == "bus")].set_index("predicted")
    assert a.loc["bus", "count"] == 3 and a.loc["metro", "count"] == 1
    assert a.loc["bus", "fraction"] == pytest.approx(0.75)
    sums = data.groupby(["device", "true"])["fraction"].sum()
    assert np.allclose(sums, 1.0)


def test_fig7(runs_dir: Path, tmp_path: Path) -> None:
    run = next(runs_dir.glob("*atrous*s0"))
    data = _check(fig7(run, tmp_path))
    assert len(data) == 30  # 3 devices x 10 scenes
    with np.load(run / "attention.npz") as z:
        k = int(np.flatnonzero((z["source"] == "b") & (z["scene_label"] == "park"))[0])
        expected = z["attention"][k, 4]  # park is scene index 4
    row = data[(data.device == "b") & (data.scene == "park")].iloc[0]
    assert row["max"] == pytest.approx(float(expected.max()), rel=1e-6)
    assert (row["frames"], row["mel_bins"]) == expected.shape
    with pytest.raises(RunStoreError, match="attention.npz: missing"):
        fig7(next(runs_dir.glob("*pool-max*")), tmp_path)


def test_receptive_field_figure(tmp_path: Path) -> None:
    rf = pd.DataFrame({"topology": ["pool"] * 2 + ["atrous"] * 2, "block": [1, 2, 1, 2],
                       "rf_time": [5, 14, 5, 13], "rf_freq": [5, 14, 5, 13]})
    logmel = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    data = _check(receptive_field_figure(tmp_path, rf, logmel))
    pd.testing.assert_frame_equal(data, rf)
    with pytest.raises(CaaError, match="rf_table needs columns"):
        receptive_field_figure(tmp_path, rf.drop(columns="rf_freq"))


def test_receptive_field_legend_legible(tmp_path: Path, monkeypatch) -> None:
    import caalib.results.figures as figures_mod

    seen = []
    monkeypatch.setattr(figures_mod, "save_figure",
                        lambda fig, *a, **k: seen.append(fig) or {})
    rf = pd.DataFrame({"topology": ["pool"] * 4, "block": [1, 2, 3, 4],
                       "rf_time": [5, 14, 32, 68], "rf_freq": [5, 14, 32, 68]})
    receptive_field_figure(tmp_path, rf)
    (fig,) = seen
    legends = [ax.get_legend() for ax in fig.axes]
    assert legends and all(lg is not None for lg in legends)
    sizes = [t.get_fontsize() for lg in legends for t in lg.get_texts()]
    assert len(sizes) == 4 and min(sizes) >= 8  # points, at the size it is saved at


def test_training_curves(runs_dir: Path, tmp_path: Path) -> None:
    dirs = sorted(runs_dir.glob("*atrous*"))
    data = _check(training_curves(dirs, tmp_path))
    assert len(data) == 10 and set(data["run"]) == {d.name for d in dirs}
    with pytest.raises(RunStoreError, match="history.csv: missing"):
        training_curves([next(runs_dir.glob("*pool-max*"))], tmp_path)


def test_device_spectrum_figure_and_parallel_picture(tmp_path: Path) -> None:
    spectrum = pd.DataFrame({"a": np.linspace(0, 1, 64), "b": np.linspace(0, 1, 64) - 0.5,
                             "c": np.linspace(0, 1, 64) + 0.25})
    spectrum.index.name = "mel_bin"
    data = _check(device_spectrum_figure(tmp_path, spectrum))
    assert list(data.columns) == ["mel_bin", "a", "b", "c"]
    np.testing.assert_allclose(data[["a", "b", "c"]], spectrum)
    rng = np.random.default_rng(0)
    rec = {"device": ["a", "b", "c"], "filename": [f"audio/bus-x-0-0-{d}.wav" for d in "abc"],
           "audio": [rng.standard_normal(441) for _ in range(3)], "sr": 44100,
           "logmel": [rng.standard_normal((20, 64)) for _ in range(3)]}
    fig = plot_parallel(rec)
    assert len(fig.axes) == 7  # 2 x 3 panels and the shared colour bar
    assert fig.axes[1].get_title() == "device B: bus-x-0-0-b.wav"


def _captured(monkeypatch) -> list:
    """Figures handed to save_figure, kept open so their layout can be measured."""
    import caalib.results.figures as figures_mod

    seen: list = []
    monkeypatch.setattr(figures_mod, "save_figure", lambda fig, *a, **k: seen.append(fig) or {})
    return seen


def test_fig6_matrices_equal_in_size(runs_dir: Path, tmp_path: Path, monkeypatch) -> None:
    seen = _captured(monkeypatch)
    fig6(next(runs_dir.glob("*atrous*s0")), tmp_path)
    (fig,) = seen
    fig.canvas.draw()  # square cells and the layout are settled at draw time
    matrices = [ax for ax in fig.axes if ax.get_title().startswith("Device")]
    assert [ax.get_title() for ax in matrices] == ["Device A", "Device B", "Device C"]
    sizes = [(ax.get_position().width, ax.get_position().height) for ax in matrices]
    np.testing.assert_allclose(sizes, [sizes[0]] * 3, rtol=1e-6)  # the colour bar takes none
    (cbar,) = [ax for ax in fig.axes if ax not in matrices]
    assert cbar.get_position().x0 > max(ax.get_position().x1 for ax in matrices)


def test_fig5_sized_to_the_models_present(runs_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import matplotlib.pyplot as plt

    from caalib.results.figures import FIG5_GROUP_WIDTH_IN, FIG5_MIN_WIDTH_IN

    seen = _captured(monkeypatch)
    runs = load_runs(runs_dir)  # atrous+att at L4 (two seeds), pool+max at L2: one group each
    fig5(runs, tmp_path)
    many = pd.concat([runs] + [runs.assign(cond_layer=layer, pooling=pool)
                               for layer in (1, 2, 3, 4) for pool in ("att", "max", "avg")])
    fig5(many, tmp_path)
    small, large = seen
    assert small.get_figwidth() == pytest.approx(FIG5_MIN_WIDTH_IN)
    # 12 groups of bars (3 poolings x 4 layers) in the fullest panel against 1
    assert large.get_figwidth() == pytest.approx(1.5 + FIG5_GROUP_WIDTH_IN * 12)
    assert large.get_figwidth() > 1.9 * small.get_figwidth()
    for fig in seen:
        (legend,) = fig.legends
        assert min(t.get_fontsize() for t in legend.get_texts()) >= 8  # points, as saved
        panels = [ax for ax in fig.axes if ax.get_title()]
        assert len({ax.get_xlim() for ax in panels}) == 1  # the same bar width in each panel
        plt.close(fig)
