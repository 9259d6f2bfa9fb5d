"""Latent map: the posterior means mu(x) of the test set on a plane, coloured by class.

A 2-D latent space is drawn as itself (mu_1 against mu_2, over the prior's circles; no UMAP is computed). A larger
one is projected: PCA is drawn at once; UMAP runs in a background thread (vae_core.projection) and a small
fragment polls it once a second, then swaps it in. Every point carries its test-set row id in
``customdata``; a selection (click, box or lasso) is turned into row ids by a callback and kept
in ``st.session_state["latent_map_selected_ids"]``, so it never depends on point indices.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from streamlit.delta_generator import DeltaGenerator

from lab_pages import charts, state
from lab_pages.datasets import get_dataset
from lab_pages.i18n import _, ngettext
from lab_pages.images import show_grid
from lab_pages.model_store import LoadedModel, require_dataset, require_model
from lab_pages.plot import plot
from vae_core import compare as cmp
from vae_core import projection as pj
from vae_core.data import to_float
from vae_core.inference import encode, reconstruct
from vae_core.projection import selected_row_ids, shared_projection_cache
from vae_core.umap_runtime import warmup_state

ss = st.session_state
SEL = "latent_map_selected_ids"  # list[int] test-set row ids of the current selection
MAX_SHOWN = 32  # images drawn for a selection


@st.cache_data(max_entries=8, show_spinner=False)  # main() shows a translated spinner
def test_codes(_model, key: str, dataset: str) -> np.ndarray:
    """Posterior means mu(x) of the whole test split: (N_test, z) float32, latent units."""
    mu, _sigma = encode(_model, get_dataset(dataset).x_test)
    return mu.cpu().numpy()


def map_figure(
    xy: np.ndarray,
    ids: np.ndarray,
    labels: np.ndarray,
    names: tuple[str, ...],
    title: str,
    axes: tuple[str, str],
) -> go.Figure:
    """One WebGL scatter trace per class (class colours); customdata = test-set row id."""
    return charts.class_scatter(xy, ids, labels, names, title=title, axes=axes, row_text=_("row"))


def plane_figure(
    mu: np.ndarray,
    ids: np.ndarray,
    labels: np.ndarray,
    names: tuple[str, ...],
    title: str,
    height: int = 560,
) -> go.Figure:
    """A 2-D latent space as itself: μ(x) (N, 2) of rows ``ids``, μ₁ across and μ₂ up on equal axes, over the prior's
    1σ, 2σ and 3σ circles (this page and AE vs VAE draw a model with d = 2 this way)."""
    return charts.latent_plane(
        mu[ids],
        ids,
        labels,
        names,
        cmp.prior_circles(),
        title=title,
        axes=(_("μ₁, latent dimension 1 (latent units)"), _("μ₂, latent dimension 2 (latent units)")),
        row_text=_("row"),
        circle_name=_("prior {r:g}σ ({mass:.0%} of mass)"),
        height=height,
    )


def _on_select(chart_key: str) -> None:
    event = ss.get(chart_key) or {}
    ss[SEL] = selected_row_ids((event.get("selection") or {}).get("points"))


def selectable(fig: go.Figure, key: str, where=st) -> None:
    """Draw ``fig`` (in the container ``where``); a selection in it replaces the stored selection of row ids."""
    plot(
        where,
        fig,
        key=key,
        name=key.removesuffix("_chart").replace("_", "-"),  # latent-map, latent-map-raw
        model=getattr(state.stored_model(), "label", None),  # the page's model: require_model made it current
        on_select=lambda: _on_select(key),
        selection_mode=("points", "box", "lasso"),
    )


@st.fragment(run_every=1)
def poll(job: pj.ProjectionJob) -> None:
    """Progress of the UMAP job, once a second; a full rerun swaps the map in when it is done."""
    if job.done:
        st.rerun()
    pct = min(1.0, job.progress)  # from 0.1 on: the layout's epochs (vae_core.projection.ProjectionJob)
    st.progress(
        pct,
        text=_("UMAP layout: {percent:.0%}").format(percent=pct)
        if pct >= 0.1
        else _("UMAP: waiting for the warm-up (numba is compiling)")
        if warmup_state() == "running"
        else _("UMAP: computing the embedding of {n} points").format(n=job.n_points),
    )


def projected_map(
    lm: LoadedModel,
    mu: np.ndarray,
    ids: np.ndarray,
    labels: np.ndarray,
    names: tuple[str, ...],
    c2: DeltaGenerator,
    c3: DeltaGenerator,
    n_pts: int,
) -> tuple[pj.Projection, go.Figure]:
    """d > 2: the UMAP of μ(x) for rows ``ids`` (its settings in the columns ``c2``, ``c3``), PCA while it runs.
    Returns (the projection drawn, its figure)."""
    n_nb = c2.slider(
        _("UMAP neighbours"), 5, 50, 15, key="latent_map_neighbors", help=_("Larger: more global structure.")
    )
    min_d = c3.slider(
        _("UMAP min_dist"),
        0.0,
        0.95,
        0.1,
        0.05,
        key="latent_map_min_dist",
        help=_("Smaller: tighter clumps."),
    )
    request = (lm.key, n_pts, int(n_nb), float(min_d))
    job = ss.get("latent_map_job")
    if job is None or ss.get("latent_map_request") != request:
        job = pj.compute_projection_async(
            mu,
            ids,
            "umap",
            cache=shared_projection_cache(),
            model_key=lm.key,
            n_neighbors=int(n_nb),
            min_dist=float(min_d),
        )
        ss["latent_map_job"], ss["latent_map_request"] = job, request

    if job.done and job.result is not None:
        proj = job.result
        title = _("UMAP of μ(x), {n} test images ({seconds:.1f} s)").format(n=ids.size, seconds=proj.seconds)
    else:
        proj = shared_projection_cache().get_or_compute(
            pj.projection_key(lm.key, ids, "pca"), lambda: pj.compute_projection(mu, ids, "pca")
        )
        title = _("PCA of μ(x), {n} test images (UMAP on its way)").format(n=ids.size)
        if job.error:
            st.error(
                _("UMAP failed ({reason}); showing PCA instead. Try fewer points or other settings.").format(
                    reason=job.error
                )
            )
        else:
            poll(job)
    axes = (
        ("UMAP 1", "UMAP 2")
        if proj.method == "umap"
        else (_("PC 1 (latent units)"), _("PC 2 (latent units)"))
    )
    return proj, map_figure(proj.xy, proj.ids, labels, names, title, axes)


def main() -> None:
    lm = require_model()
    ds = require_dataset(lm)
    plane = cmp.shows_latent_plane(lm.config.latent_dim)  # d = 2: the latent space is its own map
    st.title(_("🗺️ Latent map (UMAP)"))
    if plane:
        st.markdown(
            _(
                "Each dot is one test image at its posterior mean **μ(x)**, coloured by class. This model's latent "
                "space has two dimensions, so the map is the latent space itself: μ₁ across, μ₂ up, in latent units, "
                "with the prior N(0, I)'s 1σ, 2σ and 3σ circles for its scale; no UMAP is needed. **Click** a point or "
                "drag a **box / lasso** to see those images, their reconstructions and μ."
            )
        )
    else:
        st.markdown(
            _(
                "Each dot is one test image at its posterior mean **μ(x)**, coloured by class. UMAP flattens the {d}-D "
                "latent space to 2-D while keeping neighbours together. **Click** a point or drag a **box / lasso** to "
                "see those images, their reconstructions and μ."
            ).format(d=lm.config.latent_dim)
        )
    if ss.get("latent_map_sel_model") != lm.key:  # a selection belongs to one model's map
        ss[SEL], ss["latent_map_sel_model"] = [], lm.key

    n_total = int(ds.x_test.shape[0])
    c1, c2, c3 = st.columns(3)
    n_pts = c1.select_slider(
        _("Test images"),
        [n for n in (100, 250, 500, 1000, 2000, 5000) if n < n_total] + [n_total],
        value=n_total,
        key="latent_map_n",
    )
    with st.spinner(_("Encoding the test set…")):
        mu = test_codes(lm.model, lm.key, lm.dataset_name)  # (N_test, z)
    labels = ds.y_test.numpy()
    ids = pj.subsample_ids(n_total, n_pts)
    if plane:
        proj = pj.Projection(ids, mu[ids], "latent", 0.0)  # the codes themselves: nothing to compute
        fig = plane_figure(
            mu,
            ids,
            labels,
            ds.class_names,
            _("μ(x) of {n} test images on the latent plane").format(n=ids.size),
        )
    else:
        proj, fig = projected_map(lm, mu, ids, labels, ds.class_names, c2, c3, int(n_pts))
    mine = state.user_image(ds.image_shape)
    if mine is not None:  # your image: at its μ on the plane; on a projection, placed by its 8 nearest codes
        mine_mu = encode(lm.model, torch.from_numpy(mine.pixels.copy()))[0][0].cpu().numpy()  # (z,)
        mine_xy, near = pj.place_new_point(mine_mu, mu, proj)
        charts.with_marker(
            fig, *(mine_mu if plane else mine_xy), name=_("your image ({origin})").format(origin=mine.origin)
        )
    selectable(fig, "latent_map_chart")
    if mine is not None:
        show_grid(
            to_float(ds.x_test[near]),
            ds.image_shape,
            ncols=8,
            px=56,
            caption=_(
                "★ your image ({origin}) lands among these 8 test images, the nearest to its μ in the latent "
                "space"
            ).format(origin=mine.origin),
        )

    st.subheader(_("Selected points"))
    sel = [i for i in ss.get(SEL, []) if 0 <= i < n_total]
    if not sel:
        st.info(
            _(
                "Nothing selected yet: click a point, or pick the box or lasso tool in the chart's toolbar and drag."
            )
        )
        st.stop()
    shown = sel[:MAX_SHOWN]
    x = to_float(ds.x_test[shown])  # (k, D) in [0, 1]
    cols = st.columns(2)
    with cols[0]:
        show_grid(
            x,
            ds.image_shape,
            ncols=8,
            caption=ngettext("{n} selected test image", "{n} selected test images", len(sel)).format(
                n=len(sel)
            )
            + (_(" (first {n})").format(n=MAX_SHOWN) if len(sel) > MAX_SHOWN else ""),
        )
    with cols[1]:
        show_grid(
            reconstruct(lm.model, x).cpu(),
            ds.image_shape,
            ncols=8,
            caption=_("their reconstructions, decoded from μ(x)"),
        )
    table = {_("row"): shown, _("class"): [ds.class_names[int(labels[i])] for i in shown]}
    table.update({f"μ{j + 1}": mu[shown, j] for j in range(min(mu.shape[1], 16))})
    st.dataframe(table, hide_index=True, height=min(300, 40 + 35 * len(shown)))

    options = [*(str(i) for i in sel), "mean"]
    shown_as = {
        "mean": ngettext("mean μ of the {n} selected", "mean μ of all {n} selected", len(sel)).format(
            n=len(sel)
        ),
        **{o: _("row {row}").format(row=o) for o in options[:-1]},
    }  # translated now: format_func runs later too
    pick = st.selectbox(_("Point to explore"), options, key="latent_map_send_pick", format_func=shown_as.get)
    if st.button(_("Send μ to the latent explorer"), key="latent_map_send", type="primary"):
        z = mu[sel].mean(0) if pick == "mean" else mu[int(pick)]
        state.set_explorer_point(z, lm.key)
        st.switch_page("lab_pages/explorer.py")


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
