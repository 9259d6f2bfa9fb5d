"""Drive the real app in a real browser: one `streamlit run app.py` server, Playwright Chromium.

Shared by the end-to-end tests (tests/e2e) and the latency bench (bench/browser_latency.py).
Nothing here imports Playwright at import time, so the tests can skip with a clear reason where
Playwright or Chromium is missing. Chromium is Debian's (``/usr/bin/chromium``, installed by
``.ci/run``; override with ``$VAE_LAB_CHROMIUM``): ``playwright install`` is never needed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import CHROMIUM_ARGS, CHROMIUM_DEFAULT, CHROMIUM_ENV

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get(CHROMIUM_ENV, CHROMIUM_DEFAULT)  # the benches' Chromium, with the same flags
VIEWPORT = {"width": 1400, "height": 900}
SCREENSHOT_DIR = ROOT / "docs" / "screenshots"
SCREENSHOT_ENV = "VAE_LAB_SCREENSHOTS"  # =1: the e2e run rewrites docs/screenshots/*.png
SCREENSHOT_DIR_ZH = SCREENSHOT_DIR / "zh"  # the same pages in Chinese (README.zh-CN.md)
ZH_LOCALE = "zh-CN"  # the browser locale of the Chinese tests

# url path -> (file stem for screenshots, text in the page's st.title in English): every page of
# lab_pages/tour.py, in its order (tests/e2e/test_harness.py checks both against the page files).
PAGES: dict[str, tuple[str, str]] = {
    "": ("home", "VAE Workshop Lab"),
    "theory": ("theory", "Theory: the ideas under the ELBO"),
    "derivation": ("derivation", "Derivation: the ELBO, line by line"),
    "train": ("train", "Train"),
    "elbo": ("elbo", "ELBO, term by term"),
    "elbo-training": ("elbo_training", "The ELBO over training"),
    "explorer": ("explorer", "Latent explorer"),
    "manifold": ("manifold", "Manifold & interpolation"),
    "latent-map": ("latent_map", "Latent map (UMAP)"),
    "compare": ("compare", "AE vs VAE"),
    "train-pair": ("train_pair", "Train an AE/VAE pair"),
    "pitfalls": ("pitfalls", "Pitfalls: the classic VAE mistakes"),
    "your-image": ("your_image", "Your image"),
}

APP = '[data-testid="stApp"]'
EXCEPTION = '[data-testid="stException"]'
ERROR_BOX = '[data-testid="stAlertContentError"]'


def missing_requirement() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -r requirements-dev.txt)"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (
            f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium, as .ci/run does; "
            "or set VAE_LAB_CHROMIUM to a Chromium binary)"
        )
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ the server
@dataclass
class Server:
    """A running `streamlit run app.py`; ``url`` has no trailing slash."""

    proc: subprocess.Popen
    port: int
    log_path: Path
    started_at: float  # time.perf_counter() just before the process was launched

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, grace_s: float = 3.0) -> None:
        """Terminate the server's whole process group (streamlit and anything it started): SIGTERM, then
        SIGKILL after ``grace_s``. An idle server exits in under a second; one with a browser still
        connected can wait forever in uvicorn's shutdown (see test_lifecycle's xfail), and waiting 10 s
        for that cost every test that stops a server."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=grace_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def launch_server(
    port: int | None = None, log_path: Path | None = None, env: dict[str, str] | None = None
) -> Server:
    """Start `streamlit run app.py` on 127.0.0.1 in its own process group; does not wait."""
    port = port or free_port()
    log_path = log_path or Path(f"/tmp/vae_lab_streamlit_{port}.log")
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]
    t0 = time.perf_counter()
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Server(proc, port, log_path, t0)


def wait_healthy(server: Server, timeout: float = 90.0) -> float:
    """Poll /_stcore/health until it says ok; returns seconds since launch. Raises with the log tail."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.proc.returncode}:\n{server.log_tail()}")
        try:
            with opener.open(f"{server.url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return time.perf_counter() - server.started_at
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(
        f"streamlit did not answer /_stcore/health within {timeout:.0f} s:\n{server.log_tail()}"
    )


def start_server(port: int | None = None, log_path: Path | None = None, timeout: float = 90.0) -> Server:
    """Launch the app and wait until it is healthy (stops it again if it never gets there)."""
    server = launch_server(port, log_path)
    try:
        wait_healthy(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


# ------------------------------------------------------------------ processes (Linux /proc)
def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time in clock ticks) of ``pid`` from /proc/<pid>/stat, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) ": the name may hold spaces and ")"
    return fields[0], int(fields[1]), int(fields[19])


def descendants(pid: int) -> dict[int, int]:
    """Every live process below ``pid`` (children, their children…): {pid: start time}, found by
    scanning /proc/*/stat for parent ids. The start time tells a process from a later one that
    reuses its pid."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        st = _stat(int(entry.name))
        if st is None or st[0] == "Z":
            continue
        parents.setdefault(st[1], []).append(int(entry.name))
        starts[int(entry.name)] = st[2]
    out: dict[int, int] = {}
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in out:
                out[child] = starts[child]
                todo.append(child)
    return out


def alive(pid: int, start_time: int | None = None) -> bool:
    """True while ``pid`` runs (a zombie counts as ended), and is the process that started at ``start_time``."""
    st = _stat(pid)
    return st is not None and st[0] != "Z" and (start_time is None or st[2] == start_time)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def launch_browser(playwright: Any):
    """Debian's Chromium, headless (never `playwright install`)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# ------------------------------------------------------------------ waiting for Streamlit
def settle(page: Any, timeout: float = 60.0, quiet: float = 0.3) -> float:
    """Wait until the script run is over and drawn: not running, no stale or skeleton elements,
    for ``quiet`` seconds in a row. Returns the ``time.perf_counter()`` at which that calm began
    (what the latency bench times). Pages with a 1-second fragment (training, UMAP polling)
    still settle between fragment runs."""
    deadline = time.perf_counter() + timeout
    calm_since = None
    while True:
        state = page.evaluate(
            """() => {
                const app = document.querySelector('[data-testid="stApp"]');
                if (!app) return 'none';
                if (app.getAttribute('data-test-connection-state') !== 'CONNECTED') return 'connecting';
                if (app.getAttribute('data-test-script-state') !== 'notRunning') return 'running';
                if (document.querySelector('[data-stale="true"], [data-testid="stSkeleton"]')) return 'drawing';
                return 'idle';
            }"""
        )
        now = time.perf_counter()
        if state == "idle":
            calm_since = calm_since or now
            if now - calm_since >= quiet:
                return calm_since
        else:
            calm_since = None
        if now > deadline:
            raise TimeoutError(f"the app did not settle within {timeout:.0f} s (last state: {state})")
        time.sleep(0.02)


def title_selector(text: str) -> str:
    return f'h1:has-text("{text}")'


def open_page(page: Any, base_url: str, path: str, timeout: float = 120.0) -> None:
    """Load ``/path`` in this tab (a new Streamlit session) and wait until it is drawn."""
    page.goto(f"{base_url}/{path}", timeout=timeout * 1000)
    page.wait_for_selector(title_selector(PAGES[path][1]), timeout=timeout * 1000)
    settle(page, timeout)


def _mark_nav_link(page: Any, path: str) -> bool:
    """Mark the visible navigation-menu entry of ``/path`` with data-e2e-target; False if none is shown."""
    return page.evaluate(
        """(p) => {
        const links = [...document.querySelectorAll('[data-testid="stSidebarNavLink"]')];
        for (const a of links) a.removeAttribute('data-e2e-target');
        const a = links
            .find(a => new URL(a.href).pathname.replace(/\\/+$/, '') === ('/' + p).replace(/\\/+$/, ''));
        if (!a || !a.offsetParent) return false;
        a.setAttribute('data-e2e-target', '1');
        return true;
    }""",
        path,
    )


def expand_navigation(page: Any) -> bool:
    """Show every entry of the navigation menu: with more than 10 pages Streamlit shows the first
    10 and a "View N more" button. Returns True when it clicked that button."""
    button = page.locator('[data-testid="stSidebarNavViewButton"]')
    if (
        button.count() == 0
        or not button.first.is_visible()
        or "more" not in button.first.inner_text().lower()
    ):
        return False
    button.first.click()
    page.wait_for_function(
        """() => { const b = document.querySelector('[data-testid="stSidebarNavViewButton"]');
                                      return !b || !/more/i.test(b.innerText); }""",
        timeout=10_000,
    )
    return True


def nav_titles(page: Any) -> list[str]:
    """The titles of every entry of the navigation menu (expanded first), without their icons."""
    expand_navigation(page)
    texts = page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()
    return [t.strip().split("\n")[-1].strip() for t in texts]


def switch_page(page: Any, path: str) -> str:
    """Change page inside the running app (no reload, same session); returns how.

    Clicks the page's entry in the navigation menu that st.navigation draws (showing the menu's
    hidden entries first, "View N more"); where the app shows no menu (e.g.
    `client.showSidebarNavigation = false`), does what the browser's back/forward buttons do: a
    history change, which Streamlit turns into a page switch.
    """
    found = _mark_nav_link(page, path) or (expand_navigation(page) and _mark_nav_link(page, path))
    if found:
        page.locator('[data-e2e-target="1"]').click()
        return "navigation menu"
    page.evaluate(
        """(p) => {
        window.history.pushState({}, '', '/' + p);
        window.dispatchEvent(new PopStateEvent('popstate', {state: {}}));
    }""",
        path,
    )
    return "history (back/forward)"


def url_path(page: Any) -> str:
    """The page's URL path without slashes ("" for Home), as PAGES keys it."""
    return page.evaluate("() => window.location.pathname").strip("/")


def wait_for_path(page: Any, path: str, old_title: str | None = None, timeout: float = 120.0) -> str:
    """After a switch, in any language: the URL is ``/path``, a title other than ``old_title`` is
    drawn, and the run is over. Returns the title's text."""
    page.wait_for_function(
        """([p, old]) => {
            if (window.location.pathname.replace(/^\\/+|\\/+$/g, '') !== p) return false;
            const h = document.querySelector('[data-testid="stMain"] h1');
            return !!h && h.innerText.trim() !== '' && h.innerText.trim() !== old;
        }""",
        arg=[path, old_title],
        timeout=timeout * 1000,
    )
    settle(page, timeout)
    return page.locator('[data-testid="stMain"] h1').first.inner_text().strip()


def open_url(page: Any, base_url: str, path: str, query: str = "", timeout: float = 120.0) -> str:
    """Load ``/path?query`` in this tab (a new Streamlit session) in whatever language it shows, and
    wait until its title is drawn and its run is over. Returns the title's text."""
    page.goto(f"{base_url}/{path}" + (f"?{query}" if query else ""), timeout=timeout * 1000)
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout * 1000)
    settle(page, timeout)
    return page.locator('[data-testid="stMain"] h1').first.inner_text().strip()


def wait_for_page(page: Any, path: str, timeout: float = 60.0) -> tuple[float, float]:
    """After a switch: the new page's title is drawn and its run is over.

    Returns ``time.perf_counter()`` values: (title visible, page settled)."""
    page.wait_for_selector(title_selector(PAGES[path][1]), timeout=timeout * 1000)
    shown = time.perf_counter()
    return shown, settle(page, timeout)


def problems(page: Any) -> list[str]:
    """Exception boxes and error boxes on the page, as text (empty when the page is healthy)."""
    out = [f"exception: {t[:800]}" for t in page.locator(EXCEPTION).all_inner_texts()]
    out += [f"error box: {t[:400]}" for t in page.locator(ERROR_BOX).all_inner_texts()]
    return out


# ------------------------------------------------------------------ widgets
def keyed(key: str) -> str:
    """CSS selector of the element container of the widget/chart with Streamlit key ``key``."""
    return f".st-key-{key}"


def click_button(page: Any, key: str, timeout: float = 30.0) -> None:
    """Click the button with Streamlit key ``key`` once the app has settled and shows it once."""
    settle(page, timeout)
    buttons = page.locator(f"{keyed(key)} button:visible")
    deadline = time.monotonic() + 5
    while buttons.count() != 1 and time.monotonic() < deadline:  # a rerun may briefly show two
        time.sleep(0.1)
    buttons.first.click(timeout=timeout * 1000)


def selectbox_value(page: Any, key: str) -> str:
    """The option shown by selectbox ``key`` (its formatted text)."""
    return page.locator(f'{keyed(key)} input[role="combobox"]').first.input_value()


def choose_option(page: Any, key: str, option: str, timeout: float = 30.0) -> None:
    """Pick ``option`` (its shown text) in selectbox ``key`` with the mouse, as a person does.

    Streamlit 1.67's selectbox is a combobox: a click on its input opens the list, except when the
    click only focuses it (e.g. after scrolling the sidebar), where the Down key opens it."""
    settle(page, timeout)
    box = page.locator(f'{keyed(key)} input[role="combobox"]').first
    box.click(timeout=timeout * 1000)
    if box.get_attribute("aria-expanded") != "true":
        box.press("ArrowDown")
    page.get_by_role("option", name=option, exact=True).first.click(timeout=timeout * 1000)


def drag_slider(page: Any, key: str, fraction: float, release: bool = True) -> None:
    """Drag the thumb of slider ``key`` to ``fraction`` (0..1) of its track with the mouse.

    With ``release=False`` the mouse button stays down (the caller releases it and times that).
    """
    geo = page.locator(keyed(key)).first.evaluate(
        """(el) => {
            const input = el.querySelector('input[type="range"]');
            const thumb = input.parentElement.parentElement;
            const track = thumb.parentElement;
            const t = thumb.getBoundingClientRect(), r = track.getBoundingClientRect();
            return {tx: t.left + t.width / 2, ty: t.top + t.height / 2, left: r.left, width: r.width};
        }"""
    )
    page.mouse.move(geo["tx"], geo["ty"])
    page.mouse.down()
    page.mouse.move(geo["left"] + fraction * geo["width"], geo["ty"], steps=5)
    if release:
        page.mouse.up()


def canvas_pixels(page: Any, selector: str) -> str:
    """The canvas at ``selector`` as a PNG data URL (what it shows now)."""
    return page.locator(selector).first.evaluate("(c) => c.toDataURL()")


def wait_ready(page: Any, key: str, timeout: float = 60.0) -> None:
    """Wait until the decoder component ``key`` has its weights and has drawn (lab_pages/decoder_component.js)."""
    page.locator(f"{keyed(key)} .vl-root[data-ready='1']").first.wait_for(timeout=timeout * 1000)


def drag_range(
    page: Any, key: str, dim: int, fractions: list[float], release: bool = True, steps: int = 4
) -> None:
    """Drag the decoder component ``key``'s slider of latent dim ``dim`` with the mouse, from its thumb through
    ``fractions`` (0..1) of its track; ``release=False`` keeps the button down (the caller releases it)."""
    slider = page.locator(f"{keyed(key)} input[type=range][data-dim='{dim}']").first
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    lo, hi, value = (
        float(slider.get_attribute("min")),
        float(slider.get_attribute("max")),
        float(slider.input_value()),
    )
    y, thumb = box["y"] + box["height"] / 2, 8  # the thumb's centre travels 8 px in from each end
    page.mouse.move(box["x"] + thumb + (value - lo) / (hi - lo) * (box["width"] - 2 * thumb), y)
    page.mouse.down()
    for f in fractions:
        page.mouse.move(box["x"] + thumb + f * (box["width"] - 2 * thumb), y, steps=steps)
    if release:
        page.mouse.up()


def image_src(page: Any, caption_text: str) -> str | None:
    """The src of the st.image whose caption contains ``caption_text``."""
    return page.evaluate(
        """(text) => {
            for (const img of document.querySelectorAll('[data-testid="stImage"]')) {
                const cap = img.querySelector('[data-testid="stImageCaption"]');
                if (!cap || !cap.innerText.includes(text)) continue;
                const i = img.querySelector('img');
                return i ? i.src : null;
            }
            return null;
        }""",
        caption_text,
    )


def wait_image_changed(page: Any, caption_text: str, old_src: str | None, timeout: float = 30.0) -> str:
    """Wait until that image shows a different file, fully loaded and painted; returns its src."""
    handle = page.wait_for_function(
        """([text, old]) => {
            for (const img of document.querySelectorAll('[data-testid="stImage"]')) {
                const cap = img.querySelector('[data-testid="stImageCaption"]');
                if (!cap || !cap.innerText.includes(text)) continue;
                const i = img.querySelector('img');
                if (i && i.src && i.src !== old && i.complete && i.naturalWidth > 0) return i.src;
            }
            return false;
        }""",
        arg=[caption_text, old_src],
        timeout=timeout * 1000,
        polling="raf",
    )
    return handle.json_value()


def plot_point(page: Any, key: str, which: float = 0.5) -> dict | None:
    """Viewport position of one data point of the Plotly chart with key ``key`` (any scatter type).

    Picks, in the trace with the most points, the point at relative index ``which``. Returns
    {x, y, id (its customdata), title (the chart's title)} or None before the chart is drawn.
    """
    return page.locator(keyed(key)).first.evaluate(
        """(el, which) => {
            const gd = el.querySelector('.js-plotly-plot');
            if (!gd || !gd._fullLayout || !gd._fullData) return null;
            const fl = gd._fullLayout, xa = fl.xaxis, ya = fl.yaxis;
            const traces = gd._fullData.filter(t => t.visible !== false && t.x && t.x.length);
            if (!traces.length) return null;
            const tr = traces.reduce((a, b) => (b.x.length > a.x.length ? b : a));
            const i = Math.min(tr.x.length - 1, Math.floor(which * tr.x.length));
            const r = gd.getBoundingClientRect();
            return {x: r.left + xa._offset + xa.l2p(tr.x[i]), y: r.top + ya._offset + ya.l2p(tr.y[i]),
                    id: tr.customdata ? tr.customdata[i] : null,
                    title: fl.title && fl.title.text ? fl.title.text.replace(/<[^>]*>/g, '') : ''};
        }""",
        which,
    )


def plot_title(page: Any, key: str) -> str:
    """The (tag-free) title of the Plotly chart with key ``key``; '' before it is drawn."""
    info = plot_point(page, key)
    return info["title"] if info else ""


def plot_x_max(page: Any, key: str) -> float | None:
    """Largest x of any trace of the Plotly chart ``key`` (e.g. the last training step drawn)."""
    return page.locator(keyed(key)).first.evaluate(
        """(el) => {
            const gd = el.querySelector('.js-plotly-plot');
            if (!gd || !gd._fullData) return null;
            let m = null;
            for (const t of gd._fullData)
                for (const v of (t.x || [])) if (typeof v === 'number' && (m === null || v > m)) m = v;
            return m;
        }"""
    )


def pick_plot_tool(page: Any, key: str, tool: str) -> None:
    """Choose a tool (``lasso``, ``select`` (box), ``pan``, ``zoom``) in the toolbar of Plotly chart ``key``."""
    chart = page.locator(keyed(key)).first
    chart.hover()  # the toolbar shows on hover
    chart.locator(f'.modebar-btn[data-attr="dragmode"][data-val="{tool}"]').click()


def lasso_around(page: Any, x: float, y: float, r: float = 6.0) -> None:
    """Draw a small lasso (a square loop of radius ``r`` px) around (x, y) with the mouse."""
    page.mouse.move(x - r, y - r)
    page.mouse.down()
    for dx, dy in ((r, -r), (r, r), (-r, r), (-r, -r)):
        page.mouse.move(x + dx, y + dy, steps=4)
    page.mouse.up()


# ------------------------------------------------------------------ screenshots
def screenshots_enabled() -> bool:
    return os.environ.get(SCREENSHOT_ENV, "") == "1"


def save_screenshot(
    page: Any, name: str, max_height: int = 2600, out_dir: Path = SCREENSHOT_DIR
) -> Path | None:
    """When $VAE_LAB_SCREENSHOTS=1: the whole page (up to ``max_height`` px) as docs/screenshots/<name>.png.

    Streamlit scrolls inside its main pane, so the viewport is stretched to the content's height
    for the shot and restored afterwards. The PNG is reduced to a 256-colour palette (the UI is
    flat colours) to keep the committed files small.
    """
    if not screenshots_enabled():
        return None
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("""() => {
        const m = document.querySelector('[data-testid="stMain"]');
        return m ? m.scrollHeight : document.documentElement.scrollHeight;
    }""")
    size = page.viewport_size or VIEWPORT
    page.evaluate(
        """() => { const m = document.querySelector('[data-testid="stMain"]'); if (m) m.scrollTo(0, 0); }"""
    )
    page.set_viewport_size(
        {"width": size["width"], "height": int(min(max(height, size["height"]), max_height))}
    )
    try:
        time.sleep(1.0)  # charts re-lay themselves out to the new size
        settle(page, 30)
        raw = out_dir / f".{name}.raw.png"
        page.screenshot(path=str(raw))
    finally:
        page.set_viewport_size(size)
    path = out_dir / f"{name}.png"
    with Image.open(raw) as im:
        im.convert("RGB").quantize(
            colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        ).save(path, optimize=True)
    raw.unlink()
    return path
