"""The machine a benchmark runs on: torch device, backend flags, memory, versions."""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import resource
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..accelerator import resolve_torch_device

GIB = 1024 ** 3

#: PyTorch's documented defaults: TF32 allowed for cuDNN convolutions, not for matmuls.
TORCH_DEFAULT_FLAGS = {"cudnn_benchmark": False, "cudnn_tf32": True, "matmul_tf32": False}
TRUE_FP32_FLAGS = {"cudnn_benchmark": False, "cudnn_tf32": False, "matmul_tf32": False}


def resolve_accelerator(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is a ConfigError."""
    return resolve_torch_device(name, field="accelerator")


def get_flags() -> dict[str, bool]:
    """The backend flags in force (cudnn.benchmark, TF32 for convolutions and matmuls)."""
    return {"cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "cudnn_tf32": bool(torch.backends.cudnn.allow_tf32),
            "matmul_tf32": bool(torch.backends.cuda.matmul.allow_tf32)}


def _set_flags(flags: dict[str, bool]) -> None:
    # the legacy flags, as caalib.training sets them (mixing them with the newer
    # fp32_precision API is refused by recent PyTorch)
    torch.backends.cudnn.benchmark = flags["cudnn_benchmark"]
    torch.backends.cudnn.allow_tf32 = flags["cudnn_tf32"]
    torch.backends.cuda.matmul.allow_tf32 = flags["matmul_tf32"]


@contextlib.contextmanager
def torch_flags(flags: dict[str, bool] | None = None,
                threads: int | None = None) -> Iterator[None]:
    """Apply backend flags (and thread count); restore everything on exit, because a
    notebook shares one process with training."""
    saved, saved_threads = get_flags(), torch.get_num_threads()
    try:
        if flags is not None:
            _set_flags(flags)
        if threads is not None:
            torch.set_num_threads(threads)
        yield
    finally:
        _set_flags(saved)
        torch.set_num_threads(saved_threads)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> None:
    """Collect garbage and return cached GPU memory (between modes)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def rss_bytes() -> int:
    """Current resident set size (Linux /proc; 0 where unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def max_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def environment(device: torch.device) -> dict[str, Any]:
    """Device name and library versions, recorded with every result."""
    info: dict[str, Any] = {
        "device_type": device.type,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device_name=props.name, capability=f"{props.major}.{props.minor}",
                    total_memory_bytes=int(props.total_memory),
                    multiprocessors=props.multi_processor_count)
    else:
        info["device_name"] = _cpu_model() or platform.processor() or platform.machine()
    return info


def _cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), which ``platform`` does not give."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return None
