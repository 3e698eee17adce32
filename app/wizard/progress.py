"""What the wizard's pages show: the collector as it stood after one frame-set, copied by the
worker thread so that the UI never reads the collector while the worker changes it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calibration.board import Detection
from calibration.collector import BoardCollector
from core.types import Frame


@dataclass(frozen=True)
class CameraProgress:
    """One camera's intrinsics step: board captures, running error, covered cells, readiness."""

    captures: int
    error_px: float | None
    coverage: np.ndarray  # [rows, cols], 1 where a captured board covered the cell
    ready: bool  # intrinsics known (given or collected)
    from_file: bool  # intrinsics given with the cameras


@dataclass(frozen=True)
class Progress:
    """``frames`` and ``detections``: the frame-set and the board in each view (empty before the
    first frame-set); ``links``: captured instants shared by each pair of cameras; ``linked``:
    every camera joined to the others; ``instants``: captured instants; ``frames_seen``: frame-sets
    read so far."""

    cameras: dict[str, CameraProgress]
    links: dict[tuple[str, str], int]
    linked: bool
    instants: int
    frames: dict[str, Frame] = field(default_factory=dict)
    detections: dict[str, Detection | None] = field(default_factory=dict)
    frames_seen: int = 0


def progress_of(
    collector: BoardCollector,
    frames: dict[str, Frame] | None = None,
    detections: dict[str, Detection | None] | None = None,
    frames_seen: int = 0,
) -> Progress:
    """A copy of what ``collector`` holds now, with the frame-set it last saw."""
    cameras = {
        name: CameraProgress(len(s.captures), s.error_px, s.coverage(), collector.intrinsics_ready(name), s.from_file)
        for name, s in collector.cameras.items()
    }
    links = collector.links()
    return Progress(cameras, links, collector.linked(), len(collector.sync_captures), frames or {}, detections or {}, frames_seen)
