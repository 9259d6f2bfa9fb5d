"""Per-session trainers: a thread-safe registry that caps how many train at once and stops
the trainers of sessions that have ended. Knows nothing about Streamlit.

Each browser session owns one :class:`TrainerHandle` (the Train page keeps it in
``st.session_state``); the handle owns at most one :class:`~vae_core.train.Trainer` at a time.
Streamlit has no public session-end hook, so two mechanisms end a finished session's training:

1. **Finalizer.** When Streamlit drops a session, its state and the handle in it are garbage
   collected; ``weakref.finalize`` on the handle then stops its trainer and forgets it.
2. **Heartbeat.** The page touches the handle on every draw, and an optional liveness probe
   (for example "is this Streamlit session still connected?") is polled by a watchdog thread,
   which stops trainers not seen for ``heartbeat_timeout`` seconds.

A handle may also own anything with the trainer's control surface (:class:`Runnable`), such as
the Compare page's :class:`~vae_core.compare.PairTrainer`: its one thread counts as one trainer.

At most ``max_running`` trainers run at once (default 2 per CPU core, or ``$VAE_LAB_MAX_TRAINERS``);
one more start raises :class:`CapacityError`, whose message says what to do.

Also here: the small, UI-free pieces of the live view: the form's settings turned into configs
with one message per bad field, fixed preview images, reconstructions and prior samples decoded
in the training thread about once a second (no model copy, no second pool of torch threads),
and the history thinned for plotting.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch

from .data import Dataset
from .models import AE, VAE, ConfigError, ModelConfig
from .train import History, TrainConfig, Trainer, TrainerState

__all__ = [
    "CapacityError", "Runnable", "TrainerRegistry", "TrainerHandle", "Preview", "default_registry", "default_max_trainers",
    "env_max_trainers", "env_heartbeat_timeout", "fixed_examples", "prior_noise", "make_preview", "plot_series",
    "consistent_copy", "cli_command", "configs_from_settings", "ENV_MAX_TRAINERS", "ENV_TRAINER_TIMEOUT",
]

ENV_MAX_TRAINERS = "VAE_LAB_MAX_TRAINERS"      # most trainers running at once, server-wide
ENV_TRAINER_TIMEOUT = "VAE_LAB_TRAINER_TIMEOUT"  # seconds unseen before a session's trainer is stopped
DEFAULT_TIMEOUT_S = 120.0  # Streamlit keeps a disconnected session about this long (server.disconnectedSessionTTL)
ACTIVE_STATES = (TrainerState.RUNNING, TrainerState.PAUSED)


class Runnable(Protocol):
    """What the registry needs of a trainer: :class:`~vae_core.train.Trainer` has it, and so does
    :class:`~vae_core.compare.PairTrainer` (two trainers in one thread)."""

    state: str          # a TrainerState value
    message: str        # kept when set before stop()
    global_step: int

    @property
    def is_alive(self) -> bool: ...
    def start(self) -> None: ...
    def resume(self) -> None: ...
    def stop(self) -> None: ...


class CapacityError(RuntimeError):
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


def env_heartbeat_timeout() -> float:
    """``$VAE_LAB_TRAINER_TIMEOUT`` in seconds (0 turns the watchdog off), else 120 s."""
    raw = os.environ.get(ENV_TRAINER_TIMEOUT, "").strip()
    try:
        val = float(raw)
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return val if math.isfinite(val) and val >= 0 else DEFAULT_TIMEOUT_S


def _is_active(tr: Trainer | None) -> bool:
    """True while a trainer's thread is alive and running or paused (it holds a thread)."""
    return tr is not None and tr.is_alive and tr.state in ACTIVE_STATES


def _stop_with_message(tr: Trainer, message: str) -> None:
    """Stop ``tr`` after its current step; ``message`` is what its snapshot will say."""
    tr.message = message  # run() keeps a message set before it ends
    tr.stop()


@dataclass
class _Entry:
    trainer: Trainer | None
    last_seen: float                      # registry clock, seconds
    probe: Callable[[], bool] | None      # True while the owning session is known to be alive
    label: str


class TrainerRegistry:
    """All open handles of one process; enforces the running-trainer cap and runs the watchdog.

    ``max_running`` and ``heartbeat_timeout`` of ``None`` are read from the environment at each
    use (``$VAE_LAB_MAX_TRAINERS``, ``$VAE_LAB_TRAINER_TIMEOUT``), never cached at import.
    ``clock`` is injectable for tests (seconds, monotonic).
    """

    def __init__(
        self,
        max_running: int | None = None,
        heartbeat_timeout: float | None = None,
        check_interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_running
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

    # ---------------------------------------------------------------- handles
    def open(self, label: str = "", probe: Callable[[], bool] | None = None) -> "TrainerHandle":
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
        """Trainers whose thread is stepping now (paused ones do not count)."""
        with self._lock:
            return sum(
                1 for e in self._entries.values()
                if e.trainer is not None and e.trainer.is_alive and e.trainer.state == TrainerState.RUNNING
            )

    def capacity_message(self) -> str:
        """What one more Start is told when the cap is reached."""
        n = self.max_running
        return (
            f"{n} trainer{'s are' if n != 1 else ' is'} already running on this server (the limit); "
            f"wait for one to finish or pause, or ask the host to raise {ENV_MAX_TRAINERS}."
        )

    def _run_capped(self, hid: int, action: Callable[[Trainer], None], new: Trainer | None = None) -> Trainer | None:
        """Under the lock: refuse if the cap is reached, else (attach ``new`` and) run ``action``.

        Returns the trainer that ``new`` replaced, if any (the caller stops it).
        """
        with self._lock:
            e = self._entries.get(hid)
            if e is None:
                raise RuntimeError("this handle was closed")
            mine = e.trainer is not None and e.trainer.is_alive and e.trainer.state == TrainerState.RUNNING
            if not mine and self.running_count() >= self.max_running:
                raise CapacityError(self.capacity_message())
            old = None
            if new is not None:
                old, e.trainer = e.trainer, new
            if e.trainer is None:
                raise RuntimeError("this handle has no trainer (it was closed or reset)")
            e.last_seen = self.clock()
            action(e.trainer)  # Trainer.start/resume set RUNNING before returning, so the next count sees it
            return old if old is not new else None

    def _set_trainer(self, hid: int, trainer: Trainer | None) -> Trainer | None:
        with self._lock:
            e = self._entries.get(hid)
            if e is None:
                raise RuntimeError("this handle was closed")
            old, e.trainer = e.trainer, trainer
            e.last_seen = self.clock()
        return old

    def _get_trainer(self, hid: int) -> Trainer | None:
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
        if e is not None and e.trainer is not None and e.trainer.state in ACTIVE_STATES + (TrainerState.IDLE,):
            _stop_with_message(e.trainer, reason)

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
                _stop_with_message(
                    e.trainer, f"stopped at step {e.trainer.global_step}: its browser session was not seen for "
                    f"{timeout:g} s (the page was closed). Press Resume to continue."
                )
                stopped.append(hid)
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
            try:
                self.sweep()
            except Exception:  # keep watching whatever one trainer does
                pass
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
        if stop_trainers:
            with self._lock:
                ids = list(self._entries)
            for hid in ids:
                self._close(hid, reason="stopped: the server is shutting down")


class _PreviewBox:
    """The latest :class:`Preview` of one handle, and what the page wants previewed.

    While a trainer's thread runs, the preview is decoded *in that thread*, right after a step
    (:meth:`on_step`, a trainer callback): no model copy, no second pool of torch threads
    competing with training, and at most one small forward pass per interval. The trainer holds
    this box, never the handle, so the handle's finalizer can still fire.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latest: Preview | None = None
        self.x: torch.Tensor | None = None
        self.z: torch.Tensor | None = None
        self.interval = 1.0
        self.wanted_until = 0.0  # time.monotonic(); nobody watching after this: no decoding

    def want(self, x: torch.Tensor, z: torch.Tensor, interval: float) -> None:
        with self.lock:
            self.x, self.z, self.interval = x, z, interval
            self.wanted_until = time.monotonic() + max(3.0, 3 * interval)

    def compute(self, trainer: Trainer, model: AE | VAE | None = None) -> Preview:
        """Decode now from ``model`` (default: the trainer's live model, under its lock)."""
        x, z = self.x, self.z
        assert x is not None and z is not None
        if model is None:
            with trainer._lock:  # reentrant; no step runs while decoding
                step = trainer.global_step
                recon, samples = make_preview(trainer.model, x, z)
        else:
            step = trainer.global_step
            recon, samples = make_preview(model, x, z)
        p = Preview(step, recon, samples, time.monotonic(), id(trainer))
        with self.lock:
            self.latest = p
        return p

    def on_step(self, trainer: Trainer, record: dict) -> None:
        """Trainer callback (training thread): refresh the preview if wanted and due."""
        now = time.monotonic()
        p = self.latest
        if self.x is None or now > self.wanted_until:
            return
        if p is not None and p.trainer_id == id(trainer) and now - p.made_at < self.interval:
            return
        self.compute(trainer)


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
        self._box = _PreviewBox()
        self._series: _SeriesBuffer | None = None

    @property
    def trainer(self) -> Trainer | None:
        """The session's current trainer (None before the first Start/Step or after Reset)."""
        return self.registry._get_trainer(self.id)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def _hook(self, trainer: Trainer) -> None:
        # a PairTrainer (Compare page) has no callbacks and no live preview
        if isinstance(trainer, Trainer) and self._box.on_step not in trainer.callbacks["on_step"]:
            trainer.add_callback("on_step", self._box.on_step)
        self._series = None

    def attach(self, trainer: Trainer | None) -> None:
        """Make ``trainer`` this session's trainer; a previous one is stopped (it keeps its weights)."""
        if trainer is not None:
            self._hook(trainer)
        old = self.registry._set_trainer(self.id, trainer)
        if old is not None and old is not trainer and old.state in ACTIVE_STATES + (TrainerState.IDLE,):
            old.stop()

    def start(self, trainer: Trainer | None = None) -> None:
        """Start the trainer's thread, unless the server's cap is reached (:class:`CapacityError`).

        With ``trainer``, it replaces the current one (which is stopped) only if the cap allows,
        so a refused Start leaves the session's previous trainer and view untouched.
        """
        if trainer is not None:
            self._hook(trainer)
        old = self.registry._run_capped(self.id, lambda tr: tr.start(), new=trainer)
        if old is not None and old.state in ACTIVE_STATES + (TrainerState.IDLE,):
            old.stop()

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
        """:func:`plot_series` of the current trainer's history, converting only the records new
        since the last call (a long run costs the same per redraw as a short one)."""
        tr = self.trainer
        buf = self._series
        if buf is None or buf.trainer_id != id(tr) or buf.n > len(history.step):
            buf = self._series = _SeriesBuffer(id(tr))
        return buf.update(history, max_points)

    def preview(self, x_fixed: torch.Tensor, z_fixed: torch.Tensor, min_interval_s: float = 1.0) -> "Preview | None":
        """Reconstructions of ``x_fixed`` (N, D) and decodes of ``z_fixed`` (M, z) by recent weights.

        While the trainer's thread runs, this returns the preview that thread decoded after a
        step at most about ``min_interval_s`` ago (asking for it keeps it coming). Otherwise,
        or before the first one, it decodes here, and only if the step changed or
        ``min_interval_s`` passed: a page that redraws often costs training almost nothing.
        """
        tr = self.trainer
        if tr is None:
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
        return _DEFAULT


# ------------------------------------------------------------------ live-view data
@dataclass
class Preview:
    """Decoded images at one training step: pixel means in [0, 1]."""

    step: int
    recon: torch.Tensor    # (N, D) reconstructions of the fixed test images (decoded from mu)
    samples: torch.Tensor  # (M, D) decodes of the fixed prior draws z ~ N(0, I)
    made_at: float         # time.monotonic() when computed
    trainer_id: int        # id() of the trainer it came from


def fixed_examples(dataset: Dataset, n: int = 8) -> torch.Tensor:
    """``n`` fixed test images (N, D) uint8: the first of each class in turn, so classes differ."""
    y = dataset.y_test.cpu()
    picks: list[int] = []
    for c in range(int(y.max()) + 1 if len(y) else 0):
        where = (y == c).nonzero()
        if len(where):
            picks.append(int(where[0]))
        if len(picks) == n:
            break
    for i in range(len(y)):  # fewer classes than n: top up with the first unused images
        if len(picks) >= n:
            break
        if i not in picks:
            picks.append(i)
    return dataset.x_test[torch.tensor(picks, dtype=torch.long)].cpu()


def prior_noise(latent_dim: int, n: int = 16, seed: int = 0) -> torch.Tensor:
    """``n`` fixed draws z ~ N(0, I), shape (n, latent_dim), the same for every step."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, latent_dim, generator=g)


@torch.no_grad()
def make_preview(model: AE | VAE, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstructions (N, D), samples (M, D)) as pixel means in [0, 1], on CPU.

    ``x`` (N, D) uint8 or float in [0, 1] is reconstructed from its posterior mean (the AE's
    code); ``z`` (M, z) is decoded as is. For an AE, ``z`` is not from any prior it has.
    """
    model = model.eval()
    dev = next(model.parameters()).device
    xf = x.to(dev)
    xf = xf.float().div(255.0) if xf.dtype == torch.uint8 else xf.float()
    mu, _ = model.encode(xf)  # (N, z)
    return model.mean_image(mu).cpu(), model.mean_image(z.to(dev)).cpu()


def _columns(history: History, lo: int, hi: int) -> dict[str, np.ndarray]:
    """Step records lo:hi as float/int arrays; ``kl_per_dim`` is (hi - lo, z)."""
    kpd_rows = history.kl_per_dim[lo:hi]
    z = len(kpd_rows[0]) if kpd_rows else 0
    return {
        "step": np.asarray(history.step[lo:hi], dtype=np.int64),
        "recon_cost": -np.asarray(history.recon[lo:hi], dtype=np.float64),
        "kl": np.asarray(history.kl[lo:hi], dtype=np.float64),
        "loss": np.asarray(history.loss[lo:hi], dtype=np.float64),
        "beta": np.asarray(history.beta[lo:hi], dtype=np.float64),
        "kl_per_dim": np.asarray(kpd_rows, dtype=np.float64).reshape(hi - lo, z),
    }


def _bucket(cols: dict[str, np.ndarray], max_points: int) -> dict[str, np.ndarray]:
    """Average every column into at most ``max_points`` buckets; ``step`` keeps each bucket's last."""
    n = len(cols["step"])
    out = dict(cols)
    if n > max_points > 0:
        starts = np.linspace(0, n, max_points + 1).astype(np.int64)[:-1]
        counts = np.diff(np.append(starts, n))
        for k, v in cols.items():
            if k == "step":
                out[k] = v[starts + counts - 1]
            elif v.ndim == 2 and v.shape[1] == 0:
                out[k] = v[: len(starts)]
            else:
                out[k] = np.add.reduceat(v, starts, axis=0) / (counts[:, None] if v.ndim == 2 else counts)
    out["neg_elbo"] = out["recon_cost"] + out["kl"]
    return out


class _SeriesBuffer:
    """Growing numpy copies of one trainer's step records (see :meth:`TrainerHandle.series`)."""

    def __init__(self, trainer_id: int) -> None:
        self.trainer_id = trainer_id
        self.n = 0
        self.cols: dict[str, np.ndarray] | None = None

    def update(self, history: History, max_points: int) -> dict[str, np.ndarray]:
        n = len(history.step)
        new = _columns(history, self.n, n)
        if self.cols is None:
            self.cols = new
        elif n > self.n:
            self.cols = {k: np.concatenate([self.cols[k], new[k]]) for k in self.cols}
        self.n = n
        return _bucket(self.cols, max_points)


def plot_series(history: History, max_points: int = 400) -> dict[str, np.ndarray]:
    """The step records averaged into at most ``max_points`` buckets, as numpy arrays.

    Keys: ``step`` (last step of each bucket), ``recon_cost`` (-E_q log p(x|z), nats/example,
    >= 0), ``kl`` and ``neg_elbo`` (nats/example), ``loss`` (the beta-weighted objective),
    ``beta``, and ``kl_per_dim`` (P, z) in nats/example. Averaging also smooths per-batch noise,
    and keeps the figures small however long training runs.
    """
    return _bucket(_columns(history, 0, len(history.step)), max_points)


# ------------------------------------------------------------------ settings -> configs
SETTING_LABELS = {
    "latent_dim": "Latent dimension", "hidden": "Hidden sizes", "beta": "β", "warmup_steps": "KL warm-up",
    "free_bits": "Free bits", "lr": "Learning rate", "batch_size": "Batch size", "epochs": "Epochs", "seed": "Seed",
}


def _sentence(msg: str) -> str:
    return msg[:1].upper() + msg[1:] + ("" if msg.endswith(".") else ".")


def configs_from_settings(
    dataset: str, image_shape: tuple[int, int, int], kind: str, latent_dim: int | None, hidden: str | None,
    beta: float | None, warmup_steps: int | None, free_bits: float | None, lr: float | None,
    batch_size: int | None, epochs: int | None, seed: int | None,
) -> tuple[ModelConfig | None, TrainConfig | None, list[str]]:
    """Both configs from form values, or ``(None, None, messages)`` with one clear message per bad field.

    ``kind`` is ``"vae"`` or ``"ae"`` (an AE ignores beta, warm-up and free bits); ``hidden`` is
    text like ``"400"`` or ``"512,256"``; ``None`` means an empty field. The checks are the
    configs' own (:meth:`ModelConfig.validate`, :meth:`TrainConfig.validate`), run field by field
    so that every bad value is named at once, not only the first.
    """
    values = dict(latent_dim=latent_dim, hidden=hidden, beta=beta, warmup_steps=warmup_steps, free_bits=free_bits,
                  lr=lr, batch_size=batch_size, epochs=epochs, seed=seed)
    errors = [f"{SETTING_LABELS[k]} is empty: enter a value." for k, v in values.items() if v is None]
    if errors:
        return None, None, errors
    try:
        hid = tuple(int(t) for t in str(hidden).replace(";", ",").split(",") if t.strip())
    except ValueError:
        hid = None
        errors.append(f"Hidden sizes must be whole numbers like 400 or 512,256; got {hidden!r}.")
    ae = kind == "ae"
    tc = dict(dataset=dataset, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr),
              beta=0.0 if ae else float(beta), warmup_steps=0 if ae else int(warmup_steps),
              free_bits=0.0 if ae else float(free_bits), seed=int(seed))
    for k, val in tc.items():
        try:
            TrainConfig(**{k: val}).validate()
        except ConfigError as exc:
            errors.append(_sentence(str(exc)))
    mc = None
    if hid is not None:
        try:
            mc = ModelConfig(kind=kind, input_dim=math.prod(image_shape), image_shape=image_shape, hidden=hid,
                             latent_dim=int(latent_dim))
        except ConfigError as exc:
            errors.append(_sentence(str(exc)))
    return (None, None, errors) if errors else (mc, TrainConfig(**tc), [])


# ------------------------------------------------------------------ checkpoints of a live trainer
def consistent_copy(trainer: Trainer, command: str | None = None) -> tuple[AE | VAE, dict]:
    """(CPU model copy, checkpoint metadata) taken at the same step, safe while training."""
    with trainer._lock:  # reentrant: model_copy and metadata take it too; no step runs in between
        return trainer.model_copy(), trainer.metadata(command)


def cli_command(model_config: ModelConfig, train_config: TrainConfig) -> str:
    """The ``python -m vae_core.train`` command that trains the same model headless."""
    m, t = model_config, train_config
    return (
        f"python -m vae_core.train --dataset {t.dataset} --model {m.kind} --latent {m.latent_dim} "
        f"--hidden {','.join(str(h) for h in m.hidden)} --epochs {t.epochs} --batch-size {t.batch_size} "
        f"--lr {t.lr:g} --beta {t.beta:g} --warmup {t.warmup_steps} --free-bits {t.free_bits:g} --seed {t.seed}"
    )
