"""Markov chains for energy models, shared by every family that samples by a chain (the RBM's
Gibbs sweeps, an EBM's Langevin steps): run a transition many times, keep a frame every
`every` steps with its energy, and optionally hold some of the variables fixed (clamp-and-fill).
"""
from __future__ import annotations

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
