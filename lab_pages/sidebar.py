"""The sidebar shown on every page: the current model and how to pick another."""

from __future__ import annotations

import hashlib

import streamlit as st

from lab_pages import i18n, links, presenter, state
from lab_pages.datasets import available_datasets
from lab_pages.i18n import _, error_text
from lab_pages.model_store import (
    LoadedModel,
    current_model,
    from_checkpoint,
    list_shipped,
    load_shipped,
    source_name,
)
from vae_core.checkpoint import MAX_BYTES, CheckpointError, load_checkpoint

UPLOAD_LIMIT_MB = 50
ERROR = "sidebar_error"  # the last pick's or upload's failure, shown under the picker
DONE = "sidebar_upload_done"  # file_id of the upload already adopted
LANG_WIDGET = "sidebar_language"  # the language selectbox


def _describe(lm: LoadedModel) -> None:
    cfg, meta = lm.config, lm.metadata
    st.markdown(f"**{lm.label}**")
    rows = [
        (_("dataset"), lm.dataset_name),
        (_("kind"), "VAE" if lm.is_vae else _("AE (no KL, no prior)")),
        (_("latent dim"), str(cfg.latent_dim)),
        (_("hidden"), "-".join(str(h) for h in cfg.hidden) or _("none")),
    ]
    if lm.is_vae:
        rows.append(("β", f"{lm.beta:g}"))
    rows += [(_("epochs trained"), f"{lm.epochs:.1f}"), (_("from"), source_name(lm.source))]
    st.markdown("\n".join(f"- {k}: `{v}`" for k, v in rows))
    tm = meta.get("test_metrics") or {}
    if tm.get("neg_elbo") is not None:
        label = _("test −ELBO") if lm.is_vae else _("test recon.")
        st.caption(_("{label}: {value:.2f} nats/image").format(label=label, value=tm["neg_elbo"]))


def _on_pick() -> None:
    choice = state.picked()
    if choice is None:
        return
    src, _sep, name = choice.partition(":")
    try:
        lm = state.session_models()[name] if src == "session" else load_shipped(name)
    except (CheckpointError, KeyError) as exc:
        st.session_state[ERROR] = _("Could not load {name}: {reason}").format(
            name=name, reason=error_text(exc)
        )
        return
    state.set_current_model(lm)
    st.session_state.pop(ERROR, None)


def adopt_upload() -> None:
    """Validate and adopt the uploaded checkpoint, once per uploaded file (a no-op without one).

    The uploader's value is known before it is drawn: app.py calls this before the page runs,
    so the page, the model box and the picker already show the upload (and the picker's state
    may still be set)."""
    up = state.upload()
    if up is None or st.session_state.get(DONE) == up.file_id:
        return
    st.session_state[DONE] = up.file_id
    data = up.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:12]
    try:
        ck = load_checkpoint(data, name=up.name, max_bytes=min(MAX_BYTES, UPLOAD_LIMIT_MB * 1024 * 1024))
    except CheckpointError as exc:
        st.session_state[ERROR] = _("Upload refused: {reason}").format(reason=error_text(exc))
        return
    label = f"upload: {up.name}"
    state.add_session_model(from_checkpoint(ck, label, "upload", f"upload:{digest}"))
    state.set_picked("session", label)
    st.session_state.pop(ERROR, None)


def language_picker() -> None:
    """简体中文 / English: the session's language; the choice also goes into the URL (``?lang=zh``)."""
    st.session_state[LANG_WIDGET] = i18n.session_lang()  # the URL or the browser may have set it
    st.selectbox(
        "🌐 语言 · Language",
        list(i18n.LANGUAGES),
        key=LANG_WIDGET,
        format_func=i18n.LANGUAGES.get,
        on_change=lambda: i18n.set_lang(st.session_state[LANG_WIDGET]),
    )


def model_sidebar() -> None:
    """Draw the model box and picker in the sidebar (app.py: before each page, after Home)."""
    adopt_upload()  # idempotent: a no-op when app.py already adopted it before Home
    with st.sidebar:
        language_picker()
        presenter.toggle()
        lm = current_model()
        links.link_box()  # after current_model(): the first run's default model is known
        st.subheader(_("Current model"))
        if lm is None:
            st.warning(_("No model loaded: pick one below, upload one, or train one."))
        else:
            _describe(lm)
        options = [f"shipped:{n}" for n in list_shipped()] + [f"session:{n}" for n in state.session_models()]
        if lm is not None:
            src = "session" if lm.source != "shipped" else "shipped"
            if f"{src}:{lm.label}" in options and state.picked() not in options:
                state.set_picked(src, lm.label)
        mine = _("  (this session)")
        st.selectbox(
            _("Pick a model"),
            options,
            key=state.PICKER,
            on_change=_on_pick,
            format_func=lambda o: o.split(":", 1)[1] + (mine if o.startswith("session:") else ""),
            help=_("Shipped checkpoints, plus models trained or uploaded in this browser session."),
        )
        st.file_uploader(
            _("…or upload a .safetensors checkpoint"),
            type=None,
            key=state.UPLOAD,
            max_upload_size=UPLOAD_LIMIT_MB,
            help=_(
                "Checkpoints saved by this lab (Train page → Download). At most {mb} MB. Never unpickled."
            ).format(mb=UPLOAD_LIMIT_MB),
        )
        if st.session_state.get(ERROR):
            st.error(st.session_state[ERROR])
        if "fashion-mnist" not in available_datasets():
            st.caption(
                _(
                    "Fashion-MNIST is not on this machine, so the lab uses the offline digits set. "
                    "Get it with `sudo apt-get install dataset-fashion-mnist`, or put its four files in `data/fashion-mnist/`."
                )
            )
