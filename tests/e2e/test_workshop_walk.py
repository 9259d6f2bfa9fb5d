"""The 20-minute workshop of lab_pages/tour.py, walked in Chromium step by step, in English and in Chinese (issue #28).

For each step of ``tour.WORKSHOP``: every control the step names (its *italic* and **bold** spans; in Chinese the
「…」 spans of the catalogue's translation) is on that step's pages under that name, so a renamed button breaks the
walk; and what the step asks the room to look at is on screen. Widgets are found by key, label or heading, never by
position. The walk works on either default model (fmnist_vae_z16 with Fashion-MNIST, else digits_vae_z2).

Run: .venv/bin/python -m pytest tests/e2e/test_workshop_walk.py -q -s   (-s prints each step's seconds)
"""

from __future__ import annotations

import re
import time

import pytest

from lab_pages import tour
from tests.test_readme import ZH_NAME, names_control, script_names, zh_catalogue
from vae_core.evaluate import LOW_KL_THRESHOLD

from .harness import (
    ZH_LOCALE,
    click_button,
    expand_navigation,
    keyed,
    open_url,
    plot_point,
    problems,
    selectbox_value,
    settle,
    switch_page,
    wait_for_path,
)

# minutes -> the pages the step walks (URL paths, in order); a new step must be added here. To keep the walk short it
# opens the pages that hold a step's named controls or what it asks the room to look at: Theory (no named control)
# and Manifold & interpolation (named by its menu entry, on every page) are opened by test_browser.py, and the
# explorer is reached the script's way, through *Send μ to the latent explorer*.
STEP_PAGES = {
    "0–2": [""],
    "2–5": ["derivation"],
    "5–9": ["train"],
    "9–13": ["elbo"],
    "13–16": ["latent-map"],
    "16–19": ["compare"],
    "19–20": [""],
}
WALK_EPOCHS = (
    1000  # the run must outlast the step on any machine: the walk pauses, steps, resumes and stops it
)
SVG_SRCS = """() => [...document.querySelectorAll('[data-testid="stMain"] img')].map(i => i.src)
                              .filter(s => s.startsWith('data:image/svg+xml'))"""
CONTROLS = """() => {
    const main = document.querySelector('[data-testid="stMain"]');
    const out = [];
    for (const b of main.querySelectorAll('button')) {
        const md = b.querySelector('[data-testid="stMarkdownContainer"]');
        out.push((md ? md.innerText : b.innerText).trim());
    }
    for (const l of main.querySelectorAll('[data-testid="stWidgetLabel"]')) out.push(l.innerText.trim());
    for (const a of document.querySelectorAll('[data-testid="stSidebarNavLink"], [data-testid="stPageLink-NavLink"]'))
        out.push(a.innerText.trim().split('\\n').pop().trim());
    return out.filter(t => t);
}"""


class Lang:
    """The walk's language: its translator (the zh_CN catalogue, or none) and how a step quotes UI names."""

    def __init__(self, zh: bool) -> None:
        self.zh = zh

    def __call__(self, text: str) -> str:
        return zh_catalogue().get(text, text) if self.zh else text

    def names(self, step: tour.WorkshopStep) -> set[str]:
        return set(ZH_NAME.findall(self(step.do))) if self.zh else set(script_names(step.do))

    def pattern(self, template: str, **groups: str) -> re.Pattern[str]:
        """A regex of the translated ``template`` as drawn (Markdown ** gone): ``groups`` name the fields to capture
        (field -> its regex), every other field matches anything."""
        parts = re.split(r"(\{\w+(?::[^}]*)?\})", self(template).replace("**", ""))
        out = []
        for p in parts:
            m = re.fullmatch(r"\{(\w+)(?::[^}]*)?\}", p)
            out.append(
                f"(?P<{m.group(1)}>{groups[m.group(1)]})"
                if m and m.group(1) in groups
                else ".*?"
                if m
                else re.escape(p)
            )
        return re.compile("".join(out), re.S)


def seen_controls(page) -> set[str]:
    expand_navigation(page)
    return set(page.evaluate(CONTROLS))


def go(page, path: str) -> None:
    old = page.locator('[data-testid="stMain"] h1').first.inner_text().strip()
    switch_page(page, path)
    wait_for_path(page, path, old_title=old)


def progress(page) -> str:
    return page.locator('[data-testid="stProgress"]').first.inner_text()


def wait_until(condition, timeout: float, what, poll: float = 0.1):
    """``condition()``'s first true value within ``timeout`` s; else fails with ``what`` (a text, or a function that
    says what the page shows then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"not within {timeout:.0f} s: {what() if callable(what) else what}")


class Train:
    """Minutes 5–9 on the Train page: the stacked chart grows, Pause holds the step, Step trains one batch each,
    Resume trains on, and the heatmap's caption counts the rows it draws."""

    def __init__(self, page, lang: Lang, timings: dict[str, float]) -> None:
        self.page, self._, self.timings = page, lang, timings
        self.step_re = lang.pattern(
            "**{state}** · step {step:,}/{total:,} · epoch {epoch:.2f}/{epochs} · {rate} examples/s{eta}",
            state=r"\S+",
            step=r"[\d,]+",
        )

    def state_and_step(self) -> tuple[str, int]:
        m = self.step_re.search(progress(self.page))
        assert m, f"the progress line is not what the page writes: {progress(self.page)!r}"
        return m.group("state"), int(m.group("step").replace(",", ""))

    def wait_state(self, state: str, timeout: float) -> int:
        return wait_until(
            lambda: self.state_and_step()[1] if self.state_and_step()[0] == self._(state) else None,
            timeout,
            lambda: f"the progress line says {self._(state)!r} ({progress(self.page)!r})",
        )

    def walk(self) -> None:
        page, _ = self.page, self._
        epochs = page.locator(f"{keyed('train_epochs')} input").first
        epochs.fill(str(WALK_EPOCHS))
        epochs.press("Enter")
        settle(page)
        t0 = time.perf_counter()
        click_button(page, "train_start")
        wait_until(
            lambda: page.locator('[data-testid="stProgress"]').count(), 30, "a progress line after Start"
        )
        self.wait_state("running", 30)
        self.timings["Start → running (s)"] = time.perf_counter() - t0

        # the stacked chart grows: the live loss chart (an SVG while training) changes as steps come in
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(set(seen)) < 3:
            srcs = page.evaluate(SVG_SRCS)
            if len(srcs) == 2:  # the loss chart and the KL heatmap
                seen.append(srcs[0])
            time.sleep(0.3)
        assert len(set(seen)) >= 3, f"the live loss chart did not grow ({len(set(seen))} distinct images)"

        # Pause during the run: the status says paused and the step count stops
        click_button(page, "train_pause")
        paused = self.wait_state("paused", 30)
        settle(page)
        time.sleep(
            2.5
        )  # two refreshes: a step in flight at the pause may land (one at most), then nothing moves
        state, held = self.state_and_step()
        assert state == _("paused") and held - paused in (0, 1), (paused, held, progress(page))
        time.sleep(2.0)
        assert self.state_and_step()[1] == held, "the step count moved while paused"

        # Step twice: one batch each. Under load the paused line can still show the step before one that
        # was in flight at the pause (at most one, as above), so the first Step is counted from its own
        # report and the second must add exactly one to it.
        before = held
        for n in (1, 2):
            click_button(page, "train_step")
            allowed = (before + 1, before + 2) if n == 1 else (before + 1,)
            wait_until(
                lambda allowed=allowed: self.state_and_step()[1] in allowed,
                30,
                lambda n=n, before=before: (
                    f"Step {n} trains one batch from step {before} (now: {progress(page)!r}; "
                    f"{page.locator('[data-testid=stAlert]').all_inner_texts()})"
                ),
            )
            time.sleep(0.5)
            before = self.state_and_step()[1]
        time.sleep(1.0)
        assert self.state_and_step() == (_("paused"), before), progress(page)

        # Resume: training goes on; the heatmap caption needs a test after it (once per epoch)
        click_button(page, "train_resume")
        self.wait_state("running", 30)
        last_test = self._.pattern(
            "At the last test (step {step:,}): **{low} of {total}** dimensions carry less than {threshold:g} nats "
            "of KL per image (the pale rows);",
            step=r"[\d,]+",
            low=r"\d+",
            total=r"\d+",
        )

        def tested_after_resume():
            for text in page.locator('[data-testid="stCaptionContainer"]').all_inner_texts():
                m = last_test.search(text)
                if m and int(m.group("step").replace(",", "")) > held + 2:
                    return m
            return None

        wait_until(tested_after_resume, 120, "a test of the model after Resume", poll=0.5)
        click_button(page, "train_pause")
        self.wait_state("paused", 30)
        settle(page)
        self.check_heatmap_caption()

    def check_heatmap_caption(self) -> None:
        """The caption's count of dims under LOW_KL_THRESHOLD agrees with the heatmap's rows: every row that ends far
        under it is counted, none that ends far above it."""
        page, _ = self.page, self._
        rows = page.locator(keyed("train_kl_heatmap")).first.evaluate(
            """(el) => {
                const gd = el.querySelector('.js-plotly-plot');
                if (!gd || !gd._fullData) return null;
                const z = gd._fullData[0].z;
                return Array.from(z, row => { const r = Array.from(row).filter(Number.isFinite); return r[r.length - 1]; });
            }"""
        )
        assert rows, "no interactive KL heatmap while paused"
        pattern = self._.pattern(
            "At the last test (step {step:,}): **{low} of {total}** dimensions carry less than {threshold:g} nats "
            "of KL per image (the pale rows);",
            low=r"\d+",
            total=r"\d+",
            threshold=r"[\d.]+",
        )
        captions = page.locator('[data-testid="stCaptionContainer"]').all_inner_texts()
        found = [(m, t) for t in captions if (m := pattern.search(t))]
        assert found, f"no caption under the heatmap counts the low-KL dims: {captions}"
        m, caption = found[0]
        assert float(m.group("threshold")) == LOW_KL_THRESHOLD and int(m.group("total")) == len(rows)
        # The rows are the training batches' KL (averaged over a few steps), the caption the test set's at the last
        # test: a dim that is still crossing the threshold may sit on either side in the two. A row far under it
        # (< threshold / 2) must be counted, and a row far above it (>= 2 x threshold) must not.
        low = int(m.group("low"))
        clearly = sum(1 for v in rows if v < LOW_KL_THRESHOLD / 2)
        maybe = sum(1 for v in rows if v < 2 * LOW_KL_THRESHOLD)
        assert clearly <= low <= maybe, (
            f"the caption counts {low} dims under {LOW_KL_THRESHOLD} nats; the heatmap's rows end at "
            f"{[round(v, 3) for v in rows]} ({clearly} far under it, {maybe} under twice it): {caption}"
        )
        under = sum(1 for v in rows if v < LOW_KL_THRESHOLD)
        self.timings["caption's low-KL count"] = low
        self.timings["rows under the threshold"] = under


def prior_draws_differ(page, heading: str) -> float:
    """The two image grids under the heading ``heading`` (the AE's and the VAE's prior draws): their mean absolute
    pixel difference in [0, 1] (0: the same images)."""
    return page.evaluate(
        """async (heading) => {
            const els = [...document.querySelectorAll('[data-testid="stMain"] h1, [data-testid="stMain"] h2,'
                + '[data-testid="stMain"] h3, [data-testid="stImage"] img')];
            const at = els.findIndex(e => /^H[123]$/.test(e.tagName) && e.innerText.includes(heading));
            if (at < 0) return -1;
            const imgs = [];
            for (const e of els.slice(at + 1)) { if (e.tagName !== 'IMG') break; imgs.push(e); }
            if (imgs.length !== 2) return -2;
            const pix = [];
            for (const img of imgs) {
                await img.decode();
                const c = document.createElement('canvas');
                c.width = 64; c.height = 64;
                const g = c.getContext('2d');
                g.drawImage(img, 0, 0, 64, 64);
                pix.push(g.getImageData(0, 0, 64, 64).data);
            }
            let d = 0;
            for (let i = 0; i < pix[0].length; i += 4) d += Math.abs(pix[0][i] - pix[1][i]);
            return d / (pix[0].length / 4) / 255;
        }""",
        heading,
    )


def walk(page, base_url: str, lang: Lang) -> dict[str, float]:
    """The whole workshop in one session; returns seconds per step (and a few figures)."""
    _ = lang
    timings: dict[str, float] = {}
    open_url(page, base_url, "")
    for step in tour.WORKSHOP:
        t0 = time.perf_counter()
        controls: set[str] = set()
        for path in STEP_PAGES[step.minutes]:
            if page.evaluate("() => window.location.pathname").strip("/") != path:
                go(page, path)
            controls |= seen_controls(page)
            if step.minutes == "5–9":
                digits = selectbox_value(page, "train_dataset") != "fashion-mnist"
                Train(page, lang, timings).walk()
                if (
                    digits
                ):  # the lab opened on digits_vae_z2: the trained d = 16 model plays fmnist_vae_z16's part
                    click_button(page, "train_use")
                    settle(page)
                click_button(page, "train_stop")
                settle(page)
            elif step.minutes == "9–13":
                click_button(page, "elbo_pick_1")  # the *#* button under a test image
                band, deadline = False, time.monotonic() + 30
                while not band and time.monotonic() < deadline:  # Plotly fills _fullData as it draws
                    band = page.locator(keyed("elbo_iwae_chart")).first.evaluate(
                        """(el, name) => { const gd = el.querySelector('.js-plotly-plot');
                            return !!gd && (gd._fullData || []).some(
                                t => t.name === name && t.fill === 'toself' && t.x.length > 1); }""",
                        _("± 1 standard error of that mean"),
                    )
                    time.sleep(0.0 if band else 0.3)
                assert band, "K's curve on the ELBO page has no band of its standard error"
                controls |= seen_controls(page)
                click_button(page, "elbo_use_z2")  # *Switch to the shipped VAE with d = 2*
                page.wait_for_selector(f"{keyed('elbo_posterior_chart')} .js-plotly-plot", timeout=120_000)
                settle(page)
                names = page.locator(keyed("elbo_posterior_chart")).first.evaluate(
                    "el => el.querySelector('.js-plotly-plot')._fullData.map(t => t.name)"
                )
                assert {"q(z|x) 1σ", "q(z|x) 2σ"} <= set(names), f"no ellipses of q after the switch: {names}"
            elif step.minutes == "13–16" and path == "latent-map":
                controls |= select_a_point_and_send(page, lang)
            elif step.minutes == "16–19":
                diff = prior_draws_differ(page, _("16 draws from the prior N(0, I), decoded by each"))
                assert diff not in (-1, -2), f"no prior draws under their heading ({diff})"
                assert diff > 0.02, f"the AE's and the VAE's prior draws are the same images ({diff:.4f})"
                timings["prior draws differ by"] = diff
            bad = problems(page) + [f"JavaScript error: {e}" for e in page.js_errors]
            assert not bad, f"step {step.minutes} on /{path}: {bad}"
        missing = [n for n in lang.names(step) if not any(names_control(n, c) for c in controls)]
        assert not missing, f"step {step.minutes} names {missing}, but its pages show only {sorted(controls)}"
        timings[step.minutes] = time.perf_counter() - t0
    return timings


def select_a_point_and_send(page, lang: Lang) -> set[str]:
    """Click one point of the latent map (retried if a projection swap swallows it), then *Send μ to the latent
    explorer*: the explorer opens. Returns the controls seen with the selection."""
    for _attempt in range(4):
        pt = plot_point(page, "latent_map_chart", which=0.61)
        assert pt is not None, "the latent map drew no points"
        page.mouse.move(pt["x"], pt["y"])
        time.sleep(0.3)
        page.mouse.click(pt["x"], pt["y"])
        try:
            page.wait_for_selector(f"{keyed('latent_map_send')} button", timeout=10_000)
            break
        except Exception:  # noqa: BLE001 - Playwright's TimeoutError: try again
            settle(page)
    settle(page)
    controls = seen_controls(page)
    click_button(page, "latent_map_send")
    wait_for_path(page, "explorer")
    return controls


def test_every_step_is_on_the_walk() -> None:
    assert list(STEP_PAGES) == [s.minutes for s in tour.WORKSHOP], "a step of tour.WORKSHOP has no pages here"


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_workshop_walks_as_the_script_says(browser, app_server, new_page, language) -> None:
    zh = language == "zh"
    page = new_page(**({"locale": ZH_LOCALE} if zh else {}))
    t0 = time.perf_counter()
    timings = walk(page, app_server.url, Lang(zh))
    print(
        f"\n{language}: walked in {time.perf_counter() - t0:.1f} s: "
        + ", ".join(f"{k} {v:.2f}" for k, v in timings.items())
    )
