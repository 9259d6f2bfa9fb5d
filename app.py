"""VAE Workshop Lab: the router. Run with ``streamlit run app.py``.

Sets up the page, the navigation over lab_pages/, and the sidebar that shows and picks the
current model (a shipped checkpoint, a model trained in this session, or an upload).
"""

import os

# Before torch loads OpenMP: threads that wait sleep instead of spinning. A workshop server runs
# several trainers and page reruns at once; with spinning OpenMP threads on an oversubscribed
# 2-core machine a training step took 542 ms instead of 49 ms (measured, see the issue notes).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402

from lab_pages.sidebar import model_sidebar  # noqa: E402
from vae_core.projection import start_background_warmup  # noqa: E402

st.set_page_config(page_title="VAE Workshop Lab", page_icon="🧪", layout="wide")

PAGES = {
    "Start": [st.Page("lab_pages/home.py", title="Home", icon="🏠", default=True)],
    "Ideas": [st.Page("lab_pages/theory.py", title="Theory: entropy to ELBO", icon="📐", url_path="theory")],
    "The model": [
        st.Page("lab_pages/train.py", title="Train", icon="🏋️", url_path="train"),
        st.Page("lab_pages/elbo.py", title="ELBO, term by term", icon="🧮", url_path="elbo"),
        st.Page("lab_pages/explorer.py", title="Latent explorer", icon="🎛️", url_path="explorer"),
        st.Page("lab_pages/latent_map.py", title="Latent map (UMAP)", icon="🗺️", url_path="latent-map"),
        st.Page("lab_pages/compare.py", title="AE vs VAE", icon="⚖️", url_path="compare"),
    ],
}

# umap-learn spends ~40 s compiling numba kernels on its first fit in a process: start that now,
# in a daemon thread, so the latent map is ready by the time anyone opens it (idempotent).
start_background_warmup()

pg = st.navigation(PAGES)
model_sidebar()
pg.run()
