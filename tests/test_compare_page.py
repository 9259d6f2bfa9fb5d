"""The AE vs VAE page through AppTest: the shipped pair, its metrics (no KL for the AE), maps,
prior draws, interpolation and prior-vs-posterior plots (a pair trained live: test_compare_live_page.py)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from lab_pages.model_store import LoadedModel, list_shipped, load_shipped
from tests.conftest import ROOT, chart_titles, metrics, run_page, run_page_in_chinese, through_router
from vae_core import compare as cmp
from vae_core.evaluate import dataset_metrics

PAGE = str(ROOT / "lab_pages" / "compare.py")


def page(lm: LoadedModel | None = None, **state) -> AppTest:
    return run_page(PAGE, lm, timeout=180, **state)


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
        titles = chart_titles(at)
        assert (
            titles["compare_map_VAE"] == "VAE: raw latent plane"
            and titles["compare_map_AE"] == "AE: raw latent plane"
        )
        assert titles["compare_prior_AE"] == "AE: μ(x) over the prior's contours"
        # 16 prior draws per model, and two interpolation strips
        captions = [c for im in at.get("image") for c in im.captions]
        assert captions[:2] == ["VAE", "AE"] and sum("decoded steps" in c for c in captions) == 2
        why = [i.value for i in at.info if i.value.startswith("Why the AE's samples are poor")]
        pa = cmp.prior_match(ae.model, digits.x_test)
        assert len(why) == 1 and f"{pa.moment_kl:.1f} nats from the prior" in why[0]

    def test_pair_follows_the_current_model_even_when_it_is_the_ae(self) -> None:
        at = page(load_shipped("digits_ae_z2"))
        assert at.selectbox(key="compare_pair").value == "digits_vae_z2 / digits_ae_z2"

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
