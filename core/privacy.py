"""Faces hidden in images: a head box from a person's COCO-17 keypoints, and that box blurred or
pixelated in a copy of the image (everything outside the boxes byte-identical).

The box is built from the head keypoints (nose, eyes, ears) seen with enough confidence. Its size
comes from the largest of several head-size estimates, since a projection only ever shortens a
distance: ear to ear, eye to eye, eye or nose to ear (a profile), the shoulder width, and, with a
single head point and no shoulders, the extent of the body. It is generous on purpose (hiding hair
or a collar is harmless, a visible face is not). A person whose head keypoints were all missed gets
no box.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels; x1, y1 exclusive

NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR, LEFT_SHOULDER, RIGHT_SHOULDER = 0, 1, 2, 3, 4, 5, 6
HEAD = (NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR)
MIN_CONFIDENCE = 0.3
# Head width from a keypoint distance (adult proportions, rounded up): ears ~15 cm apart, eyes
# ~6.3 cm, eye or nose to the ear of its side ~9 cm in profile, shoulder joints ~35 cm; the body
# (nose to ankles) ~150 cm.
HEAD_PER_DISTANCE = {"ears": 1.15, "eyes": 2.6, "profile": 1.9, "shoulders": 0.5, "body": 0.12}
HALF_WIDTH, HALF_HEIGHT = 0.9, 1.0  # the box's half sides, in head widths
METHODS = ("blur", "pixelate")


def _distance(points: np.ndarray, seen: np.ndarray, a: int, b: int) -> float | None:
    if not (seen[a] and seen[b]):
        return None
    return float(np.hypot(*(points[a, :2] - points[b, :2])))


def head_width(keypoints: np.ndarray, min_confidence: float = MIN_CONFIDENCE) -> float | None:
    """The head's width in pixels estimated from ``keypoints`` ``[17, 3]`` (None: no scale)."""
    seen = keypoints[:, 2] > min_confidence
    d = lambda a, b: _distance(keypoints, seen, a, b)  # noqa: E731
    estimates = [
        (d(LEFT_EAR, RIGHT_EAR), HEAD_PER_DISTANCE["ears"]),
        (d(LEFT_EYE, RIGHT_EYE), HEAD_PER_DISTANCE["eyes"]),
        (d(LEFT_EYE, LEFT_EAR), HEAD_PER_DISTANCE["profile"]),
        (d(RIGHT_EYE, RIGHT_EAR), HEAD_PER_DISTANCE["profile"]),
        (d(NOSE, LEFT_EAR), HEAD_PER_DISTANCE["profile"]),
        (d(NOSE, RIGHT_EAR), HEAD_PER_DISTANCE["profile"]),
        (d(LEFT_SHOULDER, RIGHT_SHOULDER), HEAD_PER_DISTANCE["shoulders"]),
    ]
    widths = [distance * factor for distance, factor in estimates if distance]
    if widths:
        return max(widths)
    if seen.sum() >= 2:  # one head point and no shoulders: the body's extent
        extent = np.ptp(keypoints[seen, :2], axis=0).max()
        return float(extent) * HEAD_PER_DISTANCE["body"] if extent > 0 else None
    return None


def face_box(keypoints: np.ndarray, image_size: tuple[int, int], min_confidence: float = MIN_CONFIDENCE) -> Box | None:
    """The box hiding one person's face, clipped to the image (``image_size`` = width, height), or
    None when no head keypoint was seen (or no head size can be told).

    keypoints: ``[17, 3]`` COCO-17 (x px, y px, confidence)."""
    keypoints = np.asarray(keypoints, np.float64)
    if keypoints.shape != (17, 3):
        raise ValueError(f"face_box: keypoints have shape {keypoints.shape}, expected [17, 3]")
    head = keypoints[list(HEAD)]
    head = head[(head[:, 2] > min_confidence) & np.isfinite(head[:, :2]).all(axis=1)]
    width = head_width(keypoints, min_confidence) if len(head) else None
    if not width:
        return None
    low, high = head[:, :2].min(axis=0), head[:, :2].max(axis=0)
    centre = (low + high) / 2
    half = np.maximum([HALF_WIDTH * width, HALF_HEIGHT * width], (high - low) / 2 + 0.3 * width)
    x0, y0 = np.floor(centre - half).astype(int)
    x1, y1 = np.ceil(centre + half).astype(int)
    w, h = image_size
    box = (max(0, x0), max(0, y0), min(w, x1), min(h, y1))
    return box if box[2] > box[0] and box[3] > box[1] else None


def face_boxes(
    people_keypoints: Sequence[np.ndarray], image_size: tuple[int, int], min_confidence: float = MIN_CONFIDENCE
) -> list[Box]:
    """The face box of each person that has one (see :func:`face_box`)."""
    boxes = (face_box(k, image_size, min_confidence) for k in people_keypoints)
    return [b for b in boxes if b is not None]


def hide_boxes(image: np.ndarray, boxes: Sequence[Box], method: str = "blur") -> np.ndarray:
    """A copy of ``image`` ``[H, W, 3]`` with each box blurred (sigma about a quarter of the box's
    shorter side) or pixelated (at most 6 blocks across); the input is never changed and is returned
    as is when there is no box. Pixels outside the boxes are untouched."""
    if method not in METHODS:
        raise ValueError(f"hide_boxes: method {method!r}, expected one of {', '.join(METHODS)}")
    if not boxes:
        return image
    out = image.copy()
    for x0, y0, x1, y1 in boxes:
        region = out[y0:y1, x0:x1]
        if region.size:
            out[y0:y1, x0:x1] = _blurred(region) if method == "blur" else _pixelated(region)
    return out


def _blurred(region: np.ndarray, cells: int = 6) -> np.ndarray:
    """A Gaussian blur with a sigma of about a quarter of the region's shorter side, done at low
    resolution (shorter side ``cells`` pixels) and scaled back up smoothly: the cost of a few
    copies of the region, whatever its size."""
    h, w = region.shape[:2]
    scale = cells / max(1, min(h, w))
    if scale >= 1:
        return cv2.GaussianBlur(region, (0, 0), max(1.0, min(h, w) / 4), borderType=cv2.BORDER_REPLICATE)
    small = cv2.resize(region, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), cells / 4, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _pixelated(region: np.ndarray, blocks: int = 6) -> np.ndarray:
    h, w = region.shape[:2]
    small = cv2.resize(region, (max(1, w * blocks // max(h, w)), max(1, h * blocks // max(h, w))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def blur_faces(
    image: np.ndarray, people_keypoints: Sequence[np.ndarray], method: str = "blur", min_confidence: float = MIN_CONFIDENCE
) -> np.ndarray:
    """``image`` ``[H, W, 3]`` with every person's face hidden (see :func:`face_box`,
    :func:`hide_boxes`); ``people_keypoints``: one ``[17, 3]`` array per person, in this image's
    pixels."""
    return hide_boxes(image, face_boxes(people_keypoints, (image.shape[1], image.shape[0]), min_confidence), method)
