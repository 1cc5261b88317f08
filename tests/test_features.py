"""Log-mel features: the fast path against the reference, the HDF5 cache, bad input."""

from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import librosa
import numpy as np
import pandas as pd
import pytest
import scipy.signal
import soundfile as sf
import torch

from caalib.errors import FeatureError
from caalib.features import (
    LogMel,
    SilentClipWarning,
    default_feature_path,
    density_scale,
    extract_features,
    fit_standardiser,
    load_features,
    logmel,
    mel_matrix,
    n_frames,
    reference_logmel,
    resample,
    standardise,
)
from caalib.features import cache as cache_mod
from caalib.features.audio import mono_fast
from caalib.features.fast import BLOCK_FRAMES, logmel_numpy
from caalib.features.pipeline import plan
from caalib.features.recipe import mono

TOL = {"rtol": 1e-4, "atol": 1e-4}


def _signal(n: int, sr: int, channels: int, seed: int) -> np.ndarray:
    """Noise plus a few tones with a silent gap: broadband and tonal content, wide range."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    out = []
    for c in range(channels):
        x = 0.05 * rng.standard_normal(n)
        for f in rng.uniform(50, 15000, size=3):
            x += rng.uniform(0.05, 0.4) * np.sin(2 * np.pi * f * t + c)
        x[n // 3 : n // 3 + n // 10] = 0.0
        out.append(x)
    return np.stack(out, axis=1) if channels > 1 else out[0]


def _fast(audio: np.ndarray, sr: int, resampler: str = "kaiser_best") -> np.ndarray:
    """The fast path as extract_features runs it: mono, resample, torch LogMel."""
    return logmel(torch.from_numpy(resample(mono(audio), sr, resampler))[None])[0].numpy()


def released_oracle(audio: np.ndarray, sr: int) -> np.ndarray:
    """Study notes section 1 spelled out with direct library calls, nothing of ours:
    soundfile-style (samples, channels) -> mean to mono -> resampy kaiser_best (what
    librosa 0.6.1's resample called) padded to ceil(n * 44100 / sr) -> scipy's
    spectrogram with NO fs argument -> librosa's Slaney mel -> log(x + 1e-8), float32."""
    import resampy

    x = np.asarray(audio, dtype=np.float64)
    if x.ndim > 1:
        x = np.mean(x, axis=1)
    if sr != 44100:
        n_out = int(np.ceil(len(x) * 44100 / sr))
        y = resampy.resample(x, sr, 44100, filter="kaiser_best", axis=-1)
        x = np.pad(y, (0, max(0, n_out - len(y))))[:n_out]
    _, _, spec = scipy.signal.spectrogram(
        x, window=np.hamming(2048), nperseg=2048, noverlap=672, detrend=False,
        return_onesided=True, mode="magnitude",
    )
    mel_w = librosa.filters.mel(sr=44100, n_fft=2048, n_mels=64, fmin=20.0, fmax=44100 // 2)
    return np.log(np.dot(spec.T, mel_w.T) + 1e-8).astype(np.float32)


# ------------------------------------------------------------------------- the recipe itself


def test_density_scale_is_what_scipy_applies_without_fs() -> None:
    """The released extractor passes no fs: scipy's fs=1.0 applies (study notes 1)."""
    x = _signal(8000, 44100, 1, 0)
    w = np.hamming(2048)
    _, _, spec = scipy.signal.spectrogram(
        x, window=w, nperseg=2048, noverlap=672, detrend=False,
        return_onesided=True, mode="magnitude",
    )
    frames = np.lib.stride_tricks.sliding_window_view(x, 2048)[::1376]
    ours = np.abs(np.fft.rfft(frames * w, axis=1)) * density_scale(w)
    np.testing.assert_allclose(ours.T, spec, rtol=1e-12, atol=0)
    # by hand: magnitude = |rfft(frame * w)| / sqrt(sum(w**2)), and fs=44100 would be
    # sqrt(44100) = 210 times smaller, i.e. the log shifted by -5.347 (= ln(44100) / 2)
    assert density_scale(w) == pytest.approx(1 / np.sqrt(np.sum(w * w)), rel=1e-15)
    assert np.log(density_scale(w) / density_scale(w, 44100)) == pytest.approx(5.3471, abs=1e-4)


@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_features_equal_a_direct_scipy_call_without_fs(sr: int, channels: int) -> None:
    audio = _signal(int(0.7 * sr), sr, channels, seed=7 * sr + channels)
    oracle = released_oracle(audio, sr)
    for ours in (reference_logmel(audio, sr), _fast(audio, sr)):
        assert ours.shape == oracle.shape
        assert np.max(np.abs(ours - oracle)) <= 1e-5


def test_torch_window_and_torchaudio_mel_agree_with_numpy_and_librosa() -> None:
    np.testing.assert_allclose(
        torch.hamming_window(2048, periodic=False, dtype=torch.float64).numpy(),
        np.hamming(2048), atol=1e-15,
    )
    import torchaudio

    fb = torchaudio.functional.melscale_fbanks(
        1025, 20.0, 22050.0, 64, 44100, norm="slaney", mel_scale="slaney"
    ).numpy().T
    assert mel_matrix().shape == (64, 1025)
    np.testing.assert_allclose(fb, mel_matrix(), rtol=0, atol=1e-7)


def assert_within_an_ulp(got: np.ndarray, expected: np.ndarray) -> None:
    """float32 features whose float64 sums differ only in the order of additions: each
    value is the reference's or its float32 neighbour."""
    assert got.dtype == expected.dtype == np.float32 and got.shape == expected.shape
    gap = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    assert np.all(gap <= np.spacing(np.maximum(np.abs(got), np.abs(expected)))), gap.max()


@pytest.mark.parametrize("resampler", ["kaiser_best", "soxr_hq"])
@pytest.mark.parametrize("n", [4800, 4801, 4799, 12345, 48000])
def test_resample_equals_librosa(n: int, resampler: str) -> None:
    """soxr bit for bit; resampy's kaiser_best sums (computed as a matrix product) to the
    order of float64 additions."""
    x = np.random.default_rng(n).standard_normal(n)
    expected = librosa.resample(x, orig_sr=48000, target_sr=44100, res_type=resampler)
    got = resample(x, 48000, resampler)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if resampler == "soxr_hq":
        assert np.array_equal(got, expected)
    else:
        assert np.max(np.abs(got - expected)) <= 1e-13 * np.max(np.abs(expected))


@pytest.mark.parametrize("sr", [48000, 32000, 22050, 16000, 96000, 8000])
@pytest.mark.parametrize("n", [90, 1000, 160 * 147 + 7, 48000 * 3 + 1])
def test_matrix_resampler_is_resampys_loop(n: int, sr: int) -> None:
    """The polyphase matrix form against resampy 0.2.2 called directly, down- and
    upsampling, shorter than one period and many periods long; the same length as
    resampy's output, the same values to 1e-13 of the signal's peak."""
    import resampy

    from caalib.features.polyphase import resample_table

    x = np.random.default_rng(n + sr).standard_normal(n)
    x[n // 2 : n // 2 + 50] = 0.0
    half, precision, _ = resampy.filters.get_filter("kaiser_best")
    expected = resampy.resample(x, sr, 44100, filter="kaiser_best")
    got = resample_table(x, sr, 44100, half, precision)
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= 1e-13 * np.max(np.abs(expected))
    with pytest.raises(ValueError, match="too few"):
        resample_table(x[:1], 48000, 44100, half, precision)


def test_released_resampler_is_resampy_0_2_kaiser_best_and_differs_from_soxr() -> None:
    """librosa 0.6.1 (the released environment) resampled with resampy 0.2's kaiser_best:
    64 zero crossings x 512 table entries, roll-off 0.9475937 (measured from resampy
    0.2.2's shipped table; resampy >= 0.3 ships 8192 entries and roll-off 0.917)."""
    import resampy

    assert resampy.__version__.startswith("0.2.")
    half, precision, rolloff = resampy.filters.get_filter("kaiser_best")
    assert (precision, len(half)) == (512, 64 * 512 + 1)
    assert rolloff == pytest.approx(0.9475937167399596, abs=1e-15)
    x = np.random.default_rng(1).standard_normal(48000)
    direct = resampy.resample(x, 48000, 44100, filter="kaiser_best")
    got = resample(x, 48000)  # the default
    assert len(got) == 44100
    assert np.max(np.abs(got[: len(direct)] - direct)) <= 1e-13 * np.max(np.abs(direct))
    soxr_y = resample(x, 48000, "soxr_hq")
    assert not np.allclose(got, soxr_y, atol=1e-3)  # they differ (near Nyquist)
    with pytest.raises(FeatureError, match="resampler"):
        resample(x, 48000, "sinc_best")


@pytest.mark.parametrize("sr", [48000, 44100])
@pytest.mark.parametrize("channels", [1, 2])
def test_fast_path_equals_reference(sr: int, channels: int) -> None:
    audio = _signal(int(0.6 * sr), sr, channels, seed=sr + channels)
    ref = reference_logmel(audio, sr)
    ours = _fast(audio, sr)
    assert ref.dtype == ours.dtype == np.float32
    assert ref.shape == ours.shape == (n_frames(int(np.ceil(0.6 * 44100))), 64)
    np.testing.assert_allclose(ours, ref, **TOL)
    # float64 compute reproduces scipy to the float32 rounding of the log
    assert np.max(np.abs(ours - ref)) <= 1e-5


def test_stereo_is_the_mean_of_its_channels() -> None:
    audio = _signal(9000, 44100, 2, 3)
    np.testing.assert_array_equal(
        reference_logmel(audio, 44100), reference_logmel(audio.mean(axis=1), 44100)
    )
    assert not np.allclose(reference_logmel(audio, 44100), reference_logmel(audio[:, 0], 44100))


def test_ten_seconds_give_320_frames_at_both_rates() -> None:
    for sr in (44100, 48000):
        x = np.random.default_rng(sr).standard_normal(10 * sr) * 0.1
        assert reference_logmel(x, sr).shape == (320, 64)
        assert _fast(x, sr).shape == (320, 64)


def test_batched_module_matches_clip_by_clip_and_float32_is_close() -> None:
    batch = np.stack([_signal(7000, 44100, 1, s) for s in range(3)])
    out = LogMel()(torch.from_numpy(batch)).numpy()
    for i in range(3):
        np.testing.assert_array_equal(out[i], reference_logmel(batch[i], 44100))
    out32 = LogMel(torch.float32)(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(out32, out, rtol=1e-3, atol=1e-3)


def test_reference_rejects_clip_shorter_than_one_frame() -> None:
    with pytest.raises(FeatureError, match="too short"):
        reference_logmel(np.ones(2047), 44100)
    assert reference_logmel(np.ones(2048), 44100).shape == (1, 64)


# -------------------------------------------------------- the CPU fast path, piece by piece


@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_numpy_transform_is_the_reference_bit_for_bit(sr: int, channels: int) -> None:
    """`logmel_numpy` of the reference's resampled signal gives the reference's exact
    numbers; after `read_clip`'s own steps (fast mono, the matrix-form resampler) each
    value is the reference's or its float32 neighbour, and within 1e-5 of the
    independent oracle."""
    audio = _signal(int(1.3 * sr), sr, channels, seed=3 * sr + channels)
    x = resample(mono_fast(audio), sr)
    ours = logmel_numpy(x)
    assert ours.dtype == np.float32 and ours.shape == (n_frames(int(np.ceil(1.3 * 44100))), 64)
    reference = reference_logmel(audio, sr)
    assert_within_an_ulp(ours, reference)
    if sr != 44100:
        resampled = librosa.resample(mono(audio), orig_sr=sr, target_sr=44100,
                                     res_type="kaiser_best")
        assert np.array_equal(logmel_numpy(resampled), reference)
    else:
        assert np.array_equal(ours, reference)
    assert np.max(np.abs(ours - released_oracle(audio, sr))) <= 1e-5
    # more frames than one block, and a last block that is not full
    assert ours.shape[0] > BLOCK_FRAMES and ours.shape[0] % BLOCK_FRAMES


def test_numpy_transform_rejects_what_the_reference_rejects() -> None:
    with pytest.raises(FeatureError, match="too short"):
        logmel_numpy(np.ones(2047))
    with pytest.raises(FeatureError, match="mono"):
        logmel_numpy(np.ones((4096, 2)))
    assert np.array_equal(logmel_numpy(np.ones(2048)), reference_logmel(np.ones(2048), 44100))


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_fast_mono_is_numpys_mean_bit_for_bit(channels: int) -> None:
    audio = _signal(20000, 48000, channels, seed=channels)
    audio[:100] = 0.0
    audio[100:200] = -0.0
    got = mono_fast(np.ascontiguousarray(audio.reshape(20000, channels)))
    assert got.dtype == np.float64 and np.array_equal(got, mono(audio))
    assert np.array_equal(mono_fast(audio[:, None] if channels == 1 else audio), mono(audio))


def test_float32_is_not_exact_enough_on_tonal_input() -> None:
    """Why the fast paths compute in float64: a float32 FFT misses the oracle by more
    than the 1e-5 the features are held to where mel bins sit far below a pure tone."""
    t = np.arange(3 * 44100) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    oracle = released_oracle(tone, 44100)
    f32 = LogMel(torch.float32)(torch.from_numpy(tone)[None])[0].numpy()
    assert np.max(np.abs(f32 - oracle)) > 1e-5
    assert np.max(np.abs(logmel_numpy(tone) - oracle)) <= 1e-5


# ------------------------------------------------------------------ hand-made real layouts


SCENES = ("airport", "bus", "park", "tram")


def _clip_specs(seconds: float) -> list[dict]:
    """A at 48 kHz stereo 24 bit, B/C at 44.1 kHz mono 16 bit. A and B are parallel
    recordings; C records each scene at a location of its own, because the C clips form
    the evaluate split and the splits are by location (the reader refuses a shared one)."""
    specs = []
    for i, scene in enumerate(SCENES):
        for dev, sr, ch, subtype in (("a", 48000, 2, "PCM_24"), ("b", 44100, 1, "PCM_16"),
                                     ("c", 44100, 1, "PCM_16")):
            loc = i + len(SCENES) * (dev == "c")
            specs.append({
                "name": f"audio/{scene}-lisbon-{loc}-{i * 10}-{dev}.wav",
                "scene": scene, "identifier": f"lisbon-{loc}", "device": dev,
                "sr": sr, "channels": ch, "subtype": subtype, "seconds": seconds,
                "seed": len(specs),
            })
    return specs


def write_dataset(root: Path, layout: str, specs: list[dict] | None = None,
                  seconds: float = 0.25) -> Path:
    """A dataset in the on-disk layout of study notes section 4 (2018 or 2019 fold style)."""
    specs = specs if specs is not None else _clip_specs(seconds)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "evaluation_setup").mkdir(exist_ok=True)
    rows = []
    for s in specs:
        audio = _signal(int(round(s["seconds"] * s["sr"])), s["sr"], s["channels"], s["seed"])
        audio = np.clip(audio * 0.5, -1, 1)
        sf.write(root / s["name"], audio, s["sr"], subtype=s["subtype"])
        rows.append(f"{s['name']}\t{s['scene']}\t{s['identifier']}\t{s['device']}")
    (root / "meta.csv").write_text(
        "filename\tscene_label\tidentifier\tsource_label\n" + "\n".join(rows) + "\n"
    )
    train = [s for k, s in enumerate(specs) if k % 3 != 2]
    evaluate = [s for k, s in enumerate(specs) if k % 3 == 2]
    for split, members in (("train", train), ("evaluate", evaluate)):
        lines = [f"{s['name']}\t{s['scene']}" for s in members]
        if layout == "dcase2018":
            text = "\n".join(lines) + "\n"
            (root / "evaluation_setup" / f"fold1_{split}.txt").write_text(text)
        else:
            text = "filename\tscene_label\n" + "\n".join(lines) + "\n"
            (root / "evaluation_setup" / f"fold1_{split}.csv").write_text(text)
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Both layouts, extracted once for the read-only tests."""
    out = {}
    for layout in ("dcase2018", "dcase2019"):
        root = write_dataset(tmp_path_factory.mktemp(layout) / "data", layout)
        out[layout] = (root, extract_features(root, default_feature_path(root), batch_size=5,
                                              workers=2, progress=False))
    return out


@pytest.mark.parametrize("layout", ["dcase2018", "dcase2019"])
def test_extraction_matches_reference_in_both_layouts(built, layout: str) -> None:
    root, path = built[layout]
    assert path == root / "features" / "logmel.h5"
    fs = load_features(path)
    meta = pd.read_csv(root / "meta.csv", sep="\t", dtype=str)
    pd.testing.assert_frame_equal(fs.meta, meta[list(fs.meta.columns)])
    assert fs.feature.dtype == np.float32
    assert fs.feature.shape == (len(meta), n_frames(int(0.25 * 44100)), 64)
    for i, name in enumerate(meta["filename"]):
        audio, sr = sf.read(root / name)
        assert np.max(np.abs(fs.feature[i] - released_oracle(audio, sr))) <= 1e-5, name
    assert fs.attrs["resampler"] == "kaiser_best" and fs.attrs["recipe_version"] == 2
    assert fs.attrs["n_mels"] == 64 and fs.attrs["hop"] == 1376 and fs.attrs["n_fft"] == 2048
    assert fs.attrs["sample_rate"] == 44100 and fs.attrs["log_offset"] == 1e-8
    assert "without fs" in fs.attrs["scaling"] and "hamming" in fs.attrs["window"]
    assert len(fs.attrs["fingerprint"]) == 64 and fs.attrs["caalib_version"]


def test_tiny_synthetic_dataset(tiny_features_2018: Path, tiny_dataset_2018: Path) -> None:
    from caalib.datasets import read_dataset

    fs = load_features(tiny_features_2018)
    df = read_dataset(tiny_dataset_2018)
    assert list(fs.meta["filename"]) == list(df["filename"])
    assert list(fs.meta["source_label"]) == list(df["source_label"])
    assert fs.feature.shape[0] == len(df) and fs.feature.shape[2] == 64
    assert np.all(np.isfinite(fs.feature))
    for i in (0, len(df) - 1):
        audio, sr = sf.read(tiny_dataset_2018 / df["filename"][i])
        assert np.max(np.abs(fs.feature[i] - released_oracle(audio, sr))) <= 1e-5


# ------------------------------------------------------------- extraction plans, all equal


PLANS = [  # (transform, parallel, workers)
    ("numpy", "threads", 2),
    ("numpy", "threads", 1),
    ("numpy", "processes", 2),
    ("torch", "threads", 3),
    ("torch", "processes", 2),
]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 kHz stereo and 44.1 kHz mono clips, 1.1 s each (more than one frame block)."""
    return write_dataset(tmp_path_factory.mktemp("mixed") / "data", "dcase2018",
                         _clip_specs(1.1)[:7])


@pytest.mark.parametrize("transform, parallel, workers", PLANS,
                         ids=["-".join(map(str, p)) for p in PLANS])
def test_every_plan_gives_the_reference_in_meta_order(mixed: Path, tmp_path: Path,
                                                      transform: str, parallel: str,
                                                      workers: int) -> None:
    out = extract_features(mixed, tmp_path / "f.h5", batch_size=3, workers=workers,
                           transform=transform, parallel=parallel, progress=False)
    fs = load_features(out)
    meta = pd.read_csv(mixed / "meta.csv", sep="\t", dtype=str)
    assert list(fs.meta["filename"]) == list(meta["filename"])
    for i, name in enumerate(meta["filename"]):
        audio, sr = sf.read(mixed / name)
        assert_within_an_ulp(fs.feature[i], reference_logmel(audio, sr))
        assert np.max(np.abs(fs.feature[i] - released_oracle(audio, sr))) <= 1e-5, name
    with h5py.File(out, "r") as h5:  # per-clip digests of the bytes, whatever the plan
        digests = list(h5["input_sha256"].asstr()[()])
    assert digests == [cache_mod.file_digest(mixed / n) for n in meta["filename"]]


def test_plan_auto_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    from caalib.features import pipeline

    monkeypatch.setattr(pipeline, "usable_cpus", lambda: 6)
    auto = plan("cpu")
    assert (auto.transform, auto.parallel, auto.workers) == ("numpy", "threads", 6)
    assert plan("cuda:0").transform == "torch" and plan("cuda:0").device == "cuda:0"
    forced = plan("cpu", transform="torch", parallel="processes", workers=3)
    assert (forced.transform, forced.parallel, forced.workers) == ("torch", "processes", 3)
    assert forced.start_method == ("fork" if pipeline.can_fork() else "spawn")
    assert "3 worker processes" in forced.describe()
    monkeypatch.setattr(pipeline, "usable_cpus", lambda: 500)
    assert plan("cpu").workers == pipeline.MAX_DEFAULT_WORKERS
    for kw, field in (({"transform": "float32"}, "transform"), ({"parallel": "gpu"}, "parallel"),
                      ({"workers": 0}, "workers")):
        with pytest.raises(FeatureError, match=field):
            plan("cpu", **kw)


def test_worker_processes_use_one_thread_each(tmp_path: Path) -> None:
    from caalib.features import pipeline

    how = plan("cpu", parallel="processes", workers=2)
    with pipeline.ClipRunner(how, "kaiser_best") as runner:
        assert runner._pool is not None
        seen = runner._pool.submit(_thread_settings).result()
    assert seen["torch"] == 1 and all(n == 1 for n in seen["blas"])


def _thread_settings() -> dict:
    from threadpoolctl import threadpool_info

    return {"torch": torch.get_num_threads(),
            "blas": [p["num_threads"] for p in threadpool_info()]}


# ----------------------------------------------------------------------------------- caching


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = cache_mod._build

    def wrapper(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_mod, "_build", wrapper)
    return calls


def test_cache_reused_and_rebuilt(tmp_path: Path, counted: list[int], capsys) -> None:
    specs = _clip_specs(0.2)[:4]
    root = write_dataset(tmp_path / "d", "dcase2018", specs)
    out = tmp_path / "f.h5"
    extract_features(root, out, workers=1, progress=False)
    assert len(counted) == 1
    stamp = out.stat().st_mtime_ns
    time.sleep(0.01)

    assert extract_features(root, out, workers=1, progress=True) == out
    assert len(counted) == 1 and out.stat().st_mtime_ns == stamp
    captured = capsys.readouterr()
    assert "reusing" in captured.out and "reusing" not in captured.err

    extract_features(root, out, workers=1, progress=False, force=True)
    assert len(counted) == 2

    # an input changes: one clip rewritten with other content
    first = root / specs[0]["name"]
    before = load_features(out).feature[0].copy()
    sf.write(first, _signal(int(0.2 * 48000), 48000, 2, 99) * 0.5, 48000, subtype="PCM_24")
    os.utime(first, ns=(time.time_ns(), time.time_ns() + 10**9))
    extract_features(root, out, workers=1, progress=False)
    assert len(counted) == 3
    assert not np.allclose(load_features(out).feature[0], before)

    # the recipe the file records differs from the current one (e.g. an older version)
    with h5py.File(out, "r+") as h5:
        h5.attrs["settings_json"] = h5.attrs["settings_json"].replace('"n_mels": 64',
                                                                       '"n_mels": 40')
    extract_features(root, out, workers=1, progress=False)
    assert len(counted) == 4
    extract_features(root, out, workers=1, progress=False)
    assert len(counted) == 4

    # meta.csv changes: the last clip dropped (from the folds too)
    meta = (root / "meta.csv").read_text().splitlines()
    (root / "meta.csv").write_text("\n".join(meta[:-1]) + "\n")
    for fold in (root / "evaluation_setup").iterdir():
        kept = [ln for ln in fold.read_text().splitlines() if specs[-1]["name"] not in ln]
        fold.write_text("\n".join(kept) + "\n")
    extract_features(root, out, workers=1, progress=False)
    assert len(counted) == 5 and load_features(out).feature.shape[0] == len(meta) - 2


def test_corrupt_cache_file_is_rebuilt(tmp_path: Path, counted: list[int]) -> None:
    root = write_dataset(tmp_path / "d", "dcase2019", _clip_specs(0.2)[:3])
    out = default_feature_path(root)
    out.parent.mkdir(parents=True)
    out.write_bytes(b"not hdf5")
    extract_features(root, out, workers=1, progress=False)
    assert len(counted) == 1 and load_features(out).feature.shape[0] == 3


# ------------------------------------------------------------------------------- bad input


def _assert_clean_failure(out: Path, match: str, root: Path, **kw) -> FeatureError:
    with pytest.raises(FeatureError, match=match) as info:
        extract_features(root, out, workers=2, batch_size=2, progress=False, **kw)
    assert not out.exists()
    if out.parent.is_dir():
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return info.value


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, list[dict]]:
    specs = _clip_specs(0.2)[:6]
    return write_dataset(tmp_path / "d", "dcase2018", specs), specs


def test_missing_meta_csv(small, tmp_path: Path) -> None:
    root, _ = small
    (root / "meta.csv").unlink()
    _assert_clean_failure(tmp_path / "o" / "f.h5", "meta.csv", root)


def test_missing_audio_file_named_with_line(small, tmp_path: Path) -> None:
    root, specs = small
    (root / specs[4]["name"]).unlink()
    err = _assert_clean_failure(tmp_path / "o" / "f.h5", Path(specs[4]["name"]).name, root)
    assert "meta.csv line 6" in str(err)


def test_corrupt_wav(small, tmp_path: Path) -> None:
    root, specs = small
    (root / specs[3]["name"]).write_bytes(b"RIFF nonsense " * 50)
    err = _assert_clean_failure(tmp_path / "o" / "f.h5", Path(specs[3]["name"]).name, root)
    assert "meta.csv line 5" in str(err)


def test_truncated_wav(small, tmp_path: Path) -> None:
    root, specs = small
    path = root / specs[2]["name"]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_clean_failure(tmp_path / "o" / "f.h5", f"{path.name}.*truncated", root)


def test_clip_too_short(small, tmp_path: Path) -> None:
    root, specs = small
    sf.write(root / specs[1]["name"], np.full(2000, 0.1), 44100)  # < 2048 samples
    _assert_clean_failure(tmp_path / "o" / "f.h5", f"{Path(specs[1]['name']).name}.*too short",
                          root)


def test_clip_with_other_frame_count(small, tmp_path: Path) -> None:
    root, specs = small
    sf.write(root / specs[5]["name"], _signal(44100, 44100, 1, 7) * 0.3, 44100)
    err = _assert_clean_failure(tmp_path / "o" / "f.h5", Path(specs[5]["name"]).name, root)
    msg = str(err)
    assert f"{n_frames(44100)} frames" in msg and f"{n_frames(int(0.2 * 44100))} frames" in msg


def test_frame_count_of_a_dataset_is_worked_by_hand(tmp_path: Path) -> None:
    """2 s clips, the first of device A at 48 kHz: 96000 samples resample to 88200 at
    44.1 kHz, and (88200 - 2048) // 1376 + 1 = 63 frames (n_fft 2048, hop 1376; study
    notes section 1). The training's estimate, the header helper and the extracted file
    all say so."""
    from caalib.commands.train import _n_frames

    specs = _clip_specs(2.0)[:6]
    assert (specs[0]["sr"], specs[0]["seconds"]) == (48000, 2.0)
    root = write_dataset(tmp_path / "d", "dcase2018", specs)
    assert _n_frames(str(root)) == 63
    assert [cache_mod.clip_feature_frames(root / s["name"]) for s in specs] == [63] * 6
    out = extract_features(root, tmp_path / "f.h5", workers=1, progress=False)
    assert load_features(out).feature.shape[1] == 63


@pytest.mark.parametrize("n, frames", [(95085, 63), (95084, 62), (2229, 1), (2228, 0)])
def test_frame_count_rounds_the_resampled_length_up(tmp_path: Path, n: int,
                                                    frames: int) -> None:
    """At 48 kHz, n samples become ceil(n * 147 / 160) at 44.1 kHz. 95085 -> 87359.34 ->
    87360 = 2048 + 62 * 1376: exactly 63 frames (rounding down would give 62); 95084 ->
    87358.43 -> 87359: 62. 2229 -> 2047.89 -> 2048: one frame; 2228 -> 2046.98 -> 2047:
    none. The header count agrees with the reference's resampled length."""
    path = tmp_path / "x.wav"
    audio = _signal(n, 48000, 1, 3) * 0.3
    sf.write(path, audio, 48000, subtype="FLOAT")
    assert cache_mod.clip_feature_frames(path) == frames
    if frames:
        assert reference_logmel(audio, 48000).shape[0] == frames


def test_unwritable_output(small, tmp_path: Path, counted: list[int]) -> None:
    root, _ = small
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for out in (blocker / "f.h5", blocker / "sub" / "f.h5"):
        with pytest.raises(FeatureError, match="a_file is a file, not a directory"):
            extract_features(root, out, workers=1, progress=False)
    assert blocker.read_text() == "x" and counted == []  # failed before any work


def test_output_that_is_a_directory_fails_before_work(small, tmp_path: Path,
                                                      counted: list[int]) -> None:
    root, _ = small
    with pytest.raises(FeatureError, match="is a directory"):
        extract_features(root, tmp_path, workers=1, progress=False)
    assert counted == []


def test_existing_non_hdf5_file_is_not_overwritten(small, tmp_path: Path,
                                                   counted: list[int]) -> None:
    root, _ = small
    meta = root / "meta.csv"
    before = meta.read_bytes()
    with pytest.raises(FeatureError, match=r"meta\.csv: exists and is not an HDF5"):
        extract_features(root, meta, workers=1, progress=False)
    assert meta.read_bytes() == before and counted == []


def test_read_only_output_directory(small, tmp_path: Path, counted: list[int],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = small
    out_dir = tmp_path / "ro"
    out_dir.mkdir()
    # root ignores permission bits, so fake what a read-only directory answers
    monkeypatch.setattr(cache_mod.os, "access", lambda p, mode: Path(p) != out_dir)
    with pytest.raises(FeatureError, match=f"directory {out_dir} is not writable"):
        extract_features(root, out_dir / "f.h5", workers=1, progress=False)
    assert counted == [] and list(out_dir.iterdir()) == []


def test_stale_temporaries_of_a_killed_run_are_removed(small, tmp_path: Path) -> None:
    import fcntl

    root, _ = small
    out = tmp_path / "o" / "f.h5"
    out.parent.mkdir()
    old = time.time() - 2 * cache_mod.STALE_TEMP_AGE_S
    stale, young, live, other = (out.parent / n for n in (
        ".f.h5.dead1.h5", ".f.h5.young.h5", ".f.h5.live.h5", ".g.h5.dead2.h5"))
    for p in (stale, young, live, other):
        p.write_bytes(b"partial")
    for p in (stale, live, other):
        os.utime(p, (old, old))
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # what HDF5 holds while a live run writes
        extract_features(root, out, workers=1, progress=False)
    assert out.is_file() and not stale.exists()
    assert young.exists() and live.exists() and other.exists()


def test_empty_wav_is_named(small, tmp_path: Path) -> None:
    root, specs = small
    (root / specs[2]["name"]).write_bytes(b"")
    err = _assert_clean_failure(tmp_path / "o" / "f.h5", "empty file", root)
    assert Path(specs[2]["name"]).name in str(err) and "meta.csv line 4" in str(err)


def test_odd_first_clip_is_the_one_named(small, tmp_path: Path) -> None:
    root, specs = small
    sf.write(root / specs[0]["name"], _signal(44100, 44100, 1, 7) * 0.3, 44100)
    err = _assert_clean_failure(tmp_path / "o" / "f.h5", Path(specs[0]["name"]).name, root)
    msg = str(err)
    assert msg.startswith(str(root / specs[0]["name"])) and "meta.csv line 2" in msg
    assert "5 of the 6 clips" in msg


@pytest.mark.parametrize("parallel", ["threads", "processes"])
def test_bad_clips_are_named_by_every_kind_of_worker(small, tmp_path: Path,
                                                     parallel: str) -> None:
    root, specs = small
    (root / specs[1]["name"]).unlink()
    (root / specs[3]["name"]).write_bytes(b"RIFF nonsense " * 50)
    err = _assert_clean_failure(tmp_path / "o" / "f.h5", Path(specs[1]["name"]).name, root,
                                parallel=parallel)
    assert "meta.csv line 3" in str(err)  # the first bad clip in meta.csv order
    (root / specs[1]["name"]).write_bytes(b"")
    sf.write(root / specs[3]["name"], _signal(44100, 44100, 1, 7) * 0.3, 44100)
    err = _assert_clean_failure(tmp_path / "o" / "f.h5", "empty file", root,
                                parallel=parallel)
    assert "meta.csv line 3" in str(err)


@pytest.mark.parametrize("parallel", ["threads", "processes"])
def test_warnings_come_back_from_every_kind_of_worker_in_order(small, tmp_path: Path,
                                                               parallel: str) -> None:
    from caalib.features import ImplausibleAudioWarning

    root, specs = small
    names = [specs[k]["name"] for k in (4, 1)]
    for k, name in zip((4, 1), names, strict=True):
        sf.write(root / name, _signal(int(0.2 * 44100), 44100, 1, k) * 4.0, 44100,
                 subtype="FLOAT")
    with pytest.warns(ImplausibleAudioWarning) as rec:
        extract_features(root, tmp_path / "f.h5", workers=2, parallel=parallel,
                         progress=False)
    texts = [str(w.message) for w in rec if issubclass(w.category, ImplausibleAudioWarning)]
    assert [Path(t.split(":", 1)[0]).name for t in texts] == [Path(names[1]).name,
                                                              Path(names[0]).name]
    assert all("peak" in t and "meta.csv line" in t for t in texts)


def test_silent_clip_warns_not_fails(small, tmp_path: Path) -> None:
    root, specs = small
    sf.write(root / specs[2]["name"], np.zeros(int(0.2 * 44100)), 44100)
    out = tmp_path / "f.h5"
    with pytest.warns(SilentClipWarning, match=Path(specs[2]["name"]).name):
        extract_features(root, out, workers=1, progress=False)
    fs = load_features(out)
    assert np.all(fs.feature[2] == np.float32(np.log(1e-8)))
    with pytest.warns(SilentClipWarning):  # the reused file still says so
        extract_features(root, out, workers=1, progress=False)


def test_load_features_errors(tmp_path: Path) -> None:
    with pytest.raises(FeatureError, match="nope.h5"):
        load_features(tmp_path / "nope.h5")
    junk = tmp_path / "junk.h5"
    junk.write_text("hello")
    with pytest.raises(FeatureError, match="junk.h5"):
        load_features(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["x"] = np.zeros(3)
    with pytest.raises(FeatureError, match="other.h5.*not a feature file"):
        load_features(other)


# ------------------------------------------------------------------------ standardisation


def test_standardiser_per_mel_bin() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((7, 11, 64)) * np.arange(1, 65) + np.arange(64)).astype(np.float32)
    x[:, :, 5] = -3.0  # a constant bin
    mean, std = fit_standardiser(x, chunk=2)
    assert mean.shape == std.shape == (64,)
    np.testing.assert_allclose(mean, x.reshape(-1, 64).mean(axis=0), rtol=1e-5, atol=1e-5)
    expected_std = x.reshape(-1, 64).std(axis=0)
    expected_std[5] = 1.0
    np.testing.assert_allclose(std, expected_std, rtol=1e-5)
    z = standardise(x, mean, std)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.reshape(-1, 64).mean(axis=0), 0, atol=1e-5)
    keep = np.arange(64) != 5
    np.testing.assert_allclose(z.reshape(-1, 64).std(axis=0)[keep], 1, rtol=1e-4)
    assert np.all(z[:, :, 5] == 0)


# -------------------------------------------------------------------------------------- CLI


def test_cli_features(small, tmp_path: Path, capsys) -> None:
    from caalib.cli import main

    root, specs = small
    out = tmp_path / "cli.h5"
    assert main(["features", str(root), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert load_features(out).feature.shape[0] == len(specs)
    assert "6 clips" in capsys.readouterr().out
    (root / specs[0]["name"]).unlink()
    assert main(["features", str(root), "--out", str(out), "--force", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("caa features: error:")
    assert Path(specs[0]["name"]).name in err[0]
    assert out.exists()  # the previous good file survives a failed rebuild


def test_cli_features_passes_the_worker_settings(small, tmp_path: Path, capsys,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from caalib import features as features_pkg
    from caalib.cli import main

    root, _ = small
    seen: dict = {}
    real = features_pkg.extract_features

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(features_pkg, "extract_features", spy)
    out = tmp_path / "cli.h5"
    assert main(["features", str(root), "--out", str(out), "--workers", "3", "--parallel",
                 "processes", "--transform", "torch", "--quiet"]) == 0
    assert (seen["workers"], seen["parallel"], seen["transform"]) == (3, "processes", "torch")
    assert load_features(out).feature.shape[0] == 6


def test_cli_sigterm_cleans_up(small, tmp_path: Path, capsys,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM mid-extraction: exit 130, no temporary left, SIGTERM handler restored."""
    import signal

    from caalib.cli import main

    root, _ = small
    out = tmp_path / "o" / "f.h5"
    real = cache_mod._build

    def killed(tmp: Path, *args, **kwargs):
        assert tmp.exists()
        os.kill(os.getpid(), signal.SIGTERM)
        return real(tmp, *args, **kwargs)

    monkeypatch.setattr(cache_mod, "_build", killed)
    # a harmless handler underneath: without the CLI's own, the run would finish (rc 0)
    # instead of killing the test process
    original = signal.signal(signal.SIGTERM, lambda *_: None)
    before = signal.getsignal(signal.SIGTERM)
    try:
        rc = main(["features", str(root), "--out", str(out), "--workers", "1", "--quiet"])
    finally:
        after = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, original)
    assert rc == 130 and after == before
    assert "interrupted" in capsys.readouterr().err
    assert list(out.parent.iterdir()) == []
