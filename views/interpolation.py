"""Interpolation: endpoints from seeds, encoded test images or your own digit (drawn or uploaded
on Your Digit, kept in st.session_state["your_digit_a"/"your_digit_b"]); lerp and slerp; a strip
of N steps; the norm along each path; download as an animated GIF."""
import math

import plotly.graph_objects as go
import streamlit as st
import torch

from genlab import latent, viz
from genlab.pagestate import parse_choice, parse_int
from views import common, registry

st.title("Interpolation")
common.show_notice()
name, model, card = common.current_model()
Z = model.capabilities.latent_dim
can_encode = model.capabilities.encode
K = registry.keys("Interpolation")  # the URL keys this view reads, with their ranges
SOURCES = list(K["a_src"].options) if can_encode else ["seed"]
METHODS = list(K["method"].options)
test = common.test_set(card.get("dataset", {}).get("name", "mnist")) if can_encode else None
YOURS = "your digit"  # not in the URL: a link without the digit falls back to a test image


def encode(x, label: int | None):
    """The code (Z,) of one image x (1, C, H, W); a conditional model is given its label."""
    with torch.inference_mode():
        return model.encode(x, **common.given_labels(model, label, 1))[0]


def your_digit(tag: str):
    """The digit Your Digit stored for this endpoint, or None (then the radio does not offer it)."""
    v = st.session_state.get(f"your_digit_{tag}") if can_encode else None
    return v if isinstance(v, torch.Tensor) and v.numel() == math.prod(model.capabilities.data_shape) else None


def sources(tag: str) -> list[str]:
    return SOURCES + [YOURS] if your_digit(tag) is not None else SOURCES


def endpoint(tag: str, default_seed: int, default_index: int):
    """Widgets for one endpoint; returns (what it is, description). What it is: ("seed", seed) or
    ("test image", index), which the renders shared between sessions are keyed by, or for your
    digit (this session's alone) the tuple (YOURS, code (Z,), image)."""
    choices, fallback = sources(tag), "test image" if can_encode else "seed"
    common.url_default(f"{tag}_src", lambda v: YOURS if v == YOURS and YOURS in choices
                       else parse_choice(v, SOURCES, fallback))
    if st.session_state[f"{tag}_src"] not in choices:  # e.g. "your digit" with none stored
        st.session_state[f"{tag}_src"] = fallback
    common.url_default(f"{tag}_seed", lambda v: parse_int(v, K[f"{tag}_seed"].lo, K[f"{tag}_seed"].hi, default_seed))
    common.url_default(f"{tag}_idx", lambda v: parse_int(v, 0, len(test) - 1 if test else 0, default_index))
    src = st.radio(f"Endpoint {tag}", choices, key=f"{tag}_src", horizontal=True)
    if src == YOURS:
        x = your_digit(tag).float().reshape(1, *model.capabilities.data_shape).to(common.device())
        return (YOURS, x), "your digit"
    if src == "seed":
        st.number_input("seed", K[f"{tag}_seed"].lo, K[f"{tag}_seed"].hi, step=1, key=f"{tag}_seed")
        return ("seed", int(st.session_state[f"{tag}_seed"])), f"seed {st.session_state[f'{tag}_seed']}"
    pick = st.radio("pick by", ["index", "label"], key=f"{tag}_by", horizontal=True)
    if pick == "label":
        c1, c2 = st.columns(2)
        digit = c1.selectbox("digit", list(range(10)), index=default_index % 10, key=f"{tag}_digit")
        idx_of = (test.y == digit).nonzero().flatten()
        k = c2.number_input("which one", 0, len(idx_of) - 1, 0, key=f"{tag}_k",
                            help=f"There are {len(idx_of)} test images of a {digit}.")
        st.session_state[f"{tag}_idx"] = int(idx_of[k])
    st.number_input(f"test image index (0–{len(test) - 1})", 0, len(test) - 1, step=1, key=f"{tag}_idx",
                    disabled=(pick == "label"))
    i = int(st.session_state[f"{tag}_idx"])
    return ("test image", i), f"test image {i} (label {int(test.y[i])})"


def resolve(end: tuple):
    """(code (Z,), original image or None) of an endpoint from `endpoint`. A conditional model
    encodes a test image with its own label and your digit with the path's label."""
    if end[0] == YOURS:
        return encode(end[1], label), end[1]
    if end[0] == "seed":
        with torch.inference_mode():
            return model.prior_sample(1, common.generator(end[1]))[0], None
    x = test.x[end[1]:end[1] + 1]
    return encode(x, int(test.y[end[1]])), x


cols = st.columns(2)
with cols[0]:
    ea, da = endpoint("a", 1, 3)
with cols[1]:
    eb, db = endpoint("b", 2, 2)
lacking = [t.upper() for t in "ab" if YOURS not in sources(t)]
if lacking:
    st.caption(f"To start from your own digit, draw or upload one on Your Digit and press “Use as endpoint "
               f"{' / '.join(lacking)}”." if can_encode else
               f"Your own digit can be an endpoint with a model that can encode it (a VAE, an autoencoder or a "
               f"flow); {name} cannot.")
    st.page_link(registry.file("Your Digit"), label="Your Digit", icon=registry.view("Your Digit").icon)

common.url_default("method", lambda v: parse_choice(v, METHODS, "both"))
common.url_default("steps", lambda v: parse_int(v, K["steps"].lo, K["steps"].hi, 10))
c1, c2 = st.columns(2)
c1.radio("Path", METHODS, key="method", horizontal=True,
         help="lerp: the straight line. slerp: the great circle, with the norm blended linearly; "
              "it keeps codes at the norms the prior makes typical.")
c2.slider("Steps", K["steps"].lo, K["steps"].hi, key="steps")
label = common.label_picker(model, "label", list(K["label"].options), str(int(test.y[ea[1]])) if ea[0] == "test image"
                            else "0", "The class every code of the path is decoded with: the codes carry the style "
                                      "(a test image is encoded with its own label), the label the digit.")
common.url_write("a_src", "a_seed", "a_idx", "b_src", "b_seed", "b_idx", "method", "steps")
steps = st.session_state["steps"]
methods = ["lerp", "slerp"] if st.session_state["method"] == "both" else [st.session_state["method"]]

encoded = ea[0] != "seed" or eb[0] != "seed"  # the original images sit at the ends of the strips


def draw_paths():
    """The strip of each method (drawn), the norm chart, and the frames of the last method's path (for the GIF)."""
    (za, xa), (zb, xb) = resolve(ea), resolve(eb)
    strips, norms = {}, {}
    for m in methods:
        path = latent.interpolate(za, zb, steps, m)  # (steps, Z)
        with torch.inference_mode():
            imgs = model.decode(path, **common.given_labels(model, label, len(path)))
            if xa is not None or xb is not None:  # the original test images at the ends
                ends = [t if t is not None else model.decode(p[None], **common.given_labels(model, label, 1))
                        for t, p in ((xa, path[0]), (xb, path[-1]))]
                imgs = torch.cat([ends[0], imgs, ends[1]])
        strips[m] = common.grid(imgs, len(imgs))
        norms[m] = path.norm(dim=1).cpu()
        last = imgs.cpu()
    fig = go.Figure()
    t = torch.linspace(0, 1, steps)
    for m, v in norms.items():
        fig.add_scatter(x=t.tolist(), y=v.tolist(), mode="lines+markers", name=f"‖z‖ along {m}")
    fig.add_hline(y=math.sqrt(Z), line_dash="dot", annotation_text=f"√Z = {math.sqrt(Z):.2f}, the typical norm under N(0, I)")
    fig.update_layout(height=260, xaxis_title="t", yaxis_title="norm of z", margin=dict(l=10, r=10, t=30, b=10))
    return strips, fig, last


if YOURS in (ea[0], eb[0]):  # this session's own digit: nobody else asks for these pictures
    strips, fig, last = draw_paths()
else:
    strips, fig, last = common.memo(("interpolation", ea, eb, tuple(methods), steps, label), draw_paths, model=name)
for m, png in strips.items():
    cap = f"{m}: {da} → {db}" + ("  (outer tiles: the encoded images)" if encoded else "")
    common.show_png(png, caption=cap)

common.chart(fig, key="norms", name="norm-along-the-path")

m0 = methods[-1]
common.download(f"Download the {m0} path as an animated GIF",
                lambda frames=last: viz.gif_bytes([viz.grid_array(f[None], nrow=1, upscale=4, padding=0) for f in frames]),
                f"{name}-{m0}-interpolation.gif", "image/gif")
