"""The labelled synthetic scenes (monitoring.scenes) are what they claim, they project into the
cameras like a detector would see them, and the real pipeline + monitor raise a fall on a fall
scene and none on a confounder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.types import FrameSetSource
from engine.detect.base import MultiDetector
from engine.people_stage import PeopleStage
from engine.pipeline import Pipeline
from monitoring import scenes
from monitoring.benchmark import Runner, score
from monitoring.monitor import Monitor
from monitoring.scenes import FALL_KINDS, SceneDetector, SceneSource, make_scene

HEAD = slice(0, 5)
HIPS = [11, 12]
ANKLES = [15, 16]


def head_z(points: np.ndarray) -> np.ndarray:
    """Head height (mean of the five head keypoints) of ``[..., 17, 3]``."""
    return points[..., HEAD, 2].mean(axis=-1)


def at(scene: scenes.Scene, t: float) -> int:
    return int(np.argmin(np.abs(scene.times - t)))


@pytest.fixture(scope="module")
def crouch() -> scenes.Scene:
    return make_scene("crouch", people=1, views=4, seed=3)


def test_a_standing_body_has_its_feet_on_the_floor_and_its_head_at_a_persons_height(crouch: scenes.Scene) -> None:
    first = crouch.truth3d[: int(crouch.fps), 0]  # the first second: standing
    assert 0.02 < first[:, ANKLES, 2].min() and first[:, ANKLES, 2].max() < 0.15
    assert 1.35 < head_z(first).min() and head_z(first).max() < 1.9
    assert 0.75 < first[:, HIPS, 2].mean() < 1.05
    assert crouch.truth3d[..., 2].min() > -0.02  # nobody below the floor, ever
    low = head_z(crouch.truth3d[:, 0]).min()
    assert 0.6 < low < 1.0  # crouched, not on the floor
    assert crouch.labels == []


def test_projections_land_in_the_images_with_detector_noise(crouch: scenes.Scene) -> None:
    for camera in crouch.cameras:
        found = crouch.detections[camera.name]
        seen = found[..., 2] > 0
        assert found.shape == crouch.truth3d.shape
        w, h = camera.image_size
        assert np.all((found[seen, 0] >= 0) & (found[seen, 0] < w) & (found[seen, 1] >= 0) & (found[seen, 1] < h))
        conf = found[seen, 2]
        assert 0.6 <= conf.min() and conf.max() <= 0.95
        err = np.linalg.norm(found[..., :2] - camera.project(crouch.truth3d), axis=-1)[seen]
        assert 1.5 < np.median(err) < 4.0  # 2-3 px Gaussian noise
        assert 0.003 < (err > 12).mean() < 0.05  # a few outliers
        assert seen.any(axis=-1).mean() > 0.8  # the person is seen in most frames of every view
    views_seeing = sum((crouch.detections[c.name][..., 2] > 0).any(axis=-1) for c in crouch.cameras)
    assert (views_seeing >= 2).mean() > 0.95


def test_the_source_and_detector_feed_the_pipeline_interfaces(crouch: scenes.Scene) -> None:
    source, detector = SceneSource(crouch), SceneDetector(crouch)
    assert isinstance(source, FrameSetSource) and isinstance(detector, MultiDetector)
    sets = list(source)
    assert [s.reference_time for s in sets] == pytest.approx(list(crouch.times))
    assert sets[0].cameras == [c.name for c in crouch.cameras] and int(sets[0].frames["cam1"].image.mean()) == 128
    source.rewind()
    again = source.next()
    assert again is not None and again.index == 0
    i = 20
    found = detector.detect_people("cam2", sets[i].frames["cam2"].image, float(crouch.times[i]))
    truth = crouch.detections["cam2"][i, 0]
    assert len(found) == int(truth[:, 2].max() > 0) and (not found or np.allclose(found[0].points, truth))


@pytest.mark.slow
@pytest.mark.parametrize("kind", FALL_KINDS)
def test_a_fall_goes_from_upright_to_the_floor_fast(kind: str) -> None:
    scene = make_scene(kind, people=1, views=4, seed=11)
    fall = [lab for lab in scene.labels if lab.type == "fall"]
    assert len(fall) == 1 and fall[0].person == 0
    impact = fall[0].t
    head = head_z(scene.truth3d[:, 0])
    before = head[at(scene, impact - scene.info["descent_s"] - 0.3)]
    assert before > (0.6 if kind == "roll_out_of_bed" else 1.0)
    after = at(scene, impact + 0.5)
    assert scene.truth3d[after, 0, HIPS, 2].mean() < 0.3  # down on the floor ...
    assert head[after] < (0.8 if kind == "slump_chair" else 0.5)  # ... lying (or slumped against the chair)
    assert 0.5 <= scene.info["descent_s"] <= 1.0 + 1e-6
    if kind != "slump_chair":  # slumping from a chair starts lower and may be slower
        assert 1.8 < scene.info["peak_head_mps"] < 4.5
    assert all(lab.t > impact + 5.0 or lab.type in ("fall", "bed_exit") for lab in scene.labels)
    assert scene.times[-1] > max(lab.t for lab in scene.labels) + 2.0  # the scene runs past every label


@pytest.mark.slow
def test_confounders_stay_off_the_floor_or_get_down_slowly() -> None:
    for kind, lowest_head in (("sit_hard", 0.95), ("kneel_shoe", 0.7), ("pick_up", 0.7), ("crouch", 0.6)):
        scene = make_scene(kind, people=1, views=2, seed=5)
        assert head_z(scene.truth3d[:, 0]).min() > lowest_head, kind
        assert not [lab for lab in scene.labels if lab.type == "fall"]
    exercise = make_scene("exercise_floor", people=1, views=4, seed=5)
    hips = exercise.truth3d[:, 0, HIPS, 2].mean(axis=1)
    assert hips.min() < 0.2  # really on the floor ...
    head = head_z(exercise.truth3d[:, 0])
    assert (-np.diff(head) * exercise.fps).max() < 1.5  # ... but never dropping fast
    floor = hips < 0.3
    assert floor.sum() / exercise.fps < scenes.SCENE_THRESHOLDS.on_floor_s  # not long enough for on_floor


@pytest.mark.slow
def test_the_carer_bends_over_the_patient_in_bed() -> None:
    scene = make_scene("carer_bend", people=2, views=4, seed=2)
    carer, patient = scene.truth3d[:, 0], scene.truth3d[:, 1]
    assert head_z(carer).min() > 0.9  # bent over, never low
    assert head_z(carer).max() - head_z(carer).min() > 0.2  # but really bending
    pelvis = patient[:, HIPS].mean(axis=1)
    assert all(scenes.in_bed(p[:2]) for p in pelvis)
    assert pelvis[:, 2].min() > scenes.BED_HEIGHT  # lying on the bed, not on the floor
    assert scene.labels == []


@pytest.mark.slow
def test_a_bed_exit_is_labelled_when_the_pelvis_leaves_the_bed() -> None:
    scene = make_scene("lie_on_bed", people=2, views=2, seed=4)
    (exit_label,) = [lab for lab in scene.labels if lab.type == "bed_exit"]
    pelvis = scene.truth3d[:, 0, HIPS].mean(axis=1)
    i = at(scene, exit_label.t)
    assert not scenes.in_bed(pelvis[i, :2]) and scenes.in_bed(pelvis[i - 1, :2])
    lying = pelvis[at(scene, exit_label.t - 6.0)]
    assert scenes.in_bed(lying[:2]) and lying[2] > scenes.BED_HEIGHT
    visitor = scene.truth3d[:, 1]
    assert head_z(visitor).min() > 1.3  # the second person walks about
    assert not any(scenes.in_bed(p[:2]) for p in visitor[:, HIPS].mean(axis=1))


def run_monitor(scene: scenes.Scene) -> list[tuple[str, int | None, float]]:
    pipeline = Pipeline(SceneDetector(scene), scene.cameras, people=PeopleStage(scene.cameras))
    monitor = Monitor(scene.config, wall_start=scene.wall_start)
    raised = []
    owner: dict[int, int] = {}
    for i, frameset in enumerate(SceneSource(scene)):
        estimate = pipeline.process(frameset)
        for person in estimate.people:  # which scene person each track follows
            assert person.keypoints3d is not None
            hips = person.keypoints3d[HIPS, :3].mean(axis=0)
            truth = scene.truth3d[i][:, HIPS].mean(axis=1)
            owner[person.id] = int(np.argmin(np.linalg.norm(truth - hips, axis=1)))
        raised += [(e.type, owner.get(e.person) if e.person is not None else None, e.t)
                   for e in monitor.update_estimate(estimate) if e.phase == "raised"]  # fmt: skip
    pipeline.close()
    return raised


@pytest.mark.slow
def test_the_real_pipeline_raises_a_fall_for_the_right_person_soon_after_the_impact() -> None:
    scene = make_scene("fall_sideways", people=2, views=4, seed=7)
    (impact,) = [lab.t for lab in scene.labels if lab.type == "fall"]
    falls = [(person, t) for kind, person, t in run_monitor(scene) if kind == "fall"]
    assert len(falls) == 1
    person, t = falls[0]
    assert person == 0 and impact < t <= impact + 2.0


@pytest.mark.slow
def test_the_real_pipeline_raises_no_alarm_on_a_confounder() -> None:
    scene = make_scene("sit_hard", people=2, views=2, seed=7)
    raised = run_monitor(scene)
    assert not [r for r in raised if r[0] in ("fall", "on_floor", "no_movement", "bed_exit")]
    assert ("people_count", None) in [(k, p) for k, p, _ in raised]  # the monitor did see both people


@pytest.mark.slow
def test_the_benchmark_scores_a_scene_run_through_the_pipeline() -> None:
    scene = make_scene("roll_out_of_bed", people=1, views=4, seed=8)
    result = Runner(bodies=False).run(scene)
    assert result.frame_sets == len(scene.times)
    kinds = {m[0] for m in result.matched}
    assert "bed_exit" in kinds and "on_floor" in kinds
    assert not [f for f in result.false if f[0] == "fall"]
    result.raised.append(("fall", 0, 1.0))  # a fall long before the impact is a false alarm
    result.matched, result.missed, result.false = [], [], []
    score(result)
    assert ("fall", 0, 1.0) in result.false


@pytest.mark.slow
def test_the_confounder_run_can_hold_only_scenes_with_a_second_person(tmp_path: Path) -> None:
    from monitoring.benchmark import main

    out = tmp_path / "confounders.json"
    assert main(["--json", str(out), "--no-bodies", "--confounders-only", "--people", "2", "--scenes", "3", "--seed", "5"]) == 0
    report = json.loads(out.read_text())
    names = [s["name"] for s in report["scenes"]]
    assert names == ["sit_hard-p2-v4-s5", "sit_hard-p2-v2-s5", "lie_on_bed-p2-v4-s5"]
    assert report["settings"]["people"] == 2 and report["two_people"]["fall"]["confounder_seconds"] > 30
    with pytest.raises(SystemExit):
        main(["--json", str(out), "--people", "2"])  # --people only narrows the confounder run
