"""Streamlit glue shared by the pages: cached models and data, the model picker, URL state,
and showing image grids. Pages stay thin: widgets, calls into genlab, rendering."""
from __future__ import annotations

import json
import os
import re
import sys
import zlib
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Hashable

import numpy as np

import streamlit as st
import torch
from streamlit.errors import StreamlitDuplicateElementKey

import genlab
from genlab import data as gdata
from genlab import directions, evaluation, export, figsvg, latent, serving, viz
from genlab.jobs import JobManager
from genlab.memo import SharedMemo
from genlab.models import best_likelihood, card_likelihoods, config_from_dict, describe_card, family, missing, sample
from genlab.models.base import expected_capabilities
from views import registry

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "vae-mnist-z20"


def checkpoint_dir() -> Path:
    return Path(os.environ.get("GENLAB_CHECKPOINTS", ROOT / "checkpoints"))


def user_model_dir() -> Path:
    """Where models brought through the page are kept (GENLAB_USER_MODELS; default: user-models/
    beside the checkpoints folder)."""
    return Path(os.environ.get("GENLAB_USER_MODELS", checkpoint_dir().parent / "user-models"))


def model_path(name: str) -> Path:
    """A model's base path: in the checkpoints folder, or else among the users' models."""
    path = checkpoint_dir() / name
    return path if (path.parent / f"{name}.json").exists() else user_model_dir() / name


def name_taken(name: str) -> bool:
    """Whether a checkpoint or a user's model has this name already."""
    return any((folder / f"{name}.json").exists() for folder in (checkpoint_dir(), user_model_dir()))


# Renders shared by every session of this server (one process): PNG grids, figures and the
# small results beside them, keyed by the model's files and the state that drew them.
MEMO = SharedMemo(max_bytes=int(os.environ.get("GENLAB_MEMO_MB", "192")) << 20)


def stamp(name: str) -> tuple[int, ...]:
    """When a checkpoint's files last changed: part of every key that depends on its weights."""
    return tuple(_mtime(p) for p in genlab.checkpoint_files(model_path(name)))


def _mtime(p: Path) -> int:
    try:
        return p.stat().st_mtime_ns
    except OSError:  # not there (yet)
        return 0


def memo(key: tuple, compute: Callable[[], object], model: str | None = None):
    """`compute()` once per server for this key (and the model's files, when `model` names one,
    and the sampler steps this session gives it, for a denoising model); every session that asks
    for the same key gets the same read-only value."""
    steps = st.session_state.get(STEPS_FOR)
    full: Hashable = ((key, model, stamp(model)) + ((steps[1],) if steps and steps[0] == model else ())
                      if model else key)
    return MEMO.get(full, compute)


# ----------------------------------------------------------------------------- a denoiser's sampler steps
STEPS = "dsteps"  # session key (and URL parameter) of the sidebar's sampler steps
STEPS_FOR = "_steps_for"  # (model name, steps) the views' pictures of that model are drawn with
STEP_CHOICES = (5, 10, 20, 50)


class Stepped:
    """A denoising model seen with another number of sampler steps: `decode`, `encode` and
    `sample` take these steps unless told; everything else is the shared model's own, untouched."""

    def __init__(self, model, steps: int):
        self._model, self._steps = model, steps

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def decode(self, z, labels=None, steps=None, guidance=None):
        return self._model.decode(z, labels, steps or self._steps, guidance)

    def encode(self, x, labels=None, steps=None, guidance=None):
        return self._model.encode(x, labels, steps or self._steps, guidance)

    def sample(self, n, generator=None, labels=None, steps=None):
        return self._model.sample(n, generator, labels, steps or self._steps)


def sampler_steps_control() -> None:
    """The sidebar's "Sampler steps" (kept in the URL) when the picked model denoises; drawn by
    app.py beside the model picker, so its value survives page switches."""
    name = st.session_state.get("model")
    try:
        model = load_model(name)[0] if name else None
    except genlab.CheckpointError:  # the view says so
        model = None
    if model is None or not model.capabilities.denoises:
        st.session_state.pop(STEPS_FOR, None)
        return
    own = int(model.config.sample_steps)
    url_default(STEPS, lambda v: int(v) if str(v).isdigit() and int(v) in STEP_CHOICES else
                (own if own in STEP_CHOICES else 20))
    st.select_slider("Sampler steps", STEP_CHOICES, key=STEPS,
                     help="How many DDIM steps every picture of this model costs on every view: fewer are faster "
                          f"and rougher. The model samples with {own} by default.")
    url_write(STEPS)
    st.session_state[STEPS_FOR] = (name, int(st.session_state[STEPS]))


def sampler_steps(name: str, model):
    """The model as the views should use it: a denoising model with the sidebar's sampler steps
    (`Stepped` when they differ from its own); any other model unchanged."""
    got = st.session_state.get(STEPS_FOR)
    if not model.capabilities.denoises or not got or got[0] != name or got[1] == int(model.config.sample_steps):
        return model
    return Stepped(model, got[1])


@st.cache_resource(show_spinner=False)
def device() -> torch.device:
    """The server's device, configured for a class (`genlab.serving.configure`: on the CPU,
    torch's threads per computation and helper threads for idle cores)."""
    dev = genlab.pick_device()
    serving.configure(dev)
    return dev


@st.cache_resource(show_spinner=False)
def job_manager() -> JobManager:
    """One per server process: bounds the training jobs all sessions can run at once."""
    return JobManager()


@st.cache_data(show_spinner=False, max_entries=8)
def _list_models(folder: str, stamp: int, brought: bool = False) -> list[dict]:
    out = []
    for p in genlab.list_checkpoints(folder):
        try:
            card = genlab.read_card(p)
        except genlab.CheckpointError as e:
            out.append({"name": p.name, "error": str(e)})
            continue
        try:
            info = describe_card(card)
        except (KeyError, TypeError, ValueError) as e:
            out.append({"name": p.name, "error": f"config does not build: {e}"})
            continue
        if not info["generative"]:
            continue  # the measuring stick, not a generative model
        caps = expected_capabilities(card["family"], config_from_dict(card["family"], card["config"]))
        zdim = f", z={info['latent_dim']}" if info["latent"] != "none" else ""
        mark = ", brought" if brought else ""
        out.append({"name": p.name, **info, "caps": caps, "brought": brought,
                    "label": f"{p.name}  ({info['kind']}{zdim}{mark})"})
    return out


def list_models() -> list[dict]:
    """Every loadable checkpoint in the checkpoints folder, then every model users brought
    (refreshed when a folder changes), with what pickers show of it and its capabilities ("caps")."""
    out, seen = [], set()
    for folder, brought in ((checkpoint_dir(), False), (user_model_dir(), True)):
        changed = folder.stat().st_mtime_ns if folder.exists() else 0
        for m in _list_models(str(folder), changed, brought):
            if "error" not in m and m["name"] not in seen:
                seen.add(m["name"])
                out.append(m)
    return out


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def _load(path: str, stamp: tuple[int, int]):
    model, card = genlab.load(path, device())
    serving.serve(model)  # shared across sessions: read-only, with the server's speed-ups (same numbers)
    return model, card


def load_model(name: str):
    """(model, card) for a checkpoint name, shared across sessions, reloaded when its files change."""
    return _load(str(model_path(name)), stamp(name))


@st.cache_resource(show_spinner="Loading the MNIST test set…")
def test_set(name: str = "mnist") -> gdata.ImageSet:
    return gdata.load_images(name, "test", device())


@st.cache_resource(show_spinner="Encoding the test set…", max_entries=8)
def _test_codes(name: str, stamp: tuple[int, int]):
    model, card = load_model(name)
    ds = test_set(card.get("dataset", {}).get("name", "mnist"))
    with torch.inference_mode():
        # small chunks: a convolutional flow's activations for 2,000 images take over 0.5 GB, and the
        # process keeps its high-water mark, so every session pays for the largest batch ever run
        codes = latent.encode_all(model, ds.x, ds.y, batch_size=250)
    return codes.cpu(), ds.y.cpu()


def test_codes(name: str):
    """Posterior means (N, Z) of the model's test set, and the labels (N,); computed once per model."""
    return _test_codes(name, stamp(name))


@st.cache_resource(show_spinner="Finding the model's directions (once per model and seed)…", max_entries=8)
def _directions(name: str, stamp: tuple, seed: int) -> dict:
    model, card = load_model(name)
    caps = model.capabilities
    codes = labels = None
    if caps.encode and caps.images:  # the codes of the test set, with their true labels
        codes, labels = test_codes(name)
    found, codes = directions.for_model(model, codes, n=2000, seed=seed)
    how = "the codes of the test set, labelled by the data set"
    if labels is None and caps.mnist_images and reference() is not None:  # the samples, labelled by the classifier
        with torch.inference_mode():
            images = torch.cat([model.decode(codes[i:i + 500].to(device())) for i in range(0, len(codes), 500)])
        labels = reference().embed(images)[1].argmax(1).cpu()
        how = "2,000 samples, labelled by the MNIST classifier"
    return {"pcs": found, "codes": codes, "labels": labels, "labels_from": how}


def latent_directions(name: str, seed: int = 0) -> dict:
    """A model's principal directions (genlab.directions), the codes they came from and their
    labels where there are any (for attribute vectors); once per model and seed, shared."""
    return _directions(name, stamp(name), seed)


@st.cache_resource(show_spinner=False, max_entries=16)
def _film(name: str, stamp: tuple[int, int]) -> dict | None:
    _, card = load_model(name)
    info = card.get("film")
    names = [n for n in ("film", "film_fresh") if n in card.get("extra_tensors", {})]
    if not info or "film" not in names:
        return None
    tensors = genlab.store.load_extras(model_path(name), *names)
    frames = tensors["film"]
    steps = list(info.get("steps", []))
    if frames.dim() not in (3, 5) or not len(frames) or not steps:  # no frames, or a shape no film has
        return None
    n = min(len(frames), len(steps))  # a card that lists fewer steps than frames (or more) shows the pairs it has
    frames, steps = frames[:n], steps[:n]
    fresh = tensors.get("film_fresh")
    return {"frames": frames, "fresh": fresh[:n] if fresh is not None and len(fresh) >= n and
            fresh.shape[1:] == frames.shape[1:] else None,
            "steps": steps, "kind": info.get("kind", "fixed noise"), "seed": info.get("seed", 0)}


def film(name: str) -> dict | None:
    """A checkpoint's film (fixed frames, fresh frames or None, their steps, its kind), read once
    per server; None when the checkpoint has none."""
    return _film(name, stamp(name))


def unusual_sets(n: int = 500, dataset: str = "mnist") -> dict[str, torch.Tensor]:
    """The first n test digits of a data set and four kinds of things that are not digits, on the device."""
    x = test_set(dataset).x[:n]
    g = torch.Generator().manual_seed(0)
    return {"test digits": x, "flipped left-right": x.flip(-1), "inverted (1 − x)": 1 - x,
            "shifted 4 px": torch.roll(x, shifts=4, dims=-1),
            "uniform noise": torch.rand(x.shape, generator=g).to(x.device)}


@st.cache_data(show_spinner="Scoring 2,500 images with the flow (once per server)…", max_entries=4)
def flow_surprise(name: str, stamp: str, n: int = 500) -> dict[str, list[float]]:
    """A flow's bits/dim of each of `unusual_sets` (one dequantisation draw, seed 1)."""
    mdl, _ = load_model(name)
    out = {}
    with torch.inference_mode():
        for label, xs in unusual_sets(n).items():
            g = torch.Generator(device=xs.device).manual_seed(1)
            nll = torch.cat([-mdl.log_prob(xs[i:i + 100], g) for i in range(0, len(xs), 100)])  # bounded memory
            out[label] = mdl.bits_per_dim(nll).cpu().tolist()
    return out


# ----------------------------------------------------------------------------- sidebar / model
def model_picker() -> str | None:
    """The sidebar's model selectbox; its value lives in session state and the URL (?model=)."""
    models = list_models()
    names = [m["name"] for m in models]
    if not names:
        st.sidebar.error(f"No checkpoints in {checkpoint_dir()}. Train one on the Training page "
                         "or with `python -m genlab train vae --out checkpoints/NAME`.")
        return None
    if "_select_model" in st.session_state:  # set by a page (e.g. after saving a checkpoint)
        st.session_state["model"] = st.session_state.pop("_select_model")
    if "model" not in st.session_state:
        wanted = st.query_params.get("model")
        fallback = DEFAULT_MODEL if DEFAULT_MODEL in names else names[0]
        if wanted and wanted not in names:
            st.session_state["_notice"] = f"The link asked for model “{wanted}”, which is not here; showing {fallback}."
        st.session_state["model"] = wanted if wanted in names else fallback
    elif st.session_state["model"] not in names:
        st.session_state["model"] = names[0]
    labels = {m["name"]: m["label"] for m in models}
    st.sidebar.selectbox("Model", names, key="model", format_func=lambda n: labels.get(n, n),
                         help="Checkpoints found in the checkpoints/ folder, then the models brought on Home. "
                              "Every page uses this model.")
    st.query_params["model"] = st.session_state["model"]
    return st.session_state["model"]


# ----------------------------------------------------------------------------- the view's model
VIEW = "_view"  # session keys: the title of the view this run shows, and of the one shown before it
CAME_FROM = "_came_from"
SWITCHED = "_switched"  # {"view", "from", "to", "why", "back"} after a view switched to a model that fits it


def enter_view(title: str) -> None:
    """Note the view this run shows (app.py calls it before the sidebar and the view run): its
    registry entry says which models fit it, and the view before it is where a switch's way back
    leads. Opened by a link that names a model, the view shows that model. A model the view cannot
    show is swapped here for the first that fits, before the sidebar's picker is drawn, so the
    view runs once with it (no second run)."""
    models = {m["name"]: m for m in list_models()}
    if st.session_state.get(VIEW) != title:
        st.session_state[CAME_FROM] = st.session_state.get(VIEW)
        st.session_state[VIEW] = title
        linked = st.query_params.get("model")  # a link into this view names its model: it wins
        if "model" in st.session_state and linked in models and linked != st.session_state["model"]:
            st.session_state.setdefault("_select_model", linked)
    entry = registry.find(title)
    name = st.session_state.get("_select_model") or st.session_state.get("model") or st.query_params.get("model")
    if entry is None or not entry.needs or name not in models:
        return
    why = missing(models[name]["caps"], entry.needs)
    if why and (st.session_state.get(SWITCHED) or {}).get("to") != name:  # never twice in a row
        to = fitting_model(entry.needs, but=name)
        if to:
            _record_switch(title, name, models[name]["caps"], why, to)


def fitting_model(needs: tuple[str, ...], but: str) -> str | None:
    """The first model here (the default one first) that has every capability in `needs`."""
    models = sorted(list_models(), key=lambda m: m["name"] != DEFAULT_MODEL)
    return next((m["name"] for m in models if m["name"] != but and missing(m["caps"], needs) is None), None)


def _way_back(name: str, caps, title: str) -> str:
    """Where the way back leads with the model a view switched from: the view before, when it fits
    that model, else the view where that model is explored best."""
    before = registry.find(st.session_state.get(CAME_FROM))
    if before is not None and before.title != title and registry.fits(before, caps):
        return before.title
    return registry.home_of(caps)


def _record_switch(title: str, name: str, caps, why: str, to: str) -> None:
    """Pick `to` in the sidebar (and so in the URL) at its next drawing, noting the way back."""
    st.session_state[SWITCHED] = {"view": title, "from": name, "to": to, "why": why,
                                  "back": _way_back(name, caps, title)}
    st.session_state["_select_model"] = to


def _switch(title: str, name: str, caps, why: str, to: str) -> None:
    """Switch to `to` once the picker is drawn already: note it and run the view again."""
    _record_switch(title, name, caps, why, to)
    st.rerun()


def _switch_note(title: str, name: str) -> None:
    """The one line that says this view switched models, with the way back, while it shows that model."""
    s = st.session_state.get(SWITCHED)
    if not s or s["view"] != title or s["to"] != name:
        st.session_state.pop(SWITCHED, None)
        return
    text, back = st.columns([5, 1], vertical_alignment="center")
    text.info(f"{s['from']} {s['why']}, so {title} shows {name}, the first model here it applies to.",
              icon=":material/swap_horiz:")
    if back.button(f"Back to {s['from']}", key="_switch_back", icon=":material/undo:", width="stretch",
                   help=f"Opens {s['back']} with {s['from']}."):
        st.session_state.pop(SWITCHED, None)
        st.session_state["_select_model"] = s["from"]
        st.switch_page(registry.file(s["back"]), query_params={"model": s["from"]})


def current_model(needs: tuple[str, ...] | None = None, view: str | None = None):
    """(name, model, card) of the picked model, for the view this run shows.

    `needs` names capabilities (genlab.models.base.NEEDS) the view reads; by default those of its
    registry entry. A model that lacks one is replaced by the first model that has them all (the
    sidebar and the URL follow, and one line says so, with the way back); only when no model here
    fits does the view say it does not apply, pointing to where the model is explored, and stop.
    """
    entry = registry.find(st.session_state.get(VIEW))
    title = entry.title if entry else (view or "this view")
    needs = (entry.needs if entry else ()) if needs is None else needs
    name = st.session_state.get("model")
    if not name:
        st.info("No model is loaded. Pick one in the sidebar, or train one on the Training page.")
        st.stop()
    try:
        model, card = load_model(name)
    except genlab.CheckpointError as e:
        st.error(f"This checkpoint cannot be loaded: {e}")
        st.stop()
    caps = model.capabilities
    why = missing(caps, needs)
    if why:
        just_switched = (st.session_state.get(SWITCHED) or {}).get("to") == name  # never twice in a row
        to = None if just_switched else fitting_model(needs, but=name)
        if to:
            _switch(title, name, caps, why, to)
        where = registry.home_of(caps)
        st.info(f"{name} {why}, so {title} does not apply to it, nor to any other model here: explore it on the "
                f"{where} page, or train a model that fits.")
        if where != title:
            st.page_link(registry.file(where), label=f"Go to {where}")
        st.stop()
    _switch_note(title, name)
    return name, sampler_steps(name, model), card


def samples(model, n: int, seed: int, label: str | int | None = None) -> torch.Tensor:
    """n samples of any family from a seed (chains run inside for samplers); a conditional model
    given one label for all (`label` a digit) or drawn per sample (None or "any")."""
    return sample(model, n, generator(seed), **given_labels(model, label, n))


def given_labels(model, label: str | int | None, n: int) -> dict:
    """decode / encode / sample's `labels=` for n items of one label: {"labels": (n,)} for a
    conditional model given a label, {} otherwise (an unconditional model, or "any")."""
    if not model.capabilities.num_classes or label is None or label == "any":
        return {}
    return {"labels": torch.full((n,), int(label), dtype=torch.long, device=device())}


def label_picker(model, key: str, options: list[str], default: str, help: str, where=st) -> str | None:
    """A conditional model's label picker (kept in the URL under `key`), or None for a model that
    takes no label."""
    if not model.capabilities.num_classes:
        return None
    url_default(key, lambda v: v if v in options else default)
    if st.session_state[key] not in options:
        st.session_state[key] = default
    where.selectbox("Label", options, key=key, help=help)
    url_write(key)
    return st.session_state[key]


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_samples(name: str, stamp: tuple[int, int], n: int, seed: int) -> torch.Tensor:
    model, _ = load_model(name)
    return samples(model, n, seed).cpu()


def cached_samples(name: str, n: int, seed: int) -> torch.Tensor:
    """`samples` of a checkpoint, computed once per server for every session that asks (a chain
    sampler such as the EBM's runs hundreds of steps for them)."""
    return _cached_samples(name, stamp(name), n, seed)


def show_notice() -> None:
    msg = st.session_state.pop("_notice", None)
    if msg:
        st.warning(msg)


# ----------------------------------------------------------------------------- URL state
def url_default(key: str, parse: Callable[[object], object]) -> None:
    """Seed widget `key` from the URL the first time this page shows it (values are clamped)."""
    if key not in st.session_state:
        st.session_state[key] = parse(st.query_params.get(key))


def url_write(*keys: str) -> None:
    """Reflect these widgets' values in the URL so a link reproduces the view."""
    for k in keys:
        v = st.session_state.get(k)
        if v is not None:
            st.query_params[k] = str(v)


# ----------------------------------------------------------------------------- images
def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "genlab"


def download(label: str, data: bytes | str | Callable[[], bytes | str], file_name: str, mime: str,
             help: str | None = None, where=st) -> None:
    """A compact download button that does not rerun the page. `data` may be a callable: it is
    then computed only when the button is clicked (Streamlit's deferred downloads), so a page
    with many buttons sends and keeps nothing extra."""
    base = f"dl-{_slug(file_name)}-{zlib.crc32(label.encode())}"
    for i in range(50):  # the same file twice on one page gets a second key
        try:
            where.download_button(label, data, file_name=file_name, mime=mime, key=base if i == 0 else f"{base}-{i}",
                                  on_click="ignore", type="tertiary", icon=":material/download:", help=help)
            return
        except StreamlitDuplicateElementKey:
            continue


@dataclass(frozen=True)
class Grid:
    """An image grid drawn once: its PNG (what the page sends) and its pixels (for the enlarged download)."""
    png: bytes
    arr: np.ndarray


def grid(images: torch.Tensor, nrow: int, padding: int = 1) -> Grid:
    """Images (N, C, H, W) in [0, 1] as one grid picture at native resolution."""
    arr = viz.grid_array(images, nrow=nrow, padding=padding)
    arr.setflags(write=False)  # shared between sessions through `memo`
    return Grid(viz.png_bytes(arr), arr)


def show_png(g: Grid, caption: str | None = None, width: int | str = "stretch", name: str | None = None,
             where=st) -> None:
    """A drawn grid, scaled by the browser without smoothing (app.py sets image-rendering:
    pixelated) so digits stay crisp. Under it, a PNG download enlarged by whole pixels for
    slides (`name` is its file name; by default the caption's words)."""
    where.image(g.png, caption=caption, width=width, output_format="PNG")
    file_name = _slug(name or caption or "grid") + ".png"
    download("PNG", lambda: export.upscaled_png(g.arr), file_name, "image/png",
             help="This picture, enlarged by whole pixels (crisp on a projector)", where=where)


def show_grid(images: torch.Tensor, nrow: int, caption: str | None = None, width: int | str = "stretch",
              padding: int = 1, name: str | None = None, where=st) -> None:
    """One PNG for the whole grid (one small request), with its download: `grid` then `show_png`."""
    show_png(grid(images, nrow, padding), caption=caption, width=width, name=name, where=where)


INTERACTIVE = "plotly"  # session key (and URL parameter) of the sidebar's "Interactive charts" toggle


def interactive_charts() -> bool:
    """Whether charts are drawn by Plotly (hover, zoom, click) rather than as pictures."""
    return bool(st.session_state.get(INTERACTIVE))


def chart_style_toggle() -> None:
    """The sidebar's switch between chart pictures (the default: light for the browser) and
    interactive Plotly charts; kept in the URL, so a link gives the same charts."""
    url_default(INTERACTIVE, lambda x: str(x).lower() in ("1", "true", "on", "yes"))
    st.toggle("Interactive charts", key=INTERACTIVE,
              help="Off: every chart is a picture, drawn at once. On: Plotly charts with hover values, zoom, pan "
                   "and clickable points; the browser then spends about a second more on each page it opens.")
    if st.session_state[INTERACTIVE]:
        st.query_params[INTERACTIVE] = "1"
    elif INTERACTIVE in st.query_params:
        del st.query_params[INTERACTIVE]


def chart(fig, key: str | None = None, name: str | None = None, where=st, px: int = 900, **kwargs):
    """A chart with its data as a CSV download under it (every trace's points, or a heatmap's
    cells). By default the figure is drawn as an SVG picture (genlab/figsvg.py) designed `px`
    pixels wide (about the width it gets on a laptop: 900 for the page's width, 450 for half of
    it), so its text keeps about its size; with interactive charts on, it is st.plotly_chart, and
    this returns what that returns (a selection event when asked). Pictures return None."""
    picture = None
    if not interactive_charts():
        try:
            picture = figsvg.cached_svg(fig, px)
        except Exception as e:  # noqa: BLE001 - a figure the picture cannot draw: Plotly draws it
            print(f"genlab: chart {key or name!r} drawn by Plotly, its picture failed: {e!r}", file=sys.stderr, flush=True)
    if picture is None:
        kwargs.setdefault("width", "stretch")
        out = where.plotly_chart(fig, key=key, **kwargs)
    else:
        where.image(picture, width="stretch")
        out = None
    title = name or key or (fig.layout.title.text if fig.layout.title and fig.layout.title.text else "chart")
    download("CSV", lambda: export.figure_csv(fig), _slug(title) + ".csv", "text/csv",
             help="The data of this chart, one row per point", where=where)
    return out


def table_download(rows: list[dict], name: str, where=st) -> None:
    """A CSV download of a table the page shows."""
    download("CSV", lambda: export.records_csv(rows), _slug(name) + ".csv", "text/csv",
             help="This table as CSV", where=where)


def checkpoint_download(name: str, where=st) -> None:
    """The checkpoint's two files zipped, built when clicked."""
    path = model_path(name)
    download(f"{name}.zip", lambda: export.checkpoint_zip(path), f"{name}.zip", "application/zip",
             help="NAME.json and the weights it names: drop the zip on Home (Bring your own model), unzip it "
                  "into checkpoints/, or `python -m genlab sample` it", where=where)


def metric_rows(card: dict) -> list[dict]:
    """A card's likelihood records (with their terms) or, without records, its test metrics,
    as table rows with readable names from the family's descriptor."""
    fam = family(card["family"])
    rows = []
    for r in card_likelihoods(card):
        err = f" ± {r.stderr:.2f}" if r.stderr is not None else ""
        bpd = f" ({r.bpd:.3f} bits/dim)" if r.bpd is not None else ""
        rows.append({"metric": r.label, "value": f"{r.value:.2f}{err}{bpd}"})
        rows += [{"metric": f"  {fam.names.get(k, k)}", "value": f"{v:.2f}"} for k, v in r.terms.items() if v is not None]
    if not rows:
        m = card.get("metrics", {})
        rows = [{"metric": label, "value": f"{m[k]:.2f}"} for k, label in fam.metrics.items()
                if isinstance(m.get(k), (int, float))]
    return rows


def generator(seed: int) -> torch.Generator:
    return torch.Generator(device=device()).manual_seed(int(seed))


PIXELATED_CSS = "<style>[data-testid='stImage'] img, [data-testid='stImageContainer'] img {image-rendering: pixelated;}</style>"


JOB_KEYS = registry.job_views()  # session keys of this session's jobs -> the view that owns each


def _job_badge() -> None:
    for key, page in JOB_KEYS.items():
        job = st.session_state.get(key)
        if job is None:
            continue
        s = job.snapshot()  # polling keeps the job alive while this tab is open, on any view
        if s.active and s.epochs:
            st.progress(s.fraction, text=f"{job.label}: {s.state}, epoch {s.epoch}/{s.epochs}")
        elif s.active:
            st.caption(f"{job.label}: {s.state}, step {s.step}")
        elif s.state in ("done", "stopped"):
            st.caption(f"{job.label} {s.state}. Save it on the {page} page.")


def job_badge() -> None:
    """Sidebar progress of this session's training jobs, refreshed every 2 s while one runs."""
    active = any(st.session_state.get(k) is not None and st.session_state[k].active for k in JOB_KEYS)
    st.fragment(run_every=2.0 if active else None)(_job_badge)()


# ----------------------------------------------------------------------------- measuring stick
REPORT = ROOT / "docs" / "eval.json"


def reference_available() -> bool:
    folder = checkpoint_dir()
    return (folder / f"{evaluation.CLASSIFIER}.json").exists()


@st.cache_resource(show_spinner="Embedding MNIST with the classifier (once per server)…")
def _reference(folder: str):
    return evaluation.load_reference(folder, device())


def reference():
    """The classifier with MNIST's features and the nearest-neighbour index, or None without the classifier."""
    if not reference_available():
        return None
    try:
        return _reference(str(checkpoint_dir()))
    except genlab.CheckpointError as e:
        st.warning(f"The MNIST classifier cannot be loaded: {e}")
        return None


def nearest(ref, images: torch.Tensor, space: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices into the training set and distances of each image's nearest training image."""
    if space == "pixel":
        return ref.nn.pixel(images)
    feats, _ = ref.embed(images)
    return ref.nn.feature(feats)


@st.cache_resource
def _measured() -> dict:
    """Measurements made in this server process, by (name, weights hash)."""
    return {}


def _report() -> dict:
    try:
        return json.loads(REPORT.read_text())
    except (OSError, ValueError):
        return {}


def measure(name: str) -> dict:
    model, card = load_model(name)
    ref = reference()
    r = evaluation.evaluate_model(ref, model, card)
    _measured()[(name, card.get("weights_sha256"))] = r
    return r


def calibration(report: dict | None = None) -> dict | None:
    """The calibration rows (training set and uniform noise against the test set): from the
    report when it was measured with this classifier, else measured once per server."""
    report = _report() if report is None else report
    ref = reference()
    if ref is None:
        return report.get("calibration")
    if report.get("classifier", {}).get("id") == ref.classifier_id and report.get("calibration"):
        return report["calibration"]
    key = ("calibration", ref.classifier_id, evaluation.DEFAULT_N)
    if key not in _measured():
        with st.spinner("Measuring the calibration rows (training set and noise against the test set)…"):
            _measured()[key] = evaluation.calibration(ref, evaluation.DEFAULT_N)
    return _measured()[key]


def training_summary(card: dict) -> str:
    """'25 epochs, 16 min' from a card, as far as it says."""
    t = card.get("history", {}).get("train_time_s")
    epochs = card.get("train_config", {}).get("epochs")
    parts = [f"{epochs} epochs"] if epochs else []
    if t:
        parts.append(f"{t / 60:.0f} min" if t >= 90 else f"{t:.0f} s")
    return ", ".join(parts) + " training" if parts else "training time not recorded"


def known_result(name: str, card: dict, report: dict | None = None) -> dict | None:
    """This model's evaluation: measured on this server, or from docs/eval.json when the
    weights are the ones measured there; None when neither."""
    sha = card.get("weights_sha256")
    r = _measured().get((name, sha))
    if r is None:
        cand = (_report() if report is None else report).get("models", {}).get(name)
        r = cand if cand and cand.get("weights_sha256") == sha else None
    return r


def quality_rows(names: list[str]) -> tuple[list[dict], dict[str, list[float]]]:
    """Metric table rows for these models plus the calibration rows, and label histograms.

    A model's figures come from docs/eval.json (written by `python -m genlab eval --all`)
    when its weights are the ones measured there, else from a measurement made on this page.
    """
    report = _report()
    rows, hists = [], {}
    for name in names:
        model, card = load_model(name)
        r = known_result(name, card, report)
        row = {"model": name, "FID": None, "IS": None, "label entropy": None, "precision": None, "recall": None,
               "test NLL (nats)": "–", "bits/dim": "–", "parameters": f"{card.get('n_params') or 0:,}",
               "training": "–"}
        best = best_likelihood(card_likelihoods(card))
        if best is not None:
            row["test NLL (nats)"] = best.short()
            row["bits/dim"] = f"{best.bpd:.3f}" if best.bpd is not None else "–"
        row["training"] = training_summary(card).removesuffix(" training")
        if r and r.get("quality"):
            q = r["quality"]
            row.update({"FID": q["fid"], "IS": q["inception_score"], "label entropy": q["label_entropy"],
                        "precision": q["precision"], "recall": q["recall"]})
            hists[name] = q["label_fractions"]
        elif r and r.get("toy"):
            row["training"] += f" · 2-d: {r['toy'].get('modes', '–')} modes"
        rows.append(row)
    cal = calibration(report)
    if cal:
        for label, q in cal.items():
            rows.append({"model": f"(calibration) {label}", "FID": q["fid"], "IS": q["inception_score"],
                         "label entropy": q["label_entropy"], "precision": q["precision"], "recall": q["recall"],
                         "test NLL (nats)": "", "bits/dim": "", "parameters": "", "training": ""})
        hists["MNIST training set"] = cal.get("MNIST training set", {}).get("label_fractions")
        hists = {k: v for k, v in hists.items() if v}
    return rows, hists
