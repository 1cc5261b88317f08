"""Sound components that real acoustic scenes are made of, as vectorised numpy DSP.

Every generator takes a ``numpy.random.Generator``, a length in samples and a rate, and
returns a float64 signal of roughly unit RMS (or silence where the event does not
occur). Scene recipes (``scenes.py``) scale and mix them; keeping the generators
level-free lets a recipe set the balance that distinguishes, say, a bus from a tram.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import fft as sp_fft
from scipy import signal

Rng = np.random.Generator

SPEED_OF_SOUND = 343.0
CONTROL_RATE = 1000.0  # Hz, for envelopes and pitch contours
MAX_TALKERS = 6  # babble renders this many voices; a bigger crowd adds murmur


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)) + 1e-20))


def unit(x: np.ndarray) -> np.ndarray:
    """Scale to unit RMS so recipes set levels in dB independent of the generator."""
    r = rms(x)
    return x / r if r > 1e-12 else x


def db(gain_db: float) -> float:
    return float(10.0 ** (gain_db / 20.0))


def _quantise(f: float) -> float:
    """Round a cutoff to a 1 % grid: inaudible, and lets filter designs be cached."""
    return float(np.exp(np.round(np.log(max(f, 1e-3)) * 100) / 100))


@functools.lru_cache(maxsize=512)
def _design(kind: str, lo: float, hi: float | None, sr: int, order: int) -> np.ndarray:
    nyq = sr / 2.0
    if hi is not None:
        band = (max(lo, 1.0), min(hi, 0.95 * nyq))
        sos = signal.butter(order, band, btype=kind, fs=sr, output="sos")
    else:
        sos = signal.butter(order, min(lo, 0.95 * nyq), btype=kind, fs=sr, output="sos")
    sos.setflags(write=False)
    return sos


def _sos(kind: str, freq: float | tuple[float, float], sr: int, order: int = 2) -> np.ndarray:
    if isinstance(freq, tuple):
        return _design(kind, _quantise(freq[0]), _quantise(freq[1]), sr, order)
    return _design(kind, _quantise(freq), None, sr, order)


def filt(x: np.ndarray, kind: str, freq: float | tuple[float, float], sr: int,
         order: int = 2) -> np.ndarray:
    return signal.sosfilt(_sos(kind, freq, sr, order).copy(), x)


def smooth_curve(rng: Rng, n: int, sr: int, rate_hz: float) -> np.ndarray:
    """A slow random curve in about [-1, 1]: random knots at ``rate_hz``, interpolated.

    Used for everything that drifts (engine RPM, gusts, crowd density) because real
    sources change on a time scale of seconds, not samples. The cosine interpolation is
    done at a 1 kHz control rate and linearly upsampled, which is inaudible and cheap.
    """
    n_knots = max(2, int(np.ceil(n / sr * rate_hz)) + 2)
    knots = rng.uniform(-1.0, 1.0, n_knots)
    n_ctl = max(2, int(n / sr * CONTROL_RATE) + 2)
    t = np.linspace(0.0, (n_knots - 1.0) * (n_ctl - 1) / n_ctl, n_ctl)
    idx = np.floor(t).astype(np.int64)
    w = 0.5 - 0.5 * np.cos(np.pi * (t - idx))  # cosine interpolation: no corners
    ctl = knots[idx] * (1 - w) + knots[np.minimum(idx + 1, n_knots - 1)] * w
    return np.interp(np.linspace(0.0, n_ctl - 1.0, n, endpoint=False), np.arange(n_ctl), ctl)


def colored_noise(rng: Rng, n: int, slope_db_oct: float) -> np.ndarray:
    """Noise with a spectral slope in dB per octave (0 white, -3 pink, -6 brown)."""
    m = sp_fft.next_fast_len(n, real=True)
    spec = sp_fft.rfft(rng.standard_normal(m))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    spec *= f ** (slope_db_oct / (20 * np.log10(2.0)))
    return unit(sp_fft.irfft(spec, m)[:n])


TABLE_SIZE = 4096


def periodic(phase: np.ndarray, amps: np.ndarray | list[float],
             offsets: np.ndarray | list[float] | None = None) -> np.ndarray:
    """``sum_k amps[k] * sin((k+1) * phase + offsets[k])`` by wavetable lookup.

    One table lookup replaces a sine per harmonic; harmonic sources (engines, motors,
    music) dominate synthesis time otherwise.
    """
    amps = np.asarray(amps, dtype=np.float64)
    offs = np.zeros(amps.size) if offsets is None else np.asarray(offsets, dtype=np.float64)
    theta = np.arange(TABLE_SIZE) * (2 * np.pi / TABLE_SIZE)
    k = np.arange(1, amps.size + 1)[:, None]
    table = np.sum(amps[:, None] * np.sin(k * theta + offs[:, None]), axis=0)
    idx = (phase * (TABLE_SIZE / (2 * np.pi))).astype(np.int64) & (TABLE_SIZE - 1)
    return table[idx]


def _place(out: np.ndarray, start: int, x: np.ndarray) -> None:
    """Add ``x`` into ``out`` at ``start``, clipping at both ends."""
    n = out.size
    if start >= n or start + x.size <= 0:
        return
    a, b = max(start, 0), min(start + x.size, n)
    out[a:b] += x[a - start:b - start]


def _impulses(n: int, times_s: np.ndarray, amps: np.ndarray, sr: int) -> np.ndarray:
    train = np.zeros(n)
    idx = np.round(np.asarray(times_s) * sr).astype(np.int64)
    ok = (idx >= 0) & (idx < n)
    np.add.at(train, idx[ok], np.asarray(amps)[ok])
    return train


def _burst(rng: Rng, sr: int, dur: float, band: tuple[float, float], decay: float) -> np.ndarray:
    """A short decaying noise burst: the impulse response of a click, thump or step."""
    m = max(8, int(dur * sr))
    t = np.arange(m) / sr
    return filt(rng.standard_normal(m), "bandpass", band, sr) * np.exp(-t / decay)


# --- vehicles -------------------------------------------------------------------------

def engine(rng: Rng, n: int, sr: int, f0: float, drift: float = 0.08,
           n_harm: int = 10, rumble: float = 0.5) -> np.ndarray:
    """Combustion engine: firing-rate harmonics with slow RPM drift plus rumble noise."""
    f_t = f0 * (1.0 + drift * smooth_curve(rng, n, sr, 0.4))
    phase = 2 * np.pi * np.cumsum(f_t) / sr
    amps = rng.uniform(0.3, 1.0, n_harm) / np.arange(1, n_harm + 1) ** 0.8
    amps[np.arange(1, n_harm + 1) * f0 * (1 + drift) > sr / 2.2] = 0.0
    out = periodic(phase, amps, rng.uniform(0, 2 * np.pi, n_harm))
    # half-order modulation: cylinders do not fire identically
    half = periodic(0.5 * phase, [1.0])
    out *= 1.0 + 0.3 * half
    noise = filt(rng.standard_normal(n), "lowpass", 6 * f0, sr) * (1 + 0.5 * periodic(phase, [1.0]))
    return unit(unit(out) + rumble * unit(noise))


def rail_clatter(rng: Rng, n: int, sr: int, speed: float, rail_len: float = 20.0) -> np.ndarray:
    """Wheel-joint clicks: axle pairs crossing rail joints, periodic at speed/rail length."""
    dur = n / sr
    axles = np.array([0.0, 2.5, 15.0, 17.5])  # two bogies of two axles, metres
    speed = max(speed, 2.0)
    joint_times = np.arange(rng.uniform(0, rail_len / speed), dur, rail_len / speed)
    times = (joint_times[:, None] + axles[None, :] / speed).ravel()
    amps = rng.uniform(0.5, 1.0, times.size)
    train = _impulses(n, times, amps, sr)
    click = _burst(rng, sr, 0.03, (300.0, 3000.0), 0.006)
    rolling = filt(rng.standard_normal(n), "bandpass", (80.0, 900.0), sr)
    return unit(unit(signal.fftconvolve(train, click)[:n]) + 0.6 * unit(rolling))


def motor_whine(rng: Rng, n: int, sr: int, f_start: float, f_end: float) -> np.ndarray:
    """Electric traction motor / inverter: a gliding tone with a few harmonics."""
    f_t = np.geomspace(f_start, f_end, n) * (1 + 0.01 * smooth_curve(rng, n, sr, 1.0))
    phase = 2 * np.pi * np.cumsum(f_t) / sr
    out = periodic(phase, [1.0, 0.5, 0.25], [0.0, 1.0, 2.0])
    return unit(out * (1 + 0.2 * smooth_curve(rng, n, sr, 0.5)))


def pass_by(rng: Rng, n: int, sr: int, t0: float, speed: float, dist: float,
            f0: float) -> tuple[int, np.ndarray, np.ndarray]:
    """A vehicle passing at ``t0`` s: its 1/r^2 envelope and Doppler-shifted engine.

    Returns ``(start, envelope, engine)`` over the stretch where the vehicle is within
    30 dB of its closest approach, so distant roads with many cars stay cheap.
    """
    half = dist * np.sqrt(1000.0) / speed
    a = max(0, int((t0 - half) * sr))
    b = min(n, int((t0 + half) * sr) + 1)
    if b <= a:
        return 0, np.zeros(0), np.zeros(0)
    t = np.arange(a, b) / sr - t0
    x = speed * t
    r2 = dist**2 + x**2
    env = dist**2 / r2
    doppler = SPEED_OF_SOUND / (SPEED_OF_SOUND + speed * x / np.sqrt(r2))
    phase = 2 * np.pi * np.cumsum(f0 * doppler) / sr
    eng = periodic(phase, [1.0, 0.6, 0.3])
    return a, env, eng * env


def traffic(rng: Rng, n: int, sr: int, rate: float, dist: float) -> np.ndarray:
    """A road: Poisson pass-bys at ``rate`` per second plus a steady low rumble bed.

    Tyre noise of all vehicles shares one noise signal shaped by the summed envelopes
    (independent noises summed sound the same), the engines are rendered per vehicle.
    """
    dur = n / sr
    n_cars = rng.poisson(rate * (dur + 6.0))
    env_sum = np.zeros(n)
    engines = np.zeros(n)
    for _ in range(n_cars):
        a, env, eng = pass_by(rng, n, sr, rng.uniform(-3.0, dur + 3.0), rng.uniform(8, 18),
                              dist * rng.uniform(0.7, 1.5), rng.uniform(25, 60))
        env_sum[a:a + env.size] += env
        engines[a:a + eng.size] += eng
    tyre = unit(filt(rng.standard_normal(n), "bandpass", (200.0, 2500.0), sr)) * env_sum
    bed = filt(colored_noise(rng, n, -4.5), "lowpass", 700.0, sr) * 0.3
    return unit(bed + tyre + 0.4 * engines)


def horn(rng: Rng, n: int, sr: int) -> np.ndarray:
    """A car horn (two detuned tones, rich harmonics) at a random time."""
    out = np.zeros(n)
    m = int(rng.uniform(0.2, 0.8) * sr)
    t = np.arange(m) / sr
    f1 = rng.uniform(380, 450)
    tone = np.sign(np.sin(2 * np.pi * f1 * t)) + np.sign(np.sin(2 * np.pi * f1 * 1.26 * t))
    tone = filt(tone, "bandpass", (300.0, 4000.0), sr) * np.minimum(1, np.minimum(t, t[::-1]) * 50)
    _place(out, int(rng.uniform(0, max(1, n - m))), tone)
    return unit(out)


def door_beeps(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Door-closing warning: a train of 4–8 square-ish beeps somewhere in the clip."""
    out = np.zeros(n)
    f = rng.uniform(900, 2600)
    on, off = rng.uniform(0.08, 0.2), rng.uniform(0.08, 0.2)
    m = int(on * sr)
    t = np.arange(m) / sr
    beep = (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(6 * np.pi * f * t)) * np.hanning(m) ** 0.2
    start = rng.uniform(0, max(0.0, n / sr - 1.0))
    for i in range(int(rng.integers(4, 9))):
        _place(out, int((start + i * (on + off)) * sr), beep)
    return unit(out)


def bell(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Tram bell: inharmonic partials with a long decay, struck once or twice."""
    out = np.zeros(n)
    m = int(1.2 * sr)
    t = np.arange(m) / sr
    f = rng.uniform(700, 1300)
    strike = sum(np.sin(2 * np.pi * f * r * t) * np.exp(-t * d)
                 for r, d in ((1.0, 3.0), (2.76, 5.0), (5.4, 8.0)))
    start = rng.uniform(0, max(0.0, n / sr - 0.5))
    for i in range(int(rng.integers(1, 3))):
        _place(out, int((start + 0.3 * i) * sr), strike)
    return unit(out)


def brake_squeal(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Brake squeal: a high, slowly wavering tone that swells and fades."""
    f = rng.uniform(2000, 5000) * (1 + 0.02 * smooth_curve(rng, n, sr, 2.0))
    phase = 2 * np.pi * np.cumsum(f) / sr
    env = np.clip(smooth_curve(rng, n, sr, 0.6), 0, None) ** 2
    return unit(np.sin(phase) * env)


# --- nature ---------------------------------------------------------------------------

def wind(rng: Rng, n: int, sr: int, cutoff: float, gustiness: float) -> np.ndarray:
    """Wind: low-passed noise with a slowly gusting envelope."""
    gust = np.exp(gustiness * smooth_curve(rng, n, sr, 0.5))
    return unit(filt(rng.standard_normal(n), "lowpass", cutoff, sr, order=2) * gust)


def birdsong(rng: Rng, n: int, sr: int, rate: float, f_lo: float = 2200.0,
             f_hi: float = 6500.0) -> np.ndarray:
    """Birds: Poisson-timed trills of short FM sweeps between ``f_lo`` and ``f_hi``."""
    out = np.zeros(n)
    n_calls = rng.poisson(rate * n / sr)
    for _ in range(n_calls):
        d = rng.uniform(0.03, 0.15)
        m = int(d * sr)
        t = np.arange(m) / sr
        fa, fb = rng.uniform(f_lo, f_hi, 2)
        f = fa + (fb - fa) * (t / d) ** rng.uniform(0.5, 2)
        chirp = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(m)
        start = rng.uniform(0, n / sr)
        gap = rng.uniform(0.05, 0.12)
        for k in range(int(rng.integers(1, 6))):
            _place(out, int((start + k * (d + gap)) * sr), chirp * rng.uniform(0.3, 1.0))
    return unit(out) if n_calls else out


def water(rng: Rng, n: int, sr: int) -> np.ndarray:
    """A fountain: band-limited noise with fast random splashing modulation."""
    base = filt(rng.standard_normal(n), "bandpass", (400.0, 8000.0), sr)
    return unit(base * (1 + 0.5 * smooth_curve(rng, n, sr, 25.0)))


# --- people ---------------------------------------------------------------------------

#: (F1, F2, F3) of a few vowels, Hz: speech-like spectra without intelligible speech.
VOWELS = np.array([(730, 1090, 2440), (270, 2290, 3010), (530, 1840, 2480),
                   (570, 840, 2410), (300, 870, 2240), (660, 1720, 2410)], dtype=float)


@functools.lru_cache(maxsize=8)
def _formant_gains(m: int, sr: int) -> np.ndarray:
    """Magnitude of each vowel's vocal tract (Lorentzian resonances on a glottal tilt)
    on the rfft grid of length ``m``; cached because every babble reuses it."""
    freqs = np.fft.rfftfreq(m, 1.0 / sr)
    gains = np.zeros((len(VOWELS), freqs.size))
    for k, formants in enumerate(VOWELS):
        for j, f in enumerate(formants):
            half_bw = 40.0 + 0.03 * f
            gains[k] += 1.0 / (1 + j) / (1.0 + ((freqs - f) / half_bw) ** 2)
    gains /= 1.0 + freqs / 500.0
    gains.setflags(write=False)
    return gains


def babble(rng: Rng, n: int, sr: int, n_talkers: int, f0_mean: float = 160.0,
           syllable_rate: float = 4.0, pause: float = 0.3) -> np.ndarray:
    """Speech babble: glottal pulse trains through switching vowel formant filters.

    All talkers' excitations are routed per vowel before filtering, and the vowel
    filters are applied in the frequency domain, so the cost is one FFT per vowel
    regardless of how many people talk. The voiced part is rendered at 16 kHz (speech
    formants live below 4 kHz) and upsampled; only the fricative hiss is full-band.
    """
    if n_talkers <= 0:
        return np.zeros(n)
    crowd = max(0, n_talkers - MAX_TALKERS)  # the rest of a crowd: speech-shaped noise
    n_talkers -= crowd
    full_n, full_sr = n, sr
    factor = max(1, sr // 16000)
    sr = sr // factor
    n = -(-full_n // factor)
    dur = n / sr
    hop = max(1, int(sr / CONTROL_RATE))
    n_ctl = -(-n // hop)
    t_ctl = np.arange(n_ctl) * hop / sr
    routed = np.zeros((len(VOWELS), n))
    cols = np.arange(n)
    fric_env = np.zeros(n_ctl)
    for _ in range(n_talkers):
        f0 = f0_mean * np.exp(rng.normal(0, 0.25))
        f_ctl = f0 * (1 + 0.12 * smooth_curve(rng, n_ctl, int(CONTROL_RATE), 3.0))
        cyc = np.cumsum(np.repeat(f_ctl, hop)[:n]) / sr + rng.random()
        exc = np.diff(np.floor(cyc), prepend=np.floor(cyc[0]))
        n_syl = int(dur * syllable_rate) + 2
        bounds = np.cumsum(rng.uniform(0.6, 1.4, n_syl) / syllable_rate)
        bounds = np.concatenate(([0.0], bounds)) - rng.uniform(0, 1 / syllable_rate)
        idx = np.clip(np.searchsorted(bounds, t_ctl) - 1, 0, n_syl - 1)
        vowel = rng.integers(0, len(VOWELS), n_syl)
        voiced = rng.random(n_syl) > pause
        pos = np.clip((t_ctl - bounds[idx]) / np.maximum(np.diff(bounds)[idx], 1e-3), 0, 1)
        env = np.sin(np.pi * pos) ** 0.5 * voiced[idx] * rng.uniform(0.3, 1.0)
        exc *= np.repeat(env, hop)[:n]
        routed[np.repeat(vowel[idx], hop)[:n], cols] += exc
        fric_env += (pos < 0.15) * voiced[idx]
    m = sp_fft.next_fast_len(n, real=True)
    gains = _formant_gains(m, sr)
    spec = np.zeros(gains.shape[1], dtype=np.complex128)
    for k in range(len(VOWELS)):
        if routed[k].any():
            spec += sp_fft.rfft(routed[k], m) * gains[k]
    voiced_part = unit(sp_fft.irfft(spec, m)[:n])
    if crowd:
        noise_spec = sp_fft.rfft(rng.standard_normal(m)) * gains.mean(axis=0)
        murmur = unit(sp_fft.irfft(noise_spec, m)[:n]) * (1 + 0.3 * smooth_curve(rng, n, sr, 2))
        voiced_part += np.sqrt(crowd / n_talkers) * murmur
    if factor > 1:
        voiced_part = signal.resample_poly(voiced_part, factor, 1)[:full_n]
    fric_env = np.interp(np.arange(full_n) / full_sr, t_ctl, fric_env)
    fric = filt(rng.standard_normal(full_n), "highpass", 3500.0, full_sr) * fric_env
    return unit(unit(voiced_part) + 0.15 * fric / np.sqrt(n_talkers))


def footsteps(rng: Rng, n: int, sr: int, n_walkers: int, hard: float = 0.5) -> np.ndarray:
    """Walkers: steps at ~1.6–2.2 Hz, each a low thump plus a heel click (hard floors)."""
    if n_walkers <= 0:
        return np.zeros(n)
    dur = n / sr
    times, amps = [], []
    for _ in range(n_walkers):
        rate = rng.uniform(1.6, 2.2)
        t = np.arange(rng.uniform(0, 1 / rate), dur, 1 / rate)
        t = t + rng.normal(0, 0.02, t.size)
        a = rng.uniform(0.2, 1.0) * np.exp(-((t - rng.uniform(0, dur)) / rng.uniform(1, 6)) ** 2)
        times.append(t)
        amps.append(a)
    train = _impulses(n, np.concatenate(times), np.concatenate(amps), sr)
    thump = _burst(rng, sr, 0.08, (60.0, 400.0), 0.02)
    click = _burst(rng, sr, 0.02, (1500.0, 6000.0), 0.003)
    kernel = unit(thump) + hard * 0.8 * np.pad(unit(click), (0, thump.size - click.size))
    return unit(signal.fftconvolve(train, kernel)[:n])


def rolling_cases(rng: Rng, n: int, sr: int, count: int) -> np.ndarray:
    """Wheeled suitcases on tiles: rumble with periodic tile-joint ticks, passing by."""
    out = np.zeros(n)
    dur = n / sr
    for _ in range(count):
        t = np.arange(n) / sr
        centre, width = rng.uniform(0, dur), rng.uniform(1.0, 3.0)
        env = np.exp(-((t - centre) / width) ** 2)
        rumble = filt(rng.standard_normal(n), "bandpass", (100.0, 900.0), sr)
        tick_t = np.arange(0, dur, 1 / rng.uniform(3, 8))
        ticks = _impulses(n, tick_t, np.ones(tick_t.size), sr)
        tick = signal.fftconvolve(ticks, _burst(rng, sr, 0.02, (500.0, 4000.0), 0.004))[:n]
        out += (unit(rumble) + 0.7 * unit(tick)) * env
    return unit(out) if count else out


# --- buildings and public address -----------------------------------------------------

def hvac(rng: Rng, n: int, sr: int, mains: float = 50.0, fan_cut: float = 800.0) -> np.ndarray:
    """Ventilation: broadband fan noise, a blade-pass tone and mains hum harmonics."""
    t = np.arange(n) / sr
    hum = periodic(2 * np.pi * mains * t, [1.0, 0.5, 0.33, 0.0, 0.2], rng.uniform(0, 6.3, 5))
    blade = np.sin(2 * np.pi * rng.uniform(90, 250) * t)
    fan = filt(colored_noise(rng, n, -3.0), "lowpass", fan_cut, sr)
    return unit(unit(fan) + 0.15 * unit(hum) + 0.2 * blade)


def music(rng: Rng, n: int, sr: int, tempo: float) -> np.ndarray:
    """Background music through ceiling speakers: chord pads and a soft beat, band-limited."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    chord_len = 4 * 60.0 / tempo
    progression = rng.choice([0, 5, 7, 9, 3], size=int(n / sr / chord_len) + 2)
    seg = np.minimum((t / chord_len).astype(int), progression.size - 1)
    for interval in (0, 4, 7, 12):
        f = root * 2 ** ((progression[seg] + interval) / 12)
        phase = 2 * np.pi * np.cumsum(f) / sr
        out += periodic(phase, [1.0, 0.3, 0.1])
    beats = np.arange(0, n / sr, 60.0 / tempo)
    kick = np.sin(2 * np.pi * 60 * np.arange(int(0.15 * sr)) / sr) * np.exp(
        -np.arange(int(0.15 * sr)) / (0.04 * sr))
    out = unit(out) + 0.8 * unit(signal.fftconvolve(_impulses(n, beats, np.ones(beats.size), sr),
                                                    kick)[:n])
    return unit(filt(out, "bandpass", (120.0, 7000.0), sr))


def announcement(rng: Rng, n: int, sr: int) -> np.ndarray:
    """Public address: a three-note chime, then band-limited speech-like formants."""
    out = np.zeros(n)
    start = rng.uniform(-1.0, max(0.0, n / sr - 1.0))
    m = int(0.9 * sr)
    t = np.arange(m) / sr
    notes = 523.25 * 2 ** (np.array(rng.choice([[0, 4, 7], [7, 4, 0], [0, 7, 12], [4, 0, 7]]))
                           / 12)
    for i, f in enumerate(notes):
        tone = (np.sin(2 * np.pi * f * t) + 0.2 * np.sin(4 * np.pi * f * t)) * np.exp(-t * 4)
        _place(out, int((start + 0.4 * i) * sr), 0.6 * tone)
    speech_start = int((start + 1.5) * sr)
    if speech_start < n:
        m_s = n - max(speech_start, 0)
        speech = babble(rng, m_s, sr, 1, f0_mean=rng.choice([120.0, 210.0]), pause=0.15)
        speech = filt(speech, "bandpass", (300.0, 3400.0), sr, order=3)
        _place(out, max(speech_start, 0), 0.8 * unit(speech))
    return unit(out)


def reverb_ir(rng: Rng, sr: int, rt60: float) -> np.ndarray:
    """Exponentially decaying noise: a diffuse room whose highs die out faster."""
    m = int(min(rt60 * 1.1, 4.0) * sr)
    t = np.arange(m) / sr
    lo = filt(rng.standard_normal(m), "lowpass", 2000.0, sr) * np.exp(-6.91 * t / rt60)
    hi = filt(rng.standard_normal(m), "highpass", 2000.0, sr) * np.exp(-6.91 * t / (0.6 * rt60))
    ir = lo + 0.7 * hi
    ir /= np.sqrt(np.sum(ir**2))
    return ir


def reverberate(rng: Rng, x: np.ndarray, sr: int, rt60: float, wet: float) -> np.ndarray:
    """Mix ``x`` with its convolution by a synthetic room response (``wet`` in [0, 1])."""
    return reverberate_part(rng, x, None, sr, rt60, wet)[0]


def reverberate_part(rng: Rng, x: np.ndarray, part: np.ndarray | None, sr: int, rt60: float,
                     wet: float) -> tuple[np.ndarray, np.ndarray | None]:
    """``reverberate`` of ``x``, and of ``part`` (a component of ``x``) in the same room.

    The part gets the same response and the wet gain computed from the whole ``x``, so
    parts that sum to ``x`` still sum to its reverberated signal (the room is linear).
    """
    if rt60 <= 0 or wet <= 0:
        return x, part
    ir = reverb_ir(rng, sr, rt60)
    y = signal.fftconvolve(x, ir)[: x.size]
    out = (1 - wet) * x + wet * y * rms(x) / max(rms(y), 1e-12)
    if part is not None:
        yp = signal.fftconvolve(part, ir)[: part.size]
        part = (1 - wet) * part + wet * yp * rms(x) / max(rms(y), 1e-12)
    return out, part
