"""One training loop for every family.

The data set is one tensor on the device and batches are index slices of a seeded
permutation. Per-step scalars stay on the device in a small buffer and come to the host
once every `check_every` steps; that is where the NaN/Inf guard, the last-good-weights
snapshot and the progress callback run, so there is no host sync on ordinary steps.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .data import binarize
from .models.base import eval_mode


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    binarize: bool = False  # dynamic binarization of every batch (the recipe turns it on for Bernoulli decoders)
    check_every: int = 50  # steps between host syncs (NaN guard, progress, snapshot)
    max_steps: int | None = None  # stop early after this many steps (tests, quick demos, short fits of a search)
    precision: str = "fp32"  # "bf16": autocast matmuls and convolutions to bfloat16 (CPUs with AMX, recent GPUs)
    batches: str = "epoch"  # "epoch": a fresh permutation per epoch; "random": batches drawn with replacement

    def __post_init__(self):
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision is fp32 or bf16, not {self.precision!r}")
        if self.batches not in ("epoch", "random"):
            raise ValueError(f"batches is 'epoch' or 'random', not {self.batches!r}")
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
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a bin where a sparse key never appeared
                binned = np.nanmean(means, axis=1)
            steps[k] = [round(float(m), 5) if np.isfinite(m) else None for m in binned]
        return {"steps": steps, "epochs": self.epochs, "train_time_s": round(self.train_time_s, 2)}


def thin(series: dict[str, list], max_points: int) -> dict[str, list]:
    """Every k-th point of aligned per-step series (k chosen so at most ~max_points remain):
    what live views draw each second. `History.to_dict` averages bins instead, for cards."""
    n = len(next(iter(series.values()), []))
    stride = max(1, n // max_points)
    return {k: list(v)[::stride] for k, v in series.items()}


@torch.no_grad()
def evaluate(model, x: torch.Tensor, batch_size: int = 1000, binarize_seed: int | None = None) -> dict:
    """Mean of the model's loss terms over x (validation), binarized once with a fixed seed
    when `binarize_seed` is given (Bernoulli decoders).

    Returns floats, and lists for vector terms (the KL per latent dimension).
    """
    g = torch.Generator(device=x.device).manual_seed(1234)
    sums: dict[str, torch.Tensor] = {}
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            if binarize_seed is not None:
                xb = binarize(xb, torch.Generator(device=x.device).manual_seed(binarize_seed + i))
            for k, v in model.loss_terms(xb, g).items():
                sums[k] = sums.get(k, 0) + v * len(xb)
    out = {}
    for k, v in sums.items():
        v = (v / len(x)).cpu()
        out[k] = v.item() if v.ndim == 0 else [round(t, 5) for t in v.tolist()]
    return out


class StepBuffer:
    """Per-step scalars kept on the device until a check: one host sync for many steps.

    Keys may appear on some steps only (a family that logs one term every few steps);
    a step without a key reads as NaN in the history, and the NaN guard looks only at
    the values that were actually produced.
    """

    def __init__(self):
        self.pending: list[dict[str, torch.Tensor]] = []

    def add(self, out: dict[str, torch.Tensor]) -> None:
        self.pending.append({k: v for k, v in out.items() if v.ndim == 0})

    def drain(self) -> tuple[list[str], np.ndarray, tuple[int, list[str]] | None]:
        """(keys, rows (steps, keys) with NaN where a key was absent, and for the first step
        that produced a NaN/Inf its row index and the keys that did, else None). The one host sync."""
        rows_in, self.pending = self.pending, []
        keys: list[str] = []
        for out in rows_in:
            keys += [k for k in out if k not in keys]
        flat = [v.float() for out in rows_in for v in out.values()]
        vals = torch.stack(flat).cpu().numpy() if flat else np.zeros(0)
        rows = np.full((len(rows_in), len(keys)), np.nan)
        bad, j = None, 0
        for r, out in enumerate(rows_in):
            for k in out:
                rows[r, keys.index(k)] = vals[j]
                if not np.isfinite(vals[j]) and (bad is None or bad[0] == r):
                    bad = (r, (bad[1] if bad else []) + [k])
                j += 1
        return keys, rows, bad


def _extend(history: History, keys: list[str], rows: np.ndarray) -> None:
    """Append rows to the per-step history, NaN-padding keys that appear late or not at all."""
    n_before = history.n_steps
    for k in set(history.steps) | set(keys):
        col = rows[:, keys.index(k)] if k in keys else np.full(len(rows), np.nan)
        series = history.steps.setdefault(k, [math.nan] * n_before)
        series.extend(col.tolist())


def fit(model, train_x: torch.Tensor, cfg: TrainConfig, val_x: torch.Tensor | None = None,
        callback: Callable[[Progress], None] | None = None, history: History | None = None,
        optimizers: list | None = None, on_step: Callable[[int, list], None] | None = None,
        train_y: torch.Tensor | None = None) -> History:
    """Train `model` on the rows of `train_x` (already on the model's device).

    Args:
        model: any model with configure_optimizers / train_step (models/base.py).
        train_x: (N, ...) data tensor; batches are index slices of it.
        cfg: the training configuration.
        val_x: optional validation tensor, scored after every epoch with `evaluate` when the
            model's capabilities say it validates.
        callback: called with a Progress at every check and epoch end; may raise StopTraining.
        history: an existing History to extend (resuming).
        optimizers: reuse these instead of fresh ones (an outer loop that runs many short fits).
        on_step: called as on_step(step, optimizers) before every update (schedules, an outer
            loop's bookkeeping); keep it free of host syncs.
        train_y: the rows' class labels (on the same device), for a conditional model: each
            batch's labels go to train_step(..., labels=).
    Returns:
        The History. Raises Divergence (weights restored to the last good check) on NaN/Inf.
        Only the state_dict is snapshotted and restored: non-weight state (chains, replay
        buffers) lives outside it (plain attributes or non-persistent buffers).
    """
    device = train_x.device
    history = history or History()
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    optimizers = optimizers if optimizers is not None else model.configure_optimizers(cfg.lr)
    n = len(train_x)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    good_state = copy_state(model)
    good_step = 0
    buf = StepBuffer()
    step = 0
    t0 = time.perf_counter()
    t_mark = [t0]
    validate = val_x is not None and model.capabilities.validates
    model.train()

    def flush(epoch: int) -> dict[str, float]:
        nonlocal good_state, good_step
        keys, rows, bad = buf.drain()
        if bad is not None:
            model.load_state_dict(good_state)
            raise Divergence(f"training diverged: {', '.join(bad[1])} became NaN or Inf at step "
                             f"{step - len(rows) + bad[0] + 1} "
                             f"(epoch {epoch}). The weights from step {good_step}, the last good check, are "
                             f"restored. Try a lower learning rate.")
        _extend(history, keys, rows)
        good_state, good_step = copy_state(model), step
        history.train_time_s += time.perf_counter() - t_mark[0]
        t_mark[0] = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return {k: float(np.nanmean(rows[:, j])) for j, k in enumerate(keys)} if len(rows) else {}

    def batches(epoch_gen):
        if cfg.batches == "random":
            for _ in range(steps_per_epoch):
                yield torch.randint(0, n, (cfg.batch_size,), generator=epoch_gen, device=device)
        else:
            perm = torch.randperm(n, generator=epoch_gen, device=device)
            for i in range(0, n, cfg.batch_size):
                yield perm[i:i + cfg.batch_size]

    try:
        for epoch in range(1, cfg.epochs + 1):
            vec_sums: dict[str, torch.Tensor] = {}
            first_step = step
            for idx in batches(gen):
                if step >= total:
                    break
                xb = train_x[idx]
                if cfg.binarize:
                    xb = binarize(xb, gen)
                if on_step is not None:
                    on_step(step, optimizers)
                extra = {} if train_y is None else {"labels": train_y[idx]}
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                    out = model.train_step(xb, optimizers, gen, **extra)
                buf.add(out)
                for k, v in out.items():
                    if v.ndim > 0:
                        vec_sums[k] = vec_sums.get(k, 0) + v.detach()
                step += 1
                if len(buf.pending) == cfg.check_every:
                    recent = flush(epoch)
                    if callback is not None:
                        callback(Progress(epoch, cfg.epochs, step, total, time.perf_counter() - t0, recent,
                                          False, history))
            if step == first_step:
                break
            done_steps = step - first_step
            if buf.pending:
                flush(epoch)
            # epoch summary: train means from the host-side history, validation from evaluate()
            train_means = {}
            for k, series in history.steps.items():
                tail = np.asarray(series[-done_steps:], dtype=np.float64)
                if np.isfinite(tail).any():
                    train_means[k] = round(float(np.nanmean(tail)), 5)
            for k, v in vec_sums.items():
                train_means[k] = [round(t, 5) for t in (v / done_steps).cpu().tolist()]
            record = {"epoch": epoch, "step": step, "train": train_means,
                      "time_s": round(time.perf_counter() - t0, 2)}
            if validate:
                record["val"] = evaluate(model, val_x, binarize_seed=0 if cfg.binarize else None)
            history.epochs.append(record)
            if callback is not None:
                callback(Progress(epoch, cfg.epochs, step, total, time.perf_counter() - t0,
                                  {k: v for k, v in train_means.items() if not isinstance(v, list)}, True, history))
            if step >= total:
                break
    except StopTraining:
        keys, rows, bad = buf.drain()
        if bad is None and len(rows):
            _extend(history, keys, rows)
    model.eval()
    return history


def copy_state(model) -> dict[str, torch.Tensor]:
    """The weights (the state_dict) copied: the last-good snapshot the NaN guard restores."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
