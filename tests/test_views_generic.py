"""Views that name no family: the Training form and GAN Live build their choices from the
presets and the config fields (AppTest)."""
import dataclasses

import pytest

from conftest import app_test
from genlab.models import family, presets


@pytest.fixture
def app(ckpt_dir, monkeypatch):
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(ckpt_dir))
    return app_test


def test_the_training_form_offers_every_one_loop_preset_with_its_config_options(app):
    at = app("views/training.py")
    model = at.selectbox(key="t_family")
    assert model.value == "vae" and {"VAE", "AE", "PPCA"} <= set(model.options)  # a plugin's family too
    assert not [o for o in model.options if "ONNX" in o]  # brought, not trained
    assert {"MLP GAN", "EBM (Langevin)"} <= set(model.options)  # every family of the one loop, not only the VAE
    assert not [o for o in model.options if "classifier" in o]  # it has a trainer of its own
    # the common widgets keep their keys and defaults; the VAE's own fields are under Options
    assert [at.number_input(key=k).value for k in ("t_z", "t_epochs", "t_limit", "t_seed")] == [2, 5, 0, 0]
    assert at.selectbox(key="t_data").value == "mnist"
    assert at.expander[0].label == "Options"
    assert at.number_input(key="t_vae_mnist_beta").value == 1.0
    assert at.selectbox(key="t_vae_mnist_likelihood").value == "bernoulli"
    assert at.text_input(key="t_vae_mnist_hidden").value == "500,250"
    # a field the recipe fills from the data follows the data set
    at.selectbox(key="t_data").set_value("digits8").run()
    assert at.text_input(key="t_vae_digits8_hidden").value == "128,64"
    # another family: its own fields, none that its presets fix or the recipe fills
    at.selectbox(key="t_family").set_value("dcgan").run()
    assert at.selectbox(key="t_data").options == ["MNIST 28×28"]  # the DCGAN's recipe wants 28x28 images
    keys = {w.key for w in at.number_input} | {w.key for w in at.selectbox}
    assert "t_dcgan_mnist_d_steps" in keys and "t_dcgan_mnist_loss" in keys
    assert not {"t_dcgan_mnist_arch", "t_dcgan_mnist_data_shape"} & keys
    assert not at.exception


def test_a_bad_option_is_refused_in_one_line(app):
    at = app("views/training.py")
    at.selectbox(key="t_data").set_value("digits8").run()
    at.text_input(key="t_vae_digits8_hidden").set_value("12,x").run()
    at.button(key="t_start").click().run()
    assert "job" not in at.session_state
    assert any("not a list of whole numbers" in e.value for e in at.error)


def test_gan_live_offers_the_adversarial_presets_with_todays_labels(app):
    at = app("views/gan_live.py")
    ds = at.selectbox(key="g_ds")
    assert ds.value == "mnist-mlp"
    assert ds.options[:1] == ["MNIST, MLP GAN"] and ds.options[2:] == [
        "2-d: ring of 8 Gaussians", "2-d: spiral", "2-d: two moons", "2-d: checkerboard"]
    adversarial = [f for f in {f for f, _ in presets().values()} if getattr(family(f).live, "kind", "") == "adversarial"]
    assert adversarial and all(dataclasses.is_dataclass(family(f).live.Settings) for f in adversarial)
