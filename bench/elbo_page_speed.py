"""Seconds for the ELBO page's per-image numbers, against the issue's budgets (1 s each on CPU).

1. ``identity.image_report`` for one image at K=1000 (and at K=5000, what the page draws):
   E_q[log p(x|z)], analytic KL, ELBO, the whole running IWAE curve, Monte Carlo KL.
2. ``identity.posterior_grid`` on a 200x200 grid for a z=2 model: exact log p(x), p(z|x),
   and E_q[log p(x|z)] and KL(q||p(z|x)) by quadrature over q's box. ``elbo.quadrature_log_px``
   alone is timed too.

Models: the shipped checkpoints when present (fmnist_vae_z16, fmnist_vae_z2, digits_vae_z2);
otherwise a freshly built model with the hidden sizes of a shipped Fashion-MNIST checkpoint
(784-400-z if there is none); random weights time the same.
Median of ``--repeats`` runs after one warm-up, over different test images.

    .venv/bin/python -m bench.elbo_page_speed [--repeats 5] [--threads 0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from bench._common import ROOT
from vae_core import identity as idn
from vae_core.checkpoint import load_checkpoint, read_metadata
from vae_core.data import dataset_available, load_dataset
from vae_core.elbo import quadrature_log_px
from vae_core.models import ModelConfig, build_model

CK = ROOT / "checkpoints"
BUDGET_S = 1.0


def get_model(name: str, latent: int, dataset: str):
    """The shipped checkpoint ``name``, or a built VAE of the shipped Fashion-MNIST models' shape
    (784-400-latent when none is shipped)."""
    p = CK / f"{name}.safetensors"
    if p.exists():
        return load_checkpoint(p).model, name
    hidden = (400,)
    for other in sorted(CK.glob("fmnist_*.safetensors")):
        hidden = tuple(read_metadata(other)["model_config"]["hidden"])
        break
    cfg = ModelConfig(kind="vae", input_dim=784, image_shape=(1, 28, 28), hidden=hidden, latent_dim=latent)
    torch.manual_seed(0)
    return build_model(cfg).eval(), f"built {cfg.describe()} (no {name} checkpoint)"


def timed(fn, xs: list[torch.Tensor]) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds of this process) of fn(x) over xs, after one warm-up call.

    On a shared machine wall time includes waiting for a core; CPU time does not.
    """
    fn(xs[0])
    wall, cpu = [], []
    for x in xs:
        t0, c0 = time.perf_counter(), time.process_time()
        fn(x)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def line(label: str, t: tuple[float, float]) -> str:
    wall, cpu = t
    verdict = "OK" if wall < BUDGET_S else "OVER"
    return (
        f"  {label:<50s} wall {wall * 1000:7.1f} ms ({wall / BUDGET_S:.2f} of 1 s, {verdict})"
        f"   CPU {cpu * 1000:7.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    big = "fashion-mnist" if dataset_available("fashion-mnist") else None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, CPU threads {torch.get_num_threads()} of {os.cpu_count()} cores, "
        f"load average {load:.1f}, {args.repeats} repeats (median)"
    )
    cases = [("digits_vae_z2", 2, "digits")]
    if big:
        cases += [("fmnist_vae_z2", 2, big), ("fmnist_vae_z16", 16, big)]
    else:
        print("Fashion-MNIST is not on this machine: timing the digits model only.")
    for name, latent, dsname in cases:
        model, label = get_model(name, latent, dsname)
        ds = load_dataset(dsname)
        xs = [ds.x_test[i] for i in range(args.repeats)]
        print(f"{label} on {dsname}:")
        for k in (1000, 5000):
            s = timed(lambda x, model=model, k=k: idn.image_report(model, x, k_max=k, seed=0), xs)
            print(line(f"image_report, all numbers, K={k}", s))
        if model.config.latent_dim == 2:

            def quad(x: torch.Tensor, model=model) -> None:
                xf = x.float().div(255.0).unsqueeze(0)
                with torch.no_grad():
                    mu, lv = model.encode(xf)
                    quadrature_log_px(xf, model.decode, 2, n=200, q=(mu, lv))

            print(line("quadrature_log_px, 200x200", timed(quad, xs)))
            print(
                line(
                    "posterior_grid, 200x200 (+ exact KL(q||p(z|x)))",
                    timed(lambda x, model=model: idn.posterior_grid(model, x), xs),
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
