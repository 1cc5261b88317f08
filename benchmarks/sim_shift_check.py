"""How much a model trained on device A alone loses on B and C, per device-shift strength.

The simulation profiles (``sim-tiny``, ``sim-demo``, ``sim-gpu``) must carry a device shift
strong enough that an A-only model loses at least 15 points on B and C
(docs/simulation.md). This script measures that drop on a synthetic dataset at each
shift given, with two quick learners trained on the device-A training clips only and
scored on the evaluate split of every device (the study's metric: the unweighted mean of
the class-wise accuracies):

- a logistic regression (scikit-learn) on each clip's per-band mean and standard
  deviation of the log-mel;
- a small CNN (the study's pooled network with attention, joint head, 1/8 width) trained
  for a few hundred steps on the first 64 frames.

    python benchmarks/sim_shift_check.py --profile sim-demo --shifts 0 1 1.5 2 --out DIR

Datasets and features are kept under ``DIR/shift-<s>/`` and reused when present.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd


def _dataset(out: Path, profile: str, shift: float, seed: int) -> Path:
    from caalib.features import default_feature_path, extract_features
    from caalib.synth import existing_matches, synthesize

    data = out / f"shift-{shift:g}"
    if not existing_matches(data, profile, "dcase2018", seed, shift):
        synthesize(data, profile=profile, layout="dcase2018", seed=seed, progress=False,
                   shift=shift)
    extract_features(data, default_feature_path(data), progress=False)
    return data


def _load(data: Path) -> tuple[np.ndarray, pd.DataFrame]:
    from caalib.datasets import read_dataset
    from caalib.features import default_feature_path, load_features

    fs = load_features(default_feature_path(data))
    table = read_dataset(data).set_index("filename")
    meta = fs.meta.copy()
    meta["split"] = table.loc[meta["filename"], "split"].to_numpy()
    return fs.feature, meta


def _macro(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, pred))


def _scores(predict, x: np.ndarray, meta: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    ev = (meta["split"] == "evaluate").to_numpy()
    out = {}
    for dev in "abc":
        rows = ev & (meta["source_label"] == dev).to_numpy()
        out[dev] = _macro(y[rows], predict(x[rows]))
    return out


def logistic_check(x: np.ndarray, meta: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    stats = np.concatenate([x.mean(axis=1), x.std(axis=1)], axis=1)
    train = ((meta["split"] == "train") & (meta["source_label"] == "a")).to_numpy()
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    clf.fit(stats[train], y[train])
    return _scores(clf.predict, stats, meta, y)


def cnn_check(x: np.ndarray, meta: pd.DataFrame, y: np.ndarray, steps: int = 600,
              seed: int = 0) -> dict[str, float]:
    import torch

    from caalib.models import build_model

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # a small model: one thread is fastest on a shared CPU
    x = x[:, :64]
    train = ((meta["split"] == "train") & (meta["source_label"] == "a")).to_numpy()
    mean, std = x[train].mean(axis=(0, 1)), x[train].std(axis=(0, 1)) + 1e-6
    xs = torch.from_numpy(((x - mean) / std).astype(np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    model = build_model("pool", "att", "joint", width=1 / 8, n_frames=64)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    idx = np.flatnonzero(train)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        b = rng.choice(idx, 16, replace=False)
        loss = torch.nn.functional.nll_loss(model(xs[b]).scene, yt[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()

    def predict(rows_x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return torch.cat([model(rows_x[i:i + 256]).scene.argmax(1)
                              for i in range(0, len(rows_x), 256)]).numpy()

    return _scores(predict, xs, meta, y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="sim-demo")
    ap.add_argument("--shifts", type=float, nargs="+", default=[0.0, 1.0, 1.5, 2.0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cnn-steps", type=int, default=600, help="0 skips the CNN")
    args = ap.parse_args()

    from caalib.constants import SCENES

    rows = []
    for shift in args.shifts:
        start = time.perf_counter()
        data = _dataset(args.out, args.profile, shift, args.seed)
        made = time.perf_counter() - start
        x, meta = _load(data)
        y = meta["scene_label"].map(SCENES.index).to_numpy()
        learners = {"logreg": partial(logistic_check, x, meta, y)}
        if args.cnn_steps:
            learners["cnn"] = partial(cnn_check, x, meta, y, args.cnn_steps, args.seed)
        for name, fit in learners.items():
            t0 = time.perf_counter()
            acc = fit()
            rows.append({"shift": shift, "learner": name,
                         **{f"acc_{d}": round(100 * acc[d], 1) for d in "abc"},
                         "drop_b": round(100 * (acc["a"] - acc["b"]), 1),
                         "drop_c": round(100 * (acc["a"] - acc["c"]), 1),
                         "data_s": round(made, 1), "fit_s": round(time.perf_counter() - t0, 1)})
            print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1),
                  flush=True)
    print()
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
