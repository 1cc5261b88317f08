"""Recording devices: one scene signal, three microphones (parallel recordings).

Device A is the clean reference (flat, quiet, 48 kHz, binaural-like stereo). B and C
are phone-like at 44.1 kHz, each with its own frequency response, noise floor, level
control and non-linearity. The mismatch between them is the domain shift the study's
device-robust models are meant to overcome, so it has to be real enough that a model
trained on A loses accuracy on B and C.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
    gain_sd_db: float = 1.5  # spread of the hand-position gain
    agc_amount: float = 1.0  # share of the AGC's correction applied (0: no level control)

    def at(self, shift: float) -> Phone:
        """This phone at device-shift strength ``shift`` (docs/simulation.md has the map).

        1 is the phone itself; 0 leaves only what no phone avoids (44.1 kHz, mono): every
        stage is the identity; between them, dB quantities and drive scale linearly,
        corners move geometrically from the band edges. Beyond 1, corners move one octave
        inward per unit, resonance, noise and drive keep growing, the AGC tightens.
        """
        s = float(shift)
        if s == 1.0:
            return self
        if not np.isfinite(s) or s < 0:
            raise ValueError(f"shift must be a finite number >= 0, got {shift!r}")
        if s <= 1.0:
            highpass = FLAT_HIGHPASS_HZ ** (1 - s) * self.highpass_hz ** s
            lowpass = FLAT_LOWPASS_HZ ** (1 - s) * self.lowpass_hz ** s
        else:
            highpass = self.highpass_hz * 2.0 ** (s - 1)
            lowpass = self.lowpass_hz / 2.0 ** (s - 1)
        louder = 20 * np.log10(s) if s > 0 else -np.inf  # additive noise amplitude x s
        return replace(
            self, highpass_hz=highpass, lowpass_hz=lowpass, peak_db=self.peak_db * s,
            hiss_db=self.hiss_db + louder, rumble_db=self.rumble_db + louder,
            agc_strength=min(1.0, self.agc_strength * max(s, 1.0)),
            agc_amount=min(1.0, s), drive=self.drive * s, clip_at=self.clip_at ** s,
            gain_sd_db=self.gain_sd_db * s)


PHONES: dict[str, Phone] = {
    "b": Phone(150.0, 2, 3000.0, 5.0, 1.0, 12000.0, 4, -66.0, -50.0, -25.0, 0.3, 1.5, 0.98),
    "c": Phone(300.0, 3, 1800.0, 8.0, 2.5, 8000.0, 6, -58.0, -44.0, -23.0, 0.5, 3.0, 0.45),
    # The 2020 layout's simulated devices S1-S6: the scene through another device's
    # response and dynamic-range processing, with no capsule of its own (TAU 2020 made
    # them from device-A audio), hence no hiss or handling rumble to speak of.
    "s1": Phone(200.0, 2, 2500.0, 6.0, 1.2, 11000.0, 4, -96.0, -120.0, -24.0, 0.4, 2.0, 0.9),
    "s2": Phone(100.0, 2, 4000.0, 4.0, 0.8, 14000.0, 4, -96.0, -120.0, -26.0, 0.3, 1.5, 0.95),
    "s3": Phone(400.0, 3, 1500.0, 7.0, 2.0, 9000.0, 5, -96.0, -120.0, -22.0, 0.5, 2.5, 0.7),
    "s4": Phone(250.0, 2, 3500.0, 9.0, 3.0, 10000.0, 6, -96.0, -120.0, -24.0, 0.6, 2.0, 0.8),
    "s5": Phone(150.0, 3, 2200.0, 5.0, 1.5, 7000.0, 6, -96.0, -120.0, -25.0, 0.4, 3.0, 0.6),
    "s6": Phone(500.0, 4, 5000.0, 6.0, 1.0, 12500.0, 4, -96.0, -120.0, -23.0, 0.5, 1.8, 0.85),
}

PHONE_RATE = 44_100

#: Where a phone's corners sit at shift 0, where their filters are left out: below the
#: log-mel's lowest band edge (20 Hz) and near the top of its highest band.
FLAT_HIGHPASS_HZ = 10.0
FLAT_LOWPASS_HZ = 20_000.0


def peaking_sos(f0: float, gain_db: float, q: float, sr: int) -> np.ndarray:
    """A peaking-EQ biquad (audio EQ cookbook): a phone's resonance or presence boost."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / sr
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


def phone_sos(phone: Phone, sr: int) -> np.ndarray:
    """The linear part of a phone's response (high-pass, resonance, low-pass) as SOS.
    A corner at a band edge (``FLAT_*_HZ``, a phone at shift 0) leaves its filter out."""
    stages = [peaking_sos(phone.peak_hz, phone.peak_db, phone.peak_q, sr)]
    if phone.highpass_hz > FLAT_HIGHPASS_HZ:
        stages.insert(0, signal.butter(phone.highpass_order, phone.highpass_hz, "highpass",
                                       fs=sr, output="sos"))
    if phone.lowpass_hz < FLAT_LOWPASS_HZ:
        stages.append(signal.butter(phone.lowpass_order, phone.lowpass_hz, "lowpass", fs=sr,
                                    output="sos"))
    return np.concatenate(stages)


def codec_sos(phone: Phone, sr: int) -> np.ndarray | None:
    """The codec's low-pass :func:`device_phone` applies after the limiter (order 4,
    corner 15 % above the phone's), as SOS; None where that corner would sit at or above
    ``FLAT_LOWPASS_HZ`` (the phone passes the whole band, and so does its codec)."""
    corner = 1.15 * phone.lowpass_hz
    if corner >= FLAT_LOWPASS_HZ:
        return None
    return S._sos("lowpass", corner, sr, order=4)


def phone_gain(phone: Phone, freqs_hz: np.ndarray, sr: int = PHONE_RATE, *,
               codec: bool = False) -> np.ndarray:
    """|H(f)| of :func:`phone_sos` at ``freqs_hz``: the device's impulse response seen
    through the magnitude spectrum (what a log-mel frame of its recording is multiplied by).
    ``codec`` adds :func:`codec_sos`: the whole linear chain a recording goes through."""
    sos = phone_sos(phone, sr)
    lowpass = codec_sos(phone, sr) if codec else None
    if lowpass is not None:
        sos = np.concatenate([sos, lowpass])
    _, h = signal.sosfreqz(sos, worN=np.asarray(freqs_hz, float), fs=sr)
    return np.abs(h)


def impulse_response_bank(n: int = 12, seed: int = 2023) -> list[Phone]:
    """``n`` phone responses that belong to no device of any synthetic dataset: the
    stand-in for the measured device impulse responses (MicIRP) device impulse-response
    augmentation draws from, which cannot be downloaded here. Drawn from ``seed`` over
    the ranges the dataset's own phones span, so each is plausible yet none is a device
    the evaluation holds."""
    rng = np.random.default_rng([seed, 17])
    bank = []
    for _ in range(n):
        bank.append(Phone(
            highpass_hz=float(rng.uniform(80, 500)), highpass_order=int(rng.integers(2, 5)),
            peak_hz=float(rng.uniform(1200, 5500)), peak_db=float(rng.uniform(3, 10)),
            peak_q=float(rng.uniform(0.7, 3.0)), lowpass_hz=float(rng.uniform(6500, 15000)),
            lowpass_order=int(rng.integers(3, 7)), hiss_db=-96.0, rumble_db=-120.0,
            agc_target_db=-24.0, agc_strength=0.0, drive=1.0, clip_at=1.0))
    return bank


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


def _agc(y: np.ndarray, sr: int, target_db: float, strength: float,
         amount: float = 1.0) -> np.ndarray:
    """Slow automatic gain: pull the short-term level part of the way to the target
    (``amount`` of that correction, in dB, is applied)."""
    win = int(0.4 * sr)
    n_win = max(1, y.size // win)
    frames = y[: n_win * win].reshape(n_win, win)
    level = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-9)
    gain_db = strength * (target_db - level) + (1 - strength) * (target_db - level.mean())
    if amount != 1.0:
        gain_db = amount * gain_db
    centres = (np.arange(n_win) + 0.5) * win
    g = np.interp(np.arange(y.size), centres, gain_db)
    return y * 10 ** (g / 20)


def device_phone(x48: np.ndarray, rng: Rng, phone: Phone, shift: float = 1.0) -> np.ndarray:
    """Render what a phone records of the scene ``x48`` (48 kHz) at 44.1 kHz, mono, at
    device-shift strength ``shift`` (:meth:`Phone.at`; the random draws do not depend on
    it, so the levels of one clip differ only in the device)."""
    phone = phone.at(shift)
    y = signal.resample_poly(x48, 147, 160)
    sr = PHONE_RATE
    y = y * S.db(rng.normal(0, phone.gain_sd_db))  # hand position, orientation
    sos = phone_sos(phone, sr)
    n = y.size
    # capsule self-noise and handling rumble pass through the capsule's response
    hiss = S.filt(rng.standard_normal(n), "highpass", 1000.0, sr) * S.db(phone.hiss_db)
    bursts = np.clip(S.smooth_curve(rng, n, sr, 1.5), 0, None) ** 2
    rumble = S.unit(S.filt(rng.standard_normal(n), "lowpass", 40.0, sr, order=2))
    y = signal.sosfilt(sos, y + hiss) + rumble * bursts * S.db(phone.rumble_db)
    y = _agc(y, sr, phone.agc_target_db + rng.normal(0, 1.0), phone.agc_strength,
             phone.agc_amount)
    if phone.drive > 0:  # tanh(d y) / d -> y as d -> 0
        y = np.tanh(phone.drive * y) / phone.drive
    y = np.clip(y, -phone.clip_at, phone.clip_at)
    # the codec band-limits again after the limiter, as phone recordings are
    lowpass = codec_sos(phone, sr)
    if lowpass is not None:
        y = signal.sosfilt(lowpass.copy(), y)
    return y[:, None]


def record(x48: np.ndarray, device: str, rng: Rng, a_channels: int,
           shift: float = 1.0) -> tuple[np.ndarray, int]:
    """Audio (frames, channels) and sample rate of ``device``'s recording of ``x48``;
    ``shift`` sets how far the phones stray from device A (1: as designed)."""
    if device == "a":
        return device_a(x48, rng, a_channels), SCENE_RATE
    return device_phone(x48, rng, PHONES[device], shift), PHONE_RATE
