"""Room calibration from the command line.

    python -m calibration board --config board.toml --out board.pdf        # printable, true scale
    python -m calibration intrinsics --board board.toml --images DIR [--pattern 'left*.jpg'] --out cam.toml
    python -m calibration intrinsics --board board.toml --video FILE [--every 10] --out cam.toml

``intrinsics`` prints a JSON summary (focal lengths, principal point, distortion, RMS, images
used, rejected and without the board, coverage) and writes a calibration TOML holding the one
camera (rotation and translation zero; metadata ``kind = "intrinsics"``).
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
    args = parser.parse_args(argv)
    if args.command == "board":
        return run_and_report(lambda: write_board(load_board(args.config), args.out), None)
    if args.every < 1:
        parser.error("--every must be at least 1")
    return run_and_report(lambda: run_intrinsics(args), args.json)


if __name__ == "__main__":
    sys.exit(main())
