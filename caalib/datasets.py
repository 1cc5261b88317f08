"""Readers and checks for DCASE Task 1B development sets (real or synthetic).

One parser serves both ``read_dataset`` (which raises on the first problem) and
``check_dataset`` (which lists every problem), so the two can never disagree about
what a sound dataset is. The reader only reads metadata and stats audio files; the
checker also opens the WAV headers (and, with ``deep=True``, the samples).
"""

from __future__ import annotations

import os
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .constants import DEVICE_INDEX, DEVICES, SCENE_INDEX
from .errors import DatasetError

META_FILE = "meta.csv"
META_HEADER = ("filename", "scene_label", "identifier", "source_label")
FOLD_HEADER_2019 = ("filename", "scene_label")
FOLD_FILES: dict[str, tuple[str, str]] = {
    "dcase2018": ("evaluation_setup/fold1_train.txt", "evaluation_setup/fold1_evaluate.txt"),
    "dcase2019": ("evaluation_setup/fold1_train.csv", "evaluation_setup/fold1_evaluate.csv"),
}
COLUMNS = ("filename", "scene_label", "identifier", "source_label", "split", "scene", "device",
           "city", "location", "segment")
#: Peak below which a clip counts as silent (about -80 dBFS).
SILENCE_PEAK = 1e-4
#: Durations may differ by this much (s) before a clip is reported as the odd one out.
DURATION_TOLERANCE = 0.002

_NAME = re.compile(r"^(?:.*/)?([a-z_]+)-([a-z]+)-(\d+)-(\d+)-([a-z])\.wav$")


@dataclass
class _Problems:
    """Collects problem lines, so one parser can both raise and report."""

    lines: list[str] = field(default_factory=list)

    def add(self, msg: str) -> None:
        self.lines.append(msg)


def detect_layout(data_dir: str | os.PathLike[str]) -> str:
    """``"dcase2018"`` or ``"dcase2019"`` from the fold files in ``evaluation_setup/``."""
    root = Path(data_dir)
    found = [lay for lay, files in FOLD_FILES.items() if (root / files[0]).is_file()]
    if not found:
        raise DatasetError(
            f"{root / 'evaluation_setup'}: no fold1_train.txt (DCASE 2018) or fold1_train.csv "
            "(DCASE 2019) found")
    if len(found) > 1:
        raise DatasetError(f"{root / 'evaluation_setup'}: holds both fold1_train.txt and "
                           "fold1_train.csv; keep the one that matches the dataset")
    return found[0]


def _lines(path: Path, problems: _Problems) -> list[str] | None:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        problems.add(f"{path}: missing")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(f"{path}: unreadable ({exc})")
        return None
    return text.splitlines()


def _read_meta(root: Path, problems: _Problems) -> pd.DataFrame | None:
    path = root / META_FILE
    lines = _lines(path, problems)
    if lines is None:
        return None
    if not lines or tuple(lines[0].rstrip("\r").split("\t")) != META_HEADER:
        got = lines[0] if lines else "(empty file)"
        problems.add(f"{path} line 1: header must be {' TAB '.join(META_HEADER)!r}, got {got!r}")
        return None
    rows, seen = [], {}
    for no, raw in enumerate(lines[1:], start=2):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        where = f"{path} line {no}"
        parts = line.split("\t")
        if len(parts) != 4:
            problems.add(f"{where}: expected 4 tab-separated fields, got {len(parts)}: {line!r}")
            continue
        fname, scene, ident, dev = parts
        m = _NAME.match(fname)
        if scene not in SCENE_INDEX:
            problems.add(f"{where}: unknown scene label {scene!r} for {fname}")
            continue
        if dev not in DEVICE_INDEX:
            problems.add(f"{where}: unknown device (source_label) {dev!r} for {fname}; "
                         f"expected one of {', '.join(DEVICES)}")
            continue
        if m is None:
            problems.add(f"{where}: file name {fname!r} is not "
                         "audio/<scene>-<city>-<location>-<segment>-<device>.wav")
            continue
        n_scene, city, loc, seg, n_dev = m.groups()
        if n_scene != scene or n_dev != dev or ident != f"{city}-{loc}":
            problems.add(f"{where}: {fname} disagrees with its columns (scene {scene!r}, "
                         f"identifier {ident!r}, device {dev!r})")
            continue
        if fname in seen:
            problems.add(f"{where}: duplicate file name {fname} (first on line {seen[fname]})")
            continue
        seen[fname] = no
        rows.append((fname, scene, ident, dev, "", SCENE_INDEX[scene], DEVICE_INDEX[dev],
                     city, ident, int(seg)))
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df["_line"] = [seen[f] for f in df["filename"]]
    return df


def _read_fold(root: Path, rel: str, layout: str, problems: _Problems,
               ) -> list[tuple[int, str, str]] | None:
    """(line number, filename, scene label) of every entry of one fold file."""
    path = root / rel
    lines = _lines(path, problems)
    if lines is None:
        return None
    start = 1
    if layout == "dcase2019":
        if not lines or tuple(lines[0].rstrip("\r").split("\t")) != FOLD_HEADER_2019:
            got = lines[0] if lines else "(empty file)"
            problems.add(f"{path} line 1: header must be 'filename TAB scene_label', got {got!r}")
            return None
        start = 2
    out = []
    for no, raw in enumerate(lines[start - 1:], start=start):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            hint = " (a header line? DCASE 2018 fold files have none)" if no == 1 else ""
            problems.add(f"{path} line {no}: expected 'filename TAB scene_label', got "
                         f"{line!r}{hint}")
            continue
        out.append((no, parts[0], parts[1]))
    return out


def _parse(data_dir: str | os.PathLike[str], problems: _Problems) -> pd.DataFrame | None:
    root = Path(data_dir)
    if not root.is_dir():
        problems.add(f"{root}: not a directory")
        return None
    df = _read_meta(root, problems)
    try:
        layout = detect_layout(root)
    except DatasetError as exc:
        problems.add(str(exc))
        return None
    if df is None:
        return None
    index = {f: i for i, f in enumerate(df["filename"])}
    split = [""] * len(df)
    where_split: dict[str, str] = {}
    for name, rel in zip(("train", "evaluate"), FOLD_FILES[layout], strict=True):
        entries = _read_fold(root, rel, layout, problems)
        for no, fname, scene in entries or []:
            where = f"{root / rel} line {no}"
            i = index.get(fname)
            if i is None:
                problems.add(f"{where}: {fname} is not listed in {root / META_FILE}")
                continue
            if df.at[i, "scene_label"] != scene:
                problems.add(f"{where}: scene label {scene!r} for {fname} disagrees with "
                             f"{META_FILE} line {df.at[i, '_line']} ({df.at[i, 'scene_label']!r})")
                continue
            if split[i] and split[i] != name:
                problems.add(f"{where}: {fname} is in both the train and the evaluate split "
                             f"(also {where_split[fname]})")
                continue
            split[i] = name
            where_split[fname] = where
    df["split"] = split
    for i, fname in enumerate(df["filename"]):
        if not (root / fname).is_file():
            problems.add(f"{root / fname}: listed in {META_FILE} line {df.at[i, '_line']} "
                         "but the audio file does not exist")
    df.attrs["layout"] = layout
    df.attrs["data_dir"] = str(root)
    return df


def read_dataset(data_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per clip of ``meta.csv`` with its split, indices and recording place.

    Raises ``DatasetError`` naming the file (and line) of the first problem found.
    """
    problems = _Problems()
    df = _parse(data_dir, problems)
    if problems.lines:
        more = len(problems.lines) - 1
        tail = f" (and {more} more problem{'s' * (more > 1)}; run 'caa check')" if more else ""
        raise DatasetError(problems.lines[0] + tail)
    assert df is not None
    return df.drop(columns="_line")


# --- audio-level checks ---------------------------------------------------------------

def _riff_problem(path: Path) -> str | None:
    """Compare a WAV's declared chunk sizes with the bytes on disk (cheap truncation test)."""
    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes)"
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            return "not a RIFF/WAVE file"
        if head[:4] == b"RF64":
            return None
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            cid, clen = struct.unpack("<4sI", fh.read(8))
            if cid == b"data":
                have = size - pos - 8
                if clen > have:
                    return f"truncated: header declares {clen} bytes of audio, file holds {have}"
                return None
            pos += 8 + clen + (clen & 1)
    return "no data chunk"


def _audio_checks(root: Path, df: pd.DataFrame, deep: bool, progress: bool,
                  problems: _Problems) -> None:
    import soundfile as sf
    from tqdm.auto import tqdm

    durations: dict[str, float] = {}
    line_of = dict(zip(df["filename"], df["_line"], strict=True))
    rows = tqdm(df["filename"], desc="check audio", unit="clip", disable=not progress)
    for fname in rows:
        path = root / fname
        if not path.is_file():
            continue  # already reported
        ctx = f" ({META_FILE} line {line_of[fname]})"
        if path.suffix.lower() == ".wav":
            why = _riff_problem(path)
            if why:
                problems.add(f"{path}: {why}{ctx}")
                continue
        try:
            info = sf.info(str(path))
        except Exception as exc:  # libsndfile raises several types for corrupt files
            problems.add(f"{path}: unreadable audio{ctx}: {exc}")
            continue
        if info.frames <= 0 or info.samplerate <= 0:
            problems.add(f"{path}: holds no audio{ctx}")
            continue
        durations[fname] = info.frames / info.samplerate
        if deep:
            try:
                data, _ = sf.read(str(path), dtype="float32", always_2d=True)
            except Exception as exc:
                problems.add(f"{path}: audio data unreadable{ctx}: {exc}")
                continue
            if not np.all(np.isfinite(data)):
                problems.add(f"{path}: audio holds NaN or infinite samples{ctx}")
            elif np.max(np.abs(data)) < SILENCE_PEAK:
                problems.add(f"{path}: silent (peak below {20 * np.log10(SILENCE_PEAK):.0f} "
                             f"dBFS){ctx}")
    if durations:
        common = Counter(round(d, 3) for d in durations.values()).most_common(1)[0][0]
        for fname, d in durations.items():
            if abs(d - common) > DURATION_TOLERANCE:
                problems.add(f"{root / fname}: lasts {d:.3f} s, the dataset's clips last "
                             f"{common:.3f} s ({META_FILE} line {line_of[fname]})")


def _split_checks(root: Path, df: pd.DataFrame, problems: _Problems) -> None:
    in_split = df[df["split"] != ""]
    splits = in_split.groupby("identifier")["split"].nunique()
    for ident in splits[splits > 1].index:
        problems.add(f"{root / 'evaluation_setup'}: location {ident} appears in both the "
                     "train and the evaluate split")
    key = ["scene_label", "city", "location", "segment"]
    have_a = set(map(tuple, df.loc[df["source_label"] == "a", key].itertuples(index=False)))
    others = df[df["source_label"] != "a"]
    for line, fname, dev, *place in zip(others["_line"], others["filename"],
                                        others["source_label"], *(others[k] for k in key),
                                        strict=True):
        if tuple(place) not in have_a:
            problems.add(f"{root / META_FILE} line {line}: {fname}: device {dev.upper()} "
                         "clip has no device-A twin (same scene-city-location-segment)")


def check_dataset(data_dir: str | os.PathLike[str], deep: bool = True,
                  progress: bool = False) -> list[str]:
    """Every problem of the dataset at ``data_dir``, one line each (empty when sound).

    ``deep=False`` skips decoding the samples (the silence test), which is what makes
    checking the full 10,000-clip sets slow; header and truncation checks remain.
    """
    problems = _Problems()
    df = _parse(data_dir, problems)
    if df is not None and len(df):
        _split_checks(Path(data_dir), df, problems)
        _audio_checks(Path(data_dir), df, deep, progress, problems)
    elif df is not None:
        problems.add(f"{Path(data_dir) / META_FILE}: lists no clips")
    return problems.lines


def summarize(df: pd.DataFrame) -> str:
    """A one-line description of a dataset: layout, clips per device and split."""
    dev = df["source_label"].value_counts()
    spl = df["split"].value_counts()
    return (f"{df.attrs.get('layout', '?')} layout, {len(df)} clips ("
            + ", ".join(f"{d.upper()} {int(dev.get(d, 0))}" for d in DEVICES)
            + f"); train {int(spl.get('train', 0))}, evaluate {int(spl.get('evaluate', 0))}, "
            f"no split {int(spl.get('', 0))}")


__all__ = ["detect_layout", "read_dataset", "check_dataset", "summarize"]
