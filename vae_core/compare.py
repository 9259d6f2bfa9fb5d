"""AE vs VAE: the UI-free half of the Compare page.

An AE and a VAE are only comparable when everything but the objective is the same. This
module finds such a pair among the shipped checkpoints (:func:`find_pair`, :func:`recipe_differences`;
a fresh pair is trained live by :class:`vae_core.pair.PairTrainer`) and computes what the page
shows side by side: how far each model's aggregate posterior is from the prior N(0, I)
(:func:`prior_match`, :func:`mu_histograms`, :func:`prior_circles`; :func:`pair_side` gathers one
model's figures). Test metrics come from :func:`vae_core.evaluate.dataset_metrics` (for a shipped
model, the checkpoint's own copy of them), 2-D maps from :mod:`vae_core.projection`.

Everything is in nats per image; latents are in units of the prior's standard deviation.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .evaluate import dataset_metrics
from .inference import PosteriorStats, aggregate_posterior_stats, encode, posterior_stats
from .models import AE, VAE

__all__ = [
    "RECIPE_KEYS",
    "find_pair",
    "list_pairs",
    "recipe_differences",
    "PriorMatch",
    "prior_match",
    "PairSide",
    "pair_side",
    "mu_histograms",
    "standard_normal_pdf",
    "prior_circles",
    "interpolation_pair",
    "pair_choices",
    "density_rows",
    "map_xy",
    "live_pair_models",
]

# Training settings that must agree for a fair pair (beta is the VAE's alone; the AE ignores it).
RECIPE_KEYS = ("epochs", "batch_size", "lr", "seed", "warmup_steps", "free_bits")


# ---------------------------------------------------------------------- finding a shipped pair
def _model_cfg(meta: Mapping[str, Any]) -> dict[str, Any]:
    return dict(meta.get("model_config") or {})


def recipe_differences(vae_meta: Mapping[str, Any], ae_meta: Mapping[str, Any]) -> list[str]:
    """What differs between two checkpoints' recipes besides the model kind (empty = a fair pair).

    Compares the dataset, every model-config field except ``kind`` (architecture, latent
    dim, likelihood) and the training settings in :data:`RECIPE_KEYS` (same seed and batch
    size mean the same batch order). Each difference is one readable string.
    """
    out: list[str] = []
    if vae_meta.get("dataset") != ae_meta.get("dataset"):
        out.append(f"dataset: {vae_meta.get('dataset')} vs {ae_meta.get('dataset')}")
    mv, ma = _model_cfg(vae_meta), _model_cfg(ae_meta)
    for k in sorted((set(mv) | set(ma)) - {"kind"}):
        if mv.get(k) != ma.get(k):
            out.append(f"{k}: {mv.get(k)} vs {ma.get(k)}")
    tv, ta = dict(vae_meta.get("train_config") or {}), dict(ae_meta.get("train_config") or {})
    for k in RECIPE_KEYS:
        if tv.get(k) != ta.get(k):
            out.append(f"{k}: {tv.get(k)} vs {ta.get(k)}")
    return out


def find_pair(
    shipped: Mapping[str, Mapping[str, Any]], dataset: str, latent_dim: int
) -> tuple[str, str] | None:
    """Names (vae, ae) of a fair shipped pair on ``dataset`` with ``latent_dim``, or None.

    ``shipped`` is ``{name: metadata}`` (lab_pages.model_store.list_shipped()). A fair pair is a
    plain VAE (beta = 1) and an AE whose :func:`recipe_differences` is empty. Checkpoints in
    ``checkpoints/`` come before ones saved in a session (``saved/...``); ties go by name.
    """

    def ok(meta: Mapping[str, Any], kind: str) -> bool:
        mc = _model_cfg(meta)
        return (
            meta.get("dataset") == dataset
            and mc.get("kind") == kind
            and int(mc.get("latent_dim", -1)) == int(latent_dim)
        )

    def order(name: str) -> tuple[bool, str]:
        return (name.startswith("saved/"), name)

    vaes = sorted(
        (
            n
            for n, m in shipped.items()
            if ok(m, "vae") and float((m.get("train_config") or {}).get("beta", 1.0)) == 1.0
        ),
        key=order,
    )
    aes = sorted((n for n, m in shipped.items() if ok(m, "ae")), key=order)
    for v in vaes:
        for a in aes:
            if not recipe_differences(shipped[v], shipped[a]):
                return v, a
    return None


def pair_choices(
    shipped: Mapping[str, Mapping[str, Any]], datasets: list[str], dataset: str, latent_dim: int
) -> tuple[list[str], str | None]:
    """The fair shipped pairs on ``datasets`` as "vae / ae" names, and the one on (``dataset``, ``latent_dim``) or None."""
    names = [f"{v} / {a}" for v, a in list_pairs(shipped) if shipped[v].get("dataset") in datasets]
    m = find_pair(shipped, dataset, latent_dim)
    return names, (f"{m[0]} / {m[1]}" if m and f"{m[0]} / {m[1]}" in names else None)


def list_pairs(shipped: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Every fair (vae, ae) pair in ``shipped``, one per (dataset, latent dim), sorted by those."""
    combos = sorted(
        {
            (str(m.get("dataset")), int(_model_cfg(m).get("latent_dim", 0)))
            for m in shipped.values()
            if _model_cfg(m).get("kind") == "vae"
        }
    )
    pairs = [find_pair(shipped, d, z) for d, z in combos]
    return [p for p in pairs if p is not None]


# ---------------------------------------------------------------------- prior vs aggregate posterior
@dataclass
class PriorMatch:
    """How the aggregate posterior q(z) = mean_x q(z|x) sits against the prior N(0, I)."""

    mean: np.ndarray  # (z,) E_x[mu], latent units
    std: np.ndarray  # (z,) std of q(z) (for an AE: of the codes), latent units
    moment_kl: float  # KL(N(mean, diag std^2) || N(0, I)), nats: 0 when the moments match the prior
    kl_per_dim: np.ndarray  # (z,) that KL per latent dim, nats
    active: np.ndarray  # (z,) bool: Var_x[mu_j] > 0.01 (an inactive VAE dim has mu_j ~ 0, sigma_j ~ 1)


def prior_match(model: AE | VAE, x: torch.Tensor) -> PriorMatch:
    """Compare the codes of images x (N, D) (N >= 2) with the prior N(0, I).

    Fits one diagonal Gaussian to q(z) (mean and std per dim, for a VAE including the
    posterior variances: law of total variance) and measures its KL to the prior, in nats.
    A VAE trained with beta = 1 lands near 0; an AE, which nothing pulls towards N(0, I),
    usually far from it, which is why decoding prior draws works for one and not the other.
    """
    return prior_match_of(aggregate_posterior_stats(model, x))


def prior_match_of(stats: PosteriorStats) -> PriorMatch:
    """:func:`prior_match` from the aggregate posterior's statistics (:func:`vae_core.inference.posterior_stats`)."""
    m, s = stats.mean.double(), stats.std.double().clamp_min(1e-6)
    kl_d = 0.5 * (m.pow(2) + s.pow(2) - 1.0 - 2.0 * s.log())  # (z,)
    return PriorMatch(
        mean=m.numpy(),
        std=s.numpy(),
        moment_kl=float(kl_d.sum()),
        kl_per_dim=kl_d.numpy(),
        active=stats.active.numpy(),
    )


@dataclass
class PairSide:
    """What the Compare page shows of one model of a pair, on the test split (nats per image)."""

    recon: float  # -E_q log p(x|z) (an AE: -log p(x|z_hat))
    kl: float | None  # KL(q(z|x) || p(z)); None for an AE
    active_units: int  # dims with Var_x[mu_j] > ACTIVE_THRESHOLD
    latent_dim: int
    prior: PriorMatch  # the aggregate posterior against N(0, I)
    mu: np.ndarray  # (N, z) float32: mu(x) (an AE: its code) of every test image
    from_checkpoint: bool  # recon and KL read from the checkpoint's own test metrics

    @property
    def is_vae(self) -> bool:
        return self.kl is not None


def pair_side(model: AE | VAE, x: torch.Tensor, test_metrics: Mapping[str, Any] | None = None) -> PairSide:
    """Encode the test images x (N, D) once: codes, activity and prior match; reconstruction and KL from
    ``test_metrics`` (a checkpoint's own, written by scripts/make_checkpoints.py with
    :func:`vae_core.evaluate.dataset_metrics` on the same split) when they cover exactly N unbinarized
    images, else computed here with dataset_metrics (a decoder pass over x)."""
    mu, sigma = encode(model, x)
    stats = posterior_stats(mu, sigma)
    vae = sigma is not None
    tm = test_metrics or {}
    shipped = (
        tm.get("n") == int(x.shape[0])
        and not tm.get("binarized")
        and "recon" in tm
        and (not vae or "kl" in tm)
    )
    if shipped:
        recon, kl = float(tm["recon"]), float(tm["kl"]) if vae else None
    else:
        dm = dataset_metrics(model, x)
        recon, kl = dm.recon, dm.kl if vae else None
    return PairSide(
        recon=recon,
        kl=kl,
        active_units=int(stats.active.sum()),
        latent_dim=int(mu.shape[1]),
        prior=prior_match_of(stats),
        mu=mu.float().cpu().numpy(),
        from_checkpoint=shipped,
    )


def standard_normal_pdf(t: np.ndarray) -> np.ndarray:
    """Density of N(0, 1) at t (any shape), per latent unit."""
    t = np.asarray(t, dtype=np.float64)
    return np.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)


def mu_histograms(
    mu: np.ndarray | torch.Tensor, bins: int = 40, limit: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension density histograms of codes mu (N, z): (edges (bins+1,), density (z, bins)).

    One shared range [-limit, limit] for all dims so they can be read against one N(0, 1)
    curve; ``limit`` defaults to max(4, the 99.5th percentile of |mu|). Densities integrate
    to 1 over the range (per latent unit).
    """
    a = mu.detach().cpu().numpy() if isinstance(mu, torch.Tensor) else np.asarray(mu)
    a = a.astype(np.float64).reshape(a.shape[0], -1)
    lim = (
        float(limit)
        if limit is not None
        else max(4.0, float(np.percentile(np.abs(a), 99.5)) if a.size else 4.0)
    )
    edges = np.linspace(-lim, lim, bins + 1)
    width = edges[1] - edges[0]
    dens = np.zeros((a.shape[1], bins))
    for j in range(a.shape[1]):
        counts, _ = np.histogram(np.clip(a[:, j], -lim, lim), bins=edges)
        dens[j] = counts / max(1, a.shape[0]) / width
    return edges, dens


def prior_circles(
    levels: tuple[float, ...] = (1.0, 2.0, 3.0), n: int = 120
) -> list[tuple[float, float, np.ndarray, np.ndarray]]:
    """Contours of the 2-D prior N(0, I): circles (radius, prior mass inside, xs (n,), ys (n,)).

    The mass inside radius r is 1 - exp(-r^2 / 2) (39%, 86%, 99% for r = 1, 2, 3).
    """
    th = np.linspace(0.0, 2.0 * math.pi, n)
    return [(r, 1.0 - math.exp(-r * r / 2.0), r * np.cos(th), r * np.sin(th)) for r in levels]


def interpolation_pair(labels: np.ndarray | torch.Tensor) -> tuple[int, int]:
    """Default end points for an interpolation: the first test images of two different classes.

    Takes the first image's class and the first image of the class furthest from it in
    label order (e.g. 0 and 5 for ten classes), so the path crosses the latent space.
    """
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if y.size < 2:
        raise ValueError(f"need at least 2 images, got {y.size}")
    classes = np.unique(y)
    a = int(y[0])
    if classes.size < 2:
        return 0, 1
    target = classes[(np.searchsorted(classes, a) + classes.size // 2) % classes.size]
    return 0, int(np.flatnonzero(y == target)[0])


def density_rows(mu: np.ndarray | torch.Tensor, bins: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the per-dimension density rows draw: (bin centres (bins,), density (z, bins), N(0, 1) pdf at the centres (bins,)).

    Densities from :func:`mu_histograms`, per latent unit; the prior's row is taken at the same centres, so every row
    reads against it cell by cell.
    """
    edges, dens = mu_histograms(mu, bins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    return centres, dens, standard_normal_pdf(centres)


def map_xy(mu: np.ndarray, job: Any | None) -> tuple[np.ndarray, bool]:
    """The 2-D map of codes mu (N, z): (xy (N, 2), True) when the UMAP ``job`` (a
    :class:`vae_core.projection.ProjectionJob`) has a result, else (PCA of mu, False) while it runs."""
    from .projection import pca_2d  # noqa: PLC0415 - keep this module's import light

    if job is not None and job.done and job.result is not None:
        return job.result.xy, True
    return pca_2d(mu), False


def live_pair_models(pair: Any, count: int) -> list[tuple[str, str, Any, dict[str, Any]]]:
    """A finished live pair (a :class:`vae_core.pair.PairTrainer`) as [(key, label, model, metadata)], VAE first.

    Each key is new (a random id), so caches keyed by it never serve an earlier pair's numbers;
    ``count`` numbers the session's pairs in the labels.
    """
    (mv, ma), (v, a), uid = pair.metadata(), pair.models(), uuid.uuid4().hex[:12]
    return [
        (
            f"compare-live:{uid}:{k}",
            f"live {k.upper()} #{count} ({meta['dataset']}, z={meta['model_config']['latent_dim']})",
            m,
            meta,
        )
        for k, m, meta in (("vae", v, mv), ("ae", a, ma))
    ]
