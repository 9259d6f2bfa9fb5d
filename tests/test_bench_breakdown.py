"""bench/train_step_breakdown.py compares the trainer with a hand-written step: that comparison
only means something if the hand-derived backward equals autograd's. Checked here on random
weights and a random uint8 batch (no dataset needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

from vae_core.models import ModelConfig, build_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _bench():
    spec = importlib.util.spec_from_file_location(
        "train_step_breakdown", ROOT / "bench" / "train_step_breakdown.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("seed", [0, 1])
def test_hand_written_backward_matches_autograd(seed: int) -> None:
    mod = _bench()
    torch.manual_seed(seed)
    model = build_model(ModelConfig(hidden=(mod.H,), latent_dim=mod.Z))
    xb = torch.randint(0, 256, (mod.B, mod.D), dtype=torch.uint8)
    assert mod.check_hand_step(model, torch.device("cpu"), xb) < 1e-5


def test_the_check_catches_a_wrong_gradient(monkeypatch) -> None:
    mod = _bench()
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=(mod.H,), latent_dim=mod.Z))
    xb = torch.randint(0, 256, (mod.B, mod.D), dtype=torch.uint8)
    real = mod.HandStep.grads

    def wrong(self, xb, eps):  # forget the KL's pull on mu: the check must see it
        out = real(self, xb, eps)
        self.g[3][: mod.Z] += 0.5
        return out

    monkeypatch.setattr(mod.HandStep, "grads", wrong)
    assert mod.check_hand_step(model, torch.device("cpu"), xb) > 1e-3
