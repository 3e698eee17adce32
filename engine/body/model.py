"""``BodyModel``: an SMPL-format body in PyTorch with our own linear blend skinning."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from core.paths import DEFAULT_BODY
from engine.body import lbs
from engine.body.model_file import NUM_JOINTS, BodyModelData, BodyModelError, load_body_file

# The SMPL-24 joint whose part each COCO-17 keypoint sits on (its offsets turn with it): the head for
# the face, the collar bones for the shoulders, the upper arms for the elbows, the forearms for the
# wrists, the pelvis for the hips, the thighs for the knees and the shins for the ankles.
KEYPOINT_PARTS = (15, 15, 15, 15, 15, 13, 14, 16, 17, 18, 19, 0, 0, 1, 2, 4, 5)


@dataclass
class BodyOutput:
    """vertices ``[N, V, 3]`` (None on the joints-only path), joints ``[N, 24, 3]``,
    keypoints ``[N, 17, 3]`` COCO-17 (None when the model has no coco17_regressor)."""

    joints: Tensor
    vertices: Tensor | None = None
    keypoints: Tensor | None = None
    transforms: Tensor | None = None  # the skinning transforms ``[N, 24, 3, 4]`` (joints-only path; no translation)


class BodyModel(nn.Module):
    """forward(betas ``[N, b]``, global_orient ``[N, 3]``, body_pose ``[N, 23, 3]`` or ``[N, 69]``,
    transl ``[N, 3]``), axis-angle, metres, the model's own frame (SMPL: Y up)."""

    v_template: Tensor
    shapedirs: Tensor
    posedirs: Tensor
    J_regressor: Tensor
    weights: Tensor
    joint_template: Tensor
    joint_shapedirs: Tensor
    kp_support: Tensor
    kp_regressor: Tensor
    kp_template: Tensor
    kp_shapedirs: Tensor
    kp_posedirs: Tensor
    kp_weights: Tensor
    kp_offsets: Tensor

    def __init__(self, data: BodyModelData, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.parents = [int(p) for p in data.parents]
        self.faces = data.f
        self.num_betas = data.num_betas
        self.source: Path | None = None  # the file it came from (named in error messages)

        def buf(name: str, array: np.ndarray) -> None:
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(array), dtype=dtype), persistent=False)

        buf("v_template", data.v_template)
        buf("shapedirs", data.shapedirs)
        buf("posedirs", data.posedirs.reshape(-1, data.posedirs.shape[-1]).T)  # [207, V*3]
        buf("J_regressor", data.J_regressor)
        buf("weights", data.weights)
        # Joints depend on shape only: regress them from the template and shape directions once.
        buf("joint_template", data.J_regressor @ data.v_template)
        buf("joint_shapedirs", np.einsum("jv,vcb->jcb", data.J_regressor, data.shapedirs))
        self.has_posedirs = bool(np.any(data.posedirs))  # pose-corrective blend shapes (SMPL's; the bundled body has none)
        self.has_keypoints = data.coco17_regressor is not None
        if data.coco17_regressor is not None:
            support = np.flatnonzero(np.abs(data.coco17_regressor).sum(axis=0) > 0)
            self.register_buffer("kp_support", torch.as_tensor(support), persistent=False)
            buf("kp_regressor", data.coco17_regressor[:, support])
            # The keypoint path skins only these vertices: keep their rows of every array.
            cols = (support[:, None] * 3 + np.arange(3)).reshape(-1)
            buf("kp_template", data.v_template[support])
            buf("kp_shapedirs", data.shapedirs[support])
            buf("kp_posedirs", data.posedirs.reshape(-1, data.posedirs.shape[-1])[cols].T)
            buf("kp_weights", data.weights[support])
            buf("kp_offsets", np.zeros((17, 3)))
        self.has_offsets = False

    def set_keypoint_offsets(self, offsets: np.ndarray | None) -> None:
        """Move each COCO-17 keypoint by a fixed offset ``[17, 3]`` (metres) held in the frame of the
        body part it sits on (:data:`KEYPOINT_PARTS`): where a detector marks its keypoints on a
        body, relative to this model's own (None: the model's own)."""
        if not self.has_keypoints:
            raise BodyModelError(f"{self.source or 'body model'}: no COCO-17 keypoints to move")
        if offsets is None:
            self.kp_offsets.zero_()
            self.has_offsets = False
            return
        offsets = np.asarray(offsets, np.float64)
        if offsets.shape != (17, 3) or not np.isfinite(offsets).all():
            raise ValueError(f"keypoint offsets must be finite [17, 3] metres, got shape {offsets.shape}")
        self.kp_offsets.copy_(torch.as_tensor(offsets))
        self.has_offsets = True

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> BodyModel:
        """Load an SMPL-format ``.npz`` / ``.pkl``; default: the bundled licence-clean body."""
        path = Path(path) if path is not None else DEFAULT_BODY
        if not path.is_file() and path == DEFAULT_BODY:
            raise BodyModelError(f"default body model {path} is missing (build it with python -m tools.body.build_default_body)")
        model = cls(load_body_file(path))
        model.source = path
        return model

    def forward(self, betas: Tensor, global_orient: Tensor, body_pose: Tensor, transl: Tensor | None = None) -> BodyOutput:
        return self.forward_rotmat(betas, self._rotations(global_orient, body_pose), transl)

    def joints_only(self, betas: Tensor, global_orient: Tensor, body_pose: Tensor, transl: Tensor | None = None) -> BodyOutput:
        """The fast path for training: 24 joints and COCO-17 keypoints, skinning only the few
        vertices the keypoints use (same values as :meth:`forward`)."""
        return self.joints_rotmat(betas, self._rotations(global_orient, body_pose), transl)

    def forward_rotmat(self, betas: Tensor, rotations: Tensor, transl: Tensor | None = None) -> BodyOutput:
        """As :meth:`forward` with local joint rotation matrices ``[N, 24, 3, 3]`` (root first)."""
        betas = self._betas(betas)
        n = rotations.shape[0]
        v_shaped = self.v_template + torch.einsum("vcb,nb->nvc", self.shapedirs, betas)
        # the regressor applied to the template and the shape directions once, at load (it is linear):
        # the same rest joints as regressing v_shaped, at a tenth of the cost, and the same as joints_rotmat's
        rest_joints = self.joint_template + torch.einsum("jcb,nb->njc", self.joint_shapedirs, betas)
        v_posed = v_shaped  # plus the pose-corrective shapes, where the body has them (the bundled one has none)
        if self.has_posedirs:
            v_posed = v_shaped + (lbs.pose_features(rotations) @ self.posedirs).reshape(n, -1, 3)
        joints, transforms = lbs.forward_kinematics(rotations, rest_joints, self.parents)
        vertices = lbs.skin(v_posed, self.weights, transforms)
        keypoints = None
        if self.has_keypoints:
            keypoints = self._offset(torch.einsum("kv,nvc->nkc", self.kp_regressor, vertices[:, self.kp_support]), transforms)
        return self._translate(BodyOutput(joints, vertices, keypoints), transl)

    def joints_rotmat(self, betas: Tensor, rotations: Tensor, transl: Tensor | None = None) -> BodyOutput:
        """As :meth:`joints_only` with local joint rotation matrices ``[N, 24, 3, 3]``."""
        betas = self._betas(betas)
        rest_joints = self.joint_template + torch.einsum("jcb,nb->njc", self.joint_shapedirs, betas)
        joints, transforms = lbs.forward_kinematics(rotations, rest_joints, self.parents)
        keypoints = None
        if self.has_keypoints:
            n = rotations.shape[0]
            v_shaped = self.kp_template + torch.einsum("vcb,nb->nvc", self.kp_shapedirs, betas)
            if self.has_posedirs:  # pose-corrective shapes (all zero in the bundled body: the product is skipped)
                v_shaped = v_shaped + (lbs.pose_features(rotations) @ self.kp_posedirs).reshape(n, -1, 3)
            verts = lbs.skin(v_shaped, self.kp_weights, transforms)
            keypoints = self._offset(torch.einsum("kv,nvc->nkc", self.kp_regressor, verts), transforms)
        return self._translate(BodyOutput(joints, None, keypoints, transforms), transl)

    def skin_vertices(self, betas: Tensor, rotations: Tensor, transforms: Tensor, index: Tensor) -> Tensor:
        """The posed vertices ``index`` ``[N, S, 3]`` (no translation) of bodies whose skinning
        ``transforms`` came from :meth:`joints_rotmat` with the same betas and rotations: those of
        :meth:`forward_rotmat` without skinning the others (a display mesh's, say)."""
        betas = self._betas(betas)
        v = self.v_template[index] + torch.einsum("vcb,nb->nvc", self.shapedirs[index], betas)
        if self.has_posedirs:
            cols = (index[:, None] * 3 + torch.arange(3, device=index.device)).reshape(-1)
            v = v + (lbs.pose_features(rotations) @ self.posedirs[:, cols]).reshape(rotations.shape[0], -1, 3)
        return lbs.skin(v, self.weights[index], transforms)

    def _offset(self, keypoints: Tensor, transforms: Tensor) -> Tensor:
        if not self.has_offsets:
            return keypoints
        return keypoints + (transforms[:, KEYPOINT_PARTS, :, :3] @ self.kp_offsets[:, :, None])[..., 0]

    def _rotations(self, global_orient: Tensor, body_pose: Tensor) -> Tensor:
        n = global_orient.shape[0]
        pose = torch.cat([global_orient.reshape(n, 1, 3), body_pose.reshape(n, NUM_JOINTS - 1, 3)], dim=1)
        return lbs.axis_angle_to_matrix(pose)

    def _betas(self, betas: Tensor) -> Tensor:
        if betas.shape[-1] > self.num_betas:
            raise ValueError(f"betas has {betas.shape[-1]} coefficients; this body model has {self.num_betas}")
        return torch.nn.functional.pad(betas, (0, self.num_betas - betas.shape[-1]))

    @staticmethod
    def _translate(out: BodyOutput, transl: Tensor | None) -> BodyOutput:
        if transl is None:
            return out
        shift = transl[:, None, :]
        return BodyOutput(
            out.joints + shift,
            None if out.vertices is None else out.vertices + shift,
            None if out.keypoints is None else out.keypoints + shift,
            out.transforms,
        )
