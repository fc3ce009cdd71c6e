"""Latent Explorer: samples from a seed, the mean/std scaling grid, one dimension at a time,
and the Bernoulli sample beside the mean image."""
import streamlit as st
import torch

from genlab import directions, latent, viz
from genlab.pagestate import parse_choice, parse_float, parse_int
from views import common, registry

st.title("Latent Explorer")
common.show_notice()
name, model, card = common.current_model()
caps = model.capabilities
Z = caps.latent_dim
K = registry.keys("Latent Explorer")  # the URL keys this view reads, with their ranges
NN_SPACES = list(K["nn"].options)
LABELS = list(K["label"].options)

# ----------------------------------------------------------------------------- samples
@st.fragment
def samples_section():
    st.subheader("Samples from the prior")
    common.url_default("seed", lambda v: parse_int(v, K["seed"].lo, K["seed"].hi, 0))
    common.url_default("n", lambda v: parse_int(v, K["n"].lo, K["n"].hi, 8))
    common.url_default("temp", lambda v: parse_float(v, K["temp"].lo, K["temp"].hi, 1.0, 0.05))
    c1, c2, c3 = st.columns(3)
    c1.number_input("Seed", min_value=K["seed"].lo, max_value=K["seed"].hi, step=1, key="seed",
                    help="The same seed always gives the same codes and pictures.")
    c2.slider("Grid side", K["n"].lo, K["n"].hi, key="n", help="The grid shows side × side samples.")
    c3.slider("Temperature T", K["temp"].lo, K["temp"].hi, step=0.05, key="temp",
              help="Codes from the prior with its spread scaled by T: z ~ N(μ, (T σ)²). Below 1 the samples "
                   "stay near the prior's centre (cleaner, less varied); above 1 they wander off.")
    common.url_write("seed", "n", "temp")
    n, seed, temp = st.session_state["n"], int(st.session_state["seed"]), st.session_state["temp"]
    label = None
    if caps.num_classes:  # a conditional model: which label it is given
        common.url_default("label", lambda v: parse_choice(v, LABELS, "any"))
        st.selectbox("Label", LABELS, key="label",
                     help="The class this conditional model is asked for: one label for every sample, or any "
                          "(each sample's label drawn with its code).")
        common.url_write("label")
        label = st.session_state["label"]

    def labels_for(count: int, g) -> dict:
        if not caps.num_classes:
            return {}
        if label == "any":
            return {"labels": torch.randint(caps.num_classes, (count,), generator=g, device=g.device)}
        return {"labels": torch.full((count,), int(label), dtype=torch.long, device=g.device)}

    def decode_means():
        g = common.generator(seed)
        z = model.prior_sample(n * n, g, temperature=temp)
        given = labels_for(n * n, g)
        return z, model.decode(z, **given), given

    def draw_samples():
        with torch.inference_mode():
            z, mean, given = decode_means()
            draw = model.decode_sample(z, common.generator(seed + 1), **given) if caps.draw else None
        return common.grid(mean, n), common.grid(draw, n) if draw is not None else None

    mean_png, draw_png = common.memo(("explorer-samples", seed, n, temp, label), draw_samples, model=name)
    a, b = st.columns(2)
    with a:
        common.show_png(mean_png, caption="mean image: E[x | z], what the decoder predicts" if draw_png is not None
                        else "decode(z): the image each code maps to")
    if draw_png is not None:
        with b:
            what = "a Bernoulli draw x ~ p(x | z): each pixel on with its predicted probability" \
                if caps.draw == "bernoulli" else "a draw x ~ p(x | z) with the decoder's noise"
            common.show_png(draw_png, caption=what)
    if card.get("dataset", {}).get("name", "mnist") == "mnist" and caps.mnist_images and common.reference_available():
        common.url_default("nn", lambda v: parse_choice(v, NN_SPACES, "off"))
        st.radio("Nearest training image of each sample", NN_SPACES, key="nn", horizontal=True,
                 help="Was a sample memorised? The closest of the 55,000 training images, in pixel space or in "
                      "the MNIST classifier's feature space, at the same place in the grid.")
        common.url_write("nn")
        if st.session_state["nn"] != "off":
            ref = common.reference()
            if ref is not None:
                space = "pixel" if st.session_state["nn"] == "pixels" else "feature"

                def neighbours():
                    with torch.inference_mode():
                        _, mean, _ = decode_means()
                    idx, dist = common.nearest(ref, mean, space)
                    return common.grid(ref.train.x[idx], n), f"{dist.median():.2f}"

                nn_png, median = common.memo(("explorer-nn", seed, n, temp, label, space, ref.classifier_id,
                                              common.stamp(common.evaluation.CLASSIFIER)), neighbours, model=name)
                with (b if draw_png is None else st.container()):
                    common.show_png(nn_png, caption=f"nearest training images ({st.session_state['nn']}); "
                                    f"median distance {median}")
    if caps.num_classes:
        def draw_each_label():
            with torch.inference_mode():
                z = model.prior_sample(8, common.generator(seed), temperature=temp)
                k = caps.num_classes
                codes = z.repeat_interleave(k, 0)  # each code once per label, a row per code
                labels = torch.arange(k, device=z.device).repeat(8)
                return common.grid(model.decode(codes, labels=labels), k)

        common.show_png(common.memo(("explorer-each-label", seed, temp), draw_each_label, model=name),
                        caption=f"the same code in every row, given each of the {caps.num_classes} labels in turn: "
                                "the code holds the style (slant, width, stroke), the label the class")


# ----------------------------------------------------------------------------- mean / std scaling
@st.fragment
def scaling_section():
    st.subheader("Scale the means and standard deviations of the latent Gaussian")
    st.markdown(
        r"Codes are drawn from $\mathcal N(\mu, \sigma^2)$ with "
        r"$\mu = s_\mu \cdot \mathrm{linspace}(-1, 1, Z)$ and "
        r"$\sigma = |s_\sigma \cdot \mathrm{linspace}(-1, 1, Z)|$: "
        f"each of the {Z} dimensions gets its own mean and spread. "
        r"$s_\mu = 0, s_\sigma = 1$ is close to the prior; large $s_\mu$ leaves the region the decoder was trained on.")
    common.url_default("sm", lambda v: parse_float(v, K["sm"].lo, K["sm"].hi, 0.0, 0.1))
    common.url_default("ss", lambda v: parse_float(v, K["ss"].lo, K["ss"].hi, 1.0, 0.1))
    common.url_default("gs", lambda v: parse_int(v, K["gs"].lo, K["gs"].hi, 8))
    controls, picture = st.columns([1, 2])
    controls.slider("Scale of the means  s_μ", K["sm"].lo, K["sm"].hi, step=0.1, key="sm")
    controls.slider("Scale of the standard deviations  s_σ", K["ss"].lo, K["ss"].hi, step=0.1, key="ss")
    controls.slider("Grid side ", K["gs"].lo, K["gs"].hi, key="gs")
    common.url_write("sm", "ss", "gs")
    n, sm, ss = st.session_state["gs"], st.session_state["sm"], st.session_state["ss"]
    seed = int(st.session_state.get("seed", 0))

    def draw_scaled():
        g = torch.Generator().manual_seed(seed)
        z = latent.scaled_latents(n * n, Z, sm, ss, g)
        mu, sd = latent.scale_vectors(Z, sm, ss)
        with torch.inference_mode():
            imgs = model.decode(z.to(common.device()))
        return common.grid(imgs, n), (f"μ runs from {mu[0]:+.2f} to {mu[-1]:+.2f}, σ from {sd[0]:.2f} down to "
                                      f"{sd.min():.2f} and back to {sd[-1]:.2f} across the dimensions (seed from above)")

    png, caption = common.memo(("explorer-scaling", sm, ss, n, seed), draw_scaled, model=name)
    with picture:
        common.show_png(png, caption=caption)


# ----------------------------------------------------------------------------- one dimension
@st.fragment
def dims_section():
    k = min(Z, 8)
    st.subheader("One dimension at a time")
    st.caption(f"Start from a code, then move its first {k} coordinates. The strip sweeps the chosen "
               "dimension from −3 to +3 with the others held fixed.")
    common.url_default("base", lambda v: parse_int(v, K["base"].lo, K["base"].hi, 0))
    keys = [f"d{i}" for i in range(k)]

    def reset_dims():
        with torch.inference_mode():
            base = model.prior_sample(1, common.generator(st.session_state["base"]))[0].cpu()
        for i, key in enumerate(keys):
            st.session_state[key] = round(max(K[key].lo, min(K[key].hi, float(base[i]))), 1)

    if any(key not in st.session_state for key in keys):
        reset_dims()
        for key in keys:  # a shared link overrides the starting point
            if key in st.query_params:
                st.session_state[key] = parse_float(st.query_params[key], K[key].lo, K[key].hi, st.session_state[key], 0.1)
    left, right = st.columns([2, 3])
    with left:
        st.number_input("Starting code (seed)", K["base"].lo, K["base"].hi, step=1, key="base", on_change=reset_dims,
                        help="Sets the sliders to the first coordinates of this seed's prior sample.")
        for i, key in enumerate(keys):
            st.slider(f"z[{i}]", K[key].lo, K[key].hi, step=0.1, key=key)
        sweep = st.selectbox("Sweep dimension", list(range(k)), key="sweep")
    common.url_write("base", *keys)
    base, values = int(st.session_state["base"]), tuple(float(st.session_state[key]) for key in keys)

    def draw_dims():
        with torch.inference_mode():
            z = model.prior_sample(1, common.generator(base))[0].clone()
            for i, value in enumerate(values):
                z[i] = value
            strip = z.repeat(9, 1)
            strip[:, sweep] = torch.linspace(-3, 3, 9)
            one = model.decode(z[None])
            row = model.decode(strip)
        return common.grid(one, 1), common.grid(row, 9)

    one_png, row_png = common.memo(("explorer-dims", base, values, sweep), draw_dims, model=name)
    with right:
        common.show_png(one_png, width=224, caption="the decoded code")
        common.show_png(row_png, caption=f"z[{sweep}] from −3 to +3")


# ----------------------------------------------------------------------------- directions
DIRS = list(K["dir0"].options)


def direction(which: str, found: dict) -> tuple[torch.Tensor, float, str] | None:
    """(unit vector, the codes' spread along it, its name) for a choice of DIRS; None where the
    model has no labels to take an attribute vector from."""
    if which.startswith("PC"):
        i = int(which[2:]) - 1
        pcs = found["pcs"]
        if i >= len(pcs.vectors):
            return None
        return pcs.vectors[i], float(pcs.spread[i]), f"{which} ({100 * float(pcs.explained[i]):.1f} % of the variance)"
    if found["labels"] is None:
        return None
    digit = int(which.split()[-1])
    u = directions.attribute(found["codes"], found["labels"], digit)
    return u, float((found["codes"] @ u).std()), f"towards a {digit}"


@st.fragment
def directions_section():
    st.subheader("Meaningful directions")
    # off until asked for (or linked to): finding them costs a PCA of the model's codes or samples
    common.url_default("dirs", lambda v: str(v).lower() in ("1", "true", "on") or "dir0" in st.query_params)
    if not st.toggle("Find this model's meaningful directions", key="dirs",
                     help="Principal directions of its codes (or GANSpace's for a generator), and directions "
                          "towards each digit; found once per model and shared by every session."):
        st.query_params.pop("dirs", None)
        return
    st.query_params["dirs"] = "1"
    found = common.latent_directions(name)
    pcs = found["pcs"]
    st.caption(
        ("Principal directions of the codes of the test set (PCA on the encoder's means)" if caps.encode else
         "Principal directions found as GANSpace does (Härkönen et al. 2020): PCA on the first layer's activations "
         "of 2,000 samples, carried back to z by least squares")
        + "; and attribute vectors: the mean code of a digit minus the mean code of all the others"
        + (f" ({found['labels_from']})." if found["labels"] is not None else " (this model has no labels to take them "
                                                                                "from).")
        + " Each slider moves the codes by t along a unit direction: z + t·u.")
    for i, default in enumerate(("PC1", "PC2", "off")):
        common.url_default(f"dir{i}", lambda v, d=default: parse_choice(v, DIRS, d))
        common.url_default(f"t{i}", lambda v: parse_float(v, K["t0"].lo, K["t0"].hi, 0.0, 0.1))
    common.url_default("dseed", lambda v: parse_int(v, K["dseed"].lo, K["dseed"].hi, 0))
    left, right = st.columns([2, 3])
    chosen = []
    with left:
        st.number_input("Codes to move (seed)", K["dseed"].lo, K["dseed"].hi, step=1, key="dseed",
                        help="Eight codes from the prior for this seed; every slider moves all of them.")
        for i in range(3):
            a, b = st.columns([2, 3])
            a.selectbox(f"Direction {i + 1}", DIRS, key=f"dir{i}")
            b.slider(f"t{i + 1}", K["t0"].lo, K["t0"].hi, step=0.1, key=f"t{i}",
                     help="How far along the direction, in the latent's own units (the prior's spread is 1).")
            got = direction(st.session_state[f"dir{i}"], found) if st.session_state[f"dir{i}"] != "off" else None
            if st.session_state[f"dir{i}"] != "off" and got is None:
                st.caption(f"{st.session_state[f'dir{i}']} is not available for this model.")
            if got is not None:
                chosen.append((got, float(st.session_state[f"t{i}"])))
    common.url_write("dseed", *(f"dir{i}" for i in range(3)), *(f"t{i}" for i in range(3)))
    seed = int(st.session_state["dseed"])
    key = tuple((st.session_state[f"dir{i}"], float(st.session_state[f"t{i}"])) for i in range(3))

    def draw_moved():
        with torch.inference_mode():
            z = model.prior_sample(8, common.generator(seed))
            moved = z
            for (u, _, _), t in chosen:
                moved = directions.move(moved, u.to(z.device), t)
            out = [common.grid(model.decode(z), 8), common.grid(model.decode(moved), 8)]
            if chosen:
                (u, spread, _), _ = chosen[0]
                ts = torch.linspace(-2.5, 2.5, 9) * max(spread, 1e-3)
                out.append(common.grid(model.decode(directions.strip(z[:4], u.to(z.device), ts)), 9))
        return out

    pictures = common.memo(("explorer-directions", seed, key), draw_moved, model=name)
    with right:
        common.show_png(pictures[0], caption="the codes")
        common.show_png(pictures[1], caption="moved: " + (", ".join(f"{g[2]} by {t:+.1f}" for g, t in chosen)
                                                        or "no direction chosen"))
        if len(pictures) > 2:
            common.show_png(pictures[2], caption=f"four codes along {chosen[0][0][2]}, from −2.5 to +2.5 times the "
                                                 "codes' spread along it (the middle column is the code itself)")
    fig = viz.explained_variance_figure(pcs.explained.tolist(), pcs.source)
    common.chart(fig, name="explained variance", px=900)


samples_section()
scaling_section()
dims_section()
directions_section()
