"""Where a stage computes: which torch device (one rule for features, training and
benchmarks) and how many CPUs this process may use (one rule for workers and jobs)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .errors import CaaError, ConfigError

if TYPE_CHECKING:
    import torch


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask where the OS has one (a container
    or ``taskset`` limit), not the host's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def resolve_torch_device(
    name: str | torch.device, *, field: str = "device", error: type[CaaError] = ConfigError
) -> torch.device:
    """``auto`` picks CUDA when torch sees one, else the CPU.

    Asking for CUDA on a machine without one, or for a name torch does not know, raises
    ``error`` naming ``field`` (the option the user set), so each stage reports its own
    flag and error kind while the rule stays the same everywhere.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise error(f"{field}: unknown device {name!r} (use auto, cpu or cuda)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise error(f"{field}: {str(name)!r} requested but torch finds no CUDA device")
    return dev
