"""The aggregate posterior q(z) = (1/N) sum_n q(z|x_n): its density, the ELBO surgery and the KL holes, checked
against direct sums, closed forms and quadrature."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import needs_fashion
from vae_core import compare, elbo
from vae_core.checkpoint import load_checkpoint
from vae_core.data import load_dataset
from vae_core.inference import decode, encode

ROOT = Path(__file__).resolve().parents[1]


def _mixture(n: int, d: int, seed: int, spread: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Random encodings: mu (n, d), sigma (n, d), float64."""
    g = torch.Generator().manual_seed(seed)
    mu = spread * torch.randn(n, d, generator=g, dtype=torch.float64)
    sigma = torch.exp(0.4 * torch.randn(n, d, generator=g, dtype=torch.float64) - 0.7)
    return mu, sigma


def _direct_log_q(z: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """log (1/N) sum_n N(z; mu_n, sigma_n^2), by broadcasting torch.distributions: (M,)."""
    comp = torch.distributions.Normal(mu, sigma).log_prob(z[:, None, :]).sum(-1)  # (M, N)
    return torch.logsumexp(comp, 1) - math.log(mu.shape[0])


class TestDensity:
    @pytest.mark.parametrize("budget", [1, 37, 500_000])
    def test_matches_a_direct_sum_in_any_chunking(self, budget: int) -> None:
        mu, sigma = _mixture(50, 3, seed=0)
        z = torch.randn(23, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 3
        got = elbo.log_aggregate_posterior(z, mu, 2 * sigma.log(), budget=budget)
        torch.testing.assert_close(got, _direct_log_q(z, mu, sigma), rtol=0, atol=1e-10)

    def test_integrates_to_one(self) -> None:
        mu, sigma = _mixture(6, 2, seed=2, spread=1.0)
        axis = torch.linspace(-9, 9, 721, dtype=torch.float64)
        q = elbo.log_aggregate_posterior(elbo.mesh_points([axis, axis]), mu, 2 * sigma.log()).exp()
        step = float(axis[1] - axis[0])
        assert float(q.sum()) * step**2 == pytest.approx(1.0, abs=1e-6)


def _quadrature_kl(mu: torch.Tensor, sigma: torch.Tensor) -> float:
    """KL(q(z) || N(0, I)) for z of dim 1 or 2 on a fine grid (midpoint rule), nats."""
    d = mu.shape[1]
    n = 4001 if d == 1 else 501
    axis = torch.linspace(-10, 10, n, dtype=torch.float64)
    pts = elbo.mesh_points([axis] * d)
    log_q = elbo.log_aggregate_posterior(pts, mu, 2 * sigma.log())
    integrand = log_q.exp() * (log_q - elbo.log_standard_normal(pts))
    return float(integrand.sum()) * float(axis[1] - axis[0]) ** d


class TestSurgery:
    def test_two_far_apart_components_carry_log_2(self) -> None:
        mu = torch.tensor([[-40.0], [40.0]], dtype=torch.float64)
        r = compare.elbo_surgery_of(mu, torch.ones_like(mu), n_samples=500)
        assert r.mutual_info == pytest.approx(math.log(2), abs=1e-12) and r.log_n == pytest.approx(
            math.log(2)
        )
        assert r.avg_kl == pytest.approx(0.5 * 40**2)
        assert r.kl_aggregate == pytest.approx(
            r.avg_kl - math.log(2)
        )  # KL(q||p) = avg KL - log 2 exactly here

    def test_identical_components_carry_nothing(self) -> None:
        mu = torch.full((7, 2), 0.8, dtype=torch.float64)
        sigma = torch.full((7, 2), 0.5, dtype=torch.float64)
        r = compare.elbo_surgery_of(mu, sigma, n_samples=4000, seed=3)
        assert abs(r.mutual_info) < 1e-12 and r.se < 1e-12
        kl_one = float(elbo.kl_per_dim(mu[0], 2 * sigma[0].log()).sum())  # q(z) is q(z|x): KL(q||p) = that KL
        assert r.kl_aggregate == pytest.approx(kl_one, abs=1e-12)
        assert abs(r.kl_aggregate_plain - kl_one) < 4 * r.kl_aggregate_plain_se

    @pytest.mark.parametrize("d,n,seed", [(1, 5, 0), (1, 40, 1), (2, 8, 2)])
    def test_kl_of_the_aggregate_against_quadrature(self, d: int, n: int, seed: int) -> None:
        mu, sigma = _mixture(n, d, seed=seed)
        exact = _quadrature_kl(mu, sigma)
        r = compare.elbo_surgery_of(mu, sigma, n_samples=20_000, seed=seed)
        assert abs(r.kl_aggregate - exact) < 4 * r.se + 1e-4, (r.kl_aggregate, exact, r.se)
        assert abs(r.kl_aggregate_plain - exact) < 4 * r.kl_aggregate_plain_se + 1e-4
        assert abs(r.mutual_info - (r.avg_kl - exact)) < 4 * r.se + 1e-4
        assert 0.0 <= r.mutual_info <= r.log_n + 1e-12
        assert r.se < r.kl_aggregate_plain_se  # the control variate pays for itself

    def test_an_ae_is_refused(self, digits) -> None:
        ck = load_checkpoint(ROOT / "checkpoints" / "digits_ae_z2.safetensors")
        with pytest.raises(ValueError, match="VAE"):
            compare.elbo_surgery(ck.model, digits.x_test[:10])


def _parts_add_up(r: compare.ELBOSurgery) -> None:
    """The independent plain estimate of KL(q(z)||p(z)) plus I(x; z) recovers the exact average KL."""
    se = math.hypot(r.se, r.kl_aggregate_plain_se)
    assert abs(r.kl_aggregate_plain + r.mutual_info - r.avg_kl) < 4 * se
    assert r.kl_aggregate + r.mutual_info == pytest.approx(r.avg_kl, abs=1e-12)
    assert 0.0 < r.mutual_info <= r.log_n and r.kl_aggregate > 0.0


class TestShippedModels:
    def test_digits_vae_z2(self, digits) -> None:
        ck = load_checkpoint(ROOT / "checkpoints" / "digits_vae_z2.safetensors")
        r = compare.elbo_surgery(ck.model, digits.x_test, n_samples=2000)
        _parts_add_up(r)
        assert r.n_images == 359 and r.avg_kl == pytest.approx(3.39, abs=0.05)  # the README's test KL

    @needs_fashion
    def test_fmnist_vae_z16(self) -> None:
        ck = load_checkpoint(ROOT / "checkpoints" / "fmnist_vae_z16.safetensors")
        r = compare.elbo_surgery(ck.model, load_dataset("fashion-mnist").x_test)
        _parts_add_up(r)
        # the KL term (~12 nats) is above log 10,000 = 9.2: at least 2.7 nats must be KL(q(z) || p(z))
        assert r.avg_kl > r.log_n and r.kl_aggregate > r.avg_kl - r.log_n
        assert r.se < 0.05


class TestKLHole:
    def _check(self, ck, x, hole: compare.KLHole, max_ratio: float) -> None:
        assert float(np.hypot(*hole.z)) <= hole.radius + 1e-12  # inside the 2-sigma disc: high prior mass
        assert math.exp(hole.log_p) >= hole.p_threshold
        assert hole.ratio < max_ratio
        # the ratio again, directly: a plain sum of N Gaussian densities in numpy
        mu, sigma = (t.double().cpu().numpy() for t in encode(ck.model, x))
        dens = np.exp(-0.5 * (((hole.z - mu) / sigma) ** 2).sum(1)) / (2 * math.pi * sigma.prod(1))
        p = math.exp(-0.5 * float(hole.z @ hole.z)) / (2 * math.pi)
        assert hole.ratio == pytest.approx(dens.mean() / p, rel=1e-6)
        # the smallest ratio on the grid inside the disc, and the decoder's image there
        assert hole.ratio == pytest.approx(float(np.exp(hole.log_ratio_grid[hole.inside]).min()), rel=1e-12)
        np.testing.assert_allclose(
            hole.image, decode(ck.model, torch.from_numpy(hole.z))[0].numpy(), atol=1e-6
        )

    def test_digits_vae_z2(self, digits) -> None:
        ck = load_checkpoint(ROOT / "checkpoints" / "digits_vae_z2.safetensors")
        hole = compare.kl_hole(ck.model, digits.x_test)
        self._check(ck, digits.x_test, hole, max_ratio=0.2)
        assert hole.image.shape == (64,) and hole.log_q_grid.shape == (81, 81)

    @needs_fashion
    def test_fmnist_vae_z2(self) -> None:
        ck = load_checkpoint(ROOT / "checkpoints" / "fmnist_vae_z2.safetensors")
        x = load_dataset("fashion-mnist").x_test[:2000]
        hole = compare.kl_hole(ck.model, x, n=41)
        self._check(ck, x, hole, max_ratio=0.01)

    def test_needs_two_dims(self) -> None:
        mu, sigma = _mixture(5, 3, seed=0)
        with pytest.raises(ValueError, match="2-D"):
            compare.kl_hole_of(mu, sigma)
