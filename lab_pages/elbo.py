"""ELBO, term by term: log p(x) = E_q[log p(x|z)] - KL(q(z|x)||p(z)) + KL(q(z|x)||p(z|x)), for one image.

The same identity over training and on the test set is lab_pages/elbo_training.py. A thin page: every number
comes from vae_core.identity (built on vae_core.elbo), every figure from lab_pages.charts. Nats per image.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from lab_pages import charts, code_view, state
from lab_pages.i18n import N_, _, error_text
from lab_pages.images import image_picker, pixels_key, to_image, upscale
from lab_pages.model_store import load_shipped, require_vae_data, shipped_z2_vae
from lab_pages.plot import plot
from lab_pages.style import ELBO_COLOR, KL_COLOR, RECON_COLOR
from vae_core import identity as idn
from vae_core.checkpoint import CheckpointError

NATS = N_("nats per image")
K_MAX = 5000  # importance samples drawn per image (the K slider picks how many of them count)
SEED = 0
REPEATS = (
    4  # independent runs of K_MAX samples for the mean ± standard error (~0.3 s each for a 784-400 decoder)
)


@st.cache_data(max_entries=64, show_spinner=False)  # main() shows a translated spinner
def image_report(key: str, _model, pixels: str, _x) -> idn.ImageReport:
    """Every term of the identity for one image (cached by model key and pixels)."""
    return idn.image_report(_model, _x, k_max=K_MAX, seed=SEED)


@st.cache_data(max_entries=64, show_spinner=False)
def repeats(key: str, _model, pixels: str, _x) -> idn.IWAERepeats:
    """log p̂_K(x) at every K of the slider over REPEATS independent runs: mean and standard error (cached)."""
    return idn.iwae_repeats(_model, _x, idn.K_CHOICES, repeats=REPEATS, seed=SEED)


def signed_delta(value: float, vs: str, digits: int = 2) -> str:
    """A metric's delta that starts with its signed number in every language ("-1.23 vs ELBO"): Streamlit draws a
    red ↓ for a delta string that starts with "-", so a translation must not move the number (it did in Chinese)."""
    return f"{value:+.{digits}f} {vs}"


@st.cache_data(max_entries=32, show_spinner=False)
def posterior(key: str, _model, pixels: str, _x) -> idn.PosteriorGrid:
    """The true posterior of one image on a 200-point grid per latent dim (z = 1 or 2 only)."""
    return idn.posterior_grid(_model, _x, n=200)


def make_z2_current(name: str) -> None:
    """Callback: the shipped z=2 VAE ``name`` becomes the current model (a failure is shown on the next run)."""
    try:
        state.set_current_model(load_shipped(name))
        state.set_picked("shipped", name)
    except CheckpointError as exc:
        st.session_state["elbo_error"] = _("Could not load {name}: {reason}").format(
            name=name, reason=error_text(exc)
        )


def num(v: float) -> str:
    """A term for a formula: negatives in parentheses, so that "a − (−b)" reads right."""
    return f"({v:.2f})" if v < 0 else f"{v:.2f}"


def main() -> None:
    st.title(_("🧮 ELBO, term by term"))
    lm, ds = require_vae_data(
        _(
            "this page takes the ELBO apart into reconstruction and KL, and only a VAE has q(z|x), "
            "a prior and a KL term"
        )
    )
    model = lm.model
    cfg = lm.config
    st.latex(
        rf"\log p(x) = \underbrace{{\color{{{RECON_COLOR}}}{{\mathbb{{E}}_{{q(z|x)}}[\log p(x|z)]}} - "
        rf"\color{{{KL_COLOR}}}{{\mathrm{{KL}}(q(z|x)\,\|\,p(z))}}}}_{{\color{{{ELBO_COLOR}}}{{\mathrm{{ELBO}}}}}} + "
        r"\underbrace{\mathrm{KL}(q(z|x)\,\|\,p(z|x))}_{\ge 0} \;\ge\; \mathrm{ELBO}"
    )
    st.caption(
        _(
            "Model: **{label}** — {summary}. Log-likelihoods under {likelihood}, {units}. Training curves and the test "
            "set: the *ELBO over training* page."
        ).format(label=lm.label, summary=lm.summary(), likelihood=lm.likelihood, units=_(NATS))
    )
    error = st.session_state.pop("elbo_error", None)  # the last switch's failure, shown once
    if error:
        st.error(error)

    st.header(_("1. One image: every term, with numbers"))
    x, caption = image_picker(ds, "elbo")
    k = st.select_slider(_("K, importance samples"), options=idn.K_CHOICES, value=1000, key="elbo_k")
    px = pixels_key(x)
    with st.spinner(_("Drawing {k} samples from q(z|x)…").format(k=K_MAX)):
        r = image_report(lm.key, model, px, x)
    with st.spinner(_("Repeating the estimate {n} times…").format(n=REPEATS)):
        rr = repeats(lm.key, model, px, x)
    k_mean, k_se = rr.at(k)
    g = None  # the exact view needs a latent of 1 or 2 dims
    if cfg.latent_dim in (1, 2):
        with st.spinner(_("Integrating p(x|z)p(z) over a 200×200 grid…")):
            g = posterior(lm.key, model, px, x)
    exact = g.log_px if g is not None else None
    a, b, m = st.columns([1, 1, 4])
    h = ds.image_shape[1]
    a.image(upscale(to_image(r.x, ds.image_shape), h, 112), caption=caption, output_format="PNG")
    b.image(
        upscale(to_image(r.x_recon, ds.image_shape), h, 112),
        caption=_("reconstruction (decode μ)"),
        output_format="PNG",
    )
    mc = m.columns(3)
    mc[0].metric(
        "E_q[log p(x|z)]",
        f"{r.recon:.2f}",
        help=_("± {se:.3f} (Monte Carlo, {n} samples)").format(se=r.recon_se, n=r.k_max),
    )
    mc[1].metric("KL(q(z|x)‖p(z))", f"{r.kl:.2f}", help=_("analytic"))
    mc[2].metric("ELBO", f"{r.elbo:.2f}")
    mc = m.columns(3)
    mc[0].metric(
        f"log p̂_K(x), K={k}",
        f"{r.log_px_hat(k):.2f}",
        delta=signed_delta(r.gap(k), _("vs ELBO")),
        help=_(
            "One run of K samples (the formula below). Over {n} independent runs: {mean:.2f} ± {se:.2f} (mean ± "
            "standard error)."
        ).format(n=REPEATS, mean=k_mean, se=k_se),
    )
    mc[1].metric(
        _("KL(q‖p(z|x)), lower estimate"),
        f"{r.gap(k):.3f}",
        help=_(
            "log p̂_K(x) − ELBO. For a finite K it is biased low, because E[log p̂_K(x)] ≤ log p(x): a lower "
            "estimate of the gap, which tightens as K grows."
        ),
    )
    mc[2].metric(
        _("exact log p(x)"),
        f"{exact:.2f}" if exact is not None else _("n/a"),
        help=_("quadrature over z (latent dimension d = 1 or 2 only)")
        if exact is not None
        else _("needs latent dimension d = 1 or 2: see section 2"),
    )
    lower_w = _("on average")  # under the gap's brace: E[log p̂_K] − ELBO ≤ KL(q‖p(z|x))
    st.latex(
        rf"\underbrace{{{r.log_px_hat(k):.2f}}}_{{\log \hat p_{{K={k}}}(x)}} = "
        rf"\underbrace{{\color{{{RECON_COLOR}}}{{{num(r.recon)}}}}}_{{\mathbb{{E}}_q[\log p(x|z)]}} - "
        rf"\underbrace{{\color{{{KL_COLOR}}}{{{r.kl:.2f}}}}}_{{\mathrm{{KL}}(q\|p(z))}} + "
        rf"\underbrace{{{r.gap(k):.2f}}}_{{\le\,\mathrm{{KL}}(q\|p(z|x))\ \text{{{lower_w}}}}}"
    )
    if g is not None:
        exact_w, resid_w = _("exact"), _("residual")  # the words inside \text{…}
        st.latex(
            rf"\underbrace{{{g.log_px:.2f}}}_{{\log p(x)\ \text{{{exact_w}}}}} = {num(g.recon_exact)} - {g.kl:.2f} + "
            rf"\underbrace{{{g.kl_q_post:.3f}}}_{{\int q \log \frac{{q}}{{p(z|x)}}\,dz}}"
            rf"\quad(\text{{{resid_w} }} {round(g.residual, 4) + 0.0:+.4f})"
        )
    ks = idn.k_grid(r.k_max)
    mean, se = rr.mean, rr.se
    plot(
        st,
        charts.iwae_curve(
            ks,
            r.iwae[ks - 1],
            idn.K_CHOICES,
            mean,
            se,
            r.elbo,
            k,
            r.log_px_hat(k),
            exact,
            run_name=_("log p̂_K(x), one run of the first K samples"),
            mean_name=_("mean of log p̂_K(x) over {n} independent runs").format(n=REPEATS),
            band_name=_("± 1 standard error of that mean"),
            above_name=_("mean above the exact log p(x): noise"),
            elbo_text=f"ELBO {r.elbo:.2f}",
            k_text=_("log p̂_K(x) at K={k}: {value:.2f}").format(k=k, value=r.log_px_hat(k)),
            exact_text=_("exact log p(x) {value:.2f}").format(value=exact) if exact is not None else "",
            x_title=_("K, importance samples (log scale)"),
            y_title=_("log-likelihood ({units})").format(units=_(NATS)),
        ),
        key="elbo_iwae_chart",
        name="iwae-vs-k",
        model=lm.label,
    )
    st.caption(
        _(
            "log p̂_K(x) = log (1/K) Σ_k p(x, z_k)/q(z_k|x) with z_k ~ q(z|x). K=1 is a one-sample ELBO; "
            "as K grows the estimate rises towards log p(x). Since E[log p̂_K(x)] ≤ log p(x) for every finite K, "
            "log p̂_K − ELBO is a lower estimate of KL(q(z|x)‖p(z|x)), biased low, and the bias shrinks as K grows. "
            "The band is ± 1 standard error of the mean over {n} independent runs: the trend with K is what the "
            "mean shows; one run wanders inside the noise."
        ).format(n=REPEATS)
    )
    if exact is not None and k_mean > exact:
        st.warning(
            _(
                "At K={k} the mean of {n} runs, {mean:.3f} ± {se:.3f}, lies above the exact log p(x) = {exact:.3f} "
                "(by {z:.1f} standard errors). That is noise, not a finding: E[log p̂_K(x)] ≤ log p(x) for every K, "
                "and at this K the estimator's bias is smaller than its spread; more runs shrink the standard error."
            ).format(
                k=k, n=REPEATS, mean=k_mean, se=k_se, exact=exact, z=(k_mean - exact) / k_se if k_se else 0.0
            )
        )

    st.header(_("2. The true posterior p(z|x) (latent dimension d = 1 or 2)"))
    if g is not None:
        left, right = st.columns([3, 2])
        if g.axes.shape[0] == 1:  # z=1: densities on a line
            fig = charts.posterior_line(
                g.axes[0],
                g.density,
                g.q_density(),
                posterior_name=_("true posterior p(z|x)"),
                q_name="q(z|x)",
                x_title=_("z (latent units)"),
                y_title=_("density (per unit z)"),
            )
        else:
            ells = [
                (f"q(z|x) {n}σ", *idn.ellipse(g.mu, g.sigma, n), dash)
                for n, dash in ((1, "solid"), (2, "dash"))
            ]
            fig = charts.posterior_map(
                g.axes[0],
                g.axes[1],
                g.density,
                ells,
                g.mu,
                *g.view_box(),
                colorbar_title="p(z|x)",
                mu_name="μ",
                x_title=_("z₁ (latent units)"),
                y_title=_("z₂ (latent units)"),
            )
        plot(left, fig, key="elbo_posterior_chart", name="posterior-grid", model=lm.label)
        right.metric(
            _("exact log p(x) (quadrature, {grid})").format(grid="×".join(["200"] * cfg.latent_dim)),
            f"{g.log_px:.3f}",
        )
        vs_exact = _("vs exact")
        right.metric(
            _("log p̂_K(x), K={k}, mean of {n} runs").format(k=k, n=REPEATS),
            f"{k_mean:.3f} ± {k_se:.3f}",
            delta=signed_delta(k_mean - g.log_px, vs_exact, 3),
            help=_("mean ± standard error; one run: {value:.3f}").format(value=r.log_px_hat(k)),
        )
        right.metric("ELBO", f"{r.elbo:.3f}", delta=signed_delta(r.elbo - g.log_px, vs_exact, 3))
        right.metric(
            _("KL(q‖p(z|x)) by quadrature"),
            f"{g.kl_q_post:.3f}",
            help=_("the estimate at K={k}: {value:.3f}").format(k=k, value=r.gap(k)),
        )
        right.caption(
            _(
                "∫p(z|x)dz on the grid = {mass:.4f}. Green: q(z|x)'s 1σ and 2σ ellipses (d = 2). Where q and the true "
                "posterior differ in shape, the ELBO pays exactly KL(q‖p(z|x))."
            ).format(mass=g.mass)
        )
    else:
        st.info(
            _(
                "This model has d = {d} latent dimensions. The true posterior p(z|x) = p(x|z)p(z)/p(x) needs "
                "p(x) = ∫p(x|z)p(z)dz; a 200-point grid per dimension is 200² = 40,000 decoder calls for d = 2 but "
                "200^{d} ≈ 10^{power:.0f} for d = {d}: out of reach. In high dimensions p(x) is estimated by sampling "
                "instead: importance sampling (section 1), annealed importance sampling or MCMC. None of them is exact, "
                "so this exact view needs d = 1 or 2."
            ).format(d=cfg.latent_dim, power=cfg.latent_dim * np.log10(200))
        )
        z2 = shipped_z2_vae(ds.name)
        if z2 is not None:
            z2_name, z2_dataset = z2
            if z2_dataset == ds.name:
                label = _("Switch to the shipped VAE with d = 2 ({name})").format(name=z2_name)
            else:
                label = _("Switch to the shipped VAE with d = 2 ({name}, on {dataset})").format(
                    name=z2_name, dataset=z2_dataset
                )
            st.button(label, key="elbo_use_z2", on_click=make_z2_current, args=(z2_name,), type="primary")

    st.header(_("3. The KL term: formula vs Monte Carlo"))
    mc_n = st.select_slider(
        _("Monte Carlo samples"), options=[10, 100, 1000, 10_000, 100_000], value=1000, key="elbo_mc_n"
    )
    est, se = idn.kl_monte_carlo(r.mu, r.sigma, mc_n, seed=SEED + 1)
    nats_w = _("nats")  # inside \text{…}
    terms = [rf"({num(mu)}^2 + {s:.2f}^2 - 1 - \log {s:.2f}^2)" for mu, s in zip(r.mu, r.sigma)]
    shown = terms if len(terms) <= 4 else [*terms[:3], r"\cdots", terms[-1]]
    st.latex(
        r"\begin{aligned}\mathrm{KL}(q(z|x)\,\|\,p(z)) &= \tfrac12\sum_{j=1}^{"
        + str(cfg.latent_dim)
        + r"} (\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2) \\ &= \tfrac12\big["
        + r" \\ &\qquad + ".join(shown)
        + rf"\big] \\ &= \color{{{KL_COLOR}}}{{{r.kl:.3f}}}\ \text{{{nats_w}}}\end{{aligned}}"
    )
    kc = st.columns(3)
    kc[0].metric(_("formula (analytic)"), f"{r.kl:.3f}")
    kc[1].metric(
        _("Monte Carlo, n={n:,}").format(n=mc_n),
        f"{est:.3f}",
        delta=_("± {se:.3f} std. error").format(se=se),
        delta_color="off",
        delta_arrow="off",
        help=_("mean of log q(z|x) − log p(z) over z ~ q(z|x)"),
    )
    kc[2].metric(
        _("difference"),
        f"{est - r.kl:+.3f}",
        delta=_("{n:+.1f} standard errors").format(n=(est - r.kl) / se),
        delta_color="off",
        delta_arrow="off",
    )
    st.divider()
    code_view.elbo_page(cfg, lm.metadata, k)  # this model and K as standalone PyTorch code


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
