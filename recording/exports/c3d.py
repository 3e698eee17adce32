"""C3D marker file of one person's :class:`~recording.motion.Motion` (with ``ezc3d``).

Markers are those of :func:`recording.exports.trc.markers` (``coco_<name>`` keypoints when present,
then ``smpl_<name>`` joints), in millimetres (POINT:UNITS "mm", float storage: POINT:SCALE -1),
POINT:RATE the motion's frame rate. A missing marker is NaN with residual -1; a present one has
residual 0 (we have no per-marker fit error). Our world is Z up, as most C3D software expects;
``up="y"`` writes ``(x, z, -y)`` instead.
"""

from __future__ import annotations

from pathlib import Path

import ezc3d
import numpy as np

from recording.exports import ExportError, Progress
from recording.exports.trc import markers, to_up
from recording.motion import Motion


def write(motion: Motion, path: str | Path, *, up: str = "z", progress: Progress | None = None) -> Path:
    """Write ``motion``'s markers to the C3D file ``path``; returns the path."""
    path = Path(path)
    names, points, _ = markers(motion)
    millimetres = to_up(points, up) * 1000.0
    c3d = ezc3d.c3d()
    point = c3d["parameters"]["POINT"]
    point["RATE"]["value"] = [motion.fps]
    point["UNITS"]["value"] = ["mm"]
    point["LABELS"]["value"] = tuple(names)
    point["DESCRIPTIONS"]["value"] = tuple(_description(n) for n in names)
    data = np.ones((4, len(names), len(motion)))
    data[:3] = millimetres.transpose(2, 1, 0)
    missing = ~np.isfinite(data[:3]).all(axis=0)
    c3d["data"]["points"] = data
    c3d["data"]["meta_points"]["residuals"] = np.where(missing, -1.0, 0.0)[None]
    c3d["data"]["meta_points"]["camera_masks"] = np.zeros((7, *missing.shape), bool)
    if progress is not None:
        progress(0.5)
    try:
        path.unlink(missing_ok=True)  # so that the check below cannot see an old file
        c3d.write(str(path))
    except (RuntimeError, OSError) as exc:
        raise ExportError(f"C3D file {path}: cannot be written ({exc})") from None
    if not path.is_file():  # ezc3d says nothing when it cannot open the file
        raise ExportError(f"C3D file {path}: cannot be written (does the folder {path.parent} exist?)")
    if progress is not None:
        progress(1.0)
    return path


def _description(name: str) -> str:
    kind, joint = name.split("_", 1)
    return f"{'triangulated COCO-17 keypoint' if kind == 'coco' else 'SMPL joint'} {joint}"
