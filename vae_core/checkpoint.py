"""Safe checkpoints: one ``.safetensors`` file holding the weights and a JSON metadata record.

The metadata (model config, dataset, epochs, history, test metrics, the command that made it,
format version) lives in the safetensors header under the key ``vae_lab``, so a download is
one self-describing file. Writes are atomic (temporary file, fsync, rename). Loads validate
the header, keys, shapes, dtypes, finiteness and config before building a model, and every
failure is a :class:`CheckpointError` whose message says what is wrong and what to do.
Nothing is ever unpickled: safetensors holds raw tensor bytes only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import struct
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import N_, LabError
from .models import AE, VAE, ConfigError, ModelConfig, build_model

__all__ = [
    "CheckpointError",
    "LoadedCheckpoint",
    "save_checkpoint",
    "checkpoint_bytes",
    "load_checkpoint",
    "read_metadata",
    "NAME_RE",
    "check_save_name",
    "save_by_name",
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_BYTES",
]

FORMAT = "vae-workshop-lab"
FORMAT_VERSION = 1
META_KEY = "vae_lab"
MAX_BYTES = 200 * 1024 * 1024  # a checkpoint over 200 MB is not one of ours
MAX_HEADER = 32 * 1024 * 1024
MAX_HISTORY_POINTS = 1500  # step records kept in a file; evaluations are always all kept
DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}
NAME_RE = re.compile(
    r"[A-Za-z0-9_-]{1,64}"
)  # a name saved by name: no dots, slashes or spaces, so never a path


class CheckpointError(LabError, ValueError):
    """A file is not a valid checkpoint of this lab; the message says why and what to do."""


@dataclass
class LoadedCheckpoint:
    """A rebuilt model (eval mode) with its metadata."""

    model: AE | VAE
    config: ModelConfig
    metadata: dict[str, Any]


def _thin_history(hist: dict[str, list] | None, max_points: int) -> dict[str, list] | None:
    """Keep at most ``max_points`` evenly spaced step records (always the last one)."""
    if not hist or not hist.get("step"):
        return hist
    n = len(hist["step"])
    if n <= max_points:
        return hist
    keep = sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})
    step_keys = ("step", "epoch", "loss", "recon", "kl", "kl_per_dim", "beta")
    out = dict(hist)
    for k in step_keys:
        if k in hist and len(hist[k]) == n:
            out[k] = [hist[k][i] for i in keep]
    return out


def _jsonable(obj: Any) -> Any:
    """Replace non-finite floats (not valid JSON) with None, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def checkpoint_bytes(model: AE | VAE, metadata: dict[str, Any] | None = None) -> bytes:
    """Serialise ``model`` and ``metadata`` to safetensors bytes (for downloads and saves)."""
    meta = dict(metadata or {})
    meta["format"] = FORMAT
    meta["format_version"] = FORMAT_VERSION
    meta["model_config"] = model.config.to_dict()
    meta["history"] = _thin_history(meta.get("history"), MAX_HISTORY_POINTS)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    text = json.dumps(_jsonable(meta), separators=(",", ":"), allow_nan=False)
    return st_save(tensors, metadata={META_KEY: text})


def save_checkpoint(path: str | Path, model: AE | VAE, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (``.safetensors`` appended if missing) atomically; returns the final path.

    The bytes go to a temporary file in the same folder, are fsynced, then renamed over
    ``path``: a crash mid-write leaves any previous file intact.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = checkpoint_bytes(model, metadata)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o644)  # mkstemp makes 0600; checkpoints are meant to be shared
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def check_save_name(name: str, directory: str | Path, shipped_names: Collection[str] = ()) -> Path:
    """The path ``directory/<name>.safetensors`` a save by ``name`` would write, or CheckpointError.

    Refused: a name that is not 1-64 letters, digits, ``-`` or ``_`` (so it can never leave
    ``directory``), the name of a shipped checkpoint, and the name of a file already saved
    (a save never overwrites).
    """
    if not NAME_RE.fullmatch(name):
        raise CheckpointError(
            N_("Checkpoint name {name!r} is not allowed: use 1-64 letters, digits, - or _."), name=name
        )
    if name in shipped_names:
        raise CheckpointError(
            N_("{name!r} is the name of a shipped checkpoint; choose another name."), name=name
        )
    path = Path(directory) / f"{name}.safetensors"
    if path.exists():
        raise CheckpointError(
            N_("A saved checkpoint named {name!r} exists already; choose another name."), name=name
        )
    return path


def save_by_name(
    model: AE | VAE,
    metadata: dict[str, Any] | None,
    name: str,
    directory: str | Path,
    shipped_names: Collection[str] = (),
) -> Path:
    """Save ``model`` as ``directory/<name>.safetensors`` (atomically) after :func:`check_save_name`."""
    return save_checkpoint(check_save_name(name, directory, shipped_names), model, metadata)


def _too_big(name: str, size: int, limit: int) -> str:
    mb = 1024 * 1024  # the same MB as Streamlit's upload limit
    return (
        f"{name} is {size / mb:.1f} MB, over the {limit / mb:.0f} MB limit for a checkpoint. "
        "Checkpoints of this lab are a few MB; choose one saved by the lab (Train page → Download)."
    )


def _sniff(data: bytes, name: str) -> None:
    """Recognise common wrong files before parsing, so the message can say what they are."""
    if len(data) == 0:
        raise CheckpointError(
            N_("{name} is empty (0 bytes). Choose a .safetensors checkpoint saved by this lab."), name=name
        )
    if data[:4] == b"PK\x03\x04":
        raise CheckpointError(
            N_(
                "{name} is a zip archive, most likely a PyTorch .pt/.pth file made by torch.save. Such files are pickles, which can run code when loaded, so this lab never opens them. Save your model as a .safetensors checkpoint (vae_core.checkpoint.save_checkpoint) instead."
            ),
            name=name,
        )
    if data[:1] == b"\x80" and len(data) > 1 and data[1] in range(2, 6):
        raise CheckpointError(
            N_(
                "{name} is a Python pickle. Pickles can run code when loaded, so this lab never opens them. Use a .safetensors checkpoint saved by this lab."
            ),
            name=name,
        )
    if len(data) < 8:
        raise CheckpointError(
            N_("{name} is too short ({len_data} bytes) to be a safetensors file; it may be truncated."),
            name=name,
            len_data=len(data),
        )


def _parse_header(data: bytes, name: str) -> dict[str, Any]:
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER or n > len(data) - 8:
        if n <= MAX_HEADER and data[8:9] == b"{":
            raise CheckpointError(
                N_(
                    "{name} is truncated: its header says {n} bytes but only {value} follow. Save or download it again."
                ),
                name=name,
                n=n,
                value=len(data) - 8,
            )
        raise CheckpointError(
            N_("{name} is not a safetensors file (its first 8 bytes are not a valid header length)."),
            name=name,
        )
    header = _json_or_error(data[8 : 8 + n], f"{name} is not a safetensors file (its header is not JSON).")
    if not isinstance(header, dict):
        raise CheckpointError(
            N_("{name} is not a safetensors file (its header is not a JSON object)."), name=name
        )
    body = len(data) - 8 - n
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(info, dict) or "data_offsets" not in info:
            raise CheckpointError(N_("{name}: tensor entry {key!r} is malformed."), name=name, key=key)
        end = (
            info["data_offsets"][1]
            if isinstance(info["data_offsets"], list) and len(info["data_offsets"]) == 2
            else None
        )
        if not isinstance(end, int) or end > body:
            raise CheckpointError(
                N_(
                    "{name} is truncated: tensor {key!r} ends at byte {end} of a {body}-byte body. Save or download it again."
                ),
                name=name,
                key=key,
                end=end,
                body=body,
            )
    return header


def _json_or_error(raw: bytes | str, message: str) -> Any:
    """json.loads that turns every failure (bad UTF-8, bad JSON, absurd nesting) into CheckpointError."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(message) from None


def _metadata_from_header(header: dict[str, Any], name: str) -> dict[str, Any]:
    st_meta = header.get("__metadata__")
    if st_meta is not None and not isinstance(st_meta, dict):
        raise CheckpointError(
            N_("{name}: its safetensors metadata is malformed (not a string map); the file is damaged."),
            name=name,
        )
    raw = (st_meta or {}).get(META_KEY)
    if raw is not None and not isinstance(raw, str):
        raise CheckpointError(
            N_("{name}: its '{META_KEY}' metadata is malformed (not a JSON string); the file is damaged."),
            name=name,
            META_KEY=META_KEY,
        )
    if raw is None:
        raise CheckpointError(
            N_(
                "{name} is a safetensors file but not a VAE Workshop Lab checkpoint (it has no '{META_KEY}' metadata), so the model it belongs to is unknown. Use a checkpoint saved by this lab."
            ),
            name=name,
            META_KEY=META_KEY,
        )
    meta = _json_or_error(raw, f"{name}: its metadata is not valid JSON; the file is damaged.")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            N_("{name}: metadata does not describe a '{FORMAT}' checkpoint."), name=name, FORMAT=FORMAT
        )
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            N_(
                "{name} has format version {version!r}; this lab reads up to {FORMAT_VERSION}. Update the lab to open it."
            ),
            name=name,
            version=version,
            FORMAT_VERSION=FORMAT_VERSION,
        )
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read only the metadata of a checkpoint file (no tensors), validating the header."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            _sniff(head, path.name)
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or n > size - 8:
                raise CheckpointError(
                    N_("{name} is not a safetensors file or is truncated (bad header length)."),
                    name=path.name,
                )
            data = head + fh.read(n)
    except OSError as exc:
        raise CheckpointError(
            N_("cannot read {path}: {value}"), path=path, value=exc.strerror or exc
        ) from None
    header = _json_or_error(data[8:], f"{path.name} is not a safetensors file (its header is not JSON).")
    if not isinstance(header, dict):
        raise CheckpointError(
            N_("{name} is not a safetensors file (its header is not JSON)."), name=path.name
        )
    return _metadata_from_header(header, path.name)


def load_checkpoint(
    source: str | Path | bytes,
    device: torch.device | str = "cpu",
    name: str | None = None,
    max_bytes: int = MAX_BYTES,
) -> LoadedCheckpoint:
    """Load and validate a checkpoint from a path or raw bytes (an upload); returns model + metadata.

    Checks, in order: size limit, not a pickle/zip, safetensors header sane and not truncated,
    lab metadata present and of a known version, model config valid, exactly the model's
    tensor names with the right shapes, all values finite. The model comes back in eval mode.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = name or "the uploaded file"
    else:
        path = Path(source)
        name = name or path.name
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise CheckpointError(_too_big(name, size, max_bytes))
            data = path.read_bytes()
        except FileNotFoundError:
            raise CheckpointError(N_("checkpoint {path} does not exist."), path=path) from None
        except IsADirectoryError:
            raise CheckpointError(N_("{path} is a folder, not a checkpoint file."), path=path) from None
        except OSError as exc:
            raise CheckpointError(
                N_("cannot read {path}: {value}"), path=path, value=exc.strerror or exc
            ) from None
    if len(data) > max_bytes:
        raise CheckpointError(_too_big(name, len(data), max_bytes))
    _sniff(data, name)
    header = _parse_header(data, name)
    meta = _metadata_from_header(header, name)
    try:
        config = ModelConfig.from_dict(meta.get("model_config"))
    except ConfigError as exc:
        raise CheckpointError(N_("{name}: its model config is invalid: {exc}"), name=name, exc=exc) from None
    # Compare the metadata's model with the header before allocating anything: a tiny file must
    # not make the server build a model of gigabytes. On the meta device no memory is used.
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_model(config).state_dict().items()}
    stored = {k: v for k, v in header.items() if k != "__metadata__"}
    for key, info in stored.items():
        if info.get("dtype") not in DTYPES:
            raise CheckpointError(
                N_("{name}: tensor {key!r} has dtype {value!r}; expected floating point."),
                name=name,
                key=key,
                value=info.get("dtype"),
            )
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{'…' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected {extra[:5]}{'…' if len(extra) > 5 else ''}")
        raise CheckpointError(
            N_("{name}: its weights do not match its metadata ({value}): {value2}."),
            name=name,
            value=config.describe(),
            value2="; ".join(parts),
        )
    for key, shape in expected.items():
        got = stored[key].get("shape")
        if not isinstance(got, list) or tuple(got) != shape:
            raise CheckpointError(
                N_(
                    "{name}: tensor {key!r} has shape {value} but the metadata's model ({value2}) needs {shape}: the metadata contradicts the weights."
                ),
                name=name,
                key=key,
                value=tuple(got) if isinstance(got, list) else got,
                value2=config.describe(),
                shape=shape,
            )
    # Every tensor's bytes lie inside the file (checked above), so the model is no bigger than it.
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(
            N_("{name} could not be decoded as safetensors ({exc}); it is damaged or truncated."),
            name=name,
            exc=exc,
        ) from None
    try:
        model = build_model(config)
    except (RuntimeError, MemoryError) as exc:
        raise CheckpointError(
            N_("{name}: its model cannot be built on this machine ({exc})."), name=name, exc=exc
        ) from None
    for key in expected:
        t = tensors[key]
        if not torch.isfinite(t).all():
            raise CheckpointError(
                N_("{name}: tensor {key!r} contains NaN or infinite values; the model is unusable."),
                name=name,
                key=key,
            )
    model.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
    return LoadedCheckpoint(model.to(device).eval(), config, meta)
