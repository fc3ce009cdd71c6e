"""Probabilistic PCA as a genlab family: a plugin, registered through the entry-point group
`genlab.families` (see pyproject.toml), with no file of genlab changed.

x = W z + mu + sigma * eps, z ~ N(0, I_k), eps ~ N(0, I_D). The marginal is Gaussian,
x ~ N(mu, C) with C = W W^T + sigma^2 I, and its log-density is exact; with M = W^T W + sigma^2 I_k
(k x k) the Woodbury identity gives C^-1 = (I - W M^-1 W^T) / sigma^2 and
log|C| = (D - k) log sigma^2 + log|M|, so a step costs O(B D k), never a D x D matrix.
The posterior mean of z is M^-1 W^T (x - mu) (Tipping & Bishop 1999).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from genlab.models.base import Capabilities, Curves, Preset, minimize_terms, option, register


@dataclass(frozen=True)
class PPCAConfig:
    data_shape: tuple[int, ...] = option((1, 28, 28), "the data's shape", cli=False)
    latent_dim: int = option(8, "principal directions: the latent's size")
    init_sigma: float = option(0.3, "the observation noise's standard deviation at the start")


class PPCA(nn.Module):
    def __init__(self, config: PPCAConfig):
        super().__init__()
        self.config = config
        d = math.prod(config.data_shape)
        self.W = nn.Parameter(0.01 * torch.randn(d, config.latent_dim))
        self.mu = nn.Parameter(torch.full((d,), 0.5) if len(config.data_shape) == 3 else torch.zeros(d))
        self.log_sigma = nn.Parameter(torch.tensor(math.log(config.init_sigma)))

    @property
    def capabilities(self) -> Capabilities:
        image = len(self.config.data_shape) == 3
        return Capabilities(data_kind="image" if image else "points", data_shape=tuple(self.config.data_shape),
                            data_range=(0.0, 1.0) if image else None, latent="gaussian",
                            latent_dim=self.config.latent_dim, encode=True, validates=True)

    def _m(self) -> torch.Tensor:
        """M = W^T W + sigma^2 I (k x k)."""
        k = self.config.latent_dim
        return self.W.T @ self.W + torch.exp(2 * self.log_sigma) * torch.eye(k, device=self.W.device)

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) in nats, (B,)."""
        r = x.flatten(1) - self.mu  # (B, D)
        d, k = r.shape[1], self.config.latent_dim
        s2 = torch.exp(2 * self.log_sigma)
        m = self._m()
        chol = torch.linalg.cholesky(m)
        wr = r @ self.W  # (B, k)
        sol = torch.cholesky_solve(wr.T, chol).T  # M^-1 W^T r
        quad = (r.pow(2).sum(1) - (wr * sol).sum(1)) / s2
        logdet = (d - k) * torch.log(s2) + 2 * torch.log(torch.diagonal(chol)).sum()
        return -0.5 * (d * math.log(2 * math.pi) + logdet + quad)

    def loss_terms(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        nll = -self.log_marginal(x).mean()
        return {"loss": nll / math.prod(self.config.data_shape), "nll": nll, "sigma": torch.exp(self.log_sigma)}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        wr = (x.flatten(1) - self.mu) @ self.W
        return torch.linalg.solve(self._m(), wr.T).T

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x = z @ self.W.T + self.mu
        if self.capabilities.data_range is not None:
            x = x.clamp(*self.capabilities.data_range)
        return x.view(-1, *self.config.data_shape)

    def prior(self) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.zeros(self.config.latent_dim, device=self.W.device)
        return z, z + 1

    def prior_sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        return temperature * torch.randn(n, self.config.latent_dim, generator=generator, device=self.W.device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.decode(self.prior_sample(n, generator))

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameters(), lr=lr)]

    def train_step(self, batch, optimizers, generator=None):
        return minimize_terms(self, batch, optimizers, generator)


register("ppca", PPCAConfig, label=lambda cfg: "PPCA",
         describe=lambda cfg: f"probabilistic PCA with {cfg.latent_dim} directions (a plugin)",
         curves=lambda cfg: Curves(epoch=("nll",), epoch_unit="nats per example (a density)"),
         names={"nll": "−log p(x)", "sigma": "σ"},
         presets={"ppca": Preset(help="probabilistic PCA (Tipping & Bishop 1999), from the example plugin")},
         examples=lambda: [PPCAConfig(data_shape=(1, 8, 8), latent_dim=3), PPCAConfig(data_shape=(2,), latent_dim=1)],
         )(PPCA)
