"""The session-state keys that more than one page (or the router, the sidebar and a page) share.

Each shared key is named once here and read or written through the typed accessors below;
keys that only one page uses stay constants of that page. This module imports nothing heavy
(no torch): the router and Home use it before torch is loaded. The key strings are part of the
tests' interface (they put a model into ``st.session_state["current_model"]`` before a run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

if TYPE_CHECKING:
    from lab_pages.model_store import LoadedModel
    from vae_core.registry import TrainerHandle

CURRENT_MODEL = "current_model"  # LoadedModel: the model every page works on
MODEL_ERROR = "model_error"  # str: why the default model could not be loaded
SESSION_MODELS = "session_models"  # {label: LoadedModel}: trained or uploaded in this session
PICKER = "sidebar_model_pick"  # "shipped:<name>" | "session:<label>": the sidebar's selectbox
UPLOAD = "sidebar_upload"  # the sidebar's file uploader
TRAIN_HANDLE = "train_handle"  # TrainerHandle of the Train page (the ELBO page watches it)
EXPLORER_Z = "explorer_z"  # list[float]: the explorer's latent point (the latent map sends one)
EXPLORER_Z_MODEL = "explorer_z_model"  # str: key of the model that point belongs to
USER_IMAGE = "user_image"  # UserImage: the image drawn or uploaded on the "Your image" page
USER_DATASETS = "user_datasets"  # {name: vae_core.userdata.UserData}: datasets uploaded in this session
PAGE_URL = "_page_url"  # str: the URL path of the page this run draws (app.py sets it: lab_pages.links)


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
    """Register a session-trained or uploaded model (and select it).

    Such a model has no shipped maps: its UMAP will be computed, so numba's warm-up starts now, in the
    background (idempotent), not at launch, where it slowed every first page."""
    from vae_core.umap_runtime import start_background_warmup

    session_models()[lm.label] = lm
    if make_current:
        set_current_model(lm)
    start_background_warmup(delay=1.0)


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
    if (
        st.session_state.get(PAGE_URL) in Z_PAGES
    ):  # the latent map sends a point without showing it in its URL
        write_url_point()


# ------------------------------------------------------------------ the explorer's point in the URL (?z=0.5,-1.25)
Z_PARAM = "z"  # the URL parameter: the explorer's point, comma-separated, Z_DECIMALS decimals
Z_PAGES = ("explorer", "manifold")  # the pages whose URL carries it (URL paths)
Z_DECIMALS = 3


def url_point_text(z: Sequence[float]) -> str:
    """``z`` as the URL writes it: "0.5,-1.25" (rounded to Z_DECIMALS decimals, trailing zeros dropped)."""
    return ",".join(f"{round(float(v), Z_DECIMALS) + 0.0:g}" for v in z)


def write_url_point() -> None:
    """Show the explorer's point in the URL, whichever widget set it (a slider, a component, the latent map)."""
    z = explorer_point()[0]
    if z is None:
        return
    text = url_point_text(z)
    if st.query_params.get(Z_PARAM) != text:
        st.query_params[Z_PARAM] = text


def read_url_point(text: str, model_key: str, latent_dim: int) -> str | None:
    """Make the URL's ``z`` (text such as "0.5,-1.25") the explorer's point for model ``model_key``, as if the
    sliders had set it (no note; values outside the sliders' range are clamped when drawn). Returns None, or,
    for text that is not a finite point of ``latent_dim`` numbers, why (translated) and changes nothing."""
    try:
        z = [float(v) for v in text.split(",")]
    except ValueError:
        z = []
    if len(z) != latent_dim or not np.isfinite(z).all():
        return _("{n} comma-separated numbers, one per latent dimension").format(n=latent_dim)
    st.session_state[EXPLORER_Z], st.session_state[EXPLORER_Z_MODEL] = z, model_key
    st.session_state[EXPLORER_LAST] = (model_key, tuple(z))  # the sliders' own point: no "sent" note
    st.session_state[EXPLORER_NOTE] = None
    for j in range(latent_dim):  # the sliders restart from z (read_slider_point)
        st.session_state.pop(slider_key(j), None)
    return None


# ------------------------------------------------------------------ your own image
@dataclass(frozen=True)
class UserImage:
    """An image drawn or uploaded in this session, preprocessed as one dataset's images were made."""

    pixels: np.ndarray  # (D,) uint8, the preprocessed input a model sees
    image_shape: tuple[int, int, int]  # (C, H, W) of that dataset
    dataset: str  # the dataset whose preprocessing it went through
    origin: str  # "drawing" or the uploaded file's name


def user_image(image_shape: Sequence[int] | None = None) -> UserImage | None:
    """The session's own image, or None; with ``image_shape`` only one made for images of that shape."""
    img = st.session_state.get(USER_IMAGE)
    if img is None or (image_shape is not None and tuple(img.image_shape) != tuple(image_shape)):
        return None
    return img


def set_user_image(img: UserImage | None) -> None:
    """Keep (or, with None, forget) the session's own image: pages then offer it beside the test images."""
    if img is None:
        st.session_state.pop(USER_IMAGE, None)
    else:
        st.session_state[USER_IMAGE] = img


# ------------------------------------------------------------------ your own datasets
def user_datasets() -> dict[str, Any]:
    """Datasets uploaded in this session (Train page), by name (``user:<file>``): vae_core.userdata.UserData."""
    return st.session_state.setdefault(USER_DATASETS, {})


def add_user_dataset(ud: Any) -> str:
    """Keep an uploaded dataset for this session; returns its name (a second upload of the same name replaces it)."""
    user_datasets()[ud.dataset.name] = ud
    return ud.dataset.name


# ------------------------------------------------------------------ the explorer's sliders (Latent explorer and Manifold pages)
from lab_pages.i18n import N_, _  # noqa: E402 - light (streamlit only): this section's notes

if TYPE_CHECKING:
    from vae_core.explore import SliderSpace

EXPLORER_LAST = "_explorer_last"  # (model key, tuple z): the point as the sliders last stored it
EXPLORER_NOTE = (
    "explorer_note"  # (msgid, fields, clamped dims, EXPLORER_LAST then) | None: a note on one point
)
EXPLORER_DIMS = "explorer_dims"  # the explorer's picker of slider dims (forgotten for a new model)
EXPLORER_DRAWS = "explorer_draws"  # int: random draws so far (draw n has seed n: reproducible)
SENT_NOTE = N_("z taken from the latent map.")
FOREIGN_NOTES = (  # [is_vae]
    N_(
        "A latent point was sent here for another model; it was ignored and the sliders start at the centre of the codes."
    ),
    N_(
        "A latent point was sent here for another model; it was ignored and the sliders start at the prior mean."
    ),
)
HOME_NOTES = (N_("Reset to the mean of the codes."), N_("Reset to the prior mean z = 0."))  # [is_vae]
RANDOM_NOTES = (
    N_("Random draw #{n} from a Gaussian fitted to the codes."),
    N_("Random draw #{n} from the prior N(0, I)."),
)


def slider_key(j: int) -> str:
    """The session key of latent dim ``j``'s slider (the explorer and the manifold page share it)."""
    return f"explorer_dim_{j}"


def set_slider_point(
    z: Sequence[float], model_key: str, sp: SliderSpace, note: tuple[str, dict] | None = None
) -> None:
    """Make ``z`` the explorer's point: the sliders (clamped to ``sp``'s ranges), the shared point, and ``note``
    ((English msgid, its fields): translated where shown, so a language switch translates it too) on this point."""
    from vae_core.explore import clamp_point  # noqa: PLC0415 - torch stays out of this module's import

    zc, clamped = clamp_point(z, sp.lo, sp.hi)
    st.session_state.update({slider_key(j): float(v) for j, v in enumerate(zc)})
    set_explorer_point(zc, model_key)
    last = st.session_state[EXPLORER_LAST] = (model_key, tuple(explorer_point()[0]))
    st.session_state[EXPLORER_NOTE] = (*note, clamped, last) if note else None


def explorer_note() -> str | None:
    """The note on the current point, in the session's language; None when there is none or the point moved since."""
    note = st.session_state.get(EXPLORER_NOTE)
    if not note or note[3] != st.session_state.get(EXPLORER_LAST):
        return None
    moved = ", ".join(f"z{j + 1}" for j in note[2])
    return _(note[0]).format(**note[1]) + (
        _(" ({dims} clamped to the slider range)").format(dims=moved) if moved else ""
    )


def reset_slider_point(model_key: str, sp: SliderSpace, is_vae: bool) -> None:
    """Back to ``sp.home``: the prior mean (a VAE) or the centre of the codes (an AE, which has no prior)."""
    set_slider_point(sp.home, model_key, sp, (HOME_NOTES[is_vae], {}))


def random_slider_point(model_key: str, sp: SliderSpace, is_vae: bool) -> None:
    """The next random draw: from the prior N(0, I) (a VAE) or from a Gaussian fitted to the codes (an AE)."""
    from vae_core.explore import random_point  # noqa: PLC0415

    st.session_state[EXPLORER_DRAWS] = n = st.session_state.get(EXPLORER_DRAWS, 0) + 1
    set_slider_point(
        random_point(n, sp.mean, sp.std, is_vae), model_key, sp, (RANDOM_NOTES[is_vae], {"n": n})
    )


def sync_slider_point(model_key: str, latent_dim: int, is_vae: bool, sp: SliderSpace) -> None:
    """Take a point another page sent for this model, or start at ``sp.home`` for a model new to the sliders."""
    from vae_core.explore import incoming_point  # noqa: PLC0415

    (sent_z, sent_key), last = explorer_point(), st.session_state.get(EXPLORER_LAST)
    if last is None or last[0] != model_key:
        st.session_state.pop(EXPLORER_DIMS, None)
    action, z = incoming_point(sent_z, sent_key, last, model_key, latent_dim)
    if action != "keep":
        note = {"sent": (SENT_NOTE, {}), "fresh": None, "foreign": (FOREIGN_NOTES[is_vae], {})}[action]
        set_slider_point(z if action == "sent" else sp.home, model_key, sp, note)


def read_slider_point(model_key: str, dims: Sequence[int], sp: SliderSpace) -> np.ndarray:
    """The current point (z,) with the sliders of ``dims`` applied (a slider not drawn last run restarts from it)."""
    z = np.array(explorer_point()[0], dtype=float)
    for j in dims:
        z[j] = st.session_state.setdefault(slider_key(j), float(np.clip(z[j], sp.lo[j], sp.hi[j])))
    set_explorer_point(z, model_key)
    st.session_state[EXPLORER_LAST] = (model_key, tuple(explorer_point()[0]))
    return z
