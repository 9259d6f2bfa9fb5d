"""Live training in workers (vae_core.forkserver, vae_core.worker, vae_core.handle) and the registry
that holds them: one handle type (LiveJob) for a model, an AE/VAE pair and a Pitfalls run.

Each job gets a worker forked from the fork server, which imported torch once: a worker is ready in
a fraction of a second. The tests of one handle share one worker and run in file order: step, start,
snapshot, pause, weights, stop, SIGKILL, restart, close.
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

import vae_core
from tests.conftest import ROOT, worker_children
from tests.conftest import wait_for as shared_wait_for
from vae_core import pitfalls as pf
from vae_core.checkpoint import checkpoint_bytes, load_checkpoint
from vae_core.data import load_dataset
from vae_core.forkserver import cpu_count, default_pool
from vae_core.handle import LiveJob, LiveSnapshot, WorkerError
from vae_core.jobs import PairJob, PitfallJob, TrainJob
from vae_core.models import ModelConfig
from vae_core.registry import CapacityError, TrainerRegistry
from vae_core.train import TrainConfig, Trainer
from vae_core.train import TrainerState as S

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def configs(ds, epochs: int = 5000, latent: int = 4, kind: str = "vae") -> tuple[ModelConfig, TrainConfig]:
    """A digits model that would train for minutes: still running when checked."""
    mc = ModelConfig(kind=kind, input_dim=ds.dim, image_shape=ds.image_shape, hidden=(32,), latent_dim=latent)
    return mc, TrainConfig(dataset="digits", epochs=epochs, batch_size=64, seed=3, eval_size=100)


def wait_for(cond, timeout: float = 60.0) -> bool:
    """tests.conftest.wait_for with this module's longer default timeout, every 20 ms."""
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
def pool():
    """The process's fork server, ready (torch imported) before the first job."""
    p = default_pool()
    p.start()
    assert wait_for(lambda: p.ready, 120), "the fork server did not get ready"
    return p


@pytest.fixture(scope="module")
def worker(ds, pool):
    w = LiveJob(TrainJob(*configs(ds)), pool, dataset=ds, device="cpu", num_threads=1)
    yield w
    w.close()


class TestForkServer:
    def test_it_imports_the_same_vae_core_and_runs_one_thread(self, pool) -> None:
        assert pool.core == os.path.realpath(vae_core.__file__), "the fork server must import this vae_core"
        tasks = os.listdir(f"/proc/{pool.pid}/task")
        assert len(tasks) == 1, f"a process with threads must not fork: {len(tasks)} threads"


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

    def test_snapshot_content(self, worker, ds) -> None:
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
        pv = snap.preview  # made by the worker: the page builds no preview images
        assert pv.inputs.shape == pv.recon.shape == (8, 64) and pv.samples.shape == (16, 64)
        assert pv.inputs.dtype == torch.uint8 and [
            int(ds.y_test[(ds.x_test == r).all(1)][0]) for r in pv.inputs
        ] == list(range(8))
        assert float(pv.recon.min()) >= 0 and float(pv.samples.max()) <= 1 and pv.step > 0
        assert worker.latest_preview is not None

    def test_pause_step_resume(self, worker) -> None:
        quick(worker.pause)
        assert worker.state == S.PAUSED
        assert worker.consistent_copy()[1]["steps"] == worker.global_step, (
            "a pause: the weights it settled on"
        )
        time.sleep(0.8)  # an update after the pause
        held = worker.global_step
        time.sleep(0.6)
        assert worker.global_step == held, "a paused worker must not step"
        rec = worker.step()
        assert rec is not None and rec["step"] == held + 1 and worker.global_step == held + 1
        assert worker.consistent_copy()[1]["steps"] == held + 1, "a step pushes exact weights"
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
        assert worker.state == S.STARTING
        assert wait_for(lambda: worker.state == S.RUNNING and worker.global_step > 5)
        assert worker.pid != pid

    def test_close_ends_the_process(self, worker) -> None:
        pid = worker.pid
        worker.close()
        assert pid_gone(pid) and not worker.is_alive and worker.state == S.STOPPED
        assert worker.model_copy() is not None  # the weights received stay readable


def test_a_worker_that_fails_to_build_reports_why(ds, pool) -> None:
    w = LiveJob(TrainJob(*configs(ds)), pool, dataset=ds, device="cuda:99")
    w.start()
    assert wait_for(lambda: w.state == S.FAILED)
    assert "training failed" in w.message and "cuda:99" in w.message
    with pytest.raises(WorkerError):
        w.model_copy()
    assert wait_for(lambda: w.pid is not None and pid_gone(w.pid), 10)


def test_an_unknown_objective_or_section_is_refused_in_the_page_process(ds) -> None:
    with pytest.raises(ValueError, match="unknown objective"):
        TrainJob(*configs(ds), objective="typo")
    with pytest.raises(ValueError, match="unknown section"):
        PitfallJob("typo")


class TestPair:
    def test_the_pair_trains_in_one_worker(self, ds, pool) -> None:
        mc, tc = configs(ds, epochs=3, latent=2)
        p = LiveJob(PairJob(mc, tc), pool, dataset=ds, num_threads=1)
        p.start()
        assert p.snapshot().state in (S.STARTING, S.RUNNING)
        assert wait_for(lambda: p.state == S.FINISHED)
        snap = p.snapshot()
        assert (
            snap.fraction == 1
            and math.isfinite(snap.extra["vae_loss"])
            and math.isfinite(snap.extra["ae_loss"])
        )
        vae, ae = p.models()
        assert vae.is_vae and not ae.is_vae
        mv, ma = p.metadatas()
        assert mv["steps"] == ma["steps"] == p.total_steps and len(mv["history"]["step"]) == p.total_steps
        pid = p.pid
        p.close()
        assert pid_gone(pid)

    def test_a_killed_pair_is_a_message_keeps_its_weights_and_starts_again(self, ds, pool) -> None:
        p = LiveJob(PairJob(*configs(ds, latent=2)), pool, dataset=ds, num_threads=1)
        p.start()
        assert wait_for(lambda: p.global_step > 10)
        p.stop()  # a pair has no pause: stopped, its weights exact
        assert wait_for(lambda: [m["steps"] for m in p.metadatas()] == [p.global_step] * 2, 10)
        kept, pid = p.global_step, p.pid
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: p.state == S.FAILED, 10)
        assert "-9" in p.message and f"step {kept}" in p.message and pid_gone(pid)
        assert [m["steps"] for m in quick(p.metadatas)] == [kept, kept] and len(quick(p.models)) == 2
        p.start()
        assert wait_for(lambda: p.state == S.RUNNING and p.global_step > 5) and p.pid != pid
        p.close()


class TestPitfallRun:
    def test_a_run_in_a_worker_gives_the_lessons_result(self, digits, pool) -> None:
        """The same section and seed as run_pair in this process: the same states and measurements."""
        job = LiveJob(PitfallJob("kl_sign", seed=1), pool, num_threads=1)
        assert job.total_steps == pf.pair_steps(digits)
        job.start()
        assert wait_for(lambda: 0 < job.global_step < job.total_steps, 30), (
            "its progress is shown while it trains"
        )
        assert wait_for(lambda: job.state == S.FINISHED, 120)
        got = job.result
        assert isinstance(got, pf.PitfallPair) and got.section == "kl_sign"
        here = pf.run_pair("kl_sign", digits, seed=1)
        assert (
            (got.correct.state, got.mistaken.state)
            == (here.correct.state, here.mistaken.state)
            == (
                "finished",
                "diverged",
            )
        )
        assert got.correct.metrics["neg_elbo"] == pytest.approx(here.correct.metrics["neg_elbo"], rel=1e-3)
        assert got.mistaken.grad_norms.keys() == here.mistaken.grad_norms.keys()
        assert got.correct.z_moments["var_ratio"] == pytest.approx(
            here.correct.z_moments["var_ratio"], rel=1e-3
        )
        job.close()

    def test_a_killed_run_is_a_message_and_starts_again(self, pool) -> None:
        job = LiveJob(PitfallJob("per_pixel_mean", seed=2), pool, num_threads=1)
        job.start()
        assert wait_for(lambda: job.global_step > 5, 30)
        pid = job.pid
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: job.state == S.FAILED, 10)
        assert "stopped unexpectedly" in job.message and "-9" in job.message and job.result is None
        job.start()
        assert wait_for(lambda: job.state == S.RUNNING and job.pid != pid, 30)
        job.stop()
        assert wait_for(lambda: job.state == S.STOPPED, 10) and job.result is None
        job.close()


class TestRegistry:
    def test_cap_thread_sharing_session_end_and_shutdown(self, ds, pool) -> None:
        reg = TrainerRegistry(max_running=2, heartbeat_timeout=0, pool=pool)
        try:
            h1, h2, h3 = reg.open(), reg.open(), reg.open()
            h1.start(reg.job(TrainJob(*configs(ds)), dataset=ds))
            h2.start(reg.job(TrainJob(*configs(ds)), dataset=ds))
            assert reg.running_count() == 2  # starting counts
            w3 = reg.job(TrainJob(*configs(ds)), dataset=ds)
            with pytest.raises(CapacityError, match="VAE_LAB_MAX_TRAINERS"):
                h3.start(w3)
            assert w3.pid is None and h3.trainer is None, "a refused start never forks a worker"
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

    @pytest.mark.parametrize("kind", ["pair", "pitfall"])
    def test_a_pair_and_a_pitfall_run_count_under_the_cap_and_end_with_their_session(
        self, kind, ds, pool
    ) -> None:
        reg = TrainerRegistry(max_running=1, heartbeat_timeout=0, pool=pool)
        make = {
            "pair": lambda: reg.job(PairJob(*configs(ds, latent=2)), dataset=ds),
            "pitfall": lambda: reg.job(PitfallJob("detached_z", seed=3)),
        }[kind]
        try:
            a, b = reg.open(), reg.open()
            a.start(make())
            assert reg.running_count() == 1
            with pytest.raises(CapacityError, match="1 trainer is already running"):
                b.start(make())
            with pytest.raises(CapacityError):
                b.start(reg.job(TrainJob(*configs(ds)), dataset=ds))
            assert b.trainer is None, "a refused start attaches nothing"
            job = a.trainer
            assert wait_for(lambda: job.global_step > 2, 30)
            pid, a = job.pid, None  # the session's state is dropped
            gc.collect()
            assert wait_for(lambda: pid_gone(pid), 10), "its worker ends with its session"
            assert job.state == S.STOPPED and reg.running_count() == 0
            b.start(make())  # a slot is free again
            assert reg.running_count() == 1
        finally:
            reg.shutdown()


def test_no_orphan_when_the_parent_is_killed(tmp_path) -> None:
    """A server killed with SIGKILL runs no exit code: its fork server reads EOF and exits, and its workers
    end with it (PR_SET_PDEATHSIG) or on their own pipe's EOF."""
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent("""
        import time
        from vae_core.data import load_dataset
        from vae_core.jobs import TrainJob
        from vae_core.models import ModelConfig
        from vae_core.registry import TrainerRegistry
        from vae_core.train import TrainConfig
        ds = load_dataset("digits")
        mc = ModelConfig(kind="vae", input_dim=64, image_shape=(1, 8, 8), hidden=(32,), latent_dim=2)
        reg = TrainerRegistry(heartbeat_timeout=0)
        h = reg.open()
        w = reg.job(TrainJob(mc, TrainConfig(dataset="digits", epochs=5000)), dataset=ds, num_threads=1)
        h.start(w)
        while w.state.value != "running":
            time.sleep(0.02)
        print(reg.pool.pid, w.pid, flush=True)
        time.sleep(600)
    """)
    )
    parent = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(parent.stdout.readline()), daemon=True)
    reader.start()
    reader.join(90)
    try:
        assert line and len(line[0].split()) == 2, "the parent did not start its worker"
        server, child = map(int, line[0].split())
        assert not pid_gone(server) and not pid_gone(child)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    assert wait_for(lambda: pid_gone(server), 10), f"fork server {server} outlived its killed parent"
    assert wait_for(lambda: pid_gone(child), 10), f"worker {child} outlived its killed parent"


def test_workers_are_children_of_the_fork_server(ds, pool) -> None:
    """Never a fork of this (threaded) process: each worker's parent is the fork server."""
    w = LiveJob(TrainJob(*configs(ds)), pool, dataset=ds, num_threads=1)
    w.start()
    try:
        assert wait_for(lambda: w.pid is not None, 10)
        assert w.pid in worker_children()
        with open(f"/proc/{w.pid}/stat") as fh:
            assert int(fh.read().rsplit(")", 1)[1].split()[1]) == pool.pid
        with open(f"/proc/{w.pid}/comm") as fh:
            assert fh.read().strip() == "vae-lab-worker"
    finally:
        w.close()


def test_a_worker_yields_the_cpu_to_the_pages(ds, pool) -> None:
    """A worker runs ``worker_nice()`` steps below its parents' priority (default 5): when the cores are
    full, a page rerun of the server is scheduled before a training step."""
    from vae_core.forkserver import DEFAULT_WORKER_NICE

    def nice(pid: int) -> int:  # field 19 of /proc/PID/stat
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[16])

    w = LiveJob(TrainJob(*configs(ds)), pool, dataset=ds, num_threads=1)
    w.start()
    try:
        assert wait_for(lambda: w.pid is not None, 10)
        assert wait_for(lambda: nice(w.pid) == nice(pool.pid) + DEFAULT_WORKER_NICE, 10)
        assert nice(pool.pid) == nice(os.getpid())  # the fork server itself keeps the server's priority
    finally:
        w.close()


def test_worker_nice_reads_its_setting(monkeypatch) -> None:
    from vae_core.forkserver import ENV_WORKER_NICE, worker_nice

    monkeypatch.delenv(ENV_WORKER_NICE, raising=False)
    assert worker_nice() == 5
    for raw, want in (("0", 0), ("12", 12), ("40", 19), ("-3", 0)):
        monkeypatch.setenv(ENV_WORKER_NICE, raw)
        assert worker_nice() == want
