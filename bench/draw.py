"""Per view, the time from navigation to fully drawn in a real Chromium, cold and warm.

Each visit opens the view's URL in a new page (a new Streamlit session, as a student who
opens the link) and times, from the navigation's start (the page's own clock,
performance.now()), until the view is *fully drawn*:

  - the app's script has finished: the server's `script_finished` message (a whole run, not
    a fragment's nor one cut short by st.rerun) has arrived over the websocket, and the
    running status widget ([data-testid='stStatusWidget']) is gone;
  - the view's heading (its st.title, read from the view's file) is on the page, and no
    element is still a loading skeleton (Streamlit's lazily loaded components);
  - every <img> is complete with naturalWidth > 0;
  - every Plotly chart has drawn: its graph div (.js-plotly-plot) has _fullLayout and
    _fullData and its .main-svg; every visible SVG trace has its group in the plot (one
    `g.trace` per scatter/bar/... trace, an image per heatmap); every WebGL trace's scene
    has drawn (plotly's scattergl scene sets `dirty` to false at the end of a draw) and no
    "no WebGL" notice is shown;
  - no request of the page is in flight;
  - the DOM has been still (a MutationObserver installed by an init script, before any of
    the page's own code runs) for a quiet period (--quiet, 500 ms).

The figure is the time the *last* of these events reached the screen, not the end of the
quiet period: the latest of the animation frame in which the conditions first held (and kept
holding), the frame after the last DOM mutation, the arrival of `script_finished` and the end
of the last resource load; then the start of the next frame, by which the browser has done
that frame's style, layout and paint (a page of 30,000 SVG nodes spends seconds there, after
the last mutation). Frame times are read with performance.now() in requestAnimationFrame
callbacks, and the quiet period is counted in frames, so a main thread stuck in one long task
is never taken for a still page. The quiet period only decides that nothing more is coming.

Cold is the first visit to a view on a freshly started server: by default every view gets its
own fresh `streamlit run app.py` (imports, model loading and the view's caches all cold);
--shared-server starts one server for all views, so a view's cold visit comes after the
previous views' (imports done). With --url (a running server) "cold" is just the first visit
of this run. Warm is the median and max of the next --repeats visits. A server started here
first gets the teacher's visit to Home and this benchmark waits for its warm-up (views/warm.py,
the same wait as bench/load.py), so cold is then the browser's first visit to a view on a
server whose caches are warm; --no-warm measures as soon as the server answers.

Viewport: --width x --height (default 1400 x 1000, as tests/test_browser.py), no scrolling.
Streamlit's main area scrolls internally, but it mounts every element of the page whether or
not it is in view (no virtualisation, images are not lazily loaded, and Plotly draws charts
below the fold too), so the conditions above cover the whole page without scrolling; only the
rasterising of pixels below the fold, which nobody sees until they scroll, is left out.
Resizing the viewport to the page's height would instead make Chromium rasterise (in
software, --disable-gpu) a far larger screen than any student has.

Browser cache: a view's visits share one browser context, so the cold visit starts with an
empty cache and the warm ones reload the page with Streamlit's JavaScript cached (HTTP cache
and V8's code cache: a student coming back to the tab). --fresh-browser gives every visit a
new context (nothing cached: a student's very first visit each time).

--in-app times instead the path of a student who moves between views inside the app, where
every visit above is a page load (Plotly's script, about a second of evaluation, is paid on
each). One tab loads the app once, on Home, and is left to draw fully; then each view is reached
by a click on its link in the sidebar's navigation (st.navigation), and timed from the click
event (its timeStamp, on the page's clock) to fully drawn by the same conditions, counted from
the click and met by a run that finished after it. The views are visited in the order given,
in 1 + --repeats rounds, each from the view before it: the first round is cold (the tab's first
visit to a view: Plotly's script loads with the first chart view), the others warm. As in the
app, the model stays with the session from view to view, so each view is shown with the model
the default mode opens it with: where that is not the session's (a view with a model in its
query, or a view without one after such a view), or where the view is the one on screen (Home at
the start, Energy Models twice), the tab first goes to Home (Home: to the first other page) and
picks the model in the sidebar's Model selectbox there, untimed. A row notes "showed M" if the
view showed another model. "load" is then the click to the run's new_session (the rerun's request
and the script's start). One server serves the whole run, as with --shared-server. Not covered:
the page load itself (the default mode), links inside a view (st.page_link, the lesson bar) and
queries other than the model.

Besides cold and warm it prints, as the warm visits' medians, where the time goes:
  load    navigation to the server's `new_session` message (HTML, JavaScript, the websocket);
  script  new_session to script_finished, both as the browser's network stack received them
          (Chrome DevTools Protocol): the server's script run and the transfer of its elements,
          not delayed by the page's main thread;
  draw    script_finished (at the network) to fully drawn: the browser's work that was left
          when the server had finished, with the page's long tasks (> 50 ms) in that stretch;
  CPU     CPU seconds of all Chromium processes (WebGL runs in software in the GPU process)
          and of the server process over the visit, from /proc (Linux; the server's only when
          this script started it). Far less disturbed than wall time by other work on a shared
          machine, so compare these when the machine is busy;
and the websocket bytes received, the DOM's element count, images and charts, and error boxes
(an exception or st.error) on the page. "biggest cost" names the largest of load, script and draw.
Browser and server share this machine's cores here, where in a class each browser runs on its
own computer: while the page draws the first elements, the script's wall time grows (compare
it with the server's CPU), so on a small machine every figure is an upper bound.
--verify S checks this tool itself: it watches S seconds more after "fully drawn" and notes any
mutation, message or long task that came later.

Run: python bench/draw.py [--views "VAE Manifold,Latent Explorer"] [--repeats 5] [--in-app]
     [--width 1400 --height 1000] [--url http://127.0.0.1:8501 | --repo /tmp/before]
A view is named by its page title in app.py, optionally with a query that replaces its
default one ("Energy Models?model=rbm-mnist-h500"); a title alone selects all of its default
entries (the Energy Models view is measured with ebm-mnist and with rbm-mnist-h500).
Views with a Start button (GAN Live, Structure Search) are measured as opened, before Start.
Needs Debian's chromium (or GENLAB_CHROMIUM) and Playwright.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import teacher, wait_warm  # noqa: E402  (the same warm-up wait as the load benchmark)

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
# query per view url path: a model that shows the view at its heaviest or most typical; a list
# gives one entry per query. Views not named here are opened without a query (the default model).
QUERIES = {
    "manifold": ["model=vae-mnist-z2"],  # three scatters of 10,000 points
    "flow": ["model=realnvp-mnist"],
    "energy": ["model=ebm-mnist", "model=rbm-mnist-h500"],
}

# Installed before any of the page's scripts run. It records, on the page's clock:
# every websocket message (time, bytes) of Streamlit's stream; the last DOM mutation; long tasks;
# and, in an animation-frame loop, whether the page looks drawn (see `reason`).
INIT = r"""(() => {
  const W = window.__draw = {msgs: [], mutations: 0, lastMut: 0, frames: [], readySince: null, reason: 'start',
                             headingAt: null, longTasks: [], clickAt: null};
  const Native = window.WebSocket;
  function Hooked(...args) {
    const ws = new Native(...args);
    if (String(args[0]).includes('_stcore/stream'))
      ws.addEventListener('message', e => W.msgs.push([performance.now(), e.data.byteLength ?? e.data.size ?? e.data.length ?? 0]));
    return ws;
  }
  Hooked.prototype = Native.prototype;
  Object.setPrototypeOf(Hooked, Native);
  window.WebSocket = Hooked;
  new MutationObserver(() => { W.mutations++; W.lastMut = performance.now(); })
    .observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
  // --in-app: a visit starts with a click (its event's time); the conditions and the heading count
  // from there, as the view left behind may meet them
  addEventListener('click', e => { W.clickAt = e.timeStamp; W.readySince = null; W.headingAt = null; }, true);
  // a tab kept for a whole --in-app run loads far more than the default 250 resource entries
  performance.setResourceTimingBufferSize(100000);
  try {
    new PerformanceObserver(l => { for (const e of l.getEntries()) W.longTasks.push([e.startTime, e.duration]); })
      .observe({type: 'longtask', buffered: true});
  } catch (e) {}

  const svgTypes = new Set(['scatter', 'bar', 'histogram', 'box', 'violin', 'funnel', 'waterfall', 'ohlc', 'candlestick']);
  const chartDrawn = gd => {
    const fl = gd._fullLayout, fd = gd._fullData;
    if (!fl || !fd || !gd.querySelector('.main-svg')) return 'chart layout';
    if (gd.querySelector('.no-webgl')) return 'no webgl';
    const shown = fd.filter(t => t.visible === true);
    for (const t of shown) {
      if (t.type.endsWith('gl')) {
        const sp = fl._plots && fl._plots[(t.xaxis || 'x') + (t.yaxis || 'y')];
        if (!sp || !sp._scene || sp._scene.dirty !== false) return 'webgl scene';
        if (!gd.querySelector('canvas.gl-canvas')) return 'webgl canvas';
      }
    }
    const svg = shown.filter(t => svgTypes.has(t.type)).length;
    if (gd.querySelectorAll('.cartesianlayer g.trace').length < svg) return 'svg traces';
    const maps = shown.filter(t => t.type === 'heatmap' || t.type === 'contour').length;
    if (gd.querySelectorAll('.cartesianlayer g.hm image, .cartesianlayer g.contour').length < maps) return 'heatmap';
    return '';
  };
  const reason = () => {
    if (document.querySelector("[data-testid='stStatusWidget']")) return 'running';
    const title = window.__drawTitle;
    if (![...document.querySelectorAll('h1')].some(h => title ? h.textContent.trim() === title : true)) return 'heading';
    if (W.headingAt === null) W.headingAt = performance.now();
    if (document.querySelector("[data-testid^='stSkeleton']")) return 'skeleton';
    for (const img of document.images) if (!(img.complete && img.naturalWidth > 0)) return 'image';
    for (const box of document.querySelectorAll("[data-testid='stPlotlyChart']")) {
      const gd = box.querySelector('.js-plotly-plot');
      if (!gd) return 'chart';
      const r = chartDrawn(gd);
      if (r) return r;
    }
    return '';
  };
  // performance.now(), not the callback's argument: after a long task, the frame's nominal start
  // can lie inside that task
  const frame = () => {
    const t = performance.now();
    W.frames.push(t);
    W.reason = reason();
    if (W.reason) W.readySince = null; else if (W.readySince === null) W.readySince = t;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
})();"""

# Polled by the driver with the index of the message that ended the run (or -1). A state is on
# screen once the frame after the one that met it has begun (the frame that met it has rendered
# by then): `drawnAt` is that frame's time for the latest of: the conditions holding (since
# readySince, checked at frame callbacks), the last DOM mutation, the script_finished message and
# the last resource load. `lastFrame` is the latest frame: the quiet period runs on frames, so a
# main thread busy in one long task is never mistaken for a still page.
STATE = """(fin) => {
  const W = window.__draw, res = performance.getEntriesByType('resource');
  const after = t => W.frames.find(f => f > t);
  const tFin = fin >= 0 && fin < W.msgs.length ? W.msgs[fin][0] : null;
  const resEnd = res.length ? Math.max(...res.map(r => r.responseEnd)) : 0;
  let drawnAt = null;
  if (tFin !== null && W.readySince !== null) {
    const base = Math.max(W.readySince, ...[W.lastMut, tFin, resEnd].map(t => after(t) ?? Infinity));
    drawnAt = after(base) ?? null;
  }
  const els = document.getElementsByTagName('*');
  return {now: performance.now(), lastFrame: W.frames.length ? W.frames[W.frames.length - 1] : 0,
          reason: W.reason, readySince: W.readySince, lastMut: W.lastMut, drawnAt, tFin, headingAt: W.headingAt,
          msgs: W.msgs, longTasks: W.longTasks, mutations: W.mutations,
          nodes: els.length, images: document.images.length,
          charts: document.querySelectorAll("[data-testid='stPlotlyChart']").length,
          errors: document.querySelectorAll("[data-testid='stException'], [data-testid='stAlertContentError']").length};
}"""


@dataclass
class View:
    title: str  # the page's title in app.py
    path: str  # its url path ("" for the default page)
    heading: str | None  # its st.title
    query: str = ""

    @property
    def label(self) -> str:
        return self.title + (f" ({self.query.removeprefix('model=')})" if self.query else "")


@dataclass
class Visit:
    total: float = float("nan")  # navigation to fully drawn, s
    load: float = float("nan")  # navigation to new_session
    script: float = float("nan")  # new_session to script_finished
    draw: float = float("nan")  # script_finished to fully drawn
    long_after: float = 0.0  # long-task time after script_finished, s
    browser_cpu: float = float("nan")  # CPU seconds of all Chromium processes during the visit
    server_cpu: float = float("nan")  # CPU seconds of the server process during the visit
    heading: float = float("nan")  # when the view's heading first showed (first content), s
    ready: float = float("nan")  # when the conditions were last met, s
    last_mut: float = float("nan")  # the last DOM mutation, s
    ws_kb: float = 0.0
    nodes: int = 0
    images: int = 0
    charts: int = 0
    errors: int = 0
    note: str = ""


def listed(repo: Path) -> list[tuple[str, str, bool]]:
    """(file, title, is the default page) of every view: from the views registry
    (views/registry.py, read as parsed code, its first entry the default page), or, in a
    checkout from before the registry, from the st.Page calls of app.py."""
    reg = repo / "views" / "registry.py"
    if reg.exists():
        import ast
        calls = [n for n in ast.walk(ast.parse(reg.read_text())) if isinstance(n, ast.Call)
                 and getattr(n.func, "id", None) == "View" and len(n.args) >= 2
                 and all(isinstance(a, ast.Constant) for a in n.args[:2])]
        calls.sort(key=lambda n: (n.lineno, n.col_offset))
        return [(n.args[1].value, n.args[0].value, i == 0) for i, n in enumerate(calls)]
    app = (repo / "app.py").read_text()
    return [(file, title, "default=True" in rest) for file, title, rest in
            re.findall(r"st\.Page\(\s*\"([^\"]+)\"\s*,\s*title=\"([^\"]+)\"([^)]*)\)", app)]


def pages(repo: Path) -> list[View]:
    """The views the app lists (`listed`), each with its url path and heading, expanded by QUERIES."""
    out = []
    for file, title, default in listed(repo):
        path = "" if default else Path(file).stem
        src = (repo / file).read_text() if (repo / file).exists() else ""
        h = re.search(r"st\.title\(\s*[\"'](.+?)[\"']", src)
        for q in QUERIES.get(Path(file).stem, [""]):
            out.append(View(title, path, h.group(1) if h else None, q))
    return out


def pick(all_views: list[View], spec: str | None) -> list[View]:
    if not spec:
        return all_views
    out = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        title, _, query = item.partition("?")
        found = [v for v in all_views if v.title.lower() == title.lower() or v.path == title]
        if not found:
            raise SystemExit(f"no page titled {title!r}; pages: {', '.join(dict.fromkeys(v.title for v in all_views))}")
        if query:
            out.append(View(found[0].title, found[0].path, found[0].heading, query))
        else:
            out += found
    return out


# ------------------------------------------------------------------------------ processes
def start_server(repo: Path, log) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"],
                            cwd=repo, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise SystemExit(f"the server did not start (log: {log.name})")


def serve(repo: Path, log, a, label: str) -> tuple[subprocess.Popen, str]:
    """A fresh server that, unless --no-warm, the teacher has opened and that has warmed up."""
    proc, url = start_server(repo, log)
    if not a.no_warm and (repo / "views" / "warm.py").exists():  # the teacher opens the link first
        opener = threading.Thread(target=asyncio.run, args=(teacher(url),))  # Playwright holds this
        opener.start()                                                      # thread's event loop
        opener.join()
        print(f"{label}: the server {wait_warm(log.name, proc)}", flush=True)
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children) from /proc (Linux)."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(f[1]), sum(int(x) for x in f[11:15]) / TICK  # ppid; utime, stime, cutime, cstime


def tree_cpu(root: int | None) -> float:
    """CPU seconds used so far by process `root` and all its descendants (nan if unknown).
    CPU time is far less disturbed than wall time by other work on a shared machine."""
    if root is None or not Path("/proc").is_dir():
        return float("nan")
    stats = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (st := _stat(int(d.name))):
            stats[int(d.name)] = st
    if root not in stats:
        return float("nan")
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        kids.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats[pid][1]
        todo += kids.get(pid, [])
    return total


def find_pid(marker: str) -> int | None:
    """The pid of the process whose command line holds `marker` (the browser, launched with it)."""
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and marker.encode() in (d / "cmdline").read_bytes():
                return int(d.name)
        except OSError:
            pass
    return None


# ------------------------------------------------------------------------------ one visit
class Tab:
    """A page of `context` watched for fully drawn (see the module's doc): the init script's records
    in the page, the websocket's frames as the browser's network stack saw them, and the requests in
    flight. The default mode opens one per visit; --in-app keeps one for the whole run, so a visit
    is told apart by the messages that came after its start."""

    def __init__(self, context, heading: str | None):
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        over = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR}
        self.page = page = context.new_page()
        page.add_init_script(INIT + f"\nwindow.__drawTitle = {json.dumps(heading)};")
        self.frames: list[tuple[str, float]] = []  # every ForwardMsg: its type and its arrival at the network (s, CDP clock)
        self.finished: list[int] = []  # indices of script_finished messages that end a whole run
        self.doc: list[float] = []  # when the document's request was sent (CDP clock)
        self.inflight = set()

        # The websocket's frames as the browser's network stack saw them (Chrome DevTools Protocol):
        # their times do not wait for the page's main thread, so new_session to script_finished is the
        # server's script run (and the transfer), even while the page is busy drawing what came before.
        cdp = context.new_cdp_session(page)

        def on_frame(ev):
            r = ev["response"]
            if r.get("opcode") == 1:  # a text frame (Streamlit sends none): kept so indices match the page's
                self.frames.append(("text", ev["timestamp"]))
            if r.get("opcode") != 2:
                return
            msg = ForwardMsg.FromString(base64.b64decode(r["payloadData"]))
            kind = msg.WhichOneof("type") or "?"
            if kind == "script_finished" and msg.script_finished in over:
                self.finished.append(len(self.frames))
            self.frames.append((kind, ev["timestamp"]))

        def on_request(ev):
            if ev.get("type") == "Document" and not self.doc:
                self.doc.append(ev["timestamp"])

        cdp.on("Network.webSocketFrameReceived", on_frame)
        cdp.on("Network.requestWillBeSent", on_request)
        cdp.send("Network.enable")
        page.on("request", lambda r: self.inflight.add(r))
        page.on("requestfinished", lambda r: self.inflight.discard(r))
        page.on("requestfailed", lambda r: self.inflight.discard(r))

    def visit(self, start, a, browser_pid: int | None, server_pid: int | None) -> Visit:
        """Call `start` (it begins the visit: a navigation or a click, and returns when that began, ms
        on the page's clock) and time the visit to fully drawn. Only a run that finished after the
        start counts, so a visit in a tab that was already drawn waits for its own run."""
        page, frames, finished, doc = self.page, self.frames, self.finished, self.doc
        out = Visit()
        cpu0 = tree_cpu(browser_pid), tree_cpu(server_pid)
        first = len(frames)  # the visit's first message
        since = start()
        end = time.monotonic() + a.timeout
        while True:
            page.wait_for_timeout(100)
            fin = finished[-1] if finished and finished[-1] >= first else -1
            st = page.evaluate(STATE, fin)
            if st["drawnAt"] is not None and not self.inflight and st["lastFrame"] - st["drawnAt"] >= 1000 * a.quiet:
                break
            if time.monotonic() > end:
                out.note = (f"not drawn after {a.timeout:.0f} s: {st['reason'] or 'DOM not quiet'}"
                            + ("" if fin >= 0 else ", script not finished")
                            + (f", {len(self.inflight)} requests" if self.inflight else ""))
                break
        out.browser_cpu = tree_cpu(browser_pid) - cpu0[0]  # includes the quiet period (idle) and this driver's polls
        out.server_cpu = tree_cpu(server_pid) - cpu0[1]
        out.nodes, out.images, out.charts, out.errors = st["nodes"], st["images"], st["charts"], st["errors"]
        out.ws_kb = sum(n for _, n in st["msgs"][first:]) / 1024
        if out.note:
            return out
        last = st["drawnAt"]
        out.total = (last - since) / 1000
        out.ready, out.last_mut = (st["readySince"] - since) / 1000, (st["lastMut"] - since) / 1000
        out.heading = (st["headingAt"] - since) / 1000 if st["headingAt"] is not None else float("nan")
        # the run that finished last began with the last new_session before it; network times
        # are put on the page's clock by the document request's time (navigation start, within ms)
        begun = max((i for i, (k, _) in enumerate(frames) if k == "new_session" and first <= i < fin), default=None)
        t_fin = st["tFin"]  # when the page handled script_finished
        if begun is not None and doc:
            out.load = frames[begun][1] - doc[0] - since / 1000
            out.script = frames[fin][1] - frames[begun][1]
            t_fin = 1000 * (frames[fin][1] - doc[0])  # when it reached the browser
        out.draw = (last - t_fin) / 1000
        out.long_after = sum(min(s + d, last) - max(s, t_fin) for s, d in st["longTasks"]
                             if s + d > t_fin and s < last) / 1000
        if a.verify > 0:  # a check of this tool: does anything still happen after "fully drawn"?
            page.wait_for_timeout(1000 * a.verify)
            later = page.evaluate(STATE, fin)
            moved = later["mutations"] - st["mutations"]
            busy = [d for s, d in later["longTasks"] if s > last]
            if moved or busy or len(later["msgs"]) > len(st["msgs"]):
                out.note = (f"after drawn: {moved} mutations, {len(later['msgs']) - len(st['msgs'])} messages "
                            f"({', '.join(k for k, _ in frames[len(st['msgs']):])}), "
                            f"{len(busy)} long tasks ({sum(busy):.0f} ms) within {a.verify:g} s")
        return out


def visit(context, url: str, view: View, a, browser_pid: int | None, server_pid: int | None) -> Visit:
    """Open the view in a new page of `context` and time it to fully drawn (see the module's doc)."""
    tab = Tab(context, view.heading)

    def navigate() -> float:
        tab.page.goto(f"{url}/{view.path}" + (f"?{view.query}" if view.query else ""), wait_until="commit")
        return 0.0  # the page's clock starts at the navigation's start

    try:
        return tab.visit(navigate, a, browser_pid, server_pid)
    finally:
        tab.page.close()


def show(label: str, what: str, v: Visit) -> None:
    print(f"  {label}: {what} {v.total:6.2f} s  (load {v.load:.2f}, "
          f"script {v.script:.2f}, draw {v.draw:.2f}, long tasks after script {v.long_after:.2f}; "
          f"heading {v.heading:.2f}, conditions met {v.ready:.2f}, last mutation {v.last_mut:.2f}; CPU browser {v.browser_cpu:.2f}, "
          f"server {v.server_cpu:.2f}; {v.nodes} nodes, {v.images} images, {v.charts} charts, {v.ws_kb:.0f} KB"
          + (f", {v.errors} ERRORS" if v.errors else "") + (f"; {v.note}" if v.note else "") + ")",
          flush=True)


def measure(browser, url: str, view: View, a, browser_pid, server_pid) -> list[Visit]:
    """The cold visit and then a.repeats warm ones."""
    visits = []
    size = {"width": a.width, "height": a.height}
    ctx = None if a.fresh_browser else browser.new_context(viewport=size)
    for i in range(1 + a.repeats):
        c = ctx or browser.new_context(viewport=size)
        try:
            v = visit(c, url, view, a, browser_pid, server_pid)
        finally:
            if ctx is None:
                c.close()
        visits.append(v)
        show(view.label, "cold" if i == 0 else f"warm {i}", v)
        time.sleep(0.3)  # let the server drop the closed session
    if ctx is not None:
        ctx.close()
    return visits


# ------------------------------------------------------------------------------ in the app
def shown_model(tab: Tab) -> str | None:
    """The session's model: the app keeps it in the URL's query (?model=) on every run."""
    return parse_qs(urlsplit(tab.page.url).query).get("model", [None])[0]


def click_link(tab: Tab, view: View) -> float:
    """Click the sidebar's link to `view`'s page, as a student does, and return the click event's
    time on the page's clock (ms). The heading to wait for is set first: the conditions count from
    the click."""
    page = tab.page
    page.evaluate("h => { window.__drawTitle = h; }", view.heading)
    nav = page.get_by_test_id("stSidebarNav")
    link = nav.get_by_role("link", name=view.title, exact=True)  # the icon is aria-hidden
    more = nav.get_by_test_id("stSidebarNavViewButton")  # "View N more": Streamlit folds a long list
    if not link.is_visible() and more.is_visible():
        more.click()
    link.click()
    return page.evaluate("window.__draw.clickAt")


def choose_model(tab: Tab, name: str) -> float:
    """Pick model `name` in the sidebar's Model selectbox (the page on screen reruns with it); typed
    first, as the list may not render options out of sight. Returns the click's time (ms)."""
    page = tab.page
    page.get_by_test_id("stSidebar").get_by_role("combobox", name="Model").click()
    page.keyboard.type(name)
    page.get_by_role("option", name=re.compile(rf"^{re.escape(name)}\s")).click()  # "NAME  (kind...)"
    return page.evaluate("window.__draw.clickAt")


def in_app(browser, url: str, all_views: list[View], views: list[View], a, browser_pid, server_pid) -> list[list[Visit]]:
    """Per view, its visits by the sidebar's links in one tab: 1 + a.repeats rounds through `views`,
    in order, the first cold (see --in-app in the module's doc)."""
    for view in views:
        if set(parse_qs(view.query)) - {"model"}:
            raise SystemExit(f"--in-app picks only a model, not {view.query!r} ({view.title})")
    home = next(v for v in all_views if not v.path)
    other = next(v for v in all_views if v.path)  # the way to Home when Home is on screen
    pids = browser_pid, server_pid
    ctx = browser.new_context(viewport={"width": a.width, "height": a.height})
    tab = Tab(ctx, home.heading)

    def step(what: str, start) -> None:
        """An untimed step on the way to the next view: it too is waited for until fully drawn."""
        v = tab.visit(start, a, *pids)
        if v.note:
            print(f"  ({what}: {v.note})", flush=True)

    def load() -> float:
        tab.page.goto(f"{url}/", wait_until="commit")
        return 0.0

    show(home.label, "page load", tab.visit(load, a, *pids))
    default = model = shown_model(tab)
    on = home
    out: list[list[Visit]] = [[] for _ in views]
    for i in range(1 + a.repeats):
        for view, visits in zip(views, out):
            want = parse_qs(view.query).get("model", [default])[0]
            if view.title == on.title or want != model:
                base = home if view.title != home.title else other
                if on.title != base.title:
                    step(f"to {base.title}", lambda: click_link(tab, base))
                if want != model:
                    step(f"{want} picked on {base.title}", lambda: choose_model(tab, want))
            v = tab.visit(lambda: click_link(tab, view), a, *pids)
            model, on = shown_model(tab), view
            if model != want:
                v.note = "; ".join(filter(None, [v.note, f"showed {model}"]))
            visits.append(v)
            show(view.label, "in-app cold" if i == 0 else f"in-app warm {i}", v)
    ctx.close()
    return out


# ------------------------------------------------------------------------------ report
def fmt(x: float) -> str:
    return "–" if x != x else f"{x:.2f}"


def table(rows: list[tuple[View, list[Visit]]], in_app: bool) -> str:
    head = ["view", "opened by", "cold s", "warm median s", "warm max s", "load s", "script s", "draw s", "long tasks s",
            "browser CPU s", "server CPU s", "DOM nodes", "images", "charts", "ws KB", "biggest cost"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for view, vs in rows:
        cold, warm = vs[0], vs[1:]
        ok = [v for v in warm if v.total == v.total]

        def med(attr):
            xs = [getattr(v, attr) for v in ok if getattr(v, attr) == getattr(v, attr)]
            return statistics.median(xs) if xs else float("nan")
        parts = {"click to the script's start" if in_app else "load (page, JS, connect)": med("load"),
                 "server script": med("script"), "browser drawing after the script": med("draw")}
        cost = max(parts, key=lambda k: parts[k] if parts[k] == parts[k] else -1) if ok else "?"
        last = (ok or vs)[-1]
        flags = "; ".join(sorted({v.note for v in vs if v.note} | ({f"{last.errors} error boxes"} if last.errors else set())))
        lines.append("| " + " | ".join([
            view.label, "in-app link" if in_app else "URL",
            fmt(cold.total), fmt(med("total")), fmt(max((v.total for v in ok), default=float("nan"))),
            fmt(med("load")), fmt(med("script")), fmt(med("draw")), fmt(med("long_after")),
            fmt(med("browser_cpu")), fmt(med("server_cpu")),
            str(last.nodes), str(last.images), str(last.charts), f"{med('ws_kb'):.0f}" if ok else "–",
            cost + (f" ({flags})" if flags else "")]) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--views", default=None, help='comma-separated page titles, each optionally with "?query" '
                                                 "(default: every page of app.py)")
    ap.add_argument("--repeats", type=int, default=5, help="warm visits per view")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1000)
    ap.add_argument("--quiet", type=float, default=0.5, help="seconds the DOM must stay still (not counted)")
    ap.add_argument("--timeout", type=float, default=180, help="seconds a visit may take before it is given up")
    ap.add_argument("--verify", type=float, default=0.0,
                    help="after each visit, watch this many seconds more and note any mutation, message or long task")
    ap.add_argument("--url", default=None, help="a running server (default: start `streamlit run app.py`)")
    ap.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose app.py to serve (e.g. a git worktree)")
    ap.add_argument("--no-warm", action="store_true",
                    help="measure as soon as the server answers (default: wait for its warm-up, views/warm.py, "
                         "so cold means the browser's first visit to a view)")
    ap.add_argument("--shared-server", action="store_true", help="one fresh server for all views, not one per view")
    ap.add_argument("--fresh-browser", action="store_true",
                    help="every visit in a new browser context (nothing cached), not one context per view")
    ap.add_argument("--in-app", action="store_true",
                    help="load the app once, on Home, and reach each view by its link in the sidebar, timed from "
                         "the click (one tab, one server)")
    a = ap.parse_args()
    if a.in_app and a.fresh_browser:
        raise SystemExit("--fresh-browser does not apply to --in-app (one tab throughout)")
    repo = a.repo.resolve()
    all_views = pages(repo)
    views = pick(all_views, a.views)
    chromium = os.environ.get("GENLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("no chromium on PATH (Debian: apt-get install -y chromium; or set GENLAB_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    log = tempfile.NamedTemporaryFile("w+", prefix="draw-", suffix=".log", delete=False)
    marker = f"--genlab-draw-bench={os.getpid()}-{time.time_ns()}"  # finds the browser's process (CPU time)
    rows = []
    proc = None
    url = a.url
    t0 = time.perf_counter()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS + [marker])
            browser_pid = find_pid(marker)
            how = ("one tab, each view reached by its sidebar link" if a.in_app else
                   "a new browser context per visit" if a.fresh_browser else "one browser context per view")
            one = a.shared_server or a.in_app
            print(f"Chromium {browser.version}, viewport {a.width}x{a.height}, {a.repeats} warm visits, quiet {a.quiet:g} s, "
                  f"{how}; " + (f"server {url}" if url else f"serving {repo} ({'one server' if one else 'a fresh server per view'})"),
                  flush=True)
            if a.in_app:
                if url is None:
                    proc, url = serve(repo, log, a, "in-app")
                rows = list(zip(views, in_app(browser, url, all_views, views, a, browser_pid, proc.pid if proc else None)))
            else:
                for view in views:
                    if url is None or (proc is not None and not a.shared_server):
                        if proc is not None:
                            stop(proc)
                        proc, url = serve(repo, log, a, view.title)
                    rows.append((view, measure(browser, url, view, a, browser_pid, proc.pid if proc else None)))
            browser.close()
    finally:
        if proc is not None:
            stop(proc)
    print(f"\n{len(views)} views in {time.perf_counter() - t0:.0f} s; server log: {log.name}")
    print(table(rows, a.in_app))
    tb = Path(log.name).read_text().count("Traceback")
    if tb:
        print(f"tracebacks in the server log: {tb}")


if __name__ == "__main__":
    main()
