"""Nearest training image of every sample of a 64-sample grid, as the Compare view asks it.

Side by side, in one run, on the same 64 generated digits against the 55,000 training images:
  pixel, genlab:        metrics.NearestNeighbours.pixel (a 129-d lower bound prunes, then
                         exact distances for the few it leaves)
  pixel, full product:   the whole 784-d product with precomputed norms, best 8 re-ranked
                         (what genlab did before the bound)
  pixel, cdist:          torch.cdist then argmin, the obvious way
  feature:               the classifier's features of the 64 samples, then the nearest of 55,000
                         feature rows
  feature, NCHW:         the same with the classifier in PyTorch's default (NCHW) layout, where
                         genlab keeps it channels-last
Prints medians and the ratio; also checks that both pixel searches agree. The feature timing
includes the classifier's forward pass.

Run: python bench/nearest.py [--model checkpoints/dcgan-mnist] [--repeats 30]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "checkpoints" / "gan-mlp-mnist"))
    ap.add_argument("--repeats", type=int, default=30)
    a = ap.parse_args()
    from genlab import evaluation, store
    ref = evaluation.load_reference(ROOT / "checkpoints")
    model, _ = store.load(a.model)
    samples = evaluation.sample_images(model, 64, seed=0)
    flat = ref.nn.pixels

    def cdist():
        return torch.cdist(samples.flatten(1), flat).min(1)

    norms = flat.pow(2).sum(1)

    def full_product():
        return ref.nn._nearest(samples.flatten(1), flat, norms)

    nchw = copy.deepcopy(ref.classifier).to(memory_format=torch.contiguous_format).eval()

    def feature_nchw():
        with torch.no_grad():
            return ref.nn.feature(nchw.features(samples.contiguous()))

    agree = bool((ref.nn.pixel(samples)[0] == cdist().indices).all())
    agree = agree and bool((full_product()[0] == cdist().indices).all())
    rounds = {"pixel, genlab": [], "pixel, full product": [], "pixel, torch.cdist": [],
              "feature (incl. classifier)": [], "feature, NCHW": []}
    for _ in range(3):  # alternate, so drifting machine load hits all three alike
        rounds["pixel, genlab"] += timed(lambda: ref.nn.pixel(samples), a.repeats // 3)
        rounds["pixel, full product"] += timed(full_product, a.repeats // 3)
        rounds["pixel, torch.cdist"] += timed(cdist, a.repeats // 3)
        rounds["feature (incl. classifier)"] += timed(lambda: ref.nn.feature(ref.embed(samples)[0]), a.repeats // 3)
        rounds["feature, NCHW"] += timed(feature_nchw, a.repeats // 3)
    med = {k: statistics.median(v) for k, v in rounds.items()}
    print(f"nearest training image of 64 samples of {Path(a.model).name} among {len(ref.train):,} "
          f"(torch threads {torch.get_num_threads()}):")
    for k, v in med.items():
        print(f"  {k:28s} median {v:6.1f} ms   p90 {sorted(rounds[k])[int(0.9 * (len(rounds[k]) - 1))]:6.1f} ms")
    print("  (target: a 64-sample grid's neighbours in <= 50 ms, in the space the view shows)")
    print(f"  genlab pixel search / full product: {med['pixel, genlab'] / med['pixel, full product']:.2f}x; "
          f"/ torch.cdist: {med['pixel, genlab'] / med['pixel, torch.cdist']:.2f}x; all three agree: {agree}")
    same = bool((ref.nn.feature(ref.embed(samples)[0])[0] == feature_nchw()[0]).all())
    print(f"  feature search, channels-last / NCHW classifier: "
          f"{med['feature (incl. classifier)'] / med['feature, NCHW']:.2f}x; same answers: {same}")


if __name__ == "__main__":
    main()
