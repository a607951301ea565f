"""Mode switching: text2video -> edge -> depth -> pose -> edit -> text2video.

Ours: one ModelManager keeps the SD 1.5 base loaded and adds ControlNets / the editing UNet as
needed (shared text encoder and VAE). Naive (the original demo): every switch loads a whole
new pipeline from disk and drops the previous one. Both read the same safetensors folders,
written once from random weights of the chosen architecture, so disk reads are real.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from pathlib import Path

import torch

from modules.request_types import CONTROL_KINDS

ROUND = ("edge", "depth", "pose", "edit", "text2video")
SEQUENCE = ("text2video", *ROUND, *ROUND)  # the second round shows switches between loaded modes


def write_model_folders(root: Path, arch: str) -> dict:
    """Diffusers-layout folders: a base, three ControlNets, and an editing model whose text
    encoder, VAE, tokenizer and scheduler are links to the base's (as identical Hub blobs are)."""
    from modules import tiny

    tokenizer = tiny.build_tokenizer()
    base = root / "base"
    unet = tiny.build_unet(arch)
    tokenizer.save_pretrained(base / "tokenizer")
    tiny.build_text_encoder(tokenizer, arch).save_pretrained(base / "text_encoder")
    unet.save_pretrained(base / "unet")
    tiny.build_vae(arch).save_pretrained(base / "vae")
    tiny.build_scheduler().save_pretrained(base / "scheduler")
    controlnets = {}
    for seed, kind in enumerate(CONTROL_KINDS):
        folder = root / f"controlnet-{kind}"
        tiny.build_controlnet(unet, seed=seed).save_pretrained(folder)
        controlnets[kind] = str(folder)
    edit = root / "edit"
    tiny.build_unet(arch, in_channels=8, seed=7).save_pretrained(edit / "unet")
    for shared in ("tokenizer", "text_encoder", "vae", "scheduler"):
        os.symlink(base / shared, edit / shared)
    return {"base": str(base), "controlnets": controlnets, "edit": str(edit)}


def _load_naive(folders: dict, mode: str, device, dtype) -> dict:
    """What the original demo did on a mode switch: a whole pipeline, fresh from disk."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    base = Path(folders["edit"] if mode == "edit" else folders["base"])
    load = dict(torch_dtype=dtype, use_safetensors=True)
    parts = {
        "tokenizer": CLIPTokenizer.from_pretrained(base / "tokenizer"),
        "text_encoder": CLIPTextModel.from_pretrained(base / "text_encoder", **load).to(device),
        "unet": UNet2DConditionModel.from_pretrained(base / "unet", **load).to(device),
        "vae": AutoencoderKL.from_pretrained(base / "vae", **load).to(device),
    }
    if mode in CONTROL_KINDS:
        parts["controlnet"] = ControlNetModel.from_pretrained(folders["controlnets"][mode], **load).to(device)
    return parts


def _switch_ours(manager, mode: str) -> None:
    if mode == "edit":
        manager.edit_components()
        return
    manager.components()
    if mode in CONTROL_KINDS:
        manager.controlnet(mode)


def run_switching(arch: str, device: torch.device, dtype: torch.dtype) -> dict:
    """Seconds and memory per switch for ours and the naive reload, in one run."""
    from transformers.utils import logging as transformers_logging

    from modules.models import ModelManager, free_memory, module_bytes
    from modules.settings import Settings

    from .harness import PeakMemory, rss_bytes, synchronize

    transformers_logging.disable_progress_bar()

    def held_mb() -> float:
        """Allocated CUDA memory, or RSS on CPU (where safetensors' memory maps hide weights)."""
        if device.type == "cuda":
            return torch.cuda.memory_allocated(device) / 2**20
        return rss_bytes() / 2**20

    def weights_mb(manager, held) -> float:
        """Bytes of model weights alive, each shared module once."""
        if manager is not None:
            return manager.memory_bytes() / 2**20
        return sum(module_bytes(m) for m in (held or {}).values()) / 2**20

    with tempfile.TemporaryDirectory(prefix="t2vz-switch-") as tmp:
        folders = write_model_folders(Path(tmp), arch)
        settings = Settings(
            preset="real",
            device=str(device),
            dtype=str(dtype).replace("torch.", ""),
            base_models=(folders["base"],),
            edge_style_models=(),
            controlnets=folders["controlnets"],
            edit_model=folders["edit"],
        )
        rows = []
        for engine in ("ours", "naive"):
            free_memory()
            manager = ModelManager(settings) if engine == "ours" else None
            held = None
            for mode in SEQUENCE:
                with PeakMemory(device) as memory:
                    start = time.perf_counter()
                    if manager is not None:
                        _switch_ours(manager, mode)
                    else:
                        held = None
                        gc.collect()
                        held = _load_naive(folders, mode, device, dtype)
                    synchronize(device)
                    seconds = time.perf_counter() - start
                rows.append(
                    {
                        "engine": engine,
                        "mode": mode,
                        "seconds": seconds,
                        "peak_mb": memory.total_mb,
                        "held_mb": held_mb(),
                        "weights_mb": weights_mb(manager, held),
                    }
                )
            del manager, held
    return summarize(rows)


def benchmark(args, log) -> dict:
    """`--mode switching`: `run_switching` on the flags' architecture, device and dtype."""
    from .harness import now, resolve

    device, dtype = resolve(args)
    log(f"switching modes on {args.arch} folders, {device} ({args.dtype})")
    result = run_switching(args.arch, device, dtype)
    result.update(mode="switching", arch=args.arch, device=device.type, dtype=args.dtype, date=now())
    return result


def table(result: dict) -> str:
    lines = [
        f"{'switch to':<12}{'ours s':>9}{'naive s':>9}{'ours MB':>10}{'naive MB':>10}"
        f"{'ours weights':>14}{'naive weights':>15}",
        "-" * 79,
    ]
    ours = [r for r in result["rows"] if r["engine"] == "ours"]
    naive = [r for r in result["rows"] if r["engine"] == "naive"]
    for a, b in zip(ours, naive):
        lines.append(
            f"{a['mode']:<12}{a['seconds']:>9.2f}{b['seconds']:>9.2f}{a['held_mb']:>10.0f}{b['held_mb']:>10.0f}"
            f"{a['weights_mb']:>14.0f}{b['weights_mb']:>15.0f}"
        )
    lines.append(
        f"switches (after the first load): ours {result['switch_seconds_ours']:.2f} s, "
        f"naive {result['switch_seconds_naive']:.2f} s; peak {result['peak_mem_mb_ours']:.0f} vs "
        f"{result['peak_mem_mb_naive']:.0f} MB ({'allocated' if result.get('device') == 'cuda' else 'RSS'})"
    )
    return "\n".join(lines)


def summarize(rows: list[dict]) -> dict:
    """Totals per engine. The first row is the cold start (the same work for both) and is left
    out of the switch times; the last len(ROUND) rows are switches between modes seen before."""
    result = {"rows": rows}
    for engine in ("ours", "naive"):
        mine = [r for r in rows if r["engine"] == engine]
        result[f"switch_seconds_{engine}"] = sum(r["seconds"] for r in mine[1:])
        result[f"second_round_seconds_{engine}"] = sum(r["seconds"] for r in mine[-len(ROUND) :])
        result[f"peak_mem_mb_{engine}"] = max(r["peak_mb"] for r in mine)
        result[f"max_weights_mb_{engine}"] = max(r["weights_mb"] for r in mine)
    return result
