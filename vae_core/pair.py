"""The Compare page's live pair: a VAE and an AE trained in lockstep on the same data, from the
same initial weights in every shared layer, with the same seed and batch order.

:class:`PairTrainer` has the control surface of a :class:`~vae_core.train.Trainer`
(start/stop/resume/join, ``state`` as a :class:`~vae_core.train.TrainerState`). The app runs it
in a worker process, as a :class:`~vae_core.jobs.PairJob` (vae_core.worker), never in the server.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch

from .data import Dataset
from .errors import N_, Msg
from .models import AE, VAE, ModelConfig, build_model
from .train import TrainConfig, Trainer, TrainerState

__all__ = ["build_pair", "live_pair_configs", "PairProgress", "PairTrainer"]


def build_pair(model_config: ModelConfig, seed: int) -> tuple[VAE, AE]:
    """A VAE and an AE with identical weights in every shared layer (encoder trunk, mu head, decoder).

    The VAE is built under ``torch.manual_seed(seed)`` and the AE copies its shared weights.
    (models.py builds the VAE's logvar head last, so the same seed alone already gives equal
    shared weights; the copy keeps that true whatever the build order.)
    """
    base = {k: v for k, v in model_config.to_dict().items() if k != "kind"}
    torch.manual_seed(seed)
    vae = build_model(ModelConfig(kind="vae", **base))
    ae = build_model(ModelConfig(kind="ae", **base))
    missing, _ = ae.load_state_dict(vae.state_dict(), strict=False)  # the VAE's logvar head is left out
    assert not missing, f"AE has layers the VAE lacks: {missing}"
    return vae, ae  # type: ignore[return-value]


def live_pair_configs(
    ds: Dataset, latent_dim: int, epochs: int, hidden: tuple[int, ...] | None = None, seed: int = 0
) -> tuple[ModelConfig, TrainConfig]:
    """The model and training configs of a live pair on ``ds`` (kind is set per model by :class:`PairTrainer`).

    Defaults: hidden (128,) for the 8x8 digits and (400,) for 28x28 images, batch 128, Adam 1e-3.
    """
    hid = hidden if hidden is not None else ((128,) if ds.dim <= 64 else (400,))
    mc = ModelConfig(
        kind="vae", input_dim=ds.dim, image_shape=ds.image_shape, hidden=hid, latent_dim=latent_dim
    )
    tc = TrainConfig(dataset=ds.name, epochs=epochs, batch_size=128, lr=1e-3, seed=seed, eval_size=10_000)
    return mc, tc


@dataclass
class PairProgress:
    """What the page draws while a pair trains (copies only)."""

    state: TrainerState  # idle | running | stopped | finished | failed
    step: int  # steps taken by each model (they move in lockstep)
    total_steps: int
    message: str
    vae_loss: float  # latest training objective, nats/image (nan before the first step)
    ae_loss: float

    @property
    def fraction(self) -> float:
        """Share of the steps done, in [0, 1]."""
        return min(1.0, self.step / max(1, self.total_steps))


class PairTrainer:
    """Trains a VAE and an AE in lockstep in one background thread: same data, seed, batch order.

    Both :class:`~vae_core.train.Trainer` objects get the same configs (apart from ``kind``)
    and the same initial weights (:func:`build_pair`); each samples its batches with the
    same seeded permutation, so batch k holds the same images for both. The thread
    alternates a few steps of each, so both are always at about the same step.
    Control and read from any thread: :meth:`start`, :meth:`stop`, :meth:`join`, :meth:`progress`.
    """

    CHUNK = 4  # steps of one model before switching to the other

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        dataset: Dataset,
        device: torch.device | str = "cpu",
        num_threads: int | None = 1,
    ) -> None:
        vae, ae = build_pair(model_config, train_config.seed)
        self.vae = Trainer(vae.config, train_config, dataset=dataset, device=device, model=vae)
        self.ae = Trainer(ae.config, train_config, dataset=dataset, device=device, model=ae)
        self.total_steps = self.vae.total_steps
        # torch intra-op threads of the training thread (OpenMP keeps them per thread, though
        # threads that start their first torch op meanwhile inherit it; restored at the end). One
        # is fastest for these small MLPs, and on a busy 2-core machine two threads spin-wait.
        # None = torch's default.
        self.num_threads = num_threads
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = TrainerState.IDLE
        self.message = ""

    def start(self) -> None:
        """Train in a daemon thread (no-op if one is alive or training has ended)."""
        if (self._thread is not None and self._thread.is_alive()) or self.state in (
            TrainerState.FINISHED,
            TrainerState.FAILED,
        ):
            return
        self._stop.clear()
        self.state, self.message = TrainerState.RUNNING, ""
        self._thread = threading.Thread(target=self._main, name="vae-pair-trainer", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        prev, n = torch.get_num_threads(), self.num_threads
        own = n is not None and threading.current_thread() is not threading.main_thread()
        if own and n is not None:
            torch.set_num_threads(n)
        try:
            self._loop()
        finally:
            if own:  # torch also keeps the value as the default for threads started meanwhile: put it back
                torch.set_num_threads(prev)

    def _loop(self) -> None:
        applied = torch.get_num_threads()
        try:
            while not self._stop.is_set():
                n = self.num_threads  # a worker's budget may change while it trains (vae_core.worker)
                if (
                    n is not None
                    and n != applied
                    and threading.current_thread() is not threading.main_thread()
                ):
                    torch.set_num_threads(n)
                    applied = n
                for tr in (self.vae, self.ae):
                    if not tr.done:
                        tr.run(max_steps=self.CHUNK)
                bad = [
                    t for t in (self.vae, self.ae) if t.state in (TrainerState.DIVERGED, TrainerState.FAILED)
                ]
                if bad:
                    self.state, self.message = TrainerState.FAILED, bad[0].message
                    return
                if self.vae.done and self.ae.done:
                    self.state = TrainerState.FINISHED
                    self.message = Msg(
                        N_("both trained for {epochs} epoch(s), {steps} steps each"),
                        epochs=self.vae.config.epochs,
                        steps=self.total_steps,
                    )
                    return
            # a message set by stop(message) (e.g. the registry's watchdog) is kept
            self.state = TrainerState.STOPPED
            self.message = self.message or Msg(N_("stopped at step {step}"), step=self.vae.global_step)
        except Exception as exc:  # keep the app alive; report instead
            self.state, self.message = (
                TrainerState.FAILED,
                Msg(N_("training failed: {kind}: {reason}"), kind=type(exc).__name__, reason=exc),
            )

    def stop(self, message: str | None = None) -> None:
        """Ask the thread to end after its current chunk; the models keep their weights.

        ``message``, when given, is what :meth:`progress` says afterwards.
        """
        if message is not None:
            self.message = message
        self._stop.set()

    def resume(self) -> None:
        """Continue a stopped pair from where it stopped (a new thread; no-op once finished)."""
        self.start()

    @property
    def global_step(self) -> int:
        """Steps taken by each model (they move in lockstep, up to one chunk apart)."""
        return min(self.vae.global_step, self.ae.global_step)

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s for the thread; True when no thread is alive afterwards."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def is_alive(self) -> bool:
        """True while the training thread exists and has not ended."""
        return self._thread is not None and self._thread.is_alive()

    def progress(self) -> PairProgress:
        """A consistent-enough copy of where training is (cheap; call it about once a second)."""
        sv, sa = self.vae.snapshot(), self.ae.snapshot()
        return PairProgress(
            state=self.state,
            step=min(sv.step, sa.step),
            total_steps=self.total_steps,
            message=self.message,
            vae_loss=sv.history.loss[-1] if sv.history.loss else float("nan"),
            ae_loss=sa.history.loss[-1] if sa.history.loss else float("nan"),
        )

    def models(self) -> tuple[VAE, AE]:
        """Eval-mode CPU copies (vae, ae), safe to use while training continues."""
        return self.vae.model_copy(), self.ae.model_copy()  # type: ignore[return-value]

    def metadata(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Checkpoint metadata of (vae, ae), as :meth:`Trainer.metadata` writes it."""
        return self.vae.metadata("live pair (Compare page)"), self.ae.metadata("live pair (Compare page)")
