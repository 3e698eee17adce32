"""Soak test: run the headless pipeline (main.py's own loop) on the looping bundled demo for M
minutes, optionally recording, and measure memory and throughput.

    python -m tools.soak --minutes 30 --record --json soak.json [--detector blazepose] [--no-body]

The process RSS is sampled every ``--interval`` seconds (from /proc/self/statm). The memory slope
(MB/min) is a least-squares line through the samples taken after a warm-up (default: the first
5 minutes of processing, or a third of a shorter run), so that model loading and the first
caches do not count. A recording goes into a temporary folder that is deleted afterwards (its
size is reported first). Progress is printed every 30 s. It is a measuring script, not a test.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import main as app_main  # main.py at the repository root (run as python -m tools.soak from there)
from core.errors import AppError

PROGRESS_EVERY_S = 30.0
DEFAULT_WARMUP_MIN = 5.0


def rss_mb() -> float:
    """The resident set size of this process in MB (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def memory_slope(samples: list[tuple[float, float, int]], start_s: float, end_s: float) -> tuple[float | None, int]:
    """Least-squares slope in MB/min of the (t seconds, MB) samples taken from ``start_s`` to
    ``end_s``, and how many samples it used (None with fewer than 3)."""
    used = [(t, mb) for t, mb, _ in samples if start_s <= t <= end_s]
    if len(used) < 3:
        return None, len(used)
    t, mb = np.array(used).T
    return float(np.polyfit(t / 60.0, mb, 1)[0]), len(used)


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


@dataclass
class Sampler:
    """Samples RSS and the run's counts every ``interval`` s; sets ``stop`` after ``minutes`` of
    processing (counted from the first processed frame-set)."""

    minutes: float
    interval: float
    counts: app_main.HeadlessCounts
    stop: threading.Event = field(default_factory=threading.Event)
    samples: list[tuple[float, float, int]] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)
    started: str = field(default_factory=lambda: datetime.datetime.now().isoformat(timespec="seconds"))
    processing_start: float | None = None
    processing_end: float | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def sample(self) -> None:
        now = self.elapsed()
        self.samples.append((round(now, 2), round(rss_mb(), 2), self.counts.processed))
        if self.processing_start is None and self.counts.processed > 0:
            self.processing_start = now

    def run(self) -> None:
        last_print = 0.0
        while not self.done.wait(self.interval):
            self.sample()
            if self.elapsed() - last_print >= PROGRESS_EVERY_S:
                last_print = self.elapsed()
                self.report()
            if self.processing_start is not None and self.elapsed() - self.processing_start >= self.minutes * 60:
                self.stop.set()

    def report(self) -> None:
        t, mb, sets = self.samples[-1]
        rate = ""
        if self.processing_start is not None and t > self.processing_start:
            rate = f", {sets / (t - self.processing_start):.2f} sets/s"
        print(
            f"soak {t / 60:5.1f} min: {sets} sets{rate}, {self.counts.dropped} dropped, RSS {mb:.1f} MB",
            file=sys.stderr,
            flush=True,
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, required=True, help="how long to process (from the first frame-set)")
    parser.add_argument("--json", type=Path, required=True, help="where to write the figures (JSON)")
    parser.add_argument("--record", action="store_true", help="also record (into a temporary folder, deleted afterwards)")
    parser.add_argument("--no-video", action="store_true", help="with --record: results only")
    parser.add_argument("--detector", default="blazepose", help="2D detector (default: blazepose, as the app)")
    parser.add_argument("--no-body", action="store_true", help="keypoints only (no HeatFormer)")
    parser.add_argument("--backend", default="auto", help="HeatFormer runtime (default: auto, as main.py)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between RSS samples (default 5)")
    parser.add_argument("--warmup", type=float, help=f"minutes left out of the slope (default {DEFAULT_WARMUP_MIN:g}, "
                        "or a third of a shorter run)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes must be more than 0")
    if args.interval <= 0:
        parser.error("--interval must be more than 0")
    if not args.json.parent.is_dir():
        parser.error(f"--json {args.json}: folder {args.json.parent} does not exist")
    if args.warmup is None:
        args.warmup = min(DEFAULT_WARMUP_MIN, args.minutes / 3)
    return args


def headless_args(args: argparse.Namespace, record: Path | None) -> argparse.Namespace:
    """main.py's arguments for the run: headless, the looping demo, no --out (nothing kept per frame)."""
    argv = ["--headless", "--detector", args.detector, "--backend", args.backend]
    argv += ["--no-body"] if args.no_body else []
    argv += ["--record", str(record)] if record is not None else []
    argv += ["--no-video"] if args.no_video and record is not None else []
    return app_main.build_parser().parse_args(argv)


def figures(args: argparse.Namespace, sampler: Sampler, code: int, record_mb: float | None) -> dict[str, object]:
    start = sampler.processing_start or 0.0
    end = sampler.processing_end or sampler.elapsed()
    seconds = max(end - start, 1e-9)
    slope, used = memory_slope(sampler.samples, start + args.warmup * 60, end)
    rss = [mb for _, mb, _ in sampler.samples]
    return {
        "started": sampler.started,
        "minutes": round(seconds / 60, 2),
        "minutes_asked": args.minutes,
        "detector": args.detector,
        "body": not args.no_body,
        "backend": args.backend,
        "record": args.record,
        "store_video": args.record and not args.no_video,
        "cpu_count": os.cpu_count(),
        "exit_code": code,
        "model_load_s": round(start, 1),
        "frame_sets": sampler.counts.processed,
        "sets_per_s": round(sampler.counts.processed / seconds, 3),
        "recorded_sets": sampler.counts.recorded,
        "dropped_sets": sampler.counts.dropped,
        "dropped_percent": round(100 * sampler.counts.dropped / max(sampler.counts.processed, 1), 2),
        "recording_mb": None if record_mb is None else round(record_mb, 1),
        "recording_mb_per_min": None if record_mb is None else round(record_mb / (seconds / 60), 1),
        "rss_samples": [{"t": t, "mb": mb, "sets": n} for t, mb, n in sampler.samples],
        "rss_start_mb": rss[0] if rss else None,
        "rss_end_mb": rss[-1] if rss else None,
        "peak_rss_mb": max(rss) if rss else None,
        "slope_mb_per_min": None if slope is None else round(slope, 3),
        "slope_fit": f"least squares over the {used} samples taken after a {args.warmup:g}-min warm-up "
        f"(time counted from the first processed frame-set; model loading took {start:.0f} s)",
        "warmup_min": args.warmup,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="soak-")) if args.record else None
    record = tmp / "session" if tmp is not None else None
    sampler = Sampler(args.minutes, args.interval, app_main.HeadlessCounts())
    sampler.sample()
    thread = threading.Thread(target=sampler.run, name="soak-sampler", daemon=True)
    thread.start()
    code, record_mb = 0, None
    try:
        code = app_main.run_headless(headless_args(args, record), stop=sampler.stop, counts=sampler.counts)
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = app_main.EXIT_USER_ERROR
    finally:
        sampler.processing_end = sampler.elapsed()
        sampler.done.set()
        thread.join()
        sampler.sample()
        if tmp is not None:
            record_mb = folder_mb(tmp) if record is not None and record.exists() else None
            shutil.rmtree(tmp, ignore_errors=True)
    data = figures(args, sampler, code, record_mb)
    args.json.write_text(json.dumps(data, indent=2))
    print(
        f"soak: {data['frame_sets']} sets in {data['minutes']} min ({data['sets_per_s']} sets/s), "
        f"{data['dropped_sets']} dropped, peak RSS {data['peak_rss_mb']} MB, slope {data['slope_mb_per_min']} MB/min; "
        f"wrote {args.json}"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
