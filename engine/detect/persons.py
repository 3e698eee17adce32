"""BlazePose's person detector alone: where the people in an image are, as the regions the
landmark network (engine.detect.landmarks) then looks at.

The mediapipe wheel carries the detector's network (``pose_detection.tflite``, Apache-2.0,
Google) and, compiled in, MediaPipe's ``PoseDetectionCpu`` subgraph that runs it (letterboxing,
the SSD anchors, non-maximum suppression). The Tasks API runs it only together with the landmark
model (and its segmentation) for every person found; here it runs as a graph of its own, so that
the landmarks of someone already followed are not computed twice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from core.errors import DetectorError
from engine.detect.blazepose import _quiet_native_stderr
from engine.detect.landmarks import Region, circle_region

GRAPH = """
input_stream: "image"
output_stream: "detections"
node {
  calculator: "PoseDetectionCpu"
  input_stream: "IMAGE:image"
  output_stream: "DETECTIONS:detections"
}
"""


@dataclass(frozen=True)
class Person:
    """A person the detector found: the region around them (as the landmark network takes it)
    and the detector's score."""

    region: Region
    score: float


class PersonDetector:
    """One graph (one camera: a graph runs one image at a time). ``find`` returns everyone the
    detector sees in a BGR image (score >= 0.5, the subgraph's threshold), most confident first."""

    def __init__(self) -> None:
        try:
            from google.protobuf import text_format
            from mediapipe.framework import calculator_pb2
            from mediapipe.python import solution_base

            config = text_format.Parse(GRAPH, calculator_pb2.CalculatorGraphConfig())
            with _quiet_native_stderr():
                self._graph: Any = solution_base.SolutionBase(graph_config=config, outputs=["detections"])
        except (ImportError, RuntimeError, ValueError) as exc:
            raise DetectorError(f"cannot start MediaPipe's person detector (mediapipe 0.10.21 needed): {exc}") from exc
        self._lock = threading.Lock()
        self._first = True
        self.runs = 0  # how many images it looked at (for tests and benchmarks)

    def find(self, image: np.ndarray, offset: tuple[int, int] = (0, 0)) -> list[Person]:
        """The people in ``image`` (BGR); their regions in the coordinates of a larger image of
        which ``image`` is the part at ``offset`` = (x, y) px."""
        h, w = image.shape[:2]
        if h < 2 or w < 2:
            return []  # nothing to look at (a tile of a tiny frame)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        with self._lock:
            if self._graph is None:
                raise DetectorError("the person detector was closed")
            self.runs += 1
            if self._first:
                self._first = False
                with _quiet_native_stderr():  # the first run prints TFLite banners
                    result = self._graph.process({"image": rgb})
            else:
                result = self._graph.process({"image": rgb})
        found = []
        for detection in result.detections or []:
            points = detection.location_data.relative_keypoints
            centre = np.array([points[0].x * w + offset[0], points[0].y * h + offset[1]])
            rim = np.array([points[1].x * w + offset[0], points[1].y * h + offset[1]])
            found.append(Person(circle_region(centre, rim), float(detection.score[0])))
        return sorted(found, key=lambda p: -p.score)

    def close(self) -> None:
        """Stop the graph (a second call does nothing)."""
        if self._graph is not None:
            self._graph.close()
            self._graph = None
