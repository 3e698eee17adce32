"""Joint heatmaps from 2D keypoints: the one function training and inference share.

Keypoints are in crop coordinates: (0, 0) is the top-left corner of the square person crop and
(1, 1) its bottom-right corner. Map ``k`` is a Gaussian of standard deviation ``sigma`` (in map
pixels) centred on keypoint ``k``, with peak = the keypoint's confidence (0 = missing = empty map).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def render_heatmaps(xy: Tensor, confidence: Tensor, size: int, sigma: float) -> Tensor:
    """xy ``[..., K, 2]`` crop coordinates, confidence ``[..., K]`` -> ``[..., K, size, size]``.

    The centre of map pixel (i, j) sits at crop coordinate ((j + 0.5) / size, (i + 0.5) / size).
    """
    centres = (torch.arange(size, dtype=xy.dtype, device=xy.device) + 0.5) / size
    dx = (centres - xy[..., 0:1]) * size  # [..., K, W] in map pixels
    dy = (centres - xy[..., 1:2]) * size  # [..., K, H]
    gx = torch.exp(-0.5 * (dx / sigma) ** 2)
    gy = torch.exp(-0.5 * (dy / sigma) ** 2)
    return confidence[..., None, None] * gy[..., :, None] * gx[..., None, :]


def crop_boxes(pixels: np.ndarray, confidence: np.ndarray, scale: float = 1.25, min_size: float = 32.0) -> np.ndarray:
    """Square person boxes ``[..., 3]`` = (x0, y0, size) px around keypoints ``[..., K, 2]`` with
    confidence ``[..., K]`` > 0 (a view without keypoints gets a unit box at the origin)."""
    seen = confidence > 0
    big = np.where(seen[..., None], pixels, np.nan)
    with np.errstate(all="ignore"):
        lo, hi = np.nanmin(big, axis=-2), np.nanmax(big, axis=-2)
    centre = (lo + hi) / 2
    size = np.maximum(np.max(hi - lo, axis=-1) * scale, min_size)
    box = np.concatenate([centre - size[..., None] / 2, size[..., None]], axis=-1)
    return np.where(np.isfinite(box), box, np.array([0.0, 0.0, 1.0]))


def to_crop(pixels: np.ndarray | Tensor, boxes: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """Pixels ``[..., K, 2]`` -> crop coordinates with boxes ``[..., 3]`` = (x0, y0, size)."""
    return (pixels - boxes[..., None, :2]) / boxes[..., None, 2:3]
