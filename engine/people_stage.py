"""From every view's detections to the people of a frame-set: association across calibrated
views and 3D tracking with stable ids (engine.people), or, when the room is not calibrated, 2D
tracking in each view on its own; and the top-down recovery of people a view's detector missed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.camera import Camera, rig_calibrated
from core.types import Keypoints2D, Person
from engine.people import IdCounter, Tracker, Tracker2D, associate_and_track

NO_DETECTIONS = np.zeros((0, 17, 3), np.float32)
REWIND_S = 0.05  # time going back by more than this is a replay starting again
REST_TURNS = 8  # frame-sets a view is left alone after a top-down look found nobody there
Box = tuple[int, int, int, int]


class PeopleStage:
    """Turns detections ``{camera: [P, 17, 3]}`` into :class:`Person` objects with stable ids.

    Calibrated rig (every camera calibrated, at least two): the detections are grouped across
    views, triangulated and tracked in 3D (ids 1, 2, ...). Otherwise each view tracks its own
    people in 2D and every person has one view (ids drawn from one counter: unique across views)."""

    def __init__(self, cameras: list[Camera], min_confidence: float = 0.3) -> None:
        self.cameras = list(cameras)
        self.min_confidence = min_confidence
        self.calibrated = rig_calibrated(self.cameras)
        self.restart(again=False)

    def restart(self, again: bool = True) -> None:
        """Forget everyone: ids start again from 1. ``again``: a replay starting over, whose
        people were confirmed on the last pass: whoever is seen on its first frame-set is
        confirmed at once (a slow machine replaying a short loop would otherwise show nobody)."""
        self.tracker = Tracker()
        counter = IdCounter()
        self.view_trackers = {c.name: Tracker2D(counter=counter) for c in self.cameras}
        self._last_time: float | None = None
        self._confirm_at_once = again

    def _rewound(self, time_s: float) -> bool:
        """Whether ``time_s`` goes back from the last frame-set's: a replay rewound or looping,
        whose people are tracked afresh (:meth:`people` restarts)."""
        return self._last_time is not None and time_s < self._last_time - REWIND_S

    def predicted(self, time_s: float) -> np.ndarray:
        """``[N, 17, 4]`` where the tracked people should be now (calibrated rigs; else empty)."""
        if not self.calibrated or self._rewound(time_s):
            return np.zeros((0, 17, 4))
        return self.tracker.predict(time_s)

    def people(self, time_s: float, detections: dict[str, np.ndarray]) -> list[Person]:
        """Everyone confirmed at ``time_s``, by increasing id."""
        if self._rewound(time_s):
            self.restart()
        self._last_time = time_s
        trackers = [self.tracker, *self.view_trackers.values()]
        usual = [t.confirm_sets for t in trackers]
        if self._confirm_at_once:
            for tracker in trackers:
                tracker.confirm_sets = 1
        try:
            found = self._people_3d(time_s, detections) if self.calibrated else self._people_2d(time_s, detections)
        finally:
            for tracker, sets in zip(trackers, usual, strict=True):
                tracker.confirm_sets = sets
            self._confirm_at_once = False
        return sorted(found, key=lambda p: p.id)

    def _people_3d(self, time_s: float, detections: dict[str, np.ndarray]) -> list[Person]:
        per_view = [np.asarray(detections.get(c.name, NO_DETECTIONS), np.float64) for c in self.cameras]
        groups, ids = associate_and_track(self.tracker, self.cameras, per_view, time_s, self.min_confidence)
        people = []
        for group, track in zip(groups, ids, strict=True):
            if track < 0:
                continue  # a birth not yet confirmed
            keypoints = {  # as the group holds them: a detection seen mirrored, with left and right exchanged
                self.cameras[v].name: Keypoints2D(self.cameras[v].name, group.keypoints(v, per_view[v][i]).astype(np.float32))
                for v, i in group.detections.items()
            }
            errors = {c.name: float(e) for c, e in zip(self.cameras, group.errors_px, strict=True) if np.isfinite(e)}
            people.append(Person(track, keypoints, group.points, errors, first_seen=self.tracker.first_seen(track)))
        return people

    def _people_2d(self, time_s: float, detections: dict[str, np.ndarray]) -> list[Person]:
        people = []
        for camera in self.cameras:
            found = [p for p in np.asarray(detections.get(camera.name, NO_DETECTIONS), np.float64)]
            tracker = self.view_trackers[camera.name]
            for points, track in zip(found, tracker.update(time_s, found), strict=True):
                if track >= 0:
                    kp = Keypoints2D(camera.name, points.astype(np.float32))
                    people.append(Person(track, {camera.name: kp}, first_seen=tracker.first_seen(track)))
        return people


def recover_missed(
    cameras: list[Camera],
    images: dict[str, np.ndarray],
    detections: dict[str, np.ndarray],
    predicted: np.ndarray,
    detect_region: Callable[[str, np.ndarray, Box], Keypoints2D],
    max_calls: int = 1,
    turn: int = 0,
    resting: dict[str, int] | None = None,
) -> int:
    """Look again, top-down, where a tracked person (``predicted`` ``[N, 17, 4]``) projects into a
    view that detected nobody there: the detector looks inside that box alone, and what it finds there
    is added to the view's detections (in place). Each look costs about as much as a detection,
    so at most ``max_calls`` are made, taking the misses in turn (``turn``: e.g. the frame-set
    index) so that every one is retried. ``resting`` (camera -> turn): a view where a look found
    nobody is left alone until that turn (:data:`REST_TURNS` later; updated in place), so that a
    person a view cannot see (hidden, or out of the detector's reach) costs a look only now and
    then. Returns how many people were recovered."""
    misses = []
    resting = {} if resting is None else resting
    for camera in cameras:
        if camera.name not in images or turn < resting.get(camera.name, turn):
            continue
        for person in predicted:
            expected = _projection(camera, person)
            if expected is not None and not _seen(expected, detections.get(camera.name, NO_DETECTIONS)):
                box = _box(camera, expected)
                if box is not None:
                    misses.append((camera.name, expected, box))
    recovered = 0
    for k in range(min(max_calls, len(misses))):
        name, expected, box = misses[(turn + k) % len(misses)]
        found = detect_region(name, images[name], box)
        if found.found and _seen(expected, found.points[None]):
            detections[name] = np.concatenate([detections.get(name, NO_DETECTIONS), found.points[None]])
            recovered += 1
            resting.pop(name, None)
        else:
            resting[name] = turn + REST_TURNS
    return recovered


def _projection(camera: Camera, points: np.ndarray) -> np.ndarray | None:
    """``[k, 2]`` pixels of the confident, finite keypoints in front of ``camera`` (None when
    fewer than 4 land inside the image)."""
    ok = np.isfinite(points[:, :3]).all(axis=1) & (points[:, 3] > 0)
    if ok.sum() < 4 or np.any(camera.depth(points[ok, :3]) <= 0.1):
        return None
    xy = camera.project(points[ok, :3])
    w, h = camera.image_size
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    return xy if inside.sum() >= 4 else None


def _size(xy: np.ndarray) -> float:
    return float(max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 1.0))


def _seen(expected: np.ndarray, detections: np.ndarray) -> bool:
    """Whether a detection's centre lies within a quarter of the person's size of where the
    person is expected."""
    centre, size = expected.mean(axis=0), _size(expected)
    for det in detections:
        conf = det[:, 2] > 0
        if conf.sum() >= 4 and np.linalg.norm(det[conf, :2].mean(axis=0) - centre) < 0.25 * size:
            return True
    return False


def _box(camera: Camera, xy: np.ndarray, margin: float = 0.3) -> Box | None:
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    pad = margin * _size(xy)
    w, h = camera.image_size
    box = (int(max(0, x0 - pad)), int(max(0, y0 - pad)), int(min(w, x1 + pad)), int(min(h, y1 + pad)))
    return box if box[2] - box[0] >= 16 and box[3] - box[1] >= 16 else None
