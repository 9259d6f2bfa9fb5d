"""bench.st_client, the browserless attendee, against a real ``streamlit run app.py`` on a free loopback
port (tests.e2e.harness starts it; no browser needed): a page opens without an exception, a button
pressed by its key reaches the server, a slider set by its key changes the explorer's image, and a
``run_every`` fragment is rerun by the client's timer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
from collections.abc import Awaitable, Callable, Iterator

import pytest

from bench.st_client import StClient, slider_value
from tests.e2e.harness import Server, start_server

STEP = re.compile(r"\*\*(\w+)\*\* · step ([\d,]+)/")  # the Train page's progress text: **state** · step n/N


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(log_path=tmp_path_factory.mktemp("st_client") / "server.log", timeout=120)
    yield s
    s.stop()


def attend(server: Server, body: Callable[[StClient], Awaitable[None]], timeout_s: float = 60) -> StClient:
    """Run ``body`` with a connected client (a new session) and return the client, closed."""

    async def go() -> StClient:
        async with StClient(server.url, timeout_s=timeout_s, name="test") as c:
            await asyncio.wait_for(body(c), timeout_s)
        return c

    # In a thread of its own: when the browser tests ran first in this process, Playwright's sync API
    # keeps an event loop running in the main thread, and asyncio.run() refuses to start another there.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def progress(c: StClient) -> tuple[str, int] | None:
    node = c.find(kind="progress", text="step")
    m = STEP.search(node.text) if node else None
    return (m.group(1), int(m.group(2).replace(",", ""))) if m else None


class TestStClient:
    def test_a_page_opens_with_no_exception(self, server: Server) -> None:
        async def body(c: StClient) -> None:
            r = await c.open("/explorer")
            assert r.latency_s > 0 and r.what == "open /explorer"
            assert c.find(kind="heading", text="Latent explorer") is not None
            assert c.widget("explorer_dim_0").kind == "slider"
            assert c.find(kind="selectbox", key="sidebar_model_pick") is not None  # the sidebar too

        c = attend(server, body)
        assert c.find(kind="exception") is None and not c.errors, c.errors

    def test_start_by_key_makes_training_run(self, server: Server) -> None:
        seen: list[tuple[str, int]] = []

        async def body(c: StClient) -> None:
            await c.open("/train")
            assert progress(c) is None and not c.auto  # not started: no live fragment
            await c.set_value("train_epochs", 1)
            await c.click("train_start")
            assert c.auto, "the live view's st.fragment(run_every=1) was not announced"

            def moved() -> bool:
                if (p := progress(c)) is not None and (not seen or p != seen[-1]):
                    seen.append(p)
                return len(seen) >= 2 and seen[-1][1] > seen[0][1]

            auto = await c.idle(12, until=moved)
            assert auto and all(r.what == "auto" for r in auto)
            if c.find(key="train_stop") is not None and not c.widget("train_stop").widget.disabled:
                await c.click("train_stop")

        c = attend(server, body)
        assert not c.errors, c.errors
        assert len(seen) >= 2 and seen[-1][1] > seen[0][1], f"the step did not move: {seen}"
        assert {s for s, _ in seen} <= {"starting", "running", "finished"}, seen

    def test_a_slider_set_by_key_changes_the_explorer_image(self, server: Server) -> None:
        async def body(c: StClient) -> None:
            await c.open("/explorer")
            before = c.find(kind="imgs", text="decoded pixel means")
            slider = c.widget("explorer_dim_0")
            assert before is not None and slider.fragment_id  # the explorer's view is a fragment
            r = await c.set_value("explorer_dim_0", slider_value(slider, 1.0))
            after = c.find(kind="imgs", text="decoded pixel means")
            assert after is not None and after.src != before.src and after.src.startswith("data:image/png")
            assert r.sent < after.at <= r.finished  # the image arrived within the fragment's rerun
            assert f"z = ({slider_value(slider, 1.0):.2f}" in after.text

        c = attend(server, body)
        assert not c.errors, c.errors
