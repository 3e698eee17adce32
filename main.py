"""Multi-camera human capture: entry point.

python main.py                                   GUI on the bundled 4-camera demo
python main.py --source PATH [--calibration F]   GUI on a video file or a folder of videos
python main.py --room room.toml                  GUI on a room's live cameras
python main.py --headless --frames N --out F.npz process without a window, write keypoints
python main.py --headless --record DIR           record the (looping) demo until stopped (Ctrl+C)
python main.py --source session:DIR              replay a recorded session
python main.py --screenshot F.png --frames N     run the GUI for N frame-sets, save, exit
python main.py --calibrate FOLDER --board B.toml [--intrinsics F]  the room calibration wizard on calibration videos
python main.py --version                         the app version and the bundled model's hash
python main.py ... --stream vmc://HOST[:PORT]    also send the bodies live (VMC; osc:// or json:// for plain joints)
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import AppError
from core.outputs import check_output
from core.paths import DEFAULT_WEIGHTS, ROOT
from core.urls import redact
from engine.detect.base import DEFAULT_DETECTOR

if TYPE_CHECKING:  # imported where used, so that --help and bad input answer before any model loads
    from app.processing import Processing
    from core.formats import KeypointsRecorder
    from core.types import BodyEstimate
    from engine.runner import PipelineRunner
    from monitoring.monitor import Monitor
    from recording.streaming import Streams
    from recording.writer import SessionRecorder

EXIT_USER_ERROR = 2
EXIT_RECORDING_FAILED = 1
EXIT_INTERRUPTED = 130
MIN_FREE_ENV = "ROOM_CAPTURE_MIN_FREE_MB"  # read by recording.writer.min_free_bytes (named here for --help)


EPILOG = f"""With no arguments the GUI replays the bundled 4-camera demo (assets/demo) with its calibration.

examples:
  main.py --source videos/                          GUI on a folder of per-camera videos
  main.py --source session:recordings/monday        replay a recorded session (--record DIR made it)
  main.py --room room.toml                          live cameras: usb:N, rtsp://, http:// URLs in a room file
  main.py --headless --frames 300 --out kp.npz      process without a window, write keypoints
  main.py --headless --record recordings/monday     record the (looping) demo until Ctrl+C
  main.py --calibrate calib_videos/ --board board.toml   the room calibration wizard

exit codes: 0 done; 1 a recording stopped on an error (full disk; the session is kept);
2 bad input (one "error:" line names the file or flag); 130 stopped by Ctrl+C before processing.
${MIN_FREE_ENV}: free disk space (MB) a recording needs (default 500)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="Watch a room through several cameras: 2D keypoints in every view, 3D joints when calibrated.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument(
        "--source",
        type=str,  # not Path: a camera URL (rtsp://, http://, usb:N) must keep its '//'
        help="a video file, a folder of per-camera videos (natural name order), session:DIR (a recorded "
        "session, replayed with its own timestamps and calibration), or one live camera (usb:N, rtsp://..., "
        "http://...); default: the bundled demo",
    )
    parser.add_argument(
        "--room", type=Path, help="room file (TOML) listing live cameras (usb:N, rtsp://, http://) and the calibration"
    )
    parser.add_argument(
        "--calibration", type=Path, help="calibration TOML; default: calibration.toml inside the source folder, if any"
    )
    parser.add_argument("--uncalibrated", action="store_true", help="ignore the calibration (per-view mode)")
    parser.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help=f"2D detector: {DEFAULT_DETECTOR} (default), blazepose (one person per view) or fake",
    )
    parser.add_argument(
        "--body-model",
        type=Path,
        help="SMPL-format body model (.npz, or an SMPL .pkl read without running code); default: the bundled body",
    )
    parser.add_argument("--model", type=Path, help="HeatFormer weights (default: assets/models/heatformer_s.pt)")
    parser.add_argument("--no-body", action="store_true", help="keypoints only: do not run HeatFormer")
    parser.add_argument(
        "--refine", action=argparse.BooleanOptionalAction, default=True,
        help="fit HeatFormer's body to every view's keypoints (default: on; --no-refine shows HeatFormer's answer)",
    )  # fmt: skip
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
        "live cameras (with --board FILE; --intrinsics FILE gives known intrinsics)",
    )  # fmt: skip
    parser.add_argument("--board", type=Path, help="--calibrate: the board definition (TOML)")
    parser.add_argument(
        "--intrinsics", type=Path, metavar="FILE",
        help="--calibrate: the cameras' known intrinsics (any calibration file); the wizard then finds positions only",
    )  # fmt: skip
    parser.add_argument(
        "--record", type=Path, metavar="DIR", help="record the session (videos, timestamps, results) into a new folder"
    )
    parser.add_argument("--no-video", action="store_true", help="--record without storing any video (privacy)")
    parser.add_argument(
        "--headless", action="store_true",
        help="process without a window (needs --out FILE.npz, --record DIR, --events FILE or --stream URL)",
    )  # fmt: skip
    parser.add_argument("--frames", type=int, help="number of frame-sets to process (default: all; GUI: run until closed)")
    parser.add_argument(
        "--out", type=Path, metavar="FILE.npz",
        help="headless: write the keypoints exchange .npz (+ keypoints3d and the body results) here",
    )  # fmt: skip
    parser.add_argument(
        "--scene", metavar="KIND[:PEOPLE[:SEED]]",
        help="play a synthetic monitoring scene through the real pipeline and monitor (e.g. fall_forward:2; "
        "kinds: fall_forward, fall_backward, fall_sideways, slump_chair, roll_out_of_bed, collapse_walking, sit_hard, "
        "lie_on_bed, kneel_shoe, pick_up, exercise_floor, crouch, carer_bend)",
    )  # fmt: skip
    parser.add_argument(
        "--events", type=Path, metavar="FILE.jsonl",
        help="write the monitor's events here (default: into the session with --record; a new file in the user's "
        "data folder for the window and live rooms)",
    )  # fmt: skip
    parser.add_argument(
        "--stream", action="append", metavar="URL",
        help="send the bodies live over UDP (repeatable; with the room file's [streaming] targets): vmc://HOST[:PORT] "
        "(VMC protocol, one avatar; port 39539 by default), osc://HOST:PORT or json://HOST:PORT (everyone's joints)",
    )  # fmt: skip
    parser.add_argument("--screenshot", type=Path, help="GUI: after --frames frame-sets, save a PNG of the window and exit")
    parser.add_argument("--no-loop", action="store_true", help="GUI: stop at the end of the recording instead of looping")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    return parser


def version_text() -> str:
    """``main.py <version> (model heatformer_s.pt <sha256 prefix>)``: the version from
    pyproject.toml and the bundled weights' hash (the same 16 hex digits the backends use)."""
    import hashlib
    import tomllib

    try:
        version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        version = "unknown"
    try:
        model = f"{DEFAULT_WEIGHTS.name} {hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()[:16]}"
    except OSError:
        model = f"{DEFAULT_WEIGHTS.name} missing"
    return f"main.py {version} (model {model}; Python {sys.version.split()[0]})"


class VersionAction(argparse.Action):
    """``--version``: print :func:`version_text` and exit (computed only when asked)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version and exit")

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object, option_string: str | None = None
    ) -> None:
        print(version_text())
        parser.exit()


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.headless and args.out is None and args.record is None and args.events is None and not args.stream:
        parser.error("--headless needs --out FILE.npz, --record DIR, --events FILE.jsonl or --stream URL")
    if args.no_video and args.record is None:
        parser.error("--no-video goes with --record DIR")
    if args.headless and args.screenshot is not None:
        parser.error("--screenshot needs the GUI; drop --headless")
    if args.frames is not None and args.frames < 1:
        parser.error(f"--frames must be at least 1 (got {args.frames})")
    for first, second, why in CONFLICTS:
        if _given(args, first) and _given(args, second):
            parser.error(f"{first} and {second} cannot be used together: {why}")
    if args.calibrate is not None and args.calibration is not None:
        parser.error(
            "--calibration is the room calibration to run with, not an input of the wizard; "
            "give the cameras' known intrinsics to --calibrate with --intrinsics FILE"
        )
    for flag in ("board", "intrinsics"):
        if getattr(args, flag) is not None and args.calibrate is None:
            parser.error(f"--{flag} goes with --calibrate FOLDER|ROOM")
    if args.screenshot is not None and args.frames is None:
        args.frames = 20


CONFLICTS = [
    ("--source", "--room", "a room's live cameras are the source; give one of them"),
    ("--calibration", "--uncalibrated", "--uncalibrated ignores the calibration; give one of them"),
    ("--headless", "--calibrate", "the calibration wizard needs a window; drop --headless"),
    ("--calibrate", "--record", "the calibration wizard does not record; drop --record"),
    ("--calibrate", "--screenshot", "--screenshot is for the main window; drop one of them"),
    ("--scene", "--source", "a synthetic scene is the source; give one of them"),
    ("--scene", "--room", "a synthetic scene has its own room; give one of them"),
    ("--scene", "--calibration", "a synthetic scene has its own cameras; drop --calibration"),
]


def _given(args: argparse.Namespace, flag: str) -> bool:
    value = getattr(args, flag.lstrip("-").replace("-", "_"))
    return value is not None and value is not False


INPUT_FILES = ("calibration", "body_model", "model", "board", "intrinsics", "room")
SCREENSHOT_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def check_paths(args: argparse.Namespace) -> None:
    """Every file named on the command line, checked before any work (models, videos): inputs
    exist, outputs can be written where asked, a recording has an empty folder and free space."""
    for name in INPUT_FILES:
        path = getattr(args, name)
        if path is not None and not Path(path).is_file():
            flag = "--" + name.replace("_", "-")
            raise AppError(f"{flag} {path}: " + ("is a folder, not a file" if Path(path).is_dir() else "no such file"))
    if args.calibrate is not None and not Path(args.calibrate).exists():
        raise AppError(f"--calibrate {args.calibrate}: no such folder or room file")
    if args.out is not None:
        check_output(args.out, "--out", suffix=".npz")
    if args.screenshot is not None:
        check_output(args.screenshot, "--screenshot", suffix=SCREENSHOT_SUFFIXES)
    if args.record is not None:
        check_record_folder(args.record)
    if args.stream or args.room is not None:  # --stream URLs and the room file's [streaming] tables
        from recording.streaming import stream_targets

        stream_targets(args.room, args.stream or [])


def check_record_folder(folder: Path) -> None:
    """``--record DIR``: the recorder's own check (a new or empty folder that can be created, with
    enough free disk space; ``$ROOM_CAPTURE_MIN_FREE_MB`` sets the minimum), before any work.
    Missing parent folders are created, as the GUI's recording does."""
    from recording.writer import check_recording_folder, min_free_bytes

    check_recording_folder(folder, min_free_bytes())


def check_detector(name: str) -> None:
    """An unknown detector name fails here, before the models load."""
    from engine.detect.base import DETECTORS, _load_builtin

    _load_builtin()
    if name not in DETECTORS:
        raise AppError(f"--detector: unknown detector {name!r} (known: {', '.join(sorted(DETECTORS))})")


@dataclass
class HeadlessCounts:
    """What a headless run has done so far (read by tools.soak from another thread)."""

    processed: int = 0
    recorded: int = 0
    dropped: int = 0


def run_headless(args: argparse.Namespace, stop: threading.Event | None = None, counts: HeadlessCounts | None = None) -> int:
    """Process frame-sets without a window. Nothing per frame is kept unless asked for: the
    keypoints only with ``--out``, frames and results only with ``--record`` (on disk). ``stop``
    (set from another thread) ends a looping run like Ctrl+C does. Returns the exit code: 1 when
    the recording stopped on an error (the keypoints of ``--out`` are still written)."""
    counts = counts if counts is not None else HeadlessCounts()
    processing = _open_headless(args)
    try:
        streams = _headless_streams(args, processing)
    except BaseException:
        processing.close()
        raise
    keypoints = None
    if args.out is not None:
        from core.formats import KeypointsRecorder

        keypoints = KeypointsRecorder(processing.cameras)
    try:
        writer = start_recording(args, processing) if args.record is not None else None
    except BaseException:
        processing.close()
        if streams is not None:
            streams.close()
        raise
    try:
        outputs = HeadlessOutputs(args.frames, keypoints, writer, stop, counts, wait_for_disk=processing.from_files)
        outputs.streams = streams
        outputs.monitor = _headless_monitor(args, processing)
        if args.record is not None and outputs.monitor is not None and outputs.monitor.config.privacy.retention_days:
            outputs.retention = (args.record.parent, outputs.monitor.config.privacy.retention_days)
        try:
            stop_reason = _process(processing, outputs)
        finally:
            if outputs.monitor is not None:
                outputs.monitor.close()
            if streams is not None:
                streams.close()
    except BaseException as exc:  # a room whose cameras all failed, a processing error: the session is still finalised
        if writer is not None:
            writer.stop(f"stopped on an error: {str(exc) or type(exc).__name__}")
        raise
    code = _finish_recording(writer, stop_reason, counts) if writer is not None else 0
    if not counts.processed:
        raise AppError(f"source {redact(args.source or 'demo')}: no frame-sets to process")
    if keypoints is not None:
        keypoints.save(args.out)
        print(
            f"wrote {args.out} ({len(keypoints)} frame-sets, {len(processing.cameras)} views, "
            f"{'calibrated' if processing.calibrated else 'uncalibrated'})"
        )
    return code


def _open_headless(args: argparse.Namespace) -> Processing:
    """The source (replay or live room) and the pipeline; recording (or soaking) the looping demo
    runs until stopped, otherwise the source plays once."""
    from app.processing import open_processing

    looping = args.frames is None and (args.record is not None or args.out is None)
    if args.scene is not None:
        from app.processing import open_scene

        # a scene plays at its own pace, as cameras would, unless its results are all that is asked for
        return open_scene(args.scene, realtime=args.out is None, body_model=args.body_model, weights=args.model,
                          with_body=not args.no_body, backend=args.backend, refine=args.refine)  # fmt: skip
    processing = open_processing(
        args.source, args.calibration, args.uncalibrated, args.room, loop=looping, detector=args.detector,
        body_model=args.body_model, weights=args.model, with_body=not args.no_body, backend=args.backend, refine=args.refine,
    )  # fmt: skip
    if processing.pipeline.backend_description:
        print(f"inference backend: {processing.pipeline.backend_description}", file=sys.stderr)
    return processing


def _headless_streams(args: argparse.Namespace, processing: Processing) -> Streams | None:
    """The live streams of a headless run: the room file's [streaming] targets and --stream URLs (None: none)."""
    from recording.streaming import open_streams, stream_targets

    streams = open_streams(stream_targets(processing.room_file, args.stream or []))
    if streams is not None:
        print(f"streaming to {streams.describe()}", file=sys.stderr)
    return streams


def _headless_monitor(args: argparse.Namespace, processing: Processing) -> Monitor | None:
    """The monitor of a headless run: with --events, --record (events into the session) or a live
    room (events into the user's data folder unless --events says where); None for plain processing."""
    from monitoring.live import default_events_path, monitor_config, open_monitor

    if args.events is None and args.record is None and args.room is None and args.scene is None:
        return None
    config = processing.monitor_config or monitor_config(processing.room_file)
    live = args.room is not None and args.record is None
    path = args.events or (default_events_path(config.room) if live else None)
    if path is not None:
        print(f"events: {path}", file=sys.stderr)
    return open_monitor(config, path, wall_start=processing.wall_start)


STOP_FRAMES = "processed the frame-sets asked for (--frames)"
STOP_REQUESTED = "stopped on request"


class HeadlessOutputs:
    """What the headless run does with each result (the keypoints of ``--out``, the recorder of
    ``--record``, the progress line, the counts) and why it ended (the recording's stop reason)."""

    def __init__(self, frames: int | None, keypoints: KeypointsRecorder | None, writer: SessionRecorder | None,
                 stop: threading.Event | None, counts: HeadlessCounts, wait_for_disk: bool) -> None:  # fmt: skip
        from recording.writer import STOP_END

        self.frames, self.keypoints, self.writer, self.stop, self.counts = frames, keypoints, writer, stop, counts
        # A file or recorded source can wait for a slow disk (nothing is dropped); live cameras cannot.
        self.wait_for_disk = wait_for_disk
        self.progress = Progress(frames)
        self.reason = STOP_END
        self.runner: PipelineRunner | None = None
        self.monitor: Monitor | None = None
        self.streams: Streams | None = None  # live streaming (--stream, the room's [streaming])
        self.retention: tuple[Path, float] | None = None  # (recordings folder, days): checked again daily
        self._retention_at = time.time()

    def add(self, estimate: BodyEstimate) -> None:
        """One result (called by the pipeline); asks the runner to stop when the run is over."""
        self.counts.processed += 1
        if self.monitor is not None:
            for event in self.monitor.update_estimate(estimate):
                if self.writer is not None:
                    self.writer.write_event(event.to_record())
                    if event.phase == "raised" and event.severity != "info":
                        self.writer.mark_event(event.t)
        if self.keypoints is not None:
            self.keypoints.add(estimate)
        if self.streams is not None:
            self.streams.send(estimate)
        if self.writer is not None:
            self.writer.add(estimate, block=self.wait_for_disk)
            self.counts.recorded, self.counts.dropped = self.writer.recorded, self.writer.dropped
            if self.writer.failed:
                self._end()
                return
        self.progress.update(self.counts.processed)
        if self.retention is not None and time.time() - self._retention_at >= 86400.0:
            from recording.retention import purge_sessions

            self._retention_at = time.time()
            purge_sessions(*self.retention, active=[self.writer.folder] if self.writer is not None else [])
        if self.frames is not None and self.counts.processed >= self.frames:
            self.reason = STOP_FRAMES
            self._end()
        elif self.stop is not None and self.stop.is_set():
            self.reason = STOP_REQUESTED
            self._end()

    def _end(self) -> None:
        if self.runner is not None:
            self.runner.request_stop()


def _process(processing: Processing, outputs: HeadlessOutputs) -> str:
    """The headless run (engine.runner's loop, on this thread); returns why it ended."""
    from engine.runner import PipelineRunner
    from recording.writer import STOP_INTERRUPTED

    runner = outputs.runner = PipelineRunner(processing.source, processing.pipeline, max_sets=outputs.frames)
    unsubscribe = processing.pipeline.subscribe(outputs.add)
    try:
        runner.run()
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
        outputs.reason = STOP_INTERRUPTED
    finally:
        unsubscribe()
        outputs.progress.done()
        processing.close()
    return outputs.reason


def _finish_recording(writer: SessionRecorder, reason: str, counts: HeadlessCounts) -> int:
    """Stop the recorder (session.json finalised); 1 with one ``error:`` line when the recording
    stopped on an error (full disk, a write error), else 0."""
    writer.stop(reason)
    counts.recorded, counts.dropped = writer.recorded, writer.dropped
    print(
        f"recorded {writer.recorded} frame-set(s) into {writer.folder}"
        + (f" ({writer.dropped} dropped)" if writer.dropped else "")
    )
    if writer.failed:
        print(f"error: {writer.message}", file=sys.stderr)
        return EXIT_RECORDING_FAILED
    return 0


def start_recording(args: argparse.Namespace, processing: Processing) -> SessionRecorder:
    """A started SessionRecorder for ``--record DIR`` (calibration snapshot included)."""
    from monitoring.live import monitor_config
    from recording.writer import SessionRecorder, min_free_bytes

    calibration_text = None
    if processing.calibrated:
        import tempfile

        from calibration.io import save_calibration

        with tempfile.TemporaryDirectory() as tmp:
            snapshot = Path(tmp) / "calibration.toml"
            where = redact(str(args.calibration or args.source or "bundled demo"))
            save_calibration(snapshot, processing.cameras, {"source": where})
            calibration_text = snapshot.read_text()
    source = redact(str(args.room or args.source or "bundled demo"))  # passwords never reach session.json
    meta = {"source": source, "detector": args.detector, "model": str(args.model or "bundled")}
    privacy = monitor_config(processing.room_file).privacy
    if privacy.retention_days:
        from recording.retention import purge_sessions

        purge_sessions(args.record.parent, privacy.retention_days, active=[args.record])
    video = None if args.no_video else privacy.recording  # --no-video: recorded as such, whatever the room says
    return SessionRecorder(args.record, processing.cameras, store_video=not args.no_video, calibration_text=calibration_text,
                           min_free_bytes=min_free_bytes(), metadata=meta, video=video, padding_s=privacy.event_padding_s,
                           blur_faces=privacy.blur_faces).start()  # fmt: skip


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
        check_paths(args)
        if args.calibrate is None:
            check_detector(args.detector)
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
    except KeyboardInterrupt:  # Ctrl+C before processing started (e.g. while the models load)
        print("\nstopped", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
