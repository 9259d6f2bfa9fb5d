"""The lab's colours, in a module that imports nothing: the home page and the router use them
before torch is imported (lab_pages.common re-exports them for the other pages)."""

# One class -> one colour on every page (Plotly's qualitative "D3" palette).
CLASS_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)
RECON_COLOR = "#4C78A8"  # reconstruction term, everywhere
KL_COLOR = "#F58518"     # KL term, everywhere
ELBO_COLOR = "#54A24B"
LOGPX_COLOR = "#B279A2"
