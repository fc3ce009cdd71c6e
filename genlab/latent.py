"""Latent-space operations: mean/std scaling, interpolation, grids and planes.

All functions are pure tensor maths; randomness comes in through an explicit generator.
"""
from __future__ import annotations

import torch


def scale_vectors(latent_dim: int, scale_means: float, scale_stds: float) -> tuple[torch.Tensor, torch.Tensor]:
    """means = scale_means * linspace(-1, 1, Z); stds = |scale_stds * linspace(-1, 1, Z)|.

    Dimension i gets its own mean and spread, so the two sliders sweep the latent
    Gaussian from one end of the code to the other.
    """
    ramp = torch.linspace(-1.0, 1.0, latent_dim)
    return scale_means * ramp, (scale_stds * ramp).abs()


def scaled_latents(n: int, latent_dim: int, scale_means: float, scale_stds: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """n codes drawn from N(means, stds^2) with the means and stds of `scale_vectors`. (n, Z)"""
    means, stds = scale_vectors(latent_dim, scale_means, scale_stds)
    eps = torch.randn(n, latent_dim, generator=generator)
    return means + stds * eps


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight line: (1 - t) z0 + t z1 for each t. z (Z,), t (T,) -> (T, Z)"""
    t = t.reshape(-1, 1)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation (Shoemake): along the great circle, with the norm blended linearly.

    Gaussian codes concentrate near a sphere, and a straight line between two of them passes
    closer to the origin than typical codes; slerp stays at typical norms. Falls back to
    lerp when z0 and z1 are (anti)parallel or zero. z (Z,), t (T,) -> (T, Z)
    """
    t = t.reshape(-1, 1)
    n0, n1 = z0.norm(), z1.norm()
    if n0 < eps or n1 < eps:
        return lerp(z0, z1, t)
    u0, u1 = z0 / n0, z1 / n1
    omega = torch.arccos((u0 @ u1).clamp(-1.0, 1.0))
    if torch.sin(omega).abs() < 1e-4:
        return lerp(z0, z1, t)
    direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / torch.sin(omega)
    return direction * ((1 - t) * n0 + t * n1)


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int, method: str = "slerp") -> torch.Tensor:
    """`steps` codes from z0 to z1 inclusive. (steps, Z)"""
    if steps < 2:
        raise ValueError("an interpolation needs at least 2 steps")
    t = torch.linspace(0.0, 1.0, steps, dtype=z0.dtype, device=z0.device)
    if method == "lerp":
        return lerp(z0, z1, t)
    if method == "slerp":
        return slerp(z0, z1, t)
    raise ValueError(f"method must be 'lerp' or 'slerp', not {method!r}")


def gaussian_ticks(n: int, p_lo: float = 0.05, p_hi: float = 0.95) -> torch.Tensor:
    """n values evenly spaced in probability, through the inverse standard-normal CDF."""
    if not 0.0 < p_lo < p_hi < 1.0:
        raise ValueError(f"need 0 < p_lo < p_hi < 1, got {p_lo}, {p_hi}")
    return torch.special.ndtri(torch.linspace(p_lo, p_hi, n, dtype=torch.float64)).float()


def plane_grid(center: torch.Tensor, u: torch.Tensor, v: torch.Tensor, n: int,
               p_lo: float = 0.05, p_hi: float = 0.95) -> torch.Tensor:
    """An n x n grid of codes center + a u + b v, with a and b Gaussian ticks.

    Row-major with b decreasing down the rows, so the picture reads like a plot
    (up = +v, right = +u). u and v carry the scale (a standard deviation each). (n*n, Z)
    """
    ticks = gaussian_ticks(n, p_lo, p_hi).to(center.device)
    b, a = torch.meshgrid(ticks.flip(0), ticks, indexing="ij")  # (n, n) each
    return center + a.reshape(-1, 1) * u + b.reshape(-1, 1) * v


def manifold_grid(n: int, p_lo: float = 0.05, p_hi: float = 0.95,
                  loc: torch.Tensor | None = None, scale: torch.Tensor | None = None) -> torch.Tensor:
    """The classic 2-d manifold grid of Kingma & Welling: ticks through the inverse CDF of
    N(loc, scale^2) in each of the two latent dimensions. (n*n, 2)"""
    loc = torch.zeros(2) if loc is None else loc
    scale = torch.ones(2) if scale is None else scale
    u = torch.stack([scale[0], torch.zeros_like(scale[0])])
    v = torch.stack([torch.zeros_like(scale[1]), scale[1]])
    return plane_grid(loc, u, v, n, p_lo, p_hi)


def principal_directions(codes: torch.Tensor, k: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean (Z,), top-k unit directions (k, Z) and the standard deviation along each (k,)."""
    mean = codes.mean(0)
    centered = codes - mean
    _, s, vh = torch.linalg.svd(centered, full_matrices=False)
    std = s[:k] / max(1, len(codes) - 1) ** 0.5
    return mean, vh[:k], std


def axis_plane(center: torch.Tensor, i: int, j: int, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Direction vectors for the plane through latent dimensions i and j (scaled)."""
    u = torch.zeros_like(center)
    v = torch.zeros_like(center)
    u[i], v[j] = scale[i], scale[j]
    return u, v


def encode_all(model, x: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 250) -> torch.Tensor:
    """Codes (N, Z) of a data set in batches; a conditional model encodes each image with its
    own label (when the labels are known)."""
    cond = bool(model.capabilities.num_classes) and labels is not None
    return torch.cat([model.encode(x[i:i + batch_size], **({"labels": labels[i:i + batch_size]} if cond else {}))
                      for i in range(0, len(x), batch_size)])
