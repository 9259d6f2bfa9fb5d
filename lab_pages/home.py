"""Home: what the lab shows, a link to every page, and the workshop script (both from lab_pages.tour).

Everything but the model's status line is drawn before torch is imported (lab_pages.style,
lab_pages.tour and lab_pages.i18n import no torch), so at the first visit after the server starts
the browser shows the page and loads its formula renderer while the server loads torch and the
default model (see app.py). Text comes from lab_pages.tour (marked N_) and is translated here with _().
"""

import streamlit as st

from lab_pages.i18n import _
from lab_pages.style import KL_COLOR, RECON_COLOR
from lab_pages.tour import PAGES, WORKSHOP_INTRO, WORKSHOP_NOTE, WORKSHOP_TITLE, workshop_list_markdown

st.title("🧪 " + _("VAE Workshop Lab"))
st.markdown(
    _(
        "A hands-on lab for **variational autoencoders**: train one live, watch its objective split into its two terms, "
        "check the identity behind it with real numbers, and explore the latent space it learns."
    )
)
st.subheader(_("The ELBO in one line"))
recon, kl_prior = _("reconstruction"), _("KL to the prior")  # the words under the formula's two braces
st.latex(
    r"\log p(x) \;\ge\; \mathrm{ELBO}(x) = "
    rf"\underbrace{{\mathbb{{E}}_{{q(z\mid x)}}\big[\log p(x\mid z)\big]}}_{{\color{{{RECON_COLOR}}}{{\text{{{recon}}}}}}}"
    rf"\;-\;\underbrace{{\mathrm{{KL}}\big(q(z\mid x)\,\|\,p(z)\big)}}_{{\color{{{KL_COLOR}}}{{\text{{{kl_prior}}}}}}}"
)
st.markdown(
    _(
        "The gap is exactly {gap}: {identity}. Log-likelihoods, ELBO terms and KLs are in **nats per image** unless a "
        "page says otherwise: the Theory page can count in bits, and free bits are nats per latent dimension."
    ).format(
        gap="$\\mathrm{KL}(q(z\\mid x)\\,\\|\\,p(z\\mid x))$",
        identity="$\\log p(x) = \\mathrm{ELBO} + \\mathrm{KL}(q\\,\\|\\,\\text{"
        + _("true posterior")
        + "})$",
    )
)

status = st.empty()  # the model's status line, filled in last (it needs torch)
if "current_model" not in st.session_state:
    status.info(_("Loading the default model…"))

st.subheader(_("The pages"))
cols = st.columns(2)
for i, page in enumerate(p for p in PAGES if p.path != "lab_pages/home.py"):
    with cols[i % 2]:
        st.page_link(page.path, label=f"**{_(page.title)}**")
        st.caption(_("{blurb} *Teaches:* {term}.").format(blurb=_(page.blurb), term=_(page.term)))

st.subheader(_(WORKSHOP_TITLE))
st.markdown(_(WORKSHOP_INTRO))
st.markdown(workshop_list_markdown(_))
st.caption(_(WORKSHOP_NOTE))

from lab_pages.model_store import current_model  # noqa: E402 - imports torch: after everything above is drawn

lm = current_model()
if lm is not None:
    status.success(
        _(
            "Loaded and ready: **{label}** — {summary}. Every page works on it right now; no training needed."
        ).format(label=lm.label, summary=lm.summary())
    )
else:
    status.warning(
        _("No model could be loaded. Train one on the Train page or upload a checkpoint in the sidebar.")
    )
