"""Decode one clip to mono float64 at 44.1 kHz, as the reference does, or say why not.

This is the part of the pipeline that runs in worker threads: libsndfile (through
soundfile's cffi calls) and soxr both release the GIL, so threads decode in parallel.
"""

from __future__ import annotations

import functools
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from ..errors import FeatureError
from .recipe import DEFAULT_RESAMPLER, N_FFT, SAMPLE_RATE, check_resampler, mono


def resample(x: np.ndarray, sr: int, resampler: str = DEFAULT_RESAMPLER) -> np.ndarray:
    """``librosa.resample(x, orig_sr=sr, target_sr=44100, res_type=resampler)`` bit for
    bit, without librosa.

    librosa calls resampy (``kaiser_best``, the released environment's default) or soxr
    (``soxr_hq``, today's default) and then pads with zeros (or trims) to
    ceil(n * 44100 / sr) samples; either library alone can come out one sample shorter.
    """
    if sr == SAMPLE_RATE:
        return x
    n_out = int(np.ceil(x.shape[0] * (float(SAMPLE_RATE) / sr)))
    if check_resampler(resampler) == "kaiser_best":
        y = _released_resampy().resample(x, sr, SAMPLE_RATE, filter="kaiser_best", axis=-1)
    else:
        y = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ")
    if y.shape[0] < n_out:
        y = np.pad(y, (0, n_out - y.shape[0]))
    return np.asarray(y[:n_out], dtype=x.dtype)


#: resampy 0.2.x's ``kaiser_best`` table (what librosa 0.6.1 resampled with): 64 zero
#: crossings at 2**9 entries each, roll-off 0.9475937167399596. resampy >= 0.3 ships
#: 2**13 entries with roll-off 0.917 and another interpolation loop.
RELEASED_KAISER_BEST = {"precision": 512, "rolloff": 0.9475937167399596, "n_taps": 64 * 512 + 1}


@functools.cache
def _released_resampy() -> Any:
    """resampy, after checking that its ``kaiser_best`` is the released environment's."""
    import warnings

    with warnings.catch_warnings():  # resampy 0.2 imports pkg_resources, which warns
        warnings.simplefilter("ignore")
        import resampy
    half, precision, rolloff = resampy.filters.get_filter("kaiser_best")
    found = {"precision": int(precision), "rolloff": float(rolloff), "n_taps": len(half)}
    if found != RELEASED_KAISER_BEST:
        raise FeatureError(
            f"resampler: resampy {resampy.__version__}'s kaiser_best filter is {found}, not "
            f"the released environment's {RELEASED_KAISER_BEST} (resampy 0.2.x); install "
            "resampy==0.2.2 as pyproject.toml pins it, or use --resampler soxr_hq"
        )
    return resampy


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


def read_clip(path: str | os.PathLike[str], where: str = "",
              resampler: str = DEFAULT_RESAMPLER) -> tuple[np.ndarray, bool]:
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
    x = resample(mono(audio), sr, resampler)
    if x.shape[0] < N_FFT:
        raise FeatureError(
            f"{path}: clip too short{ctx}: {audio.shape[0]} samples at {sr} Hz give "
            f"{x.shape[0]} at {SAMPLE_RATE} Hz, one frame needs {N_FFT} "
            f"({math.ceil(N_FFT / SAMPLE_RATE * 1000)} ms)"
        )
    return x, silent
