"""Pseudo-localisation: every page, rendered under the test-only locale that wraps each translated
string in ⟦ ⟧, shows no user-visible text outside the markers except numbers, formulas and names.

This is how a string that bypassed the translator is found: it stands outside the markers.
"""

from __future__ import annotations

import json
import re

import pytest
from streamlit.testing.v1 import AppTest

from lab_pages import i18n, tour
from lab_pages.model_store import list_shipped
from tests.conftest import APP
from vae_core.data import DATASETS

OPEN, CLOSE = i18n.OPEN, i18n.CLOSE
# What may stand outside the markers: numbers, units of measurement written as symbols, formulas'
# symbols, punctuation, arrows and emoji, and names (models, datasets, classes, files, Python/CLI names).
_ALLOWED = re.compile(
    r"""^[\s\d.,:;!?%+\-−–—=≈≤≥<>×·/\\|()\[\]{}'"`*_#~^&@$€…•→←↑↓⟶‖∑∫∞±√θμσβλεπΦφψωΔ∂∇ẑ̂ᵢⱼₖ₀₁₂₃₄₅₆₇₈₉⁰¹²³⁴⁵⁶⁷⁸⁹]*$"""
)
# a token of a formula: a subscript or superscript, a norm bar, a hat, or a minus sign glued to a name
_FORMULA = re.compile(r"[_^‖̂]|^−")
# short English words: a one- or two-letter token is a variable (x, z, K, μ) unless it is one of these
_ENGLISH_SHORT = {
    "an",
    "of",
    "to",
    "in",
    "on",
    "at",
    "by",
    "or",
    "is",
    "it",
    "as",
    "be",
    "no",
    "up",
    "we",
    "if",
    "do",
    "so",
    "my",
    "me",
    "go",
    "vs",
    "per",
}
_EMOJI = re.compile("[\U0001f000-\U0001ffff\u2600-\u27bf\u2b00-\u2bff\ufe0f\u200d]")


def _names() -> set[str]:
    names = {
        "ELBO",
        "KL",
        "IWAE",
        "UMAP",
        "PCA",
        "AE",
        "VAE",
        "VAEs",
        "AEs",
        "MNIST",
        "Fashion-MNIST",
        "digits",
        "fashion-mnist",
        "mnist",
        "x",
        "z",
        "q",
        "p",
        "K",
        "N",
        "D",
        "log",
        "exp",
        "sigmoid",
        "softplus",
        "BCE",
        "nats",
        "bits",
        "safetensors",
        "npz",
        "zip",
        "PNG",
        "JPEG",
        "WebP",
        "Python",
        "PyTorch",
        "Streamlit",
        "Adam",
        "SGD",
        "ReLU",
        "z1",
        "z2",
        "μ",
        "σ",
        "β",
        "#",
        "L-BFGS",
        "Workshop",
        "Lab",  # the product's name, "VAE Workshop Lab"
        "sin",
        "cos",
        "tanh",
        "erf",
        "argmax",
        "CB",
        "NLL",
        "nats/image",
        "GELU",
        "ELU",
        "简体中文",
        "English",
        "语言",
        "Language",
    }  # the language selector names each language in itself
    for name, _meta in list_shipped().items():
        names.add(name)
        names.add(name.split("/")[-1])
    for spec in DATASETS.values():
        names.update(getattr(spec, "class_names", ()) or ())
    from vae_core.data import FASHION_CLASSES

    names.update(FASHION_CLASSES)
    names.update(str(d) for d in range(10))
    return names


NAMES = None


def leftover(text: str) -> str:
    """What of ``text`` stands outside the ⟦ ⟧ markers and is not a number, a formula or a name ('' if nothing)."""
    global NAMES
    if NAMES is None:
        NAMES = _names()
    s = str(text)
    prev = None
    while prev != s:  # innermost markers first: a translated string may hold translated parts
        prev = s
        s = re.sub(r"⟦[^⟦⟧]*⟧", " ", s)
    s = re.sub(r"\$[^$]*\$", " ", s)  # inline formulas
    s = re.sub(r"`[^`]*`", " ", s)  # code and names in backticks
    s = re.sub(r"https?://\S+", " ", s)
    s = _EMOJI.sub(" ", s)
    for name in sorted(
        NAMES, key=len, reverse=True
    ):  # names with spaces or hyphens ("Ankle boot", "fashion-mnist")
        if len(name) > 3 and name in s:
            s = s.replace(name, " ")
    s = re.sub(r":material/[a-z_]+:", " ", s)
    words = re.findall(r"[^\s.,:;!?()\[\]{}'\"`*|/=+<>·×—–\-]+", s)
    bad = [
        w
        for w in words
        if w not in NAMES
        and not _ALLOWED.match(w)
        and not _FORMULA.search(w)
        and (len(w) > 2 or w.lower() in _ENGLISH_SHORT)
        and not re.fullmatch(r"[\w.-]+\.(py|json|safetensors|npz|zip|png)", w)
        and not re.fullmatch(r"[A-Za-z]?\d+([.,]\d+)?[A-Za-z%]?", w)
        and not re.fullmatch(r"[a-z_]+_[a-z0-9_]+", w)
    ]
    return " ".join(bad)


def _visible(at: AppTest) -> list[tuple[str, str]]:
    """(where, text) of every piece of text the page shows: element bodies, labels, help, options, chart text."""
    out: list[tuple[str, str]] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "info",
        "warning",
        "error",
        "success",
        "exception",
    ):
        for el in at.get(kind):
            out.append((kind, getattr(el, "value", "") or ""))
    for kind in (
        "button",
        "selectbox",
        "slider",
        "select_slider",
        "number_input",
        "text_input",
        "checkbox",
        "radio",
        "toggle",
        "multiselect",
        "text_area",
        "date_input",
        "color_picker",
    ):
        for el in at.get(kind):
            out.append((kind + ".label", getattr(el, "label", "") or ""))
            if getattr(el, "help", None):
                out.append((kind + ".help", el.help))
            for opt in getattr(el, "options", None) or []:
                out.append((kind + ".option", str(opt)))
    for el in at.get("metric"):
        out.append(("metric.label", el.label))
    for kind in ("tab", "expander"):
        for el in at.get(kind):
            out.append((kind, getattr(el, "label", "") or ""))
    for el in at.get("image"):
        out += [("image.caption", c) for c in el.captions if c]
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        lay = spec.get("layout", {})
        for ax in [k for k in lay if k.startswith(("xaxis", "yaxis"))] + ["title"]:
            t = lay.get(ax, {}).get("title") if ax != "title" else lay.get("title")
            t = t.get("text") if isinstance(t, dict) else t
            if t:
                out.append((f"chart.{ax}", t))
        for tr in spec.get("data", []):
            if tr.get("name") and tr.get("showlegend", True) is not False:
                out.append(("chart.legend", tr["name"]))
    return out


@pytest.fixture(scope="module", autouse=True)
def pseudo(monkeypatch_module):
    monkeypatch_module.setenv(i18n.PSEUDO_ENV, "1")
    i18n.catalogue.cache_clear()
    yield
    i18n.catalogue.cache_clear()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_the_checker_finds_an_untranslated_word() -> None:
    assert leftover("⟦Train⟧ 42 nats ⟦per⟧") == ""
    assert leftover("⟦Train⟧ the model") == "the model"
    assert leftover("⟦Train⟧ 3 of them") == "of them"
    assert leftover("fmnist_vae_z16 · z=16 · 5.0 ⟦epochs⟧") == ""


@pytest.mark.parametrize("page", [p for p in tour.PAGES], ids=lambda p: p.url or "home")
def test_every_page_text_goes_through_the_translator(page) -> None:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["lang"] = i18n.PSEUDO
    at.run()
    if page.url:
        at.switch_page(page.path).run()
    assert not at.exception, at.exception
    assert at.session_state["lang"] == i18n.PSEUDO
    bad = [(where, text, left) for where, text in _visible(at) if (left := leftover(text))]
    assert not bad, "\n".join(f"{w}: {left!r}   in {t[:120]!r}" for w, t, left in bad[:30])


def _train_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["lang"] = i18n.PSEUDO
    at.run()
    at.switch_page("lab_pages/train.py").run()
    return at


def test_errors_from_bad_settings_are_translated() -> None:
    """The form's messages come from vae_core's typed errors (ConfigError templates): rendered translated."""
    at = _train_page()
    at.text_input(key="train_hidden").set_value("400,abc").run()
    at.number_input(key="train_lr").set_value(0.0).run()
    errors = [e.value for e in at.error]
    assert len(errors) >= 2, errors
    bad = [(e, left) for e in errors if (left := leftover(e))]
    assert not bad, bad


def test_a_refused_checkpoint_name_is_translated() -> None:
    at = _train_page()
    at.button(key="train_step").click().run()
    at.text_input(key="train_save_name").set_value("../evil").run()
    at.button(key="train_save").click().run()
    texts = [e.value for e in at.error]
    assert texts and all(not leftover(t) for t in texts), texts
