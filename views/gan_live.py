"""GAN Live: press Start and watch a GAN learn, on MNIST or on 2-d toy data. Pause, step the
discriminator or the generator by hand, change the settings, scrub the film of fixed-noise
samples, and save the model."""
import numpy as np
import streamlit as st

import genlab
from genlab import data as gdata
from genlab import export, recipes, viz
from genlab.jobs import JobRefused
from genlab.live import LiveRun, live_target
from genlab.models import family, presets
from views import common

st.title("GAN Live")
st.caption("The generator G turns noise into samples; the discriminator D scores how real they look. "
           "Each step trains D to tell real from generated, then G to fool D. The grid shows the same "
           "fixed noise at every step, so you watch one set of samples change.")
common.show_notice()

DATA_LABELS = {"mnist": "MNIST", "ring8": "2-d: ring of 8 Gaussians", "spiral": "2-d: spiral",
               "moons": "2-d: two moons", "checkerboard": "2-d: checkerboard"}


def choices() -> dict[str, tuple[str, str, str]]:
    """What the page offers, from every preset whose family's live trainer is adversarial:
    choice -> (preset, data set, label). A preset for 2-d toy data is offered on every toy set
    (named by the set); an image preset on its own data set, named by the data and the preset."""
    out = {}
    for preset, (fam, p) in presets().items():
        trainer = family(fam).live
        if trainer is None or trainer.kind != "adversarial":
            continue
        if p.data in gdata.TOY_SETS:
            out.update({t: (preset, t, DATA_LABELS.get(t, f"2-d: {t}")) for t in gdata.TOY_SETS})
        else:
            kind = family(fam).label(recipes.make_recipe(preset).config)  # "MLP GAN": the choice is "mnist-mlp"
            out[f"{p.data}-{kind.split()[0].lower()}"] = (preset, p.data,
                                                           f"{DATA_LABELS.get(p.data, p.data)}, {p.help or kind}")
    return out


CHOICES = choices()
LOSSES = {"nonsaturating": "non-saturating: −log D(G(z))", "minimax": "minimax: log(1 − D(G(z)))"}

live: LiveRun | None = st.session_state.get("gan_live")
job = st.session_state.get("gan_job")
active = job is not None and job.active


def settings_widgets(defaults, disabled: bool):
    """The adversarial trainer's settings (its `Settings`: learning rates, D steps, loss, batch size)."""
    c1, c2, c3, c4, c5 = st.columns(5)
    lr_g = c1.select_slider("G learning rate", [5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3], value=defaults.lr_g, disabled=disabled)
    lr_d = c2.select_slider("D learning rate", [5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3], value=defaults.lr_d, disabled=disabled)
    d_steps = c3.number_input("D steps per G step", 1, 10, defaults.d_steps, disabled=disabled)
    loss = c4.selectbox("Generator loss", list(LOSSES), index=list(LOSSES).index(defaults.loss),
                        format_func=LOSSES.get, disabled=disabled)
    bs = c5.select_slider("Batch size", [32, 64, 128, 256, 512], value=defaults.batch_size, disabled=disabled)
    return type(defaults)(lr_g=lr_g, lr_d=lr_d, d_steps=int(d_steps), loss=loss, batch_size=bs)


@st.cache_data(show_spinner=False, max_entries=32)
def preview(preset: str, data: str, seed: int):
    """What Start begins with (recipes.before_training): real training examples and the
    untrained generator's output on the film's fixed noise. Start's other settings (loss,
    learning rates, smoothing) change neither the weights nor the noise."""
    return recipes.before_training(recipes.make_recipe(preset, data=data, seed=seed), common.device())


# ----------------------------------------------------------------------------- start
if live is None:
    c1, c2, c3, c4 = st.columns(4)
    ds = c1.selectbox("Data and model", list(CHOICES), format_func=lambda c: CHOICES[c][2], key="g_ds")
    smoothing = c2.number_input("One-sided label smoothing", 0.0, 0.3, 0.0, 0.05, key="g_smooth",
                                help="Real targets become 1 − s: D is discouraged from being over-confident.")
    noise = c3.number_input("Label noise (flip probability)", 0.0, 0.3, 0.0, 0.05, key="g_noise",
                            help="Each of D's labels is flipped with this probability.")
    seed = c4.number_input("Seed", 0, 2**31 - 1, 0, key="g_seed")
    preset, data, label = CHOICES[ds]
    toy_data = data in gdata.TOY_SETS
    Live = family(presets()[preset][0]).live
    train = recipes.make_recipe(preset, data=data).train  # the recipe's rate and batch: the toy GAN's differ
    with st.container(key=f"g_settings_{'toy' if toy_data else 'img'}"):  # toy data gets its own defaults
        s = settings_widgets(Live.Settings(lr_g=train.lr, lr_d=train.lr, batch_size=train.batch_size), disabled=False)
    start = st.button("Start", type="primary", key="g_start")
    real, fake = preview(preset, data, int(seed))
    st.markdown("**Start** builds this GAN (its weights drawn from the seed), then trains D and G in turn on "
                "random batches of the real data, redrawing the samples of the same fixed noise every second. "
                "Before any training, this is what it has to work with:")
    if toy_data:
        common.chart(viz.points_figure({"real": real, "untrained G, fixed noise": fake}), key="g_preview",
                     name=f"gan-{ds}-before-start")
    else:
        c1, c2 = st.columns(2)
        common.show_grid(real, nrow=8, caption="64 training images (what D sees as real)", where=c1,
                         name=f"{ds}-real")
        common.show_grid(fake, nrow=8, caption="the untrained generator on the fixed noise: step 0 of the film",
                         where=c2, name=f"{ds}-untrained-seed{seed}")
    if start:
        try:
            recipe = recipes.make_recipe(preset, data=data, loss=s.loss, label_smoothing=smoothing, label_noise=noise,
                                         d_steps=s.d_steps, seed=int(seed), lr=s.lr_g, batch_size=s.batch_size)
            run = recipes.Run(recipe, common.device())
        except ValueError as e:
            st.error(f"These settings do not make a GAN: {e}")
            st.stop()
        live = Live(run.model, run.train_x, s, seed=int(seed), toy=run.toy, film_every=50 if run.toy else 100,
                    film=run.film)
        try:
            job = common.job_manager().start(live_target(live), label=f"GAN on {label}")
        except JobRefused as e:
            st.error(f"Did not start: {e}")
            st.stop()
        st.session_state.update(gan_live=live, gan_run=run, gan_job=job, gan_ds=ds)
        st.rerun()
    st.stop()

# ----------------------------------------------------------------------------- controls and live view
def chart(spec: viz.LineChart, key: str, live: bool, where=st, width: int = 300) -> None:
    """While a run is live (training or paused), the chart as a small SVG picture: cheap for
    the browser to redraw every second, so clicks are not kept waiting. Once stopped, interactive
    Plotly (hover, zoom), drawn once."""
    if live:
        where.image(spec.svg(width), width="stretch")  # width: about the column's, so text keeps its size
    else:
        common.chart(spec.plotly(), key=key, where=where, px=width)


def charts(history: dict, prefix: str, live: bool, width: int = 300) -> None:
    recipe = st.session_state["gan_run"].recipe
    losses, outputs = viz.step_charts(history, family(recipe.family).curves(recipe.config).steps,
                                      xtitle="generator step")
    c1, c2 = st.columns(2)
    chart(losses, f"{prefix}_losses", live, c1, width)
    chart(outputs, f"{prefix}_outputs", live, c2, width)


def _pause() -> None:
    job.pause()
    job.wait_parked(1.0)  # within one training step; the count drawn next is then the final one


def _step(which: str) -> None:
    job.send("step", action=which)
    job.wait_commands(1.0)  # the parked thread applies it at once


def controls():
    """The state and the buttons, in a fragment of their own: a click reruns only this small
    part (no pictures, no charts), so the page answers at once while training runs."""
    s = job.snapshot()  # after any callback: the state this click produced
    steps = s.extra.get("g_steps", 0)
    paused = s.state == "paused"
    st.markdown(f"**{s.state}**" + (f" · generator step **{steps}**" if s.state != "running" else ""))
    c = st.columns([1, 1, 1, 1, 1, 1, 3])
    # Pause, Resume and the steps act in on_click callbacks, which run before this fragment
    # does: one run then both acts and draws the new state (no second, fragment-scoped rerun).
    if paused:
        c[0].button("Resume", key="g_resume", on_click=job.resume)
    else:  # always a button in this slot, so nothing stale is left there after Stop
        c[0].button("Pause", key="g_pause", on_click=_pause, disabled=s.state != "running")
    for col, which, label in ((c[1], "d", "Step D"), (c[2], "g", "Step G"), (c[3], "both", "Step both")):
        col.button(label, key=f"g_step_{which}", disabled=not paused, on_click=_step, args=(which,),
                   help="One update while paused: D alone, G alone, or D then G.")
    if c[4].button("Stop", key="g_stop", disabled=not s.active):
        job.stop()
        job.join(5)
        st.session_state["gan_was_active"] = False  # this rerun already stops the timer; no second one
        st.rerun()  # the whole page: the film and the save box appear
    if c[5].button("Reset", key="g_reset", help="Stop and discard this run to start a new one."):
        job.stop()
        job.join(5)
        for k in ("gan_live", "gan_run", "gan_job", "gan_gif"):
            st.session_state.pop(k, None)
        st.rerun()


def live_view():
    """The fixed-noise grid (or the 2-d field), the curves and, when paused, the film: redrawn
    every second while training runs, by its own timer."""
    s = job.snapshot()
    x = s.extra
    steps = x.get("g_steps", 0)
    rate = steps / s.elapsed if s.elapsed > 0 else 0.0
    st.caption(f"{s.state} · generator step {steps} · {rate:.1f} steps/s")
    if not x or "history" not in x:
        st.caption("starting…")
        return
    if s.state == "error":
        st.error(s.message)
    live = s.active  # running or paused: SVG pictures; stopped: interactive Plotly
    if "field" in x:
        left, right = st.columns([3, 2])
        with left:
            title = "D(x) over the plane, and where G pushes its samples"
            if live:  # a picture while the run is live (cheap to redraw each second), Plotly once stopped
                st.image(viz.toy_field_svg(x["field"], title), width="stretch")
            else:
                common.chart(viz.toy_field_figure(x["field"], title), key="g_field", name="gan-field", px=540)
        with right:
            charts(x["history"], "g", live, width=230)  # narrower columns beside the field
            if x.get("toy_history"):
                modes, div = viz.toy_measure_charts(x["toy_history"])
                if modes is not None:
                    chart(modes, "g_modes", live, width=450)
                chart(div, "g_div", live, width=450)
    else:
        left, right = st.columns([2, 3])
        with left:
            common.show_grid(x["samples"], nrow=8, caption=f"64 samples from fixed noise, step {steps}")
        with right:
            charts(x["history"], "g", live)
    if s.state == "paused":
        with st.form("gan_settings"):
            st.caption("Change the game while paused; Resume continues with the new settings.")
            new = settings_widgets(st.session_state["gan_live"].Settings(**s.extra.get("settings", {})), disabled=False)
            if st.form_submit_button("Apply"):
                job.send("settings", **vars(new))
                st.toast("Settings applied")
    if s.state == "paused" or not s.active:
        if "losses" in x:
            loss_section(x)
        film_and_save()
    if st.session_state.get("gan_was_active") and not s.active:
        st.session_state["gan_was_active"] = False
        st.rerun()  # training ended on its own: stop the timer
    st.session_state["gan_was_active"] = s.active


def loss_section(x: dict) -> None:
    """Why the non-saturating loss: both generator losses for the current D, with this batch."""
    lv = x["losses"]
    current = x.get("settings", {}).get("loss") or (live.settings.loss if live else "nonsaturating")
    st.subheader("Why the non-saturating loss")
    d = lv["d"]
    ratio = float(np.median(lv["norm_nonsaturating"]) / max(float(np.median(lv["norm_minimax"])), 1e-30))
    why = ("Both generator losses for the discriminator as it is now, computed by autograd on the live model; "
           f"the markers are the 64 fixed-noise samples above (median D(G(z)) = {np.median(d):.3f}). Where D "
           "rejects the samples (D(G(z)) near 0), log(1 − D) is flat while −log D is steep, so the minimax loss "
           "sends G almost nothing. ")
    if ratio >= 1:
        why += (f"Here the gradient reaching the samples is **{ratio:,.1f}×** larger under the non-saturating "
                "loss (median ‖∂Loss/∂x‖). ")
    else:
        why += (f"Not yet here: D does not reject these samples, and the minimax gradient is {1 / ratio:,.1f}× the "
                "non-saturating one (median ‖∂Loss/∂x‖); give D a few steps (Step D) and look again. ")
    st.caption(why + f"This run trains with the **{LOSSES[current]}** loss (solid).")
    common.chart(viz.gan_loss_figure(lv, current), key="g_lossfig", name="generator-losses")
    if "field" in x and st.toggle("Show G's arrows under each loss", key="g_both_arrows",
                                  help="The same generated points and the same D; the arrows are drawn to one scale."):
        f = x["field"]
        ref = float(np.percentile(np.concatenate([np.linalg.norm(g, axis=1) for g in f["grads"].values()]), 90))
        cols = st.columns(2)
        for col, kind in zip(cols, ("minimax", "nonsaturating")):
            with col:
                common.chart(viz.toy_field_figure({**f, "grad": f["grads"][kind], "arrow_ref": ref},
                                                  LOSSES[kind]), key=f"g_field_{kind}", name=f"arrows-{kind}", px=450)


def save_unscored(run, path) -> None:
    """The run as a checkpoint without the test-set scoring (for the zip download of a stopped run,
    whose history the job flushed when it stopped)."""
    run.save(path, live.history_dict(), {}, [], live_settings=vars(live.settings), generator_steps=live.steps)


def film_and_save() -> None:
    """The film: fixed-noise grids with a fresh-noise grid beside each, a slider, its GIF, and
    saving or downloading the run (shown when paused or stopped)."""
    frames, fresh = live.film.tensor(), live.film.fresh_tensor()
    if len(frames) > 1 and live.toy is None:
        st.subheader("Film strip")
        i = st.slider("Film frame (its generator step is under the picture)", 0, len(frames) - 1, len(frames) - 1, key="g_frame",
                      format="%d", help="The same 64 noise vectors, decoded at each recorded step.")
        c1, c2 = st.columns(2)
        common.show_grid(frames[i].float() / 255, nrow=8, width=360, where=c1, name=f"gan-film-step{live.film.steps[i]}",
                         caption=f"fixed noise, step {live.film.steps[i]}")
        if len(fresh) == len(frames):
            common.show_grid(fresh[i].float() / 255, nrow=8, width=360, where=c2,
                             name=f"gan-fresh-step{live.film.steps[i]}",
                             caption=f"fresh noise, step {live.film.steps[i]} (new noise at every frame)")
        cached = st.session_state.get("gan_gif")
        if cached is None or cached[0] != len(frames):  # encode once per new frame, not per rerun
            cached = (len(frames), viz.gif_bytes([viz.grid_array(f.float() / 255, nrow=8) for f in frames],
                                                 duration_ms=150, boomerang=False))
            st.session_state["gan_gif"] = cached
        gif = cached[1]
        st.download_button("Download the film as an animated GIF", gif, file_name="gan-film.gif", mime="image/gif")
    run = st.session_state["gan_run"]
    zip_name = f"gan-{st.session_state.get('gan_ds', 'run')}-{live.g_steps}"
    if job.active:  # the download is built on another thread: only once nothing trains or steps the model
        st.caption("Stop the run to download it as a zipped checkpoint (or save it below).")
    else:
        common.download(f"Download this run as a checkpoint ({zip_name}.zip)",
                        lambda: export.run_zip(zip_name, lambda p: save_unscored(run, p)),
                        f"{zip_name}.zip", "application/zip",
                        help="The weights and the card (with the film), unscored; unzip into checkpoints/ to load it.")
    with st.form("gan_save"):
        name = st.text_input("Checkpoint name", f"gan-{st.session_state.get('gan_ds', 'run')}-{live.g_steps}")
        save = st.form_submit_button("Save as checkpoint")
    if save:
        bad = genlab.store.check_name(name)
        if bad:
            st.error(bad)
        elif common.name_taken(name):
            st.error(f"A checkpoint named {name} exists; pick another name.")
        else:
            live.flush()
            run = st.session_state["gan_run"]
            m, records = run.score(k=0)
            run.save(common.checkpoint_dir() / name, live.history_dict(), m, records,
                     live_settings=vars(live.settings), generator_steps=live.steps)
            st.session_state["_notice"] = f"Saved {name}."
            st.session_state["_select_model"] = name
            st.rerun()


with st.container(key="g_controls"):
    st.fragment(controls)()
st.fragment(run_every=1.0 if active else None)(live_view)()

