"""The hardware's dense matmul rate: the denominator of "fraction of the hardware"."""

from __future__ import annotations

import time
from typing import Any

import torch

from .environment import TRUE_FP32_FLAGS, synchronize, torch_flags


def measure_matmul(device: torch.device, dtype: torch.dtype, size: int,
                   min_time_s: float = 0.5) -> dict[str, Any]:
    """Dense ``size``² x ``size``² matmul rate (TFLOP/s, 2·n³ FLOPs each): the
    denominator of "fraction of what this hardware can do"."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    c = torch.empty(size, size, device=device, dtype=dtype)
    flags = TRUE_FP32_FLAGS if dtype == torch.float32 else None
    with torch_flags(flags):
        for _ in range(3):
            torch.mm(a, b, out=c)
        synchronize(device)
        done, batch = 0, 1
        t0 = time.perf_counter()
        while True:
            for _ in range(batch):
                torch.mm(a, b, out=c)
            synchronize(device)
            done += batch
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time_s:
                break
            batch = min(batch * 2, 256)
    tflops = 2.0 * size ** 3 * done / elapsed / 1e12
    return {"dtype": str(dtype).removeprefix("torch."), "size": size, "iterations": done,
            "seconds": elapsed, "tflops": tflops,
            "tf32": False if dtype == torch.float32 else None}
