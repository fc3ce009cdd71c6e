"""Home: what is loaded, on which device, a gallery of samples, and a line per page."""
import streamlit as st

import genlab
from genlab.models import describe_card
from views import common, registry

st.title("genlab")
st.markdown("Explore the latent spaces of deep generative models: sample them, scale and walk "
            "their latent Gaussian, interpolate, map the VAE manifold, watch them train, and "
            "compare them side by side.")
common.show_notice()

CARDS = [v for v in registry.VIEWS if v.blurb]  # a card per view with a one-line blurb in the registry
for start in range(0, len(CARDS), 4):  # rows of four, so no title is cut
    for col, v in zip(st.columns(4), CARDS[start:start + 4]):
        with col:
            st.page_link(v.file, label=v.title, icon=v.icon)
            st.caption(v.blurb)

def _report_calibration() -> dict | None:
    cal = common._report().get("calibration") or {}
    return cal if {"MNIST training set", "uniform noise"} <= cal.keys() else None


left, right = st.columns([2, 3])
with left:
    st.subheader("Loaded")
    name = st.session_state.get("model")
    if name:
        try:
            _, model, card = common.current_model()
            info = describe_card(card)
            latent = {"none": "", "binary": f"**{info['latent_dim']}** binary hidden units, "}.get(
                info["latent"], f"latent size **{info['latent_dim']}**, ")
            hist = card.get("history", {})
            st.markdown(
                f"**{name}**: {info['description']}  \n"
                f"{latent}{card.get('n_params', 0):,} parameters  \n"
                f"trained on **{card.get('dataset', {}).get('name', '?')}** for "
                f"{len(hist.get('epochs', []))} epochs ({hist.get('train_time_s', 0) / 60:.1f} min "
                f"on {card.get('train_config', {}).get('device', '?')})  \n"
                f"running on **{genlab.describe_device(common.device())}**")
            q = (common.known_result(name, card) or {}).get("quality")
            if q:
                cal = _report_calibration()
                ref = (f" (the training set scores {cal['MNIST training set']['fid']:.1f}, uniform noise "
                       f"{cal['uniform noise']['fid']:,.0f})") if cal else ""
                st.markdown(f"FID **{q['fid']:.1f}** on classifier features, lower is better{ref}; label entropy **{q['label_entropy']:.3f}** of 2.303 nats, "
                            f"precision {q['precision']:.2f}, recall {q['recall']:.2f}")
                st.page_link(registry.file("Compare"), label="Compare it with the others", icon=registry.view("Compare").icon)
            rows = common.metric_rows(card)
            if rows:
                st.dataframe(rows, hide_index=True)
                st.caption("Nats per image on the test set (binarized once, seed 0, for Bernoulli decoders); "
                           "lower is better.")
        except genlab.CheckpointError as e:
            st.error(str(e))
    else:
        st.info("No model loaded: train one on the Training page.")

with right:
    st.subheader("Gallery")
    st.caption("16 samples from each of the first six image models (seed 0); Compare shows any of them side by side.")
    models = common.list_models()
    cols = st.columns(2)
    shown = 0
    for m in models:
        if shown == 6:
            break
        try:
            mod, _ = common.load_model(m["name"])
        except genlab.CheckpointError:
            continue
        if not mod.capabilities.images:
            continue
        with cols[shown % 2]:
            shown += 1
            png = common.memo(("home-gallery", 16, 0), lambda: common.grid(common.cached_samples(m["name"], 16, 0), 8),
                              model=m["name"])
            common.show_png(png, caption=m["label"])
