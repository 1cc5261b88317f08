"""Behaviour of the CAA-Net model family (tiny widths and inputs, CPU)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from caalib.errors import ConfigError
from caalib.models import (
    COND_LAYERS,
    CONDITIONED_STRATEGIES,
    STRATEGIES,
    TOPOLOGIES,
    VALID_POOLINGS,
    build_model,
    he_uniform_bound,
)
from caalib.models.blocks import DeviceConditioning

W = 1 / 16
T = F_ = 64
#: the 140-combination sweep runs even smaller
W_SWEEP, S_SWEEP = 1 / 32, 32


pytestmark = pytest.mark.usefixtures("one_thread")


def _combos():
    for topology in TOPOLOGIES:
        for pooling in VALID_POOLINGS[topology]:
            for strategy in STRATEGIES:
                layers = COND_LAYERS if strategy in CONDITIONED_STRATEGIES else (None,)
                for layer in layers:
                    yield topology, pooling, strategy, layer


COMBOS = list(_combos())


def _final_size(topology: str, pooling: str, size: int) -> tuple[int, int]:
    if topology == "pool" or pooling == "roi+att":
        return size // 16, size // 16
    return size, size


def _build(topology, pooling, strategy, layer=None, width=W, size=T, **kw):
    torch.manual_seed(0)
    return build_model(topology, pooling, strategy, layer, width=width, n_frames=size,
                       n_mels=size, **kw)


def test_paper_has_14_models_and_140_combinations():
    assert sum(len(v) for v in VALID_POOLINGS.values()) == 14
    assert len(COMBOS) == 14 * (2 + 4 + 4)


@pytest.mark.parametrize("topology,pooling,strategy,layer", COMBOS,
                         ids=["-".join(str(p) for p in c) for c in COMBOS])
def test_every_combination_runs_forward_and_backward(topology, pooling, strategy, layer):
    model = _build(topology, pooling, strategy, layer, width=W_SWEEP, size=S_SWEEP)
    x = torch.randn(2, S_SWEEP, S_SWEEP)
    devices = torch.tensor([0, 2])
    out = model(x, source=devices if strategy == "teacher_forcing" else None)

    assert out.scene.shape == (2, 10) and out.scene.dtype == torch.float32
    assert torch.isfinite(out.scene).all()
    if pooling in ("att", "roi+att"):
        # released attention: weighted means of log-probabilities, each <= 0
        assert (out.scene <= 0).all()
        assert out.attention.shape == (2, 10, *_final_size(topology, pooling, S_SWEEP))
        torch.testing.assert_close(out.attention.sum(dim=(2, 3)), torch.ones(2, 10))
    else:
        assert out.attention is None
        torch.testing.assert_close(out.scene.logsumexp(dim=1), torch.zeros(2))
    if strategy == "multi_task":
        assert out.source.shape == (2, 3)
        torch.testing.assert_close(out.source.exp().sum(dim=1), torch.ones(2))
    else:
        assert out.source is None
    assert (model.conditioning is not None) == (strategy in CONDITIONED_STRATEGIES)

    loss = F.nll_loss(out.scene, torch.tensor([1, 7]))
    if out.source is not None:
        loss = loss + F.nll_loss(out.source, devices)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_released_attention_starts_uniform_and_normalised(topology):
    model = _build(topology, "att", "joint")
    out = model(torch.randn(2, T, F_))
    n_bins = out.attention.shape[2] * out.attention.shape[3]
    torch.testing.assert_close(out.attention, torch.full_like(out.attention, 1 / n_bins))
    # with uniform attention, Jensen bounds the released scores' probabilities by 1
    assert (out.scene.exp().sum(dim=1) <= 1 + 1e-5).all()
    assert torch.count_nonzero(model.head.att.weight) == 0


def test_paper_and_released_attention_both_work_and_differ():
    released = _build("atrous", "att", "joint")
    paper = _build("atrous", "att", "joint", attention="paper")
    paper.load_state_dict(released.state_dict())  # same parameters, different formula
    with torch.no_grad():
        released.head.att.weight.normal_(0, 1.0)
        paper.head.att.weight.copy_(released.head.att.weight)
    released.eval(), paper.eval()
    x = torch.randn(2, T, F_)
    a, b = released(x), paper(x)
    for out in (a, b):
        torch.testing.assert_close(out.attention.sum(dim=(2, 3)), torch.ones(2, 10))
        assert torch.isfinite(out.scene).all() and (out.scene <= 0).all()
    assert not torch.allclose(a.scene, b.scene, atol=1e-4)
    assert not torch.allclose(a.attention, b.attention, atol=1e-6)
    # released attention is clamped to [0.1, 0.9] before normalising: ratio <= 9
    ratio = a.attention.amax(dim=(2, 3)) / a.attention.amin(dim=(2, 3))
    assert (ratio <= 9 + 1e-4).all()
    assert (b.attention.amax(dim=(2, 3)) / b.attention.amin(dim=(2, 3)) > 9).any()


def test_teacher_forcing_output_depends_on_the_given_device():
    model = _build("atrous", "att", "teacher_forcing", 2).eval()
    with torch.no_grad():
        model.conditioning.conv.weight.normal_(0, 1.0)
    x = torch.randn(2, T, F_)
    a = model(x, source=torch.tensor([0, 0])).scene
    b = model(x, source=torch.tensor([1, 2])).scene
    assert not torch.allclose(a, b, atol=1e-5)
    onehot = torch.eye(3)[[1, 2]]
    torch.testing.assert_close(model(x, source=onehot).scene, b)


def test_teacher_forcing_without_source_is_a_clear_error():
    model = _build("nopool", "max", "teacher_forcing", 1)
    with pytest.raises(ValueError, match="true source"):
        model(torch.randn(2, T, F_))
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        model(torch.randn(2, T, F_), source=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="integer indices"):
        model(torch.randn(2, T, F_), source=torch.tensor([0, 1, 2]))


def test_forward_device_keyword_is_a_deprecated_alias_of_source():
    """``forward(x, device=...)`` (recording-device indices) warns and equals ``source=``."""
    model = _build("atrous", "att", "teacher_forcing", 2).eval()
    with torch.no_grad():
        model.conditioning.conv.weight.normal_(0, 1.0)
    x, idx = torch.randn(2, T, F_), torch.tensor([0, 2])
    with torch.no_grad():
        new = model(x, source=idx)
        with pytest.warns(DeprecationWarning, match="use forward\\(x, source=...\\)"):
            old = model(x, device=idx)
    torch.testing.assert_close(old.scene, new.scene)
    with pytest.raises(TypeError, match="both source= and"):
        model(x, source=idx, device=idx)


def test_scene_loss_sends_no_gradient_into_the_device_cnn():
    model = _build("atrous", "att", "multi_task", 1)
    out = model(torch.randn(4, T, F_))
    F.nll_loss(out.scene, torch.tensor([0, 1, 2, 3])).backward()
    for name, p in model.device_cnn.named_parameters():
        assert p.grad is None or torch.count_nonzero(p.grad) == 0, name
    assert model.conditioning.conv.weight.grad is not None  # the path itself is trained
    assert any(torch.count_nonzero(p.grad) for p in model.blocks.parameters())


def test_conditioning_equals_the_literal_expand_and_1x1_conv():
    torch.manual_seed(1)
    cond = DeviceConditioning(3, 8)
    with torch.no_grad():
        cond.conv.bias.normal_()
    onehot = torch.eye(3)[[2, 0, 1]]
    fast = cond(onehot).expand(-1, -1, 5, 7)
    torch.testing.assert_close(fast, cond.literal(onehot, (5, 7)))


@pytest.mark.parametrize("topology,layer", [("pool", 3), ("atrous", 4)])
def test_model_with_conditioning_equals_the_literal_formulation(topology, layer):
    model = _build(topology, "avg", "teacher_forcing", layer).eval()
    with torch.no_grad():
        model.conditioning.conv.weight.normal_()
        model.conditioning.conv.bias.normal_()
    x = torch.randn(3, T, F_)
    devices = torch.tensor([2, 0, 1])
    onehot = torch.eye(3)[devices]
    h = x.unsqueeze(1)
    for i, block in enumerate(model.blocks, start=1):  # Eq. 1 written out literally
        y = block.conv(h)
        if i == layer:
            y = y + model.conditioning.literal(onehot, tuple(y.shape[2:]))
        h = block.pool(F.relu(block.bn(y)))
    expected = F.log_softmax(model.head.fc(h.mean(dim=(2, 3))), dim=-1)
    torch.testing.assert_close(model(x, source=devices).scene, expected)


@pytest.mark.parametrize("kwargs,message", [
    (dict(topology="big"), "topology: 'big' is not one of 'pool', 'nopool', 'atrous'"),
    (dict(pooling="roi"), "pooling: 'roi' is not a pooling of topology 'pool'; "
                          "allowed: 'flatten', 'max', 'avg', 'att'"),
    (dict(pooling="flatten", topology="atrous"), "allowed: 'max', 'avg', 'roi', 'att', 'roi+att'"),
    (dict(pooling="median"), "one of 'flatten', 'max', 'avg', 'roi', 'att', 'roi+att'"),
    (dict(strategy="ensemble"), "one of 'single', 'joint', 'teacher_forcing', 'multi_task'"),
    (dict(strategy="multi_task"), "cond_layer: required for strategy 'multi_task' "
                                  "(one of 1, 2, 3, 4)"),
    (dict(strategy="teacher_forcing", cond_layer=5), "cond_layer: 5 is not one of 1, 2, 3, 4"),
    (dict(cond_layer=3), "cond_layer: strategy 'joint' has no conditioning; must be null"),
    (dict(width=0), "width"),
    (dict(n_classes=0), "n_classes"),
    (dict(attention="soft"), "attention: 'soft' is not one of 'released', 'paper'"),
])
def test_invalid_arguments_name_the_allowed_values(kwargs, message):
    args = dict(topology="pool", pooling="max", strategy="joint") | kwargs
    with pytest.raises(ValueError) as info:
        build_model(**args)
    assert message in str(info.value)
    assert isinstance(info.value, ConfigError)  # the CLI prints it as one line


def test_unconditioned_strategies_build_without_conditioning():
    model = build_model("pool", "max", "single", None, width=W)
    assert model.cond_layer is None and model.conditioning is None


def test_width_scales_every_channel_count():
    model = build_model("atrous", "att", "multi_task", 2, width=0.25)
    assert model.channels == (16, 32, 64, 128)
    assert [b.conv.out_channels for b in model.device_cnn.blocks] == [16, 32]
    assert model.conditioning.channels == 32
    assert build_model("pool", "max", "joint", width=1e-3).channels == (1, 1, 1, 1)


def test_parameter_count_of_the_paper_model():
    model = build_model("atrous", "att", "multi_task", 4)
    c = (64, 128, 256, 512)
    backbone = 25 * (1 * 64 + 64 * 128 + 128 * 256 + 256 * 512) + 2 * sum(c)
    cond = 3 * 512 + 512
    head = 2 * (512 * 10 + 10)
    cnn_d = 25 * (1 * 64 + 64 * 128) + 2 * (64 + 128) + 128 * 3 + 3
    expected = backbone + cond + head + cnn_d
    assert expected == 4_523_799
    assert sum(p.numel() for p in model.parameters()) == expected


def test_initialisation_as_released():
    model = build_model("atrous", "att", "multi_task", 2, width=0.25)
    conv = model.blocks[2].conv.weight
    bound = he_uniform_bound(conv[0].numel())
    assert conv.abs().max() <= bound and conv.abs().max() > 0.9 * bound
    assert torch.count_nonzero(model.conditioning.conv.bias) == 0
    assert torch.count_nonzero(model.head.att.weight) == 0
    assert torch.count_nonzero(model.head.cla.weight) > 0
    assert torch.equal(model.blocks[0].bn.weight, torch.ones(16))
    torch.manual_seed(5)
    a = build_model("pool", "max", "joint", width=W)
    torch.manual_seed(5)
    b = build_model(**a.build_args)
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), n


def test_global_heads_take_any_length_but_flatten_and_roi_do_not():
    x = torch.randn(2, 48, F_)
    assert _build("atrous", "max", "joint")(x).scene.shape == (2, 10)
    assert _build("pool", "att", "joint")(x).attention.shape == (2, 10, 3, 4)
    for topology, pooling in (("pool", "flatten"), ("nopool", "roi")):
        with pytest.raises(ValueError, match="built for a 4x4 map but got 3x4"):
            _build(topology, pooling, "joint")(x)


def test_block_outputs_keep_or_halve_the_resolution():
    x = torch.randn(1, T, F_)
    sizes = [tuple(m.shape[2:]) for m in _build("pool", "max", "joint").block_outputs(x)]
    assert sizes == [(32, 32), (16, 16), (8, 8), (4, 4)]
    sizes = [tuple(m.shape[2:]) for m in _build("atrous", "max", "joint").block_outputs(x)]
    assert sizes == [(64, 64)] * 4


def test_autocast_bf16_and_channels_last():
    model = _build("atrous", "roi+att", "multi_task", 3).eval()
    x = torch.randn(2, T, F_)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
        model.to(memory_format=torch.channels_last)
        cl = model(x)
    assert low.scene.dtype == torch.float32 and torch.isfinite(low.scene).all()
    torch.testing.assert_close(low.scene, ref.scene, atol=0.1, rtol=0.05)
    torch.testing.assert_close(cl.scene, ref.scene, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cl.source, ref.source, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("topology, strategy, n_frames, n_mels, fits", [
    ("pool", "joint", 15, 64, False),  # 15 -> 7 -> 3 -> 1 -> 0 frames after 4 halvings
    ("pool", "joint", 16, 64, True),   # 16 -> 1 after 4 halvings
    ("pool", "joint", 64, 8, False),   # 8 mels -> 0 after 4 halvings
    ("atrous", "multi_task", 3, 64, False),  # CNN-d: 3 -> 1 -> 0 after its 2 halvings
    ("atrous", "multi_task", 4, 64, True),
    ("nopool", "joint", 1, 64, True),  # no pooled stage, no CNN-d: any length
])
def test_too_short_an_input_is_a_config_error(topology, strategy, n_frames, n_mels,
                                              fits) -> None:
    """A map pooled to nothing is refused when the model is built, naming the sizes,
    not at the first forward pass as torch's 'Output size is too small'."""
    from caalib.models import build_model
    from caalib.models.net import ModelConfigError

    kwargs = dict(cond_layer=4 if strategy == "multi_task" else None, width=1 / 16,
                  n_frames=n_frames, n_mels=n_mels)
    if not fits:
        with pytest.raises(ModelConfigError, match=rf"{n_frames} x {n_mels}: .* needs at least"):
            build_model(topology, "att", strategy, **kwargs)
        return
    model = build_model(topology, "att", strategy, **kwargs).eval()
    with torch.no_grad():
        out = model(torch.randn(2, n_frames, n_mels))
    assert out.scene.shape == (2, 10)
