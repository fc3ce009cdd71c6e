"""A class on one link: N sessions speaking Streamlit's own websocket protocol (no browser)
against `streamlit run app.py`, opening views and moving real widgets.

Each session connects within the ramp, opens a view (the first page), then makes its
interactions: it picks a view, changes one of its widgets to a new value (seed, steps,
resolution...) and checks that the pictures changed, so a no-op rerun is counted, not timed
as work; between interactions it thinks for an exponential time with the given mean. The
client reruns the whole script for a widget change, where a browser reruns only the
widget's fragment: the interaction figures are an upper bound.

Reports first-page and interaction latency percentiles, errors with the server's messages,
no-op interactions, throughput and the server's peak resident memory (VmHWM, Linux).

Run: python bench/load.py [--sessions 30] [--interactions 20] [--think 3] [--ramp 5] [--seed 0]
     [--url http://127.0.0.1:8501 to use a running server]   (--think 0: saturation throughput)
"""
from __future__ import annotations

import argparse
import asyncio
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from stclient import Session  # noqa: E402

# view path, query, and the widget moves that change its pictures: (label, new value from rng)
MOVES = {
    "": ("model=vae-mnist-z20", []),
    "latent_explorer": ("model=vae-mnist-z20", [("Seed", lambda r: float(r.randrange(10_000))),
                                                 ("Temperature T", lambda r: [round(r.uniform(0.3, 1.5), 2)])]),
    "interpolation": ("model=vae-mnist-z20", [("Steps", lambda r: [float(r.randrange(3, 25))])]),
    "manifold": ("model=vae-mnist-z2", [("Resolution", lambda r: [float(r.randrange(5, 31))])]),
    "flow": ("model=realnvp-mnist", [("Seed", lambda r: float(r.randrange(10_000)))]),
    "energy": ("model=rbm-mnist-h500", [("Seed", lambda r: float(r.randrange(10_000)))]),
    "compare": ("", [("Seed", lambda r: float(r.randrange(10_000)))]),
}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def peak_rss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024
    except (OSError, AttributeError):
        return float("nan")


async def student(url: str, i: int, a, out: dict) -> None:
    r = random.Random(a.seed * 1000 + i)
    await asyncio.sleep(r.uniform(0, a.ramp))
    async with Session(url) as s:
        views = list(MOVES)
        path = views[i % len(views)]
        t0 = time.perf_counter()
        run = await s.run(path, MOVES[path][0])
        out["first"].append(time.perf_counter() - t0)
        out["errors"] += [f"{path or 'home'}: {e}" for e in run.exceptions + run.errors]
        for _ in range(a.interactions):
            await asyncio.sleep(r.expovariate(1 / a.think) if a.think > 0 else 0)
            path = r.choice([v for v in views if MOVES[v][1]])
            if s.path != path:
                run = await s.run(path, MOVES[path][0])
            label, value = r.choice(MOVES[path][1])
            if label not in run.widgets:  # a run cut short (st.rerun) or one that stopped early: open it again
                run = await s.run(path, MOVES[path][0])
            if label not in run.widgets:
                out["errors"].append(f"{path}: no widget labelled {label!r} ({run.status}, {run.deltas} deltas)")
                continue
            before = run.image_urls
            run = await s.rerun({label: value(r)})
            out["interactions"].append(run.elapsed_s)
            out["errors"] += [f"{path}: {e}" for e in run.exceptions + run.errors]
            out["noop"] += run.image_urls == before


async def guarded(url: str, i: int, a, out: dict) -> None:
    """A session that fails (a dropped connection, a time-out) is an error of the run, not a crash."""
    try:
        await student(url, i, a, out)
    except Exception as e:  # noqa: BLE001 - reported, with its type
        out["errors"].append(f"session {i}: {type(e).__name__}: {e}")


async def main_async(url: str, a) -> dict:
    out = {"first": [], "interactions": [], "errors": [], "noop": 0}
    t0 = time.perf_counter()
    await asyncio.gather(*(guarded(url, i, a, out) for i in range(a.sessions)))
    out["wall_s"] = time.perf_counter() - t0
    return out


def start_server(log) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--client.showErrorDetails", "full"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--interactions", type=int, default=20, help="widget moves per session")
    ap.add_argument("--think", type=float, default=3.0, help="mean seconds between moves (0: none)")
    ap.add_argument("--ramp", type=float, default=5.0, help="sessions open within this many seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--url", default=None, help="a running server (default: start a fresh one)")
    a = ap.parse_args()
    proc = None
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    url = a.url
    if url is None:
        proc, url = start_server(log)
    try:
        out = asyncio.run(main_async(url, a))
    finally:
        rss = peak_rss_mb(proc.pid) if proc else float("nan")
        if proc:
            proc.terminate()
            proc.wait(10)
    f, it = out["first"], out["interactions"]
    print(f"{a.sessions} sessions within {a.ramp:g} s, {a.interactions} moves each, think {a.think:g} s, seed {a.seed}")
    print(f"first page   s: median {statistics.median(f):.2f}, p95 {pct(f, 0.95):.2f}, max {max(f):.2f}")
    if it:
        print(f"interaction ms: median {1000 * statistics.median(it):.0f}, p95 {1000 * pct(it, 0.95):.0f}, "
              f"max {1000 * max(it):.0f}; {out['noop']} of {len(it)} changed no picture")
    print(f"throughput: {len(it) / out['wall_s']:.1f} interactions/s over {out['wall_s']:.0f} s")
    print(f"errors: {len(out['errors'])}" + "".join(f"\n  {e[:300]}" for e in sorted(set(out["errors"]))[:10]))
    print(f"server peak RSS: {rss:.0f} MB" + (f" (log: {log.name})" if proc else ""))
    if proc:
        tb = log.name and Path(log.name).read_text().count("Traceback")
        print(f"tracebacks in the server log: {tb}")
    sys.exit(1 if out["errors"] else 0)


if __name__ == "__main__":
    main()
