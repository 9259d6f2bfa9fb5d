"""Two replicas of the lab behind HAProxy (deploy/local.py), in Chromium, on loopback.

One trial for the module: 2 replicas sharing a cookie secret and a folder of saved models, each with a
trainer cap of 1, and HAProxy in front with cookie affinity and health checks. The tests walk what a
class does through the balancer: every page, an upload of each kind, training, a model saved on one
replica and picked on the other, a replica killed and started again. Skipped where haproxy, Playwright
or Chromium is missing (``.ci/run`` installs them).
"""

from __future__ import annotations

import io
import re
import shutil
import time

import numpy as np
import pytest

from deploy.local import COOKIE, Trial, haproxy_binary, healthy

from .harness import (
    PAGES,
    ROOT,
    choose_option,
    click_button,
    free_port,
    keyed,
    missing_requirement,
    open_page,
    problems,
    settle,
    switch_page,
    wait_for_page,
)

pytestmark = pytest.mark.skipif(haproxy_binary() is None, reason="haproxy is not installed")


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


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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


def model_options(page) -> list[str]:
    """The sidebar's model picker's options, as shown."""
    settle(page, 60)
    box = page.locator(f'{keyed("sidebar_model_pick")} input[role="combobox"]').first
    box.click()
    if box.get_attribute("aria-expanded") != "true":
        box.press("ArrowDown")
    page.wait_for_selector('[role="option"]', timeout=30_000)
    texts = page.locator('[role="option"]').all_inner_texts()
    box.press("Escape")
    return [t.strip() for t in texts]


def test_two_browsers_land_on_different_replicas_and_every_page_opens(trial, new_page) -> None:
    a, b = new_page(), new_page()
    media: list[tuple[str, int]] = []
    a.on("response", lambda r: media.append((r.url, r.status)) if "/media/" in r.url else None)
    open_page(a, trial.url, "")
    open_page(b, trial.url, "")
    assert {replica_of(a), replica_of(b)} == {"r1", "r2"}, "two new sessions went to one replica"
    found: dict[str, list[str]] = {}
    for path in [p for p in PAGES if p != ""]:
        switch_page(a, path)
        wait_for_page(a, path, timeout=120)
        if bad := problems(a) + broken_images(a):
            found[path] = bad
    assert not found, f"pages with problems through the balancer: {found}"
    assert all(status == 200 for _, status in media), [m for m in media if m[1] != 200]


def _small_npz() -> bytes:
    rng = np.random.default_rng(0)
    x = (rng.random((40, 8, 8)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    np.savez(buf, x=x, y=np.arange(40) % 4)
    return buf.getvalue()


def test_uploads_training_a_shared_save_the_cap_and_a_replica_killed(trial, new_page, tmp_path) -> None:
    a = new_page()
    open_page(a, trial.url, "train")
    home = replica_of(a)
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
    # back to the default data (the shipped model's), then train: the live view grows
    open_page(a, trial.url, "train")
    click_button(a, "train_start")
    a.wait_for_selector("text=Training started", timeout=60_000)
    steps = []
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and len(set(steps)) < 3:
        m = re.search(r"step ([\d,]+)/", a.locator('[data-testid="stProgress"]').first.inner_text())
        if m:
            steps.append(int(m.group(1).replace(",", "")))
        time.sleep(0.7)
    assert len(set(steps)) >= 3 and steps == sorted(steps), f"the step count did not grow: {steps}"
    # the cap is per replica: a second trainer on the other replica starts; a third, anywhere, is refused
    b = new_page()
    open_page(b, trial.url, "train")
    assert replica_of(b) != home
    click_button(b, "train_start")
    b.wait_for_selector("text=Training started", timeout=60_000)
    c = new_page()
    open_page(c, trial.url, "train")
    click_button(c, "train_start")
    c.wait_for_selector("text=/1 trainer is already running on this server \\(the limit\\)/", timeout=60_000)
    for p in (b, c):
        p.context.close()
    # a model saved on one replica is listed on the other
    click_button(a, "train_pause")
    a.wait_for_function("() => document.body.innerText.includes('Paused at step')", timeout=30_000)
    name = f"shared_{int(time.time())}"
    a.locator(f"{keyed('train_save_name')} input").fill(name)
    a.locator(f"{keyed('train_save_name')} input").press("Enter")
    click_button(a, "train_save")
    a.wait_for_selector(f"text=/Saved .*{name}/", timeout=60_000)
    assert (trial.saved_dir / f"{name}.safetensors").is_file()
    other = new_page()
    open_page(other, trial.url, "")
    if replica_of(other) == home:  # leastconn sends a new session to the emptier replica; make sure
        other.context.clear_cookies()
        other.context.add_cookies(
            [{"name": COOKIE, "value": "r2" if home == "r1" else "r1", "url": trial.url}]
        )
        open_page(other, trial.url, "")
    assert replica_of(other) != home
    assert f"saved/{name}" in model_options(other)
    # the replica that holds session A dies: A reconnects, and the next load is served by the live one
    click_button(a, "train_stop")
    dead = next(r for r in trial.replicas if r.name == home)
    dead.kill()
    a.wait_for_function(
        """() => document.querySelector('[data-testid="stApp"]')
                 ?.getAttribute('data-test-connection-state') !== 'CONNECTED'""",
        timeout=30_000,
    )
    assert not healthy(dead.url)
    open_page(a, trial.url, "")  # before or after the health checks take it out: redispatched
    assert replica_of(a) != home, "the next page load went to the dead replica"
    assert f"saved/{name}" in model_options(a), "a saved model was lost with its replica"
    choose_option(a, "sidebar_model_pick", f"saved/{name}")
    settle(a, 60)
    assert not problems(a), problems(a)
    # started again, the replica is put back: a new session can land on it
    trial.restart(dead)
    deadline = time.monotonic() + 30
    landed = set()
    while time.monotonic() < deadline and home not in landed:
        p = new_page()
        open_page(p, trial.url, "")
        landed.add(replica_of(p))
        p.context.close()
    assert home in landed, f"the restarted replica {home} never got a session back: {landed}"
