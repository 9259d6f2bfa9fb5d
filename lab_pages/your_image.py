"""Your image: draw one or upload one, see it preprocessed exactly as the current model's dataset was
made, and see where it lands: its reconstruction, its code μ, and for a VAE every ELBO term.

The preprocessed image becomes this session's own image (lab_pages.state.user_image): the ELBO
page, the latent explorer, the latent map and AE vs VAE then offer it beside the test images.
Preprocessing is vae_core.userimages; the numbers are vae_core.identity. Nats per image.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from lab_pages import state
from lab_pages.i18n import N_, _, error_text
from lab_pages.images import pixels_key, to_image, upscale
from lab_pages.model_store import require_model
from vae_core import identity as idn
from vae_core.inference import encode, reconstruct
from vae_core.userimages import (
    MAX_UPLOAD_BYTES,
    EmptyImageError,
    ImageInputError,
    preprocess_canvas,
    preprocess_upload,
    style_for,
)

CANVAS_PX = 280  # the drawing area, screen pixels
INVERT = {"auto": None, "yes": True, "no": False}


@st.cache_data(max_entries=32, show_spinner=False)
def report(key: str, _model, pixels: str, _x: torch.Tensor) -> idn.ImageReport:
    """Every ELBO term of one image (1000 samples from q(z|x)), cached by model and pixels."""
    return idn.image_report(_model, _x, k_max=1000, seed=0)


def drawn_rgba(stroke: int) -> np.ndarray | None:
    """The canvas's RGBA pixels (H, W, 4) uint8, or None before anything is drawn."""
    from streamlit_drawable_canvas import st_canvas  # noqa: PLC0415 - registers its component: only on this page

    res = st_canvas(
        stroke_width=stroke,
        stroke_color="#FFFFFF",
        background_color="#000000",
        height=CANVAS_PX,
        width=CANVAS_PX,
        drawing_mode="freedraw",
        key="mine_canvas",
        return_image_data=True,
        update_streamlit=True,
    )
    return res.image_data


def main() -> None:
    st.title(_("✏️ Your image"))
    lm = require_model()
    shape = tuple(lm.config.image_shape)
    style = style_for(lm.dataset_name, shape)
    st.markdown(
        _(
            "Draw an image or upload one. It is prepared exactly as the images of **{dataset}** were made "
            "({recipe}), and then it goes where the test images go: every ELBO term, the latent explorer, "
            "the latent map and AE vs VAE."
        ).format(dataset=lm.dataset_name, recipe=_(RECIPES[style.kind]))
    )
    mode = st.radio(
        _("Source"),
        ["draw", "upload"],
        horizontal=True,
        key="mine_mode",
        format_func={"draw": _("Draw"), "upload": _("Upload a file")}.get,
    )  # translated now, not when formatted
    inv = st.radio(
        _("Invert (white ink on black, as the dataset)"),
        list(INVERT),
        horizontal=True,
        key="mine_invert",
        format_func={"auto": _("detect"), "yes": _("invert"), "no": _("keep")}.get,
        help=_(
            "A dark drawing on a light background is detected and inverted; this overrides the detection."
        ),
    )
    left, right = st.columns(2)
    with left:
        if mode == "draw":
            stroke = st.slider(_("Pen width (screen pixels)"), 6, 40, 20, key="mine_stroke")
            rgba, up = drawn_rgba(stroke), None
        else:
            rgba = None
            up = st.file_uploader(
                _("PNG, JPEG or WebP, any size, colour or grey"),
                type=["png", "jpg", "jpeg", "webp"],
                key="mine_upload",
                max_upload_size=MAX_UPLOAD_BYTES // (1024 * 1024),
            )
    try:
        if mode == "draw":
            res = preprocess_canvas(rgba, style, INVERT[inv])
            origin = _("drawing")
        elif up is None:
            right.info(_("Choose an image file to upload."))
            return
        else:
            res = preprocess_upload(up.getvalue(), style, INVERT[inv], name=up.name)
            origin = up.name
    except EmptyImageError:
        right.info(_("Nothing drawn yet: draw a digit or a piece of clothing on the black square."))
        return
    except ImageInputError as exc:
        right.error(_("This image cannot be used: {reason}").format(reason=error_text(exc)))
        return
    with right:
        st.image(
            upscale(res.image, shape[1], CANVAS_PX),
            width=CANVAS_PX,
            output_format="PNG",
            caption=_("What the model sees: {h}×{w} pixels").format(h=shape[1], w=shape[2]),
        )
        st.caption(
            _("Inverted: {yes_no} (dark on light detected: {detected}).").format(
                yes_no=_("yes") if res.inverted else _("no"),
                detected=_("yes") if res.detected_dark_on_light else _("no"),
            )
        )
    state.set_user_image(state.UserImage(res.vector.copy(), shape, lm.dataset_name, origin))

    st.header(_("Where your image lands"))
    x = torch.from_numpy(res.vector.copy())
    mu, _sigma = encode(lm.model, x)
    a, b = st.columns([1, 3])
    a.image(
        upscale(to_image(reconstruct(lm.model, x)[0].cpu(), shape), shape[1], 140),
        output_format="PNG",
        caption=_("its reconstruction, decoded from μ"),
    )
    with b:
        st.markdown(
            _("**μ(x)**, its code in the {d}-D latent space (latent units):").format(d=lm.config.latent_dim)
        )
        st.code(
            np.array2string(mu[0].cpu().numpy(), precision=2, separator=", ", max_line_width=90),
            language=None,
        )
        if lm.is_vae:
            r = report(lm.key, lm.model, pixels_key(x), x)
            c = st.columns(4)
            c[0].metric("E_q[log p(x|z)]", f"{r.recon:.2f}")  # formulas: the same in both languages
            c[1].metric("KL(q(z|x)‖p(z))", f"{r.kl:.2f}")
            c[2].metric("ELBO", f"{r.elbo:.2f}")
            c[3].metric("log p̂_K(x), K=1000", f"{r.log_px_hat(1000):.2f}", delta=f"{r.gap(1000):+.2f}")
            st.caption(
                _(
                    "Nats per image, log-likelihoods under {likelihood}. An image unlike the training set gets a "
                    "lower ELBO: compare with a test image on the ELBO page."
                ).format(likelihood=lm.likelihood)
            )
        else:
            st.caption(
                _("An AE has no q(z|x) and no KL, so it has no ELBO: only the code and the reconstruction.")
            )
    st.info(
        _(
            "Your image is now offered on the *ELBO, term by term*, *Latent explorer*, *Latent map* and *AE vs VAE* pages."
        )
    )


RECIPES = {  # marked for translation, translated where drawn
    "mnist": N_(
        "grey, white on black, the drawing's box scaled to 20×20 and placed by its centre of mass in 28×28, as MNIST was made"
    ),
    "digits": N_("8×8 with 17 grey levels, as scikit-learn's digits were made"),
    "plain": N_("grey and resized to the dataset's size"),
}

if __name__ == "__main__":  # Streamlit runs a page as __main__; an import draws nothing
    main()
