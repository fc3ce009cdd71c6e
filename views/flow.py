"""Flow: what only a model with an exact likelihood and an invertible latent can show. Bits per
dimension over training, one digit passed layer by layer to z and back, the likelihood of test
digits against noise and transformed digits, and samples at several temperatures."""
import math

import streamlit as st
import torch

from genlab import export, viz
from genlab.models import family
from genlab.pagestate import parse_int
from views import common, registry

st.title("Flow")
st.caption("A normalizing flow is an invertible map from an image x to a code z of the same size with "
           "z ~ N(0, I). Because it can be inverted, its likelihood is exact: log p(x) = log N(z) + the sum of "
           "each layer's log-determinant.")
common.show_notice()
name, model, card = common.current_model()
caps = model.capabilities
test = common.test_set(card.get("dataset", {}).get("name", "mnist"))
D = caps.latent_dim

# ----------------------------------------------------------------------------- bits per dimension
hist = card.get("history", {})
curves = family(card["family"]).curves(model.config)
left, right = st.columns([3, 2])
with left:
    st.subheader("Bits per dimension over training")
    if hist.get("epochs"):
        fig = common.memo(("flow-bpd-history",), lambda: viz.history_figure(
            hist, curves.epoch, title="train (solid) and validation (dashed)", names=family(card["family"]).names,
            unit=curves.epoch_unit, log_y=curves.log_y), model=name)
        common.chart(fig, key="bpd_epochs", name=f"{name}-bits-per-dim", px=540)
    else:
        st.info("This checkpoint's card has no per-epoch history.")
with right:
    st.subheader("Test likelihood")
    rows = common.metric_rows(card)
    if rows:
        st.dataframe(rows, hide_index=True)
    st.caption(f"bits/dim = NLL / ({D} · ln 2) on 8-bit pixels with uniform dequantisation: 8 would be a "
               "uniform guess, lower is better (RealNVP reported 1.06 on MNIST with far larger networks).")


# ----------------------------------------------------------------------------- through the flow
@st.fragment
def through_the_flow():
    st.subheader("Through the flow, layer by layer")
    common.url_default("fi", lambda v: parse_int(v, 0, len(test) - 1, 0))
    c1, c2 = st.columns([1, 3])
    c1.number_input(f"Test image (0–{len(test) - 1})", 0, len(test) - 1, step=1, key="fi",
                    help="Each picture is the whole tensor after one layer, rescaled to grey levels; after the "
                         "squeeze its 4 channels are put back into the 28×28 layout.")
    common.url_write("fi")
    i = int(st.session_state["fi"])

    def trace():
        """Everything the section shows for test image i: two grids, the caption and the numbers."""
        x = test.x[i:i + 1]
        with torch.inference_mode():
            steps = model.trace(x)
            z = model.encode(x)
            back = model.decode(z)
        shown = torch.cat([viz.stretch(s["x"]) for s in steps])  # (L, C, H, W), each rescaled to [0, 1]
        layers = common.grid(shown, nrow=len(steps))
        caption = "left to right: " + " → ".join(s["name"] for s in steps)
        total = sum(float(s["log_det"][0]) for s in steps if s["log_det"] is not None)
        log_pz = float(-0.5 * (z.pow(2).sum() + D * math.log(2 * math.pi)))
        bins = D * math.log(256)  # the density of y in [0, 1]^D becomes a probability of the 8-bit digit
        log_px = log_pz + total - bins
        rows = [{"layer": s["name"], "log-det (nats)": None if s["log_det"] is None else round(float(s["log_det"][0]), 2)}
                for s in steps]
        levels = int((torch.floor(back * 256).clamp(max=255) != torch.round(x * 255)).sum())
        text = (f"**log p(x) = log N(z) + Σ log-det − {D} ln 256 = {log_pz:,.1f} + {total:,.1f} − {bins:,.1f} = "
                f"{log_px:,.1f} nats**, {-log_px / (D * math.log(2)):.3f} bits/dim (pixels at their bins' "
                f"centres; the last term turns the density over [0, 1]^{D} into the probability of these 8-bit "
                f"values). Decoding z gives the digit back: **{levels} of {D} pixels** differ from the "
                f"original's 8-bit value.")
        return layers, caption, common.grid(torch.cat([x, back]), nrow=2), text, rows

    layers, caption, pair, text, rows = common.memo(("flow-trace", i), trace, model=name)
    common.show_png(layers, caption=caption)
    with c2:
        st.markdown(text)
        common.show_png(pair, width=200, caption="the test digit, and decode(encode(x))")
    with st.expander("Log-determinant of each layer"):
        st.dataframe(rows, hide_index=True, width="stretch")


through_the_flow()


# ----------------------------------------------------------------------------- likelihood of the unusual
st.subheader("How likely are things that are not digits?")
sha = card.get("weights_sha256", "")


def unusual():
    """The histogram of the flow's bits/dim of test digits and things that are not digits, and its text."""
    scores = common.flow_surprise(name, sha)
    med = {k: sorted(v)[len(v) // 2] for k, v in scores.items()}
    fig, off = viz.bits_histogram(scores, "bits per dimension (lower = more likely)")
    closest = min((k for k in med if k != "test digits"), key=lambda k: med[k])
    text = ((off + " " if off else "")
            + "Medians: " + ", ".join(f"{k} **{v:.2f}**" for k, v in med.items()) + " bits/dim. "
            f"The flow rates **{closest}** almost as likely as real digits although they are not digits: a likelihood "
            "measures how well the model can compress the pixels (smooth strokes on a black background), not whether "
            "the picture means anything, so it is a poor detector of unusual inputs (Nalisnick et al., 2019).")
    return fig, text


fig, text = common.memo(("flow-unusual", sha), unusual, model=name)
common.chart(fig, key="surprise", name=f"{name}-bits-per-dim-of-unusual-images")
st.markdown(text)

# ----------------------------------------------------------------------------- temperature
TEMPS = [0.5, 0.75, 1.0]
PER_T = 8  # samples per temperature: the columns of the matrix


@st.fragment
def temperatures():
    st.subheader("Samples at temperatures 0.5 to 1.0")
    seeds = registry.key("Flow", "fseed")
    common.url_default("fseed", lambda v: parse_int(v, seeds.lo, seeds.hi, 0))
    st.number_input("Seed", seeds.lo, seeds.hi, step=1, key="fseed",
                    help="z ~ N(0, T² I): the same noise, scaled by each temperature.")
    common.url_write("fseed")
    seed = int(st.session_state["fseed"])

    def draw():
        """One row of PER_T samples per temperature, z = T·ε with the same ε in every row, so each
        column is one noise vector seen at each temperature. One decode of all rows: the same
        pixels as a decode per row, and a third of the torch calls, each of which takes the GIL
        back from the class's other sessions."""
        with torch.inference_mode():
            eps = model.prior_sample(PER_T, common.generator(seed))
            x = model.decode(torch.cat([t * eps for t in TEMPS]))
        g = common.grid(x, nrow=PER_T)
        return g, viz.labelled_rows_png(g.arr, [f"T = {t}" for t in TEMPS], cell=x.shape[-2])

    g, png = common.memo(("flow-temperatures", seed, PER_T), draw, model=name)
    st.image(png)  # at its own size: each digit at twice its pixels
    common.download("PNG", lambda: export.upscaled_png(g.arr), f"{name}-temperatures-seed{seed}.png", "image/png",
                    help="The rows as one picture (T = 0.5 at the top), enlarged by whole pixels")
    st.caption("Each column is one noise vector ε, decoded at z = T·ε for each temperature. Lower temperatures keep "
               "samples near the mode of the prior: cleaner strokes, less variety. T = 1 samples the model as trained.")


temperatures()
