"""Idle cores for a computation that splits into independent parts.

A server gives each computation one thread per half of the cores (`device.server_threads`), so
that two sessions' computations run side by side instead of fighting over one barrier. When
only one session computes, the other half of the machine idles. `map_parts` lends it: the
caller computes the parts in order, and a helper thread that is free takes the next part not yet
started. The caller never waits for a part nobody has begun, so a busy machine costs it nothing
but a lock per part, and the results are the parts' results in their order, whichever thread
computed them (a part is computed the same way on any thread).

No helpers until `set_helpers` asks for them: the command line and the tests compute every part
on the caller's thread, as torch's own threads already use every core there.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

import torch

P = TypeVar("P")
R = TypeVar("R")

_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
_HELPERS = 0


def set_helpers(n: int) -> None:
    """Lend up to n helper threads to each split computation (0: none). A server calls it once."""
    global _POOL, _HELPERS
    if n < 0:
        raise ValueError(f"helpers must be 0 or more, not {n}")
    with _LOCK:
        if n > 0 and (_POOL is None or n > _POOL._max_workers):  # a pool only grows: its threads stay warm
            old, _POOL = _POOL, ThreadPoolExecutor(n, thread_name_prefix="genlab-helper")
            if old is not None:
                old.shutdown(wait=False)
        _HELPERS = n


def helpers() -> int:
    return _HELPERS


def helpers_for(cores: int, threads: int) -> int:
    """Helpers for a server whose computations take `threads` threads each on `cores` cores: one
    per further computation that fits beside the caller's (2 cores, 1 thread: 1 helper)."""
    return max(0, cores // max(1, threads) - 1)


def map_parts(fn: Callable[[P], R], parts: Sequence[P]) -> list[R]:
    """[fn(p) for p in parts], with the parts a free helper thread starts first computed there.

    The helpers run under the caller's gradient and inference modes (thread-local in torch). An
    exception in any part is raised here, after every started part has finished."""
    n, pool = len(parts), _POOL
    k = min(_HELPERS, n - 1)
    if k <= 0 or pool is None:
        return [fn(p) for p in parts]
    results: list = [None] * n
    errors: list[BaseException | None] = [None] * n
    finished = [threading.Event() for _ in range(n)]
    nxt, lock = [0], threading.Lock()

    def work() -> None:
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n:
                return
            try:
                results[i] = fn(parts[i])
            except BaseException as e:  # noqa: BLE001 - handed to the caller below
                errors[i] = e
            finally:
                finished[i].set()

    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def helper() -> None:
        if inference:
            with torch.inference_mode():
                work()
        else:
            with torch.set_grad_enabled(grad):
                work()

    for _ in range(k):
        pool.submit(helper)  # a helper that starts after the caller took the last part returns at once
    work()
    for f in finished:
        f.wait()
    for e in errors:
        if e is not None:
            raise e
    return results
