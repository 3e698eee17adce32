"""Run HeatFormer-S on someone else's keypoints: a keypoints exchange file in, body results out.

    python -m engine.evaluate --keypoints IN.npz --out OUT.npz [--uncalibrated] [--weights FILE] [--backend NAME]
                              [--keypoint-offsets blazepose|none]
    python -m engine.evaluate --benchmark pose2sim [--frames N] [--json FILE] [--weights FILE] [--keypoint-offsets none]

With the file's calibration (K, R, t) the views are fused into one world body per frame;
``--uncalibrated`` ignores it: every view gets its own body (HeatFormer's weak-perspective camera, then,
refined, fitted through a lens of an assumed field of view for the file's image sizes). A file of the
multi-person layout (``keypoints`` ``[T, V, P, 17, 3]``) runs association, tracking and a body per
person, and writes the ``people_*`` arrays (people_ids ``[T, N]``, people_joints, ...).

``--benchmark pose2sim`` measures the body on the bundled real demo (engine.realbench): each
camera held out in turn, the body from the other three against BlazePose's detections there, side
by side with the triangulation; bone-length spread, jitter and the feet on the floor. The body's
keypoints carry BlazePose's keypoint offsets there (``--keypoint-offsets none``: the model's own). The
synthetic benchmark is the training lab's: ``python -m training.evaluate --benchmark synthetic``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from core.formats import ExchangeFileError, KeypointsFile, load_keypoints_npz
from core.outputs import check_output
from core.report import run_and_report
from engine import realbench
from engine.backends import HeatFormerRunner, runner_or_model
from engine.backends.base import MAX_VIEWS, MIN_VIEWS, model_hash
from engine.heatformer.inference import body_results
from engine.heatformer.model import HeatFormer
from engine.heatformer.offsets import offsets_for
from engine.heatformer.people import people_results
from engine.heatformer.runtime import DEFAULT_WEIGHTS, load_heatformer

BACKENDS = ["auto", "torch", "onnxruntime", "tensorrt"]
MOVED = "python -m training.evaluate --benchmark synthetic"
DEFAULT_FRAMES = realbench.DEFAULT_FRAMES


def make_runner(backend: str, model: HeatFormer, weights: Path | None) -> HeatFormerRunner | None:
    """None for the PyTorch model itself, else an engine.backends runner (engine.backends.runner_or_model)."""
    runner = runner_or_model(backend, model, model_hash(Path(weights or DEFAULT_WEIGHTS)))
    if runner is not None:
        print(f"inference backend: {runner.describe()}", file=sys.stderr)
    return runner


def run_keypoints(
    source: Path,
    out: Path,
    weights: Path | None,
    uncalibrated: bool,
    backend: str = "torch",
    refine: bool = True,
    smooth: bool = True,
    offsets: str = "none",
) -> dict[str, object]:
    """Bodies for a keypoints exchange file; ``offsets``: the detector whose keypoint offsets
    (engine.heatformer.offsets) the body carries, or "none"."""
    data = load_keypoints_npz(source)  # every field checked before the model loads
    views = len(data.camera_names)
    if not MIN_VIEWS <= views <= MAX_VIEWS:
        raise ExchangeFileError(
            f"keypoints file {source}: field keypoints has {views} views; the model runs {MIN_VIEWS} to {MAX_VIEWS}"
        )
    model = load_heatformer(weights)
    model.keypoint_offsets = None if offsets == "none" else offsets_for(model.body, offsets)
    runner = make_runner(backend, model, weights)
    if data.multi_person:
        results = _timed(data, people_results(model, data, uncalibrated, runner, refine=refine, smooth=smooth))
        np.savez_compressed(out, **results)
        ids = results["people_ids"]
        return {"keypoints": str(source), "out": str(out), "frames": int(len(ids)), "views": views,
                "people": sorted(int(i) for i in np.unique(ids[ids >= 0])),
                "fused_frames": int(np.isfinite(results["people_transl"][..., 0]).any(axis=1).sum())}  # fmt: skip
    results = _timed(data, body_results(model, data, uncalibrated, runner, refine=refine, smooth=smooth))
    np.savez_compressed(out, **results)
    return {"keypoints": str(source), "out": str(out), "frames": int(len(results["valid"])),
            "views": views, "fused_frames": int(results["fused"].sum())}  # fmt: skip


def _timed(data: KeypointsFile, results: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The keypoints file's timestamps pass through to the results; a file without them gives
    results without them (frame numbers are not seconds: the monitor then asks for --fps)."""
    return results if data.timed else {k: v for k, v in results.items() if k != "timestamps"}


def keypoints_summary(result: dict[str, Any]) -> str:
    people = f", {len(result['people'])} people (ids {result['people']})" if "people" in result else ""
    return (f"wrote {result['out']}: {result['frames']} frame(s), {result['views']} view(s){people}, "
            f"{result['fused_frames']} with a fused world body")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keypoints", type=Path, help="the keypoints exchange .npz to run on")
    parser.add_argument("--out", type=Path, help="the body results .npz to write")
    parser.add_argument("--uncalibrated", action="store_true", help="ignore the file's calibration")
    parser.add_argument("--weights", type=Path, help="model weights (default: assets/models/heatformer_s.pt)")
    parser.add_argument("--json", type=Path, help="write the result here as JSON (the screen then shows a summary)")
    parser.add_argument("--backend", default="torch", choices=BACKENDS, help="runtime for HeatFormer")
    parser.add_argument("--refine", action=argparse.BooleanOptionalAction, default=True,
                        help="fit each fused body to the views' keypoints after HeatFormer (default: on)")  # fmt: skip
    parser.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=True,
                        help="smooth the fused bodies over the whole sequence (default: on)")  # fmt: skip
    parser.add_argument("--keypoint-offsets", choices=("blazepose", "none"),
                        help="where the detector marks its keypoints on the body (engine.heatformer.offsets): blazepose "
                             "(default with --benchmark) or none, the body model's own (default with --keypoints)")  # fmt: skip
    parser.add_argument("--benchmark", help="pose2sim: the real-data benchmark on the bundled demo")
    parser.add_argument("--frames", type=int, help=f"with --benchmark pose2sim: frame-sets (default {DEFAULT_FRAMES})")
    args = parser.parse_args(argv)
    if args.benchmark is not None:
        return run_benchmark(parser, args)
    if args.frames is not None:
        parser.error("--frames goes with --benchmark pose2sim")
    if args.keypoints is None:
        parser.error(f"--keypoints FILE.npz is needed (the synthetic benchmark moved: {MOVED})")
    if args.out is None:
        parser.error("--keypoints needs --out FILE.npz")

    def checked() -> dict[str, Any]:
        """The output paths first: a bad one fails now, not after the work."""
        check_output(args.out, "--out", suffix=".npz")
        if args.json is not None:
            check_output(args.json, "--json", create_folder=True)
        return run_keypoints(args.keypoints, args.out, args.weights, args.uncalibrated, args.backend, args.refine, args.smooth,
                             offsets=args.keypoint_offsets or "none")  # fmt: skip

    return run_and_report(checked, args.json, keypoints_summary)


def run_benchmark(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``--benchmark pose2sim`` (any other name: where it is, or what is known)."""
    if args.benchmark != "pose2sim":
        where = f" (the synthetic benchmark moved: {MOVED})" if args.benchmark == "synthetic" else ""
        parser.error(f"--benchmark: unknown benchmark {args.benchmark!r}; known: pose2sim{where}")
    if args.keypoints is not None or args.out is not None or args.uncalibrated:
        parser.error("--benchmark pose2sim runs on the bundled demo: no --keypoints, --out or --uncalibrated")
    frames = DEFAULT_FRAMES if args.frames is None else args.frames
    if frames < 3:
        parser.error("--frames must be at least 3 (jitter needs three frames in a row)")

    def checked() -> dict[str, Any]:
        if args.json is not None:
            check_output(args.json, "--json", create_folder=True)
        return realbench.run(load_heatformer(args.weights), frames, offsets=args.keypoint_offsets != "none")

    return run_and_report(checked, args.json, realbench.summary)


if __name__ == "__main__":
    sys.exit(main())
