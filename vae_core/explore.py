"""Latent-explorer helpers that :mod:`vae_core.inference` does not have (no UI, no streamlit).

- slider ranges and the default choice of slider dims from :class:`~vae_core.inference.PosteriorStats`;
- a 2-D manifold *slice*: the Kingma & Welling grid for any two dims of any model, centred
  and scaled by the aggregate posterior (an AE's codes have no N(0, I) prior to place it by);
- where a latent point falls on such a grid, and a marker drawn onto the grid's mosaic;
- a traversal as one labelled picture (the page sends one image per slider move, not one per row), its
  labels in a CJK font when one is installed (:func:`can_draw` says what the font can draw);
- the explorer's latent point: clamped to the slider ranges, drawn at random, or sent by another page;
- the manifold page's grid (the prior's, or a slice placed by the codes) and its interpolation paths.

Latents are (z,) or (N, z) in latent units; images are flattened pixel means (N, D) in [0, 1].
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .inference import PosteriorStats, decode, images_to_grid, lerp, manifold_grid, slerp, upscale
from .models import AE, VAE

if TYPE_CHECKING:
    from PIL import ImageFont

__all__ = [
    "slider_ranges",
    "default_dims",
    "manifold_slice",
    "grid_position",
    "mark_grid",
    "traversal_sheet",
    "MARK_COLOR",
    "can_draw",
    "label_font",
    "cjk_font_available",
    "cjk_font_file",
    "SliderSpace",
    "slider_space",
    "traversal_order",
    "normal_cdf",
    "clamp_point",
    "random_point",
    "incoming_point",
    "hex_rgb",
    "manifold_view",
    "interpolation_paths",
]

MARK_COLOR = (228, 26, 28)  # RGB of the "you are here" marker on image grids


def slider_ranges(stats: PosteriorStats, k: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-dim range mean ± k·std of the aggregate posterior: (lo (z,), hi (z,)) float64, latent units.

    A dim whose std is 0 (a dead AE unit) still gets a usable range of ±k·1e-3.
    """
    mean = stats.mean.double().numpy()
    std = np.maximum(stats.std.double().numpy(), 1e-3)
    return mean - k * std, mean + k * std


@dataclass(frozen=True)
class SliderSpace:
    """Where the explorer's point may go for one model: all (z,) float64, latent units."""

    lo: np.ndarray  # slider minimum per dim: mean − 3·std
    hi: np.ndarray  # slider maximum per dim: mean + 3·std
    mean: np.ndarray  # the aggregate posterior's (for an AE: the codes') mean
    std: np.ndarray  # ... and its standard deviation: the Gaussian fitted to the codes
    home: np.ndarray  # where a reset goes: the prior mean 0 for a VAE, the centre of the codes for an AE


def slider_space(stats: PosteriorStats, is_vae: bool, k: float = 3.0) -> SliderSpace:
    """The :class:`SliderSpace` of a model from the stats of its test-set codes (ranges: :func:`slider_ranges`)."""
    lo, hi = slider_ranges(stats, k)
    mean, std = stats.mean.double().numpy(), stats.std.double().numpy()
    return SliderSpace(lo, hi, mean, std, np.zeros_like(mean) if is_vae else mean)


def traversal_order(stats: PosteriorStats, dims: list[int], by_use: bool) -> list[int]:
    """``dims`` as given, or (``by_use``) most used first: highest average KL (VAE) or Var_x[mu] (AE)."""
    score = stats.avg_kl_per_dim if stats.avg_kl_per_dim is not None else stats.cov_mu_diag
    return sorted(dims, key=lambda j: -float(score[j])) if by_use else list(dims)


def default_dims(stats: PosteriorStats, max_dims: int = 16) -> list[int]:
    """The ``max_dims`` most used dims, in index order: highest average KL (nats) for a VAE,
    highest Var_x[mu] for an AE (which has no KL)."""
    score = stats.avg_kl_per_dim if stats.avg_kl_per_dim is not None else stats.cov_mu_diag
    order = torch.argsort(score.double(), descending=True, stable=True)
    return sorted(int(d) for d in order[:max_dims])


@torch.no_grad()
def manifold_slice(
    model: AE | VAE,
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


def normal_cdf(z: float, center: float = 0.0, scale: float = 1.0) -> float:
    """Φ((z − center) / scale), the probability mass of N(center, scale²) below z (via erf)."""
    return 0.5 * (1.0 + math.erf((float(z) - center) / (max(float(scale), 1e-12) * math.sqrt(2.0))))


def grid_position(
    z_pair: tuple[float, float],
    n: int,
    lo: float = 0.05,
    hi: float = 0.95,
    center: tuple[float, float] = (0.0, 0.0),
    scale: tuple[float, float] = (1.0, 1.0),
) -> tuple[float, float, bool]:
    """Where the point ``z_pair`` (latent units) lies on an n×n inverse-CDF grid:
    (column, row, inside), fractional tile indices (0 = left / top), clamped to the grid;
    ``inside`` is False when the point lies beyond the centres of the outermost tiles."""
    u = [normal_cdf(v, c, s) for v, c, s in zip(z_pair, center, scale)]
    f = [(ui - lo) / (hi - lo) * (n - 1) for ui in u]  # fractional index with z growing
    inside = all(lo <= ui <= hi for ui in u)  # between the outermost tiles' centres
    col = min(max(f[0], 0.0), n - 1.0)
    row = min(max((n - 1) - f[1], 0.0), n - 1.0)  # rows count downwards, z_b grows upwards
    return col, row, inside


def mark_grid(
    mosaic: np.ndarray,
    col: float,
    row: float,
    tile_hw: tuple[int, int],
    pad: int = 1,
    scale: int = 1,
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
    for ys, xs in (
        (slice(y0, y0 + t), slice(x0, x1)),
        (slice(y1 - t, y1), slice(x0, x1)),
        (slice(y0, y1), slice(x0, x0 + t)),
        (slice(y0, y1), slice(x1 - t, x1)),
    ):
        rgb[ys, xs] = color
    cy, cx = (row * (h + pad) + h / 2) * scale, (col * (w + pad) + w / 2) * scale
    rad = max(2.0, 0.18 * min(h, w) * scale)
    yy, xx = np.ogrid[: rgb.shape[0], : rgb.shape[1]]
    rgb[(yy - cy) ** 2 + (xx - cx) ** 2 <= rad**2] = color
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
    ``labels[r]``: lines of (text, RGB colour), vertically centred on the row. The font is a CJK one when
    installed (:func:`cjk_font_file`); check text with :func:`can_draw` first, or it may draw as boxes.
    """
    a = rows.detach().cpu().numpy() if isinstance(rows, torch.Tensor) else np.asarray(rows)
    k, steps = a.shape[0], a.shape[1]
    if len(labels) != k:
        raise ValueError(f"need one label list per row: {k} rows, {len(labels)} labels")
    _, h, w = image_shape
    mosaic = images_to_grid(
        a.reshape(k * steps, -1), image_shape, ncols=steps, pad=pad
    )  # (H, W) or (H, W, C)
    if mosaic.ndim == 2:
        mosaic = mosaic[..., None]
    tiles = upscale(mosaic, scale)
    margin = _label_margin(
        tuple(tuple((t, tuple(c)) for t, c in lines) for lines in labels),
        tiles.shape[0],
        (h + pad) * scale,
        h * scale,
        label_width,
        font_px,
    )
    return np.concatenate([margin, np.broadcast_to(tiles, (*tiles.shape[:2], 3))], axis=1)


_MARGIN_LOCK = threading.Lock()  # one FreeType face serves every session's thread


@functools.lru_cache(maxsize=64)
def _label_margin(
    labels: tuple[tuple[tuple[str, tuple[int, ...]], ...], ...],
    height: int,
    row_pitch: int,
    row_h: int,
    label_width: int,
    font_px: int,
) -> np.ndarray:
    """The label column of :func:`traversal_sheet` (height, label_width, 3) uint8, read-only.

    Cached: the labels depend on the model and the rows shown, not on the point a slider moves, and
    drawing text was a seventh of the explorer's server time per slider release (docs/performance.md).
    """
    from PIL import Image, ImageDraw, ImageFont  # noqa: PLC0415 - only the explorer draws these

    img = Image.new("RGB", (label_width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    line_h = font_px + 3
    with _MARGIN_LOCK:
        font = _font(font_px)
        for r, lines in enumerate(labels):
            top = r * row_pitch + (row_h - line_h * len(lines)) // 2
            for i, (text, color) in enumerate(lines):
                if isinstance(font, ImageFont.FreeTypeFont):
                    # centred on its line's middle: a CJK font's tall ascender stays in
                    draw.text(
                        (6, top + i * line_h + line_h / 2), text, fill=tuple(color), font=font, anchor="lm"
                    )
                else:  # the old bitmap font takes no anchor
                    draw.text((6, top + i * line_h), text, fill=tuple(color), font=font)
    margin = np.asarray(img)
    margin.flags.writeable = False
    return margin


# Fonts that draw Chinese, in the order tried (Debian's fonts-noto-cjk first; .ci/run installs it), then
# whatever fontconfig lists for zh. fc-match alone is not enough: with a stale cache it answers DejaVu.
CJK_FONT_PATHS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian / Ubuntu: fonts-noto-cjk
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",  # Fedora
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # fonts-wqy-microhei
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",  # macOS
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",  # Windows
)
_PROBE = "中"  # a font that draws this draws the lab's Chinese
_MISSING = "\U0010ffff"  # never assigned: every font draws its "missing glyph" box for it


def _draws(font: ImageFont.BaseImageFont, char: str) -> bool:
    """True when ``font`` has a glyph for ``char`` (its mask is not the font's missing-glyph box)."""
    mask, box = font.getmask(char), font.getmask(_MISSING)
    return (mask.size, bytes(mask)) != (box.size, bytes(box))


def _fontconfig_zh() -> list[str]:
    """Font files fontconfig says cover Chinese (``fc-list :lang=zh file``), regular faces first; [] without fontconfig."""
    try:
        out = subprocess.run(
            ["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    files = {line.split(":")[0].strip() for line in out.splitlines() if line.strip()}
    return sorted(files, key=lambda f: ("Regular" not in f, f))


@functools.lru_cache(maxsize=1)
def cjk_font_file() -> tuple[str, int] | None:
    """(path, face index) of an installed font that draws Chinese (Simplified-Chinese face of a collection
    preferred), or None. Searched once per process."""
    from PIL import ImageFont  # noqa: PLC0415 - only the explorer draws text

    for path in (*CJK_FONT_PATHS, *_fontconfig_zh()):
        if not os.path.isfile(path):
            continue
        found = []
        for index in range(10):  # a .ttc holds several faces (Noto CJK: JP, KR, SC, TC, HK, ...)
            try:
                font = ImageFont.truetype(path, 14, index=index)
            except OSError:  # past the last face, or not a font Pillow reads
                break
            if _draws(font, _PROBE):
                family, style = font.getname()  # either may be None for a face without names
                found.append((" SC" not in f"{family or ''} {style or ''}", index))
        if found:
            return path, min(found)[1]
    return None


def cjk_font_available() -> bool:
    """True when labels drawn into images can be Chinese (:func:`cjk_font_file` found a font)."""
    return cjk_font_file() is not None


@functools.lru_cache(maxsize=4)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The font for labels at ``px`` pixels: a CJK font when one is installed, else Pillow's built-in one
    (its small bitmap font before Pillow 10.1)."""
    from PIL import ImageFont  # noqa: PLC0415

    cjk = cjk_font_file()
    if cjk is not None:
        return ImageFont.truetype(cjk[0], px, index=cjk[1])
    try:
        return ImageFont.load_default(size=px)
    except TypeError:
        return ImageFont.load_default()


def label_font(px: int = 14) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The font labels drawn into images use (:func:`traversal_sheet`'s; the exported GIFs' captions), at ``px``
    pixels: check text with :func:`can_draw` first."""
    return _font(px)


def can_draw(text: str, px: int = 14) -> bool:
    """True when every character of ``text`` has a glyph in the label font (:func:`traversal_sheet` would draw
    no empty boxes); a page passes language-neutral labels (z1, numbers) where this is False."""
    font = _font(px)
    if not hasattr(font, "getmask") or not hasattr(font, "getname"):  # the old bitmap font: ASCII only
        return text.isascii()
    return all(_label_glyph(font, c) for c in set(text) if not c.isspace())


@functools.lru_cache(maxsize=4096)
def _label_glyph(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, char: str) -> bool:
    """Whether the label font ``font`` (one of :func:`_font`'s) draws ``char``, asked once per font: the explorer labels every
    traversal row on every slider move, and rendering two glyph masks per character took ~9 % of a busy
    room server's CPU (py-spy, bench.room (b))."""
    return _draws(font, char)


# ---------------------------------------------------------------------- the explorer's latent point
def clamp_point(
    z: Sequence[float] | np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, list[int]]:
    """``z`` (z,) clipped to the slider ranges [lo, hi]: (clipped (z,) float64, indices of the dims it moved)."""
    z_in = np.asarray(z, dtype=float).reshape(-1)
    zc = np.clip(z_in, lo, hi)
    return zc, [int(j) for j in np.flatnonzero(zc != z_in)]


def random_point(draw: int, mean: np.ndarray, std: np.ndarray, is_vae: bool) -> np.ndarray:
    """Random draw number ``draw`` (its seed: reproducible) as (z,) float64, latent units.

    A VAE draws from its prior N(0, I); an AE has none, so it draws from a Gaussian fitted to
    its codes, mean + std·ε.
    """
    eps = torch.randn(len(mean), generator=torch.Generator().manual_seed(int(draw))).double().numpy()  # (z,)
    return eps if is_vae else np.asarray(mean, dtype=float) + np.asarray(std, dtype=float) * eps


def incoming_point(
    sent_z: Any, sent_key: str | None, last: tuple[str, tuple[float, ...]] | None, key: str, latent_dim: int
) -> tuple[str, tuple[float, ...] | None]:
    """What to do with the latent point in session state when the explorer runs for model ``key``.

    ``sent_z``/``sent_key`` are the stored point and its model's key (another page, the latent
    map, may have written them); ``last`` is (key, z) as the explorer last stored them. Returns
    ("sent", z) for a usable point written by another page, ("foreign", None) for one that is
    for another model or not a finite point of ``latent_dim`` dims, ("fresh", None) when this
    model has no point yet (start at home), else ("keep", None).
    """
    try:
        sent = (sent_key, tuple(float(v) for v in sent_z)) if sent_z is not None else None
    except (TypeError, ValueError):
        sent = ("invalid", ())
    if sent is not None and sent != last:  # written by another page
        ok = sent_key == key and len(sent[1]) == latent_dim and bool(np.isfinite(sent[1]).all())
        return ("sent", sent[1]) if ok else ("foreign", None)
    return ("fresh", None) if last is None or last[0] != key else ("keep", None)


def hex_rgb(color: str) -> tuple[int, int, int]:
    """ "#rrggbb" as an (r, g, b) tuple of 0..255 ints (for text drawn into pictures)."""
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


# ---------------------------------------------------------------------- the manifold page
def manifold_view(
    model: AE | VAE,
    z: np.ndarray,
    dims: tuple[int, int],
    is_vae: bool,
    mean: np.ndarray,
    std: np.ndarray,
    n: int = 15,
) -> tuple[torch.Tensor, tuple[float, float], tuple[float, float]]:
    """The 2-D manifold shown around the point ``z`` (z,): (images (n, n, D), centre, scale) of its grid.

    A VAE with a 2-D latent gets the prior's grid (:func:`vae_core.inference.manifold_grid`,
    centre 0, scale 1); anything else (an AE, which has no prior, or more dims) a
    :func:`manifold_slice` over ``dims`` placed by the Gaussian fitted to the codes (``mean``,
    ``std`` (z,)), the other dims held at ``z``.
    """
    if is_vae and len(z) == 2 and tuple(dims) == (0, 1):
        return manifold_grid(model, n)[0], (0.0, 0.0), (1.0, 1.0)
    c0, s0 = (float(mean[dims[0]]), float(mean[dims[1]])), (float(std[dims[0]]), float(std[dims[1]]))
    return manifold_slice(model, torch.as_tensor(z, dtype=torch.float32), dims, c0, s0, n)[0], c0, s0


@torch.no_grad()
def interpolation_paths(
    model: AE | VAE, mu_a: torch.Tensor, mu_b: torch.Tensor, steps: int, mode: str = "both"
) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Paths from ``mu_a`` to ``mu_b`` (z,): [(name, path (steps, z), decoded images (steps, D))].

    ``mode`` is "linear" (lerp), "spherical" (slerp) or "both" (linear first).
    """
    if mode not in ("linear", "spherical", "both"):
        raise ValueError(f"mode must be 'linear', 'spherical' or 'both', got {mode!r}")
    out = []
    for name, fn in (("linear", lerp), ("spherical", slerp)):
        if mode in (name, "both"):
            path = fn(mu_a, mu_b, steps)  # (steps, z)
            out.append((name, path, decode(model, path)))
    return out
