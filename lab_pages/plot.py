"""Every Plotly chart of the lab is drawn through :func:`plot`, so that each one downloads the same way: its
modebar's camera button saves a PNG at twice the size on screen (sharp on a slide), named after the model and
the chart, e.g. ``fmnist_vae_z16-kl-per-dim.png``. Plotly's own config does it (``toImageButtonOptions``):
nothing runs on the server. :func:`file_stem` names the lab's other downloads (CSV, GIF) the same way.
tests/test_export.py fails if a page calls ``plotly_chart`` any other way.

The SVG charts drawn while training is live (lab_pages.svg_charts) are images, not Plotly: exempt; their
Plotly form comes back on pause.
"""

from __future__ import annotations

import re
from typing import Any

PNG_SCALE = 2  # the PNG's pixels per CSS pixel of the chart on screen
MAX_NAME = 100  # characters of a file name, before ".png": a long session label is cut


def file_stem(name: str, model: str | None = None) -> str:
    """A download's file name without its extension (a chart's PNG, a CSV, a GIF): ``<model>-<name>``, or ``vae-lab-<name>`` for a chart of no
    model (the theory pages). Only ASCII letters, digits, ``.``, ``_`` and ``-`` are kept (a run of anything
    else becomes ``_``), so that it is a valid file name on every system; a model's label such as
    ``trained VAE z=16 mnist step 900`` becomes ``trained_VAE_z_16_mnist_step_900``."""
    stem = f"{model}-{name}" if model else f"vae-lab-{name}"
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")
    return clean[:MAX_NAME].rstrip("._-") or "chart"


def run_name(model_config: Any, train_config: Any) -> str:
    """The name of the Train page's model in file names: ``trained_vae_z16_fashion-mnist`` (kind, latent dims,
    dataset), from its ModelConfig and TrainConfig."""
    return f"trained_{model_config.kind}_z{model_config.latent_dim}_{train_config.dataset}"


def chart_config(name: str, model: str | None = None) -> dict[str, Any]:
    """Plotly's config for a chart: its PNG download at :data:`PNG_SCALE` with :func:`file_stem`'s file name."""
    return {"toImageButtonOptions": {"format": "png", "scale": PNG_SCALE, "filename": file_stem(name, model)}}


def plot(where: Any, fig: Any, *, key: str, name: str, model: str | None = None, **kwargs: Any) -> Any:
    """``where.plotly_chart(fig, key=key, **kwargs)`` (``where``: ``st`` or a container) with the PNG download's
    config; ``name`` is a short ASCII name of the chart (``kl-per-dim``) and ``model`` the name of the model it
    shows (a shipped checkpoint's, a session model's label), None for a chart of no model. Returns what
    ``plotly_chart`` returns (a selection's event, where ``on_select`` is passed)."""
    return where.plotly_chart(fig, key=key, config=chart_config(name, model), **kwargs)
