"""Named surface points of the default body: smplx's extra-joint vertices and COCO-17 keypoints."""

from __future__ import annotations

import numpy as np

from engine.body.model_file import BodyModelData

COCO_FROM_SMPL_JOINTS = (16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8)  # shoulders .. ankles


def smplx_vertex_ids() -> dict[str, int]:
    """The vertex indices smplx uses for extra joints of an SMPL model (nose, eyes, ears, toes,
    heels, fingertips)."""
    from smplx.vertex_ids import vertex_ids

    return {k: int(v) for k, v in vertex_ids["smplh"].items()}


def pick_landmarks(
    v: np.ndarray, joints: np.ndarray, eyes: np.ndarray, tips: dict[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, int]:
    """Vertex index (into ``v`` ``[V, 3]``, T-pose, Y up, facing +Z, left = +X) for each name.

    joints ``[24, 3]``; eyes ``[2, 3]`` (left, right eye centres); tips: finger name ->
    (tip point, direction along the last phalanx)."""
    out: dict[str, int] = {}
    head = np.flatnonzero(v[:, 1] > joints[12, 1] + 0.05)
    front = head[np.abs(v[head, 0]) < 0.01]
    out["nose"] = int(front[np.argmax(v[front, 2])])
    for name, eye in (("leye", eyes[0]), ("reye", eyes[1])):
        ahead = head[v[head, 2] > eye[2]]
        out[name] = int(ahead[np.argmin(np.linalg.norm(v[ahead, :2] - eye[:2], axis=1))])
    band = head[np.abs(v[head, 1] - eyes[:, 1].mean() + 0.02) < 0.03]
    out["lear"] = int(band[np.argmax(v[band, 0])])
    out["rear"] = int(band[np.argmin(v[band, 0])])
    for prefix, sign, ankle in (("L", 1.0, joints[7]), ("R", -1.0, joints[8])):
        foot = np.flatnonzero((sign * v[:, 0] > 0) & (v[:, 1] < ankle[1]))
        sole = foot[v[foot, 1] < v[foot, 1].min() + 0.02]
        out[f"{prefix}Heel"] = int(sole[np.argmin(v[sole, 2])])
        toes = foot[v[foot, 2] > ankle[2] + 0.08]
        medial = toes[sign * v[toes, 0] <= np.median(sign * v[toes, 0])]
        lateral = toes[sign * v[toes, 0] >= np.quantile(sign * v[toes, 0], 0.8)]
        out[f"{prefix}BigToe"] = int(medial[np.argmax(v[medial, 2])])
        out[f"{prefix}SmallToe"] = int(lateral[np.argmax(v[lateral, 2])])
    for name, (tip, direction) in tips.items():
        near = np.flatnonzero(np.linalg.norm(v - tip, axis=1) < 0.02)
        if near.size == 0:
            near = np.array([int(np.argmin(np.linalg.norm(v - tip, axis=1)))])
        out[name] = int(near[np.argmax((v[near] - tip) @ direction)])
    return out


def reorder(count: int, placed: dict[int, int]) -> np.ndarray:
    """A permutation ``order`` (new index -> old index) putting old vertex ``placed[new]`` at each
    requested new index and keeping every other vertex in its original relative order."""
    if len(set(placed.values())) != len(placed):
        raise ValueError("two landmarks chose the same vertex")
    order = np.full(count, -1)
    for new, old in placed.items():
        order[new] = old
    rest = [i for i in range(count) if i not in set(placed.values())]
    order[order < 0] = rest
    return order


def coco17_regressor(data: BodyModelData) -> np.ndarray:
    """``[17, V]``: nose, eyes and ears on their surface vertices (smplx's ids), the twelve body
    keypoints at joint centres (the joint regressor's rows for the matching SMPL joints)."""
    ids = smplx_vertex_ids()
    R = np.zeros((17, data.num_vertices))
    for row, name in enumerate(("nose", "leye", "reye", "lear", "rear")):
        R[row, ids[name]] = 1.0
    for row, joint in enumerate(COCO_FROM_SMPL_JOINTS, start=5):
        R[row] = data.J_regressor[joint]
    return R
