"""*The code* (vae_core.standalone): the generated PyTorch code is valid, short, needs only torch and safetensors, and
computes what the lab computes. It runs in a subprocess that cannot import vae_core, on a checkpoint the lab wrote,
with the lab's batch and noise ε passed in: in float64 its loss, its gradient and its log p̂_K(x) equal the lab's
(vae_core.train.elbo_objective, vae_core.elbo.iwae_bound, vae_core.pitfalls' mistaken objectives) within 1e-9.
The Train, ELBO and Pitfalls pages show it in an expander, in English and in Chinese."""

from __future__ import annotations

import ast
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from streamlit.testing.v1 import AppTest

from lab_pages.model_store import load_shipped
from tests.conftest import ROOT
from vae_core import pitfalls as pf
from vae_core import standalone as sa
from vae_core.checkpoint import load_checkpoint, save_checkpoint
from vae_core.data import to_float
from vae_core.elbo import beta_schedule, iwae_bound, kl_per_dim
from vae_core.identity import image_report
from vae_core.models import ModelConfig, build_model
from vae_core.train import TrainConfig, elbo_objective

RTOL = 1e-9  # relative, float64
K = 40  # importance samples: decoded in one chunk by iwae_bound, so its ε is one draw of (K, B, z)
BATCH = 16

# Runs in a subprocess over case folders, each holding generated.py, model.safetensors (written by the lab),
# inputs.safetensors (x, ε) and spec.json; it writes out.json and grads.safetensors there. One interpreter for every
# case: torch is imported once. The generated code must not lean on the lab: vae_core is made unimportable (the venv
# has it installed too), and PYTHONPATH is unset.
DRIVER = r"""
import contextlib, importlib.util, io, json, runpy, sys
sys.modules["vae_core"] = None
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file

for i, folder in enumerate(map(Path, sys.argv[1:])):
    spec = json.loads((folder / "spec.json").read_text())
    if spec.get("script"):  # python generated.py model.safetensors
        sys.argv, text = ["generated.py", str(folder / "model.safetensors")], io.StringIO()
        with contextlib.redirect_stdout(text):
            runpy.run_path(str(folder / "generated.py"), run_name="__main__")
        (folder / "out.json").write_text(json.dumps({"stdout": text.getvalue()}))
        continue
    mod = importlib.util.spec_from_file_location(f"generated{i}", folder / "generated.py")
    g = importlib.util.module_from_spec(mod)
    mod.loader.exec_module(g)
    t = load_file(str(folder / "inputs.safetensors"))
    model = (g.VAE if spec["kind"] == "vae" else g.AE)().to(getattr(torch, spec["dtype"]))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))  # strict: every tensor name of the lab's
    x, out, grads = t["x"], {}, {}
    if spec["kind"] == "vae":
        out["iwae"] = g.log_p_hat(model, x, t["eps_k"]).tolist()
    if spec.get("iwae_only"):
        (folder / "out.json").write_text(json.dumps(out))
        continue
    args = (model, x, t["eps"]) if spec["kind"] == "vae" else (model, x)
    kw = {"step": spec["step"]} if spec.get("step") is not None else {}
    for name, extra in (("loss", {}), ("mistaken", {"mistaken": True})):
        if name == "mistaken" and not spec.get("mistaken"):
            continue
        model.zero_grad()
        loss = g.loss_function(*args, **kw, **extra)
        loss.backward()
        out[name] = loss.item()
        grads.update({f"{name}/{k}": p.grad for k, p in model.named_parameters() if p.grad is not None})
    save_file(grads, str(folder / "grads.safetensors"))
    out["step_loss"] = g.train_step(model, torch.optim.Adam(model.parameters(), lr=g.LR), *args[1:], **kw)
    (folder / "out.json").write_text(json.dumps(out))
"""


def clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH (nothing of the worktree on the path)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run_driver(folders: list[Path]) -> None:
    """Run DRIVER once over the case folders (see there)."""
    r = subprocess.run(
        [sys.executable, "-c", DRIVER, *map(str, folders)],
        cwd=folders[0].parent,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]


def write_case(folder: Path, code: str, inputs: dict[str, torch.Tensor], **spec) -> Path:
    """A case folder for DRIVER: the code, the inputs, the spec (model.safetensors is written by the lab)."""
    folder.mkdir(exist_ok=True)
    (folder / "generated.py").write_text(code, encoding="utf-8")
    save_file({k: v.contiguous() for k, v in inputs.items()}, str(folder / "inputs.safetensors"))
    (folder / "spec.json").write_text(json.dumps({"dtype": "float64", **spec}))
    return folder


def results(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """What DRIVER wrote for a case: (its numbers, its gradients)."""
    grads = folder / "grads.safetensors"
    return json.loads((folder / "out.json").read_text()), load_file(str(grads)) if grads.exists() else {}


def close(a: float, b: float, rtol: float = RTOL) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b))


def lab_grads(loss: torch.Tensor, model, prefix: str) -> dict[str, torch.Tensor]:
    """d loss / d θ for each parameter of the lab's model that the loss reaches, keyed as the driver keys them."""
    named = list(model.named_parameters())
    gs = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    return {f"{prefix}/{k}": g for (k, _), g in zip(named, gs) if g is not None}


def assert_same_grads(ours: dict[str, torch.Tensor], lab: dict[str, torch.Tensor]) -> None:
    assert set(ours) == set(lab), set(ours) ^ set(lab)
    for k, g in lab.items():
        err = float((ours[k] - g).norm())
        assert err <= RTOL * max(float(g.norm()), 1e-300), (k, err, float(g.norm()))


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def lab_model(cfg: ModelConfig, seed: int, path: Path):
    """A model of ``cfg`` with seeded weights, written as a lab checkpoint to ``path`` and read back, in float64."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    with (
        torch.no_grad()
    ):  # a spread of posterior widths and means, as a trained model has (init gives ~N(0, 1))
        if cfg.kind == "vae":
            model.encoder.logvar.bias.copy_(torch.linspace(-3, 1, cfg.latent_dim))
            model.encoder.mu.bias.copy_(torch.linspace(-1.5, 1.5, cfg.latent_dim))
    save_checkpoint(path, model)
    return load_checkpoint(path).model.double()


# ====================================================================== the text
CONFIGS = [
    ModelConfig(kind=kind, likelihood=lik, hidden=hid, activation=act)
    for kind, lik, (hid, act) in itertools.product(
        ("vae", "ae"),
        ("bernoulli", "continuous_bernoulli", "gaussian", "laplace"),
        (((400,), "relu"), ((512, 256), "tanh"), ((), "gelu"), ((1024, 512), "elu")),
    )
]
TRAIN_CONFIGS = [
    TrainConfig(beta=b, free_bits=fb, warmup_steps=w, binarize=bz, lr=lr)
    for b, fb, w, bz, lr in (
        (1.0, 0.0, 0, False, 1e-3),
        (4.0, 0.5, 1000, True, 3e-4),
        (0.25, 0.0, 10, False, 1e-2),
    )
]
SNIPPETS = [sa.train_code(m, t) for m in CONFIGS for t in TRAIN_CONFIGS] + [
    sa.pitfall_code(s) for s in pf.SECTIONS
]
ALLOWED_IMPORTS = {"math", "sys", "torch", "torch.nn.functional", "torch.nn", "safetensors.torch"}


def ruff() -> str | None:
    """The project's ruff (beside this interpreter), else one on PATH, else None."""
    here = Path(sys.executable).parent / "ruff"
    return str(here) if here.exists() else shutil.which("ruff")


class TestTheText:
    def test_it_compiles_is_short_and_imports_only_torch_and_safetensors(self) -> None:
        for s in SNIPPETS:
            tree = ast.parse(compile(s.code, s.file_name, "exec", ast.PyCF_ONLY_AST))
            n = len(s.code.splitlines())
            assert n <= sa.MAX_LINES, (s.file_name, n)
            mods = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
            mods |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
            assert mods <= ALLOWED_IMPORTS, mods - ALLOWED_IMPORTS
            assert "vae_core" not in s.code and s.file_name.isascii() and s.file_name.endswith(".py")
        default = sa.train_code(ModelConfig(), TrainConfig())
        assert 55 <= len(default.code.splitlines()) <= 75  # "about 60 lines" for the pytorch/examples recipe

    def test_ruff_check_and_format_accept_it(self, tmp_path) -> None:
        exe = ruff()
        if exe is None:
            pytest.skip("ruff is not installed here")
        for i, s in enumerate(SNIPPETS):
            (tmp_path / f"g{i}_{s.file_name}").write_text(s.code, encoding="utf-8")
        cfg = str(ROOT / "pyproject.toml")
        for cmd in ([exe, "check", "--config", cfg, "."], [exe, "format", "--check", "--config", cfg, "."]):
            r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
            assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]

    def test_it_follows_the_config(self) -> None:
        base = sa.train_code(ModelConfig(), TrainConfig()).code
        assert "nn.ReLU()" in base and "binary_cross_entropy_with_logits" in base
        assert (
            "BETA" not in base
            and "FREE_BITS" not in base
            and "WARMUP" not in base
            and "bernoulli(x)" not in base
        )
        gauss = sa.train_code(ModelConfig(likelihood="gaussian", obs_std=0.3), TrainConfig()).code
        assert "SCALE = 0.3" in gauss and "F.mse_loss" in gauss
        lap = sa.train_code(
            ModelConfig(likelihood="laplace", obs_std=0.05, activation="elu"), TrainConfig()
        ).code
        assert "SCALE = 0.05" in lap and "F.l1_loss" in lap and "nn.ELU()" in lap
        full = sa.train_code(
            ModelConfig(), TrainConfig(beta=4, free_bits=0.5, warmup_steps=7, binarize=True)
        ).code
        assert "BETA, FREE_BITS, WARMUP_STEPS = 4.0, 0.5, 7" in full and "torch.bernoulli(x)" in full
        ae = sa.train_code(ModelConfig(kind="ae"), TrainConfig()).code
        assert "class AE" in ae and "logvar" not in ae and "log_p_hat" not in ae
        assert (
            "LR, BATCH_SIZE, K = 0.001, 128, 5000  #"
            in sa.train_code(ModelConfig(), TrainConfig(), k=5000).code
        )
        with pytest.raises(ValueError):
            sa.train_code(ModelConfig(), TrainConfig(), k=0)

    def test_each_pitfall_shows_its_mistaken_line_after_the_correct_one(self) -> None:
        for key, (slot, wrong) in sa.MISTAKEN_LINES.items():
            lines = sa.pitfall_code(key).code.splitlines()
            i = lines.index("    if mistaken:  # the pitfall")
            assert lines[i - 1].strip().startswith(slot + " =")  # the correct line, right above
            assert lines[i + 1].strip() == wrong.format(d=64)  # the mistaken one, right below
        with pytest.raises(ValueError):
            sa.pitfall_code("nope")

    def test_a_checkpoint_without_its_train_record_gets_the_defaults(self) -> None:
        cfg = ModelConfig()
        assert sa.checkpoint_code(cfg, {}, 10) == sa.train_code(cfg, TrainConfig(dataset="digits"), 10)
        bad = {"train_config": {"beta": -3}, "dataset": "mnist"}  # invalid: the defaults, not an error
        assert sa.checkpoint_code(cfg, bad, 10) == sa.train_code(cfg, TrainConfig(dataset="mnist"), 10)
        rec = {"train_config": TrainConfig(beta=2.0, dataset="digits").to_dict()}
        assert "BETA = 2.0" in sa.checkpoint_code(cfg, rec, 10).code


# ====================================================================== the numbers, against the lab's
# (model config, (beta, free bits on?, warm-up steps), the step): every likelihood; β ≠ 1, free bits, warm-up; and
# the AE the Train page trains too. Free bits at the median of the per-dimension KL: the floor binds on half of them.
DG = dict(input_dim=64, image_shape=(1, 8, 8), latent_dim=6)
CASES = {
    "bernoulli": (ModelConfig(**DG), (1.0, False, 0), 0),
    "cb_beta_freebits_warmup": (
        ModelConfig(**DG, likelihood="continuous_bernoulli", hidden=(48, 32), activation="tanh"),
        (3.0, True, 20),
        6,
    ),
    "gaussian_beta_freebits": (
        ModelConfig(**DG, likelihood="gaussian", obs_std=0.2, activation="gelu"),
        (0.5, True, 0),
        0,
    ),
    "laplace_warmup": (
        ModelConfig(**DG, likelihood="laplace", obs_std=0.05, hidden=(), activation="elu"),
        (2.0, False, 9),
        3,
    ),
    "ae_gaussian": (ModelConfig(**DG, kind="ae", likelihood="gaussian", obs_std=0.3), (0.0, False, 0), 0),
    "ae_bernoulli": (ModelConfig(**DG, kind="ae", hidden=(32, 16)), (0.0, False, 0), 0),
}


def train_case(name: str, root: Path, x: torch.Tensor) -> tuple[Path, dict]:
    """A Train-page case: its folder for DRIVER and the lab's numbers (float64)."""
    folder = root / name
    folder.mkdir()
    mc, (beta_setting, free_bits_on, warmup), step = CASES[name]
    model = lab_model(mc, seed=3, path=folder / "model.safetensors")
    tc = TrainConfig(beta=beta_setting, warmup_steps=warmup)
    lab: dict = {"free_bits_binds": None}
    inputs = {"x": x}
    if mc.kind == "vae":
        mu, logvar = model.encode(x)
        kl_d = kl_per_dim(mu, logvar).mean(0)  # (z,) nats
        if free_bits_on:  # at the median, the floor binds on some dimensions and not on others
            tc = TrainConfig(beta=beta_setting, warmup_steps=warmup, free_bits=kl_d.median().item())
            lab["free_bits_binds"] = bool((kl_d < tc.free_bits).any() and (kl_d > tc.free_bits).any())
        beta = beta_schedule(step, tc.beta, tc.warmup_steps)
        lab["beta"] = beta
        inputs["eps"] = torch.randn((BATCH, mc.latent_dim), dtype=torch.float64, generator=generator(11))
        inputs["eps_k"] = torch.randn((K, BATCH, mc.latent_dim), dtype=torch.float64, generator=generator(12))
        terms = elbo_objective(model, x, beta, tc.free_bits, generator(11))  # draws the same ε
        with torch.no_grad():
            lab["iwae"] = iwae_bound(x, mu, logvar, model.decode, K, mc.likelihood, mc.obs_std, generator(12))
    else:
        terms = elbo_objective(model, x, 0.0, 0.0, generator(11))
    lab["loss"] = terms.loss.item()
    lab["grads"] = lab_grads(terms.loss, model, "loss")
    lab["tc"] = tc
    spec = {"kind": mc.kind, "step": step if tc.warmup_steps else None}
    write_case(folder, sa.train_code(mc, tc, k=K).code, inputs, **spec)
    return folder, lab


def pitfall_case(section: str, root: Path, x: torch.Tensor) -> tuple[Path, dict]:
    """A Pitfalls case: its folder for DRIVER and the lab's correct and mistaken losses (float64)."""
    folder = root / section
    folder.mkdir()
    correct_cfg, mistaken_cfg, tc = sa.pitfall_configs(section)
    model = lab_model(correct_cfg, seed=5, path=folder / "model.safetensors")
    zd = correct_cfg.latent_dim
    eps = torch.randn((BATCH, zd), dtype=torch.float64, generator=generator(21))
    eps_k = torch.randn((K, BATCH, zd), dtype=torch.float64, generator=generator(22))
    beta = beta_schedule(0, tc.beta, tc.warmup_steps)
    good = elbo_objective(model, x, beta, tc.free_bits, generator(21))
    if section in pf.MISTAKES:
        bad_model = model
        bad = pf.mistaken_objective(section)(model, x, beta, tc.free_bits, generator(21))
    else:  # bce_grey: the same weights under the mistaken run's likelihood
        bad_model = build_model(mistaken_cfg).double()
        bad_model.load_state_dict(model.state_dict())
        bad = elbo_objective(bad_model, x, beta, tc.free_bits, generator(21))
    lab = {
        "loss": good.loss.item(),
        "mistaken": bad.loss.item(),
        "grads": lab_grads(good.loss, model, "loss") | lab_grads(bad.loss, bad_model, "mistaken"),
        "params": [k for k, _ in model.named_parameters()],
    }
    code = sa.pitfall_code(section, k=K).code
    write_case(folder, code, {"x": x, "eps": eps, "eps_k": eps_k}, kind="vae", mistaken=True)
    return folder, lab


ELBO_PAGE_K = 100


def elbo_page_case(root: Path, digits) -> tuple[Path, dict]:
    """The ELBO page's log p̂_K(x) for its first test image, as the page computes it (float32, image_report's
    first K draws); the generated code gets those draws."""
    folder = root / "elbo_page"
    folder.mkdir()
    lm = load_shipped("digits_vae_z2")
    r = image_report(lm.model, digits.x_test[0], k_max=ELBO_PAGE_K, seed=0)
    save_checkpoint(folder / "model.safetensors", lm.model)
    eps_k = torch.randn((ELBO_PAGE_K, 1, lm.config.latent_dim), generator=generator(0))  # image_report's ε
    code = sa.checkpoint_code(lm.config, lm.metadata, ELBO_PAGE_K).code
    inputs = {"x": to_float(digits.x_test[:1]), "eps_k": eps_k}
    write_case(folder, code, inputs, kind="vae", dtype="float32", iwae_only=True)
    return folder, {"iwae": r.log_px_hat(ELBO_PAGE_K)}


def script_case(root: Path) -> tuple[Path, dict]:
    """The generated file run as a script on a lab checkpoint: ``python generated.py model.safetensors``."""
    folder = root / "script"
    folder.mkdir()
    mc = ModelConfig(input_dim=64, image_shape=(1, 8, 8), latent_dim=4, hidden=(32,), likelihood="laplace")
    save_checkpoint(folder / "model.safetensors", build_model(mc))
    code = sa.train_code(mc, TrainConfig(dataset="digits", warmup_steps=5), k=20).code
    write_case(folder, code, {}, kind="vae", script=True)
    return folder, {}


@pytest.fixture(scope="module")
def runs(digits, tmp_path_factory) -> dict[str, tuple[dict, dict, dict[str, torch.Tensor]]]:
    """Every case, run by the lab here and by its generated code in one subprocess: {case: (lab, out, grads)}."""
    root = tmp_path_factory.mktemp("standalone")
    x = to_float(digits.x_test[:BATCH]).double()  # grey pixels in [0, 1]
    cases = {name: train_case(name, root, x) for name in CASES}
    cases |= {f"pitfall_{s}": pitfall_case(s, root, x) for s in pf.SECTIONS}
    cases["elbo_page"] = elbo_page_case(root, digits)
    cases["script"] = script_case(root)
    run_driver([folder for folder, _ in cases.values()])
    return {name: (lab, *results(folder)) for name, (folder, lab) in cases.items()}


class TestAgainstTheLab:
    @pytest.mark.parametrize("case", list(CASES))
    def test_loss_gradient_and_iwae(self, case, runs) -> None:
        lab, out, grads = runs[case]
        mc, (beta_setting, free_bits_on, warmup), step = CASES[case]
        assert close(out["loss"], lab["loss"]), (out["loss"], lab["loss"])
        assert close(out["step_loss"], lab["loss"])  # train_step minimises that loss
        assert_same_grads(grads, lab["grads"])
        if mc.kind == "vae":
            assert len(out["iwae"]) == BATCH
            for a, b in zip(out["iwae"], lab["iwae"].tolist()):
                assert close(a, b), (a, b)
            assert lab["free_bits_binds"] is (True if free_bits_on else None)
            assert warmup == 0 or lab["beta"] < beta_setting  # the warm-up is under way at this step
        else:
            assert "iwae" not in out  # an AE has no q(z|x): no bound to estimate

    @pytest.mark.parametrize("section", list(pf.SECTIONS))
    def test_each_pitfall_equals_its_mistaken_objective(self, section, runs) -> None:
        lab, out, grads = runs[f"pitfall_{section}"]
        assert close(out["loss"], lab["loss"]), (out["loss"], lab["loss"])
        assert close(out["mistaken"], lab["mistaken"]), (out["mistaken"], lab["mistaken"])
        assert_same_grads(grads, lab["grads"])
        if section == "detached_z":  # the same value, but the reconstruction sends the encoder no gradient
            assert close(out["mistaken"], out["loss"])
            assert any(not torch.allclose(grads[f"loss/{k}"], grads[f"mistaken/{k}"]) for k in lab["params"])
        else:
            assert not close(out["mistaken"], out["loss"], 1e-6)

    def test_the_elbo_page_number(self, runs) -> None:
        """log_p_hat on the ELBO page's K draws is the log p̂_K(x) the page shows (float32, as the page computes)."""
        lab, out, _ = runs["elbo_page"]
        assert close(out["iwae"][0], lab["iwae"], 1e-5), (out["iwae"], lab["iwae"])

    def test_the_file_runs_as_a_script_on_a_lab_checkpoint(self, runs) -> None:
        _, out, _ = runs["script"]
        lines = dict(line.split(" ", 1) for line in out["stdout"].splitlines())
        assert set(lines) == {"loss", "log"}  # "loss …" and "log p_K(x) …"
        assert math.isfinite(float(lines["loss"])) and math.isfinite(float(lines["log"].split()[-1]))


# ====================================================================== the pages
def code_block(at: AppTest, label: str) -> str:
    """The code shown in the expander titled ``label`` (there is exactly one)."""
    exps = [e for e in at.expander if e.label == label]
    assert len(exps) == 1, [e.label for e in at.expander]
    codes = [c.value for c in exps[0].code]
    assert len(codes) == 1
    compile(codes[0], "shown.py", "exec")
    return codes[0] + "\n"  # st.code drops the last newline


LABELS = {"en": "The code", "zh": "代码"}


@pytest.mark.usefixtures("fork_server", "one_torch_thread")
@pytest.mark.parametrize("lang", list(LABELS))
def test_train_page_shows_the_code_of_its_settings(lang) -> None:
    at = AppTest.from_file(str(ROOT / "lab_pages" / "train.py"), default_timeout=120)
    at.query_params["lang"] = lang
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    first = code_block(at, LABELS[lang])
    assert "binary_cross_entropy_with_logits" in first and "class VAE" in first
    at.selectbox(key="train_likelihood").set_value("gaussian").run()
    second = code_block(at, LABELS[lang])
    assert second != first and "F.mse_loss" in second
    at.number_input(key="train_beta").set_value(4.0).run()
    assert "BETA = 4.0" in code_block(at, LABELS[lang])
    at.radio(key="train_kind").set_value("AE").run()
    assert "class AE" in code_block(at, LABELS[lang])
    caption = " ".join(c.value for c in at.expander[-1].caption)
    assert "PyTorch" in caption and any("\u4e00" <= ch <= "\u9fff" for ch in caption) == (lang == "zh")
    assert at.get("download_button")


@pytest.mark.parametrize("lang", list(LABELS))
def test_elbo_page_shows_the_code_of_its_model_and_k(lang) -> None:
    lm = load_shipped("digits_vae_z2")
    at = AppTest.from_file(str(ROOT / "lab_pages" / "elbo.py"), default_timeout=180)
    at.query_params["lang"] = lang
    at.session_state["current_model"] = lm
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    first = code_block(at, LABELS[lang])
    assert first == sa.checkpoint_code(lm.config, lm.metadata, 1000).code
    at.select_slider(key="elbo_k").set_value(100).run()
    second = code_block(at, LABELS[lang])
    assert second == sa.checkpoint_code(lm.config, lm.metadata, 100).code and second != first
    caption = " ".join(c.value for c in at.expander[-1].caption)
    assert "K = 100" in caption


@pytest.mark.parametrize("lang", list(LABELS))
def test_pitfalls_page_shows_the_code_of_the_chosen_pitfall(lang) -> None:
    at = AppTest.from_file(str(ROOT / "lab_pages" / "pitfalls.py"), default_timeout=60)
    at.query_params["lang"] = lang
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    pick = at.selectbox(key="pitfalls_code_section")
    assert len(pick.options) == len(pf.SECTIONS)
    first = code_block(at, LABELS[lang])
    assert first == sa.pitfall_code(list(pf.SECTIONS)[0]).code
    pick.set_value("kl_sign").run()
    second = code_block(at, LABELS[lang])
    assert second == sa.pitfall_code("kl_sign").code and second != first
    options = "".join(at.selectbox(key="pitfalls_code_section").options)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in options) == (lang == "zh")  # the titles are translated
