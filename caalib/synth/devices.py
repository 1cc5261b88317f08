"""Recording devices: one scene signal, three microphones (parallel recordings).

Device A is the clean reference (flat, quiet, 48 kHz, binaural-like stereo). B and C
are phone-like at 44.1 kHz, each with its own frequency response, noise floor, level
control and non-linearity. The mismatch between them is the domain shift the study's
device-robust models are meant to overcome, so it has to be real enough that a model
trained on A loses accuracy on B and C.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from . import sources as S

Rng = np.random.Generator

SCENE_RATE = 48_000  # the rate scenes are rendered at (device A's rate)


@dataclass(frozen=True)
class Phone:
    """A phone-like device: response, noise floor, automatic gain and limiting."""

    highpass_hz: float
    highpass_order: int
    peak_hz: float
    peak_db: float
    peak_q: float
    lowpass_hz: float
    lowpass_order: int
    hiss_db: float
    rumble_db: float
    agc_target_db: float
    agc_strength: float  # 0: fixed gain, 1: every window forced to the target
    drive: float  # tanh soft-clipping drive (1 ~ transparent)
    clip_at: float  # hard clipping level (full scale = 1)


PHONES: dict[str, Phone] = {
    "b": Phone(150.0, 2, 3000.0, 5.0, 1.0, 12000.0, 4, -66.0, -50.0, -25.0, 0.3, 1.5, 0.98),
    "c": Phone(300.0, 3, 1800.0, 8.0, 2.5, 8000.0, 6, -58.0, -44.0, -23.0, 0.5, 3.0, 0.45),
}

PHONE_RATE = 44_100


def peaking_sos(f0: float, gain_db: float, q: float, sr: int) -> np.ndarray:
    """A peaking-EQ biquad (audio EQ cookbook): a phone's resonance or presence boost."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / sr
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


def device_a(x: np.ndarray, rng: Rng, channels: int) -> np.ndarray:
    """Reference microphone: flat, self-noise around -90 dBFS, a small interaural delay."""
    n = x.size
    peak = np.max(np.abs(x))
    if peak > 0.7:  # a reference recording never clips
        x = x * (0.7 / peak)
    left = x + S.db(-92) * rng.standard_normal(n)
    if channels == 1:
        return left[:, None]
    delay = int(rng.integers(0, 4))
    right = np.roll(x, delay) * S.db(rng.normal(0, 0.5)) + S.db(-92) * rng.standard_normal(n)
    return np.stack([left, right], axis=1)


def _agc(y: np.ndarray, sr: int, target_db: float, strength: float) -> np.ndarray:
    """Slow automatic gain: pull the short-term level part of the way to the target."""
    win = int(0.4 * sr)
    n_win = max(1, y.size // win)
    frames = y[: n_win * win].reshape(n_win, win)
    level = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-9)
    gain_db = strength * (target_db - level) + (1 - strength) * (target_db - level.mean())
    centres = (np.arange(n_win) + 0.5) * win
    g = np.interp(np.arange(y.size), centres, gain_db)
    return y * 10 ** (g / 20)


def device_phone(x48: np.ndarray, rng: Rng, phone: Phone) -> np.ndarray:
    """Render what a phone records of the scene ``x48`` (48 kHz) at 44.1 kHz, mono."""
    y = signal.resample_poly(x48, 147, 160)
    sr = PHONE_RATE
    y = y * S.db(rng.normal(0, 1.5))  # hand position, orientation
    sos = np.concatenate([
        signal.butter(phone.highpass_order, phone.highpass_hz, "highpass", fs=sr, output="sos"),
        peaking_sos(phone.peak_hz, phone.peak_db, phone.peak_q, sr),
        signal.butter(phone.lowpass_order, phone.lowpass_hz, "lowpass", fs=sr, output="sos"),
    ])
    n = y.size
    # capsule self-noise and handling rumble pass through the capsule's response
    hiss = S.filt(rng.standard_normal(n), "highpass", 1000.0, sr) * S.db(phone.hiss_db)
    bursts = np.clip(S.smooth_curve(rng, n, sr, 1.5), 0, None) ** 2
    rumble = S.unit(S.filt(rng.standard_normal(n), "lowpass", 40.0, sr, order=2))
    y = signal.sosfilt(sos, y + hiss) + rumble * bursts * S.db(phone.rumble_db)
    y = _agc(y, sr, phone.agc_target_db + rng.normal(0, 1.0), phone.agc_strength)
    y = np.tanh(phone.drive * y) / phone.drive
    y = np.clip(y, -phone.clip_at, phone.clip_at)
    # the codec band-limits again after the limiter, as phone recordings are
    y = S.filt(y, "lowpass", 1.15 * phone.lowpass_hz, sr, order=4)
    return y[:, None]


def record(x48: np.ndarray, device: str, rng: Rng, a_channels: int) -> tuple[np.ndarray, int]:
    """Audio (frames, channels) and sample rate of ``device``'s recording of ``x48``."""
    if device == "a":
        return device_a(x48, rng, a_channels), SCENE_RATE
    return device_phone(x48, rng, PHONES[device]), PHONE_RATE
