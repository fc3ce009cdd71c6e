"""Meaningful directions in a Gaussian latent: principal directions and attribute vectors.

Principal directions of a model that encodes are those of its codes of the test set (PCA on
the posterior means). A model that does not encode (a GAN) gets GANSpace's directions
(Härkönen et al. 2020): PCA on the features of N generated samples (its first layer's
activations where the model offers `features(z)`, else the samples themselves), then each
principal component's coordinates regressed onto z by least squares, which carries the
component back into the latent space.

An attribute vector is the mean code of the examples of one label minus that of another
("towards a 3": mean code of 3s minus the mean code of all the others, or of one other digit),
from encoded test digits or from generated samples labelled by a classifier.

Every direction is returned as a unit vector; moving a code z along direction u by t gives
z + t u, exactly (`move`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Directions:
    """k unit directions (k, Z) in the latent space, what each explains, and how they were found.

    explained: the fraction of the variance each principal component explains (in the codes, or
        in the features the GANSpace regression started from). spread: the standard deviation of
        the codes along each direction, so sliders can move in units a person can read.
    """

    vectors: torch.Tensor
    explained: torch.Tensor
    spread: torch.Tensor
    source: str  # "codes of the test set" or "features of generated samples"


def principal(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PCA of the rows of x (N, D): the first k unit principal axes (k, D), the fraction of the
    total variance each explains (k,), and the mean (D,). Signs are fixed so that each axis's
    largest absolute coordinate is positive (the SVD's sign is arbitrary).

    Computed from the eigenvectors of the smaller Gram matrix, in double: X^T X (D, D) when
    there are more rows than columns, else X X^T (N, N), whose eigenvectors U give the axes
    X^T U / s. A GAN's 2,000 x 12,544 features take a 2,000 x 2,000 eigenproblem instead of a
    full SVD (seconds instead of tens of seconds on a 2-core CPU)."""
    mean = x.double().mean(0)
    wide = x.shape[1] > x.shape[0]
    starts = range(0, x.shape[1], 1024)
    block = lambda j: x[:, j:j + 1024].double() - mean[j:j + 1024]  # noqa: E731 - (N, <=1024), centred
    if wide:  # X X^T in double, a block of columns at a time: no double copy of a large X is kept
        var, vecs = torch.linalg.eigh(sum((b := block(j)) @ b.T for j in starts))  # ascending
    else:
        xc = x.double() - mean  # (N, D)
        var, vecs = torch.linalg.eigh(xc.T @ xc)
    var, vecs = var.flip(0).clamp_min(0), vecs.flip(1)
    k = min(k, int((var > var[0] * 1e-12).sum()) if var[0] > 0 else 1)
    if wide:  # the axes X^T U / s, a block of columns at a time
        axes = torch.cat([block(j).T @ vecs[:, :k] for j in starts]).T / var[:k].sqrt().clamp_min(1e-300)[:, None]
    else:
        axes = vecs[:, :k].T  # (k, D)
    axes = axes / axes.norm(dim=1, keepdim=True).clamp_min(1e-300)
    flip = torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
    axes = axes * flip
    return axes.float(), (var[:k] / var.sum().clamp_min(1e-300)).float(), mean.float()


def from_codes(codes: torch.Tensor, k: int = 10) -> Directions:
    """Principal directions of a model's codes (N, Z) of the test set."""
    axes, explained, mean = principal(codes, k)
    spread = ((codes.float() - mean) @ axes.T).std(0)
    return Directions(axes, explained, spread, "codes of the test set")


def ganspace(z: torch.Tensor, features: torch.Tensor, k: int = 10) -> Directions:
    """GANSpace: PCA on the features (N, F) of the samples decoded from z (N, Z), then each
    component's coordinates c (N, k) regressed onto z: the least-squares U (k, Z) with c U ~ z,
    whose rows (normalised) are the latent directions."""
    axes, explained, mean = principal(features, k)
    c = (features.float() - mean) @ axes.T  # (N, k)
    u = torch.linalg.lstsq(c.double(), (z.double() - z.double().mean(0))).solution  # (k, Z)
    u = u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)
    spread = (z.float() @ u.float().T).std(0)
    return Directions(u.float(), explained, spread, "features of generated samples")


def attribute(codes: torch.Tensor, labels: torch.Tensor, a: int, b: int | None = None) -> torch.Tensor:
    """The unit vector from the mean code of label b (or of every label but a, when b is None)
    to the mean code of label a. Raises ValueError where a label has no example."""
    towards = codes[labels == a]
    away = codes[labels != a] if b is None else codes[labels == b]
    if not len(towards) or not len(away):
        raise ValueError(f"no examples labelled {a if not len(towards) else b} to take the mean of")
    v = towards.float().mean(0) - away.float().mean(0)
    return v / v.norm().clamp_min(1e-12)


def move(z: torch.Tensor, direction: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """z (..., Z) moved by t along the unit direction (Z,): z + t u."""
    return z + torch.as_tensor(t, dtype=z.dtype, device=z.device).unsqueeze(-1) * direction.to(z)


def strip(z: torch.Tensor, direction: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """Each code of z (B, Z) moved by each t of ts (T,): (B * T, Z), rows of T per code."""
    return (z[:, None, :] + ts.to(z)[None, :, None] * direction.to(z)).reshape(-1, z.shape[-1])


def features_of(model, z: torch.Tensor) -> torch.Tensor:
    """What GANSpace runs PCA on for a model without an encoder: its first layer's activations
    where it offers `features(z)`, else the decoded samples themselves, flattened."""
    first = getattr(model, "features", None)
    return (first(z) if callable(first) else model.decode(z)).flatten(1)


@torch.no_grad()
def for_model(model, codes: torch.Tensor | None = None, n: int = 2000, seed: int = 0, k: int = 10
              ) -> tuple[Directions, torch.Tensor]:
    """A Gaussian-latent model's principal directions: of its codes of the test set when given
    (a model that encodes), else GANSpace's from n prior draws of this seed. Returns the
    directions and the codes they came from (the test codes, or the n draws)."""
    if codes is not None:
        return from_codes(codes.cpu(), k), codes.cpu()
    from .models.base import device_of
    z = model.prior_sample(n, torch.Generator(device=device_of(model)).manual_seed(seed))
    feats = torch.cat([features_of(model, z[i:i + 500]) for i in range(0, n, 500)])
    return ganspace(z.cpu(), feats.cpu(), k), z.cpu()
