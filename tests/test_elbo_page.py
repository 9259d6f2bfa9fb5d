"""The ELBO page through AppTest: AE refused with a reason, z=2 posterior view, picking, K, IWAE, live curves."""

from __future__ import annotations

import copy
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from lab_pages import i18n
from lab_pages.model_store import LoadedModel, load_shipped
from tests.conftest import APP, ROOT, digits_config, plotly_figures, run_page
from tests.conftest import plotly_array as arr
from vae_core import identity as idn
from vae_core.evaluate import ACTIVE_THRESHOLD, LOW_KL_THRESHOLD, dataset_metrics, low_kl_units
from vae_core.models import ModelConfig, build_model
from vae_core.train import History, Snapshot, TrainConfig, Trainer

PAGE = str(ROOT / "lab_pages" / "elbo.py")
TRAINING = str(
    ROOT / "lab_pages" / "elbo_training.py"
)  # sections 1 and 5 of the old page: curves and the test set


# one intra-op thread per trainer thread: see tests/conftest.py::one_torch_thread
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def vae2() -> LoadedModel:
    return load_shipped("digits_vae_z2")


def page(lm: LoadedModel | None = None, **state) -> AppTest:
    return run_page(PAGE, lm, **state)


def training_page(lm: LoadedModel | None = None, **state) -> AppTest:
    return run_page(TRAINING, lm, **state)


def metric(at: AppTest, label: str) -> str:
    vals = [m.value for m in at.metric if m.label == label]
    assert vals, f"no metric {label!r} in {[m.label for m in at.metric]}"
    return vals[0]


def chart_specs(at: AppTest) -> list[dict]:
    return list(plotly_figures(at).values())


@pytest.mark.parametrize("path", [PAGE, TRAINING])
def test_an_ae_gets_told_why_the_page_needs_a_vae(path) -> None:
    at = run_page(path, load_shipped("digits_ae_z2"))
    text = " ".join(i.value for i in at.info)
    assert "needs a VAE" in text and "no KL term" in text
    assert len(at.metric) == 0 and len(at.get("plotly_chart")) == 0 and len(at.latex) == 0


def test_z2_model_renders_the_posterior_view_with_exact_numbers(vae2, digits) -> None:
    at = page(vae2)
    g = idn.posterior_grid(vae2.model, digits.x_test[0])
    r = idn.image_report(vae2.model, digits.x_test[0], k_max=5000, seed=0)
    assert metric(at, "exact log p(x) (quadrature, 200×200)") == f"{g.log_px:.3f}"
    assert metric(at, "KL(q‖p(z|x)) by quadrature") == f"{g.kl_q_post:.3f}"
    assert metric(at, "ELBO") == f"{r.elbo:.2f}"
    assert metric(at, "log p̂_K(x), K=1000") == f"{r.log_px_hat(1000):.2f}"
    specs = chart_specs(at)
    heat = [
        s
        for s in specs
        if any(
            t.get("type") == "heatmap" and t.get("colorbar", {}).get("title", {}).get("text") == "p(z|x)"
            for t in s["data"]
        )
    ]
    assert len(heat) == 1
    names = {t.get("name") for t in heat[0]["data"]}
    assert {"q(z|x) 1σ", "q(z|x) 2σ", "μ"} <= names
    latex = " ".join(x.value for x in at.latex)
    assert f"{g.log_px:.2f}" in latex and r"\log p(x)\ \text{exact}" in latex
    assert f"{r.kl:.3f}" in latex  # the KL formula's total
    assert metric(at, "formula (analytic)") == f"{r.kl:.3f}"
    est, _ = idn.kl_monte_carlo(r.mu, r.sigma, 1000, seed=1)
    assert metric(at, "Monte Carlo, n=1,000") == f"{est:.3f}"
    iwae = [s for s in specs if s["layout"].get("xaxis", {}).get("type") == "log"]
    ks = arr(iwae[0]["data"][0]["x"])
    assert len(iwae) == 1 and len(ks) > 50 and ks[0] == 1 and ks[-1] == 5000
    assert "log-likelihoods under the bernoulli" in " ".join(c.value for c in at.caption).lower()


def test_the_test_set_table_says_its_likelihood(vae2) -> None:
    at = training_page(vae2)
    tables = at.table
    assert "test −ELBO" in tables[0].value["quantity"].tolist()
    assert f"{vae2.metadata['test_metrics']['neg_elbo']:.2f}" in tables[0].value["value"].tolist()
    assert any("log-likelihoods under the Bernoulli" in c.value for c in at.caption)


def test_through_the_router() -> None:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("lab_pages/elbo.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(t.value.startswith("🧮 ELBO") for t in at.title)
    assert metric(at, "ELBO")  # the default model is a VAE


def test_the_pickers_thumbnails_are_the_test_images_encoded_once(vae2, digits) -> None:
    import base64
    import io

    from PIL import Image

    from lab_pages.images import to_image, upscale

    at = page(vae2)
    thumbs = [
        im for im in at.get("image") if im.proto.imgs and im.proto.imgs[0].url.startswith("data:image/png")
    ]
    assert len(thumbs) >= 20
    urls = [im.proto.imgs[0].url for im in thumbs]
    decoded = [np.asarray(Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1])))) for u in urls]
    idx = int(at.button(key="elbo_pick_3").label.lstrip("#"))
    want = upscale(to_image(digits.x_test[idx], digits.image_shape), digits.image_shape[1], 56)
    found = [i for i, d in enumerate(decoded) if d.shape == want.shape and np.array_equal(d, want)]
    assert found, f"test image #{idx} is not among the picker's thumbnails"
    url = urls[found[0]]
    at.select_slider(key="elbo_k").set_value(10).run()  # a K move: the same URLs, not new encodings
    again = [im.proto.imgs[0].url for im in at.get("image") if im.proto.imgs]
    assert url in again


def test_picking_an_image_and_k_updates_the_numbers(vae2, digits) -> None:
    at = page(vae2)
    label = at.button(key="elbo_pick_3").label
    at.button(key="elbo_pick_3").click().run()
    idx = int(label.lstrip("#"))
    assert at.session_state["elbo_index"] == idx and idx != 0
    r = idn.image_report(vae2.model, digits.x_test[idx], k_max=5000, seed=0)
    assert metric(at, "ELBO") == f"{r.elbo:.2f}"
    at.select_slider(key="elbo_k").set_value(10).run()
    assert metric(at, "log p̂_K(x), K=10") == f"{r.log_px_hat(10):.2f}"
    assert metric(at, "KL(q‖p(z|x)), lower estimate") == f"{r.gap(10):.3f}"
    at.number_input(key="elbo_index").set_value(100).run()
    assert "original #100" in [c for im in at.get("image") for c in im.captions]
    assert (
        metric(at, "ELBO")
        == f"{idn.image_report(vae2.model, digits.x_test[100], k_max=5000, seed=0).elbo:.2f}"
    )


def test_iwae_button_adds_the_nll_row(vae2, digits) -> None:
    # a model with no recorded IWAE figure (as after training in the lab): the row comes from the button
    tm = {k: v for k, v in (vae2.metadata.get("test_metrics") or {}).items() if not k.startswith("iwae")}
    at = training_page(
        dataclasses.replace(vae2, key=vae2.key + ":no-iwae", metadata={**vae2.metadata, "test_metrics": tm})
    )
    assert not any("importance-weighted" in q for q in at.table[0].value["quantity"])
    at.select_slider(key="elbo_iwae_n").set_value(100).run()
    at.button(key="elbo_iwae_btn").click().run()
    assert not at.exception
    t = at.table[0].value
    row = [i for i, q in enumerate(t["quantity"]) if "importance-weighted NLL" in q]
    assert row, t
    ref = dataset_metrics(vae2.model, digits.x_test, k=1000, n_iwae=100).to_dict()
    assert t["value"][row[0]] == f"{ref['iwae_nll']:.2f}"
    assert "first 100 test images" in t["computed on"][row[0]]
    gap = [i for i, q in enumerate(t["quantity"]) if "mean KL(q(z|x)‖p(z|x))" in q]
    assert gap and t["value"][gap[0]] == f"{ref['iwae_subset_neg_elbo'] - ref['iwae_nll']:.2f}"
    assert 0 < float(t["value"][gap[0]]) < 2  # the z=2 digits VAE's q is close to its posterior
    assert float(t["value"][row[0]]) < vae2.metadata["test_metrics"]["neg_elbo"] + 1.0


@pytest.fixture(scope="module")
def vae16(digits) -> LoadedModel:
    tr = Trainer(
        digits_config("vae", 16),
        TrainConfig(dataset="digits", epochs=3, seed=0),
        dataset=digits,
        device="cpu",
    )
    tr.run()
    meta = tr.metadata()
    meta["history"]["active_units"][-1] = 5  # flag a collapse, whatever these few steps gave
    return LoadedModel("test:vae16", "test vae z16", "session", tr.model.eval(), tr.model_config, meta)


def test_high_dim_explains_the_z2_view_and_switches_to_the_shipped_z2_model(vae16) -> None:
    at = page(vae16)
    info = " ".join(i.value for i in at.info)
    assert "d = 16" in info and "needs d = 1 or 2" in info and "annealed importance sampling" in info
    warnings = " ".join(w.value for w in training_page(vae16).warning)
    assert "11 of 16 latent dimensions are inactive" in warnings and "Var_x[μ_j] ≤ 0.01" in warnings
    assert metric(at, "exact log p(x)") == "n/a"
    assert r"\cdots" in " ".join(x.value for x in at.latex)  # 16 KL terms are abbreviated
    at.button(key="elbo_use_z2").click().run()
    assert not at.exception
    assert at.session_state["current_model"].label == "digits_vae_z2"
    assert at.session_state["sidebar_model_pick"] == "shipped:digits_vae_z2"
    assert metric(at, "exact log p(x) (quadrature, 200×200)")


def test_model_without_history_or_metrics_and_wrong_dataset(digits) -> None:
    fresh = build_model(digits_config("vae", 2)).eval()
    at = training_page(
        LoadedModel("test:fresh", "fresh", "session", fresh, fresh.config, {"dataset": "digits"})
    )
    assert any("No training history" in i.value for i in at.info)
    assert "computed now" in " ".join(c.value for c in at.caption)
    t = at.table[0].value
    m = dataset_metrics(fresh, digits.x_test).to_dict()
    assert t["value"][0] == f"{m['neg_elbo']:.2f}"
    big = build_model(ModelConfig(latent_dim=2)).eval()  # 784 pixels, but labelled digits (64)
    for path in (PAGE, TRAINING):
        at = run_page(path, LoadedModel("test:big", "big", "session", big, big.config, {"dataset": "digits"}))
        assert any("expects 784 pixels" in e.value for e in at.error)


def test_live_curves_from_a_running_trainer(vae2) -> None:
    hist = History.from_dict(copy.deepcopy(vae2.metadata["history"]))
    snap = Snapshot(
        state="running",
        message="",
        step=len(hist.step),
        total_steps=2000,
        epoch=1.0,
        examples_per_s=1000.0,
        eta_s=3.0,
        history=hist,
    )
    touched = []
    trainer = SimpleNamespace(
        state="running",
        snapshot=lambda: snap,
        model_config=vae2.config,
        config=TrainConfig(dataset="digits", warmup_steps=100),
    )
    handle = SimpleNamespace(trainer=trainer, touch=lambda: touched.append(1))
    at = training_page(vae2, train_handle=handle)
    assert any("Live from the Train page" in c.value for c in at.caption)
    assert touched
    curves = [s for s in chart_specs(at) if any(t.get("name") == "β (KL weight)" for t in s["data"])]
    assert len(curves) == 1
    assert any(sh.get("x1") == 100 for sh in curves[0]["layout"].get("shapes", []))  # the warm-up band
    at.toggle(key="elbo_live").set_value(False).run()
    assert not any("Live from the Train page" in c.value for c in at.caption)


@pytest.mark.parametrize("path", [PAGE, TRAINING])
@pytest.mark.parametrize("name", ["digits_vae_z2", "digits_ae_z2"])
def test_the_page_renders_in_chinese(path, name) -> None:
    at = AppTest.from_file(path, default_timeout=120)
    at.session_state["current_model"] = load_shipped(name)
    at.query_params["lang"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["lang"] == "zh_CN"
    assert bool(at.get("plotly_chart")) == (
        "vae" in name
    )  # a VAE gets its figures; an AE the (translated) reason it gets none


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_delta_arrows_follow_the_sign_in_both_languages(vae2, digits, lang) -> None:
    """A negative difference is a red ↓ in Chinese too (its translated delta once put the number second: green ↑)."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["current_model"] = vae2
    if lang == "zh":
        at.query_params["lang"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    signed = [m.proto for m in at.metric if m.proto.delta and m.proto.direction != m.proto.NONE]  # not "off"
    assert len(signed) >= 3  # log p̂_K vs ELBO; section 2: log p̂_K and the ELBO vs exact
    for p in signed:
        assert p.delta[0] in "+-", p.delta  # the number first, whatever the language
        down = p.delta.startswith("-")
        assert p.direction == (p.DOWN if down else p.UP) and p.color == (p.RED if down else p.GREEN), p.delta
    elbo_vs_exact = [p for p in signed if p.label == "ELBO"]
    assert elbo_vs_exact and elbo_vs_exact[0].delta.startswith("-")  # the ELBO is below log p(x): ↓, red


def test_the_k_curve_has_a_band_of_repeats_and_an_estimate_above_exact_is_called_noise(
    vae2, digits, monkeypatch
) -> None:
    at = page(vae2)
    rr = idn.iwae_repeats(vae2.model, digits.x_test[0], idn.K_CHOICES, repeats=4, seed=0)
    (fig,) = [s for s in chart_specs(at) if s["layout"].get("xaxis", {}).get("type") == "log"]
    by_name = {t.get("name"): t for t in fig["data"]}
    band = by_name["± 1 standard error of that mean"]
    mean = by_name["mean of log p̂_K(x) over 4 independent runs"]
    assert band["fill"] == "toself" and arr(mean["y"]) == pytest.approx(rr.mean)
    assert arr(band["y"])[: len(rr.mean)] == pytest.approx(rr.mean + rr.se)
    m, se = rr.at(1000)
    assert metric(at, "log p̂_K(x), K=1000, mean of 4 runs") == f"{m:.3f} ± {se:.3f}"
    g = idn.posterior_grid(vae2.model, digits.x_test[0])
    assert (m > g.log_px) == any("noise, not a finding" in w for w in (x.value for x in at.warning))

    # a mean above the exact value (forced): marked on the curve and explained as noise
    def above(model, x, ks, repeats, seed):
        return idn.IWAERepeats(
            np.array(ks), np.full(len(ks), g.log_px + 0.05), np.full(len(ks), 0.02), repeats
        )

    monkeypatch.setattr(idn, "iwae_repeats", above)
    at = page(dataclasses.replace(vae2, key=vae2.key + ":above"))
    assert any("noise, not a finding" in w.value and "2.5 standard errors" in w.value for w in at.warning)
    (fig,) = [s for s in chart_specs(at) if s["layout"].get("xaxis", {}).get("type") == "log"]
    assert "mean above the exact log p(x): noise" in {t.get("name") for t in fig["data"]}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_low_kl_dims_are_counted_beside_the_active_units(vae2, vae16, lang) -> None:
    """Item 2 of issue #28: the page names both counts, from the one core count (vae_core.evaluate.low_kl_units):
    the test set's KL per dim of a shipped checkpoint (its history predates the column), else the history's last
    test."""
    cat = i18n.catalogue("zh_CN") if lang == "zh" else None
    gettext = cat.gettext if cat else (lambda s: s)
    below = gettext(
        "At the last test, **{low} of {d}** dimensions carry less than {threshold:g} nats of KL per image: the "
        "model has nearly switched them off, whatever their Var_x[μ_j]."
    )
    table = gettext(
        "ELBO terms {source}; log-likelihoods under {likelihood}. Active units (Var_x[μ_j] > {active_threshold:g}): "
        "{active} of {z}; dimensions with less than {threshold:g} nats of KL per image: {low} of {z}."
    )
    no_metrics = dataclasses.replace(vae16, key="test:vae16-no-metrics", metadata={**vae16.metadata})
    del no_metrics.metadata["test_metrics"]
    hist_low = vae16.metadata["history"]["low_kl_units"][-1]
    for lm, low in (
        (vae2, low_kl_units(vae2.metadata["test_metrics"]["kl_per_dim"])),
        (no_metrics, hist_low),
    ):
        at = AppTest.from_file(TRAINING, default_timeout=120)
        at.session_state["current_model"] = lm
        if cat:
            at.query_params["lang"] = "zh"
        at.run()
        assert not at.exception, at.exception
        z = lm.config.latent_dim
        captions = [c.value for c in at.caption]
        assert below.format(low=low, d=z, threshold=LOW_KL_THRESHOLD) in captions, captions
        tm = lm.metadata.get("test_metrics")
        if tm:  # the test set's table caption: both counts, each with its threshold
            want = table.format(
                source=gettext("recorded in the checkpoint"),
                likelihood=lm.likelihood,
                active_threshold=ACTIVE_THRESHOLD,
                active=tm["active_units"],
                threshold=LOW_KL_THRESHOLD,
                low=low,
                z=z,
            )
            assert want in captions, captions
    assert vae2.metadata["history"].get("low_kl_units") is None  # the shipped history: the fallback was used
