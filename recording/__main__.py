"""Recorded sessions from the command line (no pixels needed: works on ``--no-video`` sessions).

    python -m recording info SESSION [--check] [--json F]     what the session holds, what was skipped
    python -m recording keypoints SESSION --out F.npz [--uncalibrated]
    python -m recording results SESSION --out F.npz             the session's results as one results file
    python -m recording export SESSION|RESULTS.npz --format F --out PATH [--person ID] [--up z|y]

``results`` merges the session's result chunks into one file of the results layout (README
"Results files"; the layout of the headless ``--out`` file). ``export`` writes everyone's motion
(or --person's) as one of recording.exports.FORMATS: amass, bvh, glb, c3d, trc (one file per
person: ``<stem>_person<ID><suffix>`` when there are several), csv, parquet, plot (everyone in one
file).

``keypoints`` writes the keypoints exchange file (core/formats.py) from the session's results:
keypoints ``[T, V, 17, 3]``, camera names, image sizes, timestamps, K/R/t/dist from the session's
calibration snapshot when it has one, the 3D keypoints when they were triangulated and the body
results when HeatFormer ran. ``python -m engine.evaluate --keypoints F.npz --out B.npz``
re-processes it. ``info --check`` decodes every stored frame to count damaged ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from capture.recorded import SessionError, camera_specs, parse_table, read_metadata, recorded_sources
from core.camera import Camera
from core.errors import AppError
from core.formats import BODY_FIELDS, EXCHANGE_FORMAT_VERSION
from core.outputs import check_output
from recording.exports import FORMATS, UP_AXES, Progress, export
from recording.reader import Results, read_results
from recording.writer import npz_bytes


def session_results(folder: Path, meta: dict[str, object]) -> Results:
    """The session's results; an error naming the first unreadable file when none can be read."""
    results = read_results(folder, views=len(camera_specs(meta)))
    if len(results):
        return results
    if results.skipped:
        name, reason = next(iter(results.skipped.items()))
        raise SessionError(f"recorded session {folder}: no readable results (results/{name}: {reason})")
    raise SessionError(f"recorded session {folder}: results/ holds no results (no frame-set was recorded)")


def snapshot_cameras(folder: Path, meta: dict[str, object]) -> list[Camera] | None:
    """The calibrated cameras of the session's calibration snapshot, in the recorded order (None
    when it was recorded uncalibrated)."""
    from calibration.matching import match_cameras

    specs = camera_specs(meta)
    path = folder / "calibration.toml"
    text = meta.get("calibration")
    if not path.is_file() and not isinstance(text, str):
        return None
    if not all(size for _, size in specs):
        raise SessionError(f"recorded session file {folder / 'session.json'}: field cameras[].image_size missing")
    views = [(name, size) for name, size in specs if size is not None]  # all have one (checked above)
    if path.is_file():
        return match_cameras(path, views)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "calibration.toml"
        copy.write_text(str(text))
        return match_cameras(copy, views)


def exchange_arrays(meta: dict[str, object], results: Results, cameras: list[Camera] | None) -> dict[str, np.ndarray]:
    """The keypoints exchange file's arrays (the layout core.formats.KeypointsRecorder writes)."""
    specs = camera_specs(meta)
    arrays = results.arrays
    data: dict[str, np.ndarray] = {
        "format_version": np.array(EXCHANGE_FORMAT_VERSION),
        "keypoints": arrays["keypoints"].astype(np.float32),
        "camera_names": np.array([name for name, _ in specs]),
        "timestamps": arrays["timestamps"].astype(np.float64),
    }
    if all(size for _, size in specs):
        data["image_size"] = np.array([size for _, size in specs], np.int32)
    if cameras is not None:
        data |= {k: np.stack([getattr(c, k) for c in cameras]).astype(np.float32) for k in ("K", "R", "t", "dist")}
    k3d = arrays.get("keypoints3d")
    if k3d is not None and np.isfinite(k3d).any():
        data["keypoints3d"] = k3d.astype(np.float32)
    data |= {k: v for k, v in arrays.items() if k in BODY_FIELDS}
    return data


def export_keypoints(folder: Path, out: Path, uncalibrated: bool = False) -> str:
    """Write the exchange file; returns the summary line."""
    check_output(out, "--out")
    meta = read_metadata(folder)
    results = session_results(folder, meta)
    cameras = None if uncalibrated else snapshot_cameras(folder, meta)
    data = exchange_arrays(meta, results, cameras)
    try:
        out.write_bytes(npz_bytes(data, compress=True))
    except OSError as exc:
        out.unlink(missing_ok=True)
        raise SessionError(f"--out {out}: cannot write ({exc.strerror or exc})") from exc
    skipped = f"; skipped {', '.join(results.skipped)}" if results.skipped else ""
    tail = f", {results.from_log} set(s) from an unfinished chunk" if results.from_log else ""
    return (f"wrote {out} ({len(results)} frame-sets, {len(data['camera_names'])} views, "
            f"{'calibrated' if cameras is not None else 'uncalibrated'}{tail}{skipped})")  # fmt: skip


def export_results(folder: Path, out: Path, progress: Progress | None = None) -> str:
    """Write the session's results as one results file (README "Results files"); returns the
    summary line."""
    check_output(out, "--out", ".npz")
    meta = read_metadata(folder)
    results = read_results(folder, views=len(camera_specs(meta)), progress=progress)
    if not len(results):
        session_results(folder, meta)  # raises, naming the first unreadable file
    data = exchange_arrays(meta, results, snapshot_cameras(folder, meta))
    data |= {k: v for k, v in results.arrays.items() if k not in data}
    try:
        out.write_bytes(npz_bytes(data, compress=True))
    except OSError as exc:
        out.unlink(missing_ok=True)
        raise SessionError(f"--out {out}: cannot write ({exc.strerror or exc})") from exc
    ids = data.get("people_ids", np.zeros((0, 0), int))
    people = sorted(int(i) for i in np.unique(ids[ids >= 0]))
    skipped = f"; skipped {', '.join(results.skipped)}" if results.skipped else ""
    return f"wrote {out} ({len(results)} frame-sets, {len(people)} people{skipped})"


class StderrProgress:
    """A progress bar on stderr: a rewritten line on a terminal, a line every quarter otherwise."""

    WIDTH = 30

    def __init__(self, label: str) -> None:
        self.label, self.tty, self.shown = label, sys.stderr.isatty(), -1

    def __call__(self, fraction: float) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self.tty:
            filled = round(fraction * self.WIDTH)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            print(f"\r{self.label} [{bar}] {fraction:4.0%}", end="", file=sys.stderr, flush=True)
        elif int(fraction * 4) > self.shown:
            self.shown = int(fraction * 4)
            print(f"{self.label}: {fraction:.0%}", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr, flush=True)


def session_info(folder: Path, check: bool = False) -> dict[str, object]:
    """What a session holds (cameras, frames, results) and what a replay would skip."""
    meta = read_metadata(folder)
    cameras: list[dict[str, object]] = []
    if meta.get("store_video") is False:
        for name, size in camera_specs(meta):
            table = folder / "videos" / f"{name}.csv"
            rows, bad = parse_table(table) if table.is_file() else ([], [])
            cameras.append({"name": name, "image_size": size, "frames": len(rows), "bad_lines": len(bad)})
    else:
        for source in recorded_sources(folder):
            if check:
                while source.read() is not None:
                    pass
            cameras.append({"name": source.name, "image_size": list(source.image_size), "frames": source.frame_count,
                            "fps": round(source.fps, 2), **source.skipped})  # fmt: skip
            source.close()
    results = read_results(folder, views=len(cameras))
    return {
        "session": str(folder),
        "format_version": meta["format_version"],
        "started": meta.get("started"),
        "ended": meta.get("ended", "not finalised (the recording was cut short)"),
        "stop_reason": meta.get("stop_reason"),
        "error": meta.get("error"),
        "store_video": meta.get("store_video", True),
        "calibrated": (folder / "calibration.toml").is_file() or isinstance(meta.get("calibration"), str),
        "sets_recorded": meta.get("sets"),
        "dropped_sets": meta.get("dropped_sets"),
        "cameras": cameras,
        "results": {"sets": len(results), "from_unfinished_chunk": results.from_log, "skipped": results.skipped},
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recording", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="what a session holds and what a replay would skip (JSON)")
    info.add_argument("session", type=Path)
    info.add_argument("--check", action="store_true", help="decode every stored frame (counts damaged ones)")
    info.add_argument("--json", type=Path, help="also write the JSON here")
    keypoints = commands.add_parser("keypoints", help="write the keypoints exchange .npz from the session's results")
    keypoints.add_argument("session", type=Path)
    keypoints.add_argument("--out", type=Path, required=True, help="the .npz to write")
    keypoints.add_argument("--uncalibrated", action="store_true", help="leave out the calibration snapshot")
    merged = commands.add_parser("results", help="merge the session's result chunks into one results .npz")
    merged.add_argument("session", type=Path)
    merged.add_argument("--out", type=Path, required=True, help="the .npz to write")
    exporter = commands.add_parser("export", help="export the motion of a session or results file")
    exporter.add_argument("source", type=Path, help="a recorded session folder or a results .npz")
    exporter.add_argument("--format", required=True, choices=list(FORMATS), help="what to write")
    exporter.add_argument("--out", type=Path, required=True, help="the file to write (one per person: <stem>_person<ID>)")
    exporter.add_argument("--person", type=int, help="only this person's id (default: everyone)")
    exporter.add_argument("--up", choices=UP_AXES, help="up axis of a single-skeleton format (default: the format's own)")
    return parser


def run_export(args: argparse.Namespace) -> str:
    progress = StderrProgress(f"export {args.format}")
    try:
        paths = export(args.source, args.format, args.out, person=args.person, up=args.up, progress=progress)
    finally:
        progress.done()
    return "wrote " + ", ".join(str(p) for p in paths)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "keypoints":
            print(export_keypoints(args.session, args.out, args.uncalibrated))
            return 0
        if args.command == "results":
            progress = StderrProgress(f"reading {args.session}")
            try:
                print(export_results(args.session, args.out, progress))
            finally:
                progress.done()
            return 0
        if args.command == "export":
            print(run_export(args))
            return 0
        if args.json is not None:
            check_output(args.json, "--json")
        text = json.dumps(session_info(args.session, args.check), indent=2)
        if args.json is not None:
            try:
                args.json.write_text(text + "\n")
            except OSError as exc:
                raise SessionError(f"--json {args.json}: cannot write ({exc.strerror or exc})") from exc
        print(text)
        return 0
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
