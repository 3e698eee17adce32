"""A body for every tracked person: one :class:`LiveBody` state (temporal filter, held shape,
warm start) per track id, forgotten some time after the person was last seen; HeatFormer and the
refinement each run once per frame-set for everyone."""

from __future__ import annotations

import numpy as np

from core.camera import Camera
from core.formats import RESULTS_FORMAT_VERSION, KeypointsFile, people_arrays
from core.types import BodyEstimate, FrameSet, Person
from engine.heatformer.inference import Runner
from engine.heatformer.live import LiveBody, finish_all, keep_facing
from engine.heatformer.model import HeatFormer
from engine.heatformer.temporal import smooth_sequence
from engine.people_stage import PeopleStage

UNCALIBRATED_SPACING_M = 0.8  # uncalibrated: the viewport stands people side by side, this far apart


class PeopleBodies:
    """Fills every :class:`Person`'s ``body``, ``views``, ``fused`` and ``mesh3d`` in
    ``estimate.people``. ``forget_s``: a track's state is dropped after this long unseen."""

    def __init__(self, live: LiveBody, forget_s: float = 10.0) -> None:
        self.live = live
        self.forget_s = forget_s
        self._tracks: dict[int, tuple[LiveBody, float]] = {}
        self._last_time: float | None = None

    @property
    def runner(self) -> object:
        return self.live.runner

    @property
    def calibrated(self) -> bool:
        return self.live.calibrated

    def for_cameras(self, cameras: list[Camera]) -> PeopleBodies:
        return PeopleBodies(self.live.for_cameras(cameras), self.forget_s)

    def restart(self) -> None:
        """Forget every person's body (the ids are about to start again)."""
        self._tracks.clear()

    def __call__(self, estimate: BodyEstimate) -> None:
        now = estimate.timestamp
        if self._last_time is not None and now < self._last_time:
            self.restart()  # a replay went back in time: nobody's previous body applies
        self._last_time = now
        alone = [self._alone(estimate, person, now) for person in estimate.people]
        proposed = self.live.propose_all([one for _, one in alone])  # HeatFormer for everyone in one call
        # everyone's fit in one batched call (uncalibrated, each person is one view's, fitted through its lens)
        self.live.fit([f for f, _ in proposed], [k for _, k in proposed], [live.previous for live, _ in alone])
        keep_facing([(live, f, k) for (live, _), (f, k) in zip(alone, proposed, strict=True)], now)
        finish_all([(live, one, frame, keypoints) for (live, one), (frame, keypoints) in zip(alone, proposed, strict=True)])
        for k, (person, (_, one)) in enumerate(zip(estimate.people, alone, strict=True)):
            person.body, person.views, person.fused, person.mesh3d = one.body, one.views, one.fused, one.mesh3d
            person.keypoints3d, person.reprojection_px = one.keypoints3d, one.reprojection_px  # new where views were mirrored
            if not self.live.calibrated and person.mesh3d is not None:  # a row centred on the origin
                shift = UNCALIBRATED_SPACING_M * (k - (len(estimate.people) - 1) / 2)
                person.mesh3d = person.mesh3d + np.array([shift, 0.0, 0.0])
        estimate.mesh_faces = self.live.display_faces
        stale = [i for i, (_, seen) in self._tracks.items() if now - seen > self.forget_s]
        for track in stale:
            del self._tracks[track]

    def _alone(self, estimate: BodyEstimate, person: Person, now: float) -> tuple[LiveBody, BodyEstimate]:
        """The person's own body state (made on first sight) and an estimate holding them alone."""
        live = self._tracks[person.id][0] if person.id in self._tracks else self.live.fork()
        self._tracks[person.id] = (live, now)
        return live, BodyEstimate(estimate.frameset, person.keypoints2d, person.keypoints3d, dict(person.reprojection_px))


def people_results(
    model: HeatFormer,
    data: KeypointsFile,
    uncalibrated: bool = False,
    runner: Runner | None = None,
    refine: bool = True,
    smooth: bool = True,
) -> dict[str, np.ndarray]:
    """Everyone in a multi-person keypoints exchange file (``[T, V, P, 17, 3]``): association
    across views and tracking (engine.people_stage), a body per person (refined when calibrated
    and ``refine``), each person's world bodies smoothed over the sequence (``smooth``), as the
    ``people_*`` arrays of core.formats.people_arrays with ``timestamps`` and ``camera_names``."""
    cameras = data.cameras(uncalibrated)
    stage = PeopleStage(cameras)
    live = LiveBody(model, cameras, calibrated=stage.calibrated, runner=runner, temporal=False, refine=refine, display=False)
    bodies = PeopleBodies(live)
    times = np.asarray(data.timestamps, np.float64)
    frames: list[list[Person]] = []
    for i, keypoints in enumerate(data.keypoints):
        detections = {c.name: keypoints[v][keypoints[v, :, :, 2].max(axis=1) > 0] for v, c in enumerate(cameras)}
        estimate = BodyEstimate(FrameSet({}, float(times[i]), i), {}, people=stage.people(float(times[i]), detections))
        bodies(estimate)
        frames.append(estimate.people)
    if smooth and stage.calibrated:
        _smooth_tracks(frames, times, model)
    names = [c.name for c in cameras]
    return {"format_version": np.array(RESULTS_FORMAT_VERSION), "timestamps": times, "camera_names": np.array(names)} | (
        people_arrays(frames, names)
    )


def _smooth_tracks(frames: list[list[Person]], times: np.ndarray, model: HeatFormer) -> None:
    """Each track's fused bodies smoothed over its own frames (temporal.smooth_sequence)."""
    tracks: dict[int, list[Person]] = {}
    for people in frames:
        for person in people:
            if person.body is not None:
                tracks.setdefault(person.id, []).append(person)
    index = {id(p): i for i, people in enumerate(frames) for p in people}
    for track in tracks.values():
        bodies = [p.body for p in track if p.body is not None]
        smoothed = smooth_sequence(bodies, times[[index[id(p)] for p in track]], model.body)
        for person, body in zip(track, smoothed, strict=True):
            person.body = body
