"""Pure, batched rotation and linear-blend-skinning math in PyTorch (ONNX-exportable).

Shapes: N = batch, V = vertices, J = 24 joints, B = shape coefficients.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues: axis-angle ``[..., 3]`` to rotation matrices ``[..., 3, 3]``."""
    angle = torch.sqrt((axis_angle * axis_angle).sum(-1, keepdim=True) + 1e-16)
    x, y, z = (axis_angle / angle).unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*axis_angle.shape[:-1], 3, 3)
    sin, cos = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + sin * skew + (1.0 - cos) * (skew @ skew)


def rotation_6d_to_matrix(d6: Tensor) -> Tensor:
    """6D rotation (two columns, Gram-Schmidt) ``[..., 6]`` to matrices ``[..., 3, 3]``."""
    a1, a2 = d6[..., 0:3], d6[..., 3:6]
    b1 = a1 / torch.sqrt((a1 * a1).sum(-1, keepdim=True) + 1e-12)
    a2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = a2 / torch.sqrt((a2 * a2).sum(-1, keepdim=True) + 1e-12)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rotation_6d(R: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` to 6D ``[..., 6]`` (first two columns)."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def forward_kinematics(rotations: Tensor, rest_joints: Tensor, parents: list[int]) -> tuple[Tensor, Tensor]:
    """Pose the kinematic tree.

    rotations ``[N, J, 3, 3]`` (local, root first), rest_joints ``[N, J, 3]``, parents (-1 root).
    Returns posed joints ``[N, J, 3]`` and skinning transforms ``[N, J, 3, 4]`` that map a rest
    vertex bound to joint j to its posed position.
    """
    n, count = rotations.shape[:2]
    offsets = torch.cat([rest_joints[:, :1], rest_joints[:, 1:] - rest_joints[:, parents[1:]]], dim=1)
    bottom = rotations.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(n, count, 1, 4)
    local = torch.cat([torch.cat([rotations, offsets[..., None]], dim=-1), bottom], dim=-2)  # [N, J, 4, 4]
    # One batched 4x4 product per depth of the tree (SMPL: 8) rather than per joint (23): the cost
    # of a product here is the op, not its rows, and the refinement and the exported HeatFormer
    # graph pose the tree several times a frame-set.
    levels, order = _tree_levels(tuple(parents))
    world = [local[:, :1]]  # [N, k, 4, 4] per depth: its joints' world transforms
    for joints, above in levels:
        world.append(world[-1][:, above] @ local[:, joints])
    posed = torch.cat(world, dim=1)
    posed = posed if order is None else posed[:, order]
    rot, pos = posed[..., :3, :3], posed[..., :3, 3]
    shift = pos - (rot @ rest_joints[..., None])[..., 0]
    return pos, torch.cat([rot, shift[..., None]], dim=-1)


@functools.lru_cache(maxsize=8)
def _tree_levels(parents: tuple[int, ...]) -> tuple[list[tuple[slice | list[int], slice | list[int]]], list[int] | None]:
    """The tree (parents[j] < j; the root, joint 0, has -1) by depth below the root: per depth its
    joints and, for each, its parent's place among the joints of the depth above (slices where
    they run in order); and the order that puts the joints back when the depths are put one after
    the other (None: they already are, as in SMPL)."""
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        if not 0 <= parents[j] < j:
            raise ValueError(f"kinematic tree: joint {j}'s parent {parents[j]} does not come before it")
        depth[j] = depth[parents[j]] + 1
    by_depth = [[j for j in range(len(parents)) if depth[j] == d] for d in range(max(depth) + 1)]

    def compact(index: list[int]) -> slice | list[int]:
        return slice(index[0], index[-1] + 1) if index == list(range(index[0], index[-1] + 1)) else index

    levels = [(compact(by_depth[d]), compact([by_depth[d - 1].index(parents[j]) for j in by_depth[d]]))
              for d in range(1, len(by_depth))]  # fmt: skip
    placed = [j for joints in by_depth for j in joints]
    return levels, None if placed == sorted(placed) else [placed.index(j) for j in range(len(parents))]


def skin(points: Tensor, weights: Tensor, transforms: Tensor) -> Tensor:
    """Blend ``transforms`` ``[N, J, 3, 4]`` with ``weights`` ``[P, J]`` and apply them to
    ``points`` ``[N, P, 3]``; returns ``[N, P, 3]``."""
    n, j = transforms.shape[:2]
    blended = (weights @ transforms.reshape(n, j, 12)).reshape(n, -1, 3, 4)
    return (blended[..., :3] @ points[..., None])[..., 0] + blended[..., 3]


def pose_features(rotations: Tensor) -> Tensor:
    """SMPL's pose-corrective input: ``(R_j - I)`` of joints 1..J-1, flattened ``[N, 9 (J-1)]``."""
    eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    return (rotations[:, 1:] - eye).reshape(rotations.shape[0], -1)
