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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from ..atomic import atomic_dir, write_json
from ..constants import DATASETS, SCENES
from ..errors import ConfigError, DatasetError
from .devices import record
from .layout import CITIES, NO_SPLIT_CITY, Clip, plan_clips, write_metadata
from .profiles import SYNTH_PROFILES, SynthProfile, profile_counts
from .scenes import draw_location, render_scene

__all__ = ["SYNTH_PROFILES", "SynthProfile", "synthesize", "existing_matches", "SYNTH_VERSION"]

#: Bumped whenever the generator's output changes, so --skip-existing regenerates.
SYNTH_VERSION = 1

_ALL_CITIES = sorted({*CITIES["dcase2018"], *CITIES["dcase2019"], NO_SPLIT_CITY})
SETTINGS_FILE = "synth.json"


def _settings(profile: str, layout: str, seed: int) -> dict[str, object]:
    return {"generator": "caalib.synth", "version": SYNTH_VERSION, "profile": profile,
            "layout": layout, "seed": seed}


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
                     layout: str = "dcase2018", seed: int = 0) -> bool:
    """True when ``out_dir`` holds a complete dataset synthesised with these settings."""
    out = Path(out_dir)
    try:
        recorded = json.loads((out / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    want = _settings(profile, layout, seed)
    if any(recorded.get(k) != v for k, v in want.items()):
        return False
    from ..datasets import read_dataset

    try:
        df = read_dataset(out)
    except DatasetError:
        return False
    return len(df) == recorded.get("clips")


def _group_seed(seed: int, clip: Clip, *tag: int) -> np.random.Generator:
    key = [seed, *tag, SCENES.index(clip.scene), _ALL_CITIES.index(clip.city), clip.location]
    return np.random.default_rng(key)


def _render_group(root: str, group: list[Clip], seed: int, seconds: float,
                  a_channels: int, a_subtype: str) -> int:
    """Render one scene segment and write every device's recording of it."""
    a = group[0]
    traits = draw_location(a.scene, _group_seed(seed, a, 1))
    rng = _group_seed(seed, a, 2, a.segment)
    n = int(round(seconds * 48_000))
    x = render_scene(a.scene, traits, rng, n, 48_000)
    for clip in group:
        dev_rng = np.random.default_rng([seed, 3, a.segment, _ALL_CITIES.index(a.city),
                                         "abc".index(clip.device)])
        audio, sr = record(x, clip.device, dev_rng, a_channels)
        subtype = a_subtype if clip.device == "a" else "PCM_16"
        sf.write(os.path.join(root, clip.filename), audio.astype(np.float32), sr,
                 subtype=subtype, format="WAV")
    return len(group)


def _groups(clips: list[Clip]) -> list[list[Clip]]:
    """Each device-A clip with its parallel B/C recordings (they share one scene signal)."""
    by_key: dict[tuple[str, str, int, int], list[Clip]] = {}
    for c in clips:
        by_key.setdefault((c.scene, c.city, c.location, c.segment), []).append(c)
    return [sorted(g, key=lambda c: c.device) for g in by_key.values()]


def synthesize(out_dir: str | os.PathLike[str], profile: str | SynthProfile = "tiny",
               layout: str = "dcase2018", seed: int = 0, progress: bool = True,
               workers: int | None = None) -> Path:
    """Write a synthetic dataset to ``out_dir`` (which must not exist or be empty).

    The dataset is built in a temporary directory beside ``out_dir`` and moved into
    place only when complete, so an interrupted run leaves nothing behind.
    ``workers`` overrides the profile's process count (1 renders in-process).
    ``profile`` names one of ``SYNTH_PROFILES`` or is a :class:`SynthProfile` of
    another size (``caa bench`` times feature extraction on one).
    """
    prof = _validate(profile, layout, seed)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out}: already exists and is not empty; remove it or choose "
                           "another directory")
    clips = plan_clips(prof, layout, int(seed))
    groups = _groups(clips)
    n_workers = prof.workers if workers is None else max(1, int(workers))
    n_workers = min(n_workers, os.cpu_count() or 1)
    args = (int(seed), prof.clip_seconds, prof.a_channels, prof.a_subtype)
    with atomic_dir(out) as tmp:
        (tmp / "audio").mkdir()
        bar = tqdm(total=len(clips), desc=f"synth {prof.name}/{layout}", unit="clip",
                   disable=not progress)
        try:
            if n_workers <= 1:
                for g in groups:
                    bar.update(_render_group(str(tmp), g, *args))
            else:
                with ProcessPoolExecutor(max_workers=n_workers) as pool:
                    futures = [pool.submit(_render_group, str(tmp), g, *args) for g in groups]
                    for fut in futures:
                        bar.update(fut.result())
        finally:
            bar.close()
        write_metadata(tmp, clips, layout)
        settings = _settings(prof.name, layout, int(seed))
        settings.update(clips=len(clips), counts=profile_counts(prof, layout),
                        profile_settings=asdict(prof))
        write_json(tmp / SETTINGS_FILE, settings)
    return out
