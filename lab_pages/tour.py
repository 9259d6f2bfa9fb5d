"""The lab's tour and its workshop script, as plain data: the one source for the Home page and the README.

``lab_pages/home.py`` draws them; ``python -m scripts.sync_readme`` writes them into README.md
between its ``<!-- tour -->`` and ``<!-- workshop -->`` markers, and tests/test_readme.py fails when
the two disagree. Imports nothing (Home draws this before torch is imported). Text is Markdown
that reads the same in ``st.markdown`` and on GitHub; a ``|`` is escaped where a table needs it.
"""

from __future__ import annotations

from dataclasses import dataclass


def N_(text: str) -> str:
    """Marks text for translation (scripts/i18n.py extracts it; Home and the router translate it where drawn)."""
    return text


@dataclass(frozen=True)
class TourPage:
    path: str  # the page script, as st.Page and st.page_link take it
    url: str  # the page's URL path in the app ("" for Home)
    title: str  # the title in the navigation menu
    blurb: str  # what you do there, one line
    term: str  # the ELBO term it teaches


@dataclass(frozen=True)
class WorkshopStep:
    minutes: str  # e.g. "2–5"
    page: str  # which page(s), by title
    do: str  # what to click
    ask: str  # what to ask the room
    # the page scripts it visits, in order: presenter mode's Next and Back open the first
    pages: tuple[str, ...] = ()


PAGES: tuple[TourPage, ...] = (
    TourPage(
        "lab_pages/home.py",
        "",
        N_("Home"),
        N_("The ELBO in one line, the model that is loaded, a link to every page."),
        N_("the bound itself: log p(x) ≥ ELBO = reconstruction − KL to the prior"),
    ),
    TourPage(
        "lab_pages/theory.py",
        "theory",
        N_("Theory: entropy to ELBO"),
        N_(
            "Information (it adds over independent events), likelihood against probability, entropy, conditional "
            "entropy, cross-entropy, KL, the closed-form KL derived step by step, and the reparameterization trick, "
            "with sliders."
        ),
        N_(
            "for a Bernoulli on binary pixels the reconstruction term is a negative cross-entropy; the KL to the prior "
            "has a closed form and is differentiated as it stands; z = μ + σ·ε makes the sampled term E_q[log p(x|z)] "
            "differentiable"
        ),
    ),
    TourPage(
        "lab_pages/derivation.py",
        "derivation",
        N_("Derivation"),
        N_(
            "On a 1-D model with a two-mode posterior: move q, fit it by SGD, follow both derivations of the ELBO "
            "line by line with their values, see Jensen's gap, fit a Gaussian, a Laplace and a mixture q, and take "
            "the ELBO's first variation (why the method is called variational)."
        ),
        N_(
            "the gap: log p(x) = ELBO + KL(q‖p(z|x)), so maximising the ELBO fits q, and only a q that can take "
            "the posterior's shape closes it"
        ),
    ),
    TourPage(
        "lab_pages/train.py",
        "train",
        N_("Train"),
        N_(
            "Train a small VAE (or AE) live and watch −ELBO split into reconstruction and KL, per latent dimension; "
            "choose the likelihood (Bernoulli, Gaussian, Laplace) and its scale."
        ),
        N_(
            "reconstruction against KL to the prior: β weights the KL, and so does a Gaussian's or a Laplace's scale "
            "(MSE and L1 are those likelihoods); a dimension whose μ_j hardly varies over the images "
            "(Var_x[μ_j] ≤ 0.01) is inactive; an AE trains the reconstruction term alone"
        ),
    ),
    TourPage(
        "lab_pages/elbo.py",
        "elbo",
        N_("ELBO, term by term"),
        N_(
            "Pick one image: check log p(x) = ELBO + KL(q‖p(z|x)) with importance sampling, and by exact "
            "quadrature for d = 1 or 2 (VAE only)."
        ),
        N_(
            "the gap: log p̂_K(x) − ELBO is a lower estimate of KL(q(z|x)‖p(z|x)) that tightens as K grows; for "
            "d = 1 or 2 quadrature gives the gap exactly"
        ),
    ),
    TourPage(
        "lab_pages/elbo_training.py",
        "elbo-training",
        N_("ELBO over training"),
        N_(
            "Follow −ELBO as reconstruction + KL over training (live while the Train page trains), KL per latent "
            "dimension, active units, the test set's −ELBO beside its importance-weighted NLL, and the average KL split "
            "into the mutual information I(x; z) and KL(q(z)‖p(z))."
        ),
        N_(
            "all of it on average: −ELBO = reconstruction + KL per step; test −ELBO − NLL is a lower estimate of the "
            "mean KL(q(z|x)‖p(z|x)); the average KL = I(x; z) + KL(q(z)‖p(z)), and a collapsed VAE has I(x; z) = 0"
        ),
    ),
    TourPage(
        "lab_pages/explorer.py",
        "explorer",
        N_("Latent explorer"),
        N_(
            "Drag latent sliders (your browser decodes, so the image follows the slider), start from a test image's "
            "μ, and traverse every dimension."
        ),
        N_("the decoder p(x|z) inside the reconstruction term, and the prior p(z) the KL pulls towards"),
    ),
    TourPage(
        "lab_pages/manifold.py",
        "manifold",
        N_("Manifold & interpolation"),
        N_(
            "The decoder over a 2-D grid of equal prior mass, marked at the explorer's point, a latent plane of the "
            "test set's μ that decodes under the pointer, a hole the codes leave in the prior's mass with its decoded "
            "image, and linear and spherical paths between two test images."
        ),
        N_(
            "the prior p(z): a VAE's KL term pulls the codes towards N(0, I), yet their aggregate q(z) can leave "
            "holes where the prior's mass is high and the decoder saw no code; paths between codes stay where the "
            "prior puts its mass"
        ),
    ),
    TourPage(
        "lab_pages/latent_map.py",
        "latent-map",
        N_("Latent map (UMAP)"),
        N_("A UMAP of the posterior means of the test set; select points to see their images."),
        N_(
            "the encoder q(z|x): classes cluster because the reconstruction term needs a code that says what to draw"
        ),
    ),
    TourPage(
        "lab_pages/compare.py",
        "compare",
        N_("AE vs VAE"),
        N_(
            "Same architecture, data and seed: why the VAE's latent space can be sampled and the AE's cannot; and a "
            "linear AE trained with MSE, which finds PCA's subspace."
        ),
        N_(
            "what KL(q(z|x)‖p(z)) buys: an AE's codes drift away from N(0, I), and its prior samples are not images"
        ),
    ),
    TourPage(
        "lab_pages/compare_live.py",
        "train-pair",
        N_("Train an AE/VAE pair"),
        N_(
            "Train an AE and a VAE live in lockstep (same weights, seed and batches), then compare them on AE vs VAE."
        ),
        N_("the KL term alone: the two runs differ in nothing else"),
    ),
    TourPage(
        "lab_pages/pitfalls.py",
        "pitfalls",
        N_("Pitfalls"),
        N_(
            "The classic VAE mistakes, each trained beside the correct loss on digits: the one line that differs, and its "
            "measured consequence (active units, KL per dimension, samples, z's moments, gradients). *Run again* retrains live."
        ),
        N_(
            "every term done wrong: the reconstruction averaged per pixel (β = D), BCE on grey pixels as log p(x), σ² for σ, "
            "a detached z, the KL's sign flipped"
        ),
    ),
    TourPage(
        "lab_pages/your_image.py",
        "your-image",
        N_("Your image"),
        N_(
            "Draw or upload an image: see it prepared as the dataset was made, its code and every ELBO term; it then "
            "appears beside the test images on the other pages."
        ),
        N_("all three terms for an image the model never saw: one unlike the training set gets a low ELBO"),
    ),
)

# The navigation: menu groups in order, each with its pages (path, icon). app.py builds st.navigation from it.
NAV: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (N_("Start"), (("lab_pages/home.py", "🏠"),)),
    (
        N_("Ideas"),
        (
            ("lab_pages/theory.py", "📐"),
            ("lab_pages/derivation.py", "✍️"),
        ),
    ),
    (
        N_("The model"),
        (
            ("lab_pages/train.py", "🏋️"),
            ("lab_pages/elbo.py", "🧮"),
            ("lab_pages/elbo_training.py", "📈"),
            ("lab_pages/explorer.py", "🎛️"),
            ("lab_pages/manifold.py", "🧭"),
            ("lab_pages/latent_map.py", "🗺️"),
            ("lab_pages/compare.py", "⚖️"),
            ("lab_pages/compare_live.py", "🏗️"),
            ("lab_pages/pitfalls.py", "⚠️"),
            ("lab_pages/your_image.py", "✏️"),
        ),
    ),
)

WORKSHOP_TITLE = N_("A 20-minute workshop")
WORKSHOP_INTRO = N_(
    "Before the room arrives: start the server and open every page once, so that the caches (encoded test "
    "sets, UMAP, the ELBO page's samples) are warm. The lab opens on `fmnist_vae_z16` (or `digits_vae_z2` "
    "without Fashion-MNIST)."
)
WORKSHOP: tuple[WorkshopStep, ...] = (
    WorkshopStep(
        "0–2",
        N_("Home"),
        N_("read the one-line ELBO: reconstruction minus KL to the prior, a lower bound on log p(x)"),
        N_("If log p(x) is what we want, why maximise something smaller?"),
        pages=("lab_pages/home.py",),
    ),
    WorkshopStep(
        "2–5",
        N_("Theory, section 2, then Derivation"),
        N_(
            "Theory, section 2: p starts as N(0, 1), so the KL shown is the VAE's KL term; shrink σ₁ (a more "
            "certain q) and watch it grow. Derivation: drag *μ of q* from one mode to the other; ELBO and "
            "KL(q‖p(z|x)) trade places, their sum stays log p(x). Press *Fit q by SGD* and play the animation"
        ),
        N_("q found one mode. Why not both?"),
        pages=("lab_pages/theory.py", "lab_pages/derivation.py"),
    ),
    WorkshopStep(
        "5–9",
        N_("Train"),
        N_(
            "keep the defaults (VAE, d = 16, 30 epochs: about 3 minutes at 10–12k images/s; on a faster machine raise "
            "*Epochs* so that the run outlasts this step), press **Start**. Point at the stacked chart (reconstruction "
            "falls, KL rises) and, after a minute, at the pale rows of the KL heatmap. **Pause**, **Step** twice "
            "(one batch each), **Resume**. A run that has ended goes on the same way: Step and Resume train the same "
            "model further; only **Reset** or a new **Start** discards it, and each asks first"
        ),
        N_(
            "Some dimensions carry less than 0.1 nats of KL (the heatmap's caption counts them). Why would the model "
            "switch a dimension off?"
        ),
        pages=("lab_pages/train.py",),
    ),
    WorkshopStep(
        "9–13",
        N_("ELBO, term by term"),
        N_(
            "press the *#* button under a test image; move *K* from 1 to 5000 and watch log p̂_K(x) climb above "
            "the ELBO. Then press *Switch to the shipped VAE with d = 2*: the exact log p(x) and the true posterior next "
            "to q's ellipses"
        ),
        N_("Where does q put mass that the true posterior does not? That mismatch costs exactly the gap."),
        pages=("lab_pages/elbo.py",),
    ),
    WorkshopStep(
        "13–16",
        N_("Latent explorer, Manifold & interpolation, then Latent map"),
        N_(
            "with the d = 2 model current: drag the two sliders and watch the image follow; open *Manifold & "
            "interpolation*, move the pointer over the latent plane and click between two clusters. On the Latent "
            "map, lasso one cluster, look at its images, press *Send μ to the latent explorer*"
        ),
        N_("What lies between two clusters?"),
        pages=("lab_pages/explorer.py", "lab_pages/manifold.py", "lab_pages/latent_map.py"),
    ),
    WorkshopStep(
        "16–19",
        N_("AE vs VAE"),
        N_(
            "the page opens on the shipped pair that shows the difference best, the one of the current dataset with "
            "the largest gap in test reconstruction error (on Fashion-MNIST the d = 16 pair, even with the d = 2 "
            "model current; a caption says why). Compare its 16 prior draws at the top, then the reconstruction "
            "errors under them, and at the bottom the aggregate posterior against the prior"
        ),
        N_(
            "Which one reconstructs better, which one samples better, and which term of the ELBO makes the "
            "difference?"
        ),
        pages=("lab_pages/compare.py",),
    ),
    WorkshopStep(
        "19–20",
        N_("Home"),
        N_("point at each term of the identity and name the page where the room saw it"),
        N_("Which term would you weaken to get sharper reconstructions? (β < 1)"),
        pages=("lab_pages/home.py",),
    ),
)
WORKSHOP_NOTE = N_(
    "Switching to the d = 2 model (minute 9) changes the current model on every page of that browser tab; "
    "pick `fmnist_vae_z16` in the sidebar to go back."
)


def _cell(text: str) -> str:
    """Text for a Markdown table cell: a bare ``|`` would end the cell."""
    return text.replace("|", "\\|")


TOUR_HEADER = N_("| page | what you do there | the ELBO term it teaches |")
WORKSHOP_HEADER = N_("| minute | page | what to click | what to ask the room |")


def tour_markdown(tr=N_) -> str:  # tr: str -> str
    """The README's tour: one row per page, with the ELBO term it teaches, each text passed through ``tr``
    (README.zh-CN.md passes the Chinese catalogue; the default keeps the English)."""
    rows = [tr(TOUR_HEADER), "|---|---|---|"]
    for p in PAGES:
        rows.append(f"| **{tr(p.title)}** (`/{p.url}`) | {_cell(tr(p.blurb))} | {_cell(tr(p.term))} |")
    return "\n".join(rows)


def workshop_markdown(tr=N_) -> str:  # tr: str -> str
    """The workshop script as a Markdown table (the READMEs); Home draws the same steps as a list."""
    rows = [tr(WORKSHOP_HEADER), "|---|---|---|---|"]
    for s in WORKSHOP:
        rows.append(f"| {s.minutes} | {_cell(tr(s.page))} | {_cell(tr(s.do))} | “{_cell(tr(s.ask))}” |")
    return "\n\n".join([tr(WORKSHOP_INTRO), "\n".join(rows), tr(WORKSHOP_NOTE)])


# TRANSLATORS: one step of the workshop on Home: {n} its number, {minutes} e.g. "2–5", {page} the page(s), {do} what to
# click, {ask} what to ask the room.
WORKSHOP_ITEM = N_("{n}. **({minutes} min) {page}.** {do}. *Ask: “{ask}”*")


def workshop_list_markdown(tr=N_) -> str:  # tr: str -> str
    """The same steps as a numbered Markdown list (Home is narrower than a README), each text passed through ``tr``
    (Home passes the session's translator; the default keeps the English)."""
    return "\n".join(
        tr(WORKSHOP_ITEM).format(
            n=i, minutes=s.minutes, page=tr(s.page), do=_capital(tr(s.do)), ask=tr(s.ask)
        )
        for i, s in enumerate(WORKSHOP, 1)
    )


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
