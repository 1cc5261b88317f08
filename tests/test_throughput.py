"""The measured-throughput estimate of `caa sweep --dry-run --measure` and `--jobs auto`."""

from __future__ import annotations

import pytest

from caalib.training import TrainConfig
from caalib.training import throughput as T
from caalib.training.estimate import evaluations
from caalib.training.sweep import enumerate_runs

GIB = 2**30


def rate(step_s: float, peak_gib: float = 0.0, flops: float = 0.0,
         device: str = "cuda") -> T.ModelRate:
    return T.ModelRate(step_s=step_s, eval_clips_per_s=100.0, peak_bytes=int(peak_gib * GIB),
                       flops_per_step=flops, device=device)


def test_jobs_on_a_gpu_are_limited_by_memory_and_by_the_busiest_model():
    # 4 GiB per run in 80 % of 40 GiB free: 8 fit; each uses 30 % of a 100 TFLOP/s rate:
    # ceil(1 / 0.3) = 4 keep it busy
    light = rate(0.1, peak_gib=4, flops=3e12)
    assert light.utilisation(100e12) == pytest.approx(0.3)
    assert T.choose_jobs([light], free_bytes=40 * GIB, matmul_rate=100e12) == 4
    # memory decides: 12 GiB per run, 0.8 * 40 / 12 = 2.67 -> 2
    big = rate(0.1, peak_gib=12, flops=1e12)
    assert T.choose_jobs([big], free_bytes=40 * GIB, matmul_rate=100e12) == 2
    # a model at 60 % of the rate next to the light one: the busiest decides, ceil(1/0.6)
    heavy = rate(0.1, peak_gib=2, flops=6e12)
    assert T.choose_jobs([light, heavy], free_bytes=40 * GIB, matmul_rate=100e12) == 2
    # never below one, never above the cap
    assert T.choose_jobs([rate(0.1, peak_gib=50, flops=1e12)], 40 * GIB, 100e12) == 1
    tiny = rate(1.0, peak_gib=0.01, flops=1e9)
    assert T.choose_jobs([tiny], 40 * GIB, 100e12) == T.MAX_GPU_JOBS


def test_jobs_on_a_cpu_are_cores_over_threads():
    cpu = rate(0.1, device="cpu")
    assert T.choose_jobs([cpu], 0, 1e11, cpus=8, cpu_threads=2) == 4
    assert T.choose_jobs([cpu], 0, 1e11, cpus=2, cpu_threads=4) == 1
    assert T.choose_jobs([], 0, 1e11) == 1


def test_a_table_needs_one_measurement_per_network_and_strategy_kind():
    configs = enumerate_runs("II", "tiny", "dcase2018", models=[("pool", "att")])
    # single-device (x3 devices), joint, teacher forcing, multi-task: 6 runs, and single
    # costs what joint does, so 3 measurements
    assert len(configs) == 6
    assert len({T.cost_key(c) for c in configs}) == 3
    wider = configs[0].replace(width=configs[0].width * 2)
    assert T.cost_key(wider) != T.cost_key(configs[0])


def test_estimate_prices_each_run_from_its_models_rate(monkeypatch):
    configs = enumerate_runs("II", "tiny", "dcase2018", models=[("pool", "att")])
    measured: list[tuple[object, ...]] = []

    def fake(config, n_frames, steps):
        measured.append(T.cost_key(config))
        return T.ModelRate(step_s=0.5 if config.strategy == "multi_task" else 0.25,
                           eval_clips_per_s=30.0, peak_bytes=0, flops_per_step=1.0,
                           device="cpu")

    monkeypatch.setattr(T, "measure", fake)
    est = T.estimate(configs, n_eval_clips=90, n_frames=64)
    assert len(measured) == est.n_models == 3 and est.n_runs == 6
    # by hand: iterations x step time; evaluations x clips / rate (single: a third)
    train = sum(c.iterations * (0.5 if c.strategy == "multi_task" else 0.25) for c in configs)
    evals = sum(evaluations(c) * (30 if c.strategy == "single" else 90) / 30.0
                for c in configs)
    assert est.train_s == pytest.approx(train) and est.eval_s == pytest.approx(evals)
    assert est.hours == pytest.approx((train + evals) / 3600)


def test_measuring_a_tiny_model_on_the_cpu(one_thread):
    cfg = TrainConfig.from_profile("tiny", topology="pool", pooling="att",
                                   strategy="multi_task", cond_layer=3, accelerator="cpu")
    r = T.measure(cfg, n_frames=64, steps=2, eval_batches=1)
    assert r.device == "cpu" and r.peak_bytes == 0
    assert 0 < r.step_s < 30 and r.eval_clips_per_s > 0 and r.flops_per_step > 0


def test_cli_dry_run_measures_and_jobs_auto_is_checked(tiny_dataset_2018, tmp_path, capsys,
                                                       monkeypatch):
    from caalib.cli import main

    calls: list[tuple[object, ...]] = []

    def fake(c, n_frames, steps):
        calls.append(T.cost_key(c))
        return rate(0.01, device="cpu")

    monkeypatch.setattr(T, "measure", fake)
    args = ["sweep", "--table", "II", "--profile", "tiny", "--data", str(tiny_dataset_2018),
            "--results", str(tmp_path), "--models", "pool:att", "--no-progress"]
    assert main([*args, "--dry-run", "--measure", "--jobs", "auto"]) == 0
    out = capsys.readouterr().out
    assert "(the floor)" in out and "3 distinct model(s)" in out and "--jobs" in out
    assert len(calls) == len(set(calls)) == 3  # each distinct model measured once
    with pytest.raises(SystemExit) as exc:
        main([*args, "--dry-run", "--jobs", "0"])
    assert exc.value.code == 2
    assert "positive integer or auto" in capsys.readouterr().err
