"""Every Plotly figure the pages draw: pure functions, arrays and plain values in, ``go.Figure`` out.

No Streamlit and no torch here, so each figure is tested on its own (tests/test_charts.py).
Every string a user sees (titles, axis titles, trace names, hover text, annotations) is an
argument: the pages pass their text, so a translator applies in one place. Colours come from
lab_pages.style: one class keeps one colour, and reconstruction and KL keep theirs, on every page.
Units belong in the axis titles the pages pass. Two of them are drawn again as static SVG strings
for the Train page's live view: lab_pages.svg_charts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lab_pages.style import (
    ELBO_COLOR,
    FAMILY_COLORS,
    GUIDE_COLOR,
    INK_COLOR,
    KL_COLOR,
    LOGPX_COLOR,
    MU_COLOR,
    P_COLOR,
    Q_COLOR,
    RECON_COLOR,
    class_color,
)

KL_SCALE = [[0, "#ffffff"], [1, KL_COLOR]]  # KL per dimension: white (0 nats) to the KL colour

# Plotly's toolbar (the modebar) floats over the top right of every chart, 22 px tall at 2 px from the top
# (measured in Chromium) and up to ~300 px wide with the selection tools: a title or a legend drawn there is
# covered while the pointer is over the chart. Every builder keeps this band free (_clear_of_toolbar).
TOOLBAR_BAND = 32  # px at the top of every figure left to the toolbar
TITLE_LINE = 24  # px per line of a figure's or a subplot's title (Streamlit's theme draws them at 16 px)
LEGEND_ROW = 22  # px of a one-row legend drawn above the plot (12 px text)
TOP_GAP = 6  # px between what sits above the plot and the plot itself


def _above_plot(fig: go.Figure) -> int:
    """Pixels the things drawn between the toolbar band and the plot need: the title's lines, a legend
    anchored above the plot (one row), subplot titles (annotations in paper coordinates at y >= 1)."""
    lay = fig.layout
    text = lay.title.text or ""
    px = TITLE_LINE * (text.count("<br>") + 1) if text else 0
    legend = lay.legend
    if legend.y is not None and legend.y >= 1 and legend.yref in (None, "paper"):
        px += LEGEND_ROW
    if any(a.yref == "paper" and a.y is not None and a.y >= 1 for a in lay.annotations):
        px += TITLE_LINE
    return px


def _clear_of_toolbar(fig: go.Figure) -> go.Figure:
    """Keep the toolbar band free: the title (and each animation frame's) hangs from the figure's top edge
    below the band, and the top margin holds the band, the title and whatever else sits above the plot.

    Titles are placed in container coordinates (``yref="container"``, ``y=1``, ``yanchor="top"``, ``pad.t``),
    so their place does not depend on the figure's height. Idempotent: builders that call builders are fine."""
    place = dict(yref="container", y=1, yanchor="top", pad=dict(t=TOOLBAR_BAND))
    if fig.layout.title.text:
        fig.layout.title.update(place)
    for frame in fig.frames or ():
        if frame.layout is not None and frame.layout.title.text:
            frame.layout.title.update(place)
    need = TOOLBAR_BAND + _above_plot(fig) + TOP_GAP
    if fig.layout.margin.t is None or fig.layout.margin.t < need:
        fig.layout.margin.t = need
    return fig


def _builder(build: Callable[..., go.Figure]) -> Callable[..., go.Figure]:
    """Every public figure builder goes through this: its figure leaves the toolbar's band free."""

    @functools.wraps(build)
    def built(*args: Any, **kwargs: Any) -> go.Figure:
        return _clear_of_toolbar(build(*args, **kwargs))

    return built


def _fast(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain dicts, without Plotly's per-property validation: the Train page redraws
    every second beside the training thread, and validation was half its cost."""
    return go.Figure(data, layout=layout, _validate=False)


def _title(text: str | None) -> dict:
    return dict(text=text or "")


# ------------------------------------------------------------------ training curves
@_builder
def loss_stack(
    step,
    recon_cost,
    kl=None,
    objective=None,
    eval_step=(),
    eval_value=(),
    *,
    recon_name: str,
    kl_name: str = "",
    objective_name: str = "",
    eval_name: str = "",
    x_title: str,
    y_title: str,
) -> go.Figure:
    """−ELBO stacked as reconstruction + KL (``kl`` given: a VAE) or the reconstruction cost alone (AE).

    ``objective`` (β, warm-up, free bits: what is minimised when it is not −ELBO) is a dotted line;
    test-set evaluations are diamonds (ELBO colour for a VAE, reconstruction colour for an AE).
    """
    vae = kl is not None
    data = [
        dict(
            type="scatter",
            x=step,
            y=recon_cost,
            name=recon_name,
            stackgroup="e" if vae else None,
            line=dict(color=RECON_COLOR),
        )
    ]
    if vae:
        data.append(
            dict(type="scatter", x=step, y=kl, name=kl_name, stackgroup="e", line=dict(color=KL_COLOR))
        )
    if vae and objective is not None:
        data.append(
            dict(
                type="scatter",
                x=step,
                y=objective,
                name=objective_name,
                line=dict(dash="dot", color=GUIDE_COLOR),
            )
        )
    if len(eval_step):
        data.append(
            dict(
                type="scatter",
                x=list(eval_step),
                y=list(eval_value),
                mode="markers",
                name=eval_name,
                marker=dict(color=ELBO_COLOR if vae else RECON_COLOR, symbol="diamond", size=9),
            )
        )
    return _fast(
        data,
        dict(
            xaxis=dict(title=_title(x_title)),
            yaxis=dict(title=_title(y_title)),
            height=380,
            margin=dict(t=10, b=10),
            legend=dict(orientation="h", yanchor="top", y=-0.22),
        ),
    )


@_builder
def kl_heatmap(
    step,
    kl_per_dim: np.ndarray,
    dim_labels: Sequence,
    *,
    x_title: str,
    y_title: str,
    colorbar_title: str,
    title: str = "",
    height: int = 300,
) -> go.Figure:
    """KL per latent dimension over training: ``kl_per_dim`` (steps, z), one row per dimension."""
    z = np.asarray(kl_per_dim).T  # (z, steps)
    return _fast(
        [
            dict(
                type="heatmap",
                x=step,
                y=list(dim_labels),
                z=z,
                colorscale=KL_SCALE,
                colorbar=dict(title=_title(colorbar_title)),
            )
        ],
        dict(
            title=_title(title),
            xaxis=dict(title=_title(x_title)),
            yaxis=dict(title=_title(y_title)),
            height=height,
            margin=dict(t=40 if title else 20, b=10),
        ),
    )


@_builder
def elbo_curves(
    step,
    recon_cost,
    kl,
    objective,
    beta,
    eval_step,
    test_neg_elbo,
    warmup: int,
    *,
    recon_name: str,
    kl_name: str,
    objective_name: str,
    eval_name: str,
    beta_name: str,
    warmup_text: str,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """The ELBO page's curves: recon + KL stacked, the objective, test −ELBO, and β on a second axis."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(x=step, y=recon_cost, name=recon_name, stackgroup="e", line=dict(color=RECON_COLOR))
    fig.add_scatter(x=step, y=kl, name=kl_name, stackgroup="e", line=dict(color=KL_COLOR))
    fig.add_scatter(x=step, y=objective, name=objective_name, line=dict(color=INK_COLOR, dash="dot", width=1))
    if len(eval_step):
        fig.add_scatter(
            x=eval_step,
            y=test_neg_elbo,
            name=eval_name,
            mode="markers",
            marker=dict(color=ELBO_COLOR, size=6),
        )
    fig.add_scatter(
        x=step, y=beta, name=beta_name, line=dict(color=GUIDE_COLOR, dash="dash"), secondary_y=True
    )
    if warmup > 0:
        fig.add_vrect(
            x0=0,
            x1=warmup,
            fillcolor=GUIDE_COLOR,
            opacity=0.12,
            line_width=0,
            annotation_text=warmup_text,
            annotation_position="top left",
        )
    fig.update_yaxes(title_text=y_title, secondary_y=False)
    bmax = max(1.0, float(np.nanmax(beta)))
    fig.update_yaxes(
        title_text=beta_name, range=[0, 1.1 * bmax], dtick=bmax / 4, tick0=0, secondary_y=True, showgrid=False
    )
    return fig.update_layout(xaxis_title=x_title, height=380, legend=dict(orientation="h", y=-0.2))


@_builder
def kl_bars(
    dim_labels: Sequence[str], kl: np.ndarray, *, title: str, x_title: str, y_title: str
) -> go.Figure:
    """KL of each latent dimension now, one bar per dimension."""
    fig = go.Figure(go.Bar(x=list(dim_labels), y=kl, marker_color=KL_COLOR))
    return fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=300)


@_builder
def active_units(
    eval_step, active, latent_dim: int, *, title: str, x_title: str, y_title: str, limit_text: str
) -> go.Figure:
    """Active units at each evaluation (a step line), against the latent size."""
    fig = go.Figure(
        go.Scatter(x=eval_step, y=active, mode="lines+markers", line=dict(color=KL_COLOR, shape="hv"))
    )
    fig.add_hline(y=latent_dim, line=dict(color=GUIDE_COLOR, dash="dot"), annotation_text=limit_text)
    return fig.update_layout(
        title=title, xaxis_title=x_title, height=300, yaxis=dict(title=y_title, range=[0, latent_dim + 0.5])
    )


# ------------------------------------------------------------------ one image: IWAE and the posterior
@_builder
def iwae_curve(
    ks,
    iwae,
    k_choices,
    mean,
    se,
    elbo: float,
    k: int,
    log_px_hat_k: float,
    exact: float | None = None,
    *,
    run_name: str,
    mean_name: str,
    elbo_text: str,
    k_text: str,
    exact_text: str = "",
    band_name: str = "",
    above_name: str = "",
    x_title: str,
    y_title: str,
) -> go.Figure:
    """log p̂_K(x) over K (log axis): one run; the mean over independent repeats at ``k_choices`` with a band of ± one
    standard error (``band_name``); the means above the exact log p(x) marked (``above_name``: noise, since
    E[log p̂_K] ≤ log p(x)); the ELBO, exact log p(x) (when known) and log p̂_K at the chosen K as level lines named
    in the legend (``elbo_text``, ``exact_text``, ``k_text``: no annotation on the plot), and the chosen K dotted."""
    kc = np.asarray(list(k_choices))
    m, e = np.asarray(mean, dtype=float), np.asarray(se, dtype=float)
    fig = go.Figure(
        go.Scatter(x=ks, y=iwae, name=run_name, line=dict(color=LOGPX_COLOR, width=1), opacity=0.6)
    )
    fig.add_scatter(
        x=np.concatenate([kc, kc[::-1]]),
        y=np.concatenate([m + e, (m - e)[::-1]]),
        fill="toself",
        mode="lines",  # the band's outline only: markers at its corners read as data points
        fillcolor="rgba(0,0,0,0.12)",
        line=dict(width=0),
        hoverinfo="skip",
        name=band_name or "± SE",
    )
    fig.add_scatter(
        x=kc,
        y=m,
        mode="lines+markers",
        name=mean_name,
        line=dict(color=LOGPX_COLOR, width=2),
        marker=dict(color=LOGPX_COLOR, symbol="diamond"),
    )
    if exact is not None and above_name:
        up = m > exact
        if up.any():
            fig.add_scatter(
                x=kc[up],
                y=m[up],
                mode="markers",
                name=above_name,
                marker=dict(color=GUIDE_COLOR, symbol="x", size=10),
            )
    # The reference levels are legend entries, not annotations: a label written on the plot lands on the
    # curves, which approach exactly these levels as K grows.
    span = [float(np.min(ks)), float(np.max(ks))] if len(ks) else [1.0, float(k)]
    levels = [(elbo_text, elbo, dict(color=ELBO_COLOR))]
    if exact is not None:
        levels.append((exact_text, exact, dict(color=INK_COLOR, dash="dash")))
    levels.append((k_text, log_px_hat_k, dict(color=LOGPX_COLOR, dash="dot")))
    for name, level, line in levels:
        fig.add_scatter(x=span, y=[level, level], mode="lines", name=name, line=line, hoverinfo="name+y")
    fig.add_vline(x=k, line=dict(color=GUIDE_COLOR, dash="dot"))
    return fig.update_layout(
        xaxis_type="log",
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=420,
        legend=dict(orientation="h", yref="container", yanchor="bottom", y=0, x=0, xanchor="left"),
    )


@_builder
def posterior_line(
    z, posterior, q, *, posterior_name: str, q_name: str, x_title: str, y_title: str
) -> go.Figure:
    """z = 1: the true posterior p(z|x) and q(z|x) as densities on a line."""
    fig = go.Figure(
        [
            go.Scatter(x=z, y=posterior, name=posterior_name, line=dict(color=LOGPX_COLOR)),
            go.Scatter(x=z, y=q, name=q_name, line=dict(color=ELBO_COLOR, dash="dash")),
        ]
    )
    return fig.update_layout(xaxis_title=x_title, yaxis_title=y_title, height=380)


@_builder
def posterior_map(
    z1,
    z2,
    density: np.ndarray,
    ellipses: Sequence[tuple[str, np.ndarray, np.ndarray, str]],
    mu,
    lo,
    hi,
    *,
    colorbar_title: str,
    mu_name: str,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """z = 2: the true posterior ``density`` (len(z1), len(z2)) as a heatmap, q's ellipses
    (name, x, y, dash) and μ on top, in the box ``lo``..``hi`` with equal axes."""
    fig = go.Figure(
        go.Heatmap(
            x=z1, y=z2, z=np.asarray(density).T, colorscale="Purples", colorbar=dict(title=colorbar_title)
        )
    )
    for name, ex, ey, dash in ellipses:
        fig.add_scatter(x=ex, y=ey, mode="lines", name=name, line=dict(color=ELBO_COLOR, dash=dash, width=2))
    fig.add_scatter(
        x=[mu[0]], y=[mu[1]], mode="markers", name=mu_name, marker=dict(color=ELBO_COLOR, symbol="x", size=9)
    )
    return fig.update_layout(
        xaxis=dict(title=x_title, range=[lo[0], hi[0]]),
        height=460,
        yaxis=dict(title=y_title, range=[lo[1], hi[1]], scaleanchor="x"),
        legend=dict(orientation="h", y=-0.2),
    )


# ------------------------------------------------------------------ latent space
@_builder
def class_scatter(
    xy: np.ndarray,
    ids: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    title: str,
    axes: tuple[str, str],
    row_text: str,
    height: int = 560,
    overlays: Sequence[tuple[str, np.ndarray, np.ndarray]] = (),
    equal_axes: bool = False,
) -> go.Figure:
    """Codes ``xy`` (N, 2) of test rows ``ids``: one WebGL trace per class in its class colour,
    ``customdata`` = the row id (selections map back to rows, never to point indices). ``overlays``
    (name, x, y) are dotted reference lines (the prior's σ circles) that hovering skips."""
    fig = go.Figure()
    for c in np.unique(labels[ids]):
        m, name = labels[ids] == c, class_names[int(c)]
        fig.add_trace(
            go.Scattergl(
                x=xy[m, 0],
                y=xy[m, 1],
                mode="markers",
                name=name,
                customdata=ids[m],
                marker=dict(color=class_color(int(c)), size=4, opacity=0.75),
                hovertemplate=f"{name}<br>{row_text} %{{customdata}}<extra></extra>",
            )
        )
    for name, xs, ys in overlays:
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=name,
                line=dict(color=INK_COLOR, dash="dot", width=1),
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title=axes[0],
        yaxis_title=axes[1],
        height=height,
        # under the x axis, across: at the top right, under the toolbar's lasso button, a press meant to start a
        # lasso landed on the legend and hid a class; a legend in the figure's bottom edge (container coordinates)
        # pushes the bottom margin by its own height, so it never covers the axis title however many rows it wraps to
        legend=dict(
            itemsizing="constant",
            orientation="h",
            yref="container",
            yanchor="bottom",
            y=0,
            x=0,
            xanchor="left",
        ),
    )
    return fig.update_yaxes(scaleanchor="x") if equal_axes else fig


@_builder
def latent_plane(
    mu: np.ndarray,
    ids: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    circles: Sequence[tuple[float, float, np.ndarray, np.ndarray]],
    *,
    title: str,
    axes: tuple[str, str],
    row_text: str,
    circle_name: str,
    height: int = 560,
) -> go.Figure:
    """A 2-D latent space shown as itself: codes ``mu`` (N, 2) of test rows ``ids`` (μ₁ across, μ₂ up, equal axes) in
    their class colours (:func:`class_scatter`), over the prior's circles ``circles`` = (radius, prior mass inside, xs,
    ys), each named ``circle_name.format(r=radius, mass=mass)``. No projection: the axes are latent dimensions, and the
    circles show the prior's scale on them."""
    rings = [(circle_name.format(r=r, mass=mass), xs, ys) for r, mass, xs, ys in circles]
    return class_scatter(
        mu,
        ids,
        labels,
        class_names,
        title=title,
        axes=axes,
        row_text=row_text,
        height=height,
        overlays=rings,
        equal_axes=True,
    )


@_builder
def with_marker(fig: go.Figure, x: float, y: float, *, name: str, color: str = "#000000") -> go.Figure:
    """``fig`` with one large star marker at (x, y) on top (your image on a map); returns the same figure."""
    fig.add_trace(
        go.Scatter(
            x=[x],
            y=[y],
            mode="markers",
            name=name,
            hovertext=[name],
            hoverinfo="text",
            marker=dict(symbol="star", size=22, color=color, line=dict(width=2, color="#ffffff")),
        )
    )
    return fig


@_builder
def mu_density_rows(
    centres,
    density: np.ndarray,
    prior_pdf,
    dim_labels: Sequence[str],
    *,
    prior_label: str,
    title: str,
    x_title: str,
    colorbar_title: str,
    hover_text: str = "density",
) -> go.Figure:
    """Density of each μ_j over the test set as one heatmap row per dimension (``density`` (z, bins) at bin ``centres``),
    under a top row with the prior N(0, 1)'s density ``prior_pdf`` at the same centres: a row that looks like the top one
    matches the prior. Colour from white (0) to the μ colour, saturating at twice the prior's peak (a switched-off
    dimension's spike at 0 would wash out every other row); dotted lines at ±1σ and ±2σ of the prior.

    One axis and one image: the 16-panel histogram grid it replaces cost the browser ~1.3 s per AE vs VAE visit."""
    rows = np.vstack([np.asarray(prior_pdf, dtype=np.float64)[None], np.asarray(density, dtype=np.float64)])
    labels = [prior_label, *dim_labels]
    cap = 2.0 * float(np.max(prior_pdf)) if len(prior_pdf) else 1.0
    lines = [
        dict(
            type="line", x0=v, x1=v, y0=0, y1=1, yref="paper", line=dict(color=INK_COLOR, width=1, dash="dot")
        )
        for v in (-2.0, -1.0, 1.0, 2.0)
    ]
    data = [
        dict(
            type="heatmap",
            x=np.asarray(centres),
            y=labels,
            z=rows,
            zmin=0.0,
            zmax=cap,
            colorscale=[[0, "#ffffff"], [1, MU_COLOR]],
            colorbar=dict(title=_title(colorbar_title)),
            hovertemplate=f"%{{y}}<br>μ = %{{x:.2f}}<br>{hover_text} %{{z:.3f}}<extra></extra>",
        )
    ]
    return _fast(
        data,
        dict(
            title=_title(title),
            xaxis=dict(title=_title(x_title), zeroline=False),
            yaxis=dict(autorange="reversed", type="category"),
            shapes=lines,
            height=max(260, 22 * len(labels) + 140),
            margin=dict(t=50),
        ),
    )


@_builder
def pair_codes(
    xy: np.ndarray,
    ids: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    title: str,
    axes: tuple[str, str],
    row_text: str,
) -> go.Figure:
    """AE vs VAE: a 2-D map (UMAP or PCA) of one model's codes, :func:`class_scatter` at the height of half a page's
    width (a 2-D latent space is drawn by :func:`latent_plane` with ``height=PAIR_HEIGHT``)."""
    return class_scatter(
        xy, ids, labels, class_names, title=title, axes=axes, row_text=row_text, height=PAIR_HEIGHT
    )


PAIR_HEIGHT = (
    560  # px of each side's map on AE vs VAE: at half width its legend wraps to 5–7 rows under the plot
)


@_builder
def path_norms(
    paths: Sequence[tuple[str, np.ndarray]],
    reference: float | None = None,
    *,
    reference_text: str = "",
    title: str,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """‖z‖ along interpolation paths (name, norms per step); optionally the prior's typical norm."""
    fig = go.Figure()
    for name, norms in paths:
        fig.add_scatter(x=list(range(len(norms))), y=list(norms), mode="lines+markers", name=name)
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dot", annotation_text=reference_text)
    return fig.update_layout(
        height=260, margin=dict(t=30, b=10), title=title, xaxis_title=x_title, yaxis_title=y_title
    )


# ------------------------------------------------------------------ theory
@_builder
def densities(z, traces: Sequence[tuple[str, np.ndarray, str]], *, x_title: str, y_title: str) -> go.Figure:
    """Densities over z as lines; ``traces`` are (name, values, colour)."""
    fig = go.Figure([go.Scatter(x=z, y=y, name=n, line=dict(color=c)) for n, y, c in traces])
    return fig.update_layout(xaxis_title=x_title, yaxis_title=y_title, height=320)


@_builder
def discrete(
    outcomes: Sequence[str],
    p,
    q,
    info_p,
    h_p: float,
    *,
    panel_titles: tuple[str, str],
    p_name: str,
    q_name: str,
    info_name: str,
    entropy_text: str,
    x_title: str,
    p_title: str,
    info_title: str,
) -> go.Figure:
    """Left: p and q as grouped bars; right: the information −log p of each outcome (inf: no bar) and H(p)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=panel_titles)
    fig.add_bar(x=list(outcomes), y=p, name=p_name, marker_color=P_COLOR, row=1, col=1)
    fig.add_bar(x=list(outcomes), y=q, name=q_name, marker_color=Q_COLOR, row=1, col=1)
    info = [None if np.isinf(v) else v for v in info_p]
    fig.add_bar(
        x=list(outcomes),
        y=info,
        name=info_name,
        marker_color=P_COLOR,
        opacity=0.6,
        showlegend=False,
        row=1,
        col=2,
    )
    fig.add_hline(y=h_p, line_dash="dash", annotation_text=entropy_text, row=1, col=2)
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=p_title, row=1, col=1)
    fig.update_yaxes(title_text=info_title, row=1, col=2)
    return fig.update_layout(barmode="group", height=340)


@_builder
def fit_animation(
    z,
    posterior,
    frames: Sequence[tuple[str, np.ndarray, str]],
    y_max: float,
    *,
    posterior_name: str,
    q_name: str,
    play: str,
    pause: str,
    step_prefix: str,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """The posterior fixed and q moving: ``frames`` are (label, q over z, title), played by buttons
    and a slider in the browser (the script never waits on it)."""

    def q_at(y) -> go.Scatter:
        return go.Scatter(x=z, y=y, name=q_name, line=dict(color=Q_COLOR))

    fig = go.Figure(
        [go.Scatter(x=z, y=posterior, name=posterior_name, line=dict(color=P_COLOR)), q_at(frames[0][1])],
        frames=[
            go.Frame(data=[q_at(y)], traces=[1], name=n, layout=go.Layout(title=t)) for n, y, t in frames
        ],
    )
    # redraw=True: a frame's own layout (its title, "step n: ELBO = …") is applied only on a redraw; with
    # redraw=False plotly.js moves the curve and leaves the first frame's title up (seen in Chromium)
    still = dict(mode="immediate", frame=dict(duration=0, redraw=True))
    go_on = dict(frame=dict(duration=80, redraw=True), fromcurrent=True)
    return fig.update_layout(
        title=frames[0][2],
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=400,
        yaxis_range=[0, y_max],
        updatemenus=[
            dict(
                type="buttons",
                x=0,
                y=-0.3,
                xanchor="left",
                direction="left",
                buttons=[
                    dict(label=play, method="animate", args=[None, go_on]),
                    dict(label=pause, method="animate", args=[[None], still]),
                ],
            )
        ],
        sliders=[
            dict(
                x=0.25,
                len=0.75,
                y=-0.2,
                currentvalue=dict(prefix=step_prefix),
                steps=[dict(label=n, method="animate", args=[[n], still]) for n, _, _ in frames],
            )
        ],
    )


@_builder
def sgd_curve(
    elbo,
    estimate,
    log_px: float,
    *,
    elbo_name: str,
    estimate_name: str,
    log_px_text: str,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """The exact ELBO at each SGD step, the noisy estimate each step used (from step 1), and log p(x)."""
    fig = go.Figure(
        [
            go.Scatter(y=elbo, name=elbo_name, line=dict(color=Q_COLOR)),
            go.Scatter(
                x=np.arange(1, len(estimate) + 1),
                y=estimate,
                name=estimate_name,
                line=dict(color=Q_COLOR, width=1),
                opacity=0.35,
            ),
        ]
    )
    fig.add_hline(y=log_px, line_dash="dash", line_color=P_COLOR, annotation_text=log_px_text)
    return fig.update_layout(xaxis_title=x_title, yaxis_title=y_title, height=340)


@_builder
def elbo_landscape(
    mus,
    log_sigmas,
    elbo: np.ndarray,
    path_mu,
    path_log_sigma,
    *,
    path_name: str,
    colorbar_title: str,
    title: str,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """Contours of the ELBO over (μ, log σ) (``elbo`` (len(log_sigmas), len(mus))) with the SGD path."""
    path = go.Scatter(x=path_mu, y=path_log_sigma, mode="lines", name=path_name, line=dict(color="white"))
    fig = go.Figure([go.Contour(x=mus, y=log_sigmas, z=elbo, colorbar=dict(title=colorbar_title)), path])
    return fig.update_layout(
        title=title, height=340, showlegend=False, xaxis_title=x_title, yaxis_title=y_title
    )


@_builder
def gradient_histograms(
    reparam, score, exact: float, *, names: tuple[str, str], exact_text: str, x_title: str, y_title: str
) -> go.Figure:
    """Histograms of one-sample gradient estimates, reparameterized (left) and score function (right)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=names)
    fig.add_histogram(x=reparam, nbinsx=60, marker_color=Q_COLOR, name=names[0], row=1, col=1)
    fig.add_histogram(x=score, nbinsx=60, marker_color=P_COLOR, name=names[1], row=1, col=2)
    for col in (1, 2):
        fig.add_vline(x=exact, line_dash="dash", annotation_text=exact_text, row=1, col=col)
        fig.update_xaxes(title_text=x_title, row=1, col=col)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    return fig.update_layout(height=340, showlegend=False)


@_builder
def family_fits(
    z,
    posterior,
    fits: Sequence[tuple[str, str, np.ndarray]],
    *,
    posterior_name: str,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """The true posterior p(z|x) on ``z`` and the best q of each family: ``fits`` are (family key, name, pdf on z);
    each family keeps its colour (lab_pages.style.FAMILY_COLORS), the posterior is a thick line under them."""
    fig = go.Figure(
        go.Scatter(x=z, y=posterior, name=posterior_name, line=dict(color=P_COLOR, width=4), opacity=0.5)
    )
    for family, name, pdf in fits:
        fig.add_scatter(
            x=z, y=pdf, name=name, line=dict(color=FAMILY_COLORS.get(family, INK_COLOR), dash="dash")
        )
    return fig.update_layout(
        xaxis_title=x_title, yaxis_title=y_title, height=360, legend=dict(orientation="h", y=-0.25)
    )


# ---- pitfalls
from lab_pages.style import CORRECT_COLOR, MISTAKEN_COLOR  # noqa: E402 - this section's colours

PAIR_COLORS = (CORRECT_COLOR, MISTAKEN_COLOR)


@_builder
def pair_bars(
    categories: Sequence[str],
    correct,
    mistaken,
    *,
    names: tuple[str, str],
    title: str,
    x_title: str,
    y_title: str,
    reference: float | None = None,
    reference_text: str = "",
    log_y: bool = False,
) -> go.Figure:
    """One value per category for the correct run and the mistaken one, as grouped bars (Pitfalls page):
    KL per latent dimension, gradient norms per parameter, z's moments; ``reference`` is a dotted line."""
    data = [
        dict(type="bar", x=list(categories), y=list(v), name=n, marker=dict(color=c))
        for v, n, c in zip((correct, mistaken), names, PAIR_COLORS)
    ]
    fig = _fast(
        data,
        dict(
            title=_title(title),
            barmode="group",
            height=320,
            margin=dict(t=40, b=10),
            xaxis=dict(title=_title(x_title)),
            yaxis=dict(title=_title(y_title), type="log" if log_y else "linear"),
            legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1.0, xanchor="right"),
        ),
    )
    if reference is not None:
        fig.add_hline(y=reference, line=dict(color=GUIDE_COLOR, dash="dot"), annotation_text=reference_text)
    return fig


@_builder
def pair_curves(
    step_correct,
    correct,
    step_mistaken,
    mistaken,
    *,
    names: tuple[str, str],
    title: str,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """What each run of a pair reported over training (its own objective), correct and mistaken."""
    data = [
        dict(type="scatter", x=list(s), y=list(v), name=n, mode="lines", line=dict(color=c))
        for s, v, n, c in zip((step_correct, step_mistaken), (correct, mistaken), names, PAIR_COLORS)
    ]
    return _fast(
        data,
        dict(
            title=_title(title),
            height=320,
            margin=dict(t=40, b=10),
            xaxis=dict(title=_title(x_title)),
            yaxis=dict(title=_title(y_title)),
            legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1.0, xanchor="right"),
        ),
    )


@_builder
def likelihood_gaps(
    bce_grey,
    cb_grey,
    bce_binarized,
    d_log2: float,
    *,
    names: tuple[str, str, str, str],
    x_title: str,
    y_title: str,
) -> go.Figure:
    """Per image: −BCE on grey pixels, the continuous-Bernoulli log-likelihood of the same images, and −BCE on
    binarized ones; a dotted line at −BCE + D log 2, the least the normaliser adds (``names`` in that order)."""
    idx = list(range(len(bce_grey)))
    bound = (np.asarray(bce_grey, dtype=float) + d_log2).tolist()
    data = [
        dict(type="scatter", x=idx, y=list(v), name=n, mode="markers", marker=dict(color=c, size=7))
        for v, n, c in zip(
            (bce_grey, cb_grey, bce_binarized), names, (MISTAKEN_COLOR, CORRECT_COLOR, INK_COLOR)
        )
    ]
    data.append(
        dict(
            type="scatter",
            x=idx,
            y=bound,
            name=names[3],
            mode="lines",
            line=dict(color=GUIDE_COLOR, dash="dot"),
        )
    )
    return _fast(
        data,
        dict(
            height=340,
            margin=dict(t=10, b=10),
            xaxis=dict(title=_title(x_title)),
            yaxis=dict(title=_title(y_title)),
            legend=dict(orientation="h", yanchor="top", y=-0.2),
        ),
    )


# ------------------------------------------------------------------ theory: information, likelihood
@_builder
def information_curve(
    p_grid,
    info_grid,
    points: Sequence[tuple[str, float, float]],
    *,
    curve_name: str,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """I(p) = −log p over (0, 1] (log-scaled p) and marked events ``points`` = (name, p, I(p)): falling, 0 at p = 1."""
    fig = go.Figure(go.Scatter(x=p_grid, y=info_grid, name=curve_name, line=dict(color=P_COLOR)))
    for i, (name, p, info) in enumerate(points):
        fig.add_scatter(
            x=[p],
            y=[info],
            name=name,
            mode="markers+text",
            text=[name],
            textposition="top right",
            marker=dict(size=11, color=(Q_COLOR, KL_COLOR, INK_COLOR)[i % 3]),
        )
    return fig.update_layout(
        xaxis=dict(title=x_title, type="log"), yaxis_title=y_title, height=320, margin=dict(t=20, b=10)
    )


@_builder
def likelihood_probability(
    ks,
    pmf,
    thetas,
    likelihood,
    k_observed: int,
    theta: float,
    *,
    panel_titles: tuple[str, str],
    pmf_name: str,
    likelihood_name: str,
    k_title: str,
    theta_title: str,
    pmf_title: str,
    likelihood_title: str,
) -> go.Figure:
    """One formula read two ways. Left: p(k | θ) over the data k for the fixed θ (bars; the observed k marked);
    right: L(θ) = p(k_observed | θ) over θ (a curve; the fixed θ marked)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=panel_titles)
    colors = [Q_COLOR if int(k) == int(k_observed) else P_COLOR for k in ks]
    fig.add_bar(x=list(ks), y=pmf, name=pmf_name, marker_color=colors, row=1, col=1)
    fig.add_scatter(x=thetas, y=likelihood, name=likelihood_name, line=dict(color=Q_COLOR), row=1, col=2)
    fig.add_vline(x=theta, line=dict(color=GUIDE_COLOR, dash="dot"), row=1, col=2)
    fig.update_xaxes(title_text=k_title, row=1, col=1)
    fig.update_xaxes(title_text=theta_title, row=1, col=2)
    fig.update_yaxes(title_text=pmf_title, row=1, col=1)
    fig.update_yaxes(title_text=likelihood_title, row=1, col=2)
    return fig.update_layout(height=320, showlegend=False, margin=dict(t=40, b=10))


# ------------------------------------------------------------------ the average KL split (ELBO surgery)
@_builder
def elbo_surgery(
    avg_kl: float,
    mutual_info: float,
    kl_aggregate: float,
    se: float,
    log_n: float,
    *,
    names: tuple[str, str, str],
    categories: tuple[str, str],
    ceiling_text: str,
    y_title: str,
) -> go.Figure:
    """The average KL term (one bar) beside its two parts stacked: I(x; z) (hatched) and KL(q(z)‖p(z)); the Monte
    Carlo standard error on the first part; a dotted line at log N, the most I(x; z) can be. ``names``: the three
    bars' names, ``categories``: the two bars' places. All in the KL colour (they are the KL term)."""
    data = [
        dict(type="bar", x=[categories[0]], y=[avg_kl], name=names[0], marker=dict(color=KL_COLOR)),
        dict(
            type="bar",
            x=[categories[1]],
            y=[mutual_info],
            name=names[1],
            marker=dict(color=KL_COLOR, pattern=dict(shape="/")),
            error_y=dict(type="data", array=[se], visible=True, color=INK_COLOR),
        ),
        dict(
            type="bar",
            x=[categories[1]],
            y=[kl_aggregate],
            name=names[2],
            marker=dict(color=KL_COLOR, opacity=0.45),
        ),
    ]
    fig = _fast(
        data,
        dict(
            barmode="stack",
            height=320,
            margin=dict(t=20, b=10),
            yaxis=dict(title=_title(y_title)),
            legend=dict(orientation="h", yanchor="top", y=-0.15),
        ),
    )
    fig.add_hline(y=log_n, line=dict(color=GUIDE_COLOR, dash="dot"), annotation_text=ceiling_text)
    return fig


# ------------------------------------------------------------------ a hole in the aggregate posterior
@_builder
def kl_hole_map(
    axis,
    log_ratio_grid,
    hole: tuple[float, float],
    radius: float,
    *,
    colorbar_title: str,
    hole_name: str,
    disc_name: str,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """log q(z)/p(z) on the latent plane (``log_ratio_grid[i, j]`` at z₁ = axis[i], z₂ = axis[j]), diverging about 0;
    the disc |z| ≤ radius where the hole was sought, and the hole itself marked."""
    grid = np.asarray(log_ratio_grid, dtype=float)
    lim = float(min(10.0, max(1.0, np.nanmax(np.abs(grid)))))
    t = np.linspace(0.0, 2.0 * np.pi, 121)
    fig = go.Figure(
        go.Heatmap(
            x=axis,
            y=axis,
            z=np.clip(grid, -lim, lim).T,  # rows of the heatmap are z₂
            zmin=-lim,
            zmax=lim,
            colorscale="RdBu",
            colorbar=dict(title=colorbar_title),
        )
    )
    fig.add_scatter(
        x=radius * np.cos(t),
        y=radius * np.sin(t),
        mode="lines",
        name=disc_name,
        line=dict(color=INK_COLOR, dash="dot"),
    )
    fig.add_scatter(
        x=[hole[0]],
        y=[hole[1]],
        mode="markers",
        name=hole_name,
        marker=dict(symbol="x", size=14, color=INK_COLOR, line=dict(width=2)),
    )
    return fig.update_layout(
        height=400,
        xaxis=dict(title=x_title, scaleanchor="y"),
        yaxis=dict(title=y_title),
        legend=dict(orientation="h", yanchor="top", y=-0.15),
        margin=dict(t=20, b=10),
    )


# ------------------------------------------------------------------ the first variation
@_builder
def variation_quotients(
    eps,
    rows: Sequence[tuple[str, np.ndarray, float]],
    *,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """Difference quotients (J[q + εη] − J[q]) / ε against ε (log scale), one line per direction ``rows`` = (name,
    quotients, first variation); each direction's first variation is a dashed line of the same colour."""
    fig = go.Figure()
    for i, (name, quotient, derivative) in enumerate(rows):
        color = VARIATION_COLORS[i % len(VARIATION_COLORS)]
        fig.add_scatter(x=eps, y=quotient, name=name, mode="lines+markers", line=dict(color=color))
        fig.add_hline(y=derivative, line=dict(color=color, dash="dash"))
    return fig.update_layout(
        height=340,
        xaxis=dict(title=x_title, type="log", autorange="reversed"),
        yaxis_title=y_title,
        legend=dict(orientation="h", yanchor="top", y=-0.2),
        margin=dict(t=20, b=10),
    )


VARIATION_COLORS = (Q_COLOR, FAMILY_COLORS["mixture"], FAMILY_COLORS["laplace"], P_COLOR)


# ------------------------------------------------------------------ a linear AE against PCA
@_builder
def principal_angles(
    angles_deg, limit: float, *, limit_text: str, title: str, x_title: str, y_title: str
) -> go.Figure:
    """The principal angles between two k-dimensional subspaces (degrees, one bar each) and a dotted limit."""
    names = [str(i + 1) for i in range(len(angles_deg))]
    fig = go.Figure(go.Bar(x=names, y=list(angles_deg), marker_color=MU_COLOR))
    fig.add_hline(y=limit, line=dict(color=GUIDE_COLOR, dash="dot"), annotation_text=limit_text)
    top = max(float(limit), float(np.max(angles_deg)) if len(angles_deg) else 0.0) * 1.15
    return fig.update_layout(
        title=title,
        height=300,
        xaxis_title=x_title,
        yaxis=dict(title=y_title, range=[0, top]),
        margin=dict(t=40, b=10),
    )
