"""The browser tests' page list against the app's: no browser needed, so these run everywhere.

harness.PAGES must name every page of lab_pages/tour.py (a page added to the tour and not to
PAGES would never be opened in Chromium), and each title text must be in that page's file.
"""

from __future__ import annotations

import os

from lab_pages import tour

from .harness import PAGES, ROOT, alive, descendants


def test_pages_are_the_tours_pages_in_order():
    assert list(PAGES) == [p.url for p in tour.PAGES], (
        "tests/e2e/harness.PAGES must list every page of lab_pages/tour.py, in its order"
    )
    stems = [stem for stem, _title in PAGES.values()]
    assert len(set(stems)) == len(stems), f"two pages share a screenshot name: {stems}"


def test_each_title_text_is_in_its_page_file():
    """The text the tests wait for is the page's st.title (its English source), as written in the page file."""
    for page in tour.PAGES:
        source = (ROOT / page.path).read_text(encoding="utf-8")
        title = PAGES[page.url][1]
        titles = [line for line in source.splitlines() if "st.title(" in line]
        assert any(title in line for line in titles), (
            f"{page.path}: no st.title containing {title!r} (found: {titles})"
        )


def test_descendants_lists_a_child_and_alive_sees_it_end():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        found = descendants(os.getpid())
        assert child.pid in found and alive(child.pid, found[child.pid])
    finally:
        child.kill()
        child.wait()
    assert not alive(child.pid, found[child.pid])
