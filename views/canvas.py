"""A drawing pad for one digit: a Streamlit components-v2 component (inline HTML, CSS and JS).

A black 280x280 square with a white round brush (22 px: a digit drawn across most of the
square is scaled by about 1/10 to MNIST's 20-pixel box, which leaves the 2-3 pixel strokes
MNIST digits have) and a Clear button. It listens to pointer events, so a mouse, a finger, a
pen and Playwright's `page.mouse` all draw. When a stroke ends (the pointer is lifted, or
leaves and loses capture) it sends the whole canvas as a PNG data URL to Python with
`setTriggerValue("drawing", url)`; Clear sends "". A trigger value lives for one script run,
so Python sees each new drawing exactly once and keeps it itself (the Your Digit view keeps
it in `st.session_state["yd_drawing"]`); when the pad is mounted afresh (after a page switch)
that drawing is passed back as `data` and painted, until the user draws again.

Why components v2 and not streamlit-drawable-canvas: v2 ships with Streamlit 1.67 (no new
dependency), mounts inline in the page (no iframe: the pad sits in the page's own layout and
Playwright reaches it like any element) and needs no JavaScript build step; one small module
does all the drawing, and its value travels through Streamlit's own widget state.
streamlit-drawable-canvas is a third-party package around Fabric.js, built with a frontend
toolchain and rendered in an iframe through the components-v1 bridge; it went long stretches
without releases while Streamlit changed, which is why forks of it exist (-fix, -fork), and it
would add a dependency whose upkeep the project cannot count on for one black square.
"""
from __future__ import annotations

import streamlit as st

SIZE = 280  # CSS pixels and canvas pixels (the image Python receives is SIZE x SIZE)
BRUSH = 22  # stroke width in canvas pixels

_HTML = f"""
<div class="pad-wrap">
  <canvas class="digit-pad" width="{SIZE}" height="{SIZE}" role="img"
          aria-label="Drawing pad: draw one digit with the mouse, a finger or a pen"></canvas>
  <div class="pad-row">
    <button type="button" class="pad-clear">Clear</button>
    <span class="pad-hint">Draw one digit, large, in the middle.</span>
  </div>
</div>
"""

_CSS = f"""
.pad-wrap {{ display: inline-flex; flex-direction: column; gap: 0.5rem; }}
.digit-pad {{ width: {SIZE}px; height: {SIZE}px; background: #000; border-radius: 0.25rem;
             touch-action: none; cursor: crosshair; display: block; }}
.pad-row {{ display: flex; align-items: center; gap: 0.75rem; }}
.pad-clear {{ font: inherit; font-size: 0.9rem; padding: 0.25rem 0.9rem; border-radius: 0.5rem;
             border: 1px solid rgba(49, 51, 63, 0.25); background: var(--st-background-color, #fff);
             color: var(--st-text-color, inherit); cursor: pointer; }}
.pad-clear:hover {{ border-color: var(--st-primary-color, #ff4b4b); color: var(--st-primary-color, #ff4b4b); }}
.pad-hint {{ font-size: 0.85rem; opacity: 0.7; font-family: var(--st-font, sans-serif); }}
"""

# Called by Streamlit on mount and again whenever `data` (or other props) change, with the same
# DOM: listeners are bound once per canvas element; the latest sender is kept on the element.
_JS = """
export default function (component) {
  const { parentElement, data, setTriggerValue } = component;
  const pad = parentElement.querySelector("canvas.digit-pad");
  const clear = parentElement.querySelector("button.pad-clear");
  if (!pad || !clear) return;
  const state = pad.__digitPad || (pad.__digitPad = { bound: false, touched: false, last: "" });
  state.send = setTriggerValue;
  const ctx = pad.getContext("2d");
  const brush = (data && data.brush) || 22;
  const blank = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, pad.width, pad.height); };

  if (!state.bound) {
    state.bound = true;
    blank();
    let down = false, prev = null;
    const at = (e) => {
      const r = pad.getBoundingClientRect();
      return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
    };
    const dot = ([x, y]) => {
      ctx.fillStyle = "#fff"; ctx.beginPath(); ctx.arc(x, y, brush / 2, 0, 2 * Math.PI); ctx.fill();
    };
    const line = ([x0, y0], [x1, y1]) => {
      ctx.strokeStyle = "#fff"; ctx.lineWidth = brush; ctx.lineCap = "round"; ctx.lineJoin = "round";
      ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
    };
    pad.addEventListener("pointerdown", (e) => {
      if (e.button !== undefined && e.button > 0) return;
      e.preventDefault();
      try { pad.setPointerCapture(e.pointerId); } catch (_) {}
      down = true; state.touched = true; prev = at(e); dot(prev);
    });
    pad.addEventListener("pointermove", (e) => {
      if (!down) return;
      e.preventDefault();
      const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
      for (const ev of (events.length ? events : [e])) { const p = at(ev); line(prev, p); prev = p; }
    });
    const end = () => {
      if (!down) return;
      down = false; prev = null;
      state.last = pad.toDataURL("image/png");
      state.send("drawing", state.last);
    };
    pad.addEventListener("pointerup", end);
    pad.addEventListener("pointercancel", end);
    pad.addEventListener("lostpointercapture", end);
    clear.addEventListener("click", () => {
      blank(); state.touched = true; state.last = ""; state.send("drawing", "");
    });
  }

  // A fresh pad shows the drawing Python kept, until the user draws on it.
  const kept = (data && data.image) || "";
  const want = kept.startsWith("data:image/png;base64,") ? kept : "";
  if (!state.touched && want && want !== state.last) {
    state.last = want;
    const img = new Image();
    img.onload = () => { if (!state.touched) { blank(); ctx.drawImage(img, 0, 0, pad.width, pad.height); } };
    img.src = want;
  }
}
"""

_pad = st.components.v2.component("genlab_digit_pad", html=_HTML, css=_CSS, js=_JS)


def drawing_pad(key: str, image: str | None = None, brush: int = BRUSH) -> str | None:
    """Mount the pad. `image`: a PNG data URL it shows when freshly mounted (the kept drawing).

    Returns what the pad sent in this run: a PNG data URL of the SIZE x SIZE canvas after a
    stroke ended, "" after Clear, None when nothing was sent (then keep the previous drawing).
    """
    result = _pad(key=key, data={"image": image or "", "brush": int(brush)}, width="content",
                  on_drawing_change=lambda: None)
    return result.get("drawing")
