"""Home: what the lab shows, how to run a workshop with it, and a link to every page.

Everything but the model's status line is drawn before torch is imported (lab_pages.style
imports nothing), so at the first visit after the server starts the browser shows the page and
loads its formula renderer while the server loads torch and the default model (see app.py).
"""

import streamlit as st

from lab_pages.style import KL_COLOR, RECON_COLOR

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
links = [
    ("lab_pages/theory.py", "Theory: entropy to ELBO", "Information, entropy, KL, variational inference and the reparameterization trick, with sliders."),
    ("lab_pages/train.py", "Train", "Train a small VAE (or AE) live and watch −ELBO split into reconstruction and KL, per latent dimension."),
    ("lab_pages/elbo.py", "ELBO, term by term", "Pick one image: check log p(x) = ELBO + KL(q‖p(z|x)) with importance sampling, and by exact quadrature for z=2."),
    ("lab_pages/explorer.py", "Latent explorer", "Drag latent sliders, traverse dimensions, interpolate, and see the 2-D manifold."),
    ("lab_pages/latent_map.py", "Latent map (UMAP)", "A UMAP of the posterior means of the test set; select points to see their images."),
    ("lab_pages/compare.py", "AE vs VAE", "Same architecture, data and seed: why the VAE's latent space can be sampled and the AE's cannot."),
]
for i, (path, title, text) in enumerate(links):
    with cols[i % 2]:
        st.page_link(path, label=f"**{title}**")
        st.caption(text)

st.subheader("A 20-minute workshop")
st.markdown(
    """
1. **(3 min) Theory.** Entropy and KL on the Theory page; drag q and watch ELBO + KL = log p(x).
2. **(5 min) Train.** Start a VAE on the Train page; point at reconstruction falling and KL rising, and at the
   dimensions whose KL stays at zero (inactive units). Pause, step one batch, resume.
3. **(5 min) ELBO, term by term.** Pick an image, raise K, and watch the importance-weighted estimate climb
   from the ELBO towards log p(x); with the z=2 model, compare with the exact value and the true posterior.
4. **(4 min) Latent explorer and map.** Drag sliders, traverse dimensions, select a cluster on the UMAP and
   send its μ to the explorer.
5. **(3 min) AE vs VAE.** Sample both from N(0, I): only the VAE's samples look like data. Ask why.
"""
)

from lab_pages.common import current_model  # noqa: E402 - imports torch: after everything above is drawn

lm = current_model()
if lm is not None:
    status.success(f"Loaded and ready: **{lm.label}** — {lm.summary()}. Every page works on it right now; no training needed.")
else:
    status.warning("No model could be loaded. Train one on the Train page or upload a checkpoint in the sidebar.")
