"""genlab: explore the latent spaces of deep generative models.

The engine behind the Streamlit dashboard (app.py) and the command line (python -m genlab).
It never imports streamlit.
"""
__version__ = "0.1.0"

from . import data, latent, metrics, models, recipes, store, viz  # noqa: E402
from .device import describe as describe_device  # noqa: E402
from .device import pick_device  # noqa: E402
from .models import (Capabilities, Family, GenerativeModel, LikelihoodRecord, build, families, family,  # noqa: E402
                     n_params, sample)
from .store import CheckpointError, checkpoint_files, list_checkpoints, load, read_card, save  # noqa: E402
from .train import Divergence, History, Progress, StopTraining, TrainConfig, evaluate, fit  # noqa: E402

__all__ = [
    "__version__", "data", "latent", "metrics", "recipes", "store", "viz", "pick_device", "describe_device",
    "Capabilities", "Family", "GenerativeModel", "LikelihoodRecord", "build", "families",
    "family", "n_params", "sample",
    "CheckpointError", "checkpoint_files", "list_checkpoints", "load", "read_card", "save",
    "Divergence", "History", "Progress", "StopTraining", "TrainConfig", "evaluate", "fit",
]


def __getattr__(name: str):
    """A family's model or config class by name (`genlab.VAE`), from the registry."""
    return getattr(models, name)
