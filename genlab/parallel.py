"""Spare cores for a computation that splits into independent parts: the serving layer's helper
threads (genlab.serving, which alone uses this module).

A server on a small machine gives each computation one thread (`serving.server_threads`), so
that two sessions' computations run side by side instead of fighting over one barrier. When
only one session computes, the other cores idle. `map_parts` lends them: the caller computes
the parts in order, and a helper thread that is free takes the next part not yet started. The
caller never waits for a part nobody has begun; it does wait at the end for a part a helper
began, and when the other cores are busy with other sessions that part runs no faster than on
the caller's own core (docs/serving.md). The results are the parts' results in their order,
whichever thread computed them.

A helper runs under the caller's gradient and inference modes (thread-local in torch); under
autocast, or anything else a thread carries that a helper would not (hooks, modes, streams),
lend nothing: the caller computes every part. `fn` must not wait for a lock its caller holds.

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
_POOL_SIZE = 0
_HELPERS = 0
MAX_HELPERS = 3  # past this, slices get too small to be worth a thread (24 images: 6 a slice)


def set_helpers(n: int) -> None:
    """Lend up to n helper threads to each split computation (0: none). A server calls it once
    (`serving.configure`)."""
    global _POOL, _POOL_SIZE, _HELPERS
    if n < 0:
        raise ValueError(f"helpers must be 0 or more, not {n}")
    with _LOCK:
        if n > _POOL_SIZE:  # a pool only grows: its threads stay warm
            old, _POOL, _POOL_SIZE = _POOL, ThreadPoolExecutor(n, thread_name_prefix="genlab-helper"), n
            if old is not None:
                old.shutdown(wait=False)
        _HELPERS = n


def helpers() -> int:
    return _HELPERS


def helpers_for(cores: int, threads: int) -> int:
    """Helpers for a server whose computations take `threads` threads each on `cores` cores: with
    one thread a computation, one per further core, at most MAX_HELPERS (2 cores: 1 helper). With
    more threads a computation, none: a helper would bring its own team of threads beside another
    session's, the oversubscription one thread a computation avoids (and not measured)."""
    return max(0, min(MAX_HELPERS, cores - 1)) if threads == 1 else 0


def _plain_thread_state() -> bool:
    """Whether a helper thread computes as the caller's thread would (no autocast on any device)."""
    return not any(torch.is_autocast_enabled(d) for d in ("cpu", "cuda"))


def map_parts(fn: Callable[[P], R], parts: Sequence[P], helpers: int | None = None) -> list[R]:
    """[fn(p) for p in parts], with the parts a free helper thread starts first computed there;
    `helpers` (default: what `set_helpers` said) caps how many helpers may join.

    The first error stops the claiming of further parts; it is raised here once the parts
    already started have finished (an error that is not an Exception, such as
    KeyboardInterrupt, at once)."""
    n, pool = len(parts), _POOL
    k = min(_HELPERS if helpers is None else min(helpers, _HELPERS), n - 1)
    if k <= 0 or pool is None or not _plain_thread_state():
        return [fn(p) for p in parts]
    results: list = [None] * n
    errors: list[BaseException | None] = [None] * n
    claimed = [False] * n
    finished = [threading.Event() for _ in range(n)]
    nxt, lock = [0], threading.Lock()

    def stop_claiming() -> None:
        with lock:
            nxt[0] = n

    def work() -> None:
        while True:
            with lock:
                i = nxt[0]
                if i >= n:
                    return
                nxt[0], claimed[i] = i + 1, True
            try:
                results[i] = fn(parts[i])
            except BaseException as e:  # noqa: BLE001 - handed to the caller below
                errors[i] = e
                stop_claiming()
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

    try:
        for _ in range(k):
            try:
                pool.submit(helper)  # a helper that starts after the caller took the last part returns at once
            except RuntimeError:  # the pool was just replaced (set_helpers): the caller does the parts
                break
        work()  # returns once every part is claimed, or claiming stopped at an error
        urgent = next((e for e in errors if e is not None and not isinstance(e, Exception)), None)
        if urgent is None:  # KeyboardInterrupt and the like: raised without waiting
            for i in range(n):
                if claimed[i]:
                    finished[i].wait()
    finally:
        stop_claiming()  # however the caller leaves, no helper starts another part for it
    first = urgent or next((e for e in errors if e is not None), None)
    if first is not None:
        del errors  # no cycle from this frame through the exception's traceback
        raise first
    return results
