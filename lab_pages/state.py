"""The session-state keys that more than one page (or the router, the sidebar and a page) share.

Each shared key is named once here and read or written through the typed accessors below;
keys that only one page uses stay constants of that page. This module imports nothing heavy
(no torch): the router and Home use it before torch is loaded. The key strings are part of the
tests' interface (they put a model into ``st.session_state["current_model"]`` before a run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import streamlit as st

if TYPE_CHECKING:
    from lab_pages.common import LoadedModel
    from vae_core.registry import TrainerHandle

CURRENT_MODEL = "current_model"    # LoadedModel: the model every page works on
MODEL_ERROR = "model_error"        # str: why the default model could not be loaded
SESSION_MODELS = "session_models"  # {label: LoadedModel}: trained or uploaded in this session
PICKER = "sidebar_model_pick"      # "shipped:<name>" | "session:<label>": the sidebar's selectbox
UPLOAD = "sidebar_upload"          # the sidebar's file uploader
TRAIN_HANDLE = "train_handle"      # TrainerHandle of the Train page (the ELBO page watches it)
EXPLORER_Z = "explorer_z"          # list[float]: the explorer's latent point (the latent map sends one)
EXPLORER_Z_MODEL = "explorer_z_model"  # str: key of the model that point belongs to


# ------------------------------------------------------------------ the current model
def stored_model() -> LoadedModel | None:
    """The current model if one was chosen or loaded in this session (no default is loaded here)."""
    return st.session_state.get(CURRENT_MODEL)


def has_current_model() -> bool:
    return CURRENT_MODEL in st.session_state


def set_current_model(lm: LoadedModel) -> None:
    """Make ``lm`` the current model for this browser session."""
    st.session_state[CURRENT_MODEL] = lm


def model_error() -> str | None:
    return st.session_state.get(MODEL_ERROR)


def set_model_error(message: str) -> None:
    st.session_state[MODEL_ERROR] = message


def session_models() -> dict[str, LoadedModel]:
    """Models trained or uploaded in this browser session, by label."""
    return st.session_state.setdefault(SESSION_MODELS, {})


def add_session_model(lm: LoadedModel, make_current: bool = True) -> None:
    """Register a session-trained or uploaded model (and select it)."""
    session_models()[lm.label] = lm
    if make_current:
        set_current_model(lm)


# ------------------------------------------------------------------ the sidebar's picker and upload
def picked() -> str | None:
    """The sidebar picker's value: ``"shipped:<name>"`` or ``"session:<label>"``."""
    return st.session_state.get(PICKER)


def set_picked(source: str, name: str) -> None:
    """Show ``name`` (from ``source``: "shipped" or "session") as the picker's choice."""
    st.session_state[PICKER] = f"{source}:{name}"


def upload() -> Any | None:
    """The file in the sidebar's uploader (an UploadedFile), known before the uploader is drawn."""
    return st.session_state.get(UPLOAD)


# ------------------------------------------------------------------ the Train page's trainer
def train_handle() -> TrainerHandle | None:
    """This session's Train-page trainer slot, if the Train page has made one."""
    return st.session_state.get(TRAIN_HANDLE)


# ------------------------------------------------------------------ latent map -> explorer
def explorer_point() -> tuple[Any, str | None]:
    """(z, model key) of the explorer's latent point, as stored (z may be None or anything sent)."""
    return st.session_state.get(EXPLORER_Z), st.session_state.get(EXPLORER_Z_MODEL)


def set_explorer_point(z: Sequence[float], model_key: str) -> None:
    """Store the explorer's latent point; the latent map calls this before ``st.switch_page``."""
    st.session_state[EXPLORER_Z], st.session_state[EXPLORER_Z_MODEL] = [float(v) for v in z], model_key
