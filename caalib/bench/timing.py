"""Timing one mode: warm-up, timed training steps, evaluation rate and peak memory."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np
import torch

from ..training.numerics import SyntheticData
from .environment import (
    GIB,
    free_memory,
    get_flags,
    max_rss_bytes,
    rss_bytes,
    synchronize,
    torch_flags,
)
from .modes import Trainer, make_trainer
from .settings import BenchSettings


def timed_steps(trainer: Trainer, first: int, count: int,
                device: torch.device) -> tuple[float, list[float], torch.Tensor | None]:
    """Wall time of ``count`` steps (synchronised at both ends) and per-step times
    (CUDA events on GPU, so host-side gaps are included; perf_counter on CPU)."""
    last: torch.Tensor | None = None
    synchronize(device)
    if device.type == "cuda":
        events = [torch.cuda.Event(enable_timing=True) for _ in range(count + 1)]
        t0 = time.perf_counter()
        events[0].record()
        for k in range(count):
            last = trainer.step(first + k)
            events[k + 1].record()
        torch.cuda.synchronize(device)
        wall = time.perf_counter() - t0
        per = [events[k].elapsed_time(events[k + 1]) / 1e3 for k in range(count)]
    else:
        per = []
        t0 = time.perf_counter()
        for k in range(count):
            t = time.perf_counter()
            last = trainer.step(first + k)
            per.append(time.perf_counter() - t)
        wall = time.perf_counter() - t0
    return wall, per, last


def eval_rate(trainer: Trainer, s: BenchSettings, data: SyntheticData,
              device: torch.device) -> float:
    """Clips/s of evaluation forward passes at the engine's evaluation batch
    (``max(2·batch, 32)``), model in eval mode, after one untimed batch."""
    bs = max(2 * s.batch, 32)
    rng = np.random.default_rng(s.seed + 1)
    x = torch.from_numpy(data.x[rng.integers(0, len(data.x), bs)]).to(device)
    trainer.model.eval()
    try:
        trainer.predict(x)
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(s.eval_batches):
            trainer.predict(x)
        synchronize(device)
        return bs * s.eval_batches / (time.perf_counter() - t0)
    finally:
        trainer.model.train()


def bench_mode(mode: str, s: BenchSettings, data: SyntheticData, device: torch.device,
               train_flops_per_sample: float, fwd_flops_per_sample: float,
               progress: bool = True) -> dict[str, Any]:
    """Warm up, time ``s.steps`` updates and one evaluation pass; peak memory."""
    free_memory(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = rss_bytes()
    t_build = time.perf_counter()
    trainer = make_trainer(mode, s, data, device)
    try:
        with torch_flags(trainer.flags, s.threads), trainer.settings_ctx():
            if s.threads is not None:
                torch.set_num_threads(s.threads)  # the engine sets its own count
            flags_used = get_flags()
            build_s = time.perf_counter() - t_build
            t0 = time.perf_counter()
            for i in range(s.warmup):
                trainer.step(i)
            synchronize(device)
            warmup_s = time.perf_counter() - t0
            if device.type == "cuda":
                peak_warm = torch.cuda.max_memory_allocated(device)
                torch.cuda.reset_peak_memory_stats(device)
            wall, per, last = timed_steps(trainer, s.warmup, s.steps, device)
            if device.type == "cuda":
                peak = torch.cuda.max_memory_allocated(device)
                reserved = torch.cuda.max_memory_reserved(device)
            final_loss = float(last) if last is not None else float("nan")
            eval_cps = eval_rate(trainer, s, data, device)
    finally:
        source, recipe = trainer.source, trainer.describe()
        del trainer
        free_memory(device)

    steps_per_s = s.steps / wall
    samples_per_s = steps_per_s * s.batch
    out: dict[str, Any] = {
        "mode": mode,
        "step_source": source,
        "recipe": recipe,
        "backend_flags": flags_used,
        "steps": s.steps,
        "warmup": s.warmup,
        "build_s": build_s,
        "warmup_s": warmup_s,
        "wall_s": wall,
        "steps_per_s": steps_per_s,
        "samples_per_s": samples_per_s,
        "step_ms_mean": 1e3 * wall / s.steps,
        "step_ms_median": 1e3 * float(np.median(per)),
        "step_ms_p90": 1e3 * float(np.percentile(per, 90)),
        "achieved_tflops": samples_per_s * train_flops_per_sample / 1e12,
        "final_loss": final_loss,
        "loss_finite": math.isfinite(final_loss),
        "eval_clips_per_s": eval_cps,
        "eval_achieved_tflops": eval_cps * fwd_flops_per_sample / 1e12,
    }
    if device.type == "cuda":
        out.update(peak_memory_bytes=int(peak), peak_memory_incl_warmup_bytes=int(
            max(peak, peak_warm)), peak_memory_reserved_bytes=int(reserved),
            peak_memory_kind="torch.cuda.max_memory_allocated (timed steps)")
    else:
        out.update(peak_memory_bytes=max_rss_bytes(),
                   rss_delta_bytes=max(0, rss_bytes() - rss0),
                   peak_memory_kind="process peak RSS so far (ru_maxrss; cumulative)")
    out["peak_memory_gib"] = out["peak_memory_bytes"] / GIB
    if progress:
        print(f"  {mode:<9} {steps_per_s:8.2f} steps/s  {out['achieved_tflops']:8.3f} TFLOP/s  "
              f"peak {out['peak_memory_gib']:.2f} GiB", file=sys.stderr, flush=True)
    return out
