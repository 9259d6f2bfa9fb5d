"""Evaluate a checkpoint: test -ELBO, reconstruction, KL, active units and importance-weighted NLL.

    python -m vae_core.evaluate checkpoints/fmnist_vae_z16.safetensors --k 1000 --n 1000
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import torch

from .checkpoint import CheckpointError, load_checkpoint
from .data import Dataset, DatasetError, load_dataset
from .device import DeviceError, pick_device
from .elbo import iwae_bound
from .models import AE, VAE
from .train import evaluate_model

__all__ = ["iwae_nll", "evaluate_checkpoint_metrics", "main"]


@torch.no_grad()
def iwae_nll(
    model: VAE, x: torch.Tensor, k: int = 1000, batch_size: int = 0, seed: int = 0
) -> tuple[float, float]:
    """Mean importance-weighted NLL -log p_K(x) over x (N, D) uint8 or float: (mean, std. error), nats/image."""
    if not model.is_vae:
        raise ValueError("the importance-weighted NLL needs a VAE: an AE defines no density p(x)")
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(seed)
    bs = batch_size or max(1, 4096 // max(1, k // 8))
    vals = []
    for start in range(0, x.shape[0], bs):
        xb = x[start : start + bs].to(dev)
        xb = xb.float().div_(255.0) if xb.dtype == torch.uint8 else xb.float()
        mu, logvar = model.encode(xb)
        cfg = model.config
        vals.append(-iwae_bound(xb, mu, logvar, model.decode, k, cfg.likelihood, cfg.obs_std, gen))
    v = torch.cat(vals).double()
    se = float(v.std() / len(v) ** 0.5) if len(v) > 1 else float("nan")
    return float(v.mean()), se


def evaluate_checkpoint_metrics(
    model: AE | VAE, ds: Dataset, k: int = 1000, n_iwae: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """All test metrics of one model, nats per image: the ELBO terms on the whole test split,
    the IWAE NLL on its first ``n_iwae`` images (None for an AE)."""
    res = evaluate_model(model, ds.x_test, seed=seed + 3)
    out: dict[str, Any] = {
        "neg_elbo": res.neg_elbo, "recon": res.recon, "kl": res.kl, "active_units": res.active_units,
        "kl_per_dim": res.kl_per_dim, "n": res.n,
    }
    if model.is_vae and k > 0 and n_iwae > 0:
        nll, se = iwae_nll(model, ds.x_test[:n_iwae], k=k, seed=seed)
        out.update({"iwae_nll": nll, "iwae_nll_se": se, "iwae_k": k, "iwae_n": min(n_iwae, ds.x_test.shape[0])})
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI: print a checkpoint's test metrics."""
    p = argparse.ArgumentParser(prog="python -m vae_core.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--k", type=int, default=1000, help="importance samples per image (default 1000)")
    p.add_argument("--n", type=int, default=1000, help="test images for the IWAE NLL (default 1000; all for the ELBO)")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        dev = pick_device(args.device)
        ck = load_checkpoint(args.checkpoint, device=dev)
        ds = load_dataset(ck.metadata.get("dataset", ""), device=dev, root=args.data_root)
        if ds.dim != ck.config.input_dim:
            raise DatasetError(f"dataset {ds.name} has {ds.dim} pixels but the model expects {ck.config.input_dim}")
    except (CheckpointError, DatasetError, DeviceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    m = evaluate_checkpoint_metrics(ck.model, ds, k=args.k, n_iwae=args.n, seed=args.seed)
    print(f"{ck.config.describe()} on {ds.name}, {m['n']} test images, device {dev}")
    print(f"  test -ELBO        {m['neg_elbo']:9.2f} nats/image")
    print(f"  reconstruction    {m['recon']:9.2f} nats/image")
    print(f"  KL                {m['kl']:9.2f} nats/image")
    print(f"  active units      {m['active_units']:6d} of {ck.config.latent_dim}")
    if "iwae_nll" in m:
        print(f"  IWAE NLL (K={m['iwae_k']}) {m['iwae_nll']:9.2f} ± {m['iwae_nll_se']:.2f} nats/image on {m['iwae_n']} images")
    else:
        print("  IWAE NLL          n/a (an AE has no likelihood p(x))")
    print(f"  ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
