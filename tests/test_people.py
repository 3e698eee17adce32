"""engine.people (cross-view association, 3D and 2D tracking) on known geometry, and the metrics
of training.people_metrics on hand-made trajectories with known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from core.camera import looking_at
from core.types import COCO17_MIRROR as MIRROR
from engine.people import IdCounter, Tracker, Tracker2D, associate
from engine.people.associate import RELABELLINGS
from training.people_bench import benchmark
from training.people_metrics import AssociationCounter, id_switches, idf1
from training.synth.people import DetectorNoise, sample_people_scene, skeleton_at

CAMERAS = [
    looking_at(f"cam{i + 1}", (3.8 * np.cos(a), 3.8 * np.sin(a), 2.5), (0.0, 0.0, 0.9), (640, 480), 420.0)
    for i, a in enumerate(np.deg2rad([45.0, 135.0, 225.0, 315.0]))
]
A = skeleton_at(1.80, (-1.2, 0.4), 0.3)
B = skeleton_at(1.62, (1.1, -0.5), 2.0)
CLEAN = DetectorNoise(swap=0.0, merge=0.0, false_positive=0.0)


def observe(people: list[np.ndarray], cameras=CAMERAS) -> list[np.ndarray]:
    """Noise-free detections ``[P, 17, 3]`` (conf 0.9) of world keypoints in each view."""
    return [np.stack([np.concatenate([c.project(p), np.full((17, 1), 0.9)], -1) for p in people]) for c in cameras]


def test_two_people_far_apart_grouped_right_in_any_order():
    dets = observe([A, B])
    for order in itertools.product([(0, 1), (1, 0)], repeat=4):
        shuffled = [d[list(o)] for d, o in zip(dets, order, strict=True)]
        groups = associate(CAMERAS, shuffled)
        assert len(groups) == 2
        found = set()
        for g in groups:
            assert sorted(g.detections) == [0, 1, 2, 3]
            persons = {order[v][i] for v, i in g.detections.items()}
            assert len(persons) == 1
            (p,) = persons
            found.add(p)
            np.testing.assert_allclose(g.points[:, :3], (A, B)[p], atol=1e-6)
            np.testing.assert_allclose(g.points[:, 3], 0.9)
            assert np.all(g.errors_px < 1e-3)
        assert found == {0, 1}
    # sorted deterministically: by their (view, detection) pairs
    groups = associate(CAMERAS, dets)
    assert [g.detections for g in groups] == [{0: 0, 1: 0, 2: 0, 3: 0}, {0: 1, 1: 1, 2: 1, 3: 1}]


def test_a_detection_mixing_two_people_is_rejected():
    dets = observe([A, B])
    mixed = dets[0][0].copy()
    mixed[11:] = dets[0][1][11:]  # person A's upper body, person B's legs (a merged detector output)
    dets[0] = np.stack([mixed, dets[0][1]])
    for priors in (None, np.stack([np.concatenate([p, np.ones((17, 1))], -1) for p in (A, B)])):
        groups = associate(CAMERAS, dets, priors)
        assert len(groups) == 2
        assert [g.detections for g in groups] == [{0: 1, 1: 1, 2: 1, 3: 1}, {1: 0, 2: 0, 3: 0}]
        np.testing.assert_allclose(groups[1].points[:, :3], A, atol=1e-6)
        assert np.isnan(groups[1].errors_px[0])


def test_single_view_kept_only_with_a_prior():
    dets = [observe([A])[0], *(np.zeros((0, 17, 3)) for _ in range(3))]
    assert associate(CAMERAS, dets) == []
    prior = np.concatenate([A + np.array([0.05, 0.0, 0.0]), np.ones((17, 1))], -1)[None]
    (group,) = associate(CAMERAS, dets, prior)
    assert group.detections == {0: 0}
    # the detection's rays at the prior's depth: within the prior's 5 cm of the truth
    assert np.nanmax(np.linalg.norm(group.points[:, :3] - A, axis=-1)) < 0.06
    np.testing.assert_allclose(CAMERAS[0].project(group.points[:, :3]), dets[0][0, :, :2], atol=1e-6)


def test_a_prior_on_the_line_of_sight_does_not_steal_a_person_seen_in_other_views():
    dets = observe([A, B])
    eye = CAMERAS[0].center
    phantom = eye + 0.7 * (A - eye)  # on camera 1's rays through person A, 30 % nearer: same pixels there
    priors = np.concatenate([phantom, np.ones((17, 1))], -1)[None]
    np.testing.assert_allclose(CAMERAS[0].project(phantom), dets[0][0, :, :2], atol=1e-6)
    groups = associate(CAMERAS, dets, priors)
    assert [g.detections for g in groups] == [{0: 0, 1: 0, 2: 0, 3: 0}, {0: 1, 1: 1, 2: 1, 3: 1}]


def test_a_hidden_person_keeps_a_detection_shared_with_the_person_in_front():
    # camera 1 sees B's detection where A (a track seen in several views a moment ago) stands
    # behind B on its line of sight: B takes it in a group of four views and, when the prior is
    # marked hidden, A keeps it too, as a one-view group at A's depth; unmarked, A gets nothing
    eye = CAMERAS[0].center
    behind = eye + 1.4 * (B - eye)
    dets = observe([B])
    priors = np.concatenate([behind, np.ones((17, 1))], -1)[None]
    assert [g.detections for g in associate(CAMERAS, dets, priors)] == [{0: 0, 1: 0, 2: 0, 3: 0}]
    groups = associate(CAMERAS, dets, priors, hidden=np.array([True]))
    assert [g.detections for g in groups] == [{0: 0}, {0: 0, 1: 0, 2: 0, 3: 0}]
    np.testing.assert_allclose(groups[0].points[:, :3], behind, atol=1e-6)


def test_a_view_that_sees_someone_mirrored_joins_with_left_and_right_exchanged():
    # view 2's detector swapped A's left and right (seen from behind): as it is, that skeleton links
    # to nobody and the view was lost; mirrored it agrees with the three other views
    dets = observe([A, B])
    dets[1] = np.stack([dets[1][0][MIRROR], dets[1][1]])
    a, b = associate(CAMERAS, dets)
    assert a.detections == {0: 0, 1: 0, 2: 0, 3: 0} and a.mirrored == (1,)
    np.testing.assert_allclose(a.points[:, :3], A, atol=1e-6)
    assert np.all(a.errors_px < 1e-3)
    assert b.detections == {0: 1, 1: 1, 2: 1, 3: 1} and b.mirrored == ()
    # nobody vouches in two views alone: which of the two is mirrored is unknown, so no group ...
    assert associate(CAMERAS[:2], [dets[0][:1], dets[1][:1]]) == []
    # ... unless the track's prior (its left and right from earlier sets) says so
    prior = np.concatenate([A, np.ones((17, 1))], -1)[None]
    (group,) = associate(CAMERAS[:2], [dets[0][:1], dets[1][:1]], prior)
    assert group.detections == {0: 0, 1: 0} and group.mirrored == (1,)
    np.testing.assert_allclose(group.points[:, :3], A, atol=1e-6)
    # ... also where no other view sees anyone: a one-view group at the prior's depth
    alone = [np.zeros((0, 17, 3)), dets[1][:1], np.zeros((0, 17, 3)), np.zeros((0, 17, 3))]
    (group,) = associate(CAMERAS, alone, prior)
    assert group.detections == {1: 0} and group.mirrored == (1,)
    np.testing.assert_allclose(group.points[:, :3], A, atol=1e-6)
    # a skeleton that links as it is is never mirrored
    assert all(g.mirrored == () for g in associate(CAMERAS, observe([A, B])))


def test_a_view_that_sees_the_arms_exchanged_joins_with_them_exchanged_back():
    # BlazePose half way through a swap: view 1's skeleton has the arms (shoulders, elbows,
    # wrists) exchanged and the legs not. As it is its arms disagree with every other view, and
    # mirrored whole its legs do; with the arms exchanged back it agrees with the three others.
    arms = RELABELLINGS[1]
    assert [k for k in range(17) if arms[k] != k] == [5, 6, 7, 8, 9, 10]
    dets = observe([A, B])
    dets[0] = np.stack([dets[0][0][list(arms)], dets[0][1]])
    a, b = associate(CAMERAS, dets)
    assert a.detections == {0: 0, 1: 0, 2: 0, 3: 0} and a.orders == {0: arms} and a.mirrored == ()
    np.testing.assert_allclose(a.points[:, :3], A, atol=1e-6)
    np.testing.assert_allclose(a.keypoints(0, dets[0][0]), observe([A])[0][0])  # as the people stage hands it on
    assert np.all(a.errors_px < 1e-3)
    assert b.detections == {0: 1, 1: 1, 2: 1, 3: 1} and b.orders == {}


def test_of_two_views_that_each_link_to_a_third_only_the_mirrored_one_is_exchanged():
    # view 2 sees only the head (which mirroring barely moves), so the correct view 1 and the
    # mirrored view 2 each link to it alone; either exchanged links to the other as well as the
    # other would link to it, so neither is exchanged on its links: once the three group, the
    # mirrored view is the one that reprojects badly, and it alone is exchanged
    dets = observe([A])
    empty = np.zeros((0, 17, 3))
    head = dets[2].copy()
    head[:, 5:, 2] = 0.0
    (group,) = associate(CAMERAS, [dets[0], dets[1][:, MIRROR], head, empty])
    assert group.detections == {0: 0, 1: 0, 2: 0} and group.mirrored == (1,)
    np.testing.assert_allclose(group.points[:, :3], A, atol=1e-6)


def test_two_view_groups_of_one_person_that_did_not_link_are_merged():
    # views 3 and 4 see the person 25 cm higher than views 1 and 2 do (their calibration is off):
    # the two pairs do not link, yet their skeletons coincide: one person, four views
    dets = observe([A])[:2] + observe([A + np.array([0.0, 0.0, 0.25])])[2:]
    (group,) = associate(CAMERAS, dets)
    assert group.detections == {0: 0, 1: 0, 2: 0, 3: 0}
    hip = 0.5 * (group.points[11, :3] + group.points[12, :3])
    assert np.linalg.norm(hip - 0.5 * (A[11] + A[12])) < 0.2


def test_a_wrong_pairing_far_from_the_track_does_not_drag_it():
    # views 2 and 4 (opposite cameras) see the track's person 0.33 m off along their common axis:
    # each agrees with the prior alone (within GATE_M), together they triangulate 0.33 m from it;
    # the track keeps the view that agrees best with it, as a one-view group at its depth
    axis = CAMERAS[3].center - CAMERAS[1].center
    axis[2] = 0.0
    stray = A + 0.33 * axis / np.linalg.norm(axis)
    none = np.zeros((0, 17, 3))
    dets = [none, observe([stray])[1], none, observe([stray])[3]]
    priors = np.concatenate([A, np.ones((17, 1))], -1)[None]
    (group,) = associate(CAMERAS, dets, priors)
    assert len(group.detections) == 1
    hip = 0.5 * (group.points[11, :2] + group.points[12, :2])
    assert np.linalg.norm(hip - 0.5 * (A[11, :2] + A[12, :2])) < 0.1


def test_empty_views_and_uncalibrated_cameras():
    assert associate(CAMERAS, [np.zeros((0, 17, 3))] * 4) == []
    with pytest.raises(ValueError, match="calibrated"):
        associate([*CAMERAS[:3], CAMERAS[3].__class__("x", (640, 480))], [np.zeros((0, 17, 3))] * 4)


def person(height: float, xy, heading: float = 0.0) -> np.ndarray:
    return np.concatenate([skeleton_at(height, xy, heading), np.ones((17, 1))], -1)


def test_tracker_keeps_ids_through_a_crossing():
    tracker = Tracker()
    rng = np.random.default_rng(0)
    seen = {0: set(), 1: set()}
    for k in range(90):
        t = k / 30
        people = [person(1.75, (-2 + 1.3 * t, 0.15), 0.0), person(1.70, (2 - 1.3 * t, -0.15), np.pi)]
        people = [p + np.concatenate([rng.normal(0, 0.01, (17, 3)), np.zeros((17, 1))], -1) for p in people]
        order = rng.permutation(2)
        if 41 <= k <= 51:  # both hidden while they pass each other (0.3 m apart): motion carries the ids
            order = order[:0]
        ids = tracker.update(t, [people[i] for i in order])
        for i, track_id in zip(order, ids, strict=True):
            if k >= 2:
                seen[int(i)].add(track_id)
    assert seen == {0: {1}, 1: {2}} or seen == {0: {2}, 1: {1}}


def test_tracker_confirms_after_n_sets_kills_after_timeout_and_gives_ids_back():
    tracker = Tracker(confirm_sets=3, timeout_s=1.0, return_s=60.0)
    assert tracker.update(0.0, [person(1.8, (0, 0))]) == [-1]
    assert tracker.update(0.1, [person(1.8, (0.05, 0))]) == [-1]
    assert tracker.update(0.2, [person(1.8, (0.1, 0))]) == [1]
    assert tracker.first_seen(1) == 0.0
    assert tracker.predict(0.3).shape == (1, 17, 4)
    np.testing.assert_allclose(tracker.predict(0.3)[0, :, 0], person(1.8, (0.15, 0))[:, 0], atol=1e-6)
    assert tracker.predict(1.3).shape == (0, 17, 4)  # unseen beyond the timeout: no prior any more
    # Back 2 s later elsewhere: the same body gets its id back (after confirmation), a very
    # different one gets a new id.
    for t in [2.2, 2.3, 2.4]:
        ids = tracker.update(t, [person(1.8, (2.0, 2.0)), person(1.5, (-2.0, -2.0))])
    assert ids == [1, 2]
    assert tracker.first_seen(1) == 0.0 and tracker.first_seen(2) == 2.2
    # gone beyond return_s: a new id, never an old one
    for t in [70.0, 70.1, 70.2]:
        ids = tracker.update(t, [person(1.8, (0.0, 0.0))])
    assert ids == [3]
    with pytest.raises(KeyError):
        tracker.first_seen(99)


def test_a_returning_person_barely_seen_waits_for_a_clear_size_before_an_id():
    tracker = Tracker(confirm_sets=3, timeout_s=1.0)
    for k in range(5):
        tracker.update(0.1 * k, [person(1.8, (0.0, 0.0))])
    upper_body = person(1.8, (2.5, 0.0))
    upper_body[7:, 3] = 0.0  # at the door: head and shoulders only, no height, one bone
    ids = [tracker.update(3.0 + 0.1 * k, [upper_body])[0] for k in range(5)]
    assert ids == [-1] * 5  # might be person 1 coming back: no new id yet
    ids = [tracker.update(3.5 + 0.1 * k, [person(1.8, (2.5, 0.0))])[0] for k in range(4)]
    assert ids == [-1, -1, 1, 1]  # a size measured three times: person 1 is back
    # somebody else (a different size) while a dead track could return: a new id once sure
    tracker = Tracker(confirm_sets=3, timeout_s=1.0)
    for k in range(5):
        tracker.update(0.1 * k, [person(1.8, (0.0, 0.0))])
    ids = [tracker.update(3.0 + 0.1 * k, [person(1.55, (2.5, 0.0))])[0] for k in range(12)]
    assert ids == [-1] * 9 + [2] * 3


def test_tracker_forgets_a_tentative_track_that_is_not_seen_again():
    tracker = Tracker(confirm_sets=3)
    tracker.update(0.0, [person(1.8, (0, 0))])
    tracker.update(0.1, [])
    tracker.update(0.2, [])
    assert [tracker.update(0.3 + 0.1 * k, [person(1.8, (0, 0))]) for k in range(3)] == [[-1], [-1], [1]]


def test_weak_evidence_keeps_a_track_alive_without_moving_it():
    tracker = Tracker(confirm_sets=3, timeout_s=1.0)
    for k in range(3):
        assert tracker.update(0.1 * k, [person(1.8, (0.0, 0.0))]) == [-1, -1, 1][k : k + 1]
    # seen in one view only for 1.5 s, placed 0.2 m off: the id holds, the track stays put
    for k in range(15):
        assert tracker.update(0.3 + 0.1 * k, [person(1.8, (0.2, 0.0))], weak=[True]) == [1]
    np.testing.assert_allclose(tracker.predict(1.8)[0, :, :2], person(1.8, (0.0, 0.0))[:, :2], atol=1e-6)
    # weak evidence never gives birth, and a tentative track never takes it
    assert tracker.update(1.9, [person(1.8, (3.0, 0.0))], weak=[True]) == [-1]
    assert tracker.predict(1.9).shape == (1, 17, 4)


def test_an_implausible_jump_is_somebody_else_and_nobody_is_born_on_a_confirmed_person():
    tracker = Tracker(confirm_sets=3)
    for k in range(3):
        tracker.update(k / 60, [person(1.8, (0.0, 0.0))])
    # 0.5 m in 1/60 s: not this person (the gate of 0.7 m would have taken it)
    assert tracker.update(3 / 60, [person(1.8, (0.5, 0.0))]) == [-1]
    np.testing.assert_allclose(tracker.predict(4 / 60)[0, 11, :2], person(1.8, (0.0, 0.0))[11, :2], atol=1e-6)
    # a second skeleton 0.2 m from the confirmed person, set after set: never a second id
    for k in range(4, 10):
        ids = tracker.update(k / 60, [person(1.8, (0.0, 0.0)), person(1.8, (0.2, 0.0))])
        assert ids == [1, -1]
    assert len(tracker.predict(10 / 60)) == 1


def box_person(cx: float, cy: float, scale: float = 100.0) -> np.ndarray:
    """A 2D skeleton [17, 3] (px, conf) centred at (cx, cy), ``scale`` px tall-ish."""
    body = skeleton_at(1.7, (0.0, 0.0), np.pi / 2)  # facing the viewer: x across, z up
    return np.concatenate([np.stack([cx + scale * body[:, 1], cy - scale * (body[:, 2] - 0.9)], -1), np.ones((17, 1))], -1)


def test_tracker2d_keeps_ids_in_one_view_and_ids_are_unique_across_views():
    tracker = Tracker2D(first_id=1001)
    seen = {0: set(), 1: set()}
    for k in range(60):
        t = k / 30
        people = {0: box_person(100 + 6 * k, 240, 160), 1: box_person(460 - 6 * k, 250, 120)}
        if 27 <= k <= 33:  # person 1 walks behind person 0: not detected
            people.pop(1)
        ids = tracker.update(t, list(people.values()))
        for p, track_id in zip(people, ids, strict=True):
            if k >= 2:
                seen[p].add(track_id)
    assert seen == {0: {1001}, 1: {1002}}
    counter = IdCounter()
    left, right = Tracker2D(counter=counter, confirm_sets=1), Tracker2D(counter=counter, confirm_sets=1)
    assert left.update(0.0, [box_person(100, 200)]) == [1]
    assert right.update(0.0, [box_person(100, 200)]) == [2]


def frames(tracks: dict[int, list[tuple[int, float]]], n: int) -> list[dict[int, np.ndarray]]:
    """Per frame id -> position from id -> [(frame, x)]."""
    out: list[dict[int, np.ndarray]] = [{} for _ in range(n)]
    for track_id, samples in tracks.items():
        for t, x in samples:
            out[t][track_id] = np.array([x, 0.0])
    return out


def test_idf1_and_id_switches_on_known_cases():
    truth = frames({1: [(t, 0.0) for t in range(10)], 2: [(t, 5.0) for t in range(10)]}, 10)
    perfect = frames({7: [(t, 0.1) for t in range(10)], 8: [(t, 5.0) for t in range(10)]}, 10)
    score = idf1(truth, perfect, 0.5)
    assert (score.idf1, score.idtp, score.idfp, score.idfn) == (1.0, 20, 0, 0)
    assert id_switches(truth, perfect, 0.5) == 0
    # one person, the prediction changes id half way: IDTP 5, IDFP 5, IDFN 5
    one = frames({1: [(t, 0.0) for t in range(10)]}, 10)
    halves = frames({1: [(t, 0.0) for t in range(5)], 2: [(t, 0.0) for t in range(5, 10)]}, 10)
    score = idf1(one, halves, 0.5)
    assert (score.idf1, score.idtp, score.idfp, score.idfn) == (0.5, 5, 5, 5)
    assert id_switches(one, halves, 0.5) == 1
    # two predictions swap people after frame 5: IDTP 6 + 6 of 20 + 20
    swapped = frames({1: [(t, 0.0 if t < 6 else 5.0) for t in range(10)], 2: [(t, 5.0 if t < 6 else 0.0) for t in range(10)]}, 10)
    score = idf1(truth, swapped, 0.5)
    assert (score.idtp, score.idfp, score.idfn) == (12, 8, 8)
    assert score.idf1 == pytest.approx(0.6)
    assert id_switches(truth, swapped, 0.5) == 2
    # missed frames and a spurious track far from anybody
    partial = frames({1: [(t, 0.0) for t in range(8)], 3: [(0, 9.0), (1, 9.0)]}, 10)
    score = idf1(one, partial, 0.5)
    assert (score.idtp, score.idfp, score.idfn) == (8, 2, 2)
    assert score.idf1 == pytest.approx(0.8)


def test_association_counter_on_known_groups():
    person = np.array([[0, 1], [1, 0], [0, 1]])  # ground-truth person of each slot [V=3, P=2]
    counter = AssociationCounter()
    counter.add([{0: 0, 1: 1, 2: 0}, {0: 1, 1: 0}, {2: 1}], person)  # pure 3 + 2, person 1 split 2 + 1
    score = counter.score()
    assert score.precision == 1.0
    assert score.recall == pytest.approx(5 / 6)
    counter = AssociationCounter()
    counter.add([{0: 0, 1: 0, 2: 0}, {0: 1, 1: 1, 2: 1}], person)  # both groups mix the two people
    assert counter.score().precision == 0.0 and counter.score().f1 == 0.0


def test_synthetic_scene_is_consistent():
    scene = sample_people_scene(3, 4, 40, seed=1, noise=CLEAN)
    T, V, P = scene.detection_person.shape
    assert (T, V, P) == (40, 4, 4) and scene.keypoints.shape == (40, 3, 17, 3) and scene.ids.shape == (40, 3)
    assert np.all((scene.heights >= 1.5) & (scene.heights <= 1.9))
    filled = scene.detections[..., 2].max(-1) > 0
    assert np.array_equal(filled, scene.detection_person >= 0)
    for t, v, slot in zip(*np.nonzero(filled), strict=True):
        p = scene.detection_person[t, v, slot]
        seen = scene.detections[t, v, slot, :, 2] >= 0.3
        projected = scene.cameras[v].project(scene.keypoints[t, p, seen])
        error = np.linalg.norm(scene.detections[t, v, slot, seen, :2] - projected, axis=-1)
        assert np.median(error) < 6.0  # detections are the person's projections plus a few px of noise
    noisy = sample_people_scene(3, 4, 40, seed=1, noise=DetectorNoise(false_positive=0.5))
    ghosts = (noisy.detections[..., 2].max(-1) > 0) & (noisy.detection_person < 0)
    assert 40 <= ghosts.sum() <= 120  # about one false positive per two view-frames


def test_benchmark_meets_the_targets_on_a_short_scene():
    result = benchmark(people=3, views=4, frames=150, noise=CLEAN)
    assert result["association_f1"] >= 0.98
    assert result["idf1"] >= 0.95
    assert result["mpjpe_mm_mean"] < 40.0
    noisy = benchmark(people=3, views=4, frames=150)  # with swaps, merged skeletons, false positives
    assert noisy["association_f1"] >= 0.9
    assert noisy["idf1"] >= 0.9
