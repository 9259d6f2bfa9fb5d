"""vae_core.fastgrad: the closed-form loss and gradient equal elbo_terms + autograd, in every
supported case, and the trainer uses it (or autograd) with the same results."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

from vae_core.data import load_dataset  # noqa: E402
from vae_core.elbo import elbo_terms  # noqa: E402
from vae_core.fastgrad import ClosedFormStep, preferred, supports  # noqa: E402
from vae_core.models import ModelConfig, build_model  # noqa: E402
from vae_core.train import TrainConfig, Trainer  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


def autograd_terms(model, x, beta, free_bits, seed):
    gen = torch.Generator().manual_seed(seed)
    model.zero_grad(set_to_none=True)
    logits, mu, logvar, _ = model(x, generator=gen)
    t = elbo_terms(x, logits, mu, logvar, beta=beta, free_bits=free_bits,
                   likelihood=model.config.likelihood, obs_std=model.config.obs_std)
    t.loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    return t, grads


def closed_form_terms(model, x, beta, free_bits, seed):
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = None
    t = ClosedFormStep(model)(x, beta=beta, free_bits=free_bits, generator=gen)
    return t, [p.grad.clone() for p in model.parameters()]


CASES = [
    dict(kind="vae", hidden=(400,), latent_dim=20),                       # the reference model
    dict(kind="vae", hidden=(64, 32), latent_dim=2),
    dict(kind="vae", hidden=(48,), latent_dim=5, activation="tanh"),
    dict(kind="vae", hidden=(48,), latent_dim=3, likelihood="gaussian", obs_std=0.3),
    dict(kind="vae", hidden=(), latent_dim=4),                            # no hidden layer
    dict(kind="ae", hidden=(64, 32), latent_dim=2),
    dict(kind="ae", hidden=(48,), latent_dim=6, activation="tanh", likelihood="gaussian"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()))
@pytest.mark.parametrize("beta,free_bits", [(1.0, 0.0), (0.3, 0.0), (4.0, 0.05)])
def test_terms_and_gradients_match_autograd(case, beta, free_bits) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(input_dim=64, image_shape=(1, 8, 8), **case)
    model = build_model(cfg)
    x = torch.rand(32, 64)
    x[:4] = (x[:4] > 0.5).float()  # binary and grey pixels alike
    want, gw = autograd_terms(model, x, beta, free_bits, seed=7)
    got, gg = closed_form_terms(model, x, beta, free_bits, seed=7)
    for name in ("recon", "kl_per_dim", "kl", "elbo", "loss"):
        a, b = getattr(want, name).detach(), getattr(got, name)
        assert a.shape == b.shape, name
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-4), (name, float((a - b).abs().max()))
    scale = max(float(g.abs().max()) for g in gw)
    for (pname, _), a, b in zip(model.named_parameters(), gw, gg):
        assert float((a - b).abs().max()) <= 1e-5 * scale + 1e-7, pname


def test_free_bits_stop_the_kl_gradient_of_dims_below_the_floor() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(input_dim=64, image_shape=(1, 8, 8), hidden=(16,), latent_dim=4))
    x = torch.rand(16, 64)
    t, _ = closed_form_terms(model, x, beta=1.0, free_bits=1e6, seed=1)  # every dim below the floor
    _, g_none = closed_form_terms(model, x, beta=0.0, free_bits=0.0, seed=1)  # no KL at all
    _, g_fb = closed_form_terms(model, x, beta=1.0, free_bits=1e6, seed=1)
    for a, b in zip(g_none, g_fb):
        assert torch.allclose(a, b, atol=1e-7)
    assert float(t.loss) > 1e6  # the floor still counts in the loss value


def test_extreme_logits_stay_finite_and_exact() -> None:
    """softplus via max(s, 1-s): logits of +-60 must give BCE's values, not inf or nan."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(input_dim=64, image_shape=(1, 8, 8), hidden=(16,), latent_dim=2))
    with torch.no_grad():
        model.decoder.net[-1].bias.copy_(torch.linspace(-60, 60, 64))
    x = torch.rand(8, 64)
    want, _ = autograd_terms(model, x, 1.0, 0.0, seed=3)
    got, _ = closed_form_terms(model, x, 1.0, 0.0, seed=3)
    assert torch.isfinite(got.recon).all()
    assert torch.allclose(want.recon.detach(), got.recon, rtol=1e-5)


def test_unsupported_models_fall_back() -> None:
    gelu = build_model(ModelConfig(input_dim=64, image_shape=(1, 8, 8), hidden=(16,), latent_dim=2, activation="gelu"))
    relu = build_model(ModelConfig(input_dim=64, image_shape=(1, 8, 8), hidden=(16,), latent_dim=2))
    assert not supports(gelu, CPU) and supports(relu, CPU)
    assert not supports(relu.double(), CPU)
    assert not supports(relu.float(), torch.device("mps"))
    assert supports(relu, torch.device("cuda")) and not preferred(relu, torch.device("cuda"))  # autograd on GPUs
    assert preferred(relu, CPU) and not preferred(gelu, CPU)


@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_trainer_gives_the_same_run_either_way(kind) -> None:
    ds = load_dataset("digits")
    mc = ModelConfig(kind=kind, input_dim=ds.dim, image_shape=ds.image_shape, hidden=(32,), latent_dim=3)
    tc = TrainConfig(dataset="digits", epochs=1, batch_size=64, seed=3, eval_size=100, free_bits=0.02)
    fast = Trainer(mc, tc, dataset=ds, device="cpu")
    slow = Trainer(mc, tc, dataset=ds, device="cpu", closed_form=False)
    assert fast.closed_form and not slow.closed_form
    fast.run(max_steps=15)
    slow.run(max_steps=15)
    for name in ("loss", "recon", "kl"):
        a, b = getattr(fast.history, name), getattr(slow.history, name)
        assert len(a) == 15 and all(abs(u - v) <= 1e-3 * max(1.0, abs(v)) for u, v in zip(a, b)), name
    for p, q in zip(fast.model.parameters(), slow.model.parameters()):
        assert torch.allclose(p, q, atol=1e-4)
    assert any(not torch.equal(p, q) for p, q in zip(fast.model.parameters(), build_model(mc).parameters()))
