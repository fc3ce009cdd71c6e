"""Plotly figures drawn as static SVG pictures, without Plotly's JavaScript.

A page load that shows one Plotly chart makes the browser evaluate Plotly's script (several
MB) and lay out its SVG: about a second of a student's laptop per page (bench/draw.py). The
same figure as one SVG picture costs the browser a few milliseconds. So the views show every
chart as this picture by default, and the figure itself (hover, zoom, click) when a person
turns on interactive charts (views/common.py `chart`).

`figure_svg` reads the figure's own data and layout (`fig.to_plotly_json()`, or that JSON
given as a dict, as genlab's live charts build it), so both drawings come from one figure. It
draws what genlab's figures use: scatter and scattergl (lines, markers, lines+markers, step
lines, error bars, NaN gaps), bars (grouped or overlaid, with a base), histograms (nbinsx or
xbins; histnorm), heatmaps (a named or a given colour scale, gaps, a colour bar), horizontal
and vertical lines with their notes, subplots side by side (make_subplots), a second y axis on
the right, log axes, categorical axes, reversed axes, equal scales (scaleanchor), titles and
legends. Colours a trace does not set follow Streamlit's chart theme, as
st.plotly_chart draws them.
"""
from __future__ import annotations

import base64
import functools
import io
import math
import re
import threading
import weakref
from html import escape

import numpy as np

# st.plotly_chart's default theme ("streamlit", light): its categorical colours, in order
THEME_COLOURS = ["#0068c9", "#83c9ff", "#ff2b2b", "#ffabab", "#29b09d", "#7defa1", "#ff8700", "#ffd16a",
                 "#6d3fc0", "#d5dae5"]
TEXT, GRID, AXIS = "#31333f", "#e6eaf1", "#bfc5d3"
FONT = 12
DASHES = {"dash": "6,4", "dot": "2,3", "dashdot": "6,3,2,3", "longdash": "10,4", "longdashdot": "10,3,2,3"}


def _text_width(text: str, size: float = FONT) -> float:
    return 0.55 * size * len(text)


def _plain(text) -> str:
    """Plotly's text without its HTML: a line break as a space, tags dropped, a lone < or > kept."""
    text = re.sub(r"<br\s*/?>", " ", str(text or ""), flags=re.I)
    return re.sub(r"</?[a-zA-Z][^<>]*>", "", text)


def _title(spec) -> str:
    t = spec.get("title") if isinstance(spec, dict) else None
    if isinstance(t, dict):
        return _plain(t.get("text", ""))
    return _plain(t or "")


def _num(values) -> np.ndarray:
    """Values as float64; anything that is not a number becomes NaN."""
    if values is None:
        return np.zeros(0)
    arr = np.asarray(values, dtype=object).ravel()
    out = np.full(len(arr), np.nan)
    for i, v in enumerate(arr):
        try:
            out[i] = float(v) if v is not None else np.nan
        except (TypeError, ValueError):
            pass
    return out


def _fast_num(values) -> np.ndarray:
    if values is None:
        return np.zeros(0)
    try:
        return np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return _num(values)


def nice_step(raw: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten that is at least `raw`."""
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * (1 - 1e-9))


def histogram_bins(x: np.ndarray, nbins: int | None = None, xbins: dict | None = None) -> np.ndarray:
    """Bin edges as Plotly lays them out: the given start/end/size, or about `nbins` (at most)
    bins of a round size that cover the data."""
    x = x[np.isfinite(x)]
    if xbins and xbins.get("size"):
        size = float(xbins["size"])
        start = float(xbins.get("start", np.floor(x.min() / size) * size if len(x) else 0.0))
        end = float(xbins.get("end", x.max() if len(x) else start + size))
        n = max(1, int(math.ceil((end - start) / size - 1e-9)))
        return start + size * np.arange(n + 1)
    if not len(x):
        return np.array([0.0, 1.0])
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.array([lo - 0.5, lo + 0.5])
    size = nice_step((hi - lo) / (nbins or 40))
    start = math.floor(lo / size) * size
    n = max(1, int(math.floor((hi - start) / size)) + 1)
    return start + size * np.arange(n + 1)


def histogram_heights(x: np.ndarray, edges: np.ndarray, histnorm: str | None) -> np.ndarray:
    """Counts per bin (left-closed bins, the last one closed too), normalised as `histnorm`."""
    x = x[np.isfinite(x)]
    counts = np.histogram(x, bins=edges)[0].astype(np.float64)
    n = max(len(x), 1)
    if histnorm == "probability":
        return counts / n
    if histnorm == "percent":
        return 100 * counts / n
    if histnorm == "density":
        return counts / np.diff(edges)
    if histnorm == "probability density":
        return counts / (n * np.diff(edges))
    return counts


def _rgb(colour) -> tuple[int, int, int, float]:
    c = str(colour).strip()
    if c.startswith("#"):
        h = c[1:]
        if len(h) == 3:
            h = "".join(ch * 2 for ch in h)
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 1.0
    m = re.match(r"rgba?\(([^)]*)\)", c)
    if m:
        parts = [float(p) for p in m.group(1).split(",")]
        return int(parts[0]), int(parts[1]), int(parts[2]), (parts[3] if len(parts) > 3 else 1.0)
    return 0, 0, 0, 1.0


def colourscale(scale) -> list:
    """A colour scale as [[position, colour], ...]: a named one ("RdBu") or a list of colours is
    spread evenly, as Plotly expands them (a figure given as a dict has not been through Plotly)."""
    if isinstance(scale, str):
        scale = list(_named_colours(scale))
    if len(scale) and isinstance(scale[0], str):
        return [[i / (len(scale) - 1), c] for i, c in enumerate(scale)]
    return scale


@functools.lru_cache(maxsize=16)
def _named_colours(name: str) -> tuple:
    """The colours of one of Plotly's named colour scales (looked up once: Plotly's lookup is slow)."""
    from plotly.colors import get_colorscale
    return tuple(c for _, c in get_colorscale(name))


def colourscale_lut(scale, n: int = 256) -> np.ndarray:
    """(n, 3) uint8 colours along a Plotly colour scale ([[position, colour], ...], or a name)."""
    scale = colourscale(scale)
    pos = np.array([float(p) for p, _ in scale])
    cols = np.array([_rgb(c)[:3] for _, c in scale], dtype=np.float64)
    t = np.linspace(0, 1, n)
    return np.stack([np.interp(t, pos, cols[:, k]) for k in range(3)], 1).round().astype(np.uint8)


def _png_uri(rgba: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


# ----------------------------------------------------------------------------- axes
class _Axis:
    def __init__(self, name: str, spec: dict):
        self.name, self.spec = name, spec or {}
        self.log = self.spec.get("type") == "log"
        self.reversed = self.spec.get("autorange") == "reversed"
        self.cats: list | None = None  # category labels, in order
        self.values: list[np.ndarray] = []
        self.pad = 0.0
        self.floor = False  # bars from zero: the range starts at zero when nothing is below it
        self.lo = self.hi = None
        self.p0 = self.p1 = 0.0  # pixels of lo and hi

    def category(self, labels) -> np.ndarray:
        """Positions of category labels (0, 1, ...), adding new categories as they come."""
        if self.cats is None:
            self.cats = []
        out = []
        for v in np.asarray(labels, dtype=object).ravel():
            v = str(v)
            if v not in self.cats:
                self.cats.append(v)
            out.append(self.cats.index(v))
        return np.asarray(out, dtype=np.float64)

    def coords(self, values) -> np.ndarray:
        """Data values as this axis's linear coordinates (log10 on a log axis, NaN where undefined)."""
        if values is None:
            return np.zeros(0)
        arr = values.ravel() if isinstance(values, np.ndarray) else _array(values)
        if arr.dtype.kind in "US":
            return self.category(arr)
        if arr.dtype == object and any(isinstance(v, str) for v in arr):
            if self.cats is not None or not all(_is_number(v) for v in arr):
                return self.category(arr)
        v = _fast_num(arr)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.where(v > 0, np.log10(np.where(v > 0, v, 1)), np.nan)
        return v

    def include(self, coords: np.ndarray) -> None:
        c = coords[np.isfinite(coords)]
        if len(c):
            self.values.append(np.array([c.min(), c.max()]))

    def settle(self) -> None:
        given = self.spec.get("range")
        if given is not None and len(given) == 2 and all(_is_number(v) for v in given):
            lo, hi = float(given[0]), float(given[1])  # a log axis's range is in log10 units, as Plotly's
            if lo > hi:  # a range given high to low: a reversed axis
                lo, hi, self.reversed = hi, lo, True
        elif self.values:
            lo = min(float(v[0]) for v in self.values)
            hi = max(float(v[1]) for v in self.values)
            span = hi - lo if hi > lo else max(abs(lo), 1.0)
            floor = self.floor and lo >= 0
            lo, hi = (lo if floor else lo - self.pad * span), hi + self.pad * span
        else:
            lo, hi = (-0.5, 0.5) if self.cats else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        if self.reversed:
            lo, hi = hi, lo
        self.lo, self.hi = lo, hi

    def px(self, c):
        return self.p0 + (np.asarray(c, dtype=np.float64) - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)

    def ticks(self, n: int) -> list[tuple[float, str]]:
        """(coordinate, label) of this axis's ticks."""
        lo, hi = min(self.lo, self.hi), max(self.lo, self.hi)
        if self.spec.get("tickvals") is not None:
            vals = list(self.spec["tickvals"])
            text = list(self.spec.get("ticktext") or [tick_label(v) for v in vals])
            return [(float(v), str(t)) for v, t in zip(vals, text) if lo <= float(v) <= hi]
        if self.cats is not None:
            step = max(1, math.ceil(len(self.cats) / max(n * 3, 1)))
            return [(float(i), c) for i, c in enumerate(self.cats) if lo <= i <= hi and i % step == 0]
        if self.log:
            out = []
            for k in range(math.floor(lo), math.ceil(hi) + 1):
                mults = (1,) if hi - lo > 3 else ((1, 2, 5) if hi - lo > 1.2 else (1, 2, 3, 5))
                for m in mults:
                    c = k + math.log10(m)
                    if lo - 1e-9 <= c <= hi + 1e-9:
                        out.append((c, tick_label(m * 10.0 ** k, m * 10.0 ** k)))
            if len(out) < 2:  # a narrow range between round values: round values of the data instead
                vals = [v for v in nice_ticks(10 ** lo, 10 ** hi, n) if v > 0]
                step = vals[1] - vals[0] if len(vals) > 1 else abs(10 ** hi - 10 ** lo)
                out = [(math.log10(v), tick_label(v, step)) for v in vals]
            return out
        dtick = self.spec.get("dtick")
        if dtick is None and self.spec.get("tickmode") == "linear":
            dtick = 1
        if _is_number(dtick) and float(dtick) > 0 and (hi - lo) / float(dtick) <= 60:
            d = float(dtick)
            first = math.ceil(lo / d - 1e-9) * d
            vals = [first + i * d for i in range(int((hi - first) / d + 1e-9) + 1)]
        else:
            vals = nice_ticks(lo, hi, n)
        return labelled(vals, hi - lo)


def _array(values) -> np.ndarray:
    """A list as a flat array: numeric where every item is a number, else of objects (numbers
    beside strings or None, or rows of unequal length)."""
    try:
        arr = np.asarray(values)
    except ValueError:
        arr = None
    if arr is None or arr.dtype.kind not in "fiub":
        arr = np.asarray(values, dtype=object)
    return arr.ravel()


def _len(values) -> int:
    return 0 if values is None else len(values)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(float(v))


def nice_ticks(lo: float, hi: float, n: int) -> list[float]:
    """About n round values (1, 2 or 5 times a power of ten apart) covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    step = nice_step((hi - lo) / max(n - 1, 1))
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def labelled(vals: list[float], span: float) -> list[tuple[float, str]]:
    """Evenly spaced tick values with their labels, in one style along the axis (50k beside 100k)."""
    step = vals[1] - vals[0] if len(vals) > 1 else span
    si = max((abs(v) for v in vals), default=0) >= 1e5
    return [(v, tick_label(v, step, si)) for v in vals]


def tick_label(v: float, step: float | None = None, si: bool | None = None) -> str:
    """A tick's label, as precise as the ticks' spacing asks (150,000 beside 100,000, 0.00015
    beside 0.0001): thousands separated, with k/M/G from 100,000 up and e-notation below 0.0001."""
    v = float(v)
    if v == 0:
        return "0"
    step = abs(float(step)) if step and math.isfinite(step) and step > 0 else abs(v)
    si = abs(v) >= 1e5 if si is None else si
    for power, suffix in ((9, "G"), (6, "M"), (3, "k")):
        if si and abs(v) >= 10 ** power:
            digits = max(0, power - math.floor(math.log10(step) + 1e-9))
            return _trim(f"{v / 10 ** power:,.{digits}f}") + suffix
    if abs(v) < 1e-4:
        digits = max(0, math.floor(math.log10(abs(v)) + 1e-9) - math.floor(math.log10(step) + 1e-9))
        mantissa, exponent = f"{v:.{digits}e}".split("e")
        return f"{_trim(mantissa)}e{int(exponent)}"
    digits = max(0, -math.floor(math.log10(step) + 1e-9))
    return _trim(f"{v:,.{digits}f}")


def _trim(text: str) -> str:
    """'0.20' -> '0.2', '2.0' -> '2': no trailing zeros after a decimal point."""
    return text.rstrip("0").rstrip(".") if "." in text else text


# ----------------------------------------------------------------------------- the figure
def _axis_key(ref: str) -> str:
    """'x' -> 'xaxis', 'x2' -> 'xaxis2'."""
    return ref[0] + "axis" + ref[1:]


def _domain_ref(ref: str) -> str | None:
    """'x domain' -> 'x', 'x2 domain' -> 'x2'."""
    return ref.split()[0] if ref and ref.endswith("domain") else None


def _trace_colour(tr: dict, default: str) -> str:
    for part in ("marker", "line"):
        c = (tr.get(part) or {}).get("color")
        if isinstance(c, str):
            return c
    return default


def _legend_entries(data: list[dict], layout: dict) -> list[dict]:
    eligible = [tr for tr in data if tr.get("type") != "heatmap" and tr.get("showlegend", True) is not False
                and tr.get("visible", True) is not False]
    if layout.get("showlegend") is False:
        return []
    if layout.get("showlegend") is not True and len(eligible) < 2:
        return []
    return [tr for tr in eligible if tr.get("name")]


def _decode(v):
    """Plotly's JSON with its typed arrays ({"dtype", "bdata", "shape"}) back as numpy arrays."""
    if isinstance(v, dict):
        if "bdata" in v and "dtype" in v:
            arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
            shape = v.get("shape")
            if shape:
                arr = arr.reshape([int(k) for k in str(shape).split(",")])
            return arr
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list) and v and isinstance(v[0], (dict, list)):  # Plotly's arrays are of one kind:
        return [_decode(x) for x in v]  # numbers or strings are returned as they are
    return v


def figure_svg(fig, width: int = 700) -> str:
    """The figure as one self-contained SVG string, `width` pixels wide and as tall as the
    figure's layout says (450 by default, as Plotly)."""
    d = _decode(fig.to_plotly_json() if hasattr(fig, "to_plotly_json") else fig)
    data = [dict(tr) for tr in d.get("data", [])]
    layout = dict(d.get("layout", {}))
    height = int(layout.get("height") or 450)
    width = int(layout.get("width") or width)
    for i, tr in enumerate(data):  # colours a trace does not set: the theme's, in trace order
        tr.setdefault("type", "scatter")
        tr["_colour"] = _trace_colour(tr, THEME_COLOURS[i % len(THEME_COLOURS)])

    # axes and the data each one shows
    axes: dict[str, _Axis] = {}

    def axis(ref: str) -> _Axis:
        if ref not in axes:
            axes[ref] = _Axis(ref, layout.get(_axis_key(ref), {}))
        return axes[ref]

    for key in layout:
        if re.fullmatch(r"[xy]axis\d*", key):
            axis(key[0] + key[5:])
    for tr in data:
        axis(tr.get("xaxis", "x")), axis(tr.get("yaxis", "y"))
    drawn = [_prepare(tr, axes, layout) for tr in data]
    bar_mode = layout.get("barmode", "group")
    _place_bars(drawn, bar_mode)
    for item in drawn:
        ax, ay = axes[item["x"]], axes[item["y"]]
        for c in item["xs"]:
            ax.include(c)
        for c in item["ys"]:
            ay.include(c)
        if "ys_raw" in item:  # bar ends in data units: in the axis's coordinates (log10 on a log axis)
            ay.include(ay.coords(item["ys_raw"]))
        ax.pad = max(ax.pad, item["xpad"])
        ay.pad = max(ay.pad, item["ypad"])
        ay.floor = ay.floor or "bar_x" in item
    for s in layout.get("shapes", []) or []:  # a line at a data value widens the range to show it
        for k, ref in (("x", s.get("xref", "x")), ("y", s.get("yref", "y"))):
            if ref in axes and _domain_ref(ref) is None:
                a = axes[ref]
                a.include(a.coords([s.get(k + "0"), s.get(k + "1")]))
    for a in axes.values():
        a.settle()

    # the page: margins for tick labels, titles, the legend, a colour bar, a right-hand axis
    title = _title(layout)
    entries = _legend_entries(data, layout)
    leg = layout.get("legend") or {}
    horizontal = leg.get("orientation") == "h"
    leg_y = leg.get("y", 1 if not horizontal else -0.1)
    colourbars = [tr for tr in data if tr.get("type") == "heatmap" and tr.get("showscale", True) is not False
                  and "_lut" in tr]
    right_axes = [a for a in axes.values() if a.name[0] == "y" and a.spec.get("side") == "right"]
    left_axes = [a for a in axes.values() if a.name[0] == "y" and a.spec.get("side") != "right"]
    ytick_w = max([_text_width(t) for a in left_axes for _, t in a.ticks(12)] + [10])
    left = 10 + ytick_w + 8 + (20 if any(_title(a.spec) for a in left_axes) else 0)
    right = 14
    for a in right_axes:
        right += 8 + max([_text_width(t) for _, t in a.ticks(12)] + [10]) + (20 if _title(a.spec) else 0)
    if colourbars:
        cb = colourbars[0].get("colorbar") or {}
        cb_text = [str(t) for t in (cb.get("ticktext") or [])] or ["0.00"]
        right += 30 + max(_text_width(t) for t in cb_text) + (10 if _title(cb) else 0)
    leg_items = [(tr, 34 + _text_width(_plain(tr.get("name")))) for tr in entries]
    if entries and not horizontal:
        right += 16 + max(w for _, w in leg_items)
    top = 10 + (28 if title else 0)
    if any(_domain_ref(a.get("yref", "")) is None and a.get("yref") == "paper" and a.get("y", 0) >= 1
           for a in layout.get("annotations", []) or []):
        top = max(top, 34)  # subplot titles above the plots
    if any(_domain_ref(a.get("yref", "")) and a.get("y", 0) >= 1 for a in layout.get("annotations", []) or []):
        top = max(top, 26)  # a note at the top of a plot (a vertical line's)
    xaxes = [a for a in axes.values() if a.name[0] == "x"]
    rotate = any(a.cats and max((_text_width(c) for c in a.cats), default=0) >
                 (width - left - right) / max(len(a.cats), 1) * 0.9 for a in xaxes)
    xtick_h = 18 if not rotate else 8 + max(_text_width(c) * 0.71 for a in xaxes if a.cats for c in a.cats)
    bottom = 8 + xtick_h + (20 if any(_title(a.spec) for a in xaxes) else 0)
    rows: list[list] = []
    if entries and horizontal:
        avail = width - left - right
        for tr, w in leg_items:
            if not rows or sum(x for _, x in rows[-1]) + w > avail:
                rows.append([])
            rows[-1].append((tr, w))
        if leg_y >= 1:
            top += 20 * len(rows) + 4
        else:
            bottom += 20 * len(rows) + 6
    pl, pr, pt, pb = left, width - right, top, height - bottom  # the plotting region
    if pr - pl < 40 or pb - pt < 40:
        pb = pt + 40
        height = int(pb + bottom)

    # each axis's pixels: its domain of the plotting region
    for a in axes.values():
        over = a.spec.get("overlaying")
        dom = (axes[over].spec if over in axes else a.spec).get("domain") or [0, 1]
        if a.name[0] == "x":
            a.p0, a.p1 = pl + dom[0] * (pr - pl), pl + dom[1] * (pr - pl)
        else:
            a.p0, a.p1 = pb - dom[0] * (pb - pt), pb - dom[1] * (pb - pt)
    _equal_scales(axes)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="genlab-chart" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" font-family="Source Sans Pro, Helvetica, Arial, sans-serif" font-size="{FONT}" '
           f'fill="{TEXT}"><rect width="{width}" height="{height}" fill="#fff"/>']
    if title:
        out.append(f'<text x="{pl:.1f}" y="24" font-size="16">{escape(title)}</text>')
    pairs = sorted({(item["x"], item["y"]) for item in drawn} |
                   {(a.spec.get("anchor") or "x", a.name) for a in axes.values()
                    if a.name[0] == "y" and not a.spec.get("overlaying")})
    clips = {}
    for n, (xr, yr) in enumerate(p for p in pairs if p[0] in axes and p[1] in axes):
        ax, ay = axes[xr], axes[yr]
        x0, x1 = sorted((ax.p0, ax.p1))
        y0, y1 = sorted((ay.p0, ay.p1))
        clips[(xr, yr)] = f"c{n}"
        out.append(f'<defs><clipPath id="c{n}"><rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" '
                   f'height="{y1 - y0:.1f}"/></clipPath></defs>')
    drawn_axes: set = set()
    for xr, yr in clips:
        _grid_and_ticks(out, axes[xr], axes[yr], drawn_axes)
    for item in drawn:
        key = (item["x"], item["y"])
        if key not in clips:
            continue
        out.append(f'<g clip-path="url(#{clips[key]})"' + (f' opacity="{item["opacity"]:.3g}"'
                                                            if item["opacity"] < 1 else "") + ">")
        item["draw"](out, axes[item["x"]], axes[item["y"]])
        out.append("</g>")
    _shapes(out, layout, axes, (pl, pr, pt, pb))
    _annotations(out, layout, axes, (pl, pr, pt, pb))
    if colourbars:
        _colourbar(out, colourbars[0], pr + 16 + (max(w for _, w in leg_items) + 16 if entries and not horizontal
                                                   else 0), pt, pb)
    if entries:
        _legend(out, rows, leg_items, horizontal, leg_y, (pl, pr, pt, pb), height, xtick_h, bool(
            any(_title(a.spec) for a in xaxes)))
    out.append("</svg>")
    return "".join(out)


def _equal_scales(axes: dict) -> None:
    """scaleanchor: widen one axis's range so a unit is as long on both (Plotly's constrain='range')."""
    for a in list(axes.values()):
        other = axes.get(a.spec.get("scaleanchor") or "")
        if other is None or a is other:
            continue
        ratio = float(a.spec.get("scaleratio") or 1.0)  # a unit on a spans `ratio` times a unit on other
        ua = abs(a.p1 - a.p0) / abs(a.hi - a.lo)  # pixels per unit
        uo = abs(other.p1 - other.p0) / abs(other.hi - other.lo)
        widen, unit = (a, ratio * uo) if ua > ratio * uo else (other, ua / ratio)
        mid, half = (widen.lo + widen.hi) / 2, abs(widen.p1 - widen.p0) / unit / 2
        sign = 1 if widen.hi > widen.lo else -1
        widen.lo, widen.hi = mid - sign * half, mid + sign * half


def _grid_and_ticks(out: list, ax: _Axis, ay: _Axis, done: set) -> None:
    x0, x1 = sorted((ax.p0, ax.p1))
    y0, y1 = sorted((ay.p0, ay.p1))
    nx = max(5, int((x1 - x0) / 50))
    ny = max(3, int((y1 - y0) / 28))
    right = ay.spec.get("side") == "right"
    for c, text in ay.ticks(ny):
        y = float(ay.px(c))
        if not right and ay.spec.get("showgrid", True) is not False:
            out.append(f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        if ay.name not in done:
            out.append(f'<text x="{x1 + 8:.1f}" y="{y + 4:.1f}">{escape(text)}</text>' if right else
                       f'<text x="{x0 - 8:.1f}" y="{y + 4:.1f}" text-anchor="end">{escape(text)}</text>')
    rotate = bool(ax.cats) and max((_text_width(c) for c in ax.cats), default=0) > (x1 - x0) / max(len(ax.cats), 1) * 0.9
    for c, text in ax.ticks(nx):
        x = float(ax.px(c))
        if not ax.cats:
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0:.1f}" y2="{y1:.1f}" stroke="{GRID}"/>')
        if ax.name in done:
            continue
        if rotate:
            out.append(f'<text transform="translate({x + 3:.1f},{y1 + 10:.1f}) rotate(-45)" text-anchor="end">'
                       f'{escape(text)}</text>')
        else:
            out.append(f'<text x="{x:.1f}" y="{y1 + 16:.1f}" text-anchor="middle">{escape(text)}</text>')
    out.append(f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{y1:.1f}" y2="{y1:.1f}" stroke="{AXIS}"/>')
    if ax.name not in done and _title(ax.spec):
        ty = y1 + 36 + (max((_text_width(c) * 0.71 for c in ax.cats or []), default=0) - 10 if rotate else 0)
        out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{ty:.1f}" text-anchor="middle" font-size="13">'
                   f'{escape(_title(ax.spec))}</text>')
    if ay.name not in done and _title(ay.spec):
        tw = max([_text_width(t) for _, t in ay.ticks(ny)] + [10])
        tx, turn = (x1 + tw + 22, -90) if right else (x0 - tw - 18, -90)
        out.append(f'<text transform="translate({tx:.1f},{(y0 + y1) / 2:.1f}) rotate({turn})" '
                   f'text-anchor="middle" font-size="13">{escape(_title(ay.spec))}</text>')
    done.update((ax.name, ay.name))


# ----------------------------------------------------------------------------- traces
def _prepare(tr: dict, axes: dict, layout: dict) -> dict:
    """A trace as the ranges it needs and a function that draws it."""
    ax, ay = axes[tr.get("xaxis", "x")], axes[tr.get("yaxis", "y")]
    kind = tr["type"]
    item = {"x": ax.name, "y": ay.name, "xs": [], "ys": [], "xpad": 0.0, "ypad": 0.0,
            "opacity": float(tr.get("opacity", 1.0) or 1.0), "kind": kind, "trace": tr}
    if tr.get("visible", True) is False or tr.get("visible") == "legendonly":
        item["draw"] = lambda out, ax, ay: None
        return item
    if kind in ("scatter", "scattergl"):
        return _scatter(item, tr, ax, ay)
    if kind == "bar":
        return _bar(item, tr, ax, ay)
    if kind == "histogram":
        x = _fast_num(tr.get("x"))
        edges = histogram_bins(x, tr.get("nbinsx"), tr.get("xbins"))
        h = histogram_heights(x, edges, tr.get("histnorm"))
        centres = (edges[:-1] + edges[1:]) / 2
        item.update(bar_x=centres, bar_y=h, bar_base=np.zeros_like(h), bar_w=np.diff(edges), hist=True)
        return _bar(item, tr, ax, ay, from_hist=True)
    if kind == "heatmap":
        return _heatmap(item, tr, ax, ay)
    item["draw"] = lambda out, ax, ay: None  # a kind genlab's figures do not use
    return item


def _scatter(item: dict, tr: dict, ax: _Axis, ay: _Axis) -> dict:
    mode = tr.get("mode") or ("lines+markers" if _len(tr.get("y")) <= 20 else "lines")
    xs = ax.coords(tr.get("x") if tr.get("x") is not None else np.arange(_len(tr.get("y"))))
    ys = ay.coords(tr.get("y"))
    n = min(len(xs), len(ys))
    xs, ys = xs[:n], ys[:n]
    err = tr.get("error_y") or {}
    lo_hi = None
    if err.get("array") is not None and err.get("visible", True):
        e = _fast_num(err["array"])[:n]
        raw = _fast_num(tr.get("y"))[:n]
        lo_hi = (ay.coords(raw - e), ay.coords(raw + e))
        item["ys"] += [lo_hi[0], lo_hi[1]]
    item["xs"].append(xs)
    item["ys"].append(ys)
    markers = "markers" in mode
    item["xpad"] = 0.04 if markers else 0.0
    item["ypad"] = 0.06 if markers else 0.04
    colour = tr["_colour"]
    line = tr.get("line") or {}
    marker = tr.get("marker") or {}

    def draw(out: list, ax: _Axis, ay: _Axis) -> None:
        px, py = ax.px(xs), ay.px(ys)
        if "lines" in mode:
            dash = DASHES.get(line.get("dash") or "", "")
            out.append(f'<path d="{_path(px, py, line.get("shape") == "hv")}" fill="none" stroke="{line.get("color") or colour}" '
                       f'stroke-width="{float(line.get("width") or 2):.3g}" stroke-linejoin="round"'
                       + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
        if lo_hi is not None:
            a, b = ay.px(lo_hi[0]), ay.px(lo_hi[1])
            segs = "".join(f"M{x:.1f} {u:.1f}V{v:.1f}M{x - 3:.1f} {u:.1f}h6M{x - 3:.1f} {v:.1f}h6"
                           for x, u, v in zip(px, a, b) if np.isfinite(x) and np.isfinite(u) and np.isfinite(v))
            out.append(f'<path d="{segs}" stroke="{colour}" stroke-width="1.5" fill="none"/>')
        if markers:
            _markers(out, px, py, marker, colour)

    item["draw"] = draw
    return item


def _path(px: np.ndarray, py: np.ndarray, step: bool = False) -> str:
    """One SVG path through the points, broken where a value is missing (NaN): each run of
    points is "M x y" then "L x y" (or "H x V y", a step) per point, formatted in one go."""
    ok = np.isfinite(px) & np.isfinite(py)
    edges = np.flatnonzero(np.diff(np.r_[0, ok.astype(np.int8), 0]))  # where each run starts and ends
    seg = "H%.1fV%.1f" if step else "L%.1f %.1f"
    fmt = "".join("M%.1f %.1f" + seg * (b - a - 1) for a, b in zip(edges[::2].tolist(), edges[1::2].tolist()))
    return fmt % tuple(np.stack([px[ok], py[ok]], 1).ravel().tolist())


MARKER_LAYERS = 4  # translucent markers that overlap build up to this many layers (0.5 opaque: 94%)


def overlap_layers(px: np.ndarray, py: np.ndarray, size: float, layers: int = MARKER_LAYERS) -> np.ndarray:
    """For each point, which of `layers` paths draws it: its rank among the earlier points in the
    same marker-sized cell, capped at layers - 1. Within one path a translucent colour is painted
    once however many of its dots overlap; k dots in one cell land on min(k, layers) paths, and so
    cover 1 - (1 - opacity)^min(k, layers) of what is under them, as Plotly's one-by-one drawing
    covers 1 - (1 - opacity)^k."""
    n = len(px)
    if n == 0:
        return np.zeros(0, dtype=int)
    cell = max(size, 1.0)
    keys = np.floor(px / cell).astype(np.int64) * 1_000_003 + np.floor(py / cell).astype(np.int64)
    order = np.argsort(keys, kind="stable")  # by cell, and within a cell in drawing order
    k = keys[order]
    start = np.r_[0, np.flatnonzero(np.diff(k)) + 1]  # first position of each cell's run
    run = np.repeat(start, np.diff(np.r_[start, n]))
    rank = np.empty(n, dtype=int)
    rank[order] = np.arange(n) - run
    return np.minimum(rank, layers - 1)


def _markers(out: list, px: np.ndarray, py: np.ndarray, marker: dict, colour: str) -> None:
    """Markers as dots: one path per colour whose zero-length strokes have round caps (compact:
    about a dozen bytes a point, so 10,000 points stay a light picture). Translucent dots are
    spread over a few paths by `overlap_layers`, so where they pile up they darken as in Plotly."""
    size = float(marker.get("size") or 6) if not isinstance(marker.get("size"), (list, tuple, np.ndarray)) else 6.0
    opacity = marker.get("opacity")
    op = f' stroke-opacity="{float(opacity):.3g}" fill-opacity="{float(opacity):.3g}"' if _is_number(opacity) else ""
    colours = marker.get("color")
    if isinstance(colours, (list, tuple, np.ndarray)) and len(colours) == len(px) and all(isinstance(c, str) for c in colours):
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(colours):
            groups.setdefault(c, []).append(i)
    else:
        groups = {colour: list(range(len(px)))}
    ok = np.isfinite(px) & np.isfinite(py)
    edge = marker.get("line") or {}
    for c, idx in groups.items():
        idx = [i for i in idx if ok[i]]
        if not idx:
            continue
        xs, ys = px[idx], py[idx]
        if float(edge.get("width") or 0) > 0:  # outlined markers (a ring): one circle each
            stroke = f' stroke="{edge.get("color") or TEXT}" stroke-width="{float(edge["width"]):.3g}"'
            out.append("".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{size / 2:.3g}" fill="{c}"{stroke}{op}/>'
                               for x, y in zip(xs.tolist(), ys.tolist())))
        elif marker.get("symbol") == "diamond":
            r = size / 2
            d = "".join(f"M{x:.1f} {y - r:.1f}l{r:.1f} {r:.1f}l{-r:.1f} {r:.1f}l{-r:.1f} {-r:.1f}z"
                        for x, y in zip(xs.tolist(), ys.tolist()))
            out.append(f'<path d="{d}" fill="{c}"{op}/>')
        else:
            translucent = _is_number(opacity) and float(opacity) < 1
            layer = overlap_layers(xs, ys, size) if translucent else np.zeros(len(xs), dtype=int)
            for k in range(int(layer.max()) + 1):
                on = layer == k
                d = ("M%.1f %.1fh0" * int(on.sum())) % tuple(np.stack([xs[on], ys[on]], 1).ravel().tolist())
                out.append(f'<path d="{d}" stroke="{c}" stroke-width="{size:.3g}" stroke-linecap="round" '
                           f'fill="none"{op}/>')


def _bar(item: dict, tr: dict, ax: _Axis, ay: _Axis, from_hist: bool = False) -> dict:
    if not from_hist:
        xs = ax.coords(tr.get("x") if tr.get("x") is not None else np.arange(_len(tr.get("y"))))
        ys = _fast_num(tr.get("y"))
        n = min(len(xs), len(ys))
        xs, ys = xs[:n], ys[:n]
        base = tr.get("base")
        base = np.full(n, float(base)) if _is_number(base) else (_fast_num(base)[:n] if base is not None else np.zeros(n))
        finite = np.sort(np.unique(xs[np.isfinite(xs)]))
        slot = float(np.min(np.diff(finite))) if len(finite) > 1 else 1.0
        item.update(bar_x=xs, bar_y=ys, bar_base=base, bar_w=np.full(n, slot), hist=False)
    item["ypad"] = 0.05
    colour = tr["_colour"]
    mc = (tr.get("marker") or {}).get("color")
    fills = list(mc) if isinstance(mc, (list, tuple, np.ndarray)) and len(mc) == len(item["bar_x"]) else None

    def draw(out: list, ax: _Axis, ay: _Axis) -> None:
        xl = item["bar_left"]
        xr = item["bar_right"]
        lo = ay.px(ay.coords(item["bar_base"]))
        hi = ay.px(ay.coords(item["bar_base"] + item["bar_y"]))
        pl, pr = ax.px(xl), ax.px(xr)
        groups: dict[str, list[str]] = {}
        for i in range(len(pl)):
            a, b, u, v = float(pl[i]), float(pr[i]), float(lo[i]), float(hi[i])
            if not all(math.isfinite(t) for t in (a, b, u, v)) or u == v:
                continue
            x0, w = min(a, b), abs(b - a)
            y0, h = min(u, v), abs(u - v)
            groups.setdefault(fills[i] if fills else colour, []).append(f"M{x0:.1f} {y0:.1f}h{w:.1f}v{h:.1f}h{-w:.1f}z")
        for c, rects in groups.items():
            out.append(f'<path d="{"".join(rects)}" fill="{c}"/>')

    item["draw"] = draw
    return item


def _place_bars(drawn: list[dict], mode: str) -> None:
    """Each bar's left and right edge: histograms bin to bin; bars in a slot of 80% of the
    category width, shared by the traces of a group (barmode 'group') or each full (overlay)."""
    bars = [it for it in drawn if "bar_x" in it]
    by_axes: dict = {}
    for it in bars:
        by_axes.setdefault((it["x"], it["y"]), []).append(it)
    for group in by_axes.values():
        plain = [it for it in group if not it["hist"]]
        k = len(plain) if mode == "group" else 1
        for j, it in enumerate(group):
            x, w = it["bar_x"], it["bar_w"]
            if it["hist"]:
                left, right = x - w / 2, x + w / 2
            else:
                slot = w * 0.8
                one = slot / k
                pos = plain.index(it) if mode == "group" else 0
                left = x - slot / 2 + pos * one
                right = left + one
            it["bar_left"], it["bar_right"] = left, right
            it["xs"].append(np.concatenate([left, right]))
            it["ys_raw"] = np.concatenate([it["bar_base"], it["bar_base"] + it["bar_y"]])


def _heatmap(item: dict, tr: dict, ax: _Axis, ay: _Axis) -> dict:
    z = np.asarray(tr.get("z") if tr.get("z") is not None else [], dtype=np.float64)
    if z.ndim == 1:
        z = z[None]
    if z.size == 0 or not np.isfinite(z).any():  # nothing to colour
        item["draw"] = lambda out, ax, ay: None
        return item
    ny, nx = z.shape

    def edges(axis: _Axis, values, n: int) -> np.ndarray:
        c = axis.coords(values) if values is not None else np.arange(n, dtype=np.float64)
        if axis.cats is not None or len(c) != n:
            c = np.arange(n, dtype=np.float64) if len(c) != n else c
        if n == 1:
            return np.array([c[0] - 0.5, c[0] + 0.5])
        mids = (c[:-1] + c[1:]) / 2
        return np.concatenate([[c[0] - (mids[0] - c[0])], mids, [c[-1] + (c[-1] - mids[-1])]])

    ex, ey = edges(ax, tr.get("x"), nx), edges(ay, tr.get("y"), ny)
    item["xs"].append(ex)
    item["ys"].append(ey)
    zmin = float(tr["zmin"]) if _is_number(tr.get("zmin")) else float(np.nanmin(z))
    zmax = float(tr["zmax"]) if _is_number(tr.get("zmax")) else float(np.nanmax(z))
    lut = colourscale_lut(tr.get("colorscale") or [[0, "#440154"], [0.5, "#21918c"], [1, "#fde725"]])
    t = np.clip((z - zmin) / (zmax - zmin if zmax > zmin else 1.0), 0, 1)
    rgb = lut[np.nan_to_num(t * 255).round().astype(int)]
    alpha = np.where(np.isfinite(z), 255, 0).astype(np.uint8)[..., None]
    rgba = np.concatenate([rgb, alpha], -1)
    opacity = float(tr.get("opacity", 1.0) or 1.0)
    item["opacity"] = 1.0
    xgap, ygap = float(tr.get("xgap") or 0), float(tr.get("ygap") or 0)

    def draw(out: list, ax: _Axis, ay: _Axis) -> None:
        px, py = ax.px(ex), ay.px(ey)
        img = rgba
        if px[-1] < px[0]:
            img = img[:, ::-1]
        if py[-1] < py[0]:  # row 0 at the bottom (the usual y axis): the picture's last row first
            img = img[::-1]
        x0, y0 = float(min(px[0], px[-1])), float(min(py[0], py[-1]))
        w, h = abs(float(px[-1] - px[0])), abs(float(py[-1] - py[0]))
        out.append(f'<image href="{_png_uri(np.ascontiguousarray(img))}" x="{x0:.1f}" y="{y0:.1f}" width="{w:.1f}" '
                   f'height="{h:.1f}" preserveAspectRatio="none" style="image-rendering:pixelated"'
                   + (f' opacity="{opacity:.3g}"' if opacity < 1 else "") + "/>")
        gaps = []
        if xgap:
            gaps += [f"M{x:.1f} {y0:.1f}v{h:.1f}" for x in px[1:-1]]
        if ygap:
            gaps += [f"M{x0:.1f} {y:.1f}h{w:.1f}" for y in py[1:-1]]
        if gaps:
            out.append(f'<path d="{"".join(gaps)}" stroke="#fff" stroke-width="{max(xgap, ygap):.3g}"/>')

    item["draw"] = draw
    item["lut"], item["zrange"] = lut, (zmin, zmax)
    tr["_lut"], tr["_zrange"] = lut, (zmin, zmax)
    return item


def _colourbar(out: list, tr: dict, x: float, pt: float, pb: float) -> None:
    cb = tr.get("colorbar") or {}
    lut, (zmin, zmax) = tr["_lut"], tr["_zrange"]
    frac = float(cb.get("len") or 1.0)
    h = (pb - pt) * frac
    y0 = pt + (pb - pt - h) / 2
    thick = float(cb.get("thickness") or 14)
    col = np.ascontiguousarray(np.repeat(lut[::-1][:, None], 2, 1))
    rgba = np.concatenate([col, np.full(col.shape[:2] + (1,), 255, np.uint8)], -1)
    if _title(cb):
        out.append(f'<text x="{x:.1f}" y="{y0 - 6:.1f}">{escape(_title(cb))}</text>')
    out.append(f'<image href="{_png_uri(rgba)}" x="{x:.1f}" y="{y0:.1f}" width="{thick:.1f}" height="{h:.1f}" '
               f'preserveAspectRatio="none"/>')
    vals = list(cb.get("tickvals") or nice_ticks(zmin, zmax, 5))
    step = float(vals[1]) - float(vals[0]) if len(vals) > 1 else None
    text = list(cb.get("ticktext") or [tick_label(v, step) for v in vals])
    for v, t in zip(vals, text):
        if zmax > zmin and zmin <= float(v) <= zmax:
            y = y0 + (1 - (float(v) - zmin) / (zmax - zmin)) * h
            out.append(f'<text x="{x + thick + 4:.1f}" y="{y + 4:.1f}">{escape(str(t))}</text>')


# ----------------------------------------------------------------------------- lines, notes, legend
def _ref_px(ref: str, v, axes: dict, box: tuple, letter: str) -> float | None:
    pl, pr, pt, pb = box
    if v is None:
        return None
    dom = _domain_ref(ref)
    if ref == "paper":
        return pl + float(v) * (pr - pl) if letter == "x" else pb - float(v) * (pb - pt)
    if dom is not None:
        a = axes.get(dom)
        if a is None:
            return None
        return a.p0 + float(v) * (a.p1 - a.p0)
    a = axes.get(ref)
    if a is None:
        return None
    c = a.coords([v])
    return float(a.px(c)[0]) if np.isfinite(c[0]) else None


def _shapes(out: list, layout: dict, axes: dict, box: tuple) -> None:
    for s in layout.get("shapes", []) or []:
        if s.get("type", "line") != "line":
            continue
        xr, yr = s.get("xref", "x"), s.get("yref", "y")
        pts = [_ref_px(xr, s.get("x0"), axes, box, "x"), _ref_px(yr, s.get("y0"), axes, box, "y"),
               _ref_px(xr, s.get("x1"), axes, box, "x"), _ref_px(yr, s.get("y1"), axes, box, "y")]
        if any(p is None for p in pts):
            continue
        line = s.get("line") or {}
        dash = DASHES.get(line.get("dash") or "", "")
        out.append(f'<line x1="{pts[0]:.1f}" y1="{pts[1]:.1f}" x2="{pts[2]:.1f}" y2="{pts[3]:.1f}" '
                   f'stroke="{line.get("color") or "#444"}" stroke-width="{float(line.get("width") or 2):.3g}"'
                   + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")


def _annotations(out: list, layout: dict, axes: dict, box: tuple) -> None:
    for a in layout.get("annotations", []) or []:
        x = _ref_px(a.get("xref", "x"), a.get("x"), axes, box, "x")
        y = _ref_px(a.get("yref", "y"), a.get("y"), axes, box, "y")
        if x is None or y is None:
            continue
        size = float((a.get("font") or {}).get("size") or FONT)
        anchor = {"left": "start", "right": "end", "center": "middle"}.get(a.get("xanchor"), "middle")
        ya = a.get("yanchor", "middle")
        dy = -4 if ya == "bottom" else (size if ya == "top" else size / 3)
        out.append(f'<text x="{x:.1f}" y="{y + dy:.1f}" text-anchor="{anchor}" font-size="{size:.3g}">'
                   f'{escape(_plain(a.get("text")))}</text>')


def _swatch(tr: dict, x: float, y: float) -> str:
    c = tr["_colour"]
    kind, mode = tr["type"], tr.get("mode") or "lines"
    if kind in ("bar", "histogram"):
        op = tr.get("opacity")
        return (f'<rect x="{x + 6:.1f}" y="{y - 10:.1f}" width="16" height="10" fill="{c}"'
                + (f' opacity="{float(op):.3g}"' if _is_number(op) else "") + "/>")
    parts = []
    if "lines" in mode:
        line = tr.get("line") or {}
        dash = DASHES.get(line.get("dash") or "", "")
        parts.append(f'<line x1="{x:.1f}" x2="{x + 28:.1f}" y1="{y - 5:.1f}" y2="{y - 5:.1f}" stroke="{line.get("color") or c}" '
                     f'stroke-width="2"' + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
    if "markers" in mode:
        marker = tr.get("marker") or {}
        mc, edge = marker.get("color"), marker.get("line") or {}
        ring = (f' stroke="{edge.get("color") or TEXT}" stroke-width="{min(float(edge["width"]), 2):.3g}"'
                if float(edge.get("width") or 0) > 0 else "")
        parts.append(f'<circle cx="{x + 14:.1f}" cy="{y - 5:.1f}" r="4" fill="{mc if isinstance(mc, str) else c}"{ring}/>')
    return "".join(parts)


def _legend(out: list, rows: list, items: list, horizontal: bool, leg_y: float, box: tuple, height: int,
            xtick_h: float, xtitle: bool) -> None:
    pl, pr, pt, pb = box
    if horizontal:
        y = (pb + xtick_h + (20 if xtitle else 0) + 20) if leg_y < 1 else (pt - 20 * len(rows) + 10)
        for row in rows:
            x = pl
            for tr, w in row:
                out.append(_swatch(tr, x, y) + f'<text x="{x + 34:.1f}" y="{y:.1f}">{escape(_plain(tr.get("name")))}</text>')
                x += w
            y += 20
    else:
        x = pr + 16
        y = pt + 12
        for tr, _ in items:
            out.append(_swatch(tr, x, y) + f'<text x="{x + 34:.1f}" y="{y:.1f}">{escape(_plain(tr.get("name")))}</text>')
            y += 19


# ----------------------------------------------------------------------------- shared pictures
_CACHE: dict[tuple[int, int], str] = {}
_CACHE_LOCK = threading.Lock()
_RENDER_LOCK = threading.Lock()


def cached_svg(fig, width: int = 700) -> str:
    """`figure_svg`, drawn once per figure object and width while the figure lives: the
    figures the views share between sessions (views/common.py `memo`) are drawn once per server.
    A figure must not change after it is first drawn (shared figures are read-only)."""
    key = (id(fig), int(width))
    with _CACHE_LOCK:
        svg = _CACHE.get(key)
    if svg is not None:
        return svg
    with _RENDER_LOCK:  # a class opening one page draws a shared figure once, not once per session
        with _CACHE_LOCK:
            svg = _CACHE.get(key)
        if svg is None:
            svg = figure_svg(fig, width)
            with _CACHE_LOCK:
                _CACHE[key] = svg
            weakref.finalize(fig, _CACHE.pop, key, None)  # the id may be reused once the figure is gone
    return svg
