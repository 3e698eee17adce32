"""Benchmark live capture + synchronization with synthetic cameras (no detector, no model).

    python -m capture.benchmark --cameras 4 --seconds 10 --json out/capture_bench.json

Each synthetic camera delivers 640x480 frames at 30 fps from its own reader thread (timestamped
at grab time, as real cameras are), the cameras 2 ms apart (so the reported skew is about
2 x (cameras - 1) ms plus scheduling jitter). The group is drained as fast as it produces sets. Reported:
frame-sets per second, grab-to-FrameSet latency (p50 / p95 ms, over every frame of every set),
inter-camera skew (p50 / p95 ms), per-camera fps and drops, and the CPU used by capture + sync
(process CPU time / wall time; 100 % = one core).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from capture.live import LiveCamera
from capture.sync import CameraGroup
from core.report import run_and_report


class SyntheticStream:
    """A camera made of pre-drawn frames, paced at ``fps`` like a real sensor."""

    def __init__(self, fps: float, size: tuple[int, int], start: float) -> None:
        w, h = size
        self.frames = [np.full((h, w, 3), (i * 9) % 255, np.uint8) for i in range(30)]
        self.interval, self.next, self.i = 1.0 / fps, start, 0

    def read(self) -> np.ndarray:
        delay = self.next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self.next += self.interval
        self.i += 1
        return self.frames[self.i % len(self.frames)].copy()  # a fresh buffer per frame, as a driver gives

    def release(self) -> None:
        pass


def _synthetic(fps: float, size: tuple[int, int], start: float) -> Callable[[str], SyntheticStream]:
    """An opener for LiveCamera that ignores the URL and gives a synthetic camera."""
    return lambda _url: SyntheticStream(fps, size, start)


def run(cameras: int, seconds: float, fps: float, size: tuple[int, int]) -> dict[str, object]:
    t0 = time.monotonic() + 0.3  # sensors free-running with small fixed offsets (2 ms apart)
    live = [LiveCamera(f"cam{i}", "synthetic", opener=_synthetic(fps, size, start=t0 + 0.002 * i)) for i in range(cameras)]
    group = CameraGroup(live)
    group.open()
    time.sleep(0.8)  # connect and start delivering
    latencies: list[float] = []
    skews: list[float] = []
    sets, full = 0, 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            frameset = group.next()
            if frameset is None:
                break
            now = time.monotonic()
            latencies.extend((now - f.timestamp) * 1000.0 for f in frameset.frames.values())
            skews.append(group.skew_ms)
            sets += 1
            full += len(frameset.frames) == cameras
    finally:
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        health = group.health()
        group.close()
    pct = lambda v, q: round(float(np.percentile(v, q)), 2) if v else None  # noqa: E731
    return {
        "cameras": cameras, "size": list(size), "fps_per_camera_target": fps, "seconds": round(wall, 2),
        "framesets": sets, "framesets_per_s": round(sets / wall, 2),
        "grab_to_frameset_ms": {"p50": pct(latencies, 50), "p95": pct(latencies, 95)},
        "skew_ms": {"p50": pct(skews, 50), "p95": pct(skews, 95)},
        "cpu_percent_of_one_core": round(100.0 * cpu / wall, 1),
        "sets_with_all_cameras": round(full / max(sets, 1), 3),
        "per_camera": {h.name: {"fps": h.fps, "frames": h.frames, "dropped": h.dropped, "state": h.state.value} for h in health},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m capture.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.cameras < 1 or args.seconds <= 0:
        parser.error("--cameras must be >= 1 and --seconds > 0")
    return run_and_report(lambda: run(args.cameras, args.seconds, args.fps, (640, 480)), args.json)


if __name__ == "__main__":
    sys.exit(main())
