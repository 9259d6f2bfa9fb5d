"""The shipped checkpoints: each loads, rebuilds its model from its metadata, was made by the CLI
command it records, and reproduces its recorded test metrics (digits always; Fashion-MNIST where
the data is on the machine, as in CI). No IWAE here: the script's figures are checked for
consistency only, so the whole file runs in seconds."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]

from scripts import make_checkpoints as mk  # noqa: E402
from vae_core.checkpoint import load_checkpoint, read_metadata  # noqa: E402
from vae_core.data import dataset_available, load_dataset  # noqa: E402
from vae_core.evaluate import ELBO_SEED_OFFSET, dataset_metrics  # noqa: E402
from vae_core.models import ModelConfig, build_model  # noqa: E402
from vae_core.train import build_parser  # noqa: E402

CK = ROOT / "checkpoints"
NAMES = (
    "fmnist_vae_z2",
    "fmnist_vae_z16",
    "fmnist_ae_z2",
    "fmnist_ae_z16",
    "fmnist_betavae4_z16",
    "digits_vae_z2",
    "digits_ae_z2",
)
PAIRS = (
    ("fmnist_vae_z16", "fmnist_ae_z16"),
    ("fmnist_vae_z2", "fmnist_ae_z2"),
    ("digits_vae_z2", "digits_ae_z2"),
)
TOL = 0.5  # nats per image: re-evaluation on another machine/thread count differs by far less
REFERENCE_NEG_ELBO = 244.0  # the reference recipe after 10 epochs, nats per image (the figure)


def path_of(name: str) -> Path:
    return CK / f"{name}.safetensors"


def cli_args(meta: dict) -> tuple[list[str], object]:
    """The recorded command's arguments (after ``python -m vae_core.train``) and their parse."""
    words = shlex.split(meta["command"])
    assert words[:3] == ["python", "-m", "vae_core.train"], meta["command"]
    return words[3:], build_parser().parse_args(words[3:])


def needs_data(meta: dict) -> None:
    if not dataset_available(meta["dataset"]):
        pytest.skip(
            f"{meta['dataset']} is not on this machine (apt-get install dataset-fashion-mnist; "
            "CI installs it), so its test metrics cannot be recomputed here"
        )


@pytest.fixture(scope="module")
def metas() -> dict[str, dict]:
    return {n: read_metadata(path_of(n)) for n in NAMES if path_of(n).exists()}


def test_script_lists_exactly_the_shipped_names() -> None:
    assert set(mk.NAMES) == set(NAMES)
    assert {p for s in mk.SPECS if s.pair for p in (s.name, s.pair)} == {n for pair in PAIRS for n in pair}


@pytest.mark.parametrize("name", NAMES)
class TestEachCheckpoint:
    def test_file_exists_and_is_a_few_mb(self, name: str) -> None:
        p = path_of(name)
        assert p.exists(), f"{p} is missing: run scripts/make_checkpoints.py --only {name}"
        assert 10_000 < p.stat().st_size < 8_000_000

    def test_loads_and_rebuilds_from_metadata(self, name: str) -> None:
        ck = load_checkpoint(path_of(name))
        model = build_model(ModelConfig.from_dict(ck.metadata["model_config"]))
        model.load_state_dict(load_file(str(path_of(name))), strict=True)
        x = torch.rand(3, model.config.input_dim)
        with torch.no_grad():
            assert torch.equal(model.decode(model.encode(x)[0]), ck.model.decode(ck.model.encode(x)[0]))
        assert model.is_vae == ("_ae_" not in name)

    def test_name_matches_metadata(self, name: str, metas: dict) -> None:
        meta = metas[name]
        cfg, tc = meta["model_config"], meta["train_config"]
        assert meta["dataset"] == ("digits" if name.startswith("digits") else "fashion-mnist")
        assert name.endswith(f"_z{cfg['latent_dim']}")
        assert cfg["kind"] == ("ae" if "_ae_" in name else "vae")
        assert tc["beta"] == (4.0 if "betavae4" in name else 1.0)
        assert meta["state"] == "finished" and meta["epochs"] == tc["epochs"]

    def test_command_is_the_cli_and_the_scripts(self, name: str, metas: dict) -> None:
        meta = metas[name]
        assert meta["command"].startswith("python -m vae_core.train ")
        words, args = cli_args(meta)
        assert args.out == f"checkpoints/{name}"
        assert (args.model, args.latent, args.dataset) == (
            meta["model_config"]["kind"],
            meta["model_config"]["latent_dim"],
            meta["dataset"],
        )
        assert tuple(args.hidden) == tuple(meta["model_config"]["hidden"])
        assert (args.epochs, args.seed, args.batch_size) == (
            meta["train_config"]["epochs"],
            meta["train_config"]["seed"],
            meta["train_config"]["batch_size"],
        )
        spec = next(s for s in mk.SPECS if s.name == name)
        assert words == [*spec.args, "--out", f"checkpoints/{name}"], "script and file disagree: regenerate"

    def test_history_is_recorded(self, name: str, metas: dict) -> None:
        h = metas[name]["history"]
        assert len(h["step"]) > 10 and len(h["loss"]) == len(h["step"])
        assert h["step"][-1] == metas[name]["steps"]
        assert len(h["eval_step"]) == metas[name]["epochs"]  # one evaluation per epoch, all kept
        assert h["test_neg_elbo"][-1] < h["test_neg_elbo"][0]  # it learned

    def test_recorded_metrics_are_complete(self, name: str, metas: dict) -> None:
        m = metas[name]["test_metrics"]
        z = metas[name]["model_config"]["latent_dim"]
        assert m["n"] == (359 if name.startswith("digits") else 10_000)
        assert m["neg_elbo"] == pytest.approx(m["recon"] + m["kl"], abs=1e-6)
        assert 0 < m["active_units"] <= z
        if "_ae_" in name:
            assert m["kl"] == 0.0 and "iwae_nll" not in m
            return
        assert m["iwae_k"] == 1000 and m["iwae_n"] == (359 if name.startswith("digits") else 1000)
        # the K=1000 bound is tighter than the ELBO on the same images
        assert m["iwae_nll"] < m["iwae_subset_neg_elbo"]
        if z == 2:  # and for z=2 it meets log p(x) by quadrature
            assert m["quad_neg_elbo"] > m["quad_iwae_nll"] > m["quad_nll"] - 0.05
            assert m["quad_iwae_nll"] - m["quad_nll"] < (0.25 if name.startswith("digits") else 1.0)

    def test_reproduces_recorded_test_metrics(self, name: str, metas: dict) -> None:
        meta = metas[name]
        needs_data(meta)
        ck = load_checkpoint(path_of(name))
        ds = load_dataset(meta["dataset"], download=False)
        rec = meta["test_metrics"]
        res = dataset_metrics(ck.model, ds.x_test, seed=rec["eval_seed"] - ELBO_SEED_OFFSET)
        assert res.n == rec["n"]
        assert res.neg_elbo == pytest.approx(rec["neg_elbo"], abs=TOL)
        assert res.recon == pytest.approx(rec["recon"], abs=TOL)
        assert res.kl == pytest.approx(rec["kl"], abs=TOL)
        assert abs(res.active_units - rec["active_units"]) <= 1


@pytest.mark.parametrize("vae_name, ae_name", PAIRS)
def test_pairs_share_architecture_seed_and_batches(vae_name: str, ae_name: str, metas: dict) -> None:
    v, a = metas[vae_name], metas[ae_name]
    assert {**v["model_config"], "kind": None} == {**a["model_config"], "kind": None}
    assert v["train_config"] == a["train_config"]  # same seed, epochs, batch size, lr: same batch order
    vw, _ = cli_args(v)
    aw, _ = cli_args(a)
    assert [w for w in vw if w not in ("vae", vae_name, f"checkpoints/{vae_name}")] == [
        w for w in aw if w not in ("ae", ae_name, f"checkpoints/{ae_name}")
    ]
    # the same seed gives the same initial weights in every layer the twins share
    init = {}
    for meta in (v, a):
        torch.manual_seed(meta["train_config"]["seed"])
        init[meta["model_config"]["kind"]] = build_model(
            ModelConfig.from_dict(meta["model_config"])
        ).state_dict()
    assert set(init["vae"]) - set(init["ae"]) == {"encoder.logvar.weight", "encoder.logvar.bias"}
    for key, t in init["ae"].items():
        assert torch.equal(t, init["vae"][key]), key


def test_z16_vae_beats_the_reference_recipe_clearly(metas: dict) -> None:
    m = metas["fmnist_vae_z16"]["test_metrics"]
    assert m["neg_elbo"] < REFERENCE_NEG_ELBO - 4.0, f"test -ELBO {m['neg_elbo']:.2f} nats/image"
    ref = json.loads((CK / "reference_recipe.json").read_text())  # the recipe as run on this project's CLI
    assert ref["epochs"] == 10 and ref["test_metrics"]["neg_elbo"] == pytest.approx(
        REFERENCE_NEG_ELBO, abs=3.0
    )
    assert m["neg_elbo"] < ref["test_metrics"]["neg_elbo"] - 4.0
    assert m["iwae_nll"] < ref["test_metrics"]["iwae_nll"] - 4.0  # same images, same K
    assert m["active_units"] >= 4  # a Bernoulli VAE on Fashion-MNIST switches off some dims; not all


def test_readme_lists_every_model_with_its_figures(metas: dict) -> None:
    text = (CK / "README.md").read_text(encoding="utf-8")
    for name in NAMES:
        m = metas[name]["test_metrics"]
        assert f"`{name}`" in text
        assert f"{m['recon']:.2f}" in text
        if "_ae_" not in name:
            assert f"{m['neg_elbo']:.2f}" in text and f"{m['iwae_nll']:.2f}" in text
        assert metas[name]["command"] in text
    assert "K=1000" in text and "reference recipe" in text.lower()


def test_digits_vae_latent_map_separates_classes(metas: dict) -> None:
    """The offline default's 2-D latent map shows class structure: 5-NN on mu beats chance by far."""
    from sklearn.neighbors import KNeighborsClassifier

    ck = load_checkpoint(path_of("digits_vae_z2"))
    ds = load_dataset("digits")
    with torch.no_grad():
        mu_tr = ck.model.encode(ds.x_train.float() / 255)[0].numpy()
        mu_te = ck.model.encode(ds.x_test.float() / 255)[0].numpy()
    acc = KNeighborsClassifier(5).fit(mu_tr, ds.y_train.numpy()).score(mu_te, ds.y_test.numpy())
    assert acc > 0.75, f"5-NN accuracy on the 2-D means is {acc:.2f}"
