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

import numpy as np

from calibration.board import Board, load_board
from calibration.camera import Camera
from calibration.intrinsics import calibrate_intrinsics, detect_images, detect_video, image_files
from calibration.io import save_calibration
from core.errors import CalibrationError
from core.report import run_and_report


class Progress:
    """A rewritten progress line on stderr."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __call__(self, done: int, total: int) -> None:
        print(f"\r{self.what}: {done}/{total or '?'}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr)


def write_board(board: Board, out: Path, pixels_per_square: int = 200) -> dict[str, object]:
    """PDF at true scale (page = board + margin), or PNG/JPG with the resolution in its name."""
    picture = board.image(pixels_per_square)
    metres_per_pixel = board.square / pixels_per_square
    width_m, height_m = picture.shape[1] * metres_per_pixel, picture.shape[0] * metres_per_pixel
    if out.suffix.lower() == ".pdf":
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(width_m / 0.0254, height_m / 0.0254))
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.imshow(picture, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_axis_off()
        fig.savefig(out, format="pdf")
        plt.close(fig)
    else:
        import cv2

        if not cv2.imwrite(str(out), picture):
            raise CalibrationError(f"board image {out}: cannot write (use .pdf, .png or .jpg)")
    dpi = 0.0254 / metres_per_pixel
    return {"out": str(out), "width_mm": round(width_m * 1000, 1), "height_mm": round(height_m * 1000, 1),
            "print_dpi": round(dpi, 1), "note": "print at 100% (no fit-to-page); check one square with a ruler"}  # fmt: skip


def run_intrinsics(args: argparse.Namespace) -> dict[str, object]:
    board = load_board(args.board)
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
    return {"camera": name, "out": str(args.out), "image_size": list(size), **result.summary()}


def read_sync(path: Path, cameras: int) -> tuple[list[int], list[list[int | None]]]:
    """Rows ``sync_index, cam_id, frame_index`` -> the sync indices (sorted) and for each the
    video frame position of each camera (None where a camera has no frame for it)."""
    import csv

    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise CalibrationError(f"timestamps file {path}: cannot read ({exc})") from exc
    needed = {"sync_index", "cam_id", "frame_index"}
    if not rows or not needed <= set(rows[0]):
        raise CalibrationError(f"timestamps file {path}: needs columns {', '.join(sorted(needed))}")
    per_cam: dict[int, list[tuple[int, int]]] = {}
    for row in rows:
        per_cam.setdefault(int(row["cam_id"]), []).append((int(row["frame_index"]), int(row["sync_index"])))
    unknown = sorted(set(per_cam) - set(range(cameras)))
    if unknown:
        raise CalibrationError(f"timestamps file {path}: cam_id {unknown} but only {cameras} video(s) were given")
    syncs = sorted({int(r["sync_index"]) for r in rows})
    index = {s: i for i, s in enumerate(syncs)}
    table: list[list[int | None]] = [[None] * cameras for _ in syncs]
    for cam, entries in per_cam.items():
        for position, (_, sync) in enumerate(sorted(entries)):
            table[index[sync]][cam] = position
    return syncs, table


def run_extrinsics(args: argparse.Namespace) -> dict[str, object]:
    from calibration.extrinsics import Intrinsics, calibrate_extrinsics, floor_from_board
    from calibration.importers import read_any
    from calibration.intrinsics import detect_video

    board = load_board(args.board)
    known = read_any(args.intrinsics)
    stems = [Path(v).stem for v in args.videos]
    by_name = {c.name: c for c in known}
    if all(s in by_name for s in stems):
        cams = [by_name[s] for s in stems]
    elif len(known) == len(stems):
        cams = known
    else:
        raise CalibrationError(
            f"intrinsics file {args.intrinsics}: has {len(known)} camera(s) ({', '.join(by_name)}) and none named like "
            f"the {len(stems)} video(s) ({', '.join(stems)})"
        )
    names = [c.name for c in cams]
    per_video = []
    for cam, video in zip(cams, args.videos, strict=True):
        progress = Progress(f"{cam.name}: detecting the board")
        try:
            detections, size, _ = detect_video(board, Path(video), args.every if args.timestamps is None else 1, progress)
        finally:
            progress.close()
        if size != cam.image_size:
            raise CalibrationError(f"video {video}: is {size[0]}x{size[1]} but camera {cam.name} is calibrated for "
                                   f"{cam.image_size[0]}x{cam.image_size[1]}")  # fmt: skip
        per_video.append(detections)
    if args.timestamps is not None:
        syncs, table = read_sync(args.timestamps, len(cams))
        synced = {n: [None if row[i] is None or row[i] >= len(per_video[i]) else per_video[i][row[i]] for row in table]
                  for i, n in enumerate(names)}  # fmt: skip
    else:
        length = min(len(d) for d in per_video)
        syncs = list(range(length))
        synced = {n: per_video[i][:length] for i, n in enumerate(names)}
    intr = {c.name: Intrinsics(c.K, c.dist, c.image_size) for c in cams if c.K is not None}
    result = calibrate_extrinsics(board, synced, intr, args.skip_unlinked, progress=lambda m: print(m, file=sys.stderr))
    cameras, world = result.cameras, "first camera"
    if args.floor_frame is not None:
        frames = sorted(result.board_poses)
        position = syncs.index(args.floor_frame) if args.floor_frame in syncs else None
        if position is None or position not in result.board_poses:
            raise CalibrationError(f"--floor-frame {args.floor_frame}: the board was not seen at that sync index "
                                   f"(seen at {len(frames)} sync indices)")  # fmt: skip
        cameras = floor_from_board(cameras, *result.board_poses[position])
        world = f"floor board at sync index {args.floor_frame}"
    metadata = result.metadata(board, world, board_positions=board_centres(board, result, cameras))
    save_calibration(args.out, cameras, metadata)
    summary = result.summary() | {"out": str(args.out), "world": world}
    summary["positions_m"] = {c.name: [round(float(v), 4) for v in c.center] for c in cameras}
    return summary


def board_centres(board: Board, result, cameras: list[Camera]) -> list[list[float]]:  # type: ignore[no-untyped-def]
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
    from calibration.importers import read_any
    from calibration.io import load_calibration

    cameras = read_any(args.file)
    try:
        metadata = load_calibration(args.file)[1]
    except CalibrationError:
        metadata = {}
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
        c, look = cam.center, cam.R[2]  # type: ignore[index]
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
    if args.command == "report":
        return run_and_report(lambda: run_report(args), None)
    if args.command == "extrinsics":
        return run_and_report(lambda: run_extrinsics(args), args.json)
    if args.command == "board":
        return run_and_report(lambda: write_board(load_board(args.config), args.out), None)
    if args.every < 1:
        parser.error("--every must be at least 1")
    return run_and_report(lambda: run_intrinsics(args), args.json)


if __name__ == "__main__":
    sys.exit(main())
