"""Shared fixtures: tiny synthetic datasets in both real layouts, made once per session.

Every test that needs data goes through the real on-disk layout, so the reader, the
feature extractor and the training code run the same path as on the DCASE sets.

Plain helpers shared by several modules (crafted run directories) live in ``helpers.py``
beside this file; pytest puts this folder on ``sys.path`` when it loads this conftest, so
tests write ``from helpers import make_run`` and none edits ``sys.path``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(2)


def _tiny(factory: pytest.TempPathFactory, layout: str, seed: int) -> Path:
    from caalib.synth import synthesize

    out = factory.mktemp("synth") / f"tiny{layout.removeprefix('dcase')}"
    return synthesize(out, profile="tiny", layout=layout, seed=seed, progress=False)


def _features(data: Path) -> Path:
    from caalib.features import default_feature_path, extract_features

    return extract_features(data, default_feature_path(data), progress=False)


@pytest.fixture(scope="session")
def tiny_dataset_2018(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny(tmp_path_factory, "dcase2018", seed=0)


@pytest.fixture(scope="session")
def tiny_dataset_2019(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny(tmp_path_factory, "dcase2019", seed=1)


@pytest.fixture(scope="session")
def tiny_features_2018(tiny_dataset_2018: Path) -> Path:
    return _features(tiny_dataset_2018)


@pytest.fixture(scope="session")
def tiny_dataset_2020(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2020 layout: A, B, C and simulated S1-S6, S4-S6 in the evaluate split only."""
    return _tiny(tmp_path_factory, "dcase2020", seed=0)


@pytest.fixture(scope="session")
def tiny_features_2020(tiny_dataset_2020: Path) -> Path:
    return _features(tiny_dataset_2020)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models are dominated by thread hand-offs: on 2 shared cores one torch thread
    ran them ~10x faster than two. Modules opt in with ``usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
