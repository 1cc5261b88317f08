"""One typed, validated training configuration, its profiles and its run name.

Every knob that changes a number lives in :class:`TrainConfig` and is written to the
run's ``config.json``, so a table cell can always be traced back to the exact variant
(released code vs paper text, λ rule, crop, width) that produced it. A config read back
from disk goes through the same validation as one built in code, so a hand-edited or
truncated ``config.json`` fails loudly, naming the field, instead of training something
else.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .. import rundir
from ..constants import ACCELERATORS, DATASETS, EVAL_DEVICES, TRAIN_DEVICES
from ..errors import ConfigError
from ..spec import (  # the model vocabulary, re-exported for the training API
    ATTENTION_VARIANTS,
    AUGMENTATIONS,
    UNSEEN_SOURCE_POLICIES,
    ModelSpec,
    ModelSpecError,
    validate_spec,
)

PROFILES_NAMES: tuple[str, ...] = ("tiny", "demo", "paper")
LR_DECAY_MODES: tuple[str, ...] = ("released", "paper")
LAMBDA_MODES: tuple[str, ...] = ("released", "clean", "learned")
ATTENTION_MODES: tuple[str, ...] = ATTENTION_VARIANTS
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")
#: As in caalib.features.recipe (repeated so configs validate without the audio stack).
RESAMPLERS: tuple[str, ...] = ("kaiser_best", "soxr_hq")

#: Fields that change how fast a run goes but not what it computes (on one device
#: kind). A finished run is reused when everything else matches, so a sweep re-run with
#: another checkpoint interval or on another accelerator does not retrain.
EXECUTION_FIELDS: frozenset[str] = rundir.EXECUTION_FIELDS  # the run directory's rule
EVAL_SCHEDULES: tuple[str, ...] = ("auto", "dense", "final")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run.

    Defaults follow the authors' released code (study notes section 3); the paper's
    text is one switch away:

    - ``lr_decay``: ``"released"`` keeps the learning rate constant, because the
      released condition ``iteration % 200 == 0 > 0`` is a chained comparison that is
      always false; ``"paper"`` multiplies it by ``lr_decay_factor`` (0.9) every
      ``lr_decay_every`` (200) iterations, as the paper's text says.
    - ``lambda_mode`` (multi-task only): ``"released"`` sets λ = 1 until the device
      accuracy of CNN-d on the *evaluate* split reaches ``lambda_threshold`` (0.98),
      then ``lambda_after`` (1e-4) - a test-data leak the paper and code share;
      ``"clean"`` measures that accuracy on a held-out ``holdout_fraction`` of the
      training split (stratified by source, never trained on); ``"learned"`` replaces
      the switch with uncertainty weighting (Kendall et al., 2018), the paper's own
      future work. The switch is checked at every evaluation and never switches back:
      the notes' "λ = 1 until ... reaches 0.98, then 1e-4" describes one transition.
    - ``attention``: the released attention head or the paper's equations, passed to
      ``caalib.models.build_model``.
    - ``max_frames``: keep the first N frames of every clip (train and evaluate alike);
      None keeps whole clips (the paper).
    - ``resampler``: how 48 kHz clips reach 44.1 kHz before the log-mel: resampy's
      ``kaiser_best`` as the released environment did, or ``soxr_hq``.
    - ``precision`` (``bf16`` / ``fp32``) and ``tf32``: the arithmetic of the run, part
      of its identity. The released code trained in true fp32. ``"auto"`` / ``None``
      resolve when the config is made: bf16 autocast with TF32 for the remaining fp32
      ops on CUDA when ``fast``, true fp32 (TF32 off) otherwise; a config read from
      disk always holds the resolved values.
    - ``cpu_threads``: torch's intra-op threads when the run trains on a CPU. CPU results
      depend on it (reductions split differently), so it is part of the identity and
      fixed per run, never taken from the machine; parallelism across runs comes from
      ``caa sweep --jobs`` or Ray. No effect on CUDA runs' numbers.
    - ``data_fingerprint``: the content fingerprint of the dataset the run trains on
      (meta.csv, fold files and every clip's bytes, as the feature file records it).
      None until training fills it in; a run directory holding another fingerprint is
      another run, refused rather than reused or resumed.
    - ``eval_schedule`` (execution only): ``"auto"`` scores the evaluate split every
      ``eval_every`` iterations only where a rule reads it (the released λ of multi-task
      runs) and about ten times a run otherwise; ``"dense"`` every ``eval_every``;
      ``"final"`` after the last iteration only where no rule reads it (the claims
      ledger, which reads final metrics alone). The final metrics are the same every
      way; only the training curves are coarser.
    - ``unseen_source`` (conditioned strategies): what the conditioning gets for a clip
      of a device the model has no slot for (the 2020 layout's evaluate-only S4-S6):
      ``"nearest"``, the known device CNN-d predicts (multi-task) or the nearest known
      device by mean spectrum (teacher forcing); ``"none"``, no conditioning (a zero
      one-hot). Known devices are conditioned as before either way.
    - ``augment``: training-time augmentations, ``+``-joined names of
      ``caalib.spec.AUGMENTATIONS`` (``""``: none, the released recipe), with their
      published hyper-parameters as defaults: ``mixstyle_p``/``mixstyle_alpha``
      (Freq-MixStyle), ``dir_p`` (device impulse responses on device-A clips) and
      ``mixup_alpha`` (caalib.training.augment, docs/unseen-devices.md). A
      hyper-parameter off its default needs its augmentation on.
    - ``train_source``: the recording device (a, b or c; DCASE's ``source_label``) a
      ``single`` run trains and is scored on; None for the other strategies.
    - ``accelerator`` ("auto"/"cpu"/"cuda") is the torch device; ``fast`` turns on
      channels_last and fused Adam on CUDA (no effect on CPU) and lets ``precision="auto"``
      choose bf16; ``compile`` wraps the model in ``torch.compile``.
    """

    dataset: str = "dcase2018"
    topology: str = "atrous"
    pooling: str = "att"
    strategy: str = "joint"
    train_source: str | None = None
    cond_layer: int | None = None
    profile: str = "paper"
    seed: int = 0
    iterations: int = 15_000
    batch_size: int = 16
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    width: float = 1.0
    max_frames: int | None = None
    eval_every: int = 100
    checkpoint_every: int = 500
    lr_decay: str = "released"
    lr_decay_every: int = 200
    lr_decay_factor: float = 0.9
    lambda_mode: str = "released"
    lambda_threshold: float = 0.98
    lambda_after: float = 1e-4
    holdout_fraction: float = 0.1
    attention: str = "released"
    resampler: str = "kaiser_best"
    precision: str = "auto"
    tf32: bool | None = None
    cpu_threads: int = 1
    unseen_source: str = "nearest"
    augment: str = ""
    mixstyle_p: float = 0.4
    mixstyle_alpha: float = 0.3
    dir_p: float = 0.6
    mixup_alpha: float = 0.3
    data_fingerprint: str | None = None
    eval_schedule: str = "auto"
    accelerator: str = "auto"
    fast: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        _validate(self)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_profile(cls, profile: str, **overrides: Any) -> TrainConfig:
        """A config with ``profile``'s sizes; ``overrides`` replace any field."""
        if profile not in PROFILES:
            raise ConfigError(
                f"profile: unknown profile {profile!r}; allowed: {', '.join(PROFILES)}"
            )
        unknown = sorted(set(overrides) - _FIELD_NAMES)
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown TrainConfig field")
        values = {**PROFILES[profile], "profile": profile, **overrides}
        return cls(**values)

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> TrainConfig:
        """Build from a parsed ``config.json``; every problem names ``source`` and field."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        for old, new in RENAMED_FIELDS.items():
            if old in data and new not in data:
                raise ConfigError(f"{source}: field {old!r} was renamed {new!r} (written by "
                                  "an older version of the study: retrain the run)")
        unknown = sorted(set(data) - _FIELD_NAMES)
        if unknown:
            raise ConfigError(f"{source}: field {unknown[0]!r}: unknown TrainConfig field")
        missing = sorted(n for n in _REQUIRED_ON_DISK if n not in data)
        if missing:
            raise ConfigError(
                f"{source}: field{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(m) for m in missing)} missing"
                + (" (written by an older version of the study: retrain the run)"
                   if set(missing) <= _ADDED_FIELDS else "")
            )
        if data.get("precision") == "auto" or data.get("tf32") is None:
            raise ConfigError(f"{source}: fields 'precision' and 'tf32' must be resolved "
                              "(bf16/fp32 and true/false) in a stored config")
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read and validate a ``config.json``."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
        return cls.from_dict(data, source=str(path))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated again)."""
        unknown = sorted(set(changes) - _FIELD_NAMES)
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown TrainConfig field")
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ views
    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (what ``config.json`` holds)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def identity(self) -> dict[str, Any]:
        """The fields that decide what a run computes (execution-only fields left out)."""
        return {k: v for k, v in self.to_dict().items() if k not in EXECUTION_FIELDS}

    def differences(self, other: TrainConfig) -> list[str]:
        """Names of the identity fields in which ``other`` differs from this config.

        ``data_fingerprint`` counts only when both sides know it (a config made before
        its data was read leaves it None)."""
        a, b = self.identity(), other.identity()
        return [k for k in a if a[k] != b[k]
                and not (k == "data_fingerprint" and (a[k] is None or b[k] is None))]

    @property
    def model_spec(self) -> ModelSpec:
        """The model this run trains (the frozen, validated spec the bench uses too)."""
        return ModelSpec(self.topology, self.pooling, self.strategy, self.cond_layer,
                         self.attention)

    @property
    def conditioned(self) -> bool:
        return self.model_spec.conditioned

    def input_frames(self, clip_frames: int) -> int:
        """Frames the model sees of a clip of ``clip_frames``: the first ``max_frames``
        when set (shorter clips whole), as the training data is cut."""
        clip_frames = int(clip_frames)
        return clip_frames if self.max_frames is None else min(self.max_frames, clip_frames)

    @property
    def eval_sources(self) -> tuple[str, ...]:
        """The sources (recording devices) the run is scored on: every device of the
        dataset's evaluate split (A, B, C; all nine on the 2020 layout)."""
        return (self.train_source,) if self.strategy == "single" else EVAL_DEVICES[self.dataset]

    @property
    def train_sources(self) -> tuple[str, ...]:
        """The sources the run trains on, and the model's device slots (CNN-d's classes,
        the conditioning one-hot): never a device seen only in evaluation."""
        return (self.train_source,) if self.strategy == "single" else TRAIN_DEVICES[self.dataset]

    @property
    def augmentations(self) -> tuple[str, ...]:
        """The names of ``augment``, in the order they apply."""
        return tuple(self.augment.split("+")) if self.augment else ()

    @property
    def uses_holdout(self) -> bool:
        """Whether a slice of the training split is held out (clean λ decisions)."""
        return self.strategy == "multi_task" and self.lambda_mode == "clean"

    @property
    def run_name(self) -> str:
        """``<dataset>-<topology>-<pooling>-<strategy>[-<source>][-L<l>]-<profile>-s<seed>``.

        Follows docs/architecture.md. When a faithfulness switch is off its released
        default, a suffix names it (``-lr_paper``, ``-lambda_clean``, ``-att_paper``) so
        the variants of one run never share a directory.
        """
        parts = [self.dataset, self.topology, self.pooling.replace("+", "_"), self.strategy]
        if self.train_source is not None:
            parts.append(self.train_source)
        if self.cond_layer is not None:
            parts.append(f"L{self.cond_layer}")
        parts += [self.profile, f"s{self.seed}"]
        if self.lr_decay != "released":
            parts.append(f"lr_{self.lr_decay}")
        if self.strategy == "multi_task" and self.lambda_mode != "released":
            parts.append(f"lambda_{self.lambda_mode}")
        if self.attention != "released":
            parts.append(f"att_{self.attention}")
        if self.resampler != "kaiser_best":
            parts.append(f"rs_{self.resampler}")
        if self.precision == "bf16":
            parts.append("bf16" if self.tf32 else "bf16_notf32")
        elif self.tf32:
            parts.append("tf32")
        if self.cpu_threads != 1:
            parts.append(f"cpu{self.cpu_threads}")
        return "-".join(parts + rundir.variant_suffixes(self.to_dict()))


# ---------------------------------------------------------------------- profiles
#: Sizes per profile. ``paper`` is the released recipe; the CPU profiles shrink width,
#: clip length and iterations (study notes section 6 gives the step times they rest on).
PROFILES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        iterations=30, batch_size=8, width=1 / 16, max_frames=64, eval_every=10,
        checkpoint_every=10,
    ),
    "demo": dict(
        iterations=400, batch_size=16, width=1 / 16, max_frames=64, eval_every=100,
        checkpoint_every=100,
    ),
    "paper": dict(
        iterations=15_000, batch_size=16, width=1.0, max_frames=None, eval_every=100,
        checkpoint_every=500,
    ),
}

_FIELD_NAMES = frozenset(f.name for f in fields(TrainConfig))
#: Fields renamed since runs were first written (old -> new); a config.json holding an
#: old name is refused, naming the new one. The recording device is ``train_source``,
#: the torch device ``accelerator`` (docs/architecture.md, "Vocabulary").
RENAMED_FIELDS: dict[str, str] = rundir.RENAMED_CONFIG_FIELDS
#: Fields a config.json must contain: every field that decides what a run computes. A
#: missing faithfulness switch (``lr_decay``, ``lambda_mode``, ...) must not silently
#: read as its default; the execution-only fields may be absent.
_REQUIRED_ON_DISK = _FIELD_NAMES - EXECUTION_FIELDS
#: Fields a config.json written before they existed may lack: each one's default is
#: exactly what such a run did (no augmentation; no unseen device on its dataset).
_OPTIONAL_ON_DISK = frozenset(rundir.UNSEEN_AND_AUGMENT_DEFAULTS)
_REQUIRED_ON_DISK = _REQUIRED_ON_DISK - _OPTIONAL_ON_DISK
#: Fields added after runs were first written (their absence marks an old run).
_ADDED_FIELDS = frozenset({"resampler", "precision", "tf32", "cpu_threads",
                           "data_fingerprint"})


# ---------------------------------------------------------------------- validation
def _cuda_available() -> bool:
    import torch  # only when a precision is left to "auto"

    return bool(torch.cuda.is_available())


def _resolve_precision(cfg: TrainConfig) -> None:
    """Fix ``precision`` and ``tf32`` when left open, from the torch device the config
    names: bf16 + TF32 on CUDA with ``fast``, true fp32 otherwise (the released code's)."""
    if cfg.precision != "auto" and cfg.tf32 is not None:
        return
    cuda = cfg.accelerator == "cuda" or (cfg.accelerator == "auto" and _cuda_available())
    if cfg.precision == "auto":
        object.__setattr__(cfg, "precision", "bf16" if cuda and cfg.fast else "fp32")
    if cfg.tf32 is None:
        object.__setattr__(cfg, "tf32", bool(cuda and cfg.precision == "bf16"))


def _type_ok(value: Any, annotation: Any) -> bool:
    """Check a value against the simple annotations TrainConfig uses."""
    if isinstance(annotation, str):
        annotation = eval(annotation)  # noqa: S307 - our own annotations
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(allowed)}")


def _validate(cfg: TrainConfig) -> None:
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if not _type_ok(value, hints[f.name]):
            raise ConfigError(
                f"{f.name}: expected {getattr(hints[f.name], '__name__', hints[f.name])}, "
                f"got {value!r} ({type(value).__name__})"
            )
    # floats given as ints in JSON: normalise so equality and names are stable
    for name in ("lr", "beta1", "beta2", "eps", "weight_decay", "width", "lr_decay_factor",
                 "lambda_threshold", "lambda_after", "holdout_fraction", "mixstyle_p",
                 "mixstyle_alpha", "dir_p", "mixup_alpha"):
        value = getattr(cfg, name)
        if not math.isfinite(value):
            raise ConfigError(f"{name}: must be finite, got {value!r}")
        object.__setattr__(cfg, name, float(value))

    _choice("dataset", cfg.dataset, DATASETS)
    try:  # the model's part: the study's one rule (caalib.spec)
        validate_spec(cfg.topology, cfg.pooling, cfg.strategy, cfg.cond_layer, cfg.attention)
    except ModelSpecError as exc:
        raise ConfigError(str(exc)) from None
    _choice("profile", cfg.profile, PROFILES_NAMES)
    _choice("lr_decay", cfg.lr_decay, LR_DECAY_MODES)
    _choice("lambda_mode", cfg.lambda_mode, LAMBDA_MODES)
    _choice("accelerator", cfg.accelerator, ACCELERATORS)
    _choice("resampler", cfg.resampler, RESAMPLERS)
    _choice("eval_schedule", cfg.eval_schedule, EVAL_SCHEDULES)
    _choice("precision", cfg.precision, PRECISIONS)
    _resolve_precision(cfg)

    if cfg.strategy == "single":
        trainable = TRAIN_DEVICES[cfg.dataset]  # the dataset's devices with training clips
        if cfg.train_source is None:
            raise ConfigError(f"train_source: required for strategy 'single' (one of "
                              f"{', '.join(trainable)})")
        _choice("train_source", cfg.train_source, trainable)
    elif cfg.train_source is not None:
        raise ConfigError(
            f"train_source: only strategy 'single' trains on one source; "
            f"must be null for {cfg.strategy!r}"
        )

    for name in ("iterations", "batch_size", "eval_every", "checkpoint_every",
                 "lr_decay_every", "cpu_threads"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name}: must be >= 1, got {getattr(cfg, name)}")
    if cfg.seed < 0:
        raise ConfigError(f"seed: must be >= 0, got {cfg.seed}")
    if cfg.max_frames is not None and cfg.max_frames < 1:
        raise ConfigError(f"max_frames: must be >= 1 or null, got {cfg.max_frames}")
    if not 0 < cfg.width <= 4:
        raise ConfigError(f"width: must be in (0, 4], got {cfg.width}")
    if cfg.lr <= 0:
        raise ConfigError(f"lr: must be > 0, got {cfg.lr}")
    if not 0 < cfg.lr_decay_factor <= 1:
        raise ConfigError(f"lr_decay_factor: must be in (0, 1], got {cfg.lr_decay_factor}")
    if not 0 < cfg.holdout_fraction < 1:
        raise ConfigError(f"holdout_fraction: must be in (0, 1), got {cfg.holdout_fraction}")
    if cfg.lambda_after < 0:
        raise ConfigError(f"lambda_after: must be >= 0, got {cfg.lambda_after}")
    _validate_unseen_and_augment(cfg)


def _validate_unseen_and_augment(cfg: TrainConfig) -> None:
    """``unseen_source`` and ``augment`` with its hyper-parameters: known names, and no
    value that would be silently ignored."""
    _choice("unseen_source", cfg.unseen_source, UNSEEN_SOURCE_POLICIES)
    if cfg.unseen_source != "nearest" and not cfg.conditioned:
        raise ConfigError(f"unseen_source: strategy {cfg.strategy!r} has no conditioning; "
                          "must be 'nearest' (the default)")
    names = cfg.augment.split("+") if cfg.augment else []
    for name in names:
        _choice("augment", name, AUGMENTATIONS)
    if len(set(names)) != len(names):
        raise ConfigError(f"augment: {cfg.augment!r} names an augmentation twice")
    # one spelling per set of augmentations, so equal configs have equal run names
    object.__setattr__(cfg, "augment", "+".join(a for a in AUGMENTATIONS if a in names))
    for name, owner, low, high in (("mixstyle_p", "freq_mixstyle", 0.0, 1.0),
                                   ("mixstyle_alpha", "freq_mixstyle", 0.0, None),
                                   ("dir_p", "dir", 0.0, 1.0),
                                   ("mixup_alpha", "mixup", 0.0, None)):
        value = getattr(cfg, name)
        if value < low or (high is not None and value > high) or (high is None and value == 0):
            span = f"in [{low:g}, {high:g}]" if high is not None else "> 0"
            raise ConfigError(f"{name}: must be {span}, got {value!r}")
        if owner not in names and value != rundir.UNSEEN_AND_AUGMENT_DEFAULTS[name]:
            raise ConfigError(f"{name}: set to {value!r} but augmentation {owner!r} is off "
                              f"(augment = {cfg.augment!r})")
