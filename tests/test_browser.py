"""Notebook 07 served by Voila and driven in a real Chromium: the heat map follows the reader.

The notebook is parametrised (papermill's parameterize_notebook, no execution) to point at
a crafted results directory, served on a free localhost port, and Playwright changes the
scene and the device dropdowns the way a reader would. The rendered <img> must change
each time. No browser is ever downloaded: Debian's /usr/bin/chromium is launched directly.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from helpers import craft_attention_run

CHROMIUM = Path(os.environ.get("CAA_CHROMIUM", "/usr/bin/chromium"))
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "07_heatmap_browser.ipynb"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SERVER_TIMEOUT_S = 60
RENDER_TIMEOUT_MS = 90_000
CHANGE_TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"Chromium not found at {CHROMIUM}"),
    pytest.mark.skipif(importlib.util.find_spec("voila") is None, reason="voila not installed"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="playwright not installed"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _parametrised_notebook(results: Path, out: Path) -> Path:
    """Notebook 07 pointing at ``results``, on a kernel that exists here."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from caalib.study import kernel_name

    nb = load_notebook_node(str(NOTEBOOK))
    nb = parameterize_notebook(nb, {"results_dir": str(results)})
    nb.metadata["kernelspec"]["name"] = kernel_name()
    nbformat.write(nb, out)
    return out


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"the server did not answer on {url} within {SERVER_TIMEOUT_S} s:\n"
                f"{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server's process group (voila and its kernel), escalating if needed."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def test_voila_heatmap_changes_with_scene_and_device(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    results = tmp_path / "results"
    craft_attention_run(results, "dcase2018-atrous-att-multi_task-L4-tiny-s0")
    served = tmp_path / "served"
    served.mkdir()
    nb = _parametrised_notebook(results, served / "07_heatmap_browser.ipynb")

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "voila.log"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1", MPLBACKEND="Agg")
    with log.open("w") as log_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voila", str(nb), "--no-browser", f"--port={port}",
             "--Voila.ip=127.0.0.1", "--Voila.open_browser=False"],
            cwd=served, env=env, stdout=log_fh, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_server(url, proc, log)
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM),
                headless=True, args=CHROMIUM_ARGS, viewport={"width": 1000, "height": 1000},
            )
            try:
                page = context.new_page()
                page.set_default_timeout(CHANGE_TIMEOUT_MS)
                page.goto(url, timeout=RENDER_TIMEOUT_MS)
                img = page.locator("img.caa-image")
                img.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
                page.wait_for_function(
                    "() => { const i = document.querySelector('img.caa-image');"
                    " return i && i.complete && i.naturalWidth > 0; }",
                    timeout=CHANGE_TIMEOUT_MS)
                info = page.locator(".caa-info")
                shots = [img.screenshot()]
                srcs = [img.get_attribute("src")]
                assert "Airport" in info.inner_text()

                for selector, label, expect in ((".caa-scene select", "Bus", "Bus"),
                                                (".caa-source select", "C", "Tram")):
                    page.select_option(selector, label=label)
                    page.wait_for_function(
                        "prev => { const i = document.querySelector('img.caa-image');"
                        " return i.src !== prev && i.complete && i.naturalWidth > 0; }",
                        arg=srcs[-1], timeout=CHANGE_TIMEOUT_MS)
                    page.wait_for_function(
                        "t => document.querySelector('.caa-info').innerText.includes(t)",
                        arg=expect, timeout=CHANGE_TIMEOUT_MS)
                    srcs.append(img.get_attribute("src"))
                    shots.append(img.screenshot())

                assert len(set(srcs)) == 3, "the <img> source did not change with the selection"
                assert len(set(shots)) == 3, "the rendered heat map looks the same"
                assert "device:</b>" not in info.inner_text()  # rendered as HTML, not text
                assert "C" in info.inner_text() and "Bus" in info.inner_text()
                page.screenshot(path=str(tmp_path / "voila-heatmap-browser.png"), full_page=True)
                keep = os.environ.get("CAA_BROWSER_SCREENSHOT")
                if keep:
                    shutil.copy(tmp_path / "voila-heatmap-browser.png", keep)
            finally:
                context.close()
    finally:
        _stop(proc)
    assert proc.poll() is not None


# ---------------------------------------------------------------- JupyterLab, as `make lab`
ROOT = Path(__file__).resolve().parents[1]
LAB_CONFIG = ROOT / "etc" / "jupyter_server_config.json"
LAB_CHAPTER = "07_heatmap_browser.ipynb"
#: What the Makefile's git-filter target adds to nbstripout's defaults (the interpreter's
#: version, which JupyterLab writes into every notebook it saves); read from the Makefile
NBSTRIPOUT_EXTRA_KEYS = next(
    line.split("=", 1)[1].strip() for line in (ROOT / "Makefile").read_text().splitlines()
    if line.startswith("NBSTRIPOUT_EXTRA_KEYS"))


def _lab_project(tmp_path: Path) -> Path:
    """A copy of the project's reader-facing files (chapters, docs, README) with a crafted
    run for chapter 7, and the landing page written from them."""
    from caalib.landing import write_landing

    project = tmp_path / "project"
    shutil.copytree(ROOT / "notebooks", project / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(ROOT / "docs", project / "docs")
    shutil.copy(ROOT / "README.md", project / "README.md")
    craft_attention_run(project / "results", "dcase2018-atrous-att-multi_task-L4-tiny-s0")
    write_landing(project)
    return project


def _start_lab(project: Path, port: int, runtime: Path, log: Path) -> subprocess.Popen:
    """JupyterLab as `make lab` starts it (project root, the project's server config), with
    no token and no browser of its own."""
    flags = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime), MPLBACKEND="Agg",
               PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
    with log.open("w") as log_fh:
        return subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", f"--config={LAB_CONFIG}", "--no-browser",
             f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={project}",
             "--IdentityProvider.token=", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
             "jupyterlab.NeverCheckForUpdate", *flags],
            cwd=project, env=env, stdout=log_fh, stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.skipif(
    __import__("caalib.study", fromlist=["kernel_name"]).kernel_name() != "caa-net-study",
    reason="the caa-net-study kernel is not installed (make venv installs it)")
def test_jupyterlab_landing_page_and_a_chapter_run_leave_the_file_alone(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    project = _lab_project(tmp_path)
    chapter = project / "notebooks" / LAB_CHAPTER
    committed = chapter.read_bytes()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "lab.log"
    # IPC sockets live in the runtime directory: keep its path short (a socket path is
    # limited to ~100 bytes)
    runtime = Path(tempfile.mkdtemp(prefix="caa-rt-", dir="/tmp"))
    proc = _start_lab(project, port, runtime, log)
    try:
        _wait_for_server(f"{base}/api", proc, log)
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM),
                headless=True, args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000},
            )
            try:
                page = context.new_page()
                page.set_default_timeout(CHANGE_TIMEOUT_MS)
                # the landing page: every link resolves to a file the server serves
                page.goto(f"{base}/lab/tree/index.ipynb", timeout=RENDER_TIMEOUT_MS)
                links = page.locator(
                    ".jp-NotebookPanel .jp-RenderedMarkdown a:not(.jp-InternalAnchorLink)")
                links.first.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
                hrefs = links.evaluate_all("els => els.map(e => e.getAttribute('href'))")
                # JupyterLab turns a relative link into the file's /files/ URL
                targets = [unquote(urlsplit(h).path).removeprefix("/files/") for h in hrefs]
                chapters = sorted(p.name for p in (project / "notebooks").glob("[0-9]*.ipynb"))
                assert {f"notebooks/{c}" for c in chapters} <= set(targets)
                for href, target in zip(hrefs, targets, strict=True):
                    reply = page.request.get(href)
                    assert reply.ok, f"landing page link {target}: HTTP {reply.status}"
                    assert (project / target).is_file()

                # open the chapter from its link, as a reader does, and run it
                page.get_by_role("link", name="7. Browsing the attention heat maps").click()
                tab = page.locator(".lm-TabBar-tab", has_text=LAB_CHAPTER)
                tab.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
                tab.click()  # a link opens its file beside the page; bring it to the front
                panel = page.locator(".jp-NotebookPanel:visible")
                panel.locator(".jp-Notebook").wait_for(state="visible")
                page.wait_for_function(  # the kernel is up and idle
                    "() => !!document.querySelector("
                    "'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator"
                    "[data-status=\"idle\"]')", timeout=RENDER_TIMEOUT_MS)
                page.get_by_role("menuitem", name="Run").click()
                page.locator("li[data-command='runmenu:run-all']").click()
                img = panel.locator("img.caa-image")
                img.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
                page.wait_for_function(
                    "() => { const i = document.querySelector("
                    "'.jp-NotebookPanel:not(.lm-mod-hidden) img.caa-image');"
                    " return i && i.complete && i.naturalWidth > 0; }")
                errors = panel.locator(".jp-OutputArea-output[data-mime-type="
                                       "'application/vnd.jupyter.stderr']").all_inner_texts()
                keep = os.environ.get("CAA_BROWSER_SCREENSHOT")
                if keep:
                    page.screenshot(path=str(Path(keep).with_suffix(".lab.png")), full_page=True)
                ran_on_disk = chapter.read_bytes()
                # a reader who saves gets outputs in the file, and git (through the
                # nbstripout filter) the committed bytes back
                page.keyboard.press("Control+s")
                page.wait_for_function(
                    f"() => {{ const t = [...document.querySelectorAll('.lm-TabBar-tab')]"
                    f".find(t => t.textContent.includes('{LAB_CHAPTER}'));"
                    " return t && !t.classList.contains('jp-mod-dirty'); }")
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"))
                print(f"screenshot: {tmp_path / 'failure.png'}\n{log.read_text()[-3000:]}")
                raise
            finally:
                context.close()
    finally:
        _stop(proc)
        shutil.rmtree(runtime, ignore_errors=True)
    assert ran_on_disk == committed, "running the chapter rewrote the file on disk"
    assert not errors, f"the chapter wrote to stderr: {errors}"
    saved = chapter.read_bytes()
    assert saved != committed and b'"outputs": []' in committed
    stripped = subprocess.run(  # the filter as `make` installs it (git-filter target)
        [sys.executable, "-m", "nbstripout", "-t", "--extra-keys", NBSTRIPOUT_EXTRA_KEYS],
        input=saved, capture_output=True, check=True).stdout
    assert stripped == committed, "the nbstripout filter does not give back the committed file"
    text = log.read_text()
    assert "without encryption" not in text, "kernel on unencrypted TCP"
    assert "Deprecat" not in text, [ln for ln in text.splitlines() if "eprecat" in ln]
