"""Warm the shared renders once per server, before the class arrives.

The first session of a `streamlit run app.py` process starts one background thread that opens
every view itself, as a visitor would: it connects to this server's own websocket (Streamlit's
protocol, `BackMsg` / `ForwardMsg`) on loopback, asks for each view with its default state and
the models it is made for, and waits until each run has finished. Everything those runs
compute lands in the caches every session shares (`common.memo`, st.cache_resource,
st.cache_data): test-set codes, likelihood histograms, the default pictures of every view.
A student who opens a view afterwards gets it from the caches.

It runs at low priority in the sense that matters here: one view at a time, on one thread.
It logs one line when it is done ("genlab: warmed N views in S s, E errors"); bench/load.py
waits for that line. GENLAB_WARM=0 turns it off (the tests do, except the one that checks it).
"""
from __future__ import annotations

import inspect
import logging
import os
import ssl
import sys
import threading
import time

import streamlit as st

from genlab import serving
from views import registry

log = logging.getLogger("genlab.warm")

_FINISHED = None  # ForwardMsg statuses that end a run, filled on first use


def enabled() -> bool:
    """Only in a real server started by `streamlit run` (not under AppTest or pytest)."""
    if os.environ.get("GENLAB_WARM", "1") == "0":
        return False
    return "streamlit.web.bootstrap" in sys.modules  # what `streamlit run` starts the server with


def visits(models: list[dict], default: str, views=None) -> list[tuple[str, str]]:
    """(url path, query) of each view to open, most wanted first: the views of the warm-up's first
    round (the registry's `warm` order) with the default model; each model on the view where it is
    explored best; then every warmed view with every model it fits (a student who picked the flow
    in the sidebar keeps it on the Manifold, whose test-set codes then come from the flow). Only
    pairs where the view fits the model: a view opened with another switches models. Views with
    `warm` 0 (they start a job or read a person's input) are left out, and Compare (its own list
    of models) opens with the default model only. `models` are the picker's entries (with "caps")."""
    views = [v for v in (registry.VIEWS if views is None else views) if v.warm]
    caps = {m["name"]: m["caps"] for m in models}
    first = sorted(views, key=lambda v: v.warm)
    out = [(v.path, f"model={default}") for v in first if default in caps and registry.fits(v, caps[default])]
    out += [(v.path, f"model={default}&{v.warm_query}") for v in first
            if v.warm_query and default in caps and registry.fits(v, caps[default])]
    home = {v.title: v for v in views}
    out += [(home[t].path, f"model={m['name']}") for m in models if (t := registry.home_of(m["caps"])) in home]
    # then the sections that are off until asked for, on each model's home view (directions, the map)
    out += [(home[t].path, f"model={m['name']}&{home[t].warm_query}") for m in models
            if (t := registry.home_of(m["caps"])) in home and home[t].warm_query]
    out += [(v.path, f"model={m['name']}") for m in models for v in views
            if v.warm_each and registry.fits(v, m["caps"])]
    seen = set()
    return [v for v in out if not (v in seen or seen.add(v))]


def visit(url: str, page: str, query: str, timeout: float = 600.0) -> str | None:
    """Open one view in a fresh session and wait for its run to finish; an error's text, or None."""
    global _FINISHED
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    if _FINISHED is None:
        _FINISHED = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR}
    msg = BackMsg()
    msg.rerun_script.page_name = page
    msg.rerun_script.query_string = query
    end = time.monotonic() + timeout
    tls = ssl._create_unverified_context() if url.startswith("wss:") else None  # this server's own certificate
    # proxy=None: loopback, never through an http_proxy of the environment (websockets >= 15 would use one)
    no_proxy = {"proxy": None} if "proxy" in inspect.signature(connect).parameters else {}
    with connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=60, ssl=tls, **no_proxy) as ws:
        ws.send(msg.SerializeToString())
        started, error = False, None
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no end of the run after {timeout:.0f} s")
            fm = ForwardMsg()
            fm.ParseFromString(ws.recv(timeout=left))
            kind = fm.WhichOneof("type")
            started = started or kind == "new_session"
            if started and kind == "delta" and fm.delta.new_element.WhichOneof("type") == "exception":
                e = fm.delta.new_element.exception
                error = f"{e.type}: {e.message}"
            if kind == "session_event" and fm.session_event.WhichOneof("type") == "script_compilation_exception":
                e = fm.session_event.script_compilation_exception
                error = f"{e.type}: {e.message}"
            if started and kind == "script_finished" and fm.script_finished in _FINISHED:
                return error


def stream_url(address: str | None, port: int, base: str | None, tls: bool) -> str:
    """This server's websocket as seen from the machine itself."""
    host = address or "127.0.0.1"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    host = f"[{host}]" if ":" in host else host  # an IPv6 literal
    base = (base or "").strip("/")
    return f"{'wss' if tls else 'ws'}://{host}:{port}/{base + '/' if base else ''}_stcore/stream"


def _run(todo: list[tuple[str, str]]) -> None:
    url = stream_url(st.get_option("server.address"), st.get_option("server.port"),
                     st.get_option("server.baseUrlPath"), bool(st.get_option("server.sslCertFile")))
    t0, errors = time.perf_counter(), 0
    for page, query in todo:
        try:
            err = visit(url, page, query)
        except Exception as e:  # noqa: BLE001 - a warm-up that fails leaves cold caches, nothing worse
            err = f"{type(e).__name__}: {e}"
        if err:
            errors += 1
            log.warning("genlab: warming %s?%s failed: %s", page or "home", query, err)
    frozen = serving.freeze_heap()  # what the server keeps leaves the cyclic collector (its docstring says why)
    # print, not log: streamlit's logger level hides info lines, and bench/load.py waits for this one
    print(f"genlab: warmed {len(todo)} views in {time.perf_counter() - t0:.1f} s, {errors} errors, "
          f"{frozen:,} objects kept out of the cyclic collector", flush=True)


@st.cache_resource(show_spinner=False)
def start() -> threading.Thread | None:
    """Start the warm-up once per server process (the first session that runs app.py calls it)."""
    if not enabled():
        return None
    from views import common
    todo = visits(common.list_models(), common.DEFAULT_MODEL)
    t = threading.Thread(target=_run, args=(list(todo),), name="genlab-warm", daemon=True)
    t.start()
    return t
