"""Live training in worker processes: one process per live trainer, driven over a pipe.

A page holds a small handle, :class:`WorkerTrainer` (the Train page) or :class:`WorkerPair`
(the Compare page's VAE/AE pair). Inside the worker runs the one :class:`~vae_core.train.Trainer`
(or :class:`~vae_core.pair.PairTrainer`) the CLI runs, unchanged, with its own background thread;
the worker's main thread only relays commands and pushes what the page draws::

    page ── start/pause/resume/step/stop/close ──► worker: Trainer (its own GIL, torch threads, OpenMP pool)
    page ◄── update every 0.5 s: state, history since the last update, preview images,
             and at most once a second (and on pause/stop/finish) the weights and metadata

Every read on a handle (:meth:`WorkerTrainer.snapshot`, :meth:`~WorkerTrainer.model_copy`,
:meth:`~WorkerTrainer.metadata`) answers from what the last update brought, so a page never waits
on the worker; the few calls that ask the worker something (:meth:`~WorkerTrainer.step`, fresh
weights while running) wait a bounded time, and return at once when the worker has died.

Why a fresh interpreter started with :mod:`subprocess` (spawn, in effect) and a
:func:`multiprocessing.Pipe`, rather than ``multiprocessing``'s spawn context: that context
re-runs the parent's ``__main__`` in the child, and under Streamlit ``sys.modules["__main__"]``
is the app script itself (Streamlit installs a fake module with the script's ``__file__``), so
every worker would first run the whole app. Starting ``python -m vae_core.worker`` also lets
each worker get its own environment: ``OMP_NUM_THREADS`` and ``OMP_WAIT_POLICY`` are read by
OpenMP when torch loads, so they must be set before the child imports torch. POSIX only
(``pass_fds``); CUDA-safe, as nothing is forked.

Lifecycle: a worker ends when its handle is closed or garbage collected, and by itself when its
parent is gone (the pipe reads EOF, or its parent pid changes). A worker that dies puts its
handle in ``failed`` with a message naming the exit code; the weights of its last update stay
usable and :meth:`~WorkerTrainer.start` trains again in a new worker.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .data import DATASETS, Dataset, load_dataset
from .errors import N_, LabError, Msg
from .live import Preview
from .models import AE, VAE, ModelConfig, build_model
from .train import History, Snapshot, TrainConfig, TrainerState

if TYPE_CHECKING:
    from .pair import PairProgress

__all__ = [
    "WorkerTrainer",
    "WorkerPair",
    "WorkerProcess",
    "LiveSnapshot",
    "WorkerError",
    "cpu_count",
    "ENV_WAIT_POLICY",
    "PUSH_S",
    "WEIGHTS_S",
    "REPLY_TIMEOUT_S",
]

S = TrainerState
ENV_WAIT_POLICY = "VAE_LAB_WORKER_WAIT_POLICY"  # OMP_WAIT_POLICY of workers (default PASSIVE; "ACTIVE" spins)
PUSH_S = 0.5  # seconds between updates pushed by a training worker
WEIGHTS_S = 1.0  # seconds between weight pushes while training (and at every pause/stop/end)
PREVIEW_S = 1.0  # seconds between preview decodes while training
REPLY_TIMEOUT_S = 10.0  # longest wait for a worker's answer (a step, fresh weights), seconds
CLOSE_TIMEOUT_S = 3.0  # seconds a closing worker gets before it is killed
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
_STEP_COLS = ("step", "epoch", "loss", "recon", "kl", "kl_per_dim", "beta")
_EVAL_COLS = (
    "eval_step",
    "eval_epoch",
    "test_neg_elbo",
    "test_recon",
    "test_kl",
    "active_units",
    "throughput",
)
_ACTIVE = (S.STARTING, S.RUNNING, S.PAUSED)


class WorkerError(LabError, RuntimeError):
    """The worker could not be asked (it died, or did not answer in time)."""


def cpu_count() -> int:
    """The cores this process may use (``sched_getaffinity``, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass
class LiveSnapshot(Snapshot):
    """A :class:`~vae_core.train.Snapshot` of a worker, plus what only a worker has. Copies only."""

    preview: Preview | None = None  # latest reconstructions (8, D) and prior decodes (16, D), in [0, 1]
    threads: int = 0  # torch intra-op threads the worker trains with now
    pid: int | None = None  # the worker's process id (None before it started)


# ====================================================================== the parent's side
class WorkerProcess:
    """One ``python -m vae_core.worker`` child and its pipe; a reader thread receives its messages.

    Holds no reference to any handle (the reader thread would keep it alive). ``on_message``
    is called in the reader thread with each message, and with ``("exit", returncode)`` once the
    pipe is closed. Spawning returns at once; the child imports torch (2-4 s) meanwhile.
    """

    def __init__(self, threads: int | None = None) -> None:
        parent_end, child_end = Pipe(duplex=True)
        env = dict(os.environ)
        n = str(threads or cpu_count())
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = n  # read once, when torch loads in the child
        # PASSIVE by default: a worker shares the cores with the server's page reruns (and often with the
        # browser itself), and spinning OpenMP threads starve them; measured in docs/performance.md
        env["OMP_WAIT_POLICY"] = os.environ.get(ENV_WAIT_POLICY, "").strip().upper() or "PASSIVE"
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        fd = child_end.fileno()
        self.spawned_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vae_core.worker", str(fd)],
            env=env,
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            close_fds=True,
        )
        child_end.close()  # only the child holds it now: its death reads as EOF here, ours there
        self.conn: Connection = parent_end
        self._send_lock = threading.Lock()
        self.on_message: Callable[[tuple], None] | None = None
        self.jobless = True
        self._buffer: list[tuple] = []  # messages that came before on_message was set
        self._cb_lock = threading.Lock()
        self.returncode: int | None = None
        self.closing = False
        self.ready_at: float | None = None  # time.monotonic() when the child had imported torch and vae_core
        self._reader = threading.Thread(target=self._read, name=f"vae-worker-{self.proc.pid}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    @property
    def ready(self) -> bool:
        """True once the child has imported torch and waits for a job (spawn cost: ``ready_at - spawned_at``)."""
        return self.ready_at is not None

    @property
    def alive(self) -> bool:
        """True until the pipe has closed (the child ended or is ending)."""
        return self.returncode is None and self._reader.is_alive()

    def listen(self, fn: Callable[[tuple], None]) -> None:
        """Deliver messages to ``fn`` (in the reader thread), those already received first."""
        with self._cb_lock:
            self.on_message = fn
            pending, self._buffer = self._buffer, []
        for m in pending:
            fn(m)

    def _deliver(self, msg: tuple) -> None:
        with self._cb_lock:
            fn = self.on_message
            if fn is None:
                self._buffer.append(msg)
                return
        with contextlib.suppress(Exception):  # a bad message must not end the reader
            fn(msg)

    def _read(self) -> None:
        while True:
            try:
                raw = self.conn.recv_bytes()
            except (EOFError, OSError):
                break
            try:
                msg = pickle.loads(raw)
            except Exception:  # an unreadable message: skip it
                continue
            if msg[0] == "hello":
                self.ready_at = time.monotonic()
                continue
            self._deliver(msg)
        try:
            code = self.proc.wait(timeout=CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:  # the pipe closed but the child lingers: end it
            self.proc.kill()
            code = self.proc.wait(timeout=CLOSE_TIMEOUT_S)
        self.returncode = code
        with contextlib.suppress(OSError):
            self.conn.close()
        self._deliver(("exit", code))

    def send(self, *msg: Any) -> bool:
        """Send a command; False when the child is gone (never raises, never blocks on a dead child)."""
        if self.returncode is not None:
            return False
        try:
            data = _dumps(msg)
            with self._send_lock:
                self.conn.send_bytes(data)
            return True
        except (OSError, ValueError, EOFError):
            return False

    def close(self, wait: bool = True, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Ask the child to exit; kill it if it has not after ``timeout`` s. Idempotent.

        ``wait=False`` returns at once (a daemon thread finishes the job): for finalizers.
        """
        if not self.closing:
            self.closing = True
            self.send("close")
        if wait:
            self._reap(timeout)
        else:
            threading.Thread(
                target=self._reap, args=(timeout,), name="vae-worker-reaper", daemon=True
            ).start()

    def _reap(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self._reader.join(timeout)

    def preload(self, dataset: str, data_root: str | None = None) -> None:
        """Have a jobless (spare) child decode ``dataset`` now, so that a job on it starts sooner."""
        self.send("preload", dataset, data_root)

    def kill(self) -> None:
        """SIGKILL the child (tests; a worker that ignores close)."""
        with contextlib.suppress(OSError):
            self.proc.send_signal(signal.SIGKILL)


def _dumps(msg: tuple) -> bytes:
    """Plain pickle, tensors by value: ``Connection.send`` would use torch's shared-memory reductions,
    which need a ``multiprocessing``-spawned peer (its authkey) and leave shared segments behind."""
    return pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)


SpareSource = Callable[[], "WorkerProcess | None"]


class _Link:
    """What the parent knows of one worker's job; updated by the reader thread, read by the handle.

    The handle owns a link; the link never refers to the handle.
    """

    def __init__(self, proc: WorkerProcess, n_models: int, start_step: int = 0) -> None:
        self.proc = proc
        self.lock = threading.Lock()
        self.state = S.IDLE
        self.message = ""
        self.step = 0
        self.total_steps = 0
        self.epoch = 0.0
        self.eps = float("nan")
        self.eta = float("nan")
        self.threads = 0
        self.extra: dict[str, Any] = {}
        self.histories = [History() for _ in range(n_models)]
        self.preview: Preview | None = None
        self.weights: list[dict[str, torch.Tensor]] | None = None
        self.metas: list[dict[str, Any]] | None = None
        self.ctl_seq = 0  # seq of the latest control command (its state wins until the child acks it)
        self.seq = 0
        self.starting = False  # show STARTING until a step after start_step
        self.start_step = start_step
        self.pending: dict[int, list] = {}  # request id -> [Event, reply]
        self.on_change: Callable[[], None] | None = None
        self.error: str | None = None

    def next_seq(self) -> int:
        with self.lock:
            self.seq += 1
            return self.seq

    def receive(self, msg: tuple) -> None:
        kind = msg[0]
        changed = False
        if kind == "update":
            changed = self._apply(msg[1])
        elif kind == "reply":
            _, rid, value = msg
            if isinstance(value, dict) and "update" in value:
                self._apply(value["update"])
            with self.lock:
                slot = self.pending.pop(rid, None)
            if slot is not None:
                slot[1] = value
                slot[0].set()
        elif kind == "error":
            with self.lock:
                self.state, self.message, self.error, self.starting = S.FAILED, msg[1], msg[1], False
            changed = True
        elif kind == "exit":
            changed = self._exited(msg[1])
        if changed and self.on_change is not None:
            with contextlib.suppress(Exception):
                self.on_change()

    def _apply(self, u: dict[str, Any]) -> bool:
        with self.lock:
            before = self.state
            self.step, self.total_steps, self.epoch = u["step"], u["total_steps"], u["epoch"]
            self.eps, self.eta, self.threads = (
                u.get("eps", math.nan),
                u.get("eta", math.nan),
                u.get("threads", 0),
            )
            self.extra = u.get("extra", {})
            for h, delta in zip(self.histories, u.get("history", [])):
                _extend(h, delta)
            if u.get("preview") is not None:
                step, recon, samples = u["preview"]
                self.preview = Preview(step, recon, samples, time.monotonic(), id(self))
            if u.get("weights") is not None:
                self.weights, self.metas = u["weights"], u["metas"]
            if u["ack"] >= self.ctl_seq:  # the child has seen our latest command: its state is the truth
                state = S(u["state"])
                if self.starting and state == S.RUNNING and self.step <= self.start_step:
                    state = S.STARTING
                else:
                    self.starting = False
                self.state, self.message = state, u["message"]
            return self.state != before

    def _exited(self, code: int | None) -> bool:
        with self.lock:
            for slot in self.pending.values():
                slot[0].set()  # nobody waits on a dead worker
            self.pending.clear()
            self.starting = False
            if self.proc.closing or self.error is not None:
                if self.state in _ACTIVE:
                    self.state = S.STOPPED
                return True
            self.state = S.FAILED
            signal = -code if code is not None and code < 0 else None
            kept = {"step": self.metas[0]["steps"]} if self.metas else {}
            self.message = Msg(_DIED[signal is not None, bool(kept)], code=code, signal=signal, **kept)
            return True

    def request(self, timeout: float, *msg: Any) -> Any:
        """Send ``msg`` with a fresh request id and wait up to ``timeout`` s for the reply."""
        rid = self.next_seq()
        ev = threading.Event()
        slot: list = [ev, None]
        with self.lock:
            self.pending[rid] = slot
        if not self.proc.send(*msg[:1], rid, *msg[1:]):
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
        return slot[1]


def _extend(h: History, delta: dict[str, Any]) -> None:
    """Append a pushed history delta (``n``, ``e``: the lengths it follows; columns) to ``h``."""
    if delta.get("n", 0) != len(h.step):  # out of step (never expected): take what fits
        return
    for k in _STEP_COLS:
        getattr(h, k).extend(delta.get(k, []))
    if delta.get("e", 0) == len(h.eval_step):
        for k in _EVAL_COLS:
            getattr(h, k).extend(delta.get(k, []))


def _history_until(h: History, steps: int) -> History:
    """A copy of ``h`` with only the records of steps ``<= steps`` (what the weights of ``steps`` saw)."""
    c = h.copy()
    n = bisect.bisect_right(c.step, steps)
    e = bisect.bisect_right(c.eval_step, steps)
    for k in _STEP_COLS:
        del getattr(c, k)[n:]
    for k in _EVAL_COLS:
        del getattr(c, k)[e:]
    return c


class _WorkerHandle:
    """What :class:`WorkerTrainer` and :class:`WorkerPair` share: the process, its link, control."""

    _JOB = "trainer"
    _N_MODELS = 1

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        dataset: Dataset | None = None,
        device: str | None = "cpu",
        data_root: str | None = None,
        num_threads: int | None = None,
        spare: SpareSource | None = None,
    ) -> None:
        train_config.validate()
        model_config.validate()
        ds = dataset if dataset is not None else load_dataset(train_config.dataset, root=data_root)
        if ds.dim != model_config.input_dim:
            from .models import ConfigError

            raise ConfigError(
                N_("dataset {name!r} has {dim} pixels per image but the model expects {input_dim}"),
                name=ds.name,
                dim=ds.dim,
                input_dim=model_config.input_dim,
            )
        self.model_config = model_config
        self.config = train_config
        self.device = device
        self.data_root = data_root
        self.dataset_name = ds.name
        # a dataset a worker cannot load by name (one uploaded in a session) travels to it whole
        self._dataset = None if ds.name in DATASETS else ds
        self.steps_per_epoch = max(1, math.ceil(ds.x_train.shape[0] / train_config.batch_size))
        self.total_steps = self.steps_per_epoch * train_config.epochs
        self.num_threads = num_threads or cpu_count()  # torch threads the worker should train with
        self._spare = spare
        self._link: _Link | None = None
        self.on_change: Callable[[], None] | None = None  # called (reader thread) when the state changes
        self._finalizer = weakref.finalize(self, _close_link, [None])
        self._idle_state = S.IDLE
        self._idle_message = ""

    # ---------------------------------------------------------------- process
    def _spec(self) -> dict[str, Any]:
        return {
            "job": self._JOB,
            "model_config": self.model_config.to_dict(),
            "train_config": self.config.to_dict(),
            "device": self.device,
            "data_root": self.data_root,
            "threads": self.num_threads,
            "dataset": self._dataset,
        }

    def _new_link(self) -> _Link:
        """A worker with this handle's job (a spare one if the source has one), paused until told to run."""
        old = self._link
        proc = self._spare() if self._spare is not None else None
        if proc is None or not proc.alive:
            proc = WorkerProcess(self.num_threads)
        proc.jobless = False
        link = _Link(proc, self._N_MODELS)
        link.total_steps = self.total_steps
        if old is not None:  # a restart after a death keeps the old weights until new ones come
            link.weights, link.metas = old.weights, old.metas
            if not old.proc.closing:
                old.proc.close(wait=False)
        link.on_change = self._changed_cb()
        proc.listen(link.receive)
        proc.send("job", self._spec())
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

    def _control(self, link: _Link, *msg: Any, state: TrainerState | None = None) -> None:
        with link.lock:
            link.seq += 1
            link.ctl_seq = link.seq
            if state is not None:
                link.state = state
        link.proc.send(msg[0], link.ctl_seq, *msg[1:])

    # ---------------------------------------------------------------- control
    def start(self) -> None:
        """Train in the worker; returns at once, in ``starting`` until the first step. No-op once finished.

        A new worker is started if none is alive (first Start, or after the worker died: training
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
        """Continue a paused or stopped worker (or start one, as :meth:`start`)."""
        link = self._live_link()
        if link is not None and link.state in (S.PAUSED, S.STOPPED, S.RUNNING):
            self._control(link, "run", state=S.RUNNING)
            self._notify()
        else:
            self.start()

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
                link, "stop", message, state=S.STOPPED if link.state in _ACTIVE + (S.IDLE,) else None
            )
        elif link.state in _ACTIVE:
            with link.lock:
                link.state = S.STOPPED
        self._notify()

    def set_threads(self, n: int) -> None:
        """Train with ``n`` torch threads from the next step on (the registry shares the cores)."""
        n = max(1, int(n))
        if n == self.num_threads:
            return
        self.num_threads = n
        link = self._live_link()
        if link is not None:
            link.proc.send("threads", n)

    def close(self, wait: bool = True) -> None:
        """End the worker (it is killed if it has not exited after a few seconds). Idempotent.

        The weights and history received so far stay readable. ``wait=False`` returns at once.
        """
        link = self._link
        if link is not None:
            if link.state in _ACTIVE:
                with link.lock:
                    link.state = S.STOPPED
            link.proc.close(wait=wait)  # a second call only waits
        self._notify()

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s until the worker trains no more; True if it does not."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.is_alive and self.state in (S.RUNNING, S.STARTING):
            if end is not None and time.monotonic() >= end:
                return False
            time.sleep(0.02)
        return True

    def _notify(self) -> None:
        if self.on_change is not None:
            with contextlib.suppress(Exception):
                self.on_change()

    # ---------------------------------------------------------------- reading
    @property
    def state(self) -> TrainerState:
        """The trainer's state as the last update (or the latest command) left it."""
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
        """The worker's process id (None before the first start)."""
        return self._link.proc.pid if self._link is not None else None

    @property
    def done(self) -> bool:
        """True once every step of every epoch has been taken."""
        return self.global_step >= self.total_steps

    def _fresh(self, timeout: float) -> _Link | None:
        """Ask a training worker for its weights now; the link (maybe with older weights) either way."""
        link = self._link
        if link is None:
            return None
        if link.proc.alive and link.state in (S.RUNNING, S.STARTING) and link.step > 0:
            with contextlib.suppress(WorkerError):  # keep the last pushed weights
                link.request(timeout, "weights")
        return link

    def _models(self, timeout: float) -> tuple[list[AE | VAE], list[dict[str, Any]], _Link]:
        link = self._fresh(timeout)
        if link is None or link.weights is None or link.metas is None:
            raise WorkerError(N_("no weights yet: train at least one step"))
        with link.lock:
            weights, metas = link.weights, link.metas
        models = []
        for sd, meta in zip(weights, metas):
            m = build_model(ModelConfig.from_dict(meta["model_config"]))
            m.load_state_dict(sd)
            models.append(m.eval())
        return models, metas, link


class WorkerTrainer(_WorkerHandle):
    """A :class:`~vae_core.train.Trainer` in its own process, with the Trainer's control surface.

    Control (each returns at once): :meth:`start` (state ``starting`` until the first step),
    :meth:`pause`, :meth:`resume`, :meth:`stop`, :meth:`close`; :meth:`step` trains one batch and
    waits for it (up to ``timeout``). Read (never waits on the worker, except for fresh weights
    while it trains): :meth:`snapshot`, :meth:`model_copy`, :meth:`metadata`,
    :meth:`consistent_copy`, :attr:`latest_preview`; attributes ``state``, ``message``,
    ``global_step``, ``total_steps``, ``model_config``, ``config``.

    The worker also decodes the preview: :func:`~vae_core.live.fixed_examples` ``(dataset, 8)``
    reconstructed and :func:`~vae_core.live.prior_noise` ``(latent_dim, 16)`` decoded, about once a second.
    """

    def pause(self) -> None:
        """Hold training after the current step (the worker keeps everything; :meth:`step` works)."""
        link = self._live_link()
        if link is None:
            return
        self._control(link, "pause", state=S.PAUSED if link.state in (S.RUNNING, S.STARTING) else None)
        self._notify()

    def step(self, timeout: float = REPLY_TIMEOUT_S + 20.0) -> dict[str, Any] | None:
        """Train one batch (while paused, or before any Start) and return its record, or None.

        None when training is over, or when the worker did not answer within ``timeout`` s
        (which covers starting one: 2-4 s) or has died; :attr:`message` then says why.
        The record is :meth:`Trainer.step`'s: ``step``, ``epoch``, ``loss``, ``recon``, ``kl``,
        ``beta``, ``kl_per_dim`` (nats per example).
        """
        link = self._live_link() or self._new_link()
        try:
            reply = link.request(timeout, "step")
        except WorkerError as exc:
            with link.lock:
                if link.state not in (S.FAILED,):
                    link.message = f"No step taken: {exc}."
            return None
        return reply.get("record")

    def snapshot(self) -> LiveSnapshot:
        """State, progress, a copy of the history and the latest preview, as of the last update."""
        link = self._link
        if link is None:
            return LiveSnapshot(
                self.state,
                self.message,
                0,
                self.total_steps,
                0.0,
                math.nan,
                math.nan,
                History(),
                None,
                0,
                None,
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
            )

    @property
    def history(self) -> History:
        """A copy of the step and evaluation records received so far."""
        return self.snapshot().history

    @property
    def latest_preview(self) -> Preview | None:
        """The newest preview the worker decoded (None before the first step)."""
        return self._link.preview if self._link is not None else None

    def examples_per_second(self) -> float:
        """Recent training throughput in the worker, examples/s (nan before two steps)."""
        return self._link.eps if self._link is not None else math.nan

    def consistent_copy(
        self, command: str | None = None, timeout: float = 5.0
    ) -> tuple[AE | VAE, dict[str, Any]]:
        """(eval-mode CPU model, :meth:`Trainer.metadata`-style dict) of the same step.

        While training, asks the worker for its weights now (waiting at most ``timeout`` s);
        otherwise, or if it does not answer, those of the last update (at most ~1 s old, and
        exact after a pause, stop, end or death). Raises :class:`WorkerError` before any step.
        """
        models, metas, link = self._models(timeout)
        meta = dict(metas[0])
        with link.lock:
            meta["history"] = _history_until(link.histories[0], meta["steps"]).to_dict()
        meta["command"] = command
        return models[0], meta

    def model_copy(self) -> AE | VAE:
        """An eval-mode CPU model with the worker's latest weights (see :meth:`consistent_copy`)."""
        return self.consistent_copy()[0]

    def metadata(self, command: str | None = None) -> dict[str, Any]:
        """Checkpoint metadata of the latest weights (what :meth:`Trainer.metadata` writes)."""
        return self.consistent_copy(command)[1]


class WorkerPair(_WorkerHandle):
    """The Compare page's :class:`~vae_core.pair.PairTrainer` (a VAE and an AE in lockstep) in a worker.

    The control surface of a PairTrainer: :meth:`start`, :meth:`stop`, :meth:`resume`,
    :meth:`join`, :meth:`close`, :meth:`progress`, :meth:`models`, :meth:`metadata`.
    """

    _JOB = "pair"
    _N_MODELS = 2

    def progress(self) -> PairProgress:
        """Where the pair is, as of the last update (state, step, both latest losses in nats/image)."""
        from .pair import PairProgress

        link = self._link
        if link is None:
            return PairProgress(self.state, 0, self.total_steps, self.message, math.nan, math.nan)
        with link.lock:
            ex = link.extra
            return PairProgress(
                link.state,
                link.step,
                link.total_steps or self.total_steps,
                link.message,
                ex.get("vae_loss", math.nan),
                ex.get("ae_loss", math.nan),
            )

    def models(self, timeout: float = 5.0) -> tuple[VAE, AE]:
        """Eval-mode CPU copies (vae, ae) of the latest weights."""
        models, _, _ = self._models(timeout)
        return models[0], models[1]  # type: ignore[return-value]

    def metadata(self, timeout: float = 5.0) -> tuple[dict[str, Any], dict[str, Any]]:
        """Checkpoint metadata of (vae, ae), as :meth:`PairTrainer.metadata` writes it."""
        _, metas, _ = self._models(timeout)
        return dict(metas[0]), dict(metas[1])


def _close_link(box: list) -> None:
    """Finalizer of a handle: end its worker without waiting."""
    link = box[0]
    if link is not None and not link.proc.closing:
        link.proc.close(wait=False)


# ====================================================================== the worker's side
@dataclass
class _Job:
    """The child's side of one job: the trainer(s), what was pushed, the thread budget."""

    send: Callable[..., None]
    spec: dict[str, Any]
    ack: int = 0
    want_threads: int = 1
    applied_threads: int = 0
    sent: list[tuple[int, int]] = field(default_factory=list)  # history lengths pushed, per model
    last_push: float = 0.0
    last_weights: float = -1e9
    weights_step: int = -1
    last_preview: float = -1e9
    preview_step: int = -1
    last_state: str = ""
    pushed_step: int = -1

    def _configs(self) -> tuple[ModelConfig, TrainConfig, Dataset, str | None]:
        """The job's configs and dataset (sent whole when a name would not find it), and its device; sets the threads."""
        spec = self.spec
        tc = TrainConfig.from_dict(spec["train_config"])
        ds = (
            spec["dataset"]
            if spec.get("dataset") is not None
            else load_dataset(tc.dataset, root=spec.get("data_root"))
        )
        self.want_threads = int(spec.get("threads") or 1)
        return ModelConfig.from_dict(spec["model_config"]), tc, ds, spec.get("device")

    def _state_step(self) -> tuple[str, int, bool]:
        """(state value, global step, settled: not stepping) of the job's trainer(s)."""
        raise NotImplementedError

    def update(self, weights: bool) -> dict[str, Any]:
        raise NotImplementedError

    def push(self, force: bool = False) -> None:
        """Send an update when something changed or ``PUSH_S`` passed; weights when new (or newly settled)."""
        now = time.monotonic()
        state, step, settled = self._state_step()
        changed = state != self.last_state or (self.pushed_step <= 0 < step)
        if not (force or changed or now - self.last_push >= PUSH_S):
            return
        # new weights, or a settled state the last weights (and their metadata) do not record yet
        weights = (
            step > 0
            and (step != self.weights_step or (settled and state != self.last_state))
            and (settled or now - self.last_weights >= WEIGHTS_S)
        )
        self.send(("update", self.update(weights)))

    def tick(self) -> None:
        self.push()


def _delta(h: History, sent: tuple[int, int]) -> tuple[dict[str, Any], tuple[int, int]]:
    n, e = sent
    d: dict[str, Any] = {"n": n, "e": e}
    for k in _STEP_COLS:
        d[k] = getattr(h, k)[n:]
    for k in _EVAL_COLS:
        d[k] = getattr(h, k)[e:]
    return d, (len(h.step), len(h.eval_step))


def _state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class _TrainerJob(_Job):
    def __init__(self, send: Callable[..., None], spec: dict[str, Any]) -> None:
        super().__init__(send, spec)
        from .device import pick_device
        from .live import fixed_examples, prior_noise
        from .train import Trainer

        mc, tc, ds, device = self._configs()
        torch.set_num_threads(self.want_threads)
        self.tr = Trainer(mc, tc, dataset=ds, device=pick_device(device))
        self.tr.add_callback("on_step", self._on_step)
        self.x = fixed_examples(ds, 8)
        self.z = prior_noise(mc.latent_dim, 16) if mc.latent_dim else None
        self.sent = [(0, 0)]

    def _on_step(self, tr: Any, rec: dict[str, Any]) -> None:
        # the training thread: OpenMP keeps the thread count per thread, so set it here
        n = self.want_threads
        if n != self.applied_threads:
            torch.set_num_threads(n)
            self.applied_threads = n

    def command(self, msg: tuple) -> None:
        kind = msg[0]
        if kind in ("run", "pause", "stop"):
            self.ack = msg[1]
            if kind == "run":
                self.tr.resume()
            elif kind == "pause":
                self.tr.pause()
            else:
                self.tr.stop(msg[2])
            self.push(force=True)
        elif kind == "threads":
            self.want_threads = int(msg[1])
        elif kind == "step":
            torch.set_num_threads(self.want_threads)
            rec = self.tr.step()
            self.send(("reply", msg[1], {"record": rec, "update": self.update(weights=True)}))
        elif kind == "weights":
            self.send(("reply", msg[1], {"update": self.update(weights=True)}))

    def update(self, weights: bool) -> dict[str, Any]:
        from .live import make_preview

        now = time.monotonic()
        tr = self.tr

        def grab(model: Any) -> tuple:
            snap = tr.snapshot()
            want_pv = (
                self.z is not None
                and snap.step != self.preview_step
                and (now - self.last_preview >= PREVIEW_S or snap.state != S.RUNNING)
            )
            pv = make_preview(model, self.x, self.z) if want_pv else None
            if weights:
                meta = tr.metadata()
                meta.pop("history", None)  # the parent rebuilds it from the deltas
                return snap, pv, [_state_dict(model)], [meta]
            return snap, pv, None, None

        step, (snap, pv, sd, metas) = tr.inspect_model(grab)
        delta, self.sent[0] = _delta(snap.history, self.sent[0])
        u = {
            "ack": self.ack,
            "state": snap.state.value,
            "message": snap.message,
            "step": snap.step,
            "total_steps": snap.total_steps,
            "epoch": snap.epoch,
            "eps": snap.examples_per_s,
            "eta": snap.eta_s,
            "threads": self.applied_threads or self.want_threads,
            "history": [delta],
        }
        if pv is not None:
            u["preview"] = (step, pv[0], pv[1])
            self.preview_step, self.last_preview = step, now
        if sd is not None:
            u["weights"], u["metas"] = sd, metas
            self.weights_step, self.last_weights = step, now
        self.last_push, self.last_state, self.pushed_step = now, snap.state.value, snap.step
        return u

    def _state_step(self) -> tuple[str, int, bool]:
        state = self.tr.state.value
        return state, self.tr.global_step, state != S.RUNNING.value

    def shutdown(self) -> None:
        self.tr.stop()
        self.tr.join(2.0)


class _PairJob(_Job):
    def __init__(self, send: Callable[..., None], spec: dict[str, Any]) -> None:
        super().__init__(send, spec)
        from .device import pick_device
        from .pair import PairTrainer

        mc, tc, ds, device = self._configs()
        self.pt = PairTrainer(mc, tc, ds, device=pick_device(device), num_threads=self.want_threads)

    def command(self, msg: tuple) -> None:
        kind = msg[0]
        if kind in ("run", "pause", "stop"):
            self.ack = msg[1]
            if kind == "run":
                self.pt.resume()
            else:  # a pair has no pause: it stops (its models keep their weights; Resume continues)
                self.pt.stop(msg[2] if kind == "stop" else None)
                self.pt.join(5.0)
            self.push(force=True)
        elif kind == "threads":
            self.want_threads = self.pt.num_threads = int(msg[1])
        elif kind == "weights":
            self.send(("reply", msg[1], {"update": self.update(weights=True)}))
        elif kind == "step":
            self.send(("reply", msg[1], {"record": None}))

    def update(self, weights: bool) -> dict[str, Any]:
        now = time.monotonic()
        p = self.pt.progress()
        u: dict[str, Any] = {
            "ack": self.ack,
            "state": p.state.value,
            "message": p.message,
            "step": p.step,
            "total_steps": p.total_steps,
            "epoch": p.step / self.pt.vae.steps_per_epoch,
            "threads": self.pt.num_threads,
            "extra": {"vae_loss": p.vae_loss, "ae_loss": p.ae_loss},
        }
        if weights:
            (vae, ae), metas = self.pt.models(), self.pt.metadata()
            u["weights"], u["metas"] = [_state_dict(vae), _state_dict(ae)], list(metas)
            self.weights_step, self.last_weights = p.step, now
        self.last_push, self.last_state, self.pushed_step = now, p.state.value, p.step
        return u

    def _state_step(self) -> tuple[str, int, bool]:
        state = self.pt.state.value
        return state, self.pt.global_step, state != S.RUNNING.value or not self.pt.is_alive

    def shutdown(self) -> None:
        self.pt.stop()
        self.pt.join(2.0)


def serve(conn: Connection) -> int:
    """The worker's main loop: take one job, relay commands, push updates; returns the exit code.

    Ends on ``close``, on EOF (the parent closed the pipe or died) and when the parent pid changes.
    """
    parent = os.getppid()
    lock = threading.Lock()

    def send(msg: tuple) -> None:
        data = _dumps(msg)
        with lock:
            conn.send_bytes(data)

    # The first optimizer built in a process loads torch's compiler stack (seconds: docs/performance.md):
    # pay that before a job, so that a spare worker's Start costs only the Trainer's own set-up.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    send(("hello", os.getpid()))
    job: _Job | None = None
    while True:
        if os.getppid() != parent:  # the server died (SIGKILL reads as EOF too; this is the backstop)
            break
        try:
            msg = pickle.loads(conn.recv_bytes()) if conn.poll(0.05) else None
        except (EOFError, OSError):
            break
        try:
            if msg is not None:
                if msg[0] == "close":
                    break
                if msg[0] == "preload" and job is None:
                    with contextlib.suppress(Exception):  # the job that needs it will report the error
                        load_dataset(msg[1], root=msg[2])
                elif msg[0] == "job":
                    kind = msg[1]["job"]
                    job = _TrainerJob(send, msg[1]) if kind == "trainer" else _PairJob(send, msg[1])
                elif job is not None:
                    job.command(msg)  # type: ignore[attr-defined]
            if job is not None:
                job.tick()  # type: ignore[attr-defined]
        except (BrokenPipeError, EOFError, ConnectionResetError):
            break
        except Exception as exc:  # report, and end: the parent shows the message and can start anew
            with contextlib.suppress(OSError):
                send(("error", f"training failed: {type(exc).__name__}: {exc}"))
            return 1
    if job is not None:
        with contextlib.suppress(Exception):
            job.shutdown()  # type: ignore[attr-defined]
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m vae_core.worker FD``: serve the pipe inherited as file descriptor FD."""
    args = sys.argv[1:] if argv is None else argv
    conn = Connection(int(args[0]))
    try:
        return serve(conn)
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
