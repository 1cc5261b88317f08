"""What a sweep will take here: per-model throughput measured, then summed over runs.

The FLOP floor (:mod:`caalib.training.estimate`) says what the hardware could do; a user
planning a table needs what it will do. So each distinct model of a plan (the config
fields that change a step's cost) trains a few steps and scores a few batches on the
run's own accelerator, through the run's own :class:`Engine` (same model, optimiser,
precision, compile and thread settings) on synthetic clips of the run's size, and every
run is priced at its iterations times the measured step plus its evaluations times the
measured scoring rate. Data loading and process start-up are not in it (the sweep prints
them after the fact); the estimate's ratio to the floor is the fraction of the matmul
rate the fast path reaches, the gap the throughput issue tracks.

On a GPU the same measurement gives each model's peak memory and the share of the
device's matmul rate one run uses, from which :func:`choose_jobs` picks how many runs
share the device (``caa sweep --jobs auto``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .config import TrainConfig

#: Config fields that decide what one training step or evaluation batch costs. The
#: conditioning layer is left out (it moves one bias addition) and single-device runs
#: cost what joint ones do (the same network on other clips), so a table needs few
#: measurements.
COST_FIELDS: tuple[str, ...] = (
    "topology", "pooling", "width", "batch_size", "max_frames", "precision", "tf32",
    "fast", "compile", "accelerator", "cpu_threads", "attention",
)
#: Share of free GPU memory ``choose_jobs`` plans to fill (the rest is headroom for the
#: allocator's fragmentation and the CUDA context of each process).
MEMORY_SHARE = 0.8
#: Upper bound of runs sharing one GPU (each is a process with its own CUDA context).
MAX_GPU_JOBS = 8


def cost_key(config: TrainConfig) -> tuple[object, ...]:
    """Configs with equal keys cost the same per step and per scored clip."""
    strategy = "joint" if config.strategy == "single" else config.strategy
    return (strategy, *(getattr(config, f) for f in COST_FIELDS))


@dataclass(frozen=True)
class ModelRate:
    """One model's measured cost on this machine."""

    step_s: float  # seconds per training step (CPU: median of the timed steps; CUDA: mean)
    eval_clips_per_s: float
    peak_bytes: int  # peak accelerator memory of training or scoring (0 on CPU)
    flops_per_step: float
    device: str

    def utilisation(self, matmul_rate: float) -> float:
        """Share of the matmul rate one run of this model achieves."""
        return self.flops_per_step / self.step_s / matmul_rate if matmul_rate > 0 else 0.0


def _frames(config: TrainConfig, n_frames: int) -> int:
    return config.input_frames(n_frames)


def measure(config: TrainConfig, n_frames: int = 320, steps: int = 3,
            eval_batches: int = 2) -> ModelRate:
    """Train ``steps`` timed steps (after one untimed warm-up, which also compiles) and
    score ``eval_batches`` batches of ``config``'s model on synthetic clips."""
    from ..accelerator import resolve_torch_device
    from ..summary import model_summary
    from .engine import EVAL_BATCH_CUDA, Engine, torch_settings
    from .numerics import synthetic_data

    device = resolve_torch_device(config.accelerator, field="accelerator")
    frames = _frames(config, n_frames)
    bs = config.batch_size
    n_eval = (EVAL_BATCH_CUDA if device.type == "cuda" else max(2 * bs, 32)) * eval_batches
    data = synthetic_data(n=max(n_eval, bs), frames=frames, mels=64, batch=bs,
                          steps=steps + 1, seed=config.seed)
    threads = torch.get_num_threads()
    try:
        with torch_settings(device, config):
            engine = Engine(config, data.run_data(), device)
            x, y, d = engine.tensors("train")
            order = torch.from_numpy(data.order).to(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            engine.update(x[order[0]], y[order[0]], d[order[0]], 1.0)  # warm-up
            _sync(device)
            times = []
            if device.type == "cuda":
                # one sync around all timed steps, as the training loop lets the GPU run
                # ahead between its own syncs: a sync per step would add the launch gap
                # of every step to the price of launch-bound (small) models
                t0 = time.perf_counter()
                for k in range(1, steps + 1):
                    engine.update(x[order[k]], y[order[k]], d[order[k]], 1.0)
                _sync(device)
                times = [(time.perf_counter() - t0) / steps]
            else:  # each step on its own: the median resists a shared machine's noise
                for k in range(1, steps + 1):
                    t0 = time.perf_counter()
                    engine.update(x[order[k]], y[order[k]], d[order[k]], 1.0)
                    times.append(time.perf_counter() - t0)
            rows = np.arange(n_eval)
            engine.predict("evaluate", rows[: n_eval // eval_batches])  # warm-up: one batch
            _sync(device)
            t0 = time.perf_counter()
            engine.predict("evaluate", rows)
            _sync(device)
            eval_rate = n_eval / (time.perf_counter() - t0)
            # training's peak or scoring's, whichever is higher (what packing must fit)
            peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else 0
    finally:
        torch.set_num_threads(threads)
        if device.type == "cuda":  # the sweep's workers need the memory, not this cache
            engine = None
            torch.cuda.empty_cache()
    s = model_summary(dict(topology=config.topology, pooling=config.pooling,
                           strategy=config.strategy, cond_layer=config.cond_layer,
                           width=config.width, n_frames=frames))
    return ModelRate(step_s=float(np.median(times)), eval_clips_per_s=eval_rate,
                     peak_bytes=peak, flops_per_step=bs * s.training_flops_per_sample,
                     device=device.type)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Estimate:
    """Measured-throughput estimate of a set of runs, one after another."""

    n_runs: int
    n_models: int
    train_s: float
    eval_s: float
    rates: dict[tuple[object, ...], ModelRate]

    @property
    def hours(self) -> float:
        return (self.train_s + self.eval_s) / 3600

    def text(self) -> str:
        return (f"{self.n_runs} run(s) of {self.n_models} distinct model(s): "
                f"{self.train_s / 3600:.2f} h of training + {self.eval_s / 3600:.2f} h of "
                f"evaluation one after another = {self.hours:.2f} h from the throughput "
                "measured here (data loading and process start-up not included)")


def estimate(configs: Sequence[TrainConfig], n_eval_clips: int, n_frames: int = 320,
             steps: int = 3, progress: bool = False) -> Estimate:
    """Price every run of ``configs`` from one measurement per distinct model."""
    from tqdm.auto import tqdm

    from .estimate import evaluations

    rates: dict[tuple[object, ...], ModelRate] = {}
    distinct = {cost_key(c): c for c in configs}
    for key, c in tqdm(distinct.items(), desc="measuring throughput", unit="model",
                       disable=not progress):
        rates[key] = measure(c, n_frames=n_frames, steps=steps)
    train = evaluate = 0.0
    for c in configs:
        r = rates[cost_key(c)]
        train += c.iterations * r.step_s
        clips = n_eval_clips / 3 if c.strategy == "single" else n_eval_clips
        evaluate += evaluations(c) * clips / r.eval_clips_per_s
    return Estimate(len(configs), len(distinct), train, evaluate, rates)


def choose_jobs(rates: Sequence[ModelRate], free_bytes: int, matmul_rate: float,
                cpus: int = 1, cpu_threads: int = 1) -> int:
    """How many runs should train at once.

    CPU: one run per ``cpu_threads`` usable CPUs (CPU runs compete for cores, not memory).
    GPU: as many as fit in ``MEMORY_SHARE`` of the free memory at the heaviest model's
    peak, and no more than keep the device's matmul units busy: runs that each use a
    share ``u`` of the matmul rate are packed until the shares add up to one (the
    heaviest model decides, so a table of atrous models stays near one run at a time and
    the pooled ones, ~28x cheaper, share the device), at most ``MAX_GPU_JOBS``.
    """
    if not rates:
        return 1
    if all(r.device != "cuda" for r in rates):
        return max(1, cpus // max(1, cpu_threads))
    peak = max(r.peak_bytes for r in rates)
    by_memory = int(MEMORY_SHARE * free_bytes // peak) if peak > 0 else MAX_GPU_JOBS
    busiest = max(r.utilisation(matmul_rate) for r in rates)
    by_compute = math.ceil(1.0 / busiest) if busiest > 0 else MAX_GPU_JOBS
    return max(1, min(by_memory, by_compute, MAX_GPU_JOBS))



def auto_jobs(configs: Sequence[TrainConfig], n_frames: int = 320, steps: int = 3,
              progress: bool = False, measured: Estimate | None = None) -> tuple[int, str]:
    """``caa sweep --jobs auto``: the job count for ``configs`` here, and why
    (``measured``: an estimate of these configs already made, not measured again)."""
    from ..accelerator import resolve_torch_device, usable_cpus
    from .estimate import measured_matmul_rate

    if not configs:
        return 1, "nothing to train"
    first = configs[0]
    device = resolve_torch_device(first.accelerator, field="accelerator")
    if device.type != "cuda":
        cpus = usable_cpus()
        why = f"{cpus} usable CPU(s) / {first.cpu_threads} thread(s) per run"
        return max(1, cpus // first.cpu_threads), why
    est = measured or estimate(configs, n_eval_clips=0, n_frames=n_frames, steps=steps,
                               progress=progress)
    rates = list(est.rates.values())
    free, _ = torch.cuda.mem_get_info(device)
    dtype = "bf16" if first.precision == "bf16" else "fp32"
    rate = measured_matmul_rate("cuda", dtype)
    jobs = choose_jobs(rates, free, rate)
    peak = max(r.peak_bytes for r in rates)
    busiest = max(r.utilisation(rate) for r in rates)
    return jobs, (f"heaviest model: peak {peak / 2**30:.2f} GiB of {free / 2**30:.1f} GiB "
                  f"free, {100 * busiest:.0f} % of the {dtype} matmul rate "
                  f"({rate / 1e12:.0f} TFLOP/s) per run")
