"""One person's motion as a BVH file: the SMPL skeleton (24 joints, SMPL names) with the person's
own bone lengths, for Blender, MotionBuilder, Maya and game engines.

Conventions: metres (Blender imports at scale 1.0; use 100 for centimetre tools); ``up="z"`` (our
world, Blender's own: import with forward Y, up Z) or ``up="y"`` ((x, y, z) -> (x, z, -y): the
importer defaults, forward -Z, up Y). The rest pose stands upright in a T-pose facing -Y (Z up) /
+Z (Y up). The root has ``Xposition Yposition Zposition`` (absolute; its OFFSET is 0) and
rotations, every other joint rotations only, in degrees, unwrapped over time. Euler orders are
intrinsic (channels "Zrotation Xrotation Yrotation": R = Rz Rx Ry), heading first: ZXY (Z up) /
YXZ (Y up), except for a joint whose middle angle would pass 60 degrees in this motion (a knee
bent at 90, a person lying down): it gets the first order of ``EULER_ORDERS`` that keeps its middle
angle away from gimbal lock. Frame Time = 1 / fps; uneven times are resampled to the nearest frame
on a uniform grid. Invalid frames hold the last valid pose (the first valid one before it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import numpy as np
from scipy.spatial.transform import Rotation

from core.types import SMPL_JOINT_NAMES
from engine.body import BodyModel
from recording.exports.amass import Progress, nearest_frames, prepare, report, rest_joints, uniform_times
from recording.motion import Motion

JOINT_NAMES = SMPL_JOINT_NAMES
# Euler orders (intrinsic, R = R_first R_second R_third) in order of preference: heading first.
EULER_ORDERS = {"z": ("ZXY", "ZYX", "XZY", "YZX", "XYZ", "YXZ"), "y": ("YXZ", "YZX", "XYZ", "ZYX", "XZY", "ZXY")}
GIMBAL_SAFE_DEG = 60.0  # the first order whose middle angle stays within this over the motion
# SMPL's Y-up body frame -> our Z-up world: (x, y, z) -> (x, -z, y), a quarter turn about X.
BODY_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
CHUNK = 2000  # frames formatted per write


def write(motion: Motion, path: str | Path, *, up: str = "z", progress: Progress | None = None,
          body: BodyModel | None = None) -> Path:  # fmt: skip
    """Write ``motion`` (all its frames; pass ``motion.span()`` for the valid span) to ``path``.
    ``body``: the model the motion was fitted with (default: the bundled one)."""
    turn, body = prepare(motion, up, body)
    rest_turn = turn @ BODY_TO_WORLD  # SMPL body frame -> the file's rest frame
    rest_body = rest_joints(body, motion.betas)
    fps = motion.fps
    frames = held_frames(motion, uniform_times(motion.times, fps))
    local = local_rotations(motion, frames, turn, rest_turn)
    orders = euler_orders(local, EULER_ORDERS[up])
    root = (rest_body[0] + motion.transl[frames]) @ turn.T
    channels = frame_channels(local, root, orders, file_order(body.parents))
    report(progress, 0.3)
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(hierarchy(rest_body @ rest_turn.T, body.parents, orders))
        f.write(f"MOTION\nFrames: {len(channels)}\nFrame Time: {1.0 / fps:.9f}\n")
        _write_rows(f, channels, progress)
    return Path(path)


def held_frames(motion: Motion, grid: np.ndarray) -> np.ndarray:
    """For each grid time, the source frame to write: the nearest one, or when it is invalid the
    last valid one before it (the first valid one when none is before)."""
    idx = np.arange(len(motion))
    last_valid = np.maximum.accumulate(np.where(motion.valid, idx, -1))
    held = np.where(last_valid >= 0, last_valid, int(np.flatnonzero(motion.valid)[0]))
    return held[nearest_frames(motion.times, grid)]


def local_rotations(motion: Motion, frames: np.ndarray, turn: np.ndarray, rest_turn: np.ndarray) -> np.ndarray:
    """Each joint's rotation ``[F, 24, 3, 3]`` in the file's rest frame at the source ``frames``: a
    local rotation L of SMPL's body frame becomes B L B^T (B = ``rest_turn``), the root T R0 B^T."""
    rotvecs = np.concatenate([motion.global_orient[frames, None], motion.body_pose[frames]], axis=1)
    local = Rotation.from_rotvec(rotvecs.reshape(-1, 3)).as_matrix().reshape(len(frames), 24, 3, 3)
    local[:, 1:] = rest_turn @ local[:, 1:] @ rest_turn.T
    local[:, 0] = turn @ local[:, 0] @ rest_turn.T
    return local


def euler_orders(local: np.ndarray, preferred: tuple[str, ...]) -> list[str]:
    """Each joint's Euler order: the first of ``preferred`` whose middle angle stays within
    GIMBAL_SAFE_DEG over the motion (away from gimbal lock at 90), else the one that stays furthest
    from it. For R = R_a R_b R_c, |sin(middle)| = |R[a, c]|."""
    axis = {"X": 0, "Y": 1, "Z": 2}
    worst = np.stack([np.abs(local[:, :, axis[o[0]], axis[o[2]]]).max(axis=0) for o in preferred])  # [orders, 24]
    safe = worst <= np.sin(np.radians(GIMBAL_SAFE_DEG))
    best = np.where(safe.any(axis=0), safe.argmax(axis=0), worst.argmin(axis=0))
    return [preferred[int(k)] for k in best]


def frame_channels(local: np.ndarray, root: np.ndarray, orders: list[str], joints: list[int]) -> np.ndarray:
    """The channel values ``[F, 3 + 24 * 3]``: the root position ``[F, 3]``, then the Euler angles
    (degrees, each joint in its order, unwrapped over time) of the ``joints`` in the file's order."""
    euler = np.empty(local.shape[:2] + (3,))
    for order in set(orders):
        js = [j for j, o in enumerate(orders) if o == order]
        euler[:, js] = Rotation.from_matrix(local[:, js].reshape(-1, 3, 3)).as_euler(order, degrees=True).reshape(-1, len(js), 3)
    euler = np.unwrap(euler, period=360.0, axis=0)
    return np.concatenate([root, euler[:, joints].reshape(len(local), -1)], axis=1)


def file_order(parents: list[int]) -> list[int]:
    """The joints depth first from the root, children in increasing index: their order in the file."""
    order, todo = [], [parents.index(-1)]
    while todo:
        j = todo.pop()
        order.append(j)
        todo.extend(sorted((c for c, p in enumerate(parents) if p == j), reverse=True))
    return order


def hierarchy(rest: np.ndarray, parents: list[int], orders: list[str]) -> str:
    """The HIERARCHY section for rest joints ``[24, 3]`` (the file's frame, metres) and each joint's Euler order."""
    children: dict[int, list[int]] = {j: [] for j in range(len(parents))}
    for j, p in enumerate(parents):
        if p >= 0:
            children[p].append(j)
    lines = ["HIERARCHY"]

    def joint(j: int, depth: int) -> None:
        pad = "  " * depth
        rotations = " ".join(f"{axis}rotation" for axis in orders[j])
        p = parents[j]
        offset = np.zeros(3) if p < 0 else rest[j] - rest[p]
        if p < 0:
            lines.extend([f"ROOT {JOINT_NAMES[j]}", "{", f"  OFFSET {_xyz(offset)}",
                          f"  CHANNELS 6 Xposition Yposition Zposition {rotations}"])  # fmt: skip
        else:
            lines.extend(
                [f"{pad}JOINT {JOINT_NAMES[j]}", f"{pad}{{", f"{pad}  OFFSET {_xyz(offset)}", f"{pad}  CHANNELS 3 {rotations}"]
            )
        for c in children[j]:
            joint(c, depth + 1)
        if not children[j]:  # a leaf: an end half as long as its bone, along it
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {_xyz(0.5 * offset)}", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    joint(parents.index(-1), 0)
    return "\n".join(lines) + "\n"


def _xyz(v: np.ndarray) -> str:
    return " ".join(f"{x:.6f}" for x in v)


def _write_rows(f: TextIO, channels: np.ndarray, progress: Progress | None) -> None:
    fmt = " ".join(["%.6f"] * channels.shape[1]) + "\n"
    for s in range(0, len(channels), CHUNK):
        block = channels[s : s + CHUNK]
        f.write((fmt * len(block)) % tuple(block.ravel()))
        report(progress, 0.3 + 0.7 * min(s + CHUNK, len(channels)) / len(channels))
