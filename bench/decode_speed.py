"""Latency of the latent explorer's decoder calls, against the page's targets.

Model: a 784-400-16 VAE with random weights (latency does not depend on training). Two figures,
each the median over many calls after a warm-up, through ``vae_core.inference``:

* one z -> one image (``inference.decode``): the slider drag in the latent explorer. Target 2 ms.
* a full traversal grid, 16 dims x 9 steps = 144 images in one batched decode
  (``inference.traverse``). Target 100 ms.

Torch uses its default thread count; a second block repeats the figures with one thread.

    .venv/bin/python -m bench.decode_speed [--calls 200] [--grid-calls 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vae_core import inference
from vae_core.models import ModelConfig, build_model

TARGET_ONE_MS = 2.0
TARGET_GRID_MS = 100.0


def median_ms(fn, calls: int, warmup: int = 20) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``calls`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200, help="timed single-z decodes")
    ap.add_argument("--grid-calls", type=int, default=50, help="timed traversal grids")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    model = build_model(
        ModelConfig(kind="vae", input_dim=784, image_shape=(1, 28, 28), hidden=(400,), latent_dim=16)
    )
    z = torch.randn(16)  # (z,)
    lo, hi = torch.full((16,), -3.0), torch.full((16,), 3.0)
    dims = list(range(16))

    shape = tuple(inference.traverse(model, z, dims, lo, hi, steps=9).shape)
    print(f"model: {model.config.describe()}, torch {torch.__version__}")
    default_threads = torch.get_num_threads()
    # the default thread count is the figure that counts; one thread is shown for comparison,
    # because on a busy 2-core box torch's intra-op threads can stall waiting for each other
    for threads in dict.fromkeys([default_threads, 1]):
        torch.set_num_threads(threads)
        one = median_ms(lambda: inference.decode(model, z), args.calls)
        grid = median_ms(
            lambda: inference.traverse(model, z, dims, lo, hi, steps=9), args.grid_calls, warmup=5
        )
        tag = f"{threads} thread{'s' if threads > 1 else ''}" + (
            " (default)" if threads == default_threads else ""
        )
        print(f"[{tag}]")
        print(
            f"  decode one z            : {one:9.3f} ms  median of {args.calls:3d}  target {TARGET_ONE_MS:5.0f} ms  "
            f"ratio {one / TARGET_ONE_MS:6.3f}  {'OK' if one <= TARGET_ONE_MS else 'OVER'}"
        )
        print(
            f"  traversal grid {shape[0]}x{shape[1]} ({shape[0] * shape[1]}): {grid:9.3f} ms  median of {args.grid_calls:3d}  "
            f"target {TARGET_GRID_MS:5.0f} ms  ratio {grid / TARGET_GRID_MS:6.3f}  {'OK' if grid <= TARGET_GRID_MS else 'OVER'}"
        )
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
