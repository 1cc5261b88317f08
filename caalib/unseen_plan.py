"""The runs of the unseen-device comparison and the one call that trains and tables them.

The question (docs/unseen-devices.md, "The comparison"): on a dataset with devices seen
only in evaluation (the 2020 layout), how do CAA-Net's conditioned strategies, under
each unseen-device policy, stand against joint training with each of the model-agnostic
augmentations, on the seen devices and on the unseen ones? One model, the paper's
CAA-Net (atrous + attention, conditioned at its Table I layer), so every difference is
the method's:

- joint training (no conditioning, no augmentation): the baseline;
- teacher forcing and multi-task, each under every ``unseen_source`` policy;
- joint training plus each augmentation alone.

Runs go through :func:`caalib.training.sweep.run_sweep` into ``<results>/runs/``
(finished runs are skipped, partial ones resume); the table and figure come from
:func:`caalib.results.unseen.write_comparison` and go to ``<results>/unseen/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .constants import PAPER_BEST_LAYERS
from .errors import ConfigError
from .spec import AUGMENTATIONS, CONDITIONED_STRATEGIES, UNSEEN_SOURCE_POLICIES

#: The dataset whose evaluate split holds devices the training split lacks.
DATASET = "dcase2020"
#: The paper's CAA-Net.
MODEL: tuple[str, str] = ("atrous", "att")
#: Where the table and the figure go, under the results directory.
OUT_NAME = "unseen"
_BASELINE = "joint"


@dataclass(frozen=True)
class UnseenProfile:
    """One size of the comparison: the training profile, its default seed count and
    the TrainConfig fields changed for every run."""

    train: str
    seeds: int
    overrides: dict[str, Any] = field(default_factory=dict)


UNSEEN_PROFILES: dict[str, UnseenProfile] = {
    "tiny": UnseenProfile("tiny", 1, {"iterations": 10, "eval_every": 10,
                                      "checkpoint_every": 10}),
    "demo": UnseenProfile("demo", 3),
    "paper": UnseenProfile("paper", 3),
}


def methods() -> list[tuple[str, str, str]]:
    """(strategy, unseen_source, augment) of every method, in table order."""
    default_policy = UNSEEN_SOURCE_POLICIES[0]
    out = [(_BASELINE, default_policy, "")]
    out += [(s, p, "") for s in CONDITIONED_STRATEGIES for p in UNSEEN_SOURCE_POLICIES]
    out += [(_BASELINE, default_policy, a) for a in AUGMENTATIONS]
    return out


def comparison_configs(profile: str, seeds: int | None = None,
                       **execution: Any) -> list[Any]:
    """The TrainConfigs of the comparison at ``profile`` for seeds 0..seeds-1 (default:
    the profile's); ``execution`` goes to every config (e.g. ``accelerator="cpu"``)."""
    from .training.config import TrainConfig

    if profile not in UNSEEN_PROFILES:
        raise ConfigError(f"profile: {profile!r} is not one of {', '.join(UNSEEN_PROFILES)}")
    prof = UNSEEN_PROFILES[profile]
    seeds = prof.seeds if seeds is None else seeds
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ConfigError(f"seeds: must be a positive integer, got {seeds!r}")
    topology, pooling = MODEL
    configs = []
    for seed in range(seeds):
        for strategy, policy, augment in methods():
            layer = PAPER_BEST_LAYERS[MODEL] if strategy in CONDITIONED_STRATEGIES else None
            configs.append(TrainConfig.from_profile(
                prof.train, dataset=DATASET, topology=topology, pooling=pooling,
                strategy=strategy, cond_layer=layer, unseen_source=policy, augment=augment,
                seed=seed, **prof.overrides, **execution))
    return configs


def run_comparison(results_dir: str | Path, data_dir: str | Path, profile: str,
                   seeds: int | None = None, jobs: int = 1, progress: bool = True,
                   **execution: Any) -> dict[str, Any]:
    """``caa unseen``: train the comparison's missing runs on ``data_dir`` (a 2020-layout
    dataset) into ``<results_dir>/runs``, then write ``<results_dir>/unseen/``. Returns
    the sweep's summary frame (``"sweep"``) and the written paths by suffix."""
    from .datasets import detect_layout
    from .results.unseen import write_comparison
    from .training.sweep import run_sweep

    layout = detect_layout(data_dir)
    if layout != DATASET:
        raise ConfigError(f"{data_dir}: the {layout} layout has no device seen only in "
                          f"evaluation; the comparison needs a {DATASET} dataset "
                          f"(caa synth DIR --layout {DATASET})")
    configs = comparison_configs(profile, seeds, **execution)
    summary = run_sweep(configs, results_dir, data_dir, progress=progress, jobs=jobs)
    paths = write_comparison(results_dir, Path(results_dir) / OUT_NAME,
                             UNSEEN_PROFILES[profile].train, DATASET,
                             names=[c.run_name for c in configs])
    return {"sweep": summary, **paths}


__all__ = ["DATASET", "MODEL", "OUT_NAME", "UNSEEN_PROFILES", "UnseenProfile",
           "comparison_configs", "methods", "run_comparison"]
