"""The GAN family: loss signs, the saturation argument, shapes, and a toy GAN covering modes."""
import math

import pytest
import torch
import torch.nn.functional as F

from genlab import TrainConfig, fit, metrics
from genlab.data import toy2d
from genlab.models import GAN, GANConfig
from genlab.models.gan import d_loss_from_logits, g_loss_from_logits


class TestLosses:
    def test_discriminator_loss_is_the_bce_of_the_paper(self):
        real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
        ref = -(torch.sigmoid(real).log().mean() + (1 - torch.sigmoid(fake)).log().mean())
        assert torch.allclose(d_loss_from_logits(real, fake), ref, atol=1e-6)

    def test_discriminator_loss_has_the_right_sign_on_real_and_fake(self):
        confident_right = d_loss_from_logits(torch.full((8,), 6.0), torch.full((8,), -6.0))
        confident_wrong = d_loss_from_logits(torch.full((8,), -6.0), torch.full((8,), 6.0))
        assert confident_right < 0.01 < 10.0 < confident_wrong

    def test_one_sided_label_smoothing_targets(self):
        real = torch.zeros(4)  # sigmoid 0.5
        got = d_loss_from_logits(real, torch.full((4,), -50.0), smoothing=0.1)
        ref = F.binary_cross_entropy_with_logits(real, torch.full((4,), 0.9))
        assert torch.allclose(got, ref, atol=1e-6)

    def test_noisy_labels_flip_about_the_asked_fraction(self):
        g = torch.Generator().manual_seed(0)
        big = torch.full((20000,), 20.0)
        loss = d_loss_from_logits(big, -big, noise=0.1, generator=g)
        # each flipped label costs about 20 nats; two terms, each ~10 % flipped
        assert loss.item() == pytest.approx(2 * 0.1 * 20.0, rel=0.05)

    def test_non_saturating_gradient_is_larger_when_d_is_confident(self):
        grads = {}
        for kind in ("minimax", "nonsaturating"):
            logit = torch.tensor([-6.0], requires_grad=True)  # D is sure this fake is fake
            g_loss_from_logits(logit, kind).backward()
            grads[kind] = logit.grad.abs().item()
        assert grads["minimax"] == pytest.approx(torch.sigmoid(torch.tensor(-6.0)).item(), rel=1e-4)
        assert grads["nonsaturating"] > 100 * grads["minimax"]


class TestModels:
    @pytest.mark.parametrize("arch,params", [("mlp", 2_043_537), ("dcgan", 2_518_338)])
    def test_image_gans_make_28x28_images_in_unit_range(self, arch, params):
        m = GAN(GANConfig(arch=arch)).eval()
        with torch.no_grad():
            x = m.decode(m.prior_sample(5, torch.Generator().manual_seed(0)))
        assert x.shape == (5, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
        assert sum(p.numel() for p in m.parameters()) == params

    def test_dcgan_weights_start_from_n_0_002(self):
        m = GAN(GANConfig(arch="dcgan"))
        w = m.D[3].weight
        assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002

    def test_generator_step_leaves_the_discriminator_alone(self):
        m = GAN(GANConfig(arch="toy", latent_dim=2, data_shape=(2,)))
        opt_g, opt_d = m.configure_optimizers(1e-3)
        before = [p.clone() for p in m.D.parameters()]
        m.g_step(16, opt_g)
        assert all(torch.equal(a, b) for a, b in zip(before, m.D.parameters()))
        assert all(p.requires_grad for p in m.D.parameters())

    def test_bad_configs_are_refused(self):
        with pytest.raises(ValueError, match="arch"):
            GANConfig(arch="stylegan")
        with pytest.raises(ValueError, match="loss"):
            GANConfig(loss="wasserstein")


class TestToyMetrics:
    def test_real_ring_data_covers_all_modes_and_has_zero_divergence_with_itself(self):
        pts = toy2d("ring8", 4000, seed=0)
        cov = metrics.mode_coverage(pts, metrics.ring_centers(), std=0.02)
        assert cov["modes"] == 8 and cov["high_quality"] > 0.99
        d = metrics.grid_divergences(pts, pts)
        assert d["kl"] == pytest.approx(0.0, abs=1e-9) and d["js"] == pytest.approx(0.0, abs=1e-9)

    def test_a_collapsed_sample_covers_one_mode_and_js_is_near_log2(self):
        real = toy2d("ring8", 4000, seed=0)
        collapsed = metrics.ring_centers()[0] + 0.02 * torch.randn(4000, 2, generator=torch.Generator().manual_seed(1))
        assert metrics.mode_coverage(collapsed, metrics.ring_centers(), std=0.02)["modes"] == 1
        js = metrics.grid_divergences(real, collapsed)["js"]
        assert 0.5 < js <= math.log(2) + 1e-6  # disjoint supports give log 2


@pytest.mark.slow
def test_a_seeded_toy_gan_covers_most_of_the_eight_modes():
    torch.manual_seed(0)
    x = toy2d("ring8", 16384, seed=0)
    m = GAN(GANConfig(arch="toy", latent_dim=2, data_shape=(2,), hidden=128))
    fit(m, x, TrainConfig(epochs=25, batch_size=256, lr=1e-3, binarize=False, seed=0))
    with torch.no_grad():
        pts = m.decode(m.prior_sample(2500, torch.Generator().manual_seed(0)))
    cov = metrics.mode_coverage(pts, metrics.ring_centers(), std=0.05)
    assert cov["modes"] >= 6, cov
