"""vae_core.evaluate: the one dataset-metrics function, its result type, and its CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.conftest import digits_config
from vae_core.checkpoint import load_checkpoint
from vae_core.elbo import elbo_terms, iwae_bound
from vae_core.evaluate import (
    ACTIVE_THRESHOLD,
    ELBO_SEED_OFFSET,
    LOW_KL_THRESHOLD,
    DatasetMetrics,
    dataset_metrics,
    iwae_nll,
    latent_variance,
    low_kl_units,
    main,
)
from vae_core.models import build_model

CK = Path(__file__).resolve().parents[1] / "checkpoints" / "digits_vae_z2.safetensors"


@pytest.fixture(scope="module")
def vae():
    return load_checkpoint(CK).model


class TestDatasetMetrics:
    def test_elbo_terms_match_a_hand_computed_pass(self, vae, digits) -> None:
        x = digits.x_test[:300]
        m = dataset_metrics(vae, x, seed=7)
        gen = torch.Generator().manual_seed(7 + ELBO_SEED_OFFSET)
        with torch.no_grad():
            xf = x.float() / 255.0
            logits, mu, logvar, _ = vae(xf, generator=gen)
            t = elbo_terms(xf, logits, mu, logvar)
        assert m.recon == pytest.approx(float(-t.recon.double().mean()), rel=1e-6)
        assert m.kl == pytest.approx(float(t.kl.double().mean()), rel=1e-6)
        assert m.neg_elbo == pytest.approx(m.recon + m.kl)
        assert sum(m.kl_per_dim) == pytest.approx(m.kl, rel=1e-6)
        var = mu.double().var(0, unbiased=True)
        assert m.var_mu == pytest.approx(var.tolist())
        assert m.active_units == int((var > ACTIVE_THRESHOLD).sum())
        assert (m.n, m.latent_dim, m.is_vae) == (300, 2, True)

    def test_seeded_and_mode_restored(self, vae, digits) -> None:
        vae.train()
        a, b = dataset_metrics(vae, digits.x_test, seed=1), dataset_metrics(vae, digits.x_test, seed=1)
        assert vae.training
        vae.eval()
        assert a == b
        assert dataset_metrics(vae, digits.x_test, seed=2).neg_elbo != a.neg_elbo  # fresh noise

    def test_iwae_with_progress(self, vae, digits) -> None:
        seen: list[float] = []
        m = dataset_metrics(vae, digits.x_test, seed=5, k=200, n_iwae=100, progress=seen.append)
        assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
        assert m.n == digits.x_test.shape[0] and m.iwae_n == 100 and m.iwae_k == 200
        ref, ref_se = iwae_nll(vae, digits.x_test[:100], k=200, seed=11, batch_size=7)
        # two independent importance-sampling runs: they agree to the IS noise of a K=200 mean over 100 images
        assert m.iwae_nll == pytest.approx(ref, abs=0.25) and m.iwae_nll_se == pytest.approx(ref_se, rel=0.1)
        x = digits.x_test[:100].float().div(255.0)
        with torch.no_grad():
            mu, logvar = vae.encode(x)
            k1 = -iwae_bound(x, mu, logvar, vae.decode, 1, generator=torch.Generator().manual_seed(0)).mean()
        assert m.iwae_nll < float(k1)
        assert (
            m.iwae_nll < m.iwae_subset_neg_elbo < m.iwae_nll + 1.0
        )  # -ELBO above the NLL on the same images

    def test_to_dict_keys(self, vae, digits) -> None:
        d = dataset_metrics(vae, digits.x_test[:50]).to_dict()
        assert {"neg_elbo", "recon", "kl", "kl_per_dim", "active_units", "var_mu", "n"} <= set(d)
        assert not any(k.startswith("iwae") for k in d)
        m = dataset_metrics(vae, digits.x_test[:50], k=10, n_iwae=20)
        m.extra["quad_nll"] = 1.5
        d = m.to_dict()
        assert d["iwae_n"] == 20 and d["quad_nll"] == 1.5 and "extra" not in d
        assert (
            DatasetMetrics(**{k: v for k, v in dataset_metrics(vae, digits.x_test[:50]).__dict__.items()}).n
            == 50
        )

    def test_ae_has_no_kl_and_no_iwae(self, digits) -> None:
        torch.manual_seed(0)
        ae = build_model(digits_config("ae", 3))
        m = dataset_metrics(ae, digits.x_test[:100], k=50, n_iwae=10)
        assert m.kl == 0.0 and m.kl_per_dim == [] and m.neg_elbo == m.recon and m.iwae_nll is None
        assert not m.is_vae and len(m.var_mu) == 3
        with pytest.raises(ValueError, match="needs a VAE"):
            iwae_nll(ae, digits.x_test[:5])

    def test_empty_input_is_refused(self, vae, digits) -> None:
        with pytest.raises(ValueError, match="at least one image"):
            dataset_metrics(vae, digits.x_test[:0])


def test_latent_variance() -> None:
    mu = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    assert latent_variance(mu).tolist() == pytest.approx([4.0, 0.0])  # unbiased: /(N-1)
    assert latent_variance(mu[:1]).tolist() == [0.0, 0.0]


def test_cli_prints_metrics(capsys) -> None:
    assert main([str(CK), "--k", "20", "--n", "30", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "test -ELBO" in out and "IWAE NLL (K=20)" in out and "on 30 images" in out
    assert main(["/nonexistent.safetensors"]) == 2
    assert "error:" in capsys.readouterr().err


class TestLowKLUnits:
    """Dims under LOW_KL_THRESHOLD nats of KL per image, counted beside (and unlike) Var_x[mu_j]."""

    # (mu_j, sigma_j^2) of an encoder whose output ignores x: KL_j = (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2) / 2
    POSTERIOR = [(0.0, 1.0), (0.14, 1.0), (0.0, 0.5), (0.0, 0.4), (1.5, 0.1)]

    @staticmethod
    def kl(mu: float, var: float) -> float:
        return 0.5 * (mu * mu + var - 1.0 - math.log(var))

    def test_a_posterior_with_known_kl_per_dim(self, digits) -> None:
        """q(z|x) = N(mu, diag(sigma^2)) for every x: KL per dim 0, 0.0098, 0.0966, 0.158 and 1.63 nats,
        so three dims are under 0.1 nats; and Var_x[mu_j] = 0, so no dim is active either."""
        torch.manual_seed(0)
        vae = build_model(digits_config("vae", len(self.POSTERIOR)))
        enc = vae.encoder
        with torch.no_grad():
            enc.mu.weight.zero_()
            enc.logvar.weight.zero_()
            enc.mu.bias.copy_(torch.tensor([m for m, _ in self.POSTERIOR]))
            enc.logvar.bias.copy_(torch.tensor([math.log(v) for _, v in self.POSTERIOR]))
        want = [self.kl(m, v) for m, v in self.POSTERIOR]
        assert [w < LOW_KL_THRESHOLD for w in want] == [True, True, True, False, False]
        m = dataset_metrics(vae, digits.x_test[:200])
        assert m.kl_per_dim == pytest.approx(want, abs=1e-5)
        assert m.low_kl_units == 3 and m.active_units == 0
        assert m.to_dict()["low_kl_units"] == 3

    def test_active_by_variance_yet_under_the_kl_threshold(self, digits) -> None:
        """A dim whose mu_j spreads over the images with Var_x[mu_j] ~ 0.02 > 0.01 and sigma_j = 1 carries
        E_x[mu_j^2] / 2 ~ 0.01 nats: one of the Var[mu] count's active units, and one of the low-KL units."""
        torch.manual_seed(0)
        vae = build_model(digits_config("vae", 1))
        enc = vae.encoder
        x = digits.x_test[:500]
        with torch.no_grad():
            enc.logvar.weight.zero_()
            enc.logvar.bias.zero_()
            mu0, _ = vae.encode(x.float() / 255.0)
            scale = math.sqrt(0.02 / float(mu0.double().var()))  # rescale mu so that Var_x[mu] = 0.02
            enc.mu.bias.copy_(-scale * (mu0.mean(0) - enc.mu.bias))  # ... around 0
            enc.mu.weight.mul_(scale)
            mu, _ = vae.encode(x.float() / 255.0)
        assert abs(float(mu.mean())) < 1e-5
        m = dataset_metrics(vae, x)
        assert m.var_mu[0] == pytest.approx(0.02, rel=1e-3)
        assert m.kl_per_dim[0] == pytest.approx(0.5 * float((mu.double() ** 2).mean()), rel=1e-4)
        assert m.active_units == 1 and m.low_kl_units == 1

    def test_counts_lists_tensors_and_skips_missing_values(self) -> None:
        assert low_kl_units([0.0, 0.099, 0.1, 2.0]) == 2  # 0.1 itself is not under 0.1
        assert low_kl_units(torch.tensor([0.05, 0.5, 0.01])) == 2
        assert low_kl_units([None, float("nan"), 0.01]) == 1
        assert low_kl_units([]) == 0  # an AE
        assert low_kl_units([0.3, 0.6], threshold=0.5) == 1

    def test_an_ae_has_none(self, digits) -> None:
        torch.manual_seed(0)
        assert dataset_metrics(build_model(digits_config("ae", 3)), digits.x_test[:50]).low_kl_units == 0
