"""Everyone's motion in a results file or a recorded session, one :class:`Motion` per person: what
every export (recording.exports) writes from.

Sources: a body results ``.npz`` (the headless ``--out`` file, ``engine.evaluate``'s output) or a
recorded session folder, in the results layout of README "Results files" (older files are read
through core.formats.upgrade_results). With the ``people_*`` arrays each track id becomes one
Motion; a file of the single-person layout (``global_orient``, ``joints``...) is person 1.
World frame: Z up, metres; rotations axis-angle (SMPL's ``global_orient`` includes the turn from
SMPL's Y-up body frame to the world).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import AppError
from core.formats import upgrade_results
from core.npzfile import read_npz


class MotionError(AppError):
    """A results file or session has no motion that can be exported."""


@dataclass
class Motion:
    """One person over T frame-sets (NaN where the person had no fused world body: ``valid`` False).

    times ``[T]`` seconds; global_orient ``[T, 3]``, body_pose ``[T, 23, 3]`` axis-angle; transl
    ``[T, 3]`` and joints ``[T, 24, 3]`` world metres; betas ``[10]`` (the median over the valid
    frames: one shape per person); keypoints3d ``[T, 17, 4]`` (triangulated COCO-17 + confidence)
    when the source has them.
    """

    person: int
    times: np.ndarray
    valid: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    transl: np.ndarray
    betas: np.ndarray
    joints: np.ndarray
    keypoints3d: np.ndarray | None = None

    @property
    def fps(self) -> float:
        """The frame rate (the median step of ``times``; 30 for a single frame)."""
        steps = np.diff(self.times)
        steps = steps[steps > 0]
        return float(1.0 / np.median(steps)) if len(steps) else 30.0

    def __len__(self) -> int:
        return len(self.times)

    def span(self) -> Motion:
        """The frames from this person's first valid one to their last (where a per-person file begins and ends)."""
        idx = np.flatnonzero(self.valid)
        if not len(idx):
            return self
        s = slice(int(idx[0]), int(idx[-1]) + 1)
        k3d = None if self.keypoints3d is None else self.keypoints3d[s]
        return Motion(self.person, self.times[s], self.valid[s], self.global_orient[s], self.body_pose[s], self.transl[s],
                      self.betas, self.joints[s], k3d)  # fmt: skip


def load_motions(source: str | Path) -> list[Motion]:
    """Everyone's motion in a results ``.npz`` or a recorded session folder (MotionError naming the
    file and field when there is none), people in increasing id."""
    path = Path(source)
    if path.is_dir():
        from recording.reader import read_results

        arrays = read_results(path).arrays
        where = f"recorded session {path}"
        if not arrays:
            raise MotionError(f"{where}: no results were recorded")
    else:
        where = f"results file {path}"
        arrays = read_npz(path, "results file", MotionError)
    return motions_from_arrays(arrays, where)


def motions_from_arrays(arrays: dict[str, np.ndarray], where: str) -> list[Motion]:
    """The Motions of results arrays (the people_* arrays, else the single-person layout)."""
    try:
        arrays = upgrade_results(arrays, where)
    except AppError as exc:
        raise MotionError(str(exc)) from None
    if "timestamps" not in arrays:
        raise MotionError(f"{where}: has no 'timestamps' (seconds) to time the motion with")
    times = np.asarray(arrays["timestamps"], np.float64).reshape(-1)
    if "people_ids" in arrays:
        motions = _people(arrays, times, where)
    else:
        motions = [_single(arrays, times, where)]
    motions = [m for m in motions if m.valid.any()]
    if not motions:
        raise MotionError(f"{where}: no frame has a world body (the views were uncalibrated, or nobody was seen)")
    return motions


def _people(arrays: dict[str, np.ndarray], times: np.ndarray, where: str) -> list[Motion]:
    ids = np.asarray(arrays["people_ids"])
    T = len(times)
    if ids.ndim != 2 or len(ids) != T:
        raise MotionError(f"{where}: field 'people_ids' must be [T, N] with T = {T}, not {list(ids.shape)}")
    fields = {"people_global_orient": (3,), "people_body_pose": (23, 3), "people_transl": (3,), "people_betas": (10,),
              "people_joints": (24, 3)}  # fmt: skip
    got = {k: _field(arrays, k, (*ids.shape, *shape), where) for k, shape in fields.items()}
    k3d = arrays.get("people_keypoints3d")
    motions = []
    for pid in sorted(int(i) for i in np.unique(ids[ids >= 0])):
        rows, slots = np.nonzero(ids == pid)

        def pick(a: np.ndarray, rows: np.ndarray = rows, slots: np.ndarray = slots) -> np.ndarray:
            out = np.full((T, *a.shape[2:]), np.nan)
            out[rows] = a[rows, slots]
            return out

        person = {k: pick(v) for k, v in got.items()}
        keypoints = pick(np.asarray(k3d, float)) if k3d is not None and k3d.shape[:2] == ids.shape else None
        motions.append(_motion(pid, times, person["people_global_orient"], person["people_body_pose"], person["people_transl"],
                               person["people_betas"], person["people_joints"], keypoints))  # fmt: skip
    return motions


def _single(arrays: dict[str, np.ndarray], times: np.ndarray, where: str) -> Motion:
    if "global_orient" not in arrays:
        raise MotionError(f"{where}: no body parameters (global_orient or people_*): HeatFormer did not run")
    T = len(times)
    shapes = {"global_orient": (3,), "body_pose": (23, 3), "transl": (3,), "betas": (10,), "joints": (24, 3)}
    get = {k: _field(arrays, k, (T, *shape), where) for k, shape in shapes.items()}
    k3d = arrays.get("keypoints3d")
    keypoints = np.asarray(k3d, float) if k3d is not None and k3d.shape == (T, 17, 4) else None
    return _motion(1, times, get["global_orient"], get["body_pose"], get["transl"], get["betas"], get["joints"], keypoints)


def _motion(person: int, times: np.ndarray, orient: np.ndarray, pose: np.ndarray, transl: np.ndarray, betas: np.ndarray,
            joints: np.ndarray, keypoints: np.ndarray | None) -> Motion:  # fmt: skip
    valid = np.isfinite(orient).all(axis=1) & np.isfinite(transl).all(axis=1) & np.isfinite(pose).all(axis=(1, 2))
    shape = np.nanmedian(betas[valid], axis=0) if valid.any() else np.zeros(10)
    return Motion(person, times, valid, orient, pose, transl, shape, joints, keypoints)


def _field(arrays: dict[str, np.ndarray], key: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    if key not in arrays:
        raise MotionError(f"{where}: field {key!r} is missing")
    value = np.asarray(arrays[key], float)
    if value.shape != shape:
        raise MotionError(f"{where}: field {key!r} must have shape {list(shape)}, not {list(value.shape)}")
    return value
