"""Live GAN training for the browser: a job target that trains in chunks of steps, obeys
Pause / Step / Stop and setting changes, and publishes what the page draws.

Everything here runs on the job's thread; the page only sends commands and reads snapshots.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from .jobs import JobControl
from .models.gan import g_loss_from_logits
from .train import Divergence, StopTraining
from .watch import FixedNoiseFilm, toy_measures


@dataclass
class LiveSettings:
    """What the page may change while the job is paused."""

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    d_steps: int = 1
    loss: str = "nonsaturating"
    batch_size: int = 128


class LiveGAN:
    """Owns a GAN, its optimizers and its history; steps it one update at a time."""

    def __init__(self, model, data: torch.Tensor, settings: LiveSettings, seed: int = 0, toy: str | None = None,
                 film_every: int = 100):
        self.model, self.data, self.toy = model, data, toy
        self.settings = settings
        self.device = data.device
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        self.opt_g, self.opt_d = model.configure_optimizers(settings.lr_g)
        self.apply(settings)
        self.film = FixedNoiseFilm(model, n=64 if toy is None else 512, seed=0)
        self.film_every = film_every
        self.keys = ("d_loss", "g_loss", "d_real", "d_fake")
        self.history: dict[str, list[float]] = {k: [] for k in ("step", *self.keys)}
        self.toy_history: list[dict] = []
        self.g_steps = 0
        self._pending: list[tuple[int, dict]] = []
        self._last: dict[str, float] = {}
        self._good = self._copy_state()  # the last weights whose losses were all finite
        model.train()
        self.film.capture(model, 0)

    def apply(self, s: LiveSettings) -> None:
        """Take new settings (learning rates, D steps, loss, batch size)."""
        self.settings = s
        for grp in self.opt_g.param_groups:
            grp["lr"] = s.lr_g
        for grp in self.opt_d.param_groups:
            grp["lr"] = s.lr_d
        self.model.config.loss = s.loss
        self.model.config.d_steps = s.d_steps

    def _copy_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _batch(self) -> torch.Tensor:
        idx = torch.randint(0, len(self.data), (self.settings.batch_size,), generator=self.gen, device=self.device)
        return self.model.to_model_space(self.data[idx])

    def step(self, which: str = "both") -> None:
        """One update: "d" (one discriminator step), "g" (one generator step) or "both"
        (d_steps discriminator steps, then one generator step)."""
        out: dict[str, torch.Tensor] = {}
        if which in ("d", "both"):
            for _ in range(self.settings.d_steps if which == "both" else 1):
                out.update(self.model.d_step(self._batch(), self.opt_d, self.gen))
        if which in ("g", "both"):
            out.update(self.model.g_step(self.settings.batch_size, self.opt_g, self.gen))
            self.g_steps += 1
        self._pending.append((self.g_steps, out))  # still on the device: no sync per step
        if which in ("g", "both") and self.g_steps % self.film_every == 0:
            self.flush()
            self.film.capture(self.model, self.g_steps)
            if self.toy:
                self.toy_history.append({"step": self.g_steps, **toy_measures(self.model, self.toy)})

    def flush(self) -> None:
        """Bring pending scalars to the host (one sync), check them, extend the history."""
        if not self._pending:
            return
        for step, out in self._pending:
            vals = {k: float(v) for k, v in out.items()}
            bad = [k for k, v in vals.items() if not math.isfinite(v)]
            if bad:
                self._pending = []
                self.model.load_state_dict(self._good)
                raise Divergence(f"training diverged at generator step {step}: {', '.join(bad)} became NaN or Inf. "
                                 "The job stopped with the last good weights restored; lower the learning rates, "
                                 "then save or reset.")
            self._last.update(vals)
            self.history["step"].append(step)
            for k in self.keys:
                self.history[k].append(self._last.get(k, float("nan")))
        self._pending = []
        self._good = self._copy_state()

    # -- what the page draws --------------------------------------------------
    @torch.no_grad()
    def samples(self) -> torch.Tensor:
        was = self.model.training
        self.model.eval()
        out = self.model.decode(self.film.z)
        self.model.train(was)
        return out.cpu()

    @torch.no_grad()
    def field(self, n: int = 40, extent: float = 3.0, arrows: int = 200) -> dict:
        """For 2-d data: D's probability on a grid, real and generated points, and the
        generator's gradient direction (-dLoss_G/dx) at generated points."""
        was = self.model.training
        self.model.eval()
        ticks = torch.linspace(-extent, extent, n, device=self.device)
        yy, xx = torch.meshgrid(ticks, ticks, indexing="ij")
        grid = torch.stack([xx.flatten(), yy.flatten()], 1)
        prob = torch.sigmoid(self.model.discriminate(grid)).view(n, n).cpu().numpy()
        fake = self.model.decode(self.film.z[:arrows])
        with torch.enable_grad():
            x = fake.detach().requires_grad_(True)
            g_loss_from_logits(self.model.discriminate(x), self.settings.loss).backward()
            grad = -x.grad.detach()
        self.model.train(was)
        real = self.data[torch.randint(0, len(self.data), (500,), generator=self.gen, device=self.device)]
        return {"ticks": ticks.cpu().numpy(), "prob": prob, "real": real.cpu().numpy(),
                "fake": fake.cpu().numpy(), "grad": grad.cpu().numpy()}

    def snapshot(self, max_points: int = 2000) -> dict:
        """What the page draws; the history is thinned to at most `max_points` points so a long
        run does not make every poll copy more."""
        stride = max(1, len(self.history["step"]) // max_points)
        out = {"g_steps": self.g_steps, "history": {k: v[::stride] for k, v in self.history.items()},
               "settings": asdict(self.settings), "film_steps": list(self.film.steps),
               "toy_history": list(self.toy_history)}
        if self.toy:
            out["field"] = self.field()
        else:
            out["samples"] = self.samples()
        return out


def live_target(live: LiveGAN, publish_every: float = 0.5, chunk: int = 10):
    """A job target: train in chunks, publish a snapshot about every `publish_every` seconds,
    and between chunks obey pause, stop, single steps and new settings."""
    def on_command(name: str, args: dict) -> None:
        if name == "step":
            live.step(args.get("which", "both"))
            live.flush()
            ctl_ref[0].publish(extra=live.snapshot(), step=live.g_steps)
        elif name == "settings":
            live.apply(LiveSettings(**args))
            ctl_ref[0].publish(extra=live.snapshot())

    ctl_ref: list[JobControl] = []

    def target(ctl: JobControl):
        ctl_ref.append(ctl)
        ctl.publish(extra=live.snapshot(), epochs=0)
        last = 0.0
        t0 = time.perf_counter()
        while True:
            try:
                ctl.check(on_command)
            except StopTraining:
                live.flush()
                ctl.publish(extra=live.snapshot(), step=live.g_steps)
                raise
            for _ in range(chunk):
                if ctl.pause_requested:  # park within one step of a click on Pause
                    break
                live.step("both")
            if time.perf_counter() - last >= publish_every or ctl.pause_requested:  # fresh picture when parking
                live.flush()
                last = time.perf_counter()
                ctl.publish(extra=live.snapshot(), step=live.g_steps, elapsed=last - t0)
    return target

