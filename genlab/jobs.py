"""Background training jobs: a thread trains, the page polls a lock-protected snapshot.

Only the page's script calls streamlit; a job's thread touches nothing but its model and
its snapshot. Jobs are bounded in number, pause and stop when asked, and stop themselves
when nobody has polled them for `idle_timeout` seconds (the tab was closed) or on error.
"""
from __future__ import annotations

import atexit
import copy
import itertools
import queue
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

from . import serving
from .train import Divergence, History, Progress, StopTraining

MAX_RUNNING = 2
IDLE_TIMEOUT_S = 60.0
ACTIVE = ("starting", "running", "paused")


class JobRefused(RuntimeError):
    """A job could not start; the message says why (for example, too many running)."""


@dataclass
class Snapshot:
    """What the page shows: a copy, safe to read without the lock."""

    state: str = "starting"  # starting | running | paused | done | stopped | error
    message: str = ""
    fraction: float = 0.0
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    total_steps: int = 0
    elapsed: float = 0.0
    eta: float = 0.0
    recent: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def steps_per_s(self) -> float:
        return self.step / self.elapsed if self.elapsed > 0 else 0.0


class JobControl:
    """Handed to the training thread: publish progress, obey pause/stop, notice idleness."""

    def __init__(self, job: "Job"):
        self._job = job

    def publish(self, **fields: Any) -> None:
        with self._job._lock:
            for k, v in fields.items():
                setattr(self._job._snap, k, v)

    @property
    def pause_requested(self) -> bool:
        return self._job._pause.is_set()

    def commands(self) -> list[tuple[str, dict]]:
        """Drain the commands the page sent (handled by the training thread, never the page)."""
        out = []
        while True:
            try:
                out.append(self._job._commands.get_nowait())
            except queue.Empty:
                return out

    def check(self, on_command: Callable[[str, dict], None] | None = None) -> None:
        """Block while paused (running `on_command` for commands sent meanwhile);
        raise StopTraining when stopped or abandoned."""
        job = self._job
        while True:
            if on_command is not None:
                for name, args in self.commands():
                    on_command(name, args)
                    with job._done_cond:
                        job._done += 1
                        job._done_cond.notify_all()
            if job._stop.is_set():
                raise StopTraining()
            if time.monotonic() - job._last_poll > job.idle_timeout:
                job._stop_reason = f"stopped: nobody watched it for {job.idle_timeout:.0f} s (page closed?)"
                raise StopTraining()
            if not job._pause.is_set():
                job._parked.clear()
                return
            self.publish(state="paused")
            job._parked.set()
            job._wake.wait(0.25)
            job._wake.clear()
            if not job._pause.is_set():
                self.publish(state="running")


class Job:
    """One training run on a daemon thread. `target(control)` does the work and returns a result."""

    _ids = itertools.count(1)

    def __init__(self, target: Callable[[JobControl], Any], label: str = "", idle_timeout: float = IDLE_TIMEOUT_S):
        self.id = next(self._ids)
        self.label = label
        self.idle_timeout = idle_timeout
        self.result: Any = None
        self._target = target
        self._lock = threading.Lock()
        self._snap = Snapshot()
        self._stop = threading.Event()
        self._pause = threading.Event()
        self._parked = threading.Event()  # set while the thread sits in check(), paused
        self._wake = threading.Event()
        self._commands: queue.Queue = queue.Queue()
        self._sent = 0
        self._done = 0
        self._done_cond = threading.Condition()
        self._stop_reason = ""
        self._last_poll = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"genlab-job-{self.id}", daemon=True)

    def _run(self) -> None:
        serving.training_started()  # a shorter GIL switch interval while any job trains
        try:
            self._work()
        finally:
            serving.training_ended()

    def _work(self) -> None:
        ctl = JobControl(self)
        ctl.publish(state="running")
        try:
            try:
                self.result = self._target(ctl)
            except StopTraining:
                pass  # a target may end by letting the stop propagate
            if self._stop.is_set() or self._stop_reason:
                ctl.publish(state="stopped", message=self._stop_reason or "stopped")
            else:
                ctl.publish(state="done", message="finished", fraction=1.0)
        except Divergence as e:
            ctl.publish(state="error", message=str(e))
        except Exception as e:  # surfaced to the page, never swallowed
            ctl.publish(state="error", message=f"{type(e).__name__}: {e}",
                        extra={"traceback": traceback.format_exc(limit=5)})

    # -- called from the page -------------------------------------------------
    def start(self) -> "Job":
        self._thread.start()
        _LIVE.add(self)
        return self

    def snapshot(self) -> Snapshot:
        """A copy of the current state; counts as a poll (keeps the job alive)."""
        self._last_poll = time.monotonic()
        with self._lock:
            return copy.deepcopy(self._snap)

    def send(self, name: str, **args: Any) -> None:
        """Queue a command for the training thread (e.g. one step while paused, new settings)."""
        self._last_poll = time.monotonic()
        with self._done_cond:
            self._sent += 1
        self._commands.put((name, args))
        self._wake.set()

    def wait_commands(self, timeout: float = 1.0) -> bool:
        """Wait until the thread has carried out every command sent so far (True), or time out."""
        with self._done_cond:
            return self._done_cond.wait_for(lambda: self._done >= self._sent or not self.alive, timeout)

    @property
    def state(self) -> str:
        """The current state without copying the snapshot (counts as a poll)."""
        self._last_poll = time.monotonic()
        with self._lock:
            return self._snap.state

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def step(self) -> int:
        with self._lock:
            return self._snap.step

    def pause(self) -> None:
        self._pause.set()
        with self._lock:
            if self._snap.state == "running":
                self._snap.state = "paused"  # the thread parks at its next check (a few steps)

    def wait_parked(self, timeout: float = 1.0) -> bool:
        """After pause(): wait until the thread has parked (its snapshot is then final), or time out."""
        return self._parked.wait(timeout) or not self.alive

    def resume(self) -> None:
        self._last_poll = time.monotonic()
        self._parked.clear()
        self._pause.clear()
        self._wake.set()
        with self._lock:
            if self._snap.state == "paused":
                self._snap.state = "running"

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


_LIVE: "weakref.WeakSet[Job]" = weakref.WeakSet()


@atexit.register
def _stop_jobs_at_exit(timeout: float = 5.0) -> None:
    """Stop and join every job still training when the interpreter exits (Ctrl-C on the
    server, the end of a test run). Job threads are daemons; one left inside a torch call
    while the interpreter finalizes can abort the process instead of letting it exit."""
    jobs = [j for j in list(_LIVE) if j.alive]
    for j in jobs:
        j.stop()
    end = time.monotonic() + timeout
    for j in jobs:
        j.join(max(0.0, end - time.monotonic()))


class JobManager:
    """Starts jobs while fewer than `max_running` are alive; refuses with a reason otherwise."""

    def __init__(self, max_running: int = MAX_RUNNING):
        self.max_running = max_running
        self._jobs: list[Job] = []
        self._lock = threading.Lock()

    def running(self) -> list[Job]:
        with self._lock:
            self._jobs = [j for j in self._jobs if j.alive]
            return list(self._jobs)

    def start(self, target: Callable[[JobControl], Any], label: str = "", idle_timeout: float = IDLE_TIMEOUT_S) -> Job:
        with self._lock:
            self._jobs = [j for j in self._jobs if j.alive]
            if len(self._jobs) >= self.max_running:
                raise JobRefused(f"{len(self._jobs)} training jobs are already running on this server "
                                 f"(the limit is {self.max_running}); wait for one to finish or stop yours")
            job = Job(target, label, idle_timeout).start()
            self._jobs.append(job)
            return job


def run_target(run) -> Callable[[JobControl], Any]:
    """A job target that trains a `recipes.Run` (anything with `.fit(callback)`) and publishes
    progress and history at every check. The job's result is the History."""
    def target(ctl: JobControl):
        def on_progress(p: Progress) -> None:
            hist = p.history.to_dict(max_points=400) if p.epoch_done and p.history else None
            fields = dict(fraction=p.fraction, epoch=p.epoch, epochs=p.epochs, step=p.step,
                          total_steps=p.total_steps, elapsed=p.elapsed, eta=p.eta, recent=p.recent)
            if hist is not None:
                fields["history"] = hist
            ctl.publish(**fields)
            ctl.check()

        history: History = run.fit(callback=on_progress)
        ctl.publish(history=history.to_dict(max_points=400))
        return history
    return target
