"""Memory of lean workers forked from the fork server, and Start -> first step, as the app runs them.

Starts the fork server (vae_core.forkserver) and waits until it has imported torch and decoded the
built-in datasets; then, through a registry as the Train page does (``TrainerHandle.start`` of a
``TrainJob``), starts ``--workers`` sessions training the page's default model (Fashion-MNIST,
784-400-16 VAE, batch 128). Per worker, from ``/proc/PID/smaps_rollup`` (not RSS, which counts
every shared page in full):

- USS, the memory only that worker holds (``Private_Clean + Private_Dirty``), and
- PSS, its share of everything (each shared page divided by the processes that map it),

in three states: idle (forked, waiting for its job), training (after ``--train-s`` seconds of it),
and paused (holding its trained model). Also Start -> first step, seconds from ``start()`` to the
first step reported back, for each session in turn. Targets (issue "A room on one server"):
idle USS <= 100 MB, training USS <= 200 MB, Start -> first step <= 0.5 s.

    .venv/bin/python -m bench.worker_memory [--workers 3] [--train-s 8] [--dataset fashion-mnist]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench._common import ROOT
from vae_core.data import dataset_available, load_dataset
from vae_core.forkserver import ForkServer, cpu_count
from vae_core.jobs import TrainJob
from vae_core.models import ModelConfig
from vae_core.registry import TrainerRegistry
from vae_core.train import TrainConfig, TrainerState

TARGETS = {"idle": 100.0, "training": 200.0}  # USS per worker, MB
FIRST_STEP_TARGET_S = 0.5


def smaps_mb(pid: int) -> tuple[float, float]:
    """(USS, PSS) of ``pid`` in MB, from /proc/PID/smaps_rollup."""
    kb: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                kb[parts[0][:-1]] = int(parts[1])
    return (kb["Private_Clean"] + kb["Private_Dirty"]) / 1024, kb["Pss"] / 1024


def wait(cond, timeout: float = 120.0) -> float:
    """Poll ``cond`` every 2 ms; the time.perf_counter() when it became true."""
    end = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > end:
            raise TimeoutError("the worker did not get there in time")
        time.sleep(0.002)
    return time.perf_counter()


def row(name: str, figures: list[tuple[float, float]], target: float | None) -> str:
    """One line of the table: USS and PSS per worker, and their mean, against the target."""
    uss, pss = [f[0] for f in figures], [f[1] for f in figures]
    verdict = "" if target is None else ("  ok" if max(uss) <= target else f"  OVER {target:.0f} MB")
    return (
        f"{name:>9}: USS {' '.join(f'{u:6.1f}' for u in uss)} MB (mean {statistics.mean(uss):.1f}), "
        f"PSS {' '.join(f'{p:6.1f}' for p in pss)} MB (mean {statistics.mean(pss):.1f}){verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    """Print the figures; returns the exit code (1 when a target is missed)."""
    p = argparse.ArgumentParser(prog="python -m bench.worker_memory", description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--train-s", type=float, default=8.0, help="seconds of training before the measurement")
    p.add_argument("--dataset", default="fashion-mnist" if dataset_available("fashion-mnist") else "digits")
    args = p.parse_args(argv)
    ds = load_dataset(args.dataset)
    hidden = (400,)  # the Train page's defaults
    mc = ModelConfig(kind="vae", input_dim=ds.dim, image_shape=ds.image_shape, hidden=hidden, latent_dim=16)
    tc = TrainConfig(dataset=ds.name, epochs=50)

    pool = ForkServer()
    t0 = time.perf_counter()
    pool.start()
    wait(lambda: pool.ready)
    ready = time.perf_counter() - t0
    time.sleep(3.0)  # it decodes the built-in datasets after it is ready (forks are served meanwhile)
    print(
        f"worker memory: {mc.describe()} on {ds.name}, {args.workers} workers, {cpu_count()} cores ({ROOT.name}/)\n"
        f"fork server: ready (torch and the core imported) {ready:.2f} s after its start; "
        f"USS {smaps_mb(pool.pid)[0]:.0f} MB, PSS {smaps_mb(pool.pid)[1]:.0f} MB"  # type: ignore[arg-type]
    )

    # idle: a worker forked and waiting for its job (what every worker costs before it trains)
    idle_procs = [pool.fork() for _ in range(args.workers)]
    wait(lambda: all(w.pid is not None for w in idle_procs))
    time.sleep(1.0)
    idle = [smaps_mb(w.pid) for w in idle_procs if w.pid is not None]
    for w in idle_procs:
        w.close(wait=False)

    reg = TrainerRegistry(heartbeat_timeout=0, max_running=args.workers, pool=pool)
    handles, jobs, first = [], [], []
    try:
        for _ in range(args.workers):  # one session after another, as a room presses Start
            h = reg.open()
            job = reg.job(TrainJob(mc, tc), dataset=ds)
            t = time.perf_counter()
            h.start(job)  # what the Start button does
            first.append(wait(lambda j=job: j.state == TrainerState.RUNNING and j.global_step > 0) - t)
            handles.append(h)
            jobs.append(job)
        time.sleep(args.train_s)
        training = [smaps_mb(j.pid) for j in jobs]
        steps = [j.global_step for j in jobs]
        for j in jobs:
            j.pause()
        time.sleep(1.5)
        paused = [smaps_mb(j.pid) for j in jobs]
    finally:
        reg.shutdown()
        pool.close()

    print(row("idle", idle, TARGETS["idle"]))
    print(row("training", training, TARGETS["training"]) + f"  (steps {steps})")
    print(row("paused", paused, None))
    worst = max(first)
    print(
        f"Start -> first step: {' '.join(f'{s:.2f}' for s in first)} s (median {statistics.median(first):.2f}, "
        f"target <= {FIRST_STEP_TARGET_S} s){'  ok' if worst <= FIRST_STEP_TARGET_S else '  OVER'}"
    )
    missed = (
        max(u for u, _ in idle) > TARGETS["idle"]
        or max(u for u, _ in training) > TARGETS["training"]
        or worst > FIRST_STEP_TARGET_S
    )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
