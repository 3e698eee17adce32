"""Mirror averaging for a single uncalibrated view.

One view leaves the depth of every limb ambiguous, and the model's guess for a pose and for its
mirror image need not agree. Running the view as seen and mirrored left-to-right (x -> 1 - x in
the crop, left and right keypoints exchanged) and averaging the second answer, mirrored back,
with the first lowers the single-view error (about 2.5 mm PA-MPJPE on the synthetic benchmark)
for the cost of a batch of two. Both halves run as one batch.

Mirroring the image mirrors the camera-frame body (x -> -x). For the body model, whose rest
pose is left-right symmetric about its x = 0 plane, that is the same body with left and right
joints exchanged and each local rotation conjugated by diag(-1, 1, 1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from core.types import COCO17_LEFT_RIGHT
from engine.body.lbs import matrix_to_rotation_6d, rotation_6d_to_matrix
from engine.heatformer.inputs import ViewInputs
from engine.heatformer.model import Estimate

COCO_LEFT_RIGHT = list(COCO17_LEFT_RIGHT)
# SMPL-24: pelvis, hips, spine1, knees, spine2, ankles, spine3, feet, neck, collars, head,
# shoulders, elbows, wrists, hands (left before right in every pair).
SMPL_LEFT_RIGHT = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
_POSE_LEFT_RIGHT = [j - 1 for j in SMPL_LEFT_RIGHT[1:]]  # the 23 body-pose joints (no pelvis)
_X = torch.tensor([-1.0, 1.0, 1.0])


def applies(inputs: ViewInputs) -> bool:
    """Mirror averaging is used for one uncalibrated view (more views settle the depths)."""
    return not inputs.calibrated and inputs.obs_xy.shape[1] == 1


def mirrored(inputs: ViewInputs) -> ViewInputs:
    """Uncalibrated inputs as the left-right mirrored image would give them."""
    xy = inputs.obs_xy[:, :, COCO_LEFT_RIGHT].clone()
    xy[..., 0] = 1.0 - xy[..., 0]
    return ViewInputs(xy, inputs.obs_conf[:, :, COCO_LEFT_RIGHT], inputs.boxes)


def _reflect(rot6d: Tensor) -> Tensor:
    """6D rotations conjugated by diag(-1, 1, 1)."""
    R = rotation_6d_to_matrix(rot6d)
    return matrix_to_rotation_6d(_X.to(R)[:, None] * R * _X.to(R))


def unmirror(state: Estimate) -> Estimate:
    """The estimate for the mirrored view, mirrored back into the view as seen."""
    cam = state.cam * torch.tensor([1.0, -1.0, 1.0]).to(state.cam)  # x = s*X + 0.5 + tx: tx changes sign
    keypoints2d = joints = None
    if state.keypoints2d is not None:
        keypoints2d = state.keypoints2d[:, :, COCO_LEFT_RIGHT].clone()
        keypoints2d[..., 0] = 1.0 - keypoints2d[..., 0]
    if state.joints is not None:
        joints = state.joints[:, :, SMPL_LEFT_RIGHT] * _X.to(state.joints)
    pose = _reflect(state.pose[:, :, _POSE_LEFT_RIGHT])
    return Estimate(_reflect(state.orient), pose, state.betas, cam, keypoints2d, joints)


def blend(a: Estimate, b: Estimate) -> Estimate:
    """The mean of two estimates of the same views: rotations as the 6D of the mean matrix (reading
    it back orthonormalises it, as for the model's own view averaging), everything else as plain means."""

    def rotation_mean(x: Tensor, y: Tensor) -> Tensor:
        return matrix_to_rotation_6d(0.5 * (rotation_6d_to_matrix(x) + rotation_6d_to_matrix(y)))

    def mean(x: Tensor | None, y: Tensor | None) -> Tensor | None:
        return None if x is None or y is None else 0.5 * (x + y)

    return Estimate(
        rotation_mean(a.orient, b.orient), rotation_mean(a.pose, b.pose), 0.5 * (a.betas + b.betas),
        0.5 * (a.cam + b.cam), mean(a.keypoints2d, b.keypoints2d), mean(a.joints, b.joints),
    )  # fmt: skip


def mirror_average(run: Callable[[ViewInputs], list[Estimate]], inputs: ViewInputs, batched: bool = True) -> list[Estimate]:
    """``run(inputs)`` (a list of estimates, e.g. one per iteration), with mirror averaging where
    it :func:`applies`. The inputs and their mirror run as one batch of twice the size, or as two
    calls when not ``batched`` (a backend built for batch 1)."""
    if not applies(inputs):
        return run(inputs)
    B = inputs.obs_xy.shape[0]
    flip = mirrored(inputs)
    if not batched:
        return [blend(a, unmirror(b)) for a, b in zip(run(inputs), run(flip), strict=True)]
    both = ViewInputs(*(torch.cat([a, b]) for a, b in ((inputs.obs_xy, flip.obs_xy), (inputs.obs_conf, flip.obs_conf),
                                                       (inputs.boxes, flip.boxes))))  # fmt: skip
    return [blend(_part(s, slice(0, B)), unmirror(_part(s, slice(B, 2 * B)))) for s in run(both)]


def _part(state: Estimate, rows: slice) -> Estimate:
    return Estimate(*(None if x is None else x[rows] for x in (state.orient, state.pose, state.betas, state.cam,
                                                                state.keypoints2d, state.joints)))  # fmt: skip
