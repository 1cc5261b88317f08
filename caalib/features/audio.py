"""Decode one clip to mono float64 at 44.1 kHz, as the reference does, or say why not.

This is the part of the pipeline that runs in the extraction workers (processes or
threads): libsndfile (through soundfile's cffi calls), the BLAS product that evaluates
the released resampler's sums, numpy's large array operations and soxr all release the
GIL, so even threads decode and resample in parallel.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from ..datasets import inspect_clip, wav_chunk_problem
from ..errors import FeatureError
from .polyphase import resample_table
from .recipe import DEFAULT_RESAMPLER, SAMPLE_RATE, check_resampler, mono


def resample(x: np.ndarray, sr: int, resampler: str = DEFAULT_RESAMPLER) -> np.ndarray:
    """``librosa.resample(x, orig_sr=sr, target_sr=44100, res_type=resampler)`` without
    librosa: bit for bit for ``soxr_hq``, and for ``kaiser_best`` resampy 0.2's sums (its
    filter table, interpolation and float time register) evaluated as a polyphase matrix
    product (`caalib.features.polyphase`), equal to resampy's loop up to the order of
    float64 additions (relative 1e-15) and 2-4x faster than it.

    librosa calls resampy (``kaiser_best``, the released environment's default) or soxr
    (``soxr_hq``, today's default) and then pads with zeros (or trims) to
    ceil(n * 44100 / sr) samples; either library alone can come out one sample shorter.
    """
    if sr == SAMPLE_RATE:
        return x
    n_out = int(np.ceil(x.shape[0] * (float(SAMPLE_RATE) / sr)))
    if check_resampler(resampler) == "kaiser_best":
        y = resample_table(x, sr, SAMPLE_RATE, *_released_kaiser_best())
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


@functools.cache
def _released_kaiser_best() -> tuple[np.ndarray, int]:
    """resampy 0.2's ``kaiser_best`` table (one wing) and its entries per zero crossing."""
    half, precision, _ = _released_resampy().filters.get_filter("kaiser_best")
    return np.asarray(half, dtype=np.float64), int(precision)


class ImplausibleAudioWarning(UserWarning):
    """A clip is usable but implausible for a DCASE set (sample rate, peak, container,
    channels, near-silence); the message is the line ``caa check`` prints for it."""


def check_wav_complete(path: Path) -> None:
    """Raise if a RIFF/WAVE file's data chunk claims more bytes than the file holds.

    libsndfile silently returns the samples that are there when a WAV is cut short,
    so a truncated copy would otherwise pass as a shorter clip. Files of other formats
    pass (libsndfile judges them). The test is `caalib.datasets`' own, so `caa check`
    and the extractor agree.
    """
    _, broken = wav_chunk_problem(Path(path))
    if broken:
        raise FeatureError(f"{path}: {broken}")


def mono_fast(audio: np.ndarray) -> np.ndarray:
    """`recipe.mono`, bit for bit, without numpy's slow mean over a short axis for the
    usual mono and stereo float64 clips (5 ms -> 1 ms for 10 s of 48 kHz stereo).

    numpy reduces a row of two as ``a + b`` and divides by the count, which is what this
    computes; other channel counts and dtypes go through `mono` itself.
    """
    if audio.ndim == 2 and audio.dtype == np.float64 and audio.shape[1] in (1, 2):
        if audio.shape[1] == 1:
            return audio[:, 0]
        return (audio[:, 0] + audio[:, 1]) / 2.0
    return mono(audio)


def decode_clip(path: str | os.PathLike[str], where: str = "",
                resampler: str = DEFAULT_RESAMPLER) -> tuple[np.ndarray, bool, list[str]]:
    """`read_clip` without issuing its warnings: mono float64 samples at 44.1 kHz, whether
    the clip is digital silence, and the lines of the warnings `read_clip` would issue
    (for a worker process to hand back to the parent, which issues them in clip order)."""
    clip = inspect_clip(path, where)
    if clip.problems:
        raise FeatureError(str(clip.problems[0]))
    notes = [str(finding) for finding in clip.warnings if finding.kind != "silent"]
    audio = clip.samples
    assert audio is not None  # decoded and usable when there is no problem
    silent = not np.any(audio)
    return resample(mono_fast(audio), clip.rate, resampler), silent, notes


def read_clip(path: str | os.PathLike[str], where: str = "",
              resampler: str = DEFAULT_RESAMPLER) -> tuple[np.ndarray, bool]:
    """Mono float64 samples at 44.1 kHz and whether the clip is digital silence.

    The clip is judged by `caalib.datasets.inspect_clip`, as ``caa check`` judges it:
    a problem raises `FeatureError` with the line check prints, each warning is issued as
    an `ImplausibleAudioWarning` with that line (all-zero silence only through the
    returned flag, which the extractor reports as one `SilentClipWarning`). ``where``
    (e.g. "meta.csv line 7") ends the messages. Safe to call from worker threads.
    """
    x, silent, notes = decode_clip(path, where, resampler)
    for note in notes:
        warnings.warn(note, ImplausibleAudioWarning, stacklevel=2)
    return x, silent
