"""vae_core.compare (fair shipped pairs, metrics and prior-vs-posterior stats) and vae_core.pair (the live pair trainer)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, digits_config, needs_fashion
from vae_core import compare as cmp
from vae_core import pair as pr
from vae_core.checkpoint import load_checkpoint, read_metadata
from vae_core.data import load_dataset
from vae_core.evaluate import dataset_metrics
from vae_core.inference import encode
from vae_core.train import TrainerState as S

CKPT = Path(__file__).resolve().parents[1] / "checkpoints"


def _meta(
    kind: str, dataset: str = "digits", z: int = 2, seed: int = 0, beta: float = 1.0, hidden=(128,)
) -> dict:
    return {
        "dataset": dataset,
        "model_config": {
            "kind": kind,
            "input_dim": 64,
            "image_shape": [1, 8, 8],
            "hidden": list(hidden),
            "latent_dim": z,
            "likelihood": "bernoulli",
            "obs_std": 0.1,
            "activation": "relu",
        },
        "train_config": {
            "epochs": 60,
            "batch_size": 128,
            "lr": 1e-3,
            "seed": seed,
            "beta": beta,
            "warmup_steps": 0,
            "free_bits": 0.0,
        },
    }


class TestFindPair:
    def test_shipped_digits_pair_is_fair(self) -> None:
        shipped = {p.stem: read_metadata(p) for p in CKPT.glob("*.safetensors")}
        assert cmp.find_pair(shipped, "digits", 2) == ("digits_vae_z2", "digits_ae_z2")
        assert cmp.recipe_differences(shipped["digits_vae_z2"], shipped["digits_ae_z2"]) == []

    def test_matches_dataset_latent_and_recipe(self) -> None:
        shipped = {
            "a_vae": _meta("vae", z=16),
            "b_ae_other_seed": _meta("ae", z=16, seed=1),
            "c_ae": _meta("ae", z=16),
            "beta4": _meta("vae", z=16, beta=4.0),
            "z2_vae": _meta("vae"),
            "saved/z2_ae": _meta("ae"),
        }
        assert cmp.find_pair(shipped, "digits", 16) == ("a_vae", "c_ae")  # skips the AE with another seed
        assert cmp.find_pair(shipped, "digits", 2) == ("z2_vae", "saved/z2_ae")
        assert cmp.find_pair(shipped, "fashion-mnist", 2) is None
        del shipped["a_vae"]
        assert cmp.find_pair(shipped, "digits", 16) is None  # a beta-VAE is not the plain VAE

    def test_differences_are_named(self) -> None:
        diffs = cmp.recipe_differences(_meta("vae", hidden=(64,)), _meta("ae", seed=3))
        assert any(d.startswith("hidden") for d in diffs) and any(d.startswith("seed") for d in diffs)
        assert len(diffs) == 2


class TestPairTraining:
    def test_build_pair_shares_every_common_weight(self) -> None:
        vae, ae = pr.build_pair(digits_config("vae", 2, (32,)), seed=5)
        assert vae.is_vae and not ae.is_vae
        sv = vae.state_dict()
        for k, v in ae.state_dict().items():
            assert torch.equal(v, sv[k]), k
        assert any("logvar" in k for k in sv) and not any("logvar" in k for k in ae.state_dict())

    def test_pair_trains_in_lockstep_on_the_same_batches(self, digits) -> None:
        mc, tc = pr.live_pair_configs(digits, latent_dim=2, epochs=2, hidden=(32,))
        pair = pr.PairTrainer(mc, tc, digits)
        seen: dict[str, list[torch.Tensor]] = {"vae": [], "ae": []}
        for name, tr in (("vae", pair.vae), ("ae", pair.ae)):
            orig = tr._next_indices
            tr._next_indices = lambda o=orig, n=name: seen[n].append(o().clone()) or seen[n][-1]  # type: ignore[method-assign]
        w0 = pair.ae.model.decoder.net[0].weight.detach().clone()
        pair.start()
        assert pair.join(60)
        p = pair.progress()
        assert p.state == S.FINISHED and p.step == p.total_steps == 2 * math.ceil(
            digits.x_train.shape[0] / 128
        )
        assert p.fraction == 1.0 and math.isfinite(p.vae_loss) and math.isfinite(p.ae_loss)
        assert len(seen["vae"]) == len(seen["ae"]) == p.total_steps
        assert all(torch.equal(a, b) for a, b in zip(seen["vae"], seen["ae"]))  # same batch order
        assert not torch.equal(w0, pair.ae.model.decoder.net[0].weight)  # training moved the weights
        vae, ae = pair.models()
        assert vae.is_vae and not ae.is_vae and not vae.training
        mv, ma = pair.metadata()
        assert cmp.recipe_differences(mv, ma) == []

    def test_one_torch_thread_while_training_and_restored_after(self, digits) -> None:
        import threading

        mc, tc = pr.live_pair_configs(digits, latent_dim=2, epochs=1, hidden=(16,))
        pair = pr.PairTrainer(mc, tc, digits)
        seen: list[int] = []
        pair.vae.add_callback("on_step", lambda tr, rec: seen.append(torch.get_num_threads()))
        before = [0]
        t = threading.Thread(target=lambda: before.__setitem__(0, torch.get_num_threads()))
        t.start()
        t.join()
        pair.start()
        assert pair.join(60)
        assert seen and set(seen) == {1}
        after = [0]
        t = threading.Thread(target=lambda: after.__setitem__(0, torch.get_num_threads()))
        t.start()
        t.join()
        assert after[0] == before[0]  # new threads get torch's default again

    def test_stop_ends_the_thread(self, digits) -> None:
        mc, tc = pr.live_pair_configs(digits, latent_dim=2, epochs=500, hidden=(32,))
        pair = pr.PairTrainer(mc, tc, digits)
        pair.start()
        pair.stop()
        assert pair.join(30)
        assert pair.progress().state == S.STOPPED and pair.progress().step < pair.total_steps


@pytest.fixture(scope="module")
def shipped():
    """The shipped digits pair (vae, ae), z = 2."""
    return load_checkpoint(CKPT / "digits_vae_z2.safetensors").model, load_checkpoint(
        CKPT / "digits_ae_z2.safetensors"
    ).model


class TestMetricsAndPrior:
    def test_metrics_hide_the_aes_kl(self, shipped, digits) -> None:
        vae, ae = shipped
        mv, ma = dataset_metrics(vae, digits.x_test), dataset_metrics(ae, digits.x_test)
        assert mv.is_vae and mv.kl > 0.5 and mv.neg_elbo == pytest.approx(mv.recon + mv.kl)
        assert not ma.is_vae and ma.kl == 0.0 and ma.kl_per_dim == [] and ma.recon > 0  # no KL to show
        assert mv.n == ma.n == digits.x_test.shape[0] and mv.active_units == 2

    def test_vae_codes_sit_closer_to_the_prior(self, shipped, digits) -> None:
        vae, ae = shipped
        pv, pa = cmp.prior_match(vae, digits.x_test), cmp.prior_match(ae, digits.x_test)
        assert pv.moment_kl < 0.5 < pa.moment_kl  # VAE's q(z) has about the prior's moments
        assert np.all(np.abs(pv.std - 1.0) < 0.3)
        assert pa.kl_per_dim.shape == (2,) and pa.kl_per_dim.sum() == pytest.approx(pa.moment_kl)

    def test_moment_kl_is_zero_for_prior_like_codes(self) -> None:
        class Identity(torch.nn.Module):  # "encoder" that returns its input as mu: codes ~ N(0, I)
            is_vae = False
            config = digits_config("ae", 2)

            def __init__(self) -> None:
                super().__init__()
                self.p = torch.nn.Parameter(torch.zeros(1))

            def encode(self, x):
                return x, None

        z = torch.randn(20000, 2, generator=torch.Generator().manual_seed(0))
        pm = cmp.prior_match(Identity(), z)
        assert pm.moment_kl == pytest.approx(0.0, abs=5e-3)
        shifted = cmp.prior_match(
            Identity(), 3.0 * z + 1.0
        )  # KL(N(1, 9) || N(0, 1)) = (1 + 9 - 1 - log 9) / 2 per dim
        assert shifted.moment_kl == pytest.approx(2 * 0.5 * (9.0 - math.log(9.0)), rel=0.03)

    def test_histograms_integrate_to_one(self) -> None:
        mu = np.random.default_rng(0).normal(size=(5000, 3))
        edges, dens = cmp.mu_histograms(mu, bins=30)
        assert edges.shape == (31,) and dens.shape == (3, 30) and edges[-1] == pytest.approx(-edges[0])
        np.testing.assert_allclose((dens * np.diff(edges)).sum(1), 1.0)
        centres = 0.5 * (edges[1:] + edges[:-1])
        assert np.abs(dens.mean(0) - cmp.standard_normal_pdf(centres)).max() < 0.05

    def test_prior_circles_mass(self) -> None:
        circles = cmp.prior_circles((1.0, 2.0))
        assert [round(m, 3) for _, m, _, _ in circles] == [0.393, 0.865]
        r, _, xs, ys = circles[1]
        np.testing.assert_allclose(np.hypot(xs, ys), r)

    def test_interpolation_pair_crosses_classes(self, digits) -> None:
        i, j = cmp.interpolation_pair(digits.y_test)
        assert i == 0 and int(digits.y_test[i]) != int(digits.y_test[j])
        assert cmp.interpolation_pair(np.array([3, 3, 3])) == (0, 1)


class TestPageHelpers:
    """What the AE vs VAE page used to compute itself: histogram panels, the map's PCA fallback, pair names."""

    def test_density_rows(self) -> None:
        mu = np.random.default_rng(0).normal(size=(500, 3))
        centres, dens, pdf = cmp.density_rows(mu, bins=20)
        edges, dens2 = cmp.mu_histograms(mu, 20)
        np.testing.assert_allclose(centres, 0.5 * (edges[1:] + edges[:-1]))
        np.testing.assert_allclose(dens, dens2)
        assert pdf.shape == centres.shape == (20,)
        np.testing.assert_allclose(
            pdf, np.exp(-(centres**2) / 2) / np.sqrt(2 * np.pi)
        )  # N(0, 1) at the centres

    def test_map_xy_falls_back_to_pca(self) -> None:
        from types import SimpleNamespace

        from vae_core.projection import pca_2d

        mu = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
        xy, done = cmp.map_xy(mu, None)
        assert not done and np.allclose(xy, pca_2d(mu))
        running = SimpleNamespace(done=False, result=None)
        assert not cmp.map_xy(mu, running)[1]
        umap = np.ones((50, 2))
        xy, done = cmp.map_xy(mu, SimpleNamespace(done=True, result=SimpleNamespace(xy=umap)))
        assert done and xy is umap

    @staticmethod
    def meta(kind: str, ds: str = "digits", z: int = 2, recon: float | None = None, n: int = 100) -> dict:
        out = {
            "dataset": ds,
            "model_config": {"kind": kind, "latent_dim": z, "hidden": [64]},
            "train_config": {"seed": 0, "batch_size": 128, "epochs": 5, "beta": 1.0},
        }
        if recon is not None:
            out["test_metrics"] = {"recon": recon, "n": n}
        return out

    def test_pair_choices(self) -> None:
        meta = self.meta
        shipped = {
            "d_vae": meta("vae"),
            "d_ae": meta("ae"),
            "f_vae": meta("vae", "fmnist", 16),
            "f_ae": meta("ae", "fmnist", 16),
        }
        c = cmp.pair_choices(shipped, ["digits", "fmnist"], "fmnist", 16)
        assert (
            c.names == ["d_vae / d_ae", "f_vae / f_ae"]
            and c.match == "f_vae / f_ae"
            and c.best == "f_vae / f_ae"
        )
        c = cmp.pair_choices(shipped, ["digits"], "fmnist", 16)  # that dataset is not on this machine
        assert c.names == ["d_vae / d_ae"] and c.match is None and c.best == "d_vae / d_ae"
        assert cmp.pair_choices({}, ["digits"], "digits", 2) == cmp.PairChoices([], None, None, None)

    def test_the_best_pair_has_the_largest_reconstruction_gap_on_the_current_dataset(self) -> None:
        """The workshop after minute 9: the d = 2 model is current, but the d = 16 pair makes the point."""
        meta = self.meta
        shipped = {
            "f2_vae": meta("vae", "fmnist", 2, recon=252.96),
            "f2_ae": meta("ae", "fmnist", 2, recon=251.35),
            "f16_vae": meta("vae", "fmnist", 16, recon=227.55),
            "f16_ae": meta("ae", "fmnist", 16, recon=213.01),
            "d_vae": meta("vae", "digits", 2, recon=50.0),
            "d_ae": meta("ae", "digits", 2, recon=20.0),  # a larger gap, but on another dataset
        }
        c = cmp.pair_choices(shipped, ["digits", "fmnist"], "fmnist", 2)
        assert c.match == "f2_vae / f2_ae" and c.best == "f16_vae / f16_ae"
        assert c.gap == pytest.approx(227.55 - 213.01)
        assert cmp.pair_choices(shipped, ["digits", "fmnist"], "digits", 2).best == "d_vae / d_ae"
        assert (
            cmp.pair_choices(shipped, ["digits", "fmnist"], "mnist", 2).best == "d_vae / d_ae"
        )  # none here: all
        # without test metrics a pair ranks last; among those, the larger latent space first
        bare = {k: {kk: vv for kk, vv in v.items() if kk != "test_metrics"} for k, v in shipped.items()}
        c = cmp.pair_choices(
            {**bare, "f2_vae": shipped["f2_vae"], "f2_ae": shipped["f2_ae"]}, ["fmnist"], "fmnist", 16
        )
        assert c.best == "f2_vae / f2_ae" and c.gap == pytest.approx(252.96 - 251.35)
        c = cmp.pair_choices(bare, ["fmnist"], "fmnist", 2)
        assert c.best == "f16_vae / f16_ae" and c.gap is None

    def test_recon_gap_reads_the_checkpoints_test_metrics(self) -> None:
        meta = self.meta
        assert cmp.recon_gap(meta("vae", recon=30.0), meta("ae", recon=25.5)) == pytest.approx(4.5)
        assert cmp.recon_gap(meta("vae", recon=30.0), meta("ae")) is None  # no metrics
        assert (
            cmp.recon_gap(meta("vae", recon=30.0), meta("ae", recon=25.0, n=7)) is None
        )  # other test images

    def test_the_shipped_fmnist_pairs_gaps_match_the_workshop_figures(self) -> None:
        ck = ROOT / "checkpoints"
        names = ["fmnist_vae_z2", "fmnist_ae_z2", "fmnist_vae_z16", "fmnist_ae_z16"]
        if not all((ck / f"{n}.safetensors").exists() for n in names):
            pytest.skip("the Fashion-MNIST pairs are not shipped here")
        m = {n: read_metadata(ck / f"{n}.safetensors") for n in names}
        assert cmp.recon_gap(m["fmnist_vae_z2"], m["fmnist_ae_z2"]) == pytest.approx(
            252.96 - 251.35, abs=0.01
        )
        assert cmp.recon_gap(m["fmnist_vae_z16"], m["fmnist_ae_z16"]) == pytest.approx(
            227.55 - 213.01, abs=0.01
        )
        c = cmp.pair_choices(m, ["fashion-mnist"], "fashion-mnist", 2)
        assert c.best == "fmnist_vae_z16 / fmnist_ae_z16" and c.match == "fmnist_vae_z2 / fmnist_ae_z2"

    def test_only_a_2d_latent_space_is_drawn_as_its_own_plane(self) -> None:
        assert cmp.shows_latent_plane(2) and not cmp.shows_latent_plane(1) and not cmp.shows_latent_plane(16)

    def test_live_pair_models_have_fresh_keys(self) -> None:
        from types import SimpleNamespace

        mv = {"dataset": "digits", "model_config": {"latent_dim": 2}}
        pt = SimpleNamespace(metadata=lambda: (mv, dict(mv)), models=lambda: ("V", "A"))
        first, second = cmp.live_pair_models(pt, 1), cmp.live_pair_models(pt, 2)
        assert [(lb, m) for _, lb, m, _ in first] == [
            ("live VAE #1 (digits, z=2)", "V"),
            ("live AE #1 (digits, z=2)", "A"),
        ]
        assert first[0][0].startswith("compare-live:") and first[0][0].endswith(":vae")
        assert {k for k, *_ in first}.isdisjoint(k for k, *_ in second)


# ---------------------------------------------------------------------------- pair_side (the Compare page's figures of one model)
SHIPPED_PAIRS = [
    pytest.param(("digits_vae_z2", "digits_ae_z2", "digits"), id="digits"),
    pytest.param(("fmnist_vae_z16", "fmnist_ae_z16", "fashion-mnist"), id="fmnist", marks=needs_fashion),
]


@pytest.fixture(scope="module", params=SHIPPED_PAIRS)
def pair_sides(request):
    """A shipped pair on its test split: {kind: (checkpoint, with its metadata, computed without)} and x_test."""
    vae_name, ae_name, dataset = request.param
    x = load_dataset(dataset).x_test
    out = {}
    for kind, name in (("vae", vae_name), ("ae", ae_name)):
        ck = load_checkpoint(CKPT / f"{name}.safetensors")
        out[kind] = (ck, cmp.pair_side(ck.model, x, ck.metadata["test_metrics"]), cmp.pair_side(ck.model, x))
    return out, x


class TestPairSide:
    @pytest.mark.parametrize("kind", ["vae", "ae"])
    def test_shipped_metrics_are_used_and_agree_with_a_fresh_evaluation(self, pair_sides, kind: str) -> None:
        """The checkpoint's own test metrics are read (no decoder pass) and are what dataset_metrics gives now:
        stale shipped metadata would show up here."""
        sides, x = pair_sides
        ck, shipped, fresh = sides[kind]
        assert shipped.from_checkpoint is True and fresh.from_checkpoint is False
        tm = ck.metadata["test_metrics"]
        assert shipped.recon == float(tm["recon"])  # read, not recomputed
        assert shipped.recon == pytest.approx(fresh.recon, rel=1e-3)
        dm = dataset_metrics(ck.model, x)
        assert fresh.recon == pytest.approx(dm.recon, rel=1e-12)
        if kind == "vae":
            assert shipped.is_vae and fresh.is_vae
            assert shipped.kl == float(tm["kl"]) and shipped.kl == pytest.approx(fresh.kl, rel=1e-3)
            assert fresh.kl == pytest.approx(dm.kl, rel=1e-12) and fresh.kl > 0.5
        else:
            assert shipped.kl is None and fresh.kl is None
            assert shipped.is_vae is False and fresh.is_vae is False
        assert shipped.active_units == fresh.active_units == tm["active_units"] == dm.active_units
        assert shipped.latent_dim == fresh.latent_dim == ck.config.latent_dim
        if kind == "vae":  # the KL per dimension sums to the KL term (a separate fact from activity)
            assert shipped.kl_per_dim.shape == (ck.config.latent_dim,) and np.all(shipped.kl_per_dim >= 0)
            assert float(shipped.kl_per_dim.sum()) == pytest.approx(dm.kl, rel=1e-4)
        else:
            assert shipped.kl_per_dim is None

    @pytest.mark.parametrize("kind", ["vae", "ae"])
    def test_codes_and_prior_match_are_the_models_own(self, pair_sides, kind: str) -> None:
        sides, x = pair_sides
        ck, side, fresh = sides[kind]
        mu, sigma = encode(ck.model, x)
        assert (sigma is None) == (kind == "ae")
        assert side.mu.dtype == np.float32 and side.mu.shape == (x.shape[0], ck.config.latent_dim)
        np.testing.assert_array_equal(side.mu, mu.float().numpy())
        np.testing.assert_array_equal(fresh.mu, side.mu)
        pm = cmp.prior_match(ck.model, x)
        for got in (side.prior, fresh.prior):
            assert got.moment_kl == pytest.approx(pm.moment_kl, rel=1e-12)
            np.testing.assert_allclose(got.mean, pm.mean, rtol=0, atol=1e-12)
            np.testing.assert_allclose(got.std, pm.std, rtol=0, atol=1e-12)
            np.testing.assert_allclose(got.kl_per_dim, pm.kl_per_dim, rtol=0, atol=1e-12)
            np.testing.assert_array_equal(got.active, pm.active)
        assert side.active_units == int(pm.active.sum())

    def test_the_vae_sits_closer_to_the_prior_than_the_ae(self, pair_sides) -> None:
        sides, _ = pair_sides
        vae, ae = sides["vae"][1], sides["ae"][1]
        assert vae.prior.moment_kl < 1.0 < ae.prior.moment_kl
        assert vae.recon > 0 and ae.recon > 0


@pytest.fixture(scope="module")
def digits_vae_ae():
    ds = load_dataset("digits")
    return ({k: load_checkpoint(CKPT / f"digits_{k}_z2.safetensors") for k in ("vae", "ae")}, ds.x_test)


class TestPairSideFallback:
    """Metadata that does not describe exactly these images, unbinarized, is not used: the figures are computed."""

    @pytest.mark.parametrize(
        "change",
        [
            pytest.param(lambda tm, n: {**tm, "n": n - 1}, id="fewer-images"),
            pytest.param(lambda tm, n: {**tm, "n": n + 1}, id="more-images"),
            pytest.param(lambda tm, n: {k: v for k, v in tm.items() if k != "n"}, id="no-n"),
            pytest.param(lambda tm, n: {**tm, "binarized": True}, id="binarized"),
            pytest.param(lambda tm, n: {k: v for k, v in tm.items() if k != "recon"}, id="no-recon"),
            pytest.param(lambda tm, n: {k: v for k, v in tm.items() if k != "kl"}, id="no-kl"),
            pytest.param(lambda tm, n: {}, id="empty"),
            pytest.param(lambda tm, n: None, id="none"),
        ],
    )
    def test_vae_falls_back_to_computing(self, digits_vae_ae, change) -> None:
        cks, x = digits_vae_ae
        ck = cks["vae"]
        tm = change(
            {**ck.metadata["test_metrics"], "recon": 999.0, "kl": 99.0}, int(x.shape[0])
        )  # wrong on purpose
        side = cmp.pair_side(ck.model, x, tm)
        dm = dataset_metrics(ck.model, x)
        assert side.from_checkpoint is False
        assert side.recon == pytest.approx(dm.recon, rel=1e-12) and side.kl == pytest.approx(dm.kl, rel=1e-12)
        assert side.recon < 100 and side.kl < 10

    def test_matching_metadata_is_taken_as_is(self, digits_vae_ae) -> None:
        """The control for the fallbacks: the same doctored figures, with n right and unbinarized, are what is reported."""
        cks, x = digits_vae_ae
        tm = {**cks["vae"].metadata["test_metrics"], "recon": 999.0, "kl": 99.0, "binarized": False}
        side = cmp.pair_side(cks["vae"].model, x, tm)
        assert side.from_checkpoint is True and side.recon == 999.0 and side.kl == 99.0
        assert side.active_units == 2 and side.latent_dim == 2  # still from the encodings

    def test_an_ae_needs_no_kl_and_reports_none(self, digits_vae_ae) -> None:
        cks, x = digits_vae_ae
        ae, n = cks["ae"], int(x.shape[0])
        tm = {k: v for k, v in ae.metadata["test_metrics"].items() if k != "kl"}
        side = cmp.pair_side(ae.model, x, {**tm, "recon": 777.0})
        assert side.from_checkpoint is True and side.recon == 777.0 and side.kl is None and not side.is_vae
        side = cmp.pair_side(ae.model, x, {**tm, "recon": 777.0, "n": n - 1})
        assert side.from_checkpoint is False and side.kl is None
        assert side.recon == pytest.approx(dataset_metrics(ae.model, x).recon, rel=1e-12)
