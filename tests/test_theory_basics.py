"""Information adds, likelihood is not probability, and the Gaussian KL line by line: against quadrature and MC."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from vae_core import theory as th

RNG = np.random.default_rng(7)


class TestInformation:
    @pytest.mark.parametrize("p1,p2", [(0.5, 0.5), (0.9, 0.01), *RNG.uniform(0.001, 1.0, (4, 2)).tolist()])
    @pytest.mark.parametrize("base", [2.0, math.e])
    def test_information_of_independent_events_adds(self, p1: float, p2: float, base: float) -> None:
        r = th.information_adds(p1, p2, base)
        assert r.info_joint == pytest.approx(r.info_sum, abs=1e-12)
        assert r.info_joint == pytest.approx(-math.log(p1 * p2, base), abs=1e-12)

    def test_bits_and_the_curve(self) -> None:
        r = th.information_adds(0.5, 0.25, base=2)
        assert (r.info_p1, r.info_p2, r.info_joint) == pytest.approx((1.0, 2.0, 3.0))
        assert r.info_p1 * r.info_p2 == pytest.approx(2.0)  # the product a source writes is not the 3 bits
        assert np.all(np.diff(r.info_grid) < 0)  # decreasing in p: rarer events carry more information
        assert r.p_grid[-1] == 1.0 and r.info_grid[-1] == 0.0  # a sure event carries none
        with pytest.raises(ValueError):
            th.information_adds(0.0, 0.5)


class TestLikelihoodVsProbability:
    @pytest.mark.parametrize("n,k,theta", [(10, 7, 0.5), (1, 0, 0.3), (25, 25, 0.9), (40, 13, 0.02)])
    def test_the_two_readings(self, n: int, k: int, theta: float) -> None:
        r = th.likelihood_vs_probability(n, k, theta)
        np.testing.assert_allclose(
            r.pmf, stats.binom.pmf(np.arange(n + 1), n, theta), rtol=1e-10, atol=1e-300
        )
        assert r.pmf_sum == pytest.approx(1.0, abs=1e-12)  # a distribution over the data
        # the likelihood integrates to 1/(n+1), not 1: by the grid, by adaptive quadrature, and in closed form
        quad, _ = integrate.quad(lambda t: stats.binom.pmf(k, n, t), 0.0, 1.0, epsabs=1e-13, points=[k / n])
        assert r.likelihood_integral_exact == pytest.approx(1.0 / (n + 1))
        assert quad == pytest.approx(r.likelihood_integral_exact, abs=1e-10)
        assert r.likelihood_integral == pytest.approx(r.likelihood_integral_exact, abs=1e-6)
        assert abs(r.likelihood_integral - 1.0) > 0.01
        assert abs(r.thetas[np.argmax(r.likelihood)] - r.mle) <= r.thetas[1]  # peaks at k/n

    def test_bad_input(self) -> None:
        with pytest.raises(ValueError):
            th.likelihood_vs_probability(5, 6)
        with pytest.raises(ValueError):
            th.likelihood_vs_probability(5, 2, theta=1.5)


Q_CASES = [(0.0, 1.0), (1.3, 0.4), (-2.0, 2.5), (0.5, 0.05)]


def _expect(fn, mu: float, sigma: float) -> float:
    """E_q[fn(z)] under q = N(mu, sigma^2) by adaptive quadrature over mu +- 12 sigma."""

    def integrand(z: float) -> float:
        return th.normal_pdf(z, mu, sigma) * fn(z)

    val, _ = integrate.quad(
        integrand, mu - 12 * sigma, mu + 12 * sigma, epsabs=1e-13, epsrel=1e-13, limit=200
    )
    return val


class TestKLSteps:
    @pytest.mark.parametrize("mu,sigma", Q_CASES)
    def test_each_line_by_quadrature(self, mu: float, sigma: float) -> None:
        s = th.gaussian_kl_steps(mu, sigma)

        def log_q(z: float) -> float:
            return -0.5 * math.log(2 * math.pi * sigma**2) - (z - mu) ** 2 / (2 * sigma**2)

        def log_p(z: float) -> float:
            return -0.5 * math.log(2 * math.pi) - z * z / 2

        assert _expect(lambda z: (z - mu) ** 2, mu, sigma) == pytest.approx(s.second_moment_centred, rel=1e-9)
        assert _expect(lambda z: z * z, mu, sigma) == pytest.approx(s.second_moment, rel=1e-9, abs=1e-12)
        assert _expect(log_q, mu, sigma) == pytest.approx(s.e_log_q, abs=1e-9)
        assert _expect(log_p, mu, sigma) == pytest.approx(s.e_log_p, abs=1e-9)
        assert _expect(lambda z: log_q(z) - log_p(z), mu, sigma) == pytest.approx(s.kl_definition, abs=1e-9)
        for _, value in s.lines():  # every line has the same value
            assert value == pytest.approx(s.kl_closed_form, abs=1e-12)
        q = torch.distributions.Normal(torch.tensor(mu, dtype=torch.float64), sigma)
        ref = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0))
        assert s.kl_closed_form == pytest.approx(float(ref), abs=1e-12)

    @pytest.mark.parametrize("mu,sigma", Q_CASES)
    def test_each_expectation_by_monte_carlo(self, mu: float, sigma: float) -> None:
        s = th.gaussian_kl_steps(mu, sigma)
        z = np.random.default_rng(0).normal(mu, sigma, 200_000)
        log_q = -0.5 * np.log(2 * np.pi * sigma**2) - (z - mu) ** 2 / (2 * sigma**2)
        log_p = -0.5 * np.log(2 * np.pi) - z**2 / 2
        for samples, exact in ((log_q, s.e_log_q), (log_p, s.e_log_p), (log_q - log_p, s.kl_definition)):
            se = samples.std(ddof=1) / math.sqrt(z.size)
            assert abs(samples.mean() - exact) <= 4 * se + 1e-12

    def test_refuses_a_non_positive_sigma(self) -> None:
        with pytest.raises(ValueError):
            th.gaussian_kl_steps(0.0, 0.0)


class TestConditionalEntropy:
    @pytest.mark.parametrize("noise", [0.0, 0.1, 0.5, 0.75, 1.0])
    @pytest.mark.parametrize("base", [2.0, math.e])
    def test_chain_rule_and_mutual_information(self, noise: float, base: float) -> None:
        joint = th.noisy_report_joint(np.array([4, 2, 1, 1]), noise)
        assert joint.sum() == pytest.approx(1.0) and joint.shape == (4, 4)
        r = th.conditional_entropy(joint, base)
        assert r.h_x_given_y == pytest.approx(r.chain_rule, abs=1e-12)  # two ways, one number
        assert 0.0 <= r.h_x_given_y <= r.h_x + 1e-12  # knowing Y never adds uncertainty on average
        assert r.mutual_info == pytest.approx(r.h_x - r.h_x_given_y, abs=1e-12)
        # by the definition I = sum p(x,y) log p(x,y) / (p(x) p(y))
        px, py = joint.sum(1), joint.sum(0)
        nz = joint > 0
        mi = float((joint[nz] * np.log(joint[nz] / np.outer(px, py)[nz])).sum() / math.log(base))
        assert r.mutual_info == pytest.approx(mi, abs=1e-12)

    def test_the_two_ends(self) -> None:
        p = np.array([0.5, 0.25, 0.125, 0.125])
        exact = th.conditional_entropy(th.noisy_report_joint(p, 0.0), 2.0)  # Y = X: nothing left to learn
        assert exact.h_x_given_y == pytest.approx(0.0, abs=1e-12)
        assert exact.mutual_info == pytest.approx(1.75)  # = H(X) in bits
        useless = th.conditional_entropy(np.outer(p, [0.3, 0.7]), 2.0)  # Y independent of X
        assert useless.h_x_given_y == pytest.approx(1.75) and useless.mutual_info == pytest.approx(
            0.0, abs=1e-12
        )

    def test_bad_input(self) -> None:
        with pytest.raises(ValueError):
            th.conditional_entropy(np.zeros((2, 2)))
        with pytest.raises(ValueError):
            th.noisy_report_joint(np.array([1.0, 1.0]), 1.5)
