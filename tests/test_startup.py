"""What the server does at launch and on a session's first pages (issue: first visits): no UMAP warm-up at launch
or on the latent map (a session's own model starts it), Home preloads the current model's dataset in the
background, and Streamlit's post-run gc.collect(2) is switched off in .streamlit/config.toml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from streamlit.testing.v1 import AppTest

from lab_pages import datasets, model_store
from tests.conftest import APP, ROOT
from vae_core import umap_runtime
from vae_core.checkpoint import read_metadata


@pytest.fixture
def warmups(monkeypatch) -> list[dict]:
    """Every call of vae_core.umap_runtime.start_background_warmup from now on (none is started), as its kwargs.

    Callers look it up at call time (lab_pages.state imports it inside add_session_model); a module that bound
    the name at import time is patched there too."""
    calls: list[dict] = []
    original = umap_runtime.start_background_warmup

    def record(*args, **kwargs):
        calls.append({"args": args, **kwargs})

    monkeypatch.setattr(umap_runtime, "start_background_warmup", record)
    for name, mod in list(sys.modules.items()):
        bound = getattr(mod, "start_background_warmup", None) is original
        if bound and (name == "app" or name.startswith(("lab_pages", "vae_core"))):
            monkeypatch.setattr(mod, "start_background_warmup", record)
    return calls


@pytest.fixture
def preloads(monkeypatch) -> list[str]:
    """Every call of lab_pages.datasets.preload_dataset from now on (nothing is loaded), as its dataset name."""
    calls: list[str] = []
    monkeypatch.setattr(datasets, "preload_dataset", lambda name: calls.append(name))
    return calls


# ---------------------------------------------------------------------------- (a) Home and the latent map
def test_home_preloads_the_models_data_and_starts_no_warmup(warmups, preloads) -> None:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    lm = at.session_state["current_model"]
    want = next(
        n
        for n in model_store.DEFAULT_SHIPPED  # the first default whose data is on this machine
        if datasets.dataset_available(
            read_metadata(model_store.CHECKPOINT_DIR / f"{n}.safetensors")["dataset"]
        )
    )
    assert lm.label == want and lm.source == "shipped"  # the default model
    assert preloads == [lm.dataset_name], preloads
    assert warmups == [], "Home must not start UMAP's warm-up"

    at.run()  # a second Home run asks again (idempotent in preload_dataset), still no warm-up
    assert not at.exception
    assert preloads == [lm.dataset_name] * 2 and warmups == []

    at.switch_page("lab_pages/latent_map.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Latent map" in t.value for t in at.title)
    assert warmups == [], (
        "the latent map of a shipped model must not start UMAP's warm-up (its map is shipped)"
    )
    assert preloads == [lm.dataset_name] * 2, "only Home preloads"


def test_the_latent_map_page_alone_starts_no_warmup(warmups) -> None:
    at = AppTest.from_file(str(ROOT / "lab_pages" / "latent_map.py"), default_timeout=180)
    at.session_state["current_model"] = model_store.load_shipped("digits_vae_z2")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert warmups == []


# ---------------------------------------------------------------------------- (b) a session's own model
def add_model_script() -> None:
    """Registers a session model (a copy of the shipped digits VAE) as the Train page's Use does."""
    import streamlit as st

    from lab_pages import state
    from lab_pages.model_store import LoadedModel, load_shipped

    base = load_shipped("digits_vae_z2")
    lm = LoadedModel("session:mine", "mine", "session", base.model, base.config, dict(base.metadata))
    state.add_session_model(lm, make_current=st.session_state.get("make_current", True))
    st.write("current:", state.stored_model().label if state.stored_model() else None)


@pytest.mark.parametrize("make_current", [True, False])
def test_add_session_model_starts_the_warmup(warmups, make_current: bool) -> None:
    at = AppTest.from_function(add_model_script, default_timeout=120)
    at.session_state["make_current"] = make_current
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert warmups == [{"args": (), "delay": 1.0}]
    assert list(at.session_state["session_models"]) == ["mine"]
    current = at.session_state.get("current_model")
    assert (current is not None and current.label == "mine") == make_current
    at.run()  # registered again: asked again (start_background_warmup itself is idempotent)
    assert len(warmups) == 2


# ---------------------------------------------------------------------------- (c) preload_dataset
class _Threads:
    """A stand-in for lab_pages.datasets' ``threading`` that records the threads it starts."""

    def __init__(self) -> None:
        self.started: list[threading.Thread] = []
        outer = self

        class Thread(threading.Thread):
            def start(self) -> None:
                outer.started.append(self)
                super().start()

        self.Thread = Thread

    def join(self) -> None:
        for t in self.started:
            t.join(60)
            assert not t.is_alive()


@pytest.fixture
def threads(monkeypatch) -> _Threads:
    rec = _Threads()
    monkeypatch.setattr(datasets, "threading", rec)
    monkeypatch.setattr(datasets, "_PRELOADS", set())  # as in a fresh server
    return rec


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    """Calls of load_dataset made by the shared dataset cache, which starts empty."""
    calls: list[str] = []
    real = datasets.load_dataset

    def counting(name, **kwargs):
        calls.append(name)
        assert kwargs == {"download": False}
        return real(name, **kwargs)

    datasets._shared_dataset.clear()
    monkeypatch.setattr(datasets, "load_dataset", counting)
    yield calls
    datasets._shared_dataset.clear()  # nothing of the counting loader stays cached for other tests


def test_preload_fills_the_shared_cache_once(threads, loads, monkeypatch) -> None:
    for _ in range(3):
        datasets.preload_dataset("digits")
    assert (
        len(threads.started) == 1
        and threads.started[0].daemon
        and threads.started[0].name == "preload-digits"
    )
    threads.join()
    assert loads == ["digits"]
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("not from the cache"))
    ds = datasets._shared_dataset("digits")  # now a cache hit
    assert ds.x_test.shape == (359, 64) and ds.name == "digits"
    assert datasets.get_dataset("digits") is ds
    datasets.preload_dataset("digits")
    assert len(threads.started) == 1


@pytest.mark.parametrize("name", ["user:mine.npz", "no-such-dataset"])
def test_user_and_unavailable_datasets_start_no_thread(threads, loads, name: str) -> None:
    assert not datasets.dataset_available(name)
    datasets.preload_dataset(name)
    assert threads.started == [] and loads == [] and set() == datasets._PRELOADS


def test_unavailable_builtin_dataset_starts_no_thread(threads, loads, monkeypatch) -> None:
    monkeypatch.setattr(datasets, "dataset_available", lambda name: name != "fashion-mnist")
    datasets.preload_dataset("fashion-mnist")
    assert threads.started == [] and loads == []


def test_a_failed_preload_is_retried_later(threads, monkeypatch) -> None:
    attempts: list[str] = []

    def broken(name):
        attempts.append(name)
        raise OSError("disk gone")

    monkeypatch.setattr(datasets, "_shared_dataset", broken)
    datasets.preload_dataset("digits")
    threads.join()
    assert (
        attempts == ["digits"] and "digits" not in datasets._PRELOADS
    )  # the page that needs it will say why
    datasets.preload_dataset("digits")
    threads.join()
    assert attempts == ["digits", "digits"] and len(threads.started) == 2


# ---------------------------------------------------------------------------- (d) Streamlit's post-run gc.collect(2)
def test_config_file_switches_post_script_gc_off() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert cfg["runner"]["postScriptGC"] is False


STREAMLIT_CONFIG_PROBE = """
import gc, json, threading
from types import SimpleNamespace
from streamlit import config
from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

config.get_config_options()  # what `streamlit run` parses: ~/.streamlit/config.toml, then ./.streamlit/config.toml
full = []
real_collect = gc.collect
gc.collect = lambda *a, **k: full.append(a) or real_collect(*a, **k)
try:  # Streamlit's own end-of-run hook (AppTest's runner overrides it), on a stand-in runner
    fake = SimpleNamespace(_join_wake_lock=threading.Lock(), on_event=SimpleNamespace(send=lambda *a, **k: None))
    ScriptRunner._on_script_finished(fake, SimpleNamespace(has_script_started=False), None, True, None)
    gc2 = full.count((2,))
except Exception as exc:  # Streamlit's internals moved: the option alone is checked
    gc2 = None
print(json.dumps({"option": config.get_option("runner.postScriptGC"), "gc2": gc2}))
"""


def _probe(cwd) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env["HOME"] = str(cwd)  # no global ~/.streamlit/config.toml of whoever runs the tests
    out = subprocess.run(
        [sys.executable, "-c", STREAMLIT_CONFIG_PROBE],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_streamlit_reads_post_script_gc_off_from_the_project(tmp_path) -> None:
    """Started in the project root, as `streamlit run app.py` is, Streamlit's option is off and its end-of-run hook
    collects nothing; started elsewhere (the control), the default is on and the hook runs gc.collect(2)."""
    here, elsewhere = _probe(ROOT), _probe(tmp_path)
    assert here["option"] is False and elsewhere["option"] is True, (here, elsewhere)
    if here["gc2"] is not None and elsewhere["gc2"] is not None:
        assert here["gc2"] == 0 and elsewhere["gc2"] == 1, (here, elsewhere)


def test_the_servers_torch_threads_wait_passively_unless_the_host_says(monkeypatch) -> None:
    """OpenMP's spinning threads took cores from the workers (docs/performance.md): app.py sets the
    policy before any page imports torch, and a host's own OMP_WAIT_POLICY wins."""
    from vae_core.forkserver import server_openmp_env

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    server_openmp_env()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    server_openmp_env()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    app = (ROOT / "app.py").read_text()
    assert app.index("\nserver_openmp_env()") < app.index("st.navigation(")  # before the first page runs
