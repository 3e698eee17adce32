"""The monitor over a results file or a recorded session: the same rules as a live run, frame-set
after frame-set, from the stored bodies (``python -m monitoring``).

Results files: the multi-person ``people_*`` arrays (``people_ids`` ``[T, N]``, ``people_joints``
``[T, N, 24, 3]``, ``people_keypoints3d`` ``[T, N, 17, 4]``), or the single-person layout
(``joints`` ``[T, 24, 3]`` with ``valid``, and/or ``keypoints3d`` ``[T, 17, 4]``): the results
layout of README "Results files" (older files are read through core.formats.upgrade_results).
Times come from ``timestamps`` ``[T]`` (seconds); a file without them needs ``fps``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import AppError
from core.formats import upgrade_results
from core.npzfile import read_npz
from monitoring.config import MonitorError
from monitoring.state import Landmarks, Observation, one_view


@dataclass
class Track:
    """Frame-set times and who was seen in each, ready for Monitor.update."""

    times: np.ndarray  # [T] seconds
    frames: list[list[Observation]]
    source: str
    started: dt.datetime | None = None  # the wall-clock time of the first frame-set, when known

    def __iter__(self) -> Iterator[tuple[float, list[Observation]]]:
        return zip(self.times.tolist(), self.frames, strict=True)


def load_track(spec: str, fps: float | None = None) -> Track:
    """``RESULTS.npz`` or ``session:DIR`` (a recorded session) as a Track (MonitorError naming the
    file and field when it cannot be used)."""
    if spec.startswith("session:"):
        return _session(Path(spec[len("session:") :]), fps)
    path = Path(spec)
    return track_from_arrays(read_npz(path, "results file", MonitorError), f"results file {path}", fps)


def track_from_arrays(arrays: dict[str, np.ndarray], where: str, fps: float | None = None) -> Track:
    """The Track of results arrays (see the module docstring for the layouts)."""
    try:
        arrays = upgrade_results(arrays, where)
    except AppError as exc:
        raise MonitorError(str(exc)) from None
    frames = _people(arrays, where) if "people_ids" in arrays else _single(arrays, where)
    T = len(frames)
    if "timestamps" in arrays:
        times = np.asarray(arrays["timestamps"], np.float64).reshape(-1)
        if len(times) != T:
            raise MonitorError(f"{where}: field 'timestamps' has {len(times)} values for {T} frame-sets")
        if not np.isfinite(times).all() or (np.diff(times) < 0).any():
            raise MonitorError(f"{where}: field 'timestamps' must be finite seconds that never go back")
    elif fps is not None:
        if fps <= 0:
            raise MonitorError(f"--fps {fps}: must be more than 0")
        times = np.arange(T) / fps
    else:
        raise MonitorError(f"{where}: has no 'timestamps'; give the frame rate with --fps")
    return Track(times, frames, where)


def _people(arrays: dict[str, np.ndarray], where: str) -> list[list[Observation]]:
    ids = np.asarray(arrays["people_ids"])
    if ids.ndim != 2:
        raise MonitorError(f"{where}: field 'people_ids' must be [T, N], not shape {list(ids.shape)}")
    joints = _shaped(arrays, "people_joints", (*ids.shape, 24, 3), where)
    points = _shaped(arrays, "people_keypoints3d", (*ids.shape, 17, 4), where)
    views = arrays.get("people_keypoints2d")
    views = np.asarray(views) if views is not None and np.shape(views)[:2] == ids.shape else None
    listed = arrays.get("people_view")  # the view of a person seen by one view without a world body (-1: none)
    listed = np.asarray(listed) if listed is not None and np.shape(listed) == ids.shape else np.full(ids.shape, -1)
    if joints is None and points is None:
        raise MonitorError(f"{where}: has people_ids but neither people_joints nor people_keypoints3d (no world bodies)")
    frames = []
    for i in range(len(ids)):
        seen = []
        for n in np.flatnonzero(ids[i] >= 0):
            guess = views is not None and one_view(np.nan_to_num(views[i, n]))  # as the live monitor (state.one_view)
            placed = any(a is not None and np.isfinite(a[i, n]).any() for a in (joints, points))
            seen.append(Observation(int(ids[i, n]), _marks(None if joints is None else joints[i, n],
                                                           None if points is None or guess else points[i, n]),
                                    None if placed else _view_alone(views, listed, i, n)))  # fmt: skip
        frames.append(seen)
    return frames


def _view_alone(views: np.ndarray | None, listed: np.ndarray, i: int, n: int) -> str | None:
    """As the live monitor (monitoring.state.observations): the one view that tracks a person not
    placed in the room (an uncalibrated room's), from the 2D where it was kept, else from
    ``people_view``; None where it cannot be told (then the person counts as one)."""
    if views is not None:
        seen = np.flatnonzero((np.nan_to_num(views[i, n, ..., 2]) > 0).any(axis=-1))
        return str(int(seen[0])) if len(seen) == 1 else None
    return str(int(listed[i, n])) if listed[i, n] >= 0 else None


def _single(arrays: dict[str, np.ndarray], where: str) -> list[list[Observation]]:
    joints = arrays.get("joints")
    points = arrays.get("keypoints3d")
    if joints is None and points is None:
        raise MonitorError(f"{where}: no bodies (expected people_* arrays, joints or keypoints3d)")
    T = len(joints) if joints is not None else len(points) if points is not None else 0
    if joints is not None and joints.shape != (T, 24, 3):
        raise MonitorError(f"{where}: field 'joints' must be [T, 24, 3], not shape {list(joints.shape)}")
    if points is not None and points.shape != (T, 17, 4):
        raise MonitorError(f"{where}: field 'keypoints3d' must be [T, 17, 4], not shape {list(points.shape)}")
    valid = np.asarray(arrays.get("valid", np.ones(T, bool)), bool).reshape(-1)
    frames = []
    for i in range(T):
        marks = _marks(joints[i] if joints is not None and valid[i] else None, None if points is None else points[i])
        frames.append([Observation(1, marks)] if marks is not None else [])
    return frames


def _marks(joints: np.ndarray | None, points: np.ndarray | None) -> Landmarks | None:
    marks = Landmarks.from_joints(np.asarray(joints, float)) if joints is not None else None
    if marks is None and points is not None:
        points = np.where(np.isfinite(points), points, 0.0)
        marks = Landmarks.from_keypoints(points)
    return marks


def _shaped(arrays: dict[str, np.ndarray], key: str, shape: tuple[int, ...], where: str) -> np.ndarray | None:
    value = arrays.get(key)
    if value is None:
        return None
    if value.shape != shape:
        raise MonitorError(f"{where}: field {key!r} must have shape {list(shape)}, not {list(value.shape)}")
    return np.asarray(value, float)


def _session(folder: Path, fps: float | None) -> Track:
    from capture.recorded import read_metadata
    from recording.reader import read_results

    try:
        meta = read_metadata(folder)
        results = read_results(folder)
    except AppError as exc:
        raise MonitorError(str(exc)) from None
    if not len(results):
        raise MonitorError(f"recorded session {folder}: holds no results to watch")
    track = track_from_arrays(results.arrays, f"recorded session {folder}", fps)
    started = meta.get("started")
    if isinstance(started, str):
        try:
            track.started = dt.datetime.fromisoformat(started).astimezone()
        except ValueError:
            pass
    return track
