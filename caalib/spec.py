"""The model vocabulary and the one validator of a model's specification.

Which topologies, heads, strategies, conditioned layers and attention variants exist,
and which combinations are the paper's 14 models, used to be spelled in the models, the
training config, the results tables, the bench and the run-directory reader, each with
its own checks (``cond_layer`` of an unconditioned strategy was ignored by one, an
error in another, defaulted to 4 in a third). This module is the one place: torch-free
so that configs, readers and the CLI can use it without the model stack, and
:class:`ModelSpec` is the frozen type the training config and the bench settings build
their models from.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError

TOPOLOGIES: tuple[str, ...] = ("pool", "nopool", "atrous")
POOLINGS: tuple[str, ...] = ("flatten", "max", "avg", "roi", "att", "roi+att")
#: The paper's 14 models (Table I rows): which heads each topology was run with.
PAPER_POOLINGS: dict[str, tuple[str, ...]] = {
    "pool": ("flatten", "max", "avg", "att"),
    "nopool": ("max", "avg", "roi", "att", "roi+att"),
    "atrous": ("max", "avg", "roi", "att", "roi+att"),
}
#: (topology, pooling) in table order.
MODELS: tuple[tuple[str, str], ...] = tuple(
    (t, p) for t, poolings in PAPER_POOLINGS.items() for p in poolings)
STRATEGIES: tuple[str, ...] = ("single", "joint", "teacher_forcing", "multi_task")
CONDITIONED_STRATEGIES: tuple[str, ...] = ("teacher_forcing", "multi_task")
COND_LAYERS: tuple[int, ...] = (1, 2, 3, 4)
#: The released attention head, or the paper's Eqs. 5-6 as written.
ATTENTION_VARIANTS: tuple[str, ...] = ("released", "paper")
ATTENTION_POOLINGS: tuple[str, ...] = ("att", "roi+att")
#: What a conditioned strategy feeds for a recording device it has no slot for (one
#: seen only in evaluation): the nearest known device, or no conditioning at all
#: (docs/unseen-devices.md).
UNSEEN_SOURCE_POLICIES: tuple[str, ...] = ("nearest", "none")
#: Training-time augmentations, orthogonal to model and strategy, in the order they
#: apply to a batch (docs/unseen-devices.md): device impulse responses on the
#: waveform's spectrum, Freq-MixStyle on the normalised log-mel, mixup last.
AUGMENTATIONS: tuple[str, ...] = ("dir", "freq_mixstyle", "mixup")


class ModelSpecError(ConfigError, ValueError):
    """An invalid model specification: a ValueError for callers, one line for the CLI."""


def _allowed(values: tuple[object, ...]) -> str:
    return ", ".join(repr(v) for v in values)


@dataclass(frozen=True)
class ModelSpec:
    """What model is trained: topology x pooling x strategy (x conditioned layer) x the
    attention variant. Validated on construction, the same way for every caller: a
    conditioned strategy needs ``cond_layer`` in 1-4, an unconditioned one must leave it
    None (never silently ignored), and the pooling must be one the paper ran with the
    topology."""

    topology: str
    pooling: str
    strategy: str
    cond_layer: int | None = None
    attention: str = "released"

    def __post_init__(self) -> None:
        validate_spec(self.topology, self.pooling, self.strategy, self.cond_layer,
                      self.attention)

    @property
    def conditioned(self) -> bool:
        return self.strategy in CONDITIONED_STRATEGIES

    @property
    def has_attention(self) -> bool:
        return self.pooling in ATTENTION_POOLINGS


def validate_spec(topology: object, pooling: object, strategy: object,
                  cond_layer: object, attention: object = "released") -> None:
    """Raise :class:`ModelSpecError` naming the field and the allowed values."""
    if topology not in TOPOLOGIES:
        raise ModelSpecError(f"topology: {topology!r} is not one of {_allowed(TOPOLOGIES)}")
    if pooling not in POOLINGS:
        raise ModelSpecError(f"pooling: {pooling!r} is not one of {_allowed(POOLINGS)}")
    if pooling not in PAPER_POOLINGS[topology]:
        raise ModelSpecError(
            f"pooling: {pooling!r} is not a pooling of topology {topology!r}; "
            f"allowed: {_allowed(PAPER_POOLINGS[topology])}")
    if strategy not in STRATEGIES:
        raise ModelSpecError(f"strategy: {strategy!r} is not one of {_allowed(STRATEGIES)}")
    if strategy in CONDITIONED_STRATEGIES:
        if cond_layer is None:
            raise ModelSpecError(
                f"cond_layer: required for strategy {strategy!r} (one of 1, 2, 3, 4)")
        if isinstance(cond_layer, bool) or cond_layer not in COND_LAYERS:
            raise ModelSpecError(f"cond_layer: {cond_layer!r} is not one of 1, 2, 3, 4")
    elif cond_layer is not None:
        raise ModelSpecError(
            f"cond_layer: strategy {strategy!r} has no conditioning; must be null")
    if attention not in ATTENTION_VARIANTS:
        raise ModelSpecError(
            f"attention: {attention!r} is not one of {_allowed(ATTENTION_VARIANTS)}")
