"""The Train page through AppTest: widgets, controls driving the session's trainer thread,
validation messages, the running-trainer cap, Save / Use / Download, AE view, session end."""

from __future__ import annotations

import gc
import time

import pytest
from streamlit.testing.v1 import AppTest

import lab_pages.common as common
from tests.conftest import APP, ENV_MAX_TRAINERS, TRAIN_PAGE as PAGE, texts, trainer_of, wait_for
from vae_core import registry
from vae_core.checkpoint import load_checkpoint
from vae_core.data import load_dataset
from vae_core.models import ConfigError, ModelConfig
from vae_core.train import TrainConfig, Trainer, TrainerState as S

WIDGETS = {
    "selectbox": ["train_dataset"], "radio": ["train_kind"], "text_input": ["train_hidden"],
    "number_input": ["train_latent", "train_beta", "train_warmup", "train_free_bits", "train_lr", "train_batch",
                     "train_epochs", "train_seed"],
    "button": ["train_start", "train_pause", "train_resume", "train_step", "train_stop", "train_reset"],
}


# one intra-op thread per trainer thread: see tests/conftest.py::one_torch_thread
pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
        want_ds = "fashion-mnist" if "fashion-mnist" in common.available_datasets() else "digits"
        assert at.selectbox(key="train_dataset").value == want_ds
        assert at.radio(key="train_kind").value == "VAE"
        vals = {k: at.number_input(key=k).value for k in WIDGETS["number_input"]}
        assert vals == {"train_latent": 16, "train_beta": 1.0, "train_warmup": 0, "train_free_bits": 0.0,
                        "train_lr": 1e-3, "train_batch": 128, "train_epochs": 5, "train_seed": 0}
        assert at.text_input(key="train_hidden").value == "400"
        assert not texts(at, "error")
        disabled = {k: at.button(key=k).disabled for k in WIDGETS["button"]}
        assert disabled == {"train_start": False, "train_pause": True, "train_resume": True, "train_step": False,
                            "train_stop": True, "train_reset": True}


class TestControls:
    def test_start_pause_resume_stop_reset(self, train_page) -> None:
        at = train_page()
        at.button(key="train_start").click().run()
        assert not at.exception
        tr = trainer_of(at)
        assert tr is not None and tr.state == S.RUNNING and tr.is_alive
        assert any("Training started" in t for t in texts(at, "success"))
        assert tr.config.dataset == "digits" and tr.model_config.latent_dim == 16 and tr.config.epochs == 3000
        assert wait_for(lambda: tr.global_step >= 5)
        at.run()
        assert not at.exception and at.button(key="train_pause").disabled is False
        assert any("running" in p.proto.text for p in at.get("progress"))

        at.button(key="train_pause").click().run()
        assert tr.state == S.PAUSED and any("Paused" in t for t in texts(at, "info"))
        time.sleep(0.1)
        held = tr.global_step
        time.sleep(0.3)
        at.run()
        assert tr.global_step == held, "Pause holds the trainer"
        assert at.button(key="train_resume").disabled is False and at.button(key="train_start").disabled is True

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

        at.button(key="train_reset").click().run()
        assert trainer_of(at) is None and not at.exception

    def test_step_from_nothing_makes_an_idle_trainer(self, train_page) -> None:
        at = train_page()
        at.button(key="train_step").click().run()
        tr = trainer_of(at)
        assert tr is not None and tr.global_step == 1 and not tr.is_alive
        assert any("step 1" in t for t in texts(at, "info"))
        at.button(key="train_step").click().run()
        assert tr.global_step == 2 and not at.exception
        at.button(key="train_start").click().run()  # same settings: Start continues this trainer
        assert trainer_of(at) is tr and tr.state == S.RUNNING

    def test_a_short_run_finishes_and_draws_statically(self, train_page) -> None:
        at = train_page(epochs=1)
        at.button(key="train_start").click().run()
        tr = trainer_of(at)
        assert tr.join(30) and tr.state == S.FINISHED
        at.run()
        assert not at.exception
        assert len(at.get("plotly_chart")) == 2  # -ELBO stack and the KL heatmap
        captions = [c for im in at.image for c in im.captions]  # the two image grids, drawn
        assert len(at.image) == 2 and captions[0].startswith("top: 8 fixed test images · bottom: reconstructions")
        assert captions[1] == "16 samples from the prior z ~ N(0, I)"
        assert any("finished" in p.proto.text for p in at.get("progress"))
        assert any("ELBO" in e.value for e in at.latex)


class TestValidation:
    @pytest.mark.parametrize("key,field,value,word", [
        ("train_latent", "latent_dim", 0, "Latent dimension"),
        ("train_latent", "latent_dim", 65, "Latent dimension"),
        ("train_lr", "lr", 0.0, "Learning rate"),
        ("train_batch", "batch_size", 0, "Batch size"),
        ("train_epochs", "epochs", 0, "Epochs"),
        ("train_beta", "beta", -1.0, "Beta"),
        ("train_free_bits", "free_bits", -0.5, "Free bits"),
        ("train_warmup", "warmup_steps", -5, "KL warm-up"),
        ("train_seed", "seed", -1, "Seed"),
    ])
    def test_invalid_number_is_refused_with_a_message(self, train_page, key: str, field: str, value, word: str) -> None:
        try:  # the page shows the engine's own message for the field
            ModelConfig(latent_dim=value) if field == "latent_dim" else TrainConfig(**{field: value}).validate()
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
        assert any(t.startswith("Not started. Fix the settings first") and engine[1:] in t for t in texts(at, "error"))

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
            other.start(Trainer(mc, TrainConfig(dataset="digits", epochs=5000), dataset=ds, device="cpu"))
            at = train_page()
            at.button(key="train_start").click().run()
            errs = texts(at, "error")
            assert any("1 trainer is already running on this server (the limit)" in t and "VAE_LAB_MAX_TRAINERS" in t
                       for t in errs), errs
            assert trainer_of(at) is None and not at.exception
            other.trainer.pause()  # a paused trainer frees its slot
            at.button(key="train_start").click().run()
            assert trainer_of(at).state == S.RUNNING
        finally:
            other.close()


class TestKeep:
    def test_save_lists_it_for_the_picker(self, train_page, tmp_path, monkeypatch) -> None:
        monkeypatch.setattr(common, "SESSION_CHECKPOINT_DIR", tmp_path / "saved")
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
        assert "saved/my_vae-1" in common.list_shipped()
        lm = at.session_state["current_model"]
        assert lm.label == "saved/my_vae-1" and at.session_state["sidebar_model_pick"] == "shipped:saved/my_vae-1"
        at.button(key="train_save").click().run()  # same name again: refused, never overwritten
        assert any("exists already" in t for t in texts(at, "error"))

    def test_use_makes_it_current_and_download_is_offered(self, train_page) -> None:
        at = train_page()
        at.button(key="train_step").click().run()
        assert len(at.get("download_button")) == 1
        at.button(key="train_use").click().run()
        assert not at.exception
        lm = at.session_state["current_model"]
        assert lm.source == "session" and lm.label.startswith("trained VAE z=16 digits step 1")
        assert lm.model is not trainer_of(at).model, "the lab gets a copy; training goes on with its own"
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
        assert ta.config.seed == 0 and tb.config.seed == 1
        a.button(key="train_pause").click().run()
        time.sleep(0.1)
        held, before = ta.global_step, tb.global_step
        assert wait_for(lambda: tb.global_step > before + 5)
        assert ta.global_step == held and tb.state == S.RUNNING

    def test_training_ends_with_the_session(self, train_page) -> None:
        at = AppTest.from_file(PAGE, default_timeout=120)
        at.run()
        at.selectbox(key="train_dataset").set_value("digits")
        at.number_input(key="train_epochs").set_value(3000)
        at.button(key="train_start").click().run()
        tr = trainer_of(at)
        assert tr.state == S.RUNNING
        del at  # Streamlit drops a closed session's state like this
        gc.collect()
        assert tr.join(15), "the trainer thread must end when its session is gone"
        assert tr.state == S.STOPPED and "session ended" in tr.message
