"""Latent map: a UMAP of the posterior means mu(x) of the test set, coloured by class.

PCA is drawn at once; UMAP runs in a background thread (vae_core.projection) and a small
fragment polls it once a second, then swaps it in. Every point carries its test-set row id in
``customdata``; a selection (click, box or lasso) is turned into row ids by a callback and kept
in ``st.session_state["latent_map_selected_ids"]``, so it never depends on point indices.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from lab_pages import charts, state
from lab_pages.common import get_dataset, require_dataset, require_model, show_grid
from vae_core import projection as pj
from vae_core.projection import selected_row_ids, shared_projection_cache
from vae_core.umap_runtime import start_background_warmup, warmup_state
from vae_core.data import to_float
from vae_core.inference import encode, reconstruct

ss = st.session_state
SEL = "latent_map_selected_ids"  # list[int] test-set row ids of the current selection
MAX_SHOWN = 32  # images drawn for a selection


@st.cache_data(max_entries=8, show_spinner="Encoding the test set…")
def test_codes(_model, key: str, dataset: str) -> np.ndarray:
    """Posterior means mu(x) of the whole test split: (N_test, z) float32, latent units."""
    mu, _ = encode(_model, get_dataset(dataset).x_test)
    return mu.cpu().numpy()


def map_figure(xy: np.ndarray, ids: np.ndarray, labels: np.ndarray, names: tuple[str, ...], title: str, axes: tuple[str, str],
               equal_axes: bool = False):
    """One WebGL scatter trace per class (class colours); customdata = test-set row id."""
    return charts.class_scatter(xy, ids, labels, names, title=title, axes=axes, row_text="row", equal_axes=equal_axes)


def _on_select(chart_key: str) -> None:
    event = ss.get(chart_key) or {}
    ss[SEL] = selected_row_ids((event.get("selection") or {}).get("points"))


def selectable(fig: go.Figure, key: str) -> None:
    """Draw ``fig``; a selection in it replaces the stored selection of row ids."""
    st.plotly_chart(fig, key=key, on_select=lambda: _on_select(key), selection_mode=("points", "box", "lasso"))


@st.fragment(run_every=1)
def poll(job: pj.ProjectionJob) -> None:
    """Progress of the UMAP job, once a second; a full rerun swaps the map in when it is done."""
    if job.done:
        st.rerun()
    warm = warmup_state()
    st.progress(min(1.0, job.progress), text=f"UMAP: {job.stage}" + ("" if warm == "done" else f" · warm-up: {warm}"))


def main() -> None:
    start_background_warmup()  # idempotent: app.py starts it, this only makes sure
    lm = require_model()
    ds = require_dataset(lm)
    st.title("🗺️ Latent map (UMAP)")
    st.markdown(
        "Each dot is one test image at its posterior mean **μ(x)**, coloured by class. UMAP flattens the "
        f"{lm.config.latent_dim}-D latent space to 2-D while keeping neighbours together. **Click** a point or drag a "
        "**box / lasso** to see those images, their reconstructions and μ.")
    if ss.get("latent_map_sel_model") != lm.key:  # a selection belongs to one model's map
        ss[SEL], ss["latent_map_sel_model"] = [], lm.key

    n_total = int(ds.x_test.shape[0])
    c1, c2, c3 = st.columns(3)
    n_pts = c1.select_slider("Test images", [n for n in (100, 250, 500, 1000, 2000, 5000) if n < n_total] + [n_total],
                             value=n_total, key="latent_map_n")
    n_nb = c2.slider("UMAP neighbours", 5, 50, 15, key="latent_map_neighbors", help="Larger: more global structure.")
    min_d = c3.slider("UMAP min_dist", 0.0, 0.95, 0.1, 0.05, key="latent_map_min_dist", help="Smaller: tighter clumps.")

    mu = test_codes(lm.model, lm.key, lm.dataset_name)  # (N_test, z)
    labels = ds.y_test.numpy()
    ids = pj.subsample_ids(n_total, n_pts)
    request = (lm.key, int(n_pts), int(n_nb), float(min_d))
    job = ss.get("latent_map_job")
    if job is None or ss.get("latent_map_request") != request:
        job = pj.compute_projection_async(mu, ids, "umap", cache=shared_projection_cache(), model_key=lm.key,
                                          n_neighbors=int(n_nb), min_dist=float(min_d))
        ss["latent_map_job"], ss["latent_map_request"] = job, request

    if job.done and job.result is not None:
        proj = job.result
        title = f"UMAP of μ(x), {ids.size} test images ({proj.seconds:.1f} s)"
    else:
        proj = shared_projection_cache().get_or_compute(pj.ProjectionKey.make(lm.key, ids.size, "pca"),
                                                 lambda: pj.compute_projection(mu, ids, "pca"))
        title = f"PCA of μ(x), {ids.size} test images (UMAP on its way)"
        if job.error:
            st.error(f"UMAP failed ({job.error}); showing PCA instead. Try fewer points or other settings.")
        else:
            poll(job)

    axes = ("UMAP 1", "UMAP 2") if proj.method == "umap" else ("PC 1 (latent units)", "PC 2 (latent units)")
    if lm.config.latent_dim == 2:
        left, right = st.columns(2)
        with left:
            selectable(map_figure(proj.xy, proj.ids, labels, ds.class_names, title, axes), "latent_map_chart")
        with right:
            selectable(map_figure(mu[ids], ids, labels, ds.class_names, "Raw latent plane: μ(x)", ("z₁ (latent units)", "z₂ (latent units)"),
                                  equal_axes=True), "latent_map_raw_chart")
    else:
        selectable(map_figure(proj.xy, proj.ids, labels, ds.class_names, title, axes), "latent_map_chart")

    st.subheader("Selected points")
    sel = [i for i in ss.get(SEL, []) if 0 <= i < n_total]
    if not sel:
        st.info("Nothing selected yet: click a point, or pick the box or lasso tool in the chart's toolbar and drag.")
        st.stop()
    shown = sel[:MAX_SHOWN]
    x = to_float(ds.x_test[shown])  # (k, D) in [0, 1]
    cols = st.columns(2)
    with cols[0]:
        show_grid(x, ds.image_shape, ncols=8, caption=f"{len(sel)} selected test images" + (f" (first {MAX_SHOWN})" if len(sel) > MAX_SHOWN else ""))
    with cols[1]:
        show_grid(reconstruct(lm.model, x).cpu(), ds.image_shape, ncols=8, caption="their reconstructions, decoded from μ(x)")
    table = {"row": shown, "class": [ds.class_names[int(labels[i])] for i in shown]}
    table.update({f"μ{j + 1}": mu[shown, j] for j in range(min(mu.shape[1], 16))})
    st.dataframe(table, hide_index=True, height=min(300, 40 + 35 * len(shown)))

    options = [*(str(i) for i in sel), "mean"]
    pick = st.selectbox("Point to explore", options, key="latent_map_send_pick",
                        format_func=lambda o: f"mean μ of all {len(sel)} selected" if o == "mean" else f"row {o}")
    if st.button("Send μ to the latent explorer", key="latent_map_send", type="primary"):
        z = mu[sel].mean(0) if pick == "mean" else mu[int(pick)]
        state.set_explorer_point(z, lm.key)
        st.switch_page("lab_pages/explorer.py")


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
