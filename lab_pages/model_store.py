"""The models the pages work on: the current model as a :class:`LoadedModel`, the loaders of checkpoints (shipped and
saved ones, once per process; uploaded and trained ones, per session), and the "this page needs a model / a VAE / its
dataset" guards.

Every page calls :func:`current_model` (or :func:`require_model` / :func:`require_vae`) and never loads checkpoints
itself. Shipped checkpoints are loaded once per process (read-only, shared); models trained or uploaded in a session
belong to that session only. (The networks themselves are vae_core.models'.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from lab_pages import state
from lab_pages.datasets import get_dataset
from lab_pages.i18n import N_, _, error_text
from vae_core import projection as pj
from vae_core.checkpoint import CheckpointError, LoadedCheckpoint, load_checkpoint, read_metadata
from vae_core.data import Dataset, DatasetError, dataset_available
from vae_core.models import AE, VAE, ModelConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_DIR = PROJECT_ROOT / "checkpoints"
SESSION_CHECKPOINT_DIR = CHECKPOINT_DIR / "saved"  # where the Train page's Save writes, by default
SAVED_DIR_ENV = "VAE_LAB_SAVED_DIR"  # another folder for saved models: one that every replica shares

DEFAULT_SHIPPED = ("fmnist_vae_z16", "digits_vae_z2")  # first one whose data is on this machine
LIKELIHOOD_NAMES = {
    "bernoulli": N_("Bernoulli"),
    "continuous_bernoulli": N_("continuous Bernoulli"),
    "gaussian": N_("Gaussian"),
    "laplace": N_("Laplace (L1)"),
}  # marked: translate with likelihood_name()
SOURCE_NAMES = {
    "shipped": N_("shipped"),
    "session": N_("session"),
    "upload": N_("upload"),
}  # LoadedModel.source, in words


def likelihood_name(likelihood: str) -> str:
    """A likelihood's name in the session's language ("Bernoulli", "continuous Bernoulli"…), e.g. for a format_func."""
    return _(LIKELIHOOD_NAMES[likelihood]) if likelihood in LIKELIHOOD_NAMES else likelihood


def source_name(source: str) -> str:
    """Where a model comes from ("shipped", "session", "upload"), in the session's language."""
    return _(SOURCE_NAMES[source]) if source in SOURCE_NAMES else source


def likelihood_text(likelihood: str, binarized: bool = False) -> str:
    """What a log p(x) figure is measured under, e.g. "the continuous Bernoulli" or "the Bernoulli, binarized"."""
    # TRANSLATORS: {name} is a likelihood (Bernoulli, Gaussian…); the phrase ends "Log-likelihoods under …".
    return _("the {name}").format(name=likelihood_name(likelihood)) + (_(", binarized") if binarized else "")


@dataclass
class LoadedModel:
    """A model ready for inference (eval mode, CPU) plus what the sidebar shows about it."""

    key: str  # unique and stable: caches are keyed by it
    label: str  # human name
    source: str  # "shipped" | "session" | "upload"
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

    @property
    def binarized(self) -> bool:
        """Trained with dynamic binarization (each step drew x ~ Bernoulli(pixels)): its figures are on binary images."""
        return bool((self.metadata.get("train_config") or {}).get("binarize", False))

    @property
    def likelihood(self) -> str:
        """The likelihood its log p(x), ELBO and NLL figures are in, in words (see :func:`likelihood_text`)."""
        return likelihood_text(getattr(self.config, "likelihood", "bernoulli"), self.binarized)

    def summary(self) -> str:
        """One line such as "VAE · digits · d=2, β=1 · 30.0 epochs · shipped", in the session's language."""
        kind = "VAE" if self.is_vae else "AE"
        beta = f", β={self.beta:g}" if self.is_vae else ""
        return (
            f"{kind} · {self.dataset_name} · d={self.config.latent_dim}{beta} · "
            + _("{epochs:.1f} epochs").format(epochs=self.epochs)
            + f" · {source_name(self.source)}"
        )


# ------------------------------------------------------------------ checkpoints
def saved_dir() -> Path:
    """The folder that *Save* writes to and the model picker lists as ``saved/<name>``: ``$VAE_LAB_SAVED_DIR``
    when set (replicas behind a balancer share one, docs/serving.md), else checkpoints/saved/."""
    raw = os.environ.get(SAVED_DIR_ENV, "").strip()
    return Path(raw).expanduser() if raw else SESSION_CHECKPOINT_DIR


def display_path(path: Path) -> Path:
    """``path`` as a page shows it: relative to the project when inside it (``checkpoints/saved/x.safetensors``)."""
    return path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path


def list_shipped() -> dict[str, dict[str, Any]]:
    """{name: metadata} of every readable checkpoint in checkpoints/ and the saved folder (read-only dicts, shared).

    The folders are listed on every call, so a model saved by another process (another replica) appears.
    """
    out: dict[str, dict[str, Any]] = {}
    for folder in (CHECKPOINT_DIR, saved_dir()):
        for p in sorted(folder.glob("*.safetensors")):
            st_ = p.stat()
            meta = _metadata(str(p), st_.st_mtime, st_.st_size)
            if meta is not None:
                out[p.stem if folder == CHECKPOINT_DIR else f"saved/{p.stem}"] = meta
    return out


@st.cache_resource(show_spinner=False, max_entries=256)
def _metadata(path: str, mtime: float, size: int) -> dict[str, Any] | None:
    """A checkpoint's metadata, read once per file version (None when unreadable). The sidebar lists every checkpoint on
    every page run, and the shipped ones' metadata (with their training history) is ~0.7 MB of JSON each: reading them
    all took ~0.2 s per run."""
    try:
        meta = read_metadata(path)
    except CheckpointError:
        return None
    return {**meta, "_path": path, "_mtime": mtime}


@st.cache_resource(show_spinner=False, max_entries=32)  # load_shipped shows a translated spinner
def _load_shipped(path: str, mtime: float) -> LoadedCheckpoint:
    return load_checkpoint(path)


def load_shipped(name: str) -> LoadedModel:
    """A checkpoint from checkpoints/ by name (e.g. ``digits_vae_z2``); cached per process.

    The cached model is shared between sessions and must only be used for inference.
    """
    entry = list_shipped().get(name)
    if entry is None:
        raise CheckpointError(
            N_("no checkpoint named {name!r} in {folder}"), name=name, folder=str(CHECKPOINT_DIR)
        )
    with st.spinner(_("Loading checkpoint…")):
        ck = _load_shipped(entry["_path"], entry["_mtime"])
    key = f"shipped:{name}:{entry['_mtime']}"
    _seed_shipped_maps(entry["_path"], key)
    return LoadedModel(key, name, "shipped", ck.model, ck.config, ck.metadata)


@st.cache_resource(show_spinner=False)
def _seed_shipped_maps(path: str, key: str) -> int:
    """Once per process and checkpoint: its shipped test-set maps (``checkpoints/embeddings/<name>.safetensors``) go into the
    pages' shared projection cache, so the latent map and AE vs VAE show a UMAP at once (0 when none ship)."""
    emb = pj.load_embeddings(pj.embeddings_path(path))
    return 0 if emb is None else pj.seed_cache(pj.shared_projection_cache(), key, emb)


def from_checkpoint(ck: LoadedCheckpoint, label: str, source: str, key: str) -> LoadedModel:
    """Wrap a loaded checkpoint (an upload, a session model) as a :class:`LoadedModel`."""
    return LoadedModel(key, label, source, ck.model.cpu().eval(), ck.config, ck.metadata)


Z2_MODELS = {
    "fashion-mnist": "fmnist_vae_z2",
    "digits": "digits_vae_z2",
    "mnist": "mnist_vae_z2",
}  # shipped z=2 VAEs


def shipped_z2_vae(dataset: str) -> tuple[str, str] | None:
    """(name, its dataset) of the shipped z=2 VAE of ``dataset``, else the digits one, else None."""
    shipped = list_shipped()
    name = Z2_MODELS.get(dataset) if Z2_MODELS.get(dataset) in shipped else "digits_vae_z2"
    return (name, str(shipped[name].get("dataset"))) if name in shipped else None


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
                state.set_model_error(error_text(exc))
                return None
            state.set_current_model(lm)
    return lm


def require_model() -> LoadedModel:
    """The current model, or an explanation and ``st.stop()``."""
    lm = current_model()
    if lm is None:
        err = state.model_error()
        st.warning(
            _(
                "No model is loaded. Pick a checkpoint in the sidebar, upload one, or train one on the Train page."
            )
            + (f"\n\n{err}" if err else "")
        )
        st.stop()
    return lm


def require_vae(why: str | None = None) -> LoadedModel:
    """The current model if it is a VAE; otherwise say why the page needs one (``why``, already
    translated: "this page …") and stop."""
    lm = require_model()
    if not lm.is_vae:
        st.info(
            _(
                "The current model is an autoencoder (AE). This page needs a VAE: {why}. "
                "An AE maps each image to one point, with no distribution q(z|x) and no prior, "
                "so it has no KL term and no ELBO. Pick a VAE in the sidebar."
            ).format(why=why or _("this page is about the ELBO, whose KL term only a VAE has"))
        )
        st.stop()
    return lm


def require_dataset(lm: LoadedModel) -> Dataset:
    """The current model's dataset, or a clear message and ``st.stop()`` when it is not here."""
    try:
        return get_dataset(lm.dataset_name)
    except DatasetError as exc:
        digest = str(lm.metadata.get("dataset_sha256") or "")[:12]
        st.error(
            _("The dataset of this model, **{name}**{digest}, is not available:").format(
                name=lm.dataset_name, digest=f" (sha256 {digest}…)" if digest else ""
            )
            + f"\n\n{error_text(exc)}"
        )
        st.stop()
        raise  # unreachable; keeps type checkers happy


def require_vae_data(why: str) -> tuple[LoadedModel, Dataset]:
    """The current VAE and its dataset (see :func:`require_vae`), or a clear message and ``st.stop()``
    when the dataset's images do not have the model's number of pixels."""
    lm = require_vae(why)
    ds = require_dataset(lm)
    if ds.dim != lm.config.input_dim:
        st.error(
            _(
                "This model expects {n_model} pixels but {dataset} has {n_data}. Pick another model in the sidebar."
            ).format(n_model=lm.config.input_dim, dataset=ds.name, n_data=ds.dim)
        )
        st.stop()
    return lm, ds
