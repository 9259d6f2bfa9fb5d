"""Issue 24's new pieces on their pages, through AppTest, in English and in Chinese: each is drawn with its
numbers and without an exception. The numbers themselves are tested where they are computed (test_theory_basics,
test_aggregate_posterior, test_first_variation, test_linear_ae, test_laplace)."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, plotly_figures, run_page, run_page_in_chinese, shipped_fixture
from vae_core import compare as cmp
from vae_core import derivation as dv
from vae_core import linear_ae as lae
from vae_core import theory as th
from vae_core.elbo import equivalent_beta
from vae_core.models import ModelConfig
from vae_core.train import cli_command, configs_from_settings

THEORY = str(ROOT / "lab_pages" / "theory.py")
ELBO_TRAINING = str(ROOT / "lab_pages" / "elbo_training.py")
MANIFOLD = str(ROOT / "lab_pages" / "manifold.py")
DERIVATION = str(ROOT / "lab_pages" / "derivation.py")
COMPARE = str(ROOT / "lab_pages" / "compare.py")
TRAIN = str(ROOT / "lab_pages" / "train.py")

vae2 = shipped_fixture("digits_vae_z2")


def latex(at: AppTest) -> str:
    return " ".join(x.value for x in at.latex)


def metric(at: AppTest, label: str) -> str:
    vals = [m.value for m in at.metric if m.label == label]
    assert vals, f"no metric {label!r} in {[m.label for m in at.metric]}"
    return vals[0]


def theory_page(zh: bool = False) -> AppTest:
    at = AppTest.from_file(THEORY, default_timeout=60)
    if zh:
        at.query_params["lang"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


class TestTheory:
    def test_information_conditional_entropy_likelihood_and_the_kl_steps(self) -> None:
        at = theory_page()
        figs = plotly_figures(at)
        assert {"theory_fig_info_adds", "theory_fig_likelihood"} <= set(figs)
        # information adds (the defaults P(A) = 0.5, P(B) = 0.25)
        r = th.information_adds(0.5, 0.25, 2.0)  # the page opens in bits
        assert f"{r.info_p1:.3f}" in latex(at) and f"{r.info_sum:.3f}" in latex(at)
        # conditional entropy of the weather p = (4, 2, 1, 1) given a forecast wrong with probability 0.2
        ce = th.conditional_entropy(th.noisy_report_joint(np.array([4, 2, 1, 1]), 0.2), 2.0)
        assert metric(at, "H(X|Y) (bits)") == f"{ce.h_x_given_y:.3f}"
        assert metric(at, "I(X; Y) (bits)") == f"{ce.mutual_info:.3f}"
        at.slider(key="theory_cond_e").set_value(0.75).run()  # a uniform-noise forecast says nothing
        assert not at.exception and metric(at, "I(X; Y) (bits)") == "0.000"
        # likelihood vs probability: the sum is 1, the integral 1/(n+1)
        assert metric(at, "sum over k of p(k | θ)") == "1.0000"
        assert metric(at, "integral of L(θ) over θ") == metric(at, "1/(n + 1)") == f"{1 / 11:.4f}"
        at.slider(key="theory_lik_n").set_value(3).run()  # k = 7 > n: clamped to n
        assert not at.exception and metric(at, "1/(n + 1)") == "0.2500"
        # the Gaussian KL line by line, for the default q = N(1, 0.5²)
        s = th.gaussian_kl_steps(1.0, 0.5)
        for _key, value in s.lines():
            assert f"{value:.4f}" in latex(at)
        assert f"{s.e_log_q:.4f}" in latex(at) and f"{s.e_log_p:.4f}" in latex(at)

    def test_in_chinese(self) -> None:
        at = theory_page(zh=True)
        assert {"theory_fig_info_adds", "theory_fig_likelihood"} <= set(plotly_figures(at))
        text = " ".join(m.value for m in at.markdown)
        assert "条件熵" in text and "似然" in text
        at.slider(key="theory_info_p1").set_value(0.1).run()
        assert not at.exception


class TestElboSurgery:
    def test_the_average_kl_split_with_its_standard_error(self, vae2) -> None:
        at = run_page(ELBO_TRAINING, vae2)
        assert "elbo_surgery_chart" in plotly_figures(at)
        from lab_pages.datasets import get_dataset  # noqa: PLC0415

        r = cmp.elbo_surgery(vae2.model, get_dataset("digits").x_test, n_samples=2000, seed=0)
        assert f"{r.mutual_info:.2f} \\pm {r.se:.2f}" in latex(at) and f"{r.avg_kl:.2f}" in latex(at)
        assert metric(at, "I(x; z) (nats per image)") == f"{r.mutual_info:.2f}"
        assert r.mutual_info <= r.log_n

    def test_in_chinese(self, vae2) -> None:
        at = run_page_in_chinese(ELBO_TRAINING, vae2)
        assert "elbo_surgery_chart" in plotly_figures(at)
        assert any("互信息" in h.value for h in at.markdown)


class TestKLHole:
    def test_the_hole_is_drawn_with_its_ratio_and_image(self, vae2) -> None:
        at = run_page(MANIFOLD, vae2)
        fig = plotly_figures(at)["manifold_hole_chart"]
        from lab_pages.datasets import get_dataset  # noqa: PLC0415

        hole = cmp.kl_hole(vae2.model, get_dataset("digits").x_test, radius=2.0, n=81)
        assert metric(at, "q(z) / p(z)") == f"{hole.ratio:.2g}" and hole.ratio < 1
        marker = fig["data"][2]
        assert marker["x"] == [pytest.approx(hole.z[0])] and marker["y"] == [pytest.approx(hole.z[1])]
        assert any("decoded at the hole" in c for im in at.get("image") for c in im.captions)
        at.button(key="manifold_to_hole").click().run()  # the sliders go to the hole
        assert not at.exception
        assert at.session_state["explorer_dim_0"] == pytest.approx(hole.z[0], abs=1e-6)

    def test_in_chinese(self, vae2) -> None:
        at = run_page_in_chinese(MANIFOLD, vae2)
        assert "manifold_hole_chart" in plotly_figures(at)


class TestFirstVariation:
    def test_zero_in_the_family_positive_towards_the_posterior(self) -> None:
        at = run_page(DERIVATION, timeout=180)
        figs = plotly_figures(at)
        assert {"derivation_fig_variation_best", "derivation_fig_variation_off"} <= set(figs)
        v = dv.variation_study(th.VITarget())
        tables = [t.value for t in at.table]
        best = next(t for t in tables if "first variation (nats per unit ε)" in t.columns)
        col = best["first variation (nats per unit ε)"].tolist()
        assert col == [f"{f.derivative:+.2e}" for f in v.at_best]
        assert all(abs(f.derivative) < 1e-3 for f in v.at_best[:-1]) and v.at_best[-1].derivative > 0
        assert best["ε = 0.1"].tolist()[0] == f"{v.at_best[0].quotient[0]:+.4f}"

    def test_in_chinese(self) -> None:
        at = AppTest.from_file(DERIVATION, default_timeout=180)
        at.query_params["lang"] = "zh"
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert "derivation_fig_variation_best" in plotly_figures(at)
        assert any("泛函" in m.value for m in at.markdown)


class TestLinearAEvsPCA:
    def test_angles_and_errors_for_k(self, vae2, digits) -> None:
        at = run_page(COMPARE, vae2, timeout=180)
        assert "compare_pca_angles" in plotly_figures(at)
        r = lae.linear_ae_vs_pca(digits.x_train, digits.x_test, k=4, seed=0)
        assert metric(at, "largest angle (degrees)") == f"{r.max_angle_deg:.2f}" and r.max_angle_deg <= 5.0
        assert metric(at, "MSE, PCA") == f"{r.pca_mse:.5f}"
        at.slider(key="compare_pca_k").set_value(2).run()
        assert not at.exception
        assert float(metric(at, "largest angle (degrees)")) <= 5.0

    def test_in_chinese(self, vae2) -> None:
        at = run_page_in_chinese(COMPARE, vae2, timeout=180)
        assert "compare_pca_angles" in plotly_figures(at)


class TestLikelihoodScale:
    def test_the_scale_reaches_the_model_config_and_the_cli(self) -> None:
        mc, tc, errors = configs_from_settings(
            "digits",
            (1, 8, 8),
            "vae",
            2,
            "64",
            1.0,
            0,
            0.0,
            1e-3,
            32,
            1,
            0,
            likelihood="laplace",
            obs_std=0.25,
        )
        assert not errors and isinstance(mc, ModelConfig) and mc.obs_std == 0.25
        assert "--likelihood laplace --obs-std 0.25" in cli_command(mc, tc)

    @pytest.mark.parametrize("likelihood,symbol", [("gaussian", "σ"), ("laplace", "b")])
    def test_train_page_shows_the_scale_and_its_beta(self, likelihood: str, symbol: str) -> None:
        at = AppTest.from_file(TRAIN, default_timeout=120)
        at.run()
        assert not at.exception
        assert not [n for n in at.number_input if n.key == "train_obs_std"]  # the Bernoulli has no scale
        at.selectbox(key="train_likelihood").set_value(likelihood).run()
        at.number_input(key="train_obs_std").set_value(0.5).run()
        assert not at.exception
        beta = equivalent_beta(likelihood, 0.5, 1.0)
        assert any(f"{symbol} = 0.5" in c.value and f"{beta:.3g}" in c.value for c in at.caption)

    def test_in_chinese(self) -> None:
        at = AppTest.from_file(TRAIN, default_timeout=120)
        at.query_params["lang"] = "zh"
        at.run()
        at.selectbox(key="train_likelihood").set_value("laplace").run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("β" in c.value and "b = 0.1" in c.value for c in at.caption)
