"""A class on one link: N sessions speaking Streamlit's own websocket protocol (no browser)
against `streamlit run app.py`, opening views and moving real widgets.

Each session connects within the ramp, opens a view (the first page), then makes its
interactions: it picks a view (opened with the model MOVES names for it, picked in the
sidebar when the session has another), changes one of its widgets to a new value (seed, steps,
resolution...) and checks that the pictures changed, so a no-op rerun is counted, not timed
as work; between interactions it thinks for an exponential time with the given mean. A
widget inside an st.fragment reruns only that fragment, as a browser asks
(--full-reruns: the whole script every time, an upper bound).

Reports first-page and interaction latency percentiles, errors with the server's messages,
no-op interactions, throughput and the server's peak resident memory (VmHWM, Linux).

Run: python bench/load.py [--sessions 30] [--interactions 20] [--think 3] [--ramp 5] [--seed 0]
     [--url http://127.0.0.1:8501 to use a running server] [--repo OTHER_CHECKOUT] [--full-reruns]
     [--processes 2: that many servers behind nginx, sticky sessions] [--no-warm]
     (--think 0: saturation throughput)
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
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
    # with its meaningful directions on: a direction's slider, and the direction it moves along
    "latent_explorer": ("model=vae-mnist-z20&dirs=1", [("Seed", lambda r: float(r.randrange(10_000))),
                                                        ("Temperature T", lambda r: [round(r.uniform(0.3, 1.5), 2)]),
                                                        ("key:t0", lambda r: [round(r.uniform(-3.0, 3.0), 1)]),
                                                        ("key:dir0", lambda r: r.choice(
                                                            [f"PC{i}" for i in range(1, 11)] +
                                                            [f"towards {d}" for d in range(10)]))]),
    "interpolation": ("model=vae-mnist-z20", [("Steps", lambda r: [float(r.randrange(3, 25))])]),
    "manifold": ("model=vae-mnist-z2&cmap=1", [("Resolution", lambda r: [float(r.randrange(5, 31))])]),
    "flow": ("model=realnvp-mnist", [("Seed", lambda r: float(r.randrange(10_000)))]),
    # the chains' seed (by key: the live-training settings above it have a "Seed" too, which changes no picture)
    "energy": ("model=rbm-mnist-h500", [("key:cseed", lambda r: float(r.randrange(10_000)))]),
    "compare": ("", [("Seed", lambda r: float(r.randrange(10_000)))]),
    # the forward process's time (cheap), and a new seed for the reverse process (a film of 8 guided digits)
    "diffusion": ("model=ddpm-mnist", [("Time t", lambda r: [round(r.uniform(0.0, 1.0), 2)]),
                                       ("key:rseed", lambda r: float(r.randrange(10_000)))]),
}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far (Linux; nan elsewhere)."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def peak_rss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024
    except (OSError, AttributeError):
        return float("nan")


async def open_view(s: Session, path: str, model: list[str]):
    """Open a view with its query, as a lesson link does, and pick the view's model in the sidebar
    as a student would when the view does not show it already (the sidebar's model stays with a
    session from view to view). model[0] tracks the session's model."""
    query = MOVES[path][0]
    run = await s.run(path, query)
    want = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("model")
    if model[0] is None:
        model[0] = want or "vae-mnist-z20"  # the first page takes the link's model, or the default
    elif want and want != model[0] and "Model" in run.widgets:
        picker = run.widgets["Model"]
        labels = [o for o in picker.element.options if o.split("  (")[0] == want]
        if picker.element.set_value and picker.element.raw_value == want and labels:
            # the view shows the link's model already: nothing to pick, but the page's picker now
            # holds it (a browser updates the widget's state when the app sets it)
            s.widget_states[picker.id] = picker.state(labels[0])
            model[0] = want
            return run
        if labels:
            run = await s.rerun({"Model": labels[0]}, fragments=False)
            model[0] = want
    return run


async def student(url: str, i: int, a, out: dict) -> None:
    r = random.Random(a.seed * 1000 + i)
    await asyncio.sleep(r.uniform(0, a.ramp))
    async with Session(url) as s:
        views = list(MOVES)
        path = views[i % len(views)]
        model = [None]
        t0 = time.perf_counter()
        run = await open_view(s, path, model)
        out["first"].append(time.perf_counter() - t0)
        out["errors"] += [f"{path or 'home'}: {e}" for e in run.exceptions + run.errors]
        for _ in range(a.interactions):
            await asyncio.sleep(r.expovariate(1 / a.think) if a.think > 0 else 0)
            path = r.choice([v for v in views if MOVES[v][1]])
            if s.path != path:
                run = await open_view(s, path, model)
            label, value = r.choice(MOVES[path][1])
            if label not in run.widgets:  # a run cut short (st.rerun) or one that stopped early: open it again
                run = await open_view(s, path, model)
            if label not in run.widgets:
                out["errors"].append(f"{path}: no widget labelled {label!r} ({run.status}, {run.deltas} deltas)")
                continue
            before = run.image_urls
            run = await s.rerun({label: value(r)}, fragments=not a.full_reruns)
            out["interactions"].append(run.elapsed_s)
            out["by_view"].setdefault(f"{path or 'home'} {label}", []).append(run.elapsed_s)
            out["errors"] += [f"{path}: {e}" for e in run.exceptions + run.errors]
            noop = set(run.image_urls) <= set(before)  # no new picture (media urls are content hashes)
            out["noop"] += noop
            out["noop_by_view"][f"{path or 'home'} {label}"] = out["noop_by_view"].get(f"{path or 'home'} {label}", 0) + noop


async def guarded(url: str, i: int, a, out: dict) -> None:
    """A session that fails (a dropped connection, a time-out) is an error of the run, not a crash."""
    try:
        await student(url, i, a, out)
    except Exception as e:  # noqa: BLE001 - reported, with its type
        out["errors"].append(f"session {i}: {type(e).__name__}: {e}")


async def main_async(url: str, a) -> dict:
    out = {"first": [], "interactions": [], "errors": [], "noop": 0, "by_view": {}, "noop_by_view": {}}
    t0 = time.perf_counter()
    await asyncio.gather(*(guarded(url, i, a, out) for i in range(a.sessions)))
    out["wall_s"] = time.perf_counter() - t0
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answering(proc: subprocess.Popen, url: str, what: str, tries: int = 300) -> tuple[subprocess.Popen, str]:
    """(proc, url) once url/_stcore/health answers ok; the process is killed if it never does."""
    for _ in range(tries):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"{what} did not start")


def start_server(log, repo: Path = ROOT) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--client.showErrorDetails", "full"], cwd=repo, stdout=log, stderr=subprocess.STDOUT)
    return answering(proc, f"http://127.0.0.1:{port}", "the server")


async def teacher(url: str) -> None:
    """The teacher opens the link first (that starts the server's warm-up, views/warm.py)."""
    async with Session(url) as s:
        await s.run("", "")


def wait_warm(log_path: str, proc: subprocess.Popen, timeout: float = 900.0) -> str:
    """Wait for the server's warm-up line in its log; '' for a checkout without a warm-up."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        for line in Path(log_path).read_text(errors="replace").splitlines():
            if line.startswith("genlab: warmed"):
                return line.removeprefix("genlab: ")
        time.sleep(0.5)
    return "no warm-up line in the server log"


def start_nginx(backends: list[str], prefix: Path) -> tuple[subprocess.Popen, str]:
    """nginx (Debian's) in front of the backends, configured from deploy/nginx-genlab.conf."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("--processes needs nginx (Debian: apt-get install -y nginx)")
    port = free_port()
    conf = (ROOT / "deploy" / "nginx-genlab.conf").read_text()
    servers = "".join(f"        server {b.removeprefix('http://')};\n" for b in backends)
    conf = re.sub(r"(        server 127\.0\.0\.1:\d+;.*\n)+", servers, conf)
    conf = re.sub(r"listen \d+;", f"listen 127.0.0.1:{port};", conf)
    (prefix / "nginx.conf").write_text(conf)
    proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return answering(proc, f"http://127.0.0.1:{port}", f"nginx (log: {prefix / 'error.log'})", tries=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--interactions", type=int, default=20, help="widget moves per session")
    ap.add_argument("--think", type=float, default=3.0, help="mean seconds between moves (0: none)")
    ap.add_argument("--ramp", type=float, default=5.0, help="sessions open within this many seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--url", default=None, help="a running server (default: start a fresh one)")
    ap.add_argument("--repo", type=Path, default=ROOT,
                    help="start the server in this checkout instead (e.g. a git worktree of an older commit, "
                         "to measure before and after with the same client)")
    ap.add_argument("--processes", type=int, default=1,
                    help="start this many servers behind nginx with sticky sessions (deploy/nginx-genlab.conf)")
    ap.add_argument("--no-warm", action="store_true",
                    help="send the class in as soon as the server answers (default: the teacher opens Home "
                         "first and the class arrives once the server has warmed its caches)")
    ap.add_argument("--full-reruns", action="store_true",
                    help="rerun the whole script for every move (default: a widget inside an st.fragment "
                         "reruns only its fragment, as in a browser)")
    a = ap.parse_args()
    servers, nginx, warmed = [], None, []
    url = a.url
    tmp = Path(tempfile.mkdtemp(prefix="genlab-load-"))
    try:
        if url is None:
            for k in range(a.processes):
                log = open(tmp / f"server-{k}.log", "w+")
                servers.append((*start_server(log, a.repo.resolve()), log.name))
            for proc, server_url, log_name in servers:  # one process after the other: they share the cores
                if not a.no_warm:
                    asyncio.run(teacher(server_url))
                    if (a.repo / "views" / "warm.py").exists():
                        warmed.append(wait_warm(log_name, proc))
            url = servers[0][1]
            if a.processes > 1:
                nginx, url = start_nginx([u for _, u, _ in servers], tmp)
        cpu0, client0 = [cpu_s(proc.pid) for proc, _, _ in servers], time.process_time()
        out = asyncio.run(main_async(url, a))
        cpu = sum(cpu_s(proc.pid) - c for (proc, _, _), c in zip(servers, cpu0))
        client = time.process_time() - client0
    finally:
        rss = [peak_rss_mb(proc.pid) for proc, _, _ in servers]
        for proc in [nginx] + [p for p, _, _ in servers]:
            if proc:
                proc.terminate()
                proc.wait(10)
    f, it = out["first"], out["interactions"]
    for w in warmed:
        print(f"before the class: {w}")
    print(f"{a.sessions} sessions within {a.ramp:g} s, {a.interactions} moves each, think {a.think:g} s, seed {a.seed}"
          + (", whole-script reruns" if a.full_reruns else "") + (f", server in {a.repo}" if a.repo != ROOT else "")
          + (f", {a.processes} processes behind nginx" if a.processes > 1 else ""))
    print(f"first page   s: median {statistics.median(f):.2f}, p95 {pct(f, 0.95):.2f}, max {max(f):.2f}")
    if it:
        print(f"interaction ms: median {1000 * statistics.median(it):.0f}, p95 {1000 * pct(it, 0.95):.0f}, "
              f"max {1000 * max(it):.0f}; {out['noop']} of {len(it)} changed no picture")
        for what, xs in sorted(out["by_view"].items()):
            print(f"  {what:<34} n {len(xs):>3}: median {1000 * statistics.median(xs):>5.0f}, "
                  f"p95 {1000 * pct(xs, 0.95):>5.0f}, max {1000 * max(xs):>5.0f} ms"
                  + (f"; {out['noop_by_view'][what]} changed no picture" if out["noop_by_view"].get(what) else ""))
    print(f"throughput: {len(it) / out['wall_s']:.1f} interactions/s over {out['wall_s']:.0f} s")
    if servers and it:
        print(f"server CPU during the class: {cpu:.0f} s, {1000 * cpu / len(it):.0f} ms per interaction (views opened "
              f"on the way included), {cpu / out['wall_s']:.2f} cores on average; this client: "
              f"{client / out['wall_s']:.2f} cores on the same machine")
    print(f"errors: {len(out['errors'])}" + "".join(f"\n  {e[:300]}" for e in sorted(set(out["errors"]))[:10]))
    if servers:
        print("server peak RSS: " + " + ".join(f"{r:.0f}" for r in rss) + " MB" + (f" = {sum(rss):.0f} MB" if len(rss) > 1 else "")
              + f" (logs: {tmp})")
        tb = sum(Path(n).read_text(errors="replace").count("Traceback") for _, _, n in servers)
        print(f"tracebacks in the server logs: {tb}")
    sys.exit(1 if out["errors"] else 0)


if __name__ == "__main__":
    main()
