"""Compare: 2 to 4 models side by side, driven by the same seed.

Sample grids, interpolation strips along the same path, the nearest training image of each
sample, the metrics table with its calibration rows, and the predicted-label histograms.
Everything is in the URL (?models=a,b&seed=..), so a link reproduces the view.
"""
import plotly.graph_objects as go
import streamlit as st
import torch

from genlab import latent
from genlab.pagestate import parse_choice, parse_int
from views import common, registry

st.title("Compare models")
st.caption("The same seed drives every model: models with the same latent size get the same z; "
           "others draw from the same noise stream. Metrics are measured on samples against the MNIST test set, "
           "with calibration rows that show what real data and pure noise score.")

models = common.list_models()
names = [m["name"] for m in models]
labels = {m["name"]: m["label"] for m in models}
info = {m["name"]: m for m in models}
if len(names) < 2:
    st.info("Comparing needs at least two checkpoints in the checkpoints folder; "
            "train another on the Training or GAN Live page.")
    st.stop()

K = registry.keys("Compare")  # the URL keys this view reads, with their ranges
SIZES = list(K["samples"].values)
NN_SPACES = list(K["nn"].options)
PATHS = list(K["path"].options)


def _parse_models(v) -> list[str]:
    wanted = [s for s in str(v or "").split(",") if s]
    picked = [s for s in wanted if s in names][:K["models"].hi]
    missing = [s for s in wanted if s not in names]
    if missing:
        st.session_state["_cmp_notice"] = f"Not here, left out: {', '.join(missing)}."
    if len(picked) >= 2:
        return picked
    preferred = [n for n in ("vae-mnist-z20", "gan-mlp-mnist", "dcgan-mnist") if n in names]
    return (preferred + [n for n in names if n not in preferred])[:max(2, min(3, len(preferred)))]


common.url_default("models", _parse_models)
common.url_default("seed", lambda v: parse_int(v, K["seed"].lo, K["seed"].hi, 0))
common.url_default("samples", lambda v: n if (n := parse_int(v, K["samples"].lo, K["samples"].hi, 36)) in SIZES else 36)
common.url_default("path", lambda v: parse_choice(v, PATHS, "slerp"))
common.url_default("nn", lambda v: parse_choice(v, NN_SPACES, "off"))
st.session_state["models"] = [m for m in st.session_state["models"] if m in names]
note = st.session_state.pop("_cmp_notice", None)
if note:
    st.warning(note)

st.multiselect(f"Models ({K['models'].lo} to {K['models'].hi})", names, key="models", max_selections=K["models"].hi, format_func=lambda n: labels.get(n, n))
picked = st.session_state["models"]
st.query_params["models"] = ",".join(picked)
if len(picked) < 2:
    st.info("Pick at least two models to compare.")
    st.stop()

loaded = {}
for name in picked:
    try:
        loaded[name] = common.load_model(name)
    except Exception as e:  # a checkpoint broken on disk: say so, compare the rest
        st.error(f"{name} cannot be loaded: {e}")
if len(loaded) < 2:
    st.stop()


def render(model, n: int, seed: int, path: str, nn_space: str, reference, label: str | None = None) -> dict:
    """One model's pictures for this state, drawn once per server (`common.memo`): the sample
    grid (or the 2-d points' figure, or the first 10 table rows), the interpolation strip and the
    nearest training images with their median distance. Shared between sessions: read-only."""
    caps = model.capabilities
    nrow = int(n ** 0.5)
    out = common.samples(model, n, seed, label)  # a Gaussian latent model decodes prior draws from this seed
    drawn = {}
    if not caps.images:
        if caps.data_kind == "points":
            fig = go.Figure(go.Scattergl(x=out[:, 0].tolist(), y=out[:, 1].tolist(), mode="markers",
                                         marker=dict(size=5)))
            fig.update_layout(height=300, margin=dict(l=0, r=0, t=10, b=0), yaxis_scaleanchor="x")
            drawn["points"] = fig
        else:
            rows = out[:10].cpu().numpy()
            rows.setflags(write=False)
            drawn["rows"] = rows
        return drawn
    drawn["grid"] = common.grid(out, nrow)
    if caps.gaussian_latent:  # the path: from the grid's first sample to the first sample of seed + 1
        with torch.inference_mode():
            za = model.prior_sample(1, common.generator(seed))[0]
            zb = model.prior_sample(1, common.generator(seed + 1))[0]
            strip_label = label if label not in (None, "any") else (  # "any": one label for the path, from the seed
                int(torch.randint(caps.num_classes, (1,), generator=torch.Generator().manual_seed(seed)))
                if caps.num_classes else None)
            drawn["strip"] = common.grid(model.decode(latent.interpolate(za, zb, 8, path),
                                                      **common.given_labels(model, strip_label, 8)), 8)
    if reference is not None and caps.mnist_images:
        idx, dist = common.nearest(reference, out, "pixel" if nn_space == "pixels" else "feature")
        drawn["nn"] = (common.grid(reference.train.x[idx], nrow), f"{dist.median():.2f}")
    return drawn


@st.fragment
def samples_section():
    """The controls that only change the pictures, and the pictures: a new seed, size, path or
    neighbour space reruns this part alone (the metrics below depend on the models only)."""
    c1, c2, c3, c4 = st.columns([1, 1, 1, 2])
    c1.number_input("Seed", K["seed"].lo, K["seed"].hi, step=1, key="seed", help="The same seed gives the same pictures.")
    c2.select_slider("Samples", SIZES, key="samples")
    c3.radio("Path", PATHS, key="path", horizontal=True,
             help="The interpolation strip goes from the grid's first code to the first code of seed s + 1.")
    c4.radio("Nearest training image", NN_SPACES, key="nn", horizontal=True,
             help="Beside each sample grid, the training image nearest to each sample: in pixel space, or in the "
                  "classifier's feature space. A sample that equals its neighbour was memorised.")
    common.url_write("seed", "samples", "path", "nn")
    seed, n, nn_space = int(st.session_state["seed"]), int(st.session_state["samples"]), st.session_state["nn"]
    conditional = [m for m, _ in loaded.values() if m.capabilities.num_classes]
    label = common.label_picker(conditional[0], "label", list(K["label"].options), "any",
                                "The class the conditional models are asked for (the others ignore it): any (each "
                                "sample's label drawn with its code) or one digit for every sample.") if conditional else None
    path = st.session_state["path"]

    reference = None
    if nn_space != "off" and any(m.capabilities.mnist_images for m, _ in loaded.values()):
        reference = common.reference()
        if reference is None:
            st.warning("Nearest neighbours need the MNIST classifier checkpoint (mnist-classifier), which is missing.")

    # Everything is computed first and drawn row by row (titles, grids, paths, neighbours), so
    # each row starts at the same height in every column however long a caption runs.
    by_latent: dict[int, str] = {}
    shown = []
    for name, (model, card) in loaded.items():
        caps = model.capabilities
        z_dim = caps.latent_dim if caps.gaussian_latent else None
        item = {"name": name, "caption": f"{info[name]['label'].split('(')[-1].rstrip(')')} · "
                                         f"{card.get('n_params', 0):,} parameters · " + common.training_summary(card)
                                         + (f" · same z as {by_latent[z_dim]}" if z_dim in by_latent else "")}
        if z_dim is not None:
            by_latent.setdefault(z_dim, name)
        # the neighbours' space is in the key only when they are drawn (the classifier is there)
        space = nn_space if reference is not None else "off"
        given = label if caps.num_classes else None
        key = ("compare", n, seed, path, space, given)
        item.update(common.memo(key, lambda model=model: render(model, n, seed, path, space, reference, given),
                                model=name))
        shown.append(item)

    def row():
        return zip(st.columns(len(shown)), shown)

    for col, it in row():
        col.subheader(it["name"])
        col.caption(it["caption"])
    for col, it in row():
        with col:
            if "points" in it:
                common.chart(it["points"], key=f"pts_{it['name']}", name=f"{it['name']}-samples",
                             px=max(300, 900 // len(shown)))
                st.caption("A 2-d model: its samples are points, so there are no images to strip or match.")
            elif "rows" in it:
                st.dataframe(it["rows"], width="stretch")
                st.caption("A model of table rows: its first 10 samples.")
            else:
                common.show_png(it["grid"], caption=f"{n} samples, seed {seed}",
                                name=f"{it['name']}-samples-seed{seed}")
    for col, it in row():
        if "strip" in it:
            with col:
                common.show_png(it["strip"], caption=f"{path}: seed {seed} → seed {seed + 1} "
                                                     f"(from the first sample above)",
                                name=f"{it['name']}-strip-seed{seed}")
    if any("nn" in it for it in shown):
        for col, it in row():
            if "nn" in it:
                picture, median = it["nn"]
                with col:
                    common.show_png(picture, caption=f"nearest training images ({nn_space}); median distance "
                                                     f"{median}" + (" (pixel L2)" if nn_space == "pixels" else ""),
                                    name=f"{it['name']}-nearest-{nn_space}")


samples_section()

st.divider()
st.subheader("Metrics")
rows, hists = common.quality_rows(list(loaded))
if rows:
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "FID": st.column_config.NumberColumn("FID ↓", format="%.2f",
                                             help="Fréchet distance of classifier features to the test set's"),
        "IS": st.column_config.NumberColumn("IS ↑", format="%.2f", help="Inception Score with the MNIST classifier (max 10)"),
        "label entropy": st.column_config.NumberColumn("label entropy ↑", format="%.3f",
                                                       help="Entropy of the predicted-digit histogram; 2.303 = all ten equally"),
        "precision": st.column_config.NumberColumn("precision ↑", format="%.3f",
                                                   help="Share of samples inside the test set's k-NN manifold: realism"),
        "recall": st.column_config.NumberColumn("recall ↑", format="%.3f",
                                                help="Share of test images inside the samples' k-NN manifold: variety"),
        "bits/dim": st.column_config.TextColumn("bits/dim ↓",
                                                help="Exact negative log-likelihood per pixel in bits (flows, 8-bit pixels)"),
        "test NLL (nats)": st.column_config.TextColumn(
            "test NLL (nats) ↓", help="The tightest likelihood estimate a model reports, per test image "
                                      "(IW: importance-weighted bound; GANs define none)"),
    })
    st.caption("Measured on 10,000 samples per model (seed 0) against the 10,000 MNIST test images; precision and "
               "recall with k = 3 nearest neighbours in feature space. The rows marked (calibration) score the "
               "training set (near the best possible) and uniform noise (near the worst) the same way. Test NLL: "
               "the tightest estimate each model reports (IW: importance-weighted, VAEs; AIS: annealed importance "
               "sampling, RBMs; EXACT: flows). VAEs and RBMs are scored on binarized digits, flows on 8-bit pixels, "
               "so a flow's NLL compares only with other flows (bits/dim); GANs define no likelihood.")
    missing = [m for m in loaded if m not in hists and loaded[m][0].capabilities.mnist_images]
    if missing and common.reference_available():
        if st.button(f"Measure {', '.join(missing)} (from 20 s to a few minutes each on a CPU: samplers run their chains)"):
            bar = st.progress(0.0)
            for i, m in enumerate(missing):
                bar.progress(i / len(missing), text=f"Sampling and scoring {m} ({i + 1} of {len(missing)})…")
                common.measure(m)
            bar.progress(1.0, text="Done")
            st.rerun()


def label_figure(hists: dict[str, list[float]]) -> go.Figure:
    """The predicted-label histograms, one bar group per model (the training set's in grey)."""
    fig = go.Figure()
    for name, frac in hists.items():
        real = name == "MNIST training set"
        fig.add_bar(x=list(range(10)), y=frac, name=name + (" (calibration)" if real else ""), opacity=0.8,
                    marker_color="#9e9e9e" if real else None)
    fig.add_hline(y=0.1, line_dash="dot")
    fig.update_layout(barmode="group", height=320, xaxis_title="predicted digit (dotted line: all ten equally often)",
                      yaxis_title="fraction of samples",
                      xaxis=dict(tickmode="linear"), margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=1.12))
    return fig


if hists:
    # keyed by the histograms themselves: a measurement made on this page (common.measure) changes them
    common.chart(common.memo(("compare-labels", repr(list(hists.items()))), lambda: label_figure(hists)),
                 key="label_hist", name="predicted-labels")
