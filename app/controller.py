"""The operations the main window performs on what is running: the runner feeding the source into
the pipeline, the cameras and their calibration, the camera health of a live room, and the
recording. The window uses only this object. No Qt."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from app.processing import Processing
from capture.live import CameraHealth, CameraState
from capture.replay import SessionReplay
from core.camera import Camera, rig_calibrated
from core.types import BodyEstimate, Event
from engine.runner import PipelineRunner, RunnerState, RunnerStats
from monitoring.alerts import Alert
from monitoring.config import Privacy, Zone
from monitoring.monitor import Monitor
from recording.streaming import Streams, StreamTarget, load_streaming, open_streams
from recording.writer import SessionRecorder


class Controller:
    """Runs ``processing`` (at most ``max_sets`` frame-sets) once :meth:`start` is called."""

    def __init__(self, processing: Processing, max_sets: int | None = None, monitor: Monitor | None = None) -> None:
        self._processing = processing
        self._runner = PipelineRunner(processing.source, processing.pipeline, max_sets=max_sets)
        self.cameras = list(processing.cameras)
        self.recorder: SessionRecorder | None = None
        self._unsubscribe_recorder: Callable[[], None] | None = None
        self.monitor = monitor
        self.retention_root: Path | None = None  # where recordings go (retention deletes old sessions there)
        self._retention_checked = 0.0
        self._monitor_lock = threading.Lock()
        self._new_events: list[Event] = []
        self.monitor_error: str | None = None
        if monitor is not None:
            processing.pipeline.subscribe(self._watch)
        # streaming: the room file's [streaming] targets start with the processing (checked now: StreamingError)
        self.room_streams: list[StreamTarget] = load_streaming(processing.room_file)
        self._streams: list[tuple[Streams, Callable[[], None]]] = []

    # processing

    def start(self) -> None:
        if self.room_streams:
            self.start_streaming(self.room_streams)
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

    # monitoring

    def _watch(self, estimate: BodyEstimate) -> None:
        """The monitor's turn on every result (the processing thread)."""
        assert self.monitor is not None
        health = self.health()
        cameras_up = None if health is None else sum(1 for h in health if h.state is CameraState.LIVE)
        with self._monitor_lock:
            try:
                events = self.monitor.update_estimate(estimate, cameras_up)
            except Exception as exc:  # the monitor must never stop the pipeline; say so in the status area
                self.monitor_error = f"monitoring stopped working: {exc}"
                return
            self._new_events += events
            self._to_recording(events)

    def _to_recording(self, events: list[Event]) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        for event in events:
            recorder.write_event(event.to_record())
            if event.phase == "raised" and event.severity != "info":
                recorder.mark_event(event.t)

    def check_cameras(self, now: float) -> None:
        """Called every second or so by the window: when a live room's cameras are all down no
        frame-set arrives, so the monitor is told here (``now``: the capture clock, time.monotonic)."""
        health = self.health()
        if self.monitor is None or health is None or any(h.state is CameraState.LIVE for h in health):
            return
        with self._monitor_lock:
            if now - self.monitor.t >= 1.0:
                events = self.monitor.update(now, [], cameras_up=0)
                self._new_events += events
                self._to_recording(events)

    def take_events(self) -> list[Event]:
        """The events made since the last call (oldest first)."""
        with self._monitor_lock:
            events, self._new_events = self._new_events, []
        return events

    def pending_alerts(self) -> list[Alert]:
        """Alerts to show: open, or resolved and not yet acknowledged (newest last)."""
        if self.monitor is None:
            return []
        with self._monitor_lock:
            return list(self.monitor.pending)

    def set_zones(self, zones: list[Zone]) -> None:
        """The zone editor saved ``zones`` into the room file: the running monitor uses them from now on."""
        if self.monitor is not None:
            with self._monitor_lock:
                self.monitor.set_zones(zones)

    @property
    def room_file(self) -> Path | None:
        """The room file whose [monitoring] and [privacy] tables apply (None: the defaults)."""
        return self._processing.room_file

    @property
    def can_seek(self) -> bool:
        """The source is a replay of files or of a recorded session (it can jump to a time)."""
        return self._processing.from_files

    def seek(self, t: float) -> None:
        """Jump a replay to session time ``t`` (its next frame-set is the one at ``t``); live rooms cannot."""
        source = self._processing.source
        if isinstance(source, SessionReplay):
            source.seek(t)

    def acknowledge(self, alert_id: int, by: str) -> list[Event]:
        """Staff acknowledged an alert; the event goes to the events file, the sinks and a recording."""
        if self.monitor is None:
            return []
        with self._monitor_lock:
            events = self.monitor.acknowledge(alert_id, by)
            self._new_events += events
            self._to_recording(events)
        return events

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

        privacy = self.monitor.config.privacy if self.monitor is not None else Privacy()
        video = privacy.recording if store_video else None
        self.recorder = SessionRecorder(folder, self.cameras, store_video=store_video, min_free_bytes=min_free_bytes(),
                                        video=video, padding_s=privacy.event_padding_s,
                                        blur_faces=privacy.blur_faces).start()  # fmt: skip
        self.retention_root = Path(folder).parent
        self.check_retention(force=True)
        self._unsubscribe_recorder = self._processing.pipeline.subscribe(self.recorder.add)
        return self.recorder

    def check_retention(self, now: float | None = None, force: bool = False) -> list[Path]:
        """Delete the recorded sessions older than the room's ``retention_days`` in the folder that
        recordings go to (never the one being recorded): when a recording starts, then once a day (the
        window calls this from its timer).
        Returns what was deleted."""
        from recording.retention import DAY_S, purge_sessions

        days = self.monitor.config.privacy.retention_days if self.monitor is not None else 0.0
        now = time.time() if now is None else now
        if not days or self.retention_root is None or (not force and now - self._retention_checked < DAY_S):
            return []
        self._retention_checked = now
        active = [self.recorder.folder] if self.recorder is not None else []
        return purge_sessions(self.retention_root, days, now=now, active=active)

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

    # streaming

    def start_streaming(self, targets: list[StreamTarget]) -> Streams | None:
        """Also send every result to ``targets`` (recording.streaming; parse_stream_url makes one from
        ``vmc://host:port``) until :meth:`stop_streaming`. StreamingError for a host that does not resolve."""
        streams = open_streams(targets)
        if streams is not None:
            self._streams.append((streams, self._processing.pipeline.subscribe(streams.send)))
        return streams

    def stop_streaming(self) -> None:
        """Stop every stream (idempotent)."""
        while self._streams:
            streams, unsubscribe = self._streams.pop()
            unsubscribe()
            streams.close()

    @property
    def streams(self) -> list[Streams]:
        """The streams running now (their targets and sent / dropped counts)."""
        return [streams for streams, _ in self._streams]

    def close(self) -> None:
        """Stop processing and release the cameras and the detector (idempotent); a recording in
        progress is finished first."""
        self.stop_recording()
        self.stop_streaming()
        self._runner.stop()
        self._processing.close()
        if self.monitor is not None:
            self.monitor.close()
