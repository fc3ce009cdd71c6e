"""genlab's training loop against a plain PyTorch reference, side by side in one run.

Both train the same VAE (784-500-250-20, Bernoulli decoder, dynamic binarization, Adam,
batch 128) for one epoch on the 55k MNIST training images. The reference is the usual
notebook loop: DataLoader over a TensorDataset, shuffle=True. genlab keeps the data as one
tensor on the device and takes batches as index slices, with no per-step host sync.
The runs alternate (A B A B ...) so drift in machine load hits both.

Run: python bench/train_speed.py [--rounds 3] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import genlab  # noqa: E402
from genlab import TrainConfig, VAE, VAEConfig, fit  # noqa: E402
from genlab.data import load_mnist  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def genlab_epoch(x, device) -> float:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=20)).to(device)
    sync(device)
    t0 = time.perf_counter()
    fit(model, x, TrainConfig(epochs=1, batch_size=128, seed=0, binarize=True))
    sync(device)
    return time.perf_counter() - t0


def reference_epoch(x_cpu, device) -> float:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=20)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(x_cpu), batch_size=128, shuffle=True)
    sync(device)
    t0 = time.perf_counter()
    model.train()
    for (xb,) in loader:
        xb = torch.bernoulli(xb.to(device))
        loss = model.loss_terms(xb)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        _ = loss.item()  # the usual running-loss logging line
    sync(device)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default=None)
    a = ap.parse_args()
    device = genlab.pick_device(a.device)
    x_cpu = load_mnist("train").x
    x = x_cpu.to(device)
    print(f"device {genlab.describe_device(device)}, torch {torch.__version__}, {len(x)} images, batch 128")
    g, r = [], []
    for i in range(a.rounds):
        if i % 2 == 0:  # alternate which loop goes first, so warm-up and drift hit both
            r.append(reference_epoch(x_cpu, device))
            g.append(genlab_epoch(x, device))
        else:
            g.append(genlab_epoch(x, device))
            r.append(reference_epoch(x_cpu, device))
        print(f"round {i + 1}: reference {r[-1]:.2f} s, genlab {g[-1]:.2f} s")
    gm, rm = statistics.median(g), statistics.median(r)
    print(f"median epoch: genlab {gm:.2f} s, reference DataLoader loop {rm:.2f} s")
    print(f"ratio genlab / reference = {gm / rm:.2f}x  (target <= 1.0x)")


if __name__ == "__main__":
    main()
