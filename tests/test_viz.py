"""Pictures: the pure-torch grid against a hand layout (and torchvision where it imports), PNG, GIF,
and the charts' figures: the data each one carries, and its picture."""
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from genlab import figsvg, viz
from genlab.models import FlowConfig, GANConfig, VAEConfig, family
from genlab._compat import torchvision_available


def test_grid_layout_by_hand():
    imgs = torch.stack([torch.full((1, 2, 3), float(i)) for i in range(5)])  # 5 images, 2x3 each
    g = viz.make_grid_torch(imgs, nrow=3, padding=1, pad_value=-1.0)
    assert g.shape == (3, 2 * (2 + 1) + 1, 3 * (3 + 1) + 1)
    # image k sits at row k // 3, column k % 3, offset by the padding
    for k in range(5):
        r, c = divmod(k, 3)
        tile = g[:, 1 + r * 3: 1 + r * 3 + 2, 1 + c * 4: 1 + c * 4 + 3]
        assert (tile == k).all()
    assert (g[:, 4:6, 9:12] == -1).all()  # the missing sixth tile is padding
    assert (g[:, 0, :] == -1).all() and (g[:, :, 0] == -1).all()


@pytest.mark.skipif(not torchvision_available(), reason="torchvision does not import here (CPU torch build)")
def test_grid_matches_torchvision():
    from torchvision.utils import make_grid
    imgs = torch.rand(7, 1, 5, 4)
    assert torch.equal(viz.make_grid_torch(imgs, 3, 2, 0.5), make_grid(imgs, nrow=3, padding=2, pad_value=0.5))


def test_grid_array_is_uint8_grey():
    arr = viz.grid_array(torch.rand(4, 1, 8, 8), nrow=2, padding=2)
    assert arr.dtype == np.uint8 and arr.shape == (2 * 10 + 2, 2 * 10 + 2)
    assert viz.grid_array(torch.rand(4, 1, 8, 8), nrow=2, upscale=3).shape == (66, 66)


def test_png_and_gif_decode():
    frames = [np.full((10, 10), v, np.uint8) for v in (0, 128, 255)]
    png = Image.open(io.BytesIO(viz.png_bytes(frames[1])))
    assert png.format == "PNG" and np.array(png)[0, 0] == 128
    gif = Image.open(io.BytesIO(viz.gif_bytes(frames)))
    assert gif.format == "GIF" and gif.n_frames == 4  # forward, then back: 0 1 2 1
    with pytest.raises(ValueError):
        viz.gif_bytes([])


def test_figures_build_from_a_card_history():
    hist = {"epochs": [{"epoch": 1, "train": {"neg_elbo": 3.0, "recon": 2.0, "kl": 1.0},
                        "val": {"neg_elbo": 3.5, "recon": 2.4, "kl": 1.1}}],
            "steps": {"step": [1, 2], "loss": [3.0, 2.0]}}
    fig = viz.history_figure(hist)
    assert len(fig.data) == 6
    (loss,) = viz.step_charts(hist["steps"], family("vae").curves(VAEConfig()).steps)
    assert len(loss.plotly().data) == 1
    losses, outputs = (c.plotly() for c in viz.step_charts(
        {"step": [1, 2], "d_loss": [1.0, 0.9], "g_loss": [0.7, 0.8], "d_real": [0.6, 0.6], "d_fake": [0.4, 0.4]},
        family("gan").curves(GANConfig()).steps))
    assert [t.name for t in losses.data] == ["D loss", "G loss"] and len(outputs.data) == 2
    assert list(outputs.layout.yaxis.range) == [0, 1]  # the descriptor's range for D's outputs
    modes, div = viz.toy_measures_figures([{"step": 50, "modes": 3, "high_quality": 0.5, "kl": 2.0, "js": 0.3}])
    assert list(modes.data[0].y) == [3] and list(div.data[1].y) == [0.3]
    assert list(modes.data[1].y) == [0.5] and modes.data[1].yaxis == "y2"  # the fraction, unscaled, on its own axis
    bars = viz.kl_per_dim_figure([0.5, 0.001])
    assert list(bars.data[0].marker.color) == ["#1f77b4", "#bbbbbb"]
    sc = viz.latent_scatter(np.random.rand(30, 2), np.arange(30) % 10)
    ids = sorted(int(i) for tr in sc.data for i in tr.customdata)
    assert ids == list(range(30))  # every point carries its row id, whatever trace it is in


SVG = "{http://www.w3.org/2000/svg}"


def line_points(svg: str, colour: str) -> list[list[tuple[float, float]]]:
    """The runs of (x, y) pixels of the line drawn in `colour` (a path 'Mx yLx y...', one run per M;
    markers, round dots 'Mx yh0', are another path)."""
    import re
    import xml.etree.ElementTree as ET
    (d,) = [p.get("d") for p in ET.fromstring(svg).iter(SVG + "path")
            if p.get("stroke") == colour and p.get("stroke-linecap") != "round"]
    return [[(float(x), float(y)) for x, y in re.findall(r"([-\d.]+) ([-\d.]+)", run)] for run in d.split("M")[1:]]


def test_a_live_chart_figure_carries_each_line_its_axes_and_its_reference_line():
    history = {"step": [1, 2, 3, 4], "d_loss": [1.4, 1.3, 1.2, 1.1], "g_loss": [0.7, 0.8, 0.9, 1.0],
               "d_real": [0.6, 0.7, 0.6, 0.5], "d_fake": [0.4, 0.3, 0.4, 0.5]}
    losses, outputs = viz.step_charts(history, family("gan").curves(GANConfig()).steps, xtitle="generator step")
    fig = outputs.figure()
    assert [(t["name"], t["line"]["color"], list(t["x"]), list(t["y"])) for t in fig["data"]] == [
        ("mean D(x), real", "#2ca02c", [1, 2, 3, 4], history["d_real"]),
        ("mean D(G(z)), generated", "#ff7f0e", [1, 2, 3, 4], history["d_fake"])]
    lay = fig["layout"]
    assert lay["xaxis"]["title"]["text"] == "generator step" and lay["yaxis"]["title"]["text"] == "discriminator output"
    assert lay["yaxis"]["range"] == [0.0, 1.0] and "type" not in lay["yaxis"]  # the descriptor's range, linear
    (hline,) = lay["shapes"]
    assert (hline["y0"], hline["y1"], hline["xref"], hline["x0"], hline["x1"]) == (0.5, 0.5, "x domain", 0, 1)
    assert "shapes" not in losses.figure()["layout"]
    # the interactive chart is the same figure: Plotly takes it as it is
    assert [list(t.y) for t in outputs.plotly().data] == [history["d_real"], history["d_fake"]]
    assert outputs.plotly().layout.shapes[0].y0 == 0.5


def test_step_charts_thin_a_long_history_to_every_kth_step():
    n = 2000
    history = {"step": list(range(1, n + 1)), "loss": [1.0 / k for k in range(1, n + 1)]}
    (chart,) = viz.step_charts(history, family("vae").curves(VAEConfig()).steps, max_points=500)
    (line,) = chart.figure()["data"]
    assert list(line["x"]) == list(range(1, n + 1, 4)) and list(line["y"]) == [1.0 / k for k in range(1, n + 1, 4)]


def test_a_second_series_goes_on_its_own_right_hand_axis_with_its_ticks():
    modes, div = viz.toy_measure_charts([{"step": 50, "modes": 3, "high_quality": 0.5, "kl": 2.0, "js": 0.3},
                                         {"step": 100, "modes": 5, "high_quality": 0.75, "kl": 1.0, "js": 0.2}])
    fig = div.figure()
    left, right = fig["data"]
    assert (list(left["y"]), list(right["y"]), right["yaxis"]) == ([2.0, 1.0], [0.3, 0.2], "y2")
    y2 = fig["layout"]["yaxis2"]
    assert (y2["side"], y2["overlaying"], y2["range"]) == ("right", "y", [0, 0.72])
    assert y2["tickvals"][-1] == math.log(2) and y2["ticktext"][-1] == "ln 2"


def test_log_y_is_a_log_axis_in_the_figure_in_plotly_and_in_the_picture():
    history = {"step": [1, 2, 3], "bpd": [100.0, 10.0, 1.0]}
    flow = family("flow").curves(FlowConfig())
    (chart,) = viz.step_charts(history, flow.steps, log_y=flow.log_y)
    assert flow.log_y and chart.figure()["layout"]["yaxis"]["type"] == "log"
    assert chart.plotly().layout.yaxis.type == "log"
    ((a, b, c),) = line_points(chart.svg(400), "#1f77b4")
    assert math.isclose(b[1] - a[1], c[1] - b[1], abs_tol=0.15) and c[1] > b[1]  # each decade as tall, 1 lowest
    assert math.isclose(b[0] - a[0], c[0] - b[0], abs_tol=0.15)  # x stays linear
    # a range in data units becomes the log axis's range in decades, as Plotly reads it
    ranged = viz.LineChart([([1, 2], [1.0, 10.0], "a", "#111111")], "x", "y", yrange=[0.1, 100.0], log_y=True)
    assert ranged.figure()["layout"]["yaxis"]["range"] == pytest.approx([-1.0, 2.0])
    assert "range" not in viz.LineChart([([1], [1.0], "a", "#111111")], "x", "y", yrange=[0, 1],
                                        log_y=True).figure()["layout"]["yaxis"]  # no decade holds 0: autorange
    hist = {"epochs": [{"epoch": e, "train": {"bpd": 10.0 ** -e}} for e in (1, 2, 3)]}
    fig = viz.history_figure(hist, ("bpd",), log_y=True)
    assert fig.layout.yaxis.type == "log"
    ((a, b, c),) = line_points(figsvg.figure_svg(fig, 400), "#1f77b4")
    assert math.isclose(b[1] - a[1], c[1] - b[1], abs_tol=0.15) and c[1] > b[1]


def test_a_live_chart_picture_is_its_figure_drawn_and_maps_data_up_and_right():
    import xml.etree.ElementTree as ET
    ch = viz.LineChart([([0, 5, 10], [0.0, float("nan"), 1.0], "a <&> b", "#d62728")], "step", "loss",
                       yrange=[0, 1], hline=0.5,
                       right=dict(x=[0, 10], y=[0.2, 0.4], name="js", colour="#1f77b4", title="JS", range=[0, 1]))
    svg = ch.svg(300)
    assert svg == figsvg.figure_svg(ch.plotly(), 300)  # live or stopped, one picture
    root = ET.fromstring(svg)  # escaping keeps it well-formed
    runs = line_points(svg, "#d62728")
    assert [len(r) for r in runs] == [1, 1]  # the NaN breaks the line in two
    (xa, ya), (xb, yb) = runs[0][0], runs[1][0]
    plot = root.find(f"{SVG}defs/{SVG}clipPath/{SVG}rect")
    left, top = float(plot.get("x")), float(plot.get("y"))
    w, h = float(plot.get("width")), float(plot.get("height"))
    assert math.isclose(xa, left, abs_tol=0.1) and math.isclose(ya, top + h, abs_tol=0.1)  # (0, 0): bottom left
    assert math.isclose(xb, left + w, abs_tol=0.1) and math.isclose(yb, top, abs_tol=0.1)  # (10, 1): top right
    ((ra, rb),) = line_points(svg, "#1f77b4")  # the right-hand series, on its own 0..1 axis
    assert math.isclose(ra[1], top + 0.8 * h, abs_tol=0.1) and math.isclose(rb[1], top + 0.6 * h, abs_tol=0.1)
    texts = [t.text for t in root.iter(SVG + "text")]
    assert "a <&> b" in texts and "js" in texts and "JS" in texts


def toy_field():
    ticks = np.linspace(-3, 3, 5)
    prob = np.zeros((5, 5))
    prob[0, 0] = 1.0  # D sure at (x, y) = (-3, -3): the bottom-left cell
    return {"ticks": ticks, "prob": prob, "real": np.array([[-3.0, -3.0], [0.0, 0.0]]),
            "fake": np.array([[3.0, 3.0], [1.0, -1.0]]), "grad": np.array([[1.0, 0.0], [0.0, 2.0]])}


def test_the_toy_field_figure_carries_d_the_points_and_arrows_scaled_to_the_reference():
    field = dict(toy_field(), arrow_ref=2.0)
    heat, real, fake, arrows = viz.toy_field_spec(field, "title")["data"]
    assert np.array_equal(heat["z"], field["prob"]) and (heat["zmin"], heat["zmax"]) == (0, 1)
    assert np.array_equal(np.c_[real["x"], real["y"]], field["real"])
    assert np.array_equal(np.c_[fake["x"], fake["y"]], field["fake"])
    # each arrow: from a generated point, 0.3 long per `arrow_ref` of gradient norm, then a gap
    expected = [3.0, 3.0 + 1.0 * 0.15, None, 1.0, 1.0, None], [3.0, 3.0, None, -1.0, -1.0 + 2.0 * 0.15, None]
    for got, want in zip((arrows["x"], arrows["y"]), expected):
        assert [None if np.isnan(v) else round(float(v), 9) for v in got] == want
    fig = viz.toy_field_figure(field, "title")
    assert fig.data[0].colorscale[0][1] == "rgb(103,0,31)" and fig.layout.yaxis.scaleanchor == "x"


def test_toy_field_svg_draws_every_point_where_it_belongs():
    import base64
    import re
    import xml.etree.ElementTree as ET
    from plotly.colors import get_colorscale
    svg = viz.toy_field_svg(toy_field(), "title")
    assert svg == figsvg.figure_svg(viz.toy_field_figure(toy_field(), "title"), 540)  # live or stopped, one picture
    root = ET.fromstring(svg)
    rect = root.find(f"{SVG}defs/{SVG}clipPath/{SVG}rect")
    cx, cy = float(rect.get("x")) + float(rect.get("width")) / 2, float(rect.get("y")) + float(rect.get("height")) / 2

    def dots(colour):
        (d,) = [p.get("d") for p in root.iter(SVG + "path") if p.get("stroke") == colour and "h0" in p.get("d")]
        return [(float(x), float(y)) for x, y in re.findall(r"M([-\d.]+) ([-\d.]+)h0", d)]

    (x0, y0), (xc, yc) = dots("#2ca02c")  # real (-3, -3) and (0, 0)
    (x3, y3), (x1, y1) = dots("#7b2cbf")  # generated (3, 3) and (1, -1)
    assert math.isclose(xc, cx, abs_tol=0.1) and math.isclose(yc, cy, abs_tol=0.1)  # (0, 0): the centre
    unit = (x3 - xc) / 3
    assert unit > 0 and math.isclose(yc - y3, 3 * unit, abs_tol=0.15)  # up is +y, one unit as long on both axes
    assert math.isclose(x0, xc - 3 * unit, abs_tol=0.15) and math.isclose(y0, yc + 3 * unit, abs_tol=0.15)
    assert math.isclose(x1, xc + unit, abs_tol=0.15) and math.isclose(y1, yc + unit, abs_tol=0.15)
    heat = next(i for i in root.iter(SVG + "image"))
    pix = np.asarray(Image.open(io.BytesIO(base64.b64decode(heat.get("href").split(",", 1)[1]))))
    rgb = [tuple(int(v) for v in c[4:-1].split(",")) for _, c in get_colorscale("RdBu")]
    assert tuple(pix[-1, 0, :3]) == rgb[-1]  # the image's bottom-left cell is (-3, -3), where D is 1: blue
    assert tuple(pix[0, 0, :3]) == rgb[0] and heat.get("opacity") == "0.55"


def test_labelled_rows_png_puts_each_label_on_its_row_and_keeps_the_pixels():
    # 3 rows of 2 tiles, 8 px each, padding 1: rows at y 1..8, 10..17, 19..26 (centres 5, 14, 23)
    images = torch.rand(6, 1, 8, 8)
    arr = viz.grid_array(images, nrow=2, padding=1)
    assert arr.shape == (28, 19)
    png = Image.open(io.BytesIO(viz.labelled_rows_png(arr, ["T = 0.5", "a <b>", "T = 1.0"], cell=8, scale=2,
                                                        label_width=60)))
    assert png.mode == "LA" and png.size == (60 + 19 * 2, 28 * 2)
    pic = np.asarray(png)
    assert np.array_equal(pic[:, 60:, 0], arr.repeat(2, 0).repeat(2, 1)) and (pic[:, 60:, 1] == 255).all()
    ink = pic[:, :60, 1] > 0  # the labels: grey text on a transparent strip
    assert (pic[:, :60, 0] == 0x33).all()
    assert ink[:, 44:51].any() and not ink[:, 51:].any()  # right-aligned, 10 px short of the picture
    rows = np.flatnonzero(ink.any(1))
    groups = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
    assert len(groups) == 3
    for g, centre in zip(groups, (5 * 2, 14 * 2, 23 * 2)):
        assert abs((g[0] + g[-1] + 1) / 2 - centre) <= 3, (g, centre)  # each label centred on its row
    rgb = Image.open(io.BytesIO(viz.labelled_rows_png(viz.grid_array(torch.rand(2, 3, 8, 8), nrow=1, padding=1),
                                                      ["a", "b"], cell=8)))
    assert rgb.mode == "RGBA"
    with pytest.raises(ValueError):
        viz.labelled_rows_png(arr, ["one", "two"], cell=8)


def test_bits_histogram_axis_runs_to_twice_the_largest_median_and_counts_what_is_beyond():
    values = {"digits": [1.0, 1.2, 1.3, 1.1, 1.4], "noise": [5.0, 6.0, 7.5, 40_000.0, 9.0]}
    fig, off = viz.bits_histogram(values, "bits per dimension")
    edge = math.ceil(2 * max(float(np.median(v)) for v in values.values()))  # 2 x 7.5 -> 15
    assert edge == 15 and list(fig.layout.xaxis.range) == [0, edge]
    assert all(t.xbins.start == 0 and t.xbins.end == edge for t in fig.data)
    assert off == "Off the chart, above 15 bits/dim: 1 noise (up to 40,000)."
    assert viz.bits_histogram({"digits": values["digits"]}, "x")[1] == ""
