"""Interactive figures: plotly.js copied once into the report folder, small multiples whose legend toggles a series
in every panel, hover with the band, controls dashed grey."""

from __future__ import annotations

import json

from salbench.report import interactive


def test_write_assets_copies_plotly_once(tmp_path):
    target = interactive.write_assets(tmp_path)
    assert target == tmp_path / "assets" / "plotly.min.js"
    assert target.read_bytes() == interactive.plotly_js().read_bytes()
    stamp = target.stat().st_mtime_ns
    interactive.write_assets(tmp_path)
    assert target.stat().st_mtime_ns == stamp  # an identical copy is kept
    target.write_text("stale")
    interactive.write_assets(tmp_path)
    assert target.stat().st_size == interactive.plotly_js().stat().st_size  # a different one is replaced


def test_line_panels_share_one_legend_entry_per_series():
    panels = [interactive.Panel(title=f"metric {k}", x_title="share", lines=[
        interactive.Line("gradcam", [0, 1], [1.0, 0.2], [0.9, 0.1], [1.0, 0.3]),
        interactive.Line("random", [0, 1], [1.0, 0.8], control=True)]) for k in range(4)]
    colours = interactive.colour_map(["gradcam", "random"], ["random"])
    spec = interactive.line_panels(panels, colours)
    json.dumps(spec)  # plain JSON data
    assert "template" not in spec["layout"] and spec["config"]["displaylogo"] is False
    in_legend = [t["name"] for t in spec["data"] if t.get("showlegend") is not False]
    assert in_legend == ["gradcam", "random"]  # once each, though drawn in four panels
    lines = [t for t in spec["data"] if "hovertemplate" in t]
    assert len(lines) == 8 and all(t["legendgroup"] == t["name"] for t in spec["data"])
    gradcam = lines[0]
    assert gradcam["customdata"] == [[0.9, 1.0], [0.1, 0.3]] and "share %{x" in gradcam["hovertemplate"]
    assert gradcam["line"]["dash"] == "solid" and lines[1]["line"]["dash"] == "dash"
    assert lines[1]["line"]["color"] == interactive.CONTROL_GREYS[0] and "customdata" not in lines[1]
    assert spec["layout"]["xaxis4"]["title"]["text"] == "share"  # four panels: two rows of three at most
    assert spec["layout"]["height"] == 2 * interactive.PANEL_HEIGHT + 90


def test_colour_map_keeps_series_apart():
    names = [f"m{k}" for k in range(30)] + ["c1", "c2"]
    colours = interactive.colour_map(names, ["c1", "c2"])
    assert len({colours[f"m{k}"] for k in range(len(interactive.PALETTE))}) == len(interactive.PALETTE)
    assert colours["c1"] in interactive.CONTROL_GREYS and colours["c1"] != colours["c2"]
