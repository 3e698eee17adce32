"""Tracking people over time with stable ids: 3D (calibrated rig) and 2D (one uncalibrated view).

Each track has a constant-velocity motion model of its centre (3D: the ground position of the
mid-hip, else of the mean of its confident keypoints; 2D: the mean of its confident keypoints).
Every update the predicted centres are matched to the new people by the Hungarian method on
distance inside a gate (which widens while a track is unseen, but never beyond the distance a
person can walk since the track was last seen, plus the triangulation's jitter), the confirmed
tracks first. A person seen in one view only (placed at the track's depth: weak evidence) may keep
a confirmed track alive and take its id, but never moves it, confirms it or gives birth; nor is a
track born or confirmed where a confirmed track's person stands in the same set. A new
track is tentative (id -1) until it has been matched in ``confirm_sets`` sets (a tentative track
that misses two sets in a row is forgotten); a confirmed track dies after ``timeout_s`` unseen.
In 3D, a track confirmed less than ``return_s`` after another died gets that dead track's id
back when their body sizes agree (height proxy and bone lengths, running medians); while a dead
track could come back and the new body's size is not yet clear, the new track stays tentative a
little longer (at most WAIT_SETS sets) so that an id, once given, does not change. Otherwise ids
come from a counter and are never reused.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

L_HIP, R_HIP = 11, 12
# Bones whose lengths identify a body: upper arms, forearms, thighs, shins, shoulders, hips.
BONES = ((5, 7), (6, 8), (7, 9), (8, 10), (11, 13), (12, 14), (13, 15), (14, 16), (5, 6), (11, 12))
SIZE_SAMPLES = 60  # running medians over the last this many sets
MIN_SIZE_SAMPLES = 3  # a size component counts once measured this many times
HEIGHT_TOL_M = 0.1
BONE_TOL = 0.12  # median relative bone-length difference
TENTATIVE_MISSES = 2  # a tentative track missed in this many sets in a row is forgotten
VELOCITY_SMOOTHING = 0.5  # weight of the newest step in the velocity
MAX_EXTRAPOLATION_S = 0.5  # the motion model predicts at most this far ahead
MAX_SPEED_M_S = 3.0  # 3D velocities are clipped to this; nobody moves faster between two sets
JITTER_M = 0.3  # how far a triangulated centre may jump between two sets without moving (noise)
BODY_WIDTH_M = 0.4  # two people's centres are at least this far apart
HIDDEN_S = 0.5  # a track seen in several views this recently may be hidden behind someone
_UNASSIGNED = 1e6
SURE_SETS = 10  # while a dead track could come back, a new id only after this many measurements
WAIT_SETS = 30  # at most this many more sets tentative while a returning person's size is unclear


class IdCounter:
    """Hands out ids 1, 2, 3... (or from ``first``), never the same twice; one counter may be
    shared by several trackers (one per view) so that their ids never collide."""

    def __init__(self, first: int = 1) -> None:
        self._next = first

    def take(self) -> int:
        value = self._next
        self._next += 1
        return value


@dataclass
class _Track:
    center: np.ndarray
    keypoints: np.ndarray
    last_seen: float
    born: float
    velocity: np.ndarray
    hits: int = 1
    misses: int = 0
    track_id: int = -1
    heard: float = -np.inf  # the last time weak (one-view) evidence kept the track alive
    sizes: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=SIZE_SAMPLES))

    @property
    def alive(self) -> float:
        """The last time anything of this person was seen."""
        return max(self.last_seen, self.heard)

    def predicted_center(self, time_s: float) -> np.ndarray:
        return self.center + self.velocity * min(time_s - self.last_seen, MAX_EXTRAPOLATION_S)

    def size(self) -> np.ndarray | None:
        """Median [height, bone lengths...] over the samples (NaN where measured fewer than
        MIN_SIZE_SAMPLES times: one bad triangulation must not decide who somebody is)."""
        if not self.sizes:
            return None
        stack = np.stack(self.sizes)
        return np.array([np.median(c[np.isfinite(c)]) if np.isfinite(c).sum() >= MIN_SIZE_SAMPLES else np.nan for c in stack.T])


@dataclass
class _Dead:
    track_id: int
    died: float
    size: np.ndarray | None


class _BaseTracker:
    """Births, deaths and assignment; subclasses say what a person's centre and distance are."""

    def __init__(self, confirm_sets: int, timeout_s: float, gate: float, counter: IdCounter) -> None:
        self.confirm_sets = confirm_sets
        self.timeout_s = timeout_s
        self.gate = gate
        self._counter = counter
        self.max_speed = np.inf  # units per second; the velocity is clipped to this
        self._tracks: list[_Track] = []
        self._first_seen: dict[int, float] = {}

    def update(self, time_s: float, people: list[np.ndarray], weak: list[bool] | None = None) -> list[int]:
        """Match ``people`` seen at ``time_s``; an id per person, -1 while its track is tentative
        (or, for weak evidence, when no confirmed track takes it). ``weak``: per person, whether it
        is only weak evidence (seen in one view, placed at a track's depth): it keeps a confirmed
        track alive but does not move it."""
        self._expire(time_s)
        people = [np.asarray(p, np.float64) for p in people]
        weak = [False] * len(people) if weak is None else list(weak)
        centers = [self._center(p) for p in people]
        rows = [i for i, c in enumerate(centers) if c is not None]
        pairs = self._assign(time_s, [people[i] for i in rows], [centers[i] for i in rows], [weak[i] for i in rows])  # type: ignore[misc]
        ids = [-1] * len(people)
        matched = set()
        # the confirmed tracks' people first: nobody else is born or confirmed where they stand
        pairs.sort(key=lambda rk: self._tracks[rk[1]].track_id < 0)
        standing: list[np.ndarray] = []
        for r, k in pairs:
            track, i = self._tracks[k], rows[r]
            if track.track_id < 0 and self._near(centers[i], standing):  # type: ignore[arg-type]
                continue  # a second track on a confirmed person: a duplicate
            if weak[i]:
                track.heard, track.misses = time_s, 0
            else:
                self._observe(track, time_s, people[i], centers[i])  # type: ignore[arg-type]
            if track.track_id >= 0:
                standing.append(centers[i])  # type: ignore[arg-type]
            matched.add(k)
            ids[i] = track.track_id
        for k, track in enumerate(self._tracks):
            if k not in matched:
                track.misses += 1
        taken = {r for r, _ in pairs}
        for r in (r for r in range(len(rows)) if r not in taken):
            i = rows[r]
            if weak[i] or self._near(centers[i], standing):  # type: ignore[arg-type]
                continue
            track = _Track(centers[i], people[i], time_s, time_s, np.zeros_like(centers[i]))  # type: ignore[arg-type]
            self._measure(track, people[i])
            self._tracks.append(track)
            self._maybe_confirm(track, time_s)
            ids[i] = track.track_id
        self._tracks = [t for t in self._tracks if t.track_id >= 0 or t.misses < TENTATIVE_MISSES]
        return ids

    def _near(self, center: np.ndarray, others: list[np.ndarray]) -> bool:
        """Whether ``center`` stands where one of ``others`` does (no two people there)."""
        return False

    def _live(self, time_s: float) -> list[_Track]:
        return [t for t in self._tracks if time_s - t.alive <= self.timeout_s]

    def first_seen(self, track_id: int) -> float:
        """When the person of ``track_id`` was first seen (the first set of its first track)."""
        if track_id not in self._first_seen:
            raise KeyError(f"no track with id {track_id}")
        return self._first_seen[track_id]

    def _assign(
        self, time_s: float, people: list[np.ndarray], centers: list[np.ndarray], weak: list[bool]
    ) -> list[tuple[int, int]]:
        """(person, track) pairs: the confirmed tracks choose first, the tentative ones take the
        rest (never weak evidence)."""
        if not people or not self._tracks:
            return []
        cost = np.array([[self._distance(t, time_s, p, c) for t in self._tracks] for p, c in zip(people, centers, strict=True)])
        gates = np.array([self._gate(t, time_s) for t in self._tracks])
        cost = np.where(cost <= gates[None], cost, _UNASSIGNED)
        tentative = np.array([t.track_id < 0 for t in self._tracks])
        cost[np.ix_(np.asarray(weak, bool), tentative)] = _UNASSIGNED
        pairs: list[tuple[int, int]] = []
        for confirmed in (True, False):
            free_rows = [r for r in range(len(people)) if r not in {r for r, _ in pairs}]
            cols = [k for k, t in enumerate(self._tracks) if (t.track_id >= 0) == confirmed]
            if free_rows and cols:
                block = cost[np.ix_(free_rows, cols)]
                rows, picked = linear_sum_assignment(block)
                pairs += [(free_rows[r], cols[c]) for r, c in zip(rows, picked, strict=True) if block[r, c] < _UNASSIGNED]
        return pairs

    def _gate(self, track: _Track, time_s: float) -> float:
        """How far from its prediction a track may find its person: the gate, widening while the
        track is unseen."""
        return self.gate * (1.0 + min(max(time_s - track.alive, 0.0) / self.timeout_s, 1.0))

    def _observe(self, track: _Track, time_s: float, person: np.ndarray, center: np.ndarray) -> None:
        dt = time_s - track.last_seen
        if dt > 1e-6:
            step = (center - track.center) / dt
            velocity = step if track.hits == 1 else VELOCITY_SMOOTHING * step + (1 - VELOCITY_SMOOTHING) * track.velocity
            speed = float(np.linalg.norm(velocity))
            track.velocity = velocity * min(1.0, self.max_speed / speed) if speed > 0 else velocity
        track.center, track.keypoints, track.last_seen = center, person, time_s
        track.hits += 1
        track.misses = 0
        self._measure(track, person)
        self._maybe_confirm(track, time_s)

    def _maybe_confirm(self, track: _Track, time_s: float) -> None:
        """Give a tentative track seen in ``confirm_sets`` sets its id: a dead track's when it is
        that person, else a new one. A person coming back is often half-seen at the door: while
        their size cannot yet tell them from a dead track (for up to WAIT_SETS more sets), the
        track stays tentative rather than risk an id that would change later; so does any new track
        while a dead track could come back, until SURE_SETS sets have measured its size."""
        if track.track_id >= 0 or track.hits < self.confirm_sets:
            return
        old = self._reclaim(track, time_s, final=track.hits >= self.confirm_sets + WAIT_SETS)
        if old is None:
            return
        track.track_id = old if old >= 0 else self._counter.take()
        self._first_seen.setdefault(track.track_id, track.born)

    def _expire(self, time_s: float) -> None:
        for track in self._tracks:
            if track.track_id >= 0 and time_s - track.alive > self.timeout_s:
                self._bury(track)
        self._tracks = [t for t in self._tracks if t.track_id < 0 or time_s - t.alive <= self.timeout_s]

    def _bury(self, track: _Track) -> None:
        """A confirmed track ends (subclasses may remember it)."""

    def _reclaim(self, track: _Track, time_s: float, final: bool) -> int | None:
        """The id of a dead track this one continues, -1 for none, None for "not sure yet" (only
        when not ``final``)."""
        return -1

    def _measure(self, track: _Track, person: np.ndarray) -> None:
        """Record the body size of ``person`` on ``track`` (subclasses)."""

    def _center(self, person: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def _distance(self, track: _Track, time_s: float, person: np.ndarray, center: np.ndarray) -> float:
        raise NotImplementedError


class Tracker(_BaseTracker):
    """Tracks people ``[17, 4]`` (world metres + confidence) across frame-sets of a calibrated rig."""

    def __init__(
        self,
        confirm_sets: int = 3,
        timeout_s: float = 1.0,
        return_s: float = 60.0,
        gate_m: float = 0.7,
        counter: IdCounter | None = None,
        min_confidence: float = 0.1,
    ) -> None:
        super().__init__(confirm_sets, timeout_s, gate_m, counter or IdCounter())
        self.max_speed = MAX_SPEED_M_S
        self.return_s = return_s
        self.min_confidence = min_confidence
        self._dead: list[_Dead] = []

    def predict(self, time_s: float) -> np.ndarray:
        """Predicted keypoints ``[N, 17, 4]`` of the live tracks (confirmed and tentative) at ``time_s``."""
        live = self._live(time_s)
        if not live:
            return np.zeros((0, 17, 4))
        out = np.stack([t.keypoints for t in live]).copy()
        out[..., :2] += np.stack([t.predicted_center(time_s) - t.center for t in live])[:, None]
        return out

    def established(self, time_s: float) -> np.ndarray:
        """``[N]`` for the tracks of :meth:`predict` (same order): confirmed and seen in several
        views less than HIDDEN_S ago (someone who may be hidden behind another person in a view)."""
        return np.array([t.track_id >= 0 and time_s - t.last_seen <= HIDDEN_S for t in self._live(time_s)], bool)

    def _gate(self, track: _Track, time_s: float) -> float:
        """The gate, but never beyond how far the person can have walked since the track was last
        seen (plus the triangulation's jitter): a far jump is somebody else, or a wrong pairing."""
        reach = JITTER_M + self.max_speed * max(time_s - track.last_seen, 0.0)
        return min(super()._gate(track, time_s), reach)

    def _near(self, center: np.ndarray, others: list[np.ndarray]) -> bool:
        return any(float(np.linalg.norm(center - o)) < BODY_WIDTH_M for o in others)

    def _usable(self, person: np.ndarray) -> np.ndarray:
        return (np.nan_to_num(person[:, 3]) >= self.min_confidence) & np.all(np.isfinite(person[:, :3]), -1)

    def _center(self, person: np.ndarray) -> np.ndarray | None:
        """Ground position ``[2]`` (x, y): the mid-hip's, else the mean of the usable keypoints'."""
        usable = self._usable(person)
        if usable[L_HIP] and usable[R_HIP]:
            return 0.5 * (person[L_HIP, :2] + person[R_HIP, :2])
        return person[usable, :2].mean(0) if usable.any() else None

    def _distance(self, track: _Track, time_s: float, person: np.ndarray, center: np.ndarray) -> float:
        return float(np.linalg.norm(track.predicted_center(time_s) - center))

    def _measure(self, track: _Track, person: np.ndarray) -> None:
        track.sizes.append(body_size(person, self.min_confidence))

    def _bury(self, track: _Track) -> None:
        self._dead.append(_Dead(track.track_id, track.last_seen, track.size()))

    def _reclaim(self, track: _Track, time_s: float, final: bool) -> int | None:
        self._dead = [d for d in self._dead if time_s - d.died <= self.return_s]
        live = {t.track_id for t in self._tracks}
        candidates = [d for d in self._dead if d.track_id not in live]
        if not candidates:
            return -1
        size = track.size()
        scored = [(size_difference(size, d.size), -d.died, d.track_id) for d in candidates]
        best = min((s for s in scored if s[0] <= 1.0), default=(0.0, 0.0, -1))[2]
        if best < 0 and not final and (len(track.sizes) < SURE_SETS or not _well_measured(size)):
            return None
        self._dead = [d for d in self._dead if d.track_id != best]
        return best


_BONE_A = np.array([a for a, _ in BONES])
_BONE_B = np.array([b for _, b in BONES])


def body_size(person: np.ndarray, min_confidence: float = 0.1) -> np.ndarray:
    """[height proxy, bone lengths...] of keypoints ``[17, 4]`` (NaN where not measurable).

    The height proxy adds shin, thigh and hip-to-shoulder lengths (pose-independent, unlike
    the top-to-floor height) plus the shoulder-to-nose height."""
    usable = (np.nan_to_num(person[:, 3]) >= min_confidence) & np.all(np.isfinite(person[:, :3]), -1)
    xyz = np.where(usable[:, None], person[:, :3], np.nan)
    bones = np.linalg.norm(xyz[_BONE_A] - xyz[_BONE_B], axis=-1)
    shin = bones[6] if np.isnan(bones[7]) else bones[7] if np.isnan(bones[6]) else 0.5 * (bones[6] + bones[7])
    thigh = bones[4] if np.isnan(bones[5]) else bones[5] if np.isnan(bones[4]) else 0.5 * (bones[4] + bones[5])
    shoulders = 0.5 * (xyz[5] + xyz[6])
    torso = np.linalg.norm(shoulders - 0.5 * (xyz[11] + xyz[12]))
    neck = np.linalg.norm(xyz[0] - shoulders)
    return np.concatenate([[shin + thigh + torso + neck], bones])


def _well_measured(size: np.ndarray | None) -> bool:
    """Enough of a body size to tell two people apart: the height proxy and most bones."""
    return size is not None and bool(np.isfinite(size[0])) and int(np.isfinite(size[1:]).sum()) >= 7


def size_difference(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """How far two body sizes are apart in units of the tolerance (<= 1: the same body): the worse
    of the height and the median bone-length difference, of those measured in both; inf when
    neither is (fewer than 3 bones in common and no height)."""
    if a is None or b is None:
        return float("inf")
    height = abs(a[0] - b[0]) / HEIGHT_TOL_M if np.isfinite(a[0]) and np.isfinite(b[0]) else None
    both = np.isfinite(a[1:]) & np.isfinite(b[1:])
    bones = float(np.median(np.abs(a[1:][both] - b[1:][both]) / b[1:][both])) / BONE_TOL if both.sum() >= 3 else None
    known = [d for d in (height, bones) if d is not None]
    return max(known) if known else float("inf")


class Tracker2D(_BaseTracker):
    """Tracks people ``[17, 3]`` (px, conf) in one uncalibrated view. Distance: the mean keypoint
    distance over the keypoints both see, divided by the track's box diagonal, or 1 - box IoU when
    they share fewer than 3 keypoints. Give each view's tracker the same ``counter`` (or a
    different ``first_id``) so that ids are unique across views. No re-identification."""

    def __init__(
        self,
        confirm_sets: int = 3,
        timeout_s: float = 1.0,
        gate: float = 0.5,
        first_id: int = 1,
        counter: IdCounter | None = None,
        min_confidence: float = 0.3,
    ) -> None:
        super().__init__(confirm_sets, timeout_s, gate, counter or IdCounter(first_id))
        self.min_confidence = min_confidence

    def predict(self, time_s: float) -> np.ndarray:
        """Predicted keypoints ``[N, 17, 3]`` (px, conf) of the live tracks at ``time_s``."""
        live = self._live(time_s)
        if not live:
            return np.zeros((0, 17, 3))
        out = np.stack([t.keypoints for t in live]).copy()
        out[..., :2] += np.stack([t.predicted_center(time_s) - t.center for t in live])[:, None]
        return out

    def _center(self, person: np.ndarray) -> np.ndarray | None:
        usable = person[:, 2] >= self.min_confidence
        return person[usable, :2].mean(0) if usable.sum() >= 2 else None

    def _distance(self, track: _Track, time_s: float, person: np.ndarray, center: np.ndarray) -> float:
        predicted = track.keypoints[:, :2] + (track.predicted_center(time_s) - track.center)
        both = (track.keypoints[:, 2] >= self.min_confidence) & (person[:, 2] >= self.min_confidence)
        box = _box(np.where(both[:, None], predicted, np.nan)) if both.sum() >= 3 else None
        if box is not None:
            diagonal = max(float(np.hypot(box[2] - box[0], box[3] - box[1])), 1.0)
            return float(np.linalg.norm(predicted[both] - person[both, :2], axis=-1).mean()) / diagonal
        mine = _box(np.where((track.keypoints[:, 2] >= self.min_confidence)[:, None], predicted, np.nan))
        theirs = _box(np.where((person[:, 2] >= self.min_confidence)[:, None], person[:, :2], np.nan))
        return 1.0 - _iou(mine, theirs) if mine is not None and theirs is not None else float("inf")


def _box(points: np.ndarray) -> np.ndarray | None:
    """x0, y0, x1, y1 of the finite points ``[N, 2]``."""
    finite = np.all(np.isfinite(points), -1)
    if not finite.any():
        return None
    return np.concatenate([points[finite].min(0), points[finite].max(0)])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union) if union > 0 else 0.0
