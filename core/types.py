"""Core data types: plain dataclasses holding numpy arrays (no Qt).

Shapes follow DESIGN.md: keypoints are COCO-17, ``[17, 3]`` = (x px, y px, confidence).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from core.camera import Camera

COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip


# The 24 SMPL joints in SMPL's order (the exports and streams name them so).
SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)  # fmt: skip


def _other_side(name: str) -> str:
    return name.replace("left_", "#").replace("right_", "left_").replace("#", "right_")


# For each COCO-17 keypoint, the index of its left-right counterpart (itself for the nose).
COCO17_LEFT_RIGHT: tuple[int, ...] = tuple(COCO17_NAMES.index(_other_side(n)) for n in COCO17_NAMES)
# The same as an index (numpy, torch): ``keypoints[..., COCO17_MIRROR, :]`` has left and right exchanged.
COCO17_MIRROR: list[int] = list(COCO17_LEFT_RIGHT)

# Bones of the COCO-17 skeleton as index pairs, for drawing.
COCO17_BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),
    (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)  # fmt: skip


@dataclass(frozen=True)
class Frame:
    """One image from one camera.

    image: ``[H, W, 3]`` uint8, BGR (OpenCV order).
    timestamp: monotonic capture time in seconds; index: the source's frame index.
    """

    camera: str
    image: np.ndarray
    timestamp: float
    index: int


@dataclass(frozen=True)
class FrameSet:
    """Frames from all cameras that belong to the same instant.

    frames: by camera name, in the configured camera order.
    reference_time: the set's time (median of the frame timestamps), seconds.
    skew: largest minus smallest frame timestamp in the set, seconds.
    decode_ms: time spent reading/decoding the frames of this set.
    """

    frames: dict[str, Frame]
    reference_time: float
    index: int
    decode_ms: float = 0.0

    @property
    def skew(self) -> float:
        times = [f.timestamp for f in self.frames.values()]
        return max(times) - min(times) if times else 0.0

    @property
    def cameras(self) -> list[str]:
        return list(self.frames)


@dataclass(frozen=True)
class Keypoints2D:
    """COCO-17 keypoints of the subject in one view.

    points: ``[17, 3]`` float32 = (x px, y px, confidence in [0, 1]); a missing keypoint has
    confidence 0.
    """

    camera: str
    points: np.ndarray

    @staticmethod
    def empty(camera: str) -> Keypoints2D:
        return Keypoints2D(camera, np.zeros((17, 3), np.float32))

    @property
    def found(self) -> bool:
        return bool(np.any(self.points[:, 2] > 0))


@dataclass(frozen=True)
class BodyParams:
    """SMPL parameters: axis-angle rotations, metres."""

    global_orient: np.ndarray  # [3]
    body_pose: np.ndarray  # [23, 3]
    betas: np.ndarray  # [10]
    transl: np.ndarray  # [3]


@dataclass(frozen=True)
class ViewEstimate:
    """The body estimated in one view, in that view's camera (weak-perspective if uncalibrated)."""

    camera: Camera
    params: BodyParams
    weak_perspective: np.ndarray | None = None  # [3] = (scale, tx, ty) in crop coordinates
    mesh_cam: np.ndarray | None = None  # [n, 3] display-mesh vertices in the camera frame
    mesh_px: np.ndarray | None = None  # [n, 2] where they land in the image (pixels)
    mesh_faces: np.ndarray | None = None  # [f, 3] the display mesh's faces


@dataclass
class FrameBody:
    """The bodies of one frame-set. Per view (in the order of the views given): rotations
    ``view_orient`` ``[V, 3, 3]`` (body to camera) and ``view_pose`` ``[V, 23, 3, 3]``, ``view_betas``
    ``[V, 10]``, weak-perspective ``view_cam`` ``[V, 3]`` and crop ``view_boxes`` ``[V, 3]``
    (x0, y0, size px); ``used`` ``[V]`` marks the views the model saw; ``view_lens`` ``[V, 3]`` the
    pinhole (focal length, principal point x, y; crop units) the views' bodies were fitted through
    (engine.heatformer.refine.project_view), None where they are HeatFormer's weak-perspective
    answer. When calibrated (and at least two views saw the hips), the fused world body: ``orient``
    ``[3, 3]`` (body to world), ``pose``, ``betas``, ``transl`` ``[3]`` and ``joints`` ``[24, 3]``
    (world metres). ``mirrored`` ``[V]``: the views whose keypoints the refinement fitted the body
    (fused or the views') to with left and right exchanged (their detector mixed up the sides),
    None when none was."""

    view_orient: np.ndarray
    view_pose: np.ndarray
    view_betas: np.ndarray
    view_cam: np.ndarray
    view_boxes: np.ndarray
    used: np.ndarray
    orient: np.ndarray | None = None
    pose: np.ndarray | None = None
    betas: np.ndarray | None = None
    transl: np.ndarray | None = None
    joints: np.ndarray | None = None
    view_lens: np.ndarray | None = None
    mirrored: np.ndarray | None = None

    @staticmethod
    def empty(views: int) -> FrameBody:
        """The body of a frame-set in which nobody was estimated (identity rotations, ``valid`` False)."""
        eye = np.eye(3)
        return FrameBody(np.tile(eye, (views, 1, 1)), np.tile(eye, (views, 23, 1, 1)), np.zeros((views, 10)),
                         np.zeros((views, 3)), np.zeros((views, 3)), np.zeros(views, bool))  # fmt: skip

    @property
    def valid(self) -> bool:
        return bool(self.used.any())

    @property
    def fused(self) -> bool:
        return self.transl is not None


@dataclass
class Person:
    """One tracked person at one instant.

    id: the track id, stable over time (1, 2, ...; given back to someone who returns).
    keypoints2d: this person's detection by camera (only the cameras that saw them).
    keypoints3d: ``[17, 4]`` world metres + confidence when calibrated, else None.
    reprojection_px: median reprojection error per view of the triangulation.
    views / fused / body / mesh3d: as for :class:`BodyEstimate`, for this person.
    first_seen: the frame-set time at which the track was first confirmed (s).
    """

    id: int
    keypoints2d: dict[str, Keypoints2D]
    keypoints3d: np.ndarray | None = None
    reprojection_px: dict[str, float] = field(default_factory=dict)
    views: dict[str, ViewEstimate] = field(default_factory=dict)
    fused: BodyParams | None = None
    body: FrameBody | None = None
    mesh3d: np.ndarray | None = None
    first_seen: float = 0.0


@dataclass
class BodyEstimate:
    """Everything the pipeline knows about the subject at one instant.

    keypoints2d: detections by camera.
    keypoints3d: ``[17, 4]`` world metres + confidence (0 where not triangulated), or None
    when the views are uncalibrated.
    reprojection_px: ``[V]`` median reprojection error per view (NaN when unavailable).
    views / fused: the body per camera view and in the world (calibrated), from HeatFormer.
    body: HeatFormer's raw result for the frame-set (:class:`FrameBody`).
    mesh3d: ``[n, 3]`` the body's display-mesh vertices for the 3D viewport, the mesh the views
    show too (engine.body.render.display_mesh; the whole mesh for a body of another topology;
    world metres when calibrated, else the reference view's body standing at the origin);
    mesh_faces ``[f, 3]`` its faces.
    timings_ms: per-stage milliseconds (``decode``, ``detect:<camera>``, ``detect``,
    ``triangulate``, ``associate``, ``body``, ``total``).
    people: everyone tracked in the set (:class:`Person`, by increasing id). The fields above
    describe the first of them (the longest tracked), so single-person consumers keep working;
    mesh_faces is shared by every person's mesh.
    """

    frameset: FrameSet
    keypoints2d: dict[str, Keypoints2D]
    keypoints3d: np.ndarray | None = None
    reprojection_px: dict[str, float] = field(default_factory=dict)
    views: dict[str, ViewEstimate] = field(default_factory=dict)
    fused: BodyParams | None = None
    body: FrameBody | None = None
    mesh3d: np.ndarray | None = None
    mesh_faces: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    people: list[Person] = field(default_factory=list)

    @property
    def timestamp(self) -> float:
        return self.frameset.reference_time


@runtime_checkable
class FrameSetSource(Protocol):
    """Anything that yields frame-sets: the replay of files or of a recorded session
    (capture.replay.SessionReplay) and the live camera group (capture.sync.CameraGroup).

    ``next`` returns the next set, or None at the end (a live group blocks until one is ready).
    ``skipped_sets`` counts sets dropped to keep up; ``fps`` is the nominal rate.
    """

    @property
    def camera_names(self) -> list[str]: ...

    @property
    def fps(self) -> float: ...

    @property
    def skipped_sets(self) -> int: ...

    def open(self) -> None: ...

    def close(self) -> None: ...

    def rewind(self) -> None: ...

    def next(self) -> FrameSet | None: ...

    def __iter__(self) -> Iterator[FrameSet]: ...


EVENT_FORMAT_VERSION = 1
EVENT_TYPES = ("fall", "on_floor", "bed_exit", "no_go", "left_room", "no_movement", "people_count", "blind")
EVENT_PHASES = ("raised", "escalated", "acknowledged", "resolved")
SEVERITIES = ("info", "warning", "alarm", "critical")  # increasing


@dataclass(frozen=True)
class Event:
    """One step in the life of an alert (monitoring.alerts), as written to ``events.jsonl``.

    type: one of EVENT_TYPES; phase: one of EVENT_PHASES; severity: one of SEVERITIES.
    t: session seconds (the frame-set time); wall: wall-clock time, ISO 8601 with its offset.
    person: the track id it concerns (None for room-wide events); zone: the zone's name or None.
    alert: the alert's number, the same for every phase of one alert.
    state: the body state that triggered it (posture, heights, speed, zone, position...).
    detail: what else the type says (``count``, ``previous``, ``duration_s``, ``by``...).
    """

    type: str
    phase: str
    severity: str
    t: float
    wall: str
    alert: int
    person: int | None = None
    zone: str | None = None
    state: dict[str, object] = field(default_factory=dict)
    detail: dict[str, object] = field(default_factory=dict)

    def to_record(self) -> dict[str, object]:
        """The JSON object of one ``events.jsonl`` line."""
        return {"format_version": EVENT_FORMAT_VERSION, "t": round(self.t, 3), "wall": self.wall, "type": self.type,
                "phase": self.phase, "severity": self.severity, "alert": self.alert, "person": self.person,
                "zone": self.zone, "state": self.state, "detail": self.detail}  # fmt: skip

    @staticmethod
    def from_record(record: dict[str, object]) -> Event:
        """The event of one ``events.jsonl`` line (KeyError / TypeError on a malformed one)."""
        person = record.get("person")
        zone = record.get("zone")
        state = record.get("state") or {}
        detail = record.get("detail") or {}
        assert isinstance(state, dict) and isinstance(detail, dict)
        return Event(str(record["type"]), str(record["phase"]), str(record["severity"]), float(record["t"]),  # type: ignore[arg-type]
                     str(record["wall"]), int(record["alert"]), None if person is None else int(person),  # type: ignore[call-overload]
                     None if zone is None else str(zone), state, detail)  # fmt: skip
