"""Synthetic multi-device acoustic scene datasets in the real DCASE on-disk layout.

The study has to run end to end without the (large, licensed) DCASE sets, so this
package simulates them: procedural scenes (``scenes``) built from real-world sound
components (``sources``), recorded in parallel by three simulated devices
(``devices``), named, numbered and split like the real sets (``layout``). Everything
is deterministic by seed: the same seed gives byte-identical WAV files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy import signal
from tqdm.auto import tqdm

from ..atomic import atomic_dir, write_json
from ..constants import ALL_DEVICES, DATASETS, SCENES
from ..errors import ConfigError, DatasetError
from .devices import record
from .evidence import (
    EVIDENCE_FILE,
    EVIDENCE_VERSION,
    device_masks,
    evidence_version,
    scene_masks,
    write_evidence,
)
from .layout import CITIES, NO_SPLIT_CITY, Clip, plan_clips, write_metadata
from .profiles import SYNTH_PROFILES, SynthProfile, profile_counts
from .scenes import draw_location, render_scene_parts

__all__ = ["SYNTH_PROFILES", "SYNTH_VERSION", "SynthProfile", "ensure_synthesized",
           "existing_matches", "refresh_evidence", "synthesize"]

#: Bumped whenever the generator's output changes, so --skip-existing regenerates.
SYNTH_VERSION = 1

_ALL_CITIES = sorted({*CITIES["dcase2018"], *CITIES["dcase2019"], NO_SPLIT_CITY})
SETTINGS_FILE = "synth.json"


def _settings(profile: str, layout: str, seed: int, shift: float = 1.0) -> dict[str, object]:
    return {"generator": "caalib.synth", "version": SYNTH_VERSION, "profile": profile,
            "layout": layout, "seed": seed, "shift": float(shift)}


def _shift(prof: SynthProfile, shift: float | None) -> float:
    """The device-shift strength to render with: ``shift``, else the profile's."""
    value = prof.shift if shift is None else shift
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating) \
            or not np.isfinite(value) or value < 0:
        raise ConfigError(f"shift must be a finite number >= 0, got {value!r}")
    return float(value)


def _validate(profile: str | SynthProfile, layout: str, seed: int) -> SynthProfile:
    if isinstance(profile, SynthProfile):
        prof = profile
    elif profile not in SYNTH_PROFILES:
        raise ConfigError(f"unknown synth profile {profile!r} (choose from "
                          f"{', '.join(SYNTH_PROFILES)})")
    else:
        prof = SYNTH_PROFILES[profile]
    if layout not in DATASETS:
        raise ConfigError(f"unknown layout {layout!r} (choose from {', '.join(DATASETS)})")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return prof


def existing_matches(out_dir: str | os.PathLike[str], profile: str = "tiny",
                     layout: str = "dcase2018", seed: int = 0,
                     shift: float | None = None) -> bool:
    """True when ``out_dir`` holds a complete dataset synthesised with these settings
    (``shift`` None: the profile's own; a synth.json without one was made at 1)."""
    # a dataset whose evidence masks are missing or of an older definition is not this
    # dataset yet (ensure_synthesized rewrites them; the audio is unchanged)
    out = Path(out_dir)
    return _audio_matches(out, profile, layout, seed, shift) \
        and evidence_version(out) == EVIDENCE_VERSION


def _audio_matches(out: Path, profile: str, layout: str, seed: int,
                   shift: float | None) -> bool:
    """The audio and tables are this dataset's, whatever its evidence masks are."""
    try:
        recorded = json.loads((out / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    prof = SYNTH_PROFILES.get(profile)
    if not isinstance(recorded, dict) or prof is None:
        return False
    recorded.setdefault("shift", 1.0)
    want = _settings(profile, layout, seed, _shift(prof, shift))
    if any(recorded.get(k) != v for k, v in want.items()):
        return False
    from ..datasets import read_dataset

    try:
        return len(read_dataset(out)) == recorded.get("clips")
    except DatasetError:
        return False


def ensure_synthesized(out_dir: str | os.PathLike[str], profile: str = "tiny",
                       layout: str = "dcase2018", seed: int = 0, shift: float | None = None,
                       progress: bool = True, workers: int | None = None
                       ) -> tuple[Path, str]:
    """``out_dir`` holding this dataset, and what it took: ``reused``, ``refreshed`` (only
    the evidence masks rewritten: missing, or made by an older definition; the audio is
    the same by construction) or ``synthesised``. Another dataset there is a
    DatasetError saying what it holds."""
    out = Path(out_dir)
    if existing_matches(out, profile, layout, seed, shift):
        return out, "reused"
    if _audio_matches(out, profile, layout, seed, shift):
        refresh_evidence(out, profile, layout, seed, shift, progress, workers)
        return out, "refreshed"
    if out.is_dir() and any(out.iterdir()):
        try:
            old = json.loads((out / SETTINGS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        held = "no synth.json (not a synthetic dataset, or an incomplete one)" \
            if not isinstance(old, dict) else (
                f"a dataset synthesised with profile {old.get('profile')}, layout "
                f"{old.get('layout')}, seed {old.get('seed')}, shift {old.get('shift', 1.0)} "
                f"(generator version {old.get('version')}), or an incomplete one")
        want = _shift(_validate(profile, layout, seed), shift)
        raise DatasetError(f"{out}: not empty; it holds {held}, not profile {profile}, layout "
                           f"{layout}, seed {seed}, shift {want:g}; remove it or choose "
                           "another directory")
    return synthesize(out, profile=profile, layout=layout, seed=seed, progress=progress,
                      workers=workers, shift=shift), "synthesised"


def _group_seed(seed: int, clip: Clip, *tag: int) -> np.random.Generator:
    key = [seed, *tag, SCENES.index(clip.scene), _ALL_CITIES.index(clip.city), clip.location]
    return np.random.default_rng(key)


def _scene_of(group: list[Clip], seed: int, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """The scene signal of a group (what every device records) and its scene-specific part."""
    a = group[0]
    traits = draw_location(a.scene, _group_seed(seed, a, 1))
    rng = _group_seed(seed, a, 2, a.segment)
    return render_scene_parts(a.scene, traits, rng, int(round(seconds * 48_000)), 48_000)


def _group_masks(group: list[Clip], seed: int, seconds: float, shift: float = 1.0
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each clip's evidence masks by filename, without recording anything."""
    scene_mask, shared_mask = scene_masks(*_scene_of(group, seed, seconds))
    return {c.filename: device_masks(c.device, scene_mask, shared_mask, shift) for c in group}


def _render_group(root: str, group: list[Clip], seed: int, seconds: float,
                  a_channels: int, a_subtype: str, phone_subtype: str = "PCM_16",
                  a_rate: int = 48_000, shift: float = 1.0,
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Render one scene segment and write every device's recording of it; returns each
    clip's evidence masks (``evidence.device_masks``) by filename."""
    a = group[0]
    x, part = _scene_of(group, seed, seconds)
    scene_mask, shared_mask = scene_masks(x, part)
    for clip in group:
        dev_rng = np.random.default_rng([seed, 3, a.segment, _ALL_CITIES.index(a.city),
                                         ALL_DEVICES.index(clip.device)])
        audio, sr = record(x, clip.device, dev_rng, a_channels, shift)
        if clip.device == "a" and a_rate != sr:  # the 2020 set: device A at 44.1 kHz
            audio, sr = signal.resample_poly(audio, a_rate, sr, axis=0), a_rate
        subtype = a_subtype if clip.device == "a" else phone_subtype
        sf.write(os.path.join(root, clip.filename), audio.astype(np.float32), sr,
                 subtype=subtype, format="WAV")
    return {c.filename: device_masks(c.device, scene_mask, shared_mask, shift) for c in group}


def _groups(clips: list[Clip]) -> list[list[Clip]]:
    """Each device-A clip with its parallel B/C recordings (they share one scene signal)."""
    by_key: dict[tuple[str, str, int, int], list[Clip]] = {}
    for c in clips:
        by_key.setdefault((c.scene, c.city, c.location, c.segment), []).append(c)
    return [sorted(g, key=lambda c: c.device) for g in by_key.values()]


def _workers(prof: SynthProfile, workers: int | None) -> int:
    """Processes to render with: ``workers``, else the profile's, at most the CPUs here."""
    n = prof.workers if workers is None else max(1, int(workers))
    return min(n, os.cpu_count() or 1)


def _each_group(fn: Callable[[list[Clip]], dict[str, tuple[np.ndarray, np.ndarray]]],
                groups: list[list[Clip]], n_workers: int, desc: str, progress: bool
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``fn`` over every group (in-process for one worker), its masks merged in group
    order, with a progress bar counting clips."""
    masks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with tqdm(total=sum(len(g) for g in groups), desc=desc, unit="clip",
              disable=not progress) as bar:
        if n_workers <= 1:
            for g in groups:
                masks.update(fn(g))
                bar.update(len(g))
        else:
            with ProcessPoolExecutor(max_workers=n_workers) as pool:
                futures = [pool.submit(fn, g) for g in groups]
                for g, fut in zip(groups, futures, strict=True):
                    masks.update(fut.result())
                    bar.update(len(g))
    return masks


def refresh_evidence(out_dir: str | os.PathLike[str], profile: str, layout: str = "dcase2018",
                     seed: int = 0, shift: float | None = None, progress: bool = True,
                     workers: int | None = None) -> Path:
    """Rewrite ``evidence.npz`` of a dataset synthesised with these settings (masks of the
    current definition, ``EVIDENCE_VERSION``): the scene signals are rendered again from
    the seed, nothing is recorded, and the audio stays as it is."""
    prof = _validate(profile, layout, seed)
    prof = replace(prof, shift=_shift(prof, shift))
    out = Path(out_dir)
    clips = plan_clips(prof, layout, int(seed))
    # the plan must be the one the audio was made from: same profile sizes, same files
    try:
        recorded = json.loads((out / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if not isinstance(recorded, dict) or recorded.get("profile_settings") != asdict(prof):
        raise DatasetError(f"{out / SETTINGS_FILE}: its profile_settings are not profile "
                           f"{prof.name}'s as defined now; its evidence masks cannot be "
                           "rewritten: synthesise the dataset again")
    from ..datasets import read_dataset

    if sorted(read_dataset(out)["filename"]) != sorted(c.filename for c in clips):
        raise DatasetError(f"{out / 'meta.csv'}: its clips are not the ones profile "
                           f"{prof.name} plans now; its evidence masks cannot be rewritten: "
                           "synthesise the dataset again")
    masks = _each_group(partial(_group_masks, seed=int(seed), seconds=prof.clip_seconds,
                                shift=prof.shift), _groups(clips), _workers(prof, workers),
                        f"evidence {prof.name}/{layout}", progress)
    return write_evidence(out / EVIDENCE_FILE, masks)


def synthesize(out_dir: str | os.PathLike[str], profile: str | SynthProfile = "tiny",
               layout: str = "dcase2018", seed: int = 0, progress: bool = True,
               workers: int | None = None, shift: float | None = None) -> Path:
    """Write a synthetic dataset to ``out_dir`` (which must not exist or be empty).

    The dataset is built in a temporary directory beside ``out_dir`` and moved into
    place only when complete, so an interrupted run leaves nothing behind.
    ``workers`` overrides the profile's process count (1 renders in-process).
    ``profile`` names one of ``SYNTH_PROFILES`` or is a :class:`SynthProfile` of
    another size (``caa bench`` times feature extraction on one). ``shift`` overrides
    the profile's device-shift strength (``SynthProfile.shift``, docs/simulation.md).
    """
    prof = _validate(profile, layout, seed)
    prof = replace(prof, shift=_shift(prof, shift))
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out}: already exists and is not empty; remove it or choose "
                           "another directory")
    clips = plan_clips(prof, layout, int(seed))
    groups = _groups(clips)
    formats: dict[str, Any] = dict(a_channels=prof.a_channels, a_subtype=prof.a_subtype)
    if layout == "dcase2020":  # TAU 2020 Mobile: every clip 44.1 kHz, mono, 24 bit
        formats = dict(a_channels=1, a_subtype="PCM_24", phone_subtype="PCM_24",
                       a_rate=44_100)
    with atomic_dir(out) as tmp:
        (tmp / "audio").mkdir()
        masks = _each_group(partial(_render_group, str(tmp), seed=int(seed),
                                    seconds=prof.clip_seconds, shift=prof.shift, **formats),
                            groups, _workers(prof, workers), f"synth {prof.name}/{layout}",
                            progress)
        write_evidence(tmp / EVIDENCE_FILE, masks)
        write_metadata(tmp, clips, layout)
        settings = _settings(prof.name, layout, int(seed), prof.shift)
        settings.update(clips=len(clips), counts=profile_counts(prof, layout),
                        profile_settings=asdict(prof))
        write_json(tmp / SETTINGS_FILE, settings)
    return out
