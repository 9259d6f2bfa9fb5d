"""Theory: information -> entropy -> KL -> variational inference -> ELBO -> reparameterization.

A thin page: every number comes from vae_core.theory; this script only reads widgets and draws.
"""

import math

import numpy as np
import streamlit as st

from lab_pages import charts
from lab_pages.style import P_COLOR, Q_COLOR
from vae_core import theory as th

OUTCOMES = ["sun", "cloud", "rain", "snow"]
Z_AXIS, DENSITY_AXIS = "z (latent units)", "density (per unit z)"


def fmt(v: float) -> str:
    """3-decimal number, or the infinity sign."""
    return "∞" if math.isinf(v) else f"{v:.3f}"


def density_figure(z: np.ndarray, traces: list[tuple[str, np.ndarray, str]]):
    """Line plot of densities over z; traces are (name, values, colour)."""
    return charts.densities(z, traces, x_title=Z_AXIS, y_title=DENSITY_AXIS)


def fit_animation(traj: th.FitTrajectory, z: np.ndarray, post: np.ndarray):
    """Posterior fixed, q moving: at most 60 Plotly frames with a play button (never blocks the script)."""
    idx = np.unique(np.linspace(0, len(traj.mu) - 1, min(len(traj.mu), 60)).round().astype(int))
    sig = np.exp(traj.log_sigma)
    frames = [(str(t), th.normal_pdf(z, traj.mu[t], sig[t]), f"step {t}: ELBO = {traj.elbo[t]:.3f} nats") for t in idx]
    return charts.fit_animation(z, post, frames, 1.05 * max(post.max(), 1 / (sig.min() * math.sqrt(2 * math.pi))),
                                posterior_name="p(z|x)", q_name="q", play="▶ play", pause="⏸ pause", step_prefix="step ",
                                x_title=Z_AXIS, y_title=DENSITY_AXIS)


@st.cache_data
def landscape() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ELBO (nats) over a (log sigma, mu) grid for the default target: (mu (81,), log sigma (61,), elbo (61, 81))."""
    mus, lss = np.linspace(-4, 4, 81), np.linspace(-3, 1, 61)
    return mus, lss, th.elbo_landscape(th.VITarget(), mus, lss)


def _set_standard_normal() -> None:
    st.session_state["theory_mu2"], st.session_state["theory_s2"] = 0.0, 1.0


def _run_fit() -> None:
    ss = st.session_state
    traj = th.fit_q_sgd(th.VITarget(), ss["theory_q_mu"], ss["theory_q_sigma"], int(ss["theory_fit_steps"]),
                        float(ss["theory_fit_lr"]), int(ss["theory_fit_n"]), seed=0)
    ss["theory_fit_result"] = traj
    ss["theory_q_mu"] = float(np.clip(round(traj.mu[-1], 2), -4.0, 4.0))
    ss["theory_q_sigma"] = float(np.clip(round(math.exp(traj.log_sigma[-1]), 2), 0.05, 3.0))


def main() -> None:
    # Widgets that callbacks move get their defaults here, not via value= (Streamlit warns on both).
    for _k, _v in {"theory_mu2": 0.0, "theory_s2": 1.0, "theory_q_mu": -0.5, "theory_q_sigma": 1.0}.items():
        st.session_state.setdefault(_k, _v)

    st.title("Theory: the ideas under the ELBO")
    st.markdown(
        r"A VAE maximises the **ELBO** $=\mathbb{E}_q[\log p(x|z)] - \mathrm{KL}(q(z|x)\,\|\,p(z))$. "
        "Each piece comes from an older idea: information and entropy, the KL divergence, variational "
        "inference, and the reparameterization trick that lets us train it by gradient ascent."
    )

    # ---------------------------------------------------------------- 1. information and entropy
    st.header("1 · Information, entropy, cross-entropy, KL")
    st.markdown(
        "An outcome of probability p carries **information** −log p: rare outcomes surprise more. "
        "**Entropy** H(p) is the average information. Coding outcomes from p with a code built for q "
        "costs the **cross-entropy** H(p,q); the excess H(p,q) − H(p) is **KL(p‖q)** ≥ 0. "
        "The VAE's reconstruction term is a (negative) cross-entropy and its regulariser is a KL."
    )
    unit = st.radio("Unit", ["bits", "nats"], horizontal=True, key="theory_unit")
    base = 2.0 if unit == "bits" else math.e
    cols = st.columns(len(OUTCOMES))
    p_w = [cols[i].slider(f"p({o})", 0, 10, d, key=f"theory_p_{i}") for i, (o, d) in enumerate(zip(OUTCOMES, [4, 2, 1, 1]))]
    q_w = [cols[i].slider(f"q({o})", 0, 10, d, key=f"theory_q_{i}") for i, (o, d) in enumerate(zip(OUTCOMES, [1, 2, 2, 3]))]
    try:
        ds = th.discrete_summary(np.array(p_w), np.array(q_w), base)
    except ValueError as err:
        st.error(f"{err}: raise at least one weight of p and of q (weights are normalised to sum to 1).")
        ds = None
    if ds is not None:
        fig = charts.discrete(OUTCOMES, ds.p, ds.q, ds.info_p, ds.h_p, panel_titles=("p and q (normalised weights)", "information −log p"),
                              p_name="p", q_name="q", info_name="−log p", entropy_text=f"H(p) = {ds.h_p:.3f} {unit}",
                              x_title="outcome", p_title="probability", info_title=f"information ({unit})")
        st.plotly_chart(fig, key="theory_fig_discrete")
        m = st.columns(5)
        m[0].metric("H(p) in bits", f"{th.entropy(ds.p, 2.0):.3f}")
        m[1].metric("H(p) in nats", f"{th.entropy(ds.p, math.e):.3f}")
        m[2].metric(f"H(p,q) ({unit})", fmt(ds.h_pq))
        m[3].metric(f"KL(p‖q) ({unit})", fmt(ds.kl_pq))
        m[4].metric(f"KL(q‖p) ({unit})", fmt(ds.kl_qp))
        st.latex(rf"\mathrm{{KL}}(p\|q) = H(p,q) - H(p) = {fmt(ds.h_pq)} - {ds.h_p:.3f} = {fmt(ds.kl_pq)}\ \text{{{unit}}}")
        st.latex(rf"\mathrm{{KL}}(q\|p) = H(q,p) - H(q) = {fmt(ds.h_qp)} - {ds.h_q:.3f} = {fmt(ds.kl_qp)}\ \text{{{unit}}}")
        st.caption("KL is not symmetric. Set q(snow) = 0 while p(snow) > 0 and KL(p‖q) becomes infinite: "
                   "q gives zero probability to an outcome that p produces.")

    # ---------------------------------------------------------------- 2. two Gaussians
    st.header("2 · KL between two Gaussians")
    st.markdown("For Gaussians the KL has a closed form; a Monte Carlo average of log q(z) − log p(z) "
                "over samples z from q agrees with it within its standard error. Units: nats.")
    c = st.columns(4)
    mu1 = c[0].slider("μ₁ (q)", -3.0, 3.0, 1.0, 0.1, key="theory_mu1")
    s1 = c[1].slider("σ₁ (q)", 0.1, 3.0, 0.5, 0.05, key="theory_s1")
    mu2 = c[2].slider("μ₂ (p)", -3.0, 3.0, step=0.1, key="theory_mu2")
    s2 = c[3].slider("σ₂ (p)", 0.1, 3.0, step=0.05, key="theory_s2")
    c = st.columns([2, 1, 1])
    n_mc = c[0].select_slider("Monte Carlo samples", [10, 100, 1000, 10000], 1000, key="theory_mc_n")
    seed_mc = c[1].number_input("seed", 0, 10_000, 0, key="theory_mc_seed")
    c[2].button("Set p = N(0, 1)", on_click=_set_standard_normal, key="theory_set_std")
    kl_exact = th.gaussian_kl_1d(mu1, s1, mu2, s2)
    mc = th.mc_gaussian_kl(mu1, s1, mu2, s2, int(n_mc), int(seed_mc))
    zg = np.linspace(-6, 6, 400)
    gauss_traces = [("q = N(μ₁, σ₁²)", th.normal_pdf(zg, mu1, s1), Q_COLOR),
                    ("p = N(μ₂, σ₂²)", th.normal_pdf(zg, mu2, s2), P_COLOR)]
    st.plotly_chart(density_figure(zg, gauss_traces), key="theory_fig_gauss")
    m = st.columns(4)
    m[0].metric("analytic KL(q‖p) (nats)", f"{kl_exact:.4f}")
    m[1].metric("Monte Carlo KL (nats)", f"{mc.estimate:.4f}")
    m[2].metric("its standard error (nats)", f"{mc.stderr:.4f}")
    m[3].metric("|MC − analytic| / SE", f"{abs(mc.estimate - kl_exact) / max(mc.stderr, 1e-12):.2f}")
    st.latex(r"\mathrm{KL}(q\|p) = \log\frac{\sigma_2}{\sigma_1}"
             r" + \frac{\sigma_1^2 + (\mu_1-\mu_2)^2}{2\sigma_2^2} - \frac12")
    st.latex(rf"= \log\frac{{{s2:.2f}}}{{{s1:.2f}}} + \frac{{{s1:.2f}^2 + ({mu1:.2f} - ({mu2:.2f}))^2}}"
             rf"{{2 \cdot {s2:.2f}^2}} - \frac12 = {kl_exact:.4f}\ \text{{nats}}")
    st.markdown("**The VAE's KL term** is the special case p = N(0, 1), summed over latent dimensions "
                "(press *Set p = N(0, 1)* and the two numbers agree):")
    st.latex(rf"\tfrac12(\mu^2 + \sigma^2 - 1 - \log\sigma^2) = \tfrac12({mu1:.2f}^2 + {s1:.2f}^2 - 1 - \log {s1:.2f}^2)"
             rf" = {th.vae_kl_term(mu1, s1):.4f}\ \text{{nats}}")

    # ---------------------------------------------------------------- 3. variational inference
    st.header("3 · Variational inference in one picture")
    target = th.VITarget()
    a, s = target.weights, target.noise_std
    st.markdown(
        rf"Prior $p(z)=\mathcal N(0,1)$; the 'decoder' cannot tell z from −z: "
        rf"$p(x|z) = {a[0]}\,\mathcal N(x; z, {s}^2) + {a[1]}\,\mathcal N(x; -z, {s}^2)$. We observe x = {target.x}, "
        "so the true posterior p(z|x) is bimodal and log p(x) is known exactly. A Gaussian q cannot match it; "
        "for any q, **ELBO + KL(q‖p(z|x)) = log p(x)**, so raising the ELBO is the same as pulling q towards "
        "the posterior. The VAE's encoder does this for every image at once."
    )
    c = st.columns(2)
    q_mu = c[0].slider("μ of q", -4.0, 4.0, step=0.01, key="theory_q_mu")
    q_sigma = c[1].slider("σ of q", 0.05, 3.0, step=0.01, key="theory_q_sigma")
    elbo = float(th.elbo_1d(target, q_mu, q_sigma))
    kl_q = float(th.kl_q_posterior(target, q_mu, q_sigma))
    log_px = target.log_px()
    m = st.columns(3)
    m[0].metric("ELBO (nats)", f"{elbo:.4f}")
    m[1].metric("KL(q ‖ p(z|x)) (nats)", f"{kl_q:.4f}")
    m[2].metric("log p(x) (nats)", f"{log_px:.4f}")
    st.latex(rf"\underbrace{{{elbo:.4f}}}_{{\text{{ELBO}}}} + \underbrace{{{kl_q:.4f}}}_{{\mathrm{{KL}}(q\|p(z|x))}}"
             rf" = {elbo + kl_q:.4f} = \log p(x) = {log_px:.4f}\ \text{{nats}}")
    zv = np.linspace(-4.5, 4.5, 400)
    post = target.posterior_pdf(zv)
    vi_traces = [("p(z|x), true posterior", post, P_COLOR),
                 ("q(z) = N(μ, σ²)", th.normal_pdf(zv, q_mu, q_sigma), Q_COLOR)]
    st.plotly_chart(density_figure(zv, vi_traces), key="theory_fig_vi")

    st.subheader("Fit q by stochastic gradient ascent on the ELBO")
    st.markdown("Each step samples z = μ + σ·ε (section 4), estimates the ELBO and steps along its gradient. "
                "The fit starts from the sliders above and leaves them at the fitted q.")
    c = st.columns(3)
    c[0].slider("steps", 10, 300, 100, 10, key="theory_fit_steps")
    c[1].select_slider("learning rate", [0.01, 0.02, 0.05, 0.1, 0.2], 0.05, key="theory_fit_lr")
    c[2].select_slider("samples per step", [1, 2, 4, 8, 16, 64], 8, key="theory_fit_n")
    st.button("Fit q by SGD", on_click=_run_fit, key="theory_fit", type="primary")
    traj = st.session_state.get("theory_fit_result")
    if traj is not None:
        sd_end = math.exp(traj.log_sigma[-1])
        st.success(f"Fitted in {len(traj.mu) - 1} steps: ELBO {traj.elbo[0]:.3f} → {traj.elbo[-1]:.3f} nats "
                   f"(log p(x) = {log_px:.3f}); q = N({traj.mu[-1]:.2f}, {sd_end:.2f}²). Press ▶ to replay.")
        st.plotly_chart(fit_animation(traj, zv, post), key="theory_fig_anim")
        c = st.columns(2)
        c[0].plotly_chart(charts.sgd_curve(traj.elbo, traj.elbo_estimate, log_px, elbo_name="ELBO (exact)", estimate_name="estimate used",
                                           log_px_text="log p(x)", x_title="SGD step", y_title="ELBO (nats)"), key="theory_fig_curve")
        mus, lss, land = landscape()
        floor = np.maximum(land, log_px - 8)  # clip the far-off corners so the colours show the two maxima
        c[1].plotly_chart(charts.elbo_landscape(mus, lss, floor, traj.mu, traj.log_sigma, path_name="SGD path", colorbar_title="ELBO (nats)",
                                                title="ELBO landscape: one local maximum per mode", x_title="μ of q (latent units)",
                                                y_title="log σ of q (σ in latent units)"), key="theory_fig_landscape")

    # ---------------------------------------------------------------- 4. reparameterization trick
    st.header("4 · The reparameterization trick")
    st.markdown(
        r"Training needs $\partial_\mu\,\mathbb{E}_{z\sim\mathcal N(\mu,\sigma^2)}[f(z)]$. Writing **z = μ + σ·ε** "
        r"with $\varepsilon\sim\mathcal N(0,1)$ moves the randomness out of the parameters, so f can be "
        "differentiated along each sample (*reparameterized*). The *score-function* estimator "
        r"$f(z)\,\partial_\mu \log q(z)$ needs no derivative of f but is far noisier. "
        "The VAE uses the first, with f = the decoder's log p(x|z)."
    )
    c = st.columns(4)
    f_name = c[0].selectbox("f(z)", list(th.GRAD_FUNCTIONS), key="theory_f")
    r_mu = c[1].slider("μ", -2.0, 2.0, 1.0, 0.1, key="theory_rep_mu")
    r_sigma = c[2].slider("σ", 0.1, 2.0, 1.0, 0.05, key="theory_rep_sigma")
    r_n = c[3].select_slider("samples", [100, 1000, 10000], 1000, key="theory_rep_n")
    g = th.grad_estimators(f_name, r_mu, r_sigma, int(r_n), seed=0)
    rep, sco = th.summarize(g.reparam), th.summarize(g.score)
    fl = th.GRAD_FUNCTIONS[f_name].latex
    st.latex(rf"z = \mu + \sigma\epsilon = {r_mu:.2f} + {r_sigma:.2f}\,\epsilon,\qquad "
             rf"\frac{{\partial}}{{\partial\mu}}\mathbb{{E}}[{fl}] = {g.exact:.4f}\ \text{{(exact)}}")
    st.latex(rf"\underbrace{{f'(\mu+\sigma\epsilon)}}_{{\text{{reparameterized}}}}: "
             rf"{rep.mean:.4f} \pm {rep.stderr:.4f},\qquad "
             rf"\underbrace{{f(z)\,\frac{{z-\mu}}{{\sigma^2}}}}_{{\text{{score function}}}}: "
             rf"{sco.mean:.4f} \pm {sco.stderr:.4f}")
    m = st.columns(3)
    m[0].metric("variance, reparameterized", f"{rep.var:.4g}")
    m[1].metric("variance, score function", f"{sco.var:.4g}")
    m[2].metric("variance ratio (score / reparam)", f"{sco.var / max(rep.var, 1e-300):.1f}×")
    st.plotly_chart(charts.gradient_histograms(g.reparam, g.score, g.exact, names=("reparameterized", "score function"), exact_text="exact",
                                               x_title="one-sample gradient (units of f per unit μ)", y_title="count (samples)"),
                    key="theory_fig_grad")


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
