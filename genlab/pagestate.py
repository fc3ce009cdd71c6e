"""Pure helpers behind the pages: reading URL query values safely, and mapping chart
selections to data rows. No streamlit here, so all of it is unit-tested directly."""
from __future__ import annotations

import math
from typing import Any, Sequence


def _finite(raw: Any) -> float | None:
    try:
        v = float(raw)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def parse_int(raw: Any, lo: int, hi: int, default: int) -> int:
    """An int from a URL value, clamped to [lo, hi]; the default when unreadable."""
    v = _finite(raw)
    return default if v is None else int(min(hi, max(lo, round(v))))


def parse_float(raw: Any, lo: float, hi: float, default: float, step: float | None = None) -> float:
    """A float from a URL value, clamped to [lo, hi] and snapped to `step` from lo."""
    v = _finite(raw)
    if v is None:
        return default
    v = min(hi, max(lo, v))
    if step:
        v = lo + round((v - lo) / step) * step
        v = round(min(hi, max(lo, v)), 10)
    return v


def parse_choice(raw: Any, choices: Sequence[str], default: str) -> str:
    """One of `choices`, or the default."""
    return raw if isinstance(raw, str) and raw in choices else default


def selected_rows(selection: Any) -> list[int]:
    """Row ids carried in `customdata` by the points of a plotly selection event.

    Accepts the dict streamlit returns ({"points": [{"customdata": 17 or [17], ...}]}).
    Points without an integer id are ignored.
    """
    if not selection:
        return []
    points = selection.get("points", []) if hasattr(selection, "get") else []
    rows = []
    for p in points:
        cd = p.get("customdata") if hasattr(p, "get") else None
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if isinstance(cd, (int, float)) and not isinstance(cd, bool) and math.isfinite(cd):
            rows.append(int(cd))
    return rows
