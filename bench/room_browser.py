"""A room on one server in Chromium: several sessions training at once in the browser, one more tab dragging a slider.

Issue 15's benchmark (b), with real browsers on the server's own cores (``bench.room`` is the same room
without browsers: protocol-level clients). Both sides train the Train page's defaults (VAE 784-400-16, β=1, lr 1e-3,
batch 128, Fashion-MNIST) for ``--epochs`` epochs, ``--sessions`` at once:

- headless: ``--sessions`` processes of the CLI (``python -m vae_core.train``) started together, each
  with its fair share of the cores (``OMP_NUM_THREADS`` = cores / sessions, at least 1: the best way
  to run them side by side; the app's registry gives its workers the same share);
- in the app: a ``streamlit run app.py`` server and headless Chromium on this machine; one browser
  context per session opens /train, sets epochs and seed, and all press Start; meanwhile one more
  tab on the Latent explorer drags the z1 slider again and again and times release -> new traversal
  displayed (as bench.browser_latency does).

Figure of merit: the aggregate training throughput, the sum over sessions of the examples/s of
each one's last epoch (``History.throughput``, test pass included: the CLI prints it per epoch, the
page shows it), so both sides are measured the same way; the first epoch of a run includes its
start-up, hence ``--epochs 2`` by default. Runs alternate (headless, app, headless, app, ...); the
RESULT line gives medians, their ratio, and the slider's p50/p95 over every move of every app run.
Targets: ratio >= 0.85; slider p50 <= 200 ms, p95 <= 400 ms. Also where the cores went (CPU
seconds per wall second of the workers, the server, the browser).

    .venv/bin/python -m bench.room_browser [--sessions 4] [--epochs 2] [--repeats 2] [--port 8598]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

from bench._common import ROOT, CpuMeter, cores_line, missing_chromium
from bench.app_train_throughput import Browser, finished_throughput, open_train_page
from bench.browser_latency import pct, slider_move_ms
from tests.e2e.harness import VIEWPORT, open_page, settle

TARGET_RATIO, TARGET_P50_MS, TARGET_P95_MS = 0.85, 200.0, 400.0
EPOCH_LINE = re.compile(r"epoch (\d+)\.00: .* (\d+) ex/s")


def headless(sessions: int, epochs: int, seed: int) -> float:
    """Aggregate last-epoch examples/s of ``sessions`` CLI processes started together."""
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // sessions)))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vae_core.train",
                "--dataset",
                "fashion-mnist",
                "--latent",
                "16",
                "--epochs",
                str(epochs),
                "--seed",
                str(seed + i),
                "--out",
                f"/tmp/vae_lab_room_{os.getpid()}_{i}.safetensors",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(sessions)
    ]
    total = 0.0
    for p in procs:
        out, _ = p.communicate(timeout=1800)
        rates = [int(m.group(2)) for m in EPOCH_LINE.finditer(out)]
        if p.returncode != 0 or len(rates) != epochs:
            raise RuntimeError(f"a CLI run failed (exit {p.returncode}): {out[-500:]}")
        total += rates[-1]
    return total


def in_app(
    b: Browser, sessions: int, epochs: int, seed: int, timeout_s: float = 1800
) -> tuple[float, list[float], str]:
    """(aggregate last-epoch examples/s, slider latencies in ms, where the cores went) for one room run."""
    ctxs = [b.browser.new_context(viewport={"width": 1500, "height": 1400}) for _ in range(sessions)]
    pages = [c.new_page() for c in ctxs]
    for i, page in enumerate(pages):
        open_train_page(page, b.url, epochs, seed + i)
    slider_ctx = b.browser.new_context(viewport=VIEWPORT)
    slider = slider_ctx.new_page()
    open_page(slider, b.url, "explorer")
    meter = CpuMeter({"server": b.server.pid, "browser": b.browser_pid()}, children_apart=("server",))
    meter.start()
    for page in pages:
        page.get_by_role("button", name="Start").click()
    done: dict[int, float] = {}
    moves: list[float] = []
    t0, last_poll, i = time.perf_counter(), 0.0, 0
    while len(done) < sessions:
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError(f"{sessions - len(done)} sessions did not finish in {timeout_s:.0f} s")
        moves.append(slider_move_ms(slider, 0.1 + 0.8 * ((7 * i) % 20) / 19))
        i += 1
        settle(slider, 60, quiet=0.2)
        slider.wait_for_timeout(300)  # a person's pause between moves
        if time.perf_counter() - last_poll > 3.0:  # reading a page costs its renderer a layout: rarely
            last_poll = time.perf_counter()
            meter.sample()
            for k, page in enumerate(pages):
                if k not in done and (eps := finished_throughput(page)) is not None:
                    done[k] = eps
    cpu = meter.stop()
    for c in [*ctxs, slider_ctx]:
        c.close()
    return (
        sum(done.values()),
        moves,
        cores_line(cpu, (("workers", "server children"), ("server", "server"), ("browser", "browser"))),
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="alternating pairs (headless, app)")
    p.add_argument("--port", type=int, default=8598)
    args = p.parse_args()
    if (reason := missing_chromium()) is not None:
        print(f"room bench cannot run: {reason}")
        return 2
    print(
        f"{os.cpu_count()} CPUs, {args.sessions} sessions x {args.epochs} epochs of VAE 784-400-16 on Fashion-MNIST, "
        f"load average {os.getloadavg()[0]:.1f} at the start",
        flush=True,
    )
    b = Browser(args.port, 0)
    head, app, slider = [], [], []
    try:
        for r in range(args.repeats):
            h = headless(args.sessions, args.epochs, seed=10 * r)
            head.append(h)
            print(f"run {r + 1} headless: {h:,.0f} examples/s in all", flush=True)
            a, moves, info = in_app(b, args.sessions, args.epochs, seed=10 * r)
            app.append(a)
            slider += moves
            print(
                f"run {r + 1} in app:   {a:,.0f} examples/s in all; slider p50 {pct(moves, 50):.0f} ms, p95 {pct(moves, 95):.0f} ms "
                f"over {len(moves)} moves; {info}",
                flush=True,
            )
    finally:
        b.close()
    h, a = statistics.median(head), statistics.median(app)
    pairs = statistics.median(x / y for x, y in zip(app, head))
    p50, p95 = pct(slider, 50), pct(slider, 95)
    print(
        f"RESULT {args.sessions} sessions: headless {h:,.0f} examples/s, in app {a:,.0f} (medians of {args.repeats}), "
        f"ratio {a / h:.3f}, median ratio of the back-to-back pairs {pairs:.3f} (target >= {TARGET_RATIO}); "
        f"slider release -> image p50 {p50:.0f} ms, p95 {p95:.0f} ms over {len(slider)} moves "
        f"(targets {TARGET_P50_MS:.0f} / {TARGET_P95_MS:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
