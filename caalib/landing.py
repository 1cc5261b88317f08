"""The study's landing page in JupyterLab: one notebook linking everything a reader opens.

``make lab`` writes it (``index.ipynb`` at the project root, not committed) and opens
JupyterLab on it. It is built from the files present when it is written: every numbered
chapter of ``notebooks/`` (titled by its first heading), its executed copy under
``results/notebooks/`` once ``make study`` has run, the exported figures, the tables, and
the Markdown documentation. A chapter added later (or a figure written later) appears the
next time the page is written, so the page never lists a file that is not there.

Markdown cells only: nothing to run, nothing for JupyterLab to add on save, and relative
links, which JupyterLab opens in a new tab of the same session.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from .atomic import write_text
from .study import KERNEL_NAME, notebooks

#: The landing page's file name, at the project root.
LANDING_NAME = "index.ipynb"

#: Where, relative to the project root, each kind of output lives (as ``make study`` and
#: the ``caa`` commands write them).
NOTEBOOK_DIR = "notebooks"
EXECUTED_DIR = "results/notebooks"
FIGURES_DIR = "figures"
TABLES_DIR = "results/tables"
DOCS_DIR = "docs"

_FIGURE_FORMATS = ("png", "pdf", "csv")


def chapter_title(path: Path) -> str:
    """A chapter's first Markdown heading (``# 3. Training: ...``), else its file name."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return path.stem


def _link(text: str, target: str) -> str:
    return f"[{text}]({quote(target)})"


def _bullets(lines: Iterable[str], empty: str) -> str:
    lines = list(lines)
    return "\n".join(f"- {line}" for line in lines) if lines else f"*{empty}*"


def landing_markdown(root: str | os.PathLike[str]) -> list[str]:
    """The page's Markdown cells for the project at ``root``; every link is relative to
    ``root`` and names a file that exists there now."""
    root = Path(root)
    chapters = []
    for nb in notebooks(root / NOTEBOOK_DIR):
        line = _link(chapter_title(nb), f"{NOTEBOOK_DIR}/{nb.name}")
        executed = root / EXECUTED_DIR / nb.name
        if executed.is_file():
            line += " · " + _link("executed copy", f"{EXECUTED_DIR}/{nb.name}")
        chapters.append(line)

    figures = []
    for png in sorted((root / FIGURES_DIR).glob("*.png")):
        formats = [ext for ext in _FIGURE_FORMATS if png.with_suffix(f".{ext}").is_file()]
        figures.append(f"`{png.stem}`: " + " · ".join(
            _link(ext.upper(), f"{FIGURES_DIR}/{png.stem}.{ext}") for ext in formats))

    tables_dir = root / TABLES_DIR
    tables = []
    for csv in sorted(tables_dir.glob("*.csv")):
        md = csv.with_suffix(".md")
        parts = [_link("CSV", f"{TABLES_DIR}/{csv.name}")]
        if md.is_file():
            parts.insert(0, _link("Markdown", f"{TABLES_DIR}/{md.name}"))
        tables.append(f"`{csv.stem}`: " + " · ".join(parts))

    docs = [_link("README", "README.md")] if (root / "README.md").is_file() else []
    docs += [_link(p.stem, f"{DOCS_DIR}/{p.name}")
             for p in sorted((root / DOCS_DIR).glob("*.md"))]

    not_yet = "none yet: `make study` writes them"
    return [
        "# CAA-Net: a reproducibility study\n\n"
        "Ren et al., *CAA-Net: Conditional Atrous CNNs with Attention for Explainable "
        "Device-robust Acoustic Scene Classification* (IEEE TMM 2020), re-run as numbered "
        "chapters over the `caalib` library. Open a chapter and run it top to bottom with the "
        f"`{KERNEL_NAME}` kernel; its first cell holds the parameters (profile, data, results). "
        "The executed copies are what `make study` ran headless.\n\n"
        f"This page lists the files present when `make lab` wrote it; run `make lab` again after "
        "`make study` to list new outputs.",
        "## Chapters\n\n" + _bullets(chapters, "no chapters found"),
        "## Figures\n\nPNG to look at, PDF to print, CSV of the plotted numbers.\n\n"
        + _bullets(figures, not_yet),
        "## Tables\n\nOurs beside the paper's, and the significance tests.\n\n"
        + _bullets(tables, not_yet),
        "## Documentation\n\n" + _bullets(docs, "no documentation found"),
    ]


def landing_notebook(root: str | os.PathLike[str]):
    """The landing page as a notebook (Markdown cells, the project kernel's metadata)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(text) for text in landing_markdown(root)]
    for cell in nb.cells:  # no random ids: the page is the same for the same files
        cell.pop("id", None)
    nb.nbformat_minor = 4
    # complete metadata, as the kernel reports it, so opening the page does not dirty it
    from ipykernel.ipkernel import IPythonKernel

    nb.metadata = {
        "kernelspec": {"display_name": KERNEL_NAME, "language": "python", "name": KERNEL_NAME},
        "language_info": dict(IPythonKernel.language_info),
    }
    return nb


def write_landing(root: str | os.PathLike[str], path: str | os.PathLike[str] | None = None
                  ) -> Path:
    """Write the landing page (default ``root/index.ipynb``) in one step; return its path."""
    import nbformat

    target = Path(path) if path is not None else Path(root) / LANDING_NAME
    return write_text(target, nbformat.writes(landing_notebook(root)) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m caalib.landing",
        description=f"Write the study's JupyterLab landing page (ROOT/{LANDING_NAME}).")
    parser.add_argument("root", nargs="?", default=".", help="the project root")
    args = parser.parse_args(argv)
    print(f"wrote {write_landing(args.root)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
