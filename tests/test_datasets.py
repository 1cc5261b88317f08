"""Dataset reader and checker on hand-written fixtures in both real DCASE layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from caalib.datasets import check_dataset, check_dataset_report, detect_layout, read_dataset
from caalib.errors import DatasetError

# name, scene, split: a small real-looking set; B/C clips twin the first A clips
CLIPS = [
    ("airport-barcelona-0-0-a", "train"), ("airport-barcelona-0-1-a", "train"),
    ("airport-barcelona-0-0-b", "train"), ("airport-barcelona-0-0-c", "train"),
    ("bus-helsinki-3-10-a", "train"), ("bus-helsinki-4-20-a", "evaluate"),
    ("bus-helsinki-4-20-b", "evaluate"), ("street_pedestrian-london-7-30-a", "evaluate"),
    ("park-milan-1-5-a", ""),
]
# real sets come in any format: 48 kHz 24-bit stereo, 44.1 kHz 16-bit mono, float, 8-bit
FORMATS = {"a": (48000, 2, "PCM_24"), "b": (44100, 1, "PCM_16"), "c": (32000, 1, "FLOAT")}


def _wav(path: Path, rate: int, channels: int, subtype: str, seconds: float = 0.5,
         peak: float = 0.3, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-peak, peak, (int(rate * seconds), channels)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, rate, subtype=subtype)


def make_set(root: Path, layout: str = "dcase2018") -> Path:
    meta = ["filename\tscene_label\tidentifier\tsource_label"]
    folds: dict[str, list[str]] = {"train": [], "evaluate": []}
    for i, (name, split) in enumerate(CLIPS):
        scene, city, loc, _seg, dev = name.split("-")
        fname = f"audio/{name}.wav"
        _wav(root / fname, *FORMATS[dev], seed=i)
        meta.append(f"{fname}\t{scene}\t{city}-{loc}\t{dev}")
        if split:
            folds[split].append(f"{fname}\t{scene}")
    (root / "meta.csv").write_text("\n".join(meta) + "\n")
    setup = root / "evaluation_setup"
    setup.mkdir()
    for split, rows in folds.items():
        if layout == "dcase2018":
            (setup / f"fold1_{split}.txt").write_text("".join(r + "\n" for r in rows))
        else:
            (setup / f"fold1_{split}.csv").write_text(
                "filename\tscene_label\n" + "".join(r + "\n" for r in rows))
    return root


@pytest.mark.parametrize("layout", ["dcase2018", "dcase2019"])
def test_reads_both_fold_styles(tmp_path: Path, layout: str) -> None:
    root = make_set(tmp_path, layout)
    assert detect_layout(root) == layout
    df = read_dataset(root)
    assert df.attrs == {"layout": layout, "data_dir": str(root)}
    assert list(df.columns) == ["filename", "scene_label", "identifier", "source_label", "split",
                                "scene", "device", "city", "location", "segment"]
    assert len(df) == len(CLIPS)
    row = df.set_index("filename").loc["audio/street_pedestrian-london-7-30-a.wav"]
    assert (row.scene_label, row.split, row.scene, row.device) == ("street_pedestrian",
                                                                   "evaluate", 7, 0)
    assert (row.city, row.location, row.segment, row.identifier) == ("london", "london-7", 30,
                                                                     "london-7")
    assert df.set_index("filename").loc["audio/park-milan-1-5-a.wav", "split"] == ""
    assert df.groupby("split").size().to_dict() == {"": 1, "evaluate": 3, "train": 5}
    assert df.loc[df["source_label"] == "b", "device"].eq(1).all()
    assert check_dataset(root) == []


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + line + "\n")


META = "meta.csv"
TRAIN18 = "evaluation_setup/fold1_train.txt"
EVAL18 = "evaluation_setup/fold1_evaluate.txt"

# (id, mutation, file named in the message, "line N" expected in it or None)
BAD_METADATA = [
    ("missing meta", lambda r: (r / META).unlink(), META, None),
    ("wrong header", lambda r: _edit(r / META, "scene_label\t", "scene\t"), META, "line 1"),
    ("unknown scene", lambda r: _edit(r / META, "\tbus\thelsinki-3", "\tcar\thelsinki-3"), META,
     "line 6"),
    ("unknown device", lambda r: _edit(r / META, "helsinki-3\ta", "helsinki-3\td"), META,
     "line 6"),
    ("malformed line", lambda r: _edit(r / META, "\thelsinki-3\ta", "\thelsinki-3 a"), META,
     "line 6"),
    ("duplicate", lambda r: _append(r / META, "audio/bus-helsinki-3-10-a.wav\tbus\thelsinki-3\ta"),
     META, "line 11"),
    ("name vs columns", lambda r: _edit(r / META, "\tbus\thelsinki-3\t", "\tbus\thelsinki-9\t"),
     META, "line 6"),
    ("fold names unknown clip", lambda r: _append(r / TRAIN18, "audio/bus-x-1-1-a.wav\tbus"),
     TRAIN18, "line 6"),
    ("fold label disagrees", lambda r: _edit(r / EVAL18, "bus-helsinki-4-20-a.wav\tbus",
                                             "bus-helsinki-4-20-a.wav\ttram"), EVAL18, "line 1"),
    ("clip in both splits", lambda r: _append(r / EVAL18, "audio/bus-helsinki-3-10-a.wav\tbus"),
     EVAL18, "line 4"),
    ("fold malformed", lambda r: _append(r / TRAIN18, "audio/bus-helsinki-3-10-a.wav"), TRAIN18,
     "line 6"),
    ("fold file missing", lambda r: (r / EVAL18).unlink(), EVAL18, None),
    ("no fold files", lambda r: (r / TRAIN18).unlink(), "evaluation_setup", None),
    # the splits are by location: a location in both leaks (reader, check, features, train)
    ("location in both splits", lambda r: _edit(
        r / EVAL18, "bus-helsinki-4-20-a.wav\tbus", "bus-helsinki-4-20-a.wav\tbus\n"
        "audio/airport-barcelona-0-1-a.wav\tairport") or _edit(
        r / TRAIN18, "audio/airport-barcelona-0-1-a.wav\tairport\n", ""),
     EVAL18, "line 2: location barcelona-0 is in both the train and the evaluate split"),
    ("evaluate split empty", lambda r: (r / EVAL18).write_text(""), EVAL18,
     "the evaluate split is empty: it lists no clips"),
    ("train split empty", lambda r: (r / TRAIN18).write_text(""), TRAIN18,
     "the train split is empty"),
    ("audio missing", lambda r: (r / "audio/bus-helsinki-3-10-a.wav").unlink(),
     "audio/bus-helsinki-3-10-a.wav", "meta.csv line 6"),
]


@pytest.mark.parametrize("mutate, named, line", [b[1:] for b in BAD_METADATA],
                         ids=[b[0] for b in BAD_METADATA])
def test_bad_metadata_is_named(tmp_path: Path, mutate, named: str, line: str | None) -> None:
    root = make_set(tmp_path)
    mutate(root)
    with pytest.raises(DatasetError) as err:
        read_dataset(root)
    msg = str(err.value)
    assert named in msg
    if line:
        assert line in msg
    problems = check_dataset(root)
    assert problems and any(named in p and (line is None or line in p) for p in problems)


def test_fold_header_required_in_2019_layout(tmp_path: Path) -> None:
    root = make_set(tmp_path, "dcase2019")
    path = root / "evaluation_setup/fold1_train.csv"
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")
    with pytest.raises(DatasetError, match=r"fold1_train\.csv line 1: header"):
        read_dataset(root)


def test_both_fold_styles_is_ambiguous(tmp_path: Path) -> None:
    root = make_set(tmp_path)
    (root / "evaluation_setup/fold1_train.csv").write_text("filename\tscene_label\n")
    with pytest.raises(DatasetError, match="both"):
        detect_layout(root)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a directory"):
        read_dataset(tmp_path / "nope")
    assert check_dataset(tmp_path / "nope") == [f"{tmp_path / 'nope'}: not a directory"]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


AUDIO_PROBLEMS = [
    ("truncated", lambda r: _truncate(r / "audio/bus-helsinki-3-10-a.wav"),
     "bus-helsinki-3-10-a.wav", "truncated"),
    ("garbage", lambda r: (r / "audio/bus-helsinki-3-10-a.wav").write_bytes(b"\x00" * 300),
     "bus-helsinki-3-10-a.wav", "not a RIFF/WAVE"),
    ("corrupt header", lambda r: (r / "audio/bus-helsinki-3-10-a.wav").write_bytes(
        b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + b"\xff" * 16 + b"data\x00\x00\x00\x00"),
     "bus-helsinki-3-10-a.wav", "unreadable"),
    ("odd duration", lambda r: _wav(r / "audio/park-milan-1-5-a.wav", 48000, 2, "PCM_24", 0.75),
     "park-milan-1-5-a.wav", "lasts 0.750 s"),
    ("empty file", lambda r: (r / "audio/bus-helsinki-3-10-a.wav").write_bytes(b""),
     "bus-helsinki-3-10-a.wav", "empty file (0 bytes)"),
    ("no A twin", lambda r: (_edit(r / META, "audio/bus-helsinki-4-20-a.wav\tbus\thelsinki-4\ta\n",
                                   ""), _edit(r / EVAL18, "audio/bus-helsinki-4-20-a.wav\tbus\n",
                                              ""), (r / "audio/bus-helsinki-4-20-a.wav").unlink()),
     "bus-helsinki-4-20-b.wav", "no device-A twin"),
]


@pytest.mark.parametrize("mutate, named, what", [a[1:] for a in AUDIO_PROBLEMS],
                         ids=[a[0] for a in AUDIO_PROBLEMS])
def test_check_reports_audio_and_split_problems(tmp_path: Path, mutate, named: str,
                                                what: str) -> None:
    root = make_set(tmp_path)
    mutate(root)
    problems = check_dataset(root)
    assert len(problems) == 1, problems
    assert named in problems[0] and what in problems[0]
    assert f"{root / 'meta.csv'} line " in problems[0]
    assert check_dataset_report(root).warnings == []
    read_dataset(root)  # metadata is fine: the reader does not open audio


AUDIO_WARNINGS = [  # usable but implausible for DCASE: warned, not a problem
    ("silent", lambda r: _wav(r / "audio/bus-helsinki-4-20-b.wav", 44100, 1, "PCM_16", peak=0.0),
     "bus-helsinki-4-20-b.wav", "silent (all samples zero)"),
    ("8 kHz", lambda r: _wav(r / "audio/bus-helsinki-4-20-b.wav", 8000, 1, "PCM_16"),
     "bus-helsinki-4-20-b.wav", "sample rate 8000 Hz is implausibly low"),
    ("float x1e6", lambda r: _wav(r / "audio/airport-barcelona-0-0-c.wav", 32000, 1, "FLOAT",
                                  peak=3e5),
     "airport-barcelona-0-0-c.wav", "is far above full scale"),
    ("FLAC named .wav", lambda r: sf.write(str(r / "audio/park-milan-1-5-a.wav"),
                                           np.full((24000, 2), 0.1), 48000, format="FLAC"),
     "park-milan-1-5-a.wav", "holds FLAC audio, not WAV as its name says"),
    ("4 channels", lambda r: _wav(r / "audio/park-milan-1-5-a.wav", 48000, 4, "PCM_24"),
     "park-milan-1-5-a.wav", "4 channels"),
]


@pytest.mark.parametrize("mutate, named, what", [a[1:] for a in AUDIO_WARNINGS],
                         ids=[a[0] for a in AUDIO_WARNINGS])
def test_check_warns_about_implausible_audio(tmp_path: Path, mutate, named: str,
                                             what: str) -> None:
    root = make_set(tmp_path)
    mutate(root)
    report = check_dataset_report(root)
    assert report.problems == [] and check_dataset(root) == []
    assert len(report.warnings) == 1, report.warnings
    line = report.warnings[0]
    assert line.startswith(f"{root / 'audio' / named}: ") and what in line
    assert f"({root / 'meta.csv'} line " in line


def test_quick_check_skips_sample_tests_only(tmp_path: Path) -> None:
    root = make_set(tmp_path)
    _wav(root / "audio/bus-helsinki-4-20-b.wav", 44100, 1, "PCM_16", peak=0.0)
    _truncate(root / "audio/bus-helsinki-3-10-a.wav")
    quick = check_dataset_report(root, deep=False)
    assert len(quick.problems) == 1 and "truncated" in quick.problems[0]
    assert quick.warnings == []
    deep = check_dataset_report(root, deep=True)
    assert deep.problems == quick.problems and len(deep.warnings) == 1
    assert "silent" in deep.warnings[0]


def test_many_problems_reported_at_once(tmp_path: Path) -> None:
    root = make_set(tmp_path)
    _edit(root / META, "\tbus\thelsinki-3", "\tcar\thelsinki-3")
    (root / "audio/airport-barcelona-0-1-a.wav").unlink()
    with pytest.raises(DatasetError, match="and 2 more problems"):
        read_dataset(root)
    assert len(check_dataset(root)) == 3  # unknown scene, fold names the dropped clip, missing


def _crlf(root: Path) -> None:
    for path in (root / META, root / TRAIN18, root / EVAL18):
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))


def _bom(root: Path) -> None:
    (root / META).write_bytes(b"\xef\xbb\xbf" + (root / META).read_bytes())


def _blank_lines(root: Path) -> None:
    for path in (root / META, root / TRAIN18):
        path.write_text(path.read_text() + "\n\n  \n")


@pytest.mark.parametrize("mutate", [_crlf, _bom, _blank_lines],
                         ids=["windows line endings", "BOM", "trailing blank lines"])
def test_harmless_formatting_is_accepted(tmp_path: Path, mutate) -> None:
    expected = read_dataset(make_set(tmp_path / "clean"))
    root = make_set(tmp_path / "edited")
    mutate(root)
    df = read_dataset(root)
    assert df.equals(expected)
    assert check_dataset(root) == []


def test_extra_meta_column_is_rejected_by_name(tmp_path: Path) -> None:
    """The real 2018 and 2019 meta.csv have exactly four columns (study notes section 4)."""
    root = make_set(tmp_path)
    text = (root / META).read_text().splitlines()
    (root / META).write_text("\n".join(ln + "\tnote" for ln in text) + "\n")
    with pytest.raises(DatasetError, match=r"meta\.csv line 1: header must be"):
        read_dataset(root)
