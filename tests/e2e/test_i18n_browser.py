"""The lab in Chinese, in Chromium with the browser's locale set to zh-CN (issue 16 (c)).

The language comes from ``?lang=`` in the URL, then the sidebar's selector, then the browser's
locale (docs/i18n.md). With VAE_LAB_SCREENSHOTS=1 the run also rewrites docs/screenshots/zh/*.png
(the pictures of README.zh-CN.md).
"""

from __future__ import annotations

import re
import time

from lab_pages.sidebar import LANG_WIDGET
from lab_pages.state import PICKER

from .harness import (
    PAGES,
    SCREENSHOT_DIR_ZH,
    choose_option,
    nav_titles,
    open_url,
    problems,
    save_screenshot,
    selectbox_value,
    switch_page,
    title_selector,
    url_path,
    wait_for_path,
)

CJK = re.compile(r"[\u4e00-\u9fff]")
ZH_MENU = ("首页", "训练")  # Home and Train in the navigation menu


def sidebar_model(page) -> str:
    """The name of the current model, as the sidebar's model box shows it (its first bold text)."""
    return (
        page.locator('[data-testid="stSidebar"] [data-testid="stMarkdownContainer"] strong')
        .first.inner_text()
        .strip()
    )


def wait_sidebar_model(page, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while sidebar_model(page) != name:
        assert time.monotonic() < deadline, f"the sidebar shows {sidebar_model(page)!r}, not {name!r}"
        time.sleep(0.2)


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').first.inner_text()


def test_a_chinese_browser_gets_every_page_in_chinese(zh_page, app_server):
    """Locale zh-CN: the navigation menu is in Chinese, and every page, reached through it in one
    session, opens with Chinese text and no exception, error box or JavaScript error."""
    page = zh_page
    title = open_url(page, app_server.url, "")
    menu = nav_titles(page)
    for word in ZH_MENU:
        assert word in menu, f"the navigation menu is not in Chinese: {menu}"
    assert len(menu) == len(PAGES), f"the menu shows {len(menu)} pages, the tour has {len(PAGES)}: {menu}"
    assert all(CJK.search(t) for t in menu), (
        f"menu entries without Chinese: {[t for t in menu if not CJK.search(t)]}"
    )
    assert "lang=" not in page.url, (
        f"the browser's locale alone chose the language, yet the URL is {page.url}"
    )
    found: dict[str, list[str]] = {}
    for path in PAGES:
        if path:
            assert switch_page(page, path) == "navigation menu", f"no menu entry for /{path}"
            title = wait_for_path(page, path, old_title=title)
        bad = problems(page) + [f"JavaScript error: {e}" for e in page.js_errors]
        page.js_errors.clear()
        if not CJK.search(main_text(page)):
            bad.append(f"no Chinese text on the page (title {title!r})")
        if bad:
            found[path] = bad
        save_screenshot(page, PAGES[path][0], out_dir=SCREENSHOT_DIR_ZH)
    assert not found, f"pages with problems in Chinese: {found}"


def test_switching_to_english_keeps_the_page_and_the_model(zh_page, app_server):
    """On a page in Chinese, with a model picked in the sidebar: the sidebar's language selector
    switches to English and back; the page (its URL path), the current model and the picker stay,
    and the URL shows the choice (?lang=en, ?lang=zh)."""
    page, path = zh_page, "explorer"
    zh_title = open_url(page, app_server.url, path)
    assert CJK.search(zh_title), f"a zh-CN browser got the title {zh_title!r}"
    target = "digits_vae_z2" if selectbox_value(page, PICKER) != "digits_vae_z2" else "digits_ae_z2"
    choose_option(page, PICKER, target)  # a model that is not the default: the switch must keep it
    wait_sidebar_model(page, target)
    zh_title = wait_for_path(page, path)
    assert selectbox_value(page, LANG_WIDGET) == "简体中文"

    choose_option(page, LANG_WIDGET, "English")
    page.wait_for_selector(title_selector(PAGES[path][1]), timeout=60_000)
    en_title = wait_for_path(page, path, old_title=zh_title)
    assert PAGES[path][1] in en_title
    assert url_path(page) == path, f"switching the language left /{path} for {page.url}"
    assert "lang=en" in page.url, f"the URL does not show the choice: {page.url}"
    assert sidebar_model(page) == target and selectbox_value(page, PICKER) == target, (
        f"switching the language changed the model: {sidebar_model(page)!r}, picker {selectbox_value(page, PICKER)!r}"
    )
    assert "Home" in nav_titles(page), "the navigation menu stayed in Chinese"
    assert not problems(page), problems(page)

    choose_option(page, LANG_WIDGET, "简体中文")  # and back
    back = wait_for_path(page, path, old_title=en_title)
    assert CJK.search(back), f"switching back to 中文 drew {back!r}"
    assert url_path(page) == path and "lang=zh" in page.url, page.url
    assert sidebar_model(page) == target, sidebar_model(page)
    assert not problems(page) and not page.js_errors, problems(page) + page.js_errors


def test_the_url_overrides_the_browsers_locale(zh_page, page, app_server):
    """?lang=en in a zh-CN browser gives English; ?lang=zh in an English browser gives Chinese."""
    title = open_url(zh_page, app_server.url, "train", query="lang=en")
    assert PAGES["train"][1] in title and not CJK.search(title), (
        f"?lang=en in a zh-CN browser: title {title!r}"
    )
    assert "Home" in nav_titles(zh_page) and "首页" not in nav_titles(zh_page)
    assert selectbox_value(zh_page, LANG_WIDGET) == "English"
    assert not problems(zh_page), problems(zh_page)

    title = open_url(page, app_server.url, "", query="lang=zh")
    assert CJK.search(title), f"?lang=zh in an English browser: title {title!r}"
    assert "首页" in nav_titles(page)
    assert selectbox_value(page, LANG_WIDGET) == "简体中文"
    assert not problems(page), problems(page)
