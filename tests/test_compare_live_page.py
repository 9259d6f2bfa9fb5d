"""The Train an AE/VAE pair page through AppTest: a pair trained live, then compared on the AE vs VAE page
(the two pages share the session: the second AppTest gets the first one's ``compare_live_pair``)."""

from __future__ import annotations

import os

from streamlit.testing.v1 import AppTest

from lab_pages.model_store import LoadedModel, load_shipped
from tests.conftest import (
    ROOT,
    chart_titles,
    metrics,
    run_page,
    run_page_in_chinese,
    through_router,
    wait_for,
)
from vae_core import compare as cmp
from vae_core import registry
from vae_core.data import load_dataset
from vae_core.handle import LiveJob
from vae_core.jobs import PairJob
from vae_core.pair import live_pair_configs

PAGE = str(ROOT / "lab_pages" / "compare_live.py")
COMPARE = str(ROOT / "lab_pages" / "compare.py")


def page(lm: LoadedModel | None = None, **state) -> AppTest:
    return run_page(PAGE, lm, timeout=180, **state)


def train(at: AppTest) -> LiveJob:
    at.button(key="compare_live_train").click().run()
    assert not at.exception, at.exception
    pt: LiveJob = at.session_state["compare_live_trainer"]
    assert wait_for(lambda: pt.pid is not None, 30) and pt.pid != os.getpid(), "the pair trains in a worker"
    assert pt.join(120)
    at.run()  # the fragment would rerun the page when training ends; do it by hand
    assert not at.exception, at.exception
    return pt


class TestLivePair:
    def test_train_a_fresh_pair_and_compare_it(self) -> None:
        lm = load_shipped("digits_vae_z2")
        at = page(lm)
        at.selectbox(key="compare_live_latent").set_value(16)
        at.number_input(key="compare_live_epochs_digits").set_value(2)
        pt = train(at)
        assert pt.state == "finished"
        assert wait_for(lambda: not pt.is_alive, 10), "its worker ends once the pair is adopted"
        vae_lm, ae_lm = at.session_state["compare_live_pair"]
        assert vae_lm.is_vae and not ae_lm.is_vae and vae_lm.config.latent_dim == 16
        assert not cmp.recipe_differences(vae_lm.metadata, ae_lm.metadata)
        assert vae_lm.label in at.session_state["session_models"]  # also pickable in the sidebar
        assert any(s.value.startswith("Both trained for 2 epochs, ") for s in at.success)

        cmp_at = run_page(COMPARE, lm, timeout=180, compare_live_pair=at.session_state["compare_live_pair"])
        assert cmp_at.selectbox(key="compare_pair").value == "live pair (trained here)"  # a new pair is shown
        m = dict(metrics(cmp_at)[3:])
        assert m["KL to the prior"] == "—" and m["Active units"].endswith("/ 16")
        titles = chart_titles(cmp_at)
        assert titles["compare_prior_VAE"] == "VAE: μ_j against N(0, 1)"  # z > 2: per-dim histograms
        assert titles["compare_map_AE"] in ("AE: UMAP", "AE: PCA (UMAP on its way)")
        jobs = cmp_at.session_state[
            "compare_umap_jobs"
        ]  # the UMAPs run in the background; once done, a rerun shows them
        assert all(jobs[m.key].wait(180) and jobs[m.key].error is None for m in (vae_lm, ae_lm))
        cmp_at.run()
        assert not cmp_at.exception
        titles = chart_titles(cmp_at)
        assert titles["compare_map_VAE"] == "VAE: UMAP" and titles["compare_map_AE"] == "AE: UMAP"

        # a second live pair replaces the first, with new cache keys (no stale metrics or maps)
        at.selectbox(key="compare_live_latent").set_value(2)
        train(at)
        vae2, ae2 = at.session_state["compare_live_pair"]
        assert vae2.config.latent_dim == 2 and {vae2.key, ae2.key}.isdisjoint({vae_lm.key, ae_lm.key})
        cmp_at.session_state["compare_live_pair"] = at.session_state["compare_live_pair"]
        cmp_at.run()
        assert not cmp_at.exception, cmp_at.exception
        assert cmp_at.selectbox(key="compare_pair").value == "live pair (trained here)"
        assert chart_titles(cmp_at)["compare_map_VAE"] == "VAE: raw latent plane"

    def test_a_full_server_refuses_the_pair_with_a_message(self, monkeypatch) -> None:
        """The live pair takes one of the server's trainer slots; at the cap it is not started."""

        monkeypatch.setattr(
            registry, "_DEFAULT", registry.TrainerRegistry(max_running=1, heartbeat_timeout=0)
        )
        reg = registry.default_registry()
        try:
            other = reg.open()
            digits = load_dataset("digits")
            busy = reg.job(PairJob(*live_pair_configs(digits, 2, 200)), dataset=digits)
            other.start(busy)
            at = page(load_shipped("digits_vae_z2"))
            at.button(key="compare_live_train").click().run()
            assert not at.exception, at.exception
            assert "compare_live_trainer" not in at.session_state
            assert any(
                "was not started" in w.value and registry.ENV_MAX_TRAINERS in w.value for w in at.warning
            )
            other.close()  # that session ends: its pair stops and its slot is free
            assert busy.join(30) and busy.state == "stopped"
            at.button(key="compare_live_train").click().run()  # a slot is free again
            pt = at.session_state["compare_live_trainer"]
            assert pt.state in ("starting", "running") and reg.running_count() == 1
            assert wait_for(lambda: pt.global_step > 0, 60)
            pt.stop()
            assert pt.join(30)
            at.run()  # stopped early: the pair is kept all the same
            assert not at.exception, at.exception
            assert any("The pair is on the AE vs VAE page" in s.value for s in at.success)
        finally:
            reg.shutdown()

    def test_router_opens_the_page(self) -> None:
        at = through_router(
            "lab_pages/compare_live.py", load_shipped("digits_vae_z2"), timeout=180
        )  # keep it quick
        assert any("Train an AE/VAE pair" in t.value for t in at.title)


def test_renders_in_chinese() -> None:
    """?lang=zh: the page draws without an exception (English until the catalogue is compiled)."""
    at = run_page_in_chinese(PAGE, load_shipped("digits_vae_z2"), timeout=180)
    assert at.button(key="compare_live_train") is not None
