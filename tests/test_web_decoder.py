"""vae_core.web_decoder: the decoder file the browser runs holds the model's own weights and says how to
map logits to pixel means; decoders the browser cannot run are refused with a reason."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from torch import nn

from vae_core.elbo import LIKELIHOODS, decoder_mean
from vae_core.models import ACTIVATIONS, ModelConfig, build_model
from vae_core.web_decoder import FORMAT, MAGIC, UnsupportedDecoder, export_decoder, read_decoder


def small(likelihood: str = "bernoulli", activation: str = "relu", hidden=(12, 7), kind: str = "vae"):
    torch.manual_seed(0)
    cfg = ModelConfig(
        kind=kind,
        input_dim=36,
        image_shape=(1, 6, 6),
        hidden=hidden,
        latent_dim=3,
        likelihood=likelihood,
        activation=activation,
        obs_std=0.2,
    )
    return build_model(cfg).eval()


def forward(layers, act: str, likelihood: str, z: np.ndarray) -> torch.Tensor:
    """The decoder run from the file's weights alone (float64), through the lab's own activations and mean."""
    x = torch.from_numpy(z).double()
    for k, (w, b) in enumerate(layers):
        x = x @ torch.from_numpy(w.astype(np.float64)).T + torch.from_numpy(b.astype(np.float64))
        if k < len(layers) - 1:
            x = ACTIVATIONS[act]()(x)
    return decoder_mean(x, likelihood)


class TestFile:
    def test_layout_header_and_weights_round_trip(self) -> None:
        model = small()
        dec = export_decoder(model)
        assert dec.data[:4] == MAGIC
        (n,) = struct.unpack("<I", dec.data[4:8])
        assert n % 4 == 0 and json.loads(dec.data[8 : 8 + n]) == dec.header
        header, layers = read_decoder(dec.data)
        assert header["format"] == FORMAT and header["layers"] == [
            {"in": 3, "out": 7},
            {"in": 7, "out": 12},
            {"in": 12, "out": 36},
        ]
        assert (header["activation"], header["likelihood"], header["obs_std"]) == ("relu", "bernoulli", 0.2)
        assert header["image_shape"] == [1, 6, 6] and header["latent_dim"] == 3
        linears = [m for m in model.decoder.net if isinstance(m, nn.Linear)]
        for (w, b), m in zip(layers, linears, strict=True):
            np.testing.assert_array_equal(w, m.weight.detach().numpy())
            np.testing.assert_array_equal(b, m.bias.detach().numpy())
        assert len(dec.data) == 8 + n + 4 * dec.n_weights
        assert len(dec.digest) == 16 and export_decoder(model).digest == dec.digest  # named by content

    def test_other_weights_other_name(self) -> None:
        model = small()
        a = export_decoder(model).digest
        with torch.no_grad():
            model.decoder.net[0].bias[0] += 1e-3
        assert export_decoder(model).digest != a

    @pytest.mark.parametrize("likelihood", LIKELIHOODS)
    @pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
    def test_the_file_decodes_as_the_model(self, likelihood, activation) -> None:
        model = small(likelihood, activation)
        header, layers = read_decoder(export_decoder(model).data)
        z = np.array([[0.0, 0.0, 0.0], [3.0, -2.5, 1.0], [-4.0, 4.0, 0.3]])
        got = forward(layers, header["activation"], header["likelihood"], z)
        want = model.mean_image(torch.from_numpy(z).float()).double()
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)

    def test_no_hidden_layer_and_an_ae(self) -> None:
        header, layers = read_decoder(export_decoder(small(hidden=(), kind="ae")).data)
        assert header["layers"] == [{"in": 3, "out": 36}] and len(layers) == 1

    def test_a_damaged_file_is_refused(self) -> None:
        data = export_decoder(small()).data
        with pytest.raises(ValueError, match="magic"):
            read_decoder(b"XXXX" + data[4:])
        with pytest.raises(ValueError, match="weights"):
            read_decoder(data[:-4])


class TestUnsupported:
    def test_a_convolutional_layer(self) -> None:
        model = small()
        model.decoder.net[1] = nn.Conv1d(1, 1, 1)
        with pytest.raises(UnsupportedDecoder, match="Conv1d"):
            export_decoder(model)

    def test_activations_with_other_parameters(self) -> None:
        model = small(activation="gelu")
        model.decoder.net[1] = nn.GELU(approximate="tanh")
        with pytest.raises(UnsupportedDecoder, match="gelu"):
            export_decoder(model)
        model = small(activation="elu")
        model.decoder.net[1] = nn.ELU(alpha=0.5)
        with pytest.raises(UnsupportedDecoder, match="elu"):
            export_decoder(model)

    def test_a_decoder_without_a_layer_list(self) -> None:
        model = small()
        model.decoder.net = nn.Identity()  # type: ignore[assignment]
        with pytest.raises(UnsupportedDecoder):
            export_decoder(model)
