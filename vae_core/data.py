"""Datasets by name, held in memory as uint8 tensors; a batch is an index slice.

Registry: ``digits`` (scikit-learn's bundled 8x8 digits, always there: the offline default),
``fashion-mnist`` and ``mnist`` (28x28). For the 28x28 sets the files are looked for in

1. a local data folder (``root`` argument, else ``$VAE_LAB_DATA``, else ``<project>/data``),
   flat (``root/fashion-mnist/*.gz``) or in torchvision's layout (``root/FashionMNIST/raw/``);
2. Debian's dataset files (``apt-get install dataset-fashion-mnist`` puts them in
   ``/usr/share/datasets/fashion-mnist/``);
3. a download through torchvision's loader into the local data folder (when allowed).

Nothing found: :class:`DatasetUnavailable` with one message naming what is missing and how to
get it. Bad files: :class:`DatasetError` naming the file.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import N_, LabError

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetUnavailable",
    "DATASETS",
    "load_dataset",
    "dataset_available",
    "read_idx",
    "default_data_root",
    "to_float",
    "binarize",
    "dataset_from_arrays",
    "content_hash",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEBIAN_DIRS = {
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
    "mnist": Path("/usr/share/datasets/mnist"),
}
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


class DatasetError(LabError, RuntimeError):
    """A dataset file exists but is unreadable (wrong magic, truncated, inconsistent)."""


class DatasetUnavailable(DatasetError):
    """A dataset could not be found anywhere; the message lists the ways to get it."""


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about a registered dataset."""

    name: str
    title: str
    image_shape: tuple[int, int, int]  # (C, H, W)
    class_names: tuple[str, ...]
    torchvision_name: str | None  # folder name torchvision uses under root/


DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(
        "digits", "scikit-learn digits (8x8)", (1, 8, 8), tuple(str(i) for i in range(10)), None
    ),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", "Fashion-MNIST (28x28)", (1, 28, 28), FASHION_CLASSES, "FashionMNIST"
    ),
    "mnist": DatasetSpec("mnist", "MNIST (28x28)", (1, 28, 28), tuple(str(i) for i in range(10)), "MNIST"),
}


@dataclass(frozen=True)
class Dataset:
    """Both splits of one dataset in memory. Images are flattened uint8 (N, D); labels int64 (N,)."""

    name: str
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    x_train: torch.Tensor  # (N_train, D) uint8
    y_train: torch.Tensor  # (N_train,) int64
    x_test: torch.Tensor  # (N_test, D) uint8
    y_test: torch.Tensor  # (N_test,) int64
    source: str  # where the files were found, for display

    @property
    def dim(self) -> int:
        """D, pixels per image."""
        return int(self.x_train.shape[1])

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def to(self, device: torch.device | str) -> Dataset:
        """The same data on ``device`` (uint8 stays uint8: 4x less memory than float)."""
        dev = torch.device(device)
        if dev == self.x_train.device:
            return self
        return Dataset(
            self.name,
            self.image_shape,
            self.class_names,
            self.x_train.to(dev),
            self.y_train.to(dev),
            self.x_test.to(dev),
            self.y_test.to(dev),
            self.source,
        )

    def split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(images uint8 (N, D), labels (N,)) of ``"train"`` or ``"test"``."""
        if split == "train":
            return self.x_train, self.y_train
        if split == "test":
            return self.x_test, self.y_test
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")

    def batch(self, split: str, idx: torch.Tensor | slice) -> torch.Tensor:
        """Images at ``idx`` as float (B, D) in [0, 1], on the dataset's device."""
        x, _ = self.split(split)
        if isinstance(idx, torch.Tensor) and idx.dim() == 1 and idx.dtype in (torch.int64, torch.int32):
            return to_float(x.index_select(0, idx))  # a contiguous gather: the trainer's hot path
        return to_float(x[idx])


def to_float(x: torch.Tensor) -> torch.Tensor:
    """Pixels (..., D) as uint8 0..255 or float in [0, 1] -> float32 in [0, 1] (floats pass through).

    The one uint8 -> float conversion of the lab: datasets hold uint8, models take float.
    """
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    return x.to(torch.float32)


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarization: x_d ~ Bernoulli(pixel_d) for pixels x (..., D) uint8 or float in [0, 1].

    Returns float32 zeros and ones of x's shape. Redrawn at every step (a new ``generator``
    state), it makes the Bernoulli likelihood a true likelihood of the data the model sees, so
    NLL figures compare with the binarized-MNIST literature.
    """
    return torch.bernoulli(to_float(x), generator=generator)


def default_data_root() -> Path:
    """The local data folder: ``$VAE_LAB_DATA`` or ``<project>/data``."""
    env = os.environ.get("VAE_LAB_DATA")
    return Path(env).expanduser() if env else PROJECT_ROOT / "data"


# ---------------------------------------------------------------- IDX files
def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a uint8 array: images (N, H, W) or labels (N,).

    Raises :class:`DatasetError` naming the file on a wrong magic number, a wrong element
    type or a truncated body.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise DatasetError(N_("{path}: file not found"), path=path) from None
    except (OSError, EOFError) as exc:  # bad gzip stream, truncated gzip
        raise DatasetError(
            N_("{path}: cannot be read ({exc}); the file is damaged: delete it and fetch it again"),
            path=path,
            exc=exc,
        ) from None
    if len(raw) < 4:
        raise DatasetError(
            N_("{path}: too short to be an IDX file ({len_raw} bytes)"), path=path, len_raw=len(raw)
        )
    zero, dtype_code, ndim = raw[0] << 8 | raw[1], raw[2], raw[3]
    if zero != 0 or ndim not in (1, 3):
        raise DatasetError(
            N_(
                "{path}: not an IDX file (magic bytes {value}; expected 00000801 for labels or 00000803 for images)"
            ),
            path=path,
            value=raw[:4].hex(),
        )
    if dtype_code != 0x08:
        raise DatasetError(
            N_("{path}: IDX element type 0x{dtype_code:02x} is not unsigned bytes (0x08)"),
            path=path,
            dtype_code=dtype_code,
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(N_("{path}: truncated IDX header"), path=path)
    shape = struct.unpack(">" + "I" * ndim, raw[4:header])
    need = math.prod(shape)  # exact: np.prod would overflow int64 on a hostile header
    have = len(raw) - header
    if have < need:
        raise DatasetError(
            N_("{path}: truncated: header promises {need} bytes of data, file has {have}"),
            path=path,
            need=need,
            have=have,
        )
    return np.frombuffer(raw, dtype=np.uint8, count=need, offset=header).reshape(shape)


def _find_file(dirs: list[Path], stem: str) -> Path | None:
    for d in dirs:
        for name in (stem, stem + ".gz"):
            p = d / name
            if p.is_file():
                return p
    return None


def _candidate_dirs(spec: DatasetSpec, root: Path) -> list[Path]:
    dirs = [root / spec.name, root / spec.name / "raw"]
    if spec.torchvision_name:
        dirs += [root / spec.torchvision_name / "raw"]
    if spec.name in DEBIAN_DIRS:
        dirs.append(DEBIAN_DIRS[spec.name])
    return dirs


def locate_idx(name: str, root: str | Path | None = None) -> dict[str, Path] | None:
    """Paths of the four IDX files of ``name`` if all are present locally, else None."""
    spec = _spec(name)
    dirs = _candidate_dirs(spec, Path(root) if root else default_data_root())
    found = {key: _find_file(dirs, stem) for key, stem in IDX_FILES.items()}
    return found if all(found.values()) else None  # type: ignore[return-value]


def dataset_available(name: str, root: str | Path | None = None) -> bool:
    """True when ``name`` can be loaded without a download."""
    return name == "digits" or (name in DATASETS and locate_idx(name, root) is not None)


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise DatasetError(
            N_("unknown dataset {name!r}; choose one of {sorted_DATASETS}"),
            name=name,
            sorted_DATASETS=sorted(DATASETS),
        )
    return DATASETS[name]


def _download(spec: DatasetSpec, root: Path) -> None:
    if spec.torchvision_name is None:  # only "digits", which never downloads
        raise ValueError(f"{spec.name} has no torchvision download")
    import torchvision  # slow import: only when a download is really attempted

    cls = {"FashionMNIST": torchvision.datasets.FashionMNIST, "MNIST": torchvision.datasets.MNIST}[
        spec.torchvision_name
    ]
    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        cls(str(root), train=train, download=True)


def _unavailable_message(spec: DatasetSpec, root: Path, reason: str) -> str:
    tv = spec.torchvision_name
    lines = [
        f"{spec.title} is not on this machine and could not be downloaded ({reason}).",
        f"Looked for {', '.join(IDX_FILES.values())} (or .gz) in:",
        *[f"  - {d}" for d in _candidate_dirs(spec, root)],
        "Ways to get it:",
    ]
    if spec.name == "fashion-mnist":
        lines.append("  - Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist")
    lines += [
        f"  - copy the four files into {root / spec.name}/ (or set VAE_LAB_DATA to their folder's parent)",
        f"  - connect to the internet once: they are downloaded into {root / (tv or spec.name) / 'raw'}/",
        "  - or use the 'digits' dataset, which works offline.",
    ]
    return "\n".join(lines)


@functools.lru_cache(maxsize=4)
def _load_cpu(name: str, root: str, download: bool) -> Dataset:
    spec = _spec(name)
    if name == "digits":
        return _load_digits(spec)
    root_p = Path(root)
    files = locate_idx(name, root_p)
    if files is None:
        if not download:
            raise DatasetUnavailable(_unavailable_message(spec, root_p, "downloads were switched off"))
        try:
            _download(spec, root_p)
        except Exception as exc:  # network errors come in many types
            raise DatasetUnavailable(
                _unavailable_message(spec, root_p, f"{type(exc).__name__}: {exc}")
            ) from None
        files = locate_idx(name, root_p)
        if files is None:
            raise DatasetUnavailable(_unavailable_message(spec, root_p, "the download left no files"))
    arrays = {k: read_idx(p) for k, p in files.items()}
    h, w = spec.image_shape[1:]
    for split in ("train", "test"):
        imgs, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if imgs.ndim != 3 or imgs.shape[1:] != (h, w):
            raise DatasetError(
                N_("{value}: images are {value2}, expected {value3}"),
                value=files[split + "_images"],
                value2=imgs.shape[1:],
                value3=(h, w),
            )
        if labels.ndim != 1 or len(labels) != len(imgs):
            raise DatasetError(
                N_("{value}: {len_labels} labels for {len_imgs} images in {value2}"),
                value=files[split + "_labels"],
                len_labels=len(labels),
                len_imgs=len(imgs),
                value2=files[split + "_images"],
            )
    src = str(files["train_images"].parent)

    def t(a: np.ndarray, flat: bool) -> torch.Tensor:
        return torch.from_numpy(a.reshape(len(a), -1).copy() if flat else a.astype(np.int64))

    return Dataset(
        name,
        spec.image_shape,
        spec.class_names,
        t(arrays["train_images"], True),
        t(arrays["train_labels"], False),
        t(arrays["test_images"], True),
        t(arrays["test_labels"], False),
        src,
    )


def _load_digits(spec: DatasetSpec) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.rint(bunch.data * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255, (1797, 64)
    y = bunch.target.astype(np.int64)
    # fixed, seeded, stratified 80/20 split: the same on every machine
    rng = np.random.default_rng(0)
    test_idx = []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        test_idx.append(rng.permutation(idx)[: int(round(0.2 * len(idx)))])
    test = np.zeros(len(y), dtype=bool)
    test[np.concatenate(test_idx)] = True
    return Dataset(
        "digits",
        spec.image_shape,
        spec.class_names,
        torch.from_numpy(x[~test].copy()),
        torch.from_numpy(y[~test].copy()),
        torch.from_numpy(x[test].copy()),
        torch.from_numpy(y[test].copy()),
        "scikit-learn (bundled)",
    )


def load_dataset(
    name: str, device: torch.device | str = "cpu", root: str | Path | None = None, download: bool = True
) -> Dataset:
    """Load dataset ``name`` (``digits``, ``fashion-mnist``, ``mnist``) onto ``device``.

    Decoded once per process (cached on CPU); ``device`` gets its own copy of the uint8
    tensors. Raises :class:`DatasetUnavailable` (with instructions) or :class:`DatasetError`.
    """
    root_s = str(Path(root).expanduser().resolve()) if root else str(default_data_root())
    return _load_cpu(name, root_s, bool(download)).to(device)


# ---------------------------------------------------------------- datasets from arrays (user uploads)
# Used by vae_core.userdata (issue 18); kept here because a Dataset and its identity belong to data.py.
def dataset_from_arrays(
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    *,
    test_fraction: float = 0.1,
    seed: int = 0,
    source: str = "",
) -> Dataset:
    """A CPU :class:`Dataset` from uint8 ``images`` (N, H, W) and int ``labels`` (N,) in 0..K-1.

    Seeded, stratified split as digits has: ``round(test_fraction * n_c)`` test images from each
    class c (at least one test and one train image in all), the rest train; each split keeps the
    input order. The same arrays and seed give the same split on every machine.
    """
    images = np.asarray(images)
    labels = np.asarray(labels).astype(np.int64)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DatasetError(
            N_("{name}: images must be uint8 (N, H, W), got {dtype} {shape}"),
            name=name,
            dtype=images.dtype,
            shape=images.shape,
        )
    n = len(images)
    if labels.shape != (n,):
        raise DatasetError(
            N_("{name}: {len_labels} labels for {n} images"), name=name, len_labels=len(labels), n=n
        )
    if n < 2:
        raise DatasetError(
            N_("{name}: at least 2 images are needed for a train/test split, got {n}"), name=name, n=n
        )
    if n and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise DatasetError(N_("{name}: labels must lie in 0..{value}"), name=name, value=len(class_names) - 1)
    rng = np.random.default_rng(seed)
    test = np.zeros(n, dtype=bool)
    for c in range(len(class_names)):
        idx = np.flatnonzero(labels == c)
        test[rng.permutation(idx)[: int(round(test_fraction * len(idx)))]] = True
    if not test.any():
        test[rng.integers(n)] = True
    if test.all():
        test[rng.integers(n)] = False
    flat = images.reshape(n, -1)
    h, w = images.shape[1:]
    return Dataset(
        name,
        (1, int(h), int(w)),
        tuple(class_names),
        torch.from_numpy(flat[~test].copy()),
        torch.from_numpy(labels[~test].copy()),
        torch.from_numpy(flat[test].copy()),
        torch.from_numpy(labels[test].copy()),
        source,
    )


def content_hash(ds: Dataset) -> str:
    """sha256 (64 hex digits) of what a model trained on ``ds`` saw: image shape, class names, both splits' pixels and labels.

    Independent of the dataset's name, source and device; any changed pixel, label or split changes it.
    """
    import hashlib
    import json

    h = hashlib.sha256(b"vae-lab-dataset-v1\0")
    h.update(
        json.dumps(
            {
                "image_shape": list(ds.image_shape),
                "class_names": list(ds.class_names),
                "n_train": len(ds.x_train),
                "n_test": len(ds.x_test),
            }
        ).encode()
    )
    for t, dtype in ((ds.x_train, np.uint8), (ds.y_train, "<i8"), (ds.x_test, np.uint8), (ds.y_test, "<i8")):
        h.update(np.ascontiguousarray(t.detach().cpu().numpy().astype(dtype, copy=False)).data)
    return h.hexdigest()
