"""Projections: PCA, exact kNN, row ids through subsampling, the cache, background jobs, UMAP.

Only ``TestUMAP.test_warmup_and_async_umap`` runs real UMAP (200 points): the first UMAP in a
process compiles numba kernels (a few seconds with the on-disk cache cold, ~0.1 s warm).
"""

from __future__ import annotations

import ast
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

from vae_core import projection as pj  # noqa: E402
from vae_core import umap_runtime as rt  # noqa: E402


def blobs(n: int = 300, d: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(3, d))
    return (centres[np.arange(n) % 3] + rng.normal(size=(n, d))).astype(np.float32)  # (n, d)


class TestPCA:
    def test_shape_dtype_deterministic(self) -> None:
        x = blobs()
        a, b = pj.pca_2d(x), pj.pca_2d(x.copy())
        assert a.shape == (300, 2) and a.dtype == np.float32
        np.testing.assert_array_equal(a, b)

    def test_recovers_main_axis_with_fixed_sign(self) -> None:
        rng = np.random.default_rng(1)
        t = rng.normal(size=500)
        x = np.stack([3 * t, -4 * t, 0.01 * rng.normal(size=500)], 1)  # one dominant direction
        xy = pj.pca_2d(x)
        assert abs(np.corrcoef(xy[:, 0], t)[0, 1]) > 0.999
        # the largest loading (-4 on dim 1) is made positive, so xy[:, 0] runs against t
        assert np.corrcoef(xy[:, 0], t)[0, 1] < 0
        np.testing.assert_allclose(pj.pca_2d(-x), -xy, rtol=1e-4, atol=1e-4)  # same axes, so mirrored points

    def test_degenerate_inputs(self) -> None:
        assert pj.pca_2d(np.ones((1, 4))).shape == (1, 2)
        one_d = pj.pca_2d(np.arange(10.0)[:, None])
        assert one_d.shape == (10, 2) and (one_d[:, 1] == 0).all()


class TestKNN:
    def test_matches_brute_force_and_self_first(self) -> None:
        x = blobs(120, 5)
        idx, dist = pj.exact_knn(x, 6, max_chunk_elems=1000)  # several chunks
        d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
        assert idx.dtype == np.int32 and dist.dtype == np.float32 and idx.shape == (120, 6)
        np.testing.assert_array_equal(idx[:, 0], np.arange(120))
        assert (dist[:, 0] == 0).all()
        np.testing.assert_allclose(dist, np.sort(d, 1)[:, :6], rtol=1e-4, atol=1e-4)


class TestRowIds:
    def test_ids_survive_subsampling(self) -> None:
        n = 400
        ids_all = np.arange(n)
        x = np.stack(
            [ids_all.astype(np.float32), np.zeros(n, np.float32), np.sin(ids_all)], 1
        )  # row i "says" i
        ids = pj.subsample_ids(n, 50, seed=3)
        assert len(np.unique(ids)) == 50 and (np.diff(ids) > 0).all()
        np.testing.assert_array_equal(ids, pj.subsample_ids(n, 50, seed=3))
        shuffled = np.random.default_rng(0).permutation(ids)  # any order the page passes
        p = pj.compute_projection(x, shuffled, "pca")
        np.testing.assert_array_equal(p.ids, shuffled)
        np.testing.assert_allclose(p.xy, pj.pca_2d(x[shuffled]))
        # the first PCA axis is (up to sign and shift) the id itself: row k is dataset row ids[k]
        assert abs(np.corrcoef(p.xy[:, 0], shuffled)[0, 1]) > 0.999
        assert p.method == "pca" and p.seconds >= 0

    def test_bad_ids_and_method(self) -> None:
        with pytest.raises(IndexError):
            pj.compute_projection(blobs(10), np.array([0, 10]), "pca")
        with pytest.raises(ValueError, match="method"):
            pj.compute_projection(blobs(10), None, "tsne")


class TestCache:
    def test_hit_returns_same_object_without_recomputing(self) -> None:
        cache = pj.ProjectionCache(maxsize=4)
        calls = []

        def fn() -> object:
            calls.append(1)
            return object()

        key = pj.ProjectionKey.make("m1", 100, "umap", n_neighbors=15, min_dist=0.1)
        assert key == pj.ProjectionKey.make("m1", 100, "umap", min_dist=0.1, n_neighbors=15)
        a = cache.get_or_compute(key, fn)
        b = cache.get_or_compute(key, fn)
        assert a is b and len(calls) == 1 and key in cache

    def test_lru_eviction(self) -> None:
        cache = pj.ProjectionCache(maxsize=2)
        for k in "abc":
            cache.get_or_compute(k, lambda k=k: k.upper())
            if k == "b":
                cache.get("a")  # touch a: b is now the oldest
        assert len(cache) == 2 and "a" in cache and "c" in cache and "b" not in cache

    def test_concurrent_misses_compute_once(self) -> None:
        cache = pj.ProjectionCache()
        calls = []

        def slow() -> str:
            calls.append(1)
            time.sleep(0.2)
            return "value"

        out: list[str] = []
        threads = [
            threading.Thread(target=lambda: out.append(cache.get_or_compute("k", slow))) for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert out == ["value"] * 4 and len(calls) == 1

    def test_failure_is_not_cached(self) -> None:
        cache = pj.ProjectionCache()
        with pytest.raises(RuntimeError):
            cache.get_or_compute("k", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
        assert "k" not in cache and cache.get_or_compute("k", lambda: 1) == 1


class TestJobs:
    def test_async_pca_job_and_cache_hit(self) -> None:
        x, cache = blobs(), pj.ProjectionCache()
        ids = pj.subsample_ids(300, 100)
        job = pj.compute_projection_async(x, ids, "pca", cache=cache, model_key="m")
        assert job.wait(30) and job.done and job.error is None and job.stage == "done" and job.progress == 1.0
        np.testing.assert_array_equal(job.result.ids, ids)
        again = pj.compute_projection_async(x, ids, "pca", cache=cache, model_key="m")
        assert again.done and again.thread is None and again.result is job.result
        other = pj.compute_projection_async(
            x, pj.subsample_ids(300, 100, seed=1), "pca", cache=cache, model_key="m"
        )
        assert other.wait(30) and other.result is not job.result  # same size, other rows: other key

    def test_failed_job_reports_error(self) -> None:
        job = pj.compute_projection_async(
            blobs(3), None, "umap"
        )  # too few points: fails before importing umap
        assert job.wait(30) and job.done and job.result is None
        assert "at least" in job.error and job.stage.startswith("failed")


class TestWarmupDelay:
    """The app delays the warm-up (its ``import umap`` holds the GIL) and may bring it forward."""

    @pytest.fixture
    def fresh(self, monkeypatch):
        started: list[float] = []
        monkeypatch.setattr(rt, "_WARM", rt._WarmState())
        monkeypatch.setattr(rt, "warm_up_umap", lambda: started.append(time.monotonic()) or 0.0)
        return started

    def test_a_delayed_warmup_waits(self, fresh) -> None:
        t0 = time.monotonic()
        t = rt.start_background_warmup(delay=0.4)
        assert rt.start_background_warmup(delay=0.4) is t
        t.join(5)
        assert len(fresh) == 1 and fresh[0] - t0 >= 0.35

    def test_a_shorter_delay_brings_it_forward(self, fresh) -> None:
        t0 = time.monotonic()
        t = rt.start_background_warmup(delay=60.0)  # first Home visit: long wait
        time.sleep(0.1)
        assert not fresh and t.is_alive()
        assert rt.start_background_warmup(delay=0.0) is t  # a click: now
        t.join(5)
        assert not t.is_alive() and len(fresh) == 1 and fresh[0] - t0 < 5

    def test_a_longer_delay_does_not_postpone_it(self, fresh) -> None:
        t0 = time.monotonic()
        t = rt.start_background_warmup(delay=0.3)
        rt.start_background_warmup(delay=60.0)
        t.join(5)
        assert len(fresh) == 1 and fresh[0] - t0 < 5


class TestUMAP:
    def test_warmup_and_async_umap(self) -> None:
        """The one real-UMAP test: background warm-up, then a 200-point job behind it."""
        t = rt.start_background_warmup()
        assert rt.start_background_warmup() is t
        assert rt.warmup_state() in ("running", "done")
        x = blobs(200, 8)
        ids = np.arange(200)[::-1].copy()
        job = pj.compute_projection_async(x, ids, "umap", cache=pj.ProjectionCache(), n_neighbors=10)
        assert job.wait(300), f"UMAP job still running: {job.stage}"
        assert job.error is None, job.error
        p = job.result
        assert p.method == "umap" and p.xy.shape == (200, 2) and np.isfinite(p.xy).all()
        np.testing.assert_array_equal(p.ids, ids)
        np.testing.assert_array_equal(
            pj.umap_2d(x[ids], n_neighbors=10), p.xy
        )  # seeded by default: repeatable
        # the three blobs stay apart: each point's nearest embedded neighbour is in its blob
        blob = ids % 3
        d = ((p.xy[:, None] - p.xy[None]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        assert (blob[d.argmin(1)] == blob).mean() > 0.95
        t.join(300)
        assert rt.warmup_state() == "done" and rt.warmup_seconds() is not None
        if (
            os.environ.get("VAE_LAB_NUMBA_CACHE", "1") != "0"
        ):  # numba's internals moved if this fails: no disk cache
            import umap.layouts

            cache = umap.layouts._nb_optimize_layout_euclidean_single_epoch._cache
            assert "vaelab-serial" in getattr(getattr(cache, "_impl", None), "filename_base", ""), type(cache)
        t0 = time.perf_counter()
        rt.warm_up_umap()  # idempotent: returns at once
        assert time.perf_counter() - t0 < 0.5


@pytest.mark.parametrize("module", ["projection", "inference"])
def test_no_umap_or_streamlit_at_import(module: str) -> None:
    """Module-level imports only (AST, no subprocess): umap is imported lazily, streamlit never."""
    tree = ast.parse((ROOT / "vae_core" / f"{module}.py").read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module.split(".")[0])
    assert not top & {"umap", "pynndescent", "numba", "streamlit"}


def test_place_new_point_uses_the_nearest_codes() -> None:
    mu = np.array([[0.0, 0.0], [10.0, 0.0], [0.1, 0.0], [0.0, 0.2], [9.0, 9.0]], dtype=np.float32)
    proj = pj.Projection(
        ids=np.array([0, 1, 2, 3, 4]),
        xy=np.array([[1, 1], [5, 5], [1, 3], [3, 1], [9, 9]], dtype=np.float32),
        method="pca",
        seconds=0.0,
    )
    xy, near = pj.place_new_point(np.array([0.05, 0.05]), mu, proj, k=3)
    assert set(near.tolist()) == {0, 2, 3} and near[0] in (0, 2)
    np.testing.assert_allclose(xy, [5 / 3, 5 / 3], rtol=1e-6)
    sub = pj.Projection(
        ids=np.array([1, 4]), xy=np.array([[5, 5], [9, 9]], dtype=np.float32), method="pca", seconds=0.0
    )
    xy, near = pj.place_new_point(np.array([8.0, 8.0]), mu, sub, k=8)  # only embedded rows count; k capped
    assert near.tolist() == [4, 1]


def test_shipped_embeddings_round_trip_and_seed_the_cache(tmp_path) -> None:
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(40, 3)).astype(np.float32)
    maps = {
        "pca": pj.compute_projection(mu, None, "pca"),
        "umap": pj.Projection(
            np.arange(40),
            rng.normal(size=(40, 2)).astype(np.float32),
            "umap",
            1.5,
            tuple(sorted(pj.SHIPPED_UMAP_PARAMS.items())),
        ),
    }
    path = pj.embeddings_path(tmp_path / "m.safetensors")
    assert path == tmp_path / "embeddings" / "m.safetensors"
    pj.save_embeddings(path, mu, maps)
    emb = pj.load_embeddings(path)
    np.testing.assert_array_equal(emb.mu, mu)
    np.testing.assert_array_equal(emb.projections["umap"].xy, maps["umap"].xy)
    assert emb.projections["umap"].params == maps["umap"].params
    cache = pj.ProjectionCache()
    assert pj.seed_cache(cache, "shipped:m", emb) == 2
    # what the latent map asks for on a first visit is a cache hit: a job that is done at once, with no thread
    ids = pj.subsample_ids(40, 40)
    job = pj.compute_projection_async(
        mu, ids, "umap", cache=cache, model_key="shipped:m", **pj.SHIPPED_UMAP_PARAMS
    )
    assert job.done and job.thread is None and job.result is emb.projections["umap"]
    assert pj.load_embeddings(tmp_path / "none.safetensors") is None
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    assert pj.load_embeddings(tmp_path / "bad.safetensors") is None
