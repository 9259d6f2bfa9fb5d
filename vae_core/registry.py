"""The server's trainer registry: per-session handles, a cap on how many jobs train at once, and
the stopping of jobs whose browser session has ended. Knows nothing about Streamlit.

Each browser session owns one :class:`TrainerHandle` per page that trains (a page keeps it in
``st.session_state``); the handle owns at most one :class:`~vae_core.handle.LiveJob` at a time,
whatever it runs: a model (Train page), an AE/VAE pair, a Pitfalls section. Every job runs in a
worker forked by the server's fork server (:mod:`vae_core.forkserver`), never in the server.
Streamlit has no public session-end hook, so two mechanisms end a finished session's job:

1. **Finalizer.** When Streamlit drops a session, its state and the handle in it are garbage
   collected; ``weakref.finalize`` on the handle then stops its job and forgets it.
2. **Heartbeat.** The page touches the handle on every draw, and an optional liveness probe
   (for example "is this Streamlit session still connected?") is polled by a watchdog thread,
   which stops jobs not seen for ``heartbeat_timeout`` seconds.

At most ``max_running`` jobs train at once (default 2 per CPU core, or ``$VAE_LAB_MAX_TRAINERS``);
one more start raises :class:`CapacityError`, whose message says what to do. The registry shares
the cores among the stepping workers (``cores // stepping`` torch threads each, at least 1), and
ends every worker at :meth:`~TrainerRegistry.shutdown` (the server's exit).
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
from typing import Any

import numpy as np

from .errors import LabError
from .forkserver import ForkServer, cpu_count, default_pool
from .handle import LiveJob
from .jobs import JobSpec
from .live import SeriesBuffer
from .train import History, TrainerState

__all__ = [
    "CapacityError",
    "TrainerRegistry",
    "TrainerHandle",
    "LiveJob",
    "default_registry",
    "default_max_trainers",
    "env_max_trainers",
    "env_heartbeat_timeout",
    "ENV_MAX_TRAINERS",
    "ENV_TRAINER_TIMEOUT",
    "DEFAULT_TIMEOUT_S",
]

ENV_MAX_TRAINERS = "VAE_LAB_MAX_TRAINERS"  # most jobs training at once, server-wide
ENV_TRAINER_TIMEOUT = "VAE_LAB_TRAINER_TIMEOUT"  # seconds unseen before a session's job is stopped
# Streamlit keeps a disconnected session about this long (server.disconnectedSessionTTL), seconds
DEFAULT_TIMEOUT_S = 120.0
ACTIVE_STATES = (TrainerState.STARTING, TrainerState.RUNNING, TrainerState.PAUSED)
STEPPING_STATES = (TrainerState.STARTING, TrainerState.RUNNING)  # what counts towards the cap and the cores


class CapacityError(LabError, RuntimeError):
    """Starting one more job would exceed the server's limit; the message says what to do."""


def default_max_trainers() -> int:
    """Two running jobs per CPU core this process may use."""
    return 2 * cpu_count()


def env_max_trainers() -> int:
    """``$VAE_LAB_MAX_TRAINERS`` if it is a positive integer, else :func:`default_max_trainers`."""
    raw = os.environ.get(ENV_MAX_TRAINERS, "").strip()
    try:
        val = int(raw)
    except ValueError:
        return default_max_trainers()
    return val if val >= 1 else default_max_trainers()


def env_heartbeat_timeout() -> float:
    """``$VAE_LAB_TRAINER_TIMEOUT`` in seconds (0 turns the watchdog off), else 120 s."""
    raw = os.environ.get(ENV_TRAINER_TIMEOUT, "").strip()
    try:
        val = float(raw)
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return val if math.isfinite(val) and val >= 0 else DEFAULT_TIMEOUT_S


def _retire(job: LiveJob | None, reason: str | None = None, wait: bool = False) -> None:
    """Stop ``job`` if it is active (with ``reason`` as its message) and end its worker."""
    if job is None:
        return
    if job.state in (*ACTIVE_STATES, TrainerState.IDLE):
        job.stop(reason)
    job.close(wait=wait)


def _is_active(job: LiveJob | None) -> bool:
    """True while a job's worker is alive and training or paused."""
    return job is not None and job.is_alive and job.state in ACTIVE_STATES


def _is_stepping(job: LiveJob | None) -> bool:
    """True while a job's worker trains, or is starting to (what the cap and the cores count)."""
    return job is not None and job.is_alive and job.state in STEPPING_STATES


@dataclass
class _Entry:
    job: LiveJob | None
    last_seen: float  # registry clock, seconds
    probe: Callable[[], bool] | None  # True while the owning session is known to be alive
    label: str


class TrainerRegistry:
    """All open handles of one process; enforces the running-job cap and runs the watchdog.

    ``max_running`` and ``heartbeat_timeout`` of ``None`` are read from the environment at each
    use (``$VAE_LAB_MAX_TRAINERS``, ``$VAE_LAB_TRAINER_TIMEOUT``), never cached at import.
    ``check_interval`` is the watchdog's period in seconds (None: from the timeout).
    ``clock`` is injectable for tests (seconds, monotonic). ``pool`` forks the workers (default:
    the server's one fork server, :func:`vae_core.forkserver.default_pool`).
    """

    def __init__(
        self,
        max_running: int | None = None,
        heartbeat_timeout: float | None = None,
        check_interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        pool: ForkServer | None = None,
    ) -> None:
        self._max = max_running
        self._timeout = heartbeat_timeout
        self._interval = check_interval
        self.clock = clock
        self.pool = pool if pool is not None else default_pool()
        self._lock = threading.RLock()
        self._entries: dict[int, _Entry] = {}
        self._ids = itertools.count(1)
        self._watchdog: threading.Thread | None = None
        self._shutdown = threading.Event()

    # ---------------------------------------------------------------- settings
    @property
    def max_running(self) -> int:
        """Most jobs allowed to train at once."""
        return self._max if self._max is not None else env_max_trainers()

    @property
    def heartbeat_timeout(self) -> float:
        """Seconds a session may go unseen before its job is stopped (0 = never)."""
        return self._timeout if self._timeout is not None else env_heartbeat_timeout()

    @property
    def watchdog_alive(self) -> bool:
        """True while the watchdog thread runs (it ends when no handle is left)."""
        with self._lock:
            return self._watchdog is not None and self._watchdog.is_alive()

    # ---------------------------------------------------------------- handles and jobs
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

    def job(self, spec: JobSpec, **kwargs: Any) -> LiveJob:
        """A :class:`~vae_core.handle.LiveJob` for ``spec``, forked from this registry's pool when it starts.

        ``kwargs`` go to LiveJob (``dataset``, ``device``, ``data_root``, ``num_threads``). Nothing
        starts until it is given to :meth:`TrainerHandle.start` (or stepped).
        """
        return LiveJob(spec, self.pool, **kwargs)

    def warm(self) -> None:
        """Start the fork server now, if it is not running (returns at once): the next Start is then lean."""
        if not self._shutdown.is_set():
            self.pool.start()

    def running_count(self) -> int:
        """Jobs training now, or starting to (paused ones do not count)."""
        with self._lock:
            return sum(1 for e in self._entries.values() if _is_stepping(e.job))

    def threads_per_worker(self, running: int | None = None) -> int:
        """Torch threads each stepping worker gets: the cores shared by ``running`` (default: now) workers."""
        n = self.running_count() if running is None else running
        return max(1, cpu_count() // max(1, n))

    def rebalance(self) -> int:
        """Give every stepping worker its share of the cores; returns the threads per worker.

        Runs by itself whenever a job's state changes (its ``on_change``) and at each sweep.
        """
        with self._lock:
            jobs = [e.job for e in self._entries.values() if e.job is not None and _is_stepping(e.job)]
        per = max(1, cpu_count() // max(1, len(jobs)))
        for j in jobs:
            j.set_threads(per)
        return per

    def capacity_message(self) -> str:
        """What one more Start is told when the cap is reached."""
        n = self.max_running
        return (
            f"{n} trainer{'s are' if n != 1 else ' is'} already running on this server (the limit); "
            f"wait for one to finish or pause, or ask the host to raise {ENV_MAX_TRAINERS}."
        )

    def _run_capped(
        self, hid: int, action: Callable[[LiveJob], None], new: LiveJob | None = None
    ) -> LiveJob | None:
        """Under the lock: refuse if the cap is reached, else (attach ``new`` and) run ``action``.

        Returns the job that ``new`` replaced, if any (the caller stops it).
        """
        with self._lock:
            e = self._entries.get(hid)
            if e is None:
                raise RuntimeError("this handle was closed")
            mine = _is_stepping(e.job)
            if not mine and self.running_count() >= self.max_running:
                raise CapacityError(self.capacity_message())
            old = None
            if new is not None:
                old, e.job = e.job, new
                new.on_change = self.rebalance
            if e.job is None:
                raise RuntimeError("this handle has no job (it was closed or reset)")
            e.last_seen = self.clock()
            if not mine:  # its share, before its worker is forked
                e.job.set_threads(self.threads_per_worker(self.running_count() + 1))
            action(e.job)  # start/resume set STARTING/RUNNING before returning, so the next count sees it
        self.rebalance()
        return old if old is not new else None

    def _set_job(self, hid: int, job: LiveJob | None) -> LiveJob | None:
        with self._lock:
            e = self._entries.get(hid)
            if e is None:
                raise RuntimeError("this handle was closed")
            old, e.job = e.job, job
            e.last_seen = self.clock()
            if job is not None:
                job.on_change = self.rebalance
        return old

    def _get_job(self, hid: int) -> LiveJob | None:
        with self._lock:
            e = self._entries.get(hid)
            return None if e is None else e.job

    def _touch(self, hid: int) -> None:
        with self._lock:
            e = self._entries.get(hid)
            if e is not None:
                e.last_seen = self.clock()

    def _close(self, hid: int, reason: str = "stopped: its browser session ended") -> None:
        """Stop the handle's job (without waiting) and forget the handle. Idempotent."""
        with self._lock:
            e = self._entries.pop(hid, None)
        if e is not None:
            _retire(e.job, reason)
            self.rebalance()

    # ---------------------------------------------------------------- watchdog
    def sweep(self) -> list[int]:
        """Stop active jobs of sessions unseen for ``heartbeat_timeout`` s; returns their handle ids.

        Probes are polled first: a probe that returns True counts as a sighting. The watchdog
        thread calls this every few seconds; tests call it directly.
        """
        timeout = self.heartbeat_timeout
        with self._lock:
            entries = [(hid, e) for hid, e in self._entries.items() if _is_active(e.job)]
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
                stale = self.clock() - e.last_seen > timeout and _is_active(e.job)
            if stale and e.job is not None:
                e.job.stop(
                    f"stopped at step {e.job.global_step}: its browser session was not seen for "
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
            with contextlib.suppress(Exception):  # keep watching whatever one job does
                self.sweep()
            with self._lock:
                if not self._entries:  # nothing to watch: end; open() starts a new one
                    self._watchdog = None
                    return

    def shutdown(self, stop_trainers: bool = True) -> None:
        """End the watchdog (and, by default, every job's worker). For tests and server exit."""
        self._shutdown.set()
        wd = self._watchdog
        if wd is not None:
            wd.join(timeout=5)
        if stop_trainers:
            with self._lock:
                entries = list(self._entries.values())
                self._entries.clear()
            for e in entries:  # ask every worker first, then wait for each: no child outlives the server
                _retire(e.job, "stopped: the server is shutting down", wait=False)
            for e in entries:
                if e.job is not None:
                    e.job.close(wait=True)


class TrainerHandle:
    """One session's slot in a :class:`TrainerRegistry`: owns at most one job at a time.

    When the handle is garbage-collected (its session ended) or :meth:`close` is called, its
    job is stopped and its worker ends. Nothing else may hold a strong reference to the handle,
    or the finalizer cannot fire: the job never refers back to it.
    """

    def __init__(self, registry: TrainerRegistry, handle_id: int) -> None:
        self.registry = registry
        self.id = handle_id
        self._finalizer = weakref.finalize(self, registry._close, handle_id)
        self._series: SeriesBuffer | None = None

    @property
    def trainer(self) -> LiveJob | None:
        """The session's current job (None before the first Start/Step or after Reset)."""
        return self.registry._get_job(self.id)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran or the handle was collected."""
        return not self._finalizer.alive

    def attach(self, job: LiveJob | None) -> None:
        """Make ``job`` this session's job; a previous one is stopped (it keeps its weights)."""
        self._series = None
        old = self.registry._set_job(self.id, job)
        if old is not None and old is not job:
            _retire(old)
        self.registry.rebalance()

    def start(self, job: LiveJob | None = None) -> None:
        """Start the job's worker, unless the server's cap is reached (:class:`CapacityError`).

        With ``job``, it replaces the current one (which is stopped) only if the cap allows,
        so a refused Start leaves the session's previous job and view untouched.
        """
        old = self.registry._run_capped(self.id, lambda j: j.start(), new=job)
        if job is not None:
            self._series = None
        if old is not None:
            _retire(old)

    def resume(self) -> None:
        """Resume a paused or stopped job, under the same cap as :meth:`start`."""
        self.registry._run_capped(self.id, lambda j: j.resume())

    def touch(self) -> None:
        """Record that the session is alive (the page calls this on every draw)."""
        self.registry._touch(self.id)

    def close(self) -> None:
        """Stop the job and leave the registry now (idempotent)."""
        self._finalizer()

    def series(self, history: History, max_points: int = 400) -> dict[str, np.ndarray]:
        """:func:`vae_core.live.plot_series` of the current job's history, converting only the
        records new since the last call (a long run costs the same per redraw as a short one)."""
        job = self.trainer
        buf = self._series
        if buf is None or buf.trainer_id != id(job) or buf.n > len(history.step):
            buf = self._series = SeriesBuffer(id(job))
        return buf.update(history, max_points)


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
