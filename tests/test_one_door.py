"""One door: a family defined in a few lines here, with no other file touched, is in the command
line (with options generated from its config), trains, evaluates, and opens in the model
picker, the Latent Explorer, Interpolation and Compare."""
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import ROOT, app_test, copy_checkpoint
from genlab.models import base
from genlab.models.base import Capabilities, Preset, minimize_terms, option, register


@dataclass
class TinyConfig:
    data_shape: tuple[int, ...] = option((1, 28, 28), "image shape", cli=False)
    latent_dim: int = option(2, "latent dimensions")
    pull: float = option(0.1, "weight of the pull of the codes toward the prior")


class Tiny(nn.Module):
    """A linear autoencoder whose codes are pulled toward N(0, I): decode(z) is its generator."""

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        d = config.data_shape[0] * config.data_shape[1] * config.data_shape[2]
        self.enc, self.dec = nn.Linear(d, config.latent_dim), nn.Linear(config.latent_dim, d)

    @property
    def capabilities(self):
        return Capabilities(data_kind="image", data_shape=self.config.data_shape, latent="gaussian",
                            latent_dim=self.config.latent_dim, encode=True)

    def encode(self, x):
        return self.enc(x.flatten(1))  # (B, Z)

    def decode(self, z):
        return torch.sigmoid(self.dec(z)).view(-1, *self.config.data_shape)  # (B, C, H, W)

    def prior(self):
        z = torch.zeros(self.config.latent_dim, device=self.dec.weight.device)
        return z, z + 1

    def prior_sample(self, n, generator=None, temperature=1.0):
        return temperature * torch.randn(n, self.config.latent_dim, generator=generator, device=self.dec.weight.device)

    def sample(self, n, generator=None):
        return self.decode(self.prior_sample(n, generator))

    def loss_terms(self, x, generator=None):
        z = self.encode(x)
        recon = F.binary_cross_entropy_with_logits(self.dec(z), x.flatten(1), reduction="none").sum(1).mean()
        pull = 0.5 * z.pow(2).sum(1).mean()
        return {"loss": recon + self.config.pull * pull, "recon": recon, "pull": pull}

    def configure_optimizers(self, lr):
        return [torch.optim.Adam(self.parameters(), lr=lr)]

    def train_step(self, batch, optimizers, generator=None):
        return minimize_terms(self, batch, optimizers, generator)


@pytest.fixture
def tiny_family():
    register("tiny", TinyConfig, label=lambda cfg: "Tiny", describe=lambda cfg: "a tiny linear autoencoder",
             presets={"tiny": Preset(help="a tiny linear autoencoder")},
             examples=lambda: [TinyConfig(data_shape=(1, 8, 8))])(Tiny)
    yield
    base.unregister("tiny")


def test_a_family_defined_here_is_a_whole_citizen(tiny_family, tmp_path, capsys, monkeypatch):
    from genlab.cli import main
    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    assert done.value.code == 0
    listed = capsys.readouterr().out
    assert "tiny" in listed and "--pull" in listed
    with pytest.raises(SystemExit):
        main(["train", "tiny", "--help"])
    assert "weight of the pull of the codes toward the prior (default 0.1)" in " ".join(capsys.readouterr().out.split())

    out = tmp_path / "tiny-mnist"
    assert main(["train", "tiny", "--pull", "0.2", "--latent-dim", "3", "--epochs", "1", "--limit", "512",
                 "--batch-size", "64", "--out", str(out)]) == 0
    from genlab import store
    model, card = store.load(out)
    assert card["family"] == "tiny" and card["config"]["pull"] == 0.2 and model.config.latent_dim == 3
    steps = card["history"]["steps"]["loss"]
    assert steps[-1] < steps[0]  # it trained
    assert main(["train", "tiny", "--beta", "2", "--epochs", "1", "--out", str(out)]) == 2
    assert "beta does not apply to tiny" in capsys.readouterr().err

    copy_checkpoint(ROOT / "checkpoints" / "mnist-classifier", tmp_path)  # eval scores samples with it
    capsys.readouterr()
    assert main(["eval", str(out), "--n", "200"]) == 0
    assert '"fid"' in capsys.readouterr().out

    assert main(["train", "tiny", "--seed", "1", "--epochs", "1", "--limit", "256", "--out", str(tmp_path / "tiny-b")]) == 0
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(tmp_path))
    at = app_test(model="tiny-mnist")
    assert any(o.startswith("tiny-mnist") for o in at.sidebar.selectbox[0].options)
    for page in ("views/latent_explorer.py", "views/interpolation.py", "views/compare.py"):
        at = app_test(page, model="tiny-mnist", models="tiny-mnist,tiny-b")
        assert not at.error, (page, [e.value for e in at.error])
        said = " ".join(e.value for kind in ("info", "warning", "markdown") for e in at.get(kind))
        assert "does not apply" not in said, (page, said)
        assert at.get("image"), page  # it drew the tiny model's pictures
