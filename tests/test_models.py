import pytest
import torch

from tests.conftest import digits_config
from vae_core.models import AE, VAE, ConfigError, ModelConfig, build_model, count_parameters


class TestBuilding:
    def test_reference_architecture_is_expressible(self):
        m = build_model(ModelConfig(hidden=(400,), latent_dim=20))
        assert isinstance(m, VAE)
        # 784-400 trunk, two 400-20 heads, 20-400-784 decoder
        expect = (784 * 400 + 400) + 2 * (400 * 20 + 20) + (20 * 400 + 400) + (400 * 784 + 784)
        assert count_parameters(m) == expect == 652_824

    def test_ae_and_vae_share_the_builder_and_initial_weights(self):
        torch.manual_seed(3)
        v = build_model(ModelConfig(kind="vae", hidden=(64, 32), latent_dim=5))
        torch.manual_seed(3)
        a = build_model(ModelConfig(kind="ae", hidden=(64, 32), latent_dim=5))
        assert isinstance(a, AE)
        sa, sv = a.state_dict(), v.state_dict()
        assert set(sv) - set(sa) == {"encoder.logvar.weight", "encoder.logvar.bias"}
        for k in sa:
            assert torch.equal(sa[k], sv[k]), k

    @pytest.mark.parametrize(
        "bad",
        [
            dict(latent_dim=0),
            dict(latent_dim=65),
            dict(kind="gan"),
            dict(likelihood="poisson"),
            dict(hidden=(0,)),
            dict(input_dim=100),
            dict(obs_std=0.0),
            dict(activation="swish"),
        ],
    )
    def test_invalid_config_is_refused_with_a_message(self, bad):
        with pytest.raises(ConfigError) as err:
            ModelConfig(**bad)
        assert len(str(err.value)) > 10

    def test_config_round_trip_and_unknown_keys(self):
        cfg = ModelConfig(kind="ae", hidden=(128, 64), latent_dim=7, likelihood="gaussian", obs_std=0.2)
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg
        d = cfg.to_dict() | {"dropout": 0.5}
        with pytest.raises(ConfigError, match="unknown model config keys"):
            ModelConfig.from_dict(d)


class TestForward:
    @pytest.mark.parametrize("kind", ["vae", "ae"])
    @pytest.mark.parametrize("latent", [1, 2, 16, 64])
    def test_shapes(self, kind, latent):
        m = build_model(digits_config(kind, latent, (32,)))
        x = torch.rand(5, 64)
        logits, mu, logvar, z = m(x)
        assert logits.shape == (5, 64) and mu.shape == (5, latent) and z.shape == (5, latent)
        if kind == "vae":
            assert logvar.shape == (5, latent)
        else:
            assert logvar is None and torch.equal(mu, z)
        img = m.mean_image(z)
        assert img.min() >= 0 and img.max() <= 1

    def test_vae_sampling_is_seeded(self):
        m = build_model(digits_config())
        x = torch.rand(4, 64)
        g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        assert torch.equal(m(x, generator=g1)[3], m(x, generator=g2)[3])
        assert not torch.equal(m(x, generator=g1)[3], m(x, generator=g1)[3])

    def test_no_hidden_layers(self):
        m = build_model(ModelConfig(input_dim=64, image_shape=(1, 8, 8), hidden=(), latent_dim=3))
        assert m(torch.rand(2, 64))[0].shape == (2, 64)


class TestSizeBudget:
    @pytest.mark.parametrize(
        "cfg", [dict(), dict(kind="ae", hidden=(512, 256), latent_dim=16), dict(hidden=(), latent_dim=3)]
    )
    def test_analytic_count_matches_the_built_model(self, cfg):
        c = ModelConfig(**cfg)
        assert c.parameter_count() == count_parameters(build_model(c))

    def test_a_model_over_the_budget_is_refused_before_it_is_built(self):
        with pytest.raises(ConfigError, match="M parameters, over the lab's limit"):
            ModelConfig(hidden=(8192,) * 6, latent_dim=64)
