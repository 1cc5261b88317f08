"""What ``caa bench`` measures: :class:`BenchSettings`, validated on construction.

Torch-free. The model part is a :class:`caalib.spec.ModelSpec`, checked by the study's
one validator (``caalib.spec``), the same rule the training config follows: a
conditioned strategy needs ``cond_layer`` in 1-4, an unconditioned one must leave it
None. (The command line's "default 4 for the conditioned strategies" is a default of
the option, in :mod:`caalib.bench.cli`, not of the rule.)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..constants import ACCELERATORS
from ..errors import ConfigError
from ..spec import ModelSpec

MODES: tuple[str, ...] = ("released", "default", "fast", "compiled")
COMPILE_MODES: tuple[str, ...] = (
    "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs",
)

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
    #: The model fields as one frozen spec, built (and so validated) on construction.
    model_spec: ModelSpec = field(init=False, repr=False, compare=False)

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
        if self.feature_clips < 2:
            raise ConfigError(f"feature_clips: must be >= 2 (a train and an evaluate clip), "
                              f"got {self.feature_clips}")
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
        object.__setattr__(self, "model_spec", ModelSpec(  # the study's one validator
            self.topology, self.pooling, self.strategy, self.cond_layer, self.attention))

    @classmethod
    def quick(cls, **overrides: Any) -> BenchSettings:
        """The ``--cpu-quick`` settings (overrides win)."""
        return cls(**{**CPU_QUICK, "cpu_quick": True, **overrides})

    @property
    def model_args(self) -> dict[str, Any]:
        """Keyword arguments of ``caalib.models.build_model`` for this model and input."""
        spec = self.model_spec
        return dict(topology=spec.topology, pooling=spec.pooling, strategy=spec.strategy,
                    cond_layer=spec.cond_layer, width=float(self.width),
                    n_frames=self.frames, n_mels=self.mels, attention=spec.attention)

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (the record's ``settings``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        out["modes"] = list(self.modes)
        return out

    def default_name(self, device_type: str) -> str:
        """File stem for results/bench: model, width, batch, input, device."""
        cond = f"-L{self.cond_layer}" if self.cond_layer is not None else ""
        name = (f"{self.topology}-{self.pooling.replace('+', '_')}-{self.strategy}{cond}"
                f"-w{self.width:g}-b{self.batch}-{self.frames}x{self.mels}-{device_type}")
        return name + ("-quick" if self.cpu_quick else "")
