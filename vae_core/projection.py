"""2-D projections of latent codes: PCA at once, UMAP in the background, both cached.

Why this module looks the way it does (measured with ``bench/umap_speed.py`` on this project's
shared 2-core CPU box; CPU seconds, since wall time there depended on others' load):

* **umap-learn compiles numba kernels on its first fit in a process.** With its default
  nearest-neighbour search (pynndescent's NN-descent, used for N >= 4096) the first fit of 10k
  points cost ~50 s of CPU (37 s wall on a quiet box), and numba cannot cache NN-descent on
  disk: it takes the distance function as an argument, whose type differs in every process, so
  every fresh process pays again (and each try appends a new cache file). We therefore compute
  the exact k nearest neighbours ourselves with torch (a chunked matrix product, ~0.3-1 s for
  10k x 16) and hand them to UMAP as ``precomputed_knn``; UMAP then only needs its own graph
  and layout kernels (~6 s CPU to compile).
* **Those kernels can be cached on disk.** umap-learn does not mark them ``cache=True``;
  :func:`_enable_numba_cache` turns numba's cache on for exactly these module-level functions
  (fixed argument types, so the cache hits in every later process; verified: no new cache
  files on later runs). A fresh process then warms up in ~2.4 s CPU, nearly all of it
  ``import umap``. The serial and parallel layout kernels come from one Python function and
  numba's cache key ignores the ``parallel`` flag, so our cache files carry a tag
  (``...-vaelab-serial-...``) and never mix. Numba writes them next to umap's sources
  (``umap/__pycache__``) or, when that is read-only, to its user-wide cache dir; set
  ``NUMBA_CACHE_DIR`` to choose the folder, ``VAE_LAB_NUMBA_CACHE=0`` to turn this off.
* **Layout epochs dominate a warm fit** (~25 ms CPU per epoch for 10k points). The default
  ``n_epochs`` follows a budget of ~1e6 point-epochs: 100 epochs at 10k points (umap uses
  500), up to 500 for <= 2k points. On 10k Fashion-MNIST codes the 10-NN label accuracy of the
  2-D map was 0.74 with 100 epochs and 0.745-0.748 with 200 or 500: the same picture at a
  fifth of the cost (2.7 s vs 11.8 s CPU). ``init="pca"`` rather than umap's spectral init:
  as good here (0.744 vs 0.738) and 3x cheaper (spectral: 9.5 s CPU at 100 epochs).
* **Seeded (one thread) by default.** ``seed=0`` makes umap run its layout on one thread; it
  gives the same map in every run and process, and on this busy 2-core box it was as fast as
  the parallel layout or faster (5.0-11 s vs 7.3-14 s wall, 2.4-2.9 s vs 3.0 s CPU), because
  numba's threads fight the trainer's torch threads for the cores. ``seed=None`` runs the
  parallel kernel (faster on an idle multi-core machine). The warm-up compiles both.
  The :class:`ProjectionCache` then keeps an embedding once computed, so a redraw is free.

Every result carries the dataset row ids it embeds (:class:`Projection`), so a selection maps
back to dataset rows whatever the subsampling or colouring. ``umap`` is imported lazily (it is
slow); nothing here runs at import time.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable, NamedTuple

import numpy as np
import torch

__all__ = [
    "Projection",
    "pca_2d",
    "exact_knn",
    "umap_2d",
    "default_umap_epochs",
    "warm_up_umap",
    "start_background_warmup",
    "warmup_state",
    "warmup_seconds",
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

# UMAP's own numba kernels that we cache on disk: module-level, fixed argument types, so the
# cache hits in every later process. The layout kernel exists twice (serial and parallel) built
# from one Python function, and numba's cache key ignores the ``parallel`` flag, so each gets a
# tagged file name of its own (and our files never mix with a plain ``cache=True`` elsewhere).
_CACHEABLE_KERNELS = (
    ("umap.umap_", "smooth_knn_dist", "vaelab"),
    ("umap.umap_", "compute_membership_strengths", "vaelab"),
    ("umap.layouts", "clip", "vaelab"),
    ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch", "vaelab-serial"),
    ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch_parallel", "vaelab-parallel"),
)


@dataclass(frozen=True, eq=False)
class Projection:
    """A 2-D embedding of some dataset rows. Row k of ``xy`` is dataset row ``ids[k]``."""

    ids: np.ndarray  # (N,) int64 dataset row ids, in the order of xy's rows
    xy: np.ndarray  # (N, 2) float32 embedding coordinates (arbitrary units)
    method: str  # "pca" or "umap"
    seconds: float  # wall time of the computation, s
    params: tuple = ()  # sorted (name, value) pairs the embedding was computed with


# ---------------------------------------------------------------- PCA
def pca_2d(x: np.ndarray) -> np.ndarray:
    """First two principal components of x (N, d) -> (N, 2) float32, deterministic.

    Centred, SVD in float64; each axis's sign is fixed so that its largest loading is
    positive (scikit-learn's ``svd_flip`` rule), so the same data always gives the same
    picture. d == 1 gives a zero second column; N < 2 gives zeros.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"pca_2d expects a 2-D array (N, d), got shape {x.shape}")
    n, d = x.shape
    out = np.zeros((n, 2), dtype=np.float32)
    if n < 2 or d < 1:
        return out
    xc = x - x.mean(0)  # (N, d)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)  # vt: (min(N,d), d), rows = principal axes
    k = min(2, vt.shape[0])
    axes = vt[:k]  # (k, d)
    signs = np.sign(axes[np.arange(k), np.argmax(np.abs(axes), axis=1)])
    signs[signs == 0] = 1.0
    out[:, :k] = (xc @ (axes * signs[:, None]).T).astype(np.float32)  # (N, k)
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
_UMAP_LOCK = threading.Lock()  # one UMAP fit at a time per process: numba's workqueue layer is not thread-safe
_IMPORT_LOCK = threading.Lock()
_umap_module: Any = None


def _tagged_cache(py_func: Callable, tag: str) -> Any:
    """A numba ``FunctionCache`` for ``py_func`` whose files are named ``<module.func>-<tag>-...``."""
    from numba.core.caching import CompileResultCacheImpl, FunctionCache  # noqa: PLC0415

    class _Impl(CompileResultCacheImpl):
        def get_filename_base(self, fullname: str, abiflags: str) -> str:
            return super().get_filename_base(f"{fullname}-{tag}", abiflags)

    class _Cache(FunctionCache):
        _impl_class = _Impl

    return _Cache(py_func)


def _enable_numba_cache() -> int:
    """Turn on numba's on-disk cache for UMAP's graph and layout kernels; returns how many.

    Skipped with ``VAE_LAB_NUMBA_CACHE=0``. A kernel whose cache folder cannot be written
    (or a numba/umap version that differs from the one this was written for) simply stays
    uncached: compiled in memory, as umap does by default.
    """
    if os.environ.get("VAE_LAB_NUMBA_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return 0
    n = 0
    for modname, attr, tag in _CACHEABLE_KERNELS:
        try:
            fn = getattr(importlib.import_module(modname), attr, None)
            if fn is None or type(getattr(fn, "_cache", None)).__name__ != "NullCache":
                continue  # absent in this umap version, or already cached by umap itself
            fn._cache = _tagged_cache(fn.py_func, tag)  # what Dispatcher.enable_caching() does, with our file name
            n += 1
        except Exception:  # no writable cache location, or numba internals moved
            continue
    return n


def _import_umap() -> Any:
    """``import umap`` once per process (~2-3 s), with the numba cache and warning filters set up."""
    global _umap_module
    with _IMPORT_LOCK:
        if _umap_module is None:
            # we pass exact kNN without an NNDescent index; we never call .transform()
            warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)
            import umap  # noqa: PLC0415 - slow import, only when a UMAP is asked for

            _enable_numba_cache()
            _umap_module = umap
    return _umap_module


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
    umap = _import_umap()
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
    with _UMAP_LOCK:
        xy = reducer.fit_transform(x)  # (N, 2)
    return np.asarray(xy, dtype=np.float32)


# ---------------------------------------------------------------- warm-up
class _WarmState:
    """Process-wide warm-up bookkeeping (numba's compiled kernels are per process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # guards the fields below
        self.run_lock = threading.Lock()  # held while the warm-up fit runs
        self.state = "not started"
        self.seconds: float | None = None
        self.thread: threading.Thread | None = None
        self.start_at = 0.0                 # time.monotonic() at which a waiting warm-up begins
        self.wake = threading.Event()       # set when start_at moved earlier


_WARM = _WarmState()


def warm_up_umap() -> float:
    """Fit UMAP once on 300 x 4 random points so numba compiles its kernels in this process.

    Idempotent and thread-safe: a call while another warm-up runs waits for it; a call after
    a successful one returns at once. Returns the seconds spent in *this* call (~0 when
    already warm). After a failure (state ``'failed: ...'``) the next call tries again.
    """
    t0 = time.perf_counter()
    with _WARM.run_lock:
        with _WARM.lock:
            if _WARM.state == "done":
                return time.perf_counter() - t0
            _WARM.state = "running"
        try:
            x = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
            for seed in (0, None):  # the serial (seeded) and the parallel layout kernel
                umap_2d(x, n_neighbors=15, n_epochs=10, seed=seed)  # same code path and dtypes as real fits
        except Exception as exc:
            with _WARM.lock:
                _WARM.state = f"failed: {type(exc).__name__}: {exc}"
            raise
        seconds = time.perf_counter() - t0
        with _WARM.lock:
            _WARM.state, _WARM.seconds = "done", seconds
    return seconds


def _warm_quietly() -> None:
    while True:  # wait until start_at; a later call may move it earlier
        with _WARM.lock:
            left = _WARM.start_at - time.monotonic()
            _WARM.wake.clear()
        if left <= 0:
            break
        _WARM.wake.wait(left)
    try:
        warm_up_umap()
    except Exception:  # recorded in warmup_state(); a daemon thread must not spray tracebacks
        pass


def start_background_warmup(delay: float = 0.0) -> threading.Thread:
    """Start :func:`warm_up_umap` in a daemon thread, once per process; returns that thread.

    Call it early (e.g. when the app starts) so the UMAP page never waits for numba. With
    ``delay`` (seconds) the thread waits that long first: its ``import umap`` holds the GIL for
    seconds, so the app starts it a moment after a page run rather than during one.
    Later calls return the same thread, unless the earlier warm-up failed (then it retries);
    a later call with a shorter delay brings a still-waiting warm-up forward.
    """
    with _WARM.lock:
        at = time.monotonic() + max(0.0, delay)
        t = _WARM.thread
        if t is not None and t.is_alive() and at < _WARM.start_at:
            _WARM.start_at = at
            _WARM.wake.set()
        if t is None or (_WARM.state.startswith("failed") and not t.is_alive()):
            if _WARM.state != "done":
                _WARM.state = "running"
            # umap imports pandas. Imported first in a background thread, pandas can be seen
            # half-initialised by a page's plotly import at the same moment ("partially
            # initialized module 'pandas'", reproduced at app start), so import it here, in the caller.
            import pandas  # noqa: F401, PLC0415

            _WARM.start_at = at
            t = threading.Thread(target=_warm_quietly, name="umap-warmup", daemon=True)
            _WARM.thread = t
            t.start()
        return t


def warmup_state() -> str:
    """``'not started'``, ``'running'``, ``'done'`` or ``'failed: <reason>'``."""
    with _WARM.lock:
        return _WARM.state


def warmup_seconds() -> float | None:
    """Seconds the successful warm-up took in this process (None until it is done)."""
    with _WARM.lock:
        return _WARM.seconds


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

    ~1 ms for 10k x 16 float32; use it (or a checkpoint name plus training step) as ``model_key``.
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
    def make(cls, model_key: str, n_points: int, method: str, **params: Any) -> "ProjectionKey":
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
    ids_arr = np.arange(x.shape[0], dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64).reshape(-1)
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

    ``stage`` is a line for the UI and ``progress`` a fraction in [0, 1] (layout epochs for UMAP).
    """

    def __init__(self, method: str, n_points: int) -> None:
        self.method = method
        self.n_points = n_points
        self.result: Projection | None = None
        self.error: str | None = None
        self.stage = "queued"
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
        self.stage = "done" if error is None else f"failed: {error}"
        self.progress = 1.0 if error is None else self.progress
        self._event.set()

    def _run(self, x: np.ndarray, ids: np.ndarray | None, cache: ProjectionCache | None, key: Hashable, params: dict) -> None:
        def on_progress(done: int, total: int) -> None:
            self.progress = 0.1 + 0.9 * done / max(total, 1)
            self.stage = f"{self.method.upper()} layout: epoch {done}/{total}"

        def compute() -> Projection:
            if self.method == "umap" and warmup_state() == "running":
                self.stage = "waiting for the UMAP warm-up (numba is compiling)"
            else:
                self.stage = f"computing {self.method.upper()} of {self.n_points} points"
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
        mk = (model_key if model_key is not None else data_key(x, ids_arr)) + "|ids:" + data_key(ids_arr)
        key = ProjectionKey.make(mk, ids_arr.size, method, **params)
        hit = cache.get(key)
        if hit is not None:
            job._finish(result=hit)
            return job
    job.thread = threading.Thread(
        target=job._run, args=(x, ids_arr, cache, key, params), name=f"projection-{method}", daemon=True
    )
    job.thread.start()
    return job
