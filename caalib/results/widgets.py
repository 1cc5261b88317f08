"""An ipywidgets browser of the attention heat maps (the paper's Fig. 7, clip by clip).

Fig. 7 shows one parallel recording per scene on the three devices (a run stores up to
three per scene); a static figure can only show one class map per clip. The browser lets
a reader pick the model, the scene, the device and the clip, and see the log-mel next to
the attention the model spent on it, for the true scene's class or for the class it
predicted.

The data logic (which runs have attention, which clips match a selection, which map to
draw) lives in plain functions so tests reach it without a widget; the widget only wires
dropdowns to them and shows a PNG in an ``ipywidgets.Image`` (PNG bytes are easy to
assert, in Python and in a browser).

On a dataset made by ``caa synth`` the browser can also outline the clip's evidence mask
(docs/explanations.md): on the log-mel bin by bin, on the attention map as the cells the
mask mostly covers, so a coarse (pooled) map is judged on its own grid.
"""

from __future__ import annotations

import html
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..constants import DEVICES, SCENE_TITLES, SCENES
from ..rundir import (
    ATTENTION_FILE,
    RUNS_DIR,
    RunStoreError,
    read_attention,
    read_config_dict,
    runs_root,
    scan_runs,
)
from .grid import bin_cells

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Which class's attention map to draw.
CLASS_MODES = ("true", "predicted")

#: The heat map's size in the browser, in CSS pixels: the PNG is rendered at exactly this
#: width (figure inches x dpi) and the Image widget shown at it, so nothing is rescaled.
IMAGE_WIDTH_PX = 800
IMAGE_HEIGHT_PX = 460
#: Pixels per inch of the browser's PNG (matplotlib's font sizes in points scale with it).
IMAGE_DPI = 100

#: What the evidence overlay outlines: nothing, the scene-specific bins, or those and the
#: shared bins.
OVERLAY_MODES = ("off", "scene", "both")
#: Line styles of the outlines (visible on both the magma log-mel and the jet attention).
SCENE_STYLE: dict[str, Any] = {"colors": "white", "linewidths": 1.4, "linestyles": "solid"}
SHARED_STYLE: dict[str, Any] = {"colors": "cyan", "linewidths": 0.9, "linestyles": "dashed"}
#: An attention cell is outlined when at least this share of the input bins it covers is
#: in the mask.
CELL_SHARE = 0.5


class HeatmapError(RunStoreError):
    """A results directory or an attention.npz cannot be browsed; names the file."""


@dataclass(frozen=True)
class AttentionClips:
    """The contents of one run's attention.npz (see docs/architecture.md)."""

    run_dir: Path
    attention: np.ndarray  # (N, K, T', F')
    logmel: np.ndarray  # (N, T, F)
    filename: np.ndarray
    source: np.ndarray  # the recording device of each clip (a, b, c)
    scene_label: np.ndarray
    predicted: np.ndarray

    def __len__(self) -> int:
        return int(self.attention.shape[0])


def runs_dir(results_dir: str | os.PathLike[str]) -> Path:
    """Where a results directory keeps its runs: ``<results>/runs``, or the directory
    itself when it is a runs directory (as :func:`caalib.rundir.runs_root`)."""
    path = Path(results_dir)
    return runs_root(path) if path.is_dir() else path / RUNS_DIR


def attention_runs(results_dir: str | os.PathLike[str]) -> list[Path]:
    """The finished runs of the results directory that hold an attention.npz, by name.

    The same runs the tables read (:func:`caalib.rundir.scan_runs`: direct children of
    ``<results>/runs``, finished, named as their config says; the others are skipped
    with a RunStoreWarning). An empty list when the directory does not exist.
    """
    if not Path(results_dir).is_dir():
        return []
    try:
        runs = scan_runs(results_dir)
    except RunStoreError as exc:
        raise HeatmapError(str(exc)) from None
    return [d for d, _ in runs if (d / ATTENTION_FILE).is_file()]


def run_label(run_dir: str | os.PathLike[str]) -> str:
    """A readable dropdown label: topology, pooling, strategy and layer from config.json."""
    run_dir = Path(run_dir)
    try:
        cfg = read_config_dict(run_dir)
    except RunStoreError:
        return run_dir.name
    parts = [str(cfg[k]) for k in ("topology", "pooling", "strategy")]
    if cfg["train_source"]:
        parts.append(f"device {cfg['train_source']}")
    if cfg["cond_layer"] is not None:
        parts.append(f"layer {cfg['cond_layer']}")
    return f"{' / '.join(parts)}  ({run_dir.name})"


def load_attention(run_dir: str | os.PathLike[str]) -> AttentionClips:
    """Read and check a run's attention.npz (:func:`caalib.rundir.read_attention`); a bad
    file raises HeatmapError naming it."""
    try:
        arrays = read_attention(run_dir)
    except RunStoreError as exc:
        raise HeatmapError(str(exc)) from None
    return AttentionClips(run_dir=Path(run_dir), **arrays)


def scenes_of(clips: AttentionClips) -> list[str]:
    """Scenes with at least one clip, in the fixed class order."""
    present = set(clips.scene_label)
    return [s for s in SCENES if s in present]


def sources_of(clips: AttentionClips, scene: str) -> list[str]:
    """Devices with at least one clip of ``scene``, in the fixed device order."""
    present = set(clips.source[clips.scene_label == scene])
    return [d for d in DEVICES if d in present]


def select_clips(clips: AttentionClips, scene: str, source: str) -> list[int]:
    """Indices of the clips of ``scene`` recorded on ``source`` (in file order)."""
    mask = (clips.scene_label == scene) & (clips.source == source)
    return [int(i) for i in np.flatnonzero(mask)]


def class_for(clips: AttentionClips, index: int, mode: str = "true") -> str:
    """The class whose map to draw: the clip's true scene or the model's prediction."""
    if mode not in CLASS_MODES:
        raise ValueError(f"mode must be one of {CLASS_MODES}, got {mode!r}")
    return str(clips.scene_label[index] if mode == "true" else clips.predicted[index])


def heatmap(clips: AttentionClips, index: int, scene: str) -> np.ndarray:
    """The attention map of clip ``index`` for class ``scene``: (F', T'), frequency first.

    The run store keeps maps time-major like the features; plots want frequency on the
    vertical axis, as in the paper's Fig. 7.
    """
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}")
    if not 0 <= index < len(clips):
        raise IndexError(f"clip index {index} out of range 0..{len(clips) - 1}")
    return np.ascontiguousarray(clips.attention[index, SCENES.index(scene)].T)


# ------------------------------------------------------------------ evidence overlay
#: One clip's evidence: ``(scene, shared)`` boolean masks, (T, F) like its log-mel.
ClipEvidence = tuple[np.ndarray, np.ndarray]


def load_evidence(data_dir: str | os.PathLike[str] | None
                  ) -> tuple[dict[str, dict[str, np.ndarray]] | None, str]:
    """The dataset's evidence masks (:func:`caalib.synth.evidence.read_evidence`) and a
    note for the reader: ``(None, why)`` when there are none (no data directory given,
    real data, a dataset synthesised before masks existed, or an unreadable file)."""
    if data_dir is None:
        return None, "no data directory given, so no evidence masks to overlay"
    from ..errors import DatasetError
    from ..synth.evidence import read_evidence

    try:
        return read_evidence(data_dir), ""
    except DatasetError as exc:
        return None, str(exc)


def clip_evidence(evidence: dict[str, dict[str, np.ndarray]] | None, clips: AttentionClips,
                  index: int) -> tuple[ClipEvidence | None, str]:
    """The masks of clip ``index`` and a note: ``(None, why)`` when the dataset has none
    for it (a run of another dataset) or they are not on the clip's log-mel grid."""
    if evidence is None:
        return None, "no evidence masks"
    name = str(clips.filename[index])
    if name not in evidence:
        return None, f"no evidence mask for {name} (was the run trained on this dataset?)"
    scene, shared = evidence[name]["scene"], evidence[name]["shared"]
    grid = tuple(clips.logmel.shape[1:])
    if scene.shape != grid:
        return None, (f"the evidence mask of {name} is {scene.shape[0]} x {scene.shape[1]}, "
                      f"its log-mel {grid[0]} x {grid[1]}: not the same grid")
    return (scene.astype(bool), shared.astype(bool)), ""


def mask_on_grid(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A (T, F) input-grid mask on a (T', F') map grid: a cell is in the mask when at
    least :data:`CELL_SHARE` of the input bins it covers are.

    Input bin ``i`` belongs to cell ``i * T' // T`` (and so on for frequency):
    :func:`caalib.results.grid.bin_cells`, the rule ``caalib.explain.measures.to_grid``
    spreads a map over the input with, so the outline shows the cells the faithfulness
    measures count as evidence. On a grid of the input's own size this is the mask itself.
    """
    mask = np.asarray(mask, dtype=bool)
    (t, f), (tc, fc) = mask.shape, shape
    if not (0 < tc <= t and 0 < fc <= f):
        raise ValueError(f"a {t} x {f} mask cannot be drawn on a {tc} x {fc} grid")
    rows, cols = bin_cells(t, tc), bin_cells(f, fc)
    inside = np.zeros((tc, fc))
    np.add.at(inside, (rows[:, None], cols[None, :]), mask)
    covered = np.outer(np.bincount(rows, minlength=tc), np.bincount(cols, minlength=fc))
    return inside >= CELL_SHARE * covered


def mask_segments(grid: np.ndarray, extent: tuple[float, float, float, float]) -> np.ndarray:
    """The outline of a (rows, columns) boolean grid drawn as ``imshow(grid,
    origin="lower", extent=extent)`` draws it: (n, 2, 2) segments in data coordinates,
    each a unit edge between a cell inside and one outside (or the border).

    Row ``r`` spans ``y0 + r * h .. y0 + (r + 1) * h`` and column ``c`` likewise in x,
    with ``w, h`` the extent over the number of columns and rows, so the outline falls
    on the image's own cell edges.
    """
    grid = np.asarray(grid, dtype=bool)
    x0, x1, y0, y1 = (float(v) for v in extent)
    n_rows, n_cols = grid.shape
    w, h = (x1 - x0) / n_cols, (y1 - y0) / n_rows
    pad = np.pad(grid, 1)
    vr, vc = np.nonzero(pad[1:-1, 1:] != pad[1:-1, :-1])  # left edge of column vc
    hr, hc = np.nonzero(pad[1:, 1:-1] != pad[:-1, 1:-1])  # lower edge of row hr
    vx, vy = x0 + vc * w, y0 + vr * h
    hx, hy = x0 + hc * w, y0 + hr * h
    vertical = np.stack([np.stack([vx, vy], -1), np.stack([vx, vy + h], -1)], 1)
    horizontal = np.stack([np.stack([hx, hy], -1), np.stack([hx + w, hy], -1)], 1)
    return np.concatenate([vertical, horizontal]).reshape(-1, 2, 2)


def overlay_segments(evidence: ClipEvidence, att_shape: tuple[int, int],
                     extent: tuple[float, float, float, float], overlay: str = "scene"
                     ) -> dict[str, dict[str, np.ndarray]]:
    """What the overlay draws: ``{"logmel"|"attention": {"scene"|"shared": segments}}``.

    The log-mel panel gets the (T, F) masks bin by bin, the attention panel the masks on
    its (T', F') grid (:func:`mask_on_grid`); both panels share ``extent`` (frames x mel
    bins), frequency up. ``overlay`` "scene" leaves out the shared bins, "both" keeps
    them, "off" draws nothing.
    """
    if overlay not in OVERLAY_MODES:
        raise ValueError(f"overlay must be one of {OVERLAY_MODES}, got {overlay!r}")
    kinds = {"off": (), "scene": ("scene",), "both": ("scene", "shared")}[overlay]
    masks = dict(zip(("scene", "shared"), evidence, strict=True))
    return {
        "logmel": {k: mask_segments(masks[k].T, extent) for k in kinds},
        "attention": {k: mask_segments(mask_on_grid(masks[k], att_shape).T, extent)
                      for k in kinds},
    }


def render_figure(clips: AttentionClips, index: int, mode: str = "true",
                  dpi: int = IMAGE_DPI, evidence: ClipEvidence | None = None,
                  overlay: str = "scene") -> Figure:
    """The clip's log-mel above its attention map, titled with true/predicted; with
    ``evidence``, its masks outlined on both panels as :func:`overlay_segments` says
    (scene bins solid white, shared bins dashed cyan)."""
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    cls = class_for(clips, index, mode)
    mel = clips.logmel[index].T
    att = heatmap(clips, index, cls)
    n_frames, n_mels = clips.logmel.shape[1], clips.logmel.shape[2]
    fig = Figure(figsize=(IMAGE_WIDTH_PX / IMAGE_DPI, IMAGE_HEIGHT_PX / IMAGE_DPI), dpi=dpi,
                 layout="constrained")
    ax_mel, ax_att = fig.subplots(2, 1, sharex=True)
    im_mel = ax_mel.imshow(mel, origin="lower", aspect="auto", cmap="magma",
                  extent=(0, n_frames, 0, n_mels))
    ax_mel.set_ylabel("mel bin")
    ax_mel.set_title(f"{clips.filename[index]}  (device {clips.source[index].upper()})",
                     fontsize=9)
    im = ax_att.imshow(att, origin="lower", aspect="auto", cmap="jet",
                       extent=(0, n_frames, 0, n_mels), interpolation="nearest")
    ax_att.set_xlabel("frame")
    ax_att.set_ylabel("mel bin")
    true, pred = SCENE_TITLES[clips.scene_label[index]], SCENE_TITLES[clips.predicted[index]]
    mark = "correct" if true == pred else "wrong"
    ax_att.set_title(f"attention for '{SCENE_TITLES[cls]}'  |  true: {true}, "
                     f"predicted: {pred} ({mark})", fontsize=9)
    # A colour bar on both rows keeps their time axes aligned.
    fig.colorbar(im_mel, ax=ax_mel, fraction=0.03, pad=0.01, label="log-mel")
    fig.colorbar(im, ax=ax_att, fraction=0.03, pad=0.01, label="attention")
    if evidence is not None:
        drawn = overlay_segments(evidence, clips.attention.shape[2:],
                                 (0, n_frames, 0, n_mels), overlay)
        for ax, panel in ((ax_mel, "logmel"), (ax_att, "attention")):
            for kind, segments in drawn[panel].items():
                style = SCENE_STYLE if kind == "scene" else SHARED_STYLE
                ax.add_collection(LineCollection(segments, label=f"{kind} evidence",
                                                 **style), autolim=False)
    return fig


def render_png(clips: AttentionClips, index: int, mode: str = "true",
               dpi: int = IMAGE_DPI, evidence: ClipEvidence | None = None,
               overlay: str = "scene") -> bytes:
    """PNG of :func:`render_figure`.

    At the default ``dpi`` the PNG is :data:`IMAGE_WIDTH_PX` x :data:`IMAGE_HEIGHT_PX`
    pixels, the size the browser shows it at.
    """
    fig = render_figure(clips, index, mode, dpi, evidence, overlay)
    buf = io.BytesIO()
    # the whole figure, whatever savefig.bbox the style in force sets ("tight" would crop it)
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches=fig.bbox_inches)
    return buf.getvalue()


def default_run(results_dir: str | os.PathLike[str], runs: list[Path] | None = None
                ) -> Path | None:
    """The run the browser opens on: the run of ``caa figures``' Fig. 7.

    That is :func:`caalib.results.selection.figure_runs` (the paper's CAA-Net, multi-task
    atrous CNN + attention at layer 4, when it has maps; else the best run by Avg that
    has them), on the dataset :func:`~caalib.results.selection.choose_dataset` picks.
    Among ``runs`` (default :func:`attention_runs`); the first of them when the rule
    picks none of them or the runs cannot be tabulated; None when there are none.
    """
    from ..errors import CaaError
    from .runs import load_runs
    from .selection import choose_dataset, figure_runs

    runs = attention_runs(results_dir) if runs is None else list(runs)
    if not runs:
        return None
    try:
        table = load_runs(results_dir)
        chosen = figure_runs(table, choose_dataset(table)).fig7
    except (CaaError, RunStoreError, KeyError, ValueError):
        return runs[0]
    if chosen is None:
        return runs[0]
    by_name = {r.name: r for r in runs}
    return by_name.get(chosen.path.name, runs[0])


class HeatmapBrowser:
    """Dropdowns for model, scene, device and clip; the rendered map in an Image widget.

    Display it in a notebook (it renders as its ``widget``). ``select`` changes the
    selection from code, the same path a dropdown change takes. With the ``data_dir`` of
    a synthetic dataset, *Evidence* outlines the clip's evidence mask; without one, or on
    real data, that control is disabled and a note says why.
    """

    def __init__(self, results_dir: str | os.PathLike[str], mode: str = "true",
                 data_dir: str | os.PathLike[str] | None = None,
                 overlay: str = "off") -> None:
        import ipywidgets as w

        if overlay not in OVERLAY_MODES:
            raise ValueError(f"overlay must be one of {OVERLAY_MODES}, got {overlay!r}")
        self.results_dir = Path(results_dir)
        self.evidence, why = load_evidence(data_dir)
        self.runs = attention_runs(self.results_dir)
        if not self.runs:
            raise HeatmapError(
                f"{runs_dir(self.results_dir)}: no run with an {ATTENTION_FILE} (train a "
                "model with an attention head first, e.g. notebook 03)"
            )
        self._cache: dict[Path, AttentionClips] = {}
        self._busy = False
        self.model = w.Dropdown(options=[(run_label(r), r) for r in self.runs],
                                value=default_run(self.results_dir, self.runs),
                                description="Model",
                                layout=w.Layout(width="640px"))
        self.scene = w.Dropdown(description="Scene")
        self.source = w.Dropdown(description="Device")
        self.clip = w.Dropdown(description="Clip", layout=w.Layout(width="480px"))
        self.mode = w.ToggleButtons(options=[("true scene", "true"), ("predicted", "predicted")],
                                    value=mode, description="Class")
        self.overlay = w.ToggleButtons(
            options=[("off", "off"), ("scene bins", "scene"), ("scene + shared", "both")],
            value=overlay if self.evidence is not None else "off", description="Evidence",
            disabled=self.evidence is None,
            tooltips=["no outline", "outline the scene-specific bins (solid white)",
                      "and the shared bins (dashed cyan)"])
        self.note = w.HTML(html.escape(f"Evidence overlay unavailable: {why}") if why else "")
        self.info = w.HTML()
        self.image = w.Image(format="png", width=IMAGE_WIDTH_PX, height=IMAGE_HEIGHT_PX,
                             layout=w.Layout(width=f"{IMAGE_WIDTH_PX}px",
                                             height=f"{IMAGE_HEIGHT_PX}px"))
        for name in ("model", "scene", "source", "clip", "mode", "overlay", "note", "info",
                     "image"):
            getattr(self, name).add_class(f"caa-{name}")
        self.model.observe(self._on_model, names="value")
        self.scene.observe(self._on_scene, names="value")
        self.source.observe(self._on_source, names="value")
        self.clip.observe(self._on_render, names="value")
        self.mode.observe(self._on_render, names="value")
        self.overlay.observe(self._on_render, names="value")
        self.widget = w.VBox([
            self.model, w.HBox([self.scene, self.source]), self.clip, self.mode,
            self.overlay, self.note, self.info, self.image,
        ])
        self._on_model()

    # -- data ---------------------------------------------------------------------------
    @property
    def clips(self) -> AttentionClips:
        run = Path(self.model.value)
        if run not in self._cache:
            self._cache[run] = load_attention(run)
        return self._cache[run]

    @property
    def index(self) -> int | None:
        return self.clip.value

    # -- reactions ----------------------------------------------------------------------
    def _on_model(self, *_: Any) -> None:
        keep = self.scene.value
        scenes = scenes_of(self.clips)
        with self._hold():
            self.scene.options = [(SCENE_TITLES[s], s) for s in scenes]
            self.scene.value = keep if keep in scenes else scenes[0]
        self._on_scene()

    def _on_scene(self, *_: Any) -> None:
        if self._busy:
            return
        keep = self.source.value
        sources = sources_of(self.clips, self.scene.value)
        with self._hold():
            self.source.options = [(d.upper(), d) for d in sources]
            self.source.value = keep if keep in sources else sources[0]
        self._on_source()

    def _on_source(self, *_: Any) -> None:
        if self._busy:
            return
        idx = select_clips(self.clips, self.scene.value, self.source.value)
        with self._hold():
            self.clip.options = [(Path(self.clips.filename[i]).name, i) for i in idx]
            self.clip.value = idx[0]
        self._on_render()

    def _on_render(self, *_: Any) -> None:
        if self._busy or self.clip.value is None:
            return
        clips, i = self.clips, int(self.clip.value)
        true, pred = clips.scene_label[i], clips.predicted[i]
        colour = "green" if true == pred else "crimson"
        self.info.value = (
            f"<b>true:</b> {SCENE_TITLES[true]} &nbsp; <b>predicted:</b> "
            f"<span style='color:{colour}'>{SCENE_TITLES[pred]}</span> &nbsp; "
            f"<b>device:</b> {clips.source[i].upper()} &nbsp; <b>map:</b> "
            f"{SCENE_TITLES[class_for(clips, i, self.mode.value)]}"
        )
        evidence = None
        if self.evidence is not None:
            evidence, why = clip_evidence(self.evidence, clips, i)
            self.note.value = html.escape(why)
            if evidence is not None and self.overlay.value != "off":
                share = float(evidence[0].mean())
                said = (f"{share:.0%} of the bins" if evidence[0].any()
                        else "none in this clip (nothing to outline)")
                self.info.value += f" &nbsp; <b>scene evidence:</b> {said}"
        if self.overlay.value == "off":
            evidence = None
        self.image.value = render_png(clips, i, self.mode.value, evidence=evidence,
                                      overlay=self.overlay.value)

    def _hold(self) -> _Hold:
        return _Hold(self)

    # -- public -------------------------------------------------------------------------
    def select(self, *, model: str | os.PathLike[str] | None = None, scene: str | None = None,
               source: str | None = None, mode: str | None = None,
               overlay: str | None = None) -> HeatmapBrowser:
        """Change the selection as a reader would, one dropdown after another."""
        if model is not None:
            self.model.value = Path(model) if Path(model).is_absolute() else (
                runs_dir(self.results_dir) / str(model))
        if scene is not None:
            self.scene.value = scene
        if source is not None:
            self.source.value = source
        if mode is not None:
            self.mode.value = mode
        if overlay is not None:
            if self.overlay.disabled and overlay != "off":
                raise HeatmapError(self.note.value or "no evidence masks to overlay")
            self.overlay.value = overlay
        return self

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


class _Hold:
    """Suppress the cascade while options are swapped, so each change renders once."""

    def __init__(self, browser: HeatmapBrowser) -> None:
        self.browser = browser

    def __enter__(self) -> None:
        self.browser._busy = True

    def __exit__(self, *exc: object) -> None:
        self.browser._busy = False


def heatmap_browser(results_dir: str | os.PathLike[str], mode: str = "true",
                    data_dir: str | os.PathLike[str] | None = None,
                    overlay: str = "off") -> HeatmapBrowser:
    """Build the browser for ``results_dir`` (the notebook's one-liner); ``data_dir``, the
    dataset the runs were trained on, enables the evidence overlay when it has masks."""
    return HeatmapBrowser(results_dir, mode=mode, data_dir=data_dir, overlay=overlay)
