"""An energy-based model on images, sampled by Langevin dynamics (Du & Mordatch, "Implicit
generation and modeling with energy-based models", 2019).

A convolutional network gives every image x in [0, 1]^D a scalar energy E(x); the model is
p(x) = exp(-E(x)) / Z, low energy meaning likely. Z is never computed. Training contrasts data
with samples of the model: the gradient of the log-likelihood is -dE(x_data) + E_model[dE(x)],
so the loss is

    E(x_data) - E(x_sample) + alpha * (E(x_data)^2 + E(x_sample)^2)

(the second term keeps energies near zero). The samples come from short Langevin chains,

    x <- clamp(x - eps * dE/dx + sigma * noise, 0, 1),

started from a replay buffer of earlier samples (about 5 % of each batch restarted from
uniform noise), so chains keep improving across updates without running long each time.
Adam with beta1 = 0 and the weights' gradients clipped. Samples for the user come from fresh
noise chains of a fixed, stated length (`sample_steps`), never from the buffer.

With no hidden variables the energy is also the free energy, so `free_energy(x) = E(x)` and
every view written for energy models reads it the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..samplers import langevin_step, run_chain
from .base import Capabilities, Curves, Preset, Series, descend, images_only, option, register


@dataclass
class EBMConfig:
    data_shape: tuple[int, ...] = option((1, 28, 28), "image shape (C, H, W)", cli=False)
    channels: tuple[int, ...] = option((32, 64, 64), "widths of the stride-2 convolutions, e.g. 32,64,64")
    hidden: int = option(64, "the dense layer before the energy")
    alpha: float = option(0.1, "weight of the energy regulariser")
    steps: int = option(60, "Langevin steps per training update (K)", flag="langevin-steps")
    step_size: float = option(10.0, "Langevin step size eps")
    noise: float = option(0.005, "Langevin noise sigma (ignored when textbook)")
    grad_clip: float = option(0.03, "per-pixel clamp of dE/dx in a Langevin step")
    textbook: bool = option(False, "sigma = sqrt(2 eps): the discretised Langevin diffusion")
    buffer_size: int = option(10_000, "replay buffer size")
    reinit: float = option(0.05, "share of each batch's chains restarted from uniform noise")
    data_noise: float = option(0.005, "Gaussian noise added to data in the loss (smooths the energy at the data)")
    sample_steps: int = option(256, "Langevin steps from fresh noise when sampling")
    max_norm: float = option(0.1, "the weights' gradient norm clip")

    def __post_init__(self):
        self.data_shape = tuple(self.data_shape)
        self.channels = tuple(self.channels)
        if len(self.data_shape) != 3:
            raise ValueError("an EBM here models images (C, H, W)")
        if not self.channels or min(self.channels) < 1 or self.hidden < 1:
            raise ValueError("channels and hidden must be positive")
        if self.steps < 1 or self.sample_steps < 1 or self.buffer_size < 1:
            raise ValueError("steps, sample_steps and buffer_size must be >= 1")
        if not (0 <= self.reinit <= 1) or self.step_size <= 0 or self.noise < 0 or self.alpha < 0:
            raise ValueError("0 <= reinit <= 1, step_size > 0, noise >= 0, alpha >= 0")


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


def _curves(cfg: EBMConfig) -> Curves:
    return Curves(epoch=(), epoch_unit="energy",
                  steps=(Series((("e_real", "E(data)", "#1f77b4"), ("e_fake", "E(Langevin samples)", "#d62728")),
                                "energy"),
                         Series((("cd", "E(data) − E(samples)", "#2ca02c"),), "energy gap")),
                  note="The energy of the data batch and of the Langevin samples from the replay buffer. Training "
                       "pushes the first down and the second up; the gap hovers near zero once the samples look like "
                       "data. Neither is a likelihood: an EBM's log Z is unknown.")


def _recipe(opts: dict, shape: tuple[int, ...], dataset: str) -> tuple[EBMConfig, dict]:
    """An EBM on grey images in [0, 1], Adam (beta1 = 0) at 1e-4, batches of 128."""
    images_only(shape, dataset, "an EBM")
    return EBMConfig(data_shape=shape, **opts), {"lr": 1e-4, "batch_size": 128, "binarize": False}


@register("ebm", EBMConfig, label=lambda cfg: "EBM (Langevin)", make_config=_recipe,
          presets={"ebm": Preset(help="energy-based model sampled by Langevin dynamics")},
          describe=lambda cfg: (f"energy-based model, a {len(cfg.channels)}-layer convolutional energy, sampled by "
                                f"{cfg.sample_steps} Langevin steps from noise"),
          curves=_curves,
          names={"e_real": "E(data)", "e_fake": "E(samples)", "cd": "energy gap", "loss": "loss"},
          examples=lambda: [EBMConfig(data_shape=(1, 8, 8), channels=(8, 16), hidden=16, steps=5, buffer_size=64,
                                      sample_steps=10)],
          progress_key="cd")
class EBM(nn.Module):
    def __init__(self, config: EBMConfig):
        super().__init__()
        self.config = config
        c, h, w = config.data_shape
        layers: list[nn.Module] = []
        k = 5
        for out in config.channels:
            layers += [nn.Conv2d(c, out, k, stride=2, padding=k // 2), Swish()]
            c, h, w, k = out, (h + 1) // 2, (w + 1) // 2, 3
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, config.hidden), Swish(),
                                  nn.Linear(config.hidden, 1))
        self.buffer: torch.Tensor | None = None  # the replay buffer: state, not weights

    @property
    def capabilities(self) -> Capabilities:
        cfg = self.config
        return Capabilities(data_kind="image", data_shape=cfg.data_shape, latent="none", sampler="langevin",
                            chain_length=cfg.sample_steps, sample_needs_grad=True, energy=True)

    # -- the energy -------------------------------------------------------------------
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) per image, (B,), for x (B, C, H, W) or (B, D) in [0, 1]."""
        x = x.view(-1, *self.config.data_shape)
        return self.head(self.features(2 * x - 1)).squeeze(1)

    def free_energy(self, x: torch.Tensor) -> torch.Tensor:
        """With no hidden units the free energy is the energy."""
        return self.energy(x)

    # -- Langevin ----------------------------------------------------------------------
    def chain_settings(self) -> dict:
        """The keyword settings `chain` takes, at the values the model was trained with."""
        cfg = self.config
        return {"step_size": cfg.step_size, "noise": cfg.noise, "textbook": cfg.textbook}

    def langevin(self, x: torch.Tensor, steps: int, generator: torch.Generator | None = None,
                 step_size: float | None = None, noise: float | None = None, textbook: bool | None = None
                 ) -> torch.Tensor:
        cfg = self.config
        eps = cfg.step_size if step_size is None else step_size
        sigma = cfg.noise if noise is None else noise
        tb = cfg.textbook if textbook is None else textbook
        for _ in range(steps):
            x, _ = langevin_step(self.energy, x, eps, sigma, generator, (0.0, 1.0), cfg.grad_clip, tb)
        return x

    def chain(self, x0: torch.Tensor, steps: int, every: int = 1, generator: torch.Generator | None = None,
              clamp: torch.Tensor | None = None, step_size: float | None = None, noise: float | None = None,
              textbook: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A Langevin chain from x0 (B, C, H, W): frames every `every` steps (F, B, C, H, W) and their
        energies (F, B). Where `clamp` is 1 the pixels stay at x0's values (inpainting)."""
        cfg = self.config
        eps = cfg.step_size if step_size is None else step_size
        sigma = cfg.noise if noise is None else noise
        tb = cfg.textbook if textbook is None else textbook

        def step(x):
            nxt, _ = langevin_step(self.energy, x, eps, sigma, generator, (0.0, 1.0), cfg.grad_clip, tb)
            return nxt, nxt

        with torch.no_grad():
            return run_chain(step, self.energy, x0, steps, every, clamp)

    def noise_like(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        dev = self.head[-1].weight.device
        return torch.rand(n, *self.config.data_shape, generator=generator, device=dev)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`sample_steps` Langevin steps from uniform noise (fresh chains, not the buffer)."""
        with torch.no_grad():
            return self.langevin(self.noise_like(n, generator), self.config.sample_steps, generator)

    # -- the replay buffer ----------------------------------------------------------------
    def draw_from_buffer(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n chain starts: round(reinit * n) fresh uniform noise, the rest from the buffer; and
        the buffer slots they go back to."""
        cfg = self.config
        dev = self.head[-1].weight.device
        if self.buffer is None or self.buffer.device != dev:
            self.buffer = torch.rand(cfg.buffer_size, *cfg.data_shape, generator=generator, device=dev)
        idx = torch.randint(0, len(self.buffer), (n,), generator=generator, device=dev)
        x = self.buffer[idx].clone()
        fresh = int(round(cfg.reinit * n))
        if fresh:
            x[:fresh] = self.noise_like(fresh, generator)
        return x, idx

    # -- learning ---------------------------------------------------------------------------
    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.parameters(), lr=lr, betas=(0.0, 0.999))]

    def train_step(self, batch: torch.Tensor, optimizers: list, generator: torch.Generator | None = None
                   ) -> dict[str, torch.Tensor]:
        (opt,) = optimizers
        cfg = self.config
        x0, idx = self.draw_from_buffer(len(batch), generator)
        with torch.no_grad():
            x_neg = self.langevin(x0, cfg.steps, generator)
            self.buffer[idx] = x_neg
        noise = torch.randn(batch.shape, generator=generator, device=batch.device, dtype=batch.dtype)
        x_pos = (batch + cfg.data_noise * noise).clamp(0, 1)
        e = self.energy(torch.cat([x_pos, x_neg]))
        e_pos, e_neg = e[: len(batch)], e[len(batch):]
        loss = e_pos.mean() - e_neg.mean() + cfg.alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
        descend(opt, loss, cfg.max_norm)
        return {"loss": loss.detach(), "e_real": e_pos.mean().detach(), "e_fake": e_neg.mean().detach(),
                "cd": (e_pos.mean() - e_neg.mean()).detach()}

    def training_state(self) -> dict[str, torch.Tensor]:
        """The first 256 images of the replay buffer, as 8-bit pixels: what the view shows."""
        if self.buffer is None:
            return {}
        return {"buffer": (self.buffer[:256].detach() * 255).round().to(torch.uint8)}

