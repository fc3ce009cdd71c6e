"""The views of the dashboard, one entry each: what app.py's navigation, Home's cards, Lessons,
the warm-up, the lesson bar and the model check of every view read.

An entry says where the view lives (file), how it is shown (title, icon, one-line blurb), which
URL keys it reads with the values its widgets take (a lesson step may carry exactly those),
which capabilities a model needs for it (names from genlab.models.base.NEEDS), whether it is
where a model with those capabilities is explored best, when the warm-up opens it, and the
session keys of the training jobs it owns. A view reads its own ranges from here
(`keys(title)["n"].lo`), so a range is written once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from genlab.data import TOY_SETS
from genlab.lessons import Choice, Float, Int, Model, Models
from genlab.models.base import Capabilities, missing
from genlab.tabular import TABLES

SEED = Int(0, 2**31 - 1)
NN = Choice(("off", "pixels", "classifier features"))
TEST_INDEX = Int(0, 9_999)  # the MNIST test set; the views clamp to the data set they load
LATENT_DIM = Int(0, 783)  # the largest latent here (the flow's 784); the view clamps to Z - 1
# a meaningful direction: a principal one of the codes (PC1 explains most), or towards a digit
DIRECTION = Choice(("off", *(f"PC{i}" for i in range(1, 11)), *(f"towards {d}" for d in range(10))))
GLOBAL_KEYS: dict[str, Any] = {"model": Model()}  # the sidebar's model picker, on every view


@dataclass(frozen=True)
class View:
    """One view of the dashboard.

    keys: URL key -> spec (genlab.lessons Int, Float, Choice, Models): what a link or a lesson
        step may set. extra_keys: widgets not in the URL that a lesson step resets too.
    needs: capabilities the picked model must have; the view switches to a model that has them.
    explores: the view is the home of models that have its needs (the most needs wins; a view
        with `home_first` wins over views that explore any model, as the Diffusion view is made
        for one kind of model whose needs are few).
    warm: its place in the warm-up's first round (0: never opened: it starts a job or reads a
        person's input); warm_each: then opened with every model it fits. warm_query: what the
        warm-up adds to the link when it opens the view with a model it is the home of (sections
        that are off until asked for, computed once per model and shared: directions, the map).
    jobs: session keys of the training jobs this view starts (the sidebar's badge points here).
    lesson: a lesson step may open it.
    """

    title: str
    file: str
    icon: str
    blurb: str = ""
    keys: Mapping[str, Any] = field(default_factory=dict)
    extra_keys: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    explores: bool = False
    home_first: bool = False
    warm: int = 0
    warm_each: bool = True
    warm_query: str = ""
    jobs: tuple[str, ...] = ()
    lesson: bool = True

    @property
    def path(self) -> str:
        """The URL path Streamlit gives the page ('' for Home, the default page)."""
        return "" if self is VIEWS[0] else Path(self.file).stem


VIEWS: tuple[View, ...] = (
    View("Home", "views/home.py", ":material/home:", warm=1),
    View("Latent Explorer", "views/latent_explorer.py", ":material/tune:",
         "Samples from a seed; scale the means and spreads of the latent Gaussian; move one dimension at a time.",
         keys={"seed": SEED, "n": Int(2, 16), "temp": Float(0.1, 1.5), "nn": NN,
               "sm": Float(-3.0, 3.0), "ss": Float(0.0, 3.0), "gs": Int(2, 16),
               "base": SEED, **{f"d{i}": Float(-3.0, 3.0) for i in range(8)},
               **{f"dir{i}": DIRECTION for i in range(3)}, **{f"t{i}": Float(-4.0, 4.0) for i in range(3)},
               "dseed": SEED, "label": Choice(("any", *map(str, range(10)))), "dirs": Choice(("1",))},
         extra_keys=("sweep",), needs=("images", "gaussian_latent"), explores=True, warm=2, warm_query="dirs=1"),
    View("Interpolation", "views/interpolation.py", ":material/linear_scale:",
         "Straight (lerp) and spherical (slerp) paths between seeds or encoded test images; save as a GIF.",
         keys={**{f"{t}_src": Choice(("seed", "test image")) for t in "ab"},
               **{f"{t}_seed": SEED for t in "ab"}, **{f"{t}_idx": TEST_INDEX for t in "ab"},
               "method": Choice(("slerp", "lerp", "both")), "steps": Int(3, 24),
               "label": Choice(tuple(map(str, range(10))))},
         extra_keys=("a_by", "b_by", "a_digit", "b_digit", "a_k", "b_k"),
         needs=("images", "gaussian_latent"), warm=3),
    View("VAE Manifold", "views/manifold.py", ":material/grid_on:",
         "The decoded latent grid beside the encoded test set; click a point; the autoencoder's holes.",
         keys={"plane": Choice(("principal directions", "two dimensions")), "di": LATENT_DIM, "dj": LATENT_DIM,
               "label": Choice(tuple(map(str, range(10)))), "cmap": Choice(("1",)),
               "res": Int(5, 30), "plo": Float(0.001, 0.45), "phi": Float(0.55, 0.999), "pt": TEST_INDEX},
         needs=("images", "gaussian_latent", "encode"), explores=True, warm=4, warm_query="cmap=1"),
    View("Training", "views/training.py", ":material/monitoring:",
         "-ELBO, reconstruction and KL curves, KL per dimension; train a new model in the background.",
         warm=6, jobs=("job",)),
    View("GAN Live", "views/gan_live.py", ":material/play_circle:",
         "Press Start and watch a GAN learn, on MNIST or 2-d data; pause, step D or G, scrub the film.",
         jobs=("gan_job",)),
    View("Flow", "views/flow.py", ":material/waves:",
         "A normalizing flow's exact likelihood: one digit through every layer and back, bits/dim, temperature.",
         keys={"fi": TEST_INDEX, "fseed": SEED},
         needs=("images", "gaussian_latent", "encode", "exact_likelihood", "traceable"), explores=True, warm=8),
    View("Energy Models", "views/energy.py", ":material/bolt:",
         "RBM Gibbs chains and EBM Langevin chains frame by frame: denoising, inpainting, energies; AIS for RBMs.",
         keys={"eps": Float(0.1, 30.0, (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)),
               "sigma": Float(0.0, 0.05, (0.0, 0.001, 0.005, 0.01, 0.02, 0.05)),
               "start": Choice(("noise", "a test image", "persistent chains", "a noisy test image",
                                "a half-masked test image")),
               "steps": Int(10, 2000), "every": Int(1, 100)},
         extra_keys=("textbook", "cseed"), needs=("images", "energy"), explores=True, warm=9, jobs=("rbm_job",)),
    View("Diffusion", "views/diffusion.py", ":material/blur_on:",
         "Watch noise become a digit step by step; samplers side by side; guidance towards a picked digit.",
         keys={"ft": Float(0.0, 1.0), "fidx": TEST_INDEX, "rseed": SEED, "rsteps": Choice(("10", "20", "50")),
               "reta": Choice(("0", "1")), "rlabel": Choice(("none", *map(str, range(10)))), "rw": Float(0.0, 8.0),
               "sseed": SEED, "glabel": Choice(("none", *map(str, range(10)))), "gw": Float(0.0, 8.0),
               "lset": Choice(tuple(TOY_SETS))},
         extra_keys=("ddpm_all", "lseed"), jobs=("dn_job",), needs=("denoiser",), explores=True, home_first=True, warm=10),
    View("Structure Search", "views/structure.py", ":material/account_tree:",
         "Which features should a coupling layer condition on? Watch an evolutionary search on table data.",
         keys={"s_data": Choice(tuple(TABLES)), "s_layers": Int(1, 12), "s_budget": Int(5, 400),
               "s_offspring": Int(1, 8), "s_seed": Int(0, 9999)}),
    View("Compare", "views/compare.py", ":material/compare:",
         "Two to four models from one seed, side by side: samples, paths, nearest neighbours, FID.",
         keys={"models": Models(2, 4), "seed": SEED, "samples": Int(16, 64, (16, 36, 64)),
               "path": Choice(("slerp", "lerp")), "nn": NN, "label": Choice(("any", *map(str, range(10))))},
         warm=5, warm_each=False),  # its own list of models
    View("Your Digit", "views/digit.py", ":material/draw:", needs=("images",), warm=7),
    View("Lessons", "views/lessons.py", ":material/school:", lesson=False),
)

_BY_TITLE = {v.title: v for v in VIEWS}


def view(title: str) -> View:
    """The entry of a view by its title (KeyError for a title that is not a view)."""
    return _BY_TITLE[title]


def find(title: str | None) -> View | None:
    """The entry of a view by its title, or None."""
    return _BY_TITLE.get(title) if title else None


def keys(title: str) -> Mapping[str, Any]:
    """The URL keys a view reads, with their specs (genlab.lessons Int, Float, Choice, Models)."""
    return view(title).keys


def key(title: str, name: str) -> Any:
    """The spec of one URL key of a view: `key("Energy Models", "steps").hi`."""
    return view(title).keys[name]


def file(title: str) -> str:
    return view(title).file


def lesson_views() -> dict[str, dict[str, Any]]:
    """{title: {key: spec}} of the views a lesson step may open: the sidebar's model and the view's keys."""
    return {v.title: {**GLOBAL_KEYS, **v.keys} for v in VIEWS if v.lesson}


def job_views() -> dict[str, str]:
    """Session key of a training job -> the title of the view that owns it."""
    return {k: v.title for v in VIEWS for k in v.jobs}


def fits(v: View, caps: Capabilities) -> bool:
    """Whether a model with these capabilities has everything the view needs."""
    return missing(caps, v.needs) is None


def home_of(caps: Capabilities | Mapping) -> str:
    """The title of the view where a model is explored best: of the views that explore the models
    they fit, the one that needs the most of what this model has (the first on a tie); Home when
    none fits. Takes a model's capabilities, or a model entry of the picker (its "caps")."""
    caps = caps["caps"] if isinstance(caps, Mapping) else caps
    best = max((v for v in VIEWS if v.explores and fits(v, caps)), key=lambda v: (v.home_first, len(v.needs)),
               default=VIEWS[0])
    return best.title
