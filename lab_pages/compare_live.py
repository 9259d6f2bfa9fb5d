"""Train an AE/VAE pair: one architecture, seed, dataset and batch order, trained live in lockstep.

The pair trains as a job in a worker process (vae_core.jobs.PairJob) in one of the server's
trainer slots. When it has finished, both models join the session's model list and
``st.session_state["compare_live_pair"]``, and the AE vs VAE page (lab_pages/compare.py) shows them.
"""

from __future__ import annotations

from types import SimpleNamespace

import streamlit as st

from lab_pages import state
from lab_pages.datasets import available_datasets, get_dataset
from lab_pages.i18n import _, error_text, ngettext
from lab_pages.model_store import LoadedModel, require_model
from lab_pages.slots import session_handle
from vae_core import compare as cmp
from vae_core.handle import LiveJob, WorkerError
from vae_core.jobs import PairJob
from vae_core.pair import live_pair_configs
from vae_core.registry import CapacityError
from vae_core.train import TrainerState as S

ss = st.session_state


@st.fragment(run_every=1)
def poll(pt: LiveJob) -> None:
    """Progress of the pair, once a second; a full rerun when it has ended."""
    p = pt.snapshot()
    if p.state not in (S.RUNNING, S.STARTING):
        st.rerun()
    nan = float("nan")
    st.progress(
        p.fraction,
        text=_("Training the pair: step {step}/{total} · loss VAE {vae:.1f}, AE {ae:.1f} nats/image").format(
            step=p.step, total=p.total_steps, vae=p.extra.get("vae_loss", nan), ae=p.extra.get("ae_loss", nan)
        ),
    )


def adopt(pt: LiveJob) -> None:
    """Make a finished pair this session's live pair (and two models in the sidebar's list); its worker ends."""
    n = ss["compare_live_count"] = ss.get("compare_live_count", 0) + 1
    # compare.live_pair_models reads metadata() and models() as (VAE, AE): the job's lists, in that order
    trained = SimpleNamespace(metadata=pt.metadatas, models=pt.models)
    pair = tuple(
        LoadedModel(key, label, "session", m, m.config, meta)
        for key, label, m, meta in cmp.live_pair_models(trained, n)
    )
    for p in pair:
        state.add_session_model(p, make_current=False)
    ss["compare_live_pair"] = pair
    pt.close(wait=False)  # the models are copied: the worker's memory goes back to the server


def main() -> None:
    require_model()
    st.title(_("🏗️ Train an AE/VAE pair"))
    st.markdown(
        _(
            "An autoencoder and a VAE with the **same architecture, initial weights, seed and batches**, trained side "
            "by side: only the objective differs (the VAE adds the KL to the prior N(0, I))."
        )
    )
    c1, c2, c3 = st.columns(3)
    dname = c1.selectbox(_("Dataset"), available_datasets(), key="compare_live_dataset")
    zdim = c2.selectbox(_("Latent dim"), [2, 16], key="compare_live_latent")
    epochs = c3.number_input(
        _("Epochs"), 1, 200, 60 if dname == "digits" else 1, key=f"compare_live_epochs_{dname}"
    )
    st.caption(
        _(
            "Both models train in lockstep in the background (same initial weights, seed and batches). "
            "Digits, 60 epochs: 720 steps each; Fashion-MNIST, 1 epoch: 469 steps each. The page stays usable."
        )
    )
    slot = session_handle(
        "compare_live_handle", label="compare pair"
    )  # counts towards the server's trainer cap
    slot.touch()
    running = "compare_live_trainer" in ss and ss["compare_live_trainer"].state in (S.RUNNING, S.STARTING)
    if st.button(_("Train a fresh pair"), key="compare_live_train", disabled=running):
        ds = get_dataset(dname)
        pair = slot.registry.job(PairJob(*live_pair_configs(ds, int(zdim), int(epochs))), dataset=ds)
        try:
            slot.start(pair)  # refused when the server's trainer cap is reached
            ss["compare_live_trainer"] = pair
        except CapacityError as exc:
            st.warning(_("The pair was not started: {reason}").format(reason=error_text(exc)))
    pt = ss.get("compare_live_trainer")
    if pt is None:
        return
    if pt.state in (S.RUNNING, S.STARTING):
        st.button(_("Stop"), key="compare_live_stop", on_click=pt.stop)
        poll(pt)
    elif ss.get("compare_live_built") is not pt:
        ss["compare_live_built"] = pt
        if pt.state == S.FAILED:
            st.error(_("Training failed: {message}").format(message=error_text(pt.message)))
        elif pt.global_step > 0:
            try:
                adopt(pt)
            except WorkerError as exc:  # its worker died before sending any weights
                st.error(_("Training failed: {message}").format(message=error_text(exc)))
    if ss.get("compare_live_built") is pt and pt.state not in (S.RUNNING, S.STARTING, S.FAILED):
        p, epochs = pt.snapshot(), pt.config.epochs
        done = (
            ngettext(
                "Both trained for {epochs} epoch, {steps} steps each.",
                "Both trained for {epochs} epochs, {steps} steps each.",
                epochs,
            ).format(epochs=epochs, steps=p.total_steps)
            if p.state == S.FINISHED
            else error_text(pt.message) + "."
        )  # stopped early (vae_core's words): the pair is kept all the same
        st.success(
            done
            + " "
            + _("The pair is on the AE vs VAE page and in the sidebar's model list (this session).")
        )
        try:
            st.page_link("lab_pages/compare.py", label=_("Compare the pair"), icon="⚖️")
        except Exception:  # page not registered (page run on its own)
            st.caption(_("Open the AE vs VAE page to compare the pair."))


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
