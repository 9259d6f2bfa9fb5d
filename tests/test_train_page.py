"""The Train page through AppTest: widgets, controls driving the session's worker process,
validation messages, the running-trainer cap, Save / Use / Download, AE view, session end,
a killed worker (issue 15) and an uploaded dataset."""

from __future__ import annotations

import gc
import io
import os
import signal
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import lab_pages.datasets as datasets
import lab_pages.model_store as model_store
from lab_pages import i18n
from tests.conftest import (
    APP,
    ENV_MAX_TRAINERS,
    settle,
    texts,
    trainer_of,
    wait_for,
    worker_children,
)
from tests.conftest import TRAIN_PAGE as PAGE
from vae_core import registry
from vae_core.checkpoint import load_checkpoint
from vae_core.data import load_dataset
from vae_core.evaluate import ACTIVE_THRESHOLD, LOW_KL_THRESHOLD
from vae_core.jobs import TrainJob
from vae_core.models import ConfigError, ModelConfig
from vae_core.train import TrainConfig
from vae_core.train import TrainerState as S

WIDGETS = {
    "selectbox": ["train_dataset"],
    "radio": ["train_kind"],
    "text_input": ["train_hidden"],
    "number_input": [
        "train_latent",
        "train_beta",
        "train_warmup",
        "train_free_bits",
        "train_lr",
        "train_batch",
        "train_epochs",
        "train_seed",
    ],
    "button": ["train_start", "train_pause", "train_resume", "train_step", "train_stop", "train_reset"],
}


# one intra-op thread per trainer thread (tests/conftest.py::one_torch_thread); a fresh registry for
# this module with the fork server ready before each test, and no worker left at its end
pytestmark = pytest.mark.usefixtures("one_torch_thread", "fork_server")
LIVE = (S.STARTING, S.RUNNING)  # what a worker is in right after Start


class TestRender:
    def test_through_the_router(self) -> None:
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        at.switch_page("lab_pages/train.py")
        at.run()
        assert not at.exception
        assert at.title[0].value == "Train"
        assert at.button(key="train_start").disabled is False
        assert at.session_state["train_handle"].trainer is None

    def test_widgets_and_defaults(self) -> None:
        at = AppTest.from_file(PAGE, default_timeout=120)
        at.run()
        assert not at.exception
        for kind, keys in WIDGETS.items():
            found = {w.key for w in getattr(at, kind)}
            assert set(keys) <= found, (kind, set(keys) - found)
        want_ds = "fashion-mnist" if "fashion-mnist" in datasets.available_datasets() else "digits"
        assert at.selectbox(key="train_dataset").value == want_ds
        assert at.radio(key="train_kind").value == "VAE"
        vals = {k: at.number_input(key=k).value for k in WIDGETS["number_input"]}
        assert vals == {
            "train_latent": 16,
            "train_beta": 1.0,
            "train_warmup": 0,
            "train_free_bits": 0.0,
            "train_lr": 1e-3,
            "train_batch": 128,
            "train_epochs": 30,
            "train_seed": 0,
        }
        assert at.text_input(key="train_hidden").value == "400"
        assert not texts(at, "error")
        disabled = {k: at.button(key=k).disabled for k in WIDGETS["button"]}
        assert disabled == {
            "train_start": False,
            "train_pause": True,
            "train_resume": True,
            "train_step": False,
            "train_stop": True,
            "train_reset": True,
        }


class TestControls:
    def test_start_pause_resume_stop_reset(self, train_page) -> None:
        at = train_page()
        at.button(key="train_start").click().run()
        assert not at.exception
        tr = trainer_of(at)
        assert tr is not None and tr.state in LIVE and tr.is_alive
        assert any("Training started" in t for t in texts(at, "success"))
        assert tr.config.dataset == "digits" and tr.model_config.latent_dim == 16 and tr.config.epochs == 3000
        assert wait_for(lambda: tr.state == S.RUNNING and tr.global_step >= 5, 60)
        at.run()
        assert not at.exception and at.button(key="train_pause").disabled is False
        assert any("running" in p.proto.text for p in at.get("progress"))

        at.button(key="train_pause").click().run()
        assert tr.state == S.PAUSED and any("Paused" in t for t in texts(at, "info"))
        held = settle(tr)  # the step in flight at the pause has arrived
        time.sleep(0.3)
        at.run()
        assert tr.global_step == held, "Pause holds the trainer"
        assert (
            at.button(key="train_resume").disabled is False and at.button(key="train_start").disabled is True
        )

        at.button(key="train_step").click().run()
        assert tr.global_step == held + 1, "Step trains exactly one batch"
        assert any(f"step {held + 1}" in t for t in texts(at, "info"))

        at.button(key="train_resume").click().run()
        assert tr.state == S.RUNNING
        assert wait_for(lambda: tr.global_step > held + 5)

        at.button(key="train_stop").click().run()
        assert tr.join(10) and tr.state == S.STOPPED
        at.run()
        assert not at.exception
        assert at.button(key="train_save").disabled is False  # a trained model can be kept

        pid = tr.pid
        at.button(key="train_reset").click().run()
        assert trainer_of(at) is tr, "a first Reset over a trained model only asks"
        at.button(key="train_reset").click().run()
        assert trainer_of(at) is None and not at.exception
        assert wait_for(lambda: pid not in worker_children(), 10), "Reset ends the worker process"

    def test_step_from_nothing_makes_an_idle_trainer(self, train_page) -> None:
        at = train_page()
        at.button(key="train_step").click().run()
        tr = trainer_of(at)
        assert tr is not None and tr.global_step == 1 and tr.state == S.IDLE, "a Step alone does not train on"
        assert any("step 1" in t for t in texts(at, "info"))
        at.button(key="train_step").click().run()
        assert tr.global_step == 2 and tr.state == S.IDLE and not at.exception
        at.button(key="train_start").click().run()  # same settings: Start continues this trainer
        assert trainer_of(at) is tr and tr.state in LIVE
        assert wait_for(lambda: tr.global_step > 3, 30) and tr.history.step[:2] == [1, 2], (
            "continued, not restarted"
        )

    def test_a_short_run_finishes_and_draws_statically(self, train_page) -> None:
        at = train_page(epochs=1)
        at.button(key="train_start").click().run()
        tr = trainer_of(at)
        assert tr.join(30) and tr.state == S.FINISHED
        at.run()
        assert not at.exception
        assert len(at.get("plotly_chart")) == 2  # -ELBO stack and the KL heatmap
        captions = [c for im in at.image for c in im.captions]  # the two image grids, drawn
        assert len(at.image) == 2 and captions[0].startswith(
            "top: 8 fixed test images · bottom: reconstructions"
        )
        assert captions[1] == "16 samples from the prior z ~ N(0, I)"
        assert any("finished" in p.proto.text for p in at.get("progress"))
        assert any("ELBO" in e.value for e in at.latex)


class TestWorkshop:
    """Issue #28: a run a host can narrate: Pause, Step and Resume mean something at any moment, the end included."""

    def test_a_finished_run_steps_and_resumes_with_the_same_model(self, train_page) -> None:
        at = train_page(epochs=1)
        at.button(key="train_start").click().run()
        tr = trainer_of(at)
        assert tr.join(30) and tr.state == S.FINISHED
        at.run()
        end, total = tr.global_step, tr.total_steps
        assert all(at.button(key=f"train_{v}").disabled is False for v in ("pause", "resume", "step"))

        at.button(key="train_pause").click().run()  # nothing to pause: it says what Step and Resume do
        assert tr.state == S.FINISHED and any(f"over at step {end}" in t for t in texts(at, "info"))

        at.button(key="train_step").click().run()
        assert trainer_of(at) is tr, "Step after the end continues the same model"
        assert tr.global_step == end + 1 and tr.state == S.PAUSED and tr.total_steps == 2 * total
        assert tr.history.step[-2:] == [end, end + 1]
        assert any(f"step {end + 1}," in t for t in texts(at, "info"))

        at.button(key="train_resume").click().run()  # paused mid-epoch: it trains to the new end
        assert trainer_of(at) is tr and tr.join(30) and tr.state == S.FINISHED
        assert tr.global_step == 2 * total
        at.run()
        at.button(key="train_resume").click().run()  # after the end: Epochs (1) more of the same model
        assert trainer_of(at) is tr and any("same model trains on" in t for t in texts(at, "success"))
        assert tr.join(30) and tr.state == S.FINISHED and tr.global_step == 3 * total
        assert tr.history.step == list(range(1, 3 * total + 1)), "one run, never restarted"
        at.run()
        assert any(
            f"step {3 * total:,}/{3 * total:,}" in p for p in (q.proto.text for q in at.get("progress"))
        )

    @pytest.mark.parametrize("lang", ["en", "zh"])
    def test_the_heatmap_caption_counts_low_kl_dims_beside_active_units(self, train_page, lang) -> None:
        """Item 2: under the KL heatmap, the dims under LOW_KL_THRESHOLD nats of KL (the pale rows) and the active
        units by Var_x[μ_j], each named, from the last test of the run's history, in either language."""
        cat = i18n.catalogue("zh_CN") if lang == "zh" else None
        gettext = cat.gettext if cat else (lambda s: s)
        at = train_page(epochs=2)
        if cat:
            at.query_params["lang"] = "zh"
            at.run()
        at.button(key="train_start").click().run()
        tr = trainer_of(at)
        assert tr.join(60) and tr.state == S.FINISHED
        at.run()
        assert not at.exception, at.exception
        h = tr.history
        assert len(h.low_kl_units) == len(h.eval_step) == len(h.active_units) >= 1
        low, active, step = h.low_kl_units[-1], h.active_units[-1], h.eval_step[-1]
        assert 0 <= low <= 16
        counts = gettext(
            "At the last test (step {step:,}): **{low} of {total}** dimensions carry less than {threshold:g} nats "
            "of KL per image (the pale rows);"
        ).format(step=step, low=low, total=16, threshold=LOW_KL_THRESHOLD)
        var_mu = gettext(
            "active units (Var_x[μ_j] > {threshold:g}, a spread of μ_j over the images, not its KL): **{active} of "
            "{total}**."
        ).format(threshold=ACTIVE_THRESHOLD, active=active, total=16)
        (caption,) = [c for c in texts(at, "caption") if counts in c]
        assert var_mu in caption and caption.index(counts) < caption.index(var_mu), caption
        if cat:
            assert "最近一次测试时" in caption and "奈特/图像" in caption, caption

    def test_reset_and_start_ask_before_they_discard_a_model(self, train_page) -> None:
        at = train_page()
        at.button(key="train_step").click().run()
        at.button(key="train_step").click().run()
        tr = trainer_of(at)
        assert tr.global_step == 2
        at.button(
            key="train_start"
        ).click().run()  # same settings over an idle trainer: it continues, no question
        assert trainer_of(at) is tr and tr.state in LIVE
        at.button(key="train_stop").click().run()
        assert tr.join(10)
        step = tr.global_step
        at.button(key="train_reset").click().run()
        assert trainer_of(at) is tr
        assert any(
            f"discards the current model (step {step:,}); press Reset again" in t
            for t in texts(at, "warning")
        )
        at.button(key="train_start").click().run()  # a Reset asked for is no Start: Start asks on its own
        assert trainer_of(at) is tr and any("press Start again" in t for t in texts(at, "warning"))
        at.button(key="train_start").click().run()
        new = trainer_of(at)
        assert (
            new is not tr and new.state in LIVE and any("Training started" in t for t in texts(at, "success"))
        )
        at.button(key="train_stop").click().run()
        new.join(10)

    def test_the_message_and_the_progress_bar_show_one_step(self, train_page) -> None:
        at = train_page()
        at.button(key="train_start").click().run()
        tr = trainer_of(at)
        assert wait_for(lambda: tr.state == S.RUNNING and tr.global_step >= 5, 60)
        at.button(key="train_pause").click().run()
        (message,) = [t for t in texts(at, "info") if t.startswith("Paused at step")]
        step = message.removeprefix("Paused at step ").split(".")[0]
        assert f"step {step}/" in progress_text(at), (message, progress_text(at))
        # the worker acked the pause before the page drew; a step already in flight may still land (one at most)
        assert settle(tr) - int(step.replace(",", "")) in (0, 1)

    def test_in_chinese_a_step_names_the_step_the_bar_shows(self, train_page) -> None:
        zh = i18n.catalogue("zh_CN")
        at = AppTest.from_file(PAGE, default_timeout=120)
        at.query_params["lang"] = "zh"
        at.run()
        try:
            at.selectbox(key="train_dataset").set_value("digits")
            at.button(key="train_step").click().run()
            at.button(key="train_step").click().run()
            assert trainer_of(at).global_step == 2 and not at.exception
            said = zh.gettext("One batch: step {step}, loss {loss:.2f} nats/image (recon {recon:.2f}{kl}).")
            head = said.split("{step}")[0]
            (message,) = [t for t in texts(at, "info") if t.startswith(head)]
            assert message.startswith(head + "2") and "第 2/" in progress_text(at), (
                message,
                progress_text(at),
            )
        finally:
            at.session_state["train_handle"].close()


class TestValidation:
    @pytest.mark.parametrize(
        "key,field,value,word",
        [
            ("train_latent", "latent_dim", 0, "Latent dimension"),
            ("train_latent", "latent_dim", 65, "Latent dimension"),
            ("train_lr", "lr", 0.0, "Learning rate"),
            ("train_batch", "batch_size", 0, "Batch size"),
            ("train_epochs", "epochs", 0, "Epochs"),
            ("train_beta", "beta", -1.0, "Beta"),
            ("train_free_bits", "free_bits", -0.5, "Free bits"),
            ("train_warmup", "warmup_steps", -5, "KL warm-up"),
            ("train_seed", "seed", -1, "Seed"),
        ],
    )
    def test_invalid_number_is_refused_with_a_message(
        self, train_page, key: str, field: str, value, word: str
    ) -> None:
        try:  # the page shows the engine's own message for the field
            ModelConfig(latent_dim=value) if field == "latent_dim" else TrainConfig(
                **{field: value}
            ).validate()
        except ConfigError as exc:
            engine = str(exc)
        else:
            pytest.fail(f"the engine accepts {field}={value!r}")
        at = train_page()
        at.number_input(key=key).set_value(value).run()
        assert not at.exception
        errs = texts(at, "error")
        assert any(t.startswith(word) and engine[1:] in t and str(value) in t for t in errs), (engine, errs)
        at.button(key="train_start").click().run()
        assert trainer_of(at) is None, "invalid settings must not start a trainer"
        assert any(
            t.startswith("Not started. Fix the settings first") and engine[1:] in t
            for t in texts(at, "error")
        )

    def test_bad_hidden_sizes(self, train_page) -> None:
        at = train_page()
        at.text_input(key="train_hidden").set_value("big").run()
        assert any("Hidden sizes must be whole numbers" in t for t in texts(at, "error"))
        at.text_input(key="train_hidden").set_value("128,9000").run()
        assert any(t.startswith("Hidden sizes") and "9000" in t for t in texts(at, "error"))
        at.button(key="train_step").click().run()
        assert trainer_of(at) is None and any("No step taken" in t for t in texts(at, "error"))
        at.text_input(key="train_hidden").set_value("64, 32").run()
        assert not texts(at, "error")

    def test_every_bad_field_gets_its_own_message(self, train_page) -> None:
        at = train_page()
        at.number_input(key="train_latent").set_value(0)
        at.number_input(key="train_batch").set_value(0)
        at.number_input(key="train_lr").set_value(-1.0).run()
        errs = texts(at, "error")
        assert len(errs) == 3 and any("Latent" in t for t in errs) and any("Batch" in t for t in errs)


class TestCap:
    def test_one_trainer_too_many_gets_a_clear_message(self, train_page, monkeypatch) -> None:
        monkeypatch.setenv(ENV_MAX_TRAINERS, "1")
        ds = load_dataset("digits")
        other = registry.default_registry().open()  # another browser session, already training
        try:
            mc = ModelConfig(input_dim=ds.dim, image_shape=ds.image_shape, hidden=(16,), latent_dim=2)
            other.start(
                other.registry.job(TrainJob(mc, TrainConfig(dataset="digits", epochs=5000)), dataset=ds)
            )
            at = train_page()
            at.button(key="train_start").click().run()
            errs = texts(at, "error")
            assert any(
                "1 trainer is already running on this server (the limit)" in t and "VAE_LAB_MAX_TRAINERS" in t
                for t in errs
            ), errs
            assert trainer_of(at) is None and not at.exception
            other.trainer.pause()  # a paused trainer frees its slot
            at.button(key="train_start").click().run()
            assert trainer_of(at).state in LIVE
        finally:
            other.close()


class TestKeep:
    def test_save_lists_it_for_the_picker(self, train_page, tmp_path, monkeypatch) -> None:
        monkeypatch.setattr(model_store, "SESSION_CHECKPOINT_DIR", tmp_path / "saved")
        at = train_page()
        for _ in range(3):
            at.button(key="train_step").click().run()
        at.text_input(key="train_save_name").set_value("bad name!")
        at.button(key="train_save").click().run()
        assert any("is not allowed" in t for t in texts(at, "error"))
        at.text_input(key="train_save_name").set_value("digits_vae_z2")
        at.button(key="train_save").click().run()
        assert any("shipped checkpoint" in t for t in texts(at, "error"))
        at.text_input(key="train_save_name").set_value("my_vae-1")
        at.button(key="train_save").click().run()
        assert not at.exception and any("Saved" in t for t in texts(at, "success")), texts(at, "error")
        path = tmp_path / "saved" / "my_vae-1.safetensors"
        ck = load_checkpoint(path)
        assert ck.metadata["steps"] == 3 and ck.metadata["dataset"] == "digits"
        assert "python -m vae_core.train" in ck.metadata["command"]
        assert "saved/my_vae-1" in model_store.list_shipped()
        lm = at.session_state["current_model"]
        assert (
            lm.label == "saved/my_vae-1"
            and at.session_state["sidebar_model_pick"] == "shipped:saved/my_vae-1"
        )
        at.button(key="train_save").click().run()  # same name again: refused, never overwritten
        assert any("exists already" in t for t in texts(at, "error"))

    def test_use_makes_it_current_and_download_is_offered(self, train_page) -> None:
        at = train_page()
        at.button(key="train_step").click().run()
        downloads = [b.proto.id.rsplit("-", 1)[-1] for b in at.get("download_button")]
        assert downloads[:3] == [
            "train_download",
            "train_history_csv",
            "train_gif",
        ]  # the weights, the CSV, the GIF (then the code's .py, at the bottom)
        at.button(key="train_use").click().run()
        assert not at.exception
        lm = at.session_state["current_model"]
        assert lm.source == "session" and lm.label.startswith("trained VAE z=16 digits step 1")
        theirs = trainer_of(at).model_copy().state_dict()
        assert all(torch.equal(lm.model.state_dict()[k], v) for k, v in theirs.items()), (
            "the weights of step 1"
        )
        with torch.no_grad():
            lm.model.encoder.mu.bias.add_(1.0)
        assert torch.equal(
            trainer_of(at).model_copy().state_dict()["encoder.mu.bias"], theirs["encoder.mu.bias"]
        ), "the lab gets a copy; training goes on with its own"
        assert at.session_state["sidebar_model_pick"] == f"session:{lm.label}"


class TestAE:
    def test_ae_shows_reconstruction_only(self, train_page) -> None:
        at = train_page(kind="AE")
        assert at.number_input(key="train_beta").disabled is True
        for _ in range(2):
            at.button(key="train_step").click().run()
        assert not at.exception
        assert trainer_of(at).model_config.kind == "ae"
        assert len(at.get("plotly_chart")) == 1, "no KL heatmap for an AE"
        assert any("has no KL term" in c.value for c in at.caption)
        assert not any("KL" in e.value for e in at.latex)


class TestSessions:
    def test_two_sessions_train_independently(self, train_page) -> None:
        a, b = train_page(), train_page()
        a.button(key="train_start").click().run()
        b.number_input(key="train_seed").set_value(1)
        b.button(key="train_start").click().run()
        ta, tb = trainer_of(a), trainer_of(b)
        assert ta is not tb and a.session_state["train_handle"] is not b.session_state["train_handle"]
        assert ta.pid != tb.pid, "a process each"
        assert ta.config.seed == 0 and tb.config.seed == 1
        assert wait_for(lambda: ta.state == S.RUNNING and tb.state == S.RUNNING, 60)
        a.run()
        a.button(key="train_pause").click().run()
        held, before = settle(ta), tb.global_step
        assert wait_for(lambda: tb.global_step > before + 5)
        assert ta.global_step == held and tb.state == S.RUNNING

    def test_training_ends_with_the_session(self, train_page) -> None:
        at = AppTest.from_file(PAGE, default_timeout=120)
        at.run()
        at.selectbox(key="train_dataset").set_value("digits")
        at.number_input(key="train_epochs").set_value(3000)
        at.button(key="train_start").click().run()
        tr = trainer_of(at)
        assert tr.state in LIVE
        pid = tr.pid
        del at  # Streamlit drops a closed session's state like this
        gc.collect()
        assert tr.join(15) and wait_for(lambda: pid not in worker_children(), 15), (
            "the worker process must end when its session is gone"
        )
        assert tr.state == S.STOPPED and "session ended" in tr.message


class TestLikelihood:
    def test_likelihood_and_binarization_reach_the_trainers_configs(self, train_page) -> None:
        at = train_page()
        assert (
            at.selectbox(key="train_likelihood").value == "bernoulli"
            and at.checkbox(key="train_binarize").value is False
        )
        at.selectbox(key="train_likelihood").set_value("continuous_bernoulli").run()
        at.checkbox(key="train_binarize").check().run()
        at.button(key="train_step").click().run()
        assert not at.exception
        tr = trainer_of(at)
        assert tr is not None and wait_for(lambda: tr.snapshot().step >= 1)
        assert tr.model_config.likelihood == "continuous_bernoulli" and tr.config.binarize is True
        at.run()
        chart = [c for c in at.get("plotly_chart") if "continuous Bernoulli, binarized" in c.proto.spec]
        assert chart, "the loss chart says which likelihood its nats are in"


def timed_run(at: AppTest) -> float:
    """Run ``at`` once (it must not raise); the seconds the run took."""
    t0 = time.perf_counter()
    at.run()
    dt = time.perf_counter() - t0
    assert not at.exception, [e.value for e in at.exception]
    return dt


def progress_text(at: AppTest) -> str:
    return " ".join(p.proto.text for p in at.get("progress"))


class TestWorker:
    """Issue 15 on the page: Start is felt at once; a killed worker is a message, not a hang."""

    def test_start_shows_starting_within_a_second(self, train_page) -> None:
        at = train_page()
        at.button(key="train_start").click()
        t0 = time.monotonic()
        dt = timed_run(at)
        assert dt < 1.0, f"the run after Start took {dt:.2f} s"
        assert "starting" in progress_text(at) or "running" in progress_text(at), progress_text(at)
        tr = trainer_of(at)
        assert wait_for(lambda: tr.global_step > 0, 60)
        print(
            f"\nStart: page run {dt:.2f} s, first step after {time.monotonic() - t0:.2f} s (forked from the fork server)"
        )
        at.run()
        assert "running" in progress_text(at) and at.button(key="train_pause").disabled is False

    def test_a_killed_worker_is_a_message_its_weights_stay_and_start_works_again(
        self, train_page, tmp_path, monkeypatch
    ) -> None:
        monkeypatch.setattr(model_store, "SESSION_CHECKPOINT_DIR", tmp_path / "saved")
        at = train_page()
        at.button(key="train_start").click().run()
        tr = trainer_of(at)
        assert wait_for(lambda: tr.state == S.RUNNING and tr.global_step > 20, 60)
        assert wait_for(lambda: tr.metadata()["steps"] > 0, 10), "weights pushed while training"
        os.kill(tr.pid, signal.SIGKILL)
        assert wait_for(lambda: tr.state == S.FAILED, 10), tr.state
        kept = tr.metadata()["steps"]  # the weights of the last update before the kill
        dt = timed_run(at)  # the live view notices, reruns and draws the page statically
        assert dt < 5, f"a page run with a dead worker took {dt:.2f} s"
        errs = texts(at, "error")
        assert any(
            "stopped unexpectedly" in e
            and "killed by signal 9" in e
            and f"weights of step {kept} are kept" in e
            and "press Start" in e
            for e in errs
        ), errs
        assert "failed" in progress_text(at)
        assert (
            at.button(key="train_start").disabled is False and at.button(key="train_pause").disabled is True
        )

        at.button(key="train_use").click()
        assert timed_run(at) < 5
        lm = at.session_state["current_model"]
        assert lm.source == "session" and lm.metadata["steps"] == kept and f"step {kept}" in lm.label
        assert all(torch.isfinite(p).all() for p in lm.model.parameters())
        x = torch.rand(4, lm.config.input_dim)
        assert lm.model.decode(lm.model.encode(x)[0]).shape == (4, lm.config.input_dim), "a model that works"
        at.text_input(key="train_save_name").set_value("after_kill")
        at.button(key="train_save").click()
        assert timed_run(at) < 5
        assert any("Saved" in t for t in texts(at, "success")), texts(at, "error")
        assert load_checkpoint(tmp_path / "saved" / "after_kill.safetensors").metadata["steps"] == kept

        at.button(key="train_start").click().run()  # the kept weights would go: Start asks first
        assert trainer_of(at) is tr and any("press Start again" in t for t in texts(at, "warning"))
        at.button(key="train_start").click()  # a new worker, forked at once: still felt at once
        assert timed_run(at) < 1.0 and ("starting" in progress_text(at) or "running" in progress_text(at))
        new = trainer_of(at)
        assert new is not tr and new.state in LIVE and new.pid != tr.pid
        assert wait_for(lambda: new.global_step > 0, 60), new.message
        assert timed_run(at) < 5 and "running" in progress_text(at)

    def test_every_run_with_a_dead_worker_is_quick(self, train_page) -> None:
        """Paused, killed, then every control the page offers: each run returns within seconds."""
        at = train_page()
        at.button(key="train_start").click().run()
        tr = trainer_of(at)
        assert wait_for(lambda: tr.state == S.RUNNING, 60)
        at.run()
        at.button(key="train_pause").click().run()
        os.kill(tr.pid, signal.SIGKILL)
        assert wait_for(lambda: tr.state == S.FAILED, 10)
        for _ in range(3):
            assert timed_run(at) < 5
        assert any("stopped unexpectedly" in e for e in texts(at, "error"))
        for key in ("train_use", "train_save"):
            at.button(key=key).click()
            assert timed_run(at) < 5, key
        assert trainer_of(at) is tr
        at.button(key="train_reset").click()  # the first press asks (the kept weights would go)
        assert timed_run(at) < 5 and trainer_of(at) is tr
        at.button(key="train_reset").click()
        assert timed_run(at) < 5 and trainer_of(at) is None


class TestChinese:
    def test_renders_in_chinese_start_works_and_the_progress_is_shown(self, train_page) -> None:
        zh = i18n.catalogue(
            "zh_CN"
        )  # English until the catalogue holds the page's messages: the test holds either way
        at = AppTest.from_file(PAGE, default_timeout=120)
        at.query_params["lang"] = "zh"
        at.run()
        try:
            assert not at.exception, at.exception
            assert at.title[0].value == zh.gettext("Train") and at.session_state["lang"] == "zh_CN"
            at.selectbox(key="train_dataset").set_value("digits")
            at.number_input(key="train_epochs").set_value(3000)
            at.button(key="train_start").click().run()
            assert not at.exception, at.exception
            tr = trainer_of(at)
            assert tr is not None and tr.state in LIVE and tr.config.dataset == "digits"
            started = zh.ngettext(
                "Training started: {model} on {dataset}, {epochs} epoch.",
                "Training started: {model} on {dataset}, {epochs} epochs.",
                3000,
            ).split("{")[0]
            assert any(t.startswith(started) for t in texts(at, "success")), texts(at, "success") + texts(
                at, "error"
            )
            assert wait_for(lambda: tr.state == S.RUNNING and tr.global_step >= 2, 60)
            at.run()
            assert not at.exception, at.exception
            shown = progress_text(at)
            assert f"**{zh.gettext('running')}**" in shown and "/3000" in shown, (
                shown
            )  # the state, translated; the epochs
        finally:
            at.session_state["train_handle"].close()


def upload_script() -> None:
    """The Train page, with what its uploader's on_change does for a pending ``test_upload`` first."""
    import streamlit as st

    from lab_pages import slots, train

    up = st.session_state.pop("test_upload", None)
    if up is not None:
        st.session_state["train_flash"] = slots.add_dataset(up)
    train.main()


def npz_upload(name: str, **arrays) -> SimpleNamespace:
    """A stand-in for Streamlit's UploadedFile (``.name``, ``.getvalue()``) holding an .npz."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    return SimpleNamespace(name=name, getvalue=lambda: data)


class TestUpload:
    def test_an_uploaded_dataset_is_offered_and_trains(self, monkeypatch) -> None:
        monkeypatch.setenv("VAE_LAB_TRAINER_TIMEOUT", "0")
        rng = np.random.default_rng(0)
        at = AppTest.from_function(upload_script, default_timeout=120)
        at.session_state["test_upload"] = npz_upload(
            "mine.npz", x=rng.integers(0, 256, (60, 8, 8), dtype=np.uint8), y=np.arange(60) % 3
        )
        at.run()
        try:
            assert not at.exception, at.exception
            assert any(
                t.startswith("Added user:mine.npz: 60 images of 8×8, 3 classes") for t in texts(at, "success")
            ), texts(at, "success") + texts(at, "error")
            box = at.selectbox(key="train_dataset")
            assert "user:mine.npz" in box.options and box.value == "user:mine.npz"
            at.number_input(key="train_latent").set_value(2)
            at.button(key="train_step").click().run()
            assert not at.exception, at.exception
            tr = trainer_of(at)
            assert tr is not None and tr.config.dataset == "user:mine.npz" and tr.global_step == 1, texts(
                at, "warning"
            )
            assert any(t.startswith("One batch: step 1") for t in texts(at, "info")), texts(at, "info")
            at.button(key="train_step").click().run()
            assert tr.global_step == 2 and not at.exception
            assert len(at.get("plotly_chart")) == 2, "the live view draws the uploaded dataset's run"

            at.session_state["test_upload"] = npz_upload(
                "evil.npz", x=np.array([np.zeros((8, 8)), "payload"], dtype=object)
            )
            at.run()
            errs = texts(at, "error")
            assert any(e.startswith("Not added:") and "'x' is an object array" in e for e in errs), errs
            assert "user:evil.npz" not in at.selectbox(key="train_dataset").options
            assert at.selectbox(key="train_dataset").value == "user:mine.npz", (
                "a refused upload changes nothing"
            )
        finally:
            at.session_state["train_handle"].close()


class TestLiveCharts:
    """While training, the live view draws its two charts as static SVG images (lab_pages.train.live_chart); the
    interactive Plotly figures come back once the trainer is no longer running."""

    def test_svg_while_running_plotly_after(self, train_page) -> None:
        import base64
        import xml.etree.ElementTree as ET

        from PIL import Image

        from tests.conftest import plotly_figures

        ns = "{http://www.w3.org/2000/svg}"

        def svgs(at: AppTest) -> list[ET.Element]:
            prefix = "data:image/svg+xml;base64,"
            urls = [u for im in at.image for u in im.value]
            return [ET.fromstring(base64.b64decode(u[len(prefix) :])) for u in urls if u.startswith(prefix)]

        at = train_page()  # digits, a VAE with z = 16, 3000 epochs: running for as long as this test needs
        at.button(key="train_start").click().run()
        tr = trainer_of(at)
        assert wait_for(lambda: tr.state == S.RUNNING and len(tr.snapshot().history.step) >= 3, 60), tr.state
        at.run()
        assert not at.exception, at.exception
        assert tr.state == S.RUNNING and "running" in progress_text(at)
        assert plotly_figures(at) == {}, "no Plotly chart while training live"
        roots = svgs(at)
        assert len(roots) == 2, [u[:40] for im in at.image for u in im.value]
        loss, heat = roots
        assert all(r.tag == ns + "svg" for r in roots)
        assert (loss.get("width"), heat.get("width")) == ("720", "480")
        loss_text, heat_text = " ".join(loss.itertext()), " ".join(heat.itertext())
        assert "training step" in loss_text and "nats per image, under the Bernoulli" in loss_text
        assert "reconstruction" in loss_text and "KL(q(z|x)" in loss_text
        assert {p.get("class") for p in loss.iter(ns + "path")} >= {
            "recon area",
            "kl area",
            "recon line",
            "kl line",
        }
        assert "latent dimension" in heat_text and "nats" in heat_text
        (cells,) = heat.iter(ns + "image")
        png = Image.open(io.BytesIO(base64.b64decode(cells.get("href").split(",", 1)[1])))
        assert png.size[1] == 16 and 1 <= png.size[0] <= 300, png.size  # one row per latent dimension
        assert len(at.image) == 4, "the two SVG charts and the two image grids"

        at.button(key="train_stop").click().run()
        assert tr.join(15) and tr.state == S.STOPPED
        at.run()
        assert not at.exception, at.exception
        assert set(plotly_figures(at)) == {"train_loss_chart", "train_kl_heatmap"}
        assert svgs(at) == [] and len(at.image) == 2, "the image grids only"
        heatmap = plotly_figures(at)["train_kl_heatmap"]
        assert heatmap["data"][0]["type"] == "heatmap"
