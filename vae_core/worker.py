"""A worker's loop: the child's side of one live-training job, forked by vae_core.forkserver.

Its main thread reads the pipe and pushes what the page draws; the training itself runs in the
job's own thread (a :class:`~vae_core.train.Trainer`'s, a :class:`~vae_core.pair.PairTrainer`'s, or
the one a Pitfalls run gets), the same code the CLI and the tests run::

    read Assign(job) → build the job's runner (configs trusted: they validated themselves)
    loop: Control / SetThreads / Ask from the handle → the runner
          every 0.5 s, and at once on a change of state: Update(progress, history since the last,
          preview images, weights every 10 s, a finished job's result)
    end:  Close, EOF on the pipe (the server closed it or died), or a new parent (the fork server died)

A job that cannot be built, or that raises, sends :class:`~vae_core.messages.Failed` and the
worker exits with code 1; the handle keeps the weights of the last update.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import torch

from .data import Dataset, load_dataset
from .device import pick_device
from .errors import N_, Msg
from .jobs import PairJob, PitfallJob, TrainJob, objective_named
from .live import Preview, fixed_examples, make_preview, prior_noise
from .messages import (
    Answer,
    Ask,
    Assign,
    Close,
    Control,
    Failed,
    HistoryDelta,
    SetThreads,
    Update,
    Weights,
)
from .pair import PairTrainer
from .pitfalls import PitfallPair, pair_steps, run_pair
from .train import Trainer, TrainerState

__all__ = ["serve", "PUSH_S", "WEIGHTS_S", "PREVIEW_S"]

S = TrainerState
PUSH_S = 0.5  # seconds between updates pushed while training
# seconds between weight pushes while training (and at every pause, stop and end). A push is the whole
# state_dict (2.6 MB for the default 784-400-16 VAE), pickled through the server: at 1 s, four trainers
# cost a room's server a tenth of a core. A killed worker's last weights are at most this old.
WEIGHTS_S = 10.0
PREVIEW_S = 1.0  # seconds between preview decodes while training
POLL_S = 0.05  # the loop's wait for a message, seconds


def _state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's weights, to send."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _meta(tr: Trainer) -> dict[str, Any]:
    """:meth:`Trainer.metadata` without the history (the handle rebuilds it from the deltas)."""
    meta = tr.metadata()
    meta.pop("history", None)
    return meta


class _Runner:
    """What every job shares: the thread budget, what was pushed, and when to push next."""

    def __init__(self, assign: Assign, send: Callable[[object], None]) -> None:
        self.send = send
        self.threads = max(1, assign.threads)  # what the training thread should use
        self.applied = 0  # what it uses now (OpenMP keeps the count per thread: set in that thread)
        self.ack = 0
        self.last_push = 0.0
        self.last_state: S | None = None
        self.pushed_step = -1
        self.weights_step = -1
        self.last_weights = -1e9
        self.device = pick_device(assign.device)  # after the fork: the fork server touched no device
        self.dataset: Dataset = (
            assign.dataset
            if assign.dataset is not None
            else load_dataset(assign.job.dataset, root=assign.data_root)  # shared with the fork server
        )
        torch.set_num_threads(self.threads)  # this (main) thread: the previews

    # ---------------------------------------------------------------- what a job provides
    def control(self, verb: str, message: str | None) -> None:
        """Run, pause or stop."""
        raise NotImplementedError

    def step(self) -> dict[str, Any] | None:
        """One training step while paused (the Train page's Step); None where a job has none."""
        return None

    def extend(self, epochs: int) -> None:
        """Make the run ``epochs`` epochs longer (a finished run becomes paused); a no-op where a job cannot."""

    def status(self) -> tuple[S, int]:
        """(state, step) now."""
        raise NotImplementedError

    def settled(self) -> bool:
        """True when no step is in flight (the weights of now stay the weights)."""
        return self.status()[0] != S.RUNNING

    def update(self, weights: bool) -> Update:
        """Everything new since the last update; with ``weights``, the weights too."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """Stop training and let the training thread end."""

    # ---------------------------------------------------------------- shared
    def on_step(self, tr: Trainer, rec: dict[str, Any]) -> None:
        """Trainer callback, in the training thread: take up a new thread budget."""
        if self.threads != self.applied:
            torch.set_num_threads(self.threads)
            self.applied = self.threads

    def tick(self, force: bool = False) -> None:
        """Push an update if something changed or ``PUSH_S`` passed; weights when new (or newly settled)."""
        now = time.monotonic()
        state, step = self.status()
        changed = state != self.last_state or (self.pushed_step <= 0 < step)
        if not (force or changed or now - self.last_push >= PUSH_S):
            return
        settled = self.settled()
        weights = (
            step > 0
            and (step != self.weights_step or (settled and state != self.last_state))
            and (settled or now - self.last_weights >= WEIGHTS_S)
        )
        self.send(self.update(weights))

    def _pushed(self, u: Update, now: float) -> Update:
        """Record what ``u`` carries; returns it."""
        self.last_push, self.last_state, self.pushed_step = now, u.state, u.step
        if u.weights is not None:
            self.weights_step, self.last_weights = u.weights.step, now
        return u


class _TrainRunner(_Runner):
    """One :class:`Trainer` (the Train page): its own thread, previews decoded next to the model."""

    def __init__(self, assign: Assign, send: Callable[[object], None]) -> None:
        super().__init__(assign, send)
        job = assign.job
        assert isinstance(job, TrainJob)
        self.tr = Trainer(
            job.model_config,
            job.train_config,
            dataset=self.dataset,
            device=self.device,
            objective=objective_named(job.objective),
        )
        self.tr.add_callback("on_step", self.on_step)
        self.x = fixed_examples(self.dataset, 8)  # (8, D) uint8: the same images for every preview
        self.z = prior_noise(job.model_config.latent_dim, 16)  # (16, z): the same draws for every preview
        self.sent = (0, 0)  # history records pushed: steps, evaluations
        self.preview_step = -1
        self.last_preview = -1e9

    def control(self, verb: str, message: str | None) -> None:
        if verb == "run":
            self.tr.resume()
        elif verb == "pause":
            self.tr.pause()
        else:
            self.tr.stop(message)

    def step(self) -> dict[str, Any] | None:
        torch.set_num_threads(self.threads)
        return self.tr.step()

    def extend(self, epochs: int) -> None:
        self.tr.extend(epochs)

    def status(self) -> tuple[S, int]:
        return self.tr.state, self.tr.global_step

    def update(self, weights: bool) -> Update:
        now = time.monotonic()
        tr = self.tr

        def grab(model: Any) -> tuple[Any, Preview | None, Weights | None]:
            # under the trainer's lock: state, history, preview and weights all of one step
            snap = tr.snapshot()
            pv = None
            if snap.step != self.preview_step and (
                now - self.last_preview >= PREVIEW_S or snap.state != S.RUNNING
            ):
                recon, samples = make_preview(model, self.x, self.z)
                pv = Preview(snap.step, self.x, recon, samples)
            w = Weights(snap.step, (_state_dict(model),), (_meta(tr),)) if weights else None
            return snap, pv, w

        _, (snap, pv, w) = tr.inspect_model(grab)
        delta = HistoryDelta.since(snap.history, *self.sent)
        self.sent = (len(snap.history.step), len(snap.history.eval_step))
        if pv is not None:
            self.preview_step, self.last_preview = pv.step, now
        return self._pushed(
            Update(
                ack=self.ack,
                state=snap.state,
                message=snap.message,
                step=snap.step,
                total_steps=snap.total_steps,
                epoch=snap.epoch,
                examples_per_s=snap.examples_per_s,
                eta_s=snap.eta_s,
                threads=self.applied or self.threads,
                history=(delta,),
                preview=pv,
                weights=w,
            ),
            now,
        )

    def shutdown(self) -> None:
        self.tr.stop()
        self.tr.join(2.0)


class _PairRunner(_Runner):
    """A VAE and an AE in lockstep (:class:`PairTrainer`, one thread). A pair has no pause: it stops."""

    def __init__(self, assign: Assign, send: Callable[[object], None]) -> None:
        super().__init__(assign, send)
        job = assign.job
        assert isinstance(job, PairJob)
        self.pt = PairTrainer(
            job.model_config, job.train_config, self.dataset, device=self.device, num_threads=self.threads
        )
        self.sent = [(0, 0), (0, 0)]

    def control(self, verb: str, message: str | None) -> None:
        if verb == "run":
            self.pt.resume()
        else:  # its models keep their weights; Resume continues
            self.pt.stop(message)
            self.pt.join(5.0)

    def status(self) -> tuple[S, int]:
        return self.pt.state, self.pt.global_step

    def settled(self) -> bool:
        return self.pt.state != S.RUNNING or not self.pt.is_alive

    def update(self, weights: bool) -> Update:
        now = time.monotonic()
        self.pt.num_threads = self.threads  # the pair's thread takes it up before its next chunk
        p = self.pt.progress()
        deltas = []
        for i, tr in enumerate((self.pt.vae, self.pt.ae)):
            h = tr.snapshot().history
            deltas.append(HistoryDelta.since(h, *self.sent[i]))
            self.sent[i] = (len(h.step), len(h.eval_step))
        w = None
        if weights:
            (vae, ae), metas = self.pt.models(), (_meta(self.pt.vae), _meta(self.pt.ae))
            w = Weights(p.step, (_state_dict(vae), _state_dict(ae)), metas)
        return self._pushed(
            Update(
                ack=self.ack,
                state=p.state,
                message=p.message,
                step=p.step,
                total_steps=p.total_steps,
                epoch=p.step / self.pt.vae.steps_per_epoch,
                examples_per_s=self.pt.vae.examples_per_second(),
                eta_s=math.nan,
                threads=self.threads,
                history=tuple(deltas),
                weights=w,
                extra={"vae_loss": p.vae_loss, "ae_loss": p.ae_loss},
            ),
            now,
        )

    def shutdown(self) -> None:
        self.pt.stop()
        self.pt.join(2.0)


class _PitfallRunner(_Runner):
    """A Pitfalls section: its correct and its mistaken run, one after the other in one thread, then
    the measurements (:func:`vae_core.pitfalls.run_pair`). Sends the :class:`PitfallPair` when done."""

    def __init__(self, assign: Assign, send: Callable[[object], None]) -> None:
        super().__init__(assign, send)
        job = assign.job
        assert isinstance(job, PitfallJob)
        self.job = job
        self.total = pair_steps(self.dataset)
        self.lock = threading.Lock()
        self.state = S.IDLE
        self.message = ""
        self.done_steps = 0  # steps of the runs before the current one
        self.current: Trainer | None = None
        self.result: PitfallPair | None = None
        self.result_sent = False
        self.thread: threading.Thread | None = None

    def control(self, verb: str, message: str | None) -> None:
        with self.lock:
            if verb == "run" and self.thread is None:
                self.state = S.RUNNING
                self.thread = threading.Thread(target=self._main, name="vae-pitfall-run", daemon=True)
                self.thread.start()
            elif verb == "stop" and self.state in (S.IDLE, S.RUNNING):
                self.state, self.message = S.STOPPED, message or ""
                if self.current is not None:
                    self.current.stop()
            # a lesson's run has no pause: it is short, and its result is all or nothing

    def _watch(self, tr: Trainer) -> None:
        """run_pair's hook, before each run trains: count its steps, and stop it if the job was stopped."""
        tr.add_callback("on_step", self.on_step)
        with self.lock:
            if self.current is not None:
                self.done_steps += self.current.global_step
            self.current = tr
            if self.state == S.STOPPED:
                tr.stop()

    def _main(self) -> None:
        torch.set_num_threads(self.threads)
        try:
            pair = run_pair(self.job.section, self.dataset, seed=self.job.seed, on_trainer=self._watch)
        except Exception as exc:  # reported, as a trainer reports its failures
            with self.lock:
                self.state = S.FAILED
                self.message = Msg(
                    N_("training failed: {kind}: {reason}"), kind=type(exc).__name__, reason=str(exc)
                )
            return
        with self.lock:
            if self.state == S.RUNNING:
                self.state, self.result = S.FINISHED, pair

    def status(self) -> tuple[S, int]:
        with self.lock:
            cur = self.current.global_step if self.current is not None else 0
            return self.state, min(self.total, self.done_steps + cur)

    def settled(self) -> bool:
        return self.thread is None or not self.thread.is_alive()

    def update(self, weights: bool) -> Update:
        now = time.monotonic()
        state, step = self.status()
        with self.lock:
            result = self.result if not self.result_sent else None
            self.result_sent = self.result_sent or result is not None
            message = self.message
        return self._pushed(
            Update(
                ack=self.ack,
                state=state,
                message=message,
                step=step,
                total_steps=self.total,
                epoch=0.0,
                examples_per_s=math.nan,
                eta_s=math.nan,
                threads=self.threads,
                result=result,
            ),
            now,
        )

    def shutdown(self) -> None:
        self.control("stop", None)
        if self.thread is not None:
            self.thread.join(2.0)


_RUNNERS: dict[type, Callable[[Assign, Callable[[object], None]], _Runner]] = {
    TrainJob: _TrainRunner,
    PairJob: _PairRunner,
    PitfallJob: _PitfallRunner,
}


def _handle(runner: _Runner, msg: object) -> None:
    """Apply one command from the handle."""
    if isinstance(msg, Control):
        runner.ack = msg.seq
        if msg.verb == "extend":
            runner.extend(msg.epochs)
        else:
            runner.control(msg.verb, msg.message)
        runner.tick(force=True)
    elif isinstance(msg, SetThreads):
        runner.threads = max(1, msg.n)
    elif isinstance(msg, Ask):
        record = runner.step() if msg.what == "step" else None
        runner.send(Answer(msg.rid, runner.update(weights=True), record))


def serve(conn: Connection) -> int:
    """The worker's life: read its :class:`Assign`, run the job, relay commands; returns the exit code.

    Ends on :class:`Close`, on EOF (the server closed the pipe or died) and when the parent pid
    changes (the fork server died; ``PR_SET_PDEATHSIG`` would have ended it too).
    """
    parent = os.getppid()
    lock = threading.Lock()

    def send(msg: object) -> None:
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)  # tensors by value (see forkserver._dumps)
        with lock:
            conn.send_bytes(data)

    runner: _Runner | None = None
    try:
        while os.getppid() == parent:
            msg = pickle.loads(conn.recv_bytes()) if conn.poll(POLL_S) else None
            if isinstance(msg, Close):
                break
            if isinstance(msg, Assign) and runner is None:
                runner = _RUNNERS[type(msg.job)](msg, send)
            elif runner is not None and msg is not None:
                _handle(runner, msg)
            if runner is not None:
                runner.tick()
    except (EOFError, OSError):  # the pipe closed: the server is gone, or gave up on this worker
        pass
    except Exception as exc:  # report, and end: the page shows the message and can start anew
        with contextlib.suppress(OSError):
            send(
                Failed(Msg(N_("training failed: {kind}: {reason}"), kind=type(exc).__name__, reason=str(exc)))
            )
        return 1
    finally:
        if runner is not None:
            with contextlib.suppress(Exception):
                runner.shutdown()
    return 0
