"""The CLIs: train writes a checkpoint with its command; evaluate prints every metric; errors are clear."""

import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT
from vae_core.checkpoint import load_checkpoint
from vae_core.evaluate import main as evaluate_main
from vae_core.train import main as train_main


def test_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "cli_vae"
    rc = train_main(
        [
            "--dataset",
            "digits",
            "--latent",
            "2",
            "--hidden",
            "32",
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    ck = load_checkpoint(str(out) + ".safetensors")
    assert ck.metadata["command"].startswith("python -m vae_core.train --dataset digits")
    assert ck.metadata["steps"] == 24 and ck.config.hidden == (32,)
    text = capsys.readouterr()
    assert "test -ELBO" in text.err + text.out and "saved" in text.out
    rc = evaluate_main([str(out) + ".safetensors", "--k", "50", "--n", "40", "--device", "cpu"])
    assert rc == 0
    printed = capsys.readouterr().out
    for word in ("test -ELBO", "reconstruction", "KL", "active units", "IWAE NLL (K=50)", "nats/image"):
        assert word in printed


@pytest.mark.parametrize("text", ["32,16", "32-16", "32 16"])
def test_hidden_sizes_take_the_forms_syntax(text, tmp_path, capsys):
    out = tmp_path / "h"
    assert (
        train_main(
            [
                "--dataset",
                "digits",
                "--latent",
                "2",
                "--hidden",
                text,
                "--epochs",
                "1",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert load_checkpoint(str(out) + ".safetensors").config.hidden == (32, 16)


@pytest.mark.parametrize(
    "args,phrase",
    [
        (["--hidden", "1e3"], "argument --hidden: hidden sizes must be whole numbers"),
        (["--autograd"], "unrecognized arguments: --autograd"),  # one gradient path: the flag is gone
    ],
)
def test_bad_flags_are_argparse_errors(args, phrase, capsys):
    with pytest.raises(SystemExit) as exc:
        train_main(["--dataset", "digits", "--device", "cpu"] + args)
    assert exc.value.code == 2 and phrase in capsys.readouterr().err


def test_evaluate_an_ae_says_there_is_no_likelihood(tmp_path, capsys):
    out = tmp_path / "ae"
    assert (
        train_main(
            [
                "--dataset",
                "digits",
                "--model",
                "ae",
                "--latent",
                "2",
                "--epochs",
                "1",
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert evaluate_main([str(out) + ".safetensors", "--device", "cpu"]) == 0
    assert "an AE has no likelihood" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,phrase",
    [
        (["--dataset", "digits", "--latent", "0"], "latent dimension must be between 1 and 64"),
        (["--dataset", "digits", "--lr", "0"], "learning rate"),
        (["--dataset", "cifar"], "unknown dataset"),
    ],
)
def test_train_errors_are_one_clear_line(args, phrase, capsys):
    assert train_main(args + ["--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert phrase in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_gpu_is_a_clear_error(capsys):
    assert train_main(["--dataset", "digits", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_evaluate_rejects_a_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    assert evaluate_main([str(bad)]) == 2
    assert "not a safetensors file" in capsys.readouterr().err


def test_module_entry_point_runs():
    r = subprocess.run(
        [sys.executable, "-m", "vae_core.train", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "--latent" in r.stdout and "--device" in r.stdout
