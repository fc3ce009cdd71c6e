"""Markov chains for energy models, shared by every family that samples by a chain (the RBM's
Gibbs sweeps, an EBM's Langevin steps): run a transition many times, keep a frame every
`every` steps with its energy, and optionally hold some of the variables fixed (clamp-and-fill).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

Transition = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def run_chain(step: Transition, energy: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, steps: int,
              every: int = 1, clamp: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`steps` transitions from x0 (B, ...).

    Args:
        step: state (B, D) -> (next state, what to show of it), e.g. a Gibbs sweep's binary v and p(v | h).
        energy: shown state (B, D) -> energy (B,).
        x0: the start, in data layout.
        every: keep a frame every this many steps (the start is frame 0).
        clamp: 1 where the state is held at x0's values (broadcast to x0's shape).
    Returns:
        frames (F, B, ...) in x0's layout and their energies (F, B).
    """
    shape = x0.shape
    start = x0.flatten(1)
    keep = None if clamp is None else clamp.expand(shape).flatten(1).bool()
    x = start
    frames, energies = [x0], [energy(start)]
    for s in range(1, steps + 1):
        x, shown = step(x)
        if keep is not None:
            x = torch.where(keep, start, x)
            shown = torch.where(keep, start, shown)
        if s % every == 0:
            frames.append(shown.view(shape))
            energies.append(energy(shown))
    return torch.stack(frames), torch.stack(energies)


def langevin_step(energy: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, step_size: float, noise: float,
                  generator: torch.Generator | None = None, bounds: tuple[float, float] | None = (0.0, 1.0),
                  grad_clip: float | None = None, textbook: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One Langevin step on an energy:  x <- x - eps * dE/dx + sigma * N(0, I), clamped to `bounds`.

    textbook: sigma = sqrt(2 eps), the discretised Langevin diffusion whose stationary law is
    p(x) ~ exp(-E(x)) as eps -> 0. Otherwise `noise` is sigma itself: the large-step, small-noise
    setting that trains EBMs well in practice (Du & Mordatch, 2019), a noisy gradient descent
    that does not sample exp(-E) exactly. grad_clip clamps each coordinate of dE/dx (not in the
    textbook setting, whose claim would not hold with a clipped drift).
    Works under no_grad (it turns gradients on for x alone); returns (x', E(x) before the step).
    """
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        e = energy(xr)
        (g,) = torch.autograd.grad(e.sum(), xr)
    if grad_clip is not None and not textbook:  # clipping the drift would change the stationary law
        g = g.clamp(-grad_clip, grad_clip)
    sigma = math.sqrt(2 * step_size) if textbook else noise
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    out = x.detach() - step_size * g + sigma * z
    if bounds is not None:
        out = out.clamp(*bounds)
    return out, e.detach()
