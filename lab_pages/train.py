"""Train: an AE or VAE trained live in a worker process of this session (its TrainerHandle, vae_core.registry: a cap, an end
with the session), on a built-in dataset or an uploaded one. The script never waits on it: the live view redraws from the
trainer's snapshot in a fragment rerun about once a second; each button acts in a callback (lab_pages.slots says what it does).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st
import torch

from lab_pages import charts, code_view, slots, state, svg_charts
from lab_pages.datasets import available_datasets, image_shape_of
from lab_pages.i18n import N_, _, error_text, ngettext
from lab_pages.images import grid_uri
from lab_pages.model_store import likelihood_name, likelihood_text
from lab_pages.plot import file_stem, plot, run_name
from lab_pages.style import KL_COLOR, RECON_COLOR
from vae_core import export, registry
from vae_core.data import to_float
from vae_core.elbo import SCALED_LIKELIHOODS, equivalent_beta
from vae_core.evaluate import ACTIVE_THRESHOLD, LOW_KL_THRESHOLD
from vae_core.handle import LiveSnapshot
from vae_core.live import PREVIEW_FRAMES, Preview, PreviewFrame
from vae_core.models import LIKELIHOODS, ModelConfig
from vae_core.train import History, TrainConfig, configs_from_settings
from vae_core.train import TrainerState as S
from vae_core.userdata import MAX_COMPRESSED_BYTES

REFRESH_S = 1.0  # seconds between live redraws
# ~6 s an epoch at 10-12k images/s: a default run of some 3 minutes, long enough to pause, step and resume while
# a host talks (lab_pages.tour's Train step says what to do on a faster machine)
DEFAULT_EPOCHS = 30
GIF_HOLD_MS = 1500  # the training GIF's last frame stays up this long before it loops
DEFAULT_SCALE = 0.1  # the Gaussian's σ / the Laplace's b, pixel units: ModelConfig.obs_std's default
STATES = (  # the TrainerState values, marked for the progress text
    N_("idle"),
    N_("starting"),
    N_("running"),
    N_("paused"),
    N_("stopped"),
    N_("finished"),
    N_("diverged"),
    N_("failed"),
)
AE_WHY = N_(
    "An AE has no KL term: its encoder maps each image to one point, not a distribution q(z|x), and it has no "
    "prior p(z), so its loss is the reconstruction cost alone."
)


@dataclass(frozen=True)
class NumberSetting:
    """One number input of the settings."""

    column: int  # 1: the model, 2: the VAE's objective (disabled for an AE), 3: the optimiser and the run
    label: str  # marked with N_(), translated where drawn
    field: str  # its keyword of vae_core.train.configs_from_settings
    key: str  # its widget key (its value lives in session_state under it)
    default: int | float  # a float default makes a float input
    step: int | float
    help: str | None = None  # marked with N_()

    @property
    def vae_only(self) -> bool:
        return self.column == 2


NUMBERS = [
    NumberSetting(1, N_("Latent dimension d"), "latent_dim", "train_latent", 16, 1, help=N_("1 to 64")),
    NumberSetting(
        2, N_("β (KL weight)"), "beta", "train_beta", 1.0, 0.5, help=N_("1 = the ELBO; >1 = β-VAE")
    ),
    NumberSetting(
        2,
        N_("KL warm-up (steps)"),
        "warmup_steps",
        "train_warmup",
        0,
        100,
        help=N_("β rises linearly from 0"),
    ),
    NumberSetting(2, N_("Free bits (nats per dim)"), "free_bits", "train_free_bits", 0.0, 0.1),
    NumberSetting(3, N_("Learning rate"), "lr", "train_lr", 1e-3, 1e-4),
    NumberSetting(3, N_("Batch size"), "batch_size", "train_batch", 128, 32),
    NumberSetting(
        3,
        N_("Epochs"),
        "epochs",
        "train_epochs",
        DEFAULT_EPOCHS,
        1,
        help=N_("Resume after the end trains the same model for this many more epochs"),
    ),
    NumberSetting(3, N_("Seed"), "seed", "train_seed", 0, 1),
]


@dataclass(frozen=True)
class Control:
    """One button of the row under the settings: it runs ``verb`` of lab_pages.slots on this session's trainer."""

    label: str  # marked with N_()
    icon: str  # a Material icon's name
    verb: str  # a function of lab_pages.slots; the button's key is train_<verb>
    enabled_in: tuple[S | None, ...]  # the trainer states it can be pressed in (None: no trainer yet)
    with_settings: bool = False  # the verb takes the configs from the settings widgets
    help: str | None = None  # marked with N_()


NO_RUN = (None, S.IDLE, S.STOPPED, S.FINISHED, S.DIVERGED, S.FAILED)  # no trainer, or none running or paused
CONTROLS = [
    Control(
        N_("Start"),
        "play_arrow",
        "start",
        enabled_in=NO_RUN,
        with_settings=True,
        help=N_("Train from scratch with these settings"),
    ),
    Control(N_("Pause"), "pause", "pause", enabled_in=(S.RUNNING, S.STARTING, S.FINISHED)),
    Control(
        N_("Resume"),
        "resume",
        "resume",
        enabled_in=(S.PAUSED, S.STOPPED, S.FINISHED),
        help=N_(
            "Continue this model; after the end of the run, for as many more epochs as the Epochs setting"
        ),
    ),
    Control(
        N_("Step"),
        "skip_next",
        "step",
        enabled_in=(*NO_RUN, S.PAUSED),
        with_settings=True,
        help=N_("Train one batch (after the end of the run: one more batch of the same model)"),
    ),
    Control(N_("Stop"), "stop", "stop", enabled_in=(S.RUNNING, S.PAUSED, S.IDLE, S.STARTING)),
    Control(N_("Reset"), "restart_alt", "reset", enabled_in=tuple(S)),
]

PREVIEW_KEY = "train_preview_images"  # ((job id, preview step), (two data URLs)): see preview_images
# This session's trainer slot.
handle = functools.partial(slots.session_handle, state.TRAIN_HANDLE, label="train page")


def configs():
    """(ModelConfig | None, TrainConfig | None, one message per bad field) from the settings widgets."""
    ss = st.session_state
    dataset = ss.get("train_dataset") or "digits"
    kind = "ae" if ss.get("train_kind") == "AE" else "vae"
    numbers = {n.field: ss.get(n.key, n.default) for n in NUMBERS}
    return configs_from_settings(
        dataset,
        image_shape_of(dataset),
        kind,
        **numbers,
        hidden=ss.get("train_hidden", "400"),
        likelihood=ss.get("train_likelihood", "bernoulli"),
        binarize=ss.get("train_binarize", False),
        obs_std=ss.get("train_obs_std", DEFAULT_SCALE),
    )


CONFIRM_KEY = (
    "train_confirm"  # the verb ("start" or "reset") pressed once over a trained model: a second press does it
)
DISCARDING = {"start": N_("Start"), "reset": N_("Reset")}  # the verbs that throw the trained model away


def act(verb, *args, settings: bool = False, **kwargs: Any) -> None:
    """Button callback: ``verb`` (lab_pages.slots) on the slot (``settings``: with the configs); its message is kept.
    Start and Reset over a trained model only warn at the first press: the second press discards it."""
    config_args = configs() if settings else ()
    ss = st.session_state
    asked = ss.pop(CONFIRM_KEY, None)
    name = getattr(verb, "__name__", "")
    if name in DISCARDING:
        step = slots.discards(handle(), *config_args)
        if step is not None and asked != name:
            ss[CONFIRM_KEY] = name
            ss["train_flash"] = (
                "warning",
                _(
                    "This discards the current model (step {step:,}); press {button} again to confirm. Save it or "
                    "use it in the lab first to keep it."
                ).format(step=step, button=_(DISCARDING[name])),
            )
            return
    message = verb(handle(), *config_args, *args, **kwargs)
    if message is not None:
        ss["train_flash"] = message


def live_chart(
    where: Any,
    live: bool,
    builders: tuple[Callable[..., Any], Callable[..., str]],
    *args: Any,
    key: str,
    name: str,
    model: str,
    **kwargs: Any,
) -> None:
    """Draw a chart in ``where``: ``builders`` = (its Plotly builder from lab_pages.charts, its static SVG twin from
    lab_pages.svg_charts), called with the same arguments. While ``live`` (a view redrawn once a second while
    training) the SVG, as an image: Plotly's redraws cost the browser ~0.45 of a core on the Train page and slowed
    the training beside it (docs/performance.md); otherwise the interactive figure, whose PNG download is named
    after ``model`` and ``name`` (lab_pages.plot)."""
    plotly_builder, svg_builder = builders
    if live:
        where.image(svg_builder(*args, **kwargs), width="stretch")
    else:
        plot(where, plotly_builder(*args, **kwargs), key=key, name=name, model=model)


def progress_text(snap: LiveSnapshot, epochs: int, live: bool) -> str:
    """The progress bar's line: state, step, epoch, speed and, while live, the time left."""
    eta = ""
    if live and math.isfinite(snap.eta_s):
        eta = _(" · ETA {min}:{sec:02d}").format(min=int(snap.eta_s // 60), sec=int(snap.eta_s % 60))
    rate = f"{snap.examples_per_s:,.0f}" if math.isfinite(snap.examples_per_s) else "—"
    return _(
        "**{state}** · step {step:,}/{total:,} · epoch {epoch:.2f}/{epochs} · {rate} examples/s{eta}"
    ).format(
        state=_(S(snap.state).value),
        step=snap.step,
        total=snap.total_steps,
        epoch=snap.epoch,
        epochs=epochs,
        rate=rate,
        eta=eta,
    )


def draw_objective(is_vae: bool, recon_cost: float, kl: float, beta: float) -> None:
    """−ELBO as its two terms (an AE: the reconstruction alone, and why), with the latest values."""
    unit = _("nats/image")
    if is_vae:
        st.latex(
            rf"-\mathrm{{ELBO}} = \underbrace{{{recon_cost:.1f}}}_{{\color{{{RECON_COLOR}}}{{-\mathbb{{E}}_q \log p(x\mid z)}}}}"
            rf" + \underbrace{{{kl:.1f}}}_{{\color{{{KL_COLOR}}}{{\mathrm{{KL}}(q(z\mid x)\,\|\,p(z))}}}}"
            rf" = {recon_cost + kl:.1f}\ \text{{{unit}}}\quad(\beta = {beta:g})"
        )
    else:
        st.latex(rf"\mathcal{{L}}_{{AE}} = -\log p(x\mid \hat z) = {recon_cost:.1f}\ \text{{{unit}}}")
        st.caption(_(AE_WHY))


def draw_charts(
    ps: dict[str, np.ndarray], hist: History, cfg: ModelConfig, tc: TrainConfig, live: bool
) -> None:
    """The loss stacked as reconstruction + KL over the steps and, for a VAE, the KL of each latent dimension."""
    is_vae = cfg.kind == "vae"
    if is_vae:
        left, right = st.columns([3, 2])
    else:
        left, right = st.container(), None
    weighted = tc.beta != 1 or tc.warmup_steps > 0 or tc.free_bits > 0  # then what is minimised is not −ELBO
    live_chart(
        left,
        live,
        (charts.loss_stack, svg_charts.loss_stack_svg),
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
        name="loss",
        model=run_name(cfg, tc),
    )
    if right is None:
        return
    live_chart(
        right,
        live,
        (charts.kl_heatmap, svg_charts.kl_heatmap_svg),
        ps["step"],
        ps["kl_per_dim"],
        range(1, cfg.latent_dim + 1),
        x_title=_("training step"),
        y_title=_("latent dimension"),
        colorbar_title=_("nats"),
        key="train_kl_heatmap",
        name="kl-heatmap",
        model=run_name(cfg, tc),
    )
    caption = _(
        "A row that stays pale has a KL near 0 nats: that dimension carries almost no information about x."
    )
    last = hist.last_eval()
    if last:
        caption += " " + units_caption(
            last["low_kl_units"], last["active_units"], cfg.latent_dim, last["step"]
        )
    right.caption(caption)


def units_caption(low_kl: float | None, active: float | None, total: int, step: float) -> str:
    """The heatmap's two counts at the last test, each named as what it measures: dimensions under
    LOW_KL_THRESHOLD nats of KL (the pale rows) and active units by Var_x[μ_j] (Burda et al.), which differ."""
    text = (
        _(
            "At the last test (step {step:,}): **{low} of {total}** dimensions carry less than {threshold:g} nats of KL "
            "per image (the pale rows);"
        ).format(step=int(step), low=int(low_kl), total=total, threshold=LOW_KL_THRESHOLD)
        if low_kl is not None and math.isfinite(low_kl)
        else _("At the last test (step {step:,}):").format(step=int(step))
    )
    return (
        text
        + " "
        + _(
            "active units (Var_x[μ_j] > {threshold:g}, a spread of μ_j over the images, not its KL): **{active} of "
            "{total}**."
        ).format(threshold=ACTIVE_THRESHOLD, active=active, total=total)
    )


def preview_images(job_id: int, pv: Preview, image_shape: tuple[int, int, int]) -> tuple[str, str]:
    """The worker's preview as two PNG mosaics (data URLs) (test images over their reconstructions; prior samples), ~56 px
    tiles. Kept per (job, preview step) in the session: the live view redraws every second, the worker
    decodes a new preview about as often, and a redraw between two previews sends the same bytes again."""
    key = (job_id, pv.step)
    cached = st.session_state.get(PREVIEW_KEY)
    if cached is not None and cached[0] == key:
        return cached[1]
    images = (
        grid_uri(torch.cat([to_float(pv.inputs), pv.recon]), image_shape, 8, px=56),
        grid_uri(pv.samples, image_shape, 8, px=56),
    )
    st.session_state[PREVIEW_KEY] = (key, images)
    return images


def draw_preview(job_id: int, pv: Preview, cfg: ModelConfig) -> None:
    """Reconstructions of 8 fixed test images and 16 prior samples, decoded by the worker."""
    recon_png, samples_png = preview_images(job_id, pv, cfg.image_shape)
    c1, c2 = st.columns(2)
    c1.image(
        recon_png,
        caption=_("top: {n} fixed test images · bottom: reconstructions (step {step})").format(
            n=8, step=pv.step
        ),
        width="stretch",
    )
    if cfg.kind == "vae":
        samples = _("{n} samples from the prior z ~ N(0, I)")
    else:
        samples = _("{n} decodes of z ~ N(0, I): an AE has no prior, so these need not look like data")
    c2.image(samples_png, caption=samples.format(n=16), width="stretch")


def training_gif(
    frames: tuple[PreviewFrame, ...], image_shape: tuple[int, int, int], total_steps: int, label: str
) -> bytes:
    """The run's previews over training as an animated GIF (vae_core.export); the last frame stays up longer."""
    images = export.training_frames(frames, image_shape, total_steps, scale=2, label=label)
    return export.gif_bytes(images, [export.FRAME_MS] * (len(images) - 1) + [GIF_HOLD_MS])


def draw_downloads(job: Any, snap: LiveSnapshot, cfg: ModelConfig, tc: TrainConfig) -> None:
    """The run's training history as CSV, and its reconstructions and samples over training as a GIF, each made when
    its button is pressed; drawn while the run is paused, stopped or finished."""
    name = run_name(cfg, tc)
    frames = job.preview_frames()  # the previews kept so far (a capped history: vae_core.live.PreviewHistory)
    c1, c2 = st.columns(2)
    c1.download_button(
        _("Download the training history (CSV)"),
        data=functools.partial(export.history_csv, snap.history, with_kl=cfg.kind == "vae"),
        file_name=file_stem("history", name) + ".csv",
        mime="text/csv",
        key="train_history_csv",
        on_click="ignore",
        icon=":material/download:",
        help=_("One row per training step, its test evaluation on the same row; nats per image."),
    )
    c2.download_button(
        _("Download the reconstructions and samples over training (GIF)"),
        data=functools.partial(training_gif, frames, cfg.image_shape, snap.total_steps, _("step {step:,}")),
        file_name=file_stem("training", name) + ".gif",
        mime="image/gif",
        key="train_gif",
        on_click="ignore",
        icon=":material/gif:",
        disabled=not frames,
        help=ngettext(
            "{n} frame, from the first step to the latest; at most {cap}, spread evenly over the run.",
            "{n} frames, from the first step to the latest; at most {cap}, spread evenly over the run.",
            len(frames),
        ).format(n=len(frames), cap=PREVIEW_FRAMES),
    )


def draw_live(h: registry.TrainerHandle, live: bool, snap: LiveSnapshot | None = None) -> None:
    """What changes while training, drawn from one snapshot of the job (``snap``, else a new one; the
    bench.app_train_throughput times it)."""
    h.touch()
    job = h.trainer
    if job is None:
        st.info(_("Press **Start** to train with these settings, or **Step** to train one batch at a time."))
        return
    snap, cfg, tc = snap or job.snapshot(), job.model_config, job.config
    if live and snap.state not in (S.RUNNING, S.STARTING):
        st.rerun()  # finished, stopped or diverged: redraw the whole page once, without the timer
    st.progress(min(1.0, snap.step / snap.total_steps), text=progress_text(snap, tc.epochs, live))
    if snap.message and snap.state in (S.DIVERGED, S.FAILED):  # a failure is an error: why, and what to do
        st.error(error_text(snap.message))
    elif snap.message and snap.state != S.RUNNING:
        st.caption(error_text(snap.message))
    speeds = [t for t in snap.history.throughput if math.isfinite(t)]
    if speeds:
        st.caption(
            _("Training speed over the last epoch: {rate:,.0f} examples/s (its test pass included).").format(
                rate=speeds[-1]
            )
        )
    if not snap.history.step:
        return
    ps = h.series(snap.history, max_points=300)
    draw_objective(cfg.kind == "vae", ps["recon_cost"][-1], ps["kl"][-1], snap.history.beta[-1])
    draw_charts(ps, snap.history, cfg, tc, live)
    if snap.preview is not None:  # decoded by the worker, about once a second
        draw_preview(id(job), snap.preview, cfg)
    if not live:  # a live view redraws every second: a button redrawn under the pointer could miss its click
        draw_downloads(job, snap, cfg, tc)


def settings(names: list[str], trained: bool) -> None:
    """The settings widgets, in an expander (open until a trainer exists). Their values live in session_state
    under their keys, where :func:`configs` reads them."""
    with st.expander(_("Settings"), expanded=not trained):
        c = st.columns(4)
        c[0].selectbox(
            _("Dataset"),
            names,
            index=names.index("fashion-mnist") if "fashion-mnist" in names else 0,
            key="train_dataset",
        )
        ae = c[0].radio(_("Model"), ["VAE", "AE"], horizontal=True, key="train_kind") == "AE"
        for n in NUMBERS:
            c[n.column].number_input(
                _(n.label),
                value=n.default,
                step=n.step,
                format="%g" if isinstance(n.default, float) else None,
                key=n.key,
                disabled=ae and n.vae_only,
                help=n.help and _(n.help),
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
                "Bernoulli: pixels as coin flips; continuous Bernoulli: its normalised density on [0, 1]; Gaussian: "
                "fixed σ (its loss is MSE); Laplace: fixed scale b (its loss is L1, |x − x′|)."
            ),
        )
        ss = st.session_state
        likelihood = ss.get("train_likelihood", "bernoulli")
        if likelihood in SCALED_LIKELIHOODS:
            c[1].number_input(
                _("Scale σ of the Gaussian (pixel units)")
                if likelihood == "gaussian"
                else _("Scale b of the Laplace (pixel units)"),
                min_value=0.001,
                max_value=9.9,
                value=DEFAULT_SCALE,
                step=0.01,
                format="%g",
                key="train_obs_std",
            )
            scale = float(ss.get("train_obs_std", DEFAULT_SCALE))
            c[1].caption(
                (
                    _(
                        "MSE is this Gaussian's −log p(x|z) up to a factor and a constant, so the scale acts as β: σ = "
                        "{scale:g} trains as β = σ² = {beta:.3g} does with σ = 1."
                    )
                    if likelihood == "gaussian"
                    else _(
                        "L1 is this Laplace's −log p(x|z) up to a factor and a constant, so the scale acts as β: b = "
                        "{scale:g} trains as β = b = {beta:.3g} does with b = 1."
                    )
                ).format(scale=scale, beta=equivalent_beta(likelihood, scale, 1.0))
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
            on_change=add_uploaded_dataset,
            max_upload_size=MAX_COMPRESSED_BYTES // 2**20,
            help=_(
                "A .zip: one folder per class, or all in one. An .npz: x (N, H, W) uint8 and optionally y (N,)."
            ),
        )
        note = ""
        if ae:
            note += _("β, warm-up and free bits do not apply: {why}").format(why=_(AE_WHY)) + " "
        if trained:
            note += _("Settings apply at the next Start; the current trainer keeps its own.")
        st.caption(note)


def add_uploaded_dataset() -> None:
    """The uploader's callback: the file becomes a dataset of this session (lab_pages.slots says how it went)."""
    st.session_state["train_flash"] = slots.add_dataset(st.session_state["train_data_upload"])


def control_kwargs(ctl: Control) -> dict[str, Any]:
    """What :func:`act` passes besides the verb: the settings, or Resume's epochs for a finished run."""
    if ctl.verb == "resume":
        more = st.session_state.get("train_epochs", DEFAULT_EPOCHS)
        return {"more_epochs": int(more) if isinstance(more, int | float) and more >= 1 else DEFAULT_EPOCHS}
    return {"settings": True} if ctl.with_settings else {}


def control_row(trainer_state: S | None) -> None:
    """Start, Pause, Resume, Step, Stop, Reset: each runs its verb in a callback (:func:`act`)."""
    for col, ctl in zip(st.columns(len(CONTROLS)), CONTROLS):
        col.button(
            _(ctl.label),
            icon=f":material/{ctl.icon}:",
            key=f"train_{ctl.verb}",
            on_click=act,
            args=(getattr(slots, ctl.verb),),
            kwargs=control_kwargs(ctl),
            type="primary" if ctl.verb == "start" else "secondary",
            disabled=trainer_state not in ctl.enabled_in,
            help=ctl.help and _(ctl.help),
        )


# A function, not the script body: Streamlit keeps the page module in sys.modules["__main__"], and a global handle
# would outlive its session.
def main() -> None:
    st.title(_("Train"))
    st.caption(
        _(
            "Train a small VAE (or AE) in this browser session, in a process of its own: you can change pages, and "
            "another tab trains its own model without touching this one."
        )
    )
    names = available_datasets()
    h = handle()  # draw_live, below, touches h on every run
    tr = h.trainer
    settings(names, trained=tr is not None)
    for e in configs()[2]:  # one message per bad field
        st.error(error_text(e))
    control_row(tr.state if tr is not None else None)
    flash = st.session_state.pop("train_flash", None)  # the last button's result (kind, text), shown once
    snap = (
        tr.snapshot() if tr is not None else None
    )  # the one snapshot this run's message and progress bar show
    if flash:
        kind, text = flash
        if snap is not None:
            text = text.replace(slots.STEP, f"{snap.step:,}")
        getattr(st, kind)(text)
    if tr is not None:  # outside the fragment, so from the first step on (the callbacks check for steps)
        slots.keep_row(h, act)
    h.registry.warm()  # the fork server (started with the app) runs: Start is felt at once
    live = snap is not None and snap.state in (S.RUNNING, S.STARTING)
    if live:

        @st.fragment(run_every=REFRESH_S)
        def live_view() -> None:
            draw_live(handle(), True)

        live_view()
    else:
        draw_live(h, False, snap)
    code_view.train_page(*configs()[:2])  # the settings as standalone PyTorch code


if __name__ == "__main__":  # Streamlit runs pages as __main__; importing (the benchmark) draws nothing
    main()
