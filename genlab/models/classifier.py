"""The MNIST classifier genlab measures generated digits with.

A small CNN: a 3x3 convolution, pooling, two more 3x3 convolutions, pooling (each
convolution batch-normalised), a 128-unit hidden layer
(the feature space of FID, precision/recall and feature-space nearest neighbours), and
ten logits. It is stored like any checkpoint (family "classifier") but is not a
generative model, so the views' model pickers leave it out.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import Capabilities, Preset, eval_mode, option, register


@dataclass
class ClassifierConfig:
    data_shape: tuple[int, ...] = option((1, 28, 28), "image shape (C, H, W)", cli=False)
    channels: tuple[int, int] = (32, 64)
    features: int = 128
    n_classes: int = 10
    dropout: float = 0.3


def _fit(recipe, device: torch.device, out, say: Callable[[str], None]) -> tuple[tuple, dict]:
    """`python -m genlab train classifier`: fit on MNIST's labels (outside the one loop, which
    sees images only), store the test accuracy and MNIST's features beside the weights."""
    import time

    from .. import data, store
    from ..evaluation import embed_mnist
    tc = recipe.train
    torch.manual_seed(tc.seed)
    train = data.load_images("mnist", "train", device, limit=recipe.limit)
    val, test = data.load_images("mnist", "val", device), data.load_images("mnist", "test", device)
    model = Classifier(recipe.config).to(device)
    say(f"training the MNIST classifier ({sum(p.numel() for p in model.parameters()):,} parameters) on "
        f"{len(train)} images")
    t0 = time.perf_counter()

    def tick(epoch, step, total):
        sys.stderr.write(f"\rclassifier epoch {epoch}/{tc.epochs} {100 * step / total:5.1f}%  "
                         f"{time.perf_counter() - t0:5.0f} s")
        sys.stderr.flush()

    hist = train_classifier(model, train.x, train.y, epochs=tc.epochs, batch_size=tc.batch_size, lr=tc.lr,
                            seed=tc.seed, val=(val.x, val.y), progress=tick)
    m = {"test_accuracy": round(accuracy(model, test.x, test.y), 5), "test_images": len(test)}
    paths = store.save(model, out, dataset={"name": "mnist", "split": "train", "n": len(train)},
                       history={"epochs": hist, "train_time_s": round(time.perf_counter() - t0, 2)}, metrics=m,
                       extra_tensors=embed_mnist(model, device),
                       train_config={"epochs": tc.epochs, "batch_size": tc.batch_size, "lr": tc.lr, "seed": tc.seed,
                                     "augment": "random shifts of up to 2 pixels", "device": str(device)},
                       likelihoods=[])
    return paths, m


@register("classifier", ClassifierConfig, label=lambda cfg: "classifier", trainer=lambda *a: _fit(*a),
          presets={"classifier": Preset(help="the MNIST classifier that measures sample quality")},
          make_config=lambda opts, shape, dataset: (ClassifierConfig(data_shape=shape, **opts),
                                                    {"lr": 1e-3, "batch_size": 128}),
          describe=lambda cfg: "the MNIST classifier that sample quality is measured with (not a generative model)",
          metrics={"test_accuracy": "test accuracy"},
          examples=lambda: [ClassifierConfig(channels=(4, 8), features=16)])
class Classifier(nn.Module):
    """Images in [0, 1] -> logits; `features` gives the penultimate activations."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        c_in, h, w = config.data_shape
        c1, c2 = config.channels
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.Conv2d(c2, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.fc = nn.Linear(c2 * (h // 4) * (w // 4), config.features)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.features, config.n_classes)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(data_kind="image", data_shape=tuple(self.config.data_shape), generative=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, features), the penultimate layer (after ReLU)."""
        return F.relu(self.fc(self.conv(x - 0.5).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(self.features(x)))

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, class probabilities) of many images, in eval mode, batched."""
        feats, probs = [], []
        with eval_mode(self):
            for i in range(0, len(x), batch_size):
                f = self.features(x[i:i + batch_size].contiguous(memory_format=torch.channels_last))
                feats.append(f)
                probs.append(torch.softmax(self.out(f), dim=1))
        return torch.cat(feats), torch.cat(probs)


def _shift(x: torch.Tensor, g: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random translations by up to `max_shift` pixels (one shift per batch, zero fill)."""
    dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=g))
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def train_classifier(model: Classifier, x: torch.Tensor, y: torch.Tensor, epochs: int = 4, batch_size: int = 128,
                     lr: float = 1e-3, seed: int = 0, val: tuple[torch.Tensor, torch.Tensor] | None = None,
                     progress: Callable[[int, int, float], None] | None = None) -> list[dict]:
    """Adam with a cosine learning-rate decay and small random shifts; data stays on its device.

    The running loss stays on the device and is read once per epoch. Returns one record per epoch.
    """
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, epochs * steps_per_epoch) / (epochs * steps_per_epoch))))
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(x), generator=g).to(x.device)
        total = torch.zeros((), device=x.device)
        for j, i in enumerate(range(0, len(x), batch_size)):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(_shift(x[idx], g)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach()
            if progress is not None and j % 50 == 0:
                progress(epoch, (epoch - 1) * steps_per_epoch + j, epochs * steps_per_epoch)
        rec = {"epoch": epoch, "train_loss": round(total.item() / steps_per_epoch, 5)}
        if val is not None:
            rec["val_accuracy"] = round(accuracy(model, *val), 5)
        history.append(rec)
        print(f"\nepoch {epoch}: {rec}", file=sys.stderr)
    model.eval()
    return history


@torch.no_grad()
def accuracy(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    _, p = model.embed(x)
    return (p.argmax(1) == y).float().mean().item()
