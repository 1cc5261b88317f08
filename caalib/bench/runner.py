"""The whole benchmark of one model: matmul rate, every mode, derived figures, features.

FLOP convention: training FLOPs per sample = 3 x forward FLOPs = 3 x 2 x forward MACs,
MACs counted analytically by :mod:`caalib.summary` (convolutions and linears; the
elementwise layers are left out). The device's dense matmul rate (bf16 on GPU, fp32 on
CPU) is measured in the same run, so "fraction of the hardware" is one run's ratio.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from typing import Any

import torch

from ..models import build_model
from ..summary import model_summary
from ..training.numerics import synthetic_data
from .derived import derive
from .environment import environment, free_memory, resolve_accelerator, torch_flags
from .feature_timing import bench_features
from .matmul import measure_matmul
from .settings import BenchSettings
from .timing import bench_mode

FLOP_CONVENTION = ("training FLOPs = 3 x forward FLOPs (backward ~ 2 x forward), forward "
                   "FLOPs = 2 x MACs counted analytically by caalib.summary (convs and "
                   "linears; BatchNorm, ReLU, pooling and attention normalisation left out)")


def run_bench(s: BenchSettings, progress: bool = True) -> dict[str, Any]:
    """Benchmark every mode of ``s`` in this process and return the full record."""
    device = resolve_accelerator(s.accelerator)
    if device.type == "cpu" and s.threads is None and s.cpu_quick:
        s = replace(s, threads=min(2, torch.get_num_threads()))
    summary = model_summary(build_model(**s.model_args))
    fwd = float(summary.forward_flops)
    train = float(summary.training_flops_per_sample)
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (
        lambda msg: None)
    log(f"caa bench: {summary.title()}, batch {s.batch}, on {device.type}")

    record: dict[str, Any] = {
        "format": 1,
        "created_unix": time.time(),
        "settings": s.to_dict(),
        "environment": None,
        "model": {
            "build_args": summary.build_args,
            "params": summary.params["total"],
            "forward_macs_per_sample": summary.forward_macs,
            "forward_flops_per_sample": fwd,
            "training_flops_per_sample": train,
            "training_flops_per_step": train * s.batch,
            "flop_convention": FLOP_CONVENTION,
        },
    }
    with torch_flags(None, s.threads):
        record["environment"] = environment(device)
        size = s.matmul_size or (8192 if device.type == "cuda" else 1024)
        min_t = 0.2 if s.cpu_quick else 0.5
        matmul = {"fp32": measure_matmul(device, torch.float32, size, min_t)}
        if device.type == "cuda":
            matmul["bf16"] = measure_matmul(device, torch.bfloat16, size, min_t)
        peak_key = "bf16" if device.type == "cuda" else "fp32"
        record["matmul"] = {**matmul, "reference": peak_key,
                            "reference_tflops": matmul[peak_key]["tflops"]}
        log(f"  matmul {size}² {peak_key}: {matmul[peak_key]['tflops']:.3f} TFLOP/s")

        data = synthetic_data(max(4 * s.batch, 64), s.frames, s.mels, s.batch,
                              s.warmup + s.steps, seed=s.seed)
        modes: dict[str, Any] = {}
        for mode in s.modes:
            try:
                modes[mode] = bench_mode(mode, s, data, device, train, fwd, progress)
            except Exception as exc:  # one failing mode (OOM, compiler) must not hide others
                modes[mode] = {"mode": mode, "error": f"{type(exc).__name__}: {exc}"}
                log(f"  {mode}: FAILED: {type(exc).__name__}: {exc}")
                free_memory(device)
        record["modes"] = modes
        derive(record)
        if s.features:
            try:
                record["features"] = bench_features(device, s.feature_clips, s.feature_seconds)
            except Exception as exc:
                record["features"] = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            record["features"] = {"skipped": "switched off (--no-features)"}
    return record
