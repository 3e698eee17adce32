"""Body model: our skinning against smplx, file loading, safe unpickling of SMPL pickles."""

from __future__ import annotations

import copyreg
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch

from engine.body import BodyModel, load_body_file, save_body_npz
from engine.body.lbs import axis_angle_to_matrix, matrix_to_rotation_6d, rotation_6d_to_matrix
from engine.body.model_file import SMPL_PARENTS, BodyModelError
from engine.body.safe_pickle import UnsafePickleError

V = 6890  # smplx selects extra joints by vertex index, so the stand-in model has SMPL's size


def synthetic_smpl_dict(seed: int = 0) -> dict[str, object]:
    """A random but well-formed model in SMPL's pickle layout (not a human: a test fixture)."""
    rng = np.random.default_rng(seed)
    v_template = rng.uniform([-0.4, -1.0, -0.15], [0.4, 0.8, 0.15], (V, 3))
    J = np.zeros((24, V))
    for j in range(24):
        J[j, rng.choice(V, 20, replace=False)] = 1 / 20
    weights = np.zeros((V, 24))
    for v in range(V):
        joints = rng.choice(24, rng.integers(1, 5), replace=False)
        weights[v, joints] = rng.uniform(0.1, 1.0, len(joints))
    weights /= weights.sum(axis=1, keepdims=True)
    kintree = np.stack([np.where(SMPL_PARENTS < 0, 2**32 - 1, SMPL_PARENTS), np.arange(24)]).astype(np.int64)
    return {
        "v_template": v_template,
        "f": rng.integers(0, V, (200, 3)).astype(np.uint32),
        "weights": weights,
        "J_regressor": scipy.sparse.csc_matrix(J),
        "kintree_table": kintree,
        "shapedirs": rng.normal(0, 0.01, (V, 3, 10)),
        "posedirs": rng.normal(0, 0.002, (V, 3, 207)),
    }


@pytest.fixture(scope="module")
def smpl_pkl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(synthetic_smpl_dict(), protocol=2))
    return path


def random_pose(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "betas": torch.randn(n, 10, generator=g),
        "global_orient": torch.randn(n, 3, generator=g),
        "body_pose": 0.5 * torch.randn(n, 69, generator=g),
        "transl": torch.randn(n, 3, generator=g),
    }


def test_our_skinning_matches_smplx(smpl_pkl: Path) -> None:
    smplx = pytest.importorskip("smplx")
    reference = smplx.SMPL(model_path=str(smpl_pkl), num_betas=10)
    ours = BodyModel(load_body_file(smpl_pkl))
    p = random_pose(8, seed=1)
    with torch.no_grad():
        ref = reference(**p)
        out = ours(**p)
    assert out.vertices is not None
    assert torch.allclose(out.vertices, ref.vertices, atol=1e-5)
    assert torch.allclose(out.joints, ref.joints[:, :24], atol=1e-5)


def test_zero_pose_reproduces_template_and_joints_only_agrees(smpl_pkl: Path) -> None:
    data = load_body_file(smpl_pkl)
    model = BodyModel(data, dtype=torch.float64)
    zeros = {"betas": torch.zeros(1, 10, dtype=torch.float64), "global_orient": torch.zeros(1, 3, dtype=torch.float64),
             "body_pose": torch.zeros(1, 69, dtype=torch.float64)}  # fmt: skip
    out = model(**zeros)
    assert out.vertices is not None
    assert np.allclose(out.vertices[0].numpy(), data.v_template, atol=1e-12)
    assert np.allclose(out.joints[0].numpy(), data.J_regressor @ data.v_template, atol=1e-12)
    p = {k: v.double() for k, v in random_pose(4, seed=2).items()}
    assert torch.allclose(model.joints_only(**p).joints, model(**p).joints, atol=1e-10)


@pytest.mark.slow
def test_keypoints_fast_path_matches_full_path(smpl_pkl: Path, tmp_path: Path) -> None:
    data = load_body_file(smpl_pkl)
    rng = np.random.default_rng(5)
    coco = np.zeros((17, V))
    for k in range(17):
        coco[k, rng.choice(V, 3, replace=False)] = [0.5, 0.3, 0.2]
    out_path = tmp_path / "with_coco.npz"
    save_body_npz(out_path, type(data)(**{**data.__dict__, "coco17_regressor": coco}))
    model = BodyModel(load_body_file(out_path), dtype=torch.float64)
    p = {k: v.double() for k, v in random_pose(3, seed=3).items()}
    full, fast = model(**p), model.joints_only(**p)
    assert full.keypoints is not None and fast.keypoints is not None and full.vertices is not None
    assert torch.allclose(fast.keypoints, full.keypoints, atol=1e-10)
    expected = torch.einsum("kv,nvc->nkc", torch.as_tensor(coco), full.vertices)
    assert torch.allclose(full.keypoints, expected, atol=1e-10)
    # A subset of the vertices (a display mesh's) skinned with the fast path's transforms: the full path's
    # rows, pose-corrective shapes included (this fixture has them: they move its vertices by millimetres).
    assert model.has_posedirs
    index = torch.as_tensor(rng.choice(V, 40, replace=False))
    rotations = axis_angle_to_matrix(torch.cat([p["global_orient"][:, None], p["body_pose"].reshape(3, 23, 3)], 1))
    assert fast.transforms is not None
    part = model.skin_vertices(p["betas"], rotations, fast.transforms, index)
    assert torch.allclose(part, full.vertices[:, index] - p["transl"][:, None], atol=1e-10)


@pytest.mark.slow
def test_npz_round_trip_and_converter(smpl_pkl: Path, tmp_path: Path) -> None:
    from engine.body.__main__ import main

    out = tmp_path / "model.npz"
    assert main(["convert", str(smpl_pkl), str(out)]) == 0
    a, b = load_body_file(smpl_pkl), load_body_file(out)
    assert np.allclose(a.v_template, b.v_template, atol=1e-6) and np.array_equal(a.f, b.f)
    assert np.allclose(a.J_regressor, b.J_regressor, atol=1e-7) and np.array_equal(a.parents, b.parents)
    assert b.parents.tolist() == SMPL_PARENTS.tolist()


def test_rotation_helpers_agree() -> None:
    aa = torch.tensor([[0.0, 0.0, np.pi / 2], [1e-9, 0.0, 0.0], [0.3, -0.2, 0.9]], dtype=torch.float64)
    R = axis_angle_to_matrix(aa)
    assert torch.allclose(R[0], torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(R[1], torch.eye(3, dtype=torch.float64), atol=1e-8)
    assert torch.allclose(rotation_6d_to_matrix(matrix_to_rotation_6d(R)), R, atol=1e-12)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(3, 3, 3), atol=1e-12)


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("parents", [list(SMPL_PARENTS), [-1, 0, 1, 0, 2, 3, 3]], ids=["smpl", "depths-interleaved"])
def test_the_tree_posed_a_depth_at_a_time_is_the_tree_posed_joint_by_joint(parents: list[int]) -> None:
    """forward_kinematics poses all the joints of one depth in one product; each joint's world
    transform is still its parent's times its own local one (chained here joint by joint), for
    SMPL's tree and for one whose depths interleave in joint order."""
    from engine.body.lbs import forward_kinematics

    g = torch.Generator().manual_seed(5)
    n, count = 3, len(parents)
    rotations = axis_angle_to_matrix(torch.randn(n, count, 3, generator=g, dtype=torch.float64))
    rest = torch.randn(n, count, 3, generator=g, dtype=torch.float64)
    world = []
    for j in range(count):
        local = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
        local[:, :3, :3] = rotations[:, j]
        local[:, :3, 3] = rest[:, j] - (rest[:, parents[j]] if j else 0.0)
        world.append(local if j == 0 else world[parents[j]] @ local)
    posed = torch.stack(world, dim=1)
    joints, transforms = forward_kinematics(rotations, rest, parents)
    torch.testing.assert_close(joints, posed[:, :, :3, 3], rtol=0, atol=1e-12)
    # a rest vertex at a joint moves with that joint
    moved = (transforms[..., :3] @ rest[..., None])[..., 0] + transforms[..., 3]
    torch.testing.assert_close(moved, joints, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="joint 2's parent 3 does not come before it"):
        forward_kinematics(rotations[:, :4], rest[:, :4], [-1, 0, 3, 0])


def test_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.marker = marker
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": evil}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl.*refused to load (posix|os|nt)\.system"):
        load_body_file(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps({"x": eval}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"(__builtin__|builtins)\.eval"):
        load_body_file(path)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", [0, 2])
def test_chumpy_objects_load_as_plain_arrays(tmp_path: Path, protocol: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand-ins for chumpy's classes, pickled under chumpy's module names (chumpy is not installed).
    ch_module = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x: np.ndarray) -> None:
            self.x = x
            self.dterms = ()

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch_module.Ch = Ch
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch_module)
    raw = synthetic_smpl_dict(seed=4)
    raw["shapedirs"] = Ch(raw["shapedirs"])
    raw["posedirs"] = Ch(raw["posedirs"])
    path = tmp_path / "chumpy_model.pkl"
    path.write_bytes(pickle.dumps(raw, protocol=protocol))
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    monkeypatch.delitem(sys.modules, "chumpy")
    assert copyreg  # protocol 0 pickles use copyreg._reconstructor, which must be allowed
    data = load_body_file(path)
    assert isinstance(data.shapedirs, np.ndarray) and data.shapedirs.shape == (V, 3, 10)
    assert np.allclose(data.posedirs, synthetic_smpl_dict(seed=4)["posedirs"])


@pytest.mark.slow
def test_bad_model_files_name_the_field(tmp_path: Path) -> None:
    raw = synthetic_smpl_dict()
    del raw["weights"]
    path = tmp_path / "noweights.pkl"
    path.write_bytes(pickle.dumps(raw, protocol=2))
    with pytest.raises(BodyModelError, match=r"noweights\.pkl: missing field\(s\) weights"):
        load_body_file(path)
    raw = synthetic_smpl_dict()
    raw["J_regressor"] = np.zeros((23, V))
    path.write_bytes(pickle.dumps(raw, protocol=2))
    with pytest.raises(BodyModelError, match=r"J_regressor has shape \(23, 6890\), expected \(24, 6890\)"):
        load_body_file(path)
    with pytest.raises(BodyModelError, match="not found"):
        load_body_file(tmp_path / "missing.npz")
    (tmp_path / "model.obj").write_text("v 0 0 0")
    with pytest.raises(BodyModelError, match="unknown type '.obj'"):
        load_body_file(tmp_path / "model.obj")


@pytest.mark.slow
def test_body_model_exports_to_onnx_and_runs_in_onnxruntime(smpl_pkl: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = BodyModel(load_body_file(smpl_pkl))

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = model

        def forward(self, betas, global_orient, body_pose, transl):
            out = self.body(betas, global_orient, body_pose, transl)
            return out.vertices, out.joints

    names = ["betas", "global_orient", "body_pose", "transl"]
    example = tuple(torch.zeros(2, n) for n in (10, 3, 69, 3))
    path = tmp_path / "body.onnx"
    torch.onnx.export(Wrapper(), example, str(path), input_names=names, output_names=["vertices", "joints"],
                      dynamic_axes={n: {0: "batch"} for n in names}, dynamo=False)  # fmt: skip
    p = random_pose(3, seed=7)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    vertices, joints = session.run(None, {n: p[n].numpy() for n in names})
    with torch.no_grad():
        ref = model(**p)
    assert ref.vertices is not None
    assert np.abs(vertices - ref.vertices.numpy()).max() < 1e-5
    assert np.abs(joints - ref.joints.numpy()).max() < 1e-5


@pytest.mark.slow
def test_an_smpl_file_gets_the_coco17_keypoints_heatformer_needs(smpl_pkl: Path, tmp_path: Path) -> None:
    """SMPL files have no coco17_regressor: for SMPL's topology it is made as for the bundled body
    (nose, eyes, ears on SMPL's vertices; body keypoints at the file's own joints), kept by convert."""
    from engine.body.__main__ import main
    from engine.body.model import DEFAULT_BODY
    from engine.body.model_file import COCO_FROM_SMPL_JOINTS, SMPL_FACE_VERTICES, smpl_coco17_regressor

    data = load_body_file(smpl_pkl)
    assert data.coco17_regressor is not None and data.coco17_regressor.shape == (17, V)
    assert [int(np.argmax(row)) for row in data.coco17_regressor[:5]] == list(SMPL_FACE_VERTICES)
    assert np.allclose(data.coco17_regressor[5:], data.J_regressor[list(COCO_FROM_SMPL_JOINTS)])
    bundled = load_body_file(DEFAULT_BODY)  # the bundled body's regressor was built by the same rule
    assert np.allclose(smpl_coco17_regressor(bundled.J_regressor), bundled.coco17_regressor)
    assert main(["convert", str(smpl_pkl), str(tmp_path / "mine.npz")]) == 0
    assert BodyModel.from_file(tmp_path / "mine.npz").has_keypoints
