"""Decode one clip to mono float64 at 44.1 kHz, as the reference does, or say why not.

This is the part of the pipeline that runs in worker threads: libsndfile (through
soundfile's cffi calls) and soxr both release the GIL, so threads decode in parallel.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..errors import FeatureError
from .recipe import N_FFT, SAMPLE_RATE, mono


def resample(x: np.ndarray, sr: int) -> np.ndarray:
    """``librosa.resample(x, orig_sr=sr, target_sr=44100)`` bit for bit, without librosa.

    librosa calls soxr at quality 'soxr_hq' and then pads with zeros (or trims) to
    ceil(n * 44100 / sr) samples; soxr alone can come out one sample shorter.
    """
    if sr == SAMPLE_RATE:
        return x
    n_out = int(np.ceil(x.shape[0] * (float(SAMPLE_RATE) / sr)))
    y = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ")
    if y.shape[0] < n_out:
        y = np.pad(y, (0, n_out - y.shape[0]))
    return np.asarray(y[:n_out], dtype=x.dtype)


def check_wav_complete(path: Path) -> None:
    """Raise if a RIFF/WAVE file's data chunk claims more bytes than the file holds.

    libsndfile silently returns the samples that are there when a WAV is cut short,
    so a truncated copy would otherwise pass as a shorter clip.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX"):
            return  # not a plain WAV (or too broken): libsndfile will judge it
        endian = "<" if head[:4] == b"RIFF" else ">"
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, length = struct.unpack(endian + "4sI", f.read(8))
            if chunk_id == b"data":
                if length != 0xFFFFFFFF and pos + 8 + length > size:
                    raise FeatureError(
                        f"{path}: truncated WAV: data chunk declares {length} bytes, "
                        f"only {size - pos - 8} present"
                    )
                return
            pos += 8 + length + (length & 1)


def read_clip(path: str | os.PathLike[str], where: str = "") -> tuple[np.ndarray, bool]:
    """Mono float64 samples at 44.1 kHz and whether the clip is digital silence.

    ``where`` (e.g. "meta.csv line 7") is added to error messages.
    """
    path = Path(path)
    ctx = f" ({where})" if where else ""
    if not path.is_file():
        raise FeatureError(f"{path}: audio file does not exist{ctx}")
    if path.stat().st_size == 0:
        raise FeatureError(f"{path}: empty file (0 bytes), not audio{ctx}")
    try:
        check_wav_complete(path)
        audio, sr = sf.read(path, dtype="float64", always_2d=True)
    except FeatureError as exc:
        raise FeatureError(f"{exc}{ctx}") from exc
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, struct.error) as exc:
        raise FeatureError(f"{path}: cannot read audio{ctx}: {exc}") from exc
    if audio.shape[0] == 0:
        raise FeatureError(f"{path}: audio file holds no samples{ctx}")
    if not np.all(np.isfinite(audio)):
        raise FeatureError(f"{path}: audio holds NaN or infinite samples{ctx}")
    silent = not np.any(audio)
    x = resample(mono(audio), sr)
    if x.shape[0] < N_FFT:
        raise FeatureError(
            f"{path}: clip too short{ctx}: {audio.shape[0]} samples at {sr} Hz give "
            f"{x.shape[0]} at {SAMPLE_RATE} Hz, one frame needs {N_FFT} "
            f"({math.ceil(N_FFT / SAMPLE_RATE * 1000)} ms)"
        )
    return x, silent
