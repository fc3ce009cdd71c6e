"""Metrics.

Likelihoods: the ELBO and the importance-weighted estimate (Burda et al., 2016)

    log p(x) >= L_k = E[ log (1/k) sum_i p(x, z_i) / q(z_i|x) ],  z_i ~ q(z|x)

L_1 is the ELBO; L_k grows with k and tends to log p(x). Everything is in nats per image;
`bits_per_dim` converts.

Sample quality, on features and class probabilities of a fixed classifier (genlab's
MNIST CNN plays the part Inception-v3 plays for natural images): the Frechet distance
(FID, Heusel et al., 2017), the Inception Score (Salimans et al., 2016), the predicted-
label histogram and its entropy, and k-nearest-neighbour precision and recall
(Kynkaanniemi et al., 2019). Toy 2-d measures: mode coverage and grid divergences.
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
    """Means of a model's scalar loss terms over x (one posterior sample per image, seed fixed):
    for a VAE the test -ELBO with its reconstruction and KL terms."""
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
    from .data import binarize
    return binarize(x, torch.Generator(device=x.device).manual_seed(seed))


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


# ----------------------------------------------------------------------------- sample quality
def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of feature rows, in float64."""
    f = features.detach().to("cpu", torch.float64)
    mu = f.mean(0)
    d = f - mu
    return mu, d.T @ d / max(1, len(f) - 1)


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)) between two Gaussians.

    Tr (C1 C2)^(1/2) is computed as the sum of square roots of the eigenvalues of the
    symmetric C1^(1/2) C2 C1^(1/2) (same spectrum as C1 C2), which stays real and stable.
    """
    mu1, mu2, cov1, cov2 = (t.to(torch.float64) for t in (mu1, mu2, cov1, cov2))
    w, v = torch.linalg.eigh((cov1 + cov1.T) / 2)
    root1 = (v * w.clamp_min(0).sqrt()) @ v.T
    m = root1 @ cov2 @ root1
    tr_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    value = (mu1 - mu2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * tr_sqrt
    return max(0.0, float(value))


def fid(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two sets of feature rows."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


def inception_score(probs: torch.Tensor, eps: float = 1e-12) -> float:
    """exp E_x KL(p(y|x) || p(y)) over the rows of class probabilities (one split)."""
    p = probs.detach().to("cpu", torch.float64)
    marginal = p.mean(0, keepdim=True)
    kl = (p * ((p + eps).log() - (marginal + eps).log())).sum(1)
    return float(kl.mean().exp())


def label_histogram(probs: torch.Tensor, n_classes: int | None = None) -> dict:
    """Fractions of samples per predicted label and the entropy of that histogram (nats).

    The entropy is log(10) = 2.303 when every digit is generated equally often, 0 when one
    digit is all a model makes.
    """
    k = n_classes or probs.shape[1]
    counts = torch.bincount(probs.argmax(1).cpu(), minlength=k).to(torch.float64)
    frac = counts / counts.sum()
    nz = frac[frac > 0]
    return {"fractions": [round(float(f), 5) for f in frac], "entropy": abs(float((nz * nz.log()).sum()))}


def _pairwise_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (len(a), len(b)), clamped at 0."""
    return (a.pow(2).sum(1, keepdim=True) - 2 * a @ b.T + b.pow(2).sum(1)).clamp_min(0)


def knn_radii(features: torch.Tensor, k: int = 3, chunk: int = 2048) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row (the row itself excluded)."""
    f = features.to(torch.float32)
    out = []
    for i in range(0, len(f), chunk):
        d = _pairwise_sq(f[i:i + chunk], f)
        out.append(d.kthvalue(k + 1, dim=1).values.sqrt())  # +1: the zero distance to itself
    return torch.cat(out)


def _covered(query: torch.Tensor, ref: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """For each query row: does it fall inside the ball of some reference row?"""
    q, r = query.to(torch.float32), ref.to(torch.float32)
    out = []
    for i in range(0, len(q), chunk):
        d = _pairwise_sq(q[i:i + chunk], r).sqrt()
        out.append((d <= radii[None, :]).any(1))
    return torch.cat(out)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> dict:
    """Improved precision and recall (Kynkaanniemi et al., 2019) on feature rows.

    Each set's manifold is the union of balls reaching every row's k-th nearest neighbour.
    Precision: the fraction of generated rows inside the real manifold (are samples
    realistic?). Recall: the fraction of real rows inside the generated manifold (is the
    data's variety covered?).
    """
    precision = _covered(fake, real, knn_radii(real, k)).float().mean()
    recall = _covered(real, fake, knn_radii(fake, k)).float().mean()
    return {"precision": float(precision), "recall": float(recall)}


class NearestNeighbours:
    """Exact nearest training image of query images, in pixel space and in a feature space.

    Pixel space (784-d for MNIST) is searched with a lower bound that prunes almost every
    training image cheaply. With V an orthonormal basis of the training set's top `rank`
    principal directions, split every centred image x into its projection p = Vᵀx and the
    norm r of its residual. Then, by Pythagoras and the triangle inequality,

        |x − y|² = |p_x − p_y|² + |res_x − res_y|²  ≥  |p_x − p_y|² + (r_x − r_y)²,

    which is the squared distance between the (rank + 1)-d vectors (p, r): one small matrix
    product gives a bound for every training image. The `candidates` images with the smallest
    bounds get exact distances (direct differences). If the best of them is no farther than
    the largest of those bounds, nothing else can be nearer; otherwise (a few queries, far from
    the data) every image whose bound is below that best is checked too. The answer is the
    brute-force one up to float rounding, in about half the time of a full 784-d product
    (bench/nearest.py).

    The feature space (128-d) is small: one product with precomputed norms, then the best few
    re-ranked by direct differences, since the expansion cancels badly for near-duplicates.
    """

    def __init__(self, pixels: torch.Tensor, features: torch.Tensor | None = None, rank: int = 128,
                 candidates: int = 32):
        self.pixels = pixels.flatten(1).to(torch.float32).contiguous()
        self.candidates = candidates
        self._build_bounds(rank)
        self.features = None if features is None else features.to(torch.float32).contiguous()
        self.feature_norms = None if features is None else self.features.pow(2).sum(1)

    def _build_bounds(self, rank: int) -> None:
        x = self.pixels
        n, dim = x.shape
        self.mean = x.mean(0)
        sub = x[:: max(1, n // 10_000)] - self.mean  # principal directions from a subsample: any basis is valid
        _, vecs = torch.linalg.eigh((sub.T @ sub).double())
        self.basis = vecs[:, -min(rank, dim):].flip(1).to(torch.float32).contiguous()
        parts = [self._lift(x[i:i + 8192]) for i in range(0, n, 8192)]
        self.lifted = torch.cat(parts).contiguous()  # (n, rank + 1): projection and residual norm
        self.lifted_norms = self.lifted.pow(2).sum(1)
        self._lifted_max = float(self.lifted_norms.max()) if n else 0.0

    def _lift(self, x: torch.Tensor) -> torch.Tensor:
        xc = x - self.mean
        p = xc @ self.basis
        r = (xc - p @ self.basis.T).norm(dim=1, keepdim=True)
        return torch.cat([p, r], 1)

    def _pixel_search(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pixels
        aq = self._lift(q)
        aq_norms = aq.pow(2).sum(1)
        bound = torch.addmm(self.lifted_norms[None, :], aq, self.lifted.T, alpha=-2).add_(aq_norms[:, None])
        m = min(self.candidates, x.shape[0])
        lowest, cand = bound.topk(m, dim=1, largest=False, sorted=False)
        d2 = (x[cand] - q[:, None, :]).pow(2).sum(2)
        best, j = d2.min(1)
        idx = cand.gather(1, j[:, None]).squeeze(1)
        tol = 1e-4 * (aq_norms + self._lifted_max)  # float rounding of the expanded bound, generously
        if m < x.shape[0]:
            for i in (best > lowest.max(1).values - tol).nonzero().flatten().tolist():
                more = (bound[i] <= best[i] + tol[i]).nonzero().flatten()
                dm = (x[more] - q[i]).pow(2).sum(1)
                b, k = dm.min(0)
                if b < best[i]:
                    best[i], idx[i] = b, more[k]
        return idx, best.clamp_min(0).sqrt()

    @staticmethod
    def _nearest(q: torch.Tensor, ref: torch.Tensor, norms: torch.Tensor, rerank: int = 8
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        score = torch.addmm(norms[None, :], q, ref.T, alpha=-2)  # (B, N): |t|^2 - 2 q.t
        cand = score.topk(min(rerank, ref.shape[0]), dim=1, largest=False).indices  # (B, k)
        d = (ref[cand] - q[:, None, :]).pow(2).sum(2)
        best, j = d.min(1)
        return cand.gather(1, j[:, None]).squeeze(1), best.sqrt()

    @torch.no_grad()
    def pixel(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, Euclidean distances) of the nearest training images in pixel space."""
        q = images.flatten(1).to(self.pixels)
        out = [self._pixel_search(q[i:i + 256]) for i in range(0, len(q), 256)]  # bounded memory
        return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])

    @torch.no_grad()
    def feature(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, distances) of the nearest training images in the feature space."""
        if self.features is None:
            raise ValueError("no training features were given")
        return self._nearest(features.to(self.features), self.features, self.feature_norms)
