"""genlab: explore the latent spaces of deep generative models.

The engine behind the Streamlit dashboard (app.py) and the command line (python -m genlab).
It never imports streamlit.
"""
__version__ = "0.1.0"

from . import data, latent, metrics, store, viz  # noqa: E402
from .device import describe as describe_device  # noqa: E402
from .device import pick_device  # noqa: E402
from .models import GenerativeModel, VAE, VAEConfig, build, families, n_params  # noqa: E402
from .store import CheckpointError, list_checkpoints, load, read_card, save  # noqa: E402
from .train import Divergence, History, Progress, StopTraining, TrainConfig, evaluate, fit  # noqa: E402

__all__ = [
    "__version__", "data", "latent", "metrics", "store", "viz", "pick_device", "describe_device",
    "GenerativeModel", "VAE", "VAEConfig", "build", "families", "n_params",
    "CheckpointError", "list_checkpoints", "load", "read_card", "save",
    "Divergence", "History", "Progress", "StopTraining", "TrainConfig", "evaluate", "fit",
]
