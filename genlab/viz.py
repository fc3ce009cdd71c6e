"""Tensors to pictures: image grids as uint8 arrays, PNG and GIF bytes, plotly figures.

Grids use torchvision.utils.make_grid where torchvision imports and genlab's own
equivalent otherwise; both give the same layout.
"""
from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image

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
def history_figure(history: dict, keys: tuple[str, ...] = ("neg_elbo", "recon", "kl"), title: str = ""):
    """Per-epoch train (solid) and validation (dashed) curves of a card's history."""
    import plotly.graph_objects as go

    epochs = history.get("epochs", [])
    fig = go.Figure()
    names = {"neg_elbo": "-ELBO", "recon": "reconstruction", "kl": "KL", "loss": "loss"}
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    for c, key in zip(colors, keys):
        for split, dash in (("train", "solid"), ("val", "dash")):
            pts = [(e["epoch"], e[split][key]) for e in epochs if key in e.get(split, {})]
            if pts:
                x, y = zip(*pts)
                fig.add_scatter(x=x, y=y, mode="lines+markers" if len(x) <= 30 else "lines",
                                name=f"{names.get(key, key)} ({split})", line=dict(color=c, dash=dash))
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title="nats per image",
                      margin=dict(l=10, r=10, t=40, b=10), height=360, legend=dict(orientation="h", y=-0.2))
    return fig


def steps_figure(history: dict, key: str = "loss"):
    """Per-step (binned) training curve."""
    import plotly.graph_objects as go

    steps = history.get("steps", {})
    fig = go.Figure()
    if key in steps:
        fig.add_scatter(x=steps.get("step"), y=steps[key], mode="lines", name=key)
    fig.update_layout(xaxis_title="step", yaxis_title=key, margin=dict(l=10, r=10, t=30, b=10), height=260)
    return fig


def kl_per_dim_figure(kl_dim: list[float], threshold: float = 0.01):
    """Bar chart of the KL per latent dimension; bars under `threshold` nats are inactive."""
    import plotly.graph_objects as go

    colors = ["#1f77b4" if v >= threshold else "#bbbbbb" for v in kl_dim]
    fig = go.Figure(go.Bar(x=list(range(len(kl_dim))), y=kl_dim, marker_color=colors))
    fig.update_layout(xaxis_title="latent dimension", yaxis_title="KL (nats)", height=280,
                      margin=dict(l=10, r=10, t=30, b=10))
    return fig


def latent_scatter(codes: np.ndarray, labels: np.ndarray, title: str = "", height: int = 460):
    """Scatter of 2-d codes coloured by label; each point carries its test-set index."""
    import plotly.graph_objects as go

    fig = go.Figure()
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    ids = np.arange(len(codes))
    for digit in range(10):
        m = labels == digit
        if m.any():
            fig.add_scattergl(x=codes[m, 0], y=codes[m, 1], mode="markers", name=str(digit),
                              marker=dict(size=4, color=palette[digit], opacity=0.7),
                              customdata=ids[m], hovertemplate="index %{customdata}<extra>digit " + str(digit) + "</extra>")
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(title="label", itemsizing="constant"), dragmode="pan",
                      yaxis=dict(scaleanchor="x", scaleratio=1))  # equal scales: shapes are not distorted
    return fig


def _lines(series: list[tuple[list, list, str, str]], xtitle: str, ytitle: str, yrange=None, height: int = 260,
           hline: float | None = None):
    """A light line chart from (x, y, name, colour) series (no subplots: they are slow to build)."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=x, y=y, mode="lines", name=name, line=dict(color=c)) for x, y, name, c in series])
    if hline is not None:
        fig.add_hline(y=hline, line_dash="dot")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), xaxis_title=xtitle, yaxis_title=ytitle,
                      legend=dict(orientation="h", y=-0.3), yaxis=dict(range=yrange) if yrange else {})
    return fig


def _right_axis(fig, x, y, name: str, colour: str, title: str, yrange, ticks: dict | None = None) -> None:
    """Add one line on its own axis on the right of a `_lines` chart."""
    import plotly.graph_objects as go

    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line=dict(color=colour, dash="dot"), yaxis="y2"))
    fig.update_layout(yaxis2=dict(title=title, range=yrange, overlaying="y", side="right", showgrid=False,
                                  **(ticks or {})))


def gan_figures(steps: dict, max_points: int = 600):
    """Two charts over generator steps: the D and G losses, and mean D(x) and D(G(z))."""
    x = list(steps.get("step", []))
    stride = max(1, len(x) // max_points)
    xs = x[::stride]

    def series(keys):
        return [(xs, list(steps[k])[::stride], name, c) for k, name, c in keys if k in steps]

    losses = _lines(series((("d_loss", "D loss", "#d62728"), ("g_loss", "G loss", "#1f77b4"))),
                    "generator step", "loss")
    outputs = _lines(series((("d_real", "mean D(x), real", "#2ca02c"),
                             ("d_fake", "mean D(G(z)), generated", "#ff7f0e"))),
                     "generator step", "discriminator output", yrange=[0, 1], hline=0.5)
    return losses, outputs


def toy_field_figure(field: dict, title: str = ""):
    """2-d GAN view: D's probability as a heatmap, real and generated points, and the
    generator's gradient (the direction each generated point is pushed) as short arrows."""
    import plotly.graph_objects as go

    t = field["ticks"]
    fig = go.Figure(go.Heatmap(x=t, y=t, z=field["prob"], zmin=0, zmax=1, colorscale="RdBu", opacity=0.55,
                               colorbar=dict(title="D(x)", thickness=12)))
    real, fake, grad = field["real"], field["fake"], field["grad"]
    fig.add_scattergl(x=real[:, 0], y=real[:, 1], mode="markers", name="real", marker=dict(size=4, color="#2ca02c"))
    fig.add_scattergl(x=fake[:, 0], y=fake[:, 1], mode="markers", name="generated", marker=dict(size=4, color="#7b2cbf"))
    norm = np.linalg.norm(grad, axis=1, keepdims=True)
    scale = 0.3 / max(float(np.percentile(norm, 90)), 1e-12)
    tips = fake[: len(grad)] + grad * scale
    xs = np.stack([fake[: len(grad), 0], tips[:, 0], np.full(len(grad), np.nan)], 1).ravel()
    ys = np.stack([fake[: len(grad), 1], tips[:, 1], np.full(len(grad), np.nan)], 1).ravel()
    fig.add_scattergl(x=xs, y=ys, mode="lines", name="G's gradient", line=dict(color="#333333", width=1))
    fig.update_layout(title=title, height=480, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(range=[t[0], t[-1]]), yaxis=dict(range=[t[0], t[-1]], scaleanchor="x"),
                      legend=dict(orientation="h", y=-0.1))
    return fig


def toy_measures_figures(rows: list[dict]):
    """Modes covered (ring data) and KL / JS to the data over training, for 2-d GANs. The
    second series of each chart has its own right-hand axis: a fraction of 1 beside a count of
    8, and JS (at most ln 2) beside a KL that can be many nats."""
    steps = [r["step"] for r in rows]
    modes = None
    if rows and "modes" in rows[0]:
        modes = _lines([(steps, [r["modes"] for r in rows], "modes covered (of 8)", "#9467bd")],
                       "generator step", "modes covered", yrange=[0, 8.5], height=240)
        _right_axis(modes, steps, [r["high_quality"] for r in rows], "samples within 3σ of a mode (right)",
                    "#8c564b", "fraction", [0, 1.0625],
                    dict(tickmode="array", tickvals=[0, 0.25, 0.5, 0.75, 1]))
    div = _lines([(steps, [r["kl"] for r in rows], "KL(real ‖ generated)", "#d62728")],
                 "generator step", "KL, nats", height=240)
    _right_axis(div, steps, [r["js"] for r in rows], "JS (right; at most ln 2)", "#1f77b4", "JS, nats",
                [0, 0.72], dict(tickmode="array", tickvals=[0, 0.2, 0.4, 0.6, math.log(2)],
                                ticktext=["0", "0.2", "0.4", "0.6", "ln 2"]))
    return modes, div
