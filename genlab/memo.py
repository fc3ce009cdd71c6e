"""A cache that every session of one server shares: bounded, thread-safe, single-flight.

A class opens the same link: thirty sessions ask for the same pictures (the same model, seed
and sliders). `SharedMemo.get(key, compute)` computes a value once and hands the same object
to everyone who asks for that key afterwards; when several ask at once, one computes and the
others wait for its result instead of computing it too. Values must be treated as read-only
(PNG bytes, tuples, figures nobody mutates). The cache holds at most `max_bytes` (by an
estimate of each value's size) and `max_entries`, dropping the least recently used first.
A compute that raises caches nothing: the next caller tries again.
"""
from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

import numpy as np
import torch


def size_of(value: Any) -> int:
    """An estimate of the bytes a value holds (its buffers, not Python's object headers)."""
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.numel()
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (list, tuple, set, frozenset)):
        return 16 + sum(size_of(v) for v in value)
    if isinstance(value, dict):
        return 32 + sum(size_of(k) + size_of(v) for k, v in value.items())
    if hasattr(value, "to_plotly_json"):  # a plotly figure: its traces' arrays and its layout
        return size_of(value.to_plotly_json())
    if hasattr(value, "__dataclass_fields__"):
        return 32 + sum(size_of(getattr(value, f)) for f in value.__dataclass_fields__)
    return sys.getsizeof(value)


class SharedMemo:
    def __init__(self, max_bytes: int = 256 << 20, max_entries: int = 4096):
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self._values: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._pending: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._values

    def get(self, key: Hashable, compute: Callable[[], Any], size: int | None = None) -> Any:
        """The value for `key`, computed by `compute()` once for all callers. `size` overrides
        the estimate of its bytes (for objects `size_of` cannot see into)."""
        while True:
            with self._lock:
                if key in self._values:
                    self._values.move_to_end(key)
                    self.hits += 1
                    return self._values[key][0]
                busy = self._pending.get(key)
                if busy is None:  # nobody computes it: this caller does
                    busy = self._pending[key] = threading.Lock()
                    busy.acquire()
                    break
            with busy:  # someone else computes it: wait, then look again (it may have failed)
                pass
        try:
            value = compute()
            n = size_of(value) if size is None else int(size)
            with self._lock:
                self.misses += 1
                if n <= self.max_bytes:
                    self._values[key] = (value, n)
                    self.bytes += n
                    while self.bytes > self.max_bytes or len(self._values) > self.max_entries:
                        _, (_, dropped) = self._values.popitem(last=False)
                        self.bytes -= dropped
            return value
        finally:
            with self._lock:
                self._pending.pop(key, None)
            busy.release()

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self.bytes = 0
