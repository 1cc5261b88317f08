"""The backbone's building blocks: a 5x5 conv block and the device conditioning of Eq. 1.

Conditioning (Eq. 1 of the paper) expands the device one-hot over the block's whole
time-frequency plane and passes it through a 1x1 convolution (with bias) whose output
is added to the block's convolution before BatchNorm. Because the one-hot is the same at
every bin, that 1x1 convolution yields one constant per (sample, channel):
``W[:, :, 0, 0] @ onehot + b``. :class:`DeviceConditioning` computes exactly that
from the Conv2d module's own parameters and lets broadcasting add it, which keeps the
released parameters (and checkpoints) while skipping a (B, 3, T, F) tensor and a
convolution over it. :meth:`DeviceConditioning.literal` keeps the literal form so a test
can prove both give the same numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KERNEL_SIZE = 5


class DeviceConditioning(nn.Module):
    """1x1 convolution of the expanded device one-hot, evaluated as a per-channel shift."""

    def __init__(self, n_sources: int, channels: int) -> None:
        super().__init__()
        self.n_sources = n_sources
        self.channels = channels
        self.conv = nn.Conv2d(n_sources, channels, kernel_size=1, bias=True)

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        """Return the (B, C, 1, 1) shift that Eq. 1 adds at every time-frequency bin."""
        weight = self.conv.weight.view(self.channels, self.n_sources)
        return F.linear(onehot, weight, self.conv.bias)[:, :, None, None]

    def literal(self, onehot: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Eq. 1 as written: expand the one-hot to ``size`` and convolve (for tests)."""
        expanded = onehot[:, :, None, None].expand(-1, -1, size[0], size[1])
        return self.conv(expanded)


class ConvBlock(nn.Module):
    """5x5 conv (no bias) -> [+ device shift] -> BatchNorm -> ReLU -> [2x2 max pool].

    ``padding = 2 * dilation`` keeps the time-frequency size, so only the optional pool
    changes it (floor division by 2, as ``F.max_pool2d`` does).
    """

    def __init__(self, in_channels: int, out_channels: int, *, dilation: int = 1,
                 pool: bool = False) -> None:
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size=KERNEL_SIZE, padding=2 * dilation,
            dilation=dilation, bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.pool: nn.Module = nn.MaxPool2d(kernel_size=2) if pool else nn.Identity()

    @property
    def pooled(self) -> bool:
        return not isinstance(self.pool, nn.Identity)

    def forward(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        y = self.conv(x)
        if shift is not None:
            y = y + shift.to(y.dtype)
        return self.pool(F.relu(self.bn(y)))
