"""Pictures: the pure-torch grid against a hand layout (and torchvision where it imports), PNG, GIF."""
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from genlab import viz
from genlab.models import GANConfig, VAEConfig, family
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


def test_svg_line_chart_is_well_formed_and_maps_data_up_and_right():
    import math
    import xml.etree.ElementTree as ET
    ch = viz.LineChart([([0, 5, 10], [0.0, float("nan"), 1.0], "a <&> b", "#d62728")], "step", "loss",
                       yrange=[0, 1], hline=0.5,
                       right=dict(x=[0, 10], y=[0.2, 0.4], name="js", colour="#1f77b4", title="JS", range=[0, 1]))
    root = ET.fromstring(ch.svg(300))  # escaping keeps it well-formed
    ns = "{http://www.w3.org/2000/svg}"
    paths = [p.get("d") for p in root.iter(ns + "path")]
    first = paths[0]
    assert first.count("M") == 2  # the NaN breaks the line in two
    (xa, ya), (xb, yb) = [tuple(map(float, seg.strip().lstrip("M").split(","))) for seg in first.split("M")[1:]]
    assert xb > xa and yb < ya  # larger step to the right, larger value higher on the screen
    plot = root.find(f"{ns}defs/{ns}clipPath/{ns}rect")
    left, top = float(plot.get("x")), float(plot.get("y"))
    w, h = float(plot.get("width")), float(plot.get("height"))
    assert math.isclose(xa, left, abs_tol=0.1) and math.isclose(ya, top + h, abs_tol=0.1)  # (0, 0): bottom left
    assert math.isclose(xb, left + w, abs_tol=0.1) and math.isclose(yb, top, abs_tol=0.1)  # (10, 1): top right
    texts = [t.text for t in root.iter(ns + "text")]
    assert "a <&> b" in texts and "js" in texts and "JS" in texts


def test_nice_ticks_are_round_and_cover_the_range():
    for lo, hi in [(0, 8.5), (0.47, 1.55), (1, 2900), (-3, 120), (0, 0.72)]:
        ticks = [t for t, _ in viz._ticks(lo, hi)]
        assert 2 <= len(ticks) <= 7 and lo <= ticks[0] and ticks[-1] <= hi
        steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
        assert len(steps) == 1
        step = steps.pop()
        assert round(step / 10 ** math.floor(math.log10(step)), 6) in (1, 2, 5), (lo, hi, ticks)


def test_toy_field_svg_draws_every_point_where_it_belongs():
    import base64
    import xml.etree.ElementTree as ET
    ticks = np.linspace(-3, 3, 5)
    prob = np.zeros((5, 5))
    prob[0, 0] = 1.0  # D sure at (x, y) = (-3, -3): the bottom-left cell
    field = {"ticks": ticks, "prob": prob, "real": np.array([[-3.0, -3.0], [0.0, 0.0]]),
             "fake": np.array([[3.0, 3.0]]), "grad": np.array([[1.0, 0.0]])}
    root = ET.fromstring(viz.toy_field_svg(field, "title"))
    ns = "{http://www.w3.org/2000/svg}"
    circles = [(float(c.get("cx")), float(c.get("cy"))) for c in root.iter(ns + "circle")]
    rect = root.find(f"{ns}defs/{ns}clipPath/{ns}rect")
    left, top, size = float(rect.get("x")), float(rect.get("y")), float(rect.get("width"))
    assert (left, top + size) in circles  # real (-3, -3): bottom left
    assert (left + size / 2, top + size / 2) in circles  # real (0, 0): the centre
    assert (left + size, top) in circles  # generated (3, 3): top right
    heat = next(i for i in root.iter(ns + "image"))
    png = Image.open(io.BytesIO(base64.b64decode(heat.get("href").split(",", 1)[1])))
    pix = np.asarray(png)
    blue = np.round(0.55 * np.array([5, 48, 97]) + 0.45 * 255)  # RdBu at 1, over white at opacity 0.55
    red = np.round(0.55 * np.array([103, 0, 31]) + 0.45 * 255)  # RdBu at 0
    assert np.abs(pix[-1, 0].astype(int) - blue).max() <= 1  # the image's bottom-left cell is (-3, -3)
    assert np.abs(pix[0, 0].astype(int) - red).max() <= 1


def test_labelled_rows_svg_puts_each_label_on_its_row_and_keeps_the_pixels():
    import base64
    import xml.etree.ElementTree as ET
    # 3 rows of 2 tiles, 4 px each, padding 1: rows at y 1..4, 6..9, 11..14 (centres 3, 8, 13)
    images = torch.rand(6, 1, 4, 4)
    arr = viz.grid_array(images, nrow=2, padding=1)
    assert arr.shape == (16, 11)
    root = ET.fromstring(viz.labelled_rows_svg(arr, ["T = 0.5", "a <b>", "T = 1.0"], cell=4, scale=3,
                                               label_width=50))
    ns = "{http://www.w3.org/2000/svg}"
    assert (root.get("width"), root.get("height")) == (str(50 + 11 * 3), str(16 * 3))
    texts = list(root.iter(ns + "text"))
    assert [t.text for t in texts] == ["T = 0.5", "a <b>", "T = 1.0"]
    assert [float(t.get("y")) for t in texts] == [3 * 3, 8 * 3, 13 * 3]
    img = root.find(ns + "image")
    assert (img.get("x"), img.get("width"), img.get("height")) == ("50", str(33), str(48))
    png = base64.b64decode(img.get("href").split(",", 1)[1])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), arr)
    with pytest.raises(ValueError):
        viz.labelled_rows_svg(arr, ["one", "two"], cell=4)


def test_bits_histogram_axis_runs_to_twice_the_largest_median_and_counts_what_is_beyond():
    values = {"digits": [1.0, 1.2, 1.3, 1.1, 1.4], "noise": [5.0, 6.0, 7.5, 40_000.0, 9.0]}
    fig, off = viz.bits_histogram(values, "bits per dimension")
    edge = math.ceil(2 * max(float(np.median(v)) for v in values.values()))  # 2 x 7.5 -> 15
    assert edge == 15 and list(fig.layout.xaxis.range) == [0, edge]
    assert all(t.xbins.start == 0 and t.xbins.end == edge for t in fig.data)
    assert off == "Off the chart, above 15 bits/dim: 1 noise (up to 40,000)."
    assert viz.bits_histogram({"digits": values["digits"]}, "x")[1] == ""
