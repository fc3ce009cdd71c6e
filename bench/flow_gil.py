"""A RealNVP decode beside busy Python threads: eager against traced, side by side in one run.

In a Streamlit server every session's script runs on its own thread of one process. Torch
gives Python's lock (the GIL) back for each operation and takes it again afterwards; when other
threads are running Python, each taking-back can wait for them. A flow's inverse is a few
hundred small operations, so eagerly it waits a few hundred times. A served image flow
(genlab.serving.serve, as a server's shared models are) runs its inference as traced graphs
instead: the same operations and numbers, one call a slice.

This decodes what the Flow view draws for a new seed (24 samples: 8 noise vectors at three
temperatures) with the shipped checkpoint (a fresh model of its configuration without it),
alone and beside 1 and 2 threads that only run Python, the plain model (eager) and a served copy
(traced) alternating, and prints the median and worst time of each and the ratio eager / traced.

Run: python bench/flow_gil.py [--repeats 8] [--busy 0 1 2]
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from busy import compare_beside_busy, shipped  # noqa: E402
from genlab import serving  # noqa: E402
from genlab.models.flow import Flow, FlowConfig  # noqa: E402


def load() -> tuple[Flow, str]:
    return shipped("realnvp-mnist", lambda: Flow(FlowConfig(hidden=96, couplings=(3, 3, 3))),
                   "a fresh RealNVP of the shipped configuration")


def timed(model: Flow, z: torch.Tensor) -> float:
    with torch.inference_mode():
        t0 = time.perf_counter()
        model.decode(z)
        return (time.perf_counter() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2], help="threads running Python beside the decode")
    a = ap.parse_args()
    model, what = load()
    g = torch.Generator().manual_seed(0)
    eps = model.prior_sample(8, g)
    z = torch.cat([t * eps for t in (0.5, 0.75, 1.0)])  # (24, 784): the Flow view's temperatures
    models = {False: model, True: serving.serve(copy.deepcopy(model))}  # plain (eager), served (traced)
    for traced in (False, True, False, True):  # warm both paths (the graph executor profiles its first runs)
        timed(models[traced], z)
    with torch.inference_mode():
        same = torch.equal(models[False].decode(z), models[True].decode(z))
    print(f"{what}, 24 samples, {torch.get_num_threads()} torch threads; traced == eager: {same}")

    compare_beside_busy(lambda traced: timed(models[traced], z), ("eager", "traced"), a.repeats, a.busy)

if __name__ == "__main__":
    main()
