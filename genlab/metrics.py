"""Metrics: ELBO and the importance-weighted log-likelihood estimate (Burda et al., 2016).

    log p(x) >= L_k = E[ log (1/k) sum_i p(x, z_i) / q(z_i|x) ],  z_i ~ q(z|x)

L_1 is the ELBO; L_k grows with k and tends to log p(x). Everything is in nats per image;
`bits_per_dim` converts.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

LOG_2PI = math.log(2 * math.pi)


@torch.no_grad()
def iw_log_weights(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                   max_rows: int = 20_000) -> torch.Tensor:
    """log p(x, z_i) - log q(z_i|x) for k posterior samples per image. x (B, ...) -> (k, B)"""
    mu, logvar = model.posterior(x)  # (B, Z)
    if logvar is None:
        raise ValueError("the importance-weighted estimate needs a stochastic encoder (not an autoencoder)")
    std = torch.exp(0.5 * logvar)
    b, zdim = mu.shape
    chunk = max(1, max_rows // b)
    out = []
    for start in range(0, k, chunk):
        kc = min(chunk, k - start)
        eps = torch.randn(kc, b, zdim, generator=generator, device=mu.device)  # (kc, B, Z)
        z = mu + std * eps
        logits = model.decoder_logits(z.reshape(kc * b, zdim)).view(kc, b, -1)  # (kc, B, D)
        log_px = model.log_px_given_z(logits, x)  # (kc, B), x broadcast over the samples
        log_pz = (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(-1)  # (kc, B)
        log_qz = (-0.5 * eps.pow(2) - 0.5 * LOG_2PI - 0.5 * logvar).sum(-1)  # (kc, B)
        out.append(log_px + log_pz - log_qz)
    return torch.cat(out)  # (k, B)


@torch.no_grad()
def iw_nll(model, x: torch.Tensor, k: int = 1000, batch_size: int = 100, seed: int = 0,
           progress: Callable[[int, int], None] | None = None) -> dict:
    """Importance-weighted negative log-likelihood over a data set.

    Args:
        model: a VAE (posterior, decoder_logits, log_px_given_z).
        x: data (N, ...), already binarized for a Bernoulli decoder.
        k: importance samples per image.
        batch_size: images per batch; with the row cap this keeps memory bounded at any k.
        seed: the sampling seed.
        progress: called with (done, total) after each batch.
    Returns:
        {"nll": mean -log p(x) estimate, "stderr": its standard error, "k": k, "n": N}
    """
    g = torch.Generator(device=x.device).manual_seed(seed)
    per_image = []
    for i in range(0, len(x), batch_size):
        lw = iw_log_weights(model, x[i:i + batch_size], k, g)
        per_image.append(-(torch.logsumexp(lw, 0) - math.log(k)))
        if progress:
            progress(min(i + batch_size, len(x)), len(x))
    nll = torch.cat(per_image).double()
    return {"nll": nll.mean().item(), "stderr": (nll.std() / math.sqrt(len(nll))).item(), "k": k, "n": len(nll)}


@torch.no_grad()
def elbo_metrics(model, x: torch.Tensor, batch_size: int = 1000, seed: int = 0) -> dict:
    """Test -ELBO with its reconstruction and KL terms (one posterior sample per image)."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    sums: dict[str, float] = {}
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        for key, v in model.loss_terms(xb, g).items():
            if v.ndim == 0:
                sums[key] = sums.get(key, 0.0) + v.item() * len(xb)
    return {key: v / len(x) for key, v in sums.items()}


def bits_per_dim(nll_nats: float, n_dims: int) -> float:
    """Convert a negative log-likelihood per example in nats to bits per dimension."""
    return nll_nats / (n_dims * math.log(2))


def binarized_test_set(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The fixed binarization of a test set used for every reported likelihood."""
    return torch.bernoulli(x, generator=torch.Generator(device=x.device).manual_seed(seed))


# ----------------------------------------------------------------------------- 2-d toy data
def ring_centers(k: int = 8, radius: float = 2.0) -> torch.Tensor:
    """Centres (k, 2) of the ring-of-Gaussians toy set."""
    angle = torch.arange(k) * (2 * math.pi / k)
    return radius * torch.stack([angle.cos(), angle.sin()], 1)


def mode_coverage(points: torch.Tensor, centers: torch.Tensor, std: float, min_fraction: float = 0.01) -> dict:
    """How many modes a sample covers (Metz et al.'s unrolled-GAN protocol).

    A sample is high quality when it lies within 3 std of its nearest centre; a mode is
    covered when at least `min_fraction` of all samples are high quality and nearest to it.
    Returns {"modes": covered count, "high_quality": fraction, "per_mode": counts}.
    """
    d = torch.cdist(points.float().cpu(), centers.float())  # (N, K)
    dist, nearest = d.min(1)
    good = dist < 3 * std
    counts = torch.bincount(nearest[good], minlength=len(centers))
    covered = int((counts >= max(1.0, min_fraction * len(points))).sum())
    return {"modes": covered, "high_quality": float(good.float().mean()), "per_mode": counts.tolist()}


def grid_divergences(real: torch.Tensor, fake: torch.Tensor, bins: int = 60, extent: float = 3.0,
                     eps: float = 1e-6) -> dict:
    """KL(real || fake) and the Jensen-Shannon divergence (nats) between histogram densities
    of two 2-d samples on a bins x bins grid over [-extent, extent]^2 (eps keeps KL finite)."""
    def density(x):
        x = x.float().cpu()
        h = torch.histogramdd(x, bins=[bins, bins], range=[-extent, extent, -extent, extent]).hist
        h = h + eps
        return h / h.sum()

    p, q = density(real), density(fake)
    m = 0.5 * (p + q)
    kl = float((p * (p / q).log()).sum())
    js = float(0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum())
    return {"kl": kl, "js": js}
