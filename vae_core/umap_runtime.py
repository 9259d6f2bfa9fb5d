"""The umap-learn runtime: import it once per process, cache its numba kernels on disk, and warm
them up in a background thread so that the first UMAP a user asks for does not wait for numba.

umap-learn does not mark its graph and layout kernels ``cache=True``; :func:`enable_numba_cache`
turns numba's on-disk cache on for exactly those module-level functions (fixed argument types,
so the cache hits in every later process). The serial and parallel layout kernels come from one
Python function and numba's cache key ignores the ``parallel`` flag, so our cache files carry a
tag (``...-vaelab-serial-...``) and never mix. Numba writes them next to umap's sources or, when
that is read-only, to its user-wide cache folder; ``NUMBA_CACHE_DIR`` chooses the folder and
``VAE_LAB_NUMBA_CACHE=0`` turns this off. Nothing here runs at import time.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "UMAP_LOCK",
    "import_umap",
    "enable_numba_cache",
    "warm_up_umap",
    "start_background_warmup",
    "warmup_state",
    "warmup_seconds",
]

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


UMAP_LOCK = threading.Lock()  # one UMAP fit at a time per process: numba's workqueue layer is not thread-safe
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


def enable_numba_cache() -> int:
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
            fn._cache = _tagged_cache(
                fn.py_func, tag
            )  # what Dispatcher.enable_caching() does, with our file name
            n += 1
        except Exception:  # no writable cache location, or numba internals moved
            continue
    return n


def import_umap() -> Any:
    """``import umap`` once per process (it takes seconds), with the numba cache and warning filters set up."""
    global _umap_module
    with _IMPORT_LOCK:
        if _umap_module is None:
            # we pass exact kNN without an NNDescent index; we never call .transform()
            warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)
            import umap  # noqa: PLC0415 - slow import, only when a UMAP is asked for

            enable_numba_cache()
            _umap_module = umap
    return _umap_module


# ---------------------------------------------------------------- warm-up
class _WarmState:
    """Process-wide warm-up bookkeeping (numba's compiled kernels are per process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # guards the fields below
        self.run_lock = threading.Lock()  # held while the warm-up fit runs
        self.state = "not started"
        self.seconds: float | None = None
        self.thread: threading.Thread | None = None
        self.start_at = 0.0  # time.monotonic() at which a waiting warm-up begins
        self.wake = threading.Event()  # set when start_at moved earlier


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
            from .projection import umap_2d  # noqa: PLC0415 - the real fit's code path, without an import cycle

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
    # a failure is recorded in warmup_state(); a daemon thread must not spray tracebacks
    with contextlib.suppress(Exception):
        warm_up_umap()


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
