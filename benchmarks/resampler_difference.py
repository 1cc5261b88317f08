"""How far the soxr HQ resampler moves the log-mel from the released kaiser_best one.

Prints, per mel bin, the mean and maximum absolute difference in the log domain over
every frame of the 48 kHz clips of a dataset (the released recipe otherwise), and writes
the table as CSV. Usage: python benchmarks/resampler_difference.py DATA_DIR [OUT.csv]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from tqdm.auto import tqdm

from caalib.datasets import read_dataset
from caalib.features import logmel, mel_matrix, resample
from caalib.features.recipe import mono


def main(data_dir: str, out: str | None = None, limit: int = 200) -> pd.DataFrame:
    df = read_dataset(data_dir)
    diffs = []
    for name in tqdm(df["filename"], desc="clips"):
        if len(diffs) >= limit:
            break
        info = sf.info(str(Path(data_dir) / name))
        if info.samplerate == 44100:
            continue
        audio, sr = sf.read(Path(data_dir) / name, dtype="float64", always_2d=True)
        x = mono(audio)
        pair = [logmel(torch.from_numpy(resample(x, sr, r))[None])[0].numpy()
                for r in ("kaiser_best", "soxr_hq")]
        diffs.append(np.abs(pair[1] - pair[0]))  # (T, 64)
    if not diffs:
        raise SystemExit(f"{data_dir}: no clip needs resampling")
    d = np.concatenate(diffs)  # (clips * T, 64)
    centre = mel_matrix().argmax(axis=1) * 44100 / 2048
    table = pd.DataFrame({"mel_bin": np.arange(64), "centre_hz": centre.round(0),
                          "mean_abs_diff": d.mean(axis=0), "max_abs_diff": d.max(axis=0)})
    print(f"{len(diffs)} clips, {d.shape[0]} frames; log-mel |soxr_hq - kaiser_best|")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2e}"))
    if out:
        table.to_csv(out, index=False)
    return table


if __name__ == "__main__":
    main(*sys.argv[1:3])
