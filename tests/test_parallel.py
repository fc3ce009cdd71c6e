"""genlab.parallel: parts computed on the caller's thread and on free helpers, in order."""
import threading

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


def test_helpers_compute_in_the_callers_torch_mode_and_errors_reach_the_caller(helpers):
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

    def fail(p):
        if p == 3:
            raise ValueError("part 3")
        return p

    with pytest.raises(ValueError, match="part 3"):
        parallel.map_parts(fail, list(range(5)))


def test_helpers_for_a_server():
    assert parallel.helpers_for(2, 1) == 1
    assert parallel.helpers_for(16, 8) == 1
    assert parallel.helpers_for(8, 2) == 3
    assert parallel.helpers_for(1, 1) == 0
    assert parallel.helpers_for(4, 4) == 0
    with pytest.raises(ValueError):
        parallel.set_helpers(-1)
