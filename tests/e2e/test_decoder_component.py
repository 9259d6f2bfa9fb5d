"""The decoder component in Chromium: its JavaScript decodes as torch does, and it behaves in the app.

- In a bare page, lab_pages/decoder_component.js decodes the file of vae_core.web_decoder for every
  likelihood and activation the lab has, at z at the centre and at the edge of the sliders' range, and
  its pixel means equal the model's ``mean_image`` (what ``inference.decode`` returns) within 1e-4;
  its erf equals Python's within 1e-7.
- In the app: dragging a slider of the Latent explorer redraws the image with no server rerun until
  the release, which reruns the page's fragment once and brings the point back to Python; the
  Manifold page's latent plane decodes under the pointer and a click moves the explorer there.
"""

from __future__ import annotations

import base64
import math
import time

import pytest
import torch

from tests.conftest import ROOT
from vae_core import explore as ex
from vae_core import inference as inf
from vae_core.checkpoint import load_checkpoint
from vae_core.data import load_dataset
from vae_core.elbo import LIKELIHOODS
from vae_core.models import ACTIVATIONS, ModelConfig, build_model
from vae_core.web_decoder import export_decoder

from .harness import canvas_pixels, drag_range, keyed, open_page, problems, settle, switch_page, wait_ready

JS = (ROOT / "lab_pages" / "decoder_component.js").read_text(encoding="utf-8")
TOL = 1e-4  # per pixel, pixel means in [0, 1]

# Load the component's module into a bare page and decode each z with it.
DECODE = """async ([src, b64, zs]) => {
    const url = URL.createObjectURL(new Blob([src], {type: "text/javascript"}));
    const m = await import(url);
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dec = m.parseDecoder(bytes.buffer);
    return zs.map((z) => Array.from(m.decode(dec, z)));
}"""


@pytest.fixture(scope="module")
def bare(browser):
    page = browser.new_page()
    page.goto("about:blank")
    yield page
    page.close()


def js_means(page, model, zs: torch.Tensor) -> torch.Tensor:
    data = base64.b64encode(export_decoder(model).data).decode()
    return torch.tensor(page.evaluate(DECODE, [JS, data, zs.tolist()]), dtype=torch.float64)


def small(likelihood: str, activation: str, scale: float = 1.0):
    torch.manual_seed(1)
    cfg = ModelConfig(
        input_dim=64,
        image_shape=(1, 8, 8),
        hidden=(48, 32),
        latent_dim=4,
        likelihood=likelihood,
        activation=activation,
    )
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.decoder.net[-1].weight.mul_(scale)
        model.decoder.net[-1].bias.mul_(scale)
    return model


def edges(lo, hi) -> torch.Tensor:
    """z at the centre of the sliders' range, at each corner's edge, and mixed."""
    lo, hi = torch.as_tensor(lo, dtype=torch.float32), torch.as_tensor(hi, dtype=torch.float32)
    return torch.stack([(lo + hi) / 2, lo, hi, torch.where(torch.arange(len(lo)) % 2 == 0, lo, hi)])


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_javascript_decodes_as_torch(bare, likelihood, activation) -> None:
    model = small(likelihood, activation)
    zs = edges([-3.0] * 4, [3.0] * 4)  # a VAE's sliders span about ±3 prior standard deviations
    want = inf.decode(model, zs).double()
    got = js_means(bare, model, zs)
    assert (got - want).abs().max().item() < TOL


def test_continuous_bernoulli_near_one_half(bare) -> None:
    """Logits within 0.1 of 0: the continuous Bernoulli's mean comes from its series in both."""
    model = small("continuous_bernoulli", "gelu", scale=1e-3)
    zs = edges([-3.0] * 4, [3.0] * 4)
    logits = model.decode(zs)
    assert logits.abs().max() < 0.1  # the series branch, everywhere
    assert (js_means(bare, model, zs) - inf.decode(model, zs).double()).abs().max().item() < TOL


@pytest.mark.parametrize("name", ["digits_vae_z2", "digits_ae_z2", "fmnist_vae_z16"])
def test_shipped_models_at_the_sliders_range(bare, name) -> None:
    path = ROOT / "checkpoints" / f"{name}.safetensors"
    ck = load_checkpoint(path)
    model = ck.model.eval()
    try:
        ds = load_dataset(ck.metadata["dataset"])
    except Exception as exc:  # Fashion-MNIST's files may be missing on this machine
        pytest.skip(f"{name}: no data ({exc})")
    sp = ex.slider_space(inf.aggregate_posterior_stats(model, ds.x_test[:2000]), model.is_vae)
    zs = edges(sp.lo, sp.hi)
    assert (js_means(bare, model, zs) - inf.decode(model, zs).double()).abs().max().item() < TOL


def test_erf_to_1e7(bare) -> None:
    xs = [i / 50 for i in range(-400, 401)] + [2.4999, 2.5, 2.5001, -2.5, 7.0, 30.0]
    got = bare.evaluate(
        """async ([src, xs]) => {
            const m = await import(URL.createObjectURL(new Blob([src], {type: "text/javascript"})));
            return xs.map(m.erf);
        }""",
        [JS, xs],
    )
    assert max(abs(g - math.erf(x)) for g, x in zip(got, xs, strict=True)) < 1e-7


# ------------------------------------------------------------------ in the app


def _count_runs(page):
    """A list that grows by one for every script run the server finishes (page or fragment)."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    runs: list[int] = []

    def on_frame(payload):
        if isinstance(payload, bytes):
            msg = ForwardMsg.FromString(payload)
            if msg.WhichOneof("type") == "script_finished":
                runs.append(msg.script_finished)

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
    return runs


def test_dragging_redraws_in_the_browser_and_sends_the_point_at_release(page, app_server):
    runs = _count_runs(page)
    open_page(page, app_server.url, "explorer")
    wait_ready(page, "explorer_decoder")
    settle(page, quiet=0.5)
    image = f"{keyed('explorer_decoder')} canvas.vl-image"
    before = canvas_pixels(page, image)
    caption = page.locator(f"{keyed('explorer_decoder')} .vl-caption").first.inner_text()
    runs.clear()
    drag_range(page, "explorer_decoder", 0, [0.6, 0.8, 0.9], release=False)
    page.wait_for_timeout(500)
    during = canvas_pixels(page, image)
    assert during != before, "the image did not follow the slider"
    assert runs == [], f"the server reran while the slider was dragged: {runs}"
    page.mouse.up()
    deadline = time.monotonic() + 30
    while not runs and time.monotonic() < deadline:  # the release's rerun has to start before settle sees it
        page.wait_for_timeout(100)
    settle(page, quiet=1.0)
    assert len(runs) == 1, f"a release should rerun the fragment once; runs: {runs}"
    new_caption = page.locator(f"{keyed('explorer_decoder')} .vl-caption").first.inner_text()
    assert new_caption != caption
    assert not problems(page), problems(page)
    # the point is back in Python: another page and back, and the component starts from it
    switch_page(page, "manifold")
    switch_page(page, "explorer")
    wait_ready(page, "explorer_decoder")
    z1 = page.locator(f"{keyed('explorer_decoder')} input[type=range][data-dim='0']").first.input_value()
    assert float(z1) > 1.0, f"the explorer came back at z1 = {z1}"


def test_latent_plane_decodes_under_the_pointer_and_a_click_pins(page, app_server):
    open_page(page, app_server.url, "manifold")
    wait_ready(page, "manifold_plane")
    settle(page, quiet=0.5)
    plane = page.locator(f"{keyed('manifold_plane')} canvas.vl-plane").first
    image = f"{keyed('manifold_plane')} canvas.vl-image"
    plane.scroll_into_view_if_needed()
    box = plane.bounding_box()
    before = canvas_pixels(page, image)
    page.mouse.move(box["x"] + 0.85 * box["width"], box["y"] + 0.2 * box["height"], steps=5)
    page.wait_for_timeout(300)
    assert canvas_pixels(page, image) != before, "the image did not follow the pointer"
    page.mouse.click(box["x"] + 0.85 * box["width"], box["y"] + 0.2 * box["height"])
    settle(page, quiet=0.5)
    # the page's first slider moves the plane's horizontal dim (z1 of a 2-D model)
    across = page.locator('[class*="st-key-explorer_dim_"] input[type="range"]').first.get_attribute("value")
    assert across is not None and float(across) > 1.0, f"the click did not move the sliders' point: {across}"
    assert not problems(page), problems(page)
