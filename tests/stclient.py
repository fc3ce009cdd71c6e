"""A headless Streamlit client: speaks the app's own websocket protocol, no browser.

Streamlit 1.67 serves each browser tab over one websocket at ``/_stcore/stream`` (subprotocol
``streamlit``). Frames are binary protobufs: the client sends ``BackMsg``s, the server answers
with ``ForwardMsg``s. Connecting creates a session but runs nothing; the client starts a script
run with a ``rerun_script`` BackMsg whose ``ClientState`` names the page (``page_name`` is the
view's url path, "" for the default page) and carries the query string and widget values. The
server then streams ``new_session``, one ``delta`` per element, and ``script_finished``. An
uncaught exception in the script arrives as an element, ``delta.new_element.exception``.

    async with Session(url) as s:
        run = await s.run("interpolation", "model=vae-mnist-z2")
        run.exceptions                       # ["AttributeError: ..."] or []
        run = await s.rerun({"Steps": [12]})  # change a widget by label (or id), run again

    runs = run_together(url, [("", ""), ("interpolation", "")])  # sessions started at once

The websocket client is ``websockets``, a dependency of streamlit itself (1.67 serves on
starlette/uvicorn; tornado is no longer installed). No Origin header and no XSRF token are
needed: the server checks them only to read auth cookies. See tests/test_import_race.py.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect

STREAM_PATH = "/_stcore/stream"
SUBPROTOCOL = "streamlit"

# Which WidgetState field carries each widget's value (the `value_type` each widget registers
# with in streamlit/elements/widgets/*.py). A select_slider is a `slider` element of type
# SELECT_SLIDER and carries strings; see Widget.value_field.
VALUE_FIELDS = {
    "slider": "double_array_value", "checkbox": "bool_value", "number_input": "double_value",
    "selectbox": "string_value", "radio": "string_value", "text_input": "string_value",
    "text_area": "string_value", "color_picker": "string_value", "time_input": "string_value",
    "multiselect": "string_array_value", "button_group": "string_array_value",
    "date_input": "string_array_value", "button": "trigger_value", "pagination": "int_value",
}
# A script run is over when script_finished says so for the whole script (not a fragment,
# and not a run cut short because st.rerun() started the next one).
_RUN_OVER = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR}
# A fragment's rerun (a widget inside an st.fragment, as a browser sends it) ends with its own status.
_FRAGMENT_OVER = _RUN_OVER | {ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}


@dataclass
class Widget:
    """One widget the last run drew: its kind (the element's field name), id and label."""
    kind: str
    id: str
    label: str
    element: Any  # the widget's protobuf, e.g. streamlit.proto.Slider_pb2.Slider
    fragment_id: str = ""  # the st.fragment the widget was drawn in ("" for the page itself)

    @property
    def value_field(self) -> str:
        if self.kind == "slider" and self.element.type == Slider.SELECT_SLIDER:
            return "string_array_value"
        return VALUE_FIELDS[self.kind]

    def state(self, value) -> WidgetState:
        """A WidgetState that gives this widget `value` (a list for the *_array_value kinds)."""
        ws = WidgetState(id=self.id)
        fld = self.value_field
        if fld.endswith("_array_value"):
            getattr(ws, fld).data.extend(value)
        else:
            setattr(ws, fld, value)
        return ws


@dataclass
class Run:
    """What one script run sent back."""
    path: str
    fragment_id: str = ""           # the fragment this run reran ("" for the whole script)
    elapsed_s: float = 0.0          # rerun_script sent -> script_finished received
    status: str = ""                # ForwardMsg.ScriptFinishedStatus name
    deltas: int = 0                 # delta messages (elements, blocks, transients)
    image_urls: list[str] = field(default_factory=list)  # st.image pictures (media paths)
    exceptions: list[str] = field(default_factory=list)  # "Type: message" of exception elements
    errors: list[str] = field(default_factory=list)      # st.error boxes
    page_not_found: bool = False
    widgets: dict[str, Widget] = field(default_factory=dict)  # by id, and by label (first wins)

    @property
    def images(self) -> int:
        return len(self.image_urls)

    def _record(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "page_not_found":
            self.page_not_found = True
        if kind != "delta":
            return
        self.deltas += 1
        if msg.delta.WhichOneof("type") != "new_element":
            return
        el = msg.delta.new_element
        etype = el.WhichOneof("type")
        if etype == "exception":
            self.exceptions.append(f"{el.exception.type}: {el.exception.message}")
        elif etype == "alert" and el.alert.format == el.alert.ERROR:
            self.errors.append(el.alert.body)
        elif etype == "imgs":
            self.image_urls.extend(img.url for img in el.imgs.imgs)
        elif etype in VALUE_FIELDS:
            proto = getattr(el, etype)
            w = Widget(etype, proto.id, getattr(proto, "label", ""), proto, msg.delta.fragment_id)
            self.widgets[w.id] = w
            if w.label:
                self.widgets.setdefault(w.label, w)
            if "-" in w.id and w.id.startswith("$$ID-"):  # a widget with a user key: "$$ID-<hash>-<key>"
                self.widgets.setdefault("key:" + w.id.split("-", 2)[2], w)


class Session:
    """One browser tab's worth of Streamlit: a websocket, a server session, its widget values."""

    def __init__(self, base_url: str):
        self.ws_url = base_url.replace("http", "ws", 1).rstrip("/") + STREAM_PATH
        self.ws = None
        self.path, self.query = "", ""
        self.widget_states: dict[str, WidgetState] = {}  # what we send with every rerun
        self.last: Run | None = None

    async def __aenter__(self) -> Session:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self) -> None:
        # max_size=None: a plotly figure can be a frame of several MB.
        self.ws = await connect(self.ws_url, subprotocols=[SUBPROTOCOL], max_size=None, open_timeout=120,
                                proxy=None)  # loopback: never through an http_proxy of the environment

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    async def run(self, path: str = "", query: str = "", timeout: float = 120.0) -> Run:
        """Open the view at url `path` ("" = the default page) with `query` ("a=1&b=2") and
        wait until that script run has finished."""
        self.path, self.query, self.widget_states = path, query, {}
        return await self._run(timeout)

    async def rerun(self, changes: dict[str, Any] | None = None, timeout: float = 120.0,
                    fragments: bool = True) -> Run:
        """Rerun the current view, first setting widgets named by label or id to new values.

        When every changed widget lives in one st.fragment, only that fragment reruns, as in a
        browser (``fragments=False``: the whole script); the run's widgets are then the page's,
        updated with what the fragment drew, and its images only the fragment's."""
        widgets = [self.last.widgets[key] for key in (changes or {})]
        for w, value in zip(widgets, (changes or {}).values()):
            self.widget_states[w.id] = w.state(value)
        frags = {w.fragment_id for w in widgets}
        fragment = frags.pop() if fragments and len(frags) == 1 else ""
        return await self._run(timeout, fragment)

    async def _run(self, timeout: float, fragment: str = "") -> Run:
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query
        cs.page_name = self.path
        cs.fragment_id = fragment
        cs.widget_states.widgets.extend(self.widget_states.values())
        # Buttons fire once: a trigger is sent with one run only, as the browser does.
        self.widget_states = {k: v for k, v in self.widget_states.items()
                              if v.WhichOneof("value") != "trigger_value"}
        run = Run(self.path, fragment_id=fragment)
        start = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        await asyncio.wait_for(self._collect(run, _FRAGMENT_OVER if fragment else _RUN_OVER), timeout)
        run.elapsed_s = time.perf_counter() - start
        if fragment and self.last is not None:  # the rest of the page stays as it was
            run.widgets = {**self.last.widgets, **run.widgets}
        self.last = run
        return run

    async def _collect(self, run: Run, over=_RUN_OVER) -> None:
        started = False  # messages before this run's new_session belong to an earlier run
        async for frame in self.ws:
            fm = ForwardMsg()
            fm.ParseFromString(frame)
            kind = fm.WhichOneof("type")
            started = started or kind == "new_session"
            if not started:
                continue
            run._record(fm)
            if kind == "script_finished" and fm.script_finished in over:
                run.status = ForwardMsg.ScriptFinishedStatus.Name(fm.script_finished)
                return
        raise ConnectionError(f"the server closed the websocket during the run of {run.path!r}")


async def run_views(base_url: str, views: list[tuple[str, str]],
                    timeout: float = 120.0) -> list[Run]:
    """Connect one session per (path, query) first, then start all their runs at once and wait
    for every one to finish. Returns the runs in the order of `views`."""
    sessions = [Session(base_url) for _ in views]
    try:
        await asyncio.gather(*(s.connect() for s in sessions))
        runs = [s.run(path, query, timeout) for s, (path, query) in zip(sessions, views)]
        return list(await asyncio.gather(*runs))
    finally:
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


def run_together(base_url: str, views: list[tuple[str, str]],
                 timeout: float = 120.0) -> list[Run]:
    """run_views for synchronous callers (tests, scripts)."""
    return asyncio.run(run_views(base_url, views, timeout))
