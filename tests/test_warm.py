"""views/warm.py: a fresh server opens every view itself once, in the background, when the
first session arrives, so that a class finds the shared caches filled."""
import re
import time

import pytest

from conftest import streamlit_server, wait_for
from stclient import run_together
from test_registry import FLOW, GAN, RBM, VAE
from views import common, registry, warm

MODELS = [{"name": "vae-mnist-z20", "caps": VAE}, {"name": "gan-x", "caps": GAN}, {"name": "flow-x", "caps": FLOW},
          {"name": "rbm-x", "caps": RBM}, {"name": "vae-mnist-z2", "caps": VAE}]


def test_visits_open_each_view_once_and_leave_out_jobs_and_lessons():
    todo = warm.visits(MODELS, "vae-mnist-z20")
    assert todo[0] == ("", "model=vae-mnist-z20")  # Home first: where a class lands
    assert len(todo) == len(set(todo))
    pages = {p for p, _ in todo}
    assert {"latent_explorer", "interpolation", "manifold", "compare", "training", "digit", "flow", "energy"} <= pages
    assert not pages & {"gan_live", "structure", "lessons"}  # they start jobs or read a person's input
    assert ("flow", "model=flow-x") in todo and ("energy", "model=rbm-x") in todo
    assert ("manifold", "model=vae-mnist-z2") in todo and ("manifold", "model=flow-x") in todo
    assert todo.index(("flow", "model=flow-x")) < todo.index(("manifold", "model=flow-x"))  # its own view first
    assert todo.index(("latent_explorer", "model=gan-x")) < todo.index(("", "model=gan-x"))
    assert {q for p, q in todo if p == "compare"} == {"model=vae-mnist-z20"}
    assert {v.path for v in registry.VIEWS} >= pages
    # the sections that are off until asked for are warmed on each model's home, after the plain visits
    assert ("latent_explorer", "model=gan-x&dirs=1") in todo and ("manifold", "model=vae-mnist-z2&cmap=1") in todo
    assert todo.index(("latent_explorer", "model=gan-x")) < todo.index(("latent_explorer", "model=gan-x&dirs=1"))


def test_visits_follow_the_registry():
    """The first round is the registry's warm order with the default model; no view is opened
    with a model it does not fit (it would switch models)."""
    todo = warm.visits(MODELS, "vae-mnist-z20")
    first = [v.path for v in sorted(registry.VIEWS, key=lambda v: v.warm)
             if v.warm and registry.fits(v, VAE)]
    assert [p for p, _ in todo[:len(first)]] == first
    caps = {m["name"]: m["caps"] for m in MODELS}
    by_path = {v.path: v for v in registry.VIEWS}
    assert all(registry.fits(by_path[p], caps[q.removeprefix("model=").split("&")[0]]) for p, q in todo)
    assert ("flow", "model=vae-mnist-z20") not in todo and ("energy", "model=gan-x") not in todo
    assert not warm.visits(MODELS, "vae-mnist-z20", [registry.view("Lessons")])


def test_only_a_real_server_warms(monkeypatch):
    monkeypatch.delitem(warm.sys.modules, "streamlit.web.bootstrap", raising=False)
    assert not warm.enabled()  # pytest, AppTest
    monkeypatch.setitem(warm.sys.modules, "streamlit.web.bootstrap", object())  # what `streamlit run` imports
    monkeypatch.setenv("GENLAB_WARM", "1")
    assert warm.enabled()
    monkeypatch.setenv("GENLAB_WARM", "0")
    assert not warm.enabled()


def test_the_stream_url_of_this_server():
    assert warm.stream_url(None, 8501, "", False) == "ws://127.0.0.1:8501/_stcore/stream"
    assert warm.stream_url("0.0.0.0", 80, "/genlab/", False) == "ws://127.0.0.1:80/genlab/_stcore/stream"
    assert warm.stream_url("::", 8501, None, True) == "wss://[::1]:8501/_stcore/stream"
    assert warm.stream_url("fe80::1", 8501, "a/b", False) == "ws://[fe80::1]:8501/a/b/_stcore/stream"


@pytest.mark.slow
def test_a_fresh_server_warms_every_view_without_an_error(ckpt_dir, tmp_path):
    log_path = tmp_path / "streamlit.log"
    with streamlit_server(ckpt_dir, log_path, "--client.showErrorDetails", "full", warm=True) as url:
        assert "genlab: warmed" not in log_path.read_text()  # nothing before the first session
        first, = run_together(url, [("", "")])
        assert first.status == "FINISHED_SUCCESSFULLY" and not first.exceptions
        assert wait_for(lambda: "genlab: warmed" in log_path.read_text(), 600), log_path.read_text()[-3000:]
        line = re.search(r"genlab: warmed (\d+) views in [\d.]+ s, (\d+) errors, ([\d,]+) objects kept out of the "
                         r"cyclic collector", log_path.read_text())
        # a second session does not start a second warm-up
        run_together(url, [("flow", "model=realnvp-mnist")])
        time.sleep(0.5)
    log = log_path.read_text()
    models = [m for m in common._list_models(str(ckpt_dir), 0) if "error" not in m]
    expected = warm.visits(models, common.DEFAULT_MODEL)
    assert line and int(line.group(2)) == 0, log[-4000:]
    assert int(line.group(1)) == len(expected) > 8
    assert int(line.group(3).replace(",", "")) > 100_000  # the server's modules and caches, frozen (gc.freeze)
    assert log.count("genlab: warmed") == 1 and "Traceback" not in log, log[-4000:]
