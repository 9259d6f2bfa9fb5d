"""Pitfalls (常见错误): the classic VAE mistakes, each trained beside the correct loss on digits.

Per mistake: the differing line, why it matters, its consequence on both runs (recorded in checkpoints/pitfalls.json).
*Run again* trains a section's two runs as a job in a worker process (vae_core.jobs.PitfallJob), in
this session's slot under the server's trainer cap; a fragment shows its progress, and its result
replaces the section's numbers when it is done.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import streamlit as st

from lab_pages import charts, code_view
from lab_pages.i18n import N_, _, error_text
from lab_pages.images import show_grid
from lab_pages.model_store import likelihood_name
from lab_pages.plot import plot
from lab_pages.slots import session_handle
from vae_core import pitfalls as pf
from vae_core.jobs import PitfallJob
from vae_core.registry import CapacityError
from vae_core.train import TrainerState as S

NATS = N_("nats per image")
NAMES = (N_("correct"), N_("mistaken"))  # the two runs of a pair
WORDS = {
    "gap": N_("gap"),
    "loss": N_("loss"),
    "or": N_("or"),  # in the formulas' \text{%(…)s}, and the runs' states:
    "finished": N_("finished"),
    "diverged": N_("diverged"),
    "stopped": N_("stopped"),
    "failed": N_("failed"),
}
VARIANTS = {  # a section with variants -> {variant (a vae_core.pitfalls section): its name}
    "sigma_squared": {"sigma_squared": "z = μ + σ²·ε", "logvar_as_sigma": N_("log σ² used as σ")},
}


class Text(NamedTuple):
    """What a section says: its title and explanation (marked with N_()), and the formula it shows (LaTeX, with
    ``%(word)s`` for a word of WORDS)."""

    title: str
    why: str
    formula: str


TEXT = {  # section -> its Text
    "per_pixel_mean": Text(
        N_("(a) Reconstruction averaged over pixels, KL summed"),
        N_(
            "The mistaken line averages log p(x|z) over the D = 64 pixels but still sums the KL over the latent dimensions. Multiply that "
            "loss by D (the optimum does not move) and it is the ELBO with **β = D = 64**. Every latent dimension then costs more than it "
            "earns: the posterior collapses onto the prior, no unit stays active, and every prior sample decodes to the mean image."
        ),
        r"-\tfrac{1}{D}\sum_{d=1}^{D}\log p(x_d|z) + \mathrm{KL}(q\|p) \;=\; \tfrac{1}{D}\Big[-\log p(x|z) + "
        r"\underbrace{D}_{\beta}\,\mathrm{KL}(q\|p)\Big]",
    ),
    "bce_grey": Text(
        N_("(b) Binary cross-entropy on grey pixels reported as log p(x)"),
        N_(
            "BCE is the Bernoulli's negative log-likelihood only for pixels that are 0 or 1. On grey pixels −BCE is not a log density: the continuous "
            "Bernoulli, the normalised density on [0, 1], adds log C(λ) per pixel, and C(λ) ≥ 2, so −BCE understates log p(x|z) by at least D"
            " log 2 nats. Use the continuous Bernoulli (the correct run), or binarize the images to make the Bernoulli a true likelihood."
        ),
        r"\log p_{\mathcal{CB}}(x|\lambda) = \underbrace{\textstyle\sum_d x_d\log\lambda_d + (1-x_d)\log(1-\lambda_d)}_{-\mathrm{BCE}} +"
        r" \sum_d \log C(\lambda_d),\qquad C(\lambda)\ge 2 \;\Rightarrow\; \text{%(gap)s} \ge D\log 2",
    ),
    "sigma_squared": Text(
        N_("(c) The wrong σ in the reparameterization"),
        N_(
            "The encoder outputs log σ², so ε must be scaled by σ = exp(½ log σ²). Scaling by σ² (as a tutorial writes it) gives Var z = σ⁴; "
            "using log σ² itself as σ gives Var z = (log σ²)². Either way the z the decoder sees is not drawn from q(z|x) = N(μ, σ²), yet the"
            " analytic KL is still that of N(μ, σ²): the ELBO the run reports describes a distribution it never sampled."
        ),
        r"z=\mu+\sigma^2\varepsilon \Rightarrow \mathrm{Var}[z]=\sigma^4\ne\sigma^2,\qquad z=\mu+\log\sigma^2\,\varepsilon \Rightarrow "
        r"\mathrm{Var}[z]=(\log\sigma^2)^2",
    ),
    "detached_z": Text(
        N_("(d) z sampled with no path for the gradient"),
        N_(
            "With z detached, the reconstruction term has no path back to the encoder: ∂recon/∂μ = 0. Only the KL reaches q, and the KL alone"
            " is smallest at q(z|x) = p(z): μ collapses to 0 and σ to 1 for every image, so z says nothing about x."
        ),
        r"\frac{\partial}{\partial\mu}\log p\big(x\,\big|\,\mathrm{stopgrad}[\mu+\sigma\varepsilon]\big) = 0 \;\Rightarrow\; "
        r"\nabla_\phi\,\text{%(loss)s} = \nabla_\phi\,\mathrm{KL}(q_\phi(z|x)\,\|\,p(z))",
    ),
    "kl_sign": Text(
        N_("(e) The KL's sign flipped"),
        N_(
            "The loss is −ELBO = −log p(x|z) + KL. Flip the sign and a large KL is rewarded. The KL grows without bound as |μ| → ∞, "
            "as σ → ∞ and as σ → 0, so the optimiser drives μ and σ to such extremes and the loss falls towards −∞. Once the loss is "
            "larger in size than any true −ELBO can be (10⁴ nats per pixel), the trainer's divergence guard stops the run and keeps "
            "the last good weights: nothing saved is lost."
        ),
        r"\text{%(loss)s} = -\log p(x|z) \,\mathbf{-}\, \mathrm{KL}(q\|p) \;\to\; -\infty \quad\big(|\mu| \to \infty\ "
        r"\text{%(or)s}\ \sigma \to \infty\ \text{%(or)s}\ \sigma \to 0\big)",
    ),
}


@st.cache_resource(show_spinner=False)
def shipped() -> dict[str, pf.PitfallPair]:
    """The recorded pairs (checkpoints/pitfalls.json), read once per process (read-only, shared)."""
    return pf.load_results()


def num(v: float | None) -> str:
    """A figure for a metric: two decimals, or three significant digits for a diverged run's (it reaches 1e5)."""
    if v is None:
        return _("n/a")
    return f"{v:.2f}" if abs(v) < 1e4 else f"{v:.3g}"


ss = st.session_state
HANDLE, RUNNING = "pitfalls_handle", "pitfalls_running"  # this session's slot; (section, seed) of its run


def handle():
    """This session's Pitfalls slot in the trainer registry (one run at a time, under the server's cap)."""
    return session_handle(HANDLE, label="pitfalls run")


def run_again(key: str) -> None:
    """Button callback: train the section's pair again with a new seed, as a job in a worker (the page never
    waits on it); at the server's cap, the refusal is kept for the section to show."""
    seed = int(ss.get(f"pitfalls_seed_{key}", 0)) + 1  # a new seed: the consequence is no accident
    h = handle()
    try:
        h.start(h.registry.job(PitfallJob(key, seed)))  # refused when the server's trainer cap is reached
    except CapacityError as exc:
        ss[f"pitfalls_refused_{key}"] = _("Not started: {reason}").format(reason=error_text(exc))
        return
    ss[RUNNING] = (key, seed)  # a run of another section, if any, was stopped by the start


@st.fragment(run_every=1)
def progress(seed: int) -> None:
    """The run's progress, once a second; a full rerun when it has ended (the section then shows its result)."""
    h = handle()
    h.touch()
    job = h.trainer
    snap = job.snapshot() if job is not None else None
    if snap is None or snap.state not in (S.RUNNING, S.STARTING):
        st.rerun()
    st.progress(
        snap.fraction,
        text=_("Training the correct and the mistaken run on digits (seed {seed})…").format(seed=seed)
        + f" {snap.step}/{snap.total_steps}",
    )


def finish(key: str) -> tuple[str, str] | None:
    """If the section's run has ended: keep its pair (or not, if it failed) and say so, as (st function, text)."""
    running = ss.get(RUNNING)
    if running is None or running[0] != key:
        return None  # (a visit that runs nothing makes no slot in the registry)
    job = handle().trainer
    if job is not None and job.state in (S.RUNNING, S.STARTING):
        return None
    del ss[RUNNING]
    if job is None:
        return None
    job.close(wait=False)  # what it sent is kept: the worker's memory goes back to the server
    if job.state == S.FINISHED and job.result is not None:
        ss[f"pitfalls_pair_{key}"], ss[f"pitfalls_seed_{key}"] = job.result, running[1]
        text = _("Both runs trained again (seed {seed}): the numbers below are theirs.")
        return "success", text.format(seed=running[1])
    # stopped (its session was unseen) or failed: the numbers shown stay
    return "warning", _("Not trained: {reason}").format(reason=error_text(job.message) or _(WORDS["stopped"]))


def run_column(col, run: pf.PitfallRun, line: str, name: str, p: pf.PitfallPair) -> None:
    """One run of the pair in ``col``: its line of code, its figures, its reconstructions and prior samples."""
    reported = run.history.get("loss") or [None]
    col.markdown(f"**{name}**")
    col.code(line, language="python", wrap_lines=True)
    m = col.columns(3)
    m[0].metric(_("active units"), f"{run.metrics['active_units']} / {run.metrics['latent_dim']}")
    m[1].metric(
        _("−ELBO, measured"),
        num(run.metrics["neg_elbo"]),
        help=_("nats per image, test split, under its own likelihood"),
    )
    m[2].metric(
        _("loss it reported"),
        num(reported[-1]),
        help=_("its own objective, last step"),
    )
    col.caption(
        _("{state}: {steps} steps in {seconds:.1f} s · likelihood: {likelihood}").format(
            state=_(WORDS.get(run.state, run.state)),
            steps=run.steps,
            seconds=run.seconds,
            likelihood=likelihood_name(run.likelihood),
        )
    )
    show_grid(
        np.vstack([p.test_images, run.recon]),
        p.image_shape,
        8,
        _("test images, their reconstructions"),
        px=48,
        container=col,
    )
    show_grid(
        np.asarray(run.samples),
        p.image_shape,
        8,
        _("prior samples z ~ N(0, I), decoded"),
        px=48,
        container=col,
    )


def extras(key: str, p: pf.PitfallPair) -> None:
    """What only this section shows: the likelihood gap, the sampled z's moments, the gradient, or the divergence."""
    good, bad = p.correct, p.mistaken
    names2 = (_(NAMES[0]), _(NAMES[1]))
    nats = _(NATS)
    if key == "bce_grey":
        e = bad.extra
        names = (
            _("−BCE on grey x"),
            _("continuous Bernoulli on grey x"),
            _("−BCE on binarized x"),
            "−BCE + D log 2",
        )
        plot(
            st,
            charts.likelihood_gaps(
                e["bce_grey"],
                e["cb_grey"],
                e["bce_binarized"],
                e["d_log2"],
                names=names,
                x_title=_("test image"),
                y_title=f"log p(x|z) ({nats})",
            ),
            key="pitfalls_gaps_chart",
            name="pitfalls-likelihood-gaps",
        )
        st.latex(
            rf"\overline{{\log p_{{\mathcal{{CB}}}} - (-\mathrm{{BCE}})}} = {e['gap_mean']:.1f} \;\ge\; D\log 2 = "
            rf"{e['d_log2']:.1f}\ \text{{{nats}}}"
        )
        st.caption(
            _(
                "The mistaken run's model (trained with BCE), one sample of z per image, the first 64 test images."
            )
        )
    elif key in VARIANTS["sigma_squared"]:
        moments = ("var_ratio", "var_ratio_median", "mean_shift")
        plot(
            st,
            charts.pair_bars(
                (_("Var[z] / σ² (mean)"), _("Var[z] / σ² (median)"), "|E[z] − μ| / σ"),
                [good.z_moments[m] for m in moments],
                [bad.z_moments[m] for m in moments],
                names=names2,
                title=_("The sampled z against q(z|x), 2000 draws per image"),
                x_title=_("moment"),
                y_title=_("ratio (1 and 0 when z follows q)"),
                reference=1.0,
                reference_text=_("z follows q"),
            ),
            key="pitfalls_moments_chart",
            name="pitfalls-z-moments",
        )
        st.caption(
            _(
                "Mean σ of q: {good:.3f} (correct), {bad:.3f} (mistaken). The mistaken run reports the KL of N(μ, σ²) on z "
                "not drawn from it; −ELBO, measured, samples z from q as it should."
            ).format(good=good.z_moments["sigma_mean"], bad=bad.z_moments["sigma_mean"])
        )
    elif key == "detached_z":
        params = list(good.grad_norms)
        plot(
            st,
            charts.pair_bars(
                params,
                [good.grad_norms[k] for k in params],
                [bad.grad_norms[k] for k in params],
                names=names2,
                title=_("The reconstruction term's gradient, per parameter tensor"),
                x_title=_("parameter"),
                y_title=_("L2 norm of ∂(−recon)/∂θ"),
            ),
            key="pitfalls_grads_chart",
            name="pitfalls-gradients",
        )
        enc_word = _("encoder")
        st.latex(
            rf"\max_{{\theta\,\in\,\text{{{enc_word}}}}} \Big\|\frac{{\partial\,\mathrm{{recon}}}}{{\partial\theta}}"
            rf"\Big\| = {good.encoder_grad_norm:.3g}\ (\text{{{names2[0]}}}),\quad "
            rf"{bad.encoder_grad_norm:.3g}\ (\text{{{names2[1]}}})"
        )
    elif key == "kl_sign":
        text = _("Mistaken run, {state}: {message}").format(
            state=_(WORDS.get(bad.state, bad.state)), message=error_text(bad.status())
        )
        if bad.state == "diverged":
            st.warning(text)
        else:
            st.info(text)


def pick_variant(key: str) -> str:
    """The section's variant: picked with a radio where it has several (VARIANTS), else the section itself."""
    if key not in VARIANTS:
        return key
    return st.radio(
        _("Variant"),
        list(VARIANTS[key]),
        format_func=lambda v: _(VARIANTS[key][v]),
        horizontal=True,
        key="pitfalls_variant",
    )


def section(key: str) -> None:
    """One mistake: what it is, then its pair (trained here with *Run again*, else the recorded one)."""
    text = TEXT[key]
    st.subheader(_(text.title))
    variant = pick_variant(key)
    sec = pf.SECTIONS[variant]
    names2 = (_(NAMES[0]), _(NAMES[1]))
    nats = _(NATS)
    st.markdown(_(text.why))
    st.latex(text.formula % {k: _(w) for k, w in WORDS.items()})
    ended = finish(variant)  # before the button: a run that has ended frees it
    running = ss.get(RUNNING)
    runs_here = running is not None and running[0] == variant  # this section's run trains now
    st.button(
        _("Run again"),
        key=f"pitfalls_run_{variant}",
        help=_("train both runs live, with a new seed"),
        on_click=run_again,
        args=(variant,),
        disabled=runs_here,
    )
    refused = ss.pop(f"pitfalls_refused_{variant}", None)
    if refused:
        st.warning(refused)  # the recorded results stay below
    if ended is not None:
        kind, message = ended
        getattr(st, kind)(message)
    if runs_here:
        progress(running[1])
    p = st.session_state.get(f"pitfalls_pair_{variant}") or shipped().get(variant)
    if p is None:
        st.info(_("No recorded result for this section: press *Run again* to train it."))
        return
    seed = st.session_state.get(f"pitfalls_seed_{variant}")
    if seed:
        st.caption(_("Trained here, seed {seed}.").format(seed=seed))
    else:
        st.caption(_("Recorded results (seed 0): press *Run again* to train them live."))
    runs = (p.correct, p.mistaken)
    lines = (sec.correct_line, sec.mistaken_line)
    for col, run, line, name in zip(st.columns(2), runs, lines, names2):
        run_column(col, run, line, name, p)
    left, right = st.columns(2)
    dims = [f"z{j + 1}" for j in range(len(p.correct.kl_per_dim))]
    plot(
        left,
        charts.pair_bars(
            dims,
            p.correct.kl_per_dim,
            p.mistaken.kl_per_dim,
            names=names2,
            log_y=variant == "kl_sign",
            title=_("KL per latent dimension (test split)"),
            x_title=_("latent dimension"),
            y_title=f"KL ({nats})",
        ),
        key=f"pitfalls_kl_{variant}",
        name=f"pitfalls-{variant}-kl-per-dim",
    )
    plot(
        right,
        charts.pair_curves(
            p.correct.history["step"],
            p.correct.history["loss"],
            p.mistaken.history["step"],
            p.mistaken.history["loss"],
            names=names2,
            title=_("The loss each run reported"),
            x_title=_("step"),
            y_title=_("loss ({unit})").format(unit=nats),
        ),
        key=f"pitfalls_loss_{variant}",
        name=f"pitfalls-{variant}-loss",
    )
    extras(variant, p)


def variant_titles() -> dict[str, str]:
    """Every section and variant (a key of vae_core.pitfalls.SECTIONS) with its translated title, in page order."""
    titles = {}
    for key, text in TEXT.items():
        for variant, name in VARIANTS.get(key, {key: ""}).items():
            titles[variant] = _(text.title) + (f" · {_(name)}" if name else "")
    return titles


def main() -> None:
    st.title(_("⚠️ Pitfalls: the classic VAE mistakes, trained live"))
    st.markdown(
        _(
            "Each section trains the correct loss and a mistaken one side by side (same model, seed and batches; 8×8 digits, "
            "d = 8): one line of code differs. Each run *reports* its own objective; what it *is*, the correct tools measure."
        )
    )
    for key in TEXT:
        st.divider()
        section(key)
    st.divider()
    code_view.pitfalls_page(variant_titles())  # a pitfall's loss as standalone PyTorch code


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
