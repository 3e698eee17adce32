"""Multi-camera human capture: entry point.

python main.py                                   GUI on the bundled 4-camera demo
python main.py --source PATH [--calibration F]   GUI on a video file or a folder of videos
python main.py --room room.toml                  GUI on a room's live cameras
python main.py --headless --frames N --out F.npz process without a window, write keypoints
python main.py --headless --record DIR           record the (looping) demo until stopped (Ctrl+C)
python main.py --source session:DIR              replay a recorded session
python main.py --screenshot F.png --frames N     run the GUI for N frame-sets, save, exit
python main.py --calibrate FOLDER --board B.toml  the room calibration wizard on calibration videos
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from core.errors import AppError

EXIT_USER_ERROR = 2
EXIT_RECORDING_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="Watch a room through several cameras: 2D keypoints in every view, 3D joints when calibrated.",
        epilog="With no arguments the GUI replays the bundled 4-camera demo (assets/demo) with its calibration.",
    )
    parser.add_argument(
        "--source",
        type=Path,
        help="a video file, or a folder of per-camera videos (natural name order); default: the bundled demo",
    )
    parser.add_argument(
        "--room", type=Path, help="room file (TOML) listing live cameras (usb:N, rtsp://, http://) and the calibration"
    )
    parser.add_argument(
        "--calibration", type=Path, help="calibration TOML; default: calibration.toml inside the source folder, if any"
    )
    parser.add_argument("--uncalibrated", action="store_true", help="ignore the calibration (per-view mode)")
    parser.add_argument("--detector", default="blazepose", help="2D detector: blazepose (default) or fake")
    parser.add_argument(
        "--body-model",
        type=Path,
        help="SMPL-format body model (.npz, or an SMPL .pkl read without running code); default: the bundled body",
    )
    parser.add_argument("--model", type=Path, help="HeatFormer weights (default: assets/models/heatformer_s.pt)")
    parser.add_argument("--no-body", action="store_true", help="keypoints only: do not run HeatFormer")
    parser.add_argument(
        "--backend", choices=["auto", "torch", "onnxruntime", "tensorrt"], default="auto",
        help="HeatFormer inference runtime (default auto: TensorRT on an NVIDIA GPU, else the fastest available)",
    )  # fmt: skip
    parser.add_argument(
        "--overlay", choices=["skeleton", "mesh", "both"], default="both", help="GUI: what the camera views draw at start"
    )
    parser.add_argument(
        "--calibrate", type=Path, metavar="FOLDER|ROOM",
        help="open the room calibration wizard on a folder of per-camera calibration videos, or on a room file's "
        "live cameras (with --board FILE; --calibration FILE gives known intrinsics)",
    )  # fmt: skip
    parser.add_argument("--board", type=Path, help="--calibrate: the board definition (TOML)")
    parser.add_argument(
        "--record", type=Path, metavar="DIR", help="record the session (videos, timestamps, results) into a new folder"
    )
    parser.add_argument("--no-video", action="store_true", help="--record without storing any video (privacy)")
    parser.add_argument("--headless", action="store_true", help="process without a window (needs --out)")
    parser.add_argument("--frames", type=int, help="number of frame-sets to process (default: all; GUI: run until closed)")
    parser.add_argument(
        "--out", type=Path, help="headless: write the keypoints exchange .npz (+ keypoints3d and the body results) here"
    )
    parser.add_argument("--screenshot", type=Path, help="GUI: after --frames frame-sets, save a PNG of the window and exit")
    parser.add_argument("--no-loop", action="store_true", help="GUI: stop at the end of the recording instead of looping")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    return parser


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.headless and args.out is None and args.record is None:
        parser.error("--headless needs --out FILE.npz or --record DIR")
    if args.no_video and args.record is None:
        parser.error("--no-video goes with --record DIR")
    if args.headless and args.screenshot is not None:
        parser.error("--screenshot needs the GUI; drop --headless")
    if args.frames is not None and args.frames < 1:
        parser.error("--frames must be at least 1")
    if args.screenshot is not None and args.frames is None:
        args.frames = 20


@dataclass
class HeadlessCounts:
    """What a headless run has done so far (read by tools.soak from another thread)."""

    processed: int = 0
    recorded: int = 0
    dropped: int = 0


def run_headless(args: argparse.Namespace, stop: threading.Event | None = None, counts: HeadlessCounts | None = None) -> int:
    """Process frame-sets without a window. Nothing per frame is kept unless asked for: the
    keypoints only with ``--out``, frames and results only with ``--record`` (on disk). ``stop``
    (set from another thread) ends a looping run like Ctrl+C does."""
    from capture.session import open_session
    from engine.pipeline import build_pipeline

    counts = counts if counts is not None else HeadlessCounts()
    # Recording (or soaking) the looping demo runs until stopped; otherwise the source plays once.
    looping = args.frames is None and (args.record is not None or args.out is None)
    session = open_session(args.source, args.calibration, args.uncalibrated, loop=looping, room=args.room)
    try:
        pipeline = build_pipeline(
            session.cameras, args.detector, args.body_model, args.model, not args.no_body, backend=args.backend
        )
    except BaseException:
        session.replay.close()
        raise
    if pipeline.backend_description:
        print(f"inference backend: {pipeline.backend_description}", file=sys.stderr)
    keypoints = None
    if args.out is not None:
        from engine.exchange import KeypointsRecorder

        keypoints = KeypointsRecorder(session.cameras)
    try:
        writer = start_recording(args, session) if args.record is not None else None
    except BaseException:
        session.replay.close()
        pipeline.close()
        raise
    stop_reason = _process(args, session, pipeline, keypoints, writer, stop, counts)
    if writer is not None:
        failed = _finish_recording(writer, stop_reason, counts)
        if failed:
            return failed
    if not counts.processed:
        raise AppError(f"source {args.source or 'demo'}: no frame-sets to process")
    if keypoints is not None:
        keypoints.save(args.out)
        print(
            f"wrote {args.out} ({len(keypoints)} frame-sets, {len(session.cameras)} views, "
            f"{'calibrated' if session.calibrated else 'uncalibrated'})"
        )
    return 0


STOP_END = "end of the source"
STOP_FRAMES = "processed the frame-sets asked for (--frames)"
STOP_USER = "stopped by the user (Ctrl+C)"
STOP_REQUESTED = "stopped on request"


def _process(args, session, pipeline, keypoints, writer, stop, counts) -> str:  # type: ignore[no-untyped-def]
    """The headless loop; returns why it ended (the recording's stop reason)."""
    progress = Progress(args.frames)
    reason = STOP_END
    try:
        for frameset in session.replay:
            estimate = pipeline.process(frameset)
            counts.processed += 1
            if keypoints is not None:
                keypoints.add(estimate)
            if writer is not None:
                writer.add(estimate)
                counts.recorded, counts.dropped = writer.recorded, writer.dropped
                if writer.message:
                    break
            progress.update(counts.processed)
            if args.frames is not None and counts.processed >= args.frames:
                reason = STOP_FRAMES
                break
            if stop is not None and stop.is_set():
                reason = STOP_REQUESTED
                break
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
        reason = STOP_USER
    finally:
        progress.done()
        session.replay.close()
        pipeline.close()
    return reason


def _finish_recording(writer, reason: str, counts: HeadlessCounts) -> int:  # type: ignore[no-untyped-def]
    """Stop the recorder (session.json finalised); 1 with one ``error:`` line when the recording
    stopped on an error (full disk, a write error), else 0."""
    writer.stop(reason)
    counts.recorded, counts.dropped = writer.recorded, writer.dropped
    print(
        f"recorded {writer.recorded} frame-set(s) into {writer.folder}"
        + (f" ({writer.dropped} dropped)" if writer.dropped else "")
    )
    if writer.message:
        print(f"error: {writer.message}", file=sys.stderr)
        return EXIT_RECORDING_FAILED
    return 0


def start_recording(args: argparse.Namespace, session):  # type: ignore[no-untyped-def]
    """A started SessionRecorder for ``--record DIR`` (calibration snapshot included)."""
    from recording.writer import SessionRecorder

    calibration_text = None
    if session.calibrated:
        import tempfile

        from calibration.io import save_calibration

        with tempfile.TemporaryDirectory() as tmp:
            snapshot = Path(tmp) / "calibration.toml"
            save_calibration(snapshot, session.cameras, {"source": str(args.calibration or args.source or "bundled demo")})
            calibration_text = snapshot.read_text()
    meta = {"source": str(args.source or "bundled demo"), "detector": args.detector, "model": str(args.model or "bundled")}
    return SessionRecorder(args.record, session.cameras, store_video=not args.no_video, calibration_text=calibration_text,
                           metadata=meta).start()  # fmt: skip


class Progress:
    """Progress on stderr: a rewritten line on a terminal, a line every 25 sets otherwise."""

    def __init__(self, total: int | None) -> None:
        self.total, self.tty, self.count = total, sys.stderr.isatty(), 0

    def update(self, count: int) -> None:
        self.count = count
        text = f"processed {count}" + (f"/{self.total}" if self.total else "") + " frame-set(s)"
        if self.tty:
            print(f"\r{text}", end="", file=sys.stderr, flush=True)
        elif count % 25 == 0:
            print(text, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty and self.count:
            print(file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    validate(parser, args)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.headless:
            return run_headless(args)
        if args.calibrate is not None:
            from app.launch import run_wizard

            return run_wizard(args)
        from app.launch import run_gui

        return run_gui(args)
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
