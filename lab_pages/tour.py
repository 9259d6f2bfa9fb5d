"""The lab's tour and its workshop script, as plain data: the one source for the Home page and the README.

``lab_pages/home.py`` draws them; ``python -m scripts.sync_readme`` writes them into README.md
between its ``<!-- tour -->`` and ``<!-- workshop -->`` markers, and tests/test_readme.py fails when
the two disagree. Imports nothing (Home draws this before torch is imported). Text is Markdown
that reads the same in ``st.markdown`` and on GitHub; a ``|`` is escaped where a table needs it.
"""

from __future__ import annotations

from dataclasses import dataclass


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


PAGES: tuple[TourPage, ...] = (
    TourPage("lab_pages/home.py", "", "Home",
             "The ELBO in one line, the model that is loaded, a link to every page.",
             "the bound itself: log p(x) ≥ ELBO = reconstruction − KL to the prior"),
    TourPage("lab_pages/theory.py", "theory", "Theory: entropy to ELBO",
             "Information, entropy, KL, variational inference and the reparameterization trick, with sliders.",
             "all three: the reconstruction term is a negative cross-entropy, the KL to the prior has a closed form, "
             "and the gap KL(q‖p(z|x)) is why maximising the ELBO fits q"),
    TourPage("lab_pages/train.py", "train", "Train",
             "Train a small VAE (or AE) live and watch −ELBO split into reconstruction and KL, per latent dimension.",
             "reconstruction against KL to the prior: β weights the KL, dimensions whose KL stays at 0 are inactive, "
             "an AE trains the reconstruction term alone"),
    TourPage("lab_pages/elbo.py", "elbo", "ELBO, term by term",
             "Pick one image: check log p(x) = ELBO + KL(q‖p(z|x)) with importance sampling, and by exact "
             "quadrature for z=2 (VAE only).",
             "the gap: log p̂_K(x) − ELBO estimates KL(q(z|x)‖p(z|x)); for z=2 quadrature gives it exactly"),
    TourPage("lab_pages/explorer.py", "explorer", "Latent explorer",
             "Drag latent sliders, traverse dimensions, interpolate, and see the 2-D manifold.",
             "the decoder p(x|z) inside the reconstruction term, and the prior p(z) the KL pulls towards"),
    TourPage("lab_pages/latent_map.py", "latent-map", "Latent map (UMAP)",
             "A UMAP of the posterior means of the test set; select points to see their images.",
             "the encoder q(z|x): classes cluster because the reconstruction term needs a code that says what to draw"),
    TourPage("lab_pages/compare.py", "compare", "AE vs VAE",
             "Same architecture, data and seed: why the VAE's latent space can be sampled and the AE's cannot.",
             "what KL(q(z|x)‖p(z)) buys: an AE's codes drift away from N(0, I), and its prior samples are not images"),
)

WORKSHOP_TITLE = "A 20-minute workshop"
WORKSHOP_INTRO = (
    "Before the room arrives: start the server and open every page once, so that the caches (encoded test "
    "sets, UMAP, the ELBO page's samples) are warm. The lab opens on `fmnist_vae_z16` (or `digits_vae_z2` "
    "without Fashion-MNIST)."
)
WORKSHOP: tuple[WorkshopStep, ...] = (
    WorkshopStep("0–2", "Home",
                 "read the one-line ELBO: reconstruction minus KL to the prior, a lower bound on log p(x)",
                 "If log p(x) is what we want, why maximise something smaller?"),
    WorkshopStep("2–5", "Theory, sections 2–3",
                 "section 2: p starts as N(0, 1), so the KL shown is the VAE's KL term; shrink σ₁ (a more certain q) "
                 "and watch it grow. Section 3: drag *μ of q* from one mode to the other; ELBO and KL(q‖p(z|x)) trade "
                 "places, their sum stays log p(x). Press *Fit q by SGD* and play the animation",
                 "q found one mode. Why not both?"),
    WorkshopStep("5–9", "Train",
                 "keep the defaults (VAE, z=16, 5 epochs), press **Start**. Point at the stacked chart (reconstruction "
                 "falls, KL rises) and, after a minute, at the pale rows of the KL heatmap. **Pause**, **Step** twice "
                 "(one batch each), **Resume**",
                 "Some dimensions carry 0 nats. Why would the model switch a dimension off?"),
    WorkshopStep("9–13", "ELBO, term by term",
                 "press the *#* button under a test image; move *K* from 1 to 5000 and watch log p̂_K(x) climb above "
                 "the ELBO. Then press *Switch to the shipped z=2 VAE*: the exact log p(x) and the true posterior next "
                 "to q's ellipses",
                 "Where does q put mass that the true posterior does not? That mismatch costs exactly the gap."),
    WorkshopStep("13–16", "Latent explorer, then Latent map",
                 "with the z=2 model current: drag the two sliders, open *2-D manifold*. On the Latent map, lasso one "
                 "cluster, look at its images, press *Send μ to the latent explorer*",
                 "What lies between two clusters?"),
    WorkshopStep("16–19", "AE vs VAE",
                 "compare the 16 prior draws of the pair (the shipped pair matching the current model, when there is "
                 "one), then their reconstruction errors and the aggregate posterior against the prior at the bottom",
                 "Which one reconstructs better, which one samples better, and which term of the ELBO makes the "
                 "difference?"),
    WorkshopStep("19–20", "Home",
                 "point at each term of the identity and name the page where the room saw it",
                 "Which term would you weaken to get sharper reconstructions? (β < 1)"),
)
WORKSHOP_NOTE = (
    "Switching to the z=2 model (minute 9) changes the current model on every page of that browser tab; "
    "pick `fmnist_vae_z16` in the sidebar to go back."
)


def _cell(text: str) -> str:
    """Text for a Markdown table cell: a bare ``|`` would end the cell."""
    return text.replace("|", "\\|")


def tour_markdown() -> str:
    """The README's tour: one row per page, with the ELBO term it teaches."""
    rows = ["| page | what you do there | the ELBO term it teaches |", "|---|---|---|"]
    for p in PAGES:
        rows.append(f"| **{p.title}** (`/{p.url}`) | {_cell(p.blurb)} | {_cell(p.term)} |")
    return "\n".join(rows)


def workshop_markdown() -> str:
    """The workshop script as a Markdown table (README); Home draws the same steps as a list."""
    rows = ["| minute | page | what to click | what to ask the room |", "|---|---|---|---|"]
    for s in WORKSHOP:
        rows.append(f"| {s.minutes} | {_cell(s.page)} | {_cell(s.do)} | \"{_cell(s.ask)}\" |")
    return "\n\n".join([WORKSHOP_INTRO, "\n".join(rows), WORKSHOP_NOTE])


def workshop_list_markdown() -> str:
    """The same steps as a numbered Markdown list (Home is narrower than a README)."""
    return "\n".join(f"{i}. **({s.minutes} min) {s.page}.** {s.do[:1].upper()}{s.do[1:]}. *Ask: “{s.ask}”*"
                     for i, s in enumerate(WORKSHOP, 1))
