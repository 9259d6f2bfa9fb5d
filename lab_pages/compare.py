"""AE vs VAE, one architecture, seed, data and batch order: only the objective differs. The pair is the shipped one that
shows the difference best (vae_core.compare.pair_choices), one picked by hand, or the pair trained live on its own page
(``st.session_state["compare_live_pair"]``). The sections follow the workshop script (lab_pages/tour.py, minutes
16–19): prior draws, reconstruction errors, the rest, and the aggregate posterior against the prior at the bottom."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st
import torch

from lab_pages import charts, state
from lab_pages.datasets import available_datasets, get_dataset
from lab_pages.i18n import N_, _, error_text
from lab_pages.images import show_grid
from lab_pages.latent_map import plane_figure
from lab_pages.model_store import LoadedModel, list_shipped, load_shipped, require_model
from lab_pages.plot import plot
from vae_core import compare as cmp
from vae_core import linear_ae as lae
from vae_core import projection as pj
from vae_core.data import Dataset, to_float
from vae_core.inference import encode, interpolation_strip, reconstruct, sample_prior

ss = st.session_state
UMAP_PARAMS = {"n_neighbors": 15, "min_dist": 0.1}  # the Latent map page's defaults: its UMAPs are reused
LIVE = N_("live pair (trained here)")  # the selectbox's value (tests read it); shown translated
PICKED = "compare_pair_picked"  # the pair picked by hand (or LIVE once a live pair is shown): it stays shown


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


def _remember_pick() -> None:
    """The selectbox's callback: a pair picked by hand stays shown (kept apart from the widget's own state, which
    Streamlit drops while another page is open)."""
    ss[PICKED] = ss["compare_pair"]


def choose_pair(lm: LoadedModel) -> tuple[LoadedModel, LoadedModel]:
    """The pair selectbox, and the (VAE, AE) it shows: a pair trained live since the last run, else the pair picked
    by hand, else the shipped pair that shows the difference best (:func:`vae_core.compare.pair_choices`); a caption
    says why that pair is shown."""
    choices = cmp.pair_choices(list_shipped(), available_datasets(), lm.dataset_name, lm.config.latent_dim)
    live = ss.get("compare_live_pair")
    options = choices.names + ([LIVE] if live is not None else [])
    if not options:
        st.warning(
            _("No AE/VAE pair is available here: train a fresh pair on the Train an AE/VAE pair page.")
        )
        st.stop()
    if live is not None and ss.get("compare_live_seen") is not live:  # a pair trained since the last run
        ss[PICKED], ss["compare_live_seen"] = LIVE, live
    want = ss.get(PICKED) if ss.get(PICKED) in options else choices.best or options[0]
    if ss.get("compare_pair") != want:
        ss["compare_pair"] = want
    choice = st.selectbox(
        _("Pair"),
        options,
        key="compare_pair",
        format_func=lambda o: _(o) if o == LIVE else o,
        on_change=_remember_pick,
        help=_("Shipped pairs, and a pair trained live in this session."),
    )
    if choice == LIVE:
        st.caption(_("Showing the pair trained on the Train an AE/VAE pair page."))
        return live
    if choice == choices.best and ss.get(PICKED) != choice:
        why = _(
            "Showing {pair}: of the shipped pairs on {dataset}, it has the largest gap between the VAE's and the AE's "
            "test reconstruction error ({gap:.2f} nats/image), so both sides of the trade show most clearly: the AE "
            "reconstructs better, the VAE samples better."
        ).format(pair=choice, dataset=lm.dataset_name, gap=choices.gap or 0.0)
        if choices.match and choices.match != choice:
            why += " " + _("The current model's own pair, {pair}, is in the list.").format(pair=choices.match)
        st.caption(why)
    vae_name, ae_name = choice.split(" / ")
    return load_shipped(vae_name), load_shipped(ae_name)


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
    vae_lm, ae_lm = choose_pair(lm)
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
    plane = cmp.shows_latent_plane(z)  # d = 2: each side's map is its latent plane, drawn with the prior
    both = [("VAE", vae_lm), ("AE", ae_lm)]
    with st.spinner(_("Encoding and evaluating the test set…")):
        mv = stats(vae_lm, vae_lm.key, vae_lm.dataset_name)
        ma = stats(ae_lm, ae_lm.key, ae_lm.dataset_name)
    pv, pa = mv.prior, ma.prior  # how each one's codes match the prior
    mus = {"VAE": mv.mu, "AE": ma.mu}
    mine = state.user_image(ds.image_shape)  # the Your image page's image, marked on both maps
    x_mine = None if mine is None else torch.from_numpy(mine.pixels.copy())

    # the workshop's order (lab_pages/tour.py, minutes 16–19): prior draws, reconstruction errors, the rest, and
    # the aggregate posterior against the prior at the bottom
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

    st.subheader(_("Reconstruction error on the test set"))
    draw_metrics(both, (mv, ma))

    st.subheader(_("Interpolation between the same two test images"))
    draw_interpolation(both, ds, labels, names)

    if not plane:
        draw_maps(both, mus, labels, names, x_mine, ds.image_shape)
    if PCA_DATASET in available_datasets():
        draw_linear_ae()

    st.subheader(_("Aggregate posterior against the prior"))
    st.markdown(
        _(
            "Moment-matched KL(q(z) ‖ N(0, I)): **VAE {vae:.2f}** vs **AE {ae:.2f} nats** "
            "(0 when the codes have the prior's mean and spread)."
        ).format(vae=pv.moment_kl, ae=pa.moment_kl)
    )
    if plane:
        draw_planes(both, mus, labels, names, x_mine, ds.image_shape)
    else:
        draw_density_rows(both, mus, (mv, ma))


def draw_metrics(both: list[tuple[str, LoadedModel]], sides: tuple[cmp.PairSide, cmp.PairSide]) -> None:
    """Each model's test reconstruction error, KL (— for the AE) and active units, side by side."""
    for col, (kind, m), met in zip(st.columns(2), both, sides):
        with col:
            st.markdown(f"**{kind}: {m.label}**")
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


def draw_interpolation(
    both: list[tuple[str, LoadedModel]], ds: Dataset, labels: np.ndarray, names: Sequence[str]
) -> None:
    """The same two test images (two classes by default), decoded along the line between their codes by each."""
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


def draw_your_image(
    both: list[tuple[str, LoadedModel]], x_mine: torch.Tensor, image_shape: tuple[int, ...]
) -> None:
    """Your image beside each model's reconstruction of it."""
    recons = [reconstruct(m.model, x_mine).cpu() for _kind, m in both]
    show_grid(
        torch.cat([to_float(x_mine)[None], *recons]),
        image_shape,
        ncols=3,
        px=84,
        caption=_("Your image, then the VAE's and the AE's reconstruction"),
    )


def draw_maps(
    both: list[tuple[str, LoadedModel]],
    mus: dict[str, np.ndarray],
    labels: np.ndarray,
    names: Sequence[str],
    x_mine: torch.Tensor | None,
    image_shape: tuple[int, ...],
) -> None:
    """d > 2: a UMAP of each model's μ(x) (PCA while it runs), your image placed by its 8 nearest codes."""
    st.subheader(
        _("Latent maps of μ(x) (UMAP, {n} neighbours, min_dist {d})").format(
            n=UMAP_PARAMS["n_neighbors"], d=UMAP_PARAMS["min_dist"]
        )
    )
    waiting = []  # the UMAP jobs still running
    for col, (kind, m) in zip(st.columns(2), both):
        mu = mus[kind]
        jobs = ss.setdefault("compare_umap_jobs", {})
        job = pj.projection_job(jobs, m.key, mu, "umap", **UMAP_PARAMS)  # one fit per model
        xy, done = cmp.map_xy(mu, job)
        if done:
            title, axes = _("{kind}: UMAP").format(kind=kind), ("UMAP 1", "UMAP 2")
        else:
            title = _("{kind}: PCA (UMAP on its way)").format(kind=kind)
            axes = (_("PC 1 (latent units)"), _("PC 2 (latent units)"))
        if not job.done:
            waiting.append(job)
        fig = charts.pair_codes(
            xy, np.arange(len(mu)), labels, names, title=title, axes=axes, row_text=_("row")
        )
        if x_mine is not None:  # placed by its 8 nearest codes
            m_mu = encode(m.model, x_mine)[0][0].cpu().numpy()  # (z,)
            shown = pj.Projection(np.arange(len(mu)), xy, "map", 0.0)
            charts.with_marker(fig, *pj.place_new_point(m_mu, mu, shown)[0], name=_("your image"))
        plot(col, fig, key=f"compare_map_{kind}", name=f"latent-map-{kind}", model=m.label)
    if x_mine is not None:
        draw_your_image(both, x_mine, image_shape)
    if waiting:
        poll(waiting)


def draw_planes(
    both: list[tuple[str, LoadedModel]],
    mus: dict[str, np.ndarray],
    labels: np.ndarray,
    names: Sequence[str],
    x_mine: torch.Tensor | None,
    image_shape: tuple[int, ...],
) -> None:
    """d = 2: each model's μ(x) on its latent plane over the prior's circles (the Latent map's own figure), your
    image at its μ."""
    st.caption(
        _(
            "Each model's codes on its own latent plane, over the prior's 1σ, 2σ and 3σ circles: the VAE's fill the "
            "prior's disc, the AE's sit wherever its training put them."
        )
    )
    for col, (kind, m) in zip(st.columns(2), both):
        mu = mus[kind]
        fig = plane_figure(
            mu,
            np.arange(len(mu)),
            labels,
            names,
            _("{kind}: raw latent plane").format(kind=kind),
            height=charts.PAIR_HEIGHT,
        )
        if x_mine is not None:
            charts.with_marker(fig, *encode(m.model, x_mine)[0][0].cpu().numpy(), name=_("your image"))
        plot(col, fig, key=f"compare_map_{kind}", name=f"latent-map-{kind}", model=m.label)
    if x_mine is not None:
        draw_your_image(both, x_mine, image_shape)


def draw_density_rows(
    both: list[tuple[str, LoadedModel]], mus: dict[str, np.ndarray], sides: tuple[cmp.PairSide, cmp.PairSide]
) -> None:
    """d > 2: the spread of each μ_j over the test set against N(0, 1), one row per dimension, for each model."""
    st.caption(
        _(
            "Each row is the spread of one μ_j over the test set; the top row is the prior N(0, 1) itself. A "
            "dimension marked *inactive* is one whose μ_j hardly varies over the images (Var_x[μ_j] ≤ 0.01, the "
            "definition of Burda et al. 2016). That alone does not mean μ_j ≈ 0, σ_j ≈ 1 or a KL of 0, so each "
            "VAE row also shows its average KL to N(0, 1), a separate fact. An AE has no σ: its rows show the "
            "codes themselves."
        )
    )
    for col, (kind, _model), side in zip(st.columns(2), both, sides):
        row_names = [
            (f"z{j + 1}" if on else _("z{j} (inactive)").format(j=j + 1))
            + ("" if side.kl_per_dim is None else " · " + _("KL {kl:.2f} nats").format(kl=side.kl_per_dim[j]))
            for j, on in enumerate(side.prior.active)
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


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
