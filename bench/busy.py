"""Shared by bench/flow_gil.py, bench/rbm_chain.py and bench/flow_parts.py: the shipped model
they time, and two ways of one computation timed alternating, alone and beside threads that
only run Python (a class's other sessions)."""
from __future__ import annotations

import statistics
import sys
import threading
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def shipped(name: str, fresh: Callable[[], object], what: str):
    """(model in eval mode, what it is): the shipped checkpoint `name`, or `fresh()` (a model of
    its configuration, described by `what`) where the checkpoint is not there."""
    from genlab import store
    path = ROOT / "checkpoints" / name
    if path.with_suffix(".json").exists():
        return store.load(path)[0].eval(), f"shipped {name}"
    return fresh().eval(), what


def spin(stop: threading.Event) -> None:
    """Run Python (and so hold the GIL) until told to stop."""
    n = 0
    while not stop.is_set():
        n += 1


def compare_beside_busy(timed: Callable[[bool], float], names: tuple[str, str], repeats: int,
                        busy: list[int]) -> None:
    """For each count in `busy`, start that many spinning threads and time `timed(False)` (the
    first way, `names[0]`) and `timed(True)` (the second) `repeats` times each, alternating;
    print the median and worst of each (ms) and the ratio first / second."""
    for n in busy:
        stop = threading.Event()
        threads = [threading.Thread(target=spin, args=(stop,), daemon=True) for _ in range(n)]
        for t in threads:
            t.start()
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(repeats):
            for second in (False, True):
                times[second].append(timed(second))
        stop.set()
        for t in threads:
            t.join()
        a, b = statistics.median(times[False]), statistics.median(times[True])
        print(f"beside {n} busy Python thread(s): {names[0]} median {a:7.0f} ms (worst {max(times[False]):5.0f}), "
              f"{names[1]} median {b:5.0f} ms (worst {max(times[True]):5.0f}); {names[0]} / {names[1]} {a / b:5.2f}x")
