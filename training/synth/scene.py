"""Random scenes: a posed, shaped body on the floor of a room seen by a random camera rig, with
detector-like 2D keypoints (jitter, confidences, dropped and swapped joints, outliers,
truncation at the image border, masked views). Plain torch, generated on the training device."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from core.paths import CMU_POSES
from core.types import COCO17_LEFT_RIGHT
from engine.body.lbs import axis_angle_to_matrix
from engine.body.model import BodyModel
from engine.body.model_file import SMPL_POSE_LEFT_RIGHT
from training.synth.poses import (
    everyday_arms,
    one_leg_balance,
    rot_x,
    rot_z,
    sample_activity_poses,
    sample_global_orient,
    uniform,
    widen_limbs,
)

IMAGE_SIZES = torch.tensor([[640, 480], [1280, 720], [1920, 1080], [1080, 1920], [720, 1280], [800, 600]], dtype=torch.float32)
SWAP = torch.tensor(COCO17_LEFT_RIGHT)  # COCO-17 left <-> right
_POSE_LEFT_RIGHT = list(SMPL_POSE_LEFT_RIGHT)
_LEGS = [0, 1, 3, 4, 6, 7, 9, 10]  # body-pose rows of the hips, knees, ankles and feet
# Body-pose rows of each limb (hip to foot; collar to hand), for mixing limbs of recorded poses.
LIMBS = ([0, 3, 6, 9], [1, 4, 7, 10], [12, 15, 17, 19, 21], [13, 16, 18, 20, 22])


@dataclass
class Scene:
    """B samples seen by V cameras each (all tensors on one device).

    betas ``[B, 10]``, body_pose ``[B, 23, 3]`` (axis-angle), body_to_world ``[B, 3, 3]``,
    joints ``[B, 24, 3]`` and keypoints3d ``[B, 17, 3]`` (world, metres, Z up);
    K ``[B, V, 3, 3]``, R ``[B, V, 3, 3]`` (world to camera), t ``[B, V, 3]``, image_size
    ``[B, V, 2]`` (w, h); observed ``[B, V, 17, 3]`` = (x px, y px, confidence), activity names.
    """

    betas: Tensor
    body_pose: Tensor
    body_to_world: Tensor
    joints: Tensor
    keypoints3d: Tensor
    K: Tensor
    R: Tensor
    t: Tensor
    image_size: Tensor
    observed: Tensor
    activities: list[str]


@dataclass(frozen=True)
class NoiseModel:
    """Detector-like errors (fractions of the person's box size / probabilities)."""

    jitter: tuple[float, float] = (0.005, 0.03)
    drop: tuple[float, float] = (0.0, 0.3)
    swap: float = 0.04
    outlier: float = 0.02
    view_mask: float = 0.08


DEFAULT_NOISE = NoiseModel()

HELD_OUT_CLIPS = ("pirouette",)
BALANCE_ACTIVITIES = ("standing", "walking", "reaching_up")  # the activities one_leg_balance may turn into a one-leg stance


@dataclass
class PoseBank:
    """Recorded poses (the retargeted CMU clips): body_pose ``[N, 23, 3]``, root ``[N, 3, 3]``."""

    body_pose: Tensor
    root: Tensor

    @classmethod
    def load(cls, path: Path = CMU_POSES, held_out: bool = False) -> PoseBank:
        """The training clips, or (``held_out``) only the clips kept for evaluation."""
        with np.load(path) as data:
            keep = np.isin(data["clip"], HELD_OUT_CLIPS)
            keep = keep if held_out else ~keep
            device = torch.get_default_device()  # the training device, where the samples are drawn
            pose, root = (torch.as_tensor(data[k][keep], device=device) for k in ("body_pose", "root"))
            return cls(pose, root)

    def sample(self, n: int, g: torch.Generator, augment: bool = False, mix_limbs: bool = False) -> tuple[Tensor, Tensor]:
        """Body poses ``[n, 23, 3]`` and body-to-world rotations (their recorded orientation, Y up
        turned to Z up, with a random heading). ``augment`` (training): half the poses are
        mirrored left-right, a third take their legs from another recorded pose, and every joint
        angle gets a little noise, so that a few clips give more than a few motions.
        ``mix_limbs`` (with ``augment``): instead of both legs together, each arm and each leg
        alone has a one-in-three chance of coming from another recorded pose, so recorded limb
        movements meet in combinations the clips never hold."""
        index = torch.randint(0, len(self.body_pose), (n,), generator=g)
        pose, root = self.body_pose[index].to(torch.get_default_dtype()), self.root[index].to(torch.get_default_dtype())
        if augment:
            flip = torch.rand(n, generator=g) < 0.5
            mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))  # x -> -x, in the body and in the (Y up) world
            pose = torch.where(flip[:, None, None], pose[:, _POSE_LEFT_RIGHT] * torch.tensor([1.0, -1.0, -1.0]), pose)
            root = torch.where(flip[:, None, None], mirror @ root @ mirror, root)
            for rows in LIMBS if mix_limbs else (_LEGS,):
                mix = torch.rand(n, generator=g) < 1 / 3
                other = self.body_pose[torch.randint(0, len(self.body_pose), (n,), generator=g)].to(pose)
                pose[:, rows] = torch.where(mix[:, None, None], other[:, rows], pose[:, rows])
            pose = pose + 0.08 * torch.randn(pose.shape, generator=g)
        heading = rot_z(uniform(n, -math.pi, math.pi, g))
        return pose, heading @ rot_x(torch.full((n,), math.pi / 2)) @ root


def sample_scene(
    body: BodyModel,
    batch: int,
    views: int,
    g: torch.Generator,
    noise: NoiseModel = DEFAULT_NOISE,
    bank: PoseBank | None = None,
    bank_fraction: float = 0.0,
    augment_bank: bool = False,
    wide_limbs: float = 0.0,
    mix_limbs: bool = False,
    arm_gestures: float = 0.0,
    balance: float = 0.0,
) -> Scene:
    """A batch of scenes; ``bank_fraction`` of the bodies take a recorded pose from ``bank``
    (augmented, limbs mixed: see :meth:`PoseBank.sample`); ``wide_limbs`` of all bodies get wide arm and leg
    poses (training: see :func:`training.synth.poses.widen_limbs`), then ``arm_gestures`` of all bodies an
    everyday arm gesture (training: see :func:`training.synth.poses.everyday_arms`); before the gestures,
    ``balance`` of the standing, walking and reaching bodies stand on one leg (training: see
    :func:`training.synth.poses.one_leg_balance`)."""
    body_pose, names = sample_activity_poses(batch, g)
    betas = (0.9 * torch.randn(batch, 10, generator=g)).clamp(-2.5, 2.5)
    body_to_world = sample_global_orient(names, g)
    if bank is not None and bank_fraction > 0:
        recorded = torch.rand(batch, generator=g) < bank_fraction
        if recorded.any():
            pose, orient = bank.sample(int(recorded.sum()), g, augment=augment_bank, mix_limbs=mix_limbs)
            body_pose[recorded], body_to_world[recorded] = pose, orient
            names = ["recorded" if r else name for r, name in zip(recorded.tolist(), names, strict=True)]
    body_pose = widen_limbs(body_pose, wide_limbs, g)
    if balance > 0:
        body_pose = one_leg_balance(body_pose, balance, g, torch.tensor([name in BALANCE_ACTIVITIES for name in names]))
    body_pose = everyday_arms(body_pose, arm_gestures, g)
    rotations = torch.cat([body_to_world[:, None], axis_angle_to_matrix(body_pose)], dim=1)
    out = body.joints_rotmat(betas, rotations)
    assert out.keypoints is not None, "the body model needs a coco17_regressor"
    # Stand the body on the floor (lowest keypoint ~8 cm up) somewhere in the room.
    lift = 0.08 - torch.minimum(out.keypoints[..., 2].min(dim=1).values, out.joints[..., 2].min(dim=1).values)
    shift = torch.stack([uniform(batch, -1.5, 1.5, g), uniform(batch, -1.5, 1.5, g), lift], dim=-1)
    joints, keypoints3d = out.joints + shift[:, None], out.keypoints + shift[:, None]
    K, R, t, size = sample_rig(keypoints3d.mean(dim=1), batch, views, g)
    observed = detect(keypoints3d, K, R, t, size, g, noise)
    return Scene(betas, body_pose, body_to_world, joints, keypoints3d, K, R, t, size, observed, names)


def sample_rig(target: Tensor, batch: int, views: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Cameras around ``target`` ``[B, 3]``: ceiling corners (2.2-2.8 m), wall mounts (1-1.8 m)
    and tripods (1.2-1.5 m), 1.5-6 m away, looking at the person, realistic focal lengths."""
    shape = (batch, views)
    azimuth = uniform(shape, -math.pi, math.pi, g)
    distance = uniform(shape, 1.5, 6.0, g)
    kind = torch.randint(0, 3, shape, generator=g)
    height = torch.where(
        kind == 0, uniform(shape, 2.2, 2.8, g), torch.where(kind == 1, uniform(shape, 1.0, 1.8, g), uniform(shape, 1.2, 1.5, g))
    )
    eye = target[:, None] + torch.stack([distance * torch.cos(azimuth), distance * torch.sin(azimuth), torch.zeros(shape)], -1)
    eye[..., 2] = height
    look = target[:, None] + 0.25 * torch.randn(batch, views, 3, generator=g)
    R = look_at(eye, look)
    t = -(R @ eye[..., None])[..., 0]
    size = IMAGE_SIZES.to(g.device)[torch.randint(0, len(IMAGE_SIZES), shape, generator=g)]
    hfov = torch.deg2rad(uniform(shape, 50.0, 95.0, g))
    focal = 0.5 * size.max(dim=-1).values / torch.tan(hfov / 2)
    K = torch.zeros(batch, views, 3, 3)
    K[..., 0, 0] = focal
    K[..., 1, 1] = focal * uniform(shape, 0.995, 1.005, g)
    K[..., 0, 2] = size[..., 0] / 2 + 0.01 * size[..., 0] * torch.randn(shape, generator=g)
    K[..., 1, 2] = size[..., 1] / 2 + 0.01 * size[..., 1] * torch.randn(shape, generator=g)
    K[..., 2, 2] = 1.0
    return K, R, t, size


def look_at(eye: Tensor, target: Tensor) -> Tensor:
    """World-to-camera rotations ``[..., 3, 3]`` (OpenCV axes) for cameras at ``eye`` looking at
    ``target`` with world +Z up."""
    z = target - eye
    z = z / z.norm(dim=-1, keepdim=True)
    up = torch.tensor([0.0, 0.0, 1.0]).expand_as(z)
    x = torch.cross(z, up, dim=-1)
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    y = torch.cross(z, x, dim=-1)
    return torch.stack([x, y, z], dim=-2)


def project(points: Tensor, K: Tensor, R: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """World points ``[B, N, 3]`` into every view: pixels ``[B, V, N, 2]`` and depth ``[B, V, N]``."""
    cam = torch.einsum("bvij,bnj->bvni", R, points) + t[:, :, None]
    depth = cam[..., 2]
    pix = torch.einsum("bvij,bvnj->bvni", K, cam / depth.clamp_min(1e-6)[..., None])[..., :2]
    return pix, depth


def detect(points: Tensor, K: Tensor, R: Tensor, t: Tensor, size: Tensor, g: torch.Generator, noise: NoiseModel) -> Tensor:
    """Detector-like observations ``[B, V, 17, 3]`` of keypoints ``[B, 17, 3]``."""
    pix, depth = project(points, K, R, t)
    B, V = pix.shape[:2]
    extent = (pix.amax(dim=2) - pix.amin(dim=2)).amax(dim=-1).clamp_min(8.0)  # [B, V] person size px
    jitter = uniform((B, V, 1, 1), *noise.jitter, g) * extent[..., None, None]
    obs = pix + jitter * torch.randn(B, V, 17, 2, generator=g)
    conf = (0.9 - 2.0 * jitter[..., 0] / extent[..., None] + 0.08 * torch.randn(B, V, 17, generator=g)).clamp(0.3, 1.0)
    drop_rate = uniform((B, V, 1), *noise.drop, g)
    keep = torch.rand(B, V, 17, generator=g) >= drop_rate
    inside = (obs[..., 0] >= 0) & (obs[..., 1] >= 0) & (obs[..., 0] < size[..., None, 0]) & (obs[..., 1] < size[..., None, 1])
    keep &= inside & (depth > 0.1)
    swap = torch.rand(B, V, 1, 1, generator=g) < noise.swap
    obs = torch.where(swap, obs[:, :, SWAP.to(obs.device)], obs)
    outlier = torch.rand(B, V, 17, generator=g) < noise.outlier
    centre = pix.mean(dim=2, keepdim=True)
    wild = centre + extent[..., None, None] * (torch.rand(B, V, 17, 2, generator=g) - 0.5)
    obs = torch.where(outlier[..., None], wild, obs)
    masked = torch.rand(B, V, 1, generator=g) < noise.view_mask
    masked[:, 0] = False  # at least one view is always there
    conf = torch.where(keep & ~masked, conf, torch.zeros_like(conf))
    return torch.cat([obs * (conf[..., None] > 0), conf[..., None]], dim=-1)
