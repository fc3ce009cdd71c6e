"""RBM speed: what the Energy Models view and `eval` ask of the shipped 500-hidden RBM.

1. AIS for log Z: 100 chains x 10,000 inverse temperatures (the settings every reported
   likelihood uses), timed once.
2. One Gibbs frame for 64 chains (v -> h -> v, what a live chain shows per step), and a
   200-step chain of 16 (what the view computes when a control changes, with the model served
   as the server shares it: genlab.serving), median of repeats.

Run: python bench/rbm_speed.py [--device cpu|cuda] [--repeats 30]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import genlab  # noqa: E402
from timing import sync, timed  # noqa: E402
from genlab import serving, store  # noqa: E402
from genlab.data import load_mnist  # noqa: E402




def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "rbm-mnist-h500"))
    a = ap.parse_args()
    device = genlab.pick_device(a.device)
    model, _ = store.load(a.checkpoint, device)
    mean = load_mnist("train", device).x.mean(0)
    print(f"device {genlab.describe_device(device)}, torch {torch.__version__}, {model.config.hidden} hidden units")
    g = torch.Generator(device=device).manual_seed(0)
    with torch.inference_mode():
        v64 = torch.bernoulli(torch.full((64, 784), 0.5, device=device), generator=g)
        med, worst = timed(lambda: model.gibbs(v64, g), device, a.repeats)
        print(f"one Gibbs frame, 64 chains: median {1000 * med:.2f} ms, max {1000 * worst:.2f} ms "
              f"({1 / med:.0f} frames/s; the eye asks for about 30)")
        v16 = v64[:16].view(16, 1, 28, 28)
        served = serving.serve(model)  # the sweeps compiled, as the view's shared model runs them
        med, worst = timed(lambda: served.chain(v16, 200, 10, g), device, max(3, a.repeats // 10))
        print(f"a 200-step chain of 16, a frame every 10: median {1000 * med:.1f} ms, max {1000 * worst:.1f} ms")
        sync(device)
        t0 = time.perf_counter()
        r = model.ais_log_z(mean, chains=100, betas=10_000, generator=g)
        sync(device)
        print(f"AIS, 100 chains x 10,000 temperatures: {time.perf_counter() - t0:.1f} s, "
              f"log Z = {r['log_z']:.2f} +- {r['stderr']:.3f}")


if __name__ == "__main__":
    main()
