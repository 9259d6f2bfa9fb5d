"""vae_core.userimages: one drawn or uploaded image, preprocessed as the model's dataset was made.

Expectations are built by hand (where a square must land, which 4x4 blocks are how full), and
every bad input of issue 18 that a single image can be gets its own test.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vae_core.userimages import (
    DamagedImageError,
    EmptyImageError,
    ImageInputError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    UnsupportedFormatError,
    decode_image,
    preprocess_canvas,
    preprocess_grey,
    preprocess_upload,
    style_for,
    to_grey,
)

MNIST = style_for("fashion-mnist", (1, 28, 28))
DIGITS = style_for("digits", (1, 8, 8))
USER = style_for("user:shapes.zip", (1, 16, 12))
LEVELS = {int(np.rint(k * 255 / 16)) for k in range(17)}


def canvas(h: int = 280, w: int = 280) -> np.ndarray:
    """An empty drawing canvas: (h, w, 4) uint8, fully transparent."""
    return np.zeros((h, w, 4), dtype=np.uint8)


def stroke(c: np.ndarray, rows: slice, cols: slice, rgb=(255, 255, 255)) -> np.ndarray:
    c[rows, cols, :3] = rgb
    c[rows, cols, 3] = 255
    return c


def png(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "PNG")
    return buf.getvalue()


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    m = img.astype(np.float64)
    ys, xs = np.indices(m.shape)
    return float((m * ys).sum() / m.sum()), float((m * xs).sum() / m.sum())


def png_header(width: int, height: int) -> bytes:
    """A valid-looking PNG that declares width x height, 1-bit grey, with a tiny IDAT: a few dozen bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


class TestStyles:
    def test_style_follows_the_dataset(self):
        assert style_for("mnist", (1, 28, 28)).kind == "mnist"
        assert MNIST.kind == "mnist" and MNIST.dim == 784
        assert DIGITS.kind == "digits" and DIGITS.dim == 64
        assert USER.kind == "plain" and (USER.height, USER.width) == (16, 12) and not USER.auto_invert


class TestMnistRecipe:
    def test_a_centred_square_stays_centred(self):
        p = preprocess_canvas(stroke(canvas(), slice(90, 190), slice(90, 190)), MNIST)
        expected = np.zeros((28, 28), np.uint8)
        expected[4:24, 4:24] = 255  # the 100 px box scaled to 20x20, centred in 28x28
        np.testing.assert_array_equal(p.image, expected)
        assert p.vector.shape == (784,) and p.vector.dtype == np.uint8
        assert p.bbox == (90, 90, 190, 190) and not p.inverted and p.source_size == (280, 280)

    def test_a_bar_is_scaled_by_its_longer_side(self):
        # 100 tall x 20 wide at the top left -> 20 x 4, centred: rows 4..23, columns 12..15
        p = preprocess_canvas(stroke(canvas(), slice(0, 100), slice(0, 20)), MNIST)
        expected = np.zeros((28, 28), np.uint8)
        expected[4:24, 12:16] = 255
        np.testing.assert_array_equal(p.image, expected)

    def test_a_shifted_digit_is_recentred_by_its_centre_of_mass(self):
        def seven(top: int, left: int) -> np.ndarray:  # a "7": a bar on top, a stem at the right
            c = canvas()
            stroke(c, slice(top, top + 20), slice(left, left + 120))
            stroke(c, slice(top, top + 140), slice(left + 100, left + 120))
            return c

        a = preprocess_canvas(seven(10, 10), MNIST)
        b = preprocess_canvas(seven(120, 150), MNIST)
        np.testing.assert_array_equal(a.image, b.image)
        cy, cx = centre_of_mass(a.image)
        assert abs(cy - 13.5) <= 0.5 and abs(cx - 13.5) <= 0.5
        # the centre of mass (not the box) is centred: the box sits left of the middle
        cols = np.flatnonzero(a.image.any(axis=0))
        assert (cols[0] + cols[-1]) / 2 > 13.5 or (cols[0] + cols[-1]) / 2 < 13.5
        assert a.bbox == (10, 10, 130, 150) and b.bbox == (150, 120, 270, 260)

    def test_background_is_black_and_ink_full_white(self):
        c = stroke(canvas(), slice(50, 200), slice(120, 160), rgb=(200, 200, 200))
        p = preprocess_canvas(c, MNIST)
        assert p.image.max() == 255 and p.image[0, 0] == 0 and (p.image[:, :3] == 0).all()


class TestInversion:
    def test_dark_on_light_is_detected_and_inverted(self):
        light = np.full((200, 200, 3), 255, np.uint8)
        light[60:140, 60:140] = 0
        dark = 255 - light
        a = preprocess_upload(png(light), MNIST)
        b = preprocess_upload(png(dark), MNIST)
        assert a.inverted and a.detected_dark_on_light
        assert not b.inverted and not b.detected_dark_on_light
        np.testing.assert_array_equal(a.image, b.image)

    def test_an_explicit_choice_overrides_the_detection(self):
        light = np.full((200, 200), 255, np.uint8)
        light[60:140, 60:140] = 0
        kept = preprocess_upload(png(light), MNIST, invert=False)
        assert not kept.inverted and kept.detected_dark_on_light
        # not inverted, the white surround is the ink: its box is the whole picture
        assert kept.bbox == (0, 0, 200, 200)
        forced = preprocess_upload(png(255 - light), MNIST, invert=True)
        assert forced.inverted and not forced.detected_dark_on_light
        np.testing.assert_array_equal(forced.image, kept.image)

    def test_black_strokes_on_a_transparent_canvas(self):
        c = stroke(canvas(), slice(90, 190), slice(90, 190), rgb=(0, 0, 0))
        p = preprocess_canvas(c, MNIST)
        assert p.inverted
        assert p.image[4:24, 4:24].min() == 255 and p.image.sum() == 255 * 400

    def test_plain_style_never_inverts_unless_asked(self):
        light = np.full((32, 24), 230, np.uint8)
        light[8:24, 8:16] = 20
        p = preprocess_upload(png(light), USER)
        assert not p.inverted and p.detected_dark_on_light and p.image[0, 0] == 230
        q = preprocess_upload(png(light), USER, invert=True)
        assert q.inverted and q.image[0, 0] == 25


class TestGreyAndAlpha:
    def test_colour_turns_grey_as_pillow_L(self):
        rng = np.random.default_rng(0)
        rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
        ours = to_grey(rgb)
        pillow = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32)
        assert np.abs(np.rint(ours) - pillow).max() <= 1  # Pillow rounds in fixed point
        red = to_grey(np.array([[[255, 0, 0]]], np.uint8))
        assert red[0, 0] == pytest.approx(0.299 * 255, abs=1e-3)

    def test_colour_upload_is_grey_in_the_plain_style(self):
        rgb = np.zeros((16, 12, 3), np.uint8)
        rgb[..., 1] = 200  # pure green: luma 0.587 * 200 = 117.4
        p = preprocess_upload(png(rgb), USER)
        assert (p.image == 117).all()

    def test_alpha_is_composited(self):
        rgb = np.zeros((2, 2, 3), np.float32)
        rgb[0, 0] = 255  # white, opaque
        rgb[0, 1] = (255, 0, 0)  # garbage colour in a transparent pixel
        rgb[1, 0] = 255  # white at half alpha
        alpha = np.array([[1.0, 0.0], [0.5, 0.0]], np.float32)
        out = to_grey(rgb, alpha)  # bright content: over black
        np.testing.assert_allclose(out, [[255, 0], [127.5, 0]], atol=1e-3)
        out_white = to_grey(rgb, alpha, background="white")
        np.testing.assert_allclose(out_white, [[255, 255], [255, 255]], atol=1e-3)
        dark = to_grey(np.zeros((2, 2, 3)), alpha)  # dark content: over white
        np.testing.assert_allclose(dark, [[0, 255], [127.5, 255]], atol=1e-3)

    def test_transparent_pixels_colour_does_not_matter(self):
        rgba = np.zeros((100, 100, 4), np.uint8)
        rgba[..., :3] = np.random.default_rng(1).integers(0, 256, (100, 100, 3))  # garbage under alpha 0
        rgba[30:70, 30:70] = (255, 255, 255, 255)
        clean = np.zeros_like(rgba)
        clean[30:70, 30:70] = (255, 255, 255, 255)
        np.testing.assert_array_equal(
            preprocess_upload(png(rgba, "RGBA"), MNIST).image,
            preprocess_upload(png(clean, "RGBA"), MNIST).image,
        )

    def test_jpeg_and_webp_uploads_work(self):
        arr = np.zeros((120, 90, 3), np.uint8)
        arr[20:100, 30:60] = 255
        for fmt in ("JPEG", "WEBP"):
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, fmt, quality=95)
            p = preprocess_upload(buf.getvalue(), MNIST)
            assert p.image.max() == 255 and p.image[0].max() == 0, fmt

    def test_a_large_upload_is_reduced_and_its_box_is_in_its_own_pixels(self):
        big = np.zeros((3000, 2000), np.uint8)
        big[1000:2000, 500:1500] = 255
        p = preprocess_upload(png(big), MNIST)
        assert p.source_size == (3000, 2000)
        left, top, right, bottom = p.bbox
        assert (
            abs(left - 500) <= 3
            and abs(top - 1000) <= 3
            and abs(right - 1500) <= 3
            and abs(bottom - 2000) <= 3
        )
        assert p.image[4:24, 4:24].min() >= 240 and p.image[:4].max() == 0


class TestDigitsRecipe:
    def test_seventeen_levels(self):
        # a 320 x 180 bar: scaled to 32 x 18, centred at columns 7..24 of 32x32; the 4x4 blocks of
        # column 1 (px 4..7) and 6 (px 24..27) are a quarter on (4 of 16), columns 2..5 full
        c = stroke(canvas(400, 400), slice(40, 360), slice(100, 280))
        p = preprocess_canvas(c, DIGITS)
        q = int(np.rint(4 * 255 / 16))
        row = np.array([0, q, 255, 255, 255, 255, q, 0], np.uint8)
        np.testing.assert_array_equal(p.image, np.tile(row, (8, 1)))
        assert p.vector.shape == (64,)

    def test_every_value_is_one_of_17_levels(self):
        c = canvas()
        rr, cc = np.indices((280, 280))
        ring = np.abs(np.hypot(rr - 140, cc - 130) - 80) < 12
        c[ring] = (255, 255, 255, 255)
        p = preprocess_canvas(c, DIGITS)
        assert set(np.unique(p.image).tolist()) <= LEVELS
        assert len(np.unique(p.image)) > 3  # the ring's edges give partial blocks


class TestBadInput:
    def test_an_empty_canvas(self):
        with pytest.raises(EmptyImageError, match="Nothing is drawn yet"):
            preprocess_canvas(canvas(), MNIST)
        with pytest.raises(EmptyImageError, match="Nothing is drawn yet"):
            preprocess_canvas(None, MNIST)
        black = canvas()
        black[..., 3] = 255  # an opaque black background and no stroke
        with pytest.raises(EmptyImageError, match="Nothing is drawn yet"):
            preprocess_canvas(black, DIGITS)

    def test_a_blank_upload(self):
        with pytest.raises(EmptyImageError, match="blank"):
            preprocess_upload(png(np.full((50, 50), 255, np.uint8)), MNIST)
        with pytest.raises(EmptyImageError, match="blank"):
            preprocess_upload(png(np.full((50, 50), 0, np.uint8)), DIGITS)
        # a user dataset may hold flat images: its style takes one as it is
        assert (preprocess_upload(png(np.full((50, 50), 7, np.uint8)), USER).image == 7).all()

    def test_a_1x1_image(self):
        with pytest.raises(ImageTooSmallError, match=r"only 1×1 pixels.*at least 8×8"):
            preprocess_upload(png(np.zeros((1, 1), np.uint8)), MNIST, name="dot.png")

    def test_a_20000x20000_png_is_refused_without_allocating(self):
        data = png_header(20000, 20000)
        assert len(data) < 100
        with pytest.raises(ImageTooLargeError, match="megapixels") as err:
            preprocess_upload(data, MNIST, name="huge.png")
        assert str(err.value).startswith(
            "huge.png is 20000×20000 pixels (400 megapixels), over the limit of 40 megapixels"
        )

    def test_a_png_over_our_limit_but_under_pillows(self):
        with pytest.raises(
            ImageTooLargeError, match=r"8000×6000 pixels \(48 megapixels\), over the limit of 40 megapixels"
        ):
            decode_image(png_header(8000, 6000), "wide.png")

    def test_a_truncated_jpeg(self):
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
            buf, "JPEG"
        )
        data = buf.getvalue()
        with pytest.raises(DamagedImageError, match="damaged or incomplete JPEG"):
            preprocess_upload(data[: len(data) // 2], MNIST, name="cut.jpg")

    def test_a_file_that_is_not_an_image(self):
        with pytest.raises(NotAnImageError, match="notes.txt is not an image"):
            preprocess_upload(b"these are my lecture notes\n" * 10, MNIST, name="notes.txt")
        with pytest.raises(NotAnImageError, match="empty"):
            preprocess_upload(b"", MNIST, name="zero.png")

    @pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
    def test_a_format_not_in_png_jpeg_webp(self, fmt):
        buf = io.BytesIO()
        Image.fromarray(np.zeros((20, 20), np.uint8)).save(buf, fmt)
        with pytest.raises(
            UnsupportedFormatError, match=f"is a {fmt} file; this lab reads PNG, JPEG and WebP"
        ):
            preprocess_upload(buf.getvalue(), MNIST, name=f"x.{fmt.lower()}")

    def test_too_many_bytes(self):
        with pytest.raises(ImageTooLargeError, match="over the 1 MB limit"):
            decode_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 2**21, "big.png", max_bytes=2**20)

    def test_a_bad_canvas_array(self):
        with pytest.raises(ImageInputError, match="expected"):
            preprocess_canvas(np.zeros((10, 10, 2)), MNIST)

    def test_errors_are_value_errors(self):
        for cls in (
            EmptyImageError,
            ImageTooSmallError,
            ImageTooLargeError,
            DamagedImageError,
            NotAnImageError,
            UnsupportedFormatError,
        ):
            assert issubclass(cls, ImageInputError) and issubclass(cls, ValueError)

    def test_preprocess_grey_directly(self):
        g = np.zeros((56, 56), np.float32)
        g[14:42, 14:42] = 255
        p = preprocess_grey(g, MNIST)
        assert p.image[4:24, 4:24].min() == 255 and p.image.sum() == 255 * 400


def test_no_streamlit_import():
    import subprocess
    import sys

    code = "import sys, vae_core.userimages, vae_core.userdata; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
