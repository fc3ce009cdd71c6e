"""Models from any framework as ONNX: the shipped VAE and DCGAN exported and checked against
PyTorch on the same z, the command line round trip, a graph from "another framework" imported
with its card, and every kind of bad graph refused with one message."""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import ROOT, copy_checkpoint
from genlab import CheckpointError, load, store
from genlab.cli import main
from genlab.models import base, family

ONNX = family("onnx")  # the family's module, reached through the registry
onnxmodel = __import__(ONNX.model_cls.__module__, fromlist=["x"])


@pytest.fixture(scope="module")
def exported():
    """The shipped VAE (z=20, with its encoder) and DCGAN, each exported once."""
    out = {}
    for name in ("vae-mnist-z20", "dcgan-mnist"):
        src, card = load(ROOT / "checkpoints" / name)
        out[name] = (src, onnxmodel.export(src, card, source=name))
    return out


@pytest.mark.parametrize("name", ["vae-mnist-z20", "dcgan-mnist"])
def test_the_onnx_decode_matches_pytorch_on_the_same_z(exported, name):
    """ONNX Runtime against PyTorch on 256 prior draws: float32 rounding only. Measured here:
    VAE decode ~1e-7, encode ~1e-6; DCGAN decode ~1e-6 (the bound below is far above both)."""
    src, onnx_model = exported[name]
    diff = onnxmodel.max_abs_difference(src, onnx_model, n=256, seed=1)
    print(name, diff)
    assert diff["decode"] < 1e-4
    assert ("encode" in diff) == src.capabilities.encode
    if "encode" in diff:
        assert diff["encode"] < 1e-3
    caps = onnx_model.capabilities
    assert caps.gaussian_latent and caps.latent_dim == src.capabilities.latent_dim
    assert caps.encode == src.capabilities.encode and base.protocol_gaps(onnx_model) == []
    assert torch.equal(onnx_model.prior()[0], src.prior()[0].cpu())


def test_an_exported_model_saves_loads_samples_and_follows_the_seed(exported, tmp_path):
    _, m = exported["vae-mnist-z20"]
    store.save(m, tmp_path / "v")
    back, card = load(tmp_path / "v")
    assert card["family"] == "onnx" and card["config"]["encoder_bytes"] > 0
    a = base.sample(back, 6, torch.Generator().manual_seed(0))
    assert a.shape == (6, 1, 28, 28) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, base.sample(m, 6, torch.Generator().manual_seed(0)))
    assert not torch.equal(a, base.sample(back, 6, torch.Generator().manual_seed(1)))


def test_the_command_line_exports_samples_lists_and_evaluates(tmp_path, capsys):
    out = tmp_path / "vae-onnx"
    assert main(["export-onnx", str(ROOT / "checkpoints" / "vae-mnist-z2"), "--out", str(out)]) == 0
    said = capsys.readouterr().err
    assert "max |decode difference|" in said
    assert (tmp_path / "vae-onnx.decoder.onnx").exists() and (tmp_path / "vae-onnx.encoder.onnx").exists()
    assert load(out)[1]["onnx_check"]["decode"] < 1e-4
    assert main(["sample", str(out), "--out", str(tmp_path / "s.png"), "--n", "16"]) == 0
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["list", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert "vae-onnx" in listed and "ONNX" in listed and "latent 2" in listed
    copy_checkpoint(ROOT / "checkpoints" / "mnist-classifier", tmp_path)
    capsys.readouterr()
    assert main(["eval", str(out), "--n", "200"]) == 0  # no likelihood: the samples are scored
    assert '"fid"' in capsys.readouterr().out
    assert main(["export-onnx", str(ROOT / "checkpoints" / "rbm-mnist-h500"), "--out", str(tmp_path / "r")]) == 2
    assert "continuous latent" in capsys.readouterr().err


def torch_graph(module: nn.Module, example: torch.Tensor) -> bytes:
    """An ONNX graph with a dynamic batch, as another framework would hand it over."""
    prog = torch.onnx.export(module.eval(), (example,), input_names=["in"], output_names=["out"],
                             dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
                             external_data=False, verbose=False)
    return prog.model_proto.SerializeToString()


class Dec(nn.Module):
    """A decoder from 'elsewhere': 3 latent dims to 8x8 images, output flattened."""

    def __init__(self, z=3, d=64):
        super().__init__()
        torch.manual_seed(0)
        self.f = nn.Sequential(nn.Linear(z, 32), nn.Tanh(), nn.Linear(32, d), nn.Sigmoid())

    def forward(self, z):
        return self.f(z)


@pytest.fixture(scope="module")
def dec_graph():
    return torch_graph(Dec(), torch.zeros(2, 3))


def user_card(**changes):
    card = {"format": "genlab-onnx", "name": "from-jax", "latent_dim": 3, "data_shape": [1, 8, 8],
            "data_range": [0, 1], "decoder": "decoder.onnx", "dataset": "digits8"}
    card.update(changes)
    return json.dumps(card).encode()


def test_a_graph_from_elsewhere_comes_in_with_its_card(dec_graph, tmp_path, capsys):
    (tmp_path / "card.json").write_bytes(user_card())
    (tmp_path / "decoder.onnx").write_bytes(dec_graph)
    assert main(["import-onnx", str(tmp_path / "card.json"), "--out", str(tmp_path / "mine")]) == 0
    model, card = load(tmp_path / "mine")
    assert card["dataset"] == {"name": "digits8"} and not model.capabilities.encode
    z = torch.randn(5, 3)
    with torch.no_grad():
        want = Dec()(z).view(5, 1, 8, 8)
    assert (model.decode(z) - want).abs().max() < 1e-5


def huge_graph() -> bytes:
    """z (batch, 3) tiled to (batch, 60,000,000) before a slice to 64 pixels: 1.9 GB for a batch of 8."""
    from onnx import TensorProto, helper, numpy_helper
    reps = numpy_helper.from_array(np.array([1, 20_000_000], dtype=np.int64), "reps")
    starts, ends, axes = (numpy_helper.from_array(np.array([v], dtype=np.int64), n)
                          for n, v in (("starts", 0), ("ends", 64), ("axes", 1)))
    g = helper.make_graph([helper.make_node("Tile", ["z", "reps"], ["t"]),
                           helper.make_node("Slice", ["t", "starts", "ends", "axes"], ["s"]),
                           helper.make_node("Sigmoid", ["s"], ["x"])], "huge",
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 3])],
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
                          [reps, starts, ends, axes])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.mark.parametrize("case,files,message", [
    ("latent size", lambda g: {"card.json": user_card(latent_dim=5), "decoder.onnx": g},
     r"input 'in' has shape \(batch, 3\); the card says \(batch, 5\)"),
    ("data shape", lambda g: {"card.json": user_card(data_shape=[1, 28, 28]), "decoder.onnx": g},
     r"output 'out' has shape \(batch, 64\); the card says \(batch, 1, 28, 28\)"),
    ("not a graph", lambda g: {"card.json": user_card(), "decoder.onnx": g[: len(g) // 2]}, "not a valid ONNX graph"),
    ("memory", lambda g: {"card.json": user_card(), "decoder.onnx": huge_graph()},
     r"would allocate about 1,831 MB for a batch of 8 .*the cap is 512 MB"),
    ("no format", lambda g: {"card.json": b'{"latent_dim": 3}', "decoder.onnx": g}, "format"),
    ("missing file", lambda g: {"card.json": user_card(decoder="dec.onnx"), "decoder.onnx": g},
     "decoder 'dec.onnx' is not among the files given"),
    ("extra file", lambda g: {"card.json": user_card(), "decoder.onnx": g, "notes.onnx": g},
     "files the card does not name: notes.onnx"),
    ("bad range", lambda g: {"card.json": user_card(data_range=[1, 0]), "decoder.onnx": g}, "low < high"),
])
def test_a_bad_onnx_model_is_refused_with_one_message(dec_graph, case, files, message):
    with pytest.raises(ValueError, match=message):
        onnxmodel.import_files(files(dec_graph))


def test_a_stored_graph_that_was_altered_is_refused_on_load(exported, tmp_path):
    """A card whose graphs were swapped for ones that disagree with it fails genlab.load."""
    _, m = exported["dcgan-mnist"]
    store.save(m, tmp_path / "d")
    card = json.loads((tmp_path / "d.json").read_text())
    card["config"]["data_shape"] = [1, 14, 56]  # as many pixels, another shape
    (tmp_path / "d.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="the card says"):
        load(tmp_path / "d")


def test_an_onnx_model_opens_in_every_latent_view(tmp_path, monkeypatch):
    """Exported from the 2-d VAE (with its encoder): the Latent Explorer, Interpolation, the VAE
    Manifold, Compare and Your Digit show it, each with pictures and no 'does not apply'."""
    from conftest import app_test
    assert main(["export-onnx", str(ROOT / "checkpoints" / "vae-mnist-z2"), "--out", str(tmp_path / "onnx-z2")]) == 0
    copy_checkpoint(ROOT / "checkpoints" / "vae-mnist-z2", tmp_path)
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(tmp_path))
    for page in ("views/latent_explorer.py", "views/interpolation.py", "views/manifold.py", "views/compare.py",
                 "views/digit.py"):
        at = app_test(page, model="onnx-z2", models="onnx-z2,vae-mnist-z2")
        assert at.sidebar.selectbox[0].value == "onnx-z2", page
        assert not at.error, (page, [e.value for e in at.error])
        said = " ".join(e.value for kind in ("info", "warning", "markdown", "caption") for e in at.get(kind))
        assert "does not apply" not in said and "switched" not in said.lower(), (page, said[:300])
        assert at.get("image") or page.endswith("digit.py"), page
