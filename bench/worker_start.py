"""Start -> first step of a job in a worker forked from the fork server: ready, and just started.

Times, in seconds, from the page's call of ``TrainerHandle.start`` (through the registry, as the
Train page does) to: ``start()`` returning (the page shows "starting"), and the first step
reported back (the snapshot's state turns "running"). "ready": the fork server has imported torch
and the core (the usual case: it starts with the app); "just started": Start pressed the moment the
fork server was started (the first seconds after a server start). Also the fork server's own
start-up: Popen -> torch and vae_core imported, forks served.

    .venv/bin/python -m bench.worker_start [--dataset fashion-mnist] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench._common import ROOT, D, H, Z
from vae_core.data import dataset_available, load_dataset
from vae_core.forkserver import ForkServer, cpu_count
from vae_core.jobs import TrainJob
from vae_core.models import ModelConfig
from vae_core.registry import TrainerRegistry
from vae_core.train import TrainConfig, TrainerState


def wait(cond, timeout: float = 120.0) -> float:
    """Poll ``cond`` every 5 ms; the time.perf_counter() when it became true."""
    end = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > end:
            raise TimeoutError("the worker did not get there in time")
        time.sleep(0.005)
    return time.perf_counter()


def one_start(reg: TrainerRegistry, mc: ModelConfig, tc: TrainConfig, ds) -> tuple[float, float]:
    """(start() returned, first step seen) in seconds after the call, for one new session."""
    h = reg.open()
    w = reg.job(TrainJob(mc, tc), dataset=ds)
    t0 = time.perf_counter()
    h.start(w)
    t_ret = time.perf_counter() - t0
    assert w.state == TrainerState.STARTING
    t_step = wait(lambda: w.state == TrainerState.RUNNING and w.global_step > 0) - t0
    h.close()
    w.close()
    return t_ret, t_step


def main(argv: list[str] | None = None) -> int:
    """Print the start-up figures; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m bench.worker_start", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist" if dataset_available("fashion-mnist") else "digits")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    ds = load_dataset(args.dataset)
    hidden, latent = ((H,), Z) if ds.dim == D else ((128,), 4)
    mc = ModelConfig(
        kind="vae", input_dim=ds.dim, image_shape=ds.image_shape, hidden=hidden, latent_dim=latent
    )
    tc = TrainConfig(dataset=ds.name, epochs=50)
    print(
        f"worker start-up: {mc.describe()} on {ds.name}, {cpu_count()} cores, {args.repeats} repeats ({ROOT.name}/)"
    )

    ready, cold, warm = [], [], []
    for _ in range(args.repeats):
        pool = ForkServer()
        reg = TrainerRegistry(heartbeat_timeout=0, pool=pool)
        pool.start()
        cold.append(one_start(reg, mc, tc, ds))  # pressed while the fork server imports
        wait(lambda p=pool: p.ready)
        ready.append((pool.ready_at or 0.0) - (pool.started_at or 0.0))
        time.sleep(3.0)  # it decodes the built-in datasets after it is ready
        warm.append(one_start(reg, mc, tc, ds))
        reg.shutdown()
        pool.close()
    print(
        f"fork server start-up (Popen -> torch and the core imported): median {statistics.median(ready):.2f} s "
        f"({', '.join(f'{s:.2f}' for s in ready)})"
    )
    for name, rows in (("just started", cold), ("ready", warm)):
        ret, step = [r[0] for r in rows], [r[1] for r in rows]
        print(
            f"{name:>20}: start() returns in {1000 * max(ret):.1f} ms (state 'starting'); "
            f"Start -> first step median {statistics.median(step):.2f} s ({', '.join(f'{s:.2f}' for s in step)})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
