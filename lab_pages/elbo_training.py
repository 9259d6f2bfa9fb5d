"""The ELBO over training and on the test set: −ELBO as reconstruction + KL step by step, KL per latent
dimension, active units, and the test set's −ELBO, its terms and the importance-weighted NLL.

The one-image view of the same identity is the ELBO page (lab_pages/elbo.py). A thin page: every number
comes from vae_core.identity and vae_core.evaluate, every figure from lab_pages.charts. Nats per image.
"""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

from lab_pages import charts, state
from lab_pages.datasets import get_dataset
from lab_pages.i18n import N_, _, ngettext
from lab_pages.model_store import require_vae_data
from lab_pages.plot import file_stem, plot, run_name
from vae_core import compare as cmp
from vae_core import identity as idn
from vae_core.evaluate import ACTIVE_THRESHOLD, LOW_KL_THRESHOLD, dataset_metrics, low_kl_units
from vae_core.export import history_csv
from vae_core.train import History

NATS, STEPS = N_("nats per image"), N_("training step")  # marked; translated where drawn
WHY = N_(
    "this page follows the ELBO's reconstruction and KL terms, and only a VAE has q(z|x), a prior and a KL term"
)


@st.cache_data(max_entries=16, show_spinner=False)  # main() shows a translated spinner
def elbo_metrics(key: str, _model, ds_name: str, binarize: bool) -> dict:
    return dataset_metrics(_model, get_dataset(ds_name).x_test, binarize=binarize).to_dict()


SURGERY_SAMPLES = 2000  # Monte Carlo draws of (n, z ~ q(z|x_n)) for I(x; z)


@st.cache_data(max_entries=16, show_spinner=False)
def surgery(key: str, _model, ds_name: str) -> cmp.ELBOSurgery:
    """The average KL term of the test set split into I(x; z) + KL(q(z)‖p(z)) (cached by model key)."""
    return cmp.elbo_surgery(_model, get_dataset(ds_name).x_test, n_samples=SURGERY_SAMPLES, seed=0)


def draw_surgery(lm, ds_name: str, nats: str) -> None:
    """Section 3: the average KL = I(x; z) + KL(q(z)‖p(z)) for the current model, with the MC standard error."""
    st.header(_("3. The average KL, split in two"))
    st.markdown(
        _(
            "Averaged over the images, the KL term splits exactly into two parts (Hoffman & Johnson's “ELBO "
            "surgery”): the **mutual information** I(x; z) between an image and its code, and the KL from the "
            "**aggregate posterior** q(z) = (1/N) Σₙ q(z|xₙ) to the prior. The first is what the codes say about the "
            "images: a collapsed VAE drives it to 0. The second is how far the codes as a whole sit from N(0, I)."
        )
    )
    with st.spinner(_("Estimating I(x; z) on the test set…")):
        r = surgery(lm.key, lm.model, ds_name)
    st.latex(
        r"\underbrace{\mathbb{E}_x\,\mathrm{KL}(q(z|x)\,\|\,p(z))}_{"
        + f"{r.avg_kl:.2f}"
        + r"} = \underbrace{I(x;z)}_{"
        + f"{r.mutual_info:.2f} \\pm {r.se:.2f}"
        + r"} + \underbrace{\mathrm{KL}(q(z)\,\|\,p(z))}_{"
        + f"{r.kl_aggregate:.2f} \\pm {r.se:.2f}"
        + r"},\qquad I(x;z) \le \log N = "
        + f"{r.log_n:.2f}"
    )
    left, right = st.columns([3, 2])
    plot(
        left,
        charts.elbo_surgery(
            r.avg_kl,
            r.mutual_info,
            r.kl_aggregate,
            r.se,
            r.log_n,
            names=(_("average KL term"), _("mutual information I(x; z)"), "KL(q(z)‖p(z))"),
            categories=(_("the KL term"), _("its two parts")),
            ceiling_text=_("log N = {value:.2f}: the most I(x; z) can be").format(value=r.log_n),
            y_title=nats,
        ),
        key="elbo_surgery_chart",
        name="elbo-surgery",
        model=lm.label,
    )
    m = right.columns(2)
    m[0].metric(
        _("I(x; z) ({units})").format(units=nats),
        f"{r.mutual_info:.2f}",
        help=_("± {se:.3f} (std. error)").format(se=r.se),
    )
    m[1].metric(
        _("KL(q(z)‖p(z)) ({units})").format(units=nats),
        f"{r.kl_aggregate:.2f}",
        help=_("± {se:.3f} (std. error)").format(se=r.se),
    )
    right.caption(
        _(
            "{n_images:,} test images, {n_samples:,} Monte Carlo draws (seed 0). The average KL is exact (the closed "
            "form per image); I(x; z) is a Monte Carlo mean with the standard error shown, and KL(q(z)‖p(z)) is their "
            "difference. A direct estimate of KL(q(z)‖p(z)) from the same draws, {plain:.2f} ± {plain_se:.2f}, "
            "checks it. I(x; z) can never exceed log N: the N codes can tell at most which of the N images it was."
        ).format(
            n_images=r.n_images,
            n_samples=r.n_samples,
            plain=r.kl_aggregate_plain,
            plain_se=r.kl_aggregate_plain_se,
        )
    )


def live_trainer():
    """The Train page's trainer while it is running (watching it keeps the session's training alive), else None."""
    h = state.train_handle()
    tr = getattr(h, "trainer", None)
    if tr is None or getattr(tr, "state", None) != "running":
        return None
    if hasattr(h, "touch"):
        h.touch()
    return tr


def download_history(history, model: str, key: str) -> None:
    """A download button for the training history as CSV (vae_core.export.history_csv), written when pressed."""
    h = history if isinstance(history, History) else History.from_dict(history)
    st.download_button(
        _("Download the training history (CSV)"),
        data=functools.partial(history_csv, h),  # written when pressed, not on every run
        file_name=file_stem("history", model) + ".csv",
        mime="text/csv",
        key=key,
        on_click="ignore",
        icon=":material/download:",
        help=_("One row per training step, its test evaluation on the same row; nats per image."),
    )


def draw_curves(history, latent_dim: int, warmup: int, tm: dict, live: bool, model: str) -> None:
    """From a History (or its dict): stacked −ELBO, KL per dim now and over time, active units; ``model`` names the
    charts' PNG downloads and the CSV."""
    n = len((history if isinstance(history, dict) else history.to_dict()).get("step") or [])
    c = idn.history_curves(history, smooth=idn.smooth_window(n), latent_dim=latent_dim)
    if c is None:
        return st.info(
            _("No training history to draw (an upload without one, or training has not taken a step yet).")
        )
    nats, steps = _(NATS), _(STEPS)
    plot(
        st,
        charts.elbo_curves(
            c.step,
            c.recon_cost,
            c.kl,
            c.loss,
            c.beta,
            c.eval_step,
            c.test_neg_elbo,
            warmup,
            recon_name=_("reconstruction −E_q[log p(x|z)]"),
            kl_name="KL(q‖p(z))",
            objective_name=_("objective: recon + β·KL"),
            eval_name=_("test −ELBO"),
            beta_name=_("β (KL weight)"),
            warmup_text=_("KL warm-up"),
            x_title=steps,
            y_title=_("−ELBO = recon + KL ({units})").format(units=nats),
        ),
        key=f"elbo_curves_{live}",
        name="elbo-curves",
        model=model,
    )
    left, mid, right = st.columns(3)
    now = np.asarray(tm["kl_per_dim"]) if tm.get("kl_per_dim") and not live else c.kl_per_dim[-1]
    dims = [f"z{j + 1}" for j in range(latent_dim)]
    plot(
        left,
        charts.kl_bars(
            dims[: now.size],
            now,
            title=_("KL per latent dim, now (test set)")
            if tm and not live
            else _("KL per latent dim, now (batch)"),
            x_title=_("latent dim"),
            y_title=nats,
        ),
        key=f"elbo_kl_bars_{live}",
        name="kl-per-dim",
        model=model,
    )
    plot(
        mid,
        charts.kl_heatmap(
            c.step,
            c.kl_per_dim,
            dims[: c.kl_per_dim.shape[1]],
            title=_("KL per latent dim over training"),
            x_title=steps,
            y_title=_("latent dim"),
            colorbar_title=_("nats"),
        ),
        key=f"elbo_kl_heat_{live}",
        name="kl-heatmap",
        model=model,
    )
    plot(
        right,
        charts.active_units(
            c.eval_step,
            c.active_units,
            latent_dim,
            title=_("Active units (Var_x[μ_j] > 0.01)"),
            x_title=steps,
            y_title=_("active dims"),
            limit_text=f"d = {latent_dim}",
        ),
        key=f"elbo_active_{live}",
        name="active-units",
        model=model,
    )
    if (
        not live
    ):  # the live view redraws every second: a button redrawn under the pointer could miss its click
        download_history(history, model, key="elbo_history_csv")
    au, z = (c.active_units[-1] if c.active_units.size else tm.get("active_units")), latent_dim
    if au is None or np.isnan(au):
        st.caption(_("Active units appear after the first evaluation."))
    elif int(au) < z:
        st.warning(
            ngettext(
                "⚠️ **{n} of {d} latent dimensions is inactive**: its mean μ_j hardly varies over the images "
                "(Var_x[μ_j] ≤ 0.01, the definition of Burda et al. 2016), so the decoder can read little about x from "
                "it. That alone does not say μ_j ≈ 0, σ_j ≈ 1 or that its KL is 0: the KL per dimension is in the "
                "bars on the left.",
                "⚠️ **{n} of {d} latent dimensions are inactive**: their means μ_j hardly vary over the images "
                "(Var_x[μ_j] ≤ 0.01, the definition of Burda et al. 2016), so the decoder can read little about x from "
                "them. That alone does not say μ_j ≈ 0, σ_j ≈ 1 or that their KL is 0: the KL per dimension is in the "
                "bars on the left.",
                z - int(au),
            ).format(n=z - int(au), d=z)
        )
    else:
        st.success(
            _(
                "Active units: {n} of {d}: every dimension has Var_x[μ_j] > 0.01, so none is inactive by this count. "
                "How much each one carries is its KL, in the bars on the left."
            ).format(n=int(au), d=z)
        )
    # the same count as the Train page's heatmap caption: the test set's KL per dim, else the last recorded test
    low = low_kl_units(tm["kl_per_dim"]) if tm.get("kl_per_dim") and not live else None
    if low is None and c.low_kl_units.size and np.isfinite(c.low_kl_units[-1]):
        low = int(c.low_kl_units[-1])
    if low is not None:
        st.caption(low_kl_text(low, z))


def low_kl_text(low: int, d: int) -> str:
    """The low-KL count (vae_core.evaluate.low_kl_units) named as what it is, beside the active units."""
    return _(
        "At the last test, **{low} of {d}** dimensions carry less than {threshold:g} nats of KL per image: the "
        "model has nearly switched them off, whatever their Var_x[μ_j]."
    ).format(low=low, d=d, threshold=LOW_KL_THRESHOLD)


def main() -> None:
    st.title(_("📈 The ELBO over training"))
    lm, ds = require_vae_data(_(WHY))
    model, cfg, n_test, nats = lm.model, lm.config, int(ds.x_test.shape[0]), _(NATS)
    st.caption(
        _("Model: **{label}** — {summary}. Log-likelihoods under {likelihood}, {units}.").format(
            label=lm.label, summary=lm.summary(), likelihood=lm.likelihood, units=nats
        )
    )

    st.header(_("1. Training curves"))
    trainer = live_trainer()
    if trainer is not None and st.toggle(
        _("Show the model training now on the Train page (live)"), True, key="elbo_live"
    ):

        @st.fragment(run_every=1.0)
        def live_curves() -> None:
            snap = trainer.snapshot()
            if snap.state != "running":
                st.rerun()  # training ended: redraw the page once, without the timer
            mc_, tc_ = trainer.model_config, trainer.config
            st.caption(
                _(
                    "Live from the Train page: {model} on {dataset}, step {step:,} of {total:,}. The test set below is the "
                    "current model's; the Train page's *Use* makes a snapshot current."
                ).format(model=mc_.describe(), dataset=tc_.dataset, step=snap.step, total=snap.total_steps)
            )
            draw_curves(
                snap.history, mc_.latent_dim, tc_.warmup_steps, {}, live=True, model=run_name(mc_, tc_)
            )

        live_curves()
    else:
        draw_curves(
            lm.metadata.get("history") or {},
            cfg.latent_dim,
            int((lm.metadata.get("train_config") or {}).get("warmup_steps") or 0),
            lm.metadata.get("test_metrics") or {},
            live=False,
            model=lm.label,
        )

    st.header(_("2. The test set"))
    tm = lm.metadata.get("test_metrics") or {}
    src = _("recorded in the checkpoint") if tm.get("neg_elbo") is not None else _("computed now")
    if tm.get("neg_elbo") is None:
        with st.spinner(_("Evaluating the test set…")):
            tm = elbo_metrics(lm.key, model, ds.name, lm.binarized)
    iw = st.session_state.get("elbo_iwae", {}).get(lm.key) or (tm if tm.get("iwae_nll") is not None else None)
    n = tm.get("n", n_test)
    rows = [
        (
            _("test −ELBO"),
            tm["neg_elbo"],
            ngettext("{n} test image, one z sample", "{n} test images, one z sample each", n).format(n=n),
        ),
        (_("reconstruction −E_q[log p(x|z)]"), tm["recon"], _("same")),
        ("KL(q(z|x)‖p(z))", tm["kl"], _("same")),
    ]
    if iw:
        sub = _("first {n} test images").format(n=iw.get("iwae_n", "?"))
        rows.append(
            (
                _("importance-weighted NLL −log p̂_K(x), K={k}").format(k=iw.get("iwae_k", "?")),
                iw["iwae_nll"],
                _("{subset}, ± {se:.2f} (std. error)").format(
                    subset=sub, se=iw.get("iwae_nll_se", float("nan"))
                ),
            )
        )
        gap = idn.mean_posterior_gap(iw)
        if gap is not None:
            rows.append(
                (
                    _("−ELBO − NLL: lower estimate of the mean KL(q(z|x)‖p(z|x))"),
                    gap,
                    _("{subset} (−ELBO {value:.2f} on them)").format(
                        subset=sub, value=iw["iwae_subset_neg_elbo"]
                    ),
                )
            )
    cols = _("quantity"), _("value"), _("units"), _("computed on")
    st.table([dict(zip(cols, (q, f"{v:.2f}", nats, on))) for q, v, on in rows], hide_index=True)
    if iw:
        st.caption(
            _(
                "For a finite K, E[log p̂_K(x)] ≤ log p(x): the NLL above is biased high and −ELBO − NLL biased low, a "
                "lower estimate of the mean KL(q(z|x)‖p(z|x)) that tightens as K grows."
            )
        )
    low = low_kl_units(tm["kl_per_dim"]) if tm.get("kl_per_dim") else "?"
    st.caption(
        _(
            "ELBO terms {source}; log-likelihoods under {likelihood}. Active units (Var_x[μ_j] > {active_threshold:g}): "
            "{active} of {z}; dimensions with less than {threshold:g} nats of KL per image: {low} of {z}."
        ).format(
            source=src,
            likelihood=lm.likelihood,
            active_threshold=ACTIVE_THRESHOLD,
            active=tm.get("active_units", "?"),
            threshold=LOW_KL_THRESHOLD,
            low=low,
            z=cfg.latent_dim,
        )
    )
    n_iw = st.select_slider(
        _("IWAE subset (first N test images)"), options=[100, 500, 1000], value=500, key="elbo_iwae_n"
    )
    if st.button(
        _("Compute the importance-weighted NLL (K=1000, {n} images)").format(n=n_iw), key="elbo_iwae_btn"
    ):
        bar = st.progress(0.0, text=_("Importance sampling…"))
        of_n = _("{fraction:.0%} of {n} images")
        res = dataset_metrics(
            model,
            ds.x_test,
            k=1000,
            n_iwae=n_iw,
            binarize=lm.binarized,
            progress=lambda f: bar.progress(f, text=of_n.format(fraction=f, n=n_iw)),
        )
        st.session_state.setdefault("elbo_iwae", {})[lm.key] = res.to_dict()
        st.rerun()

    draw_surgery(lm, ds.name, nats)


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
