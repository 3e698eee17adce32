"""BlazePose's landmark network alone, on a body-aligned square region of the image.

MediaPipe follows a person from frame to frame without its person detector: the landmark
network's two auxiliary points (the hips' midpoint and a point on the circle around the body)
give the next frame's region. The Tasks API does that only for all the people of a view together,
and it merges regions of people side by side; the detector here follows each person on their
own, with this class, and runs the person detector only now and then to find newcomers.

The network is BlazePose full's landmark model from the mediapipe wheel (Apache-2.0, Google),
converted to ONNX and cut down to the landmarks, the pose flag and the landmarks' heatmaps (the
segmentation head is not computed, which halves the time): ``assets/models/blazepose/`` has the
file, its licence and attribution, and ``tools/build_blazepose_onnx.py`` rebuilds it. OpenVINO runs
it (in bfloat16 where the CPU computes that natively: about 5 against 9 ms a run on the 2-core
machine, with the landmarks 0.27 px median from full precision's in the 256 px input); ONNX Runtime
runs it where OpenVINO is not installed, or when asked.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.errors import DetectorError
from core.paths import MODELS_DIR
from core.privacy import Box
from engine.detect.blazepose import BLAZEPOSE_TO_COCO17

log = logging.getLogger(__name__)

LANDMARK_MODEL = MODELS_DIR / "blazepose" / "pose_landmark_full_landmarks.onnx"
INPUT = 256  # the network's square input (px)
LANDMARKS = 39  # 33 body landmarks and 6 auxiliary points, 5 numbers each
CENTRE, RIM = 33, 34  # auxiliary points: the hips' midpoint, a point on the circle around the body
REGION_SCALE = 1.25  # the region's side: this times the circle's diameter (as MediaPipe's pose graphs)
HEATMAP_WINDOW = 7  # a landmark is refined from its heatmap in this many cells around it (as MediaPipe)
HEATMAP_MIN = 0.5  # ... when the window's highest probability reaches this
MAX_ZOOM_OUT = 1.5  # a region more than this times the input's side is first shrunk with area averaging
HIPS, SHOULDERS = [11, 12], [5, 6]  # COCO-17
RUNTIME_VARIABLE = "ROOM_CAPTURE_LANDMARKS_RUNTIME"  # openvino, onnxruntime or auto (the default)
PRECISION_VARIABLE = "ROOM_CAPTURE_LANDMARKS_PRECISION"  # f32: full precision even where the CPU has bfloat16


@dataclass(frozen=True)
class Region:
    """A square in the image: centre (px), side (px), and the angle (rad) by which the image is
    turned so that the body stands upright in it (positive: the body leans to the right)."""

    x: float
    y: float
    side: float
    angle: float = 0.0


@dataclass(frozen=True)
class Landmarks:
    """One run's answer: COCO-17 keypoints ``[17, 3]`` (px in the image, visibility), the
    probability that a body is in the region (``presence``), and the region to look at next."""

    points: np.ndarray
    presence: float
    next_region: Region


def region_around(points: np.ndarray, min_confidence: float = 0.3) -> Region | None:
    """A first region for a person known by COCO-17 keypoints ``[17, 3]``: centred on the hips,
    upright along hips -> shoulders, wide enough for every confident keypoint. None when the hips
    or shoulders are not seen. (The network's own points replace it after one run.)"""
    seen = points[:, 2] > min_confidence
    if not (seen[HIPS].any() and seen[SHOULDERS].any()) or seen.sum() < 4:
        return None
    hips = points[HIPS][seen[HIPS], :2].mean(axis=0)
    shoulders = points[SHOULDERS][seen[SHOULDERS], :2].mean(axis=0)
    radius = float(np.linalg.norm(points[seen, :2] - hips, axis=1).max())
    if radius < 4.0:
        return None
    return _aligned(hips, shoulders, 2.0 * radius * REGION_SCALE)


def region_in_box(box: Box) -> Region:
    """A first, upright region for someone expected inside ``box`` = (x0, y0, x1, y1) px."""
    x0, y0, x1, y1 = box
    return Region((x0 + x1) / 2.0, (y0 + y1) / 2.0, float(max(x1 - x0, y1 - y0)))


def circle_region(centre: np.ndarray, rim: np.ndarray) -> Region:
    """The region of the body in the circle around ``centre`` (the hips' midpoint, px) through
    ``rim`` (towards the head): ``REGION_SCALE`` times the circle's diameter, upright along
    centre -> rim (as MediaPipe makes it from the landmark network's auxiliary points and from its
    person detector's first two keypoints)."""
    side = 2.0 * float(np.linalg.norm(np.asarray(rim) - np.asarray(centre))) * REGION_SCALE
    return _aligned(np.asarray(centre, float), np.asarray(rim, float), max(side, 8.0))


def _aligned(centre: np.ndarray, towards: np.ndarray, side: float) -> Region:
    """The square of ``side`` centred on ``centre``, turned so that ``towards`` is straight above it."""
    dx, dy = towards - centre
    return Region(float(centre[0]), float(centre[1]), side, float(np.arctan2(dx, -dy)))


class LandmarkNetwork:
    """The landmark network on the CPU, one thread per call; calls from several threads (views
    detected in parallel) run side by side, up to ``streams`` at once (default: one per CPU core,
    at most 8).

    ``runtime``: ``"openvino"``, ``"onnxruntime"`` or ``"auto"`` (the default: OpenVINO, or ONNX
    Runtime where OpenVINO is not installed or cannot load the network, with a warning).
    ``precision``: None for the runtime's own choice on this CPU (OpenVINO: bfloat16 where the CPU
    has it natively, float32 elsewhere, including where OpenVINO would pick float16; ONNX Runtime:
    float32), or ``"f32"`` for full precision everywhere. The environment variables
    :data:`RUNTIME_VARIABLE` and :data:`PRECISION_VARIABLE` set them for the whole app.
    ``self.runtime`` and ``self.precision`` say what runs."""

    def __init__(
        self,
        path: Path = LANDMARK_MODEL,
        threads: int = 1,
        runtime: str | None = None,
        streams: int | None = None,
        precision: str | None = None,
    ) -> None:
        runtime = runtime or os.environ.get(RUNTIME_VARIABLE) or "auto"
        precision = precision or os.environ.get(PRECISION_VARIABLE) or None
        if runtime not in ("auto", "openvino", "onnxruntime"):
            raise DetectorError(
                f"unknown runtime {runtime!r} for the pose landmark network "
                f"(runtime or ${RUNTIME_VARIABLE}: openvino, onnxruntime or auto)"
            )
        if precision not in (None, "f32"):
            raise DetectorError(
                f"unknown precision {precision!r} for the pose landmark network "
                f"(precision or ${PRECISION_VARIABLE}: f32, or unset)"
            )
        if not path.exists():
            raise DetectorError(f"the pose landmark network {path} is missing (it is part of the repository)")
        streams = streams or max(1, min(os.cpu_count() or 1, 8))
        chosen = runtime if runtime != "auto" else "openvino" if _installed("openvino") else "onnxruntime"
        try:
            self._infer, self.precision = self._load(chosen, path, threads, streams, precision)
        except DetectorError:
            if runtime != "auto" or chosen != "openvino":
                raise
            log.warning("the pose landmark network runs on ONNX Runtime: OpenVINO cannot load it", exc_info=True)
            chosen = "onnxruntime"
            self._infer, self.precision = self._load(chosen, path, threads, streams, precision)
        self.runtime = chosen
        # full precision for the looks that decide whether someone is there (see run)
        self._full: Callable[[np.ndarray], list[np.ndarray]] | None = self._infer if self.precision == "f32" else None
        self._make_full = lambda: self._load(chosen, path, threads, streams, "f32")[0]
        self._lock = threading.Lock()
        self.runs = 0  # how many times the network ran (for tests and benchmarks)

    def _load(
        self, runtime: str, path: Path, threads: int, streams: int, precision: str | None
    ) -> tuple[Callable[[np.ndarray], list[np.ndarray]], str]:
        try:
            if runtime == "openvino":
                return self._openvino(path, threads, streams, precision)
            return self._onnxruntime(path, threads)
        except Exception as exc:  # the runtimes raise their own exception types
            hint = f" (${RUNTIME_VARIABLE}=onnxruntime runs it on ONNX Runtime instead)" if runtime == "openvino" else ""
            raise DetectorError(f"cannot load the pose landmark network {path} with {runtime}: {exc}{hint}") from exc

    def _onnxruntime(self, path: Path, threads: int) -> tuple[Callable[[np.ndarray], list[np.ndarray]], str]:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        outputs = [o.name for o in session.get_outputs()]
        return lambda tensor: session.run(outputs, {name: tensor}), "f32"  # one session for every thread, as ONNX Runtime allows

    def _openvino(
        self, path: Path, threads: int, streams: int, precision: str | None
    ) -> tuple[Callable[[np.ndarray], list[np.ndarray]], str]:
        import openvino as ov

        config: dict[str, object] = {"NUM_STREAMS": streams, "INFERENCE_NUM_THREADS": streams * threads}
        if precision is not None:
            config["INFERENCE_PRECISION_HINT"] = precision
        core = ov.Core()
        compiled = core.compile_model(str(path), "CPU", config)
        chosen = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        if chosen not in ("bf16", "f32"):  # float16 (ARM CPUs): not measured, so full precision
            compiled = core.compile_model(str(path), "CPU", config | {"INFERENCE_PRECISION_HINT": "f32"})
            chosen = "f32"
        outputs = list(compiled.outputs)  # in the graph's order, as ONNX Runtime gives them
        local = threading.local()  # an infer request serves one thread at a time: one per calling thread

        def infer(tensor: np.ndarray) -> list[np.ndarray]:
            request = getattr(local, "request", None)
            if request is None:
                request = local.request = compiled.create_infer_request()
            # share_inputs: the request reads the caller's array in place (no copy into its own tensor)
            answer = request.infer({0: np.ascontiguousarray(tensor)}, share_inputs=True)
            return [answer[o] for o in outputs]

        _prime_openvino(infer)
        return infer, chosen

    def _full_precision(self) -> Callable[[np.ndarray], list[np.ndarray]]:
        with self._lock:
            if self._full is None:
                self._full = self._make_full()
            return self._full

    def run(self, image: np.ndarray, region: Region, within: Box | None = None, full: bool = False) -> Landmarks:
        """The landmarks of the body in ``region`` of the BGR ``image``; ``within`` = (x0, y0, x1,
        y1) px: the network sees only that box of the image (the rest of the region black).
        ``full``: in float32 even where the network otherwise runs in bfloat16. The detector asks
        for it where a look decides whether someone new is there: on things that only look a little
        like a person (a bag, an anatomical model), bfloat16's pose flag lands on the other side of
        the threshold more often (in the demo's cam02, uncalibrated: a bag followed in 43 of 100
        sets and the anatomical model in 17, against 9 and 0 in float32)."""
        patch, to_image = crop(image, region)
        if within is not None:
            patch = _only(patch, to_image, within)
        tensor = cv2.cvtColor(patch, cv2.COLOR_BGR2RGB).astype(np.float32)[None] * np.float32(1.0 / 255.0)
        values, flag, heatmaps = (self._full_precision() if full else self._infer)(tensor)
        with self._lock:
            self.runs += 1
        raw = np.asarray(values, np.float64).reshape(LANDMARKS, 5)
        xy = refined(raw[:, :2], heatmaps[0]) @ to_image[:, :2].T + to_image[:, 2]
        points = np.empty((17, 3), np.float32)
        points[:, :2] = xy[BLAZEPOSE_TO_COCO17]
        points[:, 2] = _sigmoid(raw[BLAZEPOSE_TO_COCO17, 3])
        return Landmarks(points, float(np.asarray(flag).ravel()[0]), circle_region(xy[CENTRE], xy[RIM]))


_primed = False
_priming = threading.Lock()


def _prime_openvino(infer: Callable[[np.ndarray], list[np.ndarray]]) -> None:
    """One run of ``infer`` on a blank input, on this thread, before any other thread runs the
    network (once per process).

    OpenVINO's Python binding (2026.4.1) sets up function-local statics the first time it turns
    an element type into a numpy dtype (``Type.to_dtype``, which every ``infer`` call and every
    ``Tensor.data`` goes through), and that set-up takes the GIL inside the static's guard. Two
    threads making that first call at once deadlock for good: one holds the guard and waits for
    the GIL, the other holds the GIL and waits for the guard. The pipeline's detector threads did
    exactly that on the first frame-set (both admitting someone in full precision): a headless
    replay in CI and a GUI test hung that way, with gdb showing the two threads in that state. Two
    bare threads calling ``to_dtype`` at once (the switch interval at 1 us) deadlocked 17 of 20 fresh
    interpreters here; after this run, none has (tests/test_landmarks.py)."""
    global _primed
    with _priming:
        if not _primed:
            infer(np.zeros((1, INPUT, INPUT, 3), np.float32))
            _primed = True


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def refined(xy: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """The landmarks ``[39, 2]`` (input px) moved to the probability-weighted mean of their
    heatmaps ``[h, w, 39]`` (logits) in a :data:`HEATMAP_WINDOW`-cell window around each, where
    the window's highest probability reaches :data:`HEATMAP_MIN`, as MediaPipe's pose graph does
    (measured against MediaPipe's own tracker on the demo's four views at 640 px: 0.5-1.3 px
    median apart, against 2.0-3.3 px unrefined)."""
    h, w, n = heatmaps.shape
    half = HEATMAP_WINDOW // 2
    steps = np.arange(-half, half + 1)
    cols = (xy[:, 0] * w / INPUT).astype(int)[:, None, None] + steps[None, None, :]  # [n, 1, k]
    rows = (xy[:, 1] * h / INPUT).astype(int)[:, None, None] + steps[None, :, None]  # [n, k, 1]
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)  # [n, k, k]
    rows_b, cols_b = np.broadcast_arrays(rows, cols)
    logits = heatmaps[np.clip(rows_b, 0, h - 1), np.clip(cols_b, 0, w - 1), np.arange(n)[:, None, None]]
    prob = np.where(inside, _sigmoid(logits.astype(np.float64)), 0.0)
    total = prob.sum(axis=(1, 2))
    ok = (prob.max(axis=(1, 2)) >= HEATMAP_MIN) & (total > 0)
    out = xy.copy()
    safe = np.where(ok, total, 1.0)
    out[ok, 0] = ((prob * cols_b).sum(axis=(1, 2)) / safe)[ok] * INPUT / w
    out[ok, 1] = ((prob * rows_b).sum(axis=(1, 2)) / safe)[ok] * INPUT / h
    return out


def crop(image: np.ndarray, region: Region) -> tuple[np.ndarray, np.ndarray]:
    """The network's ``INPUT`` x ``INPUT`` view of ``region`` (outside the image: black), and the
    2x3 affine map from its pixels to the image's. A region much larger than the input is first
    shrunk with area averaging (a plain warp would alias)."""
    c, s = np.cos(region.angle), np.sin(region.angle)
    scale = region.side / INPUT
    # Input pixel (u, v) -> image: the region's centre + the rotation of (u - 128, v - 128) * scale.
    to_image = np.array([[c * scale, -s * scale, 0.0], [s * scale, c * scale, 0.0]])
    to_image[:, 2] = np.array([region.x, region.y]) - to_image[:, :2] @ np.array([INPUT / 2.0, INPUT / 2.0])
    source, offset, factors = image, np.zeros(2), np.ones(2)
    if scale > MAX_ZOOM_OUT:
        half = region.side * (abs(c) + abs(s)) / 2.0 + 2.0
        h, w = image.shape[:2]
        x0, y0 = max(0, int(region.x - half)), max(0, int(region.y - half))
        x1, y1 = min(w, int(np.ceil(region.x + half))), min(h, int(np.ceil(region.y + half)))
        if x1 > x0 and y1 > y0:
            shrink = MAX_ZOOM_OUT / scale
            size = (max(1, round((x1 - x0) * shrink)), max(1, round((y1 - y0) * shrink)))
            source = cv2.resize(image[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
            offset, factors = np.array([x0, y0], float), np.array([size[0] / (x1 - x0), size[1] / (y1 - y0)])
    # Image px p -> source px: (p - offset + 0.5) * factors - 0.5 (the resize maps pixel centres).
    into_source = to_image * factors[:, None]
    into_source[:, 2] = (to_image[:, 2] - offset + 0.5) * factors - 0.5
    patch = cv2.warpAffine(
        source, into_source, (INPUT, INPUT), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT
    )
    return patch, to_image


def _only(patch: np.ndarray, to_image: np.ndarray, box: Box) -> np.ndarray:
    """``patch`` black outside ``box`` (image px), ``to_image`` mapping the patch's pixels to the image's."""
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)
    into_patch = cv2.invertAffineTransform(to_image)
    polygon = np.round(corners @ into_patch[:, :2].T + into_patch[:, 2]).astype(np.int32)
    mask = np.zeros(patch.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, polygon, (1,))
    return patch * mask[:, :, None]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))
