"""``python -m monitoring --results RESULTS.npz|session:DIR [--room ROOM.toml] --out events.jsonl``:
the live rules over stored bodies (see monitoring.offline)."""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import sys
from pathlib import Path

from core.errors import AppError
from core.outputs import check_output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring", description=__doc__)
    parser.add_argument("--results", required=True, metavar="RESULTS.npz|session:DIR",
                        help="a results file (people_* arrays or the single-person layout) or a recorded session")  # fmt: skip
    parser.add_argument("--room", type=Path, help="the room file whose [monitoring] tables apply (default: the defaults)")
    parser.add_argument("--out", type=Path, required=True, help="the events file to write (JSON lines; replaced)")
    parser.add_argument("--fps", type=float, help="frame-sets per second, for a file without timestamps")
    parser.add_argument(
        "--start", help="wall-clock time of the first frame-set (ISO 8601; default: the session's start, else now)"
    )
    args = parser.parse_args(argv)
    try:
        return run(args)
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    from monitoring.config import MonitorError
    from monitoring.live import monitor_config, open_monitor
    from monitoring.offline import load_track

    check_output(args.out, "--out", suffix=(".jsonl",))
    config = monitor_config(args.room)
    track = load_track(args.results, args.fps)
    start = track.started
    if args.start is not None:
        try:
            start = dt.datetime.fromisoformat(args.start)
            start = start if start.tzinfo is not None else start.astimezone()  # a time without offset is local
        except ValueError:
            raise MonitorError(f"--start {args.start!r}: not an ISO 8601 time (e.g. 2026-11-28T23:00:00)") from None
    if args.out.exists():
        args.out.unlink()
    monitor = open_monitor(config, args.out, with_sinks=False, wall_start=start)
    kinds: collections.Counter[str] = collections.Counter()
    total = len(track.times)
    try:
        for i, (t, seen) in enumerate(track):
            for event in monitor.update(t, seen):
                kinds[f"{event.type} {event.phase}"] += 1
            if total >= 1000 and i % 1000 == 0:
                print(f"\r{i}/{total} frame-sets", end="", file=sys.stderr)
    finally:
        monitor.close()
    if total >= 1000:
        print(f"\r{total}/{total} frame-sets", file=sys.stderr)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no events"
    print(f"wrote {args.out}: {sum(kinds.values())} events over {total} frame-sets ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
