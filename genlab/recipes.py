"""Recipes: one place that turns "train this family on this data" into a model, its data,
its training settings and its checkpoint card. The command line, the Training view and the
live views all call it, so every front end writes the same card.

    recipe = make_recipe("vae", data="mnist", latent_dim=2, epochs=5)   # a preset + options
    run = Run(recipe, device)          # builds the model and loads the data on the device
    history = run.fit(callback)        # the one training loop; a film frame (fixed + fresh) per epoch
    metrics, likelihoods = run.score(k=1000)
    run.save("checkpoints/my-vae", history, metrics, likelihoods)

What differs between families lives in each family's file: its presets and its recipe
(`Family.make_config`), which fits the config to the data and picks training defaults;
everything here reads the family's descriptor and the model's capabilities.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from . import data, store
from . import metrics as metrics_mod
from .models import base
from .models.base import LikelihoodRecord
from .train import History, Progress, TrainConfig, fit
from .watch import Film, toy_measures


@dataclass
class Recipe:
    """Everything that defines a training run: family, config, data and training settings."""

    family: str
    config: Any
    data: str = "mnist"
    limit: int | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    film: int = 64  # fixed-noise samples recorded per epoch (0: no film)


def make_recipe(preset: str, data: str | None = None, limit: int | None = None, film: int | None = None,
                **options) -> Recipe:
    """A recipe from a preset name (`base.presets()`) and options. Options that name a TrainConfig
    field (epochs, lr, batch_size, seed, precision, ...) go to training, the rest to the model's
    config; an option given as None takes the default. Unknown options are refused, never ignored."""
    known = base.presets()
    if preset not in known:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(known)}")
    fam_name, p = known[preset]
    fam = base.family(fam_name)
    data = data or p.data
    options = {k: v for k, v in options.items() if v is not None}
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    config_names = {f.name for f in dataclasses.fields(fam.config_cls)}
    wrong = [k for k in options if k not in train_names | config_names or k in p.fixed]
    if wrong:
        raise ValueError(f"{wrong[0]} does not apply to {preset}")
    train_opts = {k: v for k, v in options.items() if k in train_names}
    model_opts = p.defaults | {k: v for k, v in options.items() if k not in train_names} | p.fixed
    shape = data_shape(data)
    try:
        config, train_defaults = fam.recipe(model_opts, shape, data)
    except TypeError as e:  # an option the config does not have
        raise ValueError(f"{preset}: {e}") from None
    tcfg = TrainConfig(**(train_defaults | train_opts))
    return Recipe(fam_name, config, data, limit, tcfg, film if film is not None else (512 if len(shape) == 1 else 64))


def preset_mismatch(preset: str, family_name: str, config: Any) -> str | None:
    """None when a checkpoint (family, config) is what `preset` trains, else why not."""
    fam, p = base.presets()[preset]
    if fam != family_name or any(getattr(config, k, None) != v for k, v in p.fixed.items()):
        return f"is not a {preset} checkpoint"
    return None


def data_shape(name: str) -> tuple[int, ...]:
    """The shape of one example of a data set: (1, 28, 28), (1, 8, 8) or (2,)."""
    if name in data.TOY_SETS:
        return (2,)
    return {"mnist": (1, 28, 28), "digits8": (1, 8, 8)}.get(name) or data.load_dataset(name, "test").x.shape[1:]


def _val_split(name: str) -> str:
    return "test" if name == "digits8" else "val"


# ----------------------------------------------------------------------------- a run
class Run:
    """A recipe made real on a device: the model, its training data, its film and history."""

    def __init__(self, recipe: Recipe, device: torch.device | str = "cpu", model: torch.nn.Module | None = None):
        self.recipe, self.device = recipe, torch.device(device)
        torch.manual_seed(recipe.train.seed)
        self.model = model if model is not None else base.build(recipe.family, recipe.config).to(self.device)
        self.caps = self.model.capabilities
        train = data.load_dataset(recipe.data, "train", self.device, recipe.limit, recipe.train.seed)
        self.train_x = train.x
        self.train_y = train.y if self.caps.num_classes else None  # a conditional model learns from the labels
        if self.caps.num_classes and train.y is None:
            raise ValueError(f"a conditional model needs labelled data; {recipe.data} has no labels")
        if self.device.type == "cpu" and any(isinstance(m, torch.nn.Conv2d) for m in self.model.modules()):
            self.model.to(memory_format=torch.channels_last)  # same arithmetic, ~1.7x faster CPU convolutions
            self.train_x = self.train_x.contiguous(memory_format=torch.channels_last)
        self.val_x = data.load_dataset(recipe.data, _val_split(recipe.data), self.device).x \
            if self.caps.validates else None
        self.toy = recipe.data if recipe.data in data.TOY_SETS else None
        self.film = Film(self.model, n=recipe.film, seed=0) \
            if recipe.film and self.caps.generative else None
        self.toy_history: list[dict] = []
        self.extra_time_s = 0.0

    def record(self, step: int) -> None:
        """A film frame (and the toy measures) at `step`: called after each epoch and at step 0."""
        if self.film is not None:
            self.film.capture(self.model, step)
        if self.toy:
            self.toy_history.append({"step": step, **toy_measures(self.model, self.toy)})

    def fit(self, callback: Callable[[Progress], None] | None = None, history: History | None = None,
            step_offset: int = 0) -> History:
        """Train with the one loop, recording a frame after every epoch; then the family's
        after-training step (the autoencoder fits its prior)."""
        if not (self.film and self.film.steps) and not self.toy_history:
            self.record(step_offset)

        def on_progress(p: Progress) -> None:
            if p.epoch_done:
                self.record(step_offset + p.step)
            if callback is not None:
                callback(p)

        history = fit(self.model, self.train_x, self.recipe.train, val_x=self.val_x, callback=on_progress,
                      history=history, train_y=self.train_y)
        if hasattr(self.model, "after_fit"):  # optional protocol method (models/base.py)
            self.model.after_fit(self.train_x)
        return history

    def score(self, k: int | None = None, progress: Callable[[int, int], None] | None = None
              ) -> tuple[dict, list[LikelihoodRecord]]:
        """Test metrics for the card: the model's validation terms on the test set, toy
        measures, and the likelihood records it can report (k importance samples, None: the
        model's default; 0: the bound only)."""
        return score(self.model, self.recipe.data, self.device, k=k, progress=progress)

    def history_dict(self, history: History | dict) -> dict:
        """The card's history: per-step and per-epoch records, training time, toy measures."""
        h = history.to_dict() if isinstance(history, History) else dict(history)
        if self.toy and "toy" not in h:
            h["toy"] = list(self.toy_history)
        return h

    def card_sections(self, history: History | dict, metrics: dict | None = None,
                      likelihoods: list[LikelihoodRecord] | None = None, **train_extra) -> dict:
        """Keyword arguments for store.save: the same sections from every front end."""
        sections = {
            "dataset": dataset_card(self.recipe, len(self.train_x)),
            "history": self.history_dict(history),
            "metrics": metrics or {},
            "likelihoods": [r.to_dict() for r in likelihoods or []],
            "train_config": dataclasses.asdict(self.recipe.train) | {"device": str(self.device)} | train_extra,
            "extra": {}, "extra_tensors": {},
        }
        if hasattr(self.model, "training_state"):  # non-weight state the family keeps (PCD's chains)
            sections["extra_tensors"].update(self.model.training_state())
        if self.film is not None and self.film.frames:
            sections["extra"]["film"] = self.film.card()
            sections["extra_tensors"]["film"] = self.film.tensor()
            if self.film.fresh_frames:
                sections["extra_tensors"]["film_fresh"] = self.film.fresh_tensor()
        return sections

    def save(self, path, history: History | dict, metrics: dict | None = None,
             likelihoods: list[LikelihoodRecord] | None = None, **train_extra):
        return store.save(self.model, path, **self.card_sections(history, metrics, likelihoods, **train_extra))


def dataset_card(recipe: Recipe, n: int) -> dict:
    """The card's data set section."""
    out = {"name": recipe.data, "split": "train", "n": n}
    if recipe.data in data.TOY_SETS:
        out["seed"] = recipe.train.seed
    else:
        out["binarized"] = recipe.train.binarize
        out["binarization"] = "dynamic (a fresh Bernoulli draw per batch)" if recipe.train.binarize else "none"
    return out


def score(model, dataset: str, device, k: int | None = None, limit: int | None = None,
          progress: Callable[[int, int], None] | None = None) -> tuple[dict, list[LikelihoodRecord]]:
    """(metrics, likelihood records) of a model on the test split of `dataset`.

    metrics: the validation terms on the test set as test_NAME (models that validate; the
    test set is binarized once, seed 0, for models whose likelihood needs binary data) and
    the toy measures for 2-d data. Likelihood records: what the model's capabilities list.
    """
    caps = model.capabilities
    metrics: dict = {}
    records: list[LikelihoodRecord] = []
    if dataset in data.TOY_SETS:
        metrics.update(toy_measures(model, dataset))
        return metrics, records
    test = data.load_dataset(dataset, "test", device, limit=limit).x
    if caps.validates:
        x = model.test_data(test) if hasattr(model, "test_data") else test
        terms = metrics_mod.elbo_metrics(model, x)  # the model's loss terms, seed 0 (as its likelihood records)
        metrics.update({f"test_{k_}": round(v, 3) for k_, v in terms.items() if k_ != "loss"})
        metrics["test_images"] = len(x)
    if caps.likelihoods:
        records = model.likelihoods(test, progress=progress, **({} if k is None else {"k": k}))
    return metrics, records


def before_training(recipe: Recipe, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """What a run of `recipe` begins with, without disturbing anyone's random numbers: as many
    training examples as the film holds (a fixed draw) and the untrained model's film frame 0,
    the same weights and noise `Run(recipe)` builds and records first. Host tensors in [0, 1]
    (points for 2-d data)."""
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):  # Run seeds the global generator
        run = Run(recipe, dev)
        n = len(run.film.z) if run.film is not None and run.film.z is not None else recipe.film
        pick = torch.randperm(len(run.train_x), generator=torch.Generator().manual_seed(recipe.train.seed))[:n]
        real = run.train_x[pick.to(run.train_x.device)]
        fake = run.film.capture(run.model, 0) if run.film is not None else real[:0]
    return real.detach().cpu(), fake.detach().cpu()


def run_from_checkpoint(path, device: torch.device | str = "cpu", limit: int | None = None,
                        **train_changes) -> tuple[Run, dict]:
    """A Run that continues a checkpoint: its model, recipe (from the card), film and toy history.

    limit: train on the first `limit` examples only; train_changes replace TrainConfig fields
    (epochs, lr, seed, precision...)."""
    model, card = store.load(path, device)
    model.train()
    tc = {k: v for k, v in card.get("train_config", {}).items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
    ds = card.get("dataset", {})
    recipe = Recipe(card["family"], model.config, ds.get("name", "mnist"), limit,
                    TrainConfig(**(tc | {k: v for k, v in train_changes.items() if v is not None})),
                    card.get("film", {}).get("n", 0))
    run = Run(recipe, device, model=model)
    if run.film is not None and "film" in card.get("extra_tensors", {}):
        names = ["film"] + (["film_fresh"] if "film_fresh" in card["extra_tensors"] else [])
        tensors = store.load_extras(path, *names)
        run.film = Film(model, n=card["film"].get("n", 64), seed=card["film"].get("seed", 0))
        run.film.restore(card["film"], tensors["film"], tensors.get("film_fresh"))
    run.toy_history = list(card.get("history", {}).get("toy", []))
    return run, card


def merge_histories(old: dict, new: dict, step_offset: int, epoch_offset: int) -> dict:
    """A resumed run's history appended to the checkpoint's: steps and epochs renumbered to follow on."""
    steps = {}
    for k in set(old.get("steps", {})) | set(new.get("steps", {})):
        a, b = old.get("steps", {}).get(k, []), new.get("steps", {}).get(k, [])
        if k == "step":
            b = [s + step_offset for s in b]
        steps[k] = list(a) + list(b)
    t_old = old.get("train_time_s", 0.0)
    epochs = list(old.get("epochs", []))
    for e in new.get("epochs", []):
        epochs.append(e | {"epoch": e["epoch"] + epoch_offset, "step": e["step"] + step_offset,
                           "time_s": round(e.get("time_s", 0.0) + t_old, 2)})
    out = {"steps": steps, "epochs": epochs, "train_time_s": round(t_old + new.get("train_time_s", 0.0), 2)}
    if "toy" in new or "toy" in old:
        out["toy"] = new.get("toy", old.get("toy", []))
    return out


def describe_run(run: Run) -> str:
    """One line for a progress display: what trains on what, where."""
    cfg = run.recipe.config
    fam = base.family(run.recipe.family)
    return (f"{fam.label(cfg)} (latent {run.caps.latent_dim}, {base.n_params(run.model):,} parameters) on "
            f"{run.recipe.data} ({len(run.train_x):,} {'points' if run.toy else 'images'})")
