"""Meaningful directions: principal directions against numpy's SVD, GANSpace's regression, an
attribute vector against a hand computation, moves that are exactly z + t u, the classifier's
map picture, and the controls in the Latent Explorer and the Manifold (AppTest)."""
import numpy as np
import pytest
import torch

from conftest import app_test
from genlab import directions, viz


def codes(n=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(4, 4, generator=g)
    return torch.randn(n, 4, generator=g) @ a + torch.tensor([1.0, -2.0, 0.5, 3.0])


@pytest.mark.parametrize("shape", ["tall", "wide"])
def test_principal_directions_are_numpys_svd(shape):
    """Both ways the Gram matrix is taken: more rows than columns (codes), and fewer (a GAN's
    2,000 samples of 12,544 features: here 30 rows of 50 columns of decaying scale)."""
    if shape == "tall":
        x = codes()
    else:
        g = torch.Generator().manual_seed(3)
        x = torch.randn(30, 50, generator=g) * torch.logspace(0, -1, 50) + torch.randn(50, generator=g)
    axes, explained, mean = directions.principal(x, 3)
    xn = x.double().numpy()
    _, s, vt = np.linalg.svd(xn - xn.mean(0), full_matrices=False)
    for got, want in zip(axes.double().numpy(), vt[:3]):
        assert min(np.abs(got - want).max(), np.abs(got + want).max()) < 1e-5  # the same axis, either sign
        assert np.abs(got).argmax() == np.argmax(got)  # signs fixed: the largest coordinate is positive
    assert np.allclose(explained.numpy(), (s ** 2 / (s ** 2).sum())[:3], atol=1e-6)
    assert np.allclose(mean.numpy(), xn.mean(0), atol=1e-5)
    if shape == "wide":
        return
    d = directions.from_codes(x, 3)
    proj = (x - mean) @ d.vectors.T
    assert torch.allclose(d.spread, proj.std(0))
    assert torch.allclose(d.vectors.norm(dim=1), torch.ones(3), atol=1e-6)


def test_ganspace_on_the_codes_themselves_finds_their_principal_axes():
    """With features = z, PCA on the features regressed back onto z is PCA on z."""
    z = codes(800, seed=1)
    g = directions.ganspace(z, z, k=2)
    axes, _, _ = directions.principal(z, 2)
    for got, want in zip(g.vectors, axes):
        assert min((got - want).abs().max(), (got + want).abs().max()) < 1e-4
    # a linear map of z as the features: the first direction is z's direction of largest feature variance
    a = torch.diag(torch.tensor([5.0, 1.0, 1.0, 1.0]))
    g = directions.ganspace(torch.randn(2000, 4, generator=torch.Generator().manual_seed(2)),
                            torch.randn(2000, 4, generator=torch.Generator().manual_seed(2)) @ a, k=1)
    assert g.vectors[0].abs().argmax() == 0 and g.vectors[0].abs()[0] > 0.99


def test_an_attribute_vector_is_the_difference_of_means_by_hand():
    c = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 1.0], [0.0, 3.0], [-2.0, 0.0]])
    y = torch.tensor([3, 3, 5, 5, 1])
    # towards a 3 from a 5: mean of 3s (2, 1) minus mean of 5s (0, 2) = (2, -1), normalised
    want = torch.tensor([2.0, -1.0]) / 5 ** 0.5
    assert torch.allclose(directions.attribute(c, y, 3, 5), want)
    # towards a 3 from everything else: (2, 1) - mean((0,1),(0,3),(-2,0)) = (2, 1) - (-2/3, 4/3) = (8/3, -1/3)
    want = torch.tensor([8 / 3, -1 / 3])
    assert torch.allclose(directions.attribute(c, y, 3), want / want.norm())
    with pytest.raises(ValueError, match="no examples labelled 7"):
        directions.attribute(c, y, 7)


def test_moving_by_t_adds_exactly_t_times_the_unit_direction():
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(3))
    u = directions.from_codes(codes(), 1).vectors[0]
    for t in (-2.5, 0.0, 1.3):
        moved = directions.move(z, u, t)
        assert torch.equal(moved, z + t * u)
        assert torch.allclose((moved - z).norm(dim=1), torch.full((6,), abs(t)), atol=1e-5)
    s = directions.strip(z[:2], u, torch.tensor([-1.0, 0.0, 1.0]))
    assert s.shape == (6, 4) and torch.equal(s[1], z[0]) and torch.allclose(s[5], z[1] + u)


def test_a_generator_without_an_encoder_gets_ganspace_directions():
    from genlab import load
    from conftest import ROOT
    gan, _ = load(ROOT / "checkpoints" / "gan-mlp-mnist")
    found, z = directions.for_model(gan, None, n=600, seed=0, k=5)
    assert z.shape == (600, 100) and found.vectors.shape == (5, 100) and found.source.startswith("features")
    assert (found.explained[:-1] >= found.explained[1:]).all() and 0 < float(found.explained.sum()) <= 1


def test_the_classifier_map_colours_labels_draws_boundaries_and_rings_the_least_sure():
    labels = np.zeros((10, 10), dtype=np.int64)
    labels[:, 5:] = 3
    conf = np.full((10, 10), 0.9, dtype=np.float32)
    conf[2, 2] = 0.1
    img = viz.classifier_map(labels, conf, least=1, scale=4)
    assert img.shape == (40, 40, 3) and img.dtype == np.uint8
    assert (img[:, 20] == 255).all()  # the boundary between label 0 and label 3, in white
    blue = np.array([0x1F, 0x77, 0xB4]) * (0.2 + 0.8 * 0.9)
    assert np.abs(img[30, 5].astype(float) - blue).max() <= 1  # label 0's colour at its confidence
    assert (img[8 - 1, 8:12] == 0).all()  # the ring around the least sure decode (row 2, column 2)
    assert img[9, 9].sum() < img[30, 5].sum()  # darker where the classifier is less sure


def test_the_latent_explorer_moves_codes_along_a_chosen_direction():
    off = app_test("views/latent_explorer.py", model="vae-mnist-z20")
    assert not [s for s in off.selectbox if s.key == "dir0"]  # off until asked for
    at = app_test("views/latent_explorer.py", model="vae-mnist-z20", dirs="1")
    assert any(s.value == "Meaningful directions" for s in at.subheader)
    before = [i.proto.imgs[0].url for i in at.get("image")]
    at.selectbox(key="dir0").set_value("towards 3").run()
    at.slider(key="t0").set_value(2.0).run()
    assert not at.exception and not at.error
    after = [i.proto.imgs[0].url for i in at.get("image")]
    assert after != before
    assert at.query_params["dir0"] == "towards 3" and at.query_params["t0"] == "2.0"
    captions = " ".join(c.value for c in at.caption)
    assert "codes of the test set" in captions


def test_a_gans_directions_come_from_its_samples():
    at = app_test("views/latent_explorer.py", model="gan-mlp-mnist", dirs="1")
    assert not at.exception and not at.error
    assert "GANSpace" in " ".join(c.value for c in at.caption)


def test_the_manifold_draws_the_classifiers_map():
    off = app_test("views/manifold.py", model="vae-mnist-z2")
    assert not any("least sure" in (i.proto.imgs[0].caption or "") for i in off.get("image"))  # off until asked
    at = app_test("views/manifold.py", model="vae-mnist-z2", cmap="1")
    assert not at.exception and not at.error
    assert any(s.value == "The classifier's map" for s in at.subheader)
    assert any("least sure decodes" in (c.value or "") for c in at.caption) or \
        any("least sure" in (i.proto.imgs[0].caption or "") for i in at.get("image"))
