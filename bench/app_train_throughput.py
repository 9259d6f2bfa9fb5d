"""Training throughput inside the app against the headless trainer, same configuration.

Headless: ``Trainer.run()`` in the main thread, as ``python -m vae_core.train`` does.

In the app, three ways (``--mode``):

- ``refresh`` (default): the session's worker process, started through a session handle exactly as
  the Start button does (vae_core.registry), while this process runs the page's per-second refresh
  work beside it: ``lab_pages.train.draw_live``, the body
  of the live fragment (snapshot, history to numpy, Plotly figures to JSON, LaTeX, preview
  decode, PNG grids), once per ``--refresh`` seconds. Streamlit runs it in bare mode, so every
  element is built and encoded, only not sent.
- ``apptest``: the Train page (lab_pages/train.py) driven through Streamlit's AppTest in
  this process. Its Start button builds and starts the session's worker; while that
  trains, the *whole* page script is rerun every ``--refresh`` seconds (snapshot, history to
  numpy, Plotly figures, LaTeX, preview images). The browser reruns only the live fragment,
  so this overstates the page's per-second refresh work (AppTest's own parsing of every element
  tree runs in this process too).
- ``browser``: the real thing. A ``streamlit run app.py`` server and a headless Chromium on
  this machine; the bench opens /train, sets the epochs and seed, presses Start and waits for
  "finished"; the fragment refreshes once a second all the while, and the browser renders it.
  Also where the cores went: CPU seconds per wall second of the workers, the server, Chromium and
  this bench (bench._common.CpuMeter).

Figure of merit, both sides: the trainer's own epoch throughput (``History.throughput``:
training examples per second of wall time over the epoch, its test pass included), so the
in-app and headless numbers are measured the same way. Runs alternate (headless, app,
headless, app, ...) so that the noise of a shared machine hits both alike; the RESULT line
gives medians and their ratio, and the median ratio of back-to-back pairs. Target (issue 15, the
browser mode): ratio >= 0.9.

Model: the Train page's defaults (VAE 784-400-16, β=1, lr 1e-3, batch 128), ``--epochs`` epochs.

    .venv/bin/python -m bench.app_train_throughput [--mode refresh|apptest|browser] [--dataset fashion-mnist]
        [--epochs 1] [--repeats 3] [--refresh 1.0] [--threads N] [--port 8599] [--gil-default]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import sys
import time

os.environ.setdefault("VAE_LAB_TRAINER_TIMEOUT", "0")  # the bench is its own heartbeat

import torch  # noqa: E402

from bench._common import ROOT, CpuMeter, cores_line, launch_chromium, processes  # noqa: E402
from tests.e2e.harness import launch_server  # noqa: E402
from vae_core.data import load_dataset  # noqa: E402
from vae_core.device import pick_device  # noqa: E402
from vae_core.models import ModelConfig  # noqa: E402
from vae_core.train import TrainConfig, Trainer, TrainerState  # noqa: E402

Z, HIDDEN, BATCH = 16, (400,), 128  # the Train page's defaults


def configs(ds, epochs: int, seed: int) -> tuple[ModelConfig, TrainConfig]:
    mc = ModelConfig(kind="vae", input_dim=ds.dim, image_shape=ds.image_shape, hidden=HIDDEN, latent_dim=Z)
    return mc, TrainConfig(dataset=ds.name, epochs=epochs, batch_size=BATCH, lr=1e-3, seed=seed)


def headless(ds, epochs: int, seed: int) -> tuple[float, float]:
    """(epoch throughput, wall-clock examples/s) of Trainer.run() in this thread."""
    tr = Trainer(*configs(ds, epochs, seed), dataset=ds)
    t0 = time.perf_counter()
    tr.run()
    dt = time.perf_counter() - t0
    return statistics.mean(tr.history.throughput), tr.global_step * BATCH / dt


def in_refresh(ds, epochs: int, seed: int, refresh: float, gil_default: bool = False) -> tuple[float, str]:
    """(epoch throughput, details): a session's trainer (a worker process, as the Start button starts it) plus the
    live fragment's work every ``refresh`` s in this process."""
    from streamlit import config as st_config

    from lab_pages import train as page
    from vae_core.jobs import TrainJob
    from vae_core.registry import TrainerRegistry

    st_config.set_option("global.showWarningOnDirectExecution", False)  # bare mode on purpose
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)
    h = TrainerRegistry(heartbeat_timeout=0).open()
    if gil_default:
        sys.setswitchinterval(0.005)
    h.start(h.registry.job(TrainJob(*configs(ds, epochs, seed)), dataset=ds))  # what the Start button does
    tr = h.trainer
    while tr.state == TrainerState.STARTING:
        time.sleep(0.05)
    draws, busy = 0, 0.0
    next_at = time.perf_counter() + refresh
    while tr.is_alive:
        wait = next_at - time.perf_counter()
        if wait > 0 and tr.join(wait):
            break
        t = time.perf_counter()
        page.draw_live(h, live=True)
        busy += time.perf_counter() - t
        draws += 1
        next_at = max(next_at + refresh, time.perf_counter())
    assert tr.state == TrainerState.FINISHED, tr.message
    tp = tr.snapshot().history.throughput
    h.close()
    return statistics.mean(tp), f"{draws} refreshes of {busy / max(draws, 1) * 1000:.0f} ms each"


def in_apptest(
    dataset: str, epochs: int, seed: int, refresh: float, gil_default: bool = False
) -> tuple[float, str]:
    """(epoch throughput, details) through the Train page under AppTest, rerun every ``refresh`` s."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "lab_pages" / "train.py"), default_timeout=300)
    at.run()
    at.selectbox(key="train_dataset").set_value(dataset)
    at.number_input(key="train_epochs").set_value(epochs)
    at.number_input(key="train_seed").set_value(seed)
    at.run()
    assert not at.exception, at.exception
    t0 = time.perf_counter()
    at.button(key="train_start").click().run()  # the callback builds and starts the trainer
    if gil_default:
        sys.setswitchinterval(0.005)
    tr = at.session_state["train_handle"].trainer
    assert tr is not None and tr.state == TrainerState.RUNNING, [e.value for e in at.error]
    reruns, rerun_time = 0, 0.0
    next_at = t0 + refresh
    while tr.is_alive:
        wait = next_at - time.perf_counter()
        if wait > 0:
            tr.join(wait)
            if not tr.is_alive:
                break
        r0 = time.perf_counter()
        at.run()  # the page's per-second refresh: the whole script
        rerun_time += time.perf_counter() - r0
        reruns += 1
        assert not at.exception, at.exception
        next_at = max(next_at + refresh, time.perf_counter())
    dt = time.perf_counter() - t0
    assert tr.state == TrainerState.FINISHED, tr.message
    at.session_state["train_handle"].close()
    wall = tr.global_step * BATCH / dt
    return statistics.mean(tr.history.throughput), (
        f"wall {wall:,.0f} examples/s, {reruns} page reruns of {rerun_time / max(reruns, 1) * 1000:.0f} ms each"
    )


def open_train_page(page, url: str, epochs: int, seed: int) -> None:
    """Open /train in ``page`` (a new session; waits for a starting server) and set Epochs and Seed."""
    for _ in range(60):  # the server may still be starting
        try:
            page.goto(f"{url}/train", timeout=10_000)
            break
        except Exception:
            time.sleep(1)
    page.get_by_role("button", name="Start").wait_for(timeout=120_000)
    for label, value in (("Epochs", epochs), ("Seed", seed)):
        box = page.get_by_label(label, exact=True)
        box.fill(str(value))
        box.press("Enter")
        page.wait_for_timeout(1500)


def finished_throughput(page) -> float | None:
    """The last epoch's examples/s the Train page reports once training has finished; None before.
    Raises when the page says it did not start or diverged."""
    text = page.locator("[data-testid='stMain']").inner_text()
    if "Not started" in text or "diverged" in text:
        raise RuntimeError(text[:500])
    m = re.search(r"last epoch: ([\d,]+) examples/s", text)
    return float(m.group(1).replace(",", "")) if "finished" in text and m else None


class Browser:
    """A ``streamlit run app.py`` server plus headless Chromium on this machine."""

    def __init__(self, port: int, threads: int) -> None:
        from playwright.sync_api import sync_playwright

        env = {"STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}  # as a room's server runs (docs/serving.md)
        if threads > 0:
            env["OMP_NUM_THREADS"] = str(threads)  # torch's intra-op threads in the server
        self.server = launch_server(port, env=env)  # the tests' launcher: its own process group, a log file
        self.url = self.server.url
        self.pw = sync_playwright().start()
        self.browser = launch_chromium(self.pw)

    def run(self, epochs: int, seed: int, timeout_s: float) -> tuple[float, str]:
        """(epoch throughput the page reports, details) for one training run in a fresh session."""
        ctx = self.browser.new_context(viewport={"width": 1500, "height": 1400})
        page = ctx.new_page()
        open_train_page(page, self.url, epochs, seed)
        meter = CpuMeter(
            {"server": self.server.proc.pid, "browser": self.browser_pid(), "bench": os.getpid()},
            children_apart=("server",),
        )
        meter.start()
        page.get_by_role("button", name="Start").click()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout_s:
            eps = finished_throughput(page)
            meter.sample()
            if eps is not None:
                cpu = meter.stop()
                ctx.close()
                return eps, f"wall to 'finished' {time.perf_counter() - t0:.1f} s; " + cores_line(
                    cpu,
                    (
                        ("workers", "server children"),
                        ("server", "server"),
                        ("browser", "browser"),
                        ("this bench", "bench"),
                    ),
                )
            page.wait_for_timeout(2000)  # a rare poll: reading the page costs the browser a layout
        ctx.close()
        raise TimeoutError(f"training did not finish in {timeout_s:.0f} s")

    def browser_pid(self) -> int:
        """Chromium's main process: a Chromium process whose parent (Playwright's driver) is not one."""
        procs = processes()
        for pid, (_cpu, ppid, name, _born) in procs.items():
            parent = procs.get(ppid, (0, 0, "", 0))[2]
            if (
                name.startswith("chrom")
                and not name.startswith("chrome_")
                and ppid != 1
                and not parent.startswith("chrom")
            ):
                return pid
        raise RuntimeError("no Chromium process found")

    def close(self) -> None:
        self.browser.close()
        self.pw.stop()
        self.server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=["refresh", "apptest", "browser"], default="refresh")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="alternating pairs (headless, app)")
    p.add_argument(
        "--refresh",
        type=float,
        default=1.0,
        help="refresh, apptest: seconds between redraws (the fragment's run_every)",
    )
    p.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads, both sides (0 = torch's default)"
    )
    p.add_argument("--port", type=int, default=8599, help="browser: the server's port")
    p.add_argument(
        "--gil-default",
        action="store_true",
        help="refresh, apptest: keep Python's 5 ms switch interval instead of the page's share_the_gil(), "
        "to see what it buys",
    )
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)  # process-wide: the AppTest trainer thread uses it too
    if args.mode == "browser" and args.dataset != "fashion-mnist":
        p.error("browser mode trains the page's default dataset (fashion-mnist)")
    dev = pick_device()
    ds = load_dataset(args.dataset)
    print(
        f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
        f"{args.dataset}: {ds.x_train.shape[0]} train images, VAE {ds.dim}-{HIDDEN[0]}-{Z}, batch {BATCH}, "
        f"{args.epochs} epoch(s) per run, mode {args.mode}"
        f"{', switch interval 5 ms (--gil-default)' if args.gil_default else ''}",
        flush=True,
    )
    Trainer(*configs(ds, 1, 99), dataset=ds).run(max_steps=30)  # warm-up: allocator, kernels
    browser = Browser(args.port, args.threads) if args.mode == "browser" else None
    head, app = [], []
    try:
        for r in range(args.repeats):
            eps, wall = headless(ds, args.epochs, seed=r)
            head.append(eps)
            print(f"run {r + 1} headless: {eps:,.0f} examples/s (wall {wall:,.0f} examples/s)", flush=True)
            if browser is not None:
                eps, info = browser.run(args.epochs, seed=r, timeout_s=1200)
            elif args.mode == "refresh":
                eps, info = in_refresh(
                    ds, args.epochs, seed=r, refresh=args.refresh, gil_default=args.gil_default
                )
            else:
                eps, info = in_apptest(
                    args.dataset, args.epochs, seed=r, refresh=args.refresh, gil_default=args.gil_default
                )
            app.append(eps)
            print(f"run {r + 1} in app:   {eps:,.0f} examples/s ({info})", flush=True)
    finally:
        if browser is not None:
            browser.close()
    h, a = statistics.median(head), statistics.median(app)
    pairs = statistics.median(x / y for x, y in zip(app, head))
    print(
        f"RESULT mode {args.mode}: headless {h:,.0f} examples/s, in app {a:,.0f} examples/s "
        f"(medians of {args.repeats}), ratio {a / h:.3f}; median ratio of the {args.repeats} "
        f"back-to-back pairs {pairs:.3f} (target >= 0.9 in the browser)"
    )


if __name__ == "__main__":
    main()
