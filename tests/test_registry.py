"""views/registry.py is the one list of views: app.py's navigation, Home's cards, the keys a lesson
step may carry, the warm-up and the sidebar's job badge all come from it, and a model's home view
is derived from its capabilities."""
import ast

import pytest

from conftest import ROOT, app_test
from genlab import lessons
from genlab.models.base import NEEDS, Capabilities
from views import registry

IMG = (1, 28, 28)
VAE = Capabilities("image", IMG, latent="gaussian", latent_dim=20, encode=True, likelihoods=("elbo", "iw"))
GAN = Capabilities("image", IMG, latent="gaussian", latent_dim=100)
FLOW = Capabilities("image", IMG, latent="gaussian", latent_dim=784, encode=True, likelihoods=("exact",),
                    traceable=True)
RBM = Capabilities("image", IMG, latent="binary", latent_dim=500, sampler="gibbs", likelihoods=("ais",), energy=True)
EBM = Capabilities("image", IMG, sampler="langevin", sample_needs_grad=True, energy=True)
TOY = Capabilities("points", (2,), data_range=None, latent="gaussian", latent_dim=2)


# ----------------------------------------------------------------------------- the entries
def test_every_entry_is_whole_and_unique():
    titles = [v.title for v in registry.VIEWS]
    assert len(set(titles)) == len(titles) and titles[0] == "Home"
    assert len({v.file for v in registry.VIEWS}) == len(titles)
    assert len({v.path for v in registry.VIEWS}) == len(titles) and registry.VIEWS[0].path == ""
    for v in registry.VIEWS:
        assert (ROOT / v.file).is_file(), v.file
        assert v.icon.startswith(":material/"), v.title
        assert set(v.needs) <= set(NEEDS), v.title  # capability names the engine knows
        assert not set(v.extra_keys) & set(v.keys), v.title
        for spec in v.keys.values():
            assert isinstance(spec, (lessons.Int, lessons.Float, lessons.Choice, lessons.Models)), v.title
    jobs = [k for v in registry.VIEWS for k in v.jobs]
    assert len(jobs) == len(set(jobs)) and registry.job_views() == {
        "job": "Training", "gan_job": "GAN Live", "rbm_job": "Energy Models", "dn_job": "Diffusion"}
    warm = [v.warm for v in registry.VIEWS if v.warm]
    assert len(warm) == len(set(warm)) and registry.view("Home").warm == min(warm)  # a class lands on Home


def test_every_view_file_is_an_entry():
    helpers = {"common.py", "registry.py", "lesson_bar.py", "warm.py", "canvas.py"}  # imported, not pages
    pages = {f"views/{p.name}" for p in (ROOT / "views").glob("*.py") if p.name not in helpers}
    assert pages == {v.file for v in registry.VIEWS}


def test_a_key_is_read_where_it_is_written():
    assert registry.key("Energy Models", "steps") is registry.keys("Energy Models")["steps"]
    assert (registry.key("Compare", "samples").values, registry.key("Latent Explorer", "n").hi) == ((16, 36, 64), 16)
    with pytest.raises(KeyError):
        registry.view("Nowhere")
    assert registry.find("Nowhere") is None and registry.find(None) is None


# ----------------------------------------------------------------------------- the readers
def _literals(path) -> set:
    tree = ast.parse(path.read_text())
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


@pytest.mark.parametrize("reader", ["app.py", "views/home.py", "views/warm.py", "views/lesson_bar.py",
                                    "views/lessons.py", "views/common.py", "genlab/lessons.py"])
def test_no_reader_keeps_its_own_copy_of_the_views(reader):
    """A view's file or icon is written in the registry only (titles may appear in prose)."""
    words = _literals(ROOT / reader)
    for v in registry.VIEWS:
        assert v.file not in words and v.icon not in words, (reader, v.title)
        if v.blurb:
            assert v.blurb not in words, (reader, v.title)


def test_lessons_take_exactly_the_keys_of_the_registry():
    views = registry.lesson_views()
    assert list(views) == [v.title for v in registry.VIEWS if v.title != "Lessons"]
    for title, specs in views.items():
        assert specs == {"model": registry.GLOBAL_KEYS["model"], **registry.keys(title)}
    assert not hasattr(lessons, "VIEW_KEYS")  # the engine holds the checks, not the list of views
    from views import lesson_bar
    assert lesson_bar.views() == views


def test_homes_cards_are_the_registry(ckpt_dir, monkeypatch):
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(ckpt_dir))
    at = app_test()
    want = [v for v in registry.VIEWS if v.blurb]
    cards = [(p.proto.label, p.proto.icon) for p in at.main.get("page_link")]
    assert cards[:len(want)] == [(v.title, v.icon) for v in want]
    assert [c.value for c in at.main.caption][:len(want)] == [v.blurb for v in want]


# ----------------------------------------------------------------------------- where a model is explored
@pytest.mark.parametrize("caps,home", [(VAE, "VAE Manifold"), (GAN, "Latent Explorer"), (FLOW, "Flow"),
                                       (RBM, "Energy Models"), (EBM, "Energy Models"), (TOY, "Home")])
def test_a_models_home_is_the_most_specific_view_that_fits_it(caps, home):
    assert registry.home_of(caps) == home
    assert registry.home_of({"name": "x", "caps": caps}) == home  # a picker's entry
    fits = [v for v in registry.VIEWS if v.explores and registry.fits(v, caps)]
    assert all(len(v.needs) <= len(registry.view(home).needs) for v in fits)


def test_a_flow_fits_the_latent_views_too_but_lives_on_flow():
    assert registry.fits(registry.view("VAE Manifold"), FLOW) and registry.fits(registry.view("Latent Explorer"), FLOW)
    assert not registry.fits(registry.view("Flow"), VAE) and not registry.fits(registry.view("Energy Models"), VAE)
