"""Receptive fields of the three backbones, analytic and measured by gradients.

The receptive field (RF) of a unit is the input region (frames x mel bins) that can
change it. Per layer, with kernel k, dilation d and input jump j (input pixels between
neighbouring units): a conv widens the RF by (d(k-1)) * j and keeps j (stride 1,
"same" padding keeps it centred); a 2x2/2 max pool widens it by j and doubles j.

Exact numbers with k = 5 (time and frequency alike, the kernels are square), as
"conv output / block output (after its pool)" and the jump of the block output:

- pool:   5/6 (jump 2), 14/16 (4), 32/36 (8), 68/76 (16); conv output 9 * 2^(l-1) - 4,
  block output 5 * 2^l - 4.
- nopool: 5, 9, 13, 17 (jump 1); 1 + 4l.
- atrous (dilations 1, 2, 4, 8): 5, 13, 29, 61 (jump 1); 4 * 2^l - 3.

The paper (Section III-C) says: pooled 2^(l-1) r (5, 10, 20, 40), unpooled fixed at r
(5, 5, 5, 5), atrous 2^(l-1) r - 1 (4, 9, 19, 39; its own text gives r, not r - 1, at
l = 1). The growth rates are right in spirit (pooled and atrous roughly double per
block, unpooled does not), but the formulas are loose: every stacked 5x5 conv adds
4 * jump, so the unpooled RF grows linearly instead of staying r, and at block 4 the
exact pooled (68 at the conv, 76 after the pool) and atrous (61) fields are 1.6-1.9x
the paper's 40 and 39. The atrous maps keep jump 1, i.e. full resolution.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from .models import DILATIONS, TOPOLOGIES, build_model
from .models.blocks import KERNEL_SIZE, ConvBlock

Interval = tuple[int, int]


@dataclass(frozen=True)
class ReceptiveField:
    """Analytic RF of block ``block``'s output units, per axis as (time, freq).

    size: extent in input frames/bins after the block (after its pool, if any);
    conv_size: right after the block's convolution; jump: input pixels between
    neighbouring output units; start: centre of unit (0, 0)'s field in input
    coordinates (a half-integer once pooling made the size even).
    """

    block: int
    size: tuple[int, int]
    conv_size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[float, float]

    def interval(self, unit: tuple[int, int]) -> tuple[Interval, Interval]:
        """Inclusive (time, freq) input ranges of output ``unit``, ignoring the borders."""
        out = []
        for axis in range(2):
            centre = self.start[axis] + unit[axis] * self.jump[axis]
            half = (self.size[axis] - 1) / 2
            out.append((int(centre - half), int(centre + half)))
        return out[0], out[1]


@dataclass(frozen=True)
class MeasuredField:
    """Input region whose gradient to one output unit of block ``block`` is non-zero."""

    block: int
    unit: tuple[int, int]
    time: Interval
    freq: Interval
    filled: bool  # every input inside the bounding box has a non-zero gradient

    @property
    def size(self) -> tuple[int, int]:
        return (self.time[1] - self.time[0] + 1, self.freq[1] - self.freq[0] + 1)


def _check_topology(topology: str) -> None:
    if topology not in TOPOLOGIES:
        raise ValueError(f"topology {topology!r} is not defined; allowed: {', '.join(TOPOLOGIES)}")


def analytic_receptive_fields(topology: str, kernel: int = KERNEL_SIZE) -> list[ReceptiveField]:
    """The exact RF after each of the four blocks of ``topology``."""
    _check_topology(topology)
    pooled = topology == "pool"
    size, jump, start = 1, 1, 0.0
    fields = []
    for block, dilation in enumerate(DILATIONS[topology], start=1):
        size += dilation * (kernel - 1) * jump  # "same" padding: the centre stays put
        conv_size = size
        if pooled:  # 2x2 window, stride 2
            size += jump
            start += 0.5 * jump
            jump *= 2
        fields.append(ReceptiveField(block, (size, size), (conv_size, conv_size),
                                     (jump, jump), (start, start)))
    return fields


def paper_receptive_field(topology: str, block: int, r: int = KERNEL_SIZE) -> int:
    """The size the paper's Section III-C formulas give (pooled 2^(l-1) r, unpooled r,
    atrous 2^(l-1) r - 1), for comparison with the exact numbers."""
    _check_topology(topology)
    if topology == "pool":
        return 2 ** (block - 1) * r
    if topology == "nopool":
        return r
    return 2 ** (block - 1) * r - 1


def _probe(model: nn.Module) -> nn.Module:
    """A copy whose gradients cannot vanish inside the receptive field.

    - every conv weight = 1 / fan_in > 0 and the input is all ones, so every
      pre-activation is positive and ReLU passes the gradient everywhere;
    - BatchNorm in eval mode with mean 0, variance 1, weight 1, bias 0 (identity up to
      eps), so batch statistics do not couple distant inputs;
    - max pools become 2x2 average pools: for one input, max pooling routes the gradient
      to a single element per window, but which one depends on the input, so the RF (all
      inputs that can matter for some input) is the whole window; average pooling has
      the same window and passes the gradient to all of it in one backward pass.
    """
    probe = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
            elif isinstance(m, nn.BatchNorm2d):
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
                m.weight.fill_(1.0)
                m.bias.zero_()
    for m in probe.modules():
        if isinstance(m, ConvBlock) and m.pooled:
            m.pool = nn.AvgPool2d(kernel_size=2)
    return probe


def _default_size(topology: str) -> int:
    biggest = analytic_receptive_fields(topology)[-1].size[0]
    return ((2 * biggest + 16) // 16 + 1) * 16  # the central unit's field stays inside


def measured_receptive_fields(topology: str, n_frames: int | None = None,
                              n_mels: int | None = None) -> list[MeasuredField]:
    """Measure each block's RF as the non-zero gradient of its central unit (channel 0).

    A narrow model (width 1/64) in float64 is enough: the RF depends on the geometry
    only. The input must be large enough that the central unit's field does not touch
    the border (the default is).
    """
    _check_topology(topology)
    n_frames = n_frames or _default_size(topology)
    n_mels = n_mels or _default_size(topology)
    model = _probe(build_model(topology, "avg", "joint", width=1 / 64,
                               n_frames=n_frames, n_mels=n_mels))
    x = torch.ones(1, n_frames, n_mels, dtype=torch.float64, requires_grad=True)
    maps = model.block_outputs(x)
    fields = []
    for block, fmap in enumerate(maps, start=1):
        unit = (fmap.shape[2] // 2, fmap.shape[3] // 2)
        (grad,) = torch.autograd.grad(fmap[0, 0, unit[0], unit[1]], x, retain_graph=True)
        nonzero = grad[0] != 0
        rows = nonzero.any(dim=1).nonzero().flatten()
        cols = nonzero.any(dim=0).nonzero().flatten()
        time = (int(rows.min()), int(rows.max()))
        freq = (int(cols.min()), int(cols.max()))
        box = (time[1] - time[0] + 1) * (freq[1] - freq[0] + 1)
        fields.append(MeasuredField(block, unit, time, freq, int(nonzero.sum()) == box))
    return fields


def receptive_field_rows(kernel: int = KERNEL_SIZE) -> list[dict]:
    """One row per (topology, block) for tables: exact sizes next to the paper's."""
    rows = []
    for topology in TOPOLOGIES:
        for rf in analytic_receptive_fields(topology, kernel):
            rows.append({
                "topology": topology, "block": rf.block, "dilation":
                DILATIONS[topology][rf.block - 1], "conv_rf": rf.conv_size[0],
                "block_rf": rf.size[0], "jump": rf.jump[0],
                "paper_rf": paper_receptive_field(topology, rf.block, kernel),
            })
    return rows


def receptive_field_table(measure: bool = True) -> pd.DataFrame:
    """Per topology and block: exact RF, the paper's formula and (optionally) the measured RF.

    The rows of :func:`receptive_field_rows`; with ``measure`` also ``measured_time``,
    ``measured_freq`` and ``measured_filled`` from :func:`measured_receptive_fields`.
    ``rf_time``/``rf_freq`` (what :func:`caalib.results.figures.receptive_field_figure`
    draws) are the measured sizes when ``measure`` is true, else the analytic ones, so
    the figure shows what the networks really see.
    """
    table = pd.DataFrame(receptive_field_rows())
    if measure:
        sizes = {}
        for topology in table["topology"].unique():
            for m in measured_receptive_fields(topology):
                sizes[(topology, m.block)] = (*m.size, m.filled)
        keys = list(zip(table["topology"], table["block"], strict=True))
        table["measured_time"] = [sizes[k][0] for k in keys]
        table["measured_freq"] = [sizes[k][1] for k in keys]
        table["measured_filled"] = [sizes[k][2] for k in keys]
        table["rf_time"], table["rf_freq"] = table["measured_time"], table["measured_freq"]
    else:
        table["rf_time"], table["rf_freq"] = table["block_rf"], table["block_rf"]
    return table
