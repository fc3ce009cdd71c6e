"""Every view under AppTest: it renders (page content and the shared sidebar), a widget
change changes the picture, URLs are clamped, and the Training view trains and saves."""

import json
import math
from xml.etree import ElementTree

import pytest

from conftest import app_test, charts, copy_checkpoint, is_chart_picture, svg_of
from genlab import checkpoint_files
from views import registry

VIEWS = [v.file for v in registry.VIEWS if v.title not in ("Your Digit", "Lessons")]  # those two: their own tests


@pytest.fixture
def app(ckpt_dir, monkeypatch):
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(ckpt_dir))
    return app_test


def image_urls(at):
    """The pictures' URLs (samples, grids, strips), not the charts drawn as SVG."""
    return [e.proto.imgs[0].url for e in at.get("image") if not is_chart_picture(e)]


def slider(at, label):
    return next(s for s in at.slider if s.label.startswith(label))


@pytest.mark.parametrize("page", VIEWS)
def test_every_view_renders_with_the_shared_sidebar(app, page):
    at = app(page)
    assert at.title and at.title[0].value  # the view's own content ran...
    assert at.sidebar.selectbox[0].label == "Model"  # ...and so did app.py's sidebar
    assert not at.error


def test_home_shows_the_loaded_model_and_a_gallery(app):
    at = app()
    assert at.title[0].value == "genlab"
    assert "vae-mnist-z20" in " ".join(m.value for m in at.markdown)
    assert len(image_urls(at)) == 6  # three VAE/AE checkpoints, the GAN, the flow and the RBM


def test_home_shows_the_reported_quality_of_the_loaded_model_only_for_its_weights(app, ckpt_dir, monkeypatch, tmp_path):
    import json
    from views import common
    sha = json.loads((ckpt_dir / "gan-mlp-mnist.json").read_text())["weights_sha256"]
    q = {"fid": 12.34, "label_entropy": 2.25, "precision": 0.7, "recall": 0.6}
    cal = {"MNIST training set": {"fid": 1.5}, "uniform noise": {"fid": 9999.0}}
    report = tmp_path / "eval.json"
    monkeypatch.setattr(common, "REPORT", report)
    report.write_text(json.dumps({"calibration": cal, "models": {"gan-mlp-mnist": {"weights_sha256": sha, "quality": q}}}))
    text = " ".join(m.value for m in app(model="gan-mlp-mnist").markdown)
    assert "FID **12.3**" in text and "uniform noise 9,999" in text and "**2.250** of 2.303" in text
    report.write_text(json.dumps({"calibration": cal, "models": {"gan-mlp-mnist": {"weights_sha256": "other", "quality": q}}}))
    assert "FID" not in " ".join(m.value for m in app(model="gan-mlp-mnist").markdown)  # other weights: not shown


def test_latent_explorer_sliders_change_the_pictures(app):
    at = app("views/latent_explorer.py")
    before = image_urls(at)
    slider(at, "Scale of the means").set_value(2.0).run()
    after = image_urls(at)
    assert after[2] != before[2] and after[:2] == before[:2]  # only the scaling grid changed
    at.number_input(key="seed").set_value(5).run()
    assert image_urls(at)[0] != after[0]
    slider(at, "z[0]").set_value(-2.5).run()
    assert image_urls(at)[3] != after[3]
    assert at.query_params["sm"] == "2.0" and at.query_params["seed"] == "5"
    assert not at.exception


def test_same_url_same_pictures(app):
    a = app("views/latent_explorer.py", seed="11", sm="1.3")
    b = app("views/latent_explorer.py", seed="11", sm="1.3")
    assert image_urls(a) == image_urls(b)


def test_out_of_range_url_values_are_clamped(app):
    at = app("views/latent_explorer.py", sm="99", ss="-4", n="1000", seed="abc", model="no-such-model")
    assert slider(at, "Scale of the means").value == 3.0
    assert slider(at, "Scale of the standard deviations").value == 0.0
    assert slider(at, "Grid side").value == 16
    assert at.number_input(key="seed").value == 0
    at2 = app(model="no-such-model")
    assert any("not here" in w.value for w in at2.warning)
    assert at2.sidebar.selectbox[0].value == "vae-mnist-z20"


def test_interpolation_controls(app):
    at = app("views/interpolation.py")
    before = image_urls(at)
    assert len(before) == 2  # lerp and slerp strips
    slider(at, "Steps").set_value(5).run()
    assert image_urls(at) != before
    at.radio(key="method").set_value("lerp").run()
    assert len(image_urls(at)) == 1
    at.radio(key="a_src").set_value("seed").run()
    assert not at.exception
    assert at.get("download_button")


def test_manifold_2d_and_larger_latents(app):
    at = app("views/manifold.py", model="vae-mnist-z2")
    before = image_urls(at)
    slider(at, "Resolution").set_value(10).run()
    assert image_urls(at)[0] != before[0]
    assert len(charts(at)) == 3  # the scatter, and the AE and VAE scatters
    at = app("views/manifold.py", model="vae-mnist-z20")
    grid = image_urls(at)[0]
    at.radio(key="plane").set_value("two dimensions").run()
    assert image_urls(at)[0] != grid and not at.exception


def test_training_view_trains_in_the_background_and_saves(app, ckpt_dir):
    at = app("views/training.py", model="vae-mnist-z2")
    assert len(charts(at)) >= 2  # curves and KL per dimension from the card
    at.selectbox[1].set_value("digits8")  # Data
    at.number_input[1].set_value(2)  # Epochs
    at.button[0].click().run()  # Start training (the form's submit button)
    assert "job" in at.session_state
    job = at.session_state["job"]
    job.join(60)
    at.run()
    assert job.snapshot().state == "done"
    assert any("done" in s.value for s in at.success)
    at.text_input[0].set_value("my-digits-vae")
    next(b for b in at.button if b.label == "Save as checkpoint").click().run()
    assert (ckpt_dir / "my-digits-vae.json").exists()
    assert at.sidebar.selectbox[0].value == "my-digits-vae"
    # the command line writes the same card (same sections, same history and data set shape)
    import json
    from genlab.cli import main
    assert main(["train", "vae", "--dataset", "digits8", "--latent", "2", "--epochs", "1", "--eval-k", "0",
                 "--out", str(ckpt_dir / "cli-digits-vae")]) == 0
    view_card, cli_card = (json.loads((ckpt_dir / f"{n}.json").read_text()) for n in ("my-digits-vae", "cli-digits-vae"))
    assert sorted(view_card) == sorted(cli_card)
    for section in ("history", "dataset", "train_config", "film"):
        assert sorted(view_card[section]) == sorted(cli_card[section]), section
    assert [r["method"] for r in view_card["likelihoods"]] == [r["method"] for r in cli_card["likelihoods"]] == ["elbo"]
    for n in ("my-digits-vae", "cli-digits-vae"):
        for f in checkpoint_files(ckpt_dir / n):
            f.unlink()


def test_bad_checkpoint_name_is_refused(app):
    at = app("views/training.py")
    at.selectbox[1].set_value("digits8")
    at.number_input[1].set_value(1)
    at.button[0].click().run()
    at.session_state["job"].join(60)
    at.run()
    at.text_input[0].set_value("../escape")
    next(b for b in at.button if b.label == "Save as checkpoint").click().run()
    assert any("letters, digits" in e.value for e in at.error)


def test_gan_checkpoints_work_on_the_latent_views(app):
    at = app("views/latent_explorer.py", model="gan-mlp-mnist")
    before = image_urls(at)
    # no "draw from p(x|z)" grid (a GAN has no likelihood): samples, scaling, one code, its strip (the
    # directions are off until asked for)
    assert len(before) == 4 and not at.error
    slider(at, "Scale of the standard deviations").set_value(2.0).run()
    assert image_urls(at)[1] != before[1]
    slider(at, "z[3]").set_value(1.5).run()
    assert image_urls(at)[2] != before[2]
    at = app("views/interpolation.py", model="gan-mlp-mnist")
    assert at.radio(key="a_src").options == ["seed"]  # a GAN has no encoder
    at.radio(key="method").set_value("slerp").run()
    assert len(image_urls(at)) == 1 and not at.exception
    at = app("views/manifold.py", model="gan-mlp-mnist")  # no encoder: the manifold switches to a model with one
    assert any("no encoder" in i.value for i in at.info) and at.sidebar.selectbox[0].value == "vae-mnist-z20"
    at = app("views/training.py", model="gan-mlp-mnist")
    assert charts(at) and not at.exception


def test_picking_another_model_changes_every_view(app):
    at = app()
    before = " ".join(m.value for m in at.markdown)
    at.sidebar.selectbox[0].set_value("ae-mnist-z2").run()
    after = " ".join(m.value for m in at.markdown)
    assert "plain autoencoder" in after and after != before
    assert at.query_params["model"] == "ae-mnist-z2"


def test_a_saved_2d_toy_gan_does_not_break_the_manifold(app, ckpt_dir):
    from genlab import save
    from genlab.models import GAN, GANConfig
    save(GAN(GANConfig(arch="toy", latent_dim=2, data_shape=(2,))), ckpt_dir / "toy-gan-2d")
    try:
        at = app("views/manifold.py", model="vae-mnist-z2")
        assert len(charts(at)) == 3 and not at.exception
        at = app("views/latent_explorer.py", model="toy-gan-2d")
        assert any("2-d points" in i.value for i in at.info)
    finally:
        for f in checkpoint_files(ckpt_dir / "toy-gan-2d"):
            f.unlink()


# ----------------------------------------------------------------------------- Compare
COMPARE = "views/compare.py"


def test_compare_two_models_from_the_url(app):
    at = app(COMPARE, models="vae-mnist-z20,gan-mlp-mnist", seed="7", samples="16", path="lerp")
    assert at.multiselect(key="models").value == ["vae-mnist-z20", "gan-mlp-mnist"]
    assert [h.value for h in at.subheader][:2] == ["vae-mnist-z20", "gan-mlp-mnist"]
    caps = [e.proto.imgs[0].caption for e in at.get("image")]
    assert caps.count("16 samples, seed 7") == 2
    assert sum(c.startswith("lerp: seed 7 → seed 8") for c in caps) == 2
    assert at.query_params["models"] == "vae-mnist-z20,gan-mlp-mnist"
    table = at.dataframe[0].value
    assert list(table["model"][:2]) == ["vae-mnist-z20", "gan-mlp-mnist"]
    assert any("calibration" in m for m in table["model"])  # the rows that say what good is
    # the same link gives the same pictures; another seed changes them
    again = app(COMPARE, models="vae-mnist-z20,gan-mlp-mnist", seed="7", samples="16", path="lerp")
    assert image_urls(again) == image_urls(at)
    at.number_input(key="seed").set_value(8).run()
    assert image_urls(at)[0] != image_urls(again)[0]
    assert at.query_params["seed"] == "8"


def test_compare_four_models_same_z_nearest_neighbours_and_measuring(app, monkeypatch):
    from genlab import evaluation
    monkeypatch.setattr(evaluation, "DEFAULT_N", 1000)
    names = "vae-mnist-z20,vae-mnist-z2,ae-mnist-z2,gan-mlp-mnist"
    at = app(COMPARE, models=names, samples="16", nn="pixels")
    assert not at.exception
    assert len(at.subheader) >= 4
    # the two 2-d models get the same z; the captions say so
    assert any("same z as vae-mnist-z2" in c.value for c in at.caption)
    caps = [e.proto.imgs[0].caption for e in at.get("image")]
    assert sum(c.startswith("nearest training images (pixels)") for c in caps) == 4
    # these test models are not in docs/eval.json: the page offers to measure them, and does
    measure = next(b for b in at.button if b.label.startswith("Measure"))
    measure.click().run()
    assert not at.exception
    table = at.dataframe[0].value
    rows = table[table["model"].isin(names.split(","))]
    assert rows["FID"].notna().all() and (rows["FID"] > 0).all()
    assert (rows["label entropy"] <= 2.3026).all()
    assert len(charts(at)) >= 1  # the label histograms


def test_compare_refuses_a_fifth_model_and_unknown_names(app):
    at = app(COMPARE, models="vae-mnist-z20,nope,gan-mlp-mnist,vae-mnist-z2,ae-mnist-z2,vae-mnist-z20")
    assert any("nope" in w.value for w in at.warning)
    assert len(at.multiselect(key="models").value) <= 4
    at.multiselect(key="models").set_value(["vae-mnist-z20"]).run()
    assert any("at least two" in i.value for i in at.info)


def test_latent_explorer_shows_nearest_training_images(app):
    at = app("views/latent_explorer.py", n="4", nn="pixels")
    caps = [e.proto.imgs[0].caption for e in at.get("image")]
    assert any(c.startswith("nearest training images (pixels)") for c in caps)
    at.radio(key="nn").set_value("classifier features").run()
    caps = [e.proto.imgs[0].caption for e in at.get("image")]
    assert any(c.startswith("nearest training images (classifier features)") for c in caps)
    assert at.query_params["nn"] == "classifier features" and not at.exception


# ----------------------------------------------------------------------------- flows
def test_flow_view_traces_a_digit_scores_the_unusual_and_samples_at_temperatures(app):
    at = app("views/flow.py", model="realnvp-mnist", plotly="1")  # Plotly charts, to read the histogram's spec
    assert not at.exception and not at.error
    urls = image_urls(at)
    assert len(urls) == 2 + 1  # the layer strip, the digit and its decoding, the temperatures' matrix
    text = " ".join(m.value for m in at.markdown)
    assert "bits/dim" in text and "of 784 pixels" in text and "uniform noise" in text
    assert len(charts(at)) == 2  # bits/dim per epoch, the histogram
    # the histogram's axis ends at twice the largest median, and the text counts what lies beyond
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)
    xs = {t["name"]: sorted(t["x"]) for t in spec["data"]}
    edge = math.ceil(2 * max(v[len(v) // 2] for v in xs.values()))
    assert spec["layout"]["xaxis"]["range"] == [0, edge]
    beyond = {k: sum(x > edge for x in v) for k, v in xs.items()}
    assert beyond["test digits"] == 0 and beyond["uniform noise"] < len(xs["uniform noise"]) / 2
    if beyond["uniform noise"]:  # the shipped flow: a few noise images score thousands of bits/dim
        assert f"Off the chart, above {edge} bits/dim: {beyond['uniform noise']} uniform noise" in text
    else:
        assert "Off the chart" not in text
    at.number_input(key="fi").set_value(7).run()
    assert image_urls(at)[0] != urls[0] and at.query_params["fi"] == "7"
    at.number_input(key="fseed").set_value(3).run()
    assert image_urls(at)[-1] != urls[-1]


# ----------------------------------------------------------------------------- no dead ends
def goto(at, page):
    """Open a page as the sidebar does; forget it afterwards, so the app's own switch_page holds
    (AppTest keeps the page given to its switch_page for every later run)."""
    at.switch_page(page).run()
    at._page_hash = ""
    return at


@pytest.mark.parametrize("page,title,shows", [("views/flow.py", "Flow", "realnvp-mnist"),
                                              ("views/energy.py", "Energy Models", "ebm-mnist")])
def test_a_new_user_clicking_a_view_the_default_model_does_not_fit_sees_it_with_one_that_fits(app, page, title, shows):
    at = app()  # Home, with the default model
    goto(at, page)
    assert not at.exception and at.title[0].value == title
    note = [i.value for i in at.info if "vae-mnist-z20" in i.value]
    assert note == [f"vae-mnist-z20 {registry_why(title)}, so {title} shows {shows}, the first model here it applies to."]
    assert at.sidebar.selectbox[0].value == shows and at.query_params["model"] == shows  # the picker and the URL follow
    assert not any("does not apply" in i.value for i in at.info)
    assert charts(at) or image_urls(at)  # the view's own content, drawn for the model that fits
    at.run()  # a rerun neither switches again nor loses the way back
    assert at.sidebar.selectbox[0].value == shows and at.button(key="_switch_back")
    at.button(key="_switch_back").click().run()  # the way back: the previous model, on the view it came from
    assert not at.exception and at.title[0].value == "genlab"
    assert at.sidebar.selectbox[0].value == "vae-mnist-z20" and at.query_params["model"] == "vae-mnist-z20"


def registry_why(title):
    from genlab.models.base import NEEDS, missing
    from test_registry import VAE
    assert set(registry.view(title).needs) <= set(NEEDS)
    return missing(VAE, registry.view(title).needs)


def test_the_way_back_leads_to_the_view_before_or_where_the_model_is_explored(app):
    from streamlit.testing.v1 import AppTest
    from conftest import ROOT
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["model"] = "vae-mnist-z2"
    at.switch_page("views/flow.py").run()  # a shared link: the session's first view
    assert not at.exception and at.sidebar.selectbox[0].value == "realnvp-mnist"
    assert at.button(key="_switch_back").help == "Opens VAE Manifold with vae-mnist-z2."  # where a VAE is explored
    at = app("views/energy.py", model="rbm-mnist-h500")
    goto(at, "views/latent_explorer.py")
    assert any(i.value.startswith("rbm-mnist-h500 has no continuous latent space") and "Latent Explorer shows "
               "vae-mnist-z20" in i.value for i in at.info)
    assert at.button(key="_switch_back").help == "Opens Energy Models with rbm-mnist-h500."  # the view before
    at.button(key="_switch_back").click().run()
    assert at.title[0].value == "Energy Models" and at.query_params["model"] == "rbm-mnist-h500"


def test_a_view_that_no_model_fits_says_it_does_not_apply(app, ckpt_dir, tmp_path, monkeypatch):
    for name in ("vae-mnist-z20", "vae-mnist-z2"):  # a folder with VAEs only: nothing has an exact likelihood
        copy_checkpoint(ckpt_dir / name, tmp_path)
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(tmp_path))
    at = app("views/flow.py", model="vae-mnist-z2")
    assert at.sidebar.selectbox[0].value == "vae-mnist-z2" and not at.exception
    assert [i.value for i in at.info] == ["vae-mnist-z2 has no exact likelihood, so Flow does not apply to it, nor to "
                                          "any other model here: explore it on the VAE Manifold page, or train a "
                                          "model that fits."]
    assert [p.proto.label for p in at.main.get("page_link")] == ["Go to VAE Manifold"]
    at = app("views/energy.py")  # the live trainer above still works; the model part says why not
    assert any("does not apply" in i.value for i in at.info) and any(b.label == "Start" for b in at.button)


def test_a_flow_lights_up_the_latent_views(app):
    at = app("views/latent_explorer.py", model="realnvp-mnist", temp="0.5")
    before = image_urls(at)
    slider(at, "Temperature").set_value(1.0).run()
    assert image_urls(at)[0] != before[0] and not at.exception
    at = app("views/interpolation.py", model="realnvp-mnist")
    assert at.radio(key="a_src").options == ["seed", "test image"]  # a flow encodes exactly
    assert len(image_urls(at)) == 2 and not at.exception
    at = app("views/manifold.py", model="realnvp-mnist")
    assert not at.exception and any("784-d" in c.value for c in at.caption)
    at = app("views/training.py", model="realnvp-mnist")
    assert charts(at) and not at.exception


def test_compare_shows_the_flows_bits_per_dimension(app):
    at = app(COMPARE, models="vae-mnist-z20,realnvp-mnist", samples="16")
    table = at.dataframe[0].value
    row = table[table["model"] == "realnvp-mnist"].iloc[0]
    assert float(row["bits/dim"]) > 0 and "EXACT" in row["test NLL (nats)"]


# ----------------------------------------------------------------------------- energy models
def test_energy_view_shows_filters_chains_fill_and_free_energies(app):
    at = app("views/energy.py", model="rbm-mnist-h500")
    assert not at.exception and not at.error
    urls = image_urls(at)
    assert len(urls) == 4  # filters, the chain frame, clamp-and-fill, reconstructions
    assert len(charts(at)) == 2  # free energy along the chain, histograms
    frame = next(s for s in at.slider if s.label.startswith("Frame"))
    frame.set_value(0).run()
    assert image_urls(at)[1] != urls[1]  # the first frame is the starting noise
    at.toggle(key="chain_play").set_value(True).run()  # playing: every frame, animated by the browser
    assert image_urls(at)[1].endswith(".gif") and not at.exception
    at.toggle(key="chain_play").set_value(False).run()
    assert image_urls(at)[1].endswith(".png")
    at.radio(key="start").set_value("persistent chains").run()
    assert not at.exception and at.query_params["start"] == "persistent chains"
    at.selectbox(key="mask").set_value("left half given").run()
    assert not at.exception


def test_energy_view_runs_langevin_chains_for_an_ebm(app):
    at = app("views/energy.py", model="ebm-mnist", steps="20", every="5")
    assert not at.exception and not at.error
    assert any("no likelihood" in i.value for i in at.info)
    captions = " ".join(c.value for c in at.caption)
    assert "replay buffer" in " ".join(m.value for m in at.subheader) and "inpainting by sampling" in captions
    assert at.radio(key="start").options == ["noise", "a test image", "a noisy test image", "a half-masked test image"]
    assert len(charts(at)) == 3  # energy along the chain; the EBM's histograms beside the flow's
    before = image_urls(at)
    at.select_slider(key="eps").set_value("1.0").run()
    assert not at.exception and at.query_params["eps"] == "1.0" and image_urls(at) != before
    at.toggle(key="textbook").set_value(True).run()
    assert not at.exception
    for start in ("a test image", "a noisy test image", "a half-masked test image"):
        at.radio(key="start").set_value(start).run()
        assert not at.exception, start
    frame = next(s for s in at.slider if s.label.startswith("Frame"))
    assert frame.max == 4  # 20 steps, a frame every 5, and the start
    at.selectbox(key="mask").set_value("left half given").run()
    assert not at.exception


def test_the_energy_views_flow_histogram_keeps_the_digits_readable(app):
    at = app("views/energy.py", model="ebm-mnist", steps="20", every="5", plotly="1")
    spec = json.loads(next(c for c in at.get("plotly_chart") if c.proto.id.endswith("flow_hist")).proto.spec)
    xs = {t["name"]: sorted(t["x"]) for t in spec["data"]}
    edge = math.ceil(2 * max(v[len(v) // 2] for v in xs.values()))
    assert spec["layout"]["xaxis"]["range"] == [0, edge]  # up to twice the largest median, as on Flow
    beyond = {k: sum(x > edge for x in v) for k, v in xs.items()}
    captions = " ".join(c.value for c in at.caption)
    assert beyond["test digits"] == 0
    assert ("Off the chart, above" in captions) == any(beyond.values())


def test_an_ebm_is_sampled_on_home_and_compare_without_special_cases(app):
    at = app(None, model="ebm-mnist")
    assert not at.exception
    at = app(COMPARE, models="ebm-mnist,vae-mnist-z20", samples="16")
    assert not at.exception and len(at.dataframe[0].value) >= 2


def test_an_rbm_on_the_latent_views_switches_to_a_model_that_fits(app):
    for page, to in (("views/latent_explorer.py", "vae-mnist-z20"), ("views/interpolation.py", "vae-mnist-z20"),
                     ("views/manifold.py", "vae-mnist-z20"), ("views/flow.py", "realnvp-mnist")):
        at = app(page, model="rbm-mnist-h500")
        assert any(i.value.startswith("rbm-mnist-h500 ") and f"shows {to}" in i.value for i in at.info), page
        assert at.query_params["model"] == to and not at.exception
    at = app(COMPARE, models="vae-mnist-z20,rbm-mnist-h500", samples="16")
    row = at.dataframe[0].value
    # a 16-hidden-unit RBM also has its exact log Z, which the table prefers to the AIS estimate
    assert "EXACT" in row[row["model"] == "rbm-mnist-h500"].iloc[0]["test NLL (nats)"]


def test_an_rbm_trains_live_pauses_takes_new_settings_and_saves(app, ckpt_dir):
    import time
    from conftest import wait_for
    at = app("views/energy.py", model="vae-mnist-z20")  # the live part works whatever model is picked
    assert any("Energy Models shows" in i.value for i in at.info)
    at.select_slider[0].set_value(16)  # hidden units
    next(b for b in at.button if b.label == "Start").click().run()
    job = at.session_state["rbm_job"]
    assert wait_for(lambda: job.snapshot().extra.get("steps", 0) > 20, 60)
    at.run()
    assert any(m.value == "**running**" for m in at.markdown)
    assert any(c.value.startswith("running · update") for c in at.caption)  # the live counter, redrawn every second
    svgs = [e for e in at.main.expander[0].get("image") if "svg" in e.proto.imgs[0].url]  # the live part's
    assert len(svgs) == 3  # reconstruction error, free-energy gap, pseudo-NLL, as pictures while live
    at.button(key="rbm_pause").click().run()
    assert job.snapshot().state == "paused"
    at.run()
    form = at.radio[0]
    form.set_value("cd")
    next(b for b in at.button if b.label == "Apply").click().run()
    assert job.wait_commands(5) and job.snapshot().extra["settings"]["method"] == "cd"
    time.sleep(0.2)
    at.text_input[0].set_value("rbm-live-test")
    next(b for b in at.button if b.label == "Save as checkpoint").click().run()
    assert (ckpt_dir / "rbm-live-test.json").exists() and at.sidebar.selectbox[0].value == "rbm-live-test"
    at.button(key="rbm_reset").click().run()
    assert "rbm_job" not in at.session_state and not at.exception
    for f in checkpoint_files(ckpt_dir / "rbm-live-test"):
        f.unlink()


@pytest.mark.parametrize("model,kind", [("rbm-mnist-h500", "fixed chain"), ("ebm-mnist", "fixed chain")])
def test_training_view_plays_the_film_of_a_chain_model(app, model, kind):
    at = app("views/training.py", model=model)
    caps = [e.proto.imgs[0].caption for e in at.get("image")]
    assert any(c.startswith(kind) for c in caps) and any(c.startswith("fresh noise") for c in caps)
    film = next(s for s in at.slider if s.key == f"film_{model}")
    last = film.value
    before = image_urls(at)
    film.set_value(0).run()
    assert any(e.proto.imgs[0].caption.startswith(f"{kind}, epoch 0") for e in at.get("image"))
    assert image_urls(at) != before and last >= 1 and not at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert "GIF of the fixed frames" in labels and f"{model}.zip" in labels


def test_a_checkpoint_without_a_film_says_so(app):
    at = app("views/training.py", model="vae-mnist-z20")  # trained by fit() alone, as the old shipped ones
    assert any("has no film" in c.value for c in at.caption)


@pytest.mark.parametrize("style", ["pictures", "plotly"])
@pytest.mark.parametrize("page", ["views/latent_explorer.py", "views/training.py", "views/flow.py",
                                  "views/energy.py", "views/compare.py", "views/home.py"])
def test_every_picture_and_chart_has_a_download(app, page, style):
    extra = {"plotly": "1"} if style == "plotly" else {}
    at = app(page, model={"views/flow.py": "realnvp-mnist", "views/energy.py": "ebm-mnist", "views/training.py": "rbm-mnist-h500"}.get(page, "vae-mnist-z20"), **extra)
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels.count("PNG") >= len([e for e in at.get("image") if "svg" not in e.proto.imgs[0].url]) - labels.count("GIF")
    assert labels.count("CSV") >= len(charts(at))
    assert at.get("image") and (charts(at) or page in ("views/latent_explorer.py", "views/home.py"))
    # one style per page: no Plotly (and so none of its script) unless asked for
    assert bool(at.get("plotly_chart")) == (style == "plotly" and bool(charts(at)))


CHART_VIEWS = {"views/interpolation.py": "vae-mnist-z20", "views/manifold.py": "vae-mnist-z2",
               "views/training.py": "vae-mnist-z20", "views/flow.py": "realnvp-mnist",
               "views/energy.py": "ebm-mnist", "views/compare.py": "vae-mnist-z20"}


@pytest.mark.parametrize("page", list(CHART_VIEWS))
def test_charts_are_pictures_until_interactive_charts_are_turned_on(app, page):
    at = app(page, model=CHART_VIEWS[page])
    pictures = [e for e in at.get("image") if is_chart_picture(e)]
    assert pictures and not at.get("plotly_chart")
    ElementTree.fromstring(svg_of(pictures[0]))  # a well-formed picture
    toggle = at.sidebar.toggle(key="plotly")
    assert toggle.label == "Interactive charts" and toggle.value is False and "plotly" not in at.query_params
    toggle.set_value(True).run()
    assert not at.exception and at.query_params["plotly"] == "1"
    assert len(at.get("plotly_chart")) == len(pictures) and not [e for e in at.get("image") if is_chart_picture(e)]
    at.sidebar.toggle(key="plotly").set_value(False).run()
    assert "plotly" not in at.query_params and not at.get("plotly_chart")


def test_the_manifold_decodes_a_test_image_picked_by_number_or_by_a_click(app):
    at = app("views/manifold.py", model="vae-mnist-z2", pt="12")  # from the URL
    assert any(m.value.startswith("**Test image 12**") for m in at.markdown)
    at.number_input(key="pt").set_value(40).run()
    assert any(m.value.startswith("**Test image 40**") for m in at.markdown) and at.query_params["pt"] == "40"
    ringed = [e for e in at.get("image") if is_chart_picture(e)][0]
    svg = svg_of(ringed)
    assert "test image 40" in svg and 'stroke="#111"' in svg  # the ring's legend entry and its outline
    at = app("views/manifold.py", model="vae-mnist-z2")
    assert not any(m.value.startswith("**Test image") for m in at.markdown)
    assert any("Interactive charts" in c.value for c in at.caption)


def test_a_link_into_a_view_shows_the_model_it_names(app):
    """Within a session, opening a view by a link that names a model (a lesson's step, a shared
    URL) shows that model, not the session's, and no switch note; a rerun keeps it."""
    at = app()  # Home with the default VAE
    at.query_params["model"] = "rbm-mnist-h500"
    at.switch_page("views/energy.py").run()
    assert not at.exception
    assert at.sidebar.selectbox[0].value == "rbm-mnist-h500"
    assert not any("first model here it applies to" in i.value for i in at.info)
    at.run()
    assert at.sidebar.selectbox[0].value == "rbm-mnist-h500"
