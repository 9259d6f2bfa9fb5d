"""The datasets the pages work on: the built-in ones (loaded once per process, shared and read-only) and the ones
uploaded in this session (lab_pages.state), by name. A page asks for a dataset here and never loads one itself."""

from __future__ import annotations

import threading

import streamlit as st

from lab_pages import state
from lab_pages.i18n import N_, _
from vae_core.data import DATASETS, Dataset, DatasetError, dataset_available, load_dataset

USER_PREFIX = "user:"  # datasets uploaded in a session (vae_core.userdata names them so)


@st.cache_resource(show_spinner=False)  # get_dataset shows a translated spinner
def _shared_dataset(name: str) -> Dataset:
    """A built-in dataset on CPU, loaded once per process (read-only, shared by all sessions)."""
    return load_dataset(name, download=False)


_PRELOADS: set[str] = set()  # names preload_dataset has started (or finished) loading


def preload_dataset(name: str) -> None:
    """Load the built-in dataset ``name`` into the shared cache in a daemon thread (idempotent): Home calls it for the
    default model's data, so that the first page that needs it (ELBO, explorer, maps) does not decode it (~0.6 s of
    gzip for Fashion-MNIST, mostly outside the GIL). A failure is left to that page, which says what is missing."""
    if name.startswith(USER_PREFIX) or name in _PRELOADS or not dataset_available(name):
        return
    _PRELOADS.add(name)

    def run() -> None:
        try:
            _shared_dataset(name)
        except Exception:  # noqa: BLE001  (the page that needs it shows the error)
            _PRELOADS.discard(name)

    threading.Thread(target=run, name=f"preload-{name}", daemon=True).start()


def get_dataset(name: str) -> Dataset:
    """The dataset ``name``: a built-in one (shared by all sessions) or one uploaded in this session."""
    if name.startswith(USER_PREFIX):
        ud = state.user_datasets().get(name)
        if ud is None:
            raise DatasetError(
                N_(
                    "{name} is a dataset uploaded in another browser session. Upload the same file "
                    "on the Train page (Your own dataset) to use it here."
                ),
                name=name,
            )
        return ud.dataset
    with st.spinner(_("Loading dataset…")):  # shown only when loading takes over half a second
        return _shared_dataset(name)


def available_datasets() -> list[str]:
    """Dataset names loadable here without a download: the built-in ones found, then this session's uploads."""
    return [n for n in DATASETS if dataset_available(n)] + list(state.user_datasets())


def image_shape_of(name: str) -> tuple[int, int, int]:
    """(C, H, W) of a dataset by name, without loading a built-in one."""
    return DATASETS[name].image_shape if name in DATASETS else get_dataset(name).image_shape
