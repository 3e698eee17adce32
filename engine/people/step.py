"""One frame-set of a calibrated rig: associate the views' detections (with the tracks'
predictions as priors) and track the people found."""

from __future__ import annotations

import numpy as np

from core.camera import Camera
from engine.people.associate import Group, associate
from engine.people.track import Tracker


def associate_and_track(
    tracker: Tracker, cameras: list[Camera], detections: list[np.ndarray], time_s: float, min_confidence: float = 0.3
) -> tuple[list[Group], list[int]]:
    """The people of the detections ``[P_v, 17, 3]`` of each view at ``time_s``: their groups and
    an id per group (-1 while its track is tentative or when nobody takes a one-view group).
    People seen in one view only are weak evidence: they keep a track alive but do not move it."""
    priors = tracker.predict(time_s)
    hidden = tracker.established(time_s)
    groups = associate(cameras, detections, priors if len(priors) else None, min_confidence, hidden)
    ids = tracker.update(time_s, [g.points for g in groups], [len(g.detections) == 1 for g in groups])
    return groups, ids
