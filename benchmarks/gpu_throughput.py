"""Issue 14's GPU check in one script: Table II's wall time before and after, and a
real-size rehearsal, every stage timed, its peak memory taken and its results saved.

Usage, from the repository root (caalib need not be installed; ``python -m caalib`` is
the ``caa`` command for the stages that call it):

    python benchmarks/gpu_throughput.py --out DIR [--budget-s 540] [--smoke]
        [--scratch DIR] [--keep-scratch] [--commit SHA]

Stages, in order:

0. environment: GPU, torch / CUDA / cuDNN, CPUs, scratch disk, commit.
1. Table II before/after: four sampled models spanning the cost range are measured
   through the run's own Engine (``caalib.training.throughput.measure``: step time,
   scoring rate, peak memory) in their joint and multi-task variants; packing is timed
   with K short real runs through ``run_sweep`` at ``jobs=1`` and ``jobs=K`` (K from
   ``choose_jobs``) for the pooled and the full-resolution class, on a small dataset of
   real-length clips synthesised here; the overhead of one ``caa train`` process is
   timed. Then every one of Table II's 84 runs is priced at paper size: BEFORE = the
   dense evaluation schedule, one run after another, one process each; AFTER = today's
   default (sparse schedule) in a sweep packed by the class's measured factor. An
   extrapolation from measured sample rates, said so in the output.
2. Rehearsal at real size: ``caa synth --profile full`` on every core, ``caa features``,
   and a paper-profile ``caa train`` of atrous + att multi-task (the paper's best layer)
   with as many iterations as the budget holds; time, CPU time and peak memory of each.

DIR/gpu_throughput.json (everything so far) and DIR/gpu_throughput.md (the printed
lines, by stage) are rewritten after every stage and every part of stage 1, so a kill at
the time limit keeps what was measured. A stage whose expected time does not fit the
budget left is skipped with the reason printed. Bulky data (datasets, runs) goes to the
scratch directory, never to DIR. ``--smoke`` runs every stage on the CPU at tiny sizes
(tests/test_gpu_throughput_script.py runs it).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing caalib
    sys.path.insert(0, str(ROOT))

GIB = 2**30
#: The issue's goal and today's estimate (84 runs at the atrous + att rate, H100).
GOAL_HOURS = 6.0
TODAY_HOURS = 14.1
#: What one ``caa train`` process spent outside training in the earlier milestone (H200);
#: used only where this script could not measure it, and said so.
ISSUE_PROCESS_OVERHEAD_S = 9.0
#: Disk the full synthetic DCASE 2018 set needs (~26 GiB of WAV) with its features.
FULL_SET_NEED = 30 * GIB
JSON_NAME = "gpu_throughput.json"
MD_NAME = "gpu_throughput.md"

#: The sampled models and why each: together they span Table II's cost range (the
#: FLOPs per training sample, from caalib.summary, are printed beside them).
SAMPLE_WHY: dict[tuple[str, str], str] = {
    ("pool", "max"): "cheapest: the pooled backbone with a parameter-free head; prices "
                     "pool:flatten and pool:avg too (same backbone FLOPs)",
    ("pool", "att"): "pooled with attention; the pooled class's packing run (issue: 4 at "
                     "once gave 3.1x)",
    ("nopool", "att"): "mid: the full-resolution FLOPs of atrous through undilated "
                       "kernels; prices the five nopool models",
    ("atrous", "att"): "heaviest: the paper's best model; prices the five atrous models "
                       "(the other heads are within 0.3 % of its FLOPs) and is the "
                       "full-resolution class's packing run (issue: 2 at once, 1.17x)",
}
#: Packing classes: pooled models share the GPU well, full-resolution ones barely.
PACK_SAMPLE: dict[str, tuple[str, str]] = {
    "pooled": ("pool", "att"), "full-resolution": ("atrous", "att"),
}
#: Rehearsal model: the paper's best, at its best conditioned layer (Table I).
REHEARSAL_MODEL = ("atrous", "att", "multi_task")


def stands_for(model: tuple[str, str]) -> tuple[str, str]:
    """The sampled model whose measured rates price ``model``."""
    topology, pooling = model
    if topology == "pool":
        return ("pool", "att") if pooling == "att" else ("pool", "max")
    return (topology, "att")


#: Where a sampled model could not be measured, the other sample of its class prices it.
PARTNER: dict[str, str] = {"pool:max": "pool:att", "pool:att": "pool:max",
                           "nopool:att": "atrous:att", "atrous:att": "nopool:att"}


def sample_for(model: tuple[str, str], rates: dict[str, dict[str, Any]]) -> str:
    """The measured sample that prices ``model`` (KeyError when its class has none)."""
    for name in (label(stands_for(model)), PARTNER[label(stands_for(model))]):
        if len(rates.get(name, {})) == 2:  # joint and multi-task both measured
            return name
    raise KeyError(f"no measured sample for {label(model)}")


def pack_class(model: tuple[str, str]) -> str:
    return "pooled" if model[0] == "pool" else "full-resolution"


def label(model: Sequence[str]) -> str:
    return ":".join(model)


# ---------------------------------------------------------------------- sizes per mode
@dataclass(frozen=True)
class Mode:
    """Sizes of one mode: the GPU check, or the CPU smoke test of the same code."""

    name: str
    profile: str  # training profile of Table II, the packing runs and the rehearsal
    table_overrides: tuple[tuple[str, Any], ...]  # applied to Table II's priced configs
    accelerator: str
    frames: int  # clip frames the rates are measured at
    measure_steps: int
    eval_batches: int
    pack_clip_s: float  # clip length of the packing dataset
    pack_counts: tuple[int, int, int, int]  # train_a, evaluate_a, train_bc, evaluate_bc
    pack_loop_s: float  # wanted loop time of one packing run at jobs=1
    pack_iterations: tuple[int, int]  # clamp of the packing runs' iterations
    fixed_jobs: int | None  # packing K; None: choose_jobs on the GPU
    pack_classes: tuple[str, ...]  # the packing classes timed
    overhead_iterations: int  # 0: no separate caa train process (the rehearsal's serves)
    synth_profile: str
    rehearsal_iterations: tuple[int, int]  # clamp; the budget decides within it
    expected: dict[str, float]  # seconds per stage / part, before anything is measured


GPU_MODE = Mode(
    name="gpu", profile="paper", table_overrides=(), accelerator="auto", frames=320,
    measure_steps=20, eval_batches=8, pack_clip_s=10.0, pack_counts=(60, 30, 20, 10),
    pack_loop_s=3.0, pack_iterations=(200, 3000), fixed_jobs=None,
    pack_classes=tuple(PACK_SAMPLE), overhead_iterations=50,
    synth_profile="full", rehearsal_iterations=(500, 3000),
    expected=dict(environment=10, table_ii=60, pack_data=15, rate=5, overhead=20,
                  extrapolate=5, worker_start=15, features=60, train_overhead=45),
)
# Smoke: Table II at the tiny sizes with 200 iterations, so that the dense (every 10)
# and sparse (every 20) schedules differ as they do at paper size; one packing class
# and no separate overhead process, to keep the test suite's run short (the code paths
# are the same: run_sweep for the other class, the rehearsal's caa train for the other).
SMOKE_MODE = Mode(
    name="smoke", profile="tiny", table_overrides=(("iterations", 200),),
    accelerator="cpu", frames=64, measure_steps=2, eval_batches=1, pack_clip_s=2.0,
    pack_counts=(20, 10, 4, 2), pack_loop_s=0.5, pack_iterations=(20, 20), fixed_jobs=2,
    pack_classes=("pooled",), overhead_iterations=0, synth_profile="tiny",
    rehearsal_iterations=(10, 10),
    expected=dict(environment=2, table_ii=10, pack_data=3, rate=0.5, overhead=6,
                  extrapolate=1, worker_start=5, features=5, train_overhead=5),
)


# ---------------------------------------------------------------------- budget, report
class Budget:
    """Seconds left of the script's wall-clock budget (counted from its start)."""

    def __init__(self, total_s: float) -> None:
        self.total_s = float(total_s)
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.total_s - self.elapsed()


class StageSkipped(Exception):
    """A stage (or part) that cannot run here; the message is the reason."""


class Report:
    """Everything measured so far, rewritten to JSON and Markdown at every save."""

    def __init__(self, out: Path, header: dict[str, Any]) -> None:
        self.out = out
        self.data: dict[str, Any] = {**header, "stages": {}, "summary": {}}
        self.current: dict[str, Any] | None = None

    def say(self, text: str = "") -> None:
        """Print (flushed) and keep the line with the current stage for the Markdown."""
        print(text, flush=True)
        if self.current is not None:
            self.current.setdefault("printed", []).extend(text.splitlines() or [""])

    def save(self) -> None:
        from caalib.atomic import write_json, write_text

        self.data["updated"] = _now()
        write_json(self.out / JSON_NAME, self.data)
        write_text(self.out / MD_NAME, render_markdown(self.data))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def render_markdown(data: dict[str, Any]) -> str:
    lines = [f"# GPU throughput check (issue 14): {data.get('mode')} mode", "",
             f"Started {data.get('started')}, updated {data.get('updated')}, budget "
             f"{data.get('budget_s')} s, commit {data.get('commit') or 'unknown'}.", ""]
    summary = data.get("summary") or {}
    if summary.get("lines"):
        lines += ["## Summary", "", "```", *summary["lines"], "```", ""]
    for key, st in data.get("stages", {}).items():
        peak = st.get("peak") or {}
        bits = [f"{k} {v / GIB:.2f} GiB" for k, v in peak.items()
                if isinstance(v, int | float) and k.endswith("bytes")]
        lines += [f"## {st.get('title', key)}", "",
                  f"Status: **{st.get('status')}**"
                  + (f" ({st['reason']})" if st.get("reason") else "")
                  + f"; wall {st.get('wall_s', 0):.1f} s"
                  + (f"; peak: {', '.join(bits)}" if bits else ""), ""]
        if st.get("printed"):
            lines += ["```", *st["printed"], "```", ""]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- child processes
def _proc_tree(root: int) -> list[int]:
    """``root`` and its descendants (Linux /proc; just ``root`` where unreadable)."""
    children: dict[int, list[int]] = {}
    try:
        names = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return [root]
    for name in names:
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])  # state, ppid, ...
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _memory_of(pid: int) -> tuple[int, int]:
    """(resident bytes now, resident high-water mark) of ``pid``; (0, 0) when gone.

    The high-water mark is the process's own since its exec (VmHWM), unlike wait4's
    ru_maxrss, which carries the parent's RSS at fork time into every child."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0, 0
    return rss, max(rss, hwm)


def _gpu_used() -> int | None:
    """Device-wide GPU memory in use, all processes (None without CUDA in this process)."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    free, total = torch.cuda.mem_get_info()
    return int(total - free)


class Sampler:
    """Samples a process tree's memory (the summed RSS, and each process's high-water
    mark) and the GPU's memory in use while it runs, plus an optional progress probe.
    A process living less than one interval may be missed."""

    def __init__(self, root: int, interval: float = 0.5,
                 probe: Callable[[], Any] | None = None) -> None:
        self.root, self.interval, self.probe = root, interval, probe
        self.rss_peak = 0  # summed RSS of the tree at one moment, highest seen
        self.hwm: dict[int, int] = {}  # pid -> its high-water mark
        self.gpu_base = _gpu_used()
        self.gpu_peak = self.gpu_base
        self.progress: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        total = 0
        for pid in _proc_tree(self.root):
            rss, hwm = _memory_of(pid)
            total += rss
            if hwm:
                self.hwm[pid] = max(self.hwm.get(pid, 0), hwm)
        self.rss_peak = max(self.rss_peak, total)
        used = _gpu_used()
        if used is not None:
            self.gpu_peak = max(self.gpu_peak or 0, used)
        if self.probe is not None:
            try:
                self.progress = self.probe()
            except OSError:
                pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def peaks(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tree_rss_sampled_bytes": self.rss_peak,
            "largest_process_hwm_bytes": max(self.hwm.values(), default=0),
            "processes_seen": len(self.hwm)}
        if self.gpu_peak is not None:
            out["gpu_used_sampled_bytes"] = self.gpu_peak
            out["gpu_used_before_bytes"] = self.gpu_base
        return out


@dataclass
class ChildResult:
    rc: int
    wall_s: float
    cpu_s: float  # user + system of the child and everything it waited for
    peaks: dict[str, Any]
    timed_out: bool
    progress: Any


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def caa(*args: str) -> list[str]:
    """The ``caa`` command as this Python runs it (caalib need not be installed)."""
    return [sys.executable, "-m", "caalib", *args]


def run_child(cmd: list[str], limit_s: float, report: Report,
              probe: Callable[[], Any] | None = None) -> ChildResult:
    """Run ``cmd`` in its own process group with its output passed through; SIGTERM (then
    SIGKILL) the group after ``limit_s``; peak memory from rusage and from sampling."""
    shown = ["python", *cmd[1:]] if cmd[0] == sys.executable else cmd
    report.say("$ " + " ".join(a if len(a) < 120 else a[:100] + "..." for a in shown))
    timed_out = threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), start_new_session=True)

    def stop() -> None:
        timed_out.set()
        _kill_group(proc.pid, signal.SIGTERM)
        time.sleep(10)
        _kill_group(proc.pid, signal.SIGKILL)

    timer = threading.Timer(max(1.0, limit_s), stop)
    timer.daemon = True
    with Sampler(proc.pid, probe=probe) as sampler:
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # its CPU time, children's included
        except BaseException:
            _kill_group(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildResult(rc=proc.returncode, wall_s=time.perf_counter() - t0,
                       cpu_s=usage.ru_utime + usage.ru_stime, peaks=sampler.peaks(),
                       timed_out=timed_out.is_set(), progress=sampler.progress)


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def child_record(res: ChildResult) -> dict[str, Any]:
    return {"rc": res.rc, "wall_s": res.wall_s, "cpu_s": res.cpu_s,
            "timed_out": res.timed_out,
            "peak": {"child": True, **res.peaks}}


def peak_text(peak: dict[str, Any]) -> str:
    names = {"largest_process_hwm_bytes": "largest process (its RSS high-water mark)",
             "tree_rss_sampled_bytes": "all its processes together (RSS, sampled)",
             "gpu_used_sampled_bytes": "GPU memory in use, all processes (sampled)",
             "gpu_max_allocated_bytes": "GPU max allocated (torch, this process)",
             "self_max_rss_bytes": "this process's peak RSS so far"}
    bits = []
    for key, name in names.items():
        value = peak.get(key)
        if isinstance(value, int | float):
            if key == "gpu_used_sampled_bytes" and peak.get("gpu_used_before_bytes"):
                bits.append(f"{name} {value / GIB:.2f} GiB (before "
                            f"{peak['gpu_used_before_bytes'] / GIB:.2f})")
            else:
                bits.append(f"{name} {value / GIB:.2f} GiB")
    return "; ".join(bits) or "not measured"


def dir_bytes(path: Path) -> int:
    total = 0
    for base, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total


# ---------------------------------------------------------------------- the stage runner
class Context:
    """What the stages share: mode, budget, report, scratch, and results so far."""

    def __init__(self, mode: Mode, budget: Budget, report: Report, scratch: Path) -> None:
        self.mode, self.budget, self.report, self.scratch = mode, budget, report, scratch
        self.cuda = False
        self.cores = 1
        self.rates: dict[str, dict[str, Any]] = {}
        self.calibration: dict[str, float] = {}
        self.rehearsal_overhead_s: float | None = None
        self.stage1_deadline = budget.total_s  # budget seconds stage 1 may run until
        self.synth_dir: Path | None = None  # the rehearsal's dataset, once made
        self.features_done = False

    def expected(self, key: str) -> float:
        return float(self.mode.expected[key])


def run_stage(ctx: Context, key: str, title: str, expected_s: float,
              fn: Callable[[Context, dict[str, Any]], None]) -> dict[str, Any]:
    """Run one stage: header, budget check, wall time, peak memory, save (always)."""
    import torch

    report, budget = ctx.report, ctx.budget
    rec: dict[str, Any] = {"title": title, "status": "running", "expected_s": expected_s,
                           "wall_s": 0.0}
    report.data["stages"][key] = rec
    report.current = rec
    report.say("")
    report.say(f"== {title}  (expected ~{expected_s:.0f} s; {budget.left():.0f} s of the "
               f"{budget.total_s:.0f} s budget left)")
    if expected_s > budget.left():
        rec.update(status="skipped", reason=f"expected ~{expected_s:.0f} s but only "
                   f"{max(budget.left(), 0):.0f} s of the budget left")
        report.say(f"-- skipped: {rec['reason']}")
        report.save()
        return rec
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        fn(ctx, rec)
        rec["status"] = "done"
    except StageSkipped as exc:
        rec.update(status="skipped", reason=str(exc))
    except KeyboardInterrupt:
        rec.update(status="interrupted", reason="a signal or the time limit")
        raise
    except Exception as exc:  # one stage failing must not cost the others
        rec.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
        report.say(traceback.format_exc().rstrip())
    finally:
        rec["wall_s"] = time.perf_counter() - t0
        peak = rec.setdefault("peak", {})
        if not peak.get("child"):  # an in-process stage
            from caalib.bench.environment import max_rss_bytes

            if ctx.cuda:
                peak["gpu_max_allocated_bytes"] = max(
                    int(torch.cuda.max_memory_allocated()),
                    peak.get("gpu_max_allocated_bytes", 0))
            peak.setdefault("self_max_rss_bytes", max_rss_bytes())
        reason = f" ({rec['reason']})" if rec.get("reason") else ""
        report.say(f"-- {title}: {rec['status']}{reason} in {rec['wall_s']:.1f} s; peak "
                   f"memory: {peak_text(peak)}")
        summarise(ctx)
        report.save()
    return rec


def part(ctx: Context, rec: dict[str, Any], name: str, expected_s: float,
         deadline: float) -> bool:
    """Whether a part of a stage fits before ``deadline`` (budget seconds); records and
    prints the reason when it does not."""
    left = deadline - ctx.budget.elapsed()
    if expected_s <= left:
        return True
    reason = f"expected ~{expected_s:.0f} s, {max(left, 0):.0f} s left for it"
    rec.setdefault("skipped_parts", {})[name] = reason
    ctx.report.say(f"   {name}: skipped ({reason})")
    ctx.report.save()
    return False


# ---------------------------------------------------------------------- stage 0
def stage_environment(ctx: Context, rec: dict[str, Any]) -> None:
    import importlib

    import torch

    from caalib.accelerator import resolve_torch_device, usable_cpus
    from caalib.bench.environment import environment

    device = resolve_torch_device(ctx.mode.accelerator, field="accelerator")
    ctx.cuda = device.type == "cuda"
    if ctx.cuda:
        torch.cuda.init()
    ctx.cores = usable_cpus()
    env = environment(device)
    env["usable_cpus"] = ctx.cores
    env["python_executable"] = sys.executable
    env["cudnn_benchmark_default"] = bool(torch.backends.cudnn.benchmark)
    packages = {}
    for name in ("numpy", "scipy", "pandas", "h5py", "soundfile", "librosa", "resampy",
                 "soxr", "tqdm", "filelock"):
        try:
            packages[name] = getattr(importlib.import_module(name), "__version__", "?")
        except Exception as exc:  # a missing audio package stops stages 1-2, not this one
            packages[name] = f"missing ({type(exc).__name__})"
    env["packages"] = packages
    usage = shutil.disk_usage(ctx.scratch)
    env["scratch"] = {"path": str(ctx.scratch), "free_bytes": usage.free}
    if ctx.cuda:
        free, total = torch.cuda.mem_get_info()
        env["gpu_free_bytes"], env["gpu_total_bytes"] = int(free), int(total)
        env["nvidia_smi"] = _nvidia_smi()
    rec["result"] = env
    say = ctx.report.say
    say(f"device: {env.get('device_name')} ({device.type}); torch {env['torch']}, CUDA "
        f"{env['cuda']}, cuDNN {env['cudnn']}; Python {env['python']}")
    if ctx.cuda:
        say(f"GPU memory: {env['gpu_total_bytes'] / GIB:.1f} GiB, "
            f"{env['gpu_free_bytes'] / GIB:.1f} GiB free; {env.get('nvidia_smi') or ''}")
    say(f"CPUs: {ctx.cores} usable of {env['cpu_count']}; platform {env['platform']}")
    say(f"scratch: {ctx.scratch} ({usage.free / GIB:.1f} GiB free); commit "
        f"{ctx.report.data.get('commit') or 'unknown'}")
    say("packages: " + ", ".join(f"{k} {v}" for k, v in packages.items()))
    missing = [k for k, v in packages.items() if v.startswith("missing")]
    if missing:
        say(f"WARNING: {', '.join(missing)} missing: synthesis and features will fail "
            "(resampy 0.2.2 also needs setuptools < 81 for pkg_resources); rates and the "
            "extrapolation still run")
    if not ctx.cuda and ctx.mode.name != "smoke":
        raise StageSkipped("no CUDA device here: the GPU check needs one (--smoke runs "
                           "the same stages on the CPU at tiny sizes)")


def _nvidia_smi() -> str | None:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                               "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=20)
        return done.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# ---------------------------------------------------------------------- stage 1
def table_configs(mode: Mode) -> list[Any]:
    """Table II's 84 runs at the mode's profile on the mode's accelerator."""
    from caalib.training.sweep import enumerate_runs

    return enumerate_runs("II", mode.profile, "dcase2018", accelerator=mode.accelerator,
                          **dict(mode.table_overrides))


def flop_table(configs: Sequence[Any]) -> dict[str, dict[str, float]]:
    """Training GFLOP per sample of each model, unconditioned and multi-task."""
    from caalib.summary import model_summary

    out: dict[str, dict[str, float]] = {}
    for c in configs:
        if c.strategy not in ("joint", "multi_task"):
            continue
        s = model_summary(dict(topology=c.topology, pooling=c.pooling, strategy=c.strategy,
                               cond_layer=c.cond_layer, width=c.width,
                               n_frames=c.max_frames or 320))
        out.setdefault(label((c.topology, c.pooling)), {})[c.strategy] = (
            s.training_flops_per_sample / 1e9)
    return out


def stage_table_ii(ctx: Context, rec: dict[str, Any]) -> None:
    mode, say = ctx.mode, ctx.report.say
    configs = table_configs(mode)
    deadline = ctx.stage1_deadline
    say(f"Table II: {len(configs)} runs (14 models x 6 strategies), profile {mode.profile}"
        + (f" with {dict(mode.table_overrides)}" if mode.table_overrides else "")
        + f"; this stage may use {deadline - ctx.budget.elapsed():.0f} s")
    flops = flop_table(configs)
    rec["flops_gflop_per_sample"] = flops
    say("training GFLOP per sample (joint / multi-task) and the sample that prices it:")
    for name, f in flops.items():
        model = tuple(name.split(":"))
        say(f"  {name:16s} {f['joint']:8.2f} / {f['multi_task']:8.2f}  -> "
            f"{label(stands_for(model))} ({pack_class(model)})")
    say("sampled models (rates measured for joint, which also prices single-device and "
        "teacher forcing, and multi-task):")
    for model, why in SAMPLE_WHY.items():
        say(f"  {label(model)}: {why}")
    rec["sample"] = {label(m): why for m, why in SAMPLE_WHY.items()}
    ctx.report.save()

    data_dir = guarded(ctx, rec, "pack_data", lambda: pack_dataset(ctx, rec, deadline))
    measure_rates(ctx, rec, configs, deadline)
    for cls in PACK_SAMPLE:
        if cls not in mode.pack_classes:
            rec.setdefault("packing", {})[cls] = {
                "status": "skipped", "reason": f"{mode.name} mode times one class"}
        elif data_dir is not None:
            guarded(ctx, rec, f"packing {cls}",
                    lambda cls=cls: measure_packing(ctx, rec, cls, data_dir, deadline))
    if data_dir is not None and mode.overhead_iterations:
        guarded(ctx, rec, "process overhead",
                lambda: measure_process_overhead(ctx, rec, data_dir, deadline))
    try:
        for model in rec["flops_gflop_per_sample"]:
            sample_for(tuple(model.split(":")), ctx.rates)
    except KeyError as exc:
        raise StageSkipped(f"{exc.args[0]}: no extrapolation") from None
    rec["estimate"] = extrapolate_and_print(ctx, configs, rec, with_floor=True)


def guarded(ctx: Context, rec: dict[str, Any], name: str, fn: Callable[[], Any]) -> Any:
    """Run one part of a stage; a failure is recorded and printed, and the other parts
    (and the extrapolation, from what was measured) go on."""
    try:
        return fn()
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        rec.setdefault("failed_parts", {})[name] = f"{type(exc).__name__}: {exc}"
        ctx.report.say(f"   {name}: FAILED ({type(exc).__name__}: {exc})")
        ctx.report.say(traceback.format_exc().rstrip())
        ctx.report.save()
        return None


def pack_dataset(ctx: Context, rec: dict[str, Any], deadline: float) -> Path | None:
    """A small dataset of real-length clips for the packing and overhead runs; its
    synthesis and feature times calibrate stage 2's expectations."""
    from caalib.features import default_feature_path, extract_features
    from caalib.synth import SynthProfile

    mode = ctx.mode
    if not part(ctx, rec, "pack_data", ctx.expected("pack_data"), deadline):
        return None
    ta, ea, tb, eb = mode.pack_counts
    prof = SynthProfile("gpu-throughput", clip_seconds=mode.pack_clip_s, train_a=ta,
                        evaluate_a=ea, train_bc=tb, evaluate_bc=eb, clips_per_location=3,
                        a_channels=2, a_subtype="PCM_24", workers=ctx.cores)
    out = ctx.scratch / "pack2018"
    shutil.rmtree(out, ignore_errors=True)
    # in a fresh process: synthesis forks its workers, and this one holds a CUDA context
    code = ("from caalib.synth import SynthProfile, synthesize; "
            f"synthesize({str(out)!r}, profile=SynthProfile(**{asdict(prof)!r}), "
            "layout='dcase2018', seed=0, progress=False)")
    res = run_child([sys.executable, "-c", code], deadline - ctx.budget.elapsed(), ctx.report)
    if res.rc != 0:
        raise RuntimeError(f"synthesising the packing dataset exited with {res.rc}")
    t_synth = res.wall_s
    t0 = time.perf_counter()
    extract_features(out, default_feature_path(out), progress=False)
    t_feat = time.perf_counter() - t0
    n_a, n_bc = ta + ea, 2 * (tb + eb)
    # device-A groups render alone or with their B/C twins (about 3.4x one clip's cost,
    # measured on a 2-core EPYC): cost units per clip-group, as the full set has them
    units = (n_a - n_bc / 2) + 3.4 * (n_bc / 2)
    ctx.calibration = {
        "synth_unit_s_per_core": t_synth * ctx.cores / units * 10.0 / mode.pack_clip_s,
        "features_a_clip_s_per_core": t_feat * ctx.cores / (n_a + 0.1 * n_bc),
    }
    rec["pack_data"] = {"clips": n_a + n_bc, "clip_seconds": mode.pack_clip_s,
                        "synth_s": t_synth, "features_s": t_feat,
                        "workers": ctx.cores, "calibration": ctx.calibration}
    ctx.report.say(f"packing dataset: {n_a + n_bc} clips of {mode.pack_clip_s:g} s "
                   f"synthesised in {t_synth:.1f} s on {ctx.cores} worker(s), features in "
                   f"{t_feat:.1f} s")
    ctx.report.save()
    return out


def measure_rates(ctx: Context, rec: dict[str, Any], configs: Sequence[Any],
                  deadline: float) -> None:
    """Step time, scoring rate and peak memory of each sampled model, joint and
    multi-task, through the run's own Engine."""
    from caalib.training.estimate import measured_matmul_rate
    from caalib.training.throughput import measure

    mode, say = ctx.mode, ctx.report.say
    dtype = "bf16" if ctx.cuda and configs[0].precision == "bf16" else "fp32"
    matmul = measured_matmul_rate("cuda" if ctx.cuda else "cpu", dtype)
    rec["matmul_rate"] = {"dtype": dtype, "flop_per_s": matmul}
    say(f"measured {dtype} matmul rate: {matmul / 1e12:.2f} TFLOP/s")
    say(f"{'model':14s} {'variant':11s} {'step ms':>8s} {'eval clip/s':>11s} "
        f"{'peak GiB':>8s} {'of matmul':>9s}")
    rec["rates"] = ctx.rates
    for model in SAMPLE_WHY:
        for variant in ("joint", "multi_task"):
            if not part(ctx, rec, f"rate {label(model)} {variant}",
                        ctx.expected("rate"), deadline):
                continue
            cfg = next(c for c in configs if (c.topology, c.pooling) == model
                       and c.strategy == variant)
            r = guarded(ctx, rec, f"rate {label(model)} {variant}",
                        lambda cfg=cfg: measure(cfg, n_frames=mode.frames,
                                                steps=mode.measure_steps,
                                                eval_batches=mode.eval_batches))
            if r is None:
                continue
            util = r.utilisation(matmul)
            ctx.rates.setdefault(label(model), {})[variant] = {**asdict(r),
                                                              "utilisation": util}
            say(f"{label(model):14s} {variant:11s} {1e3 * r.step_s:8.2f} "
                f"{r.eval_clips_per_s:11.0f} {r.peak_bytes / GIB:8.2f} {100 * util:8.1f}%")
            rec.setdefault("peak", {})["gpu_max_allocated_bytes"] = max(
                r.peak_bytes, rec.get("peak", {}).get("gpu_max_allocated_bytes", 0))
            ctx.report.save()


def _model_rates(ctx: Context, model: tuple[str, str]) -> list[Any]:
    from caalib.training.throughput import ModelRate

    fields = ModelRate.__dataclass_fields__
    return [ModelRate(**{k: v for k, v in r.items() if k in fields})
            for r in ctx.rates.get(label(model), {}).values()]


def _loop_span(results: Path, names: Sequence[str]) -> tuple[float, float]:
    """(first loop start, last loop end) of finished runs, as file times: config.json is
    written just before the training loop starts, DONE just after the run ends."""
    from caalib import rundir

    starts, ends = [], []
    for name in names:
        run = results / rundir.RUNS_DIR / name
        starts.append((run / rundir.CONFIG_FILE).stat().st_mtime)
        ends.append((run / rundir.DONE_FILE).stat().st_mtime)
    return min(starts), max(ends)


def measure_packing(ctx: Context, rec: dict[str, Any], cls: str, data_dir: Path,
                    deadline: float) -> None:
    """K short real runs of the class's model through run_sweep, one after another and
    K at once; the packing factor is the serial loops' total over the packed loops' span
    (first start to last end, so start-up stagger counts against packing)."""
    import torch

    from caalib.training.config import TrainConfig
    from caalib.training.estimate import measured_matmul_rate
    from caalib.training.sweep import run_sweep
    from caalib.training.throughput import choose_jobs

    mode, say = ctx.mode, ctx.report.say
    model = PACK_SAMPLE[cls]
    rates = _model_rates(ctx, model)
    out = rec.setdefault("packing", {})
    if not rates:
        out[cls] = {"status": "skipped", "reason": f"{label(model)} was not measured"}
        say(f"packing {cls}: skipped ({label(model)} was not measured)")
        return
    if mode.fixed_jobs is not None:
        jobs, why = mode.fixed_jobs, f"fixed at {mode.fixed_jobs} in {mode.name} mode"
    else:
        free, _ = torch.cuda.mem_get_info()
        rate = measured_matmul_rate("cuda", "bf16" if rates[0].device == "cuda" else "fp32")
        jobs = choose_jobs(rates, free, rate)
        busiest = max(r.utilisation(rate) for r in rates)
        why = (f"choose_jobs: heaviest peak {max(r.peak_bytes for r in rates) / GIB:.2f} "
               f"GiB of {free / GIB:.1f} GiB free, {100 * busiest:.0f} % of the matmul "
               "rate per run")
    step = ctx.rates[label(model)]["joint"]["step_s"]
    lo, hi = mode.pack_iterations
    iters = int(min(hi, max(lo, round(mode.pack_loop_s / step / 50) * 50)))
    if jobs < 2:
        out[cls] = {"status": "not needed", "jobs": jobs, "why": why, "factor": 1.0}
        say(f"packing {cls} ({label(model)}): {why} -> 1 run at a time, factor 1")
        return
    # serial K loops, then K loops sharing the device (at worst no faster), workers' start
    expected = 2 * jobs * iters * step + ctx.expected("worker_start")
    if not part(ctx, rec, f"packing {cls}", expected, deadline):
        out[cls] = {"status": "skipped", "jobs": jobs, "why": why,
                    "reason": rec["skipped_parts"][f"packing {cls}"]}
        return
    say(f"packing {cls} ({label(model)} joint, {iters} iterations, seeds 0-{jobs - 1}): "
        f"K = {jobs} ({why})")
    cfgs = [TrainConfig.from_profile(mode.profile, topology=model[0], pooling=model[1],
                                     strategy="joint", seed=s, iterations=iters,
                                     accelerator=mode.accelerator, dataset="dcase2018")
            for s in range(jobs)]
    names = [c.run_name for c in cfgs]
    base = ctx.scratch / "packing" / cls
    shutil.rmtree(base, ignore_errors=True)
    serial = run_sweep(cfgs, base / "jobs1", data_dir, progress=False, jobs=1)
    t_start = time.time()
    with Sampler(os.getpid()) as sampler:
        packed = run_sweep(cfgs, base / f"jobs{jobs}", data_dir, progress=False, jobs=jobs)
    loops1 = [float(v) for v in serial["wall_time_s"]]
    loopsk = [float(v) for v in packed["wall_time_s"]]
    first, last = _loop_span(base / f"jobs{jobs}", names)
    span = last - first
    priced = _priced_loop(ctx, cfgs[0], model)
    wall1, wallk = serial.attrs["wall_time_s"], packed.attrs["wall_time_s"]
    res = {
        "status": "done", "model": label(model), "jobs": jobs, "why": why,
        "iterations": iters, "serial_loops_s": loops1, "packed_loops_s": loopsk,
        "packed_span_s": span, "serial_sweep_s": wall1, "packed_sweep_s": wallk,
        "factor": sum(loops1) / span if span > 0 else 1.0,
        "sweep_ratio": wall1 / wallk if wallk > 0 else 1.0,
        "sweep_overhead_per_run_s": max(0.0, (wall1 - sum(loops1)) / jobs),
        "worker_start_s": max(0.0, first - t_start),
        "priced_loop_s": priced, "serial_loop_vs_priced": sum(loops1) / jobs / priced,
        "peak": sampler.peaks(),
    }
    out[cls] = res
    stage_peak = rec.setdefault("peak", {})
    for key in ("tree_rss_sampled_bytes", "gpu_used_sampled_bytes"):
        if res["peak"].get(key) is not None:
            stage_peak[key] = max(stage_peak.get(key) or 0, res["peak"][key])
    say(f"  one after another: loops {', '.join(f'{v:.1f}' for v in loops1)} s, sweep "
        f"{wall1:.1f} s ({res['sweep_overhead_per_run_s']:.2f} s per run outside the loop)")
    say(f"  {jobs} at once: loops {', '.join(f'{v:.1f}' for v in loopsk)} s, span "
        f"{span:.1f} s, sweep {wallk:.1f} s (first loop began {res['worker_start_s']:.1f} s "
        f"after the sweep started)")
    say(f"  packing factor {res['factor']:.2f}x (loop time / packed span); whole sweeps "
        f"{res['sweep_ratio']:.2f}x; peak: {peak_text(res['peak'])}")
    say(f"  check of the pricing: a real loop alone took {res['serial_loop_vs_priced']:.2f}x "
        f"what the measured rates price it at ({priced:.1f} s: log points, checkpoints and "
        "the evaluation's bookkeeping add to a loop; the measurement's sync per step adds to "
        "the price)")
    ctx.report.save()


def _priced_loop(ctx: Context, cfg: Any, model: tuple[str, str]) -> float:
    """What the measured rates price one packing run's loop at (the pricing's check)."""
    from caalib.training.estimate import evaluations

    rate = ctx.rates[label(model)]["joint"]
    _, ea, _, eb = ctx.mode.pack_counts
    return (cfg.iterations * rate["step_s"]
            + evaluations(cfg) * (ea + 2 * eb) / rate["eval_clips_per_s"])


def measure_process_overhead(ctx: Context, rec: dict[str, Any], data_dir: Path,
                             deadline: float) -> None:
    """What one ``caa train`` process spends outside its training loop (imports, CUDA
    start, data checks and loading, writing the run) on the small dataset."""
    from caalib import rundir

    mode = ctx.mode
    if not part(ctx, rec, "process overhead", ctx.expected("overhead"), deadline):
        return
    run = ctx.scratch / "overhead" / "run"
    shutil.rmtree(run.parent, ignore_errors=True)
    cmd = caa("train", "--data", str(data_dir), "--topology", "pool", "--pooling", "max",
              "--strategy", "joint", "--profile", mode.profile, "--iterations",
              str(mode.overhead_iterations), "--accelerator", mode.accelerator,
              "--no-progress", "--out", str(run))
    res = run_child(cmd, deadline - ctx.budget.elapsed(), ctx.report)
    if res.rc != 0:
        raise RuntimeError(f"caa train exited with {res.rc}")
    import json

    loop = json.loads((run / rundir.METRICS_FILE).read_text())["wall_time_s"]
    rec["process_overhead"] = {**child_record(res), "loop_s": loop,
                               "overhead_s": res.wall_s - loop}
    ctx.report.say(f"one caa train process on the small dataset: {res.wall_s:.1f} s, of which "
                   f"{loop:.1f} s in its loop: {res.wall_s - loop:.1f} s outside it")
    ctx.report.save()


# ---------------------------------------------------------------------- pricing
def eval_clip_counts() -> dict[str, int]:
    """Table II's evaluate split per recording device at DCASE 2018 size (2,878)."""
    from caalib.synth.profiles import REAL_COUNTS

    real = REAL_COUNTS["dcase2018"]
    return {"a": real.evaluate_a, "b": real.evaluate_bc, "c": real.evaluate_bc}


def price_table(configs: Sequence[Any], rates: dict[str, dict[str, Any]],
                packing: dict[str, float], process_overhead_s: float,
                sweep_overhead_s: float, worker_start_s: float) -> dict[str, Any]:
    """Every run priced from its sample's rates. BEFORE: dense evaluation, one process
    per run, one after another. AFTER: the config's own (sparse) schedule, in one sweep
    per packing class whose runs share the GPU by the class's factor, plus one worker
    start-up per class (workers start together)."""
    from caalib.training.estimate import evaluations

    clips_of = eval_clip_counts()
    n_evals: dict[tuple[Any, ...], int] = {}

    def count(c: Any, schedule: str) -> int:
        key = (c.strategy, c.lambda_mode, c.iterations, c.eval_every, schedule)
        if key not in n_evals:
            n_evals[key] = evaluations(c.replace(eval_schedule=schedule))
        return n_evals[key]

    per_model: dict[str, dict[str, Any]] = {}
    for c in configs:
        model = (c.topology, c.pooling)
        variant = "multi_task" if c.strategy == "multi_task" else "joint"
        sample = sample_for(model, rates)
        rate = rates[sample][variant]
        clips = sum(clips_of[s] for s in c.eval_sources)
        dense, sparse = count(c, "dense"), count(c, c.eval_schedule)
        row = per_model.setdefault(label(model), {
            "model": label(model), "sample": sample,
            "class": pack_class(model), "runs": 0, "train_s": 0.0, "eval_dense_s": 0.0,
            "eval_after_s": 0.0, "evaluations_dense": 0, "evaluations_after": 0})
        row["runs"] += 1
        row["train_s"] += c.iterations * rate["step_s"]
        row["eval_dense_s"] += dense * clips / rate["eval_clips_per_s"]
        row["eval_after_s"] += sparse * clips / rate["eval_clips_per_s"]
        row["evaluations_dense"] += dense
        row["evaluations_after"] += sparse
    for row in per_model.values():
        factor = packing[row["class"]]
        row["before_s"] = row["train_s"] + row["eval_dense_s"] + row["runs"] * process_overhead_s
        row["after_serial_s"] = row["train_s"] + row["eval_after_s"] + (
            row["runs"] * sweep_overhead_s)
        row["packing_factor"] = factor
        row["after_s"] = row["after_serial_s"] / factor
    classes = sorted({row["class"] for row in per_model.values()})
    fixed = worker_start_s * len(classes)
    before = sum(r["before_s"] for r in per_model.values())
    after = sum(r["after_s"] for r in per_model.values()) + fixed
    return {"kind": "extrapolation from measured sample rates", "runs": len(configs),
            "per_model": list(per_model.values()), "after_fixed_s": fixed,
            "before_s": before, "after_s": after, "before_h": before / 3600,
            "after_h": after / 3600, "goal_h": GOAL_HOURS, "today_h": TODAY_HOURS,
            "meets_goal": after / 3600 <= GOAL_HOURS, "eval_clips": clips_of}


def estimate_inputs(ctx: Context, rec: dict[str, Any]) -> dict[str, Any]:
    """Packing factors and overheads, measured where possible, each with its source."""
    packing = rec.get("packing", {})
    factors, sources = {}, {}
    for cls in PACK_SAMPLE:
        p = packing.get(cls, {})
        measured = float(p.get("factor", 1.0))
        factors[cls] = max(1.0, measured)  # below 1 a sweep would run one at a time
        status = p.get("status", "not measured")
        sources[cls] = (f"measured {measured:.2f}x with {p.get('jobs')} at once"
                        + (", so none credited" if measured < 1.0 else "")
                        if status == "done"
                        else "choose_jobs picks one run at a time" if status == "not needed"
                        else f"{status}: none credited")
    done = [p for p in packing.values() if p.get("status") == "done"]
    if done:
        sweep_over = sum(p["sweep_overhead_per_run_s"] for p in done) / len(done)
        start = max(p["worker_start_s"] for p in done)
        sweep_src = start_src = "measured in the packing sweeps (small dataset)"
    else:
        sweep_over, start = 0.0, 0.0
        sweep_src = start_src = "not measured: 0"
    over = rec.get("process_overhead", {}).get("overhead_s")
    if ctx.rehearsal_overhead_s is not None:
        over = ctx.rehearsal_overhead_s
        over_src = "measured: the rehearsal's caa train on its (full-size) dataset"
        start = max(start, ctx.rehearsal_overhead_s)
        start_src = "the rehearsal's caa train overhead (each worker loads the data once)"
    elif over is not None:
        over_src = "measured: one caa train process on the small dataset"
    else:
        over, over_src = ISSUE_PROCESS_OVERHEAD_S, "not measured: the issue's 9 s (H200)"
    return {"packing": factors, "packing_source": sources,
            "process_overhead_s": over, "process_overhead_source": over_src,
            "sweep_overhead_s": sweep_over, "sweep_overhead_source": sweep_src,
            "worker_start_s": start, "worker_start_source": start_src}


def extrapolate_and_print(ctx: Context, configs: Sequence[Any], rec: dict[str, Any],
                          with_floor: bool) -> dict[str, Any]:
    say = ctx.report.say
    inputs = estimate_inputs(ctx, rec)
    est = price_table(configs, ctx.rates, inputs["packing"], inputs["process_overhead_s"],
                      inputs["sweep_overhead_s"], inputs["worker_start_s"])
    est["inputs"] = inputs
    if with_floor:
        from caalib.training.estimate import floor

        n = sum(est["eval_clips"].values())
        dense = floor([c.replace(eval_schedule="dense") for c in configs], n, n_frames=320)
        after = floor(configs, n, n_frames=320)
        est["floor"] = {"before_h": dense.hours, "after_h": after.hours,
                        "text_after": after.text()}
    say("")
    say(f"Table II at {ctx.mode.profile} size, {est['runs']} runs: an EXTRAPOLATION from "
        "the rates measured above on the sampled models (not 84 runs trained)")
    say(f"inputs: process overhead {inputs['process_overhead_s']:.1f} s/run "
        f"({inputs['process_overhead_source']}); in-sweep overhead "
        f"{inputs['sweep_overhead_s']:.2f} s/run ({inputs['sweep_overhead_source']}); worker "
        f"start {inputs['worker_start_s']:.1f} s per class sweep")
    say("packing: " + "; ".join(f"{k} {v:.2f}x ({inputs['packing_source'][k]})"
                                for k, v in inputs["packing"].items()))
    say(f"evaluate split {sum(est['eval_clips'].values())} clips "
        f"({', '.join(f'{k.upper()} {v}' for k, v in est['eval_clips'].items())}); "
        "single-device runs score their own device's clips")
    say(f"{'model':16s} {'sample':12s} {'runs':>4s} {'evals b/a':>10s} {'before h':>9s} "
        f"{'after h':>8s} {'pack':>5s}")
    for r in est["per_model"]:
        say(f"{r['model']:16s} {r['sample']:12s} {r['runs']:4d} "
            f"{r['evaluations_dense']:5d}/{r['evaluations_after']:<4d} "
            f"{r['before_s'] / 3600:9.3f} {r['after_s'] / 3600:8.3f} "
            f"{r['packing_factor']:4.2f}x")
    say(f"BEFORE (dense evaluation, one caa train process per run, one after another): "
        f"{est['before_h']:.2f} h")
    say(f"AFTER (sparse schedule where nothing reads evaluation, one packed sweep per "
        f"class): {est['after_h']:.2f} h (of which {est['after_fixed_s'] / 3600:.3f} h "
        "worker start-ups)")
    say("  AFTER assumes the pooled models are swept apart from the others (caa sweep "
        "--models pool:flatten,pool:max,pool:avg,pool:att --jobs auto, then the rest): "
        "--jobs auto for a mixed table packs by its heaviest model")
    if "floor" in est:
        say(f"FLOP floor: {est['floor']['after_h']:.2f} h after, "
            f"{est['floor']['before_h']:.2f} h with dense evaluation "
            f"({est['floor']['text_after']})")
    verdict = "MEETS" if est["meets_goal"] else "MISSES"
    say(f"goal: at most {GOAL_HOURS:g} h for all {est['runs']} runs -> {verdict} "
        f"({est['after_h']:.2f} h; today's estimate {TODAY_HOURS} h priced every run at "
        "the atrous + att rate)")
    return est


# ---------------------------------------------------------------------- stage 2
#: Per-core costs measured on a 2-core AMD EPYC VM (10 s clips): rendering one device-A
#: clip 0.22 s (with its B and C twins 0.73 s); features of a 48 kHz stereo clip ~0.055 s.
SYNTH_UNIT_S = 0.22
FEATURE_CLIP_S = 0.055


def synth_expected(ctx: Context) -> float:
    """Seconds for ``caa synth --profile full`` (or tiny in smoke) on this machine's cores:
    the lower of the 2-core VM's rate and stage 1's calibration (a small set on many
    workers overstates the per-clip cost), so the stage is tried rather than skipped."""
    if ctx.mode.name == "smoke":
        return 8.0
    unit = min(SYNTH_UNIT_S, ctx.calibration.get("synth_unit_s_per_core", SYNTH_UNIT_S))
    units = 7920 + 3.4 * 720  # device-A clips alone + groups with B and C twins
    return units * unit / max(1, ctx.cores) * 1.1 + 30.0  # + writing ~26 GB


def features_expected(ctx: Context) -> float:
    if ctx.mode.name == "smoke":
        return ctx.expected("features")
    per_clip = min(FEATURE_CLIP_S,
                   ctx.calibration.get("features_a_clip_s_per_core", FEATURE_CLIP_S))
    return (8640 + 0.1 * 1440) * per_clip / max(1, min(ctx.cores, 32)) * 1.5 + 15.0


def rehearsal_plan(ctx: Context, left_s: float) -> tuple[int, float]:
    """(iterations, expected seconds) of the rehearsal's training run: as many iterations
    as ``left_s`` holds within the mode's clamp, at the measured multi-task rates."""
    from caalib.training.config import PROFILES

    mode = ctx.mode
    rate = ctx.rates.get(label(REHEARSAL_MODEL[:2]), {}).get("multi_task")
    step = rate["step_s"] if rate else 0.026  # the README's H100 figure
    eval_rate = rate["eval_clips_per_s"] if rate else 2000.0
    clips = 2878 if mode.name == "gpu" else 50
    every = PROFILES[mode.profile]["eval_every"]
    over = ctx.expected("train_overhead")

    def cost(n: int) -> float:
        return over + n * step + math.ceil(n / every) * clips / eval_rate

    lo, hi = mode.rehearsal_iterations
    n = hi
    while n > lo and cost(n) > left_s:
        n -= 100
    n = max(lo, n)
    return n, cost(n)


def stage_synth(ctx: Context, rec: dict[str, Any]) -> None:
    from caalib.synth.profiles import SYNTH_PROFILES

    out = ctx.scratch / f"{ctx.mode.synth_profile}2018"
    prof = SYNTH_PROFILES[ctx.mode.synth_profile]
    need = FULL_SET_NEED if ctx.mode.name == "gpu" else 0
    free = shutil.disk_usage(ctx.scratch).free
    if free < need:
        raise StageSkipped(f"{free / GIB:.1f} GiB free at {ctx.scratch}, the full set needs "
                           f"about {need / GIB:.0f} GiB (use --scratch)")
    shutil.rmtree(out, ignore_errors=True)
    # the rest of stage 2 needs this dataset, so stopping early would save nothing: the
    # synthesis may use all the budget left (features and training then skip themselves)
    ctx.report.say(f"limit {ctx.budget.left():.0f} s (the budget left); features and the "
                   f"shortest rehearsal run need ~{features_expected(ctx):.0f} + "
                   f"{rehearsal_plan(ctx, 0)[1]:.0f} s after it")

    def written() -> int:  # clips written so far, in the atomic temp directory
        return sum(len(os.listdir(p / "audio")) for p in out.parent.glob(f".{out.name}.*")
                   if (p / "audio").is_dir())

    res = run_child(caa("synth", str(out), "--profile", ctx.mode.synth_profile,
                        "--workers", str(ctx.cores), "--quiet"), ctx.budget.left(),
                    ctx.report, probe=written)
    rec.update(child_record(res))
    if res.rc != 0:
        made = res.progress or 0
        rec["clips_written_before_stop"] = made
        if res.timed_out and made:
            rate = made / res.wall_s
            rec["projected_full_s"] = 10080 / rate
            ctx.report.say(f"stopped at its limit after {made} clips ({rate:.1f} clips/s): "
                           f"the whole set would take ~{10080 / rate:.0f} s")
        raise RuntimeError(f"caa synth exited with {res.rc}"
                           + (" (stopped at its time limit)" if res.timed_out else ""))
    size = dir_bytes(out)
    n_clips = sum(1 for _ in (out / "audio").iterdir())
    rec["result"] = {"path": str(out), "clips": n_clips, "bytes_on_disk": size,
                     "clip_seconds": prof.clip_seconds, "workers": ctx.cores}
    ctx.synth_dir = out
    ctx.report.say(f"{n_clips} clips of {prof.clip_seconds:g} s, {size / GIB:.2f} GiB on "
                   f"disk, in {res.wall_s:.1f} s ({res.cpu_s:.0f} s CPU: "
                   f"{res.cpu_s / max(res.wall_s, 1e-9):.1f} cores busy on average)")


def stage_features(ctx: Context, rec: dict[str, Any]) -> None:
    data = ctx.synth_dir
    if data is None:
        raise StageSkipped("no dataset: the synth stage did not finish")
    res = run_child(caa("features", str(data), "--quiet"), ctx.budget.left(), ctx.report)
    rec.update(child_record(res))
    if res.rc != 0:
        raise RuntimeError(f"caa features exited with {res.rc}"
                           + (" (stopped at its time limit)" if res.timed_out else ""))
    from caalib.features import default_feature_path

    path = default_feature_path(data)
    rec["result"] = {"path": str(path), "bytes": path.stat().st_size}
    ctx.features_done = True
    ctx.report.say(f"{path.name}: {path.stat().st_size / GIB:.2f} GiB, in {res.wall_s:.1f} s "
                   f"({res.cpu_s:.0f} s CPU)")


def stage_rehearsal(ctx: Context, rec: dict[str, Any]) -> None:
    import json

    from caalib import rundir
    from caalib.constants import PAPER_BEST_LAYERS

    data = ctx.synth_dir
    if data is None or not ctx.features_done:
        raise StageSkipped("no dataset with features: an earlier stage did not finish")
    topology, pooling, strategy = REHEARSAL_MODEL
    layer = PAPER_BEST_LAYERS[(topology, pooling)]
    iters, expected = rehearsal_plan(ctx, ctx.budget.left() - 5)
    if expected > ctx.budget.left():
        raise StageSkipped(f"even {iters} iterations need ~{expected:.0f} s, "
                           f"{ctx.budget.left():.0f} s left")
    ctx.report.say(f"{label(REHEARSAL_MODEL)} at layer {layer}, profile {ctx.mode.profile}, "
                   f"{iters} iterations (chosen to fit: ~{expected:.0f} s expected)")
    run = ctx.scratch / "rehearsal" / "run"
    shutil.rmtree(run.parent, ignore_errors=True)
    res = run_child(caa("train", "--data", str(data), "--topology", topology, "--pooling",
                        pooling, "--strategy", strategy, "--cond-layer", str(layer),
                        "--profile", ctx.mode.profile, "--iterations", str(iters),
                        "--accelerator", ctx.mode.accelerator, "--no-progress",
                        "--out", str(run)),
                    ctx.budget.left(), ctx.report)
    rec.update(child_record(res))
    if res.rc != 0:
        raise RuntimeError(f"caa train exited with {res.rc}"
                           + (" (stopped at its time limit)" if res.timed_out else ""))
    metrics = json.loads((run / rundir.METRICS_FILE).read_text())
    loop = float(metrics["wall_time_s"])
    with open(run / rundir.HISTORY_FILE, newline="") as fh:
        n_evals = sum(1 for row in csv.DictReader(fh) if row.get("acc_avg") not in (None, ""))
    ctx.rehearsal_overhead_s = res.wall_s - loop
    rec["result"] = {"iterations": iters, "loop_s": loop,
                     "overhead_s": res.wall_s - loop, "ms_per_iteration_incl_eval":
                     1e3 * loop / iters, "accuracy": metrics.get("accuracy"),
                     "device_accuracy": metrics.get("device_accuracy"),
                     "lambda_switch_iteration": metrics.get("lambda_switch_iteration"),
                     "history_rows_with_evaluation": n_evals}
    acc = metrics.get("accuracy") or {}
    ctx.report.say(f"{iters} iterations in a {loop:.1f} s loop ({1e3 * loop / iters:.1f} ms "
                   f"per iteration with evaluation and checkpoints); the process took "
                   f"{res.wall_s:.1f} s: {res.wall_s - loop:.1f} s outside the loop")
    ctx.report.say("final metrics: " + "  ".join(
        f"{k.upper() if k != 'avg' else 'avg'} {v:.3f}" for k, v in acc.items()
        if isinstance(v, int | float)) + (f"; CNN-d device accuracy "
                                          f"{metrics['device_accuracy']:.3f}"
                                          if isinstance(metrics.get("device_accuracy"),
                                                        int | float) else ""))


# ---------------------------------------------------------------------- summary
def summarise(ctx: Context) -> None:
    """The verdict so far: the stage-1 estimate, re-priced with the rehearsal's real-size
    process overhead when there is one, and each stage's time."""
    stages = ctx.report.data["stages"]
    lines = []
    est = stages.get("table_ii", {}).get("estimate")
    if est:
        lines.append(f"Table II ({est['runs']} runs, extrapolated from measured sample "
                     f"rates): BEFORE {est['before_h']:.2f} h, AFTER {est['after_h']:.2f} h; "
                     f"goal {GOAL_HOURS:g} h: {'met' if est['meets_goal'] else 'missed'}")
        if "floor" in est:
            lines.append(f"FLOP floor {est['floor']['after_h']:.2f} h (after), "
                         f"{est['floor']['before_h']:.2f} h (dense)")
        final = ctx.report.data["summary"].get("estimate_real_overhead")
        if ctx.rehearsal_overhead_s is not None and final is None:
            inputs = estimate_inputs(ctx, stages["table_ii"])
            final = price_table(table_configs(ctx.mode), ctx.rates, inputs["packing"],
                                inputs["process_overhead_s"], inputs["sweep_overhead_s"],
                                inputs["worker_start_s"])
            final["inputs"] = inputs
            ctx.report.data["summary"]["estimate_real_overhead"] = final
        if final:
            lines.append(f"re-priced with the rehearsal's process overhead "
                         f"({final['inputs']['process_overhead_s']:.1f} s/process): BEFORE "
                         f"{final['before_h']:.2f} h, AFTER {final['after_h']:.2f} h")
    for cls, pk in (stages.get("table_ii", {}).get("packing") or {}).items():
        if pk.get("status") == "done":
            lines.append(f"packing {cls} ({pk['model']}): {pk['jobs']} at once, "
                         f"{pk['factor']:.2f}x (whole sweeps {pk['sweep_ratio']:.2f}x)")
    res = {k: (stages.get(k) or {}).get("result") or {} for k in ("synth", "rehearsal")}
    if res["synth"]:
        lines.append(f"synthetic set: {res['synth']['clips']} clips, "
                     f"{res['synth']['bytes_on_disk'] / GIB:.2f} GiB")
    if res["rehearsal"]:
        r = res["rehearsal"]
        lines.append(f"rehearsal: {r['iterations']} iterations, "
                     f"{r['ms_per_iteration_incl_eval']:.1f} ms each with evaluation, "
                     f"{r['overhead_s']:.1f} s outside the loop, avg accuracy "
                     f"{(r.get('accuracy') or {}).get('avg', float('nan')):.3f}")
    for st in stages.values():
        peak = st.get("peak") or {}
        lines.append(f"{st['title']}: {st['status']}, {st.get('wall_s', 0):.1f} s"
                     + (f" ({st['reason']})" if st.get("reason") else "")
                     + (f"; peak {peak_text(peak)}" if st["status"] == "done" else ""))
    ctx.report.data["summary"]["lines"] = lines
    ctx.report.data["elapsed_s"] = ctx.budget.elapsed()


# ---------------------------------------------------------------------- main
def _git_commit() -> str | None:
    """git's commit of this checkout, else STUDY_COMMIT (caalib.reference's rule)."""
    from caalib.reference import code_version

    return code_version()["commit"]


LATER_STAGES = (("table_ii", "1. Table II before/after"), ("synth", "2a. caa synth"),
                ("features", "2b. caa features"), ("rehearsal", "2c. caa train rehearsal"))


def _placeholders(report: Report, status: str, reason: str) -> None:
    """Entries for the stages that did not start, so the JSON always lists all five."""
    for key, title in LATER_STAGES:
        report.data["stages"].setdefault(key, {"title": title, "status": status,
                                               "reason": reason, "wall_s": 0.0})


def _roomiest(mode: Mode) -> str:
    """The temporary directory, or the checkout's parent where the temporary directory
    lacks the ~30 GiB the full synthetic set needs (GPU mode only)."""
    tmp = tempfile.gettempdir()
    if mode.name == "gpu" and shutil.disk_usage(tmp).free < FULL_SET_NEED:
        parent = str(ROOT.parent)
        if shutil.disk_usage(parent).free > shutil.disk_usage(tmp).free:
            return parent
    return tmp


def _sigterm_to_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="where the JSON and Markdown go")
    p.add_argument("--budget-s", type=float, default=None,
                   help="wall-clock budget of the whole script (default 540; smoke 600)")
    p.add_argument("--smoke", action="store_true",
                   help="every stage on the CPU at tiny sizes (the test suite's run)")
    p.add_argument("--scratch", type=Path, default=None,
                   help="where datasets and runs go (default: a new temporary directory; "
                        "the full synthetic set needs ~27 GiB)")
    p.add_argument("--keep-scratch", action="store_true", help="leave the scratch data")
    p.add_argument("--commit", default=None, help="commit to record (default: git's)")
    args = p.parse_args(argv)
    mode = SMOKE_MODE if args.smoke else GPU_MODE
    budget = Budget(args.budget_s if args.budget_s is not None
                    else (600.0 if args.smoke else 540.0))
    args.out.mkdir(parents=True, exist_ok=True)
    own_scratch = args.scratch is None
    scratch = (Path(tempfile.mkdtemp(prefix="gpu_throughput_", dir=_roomiest(mode)))
               if own_scratch else args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    report = Report(args.out, {"script": "benchmarks/gpu_throughput.py", "mode": mode.name,
                               "budget_s": budget.total_s, "started": _now(),
                               "commit": args.commit or _git_commit(),
                               "argv": sys.argv[1:] if argv is None else argv})
    ctx = Context(mode, budget, report, scratch)
    previous = (signal.signal(signal.SIGTERM, _sigterm_to_interrupt),
                os.environ.get("PYTHONPATH"))
    os.environ["PYTHONPATH"] = child_env()["PYTHONPATH"]  # run_sweep's spawned workers
    print(f"gpu_throughput: {mode.name} mode, budget {budget.total_s:.0f} s, results in "
          f"{args.out}/{JSON_NAME} and {MD_NAME} (rewritten after every stage)", flush=True)
    interrupted = False
    try:
        env = run_stage(ctx, "environment", "0. environment", ctx.expected("environment"),
                        stage_environment)
        if env["status"] != "done":
            _placeholders(report, "skipped", "the environment stage did not pass")
            return 2
        stage2_min = (synth_expected(ctx) + features_expected(ctx)
                      + rehearsal_plan(ctx, 0)[1])
        # stage 1 leaves stage 2 what it needs at least (when stage 2 can run at all)
        ctx.stage1_deadline = max(
            budget.elapsed() + ctx.expected("table_ii"), budget.total_s - stage2_min)
        run_stage(ctx, "table_ii", "1. Table II before/after (measured sample, "
                  "extrapolated to 84 runs)", ctx.expected("table_ii"), stage_table_ii)
        run_stage(ctx, "synth", f"2a. caa synth --profile {mode.synth_profile} "
                  f"--workers {ctx.cores}", synth_expected(ctx), stage_synth)
        run_stage(ctx, "features", "2b. caa features", features_expected(ctx),
                  stage_features)
        run_stage(ctx, "rehearsal", f"2c. caa train rehearsal ({label(REHEARSAL_MODEL)}, "
                  f"profile {mode.profile})", rehearsal_plan(ctx, 0)[1], stage_rehearsal)
    except KeyboardInterrupt:
        interrupted = True
        _placeholders(report, "not reached", "the script was interrupted before it")
        print("gpu_throughput: interrupted; results so far are saved", flush=True)
    finally:
        report.current = None
        summarise(ctx)
        report.save()
        # removing ~26 GiB takes a while; past the budget the machine is left as it is
        if own_scratch and not args.keep_scratch and not interrupted and budget.left() > 0:
            shutil.rmtree(scratch, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous[0])
        if previous[1] is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous[1]
    print("\n== summary", flush=True)
    for line in report.data["summary"].get("lines", []):
        print(line, flush=True)
    return 130 if interrupted else 0


if __name__ == "__main__":
    raise SystemExit(main())
