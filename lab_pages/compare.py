"""AE vs VAE: one architecture, seed, dataset and batch order; only the objective differs.

The pair is a shipped one (matching the current model's dataset and latent size when there is
one) or a pair trained live in a background thread (vae_core.compare.PairTrainer), kept in
``st.session_state["compare_live_pair"]``. All numbers come from vae_core; this page draws.
"""

from __future__ import annotations

import uuid

import numpy as np
import streamlit as st

from lab_pages import charts, state
from lab_pages.common import LoadedModel, available_datasets, get_dataset, list_shipped, load_shipped, require_model, show_grid
from lab_pages.slots import session_handle
from vae_core import compare as cmp
from vae_core import projection as pj
from vae_core.inference import encode, interpolate, sample_prior
from vae_core.data import to_float
from vae_core.evaluate import DatasetMetrics, dataset_metrics
from vae_core.pair import PairTrainer, live_pair_configs
from vae_core.registry import CapacityError

ss = st.session_state
UMAP_PARAMS = {"n_neighbors": 15, "min_dist": 0.1}  # the Latent map page's defaults: its UMAPs are reused
LIVE = "live pair (trained here)"


@st.cache_data(max_entries=16, show_spinner="Encoding the test set…")
def codes(_model, key: str, dataset: str) -> np.ndarray:
    """mu(x) of the whole test split: (N_test, z) float32, latent units."""
    return encode(_model, get_dataset(dataset).x_test)[0].cpu().numpy()


@st.cache_data(max_entries=16, show_spinner="Evaluating on the test set…")
def stats(_model, key: str, dataset: str) -> tuple[DatasetMetrics, cmp.PriorMatch]:
    """Test metrics (nats/image) and the prior match of one model."""
    x = get_dataset(dataset).x_test
    return dataset_metrics(_model, x), cmp.prior_match(_model, x)


def scatter(xy, ids, labels, names, title, axes, circles: bool = False):
    """Codes as one trace per class; with ``circles``, the prior's 1-2-3 σ circles, on equal axes."""
    rings = [(f"prior {r:g}σ ({mass:.0%} of mass)", xs, ys) for r, mass, xs, ys in cmp.prior_circles()] if circles else []
    return charts.class_scatter(xy, ids, labels, names, title=title, axes=axes, row_text="row", height=430, overlays=rings,
                                equal_axes=circles)


def histograms(mu: np.ndarray, active: np.ndarray, title: str):
    """Per-dimension density of μ_j (bars) against the prior N(0, 1) (line), one small panel per dim."""
    edges, dens = cmp.mu_histograms(mu)
    t = np.linspace(edges[0], edges[-1], 200)
    return charts.mu_histograms(0.5 * (edges[1:] + edges[:-1]), dens, t, cmp.standard_normal_pdf(t),
                                [f"z{j + 1}" + ("" if active[j] else " (inactive)") for j in range(dens.shape[0])], title=title,
                                bar_name="μ_j over the test set", prior_name="prior N(0, 1)", x_title="μ_j (latent units)",
                                y_title="density (per unit)")


@st.fragment(run_every=1)
def poll(what: str, read) -> None:
    """Progress of background work, once a second; a full rerun when it has ended.

    ``read()`` returns (fraction, text, done); it is called on every poll (a fragment reruns
    with the arguments of the last full run, so they must be live objects, not values).
    """
    fraction, text, done = read()
    if done:
        st.rerun()
    st.progress(min(1.0, fraction), text=f"{what}: {text}")


def live_progress(pt: PairTrainer) -> tuple[float, str, bool]:
    p = pt.progress()
    return p.fraction, f"step {p.step}/{p.total_steps} · loss VAE {p.vae_loss:.1f}, AE {p.ae_loss:.1f} nats/image", p.state != "running"


def umap_progress(jobs: list[pj.ProjectionJob]) -> tuple[float, str, bool]:
    return float(np.mean([j.progress for j in jobs])), jobs[-1].stage, all(j.done for j in jobs)


def main() -> None:
    lm = require_model()
    st.title("⚖️ AE vs VAE")
    st.markdown("An autoencoder and a VAE with the **same architecture, seed, data and batch order**: only the "
                "objective differs (the VAE adds the KL to the prior N(0, I)). That one term decides whether the "
                "latent space can be *sampled*.")
    shipped = list_shipped()
    pairs = [p for p in cmp.list_pairs(shipped) if shipped[p[0]].get("dataset") in available_datasets()]
    match = cmp.find_pair(shipped, lm.dataset_name, lm.config.latent_dim)

    with st.expander("Train a fresh pair live", expanded=False):
        dsets = available_datasets()
        c1, c2, c3 = st.columns(3)
        dname = c1.selectbox("Dataset", dsets, key="compare_live_dataset")
        zdim = c2.selectbox("Latent dim", [2, 16], key="compare_live_latent")
        epochs = c3.number_input("Epochs", 1, 200, 60 if dname == "digits" else 1, key=f"compare_live_epochs_{dname}")
        st.caption("Both models train in lockstep in a background thread (same initial weights, seed and batches). "
                   "Digits, 60 epochs: 720 steps each; Fashion-MNIST, 1 epoch: 469 steps each. The page stays usable.")
        slot = session_handle("compare_live_handle", label="compare pair")  # counts towards the server's trainer cap
        slot.touch()
        running = "compare_live_trainer" in ss and ss["compare_live_trainer"].is_alive
        if st.button("Train a fresh pair", key="compare_live_train", disabled=running):
            ds = get_dataset(dname)
            mc, tc = live_pair_configs(ds, int(zdim), int(epochs))
            pair = PairTrainer(mc, tc, ds)
            try:
                slot.start(pair)  # refused when the server's trainer cap is reached
                ss["compare_live_trainer"] = pair
            except CapacityError as exc:
                st.warning(f"The pair was not started: {exc}")
        if "compare_live_trainer" in ss:
            pt = ss["compare_live_trainer"]
            if pt.is_alive:
                st.button("Stop", key="compare_live_stop", on_click=pt.stop)
                poll("Training the pair", lambda: live_progress(pt))
            elif ss.get("compare_live_built") is not pt:
                ss["compare_live_built"] = pt
                if pt.state == "failed":
                    st.error(f"Training failed: {pt.message}")
                elif pt.progress().step > 0:
                    n = ss["compare_live_count"] = ss.get("compare_live_count", 0) + 1
                    (mv, ma), (v, a), uid = pt.metadata(), pt.models(), uuid.uuid4().hex[:12]  # uid: keys for the caches
                    pair = tuple(LoadedModel(f"compare-live:{uid}:{k}", f"live {k.upper()} #{n} ({mv['dataset']}, z={mv['model_config']['latent_dim']})",
                                             "session", m, m.config, meta) for k, m, meta in (("vae", v, mv), ("ae", a, ma)))
                    for p in pair:
                        state.add_session_model(p, make_current=False)
                    ss["compare_live_pair"], ss["compare_pair"] = pair, LIVE
            if ss.get("compare_live_built") is pt and not pt.is_alive:
                st.success(f"{pt.message}. The pair is below and in the sidebar's model list (this session).")

    options = [f"{v} / {a}" for v, a in pairs] + ([LIVE] if "compare_live_pair" in ss else [])
    if not options:
        st.warning("No AE/VAE pair is available here: train a fresh pair live above.")
        st.stop()
    default = f"{match[0]} / {match[1]}" if match and f"{match[0]} / {match[1]}" in options else options[0]
    if ss.get("compare_pair_for") != lm.key or ss.get("compare_pair") not in options:  # follow the current model
        ss["compare_pair"], ss["compare_pair_for"] = default, lm.key
    choice = st.selectbox("Pair", options, key="compare_pair", help="Shipped pairs, and a pair trained live in this session.")
    if choice == LIVE:
        vae_lm, ae_lm = ss["compare_live_pair"]
    else:
        vae_lm, ae_lm = (load_shipped(n) for n in choice.split(" / "))
    if not match and choice != LIVE:
        st.caption(f"No shipped pair matches the current model ({lm.dataset_name}, z={lm.config.latent_dim}); showing {choice}.")
    diffs = cmp.recipe_differences(vae_lm.metadata, ae_lm.metadata)
    if diffs:
        st.warning("These two differ in more than the objective: " + "; ".join(diffs))
    else:
        tc = vae_lm.metadata.get("train_config") or {}
        st.caption(f"Fair pair: {vae_lm.config.describe().replace('VAE ', '')} on {vae_lm.dataset_name}, seed {tc.get('seed')}, "
                   f"batch {tc.get('batch_size')}, {vae_lm.epochs:.0f} epochs, same batch order.")

    ds = get_dataset(vae_lm.dataset_name)
    labels, names, z = ds.y_test.numpy(), ds.class_names, vae_lm.config.latent_dim
    both = [("VAE", vae_lm), ("AE", ae_lm)]
    (mv, pv), (ma, pa) = (stats(m.model, m.key, m.dataset_name) for _, m in both)
    cols = st.columns(2)
    for col, (kind, m), met in zip(cols, both, (mv, ma)):
        with col:
            st.subheader(f"{kind}: {m.label}")
            a, b, c = st.columns(3)
            a.metric("Test recon. error", f"{met.recon:.2f}", help="−E_q log p(x|z), nats/image on the test set")
            b.metric("KL to the prior", f"{met.kl:.2f}" if met.is_vae else "—",
                     help="nats/image" if met.is_vae else "An AE has no q(z|x) and no prior, so it has no KL.")
            c.metric("Active units", f"{met.active_units} / {met.latent_dim}", help="dims with Var_x[μ_j] > 0.01")
            if not met.is_vae:
                st.caption("KL —: an AE maps each image to one point; there is no distribution to compare with a prior.")

    st.subheader("Latent maps of μ(x)" + ("" if z == 2 else f" (UMAP, {UMAP_PARAMS['n_neighbors']} neighbours, min_dist {UMAP_PARAMS['min_dist']})"))
    cols, waiting = st.columns(2), []
    for col, (kind, m) in zip(cols, both):
        mu = codes(m.model, m.key, m.dataset_name)
        ids = np.arange(mu.shape[0])
        if z == 2:
            xy, title, axes = mu, f"{kind}: raw latent plane", ("z₁ (latent units)", "z₂ (latent units)")
        else:
            jobs = ss.setdefault("compare_umap_jobs", {})  # model key -> job: one background fit per model
            job = jobs.get(m.key)
            if job is None or job.error:
                job = jobs[m.key] = pj.compute_projection_async(mu, ids, "umap", cache=pj.shared_projection_cache(),
                                                                model_key=m.key, **UMAP_PARAMS)
            done = job.done and job.result is not None
            xy = job.result.xy if done else pj.pca_2d(mu)
            title, axes = (f"{kind}: UMAP", ("UMAP 1", "UMAP 2")) if done else (f"{kind}: PCA (UMAP on its way)", ("PC 1 (latent units)", "PC 2 (latent units)"))
            if not job.done:
                waiting.append(job)
        col.plotly_chart(scatter(xy, ids, labels, names, title, axes), key=f"compare_map_{kind}")
    if waiting:
        poll("UMAP", lambda: umap_progress(waiting))

    st.subheader("16 draws from the prior N(0, I), decoded by each")
    seed = int(st.number_input("Draw seed", 0, 10_000, 0, key="compare_seed", help="The same 16 z go to both decoders."))
    cols = st.columns(2)
    for col, (kind, m) in zip(cols, both):
        with col:
            show_grid(sample_prior(m.model, 16, seed=seed).cpu(), ds.image_shape, ncols=8, caption=kind)
    fmt = lambda v: "(" + ", ".join(f"{s:.1f}" for s in v[:4]) + (", …)" if z > 4 else ")")  # noqa: E731
    st.info(f"Why the AE's samples are poor: nothing in its loss pulls its codes towards N(0, I), so prior draws land where "
            f"its decoder saw no codes. The AE's codes have mean {fmt(pa.mean)} and std {fmt(pa.std)}, a Gaussian fit "
            f"{pa.moment_kl:.1f} nats from the prior; the VAE's have mean {fmt(pv.mean)} and std {fmt(pv.std)}: {pv.moment_kl:.2f} nats.")

    st.subheader("Interpolation between the same two test images")
    i0, j0 = cmp.interpolation_pair(labels)
    c1, c2 = st.columns(2)
    ia = int(c1.number_input("First test image", 0, len(labels) - 1, i0, key="compare_interp_a"))
    ib = int(c2.number_input("Second test image", 0, len(labels) - 1, j0, key="compare_interp_b"))
    for kind, m in both:
        path = interpolate(m.model, ds.x_test[ia], ds.x_test[ib], steps=10).cpu()
        show_grid(np.concatenate([to_float(ds.x_test[[ia]]).numpy(), path.numpy(), to_float(ds.x_test[[ib]]).numpy()]), ds.image_shape, ncols=12,
                  caption=f"{kind}: image {ia} ({names[int(labels[ia])]}), 10 decoded steps from μ to μ, image {ib} ({names[int(labels[ib])]})")

    st.subheader("Aggregate posterior against the prior")
    st.markdown(f"Moment-matched KL(q(z) ‖ N(0, I)): **VAE {pv.moment_kl:.2f}** vs **AE {pa.moment_kl:.2f} nats** "
                "(0 when the codes have the prior's mean and spread).")
    if z > 2:
        st.caption("A spike at 0 marked *inactive* is a VAE dim the model switched off: μ_j ≈ 0 for every image and "
                   "σ_j ≈ 1, so q(z_j) is the prior itself. An AE's codes have no σ: its bars are all there is.")
    cols = st.columns(2) if z == 2 else (st.container(), st.container())
    for col, (kind, m), match_ in zip(cols, both, (pv, pa)):
        mu = codes(m.model, m.key, m.dataset_name)
        fig = (scatter(mu, np.arange(len(mu)), labels, names, f"{kind}: μ(x) over the prior's contours",
                       ("z₁ (latent units)", "z₂ (latent units)"), circles=True) if z == 2
               else histograms(mu, match_.active, f"{kind}: μ_j against N(0, 1)"))
        col.plotly_chart(fig, key=f"compare_prior_{kind}")


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
