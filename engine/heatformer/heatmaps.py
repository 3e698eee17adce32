"""Joint heatmaps from 2D keypoints: the one function training and inference share.

Keypoints are in crop coordinates: (0, 0) is the top-left corner of the square person crop and
(1, 1) its bottom-right corner. Map ``k`` is a Gaussian of standard deviation ``sigma`` (in map
pixels) centred on keypoint ``k``, with peak = the keypoint's confidence (0 = missing = empty map),
cut to 0 beyond 7.4 sigma.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Each axis's Gaussian is 0 beyond 7.4 sigma, where it falls below this: the products of such tails
# were subnormal floats (about a tenth of the values the model's patch embedding reads), which CPUs
# compute many times slower (that embedding took 1.5 ms instead of 0.15). Nothing the model can see
# changes: the tails cut are at most 1e-12 of the peak.
TAIL = 1e-12


def render_heatmaps(xy: Tensor, confidence: Tensor, size: int, sigma: float) -> Tensor:
    """xy ``[..., K, 2]`` crop coordinates, confidence ``[..., K]`` -> ``[..., K, size, size]``.

    The centre of map pixel (i, j) sits at crop coordinate ((j + 0.5) / size, (i + 0.5) / size).
    """
    centres = (torch.arange(size, dtype=xy.dtype, device=xy.device) + 0.5) / size
    dx = (centres - xy[..., 0:1]) * size  # [..., K, W] in map pixels
    dy = (centres - xy[..., 1:2]) * size  # [..., K, H]
    gx = torch.exp(-0.5 * (dx / sigma) ** 2)
    gy = torch.exp(-0.5 * (dy / sigma) ** 2)
    gx, gy = torch.where(gx > TAIL, gx, 0.0), torch.where(gy > TAIL, gy, 0.0)
    return confidence[..., None, None] * gy[..., :, None] * gx[..., None, :]
