"""The synthetic dataset: real layout, counts, parallel twins, determinism, device shift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from caalib.constants import SCENES
from caalib.datasets import check_dataset_report, read_dataset
from caalib.errors import ConfigError, DatasetError
from caalib.synth import SYNTH_PROFILES, SynthProfile, existing_matches, synthesize
from caalib.synth.layout import plan_clips

MICRO = SynthProfile("micro", clip_seconds=0.5, train_a=10, evaluate_a=10, train_bc=10,
                     evaluate_bc=10, clips_per_location=1, no_split_a=2, a_channels=2,
                     a_subtype="PCM_24", workers=1)


@pytest.fixture
def micro(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(SYNTH_PROFILES, "micro", MICRO)
    return "micro"


def _counts(df) -> dict[tuple[str, str], int]:
    return {k: int(v) for k, v in df.groupby(["split", "source_label"]).size().items()}


@pytest.mark.parametrize("layout", ["dcase2018", "dcase2019"])
def test_tiny_layout_round_trip(layout: str, tiny_dataset_2018: Path,
                                tiny_dataset_2019: Path) -> None:
    root = tiny_dataset_2018 if layout == "dcase2018" else tiny_dataset_2019
    df = read_dataset(root)
    assert df.attrs["layout"] == layout
    expected = {("train", "a"): 60, ("evaluate", "a"): 30, ("train", "b"): 20,
                ("train", "c"): 20, ("evaluate", "b"): 10, ("evaluate", "c"): 10}
    if layout == "dcase2019":
        expected[("", "a")] = 5
        assert set(df.loc[df["split"] == "", "city"]) == {"milan"}
        assert (root / "evaluation_setup" / "fold1_train.csv").is_file()
    else:
        assert (root / "evaluation_setup" / "fold1_train.txt").is_file()
    assert _counts(df) == expected
    # every scene in every split, on every device
    assert df.groupby(["split", "source_label"])["scene_label"].nunique().loc[
        ["train", "evaluate"]].eq(len(SCENES)).all()
    # no location in both splits
    assert df[df["split"] != ""].groupby("identifier")["split"].nunique().max() == 1
    # B and C are parallel recordings of the same device-A segments
    key = ["scene_label", "identifier", "segment", "split"]
    a = set(df.loc[df["source_label"] == "a", key].itertuples(index=False))
    b = set(df.loc[df["source_label"] == "b", key].itertuples(index=False))
    c = set(df.loc[df["source_label"] == "c", key].itertuples(index=False))
    assert b == c and b <= a
    report = check_dataset_report(root)  # the checks every command applies
    assert (report.problems, report.warnings) == ([], [])


@pytest.mark.parametrize("layout", ["dcase2018", "dcase2019"])
@pytest.mark.parametrize("profile", list(SYNTH_PROFILES))
def test_every_plan_splits_by_location(profile: str, layout: str) -> None:
    """The reader refuses a location in both splits and an empty split; no profile, layout
    or seed may produce either (plans only: the full profile is not rendered)."""
    for seed in range(3):
        clips = plan_clips(SYNTH_PROFILES[profile], layout, seed)
        split_of: dict[str, set[str]] = {}
        for c in clips:
            if c.split:
                split_of.setdefault(c.identifier, set()).add(c.split)
        assert max(len(s) for s in split_of.values()) == 1
        assert {c.split for c in clips} >= {"train", "evaluate"}


def test_tiny_audio_formats(tiny_dataset_2018: Path) -> None:
    df = read_dataset(tiny_dataset_2018)
    for dev, rate, channels, subtype in (("a", 48000, 2, "PCM_24"), ("b", 44100, 1, "PCM_16"),
                                         ("c", 44100, 1, "PCM_16")):
        fname = df.loc[df["source_label"] == dev, "filename"].iloc[0]
        info = sf.info(str(tiny_dataset_2018 / fname))
        assert (info.samplerate, info.channels, info.subtype) == (rate, channels, subtype)
        assert info.frames == int(2.0 * rate)


def test_levels_are_realistic(tiny_dataset_2018: Path) -> None:
    df = read_dataset(tiny_dataset_2018)
    for fname in df.loc[df["source_label"] == "a", "filename"].iloc[::9]:
        x, _ = sf.read(str(tiny_dataset_2018 / fname))
        peak = np.max(np.abs(x))
        level = 20 * np.log10(np.sqrt(np.mean(x**2)))
        assert peak < 0.9, fname  # the reference device never clips
        assert -50 < level < -12, (fname, level)


def _band_db(x: np.ndarray, sr: int, lo: float, hi: float) -> float:
    f, p = signal.welch(x, fs=sr, nperseg=4096)
    return 10 * np.log10(np.mean(p[(f >= lo) & (f < hi)]) + 1e-30)


def test_devices_shift_the_spectrum(tiny_dataset_2018: Path) -> None:
    """B cuts lows, C cuts lows harder and highs too, relative to their A twin."""
    df = read_dataset(tiny_dataset_2018)
    diffs = {"b": [], "c": []}
    for row in df[df["source_label"] != "a"].itertuples():
        twin = row.filename[:-5] + "a.wav"
        xa, sra = sf.read(str(tiny_dataset_2018 / twin))
        xd, srd = sf.read(str(tiny_dataset_2018 / row.filename))
        xa = xa.mean(axis=1)
        # band energies relative to the 1–2 kHz band, so overall gain does not matter
        rel = [_band_db(x, sr, *band) - _band_db(x, sr, 1000, 2000)
               for x, sr in ((xa, sra), (xd, srd)) for band in ((30, 100), (9000, 15000))]
        diffs[row.source_label].append((rel[2] - rel[0], rel[3] - rel[1]))
    low_b, high_b = np.median(diffs["b"], axis=0)
    low_c, high_c = np.median(diffs["c"], axis=0)
    assert low_b < -8 and low_c < -15 and low_c < low_b
    assert high_c < -10 and high_c < high_b


def test_full_profile_plan_matches_real_counts() -> None:
    for layout, want in (("dcase2018", {("train", "a"): 6122, ("evaluate", "a"): 2518,
                                        ("train", "b"): 540, ("evaluate", "b"): 180}),
                         ("dcase2019", {("train", "a"): 9185, ("evaluate", "a"): 4185,
                                        ("train", "b"): 540, ("evaluate", "b"): 540,
                                        ("", "a"): 1030})):
        clips = plan_clips(SYNTH_PROFILES["full"], layout, seed=0)
        got: dict[tuple[str, str], int] = {}
        for c in clips:
            got[(c.split, c.device)] = got.get((c.split, c.device), 0) + 1
        for k, v in want.items():
            assert got[k] == v, (layout, k)
        assert got[(want and "train", "c")] == got[("train", "b")]
        names = [c.filename for c in clips]
        assert len(set(names)) == len(names)
        locs: dict[str, set[str]] = {}
        for c in clips:
            if c.split:
                locs.setdefault(c.identifier, set()).add(c.split)
        assert max(len(s) for s in locs.values()) == 1
    assert len(plan_clips(SYNTH_PROFILES["full"], "dcase2018", 0)) == 10_080
    assert len(plan_clips(SYNTH_PROFILES["full"], "dcase2019", 0)) == 16_560


def test_same_seed_same_bytes_different_seed_differs(micro: str, tmp_path: Path) -> None:
    one = synthesize(tmp_path / "one", profile=micro, seed=3, progress=False)
    two = synthesize(tmp_path / "two", profile=micro, seed=3, progress=False)
    other = synthesize(tmp_path / "other", profile=micro, seed=4, progress=False)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".wav"]) == 60
    for rel in files:
        assert (one / rel).read_bytes() == (two / rel).read_bytes(), rel
    mine = {p.read_bytes() for p in (one / "audio").iterdir()}
    theirs = {p.read_bytes() for p in (other / "audio").iterdir()}
    assert len(theirs) == 60 and not mine & theirs


def test_failed_synthesis_leaves_nothing(micro: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import caalib.synth as synth

    calls = {"n": 0}
    real = synth._render_group

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(synth, "_render_group", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        synthesize(tmp_path / "out", profile=micro, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_synthesize_refuses_bad_settings(tmp_path: Path, tiny_dataset_2018: Path) -> None:
    with pytest.raises(ConfigError, match="profile"):
        synthesize(tmp_path / "x", profile="huge")
    with pytest.raises(ConfigError, match="layout"):
        synthesize(tmp_path / "x", layout="dcase2021")
    with pytest.raises(ConfigError, match="seed"):
        synthesize(tmp_path / "x", seed=-1)
    with pytest.raises(DatasetError, match="not empty"):
        synthesize(tiny_dataset_2018, profile="tiny")
    assert not (tmp_path / "x").exists()


def test_existing_matches(tiny_dataset_2018: Path) -> None:
    assert existing_matches(tiny_dataset_2018, "tiny", "dcase2018", 0)
    assert not existing_matches(tiny_dataset_2018, "tiny", "dcase2018", 1)
    assert not existing_matches(tiny_dataset_2018, "demo", "dcase2018", 0)
    assert not existing_matches(tiny_dataset_2018.parent / "nowhere", "tiny", "dcase2018", 0)
