"""MediaPipe's person detector alone (engine.detect.persons) on real frames, the regions it gives
the landmark network, and the blanking of people's bodies for the zoomed search."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import DetectorError
from core.types import Keypoints2D
from engine.detect import create_detector
from engine.detect.landmarks import circle_region
from engine.detect.multipose import blank_bodies
from engine.detect.persons import PersonDetector
from tests.test_landmarks import demo_frame

HIPS, SHOULDERS = [11, 12], [5, 6]


@pytest.fixture(scope="module")
def detector():
    found = PersonDetector()
    yield found
    found.close()


@pytest.mark.parametrize("camera", ["cam01", "cam03"])
def test_the_subject_is_found_where_the_landmarks_put_her_hips(detector: PersonDetector, camera: str) -> None:
    """The demo subject (MediaPipe's legacy detector gives her keypoints): the detector's region
    is centred on her hips' midpoint, turned along her body, and holds her whole body."""
    image = demo_frame(camera)
    legacy = create_detector("blazepose")
    try:
        points = legacy.detect(camera, image).points
    finally:
        legacy.close()
    runs = detector.runs
    found = detector.find(image)
    assert found and found[0].score >= 0.5
    region = found[0].region
    hips = points[HIPS, :2].mean(axis=0)
    height = np.ptp(points[:, 1])
    assert np.linalg.norm((region.x - hips[0], region.y - hips[1])) < 0.1 * height
    dx, dy = points[SHOULDERS, :2].mean(axis=0) - hips
    assert abs(region.angle - np.arctan2(dx, -dy)) < 0.35  # along her hips -> shoulders, within 20 degrees
    assert 1.0 * height < region.side < 2.5 * height  # her keypoints all inside, not a room-sized square
    # A part of the frame, placed back where it was: the same person in the same place.
    h, w = image.shape[:2]
    x0, y0 = w // 8, h // 10
    part = detector.find(image[y0:, x0:], (x0, y0))
    assert part and np.hypot(part[0].region.x - region.x, part[0].region.y - region.y) < 0.05 * region.side
    assert detector.runs == runs + 2


def test_nobody_in_a_blank_image(detector: PersonDetector) -> None:
    assert detector.find(np.zeros((480, 640, 3), np.uint8)) == []


def test_circle_region_is_upright_along_the_body() -> None:
    region = circle_region(np.array([100.0, 200.0]), np.array([100.0, 120.0]))  # rim straight above the hips
    assert (region.x, region.y) == (100.0, 200.0) and region.side == pytest.approx(2 * 80 * 1.25) and region.angle == 0.0
    leaning = circle_region(np.array([100.0, 200.0]), np.array([180.0, 200.0]))  # head to the right: lying
    assert leaning.angle == pytest.approx(np.pi / 2)


def test_blanking_a_body_leaves_whoever_stands_beside_her_arm() -> None:
    """A person with an arm stretched out to the right: her body and arm go black, a point beyond
    her hand and one between her hand and her feet (where her box would reach) stay."""
    points = np.zeros((17, 3), np.float32)
    points[:, 2] = 0.9
    points[[0, 1, 2, 3, 4]] = [[100, 50, 0.9]] * 5  # head
    points[5:7, :2] = [[80, 100], [120, 100]]  # shoulders
    points[7:9, :2] = [[70, 160], [170, 100]]  # elbows: the right arm out
    points[9:11, :2] = [[65, 210], [230, 100]]  # wrists
    points[11:13, :2] = [[90, 220], [110, 220]]  # hips
    points[13:15, :2] = [[90, 300], [110, 300]]  # knees
    points[15:17, :2] = [[90, 380], [110, 380]]  # ankles
    image = np.full((400, 400, 3), 200, np.uint8)
    out = blank_bodies(image, [Keypoints2D("cam", points)])
    assert (out[220, 100] == 0).all() and (out[100, 200] == 0).all()  # the body, the arm
    assert (out[100, 260] == 200).all() and (out[330, 230] == 200).all()  # beyond the hand, below it
    assert (image == 200).all()  # a copy


def test_a_closed_detector_says_so_and_closes_once() -> None:
    found = PersonDetector()
    found.close()
    found.close()  # a second close does nothing
    with pytest.raises(DetectorError, match="closed"):
        found.find(np.zeros((64, 64, 3), np.uint8))


@pytest.mark.parametrize("shape", [(1, 1, 3), (0, 5, 3), (2, 3000, 3)])
def test_degenerate_frames_find_nobody(detector: PersonDetector, shape: tuple[int, int, int]) -> None:
    """A frame (or a search tile of one) too small to hold anyone: nobody, no OpenCV error."""
    assert detector.find(np.zeros(shape, np.uint8)) == []
