"""One drawn or uploaded image, preprocessed exactly as the current model's dataset was made.

Three styles, chosen from the model's dataset by :func:`style_for`:

* ``mnist`` (Fashion-MNIST, MNIST; 28x28): grey, white ink on black, the bounding box of the ink
  scaled to fit 20x20 (aspect ratio kept, anti-aliased), then placed in a 28x28 frame so that its
  centre of mass sits at the frame's centre: how LeCun et al. made MNIST.
* ``digits`` (scikit-learn's 8x8 digits): grey, white on black, the ink's bounding box scaled to
  fit 32x32 (aspect kept, centred), thresholded at half scale, and the "on" pixels counted in each
  4x4 block: 0..16, 17 levels, stored as ``rint(k * 255 / 16)`` as :mod:`vae_core.data` stores
  digits. This is how the UCI optdigits set (scikit-learn's source) was made.
* ``plain`` (a user dataset, at most 64x64): grey and resized to the dataset's size, nothing more,
  which is what :mod:`vae_core.userdata` does to every image of such a dataset.

Input is a drawing canvas's RGBA array (:func:`preprocess_canvas`) or the bytes of an uploaded
PNG, JPEG or WebP (:func:`preprocess_upload`). Grey is ITU-R 601 luma, as Pillow's ``"L"``. Alpha
is composited over black for bright content and over white for dark content (so that strokes
survive on either background), and then dark-on-light images are detected (the border's median
brighter than the centre's mean) and inverted; ``invert=True/False`` overrides the detection.

Every refusal is a :class:`ImageInputError` (a ``ValueError``) whose message tells the user what to
do. Nothing here imports streamlit; nothing runs at import.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageOps

from .errors import N_, LabError

__all__ = [
    "ImageInputError",
    "EmptyImageError",
    "ImageTooSmallError",
    "ImageTooLargeError",
    "DamagedImageError",
    "NotAnImageError",
    "UnsupportedFormatError",
    "ImageStyle",
    "Preprocessed",
    "style_for",
    "sniff_format",
    "decode_image",
    "to_grey",
    "resize_grey",
    "preprocess_grey",
    "preprocess_canvas",
    "preprocess_upload",
    "MIN_SIDE",
    "MAX_PIXELS",
    "MAX_UPLOAD_BYTES",
]

MIN_SIDE = 8  # px: a smaller image has no shape to preprocess
MAX_PIXELS = 40_000_000  # 40 megapixels: above every phone photo, below Pillow's own bomb limit (89 M)
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # one image file, 20 MB (MiB, as Streamlit's uploader counts)
WORK_SIDE = 1024  # px: larger images are reduced to this before the float work (bounds memory)
INK_LEVEL = 0.1 * 255  # grey level (0..255) from which a pixel counts as ink: for the box and "empty"
FORMATS = ("PNG", "JPEG", "WEBP")  # the formats an upload may have, as Pillow names them

# First bytes of the formats we accept, and of others we can name in a refusal.
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"WEBP", 8, "WEBP"),  # RIFF....WEBP
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"ftypheic", 4, "HEIC"),
    (b"ftypheix", 4, "HEIC"),
    (b"ftypmif1", 4, "HEIF"),
    (b"ftypavif", 4, "AVIF"),
    (b"8BPS", 0, "PSD"),
    (b"%PDF", 0, "PDF"),
    (b"<svg", 0, "SVG"),
    (b"<?xml", 0, "SVG/XML"),
)


# ---------------------------------------------------------------- errors
class ImageInputError(LabError, ValueError):
    """An image that cannot be used; the message (user-facing) says why and what to do."""


class EmptyImageError(ImageInputError):
    """Nothing drawn on the canvas, or an image of one flat shade."""


class ImageTooSmallError(ImageInputError):
    """Fewer than MIN_SIDE pixels on a side (a 1x1 image)."""


class ImageTooLargeError(ImageInputError):
    """Too many bytes or pixels (a decompression bomb); refused before the pixels are allocated."""


class DamagedImageError(ImageInputError):
    """A PNG/JPEG/WebP that cannot be decoded to the end (a truncated JPEG)."""


class NotAnImageError(ImageInputError):
    """The bytes are no image at all (a text file, a zip, ...)."""


class UnsupportedFormatError(ImageInputError):
    """An image, but not PNG, JPEG or WebP (a GIF, a BMP, a HEIC photo, ...)."""


# ---------------------------------------------------------------- styles
@dataclass(frozen=True)
class ImageStyle:
    """How a dataset's images were made: what :func:`preprocess_grey` must reproduce."""

    kind: Literal["mnist", "digits", "plain"]
    height: int  # px of the model's input image
    width: int  # px
    auto_invert: (
        bool  # invert=None detects dark-on-light (mnist, digits) or leaves the image as it is (plain)
    )

    @property
    def dim(self) -> int:
        """D = height * width, the length of the preprocessed vector."""
        return self.height * self.width


def style_for(dataset_name: str, image_shape: tuple[int, ...]) -> ImageStyle:
    """The preprocessing of dataset ``dataset_name`` whose images are ``image_shape`` (C, H, W) or (H, W).

    ``mnist``/``fashion-mnist`` -> the MNIST recipe, ``digits`` -> the 8x8 17-level recipe, any
    other (a user dataset, ``user:<file>``) -> grey and resize to (H, W).
    """
    h, w = int(image_shape[-2]), int(image_shape[-1])
    if dataset_name in ("mnist", "fashion-mnist"):
        return ImageStyle("mnist", h, w, True)
    if dataset_name == "digits":
        return ImageStyle("digits", h, w, True)
    return ImageStyle("plain", h, w, False)


@dataclass(frozen=True)
class Preprocessed:
    """One preprocessed image and what the page shows beside the drawing."""

    vector: np.ndarray  # (H*W,) uint8 0..255: the model's input, as the dataset stores it
    image: np.ndarray  # (H, W) uint8: the same, for st.image
    inverted: bool  # whether the grey image was inverted (detected or asked for)
    detected_dark_on_light: bool  # what the detection said, whatever `invert` was
    bbox: (
        tuple[int, int, int, int] | None
    )  # ink's box (left, top, right, bottom), exclusive, input px; None for plain
    source_size: tuple[int, int]  # (height, width) of the input, px


# ---------------------------------------------------------------- decoding
def sniff_format(data: bytes) -> str | None:
    """The image format named by the first bytes of ``data`` ("PNG", "JPEG", "WEBP", "GIF", ...), or None."""
    head = data[:32]
    for magic, offset, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            if name == "WEBP" and head[:4] != b"RIFF":
                continue
            return name
    return None


def decode_image(
    data: bytes,
    name: str = "The image",
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_UPLOAD_BYTES,
    work_side: int | None = WORK_SIDE,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Decode a PNG/JPEG/WebP file to (rgb float32 (h, w, 3) in 0..255, alpha float32 (h, w) in [0, 1], (H, W)).

    (H, W) is the file's own size in px; (h, w) is that size reduced to at most ``work_side`` on
    the longer side (None: not reduced). EXIF orientation is applied. The size is checked from the
    header before any pixel is decoded: over ``max_pixels`` is :class:`ImageTooLargeError`, as is
    Pillow's decompression-bomb error. Other refusals: :class:`NotAnImageError`,
    :class:`UnsupportedFormatError`, :class:`DamagedImageError`, :class:`ImageTooSmallError`.
    """
    if len(data) == 0:
        raise NotAnImageError(N_("{name} is empty (0 bytes). Choose a PNG, JPEG or WebP image."), name=name)
    if len(data) > max_bytes:
        raise ImageTooLargeError(
            N_(
                "{name} is {value:.1f} MB, over the {value2:.0f} MB limit for one image. Save it smaller (a few hundred pixels a side is plenty) and upload it again."
            ),
            name=name,
            value=len(data) / 2**20,
            value2=max_bytes / 2**20,
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise NotAnImageError(N_("{name} is not an image. Choose a PNG, JPEG or WebP file."), name=name)
    if fmt not in FORMATS:
        raise UnsupportedFormatError(
            N_(
                "{name} is a {fmt} file; this lab reads PNG, JPEG and WebP only. Save it as PNG or JPEG and upload it again."
            ),
            name=name,
            fmt=fmt,
        )
    try:
        # reads the header only: no pixels yet. Typed as Image: decoding below rebinds it to a plain Image
        im: Image.Image = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError:  # over twice Pillow's limit: refused by Pillow from the header
        raise _too_many_pixels(name, _png_size(data) if fmt == "PNG" else None, max_pixels) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DamagedImageError(
            N_(
                "{name} looks like a {fmt_title_fmt} but cannot be read ({exc}); the file is damaged or incomplete. Save it again and upload the new file."
            ),
            name=name,
            fmt_title_fmt=_fmt_title(fmt),
            exc=exc,
        ) from None
    with im:
        width, height = im.size
        if width * height > max_pixels:
            raise _too_many_pixels(name, (height, width), max_pixels)
        oriented = (width, height) if _swaps_axes(im) else (height, width)  # (H, W) as the user sees it
        if min(width, height) < MIN_SIDE:
            raise ImageTooSmallError(
                N_(
                    "{name} is only {width}×{height} pixels; an image needs at least {MIN_SIDE}×{MIN_SIDE}. Upload a larger picture, or draw on the canvas."
                ),
                name=name,
                width=width,
                height=height,
                MIN_SIDE=MIN_SIDE,
            )
        try:
            if fmt == "JPEG" and work_side:
                im.draft("RGB", (work_side, work_side))  # decode at 1/2, 1/4 or 1/8 scale: less memory
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey PNG: scale to 8 bits ourselves
                arr = np.asarray(im, dtype=np.float32)
                im = Image.fromarray(np.clip(arr / 257.0, 0, 255).astype(np.uint8), "L")
            im = im.convert("RGBA")  # palette transparency, LA, CMYK: all become straight RGBA
            if work_side and max(im.size) > work_side:
                im.thumbnail((work_side, work_side), Image.Resampling.BOX)
            rgba = np.asarray(im, dtype=np.float32)  # (h, w, 4)
        except Image.DecompressionBombError:
            raise _too_many_pixels(name, (height, width), max_pixels) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise DamagedImageError(
                N_(
                    "{name} is a damaged or incomplete {fmt_title_fmt} ({exc}); it may have been cut off while copying. Save it again and upload the new file."
                ),
                name=name,
                fmt_title_fmt=_fmt_title(fmt),
                exc=exc,
            ) from None
    return rgba[..., :3], rgba[..., 3] / 255.0, oriented


def _swaps_axes(im: Image.Image) -> bool:
    """Whether the EXIF orientation (5..8) turns the image by 90 degrees."""
    try:
        return int(im.getexif().get(0x0112, 1)) in (5, 6, 7, 8)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError):  # a malformed EXIF block
        return False


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(H, W) from a PNG's IHDR chunk (bytes 16..24), or None."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return h, w


def _fmt_title(fmt: str) -> str:
    return "WebP" if fmt == "WEBP" else fmt


def _too_many_pixels(name: str, size: tuple[int, int] | None, max_pixels: int) -> ImageTooLargeError:
    what = (
        f"is {size[1]}×{size[0]} pixels ({size[0] * size[1] / 1e6:,.0f} megapixels)"
        if size
        else "has too many pixels"
    )
    return ImageTooLargeError(
        N_(
            "{name} {what}, over the limit of {value:.0f} megapixels (a file this large could exhaust the server's memory, so it is not opened). Scale it down to at most a few thousand pixels a side and upload it again."
        ),
        name=name,
        what=what,
        value=max_pixels / 1e6,
    )


# ---------------------------------------------------------------- grey, alpha, resizing
def to_grey(
    rgb: np.ndarray, alpha: np.ndarray | None = None, background: Literal["auto", "black", "white"] = "auto"
) -> np.ndarray:
    """ITU-R 601 luma (as Pillow's "L") of ``rgb`` (h, w, 3) or grey (h, w), 0..255, composited over a background.

    ``alpha`` (h, w) in [0, 1] (None: opaque). ``background="auto"`` composites over white when the
    visible content is dark (alpha-weighted mean luma < 127.5) and over black otherwise, so that
    black strokes on a transparent canvas stay visible. Returns float32 (h, w) in 0..255.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim == 3:
        luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114  # (h, w)
    elif rgb.ndim == 2:
        luma = rgb
    else:
        raise ValueError(f"expected an (h, w) or (h, w, 3) array, got shape {rgb.shape}")
    if alpha is None:
        return luma.astype(np.float32)
    a = np.clip(np.asarray(alpha, dtype=np.float32), 0.0, 1.0)
    if background == "auto":
        seen = float(a.sum())
        mean = float((a * luma).sum() / seen) if seen > 0 else 0.0
        bg = 255.0 if mean < 127.5 else 0.0
    else:
        bg = 255.0 if background == "white" else 0.0
    return (a * luma + (1.0 - a) * bg).astype(np.float32)


def resize_grey(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``grey`` float (h, w) in 0..255 resized to ``size`` (H, W) px with Lanczos; returns float32 (H, W) in 0..255.

    The one resampling of this module and of :mod:`vae_core.userdata` (same input, same pixels).
    """
    grey = np.asarray(grey, dtype=np.float32)
    H, W = int(size[0]), int(size[1])
    if grey.shape == (H, W):
        return grey.copy()
    out = Image.fromarray(grey, mode="F").resize((W, H), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 255.0)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _detect_dark_on_light(grey: np.ndarray) -> bool:
    """True when the border (outer ~10 %) is brighter, by median, than the centre half is on average."""
    h, w = grey.shape
    b = max(1, min(h, w) // 10)
    border = np.concatenate([grey[:b].ravel(), grey[-b:].ravel(), grey[:, :b].ravel(), grey[:, -b:].ravel()])
    centre = grey[h // 4 : h - h // 4, w // 4 : w - w // 4]
    return float(np.median(border)) > float(centre.mean())


def _ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), exclusive, of the pixels at or above INK_LEVEL."""
    rows = np.flatnonzero((ink >= INK_LEVEL).any(axis=1))
    cols = np.flatnonzero((ink >= INK_LEVEL).any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _fit(patch: np.ndarray, box: int) -> np.ndarray:
    """``patch`` (h, w) resized so that its longer side is ``box`` px, aspect kept."""
    h, w = patch.shape
    s = box / max(h, w)
    return resize_grey(patch, (max(1, int(np.floor(h * s + 0.5))), max(1, int(np.floor(w * s + 0.5)))))


def _paste(frame: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    """Paste ``patch`` into ``frame`` at (top, left), cropping whatever falls outside."""
    H, W = frame.shape
    h, w = patch.shape
    t0, l0 = max(0, top), max(0, left)
    t1, l1 = min(H, top + h), min(W, left + w)
    if t1 > t0 and l1 > l0:
        frame[t0:t1, l0:l1] = patch[t0 - top : t1 - top, l0 - left : l1 - left]


def _mnist(ink: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The MNIST recipe: box of ink -> fit 20/28 of the frame -> centre of mass at the frame's centre."""
    H, W = size
    box = max(1, round(min(H, W) * 20 / 28))  # 20 px for 28x28
    patch = _fit(ink, box)  # (h, w) float
    total = float(patch.sum())
    ys, xs = np.arange(patch.shape[0]), np.arange(patch.shape[1])
    cy = float((patch.sum(axis=1) * ys).sum() / total)
    cx = float((patch.sum(axis=0) * xs).sum() / total)
    # integer shift so that the centre of mass lands on the frame's centre ((H-1)/2, (W-1)/2)
    top = int(np.floor((H - 1) / 2 - cy + 0.5))
    left = int(np.floor((W - 1) / 2 - cx + 0.5))
    frame = np.zeros((H, W), dtype=np.float32)
    _paste(frame, patch, top, left)
    return _to_uint8(frame)


def _digits(ink: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The optdigits recipe: box of ink -> fit 32x32 (centred) -> threshold -> count per 4x4 block -> 0..16."""
    H, W = size
    big_h, big_w = 4 * H, 4 * W  # 32x32 for 8x8
    patch = _fit(ink, min(big_h, big_w))
    frame = np.zeros((big_h, big_w), dtype=np.float32)
    _paste(frame, patch, (big_h - patch.shape[0]) // 2, (big_w - patch.shape[1]) // 2)
    on = (frame >= 127.5).astype(np.int64)  # (32, 32) bitmap
    counts = on.reshape(H, 4, W, 4).sum(axis=(1, 3))  # (8, 8) in 0..16
    return np.rint(counts * (255.0 / 16.0)).astype(np.uint8)  # as vae_core.data stores digits


# ---------------------------------------------------------------- the pipeline
def preprocess_grey(
    grey: np.ndarray,
    style: ImageStyle,
    invert: bool | None = None,
    *,
    scale: float = 1.0,
    source_size: tuple[int, int] | None = None,
    empty_message: str | None = None,
) -> Preprocessed:
    """Preprocess a grey image float (h, w) in 0..255 (alpha already composited) in ``style``.

    ``invert``: None detects dark-on-light (mnist and digits styles; plain leaves it as it is),
    True/False forces it. For mnist/digits the background (the border's median) is subtracted and
    the ink stretched to full scale before the recipe (see the comment on the background below). ``scale`` maps ``grey``'s pixels to the
    input's (for the reported box). Raises :class:`EmptyImageError` when there is no ink (mnist and
    digits styles; a flat image is a valid input of a user dataset's model).
    """
    grey = np.asarray(grey, dtype=np.float32)
    h, w = grey.shape
    detected = _detect_dark_on_light(grey)
    do_invert = (detected if style.auto_invert else False) if invert is None else bool(invert)
    if do_invert:
        grey = 255.0 - grey
    src = source_size or (h, w)
    empty = empty_message or N_(
        "The image is blank (all one shade): there is nothing to recognise. Choose a picture with a "
        "visible shape, or draw on the canvas."
    )
    if style.kind == "plain":  # a user dataset may hold flat images: nothing to refuse here
        img = _to_uint8(resize_grey(grey, (style.height, style.width)))
        return Preprocessed(img.reshape(-1), img, do_invert, detected, None, src)
    b = max(1, min(h, w) // 10)
    border = np.concatenate([grey[:b].ravel(), grey[-b:].ravel(), grey[:, :b].ravel(), grey[:, -b:].ravel()])
    # background to 0: the border's median when the border is dark (as it is after inversion); when the
    # user kept a light border (invert=False on dark-on-light), the light part is the ink: the 1st percentile
    bg = float(np.median(border))
    if bg >= 127.5:
        bg = float(np.percentile(grey, 1))
    ink = np.clip(grey - bg, 0.0, None)
    peak = float(ink.max())
    if peak < INK_LEVEL:
        raise EmptyImageError(empty)
    ink *= 255.0 / peak  # strokes reach full white, as in MNIST
    top, left, bottom, right = _ink_box(ink)
    crop = ink[top:bottom, left:right]
    img = (
        _mnist(crop, (style.height, style.width))
        if style.kind == "mnist"
        else _digits(crop, (style.height, style.width))
    )
    bbox = (
        int(np.floor(left * scale)),
        int(np.floor(top * scale)),
        min(src[1], int(np.ceil(right * scale))),
        min(src[0], int(np.ceil(bottom * scale))),
    )
    return Preprocessed(img.reshape(-1), img, do_invert, detected, bbox, src)


def preprocess_canvas(rgba: np.ndarray | None, style: ImageStyle, invert: bool | None = None) -> Preprocessed:
    """Preprocess a drawing canvas's image: uint8 or float (h, w, 4) RGBA 0..255 (or (h, w, 3), (h, w)).

    Strokes may be on a transparent, black or white background. ``None`` (no canvas data yet), a
    fully transparent canvas or a one-shade canvas is :class:`EmptyImageError` ("nothing drawn").
    """
    nothing = N_(
        "Nothing is drawn yet: draw a shape on the canvas with the mouse or a finger, then look again."
    )
    if rgba is None:
        raise EmptyImageError(nothing)
    arr = np.asarray(rgba)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or arr.size == 0:
        raise ImageInputError(
            N_("The canvas sent an image of shape {shape}; expected (height, width, 4). Reload the page."),
            shape=arr.shape,
        )
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ImageTooSmallError(
            N_("The canvas is only {w}×{h} pixels; it needs at least {MIN_SIDE}×{MIN_SIDE}."),
            w=w,
            h=h,
            MIN_SIDE=MIN_SIDE,
        )
    arr = arr.astype(np.float32)
    alpha = None
    if arr.ndim == 3 and arr.shape[2] == 4:
        alpha = arr[..., 3] / 255.0
        if float(alpha.max()) <= 0.0:
            raise EmptyImageError(nothing)
        arr = arr[..., :3]
    grey = to_grey(arr, alpha)
    if float(grey.max() - grey.min()) < INK_LEVEL:  # one shade: an opaque canvas with no stroke
        raise EmptyImageError(nothing)
    return preprocess_grey(grey, style, invert, source_size=(h, w), empty_message=nothing)


def preprocess_upload(
    data: bytes,
    style: ImageStyle,
    invert: bool | None = None,
    name: str = "The image",
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> Preprocessed:
    """Preprocess an uploaded PNG/JPEG/WebP file (its bytes) of any size, colour or grey, with or without alpha.

    ``name`` (the file's name) appears in refusals. See :func:`decode_image` for the refusals.
    """
    rgb, alpha, (H, W) = decode_image(data, name, max_pixels=max_pixels, max_bytes=max_bytes)
    grey = to_grey(rgb, alpha if float(alpha.min()) < 1.0 else None)
    scale = W / grey.shape[1]
    return preprocess_grey(grey, style, invert, scale=scale, source_size=(H, W))
