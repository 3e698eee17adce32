"""core.geometry on hand-built cameras with known answers (and OpenCV as a reference)."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from core import geometry
from core.camera import Camera

K_SIMPLE = np.array([[1000.0, 0.0, 320.0], [0.0, 1000.0, 240.0], [0.0, 0.0, 1.0]])
DIST = np.array([-0.12, 0.08, 1.5e-3, -8e-4, -0.02])  # k1, k2, p1, p2, k3 all non-zero


def look_at(center, target, up=(0.0, 0.0, 1.0)):
    """World-to-camera R, t (OpenCV frame: x right, y down, z forward) for a camera at
    ``center`` looking at ``target`` with world ``up`` (Z up)."""
    center, target, up = (np.asarray(v, float) for v in (center, target, up))
    z = target - center
    z /= np.linalg.norm(z)
    x = np.cross(-up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R, -R @ center


def rig(n_views=4, radius=4.0, height=2.0, f=1000.0):
    """``n_views`` cameras on a circle around the origin, all looking at (0, 0, 1)."""
    K = np.array([[f, 0.0, 640.0], [0.0, f, 360.0], [0.0, 0.0, 1.0]])
    cams = []
    for i in range(n_views):
        a = 2 * np.pi * i / n_views + 0.3
        R, t = look_at((radius * np.cos(a), radius * np.sin(a), height + 0.2 * i), (0.0, 0.0, 1.0))
        cams.append(Camera(f"c{i}", (1280, 720), K, np.zeros(5), R, t))
    return cams


def known_points(n=25, seed=7):
    rng = np.random.default_rng(seed)
    return rng.uniform([-0.8, -0.8, 0.0], [0.8, 0.8, 2.0], (n, 3))


def skew(r):
    """Cross-product matrices ``[..., 3, 3]`` of vectors ``[..., 3]``."""
    x, y, z = r[..., 0], r[..., 1], r[..., 2]
    o = np.zeros_like(x)
    return np.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*r.shape[:-1], 3, 3)


def random_axes(n, seed=0):
    a = np.random.default_rng(seed).normal(size=(n, 3))
    return a / np.linalg.norm(a, axis=1, keepdims=True)


# ----------------------------------------------------------------------------- Rodrigues


def test_rodrigues_90_degrees_about_z_is_exact_matrix():
    R = geometry.rodrigues_to_matrix(np.array([0.0, 0.0, np.pi / 2]))
    expected = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(R, expected, atol=1e-15)
    # x axis goes to y axis (right-handed, counter-clockwise seen from +z)
    np.testing.assert_allclose(R @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(geometry.matrix_to_rodrigues(expected), [0.0, 0.0, np.pi / 2], atol=1e-15)


def test_rodrigues_90_degrees_about_x_and_minus_y():
    np.testing.assert_allclose(
        geometry.rodrigues_to_matrix([np.pi / 2, 0.0, 0.0]), [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-15
    )
    np.testing.assert_allclose(
        geometry.rodrigues_to_matrix([0.0, -np.pi / 2, 0.0]), [[0, 0, -1], [0, 1, 0], [1, 0, 0]], atol=1e-15
    )


def test_rodrigues_zero_is_identity_both_ways():
    np.testing.assert_array_equal(geometry.rodrigues_to_matrix(np.zeros(3)), np.eye(3))
    np.testing.assert_array_equal(geometry.matrix_to_rodrigues(np.eye(3)), np.zeros(3))


def test_rodrigues_matches_opencv_on_random_vectors():
    rng = np.random.default_rng(3)
    rvecs = random_axes(50, seed=3) * rng.uniform(0.0, np.pi, (50, 1))
    R = geometry.rodrigues_to_matrix(rvecs)  # batched [50, 3, 3]
    assert R.shape == (50, 3, 3)
    for r, Ri in zip(rvecs, R, strict=True):
        np.testing.assert_allclose(Ri, cv2.Rodrigues(r)[0], atol=1e-14)
    np.testing.assert_allclose(R @ np.transpose(R, (0, 2, 1)), np.broadcast_to(np.eye(3), R.shape), atol=1e-14)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-14)


def test_rodrigues_round_trip_generic_angles_batched():
    rng = np.random.default_rng(4)
    rvecs = random_axes(200, seed=4) * rng.uniform(0.01, np.pi - 0.01, (200, 1))
    back = geometry.matrix_to_rodrigues(geometry.rodrigues_to_matrix(rvecs))
    np.testing.assert_allclose(back, rvecs, atol=1e-9)


@pytest.mark.parametrize("angle", [0.0, 1e-14, 1e-12, 1e-9, 1e-7, 1e-5, 1e-3])
def test_rodrigues_round_trip_near_zero(angle):
    rvecs = random_axes(20, seed=5) * angle
    R = geometry.rodrigues_to_matrix(rvecs)
    # first order: R = I + [r]x (rodrigues_to_matrix treats |r| <= 1e-12 as identity: 1e-12 rad, negligible)
    np.testing.assert_allclose(R - np.eye(3), skew(rvecs), rtol=0, atol=2e-12 + angle**2)
    back = geometry.matrix_to_rodrigues(R)
    np.testing.assert_allclose(back, rvecs, rtol=0, atol=2e-12 + 1e-9 * angle)


@pytest.mark.parametrize("axis", [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0), (0.3, -0.5, 0.8)])
def test_rodrigues_round_trip_exactly_pi(axis):
    axis = np.asarray(axis) / np.linalg.norm(axis)
    R = geometry.rodrigues_to_matrix(axis * np.pi)
    back = geometry.matrix_to_rodrigues(R)
    # At pi, r and -r are the same rotation: the recovered vector must be +-axis * pi.
    assert abs(np.linalg.norm(back) - np.pi) < 1e-7
    assert min(np.abs(back - axis * np.pi).max(), np.abs(back + axis * np.pi).max()) < 1e-7
    # arccos(-1 + 1 ulp) limits the angle to ~1.5e-8 rad here (OpenCV does no better).
    np.testing.assert_allclose(geometry.rodrigues_to_matrix(back), R, atol=1e-7)


@pytest.mark.parametrize("eps", [1e-3, 1e-2, 0.1])
def test_rodrigues_round_trip_near_pi(eps):
    rvecs = random_axes(200, seed=6) * (np.pi - eps)
    R = geometry.rodrigues_to_matrix(rvecs)
    back = geometry.matrix_to_rodrigues(R)
    np.testing.assert_allclose(geometry.rodrigues_to_matrix(back), R, atol=1e-8)
    np.testing.assert_allclose(back, rvecs, atol=1e-8)


@pytest.mark.parametrize("eps", [1.1e-6, 2e-6])
def test_rodrigues_round_trip_just_above_near_pi_threshold(eps):
    rvecs = random_axes(200, seed=1) * (np.pi - eps)
    R = geometry.rodrigues_to_matrix(rvecs)
    back = geometry.matrix_to_rodrigues(R)
    # Sign ambiguity alone costs ~2 * eps; OpenCV's cv2.Rodrigues stays below 5e-6 here.
    assert np.abs(geometry.rodrigues_to_matrix(back) - R).max() < 1e-5
    assert np.all(np.linalg.norm(back, axis=-1) <= np.pi + 1e-9)


# ----------------------------------------------------------------------------- projection


def test_project_points_hand_computed_camera():
    # Camera 4 m in front of the origin (at y = -4, z = 1) looking along +y, Z up.
    R, t = look_at((0.0, -4.0, 1.0), (0.0, 0.0, 1.0))
    np.testing.assert_allclose(R, [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-15)  # = 90 deg about x
    np.testing.assert_allclose(t, [0.0, 1.0, 4.0], atol=1e-15)
    pts = np.array(
        [
            [0.0, 0.0, 1.0],  # straight ahead, depth 4 -> principal point
            [0.5, 0.0, 1.2],  # cam (0.5, -0.2, 4) -> 320 + 125, 240 - 50
            [-0.4, 1.0, 0.2],  # cam (-0.4, 0.8, 5) -> 320 - 80, 240 + 160
            [1.0, 4.0, 2.0],  # cam (1, -1, 8) -> 320 + 125, 240 - 125
        ]
    )
    expected = np.array([[320.0, 240.0], [445.0, 190.0], [240.0, 400.0], [445.0, 115.0]])
    np.testing.assert_allclose(geometry.project_points(pts, K_SIMPLE, R, t), expected, rtol=0, atol=1e-9)
    # zero distortion takes the same path
    np.testing.assert_allclose(geometry.project_points(pts, K_SIMPLE, R, t, np.zeros(5)), expected, rtol=0, atol=1e-9)

    cam = Camera("front", (640, 480), K_SIMPLE, np.zeros(5), R, t)
    np.testing.assert_allclose(cam.center, [0.0, -4.0, 1.0], atol=1e-15)
    np.testing.assert_allclose(cam.depth(pts), [4.0, 4.0, 5.0, 8.0], atol=1e-15)
    np.testing.assert_allclose(cam.project(pts), expected, atol=1e-9)
    P = cam.P
    h = np.hstack([pts, np.ones((4, 1))]) @ P.T
    np.testing.assert_allclose(h[:, :2] / h[:, 2:], expected, atol=1e-9)


def test_project_points_with_skew_and_unequal_focal_lengths():
    K = np.array([[800.0, 4.0, 300.0], [0.0, 600.0, 200.0], [0.0, 0.0, 1.0]])
    # identity pose, point (0.4, -0.2, 2) -> normalized (0.2, -0.1)
    # u = 800 * 0.2 + 4 * -0.1 + 300 = 459.6, v = 600 * -0.1 + 200 = 140
    out = geometry.project_points(np.array([[0.4, -0.2, 2.0]]), K, np.eye(3), np.zeros(3))
    np.testing.assert_allclose(out, [[459.6, 140.0]], rtol=0, atol=1e-9)


def test_project_points_batched_leading_dims():
    R, t = look_at((0.0, -4.0, 1.0), (0.0, 0.0, 1.0))
    pts = known_points(12).reshape(3, 4, 3)
    out = geometry.project_points(pts, K_SIMPLE, R, t, DIST)
    assert out.shape == (3, 4, 2)
    np.testing.assert_allclose(out.reshape(-1, 2), geometry.project_points(pts.reshape(-1, 3), K_SIMPLE, R, t, DIST))


def test_project_points_with_distortion_matches_opencv():
    K = np.array([[1200.0, 0.0, 650.0], [0.0, 1190.0, 355.0], [0.0, 0.0, 1.0]])
    rvec = np.array([0.1, -0.2, 0.05])
    t = np.array([0.1, 0.2, 4.0])
    pts = known_points(60)
    ours = geometry.project_points(pts, K, geometry.rodrigues_to_matrix(rvec), t, DIST)
    ref = cv2.projectPoints(pts, rvec, t, K, DIST)[0].reshape(-1, 2)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-8)
    # and distortion really moved the points (the test would catch it being ignored)
    plain = geometry.project_points(pts, K, geometry.rodrigues_to_matrix(rvec), t)
    assert np.abs(ours - plain).max() > 1.0


def test_distortion_known_value():
    # k1 only: x_d = x (1 + k1 r^2); (0.5, 0) with k1 = -0.2 -> 0.5 * 0.95
    out = geometry.distort_normalized(np.array([[0.5, 0.0], [0.0, 0.0]]), np.array([-0.2, 0, 0, 0, 0]))
    np.testing.assert_allclose(out, [[0.475, 0.0], [0.0, 0.0]], atol=1e-15)
    # p1 only: y_d = y + p1 (r^2 + 2 y^2), x_d = x + 2 p1 x y
    out = geometry.distort_normalized(np.array([0.2, 0.1]), np.array([0, 0, 0.01, 0, 0]))
    np.testing.assert_allclose(out, [0.2 + 2 * 0.01 * 0.02, 0.1 + 0.01 * (0.05 + 0.02)], atol=1e-15)


def test_distort_undistort_round_trip():
    grid = np.stack(np.meshgrid(np.linspace(-0.5, 0.5, 21), np.linspace(-0.4, 0.4, 17)), -1).reshape(-1, 2)
    distorted = geometry.distort_normalized(grid, DIST)
    assert np.abs(distorted - grid).max() > 1e-3  # not a no-op
    np.testing.assert_allclose(geometry.undistort_normalized(distorted, DIST), grid, rtol=0, atol=1e-9)
    # and the other way round
    np.testing.assert_allclose(
        geometry.distort_normalized(geometry.undistort_normalized(grid, DIST), DIST), grid, rtol=0, atol=1e-9
    )


def test_undistort_pixels_matches_opencv():
    K = np.array([[1000.0, 0.0, 320.0], [0.0, 990.0, 240.0], [0.0, 0.0, 1.0]])
    pix = np.stack(np.meshgrid(np.linspace(0, 640, 9), np.linspace(0, 480, 7)), -1).reshape(-1, 2)
    ours = geometry.undistort_pixels(pix, K, DIST)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-15)
    ref = cv2.undistortPointsIter(pix.reshape(-1, 1, 2), K, DIST, None, K, criteria).reshape(-1, 2)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-8)
    # cv2.undistortPoints (5 iterations by default) agrees to well under a pixel
    ref5 = cv2.undistortPoints(pix.reshape(-1, 1, 2), K, DIST, P=K).reshape(-1, 2)
    np.testing.assert_allclose(ours, ref5, rtol=0, atol=1e-3)
    # principal point is a fixed point; corners move by pixels
    np.testing.assert_allclose(geometry.undistort_pixels([320.0, 240.0], K, DIST), [320.0, 240.0], atol=1e-12)
    assert np.abs(ours - pix).max() > 5.0


def test_undistort_pixels_inverts_projection():
    cams = rig()
    cam = Camera("d", (1280, 720), cams[0].K, DIST, cams[0].R, cams[0].t)
    pts = known_points()
    ideal = geometry.project_points(pts, cam.K, cam.R, cam.t)
    np.testing.assert_allclose(cam.undistort(cam.project(pts)), ideal, rtol=0, atol=1e-7)


def test_undistort_pixels_without_distortion_is_identity():
    pix = np.array([[10.0, 20.0], [600.0, 400.0]])
    np.testing.assert_array_equal(geometry.undistort_pixels(pix, K_SIMPLE, None), pix)
    np.testing.assert_allclose(geometry.undistort_pixels(pix, K_SIMPLE, np.zeros(5)), pix, atol=1e-12)


def test_undistort_pixels_with_skewed_K():
    K = np.array([[1000.0, 5.0, 320.0], [0.0, 1000.0, 240.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(geometry.undistort_pixels([[320.0, 440.0]], K, np.zeros(5)), [[320.0, 440.0]], atol=1e-9)
    R, t = np.eye(3), np.array([0.0, 0.0, 4.0])
    X = np.array([[0.2, 0.8, 0.0]])
    observed = geometry.project_points(X, K, R, t, DIST)
    np.testing.assert_allclose(geometry.undistort_pixels(observed, K, DIST), geometry.project_points(X, K, R, t), atol=1e-7)


# ----------------------------------------------------------------------------- triangulation


def observe(cams, pts):
    pixels = np.stack([geometry.project_points(pts, c.K, c.R, c.t) for c in cams])
    P = np.stack([c.P for c in cams])
    return pixels, P


@pytest.mark.parametrize("n_views", [2, 3, 4])
def test_triangulate_exact_without_noise(n_views):
    cams = rig(n_views)
    pts = known_points()
    pixels, P = observe(cams, pts)
    X, valid = geometry.triangulate_dlt(pixels, np.ones(pixels.shape[:2]), P)
    assert X.shape == (len(pts), 3)
    assert valid.dtype == bool and valid.all()
    np.testing.assert_allclose(X, pts, rtol=0, atol=1e-9)


def test_triangulate_unequal_weights_still_exact_without_noise():
    cams = rig(4)
    pts = known_points()
    pixels, P = observe(cams, pts)
    w = np.random.default_rng(1).uniform(0.2, 1.0, pixels.shape[:2])
    X, valid = geometry.triangulate_dlt(pixels, w, P)
    assert valid.all()
    np.testing.assert_allclose(X, pts, rtol=0, atol=1e-9)


def test_triangulate_zero_weight_view_with_garbage_is_ignored():
    cams = rig(4)
    pts = known_points()
    pixels, P = observe(cams, pts)
    garbage = pixels.copy()
    garbage[2] = np.random.default_rng(2).uniform(-5000, 5000, garbage[2].shape)
    w = np.ones(pixels.shape[:2])
    w[2] = 0.0
    X, valid = geometry.triangulate_dlt(garbage, w, P)
    X3, _ = geometry.triangulate_dlt(pixels[[0, 1, 3]], w[[0, 1, 3]], P[[0, 1, 3]])
    assert valid.all()
    np.testing.assert_allclose(X, pts, rtol=0, atol=1e-9)
    np.testing.assert_allclose(X, X3, rtol=0, atol=1e-12)
    # negative weights are clipped to zero: same result
    w[2] = -3.0
    Xn, _ = geometry.triangulate_dlt(garbage, w, P)
    np.testing.assert_allclose(Xn, pts, rtol=0, atol=1e-9)
    # while with full weight the garbage view does ruin the result (so weight 0 really matters)
    Xbad, _ = geometry.triangulate_dlt(garbage, np.ones(pixels.shape[:2]), P)
    assert np.nanmax(np.linalg.norm(Xbad - pts, axis=1)) > 0.05


def test_triangulate_weight_reduces_influence_of_a_bad_view():
    cams = rig(4)
    pts = known_points()
    pixels, P = observe(cams, pts)
    biased = pixels.copy()
    biased[0] += 15.0  # view 0 is off by 15 px
    w = np.ones(pixels.shape[:2])
    err_full = np.linalg.norm(geometry.triangulate_dlt(biased, w, P)[0] - pts, axis=1).mean()
    w[0] = 0.05
    err_low = np.linalg.norm(geometry.triangulate_dlt(biased, w, P)[0] - pts, axis=1).mean()
    assert err_full > 0.005
    assert err_low < err_full / 5


def test_triangulate_min_views_mask():
    cams = rig(4)
    pts = known_points(6)
    pixels, P = observe(cams, pts)
    w = np.ones(pixels.shape[:2])
    w[1:, 0] = 0.0  # point 0 seen only by view 0
    w[:, 1] = 0.0  # point 1 seen by nobody
    w[2:, 2] = 0.0  # point 2 seen by views 0 and 1
    X, valid = geometry.triangulate_dlt(pixels, w, P)
    np.testing.assert_array_equal(valid, [False, False, True, True, True, True])
    assert np.isnan(X[0]).all() and np.isnan(X[1]).all()
    np.testing.assert_allclose(X[2:], pts[2:], rtol=0, atol=1e-9)

    X3, valid3 = geometry.triangulate_dlt(pixels, w, P, min_views=3)
    np.testing.assert_array_equal(valid3, [False, False, False, True, True, True])
    assert np.isnan(X3[:3]).all()
    np.testing.assert_allclose(X3[3:], pts[3:], rtol=0, atol=1e-9)

    X1, valid1 = geometry.triangulate_dlt(pixels, w, P, min_views=1)
    assert valid1[0] and not valid1[1]  # one view is enough when asked (the point is then on a ray)


def test_triangulate_with_pixel_noise_within_a_few_mm():
    cams = rig(4)
    pts = known_points(200, seed=11)
    pixels, P = observe(cams, pts)
    noisy = pixels + np.random.default_rng(12).normal(0.0, 0.5, pixels.shape)  # 0.5 px sigma
    X, valid = geometry.triangulate_dlt(noisy, np.ones(pixels.shape[:2]), P)
    assert valid.all()
    err = np.linalg.norm(X - pts, axis=1)
    assert err.mean() < 0.003  # 0.5 px at f = 1000 and ~4 m is 2 mm per view
    assert err.max() < 0.010
    assert err.mean() > 1e-5  # the noise is really there


def test_triangulate_distorted_observations_via_camera_undistort():
    cams = [Camera(c.name, c.image_size, c.K, DIST * (1 + 0.1 * i), c.R, c.t) for i, c in enumerate(rig(3))]
    pts = known_points()
    observed = np.stack([c.project(pts) for c in cams])
    ideal = np.stack([c.undistort(o) for c, o in zip(cams, observed, strict=True)])
    X, valid = geometry.triangulate_dlt(ideal, np.ones(ideal.shape[:2]), np.stack([c.P for c in cams]))
    assert valid.all()
    np.testing.assert_allclose(X, pts, rtol=0, atol=1e-6)


def test_projecting_into_every_view_at_once_matches_each_camera() -> None:
    from core.camera import project_views

    cams = [replace(c, dist=np.array([-0.05, 0.14, 0.0006, 0.0007, 0.0]) * (i + 1)) for i, c in enumerate(rig(4))]
    rng = np.random.default_rng(0)
    for shape in [(3,), (17, 3), (5, 17, 3), (2, 3, 17, 3), (0, 17, 3)]:
        points = rng.uniform(-0.5, 0.5, shape) + np.array([0.0, 0.0, 1.0])
        together = project_views(cams, points)
        alone = np.stack([c.project(points) for c in cams])
        assert together.shape == alone.shape == (4, *shape[:-1], 2)
        assert np.allclose(together, alone, atol=1e-9, rtol=0)
