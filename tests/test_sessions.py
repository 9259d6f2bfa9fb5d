"""Browser sessions' jobs without Streamlit: the running-job cap, the lifecycle of a job's worker,
session end (finalizer and heartbeat) in vae_core.registry, and the live-view data in vae_core.live
(thinned history) and of a live job (checkpoints). Every job trains in a worker forked from the fork
server: a Train page model, an AE/VAE pair and a Pitfalls run alike."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest
import torch

from tests.conftest import wait_for as shared_wait_for
from vae_core import live
from vae_core import registry as reg_mod
from vae_core.checkpoint import checkpoint_bytes, load_checkpoint
from vae_core.data import load_dataset
from vae_core.forkserver import cpu_count
from vae_core.handle import LiveJob
from vae_core.jobs import PairJob, PitfallJob, TrainJob
from vae_core.models import ModelConfig
from vae_core.registry import CapacityError, TrainerRegistry
from vae_core.train import History, TrainConfig, cli_command
from vae_core.train import TrainerState as S

# one intra-op thread per trainer thread: see tests/conftest.py::one_torch_thread
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def configs(ds, kind: str = "vae", epochs: int = 5000, seed: int = 0, latent: int = 4):
    """A digits model that would take minutes to train, so it is still running when checked."""
    mc = ModelConfig(kind=kind, input_dim=ds.dim, image_shape=ds.image_shape, hidden=(32,), latent_dim=latent)
    return mc, TrainConfig(dataset="digits", epochs=epochs, batch_size=64, seed=seed, eval_size=100)


def make_trainer(reg: TrainerRegistry, ds, **kw) -> LiveJob:
    """A Train page job (one model) of ``configs(ds, **kw)``, made as the page makes it."""
    return reg.job(TrainJob(*configs(ds, **kw)), dataset=ds, num_threads=1)


def make_pair(reg: TrainerRegistry, ds, epochs: int = 5000) -> LiveJob:
    """The AE/VAE pair page's job."""
    return reg.job(PairJob(*configs(ds, epochs=epochs, latent=2)), dataset=ds, num_threads=1)


def make_pitfall(reg: TrainerRegistry, ds=None, seed: int = 1) -> LiveJob:
    """A Pitfalls section's *Run again* job."""
    return reg.job(PitfallJob("per_pixel_mean", seed=seed), num_threads=1)


JOBS = {"train": make_trainer, "pair": make_pair, "pitfall": make_pitfall}


def wait_for(cond, timeout: float = 30.0) -> bool:
    """tests.conftest.wait_for with this module's default timeout."""
    return shared_wait_for(cond, timeout)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module", autouse=True)
def ready_pool():
    """The fork server, ready before the first job of the module."""
    reg = TrainerRegistry()
    reg.warm()
    assert wait_for(lambda: reg.pool.ready, 120)


@pytest.fixture
def registry():
    reg = TrainerRegistry(max_running=2, heartbeat_timeout=0)
    yield reg
    reg.shutdown()


def stepping(job: LiveJob, more_than: int = 0) -> bool:
    """True once the job's worker trains and has taken more than ``more_than`` steps."""
    return job.state == S.RUNNING and job.global_step > more_than


class TestSettings:
    def test_default_is_two_per_core(self, monkeypatch) -> None:
        monkeypatch.delenv(reg_mod.ENV_MAX_TRAINERS, raising=False)
        assert reg_mod.default_max_trainers() == 2 * cpu_count()
        assert TrainerRegistry().max_running == reg_mod.default_max_trainers()

    @pytest.mark.parametrize("raw,expected", [("3", 3), ("1", 1), (" 7 ", 7)])
    def test_env_sets_the_cap(self, monkeypatch, raw: str, expected: int) -> None:
        monkeypatch.setenv(reg_mod.ENV_MAX_TRAINERS, raw)
        assert TrainerRegistry().max_running == expected

    @pytest.mark.parametrize("raw", ["0", "-2", "many", ""])
    def test_bad_env_falls_back(self, monkeypatch, raw: str) -> None:
        monkeypatch.setenv(reg_mod.ENV_MAX_TRAINERS, raw)
        assert TrainerRegistry().max_running == reg_mod.default_max_trainers()

    def test_timeout_env(self, monkeypatch) -> None:
        monkeypatch.setenv(reg_mod.ENV_TRAINER_TIMEOUT, "7.5")
        assert TrainerRegistry().heartbeat_timeout == 7.5
        monkeypatch.setenv(reg_mod.ENV_TRAINER_TIMEOUT, "soon")
        assert TrainerRegistry().heartbeat_timeout == reg_mod.DEFAULT_TIMEOUT_S


class TestLifecycle:
    def test_start_pause_step_resume_stop(self, registry, digits) -> None:
        h = registry.open()
        assert h.trainer is None
        h.start(make_trainer(registry, digits))
        tr = h.trainer
        assert tr.state == S.STARTING and tr.is_alive
        assert wait_for(lambda: stepping(tr, 5))
        tr.pause()
        assert tr.state == S.PAUSED
        held = tr.consistent_copy()[1]["steps"]  # answered after the pause: the step it held at
        time.sleep(0.6)
        assert tr.global_step == held, "a paused job must not step"
        assert tr.is_alive, "pausing keeps the worker, waiting"
        rec = tr.step()  # Step while paused: exactly one batch
        assert rec is not None and tr.global_step == held + 1
        h.resume()
        assert tr.state == S.RUNNING
        assert wait_for(lambda: tr.global_step > held + 3)
        tr.stop()
        assert tr.join(10) and tr.state == S.STOPPED
        assert registry.running_count() == 0

    def test_close_stops_and_forgets(self, registry, digits) -> None:
        h = registry.open()
        h.start(make_trainer(registry, digits))
        tr = h.trainer
        assert h.id in registry
        h.close()
        h.close()  # idempotent
        assert h.closed and h.id not in registry and len(registry) == 0
        assert tr.join(10) and tr.state == S.STOPPED
        assert "session ended" in tr.message
        assert wait_for(lambda: not tr.is_alive, 10), "its worker ends"

    def test_attach_replaces_and_stops_the_old(self, registry, digits) -> None:
        h = registry.open()
        h.start(make_trainer(registry, digits))
        old = h.trainer
        h.start(make_trainer(registry, digits, seed=1))
        assert h.trainer is not old and h.trainer.state in (S.STARTING, S.RUNNING)
        assert old.join(10) and old.state == S.STOPPED
        h.attach(None)  # Reset
        assert h.trainer is None
        h.close()

    def test_two_sessions_do_not_touch_each_other(self, registry, digits) -> None:
        a, b = registry.open(), registry.open()
        a.start(make_trainer(registry, digits, seed=0))
        b.start(make_trainer(registry, digits, seed=1))
        ta, tb = a.trainer, b.trainer
        assert ta is not tb
        assert wait_for(lambda: stepping(ta, 3) and stepping(tb, 3))
        assert ta.pid != tb.pid, "one worker each"
        ta.pause()
        held, before_b = ta.consistent_copy()[1]["steps"], tb.global_step
        assert wait_for(lambda: tb.global_step > before_b + 5), "b keeps training while a is paused"
        assert ta.global_step == held
        wa, wb = ta.model_copy(), tb.model_copy()
        assert not torch.equal(wa.decoder.net[0].weight, wb.decoder.net[0].weight)
        a.close()
        assert ta.join(10) and tb.is_alive and tb.state == S.RUNNING, "closing a leaves b running"
        b.close()
        assert tb.join(10)


class TestCap:
    def test_one_more_gets_a_clear_message(self, digits) -> None:
        reg = TrainerRegistry(max_running=1, heartbeat_timeout=0)
        try:
            a, b = reg.open(), reg.open()
            a.start(make_trainer(reg, digits))
            assert reg.running_count() == 1
            with pytest.raises(CapacityError) as err:
                b.start(make_trainer(reg, digits, seed=1))
            msg = str(err.value)
            assert "1 trainer is already running" in msg and reg_mod.ENV_MAX_TRAINERS in msg
            assert b.trainer is None, "a refused Start attaches nothing"
            a.trainer.pause()  # a paused job does not count
            assert reg.running_count() == 0
            b.start(make_trainer(reg, digits, seed=1))
            assert b.trainer.state in (S.STARTING, S.RUNNING)
            with pytest.raises(CapacityError):
                a.resume()
            assert a.trainer.state == S.PAUSED
            b.start()  # a running job's own Start again is not "one more" (and a no-op)
            assert reg.running_count() == 1
        finally:
            reg.shutdown()

    def test_cap_follows_the_environment(self, monkeypatch, digits) -> None:
        monkeypatch.setenv(reg_mod.ENV_MAX_TRAINERS, "1")
        reg = TrainerRegistry(heartbeat_timeout=0)
        try:
            a, b = reg.open(), reg.open()
            a.start(make_trainer(reg, digits))
            with pytest.raises(CapacityError):
                b.start(make_trainer(reg, digits))
            monkeypatch.setenv(reg_mod.ENV_MAX_TRAINERS, "2")
            b.start(make_trainer(reg, digits))
            assert reg.running_count() == 2
        finally:
            reg.shutdown()

    @pytest.mark.parametrize("kind", ["pair", "pitfall"])
    def test_every_kind_of_job_counts(self, kind, digits) -> None:
        """The pair and a Pitfalls run take a slot as a model does; at the cap, any one more is refused."""
        reg = TrainerRegistry(max_running=1, heartbeat_timeout=0)
        try:
            a, b = reg.open(), reg.open()
            a.start(JOBS[kind](reg, digits))
            for make in JOBS.values():
                with pytest.raises(CapacityError, match="already running"):
                    b.start(make(reg, digits))
            assert b.trainer is None
            a.trainer.stop()
            assert reg.running_count() == 0
            b.start(JOBS[kind](reg, digits))
            with pytest.raises(CapacityError):  # Resume of the stopped one is capped too
                a.resume()
        finally:
            reg.shutdown()


class TestSessionEnd:
    @pytest.mark.parametrize("kind", list(JOBS))
    def test_finalizer_stops_the_job_when_the_handle_is_collected(self, kind, registry, digits) -> None:
        h = registry.open()
        h.start(JOBS[kind](registry, digits))
        tr, hid = h.trainer, h.id
        assert wait_for(lambda: stepping(tr, 2))
        del h  # the session's state is dropped
        gc.collect()
        assert wait_for(lambda: not tr.is_alive, 10), "the worker must end with its session"
        assert tr.state == S.STOPPED and "session ended" in tr.message
        assert hid not in registry

    def test_heartbeat_timeout_stops_an_unseen_session(self, digits) -> None:
        clock = FakeClock()
        reg = TrainerRegistry(heartbeat_timeout=10, check_interval=60, clock=clock)
        try:
            seen, unseen = reg.open(), reg.open()
            seen.start(make_trainer(reg, digits))
            unseen.start(make_trainer(reg, digits, seed=1))
            clock.t += 6
            seen.touch()
            assert reg.sweep() == []
            clock.t += 6  # unseen: 12 s > 10 s; seen: 6 s
            assert reg.sweep() == [unseen.id]
            assert unseen.trainer.join(10) and unseen.trainer.state == S.STOPPED
            assert "not seen for 10 s" in unseen.trainer.message
            assert seen.trainer.state in (S.STARTING, S.RUNNING)
            unseen.resume()  # the session came back: Resume continues
            assert unseen.trainer.state == S.RUNNING
        finally:
            reg.shutdown()

    @pytest.mark.parametrize("kind", ["pair", "pitfall"])
    def test_an_unseen_pair_or_pitfall_run_is_stopped(self, kind, digits) -> None:
        clock = FakeClock()
        reg = TrainerRegistry(heartbeat_timeout=10, check_interval=60, clock=clock)
        try:
            h = reg.open()
            job = JOBS[kind](reg, digits)
            h.start(job)
            assert wait_for(lambda: stepping(job, 2))
            clock.t += 11
            assert reg.sweep() == [h.id]
            assert job.join(10) and job.state == S.STOPPED and "not seen for 10 s" in job.message
            assert wait_for(lambda: job.snapshot().message.startswith("stopped at step"), 10)
        finally:
            reg.shutdown()

    def test_probe_counts_as_a_sighting(self, digits) -> None:
        clock = FakeClock()
        alive = {"a": True}
        reg = TrainerRegistry(heartbeat_timeout=10, check_interval=60, clock=clock)
        try:
            h = reg.open(probe=lambda: alive["a"])
            broken = reg.open(probe=lambda: 1 / 0)
            h.start(make_trainer(reg, digits))
            broken.start(make_trainer(reg, digits, seed=1))
            for _ in range(3):
                clock.t += 8
                stopped = reg.sweep()
            assert h.trainer.state in (S.STARTING, S.RUNNING), (
                "a connected session stays alive without page draws"
            )
            assert stopped == [] and broken.trainer.state == S.STOPPED, "a failing probe is not a sighting"
            alive["a"] = False
            clock.t += 11
            assert reg.sweep() == [h.id]
            assert h.trainer.join(10)
        finally:
            reg.shutdown()

    def test_watchdog_thread_stops_stale_jobs_by_itself(self, digits) -> None:
        reg = TrainerRegistry(heartbeat_timeout=0.3, check_interval=0.05)
        try:
            h = reg.open()
            h.start(make_trainer(reg, digits))
            tr = h.trainer
            assert wait_for(lambda: tr.state == S.STOPPED, timeout=20)
            assert tr.join(10)
            h.close()
            assert wait_for(lambda: not reg.watchdog_alive, timeout=5), (
                "the watchdog ends when nothing is left to watch"
            )
        finally:
            reg.shutdown()


class TestLiveData:
    def test_plot_series_small_history_is_unchanged(self) -> None:
        h = History(
            step=[1, 2, 3],
            loss=[5.0, 4.0, 3.0],
            recon=[-4.0, -3.0, -2.5],
            kl=[1.0, 1.0, 0.5],
            kl_per_dim=[[0.5, 0.5], [0.25, 0.75], [0.5, 0.0]],
            beta=[1.0, 1.0, 1.0],
        )
        ps = live.plot_series(h, max_points=10)
        np.testing.assert_array_equal(ps["step"], [1, 2, 3])
        np.testing.assert_allclose(ps["recon_cost"], [4.0, 3.0, 2.5])  # -recon: a cost >= 0
        np.testing.assert_allclose(ps["neg_elbo"], [5.0, 4.0, 3.0])
        assert ps["kl_per_dim"].shape == (3, 2)

    def test_plot_series_buckets_are_means(self) -> None:
        n = 1000
        h = History(
            step=list(range(1, n + 1)),
            loss=[float(i) for i in range(n)],
            recon=[-2.0] * n,
            kl=[float(i % 2) for i in range(n)],
            kl_per_dim=[[float(i), 1.0] for i in range(n)],
            beta=[1.0] * n,
        )
        ps = live.plot_series(h, max_points=100)
        assert len(ps["step"]) == 100 and ps["step"][-1] == n and ps["step"][0] == 10
        np.testing.assert_allclose(ps["loss"][:2], [4.5, 14.5])  # mean of 0..9, 10..19
        np.testing.assert_allclose(ps["kl"], 0.5)
        np.testing.assert_allclose(ps["recon_cost"], 2.0)
        np.testing.assert_allclose(ps["kl_per_dim"][:, 1], 1.0)
        np.testing.assert_allclose(ps["kl_per_dim"][0, 0], 4.5)

    def test_plot_series_of_an_ae_has_no_kl_dims(self) -> None:
        h = History(
            step=list(range(1, 501)),
            loss=[1.0] * 500,
            recon=[-1.0] * 500,
            kl=[0.0] * 500,
            kl_per_dim=[[] for _ in range(500)],
            beta=[0.0] * 500,
        )
        ps = live.plot_series(h, max_points=50)
        assert ps["kl_per_dim"].shape == (50, 0) and len(ps["step"]) == 50

    def test_incremental_series_matches_full(self, registry, digits) -> None:
        h = registry.open()
        h.start(make_trainer(registry, digits))
        tr = h.trainer
        for at_least in (7, 50, 300):
            assert wait_for(lambda n=at_least: tr.global_step >= n)
            hist = tr.snapshot().history
            got = h.series(hist, max_points=40)
            want = live.plot_series(hist, max_points=40)
            for k in want:
                np.testing.assert_allclose(got[k], want[k], err_msg=k)
        h.close()

    def test_series_before_the_first_step_then_after(self, registry, digits) -> None:
        h = registry.open()
        h.attach(make_trainer(registry, digits))
        tr = h.trainer
        assert len(h.series(tr.snapshot().history)["step"]) == 0
        for _ in range(5):
            tr.step()
        got = h.series(tr.snapshot().history)
        assert got["kl_per_dim"].shape == (5, 4) and list(got["step"]) == [1, 2, 3, 4, 5]
        h.close()

    def test_fixed_examples_are_one_per_class(self, digits) -> None:
        x = live.fixed_examples(digits, 8)
        assert x.shape == (8, digits.dim) and x.dtype == torch.uint8
        idx = [int((digits.x_test == row).all(1).nonzero()[0]) for row in x]
        assert [int(digits.y_test[i]) for i in idx] == list(range(8))
        assert torch.equal(live.prior_noise(4, 16), live.prior_noise(4, 16)), (
            "the same prior draws every time"
        )

    def test_previews_come_from_the_worker_at_most_about_once_a_second(self, registry, digits) -> None:
        h = registry.open()
        h.start(make_trainer(registry, digits))
        tr = h.trainer
        assert wait_for(lambda: tr.latest_preview is not None)
        seen = {tr.latest_preview.step}
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            seen.add(tr.latest_preview.step)
            time.sleep(0.05)
        assert 2 <= len(seen) <= 5, seen  # new ones while it trains, about one a second
        h.close()

    def test_consistent_copy_round_trips_as_a_checkpoint(self, registry, digits) -> None:
        h = registry.open()
        h.start(make_trainer(registry, digits, kind="ae"))
        tr = h.trainer
        assert wait_for(lambda: tr.global_step > 5)
        model, meta = tr.consistent_copy("test")  # while training
        assert meta["steps"] >= 6 and meta["command"] == "test"
        ck = load_checkpoint(checkpoint_bytes(model, meta), name="download")
        assert ck.metadata["dataset"] == "digits" and ck.config.kind == "ae"
        for a, b in zip(ck.model.parameters(), model.parameters()):
            assert torch.equal(a, b)
        h.close()

    def test_cli_command_names_every_setting(self, digits) -> None:
        cmd = cli_command(*configs(digits))
        for flag in (
            "--dataset digits",
            "--model vae",
            "--latent 4",
            "--hidden 32",
            "--epochs 5000",
            "--batch-size 64",
            "--lr 0.001",
            "--beta 1",
            "--warmup 0",
            "--free-bits 0",
            "--seed 0",
        ):
            assert flag in cmd
