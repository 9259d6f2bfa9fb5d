"""Hostile input: bad uploads, bad settings, bad data files, training mishaps and killed writers.

A workshop has 30 people clicking everything and uploading whatever they have. Every case here
must end in a clear message, with the app still up, nothing lost and nothing unpickled.
docs/bad_inputs.md lists each case with what the user sees and the test that backs it (cases
already covered by test_app.py, test_checkpoint.py, test_data.py and test_train_page.py are
referenced there, not repeated here).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save
from streamlit.testing.v1 import AppTest

import lab_pages.datasets as datasets
import lab_pages.model_store as model_store
from tests.conftest import APP, ROOT, TRAIN_PAGE, settle, texts, trainer_of, wait_for, worker_children
from tests.test_app import SIDEBAR_HARNESS
from vae_core import data
from vae_core.checkpoint import CheckpointError, checkpoint_bytes, load_checkpoint
from vae_core.data import DatasetError, DatasetUnavailable, read_idx
from vae_core.models import ModelConfig, build_model
from vae_core.train import TrainerState as S
from vae_core.train import configs_from_settings

SHIPPED = ROOT / "checkpoints" / "digits_vae_z2.safetensors"
UPLOAD_LIMIT = 50 * 1024 * 1024  # lab_pages/sidebar.py: UPLOAD_LIMIT_MB = 50


# one intra-op thread per trainer thread (tests/conftest.py::one_torch_thread); a fresh registry for
# this module with the fork server ready before each test, and no worker left at its end
pytestmark = pytest.mark.usefixtures("one_torch_thread", "fork_server")
LIVE = (S.STARTING, S.RUNNING)  # what a worker is in right after Start


# ====================================================================== forged files
@pytest.fixture(scope="module")
def shipped():
    """The digits VAE checkpoint: (state dict, metadata) to forge bad files from."""
    ck = load_checkpoint(SHIPPED)
    sd = {k: v.detach().contiguous() for k, v in ck.model.state_dict().items()}
    return sd, ck.metadata


def forge(sd: dict[str, torch.Tensor], meta: dict, **cfg_changes) -> bytes:
    """safetensors bytes with ``sd`` and the lab metadata ``meta`` (model config overridden by ``cfg_changes``)."""
    meta = dict(meta)
    if cfg_changes:
        meta["model_config"] = {**meta["model_config"], **cfg_changes}
    return st_save(sd, {"vae_lab": json.dumps(meta)})


def raw_header(header: dict | bytes, body: bytes = b"") -> bytes:
    """A safetensors-shaped file: 8-byte little-endian header length, the header, the body."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


def _png() -> bytes:
    """A real (tiny) PNG image, as someone might upload after renaming it .safetensors."""
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    raw = b"".join(b"\x00" + bytes(range(8)) for _ in range(8))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _with(sd, key, value):
    out = dict(sd)
    out[key] = value
    return out


def _poisoned(sd, value: float):
    w = sd["decoder.net.2.weight"].clone()
    w[3, 7] = value
    return _with(sd, "decoder.net.2.weight", w)


def _huge_shape_header(sd, meta) -> bytes:
    """A lab checkpoint whose header says one tensor is 2^31 x 2^31 floats (8 EB), body unchanged."""
    raw = forge(sd, meta)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header["decoder.net.2.bias"]["shape"] = [2**31, 2**31]
    return raw_header(header, raw[8 + n :])


# name -> (builder(sd, meta) -> bytes, phrase the message must contain)
BAD_UPLOADS = {
    "missing_keys": (
        lambda sd, m: forge({k: v for k, v in sd.items() if "logvar" not in k}, m),
        "missing ['encoder.logvar.bias', 'encoder.logvar.weight']",
    ),
    "unexpected_key": (
        lambda sd, m: forge(_with(sd, "encoder.extra.weight", torch.zeros(3)), m),
        "unexpected ['encoder.extra.weight']",
    ),
    "wrong_shape": (
        lambda sd, m: forge(_with(sd, "decoder.net.2.weight", torch.zeros(64, 100)), m),
        "'decoder.net.2.weight' has shape (64, 100)",
    ),
    "nan_weight": (lambda sd, m: forge(_poisoned(sd, float("nan")), m), "NaN or infinite"),
    "inf_weight": (lambda sd, m: forge(_poisoned(sd, float("inf")), m), "NaN or infinite"),
    "neg_inf_weight": (lambda sd, m: forge(_poisoned(sd, float("-inf")), m), "NaN or infinite"),
    "meta_says_other_latent": (
        lambda sd, m: forge(sd, m, latent_dim=5),
        "the metadata contradicts the weights",
    ),
    "meta_says_28x28": (
        lambda sd, m: forge(sd, m, input_dim=784, image_shape=[1, 28, 28]),
        "the metadata contradicts the weights",
    ),
    "meta_says_ae": (lambda sd, m: forge(sd, m, kind="ae"), "do not match its metadata"),
    "meta_says_other_hidden": (
        lambda sd, m: forge(sd, m, hidden=[64]),
        "do not match its metadata",
    ),  # other layer count: other keys
    "meta_config_invalid": (lambda sd, m: forge(sd, m, hidden=[0]), "model config is invalid"),
    "meta_config_unknown_key": (lambda sd, m: forge(sd, m, layers=99), "unknown model config keys"),
    "meta_config_wrong_type": (lambda sd, m: forge(sd, m, latent_dim="two"), "model config is invalid"),
    "meta_not_json": (lambda sd, m: st_save(sd, {"vae_lab": "{not json"}), "metadata is not valid JSON"),
    "meta_other_format": (lambda sd, m: forge(sd, {**m, "format": "someone-else"}), "does not describe"),
    "meta_future_version": (lambda sd, m: forge(sd, {**m, "format_version": 7}), "format version 7"),
    "foreign_safetensors": (lambda sd, m: st_save(sd), "not a VAE Workshop Lab checkpoint"),
    "integer_weights": (
        lambda sd, m: forge({k: v.to(torch.int32) for k, v in sd.items()}, m),
        "expected floating point",
    ),
    "png_renamed": (lambda sd, m: _png(), "not a safetensors file"),
    "random_bytes": (
        lambda sd, m: np.random.default_rng(7).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "not a safetensors file",
    ),
    "gzip_idx_file": (
        lambda sd, m: gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"\x01\x02\x03"),
        "not a safetensors file",
    ),
    "seven_bytes": (lambda sd, m: b"\x10\x00\x00\x00\x00\x00\x00", "too short"),
    "header_claims_4TB_tensor": (
        lambda sd, m: raw_header(
            {
                "__metadata__": {"vae_lab": json.dumps(m)},
                "w": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 2**42]},
            },
            b"\x00" * 64,
        ),
        "truncated",
    ),
    "header_claims_huge_shape": (_huge_shape_header, "has shape (2147483648, 2147483648)"),
    "header_not_json": (lambda sd, m: raw_header(b"\x00\xff" * 20), "header is not JSON"),
    "header_length_past_end": (lambda sd, m: struct.pack("<Q", 1000) + b'{"a": 1}', "truncated"),
    "over_size_limit": (
        lambda sd, m: forge(sd, m) + b"\x00" * (UPLOAD_LIMIT + 1 - len(forge(sd, m))),
        "over the",
    ),
}


@pytest.fixture
def no_unpickling(monkeypatch):
    """Fail the test if anything tries to unpickle or torch.load while it runs."""

    def forbidden(*a, **k):
        raise AssertionError("unpickling attempted")

    for mod, name in ((pickle, "loads"), (pickle, "load"), (torch, "load")):
        monkeypatch.setattr(mod, name, forbidden)


# metadata that describes an enormous model over a 2-float body: (model config)
BOMBS = {
    "wide_input": {
        "kind": "vae",
        "input_dim": 8192 * 8192,
        "image_shape": [1, 8192, 8192],
        "hidden": [8192],
        "latent_dim": 2,
    },
    "deep_hidden": {
        "kind": "vae",
        "input_dim": 64,
        "image_shape": [1, 8, 8],
        "hidden": [8192] * 6,
        "latent_dim": 64,
    },
}
BOMB_CHILD = """
import json, resource, sys, time
from vae_core.checkpoint import CheckpointError, load_checkpoint
vm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize")][0]
resource.setrlimit(resource.RLIMIT_AS, (vm + 2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))
results = {{}}
for name in sys.argv[1:]:
    raw = open(name, "rb").read()
    t = time.perf_counter()
    try:
        load_checkpoint(raw, name="bomb.safetensors", max_bytes={limit})
        out = {{"kind": "loaded"}}
    except CheckpointError as exc:
        out = {{"kind": "CheckpointError", "msg": str(exc)}}
    except BaseException as exc:
        out = {{"kind": type(exc).__name__, "msg": str(exc)[:300]}}
    out["seconds"] = time.perf_counter() - t
    results[name.rsplit("/", 1)[-1]] = out
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def bomb_results(tmp_path_factory):
    """Load each bomb in one child process with only 1 GiB of address space to spare, so that the
    unfixed code fails fast there instead of hurting this machine."""
    folder = tmp_path_factory.mktemp("bombs")
    files = []
    for name, cfg in BOMBS.items():
        meta = {"format": "vae-workshop-lab", "format_version": 1, "model_config": cfg}
        (folder / name).write_bytes(st_save({"w": torch.zeros(2)}, {"vae_lab": json.dumps(meta)}))
        files.append(str(folder / name))
    code = BOMB_CHILD.format(root=str(ROOT), limit=UPLOAD_LIMIT)
    proc = subprocess.run([sys.executable, "-c", code, *files], capture_output=True, timeout=180, text=True)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):  # the child died: every case failed
        return {
            name: {"kind": f"child exited {proc.returncode}", "msg": proc.stderr[-500:]} for name in BOMBS
        }


def run_sidebar() -> AppTest:
    at = AppTest.from_string(SIDEBAR_HARNESS, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def upload(at: AppTest, name: str, raw: bytes) -> AppTest:
    at.file_uploader(key="sidebar_upload").upload(name, raw).run()
    return at


class TestUploads:
    """Sidebar uploads (through the harness of test_app.py: the router drops sidebar widgets in AppTest)."""

    @pytest.mark.parametrize("case", list(BAD_UPLOADS))
    def test_bad_upload_is_refused_clearly(self, case, shipped, no_unpickling):
        build, phrase = BAD_UPLOADS[case]
        raw = build(*shipped)
        at = run_sidebar()
        before = at.session_state["current_model"].key
        upload(at, f"{case}.safetensors", raw)
        assert not at.exception, at.exception
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and errors[0].startswith("Upload refused: "), errors
        assert phrase in errors[0], errors[0]
        assert f"{case}.safetensors" in errors[0], "the message names the file"
        assert "Traceback" not in errors[0]
        assert at.session_state["current_model"].key == before, "a refused upload changes nothing"
        models = at.session_state.get("session_models", {})
        assert not models, "a refused upload is not added to the picker"

    def test_the_same_checks_hold_for_load_checkpoint(self, shipped):
        """Every bad upload above is a CheckpointError at the core (max_bytes = the upload limit)."""
        for case, (build, phrase) in BAD_UPLOADS.items():
            with pytest.raises(CheckpointError) as err:
                load_checkpoint(build(*shipped), name=case, max_bytes=UPLOAD_LIMIT)
            assert phrase in str(err.value), (case, str(err.value))

    def test_size_limit_is_checked_before_parsing(self, shipped, monkeypatch):
        """An over-size upload is refused by its length alone: no header parse, no model built."""
        import vae_core.checkpoint as ck

        def no_parse(*a, **k):
            raise AssertionError("an over-size file was parsed")

        monkeypatch.setattr(ck, "_parse_header", no_parse)
        monkeypatch.setattr(ck, "build_model", no_parse)
        with pytest.raises(CheckpointError, match=r"big.safetensors is 2.0 MB, over the 1 MB limit"):
            load_checkpoint(b"\x00" * 2 * 2**20, name="big.safetensors", max_bytes=2**20)

    def test_size_message_matches_the_advertised_limit(self, shipped):
        at = run_sidebar()
        build, _ = BAD_UPLOADS["over_size_limit"]
        upload(at, "big.safetensors", build(*shipped))
        assert "over the 50 MB limit" in at.error[0].value, at.error[0].value

    def test_pickles_are_never_executed(self, tmp_path, no_unpickling):
        """A pickle whose unpickling would create a folder, as .pt (torch zip) and as a bare pickle."""
        marker = tmp_path / "pwned"

        class Payload:
            def __reduce__(self):
                return (os.mkdir, (str(marker),))

        bare = pickle.dumps(Payload())
        buf = io.BytesIO()
        torch.save({"state_dict": Payload()}, buf)
        at = run_sidebar()
        for name, raw in (("model.pt", buf.getvalue()), ("model.safetensors", bare), ("model.pkl", bare)):
            upload(at, name, raw)
            assert not at.exception
            msg = at.error[0].value
            assert msg.startswith("Upload refused") and "never opens" in msg, msg
        assert not marker.exists(), "an uploaded pickle was executed"

    def test_many_bad_uploads_then_a_good_one_in_one_session(self, shipped):
        """The app keeps working: after a string of refusals a good checkpoint is adopted."""
        at = run_sidebar()
        for case in ("png_renamed", "nan_weight", "missing_keys", "header_claims_4TB_tensor"):
            upload(at, f"{case}.safetensors", BAD_UPLOADS[case][0](*shipped))
            assert not at.exception and at.error and "Upload refused" in at.error[0].value
        good = checkpoint_bytes(load_checkpoint(ROOT / "checkpoints" / "digits_ae_z2.safetensors").model)
        upload(at, "fine.safetensors", good)
        assert not at.exception and not at.error, [e.value for e in at.error]
        lm = at.session_state["current_model"]
        assert lm.label == "upload: fine.safetensors" and not lm.is_vae

    # ---------------------------------------------------------------- bugs found (see the report)
    @pytest.mark.parametrize(
        "case,raw",
        [
            pytest.param("meta_not_object", raw_header({"__metadata__": "x"}), id="meta_not_object"),
            pytest.param("meta_list", raw_header({"__metadata__": ["vae_lab"]}), id="meta_list"),
            pytest.param(
                "vae_lab_not_string", raw_header({"__metadata__": {"vae_lab": 5}}), id="vae_lab_not_string"
            ),
            pytest.param(
                "nested_header",
                struct.pack("<Q", 200_000) + b"[" * 100_000 + b"]" * 100_000,
                id="nested_header",
            ),
            pytest.param(
                "nested_metadata",
                raw_header({"__metadata__": {"vae_lab": "[" * 100_000 + "]" * 100_000}}),
                id="nested_metadata",
            ),
        ],
    )
    def test_malformed_header_is_refused_not_a_traceback(self, case, raw):
        at = run_sidebar()
        upload(at, f"{case}.safetensors", raw)
        assert not at.exception, at.exception
        assert at.error and at.error[0].value.startswith("Upload refused"), [e.value for e in at.error]

    @pytest.mark.parametrize("case", list(BOMBS))
    def test_metadata_claiming_a_huge_model_is_refused_before_allocating(self, case, bomb_results):
        out = bomb_results[case]
        assert out["kind"] == "CheckpointError", out
        assert out["seconds"] < 2.0, out

    def test_damaged_file_in_the_checkpoint_folder_does_not_break_the_sidebar(self, tmp_path, monkeypatch):
        folder = tmp_path / "checkpoints"
        folder.mkdir()
        shutil.copy(SHIPPED, folder / "digits_vae_z2.safetensors")
        (folder / "damaged.safetensors").write_bytes(raw_header(b'{"__metadata__": {"vae_lab": "{'))
        monkeypatch.setattr(model_store, "CHECKPOINT_DIR", folder)
        monkeypatch.setattr(model_store, "SESSION_CHECKPOINT_DIR", folder / "saved")
        at = AppTest.from_string(SIDEBAR_HARNESS, default_timeout=120)
        at.run()
        assert not at.exception, at.exception
        assert at.selectbox(key="sidebar_model_pick").options == ["digits_vae_z2"]


# ====================================================================== training settings
def settings(**changes):
    """configs_from_settings with the Train page's defaults on digits, some changed."""
    vals = dict(
        latent_dim=16,
        hidden="400",
        beta=1.0,
        warmup_steps=0,
        free_bits=0.0,
        lr=1e-3,
        batch_size=128,
        epochs=5,
        seed=0,
    )
    vals.update(changes)
    return configs_from_settings("digits", (1, 8, 8), "vae", **vals)


def metadata_state_is(meta: dict, want: S) -> None:
    """The state a kept model's metadata records: the worker re-sends its metadata when the state
    settles without a step (a stop while paused, a divergence right after a weights push)."""
    assert meta["state"] == want, f"metadata says {meta['state']!r}, not {want.value!r}"


def clear_dataset_cache() -> None:
    """Forget the process-wide built-in datasets of lab_pages.datasets (its cached loader)."""
    for name in ("_shared_dataset", "get_dataset"):
        fn = getattr(datasets, name, None)
        if hasattr(fn, "clear"):
            fn.clear()


class TestSettings:
    """Values the form lets you type that are not covered by test_train_page.py::TestValidation."""

    @pytest.mark.parametrize(
        "key,value,phrase",
        [
            pytest.param("train_lr", -0.01, "Learning rate must be in (0, 100], got -0.01", id="lr_negative"),
            pytest.param("train_lr", 1000.0, "Learning rate must be in (0, 100], got 1000.0", id="lr_1000"),
            pytest.param(
                "train_latent", -3, "Latent dimension must be between 1 and 64, got -3", id="latent_negative"
            ),
            pytest.param(
                "train_batch",
                100_000,
                "Batch size must be between 1 and 65536, got 100000",
                id="batch_100000",
            ),
            pytest.param(
                "train_epochs", 20_000, "Epochs must be between 1 and 10000, got 20000", id="epochs_20000"
            ),
            pytest.param("train_beta", 5000.0, "Beta must be in [0, 1000], got 5000.0", id="beta_5000"),
            pytest.param(
                "train_free_bits", 500.0, "Free bits must be in [0, 100] nats, got 500.0", id="free_bits_500"
            ),
            pytest.param("train_warmup", 20_000_000, "KL warm-up must be", id="warmup_20M"),
            pytest.param(
                "train_hidden", "0", "Hidden sizes must be between 1 and 8192, got [0]", id="hidden_0"
            ),
            pytest.param(
                "train_hidden",
                "-5",
                "Hidden sizes must be between 1 and 8192, got [-5]",
                id="hidden_negative",
            ),
            pytest.param("train_hidden", "1e3", "Hidden sizes must be whole numbers", id="hidden_1e3"),
            pytest.param(
                "train_hidden", "64,64,64,64,64,64,64", "At most 6 hidden layers, got 7", id="hidden_7_layers"
            ),
            pytest.param(
                "train_hidden",
                "'; DROP TABLE x; --",
                "Hidden sizes must be whole numbers",
                id="hidden_injection",
            ),
        ],
    )
    def test_bad_value_is_refused_at_the_form(self, train_page, key, value, phrase):
        at = train_page()
        widget = at.text_input(key=key) if key == "train_hidden" else at.number_input(key=key)
        widget.set_value(value).run()
        assert not at.exception
        assert any(phrase in t for t in texts(at, "error")), texts(at, "error")
        at.button(key="train_start").click().run()
        assert trainer_of(at) is None, "invalid settings must not start a trainer"
        assert any(t.startswith("Not started. Fix the settings first") for t in texts(at, "error"))
        at.button(key="train_step").click().run()
        assert trainer_of(at) is None and any(t.startswith("No step taken") for t in texts(at, "error"))

    @pytest.mark.parametrize(
        "field,value,phrase",
        [
            pytest.param("lr", float("nan"), "Learning rate must be in (0, 100], got nan", id="lr_nan"),
            pytest.param("lr", float("inf"), "Learning rate must be in (0, 100], got inf", id="lr_inf"),
            pytest.param("lr", 0.0, "Learning rate must be in (0, 100], got 0.0", id="lr_zero"),
            pytest.param("beta", float("nan"), "Beta must be in [0, 1000], got nan", id="beta_nan"),
            pytest.param(
                "free_bits", float("inf"), "Free bits must be in [0, 100] nats, got inf", id="free_bits_inf"
            ),
            pytest.param("epochs", None, "Epochs is empty: enter a value.", id="epochs_empty"),
        ],
    )
    def test_non_finite_and_empty_values_are_refused(self, field, value, phrase):
        mc, tc, errors = settings(**{field: value})
        assert mc is None and tc is None
        assert any(phrase in e for e in errors), errors

    def test_too_long_warmup_message_gives_the_range(self):
        _, _, errors = settings(warmup_steps=20_000_000)
        assert any("KL warm-up" in e and "10000000" in e for e in errors), errors

    def test_the_form_cannot_even_hold_nan_or_inf(self, train_page):
        """Streamlit's number_input drops NaN/inf (a browser cannot type them either): the last value stays."""
        at = train_page()
        for v in (float("nan"), float("inf"), float("-inf")):
            at.number_input(key="train_lr").set_value(v).run()
            assert not at.exception and at.session_state["train_lr"] == pytest.approx(1e-3)
            assert not texts(at, "error")

    def test_a_model_too_big_for_the_server_is_refused(self, train_page):
        mc, tc, errors = settings(hidden="8192,8192,8192,8192,8192,8192", latent_dim=64)
        assert mc is None and errors, "a 686 M-parameter model must be refused with a message"
        at = train_page()  # the form says so before anyone presses Start (nothing is built here)
        at.text_input(key="train_hidden").set_value("8192,8192,8192,8192,8192,8192").run()
        assert texts(at, "error"), "the form must warn about the model's size"


# ====================================================================== training mishaps
class TestTraining:
    def test_a_diverging_run_is_stopped_with_a_message_and_keeps_finite_weights(self, train_page):
        at = train_page(epochs=50)
        at.number_input(key="train_lr").set_value(10.0).run()
        at.button(key="train_start").click().run()
        tr = trainer_of(at)
        assert tr.join(60), "a diverged run must end its thread"
        assert tr.state == S.DIVERGED
        at.run()
        assert not at.exception
        errs = texts(at, "error")
        assert any(
            e.startswith("training diverged at step") and "Lower the learning rate (now 10)" in e
            for e in errs
        ), errs
        assert any("diverged" in p.proto.text for p in at.get("progress"))
        assert all(torch.isfinite(p).all() for p in tr.model_copy().parameters()), (
            "the last good weights are kept"
        )
        assert all(np.isfinite(tr.history.loss)), "no NaN reaches the charts"
        assert at.button(key="train_resume").disabled and not at.button(key="train_start").disabled
        at.button(key="train_use").click().run()  # the kept weights are usable in the lab
        assert not at.exception
        lm = at.session_state["current_model"]
        assert lm.source == "session"
        assert all(torch.isfinite(p).all() for p in lm.model.parameters())
        raw = checkpoint_bytes(lm.model, lm.metadata)
        assert load_checkpoint(raw).metadata["steps"] == tr.global_step  # and savable: validated as finite
        at.number_input(key="train_lr").set_value(1e-3)
        at.button(key="train_start").click().run()  # the diverged model's finite weights would go: Start asks
        assert trainer_of(at) is tr and any("press Start again" in t for t in (w.value for w in at.warning))
        at.button(key="train_start").click().run()  # a new start with a sane rate trains again
        assert trainer_of(at) is not tr and trainer_of(at).state in LIVE
        metadata_state_is(lm.metadata, S.DIVERGED)

    def test_stop_in_the_middle_of_an_epoch(self, train_page):
        at = train_page()
        at.button(key="train_start").click().run()
        tr = trainer_of(at)
        spe = tr.steps_per_epoch  # 12 on digits at batch 128
        assert wait_for(lambda: tr.state == S.RUNNING and tr.global_step > spe, 60)
        at.run()
        at.button(key="train_pause").click().run()  # the worker holds after the step in flight
        settle(tr)
        while tr.global_step % spe != 5:  # the training runs in another process: Step it to mid-epoch
            assert tr.step() is not None
        at.button(key="train_stop").click().run()
        assert not at.exception
        assert tr.join(10) and tr.state == S.STOPPED
        held = settle(tr)
        assert held % spe == 5, "stopped mid-epoch, after the step in flight"
        assert any(t.startswith(f"Stopped at step {held}.") for t in texts(at, "info")), texts(at, "info")
        time.sleep(0.3)
        at.run()
        assert not at.exception and tr.global_step == held, "a stopped trainer does not step"
        assert any(
            f"step {held:,}/" in p.proto.text and "stopped" in p.proto.text for p in at.get("progress")
        )
        meta = tr.metadata()
        assert meta["steps"] == held
        assert meta["epochs"] == pytest.approx(held / spe) and meta["epochs"] % 1 != 0, "a fractional epoch"
        assert len(meta["history"]["step"]) == held and meta["history"]["step"][-1] == held
        downloads = [b.proto.id.rsplit("-", 1)[-1] for b in at.get("download_button")]
        assert "train_download" in downloads, "the stopped weights can be downloaded"
        at.button(key="train_use").click().run()
        lm = at.session_state["current_model"]
        assert lm.metadata["steps"] == held
        for k, v in tr.model_copy().state_dict().items():
            assert torch.equal(lm.model.state_dict()[k], v.cpu()), k
        at.button(key="train_resume").click().run()  # Resume continues from there, not from zero
        assert wait_for(lambda: tr.global_step > held + 3)
        assert tr.history.step[:held] == list(range(1, held + 1))
        metadata_state_is(meta, S.STOPPED)

    def test_reset_while_training(self, train_page):
        at = train_page()
        at.button(key="train_start").click().run()
        tr = trainer_of(at)
        assert wait_for(lambda: tr.global_step > 3, 60)
        assert at.button(key="train_reset").disabled is False
        at.button(key="train_reset").click().run()  # the first press asks; training goes on meanwhile
        assert trainer_of(at) is tr and any("press Reset again" in w.value for w in at.warning)
        at.button(key="train_reset").click().run()
        assert not at.exception
        assert trainer_of(at) is None
        assert tr.join(10) and wait_for(lambda: tr.pid not in worker_children(), 10), (
            "the discarded trainer's worker process must end"
        )
        assert tr.state == S.STOPPED
        assert any(t.startswith("Reset") for t in texts(at, "info"))
        assert (
            at.button(key="train_start").disabled is False and at.button(key="train_reset").disabled is True
        )
        at.button(key="train_start").click().run()  # and the session can train again
        assert trainer_of(at) is not tr and trainer_of(at).state in LIVE

    def test_switching_pages_while_training(self, train_page):
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        at.switch_page("lab_pages/train.py").run()
        at.selectbox(key="train_dataset").set_value("digits")
        at.number_input(key="train_epochs").set_value(3000).run()
        at.button(key="train_start").click().run()
        assert not at.exception
        h = at.session_state["train_handle"]
        tr = h.trainer
        try:
            assert tr.state in LIVE
            assert wait_for(lambda: tr.global_step > 2, 60)
            for other in ("lab_pages/elbo.py", "lab_pages/explorer.py", "lab_pages/home.py"):
                at.switch_page(other).run()
                assert not at.exception, (other, at.exception)
                before = tr.global_step
                assert wait_for(lambda before=before: tr.global_step > before + 3), (
                    f"training goes on while {other} is open"
                )
            assert at.session_state["train_handle"] is h and h.trainer is tr
            at.switch_page("lab_pages/train.py").run()
            assert not at.exception
            assert any("running" in p.proto.text for p in at.get("progress")), (
                "the Train page shows the run again"
            )
            assert (
                at.button(key="train_pause").disabled is False
                and at.button(key="train_start").disabled is True
            )
            at.button(key="train_stop").click().run()
            assert tr.join(10) and tr.state == S.STOPPED
        finally:
            h.close()
            tr.join(10)


@pytest.fixture(scope="class")
def stepped_page(worker_registry):
    """One Train page session on digits with one step taken, shared by a class's tests (one worker for all)."""
    at = AppTest.from_file(TRAIN_PAGE, default_timeout=120)
    at.run()
    at.selectbox(key="train_dataset").set_value("digits")
    at.button(key="train_step").click().run()
    assert not at.exception and trainer_of(at).global_step == 1, texts(at, "warning")
    yield at
    at.session_state["train_handle"].close()


class TestCheckpointNames:
    @pytest.mark.parametrize(
        "name",
        [
            pytest.param("../escape", id="parent_dir"),
            pytest.param("a/b", id="slash"),
            pytest.param("..", id="dotdot"),
            pytest.param("", id="empty"),
            pytest.param("x" * 65, id="65_chars"),
            pytest.param("name.safetensors", id="dot"),
            pytest.param(".hidden", id="hidden_file"),
            pytest.param("naïve", id="non_ascii"),
        ],
    )
    def test_hostile_checkpoint_names_are_refused(self, stepped_page, tmp_path, monkeypatch, name):
        monkeypatch.setattr(model_store, "SESSION_CHECKPOINT_DIR", tmp_path / "saved")
        at = stepped_page
        at.text_input(key="train_save_name").set_value(name)
        at.button(key="train_save").click().run()
        assert not at.exception
        assert any("is not allowed" in t for t in texts(at, "error")), texts(at, "error")
        assert not (tmp_path / "saved").exists() or not any((tmp_path / "saved").iterdir())
        assert not (tmp_path / "escape.safetensors").exists()


# ====================================================================== data files
def write_idx(path: Path, arr: np.ndarray, dtype_code: int = 0x08) -> Path:
    raw = (
        bytes([0, 0, dtype_code, arr.ndim])
        + struct.pack(">" + "I" * arr.ndim, *arr.shape)
        + arr.astype(np.uint8).tobytes()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


def fake_fashion(folder: Path, n_train: int = 40, n_test: int = 20, size: int = 28) -> None:
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte", rng.integers(0, 256, (n_train, size, size)))
    write_idx(folder / "train-labels-idx1-ubyte", rng.integers(0, 10, n_train))
    write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, size, size)))
    write_idx(folder / "t10k-labels-idx1-ubyte", rng.integers(0, 10, n_test))


@contextmanager
def broken_fashion(tmp_path: Path, monkeypatch, name: str, damage):
    """A fake Fashion-MNIST as the data folder, its file ``name`` rewritten as ``damage(bytes)``; yields
    that file's path. The process-wide dataset cache (it may hold the real Fashion-MNIST) is cleared
    before and after."""
    fake_fashion(tmp_path / "fashion-mnist")
    bad = tmp_path / "fashion-mnist" / name
    bad.write_bytes(damage(bad.read_bytes()))
    monkeypatch.setenv("VAE_LAB_DATA", str(tmp_path))
    clear_dataset_cache()
    try:
        yield bad
    finally:
        clear_dataset_cache()


def press_on_fashion(train_page, button: str) -> AppTest:
    """A Train page AppTest with Fashion-MNIST chosen and ``button`` pressed; it must not raise."""
    at = train_page()
    at.selectbox(key="train_dataset").set_value("fashion-mnist").run()
    at.button(key=button).click().run()
    assert not at.exception, at.exception
    return at


class TestData:
    """IDX files not covered by test_data.py (wrong magic, truncated body, damaged gzip, missing file)."""

    def test_empty_file(self, tmp_path):
        p = tmp_path / "train-images-idx3-ubyte"
        p.write_bytes(b"")
        with pytest.raises(
            DatasetError, match=r"train-images-idx3-ubyte: too short to be an IDX file \(0 bytes\)"
        ):
            read_idx(p)

    def test_truncated_header(self, tmp_path):
        p = tmp_path / "t10k-images-idx3-ubyte"
        p.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">I", 10))
        with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte: truncated IDX header"):
            read_idx(p)

    def test_wrong_element_type(self, tmp_path):
        p = write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5), dtype_code=0x0D)
        with pytest.raises(
            DatasetError, match=r"train-labels-idx1-ubyte: IDX element type 0x0d is not unsigned bytes"
        ):
            read_idx(p)

    def test_header_promising_huge_data_is_refused_naming_the_file(self, tmp_path):
        p = tmp_path / "train-images-idx3-ubyte"
        p.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 2**31, 2**31, 2**31) + b"\x00" * 100)
        with pytest.raises(DatasetError, match="train-images-idx3-ubyte: truncated: header promises"):
            read_idx(p)

    def test_wrong_image_size_names_the_file(self, tmp_path):
        fake_fashion(tmp_path / "fashion-mnist", size=8)
        with pytest.raises(
            DatasetError, match=r"train-images-idx3-ubyte: images are \(8, 8\), expected \(28, 28\)"
        ):
            data.load_dataset("fashion-mnist", root=tmp_path, download=False)

    def test_labels_file_in_place_of_images_names_the_file(self, tmp_path):
        fake_fashion(tmp_path / "fashion-mnist")
        shutil.copy(
            tmp_path / "fashion-mnist" / "t10k-labels-idx1-ubyte",
            tmp_path / "fashion-mnist" / "t10k-images-idx3-ubyte",
        )
        with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte: images are"):
            data.load_dataset("fashion-mnist", root=tmp_path, download=False)

    def test_one_file_missing_lists_what_to_get(self, tmp_path, monkeypatch):
        monkeypatch.setattr(data, "DEBIAN_DIRS", {"fashion-mnist": tmp_path / "none"})
        fake_fashion(tmp_path / "fashion-mnist")
        (tmp_path / "fashion-mnist" / "t10k-labels-idx1-ubyte").unlink()
        with pytest.raises(DatasetUnavailable) as err:
            data.load_dataset("fashion-mnist", root=tmp_path, download=False)
        msg = str(err.value)
        assert "t10k-labels-idx1-ubyte" in msg and str(tmp_path / "fashion-mnist") in msg and "digits" in msg

    def test_train_page_names_the_broken_file_and_stays_up(self, train_page, tmp_path, monkeypatch):
        """A truncated Fashion-MNIST file in the data folder: Start says which file, nothing crashes."""
        with broken_fashion(tmp_path, monkeypatch, "train-images-idx3-ubyte", lambda raw: raw[:-100]) as bad:
            at = press_on_fashion(train_page, "train_start")
            errs = texts(at, "error")
            assert any(e.startswith("Not started:") and str(bad) in e and "truncated" in e for e in errs), (
                errs
            )
            assert trainer_of(at) is None
            at.selectbox(key="train_dataset").set_value("digits").run()
            at.button(key="train_start").click().run()  # the page still works on another dataset
            assert trainer_of(at) is not None and trainer_of(at).state in LIVE

    def test_step_with_a_broken_data_file_names_the_file(self, train_page, tmp_path, monkeypatch):
        wrong_magic = b"\x12\x34\x08\x01"
        with broken_fashion(
            tmp_path, monkeypatch, "t10k-labels-idx1-ubyte", lambda raw: wrong_magic + raw[4:]
        ) as bad:
            at = press_on_fashion(train_page, "train_step")
            errs = texts(at, "error")
            assert any(str(bad) in e and "not an IDX file" in e for e in errs), errs
            assert trainer_of(at) is None


# ====================================================================== atomic saves
# One Python process imports torch once and forks writers on request (a fresh interpreter per kill
# costs seconds on a busy machine). Each writer saves version v, v+1, ... of a 784-2048-64 VAE
# (14 MB) over the same path, forever; version v has encoder.mu.bias filled with v.
ZYGOTE = """
import os, sys, torch
torch.set_num_threads(1)  # no OpenMP pool: the forked writers must not depend on threads
from vae_core.checkpoint import save_checkpoint
from vae_core.models import ModelConfig, build_model
torch.manual_seed(0)
model = build_model(ModelConfig(kind="vae", input_dim=784, image_shape=(1, 28, 28), hidden=(2048,), latent_dim=64))
out = sys.stdout.fileno()
def say(msg):
    os.write(out, (msg + "\\n").encode())
say("ready")
for line in sys.stdin:
    v = int(line.split()[1])
    pid = os.fork()
    if pid == 0:
        while True:
            with torch.no_grad():
                model.encoder.mu.bias.fill_(float(v))
            say(f"begin {{v}}")
            save_checkpoint(sys.argv[1], model, {{"version": v}})
            say(f"done {{v}}")
            v += 1
    say(f"pid {{pid}}")
    os.waitpid(pid, 0)
    say(f"reaped {{pid}}")
"""


class TestAtomicSave:
    def test_a_killed_writer_leaves_the_previous_complete_file(self, tmp_path, monkeypatch):
        """SIGKILL a process that keeps saving a 14 MB checkpoint over the same path, at random moments."""
        path = tmp_path / "ck.safetensors"
        torch.manual_seed(0)
        ref_sd = build_model(
            ModelConfig(kind="vae", input_dim=784, image_shape=(1, 28, 28), hidden=(2048,), latent_dim=64)
        ).state_dict()
        zygote = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE.format(root=str(ROOT)), str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

        def line() -> str:
            got = zygote.stdout.readline()
            assert got, "the writer process died"
            return got.strip()

        rng = random.Random(1)
        kills, mid_write = 6, 0
        try:
            assert line() == "ready"
            for k in range(kills):
                zygote.stdin.write(f"fork {100 * k}\n")
                zygote.stdin.flush()
                lines, pid = [], None
                # the first writer must complete one version, so there is a previous file; later ones
                # are killed from their first "begin" on: before, during or after a ~0.1 s save
                while pid is None or not any(ln.startswith("done" if k == 0 else "begin") for ln in lines):
                    ln = line()
                    if ln.startswith("pid "):
                        pid = int(ln.split()[1])
                    else:
                        lines.append(ln)
                time.sleep(rng.uniform(0.0, 0.35))
                os.kill(pid, signal.SIGKILL)
                while (ln := line()) != f"reaped {pid}":
                    lines.append(ln)
                begun = [int(ln.split()[1]) for ln in lines if ln.startswith("begin")]
                done = [int(ln.split()[1]) for ln in lines if ln.startswith("done")]
                if not done or begun[-1] > done[-1]:
                    mid_write += 1
                ck = load_checkpoint(path)  # complete and valid after every kill
                v = ck.metadata["version"]
                assert v in begun or (not done and v < 100 * k), (v, begun, done)
                if done:
                    assert v >= done[-1], "the file is at least the last completed save"
                for name, t in ck.model.state_dict().items():
                    want = torch.full_like(t, float(v)) if name == "encoder.mu.bias" else ref_sd[name]
                    assert torch.equal(t, want), f"version {v}: tensor {name} is not what was saved"
        finally:
            zygote.stdin.close()
            zygote.wait(30)
        assert mid_write >= 1, "no kill landed while a save was in progress; the test proved nothing"
        # leftovers of killed writes are hidden *.tmp files, never taken for checkpoints
        others = [p.name for p in tmp_path.iterdir() if p.name != "ck.safetensors"]
        assert all(n.startswith(".ck.safetensors.") and n.endswith(".tmp") for n in others), others
        monkeypatch.setattr(model_store, "CHECKPOINT_DIR", tmp_path)
        monkeypatch.setattr(model_store, "SESSION_CHECKPOINT_DIR", tmp_path / "saved")
        assert list(model_store.list_shipped()) == ["ck"]
