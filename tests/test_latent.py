"""Latent operations against independent computations."""
import math

import pytest
import torch
from scipy.stats import norm

from genlab import latent


class TestInterpolation:
    def test_slerp_hits_both_endpoints(self):
        g = torch.Generator().manual_seed(0)
        z0, z1 = torch.randn(10, generator=g), torch.randn(10, generator=g)
        path = latent.interpolate(z0, z1, 7, "slerp")
        assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)

    def test_slerp_of_orthonormal_vectors_is_the_unit_circle(self):
        u0, u1 = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
        t = torch.linspace(0, 1, 5)
        path = latent.slerp(u0, u1, t)
        angles = t * math.pi / 2
        assert torch.allclose(path[:, 0], angles.cos(), atol=1e-6)
        assert torch.allclose(path[:, 1], angles.sin(), atol=1e-6)
        assert torch.allclose(path.norm(dim=1), torch.ones(5), atol=1e-6)

    def test_slerp_norm_blends_linearly_and_lerp_dips(self):
        z0, z1 = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 5.0])
        t = torch.linspace(0, 1, 11)
        assert torch.allclose(latent.slerp(z0, z1, t).norm(dim=1), 3 + 2 * t, atol=1e-5)
        mid = latent.lerp(z0, z1, torch.tensor([0.5]))[0]
        assert torch.allclose(mid, torch.tensor([1.5, 2.5]))
        assert mid.norm() < 3.0  # the straight line passes closer to the origin

    def test_parallel_and_zero_endpoints_fall_back_to_lerp(self):
        z = torch.tensor([1.0, 2.0])
        t = torch.linspace(0, 1, 4)
        assert torch.allclose(latent.slerp(z, 3 * z, t), latent.lerp(z, 3 * z, t))
        assert torch.allclose(latent.slerp(torch.zeros(2), z, t), latent.lerp(torch.zeros(2), z, t))

    def test_bad_arguments(self):
        with pytest.raises(ValueError):
            latent.interpolate(torch.zeros(2), torch.ones(2), 1)
        with pytest.raises(ValueError):
            latent.interpolate(torch.zeros(2), torch.ones(2), 5, "cubic")


class TestScaling:
    def test_scale_vectors_follow_the_formula(self):
        mu, sd = latent.scale_vectors(5, 2.0, -1.5)
        assert torch.allclose(mu, torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0]))
        assert torch.allclose(sd, torch.tensor([1.5, 0.75, 0.0, 0.75, 1.5]))

    def test_scaled_latents_have_those_means_and_spreads(self):
        z = latent.scaled_latents(40_000, 4, 1.5, 2.0, torch.Generator().manual_seed(0))
        mu, sd = latent.scale_vectors(4, 1.5, 2.0)
        assert torch.allclose(z.mean(0), mu, atol=0.05)
        assert torch.allclose(z.std(0), sd, atol=0.05)

    def test_same_seed_same_codes(self):
        a = latent.scaled_latents(8, 3, 1.0, 1.0, torch.Generator().manual_seed(5))
        b = latent.scaled_latents(8, 3, 1.0, 1.0, torch.Generator().manual_seed(5))
        assert torch.equal(a, b)


class TestGrids:
    def test_ticks_are_the_inverse_normal_cdf(self):
        ticks = latent.gaussian_ticks(9, 0.02, 0.98)
        ref = norm.ppf(torch.linspace(0.02, 0.98, 9).double().numpy())
        assert torch.allclose(ticks.double(), torch.from_numpy(ref), atol=1e-5)
        with pytest.raises(ValueError):
            latent.gaussian_ticks(5, 0.0, 0.9)

    def test_manifold_grid_reads_like_a_plot(self):
        n = 5
        g = latent.manifold_grid(n, 0.1, 0.9).view(n, n, 2)
        assert (g[0, :, 1] > g[-1, :, 1]).all()  # top row: largest z[1]
        assert (g[:, 0, 0] < g[:, -1, 0]).all()  # left column: smallest z[0]
        assert torch.allclose(g[0, 0], torch.tensor([norm.ppf(0.1), norm.ppf(0.9)]).float(), atol=1e-5)

    def test_plane_grid_uses_the_given_scale_and_centre(self):
        center = torch.tensor([1.0, 0.0, -1.0])
        u, v = latent.axis_plane(center, 0, 2, torch.tensor([2.0, 1.0, 3.0]))
        g = latent.plane_grid(center, u, v, 3, 0.25, 0.75)
        assert torch.allclose(g[4], center)  # the middle of a 3x3 grid is the centre
        assert torch.allclose(g[:, 1], torch.zeros(9))  # dimension 1 is held
        assert g[0, 2] == pytest.approx(-1.0 + 3.0 * norm.ppf(0.75), abs=1e-5)

    def test_principal_directions_find_the_long_axis(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(5000, 3, generator=g) * torch.tensor([0.1, 3.0, 1.0]) + 4.0
        mean, dirs, std = latent.principal_directions(x)
        assert torch.allclose(mean, torch.full((3,), 4.0), atol=0.1)
        assert abs(dirs[0, 1]) > 0.99 and abs(dirs[1, 2]) > 0.99
        assert std[0] == pytest.approx(3.0, rel=0.05) and std[1] == pytest.approx(1.0, rel=0.05)
