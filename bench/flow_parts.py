"""The Flow view's decode as a server computes it: one torch thread, the batch in one piece, in
slices, and in slices lent to an idle core (genlab.serving, genlab.parallel), side by side in one run.

A server gives each computation one thread on this 2-core machine (genlab.serving.server_threads),
so that two sessions compute side by side. The decode a new seed asks for (24 samples: 8 noise
vectors at three temperatures, through the shipped RealNVP, served: traced graphs) is timed three
ways, alternating:

  whole    the 24 images in one piece (what genlab did before: slices of 64)
  slices   two slices of 12 on the caller's thread (a slice's activations stay in the caches)
  helped   the same slices with one helper thread that takes the second when it is free

alone, and beside 1 and 2 threads that run other torch work (a class's other sessions). It
prints the median and worst of each, the ratios to `whole`, and whether every way gives the
numbers of `whole` bit for bit.

Run: python bench/flow_parts.py [--repeats 9] [--busy 0 1 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

torch.set_num_threads(1)  # one thread per computation, as a server on 2 cores runs them

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from flow_gil import load  # noqa: E402
from genlab import parallel, serving  # noqa: E402

WAYS = {"whole": (64, 0), "slices": (12, 0), "helped": (12, 1)}  # (images per slice, helpers)


def decode(model, z: torch.Tensor, way: str) -> tuple[float, torch.Tensor]:
    serving.ROWS_SLICE, helpers = WAYS[way]
    parallel.set_helpers(helpers)
    with torch.inference_mode():
        t0 = time.perf_counter()
        x = model.decode(z)
        return (time.perf_counter() - t0) * 1000, x


def torch_work(stop: threading.Event) -> None:
    """Another session's computation: matrix products on one thread, until told to stop."""
    a = torch.randn(384, 384)
    while not stop.is_set():
        a @ a


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2], help="threads of other torch work beside it")
    a = ap.parse_args()
    model, what = load()
    serving.serve(model)
    eps = model.prior_sample(8, torch.Generator().manual_seed(0))
    z = torch.cat([t * eps for t in (0.5, 0.75, 1.0)])  # (24, 784): the Flow view's temperatures
    outs = {w: [decode(model, z, w)[1] for _ in range(3)][-1] for w in WAYS}  # warm the traced graphs
    same = {w: torch.equal(outs[w], outs["whole"]) for w in WAYS}
    print(f"{what}, 24 samples, 1 torch thread per computation, {len(WAYS)} ways; the numbers of 'whole': {same}")
    for n in a.busy:
        stop = threading.Event()
        threads = [threading.Thread(target=torch_work, args=(stop,), daemon=True) for _ in range(n)]
        for t in threads:
            t.start()
        times: dict[str, list[float]] = {w: [] for w in WAYS}
        for _ in range(a.repeats):
            for w in WAYS:
                times[w].append(decode(model, z, w)[0])
        stop.set()
        for t in threads:
            t.join()
        med = {w: statistics.median(v) for w, v in times.items()}
        print(f"beside {n} busy torch thread(s): " + ", ".join(
            f"{w} {med[w]:4.0f} ms (worst {max(times[w]):4.0f})" for w in WAYS)
              + "; whole / " + ", whole / ".join(f"{w} {med['whole'] / med[w]:.2f}x" for w in WAYS if w != "whole"))
    parallel.set_helpers(0)


if __name__ == "__main__":
    main()
