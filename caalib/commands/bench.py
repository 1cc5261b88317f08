"""``caa bench``: time training steps of one model in the released, default and fast modes.

The options and what running them does live in :mod:`caalib.bench.cli` (shared with
``python -m caalib.bench`` and benchmarks/bench_training.py); this module registers them.
"""

from __future__ import annotations

import argparse

from ..bench.cli import add_arguments, run_bench_command, settings_from_args

__all__ = ["add_arguments", "register", "run_bench_command", "settings_from_args"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="time training steps (released / default / fast) and the hardware's matmul rate",
        description="Time training steps of one model on synthetic data in the released, "
                    "default and fast modes, in one process, with the device's measured "
                    "matmul rate, and write the figures as JSON.",
    )
    add_arguments(p)
    p.set_defaults(func=run_bench_command)
