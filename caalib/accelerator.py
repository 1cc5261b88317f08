"""Which torch device a stage runs on: one rule for features, training and benchmarks."""

from __future__ import annotations

import torch

from .errors import CaaError, ConfigError


def resolve_torch_device(
    name: str | torch.device, *, field: str = "device", error: type[CaaError] = ConfigError
) -> torch.device:
    """``auto`` picks CUDA when torch sees one, else the CPU.

    Asking for CUDA on a machine without one, or for a name torch does not know, raises
    ``error`` naming ``field`` (the option the user set), so each stage reports its own
    flag and error kind while the rule stays the same everywhere.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise error(f"{field}: unknown device {name!r} (use auto, cpu or cuda)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise error(f"{field}: {str(name)!r} requested but torch finds no CUDA device")
    return dev
