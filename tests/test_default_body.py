"""The bundled licence-clean default body: layout, geometry, landmarks, smplx compatibility."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.body import BodyModel, load_body_file
from engine.body.model import DEFAULT_BODY

MIRROR = DEFAULT_BODY.with_name("default_body_mirror.npy")


@pytest.fixture(scope="module")
def data():
    return load_body_file(DEFAULT_BODY)


@pytest.fixture(scope="module")
def model(data):
    return BodyModel(data, dtype=torch.float64)


def smplx_ids() -> dict[str, int]:
    from smplx.vertex_ids import vertex_ids

    return {k: int(v) for k, v in vertex_ids["smplh"].items()}


def test_layout_matches_smpl(data) -> None:
    assert data.v_template.shape == (6890, 3) and data.f.shape == (13776, 3)
    assert data.weights.shape == (6890, 24) and data.J_regressor.shape == (24, 6890)
    assert data.shapedirs.shape == (6890, 3, 10) and data.posedirs.shape == (6890, 3, 207)
    assert data.coco17_regressor is not None and data.coco17_regressor.shape == (17, 6890)
    assert np.allclose(data.weights.sum(axis=1), 1.0, atol=1e-5) and data.weights.min() >= 0
    assert np.allclose(data.J_regressor.sum(axis=1), 1.0, atol=1e-5) and data.J_regressor.min() >= 0
    assert DEFAULT_BODY.stat().st_size < 3e6


def test_mesh_is_watertight_and_outward(data) -> None:
    directed = Counter((int(a), int(b)) for f in data.f for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])))
    assert max(directed.values()) == 1  # consistently oriented, no duplicate faces
    assert all((b, a) in directed for a, b in directed)  # every edge has its twin: closed
    edges = len(directed) // 2
    assert 6890 - edges + 13776 == 2  # a sphere: genus 0
    v = data.v_template
    volume = np.einsum("ij,ij->i", v[data.f[:, 0]], np.cross(v[data.f[:, 1]], v[data.f[:, 2]])).sum() / 6
    assert 0.04 < volume < 0.1  # m^3, outward normals (an adult body is ~0.06-0.08 m^3)


def test_symmetric_and_human_sized(data, model) -> None:
    mirror = np.load(MIRROR)
    assert np.array_equal(mirror[mirror], np.arange(6890))
    v = data.v_template
    assert np.abs(v[mirror] * [-1, 1, 1] - v).max() < 0.005
    height = np.ptp(v[:, 1])
    assert 1.6 <= height <= 1.8
    for k in range(3):  # every shape direction is symmetric too
        d = data.shapedirs[:, :, k]
        assert np.abs(d[mirror] * [-1, 1, 1] - d).max() < 1e-4


def test_beta0_changes_height_by_centimetres(model) -> None:
    heights = []
    for value in (-1.0, 0.0, 1.0):
        betas = torch.zeros(1, 10, dtype=torch.float64)
        betas[0, 0] = value
        out = model(betas, torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 69, dtype=torch.float64))
        heights.append(float(np.ptp(out.vertices[0, :, 1].numpy())))
    assert 0.03 < heights[2] - heights[1] < 0.2 and 0.03 < heights[1] - heights[0] < 0.2


def test_smplx_extra_joint_vertices_sit_on_their_parts(data) -> None:
    v, ids = data.v_template, smplx_ids()
    J = data.J_regressor @ v
    head = v[v[:, 1] > J[12, 1] + 0.05]
    nose = v[ids["nose"]]
    assert nose[2] == pytest.approx(head[:, 2].max(), abs=0.005) and abs(nose[0]) < 0.01
    for side, sign in (("l", 1), ("r", -1)):
        eye, ear = v[ids[f"{side}eye"]], v[ids[f"{side}ear"]]
        assert sign * eye[0] > 0.01 and eye[1] > nose[1] and eye[2] > J[15, 2]
        assert sign * ear[0] > sign * eye[0] + 0.03 and abs(ear[1] - eye[1]) < 0.06
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            tip = v[ids[f"{side}{finger}"]]
            wrist = J[20 if side == "l" else 21]
            assert sign * tip[0] > sign * wrist[0] + 0.05  # beyond the wrist, on the right arm
        assert abs(v[ids[f"{side}middle"]][0]) == pytest.approx(np.abs(v[:, 0]).max(), abs=0.01)  # T-pose: longest finger
    for side, sign, ankle in (("L", 1, J[7]), ("R", -1, J[8])):
        foot = v[(sign * v[:, 0] > 0) & (v[:, 1] < ankle[1])]
        heel, big, small = v[ids[f"{side}Heel"]], v[ids[f"{side}BigToe"]], v[ids[f"{side}SmallToe"]]
        assert heel[1] < foot[:, 1].min() + 0.03 and heel[2] < foot[:, 2].min() + 0.02  # lowest back point
        assert big[2] > ankle[2] + 0.1 and small[2] > ankle[2] + 0.08  # toes in front of the ankle
        assert sign * big[0] < sign * small[0]  # big toe on the inside


def test_joints_stay_inside_the_body_for_extreme_betas(model) -> None:
    for k in range(4):
        for value in (-3.0, 3.0):
            betas = torch.zeros(1, 10, dtype=torch.float64)
            betas[0, k] = value
            out = model(betas, torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 69, dtype=torch.float64))
            verts = out.vertices[0].numpy()
            inside = [inside_mesh(p, verts, model.faces) for p in out.joints[0].numpy()]
            assert all(inside), f"beta{k}={value}: joints outside {np.flatnonzero(~np.array(inside))}"


def inside_mesh(point: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> bool:
    """Ray parity test (Moller-Trumbore) along a slightly skewed direction."""
    direction = np.array([0.3141, 0.2718, 0.9]) / np.linalg.norm([0.3141, 0.2718, 0.9])
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    e1, e2 = b - a, c - a
    p = np.cross(direction, e2)
    det = np.einsum("ij,ij->i", e1, p)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = point - a
    u = np.einsum("ij,ij->i", s, p) * inv
    q = np.cross(s, e1)
    w = (q @ direction) * inv
    t = np.einsum("ij,ij->i", e2, q) * inv
    hits = ok & (u >= 0) & (w >= 0) & (u + w <= 1) & (t > 0)
    return bool(hits.sum() % 2 == 1)


def test_coco17_keypoints_on_the_posed_body(data, model) -> None:
    ids = smplx_ids()
    pose = torch.zeros(1, 69, dtype=torch.float64)
    pose[0, 15 * 3 + 2] = -1.2  # left arm down
    out = model(torch.zeros(1, 10, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64), pose)
    kp, verts, joints = out.keypoints[0].numpy(), out.vertices[0].numpy(), out.joints[0].numpy()
    assert np.allclose(kp[0], verts[ids["nose"]]) and np.allclose(kp[1], verts[ids["leye"]])
    assert np.allclose(kp[3], verts[ids["lear"]]) and np.allclose(kp[4], verts[ids["rear"]])
    for row, joint in zip(range(5, 17), (16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8), strict=True):
        assert np.linalg.norm(kp[row] - joints[joint]) < 0.03  # at the joint centre (skinned surface ring)
    assert kp[9, 1] < kp[5, 1] - 0.3  # the lowered left wrist hangs well below the shoulder


def test_smplx_loads_the_default_body_and_agrees(data, tmp_path: Path) -> None:
    smplx = pytest.importorskip("smplx")
    pkl = tmp_path / "SMPL_NEUTRAL.pkl"
    layout = {"v_template": data.v_template, "f": data.f, "weights": data.weights, "J_regressor": data.J_regressor,
              "kintree_table": data.kintree_table, "shapedirs": data.shapedirs, "posedirs": data.posedirs}  # fmt: skip
    pkl.write_bytes(pickle.dumps(layout, protocol=2))
    reference = smplx.SMPL(model_path=str(pkl), num_betas=10)
    ours = BodyModel(load_body_file(pkl))
    g = torch.Generator().manual_seed(11)
    p = {"betas": torch.randn(6, 10, generator=g), "global_orient": torch.randn(6, 3, generator=g),
         "body_pose": 0.4 * torch.randn(6, 69, generator=g), "transl": torch.randn(6, 3, generator=g)}  # fmt: skip
    with torch.no_grad():
        ref, out = reference(**p), ours(**p)
    assert torch.allclose(out.vertices, ref.vertices, atol=1e-5)
    assert torch.allclose(out.joints, ref.joints[:, :24], atol=1e-5)
    ids = smplx_ids()
    extra = ref.joints[:, 24:]  # smplx's extra joints are our landmark vertices
    names = ["nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel"]
    assert torch.allclose(extra[:, : len(names)], out.vertices[:, [ids[n] for n in names]], atol=1e-5)


def test_zero_pose_and_betas_reproduce_the_template(data, model) -> None:
    zeros = torch.zeros(1, 10, dtype=torch.float64)
    out = model(zeros, torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 69, dtype=torch.float64))
    assert np.abs(out.vertices[0].numpy() - data.v_template).max() < 1e-6  # weights sum to 1 in float32
