"""lab_pages.svg_charts without Streamlit: the Train page's live charts as SVG documents, parsed back and checked
(well-formed, sized, escaped, nice ticks, the data where it belongs, colours), and the PNG encoder."""

from __future__ import annotations

import base64
import io
import math
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lab_pages import svg_charts
from lab_pages.style import ELBO_COLOR, GUIDE_COLOR, KL_COLOR, RECON_COLOR


def test_svg_charts_needs_neither_streamlit_nor_plotly_nor_torch() -> None:
    text = Path(svg_charts.__file__).read_text(encoding="utf-8")
    assert "import streamlit" not in text and "import torch" not in text and "plotly" not in text
    assert "lab_pages.svg_charts" in sys.modules


@pytest.mark.parametrize(
    "builder",
    [
        b
        for b in dir(svg_charts)
        if not b.startswith("_")
        and callable(getattr(svg_charts, b))
        and getattr(getattr(svg_charts, b), "__module__", "") == "lab_pages.svg_charts"
    ],
)
def test_every_builder_is_tested_here(builder: str) -> None:
    assert builder in Path(__file__).read_text(encoding="utf-8").replace("test_every_builder", "")


def test_png_data_uri_round_trips_and_passes_writer_options() -> None:
    import base64
    import io

    arr = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    uri = svg_charts.png_data_uri(Image.fromarray(arr), compress_level=9)
    assert uri.startswith("data:image/png;base64,")
    back = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert back.format == "PNG" and (np.asarray(back) == arr).all()
    pal = Image.frombytes("P", (2, 1), bytes([0, 1]))
    pal.putpalette([255, 255, 255, 0, 0, 0])
    back = Image.open(
        io.BytesIO(base64.b64decode(svg_charts.png_data_uri(pal, transparency=1).split(",", 1)[1]))
    )
    assert back.info.get("transparency") == 1  # an option reaches PIL's PNG writer


SVG_NS = "{http://www.w3.org/2000/svg}"
_TOKEN = re.compile(r"[MmLlHhVvAaZz]|-?(?:\d+\.?\d*|\.\d+)")
_ARITY = {"M": 2, "L": 2, "H": 1, "V": 1, "A": 7}
S10 = np.arange(0, 100, 10.0)  # steps 0..90
R10, K10 = 50 - 0.3 * S10, 5 + 0.1 * S10  # recon 50..23, KL 5..14 (nats per image)
O10 = R10 + 0.5 * K10
NAMES = {
    "recon_name": "R",
    "kl_name": "K",
    "objective_name": "O",
    "eval_name": "T",
    "x_title": "step",
    "y_title": "nats",
}


def _svg_root(svg: str, width: int, height: int) -> ET.Element:
    """The parsed document (well-formed XML or ET raises), checked to be a standalone SVG of that size."""
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" ')
    root = ET.fromstring(svg)
    assert root.tag == SVG_NS + "svg"
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == (
        str(width),
        str(height),
        f"0 0 {width} {height}",
    )
    return root


def _tag(e: ET.Element) -> str:
    return e.tag.removeprefix(SVG_NS)


def _classed(root: ET.Element, cls: str) -> list[ET.Element]:
    """Elements carrying every class word of ``cls``."""
    return [e for e in root.iter() if set(cls.split()) <= set((e.get("class") or "").split())]


def _only(root: ET.Element, cls: str) -> ET.Element:
    (e,) = _classed(root, cls)
    return e


def _subpaths(d: str) -> list[list[tuple[float, float]]]:
    """The vertices of each subpath of path data ``d`` (M L H V A Z, absolute or relative; the implicit
    lineto after a moveto)."""
    toks, out, cx, cy, cmd, i = _TOKEN.findall(d), [], 0.0, 0.0, "", 0
    while i < len(toks):
        if toks[i].isalpha():
            cmd, i = toks[i], i + 1
            if cmd in "Zz":
                cx, cy = out[-1][0]
            continue
        big, rel = cmd.upper(), cmd.islower()
        v = [float(t) for t in toks[i : i + _ARITY[big]]]
        i += _ARITY[big]
        if big in "MLA":
            x, y = v[-2:]
            cx, cy = (cx + x, cy + y) if rel else (x, y)
        elif big == "H":
            cx = cx + v[0] if rel else v[0]
        else:
            cy = cy + v[0] if rel else v[0]
        if big == "M":
            out.append([(cx, cy)])
            cmd = "l" if rel else "L"
        else:
            out[-1].append((cx, cy))
    return out


def _label(text: str) -> float:
    t = text.replace("−", "-")
    mult = {"k": 1e3, "M": 1e6}.get(t[-1], 1.0)
    return float(t.rstrip("kM")) * mult


def _axis(root: ET.Element, cls: str) -> tuple[list[float], list[float]]:
    """(tick values from the labels, tick positions in px) of the axis group ``cls`` (x-ticks, y-ticks, c-ticks)."""
    g = _only(root, cls)
    marks = [
        _subpaths(p.get("d"))[0][0] for p in g if _tag(p) == "path" and re.search(r"[hv]-?4$", p.get("d"))
    ]
    pos = [y if cls != "x-ticks" else x for x, y in marks]
    vals = [_label(t.text) for t in g if _tag(t) == "text"]
    assert len(vals) == len(pos)
    return vals, pos


def _to_data(root: ET.Element, cls: str):
    """px -> data along the axis ``cls``, from its first and last tick."""
    vals, pos = _axis(root, cls)
    return lambda p: vals[0] + (np.asarray(p) - pos[0]) * (vals[-1] - vals[0]) / (pos[-1] - pos[0])


def _line_points(root: ET.Element, cls: str) -> list[list[tuple[float, float]]]:
    """The series ``cls`` as data points, one list per drawn stretch."""
    fx, fy = _to_data(root, "x-ticks"), _to_data(root, "y-ticks")
    return [[(float(fx(x)), float(fy(y))) for x, y in sp] for sp in _subpaths(_only(root, cls).get("d"))]


def _texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(SVG_NS + "text")]


def _legend_names(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in _only(root, "legend").iter(SVG_NS + "text")]


def _plot_box(root: ET.Element) -> tuple[float, float, float, float]:
    r = _only(root, "plot")
    x, y, w, h = (float(r.get(k)) for k in ("x", "y", "width", "height"))
    return x, y, x + w, y + h


def _png(root: ET.Element) -> tuple[ET.Element, Image.Image]:
    (img,) = root.iter(SVG_NS + "image")
    href = img.get("href")
    assert href.startswith("data:image/png;base64,")
    return img, Image.open(io.BytesIO(base64.b64decode(href.split(",", 1)[1])))


def _rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))


def _attribute_values(root: ET.Element) -> list[str]:
    return [v for e in root.iter() for k, v in e.attrib.items() if k not in ("href", "font-family")]


class TestLiveSvg:
    def test_loss_stack_svg_vae_stacks_kl_on_recon(self) -> None:
        root = _svg_root(
            svg_charts.loss_stack_svg(S10, R10, K10, O10, [30, 90], [40.0, 36.0], **NAMES), 720, 380
        )
        recon_area, kl_area = _only(root, "recon area"), _only(root, "kl area")
        assert (recon_area.get("fill"), kl_area.get("fill")) == (RECON_COLOR, KL_COLOR)
        assert float(recon_area.get("fill-opacity")) < 1 and float(kl_area.get("fill-opacity")) < 1
        (recon,), (top,) = _line_points(root, "recon line"), _line_points(root, "kl line")
        np.testing.assert_allclose([p[0] for p in recon], S10, atol=0.2)
        np.testing.assert_allclose([p[1] for p in recon], R10, atol=0.1)
        np.testing.assert_allclose([p[1] for p in top], R10 + K10, atol=0.1)  # the top edge is −ELBO
        (recon_px,), (top_px,) = (
            _subpaths(_only(root, "recon line").get("d")),
            _subpaths(_only(root, "kl line").get("d")),
        )
        assert all(
            t[1] < r[1] for t, r in zip(top_px, recon_px)
        )  # SVG y grows downwards: KL lies above recon
        (kl_poly,), (recon_poly,) = _subpaths(kl_area.get("d")), _subpaths(recon_area.get("d"))
        np.testing.assert_allclose(kl_poly[:10], top_px, atol=0.11)  # KL: from the top edge back along recon
        np.testing.assert_allclose(kl_poly[10:20], recon_px[::-1], atol=0.11)
        np.testing.assert_allclose(recon_poly[:10], recon_px, atol=0.11)  # recon: down to 0 nats
        np.testing.assert_allclose(_to_data(root, "y-ticks")([p[1] for p in recon_poly[10:]]), 0.0, atol=0.1)

    def test_loss_stack_svg_ae_draws_one_recon_line_and_no_kl(self) -> None:
        svg = svg_charts.loss_stack_svg(
            S10, R10, None, O10, [30], [40.0], recon_name="R", eval_name="T", x_title="x", y_title="y"
        )
        root = _svg_root(svg, 720, 380)
        assert KL_COLOR.lower() not in svg.lower() and not _classed(root, "area") and not _classed(root, "kl")
        line = _only(root, "recon line")
        assert (line.get("stroke"), line.get("fill")) == (RECON_COLOR, "none")
        np.testing.assert_allclose([p[1] for p in _line_points(root, "recon line")[0]], R10, atol=0.1)
        assert not [
            e for e in root.iter() if e.get("stroke") == GUIDE_COLOR
        ]  # no objective: an AE's is its recon cost
        assert _only(root, "eval").get("fill") == RECON_COLOR and len(_only(root, "eval")) == 1
        assert _legend_names(root) == ["R", "T"]
        assert _axis(root, "y-ticks")[0][0] == 0  # from 0 nats

    def test_loss_stack_svg_objective_dotted_tests_as_diamonds_and_a_legend(self) -> None:
        root = _svg_root(
            svg_charts.loss_stack_svg(S10, R10, K10, O10, [30, 90], [40.0, 36.0], **NAMES), 720, 380
        )
        obj = _only(root, "objective")
        assert obj.get("stroke") == GUIDE_COLOR and obj.get("fill") == "none" and obj.get("stroke-dasharray")
        assert _only(root, "kl line").get("stroke-dasharray") is None
        np.testing.assert_allclose([p[1] for p in _line_points(root, "objective")[0]], O10, atol=0.1)
        ev = _only(root, "eval")
        assert ev.get("fill") == ELBO_COLOR and len(ev) == 2
        fx, fy = _to_data(root, "x-ticks"), _to_data(root, "y-ticks")
        for mark, want in zip(ev, [(30, 40.0), (90, 36.0)]):
            (pts,) = _subpaths(mark.get("d"))
            assert len(pts) == 4  # a diamond
            cx, cy = np.mean(pts, axis=0)
            np.testing.assert_allclose((fx(cx), fy(cy)), want, atol=0.1)
        legend = list(_only(root, "legend"))
        assert _legend_names(root) == ["R", "K", "O", "T"]
        swatches = [entry[0] for entry in legend]
        assert [s.get("fill") for s in swatches[:2]] == [RECON_COLOR, KL_COLOR]
        assert swatches[2].get("stroke") == GUIDE_COLOR and swatches[2].get("stroke-dasharray")
        assert swatches[3].get("fill") == ELBO_COLOR

    def test_svg_text_is_escaped_and_survives(self) -> None:
        names = {
            "recon_name": 'a<b & "c"',
            "kl_name": "KL 散度 ‖ <q>",
            "objective_name": "目标 & β",
            "eval_name": "测试 −ELBO",
            "x_title": "训练步 <step>",
            "y_title": 'nats "per image" & 每张',
        }
        svg = svg_charts.loss_stack_svg(S10, R10, K10, O10, [30], [40.0], **names)
        assert "&lt;" in svg and "&amp;" in svg and "a<b" not in svg and '"c"' not in svg
        root = _svg_root(svg, 720, 380)
        assert set(names.values()) <= set(_texts(root))
        assert "sans-serif" in root.get("font-family")
        heat = svg_charts.kl_heatmap_svg(
            S10,
            np.ones((10, 2)),
            ["<z1>", "z&2"],
            x_title="步 & <x>",
            y_title='"维度"',
            colorbar_title="奈特 <nats>",
        )
        assert "<z1>" not in heat and "&lt;z1&gt;" in heat
        assert {"<z1>", "z&2", "步 & <x>", '"维度"', "奈特 <nats>"} <= set(_texts(_svg_root(heat, 480, 380)))

    @pytest.mark.parametrize("scale", [0.37, 3.7, 290.0, 12345.0, 2.5e6, -290.0])
    def test_loss_stack_svg_nice_ticks_bracket_every_value(self, scale: float) -> None:
        rng = np.random.default_rng(1)
        steps = np.arange(1, 301) * 16
        recon = scale * (1 + np.exp(-steps / 1500) + 0.02 * rng.standard_normal(300))
        kl = abs(scale) * 0.1 * (1 - np.exp(-steps / 800))
        ev = [scale * 2.3 if scale > 0 else scale * 0.5]  # a test above (below) every curve
        root = _svg_root(
            svg_charts.loss_stack_svg(steps, recon, kl, recon + 2 * kl, [2400], ev, **NAMES), 720, 380
        )
        yt, ypos = _axis(root, "y-ticks")
        assert 4 <= len(yt) <= 6 and all(np.diff(ypos) < 0)  # values increase upwards
        step = np.diff(yt)
        np.testing.assert_allclose(step, step[0], rtol=1e-6)
        assert round(step[0] / 10 ** math.floor(math.log10(step[0])), 6) in (1, 2, 2.5, 5)
        values = np.concatenate([recon, recon + kl, recon + 2 * kl, ev])
        lo, hi = min(0.0, values.min()), max(0.0, values.max())
        assert yt[0] <= lo and yt[-1] >= hi + 0.01 * (hi - lo)  # the ticks bracket the data, with headroom
        xt, xpos = _axis(root, "x-ticks")
        assert 4 <= len(xt) <= 7 and all(np.diff(xt) > 0) and all(np.diff(xpos) > 0)
        assert steps[0] <= xt[0] and xt[-1] <= steps[-1]
        x0, y0, x1, y1 = _plot_box(root)
        for cls in ("recon area", "kl area", "recon line", "kl line", "objective", "eval"):
            for e in [_only(root, cls), *_only(root, cls)]:
                for sp in _subpaths(e.get("d") or ""):
                    p = np.asarray(sp)
                    assert (p[:, 0] >= x0 - 0.15).all() and (p[:, 0] <= x1 + 0.15).all(), cls
                    assert (p[:, 1] >= y0 - 6).all() and (p[:, 1] <= y1 + 0.15).all(), (
                        cls
                    )  # 6: a diamond's half

    def test_loss_stack_svg_ticks_are_nice_for_any_range(self) -> None:
        rng = np.random.default_rng(7)
        for _ in range(60):
            v = np.sort(rng.uniform(-1, 1, 2) * 10 ** rng.uniform(-2, 5))
            s = np.sort(rng.uniform(0, 10 ** rng.uniform(1, 6), 2))
            root = _svg_root(
                svg_charts.loss_stack_svg(s, v, None, None, (), (), recon_name="R", x_title="x", y_title="y"),
                720,
                380,
            )
            for cls, most in (("y-ticks", 6), ("x-ticks", 7)):
                t, _ = _axis(root, cls)
                d = np.diff(t)
                assert 4 <= len(t) <= most and (d > 0).all(), (cls, v, s, t)
                np.testing.assert_allclose(d, d[0], rtol=1e-6)
                assert round(d[0] / 10 ** math.floor(math.log10(d[0])), 6) in (1, 2, 2.5, 5), (cls, t)
            yt = _axis(root, "y-ticks")[0]
            assert yt[0] <= min(0, v[0]) and yt[-1] >= v[1]
            xt = _axis(root, "x-ticks")[0]
            assert s[0] - 1e-9 <= xt[0] and xt[-1] <= s[1] + 1e-9

    def test_loss_stack_svg_skips_non_finite_values(self) -> None:
        r, k, o = R10.copy(), K10.copy(), O10.copy()
        r[4], k[7], o[2] = np.inf, np.nan, -np.inf
        svg = svg_charts.loss_stack_svg(S10, r, k, o, [30, np.nan, 60], [40.0, 1.0, np.nan], **NAMES)
        root = _svg_root(svg, 720, 380)
        assert not [v for v in _attribute_values(root) if "nan" in v.lower() or "inf" in v.lower()]
        recon = _line_points(root, "recon line")
        assert [len(sp) for sp in recon] == [4, 5]  # 0..3 and 5..9
        np.testing.assert_allclose([p[1] for sp in recon for p in sp], np.delete(R10, 4), atol=0.1)
        assert [len(sp) for sp in _line_points(root, "kl line")] == [4, 2, 2]  # recon and KL both finite
        assert (
            len(_subpaths(_only(root, "kl area").get("d"))) == 3
            and len(_subpaths(_only(root, "recon area").get("d"))) == 2
        )
        assert [len(sp) for sp in _line_points(root, "objective")] == [2, 7]
        assert len(_only(root, "eval")) == 1
        assert _axis(root, "y-ticks")[0][-1] <= 100  # inf left out of the range too

    def test_loss_stack_svg_empty_and_one_point(self) -> None:
        for kl in ([], None):
            root = _svg_root(svg_charts.loss_stack_svg([], [], kl, None, (), (), **NAMES), 720, 380)
            assert 4 <= len(_axis(root, "y-ticks")[0]) <= 6 and not _classed(root, "eval")
            assert not [v for v in _attribute_values(root) if "nan" in v.lower() or "inf" in v.lower()]
        root = _svg_root(
            svg_charts.loss_stack_svg([5], [3.0], [1.0], [3.5], [5], [4.2], **NAMES, width=500, height=300),
            500,
            300,
        )
        recon, top = _line_points(root, "recon line"), _line_points(root, "kl line")
        np.testing.assert_allclose(recon[0][0], (5, 3.0), atol=0.05)  # a lone point: a dot there
        np.testing.assert_allclose(top[0][0], (5, 4.0), atol=0.05)
        assert _axis(root, "y-ticks")[0][-1] >= 4.2 and min(_axis(root, "x-ticks")[0]) <= 5 <= max(
            _axis(root, "x-ticks")[0]
        )
        root = _svg_root(
            svg_charts.loss_stack_svg(
                [1], [None], None, None, [], [], recon_name="R", x_title="x", y_title="y"
            ),
            720,
            380,
        )
        assert not _only(root, "recon line").get("d")

    def test_loss_stack_svg_is_small_and_compact_for_300_points(self) -> None:
        rng = np.random.default_rng(0)
        steps = np.arange(1, 301) * 16.0
        recon = 200 * np.exp(-steps / 1500) + 90 + rng.normal(0, 2, 300)
        kl = 25 * (1 - np.exp(-steps / 800)) + rng.normal(0, 0.5, 300)
        svg = svg_charts.loss_stack_svg(
            steps, recon, kl, recon + 0.7 * kl, steps[49::50], recon[49::50] + kl[49::50], **NAMES
        )
        assert len(svg.encode()) < 25_000
        root = _svg_root(svg, 720, 380)
        assert not [v for v in _attribute_values(root) if re.search(r"\d\.\d\d", v)]  # coordinates to 0.1 px

    def test_kl_heatmap_svg_one_png_row_per_dim_white_to_kl(self) -> None:
        kl = np.zeros(
            (5, 3)
        )  # (steps, z): dim 1 all 0 nats, dim 2 a ramp, dim 3 the largest value at the 4th step
        kl[:, 1] = [0.5, 1.0, 1.5, 2.0, 2.5]
        kl[:, 2] = [1.0, 1.0, 1.0, 4.0, 1.0]
        root = _svg_root(
            svg_charts.kl_heatmap_svg(
                S10[:5], kl, ["a", "b", "c"], x_title="step", y_title="dim", colorbar_title="nats"
            ),
            480,
            380,
        )
        img, png = _png(root)
        assert (
            png.size == (5, 3) and len(list(root.iter(SVG_NS + "rect"))) <= 4
        )  # the cells: one image, no rects
        assert img.get("preserveAspectRatio") == "none" and "pixelated" in img.get("style")
        px = np.asarray(png.convert("RGBA")).astype(int)
        sat = (255 - px[..., :3]).sum(
            axis=2
        )  # how far from white: each channel falls monotonically to the KL colour
        assert np.unravel_index(sat.argmax(), sat.shape) == (0, 3)  # dim 3 on the top row, the 4th step
        assert tuple(px[0, 3, :3]) == _rgb(KL_COLOR)
        assert (px[2] == 255).all()  # dimension 1 (all 0 nats) is the bottom row, white
        assert all(np.diff(sat[1]) > 0)  # the ramp darkens
        labels = [t for t in _only(root, "y-ticks") if _tag(t) == "text"]
        assert [t.text for t in labels] == ["a", "b", "c"] and all(
            np.diff([float(t.get("y")) for t in labels]) < 0
        )
        x0, y0, x1, y1 = _plot_box(root)
        np.testing.assert_allclose(
            [float(img.get(k)) for k in ("x", "y", "width", "height")], [x0, y0, x1 - x0, y1 - y0], atol=0.11
        )
        xt, _ = _axis(root, "x-ticks")
        assert xt == sorted(xt) and xt[0] >= 0 and xt[-1] <= 40
        ct, cpos = _axis(root, "c-ticks")
        assert ct[0] == 0 and ct[-1] <= 4 and all(np.diff(cpos) < 0)
        stops = [s.get("stop-color") for s in root.iter(SVG_NS + "stop")]
        assert stops == ["#ffffff", KL_COLOR] and _only(root, "colorbar").get("fill") == "url(#kl-scale)"
        assert "".join(_only(root, "c-title").itertext()) == "nats"
        assert {"step", "dim"} <= set(_texts(root))

    def test_kl_heatmap_svg_bins_columns_by_averaging(self) -> None:
        kl = np.zeros((1000, 2))
        kl[:, 0] = np.arange(1000.0)  # a ramp
        kl[500:, 1] = 999.0  # off, then on (the largest value)
        root = _svg_root(
            svg_charts.kl_heatmap_svg(
                np.arange(1000), kl, [1, 2], x_title="s", y_title="d", colorbar_title="n"
            ),
            480,
            380,
        )
        px = np.asarray(_png(root)[1].convert("RGB")).astype(int)
        assert px.shape == (2, 300, 3)  # (z, columns)
        sat = (255 - px).sum(axis=2)
        assert (
            all(np.diff(sat[1]) >= 0) and sat[1, 0] <= 2 and sat[1, -1] >= sat.max() - 3
        )  # bin means of the ramp
        assert (px[0, :149] == 255).all() and (px[0, 151:] == _rgb(KL_COLOR)).all()
        for n, cols in ((301, 300), (300, 300), (50, 50)):
            root = _svg_root(
                svg_charts.kl_heatmap_svg(
                    np.arange(n), np.ones((n, 3)), [1, 2, 3], x_title="s", y_title="d", colorbar_title="n"
                ),
                480,
                380,
            )
            assert _png(root)[1].size == (cols, 3)

    def test_kl_heatmap_svg_thins_dim_labels(self) -> None:
        def labels(z: int) -> list[str]:
            root = _svg_root(
                svg_charts.kl_heatmap_svg(
                    S10,
                    np.ones((10, z)),
                    [f"z{j + 1}" for j in range(z)],
                    x_title="s",
                    y_title="d",
                    colorbar_title="n",
                ),
                480,
                380,
            )
            return [t.text for t in _only(root, "y-ticks") if _tag(t) == "text"]

        assert labels(8) == [f"z{j + 1}" for j in range(8)]
        many = labels(64)
        k = int(many[1][1:]) - 1
        assert 8 <= len(many) <= 24 and many == [f"z{j + 1}" for j in range(0, 64, k)]

    def test_kl_heatmap_svg_nan_empty_and_one_step(self) -> None:
        kl = np.ones((4, 2))
        kl[2, 1] = np.nan
        alpha = np.asarray(
            _png(
                _svg_root(
                    svg_charts.kl_heatmap_svg(
                        S10[:4], kl, [1, 2], x_title="s", y_title="d", colorbar_title="n"
                    ),
                    480,
                    380,
                )
            )[1].convert("RGBA")
        )[..., 3]
        assert alpha[0, 2] == 0 and (np.delete(alpha.ravel(), 2) == 255).all()  # dim 2 is the top row
        root = _svg_root(
            svg_charts.kl_heatmap_svg(
                [], np.zeros((0, 4)), [1, 2, 3, 4], x_title="s", y_title="d", colorbar_title="n"
            ),
            480,
            380,
        )
        assert (
            not list(root.iter(SVG_NS + "image"))
            and len([t for t in _only(root, "y-ticks") if _tag(t) == "text"]) == 4
        )
        root = _svg_root(
            svg_charts.kl_heatmap_svg(
                [7],
                [[0.0, 2.0]],
                ["a", "b"],
                x_title="s",
                y_title="d",
                colorbar_title="n",
                width=300,
                height=200,
            ),
            300,
            200,
        )
        assert _png(root)[1].size == (1, 2)
        assert not [v for v in _attribute_values(root) if "nan" in v.lower() or "inf" in v.lower()]

    def test_kl_heatmap_svg_is_small_for_300_steps_and_16_dims(self) -> None:
        rng = np.random.default_rng(1)
        kl = rng.gamma(2, 1, (300, 16)) * np.linspace(0, 1, 300)[:, None] * (np.arange(16) < 8)
        svg = svg_charts.kl_heatmap_svg(
            np.arange(1, 301) * 16,
            kl,
            range(1, 17),
            x_title="training step",
            y_title="latent dimension",
            colorbar_title="nats",
        )
        assert len(svg.encode()) < 15_000
        root = _svg_root(svg, 480, 380)
        assert _png(root)[1].size == (300, 16)
        assert not [v for v in _attribute_values(root) if re.search(r"\d\.\d\d", v)]
