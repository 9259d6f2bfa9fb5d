"""The Derivation page through AppTest: q on sliders, the SGD fit, both derivations line by line, Jensen, families."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, plotly_figures
from vae_core import derivation as dv
from vae_core import theory as th

PAGE = str(ROOT / "lab_pages" / "derivation.py")


@pytest.fixture(scope="module")
def at() -> AppTest:
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def metric(app: AppTest, prefix: str) -> str:
    vals = [m.value for m in app.metric if m.label.startswith(prefix)]
    assert vals, f"no metric starting {prefix!r} in {[m.label for m in app.metric]}"
    return vals[0]


def step_errors(app: AppTest) -> list[float]:
    return [float(m.value) for m in app.metric if m.label.startswith("largest step error")]


def test_variational_inference_in_one_picture(at) -> None:
    """Moving q changes the ELBO, and ELBO + KL stays log p(x) (the Theory page's old section 3)."""
    e0 = metric(at, "ELBO")
    at.slider(key="derivation_q_mu").set_value(1.6).run()
    assert not at.exception
    assert metric(at, "ELBO") != e0
    assert float(metric(at, "ELBO")) + float(metric(at, "KL(q ‖")) == pytest.approx(
        th.VITarget().log_px(), abs=2e-4
    )


def test_the_fit_button_moves_the_sliders(at) -> None:
    at.slider(key="derivation_q_mu").set_value(-0.5).run()
    at.slider(key="derivation_fit_steps").set_value(50).run()
    at.button(key="derivation_fit").click().run()
    assert not at.exception
    assert any("Fitted in 50 steps" in s.value for s in at.success)
    assert at.slider(key="derivation_q_mu").value != -0.5


@pytest.mark.parametrize("mu,sigma", [(-0.5, 1.0), (1.6, 0.3), (-2.4, 2.5), (0.0, 0.05)])
def test_both_derivations_hold_line_by_line_as_q_moves(at, mu: float, sigma: float) -> None:
    at.slider(key="derivation_q_mu").set_value(mu).run()
    at.slider(key="derivation_q_sigma").set_value(sigma).run()
    assert not at.exception
    errs = step_errors(at)
    assert len(errs) == 2 and max(errs) <= 1e-6
    target = th.VITarget()
    lines = dv.derivation_from_kl(target, mu, sigma) + dv.derivation_from_evidence(target, mu, sigma)
    shown = " ".join(m.value for m in at.markdown)
    for ln in lines:  # every line's value is on the page, for the q on the sliders
        assert f"`{ln.value:.6f}`" in shown
    latex = " ".join(x.value for x in at.latex)
    assert r"\mathrm{KL}(q\,\|\,p(z\mid x))" in latex and r"\int q(z)\,\log p(x)\,dz" in latex
    captions = " ".join(c.value for c in at.caption)
    assert "Bayes' rule" in captions and "≥ enters here" in captions and "∫q = 1" in captions
    j = dv.jensen_view(target, mu, sigma)
    assert metric(at, "Jensen's gap") == f"{j.gap:.6f}"
    assert abs(float(metric(at, "Jensen's gap")) - float(metric(at, "KL(q‖p(z|x)), computed"))) <= 2e-6


def test_why_a_gaussian_table_and_chart(at) -> None:
    t = at.table[0].value
    rows = {f: float(g) for f, g in zip(t["q family"], t["gap KL(q‖p(z|x)) (nats)"])}
    assert set(rows) == {"Gaussian", "Laplace", "mixture of two Gaussians"}
    assert rows["mixture of two Gaussians"] < rows["Gaussian"] and rows["mixture of two Gaussians"] < 1e-3
    elbos = {f: float(e) for f, e in zip(t["q family"], t["best ELBO (nats)"])}
    assert elbos["mixture of two Gaussians"] > elbos["Gaussian"]
    names = {tr.get("name") for fig in plotly_figures(at).values() for tr in fig["data"]}
    assert {
        "p(z|x), true posterior",
        "best Gaussian",
        "best Laplace",
        "best mixture of two Gaussians",
    } <= names


def test_the_page_renders_in_chinese() -> None:
    """?lang=zh: every section, the fit and its animation draw without an exception."""
    app = AppTest.from_file(PAGE, default_timeout=120)
    app.query_params["lang"] = "zh"
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.session_state["lang"] == "zh_CN" and len(app.header) == 6 and len(app.metric) == 8
    app.slider(key="derivation_fit_steps").set_value(20).run()
    app.button(key="derivation_fit").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert len(app.success) == 3  # two derivations hold, and the fit reports
