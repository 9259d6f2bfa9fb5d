"""The Laplace likelihood (L1 reconstruction) and "choosing the scale is choosing beta", checked numerically."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from vae_core import elbo
from vae_core.checkpoint import load_checkpoint, save_checkpoint
from vae_core.evaluate import dataset_metrics, iwae_nll
from vae_core.models import LIKELIHOODS, ConfigError, ModelConfig, build_model
from vae_core.train import TrainConfig, Trainer


def laplace_config(latent: int = 2, scale: float = 0.1, likelihood: str = "laplace") -> ModelConfig:
    return ModelConfig(
        input_dim=64,
        image_shape=(1, 8, 8),
        hidden=(32,),
        latent_dim=latent,
        likelihood=likelihood,
        obs_std=scale,
    )


class TestDensity:
    @pytest.mark.parametrize("mean", [0.0, 0.3, 1.0])
    @pytest.mark.parametrize("scale", [0.02, 0.1, 0.7])
    def test_integrates_to_one_per_pixel(self, mean: float, scale: float) -> None:
        m = torch.tensor([mean], dtype=torch.float64)

        def density(x: float) -> float:
            return math.exp(
                float(elbo.laplace_log_likelihood(torch.tensor([x], dtype=torch.float64), m, scale))
            )

        lo, hi = mean - 60 * scale, mean + 60 * scale  # the mass beyond 60 b is e^-60
        total, err = integrate.quad(density, lo, hi, points=[mean], limit=200, epsabs=1e-13)
        assert total == pytest.approx(1.0, abs=1e-9), (total, err)

    def test_matches_torch_distributions(self) -> None:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(4, 64, generator=g, dtype=torch.float64)
        mean = torch.rand(4, 64, generator=g, dtype=torch.float64)
        for b in (0.05, 0.1, 1.3):
            ref = torch.distributions.Laplace(mean, b).log_prob(x).sum(-1)
            torch.testing.assert_close(elbo.laplace_log_likelihood(x, mean, b), ref, rtol=0, atol=1e-10)

    def test_is_the_l1_cost_plus_a_constant(self) -> None:
        g = torch.Generator().manual_seed(1)
        x, mean = torch.rand(3, 10, generator=g, dtype=torch.float64), torch.rand(3, 10, generator=g).double()
        b = 0.2
        expect = -(x - mean).abs().sum(-1) / b - 10 * math.log(2 * b)
        torch.testing.assert_close(elbo.laplace_log_likelihood(x, mean, b), expect, rtol=0, atol=1e-12)

    def test_dispatch_uses_the_sigmoid_mean_and_broadcasts(self) -> None:
        g = torch.Generator().manual_seed(2)
        logits = torch.randn(5, 7, 10, generator=g, dtype=torch.float64)
        x = torch.rand(7, 10, generator=g, dtype=torch.float64)  # one batch against five decodings
        got = elbo.recon_log_likelihood(x, logits, "laplace", 0.3)
        ref = torch.distributions.Laplace(torch.sigmoid(logits), 0.3).log_prob(x.expand_as(logits)).sum(-1)
        assert got.shape == (5, 7)
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-10)
        torch.testing.assert_close(elbo.decoder_mean(logits, "laplace"), torch.sigmoid(logits))
        gauss = torch.distributions.Normal(torch.sigmoid(logits), 0.3).log_prob(x.expand_as(logits)).sum(-1)
        torch.testing.assert_close(
            elbo.recon_log_likelihood(x, logits, "gaussian", 0.3), gauss, rtol=0, atol=1e-10
        )
        with pytest.raises(ValueError, match="unknown likelihood"):
            elbo.decoder_mean(logits, "poisson")


class TestModel:
    def test_config_validates_and_round_trips(self, tmp_path) -> None:
        assert "laplace" in LIKELIHOODS
        cfg = laplace_config(scale=0.05)
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg
        with pytest.raises(ConfigError):
            laplace_config(scale=0.0)
        model = build_model(cfg)
        ck = load_checkpoint(save_checkpoint(tmp_path / "laplace", model, {"dataset": "digits"}))
        assert ck.config.likelihood == "laplace" and ck.config.obs_std == 0.05
        z = torch.randn(3, 2)
        torch.testing.assert_close(ck.model.mean_image(z), torch.sigmoid(ck.model.decode(z)))

    def test_trains_one_step(self, digits) -> None:
        tr = Trainer(
            laplace_config(), TrainConfig(dataset="digits", epochs=1, seed=0), dataset=digits, device="cpu"
        )
        before = [p.detach().clone() for p in tr.model.parameters()]
        tr.step()
        assert tr.global_step == 1 and math.isfinite(tr.history.loss[-1])
        assert all(not torch.equal(a, b) for a, b in zip(before, tr.model.parameters()))

    def test_evaluation_iwae_and_quadrature_accept_it(self, digits) -> None:
        torch.manual_seed(0)
        model = build_model(laplace_config()).eval()
        x = digits.x_test[:6]
        m = dataset_metrics(model, x, k=20, n_iwae=6)
        xf = x.float() / 255.0
        with torch.no_grad():
            mu, logvar = model.encode(xf)
            recon = elbo.recon_log_likelihood(xf, model.decode(mu), "laplace", 0.1)
            quad = elbo.quadrature_log_px(xf, model.decode, 2, q=(mu, logvar), n=96, likelihood="laplace")
        assert math.isfinite(m.neg_elbo) and m.iwae_nll is not None and math.isfinite(m.iwae_nll)
        assert torch.isfinite(recon).all() and torch.isfinite(quad.log_px).all()
        nll, _ = iwae_nll(model, x, k=2000)
        exact_nll = float(-quad.log_px.mean())
        assert (
            exact_nll <= nll + 1e-3 and nll - exact_nll < 1.0
        )  # the IWAE bound sits above -log p(x), and near it


class TestScaleIsBeta:
    def test_values(self) -> None:
        assert elbo.equivalent_beta("gaussian", 0.2, 0.1) == pytest.approx(4.0)
        assert elbo.equivalent_beta("laplace", 0.2, 0.1) == pytest.approx(2.0)
        np.testing.assert_allclose(
            elbo.equivalent_beta("gaussian", np.array([0.05, 0.1, 0.3]), 0.1), [0.25, 1, 9]
        )
        for bad in ("bernoulli", "continuous_bernoulli"):
            with pytest.raises(ValueError, match="no scale"):
                elbo.equivalent_beta(bad, 0.2, 0.1)
        with pytest.raises(ValueError, match="positive"):
            elbo.equivalent_beta("laplace", -1.0, 0.1)

    @pytest.mark.parametrize("likelihood", ["gaussian", "laplace"])
    def test_gradients_are_proportional(self, likelihood: str, digits) -> None:
        """-ELBO with scale s' and beta = 1 has the gradient of -ELBO with scale s and beta = equivalent_beta(s', s),
        divided by that beta: the same training direction."""
        torch.manual_seed(0)
        model = build_model(laplace_config(latent=3, likelihood=likelihood)).double()
        x = digits.x_test[:16].double() / 255.0
        logits, mu, logvar, _ = model(
            x, generator=torch.Generator().manual_seed(1)
        )  # one draw for both losses
        s, s_new = 0.1, 0.35
        beta = elbo.equivalent_beta(likelihood, s_new, s)
        params = list(model.parameters())
        loss_new = elbo.elbo_terms(x, logits, mu, logvar, beta=1.0, likelihood=likelihood, obs_std=s_new).loss
        loss_ref = elbo.elbo_terms(x, logits, mu, logvar, beta=beta, likelihood=likelihood, obs_std=s).loss
        g_new = torch.cat([g.ravel() for g in torch.autograd.grad(loss_new, params, retain_graph=True)])
        g_ref = torch.cat([g.ravel() for g in torch.autograd.grad(loss_ref, params, retain_graph=True)])
        torch.testing.assert_close(g_new, g_ref / beta, rtol=1e-9, atol=1e-12)
        # and not merely parallel by accident: with beta = 1 at the reference scale the gradient points elsewhere
        loss_plain = elbo.elbo_terms(x, logits, mu, logvar, beta=1.0, likelihood=likelihood, obs_std=s).loss
        g_plain = torch.cat([g.ravel() for g in torch.autograd.grad(loss_plain, params)])
        cos = float(g_plain @ g_ref / (g_plain.norm() * g_ref.norm()))
        assert cos < 0.999999
