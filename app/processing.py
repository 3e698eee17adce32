"""Open a source with its cameras and build the pipeline for them; close both. The one place the
window (app.launch) and the headless run (main.py) do this. No Qt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from capture.replay import SessionReplay
from capture.session import open_session
from core.camera import Camera, rig_calibrated
from core.paths import DEMO_DIR
from core.types import FrameSetSource
from engine.detect.base import DEFAULT_DETECTOR
from engine.pipeline import Pipeline, build_pipeline


@dataclass
class Processing:
    """An opened frame-set source, its cameras (same order) and the pipeline built for them."""

    source: FrameSetSource
    cameras: list[Camera]
    pipeline: Pipeline
    room_file: Path | None = None  # the room file whose [monitoring] and [privacy] apply (None: defaults)

    @property
    def calibrated(self) -> bool:
        return rig_calibrated(self.cameras)

    @property
    def from_files(self) -> bool:
        """Video files or a recorded session (they can wait for a slow disk); live cameras cannot."""
        return isinstance(self.source, SessionReplay)

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
