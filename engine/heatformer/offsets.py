"""Where a 2D detector marks its keypoints on a body, relative to the body model's own COCO-17
keypoints: one fixed offset per keypoint, held in the frame of the body part it sits on
(``engine.body.model.KEYPOINT_PARTS``).

BlazePose does not mark a shoulder, a hip or an ear where the body model puts its own: its hips,
for instance, sit about 6 cm lower than the model's hip joints. A body fitted to BlazePose's
keypoints with the model's own keypoints is pulled out of shape to meet them, and its keypoints then
land beside the detections in a view it was not fitted to. With the detector's offsets, the
refinement (engine.heatformer.refine) and the rooting on the triangulated mid-hip compare like with
like. HeatFormer itself is left as it was trained (on the model's own keypoints), so every inference
backend gives the same answer.

The offsets are measured on real footage that the benchmark does not judge (the bundled static
trial, ``assets/demo_static``) by :func:`estimate_offsets`: fit the body to every view, take
the 3D distance from each of its keypoints to the triangulated detection in that part's frame,
keep the median over the frames (left and right mirrored into one), add it to the offsets and fit
again. ``python -m tools.body.keypoint_offsets`` writes the bundled file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.camera import Camera
from core.errors import AppError
from core.paths import BODY_DIR, DEFAULT_BODY
from engine.body.model import KEYPOINT_PARTS, BodyModel
from engine.heatformer.model import HeatFormer
from engine.heatformer.refine import DEFAULT as DEFAULT_REFINE

log = logging.getLogger(__name__)

BLAZEPOSE_OFFSETS = BODY_DIR / "blazepose_keypoint_offsets.json"
FORMAT_VERSION = 1
# Detectors whose keypoints are BlazePose's (the single-person solution and the multi-person one).
BLAZEPOSE_DETECTORS = ("blazepose", "blazepose-multi")
PASSES = 2  # fit, measure, move: 4 or 6 passes recovered known offsets no better on synthetic detections
MIN_CONFIDENCE = 0.5  # detections below this are not triangulated for the measurement
# The fit the offsets are measured through holds each body tight to the previous frame-set's (0.15 rad
# instead of the app's 0.6), so that a displacement that stays from frame to frame reads as the
# keypoint's offset rather than as a turned part; the shipped offsets were measured so, and with the
# app's looser pull the known offsets of the synthetic test came out less well aimed.
MEASURING = replace(DEFAULT_REFINE, temporal_rot=0.15)
MAX_OFFSET_M = 0.25  # an offset beyond this is not a keypoint convention: a wrong file
# COCO-17's left-right counterparts, and the mirror of the body's own frame (x is its left).
COCO_MIRROR = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
MIRROR_X = np.diag([-1.0, 1.0, 1.0])


class OffsetsError(AppError):
    """A keypoint offsets file is missing, unreadable or has a wrong field."""


@dataclass(frozen=True)
class KeypointOffsets:
    """Offsets ``[17, 3]`` (metres) of ``detector``'s keypoints on the body model whose file has
    the SHA-256 ``body_sha256``, measured on ``source``."""

    detector: str
    body_sha256: str
    offsets: np.ndarray
    source: str


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_offsets(path: Path, found: KeypointOffsets) -> None:
    """Write ``found`` as JSON, one keypoint per line (millimetres)."""
    head = {"format_version": FORMAT_VERSION, "detector": found.detector, "body_sha256": found.body_sha256,
            "source": found.source, "units": "mm, in the frame of the body part each keypoint sits on"}  # fmt: skip
    fields = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in head.items()]
    rows = [
        f"  {json.dumps(name)}: {json.dumps(row)}"
        for name, row in zip(_COCO17, np.round(found.offsets * 1000.0, 1).tolist(), strict=True)
    ]
    Path(path).write_text("{\n" + ",\n".join(fields) + ',\n "offsets_mm": {\n' + ",\n".join(rows) + "\n }\n}\n")


def load_offsets(path: Path) -> KeypointOffsets:
    """Read a file written by :func:`save_offsets` (OffsetsError naming the file and field)."""
    path = Path(path)
    try:
        raw: Any = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OffsetsError(f"keypoint offsets file {path}: cannot be read ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
        raise OffsetsError(f"keypoint offsets file {path}: format_version must be {FORMAT_VERSION}")
    for field in ("detector", "body_sha256", "source"):
        if not isinstance(raw.get(field), str):
            raise OffsetsError(f"keypoint offsets file {path}: field {field} must be a string")
    table = raw.get("offsets_mm")
    if not isinstance(table, dict) or set(table) != set(_COCO17):
        raise OffsetsError(f"keypoint offsets file {path}: field offsets_mm must name the 17 COCO keypoints")
    try:
        offsets = np.array([table[name] for name in _COCO17], np.float64) / 1000.0
    except (TypeError, ValueError) as exc:
        raise OffsetsError(f"keypoint offsets file {path}: offsets_mm must hold [x, y, z] numbers ({exc})") from exc
    if offsets.shape != (17, 3) or not np.isfinite(offsets).all():
        raise OffsetsError(f"keypoint offsets file {path}: offsets_mm must hold [x, y, z] numbers")
    worst = int(np.argmax(np.linalg.norm(offsets, axis=1)))
    if np.linalg.norm(offsets[worst]) > MAX_OFFSET_M:
        raise OffsetsError(f"keypoint offsets file {path}: {_COCO17[worst]} is moved more than {MAX_OFFSET_M * 100:.0f} cm")
    return KeypointOffsets(raw["detector"], raw["body_sha256"], offsets, raw["source"])


def offsets_for(body: BodyModel, detector: str, path: Path = BLAZEPOSE_OFFSETS) -> np.ndarray | None:
    """The offsets to use with ``detector``'s keypoints on ``body``: BlazePose's measured ones on
    the body they were measured for, else None (the body's own keypoints; logged when a
    BlazePose detector meets another body)."""
    if detector not in BLAZEPOSE_DETECTORS or not body.has_keypoints:
        return None
    found = load_offsets(path)
    source = body.source or DEFAULT_BODY
    if not Path(source).is_file() or file_sha256(Path(source)) != found.body_sha256:
        log.info("keypoint offsets %s were measured on another body model than %s: not used", path.name, source)
        return None
    return found.offsets


_TWINS: weakref.WeakKeyDictionary[BodyModel, dict[tuple[torch.dtype, bytes], BodyModel]] = weakref.WeakKeyDictionary()


def offset_body(body: BodyModel, offsets: np.ndarray | None, dtype: torch.dtype | None = None) -> BodyModel:
    """``body`` (in ``dtype``, default its own) whose keypoints carry ``offsets``: a copy made once
    per body, dtype and offsets; ``body`` itself when nothing changes."""
    dtype = dtype or body.joint_template.dtype
    if offsets is None and dtype == body.joint_template.dtype and not body.has_offsets:
        return body
    key = (dtype, b"" if offsets is None else np.asarray(offsets, np.float64).tobytes())
    twins = _TWINS.setdefault(body, {})
    if key not in twins:
        twin = copy.deepcopy(body).to(dtype)
        twin.source = body.source
        twin.set_keypoint_offsets(offsets)
        twins[key] = twin
    return twins[key]


def keypoint_body(model: HeatFormer, dtype: torch.dtype | None = None) -> BodyModel:
    """HeatFormer's body with its detector's keypoint offsets (``model.keypoint_offsets``)."""
    return offset_body(model.body, model.keypoint_offsets, dtype)


# --- measuring them ------------------------------------------------------------------------------


def estimate_offsets(model: HeatFormer, cameras: list[Camera], keypoints: np.ndarray, passes: int = PASSES) -> np.ndarray:
    """Offsets ``[17, 3]`` (metres) of the detections ``keypoints`` ``[T, V, 17, 3]`` (pixels +
    confidence, seen by the calibrated ``cameras``) on ``model``'s body; see the module's doc."""
    from engine.heatformer.inference import estimate_frame
    from engine.triangulate import triangulate_views

    K, R, t, dist = (np.stack([np.asarray(getattr(c, a), np.float64) for c in cameras]) for a in ("K", "R", "t", "dist"))
    points = np.stack([triangulate_views(cameras, kp, MIN_CONFIDENCE).points for kp in keypoints])
    target = np.where((points[..., 3] > 0)[..., None], points[..., :3], np.nan)  # [T, 17, 3] world
    offsets = np.zeros((17, 3))
    saved = model.keypoint_offsets
    try:
        for _ in range(passes):
            model.keypoint_offsets = offsets if offsets.any() else None
            local = []
            previous = None
            for kp, aim in zip(keypoints, target, strict=True):
                hips = aim[[11, 12]]
                frame = estimate_frame(model, kp, K, R, t, dist, hips.mean(0) if np.isfinite(hips).all() else None,
                                       refine=True, previous=previous, settings=MEASURING)  # fmt: skip
                previous = frame if frame.fused else None
                if frame.fused:
                    local.append(_local_residual(keypoint_body(model, torch.float64), frame, aim))
            if not local:
                raise AppError("keypoint offsets: no frame-set gave a body fitted to every view")
            step = np.nanmedian(np.stack(local), axis=0)  # [17, 3]
            step = np.nan_to_num(0.5 * (step + step[list(COCO_MIRROR)] @ MIRROR_X))
            offsets = offsets + step
    finally:
        model.keypoint_offsets = saved
    return offsets


def _local_residual(body: BodyModel, frame: Any, aim: np.ndarray) -> np.ndarray:
    """From the body's keypoints to ``aim`` ``[17, 3]`` (world), in each keypoint's part frame."""
    rot = torch.as_tensor(np.concatenate([frame.orient[None], frame.pose]), dtype=torch.float64)[None]
    betas = torch.as_tensor(frame.betas, dtype=torch.float64)[None]
    with torch.no_grad():
        out = body.joints_rotmat(betas, rot)
    assert out.keypoints is not None and out.transforms is not None
    world = aim - (out.keypoints[0].numpy() + frame.transl)
    parts = out.transforms[0, list(KEYPOINT_PARTS), :, :3].numpy()  # [17, 3, 3] part to world
    return np.einsum("kji,kj->ki", parts, world)  # NaN rows stay NaN


_COCO17 = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
           "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
           "right_ankle")  # fmt: skip
