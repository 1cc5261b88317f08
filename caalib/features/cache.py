"""Extract log-mels for a whole dataset into one HDF5 file, and read it back.

The file records the recipe and a fingerprint of its inputs by content (meta.csv's bytes
and each clip's SHA-256, with each clip's stat so that an untouched clip need not be
hashed again), so a second run with nothing changed reuses it instead of spending minutes
recomputing, and any change rebuilds it. The clips are computed by
`caalib.features.pipeline` on every core. Output goes through `caalib.atomic.atomic_path`:
a failure never leaves a partial file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import __version__
from ..accelerator import resolve_torch_device
from ..atomic import atomic_path
from ..datasets import read_dataset
from ..errors import CaaError, FeatureError
from .audio import ImplausibleAudioWarning
from .fast import LogMel
from .pipeline import ClipRunner, Plan, digest_and_stat, plan, stat_row
from .recipe import (
    DEFAULT_RESAMPLER,
    N_MELS,
    SAMPLE_RATE,
    check_resampler,
    n_frames,
    recipe,
)

log = logging.getLogger(__name__)

META_COLUMNS: tuple[str, ...] = ("filename", "scene_label", "identifier", "source_label")
FEATURE_FILE_NAME = "logmel.h5"


class SilentClipWarning(UserWarning):
    """Some clips are digital silence: usable, but probably not what the user meant."""


@dataclass
class FeatureSet:
    """A loaded feature file: features, the meta.csv columns per clip, the file's attributes."""

    feature: np.ndarray  # (N, T, 64) float32
    meta: pd.DataFrame  # filename, scene_label, identifier, source_label
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.feature.shape[0])


def default_feature_path(data_dir: str | os.PathLike[str],
                         resampler: str = DEFAULT_RESAMPLER) -> Path:
    """Where the training looks for a dataset's features: ``<data_dir>/features/logmel.h5``
    for the released recipe, ``logmel-<resampler>.h5`` for another resampler (so switching
    back and forth never rebuilds)."""
    name = FEATURE_FILE_NAME if check_resampler(resampler) == DEFAULT_RESAMPLER else (
        f"logmel-{resampler}.h5")
    return Path(data_dir) / "features" / name


def settings_json(resampler: str = DEFAULT_RESAMPLER) -> str:
    """The recipe as canonical JSON: equal strings mean equal numbers."""
    return json.dumps(recipe(resampler), sort_keys=True)


# ---------------------------------------------------------------------------- reading inputs


def _read_meta(data_dir: Path) -> pd.DataFrame:
    """The clips of meta.csv in file order, via the dataset reader (its checks included).

    Adds ``_line``, each clip's line number in meta.csv, for error messages.
    """
    try:
        df = read_dataset(data_dir)
    except CaaError as exc:
        raise FeatureError(str(exc)) from exc
    if len(df) == 0:
        raise FeatureError(f"{data_dir / 'meta.csv'}: lists no clips")
    df = df.reset_index(drop=True)
    lines = (data_dir / "meta.csv").read_text(encoding="utf-8-sig").splitlines()
    line_of = {ln.split("\t", 1)[0]: no for no, ln in enumerate(lines, start=1) if no > 1}
    df["_line"] = [line_of.get(f, 0) for f in df["filename"]]
    return df


#: What a feature file records of each input clip: its stat (to trust the stored
#: digest quickly) and the SHA-256 of its bytes (what identity is decided on).
STAT_FIELDS: tuple[str, ...] = ("size", "mtime_ns", "ctime_ns", "ino")


def _stat(path: Path, meta_path: Path, line: int) -> os.stat_result:
    try:
        return path.stat()
    except OSError as exc:
        raise FeatureError(
            f"{path}: audio file listed in {meta_path}{f' line {line}' if line else ''} "
            f"does not exist or cannot be read ({exc.strerror})"
        ) from exc


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (the extraction workers' own digest)."""
    if not Path(path).is_file():
        raise FeatureError(f"{path}: cannot read: not a file")
    return digest_and_stat(Path(path))[0]


def content_fingerprint(meta_bytes: bytes, names: Sequence[str], digests: Sequence[str]) -> str:
    """The features' inputs by content: meta.csv's bytes and each listed clip's name and
    SHA-256. Timestamps play no part, so a copy of the dataset has the same fingerprint
    and a clip replaced in place (size and mtime kept) does not."""
    h = hashlib.sha256(meta_bytes)
    for name, digest in zip(names, digests, strict=True):
        h.update(f"\0{name}\0{digest}".encode())
    return h.hexdigest()


def _meta_bytes(data_dir: Path) -> bytes:
    meta_path = data_dir / "meta.csv"
    try:
        return meta_path.read_bytes()
    except OSError as exc:
        raise FeatureError(f"{meta_path}: cannot read: {exc}") from exc


def fingerprint(data_dir: Path, meta: pd.DataFrame,
                known: dict[str, tuple[tuple[int, int, int, int], str]] | None = None) -> str:
    """:func:`content_fingerprint` of ``data_dir`` as it is now.

    ``known`` maps a clip name to (stat, digest) recorded earlier: a clip whose size,
    mtime, ctime and inode all match keeps its recorded digest (a content change that
    restores size and mtime still moves ctime), any other clip is hashed again.
    """
    data_dir = Path(data_dir)
    known = known or {}
    meta_path = data_dir / "meta.csv"
    lines = meta["_line"] if "_line" in meta else [0] * len(meta)
    names = [str(n) for n in meta["filename"]]
    digests = []
    for name, line in zip(names, lines, strict=True):
        path = data_dir / name
        st = _stat(path, meta_path, int(line))
        rec = known.get(name)
        digests.append(rec[1] if rec is not None and rec[0] == stat_row(st)
                       else file_digest(path))
    return content_fingerprint(_meta_bytes(data_dir), names, digests)


def dataset_fingerprint(data_dir: str | os.PathLike[str], feature_fingerprint: str) -> str:
    """A run's data identity: the features' input fingerprint plus the split files
    (``evaluation_setup/``), which decide what a run trains and is scored on."""
    setup = Path(data_dir) / "evaluation_setup"
    h = hashlib.sha256(feature_fingerprint.encode())
    for path in sorted(setup.glob("*")) if setup.is_dir() else []:
        if path.is_file():
            h.update(f"\0{path.name}\0".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _recorded_inputs(h5: h5py.File) -> dict[str, tuple[tuple[int, int, int, int], str]]:
    """Per-clip stat and digest a feature file recorded ({} for files without them)."""
    if "input_sha256" not in h5 or "input_stat" not in h5:
        return {}
    names = h5["filename"].asstr()[()]
    digests = h5["input_sha256"].asstr()[()]
    stats = h5["input_stat"][()]
    return {str(n): (tuple(int(v) for v in st), str(d))
            for n, d, st in zip(names, digests, stats, strict=True)}


def _check_output(out: Path) -> None:
    """Fail before minutes of work when ``out`` cannot (or must not) be written.

    Refuses to replace an existing non-HDF5 file unless it is named like one (a damaged
    cache is rebuilt), so a mistyped output path (say, the dataset's meta.csv) is never
    overwritten with features.
    """
    if out.is_dir():
        raise FeatureError(f"{out}: is a directory; the output must be a file path such as "
                           f"{out / FEATURE_FILE_NAME}")
    if (out.exists() and out.suffix.lower() not in (".h5", ".hdf5", ".hdf")
            and not h5py.is_hdf5(out)):
        raise FeatureError(f"{out}: exists and is not an HDF5 feature file; refusing to "
                           "overwrite it (remove it or choose another output path)")
    if out.is_file() and h5py.is_hdf5(out) and not _is_our_feature_file(out):
        raise FeatureError(f"{out}: exists and is an HDF5 file this study did not write "
                           "(no feature-file marker); refusing to overwrite it (remove it "
                           "or choose another output path)")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise FeatureError(f"{out}: cannot create the output: {parent} is a file, "
                           "not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FeatureError(f"{out}: cannot write the output: directory {parent} is not "
                           "writable")


def _is_our_feature_file(path: Path) -> bool:
    """Written by ``extract_features`` (any version): it carries the recipe it used."""
    try:
        with h5py.File(path, "r") as h5:
            return "caalib_feature_file" in h5.attrs or "settings_json" in h5.attrs
    except Exception:  # damaged beyond reading: nobody's data, safe to rebuild
        return True


#: A temporary younger than this is left alone even when unlocked (HDF5 locking can be
#: switched off with HDF5_USE_FILE_LOCKING=FALSE, and then only its age tells).
STALE_TEMP_AGE_S = 60.0


def _remove_stale_temps(out: Path) -> list[Path]:
    """Delete ``.<name>.*`` temporaries a killed extraction (SIGKILL, power loss) left.

    A live writer holds HDF5's exclusive flock on its temporary; an unlocked one that
    has not been written for a minute belongs to a dead process.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None  # type: ignore[assignment]
    removed = []
    if not out.parent.is_dir():
        return removed
    now = time.time()
    for tmp in out.parent.glob(f".{out.name}.*{out.suffix}"):
        try:
            if not tmp.is_file() or now - tmp.stat().st_mtime < STALE_TEMP_AGE_S:
                continue
            if fcntl is not None:
                with open(tmp, "rb") as fh:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if a writer lives
            tmp.unlink()
        except OSError:
            continue
        removed.append(tmp)
        log.info("removed %s, left by an interrupted extraction", tmp)
    return removed


def _cache_is_current(path: Path, data_dir: Path, meta: pd.DataFrame, settings: str) -> bool:
    """Whether ``path`` holds this recipe's features of exactly these inputs, by content."""
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as h5:
            if (h5.attrs.get("settings_json") != settings or "feature" not in h5
                    or h5["feature"].shape[0] != len(meta)):
                return False
            stored, known = h5.attrs.get("fingerprint"), _recorded_inputs(h5)
    except Exception:  # unreadable or foreign file: rebuild it
        return False
    if not known:
        return False
    return stored == fingerprint(data_dir, meta, known)


def load_feature_fingerprint(path: str | os.PathLike[str]) -> str:
    """The input fingerprint a feature file records (FeatureError when it has none)."""
    try:
        with h5py.File(path, "r") as h5:
            fp = h5.attrs.get("fingerprint")
    except Exception as exc:
        raise FeatureError(f"{path}: cannot read feature file: {exc}") from exc
    if not fp:
        raise FeatureError(f"{path}: records no input fingerprint; re-extract it")
    return str(fp)


def verify_features(path: str | os.PathLike[str],
                    data_dir: str | os.PathLike[str]) -> str:
    """The content fingerprint of feature file ``path`` after checking that it still
    describes ``data_dir`` (FeatureError naming both when not): what a run trains on."""
    path, data_dir = Path(path), Path(data_dir)
    meta = _read_meta(data_dir)
    try:
        with h5py.File(path, "r") as h5:
            stored, known = h5.attrs.get("fingerprint"), _recorded_inputs(h5)
    except Exception as exc:
        raise FeatureError(f"{path}: cannot read feature file: {exc}") from exc
    if not known or stored != fingerprint(data_dir, meta, known):
        raise FeatureError(
            f"{path}: does not hold the features of {data_dir} as it is now (clips, "
            "meta.csv or recipe changed since it was made); re-extract it "
            "(caa features DATA_DIR --force) or omit it to use the dataset's own cache"
        )
    return str(stored)


# -------------------------------------------------------------------------------- extraction


def clip_feature_frames(path: str | os.PathLike[str]) -> int:
    """Feature frames the recipe gives for the clip at ``path``, from its header alone.

    The one place this is worked out (the extraction's error messages and the training's
    cost estimates both use it), so that a clip's length is never turned into frames two
    ways: its sample count resampled to 44.1 kHz, ceil(n * 44100 / sr) as the resampler
    pads or trims to (in integers, so no rounding), then the recipe's
    :func:`~caalib.features.recipe.n_frames` (0 when shorter than one frame). Decodes
    nothing; soundfile's error for an unreadable header propagates.
    """
    import soundfile as sf

    info = sf.info(str(path))
    return n_frames(-(-info.frames * SAMPLE_RATE // info.samplerate))


def dataset_sizes(data_dir: str | os.PathLike[str]) -> tuple[int, int]:
    """(evaluate clips, feature frames per clip) of a dataset, what a plan of runs on it is
    priced at; the frames from its first clip's header (:func:`clip_feature_frames`; at
    least 1), as extraction requires every clip to have that length."""
    from ..datasets import read_dataset

    meta = read_dataset(data_dir)
    frames = clip_feature_frames(Path(data_dir) / meta["filename"].iloc[0])
    return int((meta["split"] == "evaluate").sum()), max(1, frames)


def _raise_odd_length(data_dir: Path, names: Sequence[str],
                      jobs: Sequence[tuple[Path, str]]) -> None:
    """Name the clip whose length differs from most clips' (headers only, error path).

    Without this, an odd *first* clip would make the error blame the next, sound one.
    """
    frames: list[int | None] = []
    for name in names:
        try:
            frames.append(clip_feature_frames(data_dir / name))
        except Exception:  # unreadable headers are reported by read_clip in order
            frames.append(None)
    counts = Counter(f for f in frames if f is not None)
    if not counts:
        return
    common, n_common = counts.most_common(1)[0]
    for name, f, (_, where) in zip(names, frames, jobs, strict=True):
        if f is not None and f != common:
            raise FeatureError(
                f"{data_dir / name}: gives {f} frames but {n_common} of the {len(names)} "
                f"clips give {common} frames; all clips must have the same length ({where})")


def _build(
    tmp: Path,
    data_dir: Path,
    meta: pd.DataFrame,
    *,
    batch_size: int,
    plan: Plan,
    progress: bool,
    resampler: str = DEFAULT_RESAMPLER,
) -> list[str]:
    """Write the feature file to ``tmp``; return the names of silent clips.

    The plan's workers run each clip's pipeline (`caalib.features.pipeline`); this
    process takes the results in meta.csv order, issues each clip's warnings, checks the
    frame counts, runs the batched torch transform when the plan says so, and writes
    ``batch_size`` clips at a time.
    """
    meta_path = data_dir / "meta.csv"
    names = [str(f) for f in meta["filename"]]
    jobs = [(data_dir / f, f"{meta_path} line {no}") for f, no in zip(names, meta["_line"],
                                                                        strict=True)]
    module = LogMel().to(plan.device) if plan.transform == "torch" else None
    meta_bytes = _meta_bytes(data_dir)
    silent: list[str] = []
    digests: list[str] = []
    stats: list[tuple[int, int, int, int]] = []
    first: tuple[str, int, int] | None = None  # name, frames, samples of the first clip
    n = len(names)
    lookahead = batch_size + 2 * plan.workers if module is not None else 4 * plan.workers
    log.info("extracting %d clips: %s", n, plan.describe())
    # the runner first: worker processes fork before the output file is open
    with ClipRunner(plan, resampler, lookahead) as runner, h5py.File(tmp, "w") as h5:
        str_dtype = h5py.string_dtype("utf-8")
        for col in META_COLUMNS:
            h5.create_dataset(col, data=np.array([str(v) for v in meta[col]], dtype=object),
                              dtype=str_dtype)
        dset = None
        bar = tqdm(total=n, unit="clip", desc="log-mel", disable=not progress)
        try:
            batch: list[np.ndarray] = []
            start = 0
            for i, clip in enumerate(runner.results(jobs)):
                for note in clip.warnings:
                    warnings.warn(note, ImplausibleAudioWarning, stacklevel=2)
                digests.append(clip.digest)
                stats.append(clip.stat)
                if first is None:
                    first = (names[i], clip.frames, clip.n_samples)
                elif clip.frames != first[1]:
                    _raise_odd_length(data_dir, names, jobs)
                    raise FeatureError(
                        f"{data_dir / names[i]}: {clip.frames} frames ({clip.n_samples} "
                        f"samples at {SAMPLE_RATE} Hz) but {first[0]} gives {first[1]} "
                        f"frames ({first[2]} samples); all clips must give the same number "
                        f"of frames ({jobs[i][1]})"
                    )
                if clip.silent:
                    silent.append(names[i])
                batch.append(clip.data)
                bar.update(1)
                if len(batch) == batch_size or i == n - 1:
                    if module is None:
                        out = np.stack(batch)
                    else:
                        with torch.inference_mode():
                            out = module(torch.from_numpy(np.stack(batch))).cpu().numpy()
                    if dset is None:
                        dset = h5.create_dataset("feature", shape=(n, first[1], N_MELS),
                                                 dtype=np.float32)
                    dset[start : start + len(batch)] = out
                    start += len(batch)
                    batch = []
        finally:
            bar.close()
        for key, value in recipe(resampler).items():
            h5.attrs[key] = value
        h5.attrs["settings_json"] = settings_json(resampler)
        h5.attrs["fingerprint"] = content_fingerprint(meta_bytes, names, digests)
        h5.create_dataset("input_sha256", data=np.array(digests, dtype=object),
                          dtype=str_dtype)
        h5.create_dataset("input_stat", data=np.array(stats, dtype=np.int64))
        h5["input_stat"].attrs["columns"] = ",".join(STAT_FIELDS)
        h5.attrs["caalib_feature_file"] = 1  # marks files this project wrote
        h5.attrs["caalib_version"] = __version__
        h5.attrs["n_clips"] = n
        h5.attrs["n_frames"] = first[1] if first else 0
        h5.attrs["silent_clips"] = json.dumps(silent)
    return silent


def _warn_silent(silent: Sequence[str], out_path: Path) -> None:
    if not silent:
        return
    shown = ", ".join(silent[:10]) + (f" (+{len(silent) - 10} more)" if len(silent) > 10 else "")
    warnings.warn(
        f"{len(silent)} silent clip(s) (all samples zero) in {out_path}: {shown}",
        SilentClipWarning,
        stacklevel=3,
    )


def extract_features(
    data_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    *,
    batch_size: int = 64,
    workers: int | None = None,
    accelerator: str | torch.device = "cpu",
    progress: bool = True,
    force: bool = False,
    resampler: str = DEFAULT_RESAMPLER,
    transform: str = "auto",
    parallel: str = "auto",
    device: str | torch.device | None = None,
) -> Path:
    """Log-mel features of every clip of ``data_dir``'s meta.csv (in its order) into one HDF5.

    ``workers`` (default: the usable CPUs) each run a clip's whole pipeline: digest,
    decode and check, mono, resampling with ``resampler`` (``kaiser_best`` as released, or
    ``soxr_hq``) and, with ``transform="numpy"``, the float64 STFT + mel, bit for bit
    `reference_logmel`; with ``transform="torch"`` this process runs the STFT + mel in
    float64 torch batches of ``batch_size`` on ``accelerator`` (the torch device).
    ``auto`` picks ``numpy`` on the CPU and ``torch`` on CUDA; ``parallel`` (``auto`` =
    ``threads``, or ``processes``) picks the kind of worker (see
    `caalib.features.pipeline.plan`). Every choice gives the same numbers. An existing
    file made from the same inputs with the same recipe is reused unless ``force``.
    Silent clips raise a `SilentClipWarning`; everything unusable raises `FeatureError`
    naming the file and its meta.csv line. ``device`` is the deprecated name of
    ``accelerator`` (kept for one release; it warns).
    """
    if device is not None:
        warnings.warn("extract_features(device=...) is deprecated: the torch device is "
                      "called accelerator, use extract_features(accelerator=...)",
                      DeprecationWarning, stacklevel=2)
        accelerator = device
    data_dir = Path(data_dir)
    check_resampler(resampler)
    out = (Path(out_path) if out_path is not None
           else default_feature_path(data_dir, resampler))
    if batch_size < 1:
        raise FeatureError(f"batch_size must be at least 1, got {batch_size}")
    dev = resolve_torch_device(accelerator, field="accelerator", error=FeatureError)
    how = plan(str(dev), transform, parallel, workers)
    if not data_dir.is_dir():
        raise FeatureError(f"{data_dir}: dataset directory does not exist")
    meta = _read_meta(data_dir)
    _check_output(out)
    _remove_stale_temps(out)
    if not force and _cache_is_current(out, data_dir, meta, settings_json(resampler)):
        msg = f"reusing {out}: inputs and recipe unchanged"
        log.info(msg)
        if progress:  # information, not a warning: stdout (notebooks show stderr in red)
            print(msg, file=sys.stdout)
        with h5py.File(out, "r") as h5:
            _warn_silent(json.loads(h5.attrs.get("silent_clips", "[]")), out)
        return out
    try:
        with atomic_path(out) as tmp:
            silent = _build(tmp, data_dir, meta, batch_size=batch_size, plan=how,
                            progress=progress, resampler=resampler)
    except OSError as exc:
        raise FeatureError(f"{out}: cannot write feature file: {exc}") from exc
    log.info("wrote %s (%d clips)", out, len(meta))
    _warn_silent(silent, out)
    return out


# ----------------------------------------------------------------------------------- loading


def load_features(path: str | os.PathLike[str]) -> FeatureSet:
    """Read a file written by `extract_features`; FeatureError naming it if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FeatureError(f"{path}: feature file does not exist (run `caa features DATA_DIR`)")
    try:
        with h5py.File(path, "r") as h5:
            missing = [k for k in ("feature", *META_COLUMNS) if k not in h5]
            if missing:
                raise FeatureError(
                    f"{path}: not a feature file (missing dataset(s) {', '.join(missing)})"
                )
            feature = h5["feature"][()]
            meta = pd.DataFrame({col: h5[col].asstr()[()] for col in META_COLUMNS})
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in h5.attrs.items()}
    except FeatureError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError on damaged files
        raise FeatureError(f"{path}: cannot read feature file: {exc}") from exc
    if feature.ndim != 3 or feature.shape[2] != N_MELS or feature.dtype != np.float32:
        raise FeatureError(
            f"{path}: 'feature' is {feature.dtype} {feature.shape}, expected float32 "
            f"(N, T, {N_MELS})"
        )
    if len(meta) != feature.shape[0]:
        raise FeatureError(
            f"{path}: {feature.shape[0]} feature rows but {len(meta)} file names"
        )
    return FeatureSet(feature=feature, meta=meta, attrs=attrs)
