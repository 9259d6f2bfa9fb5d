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
from lab_pages.plot import plot
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


def information_adds_section(base: float, u: str) -> None:
    """Information of two independent events adds (it is not a product), and falls as probability rises."""
    st.subheader(_("Information adds over independent events"))
    st.markdown(
        _(
            "If A and B are independent, P(A and B) = P(A)·P(B), and the information of seeing both is the sum "
            "I(A) + I(B): that is why information is a logarithm. It falls as the probability rises, to 0 for a "
            "sure event; it is neither proportional nor inversely proportional to p (halving p adds one bit)."
        )
    )
    c = st.columns(2)
    p1 = c[0].slider("P(A)", 0.01, 1.0, 0.5, 0.01, key="theory_info_p1")
    p2 = c[1].slider("P(B)", 0.01, 1.0, 0.25, 0.01, key="theory_info_p2")
    r = th.information_adds(p1, p2, base)
    both = _("A and B")
    st.latex(
        rf"I(p_A p_B) = -\log({p1:.2f}\cdot{p2:.2f}) = {r.info_joint:.3f}"
        rf" = \underbrace{{{r.info_p1:.3f}}}_{{I(p_A)}} + \underbrace{{{r.info_p2:.3f}}}_{{I(p_B)}}"
        rf" = {r.info_sum:.3f}\ \text{{{u}}}"
    )
    plot(
        st,
        charts.information_curve(
            r.p_grid,
            r.info_grid,
            [("A", r.p1, r.info_p1), ("B", r.p2, r.info_p2), (both, r.p_joint, r.info_joint)],
            curve_name="I(p) = −log p",
            x_title=_("probability p (log scale)"),
            y_title=_("information ({unit})").format(unit=u),
        ),
        key="theory_fig_info_adds",
        name="theory-information-adds",
    )


def conditional_entropy_section(p_x, base: float, u: str) -> None:
    """H(X|Y) for the weather X of section 1 and a forecast Y that is wrong with a chosen probability."""
    st.subheader(_("Conditional entropy and mutual information"))
    st.markdown(
        _(
            "Let X be the weather drawn from p above and Y a forecast of it that is wrong with probability e (then "
            "naming one of the other outcomes at random). The **conditional entropy** H(X|Y) is the uncertainty "
            "about X left once Y is known; the **mutual information** I(X; Y) = H(X) − H(X|Y) is what Y tells "
            "about X. They are two different numbers: a useless forecast leaves H(X|Y) = H(X) and I = 0."
        )
    )
    noise = st.slider(
        _("e, probability that the forecast is wrong"), 0.0, 1.0, 0.2, 0.05, key="theory_cond_e"
    )
    r = th.conditional_entropy(th.noisy_report_joint(p_x, noise), base)
    m = st.columns(4)
    in_unit = _("{quantity} ({unit})")
    m[0].metric(in_unit.format(quantity="H(X)", unit=u), f"{r.h_x:.3f}")
    m[1].metric(in_unit.format(quantity="H(X|Y)", unit=u), f"{r.h_x_given_y:.3f}")
    m[2].metric(in_unit.format(quantity="I(X; Y)", unit=u), f"{r.mutual_info:.3f}")
    m[3].metric(in_unit.format(quantity="H(X, Y)", unit=u), f"{r.h_xy:.3f}")
    st.latex(
        rf"H(X|Y) = \sum_y p(y)\,H(X\,|\,Y{{=}}y) = {r.h_x_given_y:.3f} = H(X,Y) - H(Y) = {r.h_xy:.3f} - "
        rf"{r.h_y:.3f}\ \text{{{u}}}"
    )
    st.latex(
        rf"I(X;Y) = H(X) - H(X|Y) = {r.h_x:.3f} - {r.h_x_given_y:.3f} = {r.mutual_info:.3f}\ \text{{{u}}}"
    )
    st.caption(
        _(
            "In a VAE, X is the image and Y the code z: I(x; z) is how much the code says about the image. A "
            "collapsed VAE drives it to 0; the ELBO over training page measures it for the current model."
        )
    )


def likelihood_section() -> None:
    """One binomial formula read as a probability of the data and as a likelihood of the parameter."""
    st.subheader(_("Likelihood is not probability"))
    st.markdown(
        _(
            "p(k | θ) = C(n, k) θᵏ (1 − θ)ⁿ⁻ᵏ is the probability of k heads in n tosses of a coin that lands heads "
            "with probability θ. With θ fixed it is a distribution over the data k and sums to 1. With the data k "
            "fixed it is the **likelihood** L(θ) of the parameter: not a distribution over θ, its integral is "
            "1/(n + 1) whatever k is. Maximum likelihood picks the θ where L peaks, k/n."
        )
    )
    c = st.columns(3)
    n = c[0].slider(_("n, tosses"), 1, 40, 10, key="theory_lik_n")
    k = c[1].slider(_("k, heads observed"), 0, 40, 7, key="theory_lik_k")
    theta = c[2].slider("θ", 0.0, 1.0, 0.5, 0.01, key="theory_lik_theta")
    k = min(k, n)
    r = th.likelihood_vs_probability(n, k, theta)
    plot(
        st,
        charts.likelihood_probability(
            r.ks,
            r.pmf,
            r.thetas,
            r.likelihood,
            r.k,
            r.theta,
            panel_titles=(
                _("probability of the data, θ = {theta:.2f}").format(theta=r.theta),
                _("likelihood of θ, k = {k}").format(k=r.k),
            ),
            pmf_name="p(k | θ)",
            likelihood_name="L(θ)",
            k_title=_("k, heads (count)"),
            theta_title=_("θ, probability of heads"),
            pmf_title=_("probability"),
            likelihood_title=_("likelihood (no unit)"),
        ),
        key="theory_fig_likelihood",
        name="theory-likelihood",
    )
    m = st.columns(3)
    m[0].metric(_("sum over k of p(k | θ)"), f"{r.pmf_sum:.4f}")
    m[1].metric(_("integral of L(θ) over θ"), f"{r.likelihood_integral:.4f}")
    m[2].metric("1/(n + 1)", f"{r.likelihood_integral_exact:.4f}")
    st.caption(_("L peaks at θ = k/n = {mle:.2f}, the maximum-likelihood estimate.").format(mle=r.mle))


def kl_steps_section(mu: float, sigma: float) -> None:
    """KL(N(μ, σ²) ‖ N(0, 1)) derived line by line, each line with its value for q's sliders."""
    st.subheader(_("The closed form, step by step"))
    st.markdown(
        _(
            "Where the closed form comes from, for q = N(μ₁, σ₁²) of the sliders and p = N(0, 1). Each line's value "
            "is computed from that line's own expression; they agree, as a derivation must."
        )
    )
    s = th.gaussian_kl_steps(mu, sigma)
    values = dict(s.lines())
    nats = _("nats")
    st.latex(
        r"\begin{aligned}"
        rf"\mathrm{{KL}}(q\|p) &= \mathbb{{E}}_q[\log q(z)] - \mathbb{{E}}_q[\log p(z)] \\"
        r"&= \mathbb{E}_q\Big[-\tfrac12\log(2\pi\sigma^2) - \tfrac{(z-\mu)^2}{2\sigma^2}\Big]"
        r" - \mathbb{E}_q\Big[-\tfrac12\log 2\pi - \tfrac{z^2}{2}\Big] \\"
        rf"&= \underbrace{{-\tfrac12\log(2\pi\sigma^2) - \tfrac12}}_{{{s.e_log_q:.4f}}}"
        rf" - \underbrace{{\big(-\tfrac12\log 2\pi - \tfrac12(\mu^2+\sigma^2)\big)}}_{{{s.e_log_p:.4f}}}"
        rf" = {values['definition']:.4f} \\"
        rf"&= -\tfrac12\log\sigma^2 - \tfrac12 + \tfrac12(\mu^2+\sigma^2) = {values['log_2pi_cancelled']:.4f} \\"
        rf"&= \tfrac12(\mu^2 + \sigma^2 - 1 - \log\sigma^2) = {values['closed_form']:.4f}\ \text{{{nats}}}"
        r"\end{aligned}"
    )
    st.caption(
        _(
            "Line 3 uses two moments of q: E_q[(z − μ)²] = σ² = {m2c:.4f} and E_q[z²] = μ² + σ² = {m2:.4f}. "
            "log 2π appears in both expectations and cancels."
        ).format(m2c=s.second_moment_centred, m2=s.second_moment)
    )


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
            "With a Bernoulli decoder on binary pixels the VAE's reconstruction term is a negative cross-entropy "
            "(on grey pixels it is not: see Pitfalls (b)); its regulariser is a KL."
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
        plot(st, fig, key="theory_fig_discrete", name="theory-kl-discrete")
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
        conditional_entropy_section(ds.p, base, u)
    information_adds_section(base, u)
    likelihood_section()

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
    plot(
        st,
        charts.densities(zg, gauss_traces, x_title=_(Z_AXIS), y_title=_(DENSITY_AXIS)),
        key="theory_fig_gauss",
        name="theory-kl-gaussians",
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
    kl_steps_section(mu1, s1)

    # ---------------------------------------------------------------- 3. reparameterization trick
    st.header(_("3 · The reparameterization trick"))
    st.markdown(
        _(
            r"Training needs $\partial_\mu\,\mathbb{E}_{z\sim\mathcal N(\mu,\sigma^2)}[f(z)]$. Writing **z = μ + σ·ε** "
            r"with $\varepsilon\sim\mathcal N(0,1)$ puts all the randomness in ε, whose distribution does not depend "
            "on μ or σ: each sample z becomes a differentiable function of μ and σ, and f can be differentiated "
            "through it (the *reparameterized* estimator). The *score-function* estimator "
            r"$f(z)\,\partial_\mu \log q(z)$ needs no derivative of f. It is usually much noisier, but that is "
            "common experience, not a theorem: how much depends on f, μ and σ, and the variances below are measured "
            "for the f you pick. The VAE needs this only for its reconstruction term, with f = the decoder's "
            "log p(x|z); the KL to the prior has a closed form (section 2) and is differentiated as it stands."
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
    st.caption(
        _(
            "Measured on {n} samples of this f, μ and σ; the ratio depends on all three (move μ and σ to see it "
            "change). For a linear f the reparameterized estimate would have no variance at all."
        ).format(n=int(r_n))
    )
    plot(
        st,
        charts.gradient_histograms(
            g.reparam,
            g.score,
            g.exact,
            names=(rep_name, sco_name),
            exact_text=exact,
            x_title=_("gradient estimate from one sample (units of f per unit of μ)"),
            y_title=_("count (samples)"),
        ),
        key="theory_fig_grad",
        name="theory-gradient-estimators",
    )


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
