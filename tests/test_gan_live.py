"""GAN Live under AppTest: start, steps run, pause, single steps, new settings, stop, save;
and the engine's live trainer on its own."""
import time

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from conftest import ROOT, wait_for
from genlab import checkpoint_files
from genlab.data import toy2d
from genlab.jobs import JobManager
from genlab.live import live_target
from genlab.models import GAN, GANConfig
from genlab.models.gan import LiveGAN, generator_gradients, loss_curves

LiveSettings = LiveGAN.Settings



def toy_live(seed=0):
    torch.manual_seed(seed)
    m = GAN(GANConfig(arch="toy", latent_dim=2, data_shape=(2,)))
    return LiveGAN(m, toy2d("ring8", 4096, seed), LiveSettings(lr_g=1e-3, lr_d=1e-3, batch_size=128),
                   seed=seed, toy="ring8", film_every=20)


class TestLiveEngine:
    def test_single_steps_move_only_the_network_they_name(self):
        live = toy_live()
        d0 = [p.clone() for p in live.model.D.parameters()]
        g0 = [p.clone() for p in live.model.G.parameters()]
        live.step("d")
        assert not all(torch.equal(a, b) for a, b in zip(d0, live.model.D.parameters()))
        assert all(torch.equal(a, b) for a, b in zip(g0, live.model.G.parameters()))
        d1 = [p.clone() for p in live.model.D.parameters()]
        live.step("g")
        assert all(torch.equal(a, b) for a, b in zip(d1, live.model.D.parameters()))
        assert live.g_steps == 1

    def test_divergence_stops_with_the_last_good_weights(self):
        from genlab.train import Divergence
        live = toy_live()
        for _ in range(5):
            live.step("both")
        live.flush()
        good = {k: v.clone() for k, v in live.model.state_dict().items()}
        with torch.no_grad():
            for p in live.model.D.parameters():
                p.fill_(float("nan"))  # the discriminator blows up
        live.step("both")
        with pytest.raises(Divergence, match="last good weights restored"):
            live.flush()
        for k, v in live.model.state_dict().items():
            assert torch.equal(v, good[k]), k

    def test_settings_reach_the_optimizers(self):
        live = toy_live()
        live.apply(LiveSettings(lr_g=5e-4, lr_d=1e-4, d_steps=3, loss="minimax", batch_size=64))
        assert live.opt_g.param_groups[0]["lr"] == 5e-4 and live.opt_d.param_groups[0]["lr"] == 1e-4
        assert live.model.config.loss == "minimax" and live.model.config.d_steps == 3

    def test_job_runs_pauses_steps_and_stops(self):
        live = toy_live()
        job = JobManager().start(live_target(live, publish_every=0.1))
        assert wait_for(lambda: job.snapshot().extra.get("g_steps", 0) >= 40)
        job.pause()
        assert wait_for(lambda: live.g_steps == job.snapshot().extra.get("g_steps", -1) and
                        job.snapshot().state == "paused", 10)
        time.sleep(0.3)
        parked = live.g_steps
        job.send("step", action="both")
        assert job.wait_commands(5.0)
        assert job.snapshot().extra["g_steps"] == parked + 1
        job.send("step", action="d")  # a discriminator step does not advance the generator count
        time.sleep(0.5)
        assert job.snapshot().extra["g_steps"] == parked + 1
        job.stop()
        job.join(10)
        s = job.snapshot()
        assert s.state == "stopped" and len(s.extra["history"]["step"]) >= 40
        assert s.extra["toy_history"] and "modes" in s.extra["toy_history"][0]
        assert s.extra["field"]["prob"].shape == (40, 40)


@pytest.fixture
def app(ckpt_dir, monkeypatch):
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(ckpt_dir))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["plotly"] = "1"  # interactive charts once stopped (by default they are pictures)
    at.run()
    at.switch_page("views/gan_live.py").run()
    assert not at.exception
    return at


def test_live_page_start_pause_step_stop_save(app, ckpt_dir):
    at = app
    at.selectbox(key="g_ds").set_value("ring8").run()
    at.button(key="g_start").click().run()
    job = at.session_state["gan_job"]
    assert wait_for(lambda: job.snapshot().extra.get("g_steps", 0) > 20)
    at.run()
    first = job.snapshot().extra["g_steps"]
    assert any("generator step" in m.value for m in at.caption)  # the live view's counter
    svgs = [e for e in at.get("image") if "svg" in e.proto.imgs[0].url]
    # while training runs, the field and the four curve charts are light SVG pictures, no Plotly,
    # even with interactive charts on
    assert len(svgs) == 5 and not at.get("plotly_chart")
    at.button(key="g_pause").click().run()  # reruns just the controls fragment
    assert job.snapshot().state == "paused"
    at.run()  # AppTest does not replay a fragment-scoped rerun by itself
    assert any(b.key == "g_resume" for b in at.button)
    assert any(m.value.startswith("**paused** · generator step") for m in at.markdown)
    assert any(b.label == "Save as checkpoint" for b in at.button)  # paused: film and saving show
    time.sleep(0.3)
    parked = job.snapshot().extra["g_steps"]
    assert parked >= first
    at.button(key="g_step_both").click().run()  # reruns just the controls fragment
    assert wait_for(lambda: job.snapshot().extra["g_steps"] == parked + 1, 10)
    at.run()
    at.button(key="g_stop").click().run()
    assert job.snapshot().state == "stopped" and not at.exception
    charts = [c.key for c in at.get("plotly_chart")]
    assert len(charts) == 6 and "g_lossfig" in charts  # stopped: the field, the curves and the losses, interactive
    at.toggle(key="g_both_arrows").set_value(True).run()  # G's arrows under each loss, drawn side by side
    assert {"g_field_minimax", "g_field_nonsaturating"} <= {c.key for c in at.get("plotly_chart")}
    assert not at.exception
    at.text_input[0].set_value("toy-gan-test")
    next(b for b in at.button if b.label == "Save as checkpoint").click().run()
    assert (ckpt_dir / "toy-gan-test.json").exists()
    # the same card as the command line writes: same sections, history in the same shape
    import json
    from genlab.cli import main
    assert main(["train", "gan2d", "--epochs", "1", "--limit", "512", "--out", str(ckpt_dir / "toy-gan-cli")]) == 0
    view_card, cli_card = (json.loads((ckpt_dir / f"{n}.json").read_text()) for n in ("toy-gan-test", "toy-gan-cli"))
    assert sorted(view_card) == sorted(cli_card)
    assert sorted(view_card["history"]) == sorted(cli_card["history"]) == ["epochs", "steps", "toy", "train_time_s"]
    assert sorted(view_card["film"]) == sorted(cli_card["film"]) and view_card["dataset"]["name"] == "ring8"
    assert "kl" in view_card["metrics"] and "kl" in cli_card["metrics"]
    for n in ("toy-gan-test", "toy-gan-cli"):
        for f in checkpoint_files(ckpt_dir / n):
            f.unlink()
    at.button(key="g_reset").click().run()
    assert "gan_job" not in at.session_state and not at.exception


def test_long_histories_are_thinned_in_snapshots():
    live = toy_live()
    for _ in range(50):
        live.step("both")
    live.flush()
    snap = live.snapshot(max_points=20)
    assert len(live.history["step"]) == 50 and 20 <= len(snap["history"]["step"]) <= 25
    assert snap["history"]["step"][0] == 1 and snap["g_steps"] == 50


def test_pause_parks_within_a_step_and_the_snapshot_is_final():
    live = toy_live()
    job = JobManager(max_running=1).start(live_target(live, chunk=1000), label="t")  # a long chunk: pause must cut it
    try:
        assert wait_for(lambda: job.snapshot().extra.get("g_steps", 0) > 5)
        job.pause()
        assert job.wait_parked(5.0)
        shown = job.snapshot().extra["g_steps"]
        assert shown == live.g_steps  # what the page shows after a click is the final count
        time.sleep(0.3)
        assert live.g_steps == shown and job.snapshot().state == "paused"
        job.resume()
        assert wait_for(lambda: live.g_steps > shown)
    finally:
        job.stop()
        job.join(5)


def test_before_start_the_page_shows_real_data_and_the_untrained_generator(app):
    at = app
    caps = [e.proto.imgs[0].caption for e in at.get("image")]
    assert any("training images" in c for c in caps) and any("untrained generator" in c for c in caps)
    assert any("**Start** builds this GAN" in m.value for m in at.markdown)
    before = [e.proto.imgs[0].url for e in at.get("image")]
    at.number_input(key="g_seed").set_value(7).run()  # another seed: other weights, another untrained grid
    assert [e.proto.imgs[0].url for e in at.get("image")] != before
    at.selectbox(key="g_ds").set_value("spiral").run()  # 2-d data: points instead of grids
    assert "g_preview" in [c.key for c in at.get("plotly_chart")] and not at.exception


@pytest.mark.parametrize("preset,data", [("gan", "mnist"), ("gan2d", "spiral")])
def test_what_the_page_shows_before_start_is_what_start_begins_with(preset, data):
    """The preview (the page's call) against the film's first frame of a run started as the
    Start button starts it, with settings other than the preview's defaults."""
    from genlab import recipes
    real, shown = recipes.before_training(recipes.make_recipe(preset, data=data, seed=3))
    state = torch.random.get_rng_state()
    recipes.before_training(recipes.make_recipe(preset, data=data, seed=99))
    assert torch.equal(torch.random.get_rng_state(), state)  # nobody else's random numbers moved
    s = LiveSettings(lr_g=5e-4, lr_d=1e-4, d_steps=2, loss="minimax", batch_size=64)
    run = recipes.Run(recipes.make_recipe(preset, data=data, loss=s.loss, label_smoothing=0.1, label_noise=0.05,
                                          d_steps=s.d_steps, seed=3, lr=s.lr_g, batch_size=s.batch_size))
    live = LiveGAN(run.model, run.train_x, s, seed=3, toy=run.toy, film=run.film)
    first = live.film.frames[0]
    expected = (shown.clamp(0, 1) * 255).round().to(torch.uint8) if first.dtype == torch.uint8 else shown
    assert torch.equal(first, expected)
    assert len(real) == len(shown) and not torch.equal(real[:4].float(), shown[:4].float())


def test_the_paused_page_explains_the_non_saturating_loss(app):
    at = app
    at.button(key="g_start").click().run()  # the MNIST MLP GAN
    job = at.session_state["gan_job"]
    assert wait_for(lambda: job.snapshot().extra.get("g_steps", 0) > 5)
    at.button(key="g_pause").click().run()
    assert wait_for(lambda: job.snapshot().state == "paused", 10)
    time.sleep(1.2)  # the next snapshot carries the paused model's loss view
    at.run()
    assert any(h.value == "Why the non-saturating loss" for h in at.subheader)
    assert "g_lossfig" in [c.key for c in at.get("plotly_chart")]
    assert any("median ‖∂Loss/∂x‖" in c.value for c in at.caption)
    lv = job.snapshot().extra["losses"]
    assert lv["d"].shape == (64,) and np.all((lv["d"] > 0) & (lv["d"] < 1))
    job.stop()
    job.join(10)


def test_generator_loss_curves_match_their_closed_forms():
    """d/dD log(1 - D) = -1/(1 - D) and d/dD (-log D) = -1/D, computed here by hand."""
    c = loss_curves(n=9)
    d = c["d"].numpy()
    np.testing.assert_allclose(c["loss_minimax"].numpy(), np.log1p(-d), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(c["loss_nonsaturating"].numpy(), -np.log(d), rtol=1e-9)
    np.testing.assert_allclose(c["grad_minimax"].numpy(), -1 / (1 - d), rtol=1e-9)
    np.testing.assert_allclose(c["grad_nonsaturating"].numpy(), -1 / d, rtol=1e-9)


@pytest.mark.parametrize("arch", ["mlp", "toy"])
def test_the_gradient_reaching_each_sample_is_the_slope_times_dD(arch):
    """dLoss_i/dx_i = (-1/(1-D) or -1/D) * dD/dx_i, with dD/dx taken by central finite differences
    of the discriminator alone (no autograd), at a few samples."""
    torch.manual_seed(0)
    model = GAN(GANConfig(arch=arch, **({"data_shape": (2,), "latent_dim": 2} if arch == "toy" else {})))
    model.double().eval()  # D has dropout: the finite differences must see the same network each time
    z = torch.randn(3, model.latent_dim, dtype=torch.float64)
    g = generator_gradients(model, z)
    with torch.no_grad():
        x = model.generate(z)
        D = torch.sigmoid(model.discriminate(x))
        coords = range(x.shape[1]) if arch == "toy" else [0, 100, 350, 783]
        h = 1e-6
        for j in coords:
            e = torch.zeros_like(x)
            e[:, j] = h
            dD = (torch.sigmoid(model.discriminate(x + e)) - torch.sigmoid(model.discriminate(x - e))) / (2 * h)
            for kind, slope in (("minimax", -1 / (1 - D)), ("nonsaturating", -1 / D)):
                np.testing.assert_allclose(g[f"grad_x_{kind}"][:, j].double().numpy(), (slope * dD).numpy(),
                                           rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(g["d"].double().numpy(), D.numpy(), rtol=1e-6)
    np.testing.assert_allclose(g["dl_dd_minimax"].double().numpy(), (-1 / (1 - D)).numpy(), rtol=1e-5)
    np.testing.assert_allclose(g["dl_dd_nonsaturating"].double().numpy(), (-1 / D).numpy(), rtol=1e-5)
