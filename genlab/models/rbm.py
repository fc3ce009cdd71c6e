"""Restricted Boltzmann machine, Bernoulli visible and hidden units, in the lecture's notation:

    E(v, h) = -v^T W h - b^T v - c^T h             (W: V x H, b: visible bias, c: hidden bias)
    F(v)    = -b^T v - sum_j softplus(c_j + v^T W_j)        free energy, p(v) = exp(-F(v)) / Z
    p(h_j = 1 | v) = sigmoid(c_j + v^T W_j)        p(v_i = 1 | h) = sigmoid(b_i + W_i h)

Learning follows the log-likelihood gradient, a difference of moments between the data
(positive phase) and the model (negative phase): dW = <v h^T>_data - <v h^T>_model. The model's
moments come from k Gibbs steps started at the data (CD-k) or from persistent chains that
are never reset (PCD, Tieleman 2008). SGD with momentum and weight decay. With `centered`,
the gradient is taken in centred variables (v - mu, h - lam) with offsets tracking the data and
hidden means (Melchior et al., 2016); the model is stored as the equivalent plain RBM, so
every formula above holds for it as written.

Likelihood: log Z by annealed importance sampling from a base-rate model fitted to the data
means (Salakhutdinov & Murray, 2008), or exactly by enumerating the hidden states for H <= 20.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import metrics
from ..samplers import run_chain
from ..live import LiveRun
from ..watch import FixedNoiseFilm
from .base import Capabilities, Curves, Preset, LikelihoodRecord, Series, images_only, option, register

EXACT_MAX_HIDDEN = 20


def _sweeps(v: torch.Tensor, start: torch.Tensor, keep: Optional[torch.Tensor], W: torch.Tensor, b: torch.Tensor,
            c: torch.Tensor, u: torch.Tensor, first: int, every: int) -> Tuple[torch.Tensor, List[torch.Tensor],
                                                                                List[torch.Tensor]]:
    """len(u) Gibbs sweeps from v (B, V), numbered from `first`: binary h and v drawn as u < p, which
    is what torch.bernoulli(p) computes from the same uniforms. Returns the last v, and p(v | h)
    with its free energy for each sweep whose number is a multiple of `every`. A pure function
    of tensors, typed, so that a server can compile it (RBM.serving_hints)."""
    B, H, V = v.shape[0], W.shape[1], W.shape[0]
    frames: List[torch.Tensor] = []
    energies: List[torch.Tensor] = []
    for i in range(u.shape[0]):
        h = (u[i, :B * H].view(B, H) < torch.sigmoid(v @ W + c)).to(v.dtype)
        pv = torch.sigmoid(h @ W.T + b)
        v = (u[i, B * H:].view(B, V) < pv).to(v.dtype)
        if keep is not None:
            v = torch.where(keep, start, v)
            pv = torch.where(keep, start, pv)
        if (first + i) % every == 0:
            frames.append(pv)
            energies.append(-(pv @ b) - F.softplus(pv @ W + c).sum(1))
    return v, frames, energies


CHAIN_BLOCK = 1 << 20  # uniforms drawn at a time by a chain on the CPU (float32: 4 MB)


@dataclass
class RBMConfig:
    data_shape: tuple[int, ...] = option((1, 28, 28), "image shape (C, H, W)", cli=False)
    hidden: int = option(500, "binary hidden units")
    method: str = option("pcd", "contrastive divergence or persistent CD", choices=("cd", "pcd"))
    k: int = option(1, "Gibbs steps per negative phase")
    momentum: float = option(0.5, "SGD momentum")
    weight_decay: float = option(2e-4, "L2 weight decay on W")
    centered: bool = option(False, "the centred gradient (Melchior et al.), which trains markedly better")
    offset_rate: float = option(0.01, "centring offsets' moving-average rate")
    chains: int = option(100, "persistent chains (PCD)")
    sample_steps: int = option(1000, "Gibbs steps from noise when sampling")

    def __post_init__(self):
        self.data_shape = tuple(self.data_shape)
        if self.method not in ("cd", "pcd"):
            raise ValueError(f"method is 'cd' or 'pcd', not {self.method!r}")
        if self.hidden < 1 or self.k < 1 or self.chains < 1 or self.sample_steps < 1:
            raise ValueError("hidden, k, chains and sample_steps must be >= 1")
        if not (0 <= self.momentum < 1 and self.weight_decay >= 0 and 0 < self.offset_rate <= 1):
            raise ValueError("0 <= momentum < 1, weight_decay >= 0, 0 < offset_rate <= 1")


def _label(cfg: RBMConfig) -> str:
    return f"RBM ({'centred ' if cfg.centered else ''}{cfg.method.upper()}-{cfg.k})"


# ----------------------------------------------------------------------------- live training (Energy Models)
@dataclass
class RBMLiveSettings:
    """What the Energy Models page may change while an RBM trains live (applied when paused)."""

    lr: float = 0.01
    method: str = "pcd"
    k: int = 1
    momentum: float = 0.5
    batch_size: int = 100


class LiveRBM(LiveRun):
    """An RBM trained one CD-k / PCD-k update at a time on random batches of binarized data,
    with 64 fantasy chains advanced one Gibbs sweep at every snapshot: the samples the page shows."""

    keys = ("recon", "fe_gap", "pseudo_nll")
    actions = ("step",)
    kind = "energy"
    Settings = RBMLiveSettings

    def __init__(self, model, data: torch.Tensor, settings: RBMLiveSettings, seed: int = 0,
                 film_every: int | None = None, film: FixedNoiseFilm | None = None):
        """film: a fixed-chain film (watch.Film) recorded every `film_every` updates (default: one
        pass over the data at the batch size, an epoch)."""
        (self.opt,) = model.configure_optimizers(settings.lr)
        self._epoch_film = film_every is None  # one frame per epoch, whatever the batch size becomes
        film_every = film_every or max(1, len(data) // settings.batch_size)
        super().__init__(model, data, settings, seed, film, film_every)
        self.apply(settings)
        self.fantasy = torch.bernoulli(torch.full((64, data[0].numel()), 0.5, device=self.device), generator=self.gen)

    def apply(self, s: RBMLiveSettings) -> None:
        if s.method not in ("cd", "pcd") or s.k < 1 or s.lr <= 0:
            raise ValueError(f"bad RBM settings: {s}")
        self.settings = s
        if getattr(self, "_epoch_film", False):
            self.film_every = max(1, len(self.data) // s.batch_size)
        for grp in self.opt.param_groups:
            grp["lr"], grp["momentum"] = s.lr, s.momentum
        self.model.config.method, self.model.config.k = s.method, s.k

    def _update(self, action: str) -> tuple[dict[str, torch.Tensor], bool]:
        idx = torch.randint(0, len(self.data), (self.settings.batch_size,), generator=self.gen, device=self.device)
        batch = torch.bernoulli(self.data[idx], generator=self.gen)
        out = self.model.train_step(batch, [self.opt], self.gen)
        out["pseudo_nll"] = self.model.loss_terms(batch, self.gen)["pseudo_nll"]
        return out, True

    @torch.no_grad()
    def draw(self) -> dict:
        self.fantasy, pv = self.model.gibbs(self.fantasy, self.gen)
        shape = (-1, *self.model.config.data_shape)
        w = self.model.filters()
        strongest = w.flatten(1).norm(dim=1).argsort(descending=True)[:64]
        return {"samples": pv.view(shape).cpu(), "filters": w[strongest].cpu()}


def _recipe(opts: dict, shape: tuple[int, ...], dataset: str) -> tuple[RBMConfig, dict]:
    """An RBM on images, trained on dynamically binarized batches with SGD."""
    images_only(shape, dataset, "an RBM")
    return RBMConfig(data_shape=shape, **opts), {"lr": 0.01, "batch_size": 100, "binarize": True}


@register("rbm", RBMConfig, label=_label, make_config=_recipe,
          presets={"rbm": Preset(help="restricted Boltzmann machine (CD-k or PCD)")},
          describe=lambda cfg: (f"restricted Boltzmann machine, {cfg.hidden} binary hidden units, trained by "
                                f"{'persistent ' if cfg.method == 'pcd' else ''}contrastive divergence "
                                f"({cfg.method.upper()}-{cfg.k}{', centred' if cfg.centered else ''})"),
          curves=lambda cfg: Curves(epoch=("recon", "pseudo_nll"), epoch_unit="per image",
                                    steps=(Series((("recon", "reconstruction error", "#1f77b4"),), "squared error"),
                                           Series((("fe_gap", "F(data) − F(model samples)", "#d62728"),),
                                                  "free-energy gap"),
                                           Series((("pseudo_nll", "pseudo-NLL (one flipped pixel)", "#2ca02c"),),
                                                  "nats per image")),
                                    note="Reconstruction error of v -> h -> v (squared, summed over pixels) and the "
                                         "pseudo-negative log-likelihood (Besag) per image; neither is the likelihood, "
                                         "which needs log Z (AIS, on the Energy Models page)."),
          live=LiveRBM,
          metrics={"test_recon": "test reconstruction error", "test_pseudo_nll": "test pseudo-NLL (nats)"},
          names={"recon": "reconstruction error", "pseudo_nll": "pseudo-NLL", "fe_gap": "free-energy gap"},
          examples=lambda: [RBMConfig(data_shape=(1, 8, 8), hidden=16, chains=20, sample_steps=50),
                            RBMConfig(data_shape=(1, 8, 8), hidden=24, method="cd", k=2, centered=True,
                                      sample_steps=50)],
          progress_key="recon")
class RBM(nn.Module):
    sweeps = staticmethod(_sweeps)  # the chain's loop on the CPU (`chain`)
    serving_hints = {"compile": ("sweeps",)}  # a server may run `sweeps` compiled (genlab.serving)

    def __init__(self, config: RBMConfig):
        super().__init__()
        self.config = config
        v, h = math.prod(config.data_shape), config.hidden
        self.W = nn.Parameter(0.01 * torch.randn(v, h))
        self.b = nn.Parameter(torch.zeros(v))  # visible bias
        self.c = nn.Parameter(torch.zeros(h))  # hidden bias
        self.register_buffer("mu", torch.full((v,), 0.5))  # centring offsets (used when centred)
        self.register_buffer("lam", torch.full((h,), 0.5))
        self.chains: torch.Tensor | None = None  # PCD's persistent chains: state, not weights

    @property
    def capabilities(self) -> Capabilities:
        cfg = self.config
        return Capabilities(data_kind="image", data_shape=cfg.data_shape, latent="binary", latent_dim=cfg.hidden,
                            sampler="gibbs", chain_length=cfg.sample_steps,
                            likelihoods=("ais", "exact") if cfg.hidden <= EXACT_MAX_HIDDEN else ("ais",),
                            validates=True, energy=True, filters=True, reconstruct=True)

    # -- the conditionals and the free energy -------------------------------------
    def p_h(self, v: torch.Tensor) -> torch.Tensor:
        """p(h = 1 | v), (B, H)."""
        return torch.sigmoid(v @ self.W + self.c)

    def p_v(self, h: torch.Tensor) -> torch.Tensor:
        """p(v = 1 | h), (B, V)."""
        return torch.sigmoid(h @ self.W.T + self.b)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) per example, (B,), for v (B, V) or images (B, C, H, W)."""
        v = v.flatten(1)
        return -(v @ self.b) - F.softplus(v @ self.W + self.c).sum(1)

    def gibbs(self, v: torch.Tensor, generator: torch.Generator | None = None, steps: int = 1
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """`steps` Gibbs sweeps v -> h -> v; returns (binary v, p(v | h) of the last sweep)."""
        pv = v
        for _ in range(steps):
            h = torch.bernoulli(self.p_h(v), generator=generator)
            pv = self.p_v(h)
            v = torch.bernoulli(pv, generator=generator)
        return v, pv

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """v -> p(h | v) -> p(v | h) (mean-field, no sampling), in x's shape."""
        return self.p_v(self.p_h(x.flatten(1))).view_as(x)

    def filters(self) -> torch.Tensor:
        """Each hidden unit's weights as an image: (H, C, H, W)."""
        return self.W.T.reshape(self.config.hidden, *self.config.data_shape)

    def chain(self, v0: torch.Tensor, steps: int, every: int = 1, generator: torch.Generator | None = None,
              clamp: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A Gibbs chain from v0 (B, C, H, W): frames p(v | h) every `every` sweeps (F, B, C, H, W)
        and their free energies (F, B). Where `clamp` (C, H, W or B, C, H, W) is 1 the visible
        units are held at v0's values: the chain fills in the rest.

        On the CPU without gradients the sweeps run as one loop (`sweeps`) per block of steps
        from uniforms drawn ahead, with the same numbers as `run_chain` over `gibbs`."""
        if v0.device.type != "cpu" or torch.is_grad_enabled() and self.W.requires_grad:
            return run_chain(lambda v: self.gibbs(v, generator), self.free_energy, v0, steps, every, clamp)
        with torch.no_grad():
            return self._chain_blocks(v0, steps, every, generator, clamp)

    def chain_settings(self) -> dict:
        """A Gibbs chain takes no settings."""
        return {}

    def _chain_blocks(self, v0, steps, every, generator, clamp):
        shape = v0.shape
        start = v0.flatten(1).to(self.W.dtype)
        keep = None if clamp is None else clamp.expand(shape).flatten(1).bool()
        W, b, c = self.W.detach(), self.b.detach(), self.c.detach()
        B, (V, H) = start.shape[0], W.shape
        frames, energies = [v0], [self.free_energy(start)]
        v, done = start, 0
        block = max(1, min(steps, CHAIN_BLOCK // (B * (H + V))))  # uniforms of at most 4 MB at a time
        while done < steps:
            n = min(block, steps - done)
            # the uniforms torch.bernoulli would draw, in its order: each sweep's h (B, H), then its v (B, V)
            u = torch.rand(n, B * (H + V), generator=generator, dtype=W.dtype, device=W.device)
            v, f, e = self.sweeps(v, start, keep, W, b, c, u, done + 1, every)
            frames += [x.view(shape) for x in f]
            energies += e
            done += n
        return torch.stack(frames), torch.stack(energies)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`sample_steps` Gibbs sweeps from uniform noise; the last p(v | h), (n, C, H, W)."""
        dev = self.W.device
        v = torch.bernoulli(torch.full((n, self.W.shape[0]), 0.5, device=dev), generator=generator)
        _, pv = self.gibbs(v, generator, self.config.sample_steps)
        return pv.view(n, *self.config.data_shape)

    # -- learning -----------------------------------------------------------------------
    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """SGD with momentum; weight decay on W only."""
        cfg = self.config
        return [torch.optim.SGD([{"params": [self.W], "weight_decay": cfg.weight_decay},
                                 {"params": [self.b, self.c], "weight_decay": 0.0}], lr=lr, momentum=cfg.momentum)]

    def _negative(self, v_data: torch.Tensor, generator) -> torch.Tensor:
        """The negative phase's visible states: k sweeps from the data (CD) or from the persistent chains."""
        cfg = self.config
        if cfg.method == "cd":
            return self.gibbs(v_data, generator, cfg.k)[0]
        if self.chains is None or self.chains.shape[1] != v_data.shape[1] or self.chains.device != v_data.device:
            self.chains = torch.bernoulli(torch.full((cfg.chains, v_data.shape[1]), 0.5, device=v_data.device),
                                          generator=generator)
        self.chains = self.gibbs(self.chains, generator, cfg.k)[0]
        return self.chains

    @torch.no_grad()
    def train_step(self, batch: torch.Tensor, optimizers: list, generator: torch.Generator | None = None
                   ) -> dict[str, torch.Tensor]:
        (opt,) = optimizers
        v0 = batch.flatten(1)
        ph0 = self.p_h(v0)
        vk = self._negative(v0, generator)
        phk = self.p_h(vk)
        if self.config.centered:
            mu, lam = self.mu, self.lam
        else:
            mu, lam = torch.zeros_like(self.mu), torch.zeros_like(self.lam)
        pos = (v0 - mu).T @ (ph0 - lam) / len(v0)  # <(v - mu)(h - lam)^T>_data
        neg = (vk - mu).T @ (phk - lam) / len(vk)
        d_b = (v0 - mu).mean(0) - (vk - mu).mean(0)
        d_c = (ph0 - lam).mean(0) - (phk - lam).mean(0)
        if self.config.centered:  # the centred gradient in the plain parametrisation (Melchior et al.)
            d_b, d_c = d_b - (pos - neg) @ lam, d_c - mu @ (pos - neg)
        self.W.grad, self.b.grad, self.c.grad = -(pos - neg), -d_b, -d_c  # SGD descends: minus the ascent
        opt.step()
        if self.config.centered:
            r = self.config.offset_rate
            self.mu.lerp_(v0.mean(0), r)
            self.lam.lerp_(ph0.mean(0), r)
        recon = (v0 - self.p_v(ph0)).pow(2).sum(1).mean()
        fe_gap = self.free_energy(v0).mean() - self.free_energy(vk).mean()
        return {"loss": recon, "recon": recon, "fe_gap": fe_gap}

    @torch.no_grad()
    def loss_terms(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Reconstruction error and a stochastic pseudo-NLL (one random pixel flipped per image)."""
        v = x.flatten(1)
        recon = (v - self.p_v(self.p_h(v))).pow(2).sum(1).mean()
        i = torch.randint(0, v.shape[1], (len(v),), generator=generator, device=v.device)
        flipped = v.clone()
        rows = torch.arange(len(v), device=v.device)
        flipped[rows, i] = 1 - flipped[rows, i]
        pnll = -v.shape[1] * F.logsigmoid(self.free_energy(flipped) - self.free_energy(v)).mean()
        return {"loss": recon, "recon": recon, "pseudo_nll": pnll}

    def training_state(self) -> dict[str, torch.Tensor]:
        """Non-weight state worth keeping with a checkpoint: PCD's persistent chains."""
        return {} if self.chains is None else {"chains": self.chains.detach()}

    # -- the partition function and the likelihood -------------------------------------------
    @torch.no_grad()
    def log_z_exact(self) -> float:
        """log Z by summing over all 2^H hidden states (H <= 20): sum_h exp(c^T h + sum_i softplus(b_i + W_i h))."""
        H = self.config.hidden
        if H > EXACT_MAX_HIDDEN:
            raise ValueError(f"exact log Z enumerates 2^H hidden states; H = {H} > {EXACT_MAX_HIDDEN}")
        W, b, c = self.W.double(), self.b.double(), self.c.double()
        states = itertools.product((0.0, 1.0), repeat=H)
        total = []
        while chunk := list(itertools.islice(states, 4096)):
            h = torch.tensor(chunk, dtype=torch.float64, device=W.device)  # (n, H)
            total.append(h @ c + F.softplus(h @ W.T + b).sum(1))
        return torch.logsumexp(torch.cat(total), 0).item()

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Exact log p(v) = -F(v) - log Z (B,) of binary images drawn from x's pixel probabilities
        (H <= 20, where log Z is enumerated)."""
        v = torch.bernoulli(x.flatten(1), generator=generator)  # (B, D) in {0, 1}
        return -self.free_energy(v) - self.log_z_exact()

    def bits_per_dim(self, nll_nats: torch.Tensor) -> torch.Tensor:
        """NLL in nats -> bits per binary pixel."""
        return nll_nats / (math.prod(self.config.data_shape) * math.log(2.0))

    @torch.no_grad()
    def ais_log_z(self, data_mean: torch.Tensor, chains: int = 100, betas: int = 10_000,
                  generator: torch.Generator | None = None, progress=None) -> dict:
        """log Z by annealed importance sampling from a base-rate RBM (W = 0, visible biases from
        the data means) through `betas` inverse temperatures, with `chains` independent runs.
        Returns log Z, its standard error (delta method on the weights) and the settings."""
        b_a = torch.logit(data_mean.flatten().clamp(0.001, 0.999)).to(self.W)  # the base rate
        H = self.config.hidden
        log_z_a = F.softplus(b_a).sum().item() + H * math.log(2.0)
        beta = torch.linspace(0, 1, betas, device=self.W.device)

        def log_p_star(v, bt):  # log p*_beta(v) = (1 - bt) b_a^T v + bt b^T v + sum_j softplus(bt (c + v^T W))
            return v @ ((1 - bt) * b_a + bt * self.b) + F.softplus(bt * (v @ self.W + self.c)).sum(1)

        v = torch.bernoulli(torch.sigmoid(b_a).expand(chains, -1).contiguous(), generator=generator)
        log_w = torch.zeros(chains, device=self.W.device)
        for k in range(1, betas):
            bt_prev, bt = beta[k - 1], beta[k]
            log_w += log_p_star(v, bt) - log_p_star(v, bt_prev)
            h = torch.bernoulli(torch.sigmoid(bt * (v @ self.W + self.c)), generator=generator)
            v = torch.bernoulli(torch.sigmoid((1 - bt) * b_a + bt * (self.b + h @ self.W.T)), generator=generator)
            if progress and (k % 500 == 0 or k == betas - 1):
                progress(k + 1, betas)  # inverse temperatures done
        log_w = log_w.double()
        log_mean = torch.logsumexp(log_w, 0) - math.log(chains)
        w = (log_w - log_w.max()).exp()
        rel = (w.std() / (math.sqrt(chains) * w.mean())).item()  # std error of mean(w) / mean(w)
        return {"log_z": log_z_a + log_mean.item(), "stderr": rel, "chains": chains, "betas": betas,
                "log_z_base": log_z_a}

    def test_data(self, x: torch.Tensor) -> torch.Tensor:
        """The binary data a Bernoulli RBM's likelihood is reported on: x binarized once, seed 0."""
        return metrics.binarized_test_set(x)

    @torch.no_grad()
    def likelihoods(self, x: torch.Tensor, k: int = 100, progress=None, betas: int = 10_000,
                    train_mean: torch.Tensor | None = None) -> list[LikelihoodRecord]:
        """Test log-likelihood per image, -F(v) - log Z, on x binarized once (seed 0), with log Z
        by AIS (k chains, `betas` temperatures; the base rate from `train_mean`, else x's mean)
        and exactly where H <= 20. The AIS record's stderr combines the spread over images and
        log Z's."""
        if k <= 0:
            return []  # no AIS asked for: the RBM has no cheaper bound to report
        v = self.test_data(x).flatten(1)
        fe = self.free_energy(v).double()
        g = torch.Generator(device=v.device).manual_seed(0)
        ais = self.ais_log_z(train_mean if train_mean is not None else v.mean(0), chains=k, betas=betas,
                             generator=g, progress=progress)
        nll = fe + ais["log_z"]
        err = math.sqrt((nll.std().item() / math.sqrt(len(v))) ** 2 + ais["stderr"] ** 2)
        out = [LikelihoodRecord("ais", round(nll.mean().item(), 3), round(err, 3),
                                {"chains": k, "betas": betas, "binarization_seed": 0, "log_z": round(ais["log_z"], 3),
                                 "log_z_stderr": round(ais["stderr"], 4), "base": "data means"}, {}, len(v))]
        if self.config.hidden <= EXACT_MAX_HIDDEN:
            exact = fe + self.log_z_exact()
            out.append(LikelihoodRecord("exact", round(exact.mean().item(), 3),
                                        round(exact.std().item() / math.sqrt(len(v)), 3), {}, {}, len(v)))
        return out
