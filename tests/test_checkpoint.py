"""Checkpoints: bit-exact round trips, atomic writes, and a clear error for every bad file."""

import io
import json
import os
import struct
import zipfile

import pytest
import torch
from safetensors.torch import save as st_save

from tests.conftest import digits_config
from vae_core import checkpoint as ckpt
from vae_core.checkpoint import (
    CheckpointError,
    checkpoint_bytes,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from vae_core.models import build_model
from vae_core.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def trained(digits):
    tr = Trainer(
        digits_config("vae", 3), TrainConfig(dataset="digits", epochs=1), dataset=digits, device="cpu"
    )
    tr.run()
    return tr


def _raw(model, meta):
    return checkpoint_bytes(model, meta)


class TestRoundTrip:
    def test_bit_exact_with_metadata(self, trained, tmp_path):
        path = save_checkpoint(
            tmp_path / "m", trained.model, trained.metadata("python -m vae_core.train --x")
        )
        assert path.name == "m.safetensors" and oct(path.stat().st_mode)[-3:] == "644"
        ck = load_checkpoint(path)
        for k, v in trained.model.state_dict().items():
            assert torch.equal(ck.model.state_dict()[k], v), k
        assert ck.config == trained.model_config and not ck.model.training
        m = ck.metadata
        assert m["format"] == "vae-workshop-lab" and m["format_version"] == ckpt.FORMAT_VERSION
        assert m["dataset"] == "digits" and m["command"].startswith("python -m vae_core.train")
        assert m["history"]["loss"] == trained.history.loss
        assert m["test_metrics"]["neg_elbo"] == pytest.approx(trained.last_eval.neg_elbo)
        assert read_metadata(path)["train_config"] == trained.config.to_dict()
        assert load_checkpoint(path.read_bytes()).config == ck.config  # uploads come as bytes

    def test_long_histories_are_thinned(self, trained, tmp_path):
        meta = trained.metadata()
        n = 5000
        meta["history"] = {
            "step": list(range(n)),
            "loss": [1.0] * n,
            "kl_per_dim": [[0.0]] * n,
            "eval_step": [1, 2],
        }
        ck = load_checkpoint(save_checkpoint(tmp_path / "long", trained.model, meta))
        h = ck.metadata["history"]
        assert len(h["step"]) == ckpt.MAX_HISTORY_POINTS and h["step"][0] == 0 and h["step"][-1] == n - 1
        assert len(h["loss"]) == len(h["kl_per_dim"]) == ckpt.MAX_HISTORY_POINTS and h["eval_step"] == [1, 2]

    def test_non_finite_metadata_values_become_null(self, trained, tmp_path):
        ck = load_checkpoint(save_checkpoint(tmp_path / "n", trained.model, {"x": float("nan")}))
        assert ck.metadata["x"] is None


class TestAtomic:
    def test_failed_write_leaves_previous_file_intact(self, trained, tmp_path, monkeypatch):
        path = save_checkpoint(tmp_path / "a.safetensors", trained.model, {"v": 1})
        before = path.read_bytes()

        def boom(src, dst):
            raise OSError("disk full")

        monkeypatch.setattr(ckpt.os, "replace", boom)
        with pytest.raises(OSError, match="disk full"):
            save_checkpoint(path, trained.model, {"v": 2})
        assert path.read_bytes() == before
        assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]  # no temp file left behind


class TestBadFiles:
    def check(self, data, *phrases):
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(data, name="f")
        msg = str(err.value)
        for ph in phrases:
            assert ph in msg, msg
        return msg

    def test_empty(self):
        self.check(b"", "empty")

    def test_torch_save_file_is_never_unpickled(self, trained, monkeypatch):
        buf = io.BytesIO()
        torch.save(trained.model.state_dict(), buf)

        def forbidden(*a, **k):
            raise AssertionError("unpickling attempted")

        monkeypatch.setattr("pickle.loads", forbidden)
        monkeypatch.setattr(torch, "load", forbidden)
        self.check(buf.getvalue(), "zip archive", "never opens")

    def test_plain_pickle(self):
        import pickle

        self.check(pickle.dumps({"a": 1}), "pickle")

    def test_other_zip(self):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("a.txt", "hello")
        self.check(buf.getvalue(), "zip archive")

    def test_random_bytes_and_text(self):
        self.check(os.urandom(4096), "not a safetensors file")
        self.check(b"hello, this is a text file and not a model\n" * 10, "not a safetensors file")

    @pytest.mark.parametrize("keep", [0.3, 0.6, 0.99])
    def test_truncated(self, trained, keep):
        raw = _raw(trained.model, {})
        self.check(raw[: int(len(raw) * keep)], "truncated")

    def test_foreign_safetensors(self):
        self.check(st_save({"weight": torch.zeros(3, 3)}), "not a VAE Workshop Lab checkpoint")

    def test_future_version(self, trained):
        meta = {
            "format": "vae-workshop-lab",
            "format_version": 99,
            "model_config": trained.model_config.to_dict(),
        }
        raw = st_save(
            {k: v.contiguous() for k, v in trained.model.state_dict().items()}, {"vae_lab": json.dumps(meta)}
        )
        self.check(raw, "format version 99")

    def test_missing_keys(self, trained):
        sd = {k: v.contiguous() for k, v in trained.model.state_dict().items() if "logvar" not in k}
        meta = {
            "format": "vae-workshop-lab",
            "format_version": 1,
            "model_config": trained.model_config.to_dict(),
        }
        self.check(st_save(sd, {"vae_lab": json.dumps(meta)}), "missing", "encoder.logvar.weight")

    def test_metadata_contradicts_weights(self, trained):
        cfg = trained.model_config.to_dict() | {"latent_dim": 5}
        meta = {"format": "vae-workshop-lab", "format_version": 1, "model_config": cfg}
        sd = {k: v.contiguous() for k, v in trained.model.state_dict().items()}
        self.check(st_save(sd, {"vae_lab": json.dumps(meta)}), "shape", "contradicts")

    def test_invalid_config(self, trained):
        cfg = trained.model_config.to_dict() | {"latent_dim": 0}
        meta = {"format": "vae-workshop-lab", "format_version": 1, "model_config": cfg}
        sd = {k: v.contiguous() for k, v in trained.model.state_dict().items()}
        self.check(st_save(sd, {"vae_lab": json.dumps(meta)}), "model config is invalid", "latent dimension")

    @pytest.mark.parametrize("bad", [float("nan"), float("inf")])
    def test_non_finite_weights(self, trained, bad):
        m = build_model(trained.model_config)
        m.load_state_dict(trained.model.state_dict())
        with torch.no_grad():
            m.decoder.net[0].weight[0, 0] = bad
        self.check(_raw(m, {}), "NaN or infinite")

    def test_integer_tensor(self, trained):
        meta = {
            "format": "vae-workshop-lab",
            "format_version": 1,
            "model_config": trained.model_config.to_dict(),
        }
        sd = {k: v.to(torch.int32).contiguous() for k, v in trained.model.state_dict().items()}
        self.check(st_save(sd, {"vae_lab": json.dumps(meta)}), "dtype")

    def test_size_limit(self, trained):
        raw = _raw(trained.model, {})
        with pytest.raises(CheckpointError, match="over the"):
            load_checkpoint(raw, max_bytes=len(raw) - 1)

    def test_huge_header_length(self):
        self.check(struct.pack("<Q", 2**60) + b"{}", "not a safetensors file")

    def test_paths(self, tmp_path):
        with pytest.raises(CheckpointError, match="does not exist"):
            load_checkpoint(tmp_path / "missing.safetensors")
        with pytest.raises(CheckpointError, match="folder"):
            load_checkpoint(tmp_path)

    def test_read_metadata_rejects_bad_files(self, tmp_path):
        p = tmp_path / "x.safetensors"
        p.write_bytes(b"")
        with pytest.raises(CheckpointError, match="empty"):
            read_metadata(p)
        p.write_bytes(st_save({"w": torch.zeros(1)}))
        with pytest.raises(CheckpointError, match="not a VAE Workshop Lab"):
            read_metadata(p)


class TestSaveByName:
    def test_saves_under_the_folder_and_lists_the_path(self, trained, tmp_path):
        path = ckpt.save_by_name(
            trained.model, trained.metadata(), "my_vae-1", tmp_path / "saved", ["digits_vae_z2"]
        )
        assert path == tmp_path / "saved" / "my_vae-1.safetensors" and path.is_file()
        assert load_checkpoint(path).metadata["dataset"] == "digits"

    @pytest.mark.parametrize(
        "name", ["", "bad name!", "../escape", "a/b", "..", ".hidden", "x.safetensors", "naïve", "x" * 65]
    )
    def test_bad_names_are_refused_and_nothing_is_written(self, trained, tmp_path, name):
        with pytest.raises(CheckpointError, match="is not allowed: use 1-64 letters, digits, - or _"):
            ckpt.save_by_name(trained.model, {}, name, tmp_path / "saved")
        assert not (tmp_path / "saved").exists() and not (tmp_path / "escape.safetensors").exists()

    def test_64_characters_is_the_longest_name(self, trained, tmp_path):
        assert ckpt.save_by_name(trained.model, {}, "x" * 64, tmp_path).name == "x" * 64 + ".safetensors"
        assert ckpt.NAME_RE.fullmatch("a-b_C9") and not ckpt.NAME_RE.fullmatch("a b")

    def test_a_shipped_name_is_refused(self, trained, tmp_path):
        with pytest.raises(CheckpointError, match="'digits_vae_z2' is the name of a shipped checkpoint"):
            ckpt.save_by_name(trained.model, {}, "digits_vae_z2", tmp_path, {"digits_vae_z2", "saved/other"})
        assert not list(tmp_path.iterdir())

    def test_an_existing_save_is_never_overwritten(self, trained, tmp_path):
        path = ckpt.save_by_name(trained.model, {"epochs": 1.0}, "mine", tmp_path)
        before = path.read_bytes()
        with pytest.raises(CheckpointError, match="'mine' exists already; choose another name"):
            ckpt.save_by_name(trained.model, {"epochs": 2.0}, "mine", tmp_path)
        assert path.read_bytes() == before
        with pytest.raises(CheckpointError, match="exists already"):
            ckpt.check_save_name("mine", tmp_path)
        assert ckpt.check_save_name("other", tmp_path) == tmp_path / "other.safetensors"
