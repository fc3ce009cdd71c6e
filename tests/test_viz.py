"""Pictures: the pure-torch grid against a hand layout (and torchvision where it imports), PNG, GIF."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from genlab import viz
from genlab._compat import torchvision_available


def test_grid_layout_by_hand():
    imgs = torch.stack([torch.full((1, 2, 3), float(i)) for i in range(5)])  # 5 images, 2x3 each
    g = viz.make_grid_torch(imgs, nrow=3, padding=1, pad_value=-1.0)
    assert g.shape == (3, 2 * (2 + 1) + 1, 3 * (3 + 1) + 1)
    # image k sits at row k // 3, column k % 3, offset by the padding
    for k in range(5):
        r, c = divmod(k, 3)
        tile = g[:, 1 + r * 3: 1 + r * 3 + 2, 1 + c * 4: 1 + c * 4 + 3]
        assert (tile == k).all()
    assert (g[:, 4:6, 9:12] == -1).all()  # the missing sixth tile is padding
    assert (g[:, 0, :] == -1).all() and (g[:, :, 0] == -1).all()


@pytest.mark.skipif(not torchvision_available(), reason="torchvision does not import here (CPU torch build)")
def test_grid_matches_torchvision():
    from torchvision.utils import make_grid
    imgs = torch.rand(7, 1, 5, 4)
    assert torch.equal(viz.make_grid_torch(imgs, 3, 2, 0.5), make_grid(imgs, nrow=3, padding=2, pad_value=0.5))


def test_grid_array_is_uint8_grey():
    arr = viz.grid_array(torch.rand(4, 1, 8, 8), nrow=2, padding=2)
    assert arr.dtype == np.uint8 and arr.shape == (2 * 10 + 2, 2 * 10 + 2)
    assert viz.grid_array(torch.rand(4, 1, 8, 8), nrow=2, upscale=3).shape == (66, 66)


def test_png_and_gif_decode():
    frames = [np.full((10, 10), v, np.uint8) for v in (0, 128, 255)]
    png = Image.open(io.BytesIO(viz.png_bytes(frames[1])))
    assert png.format == "PNG" and np.array(png)[0, 0] == 128
    gif = Image.open(io.BytesIO(viz.gif_bytes(frames)))
    assert gif.format == "GIF" and gif.n_frames == 4  # forward, then back: 0 1 2 1
    with pytest.raises(ValueError):
        viz.gif_bytes([])


def test_figures_build_from_a_card_history():
    hist = {"epochs": [{"epoch": 1, "train": {"neg_elbo": 3.0, "recon": 2.0, "kl": 1.0},
                        "val": {"neg_elbo": 3.5, "recon": 2.4, "kl": 1.1}}],
            "steps": {"step": [1, 2], "loss": [3.0, 2.0]}}
    fig = viz.history_figure(hist)
    assert len(fig.data) == 6
    assert len(viz.steps_figure(hist).data) == 1
    losses, outputs = viz.gan_figures({"step": [1, 2], "d_loss": [1.0, 0.9], "g_loss": [0.7, 0.8],
                                       "d_real": [0.6, 0.6], "d_fake": [0.4, 0.4]})
    assert [t.name for t in losses.data] == ["D loss", "G loss"] and len(outputs.data) == 2
    modes, div = viz.toy_measures_figures([{"step": 50, "modes": 3, "high_quality": 0.5, "kl": 2.0, "js": 0.3}])
    assert list(modes.data[0].y) == [3] and list(div.data[1].y) == [0.3]
    assert list(modes.data[1].y) == [0.5] and modes.data[1].yaxis == "y2"  # the fraction, unscaled, on its own axis
    bars = viz.kl_per_dim_figure([0.5, 0.001])
    assert list(bars.data[0].marker.color) == ["#1f77b4", "#bbbbbb"]
    sc = viz.latent_scatter(np.random.rand(30, 2), np.arange(30) % 10)
    ids = sorted(int(i) for tr in sc.data for i in tr.customdata)
    assert ids == list(range(30))  # every point carries its row id, whatever trace it is in
