"""Watching a generator learn: a film of fixed-noise samples, and toy-data measures over time.

Both take explicit seeds so frames from different runs (and steps) are comparable.
"""
from __future__ import annotations

import torch

from . import metrics
from .data import toy2d
from .models.base import eval_mode


class FixedNoiseFilm:
    """Decodes the same noise batch at chosen steps: frames (uint8) comparable across training."""

    def __init__(self, model, n: int = 64, seed: int = 0):
        g = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
        self.z = model.prior_sample(n, g)  # (n, Z), fixed for the whole run
        self.seed, self.steps, self.frames = seed, [], []

    @torch.no_grad()
    def capture(self, model, step: int) -> torch.Tensor:
        """Record and return the current samples (n, C, H, W) in [0, 1]."""
        with eval_mode(model):
            imgs = model.decode(self.z)
        self.steps.append(step)
        if not model.capabilities.images:
            self.frames.append(imgs.float().cpu())  # (n, 2) points
        else:
            self.frames.append((imgs.clamp(0, 1) * 255).round().to(torch.uint8).cpu())  # (n, C, H, W)
        return imgs

    def tensor(self) -> torch.Tensor:
        """All frames stacked: (F, n, C, H, W) uint8 images, or (F, n, 2) float points."""
        return torch.stack(self.frames) if self.frames else torch.zeros(0, dtype=torch.uint8)


@torch.no_grad()
def toy_measures(model, toy: str, n: int = 2500, seed: int = 0, std: float = 0.02) -> dict:
    """Modes covered and high-quality fraction (ring8 only), KL and JS against fresh real data."""
    with eval_mode(model):
        fake = model.sample(n, torch.Generator(device=next(model.parameters()).device).manual_seed(seed))
    real = toy2d(toy, n, seed=seed + 1)
    out = metrics.grid_divergences(real, fake.cpu(), extent=4.5 if toy == "checkerboard" else 3.0)
    if toy == "ring8":
        cov = metrics.mode_coverage(fake, metrics.ring_centers(), std)
        out.update(modes=cov["modes"], high_quality=cov["high_quality"])
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}
