"""The classic VAE mistakes, trained live beside the correct loss (the Pitfalls page, 常见错误).

Each mistake is one line of code that differs from the correct objective. :func:`mistaken_terms`
is that line; :func:`mistaken_objective` hands it to :class:`vae_core.train.Trainer` as the
objective it minimises, so a mistaken run is an ordinary training run: same trainer, same model
init, seed and batch order as its correct twin (:func:`run_pair`). The trainer knows no lesson. What each run *reports* is its own (mistaken) objective;
what it *is* is measured afterwards by the correct tools (:func:`vae_core.evaluate.dataset_metrics`,
the empirical moments of the z it samples, the gradient of its reconstruction term).

The mistakes (readers of the well-known VAE examples keep making them):

- ``per_pixel_mean``: reconstruction averaged over pixels while the KL is summed: beta = D in effect.
- ``bce_grey``: binary cross-entropy on grey pixels reported as log p(x) (a likelihood choice,
  not a code change: compared with the continuous Bernoulli and with dynamic binarization).
- ``sigma_squared`` / ``logvar_as_sigma``: z = mu + sigma^2 eps, or log sigma^2 used as sigma.
- ``detached_z``: z sampled without a path for the gradient.
- ``kl_sign``: the KL's sign flipped.

Every figure is in nats per image. Nothing here imports streamlit.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch

from .data import Dataset, to_float
from .elbo import ELBOTerms, combine_terms, kl_per_dim, recon_log_likelihood
from .errors import Msg
from .evaluate import dataset_metrics
from .models import AE, VAE, ModelConfig
from .train import Objective, TrainConfig, Trainer, elbo_objective

__all__ = [
    "MISTAKES",
    "SECTIONS",
    "Section",
    "mistaken_terms",
    "mistaken_objective",
    "sample_z",
    "z_moments",
    "recon_grad_norms",
    "PitfallRun",
    "PitfallPair",
    "run_pair",
    "pair_steps",
    "load_results",
    "save_results",
    "SHIPPED_RESULTS",
    "main",
]

MISTAKES = ("per_pixel_mean", "sigma_squared", "logvar_as_sigma", "detached_z", "kl_sign")
SHIPPED_RESULTS = Path(__file__).resolve().parent.parent / "checkpoints" / "pitfalls.json"


@dataclass(frozen=True)
class Section:
    """One section of the Pitfalls page: the correct run and the mistaken one differ only as listed."""

    key: str  # the section's id (the page translates its title and explanation)
    correct: dict[
        str, Any
    ]  # overrides of the correct run: "likelihood" (ModelConfig), "objective" (a mistake's name)
    mistaken: dict[str, Any]  # ... and of the mistaken run
    correct_line: str  # the one line of code as it should be
    mistaken_line: str  # the line as the mistake writes it


class _BaseModel(TypedDict):
    """The ModelConfig fields that every pair shares."""

    latent_dim: int  # z
    hidden: tuple[int, ...]  # hidden widths of the encoder (the decoder mirrors them)


# Shared by both runs of every pair: digits, z = 8, a small MLP; about 1 to 3 s a run on 2 cores.
BASE_MODEL: _BaseModel = {"latent_dim": 8, "hidden": (128,)}
BASE_TRAIN = {"dataset": "digits", "epochs": 40, "batch_size": 64, "lr": 2e-3, "seed": 0, "eval_size": 359}

SECTIONS: dict[str, Section] = {
    "per_pixel_mean": Section(
        "per_pixel_mean",
        {},
        {"objective": "per_pixel_mean"},
        "loss = -log_px_z.sum(1).mean() + kl.sum(1).mean()",
        "loss = -log_px_z.mean() + kl.sum(1).mean()   # mean over pixels too: beta = D",
    ),
    "bce_grey": Section(
        "bce_grey",
        {"likelihood": "continuous_bernoulli"},
        {"likelihood": "bernoulli"},
        "log_px_z = bce_logits(x, logits) + log_C(logits)   # continuous Bernoulli: a density on [0, 1]",
        "log_px_z = -F.binary_cross_entropy_with_logits(logits, x)   # on grey x: not a log-likelihood",
    ),
    "sigma_squared": Section(
        "sigma_squared",
        {},
        {"objective": "sigma_squared"},
        "z = mu + torch.exp(0.5 * logvar) * eps",
        "z = mu + torch.exp(logvar) * eps   # sigma^2, not sigma",
    ),
    "logvar_as_sigma": Section(
        "logvar_as_sigma",
        {},
        {"objective": "logvar_as_sigma"},
        "z = mu + torch.exp(0.5 * logvar) * eps",
        "z = mu + logvar * eps   # log sigma^2 used as sigma",
    ),
    "detached_z": Section(
        "detached_z",
        {},
        {"objective": "detached_z"},
        "z = mu + torch.exp(0.5 * logvar) * eps",
        "z = (mu + torch.exp(0.5 * logvar) * eps).detach()   # no path for the gradient",
    ),
    "kl_sign": Section(
        "kl_sign",
        {},
        {"objective": "kl_sign"},
        "loss = -(log_px_z - kl).mean()",
        "loss = -(log_px_z + kl).mean()   # the KL's sign flipped",
    ),
}


# --------------------------------------------------------------------------- the one differing line
def sample_z(mistake: str | None, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z from q's parameters mu, logvar (B, z) and noise eps (B, z), as the ``mistake`` writes it: (B, z).

    ``None`` (or any mistake that is not about sampling) is the reparameterization z = mu + sigma eps.
    """
    if mistake == "sigma_squared":
        return mu + torch.exp(logvar) * eps
    if mistake == "logvar_as_sigma":
        return mu + logvar * eps
    z = mu + torch.exp(0.5 * logvar) * eps
    return z.detach() if mistake == "detached_z" else z


def mistaken_terms(
    mistake: str,
    model: AE | VAE,
    x: torch.Tensor,
    beta: float = 1.0,
    free_bits: float = 0.0,
    generator: torch.Generator | None = None,
) -> ELBOTerms:
    """The training terms of a VAE on a batch x (B, D) with one classic mistake: ELBOTerms, nats per example.

    ``recon``, ``kl`` and ``elbo`` are what the mistaken code computes and would report; ``loss``
    is what it minimises. Only the line named by ``mistake`` (one of :data:`MISTAKES`) differs
    from :func:`vae_core.elbo.elbo_terms`. An AE raises ValueError.
    """
    if mistake not in MISTAKES:
        raise ValueError(f"unknown mistake {mistake!r}; use one of {MISTAKES}")
    if not model.is_vae:
        raise ValueError("the pitfalls are VAE mistakes: an AE has no q(z|x) to sample or KL to weigh")
    cfg = model.config
    mu, logvar = model.encode(x)
    if logvar is None:  # only an AE's encoder gives none, and is_vae turned it away above
        raise ValueError("the pitfalls are VAE mistakes: this encoder gives no logvar")
    eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
    z = sample_z(mistake, mu, logvar, eps)
    recon = recon_log_likelihood(x, model.decode(z), cfg.likelihood, cfg.obs_std)  # (B,)
    if mistake == "per_pixel_mean":
        recon = recon / x.shape[-1]  # the mean over pixels: the reconstruction term shrinks D times
    t = combine_terms(recon, kl_per_dim(mu, logvar), beta, free_bits)
    if mistake == "kl_sign":
        loss = -recon.mean() - beta * t.kl.mean()
        return ELBOTerms(recon, t.kl_per_dim, t.kl, recon + t.kl, loss)
    return t


def mistaken_objective(mistake: str) -> Objective:
    """The objective a :class:`~vae_core.train.Trainer` minimises to train ``mistake`` (one of :data:`MISTAKES`):
    :func:`mistaken_terms` with that mistake, called as the trainer calls its objective."""
    if mistake not in MISTAKES:
        raise ValueError(f"unknown mistake {mistake!r}; use one of {MISTAKES}")

    def objective(
        model: AE | VAE, x: torch.Tensor, beta: float, free_bits: float, generator: torch.Generator
    ) -> ELBOTerms:
        if not isinstance(model, VAE):
            raise ValueError("the pitfalls are VAE mistakes: an AE has no q(z|x) to sample or KL to weigh")
        return mistaken_terms(mistake, model, x, beta, free_bits, generator)

    return objective


# --------------------------------------------------------------------------- measured consequences
@torch.no_grad()
def z_moments(
    model: VAE, x: torch.Tensor, mistake: str | None, n: int = 2000, seed: int = 0
) -> dict[str, float]:
    """How the z a run samples relates to the q it describes, averaged over images x (N, D).

    For each image, n draws of z by the run's sampler: ``var_ratio`` = mean over images and dims of
    Var[z] / sigma^2 (1 when z follows q), ``mean_shift`` = mean |E[z] - mu| / sigma (0 when it does).
    """
    xf = to_float(x)
    mu, logvar = model.encode(xf)  # (N, z)
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn((n, *mu.shape), generator=gen, dtype=mu.dtype)  # (n, N, z)
    z = sample_z(mistake, mu, logvar, eps)
    sigma = torch.exp(0.5 * logvar)
    ratio = z.var(0) / sigma.pow(2)
    shift = (z.mean(0) - mu).abs() / sigma
    return {
        "var_ratio": float(ratio.double().mean()),
        "var_ratio_median": float(ratio.double().median()),
        "mean_shift": float(shift.double().mean()),
        "sigma_mean": float(sigma.double().mean()),
    }


def recon_grad_norms(model: VAE, x: torch.Tensor, mistake: str | None, seed: int = 0) -> dict[str, float]:
    """L2 norm of the reconstruction term's gradient for each parameter tensor, on images x (N, D).

    The run's own sampler is used, so with ``detached_z`` the encoder's tensors get exactly 0:
    the reconstruction term cannot teach q anything. Keys are parameter names (``encoder.mu.weight``…).
    """
    xf = to_float(x)
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        mu, logvar = model.encode(xf)
        eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed), dtype=mu.dtype)
        z = sample_z(mistake, mu, logvar, eps)
        cfg = model.config
        recon = recon_log_likelihood(xf, model.decode(z), cfg.likelihood, cfg.obs_std).mean()
        params = [(k, p) for k, p in model.named_parameters()]
        grads = torch.autograd.grad(-recon, [p for _, p in params], allow_unused=True)
    return {k: (0.0 if g is None else float(g.norm())) for (k, _), g in zip(params, grads)}


@dataclass
class PitfallRun:
    """One training run of a pair and what was measured on it. Nats per image."""

    label: str  # "correct" or "mistaken"
    mistake: str | None
    likelihood: str
    state: str  # the trainer's final state ("finished", "diverged", …)
    message: str
    seconds: float
    steps: int
    history: dict[str, list]  # step, loss, recon, kl (what the run reported), thinned
    metrics: dict[str, Any]  # vae_core.evaluate.dataset_metrics of the final model, on the test split
    kl_per_dim: list[float]  # (z,) test KL per latent dim
    z_moments: dict[str, float]  # z_moments under the run's own sampler
    grad_norms: dict[str, float]  # recon_grad_norms under the run's own sampler
    recon: list[list[float]]  # (8, D) reconstructions of the first 8 test images, in [0, 1]
    samples: list[list[float]]  # (16, D) decoded prior samples, pixel means in [0, 1]
    extra: dict[str, Any] = field(
        default_factory=dict
    )  # section-specific figures (bce_grey's likelihood gaps)
    message_template: str = (
        ""  # the trainer's message as a template and its parameters (vae_core.errors.Msg),
    )
    message_params: dict[str, Any] = field(default_factory=dict)  # so a page shows it in its own language

    def status(self) -> Msg | str:
        """The trainer's final message, translatable (a :class:`~vae_core.errors.Msg`) where it was recorded so."""
        return Msg(self.message_template, **self.message_params) if self.message_template else self.message

    @property
    def encoder_grad_norm(self) -> float:
        """The largest L2 norm of ∂(−recon)/∂θ over the encoder's parameter tensors (``grad_norms``, nats per image
        per unit of θ): 0 when the reconstruction term sends the encoder no gradient (a detached z)."""
        return max((v for k, v in self.grad_norms.items() if k.startswith("encoder.")), default=0.0)


@dataclass
class PitfallPair:
    """A section's two runs, correct and mistaken, on the same model init, seed and batches."""

    section: str
    correct: PitfallRun
    mistaken: PitfallRun
    image_shape: tuple[int, int, int]
    test_images: list[list[float]]  # (8, D) the inputs of the reconstructions, in [0, 1]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PitfallPair:
        """Rebuild from :meth:`to_dict`."""
        return cls(
            d["section"],
            PitfallRun(**d["correct"]),
            PitfallRun(**d["mistaken"]),
            tuple(d["image_shape"]),
            d["test_images"],
        )


def _thin(history: dict[str, list], keep: int = 300) -> dict[str, list]:
    n = len(history.get("step") or [])
    idx = np.unique(np.linspace(0, n - 1, min(n, keep)).astype(int)) if n else np.array([], dtype=int)
    return {
        k: [history[k][i] for i in idx]
        for k in ("step", "loss", "recon", "kl")
        if len(history.get(k) or []) == n
    }


def _rounded(images: torch.Tensor) -> list[list[float]]:
    """Pixel values to 3 decimals (finer than a uint8 step): what the shipped file stores."""
    return np.round(images.detach().cpu().double().numpy(), 3).tolist()


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _run(
    section: Section,
    which: str,
    ds: Dataset,
    overrides: dict[str, Any],
    seed: int,
    on_trainer: Callable[[Trainer], None] | None,
) -> PitfallRun:
    mcfg = ModelConfig(
        kind="vae",
        input_dim=ds.dim,
        image_shape=ds.image_shape,
        hidden=BASE_MODEL["hidden"],
        latent_dim=BASE_MODEL["latent_dim"],
        likelihood=overrides.get("likelihood", "bernoulli"),
    )
    tcfg = TrainConfig.from_dict({**BASE_TRAIN, "seed": seed})
    mistake = overrides.get("objective")
    objective = mistaken_objective(mistake) if mistake else elbo_objective
    t0 = time.perf_counter()
    tr = Trainer(mcfg, tcfg, dataset=ds, device="cpu", objective=objective)
    if on_trainer is not None:  # a worker's job watches its steps (progress) and may stop it
        on_trainer(tr)
    tr.run()
    seconds = time.perf_counter() - t0
    model = tr.model_copy()
    if not isinstance(model, VAE):  # mcfg.kind is "vae"; the measures below need q(z|x)
        raise TypeError(f"the pitfalls need a VAE, the trainer built {type(model).__name__}")
    x = ds.x_test
    m = dataset_metrics(model, x, seed=seed)
    with torch.no_grad():
        xs = to_float(x[:8])
        recon = model.mean_image(model.encode(xs)[0])
        samples = model.mean_image(
            torch.randn((16, mcfg.latent_dim), generator=torch.Generator().manual_seed(seed))
        )
    run = PitfallRun(
        label=which,
        mistake=mistake,
        likelihood=mcfg.likelihood,
        state=str(tr.state.value),
        message=str(tr.message),
        message_template=getattr(tr.message, "template", ""),
        message_params={
            k: (v if isinstance(v, (int, float, str)) else str(v))
            for k, v in getattr(tr.message, "params", {}).items()
        },
        seconds=seconds,
        steps=tr.global_step,
        history=_thin(tr.history.to_dict()),
        metrics={k: v for k, v in m.to_dict().items() if k not in ("kl_per_dim", "var_mu")},
        kl_per_dim=m.kl_per_dim,
        z_moments=z_moments(model, x[:64], mistake, seed=seed),
        grad_norms=recon_grad_norms(model, x[:256], mistake, seed=seed),
        recon=_rounded(recon),
        samples=_rounded(samples),
    )
    if section.key == "bce_grey":
        run.extra = _likelihood_gaps(model, x, seed)
    run.history = {
        k: [(_finite(float(f"{v:.5g}")) if isinstance(v, float) else v) for v in vals]
        for k, vals in run.history.items()
    }
    return run


@torch.no_grad()
def _likelihood_gaps(model: VAE, x: torch.Tensor, seed: int) -> dict[str, Any]:
    """For one model: per-image one-sample log p(x|z) under BCE and under the continuous Bernoulli on
    grey images, and under BCE on binarized images: nats per image (the first 64 test images)."""
    from .data import binarize  # noqa: PLC0415

    xs = to_float(x[:64])
    gen = torch.Generator().manual_seed(seed)
    logits, mu, logvar, _ = model(xs, generator=gen)
    bce = recon_log_likelihood(xs, logits, "bernoulli")
    cb = recon_log_likelihood(xs, logits, "continuous_bernoulli")
    xb = binarize(xs, torch.Generator().manual_seed(seed))
    logits_b, _, _, _ = model(xb, generator=torch.Generator().manual_seed(seed))
    binar = recon_log_likelihood(xb, logits_b, "bernoulli")
    r = lambda t: np.round(t.double().numpy(), 3).tolist()  # noqa: E731
    return {
        "bce_grey": r(bce),
        "cb_grey": r(cb),
        "bce_binarized": r(binar),
        "gap_mean": float((cb - bce).double().mean()),
        "d_log2": x.shape[-1] * math.log(2.0),
    }


def run_pair(
    section: str, ds: Dataset, seed: int = 0, on_trainer: Callable[[Trainer], None] | None = None
) -> PitfallPair:
    """Train the correct and the mistaken run of ``section`` (a key of :data:`SECTIONS`) on ``ds``.

    Same model config, init, seed and batch order; about 1–3 s a run for the 8x8 digits on 2 cores.
    ``on_trainer`` is called with each run's :class:`~vae_core.train.Trainer` before it trains (a
    worker's job adds its progress callback there). The app runs this as a worker job
    (:class:`vae_core.jobs.PitfallJob`), never in the server.
    """
    if section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}; use one of {tuple(SECTIONS)}")
    sec = SECTIONS[section]
    good = _run(sec, "correct", ds, sec.correct, seed, on_trainer)
    bad = _run(sec, "mistaken", ds, sec.mistaken, seed, on_trainer)
    return PitfallPair(section, good, bad, ds.image_shape, _rounded(to_float(ds.x_test[:8])))


def pair_steps(ds: Dataset) -> int:
    """Training steps of one :func:`run_pair` on ``ds``, both runs together (what its progress counts)."""
    cfg = TrainConfig.from_dict(BASE_TRAIN)
    return 2 * math.ceil(ds.x_train.shape[0] / cfg.batch_size) * cfg.epochs


def save_results(pairs: dict[str, PitfallPair], path: str | Path = SHIPPED_RESULTS) -> Path:
    """Write the pairs as one JSON file (what the Pitfalls page opens on), atomically."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    body = {
        "format": "vae-lab-pitfalls",
        "version": 1,
        "base_model": BASE_MODEL,
        "base_train": BASE_TRAIN,
        "pairs": {k: p.to_dict() for k, p in pairs.items()},
    }
    tmp.write_text(json.dumps(body, allow_nan=False, default=_json_default) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def load_results(path: str | Path = SHIPPED_RESULTS) -> dict[str, PitfallPair]:
    """The recorded pairs, by section; ``{}`` when the file is missing. JSON only: nothing is unpickled."""
    path = Path(path)
    if not path.exists():
        return {}
    body = json.loads(path.read_text(encoding="utf-8"))
    if body.get("format") != "vae-lab-pitfalls":
        raise ValueError(f"{path.name} is not a recorded pitfalls file")
    return {k: PitfallPair.from_dict(v) for k, v in body["pairs"].items()}


def main(argv: list[str] | None = None) -> int:
    """CLI: train every pair and write the recorded results the Pitfalls page opens on."""
    from .data import load_dataset  # noqa: PLC0415

    p = argparse.ArgumentParser(
        prog="python -m vae_core.pitfalls", description="Train every pitfall pair on digits."
    )
    p.add_argument("--out", default=str(SHIPPED_RESULTS))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    ds = load_dataset("digits")
    pairs = {}
    for key in SECTIONS:
        t0 = time.perf_counter()
        pairs[key] = run_pair(key, ds, seed=args.seed)
        pr = pairs[key]
        print(
            f"{key}: correct {pr.correct.state} {pr.correct.metrics['neg_elbo']:.2f}, mistaken {pr.mistaken.state} "
            f"{pr.mistaken.metrics['neg_elbo']:.2f} nats/image, active units {pr.correct.metrics['active_units']} vs "
            f"{pr.mistaken.metrics['active_units']} ({time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
    print(f"wrote {save_results(pairs, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
