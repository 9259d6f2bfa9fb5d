"""The AE vs VAE page through AppTest: the pair it opens on and why, a pair picked by hand, its metrics (no KL for the
AE), prior draws, interpolation, maps and prior-vs-posterior plots in the workshop's order (a pair trained live:
test_compare_live_page.py)."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from lab_pages.model_store import LoadedModel, list_shipped, load_shipped
from tests.conftest import (
    ROOT,
    chart_titles,
    metrics,
    needs_fashion,
    plotly_array,
    plotly_figures,
    run_page,
    run_page_in_chinese,
    through_router,
)
from vae_core import compare as cmp
from vae_core.evaluate import dataset_metrics

PAGE = str(ROOT / "lab_pages" / "compare.py")


def page(lm: LoadedModel | None = None, **state) -> AppTest:
    return run_page(PAGE, lm, timeout=180, **state)


SCRIPT_ORDER = [  # the workshop's minutes 16–19 (lab_pages/tour.py): draws, errors, the rest, aggregate posterior
    "16 draws from the prior N(0, I), decoded by each",
    "Reconstruction error on the test set",
    "Interpolation between the same two test images",
    "An AE with no nonlinearity is PCA",
    "Aggregate posterior against the prior",
]


def why_captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith("Showing ")]


class TestShippedPair:
    def test_digits_pair_side_by_side(self, digits) -> None:
        at = page(load_shipped("digits_vae_z2"))
        assert at.selectbox(key="compare_pair").value == "digits_vae_z2 / digits_ae_z2"
        assert any(c.value.startswith("Fair pair:") for c in at.caption)
        m = metrics(at)
        vae, ae = load_shipped("digits_vae_z2"), load_shipped("digits_ae_z2")
        mv, ma = dataset_metrics(vae.model, digits.x_test), dataset_metrics(ae.model, digits.x_test)
        assert m[:6] == [
            ("Test recon. error", f"{mv.recon:.2f}"),
            ("KL to the prior", f"{mv.kl:.2f}"),
            ("Active units", "2 / 2"),
            ("Test recon. error", f"{ma.recon:.2f}"),
            ("KL to the prior", "—"),
            ("Active units", "2 / 2"),
        ]
        assert any("an AE maps each image to one point" in c.value for c in at.caption)
        # d = 2: each side's map is its latent plane over the prior's circles, drawn once, at the bottom
        titles = chart_titles(at)
        assert (
            titles["compare_map_VAE"] == "VAE: raw latent plane"
            and titles["compare_map_AE"] == "AE: raw latent plane"
        )
        assert not any(k.startswith("compare_prior_") for k in titles)
        # 16 prior draws per model, and two interpolation strips
        captions = [c for im in at.get("image") for c in im.captions]
        assert captions[:2] == ["VAE", "AE"] and sum("decoded steps" in c for c in captions) == 2
        why = [i.value for i in at.info if i.value.startswith("Why the AE's samples are poor")]
        pa = cmp.prior_match(ae.model, digits.x_test)
        assert len(why) == 1 and f"{pa.moment_kl:.1f} nats from the prior" in why[0]

    def test_a_2d_pair_is_drawn_on_its_latent_planes_without_umap(self, digits) -> None:
        """The same figure as the Latent map's for d = 2: μ₁ against μ₂, the prior's circles, no UMAP job."""
        from vae_core.inference import encode

        at = page(load_shipped("digits_vae_z2"))
        figs = plotly_figures(at)
        mu = encode(load_shipped("digits_ae_z2").model, digits.x_test)[0].numpy()
        fig = figs["compare_map_AE"]
        assert fig["layout"]["xaxis"]["title"]["text"].startswith("μ₁, latent dimension 1")
        assert fig["layout"]["yaxis"]["scaleanchor"] == "x"
        rings = [t["name"] for t in fig["data"] if t["name"].startswith("prior ")]
        assert rings == ["prior 1σ (39% of mass)", "prior 2σ (86% of mass)", "prior 3σ (99% of mass)"]
        for tr in fig["data"]:
            if "customdata" in tr:  # a class: its points are the codes themselves
                ids = plotly_array(tr["customdata"]).astype(int)
                np.testing.assert_allclose(plotly_array(tr["x"]), mu[ids, 0], rtol=1e-5, atol=1e-5)
                np.testing.assert_allclose(plotly_array(tr["y"]), mu[ids, 1], rtol=1e-5, atol=1e-5)
        assert "compare_umap_jobs" not in at.session_state  # nothing was projected

    def test_sections_follow_the_workshop_script(self) -> None:
        at = page(load_shipped("digits_vae_z2"))
        heads = [h.value for h in at.subheader]
        assert [h for h in heads if h in SCRIPT_ORDER] == SCRIPT_ORDER, heads
        assert heads[-1] == SCRIPT_ORDER[-1]  # the aggregate posterior at the bottom

    def test_opens_on_the_datasets_pair_and_says_why_even_when_the_model_is_the_ae(self) -> None:
        at = page(load_shipped("digits_ae_z2"))
        assert at.selectbox(key="compare_pair").value == "digits_vae_z2 / digits_ae_z2"
        (why,) = why_captions(at)
        gap = cmp.recon_gap(list_shipped()["digits_vae_z2"], list_shipped()["digits_ae_z2"])
        assert "the largest gap" in why and f"({gap:.2f} nats/image)" in why

    @needs_fashion
    def test_after_the_switch_to_d2_it_opens_on_the_d16_pair(self) -> None:
        """Minute 9 of the workshop makes fmnist_vae_z2 current; the script's point is made by the d = 16 pair."""
        if "fmnist_vae_z16" not in list_shipped():
            pytest.skip("fmnist_vae_z16 not shipped")
        at = page(load_shipped("fmnist_vae_z2"))
        assert at.selectbox(key="compare_pair").value == "fmnist_vae_z16 / fmnist_ae_z16"
        (why,) = why_captions(at)
        assert "(14.53 nats/image)" in why, why
        assert "The current model's own pair, fmnist_vae_z2 / fmnist_ae_z2, is in the list." in why

    def test_a_live_pair_wins_then_a_pair_picked_by_hand_stays(self) -> None:
        vae, ae = load_shipped("digits_vae_z2"), load_shipped("digits_ae_z2")
        at = page(vae, compare_live_pair=(vae, ae))  # stands in for a pair trained live
        assert at.selectbox(key="compare_pair").value == "live pair (trained here)"
        assert any(c.value.startswith("Showing the pair trained on") for c in at.caption)
        at.selectbox(key="compare_pair").set_value("digits_vae_z2 / digits_ae_z2").run()
        assert not at.exception and not why_captions(at)  # picked by hand: no reason to give
        at.session_state["current_model"] = ae
        at.run()
        assert at.selectbox(key="compare_pair").value == "digits_vae_z2 / digits_ae_z2"
        at.session_state["compare_live_pair"] = (ae, vae)  # a new live pair: shown at once
        at.run()
        assert at.selectbox(key="compare_pair").value == "live pair (trained here)"

    def test_interpolation_end_points_can_be_changed(self) -> None:
        at = page(load_shipped("digits_vae_z2"))
        at.number_input(key="compare_interp_b").set_value(100).run()
        assert not at.exception
        captions = [c for im in at.get("image") for c in im.captions if "decoded steps" in c]
        assert all("image 100" in c for c in captions)

    @pytest.mark.skipif(
        "fmnist_vae_z16" not in list_shipped() or "fmnist_ae_z16" not in list_shipped(),
        reason="fmnist_vae_z16 / fmnist_ae_z16 checkpoints not shipped yet",
    )
    def test_fmnist_z16_pair_uses_umap_and_histograms(self) -> None:
        from vae_core.data import dataset_available

        if not dataset_available("fashion-mnist"):
            pytest.skip("Fashion-MNIST files not on this machine")
        at = page(load_shipped("fmnist_vae_z16"))
        assert at.selectbox(key="compare_pair").value == "fmnist_vae_z16 / fmnist_ae_z16"
        titles = chart_titles(at)
        assert titles["compare_prior_VAE"] == "VAE: μ_j against N(0, 1)"
        assert list(titles).index("compare_map_VAE") < list(titles).index(
            "compare_prior_VAE"
        )  # maps, then q(z)
        assert titles["compare_map_VAE"] in ("VAE: UMAP", "VAE: PCA (UMAP on its way)")
        jobs = at.session_state["compare_umap_jobs"]
        assert len(jobs) == 2 and all(j.wait(300) and j.error is None for j in jobs.values())
        assert {j.result.ids.size for j in jobs.values()} == {10_000}
        at.run()
        titles = chart_titles(at)
        assert (titles["compare_map_VAE"], titles["compare_map_AE"]) == ("VAE: UMAP", "AE: UMAP")


class TestRouter:
    def test_router_opens_the_page(self) -> None:
        at = through_router(
            "lab_pages/compare.py", load_shipped("digits_vae_z2"), timeout=180
        )  # keep it quick
        assert any("AE vs VAE" in t.value for t in at.title)


def test_renders_in_chinese() -> None:
    """?lang=zh: the page draws without an exception (English until the catalogue is compiled)."""
    at = run_page_in_chinese(PAGE, load_shipped("digits_vae_z2"), timeout=180)
    assert at.selectbox(key="compare_pair").value == "digits_vae_z2 / digits_ae_z2" and len(at.metric) == 9


def test_your_image_is_marked_on_both_maps_with_both_reconstructions() -> None:

    from lab_pages.state import USER_IMAGE
    from tests.conftest import plotly_figures

    at = AppTest.from_file(str(ROOT / "lab_pages/compare.py"), default_timeout=120)
    at.session_state["current_model"] = load_shipped("digits_vae_z2")
    from tests.conftest import digits_user_image

    at.session_state[USER_IMAGE] = digits_user_image()
    at.run()
    assert not at.exception
    figs = plotly_figures(at)
    for kind in ("VAE", "AE"):
        stars = [t for t in figs[f"compare_map_{kind}"]["data"] if t.get("name") == "your image"]
        assert len(stars) == 1
    assert any(
        "Your image, then the VAE's and the AE's reconstruction" in c
        for im in at.get("image")
        for c in im.captions
    )
