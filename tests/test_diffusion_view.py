"""The Diffusion view under AppTest, on a small conditional diffusion model trained here for a few
seconds: the forward process at a time slider, the reverse process scrubbed step by step with
its GIF, samplers side by side, guidance towards a picked digit with the classifier's reading;
the family on the other views through the protocol (the Latent Explorer decodes its noise)."""
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, copy_checkpoint, tiny_diffusion

APP = str(ROOT / "app.py")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("checkpoints")
    tiny_diffusion(d)
    copy_checkpoint(ROOT / "checkpoints" / "vae-mnist-z2", d)
    return d


def app(ckpts, monkeypatch, page="views/diffusion.py", **params):
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(ckpts))
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params["model"] = "ddpm-test"
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def pictures(at):
    return [(i.proto.imgs[0].caption or "", i.proto.imgs[0].url) for i in at.get("image")]


def test_the_forward_process_moves_with_the_time_slider(ckpts, monkeypatch):
    at = app(ckpts, monkeypatch)
    first = pictures(at)[0]
    assert "at t = 0.50" in first[0] and "signal-to-noise" in first[0]
    at.slider(key="ft").set_value(0.9).run()
    assert not at.exception
    now = pictures(at)[0]
    assert "at t = 0.90" in now[0] and now[1] != first[1] and at.query_params["ft"] == "0.9"


def test_the_reverse_process_is_scrubbed_and_filmed(ckpts, monkeypatch):
    at = app(ckpts, monkeypatch, rsteps="10")
    step = at.slider(key="rstep_10")
    assert step.value == 10 and step.max == 10
    last = [p for p in pictures(at) if p[0].startswith("step 10 of 10")]
    step.set_value(3).run()
    assert not at.exception
    mid = [p for p in pictures(at) if p[0].startswith("step 3 of 10")]
    assert last and mid and mid[0][1] != last[0][1]
    assert any(b.proto.label == "GIF" for b in at.get("download_button"))


def test_samplers_side_by_side_and_guidance_with_the_classifiers_reading(ckpts, monkeypatch):
    at = app(ckpts, monkeypatch)
    caps = [c for c, _ in pictures(at)]
    for steps in (10, 20, 50):
        assert any(c.startswith(f"DDIM, {steps} steps:") and " s for 16 digits" in c for c in caps), steps
    guided = [c for c in caps if c.startswith("32 samples")]
    assert guided and "the classifier reads a 3 in" in guided[0]
    at.selectbox(key="glabel").set_value("7").run()
    assert not at.exception and any("reads a 7 in" in c for c, _ in pictures(at))
    at.toggle(key="ddpm_all").set_value(True).run()  # all 20 training steps of this small model
    assert any(c.startswith("DDPM, 20 steps:") for c, _ in pictures(at))


def test_the_latent_explorer_and_interpolation_work_on_its_noise(ckpts, monkeypatch):
    for page in ("views/latent_explorer.py", "views/interpolation.py"):
        at = app(ckpts, monkeypatch, page)
        assert not at.error and pictures(at), page


def test_the_sampler_steps_are_a_sidebar_control_every_latent_view_follows(ckpts, monkeypatch):
    at = app(ckpts, monkeypatch, "views/latent_explorer.py", dsteps="10")
    steps = at.select_slider(key="dsteps")
    assert steps.value == 10 and list(steps.options) == ["5", "10", "20", "50"]
    before = pictures(at)[0][1]
    steps.set_value(5).run()
    assert not at.exception and at.query_params["dsteps"] == "5"
    assert pictures(at)[0][1] != before  # the grid decoded with 5 steps
    plain = app(ckpts, monkeypatch, "views/latent_explorer.py")
    plain.sidebar.selectbox(key="model").set_value("vae-mnist-z2").run()
    assert not [s for s in plain.select_slider if s.key == "dsteps"]  # only a denoising model has steps


def test_a_model_that_does_not_denoise_is_switched(ckpts, monkeypatch):
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(ckpts))
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params["model"] = "vae-mnist-z2"
    at.run()
    at.switch_page("views/diffusion.py").run()
    assert not at.exception
    assert at.session_state["model"] == "ddpm-test"


def test_the_2d_comparison_trains_live_pauses_steps_and_stops(ckpts, monkeypatch):
    from conftest import wait_for
    at = app(ckpts, monkeypatch, lset="moons")
    assert at.selectbox(key="lset").value == "moons"
    at.button(key="dn_start").click().run()
    assert not at.exception
    job = at.session_state["dn_job"]
    assert wait_for(lambda: job.snapshot().extra.get("steps", 0) >= 20, 60)
    at.run()
    svgs = [i for i in at.get("image") if i.proto.imgs[0].url.startswith("data:image/svg")]
    assert sum("flow matching" in __import__("base64").b64decode(i.proto.imgs[0].url.split(",", 1)[1]).decode()
               for i in svgs) >= 1
    at.button(key="dn_pause").click().run()
    assert wait_for(lambda: job.snapshot().state == "paused", 10)
    before = job.snapshot().extra["steps"]
    at.button(key="dn_step").click().run()
    assert wait_for(lambda: job.snapshot().extra["steps"] == before + 1, 10)
    x = job.snapshot().extra
    assert x["panels"][0]["paths"].shape == (25, 64, 2) and x["panels"][1]["arrows"].shape == (225, 2)
    at.button(key="dn_stop").click().run()
    assert not at.exception and "dn_job" not in at.session_state and not job.alive


def test_the_command_line_trains_resumes_and_evaluates_a_diffusion_model(ckpts, tmp_path, capsys):
    import json
    from genlab.cli import main
    out = tmp_path / "d"
    assert main(["train", "ddpm", "--dataset", "digits8", "--channels", "8,8,8", "--time-dim", "16", "--epochs", "1",
                 "--sample-steps", "3", "--num-classes", "10", "--eval-k", "-1", "--out", str(out)]) == 0
    assert main(["train", "ddpm", "--resume", str(out), "--epochs", "1", "--eval-k", "-1"]) == 0
    card = json.loads((tmp_path / "d.json").read_text())
    assert len(card["history"]["epochs"]) == 2 and card["config"]["num_classes"] == 10
    capsys.readouterr()
    # the shipped-size path: likelihood by the ODE on a few test digits, FID against steps, agreement
    assert main(["eval", str(ckpts / "ddpm-test"), "--n", "64", "--limit", "8", "--write"]) == 0
    err = capsys.readouterr().err
    assert "NLL by the probability-flow ODE" in err and "bits per dimension" in err and "FID against DDIM steps" in err
    card = json.loads((ckpts / "ddpm-test.json").read_text())
    (ode,) = card["likelihoods"]
    assert ode["method"] == "ode" and ode["n"] == 8 and ode["bpd"] > 0 and ode["stderr"] > 0
    assert "Hutchinson" in ode["settings"]["divergence"] and ode["settings"]["dequantization"] == "uniform, 8-bit"
    assert [r["steps"] for r in card["sampler_fid"]] == [10, 20, 50]
