"""Standalone PyTorch code for what a page computes: the model, the loss, one training step and the IWAE estimate.

The Train, ELBO and Pitfalls pages show it ("The code"), generated here from the same configs the lab trains with
(:class:`~vae_core.models.ModelConfig`, :class:`~vae_core.train.TrainConfig`, a section of
:data:`vae_core.pitfalls.SECTIONS`). The code needs only torch and safetensors, reads as pytorch/examples'
``vae/main.py`` does (a plain ``nn.Module``, ``F.binary_cross_entropy_with_logits`` where the lab's term is that),
and is specialised to the config: only the likelihood, β, free bits and warm-up in force appear in it.

Its layer names are the lab's (``encoder.trunk.0.weight`` …, as :mod:`vae_core.models` builds them), so a checkpoint
written by :mod:`vae_core.checkpoint` loads with ``load_state_dict(load_file(path))``. Its noise ε is passed in, not
drawn, so that tests/test_standalone.py runs it on the lab's batch and ε and finds the lab's loss and log p̂_K(x)
(nats per image) to a relative 1e-9 in float64. Nothing here imports streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .data import DATASETS
from .models import ACTIVATIONS, ConfigError, ModelConfig
from .pitfalls import BASE_MODEL, BASE_TRAIN, SECTIONS
from .train import TrainConfig

__all__ = ["Snippet", "train_code", "checkpoint_code", "pitfall_code", "pitfall_configs", "MAX_LINES"]

# The longest the generated code may be, for any config the Train page accepts with at most 2 hidden layers.
MAX_LINES = 80
WIDTH = 110  # ruff format's line length: a longer Sequential is wrapped as ruff format wraps it


@dataclass(frozen=True)
class Snippet:
    """Generated code and the file name a page offers it under (ASCII, ``.py``)."""

    code: str  # the whole file, ending with a newline
    file_name: str  # e.g. "vae_784_400_20_bernoulli.py"


# The one line of the loss each pitfall writes differently: (the slot of the loss it replaces, the mistaken line).
# "bce_grey" is a likelihood choice, not a code change: the correct run uses the continuous Bernoulli.
# Keep in step with vae_core.pitfalls (sample_z, mistaken_terms): tests/test_standalone.py checks each one's loss.
MISTAKEN_LINES = {
    "per_pixel_mean": (
        "recon",
        "recon = log_px_z(x, model.decode(z)) / {d}  # a mean over the {d} pixels: beta = {d}",
    ),
    "bce_grey": (
        "recon",
        'recon = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)  # -BCE on grey x',
    ),
    "sigma_squared": ("z", "z = mu + torch.exp(logvar) * eps  # sigma^2, not sigma"),
    "logvar_as_sigma": ("z", "z = mu + logvar * eps  # log sigma^2 used as sigma"),
    "detached_z": ("z", "z = (mu + torch.exp(0.5 * logvar) * eps).detach()  # no path for the gradient"),
    "kl_sign": ("loss", "loss = -recon.mean() - kl.sum(1).mean()  # the KL's sign flipped"),
}


def _sequential(prefix: str, sizes: list[int], activation: str, final_activation: bool) -> list[str]:
    """``prefix`` + ``nn.Sequential(...)`` of the layers ``vae_core.models._mlp`` builds for ``sizes``, in the same
    order (so with the same indices: ``trunk.0``, ``trunk.2`` …), ``nn.Identity()`` for none; wrapped as ruff format
    wraps it. ``prefix`` is the indented start of the line (``"        self.encoder.trunk = "``)."""
    if len(sizes) < 2:
        return [prefix + "nn.Identity()"]
    act = f"nn.{ACTIVATIONS[activation].__name__}()"
    layers: list[str] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(f"nn.Linear({a}, {b})")
        if i < len(sizes) - 2 or final_activation:
            layers.append(act)
    args = ", ".join(layers)
    indent = " " * (len(prefix) - len(prefix.lstrip()))
    if len(prefix) + len(args) + len("nn.Sequential()") <= WIDTH:
        return [f"{prefix}nn.Sequential({args})"]
    if len(indent) + 4 + len(args) <= WIDTH:
        return [f"{prefix}nn.Sequential(", f"{indent}    {args}", f"{indent})"]
    return [f"{prefix}nn.Sequential(", *(f"{indent}    {layer}," for layer in layers), f"{indent})"]


def _model_lines(cfg: ModelConfig) -> list[str]:
    """The model class: the lab's encoder (a trunk, then the mu and, for a VAE, logvar heads) and decoder."""
    d, zd, hid = cfg.input_dim, cfg.latent_dim, list(cfg.hidden)
    last = hid[-1] if hid else d
    name = "VAE" if cfg.kind == "vae" else "AE"
    lines = [
        f"class {name}(nn.Module):",
        "    def __init__(self):  # the lab's layer names (encoder.trunk.0.weight, ...): its checkpoints load",
        "        super().__init__()",
        "        self.encoder = nn.Module()",
        *_sequential("        self.encoder.trunk = ", [d, *hid], cfg.activation, True),
        f"        self.encoder.mu = nn.Linear({last}, {zd})",
    ]
    if cfg.kind == "vae":
        lines.append(f"        self.encoder.logvar = nn.Linear({last}, {zd})")
    lines += [
        "        self.decoder = nn.Module()",
        *_sequential("        self.decoder.net = ", [zd, *reversed(hid), d], cfg.activation, False),
        "",
    ]
    if cfg.kind == "vae":
        lines += [
            f"    def encode(self, x):  # x (B, {d}) in [0, 1] -> mu, logvar (B, {zd})",
            "        h = self.encoder.trunk(x)",
            "        return self.encoder.mu(h), self.encoder.logvar(h)",
        ]
    else:
        lines += [
            f"    def encode(self, x):  # x (B, {d}) in [0, 1] -> the code (B, {zd})",
            "        return self.encoder.mu(self.encoder.trunk(x))",
        ]
    return lines + [
        "",
        f"    def decode(self, z):  # z (..., {zd}) -> logits (..., {d})",
        "        return self.decoder.net(z)",
    ]


BCE = 'F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")'


def _likelihood_lines(cfg: ModelConfig) -> list[str]:
    """``log_px_z(x, logits)``: log p(x|z) summed over pixels, (...,) nats, as :func:`vae_core.elbo.recon_log_likelihood`
    computes it for ``cfg.likelihood`` (x broadcasts against the logits)."""
    head = "def log_px_z(x, logits):  # log p(x|z), summed over the pixels: "
    if cfg.likelihood == "bernoulli":
        return [head + "Bernoulli, minus the binary cross-entropy", f"    return -{BCE}.sum(-1)"]
    if cfg.likelihood == "continuous_bernoulli":
        return [
            head + "continuous Bernoulli, -BCE + log C(logits)",
            "    a = logits.abs().clamp(min=1e-6)  # C = l / tanh(l / 2) is even in the logits l, and 2 at l = 0",
            "    log_c = torch.log(a) - torch.log(torch.tanh(a / 2))",
            f"    return (log_c - {BCE}).sum(-1)",
        ]
    if cfg.likelihood == "gaussian":
        return [
            head + "Gaussian N(sigmoid(logits), SCALE^2)",
            '    mse = F.mse_loss(torch.sigmoid(logits), x.expand_as(logits), reduction="none").sum(-1)',
            f"    return -mse / (2 * SCALE**2) - {cfg.input_dim} * math.log(SCALE * math.sqrt(2 * math.pi))",
        ]
    if cfg.likelihood == "laplace":
        return [
            head + "Laplace(sigmoid(logits), SCALE)",
            '    l1 = F.l1_loss(torch.sigmoid(logits), x.expand_as(logits), reduction="none").sum(-1)',
            f"    return -l1 / SCALE - {cfg.input_dim} * math.log(2 * SCALE)",
        ]
    raise ValueError(f"unknown likelihood {cfg.likelihood!r}")


def _loss_lines(cfg: ModelConfig, tc: TrainConfig, mistake: str | None) -> list[str]:
    """``loss_function``: what :func:`vae_core.train.elbo_objective` minimises, with ε passed in (nats per image);
    with ``mistake`` (a pitfall), its mistaken line under ``if mistaken:`` after the correct one."""
    if cfg.kind == "ae":
        return [
            "def loss_function(model, x):  # an AE has no KL: its loss is the reconstruction cost alone",
            "    return -log_px_z(x, model.decode(model.encode(x))).mean()",
        ]
    zd = cfg.latent_dim
    args = (
        "model, x, eps" + (", step" if tc.warmup_steps > 0 else "") + (", mistaken=False" if mistake else "")
    )
    slot, wrong = MISTAKEN_LINES[mistake] if mistake else ("", "")
    wrong = wrong.format(d=cfg.input_dim)

    def line(name: str, correct: str) -> list[str]:
        if name != slot:
            return [f"    {correct}"]
        return [f"    {correct}", "    if mistaken:  # the pitfall", f"        {wrong}"]

    recon = "recon = log_px_z(x, model.decode(z))  # (B,)"
    if slot == "recon" and mistake == "bce_grey":  # the mistaken line needs the logits
        body = ["    logits = model.decode(z)", *line("recon", "recon = log_px_z(x, logits)  # (B,)")]
    else:
        body = line("recon", recon)
    kl_loss = "kl.sum(1).mean()"
    terms = [
        name
        for name, used in (
            ("beta", tc.beta != 1.0),
            ("free bits", tc.free_bits > 0),
            ("warm-up", tc.warmup_steps > 0),
        )
        if used
    ]
    objective = f"-ELBO with {', '.join(terms)}" if terms else "-ELBO"
    lines = [
        f"def loss_function({args}):  # {objective}; eps (B, {zd}) ~ N(0, I), passed in",
        "    mu, logvar = model.encode(x)",
        *line("z", "z = mu + torch.exp(0.5 * logvar) * eps  # the reparameterization trick"),
        *body,
        f"    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)  # (B, {zd}): KL(q(z|x) || N(0, I)) per dim",
    ]
    if tc.free_bits > 0:
        lines.append(
            "    kl_loss = torch.clamp(kl.mean(0), min=FREE_BITS).sum()  # free bits: >= FREE_BITS per dim"
        )
        kl_loss = "kl_loss"
    if tc.warmup_steps > 0:
        lines.append(
            "    beta = BETA * min(1.0, (step + 1) / WARMUP_STEPS)  # KL warm-up: 0 -> BETA, linearly"
        )
        weight = "beta * "
    else:
        weight = "" if tc.beta == 1.0 else "BETA * "
    if slot == "loss":
        return lines + line("loss", f"loss = -recon.mean() + {weight}{kl_loss}") + ["    return loss"]
    return lines + [f"    return -recon.mean() + {weight}{kl_loss}"]


def _step_lines(cfg: ModelConfig, tc: TrainConfig, mistake: str | None) -> list[str]:
    """``train_step``: one Adam step on a batch, as :meth:`vae_core.train.Trainer.step` takes it."""
    vae = cfg.kind == "vae"
    extra = (", step" if vae and tc.warmup_steps > 0 else "") + (", mistaken=False" if mistake else "")
    args = ("model, optimizer, x, eps" if vae else "model, optimizer, x") + extra
    call = ("model, x, eps" if vae else "model, x") + extra.replace("=False", "=mistaken")
    lines = [f"def train_step({args}):"]
    if tc.binarize:
        lines.append("    x = torch.bernoulli(x)  # dynamic binarization: a fresh binary image each step")
    return lines + [
        "    optimizer.zero_grad()",
        f"    loss = loss_function({call})",
        "    loss.backward()",
        "    optimizer.step()",
        "    return loss.item()",
    ]


def _iwae_lines(cfg: ModelConfig) -> list[str]:
    """``log_p_hat``: log p̂_K(x) as :func:`vae_core.elbo.iwae_bound`, with the noise passed in."""
    zd = cfg.latent_dim
    return [
        "@torch.no_grad()",
        f"def log_p_hat(model, x, eps):  # IWAE log (1/K) sum_k p(x, z_k) / q(z_k|x); eps (K, B, {zd}) ~ N(0, I)",
        "    mu, logvar = model.encode(x)",
        f"    z = mu + torch.exp(0.5 * logvar) * eps  # (K, B, {zd}): z_k ~ q(z|x)",
        "    log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)  # log N(z; 0, I)",
        "    log_qz = -0.5 * ((z - mu).pow(2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)",
        "    log_w = log_px_z(x, model.decode(z)) + log_pz - log_qz  # (K, B)",
        "    return torch.logsumexp(log_w, 0) - math.log(eps.shape[0])  # (B,) nats per image",
    ]


def _main_lines(cfg: ModelConfig, tc: TrainConfig, mistake: str | None) -> list[str]:
    d, zd = cfg.input_dim, cfg.latent_dim
    name = "VAE" if cfg.kind == "vae" else "AE"
    lines = [
        'if __name__ == "__main__":  # python this_file.py [model.safetensors]',
        f"    model = {name}()",
        "    if len(sys.argv) > 1:  # a checkpoint the lab saved or downloaded",
        "        model.load_state_dict(load_file(sys.argv[1]))",
        "    optimizer = torch.optim.Adam(model.parameters(), lr=LR)",
        f"    x = torch.rand(BATCH_SIZE, {d})  # stands in for a batch of {tc.dataset} images, pixels in [0, 1]",
    ]
    if cfg.kind == "ae":
        return lines + ['    print("loss", train_step(model, optimizer, x))']
    eps = f"torch.randn(BATCH_SIZE, {zd})"
    step = ", step=0" if tc.warmup_steps > 0 else ""
    lines.append(f'    print("loss", train_step(model, optimizer, x, {eps}{step}))')
    if mistake:
        lines.append(f'    print("mistaken loss", loss_function(model, x, {eps}, mistaken=True).item())')
    return lines + [
        f'    print("log p_K(x)", log_p_hat(model, x[:8], torch.randn(K, 8, {zd})).mean().item())'
    ]


def _constants(cfg: ModelConfig, tc: TrainConfig, k: int) -> list[str]:
    vae = cfg.kind == "vae"
    names, values, notes = (
        ["LR", "BATCH_SIZE"],
        [repr(float(tc.lr)), str(tc.batch_size)],
        ["Adam's rate", "batch size"],
    )
    if vae:
        names.append("K")
        values.append(str(k))
        notes.append("importance samples")
    lines = [f"{', '.join(names)} = {', '.join(values)}  # {', '.join(notes)}"]
    names, values, notes = [], [], []
    if vae and (tc.beta != 1.0 or tc.warmup_steps > 0):
        names.append("BETA")
        values.append(repr(float(tc.beta)))
        notes.append("the KL weight")
    if vae and tc.free_bits > 0:
        names.append("FREE_BITS")
        values.append(repr(float(tc.free_bits)))
        notes.append("nats per latent dim")
    if vae and tc.warmup_steps > 0:
        names.append("WARMUP_STEPS")
        values.append(str(tc.warmup_steps))
        notes.append("steps of KL warm-up")
    if names:
        lines.append(f"{', '.join(names)} = {', '.join(values)}  # {', '.join(notes)}")
    if cfg.likelihood == "gaussian":
        lines.append(f"SCALE = {float(cfg.obs_std)!r}  # the Gaussian's sigma, pixel units")
    elif cfg.likelihood == "laplace":
        lines.append(f"SCALE = {float(cfg.obs_std)!r}  # the Laplace's scale b, pixel units")
    return lines


def _imports(cfg: ModelConfig) -> list[str]:
    stdlib = ["import math"] if cfg.kind == "vae" or cfg.likelihood in ("gaussian", "laplace") else []
    return [
        *stdlib,
        "import sys",
        "",
        "import torch",
        "import torch.nn.functional as F",
        "from safetensors.torch import load_file",
        "from torch import nn",
    ]


def _assemble(cfg: ModelConfig, tc: TrainConfig, k: int, title: str, mistake: str | None = None) -> list[str]:
    blocks = [
        [f'"""{title}', 'Needs only torch and safetensors; every figure is in nats per image."""'],
        _imports(cfg),
        _constants(cfg, tc, k),
        _model_lines(cfg),
        _likelihood_lines(cfg),
        _loss_lines(cfg, tc, mistake),
        _step_lines(cfg, tc, mistake),
    ]
    if cfg.kind == "vae":
        blocks.append(_iwae_lines(cfg))
    blocks.append(_main_lines(cfg, tc, mistake))
    out: list[str] = []
    for i, block in enumerate(blocks):
        if i:
            out += [""] if i in (1, 2) else ["", ""]  # PEP 8: two blank lines around top-level definitions
        out += [part for line in block for part in _fit(line)]
    return out


def _fit(line: str) -> list[str]:
    """``line``, or its trailing comment on a line of its own above it where the two overrun WIDTH (ruff format
    would otherwise wrap the code to make room for the comment)."""
    code, sep, comment = line.partition("  # ")
    if len(line) <= WIDTH or not sep:
        return [line]
    indent = code[: len(code) - len(code.lstrip())]
    return [f"{indent}# {comment}", code]


def _file_name(cfg: ModelConfig, suffix: str = "") -> str:
    arch = "_".join(str(v) for v in (cfg.input_dim, *cfg.hidden, cfg.latent_dim))
    return f"{cfg.kind}_{arch}_{cfg.likelihood}{suffix}.py"


def train_code(model_config: ModelConfig, train_config: TrainConfig | None = None, k: int = 1000) -> Snippet:
    """The standalone code that trains ``model_config`` with ``train_config`` (defaults: TrainConfig()) and
    estimates log p̂_K(x) with ``k`` importance samples (a VAE only): model, loss, one step, IWAE."""
    tc = train_config if train_config is not None else TrainConfig(dataset="digits")
    if k < 1:
        raise ValueError(f"K must be >= 1, got {k}")
    what = "model, loss, one step" + (", IWAE" if model_config.kind == "vae" else "")
    title = f"{model_config.describe()} as the VAE Workshop Lab trains it: {what}."
    lines = _assemble(model_config, tc, k, title)
    return Snippet("\n".join(lines) + "\n", _file_name(model_config))


def checkpoint_code(model_config: ModelConfig, metadata: dict[str, Any], k: int = 1000) -> Snippet:
    """:func:`train_code` for a loaded checkpoint: its model config and the training settings its metadata records
    (``train_config``; the defaults where that record is missing or invalid, as in a file made elsewhere)."""
    record = metadata.get("train_config")
    try:
        tc = TrainConfig.from_dict(record) if isinstance(record, dict) else None
    except (ConfigError, TypeError, ValueError):
        tc = None
    if tc is None:
        tc = TrainConfig(dataset=str(metadata.get("dataset", "digits")))
    return train_code(model_config, tc, k)


def pitfall_configs(section: str) -> tuple[ModelConfig, ModelConfig, TrainConfig]:
    """(the correct run's ModelConfig, the mistaken run's, their TrainConfig) of a Pitfalls ``section`` (a key of
    :data:`vae_core.pitfalls.SECTIONS`), as :func:`vae_core.pitfalls.run_pair` trains them on digits."""
    if section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}; use one of {tuple(SECTIONS)}")
    sec = SECTIONS[section]
    shape = DATASETS[str(BASE_TRAIN["dataset"])].image_shape
    common = dict(kind="vae", input_dim=shape[0] * shape[1] * shape[2], image_shape=shape, **BASE_MODEL)
    correct = ModelConfig(likelihood=sec.correct.get("likelihood", "bernoulli"), **common)  # type: ignore[arg-type]
    mistaken = ModelConfig(likelihood=sec.mistaken.get("likelihood", "bernoulli"), **common)  # type: ignore[arg-type]
    return correct, mistaken, TrainConfig.from_dict(BASE_TRAIN)


def pitfall_code(section: str, k: int = 1000) -> Snippet:
    """The standalone code of a Pitfalls ``section``: the correct loss, with the mistaken line under
    ``if mistaken:`` right after the correct one (``loss_function(..., mistaken=True)`` is the mistaken run's loss)."""
    correct, _mistaken, tc = pitfall_configs(section)
    title = f"Pitfall {section}: the correct VAE loss, and the mistaken line under `if mistaken:`."
    lines = _assemble(correct, tc, k, title, mistake=section)
    return Snippet("\n".join(lines) + "\n", f"pitfall_{section}.py")
