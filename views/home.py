"""Home: what is loaded, on which device, a gallery of samples, and a line per page."""
import streamlit as st

import genlab
from genlab import upload
from genlab.models import describe_card, problems
from views import common, registry

st.title("genlab")
st.markdown("Explore the latent spaces of deep generative models: sample them, scale and walk "
            "their latent Gaussian, interpolate, map the VAE manifold, watch them train, and "
            "compare them side by side.")
common.show_notice()
if st.session_state.get("_brought"):
    st.success(st.session_state.pop("_brought"))
for source, why in problems():  # a plugin (or a family module) that did not load: which, and why
    st.warning(f"Not loaded: {source}. {why}")

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
            size = f"{card['n_params']:,} parameters" if card.get("n_params") else f"{card.get('weights_bytes', 0) / 2**20:.1f} MB of graphs"
            trained = (f"trained on **{card.get('dataset', {}).get('name', '?')}** for "
                       f"{len(hist.get('epochs', []))} epochs ({hist.get('train_time_s', 0) / 60:.1f} min "
                       f"on {card.get('train_config', {}).get('device', '?')})") if hist.get("epochs") else \
                f"not trained here (data: **{card.get('dataset', {}).get('name', 'not given')}**)"
            st.markdown(
                f"**{name}**: {info['description']}  \n"
                f"{latent}{size}  \n{trained}  \n"
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


# ----------------------------------------------------------------------------- a model of one's own
def _bring(files, name: str) -> None:
    try:
        path = upload.bring({f.name: f.getvalue() for f in files or []}, name.strip(), common.user_model_dir(),
                            taken=common.name_taken, device="cpu")
    except upload.UploadError as e:
        st.error(str(e))
        return
    st.session_state["_select_model"] = path.name  # picked in every view at once
    st.session_state["_brought"] = (f"{path.name} is in the model picker: open it in any view that fits it "
                                    f"(saved in {common.user_model_dir().name}/).")
    st.rerun()


with st.expander("Bring your own model", icon=":material/upload:"):
    st.markdown(
        "Drop a **genlab checkpoint** (`NAME.json` and its `.safetensors` weights, or the zip that "
        "every view's download gives), or an **ONNX model** from any framework: `decoder.onnx` "
        "(and `encoder.onnx`) with a card, `{\"format\": \"genlab-onnx\", \"latent_dim\": 16, "
        "\"data_shape\": [1, 28, 28], \"data_range\": [0, 1], \"decoder\": \"decoder.onnx\"}`. "
        "It is checked before anything is stored, and then appears in every picker. "
        "`python -m genlab export-onnx CKPT --out PATH` writes any genlab model with a decoder as ONNX.")
    with st.form("bring", clear_on_submit=False, border=False):
        files = st.file_uploader("Files", accept_multiple_files=True, type=[".json", ".safetensors", ".zip", ".onnx"],
                                 help=f"At most {upload.MAX_FILES} files, {upload.MAX_BYTES >> 20} MB in all.")
        name = st.text_input("Name", placeholder="my-vae", max_chars=64,
                             help="Letters, digits, '-' and '_'; a name no model has yet.")
        if st.form_submit_button("Add the model"):
            _bring(files, name)
