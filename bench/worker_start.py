"""Start -> first step of a trainer in a worker process, cold and with a spare worker started ahead.

Times, in seconds, from the page's call of ``TrainerHandle.start`` (through the registry, as the
Train page does) to: ``start()`` returning (the page shows "starting"), and the first step
reported back (the snapshot's state turns "running"). Also the spawn cost alone: Popen -> the
child has imported torch and vae_core and waits for a job.

    .venv/bin/python -m bench.worker_start [--dataset fashion-mnist] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench._common import ROOT, D, H, Z
from vae_core.data import dataset_available, load_dataset
from vae_core.models import ModelConfig
from vae_core.registry import TrainerRegistry
from vae_core.train import TrainConfig, TrainerState
from vae_core.worker import WorkerProcess, cpu_count


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
    w = reg.worker(mc, tc, dataset=ds)
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

    spawn = []
    for _ in range(args.repeats):
        wp = WorkerProcess()
        wait(lambda wp=wp: wp.ready)
        spawn.append(wp.ready_at - wp.spawned_at)
        wp.close()
    print(
        f"spawn (Popen -> torch imported, waiting for a job): median {statistics.median(spawn):.2f} s "
        f"({', '.join(f'{s:.2f}' for s in spawn)})"
    )

    reg = TrainerRegistry(heartbeat_timeout=0, spare_workers=0)
    cold = [one_start(reg, mc, tc, ds) for _ in range(args.repeats)]
    reg.shutdown()
    reg = TrainerRegistry(heartbeat_timeout=0, spare_workers=1)
    warm = []
    for _ in range(args.repeats):
        reg.prewarm(ds.name)
        wait(lambda: reg._spare is not None and reg._spare.ready)
        time.sleep(1.0)  # the spare decodes the dataset meanwhile (a page prewarms well before Start)
        warm.append(one_start(reg, mc, tc, ds))
    reg.shutdown()
    for name, rows in (("cold (new process)", cold), ("spare worker", warm)):
        ret, step = [r[0] for r in rows], [r[1] for r in rows]
        print(
            f"{name:>20}: start() returns in {1000 * max(ret):.1f} ms (state 'starting'); "
            f"Start -> first step median {statistics.median(step):.2f} s ({', '.join(f'{s:.2f}' for s in step)})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
