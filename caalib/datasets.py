"""Readers and checks for DCASE Task 1B development sets (real or synthetic).

One parser serves both ``read_dataset`` (which raises on the first problem) and
``check_dataset`` (which lists every problem), so the two can never disagree about
what a sound dataset is. The reader only reads metadata and stats audio files; the
checker also opens the WAV headers (and, with ``deep=True``, the samples).

``inspect_clip`` is the one judgement of a single audio file (container, header, rate,
channels, length, samples): the checker and the feature extractor's ``read_clip`` both
call it, so a clip is a problem, a warning or fine the same way for every command.
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .constants import (
    ALL_DEVICES,
    DEVICE_INDEX,
    DEVICES,
    EVAL_DEVICES,
    FEATURE_SAMPLE_RATE,
    SCENE_INDEX,
    SCENES,
    SIMULATED_DEVICES,
)
from .errors import DatasetError

META_FILE = "meta.csv"
META_HEADER = ("filename", "scene_label", "identifier", "source_label")
FOLD_HEADER_2019 = ("filename", "scene_label")
FOLD_FILES: dict[str, tuple[str, str]] = {
    "dcase2018": ("evaluation_setup/fold1_train.txt", "evaluation_setup/fold1_evaluate.txt"),
    "dcase2019": ("evaluation_setup/fold1_train.csv", "evaluation_setup/fold1_evaluate.csv"),
    # TAU 2020 Mobile: the 2019 file styles; told apart by its simulated devices (meta.csv)
    "dcase2020": ("evaluation_setup/fold1_train.csv", "evaluation_setup/fold1_evaluate.csv"),
}
COLUMNS = ("filename", "scene_label", "identifier", "source_label", "split", "scene", "device",
           "city", "location", "segment")
#: Peak below which a clip counts as silent (about -80 dBFS).
SILENCE_PEAK = 1e-4
#: Durations may differ by this much (s) before a clip is reported as the odd one out.
DURATION_TOLERANCE = 0.002
#: Below this sample rate (Hz) a clip is implausible for the task: the DCASE sets are 44.1
#: or 48 kHz, 16 kHz is the lowest wideband rate in common use, and an 8 kHz clip leaves the
#: mel bands above 4 kHz (about 40 % of the 64) empty.
MIN_PLAUSIBLE_RATE = 16_000
#: A float sample beyond this magnitude is implausible (mis-scaled audio); libsndfile
#: scales integer PCM into [-1, 1), and float overshoot from gain or clipping is small.
MAX_PLAUSIBLE_PEAK = 1.5
#: DCASE clips are stereo (device A) or mono (B, C); more channels are averaged but odd.
MAX_PLAUSIBLE_CHANNELS = 2
#: Containers libsndfile reports for a file that is what its ``.wav`` name says.
WAV_FORMATS = ("WAV", "WAVEX", "RF64")
#: Samples at the feature rate one STFT frame needs (``caalib.features.recipe.N_FFT``;
#: kept here because datasets sit below features).
MIN_FEATURE_SAMPLES = 2048

_NAME = re.compile(r"^(?:.*/)?([a-z_]+)-([a-z]+)-(\d+)-(\d+)-([a-z]|s\d+)\.wav$")


@dataclass
class _Problems:
    """Collects problem lines, so one parser can both raise and report."""

    lines: list[str] = field(default_factory=list)

    def add(self, msg: str) -> None:
        self.lines.append(msg)


def _has_simulated_devices(root: Path) -> bool:
    """Whether meta.csv's ``source_label`` column names a simulated device (s1-s6):
    the one mark of the 2020 layout, whose fold files look like 2019's."""
    try:
        lines = (root / META_FILE).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError):
        return False  # reported by the meta.csv reader
    sim = set(SIMULATED_DEVICES)
    return any(line.rstrip("\r").rsplit("\t", 1)[-1] in sim for line in lines[1:])


def detect_layout(data_dir: str | os.PathLike[str]) -> str:
    """``"dcase2018"``, ``"dcase2019"`` or ``"dcase2020"`` from the fold files in
    ``evaluation_setup/`` (``.txt``: 2018; ``.csv``: 2019, or 2020 when meta.csv holds a
    simulated device s1-s6)."""
    root = Path(data_dir)
    found = sorted({files[0] for files in FOLD_FILES.values() if (root / files[0]).is_file()})
    if not found:
        raise DatasetError(
            f"{root / 'evaluation_setup'}: no fold1_train.txt (DCASE 2018) or fold1_train.csv "
            "(DCASE 2019) found")
    if len(found) > 1:
        raise DatasetError(f"{root / 'evaluation_setup'}: holds both fold1_train.txt and "
                           "fold1_train.csv; keep the one that matches the dataset")
    if found[0].endswith(".txt"):
        return "dcase2018"
    return "dcase2020" if _has_simulated_devices(root) else "dcase2019"


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
                         f"expected one of {', '.join(ALL_DEVICES)}")
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
    if layout != "dcase2018":
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
    if not len(df):
        problems.add(f"{root / META_FILE}: lists no clips")
    allowed = EVAL_DEVICES[layout]
    for line, fname, dev in zip(df["_line"], df["filename"], df["source_label"], strict=True):
        if dev not in allowed:
            problems.add(f"{root / META_FILE} line {line}: device (source_label) {dev!r} of "
                         f"{fname} is not a device of the {layout} layout "
                         f"({', '.join(allowed)})")
    index = {f: i for i, f in enumerate(df["filename"])}
    split = [""] * len(df)
    where_split: dict[str, str] = {}
    fold_rows: dict[str, int | None] = {}
    for name, rel in zip(("train", "evaluate"), FOLD_FILES[layout], strict=True):
        entries = _read_fold(root, rel, layout, problems)
        if entries is None:
            fold_rows[name] = None  # unreadable: already reported
            continue
        for no, fname, scene in entries:
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
        fold_rows[name] = len(entries)
    df["split"] = split
    exists = [(root / fname).is_file() for fname in df["filename"]]
    for i, fname in enumerate(df["filename"]):
        if not exists[i]:
            problems.add(f"{root / fname}: listed in {META_FILE} line {df.at[i, '_line']} "
                         "but the audio file does not exist")
    if len(df):
        _split_rules(root, layout, df, exists, where_split, fold_rows, problems)
    df.attrs["layout"] = layout
    df.attrs["data_dir"] = str(root)
    return df


def _split_rules(root: Path, layout: str, df: pd.DataFrame, exists: list[bool],
                 where_split: dict[str, str], fold_rows: dict[str, int | None],
                 problems: _Problems) -> None:
    """The splits are by recording location, and neither may be empty.

    A location in both splits leaks (the DCASE splits keep every place, all devices, on
    one side). A split without a usable clip makes training and evaluation meaningless.
    """
    first: dict[tuple[str, str], str] = {}  # (location, split) -> its first clip
    for fname, ident, name in zip(df["filename"], df["identifier"], df["split"], strict=True):
        if name:
            first.setdefault((ident, name), fname)
    for ident in dict.fromkeys(df["identifier"]):
        if (ident, "train") in first and (ident, "evaluate") in first:
            tr, ev = first[(ident, "train")], first[(ident, "evaluate")]
            problems.add(f"{where_split[ev]}: location {ident} is in both the train and the "
                         f"evaluate split ({ev}; also {where_split[tr]}: {tr}); the splits "
                         "must be by recording location")
    for name, rel in zip(("train", "evaluate"), FOLD_FILES[layout], strict=True):
        rows = fold_rows.get(name)
        if rows is None:
            continue
        usable = sum(1 for s, ok in zip(df["split"], exists, strict=True) if s == name and ok)
        if usable:
            continue
        why = ("it lists no clips" if rows == 0 else
               f"none of its {rows} row{'s' * (rows > 1)} names a clip of {META_FILE} "
               "whose audio file exists")
        problems.add(f"{root / rel}: the {name} split is empty: {why}")


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


# --- one clip's audio: the judgement check_dataset and read_clip share ------------------

PROBLEM = "problem"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One thing found in one file: a ``problem`` (the clip is unusable) or a ``warning``
    (usable, but implausible for a DCASE clip). ``str()`` is the line every command prints:
    ``<file>: <text> (<where>)``, where ``where`` is e.g. ``<data>/meta.csv line 7``."""

    severity: str
    path: Path
    text: str
    where: str = ""
    kind: str = ""  # short tag for callers: "rate", "peak", "container", "silent", ...

    def __str__(self) -> str:
        return f"{self.path}: {self.text}" + (f" ({self.where})" if self.where else "")


@dataclass
class ClipAudio:
    """What `inspect_clip` found out about one audio file."""

    path: Path
    findings: list[Finding] = field(default_factory=list)
    rate: int = 0
    frames: int = 0
    channels: int = 0
    #: (frames, channels) float64 as soundfile decodes it; None unless decoded and usable
    samples: np.ndarray | None = None

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == PROBLEM]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]


def wav_chunk_problem(path: Path) -> tuple[bool, str | None]:
    """(is it a RIFF/RIFX/RF64 WAVE file, what is wrong with its chunks or None).

    Compares the data chunk's declared size with the bytes on disk: libsndfile silently
    returns the samples that are there when a WAV is cut short, so a truncated copy
    would otherwise pass as a shorter clip.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX", b"RF64") or head[8:12] != b"WAVE":
            return False, None
        if head[:4] == b"RF64":
            return True, None  # 64-bit sizes live in the ds64 chunk; libsndfile checks them
        endian = "<" if head[:4] == b"RIFF" else ">"
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            cid, clen = struct.unpack(endian + "4sI", fh.read(8))
            if cid == b"data":
                have = size - pos - 8
                if clen != 0xFFFFFFFF and clen > have:  # 0xFFFFFFFF: streamed, size unknown
                    return True, (f"truncated WAV: data chunk declares {clen} bytes, the file "
                                  f"holds {have}")
                return True, None
            pos += 8 + clen + (clen & 1)
    return True, "not a usable WAV: no data chunk"


def _length_problem(frames: int, rate: int) -> str | None:
    """Why a clip is too short for one STFT frame at the feature rate, or None."""
    n = frames if rate == FEATURE_SAMPLE_RATE else int(
        np.ceil(frames * (float(FEATURE_SAMPLE_RATE) / rate)))  # as the resampler pads
    if n >= MIN_FEATURE_SAMPLES:
        return None
    return (f"clip too short: {frames} samples at {rate} Hz give {n} at {FEATURE_SAMPLE_RATE} "
            f"Hz, one frame needs {MIN_FEATURE_SAMPLES} "
            f"({math.ceil(MIN_FEATURE_SAMPLES / FEATURE_SAMPLE_RATE * 1000)} ms)")


def inspect_clip(path: str | os.PathLike[str], where: str = "",
                 decode: bool = True) -> ClipAudio:
    """Judge one audio file the way every command does; never raises for a bad file.

    Problems (unusable): missing, empty, truncated or unreadable file, no samples, too
    short for one feature frame, NaN/infinite samples. Warnings (usable, implausible for
    DCASE): a container other than its ``.wav`` name says (libsndfile reads it anyway),
    a sample rate below `MIN_PLAUSIBLE_RATE`, more than `MAX_PLAUSIBLE_CHANNELS`
    channels, a peak above `MAX_PLAUSIBLE_PEAK`, silence. ``decode=False`` reads the
    header only (no sample checks). ``where`` (e.g. ``<data>/meta.csv line 7``) ends
    every line.
    """
    import soundfile as sf

    path = Path(path)
    clip = ClipAudio(path)

    def note(severity: str, kind: str, text: str) -> ClipAudio:
        clip.findings.append(Finding(severity, path, text, where, kind))
        return clip

    if not path.is_file():
        return note(PROBLEM, "missing", "audio file does not exist")
    try:
        if path.stat().st_size == 0:
            return note(PROBLEM, "empty", "empty file (0 bytes), not audio")
        is_wave, broken = wav_chunk_problem(path)
    except (OSError, struct.error) as exc:
        return note(PROBLEM, "unreadable", f"unreadable audio: {exc}")
    if broken:
        return note(PROBLEM, "header", broken)
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types for corrupt files
        what = ("unreadable audio" if is_wave
                else "not a RIFF/WAVE file, nor another format libsndfile reads")
        return note(PROBLEM, "unreadable", f"{what}: {exc}")
    clip.rate, clip.frames, clip.channels = info.samplerate, info.frames, info.channels
    if path.suffix.lower() == ".wav" and info.format not in WAV_FORMATS:
        note(WARNING, "container", f"holds {info.format} audio, not WAV as its name says; "
                                   f"it is read as {info.format}")
    if clip.frames <= 0 or clip.rate <= 0 or clip.channels <= 0:
        return note(PROBLEM, "no-samples", "audio file holds no samples")
    if clip.rate < MIN_PLAUSIBLE_RATE:
        note(WARNING, "rate", f"sample rate {clip.rate} Hz is implausibly low (DCASE clips "
                              f"are 44.1 or 48 kHz; the mel bands above {clip.rate // 2} Hz "
                              "will be empty)")
    if clip.channels > MAX_PLAUSIBLE_CHANNELS:
        note(WARNING, "channels", f"{clip.channels} channels; DCASE clips are mono or stereo "
                                  "(the channels are averaged to mono)")
    short = _length_problem(clip.frames, clip.rate)
    if short:
        return note(PROBLEM, "short", short)
    if not decode:
        return clip
    try:
        data, _ = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:  # libsndfile raises several types for corrupt files
        return note(PROBLEM, "unreadable", f"audio data unreadable: {exc}")
    if data.shape[0] != clip.frames:  # the header's count was an estimate
        clip.frames = data.shape[0]
        short = _length_problem(clip.frames, clip.rate) if clip.frames else None
        if not clip.frames or short:
            return note(PROBLEM, "short" if short else "no-samples",
                        short or "audio file holds no samples")
    if not np.all(np.isfinite(data)):
        return note(PROBLEM, "nan", "audio holds NaN or infinite samples")
    peak = float(np.max(np.abs(data)))
    if peak > MAX_PLAUSIBLE_PEAK:
        note(WARNING, "peak", f"peak {peak:.3g} is far above full scale (1.0); float samples "
                              f"beyond {MAX_PLAUSIBLE_PEAK} are implausible (mis-scaled audio?)")
    elif peak == 0.0:
        note(WARNING, "silent", "silent (all samples zero)")
    elif peak < SILENCE_PEAK:
        note(WARNING, "near-silent",
             f"silent (peak below {20 * np.log10(SILENCE_PEAK):.0f} dBFS)")
    clip.samples = data
    return clip


# --- the whole dataset ----------------------------------------------------------------

@dataclass
class CheckReport:
    """`check_dataset_report`'s answer: lines that make a dataset unusable, and lines
    about implausible but usable audio."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _audio_checks(root: Path, df: pd.DataFrame, deep: bool, progress: bool,
                  report: CheckReport) -> None:
    from tqdm.auto import tqdm

    durations: dict[str, float] = {}
    line_of = dict(zip(df["filename"], df["_line"], strict=True))
    rows = tqdm(df["filename"], desc="check audio", unit="clip", disable=not progress)
    for fname in rows:
        path = root / fname
        if not path.is_file():
            continue  # already reported
        clip = inspect_clip(path, f"{root / META_FILE} line {line_of[fname]}", decode=deep)
        report.problems += [str(f) for f in clip.problems]
        report.warnings += [str(f) for f in clip.warnings]
        if not clip.problems:
            durations[fname] = clip.frames / clip.rate
    if durations:
        common = Counter(round(d, 3) for d in durations.values()).most_common(1)[0][0]
        for fname, d in durations.items():
            if abs(d - common) > DURATION_TOLERANCE:
                report.problems.append(
                    f"{root / fname}: lasts {d:.3f} s, the dataset's clips last {common:.3f} s "
                    f"({root / META_FILE} line {line_of[fname]})")


def _twin_checks(root: Path, df: pd.DataFrame, problems: list[str]) -> None:
    key = ["scene_label", "city", "location", "segment"]
    have_a = set(map(tuple, df.loc[df["source_label"] == "a", key].itertuples(index=False)))
    others = df[df["source_label"] != "a"]
    for line, fname, dev, *place in zip(others["_line"], others["filename"],
                                        others["source_label"], *(others[k] for k in key),
                                        strict=True):
        if tuple(place) not in have_a:
            problems.append(f"{root / META_FILE} line {line}: {fname}: device {dev.upper()} "
                            "clip has no device-A twin (same scene-city-location-segment)")


def check_dataset_report(data_dir: str | os.PathLike[str], deep: bool = True,
                         progress: bool = False) -> CheckReport:
    """Every problem and every warning of the dataset at ``data_dir``, one line each.

    Problems are what `read_dataset` (metadata, splits) or `inspect_clip` (audio) reject,
    plus device B/C clips without a device-A twin and clips of another duration.
    ``deep=False`` skips decoding the samples (NaN, peak and silence tests), which is what
    makes checking the full 10,000-clip sets slow; header and truncation checks remain.
    """
    parsed = _Problems()
    df = _parse(data_dir, parsed)
    report = CheckReport(problems=parsed.lines)
    if df is not None and len(df):
        _twin_checks(Path(data_dir), df, report.problems)
        _audio_checks(Path(data_dir), df, deep, progress, report)
    return report


def check_dataset(data_dir: str | os.PathLike[str], deep: bool = True,
                  progress: bool = False) -> list[str]:
    """Every problem of the dataset at ``data_dir``, one line each (empty when sound).

    Warnings (implausible but usable audio) are in `check_dataset_report`.
    """
    return check_dataset_report(data_dir, deep=deep, progress=progress).problems


def summarize(df: pd.DataFrame) -> str:
    """A one-line description of a dataset: layout, clips per device and split."""
    dev = df["source_label"].value_counts()
    spl = df["split"].value_counts()
    return (f"{df.attrs.get('layout', '?')} layout, {len(df)} clips ("
            + ", ".join(f"{d.upper()} {int(dev.get(d, 0))}" for d in _table_devices(df))
            + f"); train {int(spl.get('train', 0))}, evaluate {int(spl.get('evaluate', 0))}, "
            f"no split {int(spl.get('', 0))}")


# -- what the data looks like (notebook 01): counts and parallel recordings ------------

#: The splits of ``read_dataset``'s ``split`` column, in table order ("" = no split).
SPLITS: tuple[str, ...] = ("train", "evaluate")


def _table_devices(meta: pd.DataFrame) -> list[str]:
    """The devices a table lists: A, B and C always, a simulated device when present."""
    present = set(meta["source_label"].astype(str))
    return [*DEVICES, *(d for d in SIMULATED_DEVICES if d in present)]


def _split_column(meta: pd.DataFrame) -> pd.Series:
    """The ``split`` column with clips in no split (the 2019 Milan clips) named "none"."""
    return meta["split"].fillna("").replace("", "none")


def clip_counts(meta: pd.DataFrame) -> pd.DataFrame:
    """Clips per scene (rows) and split/device (columns), with totals.

    ``meta`` is :func:`read_dataset`'s frame. Clips in no split (the 2019 Milan clips)
    get a column of their own so nothing is silently dropped.
    """
    missing = [c for c in ("scene_label", "source_label", "split") if c not in meta.columns]
    if missing:
        raise DatasetError(f"clip table lacks column(s) {missing}")
    split = _split_column(meta)
    splits = [s for s in (*SPLITS, "none") if (split == s).any()]
    table = pd.crosstab(meta["scene_label"], [split, meta["source_label"]])
    cols = [(s, d) for s in splits for d in ALL_DEVICES if (s, d) in table.columns]
    rows = [s for s in SCENES if s in table.index]
    table = table.reindex(index=rows, columns=pd.MultiIndex.from_tuples(cols)).fillna(0)
    table = table.astype(int)
    table.index.name = "scene"
    table.columns.names = ["split", "device"]
    table.loc["total"] = table.sum(axis=0)
    table[("all", "all")] = table.sum(axis=1)
    return table


def device_split_counts(meta: pd.DataFrame) -> pd.DataFrame:
    """Clips per device (rows) and split (columns): the imbalance the paper blames."""
    split = _split_column(meta)
    table = pd.crosstab(meta["source_label"], split).reindex(
        index=_table_devices(meta)).fillna(0)
    order = [s for s in (*SPLITS, "none") if s in table.columns]
    table = table[order].astype(int)
    table["all"] = table.sum(axis=1)
    table.index.name = "device"
    return table


def recording_key(meta: pd.DataFrame) -> pd.Series:
    """scene-city-location-segment: the same key for a clip and its parallel twins."""
    if "segment" in meta.columns and "identifier" in meta.columns:
        return (meta["scene_label"].astype(str) + "-" + meta["identifier"].astype(str)
                + "-" + meta["segment"].astype(str))
    # Fall back on the file name: audio/<scene>-<city>-<loc>-<segment>-<device>.wav
    return meta["filename"].map(lambda f: Path(str(f)).stem.rsplit("-", 1)[0])


def _heard_by_abc(meta: pd.DataFrame, key: pd.Series) -> pd.Series:
    """Per row: its recording is heard by A, B and C, each once, and by no device twice
    (on the 2020 layout it may be heard by simulated devices too; they stay with it)."""
    source = meta["source_label"].astype(str)
    grouped = source.groupby(key)
    once = grouped.transform("size") == grouped.transform("nunique")
    abc = source.isin(DEVICES).groupby(key).transform("sum") == len(DEVICES)
    return once & abc


def parallel_recordings(meta: pd.DataFrame, split: str | None = "evaluate") -> pd.DataFrame:
    """Rows of every recording heard by A, B and C, with every device that heard it (A, B
    and C on DCASE 2018/2019; simulated twins too on 2020), ordered by key then device."""
    rows = meta if split is None else meta[meta["split"] == split]
    key = recording_key(rows)
    has_all = rows.assign(recording=key)[_heard_by_abc(rows, key)]
    dev_order = has_all["source_label"].map(DEVICE_INDEX)
    return (has_all.assign(_d=dev_order).sort_values(["recording", "_d"])
            .drop(columns="_d").reset_index(drop=True))


def pick_parallel_recording(meta: pd.DataFrame, scene: str | None = None,
                            split: str | None = "evaluate") -> pd.DataFrame:
    """One recording heard by devices A, B and C (its rows, in device order: three on
    DCASE 2018/2019, with its simulated twins on 2020).

    Picks the first recording (by key) of ``scene``, or of any scene when ``scene`` is
    None, so the choice is the same every run.
    """
    par = parallel_recordings(meta, split)
    if scene is not None:
        if scene not in SCENES:
            raise ValueError(f"unknown scene {scene!r}")
        par = par[par["scene_label"] == scene]
    if par.empty:
        where = f" of scene {scene!r}" if scene else ""
        raise DatasetError(f"no recording{where} in split {split!r} is present on all "
                           f"three devices {DEVICES}")
    first = par["recording"].iloc[0]
    return par[par["recording"] == first].reset_index(drop=True)


def parallel_mask(meta: pd.DataFrame, split: str | None = None) -> np.ndarray:
    """Boolean mask over ``meta`` of the clips of a recording heard by A, B and C (with
    its simulated twins on the 2020 layout; see :func:`parallel_recordings`).

    ``meta`` needs ``filename`` and ``source_label`` (a feature file's meta suffices);
    ``split`` restricts to one split when ``meta`` has a ``split`` column.
    """
    key = recording_key(meta)
    ok = _heard_by_abc(meta, key).to_numpy()
    if split is not None and "split" in meta.columns:
        ok &= (meta["split"] == split).to_numpy()
    return ok


__all__ = ["detect_layout", "read_dataset", "check_dataset", "check_dataset_report",
           "inspect_clip", "wav_chunk_problem", "summarize", "CheckReport", "ClipAudio",
           "Finding", "SPLITS", "clip_counts", "device_split_counts", "recording_key",
           "parallel_recordings", "pick_parallel_recording", "parallel_mask"]
