"""Room calibration from the command line.

    python -m calibration board --config board.toml --out board.pdf        # printable, true scale
    python -m calibration intrinsics --board board.toml --images DIR [--pattern 'left*.jpg'] --out cam.toml
    python -m calibration intrinsics --board board.toml --video FILE [--every 10] --out cam.toml

    python -m calibration extrinsics --board board.toml --videos V1 V2 ... --intrinsics FILE --out room.toml
        [--timestamps sync.csv] [--every N] [--floor-frame K] [--skip-unlinked]
    python -m calibration report room.toml [--png top.png]

``intrinsics`` prints a JSON summary (focal lengths, principal point, distortion, RMS, images
used, rejected and without the board, coverage) and writes a calibration TOML holding the one
camera (rotation and translation zero; metadata ``kind = "intrinsics"``).

``extrinsics`` detects the board in every camera's video, pairs frames by sync index (from a
``sync_index, cam_id, frame_index`` CSV such as caliscope's ``timestamps.csv``, the i-th row of a
camera = its i-th video frame; without one, frame k of every video is sync index k), calibrates all
cameras together (``--intrinsics``: our TOML, a caliscope TOML or a Qualisys .qca.txt, cameras
matched by name, else by order) and writes the room calibration. ``--floor-frame K`` makes the
board at sync index K the floor (origin, Z up). ``report`` prints a calibration's errors and camera
positions and draws the cameras and board positions seen from above.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from calibration.board import Board, Detection, load_board, write_board
from calibration.intrinsics import calibrate_intrinsics, covered_fraction, detect_images, detect_video, image_files
from calibration.io import save_calibration
from core.camera import Camera
from core.errors import CalibrationError
from core.outputs import check_output
from core.report import run_and_report

if TYPE_CHECKING:
    from calibration.extrinsics import ExtrinsicsResult


class Progress:
    """A rewritten progress line on stderr."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __call__(self, done: int, total: int) -> None:
        print(f"\r{self.what}: {done}/{total or '?'}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr)


PICTURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def run_intrinsics(args: argparse.Namespace) -> dict[str, object]:
    board = load_board(args.board)
    if args.video is not None and not args.video.is_file():
        raise CalibrationError(f"video {args.video}: not found")
    progress = Progress("detecting the board")
    try:
        if args.images is not None:
            paths = image_files(args.images, args.pattern)
            detections, size = detect_images(board, paths, progress)
            names = [p.name for p in paths]
            source = args.images
        else:
            detections, size, names = detect_video(board, args.video, args.every, progress)
            source = args.video
    finally:
        progress.close()
    result = calibrate_intrinsics(board, detections, size, names)
    name = args.name or Path(source).stem
    camera = Camera(name, size, result.K, result.dist, np.eye(3), np.zeros(3))
    metadata = {"kind": "intrinsics", "rms_px": round(result.rms, 4), "images_used": int(result.used.sum()),
                "board": f"{board.kind} {board.columns}x{board.rows} square {board.square} m",
                "date": datetime.date.today().isoformat(), "source": str(source)}  # fmt: skip
    save_calibration(args.out, [camera], metadata)
    summary = {"camera": name, "out": str(args.out), "image_size": list(size), **result.summary()}
    kept = [d for d, used in zip(detections, result.used, strict=True) if used and d is not None]
    covered = round(covered_fraction(kept, size), 3)
    summary["covered_fraction"] = covered
    warning = thin_intrinsics_warning(source, len(kept), covered)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
        summary["warning"] = warning
    return summary


GOOD_IMAGES = 10  # fewer boards than this, or covering less of the image, give a warning
GOOD_COVERAGE = 0.25


def thin_intrinsics_warning(source: Path, used: int, covered: float) -> str | None:
    """Why an intrinsics calibration that succeeded may still be poor (few boards, little of the
    image covered: the distortion is then a guess outside the covered part), or None."""
    if used >= GOOD_IMAGES and covered >= GOOD_COVERAGE:
        return None
    return (f"{source}: intrinsics from {used} board view(s) covering {100 * covered:.0f} % of the image; expect "
            f"errors away from the covered part (aim for {GOOD_IMAGES}+ views covering {100 * GOOD_COVERAGE:.0f} %+, "
            f"edges and corners too; with a video, a smaller --every)")  # fmt: skip


def read_sync(path: Path, cameras: int) -> tuple[list[int], list[list[int | None]]]:
    """Rows ``sync_index, cam_id, frame_index`` -> the sync indices (sorted) and for each the
    video frame position of each camera (None where a camera has no frame for it)."""
    import csv

    if not path.is_file():
        raise CalibrationError(f"timestamps file {path}: not found")
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CalibrationError(f"timestamps file {path}: cannot read ({exc})") from exc
    needed = {"sync_index", "cam_id", "frame_index"}
    if not rows or not needed <= set(rows[0]):
        raise CalibrationError(f"timestamps file {path}: needs columns {', '.join(sorted(needed))}")
    per_cam: dict[int, list[tuple[int, int]]] = {}
    for line, row in enumerate(rows, start=2):
        try:
            cam, frame, sync = (int(str(row[k]).strip()) for k in ("cam_id", "frame_index", "sync_index"))
        except (TypeError, ValueError) as exc:
            raise CalibrationError(f"timestamps file {path}: line {line}: cam_id, frame_index and sync_index must be "
                                   f"whole numbers")  from exc  # fmt: skip
        per_cam.setdefault(cam, []).append((frame, sync))
    unknown = sorted(set(per_cam) - set(range(cameras)))
    if unknown:
        raise CalibrationError(f"timestamps file {path}: cam_id {unknown} but only {cameras} video(s) were given")
    syncs = sorted({sync for entries in per_cam.values() for _, sync in entries})
    index = {s: i for i, s in enumerate(syncs)}
    table: list[list[int | None]] = [[None] * cameras for _ in syncs]
    for cam, entries in per_cam.items():
        for position, (_, sync) in enumerate(sorted(entries)):
            table[index[sync]][cam] = position
    return syncs, table


def spans(values: list[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"``."""
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs) or "none"


def match_intrinsics(path: Path, videos: list[Path]) -> list[Camera]:
    """The known cameras for the videos: by name (video file stem), else by order."""
    from calibration.formats import read_cameras

    known = read_cameras(path)
    stems = [v.stem for v in videos]
    by_name = {c.name: c for c in known}
    if all(s in by_name for s in stems):
        cams = [by_name[s] for s in stems]
    elif len(known) == len(stems):
        cams = known
    else:
        raise CalibrationError(
            f"intrinsics file {path}: has {len(known)} camera(s) ({', '.join(by_name)}) and none named like "
            f"the {len(stems)} video(s) ({', '.join(stems)})"
        )
    missing = [c.name for c in cams if c.K is None]
    if missing:
        raise CalibrationError(f"intrinsics file {path}: camera(s) {', '.join(missing)} have no matrix (K)")
    return cams


def video_lengths(videos: list[Path]) -> list[int]:
    """Each video's frame count as its container says (0 where unknown); a missing or unreadable
    video is an error, before any detection work."""
    import cv2

    lengths = []
    for video in videos:
        if not video.is_file():
            raise CalibrationError(f"video {video}: not found")
        capture = cv2.VideoCapture(str(video))
        try:
            if not capture.isOpened():
                raise CalibrationError(f"video {video}: cannot be opened")
            lengths.append(max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)))
        finally:
            capture.release()
    return lengths


def check_floor_frame(floor_frame: int | None, syncs: list[int] | None, lengths: list[int], every: int) -> None:
    """Refuse a ``--floor-frame`` that no video can reach, before the detection work."""
    if floor_frame is None:
        return
    if syncs is not None:
        if floor_frame not in syncs:
            raise CalibrationError(f"--floor-frame {floor_frame}: not a sync index of the timestamps file "
                                   f"(it has {syncs[0]} to {syncs[-1]}, {len(syncs)} in all)")  # fmt: skip
        return
    shortest = min(lengths) if lengths and min(lengths) > 0 else None
    if shortest is not None and floor_frame >= shortest:
        raise CalibrationError(f"--floor-frame {floor_frame}: the shortest video has {shortest} frames (0 to {shortest - 1})")
    if floor_frame % every:
        raise CalibrationError(f"--floor-frame {floor_frame}: with --every {every} only frames 0, {every}, "
                               f"{2 * every}, ... are used; pick one of them")  # fmt: skip


def run_extrinsics(args: argparse.Namespace) -> dict[str, object]:
    from calibration.extrinsics import Intrinsics, calibrate_extrinsics

    board = load_board(args.board)
    cams = match_intrinsics(args.intrinsics, args.videos)
    names = [c.name for c in cams]
    lengths = video_lengths(args.videos)
    sync = read_sync(args.timestamps, len(cams)) if args.timestamps is not None else None
    check_floor_frame(args.floor_frame, None if sync is None else sync[0], lengths, args.every)
    every = args.every if sync is None else 1
    per_video = []
    for cam, video in zip(cams, args.videos, strict=True):
        progress = Progress(f"{cam.name}: detecting the board")
        try:
            detections, size, _ = detect_video(board, Path(video), every, progress)
        finally:
            progress.close()
        if size != cam.image_size:
            raise CalibrationError(f"video {video}: is {size[0]}x{size[1]} but camera {cam.name} is calibrated for "
                                   f"{cam.image_size[0]}x{cam.image_size[1]}")  # fmt: skip
        per_video.append(detections)
    if sync is not None:
        syncs, table = sync
        synced = {n: [frame_at(per_video[i], row[i]) for row in table] for i, n in enumerate(names)}
    else:  # sync index = video frame index
        length = min(len(d) for d in per_video)
        syncs = [k * every for k in range(length)]
        synced = {n: per_video[i][:length] for i, n in enumerate(names)}
    intr = {c.name: Intrinsics(c.K, c.dist, c.image_size) for c in cams if c.K is not None}
    result = calibrate_extrinsics(board, synced, intr, args.skip_unlinked, progress=lambda m: print(m, file=sys.stderr))
    cameras, world, floor_error = place_floor(args.floor_frame, syncs, result)
    metadata = result.metadata(board, world, board_positions=board_centres(board, result, cameras))
    save_calibration(args.out, cameras, metadata)
    if floor_error is not None:
        raise CalibrationError(f"{floor_error}; the calibration was saved WITHOUT the floor step (world = first camera) "
                               f"to {args.out}: rerun with one of those sync indices")  # fmt: skip
    summary = result.summary() | {"out": str(args.out), "world": world}
    summary["positions_m"] = {c.name: [round(float(v), 4) for v in c.center] for c in cameras}
    return summary


def frame_at(detections: list[Detection | None], position: int | None) -> Detection | None:
    """The detection at a video position, None where there is none (no frame, or past the end)."""
    return None if position is None or position >= len(detections) else detections[position]


def place_floor(floor_frame: int | None, syncs: list[int], result: ExtrinsicsResult) -> tuple[list[Camera], str, str | None]:
    """The cameras with the board at sync index ``floor_frame`` as the floor, the world's name
    and None; or, where the board was not placed at that instant (or lies upside down), the cameras
    in the first camera's frame and why, naming the usable sync indices."""
    from calibration.extrinsics import floor_from_board

    if floor_frame is None:
        return result.cameras, "first camera", None
    usable = [syncs[p] for p in sorted(result.board_poses)]
    position = syncs.index(floor_frame) if floor_frame in syncs else None
    if position is None or position not in result.board_poses:
        return result.cameras, "first camera", (f"--floor-frame {floor_frame}: the board was not placed at that sync "
                                                f"index; usable: {spans(usable)}")  # fmt: skip
    try:
        cameras = floor_from_board(result.cameras, *result.board_poses[position])
    except CalibrationError as exc:
        return result.cameras, "first camera", f"--floor-frame {floor_frame}: {exc}; usable: {spans(usable)}"
    return cameras, f"floor board at sync index {floor_frame}", None


def board_centres(board: Board, result: ExtrinsicsResult, cameras: list[Camera]) -> list[list[float]]:
    """Where the board's centre was at each captured instant, in the (final) world frame."""
    centre = board.object_points().mean(axis=0)
    first = next(c for c in cameras if c.name == result.cameras[0].name)  # its frame was the world
    assert first.R is not None and first.t is not None
    out = []
    for R, t in result.board_poses.values():
        in_first = R @ centre + t
        out.append([round(float(v), 4) for v in first.R.T @ (in_first - first.t)])
    return out


def run_report(args: argparse.Namespace) -> dict[str, object]:
    from calibration.formats import read_calibration

    cameras, metadata = read_calibration(args.file)
    report: dict[str, object] = {"file": str(args.file), "cameras": len(cameras), "metadata": metadata}
    report["positions_m"] = {c.name: [round(float(v), 4) for v in c.center] for c in cameras if c.calibrated}
    report["looking"] = {c.name: [round(float(v), 3) for v in c.R[2]] for c in cameras if c.R is not None}
    report["focal_px"] = {c.name: round(float(c.K[0, 0]), 2) for c in cameras if c.K is not None}
    boards = np.asarray(metadata.get("board_positions", []), float).reshape(-1, 3)
    report["board_positions"] = len(boards)
    if args.png is not None:
        draw_top_view(cameras, args.png, boards)
        report["png"] = str(args.png)
    return report


def draw_top_view(cameras: list[Camera], out: Path, boards: np.ndarray | None = None) -> None:
    """Cameras (position and viewing direction) and board positions seen from above, with the
    world origin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6))
    placed = [c for c in cameras if c.calibrated]
    spots = np.array([c.center[:2] for c in placed] + ([] if boards is None else list(boards[:, :2])) + [[0.0, 0.0]])
    extent = max(float(np.ptp(spots, axis=0).max()), 0.5)
    for cam in placed:
        assert cam.R is not None  # placed cameras are calibrated
        c, look = cam.center, cam.R[2]
        ax.plot(c[0], c[1], "o", color="tab:blue")
        ax.arrow(c[0], c[1], 0.15 * extent * look[0], 0.15 * extent * look[1], head_width=0.025 * extent, color="tab:blue")
        ax.annotate(f"{cam.name}\n{c[2]:.2f} m", (c[0], c[1]), textcoords="offset points", xytext=(6, 6))
    if boards is not None and len(boards):
        ax.plot(boards[:, 0], boards[:, 1], ".", color="tab:orange", label=f"board ({len(boards)} positions)")
        ax.legend(loc="best")
    ax.plot(0, 0, "+", color="black", markersize=14)
    ax.set(xlabel="x (m)", ylabel="y (m)", title="cameras from above (arrows: viewing direction)", aspect="equal")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m calibration", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    board = commands.add_parser("board", help="write a printable board (PDF at true scale, or PNG)")
    board.add_argument("--config", type=Path, required=True, help="board TOML")
    board.add_argument("--out", type=Path, required=True, help="board.pdf or board.png")
    intr = commands.add_parser("intrinsics", help="one camera's intrinsics from board images or a video")
    intr.add_argument("--board", type=Path, required=True, help="board TOML")
    source = intr.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, help="folder of images of the board")
    source.add_argument("--video", type=Path, help="video of the board")
    intr.add_argument("--pattern", default="*", help="with --images: file names to use, e.g. 'left*.jpg'")
    intr.add_argument("--every", type=int, default=10, help="with --video: use every N-th frame (default 10)")
    intr.add_argument("--name", help="camera name (default: the folder or video name)")
    intr.add_argument("--out", type=Path, required=True, help="calibration TOML to write")
    intr.add_argument("--json", type=Path, help="also write the summary here")
    ext = commands.add_parser("extrinsics", help="all cameras' positions from synchronized board videos")
    ext.add_argument("--board", type=Path, required=True, help="board TOML")
    ext.add_argument("--videos", type=Path, nargs="+", required=True, help="one video per camera")
    ext.add_argument("--intrinsics", type=Path, required=True, help="the cameras' intrinsics (any calibration file)")
    ext.add_argument("--timestamps", type=Path, help="CSV with sync_index, cam_id, frame_index (cam_id = video order)")
    ext.add_argument("--every", type=int, default=1, help="without --timestamps: use every N-th frame")
    ext.add_argument("--floor-frame", type=int, help="sync index at which the board lies on the floor (world origin)")
    ext.add_argument("--skip-unlinked", action="store_true", help="calibrate the linked cameras, report the others")
    ext.add_argument("--out", type=Path, required=True, help="calibration TOML to write")
    ext.add_argument("--json", type=Path, help="also write the summary here")
    rep = commands.add_parser("report", help="errors, camera positions and a top view of a calibration")
    rep.add_argument("file", type=Path, help="calibration file (ours, caliscope or Qualisys)")
    rep.add_argument("--png", type=Path, help="draw the cameras seen from above here")
    args = parser.parse_args(argv)
    if getattr(args, "every", 1) < 1:
        parser.error(f"--every must be at least 1 (got {args.every})")
    if getattr(args, "floor_frame", None) is not None and args.floor_frame < 0:
        parser.error(f"--floor-frame must be a sync index, 0 or more (got {args.floor_frame})")
    run = {"report": run_report, "extrinsics": run_extrinsics, "intrinsics": run_intrinsics,
           "board": lambda a: write_board(load_board(a.config), a.out)}[args.command]  # fmt: skip

    def checked() -> dict[str, object]:
        check_outputs(args)
        return run(args)

    return run_and_report(checked, getattr(args, "json", None))


OUTPUTS = {"out": "--out", "json": "--json", "png": "--png"}


def check_outputs(args: argparse.Namespace) -> None:
    """Every file the command will write must have an existing, writable folder: said before any work."""
    for attr, flag in OUTPUTS.items():
        path = getattr(args, attr, None)
        if path is not None:
            check_output(path, flag, suffix=PICTURE_SUFFIXES if attr == "png" else None)


if __name__ == "__main__":
    sys.exit(main())
