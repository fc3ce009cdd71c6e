"""How fast GAN Live's controls answer while a GAN trains: click to visible change, in a
real Chromium against `streamlit run app.py` (so this figure includes the browser's work).

  Pause:  click "Pause" until the status line reads "paused"
  Step:   click "Step both" until the generator step count has grown by one
  Resume: click "Resume" until the status line reads "running"

Run: python bench/live_controls.py [--data mnist-mlp|ring8] [--repeats 5]
Needs Debian's chromium (or GENLAB_CHROMIUM) and Playwright.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="mnist-mlp")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.3)
        chromium = os.environ.get("GENLAB_CHROMIUM") or shutil.which("chromium")
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=chromium, args=ARGS)
            pg = b.new_page(viewport={"width": 1400, "height": 1000})
            pg.goto(f"{url}/gan_live")
            pg.get_by_role("heading", name="GAN Live").wait_for(timeout=60_000)
            pg.get_by_role("combobox", name="Data and model").click()
            label = {"mnist-mlp": "MNIST, MLP GAN", "ring8": "2-d: ring of 8 Gaussians"}[a.data]
            pg.get_by_role("option", name=label).click()
            pg.wait_for_timeout(1500)
            pg.get_by_role("button", name="Start", exact=True).click()
            pg.get_by_text(re.compile(r"^running")).first.wait_for(timeout=60_000)
            pg.wait_for_timeout(5000)
            status = pg.locator("[data-testid='stMarkdownContainer'] p").filter(has_text="generator step")
            times = {"pause": [], "step": [], "resume": []}
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                pg.get_by_role("button", name="Pause", exact=True).click()
                pg.get_by_text(re.compile(r"^paused")).first.wait_for()
                times["pause"].append(time.perf_counter() - t0)
                pg.wait_for_timeout(1500)
                before = int(re.search(r"step (\d+)", status.first.inner_text()).group(1))
                t0 = time.perf_counter()
                pg.get_by_role("button", name="Step both", exact=True).click()
                pg.wait_for_function("([n]) => [...document.querySelectorAll(\"[data-testid='stMarkdownContainer'] p\")]"
                                     ".some(e => e.innerText.includes('generator step ' + n))", arg=[before + 1])
                times["step"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                pg.get_by_role("button", name="Resume", exact=True).click()
                pg.get_by_text(re.compile(r"^running")).first.wait_for()
                times["resume"].append(time.perf_counter() - t0)
                pg.wait_for_timeout(3000)
            b.close()
    finally:
        proc.terminate()
    print(f"GAN Live controls while training {a.data}, click to visible change, {a.repeats} repeats (ms):")
    for k, v in times.items():
        print(f"  {k:7s} median {1000 * statistics.median(v):6.0f}   max {1000 * max(v):6.0f}   (target <= 200)")


if __name__ == "__main__":
    main()
