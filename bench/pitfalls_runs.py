"""How long each Pitfalls section's pair takes to train: the time a *Run again* keeps its worker busy.

Each section trains the correct and the mistaken run (vae_core.pitfalls.run_pair, seed 0, digits),
in this process, one after the other, as the worker of a Pitfalls job does. It prints, per section,
the seconds of each run as the runs measured them and the pair's wall time, against the budget a
press of *Run again* should fit (15 s a pair on this 2-core machine). The first section also pays
the process's first optimizer (torch's compiler stack, ~1 s), which a worker forked from the fork
server has already imported: it is printed apart.

    .venv/bin/python -m bench.pitfalls_runs [--threads 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import time

# As a worker runs (vae_core.forkserver): OpenMP threads that sleep rather than spin when idle. Read
# once, when torch loads; with spinning threads a pair took 2-10x longer on a shared 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from vae_core import pitfalls as pf  # noqa: E402
from vae_core.data import load_dataset  # noqa: E402

BUDGET_S = 15.0  # a pair's wall time on the 2-core machine: what a room waits for after *Run again*


def main(argv: list[str] | None = None) -> int:
    """Train every section's pair once and print its seconds; the last line is RESULT max_pair_s=<s>."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--threads", type=int, default=2, help="torch intra-op threads (a worker's default on 2 cores)"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = load_dataset("digits")
    t0 = time.perf_counter()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the process's first optimizer, timed apart
    print(
        f"first optimizer of the process: {time.perf_counter() - t0:.2f} s (a forked worker has it already)"
    )
    worst = 0.0
    for section in pf.SECTIONS:
        t = time.perf_counter()
        p = pf.run_pair(section, ds, seed=args.seed)
        wall = time.perf_counter() - t
        worst = max(worst, wall)
        print(
            f"{section:16s} correct {p.correct.seconds:5.2f} s ({p.correct.state}), "
            f"mistaken {p.mistaken.seconds:5.2f} s ({p.mistaken.state}); pair {wall:5.2f} s "
            f"({'within' if wall <= BUDGET_S else 'OVER'} the {BUDGET_S:g} s budget)"
        )
    print(f"RESULT max_pair_s={worst:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
