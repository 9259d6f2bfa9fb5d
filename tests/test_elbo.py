"""The ELBO math, checked numerically: analytic vs Monte Carlo, IWAE vs quadrature."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from vae_core import elbo
from vae_core.models import ModelConfig, build_model


def _batch(digits, n=8, start=0):
    return digits.batch("test", slice(start, start + n))


class TestKL:
    def test_kl_nonnegative_and_zero_only_at_prior(self):
        g = torch.Generator().manual_seed(0)
        mu, logvar = torch.randn(200, 6, generator=g) * 2, torch.randn(200, 6, generator=g) * 2
        kl = elbo.kl_per_dim(mu, logvar)
        assert kl.shape == (200, 6) and (kl >= 0).all()
        assert torch.allclose(elbo.kl_per_dim(torch.zeros(3, 2), torch.zeros(3, 2)), torch.zeros(3, 2))

    def test_matches_torch_distributions(self):
        mu, logvar = torch.tensor([[0.3, -1.2]]), torch.tensor([[-0.5, 0.8]])
        q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
        p = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
        assert torch.allclose(elbo.kl_per_dim(mu, logvar), torch.distributions.kl_divergence(q, p), atol=1e-6)
        mu_p, lv_p = torch.tensor([1.0, -2.0]), torch.tensor([0.4, -1.0])
        p2 = torch.distributions.Normal(mu_p, (0.5 * lv_p).exp())
        assert torch.allclose(
            elbo.gaussian_kl(mu, logvar, mu_p, lv_p), torch.distributions.kl_divergence(q, p2), atol=1e-6
        )

    def test_analytic_kl_within_three_standard_errors_of_monte_carlo(self):
        g = torch.Generator().manual_seed(1)
        mu, logvar = torch.randn(10, 4, generator=g), torch.randn(10, 4, generator=g) - 1.0
        est, se = elbo.mc_kl(mu, logvar, n=20_000, generator=g)
        exact = elbo.kl_per_dim(mu, logvar).sum(-1)
        assert (se > 0).all()
        assert ((est - exact).abs() <= 3 * se + 1e-6).all(), (est - exact) / se


class TestTerms:
    def test_bernoulli_and_gaussian_log_likelihoods(self):
        g = torch.Generator().manual_seed(2)
        logits = torch.randn(3, 10, generator=g)
        xb = (torch.rand(3, 10, generator=g) > 0.5).float()
        ref = torch.distributions.Bernoulli(logits=logits).log_prob(xb).sum(-1)
        assert torch.allclose(elbo.recon_log_likelihood(xb, logits), ref, atol=1e-5)
        x = torch.rand(3, 10, generator=g)
        ref = torch.distributions.Normal(torch.sigmoid(logits), 0.2).log_prob(x).sum(-1)
        assert torch.allclose(elbo.recon_log_likelihood(x, logits, "gaussian", 0.2), ref, atol=1e-4)
        with pytest.raises(ValueError, match="unknown likelihood"):
            elbo.recon_log_likelihood(x, logits, "poisson")

    def test_terms_are_consistent(self):
        g = torch.Generator().manual_seed(3)
        x, logits = torch.rand(5, 12, generator=g), torch.randn(5, 12, generator=g)
        mu, logvar = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
        t = elbo.elbo_terms(x, logits, mu, logvar, beta=1.0)
        assert t.recon.shape == (5,) and t.kl_per_dim.shape == (5, 3) and t.loss.shape == ()
        assert torch.allclose(t.kl, t.kl_per_dim.sum(-1))
        assert torch.allclose(t.elbo, t.recon - t.kl)
        assert torch.isclose(t.loss, -t.elbo.mean())
        t4 = elbo.elbo_terms(x, logits, mu, logvar, beta=4.0)
        assert torch.isclose(t4.loss, -t.recon.mean() + 4.0 * t.kl.mean())
        assert torch.allclose(t4.elbo, t.elbo)  # beta changes the objective, not the bound

    def test_ae_has_no_kl(self):
        x, logits = torch.rand(4, 6), torch.randn(4, 6)
        t = elbo.elbo_terms(x, logits, torch.randn(4, 2), None, beta=3.0)
        assert t.kl_per_dim.shape == (4, 0) and (t.kl == 0).all() and torch.isclose(t.loss, -t.recon.mean())

    def test_free_bits_floor_stops_the_push_towards_the_prior(self):
        mu = torch.tensor([[0.05, 2.0], [0.05, 2.0]], requires_grad=True)  # dim 0: tiny KL, dim 1: large KL
        logvar = torch.zeros(2, 2)
        x, logits = torch.rand(2, 4), torch.zeros(2, 4)
        t = elbo.elbo_terms(x, logits, mu, logvar, free_bits=0.5)
        kl_mean = elbo.kl_per_dim(mu, logvar).mean(0)
        assert torch.isclose(t.loss, -t.recon.mean() + 0.5 + kl_mean[1])
        t.loss.backward()
        assert (mu.grad[:, 0] == 0).all() and (mu.grad[:, 1] != 0).all()

    def test_beta_warmup_schedule(self):
        assert elbo.beta_schedule(0, 2.0, 0) == 2.0
        assert elbo.beta_schedule(0, 1.0, 100) == pytest.approx(0.01)
        assert elbo.beta_schedule(49, 1.0, 100) == pytest.approx(0.5)
        assert elbo.beta_schedule(10_000, 4.0, 100) == 4.0


class TestIWAE:
    def test_curve_matches_bound(self, trained_vae_z2, digits):
        m, x = trained_vae_z2, _batch(digits, 4)
        with torch.no_grad():
            mu, lv = m.encode(x)
            lw = elbo.log_importance_weights(
                x, mu, lv, m.decode, 300, generator=torch.Generator().manual_seed(0)
            )
            curve = elbo.iwae_curve(lw)
        assert lw.shape == (300, 4) and curve.shape == (300, 4)
        assert torch.allclose(curve[-1], torch.logsumexp(lw, 0) - math.log(300), atol=1e-4)
        assert torch.allclose(curve[0], lw[0])

    def test_bound_rises_with_k_and_stays_above_the_elbo(self, trained_vae_z2, digits):
        m, x = trained_vae_z2, _batch(digits, 16)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            mu, lv = m.encode(x)
            means, ses = [], []
            for k in (1, 10, 100, 1000):
                reps = torch.stack(
                    [elbo.iwae_bound(x, mu, lv, m.decode, k, generator=g).mean() for _ in range(12)]
                )
                means.append(float(reps.mean()))
                ses.append(float(reps.std() / math.sqrt(12)))
            # the analytic-KL ELBO with a precise (many-sample) reconstruction term
            z = mu + (0.5 * lv).exp() * torch.randn(2000, *mu.shape, generator=g)
            rec = elbo.recon_log_likelihood(x, m.decode(z.reshape(-1, 2)).reshape(2000, 16, -1)).mean(0)
            elbo_val = float((rec - elbo.kl_per_dim(mu, lv).sum(-1)).mean())
        for a, b, sa, sb in zip(means, means[1:], ses, ses[1:]):
            assert b >= a - 3 * (sa + sb), means
        assert means[-1] > means[0]  # a real rise, not noise
        assert abs(means[0] - elbo_val) < 3 * ses[0] + 0.05  # K=1 is an unbiased ELBO estimate
        assert means[-1] >= elbo_val

    def test_large_k_agrees_with_quadrature(self, trained_vae_z2, digits):
        m, x = trained_vae_z2, _batch(digits, 6, start=20)
        with torch.no_grad():
            mu, lv = m.encode(x)
            quad = elbo.quadrature_log_px(x, m.decode, 2, n=150, q=(mu, lv))
            iw = elbo.iwae_bound(x, mu, lv, m.decode, 5000, generator=torch.Generator().manual_seed(2))
            el = elbo.elbo_terms(x, m.decode(mu), mu, lv).kl  # KL part for the bound check below
            z = mu + (0.5 * lv).exp() * torch.randn(
                1000, *mu.shape, generator=torch.Generator().manual_seed(3)
            )
            rec_s = elbo.recon_log_likelihood(x, m.decode(z.reshape(-1, 2)).reshape(1000, 6, -1))  # (1000, 6)
            rec, rec_se = rec_s.mean(0), rec_s.std(0) / math.sqrt(1000)
        assert ((iw - quad.log_px).abs() < 0.5).all(), (iw, quad.log_px)
        # log p(x) >= ELBO; the ELBO's reconstruction term is a 1000-sample estimate: allow 3 SE
        assert (quad.log_px >= rec - el - 3 * rec_se).all(), (quad.log_px, rec - el, rec_se)
        assert (quad.log_px - (rec - el)).mean() > 0.05  # and the gap is real on average
        post = quad.log_posterior().exp() * quad.cell.view(-1, 1, 1)
        assert torch.allclose(post.sum((1, 2)), torch.ones(6), atol=1e-4)

    def test_quadrature_matches_scipy_for_a_1d_latent(self):
        """The adaptive float32 midpoint rule against scipy's Simpson rule on a fixed fine float64 grid."""
        torch.manual_seed(0)
        m = build_model(ModelConfig(input_dim=64, image_shape=(1, 8, 8), hidden=(16,), latent_dim=1)).eval()
        x = torch.rand(1, 64)
        with torch.no_grad():
            q = elbo.quadrature_log_px(x, m.decode, 1, n=2000)
            z = torch.linspace(-9, 9, 200_001, dtype=torch.float64).unsqueeze(1)
            md = build_model(m.config).double()
            md.load_state_dict(m.state_dict())
            lj = (elbo.recon_log_likelihood(x.double(), md.decode(z)) + elbo.log_standard_normal(z)).numpy()
        peak = lj.max()
        ref = peak + math.log(integrate.simpson(np.exp(lj - peak), x=z[:, 0].numpy()))
        assert float(q.log_px) == pytest.approx(ref, abs=2e-3)

    def test_quadrature_rejects_high_dimensional_latents(self):
        with pytest.raises(ValueError, match="latent dim 1 or 2"):
            elbo.quadrature_log_px(torch.rand(1, 4), lambda z: z, 3)


class TestContinuousBernoulli:
    """The continuous Bernoulli: a normalised density on [0, 1] (Loaiza-Ganem & Cunningham, 2019)."""

    LOGITS = torch.tensor(
        [-30.0, -8.0, -2.0, -0.5, -0.09, -1e-3, 0.0, 1e-4, 0.05, 0.0999, 0.1, 0.3, 3.0, 12.0, 40.0],
        dtype=torch.float64,
    )

    def test_density_integrates_to_one(self) -> None:
        # Gauss-Legendre on [0, 1] in float64: the density lambda^x (1-lambda)^(1-x) C is smooth in x
        nodes, weights = np.polynomial.legendre.leggauss(200)
        x = torch.tensor(0.5 * (nodes + 1.0), dtype=torch.float64)  # (200,)
        w = torch.tensor(0.5 * weights, dtype=torch.float64)
        for lg in self.LOGITS:
            logp = elbo.recon_log_likelihood(
                x.unsqueeze(1), lg.expand(200, 1), "continuous_bernoulli"
            )  # (200,)
            total = float((w * logp.exp()).sum())
            assert total == pytest.approx(1.0, abs=1e-6), (float(lg), total)

    def test_normalizer_matches_closed_form_and_series(self) -> None:
        import mpmath  # torch's own dependency (through sympy): 40-digit references

        mpmath.mp.dps = 40

        def log_c(
            lg: float,
        ) -> float:  # log(2 atanh(1 - 2 lam) / (1 - 2 lam)), with its limit log 2 at lam = 1/2
            if lg == 0.0:
                return math.log(2.0)
            lam = 1 / (1 + mpmath.exp(-mpmath.mpf(lg)))
            return float(mpmath.log(2 * mpmath.atanh(1 - 2 * lam) / (1 - 2 * lam)))

        got = elbo.cb_log_normalizer(self.LOGITS)
        ref = torch.tensor([log_c(float(v)) for v in self.LOGITS], dtype=torch.float64)
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-13)
        # the series branch against the series itself, written out to the u^8 term
        u = self.LOGITS[self.LOGITS.abs() < elbo.CB_SERIES_BELOW] / 2
        series = math.log(2) + u**2 / 3 - 7 * u**4 / 90 + 62 * u**6 / 2835 - 127 * u**8 / 18900
        torch.testing.assert_close(
            elbo.cb_log_normalizer(2 * u), series, rtol=0, atol=3e-13
        )  # the u^8 term it leaves out
        # the two branches meet at the switch point
        eps = 1e-9
        a = elbo.cb_log_normalizer(
            torch.tensor([elbo.CB_SERIES_BELOW - eps, elbo.CB_SERIES_BELOW + eps], dtype=torch.float64)
        )
        assert abs(float(a[1] - a[0])) < 1e-10

    def test_gradients_are_finite_everywhere(self) -> None:
        for dtype in (torch.float32, torch.float64):
            lg = torch.tensor(
                [-60.0, -20.0, -1e-6, 0.0, 1e-6, 0.1, 20.0, 60.0], dtype=dtype, requires_grad=True
            )
            x = torch.rand(8, dtype=dtype, generator=torch.Generator().manual_seed(0))
            ll = elbo.recon_log_likelihood(x, lg, "continuous_bernoulli")
            ll.backward()
            assert torch.isfinite(ll) and torch.isfinite(lg.grad).all(), lg.grad
            lg.grad = None
            elbo.continuous_bernoulli_mean(lg).sum().backward()
            assert torch.isfinite(lg.grad).all()

    def test_mean_is_the_density_mean(self) -> None:
        nodes, weights = np.polynomial.legendre.leggauss(200)
        x = torch.tensor(0.5 * (nodes + 1.0), dtype=torch.float64)
        w = torch.tensor(0.5 * weights, dtype=torch.float64)
        for lg in self.LOGITS:
            p = elbo.recon_log_likelihood(x.unsqueeze(1), lg.expand(200, 1), "continuous_bernoulli").exp()
            assert float(elbo.continuous_bernoulli_mean(lg)) == pytest.approx(
                float((w * x * p).sum()), abs=1e-7
            )

    def test_model_uses_it(self) -> None:
        from vae_core.models import ModelConfig, build_model

        m = build_model(
            ModelConfig(
                input_dim=64,
                image_shape=(1, 8, 8),
                hidden=(16,),
                latent_dim=2,
                likelihood="continuous_bernoulli",
            )
        )
        z = torch.zeros(3, 2)
        torch.testing.assert_close(m.mean_image(z), elbo.continuous_bernoulli_mean(m.decode(z)))
        x = torch.rand(3, 64)
        logits, mu, logvar, _ = m(x)
        t = elbo.elbo_terms(x, logits, mu, logvar, likelihood="continuous_bernoulli")
        bern = elbo.elbo_terms(x, logits, mu, logvar, likelihood="bernoulli")
        torch.testing.assert_close(t.recon - bern.recon, elbo.cb_log_normalizer(logits).sum(-1))
