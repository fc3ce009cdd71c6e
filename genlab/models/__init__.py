"""Model families. Importing this package imports every module in it, and each family module
registers itself (`base.register`): a new family is one new file here, named nowhere else.

A family's classes are reachable as attributes of this package (`genlab.models.VAE`), looked
up in the registry by class name, so this file names no family.
"""
import importlib
import pkgutil

from .base import (Capabilities, Curves, Family, GenerativeModel, LikelihoodRecord, Preset, Series, best_likelihood,
                   build, card_likelihoods, config_from_dict, describe_card, eval_mode, families, family, missing,
                   n_params, option, presets, register, sample)

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")


def __getattr__(name: str):
    """A registered family's model or config class by its class name (`VAE`, `GANConfig`)."""
    for fam in map(family, families()):
        for cls in (fam.model_cls, fam.config_cls):
            if cls.__name__ == name:
                return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Capabilities", "Curves", "Family", "GenerativeModel", "LikelihoodRecord", "Preset", "Series",
           "best_likelihood", "build", "card_likelihoods", "config_from_dict", "describe_card", "eval_mode",
           "families", "family", "missing", "n_params", "option", "presets", "register", "sample"]
