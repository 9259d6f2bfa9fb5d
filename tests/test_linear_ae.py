"""A linear AE trained on the MSE finds PCA's subspace (Baldi & Hornik 1989), on the 8x8 digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_core.linear_ae import linear_ae_loss, linear_ae_vs_pca, pca_reconstruct
from vae_core.projection import pca_basis


@pytest.fixture(scope="module")
def result_k4(digits):
    return linear_ae_vs_pca(digits.x_train, digits.x_test, k=4, seed=0)


def test_loss_and_gradient_match_autograd_on_the_images() -> None:
    rng = np.random.default_rng(0)
    x, k, d = rng.random((30, 12)), 3, 12
    theta = rng.standard_normal(2 * k * d + k + d)
    mean = x.mean(0)
    loss, grad = linear_ae_loss(theta, mean, (x - mean).T @ (x - mean) / len(x), k)
    t = torch.tensor(theta, requires_grad=True)
    w_e, b_e = t[: k * d].view(k, d), t[k * d : k * d + k]
    w_d, c = t[k * d + k : 2 * k * d + k].view(d, k), t[2 * k * d + k :]
    xt = torch.from_numpy(x)
    ref = ((xt @ w_e.T + b_e) @ w_d.T + c - xt).pow(2).mean()
    ref.backward()
    assert loss == pytest.approx(float(ref.detach()), rel=1e-12)  # the moments give the images' own MSE
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_pca_is_the_best_rank_k_reconstruction(digits) -> None:
    x = digits.x_train.double().numpy() / 255.0
    mean, axes, var = pca_basis(x, 6)
    np.testing.assert_allclose(axes @ axes.T, np.eye(6), atol=1e-12)
    assert np.all(np.diff(var) <= 0)
    # Eckart-Young: the MSE left is the variance in the discarded axes
    _, _, var_all = pca_basis(x, 64)
    mse = np.mean((pca_reconstruct(x, mean, axes) - x) ** 2)
    assert mse == pytest.approx(var_all[6:].sum() / x.shape[1], rel=1e-9)


def test_the_ae_finds_pcas_subspace(result_k4) -> None:
    r = result_k4
    assert r.angles_deg.shape == (4,) and r.max_angle_deg <= 5.0
    assert -1e-9 <= r.mse_excess <= 0.01  # never below PCA (optimal), and within 1% of it
    assert r.ae_test_mse == pytest.approx(r.pca_test_mse, rel=0.01)
    assert r.mse_history[-1] == pytest.approx(r.ae_mse, rel=1e-9) and r.mse_history[0] > r.mse_history[-1]
    assert r.pca_axes.shape == r.decoder_columns.shape == (4, 64) and r.examples.shape == (8, 64)
    assert 0 < r.explained.sum() < 1 and np.all(np.diff(r.explained) <= 0)


def test_more_dims_too(digits) -> None:
    r = linear_ae_vs_pca(digits.x_train, digits.x_test, k=8, seed=1)
    assert r.max_angle_deg <= 5.0 and r.mse_excess <= 0.01


def test_deterministic_with_a_seed(digits, result_k4) -> None:
    again = linear_ae_vs_pca(digits.x_train, digits.x_test, k=4, seed=0)
    np.testing.assert_array_equal(again.decoder_columns, result_k4.decoder_columns)
    np.testing.assert_array_equal(again.angles_deg, result_k4.angles_deg)
    with pytest.raises(ValueError):
        linear_ae_vs_pca(digits.x_train, digits.x_test, k=0)
