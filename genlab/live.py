"""Live training for the browser: a run that steps a model one update at a time, obeys Pause /
Step / Stop and setting changes between chunks, guards against divergence, and publishes what
the page draws.

`LiveRun` is the family-free part (the step loop, pending scalars with one host sync per
flush, the last-good weights, the film, snapshots, the job target). A family plugs in by
subclassing it in its own file with `_update(action)` (one update, returning device scalars),
`apply(settings)` and `draw()`, a `Settings` dataclass and a `kind` that views pick trainers by,
and registering it as its descriptor's `live`. Everything here runs on the job's thread; the
page only sends commands and reads snapshots.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import torch

from .train import Divergence, StopTraining, copy_state, StepBuffer, thin
from .watch import FixedNoiseFilm, toy_measures

if TYPE_CHECKING:
    from .jobs import JobControl


class LiveRun:
    """One model trained update by update. Subclasses define `keys`, `actions`, `_update`,
    `apply` and `draw`; `steps` counts the updates that advance the run's clock.

    kind: what the run shows, for the views that pick live trainers: "adversarial" (two players
        stepped in turn: GAN Live) or "energy" (an energy model and its sampling chains).
    Settings: the dataclass of what a page may change while the run is paused.
    """

    keys: tuple[str, ...] = ()
    actions: tuple[str, ...] = ("step",)
    kind: str = ""
    Settings: type = type(None)

    def __init__(self, model, data: torch.Tensor, settings: Any, seed: int = 0, film: FixedNoiseFilm | None = None,
                 film_every: int = 100, toy: str | None = None):
        self.model, self.data, self.settings, self.toy = model, data, settings, toy
        self.device = data.device
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        self.film = film
        self.at_rest = False  # True while parked (paused, stopped): draw() may then add what a paused page shows
        self.film_every = film_every
        self.history: dict[str, list[float]] = {k: [] for k in ("step", *self.keys)}
        self.toy_history: list[dict] = []
        self.steps = 0
        self.started = time.perf_counter()
        self._buf = StepBuffer()  # scalars still on the device, as in `fit`
        self._buf_steps: list[int] = []
        self._last: dict[str, float] = {}
        self._good = copy_state(model)  # the last weights whose scalars were all finite
        model.train()
        self.record()

    # -- the family's part ------------------------------------------------------
    def _update(self, action: str) -> tuple[dict[str, torch.Tensor], bool]:
        """One update for `action`: (device scalars, whether the run's step counter advances)."""
        raise NotImplementedError

    def apply(self, settings: Any) -> None:
        self.settings = settings

    def draw(self) -> dict:
        """What the page draws besides the history (samples, a field): host tensors/arrays."""
        return {}

    @property
    def done(self) -> bool:
        """True when the run has finished by itself (a search with a budget); the job then ends."""
        return False

    # -- the common part --------------------------------------------------------
    def record(self) -> None:
        """A film frame (and toy measures) at the current step."""
        if self.film is not None:
            self.film.capture(self.model, self.steps)
        if self.toy:
            self.toy_history.append({"step": self.steps, **toy_measures(self.model, self.toy)})

    def step(self, action: str | None = None) -> None:
        """One update (the default action when none is named); no host sync."""
        action = action or self.actions[-1]
        if action not in self.actions:
            raise ValueError(f"unknown action {action!r}; this run knows {', '.join(self.actions)}")
        out, advanced = self._update(action)
        if advanced:
            self.steps += 1
        if out:  # an update with nothing to log (a search's final phase) adds no history row
            self._buf.add(out)
            self._buf_steps.append(self.steps)
        if advanced and self.steps % self.film_every == 0:
            self.flush()
            self.record()

    def flush(self) -> None:
        """Bring pending scalars to the host (one sync), check them, extend the history; a key a
        step did not produce (G's loss on a D step) keeps its last value."""
        if not self._buf.pending:
            return
        keys, rows, bad = self._buf.drain()
        steps, self._buf_steps = self._buf_steps, []
        if bad is not None:
            self.model.load_state_dict(self._good)
            raise Divergence(f"training diverged at step {steps[bad[0]]}: {', '.join(bad[1])} became NaN or Inf. "
                             "The job stopped with the last good weights restored; lower the learning rates, "
                             "then save or reset.")
        for step, row in zip(steps, rows):
            self._last.update({k: float(v) for k, v in zip(keys, row) if math.isfinite(v)})
            self.history["step"].append(step)
            for k in self.keys:
                self.history[k].append(self._last.get(k, float("nan")))
        self._good = copy_state(self.model)

    def history_dict(self, max_points: int = 2000) -> dict:
        """The card's history (the same sections a `fit` run writes), thinned to max_points."""
        out = {"steps": thin(self.history, max_points), "epochs": [],
               "train_time_s": round(time.perf_counter() - self.started, 2)}
        if self.toy:
            out["toy"] = list(self.toy_history)
        return out

    def snapshot(self, max_points: int = 2000) -> dict:
        """What the page draws; the history is thinned to at most `max_points` points so a long
        run does not make every poll copy more."""
        return {"steps": self.steps, "history": thin(self.history, max_points),
                "settings": asdict(self.settings), "film_steps": list(self.film.steps) if self.film else [],
                "toy_history": list(self.toy_history), **self.draw()}


def live_target(live: LiveRun, publish_every: float = 0.5, chunk: int = 10):
    """A job target: train in chunks, publish a snapshot about every `publish_every` seconds,
    and between chunks obey pause, stop, single steps and new settings."""
    ctl_ref: list[JobControl] = []

    def on_command(name: str, args: dict) -> None:
        live.at_rest = True  # commands come while parked
        if name == "step":
            live.step(args.get("action"))
            live.flush()
            ctl_ref[0].publish(extra=live.snapshot(), step=live.steps)
        elif name == "settings":
            live.apply(type(live.settings)(**args))
            ctl_ref[0].publish(extra=live.snapshot())

    def target(ctl: JobControl):
        ctl_ref.append(ctl)
        ctl.publish(extra=live.snapshot(), epochs=0)
        last = 0.0
        t0 = time.perf_counter()
        while True:
            if ctl.pause_requested and not live.at_rest:  # a Pause that came during a publish: draw the rest view first
                live.flush()
                live.at_rest = True
                ctl.publish(extra=live.snapshot(), step=live.steps)
            try:
                ctl.check(on_command)
            except StopTraining:
                live.flush()
                live.at_rest = True
                ctl.publish(extra=live.snapshot(), step=live.steps)
                raise
            for _ in range(chunk):
                if ctl.pause_requested or live.done:  # park within one step of a click on Pause
                    break
                live.step()
            if live.done:
                live.flush()
                live.at_rest = True
                ctl.publish(extra=live.snapshot(), step=live.steps, elapsed=time.perf_counter() - t0)
                return live
            if time.perf_counter() - last >= publish_every or ctl.pause_requested:  # fresh picture when parking
                live.flush()
                last = time.perf_counter()
                live.at_rest = ctl.pause_requested  # what only a paused page shows is drawn when parking
                ctl.publish(extra=live.snapshot(), step=live.steps, elapsed=last - t0)
    return target
