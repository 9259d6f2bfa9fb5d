"""Training: ``TrainConfig``, the ``Trainer`` (step, run, pause, resume, stop, history, NaN
guard, snapshots), the Train form's settings turned into configs, and the train CLI.

The :class:`Trainer` knows nothing about Streamlit or terminals and never prints. The CLI
(``python -m vae_core.train``) draws a tqdm bar from callbacks; the app reads a trainer only
through :meth:`Trainer.snapshot`, :meth:`Trainer.consistent_copy` and :meth:`Trainer.inspect_model`.

One step, as a straight line::

    idx -> data.batch -> model(x) -> elbo_terms -> loss.backward -> Adam.step -> history
"""

from __future__ import annotations

import argparse
import copy
import enum
import math
import shlex
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, TypeVar

import numpy as np
import torch

from .data import Dataset, binarize, content_hash, load_dataset
from .device import pick_device
from .elbo import SCALED_LIKELIHOODS, ELBOTerms, beta_schedule, elbo_terms
from .errors import N_, Msg
from .evaluate import DatasetMetrics, dataset_metrics
from .models import AE, LIKELIHOODS, VAE, ConfigError, ModelConfig, build_model, parse_hidden

__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainerState",
    "Objective",
    "elbo_objective",
    "check_fits",
    "Snapshot",
    "History",
    "TEST_METRIC_KEYS",
    "SETTING_LABELS",
    "configs_from_settings",
    "cli_command",
    "build_parser",
    "main",
]

T = TypeVar("T")


class TrainerState(str, enum.Enum):
    """The states of a :class:`Trainer` and of the Compare page's pair.

    Members are strings (``TrainerState.RUNNING == "running"``), so snapshots, checkpoint
    metadata and f-strings carry the plain value.
    """

    IDLE = "idle"  # built, no step taken by run()
    STARTING = "starting"  # Start pressed; a worker process is starting and has not yet taken a step
    RUNNING = "running"  # the background thread is stepping
    PAUSED = "paused"  # the thread waits; step() still works
    STOPPED = "stopped"  # stop() was called; the thread has ended or will after this step
    FINISHED = "finished"  # all epochs done
    DIVERGED = "diverged"  # a non-finite loss or gradient stopped training; last good weights kept
    FAILED = "failed"  # an unexpected error ended the thread; see message

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass
class TrainConfig:
    """Optimisation settings. Defaults are the pytorch/examples reference recipe."""

    dataset: str = "fashion-mnist"  # digits | fashion-mnist | mnist
    epochs: int = 10  # passes over the training split
    batch_size: int = 128  # examples per step
    lr: float = 1e-3  # Adam learning rate
    beta: float = 1.0  # KL weight (beta-VAE when > 1)
    warmup_steps: int = 0  # linear KL warm-up 0 -> beta over this many steps
    free_bits: float = 0.0  # nats per latent dim below which KL is not penalised
    seed: int = 0  # seeds init, batch order and the reparameterisation noise
    eval_every: int = 0  # steps between test evaluations; 0 = once per epoch
    eval_size: int = 10_000  # test images used by each evaluation (the first N)
    binarize: bool = False  # dynamic binarization: each step draws x ~ Bernoulli(pixels) anew

    def __post_init__(self) -> None:
        # the one validation: a TrainConfig that exists is valid, so a Trainer, a worker's handle and
        # the worker itself take it as it is (as ModelConfig does)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` with a clear message for any out-of-range value."""
        checks = [
            (1 <= self.epochs <= 10_000, f"epochs must be between 1 and 10000, got {self.epochs}"),
            (
                1 <= self.batch_size <= 65_536,
                f"batch size must be between 1 and 65536, got {self.batch_size}",
            ),
            (
                math.isfinite(self.lr) and 0 < self.lr <= 100,
                f"learning rate must be in (0, 100], got {self.lr}",
            ),
            (
                math.isfinite(self.beta) and 0 <= self.beta <= 1000,
                f"beta must be in [0, 1000], got {self.beta}",
            ),
            (
                0 <= self.warmup_steps <= 10_000_000,
                f"KL warm-up must be between 0 and 10000000 steps, got {self.warmup_steps}",
            ),
            (
                math.isfinite(self.free_bits) and 0 <= self.free_bits <= 100,
                f"free bits must be in [0, 100] nats, got {self.free_bits}",
            ),
            (0 <= self.seed < 2**63, f"seed must be a non-negative integer, got {self.seed}"),
            (self.eval_every >= 0, f"eval_every must be >= 0, got {self.eval_every}"),
            (self.eval_size >= 1, f"eval_size must be >= 1, got {self.eval_size}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-friendly values (what a checkpoint stores)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict`; unknown keys (from other versions) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _floats(values: Sequence[Any], n: int) -> np.ndarray:
    """float64 array (n,) of ``values``: None (a non-finite value after JSON) becomes nan; a column
    of the wrong length (a damaged record) becomes all nan."""
    if len(values) != n:
        return np.full(n, np.nan)
    return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64).reshape(n)


STEP_COLUMNS = ("step", "epoch", "loss", "recon", "kl", "kl_per_dim", "beta")  # History's per-step lists
EVAL_COLUMNS = (  # ... and its per-evaluation lists (eval_step first)
    "eval_step",
    "eval_epoch",
    "test_neg_elbo",
    "test_recon",
    "test_kl",
    "active_units",
    "low_kl_units",
    "throughput",
)


@dataclass
class History:
    """Columnar training records. Step lists share one index; eval lists share another."""

    step: list[int] = field(default_factory=list)
    epoch: list[float] = field(default_factory=list)  # fractional epoch at the step's end
    loss: list[float] = field(default_factory=list)  # objective, nats/example
    recon: list[float] = field(default_factory=list)  # E_q log p(x|z), nats/example (<= 0)
    kl: list[float] = field(default_factory=list)  # KL(q||p), nats/example
    kl_per_dim: list[list[float]] = field(default_factory=list)  # (z,) per step, nats/example
    beta: list[float] = field(default_factory=list)  # KL weight in force
    eval_step: list[int] = field(default_factory=list)
    eval_epoch: list[float] = field(default_factory=list)
    test_neg_elbo: list[float] = field(default_factory=list)  # nats/example
    test_recon: list[float] = field(default_factory=list)  # -E_q log p(x|z), nats/example (>= 0)
    test_kl: list[float] = field(default_factory=list)  # nats/example
    active_units: list[int] = field(default_factory=list)  # dims with Var_x[mu] above the threshold
    # dims whose test KL is under evaluate.LOW_KL_THRESHOLD nats/example (absent from histories saved before it)
    low_kl_units: list[int] = field(default_factory=list)
    throughput: list[float] = field(default_factory=list)  # training examples/s since the last eval

    def copy(self) -> History:
        """A copy that another thread can read while training continues."""
        return History(**{f.name: list(getattr(self, f.name)) for f in fields(self)})

    def to_dict(self) -> dict[str, list]:
        """The columns by name (the lists themselves, not copies)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        """Rebuild from :meth:`to_dict` (e.g. checkpoint metadata); unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: list(v or []) for k, v in d.items() if k in known})

    def arrays(self, lo: int = 0, hi: int | None = None, latent_dim: int = 0) -> dict[str, np.ndarray]:
        """Step records ``lo:hi`` as numpy arrays for charts: the one History -> arrays conversion.

        Keys, each of length S = hi - lo: ``step`` (int64), ``epoch``, ``loss`` (the beta-weighted
        objective), ``recon_cost`` (-E_q log p(x|z), nats/example, >= 0), ``kl`` (nats/example),
        ``beta``, and ``kl_per_dim`` (S, z) in nats/example. Values missing after a JSON round
        trip (None) are nan; ragged per-dim rows are padded with nan; without any per-dim row the
        width is ``latent_dim`` (0 for an AE).
        """
        n_all = len(self.step)
        hi = n_all if hi is None else min(hi, n_all)
        lo = min(max(0, lo), hi)
        s = hi - lo

        def col(values: list) -> np.ndarray:
            return _floats(values[lo:hi], s) if len(values) == n_all else np.full(s, np.nan)

        rows = self.kl_per_dim[lo:hi] if len(self.kl_per_dim) == n_all else []
        width = max((len(r) for r in rows), default=latent_dim)
        kpd = np.full((s, width), np.nan)
        for i, r in enumerate(rows):
            kpd[i, : len(r)] = [np.nan if v is None else v for v in r]
        return {
            "step": np.asarray(self.step[lo:hi], dtype=np.int64).reshape(s),
            "epoch": col(self.epoch),
            "loss": col(self.loss),
            "recon_cost": -col(self.recon),
            "kl": col(self.kl),
            "beta": col(self.beta),
            "kl_per_dim": kpd,
        }

    def eval_arrays(self) -> dict[str, np.ndarray]:
        """The evaluation records as numpy arrays, each of length E (missing values are nan).

        Keys: ``eval_step`` (int64), ``eval_epoch``, ``test_neg_elbo``, ``test_recon``, ``test_kl``
        (nats/example), ``active_units`` and ``low_kl_units`` (float, so that a missing value can be nan), ``throughput``
        (training examples/s).
        """
        e = len(self.eval_step)
        return {
            "eval_step": np.asarray(self.eval_step, dtype=np.int64).reshape(e),
            **{k: _floats(getattr(self, k), e) for k in EVAL_COLUMNS[1:]},
        }

    def last_eval(self) -> dict[str, float | None] | None:
        """The latest evaluation as a dict, or None before the first. ``low_kl_units`` is None in a history
        saved before that column existed."""
        if not self.eval_step:
            return None
        low = self.low_kl_units[-1] if len(self.low_kl_units) == len(self.eval_step) else None
        return {
            "step": self.eval_step[-1],
            "epoch": self.eval_epoch[-1],
            "test_neg_elbo": self.test_neg_elbo[-1],
            "test_recon": self.test_recon[-1],
            "test_kl": self.test_kl[-1],
            "active_units": self.active_units[-1],
            "low_kl_units": low,
            "throughput": self.throughput[-1],
        }


@dataclass
class Snapshot:
    """What a reader (the UI thread) gets: copies only, safe to keep."""

    state: TrainerState
    message: str
    step: int
    total_steps: int
    epoch: float
    examples_per_s: float  # recent training throughput
    eta_s: float  # seconds left at that throughput (nan when unknown)
    history: History


# What checkpoint metadata's "test_metrics" keeps of a DatasetMetrics (nats per example; n images).
TEST_METRIC_KEYS = ("neg_elbo", "recon", "kl", "active_units", "kl_per_dim", "n")


def _adam(model: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """torch.optim.Adam, fused (one kernel per step) where this torch supports it for the parameters' device."""
    params = list(model.parameters())
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # a device (or torch) without the fused kernel
        return torch.optim.Adam(params, lr=lr)


Callback = Callable[["Trainer", dict[str, Any]], None]

# What a step minimises: (model, x (B, D) float in [0, 1], beta, free bits in nats per latent dim,
# the generator of the noise eps) -> ELBOTerms, per example in nats. A lesson that trains a mistake on
# purpose (vae_core.pitfalls) passes its own; the trainer knows none of them.
Objective = Callable[[AE | VAE, torch.Tensor, float, float, torch.Generator], ELBOTerms]


def elbo_objective(
    model: AE | VAE, x: torch.Tensor, beta: float, free_bits: float, generator: torch.Generator
) -> ELBOTerms:
    """The default objective: the model's forward pass (z = mu + sigma eps) and :func:`vae_core.elbo.elbo_terms`
    under the model's own likelihood. ``x`` (B, D) in [0, 1]; per-example terms in nats."""
    logits, mu, logvar, _ = model(x, generator=generator)  # (B, D), (B, z), (B, z)
    cfg = model.config
    return elbo_terms(
        x,
        logits,
        mu,
        logvar,
        beta=beta,
        free_bits=free_bits,
        likelihood=cfg.likelihood,
        obs_std=cfg.obs_std,
    )


def check_fits(model_config: ModelConfig, ds: Dataset) -> None:
    """Raise :class:`ConfigError` unless ``ds`` has the model's pixels per image (D): the one such check."""
    if ds.dim != model_config.input_dim:
        raise ConfigError(
            N_("dataset {name!r} has {dim} pixels per image but the model expects {input_dim}"),
            name=ds.name,
            dim=ds.dim,
            input_dim=model_config.input_dim,
        )


# The divergence guard also stops a finite loss beyond this many nats per pixel and image: no real
# ELBO comes near it (a Gaussian likelihood with obs_std 0.1 costs at most about 50 per pixel), so
# only a broken objective, such as a flipped KL sign, or a runaway learning rate gets there.
LOSS_LIMIT_PER_PIXEL = 1e4


class Trainer:
    """Trains one AE or VAE on one in-memory dataset, with autograd and ``torch.optim.Adam``.

    Control from any thread: :meth:`start` (background thread), :meth:`pause`,
    :meth:`resume`, :meth:`stop`, :meth:`step` (one batch, also while paused), :meth:`join`.
    Read from any thread: :meth:`snapshot`, :meth:`model_copy`, :meth:`consistent_copy`,
    :meth:`inspect_model`. All model and optimizer work happens under one private lock, so a
    reader never sees a half-updated model.

    A non-finite loss or gradient puts the trainer in ``diverged`` with a message and
    restores the weights that produced the last finite loss. Callbacks (``on_step``,
    ``on_eval``) run in the training thread; the trainer itself never prints.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        dataset: Dataset | None = None,
        device: torch.device | str | None = None,
        model: AE | VAE | None = None,
        objective: Objective = elbo_objective,
    ) -> None:
        # the configs validated themselves when they were made (their __post_init__)
        self.model_config = model_config
        self.config = train_config
        self.objective = objective  # what each step minimises (a lesson passes its own)
        self.device = torch.device(device) if device is not None else pick_device()
        ds = dataset if dataset is not None else load_dataset(train_config.dataset)
        check_fits(model_config, ds)
        self.data = ds.to(self.device)
        torch.manual_seed(train_config.seed)  # init is seeded: same seed, same weights
        self.model = (model if model is not None else build_model(model_config)).to(self.device)
        self.optimizer = _adam(self.model, train_config.lr)
        self._gen = torch.Generator(device=self.device).manual_seed(train_config.seed + 1)  # eps noise
        self._perm_gen = torch.Generator().manual_seed(train_config.seed + 2)  # batch order, on CPU
        self._bin_gen = torch.Generator(device=self.device).manual_seed(
            train_config.seed + 4
        )  # binarization draws
        self._data_hash: str | None = None
        self._perm: torch.Tensor | None = None
        self._pos = 0
        n = self.data.x_train.shape[0]
        self.steps_per_epoch = max(1, math.ceil(n / train_config.batch_size))
        self.total_steps = self.steps_per_epoch * train_config.epochs
        self.global_step = 0
        self.history = History()
        self.callbacks: dict[str, list[Callback]] = {"on_step": [], "on_eval": []}
        self.state = TrainerState.IDLE
        self.message = ""
        self.last_eval: DatasetMetrics | None = None
        self._lock = (
            threading.RLock()
        )  # guards model, optimizer, history, state; never taken outside this class
        self._run_flag = threading.Event()  # set = may run; cleared = paused
        self._run_flag.set()
        self._stop_flag = threading.Event()
        self._thread: threading.Thread | None = None
        self._params = [p.detach() for p in self.model.parameters()]  # views of the weights, made once
        self._good = [p.clone() for p in self._params]  # the last weights that gave a finite loss
        self._tp_window: list[tuple[float, int]] = []  # (time, examples) for a running throughput
        self._since_eval = (time.perf_counter(), 0)
        self._train_time = 0.0

    # ------------------------------------------------------------------ control
    def add_callback(self, event: str, fn: Callback) -> None:
        """Register ``fn(trainer, record)`` for ``"on_step"`` or ``"on_eval"`` (runs in the training thread)."""
        self.callbacks[event].append(fn)

    def start(self) -> None:
        """Run the remaining steps in a background daemon thread (no-op if one is alive)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self.state in (TrainerState.FINISHED, TrainerState.DIVERGED):
                return
            self._stop_flag.clear()
            self._run_flag.set()
            self.state = TrainerState.RUNNING
            self._thread = threading.Thread(target=self._thread_main, name="vae-trainer", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        """Hold the background thread after its current step."""
        with self._lock:
            self._run_flag.clear()
            if self.state == TrainerState.RUNNING:
                self.state = TrainerState.PAUSED

    def resume(self) -> None:
        """Let a paused thread continue (or start one if none runs)."""
        with self._lock:
            if self.state == TrainerState.PAUSED and self._thread is not None and self._thread.is_alive():
                self.state = TrainerState.RUNNING
                self._run_flag.set()
                return
        if self.state in (TrainerState.PAUSED, TrainerState.IDLE, TrainerState.STOPPED):
            self.start()

    def stop(self, message: str | None = None) -> None:
        """Ask the thread to end after its current step; the model keeps its weights.

        ``message``, when given, is what snapshots say afterwards (e.g. why a watchdog stopped it).
        """
        if message is not None:
            self.message = message  # run() keeps a message set before it ends
        self._stop_flag.set()
        self._run_flag.set()  # wake a paused thread so it can exit
        with self._lock:
            if self.state in (TrainerState.RUNNING, TrainerState.PAUSED, TrainerState.IDLE):
                self.state = TrainerState.STOPPED

    def extend(self, epochs: int) -> bool:
        """Raise the run's length by ``epochs`` epochs: a finished run becomes a paused one of the SAME model
        (Step and Resume continue it). True if extended; a diverged or failed run is not."""
        with self._lock:
            if epochs < 1 or self.state in (TrainerState.DIVERGED, TrainerState.FAILED):
                return False
            self.config = replace(self.config, epochs=self.config.epochs + int(epochs))
            self.total_steps = self.steps_per_epoch * self.config.epochs
            if self.state == TrainerState.FINISHED:
                self.state, self.message = TrainerState.PAUSED, ""
            return True

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s for the background thread; True when no thread is alive afterwards."""
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True

    @property
    def is_alive(self) -> bool:
        """True while a background thread exists and has not ended."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def done(self) -> bool:
        """True once every step of every epoch has been taken."""
        return self.global_step >= self.total_steps

    def _thread_main(self) -> None:
        try:
            self.run()
        except Exception as exc:  # keep the app alive; report instead
            with self._lock:
                self.state = TrainerState.FAILED
                self.message = Msg(
                    N_("training failed: {kind}: {reason}"), kind=type(exc).__name__, reason=exc
                )

    def run(self, max_steps: int | None = None) -> None:
        """Step until finished, stopped, diverged, or ``max_steps`` more steps; honours pause.

        Runs in the calling thread (the CLI calls it directly; :meth:`start` calls it in a thread).
        """
        taken = 0
        if self.state == TrainerState.IDLE:
            self.state = TrainerState.RUNNING
        while not self._stop_flag.is_set():
            if not self._run_flag.is_set():
                self._run_flag.wait(0.1)
                continue
            if self.done or (max_steps is not None and taken >= max_steps):
                break
            rec = self.step()
            taken += 1
            if rec is None:  # diverged
                return
        with self._lock:
            if self.done and self.state not in (TrainerState.DIVERGED, TrainerState.FAILED):
                self.state = TrainerState.FINISHED
                self.message = Msg(
                    N_("finished {epochs} epoch(s), {steps} steps"),
                    epochs=self.config.epochs,
                    steps=self.global_step,
                )
            elif self._stop_flag.is_set():
                self.state = TrainerState.STOPPED
                self.message = self.message or Msg(N_("stopped at step {step}"), step=self.global_step)
            elif self.state == TrainerState.RUNNING:
                self.state = TrainerState.PAUSED if max_steps is not None else self.state

    # ------------------------------------------------------------------ one step
    def _next_indices(self) -> torch.Tensor:
        n = self.data.x_train.shape[0]
        if self._perm is None or self._pos >= n:
            self._perm = torch.randperm(n, generator=self._perm_gen).to(self.device)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.config.batch_size]
        self._pos += self.config.batch_size
        return idx

    def step(self) -> dict[str, Any] | None:
        """Train on one batch. Returns the step's record, or None if training is finished or diverged.

        The record: ``step``, ``epoch``, ``loss`` (beta-weighted objective), ``recon``
        (E_q log p(x|z)), ``kl``, ``beta``, ``kl_per_dim`` (z values); nats per example.
        """
        with self._lock:
            if self.done or self.state in (TrainerState.DIVERGED, TrainerState.FINISHED, TrainerState.FAILED):
                return None
            t0 = time.perf_counter()
            cfg = self.config
            if not self.model.training:  # train() walks every module: only when needed
                self.model.train()
            x = self.data.batch("train", self._next_indices())  # (B, D) float in [0, 1]
            if cfg.binarize:  # a fresh binary image each time: the Bernoulli is then a true likelihood
                x = binarize(x, self._bin_gen)
            beta = beta_schedule(self.global_step, cfg.beta, cfg.warmup_steps)
            t = self.objective(self.model, x, beta, cfg.free_bits, self._gen)  # per example, nats
            self.optimizer.zero_grad(set_to_none=True)
            t.loss.backward()
            stats = torch.stack([t.loss.detach(), t.recon.detach().mean(), t.kl.detach().mean()])
            loss, recon, kl = stats.tolist()  # one device sync per step
            if not math.isfinite(loss) or abs(loss) > LOSS_LIMIT_PER_PIXEL * x.shape[-1]:
                # A non-finite gradient with a finite loss shows up as a non-finite loss one
                # step later, and _good then still holds the weights before that update.
                self._diverge(loss)
                return None
            for keep, p in zip(self._good, self._params):  # these weights gave a finite loss
                keep.copy_(p)
            self.optimizer.step()
            self.global_step += 1
            h = self.history
            rec = {
                "step": self.global_step,
                "epoch": self.global_step / self.steps_per_epoch,
                "loss": loss,
                "recon": recon,
                "kl": kl,
                "beta": beta,
                "kl_per_dim": t.kl_per_dim.detach().mean(0).tolist(),
            }
            h.step.append(rec["step"])
            h.epoch.append(rec["epoch"])
            h.loss.append(loss)
            h.recon.append(recon)
            h.kl.append(kl)
            h.beta.append(beta)
            h.kl_per_dim.append(rec["kl_per_dim"])
            now = time.perf_counter()
            self._train_time += now - t0
            self._tp_window.append((now, x.shape[0]))
            if len(self._tp_window) > 50:
                self._tp_window.pop(0)
            self._since_eval = (self._since_eval[0], self._since_eval[1] + x.shape[0])
            eval_now = (
                (cfg.eval_every and self.global_step % cfg.eval_every == 0)
                or (self.global_step % self.steps_per_epoch == 0)
                or self.done
            )
        for fn in self.callbacks["on_step"]:
            fn(self, rec)
        if eval_now:
            self.evaluate()
        return rec

    def _diverge(self, loss: float) -> None:
        for keep, p in zip(self._good, self._params):
            p.copy_(keep)
        self.optimizer.zero_grad(set_to_none=True)
        self.state = TrainerState.DIVERGED
        common: dict[str, Any] = dict(
            step=self.global_step + 1, good=self.global_step, lr=self.config.lr, loss=loss
        )
        if not math.isfinite(loss):
            self.message = Msg(
                N_(
                    "training diverged at step {step}: the loss became {loss}. The last good weights "
                    "(step {good}) were kept. Lower the learning rate (now {lr:g}) and start again."
                ),
                **common,
            )
        else:
            self.message = Msg(
                N_(
                    "training diverged at step {step}: the loss reached {loss:.3g} nats per image, far "
                    "beyond any real ELBO (a flipped sign in the loss, or too high a learning rate). The last "
                    "good weights (step {good}) were kept. Lower the learning rate (now {lr:g}) and start again."
                ),
                **common,
            )
        self._stop_flag.set()

    def evaluate(self) -> DatasetMetrics:
        """Evaluate on the first ``eval_size`` test images (:func:`vae_core.evaluate.dataset_metrics`)
        and append to the history. Nats per example."""
        with self._lock:
            x = self.data.x_test[: self.config.eval_size]
            res = dataset_metrics(self.model, x, seed=self.config.seed, binarize=self.config.binarize)
            t_start, n_ex = self._since_eval
            now = time.perf_counter()
            tp = n_ex / max(now - t_start, 1e-9) if n_ex else float("nan")
            self._since_eval = (now, 0)
            h = self.history
            h.eval_step.append(self.global_step)
            h.eval_epoch.append(self.global_step / self.steps_per_epoch)
            h.test_neg_elbo.append(res.neg_elbo)
            h.test_recon.append(res.recon)
            h.test_kl.append(res.kl)
            h.active_units.append(res.active_units)
            h.low_kl_units.append(res.low_kl_units)
            h.throughput.append(tp)
            self.last_eval = res
            rec = h.last_eval() or {}
        for fn in self.callbacks["on_eval"]:
            fn(self, rec)
        return res

    # ------------------------------------------------------------------ reading
    def examples_per_second(self) -> float:
        """Recent training throughput, examples/s (nan before two steps)."""
        w = list(self._tp_window)
        if len(w) < 2:
            return float("nan")
        return sum(n for _, n in w[1:]) / max(w[-1][0] - w[0][0], 1e-9)

    def snapshot(self) -> Snapshot:
        """A consistent copy of state, progress and history (cheap; call it about once a second)."""
        with self._lock:
            eps = self.examples_per_second()
            left = (self.total_steps - self.global_step) * self.config.batch_size
            eta = left / eps if eps and math.isfinite(eps) and eps > 0 else float("nan")
            return Snapshot(
                state=self.state,
                message=self.message,
                step=self.global_step,
                total_steps=self.total_steps,
                epoch=self.global_step / self.steps_per_epoch,
                examples_per_s=eps,
                eta_s=eta,
                history=self.history.copy(),
            )

    def model_copy(self) -> AE | VAE:
        """A deep copy of the model in eval mode on CPU, taken between steps (safe while training)."""
        with self._lock:
            m = copy.deepcopy(self.model)
        return m.cpu().eval()

    def consistent_copy(self, command: str | None = None) -> tuple[AE | VAE, dict[str, Any]]:
        """(CPU model copy, :meth:`metadata`) taken at the same step, safe while training."""
        with self._lock:  # reentrant: no step runs between the copy and the metadata
            return self.model_copy(), self.metadata(command)

    def inspect_model(self, fn: Callable[[AE | VAE], T]) -> tuple[int, T]:
        """``(global_step, fn(model))`` with no step in between: read the live model without a copy.

        ``fn`` must not train or keep the model (it runs in the caller's thread and blocks
        training meanwhile); the model is left in whatever mode ``fn`` puts it (the next step
        switches it back to training).
        """
        with self._lock:
            return self.global_step, fn(self.model)

    def dataset_sha256(self) -> str:
        """sha256 of the training data (vae_core.data.content_hash), computed once: checkpoints record it,
        so a model trained on an uploaded dataset names exactly the data it needs."""
        if self._data_hash is None:
            self._data_hash = content_hash(self.data)
        return self._data_hash

    def metadata(self, command: str | None = None) -> dict[str, Any]:
        """Everything a checkpoint records besides the weights (JSON-friendly values)."""
        with self._lock:
            ev = self.last_eval
            if ev is None:
                metrics = None
            else:
                d = ev.to_dict()
                metrics = {k: d[k] for k in TEST_METRIC_KEYS}
            return {
                "model_config": self.model_config.to_dict(),
                "train_config": self.config.to_dict(),
                "dataset": self.data.name,
                "dataset_sha256": self.dataset_sha256(),
                "epochs": self.global_step / self.steps_per_epoch,
                "steps": self.global_step,
                "state": self.state.value,
                "history": self.history.to_dict(),
                "test_metrics": metrics,
                "command": command,
            }


# ---------------------------------------------------------------------- the Train form's settings
SETTING_LABELS = {
    "latent_dim": N_("Latent dimension"),
    "hidden": N_("Hidden sizes"),
    "beta": "β",
    "warmup_steps": N_("KL warm-up"),
    "free_bits": N_("Free bits"),
    "lr": N_("Learning rate"),
    "batch_size": N_("Batch size"),
    "epochs": N_("Epochs"),
    "seed": N_("Seed"),
}


def _sentence(exc: ConfigError) -> Msg:
    """A config error as one sentence of the form's messages: English capitalised, translatable as its template."""
    text = str(exc)
    return Msg(
        exc.template, english=text[:1].upper() + text[1:] + ("" if text.endswith(".") else "."), **exc.params
    )


def configs_from_settings(
    dataset: str,
    image_shape: tuple[int, int, int],
    kind: str,
    latent_dim: int | None,
    hidden: str | None,
    beta: float | None,
    warmup_steps: int | None,
    free_bits: float | None,
    lr: float | None,
    batch_size: int | None,
    epochs: int | None,
    seed: int | None,
    likelihood: str = "bernoulli",
    binarize: bool = False,
    obs_std: float = 0.1,
) -> tuple[ModelConfig | None, TrainConfig | None, list[str]]:
    """Both configs from form values, or ``(None, None, messages)`` with one clear message per bad field.

    ``image_shape`` is (C, H, W); ``kind`` is ``"vae"`` or ``"ae"`` (an AE ignores beta, warm-up and
    free bits); ``hidden`` is text read by :func:`vae_core.models.parse_hidden` (``"400"``,
    ``"512,256"``, ``"512-256"``, ``"512 256"``: the CLI's syntax); ``None`` means an empty field.
    ``likelihood`` is one of :data:`vae_core.models.LIKELIHOODS`; ``binarize`` turns on dynamic binarization;
    ``obs_std`` is the Gaussian's σ or the Laplace's scale b (pixel units; the other likelihoods ignore it).
    The checks are the configs' own (:meth:`ModelConfig.validate`, :meth:`TrainConfig.validate`),
    run field by field so that every bad value is named at once, not only the first.
    """
    values = dict(
        latent_dim=latent_dim,
        hidden=hidden,
        beta=beta,
        warmup_steps=warmup_steps,
        free_bits=free_bits,
        lr=lr,
        batch_size=batch_size,
        epochs=epochs,
        seed=seed,
    )
    errors: list[str] = [
        Msg(N_("{label} is empty: enter a value."), label=Msg(SETTING_LABELS[k]))
        for k, v in values.items()
        if v is None
    ]
    # The same test as `if errors`, field by field, so that the type checker sees them all set below.
    if (
        latent_dim is None
        or hidden is None
        or beta is None
        or warmup_steps is None
        or free_bits is None
        or lr is None
        or batch_size is None
        or epochs is None
        or seed is None
    ):
        return None, None, errors
    hid: tuple[int, ...] | None
    try:
        hid = parse_hidden(str(hidden))
    except ConfigError as exc:
        hid = None
        errors.append(_sentence(exc))
    ae = kind == "ae"
    tc: dict[str, Any] = dict(
        dataset=dataset,
        epochs=int(epochs),
        batch_size=int(batch_size),
        lr=float(lr),
        beta=0.0 if ae else float(beta),
        warmup_steps=0 if ae else int(warmup_steps),
        free_bits=0.0 if ae else float(free_bits),
        seed=int(seed),
        binarize=bool(binarize),
    )
    for k, val in tc.items():
        try:
            TrainConfig(**{k: val})  # validates itself: one field at a time, so each bad one is named
        except ConfigError as exc:
            errors.append(_sentence(exc))
    mc = None
    if hid is not None:
        try:
            mc = ModelConfig(
                kind=kind,
                input_dim=math.prod(image_shape),
                image_shape=image_shape,
                hidden=hid,
                latent_dim=int(latent_dim),
                likelihood=likelihood,
                obs_std=float(obs_std),
            )
        except ConfigError as exc:
            errors.append(_sentence(exc))
    return (None, None, errors) if errors else (mc, TrainConfig(**tc), [])


def cli_command(model_config: ModelConfig, train_config: TrainConfig) -> str:
    """The ``python -m vae_core.train`` command that trains the same model headless."""
    m, t = model_config, train_config
    return (
        f"python -m vae_core.train --dataset {t.dataset} --model {m.kind} --latent {m.latent_dim} "
        f"--hidden {','.join(str(h) for h in m.hidden)} --epochs {t.epochs} --batch-size {t.batch_size} "
        f"--lr {t.lr:g} --beta {t.beta:g} --warmup {t.warmup_steps} --free-bits {t.free_bits:g} --seed {t.seed}"
        + (f" --likelihood {m.likelihood}" if m.likelihood != "bernoulli" else "")
        + (f" --obs-std {m.obs_std:g}" if m.likelihood in SCALED_LIKELIHOODS else "")
        + (" --binarize" if t.binarize else "")
    )


# ---------------------------------------------------------------------- CLI
def _hidden_arg(text: str) -> tuple[int, ...]:
    """argparse type for ``--hidden``: :func:`vae_core.models.parse_hidden`, its error as argparse's."""
    try:
        return parse_hidden(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (shared with the checkpoint-regeneration script)."""
    p = argparse.ArgumentParser(
        prog="python -m vae_core.train", description="Train an AE or VAE and save a checkpoint."
    )
    p.add_argument(
        "--dataset", default="fashion-mnist", help="digits | fashion-mnist | mnist (default fashion-mnist)"
    )
    p.add_argument("--model", default="vae", choices=["vae", "ae"])
    p.add_argument("--latent", type=int, default=20, help="latent dimension, 1..64")
    p.add_argument(
        "--hidden", type=_hidden_arg, default=(400,), help="hidden widths, e.g. 400, 512,256 or 512-256"
    )
    p.add_argument(
        "--likelihood",
        default="bernoulli",
        choices=list(LIKELIHOODS),
        help="bernoulli (BCE), continuous_bernoulli (normalised on [0, 1]) or gaussian",
    )
    p.add_argument(
        "--binarize",
        action="store_true",
        help="dynamic binarization: train on x ~ Bernoulli(pixels), redrawn every step; evaluate on a "
        "binarized test set (NLL comparable with the binarized-MNIST literature)",
    )
    p.add_argument(
        "--obs-std",
        type=float,
        default=0.1,
        help="the likelihood's scale in pixel units: the Gaussian's std σ, or the Laplace's scale b (choosing it is "
        "choosing β: β = σ² for the Gaussian, β = b for the Laplace, against scale 1)",
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--warmup", type=int, default=0, help="KL warm-up steps")
    p.add_argument("--free-bits", type=float, default=0.0, help="nats per latent dim")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--data-root", default=None, help="local data folder (default $VAE_LAB_DATA or ./data)")
    p.add_argument("--no-download", action="store_true", help="never try to download a dataset")
    p.add_argument("--out", default=None, help="checkpoint path (.safetensors added if missing)")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: train with a tqdm bar, print test metrics, save a checkpoint. Returns the exit code."""
    from tqdm import tqdm

    from .checkpoint import save_checkpoint
    from .data import DatasetError
    from .device import DeviceError

    args = build_parser().parse_args(argv)
    command = "python -m vae_core.train " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    try:
        device = pick_device(args.device)
        ds = load_dataset(args.dataset, root=args.data_root, download=not args.no_download)
        mcfg = ModelConfig(
            kind=args.model,
            input_dim=ds.dim,
            image_shape=ds.image_shape,
            hidden=args.hidden,
            latent_dim=args.latent,
            likelihood=args.likelihood,
            obs_std=args.obs_std,
        )
        tcfg = TrainConfig(
            dataset=args.dataset,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            beta=args.beta,
            warmup_steps=args.warmup,
            free_bits=args.free_bits,
            seed=args.seed,
            binarize=args.binarize,
        )
        trainer = Trainer(mcfg, tcfg, dataset=ds, device=device)
    except (ConfigError, DatasetError, DeviceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = "dynamically binarized " if tcfg.binarize else ""
    print(f"{mcfg.describe()} on {data}{ds.name} ({ds.source}), device {device}, {trainer.total_steps} steps")
    bar = tqdm(total=trainer.total_steps, unit="step", dynamic_ncols=True)

    def on_step(tr: Trainer, rec: dict[str, Any]) -> None:
        bar.update(1)
        if rec["step"] % 20 == 0:
            bar.set_postfix(
                loss=f"{rec['loss']:.1f}", kl=f"{rec['kl']:.1f}", ex_s=f"{tr.examples_per_second():.0f}"
            )

    def on_eval(tr: Trainer, rec: dict[str, Any]) -> None:
        bar.write(
            f"epoch {rec['epoch']:.2f}: test -ELBO {rec['test_neg_elbo']:.2f} recon {rec['test_recon']:.2f} "
            f"KL {rec['test_kl']:.2f} nats/image, active units {rec['active_units']}, {rec['throughput']:.0f} ex/s"
        )

    trainer.add_callback("on_step", on_step)
    trainer.add_callback("on_eval", on_eval)
    try:
        trainer.run()
    except KeyboardInterrupt:
        trainer.stop()
        bar.write("interrupted: saving what was trained so far")
    bar.close()
    if trainer.state == TrainerState.DIVERGED:
        print(f"error: {trainer.message}", file=sys.stderr)
    if args.out:
        path = save_checkpoint(args.out, trainer.model, trainer.metadata(command))
        print(f"saved {path}")
    return 1 if trainer.state == TrainerState.DIVERGED else 0


if __name__ == "__main__":
    sys.exit(main())
