"""genlab.parallel: parts computed on the caller's thread and on free helpers, in order."""
import threading
import time

import pytest
import torch

from genlab import parallel


@pytest.fixture
def helpers():
    before = parallel.helpers()
    yield parallel.set_helpers
    parallel.set_helpers(before)


def test_without_helpers_every_part_runs_on_the_callers_thread(helpers):
    helpers(0)
    seen = []
    out = parallel.map_parts(lambda p: seen.append(threading.current_thread().name) or p * p, [1, 2, 3])
    assert out == [1, 4, 9]
    assert set(seen) == {threading.current_thread().name}


def test_a_free_helper_takes_parts_and_the_results_keep_their_order(helpers):
    helpers(1)
    names, gate = {}, threading.Barrier(2, timeout=10)

    def fn(p):
        if p < 2:  # the first two parts wait for each other: they must run on two threads at once
            gate.wait()
        names[p] = threading.current_thread().name
        return -p

    assert parallel.map_parts(fn, list(range(6))) == [0, -1, -2, -3, -4, -5]
    assert names[0] != names[1]
    assert any(n.startswith("genlab-helper") for n in names.values())


def test_a_busy_pool_does_not_hold_the_caller_back(helpers):
    helpers(1)
    release, started = threading.Event(), threading.Event()
    parallel._POOL.submit(lambda: (started.set(), release.wait(10)))  # another computation holds the helper
    assert started.wait(10)
    try:
        seen = []
        out = parallel.map_parts(lambda p: seen.append(threading.current_thread().name) or p + 1, [1, 2, 3, 4])
        assert out == [2, 3, 4, 5]
        assert set(seen) == {threading.current_thread().name}  # every part done here, none waited for
    finally:
        release.set()


def test_helpers_compute_in_the_callers_torch_mode_and_autocast_keeps_every_part_here(helpers):
    helpers(1)
    gate = threading.Barrier(2, timeout=10)

    def mode(_):
        gate.wait()  # one part on each thread
        return torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    with torch.inference_mode():
        assert parallel.map_parts(mode, [0, 1]) == [(True, False)] * 2
    with torch.no_grad():
        assert parallel.map_parts(mode, [0, 1]) == [(False, False)] * 2
    assert parallel.map_parts(mode, [0, 1]) == [(False, True)] * 2
    seen = []
    with torch.autocast("cpu"):  # a helper would compute without it
        parallel.map_parts(lambda p: time.sleep(0.05) or seen.append(  # time enough for a helper to join, if let
            (threading.current_thread().name, torch.is_autocast_enabled("cpu"))), [0, 1, 2, 3])
    assert seen == [(threading.current_thread().name, True)] * 4


def test_an_error_on_a_helper_reaches_the_caller_and_stops_the_other_parts(helpers):
    helpers(1)
    gate, done = threading.Barrier(2, timeout=10), []

    def fn(p):
        done.append(p)
        if p < 2:
            gate.wait()  # parts 0 and 1 on two threads, the caller's and the helper's
        if threading.current_thread().name.startswith("genlab-helper"):
            raise ValueError(f"part {p} on the helper")
        time.sleep(0.05)
        return p

    with pytest.raises(ValueError, match="on the helper"):
        parallel.map_parts(fn, list(range(20)))
    assert len(done) < 5  # claiming stopped at the error: not every part was started


def test_a_keyboard_interrupt_is_raised_without_waiting_for_a_helpers_part(helpers):
    helpers(1)
    gate, release, finished = threading.Barrier(2, timeout=10), threading.Event(), []

    def fn(p):
        gate.wait()
        if p == 0:  # the caller's part
            raise KeyboardInterrupt
        release.wait(10)  # the helper's part: long
        finished.append(p)

    try:
        with pytest.raises(KeyboardInterrupt):
            parallel.map_parts(fn, [0, 1])
        assert not finished  # raised while the helper's part still ran
    finally:
        release.set()


def test_a_replaced_pool_and_a_nested_call_still_give_every_part(helpers):
    helpers(1)
    old = parallel._POOL
    helpers(2)  # a bigger pool: the old one is shut down
    assert parallel._POOL is not old
    parallel._POOL, new = old, parallel._POOL  # as if map_parts read the pool just before
    try:
        assert parallel.map_parts(lambda p: p * 3, [1, 2, 3]) == [3, 6, 9]  # its submit fails: done here
    finally:
        parallel._POOL = new
    assert parallel.map_parts(lambda p: parallel.map_parts(lambda q: p * 10 + q, [1, 2, 3]), [1, 2, 3]) == \
        [[11, 12, 13], [21, 22, 23], [31, 32, 33]]
    seen = []
    parallel.map_parts(lambda p: seen.append(threading.current_thread().name), [0, 1, 2], helpers=0)
    assert set(seen) == {threading.current_thread().name}  # the caller's own cap: no helper


def test_helpers_for_a_server():
    assert parallel.helpers_for(2, 1) == 1
    assert parallel.helpers_for(16, 1) == parallel.MAX_HELPERS
    assert parallel.helpers_for(16, 8) == 0  # a helper would bring its own team of threads
    assert parallel.helpers_for(1, 1) == 0
    assert parallel.helpers_for(4, 2) == 0
    with pytest.raises(ValueError):
        parallel.set_helpers(-1)
