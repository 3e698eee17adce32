"""The AMASS .npz and BVH exports: read back (plain numpy, our own BVH parser, Blender's importer)
and posed again, they give the Motion's joints."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from engine.body import BodyModel
from recording.exports import amass, bvh
from recording.motion import Motion, MotionError

T, FPS, GAP = 40, 30.0, slice(10, 13)  # frames 10-12 invalid
Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # world (x, y, z) -> (x, z, -y)


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.from_file()


@pytest.fixture(scope="module")
def motion(body: BodyModel) -> Motion:
    """A person walking a curve, turning 200 degrees, every joint swinging (up to ~70 degrees),
    joints from the body model's own (torch) skinning path; frames 10-12 have no body."""
    rng = np.random.default_rng(7)
    t = np.arange(T) / FPS
    amp, phase = rng.uniform(0.1, 0.6, (23, 3)), rng.uniform(0, 2 * np.pi, (23, 3))
    pose = amp * np.sin(2 * np.pi * 0.7 * t[:, None, None] + phase)
    pose[:, 3] = [[np.radians(100) * np.sin(np.pi * k / (T - 1)), 0.1, 0.0] for k in range(T)]  # left knee bends to 100 degrees
    yaw = Rotation.from_euler("z", np.linspace(0.0, 200.0, T), degrees=True)
    lean = Rotation.from_euler("x", 25.0 * np.sin(3 * t), degrees=True)
    orient = (yaw * lean * Rotation.from_euler("x", 90.0, degrees=True)).as_rotvec()
    transl = np.stack([np.cos(t), 0.8 * np.sin(t), 0.05 * np.sin(5 * t)], axis=1)
    betas = rng.normal(0.0, 0.8, 10)
    with torch.no_grad():
        joints = body.joints_only(*(torch.as_tensor(a).float() for a in (np.repeat(betas[None], T, 0), orient, pose, transl)))
    joints = joints.joints.double().numpy()
    valid = np.ones(T, bool)
    valid[GAP] = False
    for a in (orient, pose, transl, joints):
        a[GAP] = np.nan
    return Motion(3, t + 12.5, valid, orient, pose, transl, betas, joints)


def mm(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=-1).max() * 1000.0)


# --- AMASS -------------------------------------------------------------------------------------


def amass_joints(body: BodyModel, data: dict) -> np.ndarray:
    poses, n = data["poses"], len(data["poses"])
    args = (np.repeat(data["betas"][None], n, 0), poses[:, :3], poses[:, 3:], data["trans"])
    with torch.no_grad():
        return body.joints_only(*(torch.as_tensor(a).float() for a in args)).joints.double().numpy()


def test_amass_read_back_poses_the_motions_joints(tmp_path: Path, body: BodyModel, motion: Motion) -> None:
    seen: list[float] = []
    path = amass.write(motion, tmp_path / "p3.amass", progress=seen.append)  # any suffix is kept
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    assert data["poses"].shape == (T, 72) and data["trans"].shape == (T, 3) and data["betas"].shape == (10,)
    assert float(data["mocap_framerate"]) == pytest.approx(FPS) and str(data["gender"]) == "neutral"
    assert float(data["start_time"]) == pytest.approx(12.5) and seen[-1] == 1.0
    np.testing.assert_array_equal(data["valid"], motion.valid)
    rebuilt = amass_joints(body, data)
    ok = motion.valid
    assert mm(rebuilt[ok], motion.joints[ok]) < 1.0
    assert mm(data["joints"][ok], motion.joints[ok]) < 1.0
    # The gap is interpolated: the middle frame's translation halfway between its neighbours, joints posed from it.
    np.testing.assert_allclose(data["trans"][11], (motion.transl[9] + motion.transl[13]) / 2, atol=1e-9)
    assert mm(rebuilt[GAP], data["joints"][GAP]) < 1.0
    assert np.isfinite(data["poses"]).all()


def test_amass_y_up_is_the_same_motion_turned(tmp_path: Path, body: BodyModel, motion: Motion) -> None:
    with np.load(amass.write(motion, tmp_path / "y.npz", up="y")) as f:
        data = {k: f[k] for k in f.files}
    ok = motion.valid
    assert mm(amass_joints(body, data)[ok], motion.joints[ok] @ Y_UP.T) < 1.0


def test_amass_uneven_times_are_resampled_to_the_frame_rate(tmp_path: Path, motion: Motion) -> None:
    keep = np.r_[0:20, 22:T]  # frames 20 and 21 were dropped
    m = Motion(motion.person, motion.times[keep], motion.valid[keep], motion.global_orient[keep], motion.body_pose[keep],
               motion.transl[keep], motion.betas, motion.joints[keep])  # fmt: skip
    with np.load(amass.write(m, tmp_path / "r.npz")) as f:
        assert len(f["poses"]) == T and not f["valid"][20] and f["valid"][22]
        np.testing.assert_allclose(f["trans"][20], motion.transl[19] + (motion.transl[22] - motion.transl[19]) / 3, atol=1e-9)


def test_exports_refuse_a_motion_without_a_valid_frame(tmp_path: Path, motion: Motion) -> None:
    empty = Motion(1, motion.times, np.zeros(T, bool), motion.global_orient, motion.body_pose, motion.transl,
                   motion.betas, motion.joints)  # fmt: skip
    for module in (amass, bvh):
        with pytest.raises(MotionError, match="person 1"):
            module.write(empty, tmp_path / "x")
    with pytest.raises(ValueError, match="up"):
        bvh.write(motion, tmp_path / "x.bvh", up="x")


# --- BVH: our own parser ---------------------------------------------------------------------


def parse_bvh(path: Path) -> tuple[list[str], list[int], np.ndarray, list[list[str]], np.ndarray, float]:
    """names, parents, offsets [J, 3], channels per joint, frames [F, C], frame time."""
    tokens = path.read_text().split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    i, pending = 1, -1
    while tokens[i] != "MOTION":
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            names.append(tokens[i + 1])
            parents.append(stack[-1] if stack else -1)
            pending, i = len(names) - 1, i + 2
        elif tok == "End":  # End Site { OFFSET x y z }
            i += 8
        elif tok == "{":
            stack.append(pending)
            i += 1
        elif tok == "}":
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            offsets.append([float(x) for x in tokens[i + 1 : i + 4]])
            i += 4
        elif tok == "CHANNELS":
            n = int(tokens[i + 1])
            channels.append(tokens[i + 2 : i + 2 + n])
            i += 2 + n
        else:
            raise AssertionError(f"unexpected token {tok!r}")
    assert tokens[i + 1] == "Frames:" and tokens[i + 3 : i + 5] == ["Frame", "Time:"]
    n_frames, frame_time = int(tokens[i + 2]), float(tokens[i + 5])
    data = np.array(tokens[i + 6 :], float).reshape(n_frames, -1)
    return names, parents, np.array(offsets), channels, data, frame_time


def bvh_joints(path: Path) -> tuple[np.ndarray, list[str], np.ndarray, float]:
    """Joint positions [F, J, 3] by forward kinematics of the parsed file (channels read by name),
    names, offsets [J, 3] (joints in SMPL order), frame time."""
    names, parents, offsets, channels, data, frame_time = parse_bvh(path)
    col, pos, rot = 0, [], []
    for ch in channels:
        values = dict(zip(ch, data[:, col : col + len(ch)].T, strict=True))
        col += len(ch)
        pos.append(np.stack([values[f"{a}position"] for a in "XYZ"], 1) if "Xposition" in values else None)
        order = "".join(c[0] for c in ch if c.endswith("rotation"))
        rot.append(Rotation.from_euler(order, np.stack([values[f"{a}rotation"] for a in order], 1), degrees=True).as_matrix())
    world_rot, world_pos = [rot[0]], [offsets[0] + pos[0]]
    for j in range(1, len(names)):
        p = parents[j]
        world_rot.append(world_rot[p] @ rot[j])
        world_pos.append(world_pos[p] + world_rot[p] @ offsets[j])
    order = [names.index(n) for n in bvh.JOINT_NAMES]
    return np.stack(world_pos, 1)[:, order], names, offsets[order], frame_time


@pytest.mark.parametrize("up", ["z", "y"])
def test_bvh_read_back_by_forward_kinematics(tmp_path: Path, body: BodyModel, motion: Motion, up: str) -> None:
    path = bvh.write(motion, tmp_path / f"p3_{up}.bvh", up=up)
    joints, names, offsets, frame_time = bvh_joints(path)
    channels = parse_bvh(path)[3]
    assert sorted(names) == sorted(bvh.JOINT_NAMES) and len(joints) == T and frame_time == pytest.approx(1 / FPS, abs=1e-9)
    world = joints @ (Y_UP if up == "y" else np.eye(3))  # back to our Z-up world
    ok = motion.valid
    assert mm(world[ok], motion.joints[ok]) < 1.0
    for f in range(GAP.start, GAP.stop):  # the gap holds the last valid frame
        assert mm(world[f], motion.joints[GAP.start - 1]) < 1.0
    # Euler orders: heading first, but the bent knee's flexion (about X) is not the middle angle (gimbal lock at 90).
    heading = "ZXY" if up == "z" else "YXZ"
    left_knee = "".join(c[0] for c in channels[names.index("left_knee")])
    assert channels[names.index("right_knee")] == [f"{a}rotation" for a in heading]
    assert left_knee[1] != "X" and left_knee[0] == heading[0]
    # The person's own bone lengths, and an upright rest pose (head above pelvis along the file's up axis).
    rest = amass.rest_joints(body, motion.betas)
    lengths = np.linalg.norm(rest[1:] - rest[body.parents[1:]], axis=1)
    np.testing.assert_allclose(np.linalg.norm(offsets[1:], axis=1), lengths, atol=2e-6)
    height = sum(offsets[j] for j in (3, 6, 9, 12, 15))
    assert height[1 if up == "y" else 2] > 0.4


def test_bvh_uneven_times_hold_the_nearest_frame(tmp_path: Path, motion: Motion) -> None:
    keep = np.r_[0:20, 22:T]
    m = Motion(motion.person, motion.times[keep], motion.valid[keep], motion.global_orient[keep], motion.body_pose[keep],
               motion.transl[keep], motion.betas, motion.joints[keep])  # fmt: skip
    joints, *_ = bvh_joints(bvh.write(m, tmp_path / "r.bvh"))
    assert len(joints) == T
    assert mm(joints[20], motion.joints[19]) < 1.0 and mm(joints[21], motion.joints[22]) < 1.0


# --- BVH: Blender's importer -------------------------------------------------------------------

BLENDER_SCRIPT = """
import builtins, json, sys
import bpy
import io_anim_bvh.import_bvh as import_bvh

# Debian's Blender 3.4 runs on Python 3.11, which dropped open(..., "rU") that its BVH importer uses.
import_bvh.open = lambda file, mode="r", *args, **kw: builtins.open(file, mode.replace("U", ""), *args, **kw)
out, jobs = sys.argv[sys.argv.index("--") + 1], json.loads(sys.argv[sys.argv.index("--") + 2])
result = {}
for name, path, forward, up, frames in jobs:
    bpy.ops.import_anim.bvh(filepath=path, axis_forward=forward, axis_up=up, global_scale=1.0, frame_start=1,
                            use_fps_scale=False, rotate_mode="NATIVE")
    arm = bpy.context.view_layer.objects.active
    got = {}
    for f in frames:
        bpy.context.scene.frame_set(f + 1)
        got[f] = {pb.name: list(arm.matrix_world @ pb.head) for pb in arm.pose.bones}
    result[name] = got
json.dump(result, open(out, "w"))
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed (blender not on PATH)")
def blender_heads(tmp_path: Path, jobs: list) -> dict:
    """BLENDER_SCRIPT run by a real Blender on ``jobs``: the bone heads it read back."""
    script, out = tmp_path / "check.py", tmp_path / "heads.json"
    script.write_text(BLENDER_SCRIPT)
    run = subprocess.run(["blender", "-b", "--factory-startup", "--python-exit-code", "1", "--python", str(script), "--",
                          str(out), json.dumps(jobs)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return json.loads(out.read_text())


def test_bvh_in_blender_poses_the_motions_joints(tmp_path: Path, motion: Motion) -> None:
    frames = [0, 7, 11, 23, 39]
    jobs = [["z", str(bvh.write(motion, tmp_path / "z.bvh", up="z")), "Y", "Z", frames],
            ["y", str(bvh.write(motion, tmp_path / "y.bvh", up="y")), "-Z", "Y", frames]]  # fmt: skip
    heads = blender_heads(tmp_path, jobs)
    expected = motion.joints.copy()
    expected[GAP] = motion.joints[GAP.start - 1]
    for up in ("z", "y"):
        for f in frames:
            got = np.array([heads[up][str(f)][name] for name in bvh.JOINT_NAMES])
            assert mm(got, expected[f]) < 10.0, (up, f, mm(got, expected[f]))
