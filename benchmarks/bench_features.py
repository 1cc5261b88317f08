"""Benchmark: `extract_features` (parallel decode + batched torch) vs the reference, clip by clip.

Usage:
    python benchmarks/bench_features.py [DATA_DIR] [--clips 64] [--seconds 10]
        [--device cpu|cuda] [--batch-size 64] [--workers N] [--threads 2]
        [--reference-clips N]

Without DATA_DIR it writes a temporary dataset in the real layout: half the clips at
48 kHz stereo 24 bit (device A), half at 44.1 kHz mono 16 bit (devices B/C), noise.
Both paths include reading the WAV files. The reference runs in the same process on
``--reference-clips`` clips (default: all) and its rate is per clip.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from caalib.constants import SCENES
from caalib.features import extract_features, load_features, reference_logmel


def make_dataset(root: Path, clips: int, seconds: float, seed: int = 0) -> Path:
    """Noise clips in the DCASE 2018 layout (meta.csv + evaluation_setup/*.txt)."""
    rng = np.random.default_rng(seed)
    (root / "audio").mkdir(parents=True)
    (root / "evaluation_setup").mkdir()
    rows, train, evaluate = [], [], []
    for i in range(clips):
        scene = SCENES[i % len(SCENES)]
        dev, sr, ch, subtype = ("a", 48000, 2, "PCM_24") if i % 2 == 0 else \
            ("b", 44100, 1, "PCM_16")
        name = f"audio/{scene}-bench-{i}-{i}-{dev}.wav"
        audio = np.clip(0.1 * rng.standard_normal((int(seconds * sr), ch)), -1, 1)
        sf.write(root / name, audio, sr, subtype=subtype)
        rows.append(f"{name}\t{scene}\tbench-{i}\t{dev}")
        (evaluate if i % 4 == 1 else train).append(f"{name}\t{scene}")
    header = "filename\tscene_label\tidentifier\tsource_label\n"
    (root / "meta.csv").write_text(header + "\n".join(rows) + "\n")
    (root / "evaluation_setup" / "fold1_train.txt").write_text("\n".join(train) + "\n")
    (root / "evaluation_setup" / "fold1_evaluate.txt").write_text("\n".join(evaluate) + "\n")
    return root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", nargs="?", default=None)
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--reference-clips", type=int, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench_features_") as tmp:
        if args.data_dir is None:
            t0 = time.perf_counter()
            data_dir = make_dataset(Path(tmp) / "data", args.clips, args.seconds)
            print(f"wrote {args.clips} clips of {args.seconds:g} s in "
                  f"{time.perf_counter() - t0:.1f} s")
        else:
            data_dir = Path(args.data_dir)
        out = Path(tmp) / "logmel.h5"

        # warm-up on torch/soxr/librosa lazy initialisation, not timed
        warm = np.random.default_rng(1).standard_normal(48000)
        reference_logmel(warm, 48000)
        if args.device.startswith("cuda"):
            torch.ones(1, device=args.device).sum().item()

        t0 = time.perf_counter()
        extract_features(data_dir, out, batch_size=args.batch_size, workers=args.workers,
                         device=args.device, progress=False, force=True)
        fast_s = time.perf_counter() - t0
        fs = load_features(out)
        n = len(fs)

        n_ref = min(n, args.reference_clips or n)
        t0 = time.perf_counter()
        max_diff = 0.0
        for i in range(n_ref):
            audio, sr = sf.read(data_dir / fs.meta["filename"][i])
            ref = reference_logmel(audio, sr)
            max_diff = max(max_diff, float(np.max(np.abs(ref - fs.feature[i]))))
        ref_s = time.perf_counter() - t0

    workers = args.workers or min(8, os.cpu_count() or 1)
    fast_rate, ref_rate = n / fast_s, n_ref / ref_s
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, torch threads {args.threads}, decode workers {workers}, "
          f"device {args.device}, batch {args.batch_size}")
    print(f"clips: {n} x {fs.feature.shape[1]} frames")
    print(f"extract_features : {fast_rate:8.1f} clips/s  ({fast_s:.2f} s for {n})")
    print(f"reference        : {ref_rate:8.1f} clips/s  ({ref_s:.2f} s for {n_ref})")
    print(f"speed-up         : {fast_rate / ref_rate:8.2f} x")
    print(f"max |fast - reference| over {n_ref} clips: {max_diff:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
