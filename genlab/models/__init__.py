"""Model families. Importing this package registers every family."""
from .base import (Capabilities, Curves, Family, GenerativeModel, LikelihoodRecord, Series, best_likelihood, build,
                   card_likelihoods, config_from_dict, describe_card, eval_mode, families, family, missing, n_params,
                   register, sample)
from .classifier import Classifier, ClassifierConfig
from .ebm import EBM, EBMConfig
from .flow import Flow, FlowConfig
from .gan import GAN, GANConfig
from .rbm import RBM, RBMConfig
from .vae import VAE, VAEConfig

__all__ = ["Capabilities", "Curves", "Family", "GenerativeModel", "LikelihoodRecord", "Series", "best_likelihood",
           "build", "card_likelihoods", "config_from_dict", "describe_card", "eval_mode", "families", "family",
           "missing", "n_params", "register", "sample",
           "Classifier", "ClassifierConfig", "EBM", "EBMConfig", "Flow", "FlowConfig", "GAN", "GANConfig", "RBM", "RBMConfig", "VAE", "VAEConfig"]
