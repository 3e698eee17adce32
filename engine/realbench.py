"""The real-data benchmark on the bundled demo (Pose2Sim's Demo_SinglePerson: four calibrated
cameras, 60 fps, one person): ``python -m engine.evaluate --benchmark pose2sim``.

BlazePose runs once over the first ``frames`` frame-sets in every view. Then each camera is held
out in turn: from the other three views come the triangulation (as the pipeline runs it), the
HeatFormer body without refinement, the refined body and the refined body filtered over time;
each is projected into the held-out view and compared with BlazePose's detections there (pixels,
keypoints of confidence >= ``HELD_OUT_MIN_CONFIDENCE``, the keypoints every method placed). From
all four views: per limb the spread (standard deviation) of its length over the sequence, the
frame-to-frame jitter (mean joint acceleration) and the lowest mesh vertex's height above the
floor (z = 0) while standing. Each camera alone, uncalibrated (a room without calibration, one
camera): the view's body, HeatFormer's and fitted (each frame-set alone, and kept facing over time as
the app keeps it), against the refined body from all four calibrated
views (PA-MPJPE over the 24 body joints; the best estimate the demo holds, not the truth). The bodies'
keypoints are placed where BlazePose marks them
(engine.heatformer.offsets); their bone lengths are the body model's own keypoints'.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from core.camera import Camera
from core.errors import AppError
from core.paths import ROOT
from core.types import COCO17_MIRROR, FrameBody
from engine.body.metrics import pa_mpjpe
from engine.heatformer.inference import estimate_frame, refine_bodies
from engine.heatformer.inputs import L_HIP, R_HIP
from engine.heatformer.model import HeatFormer
from engine.heatformer.offsets import BLAZEPOSE_OFFSETS, keypoint_body, offsets_for
from engine.heatformer.refine import project_view
from engine.heatformer.temporal import BodyFilter, ViewFilter, keypoint_weight, rotations_of
from engine.heatformer.turns import Heading, settle_turns
from engine.triangulate import triangulate_views

DEFAULT_FRAMES = 300  # five seconds at 60 fps (the bundled demo is shorter: all of it)
PIPELINE_MIN_CONFIDENCE = 0.3  # engine.pipeline.Pipeline's default for triangulation
HELD_OUT_MIN_CONFIDENCE = 0.5  # held-out detections compared against
SETTLE_S = 1.0  # "once the shape has settled": bone spreads again from this time on
STANDING_M = 0.10  # standing: the mid-hip within this of its median height
METHODS = ("triangulation", "heatformer", "refined", "filtered")
COCO17 = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
          "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
          "right_ankle")  # fmt: skip
T = TypeVar("T")

# COCO-17 keypoint pairs: (a, b) per limb.
LIMBS = {
    "upper_arm_left": (5, 7), "upper_arm_right": (6, 8), "forearm_left": (7, 9), "forearm_right": (8, 10),
    "thigh_left": (11, 13), "thigh_right": (12, 14), "shin_left": (13, 15), "shin_right": (14, 16),
    "shoulder_width": (5, 6), "hip_width": (11, 12),
}  # fmt: skip


@dataclass(frozen=True)
class Detections:
    """BlazePose over the demo: ``keypoints`` ``[T, V, 17, 3]`` for ``cameras`` (same order),
    frame-set times ``times`` ``[T]`` (seconds)."""

    cameras: list[Camera]
    keypoints: np.ndarray
    times: np.ndarray


@dataclass
class Bodies:
    """One method's result over a sequence: COCO-17 keypoints ``[T, 17, 3]`` (world metres, NaN
    where nothing was estimated) and, for HeatFormer's methods, the frames (for the mesh)."""

    keypoints: np.ndarray
    frames: list[FrameBody] | None = None
    skeleton: np.ndarray | None = None  # the body model's own keypoints, when they differ from keypoints (offsets): its bones


# --- detection ---------------------------------------------------------------------------------


def detect_demo(frames: int, source: str | Path | None = None, detector: str = "blazepose") -> Detections:
    """Run ``detector`` over the first ``frames`` frame-sets of ``source`` (default: the bundled
    demo) in every view, with the source's calibration."""
    from capture.session import open_session  # engine may use capture; lazily, for the command line
    from engine.detect import create_detector

    session = open_session(source)
    if not session.calibrated:
        session.replay.close()
        raise AppError(f"benchmark pose2sim: {source or 'the bundled demo'} has no calibration for every camera")
    names = [c.name for c in session.cameras]
    det = create_detector(detector, session.cameras)
    keypoints, times = [], []
    start = time.perf_counter()
    try:
        for frameset in session.replay:
            keypoints.append(np.stack([det.detect(n, frameset.frames[n].image).points for n in names]))
            times.append(frameset.reference_time)
            if len(times) % 10 == 0 or len(times) == frames:
                _progress(f"detect {len(times)}/{frames} frame-sets", start)
            if len(times) >= frames:
                break
    finally:
        det.close()
        session.replay.close()
    print(file=sys.stderr)
    if len(times) < 3:
        raise AppError(f"benchmark pose2sim: only {len(times)} frame-set(s) read; need at least 3")
    return Detections(session.cameras, np.asarray(keypoints, np.float64), np.asarray(times, np.float64))


def _progress(what: str, start: float) -> None:
    print(f"\r{what} ({time.perf_counter() - start:.0f} s)", end="", file=sys.stderr, flush=True)


# --- the methods -------------------------------------------------------------------------------


def triangulated(cameras: list[Camera], keypoints: np.ndarray) -> np.ndarray:
    """The pipeline's triangulation of ``keypoints`` ``[T, V, 17, 3]``: ``[T, 17, 4]`` (world
    metres + confidence; NaN where not triangulated)."""
    out = np.stack([triangulate_views(cameras, kp, PIPELINE_MIN_CONFIDENCE).points for kp in keypoints])
    out[out[..., 3] <= 0, :3] = np.nan
    return out


def mid_hip(points: np.ndarray) -> np.ndarray | None:
    """The triangulated mid-hip of one frame ``[17, 4]`` (the pipeline's body root), or None."""
    hips = points[[L_HIP, R_HIP], :3]
    return 0.5 * hips.sum(axis=0) if np.isfinite(hips).all() else None


def heatformer_frames(
    model: HeatFormer, cameras: list[Camera], keypoints: np.ndarray, points: np.ndarray, refine: bool
) -> list[FrameBody]:
    """``estimate_frame`` for every frame-set of ``keypoints`` ``[T, V, 17, 3]`` in order, as the
    live pipeline calls it: rooted on the triangulated mid-hip and, refined, pulled towards the
    previous frame-set's body."""
    K, R, t, dist = (np.stack([np.asarray(getattr(c, a), np.float64) for c in cameras]) for a in ("K", "R", "t", "dist"))
    frames: list[FrameBody] = []
    previous: FrameBody | None = None
    for kp, p in zip(keypoints, points, strict=True):
        frames.append(estimate_frame(model, kp, K, R, t, dist, mid_hip(p), refine=refine, previous=previous))
        previous = frames[-1] if frames[-1].fused else None
    return frames


def filtered_frames(model: HeatFormer, frames: list[FrameBody], keypoints: np.ndarray, times: np.ndarray) -> list[FrameBody]:
    """``frames`` through one fresh temporal filter, in order, each weighted by its confident
    keypoints ``[T, V, 17, 3]`` as the live pipeline does."""
    body_filter = BodyFilter(model.body)
    return [body_filter.update(f, float(t), keypoint_weight(kp)) for f, kp, t in zip(frames, keypoints, times, strict=True)]


def frame_keypoints(model: HeatFormer, frames: list[FrameBody], own: bool = False) -> np.ndarray:
    """The fused bodies' COCO-17 keypoints from the mesh, ``[T, 17, 3]`` world metres (NaN where
    a frame has no fused body): where the detector would mark them (the model's keypoint offsets,
    engine.heatformer.offsets) or, ``own``, the body model's own."""
    out = np.full((len(frames), 17, 3), np.nan)
    fused = [i for i, f in enumerate(frames) if f.fused]
    if fused:
        betas, rotations, transl = _stacked(frames, fused)
        with torch.no_grad():
            body = (model.body if own else keypoint_body(model)).joints_rotmat(betas, rotations)
        assert body.keypoints is not None
        out[fused] = body.keypoints.double().numpy() + transl[:, None]
    return out


def lowest_vertex(model: HeatFormer, frames: list[FrameBody]) -> np.ndarray:
    """Height (world z, metres) of each fused body's lowest mesh vertex, ``[T]`` (NaN: no body)."""
    out = np.full(len(frames), np.nan)
    for chunk in np.array_split([i for i, f in enumerate(frames) if f.fused], max(1, len(frames) // 32)):
        if len(chunk):
            betas, rotations, transl = _stacked(frames, list(chunk))
            with torch.no_grad():
                vertices = model.body.forward_rotmat(betas, rotations).vertices
            assert vertices is not None
            out[chunk] = vertices[..., 2].double().numpy().min(axis=1) + transl[:, 2]
    return out


def _stacked(frames: list[FrameBody], index: list[int]) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Betas, rotations (orient first) and translations of the fused ``frames[index]``."""
    chosen = [frames[i] for i in index]
    betas = [f.betas for f in chosen if f.betas is not None]
    transl = [f.transl for f in chosen if f.transl is not None]
    assert len(betas) == len(transl) == len(chosen), "only fused frames have a world body"
    rotations = torch.as_tensor(np.stack([rotations_of(f) for f in chosen]), dtype=torch.float32)
    return torch.as_tensor(np.stack(betas), dtype=torch.float32), rotations, np.stack(transl)


def run_methods(
    model: HeatFormer, cameras: list[Camera], keypoints: np.ndarray, times: np.ndarray, clock: dict[str, float] | None = None
) -> dict[str, Bodies]:
    """Every method on the views ``cameras``; each method's seconds are added to ``clock``."""
    clock = {} if clock is None else clock
    points = _timed(clock, "triangulation", lambda: triangulated(cameras, keypoints))
    plain = _timed(clock, "heatformer", lambda: heatformer_frames(model, cameras, keypoints, points, refine=False))
    refined = _timed(clock, "refined", lambda: heatformer_frames(model, cameras, keypoints, points, refine=True))
    smoothed = _timed(clock, "filtered", lambda: filtered_frames(model, refined, keypoints, times))
    offsets = model.keypoint_offsets is not None  # else the keypoints are the body's own: no separate skeleton
    return {
        "triangulation": Bodies(points[..., :3]),
        **{
            name: Bodies(frame_keypoints(model, f), f, frame_keypoints(model, f, own=True) if offsets else None)
            for name, f in (("heatformer", plain), ("refined", refined), ("filtered", smoothed))
        },
    }


def _timed(clock: dict[str, float], name: str, work: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = work()
    clock[name] = clock.get(name, 0.0) + time.perf_counter() - start
    return result


# --- measures ----------------------------------------------------------------------------------


def stats(values: np.ndarray, scale: float = 1.0, digits: int = 2) -> dict[str, float | int | None]:
    """Median, mean, p90 and count of the finite ``values`` times ``scale``."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)] * scale
    if not len(v):
        return {"median": None, "mean": None, "p90": None, "n": 0}
    return {"median": round(float(np.median(v)), digits), "mean": round(float(v.mean()), digits),
            "p90": round(float(np.percentile(v, 90)), digits), "n": int(len(v))}  # fmt: skip


def held_out_errors(camera: Camera, observed: np.ndarray, bodies: dict[str, Bodies]) -> dict[str, Any]:
    """Pixel distance in ``camera`` between every method's projected keypoints and the detections
    ``observed`` ``[T, 17, 3]`` there, over the keypoints every given method placed (a method not
    given is null)."""
    seen = observed[..., 2] >= HELD_OUT_MIN_CONFIDENCE
    common = seen & np.logical_and.reduce([np.isfinite(b.keypoints).all(axis=-1) for b in bodies.values()])
    out: dict[str, Any] = {"compared_keypoints": int(common.sum()), "detected_keypoints": int(seen.sum())}
    for method in METHODS:
        body = bodies.get(method)
        if body is None:
            out[method] = None
            continue
        errors = np.full(common.shape, np.nan)
        errors[common] = np.linalg.norm(camera.project(body.keypoints[common]) - observed[common][:, :2], axis=-1)
        out[method] = {**stats(errors), "median_by_keypoint": _by_keypoint(errors)}
    return out


def _by_keypoint(errors: np.ndarray) -> dict[str, float | None]:
    """Median of ``errors`` ``[T, 17]`` per COCO-17 keypoint (None where never compared)."""
    return {name: stats(errors[:, k])["median"] for k, name in enumerate(COCO17)}


def bone_spreads(keypoints: np.ndarray, times: np.ndarray) -> dict[str, Any]:
    """Per limb the standard deviation of its length (cm) over the sequence, and from
    ``SETTLE_S`` on, with each limb's mean length (cm)."""
    settled = times >= times[0] + SETTLE_S
    out: dict[str, Any] = {}
    for limb, (a, b) in LIMBS.items():
        length = np.linalg.norm(keypoints[:, a] - keypoints[:, b], axis=-1) * 100.0
        out[limb] = {"mean_cm": _round(np.nanmean(length) if np.isfinite(length).any() else np.nan),
                     "spread_cm": _std(length), "spread_settled_cm": _std(length[settled])}  # fmt: skip
    return out


def _std(values: np.ndarray) -> float | None:
    v = values[np.isfinite(values)]
    return round(float(v.std()), 3) if len(v) >= 2 else None


def _round(value: float, digits: int = 3) -> float | None:
    return round(float(value), digits) if np.isfinite(value) else None


def jitter_mm(keypoints: np.ndarray) -> dict[str, float | int | None]:
    """Mean joint acceleration |x[t+1] - 2 x[t] + x[t-1]| (mm/frame^2) over joints and frames
    ``[T, 17, 3]`` (triples with a NaN are left out)."""
    accel = np.linalg.norm(keypoints[2:] - 2 * keypoints[1:-1] + keypoints[:-2], axis=-1) * 1000.0
    v = accel[np.isfinite(accel)]
    return {"mean": round(float(v.mean()), 3) if len(v) else None, "n": int(len(v))}


def foot_floor(model: HeatFormer, bodies: Bodies) -> dict[str, Any]:
    """How far the lowest mesh vertex is from the floor (cm) in the frames where the person
    stands (the mid-hip within ``STANDING_M`` of its median height)."""
    assert bodies.frames is not None
    hip = 0.5 * (bodies.keypoints[:, L_HIP, 2] + bodies.keypoints[:, R_HIP, 2])
    if not np.isfinite(hip).any():
        return {"standing_frames": 0, "distance_cm": stats(np.array([])), "signed_median_cm": None}
    standing = np.abs(hip - np.nanmedian(hip)) <= STANDING_M
    lowest = lowest_vertex(model, [f for f, s in zip(bodies.frames, standing, strict=True) if s])
    return {"standing_frames": int(standing.sum()), "distance_cm": stats(np.abs(lowest), 100.0),
            "signed_median_cm": _round(np.nanmedian(lowest) * 100.0, 2) if np.isfinite(lowest).any() else None}  # fmt: skip


# --- the benchmark -----------------------------------------------------------------------------


def held_out(model: HeatFormer, det: Detections, clock: dict[str, float]) -> dict[str, Any]:
    """Each camera held out in turn: the methods from the other views, compared there."""
    out: dict[str, Any] = {}
    for h, camera in enumerate(det.cameras):
        start = time.perf_counter()
        others = [v for v in range(len(det.cameras)) if v != h]
        views = [det.cameras[v] for v in others]
        bodies = run_methods(model, views, det.keypoints[:, others], det.times, clock)
        out[camera.name] = held_out_errors(camera, det.keypoints[:, h], bodies)
        print(f"held out {camera.name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return out


def all_views(model: HeatFormer, det: Detections, clock: dict[str, float]) -> dict[str, Any]:
    """Bone spreads, jitter and foot-floor distance from all the views; each view alone against
    the refined body from all of them (:func:`one_view`)."""
    bodies = run_methods(model, det.cameras, det.keypoints, det.times, clock)
    assert bodies["refined"].frames is not None
    return {
        "bone_spread": {m: bone_spreads(b.keypoints if b.skeleton is None else b.skeleton, det.times) for m, b in bodies.items()},
        "jitter_mm_per_frame2": {m: jitter_mm(b.keypoints) for m, b in bodies.items()},
        "foot_floor": {m: foot_floor(model, b) for m, b in bodies.items() if b.frames is not None},
        "fused_frames": {m: int(np.isfinite(b.keypoints).all(axis=(1, 2)).sum()) for m, b in bodies.items()},
        "one_view_pa_mm": one_view(model, det, bodies["refined"].frames, clock),
    }


def view_joints(model: HeatFormer, frames: list[FrameBody], view: int | None = None) -> torch.Tensor:
    """The 24 body joints ``[T, 24, 3]`` of the fused world bodies of ``frames`` or, with ``view``,
    of that view's own body (its camera's frame): NaN where there is none."""
    out = torch.full((len(frames), 24, 3), float("nan"))
    rows = [i for i, f in enumerate(frames) if (f.fused if view is None else f.used[view])]
    if not rows:
        return out
    if view is None:
        betas, rotations, _ = _stacked(frames, rows)
    else:
        betas = torch.as_tensor(np.stack([frames[i].view_betas[view] for i in rows]), dtype=torch.float32)
        rotations = torch.as_tensor(
            np.stack([np.concatenate([frames[i].view_orient[view][None], frames[i].view_pose[view]]) for i in rows]),
            dtype=torch.float32,
        )
    with torch.no_grad():
        out[rows] = model.body.joints_rotmat(betas, rotations).joints[:, :24]
    return out


def uncalibrated_frames(model: HeatFormer, keypoints: np.ndarray) -> list[FrameBody]:
    """HeatFormer's bodies (``estimate_frame`` without cameras, not refined) for every frame-set of
    ``keypoints`` ``[T, V, 17, 3]``, as the app runs uncalibrated views."""
    return [estimate_frame(model, kp) for kp in keypoints]


def fit_uncalibrated(
    model: HeatFormer, frames: list[FrameBody], keypoints: np.ndarray, image_size: np.ndarray, times: np.ndarray | None = None
) -> int:
    """Each of :func:`uncalibrated_frames`' ``frames`` fitted in place to its keypoints (views of
    ``image_size`` ``[V, 2]``), one frame-set at a time as the app does: together they are what
    ``estimate_frame(..., refine=True)`` gives. With the frame-sets' ``times``, also each one-view
    body checked against the way it faced before, as the app checks it (engine.heatformer.turns);
    returns how many were taken with the view's sides exchanged."""
    headings: list[Heading | None] = [None]
    taken = 0
    for k, (frame, kp) in enumerate(zip(frames, keypoints, strict=True)):
        refine_bodies(model, [frame], [kp], image_size=image_size)
        if times is not None:
            headings = settle_turns(model, [frame], [kp], headings, float(times[k]), image_size)
            taken += frame.mirrored is not None
    return taken


def view_reprojection_px(model: HeatFormer, frames: list[FrameBody], observed: np.ndarray) -> np.ndarray:
    """Each frame's median distance (px) between its first view's body, seen as the app draws it
    (its keypoints placed by ``view_cam`` through ``view_lens``), and that view's detections
    ``[T, 17, 3]`` of confidence >= ``HELD_OUT_MIN_CONFIDENCE`` (exchanged where the body was fitted
    to them exchanged): ``[T]``, NaN where either is missing."""
    out = np.full(len(frames), np.nan)
    body = keypoint_body(model, torch.float64)
    for i, frame in enumerate(frames):
        if not frame.used[0] or frame.fused or frame.view_lens is None:
            continue
        rotations = np.concatenate([frame.view_orient[0][None], frame.view_pose[0]])
        with torch.no_grad():
            kp = body.joints_rotmat(torch.as_tensor(frame.view_betas[:1]), torch.as_tensor(rotations[None])).keypoints
        assert kp is not None
        relative = kp[0] - 0.5 * (kp[0, L_HIP] + kp[0, R_HIP])
        crop = project_view(relative, torch.from_numpy(frame.view_cam[0]), torch.from_numpy(frame.view_lens[0])).numpy()
        pixels = frame.view_boxes[0, :2] + frame.view_boxes[0, 2] * crop
        seen = observed[i][COCO17_MIRROR] if frame.mirrored is not None and frame.mirrored[0] else observed[i]
        good = seen[:, 2] >= HELD_OUT_MIN_CONFIDENCE
        if good.any():
            out[i] = float(np.median(np.linalg.norm(pixels[good] - seen[good, :2], axis=-1)))
    return out


def one_view(model: HeatFormer, det: Detections, reference: list[FrameBody], clock: dict[str, float]) -> dict[str, Any]:
    """Each camera alone, uncalibrated, as the app runs a room with one camera and no calibration
    (``estimate_frame`` without cameras: HeatFormer with its test-time augmentation, then those
    bodies fitted through a lens of the assumed field of view, each frame-set alone
    (``fitted_each_alone``) and, as the app runs, checked over time for a detection with its sides
    exchanged (``fitted``; ``exchanged_taken`` counts those taken), and filtered over time as the
    app shows it (``filtered``; the jitter of both, the mean acceleration of the joints about the
    root)): PA-MPJPE (mm, the 24 body joints) of
    the view's body against the ``reference`` frames' fused world bodies (the refined body from all
    four calibrated views), per camera and over all of them; frame-sets without a reference or a
    view body are left out. The reference is an estimate, not the truth: on the synthetic benchmark
    four calibrated views refined score about 21 mm PA-MPJPE against the truth."""
    truth = view_joints(model, reference)
    out: dict[str, Any] = {"reference": "refined body from all calibrated views"}
    every: dict[str, list[np.ndarray]] = {"heatformer": [], "fitted_each_alone": [], "fitted": [], "filtered": []}
    jitter: dict[str, list[float]] = {"fitted": [], "filtered": []}
    for v, camera in enumerate(det.cameras):
        keypoints = det.keypoints[:, v : v + 1]
        frames = _timed(clock, "one_view_heatformer", partial(uncalibrated_frames, model, keypoints))
        joints = {"heatformer": view_joints(model, frames, view=0)}
        size = np.asarray([camera.image_size], np.float64)
        alone = copy.deepcopy(frames)
        fit_uncalibrated(model, alone, keypoints, size)
        joints["fitted_each_alone"] = view_joints(model, alone, view=0)
        taken = _timed(clock, "one_view_fit", partial(fit_uncalibrated, model, frames, keypoints, size, det.times))
        joints["fitted"] = view_joints(model, frames, view=0)
        view_filter = ViewFilter(model.body)  # what the app shows: each view's body filtered over time
        shown = [
            view_filter.update(f, float(t), keypoint_weight(kp)) for f, t, kp in zip(frames, det.times, keypoints, strict=True)
        ]
        joints["filtered"] = view_joints(model, shown, view=0)
        out[camera.name] = {"exchanged_taken": taken}
        for name, shown_frames in (("fitted", frames), ("filtered", shown)):  # the body against the view's detections
            out[camera.name][f"reprojection_{name}_px"] = stats(
                view_reprojection_px(model, shown_frames, keypoints[:, 0]), 1.0, 2
            )
        for name in jitter:  # the body's own motion: its joints about the root, where the view bodies keep it
            mean = jitter_mm(joints[name].numpy())["mean"]
            out[camera.name][f"jitter_{name}_mm_per_frame2"] = mean
            jitter[name].append(np.nan if mean is None else float(mean))
        for name, j in joints.items():
            both = torch.isfinite(j).all(dim=(1, 2)) & torch.isfinite(truth).all(dim=(1, 2))
            errors = np.full(len(j), np.nan)
            if both.any():
                errors[both.numpy()] = pa_mpjpe(j[both].double(), truth[both].double()).numpy()
            out[camera.name][name] = stats(errors, 1000.0, 1)
            every[name].append(errors)
    out["all"] = {name: stats(np.concatenate(e), 1000.0, 1) for name, e in every.items()}
    out["all"]["jitter_ratio_filtered_to_fitted"] = _round(float(np.nanmean(jitter["filtered"]) / np.nanmean(jitter["fitted"])))
    return out


def acceptance(held: dict[str, Any], whole: dict[str, Any], filter_input: str) -> dict[str, Any]:
    """Issue 27's checks, read from this run (None where nothing could be compared). The bone
    spread is the product's body: the filtered one."""
    med = {cam: {m: _median(r[m]) for m in METHODS} for cam, r in held.items()}
    beats = [a < b for a, b in _pairs(med, "refined", "triangulation")]
    growth = [a - b for a, b in _pairs(med, "filtered", filter_input)]
    spread_body = "filtered"
    worst = {m: _worst_settled(limbs) for m, limbs in whole["bone_spread"].items()}
    product_worst = worst[spread_body]
    jitter = {m: v["mean"] for m, v in whole["jitter_mm_per_frame2"].items()}
    raw, smooth = jitter.get(filter_input), jitter.get("filtered")
    ratio = round(smooth / raw, 3) if smooth is not None and raw else None
    most_growth = round(max(growth), 2) if growth and len(growth) == len(med) else None
    return {
        "refined_beats_triangulation_every_camera": all(beats) if len(beats) == len(med) else None,
        "bone_spread_body": spread_body,
        "bone_spread_settled_max_cm": worst,
        "bone_spread_settled_ok": None if product_worst is None else product_worst <= 0.5,
        "jitter_ratio_filtered_to_raw": ratio,
        "filter_error_growth_max_px": most_growth,
        "filter_ok": None if ratio is None or most_growth is None else ratio <= 0.5 and most_growth <= 1.0,
    }


def _median(entry: dict[str, Any] | None) -> float | None:
    return None if entry is None else entry["median"]


def _pairs(med: dict[str, dict[str, float | None]], a: str, b: str) -> list[tuple[float, float]]:
    """Per camera (method ``a``'s median, method ``b``'s) where both were measured."""
    out = []
    for r in med.values():
        x, y = r[a], r[b]
        if x is not None and y is not None:
            out.append((x, y))
    return out


def _worst_settled(limbs: dict[str, Any]) -> float | None:
    spreads = [v["spread_settled_cm"] for v in limbs.values() if v["spread_settled_cm"] is not None]
    return max(spreads) if spreads else None


def run(
    model: HeatFormer, frames: int = DEFAULT_FRAMES, source: str | Path | None = None, offsets: bool = True
) -> dict[str, Any]:
    """The whole benchmark (see the module docstring) as a JSON-ready dict; ``offsets``: with
    BlazePose's keypoint offsets on the body (engine.heatformer.offsets), as the app runs."""
    model.keypoint_offsets = offsets_for(model.body, "blazepose") if offsets else None
    clock: dict[str, float] = {}
    det = _timed(clock, "detect", lambda: detect_demo(frames, source))
    held = held_out(model, det, clock)
    whole = all_views(model, det, clock)
    estimates = len(det.times) * (len(det.cameras) + 1)  # the held-out runs and the all-views one
    alone = len(det.times) * len(det.cameras)  # one_view: each camera's frame-sets
    filter_input = "refined"  # the filter runs on the refined bodies, as in the live pipeline
    return {
        "benchmark": "pose2sim",
        "source": str(source or "bundled demo (Pose2Sim Demo_SinglePerson)"),
        "cameras": [c.name for c in det.cameras],
        "frames": int(len(det.times)),
        "seconds": round(float(det.times[-1] - det.times[0]), 3),
        "held_out_min_confidence": HELD_OUT_MIN_CONFIDENCE,
        "triangulation_min_confidence": PIPELINE_MIN_CONFIDENCE,
        "filter_input": filter_input,
        "keypoint_offsets": None if model.keypoint_offsets is None else str(BLAZEPOSE_OFFSETS.relative_to(ROOT)),
        "held_out_px": held,
        **whole,
        "acceptance": acceptance(held, whole, filter_input),
        "seconds_per_stage": {k: round(v, 2) for k, v in clock.items()},
        "ms_per_estimate": {
            k: round(1000 * v / (alone if k.startswith("one_view") else estimates), 2) for k, v in clock.items() if k != "detect"
        },  # fmt: skip
    }


def summary(result: dict[str, Any]) -> str:
    """The screen summary: medians per camera and method, bone spreads, jitter, foot-floor."""
    lines = [f"pose2sim benchmark: {result['frames']} frame-sets ({result['seconds']} s), held-out median px"]
    lines.append("camera   " + "".join(f"{m:>15}" for m in METHODS))
    for cam, r in result["held_out_px"].items():
        lines.append(f"{cam:<9}" + "".join(f"{_fmt((r[m] or {}).get('median')):>15}" for m in METHODS))
    for method, limbs in result["bone_spread"].items():
        settled = [v["spread_settled_cm"] for v in limbs.values() if v["spread_settled_cm"] is not None]
        whole = [v["spread_cm"] for v in limbs.values() if v["spread_cm"] is not None]
        lines.append(f"bone spread, worst limb ({method}): {_fmt(max(whole, default=None))} cm, "
                     f"after {SETTLE_S:g} s {_fmt(max(settled, default=None))} cm")  # fmt: skip
    jitter = ", ".join(f"{m} {_fmt(v['mean'])}" for m, v in result["jitter_mm_per_frame2"].items())
    lines.append(f"jitter (mm/frame^2): {jitter}")
    for method, f in result["foot_floor"].items():
        lines.append(f"lowest vertex to floor while standing ({method}): median {_fmt(f['distance_cm']['median'])} cm"
                     f" over {f['standing_frames']} frames")  # fmt: skip
    one = result["one_view_pa_mm"]
    lines.append("one camera alone, uncalibrated, PA-MPJPE against all four views' body (mm, median / mean): "
                 + ", ".join(f"{cam} {_fmt(r['heatformer']['median'])} / {_fmt(r['heatformer']['mean'])}, "
                             f"{_fmt(r['fitted_each_alone']['median'])} / {_fmt(r['fitted_each_alone']['mean'])}, "
                             f"{_fmt(r['fitted']['median'])} / {_fmt(r['fitted']['mean'])}, "
                             f"{_fmt(r['filtered']['median'])} / {_fmt(r['filtered']['mean'])}"
                             for cam, r in one.items() if isinstance(r, dict))
                 + " (HeatFormer; fitted, each frame-set alone; fitted and kept facing over time; that filtered, as shown);"
                 f" jitter filtered / fitted {_fmt(one['all']['jitter_ratio_filtered_to_fitted'])}")  # fmt: skip
    lines.append(f"ms per estimate: {result['ms_per_estimate']}")
    lines.append(f"acceptance: {result['acceptance']}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
