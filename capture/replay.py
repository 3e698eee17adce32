"""Replay several sources as synchronized :class:`FrameSet` objects.

Frames are grouped by timestamp. At every step the source whose next frame is latest defines the
set's target time; every other source skips (and counts) older frames and contributes its frame
nearest to that time. A source with no frame within half a frame period of the target is left
out of that set and its frame is held back for a later one; a source that has ended ends the
replay (or starts the next loop). Replay runs as fast as possible or at the recording's rate; in
real time, a consumer slower than the recording gets the newest set each time it asks (frames
that are late are skipped without decoding them), and looped frames carry session times that keep
increasing across loops.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from capture.sources import FrameSource
from core.errors import SourceError
from core.types import Frame, FrameSet

LATE_PERIODS = 1.5  # realtime: a frame this many frame periods behind the clock is skipped
MAX_DECODED_SKIPS = 4  # realtime, a source without skip_until: at most this many reads to skip per set
SKIP_BUDGET_S = 0.05  # realtime: time spent skipping late frames before each set, at most
MAX_LAG_S = 0.25  # realtime: further behind than this, the clock waits for the replay (slow motion)

MAX_OFFSETS = 1000  # seek: the loops and jumps remembered (session time -> recording time)


class _Ended(enum.Enum):
    ENDED = "ended"


class SessionReplay:
    """Synchronized replay of ``sources``.

    realtime: pace the sets at the recording's rate (``speed`` x); frames already late are skipped
    before they are decoded.
    loop: start again from the first frame when a source ends.
    """

    def __init__(self, sources: Sequence[FrameSource], realtime: bool = False, loop: bool = False, speed: float = 1.0) -> None:
        if not sources:
            raise SourceError("replay needs at least one source")
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise SourceError(f"duplicate camera names in replay: {names}")
        self.sources = list(sources)
        self.realtime, self.loop, self.speed = realtime, loop, speed
        self.dropped: dict[str, int] = dict.fromkeys(names, 0)
        self.skipped_sets = 0
        self._buffers: dict[str, list[Frame]] = {n: [] for n in names}
        self._count = 0
        self._loop_offset = 0.0
        self._last_time = 0.0
        self._clock_start: float | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._seek_to: float | None = None  # a session time to jump to before the next set (seek)
        self._offsets: list[tuple[float, float]] = [(0.0, 0.0)]  # (session time from which, loop offset)

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
        self._buffers = {n: [] for n in self.camera_names}

    def close(self) -> None:
        # Decodes still in flight (a Ctrl+C interrupts next() mid-set) finish before their
        # sources are released: releasing a capture while it decodes crashes OpenCV (SIGSEGV).
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for source in self.sources:
            source.close()

    def __iter__(self) -> Iterator[FrameSet]:
        while (frameset := self.next()) is not None:
            yield frameset

    def next(self) -> FrameSet | None:
        """The next synchronized set, or None at the end (when not looping).

        In realtime mode every call delivers the newest set the replay clock allows: frames that
        are already late are skipped before they are decoded (counted in ``dropped`` and
        ``skipped_sets``, for at most ``SKIP_BUDGET_S``), and the set that follows is delivered even
        when decoding it took long, so a slow consumer sees the newest frames, never a growing
        backlog and never a standstill. When even skipping cannot keep up (video decoding alone
        slower than the recording), the clock gives way: the replay runs in slow motion, at most
        ``MAX_LAG_S`` behind.
        """
        if self._pool is None:
            self.open()
        if self._seek_to is not None:
            target, self._seek_to = self._seek_to, None
            self._jump(target)
        if self.realtime and self._clock_start is not None:
            self._skip_late()
        start = time.perf_counter()
        frames = self._take_set()
        if frames is None and self.loop and self._count > 0:
            self._restart()
            frames = self._take_set()
        if frames is None:
            return None
        decode_ms = (time.perf_counter() - start) * 1000.0
        ref = float(np.median([f.timestamp for f in frames.values()])) + self._loop_offset
        if self._loop_offset:  # frame times run on the session clock too: monotonic across loops
            frames = {n: replace(f, timestamp=f.timestamp + self._loop_offset) for n, f in frames.items()}
        frameset = FrameSet(frames, ref, self._count, decode_ms)
        self._count += 1
        if self.realtime:
            self._pace(ref)
        return frameset

    def _skip_late(self) -> None:
        """Drop every frame that is more than ``LATE_PERIODS`` behind the replay clock, without
        decoding it where the source can skip (``skip_until``)."""
        assert self._clock_start is not None and self._pool is not None
        now = (time.perf_counter() - self._clock_start) * self.speed - self._loop_offset
        cutoffs = {s.name: now - LATE_PERIODS / s.fps for s in self.sources}
        if max(cutoffs.values()) <= self._last_time:
            return  # every frame still to come is after the last set's: none can be late yet
        deadline = time.perf_counter() + SKIP_BUDGET_S
        skipped = list(self._pool.map(lambda src: self._skip_source(src, cutoffs[src.name], deadline), self.sources))
        if any(skipped):
            self.skipped_sets += max(skipped)
            # A source skipped to its end: the next loop starts now on the session clock.
            self._last_time = max(self._last_time, max(cutoffs.values()))

    def _skip_source(self, source: FrameSource, cutoff: float, deadline: float) -> int:
        buffer = self._buffers[source.name]
        count = 0
        while buffer and buffer[0].timestamp < cutoff:
            buffer.pop(0)
            count += 1
        if not buffer:
            skip_until = getattr(source, "skip_until", None)
            if skip_until is not None:
                count += skip_until(cutoff, deadline)
            else:  # a source that cannot skip without decoding: a bounded number of reads
                for _ in range(MAX_DECODED_SKIPS + 1):
                    if (frame := source.read()) is None:
                        break
                    if frame.timestamp >= cutoff or count == MAX_DECODED_SKIPS or time.perf_counter() > deadline:
                        buffer.append(frame)
                        break
                    count += 1
        self.dropped[source.name] += count
        return count

    def _take_set(self) -> dict[str, Frame] | None:
        assert self._pool is not None
        heads = list(self._pool.map(self._head, self.sources))
        if any(h is None for h in heads):
            return None
        target = max(h.timestamp for h in heads if h is not None)
        taken = list(self._pool.map(lambda src: self._advance(src, target), self.sources))
        if any(t is _Ended.ENDED for t in taken):
            return None
        frames = {f.camera: f for f in taken if isinstance(f, Frame)}
        self._last_time = max(f.timestamp for f in frames.values())
        return frames

    def _head(self, source: FrameSource) -> Frame | None:
        buffer = self._buffers[source.name]
        if not buffer and (frame := source.read()) is not None:
            buffer.append(frame)
        return buffer[0] if buffer else None

    def _advance(self, source: FrameSource, target: float) -> Frame | _Ended | None:
        """Consume and return this source's frame nearest ``target``; None = held back."""
        buffer = self._buffers[source.name]
        while buffer[0].timestamp < target:  # a frame at or after the target: later ones are further
            if len(buffer) < 2 and (frame := source.read()) is not None:
                buffer.append(frame)
            if len(buffer) >= 2 and abs(buffer[1].timestamp - target) < abs(buffer[0].timestamp - target):
                buffer.pop(0)
                self.dropped[source.name] += 1
                continue
            break
        head = buffer[0]
        if abs(head.timestamp - target) <= 0.5 / source.fps:
            return buffer.pop(0)
        if head.timestamp > target:
            return None  # no frame near the target yet: keep it for a later set
        return _Ended.ENDED  # the source has no frame at or after the target: it ended

    def seek(self, t: float) -> None:
        """Replay from session time ``t`` (a time this replay delivered, e.g. an event's) at the next
        call to :meth:`next` (another thread may call this). The session clock keeps running forward,
        as when a loop starts again: the frames of ``t`` come back with new, later session times."""
        self._seek_to = t

    def _jump(self, t: float) -> None:
        """Every source from its first frame at or after the recording time of session time ``t``."""
        offset = next((o for since, o in reversed(self._offsets) if since <= t), 0.0)
        recording_t = max(0.0, t - offset)
        session_now = self._last_time + self._loop_offset
        for source in self.sources:
            source.rewind()
            self._buffers[source.name] = []
            cutoff = recording_t - 0.5 / source.fps
            skip_until = getattr(source, "skip_until", None)
            if skip_until is not None:
                skip_until(cutoff)
                continue
            while (frame := source.read()) is not None:
                if frame.timestamp >= cutoff:
                    self._buffers[source.name] = [frame]
                    break
        self._last_time = recording_t
        self._new_offset(session_now + 1.0 / self.fps - recording_t, recording_t)

    def _new_offset(self, offset: float, start: float) -> None:
        """From recording time ``start`` on, recording time + ``offset`` = session time (a loop or a jump began)."""
        self._loop_offset = offset
        self._offsets.append((start + offset, offset))
        del self._offsets[:-MAX_OFFSETS]

    def rewind(self) -> None:
        """Start again from the first frames (the reference clock keeps running forward)."""
        if self._pool is None:
            self.open()
            return
        self._restart()

    def _restart(self) -> None:
        for source in self.sources:
            source.rewind()
        self._buffers = {n: [] for n in self.camera_names}
        assert self._pool is not None
        heads = [h for h in self._pool.map(self._head, self.sources) if h is not None]
        first = min((h.timestamp for h in heads), default=0.0)
        # Continue the reference clock one period after the last set.
        self._new_offset(self._loop_offset + self._last_time + 1.0 / self.fps - first, first)

    def _pace(self, ref: float) -> None:
        """Sleep until the set's time on the replay clock; past ``MAX_LAG_S`` late, the clock waits."""
        now = time.perf_counter()
        if self._clock_start is None:
            self._clock_start = now - ref / self.speed
        delay = self._clock_start + ref / self.speed - now
        if delay > 0:
            time.sleep(delay)
        if -delay > MAX_LAG_S:  # skipping cannot catch up (decoding alone is too slow): slow down
            self._clock_start += -delay - MAX_LAG_S
