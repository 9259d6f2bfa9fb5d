"""vae_core.errors: typed errors carry an English template and its parameters, for the UI to translate."""

from __future__ import annotations

import pickle

import pytest

from vae_core.checkpoint import CheckpointError
from vae_core.errors import LabError
from vae_core.models import ConfigError, ModelConfig


def test_template_params_and_english_text() -> None:
    with pytest.raises(ConfigError) as info:
        ModelConfig(latent_dim=99)
    err = info.value
    assert isinstance(err, LabError) and isinstance(err, ValueError)
    assert err.template == "latent dimension must be between 1 and 64, got {latent_dim}" and err.params == {
        "latent_dim": 99
    }
    assert str(err) == "latent dimension must be between 1 and 64, got 99"
    assert (
        err.render("隐变量维度必须在 1 到 64 之间，当前为 {latent_dim}")
        == "隐变量维度必须在 1 到 64 之间，当前为 99"
    )


def test_plain_text_keeps_its_braces_and_a_broken_translation_falls_back() -> None:
    assert str(CheckpointError("a {weird} name")) == "a {weird} name"
    err = ConfigError("got {n} values", n=3)
    assert (
        err.render("得到 {m} 个值") == "got 3 values"
    )  # a translation that lost its field: English, not a crash


def test_pickles_across_the_worker_pipe() -> None:
    err = pickle.loads(pickle.dumps(ConfigError("got {n} values", n=3)))
    assert (
        type(err) is ConfigError
        and err.template == "got {n} values"
        and err.params == {"n": 3}
        and str(err) == "got 3 values"
    )


def test_a_status_message_is_its_english_text_and_carries_its_template() -> None:
    from vae_core.errors import Msg

    m = Msg("stopped at step {step}", step=12)
    assert m == "stopped at step 12" and isinstance(m, str) and "step 12" in m
    assert m.template == "stopped at step {step}" and m.render("在第 {step} 步停止") == "在第 12 步停止"
    back = pickle.loads(pickle.dumps(m))
    assert type(back) is Msg and back == m and back.params == {"step": 12}


def test_a_status_message_keeps_its_own_english_text_across_the_pipe() -> None:
    from vae_core.errors import Msg

    m = Msg(
        "hidden sizes must be whole numbers; got {text!r}",
        english="Hidden sizes must be whole numbers; got 'x'.",
        text="x",
    )
    back = pickle.loads(pickle.dumps(m))
    assert back == "Hidden sizes must be whole numbers; got 'x'." and back.template == m.template
    assert back.render("隐藏层大小必须是整数；得到 {text!r}") == "隐藏层大小必须是整数；得到 'x'"
    assert back.render("坏的 {other}") == str(back)  # a translation that lost its field: the English sentence
