"""Home: what the lab shows, a link to every page, and the workshop script (both from lab_pages.tour).

Everything but the model's status line is drawn before torch is imported (lab_pages.style and
lab_pages.tour import nothing), so at the first visit after the server starts the browser shows the
page and loads its formula renderer while the server loads torch and the default model (see app.py).
"""

import streamlit as st

from lab_pages.style import KL_COLOR, RECON_COLOR
from lab_pages.tour import PAGES, WORKSHOP_INTRO, WORKSHOP_NOTE, WORKSHOP_TITLE, workshop_list_markdown

st.title("🧪 VAE Workshop Lab")
st.markdown(
    "A hands-on lab for **variational autoencoders**: train one live, watch its objective split into its two terms, "
    "check the identity behind it with real numbers, and explore the latent space it learns."
)
st.subheader("The ELBO in one line")
st.latex(
    r"\log p(x) \;\ge\; \mathrm{ELBO}(x) = "
    rf"\underbrace{{\mathbb{{E}}_{{q(z\mid x)}}\big[\log p(x\mid z)\big]}}_{{\color{{{RECON_COLOR}}}{{\text{{reconstruction}}}}}}"
    rf"\;-\;\underbrace{{\mathrm{{KL}}\big(q(z\mid x)\,\|\,p(z)\big)}}_{{\color{{{KL_COLOR}}}{{\text{{KL to the prior}}}}}}"
)
st.markdown(
    "The gap is exactly $\\mathrm{KL}(q(z\\mid x)\\,\\|\\,p(z\\mid x))$: "
    "$\\log p(x) = \\mathrm{ELBO} + \\mathrm{KL}(q\\,\\|\\,\\text{true posterior})$. "
    "Every number in this lab is in **nats per image**."
)

status = st.empty()  # the model's status line, filled in last (it needs torch)
if "current_model" not in st.session_state:
    status.info("Loading the default model…")

st.subheader("The pages")
cols = st.columns(2)
for i, page in enumerate(p for p in PAGES if p.path != "lab_pages/home.py"):
    with cols[i % 2]:
        st.page_link(page.path, label=f"**{page.title}**")
        st.caption(f"{page.blurb} *Teaches:* {page.term}.")

st.subheader(WORKSHOP_TITLE)
st.markdown(WORKSHOP_INTRO)
st.markdown(workshop_list_markdown())
st.caption(WORKSHOP_NOTE)

from lab_pages.common import current_model  # noqa: E402 - imports torch: after everything above is drawn

lm = current_model()
if lm is not None:
    status.success(f"Loaded and ready: **{lm.label}** — {lm.summary()}. Every page works on it right now; no training needed.")
else:
    status.warning("No model could be loaded. Train one on the Train page or upload a checkpoint in the sidebar.")
