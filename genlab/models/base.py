"""The one small protocol every genlab model follows, its capabilities, and the family registry.

Views, the command line and the training loop read a model's `capabilities` and its
family's `Family` descriptor; they never branch on a family's name, class or config
fields. A model is an nn.Module with a `config` dataclass that fully describes its
architecture (the checkpoint card stores it; loading rebuilds from it). Adding a family
means one file here that defines the model, its config and its descriptor, and registers
them (see the README's "Adding a family").
"""
from __future__ import annotations

import dataclasses
import re
import sys
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import torch

DATA_KINDS = ("image", "points", "table")
LATENT_KINDS = ("gaussian", "binary", "none")
SAMPLERS = ("ancestral", "gibbs", "langevin")
LIKELIHOODS = ("elbo", "iw", "exact", "ais", "ode")


@dataclass(frozen=True)
class Capabilities:
    """What a model can do. Views read this instead of guessing from the class or the config.

    data_kind / data_shape / data_range: what `sample` returns, (n, *data_shape) in data_range.
    latent / latent_dim: the latent variable: "gaussian" (prior_sample, decode: z -> x),
        "binary" (hidden units of an energy model), or "none" (no latent to explore).
    encode: `encode(x) -> z` exists (posterior means or an exact inverse).
    draw: `decode_sample(z, generator)` draws x ~ p(x|z); its name says the noise model.
    sampler / chain_length: how `sample` works: "ancestral" (decode prior draws) or a
        Markov chain ("gibbs", "langevin") of `chain_length` steps run inside `sample`.
    sample_needs_grad: `sample` uses input gradients (Langevin), so it must not run under
        `torch.inference_mode()`; call `genlab.models.sample` instead, which knows.
    likelihoods: the estimates `likelihoods(x)` reports, from LIKELIHOODS.
    validates: `loss_terms(x, generator)` scores held-out data (the Training view's val curves).
    traceable: `trace(x)` returns the input passed layer by layer (name, tensor, log-det).
    energy: `free_energy(x)` (an energy model's unnormalised -log p) and `chain(x0, steps, ...)`.
    filters: `filters()` shows each hidden unit's weights as an image.
    reconstruct: `reconstruct(x)` maps data to its code and back (v -> h -> v for an RBM).
    generative: False for helper models (the measuring-stick classifier): pickers leave them out.
    denoises: a model that makes data by removing noise along a path x_t = alpha_t x0 + sigma_t eps
        (t from 0, data, to 1, noise): `path(t)`, `noise(x0, t, g)`, `estimates(x_t, t)` ->
        (x0_hat, eps_hat), and the samplers `ddim(z, steps, eta, ..., trajectory=)` and `ode(z, steps,
        ...)`; `decode` takes `steps=` (how many sampler steps a picture costs).
    num_classes: a conditional model takes a class label (0 .. num_classes - 1): `sample(n,
        generator, labels=)`, `decode(z, labels=)` and `encode(x, labels=)` take a LongTensor of
        one label per row (sample draws them from the generator when not given; decode and encode
        use label 0). The training loop passes the data set's labels to `train_step(..., labels=)`.
    """

    data_kind: str
    data_shape: tuple[int, ...]
    data_range: tuple[float, float] | None = (0.0, 1.0)
    latent: str = "none"
    latent_dim: int = 0
    encode: bool = False
    draw: str | None = None
    sampler: str = "ancestral"
    chain_length: int = 0
    sample_needs_grad: bool = False
    likelihoods: tuple[str, ...] = ()
    validates: bool = False
    traceable: bool = False
    energy: bool = False
    filters: bool = False
    reconstruct: bool = False
    generative: bool = True
    num_classes: int = 0
    denoises: bool = False

    def __post_init__(self):
        if self.data_kind not in DATA_KINDS:
            raise ValueError(f"data_kind must be one of {DATA_KINDS}, not {self.data_kind!r}")
        if self.latent not in LATENT_KINDS or self.sampler not in SAMPLERS:
            raise ValueError(f"latent in {LATENT_KINDS}, sampler in {SAMPLERS}")
        if not set(self.likelihoods) <= set(LIKELIHOODS):
            raise ValueError(f"likelihoods must be among {LIKELIHOODS}, not {self.likelihoods}")

    @property
    def images(self) -> bool:
        return self.data_kind == "image"

    @property
    def mnist_images(self) -> bool:
        """28x28 grey images: what the MNIST classifier (FID, nearest neighbours) can score."""
        return self.data_kind == "image" and tuple(self.data_shape) == (1, 28, 28)

    @property
    def gaussian_latent(self) -> bool:
        """A continuous latent with a Gaussian prior that `decode` maps to data."""
        return self.latent == "gaussian"


# What the latent-space views need, and the one sentence that says why a model does not have it.
NEEDS: dict[str, tuple[Callable[[Capabilities], bool], str]] = {
    "generative": (lambda c: c.generative, "is not a generative model"),
    "images": (lambda c: c.images, "generates {data}, not images"),
    "gaussian_latent": (lambda c: c.gaussian_latent, "has no continuous latent space to move through "
                                                     "(its latent is {latent})"),
    "encode": (lambda c: c.encode, "has no encoder to map data to latent codes"),
    "exact_likelihood": (lambda c: "exact" in c.likelihoods, "has no exact likelihood"),
    "traceable": (lambda c: c.traceable, "has no invertible layers to follow one by one"),
    "energy": (lambda c: c.energy, "has no energy function to sample by a Markov chain"),
    "denoiser": (lambda c: c.denoises, "does not make data by removing noise step by step"),
}


def missing(caps: Capabilities, needs: tuple[str, ...]) -> str | None:
    """None when `caps` has everything in `needs`, else the reason, as the end of a sentence."""
    for need in needs:
        ok, why = NEEDS[need]
        if not ok(caps):
            data = {"points": "2-d points", "table": "table rows"}.get(caps.data_kind, caps.data_kind)
            latent = {"binary": "binary hidden units", "none": "absent"}.get(caps.latent, caps.latent)
            return why.format(data=data, latent=latent)
    return None


@dataclass(frozen=True)
class LikelihoodRecord:
    """One likelihood estimate of a model on a data set, in nats per example.

    method: "elbo" (a lower bound), "iw" (importance-weighted bound, Burda et al.), "exact"
        (a flow), "ais" (annealed importance sampling). value: the negative log-likelihood
        (or -ELBO); stderr: its standard error over examples (None when not measured); bpd:
        the same in bits per dimension, for 8-bit data;
    settings: how it was measured (k, binarization seed, chains...); terms: parts that add
        up to value (reconstruction, KL). n: examples scored.
    """

    method: str
    value: float
    stderr: float | None = None
    settings: dict = field(default_factory=dict)
    terms: dict = field(default_factory=dict)
    n: int | None = None
    bpd: float | None = None  # bits per dimension, where the data are 8-bit (value / (D ln 2))

    NAMES: ClassVar[dict[str, str]] = {"elbo": "−ELBO", "iw": "importance-weighted NLL",
                                       "exact": "exact NLL", "ais": "NLL by AIS",
                                       "ode": "NLL by the probability-flow ODE"}

    @property
    def label(self) -> str:
        k = self.settings.get("k")
        return self.NAMES.get(self.method, self.method) + (f", k={k}" if k else "")

    def short(self) -> str:
        """'89.42 (IW, k=1000)': the form tables use."""
        k = self.settings.get("k")
        return f"{self.value:.2f} ({self.method.upper()}" + (f", k={k})" if k else ")")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LikelihoodRecord":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


def card_likelihoods(card: dict) -> list[LikelihoodRecord]:
    """The likelihood records a checkpoint card holds (its `likelihoods` section)."""
    return [LikelihoodRecord.from_dict(d) for d in card.get("likelihoods", []) if isinstance(d, dict)]


def best_likelihood(records: list[LikelihoodRecord]) -> LikelihoodRecord | None:
    """The tightest estimate: exact, then AIS, then importance-weighted (largest k), then the ELBO."""
    order = {"exact": 0, "ode": 1, "ais": 2, "iw": 3, "elbo": 4}
    return min(records, key=lambda r: (order.get(r.method, 9), -r.settings.get("k", 0)), default=None)


@dataclass(frozen=True)
class Series:
    """A group of per-step curves drawn in one chart: (key, label, colour) triples."""

    lines: tuple[tuple[str, str, str], ...]
    ylabel: str = "loss"
    yrange: tuple[float, float] | None = None
    hline: float | None = None


@dataclass(frozen=True)
class Curves:
    """What the Training view draws for a model.

    epoch: keys drawn per epoch, train (solid) and validation (dashed), in `epoch_unit`.
    steps: per-step charts. per_dim: a vector key of the last epoch drawn as bars (KL per dimension).
    log_y: draw them on a logarithmic axis.
    """

    epoch: tuple[str, ...] = ()
    epoch_unit: str = "nats per image"
    steps: tuple[Series, ...] = ()
    per_dim: str | None = None
    note: str = ""
    log_y: bool = False  # curves that start orders of magnitude above where they end


def option(default: Any, help: str = "", **meta) -> Any:
    """A config field with its command-line help; meta may add `choices`, a `flag` name other
    than the field's, a `label` for the Training form (default: the name as words), or
    `cli=False` (set by the recipe, e.g. the data shape)."""
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class Preset:
    """A named way to train a family (`python -m genlab train NAME`): config fields it fixes,
    defaults it changes, the data set it trains on unless told, and one line of help."""

    fixed: dict = field(default_factory=dict)
    defaults: dict = field(default_factory=dict)
    data: str = "mnist"
    help: str = ""


def shape_config(config_cls: type):
    """The recipe of a family whose config takes the data's shape as `data_shape` and needs
    no other training defaults: (options, shape, data set) -> (config, training defaults)."""
    def make(opts: dict, shape: tuple[int, ...], dataset: str) -> tuple[Any, dict]:
        return config_cls(data_shape=shape, **opts), {}
    return make


def images_only(shape: tuple[int, ...], dataset: str, what: str) -> None:
    """For a recipe: refuse a data set of points for a family that models images."""
    if len(shape) != 3:
        raise ValueError(f"{what} here models images; {dataset} holds points of shape {shape}")


@dataclass(frozen=True)
class Family:
    """A family's descriptor, registered with its model: everything front ends show about it.

    label(config): a short kind name ("VAE", "DCGAN"); describe(config): a phrase for Home.
    curves(config): what the Training view draws. metrics: card metric key -> readable name.
    names: display names of history keys.
    examples(): small configs covering the family's variants; the contract test
        (tests/test_contract.py) builds, saves, samples, trains and scores each of them.
    progress_key: the per-step scalar that a short fit lowers (the contract test checks it).
    presets: the names `python -m genlab train` knows it by (default: the family's own name).
    make_config(options, data shape, data set) -> (config, training defaults): the recipe
        that fits a config to a data set and picks learning rate, batch size, binarization.
    live: the family's live trainer (a `genlab.live.LiveRun` subclass) when it trains in the
        browser step by step; views pick trainers by their `kind`.
    trainer(recipe, device, out) -> (paths, metrics): a family trained outside the one loop
        (the measuring-stick classifier, which needs labels).
    trains: False for a family that is brought, not trained (models in ONNX): no presets, and
        its config alone does not build a working model (its graphs come with the weights).
    commands: command-line subcommands the family adds, name -> (help, add_arguments(parser),
        run(args) -> exit code).
    importer(files: {name: bytes}) -> (model, card sections): builds a model of this family from
        files a user brings (an upload), or raises ValueError saying what is wrong; None when
        the family's models come only from genlab checkpoints.
    """

    name: str
    model_cls: type
    config_cls: type
    label: Callable[[Any], str]
    describe: Callable[[Any], str]
    curves: Callable[[Any], Curves] = lambda cfg: Curves()
    metrics: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    examples: Callable[[], list] = lambda: []
    progress_key: str = "loss"
    presets: dict[str, Preset] = field(default_factory=dict)
    make_config: Callable[[dict, tuple[int, ...], str], tuple[Any, dict]] | None = None
    live: type | None = None
    trainer: Callable | None = None
    trains: bool = True
    commands: dict = field(default_factory=dict)
    importer: Callable | None = None

    @property
    def recipe(self) -> Callable[[dict, tuple[int, ...], str], tuple[Any, dict]]:
        return self.make_config or shape_config(self.config_cls)


@runtime_checkable
class GenerativeModel(Protocol):
    family: ClassVar[str]
    config: Any

    @property
    def capabilities(self) -> Capabilities:
        """What this model can do (depends on its config)."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples (n, *data_shape) in the data range; chains run inside for samplers."""

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """The optimizers train_step expects, in order."""

    def train_step(self, batch: torch.Tensor, optimizers: list, generator: torch.Generator | None
                   ) -> dict[str, torch.Tensor]:
        """One update. Returns detached scalars (0-d tensors, no host sync) by name; vector
        terms (e.g. KL per dimension) may be included and are averaged per epoch."""


# The methods each capability promises (views, the command line and evaluation call them, never
# guessing from a family's name); `protocol_gaps` lists what a model lacks, and the contract test
# (tests/test_contract.py) holds every family to it.
#   gaussian latent: prior() -> (loc, scale), prior_sample(n, g, temperature), decode(z)
#   encode: encode(x) -> z;  draw: decode_sample(z, g);  validates: loss_terms(x, g)
#   likelihoods: likelihoods(x, k=..., progress=...) -> [LikelihoodRecord]
#   "exact" likelihood: log_prob(x, g) -> (B,) nats, bits_per_dim(nll) (8-bit data)
#   traceable: trace(x);  energy: free_energy(x), chain(x0, steps, every, generator, clamp, **settings),
#       chain_settings() -> the keyword settings `chain` takes at their trained values ({} for Gibbs)
#   filters: filters();  reconstruct: reconstruct(x)
# Optional everywhere: validate() (genlab.load calls it once the weights are in; raises ValueError);
# features(z) -> (B, F) (a generator's first layer's activations, where GANSpace finds directions);
# after_fit(train_x) (a step after training, e.g. fitting the AE's prior);
# training_state() -> dict of non-weight tensors that are not in state_dict; the keys views read
# from a checkpoint: "chains" (persistent chains in the chain's own state space, continued by
# `chain`), "buffer" (8-bit images);
# test_data(x) -> the test set as the model scores it (binarized once, for binary likelihoods).
PROTOCOL: dict[str, tuple[Callable[[Capabilities], bool], tuple[str, ...]]] = {
    "gaussian_latent": (lambda c: c.gaussian_latent, ("prior", "prior_sample", "decode")),
    "encode": (lambda c: c.encode, ("encode",)),
    "draw": (lambda c: c.draw is not None, ("decode_sample",)),
    "validates": (lambda c: c.validates, ("loss_terms",)),
    "likelihoods": (lambda c: bool(c.likelihoods), ("likelihoods",)),
    "exact_likelihood": (lambda c: "exact" in c.likelihoods, ("log_prob", "bits_per_dim")),
    "traceable": (lambda c: c.traceable, ("trace",)),
    "energy": (lambda c: c.energy, ("free_energy", "chain", "chain_settings")),
    "filters": (lambda c: c.filters, ("filters",)),
    "reconstruct": (lambda c: c.reconstruct, ("reconstruct",)),
    "denoises": (lambda c: c.denoises, ("path", "noise", "estimates", "ddim", "ode", "step_noise")),
}


def protocol_gaps(model) -> list[str]:
    """The methods a model's capabilities promise that it does not have ([] when whole)."""
    caps = model.capabilities
    return [f"{cap}: {m}" for cap, (has, methods) in PROTOCOL.items() if has(caps)
            for m in methods if not callable(getattr(model, m, None))]


_FAMILIES: dict[str, Family] = {}
_PRESETS: dict[str, tuple[str, Preset]] = {}


def register(family: str, config_cls: type, **descriptor):
    """Class decorator: make `family` buildable from a config dataclass and describe it.
    Registering a family again (a module reloaded) replaces it and its presets."""
    def wrap(model_cls):
        model_cls.family = family
        fam = Family(family, model_cls, config_cls, **descriptor)
        names = (fam.presets or {family: Preset()}) if fam.trains else {}
        taken = [n for n in names if n in _PRESETS and _PRESETS[n][0] != family]
        if taken:
            raise ValueError(f"family {family!r}: preset name {taken[0]!r} is already {_PRESETS[taken[0]][0]!r}'s")
        for n in [n for n, (f, _) in _PRESETS.items() if f == family]:
            del _PRESETS[n]
        _FAMILIES[family] = fam
        _PRESETS.update({n: (family, p) for n, p in names.items()})
        return model_cls
    return wrap


def unregister(family: str) -> None:
    """Forget a family and its presets (a test's own family, a plugin reloaded)."""
    _FAMILIES.pop(family, None)
    for n in [n for n, (f, _) in _PRESETS.items() if f == family]:
        del _PRESETS[n]


FAMILY_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def check_family(fam: Family) -> None:
    """Raise ValueError saying what is wrong with a family's declaration: a bad name, a config
    that is not a dataclass or does not build with its defaults, no example configs, or an
    example whose model lacks a method its capabilities promise. Models are built on the meta
    device, so checking allocates nothing."""
    if not FAMILY_NAME.fullmatch(fam.name):
        raise ValueError(f"family name {fam.name!r}: use 1-32 lowercase letters, digits, '-' or '_'")
    if not dataclasses.is_dataclass(fam.config_cls):
        raise ValueError(f"{fam.config_cls.__name__} is not a dataclass")
    if not (isinstance(fam.model_cls, type) and issubclass(fam.model_cls, torch.nn.Module)):
        raise ValueError(f"{getattr(fam.model_cls, '__name__', fam.model_cls)!r} is not a torch.nn.Module")
    configs = fam.examples()
    if fam.trains and not configs:
        raise ValueError("it registers no example configs (Family.examples), which its tests and checks build")
    for cfg in configs:
        if not isinstance(cfg, fam.config_cls):
            raise ValueError(f"an example config is a {type(cfg).__name__}, not a {fam.config_cls.__name__}")
        with torch.device("meta"):
            model = fam.model_cls(cfg)
        caps = getattr(model, "capabilities", None)
        if not isinstance(caps, Capabilities):
            raise ValueError(f"{fam.model_cls.__name__}.capabilities is not a Capabilities")
        needed = ("sample", "configure_optimizers", "train_step") if caps.generative and fam.trains else ()
        gaps = [m for m in needed if not callable(getattr(model, m, None))] + protocol_gaps(model)
        if gaps:
            raise ValueError(f"{fam.model_cls.__name__} lacks what it promises: {', '.join(gaps)}")
        fam.label(cfg), fam.describe(cfg)


PLUGIN_GROUP = "genlab.families"
_PROBLEMS: list[tuple[str, str]] = []


def load_family_module(source: str, load: Callable[[], Any]) -> list[str]:
    """Run `load` (an import) that registers one or more families, and check what it registered.
    Built-in family modules and plugins (entry points of the group PLUGIN_GROUP) come in
    through here alike. A source that fails to import, registers nothing, replaces a family
    or preset already registered, or declares an invalid family leaves the registry as it was;
    the reason is kept (`problems()`) and returned. Returns the families it added."""
    families_before, presets_before = dict(_FAMILIES), dict(_PRESETS)
    try:
        obj = load()
        if callable(obj) and not isinstance(obj, type):  # an entry point may name a function that registers
            obj()
        added = [n for n in _FAMILIES if n not in families_before]
        replaced = [n for n in families_before if _FAMILIES.get(n) is not families_before[n]]
        if replaced:
            raise ValueError(f"it registers family {replaced[0]!r}, which genlab already has")
        if not added:
            raise ValueError("it registered no family (decorate a model class with genlab.models.register)")
        for n in added:
            check_family(_FAMILIES[n])
        return added
    except Exception as e:  # noqa: BLE001 - any failure of foreign code is reported, not raised
        _FAMILIES.clear()
        _FAMILIES.update(families_before)
        _PRESETS.clear()
        _PRESETS.update(presets_before)
        why = f"{type(e).__name__}: {e}" if not isinstance(e, ValueError) else str(e)
        _PROBLEMS.append((source, why))
        print(f"genlab: family source {source} not loaded: {why}", file=sys.stderr, flush=True)
        return []


def load_plugins() -> list[str]:
    """Every installed plugin's families (entry points of the group PLUGIN_GROUP)."""
    from importlib.metadata import entry_points
    added = []
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        added += load_family_module(f"plugin {ep.name} ({ep.value})", ep.load)
    return added


def problems() -> list[tuple[str, str]]:
    """(source, why) for each family module or plugin that was not loaded."""
    return list(_PROBLEMS)


def families() -> list[str]:
    return sorted(_FAMILIES)


def family(name: str) -> Family:
    if name not in _FAMILIES:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(families())}")
    return _FAMILIES[name]


def presets() -> dict[str, tuple[str, Preset]]:
    """Every family's presets: name -> (family, preset), in registration order."""
    return dict(_PRESETS)


def config_from_dict(family_name: str, d: dict) -> Any:
    """Rebuild a family's config dataclass from a JSON dict, rejecting unknown keys."""
    cls = family(family_name).config_cls
    if not isinstance(d, dict):
        raise ValueError(f"config for {family_name!r} must be a JSON object")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"config for {family_name!r} has unknown fields {sorted(unknown)}")
    kwargs = {}
    for k, v in d.items():
        if isinstance(v, list) and "tuple" in str(hints.get(k, "")):
            v = tuple(v)
        kwargs[k] = v
    return cls(**kwargs)


def build(family_name: str, config: Any) -> torch.nn.Module:
    """Instantiate a model of `family_name` from its config (dataclass or dict)."""
    fam = family(family_name)
    if isinstance(config, dict):
        config = config_from_dict(family_name, config)
    return fam.model_cls(config)


def expected_shapes(family_name: str, config: Any) -> dict[str, tuple[int, ...]]:
    """The state_dict's tensor shapes for a config, computed on the meta device: nothing is
    allocated, so a hostile card with absurd sizes costs nothing to check."""
    with torch.device("meta"):
        model = build(family_name, config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def describe_card(card: dict) -> dict:
    """What pickers and tables show of a checkpoint, from its card alone (no weights read)."""
    fam = family(card["family"])
    cfg = config_from_dict(card["family"], card["config"])
    caps = expected_capabilities(card["family"], cfg)
    return {"family": card["family"], "kind": fam.label(cfg), "description": fam.describe(cfg),
            "latent_dim": caps.latent_dim, "latent": caps.latent, "data_kind": caps.data_kind,
            "generative": caps.generative, "images": caps.images,
            "likelihoods": tuple(caps.likelihoods), "traceable": caps.traceable, "mnist_images": caps.mnist_images}


def expected_capabilities(family_name: str, config: Any) -> Capabilities:
    """A model's capabilities from its config, built on the meta device (no memory used)."""
    with torch.device("meta"):
        return build(family_name, config).capabilities


def device_of(model: torch.nn.Module) -> torch.device:
    """Where a model's tensors are: its parameters', or its buffers' for a model without
    parameters (an ONNX generator keeps its graphs and prior in buffers); the CPU for neither."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sample(model, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None
           ) -> torch.Tensor:
    """`model.sample` in eval mode, without autograd unless the sampler needs input gradients;
    a conditional model's labels (n,) passed on when given."""
    given = {"labels": labels} if labels is not None and model.capabilities.num_classes else {}
    with eval_mode(model):
        if model.capabilities.sample_needs_grad:
            return model.sample(n, generator, **given).detach()
        with torch.inference_mode():
            return model.sample(n, generator, **given)


def descend(opt: torch.optim.Optimizer, loss: torch.Tensor, max_norm: float | None = None) -> None:
    """One gradient step on `loss` with `opt` (gradients clipped to max_norm on the device, no
    host sync). Every family's train_step ends with it."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], max_norm)
    opt.step()


def minimize_terms(model, batch: torch.Tensor, optimizers: list, generator: torch.Generator | None = None,
                   max_norm: float | None = None, **labels) -> dict[str, torch.Tensor]:
    """The train_step of a family with one optimizer and a `loss_terms` whose "loss" it
    minimises (VAE, flow): one step, and the terms detached for the history. A conditional
    model's batch labels come as labels=."""
    (opt,) = optimizers
    terms = model.loss_terms(batch, generator, **labels)
    descend(opt, terms["loss"], max_norm)
    return {k: v.detach() for k, v in terms.items()}


class eval_mode:
    """`with eval_mode(model):` the model in eval mode, its previous mode restored after."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def __enter__(self):
        self.was = self.model.training
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        self.model.train(self.was)
        return False
