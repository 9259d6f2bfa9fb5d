"""A linear autoencoder finds PCA's subspace: the claim "an AE generalises PCA", checked in numbers.

A linear AE has encoder z = W_e x + b_e (k, D) and decoder x_hat = W_d z + c (D, k), no nonlinearity, and is
trained on the mean squared error. Among all maps of rank k the best reconstruction is the projection onto the top
k principal axes (Eckart-Young), and every minimum of the linear AE's loss is a global one (Baldi & Hornik 1989):
training lands on PCA's subspace, though with its own basis (any invertible k x k mixing of the axes gives the
same reconstruction), so the axes themselves are not the principal axes. :func:`linear_ae_vs_pca` trains one on the
digits (or any images) and measures the principal angles between the decoder's column space and PCA's subspace.

Pixels are in [0, 1]; MSE is the mean squared error per pixel (pixel units squared); angles are in degrees.
Nothing here imports streamlit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .data import to_float
from .projection import pca_basis

__all__ = ["LinearAEvsPCA", "linear_ae_vs_pca", "linear_ae_loss", "train_linear_ae", "pca_reconstruct"]


def pca_reconstruct(x: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Project x (N, D) onto the affine subspace mean (D,) + span(axes (k, D), orthonormal rows) and back: (N, D)."""
    return mean + ((x - mean) @ axes.T) @ axes


def _unpack(theta: np.ndarray, d: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flat parameters (2 k D + k + D,) -> views (W_e (k, D), b_e (k,), W_d (D, k), c (D,))."""
    a, b, c = k * d, k * d + k, 2 * k * d + k
    return theta[:a].reshape(k, d), theta[a:b], theta[b:c].reshape(d, k), theta[c:]


def linear_ae_loss(theta: np.ndarray, mean: np.ndarray, cov: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """The linear AE's full-batch MSE per pixel and its gradient in the flat parameters ``theta``, float64, from the
    images' pixel mean (D,) and covariance (D, D) (the 1/N one).

    The reconstruction error of an image is B x + b with B = W_d W_e - I and b = W_d b_e + c, so the mean over the
    images of |B x + b|^2 is tr(B C B^T) + |B m + b|^2: an affine map's MSE depends on the data only through its
    mean m and covariance C, and a step costs O(D^2 k) whatever the number of images. With r = B m + b and
    L = (tr(B C B^T) + |r|^2) / D: dL/dB = 2 (B C + r m^T) / D and dL/db = 2 r / D, which the chain rule takes to
    W_e, b_e, W_d and c (by hand: a few numpy products; the tests check it against autograd on the images).
    """
    d = mean.shape[0]
    w_e, b_e, w_d, c = _unpack(theta, d, k)
    big_b = w_d @ w_e - np.eye(d)  # (D, D)
    r = big_b @ mean + w_d @ b_e + c  # (D,)
    bc = big_b @ cov  # (D, D)
    loss = (float(np.einsum("ij,ij->", bc, big_b)) + float(r @ r)) / d
    g_big = (2.0 / d) * (bc + np.outer(r, mean))  # dL/dB (D, D)
    g_r = (2.0 / d) * r  # dL/db (D,)
    grad = np.concatenate(
        [(w_d.T @ g_big).ravel(), w_d.T @ g_r, (g_big @ w_e.T + np.outer(g_r, b_e)).ravel(), g_r]
    )
    return loss, grad


def train_linear_ae(
    x: np.ndarray, k: int, seed: int = 0, iterations: int = 500
) -> tuple[dict[str, np.ndarray], list[float]]:
    """Train a linear AE with ``k`` latent dims on x (N, D) in [0, 1] by full-batch L-BFGS on the MSE.

    Returns its parameters {"W_e": (k, D), "b_e": (k,), "W_d": (D, k), "c": (D,)} and the MSE per pixel after each
    iteration. Float64; the start is N(0, 0.1^2) weights from ``seed`` and the run is a fixed ``iterations`` (unless
    the gradient vanishes first), so the same seed gives the same AE. L-BFGS (scipy) rather than Adam: the loss has
    no spurious minima but long flat saddles, which a quasi-Newton method crosses in a few hundred steps (each on the
    images' mean and covariance: :func:`linear_ae_loss`; a few tenths of a second for the digits).
    """
    from scipy.optimize import minimize  # noqa: PLC0415 - scipy is slow to import

    x = np.asarray(x, dtype=np.float64)
    d = x.shape[1]
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / x.shape[0]  # (D, D)
    rng = np.random.default_rng(seed)
    theta0 = np.concatenate(
        [0.1 * rng.standard_normal(k * d), np.zeros(k), 0.1 * rng.standard_normal(d * k), np.zeros(d)]
    )
    history: list[float] = []

    def record(intermediate_result: Any) -> None:  # scipy passes the iterate's OptimizeResult under this name
        history.append(float(intermediate_result.fun))

    res = minimize(
        linear_ae_loss,
        theta0,
        args=(mean, cov, k),
        jac=True,
        method="L-BFGS-B",
        callback=record,
        options={"maxiter": iterations, "gtol": 1e-12, "ftol": 0.0, "maxcor": 30},
    )
    w_e, b_e, w_d, c = (t.copy() for t in _unpack(res.x, d, k))
    return {"W_e": w_e, "b_e": b_e, "W_d": w_d, "c": c}, history


@dataclass
class LinearAEvsPCA:
    """A linear AE and PCA with the same k on the same images. MSE per pixel (pixel units squared), angles in degrees."""

    k: int  # latent dims = principal axes kept
    angles_deg: np.ndarray  # (k,) principal angles between span(W_d) and PCA's top-k subspace, largest first
    ae_mse: float  # the AE's reconstruction MSE on the training images
    pca_mse: float  # PCA's on the same images: the least any rank-k affine map reaches
    ae_test_mse: float  # the AE's on held-out images
    pca_test_mse: float  # PCA's on them
    explained: np.ndarray  # (k,) fraction of the pixel variance each principal axis carries
    pca_axes: np.ndarray  # (k, D) the principal axes (orthonormal rows): draw each as an image
    decoder_columns: np.ndarray  # (k, D) the AE's decoder columns W_d[:, j]: the same subspace, another basis
    examples: np.ndarray  # (m, D) held-out images
    ae_examples: np.ndarray  # (m, D) their AE reconstructions
    pca_examples: np.ndarray  # (m, D) their PCA reconstructions
    mse_history: np.ndarray  # (iterations,) the AE's training MSE after each L-BFGS iteration
    seconds: float  # training time, wall clock

    @property
    def max_angle_deg(self) -> float:
        """The largest principal angle, degrees: 0 when the two subspaces coincide."""
        return float(self.angles_deg.max())

    @property
    def explained_total(self) -> float:
        """The fraction of the pixel variance the k principal axes keep together."""
        return float(self.explained.sum())

    @property
    def mse_excess(self) -> float:
        """(AE MSE - PCA MSE) / PCA MSE on the training images: >= 0, and ~0 once the AE has found the subspace."""
        return (self.ae_mse - self.pca_mse) / self.pca_mse


def linear_ae_vs_pca(
    x_train: torch.Tensor | np.ndarray,
    x_test: torch.Tensor | np.ndarray,
    k: int = 4,
    seed: int = 0,
    n_examples: int = 8,
) -> LinearAEvsPCA:
    """Train a linear AE with ``k`` latent dims on images x_train (N, D) (uint8 or float in [0, 1]) and compare it
    with PCA's top-k subspace of the same images: principal angles (scipy.linalg.subspace_angles, degrees), MSE
    on the training and on held-out images x_test (M, D), and ``n_examples`` held-out reconstructions by each.

    On the 8x8 digits (k = 2..8) every angle ends under 5 degrees and the AE's MSE within 1% of PCA's, in about
    half a second on a CPU.
    """
    from scipy.linalg import subspace_angles  # noqa: PLC0415

    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    xtr = to_float(torch.as_tensor(x_train)).double().cpu().numpy()
    xte = to_float(torch.as_tensor(x_test)).double().cpu().numpy()
    if k >= xtr.shape[1]:
        raise ValueError(f"k must be below the pixel count {xtr.shape[1]}, got {k}")
    mean, axes, variances = pca_basis(xtr, k)
    total_var = float(xtr.var(0).sum())
    t0 = time.perf_counter()
    params, history = train_linear_ae(xtr, k, seed)
    seconds = time.perf_counter() - t0

    def ae(x: np.ndarray) -> np.ndarray:
        return (x @ params["W_e"].T + params["b_e"]) @ params["W_d"].T + params["c"]

    def mse(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.mean((a - b) ** 2))

    ex = xte[:n_examples]
    return LinearAEvsPCA(
        k=int(k),
        angles_deg=np.degrees(subspace_angles(params["W_d"], axes.T)),
        ae_mse=mse(ae(xtr), xtr),
        pca_mse=mse(pca_reconstruct(xtr, mean, axes), xtr),
        ae_test_mse=mse(ae(xte), xte),
        pca_test_mse=mse(pca_reconstruct(xte, mean, axes), xte),
        explained=variances / total_var if total_var > 0 else np.zeros_like(variances),
        pca_axes=axes,
        decoder_columns=params["W_d"].T.copy(),
        examples=ex,
        ae_examples=np.clip(ae(ex), 0.0, 1.0),
        pca_examples=np.clip(pca_reconstruct(ex, mean, axes), 0.0, 1.0),
        mse_history=np.asarray(history),
        seconds=seconds,
    )
