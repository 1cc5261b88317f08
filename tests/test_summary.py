"""Model summary: parameter counts, map sizes and analytic MACs checked independently."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from caalib.cli import main
from caalib.models import build_model
from caalib.summary import model_summary

pytestmark = pytest.mark.usefixtures("one_thread")


def _hooked_macs(model: nn.Module, x: torch.Tensor, source=None) -> int:
    """MACs of every Conv2d/Linear actually run, from their output shapes (batch 1)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() * k
        else:
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        model(x, source=source)
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("args", [
    dict(topology="atrous", pooling="att", strategy="multi_task", cond_layer=4),
    dict(topology="pool", pooling="flatten", strategy="teacher_forcing", cond_layer=2),
    dict(topology="nopool", pooling="roi", strategy="multi_task", cond_layer=1),
    dict(topology="atrous", pooling="roi+att", strategy="joint"),
    dict(topology="pool", pooling="max", strategy="single"),
])
def test_analytic_macs_match_the_layers_that_run(args):
    model = build_model(**args, width=1 / 16, n_frames=64, n_mels=48).eval()
    summary = model_summary(model)
    source = torch.tensor([1]) if args["strategy"] == "teacher_forcing" else None
    hooked = _hooked_macs(model, torch.randn(1, 64, 48), source)
    # the conditioning shift is a matrix-vector product, not a module call
    assert summary.forward_macs == hooked + summary.macs["conditioning"]
    assert summary.params["total"] == sum(p.numel() for p in model.parameters())
    maps = model.block_outputs(torch.randn(1, 64, 48), source)
    assert [b.output_size for b in summary.blocks] == [tuple(m.shape[2:]) for m in maps]
    assert [b.channels for b in summary.blocks] == [m.shape[1] for m in maps]


def test_paper_model_costs_about_89_gmac():
    s = model_summary(dict(topology="atrous", pooling="att", strategy="multi_task",
                           cond_layer=4))
    assert s.params["total"] == 4_523_799
    backbone = 25 * (64 + 64 * 128 + 128 * 256 + 256 * 512) * 320 * 64
    assert s.macs["backbone"] == backbone
    assert 88e9 < s.forward_macs < 91e9
    assert s.training_flops_per_sample == 6 * s.forward_macs
    assert 0.5e12 < s.training_flops_per_sample < 0.56e12
    assert [b.receptive_field for b in s.blocks] == [5, 13, 29, 61]
    assert s.blocks[3].conditioned and not s.blocks[0].conditioned
    assert s.cond_literal_macs == 3 * 512 * 320 * 64


def test_pooled_model_is_about_20x_cheaper():
    pooled = model_summary(dict(topology="pool", pooling="att", strategy="joint"))
    atrous = model_summary(dict(topology="atrous", pooling="att", strategy="joint"))
    assert 10 < atrous.forward_macs / pooled.forward_macs < 30
    assert pooled.head_input_size == (20, 4)


def test_cli_prints_text_markdown_and_json(capsys):
    base = ["model-summary", "--topology", "atrous", "--pooling", "att", "--strategy",
            "multi_task", "--cond-layer", "4"]
    assert main(base) == 0
    text = capsys.readouterr().out
    assert "4,523,799" in text and "89.4" in text
    assert main(base + ["--markdown", "--width", "0.5"]) == 0
    assert "| block |" in capsys.readouterr().out
    assert main(base + ["--json", "--frames", "128"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_frames"] == 128 and data["blocks"][0]["output_size"] == [128, 64]


def test_cli_reports_an_invalid_model_in_one_line(capsys):
    code = main(["model-summary", "--topology", "pool", "--pooling", "roi", "--strategy",
                 "joint"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == ("caa model-summary: error: pooling: 'roi' is not a pooling of "
                           "topology 'pool'; allowed: 'flatten', 'max', 'avg', 'att'")


def test_docs_models_md_is_generated_and_current():
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "make_model_table.py"
    spec = importlib.util.spec_from_file_location("make_model_table", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.render()
    assert "4,523,799" in text and "| Atrous CNN | 4 | 8 | 320×64 | 61 | 61 | 1 | 39 |" in text
    assert text.count("\n| CNN w/ pool + ") == 8  # params and cost tables, 4 rows each
    assert module.main(["--check"]) == 0, "docs/models.md is stale: rerun the script"
