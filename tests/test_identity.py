"""The identity log p(x) = ELBO + KL(q(z|x) || p(z|x)) holds numerically (vae_core.identity).

Checked on the shipped digits z=2 VAE, whose log p(x) is exact by quadrature, and on small
models trained here (Gaussian likelihood, z=1). Nats per image throughout.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import digits_config
from vae_core import identity as idn
from vae_core.checkpoint import load_checkpoint
from vae_core.elbo import log_importance_weights, quadrature_log_px, recon_log_likelihood
from vae_core.models import ModelConfig, build_model
from vae_core.train import TrainConfig, Trainer

CK = Path(__file__).resolve().parents[1] / "checkpoints" / "digits_vae_z2.safetensors"
IMAGES = (0, 7, 42)


# one intra-op thread per trainer thread: see tests/conftest.py::one_torch_thread
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ck():
    return load_checkpoint(CK)


@pytest.fixture(scope="module")
def vae(ck):
    return ck.model


@pytest.fixture(scope="module")
def cases(vae, digits):
    """(image index, ImageReport at K=5000, PosteriorGrid) for a few test images."""
    return [
        (
            i,
            idn.image_report(vae, digits.x_test[i], k_max=5000, seed=i),
            idn.posterior_grid(vae, digits.x_test[i]),
        )
        for i in IMAGES
    ]


class TestIdentityOnTrainedZ2:
    def test_quadrature_log_px_is_above_the_elbo(self, cases) -> None:
        for _, r, g in cases:
            assert g.log_px > r.elbo + 0.01  # a trained VAE's q is not exactly the posterior
            assert g.log_px > g.elbo_exact + 0.01

    def test_iwae_at_5000_within_half_a_nat_of_quadrature(self, cases) -> None:
        for _, r, g in cases:
            assert abs(r.log_px_hat(5000) - g.log_px) < 0.5
            assert abs(r.log_px_hat(5000) - g.log_px) < abs(r.elbo - g.log_px)  # closer than the ELBO is

    def test_iwae_rises_with_k_in_expectation(self, cases) -> None:
        for _, r, g in cases:
            mean, se = idn.expected_iwae(r.log_w, (1, 10, 100, 1000))
            assert mean[0] == pytest.approx(r.log_w.mean())  # K=1: the mean log weight, an ELBO estimate
            assert mean[0] < mean[1] < mean[3]
            assert mean[3] <= g.log_px + 3 * max(se[3], 0.01)

    def test_posterior_integrates_to_one(self, vae, digits, cases) -> None:
        for i, _, g in cases:
            assert g.mass == pytest.approx(1.0, abs=1e-6)
            assert np.exp(g.log_posterior).sum() * g.cell == pytest.approx(1.0, abs=1e-6)
            # on a wider, finer, shared box the same density still holds all the mass
            x = digits.x_test[i].float().div(255.0).unsqueeze(0)
            wide = quadrature_log_px(x, vae.decode, 2, n=300, bounds=(-8.0, 8.0))
            mass = math.exp(
                float(torch.logsumexp(wide.log_joint[0].reshape(-1).double(), 0)) - g.log_px
            ) * float(wide.cell[0])
            assert mass == pytest.approx(1.0, abs=5e-3)

    def test_view_box_holds_the_posterior_and_q(self, cases) -> None:
        for _, _, g in cases:
            lo, hi = g.view_box()
            assert (lo >= g.axes[:, 0]).all() and (hi <= g.axes[:, -1]).all()
            assert ((lo < g.mu - 2 * g.sigma) & (g.mu + 2 * g.sigma < hi)).all()
            inside = np.outer(
                (g.axes[0] >= lo[0]) & (g.axes[0] <= hi[0]), (g.axes[1] >= lo[1]) & (g.axes[1] <= hi[1])
            )
            assert g.density[inside].sum() * g.cell > 0.999
            assert (hi - lo).prod() < 0.5 * (g.axes[:, -1] - g.axes[:, 0]).prod()  # zoomed in

    def test_implied_kl_matches_kl_to_the_posterior_by_quadrature(self, cases) -> None:
        for _, r, g in cases:
            implied = g.log_px - r.elbo  # log p(x) - ELBO, with the Monte Carlo E_q[log p(x|z)]
            assert g.kl_q_post > 0.01
            assert implied == pytest.approx(g.kl_q_post, abs=4 * r.recon_se + 0.01)
            # with E_q[log p(x|z)] by quadrature too, only discretisation is left
            assert g.log_px - g.elbo_exact == pytest.approx(g.kl_q_post, abs=1e-3)
            assert g.residual == pytest.approx(g.log_px - g.elbo_exact - g.kl_q_post, abs=1e-12)
            assert abs(g.residual) < 1e-3
            assert g.recon_exact == pytest.approx(r.recon, abs=4 * r.recon_se + 1e-3)

    def test_grid_matches_elbo_quadrature(self, vae, digits, cases) -> None:
        for i, _, g in cases:
            x = digits.x_test[i].float().div(255.0).unsqueeze(0)
            with torch.no_grad():
                mu, logvar = vae.encode(x)
                ref = quadrature_log_px(x, vae.decode, 2, n=200, q=(mu, logvar))
            assert g.log_px == pytest.approx(float(ref.log_px[0]), abs=1e-3)
            np.testing.assert_allclose(g.axes, ref.axes[0].numpy(), atol=1e-5)
            np.testing.assert_allclose(g.log_posterior, ref.log_posterior()[0].double().numpy(), atol=2e-3)


class TestRepeats:
    def test_the_mean_of_repeats_matches_one_large_k_estimate_within_its_se(self, vae, digits, cases) -> None:
        for i, r, g in cases:
            rr = idn.iwae_repeats(vae, digits.x_test[i], (1, 10, 200), repeats=16, seed=i)
            mean, se = rr.at(200)
            assert (
                se > 0 and abs(mean - r.log_px_hat(5000)) < 3 * se + 0.05
            )  # the K=200 bias is a few hundredths
            assert abs(mean - g.log_px) < 3 * se + 0.05
            assert rr.mean[0] < rr.mean[1] < rr.mean[2], "the trend with K, visible in the mean"
            assert rr.at(1)[0] == pytest.approx(r.elbo, abs=4 * rr.at(1)[1] + 0.05)  # K=1: an ELBO estimate

    def test_the_se_shrinks_with_repeats_and_is_seeded(self, vae, digits) -> None:
        x = digits.x_test[IMAGES[0]]
        few = idn.iwae_repeats(vae, x, (1, 5), repeats=8, seed=0)
        many = idn.iwae_repeats(vae, x, (1, 5), repeats=128, seed=0)
        ratio = few.se / many.se  # the SE goes as 1/sqrt(repeats): 16 times the runs, about a quarter the SE
        assert np.all(ratio > 2) and np.all(ratio < 8), ratio
        again = idn.iwae_repeats(vae, x, (1, 5), repeats=8, seed=0)
        assert np.array_equal(again.mean, few.mean) and few.repeats == 8 and list(few.ks) == [1, 5]
        with pytest.raises(ValueError):
            idn.iwae_repeats(vae, x, (1,), repeats=1)
        with pytest.raises(ValueError):
            few.at(3)


class TestImageReport:
    def test_terms_add_up(self, cases) -> None:
        for _, r, _ in cases:
            assert r.elbo == pytest.approx(r.recon - r.kl)
            assert r.kl == pytest.approx(float(r.kl_per_dim.sum()))
            assert r.recon < 0 and r.kl > 0 and r.recon_se > 0
            assert r.gap(1000) == pytest.approx(r.log_px_hat(1000) - r.elbo)
            assert r.iwae.shape == r.log_w.shape == (5000,) and r.k_max == 5000

    def test_analytic_kl_formula_and_monte_carlo(self, cases) -> None:
        for _, r, _ in cases:
            mu, s = r.mu, r.sigma
            assert r.kl == pytest.approx(0.5 * float(np.sum(mu**2 + s**2 - 1 - np.log(s**2))), rel=1e-5)
            assert abs(r.mc_kl - r.kl) < 4 * r.mc_kl_se
            est, se = idn.kl_monte_carlo(mu, s, n=100_000, seed=3)
            assert abs(est - r.kl) < 4 * se and se < r.mc_kl_se  # more samples, smaller error

    def test_same_draws_as_elbo_log_importance_weights(self, vae, digits) -> None:
        x = digits.x_test[3].float().div(255.0)
        r = idn.image_report(vae, x, k_max=300, seed=11)
        with torch.no_grad():
            mu, logvar = vae.encode(x.unsqueeze(0))
            lw = log_importance_weights(
                x.unsqueeze(0), mu, logvar, vae.decode, 300, generator=torch.Generator().manual_seed(11)
            )
        np.testing.assert_allclose(r.log_w, lw[:, 0].double().numpy(), atol=1e-3)
        for k in (1, 17, 300):
            assert r.log_px_hat(k) == pytest.approx(
                float(torch.logsumexp(lw[:k, 0].double(), 0)) - math.log(k), abs=1e-3
            )
        with pytest.raises(ValueError):
            r.log_px_hat(301)

    def test_seeded(self, vae, digits) -> None:
        a = idn.image_report(vae, digits.x_test[5], k_max=50, seed=1)
        b = idn.image_report(vae, digits.x_test[5], k_max=50, seed=1)
        c = idn.image_report(vae, digits.x_test[5], k_max=50, seed=2)
        np.testing.assert_array_equal(a.log_w, b.log_w)
        assert not np.allclose(a.log_w, c.log_w)

    def test_needs_a_vae_and_a_small_latent_for_the_grid(self, digits) -> None:
        ae = build_model(digits_config("ae", 2)).eval()
        with pytest.raises(ValueError, match="VAE"):
            idn.image_report(ae, digits.x_test[0])
        z16 = build_model(digits_config("vae", 16)).eval()
        with pytest.raises(ValueError, match="latent dim 1 or 2"):
            idn.posterior_grid(z16, digits.x_test[0])


class TestGridLogLik:
    @pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
    def test_matches_recon_log_likelihood(self, likelihood: str) -> None:
        torch.manual_seed(0)
        m = build_model(ModelConfig(input_dim=784, latent_dim=2, likelihood=likelihood)).eval()
        x, z = torch.rand(784), torch.randn(3000, 2) * 4
        with torch.no_grad():
            ref = recon_log_likelihood(x, m.decode(z), likelihood)
            got = idn.grid_log_lik(m, x, z, chunk=700)  # chunks that do not divide P
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=2e-3)


@pytest.fixture(scope="module")
def trained(digits):
    def make(latent: int, likelihood: str):
        cfg = ModelConfig(
            kind="vae",
            input_dim=64,
            image_shape=(1, 8, 8),
            hidden=(64,),
            latent_dim=latent,
            likelihood=likelihood,
            obs_std=0.3,
        )
        tr = Trainer(cfg, TrainConfig(dataset="digits", epochs=10, seed=0), dataset=digits, device="cpu")
        tr.run()
        return tr.model.eval()

    return make


@pytest.mark.parametrize("latent,likelihood", [(2, "gaussian"), (1, "bernoulli")])
def test_identity_on_other_models(trained, digits, latent: int, likelihood: str) -> None:
    model = trained(latent, likelihood)
    for i in (0, 9):
        r = idn.image_report(model, digits.x_test[i], k_max=5000, seed=0)
        g = idn.posterior_grid(model, digits.x_test[i])
        assert g.log_posterior.shape == (200,) * latent
        assert g.mass == pytest.approx(1.0, abs=1e-6)
        assert g.log_px >= r.elbo - 4 * r.recon_se
        assert abs(r.log_px_hat(5000) - g.log_px) < 0.5
        assert g.log_px - r.elbo == pytest.approx(g.kl_q_post, abs=4 * r.recon_se + 0.02)


def test_history_curves_from_checkpoint(ck) -> None:
    h = ck.metadata["history"]
    c = idn.history_curves(h, smooth=1, latent_dim=2)
    n = len(h["step"])
    assert c.step.shape == c.recon_cost.shape == c.kl.shape == (n,) and c.kl_per_dim.shape == (n, 2)
    np.testing.assert_allclose(c.recon_cost, -np.asarray(h["recon"]))  # plotted as a cost, >= 0
    assert (c.recon_cost > 0).all() and (c.kl >= 0).all()
    assert c.recon_cost[-1] + c.kl[-1] < c.recon_cost[0] + c.kl[0]  # training lowered -ELBO
    np.testing.assert_allclose(c.kl_per_dim.sum(1), c.kl, rtol=1e-4)
    assert c.active_units[-1] == 2 and c.eval_step.shape == c.test_neg_elbo.shape
    sm = idn.history_curves(h, smooth=20, latent_dim=2)
    assert np.std(np.diff(sm.kl[100:])) < np.std(np.diff(c.kl[100:]))  # smoothing smooths
    assert idn.history_curves({}, latent_dim=2) is None
    broken = {**h, "loss": [None] + h["loss"][1:]}  # non-finite values come back from JSON as None
    assert np.isnan(idn.history_curves(broken).loss[0])


class TestPageHelpers:
    """What the ELBO pages take from vae_core.identity instead of computing it themselves."""

    def test_candidates_are_distinct_reproducible_and_follow_the_seed(self) -> None:
        a = idn.candidates(500, 20, seed=0)
        assert len(a) == len(set(a)) == 20 and all(0 <= i < 500 for i in a)
        assert idn.candidates(500, 20, seed=0) == a and idn.candidates(500, 20, seed=1) != a
        assert sorted(idn.candidates(5, 20, seed=0)) == [0, 1, 2, 3, 4]

    def test_k_grid_is_log_spaced_from_1_to_k_max(self) -> None:
        ks = idn.k_grid(5000)
        assert ks[0] == 1 and ks[-1] == 5000 and np.all(np.diff(ks) > 0) and 50 < len(ks) <= 400

    def test_smooth_window(self) -> None:
        assert idn.smooth_window(0) == 1 and idn.smooth_window(149) == 1 and idn.smooth_window(3000) == 20

    def test_mean_posterior_gap(self) -> None:
        assert idn.mean_posterior_gap({"iwae_subset_neg_elbo": 30.5, "iwae_nll": 29.0}) == pytest.approx(1.5)
        assert idn.mean_posterior_gap({"neg_elbo": 30.0}) is None

    def test_q_density_of_a_1d_grid(self) -> None:
        from vae_core.theory import normal_pdf

        axes = np.linspace(-3, 3, 7)[None]
        g = idn.PosteriorGrid(
            axes, np.zeros(7), 1.0, 0.0, np.array([0.5]), np.array([2.0]), 0.0, 0.0, 0.0, 0.0, 1.0
        )
        np.testing.assert_allclose(g.q_density(), normal_pdf(axes[0], 0.5, 2.0))
        with pytest.raises(ValueError):
            g._replace(axes=np.zeros((2, 7))).q_density()
