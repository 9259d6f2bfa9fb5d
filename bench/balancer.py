"""The room through HAProxy against the same room on one replica (deploy/local.py; docs/serving.md).

Two replicas of the lab behind HAProxy on this machine (``deploy.local.Trial``). On a 2-core machine two
replicas cannot be faster than one, so this measures what the balancer costs, not a speed-up:

1. **Overhead per rerun.** One protocol client (bench.st_client, no browser) reruns the Home page
   ``--probes`` times, alternating a session on replica r1 directly with a session through HAProxy
   (pinned to a replica by its websocket); the median of the paired differences is the balancer's
   latency per rerun, and HAProxy's own CPU time over all its reruns is its CPU per rerun.
2. **The room.** bench.room's part (c), ``--room`` attendees, first on replica r1 alone, then through
   HAProxy, spread over both replicas: rerun latency per page, errors, and each process's CPU.

    .venv/bin/python -m bench.balancer [--probes 200] [--room 16] [--room-s 30] [--arrive-s 8]

The last line reads ``RESULT overhead_ms=<median> haproxy_cpu_us_per_rerun=<n> direct_p95_s=<s>
balanced_p95_s=<s> errors=<n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench._common import cpu_seconds
from bench.room import attend, part_c, pct, report_room, server_memory, warm_up
from deploy.local import Trial


async def probe(direct_url: str, balanced_url: str, n: int) -> tuple[list[float], list[float]]:
    """``n`` Home reruns each way, alternating; returns (direct, balanced) latencies in s."""
    direct: list[float] = []
    balanced: list[float] = []

    async def body(c_direct, c_bal) -> None:
        await c_direct.open("")
        await c_bal.open("")
        for i in range(n):
            first, second = (c_direct, c_bal) if i % 2 == 0 else (c_bal, c_direct)
            for c in (first, second):
                r = await c.rerun(what="probe")
                (direct if c is c_direct else balanced).append(r.latency_s)

    async def outer(c_direct):
        return await attend(balanced_url, "probe-balanced", lambda c_bal: body(c_direct, c_bal))

    c, (c_bal, _) = await attend(direct_url, "probe-direct", outer)
    errors = c.errors + c_bal.errors
    if errors:
        raise RuntimeError(f"probe errors: {errors[:3]}")
    return direct, balanced


async def run(args: argparse.Namespace) -> int:
    trial = Trial(replicas_n=2, port=args.port, first_replica_port=args.port + 1)
    trial.start(timeout=180)
    try:
        r1 = trial.replicas[0]
        for url in [r.url for r in trial.replicas]:
            if errs := await warm_up(url):
                print(f"warm-up errors on {url}: {errs[:3]}")
        assert trial.haproxy is not None
        h0 = cpu_seconds(trial.haproxy.pid)
        t0 = time.perf_counter()
        direct, balanced = await probe(r1.url, trial.url, args.probes)
        h1 = cpu_seconds(trial.haproxy.pid)
        diffs = [b - d for d, b in zip(direct, balanced, strict=True)]
        overhead_ms = statistics.median(diffs) * 1000
        haproxy_us = (h1 - h0) / max(1, len(balanced)) * 1e6
        print(
            f"overhead: {len(direct)} Home reruns each way, alternating ({time.perf_counter() - t0:.0f} s): direct "
            f"p50 {pct(direct, 50) * 1000:.1f} ms, through HAProxy p50 {pct(balanced, 50) * 1000:.1f} ms; "
            f"median paired difference {overhead_ms:+.2f} ms per rerun; HAProxy's CPU {haproxy_us:.0f} µs "
            "per rerun (all of its CPU over the probe, divided by the reruns it carried)",
            flush=True,
        )
        base = server_memory(r1)  # type: ignore[arg-type]  # a Replica has the proc a Server has
        rooms = {}
        for label, url in (("one replica (r1, direct)", r1.url), ("through HAProxy, 2 replicas", trial.url)):
            h0 = cpu_seconds(trial.haproxy.pid)
            room = await part_c(url, r1, args.room, 4, args.room_s, args.arrive_s, (2.0, 5.0))  # type: ignore[arg-type]
            hcpu = cpu_seconds(trial.haproxy.pid) - h0
            rooms[label] = room
            print(f"== {label}", flush=True)
            for line in report_room(room, args.room, base)[:4]:
                print(line, flush=True)
            n = sum(len(v) for v in room.reruns.values())
            print(
                f"    HAProxy CPU {hcpu:.2f} s over {n} reruns; (the meters above are replica r1's)",
                flush=True,
            )
        d, b = rooms.values()
        d_all = [x for v in d.reruns.values() for x in v]
        b_all = [x for v in b.reruns.values() for x in v]
        print(
            f"RESULT overhead_ms={overhead_ms:.2f} haproxy_cpu_us_per_rerun={haproxy_us:.0f} "
            f"direct_p95_s={pct(d_all, 95):.2f} balanced_p95_s={pct(b_all, 95):.2f} "
            f"errors={len(d.errors) + len(b.errors)}"
        )
    finally:
        trial.stop()
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--probes", type=int, default=200, help="Home reruns each way for the overhead")
    p.add_argument("--room", type=int, default=16, help="attendees in each room (part c of bench.room)")
    p.add_argument("--room-s", type=float, default=30.0, help="seconds each room stays after arriving")
    p.add_argument("--arrive-s", type=float, default=8.0, help="seconds over which the attendees arrive")
    p.add_argument("--port", type=int, default=8600, help="HAProxy's port; the replicas take the next two")
    return asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
