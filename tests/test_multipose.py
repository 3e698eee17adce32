"""The multi-person detector: its offline-built bundle, real multi-person frames, agreement with
the legacy single-person detector, VIDEO-mode timestamps, and the fake detector's people."""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.camera import looking_at
from core.errors import DetectorError
from core.paths import DEMO_DIR, PEOPLE_DEMO_DIR
from engine.detect import create_detector
from engine.detect.base import MultiDetector, RegionDetector
from engine.detect.fake import STANDING_SKELETON, FakeDetector
from engine.detect.multipose import MultiPoseDetector, _Clock, grown_box, inside, match_finds, plausible, pose_bundle, tiles

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo" / "videos"
TRIAL = PEOPLE_DEMO_DIR / "videos"  # the multi-person trial, bundled
HIPS = [11, 12]


def shifted(dx: float, dy: float) -> np.ndarray:
    """The standing skeleton moved by (dx, dy) m on the floor."""
    return STANDING_SKELETON + np.array([dx, dy, 0.0])


def frame(path: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = cap.read()
    cap.release()
    assert ok, path
    return image


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def multi(cache: Path):
    detector = create_detector("blazepose-multi", cache_dir=cache)
    yield detector
    detector.close()


def test_bundle_builds_offline_once_and_rebuilds_a_corrupt_one(tmp_path: Path) -> None:
    path = pose_bundle(tmp_path)
    assert path.parent == tmp_path / "mediapipe" and path.suffix == ".task"
    stamp = path.stat().st_mtime_ns
    assert pose_bundle(tmp_path) == path and path.stat().st_mtime_ns == stamp  # cached, not rebuilt
    MultiPoseDetector(cache_dir=tmp_path).close()
    assert path.stat().st_mtime_ns == stamp
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size // 2])  # a truncated download/copy
    assert pose_bundle(tmp_path) == path and path.stat().st_size == size
    assert not list(path.parent.glob("*.tmp"))


def test_bundle_that_cannot_be_built_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "mediapipe").write_text("a file where the cache folder should be")
    with pytest.raises(DetectorError, match="cannot build the pose bundle"):
        pose_bundle(tmp_path)


def test_multi_detector_meets_the_protocols(multi) -> None:
    assert isinstance(multi, MultiDetector) and isinstance(multi, RegionDetector)
    assert isinstance(FakeDetector(), MultiDetector)


@pytest.mark.slow
@pytest.mark.parametrize(("camera", "lower", "upper"), [("cam01", (762, 1346), (433, 730)), ("cam04", (431, 952), (779, 689))])
def test_finds_the_subject_and_the_composited_person(multi, camera: str, lower, upper) -> None:
    # Frame 10: in cam01 the composited woman is in the foreground (hips low in the image) and
    # the real subject on the treadmill behind her; in cam04 the subject is in front.
    people = multi.detect_people(camera, frame(TRIAL / f"{camera}.mp4", 10), 10 / 60)
    assert len(people) >= 2
    hips = np.array([p.points[HIPS, :2].mean(axis=0) for p in people])
    for expected in (lower, upper):
        assert np.linalg.norm(hips - expected, axis=1).min() < 40.0, hips
    assert np.linalg.norm(np.subtract(lower, upper)) > 400
    for p in people[:2]:
        assert p.points.shape == (17, 3) and p.points.dtype == np.float32
        assert p.points[:, 2].min() >= 0 and p.points[:, 2].max() <= 1
        assert p.points[HIPS, 2].mean() > 0.5


@pytest.mark.slow
def test_detect_is_the_most_salient_person_and_region_finds_the_other(multi) -> None:
    image = frame(TRIAL / "cam01.mp4", 10)
    people = multi.detect_people("cam01-people", image)
    best = multi.detect("cam01-best", image).points  # another view's first frame: the same full-frame pass
    assert np.abs(best[:, :2] - people[0].points[:, :2]).max() < 1e-3
    # The real subject on the treadmill (hips near (433, 730)), found afresh inside a box.
    box = (150, 250, 750, 1250)
    region = multi.detect_region("cam01", image, box).points
    hips = region[HIPS, :2].mean(axis=0)
    assert np.linalg.norm(hips - (433, 730)) < 40.0, hips


@pytest.mark.slow
def test_agrees_with_the_legacy_detector_on_the_demo_subject(multi) -> None:
    image = frame(DEMO / "cam01.mp4", 0)
    legacy = create_detector("blazepose")
    try:
        single = legacy.detect("cam01", image).points
    finally:
        legacy.close()
    first = multi.detect_people("demo_cam01", image)
    assert len(first) == 1
    people = multi.detect_people("demo_cam01", image)
    # The subject, and the masked bystander at the left edge that the first call's zoomed search
    # found and this call's follow confirmed.
    assert len(people) == 2 and near(people[1:], BYSTANDER["cam01"])
    # The first call looks where MediaPipe's person detector puts the subject, as the legacy
    # detector does on its first frame (measured: 3.1 px median apart at 1920 px); the second
    # follows her with the landmark network, from the region the first call's answer gave.
    for found, limit in ((first[0], 0.002 * max(image.shape)), (people[0], 0.005 * max(image.shape))):
        ok = (single[:, 2] > 0.5) & (found.points[:, 2] > 0.5)
        assert ok.sum() >= 12
        error = np.linalg.norm(found.points[ok, :2] - single[ok, :2], axis=1)
        assert np.median(error) < limit, (np.median(error), limit)


@pytest.mark.slow
def test_video_mode_survives_a_looping_replay(cache: Path) -> None:
    detector = MultiPoseDetector(tracking=True, redetect_every=3, cache_dir=cache)
    try:
        frames = [frame(TRIAL / "cam04.mp4", i) for i in range(3)]
        counts = [len(detector.detect_people("cam04", frames[i % 3], (i % 3) / 60)) for i in range(7)]
        counts.append(len(detector.detect_people("cam04", frames[0], 0.0)))  # a repeated time
        counts.append(len(detector.detect_people("cam04", frames[1])))  # no time at all
    finally:
        detector.close()
    assert min(counts) >= 1 and max(counts) >= 2, counts


def test_clock_is_strictly_increasing_through_loops_and_repeats() -> None:
    clock = _Clock()
    times = [0.0, 1 / 60, 2 / 60, 0.0, 1 / 60, 1 / 60, None, 5.0, 0.5]
    ms = [clock.tick(t) for t in times]
    assert all(b > a for a, b in pairwise(ms)), ms
    assert ms[:3] == [0, 17, 33] and ms[3] == 33 + 16  # a loop continues one frame step on


def test_fake_finds_everyone_visible_in_a_seeded_shuffled_order() -> None:
    cam = looking_at("cam_1", (3.0, 0.0, 2.4), (0.0, 0.0, 0.9), (640, 480), 600.0)
    left, right = shifted(0.0, -0.6), shifted(0.0, 0.6)
    behind = shifted(5.0, 0.0)  # behind the camera
    detector = FakeDetector([cam], people=[left, right, behind], seed=1)
    assert np.array_equal(detector.skeleton, left)
    orders = []
    for _ in range(6):
        people = detector.detect_people("cam_1", np.zeros((480, 640, 3), np.uint8))
        assert len(people) == 2
        xs = sorted(float(p.points[:, 0].mean()) for p in people)
        assert xs[1] - xs[0] > 100  # two people 1.2 m apart, 3 m away
        orders.append(float(people[0].points[0, 0]))
    assert len(set(orders)) == 2  # both orders occur
    assert detector.detect_people("unknown", np.zeros((4, 4, 3), np.uint8)) == []
    detector.move([left])
    assert len(detector.detect_people("cam_1", np.zeros((480, 640, 3), np.uint8))) == 1


def test_fake_region_picks_the_person_inside_the_box() -> None:
    cam = looking_at("cam_1", (3.0, 0.0, 2.4), (0.0, 0.0, 0.9), (640, 480), 600.0)
    left, right = shifted(0.0, -0.6), shifted(0.0, 0.6)
    detector = FakeDetector([cam], people=[left, right])
    for person in (left, right):
        xy = cam.project(person)
        box = (int(xy[:, 0].min()) - 10, int(xy[:, 1].min()) - 10, int(xy[:, 0].max()) + 10, int(xy[:, 1].max()) + 10)
        found = detector.detect_region("cam_1", np.zeros((480, 640, 3), np.uint8), box).points
        assert np.allclose(found[:, :2], xy, atol=1e-4)
    assert not detector.detect_region("cam_1", np.zeros((480, 640, 3), np.uint8), (0, 0, 20, 20)).found


def test_tiles_cover_the_image_with_overlap() -> None:
    boxes = tiles((1920, 1080, 3), (2, 2), 0.25)
    assert len(boxes) == 4
    assert boxes[0][:2] == (0, 0) and boxes[-1][2:] == (1080, 1920)
    (ax0, _, ax1, _), (bx0, _, bx1, _) = boxes[0], boxes[1]
    assert ax1 - ax0 == bx1 - bx0 and bx0 < ax1  # equal widths, overlapping
    assert (ax1 - bx0) == pytest.approx(0.25 * (ax1 - ax0), abs=1)
    assert tiles((100, 200), (1, 1), 0.25) == [(0, 0, 200, 100)]


def test_grown_box_is_clipped_and_enlarged() -> None:
    points = np.zeros((17, 3), np.float32)
    points[:, 0], points[:, 1], points[:, 2] = np.linspace(10, 110, 17), np.linspace(100, 300, 17), 0.9
    assert grown_box(points, 0.25, (1000, 1000)) == (0, 50, 161, 351)  # pad 50 px; x0 clipped at 0
    points[5:, 2] = 0.9
    points[:8, 2] = 0.0  # only confident keypoints count
    assert grown_box(points, 0.0, (1000, 1000))[:2] == (int(points[8, 0]), int(points[8, 1]))
    # 9 confident keypoints over a 112 px diagonal: a person in a 1000 px image, not in a 4000 px one.
    assert plausible(points, (1000, 1000)) and not plausible(points, (4000, 4000))
    points[8:10, 2] = 0.4
    assert not plausible(points, (1000, 1000))  # 7 keypoints above 0.5: too few


def demo_frames(camera: str, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(DEMO_DIR / "videos" / f"{camera}.mp4"))
    images = [cap.read()[1] for _ in range(count)]
    cap.release()
    assert all(image is not None for image in images)
    return images


def near(people: list, where: tuple[float, float], radius: float = 80.0) -> bool:
    return any(np.linalg.norm(p.points[:, :2].mean(axis=0) - where) < radius for p in people)


# The demo's bystander (a masked woman in the background) and the subject, keypoint means (px).
BYSTANDER = {"cam01": (64.0, 480.0), "cam02": (795.0, 635.0)}
SUBJECT = {"cam01": (440.0, 670.0), "cam02": (565.0, 685.0)}
MIN_FOUND = {"cam01": 18, "cam02": 18}  # of frames 0-20; measured 20 and 20 (99 and 83 of the 100)


@pytest.mark.slow
@pytest.mark.parametrize("camera", ["cam01", "cam02"])
def test_zoomed_search_finds_and_follows_the_demo_bystander(cache: Path, camera: str) -> None:
    images = demo_frames(camera, 21)
    plain = MultiPoseDetector(cache_dir=cache, search_every=0)
    zoomed = MultiPoseDetector(cache_dir=cache, search_every=15)
    try:
        before = [plain.detect_people(camera, image, i / 60) for i, image in enumerate(images)]
        after = [zoomed.detect_people(camera, image, i / 60) for i, image in enumerate(images)]
    finally:
        plain.close()
        zoomed.close()
    assert sum(near(people, BYSTANDER[camera]) for people in before) == 0  # the full frame never finds her
    assert sum(near(people, BYSTANDER[camera]) for people in after) >= MIN_FOUND[camera]
    assert all(near(people, SUBJECT[camera], 150.0) for people in after)
    assert max(len(people) for people in after) <= 4


@pytest.mark.slow
def test_bystander_stays_found_when_frames_are_skipped_and_she_is_briefly_hidden(cache: Path) -> None:
    """Real time on a slow machine: every 13th frame of the looping demo (about 4.6 sets/s of its
    60 fps). In cam02 the subject's arm hides the bystander on frames ~75-90 of each loop; with a
    follow dropped at its first miss she was lost there at call 45 and the searches that came next
    fell on those frames (measured 59 of 120 calls); followed through a short loss she is found
    in 118 of 120."""
    images = demo_frames("cam02", 100)
    detector = MultiPoseDetector(cache_dir=cache, search_every=15)
    found = []
    try:
        for call in range(75):
            index = call * 13 % len(images)
            found.append(near(detector.detect_people("cam02", images[index], index / 60), BYSTANDER["cam02"]))
    finally:
        detector.close()
    assert not found[0]  # a search's find is reported from the next frame on
    assert sum(found) >= 70, "".join("x" if f else "." for f in found)


@pytest.mark.slow
def test_a_followed_person_who_is_gone_is_dropped_after_the_grace_time(cache: Path) -> None:
    images = demo_frames("cam02", 3)
    x, y = BYSTANDER["cam02"]
    gone = images[2].copy()
    gone[int(y) - 330 : int(y) + 420, int(x) - 160 : int(x) + 200] = 0  # she left: her place is empty
    detector = MultiPoseDetector(cache_dir=cache, search_every=1000)
    looks: list[int] = []
    try:
        for i in range(2):  # found by the first frame's search, confirmed on the second
            detector.detect_people("cam02", images[i], i / 60)
        assert near(detector.detect_people("cam02", images[2], 2 / 60), BYSTANDER["cam02"])
        detector._look = counting(detector._look, looks, near_px=(x, y, 100.0))  # type: ignore[method-assign]
        for t in (0.5, 1.0, 2.0, 2.6, 3.0):  # the grace is 2 s from the first miss (at 0.5 s)
            before = len(looks)
            people = detector.detect_people("cam02", gone, t)
            assert not near(people, BYSTANDER["cam02"]), t  # never reported while lost
            assert len(looks) - before == (1 if t < 2.5 else 0), t  # looked for until the grace ends
    finally:
        detector.close()


def counting(run, calls: list[int], near_px: tuple[float, float, float] | None = None):
    """``run`` counting its calls in ``calls``; ``near_px`` = (x, y, r): only the landmark network's
    looks at a region centred within r px of (x, y)."""

    def counted(*args, **kwargs):
        if near_px is None or np.hypot(args[2].x - near_px[0], args[2].y - near_px[1]) < near_px[2]:
            calls.append(1)
        return run(*args, **kwargs)

    return counted


BYSTANDER_PX = np.array([790.0, 622.0])  # the masked bystander's keypoints' median in the demo's cam02 frames


@pytest.mark.slow
def test_the_person_detector_runs_every_few_frames_and_the_search_costs_six_tiles(cache: Path) -> None:
    """Runs of MediaPipe's person detector and of the landmark network, per frame of the demo's
    cam02 (the subject, and the bystander whom only the zoomed search finds)."""
    images = demo_frames("cam02", 30)
    graphs, network, times = {}, {}, {}
    bystander_seen: list[bool] = []
    for every in (0, 15):
        # room for everyone the search may find (it stops when max_people are followed): the
        # schedule is exact whatever the network's precision makes of the shapes that are not people
        detector = MultiPoseDetector(cache_dir=cache, search_every=every, detect_every=4, max_people=8)
        detector.detect_people("warm-up", images[0])  # loads the graphs
        calls: list[int] = []
        detector._persons = counting(detector._persons, calls)  # type: ignore[method-assign]
        graphs[every], network[every], times[every] = [], [], []
        try:
            for i, image in enumerate(images):
                before, looks, start = len(calls), detector.network.runs, time.perf_counter()
                found = detector.detect_people("cam02", image, i / 60)
                if every:
                    bystander_seen.append(any(np.hypot(*(np.median(p.points[:, :2], axis=0) - BYSTANDER_PX)) < 60 for p in found))
                times[every].append(1000 * (time.perf_counter() - start))
                graphs[every].append(len(calls) - before)
                network[every].append(detector.network.runs - looks)
        finally:
            detector.close()
    full_frame = [1 if i % 4 == 0 else 0 for i in range(30)]  # the full-frame pass every 4th frame
    assert graphs[0] == full_frame
    # The subject looked at once a frame: found by the first pass, then followed (on the pass's
    # frames in the region the detector gives), never looked at twice.
    assert network[0] == [1] * 30, network[0]
    # The search adds 6 tiles (2 x 3 on the portrait frame) on frame 0, then one tile a frame on
    # frames 1-5 and 15-20 (each tile once every 15 frames); the bystander it
    # finds is given from frame 1 on, in every frame: two looks a frame. The search also finds a
    # shape by the left wall (a bag under the window blinds), on which the network is not sure: one
    # follow may confirm it, and then it is looked for too, until it is lost and its grace time
    # ends. Whether it is kept on frame 1 differs between the network's float32 and bfloat16 runs
    # (see engine.detect.landmarks).
    tiles = [6 if i == 0 else int(i % 15 < 6) for i in range(30)]  # all six first, then one a frame on frames 1-5 and 15-20
    assert graphs[15] == [n + t for n, t in zip(full_frame, tiles, strict=True)], graphs[15]
    # A tile's find that is not one of the people followed costs one look more on its frame
    # (measured in bfloat16: frames 1 and 15, 4 looks; every other frame 3). In float32 a shape by
    # the ceiling's camera rig found on frame 15 passes its confirming follow, is lost on the next
    # frame and looked for during its grace time: 4 looks a frame from frame 16 (never more).
    assert network[15][0] == 3, network[15]
    assert all(2 <= n <= 4 + (t > 0) for n, t in zip(network[15][1:], tiles[1:], strict=True)), network[15]
    assert all(bystander_seen[1:]), [i for i, seen in enumerate(bystander_seen) if not seen]
    plain, zoomed = np.median(times[0]), np.median(times[15])
    search = times[15][0]
    print(f"median ms per frame: plain {plain:.0f}, with search {zoomed:.0f}, search frames {search:.0f}")
    # Loose (a shared CPU; the run counts above are exact): the first frame's whole search costs
    # several plain frames, but spread over the 15 frames the search at most doubles the median frame.
    assert zoomed < 5 * plain


@pytest.mark.slow
def test_a_view_that_follows_max_people_skips_its_search_tile_and_is_not_costly(cache: Path) -> None:
    """The search looks for newcomers only while there is room: with ``max_people`` followed, a
    tile's turn runs no person detector, and the pipeline is not told to start that view first."""
    images = demo_frames("cam02", 2)
    for room, expected in ((1, False), (8, True)):
        detector = MultiPoseDetector(cache_dir=cache, search_every=15, detect_every=4, max_people=room)
        calls: list[int] = []
        try:
            detector.detect_people("cam02", images[0], 0.0)  # the subject (with max_people=1, nobody else)
            detector._persons = counting(detector._persons, calls)  # type: ignore[method-assign]
            assert detector.costly("cam02") == expected  # call 2: the search's tile 1, not the full pass's turn
            detector.detect_people("cam02", images[1], 1 / 60)
        finally:
            detector.close()
        assert len(calls) == int(expected), (room, calls)


@pytest.mark.slow
def test_the_cameras_take_turns_at_the_full_frame_pass_and_the_search(cache: Path) -> None:
    """Four cameras given at construction (the demo's cam02 frames shown to each): after the first
    set, where every camera runs both, each set runs the person detector on the full frame in one
    camera only and on one tile of the zoomed search in two cameras at most, each camera on its
    own turn."""
    names = ["north", "east", "south", "west"]
    cameras = [looking_at(n, (3.0 * np.cos(a), 3.0 * np.sin(a), 1.5)) for n, a in zip(names, (0, 1.6, 3.1, 4.7), strict=True)]
    # room for everyone the search may find, as above: the schedule alone is tested here
    detector = MultiPoseDetector(cache_dir=cache, search_every=15, detect_every=4, cameras=cameras, max_people=8)
    ran: list[str] = []
    persons = detector._persons

    def counted(camera, image, offset):
        ran.append(camera)
        return persons(camera, image, offset)

    detector._persons = counted  # type: ignore[method-assign]
    per_set: list[dict[str, int]] = []
    try:
        for i, image in enumerate(demo_frames("cam02", 18)):
            ran.clear()
            for name in names:
                costly = detector.costly(name)  # what the pipeline asks before starting the views
                assert detector.detect_people(name, image, i / 60), (name, i)  # the subject, in every set
                assert costly == (name in ran), (name, i)
            per_set.append({n: ran.count(n) for n in names if n in ran})
    finally:
        detector.close()
    assert per_set[0] == dict.fromkeys(names, 7)  # the full-frame pass and the search's six tiles, everywhere
    for i, runs in enumerate(per_set[1:], start=1):
        passes = {n for n in names if (i + names.index(n)) % 4 == 0}  # camera k's turn: sets with (i + k) % 4 == 0
        # camera k's search: phases 0, 3, 7, 11 of 15; one tile a set on the first six sets of its turn
        searches = {n for n in names if (i + 15 * names.index(n) // 4) % 15 < 6}
        assert runs == {n: (n in passes) + (n in searches) for n in passes | searches}, (i, runs)
    # one pass a set (17) and 28 tiles (sets 1-5 and 15-17 of the first camera, 1-2 and 12-17 of the
    # second, 8-13 and 4-9 of the others); at most two tiles in one set, so no set waits for a
    # camera's whole search (before: six tiles in one view)
    assert sum(sum(runs.values()) for runs in per_set[1:]) == 17 + 28
    assert max(sum(runs.values()) for runs in per_set[1:]) <= 3


def test_finds_go_to_the_person_they_are_centred_on_nearest_first() -> None:
    """A tall person near the camera and a short one beside her, each with the person detector's
    find on their hips (the short one's scored higher, so listed first): each takes her own, though
    the short one's find also lies within a third of the tall one's size from her torso."""
    from engine.detect.landmarks import Region
    from engine.detect.persons import Person

    def person(x: float, height: float) -> np.ndarray:
        points = np.zeros((17, 3), np.float32)
        points[:, 0] = x + np.linspace(-0.15, 0.15, 17) * height
        points[:, 1] = 100 + np.linspace(0, height, 17)
        points[:, 2] = 0.9
        points[[5, 6], 1], points[[11, 12], 1] = 100 + 0.25 * height, 100 + 0.55 * height
        points[[5, 6, 11, 12], 0] = x
        return points

    tall, short = person(300, 600), person(420, 300)
    finds = [Person(Region(420, 100 + 0.55 * 300, 300), 0.9), Person(Region(300, 100 + 0.55 * 600, 600), 0.7)]
    assert inside(finds[0].region, tall)  # the short one's find would do for the tall one too
    assert match_finds([tall, short], [False, False], finds) == {0: 1, 1: 0}
    # Someone lost behind the tall one gives way: the find on the tall one goes to her.
    assert match_finds([tall.copy(), tall], [True, False], finds[1:]) == {1: 0}
    assert match_finds([tall], [False], []) == {}


@pytest.mark.slow
def test_a_person_followed_out_of_the_view_is_let_go(cache: Path) -> None:
    """The demo subject slides out of cam03's 640 px frame to the left, 12 px a frame: followed by
    the landmark network (the full-frame pass every 4th frame) while in view, and nobody is left
    at the border once gone (measured: found up to hips at x = 14 px, then nobody)."""
    image = frame(DEMO / "cam03.mp4", 0)
    scale = 640 / max(image.shape[:2])
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    detector = MultiPoseDetector(cache_dir=cache, search_every=0)
    hips: list[float | None] = []
    try:
        for k in range(40):
            moved = cv2.warpAffine(image, np.float32([[1, 0, -12 * k], [0, 1, 0]]), (w, h))
            people = detector.detect_people("cam03", moved, k / 30)
            assert len(people) <= 1
            hips.append(float(people[0].points[HIPS, 0].mean()) if people else None)
    finally:
        detector.close()
    start = hips[0]
    assert start is not None
    for k, x in enumerate(hips[:15]):  # hips still inside: followed, where they went
        assert x is not None and abs(x - (start - 12 * k)) < 15, (k, x)
    assert all(x is None for x in hips[25:]), hips  # hips 80 px and more outside the image: gone
