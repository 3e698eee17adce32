"""BlazePose on real frames of the bundled demo, and the detector registry."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import DetectorError
from core.types import COCO17_NAMES
from engine.detect import DETECTORS, create_detector

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo" / "videos"
I = {name: i for i, name in enumerate(COCO17_NAMES)}


def demo_frame(camera: str, index: int = 0) -> np.ndarray:
    cap = cv2.VideoCapture(str(DEMO / f"{camera}.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = cap.read()
    cap.release()
    assert ok
    return image


@pytest.fixture(scope="module")
def blazepose():
    detector = create_detector("blazepose")
    yield detector
    detector.close()


def test_registry_knows_builtins_and_rejects_unknown() -> None:
    create_detector("fake")
    assert {"fake", "blazepose"} <= set(DETECTORS)
    with pytest.raises(DetectorError, match="unknown detector 'nope'"):
        create_detector("nope")


@pytest.mark.parametrize("camera", ["cam01", "cam03"])
def test_blazepose_finds_the_subject_on_a_real_frame(blazepose, camera: str) -> None:
    image = demo_frame(camera)
    h, w = image.shape[:2]
    kp = blazepose.detect(camera, image).points
    assert kp.shape == (17, 3) and kp.dtype == np.float32
    body = [
        I[n]
        for n in (
            "left_shoulder",
            "right_shoulder",
            "left_hip",
            "right_hip",
            "left_knee",
            "right_knee",
            "left_ankle",
            "right_ankle",
        )
    ]
    assert np.all(kp[body, 2] > 0.5), kp[body, 2]
    assert np.all((kp[:, 0] >= 0) & (kp[:, 0] < w) & (kp[:, 1] >= 0) & (kp[:, 1] < h))
    # Image y grows downwards: head above shoulders above hips above knees above ankles.
    y = kp[:, 1]
    assert y[I["nose"]] < y[I["left_shoulder"]] < y[I["left_hip"]] < y[I["left_knee"]] < y[I["left_ankle"]]
    assert y[I["right_shoulder"]] < y[I["right_hip"]] < y[I["right_knee"]] < y[I["right_ankle"]]
    # A standing adult: ankle-to-nose span is a large part of the portrait frame.
    assert 0.25 * h < y[[I["left_ankle"], I["right_ankle"]]].max() - y[I["nose"]] < 0.9 * h


def test_blazepose_region_finds_the_subject_and_maps_back(blazepose) -> None:
    image = demo_frame("cam04")
    full = blazepose.detect("cam04", image).points
    x0, y0 = int(full[:, 0].min() - 150), int(full[:, 1].min() - 150)
    x1, y1 = int(full[:, 0].max() + 150), int(full[:, 1].max() + 150)
    box = (max(0, x0), max(0, y0), min(image.shape[1], x1), min(image.shape[0], y1))
    region = blazepose.detect_region("cam04", image, box).points
    ok = (full[:, 2] > 0.7) & (region[:, 2] > 0.7)
    assert ok.sum() >= 10
    assert np.median(np.linalg.norm(region[ok, :2] - full[ok, :2], axis=1)) < 15.0


def test_blazepose_on_an_empty_image_finds_nobody(blazepose) -> None:
    kp = blazepose.detect("blank", np.full((480, 640, 3), 127, np.uint8))
    assert not kp.found
