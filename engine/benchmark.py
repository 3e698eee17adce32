"""Benchmark the demo headless: per-stage timings and end-to-end frame-sets per second.

    python -m engine.benchmark --frames 60 --json out/bench.json [--source PATH] [--detector NAME] [--backend B] [--max-side 640]
    python -m engine.benchmark --backend all --views 1,2,4,8 --json out/backends.json
    python -m engine.benchmark --people --json out/people.json [--max-side 640]
    python -m engine.benchmark --realtime 60 --json out/realtime.json [--source PATH]
    python -m engine.benchmark --body-share 2 --json out/share.json [--people] [--max-side 640]

Runs the same pipeline as the app (parallel per-view detection, triangulation, HeatFormer's body
with the display meshes) as fast as possible and writes median / p95 milliseconds for decode,
detect per view, detect (all views), triangulate, body and total, plus frame-sets per second
measured over the whole run, and HeatFormer's own latency on one 4-view frame-set.
``--no-heatformer`` runs keypoints only; ``--body-share N`` alternates N keypoints-only runs with
N runs with the bodies (in one process, each pair back to back) and reports how much the body stage
adds to the time per frame-set. ``--max-side N`` runs on a copy of the source (a session
folder: ``videos/*.mp4`` and ``calibration.toml``; default the bundled demo) downscaled to N px
on its longer side, with the calibration scaled to match.

``--people`` measures the multi-person pipeline (detector ``blazepose-multi``, association,
tracking, a body per person) on the bundled multi-person demo (assets/demo_people), by default on
a copy downscaled to 640 px on its longer side (``--max-side``; 0 keeps the full size), and adds
how many people each frame-set held.

``--realtime SECONDS`` plays the source (default: the bundled demo) as the app does, paced at the
recording's rate and looping, for that long: the frame-sets this machine processes per second,
how many it had to skip, and how many people each processed set held (the demo's bystander is a
second person where two views see her).

With ``--views``, it measures HeatFormer alone instead: for each backend (``--backend`` name,
comma list or ``all``) and view count, median / p95 latency of one frame-set (3 iterations),
throughput (frame-sets per second, one at a time and in batches of 8), and peak memory; and one
uncalibrated view as the app runs it, averaged over test-time augmentations (engine.heatformer.tta).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from core.camera import Camera
from core.errors import AppError
from core.outputs import check_output
from core.paths import DEMO_DIR, PEOPLE_DEMO_DIR
from core.report import run_and_report, time_ms
from core.types import BodyEstimate, FrameSetSource
from engine.detect.base import DEFAULT_DETECTOR
from engine.pipeline import Pipeline, build_pipeline
from engine.runner import PipelineRunner, RunnerState

# Frame-sets run before the measured ones. The refinement traces its fit on a helper thread the
# third time it meets a count of people (engine.heatformer.refine), about half a second of CPU
# each, and fits untraced until then: start-up work, once per process and count. On the bundled
# demo (100 frame-sets) those traces ran on about the 7th and the 19th set, so 5 sets of warm-up
# left them in the measured ones (on its 640 px copy the bodies then added a median 27 % to the
# keypoints-only time, against 15 % with them before the measure); 40 warm-up and 60 measured
# sets are the demo.
# Each run says how many traces fell in its measured sets (``refine_traces_measured``).
WARMUP = 40

# Opens ``--source`` (None: the bundled demo), looping, with its calibration: the frame-set source
# and one camera per view, in the same order.
SourceOpener = Callable[[str | None], tuple[FrameSetSource, list[Camera]]]


def summarize(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, float)
    return {"median_ms": round(float(np.median(arr)), 2), "p95_ms": round(float(np.percentile(arr, 95)), 2), "n": len(values)}


def open_looping(source: str | None) -> tuple[FrameSetSource, list[Camera]]:
    """The command line's opener: a video file or folder (default: the bundled demo), looping,
    with its calibration. The only use of capture/ here; :func:`run` takes any opened source."""
    from capture.session import open_session

    session = open_session(source, loop=True)
    return session.replay, session.cameras


def run(source: str | None, detector: str, frames: int, warmup: int, with_heatformer: bool = True,
        backend: str = "auto", open_source: SourceOpener = open_looping, overlap: bool = True,
        latency: bool = True) -> dict[str, object]:  # fmt: skip
    """The pipeline benchmark on ``source`` opened by ``open_source`` (closed afterwards);
    ``overlap``: each set's body beside the next set's detection, as the app runs (engine.runner);
    ``latency``: with the body, also HeatFormer's own latency on one 4-view frame-set."""
    frameset_source, cameras = open_source(source)
    try:
        pipeline = build_pipeline(cameras, detector, with_body=with_heatformer, backend=backend)
        try:
            timings, done_at, start = _timed_run(frameset_source, pipeline, frames + warmup, overlap)
        finally:
            pipeline.close()
    finally:
        frameset_source.close()
    if len(timings) <= warmup:
        raise AppError(f"benchmark: only {len(timings)} frame-set(s) processed; need more than --warmup {warmup}")
    measured = timings[warmup:]
    began = done_at[warmup - 1] if warmup else start
    elapsed = done_at[-1] - began
    traces = _traces_within(began, done_at[-1]) if with_heatformer else 0
    if traces:
        print(
            f"note: {traces} of the refinement's traces (start-up work, made once per count of people) ran during "
            f"the measured frame-sets: a longer --warmup (now {warmup}) measures the steady state",
            file=sys.stderr,
        )
    stages = sorted({k for t in measured for k in t})
    return {
        "source": str(source or "bundled demo"),
        "detector": detector,
        "views": len(cameras),
        "image_sizes": {c.name: list(c.image_size) for c in cameras},
        "frames": len(measured),
        "warmup_frames": warmup,
        "stages": {k: summarize([t[k] for t in measured if k in t]) for k in stages if k != "people"},
        "people_per_set": _counts([int(t["people"]) for t in measured]),
        "end_to_end_fps": round(len(measured) / elapsed, 2) if elapsed > 0 else None,
        "overlap": overlap and with_heatformer,
        "refine_traces_measured": traces,
        "wall_s": round(elapsed, 2),
        "backend": pipeline.backend_description,
        "landmarks": landmark_runtime(pipeline),
        "heatformer_4_views": heatformer_latency() if with_heatformer and latency else None,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }


def _traces_within(begin: float, end: float) -> int:
    """How many of the refinement's traces were being made between ``begin`` and ``end``
    (``time.perf_counter`` seconds)."""
    from engine.heatformer.refine import trace_times

    return sum(1 for start, stop in trace_times() if start < end and stop > begin)


def landmark_runtime(pipeline: Pipeline) -> str | None:
    """What runs the detector's landmark network (e.g. ``openvino bf16``); None for detectors without one."""
    network = getattr(pipeline.detector, "network", None)
    return f"{network.runtime} {network.precision}" if network is not None else None


def _counts(values: list[int]) -> dict[str, int]:
    """How many times each value occurs, by value."""
    return {str(v): values.count(v) for v in sorted(set(values))}


def downscaled_copy(folder: Path, max_side: int, out: Path) -> Path:
    """A copy of the session ``folder`` (``videos/*.mp4`` and ``calibration.toml``) with every
    video downscaled so that its longer side is ``max_side`` px and the calibration scaled to
    match (the camera matrices' first two rows). Returns ``out``."""
    import cv2

    from calibration.io import load_calibration, save_calibration

    (out / "videos").mkdir(parents=True, exist_ok=True)
    scales: dict[str, tuple[int, int]] = {}
    for video in sorted((folder / "videos").glob("*.mp4")):
        capture = cv2.VideoCapture(str(video))
        w, h, fps = (
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            capture.get(cv2.CAP_PROP_FPS),
        )
        scale = max_side / max(w, h)
        if scale > 1.0:
            raise AppError(f"--max-side {max_side}: {video} is only {w}x{h} px (a copy is made smaller, never larger)")
        size = (round(w * scale), round(h * scale))
        writer = cv2.VideoWriter(str(out / "videos" / video.name), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
        while (frame := capture.read()[1]) is not None:
            writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        writer.release()
        capture.release()
        scales[video.stem] = size
    cameras, metadata = load_calibration(folder / "calibration.toml")
    scaled = []
    for cam in cameras:
        if cam.name not in scales:
            raise AppError(
                f"{folder / 'calibration.toml'}: camera {cam.name} has no video {folder / 'videos' / (cam.name + '.mp4')}"
            )
        size = scales[cam.name]
        K = np.array(cam.K, float)
        K[0] *= size[0] / cam.image_size[0]
        K[1] *= size[1] / cam.image_size[1]
        scaled.append(replace(cam, image_size=size, K=K))
    save_calibration(out / "calibration.toml", scaled, metadata | {"source": f"{folder} downscaled to {max_side} px"})
    return out


def _timed_run(
    source: FrameSetSource, pipeline: Pipeline, total: int, overlap: bool = True
) -> tuple[list[dict[str, float]], list[float], float]:
    """Run ``total`` frame-sets as fast as possible: each set's stage timings, the time each was
    done, and the start time. Only timings are kept (holding every frame would skew decode)."""
    timings: list[dict[str, float]] = []
    done_at: list[float] = []

    def record(estimate: BodyEstimate) -> None:
        timings.append(estimate.timings_ms | {"people": float(len(estimate.people))})
        done_at.append(time.perf_counter())

    pipeline.subscribe(record)
    runner = PipelineRunner(source, pipeline, max_sets=total, overlap=overlap)
    start = time.perf_counter()
    runner.start()
    while not runner.wait(0.5):
        print(f"\r{runner.processed}/{total} frame-sets", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if runner.state == RunnerState.FAILED:
        raise AppError(runner.error or "benchmark run failed")
    return timings, done_at, start


def heatformer_latency() -> dict[str, object] | None:
    """HeatFormer-S on one 4-view frame-set (3 iterations), PyTorch and ONNX Runtime, and with
    the refinement as the app runs them (HeatFormer's REFINED_ITERATIONS, then the fit); None when
    no trained weights are bundled."""
    from engine.heatformer.inference import REFINED_ITERATIONS
    from engine.heatformer.latency import measure, measure_refine
    from engine.heatformer.runtime import DEFAULT_WEIGHTS, load_heatformer

    if not DEFAULT_WEIGHTS.is_file():
        return None
    model = load_heatformer(DEFAULT_WEIGHTS)
    result = measure(model, views=4)
    refine = measure_refine(model, views=4)
    result["refine"] = refine
    proposal = measure(model, views=4, iterations=REFINED_ITERATIONS)  # what the refinement starts from
    result["before_refine"] = proposal
    runtimes = [r for k in ("pytorch", "onnxruntime") if isinstance(r := proposal.get(k), dict)]
    if runtimes:
        best = min(float(r["median_ms"]) for r in runtimes)
        refine_ms = refine["median_ms"]
        assert isinstance(refine_ms, float)
        result["heatformer_plus_refine_median_ms"] = round(best + refine_ms, 3)
    return result


DEFAULT_VIEWS = "1,2,4,8"


class StepProgress:
    """``[n/m] what`` lines on stderr, so a run of minutes shows where it is."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.start = total, 0, time.perf_counter()

    def step(self, what: str) -> None:
        self.done += 1
        print(f"[{self.done}/{self.total}] {what} ({time.perf_counter() - self.start:.0f} s)", file=sys.stderr, flush=True)

    def skip(self, count: int, why: str) -> None:
        self.done += count
        print(f"[{self.done}/{self.total}] {why}", file=sys.stderr, flush=True)


def backends_benchmark(backends: str, views: list[int], repeats: int = 50) -> dict[str, object]:
    """HeatFormer alone on each backend and view count (see the module docstring)."""
    import resource

    import torch

    from engine.backends import BACKENDS, HeatFormerRunner, sample_feed
    from engine.backends.base import BackendError, model_hash
    from engine.heatformer.inputs import ViewInputs
    from engine.heatformer.runtime import DEFAULT_WEIGHTS, load_heatformer

    names = list(BACKENDS[1:]) if backends == "all" else [n.strip() for n in backends.split(",")]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        known = ", ".join(BACKENDS)
        raise BackendError(f"--backend: unknown backend(s) {', '.join(map(repr, unknown))} (known: {known}, all)")
    model = load_heatformer(DEFAULT_WEIGHTS)
    model_id = model_hash(DEFAULT_WEIGHTS)
    results: dict[str, object] = {}
    progress = StepProgress(len(names) * (len(views) + 2))
    for name in names:
        progress.step(f"{name}: loading (an ONNX export or TensorRT build can take minutes the first time)")
        try:
            runner = HeatFormerRunner.create(name, model, model_id)
        except BackendError as exc:
            results[name] = {"available": False, "reason": str(exc)}
            progress.skip(len(views) + 1, f"{name}: not available ({exc})")
            continue
        per_view: dict[str, object] = {}
        backend = runner.backend(True)
        for v in views:
            progress.step(f"{name}: {v} view(s), {repeats} timed runs")
            single, eight = sample_feed(True, v), sample_feed(True, v, batch=8)
            one = time_ms(partial(backend.infer, single), repeats, warmup=5)
            batch = time_ms(partial(backend.infer, eight), max(5, repeats // 5), warmup=2)
            per_view[str(v)] = {**one, "framesets_per_s": round(1000 / one["median_ms"], 1),
                                "batch8_framesets_per_s": round(8000 / batch["median_ms"], 1)}  # fmt: skip
        entry: dict[str, object] = {"available": True, "device": runner.device, "precision": backend.capabilities.precision,
                                    "views": per_view}  # fmt: skip
        progress.step(f"{name}: 1 uncalibrated view with test-time augmentation")
        lone = sample_feed(False, 1)
        lone_inputs = ViewInputs(torch.from_numpy(lone["obs_xy"]), torch.from_numpy(lone["obs_conf"]), torch.zeros(1, 1, 3))
        entry["uncalibrated_1_view_augmented"] = time_ms(partial(runner, lone_inputs), repeats, warmup=5)
        entry["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        if runner.device == "cuda":
            entry["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        results[name] = entry
    return {"benchmark": "heatformer_backends", "model_hash": model_id, "torch_threads": torch.get_num_threads(),
            "results": results, "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=60, help="frame-sets to measure (default 60)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=WARMUP,
        help=f"frame-sets run before measuring (default {WARMUP}: past the refinement's start-up traces)",
    )
    parser.add_argument("--source", help="video file or folder (default: the bundled demo)")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--no-heatformer", action="store_true", help="keypoints only: no HeatFormer body, no latency measurement")
    parser.add_argument(
        "--backend", default="auto", help="auto, torch, onnxruntime, tensorrt (with --views: a comma list or all)"
    )
    parser.add_argument("--views", help="measure HeatFormer alone for these view counts, e.g. 1,2,4,8")
    parser.add_argument("--repeats", type=int, default=50, help="with --views: timed runs per setting")
    parser.add_argument(
        "--no-overlap",
        action="store_true",
        help="one frame-set at a time (the app overlaps a set's body with the next detection)",
    )
    parser.add_argument("--people", action="store_true", help="the multi-person pipeline on the multi-person demo")
    parser.add_argument(
        "--max-side",
        type=int,
        help="downscale the source to this many px on its longer side (0: full size; with --people and the bundled "
        "multi-person demo the default is 640)",
    )
    parser.add_argument(
        "--realtime", type=float, metavar="SECONDS", help="play the source in real time for this long, as the app does"
    )
    parser.add_argument(
        "--body-share",
        type=int,
        metavar="ROUNDS",
        help="alternate keypoints-only runs and runs with the bodies, ROUNDS of each, and report how much the bodies add",
    )
    args = parser.parse_args(argv)
    if args.frames < 1 or args.warmup < 0 or args.repeats < 1:
        parser.error("--frames and --repeats must be at least 1, --warmup at least 0")
    if args.max_side is not None and args.max_side < 0:
        parser.error("--max-side must be 0 (full size) or more")
    if args.max_side is not None and (args.realtime is not None or args.views):
        parser.error("--max-side works with the plain run and --people, not with --realtime or --views")
    if args.realtime is not None and not args.realtime > 0:
        parser.error("--realtime takes a number of seconds above 0")
    if args.body_share is not None and args.body_share < 1:
        parser.error("--body-share takes a number of rounds, at least 1")
    if args.body_share and (args.no_heatformer or args.realtime is not None or args.views):
        parser.error("--body-share runs with and without the bodies itself: not with --no-heatformer, --realtime or --views")
    if args.json is not None:  # before the work: a bad path fails at once
        try:
            check_output(args.json, "--json", create_folder=True)
        except AppError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if (args.backend == "all" or "," in args.backend) and not args.views:
        args.views = DEFAULT_VIEWS  # several backends: HeatFormer alone on each (the pipeline runs one)
        print(f"--backend {args.backend}: HeatFormer alone on each backend, --views {DEFAULT_VIEWS}", file=sys.stderr)
    if args.views:
        try:
            views = [int(v) for v in args.views.split(",")]
        except ValueError:
            parser.error("--views takes a comma list of numbers, e.g. 1,2,4,8")
        if not all(1 <= v <= 8 for v in views):
            parser.error("--views: the model runs 1 to 8 views")
        return run_and_report(lambda: backends_benchmark(args.backend, views, args.repeats), args.json)
    if args.people:
        return run_and_report(lambda: people_benchmark(args), args.json)
    if args.realtime is not None:
        return run_and_report(
            lambda: realtime(
                args.source, args.detector, args.realtime, not args.no_heatformer, args.backend, not args.no_overlap
            ),
            args.json,
        )
    return run_and_report(lambda: plain_benchmark(args), args.json)


def realtime(
    source: str | None, detector: str, seconds: float, with_heatformer: bool = True, backend: str = "auto", overlap: bool = True
) -> dict[str, object]:
    """``--realtime``: ``source`` played at its recording's pace, looping, for ``seconds`` (after the
    models are loaded), through the app's pipeline on the app's worker thread."""
    from capture.session import open_session

    session = open_session(source, realtime=True, loop=True)
    try:
        pipeline = build_pipeline(session.cameras, detector, with_body=with_heatformer, backend=backend)
        people: list[int] = []
        pipeline.subscribe(lambda estimate: people.append(len(estimate.people)))
        runner = PipelineRunner(session.replay, pipeline, overlap=overlap)
        try:
            start = time.perf_counter()
            runner.start()
            while not runner.wait(0.5) and time.perf_counter() - start < seconds:
                print(
                    f"\r{runner.processed} frame-sets, {time.perf_counter() - start:.0f} s", end="", file=sys.stderr, flush=True
                )
            runner.stop()
            elapsed = time.perf_counter() - start
            print(file=sys.stderr)
            if runner.state == RunnerState.FAILED:
                raise AppError(runner.error or "real-time run failed")
            stats = runner.stats()
        finally:
            runner.stop()
            pipeline.close()
    finally:
        session.replay.close()
    return {
        "source": str(source or "bundled demo"),
        "detector": detector,
        "views": len(session.cameras),
        "seconds": round(elapsed, 1),
        "recording_fps": stats.recording_fps,
        "processed": len(people),
        "processed_per_s": round(len(people) / elapsed, 2),
        "skipped_sets": stats.skipped,
        "people_per_set": _counts(people),
        "backend": pipeline.backend_description,
        "landmarks": landmark_runtime(pipeline),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }


def people_benchmark(args: argparse.Namespace) -> dict[str, object]:
    """``--people``: the multi-person pipeline on the multi-person demo (downscaled to 640 px unless
    ``--max-side`` says otherwise, 0: full size), with the ``blazepose-multi`` detector unless
    another was named."""
    if args.source is not None and args.max_side is None:
        return _run_args(args, args.source)
    side = 640 if args.max_side is None else args.max_side
    return _on_copy(args, Path(args.source) if args.source else PEOPLE_DEMO_DIR, side, "bundled multi-person demo")


def plain_benchmark(args: argparse.Namespace) -> dict[str, object]:
    """The default run: the source (default: the bundled demo), downscaled when ``--max-side`` is given."""
    if not args.max_side:
        return _run_args(args, args.source)
    return _on_copy(args, Path(args.source) if args.source else DEMO_DIR, args.max_side, "bundled demo")


def _run_args(args: argparse.Namespace, source: str | None) -> dict[str, object]:
    if args.body_share:
        return body_share(args, source)
    return run(source, args.detector, args.frames, args.warmup, not args.no_heatformer, args.backend, overlap=not args.no_overlap)


def body_share(args: argparse.Namespace, source: str | None) -> dict[str, object]:
    """``--body-share N``: N rounds of a keypoints-only run followed by a run with the bodies, on
    the same source in one process, so that each pair sees the machine in the same state (its speed
    drifts by a fifth over a day). Returns the last run with the bodies, plus ``body_share``: each
    round's frame-sets per second with and without the bodies and how much the bodies add to the
    time per frame-set (keypoints-only sets/s over with-bodies sets/s, minus 1), their median, and
    how many of the refinement's start-up traces fell in each run's measured sets (see WARMUP)."""
    rounds: list[tuple[float, float]] = []
    traces: list[object] = []  # the refinement's traces in each run with the bodies' measured sets
    result: dict[str, object] = {}
    for k in range(args.body_share):
        print(f"round {k + 1} of {args.body_share}: keypoints only, then with the bodies", file=sys.stderr)
        common = (source, args.detector, args.frames, args.warmup)
        keypoints = run(*common, with_heatformer=False, backend=args.backend, overlap=not args.no_overlap)
        last = k == args.body_share - 1
        result = run(*common, with_heatformer=True, backend=args.backend, overlap=not args.no_overlap, latency=last)
        without, with_bodies = keypoints["end_to_end_fps"], result["end_to_end_fps"]
        assert isinstance(without, float) and isinstance(with_bodies, float)
        rounds.append((without, with_bodies))
        traces.append(result["refine_traces_measured"])
    added = [without / with_bodies - 1.0 for without, with_bodies in rounds]
    return result | {
        "body_share": {
            "keypoints_only_fps": [r[0] for r in rounds],
            "with_bodies_fps": [r[1] for r in rounds],
            "added": [round(a, 3) for a in added],
            "added_median": round(float(np.median(added)), 3),
            "refine_traces_measured": traces,
        }
    }


def _on_copy(args: argparse.Namespace, folder: Path, side: int, name: str) -> dict[str, object]:
    """The run on ``folder`` downscaled to ``side`` px (0: as it is)."""
    label = name if folder in (DEMO_DIR, PEOPLE_DEMO_DIR) else str(folder)
    if side == 0:
        return _run_args(args, str(folder))
    if not (folder / "calibration.toml").is_file() or not any((folder / "videos").glob("*.mp4")):
        raise AppError(f"--max-side needs a session folder with videos/*.mp4 and calibration.toml: {folder} is not one")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        print(f"downscaling {label} to {side} px ...", file=sys.stderr)
        small = downscaled_copy(folder, side, Path(tmp))
        return _run_args(args, str(small)) | {"source": f"{label} downscaled to {side} px"}


if __name__ == "__main__":
    sys.exit(main())
