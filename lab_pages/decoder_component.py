"""The decoder in the browser: an ``st.components.v2`` component that decodes z -> image in JavaScript.

Two views share it (lab_pages/decoder_component.js and .css, read when the component is made):

- ``"sliders"`` (Latent explorer): one slider per shown dimension and the decoded image, redrawn on
  every move of a slider while it is dragged; the final point comes back at release (one rerun);
- ``"plane"`` (Manifold page): the test set's μ over two dimensions, the image under the pointer, and
  a click that pins the point.

The weights travel once per model, not over the websocket: :func:`publish` writes the file of
vae_core.web_decoder to ``static/decoders/<content hash>.bin``, which Streamlit's static serving
(``server.enableStaticServing`` in .streamlit/config.toml) sends at ``/app/static/decoders/...``
and the browser caches. The model is the current model of lab_pages.model_store, so an uploaded
checkpoint went through the same validated loader as every other page's before its weights reach a
browser.

The folder is a bounded LRU, not one file per session: a file is named by its content, so every
session on the same model (a room on one shipped model) shares one file, and Streamlit has no
reliable "session ended" hook. Each use marks the file as used; beyond :data:`MAX_FILES` files or
:data:`MAX_BYTES` bytes the least recently used go, and a page re-writes its file if it is gone.

AppTest runs no JavaScript: a test sets the component's value in ``st.session_state[key]``
(``{"release": {"z": [...], "id": ...}}``) as the browser would, and reads what the component was
given from its element's JSON.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from lab_pages.i18n import _, error_text
from vae_core.web_decoder import UnsupportedDecoder, WebDecoder, export_decoder

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE.parent / "static"  # Streamlit serves <main script's folder>/static at /app/static
DECODER_DIR = STATIC_DIR / "decoders"  # kept out of git (.gitignore)
URL_PREFIX = "app/static/decoders/"  # relative to the page: works under a server.baseUrlPath too
MAX_FILES = 64  # decoder files kept (a shipped model's is 0.3-2 MB)
MAX_BYTES = 256 * 1024 * 1024  # and at most this many bytes of them
COMPONENT_NAME = "vae_lab_decoder"
HTML = (
    '<div class="vl-root" data-ready="0"><div class="vl-controls"></div>'
    '<div class="vl-panel"><canvas class="vl-image"></canvas><div class="vl-caption"></div></div>'
    '<div class="vl-note"></div></div>'
)
EVENTS = ("release", "pin", "status")  # the component's state keys (each needs an on_*_change)
_FAILED = "_decoder_component_failed"  # {component key: why this browser could not decode}: for the session
_SEEN = "_decoder_component_seen"  # {(component key, event): id of the event already applied}
_renderers: dict[tuple[int, int], Callable[..., Any]] = {}  # (js mtime, css mtime) -> mount command


def _renderer() -> Callable[..., Any]:
    """The component's mount command, made again only when its .js or .css file changed (an edit)."""
    js, css = HERE / "decoder_component.js", HERE / "decoder_component.css"
    stamp = (js.stat().st_mtime_ns, css.stat().st_mtime_ns)
    if stamp not in _renderers:
        _renderers.clear()
        _renderers[stamp] = st.components.v2.component(
            COMPONENT_NAME, html=HTML, css=css.read_text(encoding="utf-8"), js=js.read_text(encoding="utf-8")
        )
    return _renderers[stamp]


@st.cache_resource(max_entries=32, show_spinner=False)
def _export(key: str, _model: Any) -> WebDecoder:
    """The model's decoder file, once per model key (read-only: shared by the sessions on that model)."""
    return export_decoder(_model)


def _prune(keep: Path) -> None:
    """Remove the least recently used decoder files beyond MAX_FILES / MAX_BYTES (never ``keep``)."""
    files = sorted(DECODER_DIR.glob("*.bin"), key=lambda p: p.stat().st_mtime, reverse=True)
    total = 0
    for i, p in enumerate(files):
        total += p.stat().st_size
        if p != keep and (i >= MAX_FILES or total > MAX_BYTES):
            p.unlink(missing_ok=True)
    for p in DECODER_DIR.glob("*.tmp"):  # a write cut short an hour ago or more
        if time.time() - p.stat().st_mtime > 3600:
            p.unlink(missing_ok=True)


def publish(lm: Any) -> tuple[str, int]:
    """(URL relative to the page, bytes) of the current model's decoder file, written if missing.

    Raises :class:`vae_core.web_decoder.UnsupportedDecoder` for a decoder the browser cannot run."""
    dec = _export(lm.key, lm.model)
    path = DECODER_DIR / f"{dec.digest}.bin"
    try:
        os.utime(path)  # used now: the LRU keeps it
    except FileNotFoundError:
        DECODER_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(dec.data)
        os.replace(tmp, path)  # atomic: a browser never fetches half a file
        _prune(keep=path)
    return URL_PREFIX + path.name, len(dec.data)


def unavailable(key: str, lm: Any) -> str | None:
    """Why this page must decode on the server (in the session's language), or None when the browser can."""
    if not st.get_option("server.enableStaticServing"):
        return _("static file serving is off (server.enableStaticServing)")
    failed = st.session_state.setdefault(_FAILED, {})
    status = (st.session_state.get(key) or {}).get("status")
    if isinstance(status, dict) and not status.get("ok", True):
        failed[key] = str(status.get("reason", "?"))[:200]  # kept: the unmounted component's state goes
    if key in failed:
        return _("the browser could not run the decoder ({reason})").format(reason=failed[key])
    try:
        publish(lm)
    except UnsupportedDecoder as exc:
        return _("this decoder cannot run in the browser: {why}").format(why=error_text(exc))
    except OSError as exc:
        return _("the decoder file could not be written ({error})").format(error=exc)
    return None


def take(key: str, event: str, latent_dim: int) -> list[float] | None:
    """The point the component ``key`` sent with ``event`` ("release" or "pin") and that was not taken yet.

    None when there is none, or when it is no point of ``latent_dim`` finite numbers (from an earlier model)."""
    sent = (st.session_state.get(key) or {}).get(event)
    if not isinstance(sent, dict):
        return None
    seen = st.session_state.setdefault(_SEEN, {})
    if seen.get((key, event)) == sent.get("id"):
        return None
    seen[(key, event)] = sent.get("id")
    z = sent.get("z")
    if not isinstance(z, list) or len(z) != latent_dim:
        return None
    try:
        values = [float(v) for v in z]
    except (TypeError, ValueError):
        return None
    return values if all(math.isfinite(v) for v in values) else None


def _noop() -> None:
    """The components' on_*_change callback: the pages read the value with :func:`take` instead."""


def _mount(key: str, data: dict[str, Any]) -> None:
    _renderer()(key=key, data=data, **{f"on_{e}_change": _noop for e in EVENTS})


def latent_sliders(
    key: str,
    lm: Any,
    z: Sequence[float],
    dims: Sequence[int],
    lo: Sequence[float],
    hi: Sequence[float],
    labels: Sequence[str],
    image_px: int = 260,
) -> None:
    """The explorer's sliders (dims ``dims``, ranges ``lo``..``hi`` of those dims) and its decoded image at ``z``."""
    url, _n = publish(lm)
    _mount(
        key,
        {
            "mode": "sliders",
            "url": url,
            "z": [float(v) for v in z],
            "dims": [int(j) for j in dims],
            "lo": [float(v) for v in lo],
            "hi": [float(v) for v in hi],
            "labels": list(labels),
            "shape": list(lm.config.image_shape),
            "image_px": image_px,
            "text": {"caption": _("decoded pixel means at z = {point}")},
        },
    )


def latent_plane(
    key: str,
    lm: Any,
    z: Sequence[float],
    pair: tuple[int, int],
    lo: tuple[float, float],
    hi: tuple[float, float],
    points: tuple[Sequence[float], Sequence[float], Sequence[int]],
    colors: Sequence[str],
    plane_px: int = 360,
    image_px: int = 160,
) -> None:
    """The plane of dims ``pair`` over ``lo``..``hi``, with ``points`` (x, y, class) and the image under the pointer."""
    url, _n = publish(lm)
    xs, ys, cs = points
    _mount(
        key,
        {
            "mode": "plane",
            "url": url,
            "z": [float(v) for v in z],
            "pair": [int(pair[0]), int(pair[1])],
            "lo": [float(lo[0]), float(lo[1])],
            "hi": [float(hi[0]), float(hi[1])],
            "points": {
                "x": [round(float(v), 3) for v in xs],
                "y": [round(float(v), 3) for v in ys],
                "c": [int(c) for c in cs],
            },
            "colors": list(colors),
            "shape": list(lm.config.image_shape),
            "plane_px": plane_px,
            "image_px": image_px,
            "text": {
                "caption": _("decoded pixel means at z = {point}"),
                "x": f"z{pair[0] + 1}",
                "y": f"z{pair[1] + 1}",
            },
        },
    )
