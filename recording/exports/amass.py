"""One person's motion as an AMASS-layout ``.npz`` (what AMASS-trained tools and loaders read).

Keys: ``poses`` ``[T, 72]`` (SMPL layout: global_orient then the 23 body joints, axis-angle),
``trans`` ``[T, 3]``, ``betas`` ``[10]`` (not padded to AMASS's 16: SMPL-H loaders pad with zeros),
``mocap_framerate``, ``gender`` ("neutral"), and for convenience ``joints`` ``[T, 24, 3]``,
``valid`` ``[T]`` (False where a gap was filled), ``start_time`` (s), ``up`` and ``format_version``.

Convention, as AMASS: the world is Z up, metres; the root rotation includes the turn from SMPL's
Y-up body frame to the world; joints = SMPL(betas, poses) + trans, the pelvis at its rest place plus
``trans`` (the rotation turns about the pelvis). ``up="y"`` turns the world to Y up ((x, y, z) ->
(x, z, -y)), folding the turn into the root rotation and ``trans``.

AMASS has no mask: gaps between valid frames are interpolated (slerp of every joint rotation,
linear translation) and frames before the first / after the last valid one hold it. Frames are
resampled onto a uniform grid at the motion's frame rate when the times are uneven.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation, Slerp

from engine.body import BodyModel
from recording.motion import Motion, MotionError

FORMAT_VERSION = 1
Progress = Callable[[float], None]

# World (Z up) -> Y up: (x, y, z) -> (x, z, -y).
Z_TO_Y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def up_matrix(up: str) -> np.ndarray:
    """The turn ``[3, 3]`` from our Z-up world to the file's ``up`` ("z" or "y")."""
    if up == "z":
        return np.eye(3)
    if up == "y":
        return Z_TO_Y
    raise ValueError(f"up must be 'z' or 'y', not {up!r}")


def prepare(motion: Motion, up: str, body: BodyModel | None) -> tuple[np.ndarray, BodyModel]:
    """What the body-parameter exports (AMASS, BVH) start from: the world -> file turn for ``up``
    and the body model (default: the bundled one); an error when no frame of ``motion`` is valid."""
    turn = up_matrix(up)
    if not motion.valid.any():
        raise MotionError(f"person {motion.person}: no valid frame to export")
    return turn, body if body is not None else BodyModel.from_file()


def write(motion: Motion, path: str | Path, *, up: str = "z", progress: Progress | None = None,
          body: BodyModel | None = None) -> Path:  # fmt: skip
    """Write ``motion`` (all its frames; pass ``motion.span()`` for the valid span) to ``path``.
    ``body``: the model the motion was fitted with (default: the bundled one)."""
    turn, body = prepare(motion, up, body)
    fps = motion.fps
    grid = uniform_times(motion.times, fps)
    orient, pose, transl = filled_pose(motion, grid)
    report(progress, 0.4)
    joints = posed_joints(body, motion.betas, orient, pose, transl)
    report(progress, 0.8)
    pelvis = rest_joints(body, motion.betas)[0]
    orient = (Rotation.from_matrix(turn) * Rotation.from_rotvec(orient)).as_rotvec()
    transl = (transl + pelvis) @ turn.T - pelvis
    near = nearest_frames(motion.times, grid)
    valid = motion.valid[near] & (np.abs(motion.times[near] - grid) < 0.25 / fps)
    with open(path, "wb") as f:  # a file object: np.savez would add ".npz" to another suffix
        np.savez(f, poses=np.concatenate([orient, pose.reshape(-1, 69)], axis=1), trans=transl,
                 betas=np.asarray(motion.betas, np.float64), mocap_framerate=np.float64(fps), gender=np.str_("neutral"),
                 joints=joints @ turn.T, valid=valid, start_time=np.float64(grid[0]), up=np.str_(up),
                 format_version=np.int64(FORMAT_VERSION))  # fmt: skip
    report(progress, 1.0)
    return Path(path)


def report(progress: Progress | None, fraction: float) -> None:
    if progress is not None:
        progress(fraction)


def uniform_times(times: np.ndarray, fps: float) -> np.ndarray:
    """``times`` when they step evenly at ``fps``, else a uniform grid ``[T']`` over the same span."""
    n = int(round((times[-1] - times[0]) * fps)) + 1
    if n == len(times) and np.allclose(np.diff(times), 1.0 / fps, rtol=0.05, atol=0.0):
        return np.asarray(times, np.float64)
    return times[0] + np.arange(n) / fps


def nearest_frames(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """For each grid time ``[G]``, the index of the nearest of ``times`` ``[T]`` (increasing)."""
    if len(times) == 1:
        return np.zeros(len(grid), np.int64)
    right = np.clip(np.searchsorted(times, grid), 1, len(times) - 1)
    left = right - 1
    return np.where(np.abs(times[left] - grid) <= np.abs(times[right] - grid), left, right)


def filled_pose(motion: Motion, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """global_orient ``[G, 3]``, body_pose ``[G, 23, 3]``, transl ``[G, 3]`` at the grid times:
    rotations slerped and translation interpolated between valid frames, held past the ends."""
    t = motion.times[motion.valid]
    at = np.clip(grid, t[0], t[-1])
    rotvecs = np.concatenate([motion.global_orient[:, None], motion.body_pose], axis=1)[motion.valid]
    if len(t) == 1:
        rot = np.repeat(rotvecs, len(grid), axis=0)
    else:
        rot = np.stack([Slerp(t, Rotation.from_rotvec(rotvecs[:, j]))(at).as_rotvec() for j in range(24)], axis=1)
    transl = np.stack([np.interp(at, t, motion.transl[motion.valid, c]) for c in range(3)], axis=1)
    return rot[:, 0], rot[:, 1:], transl


def rest_joints(body: BodyModel, betas: np.ndarray) -> np.ndarray:
    """The 24 rest (zero-pose) joints ``[24, 3]`` of shape ``betas`` ``[B]``: SMPL's Y-up body frame, metres."""
    zero = torch.zeros(1, 3)
    with torch.no_grad():
        out = body.joints_only(torch.as_tensor(np.asarray(betas, np.float32))[None], zero, torch.zeros(1, 23, 3), zero)
    return out.joints[0].double().numpy()


def posed_joints(body: BodyModel, betas: np.ndarray, orient: np.ndarray, pose: np.ndarray, transl: np.ndarray) -> np.ndarray:
    """World joints ``[N, 24, 3]`` of one shape ``betas`` in poses ``[N, 3]``, ``[N, 23, 3]`` and
    translations ``[N, 3]`` (float64 forward kinematics; the body model's own math)."""
    local = Rotation.from_rotvec(np.concatenate([orient[:, None], pose], axis=1).reshape(-1, 3)).as_matrix()
    return forward_kinematics(local.reshape(-1, 24, 3, 3), rest_joints(body, betas), body.parents) + transl[:, None]


def forward_kinematics(local: np.ndarray, rest: np.ndarray, parents: list[int]) -> np.ndarray:
    """Joint positions ``[N, J, 3]`` from local rotations ``[N, J, 3, 3]`` (root first) about the
    rest joints ``[J, 3]`` (the root stays at its rest place), parents with -1 for the root."""
    world = [local[:, 0]]
    pos = [np.broadcast_to(rest[0], (len(local), 3))]
    for j in range(1, len(parents)):
        p = parents[j]
        world.append(world[p] @ local[:, j])
        pos.append(pos[p] + world[p] @ (rest[j] - rest[p]))
    return np.stack(pos, axis=1)
