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
