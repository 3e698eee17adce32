"""Per-camera intrinsics (pinhole + k1 k2 p1 p2 k3) from board detections, with per-image
errors, automatic rejection of outlier images and a coverage map of where the board was seen."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from calibration.board import Board, Detection
from core.errors import CalibrationError

MIN_IMAGES = 4
MIN_CORNERS = 6
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass
class IntrinsicsResult:
    """K ``[3, 3]``, dist ``[5]``, rms (px, over the images used), per_image_error ``[M]`` (RMS px
    per image; NaN where the board was not found), used ``[M]`` (found and kept), names ``[M]``,
    image_size (w, h), coverage ``[rows, cols]`` (fraction of each image cell covered by a kept
    board; 1 = seen there)."""

    K: np.ndarray
    dist: np.ndarray
    rms: float
    per_image_error: np.ndarray
    used: np.ndarray
    names: list[str]
    image_size: tuple[int, int]
    coverage: np.ndarray

    @property
    def rejected(self) -> list[str]:
        """Images where the board was found but that were left out as outliers."""
        return [n for n, e, u in zip(self.names, self.per_image_error, self.used, strict=True) if np.isfinite(e) and not u]

    def summary(self) -> dict[str, object]:
        return {
            "fx": round(float(self.K[0, 0]), 2), "fy": round(float(self.K[1, 1]), 2),
            "cx": round(float(self.K[0, 2]), 2), "cy": round(float(self.K[1, 2]), 2),
            "dist": [round(float(d), 5) for d in self.dist], "rms_px": round(self.rms, 3),
            "images": len(self.names), "used": int(self.used.sum()), "rejected": self.rejected,
            "not_found": [n for n, e in zip(self.names, self.per_image_error, strict=True) if not np.isfinite(e)],
            "coverage": round(float((self.coverage > 0).mean()), 3),
        }  # fmt: skip


def calibrate_intrinsics(
    board: Board,
    detections: list[Detection | None],
    image_size: tuple[int, int],
    names: list[str] | None = None,
    outlier_factor: float = 3.0,
    max_rejected: float = 0.2,
) -> IntrinsicsResult:
    """Calibrate from ``detections`` (one per image, None where the board was not found). Images
    whose RMS error exceeds ``outlier_factor`` x the median (and 1 px) are dropped and the
    calibration redone, at most ``max_rejected`` of them in all."""
    names = names or [f"image {i}" for i in range(len(detections))]
    found = {i: d for i, d in enumerate(detections) if d is not None and len(d) >= MIN_CORNERS}
    if len(found) < MIN_IMAGES:
        raise CalibrationError(
            f"board not found in {len(detections) - len(found)} of {len(detections)} images "
            f"(need at least {MIN_IMAGES} with the board; check the board definition: {board.kind} "
            f"{board.columns} x {board.rows})"
        )
    objects = board.object_points().astype(np.float32)
    used = set(found)
    budget = int(max_rejected * len(found))
    while True:
        order = sorted(used)
        obj = [objects[found[i].ids] for i in order]
        img = [found[i].corners.astype(np.float32) for i in order]
        # OpenCV takes None for "no initial guess"; its stubs want arrays
        _, K, dist, rvecs, tvecs = cv2.calibrateCamera(obj, img, image_size, None, None)  # type: ignore[call-overload]
        errors = {}
        for i, o, p, r, t in zip(order, obj, img, rvecs, tvecs, strict=True):
            proj, _ = cv2.projectPoints(o, r, t, K, dist)
            errors[i] = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - p) ** 2, axis=1))))
        limit = max(outlier_factor * float(np.median(list(errors.values()))), 1.0)
        worst = max(errors, key=errors.__getitem__)
        if errors[worst] <= limit or budget == 0 or len(used) <= MIN_IMAGES:
            break
        used.discard(worst)
        budget -= 1
    per_image = np.full(len(detections), np.nan)
    for i, d in found.items():  # every found image's error under the final calibration (rejected ones too)
        ok, r, t = cv2.solvePnP(objects[d.ids], d.corners.astype(np.float32), K, dist)
        if ok:
            proj, _ = cv2.projectPoints(objects[d.ids], r, t, K, dist)
            per_image[i] = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - d.corners) ** 2, axis=1))))
    mask = np.zeros(len(detections), bool)
    mask[sorted(used)] = True
    rms = float(np.sqrt(np.mean([errors[i] ** 2 for i in used])))
    kept = [d for i, d in enumerate(detections) if mask[i] and d is not None]
    return IntrinsicsResult(K, dist.ravel()[:5], rms, per_image, mask, names, image_size, coverage(kept, image_size))


def coverage(detections: Iterable[Detection], image_size: tuple[int, int], cells: tuple[int, int] = (8, 6)) -> np.ndarray:
    """``[rows, cols]`` grid over the image: 1 where some board's corner hull covers the cell centre."""
    w, h = image_size
    cols, rows = cells
    mask = _hull_mask(detections, image_size)
    ys = ((np.arange(rows) + 0.5) * h / rows / 4).astype(int)
    xs = ((np.arange(cols) + 0.5) * w / cols / 4).astype(int)
    return mask[np.ix_(ys, xs)].astype(float)


def covered_fraction(detections: Iterable[Detection], image_size: tuple[int, int]) -> float:
    """The fraction of the image inside some board's corner hull (at a quarter of the resolution)."""
    w, h = image_size
    return float(_hull_mask(detections, image_size)[: h // 4, : w // 4].mean())


def _hull_mask(detections: Iterable[Detection], image_size: tuple[int, int]) -> np.ndarray:
    w, h = image_size
    mask = np.zeros((h // 4 + 1, w // 4 + 1), np.uint8)
    for d in detections:
        hull = cv2.convexHull((d.corners / 4).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, (1,))
    return mask


def detect_images(
    board: Board, paths: list[Path], progress: Callable[[int, int], None] | None = None
) -> tuple[list[Detection | None], tuple[int, int]]:
    """Detect the board in image files (all the same size). Returns detections and (w, h)."""
    detections: list[Detection | None] = []
    size: tuple[int, int] | None = None
    for k, path in enumerate(paths):
        image = cv2.imread(str(path))
        if image is None:
            raise CalibrationError(f"image {path}: cannot be read as an image")
        this = (image.shape[1], image.shape[0])
        if size is not None and this != size:
            raise CalibrationError(f"image {path}: is {this[0]}x{this[1]} but the first image is {size[0]}x{size[1]}")
        size = this
        detections.append(board.detect(image))
        if progress:
            progress(k + 1, len(paths))
    if size is None:
        raise CalibrationError("no images given")
    return detections, size


def image_files(folder: Path, pattern: str = "*") -> list[Path]:
    """The images in ``folder`` whose names match ``pattern`` (e.g. ``left*.jpg``), sorted."""
    if not folder.is_dir():
        raise CalibrationError(f"image folder {folder}: not found")
    files = sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CalibrationError(f"image folder {folder}: no images matching {pattern!r} ({', '.join(IMAGE_SUFFIXES)})")
    return files


def detect_video(
    board: Board, path: Path, every: int = 10, progress: Callable[[int, int], None] | None = None
) -> tuple[list[Detection | None], tuple[int, int], list[str]]:
    """Detect the board in every ``every``-th frame of a video."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise CalibrationError(f"video {path}: cannot be opened")
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or 0
    detections: list[Detection | None] = []
    names: list[str] = []
    size: tuple[int, int] | None = None
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0:
                size = (frame.shape[1], frame.shape[0])
                detections.append(board.detect(frame))
                names.append(f"{path.name}#{index}")
                if progress:
                    progress(index + 1, total)
            index += 1
    finally:
        capture.release()
    if size is None:
        raise CalibrationError(f"video {path}: no frames could be read")
    return detections, size, names
