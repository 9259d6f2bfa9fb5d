"""Latent-explorer helpers that :mod:`vae_core.inference` does not have (no UI, no streamlit).

- slider ranges and the default choice of slider dims from :class:`~vae_core.inference.PosteriorStats`;
- a 2-D manifold *slice*: the Kingma & Welling grid for any two dims of any model, centred
  and scaled by the aggregate posterior (an AE's codes have no N(0, I) prior to place it by);
- where a latent point falls on such a grid, and a marker drawn onto the grid's mosaic;
- a traversal as one labelled picture (the page sends one image per slider move, not one per row).

Latents are (z,) or (N, z) in latent units; images are flattened pixel means (N, D) in [0, 1].
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import nn

from .inference import PosteriorStats, decode, images_to_grid, upscale

__all__ = ["slider_ranges", "default_dims", "manifold_slice", "grid_position", "mark_grid", "traversal_sheet", "MARK_COLOR"]

MARK_COLOR = (228, 26, 28)  # RGB of the "you are here" marker on image grids


def slider_ranges(stats: PosteriorStats, k: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-dim range mean ± k·std of the aggregate posterior: (lo (z,), hi (z,)) float64, latent units.

    A dim whose std is 0 (a dead AE unit) still gets a usable range of ±k·1e-3.
    """
    mean = stats.mean.double().numpy()
    std = np.maximum(stats.std.double().numpy(), 1e-3)
    return mean - k * std, mean + k * std


def default_dims(stats: PosteriorStats, max_dims: int = 16) -> list[int]:
    """The ``max_dims`` most used dims, in index order: highest average KL (nats) for a VAE,
    highest Var_x[mu] for an AE (which has no KL)."""
    score = stats.avg_kl_per_dim if stats.avg_kl_per_dim is not None else stats.cov_mu_diag
    order = torch.argsort(score.double(), descending=True, stable=True)
    return sorted(int(d) for d in order[:max_dims])


@torch.no_grad()
def manifold_slice(
    model: nn.Module,
    z_base: torch.Tensor | np.ndarray,
    dims: tuple[int, int],
    center: tuple[float, float],
    scale: tuple[float, float],
    n: int = 15,
    lo: float = 0.05,
    hi: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decodes over a 2-D grid in dims ``(a, b)`` of ``z_base`` (z,): (images (n, n, D), z grid (n, n, 2)).

    The grid is :func:`vae_core.inference.manifold_grid`'s (uniform probabilities in
    [lo, hi] through the inverse normal CDF) mapped to ``center[i] + scale[i] * g`` for dims
    a (i = 0) and b (i = 1), i.e. placed by a Gaussian fitted to the codes (latent units);
    every other dim stays at ``z_base``.
    Layout as there: dim a grows to the right, dim b grows upwards.
    """
    a, b = (int(d) for d in dims)
    zb = torch.as_tensor(z_base, dtype=torch.float32).reshape(-1)
    if a == b or not (0 <= a < zb.numel() and 0 <= b < zb.numel()):
        raise ValueError(f"need two different dims in 0..{zb.numel() - 1}, got {dims}")
    if not 0.0 < lo < hi < 1.0 or n < 1:
        raise ValueError(f"need 0 < lo < hi < 1 and n >= 1, got lo={lo}, hi={hi}, n={n}")
    (ca, cb), (sa, sb) = (float(v) for v in center), (float(v) for v in scale)
    g = torch.special.ndtri(torch.linspace(lo, hi, n, dtype=torch.float64)).float()  # (n,) increasing
    ga, gb = ca + sa * g, cb + sb * g.flip(0)  # (n,), (n,): b largest in the top row
    grid = torch.stack([ga.unsqueeze(0).expand(n, n), gb.unsqueeze(1).expand(n, n)], dim=-1)  # (n, n, 2)
    z = zb.repeat(n * n, 1)  # (n*n, z)
    z[:, a], z[:, b] = grid[..., 0].reshape(-1), grid[..., 1].reshape(-1)
    return decode(model, z).reshape(n, n, -1), grid


def grid_position(
    z_pair: tuple[float, float], n: int, lo: float = 0.05, hi: float = 0.95,
    center: tuple[float, float] = (0.0, 0.0), scale: tuple[float, float] = (1.0, 1.0),
) -> tuple[float, float, bool]:
    """Where the point ``z_pair`` (latent units) lies on an n×n inverse-CDF grid:
    (column, row, inside), fractional tile indices (0 = left / top), clamped to the grid;
    ``inside`` is False when the point lies beyond the centres of the outermost tiles."""
    u = [0.5 * (1.0 + math.erf((float(v) - c) / (max(s, 1e-12) * math.sqrt(2.0)))) for v, c, s in zip(z_pair, center, scale)]
    f = [(ui - lo) / (hi - lo) * (n - 1) for ui in u]  # fractional index with z growing
    inside = all(lo <= ui <= hi for ui in u)  # between the outermost tiles' centres
    col = min(max(f[0], 0.0), n - 1.0)
    row = min(max((n - 1) - f[1], 0.0), n - 1.0)  # rows count downwards, z_b grows upwards
    return col, row, inside


def mark_grid(
    mosaic: np.ndarray, col: float, row: float, tile_hw: tuple[int, int], pad: int = 1, scale: int = 1,
    color: tuple[int, int, int] = MARK_COLOR,
) -> np.ndarray:
    """A copy of a grey (H', W') uint8 mosaic (tiles ``tile_hw`` with ``pad`` gutters, no outer
    edge, as :func:`vae_core.inference.images_to_grid` lays them out) upscaled ``scale`` times,
    as RGB (H'·s, W'·s, 3), with a frame around the nearest tile and a dot at the exact
    fractional position (col, row)."""
    h, w = tile_hw
    rgb = np.repeat(upscale(mosaic, scale)[..., None], 3, axis=2)
    r, c = int(round(row)), int(round(col))
    y0, x0 = r * (h + pad) * scale, c * (w + pad) * scale
    y1, x1 = y0 + h * scale, x0 + w * scale
    t = max(2, scale // 2)  # frame thickness, screen pixels
    for ys, xs in ((slice(y0, y0 + t), slice(x0, x1)), (slice(y1 - t, y1), slice(x0, x1)),
                   (slice(y0, y1), slice(x0, x0 + t)), (slice(y0, y1), slice(x1 - t, x1))):
        rgb[ys, xs] = color
    cy, cx = (row * (h + pad) + h / 2) * scale, (col * (w + pad) + w / 2) * scale
    rad = max(2.0, 0.18 * min(h, w) * scale)
    yy, xx = np.ogrid[: rgb.shape[0], : rgb.shape[1]]
    rgb[(yy - cy) ** 2 + (xx - cx) ** 2 <= rad ** 2] = color
    return rgb


def traversal_sheet(
    rows: torch.Tensor | np.ndarray,
    image_shape: tuple[int, int, int],
    labels: list[list[tuple[str, tuple[int, int, int]]]],
    scale: int = 2,
    label_width: int = 130,
    pad: int = 1,
    font_px: int = 14,
) -> np.ndarray:
    """A traversal (k, steps, D) in [0, 1] as one RGB picture (H', W', 3) uint8.

    Row r shows its ``steps`` tiles upscaled ``scale`` times (whole pixels, no blur), white
    gutters of ``pad`` image pixels, and at its left, in a ``label_width``-pixel margin,
    ``labels[r]``: lines of (text, RGB colour), vertically centred on the row.
    """
    from PIL import Image, ImageDraw  # noqa: PLC0415 - only the explorer draws these

    a = rows.detach().cpu().numpy() if isinstance(rows, torch.Tensor) else np.asarray(rows)
    k, steps = a.shape[0], a.shape[1]
    if len(labels) != k:
        raise ValueError(f"need one label list per row: {k} rows, {len(labels)} labels")
    _, h, w = image_shape
    mosaic = images_to_grid(a.reshape(k * steps, -1), image_shape, ncols=steps, pad=pad)  # (H, W) or (H, W, C)
    if mosaic.ndim == 2:
        mosaic = mosaic[..., None]
    tiles = upscale(mosaic, scale)
    sheet = np.full((tiles.shape[0], label_width + tiles.shape[1], 3), 255, dtype=np.uint8)
    sheet[:, label_width:] = tiles  # grey (C = 1) broadcasts to RGB
    img = Image.fromarray(sheet)
    draw = ImageDraw.Draw(img)
    font = _font(font_px)
    line_h = font_px + 3
    for r, lines in enumerate(labels):
        top = r * (h + pad) * scale + (h * scale - line_h * len(lines)) // 2
        for i, (text, color) in enumerate(lines):
            draw.text((6, top + i * line_h), text, fill=tuple(color), font=font)
    return np.asarray(img)


@functools.lru_cache(maxsize=4)
def _font(px: int):
    """Pillow's built-in font at ``px`` pixels (its small bitmap font before Pillow 10.1)."""
    from PIL import ImageFont  # noqa: PLC0415

    try:
        return ImageFont.load_default(size=px)
    except TypeError:
        return ImageFont.load_default()
