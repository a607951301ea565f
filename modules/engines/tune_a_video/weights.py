"""A tuned model on disk: only the trained parameters, as safetensors, plus a model card.

A folder holds `tune_a_video.safetensors` (the `<block>.attn1.to_q.weight`, `attn2.to_q`,
`attn_temp.*`, `norm_temp.*` tensors; about 300 MB in float32 for SD 1.5, against 4 GB for a
whole pipeline) and `README.md`, a Hugging Face model card whose YAML header names the base
model, the training prompt, steps and learning rate, the tags `text-to-video` and
`tune-a-video` and the base's licence (`creativeml-openrail-m`), as the Tune-A-Video Space
writes it. safetensors, never pickle: a downloaded model cannot run code when loaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from huggingface_hub import ModelCard, ModelCardData
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .attention import VideoLayers, add_video_layers

from .files import CARD_NAME, FILES, SAMPLE_NAME, SOURCE_NAME, WEIGHTS_NAME  # noqa: F401 - the folder's names
FORMAT = "tune-a-video"  # safetensors metadata "format": what `load_tuned` accepts
TAGS = ("text-to-video", "tune-a-video")
BASE_LICENSE = "creativeml-openrail-m"


def is_trained_key(key: str) -> bool:
    """Whether `key` names a parameter Tune-A-Video trains (query projections, temporal layers)."""
    return key.endswith((".attn1.to_q.weight", ".attn1.to_q.bias", ".attn2.to_q.weight", ".attn2.to_q.bias")) or (
        ".attn_temp." in key or ".norm_temp." in key
    )


def model_card(*, base_model: str, training_prompt: str, steps: int, learning_rate: float) -> str:
    """The README.md text: YAML header (what the Hub indexes) and a short description."""
    data = ModelCardData(
        base_model=base_model,
        license=BASE_LICENSE,
        tags=list(TAGS),
        training_prompt=training_prompt,
        training_steps=int(steps),
        learning_rate=float(learning_rate),
    )
    return (
        f"---\n{data.to_yaml()}\n---\n\n"
        f"# Tune-A-Video: {training_prompt}\n\n"
        f"The trained parameters of a [Tune-A-Video](https://arxiv.org/abs/2212.11565) one-shot tuning of "
        f"`{base_model}` on one clip described as \"{training_prompt}\" ({int(steps)} steps, learning rate "
        f"{float(learning_rate):g}): the spatial attentions' query projections and the temporal attention "
        f"layers, named as in Tune-A-Video's `UNet3DConditionModel`, in `{WEIGHTS_NAME}`. The rest of the "
        f"model is the base's, under its licence ({BASE_LICENSE}).\n"
    )


def save_tuned(
    folder: str | os.PathLike,
    parameters: Mapping[str, torch.Tensor],
    *,
    base_model: str,
    training_prompt: str,
    steps: int,
    learning_rate: float,
) -> Path:
    """Write `parameters` (from `train.tune`) and the model card into `folder` (created if
    needed; both files replaced whole, never left half-written). Returns the folder."""
    others = sorted(k for k in parameters if not is_trained_key(k))
    if others:
        raise ValueError(f"not Tune-A-Video's trained parameters: {', '.join(others[:5])}")
    if not parameters:
        raise ValueError("no parameters to save")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in parameters.items()}
    metadata = {"format": FORMAT, "base_model": base_model, "training_prompt": training_prompt}
    _write_atomically(folder / WEIGHTS_NAME, lambda path: save_file(tensors, path, metadata=metadata))
    card = model_card(base_model=base_model, training_prompt=training_prompt, steps=steps, learning_rate=learning_rate)
    _write_atomically(folder / CARD_NAME, lambda path: Path(path).write_text(card, encoding="utf-8"))
    return folder


def load_tuned(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """(parameters, card) from a folder `save_tuned` wrote: the tensors on the CPU and the model
    card's YAML header as a dict (empty when the folder has no card)."""
    folder = Path(folder)
    path = folder / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {folder}")
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise ValueError(f"{path} is not a Tune-A-Video weights file (format {metadata.get('format')!r})")
            parameters = {key: file.get_tensor(key) for key in file.keys()}
    except SafetensorError as error:
        raise ValueError(f"{path} is not a safetensors file: {error}") from error
    others = sorted(k for k in parameters if not is_trained_key(k))
    if others:
        raise ValueError(f"{path} holds more than Tune-A-Video's trained parameters: {', '.join(others[:5])}")
    card_path = folder / CARD_NAME
    card = ModelCard(card_path.read_text(encoding="utf-8")).data.to_dict() if card_path.is_file() else {}
    return parameters, card


def save_source(folder: str | os.PathLike, frames, fps: float) -> Path:
    """Keep the clip a model was tuned on beside it (uint8 (F, H, W, 3) and its fps): running the model
    with DDIM inversion starts from it, also where the model was fetched from the Hub."""
    import numpy as np

    frames = np.ascontiguousarray(np.asarray(frames))
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"the source must be uint8 frames (F, H, W, 3), got {frames.dtype} {frames.shape}")
    path = Path(folder) / SOURCE_NAME
    tensors = {"frames": torch.from_numpy(frames.copy())}
    _write_atomically(path, lambda partial: save_file(tensors, partial, metadata={"format": FORMAT, "fps": f"{fps:g}"}))
    return path


def load_source(folder: str | os.PathLike):
    """(frames, fps) of the clip `save_source` kept; FileNotFoundError where the folder has none."""
    path = Path(folder) / SOURCE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {SOURCE_NAME} in {folder}")
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            if metadata.get("format") != FORMAT or list(file.keys()) != ["frames"]:
                raise ValueError(f"{path} is not a Tune-A-Video source clip")
            frames = file.get_tensor("frames")
    except SafetensorError as error:
        raise ValueError(f"{path} is not a safetensors file: {error}") from error
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{path} holds no (F, H, W, 3) uint8 frames")
    return frames.numpy(), float(metadata.get("fps", "8"))


def rebased(parameters: Mapping[str, torch.Tensor], tuning_base: Mapping[str, torch.Tensor],
            base: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`parameters` tuned on one base, for running on another: each query projection becomes `base`'s plus
    the change the tuning made (tuned minus `tuning_base`'s), so queries and keys come from the same model;
    the temporal layers, which no base has, stay as tuned. The bases' queries come from `query_weights`."""
    return {key: base[key] + (value.float() - tuning_base[key]) if key in tuning_base else value
            for key, value in parameters.items()}


@contextmanager
def applied_to(unet, parameters: Mapping[str, torch.Tensor], device=None) -> Iterator[VideoLayers]:
    """The tuned video UNet for one job on `device` (default: the UNet's): `unet` with the video layers
    and `parameters`; after the block (exceptions included) the base UNet is bit for bit what it was."""
    layers = add_video_layers(unet, parameters, device=device)
    try:
        yield layers
    finally:
        layers.remove()


def _write_atomically(path: Path, write) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        write(str(partial))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
