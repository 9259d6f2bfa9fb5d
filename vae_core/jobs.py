"""What a worker can be asked to run: one spec per kind of job, and the objectives a job may name.

A spec is the first thing a worker reads (inside :class:`vae_core.messages.Assign`), so it holds
only plain values: the configs, which validated themselves when they were made, and the *name* of
an objective, since a function does not cross a pipe. :func:`objective_named` turns the name into
the function a :class:`~vae_core.train.Trainer` minimises.

- :class:`TrainJob`: one model (the Train page).
- :class:`PairJob`: a VAE and an AE in lockstep from the same weights (Train an AE/VAE pair).
- :class:`PitfallJob`: a Pitfalls section's correct and mistaken runs, measured afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .data import Dataset
from .models import ModelConfig
from .pitfalls import MISTAKES, SECTIONS, mistaken_objective, pair_steps
from .train import Objective, TrainConfig, check_fits, elbo_objective

__all__ = ["OBJECTIVES", "objective_named", "TrainJob", "PairJob", "PitfallJob", "JobSpec"]

OBJECTIVES = ("elbo", *MISTAKES)  # the names a TrainJob may give: the ELBO, or a Pitfalls mistake


def objective_named(name: str) -> Objective:
    """The objective called ``name`` (one of :data:`OBJECTIVES`): the ELBO, or a lesson's mistake."""
    if name == "elbo":
        return elbo_objective
    if name in MISTAKES:
        return mistaken_objective(name)
    raise ValueError(f"unknown objective {name!r}; use one of {OBJECTIVES}")


def _steps(train_config: TrainConfig, ds: Dataset) -> int:
    """Training steps of ``train_config`` on ``ds``: ceil(N_train / batch) per epoch."""
    return max(1, math.ceil(ds.x_train.shape[0] / train_config.batch_size)) * train_config.epochs


@dataclass(frozen=True)
class _ModelsJob:
    """What a job that trains from a model config and a train config shares: its dataset and its check."""

    model_config: ModelConfig
    train_config: TrainConfig

    @property
    def dataset(self) -> str:
        """The name of the dataset it trains on."""
        return self.train_config.dataset

    def check(self, ds: Dataset) -> int:
        """Raise :class:`~vae_core.models.ConfigError` unless ``ds`` fits the model; else the steps it takes
        (a pair's two models move in lockstep: the steps of one)."""
        check_fits(self.model_config, ds)
        return _steps(self.train_config, ds)


@dataclass(frozen=True)
class TrainJob(_ModelsJob):
    """Train one AE or VAE (the Train page); ``objective`` names what it minimises."""

    objective: str = "elbo"  # a name from OBJECTIVES

    def __post_init__(self) -> None:
        objective_named(self.objective)  # an unknown name fails here, in the page's process


@dataclass(frozen=True)
class PairJob(_ModelsJob):
    """Train a VAE and an AE in lockstep (:class:`vae_core.pair.PairTrainer`); ``kind`` is set per model."""


@dataclass(frozen=True)
class PitfallJob:
    """Train a Pitfalls section's correct and mistaken runs (:func:`vae_core.pitfalls.run_pair`) and measure them."""

    section: str  # a key of vae_core.pitfalls.SECTIONS
    seed: int = 0

    def __post_init__(self) -> None:
        if self.section not in SECTIONS:
            raise ValueError(f"unknown section {self.section!r}; use one of {tuple(SECTIONS)}")

    @property
    def dataset(self) -> str:
        """Every section trains on the 8x8 digits."""
        return "digits"

    def check(self, ds: Dataset) -> int:
        """The steps of both runs together."""
        return pair_steps(ds)


JobSpec = TrainJob | PairJob | PitfallJob
