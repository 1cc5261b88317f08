"""Benchmark: `extract_features` (``caa features``) against the plain reference loop.

Usage:
    python benchmarks/bench_features.py [DATA_DIR] [--clips 32] [--clips-44k 256]
        [--seconds 10] [--repeats 3] [--accelerator cpu|cuda] [--workers N]
        [--parallel auto|processes|threads] [--transform auto|numpy|torch]
        [--batch-size 64] [--skip-stages]

Without DATA_DIR it writes two temporary datasets in the real layout and reports them
separately: ``--clips`` clips at 48 kHz stereo 24 bit (device A of the DCASE sets, which
are resampled) and ``--clips-44k`` at 44.1 kHz mono 16 bit (devices B/C), ``--seconds``
of noise each. The 44.1 kHz clips cost ~40x less each, hence more of them: the per-run
costs (process start-up, the first use of librosa's filterbank, forking) would otherwise
weigh more than on a real dataset of thousands of clips. With DATA_DIR it reports that
dataset as it is.

For each dataset it prints
1. where the time goes: each stage of the per-clip pipeline on one core (median ms per
   clip over the clips, after a warm-up clip), with the reference's own way of each
   stage beside ours (numpy's mean for mono, resampy's own loop for kaiser_best, scipy's
   spectrogram), resampy's numba compile time apart, the HDF5 write and the cache's
   reuse check (stat + content fingerprint) per clip;
2. end to end, like for like, each run in a fresh Python process (imports excluded,
   everything after them included: resampy's JIT compile, reading every WAV, the HDF5
   file written): the reference loop (``soundfile.read`` + `reference_logmel` per clip,
   then the features written to HDF5) twice, with the libraries' default threads (what a
   plain script gets: OpenBLAS spreads each mel product over all cores) and with one
   BLAS/torch thread (the plain loop at its best on a busy machine), and
   `extract_features`, in turn, ``--repeats`` times, with the ratios of each round and
   whether the files hold equal features.
The thread and worker settings of every process are printed with the figures. On a shared
machine the figures move with the load (printed too): compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def make_dataset(root: Path, clips: int, seconds: float, rate: int | None = None,
                 seed: int = 0) -> Path:
    """Noise clips in the DCASE 2018 layout (meta.csv + evaluation_setup/*.txt).

    ``rate`` 48000: all clips device A (48 kHz stereo 24 bit); 44100: all device B (44.1 kHz
    mono 16 bit); None: alternating, as the real sets mix them.
    """
    from caalib.constants import SCENES

    rng = np.random.default_rng(seed)
    (root / "audio").mkdir(parents=True)
    (root / "evaluation_setup").mkdir()
    rows, train, evaluate = [], [], []
    for i in range(clips):
        scene = SCENES[i % len(SCENES)]
        a = rate == 48000 or (rate is None and i % 2 == 0)
        dev, sr, ch, subtype = ("a", 48000, 2, "PCM_24") if a else ("b", 44100, 1, "PCM_16")
        name = f"audio/{scene}-bench-{i}-{i}-{dev}.wav"
        audio = np.clip(0.1 * rng.standard_normal((int(seconds * sr), ch)), -1, 1)
        sf.write(root / name, audio, sr, subtype=subtype)
        rows.append(f"{name}\t{scene}\tbench-{i}\t{dev}")
        (evaluate if i % 4 == 1 else train).append(f"{name}\t{scene}")
    header = "filename\tscene_label\tidentifier\tsource_label\n"
    (root / "meta.csv").write_text(header + "\n".join(rows) + "\n")
    (root / "evaluation_setup" / "fold1_train.txt").write_text("\n".join(train) + "\n")
    (root / "evaluation_setup" / "fold1_evaluate.txt").write_text("\n".join(evaluate) + "\n")
    return root


def _clips(data_dir: Path) -> list[str]:
    lines = (data_dir / "meta.csv").read_text(encoding="utf-8-sig").splitlines()[1:]
    return [ln.split("\t", 1)[0] for ln in lines if ln.strip()]


def thread_settings() -> dict[str, object]:
    """What this process would run with: torch intra-op threads, BLAS/OpenMP pools, numba."""
    import numba
    import torch
    from threadpoolctl import threadpool_info

    pools = sorted({f"{p['internal_api']}:{p['num_threads']}" for p in threadpool_info()})
    return {"torch_threads": torch.get_num_threads(), "blas_openmp": ",".join(pools),
            "numba_threads": numba.config.NUMBA_NUM_THREADS}


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (worker processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _load() -> str:
    """The 1-minute load average (other work on a shared machine shows here)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):  # pragma: no cover - no getloadavg
        return "?"


# ------------------------------------------------------------------- child processes


def child_reference(data_dir: Path, out: Path, threads: int | None) -> dict[str, object]:
    """The plain loop: soundfile + `reference_logmel` clip by clip, then one HDF5 write."""
    import h5py

    from caalib.features import reference_logmel

    limiter = None
    if threads is not None:
        from caalib.features.pipeline import limit_threads

        limiter = limit_threads(threads)
    settings = thread_settings()
    names = _clips(data_dir)
    t0, c0 = time.perf_counter(), _cpu()
    feats = []
    for name in names:
        audio, sr = sf.read(data_dir / name)
        feats.append(reference_logmel(audio, sr))
    with h5py.File(out, "w") as h5:
        h5.create_dataset("feature", data=np.stack(feats))
        h5.create_dataset("filename", data=np.array(names, dtype=object),
                          dtype=h5py.string_dtype("utf-8"))
    seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    del limiter
    return {"seconds": seconds, "cpu": cpu, "clips": len(names), "settings": settings}


def child_extract(data_dir: Path, out: Path, opts: dict[str, object]) -> dict[str, object]:
    """`extract_features` as ``caa features`` runs it (force: always computed)."""
    from caalib.features import extract_features
    from caalib.features.pipeline import plan

    how = plan(str(opts["accelerator"]), str(opts["transform"]), str(opts["parallel"]),
               opts["workers"])  # type: ignore[arg-type]
    settings = thread_settings()
    t0, c0 = time.perf_counter(), _cpu()
    extract_features(data_dir, out, batch_size=int(opts["batch_size"]),  # type: ignore[arg-type]
                     workers=opts["workers"],  # type: ignore[arg-type]
                     accelerator=str(opts["accelerator"]),
                     transform=str(opts["transform"]), parallel=str(opts["parallel"]),
                     progress=False, force=True)
    seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    return {"seconds": seconds, "cpu": cpu, "clips": len(_clips(data_dir)),
            "settings": settings, "plan": how.describe()}


def child_stages(data_dir: Path, tmp: Path) -> dict[str, object]:
    """Each stage on one core, per clip (median), after a warm-up clip."""
    import h5py

    from caalib.datasets import inspect_clip
    from caalib.features import extract_features, reference_logmel
    from caalib.features.audio import _released_resampy, mono_fast, resample
    from caalib.features.fast import logmel_numpy
    from caalib.features.pipeline import digest_and_stat, limit_threads
    from caalib.features.recipe import mono

    limit_threads(1)
    settings = thread_settings()
    names = _clips(data_dir)
    paths = [data_dir / n for n in names]
    rates = {sf.info(str(p)).samplerate for p in paths}
    jit: dict[str, float] = {}
    if rates - {44100}:
        sr = max(rates - {44100})
        x = np.random.default_rng(0).standard_normal(sr)
        t0 = time.perf_counter()
        _released_resampy().resample(x, sr, 44100, filter="kaiser_best")
        jit["resampy kaiser_best: numba compile (once per process)"] = (
            time.perf_counter() - t0)

    def per_clip(fn, args_list):
        fn(*args_list[0])  # warm-up
        times, outs = [], []
        for args in args_list:
            t0 = time.perf_counter()
            outs.append(fn(*args))
            times.append(time.perf_counter() - t0)
        return 1e3 * statistics.median(times), outs

    stages: dict[str, float] = {}
    stages["read bytes + SHA-256 + stat"], _ = per_clip(digest_and_stat, [(p,) for p in paths])
    stages["decode + checks (inspect_clip)"], clips = per_clip(inspect_clip,
                                                               [(p,) for p in paths])
    raw = [(c.samples, c.rate) for c in clips]
    stages["mono (mono_fast)"], monos = per_clip(mono_fast, [(a,) for a, _ in raw])
    stages["mono (reference: mean)"], _ = per_clip(mono, [(a,) for a, _ in raw])
    stages["resample kaiser_best (matrix form of resampy's sums)"], xs = per_clip(
        resample, [(m, sr) for m, (_, sr) in zip(monos, raw, strict=True)])
    if rates - {44100}:
        stages["resample kaiser_best (reference: resampy 0.2.2's loop)"], _ = per_clip(
            lambda m, sr: _released_resampy().resample(m, sr, 44100, filter="kaiser_best"),
            [(m, sr) for m, (_, sr) in zip(monos, raw, strict=True) if sr != 44100])
    stages["STFT + mel (logmel_numpy)"], feats = per_clip(logmel_numpy, [(x,) for x in xs])
    stages["STFT + mel (reference scipy)"], _ = per_clip(
        reference_logmel, [(x, 44100) for x in xs])
    stack = np.stack(feats)
    t0 = time.perf_counter()
    with h5py.File(tmp / "write.h5", "w") as h5:
        dset = h5.create_dataset("feature", shape=stack.shape, dtype=np.float32)
        for s in range(0, len(stack), 64):
            dset[s : s + 64] = stack[s : s + 64]
    stages["HDF5 write (per clip)"] = 1e3 * (time.perf_counter() - t0) / len(stack)
    out = tmp / "reuse.h5"
    extract_features(data_dir, out, workers=1, parallel="threads", progress=False)
    t0 = time.perf_counter()
    extract_features(data_dir, out, workers=1, parallel="threads", progress=False)
    stages["cache reuse check: meta + stat + fingerprint (per clip)"] = (
        1e3 * (time.perf_counter() - t0) / len(stack))
    return {"stages_ms": stages, "jit_s": jit, "settings": settings}


def _run_child(kind: str, *args: object) -> dict[str, object]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind,
           *[json.dumps(a) for a in args]]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child_main(kind: str, raw: list[str]) -> int:
    args = [json.loads(a) for a in raw]
    if kind == "reference":
        res = child_reference(Path(args[0]), Path(args[1]), args[2])
    elif kind == "extract":
        res = child_extract(Path(args[0]), Path(args[1]), args[2])
    else:
        res = child_stages(Path(args[0]), Path(args[1]))
    print(json.dumps(res))
    return 0


# ---------------------------------------------------------------------------- driver


def _compare(ref_path: Path, fast_path: Path) -> tuple[bool, float]:
    import h5py

    with h5py.File(ref_path, "r") as a, h5py.File(fast_path, "r") as b:
        ra, fb = a["feature"][()], b["feature"][()]
        same_names = list(a["filename"].asstr()[()]) == list(b["filename"].asstr()[()])
    assert same_names and ra.shape == fb.shape, "different clips or shapes"
    return bool(np.array_equal(ra, fb)), float(np.max(np.abs(ra - fb)))


def bench_dataset(label: str, data_dir: Path, tmp: Path, args: argparse.Namespace) -> dict:
    print(f"\n=== {label}: {len(_clips(data_dir))} clips ({data_dir.name}) ===")
    tmp = tmp / f"work-{data_dir.name}"
    tmp.mkdir()
    if not args.skip_stages:
        st = _run_child("stages", str(data_dir), str(tmp))
        print(f"stages on one core (BLAS/torch 1 thread: {st['settings']}), "
              "median ms per clip:")
        for name, ms in st["stages_ms"].items():
            print(f"  {name:<56s} {ms:8.2f}")
        for name, sec in st["jit_s"].items():
            print(f"  {name:<56s} {1e3 * sec:8.0f}")
    opts = {"accelerator": args.accelerator, "transform": args.transform,
            "parallel": args.parallel,
            "workers": args.workers, "batch_size": args.batch_size}
    ratios: dict[str, list[float]] = {"default threads": [], "1 thread": []}
    settings: dict[str, object] = {}
    for rep in range(args.repeats):
        load0 = _load()
        ref = _run_child("reference", str(data_dir), str(tmp / "ref.h5"), None)
        ref1 = _run_child("reference", str(data_dir), str(tmp / "ref1.h5"), 1)
        fast = _run_child("extract", str(data_dir), str(tmp / "fast.h5"), opts)
        equal, diff = _compare(tmp / "ref.h5", tmp / "fast.h5")
        equal1, _ = _compare(tmp / "ref1.h5", tmp / "fast.h5")
        n = fast["clips"]
        ratios["default threads"].append(ref["seconds"] / fast["seconds"])
        ratios["1 thread"].append(ref1["seconds"] / fast["seconds"])
        settings = {"reference (default threads)": ref["settings"],
                    "reference (1 thread)": ref1["settings"],
                    "caa features (parent)": fast["settings"], "plan": fast["plan"]}
        print(f"round {rep + 1}: reference {ref['seconds']:6.2f} s ({n / ref['seconds']:6.1f} "
              f"clips/s, {ref['cpu']:5.1f} CPU s), 1 thread {ref1['seconds']:6.2f} s "
              f"({n / ref1['seconds']:6.1f}, {ref1['cpu']:5.1f} CPU s) | caa features "
              f"{fast['seconds']:6.2f} s ({n / fast['seconds']:6.1f}, {fast['cpu']:5.1f} CPU s)"
              f" | {ratios['default threads'][-1]:5.2f}x, {ratios['1 thread'][-1]:5.2f}x | "
              f"features {'bit-identical' if equal and equal1 else f'max diff {diff:.3g}'} | "
              f"load {load0} -> {_load()}")
    for key, value in settings.items():
        print(f"  {key}: {value}")
    for key, rs in ratios.items():
        print(f"end to end, {label}, caa features / reference ({key}): median "
              f"{statistics.median(rs):.2f}x (rounds: {', '.join(f'{r:.2f}' for r in rs)})")
    return {"label": label, "ratios": ratios}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child_main(argv[1], argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", nargs="?", default=None)
    ap.add_argument("--clips", type=int, default=32, help="48 kHz clips")
    ap.add_argument("--clips-44k", type=int, default=256, help="44.1 kHz clips")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--accelerator", default="cpu", help="torch device: cpu or cuda")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--parallel", default="auto", choices=("auto", "processes", "threads"))
    ap.add_argument("--transform", default="auto", choices=("auto", "numpy", "torch"))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--skip-stages", action="store_true")
    args = ap.parse_args(argv)

    import torch

    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), "
          f"load {_load()}; settings: accelerator {args.accelerator}, "
          f"transform {args.transform}, "
          f"parallel {args.parallel}, workers {args.workers or 'auto'}, "
          f"batch {args.batch_size}")
    with tempfile.TemporaryDirectory(prefix="bench_features_") as tmp_s:
        tmp = Path(tmp_s)
        if args.data_dir is not None:
            sets = [("given dataset", Path(args.data_dir))]
        else:
            t0 = time.perf_counter()
            sets = [(f"{rate / 1000:g} kHz", make_dataset(tmp / f"d{rate}", clips,
                                                        args.seconds, rate))
                    for rate, clips in ((48000, args.clips), (44100, args.clips_44k))
                    if clips > 0]
            print(f"wrote {args.clips} + {args.clips_44k} clips of {args.seconds:g} s in "
                  f"{time.perf_counter() - t0:.1f} s")
        results = [bench_dataset(label, d, tmp, args) for label, d in sets]
    print("\nsummary (end to end, caa features / reference loop, same machine and run):")
    for r in results:
        for key, rs in r["ratios"].items():
            print(f"  {r['label']:<10s} vs reference with {key:<15s}: median "
                  f"{statistics.median(rs):5.2f}x  min {min(rs):5.2f}x  max {max(rs):5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
