"""The page's side of live training: :class:`LiveJob`, the one handle for every job a worker runs.

A page makes a job spec (vae_core.jobs: a model to train, an AE/VAE pair, a Pitfalls section),
gets a ``LiveJob`` for it from the registry (which counts it under the server's cap), and drives
it. The job runs in a worker forked by the fork server (vae_core.forkserver); what the worker
pushes (vae_core.messages) is kept here, so every read answers at once::

    page ── start · pause · resume · step · stop · close ──► LiveJob ── Control / Ask ──► worker
    page ◄── snapshot() · models() · metadatas() · result ── LiveJob ◄── Update / Answer ──

A read never waits on the worker, except for fresh weights while it trains (bounded, and at once
when it has died). A worker that dies puts the job in ``failed`` with a message naming the exit
code; the weights of its last update stay usable, and :meth:`LiveJob.start` trains again in a new
worker. The job's process ends when the handle is closed or garbage collected.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .data import DATASETS, Dataset, load_dataset
from .errors import N_, LabError, Msg
from .forkserver import Ended, ForkServer, WorkerProcess, cpu_count
from .jobs import JobSpec, PairJob, TrainJob
from .live import Preview, PreviewFrame, PreviewHistory
from .messages import (
    Answer,
    Ask,
    Assign,
    Control,
    Failed,
    SetThreads,
    Update,
)
from .models import AE, VAE, ModelConfig, build_model
from .train import EVAL_COLUMNS, STEP_COLUMNS, History, Snapshot, TrainConfig, TrainerState

__all__ = ["LiveJob", "LiveSnapshot", "WorkerError", "REPLY_TIMEOUT_S"]

S = TrainerState
REPLY_TIMEOUT_S = 10.0  # longest wait for a worker's answer (a step, fresh weights), seconds
_ACTIVE = (S.STARTING, S.RUNNING, S.PAUSED)
_DIED = {  # (killed by a signal, weights kept): what a page says of a worker that died, whole sentences for translators
    (True, True): N_(
        "the training process stopped unexpectedly: it was killed by signal {signal} (exit code {code}); the "
        "weights of step {step} are kept (Use, Save and Download still work); press Start to train again."
    ),
    (True, False): N_(
        "the training process stopped unexpectedly: it was killed by signal {signal} (exit code {code}); no "
        "weights were trained yet; press Start to train again."
    ),
    (False, True): N_(
        "the training process stopped unexpectedly (exit code {code}); the weights of step {step} are kept "
        "(Use, Save and Download still work); press Start to train again."
    ),
    (False, False): N_(
        "the training process stopped unexpectedly (exit code {code}); no weights were trained yet; press "
        "Start to train again."
    ),
}


class WorkerError(LabError, RuntimeError):
    """The worker could not be asked (it died, or did not answer in time)."""


@dataclass
class LiveSnapshot(Snapshot):
    """A :class:`~vae_core.train.Snapshot` of a job (its first model's history), plus what only a worker has."""

    preview: Preview | None = None  # the latest preview images (the Train page's model only)
    threads: int = 0  # torch intra-op threads the worker trains with now
    pid: int | None = None  # the worker's process id (None before it was forked)
    extra: dict[str, float] = field(default_factory=dict)  # job-specific figures (a pair's two losses)

    @property
    def fraction(self) -> float:
        """Share of the steps done, in [0, 1]."""
        return min(1.0, self.step / max(1, self.total_steps))


class _Link:
    """What the handle knows of one worker's job; written by the worker's reader thread.

    The handle owns a link; the link never refers to the handle (its finalizer must be able to fire).
    """

    def __init__(self, proc: WorkerProcess, n_models: int, total_steps: int) -> None:
        self.proc = proc
        self.lock = threading.Lock()
        self.state = S.IDLE
        self.message = ""
        self.step = 0
        self.total_steps = total_steps
        self.epoch = 0.0
        self.eps = math.nan
        self.eta = math.nan
        self.threads = 0
        self.extra: dict[str, float] = {}
        self.histories = [History() for _ in range(n_models)]
        self.preview: Preview | None = None
        self.previews = PreviewHistory()  # every preview of this worker's run, capped (the Train page's GIF)
        self.weights: list[dict[str, Any]] | None = None  # state dicts of the last weights pushed
        self.metas: list[dict[str, Any]] | None = None  # ... and their metadata
        self.result: Any = None
        self.ctl_seq = 0  # seq of the latest Control (its state wins until the worker acks it)
        self.acked = 0  # the latest Control the worker has applied, as its last update says
        self.seq = 0
        self.starting = False  # show STARTING until a step after start_step
        self.start_step = 0
        self.pending: dict[int, list[Any]] = {}  # request id -> [Event, Answer]
        self.on_change: Callable[[], None] | None = None
        self.error: str | None = None

    def next_seq(self) -> int:
        with self.lock:
            self.seq += 1
            return self.seq

    def receive(self, msg: object) -> None:
        """One message from the worker (reader thread)."""
        changed = False
        if isinstance(msg, Update):
            changed = self._apply(msg)
        elif isinstance(msg, Answer):
            self._apply(msg.update)
            with self.lock:
                slot = self.pending.pop(msg.rid, None)
            if slot is not None:
                slot[1] = msg
                slot[0].set()
        elif isinstance(msg, Failed):
            with self.lock:
                self.state, self.message, self.error, self.starting = (
                    S.FAILED,
                    msg.message,
                    msg.message,
                    False,
                )
            changed = True
        elif isinstance(msg, Ended):
            changed = self._ended(msg.code)
        if changed and self.on_change is not None:
            with contextlib.suppress(Exception):
                self.on_change()

    def _apply(self, u: Update) -> bool:
        with self.lock:
            before = self.state
            self.step, self.total_steps, self.epoch = u.step, u.total_steps, u.epoch
            self.eps, self.eta, self.threads, self.extra = u.examples_per_s, u.eta_s, u.threads, u.extra
            for h, delta in zip(self.histories, u.history):
                delta.apply(h)  # out of step (never expected): skipped
            if u.preview is not None:
                self.preview = u.preview
                self.previews.add(u.preview)
            if u.weights is not None:
                self.weights, self.metas = list(u.weights.state_dicts), list(u.weights.metas)
            if u.result is not None:
                self.result = u.result
            self.acked = max(self.acked, u.ack)
            if u.ack >= self.ctl_seq:  # the worker has seen our latest command: its state is the truth
                state = u.state
                if self.starting and state == S.RUNNING and self.step <= self.start_step:
                    state = S.STARTING
                else:
                    self.starting = False
                self.state, self.message = state, u.message
            return self.state != before

    def _ended(self, code: int | None) -> bool:
        with self.lock:
            for slot in self.pending.values():
                slot[0].set()  # nobody waits on a dead worker
            self.pending.clear()
            self.starting = False
            if self.proc.closing or self.error is not None or self.state == S.FINISHED:
                if self.state in _ACTIVE:
                    self.state = S.STOPPED
                return True
            self.state = S.FAILED
            sig = -code if code is not None and code < 0 else None
            kept = {"step": self.metas[0]["steps"]} if self.metas else {}
            self.message = Msg(_DIED[sig is not None, bool(kept)], code=code, signal=sig, **kept)
            return True

    def request(self, timeout: float, what: str) -> Answer:
        """Ask the worker (``"step"`` or ``"weights"``) and wait up to ``timeout`` s for its answer."""
        rid = self.next_seq()
        ev = threading.Event()
        slot: list[Any] = [ev, None]
        with self.lock:
            self.pending[rid] = slot
        if not self.proc.send(Ask(rid, what)):  # type: ignore[arg-type]
            with self.lock:
                self.pending.pop(rid, None)
            raise WorkerError(N_("the training process is not running"))
        if not ev.wait(timeout) or slot[1] is None:
            with self.lock:
                self.pending.pop(rid, None)
            raise WorkerError(
                f"the training process did not answer within {timeout:g} s"
                if self.proc.alive
                else "the training process stopped"
            )
        answer: Answer = slot[1]
        return answer


def _history_until(h: History, steps: int) -> History:
    """A copy of ``h`` with only the records of steps ``<= steps`` (what the weights of ``steps`` saw)."""
    c = h.copy()
    n = bisect.bisect_right(c.step, steps)
    e = bisect.bisect_right(c.eval_step, steps)
    for k in STEP_COLUMNS:
        del getattr(c, k)[n:]
    for k in EVAL_COLUMNS:
        del getattr(c, k)[e:]
    return c


def _close_link(box: list[_Link | None]) -> None:
    """Finalizer of a handle: end its worker without waiting."""
    link = box[0]
    if link is not None and not link.proc.closing:
        link.proc.close(wait=False)


class LiveJob:
    """One live-training job in a worker process, with a trainer's control surface.

    Control (each returns at once): :meth:`start` (state ``starting`` until the first step),
    :meth:`pause`, :meth:`resume`, :meth:`stop`, :meth:`close`; :meth:`step` trains one batch and
    waits for it (a :class:`TrainJob` only). Read (never waits on the worker, except for fresh
    weights while it trains): :meth:`snapshot`, :meth:`models`, :meth:`metadatas`,
    :meth:`consistent_copy`, :attr:`result`; attributes ``state``, ``message``, ``global_step``,
    ``total_steps``, ``job``, ``model_config`` and ``config`` (None for a Pitfalls job).
    """

    def __init__(
        self,
        job: JobSpec,
        pool: ForkServer,
        dataset: Dataset | None = None,
        device: str | None = "cpu",
        data_root: str | None = None,
        num_threads: int | None = None,
    ) -> None:
        ds = dataset if dataset is not None else load_dataset(job.dataset, root=data_root)
        self.total_steps = job.check(ds)  # raises ConfigError when the data does not fit the model
        self.job = job
        self.pool = pool
        self.device = device
        self.data_root = data_root
        self.dataset_name = ds.name
        # a dataset a worker cannot load by name (one uploaded in a session) travels to it whole
        self._dataset = None if ds.name in DATASETS else ds
        self.model_config: ModelConfig | None = (
            job.model_config if isinstance(job, TrainJob | PairJob) else None
        )
        self.config: TrainConfig | None = job.train_config if isinstance(job, TrainJob | PairJob) else None
        self.steps_per_epoch = (
            max(1, math.ceil(ds.x_train.shape[0] / self.config.batch_size)) if self.config else 1
        )
        self.num_threads = num_threads or cpu_count()  # torch threads the worker should train with
        self._n_models = 2 if isinstance(job, PairJob) else 1
        self._link: _Link | None = None
        self.on_change: Callable[[], object] | None = None  # called (reader thread) when the state changes
        self._finalizer = weakref.finalize(self, _close_link, [None])
        self._idle_state = S.IDLE
        self._idle_message = ""

    # ---------------------------------------------------------------- the worker
    def _new_link(self) -> _Link:
        """A worker with this job, paused until told to run; a restart keeps the old weights until new ones come."""
        old = self._link
        link = _Link(self.pool.fork(), self._n_models, self.total_steps)
        if old is not None:
            link.weights, link.metas = old.weights, old.metas
            if not old.proc.closing:
                old.proc.close(wait=False)
        link.on_change = self._changed_cb()
        link.proc.listen(link.receive)
        link.proc.send(Assign(self.job, self._dataset, self.data_root, self.device, self.num_threads))
        self._link = link
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _close_link, [link])
        return link

    def _changed_cb(self) -> Callable[[], None]:
        ref = weakref.ref(self)

        def changed() -> None:
            me = ref()
            if me is not None and me.on_change is not None:
                me.on_change()

        return changed

    def _live_link(self) -> _Link | None:
        """The link if its worker is alive and has a job that can continue, else None."""
        link = self._link
        if link is None or not link.proc.alive or link.state == S.FAILED:
            return None
        return link

    def _control(self, link: _Link, verb: str, message: str | None = None, state: S | None = None) -> None:
        with link.lock:
            link.seq += 1
            link.ctl_seq = link.seq
            if state is not None:
                link.state = state
        link.proc.send(Control(link.ctl_seq, verb, message))  # type: ignore[arg-type]

    def _notify(self) -> None:
        if self.on_change is not None:
            with contextlib.suppress(Exception):
                self.on_change()

    # ---------------------------------------------------------------- control
    def start(self) -> None:
        """Train in a worker; returns at once, in ``starting`` until the first step. No-op once finished.

        A new worker is forked if none is alive (first Start, or after the worker died: training
        then begins again from new weights; the old weights stay readable until new ones arrive).
        """
        link = self._live_link()
        if link is not None and link.state in (S.FINISHED, S.DIVERGED):
            return
        if link is None:
            link = self._new_link()
        with link.lock:
            link.starting, link.start_step = True, link.step
        self._control(link, "run", state=S.STARTING)
        self._notify()

    def resume(self) -> None:
        """Continue a paused or stopped job (or start one, as :meth:`start`)."""
        link = self._live_link()
        if link is not None and link.state in (S.PAUSED, S.STOPPED, S.RUNNING):
            self._control(link, "run", state=S.RUNNING)
            self._notify()
        else:
            self.start()

    def pause(self) -> None:
        """Hold training after the current step (the worker keeps everything; :meth:`step` works)."""
        link = self._live_link()
        if link is None:
            return
        self._control(link, "pause", state=S.PAUSED if link.state in (S.RUNNING, S.STARTING) else None)
        self._notify()

    def stop(self, message: str | None = None) -> None:
        """Stop training after the current step; the worker stays (weights, Resume). ``message`` is shown after."""
        link = self._link
        if link is None:
            self._idle_state = S.STOPPED if self._idle_state == S.IDLE else self._idle_state
            self._idle_message = message or self._idle_message
            return
        with link.lock:
            if message is not None:
                link.message = message
        if link.proc.alive and link.state != S.FAILED:
            self._control(
                link, "stop", message, state=S.STOPPED if link.state in (*_ACTIVE, S.IDLE) else None
            )
        elif link.state in _ACTIVE:
            with link.lock:
                link.state = S.STOPPED
        self._notify()

    def extend(self, epochs: int) -> bool:
        """Continue a finished :class:`TrainJob` with the SAME model: the run grows by ``epochs`` epochs and the
        job is paused (Step and Resume go on from its last step). True if extended; False where there is no
        finished job whose worker lives (nothing is thrown away either way)."""
        link = self._live_link()
        if (
            link is None
            or link.state != S.FINISHED
            or epochs < 1
            or not isinstance(self.job, TrainJob)
            or self.config is None
        ):
            return False
        self.config = replace(self.config, epochs=self.config.epochs + int(epochs))
        self.job = replace(self.job, train_config=self.config)
        self.total_steps = self.steps_per_epoch * self.config.epochs
        with link.lock:
            link.seq += 1
            link.ctl_seq = link.seq
            link.state, link.message, link.total_steps = S.PAUSED, "", self.total_steps
        link.proc.send(Control(link.ctl_seq, "extend", epochs=int(epochs)))
        self._notify()
        return True

    def settle(self, timeout: float = 2.0) -> bool:
        """Wait up to ``timeout`` s until the worker has acknowledged the latest command (Pause, Stop): its step
        is then the step it holds. True if it has."""
        end = time.monotonic() + timeout
        while True:
            link = self._live_link()
            if link is None or link.acked >= link.ctl_seq:
                return True
            if time.monotonic() >= end:
                return False
            time.sleep(0.01)

    def step(self, timeout: float = REPLY_TIMEOUT_S + 20.0) -> dict[str, Any] | None:
        """Train one batch (while paused, or before any Start) and return its record, or None.

        None when training is over, or when the worker did not answer within ``timeout`` s or has
        died; :attr:`message` then says why. The record is :meth:`Trainer.step`'s: ``step``,
        ``epoch``, ``loss``, ``recon``, ``kl``, ``beta``, ``kl_per_dim`` (nats per example).
        """
        link = self._live_link() or self._new_link()
        try:
            answer = link.request(timeout, "step")
        except WorkerError as exc:
            with link.lock:
                if link.state != S.FAILED:
                    link.message = f"No step taken: {exc}."
            return None
        return answer.record

    def set_threads(self, n: int) -> None:
        """Train with ``n`` torch threads from the next step on (the registry shares the cores)."""
        n = max(1, int(n))
        if n == self.num_threads:
            return
        self.num_threads = n
        link = self._live_link()
        if link is not None:
            link.proc.send(SetThreads(n))

    def close(self, wait: bool = True) -> None:
        """End the worker (it is killed if it has not exited after a few seconds). Idempotent.

        What was received so far (weights, history, result) stays readable. ``wait=False`` returns at once.
        """
        link = self._link
        if link is not None:
            if link.state in _ACTIVE:
                with link.lock:
                    link.state = S.STOPPED
            link.proc.close(wait=wait)  # a second call only waits
        self._notify()

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s until the job trains no more; True if it does not."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.is_alive and self.state in (S.RUNNING, S.STARTING):
            if end is not None and time.monotonic() >= end:
                return False
            time.sleep(0.02)
        return True

    # ---------------------------------------------------------------- reading
    @property
    def state(self) -> TrainerState:
        """The job's state as the last update (or the latest command) left it."""
        return self._link.state if self._link is not None else self._idle_state

    @property
    def message(self) -> str:
        """What the page shows under the progress bar (why it stopped, failed, finished)."""
        return self._link.message if self._link is not None else self._idle_message

    @property
    def global_step(self) -> int:
        """Steps taken, as of the last update."""
        return self._link.step if self._link is not None else 0

    @property
    def is_alive(self) -> bool:
        """True while the worker process runs (training, paused or stopped)."""
        return self._link is not None and self._link.proc.alive and not self._link.proc.closing

    @property
    def pid(self) -> int | None:
        """The worker's process id (None before it was forked)."""
        return self._link.proc.pid if self._link is not None else None

    @property
    def done(self) -> bool:
        """True once every step has been taken."""
        return self.global_step >= self.total_steps

    @property
    def result(self) -> Any:
        """A finished job's own result (a Pitfalls job: its :class:`~vae_core.pitfalls.PitfallPair`), else None."""
        return self._link.result if self._link is not None else None

    @property
    def latest_preview(self) -> Preview | None:
        """The newest preview images the worker decoded (None before the first step)."""
        return self._link.preview if self._link is not None else None

    def preview_frames(self) -> tuple[PreviewFrame, ...]:
        """The previews received over this run, oldest first, as uint8 frames (at most
        :data:`~vae_core.live.PREVIEW_FRAMES`, the first and the newest always among them; see
        :class:`~vae_core.live.PreviewHistory`). Empty before the first step; a new worker (Start after a
        Reset or a death) starts a new history."""
        link = self._link
        if link is None:
            return ()
        with link.lock:
            return link.previews.frames()

    @property
    def history(self) -> History:
        """A copy of the (first model's) step and evaluation records received so far."""
        return self.snapshot().history

    def examples_per_second(self) -> float:
        """Recent training throughput in the worker, examples/s (nan before two steps)."""
        return self._link.eps if self._link is not None else math.nan

    def snapshot(self) -> LiveSnapshot:
        """State, progress, a copy of the (first model's) history and the latest preview, as of the last update."""
        link = self._link
        if link is None:
            return LiveSnapshot(
                self.state, self.message, 0, self.total_steps, 0.0, math.nan, math.nan, History()
            )
        with link.lock:
            return LiveSnapshot(
                state=link.state,
                message=link.message,
                step=link.step,
                total_steps=link.total_steps or self.total_steps,
                epoch=link.epoch,
                examples_per_s=link.eps,
                eta_s=link.eta,
                history=link.histories[0].copy(),
                preview=link.preview,
                threads=link.threads,
                pid=link.proc.pid,
                extra=dict(link.extra),
            )

    def _weights(self, timeout: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]], _Link]:
        """(state dicts, metadata with history) of the latest weights. A worker that trains, or has not yet
        applied the latest control (a pause or stop just pressed), is asked for them now: its answer
        comes after that control, so the weights are those it settled on."""
        link = self._link
        unsettled = link is not None and (link.state in (S.RUNNING, S.STARTING) or link.acked < link.ctl_seq)
        if link is not None and link.proc.alive and unsettled and link.step > 0:
            with contextlib.suppress(WorkerError):  # else the last pushed weights (at most ~1 s old)
                link.request(timeout, "weights")
        if link is None or link.weights is None or link.metas is None:
            raise WorkerError(N_("no weights yet: train at least one step"))
        with link.lock:
            weights = link.weights
            metas = [
                {**m, "history": _history_until(h, m["steps"]).to_dict()}
                for m, h in zip(link.metas, link.histories)
            ]
        return weights, metas, link

    def models(self, timeout: float = 5.0) -> list[AE | VAE]:
        """Eval-mode CPU models with the latest weights (a pair: the VAE, then the AE)."""
        weights, metas, _ = self._weights(timeout)
        models = []
        for sd, meta in zip(weights, metas):
            m = build_model(ModelConfig.from_dict(meta["model_config"]))
            m.load_state_dict(sd)
            models.append(m.eval())
        return models

    def metadatas(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Checkpoint metadata of each model's latest weights (what :meth:`Trainer.metadata` writes)."""
        return self._weights(timeout)[1]

    def consistent_copy(
        self, command: str | None = None, timeout: float = 5.0
    ) -> tuple[AE | VAE, dict[str, Any]]:
        """(eval-mode CPU model, metadata) of the same step, the first model's.

        While training, asks the worker for its weights now (waiting at most ``timeout`` s);
        otherwise, or if it does not answer, those of the last update (at most ~1 s old, and
        exact after a pause, stop, end or death). Raises :class:`WorkerError` before any step.
        """
        weights, metas, _ = self._weights(timeout)
        m = build_model(ModelConfig.from_dict(metas[0]["model_config"]))
        m.load_state_dict(weights[0])
        return m.eval(), {**metas[0], "command": command}

    def model_copy(self) -> AE | VAE:
        """An eval-mode CPU model with the latest weights (see :meth:`consistent_copy`)."""
        return self.consistent_copy()[0]

    def metadata(self, command: str | None = None) -> dict[str, Any]:
        """Checkpoint metadata of the latest weights (see :meth:`consistent_copy`)."""
        return self.consistent_copy(command)[1]
