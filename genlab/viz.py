"""Tensors to pictures: image grids as uint8 arrays, PNG and GIF bytes, plotly figures.

Grids use torchvision.utils.make_grid where torchvision imports and genlab's own
equivalent otherwise; both give the same layout.
"""
from __future__ import annotations

import functools
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
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
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
    """A line chart as data, drawn either by Plotly (interactive) or as a small SVG.

    Live views redraw their curves every second. In a browser without a GPU each Plotly
    redraw holds the page's main thread for ~50-150 ms, and a click waits behind it;
    an SVG image of the same chart costs the browser next to nothing. So GAN Live draws
    SVG while training runs and Plotly (hover, zoom) when paused or stopped.
    """
    series: list  # (x, y, name, colour)
    xtitle: str
    ytitle: str
    yrange: list | None = None
    hline: float | None = None
    height: int = 260
    right: dict | None = None  # one more series on its own right-hand axis: x, y, name, colour, title, range, ticks
    log_y: bool = False  # Plotly only: a logarithmic y axis

    def plotly(self):
        import plotly.graph_objects as go

        fig = go.Figure([go.Scatter(x=x, y=y, mode="lines", name=name, line=dict(color=c))
                         for x, y, name, c in self.series])
        if self.hline is not None:
            fig.add_hline(y=self.hline, line_dash="dot")
        fig.update_layout(height=self.height, margin=dict(l=10, r=10, t=10, b=10), xaxis_title=self.xtitle,
                          yaxis_title=self.ytitle, legend=dict(orientation="h", y=-0.3),
                          yaxis=dict(range=self.yrange) if self.yrange else {})
        if self.log_y:
            fig.update_yaxes(type="log")
        r = self.right
        if r:
            fig.add_trace(go.Scatter(x=r["x"], y=r["y"], mode="lines", name=r["name"],
                                     line=dict(color=r["colour"], dash="dot"), yaxis="y2"))
            ticks = dict(tickmode="array", tickvals=r["ticks"][0], ticktext=r["ticks"][1]) if r.get("ticks") else {}
            fig.update_layout(yaxis2=dict(title=r["title"], range=r["range"], overlaying="y", side="right",
                                          showgrid=False, **ticks))
        return fig

    def svg(self, width: int = 300) -> str:
        return _svg_chart(self, width)


def _ticks(lo: float, hi: float, n: int = 6) -> list[tuple[float, str]]:
    """About n round ticks covering [lo, hi], each with its label: the chart pictures' own
    (`figsvg.nice_ticks`, `figsvg.tick_label`), so live and still charts read alike."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [(lo, figsvg.tick_label(lo))] if math.isfinite(lo) else []
    return figsvg.labelled(figsvg.nice_ticks(lo, hi, n), hi - lo)


def _range_of(values, given) -> tuple[float, float]:
    if given:
        return float(given[0]), float(given[1])
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(lo), 1.0) * 0.05
    return lo - pad, hi + pad


def _svg_chart(ch: LineChart, width: int) -> str:
    """The chart as a self-contained SVG string (axes, ticks, grid, legend), Plotly-like."""
    from html import escape

    h = ch.height
    left, right_m, top, bottom = 58, (58 if ch.right else 14), 10, 74
    pw, ph = width - left - right_m, h - top - bottom
    xs = [v for x, *_ in ch.series for v in x] + (list(ch.right["x"]) if ch.right else [])
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x1 <= x0:
        x1 = x0 + 1
    y0, y1 = _range_of([v for _, y, *_ in ch.series for v in y], ch.yrange)

    def px(v):
        return left + (v - x0) / (x1 - x0) * pw

    def py(v, lo=y0, hi=y1):
        return top + (1 - (v - lo) / (hi - lo)) * ph

    def path(x, y, lo=y0, hi=y1):
        parts, run = [], []
        for a, b in zip(x, y):
            if b is None or not math.isfinite(b):
                if run:
                    parts.append(run)
                run = []
                continue
            run.append(f"{px(a):.1f},{py(min(max(b, lo - (hi - lo)), hi + (hi - lo)), lo, hi):.1f}")
        if run:
            parts.append(run)
        return " ".join("M" + " L".join(r) for r in parts)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {h}" width="{width}" height="{h}" '
           f'font-family="sans-serif" font-size="11" fill="#555">',
           f'<defs><clipPath id="plot"><rect x="{left}" y="{top}" width="{pw}" height="{ph}"/></clipPath></defs>']
    for t, label in _ticks(y0, y1):
        y = py(t)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    for t, label in _ticks(x0, x1, 5):
        x = px(t)
        out.append(f'<text x="{x:.1f}" y="{top + ph + 15}" text-anchor="middle">{label}</text>')
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#bbb"/>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{top + ph + 33}" text-anchor="middle" font-size="12">'
               f'{escape(ch.xtitle)}</text>')
    out.append(f'<text transform="translate(14,{top + ph / 2:.1f}) rotate(-90)" text-anchor="middle" '
               f'font-size="12">{escape(ch.ytitle)}</text>')
    if ch.hline is not None and y0 <= ch.hline <= y1:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(ch.hline):.1f}" y2="{py(ch.hline):.1f}" '
                   f'stroke="#222" stroke-dasharray="2,3"/>')
    legend = [(name, c, "") for _, _, name, c in ch.series]
    for x, y, _, c in ch.series:
        out.append(f'<path d="{path(x, y)}" fill="none" stroke="{c}" stroke-width="1.6" clip-path="url(#plot)"/>')
    r = ch.right
    if r:
        lo, hi = _range_of(r["y"], r.get("range"))
        pairs = list(zip(*r["ticks"])) if r.get("ticks") else _ticks(lo, hi)
        for t, label in pairs:
            out.append(f'<text x="{left + pw + 6}" y="{py(t, lo, hi) + 4:.1f}">{escape(str(label))}</text>')
        out.append(f'<text transform="translate({width - 12},{top + ph / 2:.1f}) rotate(90)" '
                   f'text-anchor="middle" font-size="12">{escape(r["title"])}</text>')
        out.append(f'<path d="{path(r["x"], r["y"], lo, hi)}" fill="none" stroke="{r["colour"]}" stroke-width="1.6" '
                   f'stroke-dasharray="3,3" clip-path="url(#plot)"/>')
        legend.append((r["name"], r["colour"], ' stroke-dasharray="3,3"'))
    ly = top + ph + 50
    for i, (name, c, dash) in enumerate(legend):  # one entry per line, as Plotly lays out long names
        y = ly + 14 * (i % 2)
        x = left + (pw / 2) * (i // 2)
        out.append(f'<line x1="{x:.1f}" x2="{x + 22:.1f}" y1="{y - 4}" y2="{y - 4}" stroke="{c}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{x + 28:.1f}" y="{y}">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


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


def toy_field_figure(field: dict, title: str = ""):
    """2-d GAN view: D's probability as a heatmap, real and generated points, and the
    generator's gradient (the direction each generated point is pushed) as short arrows."""
    import plotly.graph_objects as go

    t = field["ticks"]
    fig = go.Figure(go.Heatmap(x=t, y=t, z=field["prob"], zmin=0, zmax=1, colorscale="RdBu", opacity=0.55,
                               colorbar=dict(title="D(x)", thickness=12)))
    real, fake, grad = field["real"], field["fake"], field["grad"]
    fig.add_scatter(x=real[:, 0], y=real[:, 1], mode="markers", name="real", marker=dict(size=4, color="#2ca02c"))
    fig.add_scatter(x=fake[:, 0], y=fake[:, 1], mode="markers", name="generated", marker=dict(size=4, color="#7b2cbf"))
    tips = _arrow_tips(fake, grad, field.get("arrow_ref"))
    xs = np.stack([fake[: len(grad), 0], tips[:, 0], np.full(len(grad), np.nan)], 1).ravel()
    ys = np.stack([fake[: len(grad), 1], tips[:, 1], np.full(len(grad), np.nan)], 1).ravel()
    fig.add_scatter(x=xs, y=ys, mode="lines", name="G's gradient", line=dict(color="#333333", width=1))
    fig.update_layout(title=title, height=480, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(range=[t[0], t[-1]]), yaxis=dict(range=[t[0], t[-1]], scaleanchor="x"),
                      legend=dict(orientation="h", y=-0.1))
    return fig


def _arrow_tips(fake: np.ndarray, grad: np.ndarray, ref: float | None = None) -> np.ndarray:
    """Where G's gradient arrows end: scaled so an arrow of norm `ref` (default: this field's
    90th-percentile norm) is 0.3 long. Fields drawn side by side share one `ref`, so their
    arrows compare."""
    if not len(grad):
        return fake[:0]
    if ref is None:
        ref = float(np.percentile(np.linalg.norm(grad, axis=1), 90))
    return fake[: len(grad)] + grad * (0.3 / max(ref, 1e-12))


@functools.lru_cache(maxsize=2)
def _rdbu_lut(opacity: float = 0.55) -> np.ndarray:
    """Plotly's RdBu colour scale as 256 RGB rows, blended over white as the figure's heatmap is."""
    import plotly.colors as pc

    rgb = [tuple(int(v) for v in c[4:-1].split(",")) for c in pc.sample_colorscale("RdBu", np.linspace(0, 1, 256))]
    lut = (opacity * np.array(rgb, dtype=np.float64) + (1 - opacity) * 255).round().astype(np.uint8)
    lut.setflags(write=False)  # cached and shared
    return lut


def labelled_rows_svg(arr: np.ndarray, labels: list[str], cell: int, padding: int = 1, scale: int = 2,
                      label_width: int = 64) -> str:
    """A grid picture (grid_array's uint8 output, one row of tiles per label) as an SVG with each
    row's label to its left, centred on the row: the pixels stay an embedded PNG drawn without
    smoothing, the labels stay text, and both scale together wherever the picture is shown."""
    import base64
    from html import escape

    h, w = arr.shape[:2]
    if len(labels) * (cell + padding) + padding != h:
        raise ValueError(f"{len(labels)} labels for a picture {h} pixels high in rows of {cell} + {padding}")
    W, H = label_width + w * scale, h * scale
    png = base64.b64encode(png_bytes(arr)).decode()
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="14" fill="#333">',
           f'<image x="{label_width}" y="0" width="{w * scale}" height="{H}" preserveAspectRatio="none" '
           f'style="image-rendering:pixelated" href="data:image/png;base64,{png}"/>']
    for i, text in enumerate(labels):
        y = (padding + i * (cell + padding) + cell / 2) * scale
        out.append(f'<text x="{label_width - 10}" y="{y:.1f}" text-anchor="end" dominant-baseline="central">'
                   f'{escape(text)}</text>')
    out.append("</svg>")
    return "".join(out)


def toy_field_svg(field: dict, title: str = "", width: int = 560) -> str:
    """`toy_field_figure` as a light SVG picture (for redrawing every second while training
    runs): D's probability as an embedded PNG, real and generated points, G's gradient arrows,
    a colour bar and a legend."""
    import base64
    from html import escape

    t = field["ticks"]
    lo, hi = float(t[0]), float(t[-1])
    top, left, size = (34 if title else 10), 40, width - 40 - 70
    h = top + size + 56

    def px(v):
        return left + (v - lo) / (hi - lo) * size

    def py(v):
        return top + (1 - (v - lo) / (hi - lo)) * size

    lut = _rdbu_lut()
    idx = np.clip((np.asarray(field["prob"]) * 255).round(), 0, 255).astype(np.int64)[::-1]  # row 0 = top
    heat = base64.b64encode(png_bytes(lut[idx])).decode()
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
           f'viewBox="0 0 {width} {h}" width="{width}" height="{h}" font-family="sans-serif" font-size="11" fill="#555">']
    if title:
        out.append(f'<text x="{left}" y="20" font-size="14" font-weight="bold" fill="#222">{escape(title)}</text>')
    cell = size / len(t)  # the heatmap's cells are centred on the ticks, as Plotly draws them
    out.append(f'<image x="{left - cell / 2:.1f}" y="{top - cell / 2:.1f}" width="{size + cell:.1f}" '
               f'height="{size + cell:.1f}" preserveAspectRatio="none" style="image-rendering:pixelated" '
               f'href="data:image/png;base64,{heat}"/>')
    for v, label in _ticks(lo, hi, 7):
        out.append(f'<text x="{px(v):.1f}" y="{top + size + 18:.1f}" text-anchor="middle">{label}</text>')
        out.append(f'<text x="{left - 8}" y="{py(v) + 4:.1f}" text-anchor="end">{label}</text>')
    real, fake, grad = np.asarray(field["real"]), np.asarray(field["fake"]), np.asarray(field["grad"])
    tips = _arrow_tips(fake, grad, field.get("arrow_ref"))
    arrows = " ".join(f"M{px(a):.1f},{py(b):.1f}L{px(c):.1f},{py(d):.1f}"
                      for (a, b), (c, d) in zip(fake[: len(grad)], tips))
    out.append(f'<defs><clipPath id="field"><rect x="{left}" y="{top}" width="{size}" height="{size}"/></clipPath></defs>'
               f'<g clip-path="url(#field)">')
    for pts, colour in ((real, "#2ca02c"), (fake, "#7b2cbf")):
        out.append(f'<g fill="{colour}">' + "".join(f'<circle cx="{px(a):.1f}" cy="{py(b):.1f}" r="2.2"/>'
                                                   for a, b in pts) + "</g>")
    out.append(f'<path d="{arrows}" stroke="#333" stroke-width="1" fill="none"/></g>')
    bx = left + size + 22  # the colour bar, 1 at the top
    bar = base64.b64encode(png_bytes(lut[::-1][:, None, :].repeat(8, 1))).decode()
    out.append(f'<image x="{bx}" y="{top}" width="12" height="{size}" preserveAspectRatio="none" '
               f'href="data:image/png;base64,{bar}"/>')
    for v in (0, 0.2, 0.4, 0.6, 0.8, 1):
        out.append(f'<text x="{bx + 16}" y="{top + (1 - v) * size + 4:.1f}">{v:g}</text>')
    out.append(f'<text x="{bx}" y="{top - 12}">D(x)</text>')  # above the bar's "1"
    ly = top + size + 44
    for i, (name, colour, kind) in enumerate((("real", "#2ca02c", "dot"), ("generated", "#7b2cbf", "dot"),
                                              ("G's gradient", "#333", "line"))):
        x = left + 110 * i
        out.append(f'<circle cx="{x + 6}" cy="{ly - 4}" r="3" fill="{colour}"/>' if kind == "dot" else
                   f'<line x1="{x}" x2="{x + 18}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}"/>')
        out.append(f'<text x="{x + 24}" y="{ly}">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


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
    import plotly.graph_objects as go
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
