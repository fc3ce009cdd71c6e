"""views/warm.py: a fresh server opens every view itself once, in the background, when the
first session arrives, so that a class finds the shared caches filled."""
import re
import time

import pytest

from conftest import streamlit_server, wait_for
from stclient import run_together
from views import common, warm

MODELS = [{"name": "vae-mnist-z20", "explored_in": "VAE Manifold"}, {"name": "gan-x", "explored_in": "GAN Live"},
          {"name": "flow-x", "explored_in": "Flow"}, {"name": "rbm-x", "explored_in": "Energy Models"},
          {"name": "vae-mnist-z2", "explored_in": "VAE Manifold"}]


def test_visits_open_each_view_once_and_leave_out_jobs_and_lessons():
    todo = warm.visits(MODELS, "vae-mnist-z20", common.VIEW_FILES)
    assert todo[0] == ("", "model=vae-mnist-z20")  # Home first: where a class lands
    assert len(todo) == len(set(todo))
    pages = {p for p, _ in todo}
    assert {"latent_explorer", "interpolation", "manifold", "compare", "training", "digit", "flow", "energy"} <= pages
    assert not pages & {"gan_live", "structure", "lessons"}  # they start jobs or read a person's input
    assert ("flow", "model=flow-x") in todo and ("energy", "model=rbm-x") in todo
    assert ("manifold", "model=vae-mnist-z2") in todo and ("manifold", "model=flow-x") in todo
    assert todo.index(("flow", "model=flow-x")) < todo.index(("manifold", "model=flow-x"))  # its own view first
    assert {q for p, q in todo if p == "compare"} == {"model=vae-mnist-z20"}
    assert all(p in {"", *(f.split("/")[1][:-3] for f in common.VIEW_FILES.values())} for p in pages)


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
    expected = warm.visits(models, common.DEFAULT_MODEL, common.VIEW_FILES)
    assert line and int(line.group(2)) == 0, log[-4000:]
    assert int(line.group(1)) == len(expected) > 8
    assert int(line.group(3).replace(",", "")) > 100_000  # the server's modules and caches, frozen (gc.freeze)
    assert log.count("genlab: warmed") == 1 and "Traceback" not in log, log[-4000:]
