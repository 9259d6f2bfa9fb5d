"""The ELBO derived line by line, with every line's value on the Theory page's 1-D model, and the
answer to "why a Gaussian q?" in numbers.

The model is :class:`vae_core.theory.VITarget`: p(z) = N(0, 1), a two-slope likelihood, a
two-mode posterior p(z|x) and an exactly known log p(x). For a Gaussian q = N(mu, sigma^2) set
by the user, each line of each derivation is evaluated from *its own* expression (by quadrature
under q, on the 2001-node rule of :mod:`vae_core.theory`), so when consecutive lines agree to
1e-6 the room sees the equality hold rather than a number copied down the column.

- :func:`derivation_from_kl`: start from KL(q || p(z|x)) and expand it with Bayes' rule.
- :func:`derivation_from_evidence`: start from log p(x) = integral q(z) log p(x) dz and split
  log p(x) = log p(x, z) - log p(z|x).
- :func:`jensen_view`: log p(x) = log E_q[w] >= E_q[log w] = ELBO, with w = p(x, z)/q(z); the
  gap of Jensen's inequality equals KL(q || p(z|x)).
- :func:`fit_family`: the best ELBO a Gaussian, a Laplace or a two-Gaussian mixture q reaches,
  fitted by L-BFGS on the exact (quadrature) ELBO, and the gap KL(q || p(z|x)) left to each.
- :func:`first_variation` and :func:`variation_study`: the ELBO as a functional J[q] of the density q, and
  its first variation d/de J[q + e eta] at e = 0 along a direction eta: zero at the best Gaussian for every
  direction that stays in the family, positive towards the true posterior.

Every value is in nats. Nothing here imports streamlit; text labels are left to the page.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from .theory import LOG_2PI, VITarget, gaussian_kl_1d

__all__ = [
    "RULES",
    "DerivationLine",
    "derivation_from_kl",
    "derivation_from_evidence",
    "JensenView",
    "jensen_view",
    "FAMILIES",
    "FamilyFit",
    "fit_family",
    "fit_all_families",
    "max_step_error",
    "DIRECTIONS",
    "EPSILONS",
    "functional_elbo",
    "FirstVariation",
    "first_variation",
    "VariationStudy",
    "variation_study",
]

# The rule each line uses, by key (the page translates the keys).
RULES = (
    "start",
    "definition_kl",
    "bayes",
    "integral_q_one",
    "linearity",
    "rearrange",
    "kl_nonnegative",
    "marginal",
    "multiply_divide_q",
    "jensen",
)
FAMILIES = ("gaussian", "laplace", "mixture")

# Quadrature under a standard normal, in float64: the same rule as vae_core.theory uses for elbo_1d.
_U = np.linspace(-10.0, 10.0, 2001)
_W = np.exp(-0.5 * _U**2)
_W = _W / _W.sum()
# The family fits' optimiser's rule under a standard normal: 60-node Gauss-Hermite (exact for polynomials to degree
# 119) at a thirtieth of the grid's nodes, as the fits run on a page's first visit. Near an optimum it agrees with the
# grid to under 1e-5 nats (4e-9 at the default target's); the values a fit reports come from the grid (_family_terms).
_GH_U, _GH_W = np.polynomial.hermite_e.hermegauss(60)
_GH_W = _GH_W / _GH_W.sum()
# Under a standard Laplace (density e^{-|t|}/2): a fine grid with a node on the kink at 0.
_T = np.linspace(-45.0, 45.0, 18001)
_TW = 0.5 * np.exp(-np.abs(_T))
_TW = _TW / _TW.sum()


class DerivationLine(NamedTuple):
    """One line of a derivation: its formula, the rule that leads to it, and its value on the 1-D model."""

    latex: str  # the right-hand side of the line, in LaTeX (words inside go through the page's translator)
    rule: str  # a key of RULES: why this line follows from the one above
    value: float  # the line's value for the current q, nats
    relation: str  # how this line follows from the one above: "=" (same value), "=>" (rearranged into
    # an identity: its value is its left side, log p(x)) or ">=" (a bound on the line above)


def _gauss_expect(target: VITarget, mu: float, sigma: float) -> dict[str, float]:
    """Every expectation under q = N(mu, sigma^2) that the derivations use, each by quadrature, nats."""
    z = mu + sigma * _U  # (U,)
    zt = torch.from_numpy(z)
    log_joint = target.log_joint(zt).numpy()
    log_prior = -0.5 * (LOG_2PI + z**2)
    log_lik = log_joint - log_prior
    log_q = -0.5 * (LOG_2PI + 2.0 * math.log(sigma) + ((z - mu) / sigma) ** 2)
    log_post = target.log_posterior(z)
    e = lambda f: float(f @ _W)  # noqa: E731
    return {
        "E_log_q": e(log_q),
        "E_log_post": e(log_post),
        "E_log_lik": e(log_lik),
        "E_log_prior": e(log_prior),
        "E_log_joint": e(log_joint),
        "log_E_w": _log_mean_weight(target, mu, sigma),
        "E_log_px_const": float(
            target.log_px() * _W.sum()
        ),  # integral q(z) log p(x) dz, with the rule's own weights
    }


# A wide fixed grid for log E_q[w]: w = p(x, z)/q(z) is heavy where q is thin, so q's own nodes miss it.
_Z_WIDE = np.linspace(-12.0, 12.0, 24001)


def _log_mean_weight(target: VITarget, mu: float, sigma: float) -> float:
    """log E_q[p(x, z)/q(z)] = log integral q(z) (p(x, z)/q(z)) dz on a wide fixed grid, nats (trapezoid rule)."""
    z = _Z_WIDE
    log_q = -0.5 * (LOG_2PI + 2.0 * math.log(sigma) + ((z - mu) / sigma) ** 2)
    log_w = target.log_joint(torch.from_numpy(z)).numpy() - log_q
    log_integrand = log_q + log_w  # q(z) w(z), written out as the expectation it is
    dz = z[1] - z[0]
    trap = np.full(z.shape, math.log(dz))
    trap[[0, -1]] += math.log(0.5)
    return float(np.logaddexp.reduce(log_integrand + trap))


def derivation_from_kl(target: VITarget, mu: float, sigma: float) -> list[DerivationLine]:
    """KL(q || p(z|x)) expanded with Bayes' rule down to log p(x) = ELBO + KL, for q = N(mu, sigma^2). Nats."""
    e = _gauss_expect(target, mu, sigma)
    lp = target.log_px()
    kl_prior = gaussian_kl_1d(mu, sigma, 0.0, 1.0)  # closed form: a separate route to the same number
    kl_post = e["E_log_q"] - e["E_log_post"]
    elbo = e["E_log_lik"] - kl_prior
    return [
        DerivationLine(r"\mathrm{KL}(q\,\|\,p(z\mid x))", "start", kl_post, "="),
        DerivationLine(r"\mathbb{E}_q[\log q(z) - \log p(z\mid x)]", "definition_kl", kl_post, "="),
        DerivationLine(
            r"\mathbb{E}_q[\log q(z) - \log p(x\mid z) - \log p(z) + \log p(x)]",
            "bayes",
            e["E_log_q"] - e["E_log_lik"] - e["E_log_prior"] + e["E_log_px_const"],
            "=",
        ),
        DerivationLine(
            r"\mathbb{E}_q[\log q(z) - \log p(z)] - \mathbb{E}_q[\log p(x\mid z)] + \log p(x)",
            "integral_q_one",
            (e["E_log_q"] - e["E_log_prior"]) - e["E_log_lik"] + lp,
            "=",
        ),
        DerivationLine(
            r"\mathrm{KL}(q\,\|\,p(z)) - \mathbb{E}_q[\log p(x\mid z)] + \log p(x)",
            "definition_kl",
            kl_prior - e["E_log_lik"] + lp,
            "=",
        ),
        DerivationLine(
            r"\log p(x) = \mathbb{E}_q[\log p(x\mid z)] - \mathrm{KL}(q\,\|\,p(z)) + \mathrm{KL}(q\,\|\,p(z\mid x))",
            "rearrange",
            elbo + kl_post,
            "=>",
        ),
        DerivationLine(
            r"\log p(x) \ge \mathbb{E}_q[\log p(x\mid z)] - \mathrm{KL}(q\,\|\,p(z)) = \mathrm{ELBO}",
            "kl_nonnegative",
            elbo,
            ">=",
        ),
    ]


def derivation_from_evidence(target: VITarget, mu: float, sigma: float) -> list[DerivationLine]:
    """log p(x) = integral q log p(x) dz, split with log p(x) = log p(x, z) - log p(z|x), for q = N(mu, sigma^2). Nats."""
    e = _gauss_expect(target, mu, sigma)
    lp = target.log_px()
    kl_prior = gaussian_kl_1d(mu, sigma, 0.0, 1.0)
    elbo_joint = e["E_log_joint"] - e["E_log_q"]
    kl_post = e["E_log_q"] - e["E_log_post"]
    return [
        DerivationLine(r"\log p(x)", "start", lp, "="),
        DerivationLine(r"\int q(z)\,\log p(x)\,dz", "integral_q_one", e["E_log_px_const"], "="),
        DerivationLine(
            r"\int q(z)\,\log\frac{p(x, z)}{p(z\mid x)}\,dz",
            "marginal",
            e["E_log_joint"] - e["E_log_post"],
            "=",
        ),
        DerivationLine(
            r"\int q(z)\,\log\frac{p(x, z)}{q(z)}\,dz + \int q(z)\,\log\frac{q(z)}{p(z\mid x)}\,dz",
            "multiply_divide_q",
            elbo_joint + kl_post,
            "=",
        ),
        DerivationLine(
            r"\mathrm{ELBO} + \mathrm{KL}(q\,\|\,p(z\mid x))", "definition_kl", elbo_joint + kl_post, "="
        ),
        DerivationLine(
            r"\mathbb{E}_q[\log p(x\mid z)] - \mathrm{KL}(q\,\|\,p(z)) + \mathrm{KL}(q\,\|\,p(z\mid x))",
            "linearity",
            e["E_log_lik"] - kl_prior + kl_post,
            "=",
        ),
        DerivationLine(
            r"\ge \mathbb{E}_q[\log p(x\mid z)] - \mathrm{KL}(q\,\|\,p(z)) = \mathrm{ELBO}",
            "kl_nonnegative",
            e["E_log_lik"] - kl_prior,
            ">=",
        ),
    ]


def max_step_error(lines: list[DerivationLine]) -> float:
    """The largest |difference| between consecutive lines joined by "=", nats (0 for a sound derivation)."""
    return max((abs(b.value - a.value) for a, b in zip(lines, lines[1:]) if b.relation == "="), default=0.0)


class JensenView(NamedTuple):
    """log E_q[w] >= E_q[log w] for w = p(x, z)/q(z), nats."""

    log_mean_w: float  # log E_q[p(x, z)/q(z)] = log p(x)
    mean_log_w: float  # E_q[log p(x, z) - log q(z)] = ELBO
    gap: float  # log_mean_w - mean_log_w, Jensen's gap
    kl_post: float  # KL(q || p(z|x)) computed directly: equals the gap
    log_px: float  # exact log p(x)

    @property
    def mismatch(self) -> float:
        """|Jensen's gap − KL(q || p(z|x))|, nats: 0 up to quadrature error, since the two are the same quantity."""
        return abs(self.gap - self.kl_post)


def jensen_view(target: VITarget, mu: float, sigma: float) -> JensenView:
    """Jensen's inequality on the 1-D model for q = N(mu, sigma^2): its two sides, its gap, and KL(q || p(z|x))."""
    e = _gauss_expect(target, mu, sigma)
    mean_log_w = e["E_log_joint"] - e["E_log_q"]
    return JensenView(
        e["log_E_w"], mean_log_w, e["log_E_w"] - mean_log_w, e["E_log_q"] - e["E_log_post"], target.log_px()
    )


# --------------------------------------------------------------------------- why a Gaussian?
class FamilyFit(NamedTuple):
    """The best q of one family for the 1-D model, nats."""

    family: str  # a key of FAMILIES
    params: dict  # the fitted parameters (mu, sigma; mu, b; pi, mu1, sigma1, mu2, sigma2)
    elbo: float  # the best ELBO the family reached
    gap: float  # log p(x) - elbo = KL(q || p(z|x)) >= 0
    kl_direct: float  # KL(q || p(z|x)) by its own quadrature: equals gap
    z: np.ndarray  # (G,) grid to draw q on
    pdf: np.ndarray  # (G,) q's density on that grid

    def pdf_on(self, z: np.ndarray) -> np.ndarray:
        """q's density (per unit z) at the points ``z`` (N,), interpolated linearly from its own grid: (N,)."""
        return np.interp(z, self.z, self.pdf)


def _log_joint_t(target: VITarget, z: torch.Tensor) -> torch.Tensor:
    return target.log_joint(z)


def _family_terms(
    target: VITarget, family: str, theta: torch.Tensor, exact: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(E_q log p(x, z), E_q log q, E_q log p(z|x)) for unconstrained parameters theta, by quadrature (torch, float64).

    Gaussian and mixture: the 60-node Gauss-Hermite rule (fast: the optimiser's rule), or with ``exact`` the fine grid,
    which also follows the bend of log p(x, z) between the posterior's modes (for a wide q the 60 nodes are off by up to
    ~0.05 nats; near an optimum by under 1e-5)."""
    gu, gw = (_U, _W) if exact else (_GH_U, _GH_W)
    if family == "gaussian":
        mu, sigma = theta[0], theta[1].exp()
        u, w = torch.from_numpy(gu), torch.from_numpy(gw)
        z = mu + sigma * u
        log_q = -0.5 * (LOG_2PI + 2.0 * torch.log(sigma) + u**2)
        return (w * target.log_joint(z)).sum(), (w * log_q).sum(), (w * _log_post_t(target, z)).sum()
    if family == "laplace":
        mu, b = theta[0], theta[1].exp()
        t, w = torch.from_numpy(_T), torch.from_numpy(_TW)
        z = mu + b * t
        log_q = -math.log(2.0) - torch.log(b) - t.abs()
        return (w * target.log_joint(z)).sum(), (w * log_q).sum(), (w * _log_post_t(target, z)).sum()
    if family == "mixture":
        pi = torch.sigmoid(theta[0])
        mus, sigmas = theta[1:3], theta[3:5].exp()
        weights = torch.stack([pi, 1.0 - pi])
        u, w = torch.from_numpy(gu), torch.from_numpy(gw)
        e_joint = e_logq = e_post = torch.zeros((), dtype=torch.float64)
        for k in range(2):
            z = mus[k] + sigmas[k] * u  # nodes under component k
            comp = torch.stack(
                [
                    -0.5 * (LOG_2PI + 2.0 * torch.log(sigmas[j]) + ((z - mus[j]) / sigmas[j]) ** 2)
                    for j in range(2)
                ],
                -1,
            )  # (U, 2)
            log_q = torch.logsumexp(comp + torch.log(weights), -1)
            e_joint = e_joint + weights[k] * (w * target.log_joint(z)).sum()
            e_logq = e_logq + weights[k] * (w * log_q).sum()
            e_post = e_post + weights[k] * (w * _log_post_t(target, z)).sum()
        return e_joint, e_logq, e_post
    raise ValueError(f"unknown family {family!r}; use one of {FAMILIES}")


def _log_post_t(target: VITarget, z: torch.Tensor) -> torch.Tensor:
    """log p(z|x) from the closed-form mixture, in torch (values only; it carries no parameters)."""
    w, m, s = target.posterior_components()
    comps = [
        math.log(wk) - 0.5 * (LOG_2PI + 2.0 * math.log(sk) + ((z - mk) / sk) ** 2)
        for wk, mk, sk in zip(w, m, s)
    ]
    return torch.logsumexp(torch.stack(comps, -1), -1)


def _pdf(family: str, theta: np.ndarray, z: np.ndarray) -> np.ndarray:
    if family == "gaussian":
        mu, s = theta[0], math.exp(theta[1])
        return np.exp(-0.5 * ((z - mu) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    if family == "laplace":
        mu, b = theta[0], math.exp(theta[1])
        return np.exp(-np.abs(z - mu) / b) / (2 * b)
    pi = 1.0 / (1.0 + math.exp(-theta[0]))
    out = np.zeros_like(z)
    for wk, mk, lsk in ((pi, theta[1], theta[3]), (1 - pi, theta[2], theta[4])):
        s = math.exp(lsk)
        out += wk * np.exp(-0.5 * ((z - mk) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    return out


def _starts(target: VITarget, family: str) -> list[list[float]]:
    """Starting points: q on each posterior mode (a single q must pick one; the better one wins)."""
    _, m, s = target.posterior_components()
    if family == "mixture":
        return [[0.0, float(m[0]) - 0.3, float(m[1]) + 0.3, 0.0, 0.0]]
    scale = [math.log(float(sk)) for sk in s]
    if family == "laplace":
        scale = [v - 0.5 * math.log(2.0) for v in scale]  # a Laplace with the same variance
    return [[float(mk), sc] for mk, sc in zip(m, scale)]


def fit_family(target: VITarget, family: str, steps: int = 60, grid: np.ndarray | None = None) -> FamilyFit:
    """The q of ``family`` ("gaussian", "laplace", "mixture") with the highest ELBO for ``target``.

    Maximises the quadrature ELBO = E_q[log p(x, z)] - E_q[log q] with L-BFGS (scipy, float64, torch's gradient) from
    each posterior mode and keeps the best. Returns its ELBO, the gap log p(x) - ELBO and KL(q || p(z|x))
    from its own quadrature (they agree: the identity holds for every family). Nats.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; use one of {FAMILIES}")
    from scipy.optimize import minimize  # noqa: PLC0415

    def neg_elbo(v: np.ndarray, exact: bool = False) -> tuple[float, np.ndarray]:
        theta = torch.tensor(v, dtype=torch.float64, requires_grad=True)
        e_joint, e_logq, _ = _family_terms(target, family, theta, exact)
        loss = -(e_joint - e_logq)
        loss.backward()
        if theta.grad is None:  # a leaf that requires grad always gets one from backward()
            raise RuntimeError("the ELBO's backward pass left no gradient")
        return float(loss.detach()), theta.grad.numpy().copy()

    # scipy's L-BFGS with torch's gradient, not torch.optim.LBFGS: the first torch optimizer built in a
    # process imports torch's compiler stack (~2.5 s), and this fit runs in the server on a page's first visit
    best: tuple[float, np.ndarray, float] | None = None  # (ELBO, parameters, KL from its own quadrature)
    for start in _starts(target, family):
        opts = {"maxiter": steps, "gtol": 1e-10, "ftol": 1e-15}
        res = minimize(
            neg_elbo, np.asarray(start, dtype=np.float64), jac=True, method="L-BFGS-B", options=opts
        )
        if family != "laplace":  # polish on the fine rule: a few steps from the fast rule's optimum
            res = minimize(neg_elbo, res.x, args=(True,), jac=True, method="L-BFGS-B", options=opts)
        th = np.asarray(res.x, dtype=np.float64)
        with torch.no_grad():  # what is reported, and which start wins: the fine rule
            e_joint, e_logq, e_post = _family_terms(target, family, torch.from_numpy(th), exact=True)
        elbo = float(e_joint - e_logq)
        if best is None or elbo > best[0]:
            best = (elbo, th, float(e_logq - e_post))
    if best is None:  # _starts gives at least one start for every family
        raise RuntimeError(f"no start point to fit the {family} family from")
    elbo, th, kl_direct = best
    z = np.linspace(-4.0, 4.0, 401) if grid is None else np.asarray(grid, dtype=np.float64)
    if family == "gaussian":
        params = {"mu": float(th[0]), "sigma": math.exp(th[1])}
    elif family == "laplace":
        params = {"mu": float(th[0]), "b": math.exp(th[1])}
    else:
        params = {
            "pi": 1.0 / (1.0 + math.exp(-th[0])),
            "mu1": float(th[1]),
            "mu2": float(th[2]),
            "sigma1": math.exp(th[3]),
            "sigma2": math.exp(th[4]),
        }
    lp = target.log_px()
    return FamilyFit(family, params, elbo, lp - elbo, kl_direct, z, _pdf(family, th, z))


def fit_all_families(target: VITarget) -> list[FamilyFit]:
    """:func:`fit_family` for every family in FAMILIES, in that order."""
    return [fit_family(target, f) for f in FAMILIES]


# --------------------------------------------------------------------------- functionals and the first variation
DIRECTIONS = ("mu", "log_sigma", "mu_and_log_sigma", "posterior")
EPSILONS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)


def functional_elbo(target: VITarget, f: np.ndarray, z: np.ndarray, dz: np.ndarray) -> float:
    """J[f] = integral f(z) log p(x, z) dz - integral f(z) log f(z) dz for any density f >= 0 given by its values on the
    grid ``z`` (U,) with quadrature weights ``dz`` (U,). Nats. For f = q Gaussian this is the ELBO; 0 log 0 = 0."""
    log_joint = target.log_joint(torch.from_numpy(z)).numpy()
    f = np.asarray(f, dtype=np.float64)
    pos = f > 0
    f_log_f = np.zeros_like(f)
    f_log_f[pos] = f[pos] * np.log(f[pos])
    return float(dz @ (f * log_joint - f_log_f))


def _q_grid(mu: float, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """q = N(mu, sigma^2) on the module's fine rule: (u (U,), z = mu + sigma u (U,), trapezoid weights dz (U,))."""
    z = mu + sigma * _U
    dz = np.full(_U.shape, sigma * (_U[1] - _U[0]))
    dz[[0, -1]] *= 0.5
    return _U, z, dz


def _relative_direction(
    target: VITarget, direction: str, u: np.ndarray, z: np.ndarray, q: np.ndarray, dz: np.ndarray
) -> np.ndarray:
    """g = eta / q on the grid (U,) for a direction of DIRECTIONS; eta = q g integrates to 0 (up to ~1e-20)."""
    if direction == "mu":  # sigma dq/dmu = q u: q shifted by one standard deviation per unit epsilon
        return u.copy()
    if direction == "log_sigma":  # dq/dlog sigma = sigma dq/dsigma = q (u^2 - 1): q widened
        return u**2 - 1.0
    if direction == "mu_and_log_sigma":  # a unit combination of the two: still tangent to the family
        return (u + u**2 - 1.0) / math.sqrt(2.0)
    if direction == "posterior":  # p(z|x) - q, the posterior renormalised on q's grid: out of the family
        post = target.posterior_pdf(z)
        return post / float(dz @ post) / q - 1.0
    raise ValueError(f"unknown direction {direction!r}; use one of {DIRECTIONS}")


class FirstVariation(NamedTuple):
    """d/de J[q + e eta] at e = 0 for q = N(mu, sigma^2) and one direction eta, with its difference quotients.

    All integrals are on q's fine rule: z = mu + sigma u, u in [-10, 10] (2001 nodes, trapezoid), where q holds all
    but 1e-23 of its mass. Nats; the derivative and quotients are nats per unit epsilon.
    """

    direction: str  # a key of DIRECTIONS
    mu: float  # q's mean, latent units
    sigma: float  # q's standard deviation
    j_q: float  # J[q], the ELBO of q, nats
    derivative: float  # the first variation: integral eta (log p(x, z) - log q - 1) dz
    eps: np.ndarray  # (E,) step sizes epsilon
    quotient: np.ndarray  # (E,) (J[q + e eta] - J[q]) / e; NaN where q + e eta < 0 somewhere (not a density)
    admissible: np.ndarray  # (E,) bool: q + e eta >= 0 on the whole grid, so J is defined
    z: np.ndarray  # (U,) the grid, latent units
    q: np.ndarray  # (U,) q's density on it
    eta: np.ndarray  # (U,) the direction eta on it (a density difference: per unit z)
    eta_integral: float  # integral of eta dz: 0 (up to ~1e-20), so q + e eta keeps total mass 1


def first_variation(
    target: VITarget, mu: float, sigma: float, direction: str = "mu", eps: tuple[float, ...] = EPSILONS
) -> FirstVariation:
    """The ELBO as a functional J[q] = integral q log p(x, z) dz - integral q log q dz, and its first variation at
    q = N(mu, sigma^2) along ``direction`` (a key of DIRECTIONS), by its formula and as the limit of the quotients
    (J[q + e eta] - J[q]) / e for each e in ``eps``. Nats.

    Directions tangent to the Gaussian family are the derivatives of q in its parameters, per standard deviation
    so that q + e eta >= 0 for every e <= 0.1 on the grid: "mu" sigma dq/dmu = q u, "log_sigma" dq/dlog sigma =
    q (u^2 - 1), and "mu_and_log_sigma" (their sum over sqrt 2). Along a tangent direction the first variation is
    the ELBO's derivative in that parameter, so it vanishes at the best Gaussian. "posterior" is p(z|x) - q
    (p(z|x) renormalised on the grid), which leaves the family: at any q its first variation is
    KL(p || q) + KL(q || p) > 0 on the grid. Along a tangent direction the quotients approach the derivative
    linearly in e (by e/2 times the second variation, -integral eta^2 / q dz). Along "posterior" J is concave, so
    every quotient lies between the gap log p(x) - J[q] = KL(q || p) and the derivative, rising as e shrinks; but
    slowly (like log 1/e): eta / q reaches ~e^25 at the mode that the best Gaussian misses, so the linear regime
    starts only below e ~ 1e-11. The Gaussian's thin tails are why the family cannot see the other mode.
    """
    if not sigma > 0.0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    u, z, dz = _q_grid(mu, sigma)
    q = np.exp(-0.5 * u**2) / (sigma * math.sqrt(2.0 * math.pi))  # (U,)
    g = _relative_direction(target, direction, u, z, q, dz)  # (U,) eta / q
    eta = q * g
    log_joint = target.log_joint(torch.from_numpy(z)).numpy()
    log_q = -0.5 * (LOG_2PI + 2.0 * math.log(sigma) + u**2)
    j_q = functional_elbo(target, q, z, dz)
    eps_a = np.asarray(eps, dtype=np.float64)
    ok = np.array([bool(np.all(1.0 + e * g >= 0.0)) for e in eps_a])
    quotient = np.array(
        [
            (functional_elbo(target, q * (1.0 + e * g), z, dz) - j_q) / e if good else math.nan
            for e, good in zip(eps_a, ok)
        ]
    )
    return FirstVariation(
        direction=direction,
        mu=float(mu),
        sigma=float(sigma),
        j_q=j_q,
        derivative=float(dz @ (eta * (log_joint - log_q - 1.0))),
        eps=eps_a,
        quotient=quotient,
        admissible=ok,
        z=z,
        q=q,
        eta=eta,
        eta_integral=float(dz @ eta),
    )


class VariationStudy(NamedTuple):
    """First variations at the best Gaussian and at a q off it, for every direction of DIRECTIONS. Nats."""

    best: FamilyFit  # the best Gaussian (fit_family), where the tangent first variations vanish
    at_best: list[FirstVariation]  # one per direction, in DIRECTIONS order
    off_mu: float  # the other q's mean
    off_sigma: float  # and standard deviation
    off_best: list[FirstVariation]  # the same directions there: the tangent ones do not vanish


def variation_study(
    target: VITarget, off: tuple[float, float] | None = None, eps: tuple[float, ...] = EPSILONS
) -> VariationStudy:
    """Everything the first-variation section draws: the best Gaussian q* = N(mu*, sigma*^2) for ``target``, the first
    variation and its quotient table along each direction of DIRECTIONS at q*, and the same at ``off`` = (mu, sigma)
    (default: q* moved by half a unit and widened by half). Nats."""
    best = fit_family(target, "gaussian")
    mu, sigma = best.params["mu"], best.params["sigma"]
    off_mu, off_sigma = off if off is not None else (mu + 0.5, 1.5 * sigma)
    return VariationStudy(
        best=best,
        at_best=[first_variation(target, mu, sigma, d, eps) for d in DIRECTIONS],
        off_mu=float(off_mu),
        off_sigma=float(off_sigma),
        off_best=[first_variation(target, off_mu, off_sigma, d, eps) for d in DIRECTIONS],
    )
