"""VAE Workshop Lab: the router. Run with ``streamlit run app.py``.

Sets up the page, the navigation over lab_pages/, and the sidebar that shows and picks the
current model (a shipped checkpoint, a model trained in this session, or an upload).

Streamlit runs this script only when a browser connects, so the first run after the server
starts pays for importing torch and loading the default model. Training never runs here: each
trainer is a worker process of its own (vae_core.worker), with its own threads. On Home, nothing
imports torch before the page's text is drawn: the page loads the model last, and the sidebar
(which needs it) comes after the page. Other pages get the sidebar first, since they may stop.
"""

import streamlit as st

from lab_pages import state, tour  # import no torch
from lab_pages.i18n import _

st.set_page_config(page_title="VAE Workshop Lab", page_icon="🧪", layout="wide")


def _nav() -> dict[str, list]:
    """st.navigation's menu from lab_pages.tour (one source for titles, paths and groups), in this session's language."""
    by_path = {p.path: p for p in tour.PAGES}
    return {_(group): [st.Page(path, title=_(by_path[path].title), icon=icon,
                               **({"default": True} if by_path[path].url == "" else {"url_path": by_path[path].url}))
                       for path, icon in items] for group, items in tour.NAV}


pg = st.navigation(_nav())


def start_umap_warmup(delay: float = 2.0) -> None:
    """umap-learn spends seconds importing and loading (or compiling) numba kernels on its first
    fit in a process: do that in a daemon thread so the latent map is ready when anyone opens it
    (idempotent; a failed warm-up is retried). It starts ``delay`` s after the call: its
    ``import umap`` holds the GIL for ~3 s, and started at once it delayed the first page after a
    cold start by ~0.7 s (bench/browser_latency.py). A later call with a shorter delay brings a
    waiting warm-up forward."""
    from vae_core.umap_runtime import start_background_warmup

    start_background_warmup(delay=delay)


if pg.url_path == "":  # Home, the first page after a cold start: it draws its text before torch is imported
    first_visit = not state.has_current_model()  # Home is about to load the default model
    if state.upload() is not None:  # a new upload becomes the model Home shows
        from lab_pages.sidebar import adopt_upload

        adopt_upload()
    pg.run()
    from lab_pages.sidebar import model_sidebar

    model_sidebar()
    # after a session's first Home page, wait until the browser has drawn it; any later run sooner
    start_umap_warmup(delay=10.0 if first_visit else 2.0)
else:  # a page may st.stop() (no model, or an AE where a VAE is needed): the picker must be drawn first
    from lab_pages.sidebar import model_sidebar

    model_sidebar()
    start_umap_warmup()
    pg.run()
