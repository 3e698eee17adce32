"""glTF 2.0 binary (``.glb``) of one person's :class:`~recording.motion.Motion`: their skinned body
in rest pose with their shape, a 24-joint skeleton and one animation (Blender, three.js, Unity...).

Contents: one mesh (the full body-model mesh shaped by the person's betas, in rest pose: POSITION,
NORMAL, JOINTS_0 / WEIGHTS_0 = each vertex's 4 largest skinning weights renormalised, indices); a
skin whose 24 joint nodes carry SMPL's joint names and kinematic tree (inverse bind matrices: the
rest pose); one animation "motion" with a rotation channel per joint (quaternions x, y, z, w) and
the pelvis translation, LINEAR, times in seconds from the first frame (the motion's own start time
is in ``asset.extras``). Frames without a world body hold the previous valid pose (the first valid
one before it); frames whose time does not increase are left out (glTF needs increasing times).
Not exported: SMPL's pose-corrective blend shapes (posedirs): glTF skinning is linear blend skinning
only, and morph targets cannot be driven by joint rotations, so bent elbows and knees lose their
corrective bulges (the joints and the skinned surface otherwise match our own skinning).

Axes: glTF is Y up, so every file is Y up and viewers show the person upright. ``up`` chooses where
the turn from our world (Z up) lives: ``"y"`` (default) converts the data, ``(x, y, z) -> (x, z, -y)``
(the pelvis translation and rotation keys are Y-up values); ``"z"`` keeps the animation values in our
Z-up world under a root node ``z_up_world`` that turns -90 degrees about X (for tools that read the
keys and want our world). Both look the same in a viewer, and Blender (Z up) shows our world
coordinates in both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pygltflib as gl
from scipy.spatial.transform import Rotation

from core.errors import AppError
from core.types import SMPL_JOINT_NAMES
from engine.body.model_file import BodyModelData
from recording.exports.amass import Z_TO_Y  # our world (Z up) -> glTF (Y up)
from recording.motion import Motion

FORMAT_VERSION = 1
_Q_Z_TO_Y = np.array([-np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)])  # the same turn, x y z w (-90 deg about X)
_Q_Y_TO_Z = np.array([np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)])

Progress = Callable[[float], None]
"""Called with the fraction of the export done (0..1)."""


class GlbExportError(AppError):
    """A glTF export cannot be written (names the file and what is wrong)."""


def write(motion: Motion, path: str | Path, *, up: str = "y", progress: Progress | None = None,
          body: BodyModelData | None = None) -> Path:  # fmt: skip
    """Write ``motion`` as a ``.glb`` at ``path`` (see the module doc); ``body``: the body model
    (default: the bundled one). Returns the path."""
    path = Path(path)
    if up not in ("y", "z"):
        raise ValueError(f"up must be 'y' or 'z', not {up!r}")
    if not motion.valid.any():
        raise GlbExportError(f"glTF export {path}: person {motion.person} has no frame with a world body")
    body = body if body is not None else _default_body()
    report = progress or (lambda fraction: None)
    builder = _Builder()
    rest = _rest_body(body, motion.betas)
    report(0.1)
    mesh = _add_mesh(builder, rest, body.f)
    report(0.3)
    root, joints = _add_skeleton(builder, rest.joints, body.parents, up)
    binds = builder.add(_inverse_binds(rest.joints), "MAT4")
    builder.gltf.skins.append(gl.Skin(name="smpl", skeleton=root, joints=joints, inverseBindMatrices=binds))
    builder.gltf.nodes.append(gl.Node(name=f"person_{motion.person}_body", mesh=mesh, skin=0))
    builder.gltf.scenes.append(gl.Scene(name=f"person_{motion.person}", nodes=[len(builder.gltf.nodes) - 1, root]))
    _add_animation(builder, motion, rest.joints[0], joints, up)
    report(0.8)
    builder.finish(_asset_extras(motion, up))
    try:
        builder.gltf.save_binary(str(path))
    except OSError as exc:
        raise GlbExportError(f"glTF export {path}: cannot write ({exc})") from None
    report(1.0)
    return path


# --- the body --------------------------------------------------------------------------------------


class _Rest:
    """The shaped body in rest pose (SMPL frame, Y up): vertices ``[V, 3]``, joints ``[24, 3]``,
    normals ``[V, 3]``, 4 skinning joints ``[V, 4]`` and their weights ``[V, 4]`` per vertex."""

    def __init__(self, vertices: np.ndarray, joints: np.ndarray, normals: np.ndarray, idx: np.ndarray,
                 weights: np.ndarray) -> None:  # fmt: skip
        self.vertices, self.joints, self.normals, self.idx, self.weights = vertices, joints, normals, idx, weights


def _default_body() -> BodyModelData:
    from core.paths import DEFAULT_BODY
    from engine.body.model_file import load_body_file

    return load_body_file(DEFAULT_BODY)


def _rest_body(body: BodyModelData, betas: np.ndarray) -> _Rest:
    b = np.zeros(body.shapedirs.shape[-1])
    n = min(len(b), len(betas))
    b[:n] = np.nan_to_num(np.asarray(betas, float)[:n])
    vertices = body.v_template + body.shapedirs @ b
    joints = body.J_regressor @ vertices
    idx, weights = top4_weights(body.weights)
    return _Rest(vertices, joints, vertex_normals(vertices, body.f), idx, weights)


def top4_weights(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each vertex's 4 largest skinning weights ``[V, 24]`` -> joint indices ``[V, 4]`` (uint8) and
    weights ``[V, 4]`` (float32, renormalised to sum to 1 in float32; unused slots: joint 0, weight 0)."""
    idx = np.argsort(-weights, axis=1)[:, :4]
    w = np.clip(np.take_along_axis(weights, idx, axis=1), 0.0, None)
    w = w / w.sum(axis=1, keepdims=True)
    idx[w == 0] = 0
    w32 = w.astype(np.float32)
    w32[:, 0] = np.float32(1.0) - w32[:, 1:].sum(axis=1, dtype=np.float32)  # the largest takes the rounding
    return idx.astype(np.uint8), w32


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``[V, 3]`` of a triangle mesh."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    face_n = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_n)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.where(length > 0, normals / np.maximum(length, 1e-12), [0.0, 1.0, 0.0])


def _add_mesh(builder: _Builder, rest: _Rest, faces: np.ndarray) -> int:
    index_type = np.uint16 if len(rest.vertices) < 65535 else np.uint32
    attributes = gl.Attributes(
        POSITION=builder.add(rest.vertices.astype(np.float32), "VEC3", target=gl.ARRAY_BUFFER, bounds=True),
        NORMAL=builder.add(rest.normals.astype(np.float32), "VEC3", target=gl.ARRAY_BUFFER),
        JOINTS_0=builder.add(rest.idx, "VEC4", target=gl.ARRAY_BUFFER),
        WEIGHTS_0=builder.add(rest.weights, "VEC4", target=gl.ARRAY_BUFFER),
    )
    indices = builder.add(faces.reshape(-1).astype(index_type), "SCALAR", target=gl.ELEMENT_ARRAY_BUFFER)
    builder.gltf.meshes.append(gl.Mesh(name="body", primitives=[gl.Primitive(attributes=attributes, indices=indices)]))
    return len(builder.gltf.meshes) - 1


# --- the skeleton and its animation -------------------------------------------------------------------


def _add_skeleton(builder: _Builder, rest_joints: np.ndarray, parents: np.ndarray, up: str) -> tuple[int, list[int]]:
    """The joint nodes in rest pose (the bind pose); returns the scene root node and the joint nodes."""
    nodes = builder.gltf.nodes
    first = len(nodes)
    for j, name in enumerate(SMPL_JOINT_NAMES):
        offset = rest_joints[j] - (rest_joints[parents[j]] if j else 0.0)
        nodes.append(gl.Node(name=name, translation=[float(x) for x in offset]))
    for j in range(1, len(SMPL_JOINT_NAMES)):
        nodes[first + int(parents[j])].children.append(first + j)
    if up == "y":
        return first, list(range(first, first + 24))
    # Z-up values under a -90 deg turn about X: the pelvis's rest turn (+90) undoes it, so the rest pose stands.
    nodes[first].rotation = [float(x) for x in _Q_Y_TO_Z]
    nodes[first].translation = [float(x) for x in Z_TO_Y.T @ rest_joints[0]]
    nodes.append(gl.Node(name="z_up_world", rotation=[float(x) for x in _Q_Z_TO_Y], children=[first]))
    return len(nodes) - 1, list(range(first, first + 24))


def _inverse_binds(rest_joints: np.ndarray) -> np.ndarray:
    """``[24, 16]`` column-major inverse bind matrices: the bind pose is the rest pose, every joint
    unrotated at its rest position (the glTF frame is the body model's own Y-up frame)."""
    m = np.tile(np.eye(4), (len(rest_joints), 1, 1))
    m[:, :3, 3] = -rest_joints
    return m.transpose(0, 2, 1).reshape(-1, 16).astype(np.float32)


def held_frames(motion: Motion) -> np.ndarray:
    """The frames to write (time increasing) and, for each, the frame whose pose it shows ``[2, K]``:
    itself when valid, else the last valid one before it (the first valid one before any)."""
    keep = np.flatnonzero(np.concatenate([[True], motion.times[1:] > np.maximum.accumulate(motion.times)[:-1]]))
    valid = motion.valid[keep]
    last = np.maximum.accumulate(np.where(valid, np.arange(len(keep)), -1))
    last[last < 0] = int(np.argmax(valid))
    return np.stack([keep, keep[last]])


def _add_animation(builder: _Builder, motion: Motion, pelvis_rest: np.ndarray, joints: list[int], up: str) -> None:
    keep, source = held_frames(motion)
    times = (motion.times[keep] - motion.times[keep[0]]).astype(np.float32)
    quats = axis_angle_to_quat(np.concatenate([motion.global_orient[source, None], motion.body_pose[source]], axis=1))
    pelvis = pelvis_rest + motion.transl[source]
    if up == "y":
        quats[:, 0] = quat_multiply(_Q_Z_TO_Y, quats[:, 0])
        pelvis = pelvis @ Z_TO_Y.T
    quats = continuous(quats).transpose(1, 0, 2).astype(np.float32)  # [24, K, 4]
    t_acc = builder.add(times, "SCALAR", bounds=True)
    rotations = builder.add_many(quats, "VEC4")
    samplers = [gl.AnimationSampler(input=t_acc, output=acc, interpolation="LINEAR") for acc in rotations]
    samplers.append(gl.AnimationSampler(input=t_acc, output=builder.add(pelvis.astype(np.float32), "VEC3"),
                                        interpolation="LINEAR"))  # fmt: skip
    channels = [gl.AnimationChannel(sampler=j, target=gl.AnimationChannelTarget(node=joints[j], path="rotation"))
                for j in range(24)]  # fmt: skip
    channels.append(gl.AnimationChannel(sampler=24, target=gl.AnimationChannelTarget(node=joints[0], path="translation")))
    builder.gltf.animations.append(gl.Animation(name="motion", samplers=samplers, channels=channels))


def axis_angle_to_quat(axis_angle: np.ndarray) -> np.ndarray:
    """Axis-angle ``[..., 3]`` to unit quaternions ``[..., 4]`` (x, y, z, w)."""
    a = np.asarray(axis_angle, dtype=np.float64)
    return Rotation.from_rotvec(a.reshape(-1, 3)).as_quat().reshape(*a.shape[:-1], 4)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of quaternions ``[..., 4]`` (x, y, z, w): rotate by b, then a."""
    av, aw, bv, bw = a[..., :3], a[..., 3:], b[..., :3], b[..., 3:]
    return np.concatenate([aw * bv + bw * av + np.cross(av, bv), aw * bw - (av * bv).sum(-1, keepdims=True)], axis=-1)


def continuous(quats: np.ndarray) -> np.ndarray:
    """Quaternions ``[T, ...,  4]`` with signs flipped so that consecutive keys lie in the same
    hemisphere (interpolation then takes the short way)."""
    dots = (quats[1:] * quats[:-1]).sum(-1)
    signs = np.cumprod(np.concatenate([np.ones_like(dots[:1]), np.where(dots < 0, -1.0, 1.0)]), axis=0)
    return quats * signs[..., None]


def _asset_extras(motion: Motion, up: str) -> dict[str, object]:
    return {"format_version": FORMAT_VERSION, "person": motion.person, "start_time_s": float(motion.times[0]),
            "fps": motion.fps, "up": up, "betas": [float(b) for b in np.nan_to_num(motion.betas)],
            "pose_correctives": "not exported (glTF skinning is linear blend skinning only)"}  # fmt: skip


# --- the binary buffer ---------------------------------------------------------------------------------

_COMPONENT = {np.dtype(np.float32): gl.FLOAT, np.dtype(np.uint8): gl.UNSIGNED_BYTE,
              np.dtype(np.uint16): gl.UNSIGNED_SHORT, np.dtype(np.uint32): gl.UNSIGNED_INT}  # fmt: skip


class _Builder:
    """A GLTF2 document and its one binary buffer: every array is a 4-byte aligned buffer view."""

    def __init__(self) -> None:
        self.gltf = gl.GLTF2(asset=gl.Asset(generator="recording.exports.glb"))
        self.chunks: list[bytes] = []
        self.size = 0

    def _view(self, data: np.ndarray, target: int | None) -> int:
        raw = np.ascontiguousarray(data).tobytes()
        self.gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=self.size, byteLength=len(raw), target=target))
        pad = (-len(raw)) % 4
        self.chunks.append(raw + b"\0" * pad)
        self.size += len(raw) + pad
        return len(self.gltf.bufferViews) - 1

    def add(self, data: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        """An accessor of ``data`` ``[count, ...]`` (``kind``: SCALAR, VEC3, VEC4, MAT4); ``bounds``
        adds min / max (needed on POSITION and animation times)."""
        view = self._view(data, target)
        return self._accessor(data, kind, view, 0, bounds)

    def add_many(self, data: np.ndarray, kind: str) -> list[int]:
        """One buffer view of ``data`` ``[n, count, ...]`` and n accessors into it."""
        view = self._view(data, None)
        step = data[0].nbytes
        return [self._accessor(data[i], kind, view, i * step, False) for i in range(len(data))]

    def _accessor(self, data: np.ndarray, kind: str, view: int, offset: int, bounds: bool) -> int:
        flat = data.reshape(len(data), -1)
        accessor = gl.Accessor(bufferView=view, byteOffset=offset, componentType=_COMPONENT[data.dtype], count=len(data),
                               type=kind)  # fmt: skip
        if bounds:
            accessor.min = [float(x) for x in flat.min(axis=0)]
            accessor.max = [float(x) for x in flat.max(axis=0)]
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    def finish(self, extras: dict[str, object]) -> None:
        blob = b"".join(self.chunks)
        self.gltf.buffers.append(gl.Buffer(byteLength=len(blob)))
        self.gltf.set_binary_blob(blob)
        self.gltf.asset.extras = extras
        self.gltf.scene = 0
