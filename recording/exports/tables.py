"""Everyone's motion as one table, CSV or Parquet: one row per person and frame.

Columns, in order: ``person``, ``frame`` (0-based index into the motion), ``time`` (session
seconds), ``valid`` (0/1; the person had a world body), then ``smpl_<joint>_x|y|z`` for the 24 SMPL
joints, ``coco_<name>_x|y|z|conf`` for the 17 triangulated COCO keypoints (when any motion has them),
with ``smpl=True`` the SMPL parameters ``global_orient_0..2``, ``body_pose_<joint>_0..2`` (23
joints, axis-angle), ``transl_x|y|z`` and ``betas_0..9`` (one shape per person, repeated), and last
``events``: the events at that frame (``type:phase`` joined by ``;``, empty if none; an event
without a person is on every person's row). World frame Z up, metres. Missing values are empty
cells in CSV and nulls (NaN) in Parquet; the Parquet schema metadata holds ``format_version``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.types import COCO17_NAMES
from recording.exports import ExportError, Progress
from recording.exports.trc import SMPL_JOINT_NAMES
from recording.motion import Motion

FORMAT_VERSION = 1
Events = Sequence[Mapping[str, object]]


def write_all(motions: Sequence[Motion], path: str | Path, *, events: Events | None = None,
              progress: Progress | None = None, smpl: bool = True) -> Path:  # fmt: skip
    """Write the table to ``path``: CSV for ``.csv``, Parquet for ``.parquet`` (ExportError otherwise)."""
    path = Path(path)
    writers = {".csv": write_csv_all, ".parquet": write_parquet_all}
    if path.suffix.lower() not in writers:
        raise ExportError(f"table file {path}: the suffix must be .csv or .parquet, not {path.suffix!r}")
    return writers[path.suffix.lower()](motions, path, events=events, progress=progress, smpl=smpl)


def columns(motions: Sequence[Motion], smpl: bool = True) -> list[str]:
    """The value columns (after person, frame, time, valid; before events) of the table of ``motions``."""
    names = [f"smpl_{j}_{a}" for j in SMPL_JOINT_NAMES for a in "xyz"]
    if any(m.keypoints3d is not None for m in motions):
        names += [f"coco_{k}_{a}" for k in COCO17_NAMES for a in ("x", "y", "z", "conf")]
    if smpl:
        names += [f"global_orient_{i}" for i in range(3)]
        names += [f"body_pose_{j}_{i}" for j in SMPL_JOINT_NAMES[1:] for i in range(3)]
        names += [f"transl_{a}" for a in "xyz"] + [f"betas_{i}" for i in range(10)]
    return names


def values(motion: Motion, keypoints: bool, smpl: bool = True) -> np.ndarray:
    """``[T, C]`` the value columns of one motion (:func:`columns`; NaN keypoints where it has none)."""
    T = len(motion)
    parts = [motion.joints.reshape(T, -1)]
    if keypoints:
        k3d = motion.keypoints3d if motion.keypoints3d is not None else np.full((T, 17, 4), np.nan)
        parts.append(k3d.reshape(T, -1))
    if smpl:
        betas = np.broadcast_to(motion.betas, (T, 10))
        parts += [motion.global_orient, motion.body_pose.reshape(T, -1), motion.transl, betas]
    out = np.concatenate(parts, axis=1).astype(np.float64)
    out[~motion.valid] = np.nan
    return out


def event_labels(motion: Motion, events: Events | None) -> list[str]:
    """``[T]`` the ``type:phase`` labels of the events at each frame of ``motion`` (nearest frame)."""
    labels: list[list[str]] = [[] for _ in range(len(motion))]
    step = 1.0 / motion.fps
    for event in events or ():
        person, t = event.get("person"), event.get("t")
        if (person is not None and person != motion.person) or not isinstance(t, int | float) or not len(motion):
            continue
        frame = int(np.argmin(np.abs(motion.times - t)))
        if abs(motion.times[frame] - t) <= step:
            phase = event.get("phase")
            labels[frame].append(f"{event.get('type')}:{phase}" if phase else str(event.get("type")))
    return [";".join(x) for x in labels]


def write_csv_all(motions: Sequence[Motion], path: str | Path, *, events: Events | None = None,
                  progress: Progress | None = None, smpl: bool = True) -> Path:  # fmt: skip
    """Write the table of ``motions`` as CSV (comma-separated, a header row, missing = empty cell)."""
    path = Path(path)
    names = columns(motions, smpl)
    keypoints = any(m.keypoints3d is not None for m in motions)
    row = "%d,%d,%.6f,%d" + ",%.6f" * len(names)
    try:
        with path.open("w", encoding="utf-8", newline="") as out:
            out.write(",".join(["person", "frame", "time", "valid", *names, "events"]) + "\r\n")
            for i, motion in enumerate(motions):
                table = np.column_stack([np.full(len(motion), motion.person), np.arange(len(motion)), motion.times,
                                         motion.valid, values(motion, keypoints, smpl)])  # fmt: skip
                labels = event_labels(motion, events)
                for start in range(0, len(table), 2000):
                    rows = zip(table[start : start + 2000], labels[start : start + 2000], strict=True)
                    out.write("".join(_csv_row(row % tuple(r), label) for r, label in rows))
                    if progress is not None:
                        progress((i + min(1.0, (start + 2000) / max(len(table), 1))) / len(motions))
    except OSError as exc:
        raise ExportError(f"CSV file {path}: cannot be written ({exc.strerror or exc})") from None
    return path


def _csv_row(numbers: str, label: str) -> str:
    numbers = numbers.replace("nan", "")
    if any(c in label for c in ',"\r\n'):
        label = '"' + label.replace('"', '""') + '"'
    return f"{numbers},{label}\r\n"


def write_parquet_all(motions: Sequence[Motion], path: str | Path, *, events: Events | None = None,
                      progress: Progress | None = None, smpl: bool = True) -> Path:  # fmt: skip
    """Write the table of ``motions`` as Parquet (values float32, time float64; NaN where missing)."""
    path = Path(path)
    names = columns(motions, smpl)
    keypoints = any(m.keypoints3d is not None for m in motions)
    batches = []
    for i, motion in enumerate(motions):
        table = values(motion, keypoints, smpl).astype(np.float32)
        arrays = [pa.array(np.full(len(motion), motion.person, np.int32)), pa.array(np.arange(len(motion), dtype=np.int32)),
                  pa.array(motion.times.astype(np.float64)), pa.array(motion.valid.astype(bool))]  # fmt: skip
        arrays += [pa.array(table[:, c]) for c in range(table.shape[1])]
        arrays.append(pa.array(event_labels(motion, events), pa.string()))
        batches.append(pa.RecordBatch.from_arrays(arrays, names=["person", "frame", "time", "valid", *names, "events"]))
        if progress is not None:
            progress(0.5 * (i + 1) / len(motions))
    if not batches:
        raise ExportError(f"Parquet file {path}: there is no motion to write")
    metadata = {"format_version": str(FORMAT_VERSION), "units": "m", "up": "z"}
    table = pa.Table.from_batches(batches).replace_schema_metadata(metadata)
    try:
        pq.write_table(table, path, compression="zstd")
    except OSError as exc:
        raise ExportError(f"Parquet file {path}: cannot be written ({exc})") from None
    if progress is not None:
        progress(1.0)
    return path
