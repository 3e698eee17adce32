"""Write the keypoints exchange ``.npz`` (DESIGN.md) from pipeline results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.camera import Camera
from core.errors import AppError
from core.types import BodyEstimate

FORMAT_VERSION = 1


class KeypointsRecorder:
    """Keeps what the exchange file needs from each estimate (never the images, so memory stays
    small on long recordings) and writes it with :meth:`save`."""

    def __init__(self, cameras: list[Camera]) -> None:
        self.cameras = list(cameras)
        self._keypoints: list[np.ndarray] = []
        self._points3d: list[np.ndarray | None] = []
        self._timestamps: list[float] = []
        self._bodies: list[object] = []  # HeatFormer's FrameBody per set, when the pipeline ran it

    def __len__(self) -> int:
        return len(self._timestamps)

    def add(self, estimate: BodyEstimate) -> None:
        empty = np.zeros((17, 3), np.float32)  # a camera left out of a set (no frame near its time)
        kps = [estimate.keypoints2d[c.name].points if c.name in estimate.keypoints2d else empty for c in self.cameras]
        self._keypoints.append(np.stack(kps).astype(np.float32))
        self._points3d.append(None if estimate.keypoints3d is None else estimate.keypoints3d.copy())
        self._timestamps.append(estimate.timestamp)
        self._bodies.append(estimate.body)

    def save(self, path: str | Path) -> None:
        """keypoints float32 ``[T, V, 17, 3]``; K/R/t/dist when calibrated; image_size ``[V, 2]``;
        camera_names; timestamps ``[T]``; keypoints3d ``[T, 17, 3]`` world metres (NaN where not
        triangulated) and keypoints3d_conf ``[T, 17]`` when calibrated; and when the pipeline ran
        HeatFormer, the body results arrays (global_orient, body_pose, betas, transl, joints,
        view_*, valid, fused: see engine.heatformer.inference.results_arrays)."""
        cams = self.cameras
        data: dict[str, np.ndarray] = {
            "format_version": np.array(FORMAT_VERSION),
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
        if self._points3d and all(p is not None for p in self._points3d):
            k3d = np.stack([p for p in self._points3d if p is not None])
            data["keypoints3d"] = k3d[..., :3].astype(np.float32)
            data["keypoints3d_conf"] = k3d[..., 3].astype(np.float32)
        if self._bodies and all(b is not None for b in self._bodies):
            from engine.heatformer.inference import results_arrays

            body = results_arrays(self._bodies, data["timestamps"], [c.name for c in cams])  # type: ignore[arg-type]
            data |= {k: v for k, v in body.items() if k not in data}
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
    """A keypoints exchange file: keypoints ``[T, V, 17, 3]``, camera names, image sizes
    ``[V, 2]``, timestamps ``[T]``, and the calibration (K, R, t, dist) when present."""

    keypoints: np.ndarray
    camera_names: list[str]
    image_size: np.ndarray | None
    timestamps: np.ndarray
    K: np.ndarray | None = None
    R: np.ndarray | None = None
    t: np.ndarray | None = None
    dist: np.ndarray | None = None

    @property
    def calibrated(self) -> bool:
        return self.K is not None and self.R is not None and self.t is not None


def load_keypoints_npz(path: str | Path) -> KeypointsFile:
    """Read and check a keypoints exchange ``.npz`` (ours or another tool's)."""
    path = Path(path)
    if not path.is_file():
        raise ExchangeFileError(f"keypoints file {path}: not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (ValueError, OSError) as exc:
        raise ExchangeFileError(f"keypoints file {path}: not a readable .npz ({exc})") from exc
    if "keypoints" not in data:
        raise ExchangeFileError(f"keypoints file {path}: missing field keypoints")
    kp = data["keypoints"].astype(np.float32)
    if kp.ndim != 4 or kp.shape[2:] != (17, 3):
        raise ExchangeFileError(f"keypoints file {path}: field keypoints has shape {kp.shape}, expected [T, V, 17, 3]")
    T, V = kp.shape[:2]
    names = [str(n) for n in data.get("camera_names", [f"view{i}" for i in range(V)])]
    expected = {
        "K": (V, 3, 3),
        "R": (V, 3, 3),
        "t": (V, 3),
        "image_size": (V, 2),
        "dist": (V, 5),
        "camera_names": (V,),
        "timestamps": (T,),
    }
    for field, shape in expected.items():
        if field in data and data[field].shape != shape:
            raise ExchangeFileError(f"keypoints file {path}: field {field} has shape {data[field].shape}, expected {shape}")
    calib = [k for k in ("K", "R", "t") if k in data]
    if calib and len(calib) != 3:
        raise ExchangeFileError(f"keypoints file {path}: has {', '.join(calib)} but not all of K, R, t")
    return KeypointsFile(
        keypoints=kp,
        camera_names=names,
        image_size=data.get("image_size"),
        timestamps=data["timestamps"] if "timestamps" in data else np.arange(T, dtype=np.float64),
        K=data.get("K"),
        R=data.get("R"),
        t=data.get("t"),
        dist=data.get("dist"),
    )
