"""The operations the main window performs on what is running: the runner feeding the source into
the pipeline, the cameras and their calibration, the camera health of a live room, and the
recording. The window uses only this object. No Qt."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.processing import Processing
from capture.live import CameraHealth
from core.camera import Camera, rig_calibrated
from core.types import BodyEstimate
from engine.runner import PipelineRunner, RunnerState, RunnerStats
from recording.writer import SessionRecorder


class Controller:
    """Runs ``processing`` (at most ``max_sets`` frame-sets) once :meth:`start` is called."""

    def __init__(self, processing: Processing, max_sets: int | None = None) -> None:
        self._processing = processing
        self._runner = PipelineRunner(processing.source, processing.pipeline, max_sets=max_sets)
        self.cameras = list(processing.cameras)
        self.recorder: SessionRecorder | None = None
        self._unsubscribe_recorder: Callable[[], None] | None = None

    # processing

    def start(self) -> None:
        self._runner.start()

    def latest(self) -> BodyEstimate | None:
        """The newest result (None before the first)."""
        return self._runner.latest()

    def stats(self) -> RunnerStats:
        return self._runner.stats()

    @property
    def processed(self) -> int:
        return self._runner.processed

    @property
    def state(self) -> RunnerState:
        return self._runner.state

    @property
    def error(self) -> str | None:
        return self._runner.error

    @property
    def backend_description(self) -> str:
        """Which runtime runs HeatFormer and why ('' without a body)."""
        return self._processing.pipeline.backend_description

    # cameras

    @property
    def calibrated(self) -> bool:
        return rig_calibrated(self.cameras)

    def load_calibration(self, path: Path) -> list[Camera]:
        """Switch the running pipeline to the cameras of a calibration file (no restart) and
        return them. A bad file raises an AppError naming it and changes nothing."""
        from calibration.matching import match_cameras

        cameras = match_cameras(path, [(c.name, c.image_size) for c in self.cameras])
        self._processing.pipeline.set_cameras(cameras)
        self.cameras = cameras
        return cameras

    @property
    def has_health(self) -> bool:
        """The source reports per-camera health (a live room)."""
        return hasattr(self._processing.source, "health")

    def health(self) -> list[CameraHealth] | None:
        """Per-camera health of a live room; None for files."""
        health = getattr(self._processing.source, "health", None)
        return health() if health is not None else None

    @property
    def skew_ms(self) -> float | None:
        """The live room's inter-camera skew (ms); None for files."""
        return getattr(self._processing.source, "skew_ms", None)

    # recording

    def start_recording(self, folder: Path, store_video: bool = True) -> SessionRecorder:
        """Record everything the pipeline produces into ``folder`` until :meth:`stop_recording`.
        A folder that cannot be used raises an AppError naming it."""
        from recording.writer import min_free_bytes

        self.recorder = SessionRecorder(folder, self.cameras, store_video=store_video, min_free_bytes=min_free_bytes()).start()
        self._unsubscribe_recorder = self._processing.pipeline.subscribe(self.recorder.add)
        return self.recorder

    def stop_recording(self) -> str | None:
        """Finish the recording in progress; returns what to tell the user (None when none ran)."""
        if self._unsubscribe_recorder is not None:
            self._unsubscribe_recorder()
            self._unsubscribe_recorder = None
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return None
        recorder.stop()
        return recorder.message or f"recorded {recorder.recorded} frame-sets into {recorder.folder}"

    def close(self) -> None:
        """Stop processing and release the cameras and the detector (idempotent); a recording in
        progress is finished first."""
        self.stop_recording()
        self._runner.stop()
        self._processing.close()
