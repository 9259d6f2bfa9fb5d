"""Two replicas of the lab behind HAProxy (deploy/local.py), on loopback: Chromium where a browser matters
(affinity cookies, uploads, images, the live view, the reconnect), protocol clients (bench.st_client)
where it does not (every page, the cap, the listing on each replica), to keep the suite short.

One trial for the module: 2 replicas sharing a cookie secret and a folder of saved models, each with a
trainer cap of 1, and HAProxy in front with cookie affinity and health checks. Skipped where haproxy,
Playwright or Chromium is missing (``.ci/run`` installs them).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.cookiejar
import io
import re
import shutil
import socket
import time
import urllib.request
from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from bench.st_client import StClient
from deploy.local import COOKIE, Trial, haproxy_binary, healthy

from .harness import (
    PAGES,
    ROOT,
    click_button,
    free_port,
    keyed,
    missing_requirement,
    open_page,
    problems,
    settle,
)

pytestmark = pytest.mark.skipif(haproxy_binary() is None, reason="haproxy is not installed")
CAP_MESSAGE = "1 trainer is already running on this server (the limit)"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    reason = missing_requirement()
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")
    first = free_port()
    while not _port_free(first + 1):  # the replicas take two ports in a row
        first = free_port()
    t = Trial(
        replicas_n=2,
        port=free_port(),
        first_replica_port=first,
        saved_dir=tmp_path_factory.mktemp("shared") / "saved",
        max_trainers=1,
    )
    t.start(timeout=180)
    yield t
    t.stop()


def session(url: str, body: Callable[[StClient], Awaitable[None]], timeout_s: float = 120) -> StClient:
    """Run ``body`` in a new protocol-level session on ``url`` (in a thread: Playwright's loop owns this one)."""

    async def go() -> StClient:
        async with StClient(url, timeout_s=timeout_s, name="balancer-test") as c:
            await asyncio.wait_for(body(c), timeout_s)
        return c

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def landing(url: str) -> str | None:
    """The replica a new browser (no cookie) is sent to: the affinity cookie of its first response."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar)
    )
    opener.open(url + "/", timeout=10).read()
    return {c.name: c.value for c in jar}.get(COOKIE)


def replica_of(page) -> str:
    """The replica this tab's browser is pinned to: the balancer's affinity cookie."""
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert COOKIE in cookies, f"the balancer set no affinity cookie: {sorted(cookies)}"
    return cookies[COOKIE]


def broken_images(page) -> list[str]:
    """Images of the page that did not load (a /media/ URL fetched from the wrong replica is one)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('[data-testid="stMain"] img, [data-testid="stSidebar"] img')]
              .filter(i => i.complete && i.naturalWidth === 0).map(i => i.src.slice(0, 80))"""
    )


def picker_options(c: StClient) -> list[str]:
    """The sidebar model picker's options, as the server sent them to session ``c``."""
    return list(c.widget("sidebar_model_pick").widget.options)


def test_browsers_land_on_both_replicas_and_every_page_opens(trial, new_page) -> None:
    a, b = new_page(), new_page()
    media: list[tuple[str, int]] = []
    a.on("response", lambda r: media.append((r.url, r.status)) if "/media/" in r.url else None)
    open_page(a, trial.url, "")
    open_page(b, trial.url, "")
    assert {replica_of(a), replica_of(b)} == {"r1", "r2"}, "two new sessions went to one replica"
    open_page(a, trial.url, "explorer")  # thumbnails, the traversal, the browser's decoder (a static file)
    assert not problems(a) and not broken_images(a), problems(a) + broken_images(a)
    assert all(status == 200 for _, status in media), [m for m in media if m[1] != 200]
    opened: list[str] = []

    async def every_page(c: StClient) -> None:
        for path in PAGES:
            await c.open(f"/{path}")
            assert c.find(kind="heading") is not None, f"/{path} drew no heading through the balancer"
            assert c.find(kind="exception") is None, f"/{path}: {c.find(kind='exception').text}"
            opened.append(path)

    c = session(trial.url, every_page, timeout_s=300)
    assert not c.errors and opened == list(PAGES), (c.errors, opened)


def _small_npz() -> bytes:
    rng = np.random.default_rng(0)
    x = (rng.random((40, 8, 8)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    np.savez(buf, x=x, y=np.arange(40) % 4)
    return buf.getvalue()


def test_uploads_training_the_cap_a_shared_save_and_a_replica_killed(trial, new_page, tmp_path) -> None:
    a = new_page()
    open_page(a, trial.url, "train")
    home = replica_of(a)
    there = next(r for r in trial.replicas if r.name == home)
    other = next(r for r in trial.replicas if r.name != home)
    # a checkpoint upload and a dataset upload reach the replica that holds the session
    ck = tmp_path / "uploaded_digits.safetensors"
    shutil.copy(ROOT / "checkpoints" / "digits_vae_z2.safetensors", ck)
    a.locator(f'{keyed("sidebar_upload")} input[type="file"]').set_input_files(str(ck))
    a.wait_for_selector("text=uploaded_digits", timeout=60_000)
    data = tmp_path / "blocks.npz"
    data.write_bytes(_small_npz())
    a.locator(f'{keyed("train_data_upload")} input[type="file"]').set_input_files(str(data))
    a.wait_for_selector("text=blocks", timeout=60_000)
    settle(a, 60)
    assert not problems(a), problems(a)
    # training starts and its step count grows
    open_page(a, trial.url, "train")
    click_button(a, "train_start")
    a.wait_for_selector("text=Training started", timeout=60_000)
    steps: list[int] = []
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and len(set(steps)) < 3:
        m = re.search(r"step ([\d,]+)/", a.locator('[data-testid="stProgress"]').first.inner_text())
        if m:
            steps.append(int(m.group(1).replace(",", "")))
        time.sleep(0.5)
    assert len(set(steps)) >= 3 and steps == sorted(steps), f"the step count did not grow: {steps}"

    # the cap is per replica: on A's replica one more Start is refused with the cap's message, and the
    # pages keep working; on the other replica a Start is not refused
    texts: list[str] = []
    session(there.url, lambda c: _start_and_read(c, texts))
    assert any(CAP_MESSAGE in t for t in texts), texts
    free: list[str] = []
    session(other.url, lambda c: _start_and_read(c, free))
    assert free and not any(CAP_MESSAGE in t for t in free), free

    # a model saved on one replica is listed on the other
    click_button(a, "train_pause")
    a.wait_for_function("() => document.body.innerText.includes('Paused at step')", timeout=30_000)
    name = f"shared_{int(time.time())}"
    a.locator(f"{keyed('train_save_name')} input").fill(name)
    a.locator(f"{keyed('train_save_name')} input").press("Enter")
    click_button(a, "train_save")
    a.wait_for_function(f"() => document.body.innerText.includes('{name}')", timeout=60_000)
    assert (trial.saved_dir / f"{name}.safetensors").is_file()
    listed: list[str] = []

    async def list_models(c: StClient) -> None:
        await c.open("")
        listed.extend(picker_options(c))

    session(other.url, list_models)
    assert f"saved/{name}" in listed, listed

    # A's replica dies: A reconnects, and the next page load is served by the live one, the model still there
    click_button(a, "train_stop")
    there.kill()
    a.wait_for_function(
        """() => document.querySelector('[data-testid="stApp"]')
                 ?.getAttribute('data-test-connection-state') !== 'CONNECTED'""",
        timeout=30_000,
    )
    assert not healthy(there.url)
    open_page(a, trial.url, "")  # before or after the health checks take it out: redispatched
    assert replica_of(a) == other.name, "the next page load went to the dead replica"
    assert not problems(a), problems(a)
    assert (trial.saved_dir / f"{name}.safetensors").is_file()
    # started again, it is put back: new browsers land on it once its health checks pass
    trial.restart(there)
    landed: set[str | None] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and home not in landed:
        landed.add(landing(trial.url))
        time.sleep(0.2)
    assert home in landed, f"the restarted replica {home} never got a new browser: {landed}"


async def _start_and_read(c: StClient, texts: list[str]) -> None:
    """Press Start on the Train page; keep what the page then says."""
    await c.open("/train")
    await c.click("train_start")
    texts.extend(c.texts())
    if c.find(key="train_stop") is not None and not c.widget("train_stop").widget.disabled:
        await c.click("train_stop")
    await c.open("/explorer")  # another page still works in this session
    assert c.find(kind="exception") is None and c.find(kind="heading") is not None
