"""The session's language and its translator: GNU gettext catalogues read with Python's ``gettext``.

Each Streamlit session has its own language (sessions differ: nothing is installed
process-wide). It comes, in this order, from ``?lang=zh`` / ``?lang=en`` in the URL, the choice
kept in the session, and the browser's locale (``st.context.locale``: ``zh…`` gives 简体中文,
anything else English). The source strings are English; ``locales/zh_CN/LC_MESSAGES/messages.po``
holds their translations and the committed ``messages.mo`` is what runs (``python -m
scripts.i18n`` extracts, updates and compiles with Babel; tests/test_i18n.py checks that the
catalogue is complete and the ``.mo`` in sync).

Pages call ``_("…")`` and ``ngettext(singular, plural, n)`` while they draw; module-level
constants are marked with ``N_("…")`` and translated where they are drawn. A test-only
pseudo-locale (:data:`PSEUDO`, enabled by ``VAE_LAB_PSEUDO_LOCALE=1``) wraps every translated
string in ⟦ ⟧, so a test can find text that bypassed the translator.
"""

from __future__ import annotations

import functools
import gettext
import os
from pathlib import Path

import streamlit as st

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"
LANGUAGES = {"zh_CN": "简体中文", "en": "English"}  # code -> its own name, as the selector shows it
DEFAULT = "en"
PSEUDO = "qps"  # pseudo-localisation, for tests only
PSEUDO_ENV = "VAE_LAB_PSEUDO_LOCALE"
LANG_KEY = "lang"  # session state: the session's language code
QUERY = "lang"  # the URL parameter: ?lang=zh or ?lang=en
OPEN, CLOSE = "⟦", "⟧"  # the pseudo-locale's markers


class PseudoTranslations(gettext.NullTranslations):
    """Wraps every message in ⟦ ⟧ (plural forms too): text outside the markers was not translated."""

    def gettext(self, message: str) -> str:
        return f"{OPEN}{message}{CLOSE}"

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        return f"{OPEN}{msgid1 if n == 1 else msgid2}{CLOSE}"


def pseudo_enabled() -> bool:
    """True when the test-only pseudo-locale may be chosen (``VAE_LAB_PSEUDO_LOCALE=1``)."""
    return os.environ.get(PSEUDO_ENV, "") == "1"


@functools.lru_cache(maxsize=8)
def catalogue(lang: str) -> gettext.NullTranslations:
    """The translator of ``lang`` (read once per process; a translator holds no session state).

    English is the source language (no catalogue needed). A language without a compiled
    catalogue falls back to English rather than failing the page.
    """
    if lang == PSEUDO and pseudo_enabled():
        return PseudoTranslations()
    if lang == DEFAULT:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=str(LOCALE_DIR), languages=[lang], fallback=True)


def normalize(value: object) -> str | None:
    """A language code from a URL parameter or a browser locale (``zh``, ``zh-CN``, ``zh_TW``, ``en-GB``…), or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    v = value.strip().replace("-", "_").lower()
    if v == PSEUDO and pseudo_enabled():
        return PSEUDO
    if v.startswith("zh") or v == "cn":
        return "zh_CN"
    if v.startswith("en"):
        return "en"
    return None


def _browser_lang() -> str:
    try:
        return normalize(st.context.locale) or DEFAULT
    except Exception:  # no browser context (a bare script run)
        return DEFAULT


_last_lang = DEFAULT  # the language of the last script run in this process: see session_lang()


def session_lang() -> str:
    """This session's language code; the URL's ``?lang=`` wins, then the session's choice, then the browser.

    Outside a script run (no session: e.g. a test harness calling a widget's ``format_func`` after the
    run), the language of the last run in this process is used; inside the server every call has a session.
    """
    global _last_lang
    from streamlit.runtime.scriptrunner import get_script_run_ctx  # noqa: PLC0415

    if get_script_run_ctx(suppress_warning=True) is None:
        return _last_lang
    _last_lang = lang = _session_lang()
    return lang


def _session_lang() -> str:
    from_url = normalize(st.query_params.get(QUERY))
    if from_url is not None:
        st.session_state[LANG_KEY] = from_url
        return from_url
    lang = st.session_state.get(LANG_KEY)
    if lang not in LANGUAGES and lang != PSEUDO:
        lang = _browser_lang()
        st.session_state[LANG_KEY] = lang
    return lang


def set_lang(lang: str) -> None:
    """Switch this session to ``lang`` and show it in the URL (so the link can go on a slide)."""
    if lang not in LANGUAGES and not (lang == PSEUDO and pseudo_enabled()):
        raise ValueError(f"unknown language {lang!r}; use one of {tuple(LANGUAGES)}")
    st.session_state[LANG_KEY] = lang
    st.query_params[QUERY] = "zh" if lang == "zh_CN" else lang


def _(message: str) -> str:
    """``message`` in this session's language."""
    return catalogue(session_lang()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The plural form for count ``n`` in this session's language (Chinese has one form)."""
    return catalogue(session_lang()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a module-level string for extraction; translate it with ``_()`` where it is drawn."""
    return message


def is_chinese() -> bool:
    """True when this session reads Chinese (for choices beyond text: fonts, number words)."""
    return session_lang() == "zh_CN"


def error_text(exc: BaseException | str) -> str:
    """An error's or a status message's text in this session's language: a vae_core
    :class:`~vae_core.errors.LabError` or :class:`~vae_core.errors.Msg` is rendered from its translated
    template (nested errors in its parameters too); anything else as it is."""
    from vae_core.errors import LabError, Msg  # noqa: PLC0415 - keeps this module free of vae_core at import

    if not isinstance(exc, (LabError, Msg)):
        return str(exc)
    translated = _(exc.template)
    if translated == exc.template:  # English (or not translated yet): the English text as vae_core wrote it
        return str(exc)
    params = {k: error_text(v) if isinstance(v, (BaseException, Msg)) else v for k, v in exc.params.items()}
    return exc.render(translated, params)  # a translation that lost a field: the English sentence
