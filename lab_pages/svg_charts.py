"""The Train page's two live charts again, as small standalone SVG documents: :func:`loss_stack_svg` and
:func:`kl_heatmap_svg` draw what lab_pages.charts' ``loss_stack`` and ``kl_heatmap`` draw, as a str.

While a model trains, the Train page redraws its charts every second. A Plotly figure costs the browser ~0.45 of a
core per redraw (docs/performance.md); an SVG ``<img>`` is drawn in milliseconds. Same pictures, same colours
(lab_pages.style); no interaction. Coordinates are pixels to 0.1. Like lab_pages.charts: no Streamlit, no torch,
every string a user sees is an argument. :func:`png_data_uri` is also the lab's one PNG encoder for inline images.
"""

from __future__ import annotations

import base64
import io
import math
import re
import unicodedata
from collections.abc import Sequence
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

from lab_pages.style import ELBO_COLOR, GUIDE_COLOR, KL_COLOR, RECON_COLOR

_FONT = (
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', 'Noto Sans CJK SC', 'PingFang SC', "
    "'Microsoft YaHei', sans-serif"
)  # ends in a generic family: every browser finds CJK glyphs
_TEXT, _AXIS, _GRID = "#444444", "#9a9a9a", "#e8e8e8"
_FS, _TS = 12, 11  # font size of titles and legend, of tick labels
_MAX_COLUMNS = 300  # the heatmap's PNG: at most this many columns (steps averaged in bins beyond)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class _Lin:
    """Data -> pixels along one axis: ``lo`` maps to ``p0``, ``hi`` (> lo) to ``p1``."""

    __slots__ = ("hi", "lo", "p0", "p1")

    def __init__(self, lo: float, hi: float, p0: float, p1: float) -> None:
        self.lo, self.hi, self.p0, self.p1 = lo, hi, p0, p1

    def __call__(self, v):
        return self.p0 + (v - self.lo) * ((self.p1 - self.p0) / (self.hi - self.lo))


def _esc(text) -> str:
    """Text for XML content or a double-quoted attribute (characters XML forbids dropped)."""
    return escape(_NOT_XML.sub("", str(text)), {'"': "&quot;"})


def _n(v: float) -> str:
    """A coordinate to 0.1 without a trailing ".0"."""
    s = f"{v:.1f}"
    s = s.removesuffix(".0")
    return "0" if s == "-0" else s


def _floats(v) -> np.ndarray:
    """A flat float array (None and missing values become NaN); nothing for None."""
    return np.zeros(0) if v is None else np.asarray(v, dtype=float).ravel()


def _text_w(text: str, size: float) -> float:
    """A generous estimate of the width of ``text`` in pixels (wide CJK characters count one em)."""
    return size * sum(1.0 if unicodedata.east_asian_width(c) in "WF" else 0.6 for c in str(text))


def _fit(text: str, size: float, room: float) -> str:
    """``text``, cut with an ellipsis where it would be wider than ``room`` pixels."""
    text = str(text)
    if _text_w(text, size) <= room:
        return text
    while text and _text_w(text + "…", size) > room:
        text = text[:-1]
    return text + "…"


def _ticks(lo: float, hi: float, *, extend: bool) -> tuple[float, float, list[float], float]:
    """Nice ticks for the range lo..hi: 1, 2, 2.5 or 5 × 10^k apart, 4 to 6 of them.

    ``extend``: a value axis, whose range grows out to the outer ticks (they bracket the data); otherwise
    (training steps, the colour bar) the range stays and the ticks lie inside it, 4 to 6 where a nice step
    allows, else 7. Returns (lo, hi, ticks, step).
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi - lo <= 1e-9 * max(1.0, abs(lo), abs(hi)):  # one value: a range around it
        pad = max(abs(lo) * 0.05, 1.0)
        lo, hi = lo - pad, hi + pad
    k0 = math.floor(math.log10(hi - lo)) - 2
    best = None
    for k in range(k0, k0 + 4):
        for m in (1.0, 2.0, 2.5, 5.0):
            s = m * 10.0**k
            if extend:
                a, b = math.floor(lo / s + 1e-9), math.ceil(hi / s - 1e-9)
            else:
                a, b = math.ceil(lo / s - 1e-9), math.floor(hi / s + 1e-9)
            count = b - a + 1
            score = (0 if 4 <= count <= 6 else min(abs(count - 4), abs(count - 6)), s)
            if best is None or score < best[0]:
                best = (score, s, a, b)
    _, s, a, b = best
    ticks = [round(i * s, 12) for i in range(a, b + 1)]
    return (a * s, b * s, ticks, s) if extend else (lo, hi, ticks, s)


def _tick_labels(ticks: Sequence[float], step: float) -> list[str]:
    """Compact labels: as many decimals as ``step`` needs, k or M beyond 10 000, a true minus sign."""
    big = max((abs(t) for t in ticks), default=0.0)
    div, suffix = (1e6, "M") if big >= 1e7 else (1e3, "k") if big >= 1e4 else (1.0, "")
    s = step / div
    d = next((d for d in range(10) if abs(round(s, d) - s) <= 1e-9 * s), 10)
    out = []
    for t in ticks:
        txt = f"{t / div:.{d}f}"
        out.append("0" if float(txt) == 0 else txt.replace("-", "−") + suffix)
    return out


def _path_d(runs: Sequence[tuple[np.ndarray, np.ndarray]], close: bool = False) -> str:
    """Path data for runs of pixel points (xs, ys): one subpath each, in relative steps of 0.1 px
    (rounded once, so no error adds up); a lone point is a small circle (r 2 px)."""
    out = []
    for xs, ys in runs:
        tx, ty = np.rint(np.asarray(xs) * 10).astype(np.int64), np.rint(np.asarray(ys) * 10).astype(np.int64)
        head = f"M{_n(tx[0] / 10)} {_n(ty[0] / 10)}"
        if len(tx) == 1:
            out.append(head + "m-2 0a2 2 0 1 0 4 0a2 2 0 1 0-4 0")
            continue
        body = " ".join(
            f"{_n(a / 10)} {_n(b / 10)}" for a, b in zip(np.diff(tx).tolist(), np.diff(ty).tolist())
        )
        out.append((head + "l" + body + ("z" if close else "")).replace(" -", "-"))
    return "".join(out)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in ``mask``: the stretches of finite values."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _svg(width: int, height: int, body: Sequence[str]) -> str:
    """A standalone SVG document ``width`` × ``height`` px on white, text in the lab's font."""
    w, h = int(width), int(height)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'font-family="{_FONT}" font-size="{_FS}" fill="{_TEXT}">'
        f'<rect width="{w}" height="{h}" fill="#ffffff"/>' + "".join(body) + "</svg>"
    )


def _x_axis(
    sx: _Lin, ticks: Sequence[float], labels: Sequence[str], y: float, grid_top: float | None
) -> list[str]:
    """Tick marks and labels under the plot's bottom edge ``y``; grid lines up to ``grid_top`` (None: none)."""
    out = [f'<g class="x-ticks" text-anchor="middle" font-size="{_TS}">']
    for t, lab in zip(ticks, labels):
        x = _n(sx(t))
        if grid_top is not None:
            out.append(f'<path d="M{x} {_n(grid_top)}V{_n(y)}" stroke="{_GRID}"/>')
        out.append(
            f'<path d="M{x} {_n(y)}v4" stroke="{_AXIS}"/><text x="{x}" y="{_n(y + 5 + _TS)}">{_esc(lab)}</text>'
        )
    return out + ["</g>"]


def _y_axis(
    ys: Sequence[float], labels: Sequence[str], x: float, grid_right: float | None, cls: str = "y-ticks"
) -> list[str]:
    """Tick marks and labels left of the plot's left edge ``x`` at pixel heights ``ys``; grid lines to ``grid_right``."""
    out = [f'<g class="{cls}" text-anchor="end" font-size="{_TS}">']
    for y, lab in zip(ys, labels):
        py = _n(y)
        if grid_right is not None:
            out.append(f'<path d="M{_n(x)} {py}H{_n(grid_right)}" stroke="{_GRID}"/>')
        out.append(
            f'<path d="M{_n(x)} {py}h-4" stroke="{_AXIS}"/>'
            f'<text x="{_n(x - 6)}" y="{_n(y + _TS * 0.35)}">{_esc(lab)}</text>'
        )
    return out + ["</g>"]


def _axis_titles(
    box: tuple[float, float, float, float], x_title: str, y_title: str, x_base: float, y_left: float
) -> list[str]:
    """The x title centred under the plot ``box`` (x0, y0, x1, y1) at baseline ``x_base``, the y title rotated,
    centred beside it, its baseline at ``y_left``; each shrunk or cut to fit."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    size = max(9.0, min(_FS, (y1 - y0) / max(1e-9, _text_w(y_title, 1.0))))
    return [
        f'<text class="x-title" x="{_n(cx)}" y="{_n(x_base)}" text-anchor="middle">{_esc(_fit(x_title, _FS, x1 - x0))}</text>',
        (
            f'<text class="y-title" x="{_n(y_left)}" y="{_n(cy)}" text-anchor="middle" font-size="{_n(size)}" '
            f'transform="rotate(-90 {_n(y_left)} {_n(cy)})">{_esc(_fit(y_title, size, y1 - y0))}</text>'
        ),
    ]


def _swatch(kind: str, color: str, x: float, y: float) -> str:
    """A legend swatch 18 px wide, centred on height ``y``: a filled area, a line, a dotted line or a diamond."""
    if kind == "area":
        return (
            f'<rect x="{_n(x)}" y="{_n(y - 5)}" width="18" height="10" fill="{color}" fill-opacity="0.5" '
            f'stroke="{color}"/>'
        )
    if kind == "diamond":
        return f'<path d="M{_n(x + 9)} {_n(y - 5)}l5 5-5 5-5-5z" fill="{color}"/>'
    dash = ' stroke-dasharray="2 3"' if kind == "dotted" else ""
    return f'<path d="M{_n(x)} {_n(y)}h18" stroke="{color}" stroke-width="2"{dash}/>'


def _legend_rows(
    entries: Sequence[tuple[str, str, str]], room: float
) -> list[list[tuple[str, str, str, float]]]:
    """Legend entries (kind, colour, name) wrapped into rows of at most ``room`` px: (kind, colour, name, width)."""
    rows: list[list[tuple[str, str, str, float]]] = [[]]
    used = 0.0
    for kind, color, name in entries:
        name = _fit(name, _FS, room - 24)
        w = 24 + _text_w(name, _FS) + 14
        if rows[-1] and used + w > room:
            rows.append([])
            used = 0.0
        rows[-1].append((kind, color, name, w))
        used += w
    return rows if rows[0] else []


def _legend(rows: Sequence[Sequence[tuple[str, str, str, float]]], x0: float, y0: float) -> list[str]:
    """The legend's rows from (``x0``, ``y0``), 18 px apart: one group per entry, its swatch then its name."""
    out = ['<g class="legend">']
    for i, row in enumerate(rows):
        x, y = x0, y0 + 9 + 18 * i
        for kind, color, name, w in row:
            out.append(
                f'<g>{_swatch(kind, color, x, y)}<text x="{_n(x + 24)}" y="{_n(y + _FS * 0.35)}">{_esc(name)}</text></g>'
            )
            x += w
    return out + ["</g>"]


def loss_stack_svg(
    step,
    recon_cost,
    kl=None,
    objective=None,
    eval_step=(),
    eval_value=(),
    *,
    recon_name: str,
    kl_name: str = "",
    objective_name: str = "",
    eval_name: str = "",
    x_title: str,
    y_title: str,
    width: int = 720,
    height: int = 380,
) -> str:
    """:func:`loss_stack` as a standalone SVG document (a str), for the Train page while it trains.

    Values are nats per image, one per entry of ``step``. With ``kl`` (a VAE) reconstruction and KL are two
    stacked filled areas, so the top edge is −ELBO; without it (an AE) the reconstruction cost is one line.
    ``objective`` (a VAE only, as in loss_stack) is a dotted line, not stacked; the test evaluations
    (``eval_step``, ``eval_value``) are diamonds. Non-finite values are left out (a gap in a line).
    """
    vae = kl is not None
    x, r = _floats(step), _floats(recon_cost)
    k = _floats(kl) if vae else None
    o = _floats(objective) if vae and objective is not None else None
    n = min(len(x), len(r), *(len(a) for a in (k, o) if a is not None))
    x, r = x[:n], r[:n]
    k, o = (None if a is None else a[:n] for a in (k, o))
    top = r + k if vae else r
    ex, ev = _floats(eval_step), _floats(eval_value)
    m = min(len(ex), len(ev))
    keep = np.isfinite(ex[:m]) & np.isfinite(ev[:m])
    ex, ev = ex[:m][keep], ev[:m][keep]
    ok_r = np.isfinite(x) & np.isfinite(r)
    ok_top = ok_r & np.isfinite(top)

    # ranges: y from min(0, data) over everything drawn (to 0 at least where areas fill to 0), a little
    # headroom; x over the steps
    drawn = np.concatenate(
        [r[ok_r], top[ok_top], ev] + ([o[np.isfinite(x) & np.isfinite(o)]] if o is not None else [])
    )
    lo = min(0.0, float(drawn.min())) if drawn.size else 0.0
    hi = float(drawn.max()) if drawn.size else 1.0
    hi = max(hi, 0.0) if vae else hi
    hi = max(hi, lo + 1e-9) if hi > lo else lo + 1.0
    pad = 0.02 * (hi - lo)
    y0, y1, yt, ystep = _ticks(lo - (pad if lo < 0 else 0.0), hi + pad, extend=True)
    xs_all = np.concatenate([x[np.isfinite(x)], ex])
    x0, x1, xt, xstep = _ticks(
        float(xs_all.min()) if xs_all.size else 0.0, float(xs_all.max()) if xs_all.size else 1.0, extend=False
    )
    ylab, xlab = _tick_labels(yt, ystep), _tick_labels(xt, xstep)

    # legend: one entry per drawn series
    entries = [("area" if vae else "line", RECON_COLOR, recon_name)]
    if vae:
        entries.append(("area", KL_COLOR, kl_name))
    if o is not None:
        entries.append(("dotted", GUIDE_COLOR, objective_name))
    if ex.size:
        entries.append(("diamond", ELBO_COLOR if vae else RECON_COLOR, eval_name))
    rows = _legend_rows(entries, width - 16)

    # layout
    left = 8 + _FS + 8 + max((_text_w(t, _TS) for t in ylab), default=0) + 8
    right = max(14.0, _text_w(xlab[-1], _TS) / 2 + 4) if xlab else 14.0
    bottom = 4 + _TS + 8 + _FS + 8 + 18 * len(rows) + 4
    px0, px1 = left, max(left + 20, width - right)
    py0, py1 = 10.0, max(30.0, height - bottom)
    sx, sy = _Lin(x0, x1, px0, px1), _Lin(y0, y1, py1, py0)

    body = [
        f'<rect class="plot" x="{_n(px0)}" y="{_n(py0)}" width="{_n(px1 - px0)}" height="{_n(py1 - py0)}" fill="#ffffff"/>'
    ]
    body += _y_axis([sy(t) for t in yt], ylab, px0, px1)
    body += _x_axis(sx, xt, xlab, py1, py0)
    if y0 < 0 < y1:
        body.append(f'<path class="zero" d="M{_n(px0)} {_n(sy(0.0))}H{_n(px1)}" stroke="{_AXIS}"/>')
    body.append(f'<path d="M{_n(px0)} {_n(py0)}V{_n(py1)}H{_n(px1)}" stroke="{_AXIS}" fill="none"/>')
    base = sy(0.0)

    def edge(ok, ys):
        return [(sx(x[a:b]), sy(ys[a:b])) for a, b in _runs(ok)]

    def line(cls, color, d, dash=""):
        return (
            f'<path class="{cls}" d="{d}" fill="none" stroke="{color}" stroke-width="1.5" stroke-linejoin="round" '
            f'stroke-linecap="round"{dash}/>'
        )

    if vae:
        areas = [(np.r_[px, px[-1], px[0]], np.r_[py, base, base]) for px, py in edge(ok_r, r) if len(px) > 1]
        body.append(
            f'<path class="recon area" d="{_path_d(areas, close=True)}" fill="{RECON_COLOR}" fill-opacity="0.5"/>'
        )
        areas = [
            (sx(np.r_[x[a:b], x[a:b][::-1]]), sy(np.r_[top[a:b], r[a:b][::-1]]))
            for a, b in _runs(ok_top)
            if b - a > 1
        ]
        body.append(
            f'<path class="kl area" d="{_path_d(areas, close=True)}" fill="{KL_COLOR}" fill-opacity="0.5"/>'
        )
    body.append(line("recon line", RECON_COLOR, _path_d(edge(ok_r, r))))
    if vae:
        body.append(line("kl line", KL_COLOR, _path_d(edge(ok_top, top))))
    if o is not None:
        body.append(
            line(
                "objective",
                GUIDE_COLOR,
                _path_d(edge(np.isfinite(x) & np.isfinite(o), o)),
                ' stroke-dasharray="2 4"',
            )
        )
    if ex.size:
        body.append(
            f'<g class="eval" fill="{ELBO_COLOR if vae else RECON_COLOR}" stroke="#ffffff" stroke-width="0.8">'
        )
        body += [
            f'<path d="M{_n(a)} {_n(b - 5.5)}l5.5 5.5-5.5 5.5-5.5-5.5z"/>'
            for a, b in zip(sx(ex).tolist(), sy(ev).tolist())
        ]
        body.append("</g>")
    x_base = py1 + 4 + _TS + 8 + _FS
    body += _axis_titles((px0, py0, px1, py1), x_title, y_title, x_base, 8 + _FS * 0.8)
    body += _legend(rows, 8, x_base + 8)
    return _svg(width, height, body)


def png_data_uri(img: Image.Image, **save_options) -> str:
    """``img`` as a ``data:image/png;base64,...`` URI (``save_options`` go to PIL's PNG writer): the lab's one
    PNG encoder for images sent inline, the pages' grids (lab_pages.images) and the heatmap cells here."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", **save_options)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _ramp_png(t: np.ndarray, color: str) -> str:
    """``t`` (h, w) in 0..1 (NaN: transparent) as a data: URI of a palette PNG, white (0) to ``color`` (1):
    255 levels and one transparent entry, a byte a cell."""
    white, hot = np.full(3, 255.0), np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)
    palette = np.rint(white + np.linspace(0.0, 1.0, 255)[:, None] * (hot - white)).astype(np.uint8)
    idx = np.where(np.isfinite(t), np.rint(np.clip(np.nan_to_num(t), 0.0, 1.0) * 254), 255).astype(np.uint8)
    img = Image.frombytes("P", (idx.shape[1], idx.shape[0]), np.ascontiguousarray(idx).tobytes())
    img.putpalette(palette.ravel().tolist() + [255, 255, 255])
    return png_data_uri(img, optimize=True, **({"transparency": 255} if (idx == 255).any() else {}))


def kl_heatmap_svg(
    step,
    kl_per_dim,
    dim_labels,
    *,
    x_title: str,
    y_title: str,
    colorbar_title: str,
    width: int = 480,
    height: int = 380,
) -> str:
    """:func:`kl_heatmap` as a standalone SVG document (a str), for the Train page while it trains.

    ``kl_per_dim`` (steps, z) in nats per image, ``step`` its training steps: one row per latent dimension,
    dimension 1 (``dim_labels[0]``) at the bottom as in kl_heatmap, white at 0 nats to the KL colour at the
    largest value, with a colour bar. The cells are one embedded PNG (z rows, one column per step; steps
    averaged in bins beyond 300 columns, columns drawn equally wide); non-finite cells are transparent.
    """
    x = _floats(step)
    labels = [str(v) for v in dim_labels]
    v = np.asarray(kl_per_dim, dtype=float)
    if v.ndim != 2:
        v = v.reshape(len(x) if v.size else 0, -1) if v.size else np.zeros((0, len(labels)))
    n = min(len(x), v.shape[0])
    x, v = x[:n], v[:n]
    z = v.shape[1]
    labels = labels[:z] + [str(j + 1) for j in range(len(labels), z)]

    if n > _MAX_COLUMNS:  # bins of consecutive steps, each the mean of its finite values
        edges = np.linspace(0, n, _MAX_COLUMNS + 1).round().astype(int)
        fin = np.isfinite(v)
        sums = np.add.reduceat(np.where(fin, v, 0.0), edges[:-1], axis=0)
        counts = np.add.reduceat(fin, edges[:-1], axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    finite = v[np.isfinite(v)]
    vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0

    # x: cells centred on their steps (uniform spacing assumed), as a Plotly heatmap
    if n:
        half = (x[-1] - x[0]) / (n - 1) / 2 if n > 1 and x[-1] > x[0] else 0.5
        xlo, xhi = float(x[0] - half), float(x[-1] + half)
    else:
        xlo, xhi = 0.0, 1.0
    x0, x1, xt, xstep = _ticks(xlo, xhi, extend=False)
    xlab = _tick_labels(xt, xstep)
    _, _, ct, cstep = _ticks(0.0, vmax, extend=False)
    clab = _tick_labels(ct, cstep)

    left = 8 + _FS + 8 + max((_text_w(t, _TS) for t in labels), default=0) + 8
    bar_w = 14
    right = 14 + bar_w + 6 + max((_text_w(t, _TS) for t in clab), default=0) + 8
    px0, px1 = left, max(left + 20, width - right)
    py0, py1 = 26.0, max(46.0, height - (4 + _TS + 8 + _FS + 10))
    sx = _Lin(x0, x1, px0, px1)
    row_h = (py1 - py0) / max(z, 1)
    every = max(1, math.ceil((_TS + 2) / row_h))  # thin the row labels out where rows are lower than a label

    body = [
        f'<rect class="plot" x="{_n(px0)}" y="{_n(py0)}" width="{_n(px1 - px0)}" height="{_n(py1 - py0)}" fill="#ffffff"/>'
    ]
    if v.size:
        ix0, ix1 = sx(xlo), sx(xhi)
        href = _ramp_png((v / vmax).T[::-1], KL_COLOR)  # (z, columns), dimension 1 at the bottom
        body.append(
            f'<image class="cells" x="{_n(ix0)}" y="{_n(py0)}" width="{_n(ix1 - ix0)}" height="{_n(py1 - py0)}" '
            f'preserveAspectRatio="none" style="image-rendering:pixelated" href="{href}"/>'
        )
    rows = list(range(0, z, every))
    body += _y_axis([py1 - (j + 0.5) * row_h for j in rows], [labels[j] for j in rows], px0, None)
    body += _x_axis(sx, xt, xlab, py1, None)
    body.append(
        f'<rect x="{_n(px0)}" y="{_n(py0)}" width="{_n(px1 - px0)}" height="{_n(py1 - py0)}" fill="none" '
        f'stroke="{_AXIS}"/>'
    )

    # the colour bar: a gradient from white (0 nats) to the KL colour (the largest value), its ticks and title
    bx = px1 + 14
    sc = _Lin(0.0, vmax, py1, py0)
    body.append(
        f'<defs><linearGradient id="kl-scale" x1="0" y1="1" x2="0" y2="0"><stop offset="0" stop-color="#ffffff"/>'
        f'<stop offset="1" stop-color="{KL_COLOR}"/></linearGradient></defs>'
        f'<rect class="colorbar" x="{_n(bx)}" y="{_n(py0)}" width="{bar_w}" height="{_n(py1 - py0)}" '
        f'fill="url(#kl-scale)" stroke="{_AXIS}"/>'
    )
    body.append(f'<g class="c-ticks" font-size="{_TS}">')
    for tv, lab in zip(ct, clab):
        cy = sc(tv)
        body.append(
            f'<path d="M{_n(bx + bar_w)} {_n(cy)}h4" stroke="{_AXIS}"/>'
            f'<text x="{_n(bx + bar_w + 6)}" y="{_n(cy + _TS * 0.35)}">{_esc(lab)}</text>'
        )
    body.append("</g>")
    title = _fit(colorbar_title, _FS, width - 8 - px0)
    tw = _text_w(title, _FS)
    tx, anchor = (bx, "start") if bx + tw <= width - 4 else (width - 4, "end")
    body.append(
        f'<text class="c-title" x="{_n(tx)}" y="{_n(py0 - 9)}" text-anchor="{anchor}">{_esc(title)}</text>'
    )
    body += _axis_titles((px0, py0, px1, py1), x_title, y_title, py1 + 4 + _TS + 8 + _FS, 8 + _FS * 0.8)
    return _svg(width, height, body)
