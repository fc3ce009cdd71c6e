"""VAE Manifold: the decoded latent grid beside the encoded test set (pick a test image, by its
number or by a click with interactive charts, to decode it), planes through larger latents, and
the autoencoder's holes beside the VAE."""
import plotly.graph_objects as go
import streamlit as st
import torch

from genlab import latent, viz
from genlab.pagestate import parse_choice, parse_float, parse_int, selected_rows
from views import common, registry

st.title("VAE Manifold")
common.show_notice()
name, model, card = common.current_model()
Z = model.capabilities.latent_dim
codes, labels = common.test_codes(name)
loc, scale = (t.cpu() for t in model.prior())

# ----------------------------------------------------------------------------- the plane
K = registry.keys("VAE Manifold")  # the URL keys this view reads, with their ranges
PLANES = list(K["plane"].options)
LABELS = list(K["label"].options)


def labelled(label: dict, n: int) -> dict:
    """decode's labels= for n codes of one label (a conditional model), or nothing."""
    return {"labels": torch.full((n,), label["labels"], dtype=torch.long, device=common.device())} if label else {}


def find_plane(plane: tuple):
    """(centre, u, v, axis names, the test codes projected on the plane (N, 2)) of a plane:
    ("z",) for a 2-d latent, ("two dimensions", i, j) or ("principal directions",)."""
    if plane[0] == "z":
        center, u, v = loc, torch.tensor([scale[0], 0.0]), torch.tensor([0.0, scale[1]])
        axes = ("z[0]", "z[1]")
        proj = codes.numpy()
    elif plane[0] == "two dimensions":
        _, i, j = plane
        center = loc.clone()
        u, v = latent.axis_plane(center, i, j, scale)
        axes = (f"z[{i}]", f"z[{j}]")
        proj = codes[:, [i, j]].numpy()
    else:
        mean, dirs, std = latent.principal_directions(codes)
        center, u, v = mean, dirs[0] * std[0], dirs[1] * std[1]
        axes = ("first principal direction", "second principal direction")
        proj = ((codes - mean) @ dirs.T).numpy()
    proj = proj.view()
    proj.setflags(write=False)  # shared between sessions
    return center, u, v, axes, proj


if Z == 2:
    plane = ("z",)
else:
    common.url_default("plane", lambda x: parse_choice(x, PLANES, PLANES[0]))
    common.url_default("di", lambda x: parse_int(x, 0, Z - 1, 0))
    common.url_default("dj", lambda x: parse_int(x, 0, Z - 1, 1))
    c1, c2, c3 = st.columns([2, 1, 1])
    plane = (c1.radio("Plane through the latent space", PLANES, key="plane", horizontal=True,
                      help="principal directions: the two directions along which the test codes spread most."),)
    if plane[0] == "two dimensions":
        i = c2.selectbox("horizontal dimension", list(range(Z)), key="di")
        j = c3.selectbox("vertical dimension", list(range(Z)), key="dj")
        if i == j:
            st.warning("Pick two different dimensions.")
            st.stop()
        plane = (plane[0], int(i), int(j))
    common.url_write("plane", "di", "dj")
    st.caption(f"{name} has a {Z}-d latent, so there is no 2-d manifold to draw whole: the grid lies in a plane "
               f"through the {Z}-d latent space (by default the two principal directions of the test codes); every "
               "other coordinate is held at the plane's centre (the prior mean, or the mean test code).")
center, u, v, axes, proj = common.memo(("manifold-plane", plane), lambda: find_plane(plane), model=name)

left, right = st.columns(2)


@st.fragment
def grid_view():
    common.url_default("res", lambda x: parse_int(x, K["res"].lo, K["res"].hi, 20))
    common.url_default("plo", lambda x: parse_float(x, K["plo"].lo, K["plo"].hi, 0.05, 0.001))
    common.url_default("phi", lambda x: parse_float(x, K["phi"].lo, K["phi"].hi, 0.95, 0.001))
    label = {}
    if model.capabilities.num_classes:  # a conditional model: the grid is one label's style manifold
        common.url_default("label", lambda x: parse_choice(x, LABELS, "0"))
        st.selectbox("Label", LABELS, key="label", help="The class every code of the grid is decoded with: the "
                     "latent holds the style only, so the grid shows one digit in every style.")
        common.url_write("label")
        label = {"labels": int(st.session_state["label"])}
    c1, c2, c3 = st.columns(3)
    c1.slider("Resolution", K["res"].lo, K["res"].hi, key="res", help="images per side")
    c2.slider("from probability", K["plo"].lo, K["plo"].hi, step=0.001, key="plo", format="%.3f")
    c3.slider("to probability", K["phi"].lo, K["phi"].hi, step=0.001, key="phi", format="%.3f")
    common.url_write("res", "plo", "phi")
    n, plo, phi = st.session_state["res"], st.session_state["plo"], st.session_state["phi"]

    def draw_grid():
        zs = latent.plane_grid(center, u, v, n, plo, phi).to(common.device())
        with torch.inference_mode():
            imgs = model.decode(zs, **labelled(label, len(zs)))
        return common.grid(imgs, n)

    common.show_png(
        common.memo(("manifold-grid", plane, n, plo, phi, *label.values()), draw_grid, model=name),
        caption=f"{n}×{n} codes at Gaussian quantiles {st.session_state['plo']:.3f}…{st.session_state['phi']:.3f} "
                f"of each axis (inverse CDF); up is +{axes[1]}, right is +{axes[0]}")


@st.fragment
def scatter_view():
    def draw_scatter():
        fig = viz.latent_scatter(proj, labels.numpy(), title=f"{len(proj):,} test images, posterior means")
        fig.update_layout(xaxis_title=axes[0], yaxis_title=axes[1])
        return fig

    common.url_default("pt", lambda x: None if x is None else parse_int(x, 0, len(proj) - 1, 0))
    if st.session_state["pt"] is not None and not 0 <= st.session_state["pt"] < len(proj):
        st.session_state["pt"] = None  # a number from another model's test set
    idx = st.session_state["pt"]

    def draw_marked():  # the chosen test image ringed on the scatter
        fig = go.Figure(common.memo(("manifold-scatter", plane), draw_scatter, model=name))
        fig.add_scatter(x=[float(proj[idx, 0])], y=[float(proj[idx, 1])], mode="markers", name=f"test image {idx}",
                        marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color="#111", width=2.5)),
                        hoverinfo="skip")
        return fig

    def clicked() -> None:  # interactive charts: a click on a point picks the image to decode, before the rerun
        event = st.session_state.get("scatter")
        rows = selected_rows(event.selection if event else None)
        if rows and 0 <= rows[0] < len(proj):
            st.session_state["pt"] = int(rows[0])

    fig = (common.memo(("manifold-scatter", plane), draw_scatter, model=name) if idx is None else
           common.memo(("manifold-scatter-marked", plane, idx), draw_marked, model=name))
    common.chart(fig, on_select=clicked, selection_mode="points", key="scatter", name=f"{name}-test-codes", px=450)
    st.number_input("Decode test image no.", 0, len(proj) - 1, value=None, key="pt",
                    placeholder="a number, or click a point",
                    help="Which test image to decode: its point on the scatter is ringed. With interactive charts "
                         "(sidebar) a click on a point picks it.")
    if st.session_state["pt"] is None:
        st.query_params.pop("pt", None)
    common.url_write("pt")
    if idx is not None:
        def draw_point():
            test = common.test_set(card.get("dataset", {}).get("name", "mnist"))
            with torch.inference_mode():
                own = {"labels": labels[idx:idx + 1].to(common.device())} if model.capabilities.num_classes else {}
                rec = model.decode(codes[idx:idx + 1].to(common.device()), **own)
            return common.grid(torch.cat([test.x[idx:idx + 1], rec]), 2)

        st.markdown(f"**Test image {idx}** (label {int(labels[idx])}) and its decoded posterior mean:")
        common.show_png(common.memo(("manifold-point", idx), draw_point, model=name), width=240)
    elif common.interactive_charts():
        st.caption("Click a point to decode it. Drag to pan, scroll to zoom, double-click to reset.")
    else:
        st.caption("Type a test image's number to decode it, or turn on *Interactive charts* in the sidebar to "
                   "click a point (and hover, zoom, pan).")


with left:
    grid_view()
with right:
    scatter_view()

# ----------------------------------------------------------------------------- the classifier's map
MAP_N = 100  # decodes per side: finer than any picture grid
MAP_RANGE = (0.01, 0.99)  # Gaussian quantiles of each axis: nearly all of the prior's mass


def classify_lattice(plo: float, phi: float, label: dict) -> dict:
    """MAP_N x MAP_N codes over the grid's range decoded, then labelled by the MNIST classifier:
    its label and confidence per decode, the map picture and the least confident decodes."""
    ref = common.reference()
    zs = latent.plane_grid(center, u, v, MAP_N, plo, phi)
    with torch.inference_mode():
        zs = zs.to(common.device())
        images = torch.cat([model.decode(zs[i:i + 1000], **labelled(label, len(zs[i:i + 1000])))
                            for i in range(0, len(zs), 1000)])
        probs = ref.embed(images)[1].cpu()
    conf, label = probs.max(1)
    lab, cf = label.view(MAP_N, MAP_N).numpy(), conf.view(MAP_N, MAP_N).numpy()
    arr = viz.classifier_map(lab, cf, least=12)
    arr.setflags(write=False)
    order = conf.argsort()[:12]
    unsure = common.grid(images[order.to(images.device)], 12)
    share = torch.bincount(label, minlength=10).float() / len(label)
    return {"map": common.Grid(viz.png_bytes(arr), arr), "unsure": unsure,
            "unsure_labels": [(int(label[i]), float(conf[i])) for i in order],
            "share": share.tolist(), "mean_conf": float(conf.mean())}


@st.fragment
def map_view():
    st.subheader("The classifier's map")
    if not model.capabilities.mnist_images or common.reference() is None:
        st.info("The map needs 28×28 digits and the MNIST classifier checkpoint (mnist-classifier).")
        return
    common.url_default("cmap", lambda v: str(v).lower() in ("1", "true", "on"))
    if not st.toggle("Colour the latent space by the classifier's label", key="cmap",
                     help=f"{MAP_N}×{MAP_N} decodes, each read by the MNIST classifier: computed once per model "
                          "and plane, a few seconds the first time."):
        st.query_params.pop("cmap", None)
        return
    st.query_params["cmap"] = "1"
    label = {"labels": int(st.session_state["label"])} if model.capabilities.num_classes else {}
    got = common.memo(("manifold-map", plane, MAP_N, MAP_RANGE, *label.values()),
                      lambda: classify_lattice(*MAP_RANGE, label), model=name)
    a, b = st.columns(2)
    with a:
        common.show_png(got["map"], caption=f"{MAP_N}×{MAP_N} decodes at Gaussian quantiles {MAP_RANGE[0]}…"
                                             f"{MAP_RANGE[1]} of each axis (up is +{axes[1]}), coloured by the "
                                             "classifier's label, darker where it is less sure; white lines are "
                                             "the boundaries between labels, black rings the 12 least sure decodes",
                        name=f"{name}-classifier-map")
    with b:
        legend = " ".join(f"<span style='color:{c}'>■</span> {d}" for d, c in enumerate(viz.DIGIT_COLORS))
        st.markdown(f"Colours: {legend}", unsafe_allow_html=True)
        st.markdown(
            "The scatter above colours each encoded test digit by its **true** label, in the same colours. "
            "Where the map shows a digit and the scatter has no codes, the decoder invents digits the data "
            "never had; where colours disagree, the decoder draws another digit than the one encoded there.")
        shares = ", ".join(f"{d}: {100 * s:.0f} %" for d, s in enumerate(got["share"]))
        st.caption(f"Share of the map per label: {shares}. Mean confidence {got['mean_conf']:.2f}.")
        common.show_png(got["unsure"], caption="the 12 least sure decodes: "
                        + ", ".join(f"{lab} ({c:.2f})" for lab, c in got["unsure_labels"]), name=f"{name}-unsure")


map_view()

# ----------------------------------------------------------------------------- AE vs VAE
st.divider()
st.subheader("Autoencoder against VAE: the holes")
# 2-d encoders, with and without a KL term: the capabilities say which have an encoder, and
# the likelihoods say which are VAEs (an ELBO) and which are plain autoencoders (none)
twos = [m["name"] for m in common.list_models() if m["latent_dim"] == 2 and m["latent"] == "gaussian"]
encoders = [(n, common.load_model(n)[0].capabilities) for n in twos]
ae = next((n for n, c in encoders if c.encode and c.images and not c.likelihoods), None)
vae = next((n for n, c in encoders if c.encode and c.images and "elbo" in c.likelihoods), None)
if not (ae and vae):
    st.info("Load a 2-d autoencoder and a 2-d VAE checkpoint to compare them here "
            "(the shipped ones are ae-mnist-z2 and vae-mnist-z2).")
else:
    st.markdown(
        "Without the KL term the autoencoder puts each digit wherever reconstruction is easiest: "
        "the codes spread over a wide, uneven region with empty gaps, and a point in a gap decodes to "
        "nothing like a digit. The VAE's KL term pulls the posterior toward N(0, I), so its codes fill "
        "a compact round region and samples from the prior land on digits. Below each scatter: 16 "
        "samples from that model's prior (for the autoencoder, a Gaussian fitted to its training codes).")
    cols = st.columns(2)

    def draw_holes(n: str):
        """A 2-d model's scatter of its test codes and 16 samples from its prior (seed 0)."""
        m, _ = common.load_model(n)
        c, y = common.test_codes(n)
        return viz.latent_scatter(c.numpy(), y.numpy(), title=n, height=380), common.grid(common.samples(m, 16, 0), 8)

    for col, n in zip(cols, (ae, vae)):
        with col:
            fig, prior_png = common.memo(("manifold-holes",), lambda: draw_holes(n), model=n)
            common.chart(fig, key=f"cmp-{n}", name=f"{n}-test-codes", px=450)
            common.show_png(prior_png, caption=f"{n}: samples from its prior")
