"""recording.exports.glb: the file is valid glTF 2.0 (checked the way a validator does), its skeleton
and skin reproduce the motion's joints and our own skinning, in our reader and in Blender's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pygltflib as gl
import pytest
import torch
from test_streaming import quaternion_matrix

from engine.body import BodyModel, lbs
from engine.body.model_file import SMPL_PARENTS
from recording.exports.glb import (
    SMPL_JOINT_NAMES,
    GlbExportError,
    axis_angle_to_quat,
    held_frames,
    quat_multiply,
    top4_weights,
    write,
)
from recording.motion import Motion

REPO = Path(__file__).resolve().parents[1]
FPS = 30.0
_SIZE = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_DTYPE = {gl.FLOAT: np.float32, gl.UNSIGNED_BYTE: np.uint8, gl.UNSIGNED_SHORT: np.uint16, gl.UNSIGNED_INT: np.uint32}
INVALID = (0, 17, 18)  # frames without a world body in the synthetic motion


def _quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    v, w = q[..., :3], q[..., 3:]
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-12) * 2 * np.arctan2(norm, w)


def synthetic_motion(body: BodyModel, frames: int = 40) -> Motion:
    """A person turning, walking and waving, their body model joints, frames INVALID missing."""
    t = np.arange(frames) / FPS
    yaw = 0.8 * np.sin(t * 2.0)
    q_yaw = np.stack([np.zeros_like(yaw), np.zeros_like(yaw), np.sin(yaw / 2), np.cos(yaw / 2)], axis=1)
    q_up = np.array([np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)])  # SMPL's Y up -> our Z up
    orient = _quat_to_axis_angle(quat_multiply(q_yaw, q_up))
    pose = np.zeros((frames, 23, 3))
    phase = np.sin(t * 4.0)
    pose[:, 0, 0], pose[:, 1, 0] = 0.5 * phase, -0.5 * phase  # hips
    pose[:, 3, 0], pose[:, 4, 0] = 0.6 * (1 + phase), 0.6 * (1 - phase)  # knees
    pose[:, 15, 2], pose[:, 17, 1] = -1.0 + 0.6 * phase, -1.2 * (1 + phase)  # left shoulder, elbow
    pose[:, 19, 0] = 0.7 * phase  # left wrist
    pose[:, 16, 2], pose[:, 11, 1] = 0.9, 0.4 * phase  # right shoulder, neck
    transl = np.stack([0.6 * t, 0.2 * np.sin(t), 0.9 + 0.03 * phase], axis=1)
    betas = np.linspace(-1.0, 1.0, 10)
    f32 = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        joints = body(f32(np.tile(betas, (frames, 1))), f32(orient), f32(pose), f32(transl)).joints.double().numpy()
    valid = np.ones(frames, bool)
    valid[list(INVALID)] = False
    for a in (orient, pose, transl, joints):
        a[~valid] = np.nan
    return Motion(3, t + 12.5, valid, orient, pose, transl, betas, joints)


@pytest.fixture(scope="module")
def motion(body: BodyModel) -> Motion:
    return synthetic_motion(body)


@pytest.fixture(scope="module", params=["y", "z"])
def exported(request: pytest.FixtureRequest, motion: Motion, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    path = tmp_path_factory.mktemp("glb") / f"person_up_{request.param}.glb"
    steps: list[float] = []
    assert write(motion, path, up=request.param, progress=steps.append) == path
    assert steps[-1] == 1.0 and steps == sorted(steps)
    return request.param, path


# --- a validator's checks --------------------------------------------------------------------------


def read(doc: gl.GLTF2, accessor: int) -> np.ndarray:
    a = doc.accessors[accessor]
    view = doc.bufferViews[a.bufferView]
    blob = doc.binary_blob()
    dtype = np.dtype(_DTYPE[a.componentType])
    n = _SIZE[a.type]
    start = view.byteOffset + a.byteOffset
    assert a.byteOffset % dtype.itemsize == 0 and start % 4 == 0
    assert a.byteOffset + a.count * n * dtype.itemsize <= view.byteLength, f"accessor {accessor} overruns its view"
    return np.frombuffer(blob, dtype, a.count * n, start).reshape(a.count, n)


def test_buffer_views_and_accessors_are_consistent(exported: tuple[str, Path]) -> None:
    doc = gl.GLTF2().load(str(exported[1]))
    blob = doc.binary_blob()
    assert len(doc.buffers) == 1 and doc.buffers[0].byteLength == len(blob) and len(blob) % 4 == 0
    for view in doc.bufferViews:
        assert view.byteOffset % 4 == 0 and view.byteOffset + view.byteLength <= len(blob)
    for i, a in enumerate(doc.accessors):
        data = read(doc, i).astype(np.float64)
        assert np.isfinite(data).all(), f"accessor {i} has NaN / inf"
        if a.min or a.max:  # present bounds must be the data's, exactly
            np.testing.assert_array_equal(a.min, data.min(axis=0))
            np.testing.assert_array_equal(a.max, data.max(axis=0))


def test_mesh_is_a_valid_skinned_body(exported: tuple[str, Path], body: BodyModel) -> None:
    doc = gl.GLTF2().load(str(exported[1]))
    prim = doc.meshes[0].primitives[0]
    att = prim.attributes
    assert doc.accessors[att.POSITION].min and doc.accessors[att.POSITION].max  # required by the spec
    pos, normals = read(doc, att.POSITION), read(doc, att.NORMAL)
    joints, weights, faces = read(doc, att.JOINTS_0), read(doc, att.WEIGHTS_0), read(doc, prim.indices)
    assert len(pos) == len(normals) == len(joints) == len(weights) == 6890
    assert faces.size == body.faces.size and faces.max() < len(pos)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    assert (weights >= 0).all() and (joints < 24).all()
    np.testing.assert_allclose(weights.sum(axis=1, dtype=np.float64), 1.0, atol=2e-7)
    # Normals point out of the body: the chest's front vertex faces +Z (SMPL's forward, the glTF frame's front).
    chest = np.argmax(pos[:, 2] * (np.abs(pos[:, 0]) < 0.05) * (np.abs(pos[:, 1] - 0.2) < 0.1))
    assert normals[chest, 2] > 0.7


def test_top4_weights_keep_the_largest_and_sum_to_one() -> None:
    w = np.array([[0.5, 0.2, 0.1, 0.1, 0.1] + [0.0] * 19, [1.0] + [0.0] * 23])
    idx, w4 = top4_weights(w)
    assert set(idx[0]) <= {0, 1, 2, 3, 4} and idx[0][0] == 0 and w4[0][0] == pytest.approx(0.5 / 0.9, abs=1e-6)
    np.testing.assert_array_equal(w4[1], [1, 0, 0, 0])
    np.testing.assert_allclose(w4.sum(axis=1), 1.0, atol=1e-7)


def _node_locals(doc: gl.GLTF2, frame: int | None) -> list[np.ndarray]:
    """Every node's local 4x4 matrix at its rest (frame None) or at an animation key."""
    trs = [[np.array(n.translation or [0.0, 0, 0]), np.array(n.rotation or [0.0, 0, 0, 1])] for n in doc.nodes]
    if frame is not None:
        anim = doc.animations[0]
        for ch in anim.channels:
            value = read(doc, anim.samplers[ch.sampler].output)[frame].astype(np.float64)
            trs[ch.target.node][0 if ch.target.path == "translation" else 1] = value
    out = []
    for t, q in trs:
        m = np.eye(4)
        m[:3, :3] = quaternion_matrix(q)
        m[:3, 3] = t
        out.append(m)
    return out


def node_globals(doc: gl.GLTF2, frame: int | None) -> list[np.ndarray]:
    local = _node_locals(doc, frame)
    parent = {c: i for i, n in enumerate(doc.nodes) for c in n.children}
    out: dict[int, np.ndarray] = {}

    def world(i: int) -> np.ndarray:
        if i not in out:
            out[i] = (world(parent[i]) if i in parent else np.eye(4)) @ local[i]
        return out[i]

    return [world(i) for i in range(len(doc.nodes))]


def test_skeleton_is_smpl_with_its_bind_pose(exported: tuple[str, Path]) -> None:
    doc = gl.GLTF2().load(str(exported[1]))
    skin = doc.skins[0]
    assert [doc.nodes[j].name for j in skin.joints] == list(SMPL_JOINT_NAMES)
    for j, p in enumerate(SMPL_PARENTS[1:], start=1):
        assert skin.joints[j] in doc.nodes[skin.joints[p]].children
    rest = node_globals(doc, None)
    ibm = read(doc, skin.inverseBindMatrices).reshape(24, 4, 4).transpose(0, 2, 1)  # column-major
    for j, node in enumerate(skin.joints):  # the rest pose is the bind pose
        np.testing.assert_allclose(rest[node] @ ibm[j], np.eye(4), atol=1e-5)
    scene_roots = doc.scenes[0].nodes
    assert skin.skeleton in scene_roots and doc.nodes[scene_roots[0]].skin == 0


def test_animation_reproduces_the_motion_joints(exported: tuple[str, Path], motion: Motion) -> None:
    doc = gl.GLTF2().load(str(exported[1]))
    anim = doc.animations[0]
    assert len(anim.channels) == 25 and {s.interpolation for s in anim.samplers} == {"LINEAR"}
    times = read(doc, anim.samplers[0].input)[:, 0]
    np.testing.assert_allclose(times, motion.times - motion.times[0], atol=1e-5)
    assert doc.asset.extras["start_time_s"] == pytest.approx(12.5)
    for s in anim.samplers[:24]:
        quats = read(doc, s.output).astype(np.float64)
        np.testing.assert_allclose(np.linalg.norm(quats, axis=1), 1.0, atol=1e-6)
        assert ((quats[1:] * quats[:-1]).sum(axis=1) > 0).all()  # consecutive keys in one hemisphere
    gltf_to_world = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # glTF (Y up) -> our world (Z up)
    shown = np.array([1, 1, 2, 16, 16, 19]), np.array([0, 1, 2, 17, 18, 19])  # held poses and valid ones
    for source, frame in zip(*shown, strict=True):
        g = node_globals(doc, frame)
        got = np.array([gltf_to_world @ g[n][:3, 3] for n in doc.skins[0].joints])
        np.testing.assert_allclose(got, motion.joints[source], atol=1e-5)


def test_held_frames_fill_gaps_and_drop_repeated_times(motion: Motion) -> None:
    m = Motion(1, np.array([0.0, 0.1, 0.1, 0.2, 0.15, 0.3]), np.array([False, True, True, False, True, True]),
               *(np.zeros((6, *s)) for s in ((3,), (23, 3), (3,))), np.zeros(10), np.zeros((6, 24, 3)))  # fmt: skip
    keep, source = held_frames(m)
    np.testing.assert_array_equal(keep, [0, 1, 3, 5])
    np.testing.assert_array_equal(source, [1, 1, 1, 5])


def test_bad_requests_say_what_is_wrong(motion: Motion, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="up must be"):
        write(motion, tmp_path / "a.glb", up="x")
    empty = Motion(1, motion.times, np.zeros(len(motion), bool), motion.global_orient, motion.body_pose, motion.transl,
                   motion.betas, motion.joints)  # fmt: skip
    with pytest.raises(GlbExportError, match="person 1 has no frame"):
        write(empty, tmp_path / "b.glb")
    with pytest.raises(GlbExportError, match="cannot write"):
        write(motion, tmp_path / "missing" / "c.glb")


def test_axis_angle_to_quat_known_values() -> None:
    q = axis_angle_to_quat(np.array([[0.0, 0, np.pi / 2], [0, 0, 0]]))
    np.testing.assert_allclose(q, [[0, 0, np.sqrt(0.5), np.sqrt(0.5)], [0, 0, 0, 1]], atol=1e-12)


def test_ten_minutes_export_fast_and_small(motion: Motion, tmp_path: Path) -> None:
    reps = 18000 // len(motion)
    tile = lambda a: np.concatenate([a] * reps)  # noqa: E731
    times = np.arange(reps * len(motion)) / FPS
    long = Motion(1, times, tile(motion.valid), tile(motion.global_orient), tile(motion.body_pose), tile(motion.transl),
                  motion.betas, tile(motion.joints))  # fmt: skip
    start = time.perf_counter()
    path = write(long, tmp_path / "ten_minutes.glb")
    elapsed = time.perf_counter() - start
    size = path.stat().st_size
    print(f"10-minute export: {elapsed:.2f} s, {size / 1e6:.1f} MB")
    assert elapsed < 60.0
    assert size < 12e6  # 25 channels x 18,000 keys (~7.3 MB) + the mesh (~0.4 MB)
    doc = gl.GLTF2().load(str(path))
    assert doc.accessors[doc.animations[0].samplers[0].input].count == 18000


# --- Blender ---------------------------------------------------------------------------------------

_PROBE = """
import json, sys
sys.path.insert(0, {repo!r})
from tools.blender_render import import_glb, prepare_blender_python
prepare_blender_python()
import bpy
args = json.loads(sys.argv[sys.argv.index("--") + 1])
armature, mesh = import_glb(__import__("pathlib").Path(args["glb"]))
scene = bpy.context.scene
out = {{"fps": scene.render.fps, "rest": [list(mesh.matrix_world @ mesh.data.vertices[i].co) for i in args["vertices"]],
       "frames": {{}}}}
for f in args["frames"]:
    scene.frame_set(f)
    ev = mesh.evaluated_get(bpy.context.evaluated_depsgraph_get())
    me = ev.to_mesh()
    out["frames"][str(f)] = {{"joints": {{b.name: list(armature.matrix_world @ b.head) for b in armature.pose.bones}},
                             "vertices": [list(ev.matrix_world @ me.vertices[i].co) for i in args["vertices"]]}}
    ev.to_mesh_clear()
with open(args["out"], "w") as f:
    json.dump(out, f)
"""


def our_lbs(body: BodyModel, motion: Motion, frames: list[int]) -> np.ndarray:
    """Our own linear blend skinning (engine.body.lbs, no pose correctives) ``[F, V, 3]`` world."""
    f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        v = body.v_template + torch.einsum("vcb,b->vc", body.shapedirs, f32(motion.betas))
        rest = (body.J_regressor @ v)[None].repeat(len(frames), 1, 1)
        pose = np.concatenate([motion.global_orient[frames, None], motion.body_pose[frames]], axis=1)
        _, transforms = lbs.forward_kinematics(lbs.axis_angle_to_matrix(f32(pose)), rest, body.parents)
        verts = lbs.skin(v[None].repeat(len(frames), 1, 1), body.weights, transforms)
    return verts.double().numpy() + motion.transl[frames, None]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed (tools/system_deps.sh --tests)")
@pytest.mark.parametrize("up", ["y", "z"])
def test_blender_imports_joints_and_skinned_mesh(up: str, motion: Motion, body: BodyModel, tmp_path: Path) -> None:
    glb = write(motion, tmp_path / "person.glb", up=up)
    weights = body.weights.numpy()
    wrist = int(np.argmax(weights[:, 20]))  # the vertex most bound to the left wrist
    vertices = [wrist, int(np.argmax(weights[:, 10])), int(np.argmax(weights[:, 15])), 3000, 6000]
    frames = [1, 5, 12, 19, 30]
    probe = tmp_path / "probe.py"
    probe.write_text(_PROBE.format(repo=str(REPO)))
    args = json.dumps({"glb": str(glb), "frames": frames, "vertices": vertices, "out": str(tmp_path / "probe.json")})
    env = {**os.environ, "PYTHONNOUSERSITE": "1"}
    run = subprocess.run(["blender", "-b", "--factory-startup", "--python-exit-code", "1", "--python", str(probe), "--", args],
                         capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    got = json.loads((tmp_path / "probe.json").read_text())
    assert got["fps"] == 30
    rest = np.array(got["rest"])  # Blender keeps the vertex order: same distances between them as in ours
    ours_rest = body.v_template.double().numpy()[vertices] + body.shapedirs.double().numpy()[vertices] @ motion.betas
    dist = lambda p: np.linalg.norm(p[:, None] - p[None], axis=2)  # noqa: E731
    np.testing.assert_allclose(dist(rest), dist(ours_rest), atol=1e-4)
    source = held_frames(motion)[1]
    ours = our_lbs(body, motion, [int(source[f]) for f in frames])
    errors, reach = [], []
    for k, f in enumerate(frames):
        joints = np.array([got["frames"][str(f)]["joints"][n] for n in SMPL_JOINT_NAMES])
        errors.append(np.abs(joints - motion.joints[source[f]]).max())
        verts = np.array(got["frames"][str(f)]["vertices"])
        np.testing.assert_allclose(verts, ours[k, vertices], atol=0.01)
        reach.append(np.linalg.norm(verts[0] - joints[20]))
    assert max(errors) < 0.01, errors
    assert max(reach) < 0.15 and np.ptp(reach) < 0.01  # the wrist's vertex keeps its distance to the wrist
    moved = np.linalg.norm(np.array(got["frames"]["30"]["vertices"][0]) - got["frames"]["12"]["vertices"][0])
    assert moved > 0.1  # and the wave moved it


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
