"""The benchmark harness: record shape and consistency on CPU, settings, numerics check.

Speed is never asserted (the CI machine is shared); the figures must be present,
positive and consistent with one another.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from caalib import bench
from caalib.bench import BenchSettings
from caalib.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
MODES = ("released", "default", "fast")


@pytest.fixture(scope="module")
def record() -> dict:
    torch.manual_seed(0)
    s = BenchSettings.quick(steps=2, warmup=1, frames=32, feature_clips=2,
                            feature_seconds=2.0, matmul_size=256)
    return bench.run_bench(s, progress=False)


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        math.isfinite(value) and value > 0


def test_record_has_every_figure(record: dict) -> None:
    env = record["environment"]
    assert env["device_type"] == "cpu"
    for key in ("device_name", "torch", "python", "torch_threads"):
        assert env[key], key
    assert env["torch_threads"] <= 2  # --cpu-quick never takes the whole machine

    model = record["model"]
    assert model["build_args"]["topology"] == "atrous"
    assert _positive(model["params"])
    assert model["training_flops_per_sample"] == pytest.approx(
        3 * model["forward_flops_per_sample"])
    assert model["training_flops_per_step"] == pytest.approx(
        8 * model["training_flops_per_sample"])
    assert "3 x forward" in model["flop_convention"]

    assert record["matmul"]["reference"] == "fp32"
    assert _positive(record["matmul"]["reference_tflops"])

    assert tuple(record["modes"]) == MODES
    for name, m in record["modes"].items():
        assert "error" not in m, m.get("error")
        for key in ("steps_per_s", "samples_per_s", "achieved_tflops", "step_ms_mean",
                    "step_ms_median", "peak_memory_bytes", "eval_clips_per_s",
                    "fraction_of_matmul", "wall_s"):
            assert _positive(m[key]), (name, key, m[key])
        assert m["warmup_s"] >= 0 and m["loss_finite"] is True
        assert m["samples_per_s"] == pytest.approx(8 * m["steps_per_s"])
        assert m["achieved_tflops"] == pytest.approx(
            m["samples_per_s"] * model["training_flops_per_sample"] / 1e12)
        assert m["fraction_of_matmul"] == pytest.approx(
            m["achieved_tflops"] / record["matmul"]["reference_tflops"])
        assert m["speedup_vs_released"] == pytest.approx(
            m["steps_per_s"] / record["modes"]["released"]["steps_per_s"])
        imp = m["implied"]
        assert imp["run_train_hours"] == pytest.approx(15_000 / m["steps_per_s"] / 3600)
        assert imp["table2_train_hours"] == pytest.approx(84 * imp["run_train_hours"])
        assert imp["run_total_hours_estimate"] > imp["run_train_hours"]
    assert record["modes"]["released"]["speedup_vs_released"] == pytest.approx(1.0)
    assert record["modes"]["fast"]["step_source"] == "caalib.training.Engine"
    assert record["modes"]["released"]["recipe"]["resident"] is False
    assert record["modes"]["released"]["backend_flags"]["cudnn_tf32"] is False

    targets = record["targets"]
    assert targets["meaningful"] is False and targets["mode"] == "fast"
    assert set(targets["met"]) == {"fraction_of_matmul", "peak_memory",
                                   "speedup_vs_released", "speedup_vs_default"}

    feats = record["features"]
    assert _positive(feats["transform_clips_per_s"]) and _positive(feats["extract_clips_per_s"])


def test_record_round_trips_as_json(record: dict, tmp_path: Path) -> None:
    path = bench.write_record(record, tmp_path / "sub" / "quick.json")
    back = json.loads(path.read_text())
    assert back["modes"]["fast"]["steps_per_s"] == pytest.approx(
        record["modes"]["fast"]["steps_per_s"])
    assert not list(path.parent.glob(".*"))  # no temporary left behind
    text = bench.format_report(record)
    for name in MODES:
        assert name in text
    assert "TFLOP/s" in text and "Table II" in text


def test_flags_are_restored_after_the_run(record: dict) -> None:
    assert torch.backends.cudnn.benchmark is False
    assert torch.backends.cudnn.allow_tf32 is True  # PyTorch's default, untouched


def test_numerics_check_runs_the_engines_check_for_bench_settings() -> None:
    """The check itself is tested in test_numerics.py; the bench runs it for its model."""
    from caalib.training import numerics

    report = bench.check_fast_numerics(steps=2)
    assert isinstance(report, numerics.NumericsReport)
    assert report.device == "cpu" and "bf16" in report.candidate and report.steps == 2
    assert bench.compare_runs is numerics.compare_runs


@pytest.mark.parametrize("kwargs, field", [
    (dict(modes=("fast", "turbo")), "modes"),
    (dict(modes=()), "modes"),
    (dict(modes=("fast", "fast")), "modes"),
    (dict(steps=0), "steps"),
    (dict(warmup=-1), "warmup"),
    (dict(width=0), "width"),
    (dict(accelerator="tpu"), "accelerator"),
    (dict(compile_mode="fastest"), "compile_mode"),
    (dict(pooling="roi", topology="pool"), "pooling"),
])
def test_bad_settings_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        BenchSettings(**kwargs)


def test_model_fields_are_one_model_spec() -> None:
    from caalib.spec import ModelSpec

    s = BenchSettings(strategy="teacher_forcing", cond_layer=2, attention="paper")
    assert s.model_spec == ModelSpec("atrous", "att", "teacher_forcing", 2, "paper")
    assert "model_spec" not in s.to_dict()
    # the study's one rule: an unconditioned strategy takes no layer, never ignored
    with pytest.raises(ConfigError, match="cond_layer"):
        BenchSettings(strategy="joint")
    with pytest.raises(ConfigError, match="cond_layer"):
        BenchSettings(strategy="multi_task", cond_layer=None)
    assert BenchSettings(strategy="joint", cond_layer=None).model_spec.conditioned is False


@pytest.mark.parametrize("clips", [2, 3, 4, 5, 8, 13, 32, 64])
def test_feature_fixture_is_a_synth_dataset_of_that_size(clips: int) -> None:
    from caalib.synth.layout import plan_clips

    plan = plan_clips(bench.feature_profile(clips, 10.0), "dcase2018", 0)
    assert len(plan) == clips
    splits = {c.split for c in plan}
    assert splits == {"train", "evaluate"}
    train = {c.identifier for c in plan if c.split == "train"}
    assert not train & {c.identifier for c in plan if c.split == "evaluate"}
    a = sum(c.device == "a" for c in plan)
    assert clips // 2 <= a <= clips  # about half device A (48 kHz stereo), half B/C


def test_bench_is_a_layer_above_the_engine() -> None:
    """No import of the command modules (no cycle), no hasattr guards, no private names
    of other modules."""
    import ast

    package = ROOT / "caalib" / "bench"
    bad = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.ImportFrom):
                if "commands" in (node.module or "") or any(
                        a.name.startswith("_") for a in node.names):
                    bad.append(where)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "hasattr":
                bad.append(where)
            elif (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                  and not node.attr.startswith("__")
                  and getattr(node.value, "id", None) != "self"):
                bad.append(where)
    assert not bad, bad


def test_cli_options_map_to_settings() -> None:
    from caalib.cli import build_parser
    from caalib.commands.bench import run_bench_command, settings_from_args

    parser = build_parser()
    args = parser.parse_args(["bench", "--cpu-quick", "--modes", "released,fast", "--compile"])
    assert args.func is run_bench_command
    s = settings_from_args(args)
    assert s.cpu_quick and s.accelerator == "cpu" and s.width == pytest.approx(1 / 16)
    assert s.modes == ("released", "fast", "compiled") and s.cond_layer == 4

    s = settings_from_args(parser.parse_args(
        ["bench", "--strategy", "joint", "--topology", "pool", "--pooling", "max",
         "--batch", "4", "--no-features"]))
    assert s.cond_layer is None and s.batch == 4 and s.features is False and s.width == 1.0
    assert s.default_name("cpu") == "pool-max-joint-w1-b4-320x64-cpu"

    with pytest.raises(ConfigError, match="cond-layer"):
        settings_from_args(parser.parse_args(["bench", "--strategy", "joint",
                                              "--cond-layer", "2"]))
    with pytest.raises(ConfigError, match="cpu-quick"):
        settings_from_args(parser.parse_args(["bench", "--cpu-quick", "--accelerator", "cuda"]))


def test_cuda_without_a_gpu_is_a_config_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="cuda"):
        bench.resolve_accelerator("cuda")


def test_feature_timing_is_skipped_without_audio_libraries(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "soundfile", None)
    out = bench.bench_features(torch.device("cpu"), clips=1, seconds=1.0)
    assert "skipped" in out and "soundfile" in out["skipped"]


def test_import_pulls_no_audio_library() -> None:
    code = ("import sys\n"
            "for m in ('librosa', 'soundfile', 'soxr'): sys.modules[m] = None\n"
            "import caalib.bench, caalib.commands.bench\n"
            "s = caalib.bench.BenchSettings.quick()\n"
            "print('ok', s.width)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")
