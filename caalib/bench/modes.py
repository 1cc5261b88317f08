"""How each mode runs one training update (forward, NLL loss(es), backward, Adam step).

- ``released``: as the authors' code trains - true fp32 (no TF32 for convolutions or
  matmuls), eager, NCHW, every batch indexed on the host and copied to the device
  (pageable memory, as the released code), single-tensor Adam (PyTorch 0.4's loop,
  ``foreach=False``), gradients zeroed rather than freed, ``cudnn.benchmark`` off.
- ``default``: the same loop with PyTorch's default fp32 settings (cuDNN convolutions
  may use TF32, matmuls do not), data resident on the device, PyTorch's default Adam.
- ``fast``: the training engine's own update (:meth:`caalib.training.Engine.update`
  with ``fast=True``) under the engine's own backend settings: bf16 autocast,
  channels_last, TF32, fused Adam (no ``cudnn.benchmark``), data resident on the device,
  no host sync per step. ``compiled`` is the same with ``torch.compile`` (mode
  selectable). On CPU the engine has no fast path, so ``fast`` there is fp32 as well.

The two reference modes are written out here (:class:`RecipeTrainer`); the fast modes
go through the engine's public API (:class:`EngineTrainer`), so the benchmark times
exactly what ``caa train`` runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..models import build_model
from ..training import numerics
from ..training.config import TrainConfig
from ..training.engine import Engine, torch_settings
from ..training.numerics import NumericsReport, SyntheticData
from .environment import TORCH_DEFAULT_FLAGS, TRUE_FP32_FLAGS, resolve_accelerator
from .settings import MODES, BenchSettings


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
    the engine; their recipe here is what ``make_trainer(..., use_engine=False)`` runs)."""
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


def engine_config(s: BenchSettings, device: torch.device, mode: str = "fast") -> TrainConfig:
    """The training config the engine runs ``mode`` under: the paper profile with the
    benchmarked model (``s.model_spec``), width, batch and seed on ``device``."""
    spec = s.model_spec
    return TrainConfig.from_profile(
        "paper", topology=spec.topology, pooling=spec.pooling, strategy=spec.strategy,
        cond_layer=spec.cond_layer, attention=spec.attention,
        train_source="a" if spec.strategy == "single" else None,
        width=float(s.width), batch_size=s.batch, seed=s.seed,
        accelerator=device.type,
        fast=mode in ("fast", "compiled"), compile=mode == "compiled",
    )


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

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None) -> Any:
        raise NotImplementedError  # pragma: no cover

    def describe(self) -> dict[str, Any]:  # pragma: no cover
        """What the record's ``recipe`` says of this trainer."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> Any:
        """Forward pass without gradients under the mode's autocast (evaluation)."""
        with self.autocast():
            return self.forward(x, source=torch.zeros(x.shape[0], dtype=torch.long,
                                                      device=x.device))


def _adam_kwargs(kind: str) -> dict[str, Any]:
    return {"single": {"foreach": False}, "default": {}, "fused": {"fused": True}}[kind]


class RecipeTrainer(Trainer):
    """The update written out here, parameterised by a :class:`Recipe`."""

    def __init__(self, recipe: Recipe, s: BenchSettings, data: SyntheticData,
                 device: torch.device, lam: float = 1.0) -> None:
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
            self.d = torch.from_numpy(data.source).to(device)
            self.order = torch.from_numpy(data.order).to(device)
        self.step = self._step

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.recipe.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.recipe.autocast)

    def describe(self) -> dict[str, Any]:
        return self.recipe.describe()

    def _batch(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.recipe.resident:
            rows = self.order[i]
            return self.x[rows], self.y[rows], self.d[rows]
        rows_np = self.host.order[i]  # the released generator: numpy batch, then a copy
        return tuple(torch.from_numpy(a[rows_np]).to(self.device)  # type: ignore[return-value]
                     for a in (self.host.x, self.host.scene, self.host.source))

    def _step(self, i: int) -> torch.Tensor:
        xb, yb, db = self._batch(i)
        with self.autocast():
            out = self.forward(xb, source=db if self.teacher else None)
        loss = F.nll_loss(out.scene.float(), yb)
        if self.multi:
            loss = loss + self.lam * F.nll_loss(out.source.float(), db)
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
        cfg = engine_config(s, device, mode)
        self.mode, self.device, self.config = mode, device, cfg
        self.compile_mode = s.compile_mode if mode == "compiled" else None
        self.flags = None
        self.settings_ctx = lambda: torch_settings(device, cfg)
        with self.settings_ctx():
            self.engine = Engine(cfg, data.run_data(), device)
        if mode == "compiled" and s.compile_mode != "default":
            # the engine compiles with torch.compile's default mode; another is asked for
            self.engine.forward = torch.compile(self.engine.model, mode=s.compile_mode)
        self.model = self.engine.model
        self.x, self.y, self.d = self.engine.tensors("train")
        self.order = torch.from_numpy(data.order).to(device)
        self.lam = lam
        self.step = self._step

    def _step(self, i: int) -> torch.Tensor:
        rows = self.order[i]
        return self.engine.update(self.x[rows], self.y[rows], self.d[rows], self.lam)[0]

    def autocast(self) -> contextlib.AbstractContextManager:
        return self.engine.autocast()

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None) -> Any:
        return self.engine.forward(x, source=source)

    def describe(self) -> dict[str, Any]:
        return {"name": self.mode, "engine_config_fast": self.config.fast,
                "engine_config_compile": self.config.compile,
                "compile_mode": self.compile_mode}


def make_trainer(mode: str, s: BenchSettings, data: SyntheticData, device: torch.device,
                 lam: float = 1.0, use_engine: bool = True) -> Trainer:
    """``fast``/``compiled`` from the engine (or, with ``use_engine=False``, the bench's
    own recipe of them); the reference modes always from the recipes here."""
    if mode in ("fast", "compiled") and use_engine:
        return EngineTrainer(mode, s, data, device, lam)
    return RecipeTrainer(recipe_for(mode, device), s, data, device, lam)


def check_fast_numerics(s: BenchSettings | None = None, steps: int = 8, rtol: float = 0.05,
                        acc_tol: float = 0.15, cpu_autocast: bool = True) -> NumericsReport:
    """The engine's numerics check (:func:`caalib.training.numerics.check_fast_numerics`)
    for the model, width, batch, input size, seed and accelerator of ``s`` (default: the
    ``--cpu-quick`` model at batch 8 on 32 x 32 inputs)."""
    if s is None:
        s = BenchSettings.quick(batch=8, frames=32, mels=32, features=False)
    device = resolve_accelerator(s.accelerator)
    return numerics.check_fast_numerics(
        engine_config(s, device, "fast"), frames=s.frames, mels=s.mels, steps=steps,
        rtol=rtol, acc_tol=acc_tol, cpu_autocast=cpu_autocast)
