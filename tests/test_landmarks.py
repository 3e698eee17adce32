"""BlazePose's landmark network alone (engine.detect.landmarks): the converted network against
MediaPipe's own tracker on real frames, the crop's geometry and pixel mapping, the heatmap
refinement, the first regions, the two runtimes (OpenVINO, ONNX Runtime) against each other, and
clear errors for a missing or broken network file."""

from __future__ import annotations

import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import DetectorError
from core.paths import DEMO_DIR
from engine.detect import create_detector, landmarks
from engine.detect.landmarks import INPUT, LandmarkNetwork, Region, crop, refined, region_around, region_in_box
from tests.apprun import run_python


def demo_frame(camera: str, index: int = 30, side: int = 640) -> np.ndarray:
    cap = cv2.VideoCapture(str(DEMO_DIR / "videos" / f"{camera}.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = cap.read()
    cap.release()
    assert ok
    scale = side / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def network() -> LandmarkNetwork:
    return LandmarkNetwork()


@pytest.mark.parametrize("camera", ["cam01", "cam02"])
def test_the_network_follows_the_subject_as_mediapipes_own_tracker_does(network: LandmarkNetwork, camera: str) -> None:
    """MediaPipe's legacy tracker (unsmoothed) on one frame shown again and again settles where
    its landmarks give the region they were found in; so does the network here, from a region made
    from MediaPipe's first answer. Measured (COCO-17 keypoints, 640 px frames): 0.57 / 0.47 px
    median apart in cam01 / cam02 (cam03, cam04: 1.26, 0.82), against 3.33 / 1.98 px without the
    refinement of the landmarks by their heatmaps."""
    image = demo_frame(camera)
    legacy = create_detector("blazepose", smooth=False)
    try:
        theirs = [legacy.detect(camera, image).points for _ in range(12)][-1]
    finally:
        legacy.close()
    region = region_around(theirs)
    assert region is not None
    for _ in range(12):
        answer = network.run(image, region)
        region = answer.next_region
    assert answer.presence > 0.9
    seen = (theirs[:, 2] > 0.5) & (answer.points[:, 2] > 0.5)
    assert seen.sum() >= 12
    apart = np.linalg.norm(answer.points[seen, :2] - theirs[seen, :2], axis=1)
    assert np.median(apart) < 1.2, apart
    assert np.abs(answer.points[seen, 2] - theirs[seen, 2]).max() < 0.1  # visibilities


def test_a_turned_image_gives_the_same_landmarks_turned(network: LandmarkNetwork) -> None:
    image = demo_frame("cam02")
    h = image.shape[0]
    region = region_around(create_detector("blazepose").detect("cam02", image).points)
    assert region is not None
    upright = network.run(image, region)
    # The image turned a quarter clockwise: (x, y) -> (h - 1 - y, x); the body leans a quarter more to the right.
    turned_image = cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    turned = network.run(turned_image, Region(h - 1 - region.y, region.x, region.side, region.angle + np.pi / 2))
    back = np.stack([turned.points[:, 1], h - 1 - turned.points[:, 0]], axis=1)
    assert np.median(np.linalg.norm(back - upright.points[:, :2], axis=1)) < 0.5
    assert np.abs(turned.points[:, 2] - upright.points[:, 2]).max() < 0.05
    assert turned.next_region.angle == pytest.approx(upright.next_region.angle + np.pi / 2, abs=0.02)
    assert turned.next_region.side == pytest.approx(upright.next_region.side, rel=0.02)


def test_nobody_in_the_region_has_a_low_presence(network: LandmarkNetwork) -> None:
    image = demo_frame("cam02")
    assert network.run(np.zeros_like(image), Region(180, 320, 300)).presence < 0.1
    box = (0, 0, 100, 100)  # the top left corner of cam02: wall, nobody
    assert network.run(image, region_in_box(box), within=box).presence < 0.5


def test_refined_moves_a_landmark_to_its_heatmaps_weighted_mean() -> None:
    cells = np.arange(64, dtype=np.float64)
    rows, cols = np.meshgrid(cells, cells, indexing="ij")
    heatmaps = np.full((64, 64, 39), -20.0)
    blob = np.exp(-((cols - 20.3) ** 2 + (rows - 30.7) ** 2) / 2.0)  # peak probability about 1
    heatmaps[:, :, 5] = np.log(blob + 1e-9) - np.log1p(-np.minimum(blob, 0.999))  # logits of blob
    xy = np.full((39, 2), 100.0)
    xy[5] = (21.5 * INPUT / 64, 31.2 * INPUT / 64)  # the regressed point, near the blob
    out = refined(xy, heatmaps.astype(np.float32))
    assert out[5] / (INPUT / 64) == pytest.approx((20.3, 30.7), abs=0.1)
    assert np.array_equal(np.delete(out, 5, axis=0), np.delete(xy, 5, axis=0))  # flat heatmaps: unchanged


def test_first_regions_from_keypoints_and_boxes() -> None:
    points = np.zeros((17, 3), np.float32)
    points[:, 2] = 0.9
    points[[11, 12], :2] = [[90, 300], [110, 300]]  # hips
    points[[5, 6], :2] = [[85, 200], [115, 200]]  # shoulders above them
    points[[15, 16], :2] = [[95, 460], [105, 460]]  # ankles, 160 px below the hips
    points[0, :2] = (100, 170)
    points[[1, 2, 3, 4, 7, 8, 9, 10, 13, 14], :2] = (100, 250)
    region = region_around(points)
    assert region is not None
    assert (region.x, region.y, region.angle) == pytest.approx((100, 300, 0.0))
    assert region.side == pytest.approx(2 * 1.25 * np.hypot(5, 160), rel=1e-6)
    lying = points.copy()
    lying[:, 0], lying[:, 1] = 400 - points[:, 1], points[:, 0]  # turned a quarter clockwise: head to the right
    assert region_around(lying).angle == pytest.approx(np.pi / 2)  # type: ignore[union-attr]
    hidden = points.copy()
    hidden[[11, 12], 2] = 0.0
    assert region_around(hidden) is None
    assert region_in_box((10, 20, 110, 420)) == Region(60.0, 220.0, 400.0, 0.0)


def subject_regions() -> list[tuple[np.ndarray, Region]]:
    """The subject's first region in each demo camera's frame (from MediaPipe's legacy detector)."""
    legacy = create_detector("blazepose", smooth=False)
    try:
        out = []
        for camera in ("cam01", "cam02", "cam03", "cam04"):
            image = demo_frame(camera)
            region = region_around(legacy.detect(camera, image).points)
            assert region is not None
            out.append((image, region))
        return out
    finally:
        legacy.close()


def test_openvino_and_onnx_runtime_give_the_same_landmarks() -> None:
    """The subject in the four demo cameras, three runs each (each on the region the last gave):
    OpenVINO in float32 gives ONNX Runtime's landmarks (measured: within 0.001 px); in the
    precision it picks on this CPU (bfloat16 where the CPU has it natively) within half a pixel
    at the median (measured on 156 real crops of the two demos: 0.27 px median, 1.1 px at the 90th
    percentile, in the network's 256 px input); asked for full precision, float32's again."""
    reference = LandmarkNetwork(runtime="onnxruntime")
    full = LandmarkNetwork(runtime="openvino", precision="f32")
    chosen = LandmarkNetwork(runtime="openvino")
    assert (reference.precision, full.precision) == ("f32", "f32") and chosen.precision in ("f32", "bf16")
    apart_full, apart_chosen = [], []
    jobs = subject_regions()
    for image, region in jobs:
        for _ in range(3):
            theirs, same, near = (network.run(image, region) for network in (reference, full, chosen))
            seen = theirs.points[:, 2] > 0.5
            assert seen.sum() >= 10
            apart_full.append(np.linalg.norm(same.points[seen, :2] - theirs.points[seen, :2], axis=1))
            apart_chosen.append(np.linalg.norm(near.points[seen, :2] - theirs.points[seen, :2], axis=1))
            assert same.presence == pytest.approx(theirs.presence, abs=1e-4)
            exact = chosen.run(image, region, full=True)  # the looks that admit someone: always float32
            assert np.abs(exact.points[:, :2] - theirs.points[:, :2]).max() < 0.01
            assert exact.presence == pytest.approx(theirs.presence, abs=1e-4)
            assert near.presence == pytest.approx(theirs.presence, abs=0.05) and near.presence > 0.9
            region = theirs.next_region
    assert np.concatenate(apart_full).max() < 0.01
    scale = np.median([r.side for _, r in jobs]) / INPUT  # image px per input px
    assert np.median(np.concatenate(apart_chosen)) < 0.5 * scale


def test_views_detected_in_parallel_get_their_own_answers() -> None:
    """Two threads running the network at once (as the pipeline's views do, each OpenVINO thread
    with its own request) get exactly what each run alone gives."""
    network = LandmarkNetwork(runtime="openvino")
    jobs = subject_regions()
    alone = [network.run(image, region).points for image, region in jobs]

    def each(index: int) -> np.ndarray:
        return network.run(*jobs[index]).points

    with ThreadPoolExecutor(max_workers=2) as pool:
        together = list(pool.map(each, [0, 1, 2, 3] * 3))
    for index, points in enumerate(together):
        assert np.array_equal(points, alone[index % 4])
    assert network.runs == 16


FIRST_CALLS_AT_ONCE = textwrap.dedent(
    """
    import sys, threading
    import numpy as np
    import openvino as ov
    from engine.detect.landmarks import INPUT, LandmarkNetwork
    network = LandmarkNetwork(runtime="openvino")
    sys.setswitchinterval(1e-6)  # hand the GIL over as often as possible: the deadlock's window wide open
    start = threading.Barrier(2)
    def each():
        start.wait()
        for _ in range(3):
            ov.Type.f32.to_dtype()  # the binding's first dtype conversion in this process, unless primed
        network._infer(np.zeros((1, INPUT, INPUT, 3), np.float32))
    threads = [threading.Thread(target=each) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print("both done")
    """
)


@pytest.mark.slow
def test_the_detector_threads_first_runs_cannot_deadlock_in_openvinos_binding() -> None:
    """Two threads making OpenVINO's Python binding's first dtype conversion at once deadlock for
    good (a static's guard against the GIL; bare calls from two threads, with the GIL handed over
    as often as possible: 17 of 20 fresh interpreters hung). Each of four fresh interpreters here
    builds the network, then two threads make those calls at once: without the network's start-up
    run that primes the binding on one thread, this failed 3 times in 3 (hung past the timeout)."""
    for _ in range(4):
        done = run_python("-c", FIRST_CALLS_AT_ONCE, timeout=60)
        assert done.returncode == 0 and "both done" in done.stdout, done.stderr


def test_the_runtime_is_openvino_where_installed_and_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(landmarks.RUNTIME_VARIABLE, raising=False)
    monkeypatch.delenv(landmarks.PRECISION_VARIABLE, raising=False)
    assert LandmarkNetwork().runtime == "openvino"
    installed = landmarks._installed
    monkeypatch.setattr(landmarks, "_installed", lambda module: False)  # a machine without OpenVINO
    assert LandmarkNetwork().runtime == "onnxruntime"
    monkeypatch.setattr(landmarks, "_installed", installed)
    monkeypatch.setenv(landmarks.PRECISION_VARIABLE, "f32")
    monkeypatch.setenv(landmarks.RUNTIME_VARIABLE, "openvino")
    assert (LandmarkNetwork().runtime, LandmarkNetwork().precision) == ("openvino", "f32")
    monkeypatch.setenv(landmarks.RUNTIME_VARIABLE, "tensorflow")
    with pytest.raises(DetectorError, match=r"unknown runtime 'tensorflow' .*ROOM_CAPTURE_LANDMARKS_RUNTIME"):
        LandmarkNetwork()
    monkeypatch.delenv(landmarks.RUNTIME_VARIABLE)
    monkeypatch.setenv(landmarks.PRECISION_VARIABLE, "int4")
    with pytest.raises(DetectorError, match=r"unknown precision 'int4' .*ROOM_CAPTURE_LANDMARKS_PRECISION"):
        LandmarkNetwork()


def test_auto_falls_back_to_onnx_runtime_where_openvino_cannot_load(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    """OpenVINO installed but unable to run (missing libraries, an unsupported CPU): ``auto``
    warns and runs ONNX Runtime, which gives the same landmarks; asked for by name, it is an error."""
    monkeypatch.delenv(landmarks.RUNTIME_VARIABLE, raising=False)

    def broken(*args: object) -> None:
        raise RuntimeError("Exception from src/inference/src/core.cpp: no CPU plugin")

    monkeypatch.setattr(LandmarkNetwork, "_openvino", broken)
    with caplog.at_level("WARNING", logger="engine.detect.landmarks"):
        network = LandmarkNetwork()
    assert network.runtime == "onnxruntime" and network.precision == "f32"
    assert "OpenVINO cannot load it" in caplog.text and "no CPU plugin" in caplog.text
    image, region = subject_regions()[0]
    assert network.run(image, region).presence > 0.9
    with pytest.raises(DetectorError, match="with openvino: .*no CPU plugin.*ROOM_CAPTURE_LANDMARKS_RUNTIME=onnxruntime"):
        LandmarkNetwork(runtime="openvino")


def test_a_missing_or_broken_network_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match=r"missing\.onnx is missing"):
        LandmarkNetwork(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a network")
    for runtime in ("openvino", "onnxruntime"):
        with pytest.raises(DetectorError, match=f"cannot load the pose landmark network .*broken.onnx with {runtime}") as error:
            LandmarkNetwork(broken, runtime=runtime)
        # where OpenVINO fails, the message says how to run on ONNX Runtime instead
        assert ("ROOM_CAPTURE_LANDMARKS_RUNTIME=onnxruntime" in str(error.value)) == (runtime == "openvino")


def test_the_crop_maps_pixels_back_where_they_were_with_and_without_shrinking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three bright dots (anti-aliased, sub-pixel centres) in a 1080x1920 image, seen through a
    900 px region turned 0.3 rad (3.5x the input's side: shrunk with area averaging first, or
    warped directly): the brightness centroid of each dot, mapped back through the crop's affine
    map, lands on the dot. Measured: within 0.13 px shrunk (0.76 px off down-right before the
    resize's pixel-centre convention was taken into account), 0.32 px warped directly (aliasing)."""
    dots = np.array([(500.3, 900.7), (620.0, 1040.0), (380.5, 760.25)])
    image = np.zeros((1920, 1080, 3), np.uint8)
    for x, y in dots:
        cv2.circle(image, (round(x * 16), round(y * 16)), 12 * 16, (255, 255, 255), -1, cv2.LINE_AA, shift=4)
    region = Region(510.0, 905.0, 900.0, 0.3)
    v, u = np.mgrid[0:INPUT, 0:INPUT]

    def centroids() -> np.ndarray:
        patch, to_image = crop(image, region)
        where = np.stack([u, v], axis=-1) @ to_image[:, :2].T + to_image[:, 2]
        out = []
        for dot in dots:
            weight = (np.linalg.norm(where - dot, axis=-1) < 40) * patch[..., 0].astype(float)
            out.append((weight[..., None] * where).sum(axis=(0, 1)) / weight.sum())
        return np.array(out)

    shrunk = centroids()
    monkeypatch.setattr(landmarks, "MAX_ZOOM_OUT", 1e9)
    warped = centroids()
    assert np.abs(shrunk - dots).max() < 0.25, shrunk - dots
    assert np.abs(warped - dots).max() < 0.5, warped - dots
    monkeypatch.setattr(landmarks, "MAX_ZOOM_OUT", 1.5)
    assert crop(image, Region(-1499.0, 500.0, 3000.0))[0].shape == (INPUT, INPUT, 3)  # barely touching the image
