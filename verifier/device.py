"""The compute device for training and float64 verification: ``VERIFIER_DEVICE``.

``auto`` (the default) is CUDA when torch sees a GPU, else the CPU; ``cpu`` and ``cuda`` ask for
one explicitly (``cuda`` with no GPU is an error, not a silent fallback). The device type is part
of every checkpoint and verdict key and of a report's provenance, since float results differ
between devices.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

from verifier.errors import VerifierError

if TYPE_CHECKING:  # torch is imported when a device is resolved, not with this module:
    import torch  # the CLI and the API process read the variable without paying for torch

DEVICE_VAR = "VERIFIER_DEVICE"
DeviceChoice = Literal["auto", "cpu", "cuda"]
CHOICES: tuple[DeviceChoice, ...] = ("auto", "cpu", "cuda")


def device_choice() -> DeviceChoice:
    """``VERIFIER_DEVICE`` as given (default ``auto``).

    Raises:
        VerifierError: the value is not one of ``auto``, ``cpu``, ``cuda``.
    """
    raw = os.environ.get(DEVICE_VAR, "auto").strip().lower()
    for choice in CHOICES:
        if raw == choice:
            return choice
    raise VerifierError(f"{DEVICE_VAR}: expected one of auto, cpu, cuda; got {raw!r}")


def resolve_device() -> torch.device:
    """The device work runs on: ``cuda`` when chosen (or ``auto`` and present), else ``cpu``.

    Raises:
        VerifierError: ``VERIFIER_DEVICE`` is invalid, or ``cuda`` was asked for and torch sees
            no GPU.
    """
    import torch

    choice = device_choice()
    if choice == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if choice == "cuda" and not available:
        raise VerifierError(f"{DEVICE_VAR}=cuda: expected a CUDA device, got none visible to torch")
    return torch.device("cuda" if available else "cpu")


def device_type() -> str:
    """``"cpu"`` or ``"cuda"``: the part of the device that enters cache keys and provenance."""
    return resolve_device().type
