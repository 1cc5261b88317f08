"""Which of the paper's runs each profile of the study trains.

The `paper` profile reproduces everything: Tables I and II on DCASE 2018 (14 models)
and Table III on DCASE 2019. The CPU profiles keep the study's shape at a size that fits
the time a newcomer gives it: the cheap pooled network with attention across all four
conditioned layers (a Table I/Fig. 5 slice), and the paper's CAA-Net (atrous +
attention) against the pooled network under all four strategies (a Table II slice).
"""

from __future__ import annotations

from typing import Any

#: (topology, pooling) per table for each CPU profile; None means all of the paper's.
_CPU = {
    "I": [("pool", "att")],
    "II": [("pool", "att"), ("atrous", "att")],
    "III": [("pool", "att"), ("atrous", "att")],
}
PLAN: dict[str, dict[str, list[tuple[str, str]] | None]] = {
    "tiny": _CPU,
    "demo": _CPU,
    "paper": {"I": None, "II": None, "III": None},
}

#: Table III is the DCASE 2019 table; the others are DCASE 2018.
TABLE_DATASET = {"I": "dcase2018", "II": "dcase2018", "III": "dcase2019"}


def study_runs(profile: str, dataset: str = "dcase2018", seeds: int = 1) -> list[Any]:
    """The TrainConfigs the notebook series trains for ``profile`` on ``dataset``.

    Only the tables whose dataset matches ``dataset`` are included, so one data
    directory (a 2018 or a 2019 set) gives one consistent set of runs. Duplicates (a
    Table I run that Table II also needs) appear once.
    """
    from .training.sweep import enumerate_runs

    if profile not in PLAN:
        raise ValueError(f"unknown profile {profile!r}; allowed: {', '.join(PLAN)}")
    seen: dict[str, Any] = {}
    for table, models in PLAN[profile].items():
        if TABLE_DATASET[table] != dataset or models == []:
            continue
        for cfg in enumerate_runs(table, profile, dataset, seeds=seeds, models=models):
            seen.setdefault(cfg.run_name, cfg)
    return list(seen.values())
