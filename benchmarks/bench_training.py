"""Benchmark: training steps of one model in the released, default and fast modes.

Usage (the options of ``caa bench``; see ``--help``):
    python benchmarks/bench_training.py [--cpu-quick] [--topology atrous --pooling att
        --strategy multi_task --cond-layer 4] [--batch 16] [--frames 320] [--modes ...]
        [--compile] [--out results/bench/NAME.json]

A thin wrapper around :mod:`caalib.bench` that imports only that module (not the whole
CLI), so it runs where librosa/soundfile are missing (feature timing is then skipped).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caalib.bench import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
