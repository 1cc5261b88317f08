"""'source' is the recording device, 'accelerator' the torch device (issue 13).

The old spellings still work for one release where they are a public entry point (the
``--device`` options of ``caa train``, ``caa features`` and ``caa compare``, the
``device=`` keywords of ``CAANet.forward`` and ``extract_features``) and warn; on disk
the old names are refused with a one-line message naming the rename.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from helpers import craft_attention_run, make_run

from caalib import rundir
from caalib.cli import build_parser, main
from caalib.errors import ConfigError, FeatureError
from caalib.training import TrainConfig


# ---------------------------------------------------------------------- caa train
def _train_config(monkeypatch, capsys, *flags: str) -> tuple[TrainConfig, str]:
    """The TrainConfig ``caa train`` builds from ``flags`` (training itself stubbed)."""
    import caalib.training as training

    seen: list[TrainConfig] = []

    def fake_train(config, out, **kwargs):
        seen.append(config)
        return {"accuracy": {"b": 0.5, "avg": 0.5}, "iterations": 1, "wall_time_s": 0.0}

    monkeypatch.setattr(training, "train", fake_train)
    rc = main(["train", "--data", "no-such-dir", "--topology", "pool", "--pooling", "max",
               "--strategy", "single", "--profile", "tiny", "--accelerator", "cpu",
               "--out", "unused", *flags])
    assert rc == 0 and len(seen) == 1
    return seen[0], capsys.readouterr().err


def test_caa_train_device_is_a_deprecated_alias_of_source(monkeypatch, capsys) -> None:
    new, err_new = _train_config(monkeypatch, capsys, "--source", "b")
    old, err_old = _train_config(monkeypatch, capsys, "--device", "b")
    assert new == old and new.train_source == "b" and new.accelerator == "cpu"
    assert new.run_name == old.run_name == "dcase2018-pool-max-single-b-tiny-s0"
    assert "deprecated" not in err_new
    assert "caa train: warning: --device is deprecated, use --source" in err_old.splitlines()


def test_caa_train_device_alias_checks_its_choices(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--data", "d", "--topology", "pool",
                                   "--pooling", "max", "--strategy", "single",
                                   "--profile", "tiny", "--out", "o", "--device", "cuda"])
    assert "invalid choice: 'cuda'" in capsys.readouterr().err


# ---------------------------------------------------------------------- caa features
def test_caa_features_device_is_a_deprecated_alias_of_accelerator(tmp_path, monkeypatch,
                                                                  capsys) -> None:
    import caalib.features as features

    out = tmp_path / "f.h5"
    with h5py.File(out, "w") as h5:
        h5["feature"] = np.zeros((2, 3, 4), np.float32)
    seen: list[dict] = []

    def fake_extract(data_dir, path, **kwargs):
        seen.append(kwargs)
        return out

    monkeypatch.setattr(features, "extract_features", fake_extract)
    assert main(["features", str(tmp_path), "--out", str(out), "--accelerator", "cpu"]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert main(["features", str(tmp_path), "--out", str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "caa features: warning: --device is deprecated, use --accelerator" in err
    assert [s["accelerator"] for s in seen] == ["cpu", "cpu"]
    assert all("device" not in s for s in seen)


def test_extract_features_device_keyword_warns(tmp_path) -> None:
    with pytest.warns(DeprecationWarning, match=r"use extract_features\(accelerator=...\)"):
        with pytest.raises(FeatureError, match="does not exist"):
            from caalib.features import extract_features

            extract_features(tmp_path / "missing", tmp_path / "f.h5", device="cpu",
                             progress=False)


# ---------------------------------------------------------------------- caa compare
def test_caa_compare_device_is_a_deprecated_alias_of_source(capsys) -> None:
    args = build_parser().parse_args(["compare", "r1", "r2", "--device", "b"])
    assert args.source == "b"
    assert "caa compare: warning: --device is deprecated, use --source" in (
        capsys.readouterr().err)
    assert build_parser().parse_args(["compare", "r1", "r2"]).source is None


# ---------------------------------------------------------------------- on disk
@pytest.mark.parametrize("old, new", [("train_device", "train_source"),
                                      ("device", "accelerator")])
def test_config_json_with_an_old_field_name_is_refused(tmp_path, old, new) -> None:
    data = TrainConfig.from_profile("tiny", strategy="single", train_source="b",
                                    accelerator="cpu").to_dict()
    data[old] = data.pop(new)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=f"field '{old}' was renamed '{new}'") as info:
        TrainConfig.load(path)
    assert "\n" not in str(info.value) and "retrain" in str(info.value)


def test_run_store_refuses_a_config_with_train_device(tmp_path) -> None:
    run = make_run(tmp_path, strategy="single", cond_layer=None, train_source="b",
                   acc={"b": 0.5})
    cfg = json.loads((run / "config.json").read_text())
    cfg["train_device"] = cfg.pop("train_source")
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(rundir.RunStoreError,
                       match="field 'train_device' was renamed 'train_source'") as info:
        rundir.read_config_dict(run)
    assert "\n" not in str(info.value)


def test_predictions_with_a_device_column_are_refused(tmp_path) -> None:
    run = make_run(tmp_path)
    path = run / "predictions.csv"
    pd.read_csv(path).rename(columns={"source": "device"}).to_csv(path, index=False)
    with pytest.raises(rundir.RunStoreError,
                       match=r"predictions\.csv: column 'device' was renamed 'source' "
                             r"\(.*retrain the run\)") as info:
        rundir.read_predictions(run)
    assert "\n" not in str(info.value)


def test_attention_with_a_device_array_is_refused(tmp_path) -> None:
    run = craft_attention_run(tmp_path, "dcase2018-atrous-att-multi_task-L4-tiny-s0")
    data = dict(np.load(run / "attention.npz"))
    data["device"] = data.pop("source")
    np.savez(run / "attention.npz", **data)
    with pytest.raises(rundir.RunStoreError,
                       match=r"attention\.npz: array 'device' was renamed 'source'") as info:
        rundir.read_attention(run)
    assert "\n" not in str(info.value)


def test_the_written_columns_say_source() -> None:
    assert "source" in rundir.LABEL_COLUMNS and "device" not in rundir.LABEL_COLUMNS
    assert "source" in rundir.ATTENTION_ARRAYS and "device" not in rundir.ATTENTION_ARRAYS
    assert "train_source" in rundir.CONFIG_FIELDS
    assert "accelerator" in rundir.EXECUTION_FIELDS and "device" not in rundir.EXECUTION_FIELDS


def test_run_name_still_uses_the_letter_only(tmp_path: Path) -> None:
    cfg = TrainConfig.from_profile("tiny", strategy="single", train_source="c",
                                   accelerator="cpu")
    assert cfg.run_name == "dcase2018-atrous-att-single-c-tiny-s0"
    assert rundir.expected_run_name(cfg.to_dict()) == cfg.run_name
