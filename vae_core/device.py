"""Pick the compute device once and pass it around (cuda, then mps, then cpu)."""

from __future__ import annotations

import os

import torch

from .errors import N_, LabError

__all__ = ["pick_device", "DeviceError"]


class DeviceError(LabError, ValueError):
    """A requested device does not exist on this machine."""


def pick_device(override: str | None = None) -> torch.device:
    """Return the device to compute on.

    Order: ``override`` (e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``), then the
    environment variable ``VAE_LAB_DEVICE``, then cuda, then mps, then cpu. ``"auto"`` or
    ``None`` means "pick for me". A named device that is absent raises :class:`DeviceError`
    with a message that says what is available.
    """
    choice = override or os.environ.get("VAE_LAB_DEVICE") or "auto"
    choice = choice.strip().lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(choice)
    except RuntimeError as exc:
        raise DeviceError(
            N_("Unknown device {choice!r}: use auto, cpu, cuda, cuda:N or mps."), choice=choice
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            N_("Device {choice!r} was requested but no CUDA GPU is available; use --device cpu or auto."),
            choice=choice,
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(
            N_("Device {choice!r} does not exist: this machine has {value} CUDA device(s)."),
            choice=choice,
            value=torch.cuda.device_count(),
        )
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError(
            N_("Device {choice!r} was requested but MPS is not available; use --device cpu or auto."),
            choice=choice,
        )
    return dev
