"""Your Digit: draw a digit or upload a picture of one; it is prepared the way MNIST's digits
were (genlab.digits), shown as the model sees it, read by the MNIST classifier, encoded and
scored by the sidebar's model beside the test digits' scores, and it can be an endpoint in
Interpolation (st.session_state["your_digit_a"] / ["your_digit_b"]: a CPU tensor (1, 28, 28)).

The drawing lives in st.session_state["yd_drawing"] (a PNG data URL); the drawing pad writes it
after each stroke, and tests put a picture there to stand in for drawing.
"""
import math

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image

from genlab import digits, viz
from genlab.models import card_likelihoods, missing
from views import common, registry
from views.canvas import drawing_pad

N_TEST = 500  # test digits each score is compared with (the first N of the test set)
K = 64  # posterior draws for the ELBO and the importance-weighted bound
TILE = 150  # px, each picture in the top row
SOURCES = {"draw": "Draw it", "upload": "Upload a picture"}
ENDPOINT_KEY = "your_digit_{}"  # read by views/interpolation.py

st.title("Your Digit")
st.caption("Draw a digit or upload a picture of one. It is prepared the way MNIST's digits were: the ink's "
           "bounding box scaled to 20 pixels on its longer side, then moved by whole pixels so its centre of mass "
           "sits at the centre of a 28×28 frame. The sidebar's model then encodes and scores it, and the MNIST "
           "classifier reads it.")
common.show_notice()
name, model, card = common.current_model()
caps = model.capabilities
if not caps.mnist_images:
    st.info(f"{name} models {'×'.join(map(str, caps.data_shape))} images; your digit is prepared as a 28×28 MNIST "
            "digit, so pick an MNIST model in the sidebar.")
    st.stop()


@st.cache_data(show_spinner=False, max_entries=32)
def _prepare(kind: str, data) -> tuple[digits.Digit | None, str | None]:
    """(digit, None) or (None, the message for the user); the same bytes are read once."""
    try:
        return (digits.prepare_drawing(data) if kind == "draw" else digits.prepare(data)), None
    except digits.DigitError as e:
        return None, str(e)


@st.cache_data(show_spinner=f"Scoring {N_TEST} test digits the same way (once per model)…", max_entries=8)
def _test_scores(n: str, stamp: tuple[int, int], log_z: float | None) -> dict[str, list[float]]:
    mdl, crd = common.load_model(n)
    test = common.test_set(crd.get("dataset", {}).get("name", "mnist"))
    y = test.y[:N_TEST] if mdl.capabilities.num_classes else None  # a conditional model: each with its own label
    return {k: v.tolist() for k, v in digits.scores(mdl, test.x[:N_TEST], K, 0, log_z, labels=y).items()}


def _as_read(d: digits.Digit) -> np.ndarray:
    """The picture as read (white ink on black), at most 280 px a side, with the ink's box in red."""
    ink = d.ink
    f = max(1.0, max(ink.shape) / 280)
    hh, ww = max(1, round(ink.shape[0] / f)), max(1, round(ink.shape[1] / f))
    small = np.asarray(Image.fromarray(ink).resize((ww, hh), Image.BOX)) if f > 1 else ink
    rgb = np.repeat((np.clip(small, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    top, left, h, w = d.box
    t0, l0 = min(int(top / f), hh - 1), min(int(left / f), ww - 1)
    b, r = max(t0 + 1, min(round((top + h) / f), hh)), max(l0 + 1, min(round((left + w) / f), ww))
    t = max(1, round(max(hh, ww) / 140))  # about 2 px on the page
    red = np.array([255, 75, 75], np.uint8)
    rgb[t0:t0 + t, l0:r] = red
    rgb[max(b - t, 0):b, l0:r] = red
    rgb[t0:b, l0:l0 + t] = red
    rgb[t0:b, max(r - t, 0):r] = red
    return rgb


def _fmt(v: float, s: digits.Score) -> str:
    text = f"{v:.1f}" if abs(v) >= 100 else f"{v:.4g}"
    return f"{text} {s.unit}" if s.unit else text


def _use(tag: str, image: torch.Tensor) -> None:
    st.session_state[ENDPOINT_KEY.format(tag)] = image.detach().cpu().clone()
    st.session_state[f"{tag}_src"] = "your digit"  # Interpolation opens with it picked


# ----------------------------------------------------------------------------- input
if st.session_state.get("yd_src") not in SOURCES:
    st.session_state["yd_src"] = "draw"
st.radio("Your digit", list(SOURCES), key="yd_src", horizontal=True, format_func=SOURCES.get,
         help="Draw with the mouse, a finger or a pen, or upload a photo or scan of one handwritten digit.")
left, right = st.columns([1, 2], gap="large")
digit, problem = None, None
with left:
    if st.session_state["yd_src"] == "draw":
        sent = drawing_pad("yd_pad", st.session_state.get("yd_drawing"))
        if sent is not None:  # a stroke ended ("" after Clear)
            st.session_state["yd_drawing"] = sent or None
        if st.session_state.get("yd_drawing"):
            digit, problem = _prepare("draw", st.session_state["yd_drawing"])
    else:
        up = st.file_uploader(f"A picture of one digit ({', '.join(digits.FORMATS)}; up to "
                              f"{digits.MAX_BYTES // 2**20} MB)", key="yd_file",
                              help="Dark ink on light paper is inverted automatically (decided by the picture's "
                                   "border); a transparent picture's strokes are the ink. Crop close to the digit.")
        if up is not None:
            digit, problem = _prepare("upload", up.getvalue())
    if problem:
        st.error(problem)

if digit is None:
    with right:
        if not problem:
            st.info("Draw a digit on the black square, or upload a picture of one, to see how the model and the "
                    "classifier read it." if st.session_state["yd_src"] == "draw" else
                    "Upload a picture of one handwritten digit to see how the model and the classifier read it.")
    st.stop()

x = digit.image[None].to(common.device())  # (1, 1, 28, 28)
ref = common.reference()
given = None  # a conditional model: the label your digit is encoded (and reconstructed) with
if caps.num_classes:
    read = str(int(ref.embed(x)[1][0].argmax())) if ref is not None else "0"
    given = torch.tensor([int(right.selectbox(
        "The label this conditional model is given", list(map(str, range(caps.num_classes))),
        index=int(read) if int(read) < caps.num_classes else 0, key=f"yd_label_{read}",
        help="A conditional model encodes and reconstructs a digit given its class; by default the classifier's "
             "reading. Give it another label to see the code and reconstruction it would make of that class."))])
recon = digits.reconstruct(model, x, given)

# ----------------------------------------------------------------------------- pictures
with right:
    shown = [(digit.image[None], "as the model sees it (28×28)")]
    if recon is not None:
        shown.append((recon.cpu(), "its reconstruction"))
    if ref is not None:
        idx, dist = common.nearest(ref, x, "pixel")
        j = int(idx[0])
        shown.append((ref.train.x[j:j + 1].cpu(),
                      f"nearest training digit (a {int(ref.train.y[j])}, {float(dist[0]):.2f} away)"))
    tiles = st.columns(4)
    with tiles[0]:
        st.image(viz.png_bytes(_as_read(digit)), width=TILE, caption="as read (red: the ink's box)")
    for col, (img, cap) in zip(tiles[1:], shown):
        with col:
            common.show_grid(img, nrow=1, width=TILE, padding=0, caption=cap)
    top, lft, h, w = digit.box
    (sh, sw), (dy, dx), (cy, cx) = digit.scaled, digit.offset, digit.centre
    st.caption(f"Ink box {w}×{h} px → scaled to {sw}×{sh} and placed at column {dx}, row {dy}: its centre of mass "
               f"is at ({cx:.2f}, {cy:.2f}) in pixel-centre coordinates; MNIST's digits have theirs at (14, 14), "
               "up to half a pixel. " + " ".join(digit.notes))

# ----------------------------------------------------------------------------- classifier and scores
c_left, c_right = st.columns([2, 3], gap="large")
with c_left:
    st.subheader("What the classifier reads")
    if ref is None:
        st.info("The MNIST classifier checkpoint (mnist-classifier) is missing, so nothing reads your digit.")
    else:
        _, probs = ref.embed(x)
        p = probs[0].cpu()
        label = int(p.argmax())
        st.markdown(f"It reads a **{label}**, with probability **{float(p[label]):.1%}**.")
        fig = go.Figure(go.Bar(x=list(range(10)), y=p.tolist(), marker_color=["#ff4b4b" if i == label else "#8a9bb0"
                                                                             for i in range(10)]))
        fig.update_layout(height=230, margin=dict(l=10, r=10, t=10, b=10), xaxis=dict(dtick=1, title="digit"),
                          yaxis=dict(range=[0, 1], title="probability"))
        common.chart(fig, key="yd_probs", name="your-digit-label-probabilities", px=360)
        acc = ref.card.get("metrics", {}).get("test_accuracy")
        st.caption("The CNN that measures every model's samples on this site"
                   + (f" ({acc:.1%} right on MNIST's test digits)." if isinstance(acc, (int, float)) else "."))

log_z = digits.card_log_z(card_likelihoods(card)) if caps.energy and caps.latent == "binary" else None
kinds = digits.score_kinds(model, K, log_z)
with c_right:
    st.subheader("How typical is it for this model?")
    if not kinds:
        st.info(f"{name} reports no likelihood, energy or reconstruction, so there is no score for your digit; the "
                "classifier's reading still applies.")
    else:
        ref_scores = _test_scores(name, common.stamp(name), log_z)
        mine = {k: float(v[0]) for k, v in digits.scores(model, x, K, 0, log_z, labels=given).items()}
        rows = []
        for sc in kinds:
            pct = f"{digits.percentile(mine[sc.key], ref_scores[sc.key]):.0f}"
            med = float(np.median(ref_scores[sc.key]))
            rows.append({"score (lower = more typical)": sc.label, "your digit": _fmt(mine[sc.key], sc),
                         f"median of {N_TEST} test digits": _fmt(med, sc), "percentile": pct})
            if sc.per_dim:  # the same number per pixel, in bits
                rows.append({"score (lower = more typical)": f"{sc.label} in bits/dim",
                             "your digit": f"{mine[sc.key] / sc.per_dim:.3f}",
                             f"median of {N_TEST} test digits": f"{med / sc.per_dim:.3f}", "percentile": pct})
        st.dataframe(rows, hide_index=True, width="stretch")
        main = kinds[0]
        pct = digits.percentile(mine[main.key], ref_scores[main.key])
        st.markdown(f"By its **{main.label}**, **{pct:.0f}%** of MNIST test digits are more typical than yours "
                    f"(percentile {pct:.0f}: 0 = yours is more typical than every test digit, 100 = less than all).")
        fig = go.Figure(go.Histogram(x=ref_scores[main.key], nbinsx=50, name=f"{N_TEST} test digits",
                                     marker_color="#8a9bb0"))
        fig.add_vline(x=mine[main.key], line_color="#ff4b4b", line_width=3,
                      annotation_text="your digit", annotation_position="top")
        fig.update_layout(height=240, margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
                          xaxis_title=main.label + (f" ({main.unit})" if main.unit else ""), yaxis_title="test digits")
        common.chart(fig, key="yd_hist", name="your-digit-score-against-test-digits", px=540)
        st.caption(" ".join(sc.note for sc in kinds))

# ----------------------------------------------------------------------------- the code
st.subheader("Its code")
why = missing(caps, ("encode",))
if why:
    st.info(f"{name} {why}, so your digit has no code here, and Interpolation cannot start from it with this model. "
            "A VAE, an autoencoder or a flow can encode it: pick one in the sidebar.")
else:
    mu, std = digits.code(model, x, given)
    mu, std = mu[0].cpu(), (None if std is None else std[0].cpu())
    loc, scale = (t.cpu() for t in model.prior())
    Z = mu.numel()
    norm = float(mu.norm())
    if Z <= 64:  # one point (with its error bar) per dimension
        kind = "posterior mean ± standard deviation" if std is not None else "the code (a point)"
        dims = list(range(Z))
        fig = go.Figure()
        fig.add_bar(x=dims, y=(2 * scale).tolist(), base=(loc - scale).tolist(), name="prior: mean ± 1 std",
                    marker_color="rgba(138,155,176,0.25)", hoverinfo="skip")
        fig.add_scatter(x=dims, y=mu.tolist(), mode="markers", marker=dict(size=9, color="#ff4b4b"), name=kind,
                        error_y=None if std is None else dict(type="data", array=std.tolist(), visible=True))
        fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), yaxis_title="z", barmode="overlay",
                          xaxis=dict(title="latent dimension", dtick=1), legend=dict(orientation="h", y=1.12))
        common.chart(fig, key="yd_code", name="your-digit-code")
        spread = ("The error bars are the encoder's uncertainty; a dimension whose posterior is the prior itself "
                  "(the grey band) says nothing about your digit." if std is not None else
                  "Its encoder gives a single point, so there is no posterior spread to show.")
        st.caption(f"{Z} dimensions, ‖μ‖ = {norm:.2f}; under the prior a code's norm is typically about "
                   f"√{Z} = {math.sqrt(Z):.2f}. {spread}")
        with st.expander("The numbers"):
            st.dataframe([{"dimension": i, "mean": round(float(mu[i]), 4),
                           **({"std": round(float(std[i]), 4)} if std is not None else {})} for i in range(Z)],
                         hide_index=True)
    else:  # too many dimensions for bars: the distribution of its coordinates against the prior's
        zs = ((mu - loc) / scale).tolist()
        grid = np.linspace(-4, 4, 161)
        fig = go.Figure(go.Histogram(x=zs, histnorm="probability density", nbinsx=60, name="your digit's z",
                                     marker_color="#ff4b4b", opacity=0.75))
        fig.add_scatter(x=grid.tolist(), y=(np.exp(-grid ** 2 / 2) / math.sqrt(2 * math.pi)).tolist(), mode="lines",
                        name="N(0, 1), the prior", line=dict(color="#31333f"))
        fig.update_layout(height=280, margin=dict(l=10, r=10, t=10, b=10), yaxis_title="density",
                          xaxis_title="a z coordinate, standardised by the prior", legend=dict(orientation="h", y=1.12))
        common.chart(fig, key="yd_code", name="your-digit-code")
        same = " (as many as pixels)" if Z == math.prod(caps.data_shape) else ""
        st.caption(f"Its z has {Z} coordinates{same}: mean {float(mu.mean()):.2f}, standard deviation "
                   f"{float(mu.std()):.2f}, ‖z‖ = {norm:.1f} against about √{Z} = {math.sqrt(Z):.1f} under the "
                   "prior. "
                   "A digit the model finds likely has a z that looks like draws from the prior.")

# ----------------------------------------------------------------------------- interpolation endpoints
st.subheader("Use it in Interpolation")
c1, c2, c3 = st.columns([1, 1, 3])
c1.button("Use as endpoint A", key="yd_use_a", on_click=_use, args=("a", digit.image))
c2.button("Use as endpoint B", key="yd_use_b", on_click=_use, args=("b", digit.image))
with c3:
    st.page_link(registry.file("Interpolation"), label="Open Interpolation", icon=registry.view("Interpolation").icon)
held = [t.upper() for t in "ab" if st.session_state.get(ENDPOINT_KEY.format(t)) is not None]
st.caption(("Interpolation holds your digit as endpoint " + " and ".join(held) + ". " if held else "")
           + ("Interpolation encodes its endpoints, so it offers your digit with models that can encode (VAEs, "
              "autoencoders, flows)." if why else "Interpolation encodes it with the model picked there."))
