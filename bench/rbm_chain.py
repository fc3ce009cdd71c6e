"""An RBM's Gibbs chain beside busy Python threads: the eager loop against the compiled one,
side by side in one run.

In a Streamlit server every session's script runs on its own thread of one process. Torch
gives Python's lock (the GIL) back for each operation and takes it again afterwards; when other
threads are running Python, each taking-back can wait for them. The Energy Models view's chain
(16 chains, 200 Gibbs sweeps, a frame every 10) is about 1,600 such operations eagerly; a served
RBM (genlab.serving.serve, as a server's shared models are) runs the sweeps as a TorchScript loop
instead (the model's `sweeps`, compiled), one call per block of sweeps, with the same numbers.

This runs that chain with the shipped rbm-mnist-h500 (a fresh RBM of its size without it),
alone and beside 1 and 2 threads that only run Python, the eager loop (`run_chain` over `gibbs`)
and the served model's chain alternating, and prints the median and worst time of each and the
ratio eager / compiled.

Run: python bench/rbm_chain.py [--repeats 8] [--busy 0 1 2]
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
from genlab.models.rbm import RBM, RBMConfig  # noqa: E402
from genlab.samplers import run_chain  # noqa: E402


def load() -> tuple[RBM, str]:
    return shipped("rbm-mnist-h500", lambda: RBM(RBMConfig(data_shape=(1, 28, 28), hidden=500)), "a fresh 784 x 500 RBM")


def chain(models: dict[bool, RBM], v0: torch.Tensor, compiled: bool) -> tuple[float, torch.Tensor]:
    """The chain eagerly with the plain model (models[False]), or compiled with its served copy."""
    g = torch.Generator().manual_seed(0)
    model = models[compiled]
    with torch.no_grad():
        t0 = time.perf_counter()
        if compiled:
            frames, _ = model.chain(v0, 200, 10, g)
        else:
            frames, _ = run_chain(lambda v: model.gibbs(v, g), model.free_energy, v0, 200, 10)
        return (time.perf_counter() - t0) * 1000, frames


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2], help="threads running Python beside the chain")
    a = ap.parse_args()
    model, what = load()
    models = {False: model, True: serving.serve(copy.deepcopy(model))}
    v0 = torch.bernoulli(torch.full((16, 1, 28, 28), 0.5), generator=torch.Generator().manual_seed(1))
    for compiled in (False, True, False, True):  # warm both (the graph executor profiles its first runs)
        chain(models, v0, compiled)
    same = torch.equal(chain(models, v0, False)[1], chain(models, v0, True)[1])
    print(f"{what}, 16 chains x 200 sweeps, {torch.get_num_threads()} torch threads; compiled == eager: {same}")

    compare_beside_busy(lambda compiled: chain(models, v0, compiled)[0], ("eager", "compiled"), a.repeats, a.busy)

if __name__ == "__main__":
    main()
