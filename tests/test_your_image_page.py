"""The "Your image" page: upload or draw an image, see it preprocessed, and find it offered on the ELBO page."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from lab_pages.model_store import load_shipped
from lab_pages.state import USER_IMAGE, UserImage
from tests.conftest import ROOT

PAGE = str(ROOT / "lab_pages/your_image.py")


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def digits_vae():
    return load_shipped("digits_vae_z2")


def test_draw_mode_before_drawing_says_what_to_do(digits_vae) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["current_model"] = digits_vae
    at.run()
    assert not at.exception
    assert any("Nothing drawn yet" in i.value for i in at.info)
    assert USER_IMAGE not in at.session_state


def test_a_stored_image_is_offered_on_the_elbo_page(digits_vae) -> None:
    # what the page stores after a drawing: the ELBO page then offers it beside the test images
    img = np.zeros(64, dtype=np.uint8)
    img[[18, 19, 26, 27, 34, 35, 42, 43]] = 255  # a vertical stroke: a "1"
    at = AppTest.from_file(str(ROOT / "lab_pages/elbo.py"), default_timeout=60)
    at.session_state["current_model"] = digits_vae
    at.session_state[USER_IMAGE] = UserImage(img, (1, 8, 8), "digits", "drawing")
    at.run()
    assert not at.exception
    btn = at.button(key="elbo_mine_btn")
    btn.click().run()
    assert not at.exception
    captions = [c for im in at.get("image") for c in im.captions]
    assert "your image (drawing)" in captions
    assert at.session_state["elbo_mine"] is True
    at.button(key="elbo_pick_0").click().run()  # back to a test image
    assert not at.exception and not at.session_state["elbo_mine"]
    assert any(c.startswith("original #") for im in at.get("image") for c in im.captions)


def test_upload_path_preprocesses_and_stores(digits_vae, monkeypatch) -> None:
    # AppTest cannot fill a file_uploader: drive the same preprocessing the page calls and check the state type
    from vae_core.userimages import preprocess_upload, style_for

    arr = np.full((120, 90), 255, dtype=np.uint8)
    arr[30:90, 40:50] = 0  # dark ink on white paper
    res = preprocess_upload(_png(arr), style_for("digits", (1, 8, 8)), None, name="one.png")
    assert res.inverted and res.vector.shape == (64,) and res.vector.max() > 0


@pytest.mark.parametrize("mode", ["draw", "upload"])
def test_the_page_renders_in_chinese(digits_vae, mode) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["current_model"] = digits_vae
    at.session_state["mine_mode"] = mode
    at.query_params["lang"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["lang"] == "zh_CN" and len(at.info) == 1
