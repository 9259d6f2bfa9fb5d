"""Images for ``st.image``: one flattened image as a picture, whole-pixel enlargement, inline PNG data URLs, mosaics,
and the test-image picker that the ELBO page (and others) offer."""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st
import torch
from PIL import Image

from lab_pages import state
from lab_pages.i18n import _
from lab_pages.svg_charts import png_data_uri as encode_png
from vae_core.data import Dataset
from vae_core.identity import candidates
from vae_core.inference import images_to_grid, scale_for
from vae_core.inference import upscale as inf_upscale


def to_image(flat: np.ndarray | torch.Tensor, image_shape: tuple[int, int, int]) -> np.ndarray:
    """One flattened image (D,) in [0, 1] (or uint8) -> (H, W) uint8 for st.image (vae_core.inference's mosaic of one)."""
    return images_to_grid(flat, image_shape, ncols=1)


def upscale(img: np.ndarray, tile_h: int, px: int) -> np.ndarray:
    """Enlarge a uint8 image by whole pixels so that a ``tile_h``-high tile is about ``px`` high
    (8x8 digits stay crisp; a browser's own scaling would blur them)."""
    return inf_upscale(img, scale_for(tile_h, px))


def png_data_uri(img: np.ndarray, compress_level: int = 1) -> str:
    """A uint8 image (H, W) or (H, W, 3) as a ``data:image/png;base64,...`` URL for ``st.image``.

    Such an image travels inside the page's own message, so the browser draws it without
    fetching a file from the server: what the explorer sends on every slider move. PNG keeps
    upscaled pixels sharp (``st.image`` of an array sends a JPEG); level 1 trades a few KB for
    much faster encoding (docs/performance.md).
    """
    return encode_png(
        Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8)), compress_level=compress_level
    )


def grid_uri(
    images: np.ndarray | torch.Tensor, image_shape: tuple[int, int, int], ncols: int, px: int = 112
) -> str:
    """(N, D) images in [0, 1] as one PNG mosaic, each tile enlarged by whole pixels to about ``px`` high, as a
    data URL (:func:`png_data_uri`): ``st.image`` passes it through as it is, where bytes or an array would be
    decoded and encoded again on every run. A page can keep it while the images do not change."""
    return png_data_uri(upscale(images_to_grid(images, image_shape, ncols=ncols), image_shape[1], px))


def show_grid(
    images: np.ndarray | torch.Tensor,
    image_shape: tuple[int, int, int],
    ncols: int,
    caption: str | None = None,
    width: int | None = None,
    px: int = 112,
    container=st,
) -> None:
    """Draw (N, D) images in [0, 1] as one mosaic (vae_core.inference.images_to_grid), each tile
    enlarged to about ``px`` pixels high by whole pixels."""
    grid = upscale(images_to_grid(images, image_shape, ncols=ncols), image_shape[1], px)
    container.image(grid, caption=caption, width=width or "stretch", clamp=True)


def pixels_key(pixels: torch.Tensor | np.ndarray) -> str:
    """A short content key for one image's pixels: what per-image caches are keyed by."""
    a = pixels.numpy() if isinstance(pixels, torch.Tensor) else np.asarray(pixels)
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


@st.cache_data(max_entries=32, show_spinner=False)
def picker_thumbnails(
    dataset: str, _x: torch.Tensor, image_shape: tuple[int, int, int], indices: tuple[int, ...]
) -> list[str]:
    """Test images ``indices`` of ``dataset`` (``_x`` its test split, (N, D) uint8) as ~56 px PNG data URLs.

    Encoded once per set of candidates, not on every rerun of the page: an array given to ``st.image``
    is encoded to PNG and stored again each time, and the picker's 20 were most of the ELBO page's
    server time when a room moved its K slider (docs/performance.md).
    """
    return [png_data_uri(upscale(to_image(_x[i], image_shape), image_shape[1], 56)) for i in indices]


def image_picker(ds: Dataset, prefix: str, n_pick: int = 20) -> tuple[torch.Tensor, str]:
    """Offer ``n_pick`` test images (a thumbnail and a button each), an index box, "other images" and,
    when this session has its own image of this dataset's shape (the *Your image* page), that image.

    Keys start with ``prefix`` (``<prefix>_index``, ``<prefix>_pick_<i>``, ``<prefix>_mine``).
    Returns the chosen image's pixels (D,) uint8 and its caption.
    """
    ss = st.session_state
    n_test, key, mine_key = int(ds.x_test.shape[0]), f"{prefix}_index", f"{prefix}_mine"
    ss[key] = min(int(ss.get(key, 0)), n_test - 1)
    mine = state.user_image(ds.image_shape)
    cand = candidates(n_test, n_pick, seed=int(ss.get(f"{prefix}_shuffle", 0)))
    cols = st.columns(max(1, n_pick // 2))
    thumbs = picker_thumbnails(ds.name, ds.x_test, ds.image_shape, tuple(cand))
    for i, idx in enumerate(cand):
        with cols[i % len(cols)]:
            st.image(thumbs[i], width="stretch")
            st.button(
                f"#{idx}",
                key=f"{prefix}_pick_{i}",
                on_click=ss.update,
                kwargs={key: idx, mine_key: False},
                width="stretch",
                help=_("class: {name}").format(name=ds.class_names[int(ds.y_test[idx])]),
            )
    c1, c2, c3 = st.columns([2, 2, 3])
    c1.number_input(
        _("…or a test image by index (0–{last})").format(last=n_test - 1),
        0,
        n_test - 1,
        key=key,
        on_change=ss.update,
        kwargs={mine_key: False},
    )
    c2.button(
        _("🔀 Other images"),
        key=f"{prefix}_shuffle_btn",
        on_click=lambda: ss.update({f"{prefix}_shuffle": int(ss.get(f"{prefix}_shuffle", 0)) + 1}),
    )
    if mine is not None:
        c3.button(
            _("✏️ Your image ({origin})").format(origin=mine.origin),
            key=f"{prefix}_mine_btn",
            on_click=ss.update,
            kwargs={mine_key: True},
            type="primary" if ss.get(mine_key) else "secondary",
        )
    else:
        c3.caption(_("✏️ Draw or upload an image of your own on the *Your image* page: it then appears here."))
    if mine is not None and ss.get(mine_key):
        return torch.from_numpy(mine.pixels.copy()), _("your image ({origin})").format(origin=mine.origin)
    idx = int(ss[key])
    return ds.x_test[idx], _("original #{index}").format(index=idx)
