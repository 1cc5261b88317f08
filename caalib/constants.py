"""Vocabulary shared by every layer: scene labels, devices and the feature rate.

The orders below fix the integer index of each scene and device everywhere in the
study (features, models, predictions, tables), so a class index means the same thing
in a checkpoint, a CSV and a figure.
"""

from __future__ import annotations

SCENES: tuple[str, ...] = (
    "airport",
    "bus",
    "metro",
    "metro_station",
    "park",
    "public_square",
    "shopping_mall",
    "street_pedestrian",
    "street_traffic",
    "tram",
)

#: Scene names as the paper spells them in its text and figures.
SCENE_TITLES: dict[str, str] = {
    "airport": "Airport",
    "bus": "Bus",
    "metro": "Metro",
    "metro_station": "Metro station",
    "park": "Park",
    "public_square": "Public square",
    "shopping_mall": "Shopping mall",
    "street_pedestrian": "Street pedestrian",
    "street_traffic": "Street traffic",
    "tram": "Tram",
}

DEVICES: tuple[str, ...] = ("a", "b", "c")
#: The simulated devices of TAU Urban Acoustic Scenes 2020 Mobile (device-A audio passed
#: through other devices' responses); S4-S6 appear only in its evaluate split.
SIMULATED_DEVICES: tuple[str, ...] = ("s1", "s2", "s3", "s4", "s5", "s6")
#: Every device a dataset may hold, in index order: the paper's three keep indices 0-2.
ALL_DEVICES: tuple[str, ...] = (*DEVICES, *SIMULATED_DEVICES)

DATASETS: tuple[str, ...] = ("dcase2018", "dcase2019", "dcase2020")
#: The devices each dataset's training split holds: what a model has a slot for (its
#: CNN-d classes, its conditioning one-hot). A device outside these is unseen.
TRAIN_DEVICES: dict[str, tuple[str, ...]] = {
    "dcase2018": DEVICES,
    "dcase2019": DEVICES,
    "dcase2020": (*DEVICES, "s1", "s2", "s3"),
}
#: The devices each dataset's evaluate split holds.
EVAL_DEVICES: dict[str, tuple[str, ...]] = {
    "dcase2018": DEVICES,
    "dcase2019": DEVICES,
    "dcase2020": ALL_DEVICES,
}

#: Where a stage computes (the torch device): ``auto`` picks CUDA when present.
ACCELERATORS: tuple[str, ...] = ("auto", "cpu", "cuda")

#: Every clip is resampled to this rate before the STFT (study notes section 1).
FEATURE_SAMPLE_RATE = 44_100

SCENE_INDEX: dict[str, int] = {s: i for i, s in enumerate(SCENES)}
DEVICE_INDEX: dict[str, int] = {d: i for i, d in enumerate(ALL_DEVICES)}

#: Table I's best conditioned layer per (topology, pooling): the layer the paper's
#: Tables II and III condition (study notes section 5). One copy for the whole study.
PAPER_BEST_LAYERS: dict[tuple[str, str], int] = {
    ("pool", "flatten"): 1, ("pool", "max"): 2, ("pool", "avg"): 4, ("pool", "att"): 3,
    ("nopool", "max"): 2, ("nopool", "avg"): 1, ("nopool", "roi"): 1, ("nopool", "att"): 1,
    ("nopool", "roi+att"): 1,
    ("atrous", "max"): 2, ("atrous", "avg"): 3, ("atrous", "roi"): 3, ("atrous", "att"): 4,
    ("atrous", "roi+att"): 3,
}
