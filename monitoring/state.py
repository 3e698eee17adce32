"""Per-person state every frame-set: posture, zone, speed, head and pelvis height, time in the state.

The state is read from the person's 3D body in the world (Z up, floor at z = 0): the SMPL joints of
the fused body when there is one, else the triangulated COCO-17 keypoints. Uncalibrated views have
no floor, so nobody gets a state there (only the people count is known).

Postures (POSTURES): standing, walking, sitting, lying (above the floor: a bed, a sofa), crouching
(kneeling or crouching), on_floor (lying or sitting on the floor). A posture is taken once it has
held for ``posture_confirm_s``; ``since`` is when it began (the first frame-set showing it), so the
time in a state is counted from the moment it really started.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from core.types import BodyEstimate, Person
from monitoring.config import MonitorConfig, Thresholds

STILL_WINDOW_S = 2.0  # stillness is judged on the median of this much time ...
MOVE_CONFIRM_S = 0.5  # ... and a move counts once the median has stayed away this long
GAP_S = 0.5  # unseen longer than this: the median starts afresh
MIN_SAMPLES = 3  # sightings the median needs
BEFORE_GAP_S = 0.5  # the pose of the last sightings (at most MIN_SAMPLES) this close before a gap is kept
EPS = 1e-6  # seconds: frame times are sums of float steps; a duration of exactly a threshold counts
POSTURES = ("standing", "walking", "sitting", "lying", "crouching", "on_floor")

# COCO-17 indices
_HEAD = (0, 1, 2, 3, 4)
_SHOULDERS = (5, 6)
_HIPS = (11, 12)
_KNEES = (13, 14)
_ANKLES = (15, 16)
# SMPL joints
_SMPL_PELVIS, _SMPL_HEAD, _SMPL_SHOULDERS, _SMPL_KNEES, _SMPL_ANKLES = 0, 15, (16, 17), (4, 5), (7, 8)


@dataclass(frozen=True)
class Landmarks:
    """What the rules read from one body: world points, metres."""

    head: np.ndarray  # [3]
    chest: np.ndarray  # [3] between the shoulders
    pelvis: np.ndarray  # [3]
    knee_z: float
    ankle: np.ndarray  # [3] between the ankles
    points: np.ndarray  # [K, 3] every point seen (for "did anything move")

    @staticmethod
    def from_keypoints(points: np.ndarray, min_confidence: float = 0.05) -> Landmarks | None:
        """From triangulated COCO-17 keypoints ``[17, 4]`` (x, y, z, confidence); None without hips and head."""
        seen = (points[:, 3] > min_confidence) & np.isfinite(points[:, :3]).all(axis=1)

        def mean(ids: tuple[int, ...]) -> np.ndarray | None:
            chosen = [i for i in ids if seen[i]]
            return points[chosen, :3].mean(axis=0) if chosen else None

        head, chest, pelvis, knees, ankles = (mean(i) for i in (_HEAD, _SHOULDERS, _HIPS, _KNEES, _ANKLES))
        if head is None or pelvis is None:
            return None
        chest = chest if chest is not None else (head + pelvis) / 2
        ankle = ankles if ankles is not None else np.array([pelvis[0], pelvis[1], 0.0])
        knee_z = float(knees[2]) if knees is not None else float(pelvis[2] + ankle[2]) / 2
        return Landmarks(head, chest, pelvis, knee_z, ankle, points[seen, :3].astype(float))

    @staticmethod
    def from_joints(joints: np.ndarray) -> Landmarks | None:
        """From the fused body's SMPL joints ``[24, 3]`` (world metres)."""
        if joints.shape != (24, 3) or not np.isfinite(joints).all():
            return None
        j = joints.astype(float)
        return Landmarks(j[_SMPL_HEAD], j[list(_SMPL_SHOULDERS)].mean(axis=0), j[_SMPL_PELVIS],
                         float(j[list(_SMPL_KNEES), 2].mean()), j[list(_SMPL_ANKLES)].mean(axis=0), j)  # fmt: skip

    @property
    def tilt_deg(self) -> float:
        """The torso's angle from the vertical (0 upright, 90 horizontal)."""
        up = self.chest - self.pelvis
        norm = float(np.linalg.norm(up))
        return 90.0 if norm < 1e-6 else math.degrees(math.acos(max(-1.0, min(1.0, up[2] / norm))))


@dataclass(frozen=True)
class Observation:
    """One tracked person in one frame-set, as the monitor sees them."""

    person: int
    landmarks: Landmarks | None  # None: tracked but not placed in 3D (uncalibrated, or too few views)
    view: str | None = None  # the one view that tracks this person in a room not calibrated (see people_count)


def people_count(seen: Iterable[Observation]) -> int:
    """How many people ``seen`` holds. Where the room is not calibrated each view tracks its own
    people (``view``) and nothing tells whether two views' people are the same person: they count
    as many as the view that sees the most (everyone in a one-camera room; with several cameras, at
    least that many are there). People placed in the room count one each."""
    placed, per_view = 0, collections.Counter[str]()
    for obs in seen:
        if obs.view is None:
            placed += 1
        else:
            per_view[obs.view] += 1
    return placed + max(per_view.values(), default=0)


def one_view(views_2d: Iterable[np.ndarray], min_confidence: float = 0.05) -> bool:
    """Whether a person's 2D keypoints (``[17, 3]`` per view) come from exactly one view: the tracker
    then placed that view's points at the track's last depth (enough to keep the id), so their heights
    are guesses, off by tens of centimetres once the person lies down or gets up, which reads as a
    fall. (No view at all: the 2D was not kept, as in some results files; the 3D is taken as it is.)"""
    return sum(1 for points in views_2d if (np.asarray(points)[:, 2] > min_confidence).any()) == 1


def observations(estimate: BodyEstimate) -> list[Observation]:
    """Everyone the pipeline tracked in a frame-set: the fused body's joints first, the triangulation
    next (not from one view: see :func:`one_view`)."""
    found = []
    for person in estimate.people:
        marks = None
        if person.body is not None and person.body.joints is not None:
            marks = Landmarks.from_joints(person.body.joints)
        if marks is None and person.keypoints3d is not None and not one_view(k.points for k in person.keypoints2d.values()):
            marks = Landmarks.from_keypoints(person.keypoints3d)
        found.append(Observation(person.id, marks, alone_view(person)))
    return found


def alone_view(person: Person) -> str | None:
    """The one view that tracks ``person`` where the room is not calibrated (not placed in the
    room: no triangulated keypoints, no fused body), else None (see :func:`people_count`)."""
    if person.keypoints3d is None and (person.body is None or not person.body.fused) and len(person.keypoints2d) == 1:
        return next(iter(person.keypoints2d))
    return None


def classify(marks: Landmarks, speed: float, limits: Thresholds) -> str:
    """The posture one body shows at one instant (see POSTURES)."""
    head_z, pelvis_z = float(marks.head[2]), float(marks.pelvis[2])
    if pelvis_z < 0.25 or (pelvis_z < limits.floor_pelvis_m and head_z < limits.floor_head_m):
        return "on_floor"
    tilt = marks.tilt_deg
    if tilt > 60.0 or head_z - pelvis_z < 0.25:
        return "on_floor" if head_z < limits.floor_head_m and pelvis_z < limits.floor_pelvis_m + 0.1 else "lying"
    legs = pelvis_z - float(marks.ankle[2])  # from the feet, not the floor: a body placed a little off the floor
    if legs > 0.65 and tilt < 45.0:  # (a far person seen by two views) still stands
        return "walking" if speed > limits.walking_mps else "standing"
    feet_under = float(np.linalg.norm(marks.ankle[:2] - marks.pelvis[:2])) < 0.25
    if marks.knee_z < 0.22 or (pelvis_z < 0.6 and feet_under):
        return "crouching"
    if legs > 0.65:  # upright legs, bent torso: picking something up, bending over a bed
        return "standing"
    return "sitting"


@dataclass(frozen=True)
class PersonState:
    """What the monitor knows about one person at one instant."""

    person: int
    t: float
    posture: str
    since: float  # when the posture began (s)
    zone: str | None
    zone_kind: str | None
    position: tuple[float, float]  # pelvis on the floor (x, y), metres
    head_z: float
    pelvis_z: float
    speed: float  # horizontal, m/s
    still_since: float  # nothing moved more than still_m since then (s)
    floor_since: float | None = None  # came down to the floor then and has not stood up since (s); a
    # person struggling on the floor who props up on an arm for a moment stays in the same episode
    still_known: bool = True  # False after a gap in tracking until the sightings tell moved or not (still_since stale)

    @property
    def duration(self) -> float:
        return self.t - self.since

    def to_record(self) -> dict[str, object]:
        return {"person": self.person, "posture": self.posture, "posture_s": round(self.duration, 2), "zone": self.zone,
                "position": [round(self.position[0], 3), round(self.position[1], 3)], "head_z": round(self.head_z, 3),
                "pelvis_z": round(self.pelvis_z, 3), "speed": round(self.speed, 3),
                "still_s": round(self.t - self.still_since, 2),
                "floor_s": None if self.floor_since is None else round(self.t - self.floor_since, 2)}  # fmt: skip


class StateTracker:
    """Turns one person's landmarks over time into their state (posture held for a moment, speed, stillness)."""

    def __init__(self, person: int, config: MonitorConfig) -> None:
        self.person = person
        self.config = config
        self.limits = config.thresholds
        self.history: collections.deque[tuple[float, np.ndarray]] = collections.deque()  # (t, pelvis)
        self.posture: str | None = None
        self.since = 0.0
        self.candidate: str | None = None
        self.candidate_since = 0.0
        self.still_ref: np.ndarray | None = None
        self.still_since = 0.0
        self.recent: collections.deque[tuple[float, np.ndarray]] = collections.deque()
        self.moving_since: float | None = None
        self.before_gap: tuple[float, np.ndarray] | None = None  # (since, median pose) just before a gap
        self.still_known = True
        self.floor_since: float | None = None  # on the floor since (until standing again), see PersonState
        self.state: PersonState | None = None

    def update(self, t: float, marks: Landmarks) -> PersonState:
        self.history.append((t, marks.pelvis.copy()))
        while self.history and self.history[0][0] < t - 0.6:
            self.history.popleft()
        t0, p0 = self.history[0]
        speed = float(np.linalg.norm(marks.pelvis[:2] - p0[:2]) / (t - t0)) if t - t0 > 0.15 else 0.0
        raw = classify(marks, speed, self.limits)
        if self.posture is None:
            self.posture, self.since = raw, t
        if raw != self.candidate:
            self.candidate, self.candidate_since = raw, t
        moving = {"standing", "walking"}
        same_kind = raw in moving and self.posture in moving  # standing <-> walking needs no confirmation
        if raw != self.posture and (same_kind or t - self.candidate_since >= self.limits.posture_confirm_s - EPS):
            self.posture = raw
            self.since = self.since if same_kind else self.candidate_since
        self._stillness(t, marks)
        zone = self.config.zone_at(marks.pelvis[:2])
        if self.posture == "on_floor":
            self.floor_since = self.since if self.floor_since is None else self.floor_since
        elif self.posture in ("standing", "walking") or (zone is not None and zone.kind in ("bed", "chair")):
            self.floor_since = None  # up again (or onto the furniture): the floor episode is over
        self.state = PersonState(self.person, t, self.posture, self.since, zone.name if zone else None,
                                 zone.kind if zone else None, (float(marks.pelvis[0]), float(marks.pelvis[1])),
                                 float(marks.head[2]), float(marks.pelvis[2]), speed, self.still_since,
                                 self.floor_since, self.still_known)  # fmt: skip
        return self.state

    def _stillness(self, t: float, marks: Landmarks) -> None:
        """Did anything move more than ``still_m``? Judged on the median of the last 2 s of
        head, chest, pelvis and feet, and only once that median has stayed away for
        ``MOVE_CONFIRM_S``, so that outliers or a view dropping out (a triangulated point jumping
        10 cm for a few frames) do not count as movement. One part alone counts from twice
        ``still_m`` (a leg moved); below that it takes two parts: a body estimated afresh after
        a gap in tracking, or from one view, puts one part of a person lying still 10-11 cm off."""
        if self.recent and t - self.recent[-1][0] > GAP_S:
            # unseen for a while: the median starts afresh, but the pose just before the gap is kept
            # (a person found again in that pose did not move while unseen: still since then)
            last = [(ti, p) for ti, p in self.recent if ti >= self.recent[-1][0] - BEFORE_GAP_S][-MIN_SAMPLES:]
            self.before_gap = (last[0][0], np.median(np.stack([p for _, p in last]), axis=0))
            self.recent.clear()
            self.moving_since = None
            self.still_known = False  # until the sightings after the gap tell moved or not
        self.recent.append((t, np.vstack([marks.head, marks.chest, marks.pelvis, marks.ankle])))
        while self.recent[0][0] < t - STILL_WINDOW_S:
            self.recent.popleft()
        if self.still_ref is not None and len(self.recent) < MIN_SAMPLES:
            return  # too few sightings since a gap to tell a move from noise
        points = np.median(np.stack([p for _, p in self.recent]), axis=0)
        if self.still_ref is None:
            self.still_ref, self.still_since = points, t
            return
        if not self._moved(points, self.still_ref):
            self.moving_since, self.before_gap, self.still_known = None, None, True
            return
        moved_at = self.recent[len(self.recent) // 2][0]  # the median lags by about half the window
        if self.before_gap is not None and not self._moved(points, self.before_gap[1]):
            moved_at = self.before_gap[0]  # the move ended before the gap: in this pose since then
        self.moving_since = moved_at if self.moving_since is None else self.moving_since
        if t - self.moving_since >= MOVE_CONFIRM_S - EPS:  # a move that lasted: not a glitch
            self.still_ref, self.still_since, self.moving_since = points, max(self.still_since, self.moving_since), None
            self.before_gap, self.still_known = None, True

    def _moved(self, points: np.ndarray, ref: np.ndarray) -> bool:
        """Head, chest, pelvis and feet ``points`` away from ``ref``: two parts more than ``still_m``,
        or one part more than twice that."""
        moved = np.abs(points - ref).max(axis=1)
        return bool(moved.max() > 2.0 * self.limits.still_m or np.sum(moved > self.limits.still_m) >= 2)
