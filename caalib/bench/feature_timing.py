"""Log-mel throughput: the batched torch transform alone, and ``extract_features`` end to
end on a synthetic dataset written by :mod:`caalib.synth`.

The audio libraries (librosa, soundfile, soxr) are imported only here and only when the
timing runs; where one is missing the timing is skipped with the reason recorded.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .environment import synchronize

if TYPE_CHECKING:  # caalib.synth imports soundfile
    from ..synth import SynthProfile


def feature_profile(clips: int, seconds: float) -> SynthProfile:
    """A synthetic DCASE 2018 set of exactly ``clips`` clips of ``seconds`` s: about half
    device A (48 kHz stereo 24 bit, resampled by the extraction) and half B/C (44.1 kHz
    mono 16 bit), about a quarter of them in the evaluate split (never empty), split by
    recording location as the readers require."""
    from ..synth import SynthProfile

    if clips < 2:
        raise ValueError(f"clips: need a train and an evaluate clip, got {clips}")
    pairs = clips // 4  # B/C twins come in pairs of a device-A clip
    a = clips - 2 * pairs
    evaluate_a = max(1, a // 4)
    evaluate_bc = pairs // 4
    return SynthProfile(
        "bench", clip_seconds=float(seconds), train_a=a - evaluate_a, evaluate_a=evaluate_a,
        train_bc=pairs - evaluate_bc, evaluate_bc=evaluate_bc, clips_per_location=3,
        a_channels=2, a_subtype="PCM_24", workers=max(1, min(8, clips // 8)),
    )


def bench_features(device: torch.device, clips: int, seconds: float,
                   batch_size: int = 64, workers: int | None = None) -> dict[str, Any]:
    """Log-mel throughput: the batched torch transform alone on ``device`` and the whole
    ``extract_features`` (decode, resample, transform, HDF5) on ``clips`` synthetic clips
    of ``seconds`` s in the DCASE 2018 layout (:func:`feature_profile`)."""
    try:
        import soundfile  # noqa: F401 - named first: the reason recorded when it is missing

        from ..features import extract_features, logmel
        from ..features.pipeline import plan
        from ..synth import synthesize
    except ImportError as exc:
        return {"skipped": f"feature timing needs librosa, soundfile and soxr ({exc})"}

    n = int(round(seconds * 44_100))
    audio = torch.from_numpy(
        0.1 * np.random.default_rng(0).standard_normal((clips, n))).to(device)
    logmel(audio[:1])  # lazy set-up (filterbank, FFT plans), untimed
    synchronize(device)
    t0 = time.perf_counter()
    for start in range(0, clips, batch_size):
        logmel(audio[start:start + batch_size])
    synchronize(device)
    transform_cps = clips / (time.perf_counter() - t0)
    del audio

    with tempfile.TemporaryDirectory(prefix="caa_bench_features_") as tmp:
        root = synthesize(Path(tmp) / "data", feature_profile(clips, seconds),
                          layout="dcase2018", seed=0, progress=False)
        t0 = time.perf_counter()
        extract_features(root, Path(tmp) / "logmel.h5", batch_size=batch_size,
                         workers=workers, accelerator=device.type, progress=False, force=True)
        extract_s = time.perf_counter() - t0
    return {
        "clips": clips,
        "clip_seconds": seconds,
        "device": device.type,
        "batch_size": batch_size,
        "workers": plan(device.type, workers=workers).workers,  # what extraction used
        "transform_clips_per_s": transform_cps,
        "extract_clips_per_s": clips / extract_s,
        "extract_s": extract_s,
    }
