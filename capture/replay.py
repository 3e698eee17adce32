"""Replay several sources as synchronized :class:`FrameSet` objects.

Frames are grouped by timestamp: at every step the source that is furthest behind defines the
reference time and each other source contributes its frame nearest to that time (frames more than
half a frame period away are held back for a later set). Replay can run as fast as possible or at
the recording's rate, and can loop.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from capture.sources import FrameSource
from core.errors import SourceError
from core.types import Frame, FrameSet


class SessionReplay:
    """Synchronized replay of ``sources``.

    realtime: pace the sets at the recording's rate (``speed`` x); otherwise as fast as possible.
    loop: start again from the first frame at the end of the shortest source.
    """

    def __init__(self, sources: Sequence[FrameSource], realtime: bool = False, loop: bool = False, speed: float = 1.0) -> None:
        if not sources:
            raise SourceError("replay needs at least one source")
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise SourceError(f"duplicate camera names in replay: {names}")
        self.sources = list(sources)
        self.realtime, self.loop, self.speed = realtime, loop, speed
        self._pending: dict[str, Frame | None] = {}
        self._count = 0
        self._loop_offset = 0.0
        self._last_time = 0.0
        self._clock_start: float | None = None
        self._opened = False
        self.dropped: dict[str, int] = {n: 0 for n in names}
        self.skipped_sets = 0
        self._pool: ThreadPoolExecutor | None = None

    @property
    def camera_names(self) -> list[str]:
        return [s.name for s in self.sources]

    @property
    def fps(self) -> float:
        return min(s.fps for s in self.sources)

    def open(self) -> None:
        # Sources decode in parallel (OpenCV releases the GIL while decoding).
        self._pool = ThreadPoolExecutor(max_workers=min(4, len(self.sources)), thread_name_prefix="decode")
        for source in self.sources:
            source.open()
        self._pending = {s.name: s.read() for s in self.sources}
        self._opened = True

    def close(self) -> None:
        for source in self.sources:
            source.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._opened = False

    def __iter__(self) -> Iterator[FrameSet]:
        while (frameset := self.next()) is not None:
            yield frameset

    def next(self) -> FrameSet | None:
        """The next synchronized set, or None at the end (when not looping).

        In realtime mode, sets that are already late on the replay clock are skipped (counted in
        ``skipped_sets``): a slow consumer sees the newest frames, not a growing backlog.
        """
        if not self._opened:
            self.open()
        while True:
            start = time.perf_counter()
            frames = self._take_set()
            if frames is None and self.loop and self._count > 0:
                self._restart()
                frames = self._take_set()
            if frames is None:
                return None
            decode_ms = (time.perf_counter() - start) * 1000.0
            ref = float(np.median([f.timestamp for f in frames.values()])) + self._loop_offset
            frameset = FrameSet(frames, ref, self._count, decode_ms)
            self._count += 1
            if not self.realtime or self._pace(ref) >= -1.5 / self.fps:
                return frameset
            self.skipped_sets += 1

    def _take_set(self) -> dict[str, Frame] | None:
        if any(f is None for f in self._pending.values()):
            return None
        # The latest head defines the set's time; sources behind it skip to their nearest frame.
        target = max(f.timestamp for f in self._pending.values() if f is not None)
        assert self._pool is not None
        frames = dict(zip(self.camera_names, self._pool.map(lambda src: self._advance(src, target), self.sources), strict=True))
        self._last_time = max(f.timestamp for f in frames.values())
        return frames

    def _advance(self, source: FrameSource, target: float) -> Frame:
        frame = self._pending[source.name]
        assert frame is not None
        nxt = source.read()
        while nxt is not None and abs(nxt.timestamp - target) < abs(frame.timestamp - target):
            self.dropped[source.name] += 1
            frame, nxt = nxt, source.read()
        self._pending[source.name] = nxt
        return frame

    def _restart(self) -> None:
        self._loop_offset += self._last_time + 1.0 / self.fps
        for source in self.sources:
            source.rewind()
        self._pending = {s.name: s.read() for s in self.sources}

    def _pace(self, ref: float) -> float:
        """Sleep until the set's time on the replay clock; returns the delay (negative = late)."""
        now = time.perf_counter()
        if self._clock_start is None:
            self._clock_start = now - ref / self.speed
        delay = self._clock_start + ref / self.speed - now
        if delay > 0:
            time.sleep(delay)
        return delay
