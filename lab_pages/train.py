"""Train: an AE or VAE trained live in this browser session's own background thread.

The trainer belongs to this session's TrainerHandle (vae_core.registry: a cap on trainers, and an end with the
session). The script never waits on it: the live view redraws from ``trainer.snapshot()`` in a fragment that reruns
about once a second while training; every button acts in an on_click callback (lab_pages.slots: what each does).
"""

from __future__ import annotations

import functools
import math
import weakref

import streamlit as st
import torch

from lab_pages import charts, slots, state
from lab_pages.common import available_datasets, get_dataset, show_grid
from lab_pages.style import KL_COLOR, RECON_COLOR
from vae_core import live, registry
from vae_core.train import configs_from_settings
from vae_core.checkpoint import NAME_RE
from vae_core.data import DATASETS, to_float
from vae_core.train import TrainerState as S

REFRESH_S, NATS = 1.0, "nats per image"
FIELDS = {"latent_dim": ("train_latent", 16), "hidden": ("train_hidden", "400"), "beta": ("train_beta", 1.0),
          "warmup_steps": ("train_warmup", 0), "free_bits": ("train_free_bits", 0.0), "lr": ("train_lr", 1e-3),
          "batch_size": ("train_batch", 128), "epochs": ("train_epochs", 5), "seed": ("train_seed", 0)}  # the form's keys
CONTROLS = (  # label, icon, lab_pages.slots verb, act()'s keywords, disabled(trainer state or None), help
    ("Start", "play_arrow", "start", dict(settings=True), lambda s: s in (S.RUNNING, S.PAUSED), "Train from scratch with these settings"),
    ("Pause", "pause", "pause", {}, lambda s: s != S.RUNNING, None),
    ("Resume", "resume", "resume", {}, lambda s: s not in (S.PAUSED, S.STOPPED), None),
    ("Step", "skip_next", "step", dict(settings=True), lambda s: s == S.RUNNING, "Train one batch"),
    ("Stop", "stop", "stop", {}, lambda s: s not in (S.RUNNING, S.PAUSED, S.IDLE), None),
    ("Reset", "restart_alt", "reset", {}, lambda s: s is None, None),
)
AE_WHY = ("An AE has no KL term: its encoder maps each image to one point, not a distribution q(z|x), and it has no "
          "prior p(z), so its loss is the reconstruction cost alone.")


def handle() -> registry.TrainerHandle:  # this session's trainer slot, made on first use
    return slots.session_handle(state.TRAIN_HANDLE, label="train page")


def configs():
    """(ModelConfig | None, TrainConfig | None, one message per bad field) from the settings widgets."""
    g, ds = st.session_state.get, st.session_state.get("train_dataset") or "digits"
    return configs_from_settings(ds, DATASETS[ds].image_shape, "ae" if g("train_kind") == "AE" else "vae",
                                          **{f: g(key, d) for f, (key, d) in FIELDS.items()})


def act(verb, *args, settings: bool = False) -> None:
    """Button callback: ``verb`` (lab_pages.slots) on the slot (``settings``: with the configs); its message is kept."""
    if (msg := verb(handle(), *(configs() if settings else ()), *args)) is not None:
        st.session_state["train_flash"] = msg


@st.cache_resource(show_spinner=False)
def preview_inputs(dataset: str, latent_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(8 fixed test images (8, D) uint8, 16 fixed prior draws (16, z)), the same every redraw."""
    return live.fixed_examples(get_dataset(dataset), 8), live.prior_noise(latent_dim, 16)


def draw_live(h: registry.TrainerHandle, live: bool) -> None:
    """What changes while training, drawn from one snapshot (bench/app_train_throughput.py times it)."""
    h.touch()
    tr = h.trainer
    if tr is None:
        return st.info("Press **Start** to train with these settings, or **Step** to train one batch at a time.")
    snap, cfg, tc = tr.snapshot(), tr.model_config, tr.config
    if live and snap.state != S.RUNNING:
        st.rerun()  # finished, stopped or diverged: redraw the whole page once, without the timer
    is_vae, fin = cfg.kind == "vae", math.isfinite
    eta = f" · ETA {int(snap.eta_s // 60)}:{int(snap.eta_s % 60):02d}" if fin(snap.eta_s) and live else ""
    st.progress(min(1.0, snap.step / snap.total_steps), text=f"**{snap.state}** · step {snap.step:,}/{snap.total_steps:,} · epoch "
                f"{snap.epoch:.2f}/{tc.epochs} · {f'{snap.examples_per_s:,.0f}' if fin(snap.examples_per_s) else '—'} examples/s{eta}")
    if snap.state in (S.DIVERGED, S.FAILED) or (snap.message and snap.state != S.RUNNING):
        (st.error if snap.state in (S.DIVERGED, S.FAILED) else st.caption)(snap.message)
    if tp := [t for t in snap.history.throughput if fin(t)]:
        st.caption(f"Training speed over the last epoch: {tp[-1]:,.0f} examples/s (its test pass included).")
    if not snap.history.step:
        return
    ps, hist = h.series(snap.history, max_points=300), snap.history
    rc, kl = ps["recon_cost"][-1], ps["kl"][-1]
    if is_vae:
        st.latex(rf"-\mathrm{{ELBO}} = \underbrace{{{rc:.1f}}}_{{\color{{{RECON_COLOR}}}{{-\mathbb{{E}}_q \log p(x\mid z)}}}}"
                 rf" + \underbrace{{{kl:.1f}}}_{{\color{{{KL_COLOR}}}{{\mathrm{{KL}}(q(z\mid x)\,\|\,p(z))}}}}"
                 rf" = {rc + kl:.1f}\ \text{{nats/image}}\quad(\beta = {hist.beta[-1]:g})")
    else:
        st.latex(rf"\mathcal{{L}}_{{AE}} = -\log p(x\mid \hat z) = {rc:.1f}\ \text{{nats/image}}")
        st.caption(AE_WHY)
    left, right = st.columns([3, 2]) if is_vae else (st.container(), None)
    weighted = tc.beta != 1 or tc.warmup_steps > 0 or tc.free_bits > 0  # then what is minimised is not −ELBO
    left.plotly_chart(charts.loss_stack(
        ps["step"], ps["recon_cost"], ps["kl"] if is_vae else None, ps["loss"] if weighted else None, hist.eval_step,
        hist.test_neg_elbo if is_vae else hist.test_recon, recon_name="reconstruction −E_q log p(x|z)",
        kl_name="KL(q(z|x) ‖ p(z)); top edge = −ELBO", objective_name="objective (β, warm-up, free bits)",
        eval_name="test −ELBO" if is_vae else "test reconstruction", x_title="training step", y_title=NATS), key="train_loss_chart")
    if right is not None:
        right.plotly_chart(charts.kl_heatmap(ps["step"], ps["kl_per_dim"], range(1, cfg.latent_dim + 1), x_title="training step",
                                             y_title="latent dimension", colorbar_title="nats"), key="train_kl_heatmap")
        last = hist.last_eval()
        right.caption("Dimensions that stay pale carry no information (inactive units)."
                      + (f" Active units at the last test: **{last['active_units']} of {cfg.latent_dim}**." if last else ""))
    (x, z), (c1, c2) = preview_inputs(tc.dataset, cfg.latent_dim), st.columns(2)
    pv = h.preview(x, z, min_interval_s=REFRESH_S)  # below: ~56 px tiles, a quarter of the PNG to encode every second
    show_grid(torch.cat([to_float(x), pv.recon]), cfg.image_shape, 8, f"top: 8 fixed test images · bottom: reconstructions "
              f"(step {pv.step})", px=56, container=c1)
    show_grid(pv.samples, cfg.image_shape, 8, "16 samples from the prior z ~ N(0, I)" if is_vae else "16 decodes of z ~ N(0, I): "
              "an AE has no prior, so these need not look like data", px=56, container=c2)


def main() -> None:
    # A function: Streamlit keeps the page module in sys.modules["__main__"]; a global handle would outlive its session.
    st.title("Train")
    st.caption("Train a small VAE (or AE) in this browser session. It trains in the background: you can change pages, "
               "and another tab trains its own model without touching this one.")
    h, names = handle(), available_datasets()
    h.touch()
    tr = h.trainer
    with st.expander("Settings", expanded=tr is None):  # values live in session_state under their keys
        c = st.columns(4)
        c[0].selectbox("Dataset", names, index=names.index("fashion-mnist") if "fashion-mnist" in names else 0, key="train_dataset")
        c[0].radio("Model", ["VAE", "AE"], horizontal=True, key="train_kind")
        ae = st.session_state.get("train_kind") == "AE"
        c[1].number_input("Latent dimension z", value=16, step=1, key="train_latent", help="1 to 64")
        c[1].text_input("Hidden sizes", "400", key="train_hidden", help="Encoder widths, e.g. 400 or 512,256; the decoder mirrors them.")
        c[2].number_input("β (KL weight)", value=1.0, step=0.5, format="%g", key="train_beta", disabled=ae, help="1 = the ELBO; >1 = β-VAE")
        c[2].number_input("KL warm-up (steps)", value=0, step=100, key="train_warmup", disabled=ae, help="β rises linearly from 0")
        c[2].number_input("Free bits (nats per dim)", value=0.0, step=0.1, format="%g", key="train_free_bits", disabled=ae)
        for label, key, v, step in (("Learning rate", "train_lr", 1e-3, 1e-4), ("Batch size", "train_batch", 128, 32),
                                    ("Epochs", "train_epochs", 5, 1), ("Seed", "train_seed", 0, 1)):
            c[3].number_input(label, value=v, step=step, format="%g" if key == "train_lr" else None, key=key)
        if ae:
            st.caption(f"β, warm-up and free bits do not apply: {AE_WHY}")
        if tr is not None:
            st.caption("Settings apply at the next Start; the current trainer keeps its own.")
    for e in configs()[2]:
        st.error(e)
    for col, (label, icon, verb, kw, disabled, help_) in zip(st.columns(6), CONTROLS):
        col.button(label, icon=f":material/{icon}:", key=f"train_{verb}", on_click=act, args=(getattr(slots, verb),), kwargs=kw,
                   type="primary" if verb == "start" else "secondary", disabled=disabled(tr and tr.state), help=help_)
    if "train_flash" in st.session_state:  # the last button's result, shown once
        kind, text = st.session_state.pop("train_flash")
        getattr(st, kind)(text)
    if tr is not None:  # outside the fragment, so from the first step on (the callbacks check for steps)
        c = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
        name = c[0].text_input("Checkpoint name", placeholder="my_vae (letters, digits, - and _)", key="train_save_name").strip()
        c[1].button("Save", icon=":material/save:", key="train_save", help="Writes checkpoints/saved/<name>.safetensors",
                     on_click=lambda: act(slots.save, (st.session_state.get("train_save_name") or "").strip()))
        c[2].download_button("Download", icon=":material/download:", data=functools.partial(slots.download_bytes, weakref.ref(h)),
                             on_click="ignore", file_name=f"{name if NAME_RE.fullmatch(name) else 'vae_lab_model'}.safetensors",
                             mime="application/octet-stream", key="train_download", help=".safetensors with its metadata")
        c[3].button("Use this model in the lab", icon=":material/science:", key="train_use", on_click=act, args=(slots.use,),
                    help="Makes it the current model on every page, without saving")
    live = tr is not None and tr.state == S.RUNNING
    (st.fragment(run_every=REFRESH_S)(lambda: draw_live(handle(), True)) if live else lambda: draw_live(h, False))()


if __name__ == "__main__":  # Streamlit runs pages as __main__; importing (the benchmark) draws nothing
    main()
