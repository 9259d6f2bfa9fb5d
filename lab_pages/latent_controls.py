"""What the latent explorer and the Manifold page share: the aggregate-posterior stats their slider ranges come from,
one slider per latent dimension (on the point in lab_pages.state), its label, and the test-image thumbnails offered
as starting points and interpolation ends."""

from __future__ import annotations

import streamlit as st
import torch

from lab_pages import state
from lab_pages.i18n import _
from lab_pages.images import png_data_uri, to_image, upscale
from vae_core import explore as ex
from vae_core import inference as inf
from vae_core.data import to_float

N_CHOICES = 16  # test images offered as starting points (and, on the manifold page, interpolation ends)


@st.cache_data(show_spinner=False, max_entries=16)
def posterior_stats(key: str, _model: torch.nn.Module, _x: torch.Tensor) -> inf.PosteriorStats:
    """Aggregate-posterior stats of the test set, once per model (keyed by the model's key)."""
    return inf.aggregate_posterior_stats(_model, _x)


@st.cache_data(max_entries=64)
def thumbnails(dataset: str, _x: torch.Tensor, shape: tuple[int, int, int], off: int, n: int) -> list[str]:
    """Test images ``off`` .. ``off + n - 1`` of ``dataset`` as ~40 px PNG data URLs (encoded once, not per move)."""
    return [png_data_uri(upscale(to_image(to_float(_x[off + p]), shape), shape[1], 40)) for p in range(n)]


def dim_label(stats: inf.PosteriorStats, j: int) -> str:
    """A slider's (and a dim picker's) label, e.g. "z1 · KL 2.31 nats" or "z2 · code spread σ 0.40 (unused)"."""
    kl = stats.avg_kl_per_dim
    text = (
        _("z{j} · KL {kl:.2f} nats").format(j=j + 1, kl=float(kl[j]))
        if kl is not None
        else _("z{j} · code spread σ {std:.2f}").format(j=j + 1, std=float(stats.std[j]))
    )
    return (
        text
        if stats.active[j]
        else (_("{label} (inactive)") if kl is not None else _("{label} (unused)")).format(label=text)
    )


def slider(where, stats: inf.PosteriorStats, sp: ex.SliderSpace, j: int) -> None:
    """Dim ``j``'s slider (key ``explorer_dim_{j}``) in ``where``, over its range in 120 steps."""
    where.slider(
        dim_label(stats, j),
        float(sp.lo[j]),
        float(sp.hi[j]),
        step=float(sp.hi[j] - sp.lo[j]) / 120,
        format="%.2f",
        key=state.slider_key(j),
    )
