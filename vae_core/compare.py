"""AE vs VAE: the UI-free half of the Compare page.

An AE and a VAE are only comparable when everything but the objective is the same. This
module finds such a pair among the shipped checkpoints (:func:`find_pair`, :func:`recipe_differences`),
trains a fresh one live (:class:`PairTrainer`: same config, same initial weights in every
shared layer, same seed and batch order), and computes what the page shows side by side:
test metrics (:func:`model_metrics`), how far each model's aggregate posterior is from the
prior N(0, I) (:func:`prior_match`, :func:`mu_histograms`, :func:`prior_circles`).

Everything is in nats per image; latents are in units of the prior's standard deviation.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from .data import Dataset
from .inference import aggregate_posterior_stats
from .projection import ProjectionCache
from .models import AE, VAE, ModelConfig, build_model
from .train import TrainConfig, Trainer, TrainerState, evaluate_model

__all__ = [
    "RECIPE_KEYS",
    "find_pair",
    "list_pairs",
    "shared_projection_cache",
    "recipe_differences",
    "build_pair",
    "live_pair_configs",
    "PairProgress",
    "PairTrainer",
    "ModelMetrics",
    "model_metrics",
    "PriorMatch",
    "prior_match",
    "mu_histograms",
    "standard_normal_pdf",
    "prior_circles",
    "interpolation_pair",
    "selected_row_ids",
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


def find_pair(shipped: Mapping[str, Mapping[str, Any]], dataset: str, latent_dim: int) -> tuple[str, str] | None:
    """Names (vae, ae) of a fair shipped pair on ``dataset`` with ``latent_dim``, or None.

    ``shipped`` is ``{name: metadata}`` (lab_pages.common.list_shipped()). A fair pair is a
    plain VAE (beta = 1) and an AE whose :func:`recipe_differences` is empty. Checkpoints in
    ``checkpoints/`` come before ones saved in a session (``saved/...``); ties go by name.
    """
    def ok(meta: Mapping[str, Any], kind: str) -> bool:
        mc = _model_cfg(meta)
        return (meta.get("dataset") == dataset and mc.get("kind") == kind
                and int(mc.get("latent_dim", -1)) == int(latent_dim))

    def order(name: str) -> tuple[bool, str]:
        return (name.startswith("saved/"), name)

    vaes = sorted((n for n, m in shipped.items() if ok(m, "vae")
                   and float((m.get("train_config") or {}).get("beta", 1.0)) == 1.0), key=order)
    aes = sorted((n for n, m in shipped.items() if ok(m, "ae")), key=order)
    for v in vaes:
        for a in aes:
            if not recipe_differences(shipped[v], shipped[a]):
                return v, a
    return None


def list_pairs(shipped: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Every fair (vae, ae) pair in ``shipped``, one per (dataset, latent dim), sorted by those."""
    combos = sorted({(str(m.get("dataset")), int(_model_cfg(m).get("latent_dim", 0)))
                     for m in shipped.values() if _model_cfg(m).get("kind") == "vae"})
    pairs = [find_pair(shipped, d, z) for d, z in combos]
    return [p for p in pairs if p is not None]


@functools.lru_cache(maxsize=1)
def shared_projection_cache() -> ProjectionCache:
    """One process-wide cache of 2-D embeddings, shared by the Latent map and Compare pages.

    Created on first use (nothing happens at import). Keys are
    :class:`~vae_core.projection.ProjectionKey` (model key, n points, method, parameters).
    """
    return ProjectionCache(maxsize=32)


# ---------------------------------------------------------------------- training a pair live
def build_pair(model_config: ModelConfig, seed: int) -> tuple[VAE, AE]:
    """A VAE and an AE with identical weights in every shared layer (encoder trunk, mu head, decoder).

    The VAE is built under ``torch.manual_seed(seed)`` and the AE copies its shared weights.
    (models.py builds the VAE's logvar head last, so the same seed alone already gives equal
    shared weights; the copy keeps that true whatever the build order.)
    """
    base = {k: v for k, v in model_config.to_dict().items() if k != "kind"}
    torch.manual_seed(seed)
    vae = build_model(ModelConfig(kind="vae", **base))
    ae = build_model(ModelConfig(kind="ae", **base))
    missing, _ = ae.load_state_dict(vae.state_dict(), strict=False)  # the VAE's logvar head is left out
    assert not missing, f"AE has layers the VAE lacks: {missing}"
    return vae, ae  # type: ignore[return-value]


def live_pair_configs(ds: Dataset, latent_dim: int, epochs: int, hidden: tuple[int, ...] | None = None,
                      seed: int = 0) -> tuple[ModelConfig, TrainConfig]:
    """The model and training configs of a live pair on ``ds`` (kind is set per model by :class:`PairTrainer`).

    Defaults: hidden (128,) for the 8x8 digits and (400,) for 28x28 images, batch 128, Adam 1e-3.
    """
    hid = hidden if hidden is not None else ((128,) if ds.dim <= 64 else (400,))
    mc = ModelConfig(kind="vae", input_dim=ds.dim, image_shape=ds.image_shape, hidden=hid, latent_dim=latent_dim)
    tc = TrainConfig(dataset=ds.name, epochs=epochs, batch_size=128, lr=1e-3, seed=seed, eval_size=10_000)
    return mc, tc


@dataclass
class PairProgress:
    """What the page draws while a pair trains (copies only)."""

    state: str             # "running" | "finished" | "stopped" | "failed"
    step: int              # steps taken by each model (they move in lockstep)
    total_steps: int
    message: str
    vae_loss: float        # latest training objective, nats/image (nan before the first step)
    ae_loss: float

    @property
    def fraction(self) -> float:
        """Share of the steps done, in [0, 1]."""
        return min(1.0, self.step / max(1, self.total_steps))


class PairTrainer:
    """Trains a VAE and an AE in lockstep in one background thread: same data, seed, batch order.

    Both :class:`~vae_core.train.Trainer` objects get the same configs (apart from ``kind``)
    and the same initial weights (:func:`build_pair`); each samples its batches with the
    same seeded permutation, so batch k holds the same images for both. The thread
    alternates a few steps of each, so both are always at about the same step.
    Control and read from any thread: :meth:`start`, :meth:`stop`, :meth:`join`, :meth:`progress`.
    """

    CHUNK = 4  # steps of one model before switching to the other

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig, dataset: Dataset,
                 device: torch.device | str = "cpu", num_threads: int | None = 1) -> None:
        vae, ae = build_pair(model_config, train_config.seed)
        self.vae = Trainer(vae.config, train_config, dataset=dataset, device=device, model=vae)
        self.ae = Trainer(ae.config, train_config, dataset=dataset, device=device, model=ae)
        self.total_steps = self.vae.total_steps
        # torch intra-op threads of the training thread (OpenMP keeps them per thread, though
        # threads that start their first torch op meanwhile inherit it; restored at the end). One
        # is fastest for these small MLPs, and on a busy 2-core machine two threads spin-wait:
        # measured 0.6 s vs 20 s for 240 digits steps at load average 9. None = torch's default.
        self.num_threads = num_threads
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = "idle"
        self.message = ""

    def start(self) -> None:
        """Train in a daemon thread (no-op if one is alive or training has ended)."""
        if (self._thread is not None and self._thread.is_alive()) or self.state in ("finished", "failed"):
            return
        self._stop.clear()
        self.state, self.message = "running", ""
        self._thread = threading.Thread(target=self._main, name="vae-pair-trainer", daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Train to the end in the calling thread (tests, scripts)."""
        self.state = "running"
        self._main()

    def _main(self) -> None:
        prev = torch.get_num_threads()
        own = self.num_threads is not None and threading.current_thread() is not threading.main_thread()
        if own:
            torch.set_num_threads(self.num_threads)
        try:
            self._loop()
        finally:
            if own:  # torch also keeps the value as the default for threads started meanwhile: put it back
                torch.set_num_threads(prev)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                for tr in (self.vae, self.ae):
                    if not tr.done:
                        tr.run(max_steps=self.CHUNK)
                bad = [t for t in (self.vae, self.ae) if t.state in (TrainerState.DIVERGED, TrainerState.FAILED)]
                if bad:
                    self.state, self.message = "failed", bad[0].message
                    return
                if self.vae.done and self.ae.done:
                    self.state = "finished"
                    self.message = f"both trained for {self.vae.config.epochs} epoch(s), {self.total_steps} steps each"
                    return
            # a message set before stop() (e.g. by the session registry's watchdog) is kept
            self.state, self.message = "stopped", self.message or f"stopped at step {self.vae.global_step}"
        except Exception as exc:  # keep the app alive; report instead
            self.state, self.message = "failed", f"training failed: {type(exc).__name__}: {exc}"

    def stop(self) -> None:
        """Ask the thread to end after its current chunk; the models keep their weights."""
        self._stop.set()

    def resume(self) -> None:
        """Continue a stopped pair from where it stopped (a new thread; no-op once finished)."""
        self.start()

    @property
    def global_step(self) -> int:
        """Steps taken by each model (they move in lockstep, up to one chunk apart)."""
        return min(self.vae.global_step, self.ae.global_step)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when no thread is alive afterwards."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def progress(self) -> PairProgress:
        """A consistent-enough copy of where training is (cheap; call it about once a second)."""
        sv, sa = self.vae.snapshot(), self.ae.snapshot()
        return PairProgress(
            state=self.state, step=min(sv.step, sa.step), total_steps=self.total_steps, message=self.message,
            vae_loss=sv.history.loss[-1] if sv.history.loss else float("nan"),
            ae_loss=sa.history.loss[-1] if sa.history.loss else float("nan"),
        )

    def models(self) -> tuple[VAE, AE]:
        """Eval-mode CPU copies (vae, ae), safe to use while training continues."""
        return self.vae.model_copy(), self.ae.model_copy()  # type: ignore[return-value]

    def metadata(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Checkpoint metadata of (vae, ae), as :meth:`Trainer.metadata` writes it."""
        return self.vae.metadata("live pair (Compare page)"), self.ae.metadata("live pair (Compare page)")


# ---------------------------------------------------------------------- metrics
@dataclass
class ModelMetrics:
    """Test-set metrics of one model, nats per image."""

    recon: float             # -E_q log p(x|z) (one sample for a VAE; the code itself for an AE)
    kl: float | None         # KL(q(z|x) || p(z)); None for an AE, which has no q and no prior
    neg_elbo: float | None   # recon + KL; None for an AE (its loss is not a bound on -log p(x))
    active_units: int        # dims with Var_x[mu_j] > 0.01
    latent_dim: int
    n: int                   # test images used


def model_metrics(model: AE | VAE, x: torch.Tensor, seed: int = 3) -> ModelMetrics:
    """Reconstruction error, KL and active units of ``model`` on images x (N, D), nats per image."""
    res = evaluate_model(model, x, seed=seed)
    vae = bool(model.is_vae)
    return ModelMetrics(
        recon=res.recon, kl=res.kl if vae else None, neg_elbo=res.neg_elbo if vae else None,
        active_units=res.active_units, latent_dim=int(model.config.latent_dim), n=res.n,
    )


# ---------------------------------------------------------------------- prior vs aggregate posterior
@dataclass
class PriorMatch:
    """How the aggregate posterior q(z) = mean_x q(z|x) sits against the prior N(0, I)."""

    mean: np.ndarray        # (z,) E_x[mu], latent units
    std: np.ndarray         # (z,) std of q(z) (for an AE: of the codes), latent units
    moment_kl: float        # KL(N(mean, diag std^2) || N(0, I)), nats: 0 when the moments match the prior
    kl_per_dim: np.ndarray  # (z,) that KL per latent dim, nats
    active: np.ndarray      # (z,) bool: Var_x[mu_j] > 0.01 (an inactive VAE dim has mu_j ~ 0, sigma_j ~ 1)


def prior_match(model: AE | VAE, x: torch.Tensor) -> PriorMatch:
    """Compare the codes of images x (N, D) (N >= 2) with the prior N(0, I).

    Fits one diagonal Gaussian to q(z) (mean and std per dim, for a VAE including the
    posterior variances: law of total variance) and measures its KL to the prior, in nats.
    A VAE trained with beta = 1 lands near 0; an AE, which nothing pulls towards N(0, I),
    usually far from it, which is why decoding prior draws works for one and not the other.
    """
    stats = aggregate_posterior_stats(model, x)
    m, s = stats.mean.double(), stats.std.double().clamp_min(1e-6)
    kl_d = 0.5 * (m.pow(2) + s.pow(2) - 1.0 - 2.0 * s.log())  # (z,)
    return PriorMatch(mean=m.numpy(), std=s.numpy(), moment_kl=float(kl_d.sum()), kl_per_dim=kl_d.numpy(),
                      active=stats.active.numpy())


def standard_normal_pdf(t: np.ndarray) -> np.ndarray:
    """Density of N(0, 1) at t (any shape), per latent unit."""
    t = np.asarray(t, dtype=np.float64)
    return np.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)


def mu_histograms(mu: np.ndarray | torch.Tensor, bins: int = 40, limit: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension density histograms of codes mu (N, z): (edges (bins+1,), density (z, bins)).

    One shared range [-limit, limit] for all dims so they can be read against one N(0, 1)
    curve; ``limit`` defaults to max(4, the 99.5th percentile of |mu|). Densities integrate
    to 1 over the range (per latent unit).
    """
    a = mu.detach().cpu().numpy() if isinstance(mu, torch.Tensor) else np.asarray(mu)
    a = a.astype(np.float64).reshape(a.shape[0], -1)
    lim = float(limit) if limit is not None else max(4.0, float(np.percentile(np.abs(a), 99.5)) if a.size else 4.0)
    edges = np.linspace(-lim, lim, bins + 1)
    width = edges[1] - edges[0]
    dens = np.zeros((a.shape[1], bins))
    for j in range(a.shape[1]):
        counts, _ = np.histogram(np.clip(a[:, j], -lim, lim), bins=edges)
        dens[j] = counts / max(1, a.shape[0]) / width
    return edges, dens


def prior_circles(levels: tuple[float, ...] = (1.0, 2.0, 3.0), n: int = 120
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


def selected_row_ids(points: list[Mapping[str, Any]] | None) -> list[int]:
    """Dataset row ids of selected chart points, in selection order, without repeats.

    ``points`` is a Plotly selection (``event.selection.points`` of ``st.plotly_chart``: plain
    dicts). Each point's ``customdata`` holds its row id, as a number or as the first entry of a
    list. Point indices are never used: with one trace per class, they restart in every trace.
    Points without customdata (e.g. prior contours) are skipped.
    """
    out: list[int] = []
    seen: set[int] = set()
    for p in points or []:
        cd = p.get("customdata") if isinstance(p, Mapping) else None
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if cd is None:
            continue
        try:
            rid = int(cd)
        except (TypeError, ValueError):
            continue
        if rid not in seen:
            seen.add(rid)
            out.append(rid)
    return out
