"""Lessons: an ordered list of views, each with its URL state and a note for the students.

A lesson is one small JSON file in `lessons/` (`GENLAB_LESSONS` names another folder):

    {
      "version": 1,
      "title": "Variational autoencoders",
      "summary": "One or two sentences for the list of lessons.",
      "steps": [
        {"view": "Latent Explorer",
         "state": {"model": "vae-mnist-z20", "seed": 0, "temp": 0.5},
         "note": "What to look at, and what to try."}
      ]
    }

- `version` is 1. `title` (at most 120 characters) and `note` (at most 1,500) are required,
  `summary` (at most 400) and `state` may be left out. No other fields.
- `view` is a page title as the sidebar shows it ("Latent Explorer", "Energy Models", ...).
- `state` holds URL keys of that view and their values, exactly what a shared link carries
  (`?model=vae-mnist-z20&seed=0&temp=0.5`): `model` (a checkpoint here) on every view, and
  the keys that view declares (views/registry.py), each a string or a number inside the range
  its widget takes. Keys a step leaves out start at the view's defaults.
- At most `MAX_STEPS` steps and `MAX_BYTES` bytes.

A file that breaks any of this is refused as a whole with a `LessonError` that names the
file and the problem; the other files still load. No streamlit here: the caller passes in
the views it knows (`views`: title -> {key: spec}) and the model names it has.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Mapping


VERSION = 1
MAX_STEPS = 30
MAX_BYTES = 64 * 1024
MAX_FILES = 100
MAX_TITLE, MAX_SUMMARY, MAX_NOTE = 120, 400, 1500
SHIPPED = ("01-vae", "02-gans", "03-flows-and-energy")  # file names (without .json) a draft may never replace
ROOT = Path(__file__).resolve().parent.parent


class LessonError(ValueError):
    """A lesson file (or a draft) is refused; the message names the file and the problem."""


def lessons_dir() -> Path:
    return Path(os.environ.get("GENLAB_LESSONS", ROOT / "lessons"))


# ----------------------------------------------------------------------------- value specs
def _number(v: Any) -> float:
    """A finite number from a JSON number or a numeric string (what a URL carries)."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ValueError(f"must be a number, not {_kind(v)}")
    try:
        x = float(v)
    except (ValueError, OverflowError):
        raise ValueError(f"{str(v)[:40]!r} is not a number" if isinstance(v, str) else "is too large") from None
    if not math.isfinite(x):
        raise ValueError(f"{v!r} is not a finite number")
    return x


def _kind(v: Any) -> str:
    return {bool: "true/false", type(None): "null", list: "a list", dict: "an object", str: "text"}.get(
        type(v), type(v).__name__)


@dataclass(frozen=True)
class Int:
    """An integer in [lo, hi] (and among `values` when given)."""
    lo: int
    hi: int
    values: tuple[int, ...] = ()

    def check(self, v: Any, models: Collection[str]) -> int:
        x = _number(v)
        if x != int(x):
            raise ValueError(f"{v!r} is not a whole number")
        x = int(x)
        if self.values and x not in self.values:
            raise ValueError(f"{x} is not one of {', '.join(map(str, self.values))}")
        if not self.lo <= x <= self.hi:
            raise ValueError(f"{x} is outside {self.lo} to {self.hi}")
        return x


@dataclass(frozen=True)
class Float:
    """A number in [lo, hi] (and among `values` when given)."""
    lo: float
    hi: float
    values: tuple[float, ...] = ()

    def check(self, v: Any, models: Collection[str]) -> float:
        x = _number(v)
        if self.values and x not in self.values:
            raise ValueError(f"{x:g} is not one of {', '.join(f'{e:g}' for e in self.values)}")
        if not self.lo <= x <= self.hi:
            raise ValueError(f"{x:g} is outside {self.lo:g} to {self.hi:g}")
        return float(x)


@dataclass(frozen=True)
class Choice:
    """One of a few strings."""
    options: tuple[str, ...]

    def check(self, v: Any, models: Collection[str]) -> str:
        if not isinstance(v, str):
            raise ValueError(f"must be text, not {_kind(v)}")
        if v not in self.options:
            raise ValueError(f"{v!r} is not one of {', '.join(repr(o) for o in self.options)}")
        return v


@dataclass(frozen=True)
class Model:
    """The name of a checkpoint that is here."""

    def check(self, v: Any, models: Collection[str]) -> str:
        if not isinstance(v, str):
            raise ValueError(f"must be a checkpoint name, not {_kind(v)}")
        if v not in models:
            raise ValueError(f"there is no model {v!r} among the checkpoints")
        return v


@dataclass(frozen=True)
class Models:
    """lo to hi checkpoint names, comma-separated (Compare's ?models=a,b)."""
    lo: int
    hi: int

    def check(self, v: Any, models: Collection[str]) -> str:
        if not isinstance(v, str):
            raise ValueError(f"must be comma-separated checkpoint names, not {_kind(v)}")
        names = [s.strip() for s in v.split(",") if s.strip()]
        missing = [n for n in names if n not in models]
        if missing:
            raise ValueError(f"there is no model {', '.join(map(repr, missing))} among the checkpoints")
        if not self.lo <= len(names) <= self.hi or len(set(names)) != len(names):
            raise ValueError(f"needs {self.lo} to {self.hi} different models, got {len(names)}")
        return ",".join(names)


# ----------------------------------------------------------------------------- lessons
@dataclass(frozen=True)
class Step:
    view: str
    note: str
    state: dict[str, Any] = field(default_factory=dict)

    def query(self) -> dict[str, str]:
        """The step's state as URL query values."""
        return {k: str(v) for k, v in self.state.items()}

    def to_dict(self) -> dict:
        return {"view": self.view, "state": dict(self.state), "note": self.note}


@dataclass(frozen=True)
class Lesson:
    id: str  # the file name without .json
    title: str
    summary: str
    steps: tuple[Step, ...]

    def to_dict(self) -> dict:
        return {"version": VERSION, "title": self.title, "summary": self.summary,
                "steps": [s.to_dict() for s in self.steps]}


def _text(d: dict, key: str, limit: int, where: str, required: bool = True) -> str:
    v = d.get(key, None if required else "")
    if v is None:
        raise LessonError(f"{where}has no {key!r}")
    if not isinstance(v, str):
        raise LessonError(f"{where}{key!r} must be text, not {_kind(v)}")
    if required and not v.strip():
        raise LessonError(f"{where}{key!r} is empty")
    if len(v) > limit:
        raise LessonError(f"{where}{key!r} is {len(v):,} characters long; at most {limit:,}")
    return v.strip()


def _unknown(d: dict, allowed: tuple[str, ...], where: str) -> None:
    extra = [k for k in d if k not in allowed]
    if extra:
        raise LessonError(f"{where}unknown field{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} "
                          f"(allowed: {', '.join(allowed)})")


def check_step(raw: Any, views: Mapping[str, Mapping[str, Any]], models: Collection[str], where: str = "") -> Step:
    """One step, validated: its view is known, every state key is one that view reads, every value fits."""
    if not isinstance(raw, dict):
        raise LessonError(f"{where}must be an object with view, state and note, not {_kind(raw)}")
    _unknown(raw, ("view", "state", "note"), where)
    view = raw.get("view")
    if not isinstance(view, str) or view not in views:
        raise LessonError(f"{where}view {view!r} is not a view here (views: {', '.join(views)})")
    where = f"{where.rstrip(': ')} ({view}): " if where else f"{view}: "
    note = _text(raw, "note", MAX_NOTE, where)
    state = raw.get("state", {})
    if not isinstance(state, dict):
        raise LessonError(f"{where}'state' must be an object of URL keys and values, not {_kind(state)}")
    specs, clean = views[view], {}
    for key, value in state.items():
        if key not in specs:
            known = ", ".join(specs) or "none"
            raise LessonError(f"{where}{view} does not read the URL key {key!r} (it reads: {known})")
        if isinstance(value, (list, dict)) or value is None:
            raise LessonError(f"{where}{key!r} must be a single value, not {_kind(value)}")
        try:
            clean[key] = specs[key].check(value, models)
        except ValueError as e:
            raise LessonError(f"{where}{key!r}: {e}") from None
    return Step(view=view, note=note, state=clean)


def check_lesson(data: Any, views: Mapping[str, Mapping[str, Any]], models: Collection[str], lesson_id: str = "draft") -> Lesson:
    """A parsed lesson (the JSON object), validated; raises LessonError without the file's name."""
    if not isinstance(data, dict):
        raise LessonError(f"the file must hold one JSON object, not {_kind(data)}")
    _unknown(data, ("version", "title", "summary", "steps"), "")
    version = data.get("version")
    if version != VERSION or isinstance(version, bool):
        raise LessonError(f"'version' must be {VERSION}, not {version!r}")
    title = _text(data, "title", MAX_TITLE, "")
    summary = _text(data, "summary", MAX_SUMMARY, "", required=False)
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise LessonError("'steps' must be a list of at least one step")
    if len(steps) > MAX_STEPS:
        raise LessonError(f"has {len(steps)} steps; a lesson may have at most {MAX_STEPS}")
    out = tuple(check_step(s, views, models, f"step {i}: ") for i, s in enumerate(steps, 1))
    return Lesson(id=lesson_id, title=title, summary=summary, steps=out)


def parse_lesson(text: str | bytes, name: str, views: Mapping[str, Mapping[str, Any]],
                 models: Collection[str]) -> Lesson:
    """A lesson from a file's text. `name` is the file name: every message starts with it."""
    lesson_id = name.removesuffix(".json")
    try:
        size = len(text.encode() if isinstance(text, str) else text)
        if size > MAX_BYTES:
            raise LessonError(f"is {size / 1024:.0f} KB; a lesson file may be at most {MAX_BYTES // 1024} KB")
        try:
            data = json.loads(text)
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, a number of too many digits
            raise LessonError(f"is not valid JSON ({str(e)[:200]})") from None
        except RecursionError:
            raise LessonError("is not valid JSON (nested too deeply)") from None
        return check_lesson(data, views, models, lesson_id)
    except LessonError as e:
        raise LessonError(f"{name}: {e}") from None


@dataclass(frozen=True)
class Refused:
    file: str
    message: str


def load_folder(folder: str | os.PathLike, views: Mapping[str, Mapping[str, Any]],
                models: Collection[str]) -> tuple[list[Lesson], list[Refused]]:
    """Every lesson file in a folder, sorted by name: the good ones, and the refused ones with why."""
    folder = Path(folder)
    if not folder.is_dir():
        return [], []
    good, bad = [], []
    files = sorted(folder.glob("*.json"), key=lambda p: (p.stem not in SHIPPED, p.name))  # shipped ones first
    for path in files[MAX_FILES:]:
        bad.append(Refused(path.name, f"{path.name}: not read; a lessons folder may hold at most {MAX_FILES} lessons"))
    for path in files[:MAX_FILES]:
        try:
            if not path.is_file():
                raise LessonError(f"{path.name}: is not a file")
            size = path.stat().st_size
            if size > MAX_BYTES:  # not read at all
                raise LessonError(f"{path.name}: is {size / 1024:.0f} KB; a lesson file may be at most "
                                  f"{MAX_BYTES // 1024} KB")
            good.append(parse_lesson(path.read_bytes(), path.name, views, models))
        except LessonError as e:
            bad.append(Refused(path.name, str(e)))
        except OSError as e:
            bad.append(Refused(path.name, f"{path.name}: cannot be read ({e.strerror or e})"))
        except Exception as e:  # a case the checks above missed: refuse the file, keep the others
            bad.append(Refused(path.name, f"{path.name}: cannot be read ({type(e).__name__}: {e})"))
    return good, bad


# ----------------------------------------------------------------------------- drafts
def step_from_url(view: str, params: Mapping[str, str], note: str, views: Mapping[str, Mapping[str, Any]],
                  models: Collection[str]) -> Step:
    """A step for `view` from the URL it shows now: the keys that view reads, with typed values
    (a value the view would not take is left out, so the view's default stands)."""
    specs, state = views.get(view, {}), {}
    for key, spec in specs.items():
        if key in params:
            try:
                state[key] = spec.check(params[key], models)
            except ValueError:
                pass
    return check_step({"view": view, "state": state, "note": note}, views, models)


def dumps(data: dict) -> str:
    """A lesson as the text of its file: indented, each step's state on one line."""
    head = {k: v for k, v in data.items() if k != "steps"}
    text = json.dumps(head, indent=2, ensure_ascii=False)[:-2]
    steps = ",\n".join("    {\n" + ",\n".join(f"      {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in s.items())
                       + "\n    }" for s in data.get("steps", []))
    return f"{text},\n  \"steps\": [\n{steps}\n  ]\n}}\n"


def draft_json(title: str, summary: str, steps: list[Step]) -> str:
    """The draft as a lesson file's text."""
    return dumps({"version": VERSION, "title": title.strip(), "summary": summary.strip(),
                  "steps": [s.to_dict() for s in steps]})


def safe_file_name(text: str) -> str:
    """'My VAE lesson!' -> 'my-vae-lesson': lower-case letters, digits and single dashes."""
    stem = re.sub(r"[^a-z0-9]+", "-", text.strip().lower().removesuffix(".json")).strip("-")[:60].strip("-")
    if not stem:
        raise LessonError("choose a file name with letters or digits")
    return stem


def save_lesson(folder: str | os.PathLike, name: str, text: str, views: Mapping[str, Mapping[str, Any]],
                models: Collection[str], replace: bool = False) -> Path:
    """Write a lesson's text to folder/NAME.json after validating it. A shipped lesson is never
    replaced; another existing file only with `replace`. Written to a temporary file, then renamed."""
    stem = safe_file_name(name)
    path = Path(folder) / f"{stem}.json"
    if stem in SHIPPED:
        raise LessonError(f"{path.name} is a lesson shipped with genlab and is never replaced; choose another name")
    parse_lesson(text, path.name, views, models)
    if path.exists() and not replace:
        raise LessonError(f"{path.name} exists already; tick “replace” to overwrite it, or choose another name")
    if not path.exists() and len(list(Path(folder).glob("*.json"))) >= MAX_FILES:
        raise LessonError(f"the lessons folder holds {MAX_FILES} lessons already; remove one before saving another")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
