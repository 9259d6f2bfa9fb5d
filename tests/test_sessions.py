"""Browser sessions' trainers without Streamlit: the running-trainer cap, thread lifecycle, session end
(finalizer and heartbeat) in vae_core.registry, and the live-view data in vae_core.live (thinned
history, previews) and of a live trainer (checkpoints)."""

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
from vae_core.models import ModelConfig
from vae_core.pair import PairTrainer
from vae_core.registry import CapacityError, TrainerRegistry
from vae_core.train import History, TrainConfig, Trainer, cli_command
from vae_core.train import TrainerState as S

# one intra-op thread per trainer thread: see tests/conftest.py::one_torch_thread
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def make_trainer(ds, kind: str = "vae", epochs: int = 5000, seed: int = 0, latent: int = 4) -> Trainer:
    """A digits trainer that would take minutes to finish, so it is still running when checked."""
    mc = ModelConfig(kind=kind, input_dim=ds.dim, image_shape=ds.image_shape, hidden=(32,), latent_dim=latent)
    tc = TrainConfig(dataset="digits", epochs=epochs, batch_size=64, seed=seed, eval_size=100)
    return Trainer(mc, tc, dataset=ds, device="cpu")


def wait_for(cond, timeout: float = 20.0) -> bool:
    """tests.conftest.wait_for with this module's shorter default timeout."""
    return shared_wait_for(cond, timeout)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def registry():
    reg = TrainerRegistry(max_running=2, heartbeat_timeout=0)
    yield reg
    reg.shutdown()


class TestSettings:
    def test_default_is_two_per_core(self, monkeypatch) -> None:
        monkeypatch.delenv(reg_mod.ENV_MAX_TRAINERS, raising=False)
        assert reg_mod.default_max_trainers() == 2 * reg_mod._cpu_count()
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
        h.start(make_trainer(digits))
        tr = h.trainer
        assert tr.state == S.RUNNING and tr.is_alive
        assert wait_for(lambda: tr.global_step >= 5)
        tr.pause()
        assert wait_for(lambda: tr.snapshot().state == S.PAUSED)
        time.sleep(0.1)  # let the step in flight (if any) end
        held = tr.global_step
        time.sleep(0.3)
        assert tr.global_step == held, "a paused trainer must not step"
        assert tr.is_alive, "pausing keeps the thread, waiting"
        rec = tr.step()  # Step while paused: exactly one batch
        assert rec is not None and tr.global_step == held + 1
        h.resume()
        assert tr.state == S.RUNNING
        assert wait_for(lambda: tr.global_step > held + 3)
        tr.stop()
        assert tr.join(10) and not tr.is_alive
        assert tr.state == S.STOPPED
        assert registry.running_count() == 0

    def test_close_stops_and_forgets(self, registry, digits) -> None:
        h = registry.open()
        h.start(make_trainer(digits))
        tr = h.trainer
        assert h.id in registry
        h.close()
        h.close()  # idempotent
        assert h.closed and h.id not in registry and len(registry) == 0
        assert tr.join(10) and tr.state == S.STOPPED
        assert "session ended" in tr.message

    def test_attach_replaces_and_stops_the_old(self, registry, digits) -> None:
        h = registry.open()
        h.start(make_trainer(digits))
        old = h.trainer
        h.start(make_trainer(digits, seed=1))
        assert h.trainer is not old and h.trainer.state == S.RUNNING
        assert old.join(10) and old.state == S.STOPPED
        h.attach(None)  # Reset
        assert h.trainer is None
        h.close()

    def test_two_sessions_do_not_touch_each_other(self, registry, digits) -> None:
        a, b = registry.open(), registry.open()
        a.start(make_trainer(digits, seed=0))
        b.start(make_trainer(digits, seed=1))
        ta, tb = a.trainer, b.trainer
        assert ta is not tb and ta.model is not tb.model
        assert wait_for(lambda: ta.global_step > 3 and tb.global_step > 3)
        ta.pause()
        assert wait_for(lambda: ta.state == S.PAUSED)
        time.sleep(0.1)
        held, before_b = ta.global_step, tb.global_step
        assert wait_for(lambda: tb.global_step > before_b + 5), "b keeps training while a is paused"
        assert ta.global_step == held
        assert not torch.equal(ta.model.decoder.net[0].weight, tb.model.decoder.net[0].weight)
        a.close()
        assert ta.join(10) and tb.is_alive and tb.state == S.RUNNING, "closing a leaves b running"
        b.close()
        assert tb.join(10)


class TestCap:
    def test_one_more_gets_a_clear_message(self, digits) -> None:
        reg = TrainerRegistry(max_running=1, heartbeat_timeout=0)
        try:
            a, b = reg.open(), reg.open()
            a.start(make_trainer(digits))
            assert reg.running_count() == 1
            with pytest.raises(CapacityError) as err:
                b.start(make_trainer(digits, seed=1))
            msg = str(err.value)
            assert "1 trainer is already running" in msg and reg_mod.ENV_MAX_TRAINERS in msg
            assert b.trainer is None, "a refused Start attaches nothing"
            a.trainer.pause()  # a paused trainer does not count
            assert reg.running_count() == 0
            b.start(make_trainer(digits, seed=1))
            assert b.trainer.state == S.RUNNING
            with pytest.raises(CapacityError):
                a.resume()
            assert a.trainer.state == S.PAUSED
            b.start()  # a running trainer's own Start again is not "one more" (and a no-op)
            assert reg.running_count() == 1
        finally:
            reg.shutdown()

    def test_cap_follows_the_environment(self, monkeypatch, digits) -> None:
        monkeypatch.setenv(reg_mod.ENV_MAX_TRAINERS, "1")
        reg = TrainerRegistry(heartbeat_timeout=0)
        try:
            a, b = reg.open(), reg.open()
            a.start(make_trainer(digits))
            with pytest.raises(CapacityError):
                b.start(make_trainer(digits))
            monkeypatch.setenv(reg_mod.ENV_MAX_TRAINERS, "2")
            b.start(make_trainer(digits))
            assert reg.running_count() == 2
        finally:
            reg.shutdown()


class TestSessionEnd:
    def test_finalizer_stops_the_trainer_when_the_handle_is_collected(self, registry, digits) -> None:
        h = registry.open()
        h.start(make_trainer(digits))
        tr, hid = h.trainer, h.id
        assert wait_for(lambda: tr.global_step > 2)
        del h  # the session's state is dropped
        gc.collect()
        assert tr.join(10), "the training thread must end with its session"
        assert tr.state == S.STOPPED and "session ended" in tr.message
        assert hid not in registry

    def test_heartbeat_timeout_stops_an_unseen_session(self, digits) -> None:
        clock = FakeClock()
        reg = TrainerRegistry(heartbeat_timeout=10, check_interval=60, clock=clock)
        try:
            seen, unseen = reg.open(), reg.open()
            seen.start(make_trainer(digits))
            unseen.start(make_trainer(digits, seed=1))
            clock.t += 6
            seen.touch()
            assert reg.sweep() == []
            clock.t += 6  # unseen: 12 s > 10 s; seen: 6 s
            assert reg.sweep() == [unseen.id]
            assert unseen.trainer.join(10) and unseen.trainer.state == S.STOPPED
            assert "not seen for 10 s" in unseen.trainer.message
            assert seen.trainer.state == S.RUNNING
            unseen.resume()  # the session came back: Resume continues
            assert unseen.trainer.state == S.RUNNING
        finally:
            reg.shutdown()

    def test_probe_counts_as_a_sighting(self, digits) -> None:
        clock = FakeClock()
        alive = {"a": True}
        reg = TrainerRegistry(heartbeat_timeout=10, check_interval=60, clock=clock)
        try:
            h = reg.open(probe=lambda: alive["a"])
            broken = reg.open(probe=lambda: 1 / 0)
            h.start(make_trainer(digits))
            broken.start(make_trainer(digits, seed=1))
            for _ in range(3):
                clock.t += 8
                stopped = reg.sweep()
            assert h.trainer.state == S.RUNNING, "a connected session stays alive without page draws"
            assert stopped == [] and broken.trainer.state != S.RUNNING, "a failing probe is not a sighting"
            alive["a"] = False
            clock.t += 11
            assert reg.sweep() == [h.id]
            assert h.trainer.join(10)
        finally:
            reg.shutdown()

    def test_watchdog_thread_stops_stale_trainers_by_itself(self, digits) -> None:
        reg = TrainerRegistry(heartbeat_timeout=0.3, check_interval=0.05)
        try:
            h = reg.open()
            h.start(make_trainer(digits))
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
        h.attach(make_trainer(digits))
        tr = h.trainer
        for chunk in (7, 50, 300):
            tr.run(max_steps=chunk)
            got = h.series(tr.snapshot().history, max_points=40)
            want = live.plot_series(tr.snapshot().history, max_points=40)
            for k in want:
                np.testing.assert_allclose(got[k], want[k], err_msg=k)
        h.close()

    def test_series_before_the_first_step_then_after(self, registry, digits) -> None:
        h = registry.open()
        h.attach(make_trainer(digits))
        tr = h.trainer
        assert len(h.series(tr.snapshot().history)["step"]) == 0
        tr.run(max_steps=5)
        got = h.series(tr.snapshot().history)
        assert got["kl_per_dim"].shape == (5, 4) and list(got["step"]) == [1, 2, 3, 4, 5]
        h.close()

    def test_fixed_examples_are_one_per_class(self, digits) -> None:
        x = live.fixed_examples(digits, 8)
        assert x.shape == (8, digits.dim) and x.dtype == torch.uint8
        idx = [int((digits.x_test == row).all(1).nonzero()[0]) for row in x]
        assert [int(digits.y_test[i]) for i in idx] == list(range(8))

    def test_preview_shapes_ranges_and_rate_limit(self, registry, digits) -> None:
        h = registry.open()
        assert h.preview(torch.zeros(2, digits.dim), torch.zeros(2, 4)) is None
        h.attach(make_trainer(digits))
        tr = h.trainer
        tr.run(max_steps=3)
        x, z = live.fixed_examples(digits, 8), live.prior_noise(4, 16)
        assert torch.equal(z, live.prior_noise(4, 16)), "the same prior draws every time"
        p1 = h.preview(x, z, min_interval_s=60)
        assert p1.recon.shape == (8, digits.dim) and p1.samples.shape == (16, digits.dim)
        assert float(p1.recon.min()) >= 0 and float(p1.samples.max()) <= 1
        tr.step()
        assert h.preview(x, z, min_interval_s=60) is p1, "at most one decode per interval"
        p2 = h.preview(x, z, min_interval_s=0)
        assert p2 is not p1 and p2.step == p1.step + 1
        assert h.preview(x, z, min_interval_s=0) is p2, "same step: no recompute"
        h.close()

    def test_preview_while_training_comes_from_the_training_thread(self, registry, digits) -> None:
        h = registry.open()
        h.start(make_trainer(digits))
        tr = h.trainer
        x, z = live.fixed_examples(digits, 8), live.prior_noise(4, 16)
        p0 = h.preview(x, z, min_interval_s=0.05)  # the first one is decoded here
        assert wait_for(lambda: h.latest_preview is not p0 and h.latest_preview.step > p0.step)
        p1 = h.preview(x, z, min_interval_s=0.05)
        assert p1.step > p0.step and p1.made_at > p0.made_at
        assert h.preview(x, z, min_interval_s=0.05) is p1 or h.latest_preview.step > p1.step
        tr.pause()
        h._box.wanted_until = 0.0  # nobody watching: the training thread decodes nothing
        tr.resume()
        before = h.latest_preview
        time.sleep(0.3)
        assert h.latest_preview is before
        h.close()

    def test_consistent_copy_round_trips_as_a_checkpoint(self, registry, digits) -> None:
        h = registry.open()
        h.start(make_trainer(digits, kind="ae"))
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
        tr = make_trainer(digits)
        cmd = cli_command(tr.model_config, tr.config)
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


class TestPairTrainerUnderTheCap:
    """The Compare page's live pair (two models, one thread) counts as one trainer."""

    @staticmethod
    def make_pair(ds, epochs: int = 5000):
        mc = ModelConfig(kind="vae", input_dim=ds.dim, image_shape=ds.image_shape, hidden=(32,), latent_dim=2)
        tc = TrainConfig(dataset="digits", epochs=epochs, batch_size=64, seed=0, eval_size=100)
        return PairTrainer(mc, tc, ds)

    def test_a_pair_takes_a_slot_and_a_refused_pair_never_starts(self, digits) -> None:
        reg = TrainerRegistry(max_running=1, heartbeat_timeout=0)
        try:
            a, b = reg.open(), reg.open()
            pair = self.make_pair(digits)
            a.start(pair)
            assert pair.is_alive and reg.running_count() == 1
            with pytest.raises(CapacityError):
                b.start(self.make_pair(digits))
            assert b.trainer is None
            with pytest.raises(CapacityError):
                b.start(make_trainer(digits))
            pair.stop()
            assert pair.join(10) and reg.running_count() == 0
            b.start(make_trainer(digits))
            with pytest.raises(CapacityError):  # Resume of the stopped pair is capped too
                a.resume()
            assert not pair.is_alive
        finally:
            reg.shutdown()

    def test_a_pair_speaks_the_trainer_states_and_has_no_preview(self, registry, digits) -> None:
        h = registry.open()
        pair = self.make_pair(digits, epochs=1)
        assert pair.state is S.IDLE
        h.start(pair)
        assert pair.join(60) and pair.state is S.FINISHED and pair.progress().state is S.FINISHED
        assert h.preview(torch.zeros(2, digits.dim), torch.zeros(2, 2)) is None
        h.close()

    def test_the_pair_ends_with_its_session(self, registry, digits) -> None:
        h = registry.open()
        pair = self.make_pair(digits)
        h.start(pair)
        assert wait_for(lambda: pair.global_step > 2)
        del h
        gc.collect()
        assert pair.join(10), "the pair's thread must end with its session"
        assert pair.state == S.STOPPED and "session ended" in pair.message

    def test_an_unseen_pair_is_stopped_and_resumes(self, digits) -> None:
        clock = FakeClock()
        reg = TrainerRegistry(heartbeat_timeout=10, check_interval=60, clock=clock)
        try:
            h = reg.open()
            pair = self.make_pair(digits)
            h.start(pair)
            assert wait_for(lambda: pair.global_step > 2)
            clock.t += 11
            assert reg.sweep() == [h.id]
            assert pair.join(10) and pair.state == S.STOPPED and "not seen for 10 s" in pair.message
            step = pair.global_step
            h.resume()
            assert pair.is_alive and wait_for(lambda: pair.global_step > step)
            pair.stop()
            assert pair.join(10)
        finally:
            reg.shutdown()
