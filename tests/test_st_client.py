"""bench.st_client, the browserless attendee, against a real ``streamlit run app.py`` on a free loopback
port (tests.e2e.harness starts it; no browser needed): a page opens without an exception, a button
pressed by its key reaches the server, a slider set by its key changes the explorer's image, and a
``run_every`` fragment is rerun by the client's timer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
from collections.abc import Awaitable, Callable, Iterator

import pytest

from bench.st_client import StClient
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
            assert c.widget("explorer_decoder").kind == "bidi_component"  # the sliders decode in the browser
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

            auto = await c.idle(40, until=moved)  # a cold fork server imports torch first: slow under load
            assert auto and all(r.what == "auto" for r in auto)
            if c.find(key="train_stop") is not None and not c.widget("train_stop").widget.disabled:
                await c.click("train_stop")

        c = attend(server, body)
        assert not c.errors, c.errors
        assert len(seen) >= 2 and seen[-1][1] > seen[0][1], f"the step did not move: {seen}"
        assert {s for s, _ in seen} <= {"starting", "running", "finished"}, seen

    def test_a_release_sent_by_key_moves_the_explorers_point_and_traversal(self, server: Server) -> None:
        """The browser decodes while a slider is dragged; at release the decoder component sends its point,
        as this client does here: the server takes it and redraws the traversal (one fragment rerun)."""

        async def body(c: StClient) -> None:
            await c.open("/explorer")
            comp = c.widget("explorer_decoder")
            before = c.find(kind="imgs", text="Rows, top to bottom")
            data = json.loads(comp.widget.json)
            z = list(data["z"])
            z[data["dims"][0]] = data["hi"][0]  # z1 at the top of its slider
            assert before is not None and comp.fragment_id  # the explorer's view is a fragment
            r = await c.set_value("explorer_decoder", {"release": {"z": z, "id": "client-1"}})
            after = c.find(kind="imgs", text="Rows, top to bottom")
            assert after is not None and after.src != before.src and after.src.startswith("data:image/png")
            assert r.sent < after.at <= r.finished  # the traversal arrived within the fragment's rerun
            assert json.loads(c.widget("explorer_decoder").widget.json)["z"] == pytest.approx(z, abs=1e-6)

        c = attend(server, body)
        assert not c.errors, c.errors
