"""RealNVP speed, side by side in one run.

1. Training: genlab's loop (data as one tensor on the device, index-slice batches, no per-step
   host sync) against the usual notebook loop (DataLoader over a TensorDataset, shuffle=True,
   `.item()` on the loss every step), the same flow and the same number of steps; the rounds
   alternate (A B A B) so drift in machine load hits both.
2. Sampling a 64-image grid (what the Latent Explorer and the Flow view draw), with the plain
   model and with a served copy (genlab.serving: traced graphs, as the server's shared models).
3. The test set's bits per dimension (10,000 images, one dequantisation draw), with the plain
   model as `python -m genlab eval` scores it.

Sampling and scoring use the shipped checkpoint when it is there (the size users get), else a
fresh model of the same configuration. Run: python bench/flow_speed.py [--device cuda]
[--images 12800] [--rounds 3]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import genlab  # noqa: E402
from genlab import serving, store  # noqa: E402
from genlab.data import load_mnist  # noqa: E402
from genlab.models import Flow, FlowConfig, config_from_dict  # noqa: E402
from genlab.train import TrainConfig, fit  # noqa: E402

CKPT = ROOT / "checkpoints" / "realnvp-mnist"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def config() -> FlowConfig:
    if CKPT.with_suffix(".json").exists():
        return config_from_dict("flow", store.read_card(CKPT)["config"])
    return FlowConfig(hidden=96)


def genlab_run(x, device, steps) -> float:
    torch.manual_seed(0)
    model = Flow(config()).to(device)
    sync(device)
    t0 = time.perf_counter()
    fit(model, x, TrainConfig(epochs=1, batch_size=128, seed=0, max_steps=steps))
    sync(device)
    return time.perf_counter() - t0


def reference_run(x_cpu, device, steps) -> float:
    torch.manual_seed(0)
    model = Flow(config()).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(x_cpu), batch_size=128, shuffle=True)
    sync(device)
    t0 = time.perf_counter()
    model.train()
    for i, (xb,) in enumerate(loader):
        if i == steps:
            break
        loss = model.loss_terms(xb.to(device))["loss"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        opt.step()
        _ = loss.item()  # the usual running-loss logging line
    sync(device)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default=None)
    ap.add_argument("--images", type=int, default=12_800, help="training images (steps = images / 128)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10, help="grid samples timed")
    a = ap.parse_args()
    device = genlab.pick_device(a.device)
    x_cpu = load_mnist("train", limit=a.images).x
    x = x_cpu.to(device)
    steps = a.images // 128
    print(f"device {genlab.describe_device(device)}, torch {torch.__version__}, RealNVP {config()}")
    g, r = [], []
    genlab_run(x[:1280], device, 5)  # warm-up (allocator, kernels)
    for i in range(a.rounds):
        g.append(genlab_run(x, device, steps))
        r.append(reference_run(x_cpu, device, steps))
        print(f"round {i + 1}: genlab {g[-1]:.2f} s, reference {r[-1]:.2f} s ({steps} steps of 128)")
    gm, rm = statistics.median(g), statistics.median(r)
    print(f"training: genlab {steps / gm:.1f} steps/s, reference {steps / rm:.1f} steps/s; "
          f"ratio genlab / reference time = {gm / rm:.2f}x (target <= 1.0x)")

    if CKPT.with_suffix(".json").exists():
        model, _ = store.load(CKPT, device)
        what = "the shipped realnvp-mnist"
    else:
        model, what = Flow(config()).to(device).eval(), "a fresh model (no shipped checkpoint)"
    for way, m in (("plain", model), ("served", serving.serve(copy.deepcopy(model)))):
        times = []
        with torch.inference_mode():
            m.sample(64, torch.Generator(device=device).manual_seed(0))
            for s in range(a.repeats):
                sync(device)
                t0 = time.perf_counter()
                m.sample(64, torch.Generator(device=device).manual_seed(s))
                sync(device)
                times.append(time.perf_counter() - t0)
        print(f"sampling a 64-image grid ({what}, {way}): median {1000 * statistics.median(times):.1f} ms, "
              f"max {1000 * max(times):.1f} ms over {a.repeats}")
    test = load_mnist("test", device).x
    sync(device)
    t0 = time.perf_counter()
    (rec,) = model.likelihoods(test, k=1)
    sync(device)
    print(f"test bits/dim of {len(test):,} images: {rec.bpd:.4f} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
