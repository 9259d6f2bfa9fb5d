"""What the pages share besides their figures (lab_pages.charts) and keys (lab_pages.state):
the current model as a :class:`LoadedModel`, the loaders of datasets and checkpoints, the
"this page needs a model / a VAE" guards, and the image helpers for ``st.image``.

Every page calls :func:`current_model` (or :func:`require_model` / :func:`require_vae`) and
never loads checkpoints itself. Shipped checkpoints are loaded once per process (read-only,
shared); models trained or uploaded in a session belong to that session only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import torch

from lab_pages import state
from lab_pages.style import CLASS_COLORS, ELBO_COLOR, KL_COLOR, LOGPX_COLOR, RECON_COLOR, class_color  # noqa: F401 - re-exported
from vae_core.checkpoint import CheckpointError, LoadedCheckpoint, load_checkpoint, read_metadata
from vae_core.data import DATASETS, Dataset, DatasetError, dataset_available, load_dataset
from vae_core.inference import images_to_grid
from vae_core.models import AE, VAE, ModelConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_DIR = PROJECT_ROOT / "checkpoints"
SESSION_CHECKPOINT_DIR = CHECKPOINT_DIR / "saved"  # where the Train page's Save writes

DEFAULT_SHIPPED = ("fmnist_vae_z16", "digits_vae_z2")  # first one whose data is on this machine


@dataclass
class LoadedModel:
    """A model ready for inference (eval mode, CPU) plus what the sidebar shows about it."""

    key: str                  # unique and stable: caches are keyed by it
    label: str                # human name
    source: str               # "shipped" | "session" | "upload"
    model: AE | VAE
    config: ModelConfig
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset_name(self) -> str:
        return str(self.metadata.get("dataset", "digits"))

    @property
    def is_vae(self) -> bool:
        return bool(self.model.is_vae)

    @property
    def beta(self) -> float:
        return float((self.metadata.get("train_config") or {}).get("beta", 1.0))

    @property
    def epochs(self) -> float:
        return float(self.metadata.get("epochs") or 0.0)

    def summary(self) -> str:
        kind = "VAE" if self.is_vae else "AE"
        beta = f", β={self.beta:g}" if self.is_vae else ""
        return (f"{kind} · {self.dataset_name} · z={self.config.latent_dim}{beta} · "
                f"{self.epochs:.1f} epochs · {self.source}")


# ------------------------------------------------------------------ data and checkpoints
@st.cache_resource(show_spinner="Loading dataset…")
def get_dataset(name: str) -> Dataset:
    """The dataset on CPU, loaded once per process (read-only, shared by all sessions)."""
    return load_dataset(name, download=False)


def available_datasets() -> list[str]:
    """Dataset names loadable here without a download."""
    return [n for n in DATASETS if dataset_available(n)]


def list_shipped() -> dict[str, dict[str, Any]]:
    """{name: metadata} of every readable checkpoint in checkpoints/ and checkpoints/saved/."""
    out: dict[str, dict[str, Any]] = {}
    for folder in (CHECKPOINT_DIR, SESSION_CHECKPOINT_DIR):
        for p in sorted(folder.glob("*.safetensors")):
            try:
                meta = read_metadata(p)
            except CheckpointError:
                continue
            name = p.stem if folder == CHECKPOINT_DIR else f"saved/{p.stem}"
            out[name] = {**meta, "_path": str(p), "_mtime": p.stat().st_mtime}
    return out


@st.cache_resource(show_spinner="Loading checkpoint…", max_entries=32)
def _load_shipped(path: str, mtime: float) -> LoadedCheckpoint:
    return load_checkpoint(path)


def load_shipped(name: str) -> LoadedModel:
    """A checkpoint from checkpoints/ by name (e.g. ``digits_vae_z2``); cached per process.

    The cached model is shared between sessions and must only be used for inference.
    """
    entry = list_shipped().get(name)
    if entry is None:
        raise CheckpointError(f"no checkpoint named {name!r} in {CHECKPOINT_DIR}")
    ck = _load_shipped(entry["_path"], entry["_mtime"])
    return LoadedModel(f"shipped:{name}:{entry['_mtime']}", name, "shipped", ck.model, ck.config, ck.metadata)


def from_checkpoint(ck: LoadedCheckpoint, label: str, source: str, key: str) -> LoadedModel:
    """Wrap a loaded checkpoint (an upload, a session model) as a :class:`LoadedModel`."""
    return LoadedModel(key, label, source, ck.model.cpu().eval(), ck.config, ck.metadata)


def default_model_name() -> str | None:
    """The shipped model the app opens on: Fashion-MNIST z=16 VAE if its data is here, else digits."""
    shipped = list_shipped()
    for name in DEFAULT_SHIPPED:
        meta = shipped.get(name)
        if meta is not None and dataset_available(meta.get("dataset", "")):
            return name
    for name, meta in shipped.items():
        if dataset_available(meta.get("dataset", "")):
            return name
    return None


# ------------------------------------------------------------------ the current model
def current_model() -> LoadedModel | None:
    """The model every page works on (the default shipped one at first), or None if none loads."""
    lm = state.stored_model()
    if lm is None:
        name = default_model_name()
        if name is not None:
            try:
                lm = load_shipped(name)
            except CheckpointError as exc:
                state.set_model_error(str(exc))
                return None
            state.set_current_model(lm)
    return lm


def require_model() -> LoadedModel:
    """The current model, or an explanation and ``st.stop()``."""
    lm = current_model()
    if lm is None:
        err = state.model_error()
        st.warning("No model is loaded. Pick a checkpoint in the sidebar, upload one, or train one on the Train page."
                   + (f"\n\n{err}" if err else ""))
        st.stop()
    return lm


def require_vae(why: str = "this page is about the ELBO, whose KL term only a VAE has") -> LoadedModel:
    """The current model if it is a VAE; otherwise say why the page needs one and stop."""
    lm = require_model()
    if not lm.is_vae:
        st.info(
            f"The current model is an autoencoder (AE). This page needs a VAE: {why}. "
            "An AE maps each image to one point, with no distribution q(z|x) and no prior, "
            "so it has no KL term and no ELBO. Pick a VAE in the sidebar."
        )
        st.stop()
    return lm


def require_dataset(lm: LoadedModel) -> Dataset:
    """The current model's dataset, or a clear message and ``st.stop()`` when it is not here."""
    try:
        return get_dataset(lm.dataset_name)
    except DatasetError as exc:
        st.error(f"The dataset of this model is not available:\n\n{exc}")
        st.stop()
        raise  # unreachable; keeps type checkers happy


# ------------------------------------------------------------------ images for st.image
def to_image(flat: np.ndarray | torch.Tensor, image_shape: tuple[int, int, int]) -> np.ndarray:
    """One flattened image (D,) in [0, 1] -> (H, W) uint8 for st.image."""
    a = flat.detach().cpu().numpy() if isinstance(flat, torch.Tensor) else np.asarray(flat)
    _, h, w = image_shape
    return (np.clip(a.reshape(h, w), 0.0, 1.0) * 255).round().astype(np.uint8)


def upscale(img: np.ndarray, tile_h: int, px: int) -> np.ndarray:
    """Enlarge a uint8 image by whole pixels so that a ``tile_h``-high tile is about ``px`` high
    (8x8 digits stay crisp; a browser's own scaling would blur them)."""
    s = max(1, round(px / tile_h))
    return np.kron(img, np.ones((s, s) + (1,) * (img.ndim - 2), dtype=np.uint8)) if s > 1 else img


def png_data_uri(img: np.ndarray, compress_level: int = 1) -> str:
    """A uint8 image (H, W) or (H, W, 3) as a ``data:image/png;base64,...`` URL for ``st.image``.

    Such an image travels inside the page's own message, so the browser draws it without
    fetching a file from the server: what the explorer sends on every slider move. PNG keeps
    upscaled pixels sharp (``st.image`` of an array sends a JPEG); level 1 encodes ~3x faster
    than the default for a few KB more.
    """
    import base64  # noqa: PLC0415
    import io  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8)).save(buf, format="PNG", compress_level=compress_level)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def show_grid(images: np.ndarray | torch.Tensor, image_shape: tuple[int, int, int], ncols: int,
              caption: str | None = None, width: int | None = None, px: int = 112, container=st) -> None:
    """Draw (N, D) images in [0, 1] as one mosaic (vae_core.inference.images_to_grid), each tile
    enlarged to about ``px`` pixels high by whole pixels."""
    grid = upscale(images_to_grid(images, image_shape, ncols=ncols), image_shape[1], px)
    container.image(grid, caption=caption, width=width or "stretch", clamp=True)
