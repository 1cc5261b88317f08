"""``caa check``, ``caa features`` and ``caa train`` apply one set of dataset checks.

Each test injects one fault into a small, sound dataset in the real layout and runs the
commands that meet it: a problem must stop every command with the same line, a warning
must be printed by check and features with the same line, naming the file and its
meta.csv line.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from caalib.cli import main
from caalib.datasets import (
    MAX_PLAUSIBLE_PEAK,
    MIN_FEATURE_SAMPLES,
    MIN_PLAUSIBLE_RATE,
    check_dataset,
    check_dataset_report,
    inspect_clip,
    read_dataset,
)
from caalib.errors import DatasetError
from caalib.features import N_FFT, ImplausibleAudioWarning, read_clip

SECONDS = 0.3
# (scene, city, location, split): the split is by location, as in the DCASE sets
PLACES = [("airport", "lisbon", 0, "train"), ("bus", "lisbon", 1, "train"),
          ("park", "prague", 2, "evaluate"), ("tram", "prague", 3, "evaluate")]
A_FORMAT = (48000, 2, "PCM_24")
B_FORMAT = (44100, 1, "PCM_16")
TRAIN = "evaluation_setup/fold1_train.txt"
EVAL = "evaluation_setup/fold1_evaluate.txt"


def _noise(rate: int, channels: int, seed: int, peak: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-peak, peak, (int(round(SECONDS * rate)), channels))


def _name(scene: str, city: str, loc: int, dev: str) -> str:
    return f"audio/{scene}-{city}-{loc}-{loc * 10}-{dev}.wav"


def make_set(root: Path) -> Path:
    """Device A and B recordings of four locations, two per split, 2018 fold style."""
    (root / "audio").mkdir(parents=True)
    (root / "evaluation_setup").mkdir()
    meta = ["filename\tscene_label\tidentifier\tsource_label"]
    folds: dict[str, list[str]] = {"train": [], "evaluate": []}
    for i, (scene, city, loc, split) in enumerate(PLACES):
        for dev, (rate, ch, subtype) in (("a", A_FORMAT), ("b", B_FORMAT)):
            name = _name(scene, city, loc, dev)
            sf.write(root / name, _noise(rate, ch, 2 * i + (dev == "b")), rate, subtype=subtype)
            meta.append(f"{name}\t{scene}\t{city}-{loc}\t{dev}")
            folds[split].append(f"{name}\t{scene}")
    (root / "meta.csv").write_text("\n".join(meta) + "\n")
    for split, rows in folds.items():
        (root / f"evaluation_setup/fold1_{split}.txt").write_text("".join(r + "\n" for r in rows))
    return root


def _meta_line(root: Path, name: str) -> str:
    lines = (root / "meta.csv").read_text().splitlines()
    no = next(i for i, ln in enumerate(lines, start=1) if ln.startswith(name + "\t"))
    return f"{root / 'meta.csv'} line {no}"


def _prefixed(text: str, prefix: str) -> list[str]:
    return [ln[len(prefix):] for ln in text.splitlines() if ln.startswith(prefix)]


def run_check(root: Path, capsys: pytest.CaptureFixture[str], *extra: str
              ) -> tuple[int, list[str], list[str]]:
    """Exit code, problem lines (stdout) and warning lines (stderr) of ``caa check``."""
    rc = main(["check", str(root), *extra])
    cap = capsys.readouterr()
    problems = [ln for ln in cap.out.splitlines() if not ln.startswith("OK ")]
    return rc, problems, _prefixed(cap.err, "caa check: warning: ")


def run_features(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                 workers: int = 2) -> tuple[int, list[str], list[str]]:
    """Exit code, error lines and warning lines of ``caa features``."""
    rc = main(["features", str(root), "--out", str(tmp_path / "f.h5"), "--workers",
               str(workers), "--quiet", "--force"])
    err = capsys.readouterr().err
    return rc, _prefixed(err, "caa features: error: "), _prefixed(err, "caa features: warning: ")


def run_train(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["train", "--data", str(root), "--topology", "pool", "--pooling", "att",
               "--strategy", "joint", "--profile", "tiny", "--iterations", "1",
               "--accelerator", "cpu", "--no-progress", "--out", str(tmp_path / "run")])
    return rc, capsys.readouterr().err


@pytest.fixture
def sound(tmp_path: Path) -> Path:
    return make_set(tmp_path / "data")


def test_sound_set_passes_everything(sound: Path, tmp_path: Path, capsys) -> None:
    assert run_check(sound, capsys) == (0, [], [])
    assert run_features(sound, tmp_path, capsys) == (0, [], [])


# ------------------------------------------------------------ warnings: implausible audio


def _low_rate(root: Path) -> str:
    name = _name("bus", "lisbon", 1, "b")
    sf.write(root / name, _noise(8000, 1, 5), 8000, subtype="PCM_16")
    return name


def _huge_float(root: Path) -> str:
    name = _name("park", "prague", 2, "a")
    sf.write(root / name, _noise(48000, 2, 6) * 1e6, 48000, subtype="FLOAT")
    return name


def _flac_as_wav(root: Path) -> str:
    name = _name("tram", "prague", 3, "a")
    sf.write(root / name, _noise(48000, 2, 7), 48000, format="FLAC", subtype="PCM_24")
    return name


def _near_silent(root: Path) -> str:
    name = _name("airport", "lisbon", 0, "b")
    sf.write(root / name, _noise(44100, 1, 8, peak=3e-5), 44100, subtype="FLOAT")
    return name


WARNINGS = [  # (id, fault, what the warning must say)
    ("8 kHz clip", _low_rate, "sample rate 8000 Hz"),
    ("float samples x1e6", _huge_float, "peak 3e+05"),
    ("FLAC named .wav", _flac_as_wav, "holds FLAC audio"),
    ("near-silent clip", _near_silent, "silent (peak below -80 dBFS)"),
]


@pytest.mark.parametrize("fault, says", [w[1:] for w in WARNINGS], ids=[w[0] for w in WARNINGS])
def test_implausible_audio_warns_alike_in_check_and_features(
        sound: Path, tmp_path: Path, capsys, fault, says: str) -> None:
    name = fault(sound)
    rc, problems, warned = run_check(sound, capsys)
    assert (rc, problems) == (0, []), problems
    assert len(warned) == 1, warned
    line = warned[0]
    assert line.startswith(f"{sound / name}: ") and says in line
    assert line.endswith(f" ({_meta_line(sound, name)})")
    # the quick check reads headers only: it still sees rate and container, not samples
    quick = run_check(sound, capsys, "--quick")[2]
    assert quick == ([line] if fault in (_low_rate, _flac_as_wav) else [])
    assert run_features(sound, tmp_path, capsys) == (0, [], [line])


def test_thresholds_are_the_documented_ones() -> None:
    assert MIN_PLAUSIBLE_RATE == 16_000 and MAX_PLAUSIBLE_PEAK == 1.5
    assert MIN_FEATURE_SAMPLES == N_FFT  # the reader's "too short" is the extractor's


def test_read_clip_warns_and_keeps_its_contract(sound: Path) -> None:
    name = _huge_float(sound)
    with pytest.warns(ImplausibleAudioWarning, match=r"peak 3e\+05.*\(here\)$") as rec:
        x, silent = read_clip(sound / name, "here")
    assert len(rec) == 1 and str(rec[0].message).startswith(f"{sound / name}: ")
    assert x.ndim == 1 and x.shape[0] == int(np.ceil(SECONDS * 44100)) and not silent
    sound_name = _name("bus", "lisbon", 1, "a")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a sound clip warns nothing
        read_clip(sound / sound_name)


def test_all_zero_clip_is_a_warning_in_check_and_features(sound: Path, tmp_path: Path,
                                                          capsys) -> None:
    """Silence is a warning everywhere (features report it as SilentClipWarning)."""
    name = _name("bus", "lisbon", 1, "b")
    sf.write(sound / name, np.zeros(int(SECONDS * 44100)), 44100, subtype="PCM_16")
    rc, problems, warned = run_check(sound, capsys)
    assert (rc, problems) == (0, [])
    assert warned == [f"{sound / name}: silent (all samples zero) ({_meta_line(sound, name)})"]
    rc, errors, warned = run_features(sound, tmp_path, capsys)
    assert (rc, errors) == (0, []) and len(warned) == 1 and Path(name).name in warned[0]
    assert "silent" in warned[0]


def test_warnings_from_many_worker_threads_all_reach_caa_features(sound: Path, tmp_path: Path,
                                                                  capsys) -> None:
    for scene, city, loc, _ in PLACES:
        name = _name(scene, city, loc, "b")
        sf.write(sound / name, _noise(8000, 1, loc), 8000, subtype="PCM_16")
    rc, problems, checked = run_check(sound, capsys)
    assert rc == 0 and len(checked) == 4
    rc, errors, warned = run_features(sound, tmp_path, capsys, workers=4)
    assert (rc, errors) == (0, []) and sorted(warned) == sorted(checked)


# --------------------------------------------------------------------- problems: unusable


def _truncate(root: Path) -> str:
    name = _name("bus", "lisbon", 1, "a")
    data = (root / name).read_bytes()
    (root / name).write_bytes(data[: len(data) // 2])
    return name


def _too_short(root: Path) -> str:
    name = _name("park", "prague", 2, "b")
    sf.write(root / name, _noise(44100, 1, 9)[:2000], 44100, subtype="PCM_16")
    return name


def _garbage(root: Path) -> str:
    name = _name("tram", "prague", 3, "b")
    (root / name).write_bytes(b"\x00" * 300)
    return name


def _nan(root: Path) -> str:
    name = _name("airport", "lisbon", 0, "a")
    x = _noise(48000, 2, 3)
    x[10, 0] = np.nan
    sf.write(root / name, x, 48000, subtype="FLOAT")
    return name


PROBLEMS = [
    ("truncated", _truncate, "truncated"),
    ("too short for one frame", _too_short, "clip too short"),
    ("not audio", _garbage, "not a RIFF/WAVE file"),
    ("NaN samples", _nan, "NaN or infinite"),
]


@pytest.mark.parametrize("fault, says", [p[1:] for p in PROBLEMS], ids=[p[0] for p in PROBLEMS])
def test_unusable_clip_is_the_same_problem_in_check_and_features(
        sound: Path, tmp_path: Path, capsys, fault, says: str) -> None:
    name = fault(sound)
    rc, problems, _ = run_check(sound, capsys)
    assert rc == 1
    mine = [p for p in problems if p.startswith(f"{sound / name}: ")]
    assert len(mine) == 1 and says in mine[0], problems
    assert _meta_line(sound, name) in mine[0]
    assert run_features(sound, tmp_path, capsys)[:2] == (1, mine)


def test_check_exits_1_and_keeps_warnings_apart_from_problems(sound: Path, capsys) -> None:
    low, cut = _low_rate(sound), _truncate(sound)
    rc = main(["check", str(sound)])
    cap = capsys.readouterr()
    assert rc == 1
    out, err = cap.out.splitlines(), cap.err.splitlines()
    assert len(out) == 1 and out[0].startswith(f"{sound / cut}: truncated")
    assert [ln for ln in err if ln.startswith("caa check: warning: ")] == [
        f"caa check: warning: {sound / low}: " + inspect_clip(sound / low).warnings[0].text
        + f" ({_meta_line(sound, low)})"]
    assert err[-1] == f"caa check: 1 problem, 1 warning in {sound}"
    report = check_dataset_report(sound)
    assert [str(p) for p in report.problems] == out == check_dataset(sound)


# ----------------------------------------------------------- split rules: one reader, one line


def _leak(root: Path) -> str:
    """Move the B recording of a train location into the evaluate split."""
    row = f"{_name('bus', 'lisbon', 1, 'b')}\tbus\n"
    (root / TRAIN).write_text((root / TRAIN).read_text().replace(row, ""))
    (root / EVAL).write_text((root / EVAL).read_text() + row)
    return "lisbon-1"


def _no_eval_rows(root: Path) -> str:
    (root / EVAL).write_text("")
    return "evaluate split is empty"


def _eval_clips_gone(root: Path) -> str:
    for scene, city, loc, split in PLACES:
        if split == "evaluate":
            for dev in "ab":
                (root / _name(scene, city, loc, dev)).unlink()
    return "evaluate split is empty"


def test_location_in_both_splits_is_one_line_everywhere(sound: Path, tmp_path: Path,
                                                        capsys) -> None:
    _leak(sound)
    with pytest.raises(DatasetError) as err:
        read_dataset(sound)
    msg = str(err.value)
    assert "location lisbon-1" in msg and "both the train and the evaluate split" in msg
    assert f"{sound / EVAL} line 5" in msg and f"{sound / TRAIN} line 3" in msg
    rc, problems, _ = run_check(sound, capsys)
    assert (rc, problems) == (1, [msg])
    assert run_features(sound, tmp_path, capsys)[:2] == (1, [msg])
    rc, err_text = run_train(sound, tmp_path, capsys)
    assert rc == 1 and f"caa train: error: {msg}" in err_text.splitlines()


@pytest.mark.parametrize("fault", [_no_eval_rows, _eval_clips_gone],
                         ids=["fold file without rows", "all its clips missing"])
def test_empty_evaluate_split_is_a_problem_everywhere(sound: Path, tmp_path: Path, capsys,
                                                      fault) -> None:
    says = fault(sound)
    rc, problems, _ = run_check(sound, capsys)
    empty = [p for p in problems if says in p]
    assert rc == 1 and len(empty) == 1 and empty[0].startswith(f"{sound / EVAL}: ")
    with pytest.raises(DatasetError) as err:
        read_dataset(sound)
    if fault is _no_eval_rows:  # the only problem, so the reader names it first
        assert str(err.value) == empty[0]
        assert run_features(sound, tmp_path, capsys)[:2] == (1, empty)
        rc, err_text = run_train(sound, tmp_path, capsys)
        assert rc == 1 and f"caa train: error: {empty[0]}" in err_text.splitlines()
