"""The lab in 中文 and English: choosing the language, the translator per session, the catalogue in sync."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from lab_pages import i18n
from scripts import i18n as cat
from tests.conftest import APP

HOME_ZH = "变分自编码器"  # a word the Home page's Chinese text must contain


class TestChoosingTheLanguage:
    @pytest.mark.parametrize(
        "value,lang",
        [
            ("zh", "zh_CN"),
            ("zh-CN", "zh_CN"),
            ("zh_TW", "zh_CN"),
            ("cn", "zh_CN"),
            ("en", "en"),
            ("en-GB", "en"),
            ("fr", None),
            ("", None),
            (None, None),
        ],
    )
    def test_normalize(self, value, lang) -> None:
        assert i18n.normalize(value) == lang

    def test_url_sets_it_and_the_selector_changes_it(self) -> None:
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params["lang"] = "zh"
        at.run()
        assert not at.exception and at.session_state["lang"] == "zh_CN"
        assert at.selectbox(key="sidebar_language").value == "zh_CN"
        at.selectbox(key="sidebar_language").set_value("en").run()
        assert not at.exception and at.session_state["lang"] == "en"
        assert at.query_params["lang"] == ["en"] or at.query_params["lang"] == "en"

    def test_translator_per_session(self) -> None:
        zh, en = i18n.catalogue("zh_CN"), i18n.catalogue("en")
        assert en.gettext("Home") == "Home"
        assert (
            zh is not en and zh.gettext("Home") != "Home"
        )  # sessions read their own catalogue; nothing is installed globally
        assert "_" not in __builtins__ if isinstance(__builtins__, dict) else not hasattr(__builtins__, "_")


class TestCatalogue:
    def test_complete_and_in_sync(self) -> None:
        problems = cat.problems("zh_CN")
        assert not problems, "\n".join(problems[:40]) + (
            f"\n… {len(problems) - 40} more" if len(problems) > 40 else ""
        )
