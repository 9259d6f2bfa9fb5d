"""Many sessions training at once: per-session and total throughput, live-view redraw latency,
the server's peak memory, and whether every worker ends with its session.

Each session is a ``TrainerHandle`` in the process-wide registry (what the Train page uses),
training the page's default model (VAE 784-400-16, β=1, lr 1e-3, batch 128) on Fashion-MNIST
(digits if it is not on this machine) as a job in a worker forked from the fork server. While they
train, the main thread plays every session's live view once a second: ``snapshot()``, the thinned
series and the worker's preview images, i.e. the vae_core side of lab_pages/train.py's fragment
(Plotly figures are not built); its time is reported as the redraw latency. Before that, one
session trains alone for ``--solo-seconds`` as the baseline. At the end half the sessions are
closed and the other half are dropped (their finalizer ends the worker, as when Streamlit forgets
a session), and the bench counts the workers still alive.

    .venv/bin/python -m bench.load_sessions [--sessions 8] [--seconds 20] [--solo-seconds 5]
        [--dataset fashion-mnist] [--threads N]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import threading
import time

os.environ.setdefault("VAE_LAB_TRAINER_TIMEOUT", "0")  # the bench is its sessions' heartbeat

import torch  # noqa: E402

from vae_core import registry  # noqa: E402
from vae_core.data import dataset_available, load_dataset  # noqa: E402
from vae_core.handle import LiveJob  # noqa: E402
from vae_core.jobs import TrainJob  # noqa: E402
from vae_core.models import ModelConfig  # noqa: E402
from vae_core.train import TrainConfig, TrainerState  # noqa: E402

Z, HIDDEN, BATCH = 16, (400,), 128  # the Train page's defaults


def status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: now, VmHWM: peak so far), in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler(threading.Thread):
    """Peak VmRSS over a window (VmHWM covers the whole process life, dataset loading included)."""

    def __init__(self) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.peak = status_mb("VmRSS")
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.05):
            self.peak = max(self.peak, status_mb("VmRSS"))

    def stop(self) -> float:
        self._done.set()
        self.join(5)
        return self.peak


def make_trainer(ds, seed: int) -> LiveJob:
    """The Train page's default model as a job, made as the page makes it."""
    mc = ModelConfig(kind="vae", input_dim=ds.dim, image_shape=ds.image_shape, hidden=HIDDEN, latent_dim=Z)
    tc = TrainConfig(dataset=ds.name, epochs=1000, batch_size=BATCH, lr=1e-3, seed=seed, eval_size=1000)
    return registry.default_registry().job(TrainJob(mc, tc), dataset=ds)


def redraw(h: registry.TrainerHandle) -> float:
    """One live-view refresh of a session (vae_core side); returns its seconds."""
    t = time.perf_counter()
    h.touch()
    snap = h.trainer.snapshot()  # the worker's preview images come with it
    h.series(snap.history, max_points=300)
    return time.perf_counter() - t


def solo(ds, seconds: float) -> float:
    """Steps/s of one session training alone (the baseline)."""
    reg = registry.default_registry()
    h = reg.open(label="solo")
    h.start(make_trainer(ds, seed=99))
    tr = h.trainer
    while tr.global_step == 0:  # its worker is forked and steps
        time.sleep(0.05)
    time.sleep(1.0)  # warm-up: first steps, allocator
    s0, t0 = tr.global_step, time.perf_counter()
    time.sleep(seconds)
    rate = (tr.global_step - s0) / (time.perf_counter() - t0)
    h.close()
    tr.join(10)
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0, help="measured window with all sessions training")
    ap.add_argument("--solo-seconds", type=float, default=5.0, help="baseline: one session alone (0 = skip)")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ[registry.ENV_MAX_TRAINERS] = str(max(args.sessions, 1))
    name = args.dataset if dataset_available(args.dataset) else "digits"
    rss0 = status_mb("VmRSS")
    ds = load_dataset(name, download=False)
    rss_data = status_mb("VmRSS")
    print(
        f"dataset {name} ({ds.x_train.shape[0]} train images), VAE {ds.dim}-{HIDDEN[0]}-{Z}, batch {BATCH}, "
        f"{args.sessions} sessions, torch threads {torch.get_num_threads()}, cores {os.cpu_count()}"
    )
    print(f"RSS: {rss0:.0f} MB at start, {rss_data:.0f} MB with the dataset loaded")

    solo_rate = solo(ds, args.solo_seconds) if args.solo_seconds > 0 else float("nan")
    if args.solo_seconds > 0:
        print(f"solo: 1 session alone {solo_rate:.1f} steps/s ({solo_rate * BATCH:,.0f} examples/s)")

    reg = registry.default_registry()
    sampler = RssSampler()
    sampler.start()
    handles = [reg.open(label=f"bench-{i}") for i in range(args.sessions)]
    for i, h in enumerate(handles):
        h.start(make_trainer(ds, seed=i))
    trainers = [h.trainer for h in handles]
    while any(tr.global_step == 0 for tr in trainers):  # every worker is forked and steps
        time.sleep(0.05)
    time.sleep(1.0)  # warm-up
    s0, t0 = [tr.global_step for tr in trainers], time.perf_counter()
    lat: list[float] = []
    while time.perf_counter() - t0 < args.seconds:
        tick = time.perf_counter()
        for h in handles:  # every session's page refreshes once a second
            lat.append(redraw(h))
        time.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))
    elapsed = time.perf_counter() - t0
    s1 = [tr.global_step for tr in trainers]
    bad = [(tr.state, tr.message) for tr in trainers if tr.state != TrainerState.RUNNING]
    peak = sampler.stop()
    rates = [(b - a) / elapsed for a, b in zip(s0, s1)]
    total = sum(rates)
    print(
        f"{args.sessions} sessions for {elapsed:.1f} s: steps/s per session "
        f"{' '.join(f'{r:.1f}' for r in rates)}"
    )
    print(
        f"  min {min(rates):.1f}, median {statistics.median(rates):.1f}, max {max(rates):.1f} steps/s "
        f"(fairness min/max {min(rates) / max(rates):.2f})"
    )
    print(
        f"  total {total:.1f} steps/s = {total * BATCH:,.0f} examples/s"
        + (f" = {total / solo_rate:.2f}x one session alone" if solo_rate == solo_rate else "")
    )
    lat_ms = sorted(v * 1000 for v in lat)
    print(
        f"  live-view refresh (snapshot + series + preview): median {statistics.median(lat_ms):.1f} ms, "
        f"p95 {lat_ms[int(0.95 * (len(lat_ms) - 1))]:.1f} ms, max {lat_ms[-1]:.1f} ms over {len(lat_ms)} refreshes"
    )
    print(f"  sessions not running at the end: {len(bad)} {bad if bad else ''}")
    print(
        f"RSS: peak {peak:.0f} MB while training (+{peak - rss_data:.0f} MB over the dataset), "
        f"VmHWM {status_mb('VmHWM'):.0f} MB, ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )

    # End the sessions: half closed explicitly, half dropped (finalizer), then count live threads.
    t_end = time.perf_counter()
    half = args.sessions // 2
    for h in handles[:half]:
        h.close()
    del h, handles
    gc.collect()
    joined = all(tr.join(15) for tr in trainers)
    ended = all(not tr.is_alive for tr in trainers)
    stop_s = time.perf_counter() - t_end
    states = sorted({tr.state for tr in trainers})
    print(
        f"after ending the sessions: all stopped {joined} and their workers ended {ended} in {stop_s:.2f} s, "
        f"states {states}, registry entries {len(reg)}"
    )
    time.sleep(6.0)  # the watchdog ends at its next check once nothing is left to watch
    alive = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
    print(f"threads alive 6 s later (besides main): {alive or 'none'}")


if __name__ == "__main__":
    main()
