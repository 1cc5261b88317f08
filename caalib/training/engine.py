"""The training loop: four strategies, the released λ and learning-rate rules, resume.

One loop serves every strategy (study notes section 3):

- ``single``: train and evaluate on one device's clips, no conditioning;
- ``joint``: all devices, no conditioning;
- ``teacher_forcing``: the true device one-hot is fed to the conditioned block;
- ``multi_task``: CNN-d predicts the device, whose one-hot conditions the block; the
  loss is ``NLL(scene) + λ·NLL(device)`` with λ chosen by ``config.lambda_mode``.

Steps are counted from 1: history row ``i`` is the ``i``-th update, made with learning
rate ``lr_at(i - 1)``; an evaluation follows step ``i`` when ``i % eval_every == 0`` and
after the last step, and a λ switch decided there applies from step ``i + 1``. The
batch order is a pure function of ``(seed, step)``, and a checkpoint holds everything
else (model, optimiser, λ state, RNG states, history), so a run killed at any moment and
started again ends bit-identical on CPU to one never interrupted.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .. import rundir
from ..accelerator import resolve_torch_device
from ..constants import EVAL_DEVICES, SCENES, TRAIN_DEVICES
from ..errors import ConfigError, DatasetError
from ..metrics import device_metrics, device_recall
from . import runstore
from .augment import Mix, build_augmenter
from .config import TrainConfig
from .data import RunData, Split, batch_indices, load_run_data
from .unseen import conditioning_sources, source_centroids

CHECKPOINT_FORMAT = 2  # 2: λ re-decided at every evaluation (no latch)
#: Clips scored per forward pass on a GPU: scoring keeps no activations for a backward
#: pass, so a large batch costs little memory and saves launches (BatchNorm is in eval
#: mode, so each clip's score does not depend on its batch-mates). CPU runs keep twice
#: the training batch (at least 32), which their recorded numbers were made with.
EVAL_BATCH_CUDA = 128


def sparse_eval_every(config: TrainConfig) -> int:
    """The evaluation interval of runs whose training reads no evaluation: a multiple of
    ``eval_every`` giving about ten evaluations a run (1,500 for the paper profile)."""
    return config.eval_every * max(1, config.iterations // 10 // config.eval_every)


def evaluates_at(config: TrainConfig, step: int) -> bool:
    """Whether the evaluate split is scored after 1-based ``step``.

    Always after the last step (the reported metrics). Every ``eval_every`` steps where a
    rule reads the result (the released λ of multi-task runs) or with
    ``eval_schedule="dense"``; otherwise every :func:`sparse_eval_every` steps, for the
    training curves, or never before the last with ``eval_schedule="final"``.
    Evaluation changes nothing the training reads (no RNG, BatchNorm in eval mode), so
    the final metrics are identical either way (tested).
    """
    if step == config.iterations:
        return True
    reads_evaluation = config.strategy == "multi_task" and config.lambda_mode == "released"
    if config.eval_schedule == "dense" or reads_evaluation:
        return step % config.eval_every == 0
    if config.eval_schedule == "final":
        return False
    return step % sparse_eval_every(config) == 0


def _macro(recall: dict[str, float] | None) -> float | None:
    """Mean of the per-device recalls present: the released ``average='macro'``."""
    if recall is None:
        return None
    values = [v for v in recall.values() if not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


# ---------------------------------------------------------------------- small rules
def lr_at(config: TrainConfig, step: int) -> float:
    """Learning rate of 0-based step ``step``.

    ``released``: constant - the released decay condition ``iteration % 200 == 0 > 0``
    chains into ``(iteration % 200 == 0) and (0 > 0)``, which is always false.
    ``paper``: ``lr · factor^(step // every)`` (×0.9 every 200 iterations).
    """
    if config.lr_decay == "released":
        return config.lr
    return config.lr * config.lr_decay_factor ** (step // config.lr_decay_every)


def resolve_accelerator(name: str) -> torch.device:
    """The torch device of ``TrainConfig.accelerator``: ``auto`` picks CUDA when
    available; asking for CUDA without one is a ConfigError."""
    return resolve_torch_device(name, field="accelerator")


class UncertaintyWeights(nn.Module):
    """Kendall et al. (2018) task weighting: ``Σ exp(-s_k)·L_k + s_k / 2``.

    ``s_k = log σ_k²`` are learned with the network; the effective λ (device weight
    relative to the scene weight) is ``exp(s_scene - s_device)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(2))

    def forward(self, loss_scene: torch.Tensor, loss_device: torch.Tensor) -> torch.Tensor:
        s = self.log_vars
        return (torch.exp(-s[0]) * loss_scene + 0.5 * s[0]
                + torch.exp(-s[1]) * loss_device + 0.5 * s[1])

    def effective_lambda(self) -> torch.Tensor:
        return torch.exp(self.log_vars[0] - self.log_vars[1]).detach()


@contextlib.contextmanager
def torch_settings(device: torch.device, config: TrainConfig) -> Iterator[None]:
    """Threads, determinism and TF32 for the run, restored afterwards (notebooks share a
    process); an :class:`Engine` trains under them (``caa bench`` and the numerics check too)."""
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    bench = torch.backends.cudnn.benchmark
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        if device.type == "cpu":
            torch.set_num_threads(config.cpu_threads)  # part of the run's identity
            torch.use_deterministic_algorithms(True, warn_only=True)
        else:
            # No cudnn.benchmark: measured on an H100 for the paper-size atrous model, its
            # exhaustive search cost ~100 s at the first step and ~30 s at every new
            # evaluation batch shape, and saved 2.5 % per step (25.7 -> 25.1 ms).
            torch.backends.cudnn.benchmark = False
            # TF32 is the config's, not torch's default (cuDNN convolutions use TF32
            # unless told otherwise, which is not the released true-fp32 arithmetic)
            torch.backends.cuda.matmul.allow_tf32 = bool(config.tf32)
            torch.backends.cudnn.allow_tf32 = bool(config.tf32)
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
        torch.backends.cudnn.benchmark = bench
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


# ---------------------------------------------------------------------- the engine
class Engine:
    """Model, optimiser, λ state and history of one run on one torch device."""

    def __init__(self, config: TrainConfig, data: RunData, device: torch.device) -> None:
        self.config = config
        self.data = data
        self.device = device
        self.fast = config.fast and device.type == "cuda"
        torch.manual_seed(config.seed)
        from ..models import build_model

        #: the model's device slots: the dataset's training devices (never an unseen one)
        self.known_sources = TRAIN_DEVICES[config.dataset]
        self.model = build_model(
            config.topology, config.pooling, config.strategy, config.cond_layer,
            n_sources=len(self.known_sources), width=config.width, n_frames=data.n_frames,
            n_mels=data.n_mels, attention=config.attention,
        ).to(device)
        self.augmenter = build_augmenter(config, data.std, device)
        if self.fast:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.weighting = (
            UncertaintyWeights().to(device)
            if config.strategy == "multi_task" and config.lambda_mode == "learned" else None
        )
        params = list(self.model.parameters())
        if self.weighting is not None:
            params += list(self.weighting.parameters())
        self.optimizer = torch.optim.Adam(
            params, lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps,
            weight_decay=config.weight_decay, **({"fused": True} if self.fast else {}),
        )
        self.forward = torch.compile(self.model) if config.compile else self.model
        self.step = 0  # updates done
        self.lambda_low = False  # λ = lambda_after in force (else 1)
        self.lambda_switch_step: int | None = None  # first evaluation that lowered λ
        self.lambda_returns = 0  # how often λ went back to 1 after being lowered
        self.history: list[dict[str, Any]] = []
        self.wall_time_s = 0.0
        self.decision_log: list[tuple[int, str, float]] = []  # (step, split, accuracy)
        self._on_device: dict[str, tuple[torch.Tensor, ...]] = {}
        self._conditioning: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

    # -- data on the torch device ------------------------------------------------------
    def tensors(self, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x, scene, source) of split ``name``, moved to the torch device once."""
        if name not in self._on_device:
            split: Split = getattr(self.data, name)
            self._on_device[name] = tuple(  # copies: pandas/numpy views may be read-only
                torch.tensor(np.asarray(a)).to(self.device)
                for a in (split.x, split.scene, split.source)
            )
        return self._on_device[name]  # type: ignore[return-value]

    def autocast(self) -> contextlib.AbstractContextManager:
        """The run's arithmetic: bf16 autocast on CUDA when ``precision`` is bf16, else none."""
        if self.config.precision == "bf16" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def history_columns(self) -> tuple[str, ...]:
        """history.csv's columns: one accuracy and recall column per evaluate device."""
        return rundir.history_columns(EVAL_DEVICES[self.config.dataset])

    @property
    def current_lambda(self) -> float:
        return self.config.lambda_after if self.lambda_low else 1.0

    # -- one update --------------------------------------------------------------------
    def update(self, xb: torch.Tensor, yb: torch.Tensor, db: torch.Tensor,
               lam: float, mix: Mix | None = None) -> torch.Tensor:
        """One Adam step; returns (loss, loss_scene, loss_device, λ) as a device tensor.

        ``mix`` (mixup ran on ``xb``): each loss, and teacher forcing's one-hot, is the
        ``mix.lam`` : ``1 - mix.lam`` blend of the row's and its partner's targets."""
        cfg = self.config
        source = db if cfg.strategy == "teacher_forcing" else None
        if source is not None and mix is not None:
            n = len(self.known_sources)
            source = (mix.lam * F.one_hot(db, n) + (1 - mix.lam) * F.one_hot(db[mix.perm], n)
                      ).float()
        with self.autocast():
            out = self.forward(xb, source=source)

        def nll(logp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            if mix is None:
                return F.nll_loss(logp, target)
            return (mix.lam * F.nll_loss(logp, target)
                    + (1 - mix.lam) * F.nll_loss(logp, target[mix.perm]))

        loss_scene = nll(out.scene.float(), yb)
        nan = torch.full((), float("nan"), device=xb.device)
        if cfg.strategy == "multi_task":
            loss_device = nll(out.source.float(), db)
            if self.weighting is not None:
                loss = self.weighting(loss_scene, loss_device)
                lam_t = self.weighting.effective_lambda()
            else:
                loss = loss_scene + lam * loss_device
                lam_t = torch.full((), lam, device=xb.device)
        else:
            loss, loss_device, lam_t = loss_scene, nan, nan
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return torch.stack([loss.detach(), loss_scene.detach(), loss_device.detach(),
                            lam_t.float()])

    # -- evaluation --------------------------------------------------------------------
    def conditioning(self, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(source indices to condition on, rows to leave unconditioned or None) of split
        ``name``: the true devices, with any device the model has no slot for replaced as
        ``config.unseen_source`` says (caalib.training.unseen); computed once."""
        if name not in self._conditioning:
            split: Split = getattr(self.data, name)
            _, _, dev = self.tensors(name)
            n = len(self.known_sources)
            centroids = None
            if (self.config.strategy == "teacher_forcing" and self.config.unseen_source
                    == "nearest" and (split.source >= n).any()):
                centroids = source_centroids(self.data.train.x, self.data.train.source, n)
            if self.config.strategy == "multi_task" and self.config.unseen_source == "nearest":
                idx, unseen = split.source, None  # CNN-d's answer is a known device already
            else:
                idx, unseen = conditioning_sources(split.source, n, self.config.unseen_source,
                                                   x=split.x, centroids=centroids)
            self._conditioning[name] = (
                dev if idx is split.source else torch.tensor(idx).to(self.device),
                None if unseen is None else torch.tensor(unseen).to(self.device))
        return self._conditioning[name]

    @torch.no_grad()
    def predict(self, name: str, rows: np.ndarray | None = None,
                want_attention: bool = False) -> dict[str, np.ndarray | None]:
        """Scene/source log-probabilities (and attention) of split ``name`` in eval mode."""
        x, _, _ = self.tensors(name)
        dev, unseen = self.conditioning(name) if self.config.conditioned else (None, None)
        if rows is not None:
            idx = torch.tensor(np.array(rows, dtype=np.int64)).to(self.device)
            x = x[idx]
            dev = None if dev is None else dev[idx]
            unseen = None if unseen is None else unseen[idx]
        self.model.eval()
        bs = EVAL_BATCH_CUDA if self.device.type == "cuda" else \
            max(2 * self.config.batch_size, 32)
        scenes, sources, atts = [], [], []
        try:
            for start in range(0, x.shape[0], bs):
                part = slice(start, start + bs)
                extra = {} if unseen is None else {"unconditioned": unseen[part]}
                with self.autocast():
                    out = self.forward(x[part], source=dev[part]
                                       if self.config.strategy == "teacher_forcing" else None,
                                       **extra)
                scenes.append(out.scene.float())
                if out.source is not None:
                    sources.append(out.source.float())
                if want_attention and out.attention is not None:
                    atts.append(out.attention.float())
        finally:
            self.model.train()
        return {
            "scene": torch.cat(scenes).cpu().numpy(),
            "source": torch.cat(sources).cpu().numpy() if sources else None,
            "attention": torch.cat(atts).cpu().numpy() if atts else None,
        }

    def evaluate(self) -> dict[str, Any]:
        """Metrics on the evaluate split (plus CNN-d's per-device recall and their mean)."""
        split = self.data.evaluate
        pred = self.predict("evaluate")
        y_pred = pred["scene"].argmax(axis=1)
        metrics = device_metrics(split.scene, y_pred, split.meta["source"].to_numpy())
        known = split.source < len(self.known_sources)  # CNN-d has no class for the others
        recall = (
            device_recall(split.source[known], pred["source"].argmax(axis=1)[known],
                          self.known_sources)
            if pred["source"] is not None else None
        )
        metrics["device_recall"] = recall
        metrics["device_accuracy"] = _macro(recall)
        metrics["_pred"] = pred
        return metrics

    def evaluates_at(self, step: int) -> bool:
        """Whether the evaluate split is scored after ``step`` (see :func:`evaluates_at`)."""
        return evaluates_at(self.config, step)

    def lambda_decision_split(self) -> str | None:
        """Which split's device accuracy decides λ: evaluate (released), the held-out
        training clips (clean), or none (learned / not multi-task)."""
        if self.config.strategy != "multi_task" or self.config.lambda_mode == "learned":
            return None
        return "evaluate" if self.config.lambda_mode == "released" else "holdout"

    def decide_lambda(self, eval_metrics: dict[str, Any] | None) -> None:
        """Re-decide λ from the latest evaluation, as the released loop does at every
        iteration: ``lambda_after`` while CNN-d's macro device accuracy (the mean of its
        per-device recalls) is at least ``lambda_threshold``, else 1 - so λ returns to 1
        when the accuracy falls back. No latch."""
        name = self.lambda_decision_split()
        if name is None:
            return
        if name == "evaluate":
            assert eval_metrics is not None  # the evaluate split is scored at every decision
            acc = eval_metrics["device_accuracy"]
        else:
            pred = self.predict("holdout")
            acc = _macro(device_recall(self.data.holdout.source, pred["source"].argmax(axis=1),
                                       self.known_sources))
        acc = float("nan") if acc is None else float(acc)
        self.decision_log.append((self.step, name, acc))
        low = acc >= self.config.lambda_threshold  # NaN (no clips) compares False: λ = 1
        if low and not self.lambda_low and self.lambda_switch_step is None:
            self.lambda_switch_step = self.step
        if not low and self.lambda_low:
            self.lambda_returns += 1
        self.lambda_low = bool(low)

    # -- checkpoints -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.identity(),
            "iteration": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "weighting": None if self.weighting is None else self.weighting.state_dict(),
            "lambda": {"low": self.lambda_low, "step": self.lambda_switch_step,
                       "returns": self.lambda_returns},
            "decision_log": [list(t) for t in self.decision_log],
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "history": self.history,
            "wall_time_s": self.wall_time_s,
        }

    def restore(self, state: dict[str, Any], source: Path) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(f"{source}: checkpoint format {state.get('format')!r} unknown")
        # a checkpoint written before the unseen-device and augmentation fields existed
        # ran with their defaults (rundir.UNSEEN_AND_AUGMENT_DEFAULTS)
        saved = {**rundir.UNSEEN_AND_AUGMENT_DEFAULTS, **state.get("config", {})}
        diff = [k for k, v in self.config.identity().items() if saved.get(k) != v]
        if diff:
            raise ConfigError(
                f"{source}: checkpoint belongs to another config (fields: {', '.join(diff)})"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.weighting is not None:
            self.weighting.load_state_dict(state["weighting"])
        self.step = int(state["iteration"])
        self.lambda_low = bool(state["lambda"]["low"])
        self.lambda_switch_step = state["lambda"]["step"]
        self.lambda_returns = int(state["lambda"]["returns"])
        self.decision_log = [(int(s), str(n), float(a)) for s, n, a in state["decision_log"]]
        # RNG states must be CPU byte tensors whatever map_location did to them
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([t.cpu() for t in state["rng"]["cuda"]])
        self.history = list(state["history"])
        self.wall_time_s = float(state["wall_time_s"])

    # -- the loop ----------------------------------------------------------------------
    def run(self, run_dir: Path, progress: bool = True) -> dict[str, Any]:
        """Train from ``self.step`` to ``config.iterations``; returns the final metrics."""
        from tqdm.auto import tqdm

        cfg = self.config
        x, y, d = self.tensors("train")
        n = x.shape[0]
        log_every = max(1, min(cfg.eval_every, 25))
        periods = (log_every, cfg.eval_every, cfg.checkpoint_every)
        bar = tqdm(total=cfg.iterations, initial=self.step, disable=not progress,
                   desc=cfg.run_name, unit="it", leave=False, dynamic_ncols=True)
        self.model.train()
        pending: list[torch.Tensor] = []
        last_eval: dict[str, Any] | None = None
        t0 = time.perf_counter()
        try:
            while self.step < cfg.iterations:
                # indices for the steps up to the next log point, uploaded at once
                stop = min([(self.step // p + 1) * p for p in periods] + [cfg.iterations])
                block = stop - self.step
                idx = torch.from_numpy(
                    batch_indices(n, cfg.batch_size, cfg.seed, self.step, block)
                ).to(self.device)
                for b in range(block):
                    lr = lr_at(cfg, self.step)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    rows = idx[b]
                    xb, mix = x[rows], None
                    if self.augmenter is not None:
                        xb, mix = self.augmenter(xb, d[rows], self.step)
                    pending.append(self.update(xb, y[rows], d[rows], self.current_lambda,
                                               mix=mix))
                    self.step += 1
                    self.history.append({"iteration": self.step, "lr": lr})
                # log point: one host sync for the whole block
                values = torch.stack(pending).cpu().numpy()
                for row, v in zip(self.history[-len(pending):], values, strict=True):
                    row.update(loss=float(v[0]), loss_scene=float(v[1]),
                               loss_device=float(v[2]), **{"lambda": float(v[3])})
                pending = []
                bar.update(block)
                post = {"loss": f"{values[:, 0].mean():.3f}"}
                if self.evaluates_at(self.step):
                    last_eval = self.evaluate()
                    row = self.history[-1]
                    for dev in EVAL_DEVICES[cfg.dataset]:
                        row[f"acc_{dev}"] = last_eval["accuracy"].get(dev, float("nan"))
                    row["acc_avg"] = last_eval["accuracy"]["avg"]
                    recall = last_eval["device_recall"] or {}
                    for dev in EVAL_DEVICES[cfg.dataset]:
                        row[f"device_recall_{dev}"] = recall.get(dev, float("nan"))
                    row["device_acc"] = last_eval["device_accuracy"]
                    post["acc"] = f"{last_eval['accuracy']['avg']:.3f}"
                if self.step % cfg.eval_every == 0 or self.step == cfg.iterations:
                    self.decide_lambda(last_eval)
                bar.set_postfix(post, refresh=False)
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.iterations:
                    self.wall_time_s += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    runstore.save_checkpoint(run_dir, self.state())
                    runstore.write_history(run_dir, self.history, self.history_columns)
        finally:
            bar.close()
        if last_eval is None:  # resumed from the final checkpoint: evaluate again
            last_eval = self.evaluate()
        return self.finish(run_dir, last_eval, time.perf_counter() - t0)

    def finish(self, run_dir: Path, ev: dict[str, Any], extra_s: float) -> dict[str, Any]:
        """Write predictions, attention, history and metrics; DONE comes last."""
        cfg, split = self.config, self.data.evaluate
        pred = ev.pop("_pred")
        scores = pred["scene"]
        frame = pd.DataFrame({
            "filename": split.meta["filename"],
            "source": split.meta["source"],
            "scene_label": split.meta["scene_label"],
            "predicted": np.asarray(SCENES)[scores.argmax(axis=1)],
        })
        for k, scene in enumerate(SCENES):
            frame[f"score_{scene}"] = scores[:, k]
        runstore.write_predictions(run_dir, frame)

        if cfg.pooling in ("att", "roi+att") and len(self.data.attention_index):
            rows = self.data.attention_index
            att = self.predict("evaluate", rows=rows, want_attention=True)
            meta = split.meta.iloc[rows]
            runstore.write_attention(run_dir, {
                "attention": att["attention"].astype(np.float32),
                "logmel": self.data.attention_logmel.astype(np.float32),
                "filename": meta["filename"].to_numpy(str),
                "source": meta["source"].to_numpy(str),
                "scene_label": meta["scene_label"].to_numpy(str),
                "predicted": np.asarray(SCENES)[att["scene"].argmax(axis=1)].astype(str),
            })

        metrics = dict(ev)
        metrics["iterations"] = self.step
        metrics["wall_time_s"] = round(self.wall_time_s + extra_s, 3)
        metrics["lambda_mode"] = cfg.lambda_mode if cfg.strategy == "multi_task" else None
        metrics["lambda_switch_iteration"] = self.lambda_switch_step
        metrics["lambda_returns"] = self.lambda_returns if self.lambda_decision_split() else None
        metrics["final_lr"] = lr_at(cfg, max(self.step - 1, 0))
        runstore.write_history(run_dir, self.history, self.history_columns)
        runstore.write_metrics(run_dir, metrics)
        runstore.mark_done(run_dir)
        return metrics


# ---------------------------------------------------------------------- entry point
def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    data_dir: str | Path,
    feature_path: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and evaluate ``config`` into the run directory ``out_dir``; return metrics.

    A finished run with the same config is not touched (its metrics are returned)
    unless ``force``; a partial one resumes from its checkpoint; a directory holding a
    different config - another dataset included, by content fingerprint - raises
    ConfigError rather than mixing two runs, and a directory the study did not make is
    refused. Features are extracted into ``default_feature_path(data_dir)`` on first use
    and reused after. The run directory is locked while training (``RunLocked`` when
    another process holds it).
    """
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"config: expected a TrainConfig, got {type(config).__name__}")
    device = resolve_accelerator(config.accelerator)
    if device.type != "cuda" and (config.precision == "bf16" or config.tf32):
        raise ConfigError(
            f"precision: {config.precision} with tf32={config.tf32} needs CUDA, but this run "
            f"would train on the {device.type}; use precision='fp32', tf32=False "
            "(--precision fp32 --no-tf32)"
        )
    run_dir = Path(out_dir)
    runstore.check_run_dir(run_dir)
    data_path = Path(data_dir)
    if not data_path.is_dir():
        raise DatasetError(f"{data_path}: data directory not found")
    from ..features import (
        dataset_fingerprint,
        default_feature_path,
        extract_features,
        load_feature_fingerprint,
    )
    from .data import verified_fingerprint

    if feature_path is None:  # the cache: built on first use, reused while inputs match
        feature_path = extract_features(
            data_path, default_feature_path(data_path, config.resampler),
            accelerator=device.type, progress=progress, resampler=config.resampler)
        feature_fp = load_feature_fingerprint(feature_path)
    else:  # a file named by the caller must still describe the data at hand (in a
        # sweep's process, a check already passed is rechecked by stat: `data_reuse`)
        feature_fp = verified_fingerprint(feature_path, data_path)
    data_fp = dataset_fingerprint(data_path, feature_fp)
    if config.data_fingerprint not in (None, data_fp):
        raise ConfigError(
            f"data_fingerprint: the config was made for another dataset "
            f"({config.data_fingerprint[:12]}…) than {data_path} ({data_fp[:12]}…)"
        )
    config = config.replace(data_fingerprint=data_fp)

    with runstore.run_lock(run_dir):
        existing = None if force or not run_dir.exists() else runstore.read_config(run_dir)
        if existing is not None:
            diff = existing.differences(config)
            if diff:
                other_data = " (it was trained on other data)" if diff == [
                    "data_fingerprint"] else ""
                raise ConfigError(
                    f"{run_dir / runstore.CONFIG}: the directory holds a run with another "
                    f"config (differs in: {', '.join(diff)}){other_data}; use another "
                    "directory, or replace it with `caa train ... --force`"
                )
            if runstore.is_done(run_dir):
                return runstore.read_metrics(run_dir)
        if force:
            runstore.clear_run(run_dir)

        data = load_run_data(config, feature_path, data_path)
        with torch_settings(device, config):
            engine = Engine(config, data, device)
            state = runstore.load_checkpoint(run_dir, map_location=device)
            if state is not None:
                engine.restore(state, run_dir / runstore.CHECKPOINT)
            # only once the checkpoint is known to be this config's: a refused resume must
            # not relabel the directory (config.json would then disagree with its checkpoint)
            runstore.write_config(run_dir, config)
            runstore.remove_stale_temps(run_dir)
            try:
                metrics = engine.run(run_dir, progress=progress)
            except OSError as exc:  # disk full, quota, vanished directory: one line
                raise ConfigError(
                    f"{run_dir}: cannot write the run ({exc.strerror or exc}); the last "
                    "checkpoint is kept, free space and run again to resume"
                ) from None
    return metrics


def summary_line(metrics: dict[str, Any]) -> str:
    """``A 0.712  B 0.650  C 0.601  avg 0.654`` (devices present only)."""
    acc = metrics["accuracy"]
    parts = [f"{k.upper() if k != 'avg' else 'avg'} {v:.3f}" for k, v in acc.items()
             if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return "  ".join(parts)
