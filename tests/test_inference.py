"""Inference helpers: encode/decode, interpolation paths, traversals, manifold grid, mosaics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

from vae_core import inference as inf  # noqa: E402
from vae_core.data import load_dataset  # noqa: E402
from vae_core.elbo import kl_per_dim  # noqa: E402
from vae_core.models import ModelConfig, build_model  # noqa: E402


def small_model(kind: str = "vae", latent: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    cfg = ModelConfig(kind=kind, input_dim=64, image_shape=(1, 8, 8), hidden=(32,), latent_dim=latent)
    return build_model(cfg)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def x(digits) -> torch.Tensor:
    return digits.batch("test", slice(0, 200))  # (200, 64) float in [0, 1]


class TestEncodeDecode:
    def test_vae_shapes_and_sigma(self, x) -> None:
        m = small_model("vae", 3)
        mu, sigma = inf.encode(m, x)
        assert mu.shape == (200, 3) and sigma is not None and sigma.shape == (200, 3)
        assert (sigma > 0).all()
        _, logvar = m.encode(x)
        torch.testing.assert_close(sigma, torch.exp(0.5 * logvar).detach())
        assert not mu.requires_grad

    def test_ae_has_no_sigma(self, x) -> None:
        mu, sigma = inf.encode(small_model("ae", 2), x)
        assert mu.shape == (200, 2) and sigma is None

    def test_batched_equals_unbatched_and_uint8_input(self, digits, x) -> None:
        m = small_model("vae", 2)
        mu_a, s_a = inf.encode(m, x, batch_size=1000)
        mu_b, s_b = inf.encode(m, x, batch_size=7)
        torch.testing.assert_close(mu_a, mu_b)
        torch.testing.assert_close(s_a, s_b)
        mu_u, _ = inf.encode(m, digits.x_test[:200])  # uint8 pixels are scaled to [0, 1]
        torch.testing.assert_close(mu_u, mu_a)

    def test_decode_sample_reconstruct(self, x) -> None:
        m = small_model("vae", 2)
        img = inf.decode(m, torch.zeros(5, 2))
        assert img.shape == (5, 64) and (img >= 0).all() and (img <= 1).all()
        assert inf.decode(m, torch.zeros(2)).shape == (1, 64)
        s1, s2 = inf.sample_prior(m, 4, seed=3), inf.sample_prior(m, 4, seed=3)
        assert s1.shape == (4, 64)
        torch.testing.assert_close(s1, s2)
        r = inf.reconstruct(m, x, batch_size=64)
        mu, _ = inf.encode(m, x)
        torch.testing.assert_close(r, torch.sigmoid(m.decode(mu)))


class TestPaths:
    def test_lerp_endpoints_and_midpoint(self) -> None:
        z0, z1 = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([3.0, 2.0, -0.5])
        p = inf.lerp(z0, z1, 5)
        assert p.shape == (5, 3)
        torch.testing.assert_close(p[0], z0)
        torch.testing.assert_close(p[-1], z1)
        torch.testing.assert_close(p[2], (z0 + z1) / 2)

    @pytest.mark.parametrize("seed", range(5))
    def test_slerp_norm_between_ends(self, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        z0, z1 = torch.randn(16, generator=g) * 0.5, torch.randn(16, generator=g) * 2.0
        p = inf.slerp(z0, z1, 11)
        assert p.shape == (11, 16)
        torch.testing.assert_close(p[0], z0)
        torch.testing.assert_close(p[-1], z1, rtol=1e-5, atol=1e-5)
        norms = p.norm(dim=1)
        lo, hi = min(z0.norm(), z1.norm()), max(z0.norm(), z1.norm())
        assert (norms >= lo - 1e-5).all() and (norms <= hi + 1e-5).all()
        # with equal end norms the linear path dips below them in the middle; slerp does not
        z1e = z1 * (z0.norm() / z1.norm())
        assert inf.lerp(z0, z1e, 11).norm(dim=1)[5] < 0.95 * z0.norm()
        torch.testing.assert_close(inf.slerp(z0, z1e, 11).norm(dim=1), z0.norm().expand(11))

    def test_slerp_near_parallel_falls_back_to_lerp(self) -> None:
        z0 = torch.tensor([1.0, 2.0, 3.0])
        z1 = 2.5 * z0 + 1e-7
        torch.testing.assert_close(inf.slerp(z0, z1, 6), inf.lerp(z0, z1, 6))
        zero = torch.zeros(3)
        torch.testing.assert_close(inf.slerp(zero, z1, 4), inf.lerp(zero, z1, 4))

    def test_slerp_antiparallel_keeps_norms(self) -> None:
        z0 = torch.tensor([1.0, 0.0, 0.0])
        z1 = torch.tensor([-3.0, 0.0, 0.0])
        p = inf.slerp(z0, z1, 9)
        assert torch.isfinite(p).all()
        torch.testing.assert_close(p[-1], z1)
        assert (p.norm(dim=1) >= 1.0 - 1e-5).all() and (p.norm(dim=1) <= 3.0 + 1e-5).all()

    @pytest.mark.parametrize("mode", ["lerp", "slerp"])
    @pytest.mark.parametrize("kind", ["vae", "ae"])
    def test_interpolation_endpoints_are_the_encodings(self, x, mode: str, kind: str) -> None:
        m = small_model(kind, 4)
        imgs = inf.interpolate(m, x[3], x[10], steps=7, mode=mode)
        assert imgs.shape == (7, 64)
        mu, _ = inf.encode(m, x[[3, 10]])
        ends = inf.decode(m, mu)
        torch.testing.assert_close(imgs[0], ends[0])
        torch.testing.assert_close(imgs[-1], ends[1], rtol=1e-4, atol=1e-5)

    def test_interpolate_rejects_unknown_mode(self, x) -> None:
        with pytest.raises(ValueError, match="mode"):
            inf.interpolate(small_model(), x[0], x[1], 5, mode="cubic")


class TestAggregateStats:
    def test_vae_stats_match_definitions(self, x) -> None:
        m = small_model("vae", 3)
        with torch.no_grad():  # collapse dim 1: its mu no longer depends on x
            m.encoder.mu.weight[1].zero_()
        st = inf.aggregate_posterior_stats(m, x)
        mu, sigma = inf.encode(m, x)
        assert st.mean.shape == st.std.shape == st.cov_mu_diag.shape == st.active.shape == (3,)
        assert st.active.dtype == torch.bool
        torch.testing.assert_close(st.mean, mu.mean(0))
        torch.testing.assert_close(st.cov_mu_diag, mu.var(0, unbiased=True), rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(
            st.std, (mu.var(0, unbiased=False) + sigma.pow(2).mean(0)).sqrt(), rtol=1e-4, atol=1e-6
        )
        torch.testing.assert_close(
            st.avg_kl_per_dim, kl_per_dim(mu, 2 * sigma.log()).mean(0), rtol=1e-4, atol=1e-6
        )
        assert st.cov_mu_diag[1] < 1e-12 and not bool(st.active[1])
        assert st.active.tolist() == (st.cov_mu_diag > inf.ACTIVE_THRESHOLD).tolist()

    def test_ae_stats(self, x) -> None:
        m = small_model("ae", 2)
        st = inf.aggregate_posterior_stats(m, x)
        mu, _ = inf.encode(m, x)
        assert st.avg_kl_per_dim is None
        torch.testing.assert_close(st.std, mu.std(0, unbiased=False), rtol=1e-4, atol=1e-6)


class TestTraverse:
    def test_shape_single_decode_and_held_dims(self, x) -> None:
        m = small_model("vae", 5)
        seen: list[torch.Tensor] = []
        orig = m.mean_image

        def spy(z: torch.Tensor) -> torch.Tensor:
            seen.append(z.clone())
            return orig(z)

        m.mean_image = spy  # type: ignore[method-assign]
        z_base = torch.tensor([0.1, -0.2, 0.3, -0.4, 0.5])
        lo, hi = torch.full((5,), -3.0), torch.full((5,), 3.0)
        out = inf.traverse(m, z_base, [0, 3], lo, hi, steps=9)
        assert out.shape == (2, 9, 64)
        assert len(seen) == 1 and seen[0].shape == (18, 5)  # one batched decoder call
        z = seen[0].reshape(2, 9, 5)
        for r, d in enumerate([0, 3]):
            torch.testing.assert_close(z[r, :, d], torch.linspace(-3, 3, 9))
            held = [j for j in range(5) if j != d]
            torch.testing.assert_close(z[r][:, held], z_base[held].expand(9, 4))
        torch.testing.assert_close(out[1, 4], orig(z[1, 4:5])[0])

    def test_scalar_bounds_and_bad_dim(self) -> None:
        m = small_model("ae", 2)
        assert inf.traverse(m, torch.zeros(2), [1], -2.0, 2.0, steps=3).shape == (1, 3, 64)
        with pytest.raises(ValueError, match="out of range"):
            inf.traverse(m, torch.zeros(2), [2], -1.0, 1.0)


class TestManifoldGrid:
    def test_shape_monotone_symmetric(self) -> None:
        imgs, z = inf.manifold_grid(small_model("vae", 2), n=7)
        assert imgs.shape == (7, 7, 64) and z.shape == (7, 7, 2)
        z1, z2 = z[..., 0], z[..., 1]
        assert (z1[:, 1:] > z1[:, :-1]).all()  # z1 grows to the right
        assert (z2[1:, :] < z2[:-1, :]).all()  # z2 grows upwards (top row largest)
        assert (z1 == z1[0]).all() and (z2 == z2[:, :1]).all()
        torch.testing.assert_close(z1[0], -z1[0].flip(0))  # symmetric about 0
        torch.testing.assert_close(z2[:, 0], -z2[:, 0].flip(0))
        assert float(z1[0, 0]) == pytest.approx(-1.6448536, abs=1e-5)  # Phi^-1(0.05)

    def test_requires_2d_latent(self) -> None:
        with pytest.raises(ValueError, match="2-D latent"):
            inf.manifold_grid(small_model("vae", 3))


class TestImagesToGrid:
    def test_mosaic_layout(self) -> None:
        imgs = torch.stack([torch.full((64,), k / 10) for k in range(5)])  # (5, 64)
        g = inf.images_to_grid(imgs, (1, 8, 8), ncols=3, pad=1)
        assert g.dtype == np.uint8 and g.shape == (2 * 8 + 1, 3 * 8 + 2)
        assert (g[9:17, 9:17] == round(0.4 * 255)).all()  # image 4 at row 1, col 1
        assert (g[9:17, 18:26] == 255).all()  # empty cell is padding
        assert (g[8, :] == 255).all()

    def test_traversal_rows_and_colour(self) -> None:
        grid = inf.images_to_grid(torch.rand(2, 9, 64), (1, 8, 8), ncols=9, pad=0)
        assert grid.shape == (16, 72)
        rgb = inf.images_to_grid(np.random.rand(4, 3 * 4 * 4), (3, 4, 4), ncols=2)
        assert rgb.shape == (9, 9, 3)
        assert math.isclose(inf.images_to_grid(np.zeros((1, 64), np.uint8), (1, 8, 8)).sum(), 0)


class TestUpscale:
    def test_whole_pixel_blocks(self) -> None:
        img = np.array([[0, 255], [10, 20]], dtype=np.uint8)
        up = inf.upscale(img, 3)
        assert up.shape == (6, 6) and up.dtype == np.uint8
        assert (up[:3, :3] == 0).all() and (up[:3, 3:] == 255).all() and (up[3:, :3] == 10).all()
        rgb = inf.upscale(np.zeros((2, 2, 3), dtype=np.uint8), 2)
        assert rgb.shape == (4, 4, 3)
        assert inf.upscale(img, 1) is img or np.array_equal(inf.upscale(img, 1), img)
        with pytest.raises(ValueError, match="whole number"):
            inf.upscale(img, 0)

    def test_scale_for(self) -> None:
        assert inf.scale_for(8, 40) == 5 and inf.scale_for(28, 40) == 1 and inf.scale_for(28, 10) == 1


def test_interpolation_strip_has_the_images_at_its_ends(digits) -> None:
    from vae_core.data import to_float
    from vae_core.inference import interpolate, interpolation_strip

    torch.manual_seed(0)
    model = build_model(
        ModelConfig(kind="vae", input_dim=64, image_shape=(1, 8, 8), hidden=(32,), latent_dim=2)
    ).eval()
    strip = interpolation_strip(model, digits.x_test[0], digits.x_test[5], steps=4)
    assert strip.shape == (6, 64)
    torch.testing.assert_close(strip[0], to_float(digits.x_test[0]).float())
    torch.testing.assert_close(strip[-1], to_float(digits.x_test[5]).float())
    torch.testing.assert_close(strip[1:-1], interpolate(model, digits.x_test[0], digits.x_test[5], steps=4))


class TestPosteriorStatsFromEncodings:
    """inference.posterior_stats: aggregate_posterior_stats from codes already made (the Compare page encodes once)."""

    @pytest.mark.parametrize("kind", ["vae", "ae"])
    def test_equals_aggregate_posterior_stats_field_by_field(self, x, kind: str) -> None:
        m = small_model(kind, 3, seed=1)
        with torch.no_grad():  # dims 0, 1 spread out (active), dim 2 collapsed: `active` has both values
            m.encoder.mu.weight[:2].mul_(10.0)
            m.encoder.mu.weight[2].zero_()
        want = inf.aggregate_posterior_stats(m, x)
        got = inf.posterior_stats(*inf.encode(m, x))
        assert got._fields == want._fields
        for name, a, b in zip(want._fields, got, want):
            if b is None:
                assert a is None, name
            else:
                assert a.dtype == b.dtype and a.shape == b.shape, name
                assert torch.equal(a, b), name
        assert (got.avg_kl_per_dim is None) == (kind == "ae")
        assert not bool(got.active[2]) and bool(got.active[:2].all())

    def test_threshold_is_passed_through(self, x) -> None:
        m = small_model("vae", 4, seed=2)
        mu, sigma = inf.encode(m, x)
        var = inf.posterior_stats(mu, sigma).cov_mu_diag
        cut = float(
            var.sort().values[1:3].mean()
        )  # between the 2nd and 3rd smallest activity: two dims above
        st = inf.posterior_stats(mu, sigma, threshold=cut)
        assert st.active.tolist() == (var > cut).tolist() and int(st.active.sum()) == 2
        assert torch.equal(st.active, inf.aggregate_posterior_stats(m, x, threshold=cut).active)
        assert inf.posterior_stats(mu, sigma, threshold=float(var.max()) + 1.0).active.sum() == 0

    @pytest.mark.parametrize("rows", [0, 1])
    def test_fewer_than_two_rows_raise(self, rows: int) -> None:
        mu, sigma = torch.zeros(rows, 3), torch.ones(rows, 3)
        with pytest.raises(ValueError, match="at least 2 images"):
            inf.posterior_stats(mu, sigma)
        with pytest.raises(ValueError, match="at least 2 images"):
            inf.posterior_stats(mu, None)
        assert inf.posterior_stats(torch.zeros(2, 3), None).mean.shape == (3,)  # two rows are enough

    def test_ae_path_numbers(self) -> None:
        mu = torch.tensor(
            [[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]]
        )  # dim 1 varies (var 4, population var 8/3), dim 2 is constant
        st = inf.posterior_stats(mu, None)
        assert st.avg_kl_per_dim is None
        torch.testing.assert_close(st.mean, torch.tensor([2.0, 1.0]))
        torch.testing.assert_close(
            st.std, torch.tensor([math.sqrt(8 / 3), 0.0])
        )  # sqrt(Var_x[mu]), no sigma term
        torch.testing.assert_close(st.cov_mu_diag, torch.tensor([4.0, 0.0]))
        assert st.active.tolist() == [True, False]

    def test_vae_path_numbers(self) -> None:
        mu = torch.tensor([[1.0], [-1.0]])
        sigma = torch.tensor([[0.5], [2.0]])
        st = inf.posterior_stats(mu, sigma)
        # Var_pop[mu] = 1, E[sigma^2] = (0.25 + 4) / 2: std of q(z) = sqrt(1 + 2.125)
        torch.testing.assert_close(st.std, torch.tensor([math.sqrt(3.125)]))
        kl = [0.5 * (m * m + s * s - 1 - 2 * math.log(s)) for m, s in ((1.0, 0.5), (-1.0, 2.0))]
        torch.testing.assert_close(st.avg_kl_per_dim, torch.tensor([sum(kl) / 2]))
