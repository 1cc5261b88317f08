"""The reader's JupyterLab: notebooks kept clean by the nbstripout git filter `make` installs,
the landing page `make lab` opens, and the Jupyter server configuration it runs with.

The real-browser check (JupyterLab opened, a chapter run, the file untouched) is in
test_browser.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest

from caalib.landing import LANDING_NAME, landing_markdown, write_landing
from caalib.study import KERNEL_NAME, notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = notebooks()
MAKEFILE = ROOT / "Makefile"
EXTRA_KEYS = re.search(r"^NBSTRIPOUT_EXTRA_KEYS\s*:?=\s*(.+)$", MAKEFILE.read_text(),
                       re.MULTILINE).group(1).strip()
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def _strip(data: bytes) -> bytes:
    """What git stores for a notebook: the filter's command, as `make` configures it."""
    return subprocess.run(
        [sys.executable, "-m", "nbstripout", "-t", "--extra-keys", EXTRA_KEYS],
        input=data, capture_output=True, check=True).stdout


# ---------------------------------------------------------------- committed notebooks
def test_committed_notebooks_are_what_the_git_filter_keeps() -> None:
    """No outputs, execution counts or volatile metadata in any chapter: the filter would
    change nothing (asked of nbstripout itself, all chapters in one call), and the kernel is
    the project's."""
    verify = subprocess.run(
        [sys.executable, "-m", "nbstripout", "--verify", "--extra-keys", EXTRA_KEYS,
         *map(str, NOTEBOOKS)], capture_output=True, text=True)
    assert verify.returncode == 0, f"not stripped (run them through nbstripout): {verify.stdout}"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME, path.name
        assert nb.metadata["language_info"]["name"] == "python", path.name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


def test_verify_catches_an_executed_notebook(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    next(c for c in nb.cells if c.cell_type == "code").execution_count = 1
    dirty = tmp_path / NOTEBOOKS[0].name
    nbformat.write(nb, dirty)
    verify = subprocess.run([sys.executable, "-m", "nbstripout", "--verify", str(dirty)],
                            capture_output=True, text=True)
    assert verify.returncode != 0 and dirty.name in verify.stdout


def test_filter_strips_what_jupyterlab_saves() -> None:
    """An executed, saved chapter (outputs, counts, the interpreter's version) goes back to
    the committed bytes: reading or running a chapter never dirties git."""
    path = NOTEBOOKS[0]
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = i + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
    nb.metadata["language_info"]["version"] = "3.11.7"
    saved = (nbformat.writes(nb) + "\n").encode()
    assert saved != path.read_bytes()
    assert _strip(saved) == path.read_bytes()


def test_git_filter_installed_by_make_idempotently(tmp_path: Path) -> None:
    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("git or make not installed")
    if not (ROOT / ".venv" / "bin" / "nbstripout").is_file():
        pytest.skip("no .venv with nbstripout (make venv)")
    repo = tmp_path / "checkout"
    repo.mkdir()
    for name in ("Makefile", ".gitattributes"):
        shutil.copy(ROOT / name, repo / name)
    (repo / ".venv").symlink_to(ROOT / ".venv")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    attributes = (repo / ".gitattributes").read_text()
    for _ in range(2):
        subprocess.run(["make", "-s", "-C", str(repo), "git-filter"], check=True,
                       capture_output=True)
    assert (repo / ".gitattributes").read_text() == attributes  # nothing appended
    config = subprocess.run(git[:3] + ["config", "--get-regexp", "^filter.nbstripout"],
                            capture_output=True, text=True, check=True).stdout
    assert "nbstripout" in config and EXTRA_KEYS in config
    # a chapter saved with outputs is stored without them
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    next(c for c in nb.cells if c.cell_type == "code").outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
    (repo / NOTEBOOKS[0].name).write_text(nbformat.writes(nb) + "\n")
    subprocess.run(git + ["add", NOTEBOOKS[0].name], check=True)
    stored = subprocess.run(git + ["show", f":{NOTEBOOKS[0].name}"], capture_output=True,
                            check=True).stdout
    assert stored == NOTEBOOKS[0].read_bytes()
    # outside a git checkout the target does nothing and succeeds
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(ROOT / "Makefile", plain / "Makefile")
    (plain / ".venv").symlink_to(ROOT / ".venv")
    subprocess.run(["make", "-s", "-C", str(plain), "git-filter"], check=True,
                   capture_output=True, env={"PATH": "/usr/bin:/bin",
                                             "GIT_CEILING_DIRECTORIES": str(tmp_path)})
    assert not (plain / ".gitattributes").exists()


def test_server_config_quiets_kernels() -> None:
    """IPC sockets instead of unencrypted TCP, and no shim reading deprecated options; the
    server and a kernel are started with it in test_browser.py."""
    config = json.loads((ROOT / "etc" / "jupyter_server_config.json").read_text())
    assert config == {"KernelManager": {"transport": "ipc"},
                      "ServerApp": {"jpserver_extensions": {"notebook_shim": False}}}
    make = MAKEFILE.read_text()
    assert "etc/jupyter_server_config.json $(VENV)/etc/jupyter/jupyter_server_config.json" in make


# ---------------------------------------------------------------- the landing page
def _links(cells: list[str]) -> list[tuple[str, str]]:
    return [(text, unquote(target)) for cell in cells for text, target in LINK.findall(cell)]


def test_landing_page_links_every_chapter_and_nothing_missing() -> None:
    links = _links(landing_markdown(ROOT))
    targets = [t for _, t in links]
    for nb in NOTEBOOKS:  # 01-07 and whatever chapters have been added since
        assert f"notebooks/{nb.name}" in targets, f"{nb.name} not on the landing page"
    for target in targets:
        assert (ROOT / target).is_file(), f"landing page links a missing file: {target}"
    first = nbformat.read(NOTEBOOKS[0], as_version=4).cells[0].source.splitlines()[0]
    assert (first.lstrip("# "), f"notebooks/{NOTEBOOKS[0].name}") in links
    assert ("README", "README.md") in links
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} <= set(targets)


def test_landing_page_lists_outputs_once_they_exist(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "notebooks").mkdir(parents=True)
    for nb in NOTEBOOKS[:2]:
        shutil.copy(nb, project / "notebooks" / nb.name)
    empty = landing_markdown(project)
    assert [t for _, t in _links(empty)] == [f"notebooks/{nb.name}" for nb in NOTEBOOKS[:2]]
    assert sum("make study" in cell for cell in empty) >= 2  # figures, tables: none yet

    (project / "results" / "notebooks").mkdir(parents=True)
    shutil.copy(NOTEBOOKS[1], project / "results" / "notebooks" / NOTEBOOKS[1].name)
    (project / "figures").mkdir()
    for ext in ("png", "pdf", "csv"):
        (project / "figures" / f"fig6.{ext}").write_text("x")
    (project / "figures" / "fig7.png").write_text("x")  # PNG only: only it is linked
    (project / "results" / "tables").mkdir()
    for name in ("table2.csv", "table2.md", "bootstrap_ci.csv"):
        (project / "results" / "tables" / name).write_text("x")
    (project / "docs").mkdir()
    (project / "docs" / "a b.md").write_text("x")  # a space survives as %20
    path = write_landing(project)
    assert path == project / LANDING_NAME
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert {c.cell_type for c in nb.cells} == {"markdown"}
    assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME
    cells = [c.source for c in nb.cells]
    targets = [t for _, t in _links(cells)]
    assert targets == [
        f"notebooks/{NOTEBOOKS[0].name}", f"notebooks/{NOTEBOOKS[1].name}",
        f"results/notebooks/{NOTEBOOKS[1].name}",
        "figures/fig6.png", "figures/fig6.pdf", "figures/fig6.csv", "figures/fig7.png",
        "results/tables/bootstrap_ci.csv", "results/tables/table2.md",
        "results/tables/table2.csv", "docs/a b.md",
    ]
    assert "docs/a%20b.md" in cells[-1]
    assert all((project / t).is_file() for t in targets)
    assert write_landing(project).read_bytes() == path.read_bytes()  # same files, same page


# ---------------------------------------------------------------- quiet kernels, headless
def test_study_kernels_talk_over_ipc_quietly(tiny_dataset_2018: Path, tmp_path: Path,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    """`caa study` starts its kernels on IPC sockets in Jupyter's runtime directory: no
    unencrypted-TCP warning on the terminal, no socket files beside the notebooks."""
    from caalib.study import ipc_kernel_manager_class, run_study

    if ipc_kernel_manager_class() is None:
        pytest.skip("no Unix sockets on this platform")
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": KERNEL_NAME,
                                 "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "tiny"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "from ipykernel.connect import get_connection_info\n"
        "info = get_connection_info(unpack=True)\nprint(info['transport'], info['ip'])")]
    nbformat.write(nb, chapters / "01_probe.ipynb")
    out = run_study(profile="tiny", data_dir=tiny_dataset_2018, results_dir=tmp_path / "r",
                    figures_dir=tmp_path / "f", notebook_dir=chapters, progress=False)
    printed = nbformat.read(out.executed[0], as_version=4).cells[-1].outputs[0]["text"]
    transport, ip = printed.split()
    assert transport == "ipc" and Path(ip).is_absolute() and ip.endswith("-ipc")
    assert "without encryption" not in capfd.readouterr().err
    assert [p.name for p in chapters.iterdir()] == ["01_probe.ipynb"]
    assert not list(Path(ip).parent.glob(Path(ip).name + "*"))  # sockets removed at shutdown
