"""Dataset metrics of one model: test -ELBO, reconstruction, KL, active units, low-KL units and the IWAE NLL.

One function, :func:`dataset_metrics`, with one result type, :class:`DatasetMetrics`, serves
the trainer's evaluations, the ELBO and AE-vs-VAE pages, the checkpoint-regeneration script and
this module's CLI::

    python -m vae_core.evaluate checkpoints/fmnist_vae_z16.safetensors --k 1000 --n 1000

Every figure is in nats per image.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .data import binarize as binarize_pixels
from .data import to_float
from .elbo import elbo_terms, iwae_bound
from .errors import N_
from .models import AE, VAE

__all__ = [
    "ACTIVE_THRESHOLD",
    "ELBO_SEED_OFFSET",
    "DatasetMetrics",
    "dataset_metrics",
    "LOW_KL_THRESHOLD",
    "latent_variance",
    "low_kl_units",
    "iwae_nll",
    "main",
]

ACTIVE_THRESHOLD = 0.01  # a latent dim is "active" when Var_x[mu_j] exceeds this (Burda et al. 2016)
# A latent dim "carries almost nothing" when its KL(q(z_j|x) || p(z_j)), averaged over the images, is under this many
# nats per image. That mean KL bounds the information z_j holds about x (E_x KL_j = I(x; z_j) + KL(q(z_j) || p(z_j)) >=
# I(x; z_j)), so such a dim tells the decoder less than 0.1 nats (0.14 bits, a seventh of one yes/no question) about
# an image. A collapsed dim of a trained VAE sits near 0.01-0.02 nats and a used one at a nat or more: the threshold
# lies an order of magnitude from both. It differs from ACTIVE_THRESHOLD, which looks at Var_x[mu_j] alone: a dim
# with Var_x[mu_j] = 0.02 and sigma_j ~ 1 is "active" by Burda et al.'s count yet carries ~0.01 nats.
LOW_KL_THRESHOLD = 0.1
ELBO_SEED_OFFSET = 3  # the ELBO pass draws its noise from seed + 3: the trainer's own evaluation seed


def latent_variance(mu: torch.Tensor) -> torch.Tensor:
    """Var_x[mu_j] per latent dim from codes mu (N, z): (z,) float64, the unbiased sample variance.

    The activity statistic of Burda et al. (2016); dims above :data:`ACTIVE_THRESHOLD` are active.
    Zeros when N < 2 (no spread can be measured).
    """
    mu = mu.double()
    if mu.shape[0] < 2:
        return torch.zeros(mu.shape[1], dtype=torch.float64, device=mu.device)
    return mu.var(0, unbiased=True)


def low_kl_units(
    kl_per_dim: Sequence[float | None] | torch.Tensor, threshold: float = LOW_KL_THRESHOLD
) -> int:
    """How many latent dims have a mean KL(q(z_j|x) || p(z_j)) under ``threshold`` nats per image.

    ``kl_per_dim`` (z,): each dim's KL averaged over images, nats per image (``DatasetMetrics.kl_per_dim``,
    a checkpoint's ``test_metrics["kl_per_dim"]``). A missing value (None or nan) is not counted. 0 for an
    AE (no KL, an empty list).
    """
    if isinstance(kl_per_dim, torch.Tensor):
        kl_per_dim = kl_per_dim.double().tolist()
    # nan < threshold is False: a missing value is not counted
    return sum(1 for v in kl_per_dim if v is not None and float(v) < threshold)


@dataclass
class DatasetMetrics:
    """Test-set metrics of one model, nats per image.

    For an AE, ``kl`` is 0, ``kl_per_dim`` is empty and ``neg_elbo`` is the reconstruction cost
    (an AE's loss is not a bound on -log p(x)); the IWAE fields stay None.
    """

    neg_elbo: float  # -(E_q log p(x|z) - KL), one sample per image
    recon: float  # -E_q log p(x|z), the reconstruction cost (>= 0 for Bernoulli)
    kl: float  # KL(q(z|x) || p(z))
    kl_per_dim: list[float]  # (z,) KL per latent dim
    active_units: int  # dims with Var_x[mu_j] > ACTIVE_THRESHOLD
    low_kl_units: int  # dims whose mean KL_j is under LOW_KL_THRESHOLD nats per image (:func:`low_kl_units`)
    var_mu: list[float]  # (z,) Var_x[mu_j]
    n: int  # images in the ELBO pass
    latent_dim: int
    is_vae: bool
    binarized: bool = False  # computed on binarized images (x ~ Bernoulli(pixels), seeded)
    iwae_nll: float | None = None  # -log p_K(x) on the first iwae_n images
    iwae_nll_se: float | None = None  # its standard error over images
    iwae_k: int | None = None
    iwae_n: int | None = None
    iwae_subset_neg_elbo: float | None = (
        None  # -ELBO on the same iwae_n images: minus iwae_nll ~ mean KL(q || p(z|x))
    )
    extra: dict[str, Any] = field(
        default_factory=dict
    )  # figures a caller adds (the regeneration script's quadrature)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict: the IWAE keys only when they were computed; ``extra`` merged in."""
        d = asdict(self)
        extra = d.pop("extra")
        for key in ("iwae_nll", "iwae_nll_se", "iwae_k", "iwae_n", "iwae_subset_neg_elbo"):
            if d[key] is None:
                del d[key]
        d.update(extra)
        return d


@torch.no_grad()
def _elbo_pass(
    model: AE | VAE, x: torch.Tensor, batch_size: int, seed: int
) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """Sums over x (N, D) of recon log-likelihood and KL, KL per dim (z,), and the codes mu (N, z)."""
    cfg = model.config
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(seed)
    tot_recon = tot_kl = 0.0
    kl_d = torch.zeros(cfg.latent_dim if model.is_vae else 0, dtype=torch.float64, device=dev)
    mus = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size].to(dev)
        xb = to_float(xb)
        logits, mu, logvar, _ = model(xb, generator=gen)
        t = elbo_terms(xb, logits, mu, logvar, likelihood=cfg.likelihood, obs_std=cfg.obs_std)
        tot_recon += float(t.recon.double().sum())
        tot_kl += float(t.kl.double().sum())
        kl_d += t.kl_per_dim.double().sum(0)
        mus.append(mu.double())
    return tot_recon, tot_kl, kl_d, torch.cat(mus)


@torch.no_grad()
def iwae_nll(
    model: AE | VAE,
    x: torch.Tensor,
    k: int = 1000,
    seed: int = 0,
    batch_size: int = 0,
    progress: Callable[[float], None] | None = None,
) -> tuple[float, float]:
    """Mean importance-weighted NLL -log p_K(x) over images x (N, D): (mean, standard error), nats/image.

    ``progress(fraction)`` is called after each batch of images. An AE raises ValueError.
    """
    if not model.is_vae:
        raise ValueError("the importance-weighted NLL needs a VAE: an AE defines no density p(x)")
    if k < 1 or x.shape[0] < 1:
        raise ValueError(f"need K >= 1 and at least one image, got K={k}, N={x.shape[0]}")
    cfg = model.config
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(seed)
    bs = batch_size or max(1, 4096 // max(1, k // 8))
    n = x.shape[0]
    vals = []
    for start in range(0, n, bs):
        xb = x[start : start + bs].to(dev)
        xb = to_float(xb)
        mu, logvar = model.encode(xb)
        if logvar is None:  # only an AE's encoder gives none, and is_vae turned it away above
            raise ValueError("the importance-weighted NLL needs a VAE: this encoder gives no logvar")
        vals.append(-iwae_bound(xb, mu, logvar, model.decode, k, cfg.likelihood, cfg.obs_std, gen).double())
        if progress is not None:
            progress(min(start + bs, n) / n)
    v = torch.cat(vals)
    return float(v.mean()), float(v.std() / math.sqrt(n)) if n > 1 else float("nan")


@torch.no_grad()
def dataset_metrics(
    model: AE | VAE,
    x: torch.Tensor,
    seed: int = 0,
    batch_size: int = 1000,
    k: int = 0,
    n_iwae: int = 0,
    progress: Callable[[float], None] | None = None,
    binarize: bool = False,
) -> DatasetMetrics:
    """All test metrics of ``model`` on images x (N, D) uint8 or float in [0, 1], nats per image.

    The one-sample ELBO terms and the active units use every image, with noise seeded by
    ``seed + ELBO_SEED_OFFSET`` (same model and data, same numbers). With ``k > 0`` and
    ``n_iwae > 0`` (VAE only) the IWAE NLL -log p_K(x) is added on the first ``n_iwae`` images
    (noise seeded by ``seed``), with the -ELBO on those same images. ``progress(fraction)``
    reports the IWAE pass. ``binarize=True`` (a model trained with dynamic binarization) first
    draws binary images x ~ Bernoulli(pixels) once, from a generator seeded by ``seed``: the
    fixed binarized test set that NLL figures in the binarized-MNIST literature use. The
    model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        n = int(x.shape[0])
        if n < 1:
            raise ValueError("dataset metrics need at least one image")
        if binarize:
            x = binarize_pixels(x, torch.Generator(device=x.device).manual_seed(seed))
        recon, kl, kl_d, mu = _elbo_pass(model, x, batch_size, seed + ELBO_SEED_OFFSET)
        var = latent_variance(mu)
        kl_per_dim = (kl_d / n).tolist()  # (z,) nats per image
        m = DatasetMetrics(
            neg_elbo=(-recon + kl) / n,
            recon=-recon / n,
            kl=kl / n,
            kl_per_dim=kl_per_dim,
            active_units=int((var > ACTIVE_THRESHOLD).sum()),
            low_kl_units=low_kl_units(kl_per_dim),
            var_mu=var.tolist(),
            n=n,
            latent_dim=int(model.config.latent_dim),
            is_vae=bool(model.is_vae),
            binarized=bool(binarize),
        )
        n_iw = min(int(n_iwae), n)
        if model.is_vae and k > 0 and n_iw > 0:
            if progress is not None:
                progress(0.0)
            m.iwae_nll, m.iwae_nll_se = iwae_nll(model, x[:n_iw], k=k, seed=seed, progress=progress)
            m.iwae_k, m.iwae_n = int(k), n_iw
            sub_recon, sub_kl, _, _ = _elbo_pass(model, x[:n_iw], batch_size, seed + ELBO_SEED_OFFSET)
            m.iwae_subset_neg_elbo = (-sub_recon + sub_kl) / n_iw
        return m
    finally:
        if was_training:
            model.train()


def main(argv: list[str] | None = None) -> int:
    """CLI: print a checkpoint's test metrics."""
    from .checkpoint import CheckpointError, load_checkpoint
    from .data import DatasetError, load_dataset
    from .device import DeviceError, pick_device

    p = argparse.ArgumentParser(
        prog="python -m vae_core.evaluate", description="Evaluate a checkpoint on its test split."
    )
    p.add_argument("checkpoint")
    p.add_argument("--k", type=int, default=1000, help="importance samples per image (default 1000)")
    p.add_argument(
        "--n", type=int, default=1000, help="test images for the IWAE NLL (default 1000; all for the ELBO)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        dev = pick_device(args.device)
        ck = load_checkpoint(args.checkpoint, device=dev)
        ds = load_dataset(ck.metadata.get("dataset", ""), device=dev, root=args.data_root)
        if ds.dim != ck.config.input_dim:
            raise DatasetError(
                N_("dataset {name} has {dim} pixels but the model expects {input_dim}"),
                name=ds.name,
                dim=ds.dim,
                input_dim=ck.config.input_dim,
            )
    except (CheckpointError, DatasetError, DeviceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    binarized = bool((ck.metadata.get("train_config") or {}).get("binarize", False))
    m = dataset_metrics(ck.model, ds.x_test, seed=args.seed, k=args.k, n_iwae=args.n, binarize=binarized)
    data = "binarized test images (x ~ Bernoulli(pixels), seeded)" if binarized else "test images"
    print(f"{ck.config.describe()} on {ds.name}, {m.n} {data}, device {dev}")
    print(f"  test -ELBO        {m.neg_elbo:9.2f} nats/image")
    print(f"  reconstruction    {m.recon:9.2f} nats/image")
    print(f"  KL                {m.kl:9.2f} nats/image")
    print(
        f"  active units      {m.active_units:6d} of {ck.config.latent_dim} (Var_x[mu_j] > {ACTIVE_THRESHOLD:g})"
    )
    if m.is_vae:
        print(
            f"  low-KL units      {m.low_kl_units:6d} of {ck.config.latent_dim} "
            f"(KL_j < {LOW_KL_THRESHOLD:g} nats/image)"
        )
    if m.iwae_nll is not None:
        print(
            f"  IWAE NLL (K={m.iwae_k}) {m.iwae_nll:9.2f} ± {m.iwae_nll_se:.2f} nats/image on {m.iwae_n} images"
        )
    else:
        print("  IWAE NLL          n/a (an AE has no likelihood p(x))")
    print(f"  ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
