"""What the benchmarks share: the project root, the one Chromium launcher, the GEMM floor, CPU and memory from /proc.

Benchmarks are run from the project root as modules, ``.venv/bin/python -m bench.NAME``, so that
``bench``, ``vae_core``, ``lab_pages`` and ``tests.e2e`` import as packages (no ``sys.path``
edits). Nothing here imports torch or Playwright at import time: a bench that times its own
imports (``bench.umap_speed``, ``bench.umap_app_start``) may import this module first.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parents[1]  # the project root: app.py, checkpoints/, bench/

# ---------------------------------------------------------------------------- Chromium
CHROMIUM_ENV = "VAE_LAB_CHROMIUM"  # path of a Chromium binary; Debian's by default
CHROMIUM_DEFAULT = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The Chromium binary the benchmarks drive: ``$VAE_LAB_CHROMIUM``, else /usr/bin/chromium."""
    return os.environ.get(CHROMIUM_ENV) or CHROMIUM_DEFAULT


def missing_chromium() -> str | None:
    """Why a browser bench cannot run here (no Playwright, no Chromium binary), or None."""
    import importlib.util

    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -r requirements-dev.txt)"
    path = chromium_path()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return (
            f"no Chromium at {path} (Debian: apt-get install chromium, as .ci/run does; "
            f"or set {CHROMIUM_ENV} to a Chromium binary)"
        )
    return None


def launch_chromium(playwright: Any, **kwargs: Any) -> Any:
    """Headless Chromium through Playwright (``sync_playwright()``'s object): the system binary,
    never ``playwright install``'s download."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, **kwargs)


# ---------------------------------------------------------------------------- GEMM floor
# The reference model of the training benches: 784-400-20-400-784 MLP VAE, batch 128.
B, D, H, Z = 128, 784, 400, 20
LAYERS = [(D, H), (H, Z), (H, Z), (Z, H), (H, D)]  # (in, out): encoder trunk, mu, logvar, decoder x2
TEST_BATCH = 1000  # the trainer's evaluation batch


def sync(dev: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so a timer sees all of it."""
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def step_gemm_flops(layers: list[tuple[int, int]] = LAYERS, batch: int = B) -> float:
    """Forward + backward matmul FLOPs of one training step (2 per multiply-add): forward, dW and,
    for every layer but the input one, dx."""
    return float(sum(2 * batch * fi * fo * (2 if i == 0 else 3) for i, (fi, fo) in enumerate(layers)))


def epoch_gemm_flops(
    n_train: int, n_test: int, layers: list[tuple[int, int]] = LAYERS, batch: int = B
) -> float:
    """Matmul FLOPs of one epoch of ``n_train`` images plus a forward test pass over ``n_test``."""
    steps = -(-n_train // batch)
    return step_gemm_flops(layers, batch) * steps + sum(2 * fi * fo for fi, fo in layers) * n_test


class GemmFloor:
    """One training step's matmuls alone, on preallocated tensors, in the layouts nn.Linear and
    autograd use: forward ``addmm(b, x, W.T)``, backward ``dW = g.T @ x`` and ``dx = g @ W`` (no dx
    for the input layer). What no implementation of the step can go below."""

    def __init__(
        self,
        dev: torch.device,
        layers: list[tuple[int, int]] = LAYERS,
        batch: int = B,
        test_batch: int = TEST_BATCH,
    ) -> None:
        import torch

        self.layers, self.test_batch = layers, test_batch
        self.bufs = [
            (
                i,
                torch.randn(fo, fi, device=dev),
                torch.randn(fo, device=dev),
                torch.randn(batch, fi, device=dev),
                torch.randn(batch, fo, device=dev),
            )
            for i, (fi, fo) in enumerate(layers)
        ]
        self.xt = [torch.randn(test_batch, fi, device=dev) for fi, _ in layers]  # test-pass inputs

    def __call__(self) -> None:
        """One step: forward, dW and dx of every layer."""
        import torch

        for i, w, bias, x, g in self.bufs:
            torch.addmm(bias, x, w.t())
            torch.mm(g.t(), x)
            if i:
                torch.mm(g, w)

    def test_pass(self, n_test: int) -> None:
        """The forward matmuls of an evaluation over ``n_test`` images, in batches of ``test_batch``."""
        import torch

        for _ in range(-(-n_test // self.test_batch)):
            for (_, w, bias, _, _), xt in zip(self.bufs, self.xt):
                torch.addmm(bias, xt, w.t())


def epoch_gemm_floor(
    dev: torch.device,
    n_train: int,
    n_test: int,
    repeats: int = 2,
    batch: int = B,
    layers: list[tuple[int, int]] = LAYERS,
) -> tuple[float, float]:
    """(seconds, GFLOP) of one epoch's matmuls alone (``n_train`` images in steps of ``batch``, then
    the test pass), best of ``repeats``: the epoch's floor on this machine, at the model's shapes."""
    import time

    floor = GemmFloor(dev, layers, batch)
    steps = -(-n_train // batch)
    floor()
    floor.test_pass(n_test)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(steps):
            floor()
        floor.test_pass(n_test)
        sync(dev)
        best = min(best, time.perf_counter() - t0)
    return best, epoch_gemm_flops(n_train, n_test, layers, batch) / 1e9


# ---------------------------------------------------------------------------- CPU accounting
def _proc_cpu_s(pid: int) -> tuple[float, int, str, float]:
    """(user + system CPU seconds, parent pid, command name, start time in seconds since boot) of one live
    process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read().decode(errors="replace")
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()  # state, ppid, ... utime is field 14 of the whole line
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, int(fields[1]), name, int(fields[19]) / tick


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one live process so far (Linux /proc)."""
    return _proc_cpu_s(pid)[0]


def _uptime_s() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def processes() -> dict[int, tuple[float, int, str, float]]:
    """Every live process: {pid: (CPU seconds, parent pid, command name, start in seconds since boot)} (Linux /proc)."""
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):  # it ended while we looked
                procs[int(entry)] = _proc_cpu_s(int(entry))
    return procs


def cores_line(cpu: dict[str, float], parts: Sequence[tuple[str, str]]) -> str:
    """``CpuMeter.stop()``'s figures as one line: CPU seconds per wall second of each (label, group) in ``parts``."""
    return (
        "CPU s per wall s: "
        + ", ".join(f"{label} {cpu[group] / cpu['wall']:.2f}" for label, group in parts)
        + f" (of {os.cpu_count()} cores)"
    )


class CpuMeter:
    """CPU seconds spent by groups of processes between :meth:`start` and :meth:`stop` (Linux /proc).

    ``groups`` maps a label to a root pid: each group is that process and its descendants (found
    at each :meth:`sample`; one born after :meth:`start` counts from its birth). Call :meth:`sample`
    now and then: a process that ends before the next sample loses its last interval. A group named in ``children_apart`` counts its descendants apart, as
    ``"<label> children"`` (the server and its training workers). Where a bench shares the machine
    with a browser, this says where the cores went.
    """

    def __init__(self, groups: dict[str, int], children_apart: tuple[str, ...] = ()) -> None:
        self.groups = groups
        self.children_apart = children_apart
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[float, str]] = {}
        self.labels: dict[int, str] = {}
        self.t0 = self.t1 = 0.0
        self.born_after = (
            0.0  # seconds since boot at start(): a process that started later counts all its CPU
        )

    def _label(self, pid: int, procs: dict[int, tuple[float, int, str, float]]) -> str | None:
        roots = {v: k for k, v in self.groups.items()}
        seen = 0
        while pid > 1 and seen < 64:
            if pid in roots:
                label = roots[pid]
                return f"{label} children" if seen and label in self.children_apart else label
            pid = procs[pid][1] if pid in procs else 0
            seen += 1
        return None

    def sample(self) -> None:
        """Record every group member's CPU time now."""
        import time

        procs = processes()
        for pid, (cpu, _ppid, name, born) in procs.items():
            if (label := self._label(pid, procs)) is not None:
                self.first.setdefault(pid, 0.0 if born >= self.born_after else cpu)
                self.last[pid], self.labels[pid] = (cpu, name), label
        self.t1 = time.perf_counter()

    def start(self) -> None:
        """Begin: the CPU already spent by each process does not count."""
        import time

        self.first.clear()
        self.last.clear()
        self.labels.clear()
        self.t0 = time.perf_counter()
        self.born_after = _uptime_s()
        self.sample()

    def stop(self) -> dict[str, float]:
        """End; CPU seconds per group (and ``"wall"``: seconds between start and the last sample)."""
        self.sample()
        out = {k: 0.0 for k in self.groups} | {f"{k} children": 0.0 for k in self.children_apart}
        for pid, (cpu, _name) in self.last.items():
            out[self.labels[pid]] += cpu - self.first[pid]
        out["wall"] = self.t1 - self.t0
        return out


# ---------------------------------------------------------------------------- memory
def memory_mib(pid: int) -> dict[str, float] | None:
    """{"pss", "uss", "rss"} of one live process in MiB, from /proc/PID/smaps_rollup (Linux), or None if it
    is gone. PSS shares each page among the processes that map it (a forked worker's pages it has not
    written count half to it and half to its parent); USS is what ending the process would free; RSS
    counts shared pages in full in every process, so summing it over forked workers double-counts."""
    fields = {"Pss:": 0.0, "Private_Clean:": 0.0, "Private_Dirty:": 0.0, "Rss:": 0.0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                name, _, rest = line.partition(" ")
                if name in fields:
                    fields[name] = int(rest.split()[0]) / 1024  # kB -> MiB
    except (OSError, ValueError, IndexError):
        return None
    return {
        "pss": fields["Pss:"],
        "uss": fields["Private_Clean:"] + fields["Private_Dirty:"],
        "rss": fields["Rss:"],
    }
