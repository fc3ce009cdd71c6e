"""Bringing a model: a genlab checkpoint (two files or their zip) or an ONNX model with its card
is checked in memory and saved under the user's name; every bad input gets one message and
leaves the folder exactly as it was."""
import io
import json
import zipfile

import pytest
import torch

from conftest import ROOT
from genlab import VAE, VAEConfig, checkpoint_files, export, load, save, upload


@pytest.fixture
def folder(tmp_path):
    f = tmp_path / "user-models"
    f.mkdir()
    return f


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small VAE checkpoint's files as a user would drop them, and its zip."""
    d = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    save(VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(16,), latent_dim=3)), d / "tiny",
         dataset={"name": "digits8"}, metrics={"test_neg_elbo": 30.0}, extra_tensors={"film": torch.ones(2, 3)})
    files = {p.name: p.read_bytes() for p in checkpoint_files(d / "tiny")}
    return files, export.checkpoint_zip(d / "tiny")


def state(folder):
    return sorted((p.name, p.stat().st_size) for p in folder.parent.rglob("*") if p.is_file())


def test_a_checkpoint_comes_in_whole_under_its_new_name(tiny, folder):
    files, _ = tiny
    path = upload.bring(files, "mine", folder)
    model, card = load(path)
    src = load_files(files)
    assert card["name"] == "mine" and card["brought_as"] == "tiny" and card["metrics"] == {"test_neg_elbo": 30.0}
    assert card["dataset"] == {"name": "digits8"}
    z = torch.randn(4, 3)
    with torch.no_grad():
        assert torch.equal(model.decode(z), src.decode(z))
    from genlab.store import load_extra
    assert torch.equal(load_extra(path, "film"), torch.ones(2, 3))


def load_files(files):
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        for n, b in files.items():
            (Path(d) / n).write_bytes(b)
        return load(Path(d) / "tiny")[0]


def test_its_zip_and_an_onnx_model_come_in_too(tiny, folder, tmp_path):
    _, z = tiny
    upload.bring({"tiny.zip": z}, "zipped", folder)
    from genlab.cli import main
    assert main(["export-onnx", str(ROOT / "checkpoints" / "vae-mnist-z2"), "--out", str(tmp_path / "v")]) == 0
    card = {"format": "genlab-onnx", "latent_dim": 2, "data_shape": [1, 28, 28], "data_range": [0, 1],
            "decoder": "v.decoder.onnx", "encoder": "v.encoder.onnx", "dataset": "mnist"}
    files = {"card.json": json.dumps(card).encode(), "v.decoder.onnx": (tmp_path / "v.decoder.onnx").read_bytes(),
             "v.encoder.onnx": (tmp_path / "v.encoder.onnx").read_bytes()}
    path = upload.bring(files, "onnx-vae", folder)
    model, card = load(path)
    ref = load(ROOT / "checkpoints" / "vae-mnist-z2")[0]
    z = torch.randn(16, 2)
    with torch.no_grad():
        assert (model.decode(z) - ref.decode(z)).abs().max() < 1e-4
    assert sorted(p.name.split(".")[0] for p in folder.glob("*.json")) == ["onnx-vae", "zipped"]


def zipped(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    return buf.getvalue()


def truncated_weights(files):
    return {n: (b[:-200] if n.endswith(".safetensors") else b) for n, b in files.items()}


def unknown_family(files):
    card = json.loads(files["tiny.json"])
    card["family"] = "mystery"
    return {**files, "tiny.json": json.dumps(card).encode()}


def mismatched_shapes(files):
    card = json.loads(files["tiny.json"])
    card["config"]["latent_dim"] = 4
    return {**files, "tiny.json": json.dumps(card).encode()}


CASES = [
    ("truncated weights", truncated_weights, "truncated"),
    ("truncated zip", lambda f: {"m.zip": zipped(f)[:-300]}, "not a readable zip|truncated or damaged"),
    ("parent path in zip", lambda f: {"m.zip": zipped({"../" + n: b for n, b in f.items()})}, "holds paths"),
    ("nested path in zip", lambda f: {"m.zip": zipped({"inner/" + n: b for n, b in f.items()})}, "holds paths"),
    ("extra file in zip", lambda f: {"m.zip": zipped({**f, "notes.txt": b"hi"})}, "two files"),
    ("zip and loose files", lambda f: {"m.zip": zipped(f), **f}, "not both"),
    ("unknown family", unknown_family, "unknown model family 'mystery'"),
    ("shapes", mismatched_shapes, "config expects"),
    ("a pickle as weights", lambda f: {"tiny.json": f["tiny.json"], "w.safetensors": b"\x80\x04" + b"\0" * 64},
     "not a safetensors file|never unpickles"),
    ("card only", lambda f: {"tiny.json": f["tiny.json"]}, "not a genlab checkpoint|card"),
    ("nothing", lambda f: {}, "No file was given"),
]


@pytest.mark.parametrize("case,make,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_nothing_changes_on_disk(tiny, folder, case, make, message):
    files, _ = tiny
    before = state(folder)
    with pytest.raises(upload.UploadError, match=message):
        upload.bring(make(files), "fresh", folder)
    assert state(folder) == before


def test_oversized_files_and_bad_or_taken_names_are_refused(tiny, folder, monkeypatch):
    files, z = tiny
    upload.bring(files, "taken", folder)
    before = state(folder)
    with pytest.raises(upload.UploadError, match="exists already"):
        upload.bring(files, "taken", folder)
    with pytest.raises(upload.UploadError, match="exists already"):
        upload.bring(files, "shipped", folder, taken=lambda n: n == "shipped")
    for bad in ("../up", "a b", "", ".hidden", "x" * 65):
        with pytest.raises(upload.UploadError, match="cannot be used"):
            upload.bring(files, bad, folder)
    monkeypatch.setattr(upload, "MAX_BYTES", 1000)
    with pytest.raises(upload.UploadError, match="the cap is"):
        upload.bring(files, "big", folder)
    monkeypatch.setattr(upload, "MAX_BYTES", len(z) + 10)  # the (deflated) zip fits, what it unpacks to does not
    assert sum(map(len, files.values())) > len(z) + 10
    with pytest.raises(upload.UploadError, match="unpacks to"):
        upload.bring({"m.zip": z}, "bomb", folder)
    assert state(folder) == before


def test_two_writers_of_one_name_never_replace_each_other(tiny, folder):
    """save(..., overwrite=False) commits with a link, which fails where the card exists."""
    from genlab import CheckpointError
    files, _ = tiny
    upload.bring(files, "first", folder)
    model = load(folder / "first")[0]
    with pytest.raises(CheckpointError, match="taken"):
        save(model, folder / "first", overwrite=False)
    assert sorted(p.name.split(".")[0] for p in folder.iterdir()) == ["first", "first"]
