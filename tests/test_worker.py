"""Trainers in worker processes (vae_core.worker) and the registry that holds them.

Starting a worker costs 2-4 s here (a Python that imports torch), so the tests of one handle
share one worker and run in file order: step, start, snapshot, pause, weights, stop, SIGKILL,
restart, close.
"""

from __future__ import annotations

import gc
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

from tests.conftest import ROOT
from tests.conftest import wait_for as shared_wait_for
from vae_core.checkpoint import checkpoint_bytes, load_checkpoint
from vae_core.data import load_dataset
from vae_core.models import ModelConfig
from vae_core.registry import CapacityError, TrainerRegistry
from vae_core.train import TrainConfig, Trainer
from vae_core.train import TrainerState as S
from vae_core.worker import (
    LiveSnapshot,
    WorkerError,
    WorkerPair,
    WorkerTrainer,
    cpu_count,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def configs(ds, epochs: int = 5000, latent: int = 4, kind: str = "vae") -> tuple[ModelConfig, TrainConfig]:
    """A digits model that would train for minutes: still running when checked."""
    mc = ModelConfig(kind=kind, input_dim=ds.dim, image_shape=ds.image_shape, hidden=(32,), latent_dim=latent)
    return mc, TrainConfig(dataset="digits", epochs=epochs, batch_size=64, seed=3, eval_size=100)


def wait_for(cond, timeout: float = 60.0) -> bool:
    """tests.conftest.wait_for with this module's longer default timeout (workers start slowly), every 20 ms."""
    return shared_wait_for(cond, timeout, poll=0.02)


def pid_gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie nobody reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def quick(fn, limit: float = 0.5):
    """Call ``fn`` and assert it returned within ``limit`` s."""
    t = time.perf_counter()
    out = fn()
    assert time.perf_counter() - t < limit, f"{fn} took {time.perf_counter() - t:.2f} s"
    return out


@pytest.fixture(scope="module")
def ds():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def worker(ds):
    w = WorkerTrainer(*configs(ds), dataset=ds, device="cpu", num_threads=1)
    yield w
    w.close()


class TestOneWorker:
    """One handle through its whole life; each test leaves it as the next expects."""

    def test_steps_before_start_match_an_in_process_trainer(self, worker, ds) -> None:
        assert worker.state == S.IDLE and worker.pid is None and worker.snapshot().step == 0
        recs = [worker.step() for _ in range(3)]
        assert [r["step"] for r in recs] == [1, 2, 3]
        local = Trainer(*configs(ds), dataset=ds, device="cpu")
        mine = [local.step() for _ in range(3)]
        assert [r["loss"] for r in recs] == [
            r["loss"] for r in mine
        ]  # same seed, same batches, one thread each
        model, meta = worker.consistent_copy("cmd")
        ref = local.model.state_dict()
        assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items()), (
            "weights differ from the worker's"
        )
        assert meta["steps"] == 3 and meta["history"]["step"] == [1, 2, 3] and meta["command"] == "cmd"
        assert meta["model_config"] == local.metadata()["model_config"] and not model.training

    def test_start_returns_at_once_and_shows_starting(self, worker) -> None:
        t = time.perf_counter()
        worker.start()
        assert time.perf_counter() - t < 0.5
        assert worker.state in (S.STARTING, S.RUNNING)
        assert wait_for(lambda: worker.state == S.RUNNING and worker.global_step > 20)

    def test_snapshot_content(self, worker) -> None:
        assert wait_for(
            lambda: worker.snapshot().preview is not None and len(worker.snapshot().history.eval_step) > 0
        )
        snap = worker.snapshot()
        assert isinstance(snap, LiveSnapshot) and snap.state == S.RUNNING and snap.pid == worker.pid
        assert snap.total_steps == worker.total_steps == worker.steps_per_epoch * 5000
        assert snap.history.step == list(range(1, len(snap.history.step) + 1))
        assert snap.step >= len(snap.history.step) - 1 and snap.epoch == pytest.approx(
            snap.step / worker.steps_per_epoch
        )
        assert math.isfinite(snap.examples_per_s) and snap.examples_per_s > 0 and math.isfinite(snap.eta_s)
        assert snap.threads == 1
        pv = snap.preview
        assert pv.recon.shape == (8, 64) and pv.samples.shape == (16, 64)
        assert float(pv.recon.min()) >= 0 and float(pv.samples.max()) <= 1 and pv.step > 0
        assert worker.latest_preview is not None

    def test_pause_step_resume(self, worker) -> None:
        quick(worker.pause)
        assert worker.state == S.PAUSED
        time.sleep(0.8)  # an update after the pause
        held = worker.global_step
        time.sleep(0.6)
        assert worker.global_step == held, "a paused worker must not step"
        rec = worker.step()
        assert rec is not None and rec["step"] == held + 1 and worker.global_step == held + 1
        assert worker.consistent_copy()[1]["steps"] == held + 1, "a pause pushes exact weights"
        quick(worker.resume)
        assert worker.state == S.RUNNING
        assert wait_for(lambda: worker.global_step > held + 10)

    def test_weights_while_running_round_trip_as_a_checkpoint(self, worker) -> None:
        model, meta = worker.consistent_copy("python -m vae_core.train …")
        ck = load_checkpoint(checkpoint_bytes(model, meta))
        assert all(torch.equal(v, ck.model.state_dict()[k]) for k, v in model.state_dict().items())
        assert ck.metadata["steps"] == meta["steps"] == len(meta["history"]["step"])

    def test_stop_keeps_weights_and_resume_continues(self, worker) -> None:
        worker.stop()
        assert worker.state == S.STOPPED
        assert wait_for(lambda: worker.join(0) and worker.snapshot().message)
        at = worker.global_step
        assert worker.model_copy() is not None and worker.metadata()["steps"] == at
        worker.resume()
        assert wait_for(lambda: worker.state == S.RUNNING and worker.global_step > at + 5)

    def test_a_killed_worker_leaves_a_message_its_weights_and_a_working_start(self, worker) -> None:
        pid = worker.pid
        worker.pause()
        assert wait_for(lambda: worker.consistent_copy()[1]["steps"] == worker.global_step, 5)
        kept = worker.global_step
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: worker.state == S.FAILED, 10)
        assert "stopped unexpectedly" in worker.message and "-9" in worker.message
        assert f"step {kept}" in worker.message and "press Start" in worker.message
        assert not worker.is_alive and pid_gone(pid)
        # nothing waits on the dead worker, and its last weights are still there
        snap = quick(worker.snapshot)
        assert snap.state == S.FAILED and snap.step == kept
        _, meta = quick(worker.consistent_copy)
        assert meta["steps"] == kept and len(meta["history"]["step"]) == kept
        quick(worker.pause)
        quick(worker.stop)
        assert worker.state == S.FAILED, "stopping a dead worker does not hide what happened"
        # Start trains again, in a new process
        quick(worker.start)
        assert worker.state == S.STARTING and worker.pid != pid
        assert wait_for(lambda: worker.state == S.RUNNING and worker.global_step > 5)

    def test_close_ends_the_process(self, worker) -> None:
        pid = worker.pid
        worker.close()
        assert pid_gone(pid) and not worker.is_alive and worker.state == S.STOPPED
        assert worker.model_copy() is not None  # the weights received stay readable


def test_a_worker_that_fails_to_build_reports_why(ds) -> None:
    w = WorkerTrainer(*configs(ds), dataset=ds, device="cuda:99")
    w.start()
    assert wait_for(lambda: w.state == S.FAILED)
    assert "training failed" in w.message and "cuda:99" in w.message
    with pytest.raises(WorkerError):
        w.model_copy()
    assert wait_for(lambda: w.pid is not None and pid_gone(w.pid), 10)


def test_the_pair_trains_in_one_worker(ds) -> None:
    mc, tc = configs(ds, epochs=3, latent=2)
    p = WorkerPair(mc, tc, dataset=ds, num_threads=1)
    p.start()
    assert p.progress().state in (S.STARTING, S.RUNNING)
    assert wait_for(lambda: p.state == S.FINISHED)
    prog = p.progress()
    assert prog.fraction == 1 and math.isfinite(prog.vae_loss) and math.isfinite(prog.ae_loss)
    vae, ae = p.models()
    assert vae.is_vae and not ae.is_vae
    mv, ma = p.metadata()
    assert mv["steps"] == ma["steps"] == p.total_steps and len(mv["history"]["step"]) == p.total_steps
    pid = p.pid
    p.close()
    assert pid_gone(pid)


class TestRegistry:
    def test_cap_thread_sharing_session_end_and_shutdown(self, ds) -> None:
        reg = TrainerRegistry(max_running=2, heartbeat_timeout=0, spare_workers=0)
        try:
            h1, h2, h3 = reg.open(), reg.open(), reg.open()
            h1.start(reg.worker(*configs(ds), dataset=ds))
            h2.start(reg.worker(*configs(ds), dataset=ds))
            assert reg.running_count() == 2  # starting counts
            w3 = reg.worker(*configs(ds), dataset=ds)
            with pytest.raises(CapacityError, match="VAE_LAB_MAX_TRAINERS"):
                h3.start(w3)
            assert w3.pid is None and h3.trainer is None, "a refused start never starts a process"
            w1, w2 = h1.trainer, h2.trainer
            share = max(1, cpu_count() // 2)
            assert wait_for(
                lambda: all(w.state == S.RUNNING and w.snapshot().threads == share for w in (w1, w2))
            )
            w2.pause()  # one stepping worker left: it gets every core
            assert wait_for(lambda: w1.snapshot().threads == cpu_count(), 10)
            assert reg.running_count() == 1
            # the session of h2 ends: its handle is collected, its process ends
            pid2 = w2.pid
            h2 = w2 = None  # the session's state is dropped
            gc.collect()
            assert wait_for(lambda: pid_gone(pid2), 10)
            pid1 = w1.pid
        finally:
            reg.shutdown()
        assert pid_gone(pid1), "shutdown ends every worker"

    def test_a_spare_worker_is_taken_by_the_next_start(self, ds) -> None:
        reg = TrainerRegistry(max_running=2, heartbeat_timeout=0, spare_workers=1)
        try:
            assert reg.prewarm()
            spare = reg._spare.pid
            time.sleep(1.0)
            h = reg.open()
            h.start(reg.worker(*configs(ds), dataset=ds))
            assert h.trainer.pid == spare
            assert wait_for(lambda: h.trainer.state == S.RUNNING)
        finally:
            reg.shutdown()
        assert pid_gone(spare)


def test_no_orphan_when_the_parent_is_killed(tmp_path) -> None:
    """A server killed with SIGKILL runs no exit code: its worker notices the closed pipe and exits."""
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent("""
        import time
        from vae_core.data import load_dataset
        from vae_core.models import ModelConfig
        from vae_core.train import TrainConfig
        from vae_core.worker import WorkerTrainer
        ds = load_dataset("digits")
        mc = ModelConfig(kind="vae", input_dim=64, image_shape=(1, 8, 8), hidden=(32,), latent_dim=2)
        w = WorkerTrainer(mc, TrainConfig(dataset="digits", epochs=5000), dataset=ds, num_threads=1)
        w.start()
        while w.state.value != "running":
            time.sleep(0.02)
        print(w.pid, flush=True)
        time.sleep(600)
    """)
    )
    parent = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(parent.stdout.readline()), daemon=True)
    reader.start()
    reader.join(90)
    try:
        assert line and line[0].strip().isdigit(), "the parent did not start its worker"
        child = int(line[0])
        assert not pid_gone(child)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    assert wait_for(lambda: pid_gone(child), 10), f"worker {child} outlived its killed parent"
