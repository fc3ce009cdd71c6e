"""Does watching a GAN train slow it down? Generator steps per second of the same MLP GAN on
MNIST, measured side by side in one run:

  headless: the live trainer's job thread alone, publishing snapshots as the page would see them;
  polled:   the same job while a poller takes a snapshot once a second and renders what the
            GAN Live view renders while training runs (the fixed-noise grid as PNG and the curves
            as SVG pictures), which is the server's whole share of a page that is open.

The browser's own CPU is not in the figure (bench/live_controls.py reads the training speed with
a real Chromium page open). Run: python bench/live_overhead.py [--seconds 20]
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from genlab import viz  # noqa: E402
from genlab.data import load_mnist  # noqa: E402
from genlab.jobs import JobManager  # noqa: E402
from genlab.live import LiveGAN, LiveSettings, live_target  # noqa: E402
from genlab.models import GAN, GANConfig, family  # noqa: E402

GAN_CURVES = family("gan").curves(GANConfig()).steps


def run(x, seconds: float, poll: bool) -> float:
    torch.manual_seed(0)
    live = LiveGAN(GAN(GANConfig(arch="mlp")), x, LiveSettings(), seed=0)
    job = JobManager().start(live_target(live))
    stop = threading.Event()

    failed: list[BaseException] = []

    def poller():
        try:
            while not stop.is_set():
                s = job.snapshot()
                if s.extra.get("samples") is not None:
                    viz.png_bytes(viz.grid_array(s.extra["samples"], nrow=8, padding=1))
                    for chart in viz.step_charts(s.extra["history"], GAN_CURVES):
                        chart.svg()
                stop.wait(1.0)
        except BaseException as e:  # a dead poller would make "polled" read as headless
            failed.append(e)

    time.sleep(2.0)  # warm-up
    start_steps, t0 = live.g_steps, time.perf_counter()
    th = threading.Thread(target=poller, daemon=True) if poll else None
    if th:
        th.start()
    while time.perf_counter() - t0 < seconds:
        job.snapshot() if not poll else None  # keep a headless job from looking abandoned
        time.sleep(0.5)
    steps = live.g_steps - start_steps
    rate = steps / (time.perf_counter() - t0)
    stop.set()
    job.stop()
    job.join(10)
    if failed:
        raise RuntimeError("the poller failed, so this round measured nothing") from failed[0]
    return rate


def _server_like() -> None:
    sys.setswitchinterval(0.001)  # as genlab.jobs sets it in the server while a job trains


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    _server_like()
    x = load_mnist("train").x
    print(f"MLP GAN on MNIST, batch 128, {torch.get_num_threads()} torch threads")
    head, polled = [], []
    for i in range(a.rounds):
        head.append(run(x, a.seconds, poll=False))
        polled.append(run(x, a.seconds, poll=True))
        print(f"round {i + 1}: headless {head[-1]:.1f} steps/s, polled at 1 Hz {polled[-1]:.1f} steps/s")
    h, p = sum(head) / len(head), sum(polled) / len(polled)
    print(f"mean: headless {h:.1f}, polled {p:.1f} generator steps/s; ratio polled/headless = {p / h:.2f}x (target >= 0.8x)")


if __name__ == "__main__":
    main()
