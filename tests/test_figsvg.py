"""Plotly figures drawn as SVG pictures (genlab/figsvg.py): the numbers behind the picture
(bins, heights, positions, colours) checked against independent computations, and every
figure the views build drawn as well-formed SVG."""
import base64
import io
import math
import re
from xml.etree import ElementTree

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from genlab import figsvg, viz

NS = {"s": "http://www.w3.org/2000/svg"}


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)


def dots(svg: str) -> list[np.ndarray]:
    """Each dot path's points (markers are drawn as 'Mx yh0' strokes), in drawing order."""
    out = []
    for p in parse(svg).iter("{http://www.w3.org/2000/svg}path"):
        d = p.get("d", "")
        if d.endswith("h0") and p.get("stroke-linecap") == "round":
            out.append(np.array([[float(a), float(b)] for a, b in re.findall(r"M([-\d.]+) ([-\d.]+)h0", d)]))
    return out


def rects(svg: str, fill: str) -> np.ndarray:
    """(x, y, w, h) of the bars of one colour (drawn as 'Mx yhWvHh-Wz' rectangles)."""
    out = []
    for p in parse(svg).iter("{http://www.w3.org/2000/svg}path"):
        if p.get("fill") == fill:
            out += re.findall(r"M([-\d.]+) ([-\d.]+)h([-\d.]+)v([-\d.]+)h", p.get("d", ""))
    return np.array(out, dtype=float)


def test_histogram_bins_and_heights_agree_with_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, 1000)
    edges = figsvg.histogram_bins(x, xbins={"start": -5, "end": 11, "size": 0.5})
    assert np.allclose(edges, np.arange(-5, 11.001, 0.5))
    counts = figsvg.histogram_heights(x, edges, None)
    assert np.array_equal(counts, np.histogram(x, bins=np.arange(-5, 11.001, 0.5))[0])
    dens = figsvg.histogram_heights(x, edges, "probability density")
    inside = ((x >= -5) & (x <= 11)).sum() / len(x)
    assert math.isclose(float((dens * np.diff(edges)).sum()), inside, rel_tol=1e-12)
    assert math.isclose(float(figsvg.histogram_heights(x, edges, "probability").sum()), inside)
    auto = figsvg.histogram_bins(x, nbins=50)  # at most about 50 bins of a round size, covering the data
    size = auto[1] - auto[0]
    assert auto[0] <= x.min() and auto[-1] >= x.max() and len(auto) - 1 <= 52
    mantissa = size / 10 ** math.floor(math.log10(size))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 5))


def test_nice_ticks_are_round_and_cover_the_range():
    for lo, hi in [(0, 8.5), (0.47, 1.55), (1, 2900), (-3, 120), (0, 0.72)]:
        ticks = figsvg.nice_ticks(lo, hi, 6)
        assert 2 <= len(ticks) <= 7 and lo <= ticks[0] and ticks[-1] <= hi
        steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
        assert len(steps) == 1
        step = steps.pop()
        assert round(step / 10 ** math.floor(math.log10(step)), 6) in (1, 2, 5), (lo, hi, ticks)


def test_nice_step_is_the_smallest_round_step_at_least_the_raw_one():
    for raw in (0.013, 0.2, 0.21, 3.0, 7.5, 49.0, 1234.0):
        step = figsvg.nice_step(raw)
        assert step >= raw * (1 - 1e-9)
        smaller = [m * 10.0 ** k for k in range(-4, 5) for m in (1, 2, 5) if m * 10.0 ** k < step * (1 - 1e-9)]
        assert all(s < raw for s in smaller)


def test_scatter_points_are_placed_by_one_affine_map_per_axis_with_equal_scales():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(200, 2)) * [3.0, 0.5]
    fig = go.Figure(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers"))
    fig.update_layout(yaxis=dict(scaleanchor="x"), height=400)
    (px,) = dots(figsvg.figure_svg(fig, 600))
    assert len(px) == 200
    # fit pixel = a * value + b on each axis: every point must lie on it (to the SVG's 0.1 px rounding)
    for k in (0, 1):
        a, b = np.polyfit(pts[:, k], px[:, k], 1)
        assert np.abs(a * pts[:, k] + b - px[:, k]).max() < 0.1
        if k == 0:
            ax = a
        else:
            ay = a
    assert ax > 0 and ay < 0  # right is +x, up is +y
    assert math.isclose(ax, -ay, rel_tol=0.01)  # scaleanchor: one unit is as long on both axes


def test_a_missing_value_breaks_a_line():
    fig = go.Figure(go.Scatter(x=[0, 1, 2, 3, 4], y=[0, 1, None, 1, 0], mode="lines"))
    paths = [p.get("d") for p in parse(figsvg.figure_svg(fig)).iter("{http://www.w3.org/2000/svg}path")
             if p.get("fill") == "none" and p.get("stroke-linecap") is None]
    assert len(paths) == 1 and paths[0].count("M") == 2 and paths[0].count("L") == 2


def test_bars_are_as_tall_as_their_values_from_zero_and_groups_do_not_overlap():
    a, b = [3.0, 1.0, 4.0, 1.5], [2.0, 5.0, 0.5, 2.5]
    fig = go.Figure([go.Bar(x=[0, 1, 2, 3], y=a, marker_color="#aa0000"),
                     go.Bar(x=[0, 1, 2, 3], y=b, marker_color="#0000aa")])
    fig.update_layout(barmode="group")
    svg = figsvg.figure_svg(fig, 600)
    ra, rb = rects(svg, "#aa0000"), rects(svg, "#0000aa")
    assert len(ra) == len(rb) == 4
    heights = np.concatenate([ra[:, 3], rb[:, 3]])
    values = np.array(a + b)
    assert np.allclose(heights / heights.max(), values / values.max(), atol=0.003)  # 0.1 px rounding
    bottoms = np.concatenate([ra[:, 1] + ra[:, 3], rb[:, 1] + rb[:, 3]])
    assert np.ptp(bottoms) < 0.2  # all from one baseline (zero)
    assert (ra[:, 0] + ra[:, 2] <= rb[:, 0] + 0.11).all()  # side by side in each group


def test_histogram_bars_match_the_counts():
    x = np.concatenate([np.full(10, 0.25), np.full(30, 0.75), np.full(20, 1.25)])
    fig = go.Figure(go.Histogram(x=x, xbins=dict(start=0, end=1.5, size=0.5), marker_color="#123456"))
    r = rects(figsvg.figure_svg(fig, 500), "#123456")
    assert len(r) == 3
    assert np.allclose(r[:, 3] / r[:, 3].max(), [10 / 30, 1, 20 / 30], atol=0.003)
    assert np.allclose(np.diff(r[:, 0]), r[0, 2], atol=0.15)  # bins side by side, equal widths


def test_a_log_axis_spaces_decades_equally():
    fig = go.Figure(go.Scatter(x=[1, 2, 3, 4], y=[1, 10, 100, 1000], mode="markers"))
    fig.update_yaxes(type="log")
    (px,) = dots(figsvg.figure_svg(fig))
    assert np.allclose(np.diff(px[:, 1]), np.diff(px[:, 1])[0], atol=0.15) and np.diff(px[:, 1])[0] < 0


def test_a_heatmap_is_its_colour_scale_with_row_zero_at_the_bottom():
    z = np.array([[0.0, 0.0], [1.0, 1.0]])  # row 0 low, row 1 high
    fig = go.Figure(go.Heatmap(z=z, zmin=0, zmax=1, colorscale=[[0, "#000000"], [1, "#ffffff"]]))
    image = next(e for e in parse(figsvg.figure_svg(fig)).iter("{http://www.w3.org/2000/svg}image")
                 if e.get("href", "").startswith("data:image/png"))
    arr = np.asarray(Image.open(io.BytesIO(base64.b64decode(image.get("href").split(",", 1)[1]))))
    assert arr.shape[:2] == (2, 2)
    assert (arr[0, :, :3] == 255).all() and (arr[1, :, :3] == 0).all()  # the top row of the picture is row 1


def test_colourscale_lut_interpolates_between_its_stops():
    lut = figsvg.colourscale_lut([[0, "rgb(0,0,0)"], [0.5, "#ff0000"], [1, "rgb(255,255,255)"]], 5)
    assert lut.tolist() == [[0, 0, 0], [128, 0, 0], [255, 0, 0], [255, 128, 128], [255, 255, 255]]


def test_a_named_colour_scale_is_spread_as_plotly_spreads_it():
    for name in ("RdBu", "Viridis"):
        plotly_scale = go.Figure(go.Heatmap(z=[[0.0]], colorscale=name)).data[0].colorscale
        assert figsvg.colourscale(name) == [list(stop) for stop in plotly_scale]
    assert figsvg.colourscale(["#000000", "#ffffff", "#ff0000"]) == [[0.0, "#000000"], [0.5, "#ffffff"],
                                                                      [1.0, "#ff0000"]]
    assert figsvg.colourscale_lut("RdBu", 3).tolist()[0] == [103, 0, 31]


def path_by_hand(px, py, step: bool) -> str:
    """A new M after every gap, then L (or H and V) to each point, one point at a time."""
    out, pen = [], False
    for x, y in zip(px, py):
        if not (math.isfinite(x) and math.isfinite(y)):
            pen = False
        elif not pen:
            out.append(f"M{x:.1f} {y:.1f}")
            pen = True
        else:
            out.append(f"H{x:.1f}V{y:.1f}" if step else f"L{x:.1f} {y:.1f}")
    return "".join(out)


def test_a_path_breaks_at_missing_values_and_steps_across_then_up():
    px = np.array([0.0, 1.04, np.nan, 3.0, 4.25, 5.0, np.nan, 7.0])
    py = np.array([10.0, 11.0, 12.0, np.inf, 14.0, 15.55, 16.0, -0.04])
    assert figsvg._path(px, py) == path_by_hand(px, py, False) == "M0.0 10.0L1.0 11.0M4.2 14.0L5.0 15.6M7.0 -0.0"
    assert figsvg._path(px, py, step=True) == path_by_hand(px, py, True)
    rng = np.random.default_rng(5)
    px, py = rng.normal(size=500) * 100, rng.normal(size=500) * 100
    py[rng.random(500) < 0.1] = np.nan
    assert figsvg._path(px, py) == path_by_hand(px, py, False)
    assert figsvg._path(np.array([np.nan]), np.array([1.0])) == ""


def test_a_figure_given_as_its_json_draws_as_the_figure_does():
    """Numbers, gaps (None), categories (strings) and typed arrays read alike from a dict and a go.Figure."""
    spec = {"data": [{"type": "scatter", "x": [0, 1, 2, 3], "y": [1.0, None, 2, 3.5], "mode": "lines+markers",
                      "name": "a"},
                     {"type": "bar", "x": ["p", "q"], "y": [2, 1], "xaxis": "x2", "yaxis": "y2", "name": "b"},
                     {"type": "scatter", "x": np.arange(3.0), "y": np.array([3.0, np.nan, 1.0]), "name": "c"}],
            "layout": {"xaxis": {"domain": [0, 0.45]}, "xaxis2": {"domain": [0.55, 1]}, "yaxis2": {"anchor": "x2"},
                       "height": 300, "title": {"text": "t"}}}
    assert figsvg.figure_svg(spec, 500) == figsvg.figure_svg(go.Figure(spec), 500)


def test_colours_a_trace_does_not_set_follow_streamlits_theme():
    fig = go.Figure([go.Scatter(y=[1, 2], mode="lines", name="a"), go.Scatter(y=[2, 1], mode="lines", name="b")])
    svg = figsvg.figure_svg(fig)
    assert f'stroke="{figsvg.THEME_COLOURS[0]}"' in svg and f'stroke="{figsvg.THEME_COLOURS[1]}"' in svg
    assert ">a</text>" in svg and ">b</text>" in svg  # two traces: a legend


def figures():
    rng = np.random.default_rng(0)
    hist = {"epochs": [{"epoch": e, "train": {"neg_elbo": 100 / e, "recon": 80 / e, "kl": 5.0 + e},
                        "val": {"neg_elbo": 110 / e}} for e in range(1, 6)]}
    t = np.linspace(-2, 2, 20)
    field = {"ticks": t, "prob": 1 / (1 + np.exp(-(t[None] + t[:, None]))), "real": rng.normal(size=(50, 2)),
             "fake": rng.normal(size=(30, 2)), "grad": rng.normal(size=(30, 2))}
    d = np.linspace(0.01, 0.99, 20)
    lv = {"curves": {"d": d, "loss_minimax": np.log(1 - d), "loss_nonsaturating": -np.log(d),
                     "grad_minimax": -1 / (1 - d), "grad_nonsaturating": -1 / d},
          "d": rng.random(16), **{f"{k}_{m}": rng.random(16) for k in ("loss", "slope", "norm")
                                  for m in ("minimax", "nonsaturating")}}
    line = viz.LineChart([(list(range(50)), list(rng.random(50)), "loss", "#1f77b4")], "step", "loss", hline=0.5,
                         right=dict(x=list(range(50)), y=list(rng.random(50)), name="D", colour="#2ca02c",
                                    title="D(x)", range=[0, 1]))
    return {
        "history": viz.history_figure(hist, title="per epoch"),
        "history log": viz.history_figure(hist, log_y=True),
        "kl per dim": viz.kl_per_dim_figure(list(rng.random(8))),
        "latent scatter": viz.latent_scatter(rng.normal(size=(3000, 2)), rng.integers(0, 10, 3000), title="codes"),
        "line chart": line.plotly(),
        "line chart as JSON": line.figure(),
        "toy field": viz.toy_field_figure(field, "field"),
        "toy field as JSON": viz.toy_field_spec(field, "field"),
        "masks": viz.mask_heatmap((rng.random((4, 6)) > 0.5).astype(int), list("abcdef"), title="masks"),
        "search": viz.search_figure(np.c_[np.arange(30), rng.random(30), rng.random(30) > 0.7], [0, 10, 20],
                                    [1.0, 0.8, 0.5]),
        "pairs": viz.pairs_figure(rng.normal(size=(100, 3)), rng.normal(size=(100, 3)), 0, 2, ["a", "b", "c"]),
        "gan losses": viz.gan_loss_figure(lv),
        "points": viz.points_figure({"real": rng.normal(size=(40, 2)), "fake": rng.normal(size=(40, 2))}),
    }


@pytest.mark.parametrize("name", list(figures()))
def test_every_figure_genlab_builds_draws_as_a_well_formed_picture(name):
    fig = figures()[name]
    if isinstance(fig, dict):  # built as Plotly's JSON (live charts): go.Figure takes it as it is
        assert figsvg.figure_svg(fig, 640) == figsvg.figure_svg(go.Figure(fig), 640)
        fig = go.Figure(fig)
    svg = figsvg.figure_svg(fig, 640)
    root = parse(svg)
    assert root.get("width") == "640" and root.get("class") == "genlab-chart"
    labels = [e.text or "" for e in root.iter("{http://www.w3.org/2000/svg}text")]
    for trace in fig.data:  # every named trace in the legend (or the picture has just one trace)
        if trace.name and trace.showlegend is not False and len(fig.data) > 1 and trace.type != "heatmap":
            assert trace.name in labels, trace.name
    texts = " ".join(labels)
    for axis in ("xaxis", "yaxis"):
        title = fig.layout[axis].title.text
        if title:
            assert title in texts


def test_a_shared_figure_is_drawn_once_per_width():
    fig = viz.kl_per_dim_figure([0.5, 0.0, 1.0])
    first = figsvg.cached_svg(fig, 400)
    assert figsvg.cached_svg(fig, 400) is first and figsvg.cached_svg(fig, 500) is not first


def tick_labels(svg: str, anchor: str) -> list[str]:
    """The tick labels of the x axis (anchor 'middle') or the y axis (anchor 'end'), in order."""
    return [e.text for e in parse(svg).iter("{http://www.w3.org/2000/svg}text")
            if e.get("text-anchor") == anchor and e.get("font-size") is None]


def test_tick_labels_are_as_precise_as_their_spacing():
    fig = go.Figure(go.Scatter(x=[0, 165_000], y=[0.00012, 0.00031], mode="lines"))
    svg = figsvg.figure_svg(fig, 500)
    xs, ys = tick_labels(svg, "middle"), tick_labels(svg, "end")
    assert len(set(xs)) == len(xs) and len(set(ys)) == len(ys)  # no two ticks read the same
    assert "150k" in xs or "100k" in xs
    assert all(t == "0" or t.endswith("k") for t in xs)  # one style along the axis: 50k, not 50,000, beside 100k
    assert figsvg.tick_label(150_000, 50_000) == "150k" and figsvg.tick_label(1_500_000, 500_000) == "1.5M"
    assert figsvg.tick_label(0.2, 0.05) == "0.2" and figsvg.tick_label(0.25, 0.05) == "0.25"
    assert figsvg.tick_label(2500, 500) == "2,500" and figsvg.tick_label(0.00015, 0.00005) == "0.00015" and figsvg.tick_label(1.5e-5, 5e-6) == "1.5e-5"


def test_a_narrow_log_axis_still_has_ticks():
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[1.25, 1.5, 1.75], mode="lines"))
    fig.update_yaxes(type="log")
    ys = tick_labels(figsvg.figure_svg(fig), "end")
    assert len(ys) >= 2 and all(1.2 <= float(t) <= 1.8 for t in ys)


def test_a_range_given_high_to_low_reverses_the_axis():
    fig = go.Figure(go.Scatter(x=[0, 10], y=[0, 1], mode="markers"))
    fig.update_xaxes(range=[10, 0])
    (px,) = dots(figsvg.figure_svg(fig))
    assert px[0, 0] > px[1, 0]  # x = 0 on the right


def test_scaleratio_makes_a_unit_of_one_axis_that_many_times_the_other():
    fig = go.Figure(go.Scatter(x=[0, 1, 2, 3], y=[0, 1, 2, 3], mode="markers"))
    fig.update_layout(yaxis=dict(scaleanchor="x", scaleratio=2), height=400)
    (px,) = dots(figsvg.figure_svg(fig, 600))
    ax = np.polyfit([0, 1, 2, 3], px[:, 0], 1)[0]
    ay = np.polyfit([0, 1, 2, 3], px[:, 1], 1)[0]
    assert math.isclose(-ay, 2 * ax, rel_tol=0.01)


def test_text_is_escaped_and_odd_figures_draw_without_error():
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name="a < b & \"c\"", mode="lines"))
    fig.add_scatter(x=[1, 2], y=[4, 3], name="line<br>two", mode="lines")
    fig.update_layout(title="x > 0 & y < 1", xaxis_title="<b>bold</b>")
    root = parse(figsvg.figure_svg(fig))
    texts = [e.text for e in root.iter("{http://www.w3.org/2000/svg}text")]
    assert 'a < b & "c"' in texts and "line two" in texts and "x > 0 & y < 1" in texts and "bold" in texts
    odd = [go.Figure(), go.Figure(go.Scatter(x=[1.0], y=[2.0])), go.Figure(go.Scatter(x=[1, 2], y=[np.nan, np.nan])),
           go.Figure(go.Heatmap(z=[[np.nan, np.nan]])), go.Figure(go.Bar(y=np.array([1.0, 2.0]))),
           go.Figure(go.Scatter(y=np.arange(30.0))), go.Figure(go.Bar(x=np.array(["a", "b"]), y=[1, 2]))]
    for f in odd:
        parse(figsvg.figure_svg(f))


def test_overlap_layers_rank_each_dot_among_the_earlier_dots_of_its_cell():
    rng = np.random.default_rng(3)
    px, py = rng.uniform(0, 60, 500), rng.uniform(0, 40, 500)
    layers = figsvg.overlap_layers(px, py, size=4.0, layers=4)
    seen: dict = {}
    for i, (x, y) in enumerate(zip(px, py)):  # brute force: count the earlier dots in the same 4 px cell
        cell = (math.floor(x / 4.0), math.floor(y / 4.0))
        assert layers[i] == min(seen.get(cell, 0), 3), i
        seen[cell] = seen.get(cell, 0) + 1
    assert layers.max() == 3 and len(figsvg.overlap_layers(np.zeros(0), np.zeros(0), 4.0)) == 0


def test_translucent_dots_that_pile_up_cover_what_plotly_covers():
    """Plotly paints dots one by one, so k dots of opacity a on one spot cover 1 - (1 - a)^k of it.
    In the picture a spot is covered once per path that has a dot there."""
    x = [1.0, 1.0, 1.0, 5.0, 1.0, 1.0, 1.0]  # six dots on one spot, one alone
    y = [1.0, 1.0, 1.0, 5.0, 1.0, 1.0, 1.0]
    for a in (0.5, 0.7):
        fig = go.Figure(go.Scatter(x=x, y=y, mode="markers", marker=dict(size=6, opacity=a, color="#123456")))
        paths = dots(figsvg.figure_svg(fig, 400))
        assert sum(len(p) for p in paths) == 7  # every dot drawn once
        spot = [p for p in paths if len(p)][0][0]  # the first dot's place in the picture
        layers = sum(bool((np.abs(p - spot).sum(1) < 1e-9).any()) for p in paths)
        covered = 1 - (1 - a) ** layers
        assert layers == figsvg.MARKER_LAYERS  # six dots, capped at the layers
        assert math.isclose(covered, 1 - (1 - a) ** min(6, figsvg.MARKER_LAYERS))
        assert 1 - (1 - a) ** 6 - covered < 0.07  # within 7 points of Plotly's coverage of 6 dots
        alone = np.array([[a_ for a_ in p[-1]] for p in paths if len(p)])[0]  # the dot alone, in the first path
        assert sum(bool((np.abs(p - alone).sum(1) < 1e-9).any()) for p in paths) == 1  # covered once: a
    opaque = go.Figure(go.Scatter(x=x, y=y, mode="markers", marker=dict(size=6, color="#123456")))
    assert len(dots(figsvg.figure_svg(opaque, 400))) == 1  # opaque dots: one path, nothing to build up
