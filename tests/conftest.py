"""Shared fixtures: the digits dataset (always offline) and small trained models."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# As app.py does: tests run trainer threads, AppTest scripts and UMAP side by side, and spinning
# OpenMP waits make that many times slower on 2 cores. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

from vae_core.data import dataset_available, load_dataset  # noqa: E402
from vae_core.models import ModelConfig  # noqa: E402
from vae_core.train import TrainConfig, Trainer  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

needs_fashion = pytest.mark.skipif(
    not dataset_available("fashion-mnist"),
    reason="Fashion-MNIST files not on this machine (apt-get install dataset-fashion-mnist; .ci/run does this)",
)


def digits_config(kind: str = "vae", latent: int = 2, hidden: tuple[int, ...] = (64,)) -> ModelConfig:
    """A small model for the 8x8 digits (D=64)."""
    return ModelConfig(kind=kind, input_dim=64, image_shape=(1, 8, 8), hidden=hidden, latent_dim=latent)


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def trained_vae_z2(digits):
    """A digits VAE with a 2-D latent, trained for 60 epochs (~700 steps, about a second)."""
    tr = Trainer(digits_config("vae", 2, (64,)), TrainConfig(dataset="digits", epochs=60, seed=0), dataset=digits, device="cpu")
    tr.run()
    assert tr.state == "finished"
    return tr.model.eval()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module that runs trainer threads beside AppTest scripts.

    On 2 cores, several 2-thread OpenMP teams oversubscribe the CPU and run many times slower
    (measured 5-20x on a loaded machine). Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; the old count is restored after.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
