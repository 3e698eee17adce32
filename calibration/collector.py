"""Collecting board sightings for a room calibration, frame by frame (Qt-free; the wizard in
``app/wizard/`` drives it from its worker thread with live or recorded frames).

A sighting is captured automatically when the board is still (its corners moved less than
``still_px`` since the previous frame; live cameras only: every frame of a recording is an
instant already) and in a new place (its centre at least ``novelty`` of the image diagonal away
from every earlier capture, clearly nearer or farther, or turned or tilted differently).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calibration.board import Board, Detection
from calibration.extrinsics import ExtrinsicsResult, Intrinsics, calibrate_extrinsics, floor_from_board
from calibration.intrinsics import IntrinsicsResult, calibrate_intrinsics, coverage
from core.camera import Camera
from core.errors import CalibrationError

MIN_INTRINSIC_CAPTURES = 8
MIN_SHARED = 3
GOOD_PX, FAIR_PX = 1.0, 3.0  # traffic light limits on a camera's median reprojection error


def traffic_light(error_px: float | None) -> str:
    """green / yellow / red for a camera's reprojection error (red when unknown)."""
    if error_px is None or not np.isfinite(error_px):
        return "red"
    return "green" if error_px < GOOD_PX else "yellow" if error_px < FAIR_PX else "red"


@dataclass
class _Place:
    centre: np.ndarray
    size: float
    shape: dict[int, np.ndarray]  # corner id -> position relative to the centre, in board sizes


def _place(d: Detection) -> _Place:
    centre = d.corners.mean(axis=0)
    size = float(np.sqrt(np.prod(np.ptp(d.corners, axis=0)) + 1e-9))
    return _Place(centre, size, {int(i): (c - centre) / size for i, c in zip(d.ids, d.corners, strict=True)})


def _shape_change(a: _Place, b: _Place) -> float:
    """Mean change of the board's outline (rotation, tilt) between two sightings, in board sizes."""
    common = a.shape.keys() & b.shape.keys()
    if len(common) < 4:
        return 1.0
    return float(np.mean([np.linalg.norm(a.shape[i] - b.shape[i]) for i in common]))


@dataclass
class CameraState:
    """What has been collected for one camera."""

    camera: Camera
    captures: list[Detection] = field(default_factory=list)
    intrinsics: IntrinsicsResult | None = None
    from_file: bool = False
    last: Detection | None = None

    @property
    def name(self) -> str:
        return self.camera.name

    @property
    def error_px(self) -> float | None:
        return None if self.intrinsics is None else self.intrinsics.rms

    def coverage(self) -> np.ndarray:
        return coverage(self.captures, self.camera.image_size)


class BoardCollector:
    """cameras: the room's cameras (their K / dist are used as given intrinsics when present and
    ``use_given_intrinsics``)."""

    def __init__(
        self,
        board: Board,
        cameras: list[Camera],
        use_given_intrinsics: bool = True,
        require_still: bool = True,
        still_px: float = 2.0,
        novelty: float = 0.08,
    ) -> None:
        self.board = board
        self.require_still, self.still_px, self.novelty = require_still, still_px, novelty
        self.cameras = {c.name: CameraState(c, from_file=use_given_intrinsics and c.K is not None) for c in cameras}
        self.sync_captures: list[dict[str, Detection | None]] = []
        self.floor: dict[str, Detection | None] | None = None
        self._last_sync: dict[str, Detection | None] = {}
        self.result: ExtrinsicsResult | None = None
        self.room: list[Camera] | None = None

    # --- step 1: intrinsics, one camera at a time ---------------------------------------------
    def needs_intrinsics(self) -> list[str]:
        return [n for n, s in self.cameras.items() if not s.from_file]

    def offer_intrinsic(self, name: str, detection: Detection | None) -> bool:
        """Show the collector the board as ``name`` sees it now; True when it was captured."""
        state = self.cameras[name]
        still = self._still(state.last, detection)
        state.last = detection
        if detection is None or len(detection) < 6 or not still:
            return False
        if not self._new_place(detection, state.captures, state.camera.image_size):
            return False
        state.captures.append(detection)
        if len(state.captures) >= 4:
            try:
                state.intrinsics = calibrate_intrinsics(self.board, list(state.captures), state.camera.image_size)
            except CalibrationError:
                state.intrinsics = None
        return True

    def intrinsics_ready(self, name: str) -> bool:
        state = self.cameras[name]
        return state.from_file or (state.intrinsics is not None and len(state.captures) >= MIN_INTRINSIC_CAPTURES)

    def _intrinsics(self, name: str) -> Intrinsics:
        state = self.cameras[name]
        if state.from_file:
            assert state.camera.K is not None
            return Intrinsics(state.camera.K, state.camera.dist, state.camera.image_size)
        if state.intrinsics is None:
            raise CalibrationError(f"camera {name}: no intrinsics yet ({len(state.captures)} board captures)")
        return Intrinsics(state.intrinsics.K, state.intrinsics.dist, state.camera.image_size)

    # --- step 2: all cameras together -------------------------------------------------------------
    def offer_sync(self, detections: dict[str, Detection | None]) -> bool:
        """The board in every camera at one instant; True when this instant was captured."""
        still = all(self._still(self._last_sync.get(n), d) for n, d in detections.items() if d is not None)
        self._last_sync = dict(detections)
        seen = {n: d for n, d in detections.items() if d is not None and len(d) >= 6}
        if len(seen) < 2 or not still:
            return False
        for earlier in self.sync_captures:  # new if some camera sees the board somewhere new
            same = all(
                (e := earlier.get(n)) is not None and not self._new_place(d, [e], self.cameras[n].camera.image_size)
                for n, d in seen.items()
            )
            if same:
                return False
        self.sync_captures.append({n: detections.get(n) for n in self.cameras})
        return True

    def links(self) -> dict[tuple[str, str], int]:
        """Captured instants in which each pair of cameras both saw the board."""
        names = list(self.cameras)
        return {
            (a, b): sum(1 for c in self.sync_captures if c.get(a) is not None and c.get(b) is not None)
            for i, a in enumerate(names)
            for b in names[i + 1 :]
        }

    def linked(self) -> bool:
        """Every camera joined to the others by pairs with at least ``MIN_SHARED`` shared sightings."""
        names = list(self.cameras)
        strong = {pair for pair, count in self.links().items() if count >= MIN_SHARED}
        group, todo = {names[0]}, [names[0]]
        while todo:
            a = todo.pop()
            for b in names:
                if b not in group and ((a, b) in strong or (b, a) in strong):
                    group.add(b)
                    todo.append(b)
        return len(group) == len(names)

    # --- step 3: the floor -------------------------------------------------------------------------
    def set_floor(self, detections: dict[str, Detection | None]) -> None:
        """The board lying on the floor now, as the cameras see it (two or more must see it)."""
        seen = [n for n, d in detections.items() if d is not None and len(d) >= 6]
        if len(seen) < 2:
            raise CalibrationError(f"floor: the board must be seen by at least 2 cameras (seen by {len(seen)})")
        self.floor = dict(detections)

    # --- step 4: solve -------------------------------------------------------------------------------
    def solve(self, skip_unlinked: bool = True) -> list[Camera]:
        captures = list(self.sync_captures) + ([self.floor] if self.floor is not None else [])
        detections = {n: [c.get(n) for c in captures] for n in self.cameras}
        intrinsics = {n: self._intrinsics(n) for n in self.cameras}
        self.result = calibrate_extrinsics(self.board, detections, intrinsics, skip_unlinked=skip_unlinked, min_shared=MIN_SHARED)
        cameras = self.result.cameras
        if self.floor is not None:
            floor_index = len(captures) - 1
            if floor_index not in self.result.board_poses:
                raise CalibrationError("floor: the floor board could not be placed (seen by no calibrated camera)")
            cameras = floor_from_board(cameras, *self.result.board_poses[floor_index])
        self.room = cameras
        return cameras

    def summary(self) -> dict[str, dict[str, object]]:
        """Per camera: error (px), traffic light, position (m), and why it is missing if it is."""
        out: dict[str, dict[str, object]] = {}
        for name in self.cameras:
            if self.result is None or name in self.result.skipped:
                reason = self.result.skipped.get(name, "not solved yet") if self.result else "not solved yet"
                out[name] = {"error_px": None, "light": "red", "reason": reason}
                continue
            error = self.result.errors_px.get(name)
            cam = next(c for c in (self.room or self.result.cameras) if c.name == name)
            out[name] = {"error_px": error, "light": traffic_light(error), "position_m": [float(v) for v in cam.center]}
        return out

    # --- helpers -------------------------------------------------------------------------------------
    def _still(self, before: Detection | None, now: Detection | None) -> bool:
        if not self.require_still:
            return True
        if before is None or now is None:
            return False
        common, a, b = np.intersect1d(before.ids, now.ids, return_indices=True)
        if len(common) < 4:
            return False
        return float(np.abs(before.corners[a] - now.corners[b]).max()) < self.still_px

    def _new_place(self, detection: Detection, earlier: list[Detection], image_size: tuple[int, int]) -> bool:
        here = _place(detection)
        diagonal = float(np.hypot(*image_size))
        for other in earlier:
            there = _place(other)
            near = np.linalg.norm(here.centre - there.centre) < self.novelty * diagonal
            same_size = abs(np.log(here.size / there.size)) < 0.2
            if near and same_size and _shape_change(here, there) < 0.03:
                return False
        return True
