"""Presenter mode (lab_pages.presenter) through the router in AppTest: the bar's text for a step in English and
Chinese, Next and Back change the step and the page, the URL keeps present=1 and the step, and the sidebar's
toggle turns it on and off."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from lab_pages import i18n, presenter, state, tour
from tests.conftest import ROOT

APP = str(ROOT / "app.py")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def present(page: str, step: str, lang: str = "en") -> AppTest:
    """A new session opening ``/page?present=1&step=step&lang=lang``."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update({"present": "1", "step": step, "lang": lang, "model": "digits_vae_z2"})
    at.switch_page(f"lab_pages/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def bar(at: AppTest) -> str:
    """The presenter bar's text (its markdown, in page order)."""
    return "\n".join(m.value for m in at.main.markdown if m.value.startswith(("####", "**")))


def param(at: AppTest, name: str) -> str | None:
    v = at.query_params.get(name)
    return v[-1] if isinstance(v, list) else v


def test_every_step_visits_pages_of_the_tour() -> None:
    paths = {p.path for p in tour.PAGES}
    for s in tour.WORKSHOP:
        assert s.pages and set(s.pages) <= paths, s


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("en", ("Step 4 of 7", "9–13 min", "ELBO, term by term", "**Do:**", "**Ask the room:**")),
        ("zh", ("第 4 步，共 7 步", "第 9–13 分钟", "ELBO 逐项拆解", "**操作：**", "**向全场提问：**")),
    ],
)
def test_the_bar_says_the_step_what_to_click_and_what_to_ask(lang: str, words: tuple[str, ...]) -> None:
    at = present("elbo", "4", lang)
    text = bar(at)
    for w in words:
        assert w in text, (w, text)
    tr = i18n.catalogue(i18n.normalize(lang) or "en").gettext
    step = tour.WORKSHOP[3]
    assert tr(step.do) in text and tr(step.ask) in text
    assert at.button(key="presenter_back").label == ("Back" if lang == "en" else "上一步")


def test_next_and_back_change_the_step_and_the_page() -> None:
    at = present("elbo", "4")
    at.button(key="presenter_next").click().run()
    assert not at.exception
    assert at.session_state[state.PAGE_URL] == "explorer"  # step 5: Latent explorer, Manifold, Latent map
    assert param(at, "step") == "5" and param(at, "present") == "1" and param(at, "lang") == "en"
    assert "Step 5 of 7" in bar(at)
    at.button(key="presenter_back").click().run()
    at.button(key="presenter_back").click().run()
    assert at.session_state[state.PAGE_URL] == "train" and param(at, "step") == "3"
    assert "Step 3 of 7" in bar(at)


def test_the_first_and_last_steps_stop_there() -> None:
    assert present("home", "1").button(key="presenter_back").disabled
    assert present("home", "7").button(key="presenter_next").disabled


def test_a_bad_step_is_named_and_step_1_shown() -> None:
    at = present("home", "99")
    assert "step=99" in " ".join(w.value for w in at.warning)
    assert "Step 1 of 7" in bar(at) and param(at, "step") == "1"


def test_the_sidebar_toggle_turns_it_on_at_the_pages_step_and_off() -> None:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["model"] = "digits_vae_z2"
    at.switch_page("lab_pages/train.py")
    at.run()
    assert not bar(at) and param(at, "present") is None
    at.sidebar.toggle(key=presenter.TOGGLE).set_value(True).run()
    assert "Step 3 of 7" in bar(at)  # the Train page's step
    assert param(at, "present") == "1" and param(at, "step") == "3"
    at.sidebar.toggle(key=presenter.TOGGLE).set_value(False).run()
    assert not bar(at) and param(at, "present") is None and param(at, "step") is None
