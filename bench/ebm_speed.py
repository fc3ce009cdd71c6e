"""EBM speed: what the Energy Models view and `eval` ask of the shipped EBM.

1. One Langevin step of 64 chains (energy, its input gradient, the update), median of repeats.
2. 64 chains x 256 steps from noise: the length `sample` runs, what a grid costs.
3. The same 256 steps as the view runs them: slices of 50 steps with a preview in between,
   against one call, to show what streaming frames costs (the ratio).
4. One training update (60 Langevin steps on 128 buffer chains, then the loss step).

Run: python bench/ebm_speed.py [--device cpu|cuda] [--checkpoint checkpoints/ebm-mnist]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import genlab  # noqa: E402
from timing import timed  # noqa: E402
from genlab import store  # noqa: E402




def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "ebm-mnist"))
    a = ap.parse_args()
    device = genlab.pick_device(a.device)
    model, card = store.load(a.checkpoint, device)
    model.requires_grad_(False)
    model.eval()
    cfg = model.config
    print(f"device {genlab.describe_device(device)}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{card['name']}: channels {cfg.channels}, step size {cfg.step_size}, noise {cfg.noise}")
    g = torch.Generator(device=device).manual_seed(0)
    x64 = torch.rand(64, *cfg.data_shape, generator=g, device=device)
    with torch.no_grad():
        med, worst = timed(lambda: model.langevin(x64, 1, g), device, a.repeats)
        print(f"one Langevin step, 64 chains: median {1000 * med:.2f} ms, max {1000 * worst:.2f} ms")
        med_one, _ = timed(lambda: model.chain(x64, 256, 256, g), device, 3)
        print(f"64 chains x 256 steps, one call: median {med_one:.2f} s ({256 / med_one:.0f} steps/s)")

        def sliced():
            x = x64
            for _ in range(0, 256, 50):
                f, _ = model.chain(x, 50, 10, g)
                x = f[-1]
                _ = x[:16].cpu()  # the preview the view draws between slices
        med_sl, _ = timed(sliced, device, 3)
        print(f"the same, in slices of 50 with a frame every 10 and a preview: median {med_sl:.2f} s "
              f"({med_sl / med_one:.2f}x one call)")
    model.train()
    model.requires_grad_(True)
    (opt,) = model.configure_optimizers(1e-4)
    batch = torch.rand(128, *cfg.data_shape, generator=g, device=device)
    med, _ = timed(lambda: model.train_step(batch, [opt], g), device, 5)
    print(f"one training update ({cfg.steps} Langevin steps on 128 chains + the loss step): median {1000 * med:.0f} ms")


if __name__ == "__main__":
    main()
