"""The VAE family: its maths against torch.distributions and quadrature, and its training."""
import math

import numpy as np

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from genlab import Divergence, TrainConfig, VAE, VAEConfig, fit, metrics
from genlab.models.vae import gaussian_kl


class TestObjective:
    def test_closed_form_kl_matches_torch_distributions(self):
        g = torch.Generator().manual_seed(0)
        mu, logvar = torch.randn(16, 5, generator=g) * 2, torch.randn(16, 5, generator=g)
        ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros(5), torch.ones(5)))
        assert torch.allclose(gaussian_kl(mu, logvar), ref, atol=1e-5)

    def test_bernoulli_likelihood_matches_torch_distributions(self):
        m = VAE(VAEConfig(image_shape=(1, 4, 4), hidden=(8,), latent_dim=2))
        logits = torch.randn(3, 16)
        x = torch.bernoulli(torch.full((3, 1, 4, 4), 0.5))
        ref = Bernoulli(logits=logits).log_prob(x.flatten(1)).sum(1)
        assert torch.allclose(m.log_px_given_z(logits, x), ref, atol=1e-5)

    def test_gaussian_likelihood_matches_torch_distributions(self):
        m = VAE(VAEConfig(image_shape=(1, 4, 4), hidden=(8,), latent_dim=2, likelihood="gaussian", sigma=0.3))
        logits, x = torch.randn(3, 16), torch.rand(3, 1, 4, 4)
        ref = Normal(torch.sigmoid(logits), 0.3).log_prob(x.flatten(1)).sum(1)
        assert torch.allclose(m.log_px_given_z(logits, x), ref, atol=1e-4)

    def test_terms_add_up_and_beta_weights_the_kl(self):
        x = torch.rand(32, 1, 8, 8)
        for beta in (0.0, 1.0, 4.0):
            m = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(16,), latent_dim=3, beta=beta))
            t = m.loss_terms(x, torch.Generator().manual_seed(0))
            assert torch.allclose(t["neg_elbo"], t["recon"] + t["kl"])
            assert torch.allclose(t["loss"], t["recon"] + beta * t["kl"])
            assert torch.allclose(t["kl_dim"].sum(), t["kl"], atol=1e-5)

    def test_autoencoder_has_no_kl_and_a_fitted_prior(self, digits):
        train, _ = digits
        ae = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(32,), latent_dim=2, autoencoder=True))
        assert set(ae.loss_terms(train.x[:10])) == {"loss", "recon"}
        fit(ae, train.x, TrainConfig(epochs=2, batch_size=100, binarize=True))
        ae.fit_latent_prior(train.x)
        with torch.no_grad():
            codes = ae.encode(train.x)
        assert torch.allclose(ae.latent_loc, codes.mean(0), atol=1e-4)
        assert torch.allclose(ae.latent_scale, codes.std(0), atol=1e-4)

    def test_decode_gives_images_in_unit_range(self, tiny_vae):
        with torch.no_grad():
            imgs = tiny_vae.decode(tiny_vae.prior_sample(10, torch.Generator().manual_seed(0)) * 10)
        assert imgs.shape == (10, 1, 8, 8) and imgs.min() >= 0 and imgs.max() <= 1

    def test_bad_configs_are_refused(self):
        with pytest.raises(ValueError, match="likelihood"):
            VAEConfig(likelihood="poisson")
        with pytest.raises(ValueError):
            VAEConfig(latent_dim=0)


class TestTraining:
    def test_precision_is_fp32_or_bf16(self, digits):
        with pytest.raises(ValueError, match="precision"):
            TrainConfig(precision="fp8")
        train, _ = digits
        torch.manual_seed(0)
        m = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(32,), latent_dim=2))
        h = fit(m, train.x, TrainConfig(epochs=2, batch_size=64, precision="bf16", binarize=True))
        assert all(np.isfinite(h.steps["loss"])) and np.mean(h.steps["loss"][-5:]) < np.mean(h.steps["loss"][:5])

    def test_a_few_steps_lower_the_loss(self, digits):
        train, _ = digits
        m = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(64, 32), latent_dim=2))
        h = fit(m, train.x, TrainConfig(epochs=4, batch_size=64, check_every=10, binarize=True))
        first, last = h.epochs[0]["train"]["neg_elbo"], h.epochs[-1]["train"]["neg_elbo"]
        assert last < first - 3.0
        assert h.n_steps == 4 * math.ceil(1500 / 64)

    def test_same_seed_same_run(self, digits):
        train, _ = digits
        runs = []
        for _ in range(2):
            torch.manual_seed(123)  # the init; the loop's own randomness comes from cfg.seed
            m = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(16,), latent_dim=2))
            runs.append(fit(m, train.x, TrainConfig(epochs=1, batch_size=100, seed=7, binarize=True)).steps["loss"])
        assert runs[0] == runs[1]

    def test_validation_history_per_epoch(self, digits):
        train, test = digits
        m = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(16,), latent_dim=3))
        h = fit(m, train.x, TrainConfig(epochs=2, batch_size=100, binarize=True), val_x=test.x)
        for e in h.epochs:
            assert set(e["val"]) >= {"neg_elbo", "recon", "kl", "kl_dim"} and len(e["val"]["kl_dim"]) == 3
        d = h.to_dict(max_points=5)
        assert len(d["steps"]["loss"]) <= 5 and d["steps"]["step"][-1] == h.n_steps

    def test_nan_stops_training_and_restores_the_last_good_weights(self, digits):
        train, _ = digits
        m = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(16,), latent_dim=2))
        real_step = m.train_step
        calls = {"n": 0}

        def poisoned(batch, opts, gen):
            calls["n"] += 1
            out = real_step(batch, opts, gen)
            if calls["n"] >= 25:  # weights go bad, loss goes NaN
                with torch.no_grad():
                    for p in m.parameters():
                        p.fill_(float("nan"))
                out["loss"] = torch.tensor(float("nan"))
            return out

        m.train_step = poisoned
        with pytest.raises(Divergence, match="step 25"):
            fit(m, train.x, TrainConfig(epochs=3, batch_size=50, check_every=10, binarize=True))
        assert all(torch.isfinite(p).all() for p in m.parameters())


class TestLikelihood:
    @pytest.fixture(scope="class")
    def one_d(self, digits):
        """A VAE with a 1-d latent, where log p(x) can be integrated numerically."""
        train, _ = digits
        torch.manual_seed(0)
        m = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(32,), latent_dim=1))
        fit(m, train.x, TrainConfig(epochs=5, batch_size=64, binarize=True))
        x = torch.bernoulli(train.x[:40], generator=torch.Generator().manual_seed(0))
        return m.eval(), x

    def test_importance_weighted_estimate_matches_quadrature(self, one_d):
        model, x = one_d
        z = torch.linspace(-10, 10, 8001)[:, None]  # (G, 1)
        with torch.no_grad():
            logits = model.decoder_logits(z)  # (G, D)
            log_px_z = torch.stack([model.log_px_given_z(logits, xi.expand(len(z), -1, -1, -1)) for xi in x])  # (N, G)
        log_prior = Normal(0.0, 1.0).log_prob(z[:, 0])
        exact = torch.logsumexp(log_px_z + log_prior, 1) + math.log(float(z[1, 0] - z[0, 0]))  # (N,)
        iw = metrics.iw_nll(model, x, k=2000, batch_size=20)["nll"]
        elbo = metrics.elbo_metrics(model, x)["neg_elbo"]
        assert abs(iw - (-exact.mean().item())) < 0.3
        assert elbo > -exact.mean().item() - 0.05  # the ELBO is a bound: -ELBO >= -log p(x)

    def test_k1_is_the_elbo_in_expectation_and_k_tightens(self, tiny_vae, digits):
        _, test = digits
        x = torch.bernoulli(test.x, generator=torch.Generator().manual_seed(1))
        neg_elbo = sum(metrics.elbo_metrics(tiny_vae, x, seed=s)["neg_elbo"] for s in range(20)) / 20
        k1 = sum(metrics.iw_nll(tiny_vae, x, k=1, seed=s)["nll"] for s in range(20)) / 20
        assert abs(k1 - neg_elbo) < 0.3
        nll = [metrics.iw_nll(tiny_vae, x, k=k, seed=0)["nll"] for k in (1, 10, 100)]
        assert nll[0] > nll[1] > nll[2]

    def test_autoencoder_has_no_likelihood(self):
        ae = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(8,), latent_dim=2, autoencoder=True))
        with pytest.raises(ValueError, match="stochastic encoder"):
            metrics.iw_nll(ae, torch.rand(2, 1, 8, 8), k=5)

    def test_bits_per_dim(self):
        assert metrics.bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)


def test_learned_gaussian_sigma_moves_and_fixed_sigma_stays(digits):
    train, _ = digits
    for learn in (True, False):
        m = VAE(VAEConfig(image_shape=(1, 8, 8), hidden=(32,), latent_dim=2, likelihood="gaussian",
                          sigma=0.5, learn_sigma=learn))
        fit(m, train.x, TrainConfig(epochs=3, batch_size=100, lr=1e-2, binarize=False))
        moved = abs(m.log_sigma.exp().item() - 0.5) > 0.05  # Adam moves log sigma up to lr per step
        assert moved == learn
