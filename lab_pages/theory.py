"""Theory: information -> entropy -> cross-entropy -> KL -> the reparameterization trick.

Variational inference and the ELBO's derivation, on a 1-D model, are the Derivation page's
(lab_pages/derivation.py). A thin page: every number comes from vae_core.theory, every figure from
lab_pages.charts; this script only reads widgets and draws, in the session's language (lab_pages.i18n).
"""

import math

import numpy as np
import streamlit as st

from lab_pages import charts
from lab_pages.i18n import N_, _
from lab_pages.style import P_COLOR, Q_COLOR
from vae_core import theory as th

OUTCOMES = [N_("sun"), N_("cloud"), N_("rain"), N_("snow")]  # translated where drawn
UNITS = {"bits": N_("bits"), "nats": N_("nats")}  # the radio's value -> its label
Z_AXIS = N_("z (latent units)")
DENSITY_AXIS = N_("density (per unit z)")
P_DEFAULTS = [4, 2, 1, 1]  # the sliders' starting weights of p and q, one per outcome
Q_DEFAULTS = [1, 2, 2, 3]


def fmt(v: float) -> str:
    """3-decimal number, or the infinity sign."""
    return "∞" if math.isinf(v) else f"{v:.3f}"


def _set_standard_normal() -> None:
    """Callback: p becomes N(0, 1), the VAE's prior."""
    st.session_state["theory_mu2"] = 0.0
    st.session_state["theory_s2"] = 1.0


def main() -> None:
    # Widgets that callbacks move get their defaults here, not via value= (Streamlit warns on both).
    st.session_state.setdefault("theory_mu2", 0.0)
    st.session_state.setdefault("theory_s2", 1.0)
    nats = _("nats")
    st.title(_("Theory: the ideas under the ELBO"))
    st.markdown(
        _(
            r"A VAE maximises the **ELBO** $=\mathbb{E}_q[\log p(x|z)] - \mathrm{KL}(q(z|x)\,\|\,p(z))$. "
            "Each piece comes from an older idea: information and entropy, the KL divergence, and the "
            "reparameterization trick that lets us train it by gradient ascent. Variational inference and the "
            "ELBO derived line by line are on the next page, **Derivation**."
        )
    )

    # ---------------------------------------------------------------- 1. information and entropy
    st.header(_("1 · Information, entropy, cross-entropy, KL"))
    st.markdown(
        _(
            "An outcome of probability p carries **information** −log p: rare outcomes surprise more. "
            "**Entropy** H(p) is the average information. Coding outcomes from p with a code built for q "
            "costs the **cross-entropy** H(p,q); the excess H(p,q) − H(p) is **KL(p‖q)** ≥ 0. "
            "The VAE's reconstruction term is a (negative) cross-entropy and its regulariser is a KL."
        )
    )
    unit = st.radio(
        _("Unit"), list(UNITS), format_func=lambda k: _(UNITS[k]), horizontal=True, key="theory_unit"
    )
    base = 2.0 if unit == "bits" else math.e
    u = _(UNITS[unit])
    names = [_(o) for o in OUTCOMES]
    cols = st.columns(len(OUTCOMES))
    p_w = []  # unnormalised weights, one per outcome
    q_w = []
    for i, name in enumerate(names):
        p_w.append(cols[i].slider(f"p({name})", 0, 10, P_DEFAULTS[i], key=f"theory_p_{i}"))
    for i, name in enumerate(names):
        q_w.append(cols[i].slider(f"q({name})", 0, 10, Q_DEFAULTS[i], key=f"theory_q_{i}"))
    try:
        ds = th.discrete_summary(np.array(p_w), np.array(q_w), base)
    except ValueError:  # every weight of p, or of q, is 0: the only error these sliders can cause
        st.error(
            _(
                "All weights of p, or of q, are 0: raise at least one weight of each (weights are normalised to sum to 1)."
            )
        )
        ds = None
    if ds is not None:
        fig = charts.discrete(
            names,
            ds.p,
            ds.q,
            ds.info_p,
            ds.h_p,
            panel_titles=(_("p and q (normalised weights)"), _("information −log p")),
            p_name="p",
            q_name="q",
            info_name="−log p",
            entropy_text=f"H(p) = {ds.h_p:.3f} {u}",
            x_title=_("outcome"),
            p_title=_("probability"),
            info_title=_("information ({unit})").format(unit=u),
        )
        st.plotly_chart(fig, key="theory_fig_discrete")
        m = st.columns(5)
        m[0].metric(_("H(p) in bits"), f"{th.entropy(ds.p, 2.0):.3f}")
        m[1].metric(_("H(p) in nats"), f"{th.entropy(ds.p, math.e):.3f}")
        # TRANSLATORS: a metric's label: {quantity} is a formula such as H(p,q), {unit} bits or nats.
        in_unit = _("{quantity} ({unit})")
        m[2].metric(in_unit.format(quantity="H(p,q)", unit=u), fmt(ds.h_pq))
        m[3].metric(in_unit.format(quantity="KL(p‖q)", unit=u), fmt(ds.kl_pq))
        m[4].metric(in_unit.format(quantity="KL(q‖p)", unit=u), fmt(ds.kl_qp))
        st.latex(
            rf"\mathrm{{KL}}(p\|q) = H(p,q) - H(p) = {fmt(ds.h_pq)} - {ds.h_p:.3f} = {fmt(ds.kl_pq)}\ \text{{{u}}}"
        )
        st.latex(
            rf"\mathrm{{KL}}(q\|p) = H(q,p) - H(q) = {fmt(ds.h_qp)} - {ds.h_q:.3f} = {fmt(ds.kl_qp)}\ \text{{{u}}}"
        )
        st.caption(
            _(
                "KL is not symmetric. Set q({snow}) = 0 while p({snow}) > 0 and KL(p‖q) becomes infinite: "
                "q gives zero probability to an outcome that p produces."
            ).format(snow=names[3])
        )

    # ---------------------------------------------------------------- 2. two Gaussians
    st.header(_("2 · KL between two Gaussians"))
    st.markdown(
        _(
            "For Gaussians the KL has a closed form; a Monte Carlo average of log q(z) − log p(z) "
            "over samples z from q agrees with it within its standard error. Units: nats."
        )
    )
    c = st.columns(4)
    mu1 = c[0].slider("μ₁ (q)", -3.0, 3.0, 1.0, 0.1, key="theory_mu1")
    s1 = c[1].slider("σ₁ (q)", 0.1, 3.0, 0.5, 0.05, key="theory_s1")
    mu2 = c[2].slider("μ₂ (p)", -3.0, 3.0, step=0.1, key="theory_mu2")
    s2 = c[3].slider("σ₂ (p)", 0.1, 3.0, step=0.05, key="theory_s2")
    c = st.columns([2, 1, 1])
    n_mc = c[0].select_slider(_("Monte Carlo samples"), [10, 100, 1000, 10000], 1000, key="theory_mc_n")
    seed_mc = c[1].number_input(_("seed"), 0, 10_000, 0, key="theory_mc_seed")
    c[2].button(_("Set p = N(0, 1)"), on_click=_set_standard_normal, key="theory_set_std")
    kl_exact = th.gaussian_kl_1d(mu1, s1, mu2, s2)
    mc = th.mc_gaussian_kl(mu1, s1, mu2, s2, int(n_mc), int(seed_mc))
    zg = np.linspace(-6, 6, 400)
    gauss_traces = [
        ("q = N(μ₁, σ₁²)", th.normal_pdf(zg, mu1, s1), Q_COLOR),
        ("p = N(μ₂, σ₂²)", th.normal_pdf(zg, mu2, s2), P_COLOR),
    ]
    st.plotly_chart(
        charts.densities(zg, gauss_traces, x_title=_(Z_AXIS), y_title=_(DENSITY_AXIS)), key="theory_fig_gauss"
    )
    m = st.columns(4)
    m[0].metric(_("analytic KL(q‖p) (nats)"), f"{kl_exact:.4f}")
    m[1].metric(_("Monte Carlo KL (nats)"), f"{mc.estimate:.4f}")
    m[2].metric(_("its standard error (nats)"), f"{mc.stderr:.4f}")
    m[3].metric(_("|MC − analytic| / SE"), f"{mc.standard_errors_from(kl_exact):.2f}")
    st.latex(
        r"\mathrm{KL}(q\|p) = \log\frac{\sigma_2}{\sigma_1} + \frac{\sigma_1^2 + (\mu_1-\mu_2)^2}{2\sigma_2^2} - \frac12"
    )
    st.latex(
        rf"= \log\frac{{{s2:.2f}}}{{{s1:.2f}}} + \frac{{{s1:.2f}^2 + ({mu1:.2f} - ({mu2:.2f}))^2}}"
        rf"{{2 \cdot {s2:.2f}^2}} - \frac12 = {kl_exact:.4f}\ \text{{{nats}}}"
    )
    st.markdown(
        _(
            "**The VAE's KL term** is the special case p = N(0, 1), summed over latent dimensions "
            "(press *Set p = N(0, 1)* and the two numbers agree):"
        )
    )
    st.latex(
        rf"\tfrac12(\mu^2 + \sigma^2 - 1 - \log\sigma^2) = \tfrac12({mu1:.2f}^2 + {s1:.2f}^2 - 1 - \log {s1:.2f}^2)"
        rf" = {th.vae_kl_term(mu1, s1):.4f}\ \text{{{nats}}}"
    )

    # ---------------------------------------------------------------- 3. reparameterization trick
    st.header(_("3 · The reparameterization trick"))
    st.markdown(
        _(
            r"Training needs $\partial_\mu\,\mathbb{E}_{z\sim\mathcal N(\mu,\sigma^2)}[f(z)]$. Writing **z = μ + σ·ε** "
            r"with $\varepsilon\sim\mathcal N(0,1)$ moves the randomness out of the parameters, so f can be "
            "differentiated along each sample (*reparameterized*). The *score-function* estimator "
            r"$f(z)\,\partial_\mu \log q(z)$ needs no derivative of f but is far noisier. "
            "The VAE uses the first, with f = the decoder's log p(x|z)."
        )
    )
    c = st.columns(4)
    f_name = c[0].selectbox("f(z)", list(th.GRAD_FUNCTIONS), key="theory_f")
    r_mu = c[1].slider("μ", -2.0, 2.0, 1.0, 0.1, key="theory_rep_mu")
    r_sigma = c[2].slider("σ", 0.1, 2.0, 1.0, 0.05, key="theory_rep_sigma")
    r_n = c[3].select_slider(_("samples"), [100, 1000, 10000], 1000, key="theory_rep_n")
    g = th.grad_estimators(f_name, r_mu, r_sigma, int(r_n), seed=0)
    rep = th.summarize(g.reparam)
    sco = th.summarize(g.score)
    fl = th.GRAD_FUNCTIONS[f_name].latex
    rep_name = _("reparameterized")
    sco_name = _("score function")
    exact = _("exact")
    st.latex(
        rf"z = \mu + \sigma\epsilon = {r_mu:.2f} + {r_sigma:.2f}\,\epsilon,\qquad "
        rf"\frac{{\partial}}{{\partial\mu}}\mathbb{{E}}[{fl}] = {g.exact:.4f}\ \text{{({exact})}}"
    )
    st.latex(
        rf"\underbrace{{f'(\mu+\sigma\epsilon)}}_{{\text{{{rep_name}}}}}: {rep.mean:.4f} \pm {rep.stderr:.4f},\qquad "
        rf"\underbrace{{f(z)\,\frac{{z-\mu}}{{\sigma^2}}}}_{{\text{{{sco_name}}}}}: {sco.mean:.4f} \pm {sco.stderr:.4f}"
    )
    m = st.columns(3)
    m[0].metric(_("variance, reparameterized"), f"{rep.var:.4g}")
    m[1].metric(_("variance, score function"), f"{sco.var:.4g}")
    m[2].metric(_("variance ratio (score / reparam)"), f"{th.variance_ratio(sco, rep):.1f}×")
    st.plotly_chart(
        charts.gradient_histograms(
            g.reparam,
            g.score,
            g.exact,
            names=(rep_name, sco_name),
            exact_text=exact,
            x_title=_("one-sample gradient (units of f per unit μ)"),
            y_title=_("count (samples)"),
        ),
        key="theory_fig_grad",
    )


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
