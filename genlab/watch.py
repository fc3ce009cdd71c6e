"""Watching a generator learn: a film of fixed-noise samples, and toy-data measures over time.

Both take explicit seeds so frames from different runs (and steps) are comparable.
"""
from __future__ import annotations

import torch

from . import metrics
from .data import toy2d
from .models.base import device_of, eval_mode, sample


class Film:
    """A model's samples recorded during training: the same draw at every frame, and a fresh one beside it.

    The fixed frame is what makes a film: for a Gaussian latent the same noise batch z is
    decoded at every step; for a chain sampler (RBM Gibbs, EBM Langevin) the chains start from
    the same noise and use the same random numbers at every step (a fixed chain), so what
    changes between frames is the model alone. The fresh frame draws new noise each time
    (seed + 1 + frame index), to show the fixed batch is not a lucky one. Frames are uint8
    images (F, n, C, H, W), or float points (F, n, 2) for 2-d data.
    """

    def __init__(self, model, n: int = 64, seed: int = 0, fresh: bool = True):
        self.device = device_of(model)
        self.seed, self.n, self.fresh = seed, n, fresh
        caps = model.capabilities
        self.kind = "fixed noise" if caps.gaussian_latent else "fixed chain"
        # the decoded noise batch of a Gaussian latent (GAN Live draws its arrows from it)
        self.z = model.prior_sample(n, self._gen(seed)) if caps.gaussian_latent else None
        self.steps: list[int] = []
        self.frames: list[torch.Tensor] = []
        self.fresh_frames: list[torch.Tensor] = []

    def _gen(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(seed)

    def _draw(self, model, seed: int, z: torch.Tensor | None) -> torch.Tensor:
        if z is not None or model.capabilities.gaussian_latent:
            with eval_mode(model), torch.no_grad():
                return model.decode(z if z is not None else model.prior_sample(self.n, self._gen(seed)))
        return sample(model, self.n, self._gen(seed))

    @staticmethod
    def _keep(model, imgs: torch.Tensor) -> torch.Tensor:
        if not model.capabilities.images:
            return imgs.float().cpu()  # (n, 2) points
        return (imgs.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu()  # (n, C, H, W)

    def capture(self, model, step: int) -> torch.Tensor:
        """Record the fixed (and fresh) samples at `step`; returns the fixed ones in the data range."""
        imgs = self._draw(model, self.seed, self.z)
        self.steps.append(step)
        self.frames.append(self._keep(model, imgs))
        if self.fresh:
            self.fresh_frames.append(self._keep(model, self._draw(model, self.seed + len(self.steps), None)))
        return imgs

    def tensor(self) -> torch.Tensor:
        """The fixed frames stacked: (F, n, C, H, W) uint8 images, or (F, n, 2) float points."""
        return torch.stack(self.frames) if self.frames else torch.zeros(0, dtype=torch.uint8)

    def fresh_tensor(self) -> torch.Tensor:
        """The fresh frames stacked (as `tensor`); empty when the film keeps none."""
        return torch.stack(self.fresh_frames) if self.fresh_frames else torch.zeros(0, dtype=torch.uint8)

    def card(self) -> dict:
        """What a checkpoint card says of the film (its tensors are `film` and `film_fresh`)."""
        return {"steps": list(self.steps), "seed": self.seed, "n": self.n, "kind": self.kind,
                "fresh": bool(self.fresh_frames)}

    def restore(self, card: dict, frames: torch.Tensor, fresh: torch.Tensor | None) -> None:
        """Continue a checkpoint's film (its card section and tensors)."""
        steps = list(card.get("steps", []))
        n = min(len(frames), len(steps)) if frames.dim() in (3, 5) else 0  # frames and steps in pairs
        self.frames, self.steps = list(frames[:n].unbind(0)), steps[:n]
        self.fresh_frames = list(fresh[:n].unbind(0)) if fresh is not None and len(fresh) >= n > 0 else []
        self.fresh = self.fresh and (not self.frames or bool(self.fresh_frames))


FixedNoiseFilm = Film  # the name GAN code used first


@torch.no_grad()
def toy_measures(model, toy: str, n: int = 2500, seed: int = 0, std: float = 0.02) -> dict:
    """Modes covered and high-quality fraction (ring8 only), KL and JS against fresh real data."""
    with eval_mode(model):
        fake = model.sample(n, torch.Generator(device=device_of(model)).manual_seed(seed))
    real = toy2d(toy, n, seed=seed + 1)
    out = metrics.grid_divergences(real, fake.cpu(), extent=4.5 if toy == "checkerboard" else 3.0)
    if toy == "ring8":
        cov = metrics.mode_coverage(fake, metrics.ring_centers(), std)
        out.update(modes=cov["modes"], high_quality=cov["high_quality"])
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}
