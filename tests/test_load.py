"""Load: four sessions training at once on a small machine (two through the Train page), each in
its own worker process; all make progress, none errors, memory stays bounded, and every worker
process ends with its session. Also: with the default cap (2 per core), one session too many gets
the clear refusal message, and a worker still starting counts towards the cap.

bench/load_sessions.py measures the same on Fashion-MNIST for longer and prints the figures.
"""

from __future__ import annotations

import gc
import threading
import time

import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.conftest import ENV_WORKER_WAIT_POLICY, ROOT, wait_for, worker_children
from vae_core import registry as reg_mod
from vae_core.data import load_dataset
from vae_core.forkserver import cpu_count
from vae_core.handle import LiveJob
from vae_core.jobs import TrainJob
from vae_core.models import ModelConfig
from vae_core.train import TrainConfig
from vae_core.train import TrainerState as S

PAGE = str(ROOT / "lab_pages" / "train.py")
# Four, not eight, since each is a worker process; four is benchmark (b)'s room.
N_SESSIONS, N_PAGES = 4, 2


# one intra-op thread per trainer thread: see tests/conftest.py::one_torch_thread
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def registry(monkeypatch) -> reg_mod.TrainerRegistry:
    """A fresh process-wide registry for this test alone, so trainers other tests left running
    cannot fill its cap; no watchdog stops (sessions end explicitly here). Pages opened during
    the test get it from ``default_registry()``; the previous one is put back afterwards."""
    monkeypatch.setenv(reg_mod.ENV_TRAINER_TIMEOUT, "0")
    monkeypatch.setenv(ENV_WORKER_WAIT_POLICY, "PASSIVE")  # 2 shared cores: workers must not spin
    monkeypatch.delenv(reg_mod.ENV_MAX_TRAINERS, raising=False)
    before = set(worker_children())  # workers of other modules' registries are theirs to end
    fresh = reg_mod.TrainerRegistry()
    monkeypatch.setattr(reg_mod, "_DEFAULT", fresh)
    assert reg_mod.default_registry() is fresh and fresh.running_count() == 0
    yield fresh
    fresh.shutdown()
    assert wait_for(lambda: not set(worker_children()) - before, 15), (
        f"worker processes left behind: {worker_children()}"
    )


def proc_mb(path: str, field: str, missing: float) -> float:
    """The kB figure on the ``field`` line of a /proc file, in MB: 0 if the file cannot be read (the
    process is gone), ``missing`` if it has no such line."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        return 0.0
    return missing


def rss_mb(pid: int | str = "self") -> float:
    """A process's resident memory now (MB), from /proc/<pid>/status (this process by default; 0 if gone)."""
    return proc_mb(f"/proc/{pid}/status", "VmRSS:", float("nan"))


def pss_mb(pid: int) -> float:
    """A process's proportional set size (MB): its own pages plus its share of shared ones (0 if gone)."""
    return proc_mb(f"/proc/{pid}/smaps_rollup", "Pss:", 0.0)


class RssSampler(threading.Thread):
    """Samples VmRSS every 20 ms: the peak while the sessions train (VmHWM is the process lifetime's)."""

    def __init__(self) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.peak = rss_mb()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def stop(self) -> float:
        self._stop_event.set()
        self.join(5)
        return self.peak


def page_session(epochs: int = 3000, seed: int = 0) -> AppTest:
    """One browser session on the Train page, started on digits."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    at.selectbox(key="train_dataset").set_value("digits")
    at.number_input(key="train_epochs").set_value(epochs)
    at.number_input(key="train_seed").set_value(seed)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    return at


def trainer_of(at: AppTest):
    return at.session_state["train_handle"].trainer  # never keep the handle: it must die with the session


def digits_configs(ds, seed: int) -> tuple[ModelConfig, TrainConfig]:
    """The Train page's default model (hidden 400, z=16) on digits, for minutes of training."""
    mc = ModelConfig(kind="vae", input_dim=ds.dim, image_shape=ds.image_shape, hidden=(400,), latent_dim=16)
    return mc, TrainConfig(dataset="digits", epochs=3000, batch_size=128, seed=seed)


def digits_worker(reg: reg_mod.TrainerRegistry, ds, seed: int) -> LiveJob:
    """The same as a job in a worker process, as the Train page makes it."""
    return reg.job(TrainJob(*digits_configs(ds, seed)), dataset=ds)


def trainer_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "vae-trainer"}


def test_four_sessions_train_at_once_and_stop_with_their_sessions(registry, monkeypatch):
    monkeypatch.setenv(reg_mod.ENV_MAX_TRAINERS, str(N_SESSIONS))
    ds = load_dataset("digits")
    threads_before = trainer_threads()
    rss_before = rss_mb()
    sampler = RssSampler()
    sampler.start()

    pages = [page_session(seed=i) for i in range(N_PAGES)]
    handles = [registry.open(label=f"load-{i}") for i in range(N_SESSIONS - N_PAGES)]
    for i, h in enumerate(handles):
        h.start(digits_worker(registry, ds, seed=10 + i))
    trainers = [trainer_of(at) for at in pages] + [h.trainer for h in handles]
    assert all(tr is not None and tr.state in (S.STARTING, S.RUNNING) for tr in trainers)
    assert registry.running_count() == N_SESSIONS, "a worker still starting counts"
    assert wait_for(lambda: all(tr.pid is not None for tr in trainers), 30), "every worker is forked"
    assert len({tr.pid for tr in trainers}) == N_SESSIONS, (
        "each session trains its own model, in its own process"
    )
    t0 = time.monotonic()
    assert wait_for(lambda: all(tr.state == S.RUNNING for tr in trainers), 120), [tr.state for tr in trainers]
    print(f"\n{N_SESSIONS} workers started and stepping after {time.monotonic() - t0:.1f} s")
    assert registry.threads_per_worker() == max(1, cpu_count() // N_SESSIONS), "the workers share the cores"

    # Two windows of progress, with the two pages redrawing (as the live view does once a second).
    before = [tr.global_step for tr in trainers]
    for _ in range(3):
        time.sleep(0.5)
        for at in pages:
            at.run()
            assert not at.exception, at.exception
            assert any("running" in p.proto.text for p in at.get("progress"))
    middle = [tr.global_step for tr in trainers]
    time.sleep(1.0)
    after = [tr.global_step for tr in trainers]
    assert all(m > b for m, b in zip(middle, before)), f"every session makes progress: {before} -> {middle}"
    assert all(a > m for a, m in zip(after, middle)), f"and keeps making it: {middle} -> {after}"
    assert all(tr.state == S.RUNNING and not tr.message for tr in trainers), [
        (tr.state, tr.message) for tr in trainers
    ]
    assert all(torch.isfinite(torch.tensor(tr.history.loss)).all() for tr in trainers)
    rates = [(a - b) / 2.5 for a, b in zip(after, before)]
    print(
        f"{N_SESSIONS} sessions: steps/s per session {[round(r) for r in rates]}, total {sum(rates):.0f} steps/s"
    )
    pids = [tr.pid for tr in trainers]
    worker_mb = [rss_mb(p) for p in pids]
    print(
        f"worker RSS {[round(m) for m in worker_mb]} MB (torch's shared libraries included), "
        f"PSS {sum(pss_mb(p) for p in pids):.0f} MB in all"
    )
    assert max(worker_mb) < 1000, "a digits worker stays small"

    # End every session: one handle closed, one dropped (finalizer), both pages dropped (finalizer).
    for h in handles[:1]:
        h.close()
    ids = [h.id for h in handles]
    del h, handles
    del at, pages
    gc.collect()
    for tr in trainers:
        assert tr.join(15), "a trainer outlived its session"
        assert tr.state == S.STOPPED and "session ended" in tr.message, (tr.state, tr.message)
    assert wait_for(lambda: not set(pids) & set(worker_children()), 15), (
        "every worker process ends with its session"
    )
    assert trainer_threads() <= threads_before, "no trainer thread in the server, either"
    assert registry.running_count() == 0 and not any(i in registry for i in ids)

    peak = sampler.stop()
    print(
        f"RSS before {rss_before:.0f} MB, peak while training {peak:.0f} MB (+{peak - rss_before:.0f} MB), "
        f"after {rss_mb():.0f} MB"
    )
    assert peak - rss_before < 600, "the server's memory must stay bounded (four small digits models)"


def test_with_the_default_cap_one_session_too_many_is_refused(registry, monkeypatch):
    """2 per core: on 2 cores the 5th Start is refused with a message that says what to do."""
    monkeypatch.setattr(reg_mod, "cpu_count", lambda: 2)
    assert registry.max_running == 4
    ds = load_dataset("digits")
    handles = [registry.open(label=f"cap-{i}") for i in range(4)]
    at = None
    try:
        handles[0].start(digits_worker(registry, ds, seed=0))  # a worker still starting holds its slot
        for i, h in enumerate(handles[1:], 1):
            h.start(digits_worker(registry, ds, seed=i))
        assert registry.running_count() == 4
        at = page_session()  # the 5th session
        errors = [e.value for e in at.error]
        assert any(
            e.startswith(
                "Not started: 4 trainers are already running on this server (the limit); "
                "wait for one to finish or pause, or ask the host to raise VAE_LAB_MAX_TRAINERS"
            )
            for e in errors
        ), errors
        assert trainer_of(at) is None and not at.exception
        assert registry.running_count() == 4, "the refused session did not start anything"
        handles[0].close()  # one session ends: its slot is free again
        assert handles[0].trainer is None
        at.button(key="train_start").click().run()
        assert not at.exception and trainer_of(at).state in (S.STARTING, S.RUNNING)
        assert registry.running_count() == 4
    finally:
        trainers = [h.trainer for h in handles] + ([trainer_of(at)] if at is not None else [])
        for h in handles:
            h.close()
        if at is not None:
            at.session_state["train_handle"].close()
        for tr in trainers:
            if tr is not None:
                assert tr.join(15)
