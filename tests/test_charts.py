"""lab_pages.charts without Streamlit: every builder's traces, data, axis titles and colours."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from lab_pages import charts
from lab_pages.style import (
    CLASS_COLORS,
    ELBO_COLOR,
    INK_COLOR,
    KL_COLOR,
    LOGPX_COLOR,
    MU_COLOR,
    P_COLOR,
    Q_COLOR,
    RECON_COLOR,
)

STEP = np.arange(5)


def types(fig: go.Figure) -> list[str]:
    return [t.type for t in fig.data]


def test_charts_needs_neither_streamlit_nor_torch() -> None:
    src = charts.__file__
    text = Path(src).read_text(encoding="utf-8")
    assert "import streamlit" not in text and "import torch" not in text
    assert "lab_pages.charts" in sys.modules


class TestTraining:
    def test_loss_stack_vae_stacks_recon_and_kl_with_the_objective_and_tests(self) -> None:
        fig = charts.loss_stack(
            STEP,
            STEP * 2.0,
            STEP * 0.5,
            STEP * 3.0,
            [2, 4],
            [7.0, 6.0],
            recon_name="R",
            kl_name="K",
            objective_name="O",
            eval_name="T",
            x_title="step",
            y_title="nats",
        )
        assert types(fig) == ["scatter"] * 4 and [t.name for t in fig.data] == ["R", "K", "O", "T"]
        r, k, o, t = fig.data
        assert r.stackgroup == k.stackgroup == "e" and o.stackgroup is None
        assert (r.line.color, k.line.color, t.marker.color) == (RECON_COLOR, KL_COLOR, ELBO_COLOR)
        np.testing.assert_allclose(k.y, STEP * 0.5)
        assert list(t.x) == [2, 4] and t.mode == "markers"
        assert fig.layout.xaxis.title.text == "step" and fig.layout.yaxis.title.text == "nats"

    def test_loss_stack_ae_has_no_kl_and_no_stack(self) -> None:
        fig = charts.loss_stack(
            STEP, STEP, None, STEP, [], [], recon_name="R", eval_name="T", x_title="x", y_title="y"
        )
        assert (
            len(fig.data) == 1 and fig.data[0].stackgroup is None
        )  # no KL, and the objective is the recon cost
        fig = charts.loss_stack(
            STEP, STEP, None, None, [3], [1.0], recon_name="R", eval_name="T", x_title="x", y_title="y"
        )
        assert [t.name for t in fig.data] == ["R", "T"] and fig.data[1].marker.color == RECON_COLOR

    def test_kl_heatmap_rows_are_dims(self) -> None:
        kl = np.arange(10.0).reshape(5, 2)  # (steps, z)
        fig = charts.kl_heatmap(
            STEP, kl, ["z1", "z2"], x_title="step", y_title="dim", colorbar_title="nats", title="T"
        )
        (h,) = fig.data
        assert h.type == "heatmap" and np.asarray(h.z).shape == (2, 5) and list(h.y) == ["z1", "z2"]
        np.testing.assert_allclose(np.asarray(h.z)[1], kl[:, 1])
        assert h.colorscale[-1][1] == KL_COLOR and h.colorbar.title.text == "nats"
        assert fig.layout.title.text == "T" and fig.layout.yaxis.title.text == "dim"

    def test_elbo_curves_with_beta_axis_and_warmup_band(self) -> None:
        beta = np.linspace(0, 2, 5)
        fig = charts.elbo_curves(
            STEP,
            STEP,
            STEP,
            STEP,
            beta,
            np.array([1, 3]),
            np.array([5.0, 4.0]),
            2,
            recon_name="R",
            kl_name="K",
            objective_name="O",
            eval_name="T",
            beta_name="B",
            warmup_text="W",
            x_title="step",
            y_title="nats",
        )
        assert [t.name for t in fig.data] == ["R", "K", "O", "T", "B"]
        assert fig.data[0].line.color == RECON_COLOR and fig.data[1].line.color == KL_COLOR
        assert (
            fig.data[4].yaxis == "y2"
            and fig.layout.yaxis2.title.text == "B"
            and fig.layout.yaxis2.range == (0, 2.2)
        )
        assert fig.layout.shapes[0].x1 == 2 and fig.layout.annotations[0].text == "W"
        assert fig.layout.xaxis.title.text == "step" and fig.layout.yaxis.title.text == "nats"
        no_band = charts.elbo_curves(
            STEP,
            STEP,
            STEP,
            STEP,
            beta,
            np.array([]),
            np.array([]),
            0,
            recon_name="R",
            kl_name="K",
            objective_name="O",
            eval_name="T",
            beta_name="B",
            warmup_text="W",
            x_title="s",
            y_title="n",
        )
        assert len(no_band.data) == 4 and not no_band.layout.shapes

    def test_kl_bars_and_active_units(self) -> None:
        bars = charts.kl_bars(["z1", "z2"], np.array([0.5, 2.0]), title="T", x_title="dim", y_title="nats")
        assert (
            types(bars) == ["bar"]
            and bars.data[0].marker.color == KL_COLOR
            and list(bars.data[0].y) == [0.5, 2.0]
        )
        assert bars.layout.xaxis.title.text == "dim" and bars.layout.yaxis.title.text == "nats"
        au = charts.active_units(
            [10, 20], [1, 2], 4, title="AU", x_title="step", y_title="dims", limit_text="z = 4"
        )
        assert (
            types(au) == ["scatter"] and au.data[0].line.shape == "hv" and au.layout.yaxis.range == (0, 4.5)
        )
        assert au.layout.shapes[0].y0 == 4 and au.layout.annotations[0].text == "z = 4"


class TestOneImage:
    def test_iwae_curve(self) -> None:
        ks = np.array([1, 10, 100])
        fig = charts.iwae_curve(
            ks,
            np.array([-5.0, -4.5, -4.2]),
            (1, 10),
            [-5.0, -4.0],
            [0.1, 0.05],
            -5.0,
            10,
            -4.5,
            -4.1,
            run_name="run",
            mean_name="mean",
            elbo_text="E",
            k_text="K",
            exact_text="X",
            band_name="band",
            above_name="above",
            x_title="K",
            y_title="nats",
        )
        assert [t.name for t in fig.data] == ["run", "band", "mean", "above", "E", "X", "K"]
        assert fig.data[0].line.color == LOGPX_COLOR
        assert (
            list(fig.data[1].y) == pytest.approx([-4.9, -3.95, -4.05, -5.1]) and fig.data[1].fill == "toself"
        )
        assert fig.data[1].mode == "lines"  # the band's outline, no markers at its corners
        assert list(fig.data[2].x) == [1, 10] and list(fig.data[2].y) == [
            -5.0,
            -4.0,
        ]  # the mean; the band ± SE
        assert list(fig.data[3].x) == [10] and list(fig.data[3].y) == [-4.0], "the mean above exact, marked"
        assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.title.text == "K"
        levels = {
            t.name: t for t in fig.data[4:]
        }  # the reference levels: lines across every K, in the legend
        assert levels["E"].line.color == ELBO_COLOR and list(levels["E"].y) == [-5.0, -5.0]
        assert list(levels["X"].y) == [-4.1, -4.1] and list(levels["K"].y) == [-4.5, -4.5]
        assert all(list(t.x) == [1.0, 100.0] for t in levels.values())
        assert fig.layout.shapes[-1].x0 == 10  # the chosen K
        assert not fig.layout.annotations  # no label written over the curves
        without = charts.iwae_curve(
            ks,
            ks,
            (1,),
            [0],
            [0],
            0.0,
            1,
            0.0,
            None,
            run_name="r",
            mean_name="m",
            elbo_text="E",
            k_text="K",
            x_title="K",
            y_title="n",
        )
        assert [t.name for t in without.data] == [
            "r",
            "± SE",
            "m",
            "E",
            "K",
        ]  # no exact value: nothing marked

    def test_iwae_curve_writes_no_label_inside_its_data(self) -> None:
        """The ELBO page's labels once sat on the curves. Whatever the builder writes as an annotation must lie
        outside the box the data span (x over K, y over every curve and level); the legend names the levels."""
        ks = np.arange(1, 5001)
        iwae = -265 + 3 * (1 - 1 / np.sqrt(ks))
        kc = np.array([1, 10, 100, 1000, 5000])
        fig = charts.iwae_curve(
            ks,
            iwae,
            kc,
            iwae[kc - 1],
            0.3 / np.sqrt(kc),
            -265.5,
            1000,
            float(iwae[999]),
            -262.1,
            run_name="run",
            mean_name="mean",
            elbo_text="ELBO -265.50",
            k_text="log p̂_K at K=1000",
            exact_text="exact log p(x)",
            band_name="band",
            above_name="above",
            x_title="K",
            y_title="nats",
        )
        ys = np.concatenate([np.asarray(t.y, dtype=float) for t in fig.data])
        x_lo, x_hi, y_lo, y_hi = 1, 5000, float(ys.min()), float(ys.max())
        for a in fig.layout.annotations:
            inside_x = a.xref in (None, "x") and x_lo <= a.x <= x_hi
            inside_y = a.yref in (None, "y") and y_lo <= a.y <= y_hi
            assert not (inside_x and inside_y), f"annotation {a.text!r} at ({a.x}, {a.y}) sits on the data"
        assert {"ELBO -265.50", "log p̂_K at K=1000", "exact log p(x)"} <= {t.name for t in fig.data}
        assert fig.layout.legend.yref == "container" and fig.layout.legend.y == 0  # under the axis title

    def test_posterior_line_and_map(self) -> None:
        z = np.linspace(-1, 1, 3)
        line = charts.posterior_line(
            z, z + 2, z + 3, posterior_name="p", q_name="q", x_title="z", y_title="density"
        )
        assert [t.name for t in line.data] == ["p", "q"] and line.data[1].line.color == ELBO_COLOR
        assert line.layout.xaxis.title.text == "z" and line.layout.yaxis.title.text == "density"
        dens = np.arange(6.0).reshape(3, 2)  # (len(z1), len(z2))
        ell = [("1σ", np.zeros(4), np.ones(4), "solid"), ("2σ", np.zeros(4), np.ones(4), "dash")]
        fig = charts.posterior_map(
            z,
            z[:2],
            dens,
            ell,
            [0.1, 0.2],
            (-1, -2),
            (1, 2),
            colorbar_title="p(z|x)",
            mu_name="μ",
            x_title="z1",
            y_title="z2",
        )
        assert types(fig) == ["heatmap", "scatter", "scatter", "scatter"]
        assert np.asarray(fig.data[0].z).shape == (2, 3) and fig.data[0].colorbar.title.text == "p(z|x)"
        assert [t.name for t in fig.data[1:]] == ["1σ", "2σ", "μ"] and fig.data[2].line.dash == "dash"
        assert (
            fig.layout.xaxis.range == (-1, 1)
            and fig.layout.yaxis.range == (-2, 2)
            and fig.layout.yaxis.scaleanchor == "x"
        )


class TestLatentSpace:
    def test_class_scatter_one_trace_per_class_with_row_ids(self) -> None:
        xy = np.arange(12.0).reshape(6, 2)
        labels = np.array([0, 1, 0, 2, 1, 0])
        ids = np.array([0, 1, 2, 3, 4, 5])
        fig = charts.class_scatter(
            xy, ids, labels, ["a", "b", "c"], title="T", axes=("x", "y"), row_text="row"
        )
        assert types(fig) == ["scattergl"] * 3 and [t.name for t in fig.data] == ["a", "b", "c"]
        assert [t.marker.color for t in fig.data] == list(CLASS_COLORS[:3])  # one class, one colour
        assert list(fig.data[0].customdata) == [0, 2, 5] and list(fig.data[0].x) == [0.0, 4.0, 10.0]
        assert fig.data[1].hovertemplate == "b<br>row %{customdata}<extra></extra>"
        assert (
            fig.layout.title.text == "T"
            and fig.layout.xaxis.title.text == "x"
            and fig.layout.yaxis.scaleanchor is None
        )
        ring = [("prior 1σ", np.zeros(3), np.ones(3))]
        fig = charts.class_scatter(
            xy[:2],
            ids[:2],
            labels,
            ["a", "b", "c"],
            title="T",
            axes=("x", "y"),
            row_text="row",
            overlays=ring,
            equal_axes=True,
        )
        assert [t.name for t in fig.data] == ["a", "b", "prior 1σ"] and fig.data[-1].line.color == INK_COLOR
        assert fig.data[-1].hoverinfo == "skip" and fig.layout.yaxis.scaleanchor == "x"

    def test_class_scatter_legend_is_under_the_plot_not_where_a_lasso_starts(self) -> None:
        """The toolbar's lasso button is at the top right; a legend there took the press meant to start a lasso and
        hid a class. The legend runs across the figure's bottom edge, below the x axis's title."""
        xy = np.arange(12.0).reshape(6, 2)
        fig = charts.class_scatter(
            xy,
            np.arange(6),
            np.array([0, 1, 0, 2, 1, 0]),
            ["a", "b", "c"],
            title="T",
            axes=("x", "y"),
            row_text="r",
        )
        leg = fig.layout.legend
        assert (leg.orientation, leg.yref, leg.y, leg.yanchor, leg.x, leg.xanchor) == (
            "h",
            "container",
            0,
            "bottom",
            0,
            "left",
        )

    def test_latent_plane_is_the_codes_themselves_over_the_priors_circles(self) -> None:
        from vae_core.compare import prior_circles

        mu = np.array([[0.5, -1.0], [2.0, 0.1], [-0.3, 0.2]])
        fig = charts.latent_plane(
            mu,
            np.array([4, 7, 9]),
            np.array([0] * 5 + [1] * 5),
            ("a", "b"),
            prior_circles((1.0, 2.0)),
            title="T",
            axes=("μ₁", "μ₂"),
            row_text="row",
            circle_name="{r:g}σ ({mass:.0%})",
        )
        assert [t.name for t in fig.data] == ["a", "b", "1σ (39%)", "2σ (86%)"]
        assert list(fig.data[0].customdata) == [4] and list(fig.data[0].x) == [0.5]  # row 4 is at its μ
        assert list(fig.data[1].customdata) == [7, 9] and list(fig.data[1].y) == [0.1, 0.2]
        assert float(np.hypot(fig.data[3].x, fig.data[3].y).max()) == pytest.approx(2.0)
        assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.xaxis.title.text == "μ₁"

    def test_mu_density_rows_prior_on_top_then_one_row_per_dim(self) -> None:
        centres = np.linspace(-3, 3, 7)
        prior = np.exp(-(centres**2) / 2) / np.sqrt(2 * np.pi)
        dens = np.vstack([prior * 1.1, np.where(centres == 0, 5.0, 0.0)])  # a prior-like dim and a spike at 0
        fig = charts.mu_density_rows(
            centres,
            dens,
            prior,
            ["z1", "z2 (off)"],
            prior_label="N(0,1)",
            title="T",
            x_title="μ_j",
            colorbar_title="density",
            hover_text="d",
        )
        assert types(fig) == ["heatmap"]
        h = fig.data[0]
        assert list(h.y) == ["N(0,1)", "z1", "z2 (off)"] and fig.layout.yaxis.autorange == "reversed"
        np.testing.assert_allclose(np.asarray(h.z)[0], prior)  # the top row is the prior itself
        np.testing.assert_allclose(np.asarray(h.z)[1:], dens)
        assert h.zmin == 0 and h.zmax == pytest.approx(
            2 * prior.max()
        )  # the spike saturates instead of washing out the rest
        assert h.colorscale[-1][1] == MU_COLOR and h.colorbar.title.text == "density"
        assert sorted(sh.x0 for sh in fig.layout.shapes) == [-2.0, -1.0, 1.0, 2.0]
        assert (
            fig.layout.xaxis.title.text == "μ_j"
            and fig.layout.title.text == "T"
            and "d %{z" in h.hovertemplate
        )

    def test_path_norms(self) -> None:
        fig = charts.path_norms(
            [("linear", np.array([1.0, 0.5, 1.0])), ("spherical", np.ones(3))],
            1.4,
            reference_text="√z",
            title="T",
            x_title="step",
            y_title="‖z‖",
        )
        assert [t.name for t in fig.data] == ["linear", "spherical"] and list(fig.data[0].x) == [0, 1, 2]
        assert list(fig.data[0].y) == [1.0, 0.5, 1.0] and fig.layout.shapes[0].y0 == 1.4
        assert fig.layout.yaxis.title.text == "‖z‖"
        assert not charts.path_norms(
            [("linear", [1.0])], None, title="T", x_title="s", y_title="n"
        ).layout.shapes


class TestTheory:
    def test_densities_and_discrete(self) -> None:
        z = np.linspace(-1, 1, 5)
        fig = charts.densities(z, [("q", z, Q_COLOR), ("p", -z, P_COLOR)], x_title="z", y_title="density")
        assert [t.name for t in fig.data] == ["q", "p"] and fig.data[1].line.color == P_COLOR
        assert fig.layout.xaxis.title.text == "z"
        d = charts.discrete(
            ["a", "b"],
            [0.5, 0.5],
            [0.9, 0.1],
            [1.0, np.inf],
            0.69,
            panel_titles=("L", "R"),
            p_name="p",
            q_name="q",
            info_name="−log p",
            entropy_text="H",
            x_title="outcome",
            p_title="prob",
            info_title="nats",
        )
        assert types(d) == ["bar"] * 3 and [t.marker.color for t in d.data] == [P_COLOR, Q_COLOR, P_COLOR]
        assert list(d.data[2].y) == [1.0, None]  # infinite information: no bar
        assert d.layout.yaxis.title.text == "prob" and d.layout.yaxis2.title.text == "nats"

    def test_fit_animation_frames(self) -> None:
        z = np.linspace(-1, 1, 4)
        frames = [("0", z, "step 0"), ("5", z * 2, "step 5")]
        fig = charts.fit_animation(
            z,
            np.ones(4),
            frames,
            2.0,
            posterior_name="p",
            q_name="q",
            play="play",
            pause="pause",
            step_prefix="step ",
            x_title="z",
            y_title="density",
        )
        assert [t.name for t in fig.data] == ["p", "q"] and fig.data[1].line.color == Q_COLOR
        assert [f.name for f in fig.frames] == ["0", "5"] and list(fig.frames[1].data[0].y) == list(z * 2)
        assert fig.layout.title.text == "step 0" and fig.layout.yaxis.range == (0, 2.0)
        # each frame carries its title, and play and the slider redraw, so that the title follows the frame
        assert [f.layout.title.text for f in fig.frames] == ["step 0", "step 5"]
        play = fig.layout.updatemenus[0].buttons[0].args[1]
        assert play["frame"]["redraw"] is True
        assert all(step.args[1]["frame"]["redraw"] is True for step in fig.layout.sliders[0].steps)
        assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["play", "pause"]

    def test_sgd_curve_landscape_and_gradients(self) -> None:
        c = charts.sgd_curve(
            np.array([1.0, 2.0, 3.0]),
            np.array([2.5, 2.9]),
            3.5,
            elbo_name="E",
            estimate_name="e",
            log_px_text="log p(x)",
            x_title="step",
            y_title="nats",
        )
        assert [t.name for t in c.data] == ["E", "e"] and list(c.data[1].x) == [1, 2]
        assert c.layout.shapes[0].y0 == 3.5 and c.layout.xaxis.title.text == "step"
        land = charts.elbo_landscape(
            np.arange(3),
            np.arange(2),
            np.zeros((2, 3)),
            [0, 1],
            [0, 0],
            path_name="SGD",
            colorbar_title="ELBO",
            title="T",
            x_title="μ",
            y_title="log σ",
        )
        assert types(land) == ["contour", "scatter"] and land.layout.yaxis.title.text == "log σ"
        g = charts.gradient_histograms(
            np.zeros(5),
            np.ones(5),
            1.0,
            names=("rep", "score"),
            exact_text="exact",
            x_title="gradient",
            y_title="count",
        )
        assert types(g) == ["histogram", "histogram"] and [t.marker.color for t in g.data] == [
            Q_COLOR,
            P_COLOR,
        ]
        assert (
            len(g.layout.shapes) == 2
            and g.layout.xaxis2.title.text == "gradient"
            and g.layout.yaxis.title.text == "count"
        )


@pytest.mark.parametrize(
    "builder",
    [
        b
        for b in dir(charts)
        if not b.startswith("_")
        and callable(getattr(charts, b))
        and getattr(getattr(charts, b), "__module__", "") == "lab_pages.charts"
    ],
)
def test_every_builder_is_tested_here(builder: str) -> None:
    assert builder in Path(__file__).read_text(encoding="utf-8").replace("test_every_builder", "")


class TestDerivation:
    def test_family_fits_draws_the_posterior_and_each_family_in_its_colour(self) -> None:
        from lab_pages.style import FAMILY_COLORS

        z = np.linspace(-4, 4, 9)
        fits = [("gaussian", "G", z * 0 + 0.1), ("mixture", "M", z * 0 + 0.2)]
        fig = charts.family_fits(
            z, z * 0 + 0.3, fits, posterior_name="P", x_title="z (latent units)", y_title="density"
        )
        assert types(fig) == ["scatter"] * 3 and [t.name for t in fig.data] == ["P", "G", "M"]
        assert fig.data[0].line.color == P_COLOR
        assert (fig.data[1].line.color, fig.data[2].line.color) == (
            FAMILY_COLORS["gaussian"],
            FAMILY_COLORS["mixture"],
        )
        np.testing.assert_allclose(fig.data[2].y, 0.2)
        assert fig.layout.xaxis.title.text == "z (latent units)" and fig.layout.yaxis.title.text == "density"


class TestPitfalls:
    def test_pair_bars_group_the_correct_and_the_mistaken_run_in_their_colours(self) -> None:
        from lab_pages.style import CORRECT_COLOR, MISTAKEN_COLOR

        fig = charts.pair_bars(
            ["z1", "z2"],
            [1.0, 2.0],
            [0.0, 0.0],
            names=("ok", "bad"),
            title="T",
            x_title="dim",
            y_title="KL (nats)",
            reference=1.0,
            reference_text="ref",
        )
        assert types(fig) == ["bar", "bar"] and [t.name for t in fig.data] == ["ok", "bad"]
        assert [t.marker.color for t in fig.data] == [
            CORRECT_COLOR,
            MISTAKEN_COLOR,
        ] and fig.layout.barmode == "group"
        assert list(fig.data[0].x) == ["z1", "z2"] and list(fig.data[1].y) == [0.0, 0.0]
        assert fig.layout.shapes[0].y0 == 1.0 and fig.layout.annotations[0].text == "ref"
        assert (
            fig.layout.title.text == "T"
            and fig.layout.yaxis.title.text == "KL (nats)"
            and fig.layout.yaxis.type == "linear"
        )
        log = charts.pair_bars(
            ["a"], [1.0], [1e5], names=("ok", "bad"), title="", x_title="x", y_title="y", log_y=True
        )
        assert log.layout.yaxis.type == "log" and not log.layout.shapes

    def test_pair_curves_draw_each_run_on_its_own_steps(self) -> None:
        from lab_pages.style import CORRECT_COLOR, MISTAKEN_COLOR

        fig = charts.pair_curves(
            [1, 2, 3],
            [3.0, 2.0, 1.0],
            [1, 2],
            [0.5, None],
            names=("ok", "bad"),
            title="T",
            x_title="step",
            y_title="loss (nats)",
        )
        assert types(fig) == ["scatter", "scatter"] and [t.line.color for t in fig.data] == [
            CORRECT_COLOR,
            MISTAKEN_COLOR,
        ]
        assert list(fig.data[1].x) == [1, 2] and list(fig.data[1].y) == [0.5, None]
        assert fig.layout.xaxis.title.text == "step" and fig.layout.yaxis.title.text == "loss (nats)"

    def test_likelihood_gaps_show_the_d_log_2_floor_above_bce(self) -> None:
        bce, cb, binar = [-20.0, -30.0], [60.0, 50.0], [-15.0, -25.0]
        fig = charts.likelihood_gaps(
            bce, cb, binar, 44.0, names=("B", "CB", "bin", "floor"), x_title="image", y_title="nats"
        )
        assert [t.name for t in fig.data] == ["B", "CB", "bin", "floor"] and list(fig.data[0].x) == [0, 1]
        np.testing.assert_allclose(fig.data[3].y, [24.0, 14.0])
        assert fig.data[3].line.dash == "dot" and fig.layout.xaxis.title.text == "image"


def test_with_marker_adds_one_star_on_top() -> None:
    xy = np.array([[0.0, 1.0], [2.0, 3.0]])
    fig = charts.class_scatter(
        xy, np.array([0, 1]), np.array([0, 1]), ("a", "b"), title="t", axes=("x", "y"), row_text="row"
    )
    n = len(fig.data)
    out = charts.with_marker(fig, 1.5, -2.0, name="your image")
    assert out is fig and len(fig.data) == n + 1
    star = fig.data[-1]
    assert (
        star.name == "your image"
        and star.marker.symbol == "star"
        and list(star.x) == [1.5]
        and list(star.y) == [-2.0]
    )


class TestPairBuilders:
    def test_pair_codes_is_a_class_scatter_at_half_width_height(self) -> None:
        xy = np.array([[0.0, 1.0], [2.0, 3.0]])
        fig = charts.pair_codes(
            xy, np.array([0, 1]), np.array([0, 1]), ("a", "b"), title="t", axes=("x", "y"), row_text="row"
        )
        assert [t.name for t in fig.data] == ["a", "b"] and fig.layout.height == charts.PAIR_HEIGHT
        assert fig.layout.yaxis.scaleanchor is None  # a projection's axes have no common unit


class TestIssue24:
    """The charts of issue 24: information, likelihood, the ELBO surgery, a KL hole, the first variation, PCA."""

    def test_information_curve_is_log_scaled_with_its_points(self) -> None:
        p = np.logspace(-3, 0, 5)
        fig = charts.information_curve(
            p, -np.log(p), [("A", 0.5, 0.69), ("B", 0.25, 1.39)], curve_name="I", x_title="p", y_title="nats"
        )
        assert types(fig) == ["scatter"] * 3 and fig.layout.xaxis.type == "log"
        assert fig.data[0].line.color == P_COLOR and list(fig.data[2].x) == [0.25]
        assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("p", "nats")

    def test_likelihood_probability_marks_the_observed_k_and_theta(self) -> None:
        ks = np.arange(4)
        fig = charts.likelihood_probability(
            ks,
            np.full(4, 0.25),
            np.linspace(0, 1, 5),
            np.linspace(0, 1, 5),
            2,
            0.5,
            panel_titles=("P", "L"),
            pmf_name="p",
            likelihood_name="L",
            k_title="k",
            theta_title="θ",
            pmf_title="probability",
            likelihood_title="likelihood",
        )
        assert types(fig) == ["bar", "scatter"]
        assert list(fig.data[0].marker.color) == [P_COLOR, P_COLOR, Q_COLOR, P_COLOR]
        assert fig.layout.xaxis2.title.text == "θ" and fig.layout.yaxis.title.text == "probability"
        assert fig.layout.shapes[0].x0 == 0.5

    def test_elbo_surgery_stacks_the_two_parts_in_the_kl_colour(self) -> None:
        fig = charts.elbo_surgery(
            10.0,
            7.0,
            3.0,
            0.2,
            9.2,
            names=("avg", "I", "KL agg"),
            categories=("left", "right"),
            ceiling_text="log N",
            y_title="nats per image",
        )
        assert types(fig) == ["bar"] * 3 and fig.layout.barmode == "stack"
        assert [t.marker.color for t in fig.data] == [KL_COLOR] * 3
        assert list(fig.data[1].x) == list(fig.data[2].x) == ["right"] and fig.data[1].error_y.array == (0.2,)
        assert fig.layout.shapes[0].y0 == 9.2 and fig.layout.yaxis.title.text == "nats per image"

    def test_kl_hole_map_draws_the_ratio_the_disc_and_the_hole(self) -> None:
        axis = np.linspace(-2, 2, 5)
        grid = np.zeros((5, 5))
        grid[1, 3] = -30.0
        fig = charts.kl_hole_map(
            axis,
            grid,
            (-1.0, 1.0),
            2.0,
            colorbar_title="log q/p",
            hole_name="hole",
            disc_name="disc",
            x_title="z₁ (latent units)",
            y_title="z₂ (latent units)",
        )
        assert types(fig) == ["heatmap", "scatter", "scatter"]
        heat = np.asarray(fig.data[0].z)
        assert heat[3, 1] == -10.0 and heat.min() == -10.0  # transposed (rows are z₂), clipped to ±10
        assert list(fig.data[2].x) == [-1.0] and fig.layout.xaxis.title.text == "z₁ (latent units)"

    def test_variation_quotients_one_line_and_one_level_per_direction(self) -> None:
        eps = np.array([0.1, 0.01, 0.001])
        fig = charts.variation_quotients(
            eps,
            [("μ", eps * 0.5, 0.0), ("posterior", np.array([1.0, 1.5, 1.8]), 2.5)],
            x_title="ε",
            y_title="nats per unit ε",
        )
        assert types(fig) == ["scatter", "scatter"] and fig.layout.xaxis.type == "log"
        assert [s.y0 for s in fig.layout.shapes] == [0.0, 2.5]
        assert fig.data[0].line.color == fig.layout.shapes[0].line.color

    def test_principal_angles_bars_and_limit(self) -> None:
        fig = charts.principal_angles(
            [3.0, 1.0], 5.0, limit_text="5°", title="angles", x_title="angle", y_title="degrees"
        )
        assert types(fig) == ["bar"] and list(fig.data[0].x) == ["1", "2"]
        assert fig.layout.shapes[0].y0 == 5.0 and fig.layout.yaxis.title.text == "degrees"


# ------------------------------------------------------------------ the toolbar's band, for every builder
Z = np.linspace(-1.0, 1.0, 5)
IDS, LABELS, XY = np.arange(4), np.array([0, 1, 0, 1]), np.arange(8.0).reshape(4, 2)
SAMPLES = {  # one small figure per builder, with a title wherever the builder takes one
    "loss_stack": lambda: charts.loss_stack(
        STEP,
        STEP,
        STEP,
        STEP,
        [1],
        [2.0],
        recon_name="R",
        kl_name="K",
        objective_name="O",
        eval_name="T",
        x_title="x",
        y_title="y",
    ),
    "kl_heatmap": lambda: charts.kl_heatmap(
        STEP, np.ones((5, 2)), ["z1", "z2"], x_title="x", y_title="y", colorbar_title="c", title="T"
    ),
    "elbo_curves": lambda: charts.elbo_curves(
        STEP,
        STEP,
        STEP,
        STEP,
        STEP / 4,
        [1],
        [2.0],
        2,
        recon_name="R",
        kl_name="K",
        objective_name="O",
        eval_name="T",
        beta_name="β",
        warmup_text="W",
        x_title="x",
        y_title="y",
    ),
    "kl_bars": lambda: charts.kl_bars(["z1"], np.ones(1), title="T", x_title="x", y_title="y"),
    "active_units": lambda: charts.active_units(
        [1, 2], [1, 2], 2, title="T", x_title="x", y_title="y", limit_text="L"
    ),
    "iwae_curve": lambda: charts.iwae_curve(
        np.array([1, 10]),
        [-5.0, -4.0],
        (1, 10),
        [-5.0, -4.0],
        [0.1, 0.1],
        -6.0,
        10,
        -4.0,
        -3.9,
        run_name="r",
        mean_name="m",
        elbo_text="E",
        k_text="K",
        exact_text="X",
        x_title="x",
        y_title="y",
    ),
    "posterior_line": lambda: charts.posterior_line(
        Z, Z, Z, posterior_name="p", q_name="q", x_title="x", y_title="y"
    ),
    "posterior_map": lambda: charts.posterior_map(
        Z,
        Z,
        np.ones((5, 5)),
        [],
        [0.0, 0.0],
        (-1, -1),
        (1, 1),
        colorbar_title="c",
        mu_name="μ",
        x_title="x",
        y_title="y",
    ),
    "class_scatter": lambda: charts.class_scatter(
        XY, IDS, LABELS, ("a", "b"), title="T", axes=("x", "y"), row_text="row"
    ),
    "latent_plane": lambda: charts.latent_plane(
        XY,
        IDS,
        LABELS,
        ("a", "b"),
        [(1.0, 0.39, Z, Z)],
        title="T",
        axes=("x", "y"),
        row_text="row",
        circle_name="{r}",
    ),
    "with_marker": lambda: charts.with_marker(go.Figure(layout=dict(title="T")), 0.0, 0.0, name="★"),
    "mu_density_rows": lambda: charts.mu_density_rows(
        Z, np.ones((2, 5)), Z, ["z1", "z2"], prior_label="p", title="T", x_title="x", colorbar_title="c"
    ),
    "pair_codes": lambda: charts.pair_codes(
        XY, IDS, LABELS, ("a", "b"), title="T", axes=("x", "y"), row_text="r"
    ),
    "path_norms": lambda: charts.path_norms(
        [("l", Z)], 1.0, reference_text="r", title="T", x_title="x", y_title="y"
    ),
    "densities": lambda: charts.densities(Z, [("q", Z, Q_COLOR)], x_title="x", y_title="y"),
    "discrete": lambda: charts.discrete(
        ["a", "b"],
        [0.5, 0.5],
        [0.9, 0.1],
        [1.0, 1.0],
        0.69,
        panel_titles=("L", "R"),
        p_name="p",
        q_name="q",
        info_name="i",
        entropy_text="H",
        x_title="x",
        p_title="p",
        info_title="i",
    ),
    "fit_animation": lambda: charts.fit_animation(
        Z,
        Z,
        [("0", Z, "step 0"), ("1", Z, "step 1")],
        2.0,
        posterior_name="p",
        q_name="q",
        play="▶",
        pause="⏸",
        step_prefix="s",
        x_title="x",
        y_title="y",
    ),
    "sgd_curve": lambda: charts.sgd_curve(
        Z, Z[1:], 1.0, elbo_name="E", estimate_name="e", log_px_text="L", x_title="x", y_title="y"
    ),
    "elbo_landscape": lambda: charts.elbo_landscape(
        Z, Z, np.ones((5, 5)), Z, Z, path_name="p", colorbar_title="c", title="T", x_title="x", y_title="y"
    ),
    "gradient_histograms": lambda: charts.gradient_histograms(
        Z, Z, 0.0, names=("a", "b"), exact_text="e", x_title="x", y_title="y"
    ),
    "family_fits": lambda: charts.family_fits(
        Z, Z, [("gaussian", "G", Z)], posterior_name="p", x_title="x", y_title="y"
    ),
    "pair_bars": lambda: charts.pair_bars(
        ["a"],
        [1.0],
        [2.0],
        names=("ok", "bad"),
        title="T",
        x_title="x",
        y_title="y",
        reference=1.0,
        reference_text="r",
    ),
    "pair_curves": lambda: charts.pair_curves(
        [1, 2], [1.0, 2.0], [1, 2], [2.0, 3.0], names=("ok", "bad"), title="T", x_title="x", y_title="y"
    ),
    "likelihood_gaps": lambda: charts.likelihood_gaps(
        [1.0], [2.0], [3.0], 4.0, names=("a", "b", "c", "d"), x_title="x", y_title="y"
    ),
    "information_curve": lambda: charts.information_curve(
        Z + 2, Z, [("A", 0.5, 0.7)], curve_name="I", x_title="x", y_title="y"
    ),
    "likelihood_probability": lambda: charts.likelihood_probability(
        np.arange(3),
        np.ones(3) / 3,
        Z,
        Z,
        1,
        0.5,
        panel_titles=("P", "L"),
        pmf_name="p",
        likelihood_name="L",
        k_title="k",
        theta_title="θ",
        pmf_title="p",
        likelihood_title="L",
    ),
    "elbo_surgery": lambda: charts.elbo_surgery(
        10.0, 7.0, 3.0, 0.2, 9.2, names=("a", "b", "c"), categories=("l", "r"), ceiling_text="c", y_title="y"
    ),
    "kl_hole_map": lambda: charts.kl_hole_map(
        Z,
        np.zeros((5, 5)),
        (0.0, 0.0),
        1.0,
        colorbar_title="c",
        hole_name="h",
        disc_name="d",
        x_title="x",
        y_title="y",
    ),
    "variation_quotients": lambda: charts.variation_quotients(
        np.array([0.1, 0.01]), [("μ", np.ones(2), 1.0)], x_title="x", y_title="y"
    ),
    "principal_angles": lambda: charts.principal_angles(
        [1.0, 2.0], 5.0, limit_text="5°", title="T", x_title="x", y_title="y"
    ),
}
BUILDERS = [
    b
    for b in dir(charts)
    if not b.startswith("_")
    and callable(getattr(charts, b))
    and getattr(getattr(charts, b), "__module__", "") == "lab_pages.charts"
]


def toolbar_problems(fig: go.Figure) -> list[str]:
    """What of ``fig`` Plotly's toolbar would cover: the toolbar takes the top TOOLBAR_BAND px of the figure, so
    every title hangs below that band (container coordinates, from the top edge) and the top margin holds the band,
    the title's lines, a legend drawn above the plot, subplot titles, and a gap."""
    lay, out = fig.layout, []
    top = lay.margin.t if lay.margin.t is not None else 100  # Plotly's default top margin
    below = charts.TOOLBAR_BAND + charts.TOP_GAP
    titles = [("title", lay.title)] + [
        (f"frame {f.name} title", f.layout.title) for f in fig.frames if f.layout
    ]
    for what, title in titles:
        if not title.text:
            continue
        if (title.yref, title.y, title.yanchor) != ("container", 1, "top"):
            out.append(
                f"{what} is not hung from the figure's top edge: {title.yref}, {title.y}, {title.yanchor}"
            )
        if (title.pad.t or 0) < charts.TOOLBAR_BAND:
            out.append(f"{what} starts {title.pad.t or 0} px from the top, inside the toolbar's band")
    if lay.title.text:
        below += charts.TITLE_LINE * (lay.title.text.count("<br>") + 1)
    if lay.legend.y is not None and lay.legend.y >= 1 and lay.legend.yref in (None, "paper"):
        below += charts.LEGEND_ROW
    if any(a.yref == "paper" and a.y is not None and a.y >= 1 for a in lay.annotations):
        below += charts.TITLE_LINE  # subplot titles
    if top < below:
        out.append(
            f"top margin {top} px < the {below} px the toolbar's band and what sits above the plot need"
        )
    return out


def test_every_builder_has_a_sample_for_the_toolbar_check() -> None:
    assert sorted(SAMPLES) == sorted(BUILDERS)


@pytest.mark.parametrize("builder", sorted(SAMPLES))
def test_no_title_or_legend_sits_under_the_toolbar(builder: str) -> None:
    fig = SAMPLES[builder]()
    assert not toolbar_problems(fig), toolbar_problems(fig)
    assert not toolbar_problems(charts._clear_of_toolbar(fig)), "applying it twice changes nothing"


def test_the_toolbar_check_can_fail() -> None:
    """A plain Plotly figure with a title (Plotly's defaults) and one with a title but a short margin both fail."""
    assert toolbar_problems(go.Figure(layout=dict(title="T")))
    assert toolbar_problems(
        go.Figure(
            layout=dict(
                title=dict(text="T", yref="container", y=1, yanchor="top", pad=dict(t=40)), margin=dict(t=30)
            )
        )
    )
    assert not toolbar_problems(charts._clear_of_toolbar(go.Figure(layout=dict(title="T<br>two lines"))))
    assert charts._clear_of_toolbar(go.Figure(layout=dict(title="T<br>two"))).layout.margin.t == (
        charts.TOOLBAR_BAND + 2 * charts.TITLE_LINE + charts.TOP_GAP
    )
