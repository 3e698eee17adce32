"""CMU motion capture (ASF skeleton + AMC frames) retargeted to SMPL's 24-joint tree.

Each CMU bone's world rotation relative to its rest pose is computed from the ASF axes and the
AMC Euler angles (local frame C, motion M: R = R_parent C M C^-1). An SMPL joint takes the
rotation of the CMU bone that spans the same body segment, after first turning the SMPL rest
bone onto the CMU rest bone direction, so rest-pose differences (the CMU legs' 20 degree
abduction, clavicle directions) do not leak into the pose. CMU's world is Y up, like SMPL's body
frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.geometry import matrix_to_rodrigues

# SMPL joint -> the CMU bone spanning the same segment (None: the root orientation)
SMPL_FROM_CMU: dict[int, str | None] = {
    0: None, 1: "lfemur", 2: "rfemur", 3: "lowerback", 4: "ltibia", 5: "rtibia", 6: "upperback", 7: "lfoot",
    8: "rfoot", 9: "thorax", 10: "ltoes", 11: "rtoes", 12: "lowerneck", 13: "lclavicle", 14: "rclavicle",
    15: "head", 16: "lhumerus", 17: "rhumerus", 18: "lradius", 19: "rradius", 20: "lwrist", 21: "rwrist",
    22: "lhand", 23: "rhand",
}  # fmt: skip
SMPL_CHILD = {
    1: 4,
    2: 5,
    3: 6,
    4: 7,
    5: 8,
    6: 9,
    7: 10,
    8: 11,
    9: 12,
    12: 15,
    13: 16,
    14: 17,
    16: 18,
    17: 19,
    18: 20,
    19: 21,
    20: 22,
    21: 23,
}


@dataclass
class Bone:
    name: str
    direction: np.ndarray  # rest direction, world
    C: np.ndarray  # local axis frame
    dofs: list[str]
    parent: str | None = None


def euler_xyz(angles_deg: np.ndarray) -> np.ndarray:
    """Rotations ``[..., 3, 3]`` = Rz(z) Ry(y) Rx(x) for angles ``[..., 3]`` in degrees."""
    x, y, z = np.deg2rad(np.moveaxis(angles_deg, -1, 0))
    cx, sx, cy, sy, cz, sz = np.cos(x), np.sin(x), np.cos(y), np.sin(y), np.cos(z), np.sin(z)
    one, zero = np.ones_like(x), np.zeros_like(x)
    Rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(*x.shape, 3, 3)
    Ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*x.shape, 3, 3)
    Rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(*x.shape, 3, 3)
    return Rz @ Ry @ Rx


def parse_asf(path: Path) -> dict[str, Bone]:
    """Bones (rest direction, axis frame, degrees of freedom, parent) of an ASF skeleton."""
    bones: dict[str, Bone] = {"root": Bone("root", np.zeros(3), np.eye(3), ["rx", "ry", "rz"])}
    section = ""
    block: dict[str, list[str]] = {}
    for raw in path.read_text(errors="replace").splitlines():
        line = raw.strip()
        if line.startswith(":"):
            section = line.split()[0]
            continue
        if section == ":bonedata":
            if line == "begin":
                block = {}
            elif line == "end":
                direction = np.array([float(v) for v in block["direction"]])
                axis = euler_xyz(np.array([float(v) for v in block["axis"][:3]]))
                bones[block["name"][0]] = Bone(block["name"][0], direction, axis, block.get("dof", []))
            elif line:
                key, *values = line.split()
                block[key] = values
        elif section == ":hierarchy" and line not in ("begin", "end", ""):
            parent, *children = line.split()
            for child in children:
                bones[child].parent = parent
    return bones


def parse_amc(path: Path, bones: dict[str, Bone]) -> dict[str, np.ndarray]:
    """Per bone: Euler angles ``[T, 3]`` (degrees, x y z; missing dofs 0)."""
    frames: list[dict[str, list[float]]] = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ":")):
            continue
        if line.isdigit():
            frames.append({})
            continue
        name, *values = line.split()
        frames[-1][name] = [float(v) for v in values]
    out = {}
    for name, bone in bones.items():
        angles = np.zeros((len(frames), 3))
        for t, frame in enumerate(frames):
            numbers = frame.get(name, [])
            if name == "root":
                numbers = numbers[3:6]  # skip the translation
            for dof, value in zip(bone.dofs, numbers, strict=False):
                angles[t, "xyz".index(dof[1])] = value
        out[name] = angles
    return out


def world_rotations(bones: dict[str, Bone], angles: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each bone's world rotation relative to the rest pose, ``[T, 3, 3]``."""
    out: dict[str, np.ndarray] = {}

    def solve(name: str) -> np.ndarray:
        if name not in out:
            bone = bones[name]
            local = bone.C @ euler_xyz(angles[name]) @ bone.C.T
            out[name] = local if bone.parent is None else solve(bone.parent) @ local
        return out[name]

    for name in bones:
        solve(name)
    return out


def _between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction a to direction b."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(np.dot(a, b))
    if np.linalg.norm(v) < 1e-9:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    K = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + K + K @ K / (1 + c)


def retarget(
    asf: Path, amc: Path, smpl_rest_joints: np.ndarray, parents: np.ndarray, step: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """SMPL body poses ``[T, 23, 3]`` (axis-angle) and root orientations ``[T, 3, 3]`` (body frame,
    Y up) for every ``step``-th frame of a CMU clip."""
    bones = parse_asf(asf)
    angles = {k: v[::step] for k, v in parse_amc(amc, bones).items()}
    world = world_rotations(bones, angles)
    T = len(world["root"])
    G = np.zeros((T, 24, 3, 3))
    for j, name in SMPL_FROM_CMU.items():
        if name is None:
            G[:, j] = world["root"]
            continue
        child = SMPL_CHILD.get(j)
        smpl_dir = (
            smpl_rest_joints[child] - smpl_rest_joints[j]
            if child is not None
            else smpl_rest_joints[j] - smpl_rest_joints[parents[j]]
        )
        G[:, j] = world[name] @ _between(smpl_dir, bones[name].direction)
    local = np.einsum("tjba,tjbc->tjac", G[:, parents[1:]], G[:, 1:])  # G_parent^T G_j
    return matrix_to_rodrigues(local), G[:, 0]
