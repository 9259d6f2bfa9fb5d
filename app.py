"""VAE Workshop Lab: the router. Run with ``streamlit run app.py``.

Sets up the page, the navigation over lab_pages/, and the sidebar that shows and picks the
current model (a shipped checkpoint, a model trained in this session, or an upload).

Streamlit runs this script only when a browser connects, so the first run after the server
starts pays for importing torch and loading the default model. Training never runs here: each
training job is a worker process of its own, forked from the lab's fork server (vae_core.forkserver),
which this script starts on its first run so that the first Start finds torch already imported. On Home, nothing
imports torch before the page's text is drawn: the page loads the model last, and the sidebar
(which needs it) comes after the page. Other pages get the sidebar first, since they may stop.

UMAP's numba warm-up is not started here: shipped models bring their maps (checkpoints/embeddings),
and at launch the warm-up's ``import umap`` held the GIL for ~3 s while the first visitors' pages
ran. A session's own model starts it (lab_pages.state.add_session_model).

The URL carries the view (lab_pages.links: the model, the language, each page's controls) and presenter mode
(lab_pages.presenter: ``?present=1&step=N``), read before the page and written back around it.
"""

import streamlit as st

from lab_pages import links, presenter, state, tour  # import no torch
from lab_pages.i18n import _
from vae_core.forkserver import default_pool, server_openmp_env  # import no torch

server_openmp_env()  # before any page imports torch

# ?present=1 (presenter mode): the sidebar starts collapsed, out of the projector's way
present = presenter.from_url()
st.set_page_config(
    page_title="VAE Workshop Lab",
    page_icon="🧪",
    layout="wide",
    initial_sidebar_state="collapsed" if present else "auto",
)


def _nav() -> dict[str, list]:
    """st.navigation's menu from lab_pages.tour (one source for titles, paths and groups), in this session's language."""
    by_path = {p.path: p for p in tour.PAGES}
    return {
        _(group): [
            st.Page(
                path,
                title=_(by_path[path].title),
                icon=icon,
                **({"default": True} if by_path[path].url == "" else {"url_path": by_path[path].url}),
            )
            for path, icon in items
        ]
        for group, items in tour.NAV
    }


pg = st.navigation(_nav())
# lab_pages.links: the URL's model and controls where the URL changed, then the session's state into the URL
# (before the page, which may st.stop(), and again after it, for what it set)
links.apply_url(pg.url_path)
links.write_url(pg.url_path)
presenter.write_url()
if present:
    presenter.bar()
links.show_notes()

if pg.url_path == "":  # Home, the first page after a cold start: it draws its text before torch is imported
    if state.upload() is not None:  # a new upload becomes the model Home shows
        from lab_pages.sidebar import adopt_upload

        adopt_upload()
    pg.run()
    from lab_pages.datasets import preload_dataset
    from lab_pages.sidebar import model_sidebar

    model_sidebar()
    if (
        lm := state.stored_model()
    ) is not None:  # its data, for the next page, while the reader reads this one
        preload_dataset(lm.dataset_name)
else:  # a page may st.stop() (no model, or an AE where a VAE is needed): the picker must be drawn first
    from lab_pages.sidebar import model_sidebar

    model_sidebar()
    pg.run()
links.write_url(pg.url_path)
# After the page is drawn, so that its import of torch does not compete with the first visitor's page:
# a no-op while the fork server runs (a page that stopped early leaves it to the next run, or to Start).
default_pool().start()
