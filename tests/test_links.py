"""Shareable links (lab_pages.links) through the router in AppTest: each page's parameters read from the URL
into its controls, the controls written back into the URL, bad values warned about and replaced by the default,
and a model that lives only in this session kept out of the link, with the offer to save it."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from lab_pages import links, state
from lab_pages.model_store import LoadedModel, default_model_name, load_shipped
from tests.conftest import ROOT

APP = str(ROOT / "app.py")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def open_link(page: str, **params: str) -> AppTest:
    """A new session opening ``/page?params`` (``page``: a script under lab_pages/), as a shared link does."""
    at = AppTest.from_file(APP, default_timeout=180)
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page(f"lab_pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def url(at: AppTest) -> dict[str, str]:
    """The URL's parameters after the run (what Copy link copies, with the page's path)."""
    return {
        k: at.query_params[k][-1] if isinstance(at.query_params[k], list) else at.query_params[k]
        for k in at.query_params
    }


def named(name: str) -> dict[str, str]:
    """The URL's ``model`` for the shipped model ``name``: none for the server's default model (a link without
    one opens it)."""
    return {} if name == default_model_name() else {"model": name}


def warnings(at: AppTest) -> str:
    return " ".join(w.value for w in at.warning)


@pytest.fixture(scope="module")
def vae2() -> LoadedModel:
    return load_shipped("digits_vae_z2")


class TestElboPage:
    def test_the_link_sets_model_image_and_k_and_the_url_keeps_them(self) -> None:
        at = open_link("elbo", model="digits_vae_z2", image="7", k="100", lang="en")
        assert at.session_state["current_model"].label == "digits_vae_z2"
        assert at.select_slider(key="elbo_k").value == 100
        assert at.number_input(key="elbo_index").value == 7
        assert any(m.label == "log p̂_K(x), K=100" for m in at.metric)
        assert "original #7" in [c for im in at.get("image") for c in im.captions]
        assert url(at) == {**named("digits_vae_z2"), "image": "7", "k": "100", "lang": "en"}
        assert not at.warning

    def test_moving_k_and_the_index_writes_them_into_the_url(self) -> None:
        at = open_link("elbo", model="digits_vae_z2")
        assert "k" not in url(at) and "image" not in url(at)  # defaults stay out of the link
        at.select_slider(key="elbo_k").set_value(20).run()
        at.number_input(key="elbo_index").set_value(12).run()
        assert url(at)["k"] == "20" and url(at)["image"] == "12"
        at.select_slider(key="elbo_k").set_value(1000).run()  # back to the default: out of the URL
        assert "k" not in url(at)

    @pytest.mark.parametrize(
        ("params", "said"),
        [
            ({"k": "7"}, "k=7"),
            ({"k": "many"}, "k=many"),
            ({"image": "999999"}, "image=999999"),
            ({"image": "-1"}, "image=-1"),
        ],
    )
    def test_a_bad_value_is_named_and_the_default_used(self, params: dict, said: str) -> None:
        at = open_link("elbo", model="digits_vae_z2", **params)
        assert said in warnings(at) and "default" in warnings(at)
        assert at.select_slider(key="elbo_k").value == 1000
        assert at.number_input(key="elbo_index").value == 0
        assert not set(params) & set(url(at))  # the URL now tells the truth

    def test_an_unknown_model_is_named_and_the_default_model_opens(self) -> None:
        at = open_link("elbo", model="no_such_model")
        assert "no_such_model" in warnings(at)
        assert at.session_state["current_model"].label != "no_such_model"
        assert at.session_state["current_model"].label == default_model_name()
        assert "model" not in url(at)  # the default model: a link without one opens it


class TestTrainPage:
    def test_the_link_sets_every_setting(self) -> None:
        at = open_link(
            "train",
            dataset="digits",
            kind="ae",
            d="8",
            lr="0.002",
            epochs="3",
            hidden="256,128",
            likelihood="gaussian",
            scale="0.2",
            binarize="1",
        )
        assert at.selectbox(key="train_dataset").value == "digits"
        assert at.radio(key="train_kind").value == "AE"
        assert at.number_input(key="train_latent").value == 8
        assert at.number_input(key="train_lr").value == pytest.approx(0.002)
        assert at.number_input(key="train_epochs").value == 3
        assert at.text_input(key="train_hidden").value == "256,128"
        assert at.selectbox(key="train_likelihood").value == "gaussian"
        assert at.number_input(key="train_obs_std").value == pytest.approx(0.2)
        assert at.checkbox(key="train_binarize").value is True
        got = url(at)
        assert {
            k: got[k] for k in ("dataset", "kind", "d", "lr", "epochs", "hidden", "likelihood", "scale")
        } == {
            "dataset": "digits",
            "kind": "ae",
            "d": "8",
            "lr": "0.002",
            "epochs": "3",
            "hidden": "256,128",
            "likelihood": "gaussian",
            "scale": "0.2",
        }
        assert got["binarize"] == "1" and "beta" not in got  # defaults stay out

    def test_a_changed_setting_goes_into_the_url(self) -> None:
        at = open_link("train")
        at.number_input(key="train_beta").set_value(4.0).run()
        at.radio(key="train_kind").set_value("AE").run()
        assert url(at)["beta"] == "4" and url(at)["kind"] == "ae"

    def test_bad_settings_are_named(self) -> None:
        at = open_link("train", likelihood="cauchy", scale="50", kind="gan", d="two")
        text = warnings(at)
        for said in ("likelihood=cauchy", "scale=50", "kind=gan", "d=two"):
            assert said in text
        assert "expected a whole number" in text and "expected a number from 0.001 to 9.9" in text
        assert at.selectbox(key="train_likelihood").value == "bernoulli"
        assert at.radio(key="train_kind").value == "VAE"
        assert at.number_input(key="train_latent").value == 16


class TestExplorerPoint:
    def test_the_link_sets_z_and_the_url_follows_a_new_point(self, vae2) -> None:
        at = open_link("explorer", model="digits_vae_z2", z="0.5,-1.25")
        assert at.session_state[state.EXPLORER_Z] == [0.5, -1.25]
        assert not at.info or "latent map" not in " ".join(i.value for i in at.info)  # no "sent" note
        assert url(at)["z"] == "0.5,-1.25"
        at.button(key="explorer_reset").click().run()
        assert url(at)["z"] == "0,0"

    @pytest.mark.parametrize("z", ["1,2,3", "a,b", "nan,0", ""])
    def test_a_z_of_the_wrong_length_or_kind_is_named(self, z: str) -> None:
        at = open_link("explorer", model="digits_vae_z2", z=z)
        if z:  # an empty z is no value: nothing to warn about
            assert f"z={z}" in warnings(at) and "2 comma-separated numbers" in warnings(at)
        assert at.session_state[state.EXPLORER_Z] == [0.0, 0.0]  # the prior mean
        assert url(at)["z"] == "0,0"

    def test_z_text_is_rounded_to_three_decimals(self) -> None:
        assert state.url_point_text([0.12345, -2.0, -0.0001]) == "0.123,-2,0"


def test_the_latent_maps_projection_settings_round_trip() -> None:
    """URL -> the UMAP settings -> URL, through lab_pages.links alone (the page would start a UMAP)."""

    def script() -> None:
        import streamlit as st

        from lab_pages import links

        links.apply_url("latent-map")
        links.show_notes()
        st.session_state["latent_map_neighbors"] = st.session_state.get("latent_map_neighbors", 15)
        links.write_url("latent-map")

    at = AppTest.from_function(script, default_timeout=60)
    at.query_params.update({"neighbors": "30", "min_dist": "0.35", "k": "100"})
    at.run()
    assert not at.exception
    assert at.session_state["latent_map_neighbors"] == 30
    assert at.session_state["latent_map_min_dist"] == pytest.approx(0.35)
    assert url(at) == {"neighbors": "30", "min_dist": "0.35"}  # k is the ELBO page's
    at = AppTest.from_function(script, default_timeout=60)
    at.query_params.update({"neighbors": "500", "min_dist": "0.33"})
    at.run()
    assert "neighbors=500" in warnings(at) and "min_dist=0.33" in warnings(at)
    assert at.session_state["latent_map_neighbors"] == 15 and "latent_map_min_dist" not in at.session_state


class TestSessionModel:
    def test_a_session_model_stays_out_of_the_link_until_saved(self, vae2, tmp_path, monkeypatch) -> None:
        monkeypatch.setenv("VAE_LAB_SAVED_DIR", str(tmp_path))
        mine = LoadedModel(
            "session:test", "my test model", "session", vae2.model, vae2.config, dict(vae2.metadata)
        )
        at = AppTest.from_file(APP, default_timeout=180)
        at.query_params["model"] = "digits_vae_z2"
        at.switch_page("lab_pages/elbo.py")
        at.run()
        at.session_state["current_model"] = mine
        at.run()
        assert "model" not in url(at)
        text = " ".join(w.value for w in at.sidebar.warning)
        assert "my test model" in text and "cannot carry it" in text
        at.sidebar.text_input(key=links.SAVE_NAME).set_value("shared_one").run()
        at.sidebar.button(key="links_save").click().run()
        assert not at.exception
        assert (tmp_path / "shared_one.safetensors").is_file()
        assert at.session_state["current_model"].label == "saved/shared_one"
        assert url(at)["model"] == "saved/shared_one"
        assert "Saved" in " ".join(s.value for s in at.sidebar.success)
        fresh = open_link("elbo", model="saved/shared_one")  # another browser opens the link
        assert fresh.session_state["current_model"].label == "saved/shared_one" and not fresh.warning


def test_the_language_travels_in_the_link() -> None:
    at = open_link("elbo", model="digits_vae_z2", lang="zh")
    assert url(at)["lang"] == "zh"
    assert at.title[0].value == "🧮 ELBO 逐项拆解"
