"""vae_core.derivation: each derivation line is its own computation, and consecutive lines agree."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_core import derivation as dv
from vae_core.theory import VITarget, elbo_1d, kl_q_posterior

ROOT = Path(__file__).resolve().parents[1]
TARGET = VITarget()
RNG = np.random.default_rng(0)
RANDOM_Q = [
    (float(m), float(s))
    for m, s in zip(RNG.uniform(-3, 3, 8), np.exp(RNG.uniform(np.log(0.1), np.log(3), 8)))
]


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
    assert j.mismatch == abs(j.gap - j.kl_post) and j.mismatch < 1e-6


def test_why_a_gaussian() -> None:
    fits = {f.family: f for f in dv.fit_all_families(TARGET)}
    assert list(fits) == list(dv.FAMILIES)
    for f in fits.values():
        assert f.gap >= -1e-8 and f.gap == pytest.approx(f.kl_direct, abs=1e-5)
        assert f.elbo <= TARGET.log_px() + 1e-8
        assert np.trapezoid(f.pdf, f.z) == pytest.approx(1.0, abs=2e-3)
        np.testing.assert_allclose(f.pdf_on(f.z[::7]), f.pdf[::7], rtol=0, atol=1e-12)  # on its grid: itself
        mid = 0.5 * (f.z[10] + f.z[11])  # halfway between two grid points: the mean of their densities
        assert f.pdf_on(np.array([mid]))[0] == pytest.approx(0.5 * (f.pdf[10] + f.pdf[11]), abs=1e-12)
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


# ---------------------------------------------------------------------------- the family fits' quadrature and optimizer


def _double_factorial(n: int) -> int:
    return math.prod(range(n, 0, -2)) if n > 0 else 1


class TestGaussHermiteRule:
    """dv._GH_U, dv._GH_W: the 60-node rule under a standard normal that the Gaussian and mixture families use."""

    def test_nodes_and_weights(self) -> None:
        assert dv._GH_U.shape == dv._GH_W.shape == (60,)
        assert dv._GH_W.sum() == pytest.approx(1.0, abs=1e-15) and (dv._GH_W > 0).all()
        np.testing.assert_allclose(dv._GH_U, -dv._GH_U[::-1], atol=1e-13)  # symmetric
        np.testing.assert_allclose(dv._GH_W, dv._GH_W[::-1], rtol=1e-12)
        assert float(np.sum(dv._GH_W * dv._GH_U**2)) == pytest.approx(1.0, rel=1e-14)
        assert float(np.sum(dv._GH_W * dv._GH_U**4)) == pytest.approx(3.0, rel=1e-14)

    @pytest.mark.parametrize("k", range(41))
    def test_moments_of_the_standard_normal_are_exact(self, k: int) -> None:
        """E[u^k] = (k-1)!! for even k, 0 for odd k (E[u^2] = 1, E[u^4] = 3, E[u^6] = 15, ...)."""
        got = float(np.sum(dv._GH_W * dv._GH_U**k))
        if k % 2:
            assert abs(got) < 1e-12 * max(1.0, _double_factorial(k))
        else:
            assert got == pytest.approx(float(_double_factorial(k - 1)), rel=1e-11)

    @pytest.mark.parametrize("m,s", [(0.0, 1.0), (1.6, 0.45), (-2.0, 0.8), (0.5, 3.0)])
    def test_gaussian_densities_and_exponentials(self, m: float, s: float) -> None:
        """E_{u~N(0,1)}[N(u; m, s^2)] = N(m; 0, 1 + s^2) (to 1e-8: not a polynomial, but smooth) and
        E[exp(a u)] = exp(a^2 / 2)."""
        u, w = dv._GH_U, dv._GH_W
        dens = np.exp(-0.5 * (u - m) ** 2 / s**2) / math.sqrt(2 * math.pi * s**2)
        want = math.exp(-0.5 * m**2 / (1 + s**2)) / math.sqrt(2 * math.pi * (1 + s**2))
        assert float(np.sum(w * dens)) == pytest.approx(want, rel=1e-8)
        assert float(np.sum(w * np.exp(s * u))) == pytest.approx(math.exp(0.5 * s**2), rel=1e-12)
        # and a Gaussian change of variables z = mu + sigma u: E[z^2] = mu^2 + sigma^2 (the Gaussian family's own use)
        assert float(np.sum(w * (m + s * u) ** 2)) == pytest.approx(m**2 + s**2, rel=1e-13)


def _terms(family: str, theta, rule: str) -> np.ndarray:
    """dv._family_terms at theta by the fits' optimiser's Gauss-Hermite rule, or (rule="grid") the fine 2001-point grid."""
    with torch.no_grad():
        return np.array(
            [
                float(t)
                for t in dv._family_terms(
                    TARGET, family, torch.tensor(theta, dtype=torch.float64), exact=rule == "grid"
                )
            ]
        )


def _theta(fit: dv.FamilyFit) -> list[float]:
    p = fit.params
    if fit.family == "gaussian":
        return [p["mu"], math.log(p["sigma"])]
    return [
        math.log(p["pi"] / (1 - p["pi"])),
        p["mu1"],
        p["mu2"],
        math.log(p["sigma1"]),
        math.log(p["sigma2"]),
    ]


@pytest.fixture(scope="module")
def fits() -> dict[str, dv.FamilyFit]:
    return {f.family: f for f in dv.fit_all_families(TARGET)}


@pytest.fixture(scope="module")
def grid_fits() -> dict[str, dv.FamilyFit]:
    """The Gaussian and mixture fits as they were made before: with the 2001-point grid."""
    old = dv._GH_U, dv._GH_W
    dv._GH_U, dv._GH_W = dv._U, dv._W
    try:
        return {f: dv.fit_family(TARGET, f) for f in ("gaussian", "mixture")}
    finally:
        dv._GH_U, dv._GH_W = old


class TestFamilyFitsAfterTheRuleChange:
    @pytest.mark.parametrize("family", ["gaussian", "mixture"])
    def test_terms_agree_with_the_grid_at_and_around_the_fit(self, fits, family: str) -> None:
        """At the fitted q the ELBO by either rule agrees to 1e-7 nats; nearby (each parameter moved by up to 0.1)
        the terms agree to 1e-5. (Not everywhere: log p(x, z) has a smoothed kink at z = 0 that a polynomial rule
        does not resolve; a q a few sigma wide across it is off by up to ~0.05 nats.)"""
        th = np.array(_theta(fits[family]))
        gh, grid = _terms(family, th, "gh"), _terms(family, th, "grid")
        assert abs((gh[0] - gh[1]) - (grid[0] - grid[1])) < 1e-7  # the ELBO
        np.testing.assert_allclose(gh, grid, rtol=0, atol=1e-6)
        assert grid[0] - grid[1] == pytest.approx(
            fits[family].elbo, abs=1e-12
        )  # what the fit reports is the fine rule's ELBO
        rng = np.random.default_rng(0)
        for _ in range(5):
            near = th + rng.uniform(-0.1, 0.1, th.shape)
            np.testing.assert_allclose(
                _terms(family, near, "gh"), _terms(family, near, "grid"), rtol=0, atol=1e-5
            )

    def test_log_q_term_is_exact_for_the_gaussian(self) -> None:
        """E_q log q of a Gaussian is a polynomial in u: -(log 2 pi e sigma^2) / 2 by any exact rule."""
        for mu, sigma in RANDOM_Q:
            e_logq = _terms("gaussian", [mu, math.log(sigma)], "gh")[1]
            assert e_logq == pytest.approx(-0.5 * math.log(2 * math.pi * math.e * sigma**2), abs=1e-13)

    @pytest.mark.parametrize("family", ["gaussian", "mixture"])
    def test_fits_match_the_grid_fits(self, fits, grid_fits, family: str) -> None:
        a, b = fits[family], grid_fits[family]
        assert a.gap == pytest.approx(b.gap, abs=1e-7) and a.elbo == pytest.approx(b.elbo, abs=1e-7)
        assert a.kl_direct == pytest.approx(b.kl_direct, abs=1e-7)
        for k in a.params:
            assert a.params[k] == pytest.approx(b.params[k], abs=1e-4), k

    def test_gaps_and_parameters(self, fits) -> None:
        g, lap, mix = fits["gaussian"], fits["laplace"], fits["mixture"]
        assert g.gap == pytest.approx(0.3563, abs=1e-4) and lap.gap == pytest.approx(0.4117, abs=1e-4)
        assert -1e-8 < mix.gap < 1e-6 and abs(mix.kl_direct) < 1e-6
        # the Gaussian's ELBO by vae_core.theory's own formula, at the fitted parameters
        assert g.elbo == pytest.approx(float(elbo_1d(TARGET, g.params["mu"], g.params["sigma"])), abs=1e-7)
        # the mixture is the posterior itself: its weights, means and stds
        w, m, s = TARGET.posterior_components()
        p = mix.params
        assert p["pi"] == pytest.approx(w[0], abs=1e-4)
        assert (p["mu1"], p["mu2"]) == pytest.approx((m[0], m[1]), abs=1e-4)
        assert (p["sigma1"], p["sigma2"]) == pytest.approx((s[0], s[1]), abs=1e-4)

    def test_fewer_steps_stop_earlier(self) -> None:
        """``steps`` still bounds the optimizer (scipy's maxiter): 1 iteration is not the optimum, 60 are."""
        one, full = dv.fit_family(TARGET, "mixture", steps=1), dv.fit_family(TARGET, "mixture")
        assert one.gap > full.gap + 1e-3 and one.gap == pytest.approx(one.kl_direct, abs=1e-6)


FRESH_PROCESS_FIT = """
import json, sys
import torch
from vae_core import derivation as dv
from vae_core.theory import VITarget

built = []
orig = torch.optim.Optimizer.__init__
def spy(self, *a, **k):
    built.append(type(self).__name__)
    return orig(self, *a, **k)
torch.optim.Optimizer.__init__ = spy
before = 'torch._dynamo' in sys.modules
fits = dv.fit_all_families(VITarget())
after = 'torch._dynamo' in sys.modules
torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # the control: what building an optimizer does
print(json.dumps({"before": before, "after": after, "optimizers": built,
                  "control": 'torch._dynamo' in sys.modules, "gaps": [f.gap for f in fits]}))
"""


def test_fits_in_a_fresh_process_build_no_torch_optimizer() -> None:
    """The fits run on the Derivation page's first visit: no torch.optim optimizer, so torch's compiler stack
    (torch._dynamo, ~2.5 s to import) is never loaded."""
    out = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_FIT],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["before"] is False and res["after"] is False, res
    assert res["optimizers"] == ["SGD"], res  # only the control's
    assert res["control"] is True, (
        "building a torch optimizer no longer imports torch._dynamo: this check is moot"
    )
    assert res["gaps"][0] == pytest.approx(0.3563, abs=1e-4) and res["gaps"][2] < 1e-6


@pytest.mark.parametrize("x", [1.0, -0.5])
def test_a_fit_on_another_target_matches_a_fit_on_the_fine_rule_alone(x: float) -> None:
    """The fast rule only steers the optimiser: for a target whose q is wide (where 60 Gauss-Hermite nodes are off by
    up to 0.05 nats) the reported gap equals that of an L-BFGS fit done entirely on the fine grid."""
    from scipy.optimize import minimize

    target = VITarget(x=x)

    def neg_elbo(v):
        theta = torch.tensor(v, dtype=torch.float64, requires_grad=True)
        e_joint, e_logq, _ = dv._family_terms(target, "gaussian", theta, exact=True)
        loss = -(e_joint - e_logq)
        loss.backward()
        return float(loss.detach()), theta.grad.numpy().copy()

    best = max(
        -minimize(
            neg_elbo, np.asarray(s), jac=True, method="L-BFGS-B", options={"gtol": 1e-12, "ftol": 1e-15}
        ).fun
        for s in dv._starts(target, "gaussian")
    )
    fit = dv.fit_family(target, "gaussian")
    assert fit.elbo == pytest.approx(best, abs=1e-8)
    assert fit.gap == pytest.approx(target.log_px() - best, abs=1e-8) and fit.gap == pytest.approx(
        fit.kl_direct, abs=1e-9
    )
