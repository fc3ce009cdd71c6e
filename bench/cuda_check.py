"""The CUDA path, end to end, for every registered family (run it where a GPU is; CI has none).

For each family's example configs: a recipe-free fit of a few dozen steps on the GPU with data
of the declared shape, `sample` on the GPU, a save and a load back onto the GPU with identical
samples, the likelihood records where declared; then a live GAN run stepped by a job thread
on the GPU. Prints one line per check and exits non-zero on the first failure.

Run: python bench/cuda_check.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genlab import data, store  # noqa: E402
from genlab.jobs import JobManager  # noqa: E402
from genlab.live import LiveGAN, LiveSettings, live_target  # noqa: E402
from genlab.models import build, families, family, sample  # noqa: E402
from genlab.train import TrainConfig, fit  # noqa: E402


def data_for(caps, n, device):
    shape = tuple(caps.data_shape)
    if shape == (1, 8, 8):
        return data.load_digits8("train", device).x[:n]
    if shape == (1, 28, 28):
        return data.load_mnist("train", device, limit=n).x
    if shape == (2,):
        return data.toy2d("ring8", n, device=device)
    return torch.randn(n, *shape, device=device)


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device here")
        return 2
    dev = torch.device("cuda")
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in families():
            for i, cfg in enumerate(family(name).examples()):
                torch.manual_seed(0)
                model = build(name, cfg).to(dev)
                caps = model.capabilities
                label = f"{name}[{i}] {family(name).label(cfg)}"
                if not hasattr(model, "train_step"):
                    print(f"ok  {label}: built on {next(model.parameters()).device} (not trained here)")
                    continue
                x = data_for(caps, 512, dev)
                t0 = time.perf_counter()
                h = fit(model, x, TrainConfig(epochs=2, batch_size=64, lr=1e-3, check_every=8,
                                              binarize=caps.draw == "bernoulli"))
                torch.cuda.synchronize()
                s = sample(model, 8, torch.Generator(device=dev).manual_seed(1))
                assert s.device.type == "cuda" and torch.isfinite(s).all(), label
                store.save(model, Path(tmp) / f"m{name}{i}")
                back, _ = store.load(Path(tmp) / f"m{name}{i}", dev)
                s2 = sample(back, 8, torch.Generator(device=dev).manual_seed(1))
                assert torch.allclose(s, s2, atol=1e-5), f"{label}: reloaded samples differ"
                extra = ""
                if caps.likelihoods:
                    recs = model.likelihoods(x[:64], **({"k": 5} if "iw" in caps.likelihoods else {}))
                    extra = ", " + ", ".join(f"{r.method} {r.value:.2f}" for r in recs)
                print(f"ok  {label}: {h.n_steps} steps in {time.perf_counter() - t0:.1f} s, "
                      f"sample {tuple(s.shape)} on cuda, reload identical{extra}")
        from genlab.models import GANConfig
        gan = build("gan", GANConfig(arch="mlp")).to(dev)
        live = LiveGAN(gan, data.load_mnist("train", dev, limit=2048).x, LiveSettings(), seed=0)
        job = JobManager().start(live_target(live), "cuda")
        t0 = time.perf_counter()
        while job.snapshot().extra.get("g_steps", 0) < 200 and time.perf_counter() - t0 < 60:
            time.sleep(0.2)
        job.stop()
        job.join(10)
        steps = job.snapshot().extra.get("g_steps", 0)
        assert steps >= 200 and job.snapshot().state == "stopped", job.snapshot()
        print(f"ok  live GAN on cuda: {steps} generator steps in {time.perf_counter() - t0:.1f} s, stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
