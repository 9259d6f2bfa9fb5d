"""Where a training step of the reference VAE spends its time, next to the matrix-multiply floor.

Companion to ``bench/train_speed.py`` (which times whole epochs). This one times single steps of
the reference model (784-400-20-400-784, Adam 1e-3, batch 128, Fashion-MNIST) in one process,
alternating the variants so machine noise hits all alike, and prints each as a ratio to the
step's GEMM floor measured in the same run:

- ``gemm floor``: the step's matmuls alone on preallocated tensors (as in train_speed.py).
- ``trainer step``: ``vae_core.Trainer.step()``, the product (autograd, torch.optim.Adam fused,
  NaN guard, history).
- ``hand-written step``: a measured reference, not a second trainer: the same step with no
  autograd, a hand-derived backward (checked against autograd before timing), one flat parameter
  buffer, one fused Adam call, the NaN-guard copy, preallocated activations. This is what
  hand-fusing in eager PyTorch could buy.
- the costs every implementation pays on top of the matmuls, each timed alone: fused Adam over
  the model's 651k parameters, the Bernoulli loss with its gradient (one exp and one log per
  pixel at least), the NaN guard's copy of the weights, gathering and converting a batch.
- ``lower bound``: floor + those unavoidable costs, i.e. a perfectly fused step with zero
  framework overhead.

    .venv/bin/python -m bench.train_step_breakdown [--device cpu] [--steps 200] [--rounds 5] [--compile]

``--compile`` also times the hand-written step's forward/backward through ``torch.compile``
(inductor needs a C++ compiler; the first call compiles, which is reported).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from bench._common import B, D, GemmFloor, H, Z, sync
from vae_core.data import load_dataset
from vae_core.device import pick_device
from vae_core.elbo import elbo_terms
from vae_core.models import VAE, ModelConfig, build_model
from vae_core.train import TrainConfig, Trainer


def _adam(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    m: list[torch.Tensor],
    v: list[torch.Tensor],
    steps: list[torch.Tensor],
) -> None:
    torch._fused_adam_(
        params,
        grads,
        m,
        v,
        [],
        steps,
        lr=1e-3,
        beta1=0.9,
        beta2=0.999,
        weight_decay=0.0,
        eps=1e-8,
        amsgrad=False,
        maximize=False,
    )


class HandStep:
    """The reference VAE step with a hand-derived backward (ReLU, Bernoulli, beta=1) and flat Adam.

    Parameters live in one flat buffer in the order W1, b1, [W_mu; W_logvar], [b_mu; b_logvar],
    W3, b3, W4, b4, so the two heads are one (2z, H) matmul and Adam is one fused call.
    """

    SHAPES = [(H, D), (H,), (2 * Z, H), (2 * Z,), (H, Z), (H,), (D, H), (D,)]

    def __init__(self, model: VAE, dev: torch.device, seed: int = 1) -> None:
        n = sum(torch.Size(s).numel() for s in self.SHAPES)
        self.flat, self.gflat = torch.zeros(n, device=dev), torch.zeros(n, device=dev)
        self.m, self.v, self.good = (torch.zeros(n, device=dev) for _ in range(3))
        self.step_t = torch.zeros((), device=dev)
        self.p, self.g, o = [], [], 0
        for s in self.SHAPES:
            k = torch.Size(s).numel()
            self.p.append(self.flat[o : o + k].view(s))
            self.g.append(self.gflat[o : o + k].view(s))
            o += k
        e, d = model.encoder, model.decoder
        src = [
            e.trunk[0].weight,
            e.trunk[0].bias,
            torch.cat([e.mu.weight, e.logvar.weight]),
            torch.cat([e.mu.bias, e.logvar.bias]),
            d.net[0].weight,
            d.net[0].bias,
            d.net[2].weight,
            d.net[2].bias,
        ]
        with torch.no_grad():
            for dst, s in zip(self.p, src):
                dst.copy_(s)
        self.xf = torch.empty(B, D, device=dev)
        self.h1, self.h2, self.logits = (
            torch.empty(B, H, device=dev),
            torch.empty(B, H, device=dev),
            torch.empty(B, D, device=dev),
        )
        self.gen = torch.Generator(device=dev).manual_seed(seed)

    def grads(self, xb: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fill ``self.gflat`` with d loss / d params for uint8 batch xb (B, D) and noise eps (B, z).

        Returns (loss (), recon NLL per example (B,), KL per dim (B, z)), nats.
        """
        W1, b1, Wmv, bmv, W3, b3, W4, b4 = self.p
        gW1, gb1, gWmv, gbmv, gW3, gb3, gW4, gb4 = self.g
        n = xb.shape[0]
        x = self.xf.copy_(xb).mul_(1.0 / 255.0)
        h1 = torch.addmm(b1, x, W1.t(), out=self.h1).clamp_min_(0)
        heads = torch.addmm(bmv, h1, Wmv.t())
        mu, lv = heads[:, :Z], heads[:, Z:]
        std = torch.exp(0.5 * lv)
        var = std * std
        z = torch.addcmul(mu, std, eps)
        h2 = torch.addmm(b3, z, W3.t(), out=self.h2).clamp_min_(0)
        lg = torch.addmm(b4, h2, W4.t(), out=self.logits)
        s = torch.sigmoid(lg)
        # softplus(l) = relu(l) - log(sigmoid(|l|)) and sigmoid(|l|) = max(s, 1 - s): one sigmoid, one log
        nll = torch.clamp_min(lg, 0).sub_(torch.maximum(s, 1 - s).log_()).sub_(x * lg).sum(1)
        kld = 0.5 * (mu * mu + var - 1 - lv)
        loss = (nll.sum() + kld.sum()) / n
        dl = s.sub_(x).mul_(1.0 / n)
        torch.mm(dl.t(), h2, out=gW4)
        torch.sum(dl, 0, out=gb4)
        dh2 = torch.ops.aten.threshold_backward(dl @ W4, h2, 0)
        torch.mm(dh2.t(), z, out=gW3)
        torch.sum(dh2, 0, out=gb3)
        dz = dh2 @ W3
        dheads = torch.cat([dz + mu * (1.0 / n), dz * eps * 0.5 * std + (var - 1) * (0.5 / n)], 1)
        torch.mm(dheads.t(), h1, out=gWmv)
        torch.sum(dheads, 0, out=gbmv)
        dh1 = torch.ops.aten.threshold_backward(dheads @ Wmv, h1, 0)
        torch.mm(dh1.t(), x, out=gW1)
        torch.sum(dh1, 0, out=gb1)
        return loss, nll, kld

    def __call__(self, xb: torch.Tensor) -> None:
        eps = torch.randn(xb.shape[0], Z, device=xb.device, generator=self.gen)
        loss, nll, kld = self.grads(xb, eps)
        stats = torch.stack([loss, nll.mean(), kld.sum(1).mean()]).tolist()  # one sync, as the trainer
        kld.mean(0).tolist()
        if stats[0] == stats[0]:  # finite: keep the weights that gave it, then step
            self.good.copy_(self.flat)
            _adam([self.flat], [self.gflat], [self.m], [self.v], [self.step_t])


def check_hand_step(model: VAE, dev: torch.device, xb: torch.Tensor) -> float:
    """Largest |hand - autograd| over all gradients, relative to the largest gradient entry."""
    hs = HandStep(model, dev)
    eps = torch.randn(xb.shape[0], Z, device=dev, generator=torch.Generator(device=dev).manual_seed(5))
    loss, _, _ = hs.grads(xb, eps)
    x = xb.float() / 255.0
    model.zero_grad(set_to_none=True)
    mu, lv = model.encode(x)
    t = elbo_terms(x, model.decode(mu + torch.exp(0.5 * lv) * eps), mu, lv)
    t.loss.backward()
    e, d = model.encoder, model.decoder
    ref = [
        e.trunk[0].weight.grad,
        e.trunk[0].bias.grad,
        torch.cat([e.mu.weight.grad, e.logvar.weight.grad]),
        torch.cat([e.mu.bias.grad, e.logvar.bias.grad]),
        d.net[0].weight.grad,
        d.net[0].bias.grad,
        d.net[2].weight.grad,
        d.net[2].bias.grad,
    ]
    scale = max(float(r.abs().max()) for r in ref)
    err = max(float((g - r).abs().max()) for g, r in zip(hs.g, ref)) / scale
    want = float(t.loss.detach())
    assert abs(float(loss) - want) < 1e-4 * abs(want), f"hand-written loss {float(loss)} vs autograd {want}"
    return err


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=200, help="steps per timing")
    p.add_argument(
        "--rounds", type=int, default=5, help="alternating rounds; the best round of each is reported"
    )
    p.add_argument(
        "--compile", action="store_true", help="also time the hand-written step under torch.compile"
    )
    args = p.parse_args()
    dev = pick_device(args.device)
    ds = load_dataset("fashion-mnist", device=dev)
    xtr = ds.x_train
    print(
        f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, fashion-mnist {tuple(xtr.shape)}"
    )
    mcfg = ModelConfig(kind="vae", input_dim=D, image_shape=ds.image_shape, hidden=(H,), latent_dim=Z)
    torch.manual_seed(0)
    model = build_model(mcfg).to(dev)
    perm = torch.randperm(xtr.shape[0], device=dev)
    batches = [xtr.index_select(0, perm[i : i + B]) for i in range(0, 64 * B, B)]
    err = check_hand_step(model, dev, batches[0])
    print(f"hand-written backward vs autograd: max relative difference {err:.1e}")

    trainer = Trainer(
        mcfg,
        TrainConfig(dataset=ds.name, epochs=1000, batch_size=B, seed=0, eval_every=10**9),
        dataset=ds,
        device=dev,
    )
    hand = HandStep(model, dev)
    floor = GemmFloor(dev)
    # the unavoidable extras, alone
    params = [q.detach().clone() for q in model.parameters()]
    grads = [torch.randn_like(q) for q in params]
    ms, vs = [torch.zeros_like(q) for q in params], [torch.zeros_like(q) for q in params]
    st = [torch.zeros((), device=dev) for _ in params]
    good = [torch.empty_like(q) for q in params]
    lg, xt = torch.randn(B, D, device=dev) * 3, torch.rand(B, D, device=dev)
    tmp = torch.empty(B, D, device=dev)
    idx = perm[:B]

    def loss_min() -> (
        None
    ):  # one exp and one log per pixel, into preallocated buffers: no pass fewer can do it
        torch.exp(lg, out=tmp)
        torch.log(tmp, out=tmp)

    it = {"b": 0}

    def next_batch() -> torch.Tensor:
        it["b"] = (it["b"] + 1) % len(batches)
        return batches[it["b"]]

    variants: dict[str, Callable[[], None]] = {
        "gemm floor": floor,
        "trainer step": lambda: trainer.step(),
        "hand-written step": lambda: hand(next_batch()),
        "fused Adam (651k params)": lambda: _adam(params, grads, ms, vs, st),
        "BCE-with-logits fwd+bwd (PyTorch)": None,  # filled below
        "exp + log per pixel (minimum)": loss_min,
        "NaN-guard copy of weights": lambda: torch._foreach_copy_(good, params),
        "batch gather + to float": lambda: xtr.index_select(0, idx).float().div_(255.0),
    }
    lgr = lg.clone().requires_grad_()

    def bce() -> None:
        lgr.grad = None
        F.binary_cross_entropy_with_logits(lgr, xt, reduction="none").sum(1).mean().backward()

    variants["BCE-with-logits fwd+bwd (PyTorch)"] = bce
    if args.compile:
        cgrads = torch.compile(hand.grads, dynamic=False)
        t0 = time.perf_counter()
        cgrads(batches[0], torch.randn(B, Z, device=dev))
        print(f"torch.compile of the hand-written step: first call {time.perf_counter() - t0:.1f} s")

        def compiled() -> None:
            loss, nll, kld = cgrads(next_batch(), torch.randn(B, Z, device=dev, generator=hand.gen))
            torch.stack([loss, nll.mean(), kld.sum(1).mean()]).tolist()
            hand.good.copy_(hand.flat)
            _adam([hand.flat], [hand.gflat], [hand.m], [hand.v], [hand.step_t])

        variants["hand-written step, torch.compile"] = compiled

    for fn in variants.values():  # warm-up
        for _ in range(10):
            fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            sync(dev)
            times[name].append((time.perf_counter() - t0) / args.steps * 1e3)
    best = {k: min(v) for k, v in times.items()}
    f = best["gemm floor"]
    print(
        f"\nms per step, best of {args.rounds} rounds of {args.steps} (median in brackets), ratio to the floor:"
    )
    for name in variants:
        print(
            f"  {name:38s} {best[name]:7.3f} ({statistics.median(times[name]):7.3f})   {best[name] / f:5.2f}"
        )
    extras = [
        "fused Adam (651k params)",
        "exp + log per pixel (minimum)",
        "NaN-guard copy of weights",
        "batch gather + to float",
    ]
    lower = f + sum(best[k] for k in extras)
    print(f"  {'lower bound (floor + the four extras)':38s} {lower:7.3f}             {lower / f:5.2f}")
    print(
        f"RESULT floor {f:.3f} ms/step; trainer {best['trainer step'] / f:.2f}x; hand-written "
        f"{best['hand-written step'] / f:.2f}x; perfectly fused lower bound {lower / f:.2f}x"
    )


if __name__ == "__main__":
    main()
