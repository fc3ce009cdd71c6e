"""Variational autoencoder (Kingma & Welling, 2014) with MLP encoder and decoder, and the
plain autoencoder as its KL-free contrast.

    q(z|x) = N(mu(x), diag(exp(logvar(x))))      p(z) = N(0, I)
    -ELBO  = E_q[-log p(x|z)] + KL(q(z|x) || p(z))   (the "reconstruction" and "KL" terms)
    loss   = reconstruction + beta * KL

The decoder is Bernoulli (binary cross-entropy on logits) or Gaussian with a fixed or a
learned shared standard deviation. With `autoencoder=True` the code is z = mu(x), there is
no KL term, and the "prior" is a diagonal Gaussian fitted to the training codes afterwards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import metrics
from .base import Capabilities, Curves, LikelihoodRecord, Preset, Series, images_only, minimize_terms, option, register


@dataclass
class VAEConfig:
    image_shape: tuple[int, ...] = option((1, 28, 28), "image shape (C, H, W)", cli=False)
    hidden: tuple[int, ...] = option((500, 250), "hidden layer sizes, e.g. 500,250 (MNIST default; 128,64 otherwise)")
    latent_dim: int = option(20, "latent dimensions")
    likelihood: str = option("bernoulli", "the decoder's likelihood", choices=("bernoulli", "gaussian"))
    sigma: float = option(0.1, "Gaussian decoder std (its initial value when learned)")
    learn_sigma: bool = option(False, "learn the Gaussian decoder's std")
    beta: float = option(1.0, "weight of the KL term")
    autoencoder: bool = option(False, "a plain autoencoder: no KL term, a prior fitted to the codes after training")
    num_classes: int = option(0, "a conditional VAE: the number of class labels given to the encoder and the "
                                 "decoder with every image (10 for MNIST's digits; 0: unconditional)")

    def __post_init__(self):
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', not {self.likelihood!r}")
        if self.latent_dim < 1 or any(h < 1 for h in self.hidden):
            raise ValueError("latent_dim and hidden sizes must be positive")
        if self.sigma <= 0 or self.beta < 0:
            raise ValueError("sigma must be > 0 and beta >= 0")
        if self.num_classes < 0 or (self.num_classes and self.autoencoder):
            raise ValueError("num_classes must be >= 0, and a conditional model is a VAE, not an autoencoder")


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per dimension, closed form. Shape of mu."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def _label(cfg: VAEConfig) -> str:
    return "AE" if cfg.autoencoder else ("c" if cfg.num_classes else "") + ("β-VAE" if cfg.beta != 1 else "VAE")


def _describe(cfg: VAEConfig) -> str:
    if cfg.autoencoder:
        return f"plain autoencoder (no KL term), {cfg.likelihood} reconstruction loss"
    return (f"{'conditional ' if cfg.num_classes else ''}VAE with a {cfg.likelihood} decoder"
            + (f", β = {cfg.beta:g}" if cfg.beta != 1 else "")
            + (f", given one of {cfg.num_classes} labels" if cfg.num_classes else ""))


def _curves(cfg: VAEConfig) -> Curves:
    if cfg.autoencoder:
        return Curves(epoch=("recon",), steps=(Series((("loss", "loss", "#1f77b4"),)),),
                      note="The autoencoder has no KL term: its codes are not pulled toward a prior.")
    return Curves(epoch=("neg_elbo", "recon", "kl"), steps=(Series((("loss", "loss", "#1f77b4"),)),),
                  per_dim="kl_dim",
                  note="-ELBO = reconstruction + KL, in nats per image; lower is better. "
                       "Reconstruction is −log p(x|z); KL is KL(q(z|x) ‖ p(z)).")


def _recipe(opts: dict, shape: tuple[int, ...], dataset: str) -> tuple[VAEConfig, dict]:
    """A VAE or autoencoder on images: the shape comes from the data; Bernoulli decoders
    train on dynamically binarized batches."""
    images_only(shape, dataset, "a VAE")
    opts = dict(opts)
    opts.setdefault("hidden", (500, 250) if dataset == "mnist" else (128, 64))
    cfg = VAEConfig(image_shape=shape, **opts)
    return cfg, {"lr": 1e-3, "batch_size": 128, "binarize": cfg.likelihood == "bernoulli"}


@register("vae", VAEConfig, label=_label, describe=_describe, curves=_curves,
          presets={"vae": Preset(defaults={"latent_dim": 20}, help="variational autoencoder"),
                   "ae": Preset(fixed={"autoencoder": True}, defaults={"latent_dim": 20},
                                help="plain autoencoder (no KL term)")},
          make_config=_recipe,
          metrics={"test_neg_elbo": "test −ELBO", "test_recon": "test reconstruction −log p(x|z)",
                   "test_kl": "test KL(q(z|x) ‖ p(z))"},
          names={"neg_elbo": "-ELBO", "recon": "reconstruction", "kl": "KL", "loss": "loss"},
          examples=lambda: [VAEConfig(image_shape=(1, 8, 8), hidden=(32,), latent_dim=2),
                            VAEConfig(image_shape=(1, 8, 8), hidden=(32,), latent_dim=2, autoencoder=True),
                            VAEConfig(image_shape=(1, 8, 8), hidden=(32,), latent_dim=2, num_classes=10),
                            VAEConfig(image_shape=(1, 8, 8), hidden=(32,), latent_dim=3, likelihood="gaussian",
                                      learn_sigma=True, beta=0.5)])
class VAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.latent_dim = config.latent_dim
        d = math.prod(config.image_shape)
        n_out = config.latent_dim * (1 if config.autoencoder else 2)
        c = config.num_classes  # a conditional VAE reads a one-hot label beside the image and beside the code
        self.encoder = mlp([d + c, *config.hidden, n_out])
        self.decoder = mlp([config.latent_dim + c, *reversed(config.hidden), d])
        if config.likelihood == "gaussian":
            self.log_sigma = nn.Parameter(torch.tensor(math.log(config.sigma)), requires_grad=config.learn_sigma)
        # the prior's location and scale: N(0, I) for the VAE, fitted to the codes for the AE
        self.register_buffer("latent_loc", torch.zeros(config.latent_dim))
        self.register_buffer("latent_scale", torch.ones(config.latent_dim))

    @property
    def capabilities(self) -> Capabilities:
        c = self.config
        return Capabilities(data_kind="image", data_shape=tuple(c.image_shape), latent="gaussian",
                            latent_dim=c.latent_dim, encode=True, draw=c.likelihood,
                            likelihoods=() if c.autoencoder or c.num_classes else ("elbo", "iw"),
                            validates=not c.num_classes, num_classes=c.num_classes)

    def sample(self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None
               ) -> torch.Tensor:
        """Mean images of n prior draws (n, C, H, W) in [0, 1]; a conditional VAE draws the n labels
        from the generator too, unless given."""
        z = self.prior_sample(n, generator)
        if self.config.num_classes and labels is None:
            labels = torch.randint(self.config.num_classes, (n,), generator=generator, device=z.device)
        return self.decode(z, labels)

    def _given(self, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """h with the labels' one-hot columns beside it (a conditional VAE; label 0 when not given)."""
        c = self.config.num_classes
        if not c:
            return h
        if labels is None:
            labels = torch.zeros(h.shape[0], dtype=torch.long, device=h.device)
        return torch.cat([h, F.one_hot(labels.to(h.device).long(), c).to(h.dtype)], 1)

    # ------------------------------------------------------------------ encoder
    def posterior(self, x: torch.Tensor, labels: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, C, H, W) -> mu (B, Z) and logvar (B, Z); logvar is None for the autoencoder."""
        h = self.encoder(self._given(x.flatten(1), labels))
        if self.config.autoencoder:
            return h, None
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Posterior means (B, Z): the point each image maps to."""
        return self.posterior(x, labels)[0]

    # ------------------------------------------------------------------ decoder
    def decoder_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self._given(z, labels))  # (B, D)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, Z) -> mean images (B, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.decoder(self._given(z, labels))).view(z.shape[0], *self.config.image_shape)

    def decode_sample(self, z: torch.Tensor, generator: torch.Generator | None = None,
                      labels: torch.Tensor | None = None) -> torch.Tensor:
        """Draw x ~ p(x|z) instead of taking its mean: Bernoulli pixels, or Gaussian noise."""
        mean = self.decode(z, labels)
        if self.config.likelihood == "bernoulli":
            return torch.bernoulli(mean, generator=generator)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return (mean + self.log_sigma.exp() * noise).clamp(0, 1)

    def log_px_given_z(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per example, from decoder logits (..., B, D) and data x (B, D) or images.

        Bernoulli: sum_d x_d l_d - softplus(l_d), which is -BCE(logits, x) written with one
        elementwise pass; leading sample dimensions of the logits broadcast over x.
        """
        x = x.flatten(1)  # (B, D)
        if self.config.likelihood == "bernoulli":
            return (logits * x).sum(-1) - F.softplus(logits).sum(-1)
        log_sigma = self.log_sigma.clamp(min=math.log(1e-3))
        err = (x - torch.sigmoid(logits)) / log_sigma.exp()
        return -(0.5 * err.pow(2) + log_sigma + 0.5 * math.log(2 * math.pi)).sum(-1)

    # ------------------------------------------------------------------ prior
    def prior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The prior's location and scale (Z,) each: N(0, I), or fitted to the AE's codes."""
        return self.latent_loc, self.latent_scale

    def prior_sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
                     ) -> torch.Tensor:
        """z ~ N(loc, (T scale)^2), (n, Z); temperature T = 1 is the prior itself."""
        eps = torch.randn(n, self.latent_dim, generator=generator, device=self.latent_loc.device)
        return self.latent_loc + temperature * self.latent_scale * eps  # (n, Z)

    def after_fit(self, train_x: torch.Tensor) -> None:
        """After training: the autoencoder's prior is fitted to its training codes."""
        self.fit_latent_prior(train_x)

    @torch.no_grad()
    def fit_latent_prior(self, x: torch.Tensor, batch_size: int = 2048) -> None:
        """Autoencoder only: set the prior to a diagonal Gaussian fitted to the codes of x."""
        if not self.config.autoencoder:
            return
        codes = torch.cat([self.encode(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        self.latent_loc.copy_(codes.mean(0))
        self.latent_scale.copy_(codes.std(0).clamp_min(1e-6))

    # ------------------------------------------------------------------ objective
    def loss_terms(self, x: torch.Tensor, generator: torch.Generator | None = None,
                   labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Batch means of the loss, -ELBO, reconstruction and KL, and the KL per dimension (a
        conditional VAE's bound -log p(x | y), with each image's label y)."""
        mu, logvar = self.posterior(x, labels)  # (B, Z) each
        if logvar is None:  # plain autoencoder: deterministic code, no KL
            recon = -self.log_px_given_z(self.decoder(mu), x)  # (B,)
            loss = recon.mean()
            return {"loss": loss, "recon": loss}
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps  # reparameterisation
        recon = -self.log_px_given_z(self.decoder_logits(z, labels), x)  # (B,)
        kl_dim = gaussian_kl(mu, logvar)  # (B, Z)
        kl = kl_dim.sum(1)  # (B,)
        return {
            "loss": (recon + self.config.beta * kl).mean(),
            "neg_elbo": (recon + kl).mean(),
            "recon": recon.mean(),
            "kl": kl.mean(),
            "kl_dim": kl_dim.mean(0),
        }

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameters(), lr=lr)]

    def train_step(self, batch: torch.Tensor, optimizers: list, generator: torch.Generator | None = None,
                   labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return minimize_terms(self, batch, optimizers, generator, **({"labels": labels} if labels is not None else {}))

    # ------------------------------------------------------------------ likelihoods
    def test_data(self, x: torch.Tensor) -> torch.Tensor:
        """The data likelihoods are reported on: binarized once (seed 0) for a Bernoulli decoder."""
        return metrics.binarized_test_set(x) if self.config.likelihood == "bernoulli" else x

    @torch.no_grad()
    def likelihoods(self, x: torch.Tensor, k: int = 1000, progress=None, **_) -> list[LikelihoodRecord]:
        """-ELBO (with its terms) and, for k > 0, the importance-weighted NLL on data x in [0, 1]."""
        if self.config.autoencoder or self.config.num_classes:  # no bound on p(x) (a conditional VAE bounds p(x | y))
            return []
        x = self.test_data(x)
        settings = {"binarization_seed": 0} if self.config.likelihood == "bernoulli" else {}
        terms = metrics.elbo_metrics(self, x)
        out = [LikelihoodRecord("elbo", round(terms["neg_elbo"], 3), None, settings,
                                {"recon": round(terms["recon"], 3), "kl": round(terms["kl"], 3)}, len(x))]
        if k > 0:
            r = metrics.iw_nll(self, x, k=k, progress=progress)
            out.append(LikelihoodRecord("iw", round(r["nll"], 3), round(r["stderr"], 3),
                                        settings | {"k": k}, {}, len(x)))
        return out
