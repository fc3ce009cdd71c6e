"""Structure search for coupling flows on table data (Gonsior, Mücke and Morik, "Structure
Search for Normalizing Flows", LWDA 2021), run as one batched population of flows.

The model (the paper's): L layers, each a constant affine transform (a learned per-feature
scale and shift) followed by an affine coupling whose conditioner is one tanh layer,

    h <- (h + shift) * exp(log_a)
    (s, t) = tanh(W (h * M) + c),   s, t <- s * (1 - M), t * (1 - M)
    h <- h * exp(s) + t

M a binary mask with m = floor(d / 2) ones (the conditioning features); prior N(0, I); the loss
is bits per dimension on the raw features, -log p(x) / (d ln 2).

A *population* holds P such flows as stacked weights (P, L, ...) and trains them all at once:
the loss is the sum of the members' losses, so each member's gradient is its own, and SGD (with
momentum, and per-member gradient clipping) is element-wise: one batched step is P independent
steps. The search's instances and a search iteration's offspring are members of one population.

Choices the paper leaves open (and `Protocol` records):
- Initialisation: the first layer's constant affine transform standardises the training data
  (shift = -mean, log_a = -log std); the later ones start as the identity; W ~ N(0, (0.1 /
  sqrt(m))^2), c = 0.
- The cyclic learning rate (Smith 2017, "triangular"): from base_lr to max_lr and back every
  2 * half_cycle iterations; SGD momentum 0.9; each member's gradient clipped to norm 10.
- An offspring inherits its parent's weights and trains 50 iterations with its new masks
  (`inherit`); the best structure found is then trained from a fresh start, like parity and
  random.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn

from .live import LiveRun

LOG_2PI = math.log(2 * math.pi)
LN2 = math.log(2)


@dataclass
class Protocol:
    """The paper's protocol, with the choices it leaves open filled in."""

    iterations: int = 1250  # SGD iterations of a full training (parity, random, the found structure)
    search_iterations: int = 200
    offspring_iterations: int = 50
    offspring: int = 1  # lambda: offspring per search iteration (1 = the paper's Algorithm 1)
    geometric_p: float = 0.5  # k ~ Geometric(p) layers reshuffled per offspring
    base_lr: float = 1e-3
    max_lr: float = 1e-2
    half_cycle: int = 125
    momentum: float = 0.9
    clip: float = 10.0
    init_scale: float = 0.1
    inherit: bool = True


def cyclic_lr(it: int, p: Protocol) -> float:
    """Smith's triangular schedule: base_lr -> max_lr -> base_lr every 2 * half_cycle iterations."""
    cycle = math.floor(1 + it / (2 * p.half_cycle))
    x = abs(it / p.half_cycle - 2 * cycle + 1)
    return p.base_lr + (p.max_lr - p.base_lr) * max(0.0, 1.0 - x)


# ----------------------------------------------------------------------------- masks
def random_masks(n: int, layers: int, d: int, generator: torch.Generator, device="cpu") -> torch.Tensor:
    """(n, layers, d) binary masks, each row with exactly floor(d / 2) ones at random places."""
    keys = torch.rand(n, layers, d, generator=generator, device=device)
    ranks = keys.argsort(-1).argsort(-1)
    return (ranks < d // 2).float()


def parity_masks(n: int, layers: int, d: int, device="cpu") -> torch.Tensor:
    """(n, layers, d): in the first layer the 2nd, 4th, ... features (1-based) condition the
    others, in the next layer the 1st, 3rd, ..., alternating. For odd d the last feature is
    left out of the conditioning set of the second kind, so every layer has floor(d / 2)."""
    j = torch.arange(d, device=device)
    rows = [((j + l) % 2 == 1).float() for l in range(layers)]
    m = torch.stack(rows)
    if d % 2:  # odd d: keep exactly floor(d / 2) conditioning features in every layer
        for l in range(layers):
            ones = m[l].nonzero().flatten()
            m[l, ones[d // 2:]] = 0
    return m.expand(n, layers, d).clone()


def reshuffle(masks: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1's mutation: each member redraws the masks of k randomly chosen layers,
    k ~ Geometric(p) on {1, 2, ...}, capped at the number of layers. Returns (new masks, k)."""
    n, layers, d = masks.shape
    dev = masks.device
    u = torch.rand(n, generator=generator, device=dev).clamp_min(1e-12)
    k = (torch.floor(torch.log(u) / math.log(1 - p)) + 1).clamp(1, layers).long()  # inverse CDF
    order = torch.rand(n, layers, generator=generator, device=dev).argsort(-1).argsort(-1)
    chosen = order < k[:, None]  # k distinct layers per member
    fresh = random_masks(n, layers, d, generator, dev)
    return torch.where(chosen[..., None], fresh, masks), k


# ----------------------------------------------------------------------------- the population
class PopulationFlow(nn.Module):
    """P coupling flows of the paper's kind as stacked weights. x is (P, B, d) or (B, d)."""

    def __init__(self, masks: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                 generator: torch.Generator | None = None, init_scale: float = 0.1):
        super().__init__()
        P, L, d = masks.shape
        dev = masks.device
        self.register_buffer("masks", masks.float())
        shift = torch.zeros(P, L, d, device=dev)
        log_a = torch.zeros(P, L, d, device=dev)
        shift[:, 0] = -mean.to(dev, torch.float32)
        log_a[:, 0] = -torch.log(std.to(dev, torch.float32).clamp_min(1e-8))
        sigma = init_scale / math.sqrt(max(1, d // 2))
        self.shift = nn.Parameter(shift)
        self.log_a = nn.Parameter(log_a)
        self.W = nn.Parameter(sigma * torch.randn(P, L, d, 2 * d, generator=generator, device=dev))
        self.c = nn.Parameter(torch.zeros(P, L, 2 * d, device=dev))

    @property
    def size(self) -> int:
        return self.masks.shape[0]

    @property
    def dims(self) -> int:
        return self.masks.shape[2]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (P, B, d) -> z (P, B, d), log|det dz/dx| (P, B)."""
        P, L, d = self.masks.shape
        h = x.expand(P, *x.shape[-2:]) if x.dim() == 2 else x
        log_det = self.log_a.sum((1, 2))[:, None].expand(P, h.shape[1])
        for l in range(L):
            M = self.masks[:, l, None]  # (P, 1, d)
            h = (h + self.shift[:, l, None]) * self.log_a[:, l, None].exp()
            st = torch.tanh(torch.baddbmm(self.c[:, l, None], h * M, self.W[:, l]))
            s, t = st[..., :d] * (1 - M), st[..., d:] * (1 - M)
            h = h * s.exp() + t  # s = t = 0 on the conditioning features: they pass unchanged
            log_det = log_det + s.sum(-1)
        return h, log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        P, L, d = self.masks.shape
        h = z
        for l in reversed(range(L)):
            M = self.masks[:, l, None]
            st = torch.tanh(torch.baddbmm(self.c[:, l, None], h * M, self.W[:, l]))
            s, t = st[..., :d] * (1 - M), st[..., d:] * (1 - M)
            h = (h - t) * (-s).exp()
            h = h * (-self.log_a[:, l, None]).exp() - self.shift[:, l, None]
        return h

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """-log p(x) in nats, (P, B)."""
        z, log_det = self(x)
        return 0.5 * z.pow(2).sum(-1) + 0.5 * self.dims * LOG_2PI - log_det

    def bpd(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's mean bits per dimension on its batch, (P,)."""
        return self.nll(x).mean(-1) / (self.dims * LN2)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """Each member's bits per dimension on all rows of x (N, d), (P,)."""
        total = torch.zeros(self.size, dtype=torch.float64, device=x.device)
        for i in range(0, len(x), chunk):
            total += self.nll(x[i:i + chunk]).double().sum(-1)
        return total / (len(x) * self.dims * LN2)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(P, n, d) samples, n per member."""
        z = torch.randn(self.size, n, self.dims, generator=generator, device=self.masks.device)
        return self.inverse(z)

    @torch.no_grad()
    def take(self, index: torch.Tensor) -> "PopulationFlow":
        """A new population of the members at `index` (copies of their weights)."""
        out = PopulationFlow.__new__(PopulationFlow)
        nn.Module.__init__(out)
        out.register_buffer("masks", self.masks[index].clone())
        for name in ("shift", "log_a", "W", "c"):
            setattr(out, name, nn.Parameter(getattr(self, name)[index].clone()))
        return out

    @torch.no_grad()
    def overwrite(self, where: torch.Tensor, other: "PopulationFlow") -> None:
        """Members where `where` (P,) is true take `other`'s member at the same place."""
        for name in ("shift", "log_a", "W", "c"):
            mine, theirs = getattr(self, name), getattr(other, name)
            mine.copy_(torch.where(where.view(-1, *([1] * (mine.dim() - 1))), theirs, mine))
        self.masks.copy_(torch.where(where.view(-1, 1, 1), other.masks, self.masks))

    def export(self, i: int):
        """Member i as a genlab `Flow` (explicit masks, tanh conditioners): checkpoints, views."""
        from .models.flow import Flow, FlowConfig
        P, L, d = self.masks.shape
        bits = tuple(tuple(int(b) for b in self.masks[i, l].tolist()) for l in range(L))
        flow = Flow(FlowConfig(data_shape=(d,), couplings=(L,), masks="explicit", mask_bits=bits,
                               conditioner="tanh", depth=1, hidden=2 * d, clamp=0.0))
        with torch.no_grad():
            layers = list(flow.flow.layers)
            for l in range(L):
                act, cpl = layers[2 * l], layers[2 * l + 1]
                act.bias.copy_(self.shift[i, l].view(1, d))
                act.log_scale.copy_(self.log_a[i, l].view(1, d))
                act.initialized.fill_(1)
                lin = cpl.net[0]
                lin.weight.copy_(self.W[i, l].T)
                lin.bias.copy_(self.c[i, l])
        return flow.to(self.masks.device)


def population(masks: torch.Tensor, x: torch.Tensor, generator: torch.Generator, p: Protocol) -> PopulationFlow:
    return PopulationFlow(masks, x.mean(0), x.std(0), generator, p.init_scale)


# ----------------------------------------------------------------------------- training
def sgd(pop: PopulationFlow, p: Protocol) -> torch.optim.SGD:
    return torch.optim.SGD(pop.parameters(), lr=p.base_lr, momentum=p.momentum)


def sgd_step(pop: PopulationFlow, opt: torch.optim.Optimizer, batch: torch.Tensor, p: Protocol) -> torch.Tensor:
    """One update of every member on its own batch (P, B, d): the summed loss's gradient is each
    member's own; each member's gradient is clipped to norm `p.clip`; then SGD with momentum,
    written out so that a member whose loss is not finite is left exactly as it is (weights and
    momentum). `opt` holds the learning rate and the momentum buffers. Returns the losses before
    the update (inf where not finite), (P,)."""
    params = list(pop.parameters())
    loss = pop.bpd(batch)
    ok = torch.isfinite(loss)
    for q in params:
        q.grad = None
    torch.where(ok, loss, torch.zeros_like(loss)).sum().backward()
    group = opt.param_groups[0]
    lr, mom = group["lr"], group["momentum"]
    with torch.no_grad():
        grads = [q.grad.nan_to_num(0.0, 0.0, 0.0) for q in params]
        sq = sum(g.double().pow(2).flatten(1).sum(1) for g in grads)  # float64: no overflow to inf
        scale = ((p.clip / (sq.sqrt() + 1e-6)).clamp(max=1.0) * ok).float()  # per member; 0 for a bad one
        for q, g in zip(params, grads):
            shape = (-1, *([1] * (q.dim() - 1)))
            keep = ok.view(shape)
            state = opt.state[q]
            buf = state.get("momentum_buffer")
            g = g * scale.view(shape)
            buf = g if buf is None else torch.where(keep, mom * buf + g, buf)
            state["momentum_buffer"] = buf
            q.sub_(lr * buf * keep)
    return torch.where(ok, loss.detach(), torch.full_like(loss, math.inf))


def train_population(pop: PopulationFlow, x: torch.Tensor, iterations: int, batch_size: int, p: Protocol,
                     generator: torch.Generator, start: int = 0, curve_every: int = 0,
                     should_stop=None, opt: torch.optim.Optimizer | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`iterations` SGD steps (cyclic learning rate from iteration `start`) on random batches,
    each member its own. No host sync inside. Returns (each member's loss on its last batch,
    bits/dim (P,); the loss every `curve_every` steps, (n, P), or None). A member whose loss
    is not finite gets no update from that step (its loss reads inf). Pass `opt` (from `sgd`)
    to continue a training in several calls with its momentum."""
    P = pop.size
    opt = opt or sgd(pop, p)
    curve = [] if curve_every else None
    last = None
    for it in range(iterations):
        for g in opt.param_groups:
            g["lr"] = cyclic_lr(start + it, p)
        idx = torch.randint(0, len(x), (P, batch_size), generator=generator, device=x.device)
        last = sgd_step(pop, opt, x[idx], p)
        if curve is not None and (it % curve_every == 0 or it == iterations - 1):
            curve.append(last)
        if should_stop is not None and should_stop():
            break
    return last, (torch.stack(curve) if curve else None)


# ----------------------------------------------------------------------------- the search
@dataclass
class SearchRecord:
    """One search iteration, on the host: per instance the offspring's losses (I, lambda), their
    layers redrawn, whether the best offspring was accepted (I,), and the best loss after (I,)."""

    iteration: int
    offspring: np.ndarray
    k: np.ndarray
    accepted: np.ndarray
    best: np.ndarray


class Search:
    """Algorithm 1 for `instances` independent searches at once, with lambda offspring each
    per iteration (lambda = 1 is the paper's). Offspring of all instances train as one
    population; instance i's are members i * lambda ... (i + 1) * lambda - 1."""

    def __init__(self, x: torch.Tensor, layers: int, batch_size: int, protocol: Protocol | None = None,
                 instances: int = 1, seed: int = 0):
        self.x, self.layers, self.batch_size = x, layers, batch_size
        self.p = protocol or Protocol()
        self.instances = instances
        self.gen = torch.Generator(device=x.device).manual_seed(seed)
        d = x.shape[1]
        self.best = population(random_masks(instances, layers, d, self.gen, x.device), x, self.gen, self.p)
        self.clock = 0  # SGD iterations so far (the cyclic schedule's position)
        loss, _ = train_population(self.best, x, self.p.offspring_iterations, batch_size, self.p, self.gen)
        self.clock += self.p.offspring_iterations
        self.best_loss = loss
        self.records: list[SearchRecord] = []

    @property
    def iteration(self) -> int:
        return len(self.records)

    @property
    def done(self) -> bool:
        return self.iteration >= self.p.search_iterations

    def step(self) -> SearchRecord:
        """One search iteration: mutate, train the offspring 50 iterations, accept or not."""
        lam, I = self.p.offspring, self.instances
        parents = torch.arange(I, device=self.x.device).repeat_interleave(lam)
        masks, k = reshuffle(self.best.masks[parents], self.gen, self.p.geometric_p)
        if self.p.inherit:
            off = self.best.take(parents)
            off.masks.copy_(masks)
        else:
            off = population(masks, self.x, self.gen, self.p)
        loss, _ = train_population(off, self.x, self.p.offspring_iterations, self.batch_size, self.p, self.gen,
                                   start=self.clock)
        self.clock += self.p.offspring_iterations
        per = loss.view(I, lam)
        j = per.argmin(1)
        cand = per.gather(1, j[:, None]).squeeze(1)
        accept = torch.isfinite(cand) & (cand <= self.best_loss)
        winners = off.take(torch.arange(I, device=self.x.device) * lam + j)
        self.best.overwrite(accept, winners)
        self.best_loss = torch.where(accept, cand, self.best_loss)
        rec = SearchRecord(self.iteration + 1, per.cpu().numpy(), k.view(I, lam).cpu().numpy(),
                           accept.cpu().numpy(), self.best_loss.cpu().numpy())
        self.records.append(rec)
        return rec

    def run(self, should_stop=None) -> None:
        while not self.done and not (should_stop and should_stop()):
            self.step()


# ----------------------------------------------------------------------------- references
def gaussian_bpd(train: np.ndarray, test: np.ndarray) -> dict:
    """A full-covariance Gaussian fitted by maximum likelihood on train (mean, covariance / N),
    scored on both, in bits per dimension of the raw features (float64, Cholesky)."""
    mu = train.mean(0)
    cov = np.cov(train, rowvar=False, bias=True)
    chol = np.linalg.cholesky(cov)
    d = train.shape[1]
    half_logdet = np.log(np.diag(chol)).sum()

    def bpd(x):
        sol = np.linalg.solve(chol, (x - mu).T)
        nll = 0.5 * (sol ** 2).sum(0) + half_logdet + 0.5 * d * LOG_2PI
        return float(nll.mean() / (d * LN2))

    return {"train": bpd(train), "test": bpd(test)}


REFERENCE_SIZES = ((8, 64, 3), (4, 16, 2))  # (couplings, hidden units, layers per conditioner)


def reference_flow(train: np.ndarray, test: np.ndarray, seed: int = 0, sizes=REFERENCE_SIZES, lr: float = 1e-3,
                   batch_size: int = 256, max_steps: int = 6000, check_every: int = 100, patience: int = 10,
                   device="cpu") -> dict:
    """A well-trained coupling flow as a reference: Adam, inputs standardised with the training
    split's mean and std (the standardisation's log-Jacobian, -sum log std, is counted, so bpd
    is on the raw scale), ReLU MLP conditioners, parity masks, ActNorm, early stopping on a 10 %
    validation part of the training split, and the size (`sizes`: couplings, width, depth)
    chosen by the same validation loss: a small table needs a small flow."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(train))
    n_val = max(1, len(train) // 10)
    val, fit = train[perm[:n_val]], train[perm[n_val:]]
    mu, sd = fit.mean(0), fit.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    log_jac = -float(np.log(sd).sum())  # log |d x_std / d x|

    def t(a):
        return torch.as_tensor((a - mu) / sd, dtype=torch.float32, device=device)

    best = None
    t0 = time.perf_counter()
    for couplings, hidden, depth in sizes:
        r = _fit_reference(t(fit), t(val), log_jac, seed, couplings, hidden, depth, lr, batch_size, max_steps,
                           check_every, patience, device)
        if best is None or r["val"] < best["val"]:
            best = r
    flow, bpd = best.pop("flow"), best.pop("bpd")
    return best | {"train": bpd(flow, t(train)), "test": bpd(flow, t(test)), "seconds": round(time.perf_counter() - t0, 1)}


def _fit_reference(xf, xv, log_jac, seed, couplings, hidden, depth, lr, batch_size, max_steps, check_every,
                   patience, device) -> dict:
    from .models.flow import Flow, FlowConfig
    torch.manual_seed(seed)
    g = torch.Generator(device=device).manual_seed(seed)
    d = xf.shape[1]
    flow = Flow(FlowConfig(data_shape=(d,), hidden=hidden, depth=depth, couplings=(couplings,), masks="parity")).to(device)
    opt = torch.optim.Adam(flow.parameters(), lr=lr)

    def bpd(f, x_std):
        with torch.no_grad():
            f.eval()
            out = -(f.log_prob(x_std).double().mean().item() + log_jac) / (d * LN2)
            f.train()
            return out

    best, best_state, bad, step = math.inf, None, 0, 0
    while step < max_steps:
        idx = torch.randint(0, len(xf), (min(batch_size, len(xf)),), generator=g, device=device)
        loss = -flow.log_prob(xf[idx]).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
        opt.step()
        step += 1
        if step % check_every == 0:
            v = bpd(flow, xv)
            if v < best - 1e-4:
                best, bad = v, 0
                best_state = {k: q.detach().clone() for k, q in flow.state_dict().items()}
            else:
                bad += 1
                if bad >= patience:
                    break
    if best_state is not None:
        flow.load_state_dict(best_state)
    return {"flow": flow, "bpd": bpd, "val": best, "steps": step, "size": [couplings, hidden, depth]}


# ----------------------------------------------------------------------------- the experiment
LAYOUTS = ("parity", "random", "opt")


def _stats(v: np.ndarray) -> dict:
    ok = v[np.isfinite(v)]
    return {"mean": float(ok.mean()) if len(ok) else None, "std": float(ok.std()) if len(ok) else None,
            "values": [None if not math.isfinite(x) else round(float(x), 4) for x in v], "diverged": int((~np.isfinite(v)).sum())}


def final_populations(x: torch.Tensor, found: torch.Tensor, layers: int, seed: int, p: Protocol) -> tuple[PopulationFlow, torch.Generator]:
    """Parity, random and the found masks (I each) as one fresh population of 3I members."""
    I, _, d = found.shape
    g = torch.Generator(device=x.device).manual_seed(seed)
    masks = torch.cat([parity_masks(I, layers, d, x.device), random_masks(I, layers, d, g, x.device), found])
    return population(masks, x, g, p), g


def run_depth(table, layers: int, instances: int, p: Protocol, seed: int, device="cpu", progress=None) -> dict:
    """One depth of the table: `instances` searches at once, then parity, random and the found
    structures (instances each) trained fully as one population, scored on train and test."""
    from .tabular import TABLES
    xtr, xte = table.tensors(device)
    bs = TABLES[table.name]["batch_size"]
    t0 = time.perf_counter()
    search = Search(xtr, layers, bs, p, instances=instances, seed=seed)
    while not search.done:
        search.step()
        if progress:
            progress(search.iteration, p.search_iterations)
    t_search = time.perf_counter() - t0
    pop, g = final_populations(xtr, search.best.masks, layers, seed + 1, p)
    train_population(pop, xtr, p.iterations, bs, p, g)
    tr, te = pop.evaluate(xtr).cpu().numpy(), pop.evaluate(xte).cpu().numpy()
    I = instances
    acc = np.stack([r.accepted for r in search.records])  # (iterations, I)
    out = {"layers": layers, "seconds_search": round(t_search, 1), "seconds": round(time.perf_counter() - t0, 1),
           "acceptance": round(float(acc.mean()), 3),
           "search_best": [round(float(r.best.mean()), 4) for r in search.records],
           "found_masks": search.best.masks.cpu().int().tolist()}
    for i, lay in enumerate(LAYOUTS):
        out[lay] = {"train": _stats(tr[i * I:(i + 1) * I]), "test": _stats(te[i * I:(i + 1) * I])}
    return out


def reference_rows(refs: list[dict], seconds: float) -> dict:
    sizes = " or ".join(f"{c} couplings with ReLU conditioners {dd} x {h}" for c, h, dd in REFERENCE_SIZES)
    return {"train": _stats(np.array([r["train"] for r in refs])), "test": _stats(np.array([r["test"] for r in refs])),
            "steps": [r["steps"] for r in refs], "sizes": [r["size"] for r in refs], "seconds": round(seconds, 1),
            "settings": f"parity masks, ActNorm, {sizes} (chosen on validation), Adam 1e-3, batch 256, "
                        "standardised inputs, early stopping on 10 % of train"}


def rerun_reference(results: dict, name: str, seeds: int = 3, device="cpu") -> None:
    """Recompute only the reference-flow rows of one table in `results` (in place)."""
    from .tabular import load_table
    table = load_table(name)
    t1 = time.perf_counter()
    refs = [reference_flow(table.train, table.test, seed=s, device=device) for s in range(seeds)]
    results[name]["reference"] = reference_rows(refs, time.perf_counter() - t1)


def run_table(name: str, depths=(2, 4, 6, 8), instances: int = 20, p: Protocol | None = None, seed: int = 0,
              reference_seeds: int = 3, device="cpu", log=print) -> dict:
    """The whole experiment for one table: every depth, the Gaussian and the reference flow."""
    from .tabular import TABLES, load_table
    p = p or Protocol()
    table = load_table(name)
    t0 = time.perf_counter()
    res = {"data": name, "label": TABLES[name]["label"], "rows": [len(table.train), len(table.test)],
           "dims": table.dims, "batch_size": TABLES[name]["batch_size"], "instances": instances, "seed": seed,
           "protocol": asdict(p), "device": str(device), "depths": {}}
    for layers in depths:
        def prog(i, n, layers=layers):
            if i % 25 == 0 or i == n:
                log(f"  {name} L={layers}: search iteration {i}/{n}  ({time.perf_counter() - t0:.0f} s)")
        r = run_depth(table, layers, instances, p, seed + 1000 * layers, device, prog)
        res["depths"][str(layers)] = r
        log(f"{name} L={layers}: " + ", ".join(f"{lay} test {r[lay]['test']['mean']:.3f}" for lay in LAYOUTS)
            + f"  ({r['seconds']} s)")
    res["seconds_flows"] = round(time.perf_counter() - t0, 1)
    res["gaussian"] = gaussian_bpd(table.train, table.test)
    t1 = time.perf_counter()
    refs = [reference_flow(table.train, table.test, seed=s, device=device) for s in range(reference_seeds)]
    res["reference"] = reference_rows(refs, time.perf_counter() - t1)
    log(f"{name}: gaussian test {res['gaussian']['test']:.3f}, reference flow test "
        f"{res['reference']['test']['mean']:.3f}")
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def _pm(s: dict) -> str:
    if s["mean"] is None:
        return "diverged"
    extra = f" ({s['diverged']} diverged)" if s["diverged"] else ""
    return f"{s['mean']:.3f} ± {s['std']:.3f}{extra}"


def report_markdown(results: dict) -> str:
    """docs/structure-search.md from the JSON of every table run so far."""
    lines = ["# Structure search for coupling flows, reproduced", "",
             "Written by `python -m genlab structure` (see docs/structure-search-summary.md); the numbers are in "
             "`structure-search.json`. Bits per dimension of the raw features, -log p(x) / (d ln 2): "
             "lower is better, and it can be negative for continuous data (a density above 1).",
             "The model, the protocol and the choices the paper leaves open are in the docstring of "
             "`genlab/structure.py`. parity / random / opt: 20 instances each (mean ± std over instances); "
             "opt is the structure Algorithm 1 found in that instance, trained again from a fresh start.", ""]
    for name, r in results.items():
        p = r["protocol"]
        lines += [f"## {r['label']}", "",
                  f"Train {r['rows'][0]} rows, test {r['rows'][1]}; d = {r['dims']}, m = {r['dims'] // 2}; batch "
                  f"{r['batch_size']}; {r['instances']} instances; seed {r['seed']}; device {r['device']}; "
                  f"{p['search_iterations']} search iterations x {p['offspring_iterations']} SGD iterations, "
                  f"{p['offspring']} offspring each; full training {p['iterations']} iterations; cyclic learning rate "
                  f"{p['base_lr']:g} to {p['max_lr']:g}, half cycle {p['half_cycle']}. Wall time: "
                  f"**{r['seconds_flows'] / 60:.1f} min** for the flows (all depths, searches included), "
                  f"{r['reference']['seconds']:.0f} s for the reference flows.", "",
                  "| depth L | layout | train bpd | test bpd | search acceptance | time (s) |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for L, dr in r["depths"].items():
            for lay in LAYOUTS:
                extra = (f"{dr['acceptance']:.0%}", f"{dr['seconds']:.0f}") if lay == "opt" else ("", "")
                lines.append(f"| {L} | {lay} | {_pm(dr[lay]['train'])} | {_pm(dr[lay]['test'])} | {extra[0]} | {extra[1]} |")
        g, ref = r["gaussian"], r["reference"]
        seeds = ", ".join("–" if v is None else f"{v:.3f}" for v in ref["test"]["values"])
        lines += [f"| – | full-covariance Gaussian (closed form) | {g['train']:.3f} | {g['test']:.3f} | | |",
                  f"| – | reference flow ({len(ref['steps'])} seeds; test per seed: {seeds}) | {_pm(ref['train'])} | "
                  f"{_pm(ref['test'])} | | {ref['seconds']:.0f} |", "",
                  f"Reference flow: {ref['settings']}; sizes chosen per seed (couplings, width, depth): "
                  f"{ref.get('sizes', '–')}.", ""]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- live, for the page
@dataclass
class SearchSettings:
    """What the Structure Search page starts a run with."""

    data: str = "magic"
    layers: int = 4
    budget: int = 200  # search iterations
    offspring: int = 1
    seed: int = 0


class LiveSearch(LiveRun):
    """One search (Algorithm 1 with lambda offspring per iteration) stepped one iteration at a
    time, then parity, random and the found masks trained from a fresh start side by side (in
    chunks of 50 SGD iterations), then scored on train and test beside the Gaussian. `done`
    when all of that is finished; the job then ends by itself."""

    keys = ("best",)
    actions = ("step",)
    chunk = 50  # SGD iterations per update in the final phase

    def __init__(self, settings: SearchSettings, device="cpu"):
        from .tabular import TABLES, load_table
        if settings.data not in TABLES or not (1 <= settings.layers <= 12) or not (1 <= settings.budget <= 1000) \
                or not (1 <= settings.offspring <= 32):
            raise ValueError(f"bad search settings: {settings}")
        self.table = load_table(settings.data)
        xtr, self.xte = self.table.tensors(device)
        self.batch_size = TABLES[settings.data]["batch_size"]
        self.p = Protocol(search_iterations=settings.budget, offspring=settings.offspring)
        self.search = Search(xtr, settings.layers, self.batch_size, self.p, instances=1, seed=settings.seed)
        self.gaussian = gaussian_bpd(self.table.train, self.table.test)
        self.phase = "search"
        self.points: list[tuple[int, float, bool]] = []  # (iteration, offspring loss, accepted)
        self.final: PopulationFlow | None = None
        self.final_steps: list[int] = []
        self.final_curve: list[np.ndarray] = []
        self.results: dict | None = None
        self.samples: np.ndarray | None = None
        super().__init__(self.search.best, xtr, settings, seed=settings.seed, film_every=10 ** 9)

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def _update(self, action: str) -> tuple[dict[str, torch.Tensor], bool]:
        if self.phase == "search":
            if self.search.done:  # a budget of 0 iterations left: straight to the final phase
                self._start_final()
                return {}, False
            rec = self.search.step()
            j = int(rec.offspring[0].argmin())
            for i, v in enumerate(rec.offspring[0]):
                self.points.append((rec.iteration, float(v), bool(rec.accepted[0]) and i == j))
            if self.search.done:
                self._start_final()
            best = float(rec.best[0])  # inf while every structure so far has diverged: nothing to plot yet
            return ({"best": torch.tensor(best)} if math.isfinite(best) else {}), True
        if self.phase == "final":
            done = self.final_steps[-1] if self.final_steps else 0
            _, curve = train_population(self.final, self.data, self.chunk, self.batch_size, self.p,
                                        self._final_gen, start=done, curve_every=1, opt=self._final_opt)
            self.final_steps.append(done + self.chunk)
            losses = curve.cpu().numpy()
            losses[~np.isfinite(losses)] = np.nan
            self.final_curve.append(np.nanmean(losses, 0))  # the chunk's mean: one batch alone is noisy
            if done + self.chunk >= self.p.iterations:
                self._finish()
        return {}, False

    def _start_final(self) -> None:
        self.final, self._final_gen = final_populations(self.data, self.search.best.masks, self.settings.layers,
                                                        self.settings.seed + 1, self.p)
        self._final_opt = sgd(self.final, self.p)
        self.phase = "final"

    def _finish(self) -> None:
        tr, te = self.final.evaluate(self.data).cpu().numpy(), self.final.evaluate(self.xte).cpu().numpy()
        self.results = {lay: {"train": float(tr[i]), "test": float(te[i])} for i, lay in enumerate(LAYOUTS)}
        g = torch.Generator(device=self.data.device).manual_seed(self.settings.seed)
        self.samples = self.final.sample(1000, g)[LAYOUTS.index("opt")].cpu().numpy()
        self.phase = "done"

    def draw(self) -> dict:
        pts = np.array(self.points, dtype=float).reshape(-1, 3)
        return {"phase": self.phase, "iteration": self.search.iteration, "budget": self.p.search_iterations,
                "masks": self.search.best.masks[0].cpu().numpy().copy(), "points": pts,  # a copy: the job moves on
                "final_steps": list(self.final_steps),
                "final_curve": np.stack(self.final_curve) if self.final_curve else np.zeros((0, 3)),
                "final_total": self.p.iterations, "results": self.results, "gaussian": self.gaussian,
                "samples": self.samples, "columns": self.table.columns}


def search_target(live: LiveSearch):
    """The job target of a live search: one search iteration (or 50 final SGD steps) per chunk,
    so Pause and Stop act within one iteration; it returns when the run is done."""
    from .live import live_target
    return live_target(live, publish_every=0.5, chunk=1)


def readme_markdown(results: dict) -> str:
    """The compact tables of docs/structure-search-summary.md: test bits/dim per depth and layout, per data set."""
    out = []
    for name, r in results.items():
        depths = list(r["depths"])
        out += [f"**{r['label']}**: test bits/dim, mean ± std over {r['instances']} instances; flows "
                f"{r['seconds_flows'] / 60:.1f} min, reference flows {r['reference']['seconds'] / 60:.1f} min.", "",
                "| layout | " + " | ".join(f"L = {L}" for L in depths) + " |",
                "| --- |" + " --- |" * len(depths)]
        for lay in LAYOUTS:
            out.append(f"| {lay} | " + " | ".join(_pm(r["depths"][L][lay]["test"]) for L in depths) + " |")
        out += ["", f"Same split, no depth: full-covariance Gaussian **{r['gaussian']['test']:.3f}**; reference flow "
                f"**{_pm(r['reference']['test'])}** (per seed: "
                + ", ".join("–" if v is None else f"{v:.3f}" for v in r["reference"]["test"]["values"]) + ").", ""]
    return "\n".join(out)
