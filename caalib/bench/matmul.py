"""The hardware's dense matmul rate: the denominator of "fraction of the hardware"."""

from __future__ import annotations

from typing import Any

import torch

from ..training.estimate import time_matmul
from .environment import TRUE_FP32_FLAGS, torch_flags


def measure_matmul(device: torch.device, dtype: torch.dtype, size: int,
                   min_time_s: float = 0.5) -> dict[str, Any]:
    """Dense ``size``² x ``size``² matmul rate (TFLOP/s, 2·n³ FLOPs each): the
    denominator of "fraction of what this hardware can do". fp32 is true fp32 (TF32
    off), the released arithmetic; the timing is ``training.estimate.time_matmul``'s,
    the sweep's floor's too."""
    flags = TRUE_FP32_FLAGS if dtype == torch.float32 else None
    with torch_flags(flags):
        done, elapsed = time_matmul(device, dtype, size, min_time_s)
    tflops = 2.0 * size ** 3 * done / elapsed / 1e12
    return {"dtype": str(dtype).removeprefix("torch."), "size": size, "iterations": done,
            "seconds": elapsed, "tflops": tflops,
            "tf32": False if dtype == torch.float32 else None}
