"""ELBO terms as pure functions with named outputs. Every quantity is in nats per example.

Notation: x (B, D) pixels in [0, 1]; logits (B, D) from the decoder; mu, logvar (B, z) from
the encoder; the prior is p(z) = N(0, I). For one image,

    log p(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)) + KL(q(z|x) || p(z|x))
             =        ELBO                          + KL(q || true posterior)  >=  ELBO.

``iwae_bound`` gives log p_K(x) (Burda et al. 2016), which rises towards log p(x) as K grows;
``quadrature_log_px`` gives log p(x) itself for latent dims 1 and 2.

Likelihoods (:data:`LIKELIHOODS`): Bernoulli, continuous Bernoulli, and the fixed-scale Gaussian (L2) and Laplace
(L1), whose scale is the models' ``obs_std`` (:func:`equivalent_beta`: choosing it is choosing beta).
:func:`log_aggregate_posterior` is the density of the aggregate posterior q(z) = (1/N) sum_n q(z|x_n).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "LIKELIHOODS",
    "SCALED_LIKELIHOODS",
    "ELBOTerms",
    "bernoulli_log_likelihood",
    "gaussian_log_likelihood",
    "laplace_log_likelihood",
    "decoder_mean",
    "equivalent_beta",
    "cb_log_normalizer",
    "continuous_bernoulli_mean",
    "recon_log_likelihood",
    "kl_per_dim",
    "gaussian_kl",
    "elbo_terms",
    "combine_terms",
    "beta_schedule",
    "log_normal_diag",
    "log_standard_normal",
    "log_importance_weights",
    "iwae_bound",
    "iwae_curve",
    "QuadratureGrid",
    "quadrature_grid",
    "QuadratureResult",
    "quadrature_log_px",
    "quadrature_box",
    "grid_log_likelihood",
    "midpoint_axes",
    "mesh_points",
    "mc_kl",
    "log_aggregate_posterior",
]

# Every likelihood p(x|z) the decoder's logits can parameterise; recon_log_likelihood dispatches on these names.
LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "gaussian", "laplace")
# The ones with a fixed scale (the models' ``obs_std``): the Gaussian's sigma, the Laplace's b, in pixel units.
SCALED_LIKELIHOODS = ("gaussian", "laplace")

LOG_2PI = math.log(2.0 * math.pi)
Decoder = Callable[[torch.Tensor], torch.Tensor]


class ELBOTerms(NamedTuple):
    """Per-example ELBO pieces, nats. ``loss`` is the scalar that training minimises."""

    recon: torch.Tensor  # (B,)   E_q[log p(x|z)], one-sample estimate (log-likelihood, <= 0 for Bernoulli)
    kl_per_dim: torch.Tensor  # (B, z) KL(q(z_j|x) || N(0,1)) per latent dim; (B, 0) for an AE
    kl: torch.Tensor  # (B,)   sum of kl_per_dim
    elbo: torch.Tensor  # (B,)   recon - kl (for an AE: recon only; it is not a bound)
    loss: torch.Tensor  # ()     mean over the batch of -(recon - beta * KL'), KL' after free bits


def bernoulli_log_likelihood(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x; sigmoid(logits)) summed over pixels: x (..., D) in [0, 1], logits (..., D) -> (...,) nats.

    = sum_d x_d l_d - softplus(l_d), the negative of binary cross-entropy with logits (torch's fused,
    stable kernel). x broadcasts against logits (one image against many decoded latents).
    The lab's one Bernoulli log-likelihood: training, evaluation, IWAE and quadrature use it.
    """
    if x.shape != logits.shape:
        x = x.expand_as(logits)  # a view: no copy
    # one fused kernel forward and backward: per-op overhead, not arithmetic, is what a training step costs here
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


CB_SERIES_BELOW = 0.1  # |logit| under which log C uses its Taylor series (lambda within 0.025 of 1/2)


def cb_log_normalizer(logits: torch.Tensor) -> torch.Tensor:
    """log C(lambda) of the continuous Bernoulli, elementwise in its logits l = logit(lambda), nats.

    C(lambda) = 2 atanh(1 - 2 lambda) / (1 - 2 lambda), which with lambda = sigmoid(l) is
    l / tanh(l / 2): an even function of l, C = 2 at lambda = 1/2 and about |l| for large |l|.
    Near l = 0 the closed form is 0/0, so |l| < CB_SERIES_BELOW uses the series
    log 2 + u^2/3 - 7 u^4/90 + 62 u^6/2835 with u = l/2 (truncation error below 3e-13 there). Both branches get masked
    inputs, so the gradient is finite for every l (Loaiza-Ganem & Cunningham, 2019).
    """
    a = logits.abs()
    small = a < CB_SERIES_BELOW
    a_big = torch.where(small, torch.ones_like(a), a)  # the closed form never sees 0
    closed = torch.log(a_big) - torch.log(torch.tanh(0.5 * a_big))
    u2 = (0.5 * torch.where(small, a, torch.zeros_like(a))).pow(2)
    series = math.log(2.0) + u2 * (1.0 / 3.0 + u2 * (-7.0 / 90.0 + u2 * (62.0 / 2835.0)))
    return torch.where(small, series, closed)


def continuous_bernoulli_mean(logits: torch.Tensor) -> torch.Tensor:
    """E[x] of the continuous Bernoulli with logits l, elementwise in [0, 1].

    E[x] = lambda / (2 lambda - 1) + 1 / (2 atanh(1 - 2 lambda)) = 1/(1 - e^{-l}) - 1/l, which
    is 1/2 at l = 0 (series 1/2 + l/12 - l^3/720 + l^5/30240 there) and differs from lambda = sigmoid(l): the
    pixel means a continuous-Bernoulli model draws.
    """
    small = logits.abs() < CB_SERIES_BELOW
    l_big = torch.where(small, torch.ones_like(logits), logits)
    closed = 1.0 / (-torch.expm1(-l_big)) - 1.0 / l_big
    l_small = torch.where(small, logits, torch.zeros_like(logits))
    l2 = l_small.pow(2)
    series = 0.5 + l_small * (1.0 / 12.0 + l2 * (-1.0 / 720.0 + l2 / 30240.0))
    return torch.where(small, series, closed)


def gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """log N(x; mean, std^2 I) summed over pixels: x, mean (..., D) -> (...,) nats; ``std`` in pixel units.

    = sum_d [-(x_d - m_d)^2 / (2 std^2) - log std - 1/2 log 2 pi]. x broadcasts against mean.
    """
    d = mean.shape[-1]
    return -0.5 * ((x - mean) / std).pow(2).sum(-1) - d * (math.log(std) + 0.5 * LOG_2PI)


def laplace_log_likelihood(x: torch.Tensor, mean: torch.Tensor, scale: float) -> torch.Tensor:
    """log Laplace(x; mean, b) summed over pixels: x, mean (..., D) -> (...,) nats; ``scale`` b in pixel units.

    = sum_d [-|x_d - m_d| / b - log(2 b)]: an L1 reconstruction cost |x - m|_1 / b plus a constant, which is what
    "train with |X - X'|" silently chooses. The density's standard deviation is b sqrt 2. x broadcasts against mean.
    """
    d = mean.shape[-1]
    return -(x - mean).abs().sum(-1) / scale - d * math.log(2.0 * scale)


def decoder_mean(logits: torch.Tensor, likelihood: str = "bernoulli") -> torch.Tensor:
    """The pixel means E[x|z] (..., D) in [0, 1] that the decoder's logits (..., D) give under ``likelihood``.

    sigmoid(logits) for the Bernoulli, and as the location of the Gaussian and the Laplace; the continuous
    Bernoulli's mean is :func:`continuous_bernoulli_mean` (not sigmoid). The one map from logits to pixel means:
    the likelihoods below and :meth:`vae_core.models.VAE.mean_image` use it.
    """
    if likelihood == "continuous_bernoulli":
        return continuous_bernoulli_mean(logits)
    if likelihood in LIKELIHOODS:
        return torch.sigmoid(logits)
    raise ValueError(f"unknown likelihood {likelihood!r}; use one of {LIKELIHOODS}")


def recon_log_likelihood(
    x: torch.Tensor, logits: torch.Tensor, likelihood: str = "bernoulli", obs_std: float = 0.1
) -> torch.Tensor:
    """log p(x|z) summed over pixels: x (..., D), logits (..., D) -> (...,) nats.

    Bernoulli: :func:`bernoulli_log_likelihood` (a true likelihood only for binary x).
    Continuous Bernoulli: the same plus sum_d log C(l_d), a normalised density for x in [0, 1]
    (:func:`cb_log_normalizer`). Gaussian: :func:`gaussian_log_likelihood` with mean sigmoid(l) and
    std ``obs_std``. Laplace: :func:`laplace_log_likelihood` with location sigmoid(l) and scale b = ``obs_std``
    (for the Laplace, ``obs_std`` is its scale b, not its standard deviation b sqrt 2).
    Broadcasts over leading dims. The lab's one dispatch on the likelihood's name.
    """
    if likelihood == "bernoulli":
        return bernoulli_log_likelihood(x, logits)
    if likelihood == "continuous_bernoulli":
        return bernoulli_log_likelihood(x, logits) + cb_log_normalizer(logits).sum(-1)
    if likelihood == "gaussian":
        return gaussian_log_likelihood(x, decoder_mean(logits, likelihood), obs_std)
    if likelihood == "laplace":
        return laplace_log_likelihood(x, decoder_mean(logits, likelihood), obs_std)
    raise ValueError(f"unknown likelihood {likelihood!r}; use one of {LIKELIHOODS}")


def equivalent_beta(
    likelihood: str, scale: float | np.ndarray, reference_scale: float = 1.0
) -> float | np.ndarray:
    """Choosing the likelihood's scale is choosing beta: the beta that, with the ``reference_scale``, trains the
    same model as ``scale`` with beta = 1. Dimensionless; ``scale`` may be an array (then one beta per scale).

    Gaussian, std s: -log p(x|z) = |x - m|^2 / (2 s^2) + D log s + const, so with c = (s / s_ref)^2
    -ELBO(s, beta=1) = (1/c) [|x - m|^2 / (2 s_ref^2) + c KL] + const = (1/c) (-ELBO_c(s_ref)) + const:
    beta = (s / s_ref)^2 (scaling the variance by c is beta = c). Laplace, scale b: -log p = |x - m|_1 / b + D log 2b,
    so beta = b / b_ref. The two losses differ by the factor 1/beta and a constant, so their gradients are
    proportional: the same direction, and with Adam (blind to a constant factor, up to its epsilon) the same steps.
    Only the scaled likelihoods (:data:`SCALED_LIKELIHOODS`) have a scale; the others raise ValueError.
    """
    ratio = np.asarray(scale, dtype=np.float64) / float(reference_scale)
    if np.any(ratio <= 0) or not np.all(np.isfinite(ratio)):
        raise ValueError(f"scales must be positive and finite, got {scale!r} against {reference_scale!r}")
    if likelihood == "gaussian":
        beta = ratio**2
    elif likelihood == "laplace":
        beta = ratio
    else:
        raise ValueError(f"the {likelihood!r} likelihood has no scale; use one of {SCALED_LIKELIHOODS}")
    return float(beta) if beta.ndim == 0 else beta


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Analytic KL(N(mu, sigma^2) || N(0, 1)) per dim: (B, z) -> (B, z) nats.

    = 1/2 (mu^2 + sigma^2 - 1 - log sigma^2), which is >= 0 and 0 only at mu=0, sigma=1.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def gaussian_kl(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """Analytic KL(N(mu_q, s_q^2) || N(mu_p, s_p^2)) elementwise, nats (broadcasting shapes).

    = log(s_p/s_q) + (s_q^2 + (mu_q - mu_p)^2) / (2 s_p^2) - 1/2.
    """
    return (
        0.5 * (logvar_p - logvar_q) + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / (2.0 * logvar_p.exp()) - 0.5
    )


def beta_schedule(step: int, beta: float = 1.0, warmup_steps: int = 0) -> float:
    """KL weight in force at optimisation ``step`` (0-based): linear warm-up 0 -> beta over warmup_steps."""
    if warmup_steps <= 0:
        return float(beta)
    return float(beta) * min(1.0, (step + 1) / float(warmup_steps))


def elbo_terms(
    x: torch.Tensor,
    logits: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor | None,
    beta: float = 1.0,
    free_bits: float = 0.0,
    likelihood: str = "bernoulli",
    obs_std: float = 0.1,
) -> ELBOTerms:
    """All ELBO terms for a batch: x, logits (B, D); mu, logvar (B, z). Nats per example.

    ``logvar=None`` means an AE: no KL, ``elbo`` is the reconstruction log-likelihood only.
    Free bits (Kingma et al. 2016): each latent dim's batch-mean KL enters the loss as
    max(KL_j, free_bits), so dims below the floor get no push towards the prior.
    """
    recon = recon_log_likelihood(x, logits, likelihood, obs_std)  # (B,)
    return combine_terms(recon, None if logvar is None else kl_per_dim(mu, logvar), beta, free_bits)


def combine_terms(
    recon: torch.Tensor, kl_d: torch.Tensor | None, beta: float = 1.0, free_bits: float = 0.0
) -> ELBOTerms:
    """The ELBO terms from their two parts: recon (B,) log p(x|z) and KL per dim (B, z), nats.

    ``kl_d=None`` means an AE (no KL). Free bits: see :func:`elbo_terms`. Shared by
    :func:`elbo_terms`, and callers that computed the reconstruction term themselves.
    """
    if kl_d is None:
        kl_d = recon.new_zeros((recon.shape[0], 0))
        kl = recon.new_zeros(recon.shape)
        return ELBOTerms(recon, kl_d, kl, recon, -recon.mean())
    kl = kl_d.sum(-1)  # (B,)
    if free_bits > 0.0:
        kl_loss = torch.clamp(kl_d.mean(0), min=free_bits).sum()
    else:
        kl_loss = kl.mean()
    loss = -recon.mean() + beta * kl_loss
    return ELBOTerms(recon, kl_d, kl, recon - kl, loss)


def log_normal_diag(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dim: (..., z) -> (...,) nats."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dim: (..., z) -> (...,) nats."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


def _k_chunk(batch: int, dim: int, budget: int = 8_000_000) -> int:
    return max(1, budget // max(1, batch * dim))


def log_importance_weights(
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    decode: Decoder,
    k: int,
    likelihood: str = "bernoulli",
    obs_std: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), z_k ~ q(z|x): returns (K, B) nats.

    x (B, D); mu, logvar (B, z). Decoding is chunked over K to keep memory near 32 MB.
    """
    if k < 1:
        raise ValueError(f"K must be >= 1, got {k}")
    b, zdim = mu.shape
    std = torch.exp(0.5 * logvar)
    out = []
    step = _k_chunk(b, x.shape[-1])
    for start in range(0, k, step):
        kk = min(step, k - start)
        eps = torch.randn((kk, b, zdim), device=mu.device, dtype=mu.dtype, generator=generator)
        z = mu + std * eps  # (kk, B, z)
        logits = decode(z.reshape(kk * b, zdim)).reshape(kk, b, -1)  # (kk, B, D)
        lw = recon_log_likelihood(x.unsqueeze(0), logits, likelihood, obs_std)
        lw = lw + log_standard_normal(z) - log_normal_diag(z, mu, logvar)
        out.append(lw)
    return torch.cat(out, 0)


def iwae_bound(
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    decode: Decoder,
    k: int,
    likelihood: str = "bernoulli",
    obs_std: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Importance-weighted bound log p_K(x) = logsumexp_k(log w_k) - log K: (B,) nats.

    K=1 is a one-sample ELBO estimate; E[log p_K] rises with K towards log p(x).
    """
    lw = log_importance_weights(x, mu, logvar, decode, k, likelihood, obs_std, generator)
    return torch.logsumexp(lw, 0) - math.log(k)


def iwae_curve(log_w: torch.Tensor) -> torch.Tensor:
    """Running IWAE estimates from one set of log weights: (K, B) -> (K, B), row k-1 uses the first k."""
    k = torch.arange(1, log_w.shape[0] + 1, device=log_w.device, dtype=log_w.dtype).unsqueeze(1)
    return torch.logcumsumexp(log_w, 0) - torch.log(k)


class QuadratureGrid(NamedTuple):
    """log p(x) of one image by midpoint quadrature over z (latent dim 1 or 2), with its grid."""

    log_px: float  # log integral p(x|z) p(z) dz, nats
    log_joint: torch.Tensor  # (n,) for z=1 or (n, n) for z=2: log p(x, z) at the cell midpoints, float64
    axes: torch.Tensor  # (zdim, n) midpoint coordinates per latent dim
    log_cell: float  # log of the cell length (z=1) or area (z=2)

    def log_posterior(self) -> torch.Tensor:
        """log p(z|x) density at the grid points, same shape as ``log_joint``."""
        return self.log_joint - self.log_px


class QuadratureResult(NamedTuple):
    """log p(x) by numerical integration over z (latent dim 1 or 2), for a batch of images."""

    log_px: torch.Tensor  # (B,) nats
    log_joint: torch.Tensor  # (B, n) for z=1 or (B, n, n) for z=2: log p(x, z) at grid points
    axes: torch.Tensor  # (B, zdim, n): grid coordinates per image and dim
    cell: torch.Tensor  # (B,) cell length (z=1) or area (z=2)

    def log_posterior(self) -> torch.Tensor:
        """log p(z|x) density at the grid points, same shape as ``log_joint``."""
        extra = (1,) * (self.log_joint.dim() - 1)
        return self.log_joint - self.log_px.view(-1, *extra)


def grid_log_likelihood(
    x: torch.Tensor,
    decode: Decoder,
    z: torch.Tensor,
    likelihood: str = "bernoulli",
    obs_std: float = 0.1,
    chunk: int = 0,
) -> torch.Tensor:
    """log p(x|z) of one image x (D,) at many latents z (P, zdim): (P,) nats, without gradients.

    ``recon_log_likelihood(x, decode(z))``, decoded in chunks of about 2M logits to bound memory.
    """
    chunk = chunk or max(256, 2_000_000 // max(1, x.shape[-1]))
    out = torch.empty(z.shape[0], device=z.device, dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, z.shape[0], chunk):
            out[start : start + chunk] = recon_log_likelihood(
                x, decode(z[start : start + chunk]), likelihood, obs_std
            )
    return out


def mesh_points(axes: list[torch.Tensor]) -> torch.Tensor:
    """Grid axes [(n,)] * zdim -> points (n**zdim, zdim), "ij" order (the last dim varies fastest)."""
    if len(axes) == 1:
        return axes[0].unsqueeze(1)
    g0, g1 = torch.meshgrid(axes[0], axes[1], indexing="ij")
    return torch.stack([g0.reshape(-1), g1.reshape(-1)], 1)


def quadrature_box(
    x: torch.Tensor,
    decode: Decoder,
    latent_dim: int,
    likelihood: str = "bernoulli",
    obs_std: float = 0.1,
    q: tuple[torch.Tensor, torch.Tensor] | None = None,
    radius: float = 6.0,
    coarse: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where one image's posterior mass lies: the box (lo (zdim,), hi (zdim,)) to integrate over.

    A coarse grid over [-radius, radius]^zdim finds where log p(x, z) lies within 30 nats of its
    peak; that region padded by one coarse cell, joined with q's +-6 sigma box when
    ``q=(mu (zdim,), logvar (zdim,))`` is given, clipped to [-radius-2, radius+2]. x (D,).
    """
    c_axis = torch.linspace(-radius, radius, coarse, device=x.device, dtype=x.dtype)
    c_pts = mesh_points([c_axis] * latent_dim)  # (C, zdim)
    lj = grid_log_likelihood(x, decode, c_pts, likelihood, obs_std) + log_standard_normal(c_pts)
    keep = c_pts[lj >= lj.max() - 30.0]  # (M, zdim)
    step = c_axis[1] - c_axis[0]
    lo, hi = keep.min(0).values - step, keep.max(0).values + step
    if q is not None:
        sd = torch.exp(0.5 * q[1])
        lo, hi = torch.minimum(lo, q[0] - 6 * sd), torch.maximum(hi, q[0] + 6 * sd)
    return lo.clamp(min=-radius - 2), hi.clamp(max=radius + 2)


def midpoint_axes(lo: torch.Tensor, hi: torch.Tensor, n: int) -> list[torch.Tensor]:
    """n cell midpoints per dim of the box [lo, hi]: a list of zdim tensors (n,)."""
    width = (hi - lo) / n
    idx = torch.arange(n, device=lo.device, dtype=lo.dtype) + 0.5
    return [lo[j] + width[j] * idx for j in range(lo.shape[0])]


@torch.no_grad()
def quadrature_grid(
    x: torch.Tensor,
    decode: Decoder,
    latent_dim: int,
    n: int = 200,
    likelihood: str = "bernoulli",
    obs_std: float = 0.1,
    q: tuple[torch.Tensor, torch.Tensor] | None = None,
    radius: float = 6.0,
    coarse: int = 64,
    bounds: tuple[float, float] | None = None,
) -> QuadratureGrid:
    """log p(x) = log integral p(x|z) p(z) dz for one image x (D,) on an n (z=1) or n x n (z=2) midpoint grid.

    The lab's one quadrature rule. The box comes from :func:`quadrature_box` (widened to q's
    +-6 sigma when ``q=(mu (zdim,), logvar (zdim,))``); ``bounds=(lo, hi)`` fixes it instead.
    log p(x, z) is summed in float64. Nats.
    """
    if latent_dim not in (1, 2):
        raise ValueError(f"quadrature needs latent dim 1 or 2, got {latent_dim}")
    if bounds is None:
        lo, hi = quadrature_box(x, decode, latent_dim, likelihood, obs_std, q, radius, coarse)
    else:
        lo = torch.full((latent_dim,), float(bounds[0]), device=x.device, dtype=x.dtype)
        hi = torch.full((latent_dim,), float(bounds[1]), device=x.device, dtype=x.dtype)
    axes = midpoint_axes(lo, hi, n)
    pts = mesh_points(axes)  # (n**zdim, zdim)
    log_joint = (grid_log_likelihood(x, decode, pts, likelihood, obs_std) + log_standard_normal(pts)).double()
    log_cell = float(torch.log((hi - lo).double() / n).sum())
    log_px = float(torch.logsumexp(log_joint, 0)) + log_cell
    return QuadratureGrid(log_px, log_joint.reshape((n,) * latent_dim), torch.stack(axes), log_cell)


def quadrature_log_px(
    x: torch.Tensor,
    decode: Decoder,
    latent_dim: int,
    q: tuple[torch.Tensor, torch.Tensor] | None = None,
    **grid: Any,
) -> QuadratureResult:
    """:func:`quadrature_grid` for each image of a batch x (B, D); ``q=(mu, logvar)`` (B, zdim) each, and
    ``grid`` its other settings (``n``, ``likelihood``, ``obs_std``, ``radius``, ``coarse``, ``bounds``).

    Each image gets its own box (the prior mass outside [-6, 6] is below 1e-8). Returns
    :class:`QuadratureResult` with log p(x) (B,) nats and the grids of log p(x, z), in x's dtype.
    """
    grids = [
        quadrature_grid(x[i], decode, latent_dim, q=None if q is None else (q[0][i], q[1][i]), **grid)
        for i in range(x.shape[0])
    ]
    dt = x.dtype  # results in the images' dtype; the sums were taken in float64
    return QuadratureResult(
        torch.tensor([g.log_px for g in grids], dtype=dt, device=x.device),
        torch.stack([g.log_joint for g in grids]).to(dt),
        torch.stack([g.axes for g in grids]),
        torch.tensor([math.exp(g.log_cell) for g in grids], dtype=dt, device=x.device),
    )


def mc_kl(
    mu: torch.Tensor, logvar: torch.Tensor, n: int = 1000, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Monte Carlo KL(q(z|x) || N(0, I)) = E_q[log q(z|x) - log p(z)] with n samples.

    mu, logvar (B, z) -> (estimate (B,), standard error (B,)) in nats.
    """
    if n < 2:
        raise ValueError(f"need at least 2 samples for a standard error, got {n}")
    eps = torch.randn((n, *mu.shape), device=mu.device, dtype=mu.dtype, generator=generator)
    z = mu + torch.exp(0.5 * logvar) * eps  # (n, B, z)
    diff = log_normal_diag(z, mu, logvar) - log_standard_normal(z)  # (n, B)
    return diff.mean(0), diff.std(0) / math.sqrt(n)


def log_aggregate_posterior(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, budget: int = 500_000
) -> torch.Tensor:
    """log q(z) of the aggregate posterior q(z) = (1/N) sum_n N(z; mu_n, diag exp(logvar_n)): (M,) nats per unit z^d.

    z (M, d) points; mu, logvar (N, d) the encodings of N images. log q(z) = logsumexp_n log q(z|x_n) - log N over
    all N components, in float64 (whatever the inputs' dtype), chunked over the M points so that one block holds
    about ``budget`` (point, component) pairs (4 MB of float64 at the default, which stays in cache): memory is
    bounded for N = 10,000 images and any M. Each block is one matrix product, as
    log N(z; mu, s^2) = sum_j [-z_j^2 / (2 s_j^2) + z_j mu_j / s_j^2 - mu_j^2 / (2 s_j^2) - log s_j - 1/2 log 2 pi]
    is linear in the features (z^2, z, 1); float64 keeps the expanded square exact to ~1e-12 nats.
    """
    mu, logvar = mu.double(), logvar.double()
    z = z.double().to(mu.device)
    n, d = mu.shape
    if n < 1:
        raise ValueError("the aggregate posterior needs at least one encoding")
    inv_var = torch.exp(-logvar)  # (N, d)
    const = -0.5 * ((mu.pow(2) * inv_var + logvar).sum(1) + d * LOG_2PI)  # (N,)
    weights = torch.cat([-0.5 * inv_var, mu * inv_var, const.unsqueeze(1)], 1).T.contiguous()  # (2d + 1, N)
    ones = torch.ones((z.shape[0], 1), dtype=torch.float64, device=mu.device)
    features = torch.cat([z.pow(2), z, ones], 1)  # (M, 2d + 1)
    out = torch.empty(z.shape[0], dtype=torch.float64, device=mu.device)
    step = max(1, budget // n)
    for start in range(0, z.shape[0], step):
        block = features[start : start + step] @ weights  # (m, N): log q(z_i | x_n)
        top = block.amax(1, keepdim=True)  # (m, 1): logsumexp by hand, in place (no second (m, N) buffer)
        out[start : start + step] = block.sub_(top).exp_().sum(1).log_() + top.squeeze(1)
    return out - math.log(n)
