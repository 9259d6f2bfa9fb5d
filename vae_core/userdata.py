"""A dataset from an upload: a .zip of images (one folder per class, or flat) or an .npz of arrays.

The result is a :class:`vae_core.data.Dataset` named ``user:<file name>`` with a seeded,
stratified 90/10 train/test split, and its content hash (:func:`vae_core.data.content_hash`) for
a checkpoint to record. Every image is made as :mod:`vae_core.userimages`' ``plain`` style makes a
single image: grey (ITU-R 601 luma, alpha composited) and resized with Lanczos.

Limits (each refusal is a :class:`UserDataError`, a ``ValueError`` with a user-facing message):

* the upload at most 50 MB; its contents at most 300 MB, checked from the zip directory before
  anything is extracted and again while streaming (a running byte count: a lying header cannot
  make it read more); in a .zip of images a compression ratio over 100 on an entry over 1 MB, or
  on the whole archive, is a zip bomb (PNG, JPEG and WebP are compressed already; an .npz of
  sparse images may compress better, and its sizes are bounded by the 300 MB check alone); decoded pixels at most 300 M in all and 2048x2048 per image;
* no nested archives, no ``..`` or absolute paths, no symlinks, no encrypted entries;
* at most 70,000 images, at least 10; at most 64x64 after preprocessing; at most 100 classes;
* an .npz is read with ``numpy.load(..., allow_pickle=False)`` after its array headers were
  checked: an object array is refused and never unpickled; ``x`` and ``y`` must agree in length.

Decisions (documented in docs/bad_inputs.md):

* files that are not PNG/JPEG/WebP images, and images that cannot be decoded, are **skipped with
  a warning** that names them (the first few) and counts them; system files (``__MACOSX/``,
  ``.DS_Store``, ``Thumbs.db``, dot-files) are skipped silently. Nothing usable left: refused.
* mixed image sizes are **resized to the most common size** (its longer side capped at 64, aspect
  kept), with a warning that counts the images resized and those whose aspect ratio changed.
* labels come from the first folder below the folders every image shares; every image in a class
  folder, or none (unlabelled, one class). Some in folders and some not: refused.

Nothing here imports streamlit; nothing runs at import.
"""

from __future__ import annotations

import io
import posixpath
import re
import stat
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .data import Dataset, content_hash, dataset_from_arrays
from .errors import N_, LabError, Msg
from .userimages import (
    MIN_SIDE,
    DamagedImageError,
    ImageInputError,
    ImageTooLargeError,
    ImageTooSmallError,
    decode_image,
    resize_grey,
    sniff_format,
    to_grey,
)

__all__ = [
    "UserDataError",
    "ArchiveRefused",
    "ZipBombError",
    "NotADatasetError",
    "NoImagesError",
    "TooManyImagesError",
    "MixedLabelsError",
    "NpzContentError",
    "ObjectArrayError",
    "LengthMismatchError",
    "UserData",
    "load_user_dataset",
    "dataset_from_zip",
    "dataset_from_npz",
    "target_size",
    "MAX_SIDE",
    "MAX_IMAGES",
    "MIN_IMAGES",
    "MAX_CLASSES",
    "MAX_COMPRESSED_BYTES",
    "MAX_UNCOMPRESSED_BYTES",
    "MAX_RATIO",
]

MAX_SIDE = 64  # px, longer side after preprocessing
MAX_IMAGES = 70_000  # images in one dataset (as many as MNIST)
MIN_IMAGES = 10  # fewer cannot be split and trained on meaningfully
MAX_CLASSES = 100  # class folders / distinct labels
MAX_COMPRESSED_BYTES = 50 * 2**20  # the upload itself, MB as Streamlit's uploader counts (MiB)
MAX_UNCOMPRESSED_BYTES = 300 * 2**20  # everything in the archive, expanded
MAX_RATIO = 100  # expanded / compressed, above this an entry (over RATIO_FLOOR) or the archive is a bomb
RATIO_FLOOR = 2**20  # entries smaller than 1 MB may compress as well as they like
MAX_ENTRIES = 100_000  # zip directory entries of any kind
MAX_IMAGE_PIXELS = 2048 * 2048  # one image in a dataset: larger is no training image (and 64 MB as float)
MAX_TOTAL_PIXELS = 300_000_000  # all images decoded, before resizing: bounds the work of a PNG bomb
CHUNK = 2**20  # bytes per streaming read
UNLABELLED = "unlabelled"  # the one class name of a dataset without labels
SHOW = 5  # file names listed in a message
_REASON = {ImageTooSmallError: "too small", ImageTooLargeError: "too large", DamagedImageError: "damaged"}

_SYSTEM = re.compile(r"(^|/)(__MACOSX|\.[^/]*)(/|$)|(^|/)(Thumbs\.db|desktop\.ini)$", re.IGNORECASE)
_ARCHIVE_EXT = (".zip", ".npz", ".jar", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".cbz")
_ARCHIVE_MAGIC = (
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ\x00",
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!",
    b"\x28\xb5\x2f\xfd",
)


# ---------------------------------------------------------------- errors
class UserDataError(LabError, ValueError):
    """An upload that cannot become a dataset; the message (user-facing) says why and what to do."""


class ArchiveRefused(UserDataError):
    """An unsafe archive: nested archive, ``..``/absolute path, symlink, encrypted entry, damaged zip."""


class ZipBombError(ArchiveRefused):
    """Too large when expanded, or compressed suspiciously well (a zip bomb)."""


class NotADatasetError(UserDataError):
    """Not a .zip or .npz, or too large as uploaded."""


class NoImagesError(UserDataError):
    """Nothing usable: no images, too few, or none that decode."""


class TooManyImagesError(UserDataError):
    """More than MAX_IMAGES images (or MAX_CLASSES classes)."""


class MixedLabelsError(UserDataError):
    """Some images in class folders and some not."""


class NpzContentError(UserDataError):
    """An .npz without a usable ``x`` (wrong dtype, shape, missing)."""


class ObjectArrayError(NpzContentError):
    """An .npz holding an object (pickled) array: refused, never unpickled."""


class LengthMismatchError(NpzContentError):
    """``x`` and ``y`` of different lengths."""


@dataclass(frozen=True)
class UserData:
    """An uploaded dataset and what the page reports about it."""

    dataset: Dataset  # name "user:<file>", uint8 (N, H*W) splits, image_shape (1, H, W)
    content_hash: str  # sha256 hex of pixels, labels, split, shape and class names: for the checkpoint
    labelled: bool  # False: one class named UNLABELLED
    warnings: tuple[
        Msg, ...
    ]  # skipped files, resized images (English text + template): shown beside the success message
    n_images: int  # train + test


# ---------------------------------------------------------------- entry point
def load_user_dataset(
    data: bytes | str | Path, filename: str | None = None, *, seed: int = 0, test_fraction: float = 0.1
) -> UserData:
    """A dataset from an uploaded ``.zip`` or ``.npz`` (its bytes, or a path), chosen by ``filename``'s extension.

    ``filename`` names the dataset (``user:<filename>``) and the messages; it defaults to the path's
    name. Raises a :class:`UserDataError` subclass.
    """
    data, filename = _read_input(data, filename)
    ext = posixpath.splitext(filename.lower())[1]
    if ext == ".npz":
        return dataset_from_npz(data, filename, seed=seed, test_fraction=test_fraction)
    if ext == ".zip":
        return dataset_from_zip(data, filename, seed=seed, test_fraction=test_fraction)
    raise NotADatasetError(
        N_(
            "{filename} is not a .zip or .npz file. Upload a .zip of images (one folder per class, or all in one folder) or an .npz holding x (N, H, W) uint8 and optionally y (N,)."
        ),
        filename=filename,
    )


def _read_input(data: bytes | str | Path, filename: str | None) -> tuple[bytes, str]:
    if isinstance(data, (str, Path)):
        path = Path(data)
        size = path.stat().st_size
        name = filename or path.name
        _check_upload_size(size, name)
        data = path.read_bytes()
        filename = name
    name = posixpath.basename((filename or "upload").replace("\\", "/")) or "upload"
    _check_upload_size(len(data), name)
    return bytes(data), name


def _check_upload_size(size: int, name: str) -> None:
    if size == 0:
        raise NotADatasetError(
            N_("{name} is empty (0 bytes). Upload a .zip of images or an .npz."), name=name
        )
    if size > MAX_COMPRESSED_BYTES:
        raise NotADatasetError(
            N_(
                "{name} is {over_mb_size} MB, over the {value} MB limit for an upload. Use fewer or smaller images (at most {MAX_SIDE}×{MAX_SIDE} are kept anyway)."
            ),
            name=name,
            over_mb_size=_over_mb(size, MAX_COMPRESSED_BYTES),
            value=MAX_COMPRESSED_BYTES // 2**20,
            MAX_SIDE=MAX_SIDE,
        )


def _over_mb(size: int, limit: int) -> str:
    """``size`` in MB with enough decimals to show that it is over ``limit`` (50.0001, not 50.0)."""
    digits = 1
    while digits < 6 and round(size / 2**20, digits) <= limit / 2**20:
        digits += 1
    return f"{size / 2**20:.{digits}f}"


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 2**10:.0f} kB"


def _joined(messages: list[Msg]) -> str | Msg:
    """Up to two messages as one (each stays translatable), or "" for none."""
    if not messages:
        return ""
    if len(messages) == 1:
        return messages[0]
    return Msg(N_("{first} {second}"), first=messages[0], second=_joined(messages[1:]))


def _names(names: list[str]) -> str | Msg:
    """The first SHOW names, and how many more (a Msg, so that a UI translates the "more")."""
    shown = ", ".join(names[:SHOW])
    if len(names) <= SHOW:
        return shown
    return Msg(N_("{shown} and {more} more"), shown=shown, more=len(names) - SHOW)


# ---------------------------------------------------------------- the zip directory, checked before extracting
def _open_zip(data: bytes, filename: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise ArchiveRefused(
            N_(
                "{filename} is not a valid zip archive (it is damaged or another format). Zip the folder again and upload it."
            ),
            filename=filename,
        ) from None


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    """Why an entry may not be extracted, or None."""
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in parts:
        return "a '..' path that points outside the archive"
    if "\x00" in name:
        return "a name with a NUL character"
    if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    if info.flag_bits & 0x1:
        return "an encrypted entry"
    return None


def _check_directory(zf: zipfile.ZipFile, filename: str, ratio: bool = True) -> list[zipfile.ZipInfo]:
    """The archive's file entries, after every check that needs only the zip directory (``ratio``: the bomb ratio too)."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise TooManyImagesError(
            N_("{filename} holds {len_infos:,} entries, more than this lab reads ({MAX_ENTRIES:,})."),
            filename=filename,
            len_infos=len(infos),
            MAX_ENTRIES=MAX_ENTRIES,
        )
    for info in infos:
        reason = _unsafe_reason(info)
        if reason:
            raise ArchiveRefused(
                N_(
                    "{filename} was refused: {filename2!r} is {reason}, which could write outside the upload. Zip a plain folder of images (no links) and upload it again."
                ),
                filename=filename,
                filename2=info.filename,
                reason=reason,
            )
    files = [i for i in infos if not i.is_dir()]
    for info in files:
        if posixpath.splitext(info.filename.lower())[1] in _ARCHIVE_EXT:
            raise ArchiveRefused(
                N_(
                    "{filename} was refused: it contains another archive ({filename2}). Unzip that one and put its images into the folder directly."
                ),
                filename=filename,
                filename2=info.filename,
            )
    total = sum(i.file_size for i in files)
    packed = sum(i.compress_size for i in files)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise ZipBombError(
            N_(
                "{filename} was refused: it would expand to {mb_total}, over the {mb_MAX_UNCOMPRESSED_BYTES} limit. Upload fewer or smaller images."
            ),
            filename=filename,
            mb_total=_mb(total),
            mb_MAX_UNCOMPRESSED_BYTES=_mb(MAX_UNCOMPRESSED_BYTES),
        )
    if not ratio:
        return files
    for info in files:
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(1, info.compress_size):
            raise ZipBombError(
                N_(
                    "{filename} was refused as a zip bomb: {filename2} expands {value:,.0f}× (from {mb_compress_size} to {mb_file_size}; images compress at most {MAX_RATIO}×)."
                ),
                filename=filename,
                filename2=info.filename,
                value=info.file_size / max(1, info.compress_size),
                mb_compress_size=_mb(info.compress_size),
                mb_file_size=_mb(info.file_size),
                MAX_RATIO=MAX_RATIO,
            )
    if total > RATIO_FLOOR and total > MAX_RATIO * max(1, packed):
        raise ZipBombError(
            N_(
                "{filename} was refused as a zip bomb: it expands {value:,.0f}× (images compress at most {MAX_RATIO}×)."
            ),
            filename=filename,
            value=total / max(1, packed),
            MAX_RATIO=MAX_RATIO,
        )
    return files


class _Stream:
    """Reads entries with a running byte count over the whole archive (headers may lie)."""

    def __init__(self, zf: zipfile.ZipFile, filename: str) -> None:
        self.zf, self.filename, self.total = zf, filename, 0

    def read(self, info: zipfile.ZipInfo) -> bytes:
        chunks: list[bytes] = []
        got = 0
        try:
            with self.zf.open(info) as fh:
                while chunk := fh.read(CHUNK):
                    got += len(chunk)
                    self.total += len(chunk)
                    if got > info.file_size or self.total > MAX_UNCOMPRESSED_BYTES:
                        raise ZipBombError(
                            N_(
                                "{filename} was refused as a zip bomb: {filename2} expands beyond what its header says ({mb_file_size}); the archive is forged or damaged."
                            ),
                            filename=self.filename,
                            filename2=info.filename,
                            mb_file_size=_mb(info.file_size),
                        )
                    chunks.append(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            if isinstance(exc, UserDataError):
                raise
            raise ArchiveRefused(
                N_(
                    "{filename} was refused: {filename2} cannot be extracted ({exc}); the archive is damaged. Zip the folder again and upload it."
                ),
                filename=self.filename,
                filename2=info.filename,
                exc=exc,
            ) from None
        return b"".join(chunks)


# ---------------------------------------------------------------- zip of images
def _most_common(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The most common (H, W) of ``sizes``; ties go to the larger image."""
    return max(Counter(sizes).items(), key=lambda kv: (kv[1], kv[0][0] * kv[0][1], kv[0]))[0]


def target_size(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The dataset's (H, W): the most common of ``sizes`` (H, W) (ties: the larger), longer side capped at MAX_SIDE."""
    h, w = _most_common(sizes)
    s = min(1.0, MAX_SIDE / max(h, w))
    return max(1, int(np.floor(h * s + 0.5))), max(1, int(np.floor(w * s + 0.5)))


def _labels_from_paths(paths: list[str], filename: str) -> tuple[list[str] | None, int]:
    """Class of each path (the first folder below the shared ones), or None when flat; and the depth stripped."""
    split = [p.split("/") for p in paths]
    common = 0
    while all(len(s) > common + 1 for s in split) and len({s[common] for s in split}) == 1:
        common += 1
    inside = [len(s) - common > 1 for s in split]
    if not any(inside):
        return None, common
    if not all(inside):
        loose = [p for p, i in zip(paths, inside) if not i]
        raise MixedLabelsError(
            N_(
                "{filename}: {sum_inside} images are in class folders but {len_loose} {value} not ({names_loose}). Put every image in a folder named after its class, or put all of them in one folder for no labels."
            ),
            filename=filename,
            sum_inside=sum(inside),
            len_loose=len(loose),
            value="is" if len(loose) == 1 else "are",
            names_loose=_names(loose),
        )
    return [s[common] for s in split], common


def dataset_from_zip(data: bytes, filename: str, *, seed: int = 0, test_fraction: float = 0.1) -> UserData:
    """A dataset from the bytes of a .zip of PNG/JPEG/WebP images, one folder per class or flat.

    Entries are read in sorted path order (the dataset does not depend on the zip's order).
    Raises :class:`ArchiveRefused`, :class:`ZipBombError`, :class:`NoImagesError`,
    :class:`TooManyImagesError`, :class:`MixedLabelsError`.
    """
    _check_upload_size(len(data), filename)
    with _open_zip(data, filename) as zf:
        files = sorted(_check_directory(zf, filename), key=lambda i: i.filename)
        files = [i for i in files if not _SYSTEM.search(i.filename.replace("\\", "/"))]
        stream = _Stream(zf, filename)
        greys: list[np.ndarray] = []  # each at most MAX_SIDE a side
        names: list[str] = []
        sizes: list[tuple[int, int]] = []  # (H, W) of each original
        not_images: list[str] = []
        damaged: list[str] = []
        pixels = 0
        for info in files:
            raw = stream.read(info)
            if raw.startswith(_ARCHIVE_MAGIC) or raw[257:262] == b"ustar":
                raise ArchiveRefused(
                    N_(
                        "{filename} was refused: {filename2} is itself an archive. Unzip it and put its images into the folder directly."
                    ),
                    filename=filename,
                    filename2=info.filename,
                )
            fmt = sniff_format(raw)
            if fmt not in ("PNG", "JPEG", "WEBP"):
                not_images.append(info.filename)
                continue
            if len(greys) >= MAX_IMAGES:
                raise TooManyImagesError(
                    N_(
                        "{filename} holds more than {MAX_IMAGES:,} images, the most this lab trains on. Upload a subset."
                    ),
                    filename=filename,
                    MAX_IMAGES=MAX_IMAGES,
                )
            try:
                with Image.open(io.BytesIO(raw), formats=[fmt]) as im:  # header only: the size
                    pixels += im.width * im.height
            except (
                OSError,
                SyntaxError,
                ValueError,
                EOFError,
                Image.DecompressionBombError,
            ):  # a damaged header
                damaged.append(info.filename)
                continue
            if pixels > MAX_TOTAL_PIXELS:
                raise ZipBombError(
                    N_(
                        "{filename} was refused: its images hold more than {value} million pixels in all, too many to decode. Scale them down (at most {MAX_SIDE}×{MAX_SIDE} are kept anyway)."
                    ),
                    filename=filename,
                    value=MAX_TOTAL_PIXELS // 10**6,
                    MAX_SIDE=MAX_SIDE,
                )
            try:
                rgb, alpha, _ = decode_image(
                    raw,
                    info.filename,
                    max_pixels=MAX_IMAGE_PIXELS,
                    max_bytes=MAX_UNCOMPRESSED_BYTES,
                    work_side=None,
                )
            except ImageInputError as exc:
                damaged.append(f"{info.filename} ({_REASON.get(type(exc), 'damaged')})")
                continue
            grey = to_grey(rgb, alpha if float(alpha.min()) < 1.0 else None)
            # keep at most a 64-side copy now (memory); the most common size is made from the original below
            h, w = grey.shape
            s = min(1.0, MAX_SIDE / max(h, w))
            small = resize_grey(
                grey, (max(1, int(np.floor(h * s + 0.5))), max(1, int(np.floor(w * s + 0.5))))
            )
            greys.append(small)
            names.append(info.filename.replace("\\", "/"))
            sizes.append((h, w))
    # Messages with an English template and their fields (errors.Msg): the app shows them in its language.
    warnings: list[Msg] = []
    if not_images:
        warnings.append(
            Msg(
                N_("Skipped {n} files that are not PNG, JPEG or WebP images: {names}.")
                if len(not_images) != 1
                else N_("Skipped {n} file that is not a PNG, JPEG or WebP image: {names}."),
                n=len(not_images),
                names=_names(not_images),
            )
        )
    if damaged:
        warnings.append(
            Msg(
                N_("Skipped {n} images that could not be read (damaged, too small or too large): {names}.")
                if len(damaged) != 1
                else N_(
                    "Skipped {n} image that could not be read (damaged, too small or too large): {names}."
                ),
                n=len(damaged),
                names=_names(damaged),
            )
        )
    if len(greys) < MIN_IMAGES:
        raise NoImagesError(
            N_(
                "{filename}: found {found} usable images; at least {min_images} PNG, JPEG or WebP images are "
                "needed. {skipped}"
            ),
            filename=filename,
            found=len(greys),
            min_images=MIN_IMAGES,
            skipped=_joined(warnings),
        )
    classes, _ = _labels_from_paths(names, filename)
    H, W = target_size(sizes)
    ch, cw = _most_common(sizes)
    images = np.empty((len(greys), H, W), dtype=np.uint8)
    for k, g in enumerate(greys):
        images[k] = np.clip(np.rint(resize_grey(g, (H, W))), 0, 255).astype(np.uint8)
    odd = [s for s in sizes if s != (ch, cw)]
    if odd:
        stretched = sum(abs(h / w - ch / cw) > 0.02 * ch / cw for h, w in odd)
        warnings.append(
            Msg(
                N_(
                    "The images have {sizes} different sizes: {odd} were resized to the most common size, "
                    "{h}×{w} ({stretched} of them stretched to its shape)."
                )
                if stretched
                else N_(
                    "The images have {sizes} different sizes: {odd} were resized to the most common size, {h}×{w}."
                ),
                sizes=len(set(sizes)),
                odd=len(odd),
                h=ch,
                w=cw,
                stretched=stretched,
            )
        )
    if (ch, cw) != (H, W):
        warnings.append(
            Msg(
                N_("Every image was scaled down to {h}×{w} (at most {side}×{side} are kept)."),
                h=H,
                w=W,
                side=MAX_SIDE,
            )
        )
    if classes is None:
        labels = np.zeros(len(images), dtype=np.int64)
        class_names: tuple[str, ...] = (UNLABELLED,)
    else:
        class_names = tuple(sorted(set(classes)))
        if len(class_names) > MAX_CLASSES:
            raise TooManyImagesError(
                N_(
                    "{filename} has {len_class_names} class folders, more than {MAX_CLASSES}. Group them into fewer classes."
                ),
                filename=filename,
                len_class_names=len(class_names),
                MAX_CLASSES=MAX_CLASSES,
            )
        index = {c: i for i, c in enumerate(class_names)}
        labels = np.array([index[c] for c in classes], dtype=np.int64)
    return _finish(filename, images, labels, class_names, classes is not None, warnings, seed, test_fraction)


def _finish(
    filename: str,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    labelled: bool,
    warnings: list[Msg],
    seed: int,
    test_fraction: float,
) -> UserData:
    ds = dataset_from_arrays(
        f"user:{filename}",
        images,
        labels,
        class_names,
        test_fraction=test_fraction,
        seed=seed,
        source=f"uploaded {filename}",
    )
    return UserData(ds, content_hash(ds), labelled, tuple(warnings), len(images))


# ---------------------------------------------------------------- .npz
def _npy_header(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, filename: str
) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of one .npy entry, read from its header alone."""
    key = info.filename[:-4]
    try:
        with zf.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unknown .npy version {version}")
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "object" in str(exc).lower():
            raise _object_array(filename, key) from None
        raise NpzContentError(
            N_(
                "{filename}: the array {key!r} is not a valid .npy array ({exc}). Save it again with numpy.savez."
            ),
            filename=filename,
            key=key,
            exc=exc,
        ) from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ArchiveRefused(
            N_("{filename}: the array {key!r} cannot be read ({exc}); the file is damaged."),
            filename=filename,
            key=key,
            exc=exc,
        ) from None
    if dtype.hasobject:
        raise _object_array(filename, key)
    return tuple(int(s) for s in shape), dtype


def _object_array(filename: str, key: str) -> ObjectArrayError:
    return ObjectArrayError(
        N_(
            "{filename} was refused: {key!r} is an object array, which would have to be unpickled, and pickles can run code, so this lab never opens them. Save plain numbers: numpy.savez(path, x=x.astype(numpy.uint8), y=y.astype(numpy.int64))."
        ),
        filename=filename,
        key=key,
    )


def dataset_from_npz(data: bytes, filename: str, *, seed: int = 0, test_fraction: float = 0.1) -> UserData:
    """A dataset from the bytes of an .npz holding ``x`` (N, H, W) uint8 (or (N, H, W, 1)) and optionally ``y`` (N,).

    ``y`` holds integers or strings; its distinct values, sorted, become the classes. Images over
    64 px a side are resized (aspect kept, longer side 64). The array headers are checked before
    any array is loaded, then ``numpy.load(..., allow_pickle=False)`` reads them. Raises
    :class:`ObjectArrayError`, :class:`LengthMismatchError`, :class:`NpzContentError`,
    :class:`ZipBombError`, :class:`ArchiveRefused`, :class:`TooManyImagesError`, :class:`NoImagesError`.
    """
    _check_upload_size(len(data), filename)
    hint = Msg(N_("Save it with numpy.savez(path, x=images, y=labels), images uint8 of shape (N, H, W)."))
    with _open_zip(data, filename) as zf:
        files = _check_directory(zf, filename, ratio=False)
        entries = {i.filename[:-4]: i for i in files if i.filename.endswith(".npy")}
        if "x" not in entries:
            keys = sorted(entries) or [i.filename for i in files]
            raise NpzContentError(
                N_("{filename} holds no array named 'x' (it has {value}). {hint}"),
                filename=filename,
                value=_names(keys) or Msg(N_("nothing")),
                hint=hint,
            )
        headers = {k: _npy_header(zf, entries[k], filename) for k in ("x", "y") if k in entries}
    warnings: list[Msg] = []
    extra = sorted(set(entries) - {"x", "y"})
    if extra:
        warnings.append(Msg(N_("Ignored the arrays {names}: only x and y are read."), names=_names(extra)))
    shape, dtype = headers["x"]
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise NpzContentError(
            N_("{filename}: x has shape {shape}; expected (N, H, W), one grey image per row. {hint}"),
            filename=filename,
            shape=shape,
            hint=hint,
        )
    if dtype != np.uint8:
        raise NpzContentError(
            N_(
                "{filename}: x holds {dtype} values; expected uint8 0..255. Convert it first, e.g. x = (x * 255).round().astype(numpy.uint8) for floats in [0, 1]."
            ),
            filename=filename,
            dtype=dtype,
        )
    n, h, w = shape
    if n > MAX_IMAGES:
        raise TooManyImagesError(
            N_(
                "{filename} holds {n:,} images, more than the {MAX_IMAGES:,} this lab trains on. Save a subset."
            ),
            filename=filename,
            n=n,
            MAX_IMAGES=MAX_IMAGES,
        )
    if n < MIN_IMAGES:
        raise NoImagesError(
            N_("{filename} holds {n} image{value}; at least {MIN_IMAGES} are needed."),
            filename=filename,
            n=n,
            value="s" if n != 1 else "",
            MIN_IMAGES=MIN_IMAGES,
        )
    if min(h, w) < MIN_SIDE or h * w > MAX_IMAGE_PIXELS:
        raise NpzContentError(
            N_(
                "{filename}: its images are {h}×{w}; they must be at least {MIN_SIDE}×{MIN_SIDE} and at most 2048×2048. {hint}"
            ),
            filename=filename,
            h=h,
            w=w,
            MIN_SIDE=MIN_SIDE,
            hint=hint,
        )
    if n * h * w > entries["x"].file_size:
        raise NpzContentError(
            N_("{filename}: x's header promises {n}×{h}×{w} pixels but the file holds fewer; it is damaged."),
            filename=filename,
            n=n,
            h=h,
            w=w,
        )
    if "y" in headers:
        yshape, ydtype = headers["y"]
        if len(yshape) != 1:
            raise NpzContentError(
                N_("{filename}: y has shape {yshape}; expected (N,), one label per image."),
                filename=filename,
                yshape=yshape,
            )
        if yshape[0] != n:
            raise LengthMismatchError(
                N_(
                    "{filename}: x holds {n} images but y holds {value} labels; they must be the same length, one label per image."
                ),
                filename=filename,
                n=n,
                value=yshape[0],
            )
        if ydtype.kind not in "iubUS":
            raise NpzContentError(
                N_("{filename}: y holds {ydtype} values; expected integers or strings, one label per image."),
                filename=filename,
                ydtype=ydtype,
            )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            x = np.asarray(npz["x"]).reshape(n, h, w)
            y = np.asarray(npz["y"]) if "y" in headers else None
    except ValueError as exc:  # allow_pickle=False refusing an object array we did not see coming
        if "pickle" in str(exc):
            raise _object_array(filename, "x or y") from None
        raise NpzContentError(
            N_("{filename}: cannot be read ({exc}). {hint}"), filename=filename, exc=exc, hint=hint
        ) from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ArchiveRefused(
            N_("{filename}: cannot be read ({exc}); the file is damaged."), filename=filename, exc=exc
        ) from None
    if max(h, w) > MAX_SIDE:
        H, W = target_size([(h, w)])
        x = np.stack([np.clip(np.rint(resize_grey(im, (H, W))), 0, 255).astype(np.uint8) for im in x])
        warnings.append(
            Msg(
                N_("Every image was scaled down from {h0}×{w0} to {h}×{w} (at most {side}×{side} are kept)."),
                h0=h,
                w0=w,
                h=H,
                w=W,
                side=MAX_SIDE,
            )
        )
    if y is None:
        labels = np.zeros(n, dtype=np.int64)
        class_names: tuple[str, ...] = (UNLABELLED,)
    else:
        values, labels = np.unique(y, return_inverse=True)
        if len(values) > MAX_CLASSES:
            raise TooManyImagesError(
                N_("{filename}: y has {len_values} distinct labels, more than {MAX_CLASSES}."),
                filename=filename,
                len_values=len(values),
                MAX_CLASSES=MAX_CLASSES,
            )
        if values.dtype.kind == "S":
            class_names = tuple(v.decode("utf-8", "replace") for v in values)
        else:
            class_names = tuple(str(v) for v in values.tolist())
        labels = labels.reshape(-1).astype(np.int64)
    return _finish(
        filename, np.ascontiguousarray(x), labels, class_names, y is not None, warnings, seed, test_fraction
    )
