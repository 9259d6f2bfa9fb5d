"""One trainer for the CLI and the app: step-able, pausable, readable from another thread.

The :class:`Trainer` knows nothing about Streamlit or terminals and never prints. The CLI
(``python -m vae_core.train``) draws a tqdm bar from callbacks; the app's Train page runs
:meth:`Trainer.start` (a plain thread) and draws from :meth:`Trainer.snapshot`.

One step, as a straight line::

    idx -> data.batch -> model(x) -> elbo_terms -> loss.backward -> optimizer.step -> history

For the lab's MLP models (ReLU or tanh, Bernoulli or Gaussian) the middle of that line is
:class:`vae_core.fastgrad.ClosedFormStep`: the same terms, with the gradient written out by hand
instead of recorded by autograd (about 1.1x faster an epoch on a 2-core CPU; checked against
autograd in tests/test_fastgrad.py). ``Trainer(..., closed_form=False)`` forces autograd.
"""

from __future__ import annotations

import argparse
import copy
import math
import shlex
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

import torch

from . import fastgrad
from .data import Dataset, load_dataset
from .device import pick_device
from .elbo import beta_schedule, elbo_terms
from .models import AE, VAE, ConfigError, ModelConfig, build_model

__all__ = ["TrainConfig", "Trainer", "TrainerState", "Snapshot", "evaluate_model", "main"]


class TrainerState:
    """The trainer's states (plain strings so snapshots stay JSON-friendly)."""

    IDLE = "idle"          # built, no step taken by run()
    RUNNING = "running"    # the background thread is stepping
    PAUSED = "paused"      # the thread waits; step() still works
    STOPPED = "stopped"    # stop() was called; the thread has ended or will after this step
    FINISHED = "finished"  # all epochs done
    DIVERGED = "diverged"  # a non-finite loss or gradient stopped training; last good weights kept
    FAILED = "failed"      # an unexpected error ended the thread; see message


@dataclass
class TrainConfig:
    """Optimisation settings. Defaults are the pytorch/examples reference recipe."""

    dataset: str = "fashion-mnist"  # digits | fashion-mnist | mnist
    epochs: int = 10                # passes over the training split
    batch_size: int = 128           # examples per step
    lr: float = 1e-3                # Adam learning rate
    beta: float = 1.0               # KL weight (beta-VAE when > 1)
    warmup_steps: int = 0           # linear KL warm-up 0 -> beta over this many steps
    free_bits: float = 0.0          # nats per latent dim below which KL is not penalised
    seed: int = 0                   # seeds init, batch order and the reparameterisation noise
    eval_every: int = 0             # steps between test evaluations; 0 = once per epoch
    eval_size: int = 10_000         # test images used by each evaluation (the first N)

    def validate(self) -> None:
        """Raise :class:`ConfigError` with a clear message for any out-of-range value."""
        checks = [
            (1 <= self.epochs <= 10_000, f"epochs must be between 1 and 10000, got {self.epochs}"),
            (1 <= self.batch_size <= 65_536, f"batch size must be between 1 and 65536, got {self.batch_size}"),
            (math.isfinite(self.lr) and 0 < self.lr <= 100, f"learning rate must be in (0, 100], got {self.lr}"),
            (math.isfinite(self.beta) and 0 <= self.beta <= 1000, f"beta must be in [0, 1000], got {self.beta}"),
            (0 <= self.warmup_steps <= 10_000_000, f"KL warm-up must be between 0 and 10000000 steps, got {self.warmup_steps}"),
            (math.isfinite(self.free_bits) and 0 <= self.free_bits <= 100, f"free bits must be in [0, 100] nats, got {self.free_bits}"),
            (0 <= self.seed < 2**63, f"seed must be a non-negative integer, got {self.seed}"),
            (self.eval_every >= 0, f"eval_every must be >= 0, got {self.eval_every}"),
            (self.eval_size >= 1, f"eval_size must be >= 1, got {self.eval_size}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class History:
    """Columnar training records. Step lists share one index; eval lists share another."""

    step: list[int] = field(default_factory=list)
    epoch: list[float] = field(default_factory=list)          # fractional epoch at the step's end
    loss: list[float] = field(default_factory=list)           # objective, nats/example
    recon: list[float] = field(default_factory=list)          # E_q log p(x|z), nats/example (<= 0)
    kl: list[float] = field(default_factory=list)             # KL(q||p), nats/example
    kl_per_dim: list[list[float]] = field(default_factory=list)  # (z,) per step, nats/example
    beta: list[float] = field(default_factory=list)           # KL weight in force
    eval_step: list[int] = field(default_factory=list)
    eval_epoch: list[float] = field(default_factory=list)
    test_neg_elbo: list[float] = field(default_factory=list)  # nats/example
    test_recon: list[float] = field(default_factory=list)     # -E_q log p(x|z), nats/example (>= 0)
    test_kl: list[float] = field(default_factory=list)        # nats/example
    active_units: list[int] = field(default_factory=list)     # dims with Cov_x[mu] > 0.01
    throughput: list[float] = field(default_factory=list)     # training examples/s since the last eval

    def copy(self) -> "History":
        """A copy that another thread can read while training continues."""
        return History(**{f.name: list(getattr(self, f.name)) for f in fields(self)})

    def to_dict(self) -> dict[str, list]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "History":
        known = {f.name for f in fields(cls)}
        return cls(**{k: list(v) for k, v in d.items() if k in known})

    def last_eval(self) -> dict[str, float] | None:
        """The latest evaluation as a dict, or None before the first."""
        if not self.eval_step:
            return None
        return {
            "step": self.eval_step[-1], "epoch": self.eval_epoch[-1], "test_neg_elbo": self.test_neg_elbo[-1],
            "test_recon": self.test_recon[-1], "test_kl": self.test_kl[-1],
            "active_units": self.active_units[-1], "throughput": self.throughput[-1],
        }


@dataclass
class Snapshot:
    """What a reader (the UI thread) gets: copies only, safe to keep."""

    state: str
    message: str
    step: int
    total_steps: int
    epoch: float
    examples_per_s: float   # recent training throughput
    eta_s: float            # seconds left at that throughput (nan when unknown)
    history: History


@dataclass
class EvalResult:
    """Test-set metrics, nats per example."""

    neg_elbo: float
    recon: float            # -E_q log p(x|z), reconstruction cost in nats (>= 0 for Bernoulli)
    kl: float
    kl_per_dim: list[float]
    active_units: int
    cov_mu: list[float]     # Cov_x[mu_j], the activity statistic per dim
    n: int


@torch.no_grad()
def evaluate_model(
    model: AE | VAE, x: torch.Tensor, batch_size: int = 1000, seed: int = 1234
) -> EvalResult:
    """One-sample test ELBO, reconstruction, KL and active units on x (N, D) uint8 or float.

    The reparameterisation noise is seeded, so the same model and data give the same
    numbers. For an AE, KL is 0 and -ELBO is the reconstruction cost. Nats per example.
    """
    was_training = model.training
    model.eval()
    cfg = model.config
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(seed)
    tot_recon = tot_kl = 0.0
    kl_d_sum = torch.zeros(cfg.latent_dim if model.is_vae else 0, dtype=torch.float64, device=dev)
    mus = []
    n = x.shape[0]
    for start in range(0, n, batch_size):
        xb = x[start : start + batch_size].to(dev)
        xb = xb.float().div_(255.0) if xb.dtype == torch.uint8 else xb.float()
        logits, mu, logvar, _ = model(xb, generator=gen)
        t = elbo_terms(xb, logits, mu, logvar, likelihood=cfg.likelihood, obs_std=cfg.obs_std)
        tot_recon += float(t.recon.sum())
        tot_kl += float(t.kl.sum())
        kl_d_sum += t.kl_per_dim.sum(0).double()
        mus.append(mu.double())
    if was_training:
        model.train()
    mu_all = torch.cat(mus)  # (N, z)
    cov = mu_all.var(0, unbiased=True) if n > 1 else torch.zeros(cfg.latent_dim, dtype=torch.float64)
    return EvalResult(
        neg_elbo=(-tot_recon + tot_kl) / n, recon=-tot_recon / n, kl=tot_kl / n,
        kl_per_dim=(kl_d_sum / n).tolist(), active_units=int((cov > 0.01).sum()), cov_mu=cov.tolist(), n=n,
    )


class LeanAdam:
    """Adam as torch.optim.Adam(fused=True) computes it, one fused kernel per step, minus its
    per-step Python bookkeeping (about 0.3 ms a step on a 2-core CPU, 8% of the reference step).

    Betas (0.9, 0.999), eps 1e-8, no weight decay: the reference recipe. Every parameter must
    have its ``.grad`` set when :meth:`step` runs. tests/test_train.py checks it against
    torch.optim.Adam bit for bit.
    """

    def __init__(self, params: list[torch.nn.Parameter], lr: float) -> None:
        self.params = [p.detach() for p in params]  # views: the kernel updates the parameters in place
        self._owners = list(params)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self._step = torch.zeros((), dtype=torch.float32, device=self.params[0].device)
        self._steps = [self._step] * len(self.params)  # one shared step count, as every tensor agrees
        self.lr = float(lr)

    def step(self) -> None:
        """One Adam update of every parameter from its ``.grad``."""
        grads = [p.grad for p in self._owners]
        self._step.add_(1)
        torch._fused_adam_(self.params, grads, self.exp_avg, self.exp_avg_sq, [], self._steps, lr=self.lr,
                           beta1=0.9, beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients (``set_to_none``) or zero them."""
        for p in self._owners:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()


def _adam(model: torch.nn.Module, lr: float, device: torch.device) -> LeanAdam | torch.optim.Adam:
    """Adam with one fused kernel per step where this torch has it for the device, else torch's Adam."""
    params = list(model.parameters())
    if device.type in ("cpu", "cuda") and hasattr(torch, "_fused_adam_") and params:
        return LeanAdam(params, lr)
    try:
        return torch.optim.Adam(params, lr=lr, fused=device.type in ("cpu", "cuda"))
    except (RuntimeError, TypeError):  # an unsupported device
        return torch.optim.Adam(params, lr=lr)


Callback = Callable[["Trainer", dict[str, Any]], None]


class Trainer:
    """Trains one AE or VAE on one in-memory dataset.

    Control from any thread: :meth:`start` (background thread), :meth:`pause`,
    :meth:`resume`, :meth:`stop`, :meth:`step` (one batch, also while paused), :meth:`join`.
    Read from any thread: :meth:`snapshot`. All model and optimizer work happens under one
    lock, so a reader never sees a half-updated model.

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
        closed_form: bool | None = None,
    ) -> None:
        train_config.validate()
        model_config.validate()
        self.model_config = model_config
        self.config = train_config
        self.device = torch.device(device) if device is not None else pick_device()
        ds = dataset if dataset is not None else load_dataset(train_config.dataset)
        if ds.dim != model_config.input_dim:
            raise ConfigError(
                f"dataset {ds.name!r} has {ds.dim} pixels per image but the model expects {model_config.input_dim}"
            )
        self.data = ds.to(self.device)
        torch.manual_seed(train_config.seed)  # init is seeded: same seed, same weights
        self.model = (model if model is not None else build_model(model_config)).to(self.device)
        self.optimizer = _adam(self.model, train_config.lr, self.device)
        # The loss and its gradient in closed form (vae_core.fastgrad) where the model allows it:
        # the same numbers as elbo_terms + autograd, about 1.1x faster. None = on the CPU when supported.
        use = fastgrad.preferred(self.model, self.device) if closed_form is None else closed_form
        self._closed = fastgrad.ClosedFormStep(self.model) if use else None
        self._gen = torch.Generator(device=self.device).manual_seed(train_config.seed + 1)  # eps noise
        self._perm_gen = torch.Generator().manual_seed(train_config.seed + 2)  # batch order, on CPU
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
        self.last_eval: EvalResult | None = None
        self._lock = threading.RLock()  # guards model, optimizer, history, state
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

    def stop(self) -> None:
        """Ask the thread to end after its current step; the model keeps its weights."""
        self._stop_flag.set()
        self._run_flag.set()  # wake a paused thread so it can exit
        with self._lock:
            if self.state in (TrainerState.RUNNING, TrainerState.PAUSED, TrainerState.IDLE):
                self.state = TrainerState.STOPPED

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the background thread; True when no thread is alive afterwards."""
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
    def closed_form(self) -> bool:
        """True when steps use vae_core.fastgrad's closed-form gradient instead of autograd."""
        return self._closed is not None

    @property
    def done(self) -> bool:
        return self.global_step >= self.total_steps

    def _thread_main(self) -> None:
        try:
            self.run()
        except Exception as exc:  # keep the app alive; report instead
            with self._lock:
                self.state = TrainerState.FAILED
                self.message = f"training failed: {type(exc).__name__}: {exc}"

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
                self.message = f"finished {self.config.epochs} epoch(s), {self.global_step} steps"
            elif self._stop_flag.is_set():
                self.state = TrainerState.STOPPED
                self.message = self.message or f"stopped at step {self.global_step}"
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
        """Train on one batch. Returns the step's record, or None if training is finished or diverged."""
        with self._lock:
            if self.done or self.state in (TrainerState.DIVERGED, TrainerState.FINISHED, TrainerState.FAILED):
                return None
            t0 = time.perf_counter()
            cfg = self.config
            if not self.model.training:  # train() walks every module: only when needed
                self.model.train()
            x = self.data.batch("train", self._next_indices())  # (B, D) float in [0, 1]
            beta = beta_schedule(self.global_step, cfg.beta, cfg.warmup_steps)
            if self._closed is not None:  # fills every p.grad; no graph
                t = self._closed(x, beta=beta, free_bits=cfg.free_bits, generator=self._gen)
            else:
                logits, mu, logvar, _ = self.model(x, generator=self._gen)
                t = elbo_terms(
                    x, logits, mu, logvar, beta=beta, free_bits=cfg.free_bits,
                    likelihood=self.model_config.likelihood, obs_std=self.model_config.obs_std,
                )
                self.optimizer.zero_grad(set_to_none=True)
                t.loss.backward()
            stats = torch.stack([t.loss.detach(), t.recon.detach().mean(), t.kl.detach().mean()])
            loss, recon, kl = stats.tolist()  # one device sync per step
            if not math.isfinite(loss):
                # A non-finite gradient with a finite loss shows up as a non-finite loss one
                # step later, and _good then still holds the weights before that update.
                self._diverge(loss)
                return None
            torch._foreach_copy_(self._good, self._params)  # these weights gave a finite loss
            self.optimizer.step()
            self.global_step += 1
            h = self.history
            rec = {
                "step": self.global_step, "epoch": self.global_step / self.steps_per_epoch, "loss": loss,
                "recon": recon, "kl": kl, "beta": beta,
                "kl_per_dim": t.kl_per_dim.detach().mean(0).tolist(),
            }
            h.step.append(rec["step"]); h.epoch.append(rec["epoch"]); h.loss.append(loss)
            h.recon.append(recon); h.kl.append(kl); h.beta.append(beta); h.kl_per_dim.append(rec["kl_per_dim"])
            now = time.perf_counter()
            self._train_time += now - t0
            self._tp_window.append((now, x.shape[0]))
            if len(self._tp_window) > 50:
                self._tp_window.pop(0)
            self._since_eval = (self._since_eval[0], self._since_eval[1] + x.shape[0])
            eval_now = (cfg.eval_every and self.global_step % cfg.eval_every == 0) or (
                self.global_step % self.steps_per_epoch == 0
            ) or self.done
        for fn in self.callbacks["on_step"]:
            fn(self, rec)
        if eval_now:
            self.evaluate()
        return rec

    def _diverge(self, loss: float) -> None:
        with torch.no_grad():
            for keep, p in zip(self._good, self.model.parameters()):
                p.copy_(keep)
        self.optimizer.zero_grad(set_to_none=True)
        self.state = TrainerState.DIVERGED
        self.message = (
            f"training diverged at step {self.global_step + 1}: the loss became {loss}. "
            f"The last good weights (step {self.global_step}) were kept. Lower the learning rate "
            f"(now {self.config.lr:g}) and start again."
        )
        self._stop_flag.set()

    def evaluate(self) -> EvalResult:
        """Evaluate on the first ``eval_size`` test images and append to the history."""
        with self._lock:
            x = self.data.x_test[: self.config.eval_size]
            res = evaluate_model(self.model, x, seed=self.config.seed + 3)
            t_start, n_ex = self._since_eval
            now = time.perf_counter()
            tp = n_ex / max(now - t_start, 1e-9) if n_ex else float("nan")
            self._since_eval = (now, 0)
            h = self.history
            h.eval_step.append(self.global_step); h.eval_epoch.append(self.global_step / self.steps_per_epoch)
            h.test_neg_elbo.append(res.neg_elbo); h.test_recon.append(res.recon); h.test_kl.append(res.kl)
            h.active_units.append(res.active_units); h.throughput.append(tp)
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
                state=self.state, message=self.message, step=self.global_step, total_steps=self.total_steps,
                epoch=self.global_step / self.steps_per_epoch, examples_per_s=eps, eta_s=eta,
                history=self.history.copy(),
            )

    def model_copy(self) -> AE | VAE:
        """A deep copy of the model in eval mode on CPU, taken under the lock (safe while training)."""
        with self._lock:
            m = copy.deepcopy(self.model)
        return m.cpu().eval()

    def metadata(self, command: str | None = None) -> dict[str, Any]:
        """Everything a checkpoint records besides the weights."""
        with self._lock:
            ev = self.last_eval
            return {
                "model_config": self.model_config.to_dict(),
                "train_config": self.config.to_dict(),
                "dataset": self.data.name,
                "epochs": self.global_step / self.steps_per_epoch,
                "steps": self.global_step,
                "state": self.state,
                "history": self.history.to_dict(),
                "test_metrics": None if ev is None else {
                    "neg_elbo": ev.neg_elbo, "recon": ev.recon, "kl": ev.kl, "active_units": ev.active_units,
                    "kl_per_dim": ev.kl_per_dim, "n": ev.n,
                },
                "command": command,
            }


# ---------------------------------------------------------------------- CLI
def _parse_hidden(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.replace("-", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"hidden sizes must be integers like 400 or 512,256, got {text!r}") from None
    return vals


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (shared with the checkpoint-regeneration script)."""
    p = argparse.ArgumentParser(prog="python -m vae_core.train", description="Train an AE or VAE and save a checkpoint.")
    p.add_argument("--dataset", default="fashion-mnist", help="digits | fashion-mnist | mnist (default fashion-mnist)")
    p.add_argument("--model", default="vae", choices=["vae", "ae"])
    p.add_argument("--latent", type=int, default=20, help="latent dimension, 1..64")
    p.add_argument("--hidden", type=_parse_hidden, default=(400,), help="hidden widths, e.g. 400 or 512,256")
    p.add_argument("--likelihood", default="bernoulli", choices=["bernoulli", "gaussian"])
    p.add_argument("--obs-std", type=float, default=0.1, help="std of the Gaussian likelihood")
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
    p.add_argument("--autograd", action="store_true",
                   help="compute gradients with autograd instead of the closed form (same numbers, slower on CPU)")
    p.add_argument("--out", default=None, help="checkpoint path (.safetensors added if missing)")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: train with a tqdm bar, print test metrics, save a checkpoint."""
    from tqdm import tqdm

    from .checkpoint import save_checkpoint
    from .data import DatasetError
    from .device import DeviceError

    args = build_parser().parse_args(argv)
    command = "python -m vae_core.train " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    try:
        device = pick_device(args.device)
        ds = load_dataset(args.dataset, root=args.data_root, download=not args.no_download)
        mcfg = ModelConfig(
            kind=args.model, input_dim=ds.dim, image_shape=ds.image_shape, hidden=args.hidden,
            latent_dim=args.latent, likelihood=args.likelihood, obs_std=args.obs_std,
        )
        tcfg = TrainConfig(
            dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, beta=args.beta,
            warmup_steps=args.warmup, free_bits=args.free_bits, seed=args.seed,
        )
        trainer = Trainer(mcfg, tcfg, dataset=ds, device=device, closed_form=False if args.autograd else None)
    except (ConfigError, DatasetError, DeviceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    grads = "closed-form gradients" if trainer.closed_form else "autograd"
    print(f"{mcfg.describe()} on {ds.name} ({ds.source}), device {device}, {grads}, {trainer.total_steps} steps")
    bar = tqdm(total=trainer.total_steps, unit="step", dynamic_ncols=True)

    def on_step(tr: Trainer, rec: dict[str, Any]) -> None:
        bar.update(1)
        if rec["step"] % 20 == 0:
            bar.set_postfix(loss=f"{rec['loss']:.1f}", kl=f"{rec['kl']:.1f}", ex_s=f"{tr.examples_per_second():.0f}")

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
