"""Faces hidden (core.privacy) on real demo frames with real detections: the recorded
BlazePose detections of the multi-person trial, and the detector run on the bundled demo."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.privacy import blur_faces, face_box, face_boxes, head_width, hide_boxes

ROOT = Path(__file__).resolve().parents[1]
PEOPLE = np.load(ROOT / "tests" / "data" / "people" / "multi_person_trial_blazepose.npz")["keypoints"]  # [T, V, P, 17, 3]
# Measured by eye on frame 0 of assets/demo_people cam01: the composited woman is seen from behind
# and to her left; her hair spans this box, and her visible cheek and ear this one (x0, y0, x1, y1).
WOMAN_HEAD = (798, 788, 935, 938)
WOMAN_CHEEK = (778, 845, 820, 935)


def frame(folder: str, camera: str, index: int = 0) -> np.ndarray:
    cap = cv2.VideoCapture(str(ROOT / "assets" / folder / "videos" / f"{camera}.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = cap.read()
    cap.release()
    assert ok, f"cannot read frame {index} of {folder}/{camera}"
    return image


def people(t: int, view: int) -> list[np.ndarray]:
    return [k for k in PEOPLE[t, view] if k[:, 2].max() > 0]


def covered(box: tuple[int, int, int, int], region: tuple[int, int, int, int]) -> float:
    """The fraction of ``region`` inside ``box``."""
    w = max(0, min(box[2], region[2]) - max(box[0], region[0]))
    h = max(0, min(box[3], region[3]) - max(box[1], region[1]))
    return w * h / ((region[2] - region[0]) * (region[3] - region[1]))


def detail(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """High-frequency energy: the variance of the Laplacian of the box's grey levels."""
    x0, y0, x1, y1 = box
    return float(cv2.Laplacian(cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def outside(image: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    mask = np.ones(image.shape[:2], bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = False
    return image[mask]


def test_a_head_seen_from_behind_and_aside_gets_a_box_over_the_face_on_a_real_frame() -> None:
    image = frame("demo_people", "cam01")
    (woman,) = people(0, 0)
    box = face_box(woman, (image.shape[1], image.shape[0]))
    assert box is not None
    assert covered(box, WOMAN_CHEEK) == 1.0 and covered(box, WOMAN_HEAD) > 0.9
    width = (box[2] - box[0], box[3] - box[1])
    assert 120 < width[0] < 220 and 140 < width[1] < 240  # about a head, not the body (her shoulders: 195 px apart)


SLOW = pytest.mark.slow  # seeking to frame 60 decodes 60 full-HD frames


@pytest.mark.parametrize(
    ("t", "view", "camera"),
    [(0, 0, "cam01"), (0, 3, "cam04"), pytest.param(60, 3, "cam04", marks=SLOW), pytest.param(60, 1, "cam02", marks=SLOW)],
)
def test_blurring_hides_every_face_and_changes_nothing_else(t: int, view: int, camera: str) -> None:
    image = frame("demo_people", camera, t)
    original = image.copy()
    found = people(t, view)
    boxes = face_boxes(found, (image.shape[1], image.shape[0]))
    assert len(boxes) == len(found) >= 1
    for box, keypoints in zip(boxes, found, strict=True):  # every head keypoint inside its box
        head = keypoints[:5, :2]
        assert ((head >= [box[0], box[1]]) & (head < [box[2], box[3]])).all()
    out = blur_faces(image, found)
    assert np.array_equal(image, original)  # the input is not changed
    assert np.array_equal(outside(out, boxes), outside(original, boxes))  # byte-identical outside
    for box in boxes:
        assert detail(out, box) < 0.05 * detail(original, box), (camera, t, box)
        x0, y0, x1, y1 = box
        assert np.abs(out[y0:y1, x0:x1].astype(int) - original[y0:y1, x0:x1]).mean() > 3


def test_pixelation_leaves_a_few_flat_blocks() -> None:
    image = frame("demo_people", "cam01")
    box = face_box(people(0, 0)[0], (image.shape[1], image.shape[0]))
    assert box is not None
    out = hide_boxes(image, [box], method="pixelate")
    region = out[box[1] : box[3], box[0] : box[2]].reshape(-1, 3)
    assert len(np.unique(region, axis=0)) <= 36  # at most 6 x 6 blocks, each one colour
    assert np.array_equal(outside(out, [box]), outside(image, [box]))
    with pytest.raises(ValueError, match="method 'mosaic'"):
        hide_boxes(image, [box], method="mosaic")


def test_a_partly_visible_head_still_gets_a_box() -> None:
    image = frame("demo_people", "cam01")
    size = (image.shape[1], image.shape[0])
    (woman,) = people(0, 0)
    profile = woman.copy()
    profile[[0, 1, 3], 2] = 0.0  # nose, left eye and left ear hidden: one eye and one ear left
    box = face_box(profile, size)
    assert box is not None and covered(box, WOMAN_CHEEK) > 0.9
    ear_only = woman.copy()
    ear_only[:5, 2] = 0.0
    ear_only[4, 2] = 0.9  # a single head point: the size comes from the shoulders
    box = face_box(ear_only, size)
    assert box is not None and head_width(ear_only) == pytest.approx(0.5 * np.hypot(*(woman[5, :2] - woman[6, :2])))
    assert box[0] < woman[4, 0] < box[2] and box[1] < woman[4, 1] < box[3]
    lone = np.zeros((17, 3), np.float32)
    lone[4] = woman[4]
    assert face_box(lone, size) is None  # one point and nothing to size it by
    headless = woman.copy()
    headless[:5, 2] = 0.1  # below the confidence threshold
    assert face_box(headless, size) is None


def test_the_box_follows_known_geometry_and_is_clipped_to_the_image() -> None:
    keypoints = np.zeros((17, 3), np.float32)
    keypoints[[3, 4]] = [[100, 200, 0.9], [140, 200, 0.9]]  # ears 40 px apart: head 46 px wide
    assert head_width(keypoints) == pytest.approx(46.0)
    assert face_box(keypoints, (640, 480)) == (78, 154, 162, 246)  # centre (120, 200), half sides 41.4 x 46
    assert face_box(keypoints, (130, 220)) == (78, 154, 130, 220)
    keypoints[:, :2] += 1000
    assert face_box(keypoints, (640, 480)) is None  # entirely outside
    with pytest.raises(ValueError, match=r"shape \(17, 2\)"):
        face_box(keypoints[:, :2], (640, 480))


@pytest.mark.slow
def test_the_detector_on_the_bundled_demo_frame_gives_a_box_over_the_face() -> None:
    """BlazePose on frame 0 of assets/demo cam01: the subject faces the camera (his face is
    pixelated in the published video, here at x 432-538, y 372-492)."""
    from engine.detect import create_detector

    image = frame("demo", "cam01")
    detector = create_detector("blazepose")
    try:
        keypoints = detector.detect("cam01", image).points
    finally:
        detector.close()
    box = face_box(keypoints, (image.shape[1], image.shape[0]))
    assert box is not None and covered(box, (432, 372, 538, 492)) == 1.0
    assert (box[2] - box[0]) * (box[3] - box[1]) < 4 * (538 - 432) * (492 - 372)  # a head, not a torso
    out = blur_faces(image, [keypoints])
    assert detail(out, box) < 0.05 * detail(image, box)
    assert np.array_equal(outside(out, [box]), outside(image, [box]))
