"""The energy-based model and Langevin dynamics: the textbook sampler against a known Gaussian,
the replay buffer's restarts, the energy's input gradient against finite differences, a
training step's signs, and the checkpoint round trip."""
import math

import pytest
import torch

from genlab import store
from genlab.models import EBM, EBMConfig, sample
from genlab.samplers import langevin_step

SMALL = EBMConfig(data_shape=(1, 8, 8), channels=(8, 16), hidden=16, steps=5, buffer_size=64, sample_steps=10)


def test_textbook_langevin_samples_a_known_gaussian():
    """E(x) = (x - mu)^T S^-1 (x - mu) / 2: with sigma = sqrt(2 eps) the chains' law is N(mu, S)
    up to a bias of order eps."""
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    prec = torch.linalg.inv(cov)

    def energy(x):
        d = x - mu
        return 0.5 * ((d @ prec) * d).sum(1)

    g = torch.Generator().manual_seed(0)
    x = torch.zeros(4000, 2, dtype=torch.float64)
    for _ in range(3000):
        x, _ = langevin_step(energy, x, 0.005, 0.0, g, bounds=None, textbook=True)
    assert torch.allclose(x.mean(0), mu, atol=0.05)
    emp = torch.cov(x.T)
    assert torch.allclose(emp, cov, atol=0.05), emp


def test_small_noise_langevin_is_not_the_textbook_sampler():
    """The practical setting (large step, tiny noise) collapses toward the mode: far too little spread."""
    energy = lambda x: 0.5 * x.pow(2).sum(1)  # N(0, I)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 2, generator=g, dtype=torch.float64)
    for _ in range(200):
        x, _ = langevin_step(energy, x, 0.1, 0.005, g, bounds=None)
    assert x.std() < 0.1  # the textbook sampler would keep std 1


def test_buffer_restarts_the_stated_fraction_from_noise():
    m = EBM(EBMConfig(**{**SMALL.__dict__, "reinit": 0.25, "buffer_size": 50}))
    g = torch.Generator().manual_seed(0)
    m.draw_from_buffer(1, g)  # creates the buffer
    m.buffer.fill_(0.5)
    x, idx = m.draw_from_buffer(40, g)
    fresh = (x != 0.5).flatten(1).any(1)
    assert fresh.sum() == 10 and fresh[:10].all()  # round(0.25 * 40) restarted, the rest from the buffer
    assert ((idx >= 0) & (idx < 50)).all()


def test_energy_gradient_matches_finite_differences():
    torch.manual_seed(0)
    m = EBM(SMALL).double()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(m.energy(x).sum(), x)
    h = 1e-6
    for b, i, j in ((0, 3, 4), (1, 0, 0), (1, 7, 2)):
        e = torch.zeros_like(x)
        e[b, 0, i, j] = h
        with torch.no_grad():
            fd = (m.energy(x + e)[b] - m.energy(x - e)[b]) / (2 * h)
        assert g[b, 0, i, j].item() == pytest.approx(fd.item(), rel=1e-5, abs=1e-9)


def test_a_training_step_lowers_data_energy_relative_to_samples():
    torch.manual_seed(0)
    m = EBM(SMALL)
    (opt,) = m.configure_optimizers(1e-3)
    data = torch.zeros(32, 1, 8, 8)
    data[:, :, 2:6, 2:6] = 1.0  # one bright square
    g = torch.Generator().manual_seed(0)
    gaps = [float(m.train_step(data, [opt], g)["cd"]) for _ in range(30)]
    assert sum(gaps[-5:]) / 5 < 0 and all(math.isfinite(v) for v in gaps)
    assert m.buffer.shape == (64, 1, 8, 8) and m.buffer.min() >= 0 and m.buffer.max() <= 1


def test_samples_come_from_fresh_noise_chains_of_the_stated_length():
    torch.manual_seed(0)
    m = EBM(SMALL)
    assert m.capabilities.sampler == "langevin" and m.capabilities.chain_length == 10
    a = sample(m, 6, torch.Generator().manual_seed(3))
    b = sample(m, 6, torch.Generator().manual_seed(3))
    assert a.shape == (6, 1, 8, 8) and torch.equal(a, b) and m.buffer is None  # the buffer is not touched
    frames, energies = m.chain(torch.rand(3, 1, 8, 8), 20, 5, torch.Generator().manual_seed(0))
    assert frames.shape == (5, 3, 1, 8, 8) and energies.shape == (5, 3)


def test_clamped_pixels_stay_put_in_a_chain():
    torch.manual_seed(0)
    m = EBM(SMALL)
    x0 = torch.rand(2, 1, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1
    frames, _ = m.chain(x0, 10, 10, torch.Generator().manual_seed(0), clamp=mask)
    assert torch.equal(frames[-1][..., :4, :], x0[..., :4, :])
    assert not torch.equal(frames[-1][..., 4:, :], x0[..., 4:, :])


def test_checkpoint_round_trip_keeps_energy_and_buffer(tmp_path):
    torch.manual_seed(0)
    m = EBM(SMALL)
    (opt,) = m.configure_optimizers(1e-3)
    m.train_step(torch.rand(8, 1, 8, 8), [opt], torch.Generator().manual_seed(0))
    store.save(m, tmp_path / "ebm", extra_tensors=m.training_state())
    m2, card = store.load(tmp_path / "ebm")
    x = torch.rand(4, 1, 8, 8)
    assert torch.allclose(m.energy(x), m2.energy(x))
    buf = store.load_extra(tmp_path / "ebm", "buffer")
    assert buf.dtype == torch.uint8 and buf.shape == (64, 1, 8, 8)
    assert card["family"] == "ebm"
