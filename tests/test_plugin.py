"""Families as plugins: the example plugin (examples/genlab-ppca, installed by the README's test
command) is found through its entry point, listed, trained from the command line and opened in
the Latent Explorer with no file of genlab changed; a plugin that fails or declares an invalid
family is reported in one line and genlab runs without it."""
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points

import pytest
import torch.nn as nn

from conftest import ROOT, app_test
from genlab.models import base, families, family


def test_the_example_plugin_is_installed_and_registered():
    """CI installs it (requirements-dev.txt); without it this fails, it never skips."""
    eps = {ep.name: ep.value for ep in entry_points(group=base.PLUGIN_GROUP)}
    assert eps.get("ppca") == "genlab_ppca", f"pip install -e examples/genlab-ppca (found {eps})"
    assert "ppca" in families() and family("ppca").model_cls.__module__ == "genlab_ppca"
    assert base.problems() == []  # every built-in module and plugin loaded


def test_it_is_listed_trains_from_the_command_line_and_opens_in_the_latent_explorer(tmp_path, monkeypatch):
    run = lambda *a: subprocess.run([sys.executable, "-m", "genlab", *a], cwd=ROOT, capture_output=True, text=True,
                                    timeout=600)
    listed = run("list", str(tmp_path))
    assert listed.returncode == 0 and "ppca" in listed.stdout and "plugin genlab_ppca" in listed.stdout
    helped = run("train", "ppca", "--help")
    assert "--latent-dim" in helped.stdout and "--init-sigma" in helped.stdout
    out = tmp_path / "ppca-mnist"
    trained = run("train", "ppca", "--latent", "4", "--epochs", "1", "--limit", "2000", "--out", str(out))
    assert trained.returncode == 0, trained.stderr
    from genlab import load
    model, card = load(out)
    assert card["family"] == "ppca" and model.config.latent_dim == 4
    losses = card["history"]["steps"]["loss"]
    assert losses[-1] < losses[0]
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(tmp_path))
    at = app_test("views/latent_explorer.py", model="ppca-mnist")
    assert at.sidebar.selectbox[0].value == "ppca-mnist"
    assert not at.error and at.get("image")
    said = " ".join(e.value for kind in ("info", "warning", "markdown") for e in at.get(kind))
    assert "does not apply" not in said


@dataclass(frozen=True)
class NoConfig:
    size: int = 2


class Broken(nn.Module):
    """Promises a Gaussian latent and has none of its methods."""

    def __init__(self, config):
        super().__init__()
        self.config = config

    @property
    def capabilities(self):
        return base.Capabilities(data_kind="points", data_shape=(2,), latent="gaussian", latent_dim=2)


def _register_broken():
    base.register("broken", NoConfig, label=lambda c: "B", describe=lambda c: "b",
                  examples=lambda: [NoConfig()])(Broken)


def _replace_vae():
    base.register("vae", NoConfig, label=lambda c: "B", describe=lambda c: "b", examples=lambda: [NoConfig()])(Broken)


def _fail():
    raise ImportError("No module named 'jax'")


@pytest.mark.parametrize("load,why", [
    (_fail, "ImportError: No module named 'jax'"),
    (_register_broken, "Broken lacks what it promises: sample, configure_optimizers, train_step, gaussian_latent: prior"),
    (_replace_vae, "it registers family 'vae', which genlab already has"),
    (lambda: None, "it registered no family"),
])
def test_a_failing_plugin_is_reported_and_leaves_the_registry_as_it_was(load, why, monkeypatch, capsys):
    monkeypatch.setattr(base, "_PROBLEMS", [])
    before, presets = {f: family(f) for f in families()}, base.presets()
    assert base.load_family_module("plugin bad (bad_pkg)", load) == []
    assert {f: family(f) for f in families()} == before and base.presets() == presets
    [(source, reason)] = base.problems()
    assert source == "plugin bad (bad_pkg)" and reason.startswith(why)
    line = capsys.readouterr().err.strip()
    assert line.count("\n") == 0 and "plugin bad (bad_pkg) not loaded" in line


def test_home_names_a_plugin_that_did_not_load(monkeypatch):
    monkeypatch.setattr(base, "_PROBLEMS", [("plugin bad (bad_pkg)", "ImportError: No module named 'jax'")])
    at = app_test()
    assert any("plugin bad (bad_pkg)" in w.value and "jax" in w.value for w in at.warning)
