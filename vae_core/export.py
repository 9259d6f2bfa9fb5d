"""Exports a workshop host takes away: a training history as CSV, and animated GIFs (a latent
traversal, an interpolation, a run's reconstructions and samples over training). No UI: pages call
these and hand the bytes to a download button.

- :func:`history_csv`: one row per training step, the evaluations joined on their step; columns
  carry their units (nats per image), so a spreadsheet needs no legend;
- :func:`gif_bytes`: uint8 frames (H, W) or (H, W, 3), one duration per frame in ms, written by Pillow;
- :func:`image_frames`: a sequence of decoded images (T, D) or (T, K, D) as frames;
- :func:`training_frames`: a run's :class:`~vae_core.live.PreviewFrame` history as frames.

Pillow merges a frame identical to the one before it into that one (their durations add), so a GIF
of a traversal along a dimension the decoder ignores has fewer frames than it was given.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .explore import can_draw, label_font
from .inference import images_to_grid, upscale
from .live import PreviewFrame
from .train import History

__all__ = [
    "history_csv",
    "csv_columns",
    "gif_bytes",
    "image_frames",
    "training_frames",
    "FRAME_MS",
]

FRAME_MS = 150  # default duration of one GIF frame, ms: ~7 frames a second reads as motion, not a blur


# ---------------------------------------------------------------------- CSV
# History column -> CSV column (units in the name: nats per image, examples per second)
_STEP_CSV = {
    "step": "step",
    "epoch": "epoch",
    "loss": "loss_nats",  # the objective minimised (β, warm-up and free bits applied)
    "recon": "recon_cost_nats",  # −E_q log p(x|z) (History keeps the log-likelihood; written negated, as charts show it)
    "kl": "kl_nats",
    "beta": "beta",
}
_EVAL_CSV = {
    "eval_step": "test_step",
    "eval_epoch": "test_epoch",
    "test_neg_elbo": "test_neg_elbo_nats",
    "test_recon": "test_recon_cost_nats",  # −E_q log p(x|z): a cost, >= 0 for discrete pixels
    "test_kl": "test_kl_nats",
    "active_units": "active_units",
    "low_kl_units": "low_kl_units",  # dimensions under evaluate.LOW_KL_THRESHOLD nats of KL per image
    "throughput": "throughput_examples_per_s",
}


def _kl_width(history: History) -> int:
    return max((len(r) for r in history.kl_per_dim if r is not None), default=0)


def csv_columns(history: History, with_kl: bool = True) -> list[str]:
    """The header :func:`history_csv` writes for ``history``: the step columns, ``kl_z1_nats`` … one per latent
    dimension, then the test columns. ``with_kl=False`` (an AE, which has no KL) leaves every KL column out."""
    step = [c for k, c in _STEP_CSV.items() if with_kl or k not in ("kl", "beta")]
    dims = [f"kl_z{j + 1}_nats" for j in range(_kl_width(history))] if with_kl else []
    test = [c for k, c in _EVAL_CSV.items() if with_kl or k not in ("test_kl", "low_kl_units")]
    return step + dims + test


def _cell(v: Any) -> str:
    """A value as CSV text: '' for a missing one (None after a JSON round trip), repr for a float (which reads
    back as the same float; nan and inf as 'nan' and 'inf')."""
    if v is None:
        return ""
    if isinstance(v, float | np.floating):
        return repr(float(v))
    return str(v)


def history_csv(history: History, with_kl: bool = True) -> str:
    """A training history as CSV text: one row per step record (``step`` to ``kl_z<d>_nats``, nats per image),
    with the evaluation of that step (``test_step`` to ``throughput_examples_per_s``) on the same row.

    An evaluation whose step has no step record (a history cut short) gets a row of its own, its step
    columns empty; empty cells are values the history does not have. Rows are sorted by step. Floats
    are written so that they read back as the same float. ``with_kl=False`` drops the KL columns (an AE).
    """
    h = history
    width = _kl_width(h)
    columns = csv_columns(h, with_kl)
    rows: list[dict[str, Any]] = []
    at_step: dict[Any, dict[str, Any]] = {}
    for i, s in enumerate(h.step):
        row: dict[str, Any] = {c: _column(h, k, i) for k, c in _STEP_CSV.items() if c in columns}
        if with_kl:
            per_dim = h.kl_per_dim[i] if i < len(h.kl_per_dim) and h.kl_per_dim[i] is not None else []
            row.update({f"kl_z{j + 1}_nats": per_dim[j] if j < len(per_dim) else None for j in range(width)})
        rows.append(row)
        at_step[s] = row
    for e, s in enumerate(h.eval_step):
        values = {c: _column(h, k, e) for k, c in _EVAL_CSV.items() if c in columns}
        if s in at_step:  # popped: a second evaluation at the same step gets its own row
            at_step.pop(s).update(values)
        else:
            rows.append(values)
    rows.sort(key=_row_step)  # stable: step rows keep their order
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(r.get(c)) for c in columns] for r in rows)
    return out.getvalue()


def _row_step(row: dict[str, Any]) -> tuple[int, float]:
    """Sort key of a CSV row: its step (a test-only row: its test step); rows without one last."""
    s = row.get("step", row.get("test_step"))
    return (1, 0.0) if s is None else (0, float(s))


def _column(h: History, name: str, i: int) -> Any:
    """``h.<name>[i]`` as the CSV writes it (``recon`` negated: a cost), or None where that column is shorter
    (a damaged record) or the value is missing."""
    values = getattr(h, name)
    v = values[i] if i < len(values) else None
    return -v if name == "recon" and v is not None else v


# ---------------------------------------------------------------------- GIF
def gif_bytes(
    frames: Sequence[np.ndarray], duration_ms: int | Sequence[int] = FRAME_MS, loop: int = 0
) -> bytes:
    """An animated GIF of ``frames``: uint8 arrays, all (H, W) (grey) or all (H, W, 3) (RGB), of one size.

    ``duration_ms``: each frame's display time in ms (one number for all, or one per frame); ``loop``: how
    often it repeats (0: for ever). A frame identical to the one before it is merged into it by Pillow.
    Raises ValueError for no frames, frames of different sizes, or a dtype other than uint8.
    """
    from PIL import Image  # noqa: PLC0415 - only an export writes GIFs

    if len(frames) == 0:
        raise ValueError("a GIF needs at least one frame")
    shape = frames[0].shape
    for f in frames:
        if (
            f.dtype != np.uint8
            or f.shape != shape
            or f.ndim not in (2, 3)
            or (f.ndim == 3 and f.shape[2] != 3)
        ):
            raise ValueError(
                f"every frame must be uint8 (H, W) or (H, W, 3) of one size; got {f.dtype} {f.shape} after {shape}"
            )
    durations = (
        [int(duration_ms)] * len(frames) if isinstance(duration_ms, int | float) else list(duration_ms)
    )
    if len(durations) != len(frames) or min(durations) < 1:
        raise ValueError(f"need one duration >= 1 ms per frame: {len(frames)} frames, durations {durations}")
    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    out = io.BytesIO()
    images[0].save(
        out, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=loop, disposal=1
    )
    return out.getvalue()


def _as_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    a = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if a.dtype == np.uint8:
        return a
    return np.clip(np.rint(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)


def image_frames(
    images: torch.Tensor | np.ndarray,
    image_shape: tuple[int, int, int],
    scale: int = 4,
    bounce: bool = False,
) -> list[np.ndarray]:
    """A sequence of images as GIF frames: ``images`` (T, D) (one image a frame) or (T, K, D) (K side by side
    a frame, e.g. a linear and a spherical path), pixel means in [0, 1] or uint8.

    Each frame is the row of its images (1 px white gutters), enlarged ``scale`` times by whole pixels:
    uint8 (H·scale, W'·scale) for one channel, (…, 3) for colour. ``bounce``: then back again, without
    repeating the ends (T frames become 2T − 2), so a looping GIF sweeps to and fro.
    """
    a = _as_uint8(images)
    if a.ndim == 2:
        a = a[:, None, :]
    if a.ndim != 3 or a.shape[0] == 0:
        raise ValueError(f"images must be (T, D) or (T, K, D) with T >= 1, got shape {tuple(a.shape)}")
    frames = [upscale(images_to_grid(a[t], image_shape, ncols=a.shape[1]), scale) for t in range(a.shape[0])]
    if bounce and len(frames) > 2:
        frames += frames[-2:0:-1]
    return frames


def training_frames(
    previews: Sequence[PreviewFrame],
    image_shape: tuple[int, int, int],
    total_steps: int,
    scale: int = 2,
    label: str = "{step:,}",
    columns: int = 8,
) -> list[np.ndarray]:
    """A run's previews over training (:meth:`vae_core.handle.LiveJob.preview_frames`) as GIF frames.

    Each frame: the fixed test images over their reconstructions (left) and the prior samples (right),
    in rows of ``columns`` tiles enlarged ``scale`` times, under a caption strip with ``label`` (formatted
    with ``step``; language-neutral digits where the label font cannot draw it) and a 3-px bar of the share
    of ``total_steps`` done. uint8 (H, W) for grey images, (H, W, 3) for colour; one size for all frames.
    """
    from PIL import Image, ImageDraw  # noqa: PLC0415 - only an export draws these

    if not previews:
        raise ValueError("no previews yet: train at least one step")
    font_px, pad = 14, 6  # label size; px between the two mosaics and around the caption
    strip_h = font_px + 2 * pad
    font = label_font(font_px)
    frames = []
    for pv in previews:
        left = upscale(
            images_to_grid(np.concatenate([pv.inputs, pv.recon]), image_shape, ncols=columns), scale
        )
        right = upscale(images_to_grid(pv.samples, image_shape, ncols=columns), scale)
        h, w = max(left.shape[0], right.shape[0]), left.shape[1] + pad + right.shape[1]
        frame = np.full((strip_h + h, w, *left.shape[2:]), 255, dtype=np.uint8)  # white, grey or RGB
        frame[strip_h : strip_h + left.shape[0], : left.shape[1]] = left
        frame[strip_h : strip_h + right.shape[0], left.shape[1] + pad :] = right
        done = min(1.0, max(0, pv.step) / max(1, total_steps))
        frame[strip_h - 4 : strip_h - 1, : int(done * w)] = 96
        img = Image.fromarray(frame)
        text = label.format(step=pv.step)
        if not can_draw(text, font_px):
            text = f"{pv.step:,}"
        ImageDraw.Draw(img).text((2, 2), text, fill=0 if frame.ndim == 2 else (0, 0, 0), font=font)
        frames.append(np.asarray(img))
    return frames
