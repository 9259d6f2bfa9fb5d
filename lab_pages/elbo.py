"""ELBO, term by term: log p(x) = E_q[log p(x|z)] - KL(q(z|x)||p(z)) + KL(q(z|x)||p(z|x)), with real numbers.

A thin page: every number comes from vae_core.identity (built on vae_core.elbo); this script
reads widgets and state, and draws. Units: nats per image everywhere.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from lab_pages.common import (
    ELBO_COLOR, KL_COLOR, LOGPX_COLOR, RECON_COLOR, get_dataset, list_shipped, load_shipped,
    require_dataset, require_vae, set_current_model, to_image,
)
from vae_core import identity as idn
from vae_core.checkpoint import CheckpointError

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
    return idn.dataset_metrics(_model, get_dataset(ds_name), k=0, n_iwae=0)


def live_trainer():
    """The Train page's trainer (st.session_state["train_handle"].trainer) while it is running, else None."""
    h = st.session_state.get("train_handle")
    tr = getattr(h, "trainer", None)
    if tr is None or getattr(tr, "state", None) != "running":
        return None
    if hasattr(h, "touch"):
        h.touch()  # watching this page keeps the session's training alive
    return tr


# ------------------------------------------------------------------ figures
def curves_figure(c: idn.HistoryCurves, warmup: int) -> go.Figure:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(x=c.step, y=c.recon_cost, name="reconstruction −E_q[log p(x|z)]", stackgroup="e",
                    line=dict(color=RECON_COLOR))
    fig.add_scatter(x=c.step, y=c.kl, name="KL(q‖p(z))", stackgroup="e", line=dict(color=KL_COLOR))
    fig.add_scatter(x=c.step, y=c.loss, name="objective: recon + β·KL", line=dict(color="black", dash="dot", width=1))
    if c.eval_step.size:
        fig.add_scatter(x=c.eval_step, y=c.test_neg_elbo, name="test −ELBO", mode="markers",
                        marker=dict(color=ELBO_COLOR, size=6))
    fig.add_scatter(x=c.step, y=c.beta, name="β (KL weight)", line=dict(color="grey", dash="dash"), secondary_y=True)
    if warmup > 0:
        fig.add_vrect(x0=0, x1=warmup, fillcolor="grey", opacity=0.12, line_width=0,
                      annotation_text="KL warm-up", annotation_position="top left")
    fig.update_yaxes(title_text=f"−ELBO = recon + KL ({NATS})", secondary_y=False)
    bmax = max(1.0, float(np.nanmax(c.beta)))
    fig.update_yaxes(title_text="β (KL weight)", range=[0, 1.1 * bmax], dtick=bmax / 4, tick0=0, secondary_y=True,
                     showgrid=False)
    return fig.update_layout(xaxis_title=STEPS, height=380, legend=dict(orientation="h", y=-0.2))


def draw_curves(history, latent_dim: int, warmup: int, tm: dict, live: bool) -> None:
    """Section 1 from a History (or its dict): stacked −ELBO, KL per dim now and over time, active units."""
    n = len((history if isinstance(history, dict) else history.to_dict()).get("step") or [])
    c = idn.history_curves(history, smooth=max(1, n // 150), latent_dim=latent_dim)
    if c is None:
        st.info("No training history to draw (an upload without one, or training has not taken a step yet).")
        return
    st.plotly_chart(curves_figure(c, warmup), key=f"elbo_curves_{live}")
    left, mid, right = st.columns(3)
    now = np.asarray(tm["kl_per_dim"]) if tm.get("kl_per_dim") and not live else c.kl_per_dim[-1]
    bar = go.Figure(go.Bar(x=[f"z{j + 1}" for j in range(now.size)], y=now, marker_color=KL_COLOR))
    left.plotly_chart(bar.update_layout(title="KL per latent dim, now" + (" (test set)" if tm and not live else " (batch)"),
                                        xaxis_title="latent dim", yaxis_title=NATS, height=300), key=f"elbo_kl_bars_{live}")
    heat = go.Figure(go.Heatmap(x=c.step, y=[f"z{j + 1}" for j in range(c.kl_per_dim.shape[1])], z=c.kl_per_dim.T,
                                colorscale="Oranges", colorbar=dict(title="nats")))
    mid.plotly_chart(heat.update_layout(title="KL per latent dim over training", xaxis_title=STEPS,
                                        yaxis_title="latent dim", height=300), key=f"elbo_kl_heat_{live}")
    au_fig = go.Figure(go.Scatter(x=c.eval_step, y=c.active_units, mode="lines+markers", line=dict(color=KL_COLOR,
                                                                                                   shape="hv")))
    au_fig.add_hline(y=latent_dim, line=dict(color="grey", dash="dot"), annotation_text=f"z = {latent_dim}")
    right.plotly_chart(au_fig.update_layout(title="Active units (Cov_x[μ_j] > 0.01)", xaxis_title=STEPS, height=300,
                                            yaxis=dict(title="active dims", range=[0, latent_dim + 0.5])),
                       key=f"elbo_active_{live}")
    au = c.active_units[-1] if c.active_units.size else tm.get("active_units")
    z = latent_dim
    if au is None or np.isnan(au):
        st.caption("Active units appear after the first evaluation.")
    elif int(au) < z:
        st.warning(f"⚠️ **Collapse: {z - int(au)} of {z} latent dimensions are inactive** (Cov_x[μ] ≤ 0.01): "
                   "q(z_j|x) is the prior for every x, their KL is ~0 and they carry no information about the image.")
    else:
        st.success(f"Active units: {int(au)} of {z} (every dimension has Cov_x[μ] > 0.01; none collapsed).")


def iwae_figure(r: idn.ImageReport, k: int, exact: float | None) -> go.Figure:
    ks = np.unique(np.geomspace(1, r.k_max, 400).round().astype(int))
    mean, se = idn.expected_iwae(r.log_w, idn.K_CHOICES)
    fig = go.Figure(go.Scatter(x=ks, y=r.iwae[ks - 1], name="log p̂_K(x), one run of the first K samples",
                               line=dict(color=LOGPX_COLOR)))
    fig.add_scatter(x=list(idn.K_CHOICES), y=mean, error_y=dict(array=se), mode="markers", name="mean of log p̂_K over disjoint groups",
                    marker=dict(color=LOGPX_COLOR, symbol="diamond"))
    fig.add_hline(y=r.elbo, line=dict(color=ELBO_COLOR), annotation_text=f"ELBO {r.elbo:.2f}")
    if exact is not None:
        fig.add_hline(y=exact, line=dict(color="black", dash="dash"), annotation_text=f"exact log p(x) {exact:.2f}")
    fig.add_hline(y=r.log_px_hat(k), line=dict(color=LOGPX_COLOR, dash="dot"), annotation_position="bottom left",
                  annotation_text=f"log p̂_K(x) at K={k}: {r.log_px_hat(k):.2f}")
    fig.add_vline(x=k, line=dict(color="grey", dash="dot"))
    return fig.update_layout(xaxis_type="log", xaxis_title="K, importance samples (log scale)",
                             yaxis_title=f"log-likelihood ({NATS})", height=360, legend=dict(orientation="h", y=-0.25))


def posterior_figure(g: idn.PosteriorGrid) -> go.Figure:
    if g.axes.shape[0] == 1:  # z=1: densities on a line
        z = g.axes[0]
        q = np.exp(-0.5 * ((z - g.mu[0]) / g.sigma[0]) ** 2) / (g.sigma[0] * np.sqrt(2 * np.pi))
        fig = go.Figure([go.Scatter(x=z, y=g.density, name="true posterior p(z|x)", line=dict(color=LOGPX_COLOR)),
                         go.Scatter(x=z, y=q, name="q(z|x)", line=dict(color=ELBO_COLOR, dash="dash"))])
        return fig.update_layout(xaxis_title="z (latent units)", yaxis_title="density (per unit z)", height=380)
    fig = go.Figure(go.Heatmap(x=g.axes[0], y=g.axes[1], z=g.density.T, colorscale="Purples",
                               colorbar=dict(title="p(z|x)")))
    for k, dash in ((1, "solid"), (2, "dash")):
        e1, e2 = idn.ellipse(g.mu, g.sigma, k)
        fig.add_scatter(x=e1, y=e2, mode="lines", name=f"q(z|x) {k}σ", line=dict(color=ELBO_COLOR, dash=dash, width=2))
    fig.add_scatter(x=[g.mu[0]], y=[g.mu[1]], mode="markers", name="μ", marker=dict(color=ELBO_COLOR, symbol="x", size=9))
    lo, hi = g.view_box()
    return fig.update_layout(xaxis=dict(title="z₁ (latent units)", range=[lo[0], hi[0]]), height=460,
                             yaxis=dict(title="z₂ (latent units)", range=[lo[1], hi[1]], scaleanchor="x"),
                             legend=dict(orientation="h", y=-0.2))


def make_z2_current(name: str) -> None:
    try:
        set_current_model(load_shipped(name))
        st.session_state["sidebar_model_pick"] = f"shipped:{name}"
    except CheckpointError as exc:
        st.session_state["elbo_error"] = f"Could not load {name}: {exc}"


def pick(idx: int) -> None:
    st.session_state["elbo_index"] = idx


def num(v: float) -> str:
    return f"({v:.2f})" if v < 0 else f"{v:.2f}"


# ------------------------------------------------------------------ the page
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
        img = to_image(ds.x_test[idx].float() / 255.0, ds.image_shape)
        st.image(np.kron(img, np.ones((max(1, 56 // img.shape[0]),) * 2, dtype=np.uint8)), width="stretch", output_format="PNG")
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
sc = max(1, 112 // ds.image_shape[1])
a.image(np.kron(to_image(r.x, ds.image_shape), np.ones((sc, sc), np.uint8)), caption=f"original #{idx}", output_format="PNG")
b.image(np.kron(to_image(r.x_recon, ds.image_shape), np.ones((sc, sc), np.uint8)), caption="reconstruction (decode μ)", output_format="PNG")
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
st.plotly_chart(iwae_figure(r, k, exact), key="elbo_iwae_chart")
st.caption("log p̂_K(x) = log (1/K) Σ_k p(x, z_k)/q(z_k|x) with z_k ~ q(z|x). K=1 is a one-sample ELBO; "
           "as K grows the estimate rises towards log p(x), and log p̂_K − ELBO estimates KL(q(z|x)‖p(z|x)).")

st.header("3. The true posterior p(z|x) (latent dim 2)")
if g is not None:
    left, right = st.columns([3, 2])
    left.plotly_chart(posterior_figure(g), key="elbo_posterior_chart")
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
    res = idn.dataset_metrics(model, ds, k=1000, n_iwae=n_iw, progress=lambda f: bar.progress(f, text=f"{f:.0%} of {n_iw} images"))
    st.session_state.setdefault("elbo_iwae", {})[lm.key] = res
    st.rerun()
