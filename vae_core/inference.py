"""Inference helpers for the app's pages: encode, decode, sample, interpolate, traverse.

Everything here runs under ``torch.no_grad`` and never changes the model (no ``.eval()``
toggling, no optimiser): a page may call it while the model is shown elsewhere. Images are
flattened pixel means (N, D) in [0, 1]; latents are (N, z). Inputs may be float in [0, 1] or
the datasets' uint8 pixels; they are moved to the model's device, and results stay there.

Latent coordinates are in units of the prior's standard deviation (p(z) = N(0, I)).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .data import to_float
from .elbo import kl_per_dim
from .evaluate import ACTIVE_THRESHOLD, latent_variance
from .models import AE, VAE

__all__ = [
    "encode",
    "decode",
    "sample_prior",
    "reconstruct",
    "lerp",
    "slerp",
    "interpolate",
    "interpolation_strip",
    "PosteriorStats",
    "aggregate_posterior_stats",
    "posterior_stats",
    "traverse",
    "manifold_grid",
    "images_to_grid",
    "upscale",
    "scale_for",
]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _as_input(x: torch.Tensor | np.ndarray, device: torch.device) -> torch.Tensor:
    """Pixels (N, D) as uint8 0..255 or float 0..1 -> float32 (N, D) in [0, 1] on ``device``."""
    t = torch.as_tensor(x)
    if t.dim() == 1:
        t = t.unsqueeze(0)  # one image (D,) -> (1, D)
    return to_float(t.to(device))


def _as_latent(z: torch.Tensor | np.ndarray | float, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(z, dtype=like.dtype).to(like.device)


@torch.no_grad()
def encode(
    model: AE | VAE, x: torch.Tensor | np.ndarray, batch_size: int = 1000
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Posterior parameters of images x (N, D) -> (mu (N, z), sigma (N, z) or None for an AE).

    ``sigma = exp(logvar / 2)`` is the posterior standard deviation in latent units. Runs in
    batches of ``batch_size`` so 60k images never need one huge activation tensor.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    dev = _device(model)
    xt = torch.as_tensor(x)
    if xt.dim() == 1:
        xt = xt.unsqueeze(0)
    mus: list[torch.Tensor] = []
    sigmas: list[torch.Tensor] = []
    for s in range(0, xt.shape[0], batch_size):
        mu, logvar = model.encode(_as_input(xt[s : s + batch_size], dev))  # (B, z), (B, z) | None
        mus.append(mu)
        if logvar is not None:
            sigmas.append(torch.exp(0.5 * logvar))
    if not mus:  # N = 0
        z = int(model.config.latent_dim)
        empty = torch.zeros((0, z), device=dev)
        return empty, (empty.clone() if model.is_vae else None)
    mu_all = torch.cat(mus)  # (N, z)
    return mu_all, (torch.cat(sigmas) if sigmas else None)


@torch.no_grad()
def decode(model: AE | VAE, z: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Latents z (N, z) (or one (z,)) -> pixel means (N, D) in [0, 1]."""
    zt = torch.as_tensor(z, dtype=torch.float32).to(_device(model))
    if zt.dim() == 1:
        zt = zt.unsqueeze(0)
    return model.mean_image(zt)  # (N, D)


@torch.no_grad()
def sample_prior(
    model: AE | VAE, n: int, generator: torch.Generator | None = None, seed: int | None = None
) -> torch.Tensor:
    """Decode ``n`` draws z ~ N(0, I): pixel means (n, D) in [0, 1].

    Pass a CPU ``generator`` or a ``seed`` for repeatable samples (the noise is drawn on the
    CPU so the same seed gives the same images on every device).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    z = torch.randn((n, int(model.config.latent_dim)), generator=generator)  # (n, z)
    return decode(model, z)


@torch.no_grad()
def reconstruct(model: AE | VAE, x: torch.Tensor | np.ndarray, batch_size: int = 1000) -> torch.Tensor:
    """Images x (N, D) -> reconstructions (N, D) in [0, 1], decoded from the posterior mean mu."""
    mu, _ = encode(model, x, batch_size)  # (N, z)
    parts = [decode(model, mu[s : s + batch_size]) for s in range(0, mu.shape[0], batch_size)]
    return torch.cat(parts) if parts else decode(model, mu)  # (N, D)


def _ts(steps: int, like: torch.Tensor) -> torch.Tensor:
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return torch.linspace(0.0, 1.0, steps, dtype=like.dtype, device=like.device).unsqueeze(1)  # (steps, 1)


def lerp(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """Straight line from z0 (z,) to z1 (z,): (steps, z), rows at t = 0, 1/(steps-1), ..., 1."""
    z0 = torch.as_tensor(z0, dtype=torch.float32).reshape(-1)
    z1 = _as_latent(z1, z0).reshape(-1)
    t = _ts(steps, z0)  # (steps, 1)
    return z0 + t * (z1 - z0)  # (steps, z)


def slerp(z0: torch.Tensor, z1: torch.Tensor, steps: int, eps: float = 1e-4) -> torch.Tensor:
    """Spherical path from z0 (z,) to z1 (z,): (steps, z).

    The direction turns along the great circle between z0/|z0| and z1/|z1| at constant
    angular speed, and the norm goes linearly from |z0| to |z1|, so every point's norm lies
    between the two end norms (a plain lerp cuts through the low-density centre of a
    high-dimensional Gaussian; White 2016, "Sampling generative networks").

    Degenerate cases: an end at the origin, or directions within ``eps`` of parallel, fall
    back to :func:`lerp` (which then also keeps the norm between the ends). Exactly opposite
    directions have no unique great circle; the path then turns through a fixed
    perpendicular direction (deterministic), still keeping the norm between the ends.
    """
    z0 = torch.as_tensor(z0, dtype=torch.float32).reshape(-1)
    z1 = _as_latent(z1, z0).reshape(-1)
    t = _ts(steps, z0)  # (steps, 1)
    n0, n1 = z0.norm(), z1.norm()
    if n0 < 1e-12 or n1 < 1e-12:
        return lerp(z0, z1, steps)
    u0, u1 = z0 / n0, z1 / n1  # unit vectors (z,)
    cos = torch.clamp(torch.dot(u0, u1), -1.0, 1.0)
    if cos > 1.0 - eps:  # near-parallel: the great circle is numerically ill-defined
        return lerp(z0, z1, steps)
    norms = (1.0 - t) * n0 + t * n1  # (steps, 1), between the end norms
    if cos < -1.0 + eps and z0.numel() > 1:
        # antiparallel: go through w, a unit vector perpendicular to u0 (Gram-Schmidt on the
        # basis vector where u0 is smallest), sweeping the half circle u0 -> w -> -u0 = u1
        e = torch.zeros_like(u0)
        e[torch.argmin(u0.abs())] = 1.0
        w = e - torch.dot(e, u0) * u0
        w = w / w.norm()
        ang = t * math.pi  # (steps, 1)
        dirs = torch.cos(ang) * u0 + torch.sin(ang) * w
        dirs[-1] = u1  # exact end point
        return norms * dirs
    omega = torch.arccos(cos)  # angle between the directions, radians
    so = torch.sin(omega)
    dirs = (torch.sin((1.0 - t) * omega) * u0 + torch.sin(t * omega) * u1) / so  # (steps, z), unit rows
    return norms * dirs  # (steps, z)


@torch.no_grad()
def interpolate(
    model: AE | VAE,
    x0: torch.Tensor | np.ndarray,
    x1: torch.Tensor | np.ndarray,
    steps: int = 10,
    mode: str = "lerp",
) -> torch.Tensor:
    """Decode a path between the encodings mu(x0) and mu(x1) of two images (D,): (steps, D) in [0, 1].

    ``mode`` is ``"lerp"`` or ``"slerp"``. The first and last rows are the decodings of the
    endpoints' posterior means (not the input images).
    """
    if mode not in ("lerp", "slerp"):
        raise ValueError(f"mode must be 'lerp' or 'slerp', got {mode!r}")
    dev = _device(model)
    pair = torch.cat([_as_input(torch.as_tensor(x).reshape(1, -1), dev) for x in (x0, x1)])  # (2, D)
    mu, _ = encode(model, pair)  # (2, z)
    path = (lerp if mode == "lerp" else slerp)(mu[0], mu[1], steps)  # (steps, z)
    return decode(model, path)  # (steps, D)


def interpolation_strip(
    model: AE | VAE, x0: torch.Tensor | np.ndarray, x1: torch.Tensor | np.ndarray, steps: int = 10
) -> torch.Tensor:
    """Image x0, the ``steps`` decodings of :func:`interpolate` from mu(x0) to mu(x1), image x1: (steps + 2, D) in [0, 1], on the CPU."""
    ends = [to_float(torch.as_tensor(x).reshape(1, -1)).cpu() for x in (x0, x1)]  # (1, D) each
    return torch.cat([ends[0], interpolate(model, x0, x1, steps).cpu(), ends[1]])


class PosteriorStats(NamedTuple):
    """Summary of the aggregate posterior q(z) = mean_x q(z|x) over a data set, per latent dim (z,)."""

    mean: torch.Tensor  # (z,) E_x[mu(x)], latent units
    std: torch.Tensor  # (z,) std of q(z): sqrt(Var_x[mu] + E_x[sigma^2]); for an AE sqrt(Var_x[mu])
    cov_mu_diag: torch.Tensor  # (z,) Var_x[mu_j(x)], the activity of dim j (Burda et al. 2016)
    active: torch.Tensor  # (z,) bool, cov_mu_diag > ACTIVE_THRESHOLD
    avg_kl_per_dim: torch.Tensor | None  # (z,) E_x[KL(q(z_j|x) || N(0,1))] in nats; None for an AE


@torch.no_grad()
def aggregate_posterior_stats(
    model: AE | VAE,
    x: torch.Tensor | np.ndarray,
    batch_size: int = 1000,
    threshold: float = ACTIVE_THRESHOLD,
) -> PosteriorStats:
    """Per-dim statistics of the encodings of x (N, D) (N >= 2), returned on the CPU.

    Use ``mean +- 3 * std`` as a traversal slider range and ``active`` / ``avg_kl_per_dim``
    (nats) as labels: an inactive dim's mu barely moves with x (posterior collapse).
    """
    return posterior_stats(*encode(model, x, batch_size), threshold=threshold)


def posterior_stats(
    mu: torch.Tensor, sigma: torch.Tensor | None, threshold: float = ACTIVE_THRESHOLD
) -> PosteriorStats:
    """:func:`aggregate_posterior_stats` from encodings already made: ``mu`` (N, z), ``sigma`` (N, z) or None (an AE)."""
    if mu.shape[0] < 2:
        raise ValueError(f"aggregate posterior stats need at least 2 images, got {mu.shape[0]}")
    mu = mu.double().cpu()  # float64: sums over 60k rows
    mean = mu.mean(0)  # (z,)
    var_mu = latent_variance(mu)  # (z,) Var_x[mu_j]: the activity statistic, as every active-unit count
    pop_var = mu.var(0, unbiased=False)  # the mixture's own spread of means (law of total variance)
    if sigma is None:
        total_var, kl = pop_var, None
    else:
        s = sigma.double().cpu()
        total_var = pop_var + s.pow(2).mean(0)  # law of total variance for the mixture q(z)
        kl = kl_per_dim(mu, 2.0 * torch.log(s)).mean(0).float()  # (z,) nats
    return PosteriorStats(
        mean=mean.float(),
        std=total_var.sqrt().float(),
        cov_mu_diag=var_mu.float(),
        active=var_mu > threshold,
        avg_kl_per_dim=kl,
    )


@torch.no_grad()
def traverse(
    model: AE | VAE,
    z_base: torch.Tensor,
    dims: list[int],
    lo: torch.Tensor | float,
    hi: torch.Tensor | float,
    steps: int = 9,
) -> torch.Tensor:
    """Latent traversal grid: (len(dims), steps, D) pixel means in [0, 1].

    Row r varies dim ``dims[r]`` of ``z_base`` (z,) linearly from ``lo[d]`` to ``hi[d]``
    (``lo``, ``hi``: (z,) tensors or scalars) and holds every other dim at ``z_base``.
    All rows go through the decoder in one batched call.
    """
    dev = _device(model)
    zb = torch.as_tensor(z_base, dtype=torch.float32).to(dev).reshape(-1)  # (z,)
    n_z = zb.numel()
    if any(not 0 <= d < n_z for d in dims):
        raise ValueError(f"dims {list(dims)} out of range for latent_dim {n_z}")
    lo_t = torch.broadcast_to(_as_latent(lo, zb), (n_z,))
    hi_t = torch.broadcast_to(_as_latent(hi, zb), (n_z,))
    k = len(dims)
    if k == 0:
        return torch.zeros((0, steps, int(model.config.input_dim)), device=dev)
    t = torch.linspace(0.0, 1.0, steps, device=dev)  # (steps,)
    z = zb.repeat(k, steps, 1)  # (k, steps, z)
    d_idx = torch.as_tensor(list(dims), device=dev)  # (k,)
    vals = lo_t[d_idx, None] + t[None, :] * (hi_t[d_idx] - lo_t[d_idx])[:, None]  # (k, steps)
    z[torch.arange(k, device=dev), :, d_idx] = vals
    imgs = model.mean_image(z.reshape(k * steps, n_z))  # (k*steps, D): one decoder call
    return imgs.reshape(k, steps, -1)


@torch.no_grad()
def manifold_grid(
    model: AE | VAE, n: int = 15, lo: float = 0.05, hi: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Learned 2-D manifold (Kingma & Welling 2014, fig. 4): (images (n, n, D), z grid (n, n, 2)).

    A uniform grid of probabilities in [lo, hi]^2 goes through the inverse normal CDF, so the
    tiles are equally spaced in prior probability mass. Layout: ``z[i, j] = (g[j], g[n-1-i])``
    with g increasing, i.e. z1 grows to the right and z2 grows upwards, as in a plot.
    """
    latent_dim = int(model.config.latent_dim)
    if latent_dim != 2:
        raise ValueError(
            f"the manifold grid needs a model with a 2-D latent space; this model has latent_dim={latent_dim}. "
            "Use a latent traversal instead."
        )
    if not 0.0 < lo < hi < 1.0:
        raise ValueError(f"need 0 < lo < hi < 1 (probabilities), got lo={lo}, hi={hi}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    dev = _device(model)
    g = torch.special.ndtri(torch.linspace(lo, hi, n, dtype=torch.float64)).float()  # (n,) increasing
    z1 = g.unsqueeze(0).expand(n, n)  # (n, n): varies along columns
    z2 = g.flip(0).unsqueeze(1).expand(n, n)  # (n, n): largest at the top row
    grid = torch.stack([z1, z2], dim=-1).to(dev)  # (n, n, 2)
    imgs = model.mean_image(grid.reshape(n * n, 2))  # (n*n, D)
    return imgs.reshape(n, n, -1), grid


def images_to_grid(
    images: torch.Tensor | np.ndarray,
    image_shape: tuple[int, int, int],
    ncols: int | None = None,
    pad: int = 1,
    pad_value: int = 255,
) -> np.ndarray:
    """Tile images (..., D) with pixel values in [0, 1] (or uint8) into one mosaic for ``st.image``.

    Leading dims are flattened row-major, so a traversal (k, steps, D) with ``ncols=steps``
    keeps one dim per row. Returns uint8 (H', W') for one channel, (H', W', C) otherwise, with
    ``pad`` pixels of ``pad_value`` between tiles (none around the edge); empty cells of the
    last row are filled with ``pad_value``. ``ncols`` defaults to ceil(sqrt(N)).
    """
    c, h, w = (int(v) for v in image_shape)
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    arr = arr.reshape(-1, c * h * w)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    n = arr.shape[0]
    if ncols is None:
        ncols = max(1, math.ceil(math.sqrt(n)))
    if ncols < 1 or pad < 0:
        raise ValueError(f"need ncols >= 1 and pad >= 0, got ncols={ncols}, pad={pad}")
    nrows = max(1, math.ceil(n / ncols))
    tiles = arr.reshape(n, c, h, w).transpose(0, 2, 3, 1)  # (N, H, W, C)
    out = np.full(
        (nrows * h + (nrows - 1) * pad, ncols * w + (ncols - 1) * pad, c), pad_value, dtype=np.uint8
    )
    for k in range(n):
        r, q = divmod(k, ncols)
        y, x = r * (h + pad), q * (w + pad)
        out[y : y + h, x : x + w] = tiles[k]
    return out[:, :, 0] if c == 1 else out


def scale_for(tile_h: int, px: int) -> int:
    """The whole-pixel factor that draws a tile ``tile_h`` pixels high at about ``px`` pixels (>= 1)."""
    return max(1, int(round(px / max(1, int(tile_h)))))


def upscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of a uint8 image (H, W) or (H, W, C) by a whole ``factor``: (H*f, W*f[, C]).

    Each pixel becomes an f x f block, so small (8x8) digits stay crisp instead of blurring.
    """
    if factor < 1:
        raise ValueError(f"the upscale factor must be a whole number >= 1, got {factor}")
    a = np.asarray(img)
    return a if factor == 1 else a.repeat(factor, axis=0).repeat(factor, axis=1)
