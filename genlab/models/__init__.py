"""Model families. Importing this package imports every module in it, and each family module
registers itself (`base.register`): a new family is one new file here, named nowhere else.
Then every installed plugin's families come in the same way (entry points of the group
`genlab.families`, see examples/genlab-ppca); a module or plugin that fails is reported in one
line (`problems()`, shown on Home) and genlab runs without it.

A family's classes are reachable as attributes of this package (`genlab.models.VAE`), looked
up in the registry by class name, so this file names no family.
"""
import importlib
import pkgutil

from . import base
from .base import (Capabilities, Curves, Family, GenerativeModel, LikelihoodRecord, Preset, Series, best_likelihood,
                   build, card_likelihoods, config_from_dict, describe_card, eval_mode, families, family, missing,
                   n_params, option, presets, problems, register, sample)

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base" and not _info.name.startswith("_"):
        base.load_family_module(f"genlab.models.{_info.name}",
                                lambda name=_info.name: importlib.import_module(f"{__name__}.{name}"))
base.load_plugins()


def __getattr__(name: str):
    """A registered family's model or config class by its class name (`VAE`, `GANConfig`)."""
    for fam in map(family, families()):
        for cls in (fam.model_cls, fam.config_cls):
            if cls.__name__ == name:
                return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Capabilities", "Curves", "Family", "GenerativeModel", "LikelihoodRecord", "Preset", "Series",
           "best_likelihood", "build", "card_likelihoods", "config_from_dict", "describe_card", "eval_mode",
           "families", "family", "missing", "n_params", "option", "presets", "problems", "register", "sample"]
