"""Run the numbered notebook series headless, in order, with papermill.

The notebooks are the study's chapters; this module is the batch reader's way through
them. It injects the same parameters into every notebook (profile, data, results and
figures directories, dataset), writes the executed copies to ``results/notebooks/`` and
stops at the first failing notebook, naming it and the failing cell.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .accelerator import usable_cpus
from .errors import CaaError

#: Where the committed (output-free) notebooks live, relative to the project root.
NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"

#: The project's Jupyter kernel (installed by ``make`` into the virtual environment).
KERNEL_NAME = "caa-net-study"

PROFILES = ("tiny", "demo", "paper")


class StudyError(CaaError):
    """A notebook of the series failed; the message names the notebook and the cell."""


@dataclass
class StudyResult:
    executed: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def notebooks(notebook_dir: str | os.PathLike[str] = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) in reading order."""
    found = sorted(p for p in Path(notebook_dir).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise StudyError(f"no numbered notebooks found in {notebook_dir}")
    return found


def kernel_name() -> str:
    """The project kernel when installed, else the running interpreter's ``python3``."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        if KERNEL_NAME in KernelSpecManager().find_kernel_specs():
            return KERNEL_NAME
    except Exception:  # pragma: no cover - jupyter_client missing or broken
        pass
    return "python3"


def ipc_kernel_manager_class() -> type | None:
    """A kernel manager whose kernel talks over Unix sockets, not unencrypted TCP ports.

    ipykernel warns on every TCP start; Jupyter's IPC transport is the quiet, local-only
    alternative (what ``make venv`` configures JupyterLab with). The sockets sit beside the
    connection file in Jupyter's runtime directory: left to itself, an IPC kernel without a
    connection file would put them in the notebook's folder under one fixed name. ``None``
    off POSIX, where there are no Unix sockets (the default TCP manager is used).
    """
    if os.name != "posix":
        return None
    import uuid

    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets import default

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _ipc_transport(self) -> str:
            return "ipc"

        @default("connection_file")
        def _own_connection_file(self) -> str:
            runtime = Path(jupyter_runtime_dir())
            runtime.mkdir(parents=True, exist_ok=True)
            return str(runtime / f"kernel-{uuid.uuid4()}.json")

    return IPCKernelManager


def _describe_cell(executed: Path, index: int) -> str:
    """Name a failing cell as a reader of the committed notebook counts it.

    Papermill's index counts the parameters cell it injects; the reader's count (1-based,
    code and markdown cells) does not, so it points at the cell they see in JupyterLab.
    """
    try:
        import nbformat

        cells = [  # papermill adds its own error banners to the executed copy
            c for c in nbformat.read(executed, as_version=4).cells
            if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])
        ]
        cell = cells[index]
        injected = sum(
            "injected-parameters" in c.get("metadata", {}).get("tags", []) for c in cells[:index]
        )
        first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
        if len(first) > 60:
            first = first[:57] + "..."
        return f"cell {index + 1 - injected} (`{first}`)"
    except Exception:  # the executed copy is unreadable: fall back to papermill's index
        return f"cell index {index}"


def run_study(
    *,
    profile: str = "demo",
    data_dir: str | os.PathLike[str] = "data/demo",
    dataset: str | None = None,
    results_dir: str | os.PathLike[str] = "results",
    figures_dir: str | os.PathLike[str] = "figures",
    notebook_dir: str | os.PathLike[str] = NOTEBOOK_DIR,
    only: list[str] | None = None,
    progress: bool = True,
    jobs: int | None = None,
) -> StudyResult:
    """Execute every notebook of the series with the given parameters.

    ``dataset`` defaults to the layout of ``data_dir`` (DCASE 2018 or 2019 fold files);
    a mismatch is an error, since runs are labelled with their dataset.
    ``only`` restricts the run to notebooks whose name starts with one of the given
    prefixes (e.g. ``["01", "02"]``). Paths are made absolute before injection so the
    notebooks do not depend on the kernel's working directory. ``jobs`` runs that many
    trainings at once (default: the CPUs this process may use, at most 4); every run's
    numbers depend only on its config, so the tables do not change with it.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    if profile not in PROFILES:
        raise StudyError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    data_dir = Path(data_dir).resolve()
    if not (data_dir / "meta.csv").is_file():
        raise StudyError(
            f"{data_dir}/meta.csv not found: point --data at a DCASE Task 1B development "
            f"set, or make a synthetic one with `caa synth {data_dir} --profile demo`"
        )
    from .datasets import detect_layout

    layout = detect_layout(data_dir)
    if dataset is None:
        dataset = layout
    elif dataset != layout:
        raise StudyError(
            f"--dataset {dataset} does not match {data_dir}, which has the {layout} layout "
            f"(its evaluation_setup/ fold files); leave --dataset out to use {layout}"
        )
    results_dir = Path(results_dir).resolve()
    figures_dir = Path(figures_dir).resolve()
    out_dir = results_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    figures_dir.mkdir(parents=True, exist_ok=True)
    if jobs is None:
        jobs = min(4, usable_cpus())
    if jobs < 1:
        raise StudyError(f"jobs: must be at least 1, got {jobs}")
    params = {
        "jobs": jobs,
        "profile": profile,
        "data_dir": str(data_dir),
        "dataset": dataset,
        "results_dir": str(results_dir),
        "figures_dir": str(figures_dir),
    }
    selected = [
        nb for nb in notebooks(notebook_dir) if not only or any(nb.name.startswith(p) for p in only)
    ]
    kernel = kernel_name()
    quiet = ipc_kernel_manager_class()
    engine_kwargs = {"kernel_manager_class": quiet} if quiet is not None else {}
    result = StudyResult()
    for nb in selected:
        target = out_dir / nb.name
        start = time.perf_counter()
        if progress:
            print(f"[study] {nb.name} ...", flush=True)
        try:
            declared = pm.inspect_notebook(str(nb))  # only 03 takes `jobs`: pass each its own
            pm.execute_notebook(
                str(nb),
                str(target),
                parameters={k: v for k, v in params.items() if k in declared},
                kernel_name=kernel,
                cwd=str(nb.parent),
                progress_bar=progress,  # cell-by-cell bar: notebook 03 trains for minutes
                log_output=False,
                **engine_kwargs,
            )
        except PapermillExecutionError as exc:
            raise StudyError(
                f"notebook {nb.name} failed in {_describe_cell(target, exc.cell_index)}: "
                f"{exc.ename}: {exc.evalue}; the executed copy is {target}"
            ) from None
        elapsed = time.perf_counter() - start
        result.executed.append(target)
        result.seconds[nb.name] = elapsed
        if progress:
            print(f"[study] {nb.name} done in {elapsed:.1f} s", flush=True)
    return result
