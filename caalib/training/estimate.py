"""How long a set of runs must take at least: FLOPs against a measured matmul rate.

The floor is what the hardware could do if every FLOP ran at its dense matmul rate;
real training reaches a fraction of it (`caa bench` measures that fraction per model),
so the floor tells a user whether a plan is hopeless (the paper profile on a CPU) and
tells us how far the fast path is from the machine.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .config import TrainConfig


@dataclass(frozen=True)
class Floor:
    """Training and evaluation FLOPs of some runs and the time they need at ``rate``."""

    n_runs: int
    train_flops: float
    eval_flops: float
    rate: float  # FLOP/s measured
    rate_label: str

    @property
    def hours(self) -> float:
        return (self.train_flops + self.eval_flops) / self.rate / 3600

    def text(self) -> str:
        return (f"{self.n_runs} run(s): {self.train_flops / 1e15:.2f} PFLOP of training + "
                f"{self.eval_flops / 1e15:.2f} PFLOP of evaluation; at the measured "
                f"{self.rate_label} matmul rate ({self.rate / 1e12:.2f} TFLOP/s) that is at "
                f"least {self.hours:.2f} h")


def evaluations(config: TrainConfig) -> int:
    """How many times the run scores the evaluate split (its schedule, final included)."""
    from .engine import evaluates_at

    return sum(evaluates_at(config, step) for step in range(1, config.iterations + 1))


def time_matmul(device: str | torch.device, dtype: torch.dtype, size: int,
                min_time_s: float) -> tuple[int, float]:
    """Dense ``size`` x ``size`` matmuls (2 n³ FLOPs each) run back to back for at least
    ``min_time_s``: (how many, seconds). Under whatever backend flags and thread count
    are in force (the callers set them); ``caa bench`` reports it as its denominator."""
    device = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    c = torch.empty(size, size, device=device, dtype=dtype)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(3):  # warm-up: kernel selection, allocation
        torch.mm(a, b, out=c)
    sync()
    done, batch = 0, 1
    t0 = time.perf_counter()
    while True:
        for _ in range(batch):
            torch.mm(a, b, out=c)
        sync()
        done += batch
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time_s:
            return done, elapsed
        batch = min(batch * 2, 256)


def measured_matmul_rate(device: str, dtype_name: str, cpu_threads: int = 1,
                         seconds: float = 0.3) -> float:
    """Dense matmul FLOP/s on ``device`` ("cpu"/"cuda") in ``dtype_name`` ("fp32"/"bf16"),
    on ``cpu_threads`` threads on a CPU (a run's own count), under the process's flags."""
    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    size = 4096 if device == "cuda" else 512
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(cpu_threads)
    try:
        done, elapsed = time_matmul(device, dtype, size, seconds)
    finally:
        torch.set_num_threads(threads)
    return done * 2 * size**3 / elapsed


def floor(configs: Sequence[TrainConfig], n_eval_clips: int | None = None,
          n_frames: int = 320) -> Floor:
    """The :class:`Floor` of ``configs`` on the device the first one resolves to.

    ``n_eval_clips`` is the evaluate split's size (all devices; single-device runs are
    counted at a third of it); without it evaluation is left out. Clips are ``n_frames``
    long (320 for 10 s clips), cut to each config's ``max_frames``.
    """
    from ..accelerator import resolve_torch_device
    from ..summary import model_summary

    if not configs:
        return Floor(0, 0.0, 0.0, 1.0, "no")
    first = configs[0]
    device = resolve_torch_device(first.accelerator, field="accelerator").type
    train = evaluate = 0.0
    for c in configs:
        s = model_summary(dict(topology=c.topology, pooling=c.pooling, strategy=c.strategy,
                               cond_layer=c.cond_layer, width=c.width,
                               n_frames=c.input_frames(n_frames)))
        train += c.iterations * c.batch_size * s.training_flops_per_sample
        if n_eval_clips:
            clips = n_eval_clips / 3 if c.strategy == "single" else n_eval_clips
            evaluate += evaluations(c) * clips * s.forward_flops
    dtype = "bf16" if device == "cuda" and first.precision == "bf16" else "fp32"
    rate = measured_matmul_rate(device, dtype, first.cpu_threads)
    label = f"{device} {dtype}" + (f", {first.cpu_threads} thread(s)" if device == "cpu" else "")
    return Floor(len(configs), train, evaluate, rate, label)
