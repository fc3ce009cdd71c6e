"""How long a diffusion model's pictures and training steps take, beside the shipped DCGAN's
decode of the same number of images, measured in one run on this machine.

Rows: a 16-image grid by DDIM with 10, 20 and 50 steps (with and without guidance where the
model is conditional), DDPM's ancestral sampler on all training steps for 16 images, one
training step at the recipe's batch, and training steps per second. Warm: each timed call is
repeated and the median is printed. The target: a 16-image DDIM-20 grid within 1 s on a warm
server (the Latent Explorer and the Diffusion view draw that).

Run: python bench/diffusion_speed.py [--ckpt checkpoints/ddpm-mnist] [--repeats 5] [--threads N]
     (without a checkpoint, an untrained model of the default config: the same cost)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genlab import load  # noqa: E402
from genlab.models.diffusion import Diffusion, DiffusionConfig  # noqa: E402


def timed(fn, repeats: int) -> float:
    fn()  # warm
    out = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", default=str(ROOT / "checkpoints" / "ddpm-mnist"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    if Path(a.ckpt + ".json").exists():
        model, _ = load(a.ckpt, dev)
        what = a.ckpt
    else:
        model, what = Diffusion(DiffusionConfig(num_classes=10)).to(dev), "an untrained default model"
    model.eval()
    print(f"{what} on {dev} ({torch.get_num_threads()} threads), {sum(p.numel() for p in model.net.parameters()):,} "
          "parameters in the network")
    g = torch.Generator(device=dev).manual_seed(0)
    z = model.prior_sample(16, g).view(16, *model.config.data_shape)
    labels = torch.arange(16, device=dev) % 10 if model.config.num_classes else None
    rows = []
    with torch.inference_mode():
        for steps in (10, 20, 50):
            rows.append((f"DDIM {steps} steps, 16 images, no label", timed(lambda s=steps: model.ddim(z, s), a.repeats)))
            if labels is not None:
                rows.append((f"DDIM {steps} steps, 16 images, guided", timed(
                    lambda s=steps: model.ddim(z, s, 0.0, labels), a.repeats)))
        T = model.config.timesteps
        rows.append((f"DDPM {T} steps, 16 images, no label", timed(lambda: model.ddim(z, T, 1.0, generator=g), 1)))
        dc_path = ROOT / "checkpoints" / "dcgan-mnist"
        if (dc_path.parent / "dcgan-mnist.json").exists():
            dc, _ = load(dc_path, dev)
            dc.eval()
            zz = dc.prior_sample(16, g)
            rows.append(("DCGAN decode, 16 images (reference)", timed(lambda: dc.decode(zz), a.repeats)))
    from genlab.data import load_mnist
    x = load_mnist("train", dev, limit=128)
    model.train()
    opt = model.configure_optimizers(2e-4)
    step = timed(lambda: model.train_step(x.x, opt, g, labels=x.y.to(dev) if model.config.num_classes else None),
                 a.repeats)
    rows.append(("one training step, batch 128", step))
    base = dict(rows).get("DDIM 20 steps, 16 images, no label")
    print(f"{'what':44s} {'median s':>9s} {'÷ DDIM-20':>10s}")
    for name, s in rows:
        print(f"{name:44s} {s:9.3f} {s / base:10.2f}")
    print(f"training: {1 / step:.2f} steps/s, an epoch of 60,000 digits {60000 / 128 * step / 60:.1f} min")
    print(f"target: a 16-image DDIM-20 grid within 1 s: {'met' if base <= 1.0 else 'NOT met'} ({base:.2f} s)")


if __name__ == "__main__":
    main()
