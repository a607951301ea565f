"""Pickled weights (`.bin`, `.pth`, `.pt`) through PyTorch's weights-only unpickler, and nothing else.

A pickle can run any code while it is read. Repos that ship only pickles (the PAIR DreamBooth
styles, the annotators' checkpoints) are read with `weights_only=True`, which allows tensors and
plain containers only; anything else is refused with a message instead of being run.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from .errors import UserError


class UnsafePickleError(UserError, RuntimeError):
    """A weights file holds more than weights; it was not loaded."""


def load_weights(path: str | Path, *, mmap: bool = False) -> dict:
    """The state dict in a pickled checkpoint, read by the weights-only unpickler."""
    path = Path(path)
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as error:
            if not mmap or "mmap" not in str(error):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "not a plain checkpoint"
        raise UnsafePickleError(
            f"{path.name} was refused: it is a pickle that holds more than weights, and reading it could "
            f"run code ({reason[:160]}). Use a safetensors copy of this model, or a repo you trust."
        ) from error


def check_weights(path: str | Path) -> None:
    """Refuse an unsafe pickle before a library reads it (memory-mapped: reads no tensor data)."""
    load_weights(path, mmap=True)
