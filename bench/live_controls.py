"""How fast GAN Live's controls answer while a GAN trains: click to painted change, in a
real Chromium against `streamlit run app.py` (so this figure includes the browser's work).
Measured inside the page, from the click event to the frame that shows the change.

  Pause:  click "Pause" until the controls read "paused" and offer "Resume"
  Step:   click "Step both" until the controls' generator step count has grown by one
  Resume: click "Resume" until the controls read "running" and offer "Pause"

(The fixed-noise grid and the curves follow on their own one-second timer.) It also counts the
browser's long tasks (main thread busy > 50 ms) over 10 s of training: a click waits for them.

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


# Runs in the page: click a button of the controls, then watch the DOM (a MutationObserver)
# until the expected button or text is there, and wait for the next frame to be painted.
# Returns milliseconds from the click to that frame: what a person sees, without the test
# driver's own waiting (Playwright's click first waits for the page to be still).
WS_HOOK = """(() => {
  const Native = window.WebSocket;
  window.__wsIn = [];
  window.WebSocket = function (...args) {
    const ws = new Native(...args);
    ws.addEventListener('message', () => window.__wsIn.push(performance.now()));
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, Native);
})();"""

MEASURE = """async ([label, wantButton, wantText]) => {
  const root = document.querySelector('.st-key-g_controls');
  const ok = () => wantButton
      ? [...root.querySelectorAll('button')].some(b => b.innerText.trim() === wantButton)
      : root.innerText.includes(wantText);
  const btn = [...root.querySelectorAll('button')].find(b => b.innerText.trim() === label);
  const t0 = performance.now();
  btn.click();
  let seen = null;
  await new Promise(resolve => {
    const obs = new MutationObserver(() => { if (ok()) { seen = performance.now(); obs.disconnect(); resolve(); } });
    obs.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
    setTimeout(() => { obs.disconnect(); resolve(); }, 10000);
  });
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const total = performance.now() - t0;
  // the server's share: from the click to the last message that arrived before the change showed
  const arrived = window.__wsIn.filter(t => t > t0 && t <= (seen ?? Infinity));
  const server = arrived.length ? arrived[arrived.length - 1] - t0 : NaN;
  return [total, server];
}"""


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
            pg.add_init_script(WS_HOOK)
            pg.goto(f"{url}/gan_live")
            pg.get_by_role("heading", name="GAN Live").wait_for(timeout=60_000)
            pg.get_by_role("combobox", name="Data and model").click()
            label = {"mnist-mlp": "MNIST, MLP GAN", "ring8": "2-d: ring of 8 Gaussians"}[a.data]
            pg.get_by_role("option", name=label).click()
            pg.wait_for_timeout(1500)
            pg.get_by_role("button", name="Start", exact=True).click()
            pg.get_by_text(re.compile(r"^running")).first.wait_for(timeout=60_000)
            pg.wait_for_timeout(5000)
            # how often the page's main thread is busy for > 50 ms while training runs: a click
            # that lands in such a task waits for its end
            pg.evaluate("() => { window.__lt = []; new PerformanceObserver(l => { for (const e of l.getEntries())"
                        " window.__lt.push(e.duration); }).observe({type: 'longtask'}); }")
            pg.wait_for_timeout(10_000)
            long_tasks = pg.evaluate("window.__lt")
            rate = re.search(r"([\d.]+) steps/s", pg.get_by_text(re.compile(r"steps/s")).first.inner_text()).group(1)
            times = {"pause": [], "step": [], "resume": []}
            server = {"pause": [], "step": [], "resume": []}
            for _ in range(a.repeats):
                for k, args in (("pause", ["Pause", "Resume", None]), ("step", None), ("resume", ["Resume", "Pause", None])):
                    if k == "step":
                        pg.wait_for_timeout(1500)
                        n = int(re.search(r"step (\d+)", pg.locator(".st-key-g_controls p").first.inner_text()).group(1))
                        args = ["Step both", None, f"generator step {n + 1}"]
                    total, srv = pg.evaluate(MEASURE, args)
                    times[k].append(total)
                    server[k].append(srv)
                    pg.wait_for_timeout(500)
                pg.wait_for_timeout(2500)
            b.close()
    finally:
        proc.terminate()
    print(f"GAN Live controls while training {a.data}, click to painted change, {a.repeats} repeats (ms);")
    print("server share: click to the last websocket message before the change (server, network, queueing)")
    print(f"  training speed with this page open: {rate} generator steps/s")
    print(f"  browser main thread, 10 s of training: {len(long_tasks)} tasks over 50 ms"
          + (f", longest {max(long_tasks):.0f} ms, {sum(long_tasks):.0f} ms in all" if long_tasks else ""))
    for k, v in times.items():
        srv = [x for x in server[k] if x == x]
        print(f"  {k:7s} median {statistics.median(v):6.0f}   max {max(v):6.0f}   (target <= 200)   "
              f"server share median {statistics.median(srv) if srv else float('nan'):6.0f}")


if __name__ == "__main__":
    main()
