"""The plan of a synthetic dataset: which clips exist, their names and their splits.

Naming and numbering follow the real DCASE development sets: files are
``audio/<scene>-<city>-<location>-<segment>-<device>.wav``, location and segment numbers
count up per city across all scenes, the identifier is ``<city>-<location>``, and B/C
clips are parallel recordings of chosen device-A segments. Splits are drawn by location
so no place is heard in both training and evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import SCENES
from .profiles import SynthProfile, profile_counts

CITIES: dict[str, tuple[str, ...]] = {
    "dcase2018": ("barcelona", "helsinki", "london", "paris", "stockholm", "vienna"),
    "dcase2019": ("barcelona", "helsinki", "lisbon", "london", "lyon", "paris", "prague",
                  "stockholm", "vienna"),
}
CITIES["dcase2020"] = CITIES["dcase2019"]
#: The devices that record parallel twins of chosen device-A segments, per layout and
#: split: B and C; on the 2020 layout also S1-S3, and S4-S6 in the evaluate split only.
TWIN_DEVICES: dict[str, dict[str, tuple[str, ...]]] = {
    "dcase2018": {"train": ("b", "c"), "evaluate": ("b", "c")},
    "dcase2019": {"train": ("b", "c"), "evaluate": ("b", "c")},
    "dcase2020": {"train": ("b", "c", "s1", "s2", "s3"),
                  "evaluate": ("b", "c", "s1", "s2", "s3", "s4", "s5", "s6")},
}
#: The 2019 set holds clips from a city in neither split (Milan in the real set).
NO_SPLIT_CITY = "milan"


@dataclass(frozen=True)
class Clip:
    scene: str
    city: str
    location: int
    segment: int
    device: str
    split: str  # "train", "evaluate" or "" (in no split)

    @property
    def identifier(self) -> str:
        return f"{self.city}-{self.location}"

    @property
    def filename(self) -> str:
        return f"audio/{self.scene}-{self.city}-{self.location}-{self.segment}-{self.device}.wav"


def spread(total: int, k: int) -> list[int]:
    """``total`` split into ``k`` near-equal integer parts (earlier parts get the extra)."""
    base, extra = divmod(total, k)
    return [base + (i < extra) for i in range(k)]


def plan_clips(profile: SynthProfile, layout: str, seed: int) -> list[Clip]:
    """Every clip of the dataset, A clips first then their B and C twins."""
    if layout not in CITIES:
        raise ValueError(f"unknown layout {layout!r}")
    counts = profile_counts(profile, layout)
    rng = np.random.default_rng([seed, 7919])
    cities = CITIES[layout]
    next_loc = {c: 0 for c in (*cities, NO_SPLIT_CITY)}
    next_seg = {c: 0 for c in (*cities, NO_SPLIT_CITY)}
    per = {key: spread(counts[key], len(SCENES)) for key in counts}
    clips: list[Clip] = []
    twins: list[Clip] = []
    for si, scene in enumerate(SCENES):
        # locations of this scene: (split, city, n_clips), in a shuffled recording order
        locs: list[tuple[str, str]] = []
        sizes: list[int] = []
        for split, key in (("train", "train_a"), ("evaluate", "evaluate_a")):
            n = per[key][si]
            n_locs = max(1, int(np.ceil(n / profile.clips_per_location))) if n else 0
            sizes += spread(n, n_locs) if n_locs else []
            locs += [(split, "")] * n_locs
        city_cycle = list(rng.permutation(cities))
        locs = [(split, str(city_cycle[i % len(cities)])) for i, (split, _) in enumerate(locs)]
        if per["no_split_a"][si]:
            locs.append(("", NO_SPLIT_CITY))
            sizes.append(per["no_split_a"][si])
        order = rng.permutation(len(locs))
        by_split: dict[str, list[Clip]] = {"train": [], "evaluate": [], "": []}
        for i in order:
            split, city = locs[i]
            loc = next_loc[city]
            next_loc[city] += 1
            for _ in range(sizes[i]):
                clip = Clip(scene, city, loc, next_seg[city], "a", split)
                next_seg[city] += 1
                by_split[split].append(clip)
                clips.append(clip)
        for split, key in (("train", "train_bc"), ("evaluate", "evaluate_bc")):
            pool, n_bc = by_split[split], per[key][si]
            if n_bc > len(pool):
                raise ValueError(f"{profile.name}: {n_bc} B/C clips but {len(pool)} A clips")
            for j in sorted(rng.choice(len(pool), n_bc, replace=False)):
                a = pool[j]
                twins += [Clip(a.scene, a.city, a.location, a.segment, d, split)
                          for d in TWIN_DEVICES[layout][split]]
    return clips + twins


def write_metadata(root: Path, clips: list[Clip], layout: str) -> None:
    """meta.csv and evaluation_setup/ fold files in the real layout of ``layout``."""
    ordered = sorted(clips, key=lambda c: c.filename)
    lines = ["filename\tscene_label\tidentifier\tsource_label"]
    lines += [f"{c.filename}\t{c.scene}\t{c.identifier}\t{c.device}" for c in ordered]
    (root / "meta.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    setup = root / "evaluation_setup"
    setup.mkdir(exist_ok=True)
    for split in ("train", "evaluate"):
        rows = [c for c in ordered if c.split == split]
        if layout == "dcase2018":
            text = "".join(f"{c.filename}\t{c.scene}\n" for c in rows)
            (setup / f"fold1_{split}.txt").write_text(text, encoding="utf-8")
        else:
            text = "filename\tscene_label\n" + "".join(f"{c.filename}\t{c.scene}\n" for c in rows)
            (setup / f"fold1_{split}.csv").write_text(text, encoding="utf-8")
    test_rows = [c for c in ordered if c.split == "evaluate"]
    if layout == "dcase2018":
        (setup / "fold1_test.txt").write_text("".join(f"{c.filename}\n" for c in test_rows),
                                              encoding="utf-8")
    else:
        (setup / "fold1_test.csv").write_text(
            "filename\n" + "".join(f"{c.filename}\n" for c in test_rows), encoding="utf-8")
