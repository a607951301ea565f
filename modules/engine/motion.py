"""Latent motion dynamics (paper sect. 3.3.1): a global translation, larger for later frames.

The motion is measured on a 512x512 reference frame whatever the output size, as in the
paper's code: frame k moves by k*(dx, dy) / 512 of the frame's width and height. Using frame
ids (not positions in the batch) keeps the motion going across chunks of a long clip.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

REFERENCE_SIZE = 512


def _axis_coords(latent_size: int, shifts: torch.Tensor) -> torch.Tensor:
    """Normalised sampling coordinates along one axis, one row per frame.

    The paper's code builds pixel coordinates of the 512 reference grid, shifts them,
    normalises to [-1, 1] and resizes that grid bilinearly to the latent size. A bilinear
    resize of a linear ramp is the same ramp sampled at the latent pixels' centres, which is
    what this computes directly.
    """
    step = REFERENCE_SIZE / latent_size
    centres = torch.arange(latent_size, dtype=torch.float64) * step + (step - 1) / 2
    coords = (centres[None, :] + shifts[:, None]) / REFERENCE_SIZE * 2.0 - 1.0
    return coords


def motion_grid(
    frame_ids: Sequence[int], dx: float, dy: float, height: int, width: int, dtype=torch.float32, device=None
) -> torch.Tensor:
    """grid_sample grid (frames, height, width, 2) that translates frame k by k*(dx, dy)."""
    ids = torch.tensor(list(frame_ids), dtype=torch.float64)
    xs = _axis_coords(width, ids * dx)  # (frames, width)
    ys = _axis_coords(height, ids * dy)  # (frames, height)
    grid = torch.stack(
        (xs[:, None, :].expand(-1, height, -1), ys[:, :, None].expand(-1, -1, width)),
        dim=-1,
    )
    return grid.to(device=device, dtype=dtype)


def warp_latents(latents: torch.Tensor, frame_ids: Sequence[int], dx: float, dy: float) -> torch.Tensor:
    """Translate each frame's latent by its frame id times (dx, dy); nearest, reflected at borders."""
    if latents.shape[0] != len(frame_ids):
        raise ValueError(f"{latents.shape[0]} latents but {len(frame_ids)} frame ids")
    _, _, height, width = latents.shape
    grid = motion_grid(frame_ids, dx, dy, height, width, dtype=latents.dtype, device=latents.device)
    return F.grid_sample(latents, grid, mode="nearest", padding_mode="reflection", align_corners=False)
