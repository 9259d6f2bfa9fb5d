"""Theory maths against closed forms and quadrature, and the Theory page through AppTest."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

from vae_core import theory as th  # noqa: E402

RNG = np.random.default_rng(1234)
RANDOM_PAIRS = [(RNG.dirichlet(np.ones(5)), RNG.dirichlet(np.ones(5))) for _ in range(5)]


class TestDiscrete:
    @pytest.mark.parametrize("n", [2, 4, 7])
    def test_uniform_entropy_is_log_n(self, n: int) -> None:
        p = np.full(n, 1.0 / n)
        assert th.entropy(p) == pytest.approx(math.log(n), abs=1e-12)
        assert th.entropy(p, base=2) == pytest.approx(math.log2(n), abs=1e-12)

    def test_known_values_in_bits(self) -> None:
        s = th.discrete_summary(np.array([4, 2, 1, 1]), np.array([1, 1, 1, 1]), base=2)
        assert s.h_p == pytest.approx(1.75)
        assert s.h_q == pytest.approx(2.0)
        assert s.h_pq == pytest.approx(2.0)
        assert s.kl_pq == pytest.approx(0.25)
        np.testing.assert_allclose(s.info_p, [1.0, 2.0, 3.0, 3.0])

    def test_kl_asymmetry_exact(self) -> None:
        p, q = np.array([0.5, 0.25, 0.125, 0.125]), np.array([0.7, 0.1, 0.1, 0.1])
        kl_pq = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
        kl_qp = sum(qi * math.log(qi / pi) for pi, qi in zip(p, q))
        assert th.kl_discrete(p, q) == pytest.approx(kl_pq, abs=1e-12)
        assert th.kl_discrete(q, p) == pytest.approx(kl_qp, abs=1e-12)
        assert abs(kl_pq - kl_qp) > 0.01
        s = th.discrete_summary(p, q)
        assert s.kl_pq == pytest.approx(s.h_pq - s.h_p) and s.kl_qp == pytest.approx(s.h_qp - s.h_q)

    @pytest.mark.parametrize("p,q", RANDOM_PAIRS)
    def test_kl_identities(self, p: np.ndarray, q: np.ndarray) -> None:
        assert th.kl_discrete(p, p) == 0.0
        assert th.kl_discrete(p, q) > 0.0
        assert th.cross_entropy(p, q) - th.entropy(p) == pytest.approx(th.kl_discrete(p, q), abs=1e-12)
        assert th.kl_discrete(p, q, base=2) == pytest.approx(th.kl_discrete(p, q) / math.log(2), abs=1e-12)

    def test_zero_probability_edges(self) -> None:
        p, q = np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.0, 0.5])
        assert th.entropy(p) == pytest.approx(math.log(2))  # 0 log 0 = 0
        assert math.isinf(th.kl_discrete(p, q)) and math.isinf(th.cross_entropy(p, q))
        assert math.isinf(th.information(p)[2])
        with pytest.raises(ValueError):
            th.normalize(np.zeros(3))


class TestGaussians:
    @pytest.mark.parametrize(
        "mu1,s1,mu2,s2", [(0, 1, 0, 1), (1, 0.5, 0, 1), (-2, 2, 1, 0.7), (0.3, 0.2, -0.4, 2.5)]
    )
    def test_analytic_within_3_se_of_mc(self, mu1: float, s1: float, mu2: float, s2: float) -> None:
        exact = th.gaussian_kl_1d(mu1, s1, mu2, s2)
        formula = math.log(s2 / s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - 0.5
        assert exact == pytest.approx(formula, abs=1e-12)
        mc = th.mc_gaussian_kl(mu1, s1, mu2, s2, n=20_000, seed=3)
        if exact == 0.0:
            assert abs(mc.estimate) < 1e-12  # identical Gaussians: every log ratio is 0
            assert mc.standard_errors_from(exact) < 1.0  # a stderr of 0 is floored, not divided by
        else:
            assert mc.stderr > 0 and abs(mc.estimate - exact) < 3 * mc.stderr
            assert mc.standard_errors_from(exact) == pytest.approx(abs(mc.estimate - exact) / mc.stderr)

    def test_standard_errors_from(self) -> None:
        assert th.MCEstimate(1.5, 0.25).standard_errors_from(1.0) == 2.0
        assert th.MCEstimate(0.5, 0.25).standard_errors_from(1.0) == 2.0  # a distance: no sign
        assert th.MCEstimate(0.0, 0.0).standard_errors_from(0.0) == 0.0

    def test_vae_term_is_the_standard_normal_case(self) -> None:
        for mu, s in [(0.0, 1.0), (1.0, 0.5), (-2.0, 1.7)]:
            assert th.vae_kl_term(mu, s) == pytest.approx(th.gaussian_kl_1d(mu, s, 0.0, 1.0), abs=1e-12)
        assert th.vae_kl_term(0.0, 1.0) == 0.0
        assert th.vae_kl_term(1.0, 0.5) == pytest.approx(0.5 * (1 + 0.25 - 1 - math.log(0.25)))


class TestVariationalInference:
    target = th.VITarget()

    def test_log_px_matches_brute_force_quadrature(self) -> None:
        z = np.linspace(-12, 12, 100_001)
        lj = self.target.log_joint(torch.from_numpy(z)).numpy()
        assert math.log(np.trapezoid(np.exp(lj), z)) == pytest.approx(self.target.log_px(), abs=1e-9)

    def test_posterior_is_normalised_and_consistent(self) -> None:
        z = np.linspace(-8, 8, 40_001)
        assert np.trapezoid(self.target.posterior_pdf(z), z) == pytest.approx(1.0, abs=1e-9)
        lj = self.target.log_joint(torch.from_numpy(z)).numpy()
        np.testing.assert_allclose(self.target.log_posterior(z), lj - self.target.log_px(), atol=1e-9)

    @pytest.mark.parametrize("mu,sigma", [(0.0, 1.0), (1.6, 0.45), (-1.6, 0.3), (3.0, 0.05), (-2.0, 2.5)])
    def test_elbo_plus_kl_is_log_px(self, mu: float, sigma: float) -> None:
        elbo = float(th.elbo_1d(self.target, mu, sigma))
        kl = float(th.kl_q_posterior(self.target, mu, sigma))
        assert kl > 0.0
        assert elbo < self.target.log_px()
        assert elbo + kl == pytest.approx(self.target.log_px(), abs=1e-6)

    def test_elbo_matches_dense_quadrature(self) -> None:
        mu, sigma = 0.4, 1.3
        z = np.linspace(mu - 14 * sigma, mu + 14 * sigma, 200_001)
        q = th.normal_pdf(z, mu, sigma)
        lj = self.target.log_joint(torch.from_numpy(z)).numpy()
        dense = np.trapezoid(q * (lj - np.log(q)), z)
        assert float(th.elbo_1d(self.target, mu, sigma)) == pytest.approx(dense, abs=1e-6)

    def test_kl_against_closed_form_for_a_gaussian_posterior(self) -> None:
        # one likelihood term: conjugate model, p(z|x) = N(c x / (s^2 + c^2), s^2 / (s^2 + c^2))
        t = th.VITarget(x=1.5, noise_std=0.8, weights=(1.0,), slopes=(1.0,))
        m, sd = 1.5 / 1.64, math.sqrt(0.64 / 1.64)
        for mu, sigma in [(0.0, 1.0), (m, sd), (-1.0, 0.3)]:
            expect = th.gaussian_kl_1d(mu, sigma, m, sd)
            assert float(th.kl_q_posterior(t, mu, sigma)) == pytest.approx(expect, abs=1e-9)
        assert float(th.elbo_1d(t, m, sd)) == pytest.approx(t.log_px(), abs=1e-9)  # exact posterior: no gap

    def test_landscape_shape_and_agreement(self) -> None:
        mus, lss = np.linspace(-3, 3, 7), np.linspace(-2, 0.5, 5)
        land = th.elbo_landscape(self.target, mus, lss)
        assert land.shape == (5, 7)
        assert land[2, 4] == pytest.approx(
            float(th.elbo_1d(self.target, mus[4], math.exp(lss[2]))), abs=1e-12
        )
        assert land.max() < self.target.log_px()

    def test_landscape_grid_spans_its_ranges(self) -> None:
        mus, lss, land = th.landscape_grid(self.target, (-2.0, 2.0), (-1.0, 0.0), n_mu=5, n_log_sigma=3)
        assert mus.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0] and lss.tolist() == [-1.0, -0.5, 0.0]
        np.testing.assert_allclose(land, th.elbo_landscape(self.target, mus, lss), rtol=0, atol=1e-12)
        mus, lss, land = th.landscape_grid(self.target)  # the page's default: 81 mu by 61 log sigma
        assert (mus[0], mus[-1], lss[0], lss[-1]) == (-4.0, 4.0, -3.0, 1.0) and land.shape == (61, 81)

    def test_sgd_fit_raises_the_elbo(self) -> None:
        traj = th.fit_q_sgd(self.target, mu0=-0.5, sigma0=1.0, steps=150, lr=0.05, n_samples=8, seed=0)
        assert traj.mu.shape == traj.log_sigma.shape == traj.elbo.shape == (151,)
        assert traj.elbo_estimate.shape == (150,)
        assert traj.elbo[-1] > traj.elbo[0] + 1.0
        assert traj.elbo[-1] < self.target.log_px()
        # lands near one of the posterior modes (+-1.6), with sigma near the component std 0.447
        assert abs(abs(traj.mu[-1]) - 1.6) < 0.3
        assert 0.25 < math.exp(traj.log_sigma[-1]) < 0.7
        assert traj.steps == 150
        np.testing.assert_allclose(traj.sigma, np.exp(traj.log_sigma), rtol=1e-15)


class TestGradientEstimators:
    @pytest.mark.parametrize("f_name", list(th.GRAD_FUNCTIONS))
    def test_both_unbiased_within_3_se(self, f_name: str) -> None:
        g = th.grad_estimators(f_name, mu=0.5, sigma=0.8, n=20_000, seed=7)
        rep, sco = th.summarize(g.reparam), th.summarize(g.score)
        assert abs(rep.mean - g.exact) < 3 * rep.stderr + 1e-12
        assert abs(sco.mean - g.exact) < 3 * sco.stderr

    def test_exact_gradients_by_finite_differences(self) -> None:
        # d/dmu E[f(mu + sigma eps)] by central differences on a dense quadrature of E
        u = np.linspace(-12, 12, 20_001)
        w = th.normal_pdf(u, 0.0, 1.0) * (u[1] - u[0])
        for name, fc in th.GRAD_FUNCTIONS.items():
            mu, s, h = 0.7, 0.9, 1e-4
            e = lambda m, fc=fc, s=s: float((fc.f(m + s * u) * w).sum())  # noqa: E731
            assert fc.exact(mu, s) == pytest.approx((e(mu + h) - e(mu - h)) / (2 * h), rel=1e-6), name

    def test_z_squared_at_mu_1(self) -> None:
        g = th.grad_estimators("z^2", mu=1.0, sigma=1.0, n=20_000, seed=0)
        assert g.exact == 2.0
        rep, sco = th.summarize(g.reparam), th.summarize(g.score)
        assert abs(rep.mean - 2.0) < 3 * rep.stderr
        assert abs(sco.mean - 2.0) < 3 * sco.stderr
        assert th.variance_ratio(sco, rep) == pytest.approx(sco.var / rep.var)
        # reparam: Var[2z] = 4 sigma^2 = 4; the score function's variance is several times larger
        assert rep.var == pytest.approx(4.0, rel=0.05)
        assert sco.var > 3 * rep.var

    def test_variance_ratio_of_a_noiseless_estimator(self) -> None:
        noiseless, noisy = th.Summary(1.0, 0.0, 0.0), th.Summary(1.0, 3.0, 0.1)
        assert th.variance_ratio(noisy, th.Summary(1.0, 1.5, 0.1)) == 2.0
        assert th.variance_ratio(noisy, noiseless) == 3.0 / 1e-300  # finite, not a division by zero

    def test_unknown_function_raises(self) -> None:
        with pytest.raises(ValueError):
            th.grad_estimators("tan z", 0.0, 1.0)


class TestPageHelpers:
    """What the Derivation page's fit animation and landscape take from vae_core.theory."""

    def test_fit_frames_are_evenly_spaced_and_keep_both_ends(self) -> None:
        traj = th.fit_q_sgd(th.VITarget(), steps=150, n_samples=4)
        z = np.linspace(-4, 4, 50)
        frames = th.fit_frames(traj, z, max_frames=60)
        steps = [t for t, _, _ in frames]
        assert len(frames) == 60 and steps[0] == 0 and steps[-1] == 150 and steps == sorted(set(steps))
        t, pdf, elbo = frames[7]
        np.testing.assert_allclose(pdf, th.normal_pdf(z, traj.mu[t], math.exp(traj.log_sigma[t])))
        assert elbo == traj.elbo[t]
        short = th.fit_q_sgd(th.VITarget(), steps=5, n_samples=2)
        assert [t for t, _, _ in th.fit_frames(short, z)] == list(range(6))

    def test_density_top_fits_the_posterior_and_the_narrowest_q(self) -> None:
        post = np.array([0.1, 0.4, 0.2])
        assert th.density_top(post, np.array([2.0, 3.0])) == pytest.approx(1.05 * 0.4)
        assert th.density_top(post, np.array([0.1, 1.0])) == pytest.approx(
            1.05 / (0.1 * math.sqrt(2 * math.pi))
        )

    def test_clip_landscape_floors_far_corners_only(self) -> None:
        land = np.array([[-1.0, -20.0], [-3.0, -9.5]])
        np.testing.assert_allclose(th.clip_landscape(land, -1.0), [[-1.0, -9.0], [-3.0, -9.0]])

    def test_snap_to_slider_rounds_and_clips(self) -> None:
        assert th.snap_to_slider(1.23456, -4, 4) == 1.23
        assert th.snap_to_slider(7.0, -4, 4) == 4.0 and th.snap_to_slider(0.01, 0.05, 3.0) == 0.05


class TestTheoryPage:
    def test_page_runs_and_reacts(self) -> None:
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file(str(ROOT / "lab_pages" / "theory.py"), default_timeout=60)
        at.run()
        assert not at.exception
        assert len(at.header) == 3

        # section 1: more mass on "sun" lowers the entropy in bits
        h_before = at.metric[0].value
        at.slider(key="theory_p_0").set_value(10).run()
        assert not at.exception
        assert float(at.metric[0].value) < float(h_before)

        # (variational inference, once section 3, is the Derivation page now: tests/test_derivation_page.py)

        # section 2: the button sets p = N(0, 1)
        at.slider(key="theory_mu2").set_value(1.0).run()
        at.button(key="theory_set_std").click().run()
        assert not at.exception
        assert at.slider(key="theory_mu2").value == 0.0 and at.slider(key="theory_s2").value == 1.0
        analytic = next(m for m in at.metric if m.label.startswith("analytic KL")).value
        assert float(analytic) == pytest.approx(th.vae_kl_term(1.0, 0.5), abs=1e-4)  # default q = N(1, 0.5^2)
        at.slider(key="theory_mu1").set_value(2.0).run()
        assert next(m for m in at.metric if m.label.startswith("analytic KL")).value != analytic

        # section 3: a different f changes the variances shown
        v0 = next(m for m in at.metric if m.label == "variance, score function").value
        at.selectbox(key="theory_f").set_value("exp z").run()
        assert not at.exception
        assert next(m for m in at.metric if m.label == "variance, score function").value != v0

    def test_page_renders_in_chinese(self) -> None:
        """?lang=zh: every section draws, and a changed unit and function still draw, without an exception."""
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file(str(ROOT / "lab_pages" / "theory.py"), default_timeout=60)
        at.query_params["lang"] = "zh"
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert at.session_state["lang"] == "zh_CN" and len(at.header) == 3 and len(at.metric) == 19
        at.radio(key="theory_unit").set_value("nats").run()
        at.selectbox(key="theory_f").set_value("sin z").run()
        assert not at.exception, [e.value for e in at.exception]
