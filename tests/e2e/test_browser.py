"""The app in a real browser: what AppTest cannot do (mouse drags, Plotly selections, timers).

Run: .venv/bin/python -m pytest tests/e2e -q
With VAE_LAB_SCREENSHOTS=1 the run also rewrites docs/screenshots/*.png (the README's pictures).
The app opens on its default shipped model (fmnist_vae_z16 where its checkpoint and data are
here, else digits_vae_z2); every test works on either.
"""

from __future__ import annotations

import base64
import re
import time

from .harness import (
    PAGES,
    canvas_pixels,
    click_button,
    drag_range,
    image_src,
    keyed,
    lasso_around,
    open_page,
    pick_plot_tool,
    plot_point,
    plot_title,
    plot_x_max,
    problems,
    save_screenshot,
    screenshots_enabled,
    settle,
    switch_page,
    wait_for_page,
    wait_ready,
)

DECODED = "decoded pixel means"  # the caption of the latent explorer's decoded image
DECODER = "explorer_decoder"  # the explorer's decoder component
SELECTED = re.compile(r"(\d+) selected test images?")


def selected_count(page) -> int:
    for text in page.locator('[data-testid="stImageCaption"]').all_inner_texts():
        m = SELECTED.search(text)
        if m:
            return int(m.group(1))
    return 0


def wait_selected(page, timeout: float = 20.0) -> int:
    """Number of selected test images once the latent map shows them (0 if it never does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = selected_count(page)
        if n:
            return n
        time.sleep(0.2)
    return 0


def stable_map(page, umap_wait: float | None = None) -> None:
    """Give the latent map a while (20 s; 120 s when taking screenshots) to swap PCA for UMAP, so
    that a gesture is not lost to the swap. If UMAP is still on its way, PCA is used (the tests
    retry a gesture that the swap swallowed)."""
    if umap_wait is None:
        umap_wait = 120.0 if screenshots_enabled() else 20.0
    deadline = time.monotonic() + umap_wait
    while "UMAP of" not in plot_title(page, "latent_map_chart") and time.monotonic() < deadline:
        time.sleep(0.5)
    settle(page, 60)


def test_every_page_opens_without_an_error(page, app_server):
    """Home by URL, the Theory page through its link on Home, then every other page of the tour
    (harness.PAGES, lab_pages/tour.py) through the navigation menu, in the same session (no
    reload): each draws its title and no exception or error box, and no JavaScript error is raised."""
    found: dict[str, list[str]] = {}

    def check(path: str) -> None:
        assert page.locator("h1").first.inner_text().strip(), f"/{path} drew no title"
        bad = problems(page) + [f"JavaScript error: {e}" for e in page.js_errors]
        page.js_errors.clear()
        if bad:
            found[path] = bad
        save_screenshot(page, PAGES[path][0])

    open_page(page, app_server.url, "")
    check("")
    page.locator('[data-testid="stPageLink-NavLink"]', has_text="Theory").first.click()
    wait_for_page(page, "theory", timeout=120)
    assert page.url.rstrip("/").endswith("/theory"), page.url
    check("theory")
    for path in [p for p in PAGES if p not in ("", "theory")]:
        how = switch_page(page, path)
        assert how == "navigation menu", (
            "the app shows no navigation menu: with st.navigation, `client.showSidebarNavigation = false` "
            "in .streamlit/config.toml hides it, and only Home's links lead anywhere"
        )
        wait_for_page(page, path, timeout=120)
        check(path)
    assert not found, f"pages with problems: {found}"


SVG_SRCS = """() => [...document.querySelectorAll('[data-testid="stMain"] img')].map(i => i.src)
                              .filter(s => s.startsWith('data:image/svg+xml'))"""


def test_training_charts_grow_then_pause_stops_them(page, app_server):
    """While training, the live view's two charts are static SVG images that change as steps come in (Plotly's redraws
    cost the browser half a core); on Pause the interactive Plotly charts come back and stay still."""
    open_page(page, app_server.url, "train")
    click_button(page, "train_start")
    page.wait_for_selector("text=Training started", timeout=60_000)
    page.wait_for_function(f"() => ({SVG_SRCS})().length === 2", timeout=60_000)  # loss chart and KL heatmap
    assert page.locator(keyed("train_loss_chart")).count() == 0, (
        "a Plotly chart is redrawn every second while training"
    )
    seen: list[str] = []  # the loss chart's SVG, sampled twice a second
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(set(seen)) < 3:
        srcs = page.evaluate(SVG_SRCS)
        if len(srcs) == 2:
            seen.append(srcs[0])
        time.sleep(0.5)
    assert len(set(seen)) >= 3, (
        f"the live loss chart did not change while training ({len(set(seen))} distinct images)"
    )
    svg = base64.b64decode(seen[-1].split(",", 1)[1]).decode()
    assert "<path" in svg and "training step" in svg, svg[:300]
    assert not problems(page), problems(page)

    click_button(page, "train_pause")
    flash = page.wait_for_selector("text=/Paused at step \\d+/", timeout=30_000).inner_text()
    settle(page, 30)
    paused_at = int(re.search(r"Paused at step (\d+)", flash).group(1))
    progress = page.locator('[data-testid="stProgress"]').first.inner_text()
    assert "paused" in progress, f"the progress line does not say paused: {progress!r}"
    drawn = plot_x_max(page, "train_loss_chart")
    assert drawn is not None, "the interactive loss chart is not back after Pause"
    assert page.evaluate(SVG_SRCS) == [], "the live SVG charts are still shown after Pause"
    time.sleep(2.5)  # two refresh periods: nothing may move now
    assert plot_x_max(page, "train_loss_chart") == drawn, "the chart kept changing after Pause"
    m = re.search(r"step ([\d,]+)/", progress)
    assert m and int(m.group(1).replace(",", "")) >= paused_at, progress
    save_screenshot(page, "train")
    click_button(page, "train_stop")  # leave nothing behind on the server
    page.wait_for_selector("text=/Stopped at step/", timeout=30_000)


def test_dragging_a_latent_slider_changes_the_decoded_image(page, app_server):
    """The explorer's sliders and image are the decoder component: the browser decodes while the slider moves
    (tests/e2e/test_decoder_component.py: as torch does, and with no rerun before the release)."""
    open_page(page, app_server.url, "explorer")
    wait_ready(page, DECODER)
    image = f"{keyed(DECODER)} canvas.vl-image"
    before = canvas_pixels(page, image)
    caption = page.locator(f"{keyed(DECODER)} .vl-caption").first.inner_text()
    assert DECODED in caption
    drag_range(page, DECODER, 0, [0.85])
    settle(page)
    assert canvas_pixels(page, image) != before
    assert page.locator(f"{keyed(DECODER)} .vl-caption").first.inner_text() != caption, "z did not change"
    value = page.locator(f"{keyed(DECODER)} input[type=range][data-dim='0']").first.input_value()
    assert float(value) > 0.5, f"the z1 slider did not move right: {value}"
    assert not problems(page), problems(page)
    save_screenshot(page, "explorer")


def test_a_slider_release_reruns_only_the_explorer_view(page, app_server):
    """A slider's release reruns the explorer's fragment once (the traversal is redrawn around the point), not
    the page; the browser fetches no image file for it and no decoder file again."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    frames: list[bytes] = []
    fetched: list[str] = []
    page.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda p: frames.append(p) if isinstance(p, bytes) else None),
    )
    page.on(
        "request", lambda r: fetched.append(r.url) if "/media/" in r.url or "/app/static/" in r.url else None
    )
    open_page(page, app_server.url, "explorer")
    wait_ready(page, DECODER)
    settle(page, quiet=0.5)
    assert len([u for u in fetched if "/app/static/decoders/" in u]) == 1, fetched  # the weights, once
    frames.clear()
    fetched.clear()
    drag_range(page, DECODER, 0, [0.2])
    # the release's rerun: wait until its first message arrives, then until the page is quiet
    deadline = time.monotonic() + 30
    while not frames and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    settle(page, quiet=1.0)
    msgs = [ForwardMsg.FromString(f) for f in frames]
    finished = [m.script_finished for m in msgs if m.WhichOneof("type") == "script_finished"]
    assert finished == [ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY], (
        f"a slider's release should rerun only the explorer's fragment once; runs ended with {finished}"
    )
    deltas = [m.delta for m in msgs if m.WhichOneof("type") == "delta"]
    assert deltas and all(d.fragment_id for d in deltas), "an element outside the fragment was redrawn"
    assert len(fetched) <= 2, f"one slider release fetched {len(fetched)} files: {fetched}"
    assert not problems(page), problems(page)


def test_lasso_on_the_latent_map_shows_the_selected_images(page, app_server):
    open_page(page, app_server.url, "latent-map")
    stable_map(page)
    n = 0
    for _attempt in range(3):  # a UMAP that lands mid-gesture redraws the chart: try again
        pick_plot_tool(page, "latent_map_chart", "lasso")  # as a person would, whatever the default tool
        pt = plot_point(page, "latent_map_chart", which=0.37)
        assert pt is not None, "the latent map drew no points"
        lasso_around(page, pt["x"], pt["y"], r=6)
        n = wait_selected(page, 20)
        if n:
            break
        settle(page)
        if plot_title(page, "latent_map_chart") == pt["title"]:
            break  # the chart did not change under the gesture: no point in trying again
    assert n >= 1, "a lasso around a point selected nothing"
    settle(page)
    grid = page.locator('[data-testid="stImage"]', has_text="selected test images").locator("img").first
    assert grid.evaluate("i => i.complete && i.naturalWidth > 0"), "the selected images did not load"
    rows = page.locator('[data-testid="stDataFrame"]')
    assert rows.count() >= 1, "no table of the selected points' μ"
    assert not problems(page), problems(page)
    save_screenshot(page, "latent_map")


def test_clicking_a_point_on_the_latent_map_selects_it(page, app_server):
    """The page says "Click a point": one click, with the chart's default tool, must select it."""
    open_page(page, app_server.url, "latent-map")
    stable_map(page)
    n, clickmode = 0, None
    for _attempt in range(3):
        pt = plot_point(page, "latent_map_chart", which=0.61)
        assert pt is not None, "the latent map drew no points"
        page.mouse.move(pt["x"], pt["y"])
        time.sleep(0.3)  # hover first, as a person does
        page.mouse.click(pt["x"], pt["y"])
        n = wait_selected(page, 10)
        if n:
            break
        clickmode = page.locator(keyed("latent_map_chart")).first.evaluate(
            "el => { const gd = el.querySelector('.js-plotly-plot'); return gd && gd._fullLayout.clickmode; }"
        )
        settle(page)
        if plot_title(page, "latent_map_chart") == pt["title"]:
            break  # the chart did not change under the click: no point in trying again
    assert n == 1, (
        f"clicking point row {pt['id']} selected {n} points (Plotly clickmode={clickmode!r}). Streamlit 1.67 sets "
        "clickmode='event' (no click selection) when a figure's dragmode is 'lasso' or 'select': "
        "lab_pages/latent_map.py map_figure() should not set dragmode='lasso'"
    )
    # the point under the pixel: the one aimed at, or a neighbour drawn over it (points overlap in dense
    # clusters, and the legend's place moves them); either way one point, and its row is shown
    page.wait_for_selector("text=/row \\d+/", timeout=10_000)


def test_pitfalls_run_again_retrains_a_section_live(page, app_server):
    """The Pitfalls page opens on recorded results; *Run again* on the shortest section (the KL's sign
    flipped: the mistaken run diverges within a second) trains both runs live with a new seed."""
    open_page(page, app_server.url, "pitfalls")
    page.wait_for_selector("text=/Recorded results \\(seed 0\\)/", timeout=30_000)
    click_button(page, "pitfalls_run_kl_sign")
    page.wait_for_selector("text=/Trained here, seed 1\\./", timeout=120_000)
    settle(page, 120)
    warning = page.locator('[data-testid="stAlertContentWarning"]', has_text="diverged")
    assert warning.count() >= 1, "the flipped-sign run was not stopped by the divergence guard"
    assert not problems(page) and not page.js_errors, problems(page) + page.js_errors


CANVAS = (
    keyed("mine_canvas") + " canvas.upper-canvas"
)  # fabric.js draws on two stacked canvases: the upper one takes the mouse
SEES = "What the model sees"


def metric_value(page, label: str) -> str:
    """The value shown by the st.metric whose label is ``label`` (the first one)."""
    return (
        page.locator('[data-testid="stMetric"]')
        .filter(has=page.locator('[data-testid="stMetricLabel"]', has_text=label))
        .first.locator('[data-testid="stMetricValue"]')
        .inner_text()
        .strip()
    )


def draw_stroke(page, points: list[tuple[float, float]]) -> None:
    """Draw one stroke with the mouse through ``points`` (fractions of the canvas's width and height)."""
    canvas = page.locator(
        CANVAS
    ).first  # streamlit-drawable-canvas is a v2 component: in the page (a shadow root), no iframe
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box and box["width"] > 100, f"the drawing canvas has no size: {box}"
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_a_drawing_is_preprocessed_placed_and_offered_on_the_elbo_page(page, app_server):
    """Your image: a stroke drawn with the mouse on the canvas shows the image the model sees and where
    it lands; the ELBO page then offers it, and shows its terms (the analytic KL matches)."""
    open_page(page, app_server.url, "your-image")
    page.wait_for_selector(CANVAS, timeout=60_000)
    assert image_src(page, SEES) is None, "an image is shown before anything is drawn"
    draw_stroke(page, [(0.3, 0.2), (0.7, 0.2), (0.45, 0.85)])  # a 7
    page.wait_for_function(
        """(text) => [...document.querySelectorAll('[data-testid="stImage"]')].some(el => {
            const cap = el.querySelector('[data-testid="stImageCaption"]'), i = el.querySelector('img');
            return cap && cap.innerText.includes(text) && i && i.complete && i.naturalWidth > 0; })""",
        arg=SEES,
        timeout=60_000,
    )
    page.wait_for_selector('h2:has-text("Where your image lands")', timeout=60_000)
    settle(page, 60)
    assert not problems(page) and not page.js_errors, problems(page) + page.js_errors
    vae = page.locator('[data-testid="stMetricLabel"]', has_text="KL(q(z|x)‖p(z))").count() > 0
    kl_here = metric_value(page, "KL(q(z|x)‖p(z))") if vae else None
    save_screenshot(page, "your_image")

    assert switch_page(page, "elbo") == "navigation menu"
    wait_for_page(page, "elbo", timeout=120)
    if not vae:  # the ELBO page needs a VAE: an AE current model gets its explanation instead
        return
    mine = page.locator(keyed("elbo_mine_btn") + " button")
    assert mine.count() == 1, "the ELBO page does not offer the drawn image"
    click_button(page, "elbo_mine_btn")
    page.wait_for_selector('[data-testid="stImageCaption"]:has-text("your image (drawing)")', timeout=60_000)
    settle(page, 60)
    assert metric_value(page, "KL(q(z|x)‖p(z))") == kl_here, (
        "the ELBO page's KL for the drawing is not the Your image page's"
    )
    assert float(metric_value(page, "ELBO")) < 0
    assert not problems(page) and not page.js_errors, problems(page) + page.js_errors
