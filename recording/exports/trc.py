"""OpenSim marker file (``.trc``) of one person's :class:`~recording.motion.Motion`, and the named
markers every marker export writes (:func:`markers`, shared with the C3D export).

Markers: the 17 triangulated COCO keypoints (``coco_<name>``, when the motion has them) then the 24
SMPL joints (``smpl_<name>``); NaN where the person had no world body (or a keypoint was not
triangulated). Axes: OpenSim is Y up, so by default our world (Z up) is turned -90 degrees about X:
``(x, y, z) -> (x, z, -y)`` (right-handed, floor at Y = 0); ``up="z"`` keeps our axes. Units are
millimetres by default (``units="m"`` for metres); times are the motion's own (session seconds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.types import COCO17_NAMES, SMPL_JOINT_NAMES
from recording.exports import ExportError, Progress
from recording.motion import Motion

_SCALE = {"m": 1.0, "mm": 1000.0}


def markers(motion: Motion) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Marker names ``[M]``, positions ``[T, M, 3]`` world metres (Z up, NaN where missing) and
    confidences ``[T, M]`` (the keypoint confidence; 1 for a valid SMPL joint, 0 where missing)."""
    names, xyz, conf = [f"smpl_{n}" for n in SMPL_JOINT_NAMES], [motion.joints], [motion.valid[:, None].repeat(24, 1) * 1.0]
    if motion.keypoints3d is not None:
        names = [f"coco_{n}" for n in COCO17_NAMES] + names
        xyz.insert(0, motion.keypoints3d[..., :3])
        conf.insert(0, np.nan_to_num(motion.keypoints3d[..., 3]))
    points = np.concatenate(xyz, axis=1).astype(np.float64)
    points[~motion.valid] = np.nan
    confidence = np.concatenate(conf, axis=1)
    confidence[~np.isfinite(points).all(axis=2)] = 0.0
    return names, points, confidence


def to_up(points: np.ndarray, up: str) -> np.ndarray:
    """``[..., 3]`` points of our Z-up world in the frame with ``up`` ("z": unchanged; "y": ``(x, z, -y)``)."""
    if up == "z":
        return points
    if up == "y":
        return np.stack([points[..., 0], points[..., 2], -points[..., 1]], axis=-1)
    raise ValueError(f"up must be 'y' or 'z', not {up!r}")


def write(motion: Motion, path: str | Path, *, up: str = "y", units: str = "mm", progress: Progress | None = None) -> Path:
    """Write ``motion``'s markers to the TRC file ``path`` (tab-separated, OpenSim's PathFileType 4)."""
    path = Path(path)
    if units not in _SCALE:
        raise ValueError(f"units must be 'm' or 'mm', not {units!r}")
    names, points, _ = markers(motion)
    values = to_up(points, up).reshape(len(motion), -1) * _SCALE[units]
    lines = _header(path.name, motion.fps, len(motion), names, units)
    row = "%d\t%.6f" + ("\t%.6f" if units == "m" else "\t%.3f") * values.shape[1]
    table = np.column_stack([np.arange(1, len(motion) + 1), motion.times, values])
    try:
        with path.open("w", encoding="utf-8", newline="\n") as out:
            out.write("\n".join(lines) + "\n")
            for start in range(0, len(table), 2000):
                out.write("".join((row % tuple(r)).replace("nan", "NaN") + "\n" for r in table[start : start + 2000]))
                if progress is not None:
                    progress(min(1.0, (start + 2000) / len(table)))
    except OSError as exc:
        raise ExportError(f"TRC file {path}: cannot be written ({exc.strerror or exc})") from None
    return path


def _header(name: str, fps: float, frames: int, names: list[str], units: str) -> list[str]:
    rate = f"{fps:.6g}"
    return [
        f"PathFileType\t4\t(X/Y/Z)\t{name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{rate}\t{rate}\t{frames}\t{len(names)}\t{units}\t{rate}\t1\t{frames}",
        "Frame#\tTime\t" + "\t".join(f"{n}\t\t" for n in names).rstrip("\t"),
        "\t\t" + "\t".join(f"X{i}\tY{i}\tZ{i}" for i in range(1, len(names) + 1)),
        "",
    ]
