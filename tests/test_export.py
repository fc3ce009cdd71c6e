"""What a person downloads: a figure's data as CSV, an enlarged PNG, a checkpoint zipped."""
import csv
import io
import zipfile

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image

from genlab import export, store
from genlab.models import VAE, VAEConfig


def test_a_figure_becomes_one_csv_row_per_point_and_per_heatmap_cell():
    fig = go.Figure([go.Scatter(x=[0, 1, 2], y=[0.5, 0.25, 0.125], name="loss"),
                     go.Bar(x=["a", "b"], y=[3, 4], name="counts")])
    rows = list(csv.reader(io.StringIO(export.figure_csv(fig))))
    assert rows[0] == ["trace", "x", "y"]
    assert rows[1:] == [["loss", "0", "0.5"], ["loss", "1", "0.25"], ["loss", "2", "0.125"],
                        ["counts", "a", "3"], ["counts", "b", "4"]]
    heat = go.Figure(go.Heatmap(z=[[1, 2, 3], [4, 5, 6]], x=["f1", "f2", "f3"], y=["layer 1", "layer 2"], name="masks"))
    rows = list(csv.reader(io.StringIO(export.figure_csv(heat))))
    assert rows[0] == ["trace", "x", "y", "z"] and len(rows) == 7
    assert ["masks", "f3", "layer 2", "6"] in rows and ["masks", "f1", "layer 1", "1"] in rows


def test_a_histogram_keeps_its_raw_values():
    fig = go.Figure(go.Histogram(x=np.array([1.5, 2.5, 2.5]), name="test digits"))
    rows = list(csv.reader(io.StringIO(export.figure_csv(fig))))
    assert [r[1] for r in rows[1:]] == ["1.5", "2.5", "2.5"]


def test_the_enlarged_png_repeats_whole_pixels():
    arr = np.array([[0, 255], [128, 64]], dtype=np.uint8)
    img = np.asarray(Image.open(io.BytesIO(export.upscaled_png(arr, target=8))))
    assert img.shape == (8, 8) and (img[:4, :4] == 0).all() and (img[4:, 4:] == 64).all() and (img[:4, 4:] == 255).all()
    big = np.zeros((2000, 10), dtype=np.uint8)  # never shrunk
    assert np.asarray(Image.open(io.BytesIO(export.upscaled_png(big)))).shape == (2000, 10)


def test_a_checkpoint_zip_holds_both_files_and_loads_back(tmp_path):
    torch.manual_seed(0)
    model = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(8,), latent_dim=2))
    store.save(model, tmp_path / "tiny", dataset={"name": "digits8"})
    blob = export.checkpoint_zip(tmp_path / "tiny")
    out = tmp_path / "unzipped"
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        assert sorted(z.namelist()) == sorted(["tiny.json", store.checkpoint_files(tmp_path / "tiny")[0].name])
        z.extractall(out)
    loaded, card = store.load(out / "tiny")
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_a_run_in_memory_zips_without_touching_the_checkpoints_folder(tmp_path):
    model = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(8,), latent_dim=2))
    blob = export.run_zip("in-memory", lambda p: store.save(model, p, dataset={"name": "digits8"}))
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        names = sorted(z.namelist())
        assert len(names) == 2 and names[0].startswith("in-memory.") and names[0].endswith(".safetensors")
        assert names[1] == "in-memory.json"
    try:
        export.run_zip("../escape", lambda p: None)
    except ValueError as e:
        assert "name" in str(e).lower() or "letters" in str(e).lower()
    else:
        raise AssertionError("a bad name was accepted")
