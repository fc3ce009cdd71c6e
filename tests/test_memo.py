"""genlab.memo.SharedMemo: one computation per key for every caller, bounded, thread-safe."""
import threading
import time

import numpy as np
import pytest
import torch

from genlab.memo import SharedMemo, size_of


def test_same_key_computes_once_and_returns_the_same_object():
    m = SharedMemo()
    calls = []
    a = m.get(("k", 1), lambda: calls.append(1) or b"png")
    b = m.get(("k", 1), lambda: calls.append(1) or b"other")
    assert a is b and calls == [1]
    assert m.get(("k", 2), lambda: b"two") == b"two"
    assert (m.hits, m.misses, len(m)) == (1, 2, 2)


def test_concurrent_callers_wait_for_one_computation():
    m = SharedMemo()
    started, release = threading.Event(), threading.Event()
    calls, results = [], []

    def slow():
        calls.append(threading.get_ident())
        started.set()
        release.wait(5)
        return object()

    threads = [threading.Thread(target=lambda: results.append(m.get("key", slow))) for _ in range(8)]
    threads[0].start()
    assert started.wait(5)
    for t in threads[1:]:
        t.start()
    time.sleep(0.2)  # the seven others are now waiting on the first one's computation
    assert len(calls) == 1
    release.set()
    for t in threads:
        t.join(5)
    assert len(calls) == 1 and len(results) == 8 and all(r is results[0] for r in results)


def test_a_failed_computation_is_not_kept_and_a_waiter_tries_again():
    m = SharedMemo()
    started, release = threading.Event(), threading.Event()

    def fails():
        started.set()
        release.wait(5)
        raise RuntimeError("boom")

    errors, results = [], []
    first = threading.Thread(target=lambda: errors.append(pytest.raises(RuntimeError, m.get, "k", fails)))
    first.start()
    assert started.wait(5)
    second = threading.Thread(target=lambda: results.append(m.get("k", lambda: "ok")))
    second.start()
    time.sleep(0.1)
    release.set()
    first.join(5)
    second.join(5)
    assert len(errors) == 1 and results == ["ok"] and "k" in m


def test_least_recently_used_values_go_first_when_the_bytes_run_out():
    m = SharedMemo(max_bytes=300)
    for k in "abc":
        m.get(k, lambda: bytes(100))
    m.get("a", lambda: b"")  # a is now the most recently used
    m.get("d", lambda: bytes(100))  # 400 bytes: b, the least recently used, goes
    assert "b" not in m and all(k in m for k in "acd") and m.bytes == 300
    m.get("huge", lambda: bytes(1000))  # larger than the whole cache: returned, not kept
    assert "huge" not in m and m.bytes == 300
    small = SharedMemo(max_entries=2)
    for k in "xyz":
        small.get(k, lambda: b"1")
    assert len(small) == 2 and "x" not in small


def test_size_of_counts_buffers():
    assert size_of(b"12345") == 5
    assert size_of(torch.zeros(10, dtype=torch.float32)) == 40
    assert size_of(np.zeros((4, 4), dtype=np.uint8)) == 16
    assert size_of((b"12", [b"3456"])) == 16 + 2 + 16 + 4
    import plotly.graph_objects as go
    fig = go.Figure(go.Scatter(x=np.arange(10_000.0), y=np.arange(10_000.0)))
    assert size_of(fig) >= 2 * 80_000  # two arrays of 10,000 float64
