"""Diffusion: the forward process (digits noised at a time t, with the signal-to-noise ratio),
the reverse process scrubbed step by step (x_t beside the model's estimate of the clean digit,
as a film and a GIF), samplers side by side on the same noise with their time, and guidance
towards a picked digit with the classifier's agreement."""
import math
import time

import plotly.graph_objects as go
import streamlit as st
import torch

from genlab import data as gdata
from genlab import figsvg, viz
from genlab.jobs import JobRefused
from genlab.live import live_target
from genlab.models import families, family
from genlab.pagestate import parse_choice, parse_float, parse_int
from views import common, registry

st.title("Diffusion")
st.caption("A diffusion model learns to undo noise. The forward process mixes a digit with Gaussian noise, "
           "x_t = α_t x_0 + σ_t ε, until at t = 1 nothing of the digit is left; the network learns to estimate the "
           "clean digit (or the noise) from x_t. Sampling runs the other way: from pure noise, step by step.")
common.show_notice()
name, model, card = common.current_model()
caps = model.capabilities
K = registry.keys("Diffusion")
test = common.test_set(card.get("dataset", {}).get("name", "mnist")) if caps.images else None
STEPS = [int(s) for s in K["rsteps"].options]


def to_data(x: torch.Tensor) -> torch.Tensor:
    """The model's space -> pictures in [0, 1] (x0 estimates can leave the data range)."""
    return model.to_data(x)


# ----------------------------------------------------------------------------- the forward process
@st.fragment
def forward_section():
    st.subheader("The forward process: noise added")
    if test is None:
        st.info(f"{name} models 2-d points; the forward process is drawn for images.")
        return
    common.url_default("ft", lambda v: parse_float(v, 0.0, 1.0, 0.5, 0.01))
    common.url_default("fidx", lambda v: parse_int(v, 0, len(test) - 8, 0))
    c1, c2 = st.columns([3, 1])
    c1.slider("Time t", 0.0, 1.0, step=0.01, key="ft", help="0: the digit itself; 1: pure noise.")
    c2.number_input("First test digit", 0, len(test) - 8, step=8, key="fidx")
    common.url_write("ft", "fidx")
    t, i = float(st.session_state["ft"]), int(st.session_state["fidx"])
    a, s, _, _ = (float(v) for v in model.path(t))
    snr = a * a / max(s * s, 1e-30)

    def draw():
        x0 = model.from_data(test.x[i:i + 8].to(common.device()))
        g = torch.Generator(device=x0.device).manual_seed(0)
        xt, _ = model.noise(x0, torch.full((8,), t, device=x0.device), g)
        ts = torch.linspace(0, 1, 11)
        one = x0[:1].repeat(11, *[1] * (x0.dim() - 1))
        strip, _ = model.noise(one, ts.to(x0.device), torch.Generator(device=x0.device).manual_seed(0))
        return common.grid(to_data(xt), 8), common.grid(to_data(strip), 11)

    row, strip = common.memo(("diffusion-forward", i, t), draw, model=name)
    common.show_png(row, caption=f"test digits {i}–{i + 7} at t = {t:.2f}: α_t = {a:.3f}, σ_t = {s:.3f}, "
                                 f"signal-to-noise α²/σ² = {snr:.3g} (log-SNR {math.log(max(snr, 1e-30)):.1f})")
    common.show_png(strip, caption="the first digit at t = 0, 0.1, …, 1 (the same noise throughout)")


# ----------------------------------------------------------------------------- the reverse process
def labels_and_guidance(prefix: str):
    """A conditional model's label ("none" = unconditional) and guidance scale for a section."""
    if not caps.num_classes:
        return None, 1.0
    c1, c2 = st.columns(2)
    options = ["none", *map(str, range(caps.num_classes))]
    common.url_default(f"{prefix}label", lambda v: parse_choice(v, options, "3"))
    common.url_default(f"{prefix}w", lambda v: parse_float(v, 0.0, 8.0, float(model.config.guidance), 0.5))
    c1.selectbox("Digit", options, key=f"{prefix}label", help="The label the model is asked for; none: the "
                                                              "unconditional model (the same network, no label).")
    c2.slider("Guidance scale w", 0.0, 8.0, step=0.5, key=f"{prefix}w",
              help="pred = pred_unconditional + w (pred_conditional − pred_unconditional): 1 is the plain "
                   "conditional model, larger pushes harder towards the label (clearer digits, less variety).")
    common.url_write(f"{prefix}label", f"{prefix}w")
    label = st.session_state[f"{prefix}label"]
    return (None if label == "none" else int(label)), float(st.session_state[f"{prefix}w"])


@st.fragment
def reverse_section():
    st.subheader("The reverse process, step by step")
    common.url_default("rseed", lambda v: parse_int(v, K["rseed"].lo, K["rseed"].hi, 0))
    common.url_default("rsteps", lambda v: parse_choice(v, list(K["rsteps"].options), str(model.config.sample_steps)
                                                        if str(model.config.sample_steps) in K["rsteps"].options
                                                        else "20"))
    common.url_default("reta", lambda v: parse_choice(v, list(K["reta"].options), "0"))
    c1, c2, c3 = st.columns(3)
    c1.number_input("Seed", K["rseed"].lo, K["rseed"].hi, step=1, key="rseed")
    c2.selectbox("Steps", list(K["rsteps"].options), key="rsteps")
    c3.radio("Sampler", list(K["reta"].options), key="reta", horizontal=True,
             format_func=lambda e: "DDIM (η = 0)" if e == "0" else "ancestral (η = 1)",
             help="DDIM with η = 0 is deterministic: the same noise always gives the same digit. η = 1 adds fresh "
                  "noise at every step (DDPM's ancestral sampler when run on all of training's steps).")
    label, w = labels_and_guidance("r")
    common.url_write("rseed", "rsteps", "reta")
    seed, steps, eta = int(st.session_state["rseed"]), int(st.session_state["rsteps"]), float(st.session_state["reta"])

    def run():
        n = 8
        z = model.prior_sample(n, common.generator(seed)).view(n, *caps.data_shape)
        given = None if label is None else torch.full((n,), label, dtype=torch.long, device=z.device)
        with torch.inference_mode():
            _, xs, x0s = model.ddim(z, steps, eta, given, w, common.generator(seed + 1), trajectory=True)
        xs, x0s = to_data(xs.flatten(0, 1)).view(len(xs), n, *caps.data_shape), to_data(x0s.flatten(0, 1)).view(
            len(x0s), n, *caps.data_shape)
        x0s = torch.cat([x0s, xs[-1:]])  # after the last step the estimate is the sample itself
        frames = [common.grid(torch.cat([xs[k], x0s[k]]), n) for k in range(len(xs))]
        gif = viz.gif_bytes([f.arr for f in frames], duration_ms=max(40, 2400 // len(frames)), boomerang=False)
        return frames, gif

    if caps.images:
        frames, gif = common.memo(("diffusion-reverse", seed, steps, eta, label, w), run, model=name)
        k = st.slider("Step", 0, steps, steps, key=f"rstep_{steps}",
                      help="Scrub the film: 0 is the noise the sampler starts from.")
        times = model.grid(steps)
        common.show_png(frames[k], caption=f"step {k} of {steps} (t = {times[k]:.2f}): top, x_t; bottom, the "
                                           "model's estimate of the clean digit at this step")
        common.download("GIF", gif, f"{name}-reverse-{steps}-steps.gif", "image/gif",
                        help="The whole film: every step, x_t above the estimate")
    else:
        st.info("The reverse process is drawn for images; for 2-d points see the samplers below.")


# ----------------------------------------------------------------------------- samplers side by side
@st.fragment
def samplers_section():
    st.subheader("Samplers side by side, on the same noise")
    common.url_default("sseed", lambda v: parse_int(v, K["sseed"].lo, K["sseed"].hi, 0))
    st.number_input("Seed", K["sseed"].lo, K["sseed"].hi, step=1, key="sseed")
    common.url_write("sseed")
    seed = int(st.session_state["sseed"])
    n = 16 if caps.images else 512
    runs = [("DDIM, 10 steps", 10, 0.0), ("DDIM, 20 steps", 20, 0.0), ("DDIM, 50 steps", 50, 0.0)]
    T = model.config.timesteps
    want_ddpm = st.toggle(f"Also run DDPM's ancestral sampler on all {T} steps", key="ddpm_all",
                          help="Computed once per server and seed; on a CPU it takes about a minute for this "
                               "U-Net.")
    if want_ddpm:
        runs.append((f"DDPM, {T} steps", T, 1.0))

    def one(steps: int, eta: float):
        z = model.prior_sample(n, common.generator(seed)).view(n, *caps.data_shape)
        labels = (torch.randint(caps.num_classes, (n,), generator=common.generator(seed), device=z.device)
                  if caps.num_classes else None)
        start = time.perf_counter()
        with torch.inference_mode():
            x = model.ddim(z, steps, eta, labels, None, common.generator(seed + 1))
        took = time.perf_counter() - start
        if caps.images:
            return common.grid(to_data(x), 4), took
        fig = go.Figure(go.Scattergl(x=x[:, 0].tolist(), y=x[:, 1].tolist(), mode="markers", marker=dict(size=3)))
        fig.update_layout(height=260, margin=dict(l=0, r=0, t=10, b=0), yaxis_scaleanchor="x")
        return fig, took

    cols = st.columns(len(runs))
    for col, (title, steps, eta) in zip(cols, runs):
        with col, st.spinner(f"{title}…"):
            got, took = common.memo(("diffusion-sampler", seed, steps, eta), lambda s=steps, e=eta: one(s, e),
                                    model=name)
        if caps.images:
            common.show_png(got, caption=f"{title}: {took:.2f} s for {n} digits (the first time, on this server)",
                            where=col)
        else:
            col.caption(f"{title}: {took:.2f} s for {n} points")
            common.chart(got, name=f"{name}-{steps}-steps", where=col, px=300)
    fid = card.get("sampler_fid")
    if isinstance(fid, list) and fid:
        st.dataframe(fid, hide_index=True)
        st.caption("FID against the number of steps, by `python -m genlab eval` on the measuring stick's features.")


# ----------------------------------------------------------------------------- guidance
@st.fragment
def guidance_section():
    st.subheader("Guidance: asking for a digit")
    if not caps.num_classes:
        st.info(f"{name} takes no label. A conditional diffusion model (trained with `--num-classes 10`) samples a "
                "picked digit, with a guidance scale.")
        return
    label, w = labels_and_guidance("g")
    if label is None:
        st.caption("No label: the unconditional model.")
    n = 32

    def draw():
        z = model.prior_sample(n, common.generator(0)).view(n, *caps.data_shape)
        given = None if label is None else torch.full((n,), label, dtype=torch.long, device=z.device)
        with torch.inference_mode():
            x = to_data(model.ddim(z, model.config.sample_steps, 0.0, given, w))
        agree = None
        ref = common.reference() if caps.mnist_images else None
        if ref is not None and label is not None:
            agree = float((ref.embed(x)[1].argmax(1).cpu() == label).float().mean())
        return common.grid(x, 8), agree

    picture, agree = common.memo(("diffusion-guided", label, w), draw, model=name)
    common.show_png(picture, caption=f"{n} samples, {model.config.sample_steps} DDIM steps, guidance {w:g}"
                    + (f": the classifier reads a {label} in {agree:.0%} of them" if agree is not None else ""))


# ----------------------------------------------------------------------------- 2-d, trained live
TRAINER = next((family(f).live for f in families() if family(f).live is not None
                and family(f).live.kind == "denoising"), None)
TOYS = list(K["lset"].options)


def live_controls():
    """Start (or Pause / Resume, Step, Stop) the live comparison; the job lives in this session."""
    job = st.session_state.get("dn_job")
    if job is None:
        common.url_default("lset", lambda v: parse_choice(v, TOYS, "moons"))
        c1, c2, c3 = st.columns([2, 1, 1])
        c1.selectbox("Data", TOYS, key="lset")
        c2.number_input("Seed", 0, 9999, 0, key="lseed", help="The two models' first weights and the batches.")
        common.url_write("lset")
        if c3.button("Start", type="primary", key="dn_start"):
            data = gdata.load_dataset(st.session_state["lset"], "train", common.device(), limit=8192).x
            live = TRAINER(TRAINER.models(int(st.session_state["lseed"])).to(common.device()), data,
                           TRAINER.Settings(), seed=int(st.session_state["lseed"]))
            try:
                st.session_state["dn_job"] = common.job_manager().start(
                    live_target(live, chunk=20), label=f"diffusion and flow matching on {st.session_state['lset']}")
            except JobRefused as e:
                st.error(f"Did not start: {e}")
                return
            st.rerun()
        return
    s = job.snapshot()
    c = st.columns(4)
    if s.state == "paused":
        c[0].button("Resume", key="dn_resume", on_click=job.resume)
    else:
        c[0].button("Pause", key="dn_pause", on_click=lambda: (job.pause(), job.wait_parked(1.0)),
                    disabled=s.state != "running")
    c[1].button("Step", key="dn_step", disabled=s.state != "paused",
                on_click=lambda: (job.send("step"), job.wait_commands(1.0)),
                help="One update of both models while paused.")
    if c[2].button("Stop", key="dn_stop"):
        job.stop()
        job.join(5)
        del st.session_state["dn_job"]
        st.rerun()
    live_view()


@st.fragment(run_every=1.0)
def live_view():
    job = st.session_state.get("dn_job")
    if job is None:
        return
    s = job.snapshot()
    x = s.extra or {}
    if "panels" not in x:
        st.caption("starting…")
        return
    rate = s.extra.get("steps", 0) / s.elapsed if s.elapsed > 0 else 0.0
    st.caption(f"{s.state} · step {x.get('steps', 0)} · {rate:.0f} steps/s (both models)")
    if s.state == "error":
        st.error(s.message)
    hist = x.get("history", {})
    for col, panel in zip(st.columns(len(x["panels"])), x["panels"]):
        value = hist[panel["loss"]][-1] if hist.get(panel["loss"]) else float("nan")
        with col:
            st.image(figsvg.figure_svg(viz.denoise_field_spec(panel, x["real"], f"{panel['title']}: loss {value:.3f}"),
                                       440), width="stretch")
    st.caption("Blue: where one sampling step moves a point at t = 0.5 (towards the data). Red: 64 particles carried "
               "from the same noise to the data by the probability-flow ODE (24 Heun steps), ending at the dots. Flow "
               "matching's paths straighten as it learns; the diffusion model's bend.")


def live_section():
    st.subheader("On 2-d points, trained live: diffusion and flow matching side by side")
    if TRAINER is None:
        st.info("No live trainer for denoising models is registered.")
        return
    st.caption("Two small networks, the same data and batches: one learns to denoise along the diffusion path, one "
               "learns the velocity of straight paths from noise to data (flow matching).")
    live_controls()


forward_section()
reverse_section()
samplers_section()
guidance_section()
live_section()
