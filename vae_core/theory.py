"""The ideas a VAE is built from, as small pure functions: information, entropy, KL,
variational inference in one dimension, and the reparameterization trick.

Everything here is UI-free and stateless; the Theory page only calls it and draws. Units:
``base=2`` gives bits, ``base=e`` (the default) nats. Arrays are numpy float64 unless a
function says otherwise; the SGD fit uses torch autograd internally.

The 1-D variational-inference target (:class:`VITarget`) is a real Bayesian model with the
VAE's prior and an exactly known evidence:

    p(z) = N(0, 1),   p(x | z) = sum_k a_k N(x; c_k z, s^2)

With c = (1, -1) the "decoder" cannot tell z from -z, so p(z | x) is bimodal. Each term is
conjugate, so p(x) = sum_k a_k N(x; 0, s^2 + c_k^2) and p(z | x) is a Gaussian mixture, both
in closed form. The ELBO of a Gaussian q and KL(q || p(z|x)) are computed by quadrature under
q, each from its own formula, so ELBO + KL = log p(x) is a real check.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from vae_core.elbo import gaussian_kl, kl_per_dim

__all__ = [
    "DiscreteSummary",
    "normalize",
    "information",
    "InformationAdds",
    "information_adds",
    "LikelihoodVsProbability",
    "likelihood_vs_probability",
    "entropy",
    "cross_entropy",
    "kl_discrete",
    "ConditionalEntropy",
    "noisy_report_joint",
    "conditional_entropy",
    "discrete_summary",
    "gaussian_kl_1d",
    "vae_kl_term",
    "KLSteps",
    "gaussian_kl_steps",
    "MCEstimate",
    "mc_gaussian_kl",
    "normal_pdf",
    "VITarget",
    "elbo_1d",
    "kl_q_posterior",
    "elbo_landscape",
    "FitTrajectory",
    "fit_q_sgd",
    "fit_frames",
    "density_top",
    "clip_landscape",
    "snap_to_slider",
    "FunctionCase",
    "GRAD_FUNCTIONS",
    "GradSamples",
    "grad_estimators",
    "Summary",
    "summarize",
]

LOG_2PI = math.log(2.0 * math.pi)
# E_{u ~ N(0,1)}[g(u)] ~ sum_i w_i g(u_i): trapezoid rule on a fine grid over [-10, 10]. The log
# joint below switches between its two likelihood terms within ~0.1 of z = 0 (nearly a kink),
# which Gauss-Hermite resolves poorly; the trapezoid rule with step 0.01 sigma is exact to ~1e-12.
_U_NODES = np.linspace(-10.0, 10.0, 2001)  # (U,)
_U_WEIGHTS = np.exp(-0.5 * _U_NODES**2)
_U_WEIGHTS = _U_WEIGHTS / _U_WEIGHTS.sum()  # (U,), sums to 1 (tail mass beyond 10 sigma ~ 1e-23)


# --------------------------------------------------------------------------- 1. information and entropy


def _log(x: np.ndarray, base: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(x) / math.log(base)


def normalize(weights: np.ndarray) -> np.ndarray:
    """Non-negative weights (n,) -> probabilities (n,) summing to 1. Raises if all are zero."""
    w = np.asarray(weights, dtype=np.float64)
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite and non-negative")
    total = w.sum()
    if total <= 0:
        raise ValueError("at least one weight must be positive")
    return w / total


def information(p: np.ndarray, base: float = math.e) -> np.ndarray:
    """Self-information -log p_i of each outcome: (n,) -> (n,), bits (base 2) or nats (base e).

    An outcome of probability 0 carries infinite information (inf).
    """
    return -_log(np.asarray(p, dtype=np.float64), base)


def entropy(p: np.ndarray, base: float = math.e) -> float:
    """Entropy H(p) = -sum_i p_i log p_i of probabilities p (n,), bits or nats; 0 log 0 = 0."""
    p = np.asarray(p, dtype=np.float64)
    nz = p > 0
    return float(-(p[nz] * _log(p[nz], base)).sum())


def cross_entropy(p: np.ndarray, q: np.ndarray, base: float = math.e) -> float:
    """Cross-entropy H(p, q) = -sum_i p_i log q_i, bits or nats: the mean code length when
    outcomes come from p but the code was built for q. p, q (n,); inf if q_i = 0 < p_i."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    nz = p > 0
    return float(-(p[nz] * _log(q[nz], base)).sum())


def kl_discrete(p: np.ndarray, q: np.ndarray, base: float = math.e) -> float:
    """KL(p || q) = sum_i p_i log(p_i / q_i) = H(p, q) - H(p) >= 0, bits or nats. p, q (n,).

    Computed term by term (not as a difference) so that KL(p || p) is exactly 0.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    nz = p > 0
    if np.any(q[nz] == 0):
        return math.inf
    return float(max(0.0, (p[nz] * (_log(p[nz], base) - _log(q[nz], base))).sum()))


class InformationAdds(NamedTuple):
    """Self-information of two independent events and of both together, in one unit (bits or nats)."""

    p1: float  # P(A)
    p2: float  # P(B), independent of A
    info_p1: float  # I(A) = -log p1
    info_p2: float  # I(B) = -log p2
    info_joint: float  # I(A and B) = -log(p1 p2), computed from the product
    info_sum: float  # I(A) + I(B): equals info_joint (information adds; it is not a product)
    p_grid: np.ndarray  # (G,) probabilities in (0, 1] for the curve
    info_grid: np.ndarray  # (G,) -log p on p_grid: decreasing, 0 at p = 1, unbounded as p -> 0

    @property
    def p_joint(self) -> float:
        """P(A and B) = p1 p2, independent events."""
        return self.p1 * self.p2


def information_adds(p1: float, p2: float, base: float = math.e, n_grid: int = 200) -> InformationAdds:
    """I(p1 p2) = I(p1) + I(p2) for independent events of probabilities p1, p2 in (0, 1], with the curve
    I(p) = -log p over (0, 1] that shows information falling as probability rises (not proportional to it, and
    not inversely proportional either: I(1/2) is one bit, I(1/4) two). Bits (base 2) or nats (base e).

    ``info_joint`` comes from the product p1 p2 and ``info_sum`` from the two logs, so their agreement is a check.
    The grid runs from 1/1000 to 1, log-spaced.
    """
    for v in (p1, p2):
        if not 0.0 < v <= 1.0:
            raise ValueError(f"probabilities must lie in (0, 1], got {v}")
    i1, i2 = (float(information(np.array(v), base)) for v in (p1, p2))
    grid = np.logspace(-3.0, 0.0, n_grid)
    return InformationAdds(
        float(p1),
        float(p2),
        i1,
        i2,
        float(information(np.array(p1 * p2), base)),
        i1 + i2,
        grid,
        information(grid, base),
    )


class LikelihoodVsProbability(NamedTuple):
    """One formula, p(k | n, theta) = C(n, k) theta^k (1 - theta)^(n - k), read two ways.

    As a function of the data k (theta fixed) it is a probability distribution: it sums to 1 over k = 0..n.
    As a function of theta (k fixed, observed) it is the likelihood L(theta) = p(k | theta): not a density over
    theta, its integral over [0, 1] is 1 / (n + 1) whatever k is.
    """

    n: int  # coin flips
    k: int  # heads observed (the likelihood's data)
    theta: float  # the fixed theta of the probability reading
    ks: np.ndarray  # (n+1,) 0..n
    pmf: np.ndarray  # (n+1,) p(k | theta) for each k: a probability distribution over the data
    pmf_sum: float  # sum over k: 1
    thetas: np.ndarray  # (G,) grid over [0, 1]
    likelihood: np.ndarray  # (G,) L(theta) = p(k_observed | theta) on the grid
    likelihood_integral: float  # integral of L over [0, 1], trapezoid rule on the grid
    likelihood_integral_exact: float  # 1 / (n + 1) (a Beta integral): not 1
    mle: float  # k / n, where L peaks


def _binomial_pmf(k: np.ndarray | float, n: int, theta: np.ndarray | float) -> np.ndarray:
    """C(n, k) theta^k (1 - theta)^(n - k) elementwise (k, theta broadcast), with 0^0 = 1 at theta = 0 or 1."""
    from scipy.special import gammaln, xlog1py, xlogy  # noqa: PLC0415 - scipy is slow to import

    k = np.asarray(k, dtype=np.float64)
    log_c = gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)
    return np.exp(log_c + xlogy(k, theta) + xlog1py(n - k, -np.asarray(theta, dtype=np.float64)))


def likelihood_vs_probability(
    n: int = 10, k: int = 7, theta: float = 0.5, n_grid: int = 2001
) -> LikelihoodVsProbability:
    """The binomial formula for ``k`` heads in ``n`` flips as a probability of the data (theta fixed) and as the
    likelihood of theta (k fixed), each with its total: the first sums to 1, the second integrates to 1/(n+1).

    ``n_grid`` evenly spaced thetas over [0, 1] (both ends included); the trapezoid integral on 2001 points agrees
    with 1/(n+1) to about 1e-8 for n <= 50. Probabilities are dimensionless; L(theta) is per unit theta only in the
    sense of the integral, since it is not a density.
    """
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need n >= 1 and 0 <= k <= n, got n={n}, k={k}")
    if not 0.0 <= theta <= 1.0:
        raise ValueError(f"theta is a probability in [0, 1], got {theta}")
    ks = np.arange(n + 1)
    pmf = _binomial_pmf(ks, n, float(theta))
    thetas = np.linspace(0.0, 1.0, n_grid)
    lik = _binomial_pmf(float(k), n, thetas)
    return LikelihoodVsProbability(
        n=int(n),
        k=int(k),
        theta=float(theta),
        ks=ks,
        pmf=pmf,
        pmf_sum=float(pmf.sum()),
        thetas=thetas,
        likelihood=lik,
        likelihood_integral=float(np.trapezoid(lik, thetas)),
        likelihood_integral_exact=1.0 / (n + 1),
        mle=k / n,
    )


class ConditionalEntropy(NamedTuple):
    """H(X|Y) of a joint distribution of two discrete variables, with what surrounds it, in one unit.

    H(X|Y) is the uncertainty about X that is left once Y is known; the mutual information I(X; Y) = H(X) - H(X|Y)
    is what Y tells about X. They are different numbers: H(X|Y) is large when Y says little.
    """

    joint: np.ndarray  # (m, n) p(x, y): rows x, columns y, sums to 1
    h_x: float  # H(X)
    h_y: float  # H(Y)
    h_xy: float  # H(X, Y), the joint entropy
    h_x_given_y: float  # H(X|Y) = sum_y p(y) H(X | Y = y), from the conditionals p(x|y)
    chain_rule: float  # H(X, Y) - H(Y): the same number by the chain rule (a check)
    mutual_info: float  # I(X; Y) = H(X) - H(X|Y) >= 0


def noisy_report_joint(p_x: np.ndarray, noise: float) -> np.ndarray:
    """p(x, y) = p(x) p(y|x) for a report Y of X that is right with probability 1 - ``noise`` and otherwise names
    one of the other m - 1 outcomes uniformly: (m, m), rows x, columns y. ``p_x`` (m,) is normalised first."""
    p = normalize(np.asarray(p_x, dtype=np.float64))
    m = p.size
    if m < 2 or not 0.0 <= noise <= 1.0:
        raise ValueError(f"need at least 2 outcomes and noise in [0, 1], got m={m}, noise={noise}")
    channel = np.full((m, m), noise / (m - 1))
    np.fill_diagonal(channel, 1.0 - noise)
    return p[:, None] * channel


def conditional_entropy(joint: np.ndarray, base: float = math.e) -> ConditionalEntropy:
    """H(X|Y), H(X), H(Y), H(X, Y) and I(X; Y) of a joint table (m, n) of non-negative weights (normalised here),
    rows x and columns y; base 2: bits, base e: nats. H(X|Y) is computed from the conditionals p(x|y), and again
    as H(X, Y) - H(Y)."""
    j = np.asarray(joint, dtype=np.float64)
    if j.ndim != 2 or np.any(j < 0) or not j.sum() > 0:
        raise ValueError("the joint must be a 2-D table of non-negative weights, not all zero")
    j = j / j.sum()
    p_x, p_y = j.sum(1), j.sum(0)
    h_x_given_y = sum(float(py) * entropy(j[:, c] / py, base) for c, py in enumerate(p_y) if py > 0)
    h_x, h_y, h_xy = entropy(p_x, base), entropy(p_y, base), entropy(j.ravel(), base)
    return ConditionalEntropy(
        joint=j,
        h_x=h_x,
        h_y=h_y,
        h_xy=h_xy,
        h_x_given_y=h_x_given_y,
        chain_rule=h_xy - h_y,
        mutual_info=max(0.0, h_x - h_x_given_y),
    )


class DiscreteSummary(NamedTuple):
    """Everything section 1 of the page shows, in the chosen unit (bits or nats)."""

    p: np.ndarray  # (n,) probabilities
    q: np.ndarray  # (n,) probabilities
    info_p: np.ndarray  # (n,) -log p_i (inf where p_i = 0)
    h_p: float  # H(p)
    h_q: float  # H(q)
    h_pq: float  # H(p, q)
    h_qp: float  # H(q, p)
    kl_pq: float  # KL(p || q) = H(p, q) - H(p)
    kl_qp: float  # KL(q || p) = H(q, p) - H(q)


def discrete_summary(p_weights: np.ndarray, q_weights: np.ndarray, base: float = math.e) -> DiscreteSummary:
    """Normalise two weight vectors (n,) and compute all entropies and KLs in one unit
    (base 2: bits, base e: nats)."""
    p, q = normalize(p_weights), normalize(q_weights)
    return DiscreteSummary(
        p,
        q,
        information(p, base),
        entropy(p, base),
        entropy(q, base),
        cross_entropy(p, q, base),
        cross_entropy(q, p, base),
        kl_discrete(p, q, base),
        kl_discrete(q, p, base),
    )


# --------------------------------------------------------------------------- 2. two Gaussians


def gaussian_kl_1d(mu1: float, s1: float, mu2: float, s2: float) -> float:
    """Analytic KL(N(mu1, s1^2) || N(mu2, s2^2)) in nats (s1, s2 are standard deviations)."""
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return float(gaussian_kl(t(mu1), t(2 * math.log(s1)), t(mu2), t(2 * math.log(s2))))


def vae_kl_term(mu: float, sigma: float) -> float:
    """The VAE's per-dimension KL(N(mu, sigma^2) || N(0, 1)) = 1/2 (mu^2 + sigma^2 - 1 - log sigma^2), nats."""
    mu_t = torch.tensor(mu, dtype=torch.float64)
    return float(kl_per_dim(mu_t, torch.tensor(2 * math.log(sigma), dtype=torch.float64)))


class KLSteps(NamedTuple):
    """KL(N(mu, sigma^2) || N(0, 1)) derived line by line, each line's value from its own expression. Nats.

    Line 1, the definition: KL = E_q[log q(z)] - E_q[log p(z)].
    Line 2, the logs written out: E_q[-1/2 log(2 pi sigma^2) - (z - mu)^2 / (2 sigma^2)] - E_q[-1/2 log 2 pi - z^2 / 2].
    Line 3, the moments E_q[(z - mu)^2] = sigma^2 and E_q[z^2] = mu^2 + sigma^2 taken:
            e_log_q = -1/2 log(2 pi sigma^2) - 1/2 and e_log_p = -1/2 log 2 pi - 1/2 (mu^2 + sigma^2).
    Line 4, log 2 pi cancelled: -1/2 log sigma^2 - 1/2 + 1/2 (mu^2 + sigma^2).
    Line 5, collected: 1/2 (mu^2 + sigma^2 - 1 - log sigma^2), the VAE's KL term per latent dim.
    """

    mu: float
    sigma: float
    second_moment_centred: float  # E_q[(z - mu)^2] = sigma^2
    second_moment: float  # E_q[z^2] = mu^2 + sigma^2
    e_log_q: float  # E_q[log q(z)] = -1/2 log(2 pi sigma^2) - 1/2: minus q's entropy
    e_log_p: float  # E_q[log p(z)] = -1/2 log 2 pi - 1/2 (mu^2 + sigma^2)
    kl_definition: float  # e_log_q - e_log_p (lines 1 to 3)
    kl_cancelled: float  # -1/2 log sigma^2 - 1/2 + 1/2 (mu^2 + sigma^2) (line 4)
    kl_closed_form: float  # 1/2 (mu^2 + sigma^2 - 1 - log sigma^2), from the lab's one KL (elbo.kl_per_dim)

    def lines(self) -> list[tuple[str, float]]:
        """The KL's value on each line in order, as (key, nats): the definition (lines 1 to 3, whose two expectations
        are ``e_log_q`` and ``e_log_p``), log 2 pi cancelled (line 4), the closed form (line 5). A page pairs each
        key with its formula."""
        return [
            ("definition", self.kl_definition),
            ("log_2pi_cancelled", self.kl_cancelled),
            ("closed_form", self.kl_closed_form),
        ]


def gaussian_kl_steps(mu: float, sigma: float) -> KLSteps:
    """Each step of KL(N(mu, sigma^2) || N(0, 1)) for a q of mean ``mu`` and standard deviation ``sigma`` > 0 (latent
    units): the two expectations, their difference, the form after log 2 pi cancels, and the closed form. Nats.

    The expectations use the moments E_q[(z - mu)^2] = sigma^2 and E_q[z^2] = mu^2 + sigma^2; the tests check each
    against quadrature and Monte Carlo.
    """
    if not sigma > 0.0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    var = sigma * sigma
    m2c, m2 = var, mu * mu + var
    e_log_q = -0.5 * (LOG_2PI + math.log(var)) - m2c / (2.0 * var)
    e_log_p = -0.5 * LOG_2PI - 0.5 * m2
    return KLSteps(
        mu=float(mu),
        sigma=float(sigma),
        second_moment_centred=m2c,
        second_moment=m2,
        e_log_q=e_log_q,
        e_log_p=e_log_p,
        kl_definition=e_log_q - e_log_p,
        kl_cancelled=-0.5 * math.log(var) - 0.5 + 0.5 * (mu * mu + var),
        kl_closed_form=vae_kl_term(mu, sigma),
    )


def normal_pdf(z: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    """Density N(z; mu, sigma^2) at points z (any shape), per unit of z."""
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-0.5 * ((z - mu) / sigma) ** 2) / (sigma * math.sqrt(2.0 * math.pi))


def _log_normal(z: np.ndarray, mu: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray:
    """log N(z; mu, sigma^2) elementwise (z, mu, sigma broadcast), nats per unit z."""
    return -0.5 * (LOG_2PI + 2.0 * np.log(sigma) + ((z - mu) / sigma) ** 2)


class MCEstimate(NamedTuple):
    """A Monte Carlo mean and its standard error, same unit (here nats)."""

    estimate: float
    stderr: float

    def standard_errors_from(self, exact: float) -> float:
        """|estimate − exact| in standard errors (a dimensionless count; the stderr is floored at 1e-12, so that
        identical Gaussians, whose every sample is exactly 0, give 0 and not 0/0)."""
        return abs(self.estimate - exact) / max(self.stderr, 1e-12)


def mc_gaussian_kl(mu1: float, s1: float, mu2: float, s2: float, n: int = 1000, seed: int = 0) -> MCEstimate:
    """KL(N1 || N2) ~ (1/n) sum_i [log N1(z_i) - log N2(z_i)], z_i ~ N1: estimate and its
    standard error (std / sqrt(n)), nats. n >= 2 samples from a numpy generator seeded by ``seed``."""
    if n < 2:
        raise ValueError(f"need at least 2 samples for a standard error, got {n}")
    z = np.random.default_rng(seed).normal(mu1, s1, size=n)  # (n,)
    d = _log_normal(z, mu1, s1) - _log_normal(z, mu2, s2)  # (n,) log-ratio per sample, nats
    return MCEstimate(float(d.mean()), float(d.std(ddof=1) / math.sqrt(n)))


# --------------------------------------------------------------------------- 3. variational inference in 1-D


@dataclass(frozen=True)
class VITarget:
    """p(z) = N(0, 1), p(x | z) = sum_k a_k N(x; c_k z, s^2), one observed scalar x.

    Defaults give a bimodal posterior with modes near +-1.6 and weights 0.7 / 0.3.
    """

    x: float = 2.0  # the observation
    noise_std: float = 0.5  # s, the likelihood's standard deviation
    weights: tuple[float, ...] = (0.7, 0.3)  # a_k, sum to 1
    slopes: tuple[float, ...] = (1.0, -1.0)  # c_k: the decoder maps z to c_k z

    def log_joint(self, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) = log p(z) + log p(x | z) at each z (any shape, torch): nats, same shape."""
        s2 = self.noise_std**2
        a = torch.tensor(self.weights, dtype=z.dtype, device=z.device)
        c = torch.tensor(self.slopes, dtype=z.dtype, device=z.device)
        zz = z.unsqueeze(-1)  # (..., 1) against (K,)
        log_lik_k = torch.log(a) - 0.5 * (LOG_2PI + math.log(s2) + (self.x - c * zz) ** 2 / s2)  # (..., K)
        return -0.5 * (LOG_2PI + z**2) + torch.logsumexp(log_lik_k, -1)

    def log_px(self) -> float:
        """Exact log evidence log p(x) = log sum_k a_k N(x; 0, s^2 + c_k^2), nats."""
        s2 = self.noise_std**2
        terms = [
            math.log(a) - 0.5 * (LOG_2PI + math.log(s2 + c * c) + self.x**2 / (s2 + c * c))
            for a, c in zip(self.weights, self.slopes)
        ]
        return float(np.logaddexp.reduce(terms))

    def posterior_components(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Closed-form p(z | x) = sum_k w_k N(z; m_k, v_k): (weights (K,), means (K,), stds (K,))."""
        s2 = self.noise_std**2
        a, c = np.asarray(self.weights, float), np.asarray(self.slopes, float)
        log_w = np.log(a) - 0.5 * (np.log(s2 + c * c) + self.x**2 / (s2 + c * c))
        w = np.exp(log_w - np.logaddexp.reduce(log_w))
        return w, c * self.x / (s2 + c * c), np.sqrt(s2 / (s2 + c * c))

    def log_posterior(self, z: np.ndarray) -> np.ndarray:
        """log p(z | x) from the closed-form mixture (not from log_joint - log_px), nats per unit z.
        z any shape -> same shape."""
        w, m, s = self.posterior_components()
        z = np.asarray(z, dtype=np.float64)[..., None]  # (..., 1)
        return np.logaddexp.reduce(np.log(w) + _log_normal(z, m, s), axis=-1)

    def posterior_pdf(self, z: np.ndarray) -> np.ndarray:
        """p(z | x) at points z (any shape), per unit of z."""
        return np.exp(self.log_posterior(z))


def _q_nodes(mu: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray:
    """Quadrature nodes under each q = N(mu, sigma^2): broadcast(mu, sigma) + (U,)."""
    mu, sigma = np.asarray(mu, float)[..., None], np.asarray(sigma, float)[..., None]
    return mu + sigma * _U_NODES


def _q_entropy(sigma: np.ndarray) -> np.ndarray:
    """Differential entropy of N(mu, sigma^2) = log sigma + 1/2 log(2 pi e), nats."""
    return np.log(sigma) + 0.5 * (LOG_2PI + 1.0)


def elbo_1d(target: VITarget, mu: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray:
    """ELBO(q) = E_q[log p(x, z)] + H(q) for q = N(mu, sigma^2), nats. mu, sigma broadcast
    (any shape); returns that shape. E_q by a 2001-point trapezoid rule in (z - mu) / sigma, H(q) exact."""
    z = _q_nodes(mu, sigma)
    lj = target.log_joint(torch.from_numpy(z)).numpy()
    return lj @ _U_WEIGHTS + _q_entropy(np.asarray(sigma, float))


def kl_q_posterior(target: VITarget, mu: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray:
    """KL(q || p(z | x)) = -H(q) - E_q[log p(z | x)] for q = N(mu, sigma^2), nats (>= 0).
    Uses the closed-form posterior and the same quadrature; broadcasts like elbo_1d."""
    z = _q_nodes(mu, sigma)
    return -_q_entropy(np.asarray(sigma, float)) - target.log_posterior(z) @ _U_WEIGHTS


def elbo_landscape(target: VITarget, mu_grid: np.ndarray, log_sigma_grid: np.ndarray) -> np.ndarray:
    """ELBO over a grid: mu_grid (M,), log_sigma_grid (S,) -> (S, M) nats (rows: log sigma)."""
    mu_grid = np.asarray(mu_grid, dtype=np.float64)
    # one row at a time keeps the (M, U) quadrature block small (~1 MB per row)
    return np.stack([elbo_1d(target, mu_grid, math.exp(ls)) for ls in np.asarray(log_sigma_grid, float)])


def landscape_grid(
    target: VITarget,
    mu_range: tuple[float, float] = (-4.0, 4.0),
    log_sigma_range: tuple[float, float] = (-3.0, 1.0),
    n_mu: int = 81,
    n_log_sigma: int = 61,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ELBO landscape the Derivation page draws: (mu (n_mu,), log sigma (n_log_sigma,), ELBO (n_log_sigma, n_mu)
    in nats) over evenly spaced grids spanning ``mu_range`` (latent units) and ``log_sigma_range`` (natural log of σ)."""
    mus = np.linspace(*mu_range, n_mu)
    log_sigmas = np.linspace(*log_sigma_range, n_log_sigma)
    return mus, log_sigmas, elbo_landscape(target, mus, log_sigmas)


class FitTrajectory(NamedTuple):
    """q's path during SGD on the ELBO: row 0 is the start, row t is after t steps."""

    mu: np.ndarray  # (steps+1,)
    log_sigma: np.ndarray  # (steps+1,) natural log of q's standard deviation
    elbo: np.ndarray  # (steps+1,) exact ELBO at each point (quadrature), nats
    elbo_estimate: np.ndarray  # (steps,) the noisy reparameterized ELBO estimate each step used, nats

    @property
    def steps(self) -> int:
        """The number of SGD steps taken (the rows after the start)."""
        return len(self.mu) - 1

    @property
    def sigma(self) -> np.ndarray:
        """(steps+1,) q's standard deviation at each point, latent units."""
        return np.exp(self.log_sigma)


def fit_q_sgd(
    target: VITarget,
    mu0: float = -0.5,
    sigma0: float = 1.0,
    steps: int = 100,
    lr: float = 0.05,
    n_samples: int = 16,
    seed: int = 0,
) -> FitTrajectory:
    """Fit q = N(mu, sigma^2) by plain stochastic gradient ascent on the ELBO.

    Each step draws eps (n_samples,) ~ N(0, 1), sets z = mu + sigma * eps (reparameterized,
    so gradients flow to mu and log sigma), estimates ELBO = mean log p(x, z) + H(q) in nats
    and takes a step of size ``lr`` along its gradient. Returns the trajectory.
    """
    gen = torch.Generator().manual_seed(seed)
    mu = torch.tensor(float(mu0), dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(math.log(sigma0), dtype=torch.float64, requires_grad=True)
    mus, lss, ests = [mu0], [math.log(sigma0)], []
    for _ in range(steps):
        eps = torch.randn(n_samples, generator=gen, dtype=torch.float64)  # (n_samples,)
        z = mu + log_sigma.exp() * eps
        est = target.log_joint(z).mean() + log_sigma + 0.5 * (LOG_2PI + 1.0)
        g_mu, g_ls = torch.autograd.grad(est, (mu, log_sigma))
        with torch.no_grad():
            mu += lr * g_mu
            log_sigma += lr * g_ls
            log_sigma.clamp_(math.log(1e-3), math.log(10.0))  # keep q proper if lr is too large
        mus.append(mu.item())
        lss.append(log_sigma.item())
        ests.append(est.item())
    mu_a, ls_a = np.array(mus), np.array(lss)
    return FitTrajectory(mu_a, ls_a, elbo_1d(target, mu_a, np.exp(ls_a)), np.array(ests))


def fit_frames(
    traj: FitTrajectory, z: np.ndarray, max_frames: int = 60
) -> list[tuple[int, np.ndarray, float]]:
    """The frames an animation of ``traj`` shows: at most ``max_frames`` evenly spaced steps (the
    first and last included), each as (step, q's density on ``z`` (G,), exact ELBO in nats)."""
    n = len(traj.mu)
    steps = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))
    sig = np.exp(traj.log_sigma)
    return [(int(t), normal_pdf(z, traj.mu[t], sig[t]), float(traj.elbo[t])) for t in steps]


def density_top(posterior: np.ndarray, sigmas: np.ndarray, headroom: float = 1.05) -> float:
    """A y-axis top that fits ``posterior`` (G,) and the tallest Gaussian q of standard deviations
    ``sigmas`` (its peak 1 / (sigma sqrt(2 pi))), with 5 % headroom: density per unit z."""
    peak_q = 1.0 / (float(np.min(sigmas)) * math.sqrt(2.0 * math.pi))
    return headroom * max(float(np.max(posterior)), peak_q)


def clip_landscape(elbo: np.ndarray, log_px: float, depth: float = 8.0) -> np.ndarray:
    """ELBO values (nats) floored at log p(x) - ``depth``: the far corners of a landscape are many
    nats down and would take the whole colour scale, hiding the two maxima."""
    return np.maximum(np.asarray(elbo, dtype=np.float64), log_px - depth)


def snap_to_slider(value: float, lo: float, hi: float, ndigits: int = 2) -> float:
    """``value`` rounded to a slider's step (``ndigits`` decimals) and clipped to [lo, hi]."""
    return float(np.clip(round(float(value), ndigits), lo, hi))


# --------------------------------------------------------------------------- 4. reparameterization trick


class FunctionCase(NamedTuple):
    """f(z), its derivative f'(z), and the exact d/dmu E_{z~N(mu, sigma^2)}[f(z)]."""

    latex: str
    f: Callable[[np.ndarray], np.ndarray]  # f(z), elementwise
    df: Callable[[np.ndarray], np.ndarray]  # f'(z), elementwise
    exact: Callable[[float, float], float]  # (mu, sigma) -> d/dmu E[f(z)]


GRAD_FUNCTIONS: dict[str, FunctionCase] = {
    "z^2": FunctionCase(r"z^2", np.square, lambda z: 2 * z, lambda m, s: 2 * m),
    "z^3": FunctionCase(r"z^3", lambda z: z**3, lambda z: 3 * z**2, lambda m, s: 3 * m * m + 3 * s * s),
    "sin z": FunctionCase(r"\sin z", np.sin, np.cos, lambda m, s: math.cos(m) * math.exp(-s * s / 2)),
    "exp z": FunctionCase(r"e^{z}", np.exp, np.exp, lambda m, s: math.exp(m + s * s / 2)),
}


class GradSamples(NamedTuple):
    """n single-sample estimates of d/dmu E_{z~N(mu, sigma^2)}[f(z)] from each estimator."""

    reparam: np.ndarray  # (n,) f'(mu + sigma eps)                  pathwise / reparameterized
    score: np.ndarray  # (n,) f(z) (z - mu) / sigma^2, z ~ q      score function / REINFORCE
    exact: float  # the true gradient, closed form
    z: np.ndarray  # (n,) the samples z = mu + sigma eps both estimators used


def grad_estimators(f_name: str, mu: float, sigma: float, n: int = 1000, seed: int = 0) -> GradSamples:
    """Per-sample gradient estimates of d/dmu E[f(z)], z = mu + sigma * eps, eps ~ N(0, 1).

    Units: units of f per unit of mu. Both estimators are unbiased; the reparameterized one
    differentiates f along the sample path, the score function one only uses values of f.
    ``f_name`` is a key of GRAD_FUNCTIONS.
    """
    if f_name not in GRAD_FUNCTIONS:
        raise ValueError(f"unknown f {f_name!r}; choose one of {list(GRAD_FUNCTIONS)}")
    fn = GRAD_FUNCTIONS[f_name]
    eps = np.random.default_rng(seed).standard_normal(n)  # (n,)
    z = mu + sigma * eps
    return GradSamples(fn.df(z), fn.f(z) * eps / sigma, float(fn.exact(mu, sigma)), z)


class Summary(NamedTuple):
    """Mean, variance and standard error of the mean of per-sample estimates (same unit)."""

    mean: float
    var: float
    stderr: float


def variance_ratio(score: Summary, reparam: Summary) -> float:
    """How many times noisier the score-function estimator is than the reparameterized one: the ratio of their
    per-sample variances (dimensionless; the reparameterized variance floored at 1e-300, as for f(z) = z it is 0)."""
    return score.var / max(reparam.var, 1e-300)


def summarize(samples: np.ndarray) -> Summary:
    """Sample mean, unbiased variance and standard error sqrt(var / n) of samples (n,)."""
    s = np.asarray(samples, dtype=np.float64)
    var = float(s.var(ddof=1))
    return Summary(float(s.mean()), var, math.sqrt(var / s.size))
