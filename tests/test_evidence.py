"""Evidence masks: the simulator's ground truth lines up with the features' grid."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from caalib.errors import DatasetError
from caalib.synth import SYNTH_PROFILES
from caalib.synth.devices import FLAT_LOWPASS_HZ, PHONES, Phone, phone_gain, phone_sos
from caalib.synth.evidence import (
    EVIDENCE_FILE,
    EVIDENCE_VERSION,
    device_masks,
    phone_gain_db,
    read_evidence,
    scene_masks,
)
from caalib.synth.scenes import RECIPES, draw_location, render_scene, render_scene_parts


def test_masks_line_up_with_the_features_of_the_tiny_dataset(tiny_dataset_2018: Path,
                                                             tiny_features_2018: Path) -> None:
    from caalib.features import load_features

    fs = load_features(tiny_features_2018)
    ev = read_evidence(tiny_dataset_2018)
    assert set(ev) == set(fs.meta["filename"])
    for i, name in enumerate(fs.meta["filename"]):
        assert ev[name]["scene"].shape == fs.feature[i].shape, name
        assert not (ev[name]["scene"] & ev[name]["shared"]).any()


@pytest.mark.parametrize("profile", sorted(SYNTH_PROFILES))
def test_masks_line_up_with_the_log_mel_of_every_profile(profile: str, tmp_path: Path) -> None:
    """One parallel recording per profile, its masks against the recipe's log-mel."""
    import caalib.synth as synth
    from caalib.features import reference_logmel
    from caalib.synth.layout import plan_clips

    prof = SYNTH_PROFILES[profile]
    clips = plan_clips(prof, "dcase2018", 0)
    group = next(g for g in synth._groups(clips) if len(g) == 3)
    (tmp_path / "audio").mkdir()
    masks = synth._render_group(str(tmp_path), group, 0, prof.clip_seconds, prof.a_channels,
                                prof.a_subtype)
    assert sorted(masks) == sorted(c.filename for c in group)
    for name, (scene, shared) in masks.items():
        audio, sr = sf.read(tmp_path / name)
        assert scene.shape == shared.shape == reference_logmel(audio, sr).shape, name


def test_tagging_changes_no_sample_and_the_parts_sum_to_the_mix() -> None:
    for scene in RECIPES:
        traits = draw_location(scene, np.random.default_rng([3, 1]))
        plain = render_scene(scene, traits, np.random.default_rng([3, 2]), 24_000, 48_000)
        x, part = render_scene_parts(scene, traits, np.random.default_rng([3, 2]), 24_000,
                                     48_000)
        assert np.array_equal(plain, x), scene
        assert part is not None and part.shape == x.shape
        # the part is a share of the mix, not more: its energy never exceeds the mix's
        # by more than the shared rest could cancel
        assert np.sqrt(np.mean(part**2)) <= 2 * np.sqrt(np.mean(x**2)), scene
        # and it is there where the scene's own sound never stops (engines, rails, traffic;
        # event-only scenes may have none in half a second): an all-zero part, which the
        # bound above lets through, would leave every mask empty
        if scene in ("bus", "metro", "street_traffic", "tram"):
            assert np.sqrt(np.mean(part**2)) > 0.1 * np.sqrt(np.mean(x**2)), scene


def _frames_inside(a44: int, b44: int, n_frames: int) -> tuple[list[int], list[int]]:
    """Frames (2048 samples, hop 1376) wholly inside / wholly outside [a44, b44)."""
    inside = [f for f in range(n_frames) if f * 1376 >= a44 and f * 1376 + 2048 <= b44]
    outside = [f for f in range(n_frames) if f * 1376 + 2048 <= a44 or f * 1376 >= b44]
    return inside, outside


def test_a_tone_burst_is_evidence_in_its_frames_and_its_mel_band_only() -> None:
    sr, n = 48_000, 96_000
    rng = np.random.default_rng(0)
    bed = 0.3 * rng.standard_normal(n)
    a, b = 30_000, 70_000
    t = np.arange(n) / sr
    tone = np.where((np.arange(n) >= a) & (np.arange(n) < b), np.sin(2 * np.pi * 2000.0 * t), 0)
    scene, shared = scene_masks(bed + tone, tone)
    n_frames = (int(np.ceil(n * 147 / 160)) - 2048) // 1376 + 1
    assert scene.shape == (n_frames, 64)
    # the oracle for the band: librosa's Slaney mel band edges around 2 kHz
    edges = librosa.mel_frequencies(66, fmin=20.0, fmax=22050.0)
    band = int(np.searchsorted(edges, 2000.0)) - 2  # filter m spans edges[m]..edges[m+2]
    inside, outside = _frames_inside(int(a * 147 / 160), int(b * 147 / 160), n_frames)
    assert inside and outside
    assert scene[inside, band].all() or scene[inside, band + 1].all()
    assert not scene[outside].any()
    assert shared[outside].any()
    far = [m for m in range(64) if abs(edges[m + 1] - 2000.0) > 1500.0]
    assert not scene[np.ix_(inside, far)].any()


def test_phones_drop_the_bands_they_do_not_pass() -> None:
    ones = np.ones((5, 64), dtype=bool)
    centres = librosa.mel_frequencies(66, fmin=20.0, fmax=22050.0)[1:-1]
    a_scene, a_shared = device_masks("a", ones, ones)
    assert a_scene.all() and a_shared.all()
    c_scene, c_shared = device_masks("c", ones, ones)
    # device C: 300 Hz high-pass, 8 kHz low-pass of order 6 (-20 dB within an octave)
    assert not c_scene[:, centres > 16_000].any() and not c_shared[:, centres > 16_000].any()
    assert c_scene[:, (centres > 500) & (centres < 6000)].all()
    b_scene, _ = device_masks("b", ones, ones)
    assert b_scene.sum() > c_scene.sum()
    half = ones.copy()
    half[:, ::2] = False
    assert not (device_masks("b", half, half)[0] & ~half).any()


def _recorded_response(phone: Phone, freqs_hz: np.ndarray) -> np.ndarray:
    """Oracle: |H| of the linear chain a phone recording goes through, straight from
    scipy at the asked frequencies: the phone's filters, then the codec's 4th-order
    Butterworth low-pass at 1.15 x the phone's corner (docs/simulation.md), left out at or
    above 20 kHz, its corner on the synthesiser's 1 % grid of filter corners."""
    sr = 44_100
    sos = phone_sos(phone, sr)
    corner = 1.15 * phone.lowpass_hz
    if corner < 20_000.0:
        corner = np.exp(np.round(np.log(corner), 2))  # the 1 % grid: e^(k / 100)
        sos = np.concatenate([sos, signal.butter(4, corner, "lowpass", fs=sr, output="sos")])
    _, h = signal.sosfreqz(sos, worN=np.asarray(freqs_hz, float), fs=sr)
    return np.abs(h)


PHONES_AT = [("b", PHONES["b"]), ("c", PHONES["c"]), ("c at 1.5", PHONES["c"].at(1.5)),
             ("s3 at 0.95", PHONES["s3"].at(0.95)),
             ("c without low-pass", replace(PHONES["c"], lowpass_hz=FLAT_LOWPASS_HZ))]


@pytest.mark.parametrize(("label", "phone"), PHONES_AT, ids=[p[0] for p in PHONES_AT])
def test_phone_gains_are_read_at_the_stft_bins_own_frequencies(label: str, phone: Phone
                                                               ) -> None:
    # the recipe's STFT bins: k * 44100 / 2048, k = 0..1024, the last at Nyquist
    bins = np.arange(1025) * 44_100 / 2048
    assert bins[-1] == 22_050.0
    some = bins[[1, 93, 372, 1023, 1024]]  # 21.5 Hz, 2 kHz, 8 kHz, 22,028.5 Hz, 22,050 Hz
    np.testing.assert_allclose(phone_gain(phone, some, codec=True),
                               _recorded_response(phone, some), rtol=1e-12, atol=1e-15)
    # each band's gain: the mean of |H|^2 over the bins, weighted by the mel filter
    mel = librosa.filters.mel(sr=44_100, n_fft=2048, n_mels=64, fmin=20.0,
                              fmax=22_050.0).astype(np.float64)
    power = _recorded_response(phone, bins) ** 2
    want = 10 * np.log10(np.maximum(mel @ power / mel.sum(axis=1), 1e-30))
    # version 1 read the response on scipy's own 1025-point grid (up to 22,028.5 Hz) and
    # put the codec's corner off the grid the recording uses: up to 0.9 dB off in the
    # bands these phones roll off
    np.testing.assert_allclose(phone_gain_db(phone), want, rtol=0, atol=1e-6)


def test_missing_or_stale_evidence_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=EVIDENCE_FILE):
        read_evidence(tmp_path)
    assert EVIDENCE_VERSION >= 2  # version 1 read the phones' gains off the STFT's bins
    for stale in (0, EVIDENCE_VERSION - 1):
        np.savez(tmp_path / EVIDENCE_FILE, filename=np.array(["x.wav"]),
                 scene=np.zeros((1, 3, 64), bool), shared=np.zeros((1, 3, 64), bool),
                 version=np.array(stale))
        with pytest.raises(DatasetError, match=f"version {stale}, expected "
                                               f"{EVIDENCE_VERSION}.*skip-existing rewrites"):
            read_evidence(tmp_path)
