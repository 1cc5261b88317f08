"""The per-clip extraction pipeline, and the workers that run it on every core.

One job per clip: stat and SHA-256 of the file's bytes, decode and validate (the
judgement of `read_clip`), mono, resample to 44.1 kHz, and, for the ``numpy`` transform,
the STFT + mel in float64 (`logmel_numpy`, bit for bit `reference_logmel` given the
same resampled signal). Jobs run in
worker threads (default) or worker processes; the parent consumes the results in
meta.csv order with a bounded number in flight, so the decoding, resampling and transform
of different clips overlap on all cores while the parent only issues warnings and writes
HDF5. For the ``torch`` transform (CUDA) the job stops after resampling and the parent
runs the STFT + mel batched on the device.

Threads are the default because they measured fastest on the 2-core machine this was
tuned on (benchmarks/bench_features.py, README "Feature extraction speed"): the heavy
calls release the GIL (libsndfile, the resampler's BLAS product, scipy's FFT, numpy,
hashlib), set-up happens once per process instead of once per worker, and nothing is
pickled.
A 44.1 kHz clip still holds the GIL for a good part of its few milliseconds, so on many
cores ``parallel="processes"`` (forked on Linux) may scale further; `plan` documents the
choice and every part can be overridden.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sys
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..accelerator import usable_cpus
from ..errors import FeatureError
from .audio import decode_clip
from .fast import logmel_numpy
from .recipe import HOP, N_FFT, n_frames

#: Where the STFT + mel runs: ``numpy`` in each worker (CPU), ``torch`` batched in the
#: parent on the extraction device (CUDA).
TRANSFORMS: tuple[str, ...] = ("auto", "numpy", "torch")
#: What the workers are: forked ``processes`` or ``threads`` of the extracting process.
PARALLEL: tuple[str, ...] = ("auto", "processes", "threads")
#: Upper bound of the default worker count (each worker holds one clip, ~50 MiB).
MAX_DEFAULT_WORKERS = 32


def can_fork() -> bool:
    """Whether worker processes can be forked safely (Linux; macOS' frameworks are not
    fork-safe and Windows has no fork)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


@dataclass(frozen=True)
class Plan:
    """How an extraction runs: where the transform runs, on what workers, how many."""

    transform: str  # numpy | torch
    parallel: str  # processes | threads
    workers: int
    device: str = "cpu"
    start_method: str | None = None  # fork | spawn, for processes

    def describe(self) -> str:
        if self.parallel == "processes":
            how = f"processes ({self.start_method}; 1 BLAS and 1 torch thread each)"
        else:
            how = "threads (BLAS held at 1 thread)"
        where = ("STFT + mel per clip in the workers (float64 numpy)"
                 if self.transform == "numpy"
                 else f"STFT + mel batched in torch (float64) on {self.device}")
        return f"{self.workers} worker {how}, {where}"


def _choice(value: str, allowed: Sequence[str], name: str) -> str:
    if value not in allowed:
        raise FeatureError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def plan(device: str = "cpu", transform: str = "auto", parallel: str = "auto",
         workers: int | None = None) -> Plan:
    """The extraction plan for ``device`` (a resolved torch device: "cpu", "cuda:0").

    ``auto`` chooses what measured fastest (benchmarks/bench_features.py, README): on
    CPU every worker runs the whole clip pipeline including the numpy transform; on CUDA
    the workers decode and resample and the parent runs the transform batched on the GPU;
    the workers are threads (on 2 cores they beat forked processes at both sample rates,
    with less CPU time per clip). ``parallel="processes"`` forks worker processes where
    the OS can (Linux) and spawns them elsewhere (each then imports torch anew:
    seconds). ``workers`` defaults to the usable CPUs (at most
    `MAX_DEFAULT_WORKERS`).
    """
    _choice(transform, TRANSFORMS, "transform")
    _choice(parallel, PARALLEL, "parallel")
    if workers is None:
        workers = min(MAX_DEFAULT_WORKERS, usable_cpus())
    if workers < 1:
        raise FeatureError(f"workers must be at least 1, got {workers}")
    if transform == "auto":
        transform = "numpy" if device.split(":")[0] == "cpu" else "torch"
    if parallel == "auto":
        parallel = "threads"
    start = ("fork" if can_fork() else "spawn") if parallel == "processes" else None
    return Plan(transform=transform, parallel=parallel, workers=workers, device=device,
                start_method=start)


# ------------------------------------------------------------------------------- one clip


@dataclass
class ClipResult:
    """What one job hands back: the clip's features (``numpy`` transform) or its samples
    at 44.1 kHz cut to the frames they give (``torch``), and what the file records."""

    data: np.ndarray  # (T, 64) float32, or (N_FFT + (T - 1) * HOP,) float64
    frames: int
    n_samples: int  # at 44.1 kHz, before cutting
    silent: bool
    digest: str
    stat: tuple[int, int, int, int]
    warnings: list[str] = field(default_factory=list)


def stat_row(st: os.stat_result) -> tuple[int, int, int, int]:
    """What a feature file records of a clip's stat (size, mtime_ns, ctime_ns, inode):
    any rewrite moves ctime or the inode, even when size and mtime are restored."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def digest_and_stat(path: Path, where: str = "") -> tuple[str, tuple[int, int, int, int]]:
    """SHA-256 of the file's bytes and its (size, mtime_ns, ctime_ns, inode), both taken
    through one open file (stat first, so a write racing the read is seen as a change
    next time). A file that is not there gives ``("", zeros)``: the decoder names it."""
    try:
        fh = open(path, "rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return "", (0, 0, 0, 0)
    except OSError as exc:
        raise FeatureError(f"{path}: cannot read: {exc.strerror or exc}"
                           + (f" ({where})" if where else "")) from exc
    with fh:
        st = os.fstat(fh.fileno())
        try:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError as exc:
            raise FeatureError(f"{path}: cannot read: {exc.strerror or exc}"
                               + (f" ({where})" if where else "")) from exc
    return digest, stat_row(st)


def process_clip(path: str | os.PathLike[str], where: str, resampler: str,
                 transform: str) -> ClipResult:
    """The whole per-clip pipeline (runs in a worker): digest, decode + validate, mono,
    resample and, for the ``numpy`` transform, the log-mel. Raises `FeatureError` naming
    the file and ``where`` for a clip that cannot be used."""
    path = Path(path)
    digest, st = digest_and_stat(path, where)
    x, silent, notes = decode_clip(path, where, resampler)
    frames = n_frames(x.shape[0])
    if transform == "numpy":
        data = logmel_numpy(x)
    else:
        data = np.ascontiguousarray(x[: N_FFT + (frames - 1) * HOP])
    return ClipResult(data=data, frames=frames, n_samples=int(x.shape[0]), silent=silent,
                      digest=digest, stat=st, warnings=notes)


# -------------------------------------------------------------------------------- workers


def limit_threads(n: int = 1, torch_too: bool = True) -> Any:
    """Cap BLAS/OpenMP pools (threadpoolctl, installed with librosa) and, with
    ``torch_too``, torch's intra-op threads at ``n`` in this process, so parallel workers
    do not oversubscribe the cores (the kaiser_best resampler is a BLAS product, so
    this holds it to ``n`` threads too). Returns the threadpoolctl limiter (None without
    threadpoolctl); its ``restore_original_limits()`` undoes the BLAS part."""
    if torch_too and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - librosa brings it
        return None
    return threadpool_limits(limits=n)


def _init_process_worker() -> None:
    """Worker processes leave Ctrl-C and SIGTERM to the parent, which stops the pool;
    one BLAS and torch thread each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    limit_threads(1)


def _noop() -> int:
    return os.getpid()


def warm_up(transform: str) -> None:
    """Do the once-per-process set-up here, before workers fork, so that they inherit it
    instead of each repeating it: libsndfile loaded, librosa's filterbank (~0.25 s on
    first use), scipy's FFT. The resampler's filter table is loaded on the first clip
    that needs resampling, since a dataset may need none."""
    import soundfile  # noqa: F401  (inspect_clip imports it on first use)

    if transform == "numpy":
        logmel_numpy(np.zeros(N_FFT))


class ClipRunner(AbstractContextManager["ClipRunner"]):
    """Run `process_clip` for a sequence of clips on the plan's workers and yield the
    results in order, with at most ``lookahead`` clips in flight (bounded memory).

    Worker processes are started on entry (before the caller opens its output file, so no
    forked child holds it), each with one BLAS and torch thread; with worker threads the
    process' BLAS pools are held at one thread until exit (OpenBLAS spreading each small
    mel product over all cores, on cores the other workers need, made a 44.1 kHz clip
    several times slower on a busy machine).
    """

    def __init__(self, plan: Plan, resampler: str, lookahead: int | None = None) -> None:
        self.plan = plan
        self.resampler = resampler
        self.lookahead = max(1, lookahead if lookahead is not None else 4 * plan.workers)
        self._pool: Executor | None = None
        self._limits: Any = None

    def __enter__(self) -> ClipRunner:
        warm_up(self.plan.transform)
        if self.plan.parallel == "processes":
            ctx = multiprocessing.get_context(self.plan.start_method or "spawn")
            pool = ProcessPoolExecutor(max_workers=self.plan.workers, mp_context=ctx,
                                       initializer=_init_process_worker)
            self._pool = pool
            try:
                with warnings.catch_warnings():
                    # Python >= 3.12 warns about fork() in a process with threads (torch's,
                    # BLAS'): the workers use none of them (numpy, scipy, soundfile)
                    warnings.filterwarnings("ignore", category=DeprecationWarning,
                                            message=r".*fork\(\).*")
                    pool.submit(_noop).result()  # fork now: every worker starts here
            except BaseException:
                self.__exit__(None, None, None)
                raise
        else:
            # worker threads call BLAS (the mel product) side by side: one thread each;
            # torch runs only in this thread (the batched transform) and keeps its own
            self._limits = limit_threads(1, torch_too=False)
            self._pool = ThreadPoolExecutor(max_workers=self.plan.workers,
                                            thread_name_prefix="caa-features")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._limits is not None:
            self._limits.restore_original_limits()
            self._limits = None

    def _submit(self, path: Path, where: str) -> Future[ClipResult]:
        assert self._pool is not None, "use ClipRunner as a context manager"
        return self._pool.submit(process_clip, str(path), where, self.resampler,
                                 self.plan.transform)

    def results(self, jobs: Sequence[tuple[Path, str]]) -> Iterator[ClipResult]:
        """`ClipResult` of each (path, where) job, in order; a clip's `FeatureError`
        is raised when its turn comes (the first bad clip in meta.csv order)."""
        pending: deque[tuple[Future[ClipResult], Path, str]] = deque()
        it = iter(jobs)
        for path, where in it:
            pending.append((self._submit(path, where), path, where))
            if len(pending) >= self.lookahead:
                break
        while pending:
            future, path, where = pending.popleft()
            try:
                result = future.result()
            except BrokenProcessPool as exc:
                raise FeatureError(
                    f"{path}: a feature worker process died while this or a neighbouring "
                    f"clip was being read ({where}); run with parallel='threads' "
                    "(caa features --parallel threads) to see the failure") from exc
            nxt = next(it, None)
            if nxt is not None:
                pending.append((self._submit(*nxt), *nxt))
            yield result

