"""The one small protocol every genlab model follows, and the family registry.

Pages and the training loop work on this protocol only, so a new family lights up every
page that applies to it. A model is an nn.Module with a `config` dataclass that fully
describes its architecture (the checkpoint card stores it; loading rebuilds from it).
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch


@runtime_checkable
class GenerativeModel(Protocol):
    family: ClassVar[str]
    config: Any
    latent_dim: int
    data_kind: str  # "image" or "points"

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latent codes (n, latent_dim) from the model's prior."""

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (n, latent_dim) -> images (n, C, H, W) in [0, 1]."""

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """The optimizers train_step expects, in order."""

    def train_step(self, batch: torch.Tensor, optimizers: list, generator: torch.Generator | None
                   ) -> dict[str, torch.Tensor]:
        """One update. Returns detached scalars (0-d tensors, no host sync) by name."""


_FAMILIES: dict[str, tuple[type, type]] = {}


def register(family: str, config_cls: type):
    """Class decorator: make `family` buildable from a config dataclass."""
    def wrap(model_cls):
        model_cls.family = family
        _FAMILIES[family] = (model_cls, config_cls)
        return model_cls
    return wrap


def families() -> list[str]:
    return sorted(_FAMILIES)


def config_from_dict(family: str, d: dict) -> Any:
    """Rebuild a family's config dataclass from a JSON dict, rejecting unknown keys."""
    if family not in _FAMILIES:
        raise KeyError(f"unknown model family {family!r}; known: {', '.join(families())}")
    cls = _FAMILIES[family][1]
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"config for {family!r} has unknown fields {sorted(unknown)}")
    kwargs = {}
    for k, v in d.items():
        if isinstance(v, list) and "tuple" in str(hints.get(k, "")):
            v = tuple(v)
        kwargs[k] = v
    return cls(**kwargs)


def build(family: str, config: Any) -> torch.nn.Module:
    """Instantiate a model of `family` from its config (dataclass or dict)."""
    if family not in _FAMILIES:
        raise KeyError(f"unknown model family {family!r}; known: {', '.join(families())}")
    if isinstance(config, dict):
        config = config_from_dict(family, config)
    return _FAMILIES[family][0](config)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
