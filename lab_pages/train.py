"""Train: an AE or VAE trained live in a worker process of this session (its TrainerHandle, vae_core.registry: a cap, an end
with the session), on a built-in dataset or an uploaded one. The script never waits on it: the live view redraws from the
trainer's snapshot in a fragment rerun about once a second; each button acts in a callback (lab_pages.slots says what it does).
"""

from __future__ import annotations

import functools
import math

import streamlit as st
import torch

from lab_pages import charts, slots, state
from lab_pages.common import (
    available_datasets,
    image_shape_of,
    likelihood_name,
    likelihood_text,
    live_chart,
    show_grid,
)
from lab_pages.i18n import N_, _, error_text
from lab_pages.style import KL_COLOR, RECON_COLOR
from vae_core import registry
from vae_core.data import to_float
from vae_core.models import LIKELIHOODS
from vae_core.train import TrainerState as S
from vae_core.train import configs_from_settings
from vae_core.userdata import MAX_COMPRESSED_BYTES

REFRESH_S = 1.0  # seconds between live redraws; STATES: the TrainerState values, marked for the progress text
STATES = (
    N_("idle"),
    N_("starting"),
    N_("running"),
    N_("paused"),
    N_("stopped"),
    N_("finished"),
    N_("diverged"),
    N_("failed"),
)
NUMBERS = (  # the number inputs: column, label, configs_from_settings field, key, default, step, help (column 2: VAE only)
    (1, N_("Latent dimension z"), "latent_dim", "train_latent", 16, 1, N_("1 to 64")),
    (2, N_("β (KL weight)"), "beta", "train_beta", 1.0, 0.5, N_("1 = the ELBO; >1 = β-VAE")),
    (2, N_("KL warm-up (steps)"), "warmup_steps", "train_warmup", 0, 100, N_("β rises linearly from 0")),
    (2, N_("Free bits (nats per dim)"), "free_bits", "train_free_bits", 0.0, 0.1, None),
    (3, N_("Learning rate"), "lr", "train_lr", 1e-3, 1e-4, None),
    (3, N_("Batch size"), "batch_size", "train_batch", 128, 32, None),
    (3, N_("Epochs"), "epochs", "train_epochs", 5, 1, None),
    (3, N_("Seed"), "seed", "train_seed", 0, 1, None),
)
CONTROLS = (  # label, icon, lab_pages.slots verb, act()'s keywords, disabled(trainer state or None), help
    (
        N_("Start"),
        "play_arrow",
        "start",
        dict(settings=True),
        lambda s: s in (S.RUNNING, S.PAUSED, S.STARTING),
        N_("Train from scratch with these settings"),
    ),
    (N_("Pause"), "pause", "pause", {}, lambda s: s not in (S.RUNNING, S.STARTING), None),
    (N_("Resume"), "resume", "resume", {}, lambda s: s not in (S.PAUSED, S.STOPPED), None),
    (
        N_("Step"),
        "skip_next",
        "step",
        dict(settings=True),
        lambda s: s in (S.RUNNING, S.STARTING),
        N_("Train one batch"),
    ),
    (N_("Stop"), "stop", "stop", {}, lambda s: s not in (S.RUNNING, S.PAUSED, S.IDLE, S.STARTING), None),
    (N_("Reset"), "restart_alt", "reset", {}, lambda s: s is None, None),
)
handle = functools.partial(
    slots.session_handle, state.TRAIN_HANDLE, label="train page"
)  # this session's trainer slot
AE_WHY = N_(
    "An AE has no KL term: its encoder maps each image to one point, not a distribution q(z|x), and it has no "
    "prior p(z), so its loss is the reconstruction cost alone."
)


def configs():
    """(ModelConfig | None, TrainConfig | None, one message per bad field) from the settings widgets."""
    g, ds = st.session_state.get, st.session_state.get("train_dataset") or "digits"
    return configs_from_settings(
        ds,
        image_shape_of(ds),
        "ae" if g("train_kind") == "AE" else "vae",
        **{f: g(key, d) for _col, _label, f, key, d, _step, _help in NUMBERS},
        hidden=g("train_hidden", "400"),
        likelihood=g("train_likelihood", "bernoulli"),
        binarize=g("train_binarize", False),
    )


def act(verb, *args, settings: bool = False) -> None:
    """Button callback: ``verb`` (lab_pages.slots) on the slot (``settings``: with the configs); its message is kept."""
    if (msg := verb(handle(), *(configs() if settings else ()), *args)) is not None:
        st.session_state["train_flash"] = msg


def draw_live(h: registry.TrainerHandle, live: bool) -> None:
    """What changes while training, drawn from one snapshot (bench/app_train_throughput.py times it)."""
    h.touch()
    if (tr := h.trainer) is None:
        return st.info(
            _("Press **Start** to train with these settings, or **Step** to train one batch at a time.")
        )
    snap, cfg, tc = tr.snapshot(), tr.model_config, tr.config
    if live and snap.state not in (S.RUNNING, S.STARTING):
        st.rerun()  # finished, stopped or diverged: redraw the whole page once, without the timer
    is_vae, fin = cfg.kind == "vae", math.isfinite
    eta = (
        _(" · ETA {min}:{sec:02d}").format(min=int(snap.eta_s // 60), sec=int(snap.eta_s % 60))
        if fin(snap.eta_s) and live
        else ""
    )
    st.progress(
        min(1.0, snap.step / snap.total_steps),
        text=_(
            "**{state}** · step {step:,}/{total:,} · epoch {epoch:.2f}/{epochs} · {rate} examples/s{eta}"
        ).format(
            state=_(S(snap.state).value),
            step=snap.step,
            total=snap.total_steps,
            epoch=snap.epoch,
            epochs=tc.epochs,
            rate=f"{snap.examples_per_s:,.0f}" if fin(snap.examples_per_s) else "—",
            eta=eta,
        ),
    )
    if snap.message and snap.state != S.RUNNING:  # a failure is an error: why, and what to do
        (st.error if snap.state in (S.DIVERGED, S.FAILED) else st.caption)(error_text(snap.message))
    if tp := [t for t in snap.history.throughput if fin(t)]:
        st.caption(
            _("Training speed over the last epoch: {rate:,.0f} examples/s (its test pass included).").format(
                rate=tp[-1]
            )
        )
    if not snap.history.step:
        return
    ps, hist, unit = h.series(snap.history, max_points=300), snap.history, _("nats/image")
    rc, kl = ps["recon_cost"][-1], ps["kl"][-1]
    if is_vae:
        st.latex(
            rf"-\mathrm{{ELBO}} = \underbrace{{{rc:.1f}}}_{{\color{{{RECON_COLOR}}}{{-\mathbb{{E}}_q \log p(x\mid z)}}}}"
            rf" + \underbrace{{{kl:.1f}}}_{{\color{{{KL_COLOR}}}{{\mathrm{{KL}}(q(z\mid x)\,\|\,p(z))}}}}"
            rf" = {rc + kl:.1f}\ \text{{{unit}}}\quad(\beta = {hist.beta[-1]:g})"
        )
    else:
        st.latex(rf"\mathcal{{L}}_{{AE}} = -\log p(x\mid \hat z) = {rc:.1f}\ \text{{{unit}}}")
        st.caption(_(AE_WHY))
    left, right = st.columns([3, 2]) if is_vae else (st.container(), None)
    weighted = tc.beta != 1 or tc.warmup_steps > 0 or tc.free_bits > 0  # then what is minimised is not −ELBO
    live_chart(
        left,
        live,
        (charts.loss_stack, charts.loss_stack_svg),
        ps["step"],
        ps["recon_cost"],
        ps["kl"] if is_vae else None,
        ps["loss"] if weighted else None,
        hist.eval_step,
        hist.test_neg_elbo if is_vae else hist.test_recon,
        recon_name=_("reconstruction") + " −E_q log p(x|z)",
        kl_name="KL(q(z|x) ‖ p(z)); " + _("top edge = −ELBO"),
        objective_name=_("objective (β, warm-up, free bits)"),
        eval_name=_("test −ELBO") if is_vae else _("test reconstruction"),
        x_title=_("training step"),
        y_title=_("nats per image, under {likelihood}").format(
            likelihood=likelihood_text(cfg.likelihood, tc.binarize)
        ),
        key="train_loss_chart",
    )
    if right is not None:
        live_chart(
            right,
            live,
            (charts.kl_heatmap, charts.kl_heatmap_svg),
            ps["step"],
            ps["kl_per_dim"],
            range(1, cfg.latent_dim + 1),
            x_title=_("training step"),
            y_title=_("latent dimension"),
            colorbar_title=_("nats"),
            key="train_kl_heatmap",
        )
        right.caption(
            _("Dimensions that stay pale carry no information (inactive units).")
            + (
                _(" Active units at the last test: **{active} of {total}**.").format(
                    active=last["active_units"], total=cfg.latent_dim
                )
                if (last := hist.last_eval())
                else ""
            )
        )
    if (pv := snap.preview) is None:  # decoded by the worker, about once a second
        return
    c1, c2 = st.columns(2)  # below: ~56 px tiles, a quarter of the PNG to encode every second
    show_grid(
        torch.cat([to_float(pv.inputs), pv.recon]),
        cfg.image_shape,
        8,
        _("top: {n} fixed test images · bottom: reconstructions (step {step})").format(n=8, step=pv.step),
        px=56,
        container=c1,
    )
    show_grid(
        pv.samples,
        cfg.image_shape,
        8,
        (
            _("{n} samples from the prior z ~ N(0, I)")
            if is_vae
            else _("{n} decodes of z ~ N(0, I): an AE has no prior, so these need not look like data")
        ).format(n=16),
        px=56,
        container=c2,
    )


def main() -> (
    None
):  # a function: Streamlit keeps the page module in sys.modules["__main__"]; a global handle would outlive its session
    st.title(_("Train"))
    st.caption(
        _(
            "Train a small VAE (or AE) in this browser session, in a process of its own: you can change pages, and "
            "another tab trains its own model without touching this one."
        )
    )
    names, tr = available_datasets(), (h := handle()).trainer  # draw_live, below, touches h on every run
    with st.expander(_("Settings"), expanded=tr is None):  # values live in session_state under their keys
        c = st.columns(4)
        c[0].selectbox(
            _("Dataset"),
            names,
            index=names.index("fashion-mnist") if "fashion-mnist" in names else 0,
            key="train_dataset",
        )
        ae = c[0].radio(_("Model"), ["VAE", "AE"], horizontal=True, key="train_kind") == "AE"
        for col, label, _field, key, v, step, help_ in NUMBERS:
            c[col].number_input(
                _(label),
                value=v,
                step=step,
                format="%g" if isinstance(v, float) else None,
                key=key,
                disabled=ae and col == 2,
                help=help_ and _(help_),
            )
        c[1].text_input(
            _("Hidden sizes"),
            "400",
            key="train_hidden",
            help=_("Encoder widths, e.g. 400 or 512,256; the decoder mirrors them."),
        )
        c[1].selectbox(
            _("Likelihood p(x|z)"),
            LIKELIHOODS,
            format_func=likelihood_name,
            key="train_likelihood",
            help=_(
                "Bernoulli: pixels as coin flips; continuous Bernoulli: its normalised density on [0, 1]; Gaussian: fixed σ."
            ),
        )
        c[0].checkbox(
            _("Dynamic binarization"),
            key="train_binarize",
            help=_(
                "Each step draws x ~ Bernoulli(pixels) anew: the Bernoulli becomes a true likelihood (binarized-MNIST figures)."
            ),
        )
        c[0].file_uploader(
            _("Your own dataset: a .zip of images or an .npz"),
            type=["zip", "npz"],
            key="train_data_upload",
            on_change=lambda: st.session_state.update(
                train_flash=slots.add_dataset(st.session_state["train_data_upload"])
            ),
            max_upload_size=MAX_COMPRESSED_BYTES // 2**20,
            help=_(
                "A .zip: one folder per class, or all in one. An .npz: x (N, H, W) uint8 and optionally y (N,)."
            ),
        )
        st.caption(
            (_("β, warm-up and free bits do not apply: {why}").format(why=_(AE_WHY)) + " " if ae else "")
            + (
                _("Settings apply at the next Start; the current trainer keeps its own.")
                if tr is not None
                else ""
            )
        )
    for e in configs()[2]:  # one message per bad field
        st.error(error_text(e))
    for col, (label, icon, verb, kw, disabled, help_) in zip(st.columns(6), CONTROLS):
        col.button(
            _(label),
            icon=f":material/{icon}:",
            key=f"train_{verb}",
            on_click=act,
            args=(getattr(slots, verb),),
            kwargs=kw,
            type="primary" if verb == "start" else "secondary",
            disabled=disabled(tr and tr.state),
            help=help_ and _(help_),
        )
    if flash := st.session_state.pop(
        "train_flash", None
    ):  # the last button's result (kind, text), shown once
        getattr(st, flash[0])(flash[1])
    if tr is not None:  # outside the fragment, so from the first step on (the callbacks check for steps)
        slots.keep_row(h, act)
    h.registry.warm()  # the fork server (started with the app) runs: Start is felt at once
    live = tr is not None and tr.state in (S.RUNNING, S.STARTING)
    (
        st.fragment(run_every=REFRESH_S)(lambda: draw_live(handle(), True))
        if live
        else lambda: draw_live(h, False)
    )()


if __name__ == "__main__":  # Streamlit runs pages as __main__; importing (the benchmark) draws nothing
    main()
