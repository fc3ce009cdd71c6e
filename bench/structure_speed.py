"""Structure search, batched against sequential, in one run on one machine.

The same work two ways: I searches (Algorithm 1, a fixed number of iterations of 50 SGD steps
each) and then 3I full trainings (parity, random, found), either as one population model
(stacked weights, one batched step for all members) or one member at a time in a loop. The
results are the same computation (tests/test_structure.py checks that batched and single
updates agree); the bench prints the wall times and their ratio.

Run: python bench/structure_speed.py [--data magic] [--layers 8] [--instances 20]
     [--iterations 10] [--final 250] [--device cpu|cuda]
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
from timing import sync  # noqa: E402
from genlab import structure as S  # noqa: E402
from genlab.tabular import TABLES, load_table  # noqa: E402



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="magic", choices=list(TABLES))
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--instances", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=10, help="search iterations timed (the paper runs 200)")
    ap.add_argument("--final", type=int, default=250, help="SGD iterations of the full trainings timed (1250 in "
                    "the protocol)")
    ap.add_argument("--device", default=None)
    a = ap.parse_args()
    device = genlab.pick_device(a.device)
    x = load_table(a.data).tensors(device)[0]
    bs = TABLES[a.data]["batch_size"]
    p = S.Protocol(search_iterations=a.iterations)
    I, L = a.instances, a.layers
    print(f"device {genlab.describe_device(device)}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{a.data}, L={L}, {I} instances, {a.iterations} search iterations x 50 SGD steps, "
          f"then {3 * I} trainings of {a.final} steps")

    def search(instances, seed):
        s = S.Search(x, L, bs, p, instances=instances, seed=seed)
        s.run()
        return s

    def final(masks, seed):
        pop, g = S.final_populations(x, masks, L, seed, p)
        S.train_population(pop, x, a.final, bs, p, g)
        return pop

    search(1, 0)  # warm-up
    rows = []
    for label, fn in (
        ("batched", lambda: final(search(I, 0).best.masks, 1)),
        ("sequential", lambda: [final(search(1, i).best.masks, 1 + i) for i in range(I)]),
    ):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        rows.append((label, time.perf_counter() - t0))
        print(f"{label:10s} {rows[-1][1]:7.1f} s")
    ratio = rows[1][1] / rows[0][1]
    print(f"batched is {ratio:.1f}x faster than the loop over single flows")
    per_iter = rows[0][1] / (a.iterations * 50 + a.final)
    print(f"batched: {1000 * per_iter:.2f} ms per SGD step of {I} (search) or {3 * I} (final) members")


if __name__ == "__main__":
    main()
