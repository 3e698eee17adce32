"""Runs a frame-set source through the pipeline: on a worker thread (the GUI), or on the calling
thread (the headless run).

The consumer (the GUI) polls :meth:`PipelineRunner.latest` from a timer and always gets the
newest result; nothing queues. The worker reads a set and detects in it; with a body stage, the
body of each set runs on a second thread ("body") while the next set is read and detected
(:meth:`Pipeline.begin` / :meth:`Pipeline.finish`), one set ahead at most, results published in
order. The body stage is mostly the interpreter driving small tensor operations, which leaves
room beside the detector's work: on the 2-core machine, 4.1-4.2 against 3.8-4.1 sets/s on the
demo and 3.8-4.1 against 3.2-3.6 on its 640 px multi-person copy (engine.benchmark, runs
interleaved), with HeatFormer on one ONNX Runtime thread (engine.pipeline.BODY_THREADS); each
result comes later, though (360-410 against 275-300 ms). Overlapping decode with detection, by
contrast, was measured slower (8.1 vs 10.1 sets/s), because both already use every core. In
realtime replay, frames that are late are skipped by the replay's clock (counted), so each set
processed is the newest one; :attr:`RunnerStats.behind` says when the machine cannot keep the
recording's pace.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from dataclasses import dataclass

from core.errors import AppError
from core.types import BodyEstimate, FrameSetSource
from engine.pipeline import Pending, Pipeline, body_threads_here

log = logging.getLogger(__name__)


class RunnerState(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class RunnerStats:
    state: RunnerState
    processed: int
    fps: float
    skipped: int
    error: str | None
    recording_fps: float | None = None  # the rate a real-time replay should keep; None when not paced

    @property
    def behind(self) -> bool:
        """A real-time replay that this machine cannot keep up with (sets are being skipped)."""
        return self.recording_fps is not None and self.skipped > 0 and self.fps < 0.9 * self.recording_fps


class PipelineRunner:
    """Feeds ``source`` into ``pipeline`` until the end, ``max_sets`` sets, or :meth:`stop`.
    ``stop_event`` (optional) is the event that ends the run when set, from any thread.
    ``overlap``: run the body stage of each set on its own thread, beside the next set's
    detection (when the pipeline has a body stage); False processes one set at a time."""

    def __init__(
        self,
        source: FrameSetSource,
        pipeline: Pipeline,
        max_sets: int | None = None,
        stop_event: threading.Event | None = None,
        overlap: bool = True,
    ) -> None:
        self.source, self.pipeline, self.max_sets, self.overlap = source, pipeline, max_sets, overlap
        self.state = RunnerState.IDLE
        self.error: str | None = None
        self.processed = 0
        self._latest: BodyEstimate | None = None
        self._lock = threading.Lock()
        self._stop = stop_event if stop_event is not None else threading.Event()
        self._fps = 0.0
        self._last = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run on a worker thread; an error ends the run in state FAILED with :attr:`error`."""
        self.state = RunnerState.RUNNING
        self._thread = threading.Thread(target=self._run_logged, name="pipeline", daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Run on the calling thread until the end, ``max_sets`` or :meth:`request_stop`; errors
        (and Ctrl+C) propagate, after the state is set (FAILED with :attr:`error`, or STOPPED)."""
        self.state = RunnerState.RUNNING
        try:
            self._loop()
        except KeyboardInterrupt:
            self.state = RunnerState.STOPPED
            raise
        except Exception as exc:
            self._fail(str(exc) if isinstance(exc, AppError) else f"processing failed: {exc}")
            raise
        finally:
            self._settle()

    def request_stop(self) -> None:
        """End the run after the frame-set in progress (returns at once)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        """End a threaded run and wait for it (at most ``timeout`` s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.state == RunnerState.RUNNING:
            self.state = RunnerState.STOPPED

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; True if it ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def latest(self) -> BodyEstimate | None:
        with self._lock:
            return self._latest

    def stats(self) -> RunnerStats:
        paced = getattr(self.source, "realtime", False)
        rate = self.source.fps * getattr(self.source, "speed", 1.0) if paced else None
        return RunnerStats(self.state, self.processed, self._fps, self.source.skipped_sets, self.error, rate)

    def _loop(self) -> None:
        self._last = time.perf_counter()
        if self.overlap and self.pipeline.body is not None:
            self._overlapped()
            return
        if self.pipeline.body is not None and self._thread is threading.current_thread():
            _body_thread()  # this thread's own: the bodies run here, between detections
        while self._wanted(self.processed):
            frameset = self.source.next()
            if frameset is None:
                break
            self._finished(self.pipeline.process(frameset))

    def _wanted(self, sets: int) -> bool:
        return not self._stop.is_set() and (self.max_sets is None or sets < self.max_sets)

    def _finished(self, estimate: BodyEstimate) -> None:
        with self._lock:
            self._latest = estimate
        self.processed += 1
        now = time.perf_counter()
        rate = 1.0 / max(now - self._last, 1e-6)
        self._fps = rate if self.processed == 1 else 0.9 * self._fps + 0.1 * rate
        self._last = now

    def _overlapped(self) -> None:
        """Read and detect here; the body thread finishes each set while the next one is read and
        detected. The reader hands a set over only when the body thread is free, so at most two
        sets are in flight. On any end (the source's, a stop, an error on either side) the set in
        the body thread is finished and published first: nothing detected is dropped."""
        handoff: queue.Queue[Pending | None] = queue.Queue(maxsize=1)
        failed: list[BaseException] = []

        def bodies() -> None:
            _body_thread()
            while (pending := handoff.get()) is not None:
                handoff.task_done()  # taken: the reader may detect the next set
                if failed:
                    continue  # the run is ending: take what comes until the end marker
                try:
                    self._finished(self.pipeline.finish(pending))
                except BaseException as exc:  # raised on the reader's thread
                    failed.append(exc)
            handoff.task_done()

        worker = threading.Thread(target=bodies, name="body", daemon=True)
        worker.start()
        submitted = 0
        try:
            while not failed and self._wanted(submitted):
                frameset = self.source.next()
                if frameset is None:
                    break
                handoff.put(self.pipeline.begin(frameset))
                submitted += 1
                handoff.join()
        finally:
            handoff.put(None)
            worker.join()
        if failed:
            raise failed[0]

    def _run_logged(self) -> None:
        try:
            self._loop()
        except AppError as exc:
            self._fail(str(exc))
        except Exception as exc:  # a bug, not a user error: keep the traceback in the log
            log.exception("processing failed")
            self._fail(f"processing failed: {exc}")
        finally:
            self._settle()

    def _settle(self) -> None:
        if self.state == RunnerState.RUNNING:
            self.state = RunnerState.STOPPED if self._stop.is_set() else RunnerState.FINISHED

    def _fail(self, message: str) -> None:
        self.error = message
        self.state = RunnerState.FAILED


def _body_thread() -> None:
    """A thread of the live app that runs body stages: torch on its own OpenMP setting, and the
    refinement's new traces made aside (engine.heatformer.refine.trace_aside), so that a new shape
    does not stop the pipeline for the half second a trace takes."""
    from engine.heatformer.refine import trace_aside

    body_threads_here()
    trace_aside(body_threads_here)
