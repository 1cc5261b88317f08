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
    contributes; the train/evaluate split is drawn by location. ``shift`` is the
    device-shift strength the phones record with (0: only 44.1 kHz and mono set them
    apart from device A; 1: the designed phones; above 1: further; docs/simulation.md).
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
    shift: float = 1.0

    def counts(self, layout: str) -> dict[str, int]:
        """Clip counts for ``layout`` (the 2019 layout may add clips in no split).

        ``*_bc`` count each twin device's clips (B and C; on the 2020 layout S1-S6 too).
        The 2020 evaluate split holds as many A clips as of every other device (the real
        set's 330 each), so its ``evaluate_a`` is ``evaluate_bc``."""
        return {
            "train_a": self.train_a,
            "evaluate_a": self.evaluate_bc if layout == "dcase2020" else self.evaluate_a,
            "train_bc": self.train_bc,
            "evaluate_bc": self.evaluate_bc,
            "no_split_a": self.no_split_a if layout in ("dcase2019", "dcase2020") else 0,
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
    # TAU 2020 Mobile: train A 10,215, B 749, C 748, S1-S3 750 each; evaluate 330 of each
    # of the nine devices; 3,855 A clips in neither split (the twin devices' counts are
    # one number here, so B and C get 750, one or two more than the real set)
    "dcase2020": LayoutCounts(10215, 330, 750, 330, 3855),
}

#: The simulation profiles' device shift: where a model trained on device A alone loses
#: at least 15 points on B and C (measured, docs/simulation.md).
SIM_SHIFT = 1.5

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
    # The controlled simulation for the claims ledger (docs/simulation.md): the real 2018
    # set's structure (A about 11x B and C in training, parallel twins, location splits),
    # short clips, evaluate splits sized for the ledger's power, a stronger device shift.
    "sim-tiny": SynthProfile(
        "sim-tiny", clip_seconds=0.5, train_a=110, evaluate_a=20, train_bc=10,
        evaluate_bc=20, clips_per_location=5, a_channels=1, a_subtype="PCM_16",
        workers=1, shift=SIM_SHIFT,
    ),
    "sim-demo": SynthProfile(
        "sim-demo", clip_seconds=2.0, train_a=1100, evaluate_a=300, train_bc=100,
        evaluate_bc=300, clips_per_location=10, a_channels=1, a_subtype="PCM_16",
        workers=2, shift=SIM_SHIFT,
    ),
    "sim-gpu": SynthProfile(
        "sim-gpu", clip_seconds=2.0, train_a=3300, evaluate_a=1000, train_bc=300,
        evaluate_bc=1000, clips_per_location=10, a_channels=1, a_subtype="PCM_16",
        workers=16, shift=SIM_SHIFT,
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
