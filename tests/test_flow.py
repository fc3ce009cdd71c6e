"""Normalizing flows, checked against independent computations: log-dets against the
autograd Jacobian's slogdet, exact inverses, a 2-d density that integrates to 1, closed forms
for an affine flow and for the dequantise + logit step, and checkpoints that rebuild the same
likelihoods."""
import math

import pytest
import torch
import torch.distributions as D
from torch.autograd.functional import jacobian

from genlab import CheckpointError, load, save, store
from genlab.models.flow import (ActNorm, AffineCoupling, Flow, FlowConfig, FlowSequence, Squeeze, channel_mask,
                                checkerboard, conv_net, mlp_net, parity_mask, random_mask)


def perturb(module: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> torch.nn.Module:
    """Random weights everywhere (the zero-initialised last layers make a fresh flow the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return module.double()


def jacobian_logdet(f, x: torch.Tensor) -> torch.Tensor:
    """log |det df/dx| of one example (1, ...) by autograd, then slogdet."""
    d = x.numel()
    j = jacobian(lambda v: f(v.view_as(x)).reshape(-1), x.reshape(-1)).reshape(d, d)
    return torch.linalg.slogdet(j)[1]


class TestLayers:
    @pytest.mark.parametrize("make,shape", [
        (lambda: AffineCoupling(parity_mask(5, 0), mlp_net(5, 8, 2)), (5,)),
        (lambda: AffineCoupling(random_mask(5, torch.Generator().manual_seed(1)), mlp_net(5, 8, 3)), (5,)),
        (lambda: AffineCoupling(checkerboard(4, 4, 1), conv_net(1, 4, 2)), (1, 4, 4)),
        (lambda: AffineCoupling(channel_mask(4, 0), conv_net(4, 4, 2)), (4, 2, 2)),
        (lambda: ActNorm(3, image=False), (3,)),
        (lambda: ActNorm(2, image=True), (2, 3, 3)),
    ])
    def test_log_det_matches_the_autograd_jacobian_and_the_inverse_undoes(self, make, shape):
        layer = perturb(make()).eval()
        x = torch.randn(1, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        z, ld = layer(x)
        assert torch.allclose(ld[0], jacobian_logdet(lambda v: layer(v)[0], x), atol=1e-8)
        back, ld_inv = layer.inverse(z)
        assert torch.allclose(back, x, atol=1e-10) and torch.allclose(ld + ld_inv, torch.zeros(1, dtype=torch.float64))

    def test_the_masked_part_passes_unchanged_and_a_fresh_coupling_is_the_identity(self):
        mask = checkerboard(4, 4, 0)
        fresh = AffineCoupling(mask, conv_net(1, 8, 3))
        x = torch.randn(3, 1, 4, 4)
        z, ld = fresh(x)
        assert torch.equal(z, x) and torch.equal(ld, torch.zeros(3))
        trained = perturb(AffineCoupling(mask, conv_net(1, 8, 3))).float()
        z, _ = trained(x)
        assert torch.equal(z * mask, x * mask) and not torch.allclose(z, x)

    def test_the_scale_is_soft_clamped(self):
        layer = perturb(AffineCoupling(parity_mask(4, 1), mlp_net(4, 8, 2), clamp=0.5), scale=5.0)
        _, ld = layer(torch.randn(64, 4, dtype=torch.float64) * 10)
        assert ld.abs().max() <= 0.5 * 2 + 1e-9  # two free features, |s| <= clamp each

    def test_squeeze_is_a_volume_preserving_permutation(self):
        x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
        z, ld = Squeeze()(x)
        assert z.shape == (2, 4, 2, 2) and torch.equal(ld, torch.zeros(2))
        assert sorted(z[0].flatten().tolist()) == sorted(x[0].flatten().tolist())
        assert torch.equal(Squeeze().inverse(z)[0], x)
        assert z[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]  # each 2x2 block becomes 4 channels

    def test_actnorm_initialises_from_the_first_training_batch_only(self):
        layer = ActNorm(3, image=False).train()
        x = torch.randn(500, 3) * torch.tensor([1.0, 5.0, 0.1]) + torch.tensor([2.0, -1.0, 7.0])
        z, _ = layer(x)
        assert torch.allclose(z.mean(0), torch.zeros(3), atol=1e-5) and torch.allclose(z.std(0), torch.ones(3), atol=1e-4)
        before = layer.bias.clone()
        layer(x * 3)
        assert torch.equal(layer.bias, before) and int(layer.initialized) == 1


class TestWholeFlows:
    def test_an_image_flows_log_det_matches_the_jacobian(self):
        flow = perturb(Flow(FlowConfig(data_shape=(1, 4, 4), hidden=4, depth=2, couplings=(2, 1, 1)))).flow.eval()
        x = torch.randn(1, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        z, ld = flow(x)
        assert torch.allclose(ld[0], jacobian_logdet(lambda v: flow(v)[0], x), atol=1e-7)
        back, ld_inv = flow.inverse(z)
        assert torch.allclose(back, x, atol=1e-9) and torch.allclose(ld + ld_inv, torch.zeros(1, dtype=torch.float64))

    def test_encode_then_decode_gives_the_digit_back_bit_for_bit(self):
        from genlab.data import load_digits8
        torch.manual_seed(0)
        m = perturb(Flow(FlowConfig(data_shape=(1, 8, 8), hidden=8, depth=2, couplings=(2, 2, 2))), scale=0.05)
        m = m.float().eval()
        x = torch.round(load_digits8("test").x[:16] * 255) / 255  # 8-bit pixels
        with torch.no_grad():
            back = m.decode(m.encode(x))  # continuous pixels, at the centres of the bins
        assert torch.equal(torch.floor(back * 256), torch.round(x * 255))

    def test_a_2d_flows_density_integrates_to_one(self):
        m = perturb(Flow(FlowConfig(data_shape=(2,), hidden=16, depth=2, couplings=(4,), masks="parity")), scale=0.2)
        m.eval()
        ticks = torch.linspace(-20, 20, 1201, dtype=torch.float64)
        xx, yy = torch.meshgrid(ticks, ticks, indexing="ij")
        pts = torch.stack([xx.flatten(), yy.flatten()], 1)
        with torch.no_grad():
            log_p = m.log_prob(pts)
        area = (ticks[1] - ticks[0]) ** 2
        assert (log_p.exp().sum() * area).item() == pytest.approx(1.0, abs=1e-3)
        gauss = D.Normal(0.0, 1.0).log_prob(pts).sum(1)
        inside = pts.norm(dim=1) < 3
        assert (log_p - gauss)[inside].abs().max() > 0.5  # a real warp, not the prior itself

    def test_an_affine_flow_of_a_gaussian_has_its_closed_form_likelihood_and_bpd(self):
        """No couplings: the flow is one ActNorm, z = (x + b) exp(s), so x ~ N(-b, exp(-2s))."""
        m = Flow(FlowConfig(data_shape=(3,), couplings=(1,), masks="parity"))
        coupling = m.flow.layers[1]
        assert isinstance(coupling, AffineCoupling)  # zero-initialised: the identity
        act = m.flow.layers[0]
        act._ready = True
        with torch.no_grad():
            act.bias.copy_(torch.tensor([[0.5, -1.0, 2.0]]))
            act.log_scale.copy_(torch.tensor([[0.3, -0.7, 0.1]]))
        x = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
        ref = D.Normal(-act.bias[0], (-act.log_scale[0]).exp()).log_prob(x).sum(1)
        with torch.no_grad():
            assert torch.allclose(m.log_prob(x), ref, atol=1e-5)
            nll = -ref.mean()
            assert m.loss_terms(x)["bpd"].item() == pytest.approx((nll / (3 * math.log(2))).item(), rel=1e-5)

    def test_dequantise_and_logit_match_a_transformed_distribution(self):
        """With no couplings and no ActNorm, an image flow is the logit step and a squeeze:
        p(y) is a standard Normal pushed through a sigmoid and the affine undoing alpha."""
        m = Flow(FlowConfig(data_shape=(1, 4, 4), couplings=(0, 0, 0), actnorm=False, alpha=0.05))
        a = 0.05
        x = torch.randint(0, 256, (5, 1, 4, 4), generator=torch.Generator().manual_seed(1)).float() / 255
        y = (torch.round(x * 255) + 0.5) / 256
        ref = D.TransformedDistribution(D.Normal(0.0, 1.0), [D.transforms.SigmoidTransform(),
                                                             D.transforms.AffineTransform(-a / (1 - 2 * a), 1 / (1 - 2 * a))])
        expected = ref.log_prob(y).flatten(1).sum(1) - 16 * math.log(256)
        assert torch.allclose(m.log_prob(x, dequantize=False), expected, atol=1e-4)

    def test_a_uniform_density_reads_8_bits_per_dimension(self):
        """Sanity of the bpd convention: D log 256 nats is 8 bits per dimension."""
        m = Flow(FlowConfig(data_shape=(1, 4, 4), couplings=(0, 0, 0), actnorm=False))
        assert m.bits_per_dim(torch.tensor(16 * math.log(256))).item() == pytest.approx(8.0)

    def test_samples_follow_the_temperature(self):
        m = perturb(Flow(FlowConfig(data_shape=(2,), hidden=8, depth=2, couplings=(2,), masks="parity"))).float()
        z1 = m.prior_sample(2000, torch.Generator().manual_seed(0), temperature=1.0)
        z5 = m.prior_sample(2000, torch.Generator().manual_seed(0), temperature=0.5)
        assert torch.allclose(z5, 0.5 * z1) and z1.std().item() == pytest.approx(1.0, abs=0.05)


class TestCheckpoints:
    def test_round_trip_rebuilds_the_same_likelihoods(self, tmp_path):
        from genlab.data import load_digits8
        m = perturb(Flow(FlowConfig(data_shape=(1, 8, 8), hidden=8, depth=2, couplings=(1, 1, 1)))).float().eval()
        x = load_digits8("test").x[:50]
        save(m, tmp_path / "f")
        back, card = load(tmp_path / "f")
        assert card["family"] == "flow"
        r1, r2 = m.likelihoods(x, k=2)[0], back.likelihoods(x, k=2)[0]
        assert r1 == r2 and r1.bpd == pytest.approx(r1.value / (64 * math.log(2)), rel=1e-3)

    def test_a_truncated_or_mismatched_flow_checkpoint_is_refused(self, tmp_path):
        m = Flow(FlowConfig(data_shape=(1, 8, 8), hidden=8, depth=2, couplings=(1, 1, 1)))
        save(m, tmp_path / "f")
        w = store.checkpoint_files(tmp_path / "f")[0]
        blob = w.read_bytes()
        w.write_bytes(blob[: len(blob) // 2])
        with pytest.raises(CheckpointError, match="truncated"):
            load(tmp_path / "f")
        w.write_bytes(blob)
        import json
        card = json.loads((tmp_path / "f.json").read_text())
        card["config"]["hidden"] = 16
        (tmp_path / "f.json").write_text(json.dumps(card))
        with pytest.raises(CheckpointError, match="config expects"):
            load(tmp_path / "f")
        card["config"]["couplings"] = [2, 1, 1]
        card["config"]["hidden"] = 8
        (tmp_path / "f.json").write_text(json.dumps(card))
        with pytest.raises(CheckpointError, match="missing"):
            load(tmp_path / "f")


def test_flow_sequence_of_nothing_is_the_identity():
    z, ld = FlowSequence([])(torch.ones(2, 3))
    assert torch.equal(z, torch.ones(2, 3)) and torch.equal(ld, torch.zeros(2))
