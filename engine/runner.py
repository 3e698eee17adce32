"""Runs a replay (or any FrameSet producer) through the pipeline on a worker thread.

The consumer (the GUI) polls :meth:`PipelineRunner.latest` from a timer and always gets the
newest result; nothing queues without bound. A prefetch thread reads the next FrameSet while the
current one is processed (a queue of one set: when processing is slower, the replay's realtime
clock drops sets and counts them).
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from dataclasses import dataclass

from capture.replay import SessionReplay
from core.errors import AppError
from core.types import BodyEstimate, FrameSet
from engine.pipeline import Pipeline

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


class PipelineRunner:
    """Feeds ``replay`` into ``pipeline`` until the end, ``max_sets`` sets, or :meth:`stop`."""

    def __init__(self, replay: SessionReplay, pipeline: Pipeline, max_sets: int | None = None) -> None:
        self.replay, self.pipeline, self.max_sets = replay, pipeline, max_sets
        self.state = RunnerState.IDLE
        self.error: str | None = None
        self.processed = 0
        self._latest: BodyEstimate | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sets: queue.Queue[FrameSet | None] = queue.Queue(maxsize=1)
        self._fps = 0.0
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.state = RunnerState.RUNNING
        self._threads = [
            threading.Thread(target=self._read_loop, name="replay", daemon=True),
            threading.Thread(target=self._process_loop, name="pipeline", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        if self.state == RunnerState.RUNNING:
            self.state = RunnerState.STOPPED

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; True if it ended."""
        for thread in self._threads:
            thread.join(timeout)
        return not any(t.is_alive() for t in self._threads)

    def latest(self) -> BodyEstimate | None:
        with self._lock:
            return self._latest

    def stats(self) -> RunnerStats:
        return RunnerStats(self.state, self.processed, self._fps, self.replay.skipped_sets, self.error)

    def _read_loop(self) -> None:
        try:
            count = 0
            while not self._stop.is_set() and (self.max_sets is None or count < self.max_sets):
                frameset = self.replay.next()
                if frameset is None:
                    break
                self._put(frameset)
                count += 1
        except AppError as exc:
            self._fail(str(exc))
        except Exception as exc:  # a bug, not a user error: keep the traceback in the log
            log.exception("replay failed")
            self._fail(f"replay failed: {exc}")
        finally:
            self._put(None)

    def _put(self, item: FrameSet | None) -> None:
        while not self._stop.is_set():
            try:
                self._sets.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _process_loop(self) -> None:
        last = time.perf_counter()
        try:
            while not self._stop.is_set():
                try:
                    frameset = self._sets.get(timeout=0.1)
                except queue.Empty:
                    continue
                if frameset is None:
                    break
                estimate = self.pipeline.process(frameset)
                with self._lock:
                    self._latest = estimate
                self.processed += 1
                now = time.perf_counter()
                rate = 1.0 / max(now - last, 1e-6)
                self._fps = rate if self.processed == 1 else 0.9 * self._fps + 0.1 * rate
                last = now
        except AppError as exc:
            self._fail(str(exc))
        except Exception as exc:
            log.exception("pipeline failed")
            self._fail(f"processing failed: {exc}")
        finally:
            self._stop.set()
            if self.state == RunnerState.RUNNING:
                self.state = RunnerState.FINISHED

    def _fail(self, message: str) -> None:
        self.error = message
        self.state = RunnerState.FAILED
        self._stop.set()
