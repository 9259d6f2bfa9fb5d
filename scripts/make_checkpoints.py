"""Regenerate every shipped checkpoint and checkpoints/README.md from scratch: one command.

    .venv/bin/python scripts/make_checkpoints.py                 # train all 7, evaluate, write the README
    .venv/bin/python scripts/make_checkpoints.py --skip-train    # re-evaluate the files there, rewrite the README
    .venv/bin/python scripts/make_checkpoints.py --readme-only   # rewrite the README from the recorded figures
    .venv/bin/python scripts/make_checkpoints.py --only digits_vae_z2 --only digits_ae_z2
    .venv/bin/python scripts/make_checkpoints.py --epochs-scale 0.05 --out-dir /tmp/ck   # smoke run

Every model is trained by the project's own CLI, run as a subprocess
(``python -m vae_core.train ...``), so the command recorded in each checkpoint's metadata is
the one that really made it. AE/VAE pairs get identical arguments except ``--model``: same
architecture, same seed (hence the same initial weights in every shared layer and the same
batch order, which the trainer draws from a generator seeded by the seed alone).

After training, each checkpoint is evaluated on CPU: the one-sample test ELBO terms and the
active units on the whole test split (seeded exactly as the trainer's own evaluation), and
for VAEs the importance-weighted NLL with K=1000 on the first ``--iwae-n`` test images (and,
for z=2, log p(x) by quadrature on the first ``--quad-n`` images next to the IWAE figure on the
same images). The figures go into ``metadata['test_metrics']`` (re-saved atomically) and into
the table of checkpoints/README.md. All figures are nats per image.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

import torch  # noqa: E402

from vae_core.checkpoint import (  # noqa: E402
    load_checkpoint,
    read_metadata,  # noqa: E402
    save_checkpoint,
)
from vae_core.data import (  # noqa: E402
    dataset_available,
    load_dataset,
    to_float,  # noqa: E402
)
from vae_core.elbo import quadrature_log_px  # noqa: E402
from vae_core.evaluate import ELBO_SEED_OFFSET, dataset_metrics  # noqa: E402
from vae_core.inference import encode  # noqa: E402
from vae_core.models import VAE, count_parameters  # noqa: E402
from vae_core.projection import SHIPPED_UMAP_PARAMS, compute_projection, embeddings_path, save_embeddings  # noqa: E402

DEFAULT_OUT = ROOT / "checkpoints"
REFERENCE_FILE = "reference_recipe.json"
REFERENCE_NEG_ELBO = 244.0  # the figure for the reference recipe after 10 epochs, nats/image

# Shared CLI arguments. A pair differs only in --model, so init of the shared encoder layers
# and the batch order are the same (both come from --seed).
# z=16: batch 64 (see docs/performance.md for why)
FMNIST_Z16 = (
    "--dataset",
    "fashion-mnist",
    "--latent",
    "16",
    "--hidden",
    "512,256",
    "--epochs",
    "30",
    "--batch-size",
    "64",
    "--lr",
    "1e-3",
    "--seed",
    "0",
)
BETA_Z16 = (
    "--dataset",
    "fashion-mnist",
    "--latent",
    "16",
    "--hidden",
    "512,256",
    "--epochs",
    "10",
    "--batch-size",
    "128",
    "--lr",
    "1e-3",
    "--beta",
    "4",
    "--seed",
    "0",
)
FMNIST_Z2 = (
    "--dataset",
    "fashion-mnist",
    "--latent",
    "2",
    "--hidden",
    "512,256",
    "--epochs",
    "8",
    "--batch-size",
    "128",
    "--lr",
    "1e-3",
    "--seed",
    "0",
)
DIGITS_Z2 = (
    "--dataset",
    "digits",
    "--latent",
    "2",
    "--hidden",
    "256,128",
    "--epochs",
    "500",
    "--batch-size",
    "128",
    "--lr",
    "1e-3",
    "--seed",
    "0",
)
REFERENCE = (
    "--dataset",
    "fashion-mnist",
    "--model",
    "vae",
    "--latent",
    "20",
    "--hidden",
    "400",
    "--epochs",
    "10",
    "--batch-size",
    "128",
    "--lr",
    "1e-3",
    "--seed",
    "0",
)


@dataclass(frozen=True)
class Spec:
    """One shipped checkpoint: its file name (no suffix), what it is for, and its CLI arguments."""

    name: str
    title: str
    args: tuple[str, ...]  # everything but --out
    pair: str | None = None  # its AE/VAE twin, trained with the same arguments but --model


SPECS: tuple[Spec, ...] = (
    Spec(
        "fmnist_vae_z16",
        "Fashion-MNIST VAE, z=16 (the app's default)",
        ("--model", "vae", *FMNIST_Z16),
        "fmnist_ae_z16",
    ),
    Spec(
        "fmnist_ae_z16",
        "Fashion-MNIST AE, z=16 (twin of fmnist_vae_z16)",
        ("--model", "ae", *FMNIST_Z16),
        "fmnist_vae_z16",
    ),
    Spec("fmnist_betavae4_z16", "Fashion-MNIST β-VAE, β=4, z=16", ("--model", "vae", *BETA_Z16)),
    Spec(
        "fmnist_vae_z2", "Fashion-MNIST VAE, z=2 (latent map)", ("--model", "vae", *FMNIST_Z2), "fmnist_ae_z2"
    ),
    Spec(
        "fmnist_ae_z2",
        "Fashion-MNIST AE, z=2 (twin of fmnist_vae_z2)",
        ("--model", "ae", *FMNIST_Z2),
        "fmnist_vae_z2",
    ),
    Spec(
        "digits_vae_z2",
        "digits VAE, z=2 (the offline default)",
        ("--model", "vae", *DIGITS_Z2),
        "digits_ae_z2",
    ),
    Spec(
        "digits_ae_z2",
        "digits AE, z=2 (twin of digits_vae_z2)",
        ("--model", "ae", *DIGITS_Z2),
        "digits_vae_z2",
    ),
)
NAMES = tuple(s.name for s in SPECS)


def arg_value(args: tuple[str, ...] | list[str], flag: str, default: str | None = None) -> str | None:
    """The value after ``flag`` in an argument list (the last one wins, as with argparse)."""
    val = default
    for i, a in enumerate(args[:-1]):
        if a == flag:
            val = args[i + 1]
    return val


def scale_epochs(args: tuple[str, ...], scale: float) -> tuple[str, ...]:
    """``args`` with ``--epochs`` multiplied by ``scale`` (at least 1)."""
    if scale == 1.0:
        return args
    out = list(args)
    i = out.index("--epochs")
    out[i + 1] = str(max(1, round(int(out[i + 1]) * scale)))
    return tuple(out)


def rel(path: Path) -> str:
    """``path`` relative to the project root when it lies inside it (so recorded commands are portable)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def train(args: tuple[str, ...], out: Path, env: dict[str, str], log: Path | None = None) -> float:
    """Run ``python -m vae_core.train ARGS --out OUT`` from the project root; returns its wall time in s.

    With ``log``, the CLI's output goes to that file and its epoch lines are printed at the end
    (so parallel runs do not interleave their progress bars); otherwise it shows live.
    """
    cmd = [sys.executable, "-m", "vae_core.train", *args, "--out", rel(out)]
    shown = f"python -m vae_core.train {' '.join(shlex.quote(a) for a in cmd[3:])}"
    print(f"$ {shown}", flush=True)
    t0 = time.perf_counter()
    if log is None:
        code = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    else:
        with open(log, "wb") as fh:
            code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
        text = log.read_text(errors="replace").replace("\r", "\n")
        lines = [ln for ln in text.splitlines() if ln.startswith(("epoch", "saved", "error"))]
        print("\n".join(f"[{out.name}] {ln}" for ln in lines[-3:] or ["(no output)"]), flush=True)
    wall = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(
            f"training {out.name} failed (exit code {code}): {shown}" + (f"; log in {log}" if log else "")
        )
    print(f"[{out.name}] trained in {wall:.0f} s", flush=True)
    return wall


def train_all(
    tasks: list[tuple[str, tuple[str, ...], Path]], env: dict[str, str], jobs: int, log_dir: Path
) -> dict[str, float]:
    """Train ``(name, args, out)`` tasks, ``jobs`` at a time, longest first as listed; {name: wall s}."""
    if jobs <= 1:
        return {name: train(a, out, env) for name, a, out in tasks}
    walls: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futs = {pool.submit(train, a, out, env, log_dir / f"{name}.log"): name for name, a, out in tasks}
        for fut in as_completed(futs):
            walls[futs[fut]] = fut.result()  # re-raises a failed run's error
    return walls


# ------------------------------------------------------------------ evaluation
def quadrature_check(model: VAE, x: torch.Tensor, n_grid: int, k: int, seed: int) -> dict[str, float]:
    """log p(x) by quadrature and the K-sample IWAE bound on the same images x (N, D) uint8: nats/image."""
    xf = to_float(x)
    lps = []
    with torch.no_grad():
        for start in range(0, xf.shape[0], 50):
            xb = xf[start : start + 50]
            mu, logvar = model.encode(xb)
            lps.append(
                quadrature_log_px(
                    xb,
                    model.decode,
                    model.config.latent_dim,
                    n=n_grid,
                    likelihood=model.config.likelihood,
                    obs_std=model.config.obs_std,
                    q=(mu, logvar),
                ).log_px.double()
            )
    quad = -float(torch.cat(lps).mean())
    m = dataset_metrics(model, x, seed=seed, k=k, n_iwae=x.shape[0])
    return {
        "quad_nll": quad,
        "quad_grid": n_grid,
        "quad_n": int(x.shape[0]),
        "quad_iwae_nll": m.iwae_nll,
        "quad_iwae_se": m.iwae_nll_se,
        "quad_neg_elbo": m.neg_elbo,
    }


def write_embeddings(path: Path) -> str:
    """Encode the test split of one checkpoint and write its PCA and UMAP (the latent map's defaults) beside it,
    so a first visit of the latent map or AE vs VAE shows them at once. Returns a one-line summary."""
    ck = load_checkpoint(path, device="cpu")
    ds = load_dataset(ck.metadata["dataset"], download=False)
    t0 = time.perf_counter()
    mu = encode(ck.model, ds.x_test)[0].cpu().numpy()  # (N_test, z)
    maps = {
        "pca": compute_projection(mu, None, "pca"),
        "umap": compute_projection(mu, None, "umap", **SHIPPED_UMAP_PARAMS),
    }
    out = save_embeddings(embeddings_path(path), mu, maps)
    return f"{rel(out)}, {mu.shape[0]} codes, UMAP {maps['umap'].seconds:.1f} s ({time.perf_counter() - t0:.0f} s in all)"


def evaluate(
    path: Path, k: int, n_iwae: int, quad_n: int, quad_grid: int, train_wall: float | None
) -> dict[str, Any]:
    """Evaluate one checkpoint on CPU, write the figures into its metadata (atomic re-save), return them."""
    ck = load_checkpoint(path, device="cpu")
    meta = ck.metadata
    ds = load_dataset(meta["dataset"], download=False)
    seed = int((meta.get("train_config") or {}).get("seed", 0))
    t0 = time.perf_counter()
    m = dataset_metrics(
        ck.model, ds.x_test, seed=seed, k=k if ck.model.is_vae else 0, n_iwae=n_iwae
    ).to_dict()
    m["eval_seed"] = seed + ELBO_SEED_OFFSET  # the ELBO pass's noise seed, the trainer's own evaluation seed
    if ck.model.is_vae and k > 0 and n_iwae > 0:
        m["iwae_seed"] = seed
        if ck.config.latent_dim <= 2 and quad_n > 0:
            qn = ds.x_test.shape[0] if ds.name == "digits" else quad_n  # digits: the whole split is cheap
            m.update(quadrature_check(ck.model, ds.x_test[:qn], quad_grid, k, seed))
    m["eval_wall_s"] = time.perf_counter() - t0
    shipped = dict(meta.get("shipped") or {})
    if train_wall is not None:
        shipped.update(
            {
                "train_wall_s": train_wall,
                "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads",
                "torch": torch.__version__,
                "date": time.strftime("%Y-%m-%d"),
                "threads": torch.get_num_threads(),
            }
        )
    shipped["generated_by"] = "scripts/make_checkpoints.py"
    shipped["parameters"] = count_parameters(ck.model)
    meta = {**meta, "test_metrics": m, "shipped": shipped}
    save_checkpoint(path, ck.model, meta)
    return m


# ------------------------------------------------------------------ README
def _f(v: Any, nd: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{nd}f}"


def _mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def _minutes(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


def write_readme(out_dir: Path, metas: dict[str, dict[str, Any]], reference: dict[str, Any] | None) -> Path:
    """Write ``out_dir/README.md``: the table, the z=2 quadrature check, the commands, how to regenerate."""
    k = next(
        (m["test_metrics"]["iwae_k"] for m in metas.values() if "iwae_k" in (m.get("test_metrics") or {})),
        1000,
    )
    L: list[str] = [
        "# Shipped checkpoints",
        "",
        "Generated by `scripts/make_checkpoints.py`; do not edit by hand. Regenerate everything (training",
        "included) with one command from the project root:",
        "",
        "```",
        ".venv/bin/python scripts/make_checkpoints.py",
        "```",
        "",
        "It trains each model with the project's CLI (`python -m vae_core.train`, the exact commands are below),",
        "two at a time with one torch thread each (`--jobs`, `--threads`), then evaluates every file and rewrites",
        "this page. `--skip-train` only re-evaluates the files that are here (`--readme-only`: not even that);",
        "`--only NAME` (repeatable) retrains a subset; `--epochs-scale 0.05 --out-dir /tmp/ck` is a quick smoke",
        "run elsewhere.",
        "",
        "The app opens on `fmnist_vae_z16` when Fashion-MNIST is on the machine, otherwise on `digits_vae_z2`.",
        "",
        "## Test metrics (nats per image)",
        "",
        "Bernoulli likelihood on pixels in [0, 1]. −ELBO, reconstruction (−E_q log p(x|z)), KL and active units",
        "(latent dims with Cov_x[μ] > 0.01) are one-sample estimates on the **whole test split** (Fashion-MNIST:",
        "10,000 images; digits: 359), with the trainer's evaluation seed. The importance-weighted NLL",
        f"−log p_K(x) uses **K = {k}** samples on the **first N test images** (N in the column; the whole",
        "split for digits), ± one standard error over images. An AE defines no density, so it has no ELBO,",
        "KL or NLL: its row shows only its reconstruction cost, comparable to the VAE's reconstruction column.",
        "",
        f"| checkpoint | model | dataset | architecture | epochs | test −ELBO | recon | KL | active units | IWAE NLL (K={k}) | N | params | file | train time |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total_train = 0.0
    for spec in SPECS:
        meta = metas.get(spec.name)
        if meta is None:
            L.append(f"| `{spec.name}` | not built | | | | | | | | | | | | |")
            continue
        cfg, tc, m = meta["model_config"], meta.get("train_config") or {}, meta.get("test_metrics") or {}
        sh = meta.get("shipped") or {}
        vae = cfg["kind"] == "vae"
        kind = (
            ("β-VAE (β={:g})".format(tc.get("beta", 1.0)))
            if vae and tc.get("beta", 1.0) != 1.0
            else cfg["kind"].upper()
        )
        arch = "-".join(str(v) for v in (cfg["input_dim"], *cfg["hidden"], cfg["latent_dim"]))
        iw = f"{_f(m.get('iwae_nll'))} ± {_f(m.get('iwae_nll_se'))}" if "iwae_nll" in m else "—"
        total_train += float(sh.get("train_wall_s") or 0.0)
        L.append(
            f"| `{spec.name}` | {kind} | {meta['dataset']} | {arch} | {meta.get('epochs', 0):g} | "
            f"{_f(m.get('neg_elbo')) if vae else '—'} | {_f(m.get('recon'))} | {_f(m.get('kl')) if vae else '—'} | "
            f"{m.get('active_units', '—')}/{cfg['latent_dim']} | {iw} | {m.get('iwae_n', '—') if vae else '—'} | "
            f"{int(sh.get('parameters', 0)):,} | {_mb(out_dir / f'{spec.name}.safetensors')} | "
            f"{_minutes(sh.get('train_wall_s'))} |"
        )
    machine = next(
        (m.get("shipped", {}).get("machine") for m in metas.values() if m.get("shipped", {}).get("machine")),
        None,
    )
    L += [
        "",
        f"Training time, summed over the models: {_minutes(total_train)}"
        + (
            f" ({machine}, shared with other jobs; two trainings ran at a time, one torch thread each)."
            if machine
            else "."
        ),
        "",
    ]

    # the reference recipe
    L += ["## Against the reference recipe", ""]
    z16 = (metas.get("fmnist_vae_z16") or {}).get("test_metrics") or {}
    if reference:
        rm = reference["test_metrics"]
        L += [
            "Reference recipe (pytorch/examples VAE: 784-400-20 MLP, Adam 1e-3, batch 128, Bernoulli), trained here by",
            f"`{reference['command']}`: test −ELBO **{_f(rm['neg_elbo'])}** nats/image after {reference['epochs']:g} epoch{'s' if reference['epochs'] != 1 else ''}",
            f"(recon {_f(rm['recon'])}, KL {_f(rm['kl'])}"
            + (
                f", IWAE NLL {_f(rm['iwae_nll'])} on the first {rm['iwae_n']} images"
                if "iwae_nll" in rm
                else ""
            )
            + ").",
        ]
    else:
        L += [
            f"Reference recipe (784-400-20 MLP, Adam 1e-3, batch 128, Bernoulli): about {REFERENCE_NEG_ELBO:g} nats/image after 10 epochs (not re-run here)."
        ]
    if z16:
        ref_v = reference["test_metrics"]["neg_elbo"] if reference else REFERENCE_NEG_ELBO

        def gap(v: float) -> str:
            return f"{abs(v - z16['neg_elbo']):.1f} nats {'better' if z16['neg_elbo'] < v else 'worse'} than"

        L += [
            "",
            f"Shipped `fmnist_vae_z16`: test −ELBO **{_f(z16['neg_elbo'])}** nats/image, {gap(ref_v)} the reference recipe"
            + (
                f" measured here ({gap(REFERENCE_NEG_ELBO)} the issue's figure of {REFERENCE_NEG_ELBO:g})."
                if reference
                else "."
            ),
        ]
    L.append("")

    # quadrature check for z=2 VAEs
    rows = [
        (s.name, metas[s.name]["test_metrics"])
        for s in SPECS
        if s.name in metas and "quad_nll" in (metas[s.name].get("test_metrics") or {})
    ]
    if rows:
        L += [
            "## z = 2: importance sampling against quadrature",
            "",
            "For a 2-D latent, log p(x) = log ∫ p(x|z) p(z) dz can be computed on a grid (`vae_core.elbo.quadrature_log_px`).",
            f"On the same test images: −ELBO ≥ IWAE NLL (K={k}) ≥ quadrature NLL, and the last two should nearly agree.",
            "",
            f"| checkpoint | images | grid | −ELBO | IWAE NLL (K={k}) | quadrature NLL | IWAE − quadrature |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, m in rows:
            L.append(
                f"| `{name}` | first {m['quad_n']} | {m['quad_grid']}×{m['quad_grid']} | {_f(m['quad_neg_elbo'])} | "
                f"{_f(m['quad_iwae_nll'])} | {_f(m['quad_nll'])} | {m['quad_iwae_nll'] - m['quad_nll']:.3f} |"
            )
        L.append("")

    # commands
    L += [
        "## The exact commands",
        "",
        "Each checkpoint's metadata records the command that made it (`metadata['command']`)",
        "and its training history (`metadata['history']`, step records thinned to 1500; every evaluation kept).",
        "",
        "```",
    ]
    for spec in SPECS:
        if spec.name in metas:
            L.append(str(metas[spec.name].get("command")))
    L += [
        "```",
        "",
        "AE/VAE twins (`fmnist_vae_z16`/`fmnist_ae_z16`, `fmnist_vae_z2`/`fmnist_ae_z2`, `digits_vae_z2`/`digits_ae_z2`)",
        "use identical arguments except `--model`: the same hidden widths, latent size, epochs, batch size, learning",
        "rate and seed. The seed fixes the batch order (a generator seeded by the seed alone) and the initial weights",
        "of every layer the two share (encoder trunk, μ head, decoder; the VAE's log-variance head is drawn last), so",
        "the twins differ only in their objective.",
        "",
        "Evaluate any checkpoint again with `python -m vae_core.evaluate checkpoints/NAME.safetensors --k 1000 --n 1000`.",
        "",
    ]
    path = out_dir / "README.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(L), encoding="utf-8")
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/make_checkpoints.py", description=__doc__.split("\n")[0])
    p.add_argument(
        "--out-dir", type=Path, default=DEFAULT_OUT, help="where the checkpoints go (default checkpoints/)"
    )
    p.add_argument(
        "--only",
        action="append",
        choices=NAMES,
        metavar="NAME",
        help=f"train/evaluate only this checkpoint (repeatable); one of {', '.join(NAMES)}",
    )
    p.add_argument(
        "--skip-train",
        action="store_true",
        help="do not train: re-evaluate existing files and rewrite the README",
    )
    p.add_argument(
        "--readme-only", action="store_true", help="only rewrite README.md from the files' recorded metrics"
    )
    p.add_argument(
        "--embeddings-only",
        action="store_true",
        help="only (re)write each checkpoint's embeddings/<name>.safetensors: test-set codes, PCA and UMAP",
    )
    p.add_argument(
        "--epochs-scale", type=float, default=1.0, help="multiply every --epochs (smoke runs; e.g. 0.05)"
    )
    p.add_argument(
        "--no-reference",
        action="store_true",
        help="do not train the reference recipe (10 epochs of 784-400-20)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per process (default 1: on a busy 2-core machine two threads ran 20x slower "
        "in wall time, waiting on each other; 0 = torch's default)",
    )
    p.add_argument(
        "--jobs", type=int, default=2, help="trainings run at the same time (default 2, one thread each)"
    )
    p.add_argument("--k", type=int, default=1000, help="importance samples for the IWAE NLL (default 1000)")
    p.add_argument(
        "--iwae-n", type=int, default=1000, help="first N test images for the IWAE NLL (default 1000)"
    )
    p.add_argument(
        "--quad-n",
        type=int,
        default=100,
        help="first N test images for the z=2 quadrature check (default 100; digits: all; 0: skip)",
    )
    p.add_argument(
        "--quad-grid", type=int, default=150, help="quadrature grid points per latent axis (default 150)"
    )
    args = p.parse_args(argv)
    if not args.epochs_scale > 0:
        p.error("--epochs-scale must be positive")
    if args.epochs_scale != 1.0 and args.out_dir.resolve() == DEFAULT_OUT.resolve():
        p.error("--epochs-scale makes under-trained models: give another --out-dir so the shipped ones stay")
    return args


def main(argv: list[str] | None = None) -> int:
    """Train (unless --skip-train), evaluate and document the shipped checkpoints."""
    args = parse_args(argv)
    out_dir: Path = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    selected = [s for s in SPECS if not args.only or s.name in args.only]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    if args.threads > 0:  # the subprocesses' torch reads OMP_NUM_THREADS at start-up
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        torch.set_num_threads(args.threads)
    walls: dict[str, float] = {}
    missing_data = sorted(
        {
            arg_value(s.args, "--dataset")
            for s in selected
            if not dataset_available(arg_value(s.args, "--dataset"))
        }
    )
    if missing_data:
        print(
            f"warning: {', '.join(missing_data)} not on this machine; its checkpoints are skipped. "
            "Fashion-MNIST: apt-get install dataset-fashion-mnist, or see vae_core/data.py.",
            file=sys.stderr,
        )
        selected = [s for s in selected if arg_value(s.args, "--dataset") not in missing_data]
    t_all = time.perf_counter()
    ref_path = out_dir / REFERENCE_FILE
    reference = json.loads(ref_path.read_text()) if ref_path.exists() else None
    if args.embeddings_only:
        for spec in selected:
            path = out_dir / f"{spec.name}.safetensors"
            if path.exists():
                print(f"embeddings of {spec.name}: {write_embeddings(path)}", flush=True)
        return 0
    if args.readme_only:
        selected, args.skip_train = [], True
    want_ref = (
        not args.skip_train and not args.no_reference and not args.only and dataset_available("fashion-mnist")
    )
    with tempfile.TemporaryDirectory() as tmp:
        tasks = (
            []
            if args.skip_train
            else [(s.name, scale_epochs(s.args, args.epochs_scale), out_dir / s.name) for s in selected]
        )
        ref_args = scale_epochs(REFERENCE, args.epochs_scale)
        if want_ref:  # after the z=16 ones, before the small digits runs
            tasks.insert(min(len(tasks), 5), ("reference_vae_z20", ref_args, Path(tmp) / "reference_vae_z20"))
        try:
            walls = train_all(tasks, env, args.jobs, Path(tmp))
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if want_ref:
            ck = load_checkpoint(Path(tmp) / "reference_vae_z20.safetensors")
            ds = load_dataset("fashion-mnist", download=False)
            m = dataset_metrics(ck.model, ds.x_test, seed=0, k=args.k, n_iwae=args.iwae_n).to_dict()
            for key in ("kl_per_dim", "var_mu"):
                m.pop(key, None)
            reference = {
                "command": "python -m vae_core.train " + " ".join(ref_args),
                "epochs": ck.metadata["epochs"],
                "train_wall_s": walls.pop("reference_vae_z20"),
                "test_metrics": m,
                "history": {k: ck.metadata["history"][k] for k in ("eval_epoch", "test_neg_elbo")},
            }
            ref_path.write_text(json.dumps(reference, indent=1) + "\n", encoding="utf-8")
            print(
                f"reference recipe: test -ELBO {m['neg_elbo']:.2f} nats/image after {reference['epochs']:g} epochs",
                flush=True,
            )
    for spec in selected:
        path = out_dir / f"{spec.name}.safetensors"
        if not path.exists():
            print(
                f"warning: {rel(path)} does not exist; run without --skip-train to make it", file=sys.stderr
            )
            continue
        print(f"evaluating {spec.name} ...", flush=True)
        m = evaluate(path, args.k, args.iwae_n, args.quad_n, args.quad_grid, walls.get(spec.name))
        iw = (
            f", IWAE NLL {m['iwae_nll']:.2f} (K={m['iwae_k']}, first {m['iwae_n']})"
            if "iwae_nll" in m
            else ""
        )
        print(
            f"  test -ELBO {m['neg_elbo']:.2f} recon {m['recon']:.2f} KL {m['kl']:.2f} nats/image, "
            f"active units {m['active_units']}{iw} ({m['eval_wall_s']:.0f} s)",
            flush=True,
        )
    metas = {
        s.name: read_metadata(out_dir / f"{s.name}.safetensors")
        for s in SPECS
        if (out_dir / f"{s.name}.safetensors").exists()
    }
    readme = write_readme(out_dir, metas, reference)
    print(f"wrote {rel(readme)} ({len(metas)} checkpoints) in {time.perf_counter() - t_all:.0f} s total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
