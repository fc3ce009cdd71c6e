"""What a person takes away from a view: a figure's data as CSV, a picture at a size for slides,
a checkpoint as one zip. Pure functions (no Streamlit); the views offer them as downloads."""
from __future__ import annotations

import csv
import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import store


def _column(values: Any) -> list:
    """A trace's x / y / z as a plain list (plotly holds tuples or numpy arrays)."""
    if values is None:
        return []
    return np.asarray(values, dtype=object).tolist()


def figure_rows(fig) -> tuple[list[str], list[list]]:
    """Every trace of a plotly figure as long rows: (trace, x, y) for lines, bars, scatters and
    histograms; (trace, row, column, value) for heatmaps. A histogram's rows are its raw values
    (x or y), as plotly holds them; the binning is the chart's."""
    header = ["trace", "x", "y", "z"]
    rows: list[list] = []
    for i, tr in enumerate(fig.data):
        name = tr.name if getattr(tr, "name", None) else f"{tr.type} {i + 1}"
        z = getattr(tr, "z", None)
        if z is not None:  # heatmap / contour: a matrix
            zz = np.asarray(_column(z), dtype=object)
            if zz.ndim != 2:
                continue
            xs = _column(getattr(tr, "x", None)) or list(range(zz.shape[1]))
            ys = _column(getattr(tr, "y", None)) or list(range(zz.shape[0]))
            for r in range(zz.shape[0]):
                for c in range(zz.shape[1]):
                    rows.append([name, xs[c] if c < len(xs) else c, ys[r] if r < len(ys) else r, zz[r, c]])
            continue
        xs, ys = _column(getattr(tr, "x", None)), _column(getattr(tr, "y", None))
        if not xs and not ys:
            continue
        n = max(len(xs), len(ys))
        for k in range(n):
            rows.append([name, xs[k] if k < len(xs) else (k if ys else ""), ys[k] if k < len(ys) else "", ""])
    if rows and all(r[3] == "" for r in rows):
        header, rows = header[:3], [r[:3] for r in rows]
    return header, rows


def figure_csv(fig) -> str:
    """`figure_rows` as CSV text (a header line, then one line per point or cell)."""
    header, rows = figure_rows(fig)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def records_csv(records: list[dict]) -> str:
    """A list of flat dicts (a table the view shows) as CSV, columns in first-seen order."""
    cols: list[str] = []
    for r in records:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, cols, lineterminator="\n")
    w.writeheader()
    w.writerows(records)
    return buf.getvalue()


def upscaled_png(arr: np.ndarray, target: int = 1024) -> bytes:
    """A uint8 picture enlarged by whole pixels (nearest neighbour, so digits stay crisp) until
    its longer side is near `target` (never shrunk), as PNG: for slides and handouts."""
    from .viz import png_bytes
    k = max(1, target // max(arr.shape[:2]))
    if k > 1:
        arr = arr.repeat(k, axis=0).repeat(k, axis=1)
    return png_bytes(arr, compress_level=6)


def checkpoint_zip(path: str | Path) -> bytes:
    """A checkpoint's files (its card, NAME.json, and the files it names) in one zip, checked first."""
    files = store.checkpoint_files(path)
    store.read_card(files[-1])  # a broken card is refused here, not in the user's hands
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for f in files:
            z.write(f, f.name)
    return buf.getvalue()


def run_zip(name: str, save: Callable[[Path], Any]) -> bytes:
    """A checkpoint that lives only in memory (a run trained in a page) zipped without touching
    the checkpoints folder: `save(path)` writes it into a temporary folder first."""
    bad = store.check_name(name)
    if bad:
        raise ValueError(bad)
    with tempfile.TemporaryDirectory() as d:
        save(Path(d) / name)
        return checkpoint_zip(Path(d) / name)
