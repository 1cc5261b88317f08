"""Sizes of the synthetic datasets.

The profiles trade realism for speed: ``tiny`` feeds the test suite, ``demo`` the
headless study on two CPU cores, ``full`` mirrors the clip counts of the real DCASE
development sets so that every code path meets real-sized data.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SynthProfile:
    """How many clips of which length a synthetic dataset holds.

    Counts are totals over the ten scenes and are spread as evenly as possible over
    them, so the ``full`` profile can hit the real (uneven) DCASE totals exactly.
    ``clips_per_location`` sets how many consecutive segments one recording location
    contributes; the train/evaluate split is drawn by location.
    """

    name: str
    clip_seconds: float
    train_a: int
    evaluate_a: int
    train_bc: int
    evaluate_bc: int
    clips_per_location: int
    no_split_a: int = 0
    a_channels: int = 2
    a_subtype: str = "PCM_24"
    workers: int = 1

    def counts(self, layout: str) -> dict[str, int]:
        """Clip counts for ``layout`` (the 2019 layout may add clips in no split)."""
        return {
            "train_a": self.train_a,
            "evaluate_a": self.evaluate_a,
            "train_bc": self.train_bc,
            "evaluate_bc": self.evaluate_bc,
            "no_split_a": self.no_split_a if layout == "dcase2019" else 0,
        }


@dataclass(frozen=True)
class LayoutCounts:
    """Real DCASE totals that replace a profile's counts in the ``full`` profile."""

    train_a: int
    evaluate_a: int
    train_bc: int
    evaluate_bc: int
    no_split_a: int


#: The real development-set counts (study notes section 4).
REAL_COUNTS: dict[str, LayoutCounts] = {
    "dcase2018": LayoutCounts(6122, 2518, 540, 180, 0),
    "dcase2019": LayoutCounts(9185, 4185, 540, 540, 1030),
}

SYNTH_PROFILES: dict[str, SynthProfile] = {
    "tiny": SynthProfile(
        "tiny", clip_seconds=2.0, train_a=60, evaluate_a=30, train_bc=20, evaluate_bc=10,
        clips_per_location=3, no_split_a=5, a_channels=2, a_subtype="PCM_24", workers=1,
    ),
    "demo": SynthProfile(
        "demo", clip_seconds=4.0, train_a=360, evaluate_a=180, train_bc=120,
        evaluate_bc=60, clips_per_location=6, no_split_a=10, a_channels=1,
        a_subtype="PCM_16", workers=2,
    ),
    "full": SynthProfile(
        "full", clip_seconds=10.0, train_a=6122, evaluate_a=2518, train_bc=540,
        evaluate_bc=180, clips_per_location=12, no_split_a=0, a_channels=2,
        a_subtype="PCM_24", workers=2,
    ),
}


def profile_counts(profile: SynthProfile, layout: str) -> dict[str, int]:
    """The counts to synthesise: the real totals for ``full``, the profile's otherwise."""
    if profile.name == "full":
        real = REAL_COUNTS[layout]
        return {
            "train_a": real.train_a,
            "evaluate_a": real.evaluate_a,
            "train_bc": real.train_bc,
            "evaluate_bc": real.evaluate_bc,
            "no_split_a": real.no_split_a,
        }
    return profile.counts(layout)
