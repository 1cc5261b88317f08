"""CAA-Net and its relatives: one module for the paper's 14 models x 4 strategies.

A model is a backbone topology (pooled, unpooled or atrous; four 5x5 conv blocks), a
pooling head, and a training strategy that decides whether and how the device
conditions one block (Eq. 1): ``single``/``joint`` do not condition; ``teacher_forcing``
conditions on the true device given to ``forward``; ``multi_task`` adds CNN-d and
conditions on its predicted device. Released-code facts live in the study notes,
section 2; the paper's Section III describes the same design.

A property of Eq. 1 worth knowing when reading results: the conditioning adds one
constant per (sample, channel) before BatchNorm, so in training mode a batch whose clips
all carry the same device has its shift removed by BatchNorm's mean subtraction (only
the differences between devices inside a batch survive; the 1x1 conv's bias never does).
In eval mode the running statistics are fixed and the shift acts in full.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ..spec import (
    PAPER_POOLINGS,
    ModelSpecError,
    validate_spec,
)
from .blocks import ConvBlock, DeviceConditioning
from .device_cnn import DEVICE_CNN_CHANNELS, DeviceCNN, one_hot
from .heads import AttentionHead, FlattenHead, GlobalPoolHead
from .init import init_module

#: The paper's 14 models (Table I): which heads each topology was run with (the
#: vocabulary is caalib.spec's; these names are kept for the models' callers).
VALID_POOLINGS: dict[str, tuple[str, ...]] = PAPER_POOLINGS

BACKBONE_CHANNELS: tuple[int, ...] = (64, 128, 256, 512)
DILATIONS: dict[str, tuple[int, ...]] = {
    "pool": (1, 1, 1, 1),
    "nopool": (1, 1, 1, 1),
    "atrous": (1, 2, 4, 8),
}

class ModelConfigError(ModelSpecError):
    """An invalid model argument: a ValueError for callers, a one-line error for the CLI."""


@dataclass
class ModelOutput:
    """What every model returns.

    scene: (B, n_classes) float32 log-probability scores (see ``AttentionHead`` for what
        holds for the attention heads). source: (B, n_sources) float32 log-probabilities
        of CNN-d over the sources (recording devices; ``multi_task`` only, else None).
        attention: (B, n_classes, T', F') attention normalised to sum 1 over the bins of
        each class (attention heads only, else None).
    """

    scene: torch.Tensor
    source: torch.Tensor | None = None
    attention: torch.Tensor | None = None


def scale_channels(channels: int, width: float) -> int:
    """``max(1, round(channels * width))``: width 1 is exactly the released size."""
    return max(1, round(channels * width))


def block_map_sizes(topology: str, n_frames: int, n_mels: int) -> list[tuple[int, int]]:
    """(T, F) of each block's output for an input of ``n_frames`` x ``n_mels``."""
    sizes = []
    t, f = n_frames, n_mels
    for _ in BACKBONE_CHANNELS:
        if topology == "pool":
            t, f = t // 2, f // 2
        sizes.append((t, f))
    return sizes


def _allowed(values: tuple) -> str:
    return ", ".join(str(v) for v in values)


def _check_choice(name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise ModelConfigError(f"{name} {value!r} is not defined; allowed: {_allowed(allowed)}")


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelConfigError(f"{name} must be a positive integer, got {value!r}")


def validate_model_args(topology: str, pooling: str, strategy: str, cond_layer: int | None,
                        n_classes: int, n_sources: int, width: float, n_frames: int,
                        n_mels: int, attention: str) -> int | None:
    """Raise ModelConfigError naming the allowed values; return ``cond_layer``.

    The model's part (topology, pooling, strategy, cond_layer, attention) is checked by
    ``caalib.spec.validate_spec``, the study's one rule; the sizes here.
    """
    try:
        validate_spec(topology, pooling, strategy, cond_layer, attention)
    except ModelSpecError as exc:
        raise ModelConfigError(str(exc)) from None
    for name, value in (("n_classes", n_classes), ("n_sources", n_sources),
                        ("n_frames", n_frames), ("n_mels", n_mels)):
        _check_positive_int(name, value)
    if (isinstance(width, bool) or not isinstance(width, int | float)
            or not math.isfinite(width) or width <= 0):
        raise ModelConfigError(f"width must be a positive finite number, got {width!r}")
    # pooled stages halve time and frequency: too short an input leaves an empty map,
    # which torch reports only at the first forward pass, as "Output size is too small"
    t_last, f_last = block_map_sizes(topology, n_frames, n_mels)[-1]
    if t_last < 1 or f_last < 1:
        need = 2 ** len(BACKBONE_CHANNELS)
        raise ModelConfigError(
            f"n_frames x n_mels {n_frames} x {n_mels}: the pool topology halves both in each "
            f"of its {len(BACKBONE_CHANNELS)} blocks and needs at least {need} of each (use "
            "longer clips or a larger max_frames, or the atrous or nopool topology)")
    need = 2 ** len(DEVICE_CNN_CHANNELS)
    if strategy == "multi_task" and (n_frames < need or n_mels < need):
        raise ModelConfigError(
            f"n_frames x n_mels {n_frames} x {n_mels}: multi-task training's device CNN "
            f"halves both in each of its {len(DEVICE_CNN_CHANNELS)} blocks and needs at "
            f"least {need} of each (use longer clips or a larger max_frames)")
    return None if cond_layer is None else int(cond_layer)


class CAANet(nn.Module):
    """Backbone + head (+ conditioning, + CNN-d); see :func:`build_model` for arguments."""

    def __init__(self, topology: str, pooling: str, strategy: str, cond_layer: int | None = None,
                 n_classes: int = 10, n_sources: int = 3, width: float = 1.0,
                 n_frames: int = 320, n_mels: int = 64, attention: str = "released") -> None:
        super().__init__()
        cond_layer = validate_model_args(topology, pooling, strategy, cond_layer, n_classes,
                                         n_sources, width, n_frames, n_mels, attention)
        self.topology, self.pooling, self.strategy = topology, pooling, strategy
        self.cond_layer = cond_layer
        self.n_classes, self.n_sources = n_classes, n_sources
        self.width, self.n_frames, self.n_mels = float(width), n_frames, n_mels
        self.attention_variant = attention
        #: Enough to rebuild the same architecture: ``build_model(**model.build_args)``.
        self.build_args = dict(
            topology=topology, pooling=pooling, strategy=strategy, cond_layer=cond_layer,
            n_classes=n_classes, n_sources=n_sources, width=float(width), n_frames=n_frames,
            n_mels=n_mels, attention=attention,
        )

        self.channels = tuple(scale_channels(c, width) for c in BACKBONE_CHANNELS)
        blocks, in_ch = [], 1
        for ch, dilation in zip(self.channels, DILATIONS[topology], strict=True):
            blocks.append(ConvBlock(in_ch, ch, dilation=dilation, pool=topology == "pool"))
            in_ch = ch
        self.blocks = nn.ModuleList(blocks)

        self.conditioning = (
            DeviceConditioning(n_sources, self.channels[cond_layer - 1])
            if cond_layer is not None else None
        )
        self.device_cnn = (
            DeviceCNN(n_sources, tuple(scale_channels(c, width) for c in DEVICE_CNN_CHANNELS))
            if strategy == "multi_task" else None
        )

        c_last = self.channels[-1]
        t_last, f_last = block_map_sizes(topology, n_frames, n_mels)[-1]
        if pooling in ("max", "avg"):
            self.head: nn.Module = GlobalPoolHead(c_last, n_classes, pooling)
        elif pooling == "flatten":
            self.head = FlattenHead((c_last, t_last, f_last), n_classes, roi=False)
        elif pooling == "roi":
            self.head = FlattenHead((c_last, t_last // 16, f_last // 16), n_classes, roi=True)
        else:
            self.head = AttentionHead(c_last, n_classes, variant=attention,
                                      roi=pooling == "roi+att")
        init_module(self)
        if isinstance(self.head, AttentionHead):
            self.head.zero_attention()

    def extra_repr(self) -> str:
        return (f"topology={self.topology}, pooling={self.pooling}, strategy={self.strategy}, "
                f"cond_layer={self.cond_layer}, width={self.width:g}, "
                f"attention={self.attention_variant}")

    # -- forward -------------------------------------------------------------------------

    def _given_source_onehot(self, source: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Teacher forcing: (B,) source indices or a (B, n_sources) one-hot -> one-hot."""
        assert self.conditioning is not None
        dtype = self.conditioning.conv.weight.dtype
        if source is None:
            raise ValueError(
                "strategy 'teacher_forcing' needs the true source (recording device) "
                "indices: call model(x, source=<(batch,) int tensor>)"
            )
        if not isinstance(source, torch.Tensor):
            source = torch.as_tensor(source)
        if source.dim() == 2 and source.is_floating_point():
            if tuple(source.shape) != (batch, self.n_sources):
                raise ValueError(f"a one-hot source must have shape ({batch}, {self.n_sources}), "
                                 f"got {tuple(source.shape)}")
            return source.to(dtype)
        if source.dim() != 1 or source.shape[0] != batch or source.is_floating_point():
            raise ValueError(f"source must be ({batch},) integer indices, got "
                             f"{tuple(source.shape)} {source.dtype}")
        if source.device.type == "cpu" and source.numel() and (
                int(source.min()) < 0 or int(source.max()) >= self.n_sources):
            raise ValueError(f"source indices must lie in [0, {self.n_sources - 1}], got "
                             f"{source.tolist()}")
        return one_hot(source.to(self.conditioning.conv.weight.device), self.n_sources, dtype)

    def _run(self, x: torch.Tensor, source: torch.Tensor | None, collect: bool,
             unconditioned: torch.Tensor | None = None,
             ) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
        if x.dim() != 3:
            raise ValueError(f"input must be (batch, time, mel), got shape {tuple(x.shape)}")
        x = x.unsqueeze(1)
        source_logp = None
        shift = None
        if self.strategy == "multi_task":
            assert self.device_cnn is not None and self.conditioning is not None
            source_logp = self.device_cnn(x)
            onehot = one_hot(source_logp.argmax(dim=1), self.n_sources,
                             self.conditioning.conv.weight.dtype)
            if unconditioned is not None:  # rows of an unseen device: a zero one-hot
                onehot = onehot * (~unconditioned.to(onehot.device))[:, None].to(onehot.dtype)
            shift = self.conditioning(onehot)
        elif self.strategy == "teacher_forcing":
            assert self.conditioning is not None
            onehot = self._given_source_onehot(source, x.shape[0])
            if unconditioned is not None:
                onehot = onehot * (~unconditioned.to(onehot.device))[:, None].to(onehot.dtype)
            shift = self.conditioning(onehot)
        maps = []
        for i, block in enumerate(self.blocks, start=1):
            x = block(x, shift if i == self.cond_layer else None)
            if collect:
                maps.append(x)
        return x, source_logp, maps

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None, *,
                device: torch.Tensor | None = None,
                unconditioned: torch.Tensor | None = None) -> ModelOutput:
        """``x`` (B, T, F) log-mels; ``source`` (B,) true source (recording-device)
        indices (teacher forcing; ignored by the other strategies). ``unconditioned``
        (B,) bool marks rows to condition on a zero one-hot (a device the model has no
        slot for, ``unseen_source="none"``; conditioned strategies only).

        ``device=`` is the deprecated name of ``source`` (kept for one release; it warns).
        """
        source = _deprecated_source(source, device)
        features, source_logp, _ = self._run(x, source, collect=False,
                                             unconditioned=unconditioned)
        scene, attention = self.head(features)
        return ModelOutput(scene=scene, source=source_logp, attention=attention)

    def block_outputs(self, x: torch.Tensor,
                      source: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The four blocks' output maps (B, C_l, T_l, F_l), for visualising inner layers."""
        return self._run(x, source, collect=True)[2]


def _deprecated_source(source: torch.Tensor | None,
                       device: torch.Tensor | None) -> torch.Tensor | None:
    """``forward``'s old ``device=`` keyword: warn and pass it on as ``source``."""
    if device is None:
        return source
    if source is not None:
        raise TypeError("forward() got both source= and its deprecated name device=")
    warnings.warn("forward(x, device=...) is deprecated: the recording device is now "
                  "called source, use forward(x, source=...)", DeprecationWarning,
                  stacklevel=3)
    return device


def build_model(topology: str, pooling: str, strategy: str, cond_layer: int | None = None,
                n_classes: int = 10, n_sources: int = 3, width: float = 1.0,
                n_frames: int = 320, n_mels: int = 64,
                attention: str = "released") -> CAANet:
    """Build one of the paper's models, initialised as released.

    topology: ``pool`` | ``nopool`` | ``atrous``; pooling: one of
    ``VALID_POOLINGS[topology]``; strategy: ``single`` | ``joint`` | ``teacher_forcing``
    | ``multi_task``; cond_layer: 1-4, required by the conditioned strategies and
    ignored by the others; width scales every channel count; n_frames/n_mels fix the
    linear layer of the flatten/roi heads (other heads take any length); attention:
    ``released`` (authors' code) or ``paper`` (Eqs. 5-6 as written). Invalid arguments
    raise :class:`ModelConfigError` (a ValueError) listing the allowed values.
    """
    return CAANet(topology, pooling, strategy, cond_layer, n_classes, n_sources, width,
                  n_frames, n_mels, attention)
