"""Home: what is loaded, on which device, a gallery of samples, and a line per page."""
import streamlit as st
import torch

import genlab
from views import common

st.title("genlab")
st.markdown("Explore the latent spaces of deep generative models: sample them, scale and walk "
            "their latent Gaussian, interpolate, map the VAE manifold, and watch them train.")
common.show_notice()

name = st.session_state.get("model")
left, right = st.columns([2, 3])
with left:
    st.subheader("Loaded")
    if name:
        try:
            _, model, card = common.current_model()
            cfg = card["config"]
            kind = "plain autoencoder" if cfg.get("autoencoder") else f"{card['family'].upper()}, {cfg.get('likelihood', '')} decoder"
            m = card.get("metrics", {})
            st.markdown(
                f"**{name}** — {kind}  \n"
                f"latent size **{cfg['latent_dim']}**, hidden {tuple(cfg.get('hidden', ()))}, "
                f"{card.get('n_params', 0):,} parameters  \n"
                f"trained on **{card.get('dataset', {}).get('name', '?')}** for "
                f"{len(card.get('history', {}).get('epochs', []))} epochs "
                f"({card.get('history', {}).get('train_time_s', 0) / 60:.1f} min)  \n"
                f"device: **{genlab.describe_device(common.device())}**")
            rows = {k: v for k, v in m.items() if isinstance(v, (int, float)) and "stderr" not in k}
            if rows:
                st.caption("Test metrics (nats per image; lower is better):")
                st.dataframe([{"metric": k, "value": v} for k, v in rows.items()], hide_index=True)
        except genlab.CheckpointError as e:
            st.error(str(e))
    st.subheader("Pages")
    st.page_link("views/latent_explorer.py", label="Latent Explorer — samples, mean/std scaling of the latent Gaussian, one dimension at a time", icon=":material/tune:")
    st.page_link("views/interpolation.py", label="Interpolation — straight and spherical paths between codes or test images, as a GIF", icon=":material/linear_scale:")
    st.page_link("views/manifold.py", label="VAE Manifold — the decoded latent grid beside the encoded test set; autoencoder vs VAE", icon=":material/grid_on:")
    st.page_link("views/training.py", label="Training — ELBO, reconstruction and KL curves; train a new VAE in the background", icon=":material/monitoring:")

with right:
    st.subheader("Gallery")
    st.caption("16 samples from each model's prior, seed 0.")
    models = common.list_models()
    cols = st.columns(2)
    for i, m in enumerate(models[:6]):
        with cols[i % 2]:
            try:
                mod, _ = common.load_model(m["name"])
            except genlab.CheckpointError:
                continue
            with torch.inference_mode():
                imgs = mod.decode(mod.prior_sample(16, common.generator(0)))
            common.show_grid(imgs, nrow=8, upscale=2, caption=m["label"])
