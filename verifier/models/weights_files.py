"""Reading weight files without reading their weights: a safetensors header, a torch zip's tensors.

- safetensors: 8 bytes (little-endian u64 ``n``), then ``n`` bytes of JSON mapping each tensor
  name to ``{dtype, shape, data_offsets}`` (and an optional ``__metadata__``), then the data.
  The header alone gives every name, dtype and shape.
- a PyTorch state dict (``torch.save``'s zip format): ``torch.load(weights_only=True,
  mmap=True)`` runs torch's restricted unpickler, which builds only tensors and containers and
  refuses any other object, and maps the data rather than reading it (a legacy, non-zip
  pickle goes through the same unpickler, read whole: its size was checked first).
"""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from dataclasses import dataclass
from math import prod
from pathlib import Path

import torch

from verifier.errors import SpecError

MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own cap on its JSON header
DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}  # floating types a model may be stored in


@dataclass(frozen=True)
class TensorEntry:
    """One stored tensor, as its file describes it."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return prod(self.shape)


def safetensors_header(path: Path) -> dict[str, TensorEntry]:
    """Name -> dtype and shape from a safetensors file's header (the data is not read).

    Raises:
        SpecError: not a safetensors file, or a tensor of a type that is not floating point.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SpecError(f"expected a safetensors file, got {size} bytes")
        (n,) = struct.unpack("<Q", head)
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise SpecError(
                f"expected a safetensors header of at most {min(MAX_HEADER_BYTES, size - 8):,} "
                f"bytes, got a length field of {n:,}: not a safetensors file"
            )
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SpecError("expected a safetensors file, got a header that is not JSON") from None
    if not isinstance(header, dict):
        raise SpecError("expected a safetensors header mapping names to tensors")
    out: dict[str, TensorEntry] = {}
    data_bytes = size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("dtype"), str)
            and isinstance(entry.get("shape"), list)
            and all(isinstance(k, int) and k >= 0 for k in entry["shape"])
            and isinstance(entry.get("data_offsets"), list)
        ):
            raise SpecError(f"tensor {name!r}: expected dtype, shape and data_offsets")
        if entry["dtype"] not in DTYPES:
            raise SpecError(
                f"tensor {name!r}: expected a floating type ({', '.join(DTYPES)}), "
                f"got {entry['dtype']}"
            )
        shape = tuple(entry["shape"])
        begin, end = entry["data_offsets"]
        if end - begin != prod(shape) * DTYPES[entry["dtype"]] or end > data_bytes:
            raise SpecError(
                f"tensor {name!r}: its data offsets do not match its shape {shape} or the file"
            )
        out[name] = TensorEntry(entry["dtype"], shape)
    return out


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A weights-only ``torch.save`` file's flat ``name -> tensor`` mapping, memory-mapped.

    Raises:
        SpecError: a pickle the restricted unpickler refuses (it would run code or build other
            objects), a file not in torch.save's zip format, or not a flat mapping of tensors.
    """
    zipped = zipfile.is_zipfile(path)  # torch.save's format maps; a legacy pickle is read
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except pickle.UnpicklingError as exc:
        raise SpecError(
            "expected a weights-only state dict (tensors by name); torch.load(weights_only=True) "
            f"refused this pickle: {_reason(str(exc))}; it was not run"
        ) from None
    except (RuntimeError, OSError, ValueError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecError(
            f"expected a file written by torch.save (its zip format) or a .safetensors file, "
            f"got one torch cannot read: {first[:300]}"
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()
    ):
        raise SpecError(
            f"expected a flat mapping of weight names to tensors, got {type(data).__name__}"
        )
    return data


def _reason(message: str) -> str:
    """The line of torch's refusal that names what the pickle asked for (its first line is
    advice to load with ``weights_only=False``, which is not ours to give)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or "Unsupported" in line]
    return (named or ["it builds objects other than tensors"])[0][:300].rstrip(".")


def entries_of(state: dict[str, torch.Tensor]) -> dict[str, TensorEntry]:
    """The dtypes and shapes of a loaded (memory-mapped) state dict, refusing non-float ones."""
    names = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32"}
    names[torch.float64] = "F64"
    out = {}
    for name, t in state.items():
        if t.dtype not in names:
            raise SpecError(
                f"tensor {name!r}: expected a floating type (float16, bfloat16, float32, "
                f"float64), got {t.dtype}"
            )
        out[name] = TensorEntry(names[t.dtype], tuple(t.shape))
    return out


__all__ = ["TensorEntry", "entries_of", "load_state_dict", "safetensors_header"]
