"""The Latent explorer page through AppTest, and the helpers of vae_core.explore it uses.

The page tests run ``lab_pages/explorer.py`` directly with the current model put into session
state first (shipped digits checkpoints: always present), plus one run through the router. The
sliders and the decoded image are the decoder component, which AppTest cannot run: the tests read what
it was given (its data) and send what its JavaScript sends at a slider's release
(tests/conftest.py's ``component_data`` and ``send_from_component``); its decoding is tested in
Chromium (tests/e2e/test_decoder_component.py). ``TestServerDecode`` covers the server's decode, the
fallback where the browser cannot decode.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from lab_pages.images import to_image
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
from vae_core import explore as ex
from vae_core import inference as inf
from vae_core.models import ModelConfig, build_model

PAGE = str(ROOT / "lab_pages" / "explorer.py")
KEY = "explorer_decoder"  # the decoder component


vae = shipped_fixture("digits_vae_z2")
ae = shipped_fixture("digits_ae_z2")


@pytest.fixture(scope="module")
def vae_z20() -> LoadedModel:
    """An untrained digits VAE with 20 latent dims: more than the 16 sliders shown at once."""
    torch.manual_seed(0)
    cfg = ModelConfig(kind="vae", input_dim=64, image_shape=(1, 8, 8), hidden=(32,), latent_dim=20)
    return LoadedModel(
        "test:vae_z20", "test z20", "session", build_model(cfg).eval(), cfg, {"dataset": "digits"}
    )


def page(lm: LoadedModel, **state) -> AppTest:
    return run_page(PAGE, lm, **state)


def image_hash(lm: LoadedModel, z) -> str:
    """The hash the page stores for the decoded image of z, computed independently."""
    tile = to_image(inf.decode(lm.model, torch.tensor(z, dtype=torch.float32))[0], lm.config.image_shape)
    return hashlib.sha1(tile.tobytes()).hexdigest()[:16]


def decoded_image(at: AppTest):
    return next(i for i in at.image if i.captions[0].startswith("decoded pixel means"))


def traversal_image(at: AppTest):
    return next(i for i in at.image if i.captions[0].startswith("Rows, top to bottom:"))


def traversal_rows(at: AppTest) -> list[str]:
    """The traversal's row labels, in order, as its caption lists them."""
    return traversal_image(at).captions[0].removeprefix("Rows, top to bottom: ").split("; ")


def slider_values(at: AppTest, n: int) -> list[float]:
    """The first ``n`` coordinates of the point the component's sliders were given."""
    return component_data(at, KEY)["z"][:n]


def release(at: AppTest, z) -> AppTest:
    """A drag ends at ``z``: the browser sends the point, once."""
    return send_from_component(at, KEY, "release", z)


def server_decodes(at: AppTest) -> AppTest:
    """The browser reports it cannot run the decoder: the page decodes on the server from now on."""
    return send_from_component(at, KEY, "status", {"ok": False, "reason": "no canvas"})


class TestSliders:
    def test_renders_one_slider_per_dim_with_posterior_ranges(self, vae, digits) -> None:
        at = page(vae)
        assert at.title[0].value.startswith("🎛️ Latent explorer")
        stats = inf.aggregate_posterior_stats(vae.model, digits.x_test)
        data = component_data(at, KEY)
        assert data["mode"] == "sliders" and data["dims"] == [0, 1] and data["shape"] == [1, 8, 8]
        for j in range(2):
            assert data["lo"][j] == pytest.approx(float(stats.mean[j] - 3 * stats.std[j]), abs=1e-5)
            assert data["hi"][j] == pytest.approx(float(stats.mean[j] + 3 * stats.std[j]), abs=1e-5)
            assert f"KL {float(stats.avg_kl_per_dim[j]):.2f} nats" in data["labels"][j]
        assert data["z"] == [0.0, 0.0]  # a VAE starts at the prior mean
        assert data["text"]["caption"] == "decoded pixel means at z = {point}"
        assert not [s for s in at.slider if s.key.startswith("explorer_dim_")]  # the browser draws them
        assert not any(i.captions[0].startswith("decoded pixel means") for i in at.image)
        assert any("aggregate posterior" in c.value and "Var[μ] + E[σ²" in c.value for c in at.caption)
        assert at.session_state["explorer_z"] == [0.0, 0.0]
        assert at.session_state["explorer_z_model"] == vae.key

    def test_the_weights_file_is_the_models(self, vae) -> None:
        from lab_pages.decoder_component import DECODER_DIR, URL_PREFIX  # noqa: PLC0415
        from vae_core.web_decoder import export_decoder  # noqa: PLC0415

        url = component_data(page(vae), KEY)["url"]
        dec = export_decoder(vae.model)
        assert url == f"{URL_PREFIX}{dec.digest}.bin"
        assert (DECODER_DIR / f"{dec.digest}.bin").read_bytes() == dec.data

    def test_a_release_brings_the_point_back(self, vae) -> None:
        at = page(vae)
        rows = traversal_image(at).value[0]
        release(at, [2.0, 0.0])
        assert not at.exception
        assert at.session_state["explorer_z"] == pytest.approx([2.0, 0.0])
        assert at.session_state["explorer_dim_0"] == pytest.approx(2.0)  # the Manifold page's sliders follow
        assert slider_values(at, 2) == pytest.approx([2.0, 0.0])
        assert traversal_image(at).value[0] != rows  # the traversal is redrawn at the release
        at.run()  # the same release is not taken twice
        assert at.session_state["explorer_z"] == pytest.approx([2.0, 0.0])
        release(at, [9.0, -0.5])  # beyond the range: clamped, as a slider would be
        assert at.session_state["explorer_z"][0] == pytest.approx(component_data(at, KEY)["hi"][0])
        release(at, [1.0, 2.0, 3.0])  # a point of another model's size: ignored
        assert not at.exception and at.session_state["explorer_z"][1] == pytest.approx(-0.5)

    def test_buttons_reset_draw_and_start_from_a_test_image(self, vae, digits) -> None:
        at = page(vae)
        release(at, [0.0, -1.5])
        at.button(key="explorer_reset").click().run()
        assert slider_values(at, 2) == [0.0, 0.0]
        assert any("prior mean" in i.value for i in at.info)

        at.button(key="explorer_random").click().run()
        z1 = at.session_state["explorer_z"]
        expected = torch.randn(
            2, generator=torch.Generator().manual_seed(1)
        ).tolist()  # draw #1 of this session
        assert z1 == pytest.approx(expected, abs=1e-6)
        assert slider_values(at, 2) == pytest.approx(z1)
        at.button(key="explorer_random").click().run()
        assert at.session_state["explorer_z"] != z1
        assert any("Random draw #2" in i.value for i in at.info)

        at.selectbox(key="explorer_start").set_value(3).run()
        at.button(key="explorer_from_test").click().run()
        assert not at.exception
        mu, _ = inf.encode(vae.model, digits.x_test[3])
        assert slider_values(at, 2) == pytest.approx(mu[0].tolist(), abs=1e-5)
        assert any("test image #3" in i.value for i in at.info)

    def test_test_image_offset_moves_the_chooser(self, vae, digits) -> None:
        at = page(vae)
        at.number_input(key="explorer_test_offset").set_value(32).run()
        at.selectbox(key="explorer_start").set_value(2).run()
        at.button(key="explorer_from_test").click().run()
        mu, _ = inf.encode(vae.model, digits.x_test[34])
        assert slider_values(at, 2) == pytest.approx(mu[0].tolist(), abs=1e-5)


class TestServerDecode:
    """Where the browser cannot decode, the page decodes on the server with Streamlit's sliders, and says why."""

    def test_the_browser_cannot_run_it(self, vae) -> None:
        at = server_decodes(page(vae))
        assert not at.exception and not at.get("bidi_component")
        assert any("The server decodes each point" in c.value and "no canvas" in c.value for c in at.caption)
        assert at.session_state["explorer_image_hash"] == image_hash(vae, [0.0, 0.0])
        url0 = decoded_image(at).value
        at.slider(key="explorer_dim_0").set_value(2.0).run()
        assert not at.exception
        assert at.session_state["explorer_z"] == pytest.approx([2.0, 0.0])
        assert at.session_state["explorer_image_hash"] == image_hash(vae, [2.0, 0.0])
        assert decoded_image(at).value != url0
        assert decoded_image(at).value[0].startswith("data:image/png;base64,")  # inside the message
        assert "2.00, 0.00" in decoded_image(at).captions[0]

    def test_a_decoder_the_browser_cannot_run(self, vae) -> None:
        import copy  # noqa: PLC0415

        model = copy.deepcopy(vae.model)
        model.decoder.net[1] = torch.nn.Softplus()  # no activation of the lab's: not in the JavaScript
        lm = LoadedModel("test:softplus", "softplus", "session", model, vae.config, vae.metadata)
        at = page(lm)
        assert not at.exception and not at.get("bidi_component")
        assert any("cannot run in the browser" in c.value and "Softplus" in c.value for c in at.caption)
        assert at.session_state["explorer_image_hash"] == image_hash(lm, [0.0, 0.0])


class TestSections:
    def test_traversal_is_one_picture_with_rows_labelled_with_kl(self, vae) -> None:
        at = page(vae)
        rows = traversal_rows(at)
        assert len(rows) == 2 and all("KL" in r and "nats" in r for r in rows)
        assert (
            len(at.image) == 2
        )  # chooser and the traversal (one picture); the browser draws the decoded image
        src = traversal_image(at).value[0]
        assert src.startswith("data:image/png;base64,")  # inline: the browser fetches nothing
        at.slider(key="explorer_trav_steps").set_value(5).run()
        assert not at.exception and len(at.image) == 2
        assert traversal_image(at).value[0] != src
        release(at, [1.0, 0.0])  # the rows are centred on the sliders' point
        assert not at.exception and traversal_image(at).value[0] != src


class TestAE:
    def test_ae_has_no_prior(self, ae, digits) -> None:
        at = page(ae)
        assert any("no prior" in i.value for i in at.info)
        mu, _ = inf.encode(ae.model, digits.x_test)
        stats = inf.aggregate_posterior_stats(ae.model, digits.x_test)
        data = component_data(at, KEY)
        assert "KL" not in data["labels"][0] and "spread" in data["labels"][0]
        assert data["z"][0] == pytest.approx(
            float(mu[:, 0].mean()), abs=1e-4
        )  # starts at the centre of the codes
        assert data["hi"][0] - data["lo"][0] == pytest.approx(6 * float(stats.std[0]), rel=1e-4)
        assert [b.label for b in at.button if b.key == "explorer_reset"] == ["Centre of codes"]
        assert not any("KL" in m.value for m in at.markdown)


class TestHandOff:
    def test_point_from_the_latent_map_sets_the_sliders(self, vae) -> None:
        at = page(vae, explorer_z=[0.7, -0.4], explorer_z_model=vae.key)
        assert slider_values(at, 2) == pytest.approx([0.7, -0.4])
        assert any("z taken from the latent map" in i.value for i in at.info)
        release(at, [0.7, 0.2])  # the user moves on: the note goes
        assert not any("latent map" in i.value for i in at.info)

    def test_hand_off_while_the_page_is_open(self, vae) -> None:
        at = page(vae)
        release(at, [1.0, 0.0])
        at.session_state["explorer_z"] = [-1.2, 0.3]  # what the latent map writes before switch_page
        at.session_state["explorer_z_model"] = vae.key
        at.run()
        assert slider_values(at, 2) == pytest.approx([-1.2, 0.3])
        assert any("z taken from the latent map" in i.value for i in at.info)

    def test_point_for_another_model_is_ignored(self, vae) -> None:
        at = page(vae, explorer_z=[0.7, -0.4], explorer_z_model="shipped:some_other_model:0")
        assert slider_values(at, 2) == [0.0, 0.0]
        assert any("another model" in i.value for i in at.info)
        assert at.session_state["explorer_z_model"] == vae.key

    def test_switching_model_resets_without_a_note(self, vae, ae, digits) -> None:
        at = page(vae)
        release(at, [1.0, 0.0])
        at.session_state["current_model"] = ae
        at.run()
        assert not at.exception
        mean = inf.aggregate_posterior_stats(ae.model, digits.x_test).mean
        assert slider_values(at, 2) == pytest.approx(mean.tolist(), abs=1e-4)
        assert not any("latent map" in i.value or "another model" in i.value for i in at.info)


class TestManyDims:
    def test_user_picks_which_dims_get_sliders(self, vae_z20, digits) -> None:
        at = page(vae_z20)
        stats = inf.aggregate_posterior_stats(vae_z20.model, digits.x_test)
        default = ex.default_dims(stats, 16)
        assert at.multiselect(key="explorer_dims").value == default
        data = component_data(at, KEY)
        assert data["dims"] == sorted(default) and len(data["labels"]) == len(data["lo"]) == 16
        assert len(data["z"]) == 20  # the whole point: the browser decodes with the others held
        assert len(traversal_rows(at)) == 16  # one traversal row per slider
        hidden = next(j for j in range(20) if j not in default)
        at.multiselect(key="explorer_dims").set_value([0, 1]).run()
        assert not at.exception and component_data(at, KEY)["dims"] == [0, 1]
        release(at, [1.0] + data["z"][1:])
        z = at.session_state["explorer_z"]
        assert len(z) == 20 and z[0] == pytest.approx(1.0) and z[hidden] == 0.0  # the others stay fixed


class TestExploreHelpers:
    def test_slider_ranges_and_default_dims(self) -> None:
        stats = inf.PosteriorStats(
            mean=torch.tensor([0.0, 1.0, -1.0]),
            std=torch.tensor([1.0, 0.5, 0.0]),
            cov_mu_diag=torch.tensor([0.9, 0.2, 0.0]),
            active=torch.tensor([True, True, False]),
            avg_kl_per_dim=torch.tensor([0.1, 2.0, 0.0]),
        )
        lo, hi = ex.slider_ranges(stats)
        np.testing.assert_allclose(lo, [-3.0, -0.5, -1.003])
        np.testing.assert_allclose(hi, [3.0, 2.5, -0.997])
        assert ex.default_dims(stats, 2) == [0, 1]
        assert ex.default_dims(
            stats._replace(avg_kl_per_dim=None, cov_mu_diag=torch.tensor([0.0, 0.2, 0.9])), 2
        ) == [1, 2]

    def test_manifold_slice_matches_the_prior_grid(self, vae) -> None:
        imgs, grid = inf.manifold_grid(vae.model, 7)
        imgs2, grid2 = ex.manifold_slice(vae.model, torch.zeros(2), (0, 1), (0.0, 0.0), (1.0, 1.0), 7)
        torch.testing.assert_close(grid2, grid)
        torch.testing.assert_close(imgs2, imgs)
        _, g3 = ex.manifold_slice(vae.model, torch.zeros(2), (0, 1), (1.0, -2.0), (2.0, 0.5), 7)
        torch.testing.assert_close(g3[..., 0], 1.0 + 2.0 * grid[..., 0])
        torch.testing.assert_close(g3[..., 1], -2.0 + 0.5 * grid[..., 1])
        with pytest.raises(ValueError):
            ex.manifold_slice(vae.model, torch.zeros(2), (1, 1), (0.0, 0.0), (1.0, 1.0))

    def test_grid_position_agrees_with_the_grid(self, vae) -> None:
        _, grid = inf.manifold_grid(vae.model, 9)
        for r, c in [(0, 0), (2, 7), (8, 4)]:
            col, row, inside = ex.grid_position(tuple(grid[r, c].tolist()), 9)
            assert (col, row) == pytest.approx((c, r), abs=1e-4) and inside
        col, row, inside = ex.grid_position((9.0, -9.0), 9)
        assert (col, row, inside) == (8.0, 8.0, False)

    def test_traversal_sheet_lays_out_labels_and_tiles(self) -> None:
        rows = torch.zeros(3, 4, 64)
        rows[1, 2] = 1.0  # one white tile: row 1, step 2
        labels = [
            [("z1", (0, 0, 0)), ("KL 1.00 nats", (245, 133, 24))],
            [("z2", (0, 0, 0))],
            [("z3", (0, 0, 0))],
        ]
        sheet = ex.traversal_sheet(rows, (1, 8, 8), labels, scale=3, label_width=100, pad=1)
        assert sheet.dtype == np.uint8 and sheet.shape == ((3 * 9 - 1) * 3, 100 + (4 * 9 - 1) * 3, 3)
        tiles = sheet[:, 100:]
        assert (tiles[27:51, 54:78] == 255).all()  # the white tile, 3x upscaled, at row 1, step 2
        assert (tiles[0:24, 0:24] == 0).all() and (
            tiles[24:27] == 255
        ).all()  # a black tile, then a white gutter
        margin = sheet[:, :100].astype(int)
        assert (margin < 128).all(axis=2).any()  # dark label text
        orange = (
            (margin[..., 0] > 200) & (margin[..., 1] > 100) & (margin[..., 1] < 170) & (margin[..., 2] < 80)
        )
        assert (
            orange[:27].any() and not orange[27:].any()
        )  # the KL line is drawn in its colour, in its row only
        with pytest.raises(ValueError):
            ex.traversal_sheet(rows, (1, 8, 8), labels[:2])

    def test_traversal_sheet_draws_its_labels_once_per_model_not_per_move(self) -> None:
        labels = [[("z1", (0, 0, 0)), ("KL 1.00 nats", (245, 133, 24))], [("z2", (0, 0, 0))]]
        ex._label_margin.cache_clear()
        first = ex.traversal_sheet(torch.zeros(2, 3, 64), (1, 8, 8), labels, scale=2, label_width=90)
        moved = ex.traversal_sheet(torch.rand(2, 3, 64), (1, 8, 8), labels, scale=2, label_width=90)
        info = ex._label_margin.cache_info()
        assert (info.misses, info.hits) == (1, 1)  # the second sheet reused the first one's labels
        assert np.array_equal(first[:, :90], moved[:, :90]) and (first[:, :90] < 128).any()
        assert not np.array_equal(first[:, 90:], moved[:, 90:])  # the tiles follow the point
        other = ex.traversal_sheet(torch.zeros(2, 3, 64), (1, 8, 8), labels[::-1], scale=2, label_width=90)
        assert not np.array_equal(first[:, :90], other[:, :90])  # other rows, other labels

    def test_mark_grid_frames_the_tile(self) -> None:
        mosaic = np.zeros((3 * 8 + 2, 3 * 8 + 2), dtype=np.uint8)
        rgb = ex.mark_grid(mosaic, 2.0, 1.0, (8, 8), pad=1, scale=2)
        assert rgb.shape == (52, 52, 3)
        red = np.all(rgb == ex.MARK_COLOR, axis=2)
        ys, xs = np.nonzero(red)
        assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (18, 34, 36, 52)  # tile (row 1, col 2) x2


def test_through_the_router(vae) -> None:
    at = through_router("lab_pages/explorer.py", vae)
    assert component_data(at, KEY)["z"] == [0.0, 0.0]


@pytest.mark.parametrize("which", ["vae", "ae"])
def test_renders_in_chinese(which, request, digits) -> None:
    """?lang=zh: the page draws without an exception (English until the catalogue is compiled), and every
    traversal label is one the image font can draw (numbers alone where it has no CJK glyphs)."""
    from lab_pages import explorer, latent_controls  # noqa: PLC0415

    lm = request.getfixturevalue(which)
    at = run_page_in_chinese(PAGE, lm)
    assert len(at.image) >= 2  # thumbnails, traversal sheet (the browser draws the decoded image)
    assert component_data(at, KEY)["text"]["caption"]  # the component's words come from Python's _()
    stats = latent_controls.posterior_stats(lm.key, lm.model, digits.x_test)
    assert all(
        ex.can_draw(text) for j in range(lm.config.latent_dim) for text, _c in explorer._row_label(stats, j)
    )


def test_start_from_your_image(vae) -> None:

    from lab_pages.state import USER_IMAGE
    from tests.conftest import ROOT

    at = AppTest.from_file(str(ROOT / "lab_pages/explorer.py"), default_timeout=60)
    at.session_state["current_model"] = vae
    from tests.conftest import digits_user_image

    at.session_state[USER_IMAGE] = img = digits_user_image()
    at.run()
    at.button(key="explorer_from_mine").click().run()
    assert not at.exception
    mu = vae.model.encode(torch.from_numpy(img.pixels).float().div(255).unsqueeze(0))[0][0].detach().numpy()
    assert [round(at.session_state[f"explorer_dim_{j}"], 4) for j in range(2)] == [
        round(float(v), 4) for v in mu
    ]
