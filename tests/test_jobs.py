"""Background jobs: progress, pause, resume, stop, refusal, abandonment and errors."""
import time

import pytest

from conftest import wait_for
from genlab import recipes
from genlab.jobs import JobManager, JobRefused, run_target


def small_job(digits, epochs=200):
    run = recipes.Run(recipes.make_recipe("vae", data="digits8", hidden=(16,), latent_dim=2, epochs=epochs,
                                          batch_size=100, check_every=5))
    return run.model, run_target(run)


def test_job_trains_pauses_resumes_and_stops(digits):
    jm = JobManager(max_running=2)
    _, target = small_job(digits)
    job = jm.start(target, "t")
    assert wait_for(lambda: job.snapshot().step >= 10)
    job.pause()
    assert job.snapshot().state == "paused"
    time.sleep(0.3)  # let it park at its next check
    parked = job.snapshot().step
    time.sleep(0.5)
    assert job.snapshot().step == parked
    job.resume()
    assert wait_for(lambda: job.snapshot().step > parked)
    job.stop()
    job.join(10)
    s = job.snapshot()
    assert s.state == "stopped" and not job.alive and s.step < s.total_steps


def test_finished_job_publishes_history(digits):
    m, target = small_job(digits, epochs=2)
    job = JobManager().start(target)
    job.join(60)
    s = job.snapshot()
    assert s.state == "done" and s.fraction == 1.0
    assert len(s.history["epochs"]) == 2 and "val" in s.history["epochs"][-1]


def test_too_many_jobs_are_refused_with_a_reason(digits):
    jm = JobManager(max_running=1)
    _, t1 = small_job(digits)
    job = jm.start(t1)
    _, t2 = small_job(digits)
    with pytest.raises(JobRefused, match="limit is 1"):
        jm.start(t2)
    job.stop()
    job.join(10)
    _, t3 = small_job(digits, epochs=1)
    jm.start(t3).join(30)  # a slot is free again


def test_unwatched_job_stops_by_itself(digits):
    _, target = small_job(digits)
    job = JobManager().start(target, idle_timeout=0.5)
    job.join(30)
    s = job.snapshot()
    assert s.state == "stopped" and "nobody watched" in s.message


def test_errors_reach_the_page():
    def broken(ctl):
        raise ValueError("shapes do not match")
    job = JobManager().start(broken)
    job.join(5)
    s = job.snapshot()
    assert s.state == "error" and "shapes do not match" in s.message


def test_the_gil_switches_faster_only_while_some_job_trains():
    import sys
    import threading

    from genlab import serving
    before = sys.getswitchinterval()
    assert before > serving.TRAINING_SWITCH_INTERVAL  # Python's 5 ms: nothing trains
    gates = [threading.Event(), threading.Event()]
    seen = []

    def waits(gate):
        def target(ctl):
            seen.append(sys.getswitchinterval())
            gate.wait(10)
        return target
    a, b = JobManager(max_running=2).start(waits(gates[0])), JobManager(max_running=2).start(waits(gates[1]))
    assert wait_for(lambda: len(seen) == 2)
    assert seen == [serving.TRAINING_SWITCH_INTERVAL] * 2
    gates[0].set()
    a.join(5)
    assert sys.getswitchinterval() == serving.TRAINING_SWITCH_INTERVAL  # the other still trains
    gates[1].set()
    b.join(5)
    assert sys.getswitchinterval() == before

    def broken(ctl):
        raise ValueError("no")
    JobManager().start(broken).join(5)
    assert sys.getswitchinterval() == before  # an error restores it too


def test_cheap_state_reads_match_the_snapshot(digits):
    _, target = small_job(digits, epochs=2)
    job = JobManager().start(target)
    job.join(60)
    s = job.snapshot()
    assert (job.state, job.active, job.step) == (s.state, s.active, s.step) == ("done", False, s.total_steps)


def test_a_job_still_training_at_exit_is_stopped_cleanly(tmp_path):
    # Ctrl-C on the server or the end of a test run: the interpreter exits while a job trains.
    # The job must be told to stop (its target sees StopTraining and can clean up) and the
    # process must exit normally, not abort inside a torch call.
    import subprocess
    import sys
    from conftest import ROOT
    marker = tmp_path / "stopped"
    script = f"""
import time, torch
from genlab.jobs import JobManager
from genlab.train import StopTraining
def target(ctl):
    a = torch.randn(256, 256)
    try:
        while True:
            a = torch.tanh(a @ a)
            ctl.check()
    except StopTraining:
        open({str(marker)!r}, "w").write("yes")
        raise
job = JobManager().start(target)
while job.snapshot().state != "running":
    time.sleep(0.01)
time.sleep(0.3)
"""
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert marker.exists() and "terminate called" not in r.stderr
