"""Size and cost of a model: parameters, feature maps, receptive fields, MACs.

MACs (multiply-accumulates) are counted analytically from the layer shapes for one
clip: every convolution (5x5 backbone and CNN-d convs, the attention head's 1x1 convs)
and linear layer. BatchNorm, ReLU, pooling and the attention normalisation are
elementwise and left out (well under 1 % here). The device conditioning is counted as
implemented: a (n_sources x C) matrix-vector product per clip; the literal Eq. 1 (a 1x1
convolution over the expanded one-hot) would cost n_sources * C * T * F, reported as
``cond_literal_macs``. ``training_flops_per_sample`` = 3 x (2 x forward MACs): a
backward pass costs about twice the forward one, and one MAC is two FLOPs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .models import CAANet, build_model
from .models.blocks import KERNEL_SIZE
from .models.heads import ROI_SIZE, AttentionHead, FlattenHead, GlobalPoolHead
from .models.net import block_map_sizes
from .receptive_field import analytic_receptive_fields


@dataclass
class BlockSummary:
    block: int
    channels: int
    dilation: int
    input_size: tuple[int, int]  # (T, F) the block's conv sees
    output_size: tuple[int, int]  # (T, F) after the block (after its pool)
    receptive_field: int  # frames = bins, square kernels
    jump: int
    macs: int  # the block's 5x5 convolution
    conditioned: bool


@dataclass
class ModelSummary:
    build_args: dict[str, Any]
    n_frames: int
    n_mels: int
    params: dict[str, int]  # backbone, conditioning, head, device_cnn, total
    blocks: list[BlockSummary]
    head_input_size: tuple[int, int]  # (T', F') the head's linear/1x1 convs see
    macs: dict[str, int]  # backbone, conditioning, head, device_cnn, total
    cond_literal_macs: int
    notes: list[str] = field(default_factory=list)

    @property
    def forward_macs(self) -> int:
        return self.macs["total"]

    @property
    def forward_flops(self) -> int:
        return 2 * self.forward_macs

    @property
    def training_flops_per_sample(self) -> int:
        return 3 * self.forward_flops

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(forward_macs=self.forward_macs, forward_flops=self.forward_flops,
                   training_flops_per_sample=self.training_flops_per_sample)
        return out

    def title(self) -> str:
        a = self.build_args
        cond = f", cond_layer {a['cond_layer']}" if a["cond_layer"] is not None else ""
        return (f"{a['topology']} + {a['pooling']}, {a['strategy']}{cond}, width {a['width']:g}, "
                f"input {self.n_frames}x{self.n_mels} (frames x mels)")

    def to_text(self) -> str:
        lines = [self.title(), ""]
        lines.append(f"{'block':>5} {'ch':>5} {'dil':>3} {'in TxF':>9} {'out TxF':>9} "
                     f"{'RF':>4} {'jump':>4} {'GMAC':>8}  cond")
        for b in self.blocks:
            lines.append(
                f"{b.block:>5} {b.channels:>5} {b.dilation:>3} {_size(b.input_size):>9} "
                f"{_size(b.output_size):>9} {b.receptive_field:>4} {b.jump:>4} "
                f"{b.macs / 1e9:>8.3f}  {'yes' if b.conditioned else ''}"
            )
        lines.append("")
        lines.append(f"head input: {_size(self.head_input_size)}")
        lines.append("parameters: " + ", ".join(f"{k} {v:,}" for k, v in self.params.items()))
        lines.append("forward MACs: " + ", ".join(f"{k} {v / 1e9:.3f} G"
                                                  for k, v in self.macs.items()))
        lines.append(f"training FLOPs per sample: {self.training_flops_per_sample / 1e12:.4f} T")
        lines.extend(self.notes)
        return "\n".join(lines)

    def to_markdown(self) -> str:
        lines = [f"### {self.title()}", "",
                 "| block | channels | dilation | input T×F | output T×F | RF | jump | GMAC |",
                 "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for b in self.blocks:
            mark = " (conditioned)" if b.conditioned else ""
            lines.append(f"| {b.block}{mark} | {b.channels} | {b.dilation} | "
                         f"{_size(b.input_size)} | {_size(b.output_size)} | "
                         f"{b.receptive_field} | {b.jump} | {b.macs / 1e9:.3f} |")
        lines += ["", "| part | parameters | forward GMAC |", "|---|---:|---:|"]
        for key in self.params:
            lines.append(f"| {key} | {self.params[key]:,} | {self.macs[key] / 1e9:.3f} |")
        lines += ["", f"Training FLOPs per sample: {self.training_flops_per_sample / 1e12:.4f} T"]
        return "\n".join(lines)


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _count(module: Any) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def _head_macs(head: Any, channels: int, size: tuple[int, int]) -> tuple[int, tuple[int, int]]:
    t, f = size
    if isinstance(head, GlobalPoolHead):
        return channels * head.fc.out_features, (t, f)
    if isinstance(head, FlattenHead | AttentionHead) and head.roi:
        t, f = t // ROI_SIZE, f // ROI_SIZE
    if isinstance(head, FlattenHead):
        return channels * t * f * head.fc.out_features, (t, f)
    assert isinstance(head, AttentionHead)
    return 2 * channels * head.att.out_channels * t * f, (t, f)


def model_summary(model: CAANet | Mapping[str, Any], n_frames: int | None = None,
                  n_mels: int | None = None) -> ModelSummary:
    """Summarise ``model`` (or the model ``build_model(**model)`` would build) for one clip
    of ``n_frames`` x ``n_mels`` (default: the sizes it was built for)."""
    if isinstance(model, Mapping):
        model = build_model(**model)
    n_frames = model.n_frames if n_frames is None else n_frames
    n_mels = model.n_mels if n_mels is None else n_mels
    out_sizes = block_map_sizes(model.topology, n_frames, n_mels)
    in_sizes = [(n_frames, n_mels)] + out_sizes[:-1]
    fields = analytic_receptive_fields(model.topology)
    k2 = KERNEL_SIZE * KERNEL_SIZE

    blocks, in_ch = [], 1
    for i, block in enumerate(model.blocks):
        ch = block.conv.out_channels
        t, f = in_sizes[i]
        blocks.append(BlockSummary(
            block=i + 1, channels=ch, dilation=block.dilation, input_size=in_sizes[i],
            output_size=out_sizes[i], receptive_field=fields[i].size[0], jump=fields[i].jump[0],
            macs=in_ch * ch * k2 * t * f, conditioned=model.cond_layer == i + 1,
        ))
        in_ch = ch

    head_macs, head_size = _head_macs(model.head, model.channels[-1], out_sizes[-1])
    cond_macs = cond_literal = 0
    if model.conditioning is not None:
        c = model.conditioning.channels
        cond_macs = model.n_sources * c
        t, f = in_sizes[model.cond_layer - 1]
        cond_literal = model.n_sources * c * t * f
    dev_macs = 0
    if model.device_cnn is not None:
        t, f, d_in = n_frames, n_mels, 1
        for block in model.device_cnn.blocks:
            d_out = block.conv.out_channels
            dev_macs += d_in * d_out * k2 * t * f
            t, f, d_in = t // 2, f // 2, d_out
        dev_macs += d_in * model.device_cnn.fc.out_features

    backbone_params = _count(model.blocks)
    params = {
        "backbone": backbone_params,
        "conditioning": _count(model.conditioning),
        "head": _count(model.head),
        "device_cnn": _count(model.device_cnn),
    }
    params["total"] = sum(params.values())
    assert params["total"] == _count(model), "a parameter belongs to no counted part"
    macs = {"backbone": sum(b.macs for b in blocks), "conditioning": cond_macs,
            "head": head_macs, "device_cnn": dev_macs}
    macs["total"] = sum(macs.values())
    notes = []
    if model.pooling in ("flatten", "roi") and (n_frames, n_mels) != (model.n_frames, model.n_mels):
        notes.append(f"note: the {model.pooling} head was built for {model.n_frames}x"
                     f"{model.n_mels} and cannot run on {n_frames}x{n_mels}")
    return ModelSummary(
        build_args=dict(model.build_args), n_frames=n_frames, n_mels=n_mels, params=params,
        blocks=blocks, head_input_size=head_size, macs=macs, cond_literal_macs=cond_literal,
        notes=notes,
    )
