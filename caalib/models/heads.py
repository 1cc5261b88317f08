"""Pooling heads on the last feature map: global max/avg, flatten, ROI and attention.

Every head returns ``(scene, attention)``: ``scene`` (B, K) log-probability scores in
float32 (the heads upcast before their reductions so bf16 autocast does not degrade the
sums over 20,480 bins), and ``attention`` (B, K, T', F') or ``None``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import ATTENTION_VARIANTS  # "released" (the authors' code) or "paper" (Eqs. 5-6)

#: ROI pooling splits the map into 16x16 regions (paper Section III-D-3).
ROI_SIZE = 16

#: The released attention is sigmoid(a) + 0.1 clamped to [EPS, 1 - EPS] with EPS = 0.1.
RELEASED_ATTENTION_EPS = 0.1

#: Floor under the paper variant's Y before the log, so an all-but-zero Y stays finite.
PAPER_LOG_FLOOR = 1e-7


class GlobalPoolHead(nn.Module):
    """Global max or average pool -> linear -> log-softmax (Eqs. 3-4)."""

    def __init__(self, channels: int, n_classes: int, mode: str) -> None:
        super().__init__()
        if mode not in ("max", "avg"):
            raise ValueError(f"global pooling mode must be 'max' or 'avg', got {mode!r}")
        self.mode = mode
        self.fc = nn.Linear(channels, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        pooled = x.amax(dim=(2, 3)) if self.mode == "max" else x.mean(dim=(2, 3))
        return F.log_softmax(self.fc(pooled).float(), dim=-1), None


class FlattenHead(nn.Module):
    """[16x16 ROI max pool] -> flatten -> linear -> log-softmax.

    The linear layer's input size is fixed by the map size at build time, so a clip of
    another length cannot be classified; that is reported instead of a shape error
    from inside ``F.linear``.
    """

    def __init__(self, map_shape: tuple[int, int, int], n_classes: int, *, roi: bool) -> None:
        super().__init__()
        self.roi = roi
        self.map_shape = map_shape  # (C, T', F') after the ROI pool when roi
        c, t, f = map_shape
        if t < 1 or f < 1:
            raise ValueError(f"the feature map is empty ({t}x{f}) for the given n_frames/n_mels")
        self.fc = nn.Linear(c * t * f, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        if self.roi:
            x = F.max_pool2d(x, kernel_size=ROI_SIZE, stride=ROI_SIZE)
        if tuple(x.shape[1:]) != self.map_shape:
            kind = "roi" if self.roi else "flatten"
            raise ValueError(
                f"the {kind} head was built for a {self.map_shape[1]}x{self.map_shape[2]} map "
                f"but got {x.shape[2]}x{x.shape[3]}: build the model with the n_frames/n_mels "
                f"of this input"
            )
        return F.log_softmax(self.fc(x.flatten(1)).float(), dim=-1), None


class AttentionHead(nn.Module):
    """Global attention pooling (Eqs. 5-6), optionally after the 16x16 ROI max pool.

    Two 1x1 convolutions map C channels to K classes: an attention branch ``a`` and a
    classification branch ``c``. The attention is normalised over all time-frequency bins
    of each class, so every class's map sums to 1 and is what Fig. 7 draws.

    - ``released`` (authors' code): A = clamp(sigmoid(a) + 0.1, 0.1, 0.9), so every bin
      keeps at least 1/9 of the weight of the strongest one; C = log_softmax_k(c);
      scene = sum A'.C. The scores are weighted means of log-probabilities: each is <= 0
      but exp(scene) need not sum to 1 over classes (they do sum to <= 1 while the
      attention is uniform, e.g. at initialisation). The NLL loss uses them as they are.
    - ``paper`` (text): A = sigmoid(a); C = softmax_k(c); Y = sum A'.C in (0, 1];
      scene = log(max(Y, 1e-7)). Y sums to 1 over classes only while the attention is
      the same for every class.

    The attention branch's weights start at zero (its bias too), i.e. uniform attention.
    """

    def __init__(self, channels: int, n_classes: int, *, variant: str = "released",
                 roi: bool = False) -> None:
        super().__init__()
        if variant not in ATTENTION_VARIANTS:
            raise ValueError(
                f"attention variant {variant!r} is not defined; allowed: "
                f"{', '.join(ATTENTION_VARIANTS)}"
            )
        self.variant = variant
        self.roi = roi
        self.att = nn.Conv2d(channels, n_classes, kernel_size=1, bias=True)
        self.cla = nn.Conv2d(channels, n_classes, kernel_size=1, bias=True)

    def zero_attention(self) -> None:
        """Start from uniform attention, as released (called after the generic init)."""
        with torch.no_grad():
            self.att.weight.zero_()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.roi:
            x = F.max_pool2d(x, kernel_size=ROI_SIZE, stride=ROI_SIZE)
        a = self.att(x).float()
        c = self.cla(x).float()
        if self.variant == "released":
            eps = RELEASED_ATTENTION_EPS
            att = torch.clamp(torch.sigmoid(a) + eps, eps, 1.0 - eps)
            cla = F.log_softmax(c, dim=1)
        else:
            att = torch.sigmoid(a)
            cla = F.softmax(c, dim=1)
        # the floor only matters if every sigmoid of a class underflows (paper variant)
        norm = att / att.sum(dim=(2, 3), keepdim=True).clamp_min(torch.finfo(att.dtype).tiny)
        pooled = (norm * cla).sum(dim=(2, 3))
        if self.variant == "paper":
            pooled = torch.log(pooled.clamp_min(PAPER_LOG_FLOOR))
        return pooled, norm
