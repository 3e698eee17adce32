"""The detector interface and its registry."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from core.camera import Camera
from core.errors import DetectorError
from core.types import Keypoints2D


class Detector(Protocol):
    """Finds the subject's COCO-17 keypoints in one view.

    A detector may keep per-camera state (a tracker per view); ``reset(camera)`` drops it so the
    next call detects from scratch (e.g. after the view was found inconsistent with the others).
    """

    name: str

    def detect(self, camera: str, image: np.ndarray) -> Keypoints2D: ...

    def reset(self, camera: str | None = None) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class RegionDetector(Detector, Protocol):
    """A detector that can also look for the subject inside a given box (x0, y0, x1, y1) px (the
    pipeline asks it when a view's tracker disagrees with the other views)."""

    def detect_region(self, camera: str, image: np.ndarray, box: tuple[int, int, int, int]) -> Keypoints2D: ...


@runtime_checkable
class MultiDetector(Detector, Protocol):
    """Finds everyone in one view.

    ``timestamp`` is the frame's time in seconds (for trackers that follow people over time);
    None uses an internal per-camera counter. Time may go back (a looping replay): the detector
    copes. ``detect`` returns the most salient person (compatibility with :class:`Detector`).
    """

    def detect_people(self, camera: str, image: np.ndarray, timestamp: float | None = None) -> list[Keypoints2D]: ...


DETECTORS: dict[str, Callable[..., Detector]] = {}
DEFAULT_DETECTOR = "blazepose-multi"  # everyone in every view; "blazepose" follows one person per view


def register_detector(name: str) -> Callable[[Callable[..., Detector]], Callable[..., Detector]]:
    """Class decorator adding a detector factory to :data:`DETECTORS`."""

    def add(factory: Callable[..., Detector]) -> Callable[..., Detector]:
        DETECTORS[name] = factory
        return factory

    return add


def create_detector(name: str, cameras: Sequence[Camera] | None = None, **kwargs: object) -> Detector:
    """Create a registered detector by name (``blazepose``, ``blazepose-multi``, ``fake``).

    ``cameras`` is handed to detectors whose constructor takes it (e.g. the fake one).
    """
    _load_builtin()
    try:
        factory = DETECTORS[name]
    except KeyError:
        raise DetectorError(f"unknown detector {name!r} (known: {', '.join(sorted(DETECTORS))})") from None
    if cameras is not None and "cameras" in inspect.signature(factory).parameters:
        kwargs["cameras"] = list(cameras)
    return factory(**kwargs)


def _load_builtin() -> None:
    # Imported here so that importing the registry never loads MediaPipe.
    import engine.detect.blazepose
    import engine.detect.fake
    import engine.detect.multipose  # noqa: F401
