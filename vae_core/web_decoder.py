"""A model's decoder as one compact file that a browser can run: a JSON header and float32 weights.

The latent explorer and the Manifold page's latent plane decode z -> pixel means in JavaScript
(lab_pages/decoder_component.js) while a slider is dragged or the pointer moves. The browser fetches
the decoder once per model, as the file :func:`export_decoder` writes:

```
b"VAED" | header length n (uint32, little-endian) | header: n bytes of UTF-8 JSON, padded with spaces
        | weights: float32 little-endian, layer by layer: W (out, in) row-major, then b (out,)
```

The header names the format, the layers' sizes, the activation (relu, tanh, elu, gelu: torch's
defaults, GELU in its erf form) and the likelihood with its parameters, so that the browser maps
logits to the same pixel means as :func:`vae_core.elbo.decoder_mean`. A decoder built otherwise (a
convolutional one, an activation with other parameters) raises :class:`UnsupportedDecoder`, and the
pages decode on the server instead.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .elbo import CB_SERIES_BELOW, LIKELIHOODS
from .errors import N_, LabError
from .models import ACTIVATIONS, AE, VAE

__all__ = ["FORMAT", "MAGIC", "UnsupportedDecoder", "WebDecoder", "export_decoder", "read_decoder"]

FORMAT = "vae-lab-decoder/1"  # the header's "format": the JavaScript refuses any other
MAGIC = b"VAED"
_NAMES = {cls: name for name, cls in ACTIVATIONS.items()}  # nn.ReLU -> "relu", ...


class UnsupportedDecoder(LabError, ValueError):
    """This decoder cannot run in the browser (its layers are not Linear + one of the lab's activations)."""


@dataclass(frozen=True)
class WebDecoder:
    """One exported decoder: the file's bytes and what the page needs to name and describe it."""

    data: bytes  # the whole file: magic, header, float32 weights
    header: dict[str, Any]  # the decoded JSON header
    digest: str  # sha256 of ``data``, 16 hex digits: the file's name (same weights, same name)

    @property
    def n_weights(self) -> int:
        """Float32 values in the file (weights and biases of every layer)."""
        return sum(layer["in"] * layer["out"] + layer["out"] for layer in self.header["layers"])


def _activation_name(module: nn.Module) -> str:
    """The lab's name of an activation module, refusing one whose parameters the browser would not match."""
    name = _NAMES.get(type(module))
    if name is None:
        raise UnsupportedDecoder(
            N_("the decoder has a {layer} layer, which the browser cannot run"), layer=type(module).__name__
        )
    if (name == "elu" and float(getattr(module, "alpha", 1.0)) != 1.0) or (
        name == "gelu" and getattr(module, "approximate", "none") != "none"
    ):
        raise UnsupportedDecoder(N_("the decoder's {name} has non-default parameters"), name=name)
    return name


def export_decoder(model: AE | VAE) -> WebDecoder:
    """The decoder of ``model`` as a :class:`WebDecoder` (z (latent_dim,) -> pixel means (input_dim,)).

    Raises :class:`UnsupportedDecoder` when the decoder is not a chain of ``nn.Linear`` layers with
    one of the lab's activations (torch defaults) between them, or its likelihood is unknown here.
    """
    cfg = model.config
    net = getattr(model.decoder, "net", None)
    if not isinstance(net, nn.Sequential):
        raise UnsupportedDecoder(N_("the decoder is not a sequence of layers"))
    linears: list[nn.Linear] = []
    activations: set[str] = set()
    for i, module in enumerate(net):
        want_linear = i % 2 == 0  # Linear, act, Linear, act, ..., Linear
        if want_linear != isinstance(module, nn.Linear):
            raise UnsupportedDecoder(
                N_("the decoder has a {layer} layer, which the browser cannot run"),
                layer=type(module).__name__,
            )
        if want_linear:
            linears.append(module)  # type: ignore[arg-type]
        else:
            activations.add(_activation_name(module))
    if not linears or len(net) % 2 == 0 or len(activations) > 1:
        raise UnsupportedDecoder(N_("the decoder is not a sequence of layers"))
    if cfg.likelihood not in LIKELIHOODS:
        raise UnsupportedDecoder(N_("the likelihood {name!r} is unknown to the browser"), name=cfg.likelihood)
    if linears[0].in_features != cfg.latent_dim or linears[-1].out_features != cfg.input_dim:
        raise UnsupportedDecoder(N_("the decoder's sizes do not match its config"))
    header = {
        "format": FORMAT,
        "layers": [{"in": int(m.in_features), "out": int(m.out_features)} for m in linears],
        "activation": activations.pop() if activations else cfg.activation,
        "likelihood": cfg.likelihood,
        "obs_std": float(cfg.obs_std),  # the Gaussian's σ or the Laplace's b: the mean does not use it
        "cb_series_below": CB_SERIES_BELOW,  # continuous Bernoulli: |logit| under which its mean is a series
        "image_shape": [int(v) for v in cfg.image_shape],
        "latent_dim": int(cfg.latent_dim),
    }
    with torch.no_grad():
        parts = [
            t.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4", copy=False).ravel()
            for m in linears
            for t in (m.weight, m.bias)  # W (out, in) row-major, then b (out,)
        ]
    weights = np.concatenate(parts).tobytes()
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)  # the weights start on a 4-byte boundary: a Float32Array views them
    data = MAGIC + struct.pack("<I", len(text)) + text + weights
    return WebDecoder(data, header, hashlib.sha256(data).hexdigest()[:16])


def read_decoder(data: bytes) -> tuple[dict[str, Any], list[tuple[np.ndarray, np.ndarray]]]:
    """(header, [(W (out, in), b (out,)) per layer]) of a file :func:`export_decoder` wrote; ValueError if damaged."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise ValueError("not a decoder file (no VAED magic)")
    (n,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    if header.get("format") != FORMAT:
        raise ValueError(f"unknown decoder format {header.get('format')!r}")
    flat = np.frombuffer(data, dtype="<f4", offset=8 + n)
    layers, at = [], 0
    for layer in header["layers"]:
        i, o = layer["in"], layer["out"]
        w = flat[at : at + i * o].reshape(o, i)
        b = flat[at + i * o : at + i * o + o]
        layers.append((w, b))
        at += i * o + o
    if at != flat.size:
        raise ValueError(f"decoder file has {flat.size} weights, its header says {at}")
    return header, layers
