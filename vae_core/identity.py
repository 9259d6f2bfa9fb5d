"""The identity log p(x) = ELBO + KL(q(z|x) || p(z|x)) with real numbers, for one image or a test set.

Built on :mod:`vae_core.elbo`. For one image x (D,) of a VAE with encoder q(z|x) = N(mu, sigma^2):

- :func:`image_report` draws K samples z_k ~ q(z|x) once and returns everything the ELBO page
  shows: E_q[log p(x|z)] (Monte Carlo, with its standard error), the analytic KL(q || p(z)), the
  ELBO, the running importance-weighted estimates log p_K(x) for K = 1..K_max from those same
  samples, and a Monte Carlo KL with its standard error.
- :func:`posterior_grid` (latent dim 1 or 2) computes log p(x) by ``elbo.quadrature_grid``,
  the true posterior p(z|x) on an n (x n) grid, and the exact E_q[log p(x|z)] and KL(q || p(z|x))
  by quadrature over q's own +-6 sigma box.

Test-set metrics (test -ELBO, IWAE NLL) live in :mod:`vae_core.evaluate`.

Every quantity is in nats per image. Nothing here imports streamlit.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch

from .data import to_float
from .elbo import (
    grid_log_likelihood,
    iwae_curve,
    kl_per_dim,
    log_normal_diag,
    log_standard_normal,
    mc_kl,
    mesh_points,
    midpoint_axes,
    quadrature_grid,
)
from .models import AE, VAE
from .theory import normal_pdf
from .train import History

__all__ = [
    "ImageReport",
    "image_report",
    "kl_monte_carlo",
    "expected_iwae",
    "IWAERepeats",
    "iwae_repeats",
    "grid_log_lik",
    "PosteriorGrid",
    "posterior_grid",
    "ellipse",
    "HistoryCurves",
    "history_curves",
    "K_CHOICES",
    "candidates",
    "k_grid",
    "smooth_window",
    "mean_posterior_gap",
]

# Values offered by the page's K slider (log-spaced from 1 to 5000).
K_CHOICES = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000, 3000, 5000)


def _need_vae(model: AE | VAE) -> None:
    if not model.is_vae:
        raise ValueError("this needs a VAE: an AE has no q(z|x), no prior and hence no ELBO or KL")


class ImageReport(NamedTuple):
    """Every number of the ELBO identity for one image, nats. K-indexed arrays start at K=1."""

    recon: float  # E_q[log p(x|z)], mean over the k_max samples (<= 0 for Bernoulli)
    recon_se: float  # its Monte Carlo standard error
    kl: float  # analytic KL(q(z|x) || p(z))
    kl_per_dim: np.ndarray  # (z,) analytic KL per latent dim
    elbo: float  # recon - kl
    log_w: np.ndarray  # (k_max,) log importance weights log p(x,z_k) - log q(z_k|x)
    iwae: np.ndarray  # (k_max,) running log p_K(x) using the first K weights
    mc_kl: float  # Monte Carlo KL(q || p(z)) with mc_n samples
    mc_kl_se: float  # its standard error
    mc_n: int
    mu: np.ndarray  # (z,) posterior mean
    sigma: np.ndarray  # (z,) posterior std
    x: np.ndarray  # (D,) the image in [0, 1]
    x_recon: np.ndarray  # (D,) pixel means E[x | z=mu] (model.mean_image), the reconstruction shown

    @property
    def k_max(self) -> int:
        return int(self.log_w.shape[0])

    def log_px_hat(self, k: int) -> float:
        """log p_K(x) from the first ``k`` samples (1 <= k <= k_max), nats."""
        if not 1 <= k <= self.k_max:
            raise ValueError(f"K must be between 1 and {self.k_max}, got {k}")
        return float(self.iwae[k - 1])

    def gap(self, k: int) -> float:
        """log p_K(x) - ELBO at K samples, nats: a lower estimate of KL(q(z|x) || p(z|x)). For a finite K it is
        biased low, since E[log p_K(x)] <= log p(x) (Jensen); the bias shrinks as K grows."""
        return self.log_px_hat(k) - self.elbo


def _log_weights(
    model: VAE, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, k: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(x|z_k), log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)) for z_k ~ q(z|x): (K,) float64 each.

    x (D,) float; mu, logvar (z,). Draws eps as (K, 1, z) like ``elbo.log_importance_weights``.
    """
    eps = torch.randn((k, 1, mu.shape[0]), device=mu.device, dtype=mu.dtype, generator=gen)[:, 0]
    z = mu + torch.exp(0.5 * logvar) * eps  # (K, z)
    log_lik = grid_log_lik(model, x, z).double()
    return log_lik, log_lik + (log_standard_normal(z) - log_normal_diag(z, mu, logvar)).double()


@torch.no_grad()
def image_report(
    model: VAE, x: torch.Tensor, k_max: int = 5000, seed: int = 0, mc_n: int = 1000
) -> ImageReport:
    """All ELBO-page numbers for one image x (D,) (uint8 or float in [0, 1]) in one call.

    Draws k_max samples z_k ~ q(z|x) with a generator seeded by ``seed``, decodes them once,
    and computes log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) (the same draws as
    ``elbo.log_importance_weights`` with that generator when it decodes in one chunk). Nats.
    """
    _need_vae(model)
    if k_max < 2:
        raise ValueError(f"k_max must be at least 2 (for a standard error), got {k_max}")
    dev = next(model.parameters()).device
    xf = to_float(x.reshape(1, -1).to(dev))  # (1, D)
    mu, logvar = model.encode(xf)  # (1, z) each
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    log_lik, log_w = _log_weights(model, xf[0], mu[0], logvar[0], k_max, gen)  # (K,) each
    kl_d = kl_per_dim(mu, logvar)[0].double()  # (z,)
    kl = float(kl_d.sum())
    recon = float(log_lik.mean())
    mc, mc_se = mc_kl(
        mu.double(), logvar.double(), n=mc_n, generator=torch.Generator(device=dev).manual_seed(int(seed) + 1)
    )
    return ImageReport(
        recon=recon,
        recon_se=float(log_lik.std() / math.sqrt(k_max)),
        kl=kl,
        kl_per_dim=kl_d.cpu().numpy(),
        elbo=recon - kl,
        log_w=log_w.cpu().numpy(),
        iwae=iwae_curve(log_w.unsqueeze(1))[:, 0].cpu().numpy(),
        mc_kl=float(mc[0]),
        mc_kl_se=float(mc_se[0]),
        mc_n=int(mc_n),
        mu=mu[0].double().cpu().numpy(),
        sigma=torch.exp(0.5 * logvar[0]).double().cpu().numpy(),
        x=xf[0].cpu().numpy(),
        x_recon=model.mean_image(mu)[0].cpu().numpy(),
    )


def kl_monte_carlo(mu: np.ndarray, sigma: np.ndarray, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Monte Carlo KL(N(mu, sigma^2) || N(0, I)) with n samples for one image: (estimate, standard error), nats.

    mu, sigma (z,) as in :class:`ImageReport`; wraps ``elbo.mc_kl`` in float64.
    """
    m = torch.as_tensor(np.asarray(mu), dtype=torch.float64).reshape(1, -1)
    lv = 2.0 * torch.log(torch.as_tensor(np.asarray(sigma), dtype=torch.float64).reshape(1, -1))
    est, se = mc_kl(m, lv, n=int(n), generator=torch.Generator().manual_seed(int(seed)))
    return float(est[0]), float(se[0])


def expected_iwae(log_w: np.ndarray, ks: list[int] | tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """E[log p_K(x)] for each K in ``ks``, averaged over the floor(k_max/K) disjoint groups of K weights.

    log_w (k_max,) -> (mean (len(ks),), standard error (len(ks),); nan with one group), nats.
    Smoother than the running curve, and it rises with K in expectation.
    """
    lw = np.asarray(log_w, dtype=np.float64)
    means, ses = [], []
    for k in ks:
        g = lw.shape[0] // int(k)
        if g < 1:
            means.append(np.nan)
            ses.append(np.nan)
            continue
        blocks = lw[: g * k].reshape(g, k)
        m = blocks.max(1, keepdims=True)
        est = (m[:, 0] + np.log(np.exp(blocks - m).sum(1))) - math.log(k)  # (g,)
        means.append(est.mean())
        ses.append(est.std(ddof=1) / math.sqrt(g) if g > 1 else np.nan)
    return np.array(means), np.array(ses)


class IWAERepeats(NamedTuple):
    """log p̂_K(x) of one image over independent repeats: its mean and standard error at each K, nats."""

    ks: np.ndarray  # (n,) the K values
    mean: np.ndarray  # (n,) mean over the repeats of log p̂_K(x)
    se: np.ndarray  # (n,) standard error of that mean: std over the repeats (ddof=1) / sqrt(repeats)
    repeats: int  # independent sets of max(ks) draws z ~ q(z|x)

    def at(self, k: int) -> tuple[float, float]:
        """(mean, standard error) of log p̂_K(x) at K = ``k`` (one of :attr:`ks`)."""
        i = int(np.flatnonzero(self.ks == int(k))[0]) if int(k) in self.ks else -1
        if i < 0:
            raise ValueError(f"K={k} is not one of {self.ks.tolist()}")
        return float(self.mean[i]), float(self.se[i])


@torch.no_grad()
def iwae_repeats(
    model: VAE,
    x: torch.Tensor,
    ks: list[int] | tuple[int, ...] = K_CHOICES,
    repeats: int = 8,
    seed: int = 0,
) -> IWAERepeats:
    """log p̂_K(x) for one image x (D,) at each K in ``ks``, as a mean over ``repeats`` independent runs with its
    standard error. Each run draws its own max(ks) samples z ~ q(z|x) (a generator seeded by ``seed`` + 1000 + r)
    and uses its first K at each K, as :func:`image_report`'s running curve does. The spread is the estimator's
    noise: a single run may land above log p(x) although E[log p̂_K(x)] ≤ log p(x) for every K. Nats."""
    _need_vae(model)
    if repeats < 2:
        raise ValueError(f"repeats must be at least 2 (for a standard error), got {repeats}")
    k_arr = np.array(sorted({int(k) for k in ks}))
    if k_arr[0] < 1:
        raise ValueError(f"every K must be at least 1, got {k_arr[0]}")
    k_max = int(k_arr[-1])
    dev = next(model.parameters()).device
    xf = to_float(x.reshape(1, -1).to(dev))
    mu, logvar = model.encode(xf)
    runs = []
    for r in range(int(repeats)):
        gen = torch.Generator(device=dev).manual_seed(int(seed) + 1000 + r)
        _, log_w = _log_weights(model, xf[0], mu[0], logvar[0], k_max, gen)
        runs.append(iwae_curve(log_w.unsqueeze(1))[k_arr - 1, 0])  # (n,)
    est = torch.stack(runs).cpu().numpy()  # (repeats, n)
    return IWAERepeats(k_arr, est.mean(0), est.std(0, ddof=1) / math.sqrt(repeats), int(repeats))


def grid_log_lik(model: VAE | AE, x: torch.Tensor, z: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """log p(x|z) for one image x (D,) in [0, 1] at many latents z (P, zdim): (P,) nats.

    The model's likelihood applied by :func:`vae_core.elbo.grid_log_likelihood` (the fast path).
    """
    cfg = model.config
    return grid_log_likelihood(x, model.decode, z, cfg.likelihood, cfg.obs_std, chunk)


class PosteriorGrid(NamedTuple):
    """The true posterior of one image by quadrature (latent dim 1 or 2), nats."""

    axes: np.ndarray  # (zdim, n) grid coordinates per latent dim
    log_posterior: np.ndarray  # (n,) or (n, n): log p(z|x) density; [i, j] <-> (axes[0][i], axes[1][j])
    cell: float  # cell length (z=1) or area (z=2)
    log_px: float  # log p(x) = log integral p(x|z) p(z) dz
    mu: np.ndarray  # (zdim,) q's mean
    sigma: np.ndarray  # (zdim,) q's std
    recon_exact: float  # E_q[log p(x|z)] by quadrature over q's +-6 sigma box
    kl: float  # analytic KL(q || p(z))
    elbo_exact: float  # recon_exact - kl
    kl_q_post: float  # integral q log(q / p(z|x)) dz by quadrature (direct, not log p(x) - ELBO)
    mass: float  # integral of p(z|x) over the grid (1 up to rounding)

    @property
    def residual(self) -> float:
        """log p(x) − ELBO − KL(q || p(z|x)), all three by quadrature, nats: 0 up to the grids' discretisation."""
        return self.log_px - self.elbo_exact - self.kl_q_post

    @property
    def density(self) -> np.ndarray:
        """p(z|x) at the grid points, (n,) or (n, n), per unit z (per unit area for z=2)."""
        return np.exp(self.log_posterior)

    def q_density(self) -> np.ndarray:
        """q(z|x) = N(mu, sigma^2) on the grid of a 1-D latent, (n,) per unit z (the z=1 view draws it beside p(z|x))."""
        if len(self.axes) != 1:
            raise ValueError("q_density is the 1-D view; a 2-D q is drawn as ellipses (see ellipse)")
        return normal_pdf(self.axes[0], float(self.mu[0]), float(self.sigma[0]))

    def view_box(
        self, rel: float = 1e-3, q_sigmas: float = 2.5, pad: float = 0.15
    ) -> tuple[np.ndarray, np.ndarray]:
        """A box to draw: where p(z|x) > rel * its peak, joined with q's +-q_sigmas box, padded by ``pad``
        of its size and clipped to the grid. (lo (zdim,), hi (zdim,)) in latent units.

        The quadrature box is much wider (it keeps everything within 30 nats of the peak), so
        drawn in full the posterior would be a dot.
        """
        lp = self.log_posterior
        keep = lp >= lp.max() + math.log(rel)
        lo, hi = np.empty(len(self.axes)), np.empty(len(self.axes))
        for j, ax in enumerate(self.axes):
            other = tuple(k for k in range(lp.ndim) if k != j)
            used = ax[keep.any(axis=other) if other else keep]
            lo[j] = min(used.min(), self.mu[j] - q_sigmas * self.sigma[j])
            hi[j] = max(used.max(), self.mu[j] + q_sigmas * self.sigma[j])
        span = hi - lo
        return np.maximum(lo - pad * span, self.axes[:, 0]), np.minimum(hi + pad * span, self.axes[:, -1])


@torch.no_grad()
def posterior_grid(model: VAE, x: torch.Tensor, n: int = 200, n_q: int = 64) -> PosteriorGrid:
    """p(z|x) on an n (x n) grid and exact log p(x) for one image x (D,); latent dim 1 or 2 only.

    The same midpoint quadrature as ``elbo.quadrature_log_px`` with ``q=(mu, logvar)`` (same
    box, see ``elbo.quadrature_box``). E_q[log p(x|z)] and
    KL(q || p(z|x)) are integrated on a separate n_q (x n_q) grid over q's +-6 sigma box, which
    stays accurate when q is much narrower than the posterior. Nats.
    """
    _need_vae(model)
    zdim = model.config.latent_dim
    if zdim not in (1, 2):
        raise ValueError(
            f"the true posterior by quadrature needs latent dim 1 or 2 (200^z grid points), this model has z={zdim}"
        )
    dev = next(model.parameters()).device
    xf = to_float(x.reshape(1, -1).to(dev))  # (1, D)
    mu2, logvar2 = model.encode(xf)
    mu, logvar = mu2[0], logvar2[0]  # (zdim,)
    cfg = model.config
    quad = quadrature_grid(xf[0], model.decode, zdim, n, cfg.likelihood, cfg.obs_std, q=(mu, logvar))
    log_px = quad.log_px
    log_post = quad.log_posterior()
    mass = float(torch.exp(torch.logsumexp(log_post.reshape(-1), 0) + quad.log_cell))
    # q's own box: mu +- 6 sigma per dim
    sd = torch.exp(0.5 * logvar)  # (zdim,)
    q_pts = mesh_points(midpoint_axes(mu - 6 * sd, mu + 6 * sd, n_q))
    log_lik = grid_log_lik(model, xf[0], q_pts).double()  # (Q,)
    log_q = log_normal_diag(q_pts, mu, logvar).double()
    w = torch.softmax(log_q, 0)  # q's mass per cell, normalised on the grid
    kl = float(kl_per_dim(mu, logvar).double().sum())
    recon_exact = float((w * log_lik).sum())
    kl_q_post = float((w * (log_q - (log_lik + log_standard_normal(q_pts).double() - log_px))).sum())
    return PosteriorGrid(
        axes=quad.axes.cpu().numpy(),
        log_posterior=log_post.cpu().numpy(),
        cell=math.exp(quad.log_cell),
        log_px=float(log_px),
        mu=mu.double().cpu().numpy(),
        sigma=sd.double().cpu().numpy(),
        recon_exact=recon_exact,
        kl=kl,
        elbo_exact=recon_exact - kl,
        kl_q_post=kl_q_post,
        mass=mass,
    )


def ellipse(
    mu: np.ndarray, sigma: np.ndarray, k: float = 1.0, points: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """The k-sigma ellipse of a diagonal 2-D Gaussian: (z1 (points,), z2 (points,)) in latent units."""
    t = np.linspace(0.0, 2.0 * np.pi, points)
    return mu[0] + k * sigma[0] * np.cos(t), mu[1] + k * sigma[1] * np.sin(t)


class HistoryCurves(NamedTuple):
    """Training curves from a columnar history (``metadata['history']`` or a trainer snapshot)."""

    step: np.ndarray  # (S,) optimisation steps
    recon_cost: np.ndarray  # (S,) -E_q[log p(x|z)] on the batch, nats/image (>= 0 for Bernoulli)
    kl: np.ndarray  # (S,) KL(q || p(z)) on the batch, nats/image
    loss: np.ndarray  # (S,) the objective minimised: recon cost + beta * KL (after free bits)
    beta: np.ndarray  # (S,) KL weight in force
    kl_per_dim: np.ndarray  # (S, z) per-dim KL on the batch, nats/image
    eval_step: np.ndarray  # (E,)
    test_neg_elbo: np.ndarray  # (E,) nats/image
    active_units: np.ndarray  # (E,) dims with Cov_x[mu] > 0.01
    low_kl_units: (
        np.ndarray
    )  # (E,) dims with test KL under evaluate.LOW_KL_THRESHOLD nats/image (nan: not recorded)


def _smooth(a: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average along axis 0 (window 1 = unchanged)."""
    if window <= 1 or a.shape[0] == 0:
        return a
    c = np.cumsum(np.concatenate([np.zeros((1, *a.shape[1:])), a], 0), 0)
    idx = np.arange(1, a.shape[0] + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo).reshape(-1, *([1] * (a.ndim - 1)))


def history_curves(
    history: History | dict[str, Any], smooth: int = 1, latent_dim: int = 0
) -> HistoryCurves | None:
    """Numpy curves from a History (or its dict form); per-step values smoothed over ``smooth`` steps.

    Built on :meth:`History.arrays` and :meth:`History.eval_arrays`, the one History -> arrays
    conversion. Returns None when there are no step records. Missing per-dim KL gives a (S, 0) array.
    """
    h = History.from_dict(history) if isinstance(history, dict) else history
    if not h.step:
        return None
    a, e = h.arrays(latent_dim=latent_dim), h.eval_arrays()
    return HistoryCurves(
        step=a["step"].astype(np.float64),
        recon_cost=_smooth(a["recon_cost"], smooth),
        kl=_smooth(a["kl"], smooth),
        loss=_smooth(a["loss"], smooth),
        beta=a["beta"],
        kl_per_dim=_smooth(a["kl_per_dim"], smooth),
        eval_step=e["eval_step"].astype(np.float64),
        test_neg_elbo=e["test_neg_elbo"],
        active_units=e["active_units"],
        low_kl_units=e["low_kl_units"],
    )


# --------------------------------------------------------------------------- what the ELBO pages pick and draw
def candidates(n_test: int, n: int, seed: int) -> list[int]:
    """``n`` distinct test-set indices offered as images to pick, drawn by a generator seeded by ``seed``
    (the page's "other images" button raises the seed): the same seed gives the same images."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randperm(int(n_test), generator=gen)[:n].tolist()


def k_grid(k_max: int, points: int = 400) -> np.ndarray:
    """Distinct, log-spaced K in 1..k_max (at most ``points``) at which a log p_K(x) curve is drawn."""
    return np.unique(np.geomspace(1, k_max, points).round().astype(int))


def smooth_window(n_steps: int, points: int = 150) -> int:
    """The moving-average window (>= 1 step) that leaves about ``points`` independent points in a
    training curve of ``n_steps`` steps."""
    return max(1, int(n_steps) // points)


def mean_posterior_gap(metrics: dict[str, Any]) -> float | None:
    """-ELBO - NLL on the IWAE subset, nats per image: a lower estimate of the mean KL(q(z|x) || p(z|x)) over
    those images (the NLL comes from a finite K, so it is biased high and the difference low; the bias shrinks as K
    grows); None when ``metrics`` (DatasetMetrics.to_dict()) has no IWAE figures."""
    neg_elbo, nll = metrics.get("iwae_subset_neg_elbo"), metrics.get("iwae_nll")
    return None if neg_elbo is None or nll is None else float(neg_elbo) - float(nll)
