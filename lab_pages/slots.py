"""A browser session's slots in the server-wide trainer registry (vae_core.registry), and what
the Train page's controls (Start … Reset, Save, Use, Download) do to its slot.

Each page that trains keeps its own :class:`~vae_core.registry.TrainerHandle` in
``st.session_state`` under its own key: the Train page's model, the AE/VAE pair and a Pitfalls
run each count towards the server's cap, each trains as a job in a worker process
(vae_core.handle.LiveJob), and each stops when its session ends.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Callable

import streamlit as st

from lab_pages import datasets, model_store, state
from lab_pages.i18n import _, error_text, ngettext
from vae_core import registry
from vae_core.checkpoint import NAME_RE, CheckpointError, checkpoint_bytes, save_by_name
from vae_core.data import DatasetError
from vae_core.handle import LiveJob
from vae_core.jobs import TrainJob
from vae_core.models import ConfigError
from vae_core.train import TrainerState as S
from vae_core.train import cli_command
from vae_core.userdata import UserDataError, load_user_dataset


def session_handle(key: str, label: str = "") -> registry.TrainerHandle:
    """This browser session's handle under ``key`` (made on first use, kept in session_state only)."""
    h = st.session_state.get(key)
    if h is None or h.closed:
        h = registry.default_registry().open(label=label, probe=session_probe())
        st.session_state[key] = h
    return h


def session_probe() -> Callable[[], bool] | None:
    """A callable that says whether this Streamlit session is still connected (None outside a server)."""
    try:
        from streamlit.runtime import Runtime
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        if ctx is None or not Runtime.exists():
            return None
        # a partial, not a lambda: a function defined here would hold the page's globals
        return functools.partial(Runtime.instance().is_active_session, ctx.session_id)
    except Exception:  # internal API moved: fall back to the page's own heartbeat
        return None


# ------------------------------------------------------------------ what the Train page's controls do
# Each takes the session's handle and returns the message to show, (kind, text) with kind an
# st function name ("success", "info", "warning", "error"), the text in the session's language
# (they run as button callbacks, inside the session's script run). No drawing here: these are the
# handle's verbs with the words a learner reads.
Message = tuple[str, str]


def _new_trainer(h: registry.TrainerHandle, mc, tc) -> LiveJob:
    """A training job for a worker process of its own (vae_core.handle): the server's GIL and threads stay
    free for pages. An uploaded dataset (this session's only) is sent to the worker whole."""
    return h.registry.job(TrainJob(mc, tc), dataset=datasets.get_dataset(tc.dataset))


def start(h: registry.TrainerHandle, mc, tc, errors: list[str]) -> Message:
    """Start training: the idle trainer of a Step with the same settings continues, else a new one."""
    if errors:
        return "error", _("Not started. Fix the settings first: {errors}").format(errors=" ".join(errors))
    old = h.trainer
    reuse = old is not None and old.state == S.IDLE and old.model_config == mc and old.config == tc
    try:
        h.start(None if reuse else _new_trainer(h, mc, tc))
    except (registry.CapacityError, ConfigError, DatasetError) as exc:
        return "error", _("Not started: {reason}").format(reason=error_text(exc))
    # TRANSLATORS: {model} is e.g. "VAE 784-400-16 (bernoulli)", {dataset} a dataset name.
    return "success", ngettext(
        "Training started: {model} on {dataset}, {epochs} epoch.",
        "Training started: {model} on {dataset}, {epochs} epochs.",
        tc.epochs,
    ).format(model=mc.describe(), dataset=tc.dataset, epochs=tc.epochs)


STEP = "{step}"  # left in a message by the verbs below: the page writes the step of the snapshot it draws


def _tell(h: registry.TrainerHandle, verb: str, text: str) -> Message | None:
    """Call ``trainer.<verb>()`` if there is a trainer and wait (briefly) for the worker to hold it there; ``text``
    keeps its ``{step}``, which the page fills from the snapshot its progress bar shows (one step, one number)."""
    tr = h.trainer
    if tr is None:
        return None
    getattr(tr, verb)()
    tr.settle()
    return "info", text


def discards(h: registry.TrainerHandle, mc=None, tc=None, errors: list[str] | None = None) -> int | None:
    """The step of the trained model that Reset (or, with the settings, Start) would throw away; None if nothing
    would be lost: no trainer, no step taken, or Start would refuse or continue this idle trainer."""
    tr = h.trainer
    if tr is None or tr.global_step == 0 or errors:
        return None
    if mc is not None and tr.state == S.IDLE and tr.model_config == mc and tr.config == tc:
        return None
    return tr.global_step


def pause(h: registry.TrainerHandle) -> Message | None:
    tr = h.trainer
    if tr is not None and tr.state == S.FINISHED:
        return "info", _(
            "The run is over at step {step}: nothing to pause. Step trains one more batch of this model; Resume "
            "trains it for more epochs."
        )
    return _tell(h, "pause", _("Paused at step {step}. Step trains one batch; Resume continues."))


def resume(h: registry.TrainerHandle, more_epochs: int = 1) -> Message:
    """Continue a paused or stopped run; a finished one goes on with the same model for ``more_epochs`` epochs."""
    tr = h.trainer
    more = max(1, int(more_epochs))
    extended = tr is not None and tr.state == S.FINISHED and tr.extend(more)
    try:
        h.resume()
    except registry.CapacityError as exc:
        return "error", _("Not resumed: {reason}").format(reason=error_text(exc))
    if h.trainer is not None and h.trainer.state in (S.RUNNING, S.STARTING):
        if extended:
            return "success", ngettext(
                "The same model trains on from step {step}: {n} more epoch.",
                "The same model trains on from step {step}: {n} more epochs.",
                more,
            ).format(step=STEP, n=more)
        return "success", _("Resumed at step {step}.")
    return "warning", _("Not resumed: the trainer is still finishing its last step; press Resume again.")


def step(h: registry.TrainerHandle, mc, tc, errors: list[str]) -> Message:
    """Train one batch: before any run, on a new idle trainer; after the end of a run, on the SAME model (the run
    grows by one epoch); after a divergence or a failure, on a new trainer."""
    tr = h.trainer
    if tr is not None and tr.state == S.FINISHED:
        tr.extend(1)
    elif tr is None or tr.state in (S.DIVERGED, S.FAILED):
        if errors:
            return "error", _("No step taken. Fix the settings first: {errors}").format(
                errors=" ".join(errors)
            )
        try:
            h.attach(_new_trainer(h, mc, tc))
        except (DatasetError, ConfigError) as exc:
            return "error", _("No step taken: {reason}").format(reason=error_text(exc))
    rec = h.trainer.step()
    if rec is None:
        return "warning", error_text(h.trainer.message) if h.trainer.message else _(
            "No step taken: training is over."
        )
    kl = _(", KL {kl:.2f}").format(kl=rec["kl"]) if h.trainer.model_config.kind == "vae" else ""
    # TRANSLATORS: {kl} is empty for an AE, else ", KL 12.34" (its own message).
    return "info", _("One batch: step {step}, loss {loss:.2f} nats/image (recon {recon:.2f}{kl}).").format(
        step=STEP, loss=rec["loss"], recon=-rec["recon"], kl=kl
    )


def stop(h: registry.TrainerHandle) -> Message | None:
    return _tell(
        h,
        "stop",
        _("Stopped at step {step}. The weights are kept: save, download or use them; Resume continues."),
    )


def reset(h: registry.TrainerHandle) -> Message:
    h.attach(None)
    return "info", _("Reset: the trainer and its weights were discarded (saved checkpoints stay).")


def copy_of(tr: LiveJob):
    """A consistent (model, metadata) copy of the trainer, with the CLI command that would train it."""
    return tr.consistent_copy(cli_command(tr.model_config, tr.config) + "  # trained on the app's Train page")


def save(h: registry.TrainerHandle, name: str) -> Message:
    """Save a copy as <saved folder>/<name> (model_store.saved_dir; vae_core.checkpoint's name rules) and make it current."""
    tr = h.trainer
    if tr is None or tr.global_step == 0:
        return "error", _("Nothing to save yet: train at least one step.")
    try:
        model, meta = copy_of(tr)
        path = save_by_name(model, meta, name, model_store.saved_dir(), model_store.list_shipped())
        state.set_current_model(model_store.load_shipped(f"saved/{name}"))
    except (OSError, CheckpointError) as exc:
        return "error", _("Could not save: {reason}").format(reason=error_text(exc))
    state.set_picked("shipped", f"saved/{name}")
    return "success", _(
        "Saved {path} (step {step}); it is now the current model and the sidebar picker lists it."
    ).format(path=model_store.display_path(path), step=meta["steps"])


def use(h: registry.TrainerHandle) -> Message:
    """Make a copy of the trainer's model the current model of this session (not saved)."""
    if h.trainer is None or h.trainer.global_step == 0:
        return "error", _("Nothing to use yet: train at least one step.")
    (model, meta), mc = copy_of(h.trainer), h.trainer.model_config
    label = f"trained {mc.kind.upper()} z={mc.latent_dim} {meta['dataset']} step {meta['steps']}"  # a model's name: kept as is
    state.add_session_model(
        model_store.LoadedModel(f"train:{h.id}:{time.time_ns()}", label, "session", model, model.config, meta)
    )
    state.set_picked("session", label)
    return "success", _("“{label}” is now the current model on every page (not saved to disk).").format(
        label=label
    )


def download_bytes(ref: weakref.ref) -> bytes:
    """The checkpoint file of the handle's trainer, made when the browser asks (weak: no session kept alive)."""
    tr = getattr(ref(), "trainer", None)
    return b"" if tr is None else checkpoint_bytes(*copy_of(tr))


def add_dataset(upload) -> Message | None:
    """An uploaded .zip or .npz (a Streamlit UploadedFile) becomes a dataset of this session and the form's choice."""
    if upload is None:
        return None
    try:
        ud = load_user_dataset(upload.getvalue(), upload.name)
    except UserDataError as exc:
        return "error", _("Not added: {reason}").format(reason=error_text(exc))
    st.session_state["train_dataset"] = state.add_user_dataset(ud)
    shape, k = ud.dataset.image_shape, len(ud.dataset.class_names)
    classes = ngettext("{n} class", "{n} classes", k).format(n=k) if ud.labelled else _("no classes")
    # TRANSLATORS: {classes} is "3 classes" or "no classes"; {digest} the start of the file's sha256.
    text = ngettext(
        "Added {name}: {n:,} image of {height}×{width}, {classes} (sha256 {digest}…). It trains, saves and "
        "downloads like any other dataset.",
        "Added {name}: {n:,} images of {height}×{width}, {classes} "
        "(sha256 {digest}…). It trains, saves and downloads like any other dataset.",
        ud.n_images,
    ).format(
        name=ud.dataset.name,
        n=ud.n_images,
        height=shape[1],
        width=shape[2],
        classes=classes,
        digest=ud.content_hash[:12],
    )
    return ("warning" if ud.warnings else "success"), " ".join((text, *(error_text(w) for w in ud.warnings)))


def keep_row(h: registry.TrainerHandle, act: Callable) -> None:
    """The Train page's row that keeps a trained model: name, Save, Download, Use (``act`` runs a verb as a callback)."""
    c = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    name = (
        c[0]
        .text_input(
            _("Checkpoint name"),
            key="train_save_name",
            placeholder=_("{example} (letters, digits, - and _)").format(example="my_vae"),
        )
        .strip()
    )
    c[1].button(
        _("Save"),
        icon=":material/save:",
        key="train_save",
        help=_("Writes {path}").format(
            path=model_store.display_path(model_store.saved_dir() / "<name>.safetensors")
        ),
        on_click=lambda: act(save, (st.session_state.get("train_save_name") or "").strip()),
    )
    c[2].download_button(
        _("Download"),
        icon=":material/download:",
        data=functools.partial(download_bytes, weakref.ref(h)),
        on_click="ignore",
        file_name=f"{name if NAME_RE.fullmatch(name) else 'vae_lab_model'}.safetensors",
        mime="application/octet-stream",
        key="train_download",
        help=_("{format} with its metadata").format(format=".safetensors"),
    )
    c[3].button(
        _("Use this model in the lab"),
        icon=":material/science:",
        key="train_use",
        on_click=act,
        args=(use,),
        help=_("Makes it the current model on every page, without saving"),
    )
