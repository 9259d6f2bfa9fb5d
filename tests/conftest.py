"""Shared fixtures: the digits dataset (always offline) and small trained models."""

from __future__ import annotations

import os
from pathlib import Path

# As app.py does: tests run trainer threads, AppTest scripts and UMAP side by side, and spinning
# OpenMP waits make that many times slower on 2 cores. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

from vae_core.data import dataset_available, load_dataset  # noqa: E402
from vae_core.models import ModelConfig  # noqa: E402
from vae_core.train import TrainConfig, Trainer  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

needs_fashion = pytest.mark.skipif(
    not dataset_available("fashion-mnist"),
    reason="Fashion-MNIST files not on this machine (apt-get install dataset-fashion-mnist; .ci/run does this)",
)


def digits_config(kind: str = "vae", latent: int = 2, hidden: tuple[int, ...] = (64,)) -> ModelConfig:
    """A small model for the 8x8 digits (D=64)."""
    return ModelConfig(kind=kind, input_dim=64, image_shape=(1, 8, 8), hidden=hidden, latent_dim=latent)


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def trained_vae_z2(digits):
    """A digits VAE with a 2-D latent, trained for 60 epochs (~700 steps, about a second)."""
    tr = Trainer(
        digits_config("vae", 2, (64,)),
        TrainConfig(dataset="digits", epochs=60, seed=0),
        dataset=digits,
        device="cpu",
    )
    tr.run()
    assert tr.state == "finished"
    return tr.model.eval()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module that runs trainer threads beside AppTest scripts.

    On 2 cores, several 2-thread OpenMP teams oversubscribe the CPU and run many times slower
    (measured 5-20x on a loaded machine). Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; the old count is restored after.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ====================================================================== page-test helpers (AppTest)
# Shared by the test_*_page.py files, test_app.py, test_hostile.py and test_sessions.py.
import base64  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = str(ROOT / "app.py")
TRAIN_PAGE = str(ROOT / "lab_pages" / "train.py")
ENV_MAX_TRAINERS = "VAE_LAB_MAX_TRAINERS"  # the trainer registry's settings (read from the environment)
ENV_TRAINER_TIMEOUT = "VAE_LAB_TRAINER_TIMEOUT"


def wait_for(cond, timeout: float = 30.0, poll: float = 0.01) -> bool:
    """Poll ``cond()`` every ``poll`` s (10 ms by default) until it is true or ``timeout`` s have passed; its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(poll)
    return cond()


def run_page(path: str, lm=None, timeout: float = 120, **state) -> AppTest:
    """Run the page at ``path`` once, with ``lm`` as the current model and ``state`` put into
    session state first; it must not raise."""
    at = AppTest.from_file(path, default_timeout=timeout)
    if lm is not None:
        at.session_state["current_model"] = lm
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest, kind: str) -> list[str]:
    """The values of every element of one kind (``"error"``, ``"info"``, ``"caption"`` …)."""
    return [e.value for e in getattr(at, kind)]


def plotly_array(v) -> np.ndarray:
    """A Plotly JSON array: a plain list, or Plotly 6+'s typed-array form {"dtype", "bdata"}."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v)


def plotly_figures(at: AppTest) -> dict[str, dict]:
    """{chart key: figure JSON} of every Plotly chart on the page."""
    return {el.proto.id.rsplit("-", 1)[-1]: json.loads(el.proto.spec) for el in at.get("plotly_chart")}


def trainer_of(at: AppTest):
    """The Train page's trainer in this AppTest session (None before Start or Step)."""
    return at.session_state["train_handle"].trainer


def metrics(at: AppTest) -> list[tuple[str, str]]:
    """(label, value) of every metric on the page, in page order."""
    return [(m.label, m.value) for m in at.metric]


def chart_titles(at: AppTest) -> dict[str, str]:
    """{chart key: title text} of every Plotly chart on the page."""
    return {key: fig["layout"]["title"]["text"] for key, fig in plotly_figures(at).items()}


def shipped_fixture(name: str):
    """A module-scoped fixture of the shipped checkpoint ``name`` as a LoadedModel; the fixture is
    called what it is assigned to in the test module (``vae = shipped_fixture("digits_vae_z2")``)."""

    @pytest.fixture(scope="module")
    def fixture():
        from lab_pages.model_store import load_shipped  # noqa: PLC0415

        return load_shipped(name)

    return fixture


def through_router(page: str, lm, timeout: float = 120) -> AppTest:
    """app.py with ``lm`` as the current model, switched to ``page`` (``"lab_pages/x.py"``); it must not raise."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.session_state["current_model"] = lm
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


def run_page_in_chinese(path: str, lm, timeout: float = 120) -> AppTest:
    """Run the page at ``path`` once with ``?lang=zh`` and ``lm`` as the current model; it must not raise."""
    at = AppTest.from_file(path, default_timeout=timeout)
    at.query_params["lang"] = "zh"
    at.session_state["current_model"] = lm
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def train_page(monkeypatch):
    """A factory of Train page AppTests on digits with a long run (``epochs``); every trainer they
    started is stopped afterwards. The registry never times a test session out."""
    monkeypatch.setenv(ENV_TRAINER_TIMEOUT, "0")
    monkeypatch.delenv(ENV_MAX_TRAINERS, raising=False)
    made: list[AppTest] = []

    def make(epochs: int = 3000, kind: str = "VAE", path: str = TRAIN_PAGE) -> AppTest:
        at = AppTest.from_file(path, default_timeout=120)
        at.run()
        at.selectbox(key="train_dataset").set_value("digits")
        at.radio(key="train_kind").set_value(kind)
        at.number_input(key="train_epochs").set_value(epochs)
        at.run()
        assert not at.exception, at.exception
        made.append(at)
        return at

    yield make
    for at in made:
        h = at.session_state.get("train_handle", None)
        if h is not None:
            tr = h.trainer
            h.close()
            if tr is not None:
                tr.join(10)


# ====================================================================== worker processes (issue 15)
# Training jobs run in workers forked by the lab's fork server (vae_core.forkserver), a child of this
# process: page tests share it and check that no worker is left behind.
from vae_core import registry as _registry  # noqa: E402

ENV_WORKER_WAIT_POLICY = "VAE_LAB_WORKER_WAIT_POLICY"


def _proc_children() -> dict[int, list[int]]:
    """{parent pid: [live (not zombie) child pids]} of every process, read from /proc."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        if fields[0] != "Z":
            kids.setdefault(int(fields[1]), []).append(int(d))
    return kids


def worker_children() -> list[int]:
    """Pids of the live training workers of this process: the children of its fork server(s)."""
    kids, found = _proc_children(), []
    for pid in kids.get(os.getpid(), []):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if b"vae_core.forkserver" in cmd:
            found += kids.get(pid, [])
    return found


@pytest.fixture(scope="module")
def worker_registry():
    """A fresh process-wide registry for one test module: sessions never time out, and the fork server
    runs (see ``fork_server``). At the end of the module every worker is shut down and none may be left."""
    before = set(worker_children())  # workers of other modules' registries are theirs to end
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_TRAINER_TIMEOUT, "0")
        fresh = _registry.TrainerRegistry()
        mp.setattr(_registry, "_DEFAULT", fresh)
        yield fresh
        fresh.shutdown()
    assert wait_for(lambda: not set(worker_children()) - before, 15), (
        f"worker processes left behind: {worker_children()}"
    )


@pytest.fixture(scope="session", autouse=True)
def no_worker_outlives_the_tests():
    """At the end of the run the process-wide registry ends its workers, as the server does at exit; none may be left."""
    yield
    _registry.default_registry().shutdown()
    assert wait_for(lambda: not worker_children(), 15), f"worker processes left behind: {worker_children()}"


@pytest.fixture
def fork_server(worker_registry):
    """The fork server running and ready (torch imported) before each test: a Start forks a lean worker."""
    worker_registry.warm()
    assert wait_for(lambda: worker_registry.pool.ready, 120), "the fork server did not get ready"
    yield worker_registry


def settle(tr, quiet_s: float = 0.7, timeout: float = 15.0) -> int:
    """Wait until a worker job's step count has not changed for ``quiet_s`` s (a worker pushes
    every 0.5 s, so a step in flight at a pause or stop has arrived); its step count then."""
    end, last, since = time.monotonic() + timeout, tr.global_step, time.monotonic()
    while time.monotonic() < end and time.monotonic() - since < quiet_s:
        time.sleep(0.02)
        if tr.global_step != last:
            last, since = tr.global_step, time.monotonic()
    return last


# ------------------------------------------------------------------ your own image (the Your image page's state)
def digits_user_image():
    """A drawn "1" for the 8x8 digits (a vertical stroke), as the Your image page stores it."""
    import numpy as np

    from lab_pages.state import UserImage

    img = np.zeros(64, dtype=np.uint8)
    img[[18, 19, 26, 27, 34, 35, 42, 43]] = 255
    return UserImage(img, (1, 8, 8), "digits", "drawing")


# ------------------------------------------------------------------ the decoder component (no JavaScript here)
def component_data(at: AppTest, key: str) -> dict:
    """What the decoder component ``key`` was given on the last run (lab_pages/decoder_component.py)."""
    found = [e for e in at.get("bidi_component") if e.key == key]
    assert found, f"no component {key!r} on the page"
    return json.loads(found[0].proto.json)


def send_from_component(at: AppTest, key: str, event: str, value) -> AppTest:
    """Run again as if the browser's component ``key`` had sent ``event`` ("release" or "pin" with a point z,
    "status" with {"ok": False, "reason": ...}): what its JavaScript's setStateValue does."""
    payload = (
        {"z": [float(v) for v in value], "id": f"test-{time.perf_counter_ns()}"}
        if event != "status"
        else value
    )
    at.session_state[key] = {**at.session_state.get(key, {}), event: payload}
    return at.run()
