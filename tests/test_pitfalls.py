"""vae_core.pitfalls: each classic mistake trained beside the correct loss, its consequence measured."""

from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import digits_config
from vae_core import pitfalls as pf
from vae_core.elbo import elbo_terms
from vae_core.models import build_model
from vae_core.train import LOSS_LIMIT_PER_PIXEL, TrainConfig, Trainer, TrainerState


@pytest.fixture(scope="module")
def pairs():
    """Every section's pair as the page shows it: the record in checkpoints/pitfalls.json, which
    ``python -m vae_core.pitfalls`` writes with :func:`pf.run_pair`. The consequences below are
    tested on it; ``test_a_fresh_run_reproduces_the_record`` trains sections again and compares.
    (Training all six pairs here took 15-30 s of the suite; how long a pair takes is a figure of
    ``python -m bench.pitfalls_runs``, not an assertion.)"""
    shipped = pf.load_results()
    assert set(shipped) == set(pf.SECTIONS), "run `python -m vae_core.pitfalls` to record the shipped results"
    return shipped


# the cheapest sections that still cover a finished pair, a diverged run and the gradient's measurement
@pytest.mark.parametrize("section", ["detached_z", "kl_sign"])
def test_a_fresh_run_reproduces_the_record(section, pairs, digits) -> None:
    """run_pair on the same seed gives the recorded states, metrics and measurements (float noise aside:
    the record was made with another thread count)."""
    fresh, record = pf.run_pair(section, digits), pairs[section]
    for run, rec in ((fresh.correct, record.correct), (fresh.mistaken, record.mistaken)):
        assert (run.state, run.steps, run.message) == (rec.state, rec.steps, rec.message), run.label
        assert run.metrics["active_units"] == rec.metrics["active_units"], run.label
        assert run.metrics["neg_elbo"] == pytest.approx(rec.metrics["neg_elbo"], rel=1e-3), run.label
        assert run.kl_per_dim == pytest.approx(rec.kl_per_dim, rel=1e-2, abs=1e-3), run.label
        assert run.z_moments == pytest.approx(rec.z_moments, rel=1e-2, abs=1e-3), run.label
        # a one-sample gradient of a trained model: the weights' float noise shows more here (seen: 3 %)
        assert run.grad_norms == pytest.approx(rec.grad_norms, rel=0.1, abs=1e-6), run.label


def test_the_correct_runs_finish(pairs) -> None:
    for p in pairs.values():
        assert p.correct.state == "finished", p.section


def test_per_pixel_mean_collapses_the_posterior(pairs) -> None:
    p = pairs["per_pixel_mean"]
    assert p.correct.metrics["active_units"] >= 2 and p.mistaken.metrics["active_units"] <= 1
    assert max(p.mistaken.kl_per_dim) < 0.05 < max(p.correct.kl_per_dim)  # every dim at the prior
    # the prior samples of the collapsed model are one image: the mean image
    s = torch.tensor(p.mistaken.samples)
    assert float(s.std(0).mean()) < 0.25 * float(torch.tensor(p.correct.samples).std(0).mean())


def test_bce_on_grey_pixels_is_not_a_log_likelihood(pairs) -> None:
    e = pairs["bce_grey"].mistaken.extra
    gap = torch.tensor(e["cb_grey"]) - torch.tensor(e["bce_grey"])  # = sum_d log C(lambda_d) >= D log 2
    assert (gap >= e["d_log2"] - 2e-3).all() and e["gap_mean"] == pytest.approx(float(gap.mean()), abs=2e-3)
    assert pairs["bce_grey"].correct.likelihood == "continuous_bernoulli"
    assert len(e["bce_binarized"]) == 64


def test_wrong_sigma_breaks_the_sampled_z(pairs) -> None:
    good = pairs["sigma_squared"].correct.z_moments
    assert good["var_ratio"] == pytest.approx(1.0, abs=0.1) and good["mean_shift"] < 0.1
    sq = pairs["sigma_squared"].mistaken.z_moments
    assert sq["var_ratio"] < 0.8  # Var z = sigma^4 < sigma^2 for sigma < 1: z does not follow q
    lv = pairs["logvar_as_sigma"].mistaken.z_moments
    assert abs(lv["var_ratio"] - 1.0) > 0.3


def test_z_moments_follow_the_sampler() -> None:
    torch.manual_seed(0)
    m = build_model(digits_config("vae", 3))
    x = torch.rand(20, 64)
    with torch.no_grad():
        mu, logvar = m.encode(x)
    exact = (logvar.exp()).double().mean()  # sigma^4 / sigma^2 = sigma^2 for the sigma_squared mistake
    got = pf.z_moments(m, x, "sigma_squared", n=20000)
    assert got["var_ratio"] == pytest.approx(float(exact), rel=0.05)
    assert pf.z_moments(m, x, None, n=20000)["var_ratio"] == pytest.approx(1.0, abs=0.05)


def test_detached_z_gives_the_encoder_no_reconstruction_gradient(pairs) -> None:
    g = pairs["detached_z"].mistaken.grad_norms
    enc = {k: v for k, v in g.items() if k.startswith("encoder.")}
    assert enc and all(v == 0.0 for v in enc.values())
    assert any(v > 0 for k, v in g.items() if k.startswith("decoder."))
    assert pairs["detached_z"].correct.grad_norms["encoder.mu.weight"] > 0
    assert pairs["detached_z"].mistaken.metrics["active_units"] <= 1  # mu collapses onto the prior
    assert pairs["detached_z"].mistaken.encoder_grad_norm == 0.0
    assert pairs["detached_z"].correct.encoder_grad_norm == max(
        enc_v for k, enc_v in pairs["detached_z"].correct.grad_norms.items() if k.startswith("encoder.")
    )


def test_encoder_grad_norm_is_the_largest_encoder_tensor_norm() -> None:
    def run(grad_norms: dict[str, float]) -> pf.PitfallRun:
        return pf.PitfallRun(
            "correct", None, "bernoulli", "finished", "", 0.0, 0, {}, {}, [], {}, grad_norms, [], []
        )

    norms = {"encoder.0.weight": 0.5, "encoder.mu.weight": 2.25, "decoder.0.weight": 9.0}
    assert run(norms).encoder_grad_norm == 2.25  # the decoder's larger norm does not count
    assert run({"decoder.0.weight": 1.0}).encoder_grad_norm == 0.0  # no encoder gradient at all


def test_flipped_kl_sign_is_stopped_by_the_guard(pairs) -> None:
    bad = pairs["kl_sign"].mistaken
    assert bad.state == "diverged" and "far beyond any real ELBO" in bad.message
    assert "last good weights" in bad.message
    assert all(v is None or math.isfinite(v) for v in bad.history["loss"])


def test_the_guard_keeps_the_last_good_weights(digits) -> None:
    tr = Trainer(
        digits_config("vae", 8, (128,)),
        TrainConfig(dataset="digits", epochs=200, seed=0),
        dataset=digits,
        device="cpu",
        objective=pf.mistaken_objective("kl_sign"),  # the lesson names its objective; the trainer knows none
    )
    tr.run()
    assert tr.state == TrainerState.DIVERGED
    assert all(torch.isfinite(p).all() for p in tr.model.parameters())
    assert max(abs(v) for v in tr.history.loss) <= LOSS_LIMIT_PER_PIXEL * 64


def test_mistaken_terms_match_the_correct_ones_where_they_should() -> None:
    torch.manual_seed(0)
    m = build_model(digits_config("vae", 2))
    x = torch.rand(16, 64)
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    logits, mu, logvar, _ = m(x, generator=gen())
    ok = elbo_terms(x, logits, mu, logvar)
    pm = pf.mistaken_terms("per_pixel_mean", m, x, generator=gen())
    torch.testing.assert_close(pm.recon, ok.recon / 64)
    torch.testing.assert_close(pm.kl, ok.kl)
    ks = pf.mistaken_terms("kl_sign", m, x, generator=gen())
    torch.testing.assert_close(ks.loss, -(ok.recon + ok.kl).mean())
    dz = pf.mistaken_terms("detached_z", m, x, generator=gen())
    torch.testing.assert_close(dz.loss, ok.loss)  # same value, other gradient
    with pytest.raises(ValueError, match="unknown mistake"):
        pf.mistaken_terms("typo", m, x)
    with pytest.raises(ValueError, match="unknown mistake"):
        pf.mistaken_objective("typo")


def test_the_trainer_knows_no_lesson() -> None:
    """train.py imports nothing of the Pitfalls lesson, and TrainConfig has no lesson field."""
    import ast
    from dataclasses import fields

    from tests.conftest import ROOT

    tree = ast.parse((ROOT / "vae_core" / "train.py").read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any("pitfalls" in (m or "") or "jobs" in (m or "") for m in imported), imported
    assert "mistake" not in {f.name for f in fields(TrainConfig)}


def test_a_default_trainer_minimises_the_elbo(digits) -> None:
    """The default objective is vae_core.elbo's terms: the same first loss as elbo_terms on the same batch."""
    from vae_core.train import elbo_objective

    a = Trainer(digits_config("vae", 2), TrainConfig(dataset="digits", seed=1), dataset=digits, device="cpu")
    b = Trainer(
        digits_config("vae", 2),
        TrainConfig(dataset="digits", seed=1),
        dataset=digits,
        device="cpu",
        objective=elbo_objective,
    )
    assert a.objective is elbo_objective and a.step()["loss"] == b.step()["loss"]


def test_results_round_trip_and_shipped_file(pairs, tmp_path) -> None:
    path = pf.save_results(pairs, tmp_path / "p.json")
    back = pf.load_results(path)
    assert set(back) == set(pf.SECTIONS)
    assert back["kl_sign"].mistaken.message == pairs["kl_sign"].mistaken.message
    assert pf.load_results(tmp_path / "missing.json") == {}
    shipped = pf.load_results()
    assert set(shipped) == set(pf.SECTIONS), "run `python -m vae_core.pitfalls` to record the shipped results"
    assert shipped["per_pixel_mean"].mistaken.metrics["active_units"] <= 1
