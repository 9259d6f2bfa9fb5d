"""Seconds per epoch of the reference VAE through the project's trainer, against the GEMM floor.

Reference model: 784-400-20-400-784 MLP VAE, Adam 1e-3, batch 128, Fashion-MNIST (60,000
training images) for one epoch plus a test pass (10,000 images), through ``vae_core.Trainer``.

The floor is the epoch's forward+backward matrix-multiply FLOPs divided by the GEMM
throughput this machine reaches at exactly those shapes, measured in the same run by timing
the same sequence of matmuls on preallocated tensors. The trainer's gradient is autograd's and
its optimizer torch.optim.Adam (fused where available); the ratio says how far eager PyTorch
is from the matmuls alone.

    .venv/bin/python -m bench.train_speed [--device cpu] [--dataset fashion-mnist] [--repeats 2] [--dataloader]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench._common import B, D, H, Z, epoch_gemm_floor, sync
from vae_core.data import load_dataset
from vae_core.device import pick_device
from vae_core.models import ModelConfig
from vae_core.train import TrainConfig, Trainer


def trainer_epoch(dev: torch.device, ds, seed: int) -> tuple[float, float]:
    """(seconds, final test -ELBO in nats/image) for one epoch + test pass of a fresh trainer."""
    mcfg = ModelConfig(kind="vae", input_dim=D, image_shape=ds.image_shape, hidden=(H,), latent_dim=Z)
    tcfg = TrainConfig(dataset=ds.name, epochs=1, batch_size=B, lr=1e-3, seed=seed)
    warm = Trainer(mcfg, tcfg, dataset=ds, device=dev)
    warm.run(max_steps=20)  # allocator and kernel warm-up outside the timing
    tr = Trainer(mcfg, tcfg, dataset=ds, device=dev)
    sync(dev)
    t0 = time.perf_counter()
    tr.run()  # one epoch; the trainer evaluates the test split at the epoch's end
    sync(dev)
    dt = time.perf_counter() - t0
    return dt, tr.history.test_neg_elbo[-1]


def dataloader_epoch(ds) -> float:
    """The pytorch/examples style: per-item ToTensor in a DataLoader, for scale."""
    import numpy as np
    from PIL import Image
    from torch.utils.data import DataLoader
    from torchvision import transforms

    imgs = ds.x_train.cpu().numpy().reshape(-1, 28, 28)

    class PerItem(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(imgs)

        def __getitem__(self, i: int):
            return transforms.ToTensor()(Image.fromarray(np.asarray(imgs[i]), mode="L")), 0

    torch.manual_seed(0)
    mcfg = ModelConfig(hidden=(H,), latent_dim=Z)
    from vae_core.elbo import elbo_terms
    from vae_core.models import build_model

    model = build_model(mcfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for x, _ in DataLoader(PerItem(), batch_size=B, shuffle=True):
        x = x.view(-1, D)
        logits, mu, logvar, _ = model(x)
        loss = elbo_terms(x, logits, mu, logvar).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--repeats", type=int, default=2, help="trainer epochs to time (best is reported)")
    p.add_argument("--dataloader", action="store_true", help="also time a per-item DataLoader epoch")
    args = p.parse_args()
    dev = pick_device(args.device)
    ds = load_dataset(args.dataset, device=dev)
    n_train, n_test = ds.x_train.shape[0], ds.x_test.shape[0]
    print(
        f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{args.dataset}: {n_train} train / {n_test} test"
    )
    # Floor and epochs alternate (floor, epoch, floor, epoch, ...): this machine's speed drifts by
    # 20% within minutes, so each epoch is compared with the floors measured right around it.
    floors, times = [], []
    floor_s, gflop = epoch_gemm_floor(dev, n_train, n_test, repeats=2)
    floors.append(floor_s)
    print(
        f"GEMM floor: {gflop:.1f} GFLOP in {floor_s:.3f} s = {gflop / floor_s:.1f} GFLOP/s at the model's shapes"
    )
    pair_ratios: list[float] = []
    for r in range(args.repeats):
        dt, nelbo = trainer_epoch(dev, ds, seed=r)
        times.append(dt)
        f_after, _ = epoch_gemm_floor(dev, n_train, n_test, repeats=2)
        floors.append(f_after)
        around = min(floors[-2], floors[-1])
        pair_ratios.append(dt / around)
        print(
            f"trainer epoch {r + 1}: {dt:.3f} s ({n_train / dt:,.0f} train ex/s), test -ELBO {nelbo:.2f} nats/image; "
            f"floor around it {around:.3f} s, ratio {dt / around:.2f}"
        )
    floor = min(floors)
    best = min(times)
    print(
        f"RESULT seconds/epoch {best:.3f} (median {statistics.median(times):.3f}), floor {floor:.3f} s "
        f"(range {min(floors):.3f}-{max(floors):.3f}), best/best ratio {best / floor:.2f}, median of the "
        f"{len(pair_ratios)} epoch/adjacent-floor ratios {statistics.median(pair_ratios):.2f}"
    )
    if args.dataloader:
        dl = dataloader_epoch(ds)
        print(f"per-item DataLoader epoch (no test pass): {dl:.3f} s, ratio {dl / floor:.2f} to the floor")


if __name__ == "__main__":
    main()
