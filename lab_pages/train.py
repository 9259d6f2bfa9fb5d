"""Train: an AE or VAE trained live in this browser session's own background thread.

The trainer (vae_core.train.Trainer) belongs to this session's TrainerHandle (vae_core.sessions),
which caps how many train at once and stops the trainer when the session ends. This script never
waits on it: the live view redraws from ``trainer.snapshot()`` in a fragment that reruns about
once a second while training, and every button acts in an on_click callback.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import time
import weakref

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from lab_pages.common import (
    ELBO_COLOR, KL_COLOR, PROJECT_ROOT, RECON_COLOR, SESSION_CHECKPOINT_DIR, LoadedModel, add_session_model,
    available_datasets, get_dataset, list_shipped, load_shipped, set_current_model, image_grid,
)
from lab_pages.slots import session_handle
from vae_core import sessions
from vae_core.checkpoint import CheckpointError, checkpoint_bytes, save_checkpoint
from vae_core.data import DATASETS, DatasetError
from vae_core.models import ConfigError, ModelConfig
from vae_core.train import TrainConfig, Trainer, TrainerState as S

REFRESH_S = 1.0
SWITCH_INTERVAL_S = 0.001  # see share_the_gil()
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEFAULTS = {"train_latent": 16, "train_hidden": "400", "train_beta": 1.0, "train_warmup": 0, "train_free_bits": 0.0,
            "train_lr": 1e-3, "train_batch": 128, "train_epochs": 5, "train_seed": 0}
FIELDS = {"latent_dim": "train_latent", "hidden": "train_hidden", "beta": "train_beta", "warmup_steps": "train_warmup",
          "free_bits": "train_free_bits", "lr": "train_lr", "batch_size": "train_batch", "epochs": "train_epochs",
          "seed": "train_seed"}
AE_WHY = ("An AE has no KL term: its encoder maps each image to one point, not a distribution q(z|x), and it has no "
          "prior p(z), so its loss is the reconstruction cost alone.")


def handle() -> sessions.TrainerHandle:
    """This browser session's trainer slot (made on first use, kept in session_state only)."""
    return session_handle("train_handle", label="train page")


def share_the_gil() -> None:
    """Hand the GIL back to the training thread within 1 ms instead of Python's 5 ms.

    Every torch op releases the GIL; while this script builds figures, the training thread then
    waits up to the switch interval to get it back, about 60 times a step. At 5 ms that cost a
    third of the training speed on a busy machine; at 1 ms a few percent. Process-wide, and
    harmless to the rest of the app (it only makes threads take turns more often).
    """
    if sys.getswitchinterval() > SWITCH_INTERVAL_S:
        sys.setswitchinterval(SWITCH_INTERVAL_S)


def configs() -> tuple[ModelConfig | None, TrainConfig | None, list[str]]:
    """Both configs from the settings widgets, or None and one clear message per bad field."""
    g = st.session_state.get
    ds = g("train_dataset") or "digits"
    return sessions.configs_from_settings(ds, DATASETS[ds].image_shape, "ae" if g("train_kind") == "AE" else "vae",
                                          **{k: g(key, DEFAULTS[key]) for k, key in FIELDS.items()})


def flash(kind: str, text: str) -> None:
    st.session_state["train_flash"] = (kind, text)


def on_start() -> None:
    mc, tc, errors = configs()
    if errors:
        return flash("error", "Not started. Fix the settings first: " + " ".join(errors))
    share_the_gil()
    h = handle()
    old = h.trainer
    reuse = old is not None and old.state == S.IDLE and old.model_config == mc and old.config == tc
    try:
        h.start(None if reuse else Trainer(mc, tc, dataset=get_dataset(tc.dataset)))
    except sessions.CapacityError as exc:
        return flash("error", f"Not started: {exc}")
    except (ConfigError, DatasetError) as exc:
        return flash("error", f"Not started: {exc}")
    flash("success", f"Training started: {mc.describe()} on {tc.dataset}, {tc.epochs} epoch(s).")


def on_pause() -> None:
    tr = handle().trainer
    if tr is not None:
        tr.pause()
        flash("info", f"Paused at step {tr.global_step}. Step trains one batch; Resume continues.")


def on_resume() -> None:
    share_the_gil()
    h = handle()
    try:
        h.resume()
    except sessions.CapacityError as exc:
        return flash("error", f"Not resumed: {exc}")
    if h.trainer is not None and h.trainer.state == S.RUNNING:
        flash("success", f"Resumed at step {h.trainer.global_step}.")
    else:
        flash("warning", "Not resumed: the trainer is still finishing its last step; press Resume again.")


def on_step() -> None:
    h = handle()
    if h.trainer is None or h.trainer.state in (S.FINISHED, S.DIVERGED, S.FAILED):
        mc, tc, errors = configs()
        if errors:
            return flash("error", "No step taken. Fix the settings first: " + " ".join(errors))
        try:
            h.attach(Trainer(mc, tc, dataset=get_dataset(tc.dataset)))
        except (DatasetError, ConfigError) as exc:
            return flash("error", f"No step taken: {exc}")
    rec = h.trainer.step()
    if rec is None:
        return flash("warning", h.trainer.message or "No step taken: training is over.")
    kl = f", KL {rec['kl']:.2f}" if h.trainer.model.is_vae else ""
    flash("info", f"One batch: step {rec['step']}, loss {rec['loss']:.2f} nats/image (recon {-rec['recon']:.2f}{kl}).")


def on_stop() -> None:
    tr = handle().trainer
    if tr is not None:
        tr.stop()
        flash("info", f"Stopped at step {tr.global_step}. The weights are kept: save, download or use them; Resume continues.")


def on_reset() -> None:
    handle().attach(None)
    flash("info", "Reset: the trainer and its weights were discarded (saved checkpoints stay).")


def _command(tr: Trainer) -> str:
    return sessions.cli_command(tr.model_config, tr.config) + "  # trained on the app's Train page"


def on_save() -> None:
    tr, name = handle().trainer, (st.session_state.get("train_save_name") or "").strip()
    if tr is None or tr.global_step == 0:
        return flash("error", "Nothing to save yet: train at least one step.")
    if not NAME_RE.fullmatch(name):
        return flash("error", f"Checkpoint name {name!r} is not allowed: use 1-64 letters, digits, - or _.")
    if name in list_shipped():
        return flash("error", f"{name!r} is the name of a shipped checkpoint; choose another name.")
    path = SESSION_CHECKPOINT_DIR / f"{name}.safetensors"
    if path.exists():
        return flash("error", f"A saved checkpoint named {name!r} exists already; choose another name.")
    try:
        model, meta = sessions.consistent_copy(tr, _command(tr))
        save_checkpoint(path, model, meta)
        lm = load_shipped(f"saved/{name}")
    except (OSError, CheckpointError) as exc:
        return flash("error", f"Could not save: {exc}")
    set_current_model(lm)
    st.session_state["sidebar_model_pick"] = f"shipped:saved/{name}"
    shown = path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path
    flash("success", f"Saved {shown} (step {meta['steps']}); it is now the current model "
          "and the sidebar picker lists it.")


def on_use() -> None:
    tr = handle().trainer
    if tr is None or tr.global_step == 0:
        return flash("error", "Nothing to use yet: train at least one step.")
    model, meta = sessions.consistent_copy(tr, _command(tr))
    label = f"trained {tr.model_config.kind.upper()} z={tr.model_config.latent_dim} {meta['dataset']} step {meta['steps']}"
    add_session_model(LoadedModel(f"train:{handle().id}:{time.time_ns()}", label, "session", model, model.config, meta))
    st.session_state["sidebar_model_pick"] = f"session:{label}"
    flash("success", f"“{label}” is now the current model on every page (not saved to disk).")


def _download_data(ref: weakref.ref) -> bytes:
    h = ref()
    tr = h.trainer if h is not None else None
    if tr is None:
        return b""
    return checkpoint_bytes(*sessions.consistent_copy(tr, _command(tr)))


@st.cache_resource(show_spinner=False)
def preview_inputs(dataset: str, latent_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(8 fixed test images (8, D) uint8, 16 fixed prior draws (16, z)), the same every redraw."""
    return sessions.fixed_examples(get_dataset(dataset), 8), sessions.prior_noise(latent_dim, 16)


def figure(data: list[dict], layout: dict) -> go.Figure:
    """A Plotly figure from plain dicts, skipping Plotly's per-property validation: the live view
    redraws every second beside the training thread, and validation was half its cost."""
    return go.Figure(data, layout=layout, _validate=False)


def loss_figure(ps: dict, hist, is_vae: bool, weighted: bool) -> go.Figure:
    """−ELBO stacked as reconstruction + KL (VAE) or the reconstruction cost alone (AE), nats per image."""
    x = ps["step"]
    data = [dict(type="scatter", x=x, y=ps["recon_cost"], name="reconstruction −E_q log p(x|z)",
                 stackgroup="e" if is_vae else None, line=dict(color=RECON_COLOR))]
    if is_vae:
        data.append(dict(type="scatter", x=x, y=ps["kl"], name="KL(q(z|x) ‖ p(z)); top edge = −ELBO", stackgroup="e",
                         line=dict(color=KL_COLOR)))
        if weighted:  # β ≠ 1, warm-up or free bits: what is minimised is not −ELBO
            data.append(dict(type="scatter", x=x, y=ps["loss"], name="objective (β, warm-up, free bits)",
                             line=dict(dash="dot", color="gray")))
    if hist.eval_step:
        data.append(dict(type="scatter", x=hist.eval_step, y=hist.test_neg_elbo if is_vae else hist.test_recon,
                         mode="markers", name="test −ELBO" if is_vae else "test reconstruction",
                         marker=dict(color=ELBO_COLOR if is_vae else RECON_COLOR, symbol="diamond", size=9)))
    return figure(data, dict(xaxis=dict(title=dict(text="training step")), yaxis=dict(title=dict(text="nats per image")),
                             height=380, margin=dict(t=10, b=10), legend=dict(orientation="h", yanchor="top", y=-0.22)))


def kl_heatmap(ps: dict) -> go.Figure:
    """KL per latent dimension (nats per image) over training steps."""
    z = ps["kl_per_dim"].T  # (z, P)
    return figure([dict(type="heatmap", x=ps["step"], y=np.arange(1, z.shape[0] + 1), z=z, colorscale=[[0, "#ffffff"], [1, KL_COLOR]],
                        colorbar=dict(title=dict(text="nats")))],
                  dict(xaxis=dict(title=dict(text="training step")), yaxis=dict(title=dict(text="latent dimension")),
                       height=300, margin=dict(t=20, b=10)))


def grid(images: torch.Tensor, shape: tuple[int, int, int], caption: str) -> None:
    """Like lab_pages.common.show_grid, but with ~56 px tiles: a quarter of the PNG to encode every second."""
    g = image_grid(images, shape, ncols=8)
    scale = max(1, round(56 / shape[1]))
    st.image(np.kron(g, np.ones((scale, scale), dtype=np.uint8)) if scale > 1 else g, caption=caption, width="stretch")


def live_view(live: bool) -> None:
    """The live part of the page (the fragment while training): this session's trainer, drawn."""
    draw_live(handle(), live)


def draw_live(h: sessions.TrainerHandle, live: bool) -> None:
    """Everything that changes while training, drawn from one snapshot (the per-second refresh work;
    bench/app_train_throughput.py runs this beside a training thread)."""
    h.touch()
    tr = h.trainer
    if tr is None:
        st.info("Press **Start** to train with these settings, or **Step** to train one batch at a time.")
        return
    snap = tr.snapshot()
    if live and snap.state != S.RUNNING:
        st.rerun()  # finished, stopped or diverged: redraw the whole page once, without the timer
    is_vae, cfg = tr.model_config.kind == "vae", tr.model_config
    eps = f"{snap.examples_per_s:,.0f} examples/s" if math.isfinite(snap.examples_per_s) else "— examples/s"
    eta = f"ETA {int(snap.eta_s // 60)}:{int(snap.eta_s % 60):02d}" if math.isfinite(snap.eta_s) and live else ""
    st.progress(min(1.0, snap.step / snap.total_steps), text=f"**{snap.state}** · step {snap.step:,}/{snap.total_steps:,} · "
                f"epoch {snap.epoch:.2f}/{tr.config.epochs} · {eps} {('· ' + eta) if eta else ''}")
    if snap.state in (S.DIVERGED, S.FAILED):
        st.error(snap.message)
    elif snap.message and snap.state != S.RUNNING:
        st.caption(snap.message)
    tp = [t for t in snap.history.throughput if math.isfinite(t)]
    if tp:
        st.caption(f"Training speed over the last epoch: {tp[-1]:,.0f} examples/s (its test pass included).")
    if not snap.history.step:
        return
    ps = h.series(snap.history, max_points=300)
    rc, kl = ps["recon_cost"][-1], ps["kl"][-1]
    if is_vae:
        st.latex(rf"-\mathrm{{ELBO}} = \underbrace{{{rc:.1f}}}_{{\color{{{RECON_COLOR}}}{{-\mathbb{{E}}_q \log p(x\mid z)}}}}"
                 rf" + \underbrace{{{kl:.1f}}}_{{\color{{{KL_COLOR}}}{{\mathrm{{KL}}(q(z\mid x)\,\|\,p(z))}}}}"
                 rf" = {rc + kl:.1f}\ \text{{nats/image}}\quad(\beta = {snap.history.beta[-1]:g})")
    else:
        st.latex(rf"\mathcal{{L}}_{{AE}} = -\log p(x\mid \hat z) = {rc:.1f}\ \text{{nats/image}}")
        st.caption(AE_WHY)
    left, right = st.columns([3, 2]) if is_vae else (st.container(), None)
    tc = tr.config
    weighted = tc.beta != 1 or tc.warmup_steps > 0 or tc.free_bits > 0
    left.plotly_chart(loss_figure(ps, snap.history, is_vae, weighted), key="train_loss_chart")
    if right is not None:
        right.plotly_chart(kl_heatmap(ps), key="train_kl_heatmap")
        last = snap.history.last_eval()
        right.caption("Dimensions that stay pale carry no information (inactive units)."
                      + (f" Active units at the last test: **{last['active_units']} of {cfg.latent_dim}**." if last else ""))
    x, z = preview_inputs(tr.config.dataset, cfg.latent_dim)
    pv = h.preview(x, z, min_interval_s=REFRESH_S)
    c1, c2 = st.columns(2)
    with c1:
        grid(torch.cat([x.float() / 255.0, pv.recon]), cfg.image_shape, f"top: 8 fixed test images · bottom: reconstructions (step {pv.step})")
    with c2:
        grid(pv.samples, cfg.image_shape, "16 samples from the prior z ~ N(0, I)" if is_vae
             else "16 decodes of z ~ N(0, I): an AE has no prior, so these need not look like data")


def settings_form(tr: Trainer | None) -> None:
    """The settings widgets (their values live in session_state under their keys)."""
    with st.expander("Settings", expanded=tr is None):
        names = available_datasets()
        c = st.columns(4)
        c[0].selectbox("Dataset", names, index=names.index("fashion-mnist") if "fashion-mnist" in names else 0, key="train_dataset")
        c[0].radio("Model", ["VAE", "AE"], horizontal=True, key="train_kind")
        ae = st.session_state.get("train_kind") == "AE"
        c[1].number_input("Latent dimension z", value=16, step=1, key="train_latent", help="1 to 64")
        c[1].text_input("Hidden sizes", "400", key="train_hidden", help="Encoder widths, e.g. 400 or 512,256; the decoder mirrors them.")
        c[2].number_input("β (KL weight)", value=1.0, step=0.5, format="%g", key="train_beta", disabled=ae, help="1 = the ELBO; >1 = β-VAE")
        c[2].number_input("KL warm-up (steps)", value=0, step=100, key="train_warmup", disabled=ae, help="β rises linearly from 0")
        c[2].number_input("Free bits (nats per dim)", value=0.0, step=0.1, format="%g", key="train_free_bits", disabled=ae)
        c[3].number_input("Learning rate", value=1e-3, step=1e-4, format="%g", key="train_lr")
        c[3].number_input("Batch size", value=128, step=32, key="train_batch")
        c[3].number_input("Epochs", value=5, step=1, key="train_epochs")
        c[3].number_input("Seed", value=0, step=1, key="train_seed")
        if ae:
            st.caption(f"β, warm-up and free bits do not apply: {AE_WHY}")
        if tr is not None:
            st.caption("Settings apply at the next Start; the current trainer keeps its own.")
    for e in configs()[2]:
        st.error(e)


def controls(tr: Trainer | None) -> None:
    """Start, Pause, Resume, Step, Stop, Reset (each acts in its callback), then the last action's result."""
    state = tr.state if tr is not None else None
    b = st.columns(6)
    b[0].button("Start", icon=":material/play_arrow:", key="train_start", on_click=on_start, type="primary",
                disabled=state in (S.RUNNING, S.PAUSED), help="Train from scratch with these settings")
    b[1].button("Pause", icon=":material/pause:", key="train_pause", on_click=on_pause, disabled=state != S.RUNNING)
    b[2].button("Resume", icon=":material/resume:", key="train_resume", on_click=on_resume, disabled=state not in (S.PAUSED, S.STOPPED))
    b[3].button("Step", icon=":material/skip_next:", key="train_step", on_click=on_step, disabled=state == S.RUNNING, help="Train one batch")
    b[4].button("Stop", icon=":material/stop:", key="train_stop", on_click=on_stop, disabled=state not in (S.RUNNING, S.PAUSED, S.IDLE))
    b[5].button("Reset", icon=":material/restart_alt:", key="train_reset", on_click=on_reset, disabled=tr is None)
    if "train_flash" in st.session_state:  # the last button's result, shown once
        kind, text = st.session_state.pop("train_flash")
        getattr(st, kind)(text)


def keep_row(h: sessions.TrainerHandle) -> None:
    """Save, Download and Use of the session's trainer."""
    c = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    name = c[0].text_input("Checkpoint name", placeholder="my_vae (letters, digits, - and _)", key="train_save_name").strip()
    c[1].button("Save", icon=":material/save:", key="train_save", on_click=on_save,
                help=f"Writes {SESSION_CHECKPOINT_DIR.parent.name}/{SESSION_CHECKPOINT_DIR.name}/<name>.safetensors")
    c[2].download_button("Download", icon=":material/download:", data=functools.partial(_download_data, weakref.ref(h)),
                         on_click="ignore", file_name=f"{name if NAME_RE.fullmatch(name) else 'vae_lab_model'}.safetensors",
                         mime="application/octet-stream", key="train_download", help=".safetensors with its metadata")
    c[3].button("Use this model in the lab", icon=":material/science:", key="train_use", on_click=on_use,
                help="Makes it the current model on every page, without saving")


def main() -> None:
    # A function, not module-level code: Streamlit keeps the last page module alive in
    # sys.modules["__main__"], and a global holding the handle would outlive its session.
    st.title("Train")
    st.caption("Train a small VAE (or AE) in this browser session. It trains in the background: you can change pages, "
               "and another tab trains its own model without touching this one.")
    h = handle()
    h.touch()
    tr = h.trainer
    settings_form(tr)
    controls(tr)
    if tr is not None:  # outside the fragment, so from the first step on (the callbacks check for steps)
        keep_row(h)
    if tr is not None and tr.state == S.RUNNING:
        st.fragment(run_every=REFRESH_S)(live_view)(True)
    else:
        live_view(False)


if __name__ == "__main__":  # Streamlit runs pages as __main__; importing (the benchmark) draws nothing
    main()
