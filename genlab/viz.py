"""Tensors to pictures: image grids as uint8 arrays, PNG and GIF bytes, and charts.

Grids use torchvision.utils.make_grid where torchvision imports and genlab's own
equivalent otherwise; both give the same layout. Every chart has one builder, which returns
a Plotly figure: Plotly draws it when a person asks for interactive charts, and its picture
is that figure drawn by genlab/figsvg.py.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
import math

import numpy as np
import torch
from PIL import Image

from . import figsvg
from ._compat import torchvision_available

PAD_VALUE = 0.5  # grey gutters keep black-background digits apart on a projector


def make_grid_torch(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 0.0) -> torch.Tensor:
    """Tile (N, C, H, W) into one (3 or C, H', W') image, `nrow` images per row.

    The same layout as torchvision.utils.make_grid: `padding` pixels around every tile,
    single-channel images repeated to 3 channels.
    """
    if images.dim() != 4:
        raise ValueError(f"expected (N, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    hp, wp = h + padding, w + padding
    grid = images.new_full((c, rows * hp + padding, cols * wp + padding), pad_value)
    for k in range(n):
        r, col = divmod(k, cols)
        grid[:, r * hp + padding: r * hp + padding + h, col * wp + padding: col * wp + padding + w] = images[k]
    return grid


def make_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 0.0) -> torch.Tensor:
    """torchvision.utils.make_grid where torchvision imports, else make_grid_torch."""
    if torchvision_available():
        from torchvision.utils import make_grid as tv_make_grid
        return tv_make_grid(images, nrow=nrow, padding=padding, pad_value=pad_value)
    return make_grid_torch(images, nrow=nrow, padding=padding, pad_value=pad_value)


def stretch(x: torch.Tensor) -> torch.Tensor:
    """Each example rescaled to [0, 1] by its own min and max: a tensor in any units (logits, a
    flow's intermediate codes) shown as grey levels."""
    flat = x.flatten(1).float()
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(x)


def grid_array(images: torch.Tensor, nrow: int = 8, upscale: int = 1, padding: int = 2,
               pad_value: float = PAD_VALUE) -> np.ndarray:
    """Images (N, C, H, W) in [0, 1] -> one uint8 picture (H', W') or (H', W', 3).

    `upscale` repeats pixels (nearest neighbour) so small digits stay crisp when shown large.
    """
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=padding, pad_value=pad_value)
    if images.shape[1] == 1:
        grid = grid[:1]
    arr = (grid.mul(255).round().to(torch.uint8)).permute(1, 2, 0).numpy()  # (H', W', C)
    if upscale > 1:
        arr = arr.repeat(upscale, axis=0).repeat(upscale, axis=1)
    return arr[..., 0] if arr.shape[2] == 1 else arr


def png_bytes(arr: np.ndarray, compress_level: int = 1) -> bytes:
    """Encode a uint8 picture as PNG (fast compression: these are sent once per rerun)."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def gif_bytes(frames: list[np.ndarray], duration_ms: int = 120, boomerang: bool = True) -> bytes:
    """An animated, looping GIF of uint8 frames; `boomerang` plays forward then back."""
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    seq = list(frames) + (list(frames[-2:0:-1]) if boomerang else [])
    images = [Image.fromarray(f).convert("P") for f in seq]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return buf.getvalue()


# ----------------------------------------------------------------------------- plotly
def history_figure(history: dict, keys: tuple[str, ...] = ("neg_elbo", "recon", "kl"), title: str = "",
                   names: dict[str, str] | None = None, unit: str = "nats per image", log_y: bool = False):
    """Per-epoch train (solid) and validation (dashed) curves of a card's history."""
    import plotly.graph_objects as go

    epochs = history.get("epochs", [])
    fig = go.Figure()
    names = names or {}
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    for c, key in zip(colors, keys):
        for split, dash in (("train", "solid"), ("val", "dash")):
            pts = [(e["epoch"], e[split][key]) for e in epochs if key in e.get(split, {})]
            if pts:
                x, y = zip(*pts)
                fig.add_scatter(x=x, y=y, mode="lines+markers" if len(x) <= 30 else "lines",
                                name=f"{names.get(key, key)} ({split})", line=dict(color=c, dash=dash))
    if log_y:
        fig.update_yaxes(type="log")
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title=unit,
                      margin=dict(l=10, r=10, t=40, b=10), height=360, legend=dict(orientation="h", y=-0.2))
    return fig


def bits_histogram(values: dict[str, list[float]], xtitle: str, legend_y: float = 1.15):
    """Overlaid bits/dim histograms on one axis from 0 to twice the largest median (a few noise
    images score thousands of bits/dim, and an axis stretched to them puts every digit in the
    first bin), and a sentence that counts what lies beyond it ("" when nothing does)."""
    import plotly.graph_objects as go
    med = {k: sorted(v)[len(v) // 2] for k, v in values.items()}
    edge = math.ceil(2 * max(med.values()))
    fig = go.Figure()
    for label, v in values.items():
        fig.add_histogram(x=v, name=label, opacity=0.6, xbins=dict(start=0, end=edge, size=edge / 60))
    fig.update_layout(barmode="overlay", height=340, xaxis_title=xtitle, xaxis_range=[0, edge], yaxis_title="images",
                      margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=legend_y))
    beyond = {k: sum(x > edge for x in v) for k, v in values.items()}
    off = ", ".join(f"{n} {k} (up to {max(values[k]):,.0f})" for k, n in beyond.items() if n)
    return fig, (f"Off the chart, above {edge} bits/dim: {off}." if off else "")


def kl_per_dim_figure(kl_dim: list[float], threshold: float = 0.01):
    """Bar chart of the KL per latent dimension; bars under `threshold` nats are inactive."""
    import plotly.graph_objects as go

    colors = ["#1f77b4" if v >= threshold else "#bbbbbb" for v in kl_dim]
    fig = go.Figure(go.Bar(x=list(range(len(kl_dim))), y=kl_dim, marker_color=colors))
    fig.update_layout(xaxis_title="latent dimension", yaxis_title="KL (nats)", height=280,
                      margin=dict(l=10, r=10, t=30, b=10))
    return fig


DIGIT_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]  # digit 0..9, in every chart and map


def classifier_map(labels: np.ndarray, confidence: np.ndarray, least: int = 20, scale: int = 4) -> np.ndarray:
    """A lattice of decodes coloured by the classifier's label (DIGIT_COLORS) with its confidence
    as brightness (dark: unsure), the boundaries between labels in white, and the `least`
    confident decodes ringed in black. labels, confidence: (n, n), rows as the picture grid.
    Returns an RGB uint8 array (n * scale, n * scale, 3)."""
    n = labels.shape[0]
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in DIGIT_COLORS], dtype=np.float32)
    img = rgb[labels] * (0.2 + 0.8 * confidence[..., None])  # (n, n, 3)
    img = np.repeat(np.repeat(img, scale, 0), scale, 1)
    big = np.repeat(np.repeat(labels, scale, 0), scale, 1)
    edge = np.zeros(big.shape, dtype=bool)
    edge[:, 1:] |= big[:, 1:] != big[:, :-1]
    edge[1:, :] |= big[1:, :] != big[:-1, :]
    img[edge] = 255.0
    for k in np.argsort(confidence, axis=None)[:least]:
        r, c = divmod(int(k), n)
        y0, x0 = r * scale, c * scale
        ring = np.zeros((scale + 2, scale + 2), dtype=bool)
        ring[[0, -1], :] = ring[:, [0, -1]] = True
        ys, xs = np.nonzero(ring)
        ys, xs = ys + y0 - 1, xs + x0 - 1
        ok = (ys >= 0) & (ys < n * scale) & (xs >= 0) & (xs < n * scale)
        img[ys[ok], xs[ok]] = 0.0
    return img.clip(0, 255).astype(np.uint8)


def explained_variance_figure(explained: list[float], source: str = ""):
    """Bars of the fraction of the variance each principal direction explains, and the running total."""
    import plotly.graph_objects as go

    names = [f"PC{i + 1}" for i in range(len(explained))]
    total = np.cumsum(explained).tolist()
    fig = go.Figure([go.Bar(x=names, y=explained, name="this direction", marker_color="#1f77b4"),
                     go.Scatter(x=names, y=total, name="all up to it", mode="lines+markers",
                                line=dict(color="#d62728"))])
    fig.update_layout(yaxis_title="fraction of the variance" + (f" ({source})" if source else ""), height=280,
                      yaxis_range=[0, 1], margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=-0.3))
    return fig


def latent_scatter(codes: np.ndarray, labels: np.ndarray, title: str = "", height: int = 460,
                   gl_above: int = 1000):
    """Scatter of 2-d codes coloured by label; each point carries its test-set index.

    Above `gl_above` points the traces are WebGL (scattergl): a browser draws 10,000 SVG points
    in seconds (each is a DOM node), WebGL in a fraction of that, even in software without a
    GPU; the markers look the same and hover, click-to-select, pan and zoom work alike. Below it
    they stay SVG (crisper, and no WebGL context: browsers cap how many a page may hold). The
    coordinates go to the browser as float32 (plotly sends numpy arrays as typed binary).
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    palette = DIGIT_COLORS
    codes = np.asarray(codes, dtype=np.float32)
    labels = np.asarray(labels)
    ids = np.arange(len(codes))
    trace = go.Scattergl if len(codes) > gl_above else go.Scatter
    for digit in range(10):
        m = labels == digit
        if m.any():
            fig.add_trace(trace(x=codes[m, 0], y=codes[m, 1], mode="markers", name=str(digit),
                                marker=dict(size=4, color=palette[digit], opacity=0.7),
                                customdata=ids[m], hovertemplate="index %{customdata}<extra>digit " + str(digit) + "</extra>"))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(title="label", itemsizing="constant"), dragmode="pan",
                      yaxis=dict(scaleanchor="x", scaleratio=1))  # equal scales: shapes are not distorted
    return fig


@dataclass
class LineChart:
    """A line chart as data: `figure()` builds it, `plotly()` is that figure for interactive
    charts and `svg(width)` its picture (genlab/figsvg.py), so both drawings are one chart.

    Live views show the picture while a run is live: they redraw every second, and a Plotly
    redraw would hold a GPU-less browser's main thread each time. The figure is built as
    Plotly's JSON (a dict that go.Figure takes as it is) rather than as a go.Figure, whose
    validation of every point costs several times the drawing of the picture.
    """
    series: list  # (x, y, name, colour)
    xtitle: str
    ytitle: str
    yrange: list | None = None
    hline: float | None = None
    height: int = 260
    right: dict | None = None  # one more series on its own right-hand axis: x, y, name, colour, title, range, ticks
    log_y: bool = False  # a logarithmic y axis (the left one); `yrange` stays in data units

    def figure(self) -> dict:
        """The chart as a Plotly figure's JSON: lines, a dotted reference line, a right-hand axis."""
        data = [{"line": {"color": c}, "mode": "lines", "name": name, "x": x, "y": y, "type": "scatter"}
                for x, y, name, c in self.series]
        yaxis = {"title": {"text": self.ytitle}}
        rng = (_log_range(self.yrange) if self.log_y else list(self.yrange)) if self.yrange else None
        if rng:
            yaxis["range"] = rng
        if self.log_y:
            yaxis["type"] = "log"
        layout = {"margin": {"l": 10, "r": 10, "t": 10, "b": 10}, "legend": {"orientation": "h", "y": -0.3},
                  "yaxis": yaxis, "height": self.height, "xaxis": {"title": {"text": self.xtitle}}}
        if self.hline is not None:  # across the plot at y, as Plotly's add_hline draws it
            layout["shapes"] = [{"line": {"dash": "dot"}, "type": "line", "x0": 0, "x1": 1, "xref": "x domain",
                                 "y0": self.hline, "y1": self.hline, "yref": "y"}]
        r = self.right
        if r:
            data.append({"line": {"color": r["colour"], "dash": "dot"}, "mode": "lines", "name": r["name"],
                         "x": r["x"], "y": r["y"], "yaxis": "y2", "type": "scatter"})
            ticks = {"tickmode": "array", "tickvals": list(r["ticks"][0]), "ticktext": list(r["ticks"][1])} \
                if r.get("ticks") else {}
            layout["yaxis2"] = {"title": {"text": r["title"]}, "range": list(r["range"]), "overlaying": "y",
                                "side": "right", "showgrid": False, **ticks}
        return {"data": data, "layout": layout}

    def plotly(self):
        import plotly.graph_objects as go
        return go.Figure(self.figure())

    def svg(self, width: int = 300) -> str:
        return figsvg.figure_svg(self.figure(), width)


def _log_range(yrange) -> list | None:
    """A range in data units as a log axis takes it (log10 of each end), or None (Plotly's
    autorange) where an end is not positive."""
    lo, hi = (float(v) for v in yrange)
    return [math.log10(lo), math.log10(hi)] if lo > 0 and hi > 0 else None


def step_charts(steps: dict, series: tuple, max_points: int = 600, xtitle: str = "step",
                log_y: bool = False) -> list[LineChart]:
    """One chart per `Series` (models/base.py: (key, label, colour) lines, a y label, a range,
    a reference line) over a history's per-step records, thinned to about max_points."""
    from .train import thin
    steps = thin(steps, max_points)
    xs = list(steps.get("step", []))
    charts = []
    for spec in series:
        lines = [(xs, list(steps[k]), label, colour) for k, label, colour in spec.lines if k in steps]
        if not lines:
            continue  # a chart whose keys this history does not have
        charts.append(LineChart(lines, xtitle, spec.ylabel, yrange=list(spec.yrange) if spec.yrange else None,
                                hline=spec.hline, log_y=log_y))
    return charts


def toy_field_spec(field: dict, title: str = "") -> dict:
    """2-d GAN view: D's probability as a heatmap, real and generated points, and the
    generator's gradient (the direction each generated point is pushed) as short arrows.

    Built as Plotly's JSON (as `LineChart.figure`): GAN Live redraws it every second while a
    run is live."""
    t = field["ticks"]
    real, fake, grad = field["real"], field["fake"], field["grad"]
    tips = _arrow_tips(fake, grad, field.get("arrow_ref"))
    xs = np.stack([fake[: len(grad), 0], tips[:, 0], np.full(len(grad), np.nan)], 1).ravel()  # (3A,) NaN between arrows
    ys = np.stack([fake[: len(grad), 1], tips[:, 1], np.full(len(grad), np.nan)], 1).ravel()
    data = [{"colorbar": {"thickness": 12, "title": {"text": "D(x)"}}, "colorscale": "RdBu",
             "opacity": 0.55, "x": t, "y": t, "z": field["prob"], "zmax": 1, "zmin": 0, "type": "heatmap"},
            {"marker": {"color": "#2ca02c", "size": 4}, "mode": "markers", "name": "real",
             "x": real[:, 0], "y": real[:, 1], "type": "scatter"},
            {"marker": {"color": "#7b2cbf", "size": 4}, "mode": "markers", "name": "generated",
             "x": fake[:, 0], "y": fake[:, 1], "type": "scatter"},
            {"line": {"color": "#333333", "width": 1}, "mode": "lines", "name": "G's gradient",
             "x": xs, "y": ys, "type": "scatter"}]
    lim = [float(t[0]), float(t[-1])]
    layout = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "xaxis": {"range": lim},
              "yaxis": {"range": lim, "scaleanchor": "x"}, "legend": {"orientation": "h", "y": -0.1},
              "title": {"text": title}, "height": 480}
    return {"data": data, "layout": layout}


def denoise_field_spec(pic: dict, real: np.ndarray, title: str = "") -> dict:
    """2-d denoising view (`LiveDenoise.picture`): the data in grey, the sampling velocity at time
    t as short arrows on a grid (how far one step moves a point there), and particles' paths from
    noise (faint lines) to where they end (dots). Plotly JSON, redrawn every second while live."""
    grid, arrows, paths = pic["grid"], pic["arrows"], pic["paths"]
    tips = grid + arrows
    nan = np.full(len(grid), np.nan)
    ax, ay = np.stack([grid[:, 0], tips[:, 0], nan], 1).ravel(), np.stack([grid[:, 1], tips[:, 1], nan], 1).ravel()
    px = np.concatenate([paths[:, :, 0], np.full((1, paths.shape[1]), np.nan)]).T.ravel()  # (P * (S + 2),)
    py = np.concatenate([paths[:, :, 1], np.full((1, paths.shape[1]), np.nan)]).T.ravel()
    end = paths[-1]
    lim = [float(grid[:, 0].min()) - 0.2, float(grid[:, 0].max()) + 0.2]
    data = [{"marker": {"color": "#b8c2cc", "size": 3}, "mode": "markers", "name": "data",
             "x": real[:, 0], "y": real[:, 1], "type": "scatter"},
            {"line": {"color": "#1f77b4", "width": 1}, "mode": "lines", "name": f"velocity at t = {pic['t']:g}",
             "x": ax, "y": ay, "type": "scatter"},
            {"line": {"color": "rgba(214,39,40,0.35)", "width": 1}, "mode": "lines", "name": "paths from noise",
             "x": px, "y": py, "type": "scatter"},
            {"marker": {"color": "#d62728", "size": 5}, "mode": "markers", "name": "where they end",
             "x": end[:, 0], "y": end[:, 1], "type": "scatter"}]
    layout = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "xaxis": {"range": lim},
              "yaxis": {"range": lim, "scaleanchor": "x"}, "legend": {"orientation": "h", "y": -0.1},
              "title": {"text": title}, "height": 440}
    return {"data": data, "layout": layout}


def toy_field_figure(field: dict, title: str = ""):
    """`toy_field_spec` as a Plotly figure (interactive charts)."""
    import plotly.graph_objects as go
    return go.Figure(toy_field_spec(field, title))


def toy_field_svg(field: dict, title: str = "", width: int = 540) -> str:
    """`toy_field_spec` as a picture: what GAN Live shows each second while a run is live."""
    return figsvg.figure_svg(toy_field_spec(field, title), width)


def _arrow_tips(fake: np.ndarray, grad: np.ndarray, ref: float | None = None) -> np.ndarray:
    """Where G's gradient arrows end: scaled so an arrow of norm `ref` (default: this field's
    90th-percentile norm) is 0.3 long. Fields drawn side by side share one `ref`, so their
    arrows compare."""
    if not len(grad):
        return fake[:0]
    if ref is None:
        ref = float(np.percentile(np.linalg.norm(grad, axis=1), 90))
    return fake[: len(grad)] + grad * (0.3 / max(ref, 1e-12))


def labelled_rows_png(arr: np.ndarray, labels: list[str], cell: int, padding: int = 1, scale: int = 2,
                      label_width: int = 64, font_size: int = 14) -> bytes:
    """A grid picture (grid_array's uint8 output, one row of tiles per label) enlarged `scale`
    times by whole pixels, with each row's label to its left, centred on the row, on a
    transparent strip: a picture with captions rather than a chart, so one PNG like every grid."""
    from PIL import ImageDraw, ImageFont

    h, w = arr.shape[:2]
    if len(labels) * (cell + padding) + padding != h:
        raise ValueError(f"{len(labels)} labels for a picture {h} pixels high in rows of {cell} + {padding}")
    big = arr.repeat(scale, axis=0).repeat(scale, axis=1)  # (H, W) or (H, W, 3)
    big = big[..., None] if big.ndim == 2 else big
    mask = Image.new("L", (label_width, h * scale), 0)
    draw = ImageDraw.Draw(mask)
    font = ImageFont.load_default(size=font_size)
    for i, text in enumerate(labels):
        y = (padding + i * (cell + padding) + cell / 2) * scale
        draw.text((label_width - 10, y), text, fill=255, font=font, anchor="rm")
    strip = np.concatenate([np.full((h * scale, label_width, big.shape[2]), 0x33, np.uint8),
                            np.asarray(mask)[..., None]], 2)  # (H, label_width, C + 1): grey text, alpha its coverage
    pixels = np.concatenate([big, np.full(big.shape[:2] + (1,), 255, np.uint8)], 2)  # (H, W, C + 1), opaque
    return png_bytes(np.concatenate([strip, pixels], 1))


def toy_measure_charts(rows: list[dict]) -> tuple[LineChart | None, LineChart]:
    """Modes covered (ring data) and KL / JS to the data over training, for 2-d GANs. The
    second series of each chart has its own right-hand axis: a fraction of 1 beside a count of
    8, and JS (at most ln 2) beside a KL that can be many nats."""
    steps = [r["step"] for r in rows]
    modes = None
    if rows and "modes" in rows[0]:
        modes = LineChart([(steps, [r["modes"] for r in rows], "modes covered (of 8)", "#9467bd")],
                          "generator step", "modes covered", yrange=[0, 8.5], height=240,
                          right=dict(x=steps, y=[r["high_quality"] for r in rows],
                                     name="samples within 3σ of a mode (right)", colour="#8c564b",
                                     title="fraction", range=[0, 1.0625],
                                     ticks=([0, 0.25, 0.5, 0.75, 1], ["0", "0.25", "0.5", "0.75", "1"])))
    div = LineChart([(steps, [r["kl"] for r in rows], "KL(real ‖ generated)", "#d62728")],
                    "generator step", "KL, nats", height=240,
                    right=dict(x=steps, y=[r["js"] for r in rows], name="JS (right; at most ln 2)", colour="#1f77b4",
                               title="JS, nats", range=[0, 0.72],
                               ticks=([0, 0.2, 0.4, 0.6, math.log(2)], ["0", "0.2", "0.4", "0.6", "ln 2"])))
    return modes, div


def toy_measures_figures(rows: list[dict]):
    """`toy_measure_charts` as Plotly figures."""
    modes, div = toy_measure_charts(rows)
    return (None if modes is None else modes.plotly()), div.plotly()


# ----------------------------------------------------------------------------- structure search
def mask_heatmap(masks: np.ndarray, columns, title: str = "", height: int | None = None):
    """Layers x features: which features condition (1) and which are transformed (0) in each coupling."""
    import plotly.graph_objects as go

    L, d = masks.shape
    fig = go.Figure(go.Heatmap(
        z=masks, x=list(columns), y=[f"layer {l + 1}" for l in range(L)], zmin=0, zmax=1, xgap=1, ygap=1,
        colorscale=[[0, "#f4a259"], [0.5, "#f4a259"], [0.5, "#3d5a80"], [1, "#3d5a80"]],
        colorbar=dict(tickvals=[0.25, 0.75], ticktext=["transformed", "conditions"], len=0.8),
        hovertemplate="%{y}, %{x}: %{z}<extra>1 = conditions</extra>"))
    fig.update_layout(title=title, height=height or 90 + 28 * L, margin=dict(l=10, r=10, t=40, b=10),
                      yaxis=dict(autorange="reversed"))
    return fig


def search_figure(points: np.ndarray, best_steps, best, height: int = 320):
    """Every offspring's loss (its last training batch) over search iterations, the accepted
    ones marked, and the best-so-far line."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if len(points):
        points = points[np.isfinite(points[:, 1])]  # a diverged offspring has no loss to plot
    if len(points):
        rej = points[points[:, 2] == 0]
        acc = points[points[:, 2] == 1]
        fig.add_trace(go.Scattergl(x=rej[:, 0], y=rej[:, 1], mode="markers", name="offspring (rejected)",
                                   marker=dict(size=5, color="#9aa5b1", opacity=0.6)))
        fig.add_trace(go.Scattergl(x=acc[:, 0], y=acc[:, 1], mode="markers", name="accepted",
                                   marker=dict(size=9, color="#2a9d8f", symbol="diamond")))
    if len(best):
        fig.add_trace(go.Scatter(x=list(best_steps), y=list(best), mode="lines", name="best so far",
                                 line=dict(color="#e63946", shape="hv")))
    if len(points):  # the first losses can be far above the rest: frame the bulk
        lo, hi = np.percentile(points[:, 1], [0, 95])
        pad = 0.05 * (hi - lo + 1e-9)
        fig.update_yaxes(range=[lo - pad, hi + pad])
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="search iteration",
                      yaxis_title="loss on the last batch (bits/dim)", legend=dict(orientation="h", y=-0.25))
    return fig


LAYOUT_COLOURS = {"parity": "#1f77b4", "random": "#9467bd", "opt": "#2a9d8f"}


def final_curve_chart(steps, curve: np.ndarray, names=("parity", "random", "opt")) -> LineChart:
    """The full trainings of the three layouts, side by side."""
    series = [(list(steps), curve[:, i].tolist(), name, LAYOUT_COLOURS.get(name, "#333"))
              for i, name in enumerate(names)]
    return LineChart(series, "SGD iteration", "mean batch loss over 50 iterations (bits/dim)")


def pairs_figure(data: np.ndarray, samples: np.ndarray, i: int, j: int, columns, height: int = 420):
    """Test rows against flow samples in two chosen features."""
    import plotly.graph_objects as go

    fig = go.Figure([
        go.Scattergl(x=data[:, i], y=data[:, j], mode="markers", name="test data",
                     marker=dict(size=4, color="#1f77b4", opacity=0.5)),
        go.Scattergl(x=samples[:, i], y=samples[:, j], mode="markers", name="flow samples",
                     marker=dict(size=4, color="#e76f51", opacity=0.5))])
    both = np.concatenate([data[:, [i, j]], samples[:, [i, j]]])
    both = both[np.isfinite(both).all(1)]
    lo, hi = np.percentile(both, [0.5, 99.5], axis=0)  # a stray sample must not squash the picture
    pad = 0.05 * (hi - lo + 1e-9)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), xaxis_title=columns[i],
                      yaxis_title=columns[j], legend=dict(orientation="h", y=-0.2),
                      xaxis=dict(range=[lo[0] - pad[0], hi[0] + pad[0]]),
                      yaxis=dict(range=[lo[1] - pad[1], hi[1] + pad[1]]))
    return fig


GEN_LOSS_STYLE = {"minimax": ("minimax: log(1 − D(G(z)))", "#d62728"),
                  "nonsaturating": ("non-saturating: −log D(G(z))", "#1f77b4")}


def gan_loss_figure(lv: dict, current: str = "nonsaturating"):
    """Why the non-saturating loss: for the current discriminator, (1) both generator losses
    against D(G(z)), (2) the size of their slope |dLoss/dD| (log scale), (3) the norm of the
    gradient that reaches each generated sample, ‖∂Loss/∂x‖ (log scale). Curves are the losses'
    own (autograd on a grid of D), markers are this batch's samples (`LiveGAN.loss_view`)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08, subplot_titles=(
        "generator loss", "its slope |dLoss / dD| (log)", "gradient reaching G, ‖∂Loss/∂x‖ (log)"))
    c, d = lv["curves"], np.asarray(lv["d"])
    for kind, (label, colour) in GEN_LOSS_STYLE.items():
        dash = "solid" if kind == current else "dash"
        short = label.split(":")[0]
        dots = dict(color=colour, size=6, opacity=0.7)
        fig.add_scatter(x=c["d"], y=c[f"loss_{kind}"], mode="lines", name=label, legendgroup=kind,
                        line=dict(color=colour, dash=dash), row=1, col=1)
        fig.add_scatter(x=d, y=lv[f"loss_{kind}"], mode="markers", name=f"{short} loss, this batch",
                        legendgroup=kind, showlegend=False, marker=dots, row=1, col=1)
        fig.add_scatter(x=c["d"], y=np.abs(c[f"grad_{kind}"]), mode="lines", legendgroup=kind, showlegend=False,
                        line=dict(color=colour, dash=dash), name=f"{short} |dLoss/dD|", row=1, col=2)
        fig.add_scatter(x=d, y=np.abs(lv[f"slope_{kind}"]), mode="markers", legendgroup=kind, showlegend=False,
                        name=f"{short} |dLoss/dD|, this batch", marker=dots, row=1, col=2)
        fig.add_scatter(x=d, y=np.maximum(lv[f"norm_{kind}"], 1e-30), mode="markers", legendgroup=kind,
                        showlegend=False, name=f"{short} gradient norm at x, this batch", marker=dots, row=1, col=3)
    for col in (1, 2, 3):
        fig.update_xaxes(title_text="D(G(z))", range=[0, 1], row=1, col=col)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_yaxes(type="log", row=1, col=3)
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def points_figure(sets: dict[str, np.ndarray], title: str = "", height: int = 420):
    """2-d point sets in one square plot (real data against generated, say), one colour each."""
    import plotly.graph_objects as go

    colours = ["#2ca02c", "#7b2cbf", "#ff7f0e", "#1f77b4"]
    fig = go.Figure()
    for (name, pts), colour in zip(sets.items(), colours):
        pts = np.asarray(pts)
        fig.add_scattergl(x=pts[:, 0], y=pts[:, 1], mode="markers", name=name, marker=dict(size=4, color=colour))
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      yaxis=dict(scaleanchor="x"), legend=dict(orientation="h", y=-0.1))
    return fig
