"""The shift curve's outputs are written all or nothing.

Training is replaced by a stand-in sweep (the curve's tables and figure are what is under
test here; tests/test_shift.py trains the tiny curve for real), so each test takes about
a second.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from caalib import shift_curve
from caalib.errors import CaaError


def _fake_sweep(accuracy: float, calls: list[str] | None = None):
    """A run_sweep stand-in: one run directory per config and ``accuracy`` everywhere."""

    def run_sweep(configs, results_dir, data_dir, progress=True, jobs=1):
        if calls is not None:
            calls.append(str(results_dir))
        rows = []
        for c in configs:
            run = Path(results_dir) / "runs" / c.run_name
            run.mkdir(parents=True, exist_ok=True)
            (run / "metrics.json").write_text("{}")
            rows.append({"run_name": c.run_name, "topology": c.topology,
                         "pooling": c.pooling, "strategy": c.strategy,
                         "train_source": c.train_source, "seed": c.seed, "status": "done",
                         "acc_a": accuracy, "acc_b": accuracy, "acc_c": accuracy})
        return pd.DataFrame(rows)

    return run_sweep


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Datasets are not synthesised; returns a setter for the stand-in sweep."""
    monkeypatch.setattr(shift_curve, "curve_dataset",
                        lambda root, prof, shift, progress=True: tmp_path / "data")

    def use(accuracy: float, calls: list[str] | None = None) -> None:
        monkeypatch.setattr("caalib.training.sweep.run_sweep", _fake_sweep(accuracy, calls))

    return use


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _curve(out: Path, tmp_path: Path) -> dict[str, Path]:
    return shift_curve.run_shift_curve("tiny", out, tmp_path / "data", progress=False)


def test_failed_figure_leaves_previous_outputs_untouched(
        no_training, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out = tmp_path / "curve"
    no_training(0.5)
    _curve(out, tmp_path)
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    siblings = sorted(p.name for p in tmp_path.iterdir())
    assert "shift_curve_seeds.csv" in before and "shift_curve.png" in before
    assert set(pd.read_csv(out / "shift_curve_seeds.csv")["accuracy"]) == {0.5}

    def broken_figure(summary, out_dir, *, name="shift_curve"):
        (Path(out_dir) / f"{name}.png").write_bytes(b"half a png")
        raise RuntimeError("drawing failed")

    no_training(0.75)  # new numbers: any file written to the curve directory would differ
    monkeypatch.setattr("caalib.results.shift_figure.shift_curve_figure", broken_figure)
    with pytest.raises(RuntimeError, match="drawing failed"):
        _curve(out, tmp_path)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == siblings  # no staging left over


def test_success_replaces_outputs_and_keeps_runs_and_other_files(
        no_training, tmp_path: Path) -> None:
    out = tmp_path / "curve"
    no_training(0.5)
    _curve(out, tmp_path)
    (out / "notes.txt").write_text("mine")
    (out / "shift_curve_old.csv").write_text("a file the curve does not write")
    no_training(0.75)
    paths = _curve(out, tmp_path)
    assert set(pd.read_csv(out / "shift_curve_seeds.csv")["accuracy"]) == {0.75}
    assert set(pd.read_csv(out / "shift_curve.csv")["mean"]) == {0.75}
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "shift_curve_old.csv").is_file()
    # tiny: shifts 0 and 2, six runs each, every run directory carried over
    assert len(list(out.glob("shift-*/runs/*/metrics.json"))) == 12
    assert all(p.is_file() and p.parent == out for p in paths.values())
    assert {p.name for p in paths.values()} == {
        "shift_curve_seeds.csv", "shift_curve_summary.csv", "shift_curve.png",
        "shift_curve.pdf", "shift_curve.csv"}


def test_foreign_directory_or_data_root_is_refused_before_any_training(
        no_training, tmp_path: Path) -> None:
    out = tmp_path / "curve"
    (out / "my-data").mkdir(parents=True)
    calls: list[str] = []
    no_training(0.5, calls)
    with pytest.raises(CaaError, match="my-data"):
        _curve(out, tmp_path)
    assert calls == []
    assert sorted(p.name for p in out.iterdir()) == ["my-data"]
    # nor may the datasets go inside the directory the outputs replace
    with pytest.raises(CaaError, match="data root"):
        shift_curve.run_shift_curve("tiny", tmp_path / "other", tmp_path / "other" / "data",
                                    progress=False)
    assert calls == []
