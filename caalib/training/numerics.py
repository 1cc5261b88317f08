"""Does the fast path train the same model? Its loss trajectory against true fp32.

The engine's fast update (``fast=True`` on CUDA: bf16 autocast, channels_last, TF32,
fused Adam) must compute what its true-fp32 update computes (the released arithmetic),
only faster. :func:`check_fast_numerics` trains one initial model on the same tiny
learnable data twice with :meth:`Engine.update` - once under the fp32 config, once
under the fast one - and compares every step's loss and the final scene accuracy.

The data (:func:`synthetic_data`) is learnable on purpose: each scene adds its own
pattern and each device its own spectral tilt, so both losses fall within a few steps.
``caa bench`` times its training steps on the same data.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from .config import TrainConfig
from .data import RunData, Split
from .engine import Engine, resolve_accelerator, torch_settings


# ---------------------------------------------------------------------- learnable data
@dataclass
class SyntheticData:
    """A small learnable training set: each scene adds its own pattern, each source
    (recording device) its own spectral tilt, so both losses can fall (the numerics
    check needs that)."""

    x: np.ndarray  # (N, T, F) float32
    scene: np.ndarray  # (N,) int64
    source: np.ndarray  # (N,) int64: the recording device's index
    order: np.ndarray  # (steps, batch) rows of every step, fixed by the seed

    def run_data(self) -> RunData:
        """The clips as an in-memory :class:`RunData` (train = evaluate, no holdout, no
        attention clips, identity standardisation): what an :class:`Engine` is built on."""
        n, frames, mels = self.x.shape
        split = Split(x=self.x, scene=self.scene, source=self.source,
                      meta=pd.DataFrame({"filename": [f"clip{i}.wav" for i in range(n)]}))
        return RunData(
            train=split, evaluate=split, holdout=None,
            mean=np.zeros(mels, np.float32), std=np.ones(mels, np.float32),
            attention_index=np.zeros(0, np.int64),
            attention_logmel=np.zeros((0, frames, mels), np.float32),
        )


def synthetic_data(n: int, frames: int, mels: int, batch: int, steps: int,
                   seed: int = 0, signal: float = 1.0) -> SyntheticData:
    """``n`` clips of ``frames`` x ``mels`` and the batch rows of ``steps`` updates."""
    rng = np.random.default_rng(seed)
    scene = np.arange(n) % 10
    source = (np.arange(n) // 10) % 3
    pattern = rng.standard_normal((10, frames, mels)).astype(np.float32)
    tilt = np.linspace(-1.0, 1.0, mels, dtype=np.float32)[None, :] * np.array(
        [-1.0, 0.0, 1.0], dtype=np.float32)[:, None]
    x = rng.standard_normal((n, frames, mels)).astype(np.float32)
    x += signal * pattern[scene] + signal * tilt[source][:, None, :]
    order = rng.integers(0, n, size=(steps, batch))
    return SyntheticData(x=x, scene=scene.astype(np.int64), source=source.astype(np.int64),
                         order=order)


# ---------------------------------------------------------------------- the check
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


def _trajectory(config: TrainConfig, data: SyntheticData, device: torch.device,
                steps: int, cpu_bf16: bool) -> tuple[list[float], float]:
    """Train ``steps`` engine updates from the config's seed; losses and the final
    training-set scene accuracy (with batch statistics, the same way for both paths:
    BatchNorm's running averages are far from settled after a few steps)."""
    with torch_settings(device, config):
        engine = Engine(config, data.run_data(), device)
        cast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
        if cpu_bf16:  # the fast path's arithmetic, forced on the CPU
            engine.model.to(memory_format=torch.channels_last)
            cast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
        x, y, d = engine.tensors("train")
        order = torch.from_numpy(data.order).to(device)
        losses = []
        for i in range(steps):
            rows = order[i]
            with cast():
                losses.append(engine.update(x[rows], y[rows], d[rows], lam=1.0)[0])
        curve = torch.stack(losses).float().cpu().tolist()
        teacher = config.strategy == "teacher_forcing"
        b = config.batch_size
        with torch.no_grad(), cast(), engine.autocast():
            pred = torch.cat([
                engine.forward(x[i:i + b], source=d[i:i + b] if teacher else None)
                .scene.float().argmax(dim=1) for i in range(0, x.shape[0], b)])
    return curve, float((pred.cpu().numpy() == data.scene).mean())


def check_fast_numerics(config: TrainConfig, *, frames: int = 32, mels: int = 32,
                        steps: int = 8, rtol: float = 0.05, acc_tol: float = 0.15,
                        cpu_autocast: bool = True) -> NumericsReport:
    """Train ``config``'s model on the same tiny learnable data (``4 x batch_size``
    clips of ``frames`` x ``mels``) twice - the engine in true fp32 (``fast=False``,
    ``precision="fp32"``, TF32 off) and the engine's fast path (``fast=True``, precision
    resolved as a run resolves it) - and compare.

    Pass when every step's loss agrees within ``rtol`` (relative) and the final
    training-set scene accuracies within ``acc_tol``. A handful of steps at lr 1e-3
    keeps the two trajectories close, so a bigger gap means the fast path computes
    something else (wrong cast, layout bug), not noise. On CPU the engine has no fast
    path, so the candidate is the engine's update under CPU bf16 autocast with a
    channels_last model (``cpu_autocast``; slow, but tiny here) - or plain fp32 when
    ``cpu_autocast`` is False.
    """
    device = resolve_accelerator(config.accelerator)
    data = synthetic_data(4 * config.batch_size, frames, mels, config.batch_size, steps,
                          seed=config.seed, signal=1.0)
    reference = config.replace(fast=False, compile=False, precision="fp32", tf32=False)
    fast = config.replace(fast=True, precision="auto", tf32=None)
    notes: list[str] = []
    ref_loss, ref_acc = _trajectory(reference, data, device, steps, cpu_bf16=False)
    if device.type == "cuda":
        name = "fast (caalib.training.Engine)"
        cand_loss, cand_acc = _trajectory(fast, data, device, steps, cpu_bf16=False)
    else:
        if cpu_autocast:
            notes.append("CPU: the engine's fast path is fp32 on CPU; the candidate is its "
                         "update under CPU bf16 autocast with a channels_last model")
        else:
            notes.append("CPU: the fast path is fp32 here (engine behaviour); the check "
                         "then only covers the update order and optimiser")
        name = f"fast recipe on cpu ({'bf16 autocast' if cpu_autocast else 'fp32'})"
        cand_loss, cand_acc = _trajectory(fast, data, device, steps, cpu_bf16=cpu_autocast)

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
