"""The versioned file formats of DESIGN.md that more than one package reads or writes.

- The keypoints exchange ``.npz`` (:class:`KeypointsRecorder` writes it, :func:`load_keypoints_npz`
  reads and checks it), ``format_version`` :data:`EXCHANGE_FORMAT_VERSION`.
- The body results arrays (:func:`results_arrays`, :func:`people_arrays`), ``format_version``
  :data:`RESULTS_FORMAT_VERSION`: one layout for the headless ``--out`` file, ``engine.evaluate``'s
  output and a recorded session's merged chunks (README "Results files"); :func:`upgrade_results`
  reads the older layouts into it.
- A recorded session's ``session.json``: :data:`SESSION_FORMAT_VERSION`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.camera import Camera
from core.errors import AppError
from core.geometry import matrix_to_rodrigues
from core.npzfile import read_npz
from core.types import BodyEstimate, FrameBody, Person

# 2: keypoints3d [T, 17, 4] (was [T, 17, 3] + keypoints3d_conf); the --out file is exchange and results file in one
EXCHANGE_FORMAT_VERSION = 2  # the keypoints exchange file
RESULTS_FORMAT_VERSION = 2  # the body results arrays (2: one layout for --out, engine.evaluate and sessions)
# 2: results chunks in the results layout (unprefixed body arrays; 1 wrote them as body_*)
SESSION_FORMAT_VERSION = 2  # a recorded session's session.json (recording.writer writes it, capture.recorded reads it)


class KeypointsRecorder:
    """Keeps what the exchange file needs from each estimate (never the images, so memory stays
    small on long recordings) and writes it with :meth:`save`."""

    def __init__(self, cameras: list[Camera]) -> None:
        self.cameras = list(cameras)
        self._keypoints: list[np.ndarray] = []
        self._points3d: list[np.ndarray | None] = []
        self._timestamps: list[float] = []
        self._bodies: list[FrameBody | None] = []  # HeatFormer's FrameBody per set, when the pipeline ran it
        self._people: list[list[Person]] = []  # everyone tracked, without their display meshes

    def __len__(self) -> int:
        return len(self._timestamps)

    def add(self, estimate: BodyEstimate) -> None:
        empty = np.zeros((17, 3), np.float32)  # a camera left out of a set (no frame near its time)
        kps = [estimate.keypoints2d[c.name].points if c.name in estimate.keypoints2d else empty for c in self.cameras]
        self._keypoints.append(np.stack(kps).astype(np.float32))
        self._points3d.append(None if estimate.keypoints3d is None else estimate.keypoints3d.copy())
        self._timestamps.append(estimate.timestamp)
        self._bodies.append(estimate.body)
        self._people.append(
            [Person(p.id, p.keypoints2d, p.keypoints3d, body=p.body, first_seen=p.first_seen) for p in estimate.people]
        )

    def save(self, path: str | Path) -> None:
        """keypoints float32 ``[T, V, 17, 3]``; K/R/t/dist when calibrated; image_size ``[V, 2]``;
        camera_names; timestamps ``[T]``; keypoints3d ``[T, 17, 4]`` (world metres + confidence, NaN
        where not triangulated) when calibrated; and when the pipeline ran
        HeatFormer, the body results arrays (global_orient, body_pose, betas, transl, joints,
        view_*, valid, fused: see results_arrays); the people tracked, as the ``people_*`` arrays
        (see people_arrays), when there were any."""
        cams = self.cameras
        data: dict[str, np.ndarray] = {
            "format_version": np.array(EXCHANGE_FORMAT_VERSION),
            "keypoints": np.stack(self._keypoints),
            "camera_names": np.array([c.name for c in cams]),
            "image_size": np.array([c.image_size for c in cams], np.int32),
            "timestamps": np.array(self._timestamps, np.float64),
        }
        if all(c.calibrated for c in cams):
            data["K"] = np.stack([c.K for c in cams if c.K is not None]).astype(np.float32)
            data["R"] = np.stack([c.R for c in cams if c.R is not None]).astype(np.float32)
            data["t"] = np.stack([c.t for c in cams if c.t is not None]).astype(np.float32)
            data["dist"] = np.stack([c.dist for c in cams]).astype(np.float32)
        if any(p is not None for p in self._points3d):  # sets before anyone was tracked: NaN
            k3d = np.stack([np.full((17, 4), np.nan) if p is None else p for p in self._points3d])
            data["keypoints3d"] = k3d.astype(np.float32)
        if any(b is not None for b in self._bodies):  # sets without a body (nobody tracked yet): not valid
            bodies = [FrameBody.empty(len(cams)) if b is None else b for b in self._bodies]
            body = results_arrays(bodies, data["timestamps"], [c.name for c in cams])
            data |= {k: v for k, v in body.items() if k not in data}
        if any(self._people):
            data |= people_arrays(self._people, [c.name for c in cams])
        np.savez_compressed(path, **data)


def save_keypoints_npz(path: str | Path, estimates: list[BodyEstimate], cameras: list[Camera]) -> None:
    """Write ``estimates`` to the exchange file at ``path`` (see :meth:`KeypointsRecorder.save`)."""
    recorder = KeypointsRecorder(cameras)
    for estimate in estimates:
        recorder.add(estimate)
    recorder.save(path)


class ExchangeFileError(AppError):
    """A keypoints exchange file is missing, unreadable or has a wrong field."""


@dataclass(frozen=True)
class KeypointsFile:
    """A keypoints exchange file: keypoints ``[T, V, 17, 3]`` (one person) or ``[T, V, P, 17, 3]``
    (P detections per view in no order, zero confidence in empty slots), camera names, image sizes
    ``[V, 2]``, timestamps ``[T]``, and the calibration (K, R, t, dist) when present."""

    keypoints: np.ndarray
    camera_names: list[str]
    image_size: np.ndarray | None
    timestamps: np.ndarray
    K: np.ndarray | None = None
    R: np.ndarray | None = None
    t: np.ndarray | None = None
    dist: np.ndarray | None = None
    timed: bool = True  # the file carried its timestamps (else they are the frame numbers)

    @property
    def calibrated(self) -> bool:
        """The rig rule of core.camera.rig_calibrated: K, R and t for at least two views."""
        return self.K is not None and self.R is not None and self.t is not None and len(self.K) >= 2

    @property
    def multi_person(self) -> bool:
        """The multi-person layout: keypoints ``[T, V, P, 17, 3]``, P unordered detections per view."""
        return self.keypoints.ndim == 5

    def cameras(self, uncalibrated: bool = False) -> list[Camera]:
        """The views as cameras (uncalibrated when the file has no calibration or ``uncalibrated``;
        an image size the file lacks is taken from the detections' extent)."""
        cams = []
        for v, name in enumerate(self.camera_names):
            if self.image_size is not None:
                size = (int(self.image_size[v, 0]), int(self.image_size[v, 1]))
            else:
                xy = self.keypoints[:, v][..., :2][self.keypoints[:, v][..., 2] > 0]
                size = (int(xy[:, 0].max()) + 1, int(xy[:, 1].max()) + 1) if len(xy) else (1, 1)
            if self.calibrated and not uncalibrated:
                assert self.K is not None and self.R is not None and self.t is not None
                dist = self.dist[v] if self.dist is not None else np.zeros(5)
                cams.append(Camera(name, size, self.K[v], dist, self.R[v], self.t[v]))
            else:
                cams.append(Camera(name, size))
        return cams


MAX_PIXELS = 1e5  # no camera has images this large: coordinates beyond are garbage (1e30)
MAX_TRANSLATION_M = 1e4
MAX_DISTORTION = 1e3
CONF_TOLERANCE = 1e-3  # confidences a rounding error outside [0, 1] are clipped; further out, rejected


def load_keypoints_npz(path: str | Path) -> KeypointsFile:
    """Read and check a keypoints exchange ``.npz`` (ours or another tool's).

    Every field is checked when the file is read, so a bad one fails here with a line naming the
    file and the field: shapes agree on T (frames >= 1) and V (views >= 1); numbers are numbers;
    keypoints are finite where confident (NaN coordinates with confidence 0 count as missing and
    read as 0), within 1e5 px, with confidence in [0, 1] (a rounding error outside is clipped,
    anything further is rejected: a file in percent or raw scores would silently weigh views
    wrongly); K is a camera matrix (fx, fy >= 1 px, last row 0 0 1); R is a rotation; t, dist,
    image_size and timestamps are finite and plausible."""
    path = Path(path)
    data = _read(path)
    kp = _keypoints(path, data)
    T, V = kp.shape[:2]
    _check_shapes(path, data, T, V)
    names = _camera_names(path, data, V)
    calib = _calibration(path, data, names)
    return KeypointsFile(
        keypoints=kp,
        camera_names=names,
        image_size=_image_size(path, data),
        timestamps=_finite(path, data, "timestamps") if "timestamps" in data else np.arange(T, dtype=np.float64),
        K=calib.get("K"),
        R=calib.get("R"),
        t=calib.get("t"),
        dist=calib.get("dist"),
        timed="timestamps" in data,
    )


def _fail(path: Path, message: str) -> ExchangeFileError:
    return ExchangeFileError(f"keypoints file {path}: {message}")


def _read(path: Path) -> dict[str, np.ndarray]:
    data = read_npz(path, "keypoints file", ExchangeFileError)
    version = data.get("format_version")
    newest = EXCHANGE_FORMAT_VERSION
    if version is not None and (version.shape != () or version.dtype.kind not in "iu" or not 1 <= int(version) <= newest):
        raise _fail(path, f"field format_version is {version.tolist()!r}; this app reads 1 to {EXCHANGE_FORMAT_VERSION}")
    return data


def _numeric(path: Path, data: dict[str, np.ndarray], field: str) -> np.ndarray:
    arr = data[field]
    if arr.dtype.kind not in "biuf":
        raise _fail(path, f"field {field} holds {arr.dtype} values, expected numbers")
    return arr.astype(np.float64)


def _finite(path: Path, data: dict[str, np.ndarray], field: str) -> np.ndarray:
    arr = _numeric(path, data, field)
    if not np.isfinite(arr).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise _fail(path, f"field {field} has a non-finite value (NaN or infinity) at {list(where)}")
    return arr


def _keypoints(path: Path, data: dict[str, np.ndarray]) -> np.ndarray:
    if "keypoints" not in data:
        raise _fail(path, "missing field keypoints")
    kp = _numeric(path, data, "keypoints")
    if kp.ndim not in (4, 5) or kp.shape[-2:] != (17, 3):
        raise _fail(path, f"field keypoints has shape {kp.shape}, expected [T, V, 17, 3] (one person) or [T, V, P, 17, 3]")
    T, V = kp.shape[:2]
    where = "[frame, view, joint]" if kp.ndim == 4 else "[frame, view, slot, joint]"
    if T == 0 or V == 0:
        raise _fail(path, f"field keypoints has {T} frame(s) and {V} view(s) (shape {kp.shape}); nothing to process")
    conf = kp[..., 2]
    if not np.isfinite(conf).all():
        raise _fail(path, f"field keypoints has a non-finite confidence at {where} {_first(~np.isfinite(conf))}")
    outside = (conf < -CONF_TOLERANCE) | (conf > 1 + CONF_TOLERANCE)
    if outside.any():
        at = _first(outside)
        raise _fail(path, f"field keypoints has confidence {conf[tuple(at)]:.4g} at {where} {at}; "
                          "confidences are in [0, 1]")  # fmt: skip
    kp[..., 2] = np.clip(conf, 0.0, 1.0)
    xy, seen = kp[..., :2], kp[..., 2] > 0
    bad = seen & ~np.isfinite(xy).all(axis=-1)
    if bad.any():
        raise _fail(path, f"field keypoints has a non-finite coordinate at {where} {_first(bad)} (confidence > 0)")
    with np.errstate(invalid="ignore"):
        far = seen & (np.abs(xy) > MAX_PIXELS).any(axis=-1)
    if far.any():
        raise _fail(path, f"field keypoints has a coordinate beyond {MAX_PIXELS:g} px at {where} {_first(far)}")
    kp[..., :2] = np.where(seen[..., None], xy, 0.0)  # missing points: NaN or anything else reads as 0
    return kp.astype(np.float32)


def _first(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.argwhere(mask)[0]]


def _check_shapes(path: Path, data: dict[str, np.ndarray], T: int, V: int) -> None:
    expected = {
        "K": (V, 3, 3), "R": (V, 3, 3), "t": (V, 3), "image_size": (V, 2), "dist": (V, 5), "camera_names": (V,),
        "timestamps": (T,),
    }  # fmt: skip
    for field, shape in expected.items():
        if field in data and data[field].shape != shape:
            raise _fail(path, f"field {field} has shape {data[field].shape}, expected {shape} (T = {T} frames, V = {V} views)")
    calib = [k for k in ("K", "R", "t") if k in data]
    if calib and len(calib) != 3:
        raise _fail(path, f"has {', '.join(calib)} but not all of K, R, t")


def _camera_names(path: Path, data: dict[str, np.ndarray], V: int) -> list[str]:
    if "camera_names" not in data:
        return [f"view{i}" for i in range(V)]
    raw = data["camera_names"]
    if raw.dtype.kind not in "US":
        raise _fail(path, f"field camera_names holds {raw.dtype} values, expected text")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in raw]
    if any(not n.strip() for n in names) or len(set(names)) != len(names):
        raise _fail(path, f"field camera_names must be {V} distinct, non-empty names (got {names})")
    return names


def _image_size(path: Path, data: dict[str, np.ndarray]) -> np.ndarray | None:
    if "image_size" not in data:
        return None
    size = _finite(path, data, "image_size")
    if (size < 1).any() or (size > MAX_PIXELS).any() or not np.array_equal(size, np.round(size)):
        raise _fail(path, f"field image_size must hold whole pixel sizes from 1 to {MAX_PIXELS:g} (got {size.tolist()})")
    return size.astype(np.int64)


def _calibration(path: Path, data: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    if "K" not in data:
        return {}
    out = {k: _finite(path, data, k) for k in ("K", "R", "t")}
    if "dist" in data:
        out["dist"] = _finite(path, data, "dist")
        large = np.abs(out["dist"]) > MAX_DISTORTION
        if large.any():
            raise _fail(path, f"field dist has a coefficient beyond {MAX_DISTORTION:g} (view {_first(large)[0]})")
    for v, name in enumerate(names):
        _check_camera(path, f"view {v} ({name})", out["K"][v], out["R"][v], out["t"][v])
    return out


def _check_camera(path: Path, view: str, K: np.ndarray, R: np.ndarray, t: np.ndarray) -> None:
    if not np.allclose(K[2], [0.0, 0.0, 1.0], atol=1e-6):
        raise _fail(path, f"field K of {view}: last row is {K[2].tolist()}, expected [0, 0, 1]")
    if K[1, 0] != 0:
        raise _fail(path, f"field K of {view}: K[1, 0] is {K[1, 0]:.4g}, expected 0 (a camera matrix is upper triangular)")
    if not (1.0 <= K[0, 0] <= MAX_PIXELS and 1.0 <= K[1, 1] <= MAX_PIXELS):
        raise _fail(path, f"field K of {view}: focal lengths {K[0, 0]:.4g}, {K[1, 1]:.4g} px; expected 1 to {MAX_PIXELS:g} px "
                          "(a singular or zero K)")  # fmt: skip
    if (np.abs(K[:2, 2]) > MAX_PIXELS).any():
        raise _fail(path, f"field K of {view}: principal point {K[:2, 2].tolist()} is beyond {MAX_PIXELS:g} px")
    with np.errstate(over="ignore", invalid="ignore"):
        error = float(np.abs(R @ R.T - np.eye(3)).max())
        det = float(np.linalg.det(R)) if np.isfinite(error) else np.nan
    if not error < 1e-3 or not det > 0:
        raise _fail(path, f"field R of {view} is not a rotation matrix (R R^T differs from I by {error:.3g}, det {det:.3g})")
    if (np.abs(t) > MAX_TRANSLATION_M).any():
        raise _fail(path, f"field t of {view}: {t.tolist()} is beyond {MAX_TRANSLATION_M:g} m")


def results_arrays(frames: list[FrameBody], timestamps: np.ndarray, camera_names: list[str]) -> dict[str, np.ndarray]:
    """The body results arrays of DESIGN.md (NaN where a frame has no fused world body)."""
    T, V = len(frames), len(camera_names)

    def world(name: str, shape: tuple[int, ...], rotation: bool = False) -> np.ndarray:
        out = np.full((T, *shape), np.nan)
        for i, f in enumerate(frames):
            value = getattr(f, name)
            if f.fused and value is not None:
                out[i] = matrix_to_rodrigues(value) if rotation else value
        return out

    def per_view(get: Callable[[FrameBody], np.ndarray]) -> np.ndarray:
        return np.stack([get(f) for f in frames]) if frames else np.zeros((0, V))

    return {
        "global_orient": world("orient", (3,), rotation=True),
        "body_pose": world("pose", (23, 3), rotation=True),
        "betas": world("betas", (10,)),
        "transl": world("transl", (3,)),
        "joints": world("joints", (24, 3)),
        "view_global_orient": per_view(lambda f: matrix_to_rodrigues(f.view_orient)),
        "view_body_pose": per_view(lambda f: matrix_to_rodrigues(f.view_pose)),
        "view_betas": per_view(lambda f: f.view_betas),
        "view_cam": per_view(lambda f: f.view_cam),
        "view_boxes": per_view(lambda f: f.view_boxes),
        "view_valid": per_view(lambda f: f.used),
        "valid": np.array([f.valid for f in frames], bool),
        "fused": np.array([f.fused for f in frames], bool),
        "timestamps": np.asarray(timestamps, np.float64),
        "format_version": np.array(RESULTS_FORMAT_VERSION),
        "camera_names": np.array(camera_names),
    }


BODY_FIELDS = ("global_orient", "body_pose", "betas", "transl", "joints", "view_global_orient", "view_body_pose", "view_betas",
               "view_cam", "view_boxes", "view_valid", "valid", "fused")  # fmt: skip
LEGACY_BODY_PREFIX = "body_"  # session chunks of format 1 kept the body arrays as body_<field>


class ResultsFileError(AppError):
    """Results arrays of a format this version cannot read."""


def upgrade_results(arrays: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """Results arrays of any version in the current layout (RESULTS_FORMAT_VERSION): a format-1
    session's ``body_<field>`` arrays unprefixed, a format-1 ``--out`` file's ``keypoints3d``
    ``[T, 17, 3]`` joined with ``keypoints3d_conf`` ``[T, 17]`` into ``[T, 17, 4]`` (confidence 1
    where a point is finite when there is no keypoints3d_conf), a format-1 session's empty
    ``people_keypoints2d`` slots zero instead of NaN, and ``format_version`` set.
    ResultsFileError names ``where`` when the arrays are of a newer format."""
    version = arrays.get("format_version")
    if version is not None and (np.shape(version) != () or np.asarray(version).dtype.kind not in "iu"
                                or not 1 <= int(version) <= RESULTS_FORMAT_VERSION):  # fmt: skip
        raise ResultsFileError(
            f"{where}: field format_version is {np.asarray(version).tolist()!r}; this version reads 1 to {RESULTS_FORMAT_VERSION}"
        )
    out = dict(arrays)
    for field in BODY_FIELDS:
        old = LEGACY_BODY_PREFIX + field
        if old in out:
            value = out.pop(old)
            out.setdefault(field, value)
    k3d = out.get("keypoints3d")
    if k3d is not None and k3d.ndim == 3 and k3d.shape[1:] == (17, 3):
        conf = out.get("keypoints3d_conf")
        if conf is None or np.shape(conf) != k3d.shape[:2]:
            conf = np.isfinite(k3d).all(axis=2)
        out["keypoints3d"] = np.concatenate([k3d, np.asarray(conf, k3d.dtype)[..., None]], axis=2)
    out.pop("keypoints3d_conf", None)
    k2d = out.get("people_keypoints2d")
    if k2d is not None and k2d.dtype.kind == "f" and np.isnan(k2d).any():  # format-1 sessions padded empty slots with NaN
        out["people_keypoints2d"] = np.nan_to_num(k2d, nan=0.0)
    out["format_version"] = np.array(RESULTS_FORMAT_VERSION)
    return out


PEOPLE_FIELDS: dict[str, tuple[int, ...]] = {
    "people_joints": (24, 3), "people_keypoints3d": (17, 4), "people_global_orient": (3,), "people_body_pose": (23, 3),
    "people_betas": (10,), "people_transl": (3,),
}  # fmt: skip


def people_arrays(frames: list[list[Person]], camera_names: list[str]) -> dict[str, np.ndarray]:
    """The ``people_*`` arrays of DESIGN.md for the people of each frame: ``people_ids`` ``[T, N]``
    (-1 where a slot is empty), ``people_keypoints2d`` ``[T, N, V, 17, 3]`` (each person's
    detection in every view, zero confidence where unseen), ``people_joints`` ``[T, N, 24, 3]`` (world metres),
    ``people_keypoints3d`` ``[T, N, 17, 4]``, and the SMPL parameters ``people_global_orient``,
    ``people_body_pose``, ``people_betas``, ``people_transl``, NaN where a person has no fused
    world body. A person seen in one uncalibrated view has ``people_view`` ``[T, N]`` (the view's
    index in ``camera_names``; -1 for world bodies) and that view's parameters (camera frame, no
    translation). N = the most people in any frame; people keep their frame's order."""
    T = len(frames)
    N = max((len(p) for p in frames), default=0)
    out = {k: np.full((T, N, *shape), np.nan) for k, shape in PEOPLE_FIELDS.items()}
    out["people_keypoints2d"] = np.zeros((T, N, len(camera_names), 17, 3))
    ids, views = np.full((T, N), -1, np.int64), np.full((T, N), -1, np.int64)
    for i, people in enumerate(frames):
        for n, person in enumerate(people):
            ids[i, n] = person.id
            for name, kp in person.keypoints2d.items():
                out["people_keypoints2d"][i, n, camera_names.index(name)] = kp.points
            for key, value in _person_values(person).items():
                out[key][i, n] = value
            body = person.body
            if body is not None and body.valid and not body.fused and len(person.keypoints2d) == 1:
                views[i, n] = camera_names.index(next(iter(person.keypoints2d)))
    return {"people_ids": ids, "people_view": views} | out


def _person_values(person: Person) -> dict[str, np.ndarray]:
    values: dict[str, np.ndarray] = {}
    if person.keypoints3d is not None:
        values["people_keypoints3d"] = person.keypoints3d
    body = person.body
    if body is None:
        return values
    if body.fused:
        assert body.orient is not None and body.pose is not None and body.transl is not None
        assert body.betas is not None and body.joints is not None
        values |= {"people_global_orient": matrix_to_rodrigues(body.orient), "people_body_pose": matrix_to_rodrigues(body.pose),
                   "people_betas": body.betas, "people_transl": body.transl, "people_joints": body.joints}  # fmt: skip
    elif body.valid:
        v = int(np.flatnonzero(body.used)[0])
        values |= {"people_global_orient": matrix_to_rodrigues(body.view_orient[v]),
                   "people_body_pose": matrix_to_rodrigues(body.view_pose[v]), "people_betas": body.view_betas[v]}  # fmt: skip
    return values


def pad_people(arrays: dict[str, np.ndarray], slots: int) -> dict[str, np.ndarray]:
    """``people_*`` arrays widened to ``slots`` people (empty slots as people_arrays leaves them:
    id -1, zero keypoints2d, NaN)."""
    out = dict(arrays)
    for key, value in arrays.items():
        if key.startswith("people_") and value.ndim >= 2 and value.shape[1] < slots:
            fill = -1 if value.dtype.kind in "iu" else 0 if key == "people_keypoints2d" else np.nan
            pad = np.full((value.shape[0], slots - value.shape[1], *value.shape[2:]), fill, value.dtype)
            out[key] = np.concatenate([value, pad], axis=1)
    return out
