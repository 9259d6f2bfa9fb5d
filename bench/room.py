"""A room on one server, without browsers: attendees simulated at the protocol level.

Each attendee is a :class:`bench.st_client.StClient`: a websocket session that speaks Streamlit's own
messages, opens pages, presses buttons and sets sliders by their keys, and sends the reruns a
browser's ``run_every`` timers send (the Train page's live view: one fragment rerun a second). It
renders nothing, so this machine's cores go to the server and its workers. One ``streamlit run
app.py`` on 127.0.0.1, warmed up first as a host would (every page the room uses opened once).
Three figures, in one run:

(a) one attendee trains on the Train page (its defaults: VAE 784-400-16 on Fashion-MNIST, batch 128,
    its epochs set to 5; Start; the live view's reruns each second) against the CLI (``python -m vae_core.train``,
    the same config, alone on the machine, with the workers' ``OMP_WAIT_POLICY``). Target: ratio >= 0.9.
(b) 4 attendees train at once while a fifth drags the explorer's z1 slider (a person's 0.3 s pause
    between moves), against 4 CLI processes at once (``OMP_NUM_THREADS`` = cores / 4, at least 1, the
    share the registry gives each of 4 workers). Target: aggregate ratio >= 0.85; slider release ->
    new image p50 <= 200 ms, p95 <= 400 ms, timed from the client sending the new value to the delta
    with the new image arriving. The browser decodes while a slider is dragged (the decoder component),
    so what the server sends at a release is the new traversal: that is the image timed.
(c) ``--room`` attendees (30) arrive over ``--arrive-s`` seconds and stay ``--room-s``: up to the
    registry's trainer cap (``VAE_LAB_MAX_TRAINERS``, default 2 per core) train, the others wander
    the explorer (slider moves), the ELBO page (the K slider) and the latent map, with a pause of
    ``--think`` seconds between actions. Reported: rerun latency p50/p95 per page (goal p95 <= 1 s),
    errors (goal 0: an exception element, a dropped connection, a run that never finishes), the
    server's CPU and PSS, every worker's PSS and USS (``/proc/PID/smaps_rollup``: RSS counts the
    pages a forked worker shares with its parent twice), and a capacity line for hosts.

Throughput, the same way on both sides: steps the trainer reports over wall time, times the batch,
from the end of the first epoch (start-up excluded) to the last report. The CLI reports at each
epoch's end (its ``epoch k.00`` line, timed as it arrives); the page reports in its progress text
("step n/N") at each fragment rerun, timed as its delta arrives. The trainer's own last-epoch
figure (``History.throughput``, which the page's caption and the CLI's line both show) is printed
beside it. ``--repeats`` alternates the pairs (CLI, app) of (a) and (b); the figures are medians.

The clients themselves share this machine: their CPU is printed ("clients"), and how late their event
loop ever was (every time they record is late by as much). (c) also prints its ``--slowest`` reruns, with
when each was sent: many sent at once and finished together point at a server that stalled for everyone.
The last line reads
``RESULT a=... b=... slider_p50_ms=... slider_p95_ms=... room_attendees=... room_errors=...
room_rerun_p95_s=...``.

    .venv/bin/python -m bench.room [--parts abc] [--epochs N] [--repeats 1] [--trainers 4] [--room 30]
        [--room-s 60] [--arrive-s 10] [--think 2 5] [--max-trainers 0] [--budget-s 570] [--slowest 5] [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import ROOT, CpuMeter, memory_mib
from bench.st_client import ClientError, StClient, slider_value
from tests.e2e.harness import Server, descendants, launch_server, wait_healthy

# vae_core.worker.ENV_WAIT_POLICY, named here so that the CLI side can start before torch is imported
ENV_WAIT_POLICY = "VAE_LAB_WORKER_WAIT_POLICY"

TARGET_A, TARGET_B, TARGET_P50_MS, TARGET_P95_MS, TARGET_ROOM_P95_S = 0.9, 0.85, 200.0, 400.0, 1.0
BATCH = 128  # the Train page's default batch
PROGRESS = re.compile(r"\*\*(\w+)\*\* · step ([\d,]+)/([\d,]+) · epoch [\d.]+/(\d+)")
LAST_EPOCH = re.compile(r"last epoch: ([\d,]+) examples/s")
CLI_STEPS = re.compile(r"(\d+) steps$")
CLI_EPOCH = re.compile(r"^epoch (\d+)\.00: .* (\d+) ex/s$")
DONE_STATES = ("finished", "stopped", "diverged", "failed")
IMAGE = "decoded pixel means"  # the explorer's decoded image (when the server decodes): its caption
TRAVERSAL = "Rows, top to bottom"  # the explorer's traversal: its caption
DECODER = "explorer_decoder"  # the explorer's decoder component (lab_pages/explorer.py DECODER_KEY)


def pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile (linear between ranks); nan for no values."""
    if not values:
        return math.nan
    v = sorted(values)
    x = (len(v) - 1) * q / 100
    lo = int(x)
    return v[lo] + (v[min(lo + 1, len(v) - 1)] - v[lo]) * (x - lo)


@dataclass
class Training:
    """One trainer's progress reports: (seconds, step) and its own last-epoch examples/s."""

    samples: list[tuple[float, int]] = field(default_factory=list)
    steps_per_epoch: int = 0
    own_eps: float = math.nan  # History.throughput of the last epoch, as the trainer reports it
    state: str = ""

    def rate(self) -> float:
        """Examples/s from the first report past epoch 1 to the last report; nan with fewer than 2."""
        s = [(t, n) for t, n in self.samples if n >= self.steps_per_epoch]
        if len(s) < 2 or s[-1][0] <= s[0][0]:
            return math.nan
        return (s[-1][1] - s[0][1]) * BATCH / (s[-1][0] - s[0][0])


# ---------------------------------------------------------------------------- the CLI side
async def cli_runs(n: int, epochs: int, timeout_s: float) -> list[Training]:
    """``n`` CLI trainings of the page's defaults started together, each with cores / n threads."""
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // n)),
        # the workers' OpenMP wait policy (vae_core.worker): with the default, spinning, two threads that
        # share busy cores wait on each other, and on a shared 2-core machine the CLI ran 10x slower
        OMP_WAIT_POLICY=os.environ.get(ENV_WAIT_POLICY, "").strip().upper() or "PASSIVE",
    )
    args = ["-m", "vae_core.train", "--dataset", "fashion-mnist", "--latent", "16", "--epochs", str(epochs)]

    async def one(seed: int) -> Training:
        p = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            "--seed",
            str(seed),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,  # the tqdm bar
        )
        tr, tail = Training(), []
        assert p.stdout is not None
        async for raw in p.stdout:
            at, line = time.perf_counter(), raw.decode(errors="replace").strip()
            tail.append(line)
            if (m := CLI_STEPS.search(line)) and not tr.steps_per_epoch:
                tr.steps_per_epoch = int(m.group(1)) // epochs
            elif m := CLI_EPOCH.match(line):
                tr.samples.append((at, int(m.group(1)) * tr.steps_per_epoch))
                tr.own_eps = float(m.group(2))
        if await p.wait() != 0 or len(tr.samples) != epochs:
            raise RuntimeError(f"a CLI run failed (exit {p.returncode}): {tail[-5:]}")
        return tr

    return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), timeout_s)


# ---------------------------------------------------------------------------- attendees
def read_progress(c: StClient, tr: Training) -> bool:
    """Note the Train page's progress report if it is new; True once training is over."""
    node = c.find(kind="progress", text="step")
    m = PROGRESS.search(node.text) if node else None
    if m is None:
        return False
    tr.state, step = m.group(1), int(m.group(2).replace(",", ""))
    tr.steps_per_epoch = int(m.group(3).replace(",", "")) // int(m.group(4))
    if tr.state == "running" and (not tr.samples or tr.samples[-1][0] != node.at):
        tr.samples.append((node.at, step))
    if tr.state in DONE_STATES:
        if cap := c.find(kind="markdown", text="last epoch"):
            tr.own_eps = float(LAST_EPOCH.search(cap.text).group(1).replace(",", ""))  # type: ignore[union-attr]
        return True
    return False


async def trainee(c: StClient, epochs: int | None, stay_s: float, stop: bool = False) -> Training:
    """Open /train, (set the epochs,) press Start, then stay while the live view refreshes, until training
    ends or ``stay_s`` passes (then press Stop if ``stop``)."""
    tr = Training()
    await c.open("/train")
    if epochs is not None:
        await c.set_value("train_epochs", epochs)
    await c.click("train_start")
    if not c.auto:
        raise ClientError(f"{c.name}: Start did not start training: {c.texts()[-3:]}")
    await c.idle(stay_s, until=lambda: read_progress(c, tr))
    if tr.state not in DONE_STATES:
        if not stop:
            c.errors.append(f"training did not end in {stay_s:.0f} s (state {tr.state or '?'})")
        elif (btn := c.find(key="train_stop")) is not None and not btn.widget.disabled:
            await c.click("train_stop")
    return tr


async def slider_mover(
    c: StClient,
    until: Callable[[], bool],
    pause_s: float,
    moves: int,
    think: Callable[[], float] | None = None,
) -> list[float]:
    """On the explorer, move z1 (up to ``moves`` times, until ``until()``): ms from sending each value to the
    delta with the server's new image. The browser decodes while a slider is dragged (lab_pages/decoder_component),
    so a release sends the component's final point and the server redraws the traversal: that is the image timed.
    Where the page decodes on the server instead (its fallback), the slider's value goes, and the decoded image
    is timed."""
    if c.page != "explorer":
        await c.open("/explorer")
    out: list[float] = []
    for i in range(moves):
        if until():
            break
        fraction = 0.1 + 0.8 * ((7 * i) % 20) / 19
        comp = c.find(key=DECODER)
        if comp is not None and comp.kind == "bidi_component":
            data = json.loads(comp.widget.json)
            z, j = list(data["z"]), data["dims"][0]
            lo, hi = data["lo"][0], data["hi"][0]
            z[j] = lo + fraction * (hi - lo)
            before = c.find(kind="imgs", text=TRAVERSAL)
            r = await c.set_value(DECODER, {"release": {"z": z, "id": f"{c.name}-{i}-{time.perf_counter()}"}})
            after = c.find(kind="imgs", text=TRAVERSAL)
            what = f"z{j + 1} = {z[j]:.2f}: the explorer's traversal"
        else:
            before = c.find(kind="imgs", text=IMAGE)
            value = slider_value(c.widget("explorer_dim_0"), fraction)
            r = await c.set_value("explorer_dim_0", value)
            after = c.find(kind="imgs", text=IMAGE)
            what = f"z1 = {value:.2f}: the explorer's image"
        if after is None or before is None or after.src == before.src:
            c.errors.append(f"{what} did not change")
        else:
            out.append((after.at - r.sent) * 1000)
        await asyncio.sleep(think() if think else pause_s)
    return out


async def wanderer(c: StClient, rng: random.Random, deadline: float, think: tuple[float, float]) -> None:
    """Move around the explorer, the ELBO page and the latent map until ``deadline``, a pause between actions."""

    def pause() -> float:
        return min(rng.uniform(*think), max(0.0, deadline - time.perf_counter()))

    while time.perf_counter() < deadline:
        for page in rng.sample(["explorer", "elbo", "latent-map"], 3):
            if time.perf_counter() >= deadline:
                return
            await c.open(f"/{page}")
            await asyncio.sleep(pause())
            if page == "explorer":
                await slider_mover(c, lambda: time.perf_counter() >= deadline, 0, rng.randint(2, 4), pause)
            elif page == "elbo":
                options = list(c.widget("elbo_k").widget.options)
                for _ in range(rng.randint(1, 3)):
                    if time.perf_counter() >= deadline:
                        break
                    await c.set_value("elbo_k", rng.choice(options))
                    await asyncio.sleep(pause())
            else:  # the latent map: look at it (its poll fragment reruns while a UMAP runs)
                await c.idle(pause() + pause())


async def attend(
    url: str, name: str, body: Callable[[StClient], Awaitable[Any]], timeout_s: float = 120
) -> tuple[StClient, Any]:
    """A new session running ``body``; a ClientError is already in the client's errors, others are added."""
    c = StClient(url, timeout_s=timeout_s, name=name)
    result = None
    try:
        await c.connect()
        result = await body(c)
    except ClientError as exc:
        if not c.errors:
            c.errors.append(str(exc))
    except Exception as exc:  # a bug in this bench or the client: counted, not hidden
        c.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        await c.close()
    return c, result


# ---------------------------------------------------------------------------- the server
class Meters:
    """CPU of the server, its workers and these clients; peak PSS of the server and of each worker."""

    def __init__(self, server: Server) -> None:
        self.pid = server.proc.pid
        self.cpu = CpuMeter(
            {"server": self.pid, "clients": os.getpid()}, children_apart=("server", "clients")
        )
        self.server_pss = self.server_uss = 0.0  # MiB, peaks
        self.workers: dict[int, dict[str, float]] = {}  # pid -> peak {"pss", "uss", "rss"}
        self.lag_max = 0.0  # s: the longest the clients' event loop was late (their timings are that late)
        self._task: asyncio.Task | None = None

    def sample_memory(self) -> None:
        if m := memory_mib(self.pid):
            self.server_pss = max(self.server_pss, m["pss"])
            self.server_uss = max(self.server_uss, m["uss"])
        for pid in descendants(self.pid):
            if m := memory_mib(pid):
                peak = self.workers.setdefault(pid, m)
                for k in m:
                    peak[k] = max(peak[k], m[k])

    async def _loop(self, every_s: float) -> None:
        for i in range(1_000_000):  # bounded: stopped long before
            t = time.perf_counter()
            await asyncio.sleep(0.05)
            self.lag_max = max(self.lag_max, time.perf_counter() - t - 0.05)  # the clients' loop, blocked
            if i % round(every_s / 0.05) == 0:
                self.cpu.sample()
            if i % round(3 * every_s / 0.05) == 0:
                self.sample_memory()

    def start(self, every_s: float = 2.0) -> None:
        self.cpu.start()
        self.sample_memory()
        self._task = asyncio.create_task(self._loop(every_s))

    async def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
        self.sample_memory()
        return self.cpu.stop() | {"lag": self.lag_max}

    def worker_cores(self) -> dict[int, float]:
        """CPU s per wall s of each worker (the server's descendants) between start and stop."""
        wall = self.cpu.t1 - self.cpu.t0
        return {
            pid: (self.cpu.last[pid][0] - self.cpu.first[pid]) / (wall or math.nan)
            for pid in self.workers
            if pid in self.cpu.last
        }


FORK_SERVER_NAME = "vae-lab-forksrv"  # /proc/PID/comm of the lab's fork server (vae_core.forkserver)


def fork_server_pid(server: Server) -> int | None:
    """The pid of the server's fork server (a descendant named FORK_SERVER_NAME), or None before it runs."""
    for pid in descendants(server.proc.pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == FORK_SERVER_NAME:
                return pid
    return None


def server_memory(server: Server) -> dict[str, float]:
    """The server's PSS/USS/RSS in MiB, plus ``fork_pss``/``fork_uss``: its fork server's, which a host
    pays once whatever the room (torch, the core and the datasets that every worker shares)."""
    nan = {"pss": math.nan, "uss": math.nan, "rss": math.nan}
    m = memory_mib(server.proc.pid) or nan
    fork = fork_server_pid(server)
    f = (memory_mib(fork) if fork is not None else None) or nan
    return m | {"fork_pss": f["pss"], "fork_uss": f["uss"]}


async def warm_up(url: str) -> list[str]:
    """Open every page the room uses once, as a host does before the room arrives; wait for the latent map."""
    pages = ["/", "/train", "/explorer", "/elbo", "/latent-map"]

    async def body(c: StClient) -> None:
        for p in pages:
            await c.open(p)
        await c.idle(60, until=lambda: not c.auto)  # the latent map polls until its UMAP is ready

    c, _ = await attend(url, "warm-up", body, timeout_s=300)
    return c.errors


# ---------------------------------------------------------------------------- the three parts
async def part_a(url: str, epochs: int | None, repeats: int) -> tuple[float, list[str]]:
    ep = epochs or 5
    ratios, lines = [], []
    for r in range(repeats):
        (cli,) = await cli_runs(1, ep, 900)
        c, tr = await attend(url, "a", lambda c: trainee(c, epochs, 900), timeout_s=120)
        app_rate = tr.rate() if tr else math.nan
        ratios.append(app_rate / cli.rate())
        lines.append(
            f"(a) run {r + 1}: CLI {cli.rate():,.0f} examples/s (its last epoch {cli.own_eps:,.0f}); "
            f"app {app_rate:,.0f} examples/s (its last epoch {tr.own_eps if tr else math.nan:,.0f}); "
            f"ratio {ratios[-1]:.3f}; {len(tr.samples) if tr else 0} progress reports; errors {len(c.errors)}"
            + (f": {c.errors[:2]}" if c.errors else "")
        )
        print(lines[-1], flush=True)
    return statistics.median(ratios), lines


async def b_app(
    url: str, server: Server, epochs: int | None, n: int, stay: float
) -> tuple[list[tuple[StClient, Any]], StClient, list[float], dict[str, float]]:
    """One app side of (b): ``n`` trainees and a slider mover, until the trainees are done.
    Returns (trainees, mover, slider ms, CPU)."""
    meters = Meters(server)
    meters.start()
    done = asyncio.Event()

    async def trainees() -> list[tuple[StClient, Any]]:
        try:
            return await asyncio.gather(
                *(
                    attend(url, f"b{i}", lambda c: trainee(c, epochs, stay, stop=True), timeout_s=120)
                    for i in range(n)
                )
            )
        finally:
            done.set()

    mover = attend(url, "slider", lambda c: slider_mover(c, done.is_set, 0.3, 100_000), timeout_s=60)
    results, (sc, ms) = await asyncio.gather(trainees(), mover)
    return results, sc, ms or [], await meters.stop()


async def part_b(
    url: str, server: Server, epochs: int | None, repeats: int, n: int, deadline: float
) -> tuple[float, list[float], int]:
    """(b); the app's trainers press Stop at ``deadline`` (perf_counter) if still running: their rates stand."""
    ep = epochs or 5
    ratios, moves, errors = [], [], 0
    for r in range(repeats):
        clis = await cli_runs(n, ep, 1800)
        cli_sum = sum(t.rate() for t in clis)
        results, sc, ms, cpu = await b_app(url, server, epochs, n, max(60.0, deadline - time.perf_counter()))
        app_sum = sum(tr.rate() for _c, tr in results if tr)
        ratios.append(app_sum / cli_sum)
        moves += ms
        errs = [e for c, _tr in results for e in c.errors] + sc.errors
        errors += len(errs)
        cut = sum(1 for _c, tr in results if tr and tr.state != "finished")
        print(
            f"(b) run {r + 1}: {n} CLI processes {cli_sum:,.0f} examples/s in all; app {app_sum:,.0f} in all "
            f"(each {', '.join(f'{tr.rate():,.0f}' for _c, tr in results if tr)}"
            + (f"; {cut} stopped at the time budget, measured up to there" if cut else "")
            + f"); ratio {ratios[-1]:.3f}; slider p50 {pct(ms, 50):.0f} ms, p95 {pct(ms, 95):.0f} ms over "
            f"{len(ms)} moves; {cores(cpu)}; errors {len(errs)}" + (f": {errs[:3]}" if errs else ""),
            flush=True,
        )
    return statistics.median(ratios), moves, errors


def cores(cpu: dict[str, float]) -> str:
    w = cpu["wall"] or math.nan
    return (
        f"CPU s per wall s: workers {cpu['server children'] / w:.2f}, server {cpu['server'] / w:.2f}, "
        f"clients {(cpu['clients'] + cpu['clients children']) / w:.2f} (of {os.cpu_count()} cores); "
        f"the clients' event loop at most {cpu['lag'] * 1000:.0f} ms late"
    )


@dataclass
class RoomResult:
    attendees: int
    errors: list[str]
    connects: list[float]  # s: each attendee's websocket handshake
    reruns: dict[str, list[float]]  # page -> rerun latencies in s
    cpu: dict[str, float]
    server_pss: float
    server_uss: float
    workers: dict[int, dict[str, float]]  # pid -> peak {"pss", "uss", "rss"} MiB
    worker_cores: dict[int, float]  # pid -> CPU s per wall s
    training: int


async def part_c(
    url: str,
    server: Server,
    n: int,
    cap: int,
    room_s: float,
    arrive_s: float,
    think: tuple[float, float],
    show_slowest: int = 0,
) -> RoomResult:
    trainers = min(cap, n)
    meters = Meters(server)
    meters.start()
    t0 = time.perf_counter()
    deadline = t0 + arrive_s + room_s

    async def arrive(i: int) -> tuple[StClient, Any]:
        await asyncio.sleep(i * arrive_s / n)
        if i < trainers:
            stay = deadline - time.perf_counter()
            return await attend(url, f"c{i}", lambda c: trainee(c, None, stay, stop=True), timeout_s=60)
        rng = random.Random(i)
        return await attend(url, f"c{i}", lambda c: wanderer(c, rng, deadline, think), timeout_s=60)

    results = await asyncio.gather(*(arrive(i) for i in range(n)))
    meters.sample_memory()  # before the sessions end: trainers stopped, workers still there
    cpu = await meters.stop()
    slow = sorted(((r, c.name) for c, _ in results for r in c.reruns), key=lambda rc: -rc[0].latency_s)
    for r, name in slow[:show_slowest]:
        print(
            f"    slow: {name} {r.what} on /{r.page} at {r.sent - t0:.1f} s: {r.latency_s:.2f} s", flush=True
        )
    reruns: dict[str, list[float]] = {}
    for c, _ in results:
        for r in c.reruns:
            reruns.setdefault(r.page or "home", []).append(r.latency_s)
    errors = [f"{c.name}: {e}" for c, _ in results for e in c.errors]
    return RoomResult(
        sum(1 for c, _ in results if c.reruns),
        errors,
        [c.connect_s for c, _ in results if not math.isnan(c.connect_s)],
        reruns,
        cpu,
        meters.server_pss,
        meters.server_uss,
        meters.workers,
        meters.worker_cores(),
        trainers,
    )


def report_room(rr: RoomResult, n: int, base: dict[str, float]) -> list[str]:
    """(c)'s lines and the capacity line. Memory per attendee is the growth of the server's USS (its private
    pages: what sessions add); its PSS also shrinks as forked workers come to share its pages."""
    w = rr.cpu["wall"] or math.nan
    all_s = [x for v in rr.reruns.values() for x in v]
    lines = [
        f"(c) {rr.attendees} of {n} attendees ({rr.training} training, the trainer cap), {w:.0f} s: "
        f"rerun p50 {pct(all_s, 50):.2f} s, p95 {pct(all_s, 95):.2f} s over {len(all_s)} reruns "
        f"(goal p95 <= {TARGET_ROOM_P95_S:g} s); errors {len(rr.errors)} (goal 0); websocket handshake p50 "
        f"{pct(rr.connects, 50):.2f} s, max {max(rr.connects, default=math.nan):.2f} s",
        "    per page: "
        + "; ".join(
            f"/{p} p50 {pct(v, 50):.2f} s p95 {pct(v, 95):.2f} s (n {len(v)})"
            for p, v in sorted(rr.reruns.items())
        ),
        f"    {cores(rr.cpu)}",
        f"    server PSS / USS {rr.server_pss:,.0f} / {rr.server_uss:,.0f} MiB at their peaks ({base['pss']:,.0f} / "
        f"{base['uss']:,.0f} MiB after the warm-up, before anyone trained); its fork server {base['fork_pss']:,.0f} / "
        f"{base['fork_uss']:,.0f} MiB (listed among the descendants below)",
        "    workers (the server's descendants), peak PSS / USS MiB and CPU s per wall s: "
        + (
            ", ".join(
                f"{m['pss']:.0f}/{m['uss']:.0f} {rr.worker_cores.get(pid, math.nan):.2f}"
                for pid, m in sorted(rr.workers.items())
            )
            or "none"
        )
        + f"; {sum(m['pss'] for m in rr.workers.values()):,.0f} MiB PSS in all",
    ]
    lines += [f"    error: {e[:300]}" for e in rr.errors[:5]]
    per_att_cores = rr.cpu["server"] / w / max(1, rr.attendees)
    per_att_mib = (rr.server_uss - base["uss"]) / max(1, rr.attendees)
    worker_cores = rr.cpu["server children"] / w / max(1, rr.training)
    # the training workers: the busiest (the fork server trains nothing and is counted in the base below)
    busiest = sorted(rr.workers, key=lambda pid: -rr.worker_cores.get(pid, 0.0))[: rr.training]
    trainers_pss = [rr.workers[pid]["pss"] for pid in busiest]
    per_trainer_mib = statistics.mean(trainers_pss) if trainers_pss else math.nan
    busy = (rr.cpu["server"] + rr.cpu["server children"] + rr.cpu["clients"]) / w
    lines.append(
        f"capacity: per attendee {per_att_cores:.3f} cores and {per_att_mib:.0f} MiB (USS) in the server; per training "
        f"attendee one worker, {worker_cores:.2f} cores and {per_trainer_mib:.0f} MiB PSS; a host for N attendees, T "
        f"of them training: about {(base['pss'] + base['fork_pss']) / 1024:.1f} GiB (the server and its fork server) + N x {per_att_mib:.0f} MiB + T x {per_trainer_mib:.0f} MiB, "
        f"N x {per_att_cores:.3f} + T x {worker_cores:.2f} cores (measured: {rr.attendees} attendees, {rr.training} "
        f"training, {os.cpu_count()} cores"
        + (
            f", {busy:.1f} of them busy: saturated, so the cores are what it got, not what it wanted)"
            if busy > 0.9 * (os.cpu_count() or 1)
            else ")"
        )
    )
    return lines


# ---------------------------------------------------------------------------- main
async def run(args: argparse.Namespace) -> int:
    from vae_core.data import dataset_available
    from vae_core.registry import env_max_trainers

    if not dataset_available("fashion-mnist"):
        print(
            "room bench cannot run: Fashion-MNIST is not on this machine (the Train page's default dataset)"
        )
        return 2
    env = {"VAE_LAB_MAX_TRAINERS": str(args.max_trainers)} if args.max_trainers else {}
    os.environ.update(env)
    cap = env_max_trainers()
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start; Train page defaults "
        f"(VAE 784-400-16, Fashion-MNIST, batch {BATCH}, {args.epochs or 5} epochs); trainer cap {cap}",
        flush=True,
    )
    t_start = time.perf_counter()
    # as docs/serving.md starts a room's server: no file watcher on the app's modules (nobody edits
    # the app during a workshop; .streamlit/config.toml's "poll" is for development)
    server = launch_server(args.port or None, env=env | {"STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"})
    a = b = math.nan
    moves: list[float] = []
    room: RoomResult | None = None
    try:
        print(f"server up in {wait_healthy(server, 120):.1f} s on {server.url}", flush=True)
        t = time.perf_counter()
        if errs := await warm_up(server.url):
            print(f"warm-up errors: {errs[:3]}")
        base = server_memory(server)  # after the warm-up, before anyone trains
        print(f"warm-up (every page the room uses, once) {time.perf_counter() - t:.1f} s", flush=True)
        if "a" in args.parts:
            a, _lines = await part_a(server.url, args.epochs, args.repeats)
        if "b" in args.parts:
            reserve = args.arrive_s + args.room_s + 45 if "c" in args.parts else 15  # (c) and the ending
            deadline = t_start + args.budget_s - reserve
            b, moves, _errors = await part_b(
                server.url, server, args.epochs, args.repeats, args.trainers, deadline
            )
        if "c" in args.parts:
            room = await part_c(
                server.url,
                server,
                args.room,
                cap,
                args.room_s,
                args.arrive_s,
                tuple(args.think),
                args.slowest,
            )
            for line in report_room(room, args.room, base):
                print(line, flush=True)
    finally:
        server.stop()
    print(
        f"(a) ratio {a:.3f} (target >= {TARGET_A}); (b) ratio {b:.3f} (target >= {TARGET_B}), slider p50 "
        f"{pct(moves, 50):.0f} ms, p95 {pct(moves, 95):.0f} ms over {len(moves)} moves (targets "
        f"{TARGET_P50_MS:.0f} / {TARGET_P95_MS:.0f}); whole run {time.perf_counter() - t_start:.0f} s"
    )
    all_s = [x for v in room.reruns.values() for x in v] if room else []
    print(
        f"RESULT a={a:.3f} b={b:.3f} slider_p50_ms={pct(moves, 50):.0f} slider_p95_ms={pct(moves, 95):.0f} "
        f"room_attendees={room.attendees if room else 0} room_errors={len(room.errors) if room else 0} "
        f"room_rerun_p95_s={pct(all_s, 95):.2f}"
    )
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default="abc", help="which figures: any of a, b, c (default all three)")
    p.add_argument(
        "--epochs",
        type=int,
        default=5,
        help="(a), (b): epochs, set on the Train page and given to the CLI (default 5)",
    )
    p.add_argument("--repeats", type=int, default=1, help="(a), (b): alternating pairs (CLI, app)")
    p.add_argument("--trainers", type=int, default=4, help="(b): attendees training at once")
    p.add_argument("--room", type=int, default=30, help="(c): attendees")
    p.add_argument("--room-s", type=float, default=60.0, help="(c): seconds the room stays after arriving")
    p.add_argument(
        "--arrive-s", type=float, default=10.0, help="(c): seconds over which the attendees arrive"
    )
    p.add_argument(
        "--think", type=float, nargs=2, default=(2.0, 5.0), help="(c): pause between actions, s (uniform)"
    )
    p.add_argument(
        "--max-trainers", type=int, default=0, help="the server's VAE_LAB_MAX_TRAINERS (0: its default)"
    )
    p.add_argument(
        "--budget-s",
        type=float,
        default=570.0,
        help="(b): the app's trainers press Stop when the run nears this many seconds (their rates stand)",
    )
    p.add_argument("--slowest", type=int, default=5, help="(c): print the N slowest reruns")
    p.add_argument("--port", type=int, default=0, help="the server's port on 127.0.0.1 (0: a free one)")
    args = p.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
