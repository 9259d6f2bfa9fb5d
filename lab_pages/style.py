"""The lab's colours, in a module that imports nothing: the home page and the router use them
before torch is imported (the other pages import them from here too)."""

# One class -> one colour on every page (Plotly's qualitative "D3" palette).
CLASS_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
RECON_COLOR = "#4C78A8"  # reconstruction term, everywhere
KL_COLOR = "#F58518"  # KL term, everywhere
ELBO_COLOR = "#54A24B"
LOGPX_COLOR = "#B279A2"
P_COLOR, Q_COLOR = "#1f77b4", "#ff7f0e"  # Theory page: p / the target posterior, q / its approximation
FAMILY_COLORS = {
    "gaussian": Q_COLOR,
    "laplace": "#e45756",
    "mixture": "#72b7b2",
}  # Derivation page: q's families
MU_COLOR = "#8da0cb"  # histogram bars of μ (not a class, not recon/KL)
INK_COLOR = "black"  # lines that are no term and no class: the prior, the objective, exact log p(x)
GUIDE_COLOR = "grey"  # reference lines: β, the objective, the current K, a warm-up band
CORRECT_COLOR, MISTAKEN_COLOR = "#2E7D32", "#C62828"  # Pitfalls page: the correct run, the mistaken one


def class_color(label: int) -> str:
    """The colour of class ``label`` on every page."""
    return CLASS_COLORS[int(label) % len(CLASS_COLORS)]
