"""Shareable links and presenter mode in Chromium: set a view, press the sidebar's *Copy link*, open what it copied
in a fresh browser context (a new session, as a colleague's browser would be), and compare what is drawn.
Presenter mode: the sidebar collapsed, large type, and *Next* opening the next step's page."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from .harness import (
    click_button,
    drag_range,
    image_src,
    keyed,
    open_url,
    problems,
    save_screenshot,
    settle,
    url_path,
    wait_for_path,
    wait_ready,
)

DECODER = "explorer_decoder"  # the explorer's decoder component (its sliders, its image, its caption)
METRICS = ("E_q[log p(x|z)]", "KL(q(z|x)‖p(z))", "ELBO")


def allow_clipboard(page, origin: str) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)


def copy_link(page) -> str:
    """Press *Copy link* and return what went to the clipboard (the field beside the button shows the same)."""
    settle(page)
    page.locator('[data-testid="copy-link-button"]').click()
    status = page.locator('[data-testid="copy-link-status"]')  # in the component's shadow root: a locator
    deadline = time.monotonic() + 10
    while not status.inner_text().strip() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status.inner_text().strip() == "Copied.", status.inner_text()
    shown = page.locator('[data-testid="copy-link-url"]').input_value()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == shown, (copied, shown)
    return copied


def open_copied(new_page, link: str) -> object:
    """Open ``link`` in a fresh context (no session, no cookies) and wait until its page is drawn."""
    fresh = new_page()
    parts = urlsplit(link)
    open_url(fresh, f"{parts.scheme}://{parts.netloc}", parts.path.strip("/"), parts.query)
    return fresh


def metric_values(page) -> dict[str, str]:
    labels = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
    values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    return {lab.strip(): val.strip() for lab, val in zip(labels, values)}


def test_a_copied_elbo_link_opens_the_same_image_k_and_numbers(page, app_server, new_page):
    allow_clipboard(page, app_server.url)
    open_url(page, app_server.url, "elbo", "model=digits_vae_z2")
    box = page.locator(f"{keyed('elbo_index')} input")
    box.fill("12")
    box.press("Enter")
    settle(page)
    page.locator(f'{keyed("elbo_k")} input[type="range"]').press("ArrowLeft")  # K: 1000 -> 500
    page.wait_for_function("() => window.location.search.includes('k=500')")
    settle(page)
    before = metric_values(page)
    assert "log p̂_K(x), K=500" in before, before
    link = copy_link(page)
    query = parse_qs(urlsplit(link).query)
    assert urlsplit(link).path == "/elbo"
    assert query["model"] == ["digits_vae_z2"] and query["image"] == ["12"] and query["k"] == ["500"]
    assert query["lang"] == ["en"]  # the browser chose it: the address bar leaves it out, the link carries it

    fresh = open_copied(new_page, link)
    after = metric_values(fresh)
    assert {m: after[m] for m in METRICS} == {m: before[m] for m in METRICS}
    assert "log p̂_K(x), K=500" in after
    assert image_src(fresh, "original #12") and image_src(fresh, "original #12") == image_src(
        page, "original #12"
    )
    assert not problems(fresh), problems(fresh)


def test_a_copied_explorer_link_opens_the_same_point(page, app_server, new_page):
    allow_clipboard(page, app_server.url)
    open_url(page, app_server.url, "explorer", "model=digits_vae_z2")
    wait_ready(page, DECODER)
    caption = f"{keyed(DECODER)} .vl-caption"
    before = page.locator(caption).first.inner_text()
    drag_range(page, DECODER, 0, [0.8])  # the release sends z to the server, which writes it into the URL
    page.wait_for_function(
        "() => /[?&]z=/.test(window.location.search) && !/z=0%2C0(&|$)/.test(window.location.search)"
    )
    settle(page)
    shown = page.locator(caption).first.inner_text()
    assert shown != before, "z did not change"
    link = copy_link(page)
    z = [float(v) for v in parse_qs(urlsplit(link).query)["z"][0].split(",")]
    assert len(z) == 2 and z[0] > 0.5, z

    fresh = open_copied(new_page, link)
    wait_ready(fresh, DECODER)
    assert fresh.locator(caption).first.inner_text() == shown  # z to 2 decimals, as the caption shows it
    slider = f"{keyed(DECODER)} input[type=range][data-dim='0']"
    assert float(fresh.locator(slider).first.input_value()) == pytest.approx(z[0], abs=1e-3)
    assert not problems(fresh), problems(fresh)


def test_a_link_with_bad_values_warns_and_opens_the_defaults(page, app_server):
    open_url(page, app_server.url, "elbo", "model=nope&k=7&image=-3")
    text = " ".join(page.locator('[data-testid="stAlertContentWarning"]').all_inner_texts())
    for said in ("nope", "k=7", "image=-3"):
        assert said in text, text
    assert not page.locator('[data-testid="stException"]').count()


def test_presenter_mode_collapses_the_sidebar_enlarges_the_type_and_next_changes_page(page, app_server):
    open_url(page, app_server.url, "elbo", "present=1&step=4&model=fmnist_vae_z16&lang=en")
    assert page.locator('[data-testid="stSidebar"]').get_attribute("data-collapsed") == "true"
    size = page.evaluate(
        """() => parseFloat(getComputedStyle(document.querySelector('[data-testid="stMain"] p')).fontSize)"""
    )
    assert size >= 22, f"body text is {size}px, not projector-sized"
    bar = page.locator(keyed("presenter_bar")).inner_text()
    assert "Step 4 of 7" in bar and "Ask the room" in bar
    save_screenshot(page, "presenter", max_height=900)
    title = page.locator('[data-testid="stMain"] h1').first.inner_text()
    click_button(page, "presenter_next")
    wait_for_path(page, "explorer", title)
    assert url_path(page) == "explorer"
    query = parse_qs(urlsplit(page.url).query)
    assert query["present"] == ["1"] and query["step"] == ["5"]
    assert "Step 5 of 7" in page.locator(keyed("presenter_bar")).inner_text()
    page.reload()  # a reload stays on the step
    time.sleep(1)
    settle(page)
    assert "Step 5 of 7" in page.locator(keyed("presenter_bar")).inner_text()
    assert not problems(page), problems(page)
