"""Test-time augmentation for a single uncalibrated view: mirror and in-plane rotation.

One view leaves the depth of every limb ambiguous, and the model's guesses for the same person
seen mirrored or with the camera rolled a little need not agree. Running the view under a few
such image transforms, mapping each answer back into the view as seen, and averaging lowers the
single-view error (figures in the model card, ``assets/models/README.md``). All transforms run as
one batch. The answers are not counted equally: each is weighted by the softmax of the view weight
the model gave it, the weight with which it fuses several views' proposals into one body (the
answers with the higher weight are the better ones).

Each transform maps crop points ``p -> A (p - 0.5) + 0.5`` with ``A`` a 2x2 rotation, times
diag(-1, 1) when mirrored (left and right keypoints then exchange too). Under weak perspective
the camera-frame body is transformed by ``A`` extended with a 1 for depth: a roll about the
optical axis, or a reflection. For a reflection the body itself is mirrored; for the body model,
whose rest pose and shape space are left-right symmetric about its x = 0 plane, that is the same
body with left and right joints exchanged and each local rotation conjugated by diag(-1, 1, 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from core.types import COCO17_LEFT_RIGHT
from engine.body.lbs import matrix_to_rotation_6d, rotation_6d_to_matrix
from engine.body.model_file import SMPL_LEFT_RIGHT as SMPL_LEFT_RIGHT_JOINTS
from engine.body.model_file import SMPL_POSE_LEFT_RIGHT
from engine.heatformer.inputs import ViewInputs
from engine.heatformer.model import Estimate

COCO_LEFT_RIGHT = list(COCO17_LEFT_RIGHT)
SMPL_LEFT_RIGHT = list(SMPL_LEFT_RIGHT_JOINTS)
_POSE_LEFT_RIGHT = list(SMPL_POSE_LEFT_RIGHT)
_X = torch.tensor([-1.0, 1.0, 1.0])
ROLL = 0.25  # radians (14°) of camera roll either way


@dataclass(frozen=True)
class Augmentation:
    """An image transform: mirror left-right (first), then roll by ``angle`` radians."""

    mirror: bool = False
    angle: float = 0.0

    def matrix(self) -> Tensor:
        """``A`` extended to 3D ``[3, 3]``: the transform of camera-frame points."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        A = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return A * _X.to(A) if self.mirror else A  # columns: mirror first

    def apply(self, inputs: ViewInputs) -> ViewInputs:
        """Uncalibrated inputs as the transformed image would give them."""
        A = self.matrix()[:2, :2].to(inputs.obs_xy)
        xy, conf = inputs.obs_xy, inputs.obs_conf
        if self.mirror:
            xy, conf = xy[:, :, COCO_LEFT_RIGHT], conf[:, :, COCO_LEFT_RIGHT]
        return ViewInputs((xy - 0.5) @ A.T + 0.5, conf, inputs.boxes)

    def undo(self, state: Estimate) -> Estimate:
        """The estimate for the transformed view, mapped back into the view as seen."""
        inv = self.matrix().T.to(state.orient)  # A is orthogonal
        orient = rotation_6d_to_matrix(state.orient)
        pose, cam = state.pose, state.cam.clone()
        cam[..., 1:3] = cam[..., 1:3] @ inv[:2, :2].T  # x = s X + 0.5 + t, so t' = A t
        keypoints2d = None if state.keypoints2d is None else (state.keypoints2d - 0.5) @ inv[:2, :2].T + 0.5
        joints = None if state.joints is None else state.joints @ inv.T
        if self.mirror:
            flip = _X.to(orient)
            orient = orient * flip  # the body mirrored in its own frame: R M
            pose = matrix_to_rotation_6d(flip[:, None] * rotation_6d_to_matrix(pose[:, :, _POSE_LEFT_RIGHT]) * flip)
            keypoints2d = None if keypoints2d is None else keypoints2d[:, :, COCO_LEFT_RIGHT]
            joints = None if joints is None else joints[:, :, SMPL_LEFT_RIGHT]
        return Estimate(matrix_to_rotation_6d(inv @ orient), pose, state.betas, cam, keypoints2d, joints, state.view_logit)


# The view as seen and mirrored, each unrolled and rolled either way: closed under mirroring, so
# the averaged answer for a mirrored image is exactly the mirror of the answer for the image.
AUGMENTATIONS = tuple(Augmentation(m, a) for m in (False, True) for a in (0.0, -ROLL, ROLL))


def applies(inputs: ViewInputs) -> bool:
    """Augmentation is used for one uncalibrated view (more views settle the depths)."""
    return not inputs.calibrated and inputs.obs_xy.shape[1] == 1


def average(states: list[Estimate]) -> Estimate:
    """The mean of estimates of the same views, each weighted by the model's own view weight
    (the softmax over its ``view_logit``, as when the model fuses several views' proposals; equal
    weights where a state has none): rotations as the 6D of the weighted mean matrix (reading it
    back orthonormalises it, as for the model's own view averaging), everything else plain."""
    logits = [s.view_logit for s in states if s.view_logit is not None]
    if len(logits) < len(states):
        weights = torch.full((len(states), *states[0].betas.shape[:2]), 1.0 / len(states)).to(states[0].betas)
    else:
        weights = torch.softmax(torch.stack(logits)[..., 0], dim=0)  # [augmentations, B, V]

    def mean(values: list[Tensor]) -> Tensor:
        w = weights.reshape(*weights.shape, *([1] * (values[0].dim() - 2)))
        return (w * torch.stack(values)).sum(dim=0)

    def optional_mean(name: str) -> Tensor | None:
        values = [getattr(s, name) for s in states]
        return None if any(v is None for v in values) else mean(values)

    def rotation_mean(name: str) -> Tensor:
        return matrix_to_rotation_6d(mean([rotation_6d_to_matrix(getattr(s, name)) for s in states]))

    betas, cam = mean([s.betas for s in states]), mean([s.cam for s in states])
    return Estimate(rotation_mean("orient"), rotation_mean("pose"), betas, cam, optional_mean("keypoints2d"),
                    optional_mean("joints"), optional_mean("view_logit"))  # fmt: skip


def augmented_average(
    run: Callable[[ViewInputs], list[Estimate]],
    inputs: ViewInputs,
    batched: bool = True,
    augmentations: tuple[Augmentation, ...] = AUGMENTATIONS,
) -> list[Estimate]:
    """``run(inputs)`` (a list of estimates, e.g. one per iteration), averaged over
    ``augmentations`` where augmentation :func:`applies`. The transformed inputs run as one batch,
    or one call each when not ``batched`` (a backend built for batch 1)."""
    if not applies(inputs):
        return run(inputs)
    views = [a.apply(inputs) for a in augmentations]
    if batched:
        B = inputs.obs_xy.shape[0]
        states = run(ViewInputs.cat(views))
        outs = [[_part(s, slice(i * B, (i + 1) * B)) for s in states] for i in range(len(views))]
    else:
        outs = [run(v) for v in views]
    return [average([a.undo(out[k]) for a, out in zip(augmentations, outs, strict=True)]) for k in range(len(outs[0]))]


def _part(state: Estimate, rows: slice) -> Estimate:
    def part(x: Tensor | None) -> Tensor | None:
        return None if x is None else x[rows]

    return Estimate(state.orient[rows], state.pose[rows], state.betas[rows], state.cam[rows],
                    part(state.keypoints2d), part(state.joints), part(state.view_logit))  # fmt: skip
