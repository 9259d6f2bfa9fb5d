"""The ELBO as a functional J[q] and its first variation on the Derivation page's 1-D model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vae_core import derivation as dv
from vae_core.theory import VITarget, elbo_1d

TARGET = VITarget()
TANGENT = ("mu", "log_sigma", "mu_and_log_sigma")


@pytest.fixture(scope="module")
def study() -> dv.VariationStudy:
    return dv.variation_study(TARGET)


def _by_direction(rows: list[dv.FirstVariation]) -> dict[str, dv.FirstVariation]:
    return {fv.direction: fv for fv in rows}


def test_the_functional_at_a_gaussian_is_its_elbo(study: dv.VariationStudy) -> None:
    for fv in study.at_best + study.off_best:
        assert fv.j_q == pytest.approx(float(elbo_1d(TARGET, fv.mu, fv.sigma)), abs=1e-10)
        assert abs(fv.eta_integral) < 1e-12  # q + e eta keeps total mass 1
        assert fv.admissible.all()  # and stays >= 0: a density for every e in the table
    assert study.at_best[0].j_q == pytest.approx(study.best.elbo, abs=1e-10)


def test_tangent_directions_vanish_at_the_best_gaussian_only(study: dv.VariationStudy) -> None:
    best, off = _by_direction(study.at_best), _by_direction(study.off_best)
    for d in TANGENT:
        assert abs(best[d].derivative) < 1e-6, d
        assert abs(best[d].quotient[-1]) < 2e-5, d  # e = 1e-5
        assert abs(off[d].derivative) > 0.1, d  # off the optimum the ELBO still changes along the family


@pytest.mark.parametrize("where", ["at_best", "off_best"])
def test_quotients_converge_linearly_in_epsilon(study: dv.VariationStudy, where: str) -> None:
    for fv in getattr(study, where):
        if fv.direction == "posterior":
            continue
        err = np.abs(fv.quotient - fv.derivative)  # (E,) for e = 1e-1 .. 1e-5
        assert np.all(np.diff(err) < 0), (fv.direction, err)
        ratios = err[:-1] / err[1:]
        assert np.all((ratios > 7) & (ratios < 13)), (
            fv.direction,
            ratios,
        )  # each decade of e: a decade of error
        # the leading error is e/2 times the second variation, -integral eta^2 / q dz
        second = -float(np.sum(np.gradient(fv.z) * fv.eta**2 / fv.q))
        assert fv.quotient[-1] - fv.derivative == pytest.approx(0.5 * 1e-5 * second, rel=1e-2)


def test_tangent_derivatives_are_the_elbos_parameter_derivatives(study: dv.VariationStudy) -> None:
    """An independent route: central differences of the quadrature ELBO in mu and log sigma."""
    h = 1e-5
    for fv in study.off_best + study.at_best:
        mu, sigma = fv.mu, fv.sigma
        d_mu = (elbo_1d(TARGET, mu + h, sigma) - elbo_1d(TARGET, mu - h, sigma)) / (2 * h)
        d_ls = (elbo_1d(TARGET, mu, sigma * math.exp(h)) - elbo_1d(TARGET, mu, sigma * math.exp(-h))) / (
            2 * h
        )
        expect = {
            "mu": sigma * d_mu,
            "log_sigma": d_ls,
            "mu_and_log_sigma": (sigma * d_mu + d_ls) / math.sqrt(2),
        }
        if fv.direction in expect:
            assert fv.derivative == pytest.approx(float(expect[fv.direction]), abs=1e-7), fv.direction


def test_towards_the_posterior_the_elbo_still_rises(study: dv.VariationStudy) -> None:
    gap = study.best.gap  # log p(x) - ELBO(q*) = KL(q* || p(z|x))
    for fv in (_by_direction(study.at_best)["posterior"], _by_direction(study.off_best)["posterior"]):
        # the first variation is KL(p || q) + KL(q || p) on the grid, p the posterior renormalised there
        dz = np.full(fv.z.shape, fv.z[1] - fv.z[0])
        dz[[0, -1]] *= 0.5
        post = TARGET.posterior_pdf(fv.z)
        p = post / float(dz @ post)
        np.testing.assert_allclose(fv.eta, p - fv.q, rtol=0, atol=1e-12)
        log_ratio = np.log(p) - np.log(fv.q)
        assert fv.derivative == pytest.approx(float(dz @ ((p - fv.q) * log_ratio)), rel=1e-9)
        assert fv.derivative > 1.0
        # J is concave in q: every quotient lies between the gap and the derivative, rising as e shrinks
        assert np.all(np.diff(fv.quotient) > 0)
        assert np.all(fv.quotient <= fv.derivative)
    best = _by_direction(study.at_best)["posterior"]
    assert np.all(best.quotient >= gap) and gap > 0.1


def test_inadmissible_steps_and_bad_directions() -> None:
    fv = dv.first_variation(TARGET, 0.0, 1.0, "mu", eps=(0.5, 0.01))
    assert fv.admissible.tolist() == [False, True]  # 1 + 0.5 u < 0 for u < -2: not a density
    assert math.isnan(fv.quotient[0]) and math.isfinite(fv.quotient[1])
    with pytest.raises(ValueError, match="unknown direction"):
        dv.first_variation(TARGET, 0.0, 1.0, "nu")
