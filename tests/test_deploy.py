"""deploy/: HAProxy's configuration and the replicas' shared folder of saved models (the browser walk
through the balancer is tests/e2e/test_balancer.py)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from deploy.local import COOKIE, HEALTH, Trial, haproxy_binary, haproxy_config
from lab_pages import model_store
from tests.conftest import ROOT


def test_the_shipped_config_is_what_the_trial_writes() -> None:
    """deploy/haproxy.cfg is `python -m deploy.local --print-config` for the defaults (one source)."""
    assert (ROOT / "deploy" / "haproxy.cfg").read_text() == Trial().config()


def test_the_config_has_affinity_websockets_and_health_checks() -> None:
    cfg = haproxy_config(9000, [("10.0.0.5", 8501), ("10.0.0.6", 8501), ("10.0.0.7", 8502)])
    assert f"cookie {COOKIE} insert" in cfg  # affinity by an inserted cookie
    assert "timeout tunnel 12h" in cfg  # websockets outlive the HTTP timeouts
    assert f"option httpchk GET {HEALTH}" in cfg and "http-check expect string ok" in cfg
    assert "option redispatch" in cfg  # a browser pinned to a dead replica goes to a live one
    servers = [line.split() for line in cfg.splitlines() if line.strip().startswith("server ")]
    assert [(s[1], s[2], s[-1]) for s in servers] == [
        ("r1", "10.0.0.5:8501", "r1"),
        ("r2", "10.0.0.6:8501", "r2"),
        ("r3", "10.0.0.7:8502", "r3"),
    ]
    assert all("check" in s for s in servers)


@pytest.mark.skipif(haproxy_binary() is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_config(tmp_path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(haproxy_config(9000, [("127.0.0.1", 8501), ("127.0.0.1", 8502)]))
    done = subprocess.run([haproxy_binary(), "-c", "-f", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stdout + done.stderr, done.stdout + done.stderr


def test_saved_models_live_in_the_folder_the_setting_names(monkeypatch, tmp_path) -> None:
    """Replicas share saved models through VAE_LAB_SAVED_DIR: a file another process writes there is listed
    (and loads) at the next page run, under saved/<name>."""
    monkeypatch.delenv(model_store.SAVED_DIR_ENV, raising=False)
    assert model_store.saved_dir() == model_store.SESSION_CHECKPOINT_DIR
    shared = tmp_path / "shared"
    monkeypatch.setenv(model_store.SAVED_DIR_ENV, str(shared))
    assert model_store.saved_dir() == shared
    assert not any(n.startswith("saved/") for n in model_store.list_shipped())
    shared.mkdir()
    shutil.copy(ROOT / "checkpoints" / "digits_vae_z2.safetensors", shared / "from_replica_2.safetensors")
    assert "saved/from_replica_2" in model_store.list_shipped()
    lm = model_store.load_shipped("saved/from_replica_2")
    assert lm.config.latent_dim == 2 and lm.label == "saved/from_replica_2"
