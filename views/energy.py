"""Energy Models: what a model defined by an energy shows. An RBM's filters, Gibbs chains played
frame by frame with their free energy, clamp-and-fill, reconstructions, the free energy of
test digits against noise and chain samples, and the likelihood that AIS estimates."""
import plotly.graph_objects as go
import streamlit as st
import torch

from genlab import data as gdata
from genlab import export, recipes, store, viz
from genlab.jobs import JobRefused
from genlab.live import live_target
from genlab.models import family, presets
from genlab.pagestate import parse_choice, parse_int
from views import common, registry

st.title("Energy Models")
st.caption("An energy model gives every image x an energy; low energy means likely: p(x) = exp(−F(x)) / Z. "
           "Z sums over every possible image, so it is never computed directly: samples come from a Markov "
           "chain, and the likelihood from an estimate of log Z (annealed importance sampling).")
common.show_notice()

# ----------------------------------------------------------------------------- train one live
LR = [1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2]
# the first preset whose family trains live as an energy model: (preset, its live trainer)
LIVE = next(((n, family(f).live) for n, (f, _) in presets().items()
             if family(f).live is not None and family(f).live.kind == "energy"), (None, None))


def settings_widgets(d):
    """The energy trainer's settings (its `Settings`: negative phase, k, learning rate, momentum)."""
    c1, c2, c3, c4 = st.columns(4)
    method = c1.radio("Negative phase", ["pcd", "cd"], index=["pcd", "cd"].index(d.method), horizontal=True,
                      format_func=lambda m: {"pcd": "PCD (persistent chains)", "cd": "CD (from the data)"}[m])
    k = c2.number_input("Gibbs steps k", 1, 25, d.k)
    lr = c3.select_slider("Learning rate", LR, value=d.lr if d.lr in LR else 1e-2)
    momentum = c4.select_slider("Momentum", [0.0, 0.5, 0.9], value=d.momentum if d.momentum in (0.0, 0.5, 0.9) else 0.5)
    return type(d)(lr=lr, method=method, k=int(k), momentum=momentum)


def live_start() -> None:
    with st.form("rbm_start"):
        c1, c2 = st.columns([1, 3])
        hidden = c1.select_slider("Hidden units", [16, 64, 100, 200, 500], value=100)
        seed = c1.number_input("Seed", 0, 2**31 - 1, 0)
        with c2:
            s = settings_widgets(LIVE[1].Settings())
        start = st.form_submit_button("Start", type="primary")
    if not start:
        return
    run = recipes.Run(recipes.make_recipe(LIVE[0], hidden=hidden, method=s.method, k=s.k, lr=s.lr, momentum=s.momentum,
                                          seed=int(seed), film=16), common.device())
    live = LIVE[1](run.model, run.train_x, s, seed=int(seed), film=run.film)  # 16 fixed chains per epoch
    try:
        job = common.job_manager().start(live_target(live), label=f"RBM, {hidden} hidden, live")
    except JobRefused as e:
        st.error(f"Did not start: {e}")
        return
    st.session_state.update(rbm_live=live, rbm_run=run, rbm_job=job)
    st.rerun()


def live_controls() -> None:
    job = st.session_state["rbm_job"]
    s = job.snapshot()
    st.markdown(f"**{s.state}**" + (f" · update {s.extra.get('steps', 0)}" if s.state != "running" else ""))
    c = st.columns([1, 1, 1, 5])
    if s.state == "paused":
        c[0].button("Resume", key="rbm_resume", on_click=job.resume)
    else:
        c[0].button("Pause", key="rbm_pause", disabled=s.state != "running",
                    on_click=lambda: (job.pause(), job.wait_parked(1.0)))
    if c[1].button("Stop", key="rbm_stop", disabled=not s.active):
        job.stop()
        job.join(5)
        st.rerun()
    if c[2].button("Reset", key="rbm_reset", help="Stop and discard this run to start a new one."):
        job.stop()
        job.join(5)
        for key in ("rbm_live", "rbm_run", "rbm_job"):
            st.session_state.pop(key, None)
        st.rerun()


def live_view() -> None:
    job, live = st.session_state["rbm_job"], st.session_state["rbm_live"]
    s = job.snapshot()
    x = s.extra
    steps = x.get("steps", 0)
    st.caption(f"{s.state} · update {steps} · {steps / s.elapsed if s.elapsed > 0 else 0:.0f} updates/s")
    if "history" not in x:
        st.caption("starting…")
        return
    if s.state == "error":
        st.error(s.message)
    a, b, c = st.columns([1, 1, 2])
    with a:
        common.show_grid(viz.stretch(x["filters"]), nrow=8, caption="the strongest 64 filters")
    with b:
        common.show_grid(x["samples"], nrow=8, caption="64 fantasy chains, one Gibbs sweep per picture")
    with c:
        recipe = st.session_state["rbm_run"].recipe
        series = family(recipe.family).curves(recipe.config).steps
        for chart in viz.step_charts(x["history"], series, xtitle="update"):
            if s.active:
                st.image(chart.svg(450), width="stretch")
            else:
                common.chart(chart.plotly(), key=f"rbm_live_{chart.ytitle}", name=f"rbm-live-{chart.ytitle}", px=450)
    if s.state == "paused":
        with st.form("rbm_settings"):
            st.caption("Change the training while paused; Resume continues with the new settings.")
            new = settings_widgets(live.Settings(**x.get("settings", {})))
            if st.form_submit_button("Apply"):
                job.send("settings", **vars(new))
                st.toast("Settings applied")
    if not s.active or s.state == "paused":
        film = st.session_state["rbm_run"].film
        if film is not None and film.frames:
            k = st.slider("Film frame (one per epoch of updates)", 0, len(film.frames) - 1, len(film.frames) - 1,
                          key="rbm_film_frame") if len(film.frames) > 1 else 0
            f1, f2 = st.columns(2)
            common.show_grid(film.frames[k].float() / 255, nrow=4, width=220, where=f1, name=f"rbm-live-film-{k}",
                             caption=f"16 fixed chains (same start, same noise) at update {film.steps[k]}")
            if len(film.fresh_frames) > k:
                common.show_grid(film.fresh_frames[k].float() / 255, nrow=4, width=220, where=f2,
                                 name=f"rbm-live-fresh-{k}", caption="16 chains from fresh noise, same update")
        zip_name, run = f"rbm-live-{live.steps}", st.session_state["rbm_run"]
        if s.active:  # the download is built on another thread: only once nothing trains the model
            st.caption("Stop the run to download it as a zipped checkpoint (or save it below).")
        else:
            common.download(f"Download this run as a checkpoint ({zip_name}.zip)",
                            lambda: export.run_zip(zip_name, lambda p: run.save(p, live.history_dict(), {}, [])),
                            f"{zip_name}.zip", "application/zip",
                            help="The weights, the card and the film; unzip into checkpoints/ to load it.")
        with st.form("rbm_save"):
            new_name = st.text_input("Checkpoint name", f"rbm-live-{live.steps}")
            save = st.form_submit_button("Save as checkpoint")
        if save:
            bad = store.check_name(new_name)
            if bad or common.name_taken(new_name):
                st.error(bad or f"A checkpoint named {new_name} exists; pick another name.")
            else:
                live.flush()
                st.session_state["rbm_run"].save(common.checkpoint_dir() / new_name, live.history_dict(), {}, [])
                st.session_state.update(_notice=f"Saved {new_name}; `python -m genlab eval {new_name} --write` "
                                                "adds its AIS likelihood.", _select_model=new_name)
                st.rerun()
    if st.session_state.get("rbm_was_active") and not s.active:
        st.session_state["rbm_was_active"] = False
        st.rerun()
    st.session_state["rbm_was_active"] = s.active


if LIVE[0] is not None:
    with st.expander("Train an RBM live", expanded="rbm_job" in st.session_state):
        st.caption("CD-k or PCD-k updates on random batches of binarized MNIST, on a background thread; the filters "
                   "and the fantasy chains are redrawn every second. Pause to change the negative phase, k or the step.")
        if "rbm_job" not in st.session_state:
            live_start()
        else:
            st.fragment(live_controls)()
            active = st.session_state["rbm_job"].active
            st.fragment(run_every=1.0 if active else None)(live_view)()

name, model, card = common.current_model()
caps = model.capabilities
test = common.test_set(card.get("dataset", {}).get("name", "mnist"))
shape = tuple(caps.data_shape)
GIBBS = caps.sampler == "gibbs"  # a Gibbs chain over binary units (its states are 0/1), or continuous pixels
STEP_NAME = caps.sampler.capitalize()  # "Gibbs" or "Langevin"
ENERGY = "free energy F(v)" if caps.latent != "none" else "energy E(x)"  # a latent summed out: a free energy


@st.cache_resource(show_spinner=False, max_entries=4)
def saved_state(name: str, sha: str, what: str):
    """A tensor the training run kept with the checkpoint (PCD's chains, the EBM's replay buffer)."""
    try:
        return store.load_extra(common.model_path(name), what).to(common.device())
    except store.CheckpointError:
        return None


def persistent_chains(name: str, sha: str):
    """The chains a training run kept with the checkpoint (a model's `training_state()["chains"]`), or None."""
    return saved_state(name, sha, "chains")


def binary(x: torch.Tensor, seed: int) -> torch.Tensor:
    return gdata.binarize(x, common.generator(seed))


def as_state(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Images as the chain's state: binarized for binary units, as they are for pixels."""
    return binary(x, seed) if GIBBS else x


# ----------------------------------------------------------------------------- likelihood and filters
left, right = st.columns([2, 3])
with left:
    st.subheader("Likelihood")
    rows = common.metric_rows(card)
    if not caps.likelihoods:
        st.info("This model reports no likelihood: its normaliser Z = Σ exp(−E(x)) over every image is unknown and "
                "not estimated here, so its samples are judged instead (FID and label entropy in the README's sample "
                "quality table). Energies still rank images against each other: see the histograms below.")
    elif rows:
        st.dataframe(rows, hide_index=True)
        rec = next((r for r in common.card_likelihoods(card) if r.method == "ais"), None)
        if rec:
            st.caption(f"Test log-likelihood −F(v) − log Z in nats per image on the binarized test set; log Z = "
                       f"{rec.settings.get('log_z', float('nan')):,.1f} by AIS with {rec.settings.get('chains')} "
                       f"chains × {rec.settings.get('betas'):,} inverse temperatures from a base-rate model "
                       "(Salakhutdinov & Murray, 2008). The best published 500-hidden RBMs reach about −86.")
    else:
        st.info("This checkpoint's card holds no likelihood estimate: `python -m genlab eval NAME --write` adds one.")
with right:
    if caps.filters:
        st.subheader("Filters")

        def draw_filters():
            w = model.filters().detach()
            strongest = w.flatten(1).norm(dim=1).argsort(descending=True)[:64]
            return common.grid(viz.stretch(w[strongest]), nrow=16)

        common.show_png(common.memo(("energy-filters",), draw_filters, model=name),
                        caption="the 64 hidden units with the largest weights, each as an image (white: positive)")

    def draw_buffer():
        """The replay buffer's first 64 chains as a grid, or None when the checkpoint kept none."""
        buffer = saved_state(name, card.get("weights_sha256", ""), "buffer")
        return None if buffer is None else common.grid(buffer[:64].float() / 255, nrow=16)

    buffer_png = common.memo(("energy-buffer",), draw_buffer, model=name)
    if buffer_png is not None:
        st.subheader("The replay buffer")
        common.show_png(buffer_png,
                        caption="64 of the chains the training run kept: each training update ran a few Langevin "
                                "steps on a batch of them (about 5 % restarted from noise) and put them back, so "
                                "they improve across updates")

# ----------------------------------------------------------------------------- chains
# continuous pixels may also start from a noisy or a half-masked digit; kept chains are continued where they are
STARTS = ["noise", "a test image"] + ([] if GIBBS else ["a noisy test image", "a half-masked test image"])
K = registry.keys("Energy Models")  # the URL keys this view reads, with their ranges
STEP_SIZES = list(registry.key("Energy Models", "eps").values)
NOISES = list(registry.key("Energy Models", "sigma").values)


def langevin_controls(trained: dict) -> dict:
    """Step size, noise and the textbook switch (Langevin models only), seeded from the URL; `trained`:
    the model's `chain_settings()`, what it was trained with, always among the choices."""
    eps_choices = [str(e) for e in sorted(set(STEP_SIZES) | {float(trained["step_size"])})]
    sigma_choices = [str(e) for e in sorted(set(NOISES) | {float(trained["noise"])})]
    common.url_default("eps", lambda v: parse_choice(v, eps_choices, str(float(trained["step_size"]))))
    common.url_default("sigma", lambda v: parse_choice(v, sigma_choices, str(float(trained["noise"]))))
    c1, c2, c3 = st.columns(3)
    c1.select_slider("Step size ε", eps_choices, key="eps",
                     help="x ← x − ε ∇E(x) + σ·noise; each pixel's gradient is clipped, so ε sets how far a pixel "
                          "can move in one step.")
    c2.select_slider("Noise σ", sigma_choices, key="sigma", disabled=st.session_state.get("textbook", False))
    c3.toggle("Textbook Langevin (σ = √(2ε))", key="textbook",
              help="The discretised Langevin diffusion: its chains sample exp(−E) as ε → 0. The model was trained "
                   "with a large step and tiny noise, a noisy gradient descent that does not sample exp(−E) exactly "
                   "but finds its low-energy images in few steps; with the textbook noise and this ε the chains "
                   "drown in noise.")
    common.url_write("eps", "sigma")
    st.caption("Textbook Langevin dynamics adds noise of size √(2ε) each step: that is what makes the chain a "
               "sampler of p(x) ∝ exp(−E(x)) (exactly as ε → 0). EBMs are trained in practice with a large step and "
               "a tiny noise (here ε = " + f"{trained['step_size']:g}, σ = {trained['noise']:g}" + ", each pixel's "
               "gradient clipped): closer to a noisy descent into low energy, fast, but not an exact sampler. Switch "
               "the textbook setting on to see the difference.")
    return {"step_size": float(st.session_state["eps"]), "noise": float(st.session_state["sigma"]),
            "textbook": bool(st.session_state.get("textbook", False))}


def chain_start(start: str, seed: int, chains) -> tuple[torch.Tensor, torch.Tensor | None]:
    """16 chain starts and, for inpainting, the mask of pixels held fixed (1 = given)."""
    dev = common.device()
    img = test.x[seed % len(test)].expand(16, *shape)
    g = common.generator(seed)
    if start == "noise":
        return (binary(torch.full((16, *shape), 0.5, device=dev), seed) if GIBBS
                else torch.rand(16, *shape, generator=g, device=dev)), None
    if start == "a test image":
        return as_state(img, seed), None
    if start == "a noisy test image":
        return (img + 0.3 * torch.randn(img.shape, generator=g, device=dev)).clamp(0, 1), None
    if start == "a half-masked test image":
        mask = torch.zeros(1, *shape, device=dev)
        mask[..., : shape[1] // 2, :] = 1  # the top half is given
        return img * mask + (1 - mask) * torch.rand(img.shape, generator=g, device=dev), mask
    return chains[:16].view(-1, *shape).to(dev), None


def chains_section():
    st.subheader(f"A {STEP_NAME} chain, frame by frame")
    chains = persistent_chains(name, card.get("weights_sha256", ""))
    starts = STARTS + (["persistent chains"] if chains is not None else [])
    common.url_default("start", lambda v: parse_choice(v, starts, "noise"))
    common.url_default("steps", lambda v: parse_int(v, K["steps"].lo, K["steps"].hi, 200))
    common.url_default("every", lambda v: parse_int(v, K["every"].lo, K["every"].hi, 10))
    c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
    c1.radio("Start from", starts, key="start", horizontal=True)
    c2.number_input(f"{STEP_NAME} steps", K["steps"].lo, K["steps"].hi, step=10, key="steps")
    c3.number_input("A frame every", K["every"].lo, K["every"].hi, step=1, key="every")
    c4.number_input("Seed", 0, 2**31 - 1, step=1, key="cseed")
    common.url_write("start", "steps", "every")
    settings = langevin_controls(model.chain_settings()) if caps.sampler == "langevin" else {}
    seed, steps, every = int(st.session_state.get("cseed", 0)), int(st.session_state["steps"]), int(st.session_state["every"])
    start = st.session_state["start"]
    key = (start, steps, every, seed, tuple(sorted(settings.items())))

    def run_chains():
        """16 chains from the start, a frame every `every` steps: (frames, energies, the GIF of the frames).
        Drawn with a progress bar and the chains as they run (Langevin) in the session that computes them."""
        v0, clamp = chain_start(start, seed, chains)
        bar = None if GIBBS else st.progress(0.0, text=f"running 16 {STEP_NAME} chains…")
        preview = None if GIBBS else st.empty()
        with torch.no_grad():  # not inference mode: Langevin steps take the energy's input gradient
            if GIBBS:
                frames, energies = model.chain(v0, steps, every, common.generator(seed))
            else:
                chunk = every * max(1, 50 // every)  # slices of whole frames, so the progress bar moves
                f_all, e_all, done, x = [], [], 0, v0
                g = common.generator(seed)  # one noise stream: the chain does not depend on the slicing
                while done < steps:
                    n = min(chunk, steps - done)
                    f, e = model.chain(x, n, every, g, clamp=clamp, **settings)
                    f_all.append(f if done == 0 else f[1:])  # a slice's first frame is the last one's end
                    e_all.append(e if done == 0 else e[1:])
                    x, done = f[-1], done + n
                    bar.progress(done / steps, text=f"running 16 {STEP_NAME} chains: step {done} of {steps}")
                    with preview.container():  # the chains as they run
                        kept = sum(len(f) for f in f_all) - 1  # frames after the start
                        common.show_grid(x, nrow=4, width=240, caption=f"step {kept * every} of {steps}")
                frames, energies = torch.cat(f_all), torch.cat(e_all)
                bar.empty()
                preview.empty()
        # kept as the 8-bit levels the grids show (grid_array rounds x·255 the same way): a quarter of the
        # memory, so a 2,000-step chain (25 MB) does not push the other sessions' renders out of the cache
        return (frames.clamp(0, 1) * 255).round().to(torch.uint8).cpu(), energies

    # computed once per server for these settings (every session shares it), not on every frame of the playback
    frames, energies = common.memo(("energy-chain", *key), run_chains, model=name)

    def gif() -> bytes:
        """The frames as an animated GIF, made when someone plays or downloads them (once per server)."""
        return common.memo(("energy-chain-gif", *key), lambda: viz.gif_bytes(
            [viz.grid_array(f.float() / 255, nrow=4, upscale=2) for f in frames], duration_ms=120, boomerang=False),
            model=name)

    n = len(frames)
    c1, c2 = st.columns([5, 1])
    i = c1.slider("Frame (its step is under the picture)", 0, n - 1, n - 1, key=f"frame_{n}")
    playing = c2.toggle("Play", key="chain_play", help="Play every frame in a loop, eight a second (the browser "
                                                        "animates them: nothing reruns on the server)")
    a, b = st.columns([2, 3])
    with a:
        if playing:
            st.image(gif(), caption=f"16 chains, {n} frames from step 0 to {(n - 1) * every}, a frame every {every} steps",
                     width="stretch")
        else:
            common.show_png(common.memo(("energy-chain-frame", *key, i), lambda: common.grid(frames[i].float() / 255, nrow=4),
                                        model=name),
                            caption=f"16 chains after {i * every} of {steps} steps")
        common.download("Download the chain as a GIF", gif, f"{name}-chain.gif", "image/gif")
    with b:
        fe = energies.mean(1).cpu().tolist()
        label = ENERGY
        fig = go.Figure(go.Scatter(x=[k * every for k in range(n)], y=fe, mode="lines", name=f"mean {label}"))
        fig.add_vline(x=i * every, line_dash="dot")
        fig.update_layout(height=300, xaxis_title=f"{STEP_NAME} step", yaxis_title=f"{label}, mean of 16 chains",
                          margin=dict(l=10, r=10, t=10, b=10))
        common.chart(fig, key="chain_energy", name=f"{name}-chain-energy", px=540)
        if GIBBS:
            st.caption("Frames show p(v | h), the chain's expected image. From noise the free energy falls as the "
                       "chain finds the digits; a persistent chain starts where training left it.")
        else:
            st.caption("Each step moves every pixel a little downhill in energy, plus noise. From noise the chains "
                       "settle into digits; from a noisy digit they denoise it; from a half-masked digit (the top "
                       "half held fixed) they fill in the bottom half: denoising and inpainting by sampling.")


st.fragment(chains_section)()

# ----------------------------------------------------------------------------- clamp and fill
MASKS = {"top half given": lambda m: m[..., : shape[1] // 2, :].fill_(1),
         "left half given": lambda m: m[..., :, : shape[2] // 2].fill_(1),
         "everything but the centre given": lambda m: (m.fill_(1), m[..., shape[1] // 4: 3 * shape[1] // 4,
                                                                    shape[2] // 4: 3 * shape[2] // 4].fill_(0))}


@st.fragment
def fill_section():
    st.subheader("Clamp and fill" + (", and reconstructions" if caps.reconstruct else ""))
    c1, c2 = st.columns(2)
    which = c1.selectbox("Mask", list(MASKS), key="mask")
    first = int(c2.number_input("First test image", 0, len(test) - 8, 0, key="fill_at"))

    def fill():
        """The fill grid (digits, what is given, the chain's fill) and the reconstructions' grid (or None)."""
        x = as_state(test.x[first:first + 8], 0)
        mask = torch.zeros(1, *shape, device=x.device)
        MASKS[which](mask)
        start = x * mask if GIBBS else x * mask + (1 - mask) * torch.rand(x.shape, generator=common.generator(2),
                                                                          device=x.device)
        with torch.no_grad():
            frames, _ = model.chain(start, 200, 200, common.generator(1), clamp=mask)
            recon = model.reconstruct(x) if caps.reconstruct else None
        shown = torch.cat([x, x * mask + 0.35 * (1 - mask), frames[-1]])
        return common.grid(shown, nrow=8), None if recon is None else common.grid(torch.cat([x, recon]), nrow=8)

    filled, recon = common.memo(("energy-fill", which, first), fill, model=name)
    common.show_png(filled, caption="rows: test digits; what the chain is given (grey: unknown); "
                                    f"the chain's fill after 200 {STEP_NAME} steps with the given pixels clamped")
    if recon is not None:
        common.show_png(recon, caption="the same digits and their reconstructions v → h → v")

fill_section()

# ----------------------------------------------------------------------------- free energies


@st.cache_data(show_spinner="Energies of test digits, things that are not digits, and samples (once per server)…",
               max_entries=4)
def _energies(name: str, sha: str) -> dict[str, list[float]]:
    mdl, _ = common.load_model(name)
    gibbs = mdl.capabilities.sampler == "gibbs"
    if gibbs:
        x = torch.bernoulli(common.test_set("mnist").x[:1000], generator=torch.Generator().manual_seed(0))
        sets = {"test digits": x,
                "noise (each pixel on with p = 0.5)": torch.bernoulli(torch.full_like(x, 0.5),
                                                                     generator=torch.Generator().manual_seed(1))}
        chains = persistent_chains(name, sha)
        if chains is not None:
            sets["persistent chains"] = chains.view(-1, *x.shape[1:]).cpu()
        else:
            with torch.inference_mode():
                sets["samples"] = torch.bernoulli(common.samples(mdl, 200, 0).cpu(),
                                                  generator=torch.Generator().manual_seed(2))
    else:
        sets = {k: v.cpu() for k, v in common.unusual_sets(500, _dataset(name)).items()}
        sets[f"samples ({mdl.capabilities.chain_length} steps from noise)"] = common.samples(mdl, 200, 0).cpu()
    with torch.no_grad():
        return {k: torch.cat([mdl.free_energy(v[i:i + 250].to(common.device())) for i in range(0, len(v), 250)]
                             ).cpu().tolist() for k, v in sets.items()}


def _dataset(name: str) -> str:
    return common.load_model(name)[1].get("dataset", {}).get("name", "mnist")


def histogram(values: dict[str, list[float]], xtitle: str):
    fig = go.Figure()
    for label, v in values.items():
        fig.add_histogram(x=v, name=label, opacity=0.6, nbinsx=60)
    fig.update_layout(barmode="overlay", height=340, xaxis_title=xtitle, yaxis_title="images",
                      margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=1.2))
    return fig


def energy_histogram():
    """The histogram of the model's energies of test digits and the rest, and their medians as text."""
    fe = _energies(name, sha)
    fig = histogram(fe, f"{ENERGY} (lower = more likely)")
    med = {k: sorted(v)[len(v) // 2] for k, v in fe.items()}
    return fig, "Medians: " + ", ".join(f"{k} {v:.2f}" for k, v in med.items())


sha = card.get("weights_sha256", "")
fe_fig, medians = common.memo(("energy-histogram", sha), energy_histogram, model=name)
if GIBBS:
    st.subheader("Free energy of test digits, noise and the model's own samples")
    common.chart(fe_fig, key="fe_hist", name="fe_hist")
    st.caption("The model's samples should sit where the test digits do; noise sits far to the right. Samples far to "
               "the left of the data mean the chains found modes the data do not have.")
else:
    st.subheader("Energy of test digits against things that are not digits")
    # models with an exact likelihood by the change of variables (invertible layers): normalizing flows
    flows = [m for m in common.list_models() if m.get("traceable") and "exact" in m.get("likelihoods", ())
             and m.get("images") and caps.mnist_images and m.get("mnist_images")]
    cols = st.columns(2) if flows else [st.container()]
    with cols[0]:
        common.chart(fe_fig, key="fe_hist", name="fe_hist", px=450 if flows else 900)
    st.caption(medians + ". An energy ranks images without a normaliser: lower than the test digits means the "
               "model prefers it.")
    if flows:
        flow = flows[0]["name"]
        flow_sha = common.load_model(flow)[1].get("weights_sha256", "")
        flow_fig, off = common.memo(("energy-flow-histogram", flow_sha), lambda: viz.bits_histogram(
            common.flow_surprise(flow, flow_sha), f"{flow}: bits per dimension (lower = more likely)", legend_y=1.2), model=flow)
        with cols[1]:
            common.chart(flow_fig, key="flow_hist", name="flow_hist", px=450)
            st.caption(f"The same images under the shipped flow {flow} (exact likelihood), for comparison. {off}")
