"""Training: -ELBO, reconstruction and KL curves (train and validation) and KL per latent
dimension for the loaded checkpoint; train a new VAE in a background job and save it."""
import re
import time

import streamlit as st

import genlab
from genlab import data as gdata
from genlab import metrics, viz
from genlab.jobs import JobRefused, fit_target
from genlab.models import VAEConfig, build, n_params
from views import common

st.title("Training")
common.show_notice()
name, model, card = common.current_model(images=False)
hist = card.get("history", {})
is_ae = bool(card["config"].get("autoencoder"))

# ----------------------------------------------------------------------------- curves
st.subheader(f"How {name} trained")
if card["family"] == "gan":
    losses, outputs = viz.gan_figures(hist.get("steps", {}))
    c1, c2 = st.columns(2)
    c1.plotly_chart(losses, width="stretch")
    c2.plotly_chart(outputs, width="stretch")
    st.caption("A balanced game keeps mean D(x) and D(G(z)) apart but near 0.5; D(G(z)) at 0 means the "
               "discriminator wins outright and the generator's gradient fades. Watch a GAN train on the GAN Live page.")
elif not hist.get("epochs"):
    st.info("This checkpoint's card has no training history.")
else:
    keys = ("recon",) if is_ae else ("neg_elbo", "recon", "kl")
    c1, c2 = st.columns([3, 2])
    with c1:
        st.plotly_chart(viz.history_figure(hist, keys, title="per epoch: train (solid) and validation (dashed)"),
                        width="stretch")
        st.caption("-ELBO = reconstruction + KL, in nats per image; lower is better. "
                   "Reconstruction is −log p(x|z); KL is KL(q(z|x) ‖ p(z)).")
    with c2:
        last = hist["epochs"][-1]
        kl_dim = last.get("val", last.get("train", {})).get("kl_dim")
        if kl_dim:
            st.plotly_chart(viz.kl_per_dim_figure(kl_dim), width="stretch")
            codes, _ = common.test_codes(name)
            active = int((codes.var(0) > 0.01).sum())
            st.caption(f"KL per latent dimension after the last epoch (validation). Grey bars carry under "
                       f"0.01 nats: the decoder ignores them. **Active units: {active} of {model.latent_dim}** "
                       f"(Burda et al.: the posterior mean varies across test images, Var > 0.01).")
        else:
            st.caption("The autoencoder has no KL term: its codes are not pulled toward a prior.")
    st.plotly_chart(viz.steps_figure(hist, "loss"), width="stretch")
    rows = common.metric_rows(card.get("metrics", {}))
    if rows:
        st.caption("Test metrics from the card (nats per image on the binarized test set):")
        st.dataframe(rows, hide_index=True)

# ----------------------------------------------------------------------------- train a new one
st.divider()
st.subheader("Train a new model")
job = st.session_state.get("job")
busy = job is not None and job.active

start = False
if busy:
    st.info(f"Training {job.label} ({st.session_state['job_info']['summary']}). Pause or stop it below; "
            "the other pages keep working meanwhile.")
else:
    with st.form("train_form"):
        c1, c2, c3, c4 = st.columns(4)
        family = c1.selectbox("Model", ["VAE", "plain autoencoder"], key="t_family")
        dataset = c2.selectbox("Data", ["mnist", "digits8"], key="t_data",
                               format_func=lambda d: {"mnist": "MNIST 28×28", "digits8": "8×8 digits (fast)"}[d])
        zdim = c3.number_input("Latent size", 1, 64, 2, key="t_z")
        epochs = c4.number_input("Epochs", 1, 200, 5, key="t_epochs")
        c1, c2, c3, c4 = st.columns(4)
        beta = c1.number_input("β (weight of KL; VAE only)", 0.0, 20.0, 1.0, 0.1, key="t_beta")
        lik = c2.selectbox("Decoder", ["bernoulli", "gaussian"], key="t_lik")
        limit = c3.number_input("Training images (0 = all)", 0, 55000, 0, 1000, key="t_limit")
        seed = c4.number_input("Seed", 0, 2**31 - 1, 0, key="t_seed")
        c1, c2 = st.columns(2)
        lr = c1.select_slider("Learning rate", [1e-4, 3e-4, 1e-3, 3e-3], value=1e-3, key="t_lr")
        bs = c2.select_slider("Batch size", [32, 64, 128, 256, 512], value=128, key="t_bs")
        start = st.form_submit_button("Start training", type="primary")

if start:
    dev = common.device()
    train = gdata.load_images(dataset, "train", dev, limit=int(limit) or None)
    val = gdata.load_images(dataset, "val" if dataset == "mnist" else "test", dev)
    hidden = (500, 250) if dataset == "mnist" else (128, 64)
    cfg = VAEConfig(image_shape=tuple(train.x.shape[1:]), hidden=hidden, latent_dim=int(zdim), likelihood=lik,
                    beta=float(beta), autoencoder=(family != "VAE"))
    new = build("vae", cfg).to(dev)
    tcfg = genlab.TrainConfig(epochs=int(epochs), batch_size=int(bs), lr=float(lr), seed=int(seed),
                              binarize=(lik == "bernoulli"))
    try:
        job = common.job_manager().start(
            fit_target(new, train.x, tcfg, val_x=val.x, after=lambda mdl: mdl.fit_latent_prior(train.x)),
            label=f"{family} z={zdim} on {dataset}")
        st.session_state["job"] = job
        st.session_state["job_info"] = {"model": new, "tcfg": tcfg, "dataset": dataset, "n": len(train),
                                        "suggest": f"{'vae' if family == 'VAE' else 'ae'}-{dataset}-z{zdim}-s{seed}",
                                        "summary": f"{int(epochs)} epochs, β={beta:g}, {lik} decoder, "
                                                   f"{len(train):,} images, batch {bs}, lr {lr:g}, seed {seed}"}
        st.rerun()
    except JobRefused as e:
        st.error(f"Training did not start: {e}")


def live_view():
    job = st.session_state.get("job")
    if job is None:
        st.caption("Training runs in the background: every other page and control keeps working meanwhile.")
        return
    s = job.snapshot()
    info = st.session_state["job_info"]
    eta = time.strftime("%M:%S", time.gmtime(s.eta))
    loss = s.recent.get("loss")
    text = (f"{job.label}: {s.state} · epoch {s.epoch}/{s.epochs} · step {s.step}/{s.total_steps}"
            + (f" · loss {loss:.2f}" if loss is not None else "") + f" · {s.steps_per_s:.0f} steps/s · ETA {eta}")
    st.progress(s.fraction, text=text)
    b1, b2, _ = st.columns([1, 1, 4])
    if s.state == "running" and b1.button("Pause", key="job_pause"):
        job.pause()
        st.rerun(scope="fragment")
    if s.state == "paused" and b1.button("Resume", key="job_resume"):
        job.resume()
        st.rerun(scope="fragment")
    if s.active and b2.button("Stop", key="job_stop"):
        job.stop()
    if s.state == "error":
        st.error(s.message)
    elif s.state in ("stopped", "done"):
        st.success(f"Training {s.state} after {s.step} steps ({s.elapsed:.0f} s). " + (s.message if s.state == "stopped" else ""))
    if s.history.get("epochs"):
        keys = ("recon",) if info["model"].config.autoencoder else ("neg_elbo", "recon", "kl")
        st.plotly_chart(viz.history_figure(s.history, keys, title="this run, per epoch"), width="stretch",
                        key="live_curves")
    if st.session_state.get("job_was_active") and not s.active:
        st.session_state["job_was_active"] = False
        st.rerun()  # full rerun: unlock the form and show the save box
    st.session_state["job_was_active"] = s.active


st.fragment(run_every=1.0 if busy else None)(live_view)()

job = st.session_state.get("job")
if job is not None and job.state in ("done", "stopped") and job.step > 0:
    info = st.session_state["job_info"]
    with st.form("save_form"):
        new_name = st.text_input("Checkpoint name", info["suggest"],
                                 help="Letters, digits, '-' and '_'; saved as NAME.safetensors + NAME.json in checkpoints/.")
        overwrite = st.checkbox("Replace a checkpoint of the same name")
        save = st.form_submit_button("Save as checkpoint")
    if save:
        target = common.checkpoint_dir() / new_name
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", new_name or ""):
            st.error("Use 1–64 letters, digits, '-' or '_' (starting with a letter or digit).")
        elif target.with_name(new_name + ".json").exists() and not overwrite:
            st.error(f"A checkpoint named {new_name} exists. Tick “Replace” to overwrite it, or pick another name.")
        else:
            mdl = info["model"]
            with st.spinner("Scoring on the test set…"):
                test = gdata.load_images(info["dataset"], "test", common.device())
                x = metrics.binarized_test_set(test.x) if mdl.config.likelihood == "bernoulli" else test.x
                m = {f"test_{k}": round(v, 3) for k, v in metrics.elbo_metrics(mdl, x).items() if k != "loss"}
            hist = job.snapshot().history
            genlab.save(mdl, target, dataset={"name": info["dataset"], "split": "train", "n": info["n"],
                                              "binarized": info["tcfg"].binarize},
                        history=hist, metrics=m, train_config=vars(info["tcfg"]) | {"device": str(common.device())})
            st.session_state["_select_model"] = new_name
            st.session_state["_notice"] = f"Saved {new_name} ({n_params(mdl):,} parameters) and selected it."
            st.rerun()
