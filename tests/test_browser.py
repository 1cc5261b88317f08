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
import time
import urllib.request
from pathlib import Path

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
            pytest.fail(f"voila exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"voila did not answer on {url} within {SERVER_TIMEOUT_S} s:\n"
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
