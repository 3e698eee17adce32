"""The calibration wizard's worker thread: it reads frame-sets, finds the board in every view,
offers the sightings to the :class:`BoardCollector` as the current step asks, and solves the room.

The UI sends requests (:meth:`CalibrationWorker.collect`, :meth:`~CalibrationWorker.rewind`,
:meth:`~CalibrationWorker.solve`, :meth:`~CalibrationWorker.stop`) and polls the results from a
timer on its own thread: :meth:`~CalibrationWorker.latest` gives the newest progress (older ones
are dropped, never queued) and :meth:`~CalibrationWorker.outcomes` the events (the source ended,
the solve finished). The worker never touches a widget; while it collects, only it changes the
collector.
"""

from __future__ import annotations

import atexit
import enum
import logging
import queue
import threading
import weakref
from dataclasses import dataclass

from app.wizard.progress import Progress, progress_of
from calibration.board import Detection
from calibration.collector import BoardCollector
from core.errors import AppError
from core.types import Frame, FrameSet, FrameSetSource

log = logging.getLogger(__name__)


class Step(enum.Enum):
    """What the worker does with the board sightings of each frame-set."""

    INTRINSICS = "intrinsics"  # offered to each camera that still needs intrinsics
    TOGETHER = "together"  # offered as one instant seen by all the cameras
    WATCH = "watch"  # detected only (the floor step takes the newest sightings)


class WorkerState(enum.Enum):
    IDLE = "idle"  # waiting for a request
    COLLECTING = "collecting"
    SOLVING = "solving"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Ended:
    """The source has no more frame-sets; ``error`` says why when reading failed. ``generation``:
    the rewind it belongs to (an end from before the latest rewind is stale)."""

    generation: int
    error: str | None = None


@dataclass(frozen=True)
class Solved:
    """The solve finished; ``error`` says why the room could not be calibrated."""

    error: str | None = None


Outcome = Ended | Solved


@dataclass(frozen=True)
class _Collect:
    step: Step


@dataclass(frozen=True)
class _Rewind:
    generation: int


class _Solve:
    pass


class _Stop:
    pass


_Request = _Collect | _Rewind | _Solve | _Stop


_running: weakref.WeakSet[CalibrationWorker] = weakref.WeakSet()


@atexit.register
def _finish_all() -> None:
    """At exit, every worker finishes what it is doing (a solve of a closed wizard included): a
    thread cut off inside OpenCV or SciPy while the interpreter shuts down can abort the process."""
    for worker in list(_running):
        worker.stop()
        worker.join()


class CalibrationWorker:
    """Runs ``source`` into ``collector`` on its own thread (started at once) until :meth:`stop`."""

    def __init__(self, source: FrameSetSource, collector: BoardCollector) -> None:
        self.source, self.collector = source, collector
        self.state = WorkerState.IDLE
        self._requests: queue.Queue[_Request] = queue.Queue()
        self._outcomes: queue.Queue[Outcome] = queue.Queue()
        self._latest: Progress | None = None
        self._lock = threading.Lock()  # guards _latest
        self._source_lock = threading.Lock()  # held while the source is used
        self._stopped = threading.Event()
        self._step: Step | None = None  # the worker thread's own state from here on
        self._ended = False
        self._generation = 0
        self._frames_seen = 0
        self._thread = threading.Thread(target=self._run, name="calibration", daemon=True)
        _running.add(self)
        self._thread.start()

    # --- requests (UI thread) -------------------------------------------------------------------
    def collect(self, step: Step) -> None:
        """Read frame-sets and use their sightings for ``step`` (until the source ends or :meth:`solve`)."""
        self._requests.put(_Collect(step))

    def rewind(self, generation: int) -> None:
        """Start the source again; ends reported after this carry ``generation``."""
        self._requests.put(_Rewind(generation))

    def solve(self) -> None:
        """Stop collecting and solve the room; a :class:`Solved` outcome follows."""
        self._requests.put(_Solve())

    def stop(self) -> None:
        """No frame-set is read after this returns (it waits for the one being read, if any). A
        solve in progress finishes in the background and its outcome is dropped."""
        self._stopped.set()
        self._requests.put(_Stop())
        with self._source_lock:
            pass

    def latest(self) -> Progress | None:
        """The newest progress not taken yet (None when there is none)."""
        with self._lock:
            progress, self._latest = self._latest, None
        return progress

    def outcomes(self) -> list[Outcome]:
        """The outcomes since the last call, oldest first."""
        found: list[Outcome] = []
        while True:
            try:
                found.append(self._outcomes.get_nowait())
            except queue.Empty:
                return found

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (after :meth:`stop`); True if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- the worker thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                request = self._next_request()
                if request is None:
                    self._collect_one()
                else:
                    self._handle(request)
        finally:
            self.state = WorkerState.STOPPED

    def _next_request(self) -> _Request | None:
        """The next request; waits for one unless there are frame-sets to collect."""
        collecting = self._step is not None and not self._ended
        self.state = WorkerState.COLLECTING if collecting else WorkerState.IDLE
        try:
            return self._requests.get(block=not collecting)
        except queue.Empty:
            return None

    def _handle(self, request: _Request) -> None:
        if isinstance(request, _Collect):
            self._step = request.step
        elif isinstance(request, _Rewind):
            self._rewind(request.generation)
        elif isinstance(request, _Solve):
            self._step = None
            self._solve()
        # _Stop: the loop ends (the stop event is set)

    def _rewind(self, generation: int) -> None:
        self._generation, self._ended = generation, False
        try:
            with self._source_lock:
                if not self._stopped.is_set():
                    self.source.rewind()
        except AppError as exc:
            self._end(str(exc))

    def _collect_one(self) -> None:
        """Read one frame-set, find the board in every view, offer it for the step, publish."""
        try:
            frameset = self._read()
            if frameset is None:
                if not self._stopped.is_set():
                    self._end(None)
                return
            detections = {n: self.collector.board.detect(f.image) for n, f in frameset.frames.items()}
            self._offer(frameset.frames, detections)
        except AppError as exc:  # e.g. a room whose cameras never delivered: the wizard says so
            self._end(str(exc))
            return
        except Exception as exc:  # a bug, not a user error: keep the traceback in the log
            log.exception("calibration: reading the board failed")
            self._end(f"reading the board failed: {exc}")
            return
        self._frames_seen += 1
        with self._lock:
            self._latest = progress_of(self.collector, frameset.frames, detections, self._frames_seen)

    def _read(self) -> FrameSet | None:
        with self._source_lock:
            return None if self._stopped.is_set() else self.source.next()

    def _offer(self, frames: dict[str, Frame], detections: dict[str, Detection | None]) -> None:
        collector = self.collector
        if self._step is Step.INTRINSICS:
            for name in collector.needs_intrinsics():
                if name in frames:
                    collector.offer_intrinsic(name, detections.get(name))
        elif self._step is Step.TOGETHER:
            collector.offer_sync({n: detections.get(n) for n in collector.cameras})

    def _end(self, error: str | None) -> None:
        self._ended = True
        self._outcomes.put(Ended(self._generation, error))

    def _solve(self) -> None:
        self.state = WorkerState.SOLVING
        error = None
        try:
            self.collector.solve()
        except AppError as exc:  # too few views, unlinked cameras, a floor no camera placed
            error = str(exc)
        except Exception as exc:  # a bug, not a user error: keep the traceback in the log
            log.exception("calibration: solving failed")
            error = f"solving failed: {exc}"
        if not self._stopped.is_set():
            self._outcomes.put(Solved(error))
