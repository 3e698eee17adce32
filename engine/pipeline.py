"""The Qt-free pipeline: FrameSet -> 2D detection in every view -> triangulation -> HeatFormer
body -> BodyEstimate.

With a multi-person detector (engine.detect.base.MultiDetector) and a people stage: everyone in
every view -> association across views and tracking (engine.people_stage) -> a body per person
-> ``BodyEstimate.people``; the estimate's own fields then describe the first person.

Results are published to subscribers (callables) with per-stage timings.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from core.camera import Camera, rig_calibrated
from core.types import BodyEstimate, Frame, FrameSet, Keypoints2D, Person
from engine.detect.base import DEFAULT_DETECTOR, Detector, MultiDetector, RegionDetector
from engine.people_stage import PeopleStage, recover_missed

if TYPE_CHECKING:  # torch loads only when a body model is actually used
    from engine.body import BodyModel
    from engine.heatformer.live import LiveBody
    from engine.heatformer.model import HeatFormer
from engine.triangulate import triangulate_views

log = logging.getLogger(__name__)

Subscriber = Callable[[BodyEstimate], None]
# ONNX Runtime's CPU threads for HeatFormer in the pipeline: its body stage runs beside the next
# frame-set's detection (engine.runner), and ORT's idle pool threads spin on the cores the detector
# needs. python -m engine.benchmark on the demo, 2 cores, bodies beside the detection: 4.12 / 4.18
# sets/s with one thread, 3.23 / 3.34 with ORT's default (and 3.74 / 3.51 one set at a time).
# The same holds for torch's OpenMP threads (the refinement, the meshes): the runner's threads
# that run body stages set OpenMP to this many threads for themselves (body_threads_here; the rest
# of the process keeps torch's default). On the 640 px multi-person copy, interleaved with torch's
# default: 8.66 / 8.53 against 8.11 / 8.39 sets/s with torch.set_num_threads (which also lowered
# every thread started later), and 9.17 / 9.48 against 9.32 / 9.18 with this thread-only setting
# (no clear difference in sets/s); the body stage 65-71 against 78-79 ms.
BODY_THREADS = 1
T = TypeVar("T")


def body_threads_here() -> None:
    """torch's CPU threads for the calling thread's work: :data:`BODY_THREADS`, for a thread that
    runs body stages and little else. Set as OpenMP's own per-thread setting (``omp_set_num_threads``
    of the OpenMP library torch ships): ``torch.set_num_threads`` would also lower the count of
    every thread that starts using torch later (an export, say). Where that library is not found,
    nothing changes."""
    import torch

    omp = _openmp()
    if omp is not None:
        torch.get_num_threads()  # torch sets up this thread's count on its first use: before ours, not after
        omp.omp_set_num_threads(BODY_THREADS)


@functools.cache
def _openmp() -> ctypes.CDLL | None:
    """The OpenMP runtime torch is linked with (GNU libgomp in the Linux wheels; LLVM's libomp on
    macOS), or None."""
    import torch

    folder = Path(torch.__file__).parent / "lib"
    for pattern in ("libgomp*.so*", "libomp*.dylib", "libiomp5*"):
        for path in sorted(folder.glob(pattern)):
            try:
                library = ctypes.CDLL(str(path))
            except OSError:
                continue
            if hasattr(library, "omp_set_num_threads"):
                return library
    return None


@dataclass
class Pending:
    """A frame-set through the stages before the body (:meth:`Pipeline.begin`): the estimate so
    far, when processing started, the body stage to run on it (None: keypoints only), whether it
    holds people (the multi-person path), and the bodies' restart to run first (a looping replay
    started again)."""

    estimate: BodyEstimate
    start: float
    body: Callable[[BodyEstimate], object] | None
    people: bool
    restart: Callable[[], None] | None = None


class Pipeline:
    """Turns FrameSets into BodyEstimates.

    cameras: the calibration (or uncalibrated cameras) by name; triangulation runs when every
    camera of a set is calibrated and at least two views are present.
    workers: threads for per-view detection (views run in parallel).
    body_model: the SMPL-format body the estimates are expressed with (``--body-model``).
    body: what turns keypoints into a body after triangulation (a ``LiveBody`` running
    HeatFormer), called with the estimate; None = keypoints only.
    people: the people stage (association and tracking); with a multi-person detector every
    person is found, tracked and given a body (``body`` is then called once per frame-set and fills
    every person, e.g. engine.heatformer.people.PeopleBodies). None = one person (the subject).
    """

    def __init__(
        self,
        detector: Detector,
        cameras: list[Camera],
        workers: int = 2,
        min_confidence: float = 0.3,
        body_model: BodyModel | None = None,
        body: Callable[[BodyEstimate], object] | None = None,
        people: PeopleStage | None = None,
    ) -> None:
        self.detector = detector
        self.people = people if isinstance(detector, MultiDetector) else None
        self._source_index = -1  # the frames' own index in the last set (a replay's loop sends it back)
        self._resting: dict[str, int] = {}  # views left alone by the top-down recovery until a frame-set index
        self.body_model = body_model
        self.body = body
        self.cameras = {c.name: c for c in cameras}
        self.min_confidence = min_confidence
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="detect")
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()  # a calibration swap waits for the detection in progress
        self._finish_lock = threading.Lock()

    @property
    def backend_description(self) -> str:
        """Which runtime runs HeatFormer and why ('' without a body)."""
        if self.body is None:
            return ""
        runner = getattr(self.body, "runner", None)
        return runner.describe() if runner is not None else "torch (cpu) — the model itself"

    @property
    def calibrated(self) -> bool:
        return rig_calibrated(self.cameras.values())

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(estimate)`` for every result; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def set_cameras(self, cameras: list[Camera]) -> None:
        """Switch to new cameras (e.g. a calibration loaded while running): triangulation and the
        body follow from the next frame-set on."""
        with self._lock:
            self.cameras = {c.name: c for c in cameras}
            if self.people is not None:
                self.people = PeopleStage(cameras, self.min_confidence)
            for_cameras = getattr(self.body, "for_cameras", None)
            if for_cameras is not None:
                self.body = for_cameras(cameras)

    def process(self, frameset: FrameSet) -> BodyEstimate:
        """Every stage for one frame-set, published: :meth:`finish` of :meth:`begin`."""
        return self.finish(self.begin(frameset))

    def begin(self, frameset: FrameSet) -> Pending:
        """The stages before the body: detection in every view, then triangulation (one person)
        or association and tracking (people). Calls of :meth:`begin` must come in frame-set order,
        and so must their :meth:`finish`; the next set's :meth:`begin` may run while this one's
        :meth:`finish` does (engine.runner overlaps them), since neither touches the other's state."""
        with self._lock:
            if self.people is not None:
                return self._begin_people(frameset, self.people)
            start = time.perf_counter()
            timings = {"decode": frameset.decode_ms}
            keypoints = self._detect(frameset, timings)
            timings["detect"] = (time.perf_counter() - start) * 1000.0
            estimate = BodyEstimate(frameset, keypoints, timings_ms=timings)
            names = [n for n in frameset.frames if n in self.cameras]
            if self.calibrated and len(names) >= 2:
                t0 = time.perf_counter()
                self._triangulate(estimate, names)
                timings["triangulate"] = (time.perf_counter() - t0) * 1000.0
            return Pending(estimate, start, self.body, people=False)

    def finish(self, pending: Pending) -> BodyEstimate:
        """The body stage of a set from :meth:`begin` (with the body of that moment, so that a
        calibration swapped in between applies from the next set), then the result is published."""
        with self._finish_lock:
            estimate = pending.estimate
            if pending.restart is not None:  # the ids start again: a body state must not pass to whoever gets its id
                pending.restart()
            if pending.body is not None and (estimate.people or not pending.people):  # people: only when someone is there
                t0 = time.perf_counter()
                pending.body(estimate)
                estimate.timings_ms["body"] = (time.perf_counter() - t0) * 1000.0
            if not pending.people:
                if estimate.keypoints3d is not None or any(k.found for k in estimate.keypoints2d.values()):
                    estimate.people = [_subject(estimate)]
            elif estimate.people:
                first = estimate.people[0]
                estimate.keypoints2d = estimate.keypoints2d | first.keypoints2d
                estimate.keypoints3d, estimate.reprojection_px = first.keypoints3d, dict(first.reprojection_px)
                estimate.views, estimate.fused = first.views, first.fused
                estimate.body, estimate.mesh3d = first.body, first.mesh3d
            return self._publish(estimate, pending.start)

    def _publish(self, estimate: BodyEstimate, start: float) -> BodyEstimate:
        timings = estimate.timings_ms
        timings["total"] = estimate.frameset.decode_ms + (time.perf_counter() - start) * 1000.0
        for callback in list(self._subscribers):
            callback(estimate)
        return estimate

    def _begin_people(self, frameset: FrameSet, stage: PeopleStage) -> Pending:
        start = time.perf_counter()
        restart = None
        source_index = min((f.index for f in frameset.frames.values()), default=0)
        if source_index < self._source_index:  # a looping replay started again: people jump back to where they began
            stage.restart()
            self._resting.clear()
            restart = getattr(self.body, "restart", None)  # the bodies restart too, in finish (they may be busy)
        self._source_index = source_index
        timings = {"decode": frameset.decode_ms}
        detections = self._detect_people(frameset, timings)
        timings["detect"] = (time.perf_counter() - start) * 1000.0
        now = frameset.reference_time
        if stage.calibrated and isinstance(self.detector, RegionDetector):
            t0 = time.perf_counter()
            predicted = stage.predicted(now)
            if len(predicted):
                images = {n: f.image for n, f in frameset.frames.items() if n in self.cameras}
                cams = list(self.cameras.values())
                recover_missed(cams, images, detections, predicted, self.detector.detect_region, turn=frameset.index,
                               resting=self._resting)  # fmt: skip
            timings["recover"] = (time.perf_counter() - t0) * 1000.0
        t0 = time.perf_counter()
        people = stage.people(now, detections)
        timings["associate"] = (time.perf_counter() - t0) * 1000.0
        empty = {n: Keypoints2D.empty(n) for n in frameset.frames}
        estimate = BodyEstimate(frameset, empty, timings_ms=timings, people=people)
        return Pending(estimate, start, self.body, people=True, restart=restart)

    def _detect_people(self, frameset: FrameSet, timings: dict[str, float]) -> dict[str, np.ndarray]:
        detector = self.detector
        assert isinstance(detector, MultiDetector)

        def everyone(frame: Frame) -> np.ndarray:
            found = detector.detect_people(frame.camera, frame.image, frame.timestamp)
            return np.stack([k.points for k in found]) if found else np.zeros((0, 17, 3), np.float32)

        return self._per_view(frameset, timings, everyone)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.detector.close()

    def _detect(self, frameset: FrameSet, timings: dict[str, float]) -> dict[str, Keypoints2D]:
        return self._per_view(frameset, timings, lambda frame: self.detector.detect(frame.camera, frame.image))

    def _per_view(self, frameset: FrameSet, timings: dict[str, float], detect: Callable[[Frame], T]) -> dict[str, T]:
        """``detect`` on every view's frame in parallel; each view's milliseconds go to ``detect:<camera>``.
        Views the detector expects to cost more this time (``costly(camera)``, e.g. its full-frame
        pass) start first, so that the workers end together; the result keeps the set's camera order."""

        def run(name: str) -> tuple[str, T, float]:
            t0 = time.perf_counter()
            found = detect(frameset.frames[name])
            return name, found, (time.perf_counter() - t0) * 1000.0

        names = list(frameset.frames)
        costly = getattr(self.detector, "costly", None)
        if costly is not None:
            names.sort(key=lambda name: not costly(name))  # stable: the costly ones first, each group in camera order
        found = {name: (result, ms) for name, result, ms in self._pool.map(run, names)}
        for name in frameset.frames:
            timings[f"detect:{name}"] = found[name][1]
        return {name: found[name][0] for name in frameset.frames}

    def _triangulate(self, estimate: BodyEstimate, names: list[str]) -> None:
        cams = [self.cameras[n] for n in names]
        result = triangulate_views(cams, self._stack(estimate, names), self.min_confidence)
        if result.rejected and isinstance(self.detector, RegionDetector):
            # Those views' trackers follow someone else: look where the other views put the subject.
            for name in result.rejected:
                box = subject_box(self.cameras[name], result.points)
                if box is not None:
                    frame = estimate.frameset.frames[name]
                    estimate.keypoints2d[name] = self.detector.detect_region(name, frame.image, box)
                    log.debug("camera %s: tracker disagreed (%.0f px); re-detected in %s", name, result.errors_px[name], box)
            result = triangulate_views(cams, self._stack(estimate, names), self.min_confidence)
        estimate.keypoints3d = result.points
        estimate.reprojection_px = result.errors_px
        for name in result.rejected:
            estimate.keypoints2d[name] = Keypoints2D.empty(name)  # not the subject: do not show it

    @staticmethod
    def _stack(estimate: BodyEstimate, names: list[str]) -> np.ndarray:
        return np.stack([estimate.keypoints2d[n].points for n in names]).astype(np.float64)


def _subject(estimate: BodyEstimate) -> Person:
    """The single-person pipeline's subject as person 1."""
    seen = {n: k for n, k in estimate.keypoints2d.items() if k.found}
    return Person(1, seen, estimate.keypoints3d, dict(estimate.reprojection_px), estimate.views, estimate.fused,
                  estimate.body, estimate.mesh3d)  # fmt: skip


def subject_box(camera: Camera, points: np.ndarray, margin: float = 0.3) -> tuple[int, int, int, int] | None:
    """Pixel box (x0, y0, x1, y1) around the projection of triangulated ``points`` ``[17, 4]``
    into ``camera``, enlarged by ``margin`` of its size on every side and clipped to the image."""
    ok = np.isfinite(points[:, :3]).all(axis=1) & (points[:, 3] > 0)
    if ok.sum() < 4 or np.any(camera.depth(points[ok, :3]) <= 0):
        return None
    xy = camera.project(points[ok, :3])
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    pad = margin * max(x1 - x0, y1 - y0)
    w, h = camera.image_size
    box = (int(max(0, x0 - pad)), int(max(0, y0 - pad)), int(min(w, x1 + pad)), int(min(h, y1 + pad)))
    return box if box[2] > box[0] and box[3] > box[1] else None


def load_models(
    body_model: Path | None = None, weights: Path | None = None, with_body: bool = True
) -> tuple[BodyModel, HeatFormer | None]:
    """The body model and (``with_body``) HeatFormer, checked in order of cost: the weights file's
    layout, the body model file, the body against HeatFormer's needs, the weights against the
    model. Any bad file fails here with one line naming it, in well under a second, before a
    detector or backend is made. Returns ``(BodyModel, HeatFormer | None)``."""
    from engine.body import BodyModel

    checkpoint = None
    if with_body:
        from engine.heatformer.runtime import read_weights

        checkpoint = read_weights(weights)  # cheap: no model built yet
    model_body = BodyModel.from_file(body_model)
    if checkpoint is None:
        return model_body, None
    from engine.heatformer.runtime import load_heatformer

    return model_body, load_heatformer(checkpoint, model_body)  # checks the body against the weights first


def build_pipeline(
    cameras: list[Camera],
    detector: str | Detector | MultiDetector = DEFAULT_DETECTOR,
    body_model: Path | None = None,
    weights: Path | None = None,
    with_body: bool = True,
    workers: int = 2,
    backend: str = "torch",
    refine: bool = True,
) -> Pipeline:
    """The app's pipeline: the named detector, the body model (default: the bundled one) and,
    unless ``with_body`` is False, HeatFormer (``weights``, default: the bundled ones) turning
    keypoints into a body, on the inference ``backend`` (auto, torch, onnxruntime, tensorrt), then
    (``refine``) fitted to the views' keypoints (engine.heatformer.refine). Bad files and unusable
    backends fail here, before any processing; bad model files before anything heavy (see
    :func:`load_models`)."""
    from engine.detect import create_detector

    model_body, model = load_models(body_model, weights, with_body)
    live: LiveBody | None = None
    if model is not None:
        from engine.backends import runner_or_model
        from engine.backends.base import model_hash
        from engine.heatformer.inference import heatformer_iterations
        from engine.heatformer.live import LiveBody
        from engine.heatformer.runtime import DEFAULT_WEIGHTS

        runner = runner_or_model(backend, model, model_hash(Path(weights or DEFAULT_WEIGHTS), body_model), threads=BODY_THREADS)
        if runner is not None:
            log.info("HeatFormer backend: %s", runner.describe())
            runner.backend(True, heatformer_iterations(refine))  # made now rather than in the first frame-set's body
        live = LiveBody(model, cameras, calibrated=rig_calibrated(cameras), runner=runner, refine=refine)
    # after the model files and the backend: their errors come first; a detector object is used as it is
    found = create_detector(detector, cameras) if isinstance(detector, str) else detector
    if model is not None:  # the refinement compares the body with the detector's keypoints where it marks them
        from engine.heatformer.offsets import offsets_for

        model.keypoint_offsets = offsets_for(model.body, getattr(found, "name", ""))
    if not isinstance(found, MultiDetector):
        return Pipeline(found, cameras, workers=workers, body_model=model_body, body=live)
    from engine.heatformer.people import PeopleBodies

    bodies = None if live is None else PeopleBodies(live)
    return Pipeline(found, cameras, workers=workers, body_model=model_body, body=bodies, people=PeopleStage(cameras))
