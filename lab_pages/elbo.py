"""ELBO, term by term: log p(x) = E_q[log p(x|z)] - KL(q(z|x)||p(z)) + KL(q(z|x)||p(z|x)), with real numbers.

A thin page: every number comes from vae_core.identity (built on vae_core.elbo); this script
reads widgets and state, and draws. Units: nats per image everywhere.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from lab_pages import charts, state
from lab_pages.common import get_dataset, list_shipped, load_shipped, require_dataset, require_vae, to_image, upscale
from lab_pages.style import ELBO_COLOR, KL_COLOR, RECON_COLOR
from vae_core import identity as idn
from vae_core import theory as th
from vae_core.checkpoint import CheckpointError
from vae_core.data import to_float
from vae_core.evaluate import dataset_metrics

NATS, STEPS = "nats per image", "training step"
K_MAX, N_PICK, SEED = 5000, 20, 0
Z2_NAMES = {"fashion-mnist": "fmnist_vae_z2", "digits": "digits_vae_z2", "mnist": "mnist_vae_z2"}


# ------------------------------------------------------------------ cached computations (keyed by model key)
@st.cache_data(max_entries=64, show_spinner="Drawing 5000 samples from q(z|x)…")
def image_report(key: str, _model, ds_name: str, idx: int) -> idn.ImageReport:
    return idn.image_report(_model, get_dataset(ds_name).x_test[idx], k_max=K_MAX, seed=SEED)


@st.cache_data(max_entries=32, show_spinner="Integrating p(x|z)p(z) over a 200×200 grid…")
def posterior(key: str, _model, ds_name: str, idx: int) -> idn.PosteriorGrid:
    return idn.posterior_grid(_model, get_dataset(ds_name).x_test[idx], n=200)


@st.cache_data(max_entries=16, show_spinner="Evaluating the test set…")
def elbo_metrics(key: str, _model, ds_name: str) -> dict:
    return dataset_metrics(_model, get_dataset(ds_name).x_test).to_dict()


def live_trainer():
    """The Train page's trainer while it is running (watching it keeps the session's training alive), else None."""
    h = state.train_handle()
    tr = getattr(h, "trainer", None)
    if tr is None or getattr(tr, "state", None) != "running":
        return None
    if hasattr(h, "touch"):
        h.touch()
    return tr


def draw_curves(history, latent_dim: int, warmup: int, tm: dict, live: bool) -> None:
    """Section 1 from a History (or its dict): stacked −ELBO, KL per dim now and over time, active units."""
    n = len((history if isinstance(history, dict) else history.to_dict()).get("step") or [])
    c = idn.history_curves(history, smooth=max(1, n // 150), latent_dim=latent_dim)
    if c is None:
        return st.info("No training history to draw (an upload without one, or training has not taken a step yet).")
    st.plotly_chart(charts.elbo_curves(
        c.step, c.recon_cost, c.kl, c.loss, c.beta, c.eval_step, c.test_neg_elbo, warmup, recon_name="reconstruction −E_q[log p(x|z)]",
        kl_name="KL(q‖p(z))", objective_name="objective: recon + β·KL", eval_name="test −ELBO", beta_name="β (KL weight)",
        warmup_text="KL warm-up", x_title=STEPS, y_title=f"−ELBO = recon + KL ({NATS})"), key=f"elbo_curves_{live}")
    left, mid, right = st.columns(3)
    now = np.asarray(tm["kl_per_dim"]) if tm.get("kl_per_dim") and not live else c.kl_per_dim[-1]
    dims = [f"z{j + 1}" for j in range(latent_dim)]
    left.plotly_chart(charts.kl_bars(dims[:now.size], now, title="KL per latent dim, now" + (" (test set)" if tm and not live else
                      " (batch)"), x_title="latent dim", y_title=NATS), key=f"elbo_kl_bars_{live}")
    mid.plotly_chart(charts.kl_heatmap(c.step, c.kl_per_dim, dims[:c.kl_per_dim.shape[1]], title="KL per latent dim over training",
                     x_title=STEPS, y_title="latent dim", colorbar_title="nats"), key=f"elbo_kl_heat_{live}")
    right.plotly_chart(charts.active_units(c.eval_step, c.active_units, latent_dim, title="Active units (Cov_x[μ_j] > 0.01)",
                       x_title=STEPS, y_title="active dims", limit_text=f"z = {latent_dim}"), key=f"elbo_active_{live}")
    au, z = (c.active_units[-1] if c.active_units.size else tm.get("active_units")), latent_dim
    if au is None or np.isnan(au):
        st.caption("Active units appear after the first evaluation.")
    elif int(au) < z:
        st.warning(f"⚠️ **Collapse: {z - int(au)} of {z} latent dimensions are inactive** (Cov_x[μ] ≤ 0.01): "
                   "q(z_j|x) is the prior for every x, their KL is ~0 and they carry no information about the image.")
    else:
        st.success(f"Active units: {int(au)} of {z} (every dimension has Cov_x[μ] > 0.01; none collapsed).")


def make_z2_current(name: str) -> None:
    try:
        state.set_current_model(load_shipped(name))
        state.set_picked("shipped", name)
    except CheckpointError as exc:
        st.session_state["elbo_error"] = f"Could not load {name}: {exc}"


def pick(idx: int) -> None:
    st.session_state["elbo_index"] = idx


def num(v: float) -> str:
    return f"({v:.2f})" if v < 0 else f"{v:.2f}"


def main() -> None:
    st.title("🧮 ELBO, term by term")
    lm = require_vae("this page takes the ELBO apart into reconstruction and KL, and only a VAE has q(z|x), a prior and a KL term")
    ds = require_dataset(lm)
    model, cfg = lm.model, lm.config
    if ds.dim != cfg.input_dim:
        st.error(f"This model expects {cfg.input_dim} pixels but {ds.name} has {ds.dim}. Pick another model in the sidebar.")
        st.stop()
    st.latex(rf"\log p(x) = \underbrace{{\color{{{RECON_COLOR}}}{{\mathbb{{E}}_{{q(z|x)}}[\log p(x|z)]}} - "
             rf"\color{{{KL_COLOR}}}{{\mathrm{{KL}}(q(z|x)\,\|\,p(z))}}}}_{{\color{{{ELBO_COLOR}}}{{\mathrm{{ELBO}}}}}} + "
             r"\underbrace{\mathrm{KL}(q(z|x)\,\|\,p(z|x))}_{\ge 0} \;\ge\; \mathrm{ELBO}")
    st.caption(f"Model: **{lm.label}** — {lm.summary()}. All numbers in {NATS}.")
    if st.session_state.get("elbo_error"):
        st.error(st.session_state.pop("elbo_error"))

    st.header("1. Training curves")
    trainer = live_trainer()
    if trainer is not None and st.toggle("Show the model training now on the Train page (live)", True, key="elbo_live"):
        @st.fragment(run_every=1.0)
        def live_curves() -> None:
            snap = trainer.snapshot()
            if snap.state != "running":
                st.rerun()  # training ended: redraw the page once, without the timer
            mc_, tc_ = trainer.model_config, trainer.config
            st.caption(f"Live from the Train page: {mc_.describe()} on {tc_.dataset}, step {snap.step:,} of "
                       f"{snap.total_steps:,}. Sections 2–5 use the current model; the Train page's *Use* makes a snapshot current.")
            draw_curves(snap.history, mc_.latent_dim, tc_.warmup_steps, {}, live=True)
        live_curves()
    else:
        draw_curves(lm.metadata.get("history") or {}, cfg.latent_dim,
                    int((lm.metadata.get("train_config") or {}).get("warmup_steps") or 0),
                    lm.metadata.get("test_metrics") or {}, live=False)

    st.header("2. One image: every term, with numbers")
    n_test = int(ds.x_test.shape[0])
    st.session_state["elbo_index"] = min(int(st.session_state.get("elbo_index", 0)), n_test - 1)
    gen = torch.Generator().manual_seed(int(st.session_state.get("elbo_shuffle", 0)))
    cand = torch.randperm(n_test, generator=gen)[:N_PICK].tolist()
    cols = st.columns(N_PICK // 2)
    for i, idx in enumerate(cand):
        with cols[i % len(cols)]:
            st.image(upscale(to_image(to_float(ds.x_test[idx]), ds.image_shape), ds.image_shape[1], 56), width="stretch",
                     output_format="PNG")
            st.button(f"#{idx}", key=f"elbo_pick_{i}", on_click=pick, args=(idx,), width="stretch",
                      help=f"class: {ds.class_names[int(ds.y_test[idx])]}")
    c1, c2, c3 = st.columns([2, 2, 3])
    c1.number_input(f"…or a test image by index (0–{n_test - 1})", 0, n_test - 1, key="elbo_index")
    c2.button("🔀 Other images", key="elbo_shuffle_btn",
              on_click=lambda: st.session_state.update(elbo_shuffle=int(st.session_state.get("elbo_shuffle", 0)) + 1))
    k = c3.select_slider("K, importance samples", options=idn.K_CHOICES, value=1000, key="elbo_k")
    idx = int(st.session_state["elbo_index"])
    r = image_report(lm.key, model, ds.name, idx)
    g = posterior(lm.key, model, ds.name, idx) if cfg.latent_dim in (1, 2) else None
    exact = g.log_px if g is not None else None
    a, b, m = st.columns([1, 1, 4])
    for col, img, cap in ((a, r.x, f"original #{idx}"), (b, r.x_recon, "reconstruction (decode μ)")):
        col.image(upscale(to_image(img, ds.image_shape), ds.image_shape[1], 112), caption=cap, output_format="PNG")
    mc = m.columns(3)
    mc[0].metric("E_q[log p(x|z)]", f"{r.recon:.2f}", help=f"± {r.recon_se:.3f} (Monte Carlo, {r.k_max} samples)")
    mc[1].metric("KL(q(z|x)‖p(z))", f"{r.kl:.2f}", help="analytic")
    mc[2].metric("ELBO", f"{r.elbo:.2f}")
    mc = m.columns(3)
    mc[0].metric(f"log p̂_K(x), K={k}", f"{r.log_px_hat(k):.2f}", delta=f"{r.gap(k):+.2f} vs ELBO")
    mc[1].metric("KL(q‖p(z|x)) estimate", f"{r.gap(k):.3f}", help="log p̂_K(x) − ELBO: the gap the ELBO leaves")
    mc[2].metric("exact log p(x)", f"{exact:.2f}" if exact is not None else "n/a",
                 help="quadrature over z (z=2 only)" if exact is not None else "needs latent dim 1 or 2: see section 3")
    st.latex(rf"\underbrace{{{r.log_px_hat(k):.2f}}}_{{\log \hat p_{{K={k}}}(x)}} = "
             rf"\underbrace{{\color{{{RECON_COLOR}}}{{{num(r.recon)}}}}}_{{\mathbb{{E}}_q[\log p(x|z)]}} - "
             rf"\underbrace{{\color{{{KL_COLOR}}}{{{r.kl:.2f}}}}}_{{\mathrm{{KL}}(q\|p(z))}} + "
             rf"\underbrace{{{r.gap(k):.2f}}}_{{\widehat{{\mathrm{{KL}}}}(q\|p(z|x))}}")
    if g is not None:
        st.latex(rf"\underbrace{{{g.log_px:.2f}}}_{{\log p(x)\ \text{{exact}}}} = {num(g.recon_exact)} - {g.kl:.2f} + "
                 rf"\underbrace{{{g.kl_q_post:.3f}}}_{{\int q \log \frac{{q}}{{p(z|x)}}\,dz}}"
                 rf"\quad(\text{{residual }} {round(g.log_px - g.elbo_exact - g.kl_q_post, 4) + 0.0:+.4f})")
    ks = np.unique(np.geomspace(1, r.k_max, 400).round().astype(int))
    mean, se = idn.expected_iwae(r.log_w, idn.K_CHOICES)
    st.plotly_chart(charts.iwae_curve(
        ks, r.iwae[ks - 1], idn.K_CHOICES, mean, se, r.elbo, k, r.log_px_hat(k), exact, run_name="log p̂_K(x), one run of the first K samples",
        mean_name="mean of log p̂_K over disjoint groups", elbo_text=f"ELBO {r.elbo:.2f}", k_text=f"log p̂_K(x) at K={k}: {r.log_px_hat(k):.2f}",
        exact_text=f"exact log p(x) {exact:.2f}" if exact is not None else "", x_title="K, importance samples (log scale)",
        y_title=f"log-likelihood ({NATS})"), key="elbo_iwae_chart")
    st.caption("log p̂_K(x) = log (1/K) Σ_k p(x, z_k)/q(z_k|x) with z_k ~ q(z|x). K=1 is a one-sample ELBO; "
               "as K grows the estimate rises towards log p(x), and log p̂_K − ELBO estimates KL(q(z|x)‖p(z|x)).")

    st.header("3. The true posterior p(z|x) (latent dim 2)")
    if g is not None:
        left, right = st.columns([3, 2])
        if g.axes.shape[0] == 1:  # z=1: densities on a line
            fig = charts.posterior_line(g.axes[0], g.density, th.normal_pdf(g.axes[0], g.mu[0], g.sigma[0]), posterior_name="true posterior "
                                        "p(z|x)", q_name="q(z|x)", x_title="z (latent units)", y_title="density (per unit z)")
        else:
            ells = [(f"q(z|x) {n}σ", *idn.ellipse(g.mu, g.sigma, n), dash) for n, dash in ((1, "solid"), (2, "dash"))]
            fig = charts.posterior_map(g.axes[0], g.axes[1], g.density, ells, g.mu, *g.view_box(), colorbar_title="p(z|x)", mu_name="μ",
                                       x_title="z₁ (latent units)", y_title="z₂ (latent units)")
        left.plotly_chart(fig, key="elbo_posterior_chart")
        right.metric("exact log p(x) (quadrature, " + "×".join(["200"] * cfg.latent_dim) + ")", f"{g.log_px:.3f}")
        right.metric(f"log p̂_K(x), K={k}", f"{r.log_px_hat(k):.3f}", delta=f"{r.log_px_hat(k) - g.log_px:+.3f} vs exact")
        right.metric("ELBO", f"{r.elbo:.3f}", delta=f"{r.elbo - g.log_px:+.3f} vs exact")
        right.metric("KL(q‖p(z|x)) by quadrature", f"{g.kl_q_post:.3f}", help=f"the estimate at K={k}: {r.gap(k):.3f}")
        right.caption(f"∫p(z|x)dz on the grid = {g.mass:.4f}. Green: q(z|x)'s 1σ and 2σ ellipses (z=2). "
                      "Where q and the true posterior differ in shape, the ELBO pays exactly KL(q‖p(z|x)).")
    else:
        st.info(f"This model has z={cfg.latent_dim}. The true posterior p(z|x) = p(x|z)p(z)/p(x) needs p(x) = ∫p(x|z)p(z)dz; "
                f"a 200-point grid per dimension is 200² = 40,000 decoder calls for z=2 but 200^{cfg.latent_dim} "
                f"≈ 10^{cfg.latent_dim * np.log10(200):.0f} for z={cfg.latent_dim}: impossible. In high dimensions "
                "importance sampling (section 2) is the only way, so this exact view needs a 2-D latent.")
        shipped = list_shipped()
        name = Z2_NAMES.get(ds.name) if Z2_NAMES.get(ds.name) in shipped else "digits_vae_z2"
        if name in shipped:
            other = shipped[name].get("dataset") != ds.name
            st.button(f"Switch to the shipped z=2 VAE ({name}" + (f", on {shipped[name].get('dataset')})" if other else ")"),
                      key="elbo_use_z2", on_click=make_z2_current, args=(name,), type="primary")

    st.header("4. The KL term: formula vs Monte Carlo")
    mc_n = st.select_slider("Monte Carlo samples", options=[10, 100, 1000, 10_000, 100_000], value=1000, key="elbo_mc_n")
    est, se = idn.kl_monte_carlo(r.mu, r.sigma, mc_n, seed=SEED + 1)
    terms = [rf"({num(mu)}^2 + {s:.2f}^2 - 1 - \log {s:.2f}^2)" for mu, s in zip(r.mu, r.sigma)]
    shown = terms if len(terms) <= 4 else [*terms[:3], r"\cdots", terms[-1]]
    st.latex(r"\begin{aligned}\mathrm{KL}(q(z|x)\,\|\,p(z)) &= \tfrac12\sum_{j=1}^{" + str(cfg.latent_dim) +
             r"} (\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2) \\ &= \tfrac12\big[" + r" \\ &\qquad + ".join(shown) +
             rf"\big] \\ &= \color{{{KL_COLOR}}}{{{r.kl:.3f}}}\ \text{{nats}}\end{{aligned}}")
    kc = st.columns(3)
    kc[0].metric("formula (analytic)", f"{r.kl:.3f}")
    kc[1].metric(f"Monte Carlo, n={mc_n:,}", f"{est:.3f}", delta=f"± {se:.3f} std. error", delta_color="off", delta_arrow="off",
                 help="mean of log q(z|x) − log p(z) over z ~ q(z|x)")
    kc[2].metric("difference", f"{est - r.kl:+.3f}", delta=f"{(est - r.kl) / se:+.1f} standard errors", delta_color="off",
                 delta_arrow="off")

    st.header("5. The test set")
    tm = lm.metadata.get("test_metrics") or {}
    src = "recorded in the checkpoint" if tm.get("neg_elbo") is not None else "computed now"
    if tm.get("neg_elbo") is None:
        tm = elbo_metrics(lm.key, model, ds.name)
    iw = st.session_state.get("elbo_iwae", {}).get(lm.key) or (tm if tm.get("iwae_nll") is not None else None)
    rows = [("test −ELBO", tm["neg_elbo"], f"{tm.get('n', n_test)} test images, one z sample each"),
            ("reconstruction −E_q[log p(x|z)]", tm["recon"], "same"), ("KL(q(z|x)‖p(z))", tm["kl"], "same")]
    if iw:
        sub = f"first {iw.get('iwae_n', '?')} test images"
        rows.append((f"importance-weighted NLL −log p̂_K(x), K={iw.get('iwae_k', '?')}", iw["iwae_nll"],
                     f"{sub}, ± {iw.get('iwae_nll_se', float('nan')):.2f} (std. error)"))
        if iw.get("iwae_subset_neg_elbo") is not None:
            rows.append(("−ELBO − NLL: mean KL(q(z|x)‖p(z|x)) estimate", iw["iwae_subset_neg_elbo"] - iw["iwae_nll"],
                         f"{sub} (−ELBO {iw['iwae_subset_neg_elbo']:.2f} on them)"))
    st.table([{"quantity": q, "value": f"{v:.2f}", "units": NATS, "computed on": on} for q, v, on in rows], hide_index=True)
    st.caption(f"ELBO terms {src}. Active units: {tm.get('active_units', '?')} of {cfg.latent_dim}.")
    n_iw = st.select_slider("IWAE subset (first N test images)", options=[100, 500, 1000], value=500, key="elbo_iwae_n")
    if st.button(f"Compute the importance-weighted NLL (K=1000, {n_iw} images)", key="elbo_iwae_btn"):
        bar = st.progress(0.0, text="Importance sampling…")
        res = dataset_metrics(model, ds.x_test, k=1000, n_iwae=n_iw, progress=lambda f: bar.progress(f, text=f"{f:.0%} of {n_iw} images"))
        st.session_state.setdefault("elbo_iwae", {})[lm.key] = res.to_dict()
        st.rerun()


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
