"""2D keypoint detectors: one interface, a registry, a fake and MediaPipe BlazePose."""

from engine.detect.base import DETECTORS, Detector, create_detector, register_detector

__all__ = ["DETECTORS", "Detector", "create_detector", "register_detector"]
