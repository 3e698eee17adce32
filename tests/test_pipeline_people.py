"""The multi-person pipeline: everyone detected in every view, matched across views, tracked with
stable ids, a body each; the offline path on a 5-D keypoints exchange file."""

from __future__ import annotations

import numpy as np
import pytest

from core.camera import Camera, looking_at, uncalibrated
from core.formats import load_keypoints_npz
from core.types import Frame, FrameSet, Keypoints2D
from engine.detect.fake import STANDING_SKELETON, FakeDetector
from engine.people_stage import REST_TURNS, PeopleStage, recover_missed
from engine.pipeline import Pipeline

ROOM = [
    looking_at("north", (0.3, 4.0, 2.3), (0.0, 0.0, 1.0), (640, 480), 500.0),
    looking_at("east", (4.0, -0.2, 2.3), (0.0, 0.0, 1.0), (640, 480), 500.0),
    looking_at("south", (-0.2, -4.0, 2.0), (0.0, 0.0, 1.0), (640, 480), 500.0),
    looking_at("west", (-4.0, 0.4, 2.6), (0.0, 0.0, 1.0), (640, 480), 500.0),
]


def frameset(cameras: list[Camera], index: int, fps: float = 30.0) -> FrameSet:
    t = index / fps
    frames = {c.name: Frame(c.name, np.zeros((c.image_size[1], c.image_size[0], 3), np.uint8), t, index) for c in cameras}
    return FrameSet(frames, t, index)


def walkers(index: int) -> list[np.ndarray]:
    """Two people 1.6 m apart walking towards each other along x (3 cm per frame-set)."""
    step = 0.03 * index
    return [STANDING_SKELETON + np.array([-0.8 + step, 0.4, 0.0]), STANDING_SKELETON + np.array([0.8 - step, -0.4, 0.0])]


def test_two_people_are_found_matched_and_keep_their_ids() -> None:
    detector = FakeDetector(ROOM, people=walkers(0), noise_px=1.0, seed=2)
    pipeline = Pipeline(detector, ROOM, people=PeopleStage(ROOM))
    seen: dict[int, list[float]] = {}
    for i in range(40):  # they pass each other at about frame 27
        detector.move(walkers(i))
        estimate = pipeline.process(frameset(ROOM, i))
        for person in estimate.people:
            assert person.keypoints3d is not None and len(person.keypoints2d) >= 3  # where they overlap a view may drop out
            seen.setdefault(person.id, []).append(float(np.nanmean(person.keypoints3d[:, 1])))
        if i >= 5:
            assert len(estimate.people) == 2, f"frame-set {i}"
            truth = walkers(i)
            for person in estimate.people:
                assert person.keypoints3d is not None
                err = [np.median(np.linalg.norm(person.keypoints3d[:, :3] - t, axis=1)) for t in truth]
                assert min(err) < 0.02
            first = estimate.people[0]
            assert estimate.keypoints3d is first.keypoints3d
            assert all(estimate.keypoints2d[n] is k for n, k in first.keypoints2d.items())
            assert all(not estimate.keypoints2d[c.name].found for c in ROOM if c.name not in first.keypoints2d)
            assert estimate.timings_ms["associate"] >= 0 and "detect:west" in estimate.timings_ms
    pipeline.close()
    assert len(seen) == 2  # two ids over the whole run, none switched: each id stays on one side (y)
    sides = sorted(np.sign(np.mean(ys)) for ys in seen.values())
    assert sides == [-1.0, 1.0] and all(np.ptp(np.sign(ys)) == 0 for ys in seen.values())


def test_new_people_wait_for_confirmation_and_the_single_person_path_still_names_person_one() -> None:
    detector = FakeDetector(ROOM, people=walkers(0))
    pipeline = Pipeline(detector, ROOM, people=PeopleStage(ROOM))
    counts = [len(pipeline.process(frameset(ROOM, i)).people) for i in range(6)]
    assert counts[0] == 0 and counts[-1] == 2  # births are confirmed over several frame-sets
    pipeline.close()
    single = Pipeline(FakeDetector(ROOM), ROOM)  # no people stage: the subject alone, as person 1
    estimate = single.process(frameset(ROOM, 0))
    assert [p.id for p in estimate.people] == [1] and estimate.people[0].keypoints3d is estimate.keypoints3d
    single.close()


class Costly(FakeDetector):
    """The fake detector saying that one camera's next frame costs more; it records the order the
    views start in."""

    def __init__(self, cameras: list[Camera], costly: str, **kwargs) -> None:
        super().__init__(cameras, **kwargs)
        self.expensive, self.started = costly, []

    def costly(self, camera: str) -> bool:
        return camera == self.expensive

    def detect_people(self, camera, image, timestamp=None):
        self.started.append(camera)
        return super().detect_people(camera, image, timestamp)


def test_the_views_the_detector_expects_to_cost_more_start_first() -> None:
    detector = Costly(ROOM, "south", people=walkers(0))
    pipeline = Pipeline(detector, ROOM, workers=1, people=PeopleStage(ROOM))  # one worker: the start order is the run order
    for i in range(6):
        detector.started.clear()
        estimate = pipeline.process(frameset(ROOM, i))
        assert detector.started == ["south", "north", "east", "west"]
        assert [k.split(":")[1] for k in estimate.timings_ms if k.startswith("detect:")] == [c.name for c in ROOM]
    pipeline.close()
    assert len(estimate.people) == 2  # every view's people under their own camera: triangulated where they stand
    for person in estimate.people:
        assert person.keypoints3d is not None and sorted(person.keypoints2d) == sorted(c.name for c in ROOM)
        assert min(np.median(np.linalg.norm(person.keypoints3d[:, :3] - t, axis=1)) for t in walkers(0)) < 0.02


def test_a_person_a_view_missed_is_recovered_top_down() -> None:
    truth = walkers(0)
    detector = FakeDetector(ROOM, people=truth)
    detections = {c.name: np.stack([detector._project(c.name, p).points for p in truth]) for c in ROOM}
    detections["north"] = detections["north"][:1]  # north's detector missed the second person
    predicted = np.stack([np.hstack([p, np.ones((17, 1))]) for p in truth])
    images = {c.name: np.zeros((480, 640, 3), np.uint8) for c in ROOM}
    assert recover_missed(ROOM, images, detections, predicted, detector.detect_region) == 1
    assert detector.region_calls == 1 and len(detections["north"]) == 2
    assert np.allclose(detections["north"][1, :, :2], ROOM[0].project(truth[1]), atol=1e-6)
    # several misses: one look per call, taking them in turn
    for name in ("north", "east", "south"):
        detections[name] = detections[name][:1]
    looked: list[str] = []

    def look(name: str, image: np.ndarray, box: tuple[int, int, int, int]) -> Keypoints2D:
        looked.append(name)
        return detector.detect_region(name, image, box)

    for turn in range(3):
        assert recover_missed(ROOM, images, {n: d.copy() for n, d in detections.items()}, predicted, look, turn=turn) == 1
        assert len(looked) == turn + 1
    assert sorted(looked) == ["east", "north", "south"]
    # a view where the look finds nobody is left alone for a while
    resting: dict[str, int] = {}
    nobody = lambda name, image, box: Keypoints2D.empty(name)  # noqa: E731
    assert recover_missed(ROOM, images, dict(detections), predicted, nobody, turn=10, resting=resting) == 0
    assert len(resting) == 1 and next(iter(resting.values())) == 10 + REST_TURNS
    rested = next(iter(resting))
    found = recover_missed(ROOM, images, dict(detections), predicted, look, turn=11, resting=resting, max_calls=3)
    assert found == 2 and rested not in looked[-2:]


def test_uncalibrated_views_track_their_own_people() -> None:
    cams = [uncalibrated(c.name, c.image_size) for c in ROOM[:2]]
    stage = PeopleStage(cams)
    assert not stage.calibrated
    projected = {c.name: np.stack([FakeDetector(ROOM)._project(c.name, p).points for p in walkers(0)]) for c in ROOM[:2]}
    people = []
    for i in range(6):
        people = stage.people(i / 30.0, projected)
    assert len(people) == 4 and all(len(p.keypoints2d) == 1 and p.keypoints3d is None for p in people)
    north = sorted(p.id for p in people if "north" in p.keypoints2d)
    east = sorted(p.id for p in people if "east" in p.keypoints2d)
    assert len(set(north) | set(east)) == 4  # ids are unique across views


@pytest.mark.slow
def test_evaluate_writes_every_person_from_a_5d_file(tmp_path, model) -> None:
    from engine.evaluate import run_keypoints

    T, rng = 12, np.random.default_rng(5)
    keypoints = np.zeros((T, 4, 3, 17, 3), np.float32)
    truth = np.zeros((T, 2, 17, 3))
    for i in range(T):
        for v, cam in enumerate(ROOM):
            order = rng.permutation(2)  # detections in no particular order; slot 2 stays empty
            for slot, k in enumerate(order):
                truth[i, k] = walkers(i)[k]
                keypoints[i, v, slot, :, :2] = cam.project(walkers(i)[k])
                keypoints[i, v, slot, :, 2] = 0.9
    np.savez(tmp_path / "in.npz", keypoints=keypoints, camera_names=np.array([c.name for c in ROOM]),
             image_size=np.array([c.image_size for c in ROOM]), K=np.stack([c.K for c in ROOM]),
             R=np.stack([c.R for c in ROOM]), t=np.stack([c.t for c in ROOM]), timestamps=np.arange(T) / 30.0)  # fmt: skip
    assert load_keypoints_npz(tmp_path / "in.npz").multi_person
    summary = run_keypoints(tmp_path / "in.npz", tmp_path / "out.npz", None, uncalibrated=False)
    assert summary["people"] == [1, 2]
    with np.load(tmp_path / "out.npz") as out:
        ids, k3d, joints = out["people_ids"], out["people_keypoints3d"], out["people_joints"]
        assert ids.shape == (T, 2) and out["people_body_pose"].shape == (T, 2, 23, 3)
        assert (ids[:2] == -1).all() and (ids[4:] >= 1).all()  # confirmed after a few frame-sets
        for i in range(4, T):
            for n in range(2):
                near = int(np.argmin([np.linalg.norm(k3d[i, n, :, :3] - truth[i, k], axis=1).mean() for k in range(2)]))
                assert np.linalg.norm(k3d[i, n, :, :3] - truth[i, near], axis=1).mean() < 0.01
                assert np.linalg.norm(joints[i, n, 0] - truth[i, near, 11:13].mean(axis=0)) < 0.15  # pelvis by the hips
                assert ids[i, n] == ids[4, n] or ids[i, n] in ids[4]
        assert np.isfinite(out["people_transl"][4:]).all() and (out["people_view"] == -1).all()


def test_a_looping_replay_tracks_afresh_with_the_same_ids() -> None:
    stage = PeopleStage(ROOM)
    detector = FakeDetector(ROOM, people=walkers(0))
    detections = {c.name: np.stack([k.points for k in detector.detect_people(c.name, None)]) for c in ROOM}
    passes = []
    for _ in range(2):  # the same five frame-sets twice: time goes back to 0 between the passes
        passes.append([[p.id for p in stage.people(i / 30.0, detections)] for i in range(5)])
    assert passes[0][0] == [] and passes[0][-1] == [1, 2]  # births wait for confirmation on the first pass ...
    assert passes[1] == [[1, 2]] * 5  # ... and a new pass shows the people at once, with the same ids


def test_a_replay_loop_starts_the_people_afresh_although_its_clock_runs_on() -> None:
    """A looping replay's frames keep a rising session time but their own index starts again."""

    class Bodies:  # what the pipeline asks of the bodies: one call per set, a restart when the ids start again
        restarts = 0

        def __call__(self, estimate: object) -> None:
            pass

        def restart(self) -> None:
            self.restarts += 1

    detector, bodies = FakeDetector(ROOM, people=walkers(0)), Bodies()
    pipeline = Pipeline(detector, ROOM, body=bodies, people=PeopleStage(ROOM))
    ids = []
    for loop in range(2):
        for i in range(0, 30, 3):
            detector.move(walkers(i))
            base = frameset(ROOM, i)
            frames = {n: Frame(n, f.image, f.timestamp + loop, i) for n, f in base.frames.items()}
            fs = FrameSet(frames, base.reference_time + loop, i)
            ids.append([p.id for p in pipeline.process(fs).people])
    pipeline.close()
    assert ids[0] == [] and ids[9] == [1, 2] and ids[10:] == [[1, 2]] * 10  # the same ids on the second pass, not 3 and 4
    assert bodies.restarts == 1  # a body state never passes to whoever gets its id on the new pass
