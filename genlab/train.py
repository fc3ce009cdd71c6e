"""One training loop for every family.

The data set is one tensor on the device and batches are index slices of a seeded
permutation. Per-step scalars stay on the device in a small buffer and come to the host
once every `check_every` steps; that is where the NaN/Inf guard, the last-good-weights
snapshot and the progress callback run, so there is no host sync on ordinary steps.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    binarize: bool = True  # dynamic binarization of every batch (Bernoulli decoders)
    check_every: int = 50  # steps between host syncs (NaN guard, progress, snapshot)
    max_steps: int | None = None  # stop early after this many steps (tests, quick demos)
    precision: str = "fp32"  # "bf16": autocast matmuls and convolutions to bfloat16 (CPUs with AMX, recent GPUs)

    def __post_init__(self):
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision is fp32 or bf16, not {self.precision!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.check_every < 1:
            raise ValueError("epochs, batch_size and check_every must be >= 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"learning rate must be a positive number, not {self.lr}")


class StopTraining(Exception):
    """Raised by a callback to end training early; the loop returns the history so far."""


class Divergence(RuntimeError):
    """A loss became NaN or Inf; the model holds the last good weights again."""


@dataclass
class Progress:
    """What a callback sees at each check: position, speed and recent loss means."""

    epoch: int
    epochs: int
    step: int
    total_steps: int
    elapsed: float
    recent: dict[str, float]
    epoch_done: bool = False
    history: "History | None" = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / max(1, self.total_steps))

    @property
    def eta(self) -> float:
        return self.elapsed / max(self.step, 1) * max(0, self.total_steps - self.step)


@dataclass
class History:
    """Per-step scalars and per-epoch train/validation summaries."""

    steps: dict[str, list[float]] = field(default_factory=dict)
    epochs: list[dict] = field(default_factory=list)
    train_time_s: float = 0.0

    @property
    def n_steps(self) -> int:
        return len(next(iter(self.steps.values()), []))

    def to_dict(self, max_points: int = 1000) -> dict:
        """JSON-ready; per-step series averaged into at most `max_points` bins."""
        n = self.n_steps
        bins = max(1, math.ceil(n / max_points))
        steps = {"step": [min(n, (i + 1) * bins) for i in range(math.ceil(n / bins))]}
        for k, v in self.steps.items():
            a = np.asarray(v, dtype=np.float64)
            pad = (-len(a)) % bins
            means = np.concatenate([a, np.full(pad, np.nan)]).reshape(-1, bins)
            steps[k] = [round(float(m), 5) for m in np.nanmean(means, axis=1)]
        return {"steps": steps, "epochs": self.epochs, "train_time_s": round(self.train_time_s, 2)}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        steps = {k: v for k, v in d.get("steps", {}).items() if k != "step"}
        return cls(steps=steps, epochs=list(d.get("epochs", [])), train_time_s=d.get("train_time_s", 0.0))


@torch.no_grad()
def evaluate(model, x: torch.Tensor, batch_size: int = 1000, binarize_seed: int | None = 0) -> dict:
    """Mean of the model's loss terms over x (validation); binarized once with a fixed seed.

    Returns floats, and lists for vector terms (the KL per latent dimension).
    """
    was_training = model.training
    model.eval()
    g = torch.Generator(device=x.device).manual_seed(1234)
    sums: dict[str, torch.Tensor] = {}
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        if binarize_seed is not None:
            xb = torch.bernoulli(xb, generator=torch.Generator(device=x.device).manual_seed(binarize_seed + i))
        for k, v in model.loss_terms(xb, g).items():
            sums[k] = sums.get(k, 0) + v * len(xb)
    model.train(was_training)
    out = {}
    for k, v in sums.items():
        v = (v / len(x)).cpu()
        out[k] = v.item() if v.ndim == 0 else [round(t, 5) for t in v.tolist()]
    return out


def fit(model, train_x: torch.Tensor, cfg: TrainConfig, val_x: torch.Tensor | None = None,
        callback: Callable[[Progress], None] | None = None, history: History | None = None) -> History:
    """Train `model` on the rows of `train_x` (already on the model's device).

    Args:
        model: any model with configure_optimizers / train_step (models/base.py).
        train_x: (N, ...) data tensor; batches are index slices of it.
        cfg: the training configuration.
        val_x: optional validation tensor, scored after every epoch with `evaluate`.
        callback: called with a Progress at every check and epoch end; may raise StopTraining.
        history: an existing History to extend (resuming).
    Returns:
        The History. Raises Divergence (weights restored to the last good check) on NaN/Inf.
    """
    device = train_x.device
    history = history or History()
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    optimizers = model.configure_optimizers(cfg.lr)
    n = len(train_x)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    good_state = copy.deepcopy(model.state_dict())
    good_step = 0
    keys: list[str] | None = None
    buf: torch.Tensor | None = None  # (check_every, K) scalars still on the device
    filled = 0
    step = 0
    t0 = time.perf_counter()
    model.train()

    def flush(epoch: int, epoch_done: bool):
        nonlocal filled, good_state, good_step
        rows = buf[:filled].cpu().numpy() if filled else np.zeros((0, len(keys or [])))  # the one host sync
        filled = 0
        if not np.isfinite(rows).all():
            bad = step - len(rows) + int(np.argmax(~np.isfinite(rows).all(1))) + 1
            model.load_state_dict(good_state)
            raise Divergence(f"training diverged: a loss became NaN or Inf at step {bad} (epoch {epoch}). "
                             f"The weights from step {good_step}, the last good check, are restored. "
                             f"Try a lower learning rate.")
        for j, k in enumerate(keys or []):
            history.steps.setdefault(k, []).extend(rows[:, j].tolist())
        good_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        good_step = step
        history.train_time_s += time.perf_counter() - t_mark[0]
        t_mark[0] = time.perf_counter()
        if callback is not None:
            recent = {k: float(rows[:, j].mean()) for j, k in enumerate(keys or [])} if len(rows) else {}
            callback(Progress(epoch, cfg.epochs, step, total, time.perf_counter() - t0, recent, epoch_done, history))

    t_mark = [time.perf_counter()]
    try:
        for epoch in range(1, cfg.epochs + 1):
            perm = torch.randperm(n, generator=gen, device=device)
            vec_sums: dict[str, torch.Tensor] = {}
            first_step = step
            for i in range(0, n, cfg.batch_size):
                if step >= total:
                    break
                xb = train_x[perm[i:i + cfg.batch_size]]
                if cfg.binarize:
                    xb = torch.bernoulli(xb, generator=gen)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                    out = model.train_step(xb, optimizers, gen)
                if keys is None:
                    keys = [k for k, v in out.items() if v.ndim == 0]
                    buf = torch.empty(cfg.check_every, len(keys), device=device)
                buf[filled] = torch.stack([out[k].float() for k in keys])
                for k, v in out.items():
                    if v.ndim > 0:
                        vec_sums[k] = vec_sums.get(k, 0) + v
                filled += 1
                step += 1
                if filled == cfg.check_every:
                    flush(epoch, False)
            if step == first_step:
                break
            done_steps = step - first_step
            # epoch summary: train means from the host-side history, validation from evaluate()
            flush_rows = filled
            if flush_rows:
                flush(epoch, False)
            train_means = {k: round(float(np.mean(history.steps[k][-done_steps:])), 5) for k in keys}
            for k, v in vec_sums.items():
                train_means[k] = [round(t, 5) for t in (v / done_steps).cpu().tolist()]
            record = {"epoch": epoch, "step": step, "train": train_means,
                      "time_s": round(time.perf_counter() - t0, 2)}
            if val_x is not None and hasattr(model, "loss_terms"):
                record["val"] = evaluate(model, val_x, binarize_seed=0 if cfg.binarize else None)
            history.epochs.append(record)
            if callback is not None:
                callback(Progress(epoch, cfg.epochs, step, total, time.perf_counter() - t0,
                                  {k: train_means[k] for k in keys}, True, history))
            if step >= total:
                break
    except StopTraining:
        if filled and keys:
            rows = buf[:filled].cpu().numpy()
            if np.isfinite(rows).all():
                for j, k in enumerate(keys):
                    history.steps.setdefault(k, []).extend(rows[:, j].tolist())
    model.eval()
    return history


def config_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg)
