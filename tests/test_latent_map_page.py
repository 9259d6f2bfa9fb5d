"""The Latent map page through AppTest: PCA at once, UMAP swapped in, row ids in every point,
selections -> images and mu, the hand-off to the explorer, and the embedding cache.

A selection cannot be made in AppTest (no browser), so the tests set what the chart's
selection callback stores, ``st.session_state["latent_map_selected_ids"]``, and the callback's
parsing (:func:`vae_core.projection.selected_row_ids`) is tested on Plotly-shaped points.
"""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from lab_pages.model_store import LoadedModel, load_shipped
from lab_pages.style import CLASS_COLORS
from tests.conftest import APP, ROOT, run_page
from tests.conftest import plotly_array as _array
from tests.conftest import plotly_figures as figures
from vae_core.inference import encode
from vae_core.projection import selected_row_ids, subsample_ids

PAGE = str(ROOT / "lab_pages" / "latent_map.py")
SEL = "latent_map_selected_ids"


@pytest.fixture(scope="module")
def vae() -> LoadedModel:
    return load_shipped("digits_vae_z2")


@pytest.fixture(scope="module")
def mu(vae, digits) -> np.ndarray:
    return encode(vae.model, digits.x_test)[0].numpy()  # (359, 2)


@pytest.fixture(scope="module")
def vae16() -> LoadedModel:
    """An untrained VAE with d = 16 on the digits: a model whose map is a UMAP (no shipped digits model has d > 2)."""
    import torch

    from vae_core.models import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(kind="vae", input_dim=64, image_shape=(1, 8, 8), hidden=(32,), latent_dim=16)
    return LoadedModel(
        "test:latent_map_z16", "test z16", "session", build_model(cfg).eval(), cfg, {"dataset": "digits"}
    )


def page(lm: LoadedModel, wait_umap: bool = True) -> AppTest:
    """The page run once (and, by default, again once its UMAP job, if it started one, has finished)."""
    at = run_page(PAGE, lm)
    job = at.session_state.get("latent_map_job")
    if wait_umap and job is not None:
        assert job.wait(180), "UMAP did not finish in 180 s"
        assert job.error is None, job.error
        at.run()
        assert not at.exception, at.exception
    return at


def assert_rows_and_colours(fig: dict, labels: np.ndarray, n: int) -> None:
    """Every class trace holds exactly its class's rows in its class colour, and the n test rows appear once each."""
    seen = []
    for tr in fig["data"]:
        if "customdata" not in tr:  # the prior's circles, your image: no rows
            continue
        ids = _array(tr["customdata"]).astype(int)
        cls = int(tr["name"])  # digits' class names are "0".."9"
        assert tr["marker"]["color"] == CLASS_COLORS[cls]  # one class -> one colour, every page
        assert np.all(labels[ids] == cls)  # a trace holds exactly its class's rows
        seen.append(ids)
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(n))  # whole test set, once each


class TestMap:
    def test_a_2d_model_is_shown_as_its_latent_plane_and_no_umap_is_computed(self, vae, digits, mu) -> None:
        at = page(vae)
        figs = figures(at)
        assert set(figs) == {"latent_map_chart"}
        fig = figs["latent_map_chart"]
        assert fig["layout"]["title"]["text"] == "μ(x) of 359 test images on the latent plane"
        assert fig["layout"]["xaxis"]["title"]["text"] == "μ₁, latent dimension 1 (latent units)"
        assert fig["layout"]["yaxis"]["title"]["text"] == "μ₂, latent dimension 2 (latent units)"
        assert fig["layout"]["yaxis"]["scaleanchor"] == "x"  # equal axes: the prior's circles are round
        rings = [t for t in fig["data"] if t["name"].startswith("prior ")]
        assert [t["name"] for t in rings] == [
            "prior 1σ (39% of mass)",
            "prior 2σ (86% of mass)",
            "prior 3σ (99% of mass)",
        ]
        radii = [float(np.hypot(_array(t["x"]), _array(t["y"])).mean()) for t in rings]
        assert radii == pytest.approx([1.0, 2.0, 3.0])  # in latent units: the prior's scale on the axes
        assert_rows_and_colours(fig, digits.y_test.numpy(), 359)
        for tr in fig["data"]:  # x/y of the point with row id r are mu[r]
            if "customdata" in tr:
                ids = _array(tr["customdata"]).astype(int)
                np.testing.assert_allclose(_array(tr["x"]), mu[ids, 0], rtol=1e-5, atol=1e-5)
                np.testing.assert_allclose(_array(tr["y"]), mu[ids, 1], rtol=1e-5, atol=1e-5)
        assert "latent_map_job" not in at.session_state and not at.get("progress")  # no UMAP, no polling
        assert not [s for s in at.slider if s.key in ("latent_map_neighbors", "latent_map_min_dist")]
        text = " ".join(m.value for m in at.markdown)
        assert "the map is the latent space itself" in text and "UMAP flattens" not in text

    def test_umap_replaces_pca_and_every_point_carries_its_row_id(self, vae16, digits) -> None:
        at = page(vae16)
        figs = figures(at)
        assert set(figs) == {"latent_map_chart"}
        umap_fig = figs["latent_map_chart"]
        assert umap_fig["layout"]["title"]["text"].startswith("UMAP of μ(x), 359 test images")
        assert umap_fig["layout"]["xaxis"]["title"]["text"] == "UMAP 1"
        assert_rows_and_colours(umap_fig, digits.y_test.numpy(), 359)
        assert not at.get("progress")  # polling stopped once the embedding was ready
        assert "UMAP flattens the 16-D latent space" in " ".join(m.value for m in at.markdown)

    def test_z16_model_gets_16_mu_columns(self, vae16) -> None:
        at = page(vae16)
        at.session_state[SEL] = [0, 1]
        at.run()
        assert not at.exception
        assert [c for c in at.dataframe[0].value.columns if c.startswith("μ")] == [
            f"μ{j}" for j in range(1, 17)
        ]

    def test_pca_first_while_umap_runs(self, vae16) -> None:
        at = page(vae16, wait_umap=False)
        job = at.session_state["latent_map_job"]
        title = figures(at)["latent_map_chart"]["layout"]["title"]["text"]
        if job.done:  # UMAP cached by an earlier test in this process: shown at once
            assert title.startswith("UMAP")
        else:
            assert title.startswith("PCA of μ(x)") and at.get("progress")
        job.wait(180)

    def test_same_request_is_a_cache_hit(self, vae16) -> None:
        at = page(vae16)
        first = at.session_state["latent_map_job"].result
        at.slider(key="latent_map_min_dist").set_value(0.5).run()
        other = at.session_state["latent_map_job"]
        assert (
            other.wait(180)
            and other.result is not first
            and other.result.params == (("min_dist", 0.5), ("n_neighbors", 15))
        )
        at.slider(key="latent_map_min_dist").set_value(0.1).run()
        back = at.session_state["latent_map_job"]
        assert back.done and back.result is first  # (model, n, params) seen before: no recomputation

    @pytest.mark.parametrize("which", ["plane", "umap"])
    def test_fewer_points_keeps_row_ids(self, vae, vae16, which: str) -> None:
        at = page(vae if which == "plane" else vae16)
        at.select_slider(key="latent_map_n").set_value(100).run()
        if which == "umap":
            job = at.session_state["latent_map_job"]
            assert job.wait(180) and job.result.ids.size == 100
            at.run()
        fig = figures(at)["latent_map_chart"]
        ids = np.concatenate(
            [_array(tr["customdata"]).astype(int) for tr in fig["data"] if "customdata" in tr]
        )
        assert ids.size == 100 and np.array_equal(np.sort(ids), subsample_ids(359, 100))


class TestSelection:
    def test_row_ids_come_from_customdata_not_point_indices(self) -> None:
        # two traces (classes), each numbering its points from 0: indices would collide
        points = [
            {"curve_number": 3, "point_index": 0, "point_number": 0, "customdata": 42, "x": 0.1, "y": 0.2},
            {"curve_number": 7, "point_index": 0, "point_number": 0, "customdata": [17], "x": 1.0, "y": 2.0},
            {"curve_number": 3, "point_index": 1, "point_number": 1, "customdata": 42.0},  # repeat
            {"curve_number": 9, "point_index": 5},  # a prior contour: no row id
        ]
        assert selected_row_ids(points) == [42, 17]
        assert selected_row_ids([]) == [] and selected_row_ids(None) == []

    def test_selection_shows_images_reconstructions_and_mu(self, vae, mu) -> None:
        at = page(vae)
        assert any("Nothing selected" in i.value for i in at.info)
        at.session_state[SEL] = [17, 5, 300]
        at.run()
        assert not at.exception
        df = at.dataframe[0].value
        assert list(df["row"]) == [17, 5, 300]
        np.testing.assert_allclose(df[["μ1", "μ2"]].to_numpy(), mu[[17, 5, 300]], rtol=1e-5)
        captions = [c for im in at.get("image") for c in im.captions]
        assert len(captions) == 2 and captions[0].startswith(
            "3 selected test images"
        )  # images and reconstructions
        assert at.button(key="latent_map_send") is not None

    def test_selection_is_dropped_when_the_model_changes(self, vae) -> None:
        at = page(vae)
        at.session_state[SEL] = [3]
        at.run()
        at.session_state["current_model"] = load_shipped("digits_ae_z2")
        at.run()
        assert not at.exception and at.session_state[SEL] == []


class TestHandOff:
    def _router_on_map(self) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=180)
        at.session_state["current_model"] = load_shipped(
            "digits_vae_z2"
        )  # the app may default to Fashion-MNIST
        at.run()
        at.switch_page("lab_pages/latent_map.py")
        at.run()
        assert not at.exception, at.exception
        return at

    def test_send_first_selected_mu_to_the_explorer(self, mu) -> None:
        at = self._router_on_map()
        key = at.session_state["current_model"].key
        at.session_state[SEL] = [17, 5]
        at.run()
        assert key == load_shipped("digits_vae_z2").key
        assert at.selectbox(key="latent_map_send_pick").value == "17"  # the first selected point by default
        at.button(key="latent_map_send").click().run()
        assert not at.exception, at.exception
        assert at.session_state["explorer_z"] == pytest.approx(mu[17].tolist(), rel=1e-6)
        assert at.session_state["explorer_z_model"] == key
        assert any("explorer" in t.value.lower() for t in at.title)  # switched to the explorer page

    def test_send_the_mean_of_the_selection(self, mu) -> None:
        at = self._router_on_map()
        at.session_state[SEL] = [17, 5, 300]
        at.run()
        at.selectbox(key="latent_map_send_pick").set_value("mean").run()
        at.button(key="latent_map_send").click().run()
        assert not at.exception, at.exception
        assert at.session_state["explorer_z"] == pytest.approx(mu[[17, 5, 300]].mean(0).tolist(), rel=1e-5)


def test_your_image_is_marked_with_its_nearest_test_images() -> None:
    from lab_pages.model_store import load_shipped
    from lab_pages.state import USER_IMAGE
    from tests.conftest import ROOT, plotly_figures

    at = AppTest.from_file(str(ROOT / "lab_pages/latent_map.py"), default_timeout=120)
    at.session_state["current_model"] = load_shipped("digits_vae_z2")
    from tests.conftest import digits_user_image

    at.session_state[USER_IMAGE] = digits_user_image()
    at.run()
    assert not at.exception
    fig = next(iter(plotly_figures(at).values()))
    stars = [t for t in fig["data"] if t.get("name") == "your image (drawing)"]
    assert len(stars) == 1 and stars[0]["marker"]["symbol"] == "star"
    caps = [c for im in at.get("image") for c in im.captions]
    assert any("lands among these 8 test images" in c for c in caps)


@pytest.mark.parametrize("model", ["vae", "vae16"])
def test_the_page_renders_in_chinese(model: str, request) -> None:
    """Every part of the page (the latent plane; or PCA, then UMAP; your image, a selection) with ?lang=zh."""
    from lab_pages.state import USER_IMAGE, UserImage

    vae = request.getfixturevalue(model)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["current_model"] = vae
    at.session_state[USER_IMAGE] = UserImage(np.full(64, 128, dtype=np.uint8), (1, 8, 8), "digits", "drawing")
    at.session_state["latent_map_sel_model"], at.session_state[SEL] = vae.key, [3, 5]
    at.query_params["lang"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    job = at.session_state.get("latent_map_job")
    assert (job is None) == (model == "vae") and (job is None or job.wait(180))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["lang"] == "zh_CN" and at.button(key="latent_map_send") is not None


def test_a_shipped_model_shows_its_map_at_once() -> None:
    """A shipped d = 2 model shows its latent plane at once with nothing computed; a shipped d = 16 one (when
    Fashion-MNIST is here) its UMAP from the shipped embeddings (checkpoints/embeddings/<name>.safetensors), which go
    into the cache when the model loads: no job runs and no numba warm-up is waited for."""
    from lab_pages import model_store
    from lab_pages.model_store import list_shipped, load_shipped
    from tests.conftest import ROOT, plotly_figures
    from vae_core import projection as pj
    from vae_core.data import dataset_available

    pj.shared_projection_cache().clear()
    model_store._seed_shipped_maps.clear()
    at = AppTest.from_file(str(ROOT / "lab_pages/latent_map.py"), default_timeout=120)
    at.session_state["current_model"] = load_shipped("digits_vae_z2")
    at.run()
    assert not at.exception
    (fig,) = plotly_figures(at).values()
    assert fig["layout"]["title"]["text"].endswith("on the latent plane")
    assert "latent_map_job" not in at.session_state  # no UMAP for a 2-D latent space
    if not (dataset_available("fashion-mnist") and "fmnist_vae_z16" in list_shipped()):
        return
    at.session_state["current_model"] = load_shipped("fmnist_vae_z16")
    at.run()
    assert not at.exception
    (fig,) = plotly_figures(at).values()
    assert fig["layout"]["title"]["text"].startswith("UMAP of μ(x)"), fig["layout"]["title"]["text"]
    assert at.session_state["latent_map_job"].thread is None  # a cache hit: nothing was computed
