"""The server's trainer registry: per-session handles, a cap on how many train at once, and
the stopping of trainers whose browser session has ended. Knows nothing about Streamlit.

Each browser session owns one :class:`TrainerHandle` (a page keeps it in ``st.session_state``);
the handle owns at most one trainer (:class:`Runnable`) at a time. Streamlit has no public
session-end hook, so two mechanisms end a finished session's training:

1. **Finalizer.** When Streamlit drops a session, its state and the handle in it are garbage
   collected; ``weakref.finalize`` on the handle then stops its trainer and forgets it.
2. **Heartbeat.** The page touches the handle on every draw, and an optional liveness probe
   (for example "is this Streamlit session still connected?") is polled by a watchdog thread,
   which stops trainers not seen for ``heartbeat_timeout`` seconds.

A :class:`~vae_core.train.Trainer` is a :class:`Runnable`, and so is the Compare page's
:class:`~vae_core.pair.PairTrainer`: its one thread counts as one trainer.

At most ``max_running`` trainers run at once (default 2 per CPU core, or ``$VAE_LAB_MAX_TRAINERS``);
one more start raises :class:`CapacityError`, whose message says what to do.

Worker processes (:mod:`vae_core.worker`): :meth:`TrainerRegistry.worker` and
:meth:`TrainerRegistry.pair_worker` make handles whose trainer runs in its own process; the
registry holds them as it holds trainers (cap, finalizer, heartbeat), ends their processes when
their session ends and at :meth:`~TrainerRegistry.shutdown`, shares the cores among the running
ones (``cores // running`` torch threads each, at least 1), and can keep one spare worker
started ahead (:meth:`~TrainerRegistry.prewarm`, ``$VAE_LAB_SPARE_WORKERS``, default 1).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from .errors import LabError
from .live import Preview, PreviewBox, SeriesBuffer
from .models import ModelConfig
from .train import History, TrainConfig, Trainer, TrainerState
from .worker import WorkerPair, WorkerProcess, WorkerTrainer

__all__ = [
    "CapacityError",
    "Runnable",
    "TrainerRegistry",
    "TrainerHandle",
    "default_registry",
    "default_max_trainers",
    "env_max_trainers",
    "env_heartbeat_timeout",
    "env_spare_workers",
    "ENV_MAX_TRAINERS",
    "ENV_TRAINER_TIMEOUT",
    "ENV_SPARE_WORKERS",
    "DEFAULT_TIMEOUT_S",
    "WorkerTrainer",
    "WorkerPair",
]

ENV_MAX_TRAINERS = "VAE_LAB_MAX_TRAINERS"  # most trainers running at once, server-wide
ENV_TRAINER_TIMEOUT = "VAE_LAB_TRAINER_TIMEOUT"  # seconds unseen before a session's trainer is stopped
ENV_SPARE_WORKERS = "VAE_LAB_SPARE_WORKERS"  # worker processes kept started ahead (0 or 1; default 1)
DEFAULT_TIMEOUT_S = (
    120.0  # Streamlit keeps a disconnected session about this long (server.disconnectedSessionTTL)
)
ACTIVE_STATES = (TrainerState.STARTING, TrainerState.RUNNING, TrainerState.PAUSED)
STEPPING_STATES = (TrainerState.STARTING, TrainerState.RUNNING)  # what counts towards the cap and the cores


class Runnable(Protocol):
    """What the registry needs of a trainer: :class:`~vae_core.train.Trainer` has it, and so does
    :class:`~vae_core.pair.PairTrainer` (two trainers in one thread)."""

    state: TrainerState
    message: str
    global_step: int

    @property
    def is_alive(self) -> bool: ...
    def start(self) -> None: ...
    def resume(self) -> None: ...
    def stop(self, message: str | None = None) -> None: ...


class CapacityError(LabError, RuntimeError):
    """Starting one more trainer would exceed the server's limit; the message says what to do."""


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_max_trainers() -> int:
    """Two running trainers per CPU core this process may use."""
    return 2 * _cpu_count()


def env_max_trainers() -> int:
    """``$VAE_LAB_MAX_TRAINERS`` if it is a positive integer, else :func:`default_max_trainers`."""
    raw = os.environ.get(ENV_MAX_TRAINERS, "").strip()
    try:
        val = int(raw)
    except ValueError:
        return default_max_trainers()
    return val if val >= 1 else default_max_trainers()


def env_spare_workers() -> int:
    """``$VAE_LAB_SPARE_WORKERS`` (0 turns spares off; at most 1 is kept), else 1."""
    try:
        return min(1, max(0, int(os.environ.get(ENV_SPARE_WORKERS, "1").strip())))
    except ValueError:
        return 1


def _retire(tr: Runnable | None, reason: str | None = None, wait: bool = False) -> None:
    """Stop ``tr`` if it is active (with ``reason`` as its message), and end its worker process if it has one."""
    if tr is None:
        return
    if tr.state in ACTIVE_STATES + (TrainerState.IDLE,):
        tr.stop(reason)
    close = getattr(tr, "close", None)
    if close is not None:
        close(wait=wait)


def env_heartbeat_timeout() -> float:
    """``$VAE_LAB_TRAINER_TIMEOUT`` in seconds (0 turns the watchdog off), else 120 s."""
    raw = os.environ.get(ENV_TRAINER_TIMEOUT, "").strip()
    try:
        val = float(raw)
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return val if math.isfinite(val) and val >= 0 else DEFAULT_TIMEOUT_S


def _is_active(tr: Runnable | None) -> bool:
    """True while a trainer's thread is alive and running or paused (it holds a thread)."""
    return tr is not None and tr.is_alive and tr.state in ACTIVE_STATES


@dataclass
class _Entry:
    trainer: Runnable | None
    last_seen: float  # registry clock, seconds
    probe: Callable[[], bool] | None  # True while the owning session is known to be alive
    label: str


class TrainerRegistry:
    """All open handles of one process; enforces the running-trainer cap and runs the watchdog.

    ``max_running`` and ``heartbeat_timeout`` of ``None`` are read from the environment at each
    use (``$VAE_LAB_MAX_TRAINERS``, ``$VAE_LAB_TRAINER_TIMEOUT``), never cached at import.
    ``check_interval`` is the watchdog's period in seconds (None: from the timeout).
    ``clock`` is injectable for tests (seconds, monotonic).
    """

    def __init__(
        self,
        max_running: int | None = None,
        heartbeat_timeout: float | None = None,
        check_interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        spare_workers: int | None = None,
    ) -> None:
        self._max = max_running
        self._spares = spare_workers
        self._spare: WorkerProcess | None = None
        self._timeout = heartbeat_timeout
        self._interval = check_interval
        self.clock = clock
        self._lock = threading.RLock()
        self._entries: dict[int, _Entry] = {}
        self._ids = itertools.count(1)
        self._watchdog: threading.Thread | None = None
        self._shutdown = threading.Event()

    # ---------------------------------------------------------------- settings
    @property
    def max_running(self) -> int:
        """Most trainers allowed to run at once."""
        return self._max if self._max is not None else env_max_trainers()

    @property
    def heartbeat_timeout(self) -> float:
        """Seconds a session may go unseen before its trainer is stopped (0 = never)."""
        return self._timeout if self._timeout is not None else env_heartbeat_timeout()

    @property
    def spare_workers(self) -> int:
        """Worker processes to keep started ahead (0 or 1)."""
        return min(1, max(0, self._spares)) if self._spares is not None else env_spare_workers()

    @property
    def watchdog_alive(self) -> bool:
        """True while the watchdog thread runs (it ends when no handle is left)."""
        with self._lock:
            return self._watchdog is not None and self._watchdog.is_alive()

    # ---------------------------------------------------------------- handles
    def open(self, label: str = "", probe: Callable[[], bool] | None = None) -> TrainerHandle:
        """A new handle for one session. Keep it where the session's state lives (and nowhere else)."""
        with self._lock:
            hid = next(self._ids)
            self._entries[hid] = _Entry(None, self.clock(), probe, label)
            self._ensure_watchdog()
        return TrainerHandle(self, hid)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, handle_id: object) -> bool:
        with self._lock:
            return handle_id in self._entries

    def running_count(self) -> int:
        """Trainers stepping now, or starting to (paused ones do not count)."""
        with self._lock:
            return sum(
                1
                for e in self._entries.values()
                if e.trainer is not None and e.trainer.is_alive and e.trainer.state in STEPPING_STATES
            )

    # ---------------------------------------------------------------- worker processes
    def worker(self, model_config: ModelConfig, train_config: TrainConfig, **kwargs) -> WorkerTrainer:
        """A :class:`~vae_core.worker.WorkerTrainer` that takes this registry's spare worker when it starts.

        ``kwargs`` go to WorkerTrainer (``dataset``, ``device``, ``data_root``, ``num_threads``).
        Nothing starts until it is given to :meth:`TrainerHandle.start` (or stepped).
        """
        return WorkerTrainer(model_config, train_config, spare=self._take_spare, **kwargs)

    def pair_worker(self, model_config: ModelConfig, train_config: TrainConfig, **kwargs) -> WorkerPair:
        """A :class:`~vae_core.worker.WorkerPair` (the Compare page's pair in a process), as :meth:`worker`."""
        return WorkerPair(model_config, train_config, spare=self._take_spare, **kwargs)

    def prewarm(self, dataset: str | None = None, data_root: str | None = None) -> bool:
        """Start a spare worker now if spares are on and none is ready (returns at once; True if one is).

        A page calls this when Start is likely soon (the Train page drawn with nothing training):
        the next Start then skips the 2-4 s of starting Python and importing torch. With
        ``dataset``, the spare also decodes that dataset ahead (the form's current choice).
        """
        if self.spare_workers < 1 or self._shutdown.is_set():
            return False
        with self._lock:
            if self._spare is None or not self._spare.alive:
                self._spare = WorkerProcess()
                self._spare_data: set[tuple[str, str | None]] = set()
            if dataset is not None and (dataset, data_root) not in self._spare_data:
                self._spare.preload(dataset, data_root)
                self._spare_data.add((dataset, data_root))
            return True

    def _take_spare(self) -> WorkerProcess | None:
        with self._lock:
            sp, self._spare = self._spare, None
        return sp if sp is not None and sp.alive and sp.jobless else None

    def threads_per_worker(self, running: int | None = None) -> int:
        """Torch threads each stepping worker gets: the cores shared by ``running`` (default: now) workers."""
        n = self._stepping_workers() if running is None else running
        return max(1, _cpu_count() // max(1, n))

    def _stepping_workers(self) -> int:
        with self._lock:
            return sum(
                1
                for e in self._entries.values()
                if hasattr(e.trainer, "set_threads")
                and e.trainer.is_alive
                and e.trainer.state in STEPPING_STATES
            )

    def rebalance(self) -> int:
        """Give every stepping worker its share of the cores; returns the threads per worker.

        Runs by itself whenever a worker's state changes (its ``on_change``) and at each sweep.
        """
        with self._lock:
            workers = [
                e.trainer
                for e in self._entries.values()
                if hasattr(e.trainer, "set_threads")
                and e.trainer.is_alive
                and e.trainer.state in STEPPING_STATES
            ]
        per = max(1, _cpu_count() // max(1, len(workers)))
        for w in workers:
            w.set_threads(per)  # type: ignore[attr-defined]
        return per

    def _adopt(self, trainer: Runnable | None) -> None:
        if trainer is not None and hasattr(trainer, "on_change"):
            trainer.on_change = self.rebalance  # type: ignore[attr-defined]

    def capacity_message(self) -> str:
        """What one more Start is told when the cap is reached."""
        n = self.max_running
        return (
            f"{n} trainer{'s are' if n != 1 else ' is'} already running on this server (the limit); "
            f"wait for one to finish or pause, or ask the host to raise {ENV_MAX_TRAINERS}."
        )

    def _run_capped(
        self, hid: int, action: Callable[[Runnable], None], new: Runnable | None = None
    ) -> Runnable | None:
        """Under the lock: refuse if the cap is reached, else (attach ``new`` and) run ``action``.

        Returns the trainer that ``new`` replaced, if any (the caller stops it).
        """
        with self._lock:
            e = self._entries.get(hid)
            if e is None:
                raise RuntimeError("this handle was closed")
            mine = e.trainer is not None and e.trainer.is_alive and e.trainer.state in STEPPING_STATES
            if not mine and self.running_count() >= self.max_running:
                raise CapacityError(self.capacity_message())
            old = None
            if new is not None:
                old, e.trainer = e.trainer, new
                self._adopt(new)
            if e.trainer is None:
                raise RuntimeError("this handle has no trainer (it was closed or reset)")
            e.last_seen = self.clock()
            if not mine and hasattr(e.trainer, "set_threads"):  # its share, before its process starts
                e.trainer.set_threads(self.threads_per_worker(self._stepping_workers() + 1))  # type: ignore[union-attr]
            action(e.trainer)  # start/resume set STARTING/RUNNING before returning, so the next count sees it
        self.rebalance()
        return old if old is not new else None

    def _set_trainer(self, hid: int, trainer: Runnable | None) -> Runnable | None:
        with self._lock:
            e = self._entries.get(hid)
            if e is None:
                raise RuntimeError("this handle was closed")
            old, e.trainer = e.trainer, trainer
            e.last_seen = self.clock()
            self._adopt(trainer)
        return old

    def _get_trainer(self, hid: int) -> Runnable | None:
        with self._lock:
            e = self._entries.get(hid)
            return None if e is None else e.trainer

    def _touch(self, hid: int) -> None:
        with self._lock:
            e = self._entries.get(hid)
            if e is not None:
                e.last_seen = self.clock()

    def _close(self, hid: int, reason: str = "stopped: its browser session ended") -> None:
        """Stop the handle's trainer (without waiting) and forget the handle. Idempotent."""
        with self._lock:
            e = self._entries.pop(hid, None)
        if e is not None:
            _retire(e.trainer, reason)
            self.rebalance()

    # ---------------------------------------------------------------- watchdog
    def sweep(self) -> list[int]:
        """Stop active trainers of sessions unseen for ``heartbeat_timeout`` s; returns their handle ids.

        Probes are polled first: a probe that returns True counts as a sighting. The watchdog
        thread calls this every few seconds; tests call it directly.
        """
        timeout = self.heartbeat_timeout
        with self._lock:
            entries = [(hid, e) for hid, e in self._entries.items() if _is_active(e.trainer)]
        stopped = []
        for hid, e in entries:
            if e.probe is not None:
                try:
                    alive = bool(e.probe())
                except Exception:  # a broken probe must not kill the watchdog
                    alive = False
                if alive:
                    self._touch(hid)
            if timeout <= 0:
                continue
            with self._lock:
                stale = self.clock() - e.last_seen > timeout and _is_active(e.trainer)
            if stale and e.trainer is not None:
                e.trainer.stop(
                    f"stopped at step {e.trainer.global_step}: its browser session was not seen for "
                    f"{timeout:g} s (the page was closed). Press Resume to continue."
                )
                stopped.append(hid)
        self.rebalance()
        return stopped

    def _ensure_watchdog(self) -> None:
        # called under self._lock
        if self._watchdog is not None and self._watchdog.is_alive():
            return
        self._shutdown.clear()
        self._watchdog = threading.Thread(target=self._watch, name="vae-trainer-watchdog", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        while True:
            timeout = self.heartbeat_timeout
            interval = self._interval or (min(5.0, max(0.05, timeout / 4)) if timeout > 0 else 5.0)
            if self._shutdown.wait(interval):
                return
            with contextlib.suppress(Exception):  # keep watching whatever one trainer does
                self.sweep()
            with self._lock:
                if not self._entries:  # nothing to watch: end; open() starts a new one
                    self._watchdog = None
                    return

    def shutdown(self, stop_trainers: bool = True) -> None:
        """End the watchdog (and, by default, stop every trainer). For tests and server exit."""
        self._shutdown.set()
        wd = self._watchdog
        if wd is not None:
            wd.join(timeout=5)
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.close(wait=False)
        if stop_trainers:
            with self._lock:
                entries = list(self._entries.values())
                self._entries.clear()
            for e in entries:  # ask every worker first, then wait for each: no child outlives the server
                _retire(e.trainer, "stopped: the server is shutting down", wait=False)
            for e in entries:
                close = getattr(e.trainer, "close", None)
                if close is not None:
                    close(wait=True)
        if spare is not None:
            spare.close(wait=True)


class TrainerHandle:
    """One session's slot in a :class:`TrainerRegistry`: owns at most one trainer at a time.

    When the handle is garbage-collected (its session ended) or :meth:`close` is called, its
    trainer is stopped. Nothing else may hold a strong reference to the handle, or the
    finalizer cannot fire: the trainer never refers back to it.
    """

    def __init__(self, registry: TrainerRegistry, handle_id: int) -> None:
        self.registry = registry
        self.id = handle_id
        self._finalizer = weakref.finalize(self, registry._close, handle_id)
        self._box = PreviewBox()
        self._series: SeriesBuffer | None = None

    @property
    def trainer(self) -> Runnable | None:
        """The session's current trainer (None before the first Start/Step or after Reset)."""
        return self.registry._get_trainer(self.id)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran or the handle was collected."""
        return not self._finalizer.alive

    @property
    def latest_preview(self) -> Preview | None:
        """The newest preview decoded for this handle (by the training thread or by :meth:`preview`)."""
        return self._box.latest

    def _hook(self, trainer: Runnable) -> None:
        # a PairTrainer (Compare page) has no callbacks and no live preview
        if isinstance(trainer, Trainer) and self._box.on_step not in trainer.callbacks["on_step"]:
            trainer.add_callback("on_step", self._box.on_step)
        self._series = None

    def attach(self, trainer: Runnable | None) -> None:
        """Make ``trainer`` this session's trainer; a previous one is stopped (it keeps its weights)."""
        if trainer is not None:
            self._hook(trainer)
        old = self.registry._set_trainer(self.id, trainer)
        if old is not None and old is not trainer:
            _retire(old)
        self.registry.rebalance()

    def start(self, trainer: Runnable | None = None) -> None:
        """Start the trainer's thread, unless the server's cap is reached (:class:`CapacityError`).

        With ``trainer``, it replaces the current one (which is stopped) only if the cap allows,
        so a refused Start leaves the session's previous trainer and view untouched.
        """
        if trainer is not None:
            self._hook(trainer)
        old = self.registry._run_capped(self.id, lambda tr: tr.start(), new=trainer)
        if old is not None:
            _retire(old)

    def resume(self) -> None:
        """Resume a paused or stopped trainer, under the same cap as :meth:`start`."""
        self.registry._run_capped(self.id, lambda tr: tr.resume())

    def touch(self) -> None:
        """Record that the session is alive (the page calls this on every draw)."""
        self.registry._touch(self.id)

    def close(self) -> None:
        """Stop the trainer and leave the registry now (idempotent)."""
        self._finalizer()

    def series(self, history: History, max_points: int = 400) -> dict[str, np.ndarray]:
        """:func:`vae_core.live.plot_series` of the current trainer's history, converting only the
        records new since the last call (a long run costs the same per redraw as a short one)."""
        tr = self.trainer
        buf = self._series
        if buf is None or buf.trainer_id != id(tr) or buf.n > len(history.step):
            buf = self._series = SeriesBuffer(id(tr))
        return buf.update(history, max_points)

    def preview(
        self, x_fixed: torch.Tensor, z_fixed: torch.Tensor, min_interval_s: float = 1.0
    ) -> Preview | None:
        """Reconstructions of ``x_fixed`` (N, D) and decodes of ``z_fixed`` (M, z) by recent weights.

        While the trainer's thread runs, this returns the preview that thread decoded after a
        step at most about ``min_interval_s`` ago (asking for it keeps it coming). Otherwise,
        or before the first one, it decodes here, and only if the step changed or
        ``min_interval_s`` passed: a page that redraws often costs training almost nothing.
        None without a trainer, or for a trainer with no single model (the Compare page's pair).
        """
        tr = self.trainer
        if isinstance(tr, WorkerTrainer):  # decoded in the worker, from its own 8 fixed examples and 16 draws
            return tr.latest_preview
        if not isinstance(tr, Trainer):
            return None
        self._box.want(x_fixed, z_fixed, min_interval_s)
        p = self._box.latest
        fresh = p is not None and p.trainer_id == id(tr)
        if fresh and tr.is_alive and tr.state == TrainerState.RUNNING:
            return p
        if fresh and (p.step == tr.global_step or time.monotonic() - p.made_at < min_interval_s):
            return p
        return self._box.compute(tr, model=tr.model_copy() if tr.is_alive else None)


# ------------------------------------------------------------------ the default registry
_DEFAULT: TrainerRegistry | None = None
_DEFAULT_LOCK = threading.Lock()


def default_registry() -> TrainerRegistry:
    """The process-wide registry (made on first use, settings from the environment)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = TrainerRegistry()
            atexit.register(_DEFAULT.shutdown)  # end the worker processes with the server
        return _DEFAULT
