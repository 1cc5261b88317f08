"""The log-mel recipe of study notes section 1, written out plainly: the oracle.

`reference_logmel` is deliberately the slow, clip-by-clip scipy + librosa version, so
that anyone can read it against the notes line by line. The batched torch path in
`caalib.features.fast` is tested against it, never the other way round.
"""

from __future__ import annotations

import functools
from typing import Any

import librosa
import numpy as np
import scipy.signal

from ..constants import FEATURE_SAMPLE_RATE
from ..errors import FeatureError

SAMPLE_RATE = FEATURE_SAMPLE_RATE
N_FFT = 2048
HOP = 1376
NOVERLAP = N_FFT - HOP  # 672, as scipy.signal.spectrogram is called
N_MELS = 64
FMIN = 20.0
FMAX = 22050.0
LOG_OFFSET = 1e-8

#: Resamplers for clips not at 44.1 kHz. ``kaiser_best`` is what the released environment
#: (librosa 0.6.1, whose ``resample`` defaulted to resampy's ``kaiser_best`` filter) did;
#: ``soxr_hq`` is today's librosa default. They differ only near Nyquist.
RESAMPLERS: tuple[str, ...] = ("kaiser_best", "soxr_hq")
DEFAULT_RESAMPLER = "kaiser_best"

_RESAMPLER_TEXT = {
    "kaiser_best": "resampy 0.2 kaiser_best (librosa 0.6.1's default, as released): its "
                   "sums evaluated as a polyphase matrix product, equal to resampy's loop "
                   "up to the order of float64 additions; zero-padded or trimmed to "
                   "ceil(n * 44100 / sr)",
    "soxr_hq": "soxr HQ (librosa >= 0.10's default), zero-padded or trimmed to "
               "ceil(n * 44100 / sr)",
}


def check_resampler(resampler: str) -> str:
    if resampler not in RESAMPLERS:
        raise FeatureError(
            f"resampler: {resampler!r} is not one of {', '.join(RESAMPLERS)}"
        )
    return resampler


def recipe(resampler: str = DEFAULT_RESAMPLER) -> dict[str, Any]:
    """Everything that decides the numbers; stored in every feature file and compared
    before a cache is reused. Bump ``recipe_version`` if the implementation changes in a
    way these fields do not capture (2: the released scale, fs = 1; resampler setting)."""
    return {
        "recipe_version": 2,
        "sample_rate": SAMPLE_RATE,
        "resampler": check_resampler(resampler),
        "resampler_detail": _RESAMPLER_TEXT[resampler],
        "mono": "mean over channels",
        "n_fft": N_FFT,
        "hop": HOP,
        "window": "hamming, symmetric (np.hamming)",
        "center": False,
        "scaling": "scipy.signal.spectrogram without fs (fs = 1.0, as released), density, "
                   "magnitude: |rfft| * sqrt(1 / sum(window**2))",
        "n_mels": N_MELS,
        "fmin": FMIN,
        "fmax": FMAX,
        "mel_scale": "slaney",
        "mel_norm": "slaney",
        "log_offset": LOG_OFFSET,
        "dtype": "float32",
    }


#: The default (released) recipe.
RECIPE: dict[str, object] = recipe()


@functools.cache
def mel_matrix() -> np.ndarray:
    """The librosa filterbank (64, 1025), float32 as librosa returns it; cached."""
    mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)
    mel.setflags(write=False)
    return mel


def mono(audio: np.ndarray) -> np.ndarray:
    """Average the channels of (samples,) or (samples, channels) audio, in float64."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 2:
        return audio.mean(axis=1)
    if audio.ndim != 1:
        raise FeatureError(f"audio must be (samples,) or (samples, channels), got {audio.shape}")
    return audio


def n_frames(n_samples: int) -> int:
    """Frames the recipe gives for a 44.1 kHz signal of ``n_samples`` (0 if too short)."""
    return 0 if n_samples < N_FFT else (n_samples - N_FFT) // HOP + 1


def reference_logmel(audio: np.ndarray, sr: int,
                     resampler: str = DEFAULT_RESAMPLER) -> np.ndarray:
    """Log-mel (T, 64) float32 of one clip, exactly as study notes section 1 computes it.

    As released: ``librosa.resample`` with the chosen filter, then
    ``scipy.signal.spectrogram`` called without ``fs`` (scipy's default ``fs=1.0``).
    """
    x = mono(audio)
    if sr != SAMPLE_RATE:
        x = librosa.resample(x, orig_sr=sr, target_sr=SAMPLE_RATE,
                             res_type=check_resampler(resampler))
    if len(x) < N_FFT:
        raise FeatureError(
            f"clip too short: {len(x)} samples at {SAMPLE_RATE} Hz, one frame needs {N_FFT}"
        )
    _, _, spec = scipy.signal.spectrogram(
        x,
        window=np.hamming(N_FFT),
        nperseg=N_FFT,
        noverlap=NOVERLAP,
        detrend=False,
        return_onesided=True,
        mode="magnitude",
    )
    mel = np.dot(mel_matrix(), spec)  # (64, T)
    return np.log(mel + LOG_OFFSET).T.astype(np.float32)
