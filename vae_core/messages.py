"""The messages between a page's handle (vae_core.handle) and its worker (vae_core.worker).

Each is a frozen dataclass, pickled as it is over the worker's pipe (plain pickle: tensors travel
by value). The handle sends :class:`Assign` first, then commands; the worker answers with
:class:`Update` (pushed about every 0.5 s, and at once when its state changes), :class:`Answer`
(to an :class:`Ask`) and :class:`Failed`::

    handle ── Assign(job, …) · Control(seq, run|pause|stop) · SetThreads(n) · Ask(rid, step|weights) · Close ──► worker
    handle ◄── Update(state, progress, history since the last, preview, weights, result) · Answer(rid, …) · Failed ──
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from .data import Dataset
from .jobs import JobSpec
from .live import Preview
from .train import EVAL_COLUMNS, STEP_COLUMNS, History, TrainerState

__all__ = [
    "Assign",
    "Control",
    "SetThreads",
    "Ask",
    "Close",
    "HistoryDelta",
    "Weights",
    "Update",
    "Answer",
    "Failed",
]


# ---------------------------------------------------------------------- handle -> worker
@dataclass(frozen=True)
class Assign:
    """The worker's one job: the first message it reads."""

    job: JobSpec
    dataset: Dataset | None  # sent whole only when its name would not find it (a session's upload)
    data_root: str | None  # where the worker looks for a dataset by name (None: the default)
    device: str | None  # picked by the worker after the fork ("cpu", "cuda", None: the best there is)
    threads: int  # torch intra-op threads to train with, until a SetThreads


@dataclass(frozen=True)
class Control:
    """Run, pause, stop or extend training; ``seq`` orders controls (the worker acks the latest in its updates)."""

    seq: int
    verb: Literal["run", "pause", "stop", "extend"]
    message: str | None = None  # stop: what the state says afterwards (why it was stopped)
    epochs: int = 0  # extend: how many epochs the run grows by (a finished run continues, the same model)


@dataclass(frozen=True)
class SetThreads:
    """Train with ``n`` torch threads from the next step on (the registry shares the cores)."""

    n: int


@dataclass(frozen=True)
class Ask:
    """A question the handle waits for: one training step, or the weights now."""

    rid: int
    what: Literal["step", "weights"]


@dataclass(frozen=True)
class Close:
    """End the job and exit."""


# ---------------------------------------------------------------------- worker -> handle
@dataclass(frozen=True)
class HistoryDelta:
    """The records of one model's :class:`~vae_core.train.History` that the handle has not seen yet."""

    n: int  # step records the handle had before these
    e: int  # evaluation records the handle had before these
    columns: dict[str, list[Any]]  # STEP_COLUMNS and EVAL_COLUMNS: the new values

    @classmethod
    def since(cls, h: History, n: int, e: int) -> HistoryDelta:
        """The records of ``h`` after the first ``n`` steps and ``e`` evaluations."""
        cols = {k: getattr(h, k)[n:] for k in STEP_COLUMNS}
        cols.update({k: getattr(h, k)[e:] for k in EVAL_COLUMNS})
        return cls(n, e, cols)

    def apply(self, h: History) -> bool:
        """Append to ``h``; False (and nothing appended) when ``h`` is not where this delta follows on."""
        if self.n != len(h.step):
            return False
        for k in STEP_COLUMNS:
            getattr(h, k).extend(self.columns.get(k, []))
        if self.e == len(h.eval_step):
            for k in EVAL_COLUMNS:
                getattr(h, k).extend(self.columns.get(k, []))
        return True


@dataclass(frozen=True)
class Weights:
    """Every model of the job at one step: CPU state dicts and checkpoint metadata (history left out)."""

    step: int
    state_dicts: tuple[dict[str, torch.Tensor], ...]
    metas: tuple[dict[str, Any], ...]  # Trainer.metadata() without "history": the handle rebuilds it


@dataclass(frozen=True)
class Update:
    """Where the job is. Progress counts steps of the job (both runs of a Pitfalls section together)."""

    ack: int  # seq of the latest Control the worker has applied (its state answers that one)
    state: TrainerState
    message: str
    step: int
    total_steps: int
    epoch: float
    examples_per_s: float  # recent throughput (nan when unknown)
    eta_s: float  # seconds left at that throughput (nan when unknown)
    threads: int  # torch threads it trains with now
    history: tuple[HistoryDelta, ...] = ()  # one per model (none for a Pitfalls job)
    preview: Preview | None = (
        None  # new preview images (the Train page's model only; the handle keeps a capped history)
    )
    weights: Weights | None = None  # new weights (at most about once a second while training)
    extra: dict[str, float] = field(default_factory=dict)  # job-specific figures (the pair's two losses)
    result: Any = None  # a finished job's own result (a Pitfalls job: its PitfallPair), sent once


@dataclass(frozen=True)
class Answer:
    """The reply to an :class:`Ask`: an update that includes the weights, and a step's record."""

    rid: int
    update: Update
    record: dict[str, Any] | None = None  # Trainer.step()'s record (None: no step was taken)


@dataclass(frozen=True)
class Failed:
    """The job could not go on (it could not be built, or raised); the worker exits after this."""

    message: str
