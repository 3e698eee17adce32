"""Open a source with its cameras and build the pipeline for them; close both. The one place the
window (app.launch) and the headless run (main.py) do this. No Qt."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from capture.replay import SessionReplay
from capture.session import open_session
from core.camera import Camera, rig_calibrated
from core.errors import AppError
from core.paths import DEMO_DIR
from core.types import FrameSet, FrameSetSource
from engine.detect.base import DEFAULT_DETECTOR
from engine.pipeline import Pipeline, build_pipeline

if TYPE_CHECKING:
    from monitoring.config import MonitorConfig
    from monitoring.scenes import Scene


@dataclass
class Processing:
    """An opened frame-set source, its cameras (same order) and the pipeline built for them."""

    source: FrameSetSource
    cameras: list[Camera]
    pipeline: Pipeline
    room_file: Path | None = None  # the room file whose [monitoring] and [privacy] apply (None: defaults)
    monitor_config: MonitorConfig | None = None  # a synthetic scene's own room (zones, quiet hours), else None
    wall_start: datetime.datetime | None = None  # a synthetic scene's wall-clock start (for its quiet hours)

    @property
    def calibrated(self) -> bool:
        return rig_calibrated(self.cameras)

    @property
    def from_files(self) -> bool:
        """Video files, a recorded session or a synthetic scene (they can wait for a slow disk); live
        cameras cannot."""
        return isinstance(self.source, SessionReplay | ScenePlayer)

    def close(self) -> None:
        """Release the cameras or files and the detector's threads."""
        self.source.close()
        self.pipeline.close()


def open_processing(
    source: str | Path | None = None,
    calibration: Path | None = None,
    uncalibrated: bool = False,
    room: Path | None = None,
    *,
    realtime: bool = False,
    loop: bool = False,
    detector: str = DEFAULT_DETECTOR,
    body_model: Path | None = None,
    weights: Path | None = None,
    with_body: bool = True,
    backend: str = "torch",
    refine: bool = True,
) -> Processing:
    """Open ``source`` (default: the bundled demo) or a ``room``'s live cameras with their
    calibration (capture.session.open_session), then build the pipeline (engine.pipeline.build_pipeline);
    the source is closed again when the pipeline cannot be built. Errors are AppErrors naming the
    file, camera or flag."""
    session = open_session(source, calibration, uncalibrated, realtime=realtime, loop=loop, room=room)
    opened: FrameSetSource = session.replay
    try:
        pipeline = build_pipeline(session.cameras, detector, body_model, weights, with_body, backend=backend, refine=refine)
    except BaseException:
        opened.close()
        raise
    room_file = Path(room) if room is not None else DEMO_DIR / "room.toml" if source is None else None
    return Processing(opened, session.cameras, pipeline, room_file)


class ScenePlayer:
    """A synthetic monitoring scene (monitoring.scenes) as a frame-set source played at its own
    pace (``realtime``), once or looping; its frames are plain grey (the people come from the
    scene's detector)."""

    def __init__(self, scene: Scene, realtime: bool = True, loop: bool = False) -> None:
        from monitoring.scenes import SceneSource

        self.scene = scene
        self._source = SceneSource(scene)
        self.realtime, self.loop = realtime, loop
        self._started: float | None = None

    @property
    def camera_names(self) -> list[str]:
        return self._source.camera_names

    @property
    def fps(self) -> float:
        return self._source.fps

    @property
    def skipped_sets(self) -> int:
        return 0

    def open(self) -> None:
        self._source.open()
        self._started = None

    def close(self) -> None:
        self._source.close()

    def rewind(self) -> None:
        self._source.rewind()
        self._started = None

    def next(self) -> FrameSet | None:
        frameset = self._source.next()
        if frameset is None and self.loop:
            self._source.rewind()
            frameset = self._source.next()
        if frameset is None:
            return None
        if self.realtime:
            now = time.monotonic()
            if self._started is None or frameset.index == 0:
                self._started = now - frameset.reference_time
            wait = self._started + frameset.reference_time - now
            if wait > 0:
                time.sleep(wait)
        return frameset

    def __iter__(self) -> Iterator[FrameSet]:
        while (frameset := self.next()) is not None:
            yield frameset


def parse_scene(spec: str) -> Scene:
    """``KIND[:PEOPLE[:SEED]]`` (e.g. ``fall_forward:2``) as a synthetic scene (AppError naming the
    flag when the kind or the numbers are wrong)."""
    from monitoring.scenes import KINDS, make_scene

    kind, *rest = spec.split(":")
    if kind not in KINDS:
        raise AppError(f"--scene {spec}: unknown scene {kind!r} (known: {', '.join(KINDS)})")
    try:
        people = int(rest[0]) if rest else 2
        seed = int(rest[1]) if len(rest) > 1 else 0
    except ValueError:
        raise AppError(f"--scene {spec}: expected KIND[:PEOPLE[:SEED]] with whole numbers") from None
    if people not in (1, 2) or len(rest) > 2:
        raise AppError(f"--scene {spec}: scenes have 1 or 2 people (KIND[:PEOPLE[:SEED]])")
    return make_scene(kind, people=people, seed=seed)


def open_scene(
    spec: str,
    *,
    realtime: bool = False,
    loop: bool = False,
    body_model: Path | None = None,
    weights: Path | None = None,
    with_body: bool = True,
    backend: str = "torch",
    refine: bool = True,
) -> Processing:
    """A synthetic monitoring scene (``--scene``) through the real pipeline: the scene's cameras,
    its detections, association, tracking and bodies, and its own room for the monitor."""
    from monitoring.scenes import SceneDetector

    scene = parse_scene(spec)
    pipeline = build_pipeline(scene.cameras, SceneDetector(scene), body_model, weights, with_body, backend=backend, refine=refine)
    return Processing(ScenePlayer(scene, realtime, loop), scene.cameras, pipeline, None, scene.config, scene.wall_start)
