"""vae_core.derivation: each derivation line is its own computation, and consecutive lines agree."""

from __future__ import annotations

import numpy as np
import pytest

from vae_core import derivation as dv
from vae_core.theory import VITarget, elbo_1d, kl_q_posterior

TARGET = VITarget()
RNG = np.random.default_rng(0)
RANDOM_Q = [(float(m), float(s)) for m, s in zip(RNG.uniform(-3, 3, 8), np.exp(RNG.uniform(np.log(0.1), np.log(3), 8)))]


@pytest.mark.parametrize("mu,sigma", RANDOM_Q)
@pytest.mark.parametrize("derive", [dv.derivation_from_kl, dv.derivation_from_evidence])
def test_every_equality_holds_to_1e6(derive, mu: float, sigma: float) -> None:
    lines = derive(TARGET, mu, sigma)
    assert dv.max_step_error(lines) < 1e-6
    assert all(line.rule in dv.RULES for line in lines)
    assert lines[-1].relation == ">=" and all(line.relation in ("=", "=>") for line in lines[:-1])


@pytest.mark.parametrize("mu,sigma", RANDOM_Q)
def test_lines_match_independent_routes(mu: float, sigma: float) -> None:
    a = dv.derivation_from_kl(TARGET, mu, sigma)
    b = dv.derivation_from_evidence(TARGET, mu, sigma)
    # the ELBO and the gap against vae_core.theory's own formulas, and log p(x) in closed form
    assert a[-1].value == pytest.approx(float(elbo_1d(TARGET, mu, sigma)), abs=1e-6)
    assert a[0].value == pytest.approx(float(kl_q_posterior(TARGET, mu, sigma)), abs=1e-6)
    assert b[0].value == TARGET.log_px() and a[-2].value == pytest.approx(TARGET.log_px(), abs=1e-6)
    assert b[-1].value <= b[-2].value  # where ">=" enters: the gap is KL >= 0
    assert a[-2].value - a[-1].value == pytest.approx(a[0].value, abs=1e-6)


def test_a_wrong_line_is_caught() -> None:
    lines = dv.derivation_from_kl(TARGET, 0.3, 0.7)
    broken = lines[:2] + [lines[2]._replace(value=lines[2].value + 0.01)] + lines[3:]
    assert dv.max_step_error(broken) == pytest.approx(0.01, abs=1e-6)


@pytest.mark.parametrize("mu,sigma", RANDOM_Q[:4])
def test_jensen_gap_is_the_kl(mu: float, sigma: float) -> None:
    j = dv.jensen_view(TARGET, mu, sigma)
    assert j.log_mean_w == pytest.approx(j.log_px, abs=1e-6)
    assert j.gap == pytest.approx(j.kl_post, abs=1e-6) and j.gap >= 0
    assert j.mean_log_w == pytest.approx(float(elbo_1d(TARGET, mu, sigma)), abs=1e-6)


def test_why_a_gaussian() -> None:
    fits = {f.family: f for f in dv.fit_all_families(TARGET)}
    assert list(fits) == list(dv.FAMILIES)
    for f in fits.values():
        assert f.gap >= -1e-8 and f.gap == pytest.approx(f.kl_direct, abs=1e-5)
        assert f.elbo <= TARGET.log_px() + 1e-8
        assert np.trapezoid(f.pdf, f.z) == pytest.approx(1.0, abs=2e-3)
    g, mix = fits["gaussian"], fits["mixture"]
    assert g.gap > 0.1  # one Gaussian cannot cover two modes
    assert mix.gap < 1e-3 and mix.elbo > g.elbo  # the mixture closes the gap
    # the best single Gaussian sits on the heavier mode
    w, m, _ = TARGET.posterior_components()
    assert g.params["mu"] == pytest.approx(m[int(np.argmax(w))], abs=0.3)
    # a grid search confirms the Gaussian fit is the optimum
    mus, lss = np.linspace(-3, 3, 121), np.linspace(np.log(0.1), np.log(2), 60)
    best = max(float(elbo_1d(TARGET, mm, np.exp(ls))) for mm in mus for ls in lss)
    assert g.elbo >= best - 1e-4
    with pytest.raises(ValueError, match="unknown family"):
        dv.fit_family(TARGET, "cauchy")
