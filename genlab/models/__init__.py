"""Model families. Importing this package registers every family."""
from .base import GenerativeModel, build, config_from_dict, families, n_params, register
from .classifier import Classifier, ClassifierConfig
from .gan import GAN, GANConfig
from .vae import VAE, VAEConfig

__all__ = ["GenerativeModel", "build", "config_from_dict", "families", "n_params", "register",
           "Classifier", "ClassifierConfig", "GAN", "GANConfig", "VAE", "VAEConfig"]
