"""The Pitfalls page (常见错误) through AppTest: it opens at once on the recorded pairs, shows each
mistake's measured consequence, and *Run again* retrains one pair live, as a job in a worker under
the server's trainer cap, without blocking any page."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from lab_pages import pitfalls as page
from tests.conftest import APP, ROOT, plotly_figures, wait_for
from vae_core import pitfalls as pf
from vae_core import registry
from vae_core.data import load_dataset
from vae_core.jobs import PitfallJob
from vae_core.train import TrainerState as S

# a fresh registry for this module (sessions never time out), the fork server ready before each test
pytestmark = pytest.mark.usefixtures("fork_server")

PAGE = str(ROOT / "lab_pages" / "pitfalls.py")


def active_units(at: AppTest) -> list[int]:
    """Active units of every run on the page, in order: per section, correct then mistaken."""
    return [int(m.value.split("/")[0]) for m in at.metric if m.label == "active units"]


@pytest.fixture(scope="module")
def opened():
    """The page opened once on the shipped results; and how long it took. Nothing trains, not even a slot is made."""
    mp = pytest.MonkeyPatch()
    mp.setattr(pf, "run_pair", lambda *a, **k: pytest.fail("the page trained on opening"))
    at = AppTest.from_file(PAGE, default_timeout=60)
    t0 = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - t0
    mp.undo()
    assert not at.exception, [e.value for e in at.exception]
    assert page.HANDLE not in at.session_state, "opening the page makes no slot in the trainer registry"
    return at, seconds


class TestOpensOnTheRecordedPairs:
    def test_every_section_is_shown_at_once(self, opened) -> None:
        at, seconds = opened
        assert seconds < 20.0  # no training: reading JSON and drawing (about 2 s here)
        assert [s.value for s in at.subheader] == [t for t, _, _ in page.TEXT.values()]
        assert set(page.TEXT) | set(page.VARIANTS["sigma_squared"]) == set(pf.SECTIONS)
        assert len(active_units(at)) == 2 * len(page.TEXT)
        codes = [c.value for c in at.code]
        for key in page.TEXT:  # both lines of each section (c shows its first variant)
            assert pf.SECTIONS[key].correct_line in codes and pf.SECTIONS[key].mistaken_line in codes
        assert any("Recorded results" in c.value for c in at.caption)

    def test_per_pixel_mean_collapses_the_posterior(self, opened) -> None:
        correct, mistaken = active_units(opened[0])[:2]
        assert correct >= 2 and mistaken <= 1

    def test_the_flipped_kl_is_stopped_by_the_guard(self, opened) -> None:
        warnings = [w.value for w in opened[0].warning]
        assert len(warnings) == 1 and "diverged" in warnings[0] and "last good weights" in warnings[0]

    def test_detached_z_gives_the_encoder_no_reconstruction_gradient(self, opened) -> None:
        fig = plotly_figures(opened[0])["pitfalls_grads_chart"]
        correct, mistaken = fig["data"]
        enc = [i for i, name in enumerate(mistaken["x"]) if name.startswith("encoder.")]
        assert enc and all(mistaken["y"][i] == 0.0 for i in enc) and all(correct["y"][i] > 0 for i in enc)
        assert any(y > 0 for name, y in zip(mistaken["x"], mistaken["y"]) if name.startswith("decoder."))

    def test_the_grey_bce_gap_and_the_z_moments_are_drawn(self, opened) -> None:
        figs = plotly_figures(opened[0])
        bce, cb, _, floor = figs["pitfalls_gaps_chart"]["data"]
        assert all(c >= f - 2e-3 for c, f in zip(cb["y"], floor["y"]))  # CB ≥ −BCE + D log 2, per image
        correct, mistaken = figs["pitfalls_moments_chart"]["data"]
        assert (
            correct["y"][0] == pytest.approx(1.0, abs=0.1) and mistaken["y"][0] < 0.8
        )  # Var z / σ² = σ² < 1


def test_the_other_variant_of_c_is_one_click_away() -> None:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    at.radio(key="pitfalls_variant").set_value("logvar_as_sigma").run()
    assert not at.exception, at.exception
    assert pf.SECTIONS["logvar_as_sigma"].mistaken_line in [c.value for c in at.code]
    assert at.button(key="pitfalls_run_logvar_as_sigma") is not None


def run_job(at: AppTest):
    """This session's Pitfalls job (None before any *Run again*)."""
    h = at.session_state.get(page.HANDLE, None)
    return None if h is None else h.trainer


def test_run_again_retrains_the_pair_in_a_worker_and_updates_the_numbers() -> None:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    before = [m.value for m in at.metric][-6:]  # kl_sign: the last section
    t0 = time.perf_counter()
    at.button(key="pitfalls_run_kl_sign").click().run()
    assert not at.exception, at.exception
    job = run_job(at)
    assert job is not None and job.state in (S.STARTING, S.RUNNING), "the script run starts a job and returns"
    assert (
        at.session_state[page.RUNNING] == ("kl_sign", 1) and "pitfalls_pair_kl_sign" not in at.session_state
    )
    assert any("seed 1" in p.proto.text for p in at.get("progress")), "its progress is shown while it trains"
    assert at.button(key="pitfalls_run_kl_sign").disabled
    assert job.join(120) and job.state == S.FINISHED
    print(f"\nRun again: both runs trained in a worker in {time.perf_counter() - t0:.1f} s")
    at.run()  # the fragment reruns the page when the run has ended; do it by hand
    assert not at.exception, at.exception
    pair = at.session_state["pitfalls_pair_kl_sign"]
    assert isinstance(pair, pf.PitfallPair) and at.session_state["pitfalls_seed_kl_sign"] == 1
    assert pair.mistaken.state == "diverged" and pair.correct.state == "finished"
    after = [m.value for m in at.metric][-6:]
    assert after != before and after[1] == page.num(pair.correct.metrics["neg_elbo"])
    assert any("seed 1" in c.value for c in at.caption)
    assert any("seed 1" in s.value for s in at.success), "a visible result"
    assert "diverged" in at.warning[0].value
    assert wait_for(lambda: not job.is_alive, 10), "its worker ends once the pair is kept"
    at.button(key="pitfalls_run_kl_sign").click().run()  # again: another seed
    assert at.session_state[page.RUNNING] == ("kl_sign", 2)
    run_job(at).close()


def test_at_the_cap_run_again_is_refused_and_the_recorded_results_stay(monkeypatch) -> None:
    monkeypatch.setenv(registry.ENV_MAX_TRAINERS, "1")
    reg = registry.default_registry()
    other = reg.open()  # another session, training
    try:
        digits = load_dataset("digits")
        other.start(reg.job(PitfallJob("detached_z", seed=5)))
        at = AppTest.from_file(PAGE, default_timeout=120)
        at.run()
        before = [m.value for m in at.metric]
        at.button(key="pitfalls_run_per_pixel_mean").click().run()
        assert not at.exception, at.exception
        warnings = [w.value for w in at.warning]
        assert any(
            "Not started: 1 trainer is already running on this server (the limit)" in w
            and registry.ENV_MAX_TRAINERS in w
            for w in warnings
        ), warnings
        assert page.RUNNING not in at.session_state and run_job(at) is None
        assert [m.value for m in at.metric] == before, "the recorded results stay on the page"
        assert digits.dim == 64
    finally:
        other.close()


def test_a_run_does_not_block_another_sessions_page() -> None:
    """While one session's run trains (in its worker), another session's page run completes."""
    a = AppTest.from_file(PAGE, default_timeout=120)
    a.run()
    a.button(key="pitfalls_run_per_pixel_mean").click().run()
    job = run_job(a)
    assert job.state in (S.STARTING, S.RUNNING)
    b = AppTest.from_file(PAGE, default_timeout=60)
    t0 = time.perf_counter()
    b.run()
    seconds = time.perf_counter() - t0
    assert not b.exception, b.exception
    assert len(b.subheader) == len(page.TEXT), "the other session's page is drawn whole"
    assert job.state in (S.STARTING, S.RUNNING) and job.global_step < job.total_steps, (
        f"the run ended before the other page's rerun did ({seconds:.1f} s): nothing was shown to run beside it"
    )
    assert wait_for(lambda: job.global_step > 0, 60), "and the run trains meanwhile"
    job.close()


def test_the_router_opens_the_page() -> None:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("lab_pages/pitfalls.py").run()
    assert not at.exception, at.exception
    assert any("Pitfalls" in t.value for t in at.title)


def test_renders_in_chinese() -> None:
    """?lang=zh: every section draws without an exception (English until the catalogue is compiled)."""
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["lang"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.subheader) == len(page.TEXT) and len(at.latex) >= len(page.TEXT)
