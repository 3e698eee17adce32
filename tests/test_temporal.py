"""Temporal filtering of bodies (engine.heatformer.temporal): lag on fast motion, jitter on noisy
signals, rotations that stay rotations, resets, the held shape and the offline smoother."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.camera import looking_at
from core.geometry import matrix_to_rodrigues, rodrigues_to_matrix
from core.types import BodyEstimate, Frame, FrameBody, FrameSet, Keypoints2D
from engine.heatformer.live import LiveBody
from engine.heatformer.temporal import (
    LIVE_POSITION,
    LIVE_ROTATION,
    POSITION,
    ROTATION,
    BodyFilter,
    KalmanCV,
    OneEuro,
    RotationKalmanCV,
    RotationOneEuro,
    ShapeEstimate,
    ViewFilter,
    body_points,
    rotations_of,
    smooth_sequence,
    someone_else,
    with_body,
)

FPS = 60.0
AXIS = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])


def times(n: int) -> np.ndarray:
    return np.arange(n) / FPS


def spin(angles: np.ndarray) -> np.ndarray:
    """Rotations ``[T, 3, 3]`` about a fixed axis by ``angles`` ``[T]``."""
    return rodrigues_to_matrix(angles[:, None] * AXIS)


def noisy_rotations(true: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return true @ rodrigues_to_matrix(np.random.default_rng(seed).normal(0.0, sigma, (len(true), 3)))


def relative(true: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """The rotation vectors ``[T, 3]`` of ``true^T estimate``."""
    return matrix_to_rodrigues(np.swapaxes(true, -1, -2) @ estimate)


def run(filt: OneEuro, values: np.ndarray) -> np.ndarray:
    return np.stack([filt(v, t) for v, t in zip(values, times(len(values)), strict=True)])


def jitter(x: np.ndarray) -> float:
    """Mean |second difference| after the first second (the filter's start-up)."""
    return float(np.abs(np.diff(x[int(FPS) :], 2, axis=0)).mean())


@pytest.mark.parametrize("omega, max_lag", [(2.0, 0.8), (3.0, 0.6)])  # measured: 0.73 and 0.50 frames
def test_a_fast_rotation_trails_by_less_than_a_frame(omega: float, max_lag: float) -> None:
    t = times(240)
    true = spin(omega * t)
    error = relative(true, run(RotationOneEuro(ROTATION), true)) @ AXIS
    lag_frames = -error[120:].mean() / (omega / FPS)
    assert 0.0 < lag_frames < max_lag


@pytest.mark.parametrize("speed, max_lag", [(1.5, 0.8), (3.0, 0.45)])  # measured: 0.73 and 0.38 frames
def test_a_fast_translation_trails_by_less_than_a_frame(speed: float, max_lag: float) -> None:
    true = np.outer(speed * times(240), [1.0, 0.5, 0.0]) / np.hypot(1.0, 0.5)
    error = (run(OneEuro(POSITION), true) - true) @ np.array([1.0, 0.5, 0.0]) / np.hypot(1.0, 0.5)
    lag_frames = -error[120:].mean() / (speed / FPS)
    assert 0.0 < lag_frames < max_lag


@pytest.mark.parametrize("omega, min_gain", [(0.0, 6.0), (1.0, 2.5)])  # measured: 7.8x and 3.1x
def test_rotation_jitter_is_more_than_halved(omega: float, min_gain: float) -> None:
    true = spin(omega * times(300))
    noisy = noisy_rotations(true, sigma=0.02)  # about 2 degrees per frame
    filtered = run(RotationOneEuro(ROTATION), noisy)
    assert jitter(relative(true, noisy)) / jitter(relative(true, filtered)) > min_gain


@pytest.mark.parametrize("speed, min_gain", [(0.0, 7.0), (1.0, 2.2)])  # measured: 9.3x and 2.7x
def test_translation_jitter_is_more_than_halved(speed: float, min_gain: float) -> None:
    true = np.outer(speed * times(300), [0.0, 1.0, 0.0])
    noisy = true + np.random.default_rng(1).normal(0.0, 0.01, true.shape)  # 1 cm
    filtered = run(OneEuro(POSITION), noisy)
    assert jitter(noisy - true) / jitter(filtered - true) > min_gain


def test_filtered_rotations_stay_rotations() -> None:
    rng = np.random.default_rng(2)
    raw = rodrigues_to_matrix(rng.normal(0.0, 1.5, (400, 24, 3)))  # wild jumps, angles near pi
    filtered = run(RotationOneEuro(ROTATION), raw)
    np.testing.assert_allclose(np.linalg.det(filtered), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.swapaxes(filtered, -1, -2) @ filtered, np.broadcast_to(np.eye(3), filtered.shape), atol=1e-12)


# --- the live filter: constant-velocity Kalman ----------------------------------------------------


@pytest.mark.parametrize("omega", [0.5, 3.0])
def test_kalman_follows_a_steady_turn_without_lag(omega: float) -> None:
    true = spin(omega * times(240))
    error = relative(true, run(RotationKalmanCV(LIVE_ROTATION), true)) @ AXIS
    assert np.abs(error[120:]).max() < 1e-3 * omega / FPS  # a thousandth of a frame's turn (One-Euro: 0.5-0.7 frame)


@pytest.mark.parametrize("speed", [0.3, 3.0])
def test_kalman_follows_a_steady_walk_without_lag(speed: float) -> None:
    true = np.outer(speed * times(240), [1.0, 0.5, 0.0])
    error = run(KalmanCV(LIVE_POSITION), true) - true
    assert np.abs(error[120:]).max() < 1e-3 * speed / FPS


@pytest.mark.parametrize("omega", [0.0, 1.0])
def test_kalman_more_than_halves_rotation_jitter_still_or_turning(omega: float) -> None:
    true = spin(omega * times(300))
    noisy = noisy_rotations(true, sigma=0.02)
    filtered = run(RotationKalmanCV(LIVE_ROTATION), noisy)
    assert jitter(relative(true, noisy)) / jitter(relative(true, filtered)) > 2.2  # measured 2.44 both


@pytest.mark.parametrize("speed", [0.0, 1.0])
def test_kalman_more_than_halves_position_jitter_still_or_moving(speed: float) -> None:
    true = np.outer(speed * times(300), [0.0, 1.0, 0.0])
    noisy = true + np.random.default_rng(1).normal(0.0, 0.01, true.shape)
    filtered = run(KalmanCV(LIVE_POSITION), noisy)
    assert jitter(noisy - true) / jitter(filtered - true) > 3.5  # measured 4.13 both


def test_kalman_overshoots_an_abrupt_stop_by_a_few_centimetres() -> None:
    """The price of no lag: a 2 m/s motion that stops dead (a fall reaching the floor) is carried
    on a little before the filter believes the stop."""
    t = times(120)
    true = np.outer(2.0 * np.minimum(t, 1.0), [1.0, 0.0, 0.0])
    over = (run(KalmanCV(LIVE_POSITION), true) - true)[:, 0]
    assert 0.02 < over.max() < 0.05  # measured 3.7 cm
    assert abs(over[-1]) < 0.005  # settled on the stop within a second


def test_kalman_rotations_stay_rotations() -> None:
    raw = rodrigues_to_matrix(np.random.default_rng(2).normal(0.0, 1.5, (400, 24, 3)))
    filtered = run(RotationKalmanCV(LIVE_ROTATION), raw)
    np.testing.assert_allclose(np.linalg.det(filtered), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.swapaxes(filtered, -1, -2) @ filtered, np.broadcast_to(np.eye(3), filtered.shape), atol=1e-12)


def test_the_shape_settles_within_a_second_and_then_holds() -> None:
    rng = np.random.default_rng(3)
    truth = np.linspace(-1.5, 1.5, 10)
    shape = ShapeEstimate()
    estimates, settled = [], []
    for t in times(300):
        estimates.append(shape.update(truth + rng.normal(0.0, 0.3, 10), t, weight=float(rng.integers(20, 68))))
        settled.append(shape.settled)
    first = settled.index(True)
    assert first <= FPS  # settled after one second of frames
    assert np.linalg.norm(estimates[first] - truth) < 0.15 * np.linalg.norm(truth)
    later = np.stack(estimates[first :: int(FPS)])  # one estimate per second from then on
    per_second = np.linalg.norm(np.diff(later, axis=0), axis=1) / np.linalg.norm(later[:-1], axis=1)
    assert per_second.max() < 0.01


def test_a_frame_without_weight_leaves_the_shape_alone() -> None:
    shape = ShapeEstimate()
    shape.update(np.ones(10), 0.0, weight=10.0)
    np.testing.assert_array_equal(shape.update(np.zeros(10), 1 / FPS, weight=0.0), np.ones(10))


# --- bodies --------------------------------------------------------------------------------------


def empty_frame(views: int = 2) -> FrameBody:
    return FrameBody(
        view_orient=np.tile(np.eye(3), (views, 1, 1)), view_pose=np.tile(np.eye(3), (views, 23, 1, 1)),
        view_betas=np.zeros((views, 10)), view_cam=np.zeros((views, 3)), view_boxes=np.zeros((views, 3)),
        used=np.ones(views, bool),
    )  # fmt: skip


def make_frame(body, rotations: np.ndarray, mid_hip: np.ndarray, betas: np.ndarray | None = None) -> FrameBody:
    """A fused frame whose mid-hip is ``mid_hip`` (as engine.heatformer.inference builds it)."""
    return with_body(empty_frame(), body, np.zeros(10) if betas is None else betas, rotations, np.asarray(mid_hip, float))


def standing(angle: float = 0.0) -> np.ndarray:
    rotations = np.tile(np.eye(3), (24, 1, 1))
    rotations[0] = rodrigues_to_matrix(np.array([np.pi / 2, 0.0, 0.0]))  # body Y up -> world Z up
    rotations[18] = rodrigues_to_matrix(angle * AXIS)  # the left elbow
    return rotations


def mid_hip_of(body, frame: FrameBody) -> np.ndarray:
    rotations = np.concatenate([frame.orient[None], frame.pose])
    return body_points(body, frame.betas[None], rotations[None])[1][0] + frame.transl


def test_the_filtered_body_is_consistent(body) -> None:
    rng = np.random.default_rng(4)
    filt = BodyFilter(body)
    for i, t in enumerate(times(30)):
        raw = make_frame(body, standing(0.05 * i), np.array([0.1, 0.2, 0.9]) + rng.normal(0, 0.01, 3), rng.normal(0, 0.5, 10))
        out = filt.update(raw, t)
        if i == 0:  # the first frame passes through
            np.testing.assert_allclose(out.joints, raw.joints, atol=1e-6)
    rotations = np.concatenate([out.orient[None], out.pose])
    joints, mid = body_points(body, out.betas[None], rotations[None])
    np.testing.assert_allclose(out.joints, joints[0] + out.transl, atol=1e-9)
    np.testing.assert_allclose(mid[0] + out.transl, filt.motion.mid_hip.value, atol=1e-9)
    np.testing.assert_allclose(out.betas, filt.shape.betas)
    assert out.view_pose is raw.view_pose  # the per-view estimates pass through


def test_the_filter_restarts_after_a_gap_but_not_within_it(body) -> None:
    filt = BodyFilter(body)
    for t in times(20):
        filt.update(make_frame(body, standing(), np.array([0.0, 0.0, 0.9])), t)
    missing = empty_frame()
    assert filt.update(missing, 20 / FPS) is missing  # no fused body: unchanged
    moved = make_frame(body, standing(0.6), np.array([0.2, 0.0, 0.9]))
    within = filt.update(moved, 0.3 + 19 / FPS)  # 0.3 s later: still filtered
    assert filt.resets == 0 and not np.allclose(within.pose, moved.pose, atol=1e-3)
    after = filt.update(moved, 1.2)  # 0.58 s later: the motion filters restart from this frame
    assert filt.resets == 1
    np.testing.assert_allclose(after.pose, moved.pose, atol=1e-9)
    np.testing.assert_allclose(mid_hip_of(body, after), [0.2, 0.0, 0.9], atol=1e-5)


def test_a_jump_restarts_the_motion_and_the_shape_holds(body) -> None:
    filt = BodyFilter(body)
    for t in times(20):
        filt.update(make_frame(body, standing(), np.array([0.0, 0.0, 0.9]), np.zeros(10)), t)
    jumped = make_frame(body, standing(1.0), np.array([1.5, 0.0, 0.9]), np.full(10, 0.8))
    out = filt.update(jumped, 20 / FPS)
    assert filt.resets == 1
    np.testing.assert_allclose(out.pose, jumped.pose, atol=1e-9)
    np.testing.assert_allclose(mid_hip_of(body, out), [1.5, 0.0, 0.9], atol=1e-5)
    assert np.abs(out.betas).max() < 0.1  # the settling shape takes the frame at its weight


def test_time_going_back_restarts_everything(body) -> None:
    filt = BodyFilter(body)
    for t in times(20):
        filt.update(make_frame(body, standing(), np.array([0.0, 0.0, 0.9]), np.zeros(10)), t)
    other = make_frame(body, standing(1.0), np.array([0.2, 0.0, 0.9]), np.full(10, 0.8))
    out = filt.update(other, 0.0)  # a rewound replay
    assert filt.resets == 1
    np.testing.assert_allclose(out.betas, other.betas)
    np.testing.assert_allclose(out.joints, other.joints, atol=1e-5)


def test_the_smoother_beats_the_raw_sequence_without_moving_a_step(body) -> None:
    n, step_at = 120, 60
    rng = np.random.default_rng(5)
    angles = np.where(np.arange(n) >= step_at, 1.0, 0.0)  # the elbow snaps by 1 rad
    x = np.where(np.arange(n) >= step_at, 0.4, 0.0)  # and the body steps 40 cm
    truth = [make_frame(body, standing(a), np.array([xi, 0.0, 0.9])) for a, xi in zip(angles, x, strict=True)]
    raw = [
        make_frame(body, noisy_rotations(standing(a)[None], 0.02, seed=i)[0], np.array([xi, 0.0, 0.9]) + rng.normal(0, 0.01, 3))
        for i, (a, xi) in enumerate(zip(angles, x, strict=True))
    ]
    smooth = smooth_sequence(raw, times(n), body)

    def errors(frames: list[FrameBody]) -> tuple[np.ndarray, np.ndarray]:
        rot = np.stack([relative(g.pose, f.pose) for f, g in zip(frames, truth, strict=True)])
        mid = np.stack([mid_hip_of(body, f) - mid_hip_of(body, g) for f, g in zip(frames, truth, strict=True)])
        return np.linalg.norm(rot, axis=-1), np.linalg.norm(mid, axis=-1)

    (rot_raw, mid_raw), (rot_s, mid_s) = errors(raw), errors(smooth)
    away = np.r_[10 : step_at - 5, step_at + 5 : n - 10]  # off the step and the ends
    assert rot_s[away].mean() < 0.5 * rot_raw[away].mean()
    assert mid_s[away].mean() < 0.5 * mid_raw[away].mean()
    elbow = np.stack([matrix_to_rodrigues(f.pose[17]) @ AXIS for f in smooth])
    crossing = int(np.argmax(elbow > 0.5))  # where the smoothed elbow passes half the step
    assert abs(crossing - step_at) <= 1
    hips = np.stack([mid_hip_of(body, f)[0] for f in smooth])
    assert abs(int(np.argmax(hips > 0.2)) - step_at) <= 1
    np.testing.assert_allclose(np.linalg.det(np.stack([f.pose for f in smooth])), 1.0, atol=1e-9)
    assert all(np.allclose(f.betas, smooth[0].betas) for f in smooth)  # one shape per segment


def test_the_smoother_splits_at_gaps_and_passes_unfused_frames(body) -> None:
    frames = [make_frame(body, standing(), np.array([0.0, 0.0, 0.9])) for _ in range(6)]
    frames[2] = empty_frame()
    t = np.array([0.0, 1 / FPS, 2 / FPS, 3 / FPS, 2.0, 2 + 1 / FPS])
    smooth = smooth_sequence(frames, t, body)
    assert smooth[2] is frames[2]
    np.testing.assert_allclose(smooth[4].joints, frames[4].joints, atol=1e-5)
    with pytest.raises(ValueError, match="6 frames but 5 timestamps"):
        smooth_sequence(frames, t[:5], body)


# --- the live pipeline ---------------------------------------------------------------------------


def test_live_body_shows_the_filtered_body(model) -> None:
    """LiveBody (temporal=True) hands the filtered frame to the estimate and the display: over
    noisy detections of a still person the joints jitter less than without the filter."""
    cameras = [looking_at(n, e, (0.0, 0.0, 1.0), focal=500.0) for n, e in
               [("north", (0.3, 3.5, 2.3)), ("east", (3.5, -0.2, 2.3)), ("south", (-0.2, -3.5, 2.0))]]  # fmt: skip
    person = make_frame(model.body, standing(), np.array([0.1, 0.0, 0.95]))
    with torch.no_grad():
        keypoints = model.body.joints_rotmat(
            torch.as_tensor(person.betas[None], dtype=torch.float32),
            torch.as_tensor(rotations_of(person)[None], dtype=torch.float32),
        ).keypoints
    world = keypoints[0].double().numpy() + person.transl
    rng = np.random.default_rng(6)

    def estimates(temporal: bool) -> list[BodyEstimate]:
        live, out = LiveBody(model, cameras, calibrated=True, temporal=temporal), []
        for i, t in enumerate(times(12)):  # the Kalman filter settles over the first few frames
            frames = {c.name: Frame(c.name, np.zeros((480, 640, 3), np.uint8), t, i) for c in cameras}
            points = {c.name: np.hstack([c.project(world) + rng.normal(0, 2.0, (17, 2)), np.full((17, 1), 0.9)]) for c in cameras}
            est = BodyEstimate(FrameSet(frames, t, i), {n: Keypoints2D(n, p.astype(np.float32)) for n, p in points.items()},
                               keypoints3d=np.hstack([world, np.ones((17, 1))]))  # fmt: skip
            live(est)
            out.append(est)
        return out

    raw, filtered = estimates(False), estimates(True)
    last = filtered[-1]
    assert last.body is not None and last.fused is not None
    np.testing.assert_allclose(last.fused.transl, last.body.transl)
    np.testing.assert_allclose(last.body.betas, filtered[0].body.betas, atol=0.5)  # the shape is held
    assert np.ptp([e.body.betas for e in filtered], axis=0).max() < np.ptp([e.body.betas for e in raw], axis=0).max()
    jitter_raw = np.abs(np.diff([e.body.joints for e in raw], 2, axis=0)).mean()
    jitter_filtered = np.abs(np.diff([e.body.joints for e in filtered], 2, axis=0)).mean()
    assert jitter_filtered < 0.5 * jitter_raw


def view_frame(orient: np.ndarray, elbow: np.ndarray, betas: np.ndarray, views: int = 1, view: int = 0) -> FrameBody:
    """An uncalibrated frame whose ``view`` holds a body turned ``orient`` in that camera, its left
    elbow bent ``elbow``."""
    frame = empty_frame(views)
    frame.used[:] = False
    frame.used[view] = True
    frame.view_orient[view], frame.view_pose[view, 17], frame.view_betas[view] = orient, elbow, betas
    frame.view_cam[view] = [0.1, 0.0, 0.0]
    return frame


def test_view_bodies_are_filtered_without_lag_and_keep_their_fitted_shape() -> None:
    # a one-view body turning steadily at 1 rad/s, its orientation and elbow noisy (2 degrees), its betas jittering
    n = 240
    true_orient, true_elbow = spin(1.0 * times(n)), spin(0.5 * np.ones(n))
    orient, elbow = noisy_rotations(true_orient, 0.035, seed=1), noisy_rotations(true_elbow, 0.035, seed=2)
    betas = 0.5 + np.random.default_rng(3).normal(0.0, 0.2, (n, 10))
    view_filter = ViewFilter()
    out = [view_filter.update(view_frame(o, e, b), t) for o, e, b, t in zip(orient, elbow, betas, times(n), strict=True)]
    got_orient, got_elbow = np.stack([f.view_orient[0] for f in out]), np.stack([f.view_pose[0, 17] for f in out])
    for true, noisy, got in ((true_orient, orient, got_orient), (true_elbow, elbow, got_elbow)):
        assert jitter(relative(true, noisy)) / jitter(relative(true, got)) > 2.2  # the live filter's gain on rotations
    clean = ViewFilter()
    steady = [clean.update(view_frame(o, e, b), t) for o, e, b, t in zip(true_orient, true_elbow, betas, times(n), strict=True)]
    lag = relative(true_orient, np.stack([f.view_orient[0] for f in steady]))[int(FPS) :] @ AXIS  # along the turn, radians
    assert np.abs(lag).max() < 1e-3 / FPS  # no lag on a steady turn: a thousandth of a frame's turn
    # the shape and the placement stay as fitted (the view's scale was fitted with those betas)
    assert np.array_equal(np.stack([f.view_betas[0] for f in out]), betas)
    assert out[0].view_cam.tolist() == [[0.1, 0.0, 0.0]]


def test_a_held_view_shape_is_drawn_the_size_the_fitted_one_was(body) -> None:
    rng = np.random.default_rng(4)
    view_filter = ViewFilter(body)
    for i, t in enumerate(times(90)):
        frame = view_frame(spin(np.array([0.3]))[0], np.eye(3), rng.normal(0.0, 0.8, 10))
        frame.view_cam[0, 0] = 0.2 + 0.01 * i
        shown = view_filter.update(frame, t, weight=10.0)
        sizes = []
        for f in (frame, shown):
            rotations = np.concatenate([f.view_orient[0][None], f.view_pose[0]])[None]
            joints, mid = body_points(body, f.view_betas[:1], rotations)
            spread = np.sqrt(((joints[0] - mid[0]) ** 2).sum(-1).mean())
            sizes.append(spread * np.exp(f.view_cam[0, 0]))  # the body's size in the view (crop units, up to 0.5)
        assert sizes[1] == pytest.approx(sizes[0], rel=1e-6)  # the body model in float32
        assert np.array_equal(shown.view_cam[0, 1:], frame.view_cam[0, 1:])  # the mid-hip's place as fitted
    held = shown.view_betas[0]
    assert not np.allclose(held, frame.view_betas[0]) and np.abs(held).max() < 0.5  # the settled mean of N(0, 0.8)


def test_a_calibrated_room_filters_no_view_bodies(model) -> None:
    # someone seen by one camera of a calibrated room gets that view's body, HeatFormer's as it is
    cams = [looking_at(name, eye, size=(640, 480), focal=500.0) for name, eye in (("a", (3.0, 0.0, 1.4)), ("b", (0.0, 3.0, 1.4)))]
    assert LiveBody(model, cams, calibrated=True).view_filter is None
    assert LiveBody(model, cams, calibrated=False).view_filter is not None
    assert LiveBody(model, cams, calibrated=False).fork().view_filter is not None


def test_a_view_filter_restarts_where_a_view_turns_round_pauses_or_time_goes_back() -> None:
    view_filter = ViewFilter()
    betas = np.zeros(10)
    for t in times(30):
        view_filter.update(view_frame(np.eye(3), np.eye(3), betas), t)
    # turned round (a run of exchanged answers ended): the view's body is taken as it is, not swung round slowly
    half = rodrigues_to_matrix(np.array([0.0, np.pi * 0.9, 0.0]))
    now = times(31)[-1]
    turned = view_filter.update(view_frame(half, np.eye(3), betas), now)
    assert np.allclose(turned.view_orient[0], half)
    # within the gap a small turn is filtered (it moves part of the way)
    step = rodrigues_to_matrix(np.array([0.0, 0.2, 0.0]))
    moved = view_filter.update(view_frame(half @ step, np.eye(3), betas), now + 1 / FPS)
    assert 0.0 < np.linalg.norm(relative(half[None], moved.view_orient[:1])) < 0.2
    # after a pause over half a second: the view's filter starts again from what is seen
    later = view_filter.update(view_frame(np.eye(3), np.eye(3), betas), now + 1.0)
    assert np.allclose(later.view_orient[0], np.eye(3))
    # another view of the same person has its own filter; a fused body and time going back pass / restart
    other = view_filter.update(view_frame(half, np.eye(3), betas, views=2, view=1), now + 1.0 + 1 / FPS)
    assert np.allclose(other.view_orient[1], half)
    fused = view_frame(half, np.eye(3), betas)
    fused.transl = np.zeros(3)
    assert view_filter.update(fused, now + 2.0) is fused
    back = view_filter.update(view_frame(np.eye(3) @ step, np.eye(3), betas + 1.0), 0.5)
    assert np.allclose(back.view_orient[0], step)


def test_someone_else_is_a_box_that_moved_further_than_a_person_moves() -> None:
    box = np.array([100.0, 200.0, 100.0])  # x0, y0, size: centre (150, 250)
    # within 1/25 s a person's box centre moves at most (0.25 + 1.0 / 25) = 0.29 box sizes; in 0.5 s 0.75
    assert not someone_else(box, box + np.array([28.0, 0.0, 0.0]), 0.04)
    assert someone_else(box, box + np.array([0.0, 30.0, 0.0]), 0.04)
    assert not someone_else(box, box + np.array([45.0, -60.0, 0.0]), 0.5)  # 75 px
    assert someone_else(box, box + np.array([46.0, -61.0, 0.0]), 0.5)
    # the larger box sets the scale (a smaller person's box far from a large one's is still far)
    assert not someone_else(box, np.array([155.0, 255.0, 20.0]), 0.04)  # 21 px from the centre
    assert someone_else(np.array([170.0, 270.0, 20.0]), np.array([190.0, 270.0, 20.0]), 0.04)
    # per view; an unknown box (NaN) is never somebody else
    both = someone_else(np.stack([box, box]), np.stack([box + np.array([100.0, 0.0, 0.0]), np.full(3, np.nan)]), 0.1)
    assert both.tolist() == [True, False]


def test_a_view_filter_starts_again_for_somebody_else(body) -> None:
    # one-person mode: a view's detector switches to somebody else standing elsewhere, turned 40 degrees
    # the other way and of another build; their first frame is taken as it is, then filtered again
    def seen(orient: np.ndarray, betas: np.ndarray, x0: float) -> FrameBody:
        frame = view_frame(orient, np.eye(3), betas)
        frame.view_boxes[0] = [x0, 100.0, 300.0]
        return frame

    first, other = np.full(10, 0.8), np.full(10, -0.8)
    for near in (True, False):
        view_filter = ViewFilter(body)
        for t in times(60):
            view_filter.update(seen(np.eye(3), first, 200.0), t)
        now = times(61)[-1]
        turned = spin(np.array([0.7]))[0]
        shown = view_filter.update(seen(turned, other, 260.0 if near else 700.0), now)
        if near:  # 60 px (0.2 box sizes) in a frame: the same person, whose turn and shape are filtered
            assert 0.0 < np.linalg.norm(relative(turned[None], shown.view_orient[:1])) < 0.6
            assert np.allclose(shown.view_betas[0], first, atol=0.05)
        else:  # 500 px: somebody else, their own orientation and shape from the first frame on
            assert np.allclose(shown.view_orient[0], turned)
            assert np.allclose(shown.view_betas[0], other)
            later = view_filter.update(seen(turned @ spin(np.array([0.2]))[0], first, 710.0), now + 1 / FPS)
            assert 0.0 < np.linalg.norm(relative((turned @ spin(np.array([0.2]))[0])[None], later.view_orient[:1])) < 0.2


def test_the_held_shape_waits_out_a_moment_s_switch_and_needs_every_view(body) -> None:
    # stand-ins: the person (betas 0.8) at x0 = 200 in each view, somebody else (-0.8) at x0 = 700
    def seen(t_boxes: dict[int, float], betas: dict[int, float]) -> FrameBody:
        frame = empty_frame(2)
        frame.used[:] = False
        for v, x0 in t_boxes.items():
            frame.used[v], frame.view_betas[v], frame.view_boxes[v] = True, np.full(10, betas[v]), [x0, 100.0, 300.0]
            frame.view_cam[v] = [0.1, 0.0, 0.0]
        return frame

    here, there = 0.8, -0.8

    def settled(views: tuple[int, ...]) -> tuple[ViewFilter, float]:
        view_filter = ViewFilter(body)
        for t in times(90):  # 1.5 s: the shape settled on the person's
            view_filter.update(seen(dict.fromkeys(views, 200.0), dict.fromkeys(views, here)), t)
        return view_filter, times(91)[-1]

    # one view, somebody else for one frame-set and back: their own betas that frame-set, then the person's held shape
    view_filter, now = settled((0,))
    away = view_filter.update(seen({0: 700.0}, {0: there}), now)
    assert np.allclose(away.view_betas[0], there)
    back = view_filter.update(seen({0: 205.0}, {0: here}), now + 1 / FPS)
    assert np.allclose(back.view_betas[0], here, atol=1e-6)
    for k in range(20):  # 0.33 s on: still the shape held since the start (the moment's switch was undone)
        view_filter.update(seen({0: 205.0}, {0: here}), now + (2 + k) / FPS)
    assert view_filter.shape.t0 == times(1)[0]
    now += 21 / FPS
    # somebody else for longer: after SWITCH_CONFIRM_S (0.25 s) their own held shape begins
    for k in range(30):
        shown = view_filter.update(seen({0: 700.0}, {0: there + 0.1 * (-1) ** k}), now + (2 + k) / FPS)
    assert np.allclose(shown.view_betas[0], there, atol=0.02)  # held: the mean of their frames, not the last one's
    assert not np.allclose(shown.view_betas[0], there + 0.1 * (-1) ** 29)
    # two views, somebody else in one of them only: the person's shape holds
    view_filter, now = settled((0, 1))
    for k in range(30):
        shown = view_filter.update(seen({0: 700.0, 1: 200.0}, {0: there, 1: here}), now + k / FPS)
    assert np.allclose(shown.view_betas[[0, 1]], here, atol=0.03)  # drifting slowly to the views' mean (0), as held shapes do
    # ... and in both, the second a frame-set after the first: dropped a quarter second after the second
    view_filter, now = settled((0, 1))
    view_filter.update(seen({0: 700.0, 1: 200.0}, {0: there, 1: here}), now)
    for k in range(1, 17):
        shown = view_filter.update(seen({0: 700.0, 1: 700.0}, {0: there, 1: there}), now + k / FPS)
        assert np.allclose(shown.view_betas[[0, 1]], there)  # their own betas while waiting, then their held shape
    assert np.allclose(view_filter.shape.betas, there)  # the held shape is theirs (begun 0.25 s after the second switch)


def test_one_person_mode_switching_to_the_bystander_gives_her_her_own_shape(model) -> None:
    # the bundled demo's cam01 (real BlazePose detections): one-person mode following the subject,
    # then (as a detector following one person may) the bystander at the view's left edge, every
    # third frame-set as the app processes it in real time
    from core.formats import load_keypoints_npz
    from engine.heatformer.inference import estimate_frame
    from engine.heatformer.offsets import offsets_for

    demo = load_keypoints_npz(Path(__file__).parent / "data" / "people" / "demo_blazepose.npz")
    saved = model.keypoint_offsets
    model.keypoint_offsets = offsets_for(model.body, "blazepose")  # as the app runs BlazePose's keypoints
    try:
        view_filter, size = ViewFilter(model.body), np.array([demo.cameras(True)[0].image_size], np.float64)
        shown, fitted = {}, {}
        for i in range(0, 100, 3):
            people = sorted((p for p in demo.keypoints[i, 0] if p[:, 2].max() > 0), key=lambda p: p[p[:, 2] > 0, 0].mean())
            frame = estimate_frame(model, (people[0] if i >= 51 else people[-1])[None], image_size=size)
            fitted[i], shown[i] = frame.view_betas[0].copy(), view_filter.update(frame, float(demo.timestamps[i])).view_betas[0]
    finally:
        model.keypoint_offsets = saved
    assert np.abs(shown[48] - fitted[48]).max() > 0.2  # the subject's shape held over her frames
    np.testing.assert_allclose(shown[51], fitted[51])  # the bystander's own shape from her first frame on ...
    assert np.abs(shown[51] - shown[48]).max() > 0.4  # ... not the subject's (which she kept before)
    assert np.abs(shown[99] - fitted[51]).max() < np.abs(shown[99] - shown[48]).max()
