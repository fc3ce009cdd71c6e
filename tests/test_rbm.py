"""Restricted Boltzmann machines against independent computations: the free energy and the
Gibbs conditionals against enumeration of the joint, log Z exactly and by AIS, PCD's persistent
chains, the CD step's effect on the data's free energy, and checkpoints that keep the chains."""
import itertools
import math

import pytest
import torch

from conftest import chain_cases

from genlab import load, recipes, store
from genlab.models.rbm import RBM, RBMConfig


def tiny(v=6, h=4, seed=0) -> RBM:
    torch.manual_seed(seed)
    m = RBM(RBMConfig(data_shape=(v,), hidden=h))
    with torch.no_grad():
        m.W.copy_(torch.randn(v, h))
        m.b.copy_(torch.randn(v) * 0.5)
        m.c.copy_(torch.randn(h) * 0.5)
    return m.double()


def states(n):
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=n)), dtype=torch.float64)


def energy(m, v, h):
    """E(v, h) = -v^T W h - b^T v - c^T h for every pair of rows: (Nv, Nh)."""
    return -(v @ m.W @ h.T) - (v @ m.b)[:, None] - (h @ m.c)[None, :]


def test_free_energy_is_minus_log_sum_over_hidden_states():
    m = tiny()
    vs, hs = states(6), states(4)
    brute = -torch.logsumexp(-energy(m, vs, hs), dim=1)
    assert torch.allclose(m.free_energy(vs), brute, atol=1e-10)


def test_gibbs_conditionals_match_the_enumerated_joint():
    m = tiny()
    vs, hs = states(6), states(4)
    joint = torch.softmax(-energy(m, vs, hs).flatten(), 0).view(len(vs), len(hs))  # p(v, h)
    p_h_given_v = joint / joint.sum(1, keepdim=True)
    assert torch.allclose(m.p_h(vs), p_h_given_v @ hs, atol=1e-10)  # E[h | v] = p(h = 1 | v)
    p_v_given_h = joint / joint.sum(0, keepdim=True)
    assert torch.allclose(m.p_v(hs), p_v_given_h.T @ vs, atol=1e-10)


def test_exact_log_z_enumerating_hidden_states_equals_the_sum_over_visible_states():
    m = tiny()
    brute = torch.logsumexp(-m.free_energy(states(6)), 0).item()
    assert m.log_z_exact() == pytest.approx(brute, abs=1e-9)
    with pytest.raises(ValueError, match="2\\^H"):
        RBM(RBMConfig(hidden=21)).log_z_exact()


@pytest.fixture(scope="module")
def mnist_rbm():
    """A 12-hidden-unit RBM trained briefly on MNIST: not random weights."""
    run = recipes.Run(recipes.make_recipe("rbm", hidden=12, epochs=2, limit=5000, momentum=0.9, seed=0))
    run.fit()
    return run.model.eval(), run.train_x


def test_ais_log_z_is_within_its_spread_of_the_exact_value(mnist_rbm):
    m, x = mnist_rbm
    exact = m.log_z_exact()
    r = m.ais_log_z(x.mean(0), chains=100, betas=2000, generator=torch.Generator().manual_seed(0))
    assert r["stderr"] < 0.05
    assert abs(r["log_z"] - exact) <= 3 * r["stderr"] + 0.02, (r, exact)
    recs = {rec.method: rec for rec in m.likelihoods(x[:500], k=100, betas=2000, train_mean=x.mean(0))}
    assert recs["ais"].value == pytest.approx(recs["exact"].value, abs=0.1)
    assert recs["ais"].settings["chains"] == 100 and recs["ais"].settings["betas"] == 2000


def test_pcd_keeps_its_chains_across_steps(digits):
    train, _ = digits
    m = RBM(RBMConfig(data_shape=(1, 8, 8), hidden=16, method="pcd", chains=32))
    opt = m.configure_optimizers(0.01)
    g = torch.Generator().manual_seed(0)
    m.train_step(train.x[:64], opt, g)
    first = m.chains.clone()
    seen = []
    real = m.gibbs
    m.gibbs = lambda v, generator=None, steps=1: (seen.append(v.clone()), real(v, generator, steps))[1]
    m.train_step(train.x[64:128], opt, g)
    assert torch.equal(seen[0], first)  # the second negative phase started where the first ended
    assert not torch.equal(m.chains, first) and m.chains.shape == (32, 64)
    assert "chains" not in m.state_dict() and set(m.training_state()) == {"chains"}


def test_a_cd_step_lowers_the_free_energy_of_the_data(digits):
    train, _ = digits
    torch.manual_seed(0)
    m = RBM(RBMConfig(data_shape=(1, 8, 8), hidden=16, method="cd", momentum=0.0, weight_decay=0.0))
    x = torch.bernoulli(train.x[:200], generator=torch.Generator().manual_seed(1))
    before = m.free_energy(x).mean()
    m.train_step(x, m.configure_optimizers(0.05), torch.Generator().manual_seed(2))
    assert m.free_energy(x).mean() < before - 0.1


def test_the_centred_update_is_the_centred_gradient_in_the_plain_parametrisation(digits):
    """With offsets mu, lam the energy is -(v-mu)^T W (h-lam) - b_c^T (v-mu) - c_c^T (h-lam);
    its plain biases are b = b_c - W lam, c = c_c - W^T mu. One centred SGD step on (W, b_c, c_c),
    mapped to plain parameters, must equal the step the model took."""
    train, _ = digits
    torch.manual_seed(0)
    m = RBM(RBMConfig(data_shape=(1, 8, 8), hidden=8, method="cd", centered=True, momentum=0.0,
                      weight_decay=0.0, offset_rate=1e-9))
    with torch.no_grad():
        m.mu.copy_(torch.rand(64))
        m.lam.copy_(torch.rand(8))
    x = torch.bernoulli(train.x[:100], generator=torch.Generator().manual_seed(1))
    W0, b0, c0, mu, lam = m.W.clone(), m.b.clone(), m.c.clone(), m.mu.clone(), m.lam.clone()
    bc0, cc0 = b0 + W0 @ lam, c0 + W0.T @ mu  # the centred parameters of the same model
    g = torch.Generator().manual_seed(2)
    vk = m.gibbs(x.flatten(1), torch.Generator().manual_seed(2), 1)[0]  # the negatives the step will draw
    lr = 0.1
    m.train_step(x, m.configure_optimizers(lr), g)
    v0 = x.flatten(1)
    ph0, phk = torch.sigmoid(v0 @ W0 + c0), torch.sigmoid(vk @ W0 + c0)
    dW = ((v0 - mu).T @ (ph0 - lam) - (vk - mu).T @ (phk - lam)) / len(v0)
    W1 = W0 + lr * dW
    bc1 = bc0 + lr * (v0.mean(0) - vk.mean(0))
    cc1 = cc0 + lr * (ph0.mean(0) - phk.mean(0))
    assert torch.allclose(m.W, W1, atol=1e-5)
    assert torch.allclose(m.b, bc1 - W1 @ lam, atol=1e-5) and torch.allclose(m.c, cc1 - W1.T @ mu, atol=1e-5)


def test_clamped_pixels_stay_and_the_rest_is_filled(digits):
    train, _ = digits
    m = RBM(RBMConfig(data_shape=(1, 8, 8), hidden=16))
    x = torch.bernoulli(train.x[:4], generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 8, 8)
    mask[:, :4] = 1  # the top half is given
    frames, energies = m.chain(x, steps=10, every=5, generator=torch.Generator().manual_seed(1), clamp=mask)
    assert frames.shape == (3, 4, 1, 8, 8) and energies.shape == (3, 4)
    assert torch.equal(frames[-1][:, :, :4], x[:, :, :4])
    assert not torch.equal(frames[-1][:, :, 4:], x[:, :, 4:])


def test_checkpoint_round_trip_keeps_the_weights_and_the_persistent_chains(tmp_path):
    run = recipes.Run(recipes.make_recipe("rbm", data="digits8", hidden=16, chains=10, epochs=1, max_steps=5))
    h = run.fit()
    run.save(tmp_path / "r", h, {}, [])
    back, card = load(tmp_path / "r")
    x = run.train_x[:20]
    assert torch.equal(back.free_energy(x), run.model.free_energy(x))
    assert torch.equal(store.load_extra(tmp_path / "r", "chains"), run.model.chains)
    assert card["extra_tensors"]["chains"] == [10, 64]


def test_sampling_follows_the_seed_and_runs_the_stated_chain():
    m = RBM(RBMConfig(data_shape=(1, 8, 8), hidden=16, sample_steps=30))
    assert m.capabilities.sampler == "gibbs" and m.capabilities.chain_length == 30
    a = m.sample(5, torch.Generator().manual_seed(0))
    assert torch.equal(a, m.sample(5, torch.Generator().manual_seed(0))) and a.shape == (5, 1, 8, 8)
    assert math.isfinite(a.sum().item()) and 0 <= a.min() and a.max() <= 1


@pytest.mark.parametrize("block", [1 << 20, 100])
def test_the_chain_in_blocks_gives_the_eager_sweeps_numbers(digits, monkeypatch, block):
    """The Gibbs chain on the CPU runs as one loop (rbm._sweeps) per block of sweeps from uniforms
    drawn ahead: bit for bit what the eager sweeps (torch.bernoulli) give from the same generator.
    A server runs the same loop compiled (tests/test_serving.py)."""
    from genlab.models import rbm
    from genlab.samplers import run_chain
    monkeypatch.setattr(rbm, "CHAIN_BLOCK", block)  # 100 floats: one sweep a block, so blocks join
    train, _ = digits
    m = RBM(RBMConfig(data_shape=(1, 8, 8), hidden=16))
    x, cases = chain_cases(train.x)
    for clamp, steps, every in cases:
        with torch.no_grad():
            frames, energies = m.chain(x, steps, every, torch.Generator().manual_seed(3), clamp=clamp)
            g = torch.Generator().manual_seed(3)
            want_f, want_e = run_chain(lambda v: m.gibbs(v, g), m.free_energy, x, steps, every, clamp)
        assert torch.equal(frames, want_f) and torch.equal(energies, want_e), (clamp is not None, steps, every)
    assert m.sweeps is rbm._sweeps  # the plain function: nothing compiled in the model file
    # with gradients wanted, the chain is the eager loop itself (its frames carry the graph)
    a = m.chain(x, 5, 1, torch.Generator().manual_seed(4))[0]
    with torch.no_grad():
        b = m.chain(x, 5, 1, torch.Generator().manual_seed(4))[0]
    assert a.requires_grad and not b.requires_grad and torch.equal(a, b)
