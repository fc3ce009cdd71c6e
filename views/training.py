"""Training: the loaded checkpoint's curves (per epoch, train and validation, and per step), KL per
latent dimension and its film; train a new model of any family that trains in the one loop, in a
background job, and save it."""
import dataclasses
import time
import typing

import streamlit as st

import genlab
from genlab import export, figsvg, recipes, viz
from genlab.jobs import JobRefused, run_target
from genlab.models import family, n_params, presets
from views import common, registry

st.title("Training")
common.show_notice()
name, model, card = common.current_model()
hist = card.get("history", {})
fam = family(card["family"])
curves = fam.curves(model.config)


def curve_figures(hist: dict, curves, title: str, names: dict):
    """The family's curves as figures: per epoch (train solid, validation dashed) or None, then
    (y title, figure) per step chart."""
    epochs = None
    if curves.epoch and hist.get("epochs"):
        epochs = viz.history_figure(hist, curves.epoch, title=title, names=names, unit=curves.epoch_unit,
                                    log_y=curves.log_y)
    steps = tuple((chart.ytitle, chart.plotly())
                  for chart in viz.step_charts(hist.get("steps", {}), curves.steps, log_y=curves.log_y))
    return epochs, steps


def draw_curves(hist: dict, curves, title: str, key: str, model: str | None = None, px: int = 900) -> None:
    """The family's curves: per epoch (train solid, validation dashed), then per step. With
    `model`, `hist` is that checkpoint's card's, and the figures are drawn once per server."""
    if model is None:
        epochs, steps = curve_figures(hist, curves, title, fam.names)
    else:
        epochs, steps = common.memo(("training-curves", key, title),
                                    lambda: curve_figures(hist, curves, title, fam.names), model=model)
    if epochs is not None:
        common.chart(epochs, key=f"{key}_epochs", name=f"{key}-per-epoch", px=px)
    for col, (ytitle, fig) in zip(st.columns(len(steps)) if steps else [], steps):
        common.chart(fig, key=f"{key}_steps_{ytitle}", name=f"{key}-per-step-{ytitle}", where=col,
                     px=max(300, px // len(steps)))


# ----------------------------------------------------------------------------- curves
st.subheader(f"How {name} trained")
if not hist.get("epochs") and not hist.get("steps"):
    st.info("This checkpoint's card has no training history.")
else:
    c1, c2 = st.columns([3, 2]) if curves.per_dim else (st.container(), None)
    with c1:
        draw_curves(hist, curves, "per epoch: train (solid) and validation (dashed)", "card", model=name,
                    px=540 if c2 is not None else 900)
        if curves.note:
            st.caption(curves.note)
    if c2 is not None:
        with c2:
            last = (hist.get("epochs") or [{}])[-1]
            per_dim = last.get("val", last.get("train", {})).get(curves.per_dim)
            if per_dim:
                common.chart(common.memo(("training-per-dim", curves.per_dim), lambda: viz.kl_per_dim_figure(per_dim),
                                         model=name), key="kl_per_dim", name=f"{name}-kl-per-dimension", px=360)
                active = common.memo(("training-active-units",),
                                     lambda: int((common.test_codes(name)[0].var(0) > 0.01).sum()), model=name)
                st.caption(f"KL per latent dimension after the last epoch (validation). Grey bars carry under "
                           f"0.01 nats: the decoder ignores them. **Active units: {active} of "
                           f"{model.capabilities.latent_dim}** (Burda et al.: the posterior mean varies across "
                           f"test images, Var > 0.01).")
    rows = common.metric_rows(card)
    if rows:
        st.caption("Test figures from the card (nats per image on the test set):")
        st.dataframe(rows, hide_index=True)
    where = registry.home_of(model.capabilities)
    if where not in ("Training", "Home"):
        st.caption(f"Explore {name} further on the {where} page.")

# ----------------------------------------------------------------------------- the film
def film_section(name: str, card: dict) -> None:
    """The checkpoint's film: the fixed draw at each recorded step beside a fresh one, with a slider."""
    f = common.film(name)
    if f is None:
        st.caption(f"{name} has no film: it was trained before genlab recorded one. Every model trained now (here, "
                   "on GAN Live, on Energy Models or with `python -m genlab train`) records a frame per epoch.")
        return
    frames, fresh, steps = f["frames"], f["fresh"], f["steps"]
    st.subheader(f"How {name}'s samples changed while it trained")
    same = ("the same noise decoded at every frame" if f["kind"] == "fixed noise" else
            "chains from the same start with the same random numbers at every frame")
    fresh_text = ("Right: fresh noise at every frame, to show the fixed batch is not a lucky one." if fresh is not None
                  else "This checkpoint was trained before fresh-noise frames were kept: fixed frames only.")
    st.caption(f"Left: {same}, so only the model changes between frames. {fresh_text} Frame 0 is before any training.")
    if len(frames) > 1:
        i = st.slider("Frame", 0, len(frames) - 1, len(frames) - 1, key=f"film_{name}",
                      help="One frame per epoch (GAN Live records one every 100 generator steps).")
    else:
        i = 0
    per_epoch = hist.get("epochs") and len(steps) == len(hist["epochs"]) + 1
    label = f"epoch {i}, step {steps[i]}" if per_epoch else f"step {steps[i]}"
    if frames.dim() == 3:  # 2-d points
        def points():
            sets = {f"{f['kind']}, {label}": frames[i].numpy()}
            if fresh is not None:
                sets[f"fresh noise, {label}"] = fresh[i].numpy()
            return viz.points_figure(sets)
        common.chart(common.memo(("training-film-points", i), points, model=name), key=f"film_pts_{name}",
                     name=f"{name}-film-{steps[i]}", px=600)
        return
    n = frames.shape[1]
    nrow = 8 if n >= 64 else max(1, int(n ** 0.5))
    fixed_png, fresh_png = common.memo(
        ("training-film", i), lambda: (common.grid(frames[i].float() / 255, nrow),
                                       None if fresh is None else common.grid(fresh[i].float() / 255, nrow)),
        model=name)
    c1, c2 = st.columns(2)
    common.show_png(fixed_png, caption=f"{f['kind']}, {label}", where=c1, name=f"{name}-film-{steps[i]}")
    if fresh_png is not None:
        common.show_png(fresh_png, caption=f"fresh noise, {label}", where=c2, name=f"{name}-fresh-{steps[i]}")
    if len(frames) > 1:
        stamp = card.get("weights_sha256", "")
        common.download("GIF of the fixed frames", lambda: film_gif(name, stamp, nrow), f"{name}-film.gif", "image/gif",
                        help="Every frame of the film, one after another")


@st.cache_data(show_spinner=False, max_entries=8)
def film_gif(name: str, stamp: str, nrow: int) -> bytes:
    """The film's fixed frames as a GIF (`stamp`: the weights' checksum, so a replaced checkpoint gets a new one)."""
    f = common.film(name)
    return viz.gif_bytes([viz.grid_array(x.float() / 255, nrow=nrow) for x in f["frames"]], duration_ms=200,
                         boomerang=False)


film_section(name, card)
if model.capabilities.generative:  # a helper model (the measuring-stick classifier) is not offered for download
    common.checkpoint_download(name)

# ----------------------------------------------------------------------------- train a new one
st.divider()
st.subheader("Train a new model")
job = st.session_state.get("job")
busy = job is not None and job.active
finished = job is not None and job.state in ("done", "stopped") and job.step > 0  # its save box comes before the form

IMAGE_SETS = {"mnist": "MNIST 28×28", "digits8": "8×8 digits (fast)"}
COMMON = ("latent_dim",)  # the config field shown beside the data and the epochs (as "Latent size"), not in Options


def fits(preset: str, data: str) -> bool:
    """Whether the preset's recipe takes this data set (a DCGAN wants 28x28 images)."""
    try:
        recipes.make_recipe(preset, data=data)
    except ValueError:
        return False
    return True


def trainable() -> dict[str, tuple[str, list[str]]]:
    """What the form offers: preset -> (its kind's label, the image data sets it trains on), for
    every family that trains in the one loop (no trainer of its own, as the classifier has)."""
    offered = {}
    for preset, (fam, _) in presets().items():
        sets = [d for d in IMAGE_SETS if family(fam).trainer is None and fits(preset, d)]
        if sets:
            offered[preset] = (family(fam).label(recipes.make_recipe(preset, data=sets[0]).config), sets)
    return offered


def like_loaded(offered: dict) -> int:
    """The form's first choice: the most specific preset that trains a model like the loaded one, else the first."""
    like = [p for p in offered if recipes.preset_mismatch(p, card["family"], model.config) is None]
    best = max(like, key=lambda p: len(presets()[p][1].fixed), default=None)
    return list(offered).index(best) if best else 0


def option_fields(preset: str) -> dict[str, tuple[dataclasses.Field, object]]:
    """The config fields the form offers under Options: name -> (field, type). Left out: fields a
    preset fixes (they tell the family's presets apart), those the recipe fills from the data
    (`cli=False`), the common ones, and types with no widget."""
    fam, _ = presets()[preset]
    cls = family(fam).config_cls
    fixed = {k for f, p in presets().values() if f == fam for k in p.fixed}
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)
            if f.name not in fixed and f.name not in COMMON and f.metadata.get("cli") is not False
            and widget_kind(f, hints[f.name])}


def widget_kind(f: dataclasses.Field, hint) -> str | None:
    if "choices" in f.metadata:
        return "choice"
    if hint in (bool, int, float, str):
        return hint.__name__
    if typing.get_origin(hint) is tuple and set(typing.get_args(hint)) <= {int, ...}:
        return "ints"
    return None


def option_widget(f: dataclasses.Field, hint, default, key: str, where):
    """One config field's widget, from its type and metadata; returns the value (ints as text)."""
    # the field's own label where its option() gives one, else its name as words ("init_sigma": "Init sigma")
    label, help = f.metadata.get("label") or f.name.replace("_", " ").capitalize(), f.metadata.get("help") or None
    kind = widget_kind(f, hint)
    if kind == "choice":
        options = list(f.metadata["choices"])
        return where.selectbox(label, options, index=options.index(default), key=key, help=help)
    if kind == "bool":
        return where.checkbox(label, bool(default), key=key, help=help)
    if kind == "int":
        return int(where.number_input(label, value=int(default), step=1, key=key, help=help))
    if kind == "float":
        return float(where.number_input(label, value=float(default), step=abs(default) / 10 or 0.01, format="%g",
                                        key=key, help=help))
    if kind == "ints":
        return where.text_input(label, ",".join(map(str, default)), key=key, help=f"{help or ''} (comma-separated)")
    return where.text_input(label, default, key=key, help=help)


def parse(kind: str | None, value):
    """A widget's value as the config field's: '500,250' -> (500, 250) (a ValueError when not integers)."""
    if kind != "ints":
        return value
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a list of whole numbers such as 500,250") from None


def train_form() -> None:
    """Pick a preset and its data, set the common options and the preset's own, and start a job.
    A fragment: a change redraws only the form (its options follow the chosen model and data)."""
    offered = trainable()
    c1, c2, c3, c4 = st.columns(4)
    preset = c1.selectbox("Model", list(offered), index=like_loaded(offered), key="t_family",
                          format_func=lambda p: offered[p][0])
    label, sets = offered[preset]
    dataset = c2.selectbox("Data", sets, key="t_data", format_func=IMAGE_SETS.get)
    recipe = recipes.make_recipe(preset, data=dataset)  # the preset's defaults on this data
    fields = {f.name for f in dataclasses.fields(recipe.config)}
    has_z = "latent_dim" in fields and "latent_dim" not in presets()[preset][1].fixed
    zdim = c3.number_input("Latent size", 1, 64, 2, key="t_z", disabled=not has_z,
                           help=None if has_z else f"{label} has no latent size to set")
    epochs = c4.number_input("Epochs", 1, 200, 5, key="t_epochs")
    c1, c2, c3, c4 = st.columns(4)
    limit = c1.number_input("Training images (0 = all)", 0, 55000, 0, 1000, key="t_limit")
    seed = c2.number_input("Seed", 0, 2**31 - 1, 0, key="t_seed")
    scope = f"{preset}_{dataset}"  # widgets whose defaults follow the preset and the data
    lr = c3.select_slider("Learning rate", sorted({1e-4, 3e-4, 1e-3, 3e-3, recipe.train.lr}), value=recipe.train.lr,
                          key=f"t_lr_{scope}")
    bs = c4.select_slider("Batch size", sorted({32, 64, 128, 256, 512, recipe.train.batch_size}),
                          value=recipe.train.batch_size, key=f"t_bs_{scope}")
    options = option_fields(preset)
    raw = {}
    if options:
        with st.expander("Options"):
            cols = st.columns(3)
            for i, (k, (f, hint)) in enumerate(options.items()):
                raw[k] = option_widget(f, hint, getattr(recipe.config, k), f"t_{scope}_{k}", cols[i % 3])
    if not st.button("Start training", type="primary", key="t_start"):
        return
    try:
        values = {k: parse(widget_kind(*options[k]), v) for k, v in raw.items()}
        changed = {k: v for k, v in values.items() if v != getattr(recipe.config, k)}  # the rest: the recipe's choice
        recipe = recipes.make_recipe(preset, data=dataset, limit=int(limit) or None, epochs=int(epochs),
                                     batch_size=int(bs), lr=float(lr), seed=int(seed),
                                     **({"latent_dim": int(zdim)} if has_z else {}), **changed)
        run = recipes.Run(recipe, common.device())
        z = f" z={zdim}" if has_z else ""
        job = common.job_manager().start(run_target(run), label=f"{label}{z} on {dataset}")
    except JobRefused as e:
        st.error(f"Training did not start: {e}")
        return
    except ValueError as e:
        st.error(f"These settings do not make a model: {e}")
        return
    st.session_state["job"] = job
    st.session_state["job_info"] = {
        "run": run, "suggest": f"{preset}-{dataset}{z.replace(' z=', '-z')}-s{seed}",
        "summary": f"{int(epochs)} epochs, {family(recipe.family).describe(recipe.config)}, "
                   f"{len(run.train_x):,} images, batch {bs}, lr {lr:g}, seed {seed}"}
    st.rerun()


if busy:
    st.info(f"Training {job.label} ({st.session_state['job_info']['summary']}). Pause or stop it below; "
            "the other pages keep working meanwhile.")
elif not finished:
    st.fragment(train_form)()


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
        run = info["run"]
        run_fam = family(run.recipe.family)
        run_curves = run_fam.curves(run.recipe.config)
        # a family that draws per-step curves only (a GAN): the epoch means of those steps' keys
        keys = run_curves.epoch or tuple(k for series in run_curves.steps for k, _, _ in series.lines)
        fig = viz.history_figure(s.history, keys, title="this run, per epoch", names=run_fam.names,
                                 unit=run_curves.epoch_unit if run_curves.epoch else "mean over the epoch",
                                 log_y=run_curves.log_y)
        if s.active and common.interactive_charts():  # redrawn every second: its CSV comes once the run has ended
            st.plotly_chart(fig, width="stretch", key="live_curves")
        elif s.active:
            st.image(figsvg.figure_svg(fig, 900), width="stretch")
        else:
            common.chart(fig, key="live_curves", name="this-run-per-epoch")
    film = info["run"].film
    if film is not None and film.frames and film.frames[-1].dim() == 4:  # the newest frame (one per epoch)
        k = len(film.frames) - 1
        c1, c2 = st.columns(2)
        common.show_grid(film.frames[k].float() / 255, nrow=8, width=300, where=c1, name=f"this-run-film-{k}",
                         caption=f"{film.kind} after epoch {k}" if k else f"{film.kind} before training")
        if len(film.fresh_frames) > k:
            common.show_grid(film.fresh_frames[k].float() / 255, nrow=8, width=300, where=c2,
                             name=f"this-run-fresh-{k}", caption="fresh noise, same moment")
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
                                 help="Letters, digits, '-' and '_'; saved in checkpoints/ as NAME.json and the weights it names.")
        overwrite = st.checkbox("Replace a checkpoint of the same name")
        save = st.form_submit_button("Save as checkpoint")
    run = info["run"]
    common.download("Download this run as a checkpoint (zip, unscored)",
                    lambda: export.run_zip(info["suggest"], lambda p: run.save(
                        p, job.result if job.result is not None else job.snapshot().history)),
                    f"{info['suggest']}.zip", "application/zip",
                    help="The weights and the card (curves and film) without the test-set scoring that saving adds.")
    if save:
        target = common.checkpoint_dir() / new_name
        bad = genlab.store.check_name(new_name)
        if bad:
            st.error(bad)
        elif target.with_name(new_name + ".json").exists() and not overwrite:
            st.error(f"A checkpoint named {new_name} exists. Tick “Replace” to overwrite it, or pick another name.")
        elif not target.with_name(new_name + ".json").exists() and common.name_taken(new_name):
            st.error(f"A model brought on Home is named {new_name}; pick another name.")
        else:
            run = info["run"]
            with st.spinner("Scoring on the test set…"):
                m, records = run.score(k=0)  # the bound only; `python -m genlab eval NAME --write` adds the IW estimate
            run.save(target, job.result if job.result is not None else job.snapshot().history, m, records)
            st.session_state["_select_model"] = new_name
            st.session_state["_notice"] = f"Saved {new_name} ({n_params(run.model):,} parameters) and selected it."
            st.rerun()
if finished:  # the next run's form, below the finished one's result and save box
    st.fragment(train_form)()
