"""vae_core.explore: the explorer's point (clamp, random draws, points sent by another page), Φ, colours,
slider space, traversal order, and the manifold page's grid and interpolation paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.conftest import digits_config
from vae_core import explore as ex
from vae_core import inference as inf
from vae_core.models import build_model

STATS = inf.PosteriorStats(
    mean=torch.tensor([0.0, 1.0, -1.0]),
    std=torch.tensor([1.0, 0.5, 0.0]),
    cov_mu_diag=torch.tensor([0.9, 0.2, 0.0]),
    active=torch.tensor([True, True, False]),
    avg_kl_per_dim=torch.tensor([0.1, 2.0, 0.0]),
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(digits_config("vae", 2)).eval()


class TestPoint:
    def test_clamp_point_reports_the_dims_it_moved(self) -> None:
        zc, moved = ex.clamp_point([5.0, 0.0, -9.0], np.array([-1.0, -1.0, -1.0]), np.array([1.0, 1.0, 1.0]))
        np.testing.assert_array_equal(zc, [1.0, 0.0, -1.0])
        assert moved == [0, 2]
        assert ex.clamp_point([0.5], np.array([-1.0]), np.array([1.0]))[1] == []

    def test_random_point_prior_or_code_fit(self) -> None:
        eps = torch.randn(2, generator=torch.Generator().manual_seed(3)).double().numpy()
        np.testing.assert_allclose(ex.random_point(3, np.zeros(2), np.ones(2), True), eps)
        np.testing.assert_allclose(
            ex.random_point(3, np.array([1.0, 2.0]), np.array([2.0, 0.5]), False),
            [1.0 + 2.0 * eps[0], 2.0 + 0.5 * eps[1]],
        )
        assert not np.allclose(ex.random_point(4, np.zeros(2), np.ones(2), True), eps)

    def test_incoming_point(self) -> None:
        assert ex.incoming_point(None, None, None, "m", 2) == ("fresh", None)
        assert ex.incoming_point([0.1, 0.2], "m", None, "m", 2) == ("sent", (0.1, 0.2))
        last = ("m", (0.1, 0.2))
        assert ex.incoming_point([0.1, 0.2], "m", last, "m", 2) == ("keep", None)  # the explorer's own point
        assert ex.incoming_point([0.3, 0.2], "m", last, "m", 2) == ("sent", (0.3, 0.2))
        assert ex.incoming_point([0.3, 0.2], "other", last, "m", 2) == ("foreign", None)
        assert ex.incoming_point([0.3], "m", last, "m", 2) == ("foreign", None)
        assert ex.incoming_point([float("nan"), 0.0], "m", last, "m", 2) == ("foreign", None)
        assert ex.incoming_point("not a point", "m", last, "m", 2) == ("foreign", None)
        assert ex.incoming_point([0.1, 0.2], "m", ("other", (0.1, 0.2)), "other", 2) == ("foreign", None)

    def test_slider_space_and_traversal_order(self) -> None:
        sp = ex.slider_space(STATS, is_vae=True)
        lo, hi = ex.slider_ranges(STATS)
        np.testing.assert_allclose(sp.lo, lo) and np.testing.assert_allclose(sp.hi, hi)
        np.testing.assert_array_equal(sp.home, [0.0, 0.0, 0.0])
        np.testing.assert_allclose(ex.slider_space(STATS, is_vae=False).home, [0.0, 1.0, -1.0])
        assert ex.traversal_order(STATS, [0, 1, 2], False) == [0, 1, 2]
        assert ex.traversal_order(STATS, [0, 1, 2], True) == [1, 0, 2]  # by average KL
        assert ex.traversal_order(STATS._replace(avg_kl_per_dim=None), [0, 1, 2], True) == [
            0,
            1,
            2,
        ]  # by Var[mu]


def test_normal_cdf_and_hex_rgb() -> None:
    assert ex.normal_cdf(0.0) == 0.5
    assert ex.normal_cdf(1.0) == pytest.approx(0.8413, abs=1e-4)
    assert ex.normal_cdf(3.0, center=1.0, scale=2.0) == pytest.approx(ex.normal_cdf(1.0))
    assert ex.hex_rgb("#f58518") == (245, 133, 24)


class TestManifoldPage:
    def test_manifold_view_is_the_prior_grid_for_a_2d_vae(self, model) -> None:
        imgs, c0, s0 = ex.manifold_view(model, np.zeros(2), (0, 1), True, np.ones(2), np.ones(2), 5)
        torch.testing.assert_close(imgs, inf.manifold_grid(model, 5)[0])
        assert (c0, s0) == ((0.0, 0.0), (1.0, 1.0))

    def test_manifold_view_is_placed_by_the_codes_otherwise(self, model) -> None:
        mean, std = np.array([0.5, -1.0]), np.array([2.0, 0.5])
        imgs, c0, s0 = ex.manifold_view(model, np.zeros(2), (0, 1), False, mean, std, 5)
        assert (c0, s0) == ((0.5, -1.0), (2.0, 0.5))
        torch.testing.assert_close(imgs, ex.manifold_slice(model, torch.zeros(2), (0, 1), c0, s0, 5)[0])

    def test_interpolation_paths(self, model) -> None:
        a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
        both = ex.interpolation_paths(model, a, b, 6, "both")
        assert [n for n, _, _ in both] == ["linear", "spherical"]
        for _name, path, images in both:
            assert path.shape == (6, 2) and images.shape == (6, 64)
            torch.testing.assert_close(images, inf.decode(model, path))
        torch.testing.assert_close(both[0][1], inf.lerp(a, b, 6))
        torch.testing.assert_close(both[1][1], inf.slerp(a, b, 6))
        assert [n for n, _, _ in ex.interpolation_paths(model, a, b, 6, "spherical")] == ["spherical"]
        norms = both[1][1].norm(dim=1)
        assert (
            float(norms.min()) >= 1.0 - 1e-5
            and float(norms.max()) <= 2.0 + 1e-5
            and not math.isnan(float(norms.sum()))
        )
        with pytest.raises(ValueError):
            ex.interpolation_paths(model, a, b, 6, "curved")


class TestLabelFont:
    """Labels drawn into the traversal image: a CJK font when installed, else only text the font can draw."""

    @pytest.fixture()
    def no_cjk(self, monkeypatch):
        """No CJK font on this machine (the search finds nothing)."""
        monkeypatch.setattr(ex, "CJK_FONT_PATHS", ())
        monkeypatch.setattr(ex, "_fontconfig_zh", lambda: [])
        ex.cjk_font_file.cache_clear()
        ex._font.cache_clear()
        yield
        ex.cjk_font_file.cache_clear()
        ex._font.cache_clear()

    def test_numbers_and_latin_always_draw(self) -> None:
        assert ex.can_draw("z1 KL 0.25 nats") and ex.can_draw("± 0.40") and ex.can_draw("")

    def test_chinese_draws_exactly_when_a_cjk_font_is_found(self) -> None:
        assert ex.can_draw("平均 KL 散度") == ex.cjk_font_available()
        if ex.cjk_font_available():  # e.g. Debian's fonts-noto-cjk (.ci/run installs it)
            path, face = ex.cjk_font_file()
            assert path.endswith((".ttc", ".ttf", ".otf")) and face >= 0
            assert ex.can_draw("σ") and ex.can_draw("未使用")

    def test_without_a_cjk_font_chinese_is_refused_and_the_sheet_still_draws(self, no_cjk) -> None:
        assert not ex.cjk_font_available() and ex.cjk_font_file() is None
        assert not ex.can_draw("未使用") and not ex.can_draw("z1 平均") and ex.can_draw("z1 KL 0.25")
        sheet = ex.traversal_sheet(
            torch.zeros(1, 3, 64), (1, 8, 8), [[("z1", (0, 0, 0)), ("KL 0.25", (0, 0, 0))]], scale=4
        )
        assert sheet.shape == (32, 130 + (3 * 9 - 1) * 4, 3) and (sheet[:, :130] < 128).any()

    def test_chinese_labels_are_drawn_as_glyphs_not_boxes(self) -> None:
        if not ex.cjk_font_available():
            pytest.skip("no CJK font installed (Debian: fonts-noto-cjk)")
        rows = torch.zeros(1, 3, 64)
        sheets = [
            ex.traversal_sheet(rows, (1, 8, 8), [[(t, (0, 0, 0))]], scale=4)
            for t in ("未使用", "\U0010ffff" * 3)
        ]
        assert not np.array_equal(sheets[0], sheets[1])  # real glyphs, not three "missing glyph" boxes
