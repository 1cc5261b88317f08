"""The device-shift knob, the simulation profiles and the device-shift curve."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from caalib.cli import main
from caalib.synth import SYNTH_PROFILES, SynthProfile, existing_matches, synthesize
from caalib.synth.devices import PHONES, SCENE_RATE, record
from caalib.synth.layout import plan_clips

#: sha256 over (name, bytes) of every WAV of the tiny DCASE 2018 set, seed 0, as the
#: generator wrote it before the shift knob existed. Shift 1 must keep it; a deliberate
#: change to the generator bumps SYNTH_VERSION and records the new digest here.
TINY_2018_AUDIO_SHA256 = "cccf12bc363c5c65393d58e65e66fbac3642f25c360a905437dbd978e7a227f2"

MICRO = SynthProfile("micro-shift", clip_seconds=0.5, train_a=10, evaluate_a=10,
                     train_bc=10, evaluate_bc=10, clips_per_location=1, a_channels=1,
                     a_subtype="PCM_16", workers=1)


def test_shift_one_is_todays_generator_byte_for_byte(tiny_dataset_2018: Path) -> None:
    assert SYNTH_PROFILES["tiny"].shift == 1.0
    h = hashlib.sha256()
    for p in sorted((tiny_dataset_2018 / "audio").glob("*.wav")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    assert h.hexdigest() == TINY_2018_AUDIO_SHA256
    assert json.loads((tiny_dataset_2018 / "synth.json").read_text())["shift"] == 1.0


def test_phone_at_follows_the_documented_map() -> None:
    b, c = PHONES["b"], PHONES["c"]
    assert b.at(1.0) is b
    zero = c.at(0.0)
    assert (zero.highpass_hz, zero.lowpass_hz) == pytest.approx((10.0, 20_000.0))
    assert (zero.peak_db, zero.drive, zero.clip_at, zero.gain_sd_db, zero.agc_amount) == (
        0.0, 0.0, 1.0, 0.0, 0.0)
    assert zero.hiss_db == -np.inf and zero.rumble_db == -np.inf
    half = b.at(0.5)  # geometric between the band edge and the phone's corner
    assert half.highpass_hz == pytest.approx(np.sqrt(10.0 * 150.0))
    assert half.lowpass_hz == pytest.approx(np.sqrt(20_000.0 * 12_000.0))
    assert half.hiss_db == pytest.approx(-66.0 - 6.0206, abs=1e-3)  # amplitude halved
    two = c.at(2.0)  # one octave inward per unit beyond 1
    assert (two.highpass_hz, two.lowpass_hz, two.peak_db) == (600.0, 4000.0, 16.0)
    assert (two.drive, two.clip_at, two.agc_strength, two.agc_amount) == pytest.approx(
        (6.0, 0.45**2, 1.0, 1.0))
    with pytest.raises(ValueError, match="shift"):
        b.at(-0.5)


def _scene(seconds: float = 2.0, seed: int = 5) -> np.ndarray:
    """Pink-ish noise at about -30 dBFS: energy in every band the devices shape."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SCENE_RATE)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SCENE_RATE)
    spec[1:] /= np.sqrt(f[1:] / 1000.0)
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return 0.03 * x / np.sqrt(np.mean(x**2))


def _band_shape(x: np.ndarray, sr: int, grid: np.ndarray) -> np.ndarray:
    """Welch log-PSD on ``grid`` (Hz) relative to the 1-2 kHz band: shape, not level."""
    f, p = signal.welch(x, fs=sr, nperseg=4096)
    db = np.interp(grid, f, 10 * np.log10(p + 1e-30))
    return db - db[(grid >= 1000) & (grid < 2000)].mean()


@pytest.mark.parametrize("device", ["b", "c"])
def test_shift_moves_the_spectrum_monotonically(device: str) -> None:
    """Distance between the A and phone twins' spectral shapes (scipy's Welch estimate)
    grows with the shift, is negligible at 0 (resampling only) and the low and high
    bands fall further below the mid band as the shift grows (the documented
    direction: the phones cut lows and highs; beyond 1 a limiter's distortion may
    refill the lows)."""
    x = _scene()
    grid = np.geomspace(30, 18_000, 200)
    a, sra = record(x, "a", np.random.default_rng(1), 1)
    ref = _band_shape(a[:, 0], sra, grid)
    low, high = (grid > 50) & (grid < 120), grid > 9000
    distance, lows, highs = [], [], []
    for shift in (0.0, 0.5, 1.0, 1.5, 2.0):
        y, sr = record(x, device, np.random.default_rng(2), 1, shift)
        assert sr == 44_100 and y.shape[1] == 1
        diff = _band_shape(y[:, 0], sr, grid) - ref
        distance.append(np.sqrt(np.mean(diff**2)))
        lows.append(diff[low].mean())
        highs.append(diff[high].mean())
    assert distance[0] < 0.5, distance  # only the unavoidable: 44.1 kHz, mono
    assert np.all(np.diff(distance) > 0.5), distance
    assert np.all(np.diff(highs) < 0), highs
    # the lows fall up to 1; beyond, C's limiter distortion floor (about -30 dB) holds them
    assert np.all(np.diff(lows[:3]) < 0) and max(lows[3:]) < lows[2] + 1.0, lows


def test_shift_zero_keeps_the_level() -> None:
    x = _scene()
    a, _ = record(x, "a", np.random.default_rng(1), 1)
    for device in "bc":
        y, _ = record(x, device, np.random.default_rng(2), 1, 0.0)
        level = 10 * np.log10(np.mean(y**2) / np.mean(a**2))
        assert abs(level) < 0.1, (device, level)


def test_synthesize_records_and_matches_the_shift(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SYNTH_PROFILES, MICRO.name, MICRO)
    one = synthesize(tmp_path / "one", MICRO.name, progress=False)
    zero = synthesize(tmp_path / "zero", MICRO.name, progress=False, shift=0.0)
    assert json.loads((zero / "synth.json").read_text())["shift"] == 0.0
    assert existing_matches(zero, MICRO.name, shift=0.0)
    assert not existing_matches(zero, MICRO.name)  # the profile's own shift is 1
    assert existing_matches(one, MICRO.name) and not existing_matches(one, MICRO.name,
                                                                      shift=2.0)
    wavs = sorted(p.name for p in (one / "audio").iterdir())
    same = [(one / "audio" / n).read_bytes() == (zero / "audio" / n).read_bytes()
            for n in wavs]
    # device A does not depend on the shift; every phone clip does
    assert all(s == n.endswith("-a.wav") for s, n in zip(same, wavs, strict=True))
    # a dataset written before the knob existed (no "shift" in synth.json) was made at 1
    settings = json.loads((one / "synth.json").read_text())
    del settings["shift"]
    (one / "synth.json").write_text(json.dumps(settings))
    assert existing_matches(one, MICRO.name)
    with pytest.raises(Exception, match="shift"):
        synthesize(tmp_path / "bad", MICRO.name, progress=False, shift=-1.0)
    assert not (tmp_path / "bad").exists()


def test_cli_synth_shift_and_skip_existing(tmp_path: Path, capsys: pytest.CaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import caalib.commands.data as data_cmd

    monkeypatch.setitem(SYNTH_PROFILES, MICRO.name, MICRO)
    monkeypatch.setattr(data_cmd, "SYNTH_PROFILE_NAMES",
                        (*data_cmd.SYNTH_PROFILE_NAMES, MICRO.name))
    out = tmp_path / "d"
    args = ["synth", str(out), "--profile", MICRO.name, "--quiet", "--shift", "0.5"]
    assert main(args) == 0
    assert json.loads((out / "synth.json").read_text())["shift"] == 0.5
    assert main([*args, "--skip-existing"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["synth", str(out), "--profile", MICRO.name, "--quiet", "--shift", "1",
                 "--skip-existing"]) == 1
    assert "shift 0.5" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "e"), "--profile", MICRO.name, "--shift",
                 "-1"]) != 0
    assert not (tmp_path / "e").exists()


def test_sim_profiles_have_the_real_sets_structure() -> None:
    """Device A about 11x B and C in training (the real 6,122 : 540), every B/C clip a
    twin of an A clip, no location in both splits, a shift beyond the designed phones."""
    for name in ("sim-tiny", "sim-demo", "sim-gpu"):
        prof = SYNTH_PROFILES[name]
        assert 10 <= prof.train_a / prof.train_bc <= 12, name
        assert prof.shift > 1.0
        clips = plan_clips(prof, "dcase2018", 0)
        counts = pd.Series([(c.split, c.device) for c in clips]).value_counts()
        assert counts[("train", "b")] == counts[("train", "c")] == prof.train_bc
        assert counts[("evaluate", "b")] == prof.evaluate_bc
        a_keys = {(c.scene, c.city, c.location, c.segment) for c in clips if c.device == "a"}
        assert all((c.scene, c.city, c.location, c.segment) in a_keys
                   for c in clips if c.device != "a")
        splits: dict[str, set[str]] = {}
        for c in clips:
            splits.setdefault(c.identifier, set()).add(c.split)
        assert max(len(s) for s in splits.values()) == 1


# ---------------------------------------------------------------------- the curve
@pytest.fixture(scope="module")
def tiny_curve(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("curve")
    out = root / "curve"
    assert main(["shift-curve", "--profile", "tiny", "--out", str(out), "--data-root",
                 str(root / "data"), "--quiet"]) == 0
    return out


@pytest.mark.usefixtures("one_thread")
def test_shift_curve_tiny_table_is_well_formed(tiny_curve: Path) -> None:
    from caalib.rundir import read_metrics
    from caalib.shift_curve import CURVE_PROFILES

    prof = CURVE_PROFILES["tiny"]
    seeds = pd.read_csv(tiny_curve / "shift_curve_seeds.csv")
    # per shift and seed: single-device runs on their own device, three others on A, B, C
    assert len(seeds) == len(prof.shifts) * prof.seeds * (3 + 3 * 3)
    assert set(seeds["shift"]) == set(prof.shifts)
    assert seeds["accuracy"].between(0, 1).all()
    for row in seeds.itertuples():  # each number is its run's metrics.json
        run = tiny_curve / f"shift-{row.shift:g}" / "runs" / row.run_name
        assert read_metrics(run)["accuracy"][row.device] == pytest.approx(row.accuracy)
    summary = pd.read_csv(tiny_curve / "shift_curve_summary.csv")
    expected = seeds.groupby(["shift", "strategy", "device"])["accuracy"].mean()
    got = summary.set_index(["shift", "strategy", "device"])["mean"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(),
                                   check_names=False)
    assert (summary["n_seeds"] == prof.seeds).all()
    figure = pd.read_csv(tiny_curve / "shift_curve.csv")
    pd.testing.assert_frame_equal(figure, summary)
    assert (tiny_curve / "shift_curve.png").stat().st_size > 0
    assert (tiny_curve / "shift_curve.pdf").stat().st_size > 0


@pytest.mark.usefixtures("one_thread")
def test_shift_curve_reuses_finished_runs(tiny_curve: Path, capsys) -> None:
    runs = sorted(tiny_curve.glob("shift-*/runs/*/checkpoint.pt"))
    assert runs
    before = {p: p.stat().st_mtime_ns for p in runs}
    data_root = tiny_curve.parent / "data"
    assert main(["shift-curve", "--profile", "tiny", "--out", str(tiny_curve),
                 "--data-root", str(data_root), "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in runs} == before


def test_shift_curve_refuses_bad_settings(tmp_path: Path, capsys) -> None:
    assert main(["shift-curve", "--profile", "tiny", "--shifts", "-1", "--out",
                 str(tmp_path / "o")]) != 0
    assert "shifts" in capsys.readouterr().err
    assert main(["shift-curve", "--profile", "tiny", "--seeds", "0", "--out",
                 str(tmp_path / "o")]) != 0
    assert not (tmp_path / "o").exists()


def test_summary_is_mean_sample_std_and_extremes_over_seeds_in_paper_order():
    """Two seeds, two strategies, listed out of order: mean, std with n - 1, min, max
    worked by hand; strategies in the paper's order (single before joint)."""
    from caalib.shift_curve import summarise

    rows = [("joint", 0, 0.50), ("joint", 1, 0.70), ("single", 0, 0.40), ("single", 1, 0.44)]
    seeds = pd.DataFrame([{"shift": 1.0, "topology": "atrous", "pooling": "att",
                           "strategy": st, "device": "b", "seed": sd, "accuracy": acc}
                          for st, sd, acc in rows])
    out = summarise(seeds)
    assert list(out["strategy"]) == ["single", "joint"]
    single, joint = out.iloc[0], out.iloc[1]
    assert single["mean"] == pytest.approx(0.42) and joint["mean"] == pytest.approx(0.60)
    # sample std of (0.5, 0.7): |0.7 - 0.5| / sqrt(2)
    assert joint["std"] == pytest.approx(0.2 / 2**0.5)
    assert single["std"] == pytest.approx(0.04 / 2**0.5)
    assert (joint["min"], joint["max"], joint["n_seeds"]) == (0.50, 0.70, 2)
