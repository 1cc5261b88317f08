"""A benchmark record as JSON on disk and as the summary ``caa bench`` prints."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..atomic import write_json


def write_record(record: dict[str, Any], out: str | os.PathLike[str]) -> Path:
    """The record as JSON, written atomically."""
    return write_json(out, record)


def _fmt_hours(h: float) -> str:
    return f"{h * 60:.1f} min" if h < 1 else (f"{h:.2f} h" if h < 48 else f"{h / 24:.1f} d")


def format_report(record: dict[str, Any]) -> str:
    """Human-readable summary of a record (what ``caa bench`` prints)."""
    env, model, s = record["environment"], record["model"], record["settings"]
    mm = record["matmul"]
    lines = [
        f"device: {env['device_name']} ({env['device_type']}), torch {env['torch']}, "
        f"CUDA {env['cuda']}, cuDNN {env['cudnn']}, {env['torch_threads']} torch threads",
        f"model: {s['topology']} + {s['pooling']}, {s['strategy']}"
        + (f" (cond layer {s['cond_layer']})" if s["cond_layer"] is not None else "")
        + f", width {s['width']:g}, {model['params']:,} parameters; input "
        f"{s['frames']}x{s['mels']}, batch {s['batch']}",
        f"FLOPs: {model['forward_flops_per_sample'] / 1e9:.3f} GFLOP forward per clip, "
        f"{model['training_flops_per_step'] / 1e12:.4f} TFLOP per training step "
        f"(training = 3 x forward, analytic)",
        f"matmul {mm[mm['reference']]['size']}² {mm['reference']}: "
        f"{mm['reference_tflops']:.3f} TFLOP/s"
        + (f"; fp32 (no TF32): {mm['fp32']['tflops']:.3f} TFLOP/s" if "bf16" in mm else ""),
        "",
        f"{'mode':<9} {'warm-up':>8} {'steps/s':>8} {'samples/s':>9} {'ms/step':>8} {'TFLOP/s':>8} "
        f"{'%matmul':>7} {'peak GiB':>8} {'vs rel':>6} {'vs def':>6} {'eval clip/s':>11} "
        f"{'15k run':>9} {'Table II':>9}",
    ]
    for name, m in record["modes"].items():
        if "error" in m:
            lines.append(f"{name:<9} FAILED: {m['error']}")
            continue
        rel = m.get("speedup_vs_released")
        dflt = m.get("speedup_vs_default")
        lines.append(
            f"{name:<9} {m['warmup_s']:7.1f}s {m['steps_per_s']:8.2f} {m['samples_per_s']:9.1f} "
            f"{m['step_ms_median']:8.2f} {m['achieved_tflops']:8.3f} "
            f"{100 * m['fraction_of_matmul']:6.1f}% {m['peak_memory_gib']:8.2f} "
            f"{'' if rel is None else f'{rel:5.2f}x':>6} "
            f"{'' if dflt is None else f'{dflt:5.2f}x':>6} {m['eval_clips_per_s']:11.1f} "
            f"{_fmt_hours(m['implied']['run_train_hours']):>9} "
            f"{_fmt_hours(m['implied']['table2_train_hours']):>9}"
        )
    lines.append("")
    lines.append("implied times: " + record["implied_assumptions"])
    for name, m in record["modes"].items():
        if "implied" in m:
            imp = m["implied"]
            lines.append(f"  {name}: one run {_fmt_hours(imp['run_train_hours'])} training + "
                         f"~{_fmt_hours(imp['run_eval_hours_estimate'])} evaluation; Table II "
                         f"~{_fmt_hours(imp['table2_total_hours_estimate'])} in all")
    t = record["targets"]
    if "met" in t:
        verdict = ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in t["met"].items())
        lines.append(f"targets ({t['mode']}{'' if t['meaningful'] else '; meant for a GPU'}): "
                     f"{verdict}")
    f = record.get("features", {})
    if "transform_clips_per_s" in f:
        lines.append(f"features ({f['clips']} clips of {f['clip_seconds']:g} s): log-mel "
                     f"transform {f['transform_clips_per_s']:.1f} clips/s on {f['device']}, "
                     f"extract_features {f['extract_clips_per_s']:.1f} clips/s end to end")
    else:
        lines.append(f"features: {f.get('skipped') or f.get('error')}")
    return "\n".join(lines)
