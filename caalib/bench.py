"""Training-step benchmark: how fast one model trains, and how much of the hardware that is.

Three ways of running the same update (forward, NLL loss(es) including the multi-task
device loss, backward, Adam step) are timed in one process, so their ratios need no
cross-run calibration:

- ``released``: as the authors' code trains - true fp32 (no TF32 for convolutions or
  matmuls), eager, NCHW, every batch indexed on the host and copied to the device
  (pageable memory, as the released code), single-tensor Adam (PyTorch 0.4's loop,
  ``foreach=False``), gradients zeroed rather than freed, ``cudnn.benchmark`` off.
- ``default``: the same loop with PyTorch's default fp32 settings (cuDNN convolutions
  may use TF32, matmuls do not), data resident on the device, PyTorch's default Adam.
- ``fast``: the training engine's own update (``caalib.training.Engine`` with
  ``fast=True``): bf16 autocast, channels_last, TF32, fused Adam (no ``cudnn.benchmark``), data
  resident on the device, no host sync per step. ``compiled`` is the same with
  ``torch.compile`` (mode selectable). On CPU the engine has no fast path, so ``fast``
  there is fp32 as well (numbers for the harness, not for the study).

FLOP convention: training FLOPs per sample = 3 x forward FLOPs = 3 x 2 x forward MACs,
MACs counted analytically by :mod:`caalib.summary` (convolutions and linears; the
elementwise layers are left out). The device's dense matmul rate (bf16 on GPU, fp32 on
CPU) is measured in the same run, so "fraction of the hardware" is one run's ratio.

Imports of the rest of caalib are lazy: ``import caalib.bench`` pulls in torch and
numpy only, and feature timing is skipped (with the reason recorded) where librosa,
soundfile or soxr are missing.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .accelerator import resolve_torch_device
from .errors import ConfigError

MODES: tuple[str, ...] = ("released", "default", "fast", "compiled")
COMPILE_MODES: tuple[str, ...] = (
    "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs",
)
ACCELERATORS: tuple[str, ...] = ("auto", "cpu", "cuda")

#: One paper run (study notes section 3) and Table II's size: 14 models x 6 columns
#: (single A/B/C, joint, teacher forcing, multi-task), each assumed to train at the
#: benchmarked model's rate.
RUN_ITERATIONS = 15_000
TABLE2_RUNS = 84
#: The released code evaluates every 100 iterations on the 2,878 evaluate clips of
#: DCASE 2018 (2,518 A + 180 B + 180 C); used for the evaluation-cost estimate.
EVAL_EVERY = 100
EVAL_CLIPS_2018 = 2_878

#: What the study asks of the fast path on an H100 (checked, never asserted).
TARGETS: dict[str, float] = {
    "speedup_vs_released_min": 5.0,
    "speedup_vs_default_min": 2.0,
    "fraction_of_matmul_min": 0.40,
    "peak_memory_gib_max": 8.0,
}
GIB = 1024 ** 3

#: ``--cpu-quick``: sizes at which the whole harness runs in well under a minute on
#: 2 cores (CI checks that it works; the numbers mean little).
CPU_QUICK: dict[str, Any] = dict(
    width=1 / 16, frames=64, batch=8, steps=3, warmup=1, matmul_size=512,
    feature_clips=4, feature_seconds=10.0, eval_batches=1, accelerator="cpu",
)


@dataclass(frozen=True)
class BenchSettings:
    """What to benchmark; validated on construction (errors name the field)."""

    topology: str = "atrous"
    pooling: str = "att"
    strategy: str = "multi_task"
    cond_layer: int | None = 4
    attention: str = "released"
    width: float = 1.0
    batch: int = 16
    frames: int = 320
    mels: int = 64
    steps: int = 30
    warmup: int = 5
    modes: tuple[str, ...] = ("released", "default", "fast")
    compile_mode: str = "default"
    accelerator: str = "auto"
    features: bool = True
    feature_clips: int = 32
    feature_seconds: float = 10.0
    matmul_size: int | None = None  # None: 8192 on GPU, 1024 on CPU
    eval_batches: int = 5
    threads: int | None = None
    seed: int = 0
    cpu_quick: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "modes", tuple(self.modes))
        if not self.modes:
            raise ConfigError("modes: name at least one of " + ", ".join(MODES))
        for m in self.modes:
            if m not in MODES:
                raise ConfigError(f"modes: {m!r} is not one of {', '.join(MODES)}")
        if len(set(self.modes)) != len(self.modes):
            raise ConfigError(f"modes: {', '.join(self.modes)} names a mode twice")
        if self.compile_mode not in COMPILE_MODES:
            raise ConfigError(
                f"compile_mode: {self.compile_mode!r} is not one of {', '.join(COMPILE_MODES)}"
            )
        if self.accelerator not in ACCELERATORS:
            raise ConfigError(
                f"accelerator: {self.accelerator!r} is not one of {', '.join(ACCELERATORS)}"
            )
        for name in ("batch", "frames", "mels", "steps", "feature_clips", "eval_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: must be a positive integer, got {value!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f"warmup: must be an integer >= 0, got {self.warmup!r}")
        if not (isinstance(self.width, int | float) and 0 < self.width <= 4):
            raise ConfigError(f"width: must be in (0, 4], got {self.width!r}")
        if self.matmul_size is not None and self.matmul_size < 16:
            raise ConfigError(f"matmul_size: must be >= 16, got {self.matmul_size}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads: must be >= 1, got {self.threads}")
        if not self.feature_seconds > 0.1:
            raise ConfigError(f"feature_seconds: must be > 0.1, got {self.feature_seconds}")
        from .models import validate_model_args  # light: torch only

        cond = validate_model_args(self.topology, self.pooling, self.strategy, self.cond_layer,
                                   10, 3, self.width, self.frames, self.mels, self.attention)
        object.__setattr__(self, "cond_layer", cond)

    @classmethod
    def quick(cls, **overrides: Any) -> BenchSettings:
        """The ``--cpu-quick`` settings (overrides win)."""
        return cls(**{**CPU_QUICK, "cpu_quick": True, **overrides})

    @property
    def model_args(self) -> dict[str, Any]:
        return dict(topology=self.topology, pooling=self.pooling, strategy=self.strategy,
                    cond_layer=self.cond_layer, width=float(self.width), n_frames=self.frames,
                    n_mels=self.mels, attention=self.attention)

    def default_name(self, device_type: str) -> str:
        """File stem for results/bench: model, width, batch, input, device."""
        cond = f"-L{self.cond_layer}" if self.cond_layer is not None else ""
        name = (f"{self.topology}-{self.pooling.replace('+', '_')}-{self.strategy}{cond}"
                f"-w{self.width:g}-b{self.batch}-{self.frames}x{self.mels}-{device_type}")
        return name + ("-quick" if self.cpu_quick else "")


# ---------------------------------------------------------------------- torch settings
def resolve_accelerator(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is a ConfigError."""
    return resolve_torch_device(name, field="accelerator")


_FLAGS = ("cudnn_benchmark", "cudnn_tf32", "matmul_tf32")


def _get_flags() -> dict[str, bool]:
    return {"cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "cudnn_tf32": bool(torch.backends.cudnn.allow_tf32),
            "matmul_tf32": bool(torch.backends.cuda.matmul.allow_tf32)}


def _set_flags(flags: dict[str, bool]) -> None:
    # the legacy flags, as caalib.training sets them (mixing them with the newer
    # fp32_precision API is refused by recent PyTorch)
    torch.backends.cudnn.benchmark = flags["cudnn_benchmark"]
    torch.backends.cudnn.allow_tf32 = flags["cudnn_tf32"]
    torch.backends.cuda.matmul.allow_tf32 = flags["matmul_tf32"]


#: PyTorch's documented defaults: TF32 allowed for cuDNN convolutions, not for matmuls.
TORCH_DEFAULT_FLAGS = {"cudnn_benchmark": False, "cudnn_tf32": True, "matmul_tf32": False}
TRUE_FP32_FLAGS = {"cudnn_benchmark": False, "cudnn_tf32": False, "matmul_tf32": False}


@contextlib.contextmanager
def torch_flags(flags: dict[str, bool] | None = None,
                threads: int | None = None) -> Iterator[None]:
    """Apply backend flags (and thread count); restore everything on exit, because a
    notebook shares one process with training."""
    saved, saved_threads = _get_flags(), torch.get_num_threads()
    try:
        if flags is not None:
            _set_flags(flags)
        if threads is not None:
            torch.set_num_threads(threads)
        yield
    finally:
        _set_flags(saved)
        torch.set_num_threads(saved_threads)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------- environment
def environment(device: torch.device) -> dict[str, Any]:
    """Device name and library versions, recorded with every result."""
    info: dict[str, Any] = {
        "device_type": device.type,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device_name=props.name, capability=f"{props.major}.{props.minor}",
                    total_memory_bytes=int(props.total_memory),
                    multiprocessors=props.multi_processor_count)
    else:
        info["device_name"] = platform.processor() or platform.machine()
    return info


def _rss_bytes() -> int:
    """Current resident set size (Linux /proc; 0 where unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _max_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


# ---------------------------------------------------------------------- matmul rate
def measure_matmul(device: torch.device, dtype: torch.dtype, size: int,
                   min_time_s: float = 0.5) -> dict[str, Any]:
    """Dense ``size``² x ``size``² matmul rate (TFLOP/s, 2·n³ FLOPs each): the
    denominator of "fraction of what this hardware can do"."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    c = torch.empty(size, size, device=device, dtype=dtype)
    flags = TRUE_FP32_FLAGS if dtype == torch.float32 else None
    with torch_flags(flags):
        for _ in range(3):
            torch.mm(a, b, out=c)
        synchronize(device)
        done, batch = 0, 1
        t0 = time.perf_counter()
        while True:
            for _ in range(batch):
                torch.mm(a, b, out=c)
            synchronize(device)
            done += batch
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time_s:
                break
            batch = min(batch * 2, 256)
    tflops = 2.0 * size ** 3 * done / elapsed / 1e12
    return {"dtype": str(dtype).removeprefix("torch."), "size": size, "iterations": done,
            "seconds": elapsed, "tflops": tflops,
            "tf32": False if dtype == torch.float32 else None}


# ---------------------------------------------------------------------- synthetic data
@dataclass
class SyntheticData:
    """A small learnable training set: each scene adds its own pattern, each device
    its own spectral tilt, so both losses can fall (the numerics check needs that)."""

    x: np.ndarray  # (N, T, F) float32
    scene: np.ndarray  # (N,) int64
    device: np.ndarray  # (N,) int64
    order: np.ndarray  # (steps, batch) rows of every step, fixed by the seed


def synthetic_data(n: int, frames: int, mels: int, batch: int, steps: int,
                   seed: int = 0, signal: float = 1.0) -> SyntheticData:
    rng = np.random.default_rng(seed)
    scene = np.arange(n) % 10
    device = (np.arange(n) // 10) % 3
    pattern = rng.standard_normal((10, frames, mels)).astype(np.float32)
    tilt = np.linspace(-1.0, 1.0, mels, dtype=np.float32)[None, :] * np.array(
        [-1.0, 0.0, 1.0], dtype=np.float32)[:, None]
    x = rng.standard_normal((n, frames, mels)).astype(np.float32)
    x += signal * pattern[scene] + signal * tilt[device][:, None, :]
    order = rng.integers(0, n, size=(steps, batch))
    return SyntheticData(x=x, scene=scene.astype(np.int64), device=device.astype(np.int64),
                         order=order)


# ---------------------------------------------------------------------- trainers
@dataclass
class Recipe:
    """How one mode runs the update (see the module docstring)."""

    name: str
    flags: dict[str, bool] | None  # backend flags; None: the engine sets its own
    autocast: torch.dtype | None
    channels_last: bool
    adam: str  # "single" (foreach=False), "default", "fused"
    resident: bool  # data on the device vs host batch + copy per step
    zero_to_none: bool = True
    compile: bool = False

    def describe(self) -> dict[str, Any]:
        out = asdict(self)
        out["autocast"] = None if self.autocast is None else str(self.autocast).removeprefix(
            "torch.")
        return out


def recipe_for(mode: str, device: torch.device) -> Recipe:
    """The bench's own recipe of ``mode`` (``fast``/``compiled`` normally come from
    the engine; this is their fallback and the numerics check's CPU candidate)."""
    cuda = device.type == "cuda"
    if mode == "released":
        return Recipe("released", TRUE_FP32_FLAGS, None, False, "single", resident=False,
                      zero_to_none=False)
    if mode == "default":
        return Recipe("default", TORCH_DEFAULT_FLAGS, None, False, "default", resident=True)
    if mode in ("fast", "compiled"):
        return Recipe(mode, {"cudnn_benchmark": False, "cudnn_tf32": True, "matmul_tf32": True},
                      torch.bfloat16, True, "fused" if cuda else "default", resident=True,
                      compile=mode == "compiled")
    raise ConfigError(f"modes: {mode!r} is not one of {', '.join(MODES)}")


class Trainer:
    """A model, its optimiser and a ``step(i)`` that makes update ``i`` without syncing.

    ``step`` returns the (detached) total loss as a device tensor.
    """

    source: str = "caalib.bench"
    model: torch.nn.Module
    step: Callable[[int], torch.Tensor]
    flags: dict[str, bool] | None
    settings_ctx: Callable[[], contextlib.AbstractContextManager]

    def autocast(self) -> contextlib.AbstractContextManager:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: torch.Tensor, device: torch.Tensor | None = None) -> Any:
        raise NotImplementedError  # pragma: no cover

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> Any:
        """Forward pass without gradients under the mode's autocast (evaluation)."""
        with self.autocast():
            return self.forward(x, device=torch.zeros(x.shape[0], dtype=torch.long,
                                                      device=x.device))


def _adam_kwargs(kind: str) -> dict[str, Any]:
    return {"single": {"foreach": False}, "default": {}, "fused": {"fused": True}}[kind]


class RecipeTrainer(Trainer):
    """The update written out here, parameterised by a :class:`Recipe`."""

    def __init__(self, recipe: Recipe, s: BenchSettings, data: SyntheticData,
                 device: torch.device, lam: float = 1.0) -> None:
        from .models import build_model

        self.recipe, self.device = recipe, device
        self.flags = recipe.flags
        self.settings_ctx = contextlib.nullcontext
        torch.manual_seed(s.seed)  # the engine seeds the same way: same initial weights
        model = build_model(**s.model_args).to(device)
        if recipe.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999),
                                          eps=1e-8, **_adam_kwargs(recipe.adam))
        self.forward = torch.compile(model, mode=s.compile_mode) if recipe.compile else model
        self.teacher = s.strategy == "teacher_forcing"
        self.multi = s.strategy == "multi_task"
        self.lam = lam
        self.host = data
        if recipe.resident:
            self.x = torch.from_numpy(data.x).to(device)
            self.y = torch.from_numpy(data.scene).to(device)
            self.d = torch.from_numpy(data.device).to(device)
            self.order = torch.from_numpy(data.order).to(device)
        self.step = self._step

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.recipe.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.recipe.autocast)

    def _batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.recipe.resident:
            rows = self.order[i]
            return self.x[rows], self.y[rows], self.d[rows]
        rows_np = self.host.order[i]  # the released generator: numpy batch, then a copy
        return tuple(torch.from_numpy(a[rows_np]).to(self.device)  # type: ignore[return-value]
                     for a in (self.host.x, self.host.scene, self.host.device))

    def _step(self, i: int) -> torch.Tensor:
        xb, yb, db = self._batch(i)
        with self.autocast():
            out = self.forward(xb, device=db if self.teacher else None)
        loss = F.nll_loss(out.scene.float(), yb)
        if self.multi:
            loss = loss + self.lam * F.nll_loss(out.device.float(), db)
        self.optimizer.zero_grad(set_to_none=self.recipe.zero_to_none)
        loss.backward()
        self.optimizer.step()
        return loss.detach()



class EngineTrainer(Trainer):
    """The training engine's own update (``Engine.update``), so the benchmark measures
    exactly what ``caa train`` runs, under the engine's own backend settings."""

    source = "caalib.training.Engine"

    def __init__(self, mode: str, s: BenchSettings, data: SyntheticData,
                 device: torch.device, lam: float = 1.0) -> None:
        import pandas as pd

        from .training import engine as engine_mod
        from .training.config import TrainConfig
        from .training.data import RunData, Split

        cfg = TrainConfig.from_profile(
            "paper", topology=s.topology, pooling=s.pooling, strategy=s.strategy,
            cond_layer=s.cond_layer, train_device="a" if s.strategy == "single" else None,
            width=float(s.width), batch_size=s.batch, attention=s.attention, seed=s.seed,
            device=device.type, fast=mode in ("fast", "compiled"), compile=mode == "compiled",
        )
        meta = pd.DataFrame({"filename": [f"clip{i}.wav" for i in range(len(data.scene))]})
        split = Split(x=data.x, scene=data.scene, device=data.device, meta=meta)
        run_data = RunData(
            train=split, evaluate=split, holdout=None,
            mean=np.zeros(s.mels, np.float32), std=np.ones(s.mels, np.float32),
            attention_index=np.zeros(0, np.int64),
            attention_logmel=np.zeros((0, s.frames, s.mels), np.float32),
        )
        self.device, self.config = device, cfg
        self.flags = None
        self.settings_ctx = lambda: engine_mod._torch_settings(device, cfg)
        with self.settings_ctx():
            self.engine = engine_mod.Engine(cfg, run_data, device)
        if mode == "compiled" and s.compile_mode != "default":
            self.engine.forward = torch.compile(self.engine.model, mode=s.compile_mode)
        self.model = self.engine.model
        self.x, self.y, self.d = self.engine.tensors("train")
        self.order = torch.from_numpy(data.order).to(device)
        self.lam = lam
        self.teacher = s.strategy == "teacher_forcing"
        self.step = self._step

    def _step(self, i: int) -> torch.Tensor:
        rows = self.order[i]
        return self.engine.update(self.x[rows], self.y[rows], self.d[rows], self.lam)[0]

    def autocast(self) -> contextlib.AbstractContextManager:
        return self.engine.autocast()

    def forward(self, x: torch.Tensor, device: torch.Tensor | None = None) -> Any:
        return self.engine.forward(x, device=device)


def make_trainer(mode: str, s: BenchSettings, data: SyntheticData, device: torch.device,
                 lam: float = 1.0, use_engine: bool = True) -> Trainer:
    """``fast``/``compiled`` from the engine when it exposes its update, else (or when
    ``use_engine`` is False) the bench's own recipe; the reference modes always here."""
    if mode in ("fast", "compiled") and use_engine:
        try:
            from .training import engine as engine_mod
        except ImportError:
            engine_mod = None  # type: ignore[assignment]
        if engine_mod is not None and all(
                hasattr(engine_mod, a) for a in ("Engine", "_torch_settings")) and hasattr(
                engine_mod.Engine, "update"):
            return EngineTrainer(mode, s, data, device, lam)
    return RecipeTrainer(recipe_for(mode, device), s, data, device, lam)


# ---------------------------------------------------------------------- one mode
def _timed_steps(trainer: Trainer, first: int, count: int,
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


def _eval_rate(trainer: Trainer, s: BenchSettings, data: SyntheticData,
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
    _free(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = _rss_bytes()
    t_build = time.perf_counter()
    trainer = make_trainer(mode, s, data, device)
    try:
        with torch_flags(trainer.flags, s.threads), trainer.settings_ctx():
            if s.threads is not None:
                torch.set_num_threads(s.threads)  # the engine sets its own count
            flags_used = _get_flags()
            build_s = time.perf_counter() - t_build
            t0 = time.perf_counter()
            for i in range(s.warmup):
                trainer.step(i)
            synchronize(device)
            warmup_s = time.perf_counter() - t0
            if device.type == "cuda":
                peak_warm = torch.cuda.max_memory_allocated(device)
                torch.cuda.reset_peak_memory_stats(device)
            wall, per, last = _timed_steps(trainer, s.warmup, s.steps, device)
            if device.type == "cuda":
                peak = torch.cuda.max_memory_allocated(device)
                reserved = torch.cuda.max_memory_reserved(device)
            final_loss = float(last) if last is not None else float("nan")
            eval_cps = _eval_rate(trainer, s, data, device)
    finally:
        source = trainer.source
        recipe = (trainer.recipe.describe() if isinstance(trainer, RecipeTrainer)
                  else {"name": mode, "engine_config_fast": trainer.config.fast,  # type: ignore[attr-defined]
                        "engine_config_compile": trainer.config.compile,  # type: ignore[attr-defined]
                        "compile_mode": s.compile_mode if mode == "compiled" else None})
        del trainer
        _free(device)

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
        out.update(peak_memory_bytes=_max_rss_bytes(), rss_delta_bytes=max(0, _rss_bytes() - rss0),
                   peak_memory_kind="process peak RSS so far (ru_maxrss; cumulative)")
    out["peak_memory_gib"] = out["peak_memory_bytes"] / GIB
    if progress:
        print(f"  {mode:<9} {steps_per_s:8.2f} steps/s  {out['achieved_tflops']:8.3f} TFLOP/s  "
              f"peak {out['peak_memory_gib']:.2f} GiB", file=sys.stderr, flush=True)
    return out


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------- features
def bench_features(device: torch.device, clips: int, seconds: float,
                   batch_size: int = 64, workers: int | None = None) -> dict[str, Any]:
    """Log-mel throughput: the batched torch transform alone on ``device`` and the whole
    ``extract_features`` (decode, resample, transform, HDF5) on a synthetic dataset in
    the DCASE 2018 layout (half 48 kHz stereo 24 bit, half 44.1 kHz mono 16 bit)."""
    try:
        import soundfile as sf

        from .constants import SCENES
        from .features import extract_features, logmel
    except ImportError as exc:
        return {"skipped": f"feature timing needs librosa, soundfile and soxr ({exc})"}

    n = int(round(seconds * 44_100))
    audio = torch.from_numpy(
        0.1 * np.random.default_rng(0).standard_normal((clips, n))).to(device)
    logmel(audio[:1])  # lazy set-up (filterbank, FFT plans), untimed
    synchronize(device)
    t0 = time.perf_counter()
    for start in range(0, clips, batch_size):
        logmel(audio[start:start + batch_size])
    synchronize(device)
    transform_cps = clips / (time.perf_counter() - t0)
    del audio

    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="caa_bench_features_") as tmp:
        root = Path(tmp) / "data"
        (root / "audio").mkdir(parents=True)
        (root / "evaluation_setup").mkdir()
        rows, train, evaluate = [], [], []
        for i in range(clips):
            scene = SCENES[i % len(SCENES)]
            dev, sr, ch, sub = (("a", 48_000, 2, "PCM_24") if i % 2 == 0
                                else ("b", 44_100, 1, "PCM_16"))
            name = f"audio/{scene}-bench-{i}-{i}-{dev}.wav"
            sig = np.clip(0.1 * rng.standard_normal((int(seconds * sr), ch)), -1, 1)
            sf.write(root / name, sig, sr, subtype=sub)
            rows.append(f"{name}\t{scene}\tbench-{i}\t{dev}")
            (evaluate if i % 4 == 1 else train).append(f"{name}\t{scene}")
        (root / "meta.csv").write_text(
            "filename\tscene_label\tidentifier\tsource_label\n" + "\n".join(rows) + "\n")
        (root / "evaluation_setup" / "fold1_train.txt").write_text("\n".join(train) + "\n")
        (root / "evaluation_setup" / "fold1_evaluate.txt").write_text(
            "\n".join(evaluate) + "\n")
        t0 = time.perf_counter()
        extract_features(root, Path(tmp) / "logmel.h5", batch_size=batch_size,
                         workers=workers, device=device.type, progress=False, force=True)
        extract_s = time.perf_counter() - t0
    return {
        "clips": clips,
        "clip_seconds": seconds,
        "device": device.type,
        "batch_size": batch_size,
        "workers": workers if workers is not None else min(8, os.cpu_count() or 1),
        "transform_clips_per_s": transform_cps,
        "extract_clips_per_s": clips / extract_s,
        "extract_s": extract_s,
    }


# ---------------------------------------------------------------------- the whole run
def run_bench(s: BenchSettings, progress: bool = True) -> dict[str, Any]:
    """Benchmark every mode of ``s`` in this process and return the full record."""
    from .models import build_model
    from .summary import model_summary

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
        "settings": _settings_dict(s),
        "environment": None,
        "model": {
            "build_args": summary.build_args,
            "params": summary.params["total"],
            "forward_macs_per_sample": summary.forward_macs,
            "forward_flops_per_sample": fwd,
            "training_flops_per_sample": train,
            "training_flops_per_step": train * s.batch,
            "flop_convention": ("training FLOPs = 3 x forward FLOPs (backward ~ 2 x "
                                "forward), forward FLOPs = 2 x MACs counted analytically "
                                "by caalib.summary (convs and linears; BatchNorm, ReLU, "
                                "pooling and attention normalisation left out)"),
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
                _free(device)
        record["modes"] = modes
        _derive(record)
        if s.features:
            try:
                record["features"] = bench_features(device, s.feature_clips, s.feature_seconds)
            except Exception as exc:
                record["features"] = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            record["features"] = {"skipped": "switched off (--no-features)"}
    return record


def _settings_dict(s: BenchSettings) -> dict[str, Any]:
    out = {f.name: getattr(s, f.name) for f in fields(s)}
    out["modes"] = list(s.modes)
    return out


def _derive(record: dict[str, Any]) -> None:
    """Ratios vs the reference modes, fraction of the matmul rate, implied run times,
    evaluation cost and the targets - all from figures of this one run."""
    ref = record["matmul"]["reference_tflops"]
    fp32 = record["matmul"]["fp32"]["tflops"]
    fwd = record["model"]["forward_flops_per_sample"]
    batch = record["settings"]["batch"]
    ok = {k: v for k, v in record["modes"].items() if "error" not in v}
    for m in ok.values():
        for base in ("released", "default"):
            if base in ok:
                m[f"speedup_vs_{base}"] = m["steps_per_s"] / ok[base]["steps_per_s"]
        m["fraction_of_matmul"] = m["achieved_tflops"] / ref
        m["fraction_of_fp32_matmul"] = m["achieved_tflops"] / fp32
        run_s = RUN_ITERATIONS / m["steps_per_s"]
        evals = RUN_ITERATIONS // EVAL_EVERY
        eval_s = evals * EVAL_CLIPS_2018 / m["eval_clips_per_s"]
        m["implied"] = {
            "run_train_hours": run_s / 3600,
            "run_eval_hours_estimate": eval_s / 3600,
            "run_total_hours_estimate": (run_s + eval_s) / 3600,
            "table2_train_hours": TABLE2_RUNS * run_s / 3600,
            "table2_total_hours_estimate": TABLE2_RUNS * (run_s + eval_s) / 3600,
        }
    record["implied_assumptions"] = (
        f"one run = {RUN_ITERATIONS} iterations at batch {batch} at the measured step rate; "
        f"evaluation estimate = {RUN_ITERATIONS // EVAL_EVERY} evaluations x "
        f"{EVAL_CLIPS_2018} clips (DCASE 2018 evaluate split) at the measured evaluation "
        f"rate; Table II = {TABLE2_RUNS} runs (14 models x 6 columns), every one assumed "
        f"to run at this model's rate (the pooled models are far cheaper, the flatten/roi "
        f"heads dearer); forward FLOPs per clip {fwd:.3g}"
    )
    best = max((m for k, m in ok.items() if k in ("fast", "compiled")),
               key=lambda m: m["steps_per_s"], default=None)
    targets: dict[str, Any] = {"thresholds": dict(TARGETS),
                               "meaningful": record["environment"]["device_type"] == "cuda"}
    if best is not None:
        checks = {"fraction_of_matmul": best["fraction_of_matmul"]
                  >= TARGETS["fraction_of_matmul_min"],
                  "peak_memory": best["peak_memory_gib"] <= TARGETS["peak_memory_gib_max"]}
        if "speedup_vs_released" in best:
            checks["speedup_vs_released"] = (best["speedup_vs_released"]
                                             >= TARGETS["speedup_vs_released_min"])
        if "speedup_vs_default" in best:
            checks["speedup_vs_default"] = (best["speedup_vs_default"]
                                            >= TARGETS["speedup_vs_default_min"])
        targets.update(mode=best["mode"], met=checks, all_met=all(checks.values()))
    record["targets"] = targets


# ---------------------------------------------------------------------- output
def write_record(record: dict[str, Any], out: str | os.PathLike[str]) -> Path:
    """The record as JSON, written atomically."""
    from .atomic import write_json

    return write_json(out, record)


def _fmt_hours(h: float) -> str:
    return f"{h * 60:.1f} min" if h < 1 else (f"{h:.2f} h" if h < 48 else f"{h / 24:.1f} d")


def format_report(record: dict[str, Any]) -> str:
    """Human-readable summary of a record (what ``caa bench`` prints)."""
    env, model, s = record["environment"], record["model"], record["settings"]
    mm = record["matmul"]
    lines = [
        f"device: {env['device_name']} ({env['device_type']}), torch {env['torch']}, "
        f"CUDA {env['cuda']}, cuDNN {env['cudnn']}, {env['torch_threads']} torch threads",
        f"model: {s['topology']} + {s['pooling']}, {s['strategy']}"
        + (f" (cond layer {s['cond_layer']})" if s["cond_layer"] is not None else "")
        + f", width {s['width']:g}, {model['params']:,} parameters; input "
        f"{s['frames']}x{s['mels']}, batch {s['batch']}",
        f"FLOPs: {model['forward_flops_per_sample'] / 1e9:.3f} GFLOP forward per clip, "
        f"{model['training_flops_per_step'] / 1e12:.4f} TFLOP per training step "
        f"(training = 3 x forward, analytic)",
        f"matmul {mm[mm['reference']]['size']}² {mm['reference']}: "
        f"{mm['reference_tflops']:.3f} TFLOP/s"
        + (f"; fp32 (no TF32): {mm['fp32']['tflops']:.3f} TFLOP/s" if "bf16" in mm else ""),
        "",
        f"{'mode':<9} {'warm-up':>8} {'steps/s':>8} {'samples/s':>9} {'ms/step':>8} {'TFLOP/s':>8} "
        f"{'%matmul':>7} {'peak GiB':>8} {'vs rel':>6} {'vs def':>6} {'eval clip/s':>11} "
        f"{'15k run':>9} {'Table II':>9}",
    ]
    for name, m in record["modes"].items():
        if "error" in m:
            lines.append(f"{name:<9} FAILED: {m['error']}")
            continue
        rel = m.get("speedup_vs_released")
        dflt = m.get("speedup_vs_default")
        lines.append(
            f"{name:<9} {m['warmup_s']:7.1f}s {m['steps_per_s']:8.2f} {m['samples_per_s']:9.1f} "
            f"{m['step_ms_median']:8.2f} {m['achieved_tflops']:8.3f} "
            f"{100 * m['fraction_of_matmul']:6.1f}% {m['peak_memory_gib']:8.2f} "
            f"{'' if rel is None else f'{rel:5.2f}x':>6} "
            f"{'' if dflt is None else f'{dflt:5.2f}x':>6} {m['eval_clips_per_s']:11.1f} "
            f"{_fmt_hours(m['implied']['run_train_hours']):>9} "
            f"{_fmt_hours(m['implied']['table2_train_hours']):>9}"
        )
    lines.append("")
    lines.append("implied times: " + record["implied_assumptions"])
    for name, m in record["modes"].items():
        if "implied" in m:
            imp = m["implied"]
            lines.append(f"  {name}: one run {_fmt_hours(imp['run_train_hours'])} training + "
                         f"~{_fmt_hours(imp['run_eval_hours_estimate'])} evaluation; Table II "
                         f"~{_fmt_hours(imp['table2_total_hours_estimate'])} in all")
    t = record["targets"]
    if "met" in t:
        verdict = ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in t["met"].items())
        lines.append(f"targets ({t['mode']}{'' if t['meaningful'] else '; meant for a GPU'}): "
                     f"{verdict}")
    f = record.get("features", {})
    if "transform_clips_per_s" in f:
        lines.append(f"features ({f['clips']} clips of {f['clip_seconds']:g} s): log-mel "
                     f"transform {f['transform_clips_per_s']:.1f} clips/s on {f['device']}, "
                     f"extract_features {f['extract_clips_per_s']:.1f} clips/s end to end")
    else:
        lines.append(f"features: {f.get('skipped') or f.get('error')}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- numerics
@dataclass
class NumericsReport:
    """Loss curves and accuracies of the reference and the fast path from one init."""

    device: str
    candidate: str  # what was compared with the fp32 reference
    steps: int
    loss_reference: list[float]
    loss_candidate: list[float]
    accuracy_reference: float
    accuracy_candidate: float
    max_loss_rel_diff: float
    final_loss_rel_diff: float
    accuracy_diff: float
    rtol: float
    acc_tol: float
    ok: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_fast_numerics(
    s: BenchSettings | None = None,
    steps: int = 8,
    rtol: float = 0.05,
    acc_tol: float = 0.15,
    cpu_autocast: bool = True,
    use_engine: bool = True,
) -> NumericsReport:
    """Train the same initial model on the same tiny learnable data twice - true fp32
    (the ``released`` recipe, data resident) and the fast path - and compare.

    Pass when every step's loss agrees within ``rtol`` (relative) and the final
    training-set scene accuracies within ``acc_tol``. A handful of steps at lr 1e-3
    keeps the two trajectories close, so a bigger gap means the fast path computes
    something else (wrong cast, layout bug), not noise. On GPU the candidate is the
    engine's fast update; on CPU the engine has no fast path, so the candidate is the
    bench's own bf16-autocast + channels_last recipe (``cpu_autocast``; slow, but
    tiny here) - or fp32 when ``cpu_autocast`` is False.
    """
    if s is None:
        s = BenchSettings.quick(batch=8, frames=32, mels=32, features=False)
    device = resolve_accelerator(s.accelerator)
    n = 4 * s.batch
    data = synthetic_data(n, s.frames, s.mels, s.batch, steps, seed=s.seed, signal=1.0)
    notes: list[str] = []

    def train(trainer: Trainer) -> tuple[list[float], float]:
        with torch_flags(trainer.flags, s.threads), trainer.settings_ctx():
            losses = torch.stack([trainer.step(i) for i in range(steps)]).float().cpu()
            # training-set accuracy with batch statistics (BatchNorm's running averages
            # are far from settled after a few steps), the same way for both paths
            x = torch.from_numpy(data.x).to(device)
            pred = torch.cat([trainer.predict(x[i:i + s.batch]).scene.float().argmax(dim=1)
                              for i in range(0, n, s.batch)]).cpu().numpy()
        return losses.tolist(), float((pred == data.scene).mean())

    ref_recipe = replace(recipe_for("released", device), resident=True)
    ref_loss, ref_acc = train(RecipeTrainer(ref_recipe, s, data, device))
    if device.type == "cuda":
        cand = make_trainer("fast", s, data, device, use_engine=use_engine)
        name = f"fast ({cand.source})"
    else:
        recipe = recipe_for("fast", device)
        if not cpu_autocast:
            recipe = replace(recipe, autocast=None, channels_last=False)
            notes.append("CPU: the fast path is fp32 here (engine behaviour); the check "
                         "then only covers the update order and optimiser")
        else:
            notes.append("CPU: the engine's fast path is fp32 on CPU; the candidate is the "
                         "bench's bf16-autocast + channels_last recipe on CPU")
        cand = RecipeTrainer(recipe, s, data, device)
        name = f"fast recipe on cpu ({'bf16 autocast' if cpu_autocast else 'fp32'})"
    cand_loss, cand_acc = train(cand)

    verdict = compare_runs(ref_loss, cand_loss, ref_acc, cand_acc, rtol, acc_tol)
    if not verdict["finite"]:
        notes.append("a loss is not finite")
    return NumericsReport(
        device=device.type, candidate=name, steps=steps, loss_reference=ref_loss,
        loss_candidate=cand_loss, accuracy_reference=ref_acc, accuracy_candidate=cand_acc,
        max_loss_rel_diff=verdict["max_loss_rel_diff"],
        final_loss_rel_diff=verdict["final_loss_rel_diff"],
        accuracy_diff=abs(cand_acc - ref_acc), rtol=rtol, acc_tol=acc_tol, ok=verdict["ok"],
        notes=notes,
    )


def compare_runs(ref_loss: Sequence[float], cand_loss: Sequence[float], ref_acc: float,
                 cand_acc: float, rtol: float, acc_tol: float) -> dict[str, Any]:
    """The numerics verdict: every step's loss within ``rtol`` (relative to the
    reference), accuracies within ``acc_tol``, everything finite."""
    if len(ref_loss) != len(cand_loss) or not ref_loss:
        raise ValueError(f"loss curves differ in length ({len(ref_loss)} vs {len(cand_loss)})")
    rel = [abs(a - b) / max(abs(a), 1e-6) for a, b in zip(ref_loss, cand_loss, strict=True)]
    finite = all(math.isfinite(v) for v in [*ref_loss, *cand_loss, ref_acc, cand_acc])
    ok = finite and max(rel) <= rtol and abs(cand_acc - ref_acc) <= acc_tol
    return {"max_loss_rel_diff": max(rel), "final_loss_rel_diff": rel[-1], "finite": finite,
            "ok": bool(ok)}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m caalib.bench``: the ``caa bench`` options without the rest of the CLI
    (which imports every stage, some needing librosa/soundfile)."""
    import argparse

    from .commands.bench import add_arguments, run_bench_command
    from .errors import CaaError

    parser = argparse.ArgumentParser(prog="python -m caalib.bench",
                                     description="Time training steps (see caa bench).")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_bench_command(args)
    except CaaError as exc:
        print(f"caa bench: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
