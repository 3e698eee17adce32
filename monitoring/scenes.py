"""Labelled synthetic scenes for the monitor: falls and the everyday movements that look like them.

Every scene is one or two people in a synthetic room, posed with the default body model
(engine.body) from keyframed SMPL motions: per keyframe a global orientation (heading, forward
pitch, sideways tilt), a body pose, the pelvis position on the floor and what the body rests on
(the floor, the bed); between keyframes rotations are slerped and positions blended with an easing
(smoothstep for controlled movements, an accelerating one for falls). The COCO-17 keypoints come
from the body model's ``coco17_regressor``; they are projected into the cameras with
detector-like noise (2-3 px Gaussian, a few outlier keypoints, confidences 0.6-0.95) and views that
drop out for a while.

The room (:func:`room_cameras`): 4.0 x 4.0 m, world Z up, floor at z = 0; four 640x480 cameras
(focal 320 px) in the corners at 2.2 m looking at the centre; the 2-view rig uses two adjacent
corners. A bed (zone ``bed``, 2.0 x 0.9 m, 0.5 m high) along the -y wall, a chair (zone ``chair``)
in the +y half.

Each scene carries its labels (event type, person index, time: the impact of a fall, the moment a
condition should be raised, the moment the pelvis left the bed), a MonitorConfig with shortened
thresholds (:data:`SCENE_THRESHOLDS`) and quiet hours around its ``wall_start`` (23:00).
:class:`SceneSource` and :class:`SceneDetector` let the real pipeline run on a scene.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation

from core.camera import Camera, looking_at
from core.types import Frame, FrameSet, Keypoints2D
from monitoring.config import MonitorConfig, QuietHours, Thresholds, Zone

if TYPE_CHECKING:  # torch loads only when a scene is made
    from engine.body import BodyModel

FALL_KINDS = ("fall_forward", "fall_backward", "fall_sideways", "slump_chair", "roll_out_of_bed", "collapse_walking")
CONFOUNDER_KINDS = ("sit_hard", "lie_on_bed", "kneel_shoe", "pick_up", "exercise_floor", "crouch", "carer_bend")
KINDS = FALL_KINDS + CONFOUNDER_KINDS

# Shortened so that scenes stay short (the product's defaults: 60 s and 300 s).
SCENE_THRESHOLDS = Thresholds(on_floor_s=10.0, no_movement_s=15.0)
WALL_START = dt.datetime(2026, 11, 27, 23, 0, tzinfo=dt.UTC)
QUIET = QuietHours(dt.time(22, 0), dt.time(7, 0))

ROOM_HALF = 2.0  # the room spans -2..2 m in x and y
BED = np.array([[-1.0, -1.6], [1.0, -1.6], [1.0, -0.7], [-1.0, -0.7]])
BED_HEIGHT = 0.5
CHAIR_XY = np.array([-1.1, 0.9])
CHAIR = CHAIR_XY + np.array([[-0.3, -0.3], [0.3, -0.3], [0.3, 0.3], [-0.3, 0.3]])
IMAGE_SIZE = (640, 480)

# SMPL body_pose rows (joint - 1) and axes; body frame Y up, Z forward, X the body's left.
L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3 = 0, 1, 2, 3, 4, 5, 6, 7, 8
NECK, HEAD, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW = 11, 14, 15, 16, 17, 18
X, Y, Z = 0, 1, 2
NOSE = 0
COCO_HIPS = (11, 12)


class Label(NamedTuple):
    """What the monitor should report: ``type`` (core.types.EVENT_TYPES) for scene person
    ``person`` at ``t`` (s): a fall's impact, the moment on_floor / no_movement reach their
    threshold, the moment the pelvis left the bed."""

    type: str
    person: int
    t: float


@dataclass
class Scene:
    """One labelled scene. ``truth3d`` ``[T, P, 17, 3]`` world metres; ``detections`` per camera
    ``[T, P, 17, 3]`` (x px, y px, confidence; zeros where the person was not detected), person
    ``p`` in row ``p``; ``times`` ``[T]`` seconds from 0."""

    name: str
    kind: str
    category: str  # "fall" or "confounder"
    people: int
    views: int
    fps: float
    times: np.ndarray
    truth3d: np.ndarray
    detections: dict[str, np.ndarray]
    cameras: list[Camera]
    labels: list[Label]
    config: MonitorConfig
    wall_start: dt.datetime = WALL_START
    seed: int = 0
    info: dict[str, float] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return float(self.times[-1] - self.times[0]) + 1.0 / self.fps


# -- the room ---------------------------------------------------------------------------------
def room_cameras(views: int = 4) -> list[Camera]:
    """The synthetic room's cameras: 4 corners at 2.2 m, or (``views`` 2) two adjacent corners."""
    corners = [(1.9, -1.9), (1.9, 1.9), (-1.9, 1.9), (-1.9, -1.9)]
    cams = [looking_at(f"cam{i + 1}", (x, y, 2.2), (0.0, 0.0, 0.6), IMAGE_SIZE, 320.0) for i, (x, y) in enumerate(corners)]
    if views not in (2, 4):
        raise ValueError(f"scenes have 2 or 4 views, not {views}")
    return cams[:views]


def room_config() -> MonitorConfig:
    zones = (Zone("bed", "bed", BED.copy(), BED_HEIGHT), Zone("chair", "chair", CHAIR.copy(), 0.45))
    return MonitorConfig("scene room", zones, QUIET, SCENE_THRESHOLDS, source="monitoring.scenes")


def in_bed(xy: np.ndarray) -> bool:
    return bool(BED[0, 0] <= xy[0] <= BED[1, 0] and BED[0, 1] <= xy[1] <= BED[2, 1])


# -- poses ------------------------------------------------------------------------------------
def _arm(side: float, down: float, forward: float) -> np.ndarray:
    """Shoulder rotation: the T-pose arm lowered by ``down`` then swung forward by ``forward`` (rad)."""
    return (Rotation.from_rotvec([-forward, 0, 0]) * Rotation.from_rotvec([0, 0, -side * down])).as_rotvec()


def pose(legs: tuple[float, float, float, float] = (0, 0, 0, 0), spine: float = 0.0, head: float = 0.0,
         arms: tuple[float, float] = (1.25, 0.1), elbows: float = 0.2, arms_r: tuple[float, float] | None = None,
         ankles: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:  # fmt: skip
    """A body pose ``[23, 3]``: ``legs`` = (left hip flexion, left knee, right hip flexion, right
    knee) in radians (positive: thigh forward, knee bent), ``spine`` forward bend spread over the
    three spine joints, ``head`` nod, ``arms`` (down, forward) for both arms (``arms_r`` the right
    one when different), elbow bend."""
    p = np.zeros((23, 3))
    p[L_HIP, X], p[L_KNEE, X], p[R_HIP, X], p[R_KNEE, X] = -legs[0], legs[1], -legs[2], legs[3]
    p[L_ANKLE, X], p[R_ANKLE, X] = ankles
    for joint in (SPINE1, SPINE2, SPINE3):
        p[joint, X] = spine / 3
    p[NECK, X], p[HEAD, X] = head / 2, head / 2
    p[L_SHOULDER] = _arm(1.0, *arms)
    p[R_SHOULDER] = _arm(-1.0, *(arms_r or arms))
    p[L_ELBOW, Y], p[R_ELBOW, Y] = -elbows, elbows
    return p


STAND = pose()
ANKLE_POINT = 0.9  # pointed feet (kneeling: the instep on the floor)


def walk_pose(swing: float) -> np.ndarray:
    """Mid-stride: ``swing`` in [-1, 1], the left leg forward when positive."""
    a = 0.38 * swing
    return pose((a, 0.15 + 0.4 * max(swing, 0), -a, 0.15 + 0.4 * max(-swing, 0)), arms=(1.25, -0.35 * swing),
                arms_r=(1.25, 0.35 * swing))  # fmt: skip


SIT = pose((1.5, 1.5, 1.5, 1.5), spine=0.1, arms=(1.1, 0.5), elbows=1.0)
LIE = pose(arms=(1.3, 0.0))
LIE_SIDE = pose((0.5, 0.7, 0.3, 0.5), arms=(1.55, 1.3), elbows=0.8)
PRONE = pose(arms=(0.3, -0.1), elbows=0.1)
SLUMPED = pose((1.3, 0.2, 1.1, 0.5), spine=0.5, head=0.5, arms=(1.0, 0.6))
KNEEL_SHOE = pose((1.6, 1.7, -0.1, 1.6), spine=0.8, head=0.4, arms=(1.2, 1.0), elbows=0.6, ankles=(0.0, ANKLE_POINT))
CROUCH = pose((2.1, 2.4, 2.1, 2.4), spine=0.3, arms=(1.0, 0.9), elbows=0.5, ankles=(-0.3, -0.3))
ALL_FOURS = pose((1.57, 1.57, 1.57, 1.57), arms=(1.25, 1.45), elbows=0.6, ankles=(ANKLE_POINT, ANKLE_POINT))
KNEEL_UP = pose((0.1, 1.6, 0.1, 1.6), arms=(1.2, 0.3), ankles=(ANKLE_POINT, ANKLE_POINT))  # kneeling upright on both knees
LIE_KNEES = pose((0.8, 1.5, 0.8, 1.5), arms=(1.2, 0.1))


def _jitter(p: np.ndarray, rng: np.random.Generator, scale: float = 0.05) -> np.ndarray:
    return p + rng.normal(0.0, scale, p.shape)


# -- keyframed scripts ------------------------------------------------------------------------
EASES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda u: u,
    "smooth": lambda u: u * u * (3 - 2 * u),
    "fall": lambda u: u**1.5,  # accelerating until the impact
}


@dataclass
class Key:
    t: float
    pose: np.ndarray  # [23, 3]
    heading: float  # the direction the body faces (rad, world, from +x)
    pitch: float  # forward tilt (rad); -pi/2 lying on the back, +pi/2 face down
    side: float  # sideways tilt to the body's left (rad); also rolls a lying body
    xy: np.ndarray  # pelvis on the floor
    support: float | None  # the lowest point of the body rests at this height (None: in the air)
    ease: str
    same_lift: bool = False  # keep the previous key's height (fidgeting: a limb moving does not lift the body)


class Script:
    """One person's keyframes, appended in time order."""

    def __init__(self, xy: tuple[float, float] | np.ndarray, heading: float, body: np.ndarray = STAND,
                 pitch: float = 0.0, side: float = 0.0, support: float | None = 0.0) -> None:  # fmt: skip
        self.keys = [Key(0.0, body, heading, pitch, side, np.asarray(xy, float), support, "smooth")]
        self.marks: dict[str, float] = {}

    @property
    def last(self) -> Key:
        return self.keys[-1]

    @property
    def t(self) -> float:
        return self.last.t

    def to(self, dur: float, body: np.ndarray | None = None, *, heading: float | None = None, pitch: float = 0.0,
           side: float = 0.0, xy: np.ndarray | tuple[float, float] | None = None, support: float | None = 0.0,
           ease: str = "smooth") -> Script:  # fmt: skip
        last = self.last
        self.keys.append(Key(last.t + dur, last.pose if body is None else body, last.heading if heading is None else heading,
                             pitch, side, last.xy if xy is None else np.asarray(xy, float), support, ease))  # fmt: skip
        return self

    def hold(self, dur: float) -> Script:
        """Stay in the last key's pose."""
        last = self.last
        return self.to(dur, last.pose, heading=last.heading, pitch=last.pitch, side=last.side, support=last.support)

    def fidget(self, seconds: int, rng: np.random.Generator, scale: float) -> Script:
        """Stay about the last key's pose for ``seconds``, a small random change (``scale`` rad) each second."""
        base = self.last
        for _ in range(seconds):
            self.to(1.0, _jitter(base.pose, rng, scale), heading=base.heading, pitch=base.pitch, side=base.side,
                    support=base.support)  # fmt: skip
            self.last.same_lift = True
        self.to(0.5, base.pose, heading=base.heading, pitch=base.pitch, side=base.side, support=base.support)
        self.last.same_lift = True
        return self

    def walk(self, target: np.ndarray | tuple[float, float], speed: float, rng: np.random.Generator) -> Script:
        """Turn towards ``target`` and walk there at ``speed`` m/s, ending standing."""
        start, target = self.last.xy, np.asarray(target, float)
        gap = target - start
        dist = float(np.linalg.norm(gap))
        if dist < 0.05:
            return self
        heading = math.atan2(gap[1], gap[0])
        step_s = float(rng.uniform(0.45, 0.6))  # one step (half a stride)
        steps = max(2, round(dist / (speed * step_s)))
        dur = dist / speed / steps
        self.to(0.35, STAND, heading=heading)
        for k in range(1, steps + 1):
            self.to(dur, walk_pose(1.0 if k % 2 else -1.0) if k < steps else STAND, xy=start + gap * k / steps, ease="linear")
        return self

    def stretch(self, first: int, last: int, factor: float) -> None:
        """Make the segments ending at keys ``first`` .. ``last`` ``factor`` times as long (later keys follow)."""
        for i in range(first, last + 1):
            shift = (self.keys[i].t - self.keys[i - 1].t) * (factor - 1.0)
            for key in self.keys[i:]:
                key.t += shift


def _world_rotations(keys: list[Key]) -> Rotation:
    """Body-to-world rotations of the keys: body Y up -> world Z up, pitched, tilted, turned."""
    up = Rotation.from_rotvec([math.pi / 2, 0, 0])
    mats = [Rotation.from_rotvec([0, 0, k.heading + math.pi / 2]) * Rotation.from_rotvec([0, k.side, 0])
            * Rotation.from_rotvec([k.pitch, 0, 0]) * up for k in keys]  # fmt: skip
    return Rotation.concatenate(mats)


@functools.lru_cache(maxsize=1)
def body_model() -> BodyModel:
    """The default body model (loaded once)."""
    from engine.body import BodyModel

    return BodyModel.from_file()


def _pose_body(betas: np.ndarray, orient: np.ndarray, body: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keypoints ``[N, 17, 3]``, lowest vertex z ``[N]`` (over every 6th vertex) and pelvis
    ``[N, 3]`` of the body posed (no translation) with world rotations ``orient`` ``[N, 3]`` and
    ``body`` ``[N, 23, 3]``."""
    import torch

    from engine.body import lbs

    model = body_model()
    n = len(orient)
    with torch.no_grad():
        shape = torch.as_tensor(np.tile(betas, (n, 1)), dtype=torch.float32)
        pose_aa = torch.as_tensor(np.concatenate([orient[:, None], body], axis=1), dtype=torch.float32)
        rotations = lbs.axis_angle_to_matrix(pose_aa)
        out = model.joints_rotmat(shape, rotations)
        some = slice(None, None, 6)
        v_shaped = model.v_template[some] + torch.einsum("vcb,nb->nvc", model.shapedirs[some], shape)
        cols = model.posedirs.reshape(model.posedirs.shape[0], -1, 3)[:, some].reshape(model.posedirs.shape[0], -1)
        v_posed = v_shaped + (lbs.pose_features(rotations) @ cols).reshape(n, -1, 3)
        rest = model.joint_template + torch.einsum("jcb,nb->njc", model.joint_shapedirs, shape)
        _, transforms = lbs.forward_kinematics(rotations, rest, model.parents)
        low = lbs.skin(v_posed, model.weights[some], transforms)[..., 2].min(dim=1).values
    assert out.keypoints is not None
    return out.keypoints.numpy().astype(float), low.numpy().astype(float), out.joints[:, 0].numpy().astype(float)


def _slerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Rotations ``[N, 3]`` (axis-angle) a fraction ``w`` ``[N]`` of the way from ``a`` to ``b``."""
    ra = Rotation.from_rotvec(a)
    step = (ra.inv() * Rotation.from_rotvec(b)).as_rotvec()
    return (ra * Rotation.from_rotvec(step * w[:, None])).as_rotvec()


def perform(script: Script, betas: np.ndarray, times: np.ndarray) -> np.ndarray:
    """World COCO-17 keypoints ``[T, 17, 3]`` of ``script`` at ``times``: the pelvis over each
    key's ``xy``, the body resting on its ``support`` (never below the floor)."""
    keys = script.keys
    kt = np.array([k.t for k in keys])
    rots = _world_rotations(keys)
    key_body = np.stack([k.pose for k in keys])
    _, low, pelvis = _pose_body(betas, rots.as_rotvec(), key_body)
    lift = np.array([np.nan if k.support is None else k.support - low[i] for i, k in enumerate(keys)])
    known = ~np.isnan(lift)
    lift = np.interp(kt, kt[known], lift[known])  # in the air: between the keys around it
    for i in range(1, len(keys)):
        if keys[i].same_lift:
            lift[i] = lift[i - 1]
    seg = np.clip(np.searchsorted(kt, times, side="right") - 1, 0, len(keys) - 2)
    u = np.clip((times - kt[seg]) / np.maximum(kt[seg + 1] - kt[seg], 1e-9), 0.0, 1.0)
    w = np.array([float(EASES[keys[s + 1].ease](np.array(x))) for s, x in zip(seg, u, strict=True)])
    orient = _slerp(rots.as_rotvec()[seg], rots.as_rotvec()[seg + 1], w)
    t_n = len(times)
    body = _slerp(key_body[seg].reshape(-1, 3), key_body[seg + 1].reshape(-1, 3), np.repeat(w, 23)).reshape(t_n, 23, 3)
    xy = np.stack([keys[s].xy + x * (keys[s + 1].xy - keys[s].xy) for s, x in zip(seg, w, strict=True)])
    z = lift[seg] + w * (lift[seg + 1] - lift[seg])
    points, low, pelvis = _pose_body(betas, orient, body)
    z = np.maximum(z, -low)  # never through the floor
    shift = np.concatenate([xy - pelvis[:, :2], z[:, None]], axis=1)
    return points + shift[:, None, :]


SLUMPED_FLOOR = pose((1.5, 0.2, 1.3, 0.4), spine=0.3, head=0.4, arms=(0.9, 0.4))  # reclined on the floor (pitch -0.8)
SIT_FLOOR = pose((2.0, 1.7, 2.0, 1.7), spine=0.3, arms=(1.1, 0.8), elbows=0.4)  # knees up (pitch -0.3)
LEG_RAISE = pose((1.3, 0.1, 1.3, 0.1), arms=(1.3, 0.0))


def stoop_pose(rng: np.random.Generator) -> np.ndarray:
    bend = rng.uniform(1.0, 1.3)
    return pose((bend, 0.4, bend, 0.4), spine=0.5, head=0.2, arms=(1.3, 0.2))


def _heading(gap: np.ndarray) -> float:
    return math.atan2(float(gap[1]), float(gap[0]))


def _facing(heading: float) -> np.ndarray:
    return np.array([math.cos(heading), math.sin(heading)])


def _left(heading: float) -> np.ndarray:
    return np.array([-math.sin(heading), math.cos(heading)])


def _inside_room(xy: np.ndarray, margin: float = 0.35) -> bool:
    return bool(np.all(np.abs(xy) <= ROOM_HALF - margin))


def _open_spot(rng: np.random.Generator, clear: float = 0.0) -> np.ndarray:
    """A point of open floor (not the bed, not the chair) with ``clear`` metres of room around it."""
    while True:
        xy = rng.uniform([-1.2 + clear, -0.35 + clear], [1.2 - clear, 1.4 - clear])
        if np.linalg.norm(xy - CHAIR_XY) > 0.6 + clear:
            return xy


@dataclass
class _Plan:
    """A subject's script and what the labels need: impact time, still-from time, the floor spot."""

    script: Script
    spot: np.ndarray
    impact: float | None = None
    still: float | None = None
    floor_until: float | None = None
    descent: tuple[int, int] | None = None  # the keys ending the fall's two phases


def _approach(rng: np.random.Generator, spot: np.ndarray, speed: float) -> Script:
    """Stand a little, then walk 1.5-3 m to ``spot``."""
    for _ in range(100):
        start = spot + rng.uniform(1.5, 3.0) * _facing(rng.uniform(-math.pi, math.pi))
        if _inside_room(start, 0.4) and not in_bed(start) and np.linalg.norm(start - CHAIR_XY) > 0.5:
            break
    script = Script(start, _heading(spot - start)).hold(rng.uniform(1.0, 2.0))
    return script.walk(spot, speed, rng)


def _after_fall(rng: np.random.Generator, plan: _Plan, tempo: float) -> _Plan:
    """Lie still (long enough for no_movement) or struggle on the floor, then get up."""
    script = plan.script
    plan.still = script.t if rng.random() < 0.5 else None
    if plan.still is not None:
        script.hold(SCENE_THRESHOLDS.no_movement_s + rng.uniform(2.5, 4.0))
        plan.floor_until = script.t
        return plan
    script.fidget(int(SCENE_THRESHOLDS.on_floor_s + rng.uniform(2.5, 4.0)), rng, 0.12)
    plan.floor_until = script.t
    heading = script.last.heading
    script.to(1.8 * tempo, ALL_FOURS, heading=heading, pitch=math.pi / 2)
    script.to(1.5 * tempo, KNEEL_UP, heading=heading)
    script.to(1.5 * tempo, STAND, heading=heading).hold(2.0)
    return plan


def _descent(rng: np.random.Generator, shortest: float = 0.55) -> tuple[float, float]:
    """A fall's two phases (losing balance, going down): together ``shortest``-1.0 s."""
    total = rng.uniform(shortest, 1.0)
    first = rng.uniform(0.15, 0.3) * total
    return first, total - first


def _fall_spot(
    rng: np.random.Generator, heading_of: Callable[[np.ndarray], float], shift: Callable[[float], np.ndarray]
) -> tuple[np.ndarray, float]:
    """A spot and a heading such that the body lands inside the room, off the bed and the chair."""
    while True:
        spot = _open_spot(rng)
        heading = heading_of(spot)
        end = spot + shift(heading)
        if _inside_room(end, 0.6) and not in_bed(end) and np.linalg.norm(end - CHAIR_XY) > 0.8:
            return spot, heading


def fall_forward(rng: np.random.Generator, tempo: float, speed: float) -> _Plan:
    return _topple(rng, tempo, speed, "forward")


def fall_backward(rng: np.random.Generator, tempo: float, speed: float) -> _Plan:
    return _topple(rng, tempo, speed, "backward")


def fall_sideways(rng: np.random.Generator, tempo: float, speed: float) -> _Plan:
    return _topple(rng, tempo, speed, "sideways")


def collapse_walking(rng: np.random.Generator, tempo: float, speed: float) -> _Plan:
    return _topple(rng, tempo, speed, "collapse")


def _topple(rng: np.random.Generator, tempo: float, speed: float, how: str) -> _Plan:
    """Walk somewhere, then fall over ``how`` (forward, backward, sideways, collapse)."""
    to = 1.0 if rng.random() < 0.5 else -1.0  # sideways: to the left or the right
    ends = {
        "forward": lambda h: 0.9 * _facing(h), "backward": lambda h: -0.45 * _facing(h),
        "sideways": lambda h: 0.5 * to * _left(h), "collapse": lambda h: 0.25 * _facing(h) + 0.35 * to * _left(h),
    }  # fmt: skip
    spot, heading = _fall_spot(rng, lambda s: rng.uniform(-math.pi, math.pi), ends[how])
    script = _approach(rng, spot - 0.6 * _facing(heading), speed)
    script.walk(spot, speed, rng)
    first, second = _descent(rng, 0.8 if how == "forward" else 0.6)  # a longer arc forward: the same head speeds
    end = spot + ends[how](script.last.heading)
    h = script.last.heading
    arms = (0.6, 1.2)
    if how == "forward":
        script.to(
            first, pose((0.3, 0.3, -0.2, 0.2), arms=arms), pitch=0.35, xy=spot + 0.15 * _facing(h), support=None, ease="fall"
        )
        script.to(second, PRONE, pitch=math.pi / 2, xy=end, ease="fall")
    elif how == "backward":
        script.to(first, pose((0.6, 0.4, 0.4, 0.6), arms=arms), pitch=-0.3, support=None, ease="fall")
        script.to(second, LIE, pitch=-math.pi / 2, xy=end, ease="fall")
    elif how == "sideways":
        script.to(first, pose((0.1, 0.2, 0.1, 0.2), arms=arms), side=0.3 * to, support=None, ease="fall")
        script.to(second, LIE_SIDE, side=to * math.pi / 2, xy=end, ease="fall")
    else:
        mid = spot + 0.15 * _facing(h)
        script.to(first, pose((0.9, 1.5, 0.9, 1.5), arms=arms), pitch=0.2, xy=mid, support=None, ease="fall")
        script.to(second, LIE_SIDE, side=to * math.pi / 2, xy=end, ease="fall")
    plan = _Plan(script, end, impact=script.t, descent=(len(script.keys) - 2, len(script.keys) - 1))
    return _after_fall(rng, plan, tempo)


def _to_chair(rng: np.random.Generator, tempo: float, speed: float, hard: bool) -> tuple[Script, float]:
    """Walk to the chair, turn the back to it, sit down (hard: dropping in 0.35-0.6 s)."""
    away = rng.uniform(-0.6, 0.6)  # facing the room (+x) give or take
    script = _approach(rng, CHAIR_XY + 0.4 * _facing(away), speed)
    script.to(0.6 * tempo, STAND, heading=away)
    drop = rng.uniform(0.35, 0.6) if hard else rng.uniform(1.5, 2.5) * tempo
    script.to(drop, _jitter(SIT, rng, 0.05), xy=CHAIR_XY, ease="fall" if hard else "smooth")
    return script, away


def sit_hard(rng: np.random.Generator, tempo: float, speed: float) -> _Plan:
    script, away = _to_chair(rng, tempo, speed, hard=True)
    script.fidget(int(rng.integers(3, 6)), rng, 0.05)
    script.to(rng.uniform(1.2, 2.0) * tempo, STAND, xy=CHAIR_XY + 0.35 * _facing(away))
    script.walk(_open_spot(rng), speed, rng).hold(1.0)
    return _Plan(script, CHAIR_XY)


def slump_chair(rng: np.random.Generator, tempo: float, speed: float) -> _Plan:
    script, away = _to_chair(rng, tempo, speed, hard=False)
    script.fidget(int(rng.integers(3, 6)), rng, 0.05)
    first, second = _descent(rng)
    end = CHAIR_XY + 0.45 * _facing(away)
    script.to(first, _jitter(SIT, rng, 0.1), pitch=0.2, xy=CHAIR_XY + 0.1 * _facing(away), support=None, ease="fall")
    if rng.random() < 0.5:  # slid down, reclined against the chair
        script.to(second, SLUMPED_FLOOR, pitch=-0.8, side=rng.uniform(-0.2, 0.2), xy=end, ease="fall")
    else:  # slid down and over to a side
        to = 1.0 if rng.random() < 0.5 else -1.0
        script.to(second, LIE_SIDE, side=to * math.pi / 2, xy=end + 0.3 * to * _left(away), ease="fall")
    plan = _Plan(script, end, impact=script.t, descent=(len(script.keys) - 2, len(script.keys) - 1))
    return _after_fall(rng, plan, tempo)


def _in_bed_script(rng: np.random.Generator) -> tuple[Script, float]:
    """Lying on the back in the bed from the start (head towards -x or +x)."""
    heading = 0.0 if rng.random() < 0.5 else math.pi
    xy = np.array([rng.uniform(-0.15, 0.15), rng.uniform(-1.25, -1.05)])
    return Script(xy, heading, LIE, pitch=-math.pi / 2, support=BED_HEIGHT), heading


def roll_out_of_bed(rng: np.random.Generator, tempo: float, speed: float) -> _Plan:
    script, heading = _in_bed_script(rng)
    script.fidget(int(rng.integers(6, 9)), rng, 0.04)
    roll = 1.0 if heading == 0.0 else -1.0  # the face turns to the room (+y)
    x = script.last.xy[0]
    script.to(rng.uniform(1.0, 1.6) * tempo, LIE_SIDE, pitch=-math.pi / 2, side=roll * math.pi / 2, xy=(x, -0.85),
              support=BED_HEIGHT)  # fmt: skip
    first, second = _descent(rng)
    script.to(first, LIE_SIDE, pitch=-math.pi / 2, side=roll * 2.0, xy=(x, -0.72), support=None, ease="fall")
    end = np.array([x, -0.35])
    script.to(second, PRONE, heading=heading + math.pi, pitch=math.pi / 2, xy=end, ease="fall")
    plan = _Plan(script, end, impact=script.t, descent=(len(script.keys) - 2, len(script.keys) - 1))
    return _after_fall(rng, plan, tempo)


def lie_on_bed(rng: np.random.Generator, tempo: float, speed: float) -> _Plan:
    """Walk to the bed, sit on its edge, lie down, stay a while, get up and walk away (a bed exit)."""
    x = rng.uniform(-0.4, 0.4)
    script = _approach(rng, np.array([x, -0.4]), speed)
    script.to(0.6 * tempo, STAND, heading=math.pi / 2)
    script.to(rng.uniform(1.2, 2.0) * tempo, SIT, xy=(x, -0.88))
    heading = 0.0 if rng.random() < 0.5 else math.pi
    script.to(rng.uniform(1.5, 2.5) * tempo, LIE, heading=heading, pitch=-math.pi / 2, xy=(x, -1.15), support=BED_HEIGHT)
    script.fidget(int(rng.integers(5, 9)), rng, 0.05)
    script.to(rng.uniform(1.5, 2.5) * tempo, SIT, heading=math.pi / 2, xy=(x, -0.88))
    script.to(rng.uniform(1.2, 2.0) * tempo, STAND, xy=(x, -0.45))
    script.walk(_open_spot(rng), speed, rng).hold(2.0)
    return _Plan(script, np.array([x, -1.15]))


def _visit(rng: np.random.Generator, tempo: float, speed: float, body: np.ndarray, pitch: float, hold: tuple[int, int]) -> _Plan:
    """Walk to an open spot, go down into ``body`` (controlled), stay, come back up, walk on."""
    spot = _open_spot(rng, 0.2)
    script = _approach(rng, spot, speed)
    script.to(rng.uniform(1.2, 2.0) * tempo, body, pitch=pitch)
    script.fidget(int(rng.integers(*hold)), rng, 0.05)
    script.to(rng.uniform(1.2, 2.0) * tempo, STAND)
    script.walk(_open_spot(rng), speed, rng).hold(1.0)
    return _Plan(script, spot)


def kneel_shoe(rng: np.random.Generator, tempo: float, speed: float) -> _Plan:
    return _visit(rng, tempo, speed, _jitter(KNEEL_SHOE, rng, 0.04), 0.2, (3, 6))


def crouch(rng: np.random.Generator, tempo: float, speed: float) -> _Plan:
    return _visit(rng, tempo, speed, _jitter(CROUCH, rng, 0.04), 0.3, (2, 5))


def pick_up(rng: np.random.Generator, tempo: float, speed: float) -> _Plan:
    spot = _open_spot(rng, 0.2)
    script = _approach(rng, spot, speed)
    for _ in range(int(rng.integers(1, 3))):
        script.to(rng.uniform(1.0, 1.5) * tempo, stoop_pose(rng), pitch=rng.uniform(0.9, 1.2))
        script.hold(rng.uniform(0.8, 2.0))
        script.to(rng.uniform(1.0, 1.5) * tempo, STAND, pitch=0.0).hold(rng.uniform(0.5, 1.5))
    script.walk(_open_spot(rng), speed, rng).hold(1.0)
    return _Plan(script, spot)


def exercise_floor(rng: np.random.Generator, tempo: float, speed: float) -> _Plan:
    """A controlled get-down (kneel, hands, sit, lie), sit-ups and a leg raise, and up again."""
    spot = _open_spot(rng, 0.5)
    script = _approach(rng, spot, speed)
    h = script.last.heading
    back = spot - 0.35 * _facing(h)
    script.to(rng.uniform(1.2, 1.8) * tempo, KNEEL_UP)
    script.to(rng.uniform(1.2, 1.8) * tempo, ALL_FOURS, pitch=math.pi / 2)
    script.to(rng.uniform(2.2, 3.0) * tempo, SIT_FLOOR, pitch=-0.3, xy=back)
    script.to(1.2 * tempo, LIE_KNEES, pitch=-math.pi / 2, xy=back - 0.3 * _facing(h))
    for _ in range(2):
        up = rng.uniform(0.9, 1.3)
        situp = pose((0.8 + up, 1.5, 0.8 + up, 1.5), arms=(1.2, 1.2))
        script.to(rng.uniform(0.8, 1.1), situp, pitch=-math.pi / 2 + up).to(rng.uniform(0.8, 1.1), LIE_KNEES, pitch=-math.pi / 2)
    script.to(rng.uniform(0.8, 1.1), LEG_RAISE, pitch=-math.pi / 2).to(rng.uniform(0.8, 1.1), LIE, pitch=-math.pi / 2)
    script.to(1.2 * tempo, SIT_FLOOR, pitch=-0.3, xy=back)
    script.to(rng.uniform(1.5, 2.0) * tempo, ALL_FOURS, pitch=math.pi / 2, xy=spot)
    script.to(rng.uniform(1.2, 1.8) * tempo, KNEEL_UP)
    script.to(rng.uniform(1.2, 1.8) * tempo, STAND).hold(1.0)
    script.walk(_open_spot(rng), speed, rng).hold(1.0)
    return _Plan(script, spot)


def carer_bend(rng: np.random.Generator, tempo: float, speed: float) -> _Plan:
    """Walk to the bed's side and bend over it (twice, a step apart), then walk away."""
    x = rng.uniform(-0.5, 0.3)
    script = _approach(rng, np.array([x, -0.4]), speed)
    script.to(0.6 * tempo, STAND, heading=-math.pi / 2)
    for k in range(2):
        bend = rng.uniform(0.5, 0.9)
        script.to(rng.uniform(1.5, 2.2) * tempo, pose((bend, 0.1, bend, 0.1), spine=0.2, arms=(1.1, 0.7)), pitch=bend)
        script.fidget(int(rng.integers(2, 5)), rng, 0.05)
        script.to(rng.uniform(1.2, 1.8) * tempo, STAND, pitch=0.0)
        if k == 0:
            script.to(1.0, STAND, xy=(x + rng.uniform(0.3, 0.6), -0.4))
    script.walk(_open_spot(rng), speed, rng).hold(1.0)
    return _Plan(script, np.array([x, -0.4]))


BUILDERS: dict[str, Callable[[np.random.Generator, float, float], _Plan]] = {
    "fall_forward": fall_forward, "fall_backward": fall_backward, "fall_sideways": fall_sideways,
    "slump_chair": slump_chair, "roll_out_of_bed": roll_out_of_bed, "collapse_walking": collapse_walking,
    "sit_hard": sit_hard, "lie_on_bed": lie_on_bed, "kneel_shoe": kneel_shoe, "pick_up": pick_up,
    "exercise_floor": exercise_floor, "crouch": crouch, "carer_bend": carer_bend,
}  # fmt: skip


def _visitor(rng: np.random.Generator, until: float, avoid: np.ndarray, speed: float) -> Script:
    """A second person walking between open spots away from ``avoid``, pausing now and then."""

    def spot() -> np.ndarray:
        for _ in range(200):
            xy = rng.uniform([-1.4, -0.3], [1.4, 1.5])
            if np.linalg.norm(xy - avoid) > 1.4 and np.linalg.norm(xy - CHAIR_XY) > 0.6:
                return xy
        return np.array([1.4, 1.5]) if avoid[0] < 0 else np.array([-1.4, 1.5])

    script = Script(spot(), rng.uniform(-math.pi, math.pi))
    while script.t < until:
        script.walk(spot(), speed, rng).fidget(int(rng.integers(0, 5)), rng, 0.05)
    return script


def _patient(rng: np.random.Generator, until: float) -> Script:
    script, _ = _in_bed_script(rng)
    return script.fidget(int(until - script.t) + 1, rng, 0.04)


# -- scenes -----------------------------------------------------------------------------------
def make_scene(kind: str, people: int = 1, views: int = 4, seed: int = 0, fps: float = 10.0) -> Scene:
    """One randomised instance of ``kind`` (KINDS) with ``people`` (1, 2) seen by ``views`` (4, 2)."""
    if kind not in BUILDERS:
        raise ValueError(f"unknown scene kind {kind!r} (known: {', '.join(KINDS)})")
    if people not in (1, 2):
        raise ValueError(f"scenes have 1 or 2 people, not {people}")
    rng = np.random.default_rng([seed, KINDS.index(kind), people, views, int(fps)])
    tempo, speed = rng.uniform(0.8, 1.25), rng.uniform(0.6, 1.1)
    plan = BUILDERS[kind](rng, tempo, speed)
    betas = [np.clip(rng.normal(0.0, 0.8, 10), -2.0, 2.0) for _ in range(people)]
    if plan.descent is not None:
        _pace_fall(plan, betas[0], rng.uniform(2.0, 4.0))
    end = plan.script.t + 0.5
    scripts = [plan.script]
    if people == 2:
        second = _patient(rng, end) if kind == "carer_bend" else _visitor(rng, end, plan.spot, rng.uniform(0.6, 1.1))
        scripts.append(second)
    times = np.arange(0.0, end, 1.0 / fps)
    truth = np.stack([perform(s, b, times) for s, b in zip(scripts, betas, strict=True)], axis=1)
    cameras = room_cameras(views)
    detections = {c.name: detect(c, truth, rng) for c in cameras}
    _drop_views(detections, times, rng)
    labels = _labels(plan, truth, times)
    category = "fall" if kind in FALL_KINDS else "confounder"
    info = {"tempo": float(tempo), "walk_mps": float(speed), "peak_head_mps": _peak_head_speed(truth, times)}
    if plan.descent is not None:
        keys = plan.script.keys
        info["descent_s"] = keys[plan.descent[1]].t - keys[plan.descent[0] - 1].t
    return Scene(f"{kind}-p{people}-v{views}-s{seed}", kind, category, people, views, fps, times, truth, detections,
                 cameras, labels, room_config(), WALL_START, seed, info)  # fmt: skip


def _pace_fall(plan: _Plan, betas: np.ndarray, head_mps: float) -> None:
    """Stretch or shorten the fall so that the head comes down at a peak of about ``head_mps``,
    the descent lasting 0.5-1.0 s."""
    assert plan.descent is not None
    first, last = plan.descent
    keys = plan.script.keys
    for _ in range(3):
        start, stop = keys[first - 1].t, keys[last].t
        grid = np.arange(start - 0.1, stop + 0.1, 0.01)
        speed = _peak_head_speed(perform(plan.script, betas, grid)[:, None], grid)
        factor = float(np.clip(speed / head_mps, 0.5 / (stop - start), 1.0 / (stop - start)))
        if abs(factor - 1.0) < 0.05:
            break
        plan.script.stretch(first, last, factor)
    shift = keys[last].t - (plan.impact or 0.0)
    plan.impact = keys[last].t
    plan.still = None if plan.still is None else plan.still + shift
    plan.floor_until = None if plan.floor_until is None else plan.floor_until + shift


def _labels(plan: _Plan, truth: np.ndarray, times: np.ndarray) -> list[Label]:
    limits = SCENE_THRESHOLDS
    labels = []
    if plan.impact is not None:
        labels.append(Label("fall", 0, plan.impact))
        assert plan.floor_until is not None
        if plan.floor_until - plan.impact >= limits.on_floor_s + 2.0:
            labels.append(Label("on_floor", 0, plan.impact + limits.on_floor_s))
    if plan.still is not None and plan.floor_until is not None and plan.floor_until - plan.still >= limits.no_movement_s + 2.0:
        labels.append(Label("no_movement", 0, plan.still + limits.no_movement_s))
    for person in range(truth.shape[1]):
        exit_t = bed_exit_time(truth[:, person], times)
        if exit_t is not None:
            labels.append(Label("bed_exit", person, exit_t))
    return labels


def bed_exit_time(points: np.ndarray, times: np.ndarray) -> float | None:
    """When the pelvis (between the hips of ``points`` ``[T, 17, 3]``) first left the bed after
    ``bed_min_s`` in it, if it stayed out ``bed_exit_confirm_s`` + 2 s (None: no bed exit)."""
    limits = SCENE_THRESHOLDS
    inside = np.array([in_bed(p) for p in points[:, list(COCO_HIPS), :2].mean(axis=1)])
    since = None
    for i, now in enumerate(inside):
        if now and since is None:
            since = times[i]
        elif not now and since is not None:
            out = times[i:][~inside[i:]]
            back = np.flatnonzero(inside[i:])
            stays = (times[i + back[0]] if len(back) else times[-1]) - times[i]
            if times[i] - since >= limits.bed_min_s and stays >= limits.bed_exit_confirm_s + 2.0 and len(out):
                return float(times[i])
            since = None
    return None


def _peak_head_speed(points: np.ndarray, times: np.ndarray) -> float:
    """Peak downward speed of the head (the mean of the five head keypoints) of ``points``
    ``[T, P, 17, 3]`` (the first person), m/s."""
    if len(times) < 2:
        return 0.0
    head = points[:, 0, :5, 2].mean(axis=1)
    return float(max(0.0, (-np.diff(head) / np.diff(times)).max()))


def detect(camera: Camera, truth: np.ndarray, rng: np.random.Generator, noise_px: tuple[float, float] = (2.0, 3.0),
           outliers: float = 0.02, miss: float = 0.02) -> np.ndarray:  # fmt: skip
    """What a 2D detector reports in ``camera`` for everyone in ``truth`` ``[T, P, 17, 3]``:
    ``[T, P, 17, 3]`` pixels with Gaussian noise, an ``outliers`` share of keypoints thrown
    15-60 px off, confidences 0.6-0.95; keypoints outside the image have confidence 0, a person
    with fewer than 6 keypoints inside (or missed, ``miss`` of the time) is all zeros."""
    sigma = rng.uniform(*noise_px)
    xy = camera.project(truth) + rng.normal(0.0, sigma, truth.shape[:-1] + (2,))
    wild = rng.random(truth.shape[:-1]) < outliers
    angle = rng.uniform(0, 2 * math.pi, truth.shape[:-1])
    jump = rng.uniform(15.0, 60.0, truth.shape[:-1])
    xy += wild[..., None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1) * jump[..., None]
    w, h = camera.image_size
    seen = (camera.depth(truth) > 0.1) & (xy[..., 0] >= 0) & (xy[..., 0] < w) & (xy[..., 1] >= 0) & (xy[..., 1] < h)
    conf = rng.uniform(0.6, 0.95, truth.shape[:-1]) * seen
    out = np.concatenate([xy, conf[..., None]], axis=-1)
    gone = (seen.sum(axis=-1) < 6) | (rng.random(truth.shape[:2]) < miss)
    out[gone] = 0.0
    out[out[..., 2] == 0] = 0.0
    return out.astype(np.float32)


def _drop_views(detections: dict[str, np.ndarray], times: np.ndarray, rng: np.random.Generator) -> None:
    """Views that see nobody for a while (0.3-1.5 s, about once per 15 s per view), in place."""
    for found in detections.values():
        for _ in range(rng.poisson(times[-1] / 15.0 + 0.3)):
            start = rng.uniform(times[0], times[-1])
            found[(times >= start) & (times < start + rng.uniform(0.3, 1.5))] = 0.0


def scene_set(count: int, seed: int = 0, fps: float = 10.0) -> Iterator[Scene]:
    """``count`` scenes over every kind x (1, 2 people) x (4, 2 views), seeds from ``seed``. The
    first ``2 * len(KINDS)`` are every kind with 1 and with 2 people (falls and confounders taking
    turns, the views alternating), the next as many the other views; then again with the next
    seed. A run cut short still has falls and confounders, one and two people."""
    turns = [k for pair in zip(FALL_KINDS, CONFOUNDER_KINDS, strict=False) for k in pair] + list(
        CONFOUNDER_KINDS[len(FALL_KINDS) :]
    )
    combos = []
    for flip in (0, 1):
        for j, kind in enumerate(turns):
            combos += [(kind, people, 4 if (j + people + flip) % 2 == 0 else 2) for people in (1, 2)]
    for i in range(count):
        kind, people, views = combos[i % len(combos)]
        yield make_scene(kind, people, views, seed + i // len(combos), fps)


# -- running a scene through the pipeline -----------------------------------------------------
class SceneSource:
    """The scene as a :class:`core.types.FrameSetSource`: neutral grey frames, one per camera, at
    the scene's times (the detections come from :class:`SceneDetector`)."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self._grey = {c.name: np.full((c.image_size[1], c.image_size[0], 3), 128, np.uint8) for c in scene.cameras}
        for image in self._grey.values():
            image.flags.writeable = False
        self._next = 0

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.scene.cameras]

    @property
    def fps(self) -> float:
        return self.scene.fps

    @property
    def skipped_sets(self) -> int:
        return 0

    def open(self) -> None:
        self._next = 0

    def close(self) -> None:
        pass

    def rewind(self) -> None:
        self._next = 0

    def next(self) -> FrameSet | None:
        i = self._next
        if i >= len(self.scene.times):
            return None
        self._next += 1
        t = float(self.scene.times[i])
        return FrameSet({n: Frame(n, image, t, i) for n, image in self._grey.items()}, t, i)

    def __iter__(self) -> Iterator[FrameSet]:
        while (frameset := self.next()) is not None:
            yield frameset


class SceneDetector:
    """A multi-person detector (engine.detect.base.MultiDetector) that reports the scene's
    detections of the frame at ``timestamp``, everyone found in a shuffled order."""

    name = "scene"

    def __init__(self, scene: Scene, seed: int = 0) -> None:
        self.scene = scene
        self._rng = np.random.default_rng(seed)
        self._count: dict[str, int] = {}

    def _index(self, camera: str, timestamp: float | None) -> int:
        if timestamp is None:
            i = self._count.get(camera, 0)
            self._count[camera] = i + 1
            return min(i, len(self.scene.times) - 1)
        return int(np.clip(np.searchsorted(self.scene.times, timestamp - 0.5 / self.scene.fps), 0, len(self.scene.times) - 1))

    def detect_people(self, camera: str, image: np.ndarray, timestamp: float | None = None) -> list[Keypoints2D]:
        found = self.scene.detections.get(camera)
        if found is None:
            return []
        frame = found[self._index(camera, timestamp)]
        people = [Keypoints2D(camera, frame[p].copy()) for p in range(len(frame)) if frame[p, :, 2].max() > 0]
        return [people[i] for i in self._rng.permutation(len(people))]

    def detect(self, camera: str, image: np.ndarray) -> Keypoints2D:
        people = self.detect_people(camera, image)
        return max(people, key=lambda k: float(k.points[:, 2].sum())) if people else Keypoints2D.empty(camera)

    def reset(self, camera: str | None = None) -> None:
        pass

    def close(self) -> None:
        pass
