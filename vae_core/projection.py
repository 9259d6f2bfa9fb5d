"""2-D projections of latent codes: PCA at once, UMAP in the background, both cached.

UMAP runs on exact k nearest neighbours computed here with torch (:func:`exact_knn`), handed to
umap-learn as ``precomputed_knn``: its own NN-descent search compiles numba kernels that cannot
be cached on disk, so every fresh process would pay for them again. Layout epochs follow a
budget of about 1e6 point-epochs (:func:`default_umap_epochs`) with ``init="pca"``; a seeded
fit runs on one thread and gives the same map in every process. Measured figures behind these
choices: docs/performance.md. Loading umap-learn and warming its numba kernels is
:mod:`vae_core.umap_runtime`.

Every result carries the dataset row ids it embeds (:class:`Projection`), so a selection maps
back to dataset rows whatever the subsampling or colouring. ``umap`` is imported lazily (it is
slow); nothing here runs at import time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from .errors import N_, Msg
from .umap_runtime import UMAP_LOCK, import_umap, warmup_state

__all__ = [
    "shared_projection_cache",
    "selected_row_ids",
    "place_new_point",
    "embeddings_path",
    "ShippedEmbeddings",
    "save_embeddings",
    "load_embeddings",
    "projection_key",
    "seed_cache",
    "Projection",
    "pca_basis",
    "pca_2d",
    "exact_knn",
    "umap_2d",
    "default_umap_epochs",
    "subsample_ids",
    "data_key",
    "ProjectionKey",
    "ProjectionCache",
    "compute_projection",
    "ProjectionJob",
    "compute_projection_async",
    "METHODS",
]

METHODS = ("pca", "umap")
MIN_UMAP_POINTS = 5  # below this UMAP's graph is meaningless; use PCA


@dataclass(frozen=True, eq=False)
class Projection:
    """A 2-D embedding of some dataset rows. Row k of ``xy`` is dataset row ``ids[k]``."""

    ids: np.ndarray  # (N,) int64 dataset row ids, in the order of xy's rows
    xy: np.ndarray  # (N, 2) float32 embedding coordinates (arbitrary units)
    method: str  # "pca" or "umap"
    seconds: float  # wall time of the computation, s
    params: tuple = ()  # sorted (name, value) pairs the embedding was computed with


# ---------------------------------------------------------------- PCA
def pca_basis(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top-``k`` principal axes of x (N, d): (mean (d,), axes (k, d) orthonormal rows, variances (k,)), float64.

    Centred, SVD in float64; each axis's sign is fixed so that its largest loading is positive (scikit-learn's
    ``svd_flip`` rule), so the same data always gives the same axes. ``variances`` are the eigenvalues of the
    (1/N) covariance, in x's units squared. Fewer than k axes when min(N, d) < k.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"PCA expects a 2-D array (N, d), got shape {x.shape}")
    mean = x.mean(0)
    _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)  # vt: (min(N,d), d), rows = principal axes
    k = min(int(k), vt.shape[0])
    axes = vt[:k]  # (k, d)
    signs = np.sign(axes[np.arange(k), np.argmax(np.abs(axes), axis=1)])
    signs[signs == 0] = 1.0
    return mean, axes * signs[:, None], sv[:k] ** 2 / max(1, x.shape[0])


def pca_2d(x: np.ndarray) -> np.ndarray:
    """First two principal components of x (N, d) -> (N, 2) float32, deterministic.

    The scores on :func:`pca_basis`'s axes (sign rule included), so the same data always gives the same
    picture. d == 1 gives a zero second column; N < 2 gives zeros.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"pca_2d expects a 2-D array (N, d), got shape {x.shape}")
    n, d = x.shape
    out = np.zeros((n, 2), dtype=np.float32)
    if n < 2 or d < 1:
        return out
    mean, axes, _ = pca_basis(x, 2)
    out[:, : axes.shape[0]] = ((x - mean) @ axes.T).astype(np.float32)  # (N, k)
    return out


# ---------------------------------------------------------------- exact kNN
def exact_knn(x: np.ndarray, k: int, max_chunk_elems: int = 1 << 24) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean k nearest neighbours of every row of x (N, d), self included first.

    Returns (indices int32 (N, k), distances float32 (N, k)), sorted by distance, with column 0
    the point itself at distance exactly 0 (as umap's own kNN). Computed with torch in row
    chunks of at most ``max_chunk_elems`` distances (64 MiB) so memory stays flat; O(N^2 d).
    """
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # (N, d)
    n = xt.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..N={n}, got {k}")
    sq = (xt * xt).sum(1)  # (N,) squared norms
    chunk = max(1, min(n, max_chunk_elems // max(n, 1)))
    idx_parts, dist_parts = [], []
    with torch.no_grad():
        for s in range(0, n, chunk):
            q = xt[s : s + chunk]  # (c, d)
            rows = torch.arange(q.shape[0])
            # |q|^2 is constant per row, so rank by |x|^2 - 2 q.x and add |q|^2 afterwards
            d2 = torch.addmm(sq.unsqueeze(0), q, xt.T, beta=1.0, alpha=-2.0)  # (c, N)
            d2[rows, rows + s] = -float("inf")  # self first, even against exact duplicates
            val, ind = torch.topk(d2, k, dim=1, largest=False, sorted=True)  # (c, k)
            dist = (val + sq[s : s + chunk, None]).clamp_min_(0.0).sqrt_()
            dist[:, 0] = 0.0
            idx_parts.append(ind.to(torch.int32))
            dist_parts.append(dist)
    return torch.cat(idx_parts).numpy(), torch.cat(dist_parts).numpy()


# ---------------------------------------------------------------- UMAP
def default_umap_epochs(n_points: int) -> int:
    """Layout epochs for ``n_points``: a budget of ~1e6 point-epochs, clipped to 100..500.

    10k points -> 100 epochs (umap's default is 500; the 2-D map is as good, see module doc).
    """
    return int(np.clip(1_000_000 // max(n_points, 1), 100, 500))


class _EpochCounter:
    """A file-like sink for umap's tqdm bar (``bar_format='{n}/{total}'``) that reports progress."""

    def __init__(self, on_progress: Callable[[int, int], None]) -> None:
        self._cb = on_progress

    def write(self, s: str) -> int:
        try:
            done, total = s.strip().rsplit("\r", 1)[-1].split("/")
            self._cb(int(done), int(total))
        except Exception:  # a line we do not understand: ignore it, never break the fit
            pass
        return len(s)

    def flush(self) -> None:
        pass


def umap_2d(
    x: np.ndarray,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int | None = 0,
    n_epochs: int | None = None,
    init: str = "pca",
    on_progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """UMAP of x (N, d) -> (N, 2) float32, using exact kNN (see the module doc for the why).

    ``n_neighbors`` is clipped to N - 1. An int ``seed`` (default 0) gives the same map every
    time, on one thread; ``seed=None`` runs the layout on all cores (faster on an idle
    machine, slower under contention, and the map varies slightly between runs).
    ``n_epochs=None`` uses :func:`default_umap_epochs`. ``on_progress(done, total)`` is called
    from this thread as layout epochs complete. Fits are serialised process-wide; the first fit
    in a process compiles numba kernels unless :func:`warm_up_umap` ran (or the disk cache hits).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"umap_2d expects a 2-D array (N, d), got shape {x.shape}")
    n = x.shape[0]
    if n < MIN_UMAP_POINTS:
        raise ValueError(f"UMAP needs at least {MIN_UMAP_POINTS} points, got {n}; use PCA for fewer")
    if not np.isfinite(x).all():
        raise ValueError("UMAP input contains NaN or infinite values")
    umap = import_umap()
    k = int(max(2, min(n_neighbors, n - 1)))
    epochs = default_umap_epochs(n) if n_epochs is None else int(n_epochs)
    knn_idx, knn_dist = exact_knn(x, k)  # (N, k) each, self first
    kwds: dict[str, Any] = {}
    if on_progress is not None:
        kwds["tqdm_kwds"] = {
            "disable": False,
            "file": _EpochCounter(on_progress),
            "bar_format": "{n}/{total}",
            "mininterval": 0.1,
        }
    reducer = umap.UMAP(
        n_neighbors=k,
        min_dist=float(min_dist),
        n_components=2,
        n_epochs=epochs,
        init=init,
        random_state=seed,
        n_jobs=1 if seed is not None else -1,  # umap forces 1 thread with a seed; say so, no warning
        precomputed_knn=(knn_idx, knn_dist),
        **kwds,
    )
    with UMAP_LOCK:
        xy = reducer.fit_transform(x)  # (N, 2)
    return np.asarray(xy, dtype=np.float32)


# ---------------------------------------------------------------- keys and cache
def subsample_ids(n_total: int, n_points: int | None, seed: int = 0) -> np.ndarray:
    """``n_points`` distinct row ids out of ``n_total`` (all when None or >= n_total): sorted int64 (n,).

    Deterministic in (n_total, n_points, seed), so the same request gives the same rows.
    """
    if n_points is None or n_points >= n_total:
        return np.arange(n_total, dtype=np.int64)
    if n_points < 0:
        raise ValueError(f"n_points must be >= 0, got {n_points}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=n_points, replace=False)).astype(np.int64)


def data_key(x: np.ndarray, ids: np.ndarray | None = None) -> str:
    """A short content hash of the rows ``x[ids]`` (all rows when None): changes when the model does.

    cheap even for 10k codes; use it (or a checkpoint name plus training step) as ``model_key``.
    """
    a = np.ascontiguousarray(np.asarray(x) if ids is None else np.asarray(x)[np.asarray(ids)])
    h = hashlib.blake2b(digest_size=12)
    h.update(str((a.dtype.str, a.shape)).encode())
    h.update(a.tobytes())
    return h.hexdigest()


class ProjectionKey(NamedTuple):
    """Cache key of one embedding: which codes, how many rows, which method, which settings."""

    model_key: str  # identifies the encodings (checkpoint + step, or :func:`data_key`)
    n_points: int  # rows embedded
    method: str  # "pca" | "umap"
    params: tuple  # sorted (name, value) pairs, e.g. (("min_dist", 0.1), ("n_neighbors", 15))

    @classmethod
    def make(cls, model_key: str, n_points: int, method: str, **params: Any) -> ProjectionKey:
        """Build a key with ``params`` sorted by name so argument order never matters."""
        return cls(str(model_key), int(n_points), str(method), tuple(sorted(params.items())))


class ProjectionCache:
    """Thread-safe in-memory LRU cache of embeddings (or anything) keyed by a hashable key.

    ``get_or_compute(key, fn)`` runs ``fn()`` at most once per key even when several threads
    ask at the same time (the others wait for the first). The least recently used entry is
    dropped beyond ``maxsize``.
    """

    def __init__(self, maxsize: int = 16) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The cached value (marking it recently used), or ``default``."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            return default

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` under ``key``, dropping the least recently used beyond maxsize."""
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def get_or_compute(self, key: Hashable, fn: Callable[[], Any]) -> Any:
        """The cached value for ``key``, computing it with ``fn()`` on a miss (exceptions are not cached)."""
        sentinel = object()
        value = self.get(key, sentinel)
        if value is not sentinel:
            return value
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            value = self.get(key, sentinel)  # another thread may have computed it meanwhile
            if value is not sentinel:
                return value
            with self._lock:
                self.misses += 1
            try:
                value = fn()
                self.put(key, value)
            finally:
                with self._lock:
                    self._key_locks.pop(key, None)
            return value

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._data.clear()


# ---------------------------------------------------------------- one-shot and background
def _select(x: np.ndarray, ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected codes of shape (N, d), got {x.shape}")
    ids_arr = (
        np.arange(x.shape[0], dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64).reshape(-1)
    )
    if ids_arr.size and (ids_arr.min() < 0 or ids_arr.max() >= x.shape[0]):
        raise IndexError(f"row ids must lie in 0..{x.shape[0] - 1}")
    return x[ids_arr], ids_arr


def compute_projection(
    x: np.ndarray,
    ids: np.ndarray | None = None,
    method: str = "pca",
    on_progress: Callable[[int, int], None] | None = None,
    **params: Any,
) -> Projection:
    """Embed rows ``ids`` (default: all) of x (N_total, d) with ``method`` ("pca" | "umap").

    ``params`` go to :func:`umap_2d` (n_neighbors, min_dist, seed, n_epochs, init); PCA takes
    none. The result's ``xy[k]`` is the embedding of dataset row ``ids[k]``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    rows, ids_arr = _select(x, ids)
    t0 = time.perf_counter()
    if method == "pca":
        if params:
            raise ValueError(f"PCA takes no parameters, got {sorted(params)}")
        xy = pca_2d(rows)
    else:
        xy = umap_2d(rows, on_progress=on_progress, **params)
    return Projection(ids_arr, xy, method, time.perf_counter() - t0, tuple(sorted(params.items())))


class ProjectionJob:
    """A projection computing in a background thread; poll ``done`` / ``result`` / ``error``.

    ``stage`` is a line for the UI (a :class:`~vae_core.errors.Msg`: English as a str, translatable by its template) and ``progress`` a fraction in [0, 1] (layout epochs for UMAP).
    """

    def __init__(self, method: str, n_points: int) -> None:
        self.method = method
        self.n_points = n_points
        self.result: Projection | None = None
        self.error: str | None = None
        self.stage: str = Msg(N_("queued"))
        self.progress = 0.0
        self.thread: threading.Thread | None = None
        self._event = threading.Event()

    @property
    def done(self) -> bool:
        """True once the job finished, successfully or not."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until done (or ``timeout`` seconds); returns ``done``."""
        return self._event.wait(timeout)

    def _finish(self, result: Projection | None = None, error: str | None = None) -> None:
        self.result, self.error = result, error
        self.stage = Msg(N_("done")) if error is None else Msg(N_("failed: {error}"), error=error)
        self.progress = 1.0 if error is None else self.progress
        self._event.set()

    def _run(
        self,
        x: np.ndarray,
        ids: np.ndarray | None,
        cache: ProjectionCache | None,
        key: Hashable,
        params: dict,
    ) -> None:
        def on_progress(done: int, total: int) -> None:
            self.progress = 0.1 + 0.9 * done / max(total, 1)
            self.stage = Msg(
                N_("{method} layout: epoch {done}/{total}"),
                method=self.method.upper(),
                done=done,
                total=total,
            )

        def compute() -> Projection:
            if self.method == "umap" and warmup_state() == "running":
                self.stage = Msg(N_("waiting for the UMAP warm-up (numba is compiling)"))
            else:
                self.stage = Msg(
                    N_("computing {method} of {n} points"), method=self.method.upper(), n=self.n_points
                )
            self.progress = 0.05
            return compute_projection(x, ids, self.method, on_progress=on_progress, **params)

        try:
            result = cache.get_or_compute(key, compute) if cache is not None else compute()
            self._finish(result=result)
        except Exception as exc:  # reported to the page through .error
            self._finish(error=f"{type(exc).__name__}: {exc}")


def compute_projection_async(
    x: np.ndarray,
    ids: np.ndarray | None = None,
    method: str = "umap",
    cache: ProjectionCache | None = None,
    model_key: str | None = None,
    **params: Any,
) -> ProjectionJob:
    """Start embedding rows ``ids`` of x (N_total, d) in a daemon thread; returns the job at once.

    With a ``cache``, the key is ``ProjectionKey.make(model_key + ids hash, len(ids), method,
    **params)`` (``model_key`` defaults to :func:`data_key` of the selected rows),
    and a cached result gives a job that is already done, without a thread. Typical page use:
    draw :func:`pca_2d` at once, keep the job in ``st.session_state``, swap in ``job.result``
    when ``job.done``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    ids_arr = _select(x, ids)[1]
    job = ProjectionJob(method, int(ids_arr.size))
    key: Hashable = None
    if cache is not None:
        # the ids are always hashed in: two subsamples of the same size must not share an entry
        key = projection_key(
            model_key if model_key is not None else data_key(x, ids_arr), ids_arr, method, **params
        )
        hit = cache.get(key)
        if hit is not None:
            job._finish(result=hit)
            return job
    job.thread = threading.Thread(
        target=job._run, args=(x, ids_arr, cache, key, params), name=f"projection-{method}", daemon=True
    )
    job.thread.start()
    return job


# ---------------------------------------------------------------- shared by the pages
@functools.lru_cache(maxsize=1)
def shared_projection_cache() -> ProjectionCache:
    """One process-wide cache of 2-D embeddings, shared by the Latent map and Compare pages.

    Created on first use (nothing happens at import). Keys are
    :class:`~vae_core.projection.ProjectionKey` (model key, n points, method, parameters).
    """
    return ProjectionCache(maxsize=32)


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


def place_new_point(
    mu_new: np.ndarray, mu: np.ndarray, proj: Projection, k: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Where a new code lands on an existing 2-D map, and its ``k`` nearest embedded neighbours.

    mu_new (d,) is the new image's posterior mean; mu (N_total, d) the codes the map was made
    from; ``proj`` the map (its ``ids`` index mu). Returns (xy (2,), neighbour row ids (k,)):
    the mean map position of the k nearest embedded codes in the latent space, the way UMAP's own
    transform places new data. The neighbours are nearest first.
    """
    ref = np.asarray(mu, dtype=np.float32)[proj.ids]  # (M, d) codes of the embedded rows
    d2 = ((ref - np.asarray(mu_new, dtype=np.float32).reshape(1, -1)) ** 2).sum(1)  # (M,)
    k = int(min(max(1, k), d2.size))
    near = np.argsort(d2, kind="stable")[:k]
    return proj.xy[near].mean(0), proj.ids[near]


# ---------------------------------------------------------------- embeddings shipped with a checkpoint
EMBED_DIR = (
    "embeddings"  # checkpoints/embeddings/<name>.safetensors: the test-set codes and 2-D maps of <name>
)
SHIPPED_UMAP_PARAMS = {
    "n_neighbors": 15,
    "min_dist": 0.1,
}  # the latent map's defaults: what a first visit asks for


def embeddings_path(checkpoint: str | Path) -> Path:
    """Where the precomputed embeddings of ``checkpoint`` (a .safetensors path) live: a folder beside it, so
    that a listing of checkpoints never mistakes them for a model."""
    p = Path(checkpoint)
    return p.parent / EMBED_DIR / p.name


@dataclass(frozen=True)
class ShippedEmbeddings:
    """A shipped model's test-set codes and their 2-D maps, computed once by scripts/make_checkpoints.py."""

    mu: np.ndarray  # (N_test, z) float32 posterior means, latent units
    projections: dict[str, Projection]  # "umap", "pca": every test row, ids 0..N-1


def save_embeddings(path: str | Path, mu: np.ndarray, projections: dict[str, Projection]) -> Path:
    """Write codes and maps as safetensors (no pickle), with each map's parameters in the header. Atomic."""
    from safetensors.numpy import save_file  # noqa: PLC0415

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"mu": np.ascontiguousarray(mu, dtype=np.float32)}
    meta = {"format": "vae-lab-embeddings", "version": "1"}
    for method, pr in projections.items():
        tensors[f"{method}.xy"] = np.ascontiguousarray(pr.xy, dtype=np.float32)
        tensors[f"{method}.ids"] = np.ascontiguousarray(pr.ids, dtype=np.int64)
        meta[f"{method}.params"] = json.dumps(dict(pr.params))
        meta[f"{method}.seconds"] = repr(float(pr.seconds))
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_embeddings(path: str | Path) -> ShippedEmbeddings | None:
    """The embeddings at ``path``, or None when there are none (or the file is not ours): never unpickles."""
    from safetensors import safe_open  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
            if meta.get("format") != "vae-lab-embeddings":
                return None
            mu = fh.get_tensor("mu")
            projections = {}
            for method in METHODS:
                if f"{method}.xy" in fh.keys():  # noqa: SIM118 - safetensors' safe_open has no __contains__
                    params = tuple(sorted(json.loads(meta.get(f"{method}.params", "{}")).items()))
                    projections[method] = Projection(
                        fh.get_tensor(f"{method}.ids"),
                        fh.get_tensor(f"{method}.xy"),
                        method,
                        float(meta.get(f"{method}.seconds", "0")),
                        params,
                    )
    except Exception:  # a damaged file: the page computes the maps as for any model
        return None
    return ShippedEmbeddings(mu, projections)


def projection_key(model_key: str, ids: np.ndarray, method: str, **params: Any) -> ProjectionKey:
    """The cache key of the map of rows ``ids`` of a model's codes: the one :func:`compute_projection_async` uses."""
    return ProjectionKey.make(
        model_key + "|ids:" + data_key(np.asarray(ids)), int(np.asarray(ids).size), method, **params
    )


def seed_cache(cache: ProjectionCache, model_key: str, emb: ShippedEmbeddings) -> int:
    """Put shipped maps into ``cache`` under the keys a page asks for (all test rows, default parameters);
    returns how many. A first visit then shows the UMAP at once, without numba or a fit."""
    n = 0
    for method, pr in emb.projections.items():
        cache.put(projection_key(model_key, pr.ids, method, **dict(pr.params)), pr)
        n += 1
    return n


def projection_job(
    jobs: dict[str, ProjectionJob], model_key: str, x: np.ndarray, method: str = "umap", **params: Any
) -> ProjectionJob:
    """The background embedding of all rows of ``x`` (N, d) for ``model_key``, kept in ``jobs`` (a session's dict):
    started (through :func:`shared_projection_cache`, so another session's fit is reused) when there is none,
    or when the last one failed; else the one already there."""
    job = jobs.get(model_key)
    if job is None or job.error:
        job = jobs[model_key] = compute_projection_async(
            x, np.arange(len(x)), method, cache=shared_projection_cache(), model_key=model_key, **params
        )
    return job
