"""Latent explorer: drag one slider per latent dim, start from a test image (or your own), traverse every dim.
The point and its sliders live in lab_pages.state (the latent map sends a point; the Manifold page moves the same
sliders). Everything under the title (but the dim picker) is one ``st.fragment``. The sliders and the decoded image
are the decoder component (lab_pages/decoder_component.py): the browser decodes while a slider is dragged, and the
final point comes back at release, which reruns only the fragment and redraws the traversal (one labelled picture,
inline as a PNG data URL). Where the browser cannot decode, the page decodes on the server, as it did before.
"""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st
import torch

from lab_pages import decoder_component as dc
from lab_pages import state
from lab_pages.i18n import N_, _
from lab_pages.images import pixels_key, png_data_uri, to_image, upscale
from lab_pages.latent_controls import N_CHOICES, dim_label, posterior_stats, slider, thumbnails
from lab_pages.model_store import require_dataset, require_model
from lab_pages.plot import file_stem
from lab_pages.style import KL_COLOR
from vae_core import explore as ex
from vae_core import export
from vae_core import inference as inf

GIF_STEPS = 25  # frames of the traversal GIF one way (odd: the middle one is the codes' mean)
GIF_PX = 112  # the GIF's tiles are about this high, enlarged by whole pixels
MAX_SLIDERS = 16  # above this many dims the user picks which get sliders
DECODER_KEY = "explorer_decoder"  # the decoder component: its "release" carries the point a drag ended at
KL_RGB = ex.hex_rgb(KL_COLOR)  # the traversal labels' KL colour
ss = st.session_state


def _from_test(key: str, model, x: torch.Tensor, off: int, sp: ex.SliderSpace) -> None:
    """Callback: the sliders go to μ of the chosen test image."""
    pos = ss.get("explorer_start", 0)
    mu = inf.encode(model, x[off + pos])[0][0].cpu().numpy()  # (z,)
    note = N_("Started from μ of test image #{index} (chooser {pos}).")
    state.set_slider_point(mu, key, sp, (note, {"index": off + pos, "pos": pos}))


def _from_mine(key: str, model, pixels: np.ndarray, sp: ex.SliderSpace) -> None:
    """Callback: the sliders go to μ of the Your image page's image."""
    mu = inf.encode(model, torch.from_numpy(pixels.copy()))[0][0].cpu().numpy()  # (z,)
    state.set_slider_point(mu, key, sp, (N_("Started from μ of your image."), {}))


def traversal_gif(model, z: torch.Tensor, j: int, lo, hi, shape: tuple[int, int, int]) -> bytes:
    """Dim ``j`` swept from ``lo[j]`` to ``hi[j]`` in :data:`GIF_STEPS` steps (the others at ``z``) and back, as a GIF."""
    images = inf.traverse(model, z, [j], lo, hi, GIF_STEPS)[0]  # (steps, D)
    return export.gif_bytes(export.image_frames(images, shape, inf.scale_for(shape[1], GIF_PX), bounce=True))


def _row_label(stats: inf.PosteriorStats, j: int) -> list[tuple[str, tuple[int, int, int]]]:
    """Row ``j``'s lines: name, KL (KL colour) or code spread, unused; numbers alone where the font lacks the words."""
    if stats.avg_kl_per_dim is not None:  # a VAE: the dim's average KL, in the KL colour
        kl = float(stats.avg_kl_per_dim[j])
        measure, neutral, unused, color = (
            _("KL {kl:.2f} nats").format(kl=kl),
            f"KL {kl:.2f}",
            _("inactive"),
            KL_RGB,
        )
    else:  # an AE: the spread of its codes
        std = float(stats.std[j])
        measure, neutral, unused, color = f"σ {std:.2f}", f"± {std:.2f}", _("unused"), (60, 60, 60)
    lines = [(f"z{j + 1}", (0, 0, 0)), (measure if ex.can_draw(measure) else neutral, color)]
    if not stats.active[j] and ex.can_draw(unused):
        lines.append((unused, (120, 120, 120)))
    return lines


def main() -> None:
    lm = require_model()
    ds = require_dataset(lm)
    model = lm.model
    zdim = lm.config.latent_dim
    shape = lm.config.image_shape
    key = lm.key
    vae = lm.is_vae
    n_test = len(ds.x_test)
    with st.spinner(_("Encoding the test set for the slider ranges…")):
        stats = posterior_stats(key, model, ds.x_test)
    # The sliders' ranges, and home: the prior mean, or (an AE has no prior) the centre of its codes.
    sp = ex.slider_space(stats, vae)

    st.title(_("🎛️ Latent explorer"))
    st.caption(f"{lm.label} — {lm.summary()}")
    if not vae:
        st.info(
            _(
                "This is an **autoencoder: its latent space has no prior**. There is no N(0, I) to reset to or sample from, "
                "so slider ranges come from the spread of its codes on the test set, and “random” draws use a Gaussian fitted "
                "to those codes. Points between codes may decode to things that are not images; compare with a VAE."
            )
        )
    state.sync_slider_point(key, zdim, vae, sp)
    dims = list(range(zdim))
    if zdim > MAX_SLIDERS:
        dims = sorted(
            st.multiselect(
                _("Dims with sliders (at most {n}; the others stay fixed)").format(n=MAX_SLIDERS),
                dims,
                key=state.EXPLORER_DIMS,
                default=ex.default_dims(stats, MAX_SLIDERS),
                max_selections=MAX_SLIDERS,
                format_func=lambda j: dim_label(stats, j),
            )
        )

    @st.fragment
    def _view() -> None:
        """Everything below the title: a slider's release (or any widget here) reruns only this."""
        released = dc.take(DECODER_KEY, "release", zdim)  # where the browser's drag ended
        if released is not None:
            state.set_slider_point(released, key, sp)
        z = state.read_slider_point(key, dims, sp)  # (z,)
        zt = torch.tensor(z, dtype=torch.float32)
        server_why = dc.unavailable(DECODER_KEY, lm)  # None: the browser decodes
        if server_why is None:
            dc.latent_sliders(
                DECODER_KEY, lm, z, dims, sp.lo[dims], sp.hi[dims], [dim_label(stats, j) for j in dims]
            )
        left, right = st.columns([3, 2], gap="large")
        with right:  # first: its decoded image is what a slider move is waiting for
            note = state.explorer_note()
            if note:
                st.info(note)
            if server_why is not None:
                st.caption(_("The server decodes each point: {why}.").format(why=server_why))
                tile = to_image(inf.decode(model, zt)[0], shape)
                ss["explorer_image_hash"] = pixels_key(tile)
                big = upscale(tile, shape[1], 260)  # whole pixels, shown at exactly this size: sharp
                point = "(" + ", ".join(f"{v:.2f}" for v in z[:8]) + (", …)" if zdim > 8 else ")")
                st.image(
                    png_data_uri(big),
                    width=big.shape[1],
                    caption=_("decoded pixel means at z = {point}").format(point=point),
                )
            b1, b2 = st.columns(2)
            b1.button(
                _("Prior mean z = 0") if vae else _("Centre of codes"),
                key="explorer_reset",
                width="stretch",
                on_click=state.reset_slider_point,
                args=(key, sp, vae),
            )
            b2.button(
                _("Random z ~ N(0, I)") if vae else _("Random (Gaussian fit)"),
                key="explorer_random",
                width="stretch",
                on_click=state.random_slider_point,
                args=(key, sp, vae),
            )
            try:
                st.page_link(
                    "lab_pages/latent_map.py", label=_("Take μ of a point on the latent map"), icon="🗺️"
                )
                st.page_link("lab_pages/manifold.py", label=_("This point on the 2-D manifold"), icon="🧭")
            except Exception:  # pages not registered (page run on its own): say where instead
                st.caption(
                    _(
                        "To take μ of a point on the latent map, select it on the Latent map page and send it here."
                    )
                )
        with left:
            if server_why is not None:
                st.subheader(_("Sliders"))
                cols = st.columns(2 if len(dims) > 4 else 1)
                for i, j in enumerate(dims):
                    slider(cols[i % len(cols)], stats, sp, j)
            st.caption(
                (
                    _(
                        "Each slider spans mean ± 3σ of the aggregate posterior q(z) = average of q(z|x) over the test set, with "
                        "σ² = Var[μ] + E[σ²(x)] ({n} images)."
                    )
                    if vae
                    else _(
                        "Each slider spans mean ± 3σ of the AE's "
                        "codes of the test set (σ = their spread; {n} images)."
                    )
                ).format(n=n_test)
            )
            st.subheader(_("Start from a test image"))
            off = int(
                st.number_input(
                    _("Test images from index"),
                    0,
                    max(0, n_test - N_CHOICES),
                    0,
                    step=N_CHOICES,
                    key="explorer_test_offset",
                )
            )
            choices = list(range(min(N_CHOICES, n_test - off)))
            if ss.get("explorer_start") not in choices:  # off the chooser: its first image
                ss["explorer_start"] = 0
            st.image(
                thumbnails(lm.dataset_name, ds.x_test, shape, off, len(choices)),
                caption=[str(p) for p in choices],
                width=40,
            )
            c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
            c1.selectbox(
                _("Test image"),
                choices,
                key="explorer_start",
                format_func=lambda p: _("{pos}: test #{index} ({name})").format(
                    pos=p, index=off + p, name=ds.class_names[int(ds.y_test[off + p])]
                ),
            )
            c2.button(
                _("Start from its μ"),
                key="explorer_from_test",
                on_click=_from_test,
                args=(key, model, ds.x_test, off, sp),
            )
            mine = state.user_image(shape)  # the Your image page's drawing or upload
            if mine is not None:
                c2.button(
                    _("Start from your image's μ"),
                    key="explorer_from_mine",
                    on_click=_from_mine,
                    args=(key, model, mine.pixels, sp),
                )

        st.subheader(_("Traversals"))
        steps = st.slider(_("Steps per row"), 3, 15, 9, key="explorer_trav_steps")
        sort = st.checkbox(
            _("Sort rows by average KL") if vae else _("Sort rows by code spread"), key="explorer_trav_sort"
        )
        order = ex.traversal_order(stats, dims, sort)
        lo, hi = torch.from_numpy(sp.lo), torch.from_numpy(sp.hi)
        rows = inf.traverse(model, zt, order, lo, hi, steps)  # (k, steps, D)
        st.caption(
            _(
                "Each row sweeps one dim from mean − 3σ (left) to mean + 3σ (right) with the others held at the "
                "sliders' point."
            )
            + (
                " "
                + _(
                    "A dimension whose KL is ≈ 0 carries no information about x; its row usually changes little."
                )
                if vae
                else ""
            )
        )
        labels = [_row_label(stats, j) for j in order]
        # One picture, not one per row.
        sheet = ex.traversal_sheet(rows, shape, labels, scale=max(1, round(64 / shape[1])))
        st.image(
            png_data_uri(sheet),
            width=sheet.shape[1],  # its own size: sharp tiles and labels
            caption=_("Rows, top to bottom: {rows}").format(
                rows="; ".join(" ".join(t for t, _c in lb) for lb in labels)
            ),
        )
        if order:
            g1, g2 = st.columns([1, 2], vertical_alignment="bottom")
            j = g1.selectbox(
                _("Dimension to animate"), order, key="explorer_gif_dim", format_func=lambda d: f"z{d + 1}"
            )
            g2.download_button(
                _("Download its traversal (GIF)"),
                data=functools.partial(traversal_gif, model, zt, j, lo, hi, shape),
                file_name=file_stem(f"traversal-z{j + 1}", lm.label) + ".gif",
                mime="image/gif",
                key="explorer_gif",
                on_click="ignore",
                icon=":material/gif:",
                help=_(
                    "{n} steps from mean − 3σ to mean + 3σ and back, the other dims at the sliders' point."
                ).format(n=GIF_STEPS),
            )

    _view()


if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
