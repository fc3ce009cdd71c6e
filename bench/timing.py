"""Timing helpers the benchmarks share: wait for the device, and the median and worst of repeats."""
from __future__ import annotations

import statistics
import time

import torch


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer measures it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int) -> tuple[float, float]:
    """(median, max) seconds of `repeats` calls of fn, each bracketed by device syncs."""
    out = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return statistics.median(out), max(out)
