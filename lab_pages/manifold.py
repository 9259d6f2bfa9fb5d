"""Manifold & interpolation: the decoder over a 2-D grid of the latent space, and paths between two images.

The grid is marked at the latent explorer's point (lab_pages.state ``explorer_point``, shared with
lab_pages/explorer.py and moved here by the same sliders, ``state.slider_key(j)``, for the grid's two
dims). Below it, the latent plane (lab_pages/decoder_component.py) decodes in the browser under the
pointer, over the test set's μ, and a click pins the explorer's point there. Both tabs are lazy: only
the open one runs, and each keeps its settings while hidden.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import streamlit as st
import torch

from lab_pages import charts, state
from lab_pages import decoder_component as dc
from lab_pages.i18n import N_, _, ngettext
from lab_pages.images import to_image, upscale
from lab_pages.latent_controls import N_CHOICES, dim_label, posterior_stats, slider, thumbnails
from lab_pages.latent_map import test_codes
from lab_pages.model_store import require_dataset, require_model
from lab_pages.plot import file_stem, plot
from lab_pages.style import CLASS_COLORS
from vae_core import compare as cmp
from vae_core import explore as ex
from vae_core import export
from vae_core import inference as inf

TAB_DEFAULTS = {
    "manifold_grid_n": 15,
    "manifold_interp_steps": 10,
    "manifold_interp_mode": "linear",
    "manifold_test_offset": 0,
}
PATHS = {
    "linear": N_("linear"),
    "spherical": N_("spherical"),
    "both": N_("both"),
}  # interpolation path -> its name
FNS = {"linear": "lerp", "spherical": "slerp"}
ss = st.session_state
GIF_PX = 112  # the interpolation GIF's tiles are about this high, enlarged by whole pixels
HOLE_RADIUS = 2.0  # the disc searched for a hole, prior standard deviations (86% of the prior's mass)
HOLE_NOTE = N_("The hole in the codes: high prior density, few codes.")  # the explorer's note on this point
PLANE_KEY = "manifold_plane"  # the latent plane (decoder component): its "pin" carries a clicked point
PIN_NOTE = N_("Pinned on the latent plane.")  # the explorer's note on a clicked point
PLANE_POINTS = 2000  # test-set μ drawn on the plane at most (a fixed sample: the same points every run)


def draw_plane(lm, ds, sp, z, pair: tuple[int, int]) -> None:
    """The latent plane of dims ``pair``: the test set's μ by class, the image decoded under the pointer (in the
    browser), and a click that moves the explorer's point; the other dims stay at ``z``."""
    st.subheader(_("Latent plane: decode under the pointer"))
    why = dc.unavailable(PLANE_KEY, lm)
    if why is not None:
        st.caption(_("The latent plane needs the decoder in the browser: {why}.").format(why=why))
        return
    st.caption(
        (
            _("Dots: μ of test images, one colour per class. Move the pointer: the browser decodes that z. ")
            if lm.config.latent_dim == 2
            else _(
                "Dots: μ of test images over these two dims, one colour per class. Move the pointer: the browser "
                "decodes z with these two dims moved and the others held at the sliders' point. "
            )
        )
        + _("Click to pin the point: the sliders and the latent explorer move there.")
    )
    with st.spinner(_("Encoding the test set…")):
        mu = test_codes(lm.model, lm.key, lm.dataset_name)  # (N, z)
    n = len(mu)
    rows = (
        np.sort(np.random.default_rng(0).choice(n, PLANE_POINTS, replace=False)) if n > PLANE_POINTS else None
    )
    shown = mu if rows is None else mu[rows]
    labels = np.asarray(ds.y_test) if rows is None else np.asarray(ds.y_test)[rows]
    a, b = pair
    dc.latent_plane(
        PLANE_KEY,
        lm,
        z,
        pair,
        (float(sp.lo[a]), float(sp.lo[b])),
        (float(sp.hi[a]), float(sp.hi[b])),
        (shown[:, a], shown[:, b], labels),
        CLASS_COLORS,
    )


@st.cache_data(max_entries=16, show_spinner=False)
def kl_hole(key: str, _model, _x) -> cmp.KLHole:
    """Where the prior is high and the test set's aggregate posterior thin (a 2-D VAE), cached by model key."""
    return cmp.kl_hole(_model, _x, radius=HOLE_RADIUS, n=81)


def interpolation_gif(paths: list, shape: tuple[int, int, int]) -> bytes:
    """The decoded paths (each (steps, D)) as one GIF, side by side, A → B and back (vae_core.export)."""
    images = torch.stack(paths, dim=1)  # (steps, paths, D)
    return export.gif_bytes(export.image_frames(images, shape, inf.scale_for(shape[1], GIF_PX), bounce=True))


def draw_hole(lm, x_test, sp, image_shape) -> None:
    """A region of high prior mass that the codes leave nearly empty, on the latent plane, with its decoded image."""
    st.subheader(_("A hole in the codes"))
    st.markdown(
        _(
            "The KL term pulls each q(z|x) towards the prior, but it does not make the codes fill the prior: their "
            "aggregate q(z) = (1/N) Σₙ q(z|xₙ) can leave regions where p(z) is high and almost no code lands. The "
            "decoder was hardly trained there, so a prior sample from such a region need not decode to an image "
            "like the data. Blue: more codes than the prior's mass; red: fewer."
        )
    )
    with st.spinner(_("Evaluating the aggregate posterior on the plane…")):
        hole = kl_hole(lm.key, lm.model, x_test)
    left, right = st.columns([3, 1])
    plot(
        left,
        charts.kl_hole_map(
            hole.axis,
            hole.log_ratio_grid,
            (float(hole.z[0]), float(hole.z[1])),
            hole.radius,
            colorbar_title=_("log q(z)/p(z) (nats)"),
            hole_name=_("the hole"),
            disc_name=_("|z| ≤ {r:g}: where it was sought").format(r=hole.radius),
            x_title=_("z₁ (latent units)"),
            y_title=_("z₂ (latent units)"),
        ),
        key="manifold_hole_chart",
        name="kl-hole",
        model=lm.label,
    )
    right.image(
        upscale(to_image(hole.image, image_shape), image_shape[1], 112),
        caption=_("decoded at the hole, z = ({z1:.2f}, {z2:.2f})").format(z1=hole.z[0], z2=hole.z[1]),
        output_format="PNG",
    )
    right.metric("q(z) / p(z)", f"{hole.ratio:.2g}", help=_("1 where the codes are as dense as the prior"))
    right.metric(
        _("log p(z) (nats)"),
        f"{hole.log_p:.2f}",
        help=_("The prior's density there. Inside the disc it is at least {edge:.3f} per unit area.").format(
            edge=hole.p_threshold
        ),
    )
    right.button(
        _("Move the sliders to the hole"),
        key="manifold_to_hole",
        on_click=state.set_slider_point,
        args=((float(hole.z[0]), float(hole.z[1])), lm.key, sp, (HOLE_NOTE, {})),
        help=_("The grid above then marks it with its red frame."),
    )


def main() -> None:
    lm = require_model()
    ds = require_dataset(lm)
    model, zdim, shape = lm.model, lm.config.latent_dim, lm.config.image_shape
    h, w = shape[1], shape[2]
    with st.spinner(_("Encoding the test set for the slider ranges…")):
        stats = posterior_stats(lm.key, model, ds.x_test)
    sp = ex.slider_space(stats, lm.is_vae)
    st.title(_("🧭 Manifold & interpolation"))
    st.caption(f"{lm.label} — {lm.summary()}")
    state.sync_slider_point(lm.key, zdim, lm.is_vae, sp)

    @st.fragment
    def _view() -> None:
        """Both tabs: a slider or setting here reruns only this."""
        pinned = dc.take(PLANE_KEY, "pin", zdim)  # a click on the latent plane
        if pinned is not None:
            state.set_slider_point(pinned, lm.key, sp, (PIN_NOTE, {}))
        # Re-set each run, so that a tab's settings survive while the other tab is shown.
        for k, v in TAB_DEFAULTS.items():
            ss[k] = ss.get(k, v)
        for k in ("manifold_slice_a", "manifold_slice_b", "manifold_interp_a", "manifold_interp_b"):
            if k in ss:
                ss[k] = ss[k]
        labels = [_("2-D manifold"), _("Interpolation")]
        if ss.get("manifold_tab") not in labels and "_manifold_tab_i" in ss:
            ss["manifold_tab"] = labels[
                ss["_manifold_tab_i"]
            ]  # labels of another language: keep the position
        tabs = st.tabs(labels, key="manifold_tab", on_change="rerun")
        ss["_manifold_tab_i"] = next((i for i, t in enumerate(tabs) if t.open), 0)
        with tabs[0]:
            if tabs[0].open is not False:
                n = st.slider(_("Tiles per side"), 5, 25, key="manifold_grid_n")
                pair = (0, 1)
                if zdim == 2 and lm.is_vae:
                    st.caption(
                        _(
                            "Tiles at z = Φ⁻¹(p) for p evenly spaced in 0.05…0.95 per dim: equal prior mass per tile "
                            "(Kingma & Welling 2014, fig. 4). z₁ grows to the right, z₂ upwards."
                        )
                    )
                elif zdim == 2:
                    st.caption(
                        _(
                            "An AE has no prior, so the grid is placed by a Gaussian fitted to its codes: z = mean + σ·Φ⁻¹(p)."
                        )
                    )
                else:
                    st.info(
                        ngettext(
                            "The manifold grid needs a 2-D latent; this model has {n} dim. Shown instead: a 2-D slice "
                            "through the sliders' point over two dims, z = mean + σ·Φ⁻¹(p), the others held.",
                            "The manifold grid needs a 2-D latent; this model has {n} dims. Shown instead: a 2-D slice "
                            "through the sliders' point over two dims, z = mean + σ·Φ⁻¹(p), the others held.",
                            zdim,
                        ).format(n=zdim)
                    )
                    for k, d in zip(("manifold_slice_a", "manifold_slice_b"), ex.default_dims(stats, 2)):
                        if ss.get(k) not in range(zdim):
                            ss[k] = d

                    def dim_name(j: int) -> str:
                        return dim_label(stats, j)

                    ca, cb = st.columns(2)
                    across = ca.selectbox(
                        _("Across"), range(zdim), key="manifold_slice_a", format_func=dim_name
                    )
                    up = cb.selectbox(_("Up"), range(zdim), key="manifold_slice_b", format_func=dim_name)
                    pair = (across, up)
                    if pair[0] == pair[1]:
                        st.warning(_("Pick two different dims."))
                        st.stop()
                z = state.read_slider_point(lm.key, list(pair), sp)
                cols = st.columns(2)
                for col, j in zip(cols, pair):
                    slider(col, stats, sp, j)
                imgs, c0, s0 = ex.manifold_view(model, z, pair, lm.is_vae, sp.mean, sp.std, n)
                col, row, inside = ex.grid_position((z[pair[0]], z[pair[1]]), n, center=c0, scale=s0)
                mosaic = inf.images_to_grid(imgs, shape, ncols=n)
                st.image(
                    ex.mark_grid(mosaic, col, row, (h, w), scale=max(1, math.ceil(560 / mosaic.shape[1]))),
                    caption=_("red frame and dot: the sliders' current point")
                    if inside
                    else _(
                        "red frame and dot: the sliders' current point (beyond the outermost tiles: drawn at the edge)"
                    ),
                )
                p = [ex.normal_cdf(z[d], c, s) for d, c, s in zip(pair, c0, s0)]
                phi = (
                    r"\Phi(z)"
                    if s0 == (1.0, 1.0)
                    else r"\Phi\!\left(\tfrac{{z-\text{{{}}}}}{{\sigma}}\right)".format(_("mean"))
                )
                st.latex(
                    rf"z_{{{pair[0] + 1}}} = {z[pair[0]]:.2f},\; z_{{{pair[1] + 1}}} = {z[pair[1]]:.2f}"
                    rf"\;\Rightarrow\; p = {phi} = ({p[0]:.2f},\ {p[1]:.2f})"
                )
                draw_plane(lm, ds, sp, z, pair)
                if zdim == 2 and lm.is_vae:
                    draw_hole(lm, ds.x_test, sp, shape)

        with tabs[1]:
            if tabs[1].open is not False:
                n_test = ds.x_test.shape[0]
                off = int(
                    st.number_input(
                        _("Test images from index"),
                        0,
                        max(0, n_test - N_CHOICES),
                        step=N_CHOICES,
                        key="manifold_test_offset",
                    )
                )
                choices = list(range(min(N_CHOICES, n_test - off)))
                st.image(
                    thumbnails(lm.dataset_name, ds.x_test, shape, off, len(choices)),
                    caption=[str(q) for q in choices],
                    width=40,
                )
                # Kept while the tab is hidden; reset if off the chooser.
                for k, v in (("manifold_interp_a", 0), ("manifold_interp_b", min(1, len(choices) - 1))):
                    if ss.get(k) not in choices:
                        ss[k] = v

                def image_name(q: int) -> str:
                    return _("{pos}: test #{index} ({name})").format(
                        pos=q, index=off + q, name=ds.class_names[int(ds.y_test[off + q])]
                    )

                c = st.columns(4)
                a = c[0].selectbox(_("From A"), choices, key="manifold_interp_a", format_func=image_name)
                b = c[1].selectbox(_("To B"), choices, key="manifold_interp_b", format_func=image_name)
                steps = c[2].slider(_("Steps N"), 3, 20, key="manifold_interp_steps")
                mode = c[3].radio(
                    _("Path"),
                    ["linear", "spherical", "both"],
                    key="manifold_interp_mode",
                    horizontal=True,
                    format_func=lambda m: _(PATHS[m]),
                )
                mu = inf.encode(model, ds.x_test[[off + a, off + b]])[0]  # (2, z)
                norms = []
                paths = ex.interpolation_paths(model, mu[0], mu[1], steps, mode)
                for name, path, images in paths:
                    st.image(
                        upscale(inf.images_to_grid(images, shape, ncols=steps), h, 56),
                        caption=ngettext(
                            "{path} ({fn}): μ(A) → μ(B), {steps} step",
                            "{path} ({fn}): μ(A) → μ(B), {steps} steps",
                            steps,
                        ).format(path=_(PATHS[name]), fn=FNS[name], steps=steps),
                    )
                    norms.append((_(PATHS[name]), path.norm(dim=1).tolist()))
                st.download_button(
                    _("Download the interpolation (GIF)"),
                    data=functools.partial(interpolation_gif, [images for _n, _p, images in paths], shape),
                    file_name=file_stem(f"interpolation-{off + a}-{off + b}-{mode}", lm.label) + ".gif",
                    mime="image/gif",
                    key="manifold_interp_gif",
                    on_click="ignore",
                    icon=":material/gif:",
                    help=_("A → B and back, one frame per step; with both paths, linear on the left."),
                )
                plot(
                    st,
                    charts.path_norms(
                        norms,
                        zdim**0.5 if lm.is_vae else None,
                        reference_text=_(
                            "√d = {root:.2f}: typical ‖z‖ under the prior, d = {d} dimensions"
                        ).format(root=zdim**0.5, d=zdim),
                        title=_("Norm along the path"),
                        x_title=_("step"),
                        y_title=_("‖z‖ (latent units)"),
                    ),
                    key="manifold_norm_chart",
                    name="path-norms",
                    model=lm.label,
                )
                st.caption(
                    _(
                        "Slerp keeps ‖z‖ between the ends' norms; a straight line cuts through the centre, where "
                        "high-dimensional Gaussian samples almost never lie."
                    )
                )

    _view()


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
