"""The heat-map browser: its data functions and its reaction to scene/device changes."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import craft_attention_run, metrics_by_counting

from caalib.constants import SCENES

pytest.importorskip("ipywidgets")

from caalib.results import widgets  # noqa: E402


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    craft_attention_run(tmp_path, "dcase2018-atrous-att-multi_task-L4-tiny-s0", seed=0)
    craft_attention_run(tmp_path, "dcase2018-pool-att-joint-tiny-s0", scenes=("bus", "tram"),
                        devices=("a", "b"), seed=1, topology="pool", strategy="joint",
                        cond_layer=None)
    no_att = tmp_path / "runs" / "dcase2018-pool-max-joint-tiny-s0"
    no_att.mkdir()
    (no_att / "metrics.json").write_text("{}")
    return tmp_path


def test_attention_runs_lists_only_runs_with_maps(results: Path, tmp_path: Path) -> None:
    runs = widgets.attention_runs(results)
    assert [r.name for r in runs] == [
        "dcase2018-atrous-att-multi_task-L4-tiny-s0", "dcase2018-pool-att-joint-tiny-s0"]
    assert widgets.attention_runs(tmp_path / "nothing") == []
    assert "atrous / att / multi_task / layer 4" in widgets.run_label(runs[0])


def test_selection_functions(results: Path) -> None:
    clips = widgets.load_attention(widgets.attention_runs(results)[0])
    assert len(clips) == 9
    assert widgets.scenes_of(clips) == ["airport", "bus", "park"]
    assert widgets.sources_of(clips, "bus") == ["a", "b", "c"]
    idx = widgets.select_clips(clips, "bus", "b")
    assert len(idx) == 1 and clips.scene_label[idx[0]] == "bus" and clips.source[idx[0]] == "b"
    assert widgets.select_clips(clips, "tram", "a") == []
    i = widgets.select_clips(clips, "park", "c")[0]
    assert widgets.class_for(clips, i, "true") == "park"
    assert widgets.class_for(clips, i, "predicted") == "tram"
    hm = widgets.heatmap(clips, i, "park")
    assert hm.shape == (4, 8)  # (F', T'): frequency first, as drawn
    with np.load(clips.run_dir / "attention.npz") as z:  # the file itself, not the reader
        k = int(np.flatnonzero((z["scene_label"] == "park") & (z["source"] == "c"))[0])
        expected = z["attention"][k, SCENES.index("park")].T
    np.testing.assert_array_equal(hm, expected)
    with pytest.raises(ValueError, match="mode"):
        widgets.class_for(clips, i, "best")
    with pytest.raises(IndexError):
        widgets.heatmap(clips, 99, "park")


def test_render_png_depends_on_clip_and_class(results: Path) -> None:
    clips = widgets.load_attention(widgets.attention_runs(results)[0])
    i = widgets.select_clips(clips, "park", "c")[0]
    j = widgets.select_clips(clips, "park", "a")[0]
    png = widgets.render_png(clips, i)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png != widgets.render_png(clips, j)
    assert png != widgets.render_png(clips, i, "predicted")


def test_bad_attention_file_names_file_and_field(tmp_path: Path) -> None:
    run = craft_attention_run(tmp_path, "r")
    data = dict(np.load(run / "attention.npz"))
    np.savez(run / "attention.npz", **{k: v for k, v in data.items() if k != "predicted"})
    with pytest.raises(widgets.HeatmapError, match=r"attention\.npz.*predicted"):
        widgets.load_attention(run)
    data["source"] = data["source"][:-1]
    np.savez(run / "attention.npz", **data)
    with pytest.raises(widgets.HeatmapError, match="'source' has 8 rows"):
        widgets.load_attention(run)
    (run / "attention.npz").write_bytes(b"not a zip")
    with pytest.raises(widgets.HeatmapError, match="unreadable"):
        widgets.load_attention(run)


def test_browser_reacts_to_scene_device_and_model(results: Path) -> None:
    b = widgets.heatmap_browser(results)
    assert [v for _, v in b.scene.options] == ["airport", "bus", "park"]
    first = b.image.value
    assert first[:4] == b"\x89PNG" and "Airport" in b.info.value

    b.select(scene="bus")
    assert b.clips.scene_label[b.index] == "bus" and b.source.value == "a"
    after_scene = b.image.value
    assert after_scene != first and "Bus" in b.info.value

    b.select(source="c")
    assert b.clips.source[b.index] == "c"
    after_device = b.image.value
    assert after_device != after_scene
    assert "Tram" in b.info.value  # the crafted device-C prediction is wrong

    b.select(mode="predicted")
    assert b.image.value != after_device

    # The second model has no airport/park and no device C: the selection falls back.
    b.select(model="dcase2018-pool-att-joint-tiny-s0")
    assert [v for _, v in b.scene.options] == ["bus", "tram"]
    assert b.scene.value == "bus" and b.source.value == "a"
    assert b.clips.run_dir.name == "dcase2018-pool-att-joint-tiny-s0"


def test_browser_without_attention_runs_says_why(tmp_path: Path) -> None:
    with pytest.raises(widgets.HeatmapError, match="no run with an attention.npz"):
        widgets.HeatmapBrowser(tmp_path)


def test_browser_opens_on_the_papers_caa_net(results: Path) -> None:
    # a run that sorts first by name (atrous-att-joint < atrous-att-multi_task) must not win
    craft_attention_run(results, "dcase2018-atrous-att-joint-tiny-s0", seed=2,
                        strategy="joint", cond_layer=None)
    shutil.rmtree(results / "runs" / "dcase2018-pool-max-joint-tiny-s0")  # no metrics to read
    runs = widgets.attention_runs(results)
    for run in runs:  # real metrics, so the runs can be tabulated as caa figures does
        with np.load(run / "attention.npz") as npz:
            pred = pd.DataFrame({k: npz[k] for k in ("source", "scene_label", "predicted")})
        (run / "metrics.json").write_text(json.dumps(metrics_by_counting(pred)))
    assert runs[0].name == "dcase2018-atrous-att-joint-tiny-s0"
    caa_net = "dcase2018-atrous-att-multi_task-L4-tiny-s0"
    assert widgets.default_run(results).name == caa_net
    assert widgets.heatmap_browser(results).model.value.name == caa_net
    # the rule of caa figures (Fig. 7), not a rule of its own
    from caalib.results import load_runs
    from caalib.results.selection import figure_runs

    assert figure_runs(load_runs(results)).fig7.name == caa_net
    assert widgets.default_run(results, runs[:1]) == runs[0]  # CAA-Net not offered
    assert widgets.default_run(results / "nothing") is None


def test_heatmap_png_is_rendered_at_its_displayed_size(results: Path) -> None:
    import matplotlib as mpl
    from PIL import Image

    with mpl.rc_context({"savefig.bbox": "tight", "savefig.dpi": 300}):  # as a style may set
        b = widgets.heatmap_browser(results)
    with Image.open(io.BytesIO(b.image.value)) as png:
        assert png.size == (widgets.IMAGE_WIDTH_PX, widgets.IMAGE_HEIGHT_PX)
    assert b.image.layout.width == f"{widgets.IMAGE_WIDTH_PX}px"
    assert int(b.image.width) == widgets.IMAGE_WIDTH_PX


# ------------------------------------------------------------------ evidence overlay
# The crafted runs have 32 frames x 16 mel bins and 8 x 4 attention maps (4 x 4 bins a cell).
T0, T1, F0, F1 = 4, 9, 1, 3  # one scene-evidence block: frames 4..9, mel bins 1..3


def _evidence(results: Path, data_dir: Path, skip: int | None = None) -> Path:
    """An evidence.npz for the first run's clips (written by the simulator's own writer):
    the scene block above and a shared block of frames 20..23, bins 8..15."""
    from caalib.synth.evidence import write_evidence

    clips = widgets.load_attention(widgets.attention_runs(results)[0])
    scene = np.zeros((32, 16), bool)
    scene[T0:T1 + 1, F0:F1 + 1] = True
    shared = np.zeros((32, 16), bool)
    shared[20:24, 8:16] = True
    data_dir.mkdir(exist_ok=True)
    write_evidence(data_dir / "evidence.npz", {
        str(n): (scene, shared) for i, n in enumerate(clips.filename) if i != skip})
    return data_dir


def _bbox(segments: np.ndarray) -> tuple[float, float, float, float]:
    pts = segments.reshape(-1, 2)
    return pts[:, 0].min(), pts[:, 0].max(), pts[:, 1].min(), pts[:, 1].max()


def test_mask_on_grid_by_hand() -> None:
    # 5 frames x 4 bins on a 2 x 2 grid: frames 0-2 | 3-4, bins 0-1 | 2-3
    mask = np.zeros((5, 4), bool)
    mask[0:3, 0] = True  # 3 of cell (0, 0)'s 6 bins: half, in
    mask[3:5, 1] = True  # 2 of cell (1, 0)'s 4 bins: half, in
    mask[3, 2] = True  # 1 of cell (1, 1)'s 4 bins: out
    mask[0, 2:4] = True  # 2 of cell (0, 1)'s 6 bins: out
    np.testing.assert_array_equal(widgets.mask_on_grid(mask, (2, 2)),
                                  [[True, False], [True, False]])
    np.testing.assert_array_equal(widgets.mask_on_grid(mask, (5, 4)), mask)  # same grid
    with pytest.raises(ValueError, match="5 x 4 mask cannot be drawn on a 6 x 2 grid"):
        widgets.mask_on_grid(mask, (6, 2))


def test_mask_on_grid_outlines_the_cells_the_measures_spread_a_map_over() -> None:
    """The browser and the faithfulness measures share one bin -> cell rule: a cell
    pattern spread onto the input (``to_grid``) and outlined again is the pattern."""
    from caalib.explain.measures import to_grid

    # 7 frames on 3 cells: 3, 2, 2 frames; 5 bins on 2 cells: 3, 2 bins (uneven on purpose)
    cells = np.array([[True, False], [False, True], [True, True]])
    on_input = to_grid(cells.astype(float), (7, 5)) > 0
    assert on_input.sum() == 3 * 3 + 2 * 2 + 2 * 5  # the cells' bins, counted by hand
    np.testing.assert_array_equal(widgets.mask_on_grid(on_input, (3, 2)), cells)


def test_mask_segments_outline_the_block_in_data_coordinates() -> None:
    grid = np.zeros((4, 8), bool)  # (rows = mel bins, columns = frames), as drawn
    grid[1:3, 2:5] = True
    seg = widgets.mask_segments(grid, (0, 16, 0, 4))  # 2 data units per frame column
    assert _bbox(seg) == (4.0, 10.0, 1.0, 3.0)
    # the perimeter: 2 x (3 columns of width 2) + 2 x (2 rows of height 1)
    assert np.isclose(np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1).sum(), 16.0)
    assert widgets.mask_segments(np.zeros((4, 8), bool), (0, 16, 0, 4)).shape == (0, 2, 2)


def test_overlay_lines_up_with_the_logmel_frames_and_the_attention_cells(
        results: Path, tmp_path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection

    data = _evidence(results, tmp_path / "data")
    evidence, note = widgets.load_evidence(data)
    clips = widgets.load_attention(widgets.attention_runs(results)[0])
    mine, why = widgets.clip_evidence(evidence, clips, 0)
    assert note == "" and why == "" and mine[0].shape == (32, 16)

    drawn = widgets.overlay_segments(mine, (8, 4), (0, 32, 0, 16), "both")
    assert _bbox(drawn["logmel"]["scene"]) == (T0, T1 + 1, F0, F1 + 1)
    # on the 8 x 4 attention grid (cells of 4 frames x 4 bins) the block covers cell
    # (1, 0) with 4 x 3 = 12 of its 16 bins, cell (2, 0) with 2 x 3 = 6: only the first
    # is outlined, frames 4..8 of bins 0..4
    assert _bbox(drawn["attention"]["scene"]) == (4, 8, 0, 4)
    assert _bbox(drawn["attention"]["shared"]) == (20, 24, 8, 16)
    assert set(widgets.overlay_segments(mine, (8, 4), (0, 32, 0, 16), "scene")["logmel"]) \
        == {"scene"}

    fig = widgets.render_figure(clips, 0, evidence=mine, overlay="scene")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    ax_mel = fig.axes[0]
    image = ax_mel.images[0]
    x0, x1, y0, y1 = image.get_extent()
    rows, cols = image.get_array().shape
    col_edges = np.linspace(x0, x1, cols + 1)  # where the image puts each frame
    row_edges = np.linspace(y0, y1, rows + 1)
    lines = [c for c in ax_mel.collections if isinstance(c, LineCollection)]
    assert len(lines) == 1
    xs = np.concatenate([s[:, 0] for s in lines[0].get_segments()])
    ys = np.concatenate([s[:, 1] for s in lines[0].get_segments()])
    assert (xs.min(), xs.max()) == (col_edges[T0], col_edges[T1 + 1])
    assert (ys.min(), ys.max()) == (row_edges[F0], row_edges[F1 + 1])
    # and on the pixels: the white outline (magma never reaches white) spans the block
    rgba = np.asarray(canvas.buffer_rgba())
    height = rgba.shape[0]
    (px0, py0), (px1, py1) = ax_mel.transData.transform([(T0, F0), (T1 + 1, F1 + 1)])
    bx0, by0, bx1, by1 = ax_mel.bbox.extents
    white = (rgba[..., :3] >= 250).all(axis=-1)
    inside = np.zeros_like(white)
    # inside the image by a few pixels: the white figure around it is no outline
    inside[int(height - by1) + 3:int(height - by0) - 3, int(bx0) + 3:int(bx1) - 3] = True
    yy, xx = np.nonzero(white & inside)
    assert abs(xx.min() - px0) <= 2 and abs(xx.max() - px1) <= 2
    assert abs((height - yy.max()) - py0) <= 2 and abs((height - yy.min()) - py1) <= 2


def test_browser_overlay_only_where_the_dataset_has_masks(results: Path, tmp_path: Path
                                                          ) -> None:
    plain = widgets.heatmap_browser(results)
    assert plain.overlay.disabled and "no data directory" in plain.note.value
    real = widgets.heatmap_browser(results, data_dir=tmp_path)  # no evidence.npz: real data
    assert real.overlay.disabled and "evidence.npz: no evidence masks" in real.note.value
    assert real.image.value == plain.image.value
    with pytest.raises(widgets.HeatmapError, match="no evidence masks"):
        real.select(overlay="scene")

    b = widgets.heatmap_browser(results, data_dir=_evidence(results, tmp_path / "d", skip=1))
    assert not b.overlay.disabled and b.note.value == ""
    assert b.image.value == plain.image.value  # off: the picture of old
    b.select(overlay="scene")
    scene_png = b.image.value
    assert scene_png != plain.image.value and "of the bins" in b.info.value
    b.select(overlay="both")
    assert b.image.value not in (scene_png, plain.image.value)
    b.select(scene="airport", source="b")  # the clip without a mask: drawn plain, said why
    assert b.index == 1 and "no evidence mask for audio/airport" in b.note.value
    b.select(overlay="off")
    no_mask = b.image.value
    b.select(overlay="scene")
    assert b.image.value == no_mask
