"""Presenter mode (``?present=1&step=4``, or the sidebar's toggle): large type for a projector, the sidebar
collapsed, and a bar over every page that steps through the workshop script of lab_pages.tour.

The bar says which step of how many, its minutes and page(s), what to click and what to ask the room; *Back*
and *Next* open the previous or next step's page with ``present=1&step=N`` (and the language and model) in the
URL, so a reload stays on the step. Imports nothing heavy (Home draws it before torch is imported).
"""

from __future__ import annotations

import streamlit as st

from lab_pages import i18n, links, state, tour
from lab_pages.i18n import _

PRESENT = "present"  # the URL parameter (=1) and the session key (bool)
STEP = "step"  # the URL parameter: the workshop step shown, 1-based
STEP_KEY = "present_step"  # session key: that step
TOGGLE = "sidebar_present"  # the sidebar's toggle
# Large type on a projector: Streamlit sizes its text in rem, so a larger root font scales the whole page.
CSS = """
<style>
html { font-size: 24px; }
[data-testid="stMainBlockContainer"] { max-width: 100%; padding-top: 4rem; }
.st-key-presenter_bar { border-left: 0.4rem solid #F58518; padding-left: 0.8rem; }
</style>
"""


def n_steps() -> int:
    return len(tour.WORKSHOP)


def _step_from(text: str | None) -> int | None:
    """A step number from the URL's text, or None when it is no step of the script."""
    try:
        n = int(text or "")
    except ValueError:
        return None
    return n if 1 <= n <= n_steps() else None


def from_url() -> bool:
    """Presenter mode's state from the URL where the URL changed (see lab_pages.links), before the page is set up:
    app.py collapses the sidebar when it is on. Returns whether it is on."""
    ss = st.session_state
    seen = ss.setdefault(links.SEEN, {})
    present, step = st.query_params.get(PRESENT), st.query_params.get(STEP)
    if present is not None and present != seen.get(PRESENT):
        seen[PRESENT] = present
        ss[PRESENT] = present == "1"
    if step is not None and step != seen.get(STEP):
        seen[STEP] = step
        n = _step_from(step)
        if n is None:
            ss.setdefault(links.NOTES, []).append(
                _(
                    "The link's step={value} is no step of the workshop (1 to {n}); presenter mode starts at step 1."
                ).format(value=step, n=n_steps())
            )
        ss[STEP_KEY] = n or 1
    return is_on()


def is_on() -> bool:
    return bool(st.session_state.get(PRESENT, False))


def step() -> int:
    """The step shown, 1-based."""
    return int(st.session_state.get(STEP_KEY, 1))


def step_of_page(page: str) -> int:
    """The first step that visits the page script ``page`` (1 when none does)."""
    return next((i for i, s in enumerate(tour.WORKSHOP, 1) if page in s.pages), 1)


def write_url() -> None:
    """present=1 and step=N in the URL while presenter mode is on; neither when it is off."""
    on = is_on()
    links.put_param(PRESENT, "1" if on else None)
    links.put_param(STEP, str(step()) if on else None)


def url_params(n: int) -> dict[str, str]:
    """The URL parameters of step ``n``'s page: presenter mode, the step, the language and the model (where the
    URL carries them now)."""
    params = {PRESENT: "1", STEP: str(n)}
    if i18n.QUERY in st.query_params:  # chosen, not the browser's: keep it
        params[i18n.QUERY] = links.lang_param()
    if (model := links.model_param()) is not None:
        params[links.MODEL] = model
    return params


def go(n: int) -> None:
    """Open step ``n``'s (first) page in presenter mode."""
    st.session_state[STEP_KEY] = n
    st.switch_page(tour.WORKSHOP[n - 1].pages[0], query_params=url_params(n))


def _on_toggle() -> None:
    ss = st.session_state
    ss[PRESENT] = bool(ss.get(TOGGLE))
    if ss[PRESENT] and STEP_KEY not in ss:  # start at the step of the page shown
        ss[STEP_KEY] = step_of_page(_page_path(ss.get(state.PAGE_URL, "")))


def _page_path(url: str) -> str:
    return next((p.path for p in tour.PAGES if p.url == url), "lab_pages/home.py")


def toggle() -> None:
    """The sidebar's switch."""
    st.session_state[TOGGLE] = is_on()
    st.toggle(
        _("Presenter mode"),
        key=TOGGLE,
        on_change=_on_toggle,
        help=_("Large type for a projector, and a bar that steps through the workshop script."),
    )


def bar_text(n: int) -> tuple[str, str, str]:
    """(heading, what to click, what to ask) of step ``n`` in the session's language, as the bar shows them."""
    s = tour.WORKSHOP[n - 1]
    heading = _("Step {n} of {total} · {minutes} min · {page}").format(
        n=n, total=n_steps(), minutes=s.minutes, page=_(s.page)
    )
    do = _("**Do:** {do}").format(do=_(s.do))
    ask = _("**Ask the room:** “{ask}”").format(ask=_(s.ask))
    return heading, do, ask


def bar() -> None:
    """The presenter bar, at the top of the page, and the large type."""
    st.html(CSS)
    n = step()
    heading, do, ask = bar_text(n)
    titles = {p.path: _(p.title) for p in tour.PAGES}
    with st.container(key="presenter_bar"):
        st.markdown(f"#### {heading}")
        st.markdown(do)
        st.markdown(ask)
        cols = st.columns([1, 1, 6])
        back = cols[0].button(
            _("Back"), icon=":material/arrow_back:", key="presenter_back", disabled=n == 1, width="stretch"
        )
        nxt = cols[1].button(
            _("Next"),
            icon=":material/arrow_forward:",
            key="presenter_next",
            disabled=n == n_steps(),
            type="primary",
            width="stretch",
        )
        pages = tour.WORKSHOP[n - 1].pages
        if len(pages) > 1:  # a step over several pages: a link to each, staying on the step
            with cols[2]:
                for col, path in zip(st.columns(len(pages)), pages):
                    col.page_link(path, label=titles[path], query_params=url_params(n))
    if back:
        go(n - 1)
    if nxt:
        go(n + 1)
