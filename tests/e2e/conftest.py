"""Fixtures for the browser tests: one app server and one Chromium for the whole session.

Every test gets its own browser context, hence its own Streamlit session (its own current
model, trainer and selections). All tests skip, with the reason, where Playwright or Chromium
is missing.
"""

from __future__ import annotations

import pytest

from .harness import VIEWPORT, ZH_LOCALE, launch_browser, missing_requirement, start_server


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """`streamlit run app.py` on a free loopback port; its process group is killed at the end."""
    reason = missing_requirement()
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")
    server = start_server(log_path=tmp_path_factory.mktemp("streamlit") / "server.log", timeout=120)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    reason = missing_requirement()
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_browser(p)
        yield b
        b.close()


def _context_page(browser, **context_options):
    """(context, tab): a fresh browser context (a new Streamlit session); ``page.js_errors`` collects
    uncaught JavaScript errors."""
    context = browser.new_context(viewport=VIEWPORT, **context_options)
    context.set_default_timeout(60_000)
    pg = context.new_page()
    pg.js_errors = []
    pg.on("pageerror", lambda exc: pg.js_errors.append(str(exc)))
    return context, pg


@pytest.fixture
def page(browser, app_server):
    """A fresh tab in a fresh context (a new Streamlit session), with the browser's default (English) locale."""
    context, pg = _context_page(browser)
    yield pg
    context.close()


@pytest.fixture
def zh_page(browser, app_server):
    """Like ``page``, in a browser whose locale is zh-CN (``st.context.locale``: the lab opens in 中文)."""
    context, pg = _context_page(browser, locale=ZH_LOCALE)
    yield pg
    context.close()


@pytest.fixture
def new_page(browser):
    """A factory of fresh tabs, each in its own context (``new_page(locale="zh-CN")``), for a test that
    starts its own server; every context is closed at the end."""
    contexts = []

    def make(**context_options):
        context, pg = _context_page(browser, **context_options)
        contexts.append(context)
        return pg

    yield make
    for context in contexts:
        context.close()
