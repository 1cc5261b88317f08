"""CNN-d: the small device classifier of multi-task conditional training (Fig. 2d).

Two pooled conv blocks (64 then 128 channels at width 1), a global max pool and a
linear layer to the device log-probabilities. Its argmax, turned into a one-hot with
comparisons (no ``.item()``, no host sync), conditions the scene branch; argmax has no
gradient, so the scene loss never reaches CNN-d through the conditioning and CNN-d
learns only from its own device loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBlock

DEVICE_CNN_CHANNELS: tuple[int, ...] = (64, 128)


def one_hot(index: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """(B,) integer indices -> (B, n) one-hot, on the indices' device, sync-free."""
    classes = torch.arange(n, device=index.device)
    return (index[:, None] == classes).to(dtype)


class DeviceCNN(nn.Module):
    """Predicts the recording device from the log-mel input."""

    def __init__(self, n_sources: int, channels: tuple[int, ...] = DEVICE_CNN_CHANNELS) -> None:
        super().__init__()
        blocks = []
        in_ch = 1
        for ch in channels:
            blocks.append(ConvBlock(in_ch, ch, pool=True))
            in_ch = ch
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(in_ch, n_sources)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, 1, T, F) -> (B, n_sources) float32 log-probabilities."""
        for block in self.blocks:
            x = block(x)
        return F.log_softmax(self.fc(x.amax(dim=(2, 3))).float(), dim=-1)
