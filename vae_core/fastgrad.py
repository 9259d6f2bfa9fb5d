"""The training loss and its gradient in closed form, for the lab's MLP AEs and VAEs.

Autograd records a graph on every step and replays it backwards, one small kernel and one
dispatch per node. For the lab's models the backward is short enough to write out, so the
trainer computes the same loss as :func:`vae_core.elbo.elbo_terms` and writes every parameter's
gradient straight into ``p.grad``: no graph, preallocated activations, matmuls writing in place.
On the 2-core CPU this makes a reference epoch about 1.1x faster than autograd
(``bench/train_speed.py --autograd``: 1.09x, median of 4 epochs; 1.13x a step in
``bench/train_step_breakdown.py``, medians).

The chain rule, for one batch of B examples (every term is averaged over the batch)::

    loss = -mean_i log p(x_i|z_i) + beta * KL'       z = mu + exp(logvar / 2) * eps
    d loss / d logits = (sigmoid(l) - x) / B                          (Bernoulli)
                      = (s - x) s (1 - s) / (obs_std^2 B), s = sigmoid(l)   (Gaussian)
    d KL_ij / d mu_ij = mu_ij,   d KL_ij / d logvar_ij = (exp(logvar_ij) - 1) / 2
    d z / d mu = 1,               d z / d logvar = eps * exp(logvar / 2) / 2

then back through each Linear (dW = g^T a, db = sum_i g, da = g W) and activation. Free bits
pass the KL gradient only for dims whose batch-mean KL is at or above the floor (as
``torch.clamp`` does). Supported: ReLU and tanh MLPs, Bernoulli and Gaussian likelihoods, any
beta and free bits, on CPU and CUDA; :func:`supports` says whether a model qualifies, and the
trainer uses it on the CPU (:func:`preferred`) and autograd otherwise. tests/test_fastgrad.py checks every case against
autograd.
"""

from __future__ import annotations

import torch
from torch import nn

from .elbo import ELBOTerms, combine_terms, kl_per_dim, recon_log_likelihood
from .models import AE, VAE, Decoder, Encoder

__all__ = ["supports", "preferred", "ClosedFormStep"]

_ACTIVATIONS = {"relu", "tanh"}


def supports(model: nn.Module, device: torch.device) -> bool:
    """True when :class:`ClosedFormStep` computes this model's gradient (else use autograd).

    The ops are device-agnostic and CUDA works, but the trainer picks this path by itself only
    on the CPU (see :func:`preferred`): that is where it was measured to pay off.
    """
    cfg = getattr(model, "config", None)
    known = (AE, VAE, Encoder, Decoder, nn.Sequential, nn.Linear, nn.ReLU, nn.Tanh, nn.Identity)
    return (
        isinstance(model, (AE, VAE))
        and cfg is not None
        and cfg.activation in _ACTIVATIONS
        and cfg.likelihood in ("bernoulli", "gaussian")
        and device.type in ("cpu", "cuda")
        and all(type(m) in known for m in model.modules())  # a subclass or hook-free surprise: autograd
        and all(p.dtype == torch.float32 for p in model.parameters())
    )


def preferred(model: nn.Module, device: torch.device) -> bool:
    """The trainer's default: the closed form on the CPU where supported, autograd elsewhere."""
    return device.type == "cpu" and supports(model, device)


def _linears(seq: nn.Module) -> list[nn.Linear]:
    return [m for m in seq.modules() if isinstance(m, nn.Linear)] if not isinstance(seq, nn.Identity) else []


class ClosedFormStep:
    """Loss terms and gradients of one training batch for one model, without autograd.

    Holds the model's layers and reuses its activation buffers between steps of the same batch
    size. :meth:`__call__` returns the same :class:`ELBOTerms` as ``elbo_terms(x, *model(x))``
    (nats per example, detached) and leaves d loss / d p in every ``p.grad``.
    """

    def __init__(self, model: AE | VAE) -> None:
        self.model = model
        cfg = model.config
        self.cfg = cfg
        self.is_vae = model.is_vae
        self.trunk = _linears(model.encoder.trunk)
        self.mu = model.encoder.mu
        self.logvar = model.encoder.logvar
        self.dec = _linears(model.decoder.net)
        self._bufs: dict[tuple[str, int], torch.Tensor] = {}

    # ---------------------------------------------------------------- helpers
    def _buf(self, name: str, rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
        b = self._bufs.get((name, rows))
        if b is None or b.shape[1] != cols or b.device != like.device:
            b = self._bufs[(name, rows)] = torch.empty(rows, cols, device=like.device, dtype=like.dtype)
        return b

    def _act_(self, h: torch.Tensor) -> torch.Tensor:
        return h.clamp_min_(0.0) if self.cfg.activation == "relu" else h.tanh_()

    def _act_backward(self, g: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """d/d(pre-activation) from g = d/d(out), out = act(pre)."""
        if self.cfg.activation == "relu":
            return torch.ops.aten.threshold_backward(g, out, 0.0)
        return g.mul_(1.0 - out * out)

    @staticmethod
    def _grad(p: torch.Tensor) -> torch.Tensor:
        if p.grad is None or p.grad.shape != p.shape:
            p.grad = torch.empty_like(p)
        return p.grad

    def _forward(self, layers: list[nn.Linear], a: torch.Tensor, tag: str, final_act: bool) -> list[torch.Tensor]:
        """Inputs of each layer, then the output: [a_0, a_1, ..., out]."""
        acts = [a]
        for i, lin in enumerate(layers):
            out = torch.addmm(lin.bias, a, lin.weight.t(), out=self._buf(f"{tag}{i}", a.shape[0], lin.out_features, a))
            if final_act or i < len(layers) - 1:
                out = self._act_(out)
            acts.append(out)
            a = out
        return acts

    def _backward(self, layers: list[nn.Linear], acts: list[torch.Tensor], g: torch.Tensor,
                  final_act: bool, need_input_grad: bool) -> torch.Tensor | None:
        """Fill the layers' grads from g = d loss / d acts[-1]; return d loss / d acts[0] if asked."""
        for i in range(len(layers) - 1, -1, -1):
            lin = layers[i]
            if final_act or i < len(layers) - 1:
                g = self._act_backward(g, acts[i + 1])
            torch.mm(g.t(), acts[i], out=self._grad(lin.weight))
            torch.sum(g, 0, out=self._grad(lin.bias))
            if i > 0 or need_input_grad:
                g = g @ lin.weight
        return g if need_input_grad else None

    # ---------------------------------------------------------------- the step
    @torch.no_grad()
    def __call__(self, x: torch.Tensor, beta: float = 1.0, free_bits: float = 0.0,
                 generator: torch.Generator | None = None) -> ELBOTerms:
        """x (B, D) in [0, 1] -> the batch's ELBO terms (nats per example); fills every ``p.grad``.

        Draws the reparameterisation noise exactly as ``VAE.forward`` does (one ``randn`` of
        shape (B, z) from ``generator``), so a seeded run sees the same noise either way.
        """
        cfg, n = self.cfg, x.shape[0]
        trunk = self._forward(self.trunk, x, "t", final_act=True)
        h = trunk[-1]
        mu = torch.addmm(self.mu.bias, h, self.mu.weight.t())
        if self.is_vae:
            assert self.logvar is not None
            lv = torch.addmm(self.logvar.bias, h, self.logvar.weight.t())
            eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
            std = torch.exp(0.5 * lv)
            z = torch.addcmul(mu, std, eps)
        else:
            z = mu
        dec = self._forward(self.dec, z, "d", final_act=False)
        lg = dec[-1]

        s = torch.sigmoid(lg)
        if cfg.likelihood == "bernoulli":
            # -log p(x|z) = softplus(l) - x l, and softplus(l) = relu(l) - log(max(s, 1 - s)): one log per pixel,
            # with s reused for the gradient (BCE-with-logits would compute both again)
            recon = torch.clamp_min(lg, 0.0).sub_(torch.maximum(s, 1.0 - s).log_()).sub_(x * lg).sum(1).neg_()
            dl = s.sub_(x).mul_(1.0 / n)
        else:
            recon = recon_log_likelihood(x, lg, "gaussian", cfg.obs_std)
            dl = (s - x).mul_(s).mul_(1.0 - s).mul_(1.0 / (float(cfg.obs_std) ** 2 * n))

        if self.is_vae:
            std_sq = std * std
            terms = combine_terms(recon, kl_per_dim(mu, lv), beta, free_bits)
            # free bits: the KL gradient flows only for dims at or above the floor (as torch.clamp's)
            w = (terms.kl_per_dim.mean(0) >= free_bits).to(mu.dtype) * (beta / n) if free_bits > 0.0 else None
        else:
            terms = combine_terms(recon, None)

        dz = self._backward(self.dec, dec, dl, final_act=False, need_input_grad=True)
        assert dz is not None
        dh = self._buf("dh", n, h.shape[1], h) if self.trunk else None  # d loss / d h: only a trunk needs it
        if self.is_vae:
            assert self.logvar is not None
            if w is None:
                dmu = torch.add(dz, mu, alpha=beta / n)
                dlv = torch.add(dz * eps * 0.5 * std, std_sq - 1.0, alpha=0.5 * beta / n)
            else:
                dmu = dz + mu * w
                dlv = dz * eps * 0.5 * std + (std_sq - 1.0) * (0.5 * w)
            torch.mm(dlv.t(), h, out=self._grad(self.logvar.weight))
            torch.sum(dlv, 0, out=self._grad(self.logvar.bias))
            if dh is not None:
                torch.mm(dmu, self.mu.weight, out=dh)
                dh.addmm_(dlv, self.logvar.weight)
        else:
            dmu = dz
            if dh is not None:
                torch.mm(dmu, self.mu.weight, out=dh)
        torch.mm(dmu.t(), h, out=self._grad(self.mu.weight))
        torch.sum(dmu, 0, out=self._grad(self.mu.bias))
        if dh is not None:
            # the trunk ends in an activation: _backward applies its derivative first
            self._backward(self.trunk, trunk, dh, final_act=True, need_input_grad=False)
        return terms
