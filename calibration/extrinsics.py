"""Extrinsics for N cameras from synchronized board sightings: board poses per camera and frame,
the camera graph (which cameras saw the board at the same time) with a connectivity check, an
initial solution along the graph's strongest links, and bundle adjustment over camera and board
poses (robust loss, sparse Jacobian). The world frame is the first camera's until a floor is set
(:func:`floor_from_board`, :func:`floor_from_points`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import lil_matrix

from calibration.board import Board, Detection
from core.camera import Camera
from core.errors import CalibrationError
from core.geometry import matrix_to_rodrigues, rodrigues_to_matrix, triangulate_dlt, undistort_pixels

MIN_CORNERS = 6
MAX_PNP_ERROR_PX = 5.0  # a single-view board pose worse than this is a misdetection

Pose = tuple[np.ndarray, np.ndarray]  # (R [3, 3], t [3])


@dataclass
class Intrinsics:
    K: np.ndarray
    dist: np.ndarray
    image_size: tuple[int, int]


@dataclass
class ExtrinsicsResult:
    """cameras: the calibrated cameras (world = the first linked camera's frame unless a floor was
    set); errors_px: per camera median reprojection error over its board sightings; rms_px over all
    sightings; square_m: the board square size measured by triangulating corners with the result
    (vs ``board.square``); shared: sightings shared by each pair of cameras; skipped: cameras left
    out, with the reason; board_poses: frame index -> (R, t) board-to-world."""

    cameras: list[Camera]
    errors_px: dict[str, float]
    rms_px: float
    square_m: float
    square_true_m: float
    shared: dict[str, int]
    skipped: dict[str, str] = field(default_factory=dict)
    board_poses: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    sightings: dict[str, int] = field(default_factory=dict)

    def metadata(self, board: Board, world: str, **extra: object) -> dict[str, object]:
        """What a room calibration file records about how it was made (errors, board, world, date)."""
        import datetime

        return {"kind": "extrinsics", "rms_px": round(self.rms_px, 4),
                "errors_px": {k: round(v, 4) for k, v in self.errors_px.items()},
                "square_mm": round(1000 * self.square_m, 3),
                "board": f"{board.kind} {board.columns}x{board.rows} square {board.square} m", "world": world,
                "date": datetime.date.today().isoformat(), "skipped": self.skipped, **extra}  # fmt: skip

    def summary(self) -> dict[str, object]:
        return {
            "cameras": [c.name for c in self.cameras],
            "errors_px": {k: round(v, 3) for k, v in self.errors_px.items()},
            "rms_px": round(self.rms_px, 3),
            "square_mm": round(1000 * self.square_m, 2),
            "square_true_mm": round(1000 * self.square_true_m, 2),
            "sightings": self.sightings,
            "shared": self.shared,
            "skipped": self.skipped,
            "positions_m": {c.name: [round(float(v), 4) for v in c.center] for c in self.cameras},
        }


def board_pose(board: Board, detection: Detection | None, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray] | None:
    """Board-to-camera (R, t) from one sighting, or None (too few corners, or a bad fit)."""
    if detection is None or len(detection) < MIN_CORNERS:
        return None
    obj = board.object_points()[detection.ids]
    ok, rvec, tvec = cv2.solvePnP(obj, detection.corners, intr.K, intr.dist, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        return None
    rvec, tvec = cv2.solvePnPRefineLM(obj, detection.corners, intr.K, intr.dist, rvec, tvec)
    proj, _ = cv2.projectPoints(obj, rvec, tvec, intr.K, intr.dist)
    if np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - detection.corners) ** 2, axis=1))) > MAX_PNP_ERROR_PX:
        return None
    return rodrigues_to_matrix(rvec.ravel()), tvec.ravel()


def calibrate_extrinsics(
    board: Board,
    detections: dict[str, list[Detection | None]],
    intrinsics: dict[str, Intrinsics],
    skip_unlinked: bool = False,
    min_shared: int = 3,
    progress: Callable[[str], None] | None = None,
) -> ExtrinsicsResult:
    """``detections[camera][k]``: the board in that camera at sync index ``k`` (all lists the same
    length). Cameras must be linked through at least ``min_shared`` shared sightings; otherwise a
    :class:`CalibrationError` names the unlinked cameras, or with ``skip_unlinked`` they are left
    out and reported in ``skipped``."""
    names = list(detections)
    missing = [n for n in names if n not in intrinsics]
    if missing:
        raise CalibrationError(f"no intrinsics for camera(s) {', '.join(missing)}")
    frames = {len(v) for v in detections.values()}
    if len(frames) != 1:
        raise CalibrationError("the cameras' detection lists differ in length: synchronize them first")
    poses = {
        n: {k: p for k, d in enumerate(detections[n]) if (p := board_pose(board, d, intrinsics[n])) is not None} for n in names
    }
    sightings = {n: len(poses[n]) for n in names}
    shared = {f"{a}-{b}": len(poses[a].keys() & poses[b].keys()) for i, a in enumerate(names) for b in names[i + 1 :]}
    linked, skipped = _linked(names, poses, min_shared, len(next(iter(detections.values()))))
    if skipped and not skip_unlinked:
        raise CalibrationError("cameras not linked to the others: " + "; ".join(f"{n} ({why})" for n, why in skipped.items()))
    if len(linked) < 2:
        raise CalibrationError("fewer than two cameras saw the board together: nothing to calibrate")
    if progress:
        progress(f"initial solution for {len(linked)} cameras")
    cam_poses = _initial_cameras(linked, poses, min_shared)
    board_poses = _initial_boards(linked, poses, cam_poses)
    if progress:
        progress(f"bundle adjustment: {len(linked)} cameras, {len(board_poses)} board poses")
    cam_poses, board_poses, residuals = _bundle_adjust(board, linked, detections, intrinsics, cam_poses, board_poses)
    cameras = [Camera(n, intrinsics[n].image_size, intrinsics[n].K, intrinsics[n].dist, *cam_poses[n]) for n in linked]
    errors = {n: float(np.median(residuals[n])) if len(residuals[n]) else float("nan") for n in linked}
    all_res = np.concatenate([residuals[n] for n in linked])
    square = measured_square(board, cameras, {n: detections[n] for n in linked})
    return ExtrinsicsResult(cameras, errors, float(np.sqrt(np.mean(all_res**2))), square, board.square, shared, skipped,
                            board_poses, sightings)  # fmt: skip


def _linked(
    names: list[str], poses: dict[str, dict[int, tuple]], min_shared: int, total: int
) -> tuple[list[str], dict[str, str]]:
    """The largest set of cameras joined by links of ``min_shared`` sightings, and why the rest are out."""
    unvisited, groups = set(names), []
    while unvisited:
        start = max(unvisited, key=lambda n: len(poses[n]))
        group, todo = {start}, [start]
        while todo:
            a = todo.pop()
            for b in list(unvisited - group):
                if len(poses[a].keys() & poses[b].keys()) >= min_shared:
                    group.add(b)
                    todo.append(b)
        unvisited -= group
        groups.append(group)
    best = max(groups, key=lambda g: (len(g), sum(len(poses[n]) for n in g)))
    skipped = {}
    for n in names:
        if n in best:
            continue
        if not poses[n]:
            skipped[n] = f"board found in 0 of {total} frames"
        else:
            most = max((len(poses[n].keys() & poses[m].keys()) for m in best), default=0)
            skipped[n] = (
                f"board seen in {len(poses[n])} frames but at most {most} together with a linked camera (need {min_shared})"
            )
    return [n for n in names if n in best], skipped


def _average_pose(rotations: list[np.ndarray], translations: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    u, _, vt = np.linalg.svd(np.sum(rotations, axis=0))
    R = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    return R, np.median(np.array(translations), axis=0)


def _initial_cameras(
    linked: list[str], poses: dict[str, dict[int, tuple]], min_shared: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """World-to-camera (R, t) per camera along a maximum spanning tree of shared sightings."""
    root = linked[0]
    result = {root: (np.eye(3), np.zeros(3))}
    while len(result) < len(linked):
        best = max(
            ((a, b) for a in result for b in linked if b not in result),
            key=lambda ab: len(poses[ab[0]].keys() & poses[ab[1]].keys()),
        )
        a, b = best
        rel_R, rel_t = [], []
        for k in poses[a].keys() & poses[b].keys():
            (Ra, ta), (Rb, tb) = poses[a][k], poses[b][k]
            R_ab = Rb @ Ra.T  # camera a -> camera b
            rel_R.append(R_ab)
            rel_t.append(tb - R_ab @ ta)
        R_ab, t_ab = _average_pose(rel_R, rel_t)
        Ra, ta = result[a]
        result[b] = (R_ab @ Ra, R_ab @ ta + t_ab)
    return result


def _initial_boards(linked: list[str], poses: dict[str, dict[int, Pose]], cam_poses: dict[str, Pose]) -> dict[int, Pose]:
    """Board-to-world (R, t) per frame, averaged over the cameras that saw it."""
    frames: dict[int, tuple[list, list]] = {}
    for n in linked:
        Rc, tc = cam_poses[n]
        for k, (Rb, tb) in poses[n].items():
            rs, ts = frames.setdefault(k, ([], []))
            rs.append(Rc.T @ Rb)
            ts.append(Rc.T @ (tb - tc))
    return {k: _average_pose(rs, ts) for k, (rs, ts) in sorted(frames.items())}


def _project(points: np.ndarray, rvec: np.ndarray, tvec: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    proj, _ = cv2.projectPoints(points, rvec, tvec, K, dist)
    return proj.reshape(-1, 2)


def _bundle_adjust(
    board: Board,
    linked: list[str],
    detections: dict[str, list[Detection | None]],
    intrinsics: dict[str, Intrinsics],
    cam_poses: dict[str, Pose],
    board_poses: dict[int, Pose],
) -> tuple[dict[str, Pose], dict[int, Pose], dict[str, np.ndarray]]:
    """Refine all camera poses but the first (it fixes the gauge) and all board poses."""
    frames = sorted(board_poses)
    cam_index = {n: i for i, n in enumerate(linked[1:])}
    frame_index = {k: i for i, k in enumerate(frames)}
    obj_all = board.object_points()
    obs = [(n, k, d) for n in linked for k in frames
           if (d := detections[n][k]) is not None and len(d) >= MIN_CORNERS]  # fmt: skip
    x0 = np.concatenate(
        [np.concatenate([matrix_to_rodrigues(cam_poses[n][0]), cam_poses[n][1]]) for n in linked[1:]]
        + [np.concatenate([matrix_to_rodrigues(board_poses[k][0]), board_poses[k][1]]) for k in frames]
    )
    n_cam = 6 * (len(linked) - 1)

    def unpack(x: np.ndarray, n: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        b = x[n_cam + 6 * frame_index[k] : n_cam + 6 * frame_index[k] + 6]
        Rb, tb = rodrigues_to_matrix(b[:3]), b[3:]
        if n in cam_index:
            c = x[6 * cam_index[n] : 6 * cam_index[n] + 6]
            Rc, tc = rodrigues_to_matrix(c[:3]), c[3:]
        else:
            Rc, tc = np.eye(3), np.zeros(3)
        return Rc @ Rb, Rc @ tb + tc  # board -> camera

    def residuals(x: np.ndarray) -> np.ndarray:
        out = []
        for n, k, d in obs:
            R, t = unpack(x, n, k)
            out.append(
                (_project(obj_all[d.ids], matrix_to_rodrigues(R), t, intrinsics[n].K, intrinsics[n].dist) - d.corners).ravel()
            )
        return np.concatenate(out)

    rows = sum(2 * len(d) for _, _, d in obs)
    sparsity = lil_matrix((rows, len(x0)), dtype=int)
    r = 0
    for n, k, d in obs:
        m = 2 * len(d)
        if n in cam_index:
            sparsity[r : r + m, 6 * cam_index[n] : 6 * cam_index[n] + 6] = 1
        sparsity[r : r + m, n_cam + 6 * frame_index[k] : n_cam + 6 * frame_index[k] + 6] = 1
        r += m
    fit = least_squares(residuals, x0, jac_sparsity=sparsity, loss="soft_l1", f_scale=1.0, x_scale="jac", max_nfev=200)
    x = fit.x
    cams = {linked[0]: cam_poses[linked[0]]}
    for n, i in cam_index.items():
        cams[n] = (rodrigues_to_matrix(x[6 * i : 6 * i + 3]), x[6 * i + 3 : 6 * i + 6].copy())
    boards = {k: (rodrigues_to_matrix(x[n_cam + 6 * i : n_cam + 6 * i + 3]), x[n_cam + 6 * i + 3 : n_cam + 6 * i + 6].copy())
              for k, i in frame_index.items()}  # fmt: skip
    final = fit.fun.reshape(-1, 2)
    per_cam: dict[str, list[float]] = {n: [] for n in linked}
    r = 0
    for n, _, d in obs:
        per_cam[n].extend(np.linalg.norm(final[r : r + len(d)], axis=1))
        r += len(d)
    return cams, boards, {n: np.array(v) for n, v in per_cam.items()}


def measured_square(board: Board, cameras: list[Camera], detections: dict[str, list[Detection | None]]) -> float:
    """Median distance between horizontally neighbouring board corners triangulated with
    ``cameras`` from every frame where two or more of them saw those corners."""
    cols, _ = board.inner_corners
    n_points = len(board.object_points())
    P = np.stack([c.P for c in cameras])
    lengths = []
    for k in range(len(next(iter(detections.values())))):
        pixels = np.zeros((len(cameras), n_points, 2))
        weights = np.zeros((len(cameras), n_points))
        for i, cam in enumerate(cameras):
            d = detections[cam.name][k]
            if d is None or len(d) < MIN_CORNERS:
                continue
            assert cam.K is not None
            pixels[i, d.ids] = undistort_pixels(d.corners, cam.K, cam.dist)
            weights[i, d.ids] = 1.0
        if (weights.sum(axis=0) >= 2).sum() < 2:
            continue
        points, ok = triangulate_dlt(pixels, weights, P)
        for a in range(n_points - 1):
            if (a + 1) % cols and ok[a] and ok[a + 1]:
                lengths.append(np.linalg.norm(points[a + 1] - points[a]))
    return float(np.median(lengths)) if lengths else float("nan")


def transform_world(cameras: list[Camera], R: np.ndarray, t: np.ndarray) -> list[Camera]:
    """The cameras in a new world frame, where new = R @ old + t."""
    out = []
    for c in cameras:
        assert c.R is not None and c.t is not None
        Rn = c.R @ R.T  # x_cam = R_c (R^T (X_new - t)) + t_c
        out.append(Camera(c.name, c.image_size, c.K, c.dist, Rn, c.t - Rn @ t))
    return out


def floor_from_board(cameras: list[Camera], board_R: np.ndarray, board_t: np.ndarray) -> list[Camera]:
    """World = the board lying on the floor: origin at its first corner, X along its rows, Z up
    (toward the cameras), floor z = 0. ``board_R``/``board_t``: board-to-world in the current frame."""
    # Board axes: x along the rows, y down the columns, z into the board (away from the cameras
    # that see it). Up = -z_board; keep the frame right-handed with y = z cross x.
    x = board_R[:, 0]
    z = -board_R[:, 2]
    y = np.cross(z, x)
    R = np.stack([x, y, z])  # old -> new rotation
    moved = transform_world(cameras, R, -R @ board_t)
    return _check_up(moved)


def floor_from_points(cameras: list[Camera], points: np.ndarray) -> list[Camera]:
    """World from three floor points ``[3, 3]`` (current world frame): origin at the first, X toward
    the second, Z up (the side the cameras are on), floor z = 0."""
    p0, p1, p2 = np.asarray(points, float)
    x = (p1 - p0) / np.linalg.norm(p1 - p0)
    normal = np.cross(p1 - p0, p2 - p0)
    if np.linalg.norm(normal) < 1e-9:
        raise CalibrationError("floor points: the three points are on one line")
    z = normal / np.linalg.norm(normal)
    if np.mean([(c.center - p0) @ z for c in cameras]) < 0:
        z = -z
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return _check_up(transform_world(cameras, R, -R @ p0))


def _check_up(cameras: list[Camera]) -> list[Camera]:
    heights = np.array([c.center[2] for c in cameras])
    below = [c.name for c, h in zip(cameras, heights, strict=True) if h <= 0]
    if below:
        raise CalibrationError(f"floor: camera(s) {', '.join(below)} would be below the floor; is the floor board upside down?")
    return cameras
