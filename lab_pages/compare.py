"""AE vs VAE, one architecture, seed, data and batch order: only the objective differs. The pair is a shipped one (matching
the current model when one does) or the pair trained live on its own page (``st.session_state["compare_live_pair"]``)."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from lab_pages import charts, state
from lab_pages.datasets import available_datasets, get_dataset
from lab_pages.i18n import N_, _, error_text
from lab_pages.images import show_grid
from lab_pages.model_store import list_shipped, load_shipped, require_model
from lab_pages.plot import plot
from vae_core import compare as cmp
from vae_core import linear_ae as lae
from vae_core import projection as pj
from vae_core.data import to_float
from vae_core.inference import encode, interpolation_strip, reconstruct, sample_prior

ss = st.session_state
UMAP_PARAMS = {"n_neighbors": 15, "min_dist": 0.1}  # the Latent map page's defaults: its UMAPs are reused
LIVE = N_("live pair (trained here)")  # the selectbox's value (tests read it); shown translated


PCA_DATASET = "digits"  # 8x8 digits: the linear AE trains in under a second
PCA_ANGLE_LIMIT = 5.0  # degrees: the most a principal angle may be once the AE has found PCA's subspace


@st.cache_data(max_entries=8, show_spinner=False)
def linear_vs_pca(k: int) -> lae.LinearAEvsPCA:
    """A linear AE with k latent dims against PCA's top-k subspace on the digits (cached by k, shared read-only)."""
    ds = get_dataset(PCA_DATASET)
    return lae.linear_ae_vs_pca(ds.x_train, ds.x_test, k=k, seed=0)


def draw_linear_ae() -> None:
    """An AE with no nonlinearity, trained with MSE, finds PCA's subspace: its principal angles and errors."""
    st.subheader(_("An AE with no nonlinearity is PCA"))
    st.markdown(
        _(
            "Take away the nonlinearities: a linear encoder z = W_e x + b_e, a linear decoder x′ = W_d z + c, and "
            "the mean squared error as the loss. The best such AE spans the same k-dimensional subspace as the top k "
            "principal components, because PCA's projection is the least-squares best of all rank-k maps. The AE's "
            "decoder columns need not be the principal axes themselves (any basis of the subspace does as well), so "
            "we compare subspaces by their **principal angles**: all 0° when the two coincide. On the 8×8 digits:"
        )
    )
    k = st.slider(_("k, latent dimensions = principal components kept"), 1, 8, 4, key="compare_pca_k")
    with st.spinner(_("Training the linear AE (L-BFGS)…")):
        r = linear_vs_pca(int(k))
    left, right = st.columns([2, 3])
    plot(
        left,
        charts.principal_angles(
            r.angles_deg,
            PCA_ANGLE_LIMIT,
            limit_text=_("{limit:g}°").format(limit=PCA_ANGLE_LIMIT),
            title=_("Principal angles, AE against PCA"),
            x_title=_("angle (largest first)"),
            y_title=_("angle (degrees)"),
        ),
        key="compare_pca_angles",
        name="linear-ae-vs-pca-angles",
    )
    m = right.columns(3)
    m[0].metric(_("largest angle (degrees)"), f"{r.max_angle_deg:.2f}")
    m[1].metric(
        _("MSE, linear AE"),
        f"{r.ae_mse:.5f}",
        help=_("per pixel, training images; held-out: {value:.5f}").format(value=r.ae_test_mse),
    )
    m[2].metric(
        _("MSE, PCA"),
        f"{r.pca_mse:.5f}",
        help=_("per pixel, training images; held-out: {value:.5f}").format(value=r.pca_test_mse),
    )
    right.caption(
        _(
            "MSE in (pixel units)², pixels in [0, 1]. The AE's training MSE is {excess:.2%} above PCA's, the least any "
            "rank-{k} map reaches; the {k} components keep {explained:.0%} of the pixel variance. Trained in {seconds:.2f} s."
        ).format(excess=r.mse_excess, k=r.k, explained=r.explained_total, seconds=r.seconds)
    )
    show_grid(
        np.concatenate([r.examples, r.ae_examples, r.pca_examples]),
        get_dataset(PCA_DATASET).image_shape,
        ncols=len(r.examples),
        px=56,
        caption=_(
            "Held-out digits (top), the linear AE's reconstructions, PCA's (bottom): nearly the same images."
        ),
        container=right,
    )


@st.cache_data(max_entries=16, show_spinner=False)
def stats(_lm, key: str, dataset: str) -> cmp.PairSide:
    """Test figures (nats/image), the prior match and μ(x) of the test split of one model (a shipped one's metrics are its own)."""
    return cmp.pair_side(_lm.model, get_dataset(dataset).x_test, _lm.metadata.get("test_metrics"))


def short_vector(v, z: int) -> str:
    """The first four entries of a vector, e.g. "(0.1, -0.3, 1.2, 0.0, …)"."""
    return "(" + ", ".join(f"{s:.1f}" for s in v[:4]) + (", …)" if z > 4 else ")")


@st.fragment(run_every=1)
def poll(jobs: list[pj.ProjectionJob]) -> None:
    """Progress of the UMAP jobs, once a second; a full rerun swaps the maps in when all are done."""
    if all(j.done for j in jobs):
        st.rerun()
    st.progress(
        min(1.0, float(np.mean([j.progress for j in jobs]))),
        text=_("UMAP: {stage}").format(stage=error_text(jobs[-1].stage)),
    )


def main() -> None:
    lm = require_model()
    st.title(_("⚖️ AE vs VAE"))
    st.markdown(
        _(
            "An autoencoder and a VAE with the **same architecture, seed, data and batch order**: only the "
            "objective differs (the VAE adds the KL to the prior N(0, I)). That one term decides whether the "
            "latent space can be *sampled*."
        )
    )
    pairs, match = cmp.pair_choices(
        list_shipped(), available_datasets(), lm.dataset_name, lm.config.latent_dim
    )
    live = ss.get("compare_live_pair")
    options = pairs + ([LIVE] if live is not None else [])
    if not options:
        st.warning(
            _("No AE/VAE pair is available here: train a fresh pair on the Train an AE/VAE pair page.")
        )
        st.stop()
    fresh = live is not None and ss.get("compare_live_seen") is not live  # a pair trained since the last run
    if fresh or ss.get("compare_pair_for") != lm.key or ss.get("compare_pair") not in options:
        # show the fresh pair, else follow the model
        ss["compare_pair"] = LIVE if fresh else match or options[0]
        ss["compare_pair_for"] = lm.key
        ss["compare_live_seen"] = live
    choice = st.selectbox(
        _("Pair"),
        options,
        key="compare_pair",
        format_func=lambda o: _(o) if o == LIVE else o,
        help=_("Shipped pairs, and a pair trained live in this session."),
    )
    if choice == LIVE:
        vae_lm, ae_lm = live
    else:
        vae_name, ae_name = choice.split(" / ")
        vae_lm, ae_lm = load_shipped(vae_name), load_shipped(ae_name)
    if not match and choice != LIVE:
        st.caption(
            _("No shipped pair matches the current model ({dataset}, d = {d}); showing {pair}.").format(
                dataset=lm.dataset_name, d=lm.config.latent_dim, pair=choice
            )
        )
    diffs = cmp.recipe_differences(vae_lm.metadata, ae_lm.metadata)
    if diffs:
        st.warning(_("These two differ in more than the objective: {diffs}").format(diffs="; ".join(diffs)))
    else:
        tc = vae_lm.metadata.get("train_config") or {}
        st.caption(
            _(
                "Fair pair: {arch} on {dataset}, seed {seed}, batch {batch}, {epochs:.0f} epochs, same batch order."
            ).format(
                arch=vae_lm.config.describe().replace("VAE ", ""),
                dataset=vae_lm.dataset_name,
                seed=tc.get("seed"),
                batch=tc.get("batch_size"),
                epochs=vae_lm.epochs,
            )
        )
    ds = get_dataset(vae_lm.dataset_name)
    labels = ds.y_test.numpy()
    names = ds.class_names
    z = vae_lm.config.latent_dim
    both = [("VAE", vae_lm), ("AE", ae_lm)]
    plane = (_("z₁ (latent units)"), _("z₂ (latent units)"))
    row = _("row")
    with st.spinner(_("Encoding and evaluating the test set…")):
        mv = stats(vae_lm, vae_lm.key, vae_lm.dataset_name)
        ma = stats(ae_lm, ae_lm.key, ae_lm.dataset_name)
    pv, pa = mv.prior, ma.prior  # how each one's codes match the prior
    mus = {"VAE": mv.mu, "AE": ma.mu}
    for col, (kind, m), met in zip(st.columns(2), both, (mv, ma)):
        with col:
            st.subheader(f"{kind}: {m.label}")
            a, b, c = st.columns(3)
            a.metric(
                _("Test recon. error"),
                f"{met.recon:.2f}",
                help=_("−E_q log p(x|z), nats/image on the test set"),
            )
            b.metric(
                _("KL to the prior"),
                f"{met.kl:.2f}" if met.is_vae else "—",
                help=_("nats/image")
                if met.is_vae
                else _("An AE has no q(z|x) and no prior, so it has no KL."),
            )
            c.metric(
                _("Active units"),
                f"{met.active_units} / {met.latent_dim}",
                help=_("dims with Var_x[μ_j] > 0.01"),
            )
            st.caption(
                _("Log-likelihoods under {likelihood}, nats per image.").format(likelihood=m.likelihood)
                + (
                    ""
                    if met.is_vae
                    else " "
                    + _(
                        "KL —: an AE maps each image to one point; there is no distribution to compare with a prior."
                    )
                )
            )

    st.subheader(
        _("Latent maps of μ(x)")
        if z == 2
        else _("Latent maps of μ(x) (UMAP, {n} neighbours, min_dist {d})").format(
            n=UMAP_PARAMS["n_neighbors"], d=UMAP_PARAMS["min_dist"]
        )
    )
    waiting = []  # the UMAP jobs still running
    mine = state.user_image(ds.image_shape)  # the Your image page's image, marked on both maps
    x_mine = None if mine is None else torch.from_numpy(mine.pixels.copy())
    for col, (kind, m) in zip(st.columns(2), both):
        mu = mus[kind]
        if z == 2:
            xy, title, axes = mu, _("{kind}: raw latent plane").format(kind=kind), plane
        else:
            jobs = ss.setdefault("compare_umap_jobs", {})
            job = pj.projection_job(jobs, m.key, mu, "umap", **UMAP_PARAMS)  # one fit per model
            xy, done = cmp.map_xy(mu, job)
            if done:
                title = _("{kind}: UMAP").format(kind=kind)
                axes = ("UMAP 1", "UMAP 2")
            else:
                title = _("{kind}: PCA (UMAP on its way)").format(kind=kind)
                axes = (_("PC 1 (latent units)"), _("PC 2 (latent units)"))
            if not job.done:
                waiting.append(job)
        fig = charts.pair_codes(xy, np.arange(len(mu)), labels, names, title=title, axes=axes, row_text=row)
        if x_mine is not None:  # its μ on the raw plane; on a 2-D map, placed by its 8 nearest codes
            m_mu = encode(m.model, x_mine)[0][0].cpu().numpy()  # (z,)
            if z == 2:
                at = m_mu
            else:
                shown = pj.Projection(np.arange(len(mu)), xy, "map", 0.0)
                at = pj.place_new_point(m_mu, mu, shown)[0]
            charts.with_marker(fig, *at, name=_("your image"))
        plot(col, fig, key=f"compare_map_{kind}", name=f"latent-map-{kind}", model=m.label)
    if x_mine is not None:
        recons = [reconstruct(m.model, x_mine).cpu() for _kind, m in both]
        show_grid(
            torch.cat([to_float(x_mine)[None], *recons]),
            ds.image_shape,
            ncols=3,
            px=84,
            caption=_("Your image, then the VAE's and the AE's reconstruction"),
        )
    if waiting:
        poll(waiting)

    st.subheader(_("16 draws from the prior N(0, I), decoded by each"))
    seed = int(
        st.number_input(
            _("Draw seed"), 0, 10_000, 0, key="compare_seed", help=_("The same 16 z go to both decoders.")
        )
    )
    for col, (kind, m) in zip(st.columns(2), both):
        show_grid(
            sample_prior(m.model, 16, seed=seed).cpu(), ds.image_shape, ncols=8, caption=kind, container=col
        )
    st.info(
        _(
            "Why the AE's samples are poor: nothing in its loss pulls its codes towards N(0, I), so prior draws land where "
            "its decoder saw no codes. The AE's codes have mean {ae_mean} and std {ae_std}, a Gaussian fit {ae_kl:.1f} nats "
            "from the prior; the VAE's have mean {vae_mean} and std {vae_std}: {vae_kl:.2f} nats."
        ).format(
            ae_mean=short_vector(pa.mean, z),
            ae_std=short_vector(pa.std, z),
            ae_kl=pa.moment_kl,
            vae_mean=short_vector(pv.mean, z),
            vae_std=short_vector(pv.std, z),
            vae_kl=pv.moment_kl,
        )
    )

    st.subheader(_("Interpolation between the same two test images"))
    i0, j0 = cmp.interpolation_pair(labels)  # two test images of different classes
    c1, c2 = st.columns(2)
    ia = int(c1.number_input(_("First test image"), 0, len(labels) - 1, i0, key="compare_interp_a"))
    ib = int(c2.number_input(_("Second test image"), 0, len(labels) - 1, j0, key="compare_interp_b"))
    for kind, m in both:
        show_grid(
            interpolation_strip(m.model, ds.x_test[ia], ds.x_test[ib], steps=10),
            ds.image_shape,
            ncols=12,
            caption=_(
                "{kind}: image {a} ({a_name}), 10 decoded steps from μ to μ, image {b} ({b_name})"
            ).format(kind=kind, a=ia, a_name=names[int(labels[ia])], b=ib, b_name=names[int(labels[ib])]),
        )

    st.subheader(_("Aggregate posterior against the prior"))
    st.markdown(
        _(
            "Moment-matched KL(q(z) ‖ N(0, I)): **VAE {vae:.2f}** vs **AE {ae:.2f} nats** "
            "(0 when the codes have the prior's mean and spread)."
        ).format(vae=pv.moment_kl, ae=pa.moment_kl)
    )
    if z > 2:
        st.caption(
            _(
                "Each row is the spread of one μ_j over the test set; the top row is the prior N(0, 1) itself. A "
                "dimension marked *inactive* is one whose μ_j hardly varies over the images (Var_x[μ_j] ≤ 0.01, the "
                "definition of Burda et al. 2016). That alone does not mean μ_j ≈ 0, σ_j ≈ 1 or a KL of 0, so each "
                "VAE row also shows its average KL to N(0, 1), a separate fact. An AE has no σ: its rows show the "
                "codes themselves."
            )
        )
    for col, (kind, _model), match_ in zip(st.columns(2), both, (pv, pa)):
        if z == 2:
            fig = charts.pair_codes(
                mus[kind],
                np.arange(len(mus[kind])),
                labels,
                names,
                axes=plane,
                row_text=row,
                title=_("{kind}: μ(x) over the prior's contours").format(kind=kind),
                circles=cmp.prior_circles(),
                circle_name=_("prior {r:g}σ ({mass:.0%} of mass)"),
            )
        else:
            side = mv if kind == "VAE" else ma
            row_names = [
                (f"z{j + 1}" if on else _("z{j} (inactive)").format(j=j + 1))
                + (
                    ""
                    if side.kl_per_dim is None
                    else " · " + _("KL {kl:.2f} nats").format(kl=side.kl_per_dim[j])
                )
                for j, on in enumerate(match_.active)
            ]
            fig = charts.mu_density_rows(
                *cmp.density_rows(mus[kind]),
                row_names,
                prior_label=_("prior N(0, 1)"),
                title=_("{kind}: μ_j against N(0, 1)").format(kind=kind),
                x_title=_("μ_j (latent units)"),
                colorbar_title=_("density (per unit)"),
                hover_text=_("density"),
            )
        plot(col, fig, key=f"compare_prior_{kind}", name=f"mu-vs-prior-{kind}", model=_model.label)

    if PCA_DATASET in available_datasets():
        draw_linear_ae()


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
