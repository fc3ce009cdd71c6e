"""How fast the views answer, measured on the server side (no browser CPU in the figure).

1. Latent Explorer: the server time of one full script rerun after a slider change,
   through streamlit's AppTest (a full rerun; in the browser only the slider's fragment
   reruns, so this is an upper bound).
2. VAE Manifold: decoding a 20x20 grid of codes into one PNG (codes, decode, tile, encode).

Run: python bench/latency.py [--checkpoints checkpoints] [--reruns 60]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def explorer_reruns(n: int) -> list[float]:
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/latent_explorer.py").run()
    sm = next(s for s in at.slider if s.label.startswith("Scale of the means"))
    for v in (0.5, 1.0):  # warm caches
        sm.set_value(v).run()
    times = []
    for i in range(n):
        sm = next(s for s in at.slider if s.label.startswith("Scale of the means"))
        sm.set_value(round(-2.0 + 4.0 * (i % 20) / 19, 1))
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        assert not at.exception, at.exception
    return times


def manifold_decodes(n: int) -> list[float]:
    import torch
    import genlab
    from genlab import latent, viz
    model, _ = genlab.load(Path(os.environ["GENLAB_CHECKPOINTS"]) / "vae-mnist-z2")
    times = []
    for i in range(n + 3):
        t0 = time.perf_counter()
        with torch.inference_mode():
            z = latent.manifold_grid(20, 0.05 + 0.001 * (i % 10), 0.95)
            imgs = model.decode(z)  # (400, 1, 28, 28)
        png = viz.png_bytes(viz.grid_array(imgs, nrow=20, padding=1))
        times.append(time.perf_counter() - t0)
        assert len(png) > 1000
    return times[3:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    ap.add_argument("--reruns", type=int, default=60)
    a = ap.parse_args()
    os.environ["GENLAB_CHECKPOINTS"] = a.checkpoints
    import torch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, checkpoints {a.checkpoints}")
    ex = [t * 1000 for t in explorer_reruns(a.reruns)]
    mf = [t * 1000 for t in manifold_decodes(a.reruns)]
    print(f"{'measure':44s} {'median ms':>10s} {'p95 ms':>8s} {'target':>8s}")
    print(f"{'Latent Explorer rerun after a slider change':44s} {statistics.median(ex):10.1f} {pct(ex, 0.95):8.1f} {'<= 100':>8s}")
    print(f"{'20x20 manifold: decode + tile + PNG':44s} {statistics.median(mf):10.1f} {pct(mf, 0.95):8.1f} {'<= 100':>8s}")
    print(f"ratios to the 100 ms target (p95): explorer {pct(ex, 0.95) / 100:.2f}x, manifold {pct(mf, 0.95) / 100:.2f}x")


if __name__ == "__main__":
    main()
