"""How fast the session writer records: synthetic cameras delivering in real time into a real
:class:`~recording.writer.SessionRecorder`.

    python -m recording.benchmark --cameras 4 --size 640x480 --fps 30 --seconds 20 --json out/rec_bench.json

Every 1/fps seconds one frame-set (one frame per camera, with 2D keypoints) is handed to the
recorder, as the pipeline does. It reports the share of sets the writer dropped (its queue was
full), the JPEG encoding time per frame, how far behind the writer fell, and the disk use (MB per
minute of recording, video and results). The frames are a textured room with a moving figure and
sensor noise, so the JPEG sizes are those of a camera image rather than of a flat test picture.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from core.camera import uncalibrated
from core.errors import AppError
from core.report import run_and_report
from core.types import BodyEstimate, Frame, FrameSet, Keypoints2D
from recording.writer import SessionRecorder

LOOP_FRAMES = 30  # distinct frames per camera, replayed in a loop


class BenchmarkError(AppError):
    """A benchmark argument is wrong."""


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise BenchmarkError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise BenchmarkError(f"--size {text!r}: width and height must be 16 to 8192 pixels")
    return width, height


def room_frames(size: tuple[int, int], seed: int, count: int = LOOP_FRAMES) -> list[np.ndarray]:
    """``count`` frames ``[H, W, 3]`` uint8 of a textured room with a figure walking across."""
    width, height = size
    rng = np.random.default_rng(seed)
    small = rng.uniform(40, 200, (max(2, height // 40), max(2, width // 40), 3)).astype(np.float32)
    room = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):  # furniture and edges
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 20, width // 4)), int(rng.integers(height // 20, height // 3))
        cv2.rectangle(room, (x, y), (x + w, y + h), tuple(float(v) for v in rng.uniform(0, 255, 3)), -1)
    room = room + rng.normal(0, 6, room.shape).astype(np.float32)  # fixed texture
    frames = []
    for k in range(count):
        image = room.copy()
        cx, cy = int(width * (0.2 + 0.6 * k / count)), height // 2
        cv2.ellipse(image, (cx, cy), (width // 20, height // 5), 0, 0, 360, (60, 90, 160), -1)
        cv2.circle(image, (cx, cy - height // 4), height // 16, (140, 170, 210), -1)
        image = image + rng.normal(0, 2.5, image.shape).astype(np.float32)  # sensor noise, new every frame
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
    return frames


def make_estimate(names: list[str], frames: dict[str, list[np.ndarray]], index: int, timestamp: float) -> BodyEstimate:
    points = np.zeros((17, 3), np.float32)
    points[:, 0], points[:, 1], points[:, 2] = index % 640, 100.0, 0.9
    frameset = FrameSet({n: Frame(n, frames[n][index % len(frames[n])], timestamp, index) for n in names}, timestamp, index)
    return BodyEstimate(frameset, {n: Keypoints2D(n, points) for n in names})


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run(cameras: int, size: tuple[int, int], fps: float, seconds: float, folder: Path) -> dict[str, object]:
    names = [f"cam{i + 1}" for i in range(cameras)]
    frames = {n: room_frames(size, seed=i) for i, n in enumerate(names)}
    recorder = SessionRecorder(folder, [uncalibrated(n, size) for n in names], min_free_bytes=0).start()
    total = int(round(seconds * fps))
    late = 0
    start = time.perf_counter()
    cpu_start = time.process_time()
    for index in range(total):
        due = start + index / fps
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0 / fps:
            late += 1  # the benchmark itself fell behind (a loaded machine)
        recorder.add(make_estimate(names, frames, index, due - start))
    offered_s = time.perf_counter() - start
    recorder.stop("end of the benchmark", timeout=120)
    finish_s = time.perf_counter() - start - offered_s
    cpu_s = time.process_time() - cpu_start
    stats = recorder.stats()
    written = folder_bytes(folder)
    return {
        "cameras": cameras,
        "size": f"{size[0]}x{size[1]}",
        "fps": fps,
        "seconds": seconds,
        "sets_offered": total,
        "sets_recorded": recorder.recorded,
        "sets_dropped": recorder.dropped,
        "dropped_percent": round(100.0 * recorder.dropped / max(total, 1), 2),
        "jpeg_quality": stats["jpeg_quality"],
        "encoder_threads": stats["encoder_threads"],
        "encode_ms_per_frame": stats["encode_ms"],
        "write_ms_per_set": stats["write_ms"],
        "queue_max_sets": stats["queue_max"],
        "finish_after_last_set_s": round(finish_s, 2),
        "producer_late_sets": late,
        "process_cpu_percent": round(100.0 * cpu_s / max(offered_s + finish_s, 1e-9), 1),
        "mb_written": round(written / 1e6, 1),
        "mb_per_minute": round(written / 1e6 / (total / fps) * 60.0, 1),
        "mb_per_frame": round(written / 1e6 / max(recorder.recorded * cameras, 1), 3),
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "stop_reason": recorder.stop_reason,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recording.benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT (default 640x480)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--folder", type=Path, help="record here (a new folder; default: a temporary one, removed)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    if not 1 <= args.cameras <= 64:
        parser.error("--cameras must be 1 to 64")
    if not (0 < args.fps <= 1000 and 0 < args.seconds <= 3600):
        parser.error("--fps must be in (0, 1000] and --seconds in (0, 3600]")

    def measure() -> dict[str, object]:
        size = parse_size(args.size)
        if args.folder is not None:
            return run(args.cameras, size, args.fps, args.seconds, args.folder)
        with tempfile.TemporaryDirectory(prefix="rec_bench_") as tmp:
            return run(args.cameras, size, args.fps, args.seconds, Path(tmp) / "session")

    return run_and_report(measure, args.json)


if __name__ == "__main__":
    sys.exit(main())
