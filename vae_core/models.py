"""Autoencoders and VAEs built by one encoder/decoder builder, so comparisons are fair.

Both models take flattened images ``x`` of shape (B, D) with values in [0, 1] and have

- ``encode(x) -> (mu, logvar)``: (B, z) each. For an :class:`AE`, ``mu`` is the code and
  ``logvar`` is ``None`` (an AE has no posterior variance).
- ``decode(z) -> logits``: (B, D). Pixel means are ``sigmoid(logits)`` (Bernoulli, Gaussian, Laplace) or
  the continuous Bernoulli's mean (:meth:`mean_image`, through :func:`vae_core.elbo.decoder_mean`).

The model is rebuilt from its config alone: a checkpoint stores ``asdict(config)``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from .elbo import LIKELIHOODS, SCALED_LIKELIHOODS, decoder_mean
from .errors import N_, LabError

__all__ = [
    "LIKELIHOODS",
    "SCALED_LIKELIHOODS",
    "ModelConfig",
    "AE",
    "VAE",
    "build_model",
    "ConfigError",
    "Encoder",
    "Decoder",
    "parse_hidden",
]

KINDS = ("vae", "ae")
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU}
MAX_PARAMETERS = (
    20_000_000  # 80 MB of float32 weights, ~320 MB while training with Adam; shipped models are ~1 M
)


class ConfigError(LabError, ValueError):
    """A model or training configuration value is out of range; the message says which and why."""


def parse_hidden(text: str) -> tuple[int, ...]:
    """Hidden widths from text such as ``"400"``, ``"512,256"``, ``"512-256"`` or ``"512 256"``.

    The CLI's ``--hidden`` and the Train page's form both read hidden sizes through this. A
    hyphen separates only between digits, so ``"-5"`` stays -5 and is refused by
    :meth:`ModelConfig.validate` with the allowed range. Raises :class:`ConfigError` when a part
    is not a whole number or nothing is given.
    """
    parts = [p for p in re.split(r"[,;\s]+|(?<=\d)-(?=\d)", str(text).strip()) if p]
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(
            N_("hidden sizes must be whole numbers like 400 or 512,256; got {text!r}"), text=text
        ) from None
    if not sizes:
        raise ConfigError(
            N_("hidden sizes must be whole numbers like 400 or 512,256; got {text!r}"), text=text
        )
    return sizes


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model. Defaults are the pytorch/examples reference VAE."""

    kind: str = "vae"  # "vae" or "ae"
    input_dim: int = 784  # D, pixels per image (flattened)
    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) used only to draw images
    hidden: tuple[int, ...] = (400,)  # hidden widths of the encoder; the decoder mirrors them
    latent_dim: int = 20  # z, 1..64
    likelihood: str = (
        "bernoulli"  # one of LIKELIHOODS: bernoulli (BCE), continuous_bernoulli, gaussian, laplace
    )
    obs_std: float = (
        0.1  # scale of the fixed-scale likelihoods, pixel units: Gaussian std sigma, Laplace b (L1)
    )
    activation: str = "relu"  # relu | tanh | elu | gelu

    def __post_init__(self) -> None:
        # JSON gives lists. A length other than 3 is stored as it is for validate() to reject with its message.
        self.image_shape = tuple(int(v) for v in self.image_shape)  # type: ignore[assignment]
        self.hidden = tuple(int(h) for h in self.hidden)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` with a clear message for any out-of-range value."""
        if self.kind not in KINDS:
            raise ConfigError(
                N_("model kind must be one of {KINDS}, got {kind!r}"), KINDS=KINDS, kind=self.kind
            )
        if not 1 <= int(self.latent_dim) <= 64:
            raise ConfigError(
                N_("latent dimension must be between 1 and 64, got {latent_dim}"), latent_dim=self.latent_dim
            )
        if self.input_dim < 1:
            raise ConfigError(N_("input_dim must be positive, got {input_dim}"), input_dim=self.input_dim)
        if len(self.image_shape) != 3 or _prod(self.image_shape) != self.input_dim:
            raise ConfigError(
                N_("image_shape {image_shape} does not match input_dim {input_dim} (C*H*W must equal D)"),
                image_shape=self.image_shape,
                input_dim=self.input_dim,
            )
        if any(not 1 <= h <= 8192 for h in self.hidden):
            raise ConfigError(
                N_("hidden sizes must be between 1 and 8192, got {list_hidden}"),
                list_hidden=list(self.hidden),
            )
        if len(self.hidden) > 6:
            raise ConfigError(N_("at most 6 hidden layers, got {len_hidden}"), len_hidden=len(self.hidden))
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(
                N_("likelihood must be one of {LIKELIHOODS}, got {likelihood!r}"),
                LIKELIHOODS=LIKELIHOODS,
                likelihood=self.likelihood,
            )
        if not (0.0 < float(self.obs_std) < 10.0):
            raise ConfigError(N_("obs_std must be in (0, 10), got {obs_std}"), obs_std=self.obs_std)
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                N_("activation must be one of {tuple_ACTIVATIONS}, got {activation!r}"),
                tuple_ACTIVATIONS=tuple(ACTIVATIONS),
                activation=self.activation,
            )
        n = self.parameter_count()
        if n > MAX_PARAMETERS:
            raise ConfigError(
                N_(
                    "this model would have {value:,.0f} M parameters, over the lab's limit of {value2:.0f} M (a shared server trains several at once): use fewer or narrower hidden layers"
                ),
                value=n / 1e6,
                value2=MAX_PARAMETERS / 1e6,
            )

    def parameter_count(self) -> int:
        """Trainable parameters of the model this config builds, counted without building it."""

        def mlp(sizes: list[int]) -> int:
            return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))

        last = self.hidden[-1] if self.hidden else self.input_dim
        heads = (2 if self.kind == "vae" else 1) * (last * self.latent_dim + self.latent_dim)
        return (
            mlp([self.input_dim, *self.hidden])
            + heads
            + mlp([self.latent_dim, *reversed(self.hidden), self.input_dim])
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: object) -> ModelConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are a :class:`ConfigError`.

        ``d`` may be anything read from JSON: what is not a dict is a :class:`ConfigError` too."""
        if not isinstance(d, dict):
            raise ConfigError(N_("model config must be a JSON object, got {name__}"), name__=type(d).__name__)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(
                N_("unknown model config keys: {sorted_unknown}"), sorted_unknown=sorted(unknown)
            )
        try:
            return cls(**d)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(N_("invalid model config: {exc}"), exc=exc) from exc

    def describe(self) -> str:
        """One line such as ``VAE 784-400-16 (bernoulli)``."""
        arch = "-".join(str(v) for v in (self.input_dim, *self.hidden, self.latent_dim))
        return f"{self.kind.upper()} {arch} ({self.likelihood})"


def _prod(vals: tuple[int, ...]) -> int:
    out = 1
    for v in vals:
        out *= int(v)
    return out


def _mlp(sizes: list[int], activation: str, final_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_activation:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """x (B, D) -> trunk (B, H) -> heads. The VAE has mu and logvar heads; the AE only mu."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        sizes = [cfg.input_dim, *cfg.hidden]
        self.trunk = _mlp(sizes, cfg.activation, final_activation=True) if cfg.hidden else nn.Identity()
        self.out_features = sizes[-1]
        self.mu = nn.Linear(self.out_features, cfg.latent_dim)
        self.logvar: nn.Linear | None = None  # added by VAE after the decoder (see _Base)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.trunk(x)  # (B, H)
        return self.mu(h), (self.logvar(h) if self.logvar is not None else None)


class Decoder(nn.Module):
    """z (B, z) -> logits (B, D); the hidden widths mirror the encoder's."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        sizes = [cfg.latent_dim, *reversed(cfg.hidden), cfg.input_dim]
        self.net = _mlp(sizes, cfg.activation, final_activation=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class _Base(nn.Module):
    is_vae: bool = False

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config  # validated when it was made (ModelConfig.__post_init__)
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        if self.is_vae:
            # Created last, so that with the same seed an AE and a VAE get identical initial
            # weights in every layer they share: the comparison differs only in the objective.
            self.encoder.logvar = nn.Linear(self.encoder.out_features, config.latent_dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, D) in [0, 1] -> (mu (B, z), logvar (B, z) or None for an AE)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, z) -> logits (B, D); ``torch.sigmoid(logits)`` is the pixel mean in [0, 1]."""
        return self.decoder(z)

    def mean_image(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, z) -> pixel means E[x|z] (B, D) in [0, 1] under the model's likelihood."""
        return decoder_mean(self.decode(z), self.config.likelihood)


class VAE(_Base):
    """Gaussian-encoder VAE with a standard normal prior p(z) = N(0, I)."""

    is_vae = True

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, D) in [0, 1] -> (mu (B, z), logvar (B, z))."""
        mu, logvar = self.encoder(x)
        if logvar is None:  # set in _Base.__init__ for every VAE
            raise RuntimeError("this VAE's encoder has no logvar head")
        return mu, logvar

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, D) -> (logits (B, D), mu (B, z), logvar (B, z), z (B, z)) with z = mu + sigma * eps."""
        mu, logvar = self.encode(x)
        assert logvar is not None
        eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)  # (B, z)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mu, logvar, z


class AE(_Base):
    """Deterministic autoencoder with the same encoder trunk and decoder as the VAE."""

    is_vae = False

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, None, torch.Tensor]:
        """x (B, D) -> (logits (B, D), code (B, z), None, code (B, z))."""
        code, _ = self.encode(x)
        return self.decode(code), code, None, code


def build_model(config: ModelConfig | dict[str, Any]) -> AE | VAE:
    """Build an :class:`AE` or :class:`VAE` from a config (or its dict form)."""
    cfg = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
    return VAE(cfg) if cfg.kind == "vae" else AE(cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
