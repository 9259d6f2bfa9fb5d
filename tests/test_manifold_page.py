"""The Manifold & interpolation page through AppTest (split off the latent explorer).

It runs ``lab_pages/manifold.py`` directly with the current model put into session state first
(shipped digits checkpoints: always present), plus one run through the router.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from lab_pages.model_store import LoadedModel
from tests.conftest import (
    ROOT,
    component_data,
    run_page,
    run_page_in_chinese,
    send_from_component,
    shipped_fixture,
    through_router,
)
from vae_core import inference as inf
from vae_core.models import ModelConfig, build_model

PAGE = str(ROOT / "lab_pages" / "manifold.py")


vae = shipped_fixture("digits_vae_z2")
ae = shipped_fixture("digits_ae_z2")


def page(lm: LoadedModel, **state) -> AppTest:
    return run_page(PAGE, lm, **state)


class TestManifold:
    def test_manifold_grid_marks_the_slider_point(self, vae) -> None:
        at = page(vae)
        assert at.title[0].value.startswith("🧭 Manifold & interpolation")
        assert any("Kingma & Welling" in c.value for c in at.caption)
        assert any("current point" in i.captions[0] for i in at.image)
        assert "(0.50,\\ 0.50)" in at.latex[0].value  # z = 0 sits at the grid's centre
        at.slider(key="explorer_dim_0").set_value(1.0).run()
        assert not at.exception
        assert "(0.84,\\ 0.50)" in at.latex[0].value  # Phi(1) = 0.841
        assert at.session_state["explorer_z"] == pytest.approx([1.0, 0.0])  # the explorer's point moved
        at.slider(key="manifold_grid_n").set_value(9).run()
        assert not at.exception

    def test_the_explorer_point_is_marked(self, vae) -> None:
        at = page(vae, explorer_z=[1.0, 0.0], explorer_z_model=vae.key)
        assert at.slider(key="explorer_dim_0").value == pytest.approx(1.0)
        assert "(0.84,\\ 0.50)" in at.latex[0].value

    def test_ae_grid_is_placed_by_its_codes(self, ae) -> None:
        at = page(ae)
        assert not at.exception and any("An AE has no prior" in c.value for c in at.caption)

    def test_many_dims_show_a_slice(self, digits) -> None:
        torch.manual_seed(0)
        cfg = ModelConfig(kind="vae", input_dim=64, image_shape=(1, 8, 8), hidden=(32,), latent_dim=20)
        at = page(
            LoadedModel(
                "test:vae_z20", "test z20", "session", build_model(cfg).eval(), cfg, {"dataset": "digits"}
            )
        )
        assert not at.exception and any("needs a 2-D latent" in i.value for i in at.info)
        assert any("current point" in i.captions[0] for i in at.image)
        a, b = at.selectbox(key="manifold_slice_a").value, at.selectbox(key="manifold_slice_b").value
        assert a != b and len(at.session_state["explorer_z"]) == 20
        at.selectbox(key="manifold_slice_b").set_value(a).run()
        assert any("two different dims" in w.value for w in at.warning)


class TestLatentPlane:
    """The latent plane is the decoder component (the browser decodes under the pointer: tests/e2e); here, what it
    is given and what a click sends back."""

    def test_the_test_sets_mu_by_class_over_the_whole_latent_space(self, vae, digits) -> None:
        at = page(vae)
        data = component_data(at, "manifold_plane")
        assert data["mode"] == "plane" and data["pair"] == [0, 1] and data["z"] == [0.0, 0.0]
        mu = inf.encode(vae.model, digits.x_test)[0].numpy()
        pts = data["points"]
        assert len(pts["x"]) == len(digits.x_test)  # all 359 (at most 2000 are drawn)
        np.testing.assert_allclose(pts["x"], mu[:, 0], atol=1e-3)
        np.testing.assert_allclose(pts["y"], mu[:, 1], atol=1e-3)
        assert pts["c"] == digits.y_test.tolist() and data["colors"][0] == "#1f77b4"
        assert data["lo"][0] < mu[:, 0].min() < mu[:, 0].max() < data["hi"][0]
        assert any("Click to pin the point" in c.value for c in at.caption)

    def test_a_click_moves_the_sliders_and_the_explorer(self, vae) -> None:
        at = send_from_component(page(vae), "manifold_plane", "pin", [1.0, -0.5])
        assert not at.exception
        assert at.session_state["explorer_z"] == pytest.approx([1.0, -0.5])
        assert at.slider(key="explorer_dim_0").value == pytest.approx(1.0)
        assert "(0.84,\\ 0.31)" in at.latex[0].value  # the grid marks it: Phi(1), Phi(-0.5)
        assert component_data(at, "manifold_plane")["z"] == pytest.approx([1.0, -0.5])

    def test_more_dims_move_the_chosen_pair_and_hold_the_rest(self, digits) -> None:
        torch.manual_seed(0)
        cfg = ModelConfig(kind="vae", input_dim=64, image_shape=(1, 8, 8), hidden=(32,), latent_dim=5)
        lm = LoadedModel(
            "test:vae_z5", "test z5", "session", build_model(cfg).eval(), cfg, {"dataset": "digits"}
        )
        at = page(lm)
        a, b = at.selectbox(key="manifold_slice_a").value, at.selectbox(key="manifold_slice_b").value
        data = component_data(at, "manifold_plane")
        assert data["pair"] == [a, b] and len(data["z"]) == 5
        assert data["text"]["x"] == f"z{a + 1}" and data["text"]["y"] == f"z{b + 1}"
        z = [0.1, 0.2, 0.3, 0.4, 0.5]
        z[a], z[b] = 1.0, -1.0
        at = send_from_component(at, "manifold_plane", "pin", z)
        assert at.session_state["explorer_z"] == pytest.approx(z, abs=1e-6)

    def test_the_browser_cannot_decode(self, vae) -> None:
        at = send_from_component(page(vae), "manifold_plane", "status", {"ok": False, "reason": "no canvas"})
        assert not at.exception and not at.get("bidi_component")
        assert any("needs the decoder in the browser" in c.value for c in at.caption)
        assert any("current point" in i.captions[0] for i in at.image)  # the server's grid is still there


class TestInterpolation:
    def test_interpolation_renders_both_paths(self, vae) -> None:
        at = page(vae, manifold_tab="Interpolation")
        at.radio(key="manifold_interp_mode").set_value("both").run()
        at.slider(key="manifold_interp_steps").set_value(7).run()
        assert not at.exception
        caps = [i.captions[0] for i in at.image]
        assert any(c.startswith("linear (lerp)") for c in caps) and any(
            c.startswith("spherical (slerp)") for c in caps
        )
        spec = json.loads(at.get("plotly_chart")[0].proto.spec)
        norms = {d["name"]: np.array(d["y"]) for d in spec["data"]}
        assert set(norms) == {"linear", "spherical"} and all(len(v) == 7 for v in norms.values())
        np.testing.assert_allclose(
            norms["linear"][[0, -1]], norms["spherical"][[0, -1]], rtol=1e-5
        )  # same ends
        lo_n, hi_n = sorted(norms["spherical"][[0, -1]])
        assert np.all(norms["spherical"] >= lo_n - 1e-5) and np.all(norms["spherical"] <= hi_n + 1e-5)

    def test_tab_settings_survive_switching_tabs(self, vae) -> None:
        at = page(vae, manifold_tab="Interpolation")
        at.slider(key="manifold_interp_steps").set_value(7).run()
        at.selectbox(key="manifold_interp_b").set_value(5).run()
        at.session_state["manifold_tab"] = "2-D manifold"
        at.run()
        # lazy tabs: only the open one runs (the manifold tab's one chart is its KL-hole map, not the path norms)
        assert not at.exception and [c.key for c in at.get("plotly_chart")] == ["manifold_hole_chart"]
        at.session_state["manifold_tab"] = "Interpolation"
        at.run()
        assert at.slider(key="manifold_interp_steps").value == 7
        assert at.selectbox(key="manifold_interp_b").value == 5
        assert not at.exception and not at.warning

    def test_offset_moves_the_ends(self, vae, digits) -> None:
        at = page(vae, manifold_tab="Interpolation")
        at.number_input(key="manifold_test_offset").set_value(32).run()
        assert not at.exception
        assert at.selectbox(key="manifold_interp_a").value == 0
        assert "test #32" in at.selectbox(key="manifold_interp_a").format_func(0)


def test_through_the_router(vae) -> None:
    at = through_router("lab_pages/manifold.py", vae)
    assert any("Manifold" in t.value for t in at.title)


@pytest.mark.parametrize("tab", [0, 1])
def test_renders_in_chinese(vae, tab) -> None:
    """?lang=zh: both tabs draw without an exception (English until the catalogue is compiled)."""
    at = run_page_in_chinese(PAGE, vae)
    if tab:  # a tab is opened through its key, whose value is the tab's label (in the session's language)
        at.session_state["manifold_tab"] = at.tabs[1].label
        at.run()
        assert at.selectbox(key="manifold_interp_a") is not None
    assert not at.exception, at.exception


def test_the_open_tab_survives_a_language_switch(vae) -> None:
    """The tabs' key holds a label, which changes with the language: the open tab is kept by its position."""
    at = page(vae, manifold_tab="Interpolation")
    at.session_state["manifold_tab"] = "插值 (a label of another language)"  # what a switch leaves behind
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["manifold_tab"] == "Interpolation" and len(at.get("plotly_chart")) == 1
