"""Seconds per epoch of the reference VAE through the project's trainer, against the GEMM floor.

Reference model: 784-400-20-400-784 MLP VAE, Adam 1e-3, batch 128, Fashion-MNIST (60,000
training images) for one epoch plus a test pass (10,000 images), through ``vae_core.Trainer``.

The floor is the epoch's forward+backward matrix-multiply FLOPs divided by the GEMM
throughput this machine reaches at exactly those shapes, measured in the same run by timing
the same sequence of matmuls on preallocated tensors. Target on a 2-core CPU: ratio <= 1.25.

    python bench/train_speed.py [--device cpu] [--dataset fashion-mnist] [--repeats 2] [--dataloader] [--autograd]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from vae_core.data import load_dataset  # noqa: E402
from vae_core.device import pick_device  # noqa: E402
from vae_core.models import ModelConfig  # noqa: E402
from vae_core.train import TrainConfig, Trainer  # noqa: E402

B, D, H, Z = 128, 784, 400, 20


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


LAYERS = [(D, H), (H, Z), (H, Z), (Z, H), (H, D)]  # (in, out): encoder trunk, mu, logvar, decoder x2


def epoch_gemm_flops(n_train: int, n_test: int) -> float:
    """Forward+backward matmul FLOPs of one epoch plus the test pass (2 per multiply-add)."""
    steps = -(-n_train // B)
    per_step = sum(2 * B * fi * fo * (2 if i == 0 else 3) for i, (fi, fo) in enumerate(LAYERS))  # fwd, dW, dx
    test = sum(2 * fi * fo for fi, fo in LAYERS) * n_test
    return per_step * steps + test


def gemm_floor(dev: torch.device, n_train: int, n_test: int, repeats: int) -> tuple[float, float]:
    """(seconds, GFLOP) of the epoch's matmuls alone, in the model's own layouts, best of ``repeats``.

    Per layer and step, as nn.Linear and autograd run them: forward ``addmm(b, x, W.T)``,
    backward ``dW = g.T @ x`` and ``dx = g @ W`` (no dx for the input layer). The test pass
    runs the forward in batches of 1000.
    """
    steps = -(-n_train // B)
    bufs = []
    for i, (fi, fo) in enumerate(LAYERS):
        w, bias = torch.randn(fo, fi, device=dev), torch.randn(fo, device=dev)
        x, g = torch.randn(B, fi, device=dev), torch.randn(B, fo, device=dev)
        xt = torch.randn(1000, fi, device=dev)
        bufs.append((i, w, bias, x, g, xt))

    def one_step() -> None:
        for i, w, bias, x, g, _ in bufs:
            torch.addmm(bias, x, w.t())
            torch.mm(g.t(), x)
            if i != 0:
                torch.mm(g, w)

    def test_pass() -> None:
        for _ in range(-(-n_test // 1000)):
            for _, w, bias, _, _, xt in bufs:
                torch.addmm(bias, xt, w.t())

    one_step(); test_pass()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(steps):
            one_step()
        test_pass()
        _sync(dev)
        best = min(best, time.perf_counter() - t0)
    return best, epoch_gemm_flops(n_train, n_test) / 1e9


def trainer_epoch(dev: torch.device, ds, seed: int, closed_form: bool | None = None) -> tuple[float, float]:
    """(seconds, final test -ELBO) for one epoch + test pass of a fresh trainer.

    ``closed_form``: the trainer's default (None: vae_core.fastgrad on the CPU) or forced.
    """
    mcfg = ModelConfig(kind="vae", input_dim=D, image_shape=ds.image_shape, hidden=(H,), latent_dim=Z)
    tcfg = TrainConfig(dataset=ds.name, epochs=1, batch_size=B, lr=1e-3, seed=seed)
    warm = Trainer(mcfg, tcfg, dataset=ds, device=dev, closed_form=closed_form)
    warm.run(max_steps=20)  # allocator and kernel warm-up outside the timing
    tr = Trainer(mcfg, tcfg, dataset=ds, device=dev, closed_form=closed_form)
    _sync(dev)
    t0 = time.perf_counter()
    tr.run()  # one epoch; the trainer evaluates the test split at the epoch's end
    _sync(dev)
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
    p.add_argument("--autograd", action="store_true", help="also time each epoch with autograd (closed_form=False)")
    args = p.parse_args()
    dev = pick_device(args.device)
    ds = load_dataset(args.dataset, device=dev)
    n_train, n_test = ds.x_train.shape[0], ds.x_test.shape[0]
    print(f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{args.dataset}: {n_train} train / {n_test} test")
    # Floor and epochs alternate (floor, epoch, floor, epoch, ...): this machine's speed drifts by
    # 20% within minutes, so each epoch is compared with the floors measured right around it.
    floors, times = [], []
    floor_s, gflop = gemm_floor(dev, n_train, n_test, repeats=2)
    floors.append(floor_s)
    print(f"GEMM floor: {gflop:.1f} GFLOP in {floor_s:.3f} s = {gflop / floor_s:.1f} GFLOP/s at the model's shapes")
    pair_ratios: list[float] = []
    gains: list[float] = []
    for r in range(args.repeats):
        dt, nelbo = trainer_epoch(dev, ds, seed=r)
        times.append(dt)
        f_after, _ = gemm_floor(dev, n_train, n_test, repeats=2)
        floors.append(f_after)
        around = min(floors[-2], floors[-1])
        pair_ratios.append(dt / around)
        print(f"trainer epoch {r + 1}: {dt:.3f} s ({n_train / dt:,.0f} train ex/s), test -ELBO {nelbo:.2f} nats/image; "
              f"floor around it {around:.3f} s, ratio {dt / around:.2f}")
        if args.autograd:  # the same epoch with autograd, right after: the closed form's gain
            da, na = trainer_epoch(dev, ds, seed=r, closed_form=False)
            gains.append(da / dt)
            print(f"  same epoch with autograd: {da:.3f} s, test -ELBO {na:.2f}; closed form {da / dt:.2f}x faster")
    floor = min(floors)
    best = min(times)
    print(f"RESULT seconds/epoch {best:.3f} (median {statistics.median(times):.3f}), floor {floor:.3f} s "
          f"(range {min(floors):.3f}-{max(floors):.3f}), best/best ratio {best / floor:.2f}, median of the "
          f"{len(pair_ratios)} epoch/adjacent-floor ratios {statistics.median(pair_ratios):.2f} (target <= 1.25)")
    if gains:
        print(f"closed-form gradient vs autograd, same epochs: median {statistics.median(gains):.2f}x faster")
    if args.dataloader:
        dl = dataloader_epoch(ds)
        print(f"per-item DataLoader epoch (no test pass): {dl:.3f} s, ratio {dl / floor:.2f} to the floor")


if __name__ == "__main__":
    main()
