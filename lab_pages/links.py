"""Shareable links: the URL carries the page, the language, the model and each page's main controls.

Opening a link in a new browser reproduces the view: ``?lang=zh&model=digits_vae_z2&image=7&k=100`` on
``/elbo``. The router (app.py) reads the URL before the page runs (:func:`apply_url`) and writes the
session's state back into it (:func:`write_url`: before the page, which may stop, and after it), so the
address bar always holds a link to what is shown; the sidebar's *Copy link* (:func:`link_box`) copies it,
with the language. The explorer's point is written where it is set (lab_pages.state.write_url_point): it
changes in a fragment, which does not rerun the router.

Only what changed in the URL since this session last read or wrote it is applied (``SEEN``): a URL that
still names the model picked before a sidebar change must not undo that change. A bad value (an unknown
model, a K that is no option, an index out of range) gets a warning that names it, and the page keeps its
default. A model that lives only in this session cannot travel: the link box says so and offers to save it.
Imports nothing heavy at import time (Home draws before torch is imported).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitAPIException

from lab_pages import i18n, state
from lab_pages.i18n import N_, _, error_text

MODEL = "model"  # the URL parameter of the current model: a shipped name, or saved/<name>
SEEN = "_links_seen"  # {URL parameter: its text as this session last read or wrote it}
NOTES = "_links_notes"  # [str]: warnings about the URL's bad values, shown on the next page drawn
SAVE_NAME = "links_save_name"  # the link box's name field for saving a session model
SAVE_DONE = "links_save_done"  # (kind, text): the last save's result
ANY_VALUE = N_("a value this control takes")  # what a parameter must be, when its parser does not say


@dataclass(frozen=True)
class Param:
    """One control of a page carried by the URL: ``?name=text`` <-> ``st.session_state[key]``."""

    name: str  # the URL parameter
    key: str  # the session key it sets: a widget's key, set before the widget is drawn
    parse: Callable[[str], Any]  # the URL's text -> a value; raises ValueError when it is none
    check: Callable[[Any], str | None] = lambda v: None  # None, or what the page accepts (translated)
    default: Any = None  # left out of the URL at this value (None: written whenever set)
    fmt: Callable[[Any], str] = str  # a value -> the URL's text


def _number(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        v = kind(float(text)) if kind is int and float(text).is_integer() else kind(text)
        if not math.isfinite(v):
            raise ValueError(text)
        return v

    parse.what = N_("a whole number") if kind is int else N_("a number")  # type: ignore[attr-defined]
    return parse


def _flag(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


_flag.what = N_("1 or 0")  # type: ignore[attr-defined]


def _one_of(
    options: Callable[[], Any], shown: Callable[[], str] | None = None
) -> Callable[[Any], str | None]:
    """A check: the value must be among ``options()``; otherwise say which are (``shown()`` or all of them)."""

    def check(v: Any) -> str | None:
        opts = options()
        if v in opts:
            return None
        return _("one of {options}").format(options=shown() if shown else ", ".join(str(o) for o in opts))

    return check


def _between(lo: float, hi: float) -> Callable[[Any], str | None]:
    return lambda v: None if lo <= v <= hi else _("a number from {lo:g} to {hi:g}").format(lo=lo, hi=hi)


def _fmt_number(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


# ------------------------------------------------------------------ each page's parameters
def _n_test() -> int:
    """The number of test images of the current model's dataset (0 when none is loaded)."""
    from lab_pages.datasets import get_dataset  # noqa: PLC0415 - torch only where a page needs it
    from lab_pages.model_store import current_model  # noqa: PLC0415

    lm = current_model()
    try:
        return int(get_dataset(lm.dataset_name).x_test.shape[0]) if lm is not None else 0
    except Exception:  # a missing dataset: the page itself says so
        return 0


def _k_choices() -> tuple[int, ...]:
    from vae_core.identity import K_CHOICES  # noqa: PLC0415

    return K_CHOICES


def _elbo() -> list[Param]:
    return [
        Param(
            "image",
            "elbo_index",
            _number(int),
            _one_of(lambda: range(_n_test()), lambda: f"0–{_n_test() - 1}"),
            default=0,
        ),
        Param("k", "elbo_k", _number(int), _one_of(_k_choices), default=1000),
    ]


def _train() -> list[Param]:
    from lab_pages import train  # noqa: PLC0415 - its settings' keys and defaults: one place
    from lab_pages.datasets import available_datasets  # noqa: PLC0415
    from vae_core.models import LIKELIHOODS  # noqa: PLC0415

    names = {
        "train_latent": "d",
        "train_warmup": "warmup",
        "train_free_bits": "free_bits",
        "train_batch": "batch",
    }
    # The numbers are checked by the page itself: configs_from_settings says what is wrong with a value.
    numbers = [
        Param(
            names.get(n.key, n.key.removeprefix("train_")),
            n.key,
            _number(type(n.default)),
            default=n.default,
            fmt=_fmt_number,
        )
        for n in train.NUMBERS
    ]
    return [
        Param("dataset", "train_dataset", str, _one_of(available_datasets)),
        Param("kind", "train_kind", str.upper, _one_of(lambda: ("VAE", "AE")), "VAE", str.lower),
        *numbers,
        Param("hidden", "train_hidden", str, default="400"),
        Param("likelihood", "train_likelihood", str, _one_of(lambda: LIKELIHOODS), "bernoulli"),
        Param(
            "scale", "train_obs_std", _number(float), _between(0.001, 9.9), train.DEFAULT_SCALE, _fmt_number
        ),
        Param("binarize", "train_binarize", _flag, default=False, fmt=lambda v: "1" if v else "0"),
    ]


def _latent_map() -> list[Param]:
    def step_of_005(v: float) -> str | None:
        ok = 0.0 <= v <= 0.95 and abs(v * 20 - round(v * 20)) < 1e-9
        return None if ok else _("a multiple of 0.05 from 0 to 0.95")

    return [
        Param("neighbors", "latent_map_neighbors", _number(int), _between(5, 50), 15),
        Param("min_dist", "latent_map_min_dist", _number(float), step_of_005, 0.1, _fmt_number),
    ]


PAGE_PARAMS: dict[str, Callable[[], list[Param]]] = {  # URL path -> its parameters (built when used)
    "elbo": _elbo,
    "train": _train,
    "latent-map": _latent_map,
}
GLOBAL = (i18n.QUERY, MODEL, "present", "step")  # kept on every page (presenter mode owns the last two)


def page_params(page_url: str) -> list[Param]:
    """The parameters the page at URL path ``page_url`` reads from its URL (besides the global ones and z)."""
    make = PAGE_PARAMS.get(page_url)
    return make() if make is not None else []


def _bad(name: str, text: str, expected: str) -> str:
    return _(
        "The link's {name}={value} cannot be used here (expected {expected}); the page shows its default instead."
    ).format(name=name, value=text, expected=expected)


# ------------------------------------------------------------------ URL -> state
def _changed(name: str) -> str | None:
    """The URL's text for ``name`` if it changed since this session last read or wrote it, else None."""
    seen = st.session_state.setdefault(SEEN, {})
    text = st.query_params.get(name)
    if text is None or text == seen.get(name):
        return None
    seen[name] = text
    return text


def _apply_model(name: str) -> str | None:
    """Make the shipped or saved model ``name`` current; None, or a warning."""
    from lab_pages.model_store import list_shipped, load_shipped  # noqa: PLC0415
    from vae_core.checkpoint import CheckpointError  # noqa: PLC0415

    lm = state.stored_model()
    if lm is not None and lm.source == "shipped" and lm.label == name:
        return None
    if name not in list_shipped():
        return _(
            "The link names the model {name!r}, which this server does not have (it may have been saved on another "
            "server, or renamed); the lab shows its default model instead. Pick one in the sidebar."
        ).format(name=name)
    try:
        state.set_current_model(load_shipped(name))
    except CheckpointError as exc:
        return _("Could not load {name}: {reason}").format(name=name, reason=error_text(exc))
    state.set_picked("shipped", name)
    return None


def apply_url(page_url: str) -> None:
    """URL -> session state, before the page at ``page_url`` runs: the model, the page's controls and z, where the
    URL changed since this session last saw it. Bad values are noted (see :func:`show_notes`) and skipped."""
    ss = st.session_state
    ss[state.PAGE_URL] = page_url
    notes: list[str] = []
    if (name := _changed(MODEL)) is not None and (note := _apply_model(name)) is not None:
        notes.append(note)
    for p in page_params(page_url):
        text = _changed(p.name)
        if text is None:
            continue
        try:
            value = p.parse(text)
        except ValueError:
            value, why = None, _(getattr(p.parse, "what", ANY_VALUE))
        else:
            why = p.check(value)
        if why is None:
            ss[p.key] = value
        else:
            notes.append(_bad(p.name, text, why))
    if page_url in state.Z_PAGES and (text := _changed(state.Z_PARAM)) is not None:
        from lab_pages.model_store import current_model  # noqa: PLC0415

        lm = current_model()
        if lm is not None and (why := state.read_url_point(text, lm.key, lm.config.latent_dim)) is not None:
            notes.append(_bad(state.Z_PARAM, text, why))
    ss.setdefault(NOTES, []).extend(notes)


def show_notes() -> None:
    """The URL's bad values, each in a warning at the top of the page (once)."""
    for note in st.session_state.pop(NOTES, []):
        st.warning(note, icon=":material/link_off:")


# ------------------------------------------------------------------ state -> URL
def put_param(name: str, text: str | None) -> None:
    """Set (or, with None, remove) one URL parameter, sending nothing when it already reads so. A parameter bound
    to a widget (``bind="query-params"``) is the widget's to write: it is left alone."""
    st.session_state.setdefault(SEEN, {})[name] = text
    qp = st.query_params
    try:
        if text is None:
            if name in qp:
                del qp[name]
        elif qp.get(name) != text:
            qp[name] = text
    except StreamlitAPIException:
        pass


def model_param() -> str | None:
    """The current model as the URL names it (a shipped or saved checkpoint), or None for the server's default
    model (a link without ``model`` opens it) and for a model that lives only in this session (trained or
    uploaded here: another browser cannot open it)."""
    lm = state.stored_model()
    if lm is None or lm.source != "shipped":
        return None
    from lab_pages.model_store import default_model_name  # noqa: PLC0415 - loaded with the model already

    return None if lm.label == default_model_name() else lm.label


def lang_param() -> str:
    """The session's language as ``?lang=`` writes it: ``zh`` or ``en``."""
    lang = i18n.session_lang()
    return "zh" if lang == "zh_CN" else lang


def write_url(page_url: str) -> None:
    """State -> URL around the page at ``page_url``: the model and the page's controls (defaults left out), and no
    parameter of another page. The language is in the URL where it was chosen (lab_pages.i18n.set_lang), not
    where the browser's locale chose it; *Copy link* adds it."""
    ss = st.session_state
    if state.stored_model() is not None:  # Home's first run loads it after this: keep the URL's
        put_param(MODEL, model_param())
    mine = {state.Z_PARAM} if page_url in state.Z_PAGES else set()
    for p in page_params(page_url):
        mine.add(p.name)
        value = ss.get(p.key)
        put_param(p.name, None if value is None or value == p.default else p.fmt(value))
    if page_url in state.Z_PAGES:
        state.write_url_point()
    for name in list(st.query_params):  # another page's controls: they would mislead on this one
        if name not in mine and name not in GLOBAL:
            put_param(name, None)


# ------------------------------------------------------------------ the sidebar's link box
_COPY_JS = """
export default function (component) {
  const { data, parentElement } = component;
  const button = parentElement.querySelector("button");
  const field = parentElement.querySelector("input");
  const status = parentElement.querySelector(".status");
  button.textContent = data.label;
  button.onclick = async () => {
    // What the address bar shows now (the router keeps it in step), with the language the page is read in.
    const link = new URL(window.location.href);
    if (!link.searchParams.has("lang")) link.searchParams.set("lang", data.lang);
    const url = link.href;
    field.value = url;
    field.hidden = false;
    // The Clipboard API needs a secure context (https or localhost) and may wait on a permission: give it a
    // second, then fall back to copying the selected field (which works over plain http too).
    const viaApi = navigator.clipboard
      ? Promise.race([
          navigator.clipboard.writeText(url).then(() => true, () => false),
          new Promise((resolve) => setTimeout(() => resolve(false), 1000)),
        ])
      : Promise.resolve(false);
    let ok = await viaApi;
    if (!ok) {
      field.select();
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    }
    status.textContent = ok ? data.copied : data.failed;
  };
}
"""
_COPY_HTML = """
<div class="copy-link">
  <button type="button" data-testid="copy-link-button"></button>
  <span class="status" data-testid="copy-link-status"></span>
  <input type="text" readonly hidden data-testid="copy-link-url">
</div>
"""
_COPY_CSS = """
.copy-link button { font: inherit; padding: 0.25rem 0.75rem; border-radius: 0.5rem; cursor: pointer;
  border: 1px solid var(--st-border-color, #ccc); background: var(--st-secondary-background-color, #f0f2f6);
  color: var(--st-text-color, inherit); }
.copy-link .status { margin-left: 0.5rem; font-size: 0.85rem; opacity: 0.8; }
.copy-link input { display: block; width: 100%; margin-top: 0.4rem; font-size: 0.8rem; }
.copy-link input[hidden] { display: none; }
"""


@st.cache_resource(show_spinner=False)
def _copy_component() -> Any:
    """The *Copy link* button: a component in the page's own document, so it copies the address bar's URL."""
    return st.components.v2.component("vae_lab_copy_link", html=_COPY_HTML, css=_COPY_CSS, js=_COPY_JS)


def save_session_model() -> None:
    """Callback of the link box's Save: the current session model saved by name on the server (the picker then
    lists it as ``saved/<name>``, and a link can name it)."""
    from lab_pages import model_store  # noqa: PLC0415
    from vae_core.checkpoint import CheckpointError, save_by_name  # noqa: PLC0415

    lm, name = state.stored_model(), (st.session_state.get(SAVE_NAME) or "").strip()
    if lm is None:
        return
    try:
        path = save_by_name(lm.model, lm.metadata, name, model_store.saved_dir(), model_store.list_shipped())
        state.set_current_model(model_store.load_shipped(f"saved/{name}"))
    except (OSError, CheckpointError) as exc:
        st.session_state[SAVE_DONE] = ("error", _("Could not save: {reason}").format(reason=error_text(exc)))
        return
    state.set_picked("shipped", f"saved/{name}")
    st.session_state[SAVE_DONE] = (
        "success",
        _("Saved {path}: the link now opens this model.").format(path=model_store.display_path(path)),
    )


def link_box() -> None:
    """The sidebar's *Copy link*; for a model that lives only in this session, why the link cannot carry it, and
    a Save that makes it travel."""
    _copy_component()(
        key="copy_link",
        data={
            "label": "🔗 " + _("Copy link"),
            "copied": _("Copied."),
            "failed": _("Copy the link below."),
            "lang": lang_param(),
        },
    )
    lm = state.stored_model()
    if lm is not None and lm.source != "shipped":
        st.warning(
            _(
                "“{label}” lives only in this browser session, so a link cannot carry it: it would open the default "
                "model. Save it on the server first."
            ).format(label=lm.label),
            icon=":material/link_off:",
        )
        st.text_input(_("Name"), key=SAVE_NAME, placeholder="my_vae")
        st.button(_("Save"), icon=":material/save:", key="links_save", on_click=save_session_model)
    done = st.session_state.pop(SAVE_DONE, None)
    if done:
        getattr(st, done[0])(done[1])
