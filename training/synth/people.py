"""Synthetic multi-person scenes for association and tracking (pure numpy).

2-5 people with known ids walk through a 6 x 6 m room (Z up, floor z = 0, centre at the origin)
seen by a random calibrated rig: two walkers on crossing straight paths (the first walks out of
the door and comes back), a person standing still, a second one standing close to them (0.55 m),
and one walking a circle that crosses the straight paths and passes by the standing pair.
Skeletons are a standing COCO-17 skeleton scaled to the person's height (1.5-1.9 m) with a
walking swing of the arms and legs. The 2D detections have detector-like noise: gaussian jitter,
dropped keypoints, keypoints hidden behind a nearer person's body (reported with a low
confidence, as detectors do), left/right swaps, skeletons merging two people who overlap, false
positives, nobody detected outside the image or the room, detections shuffled per view.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from core.camera import Camera, looking_at
from core.types import COCO17_LEFT_RIGHT

# Standing COCO-17 skeleton, body frame (x forward, y left, z up), in fractions of the height.
_STAND = np.array(
    [
        [0.045, 0.0, 0.935],  # nose
        [0.035, 0.025, 0.95],  # left eye
        [0.035, -0.025, 0.95],
        [-0.005, 0.055, 0.94],  # left ear
        [-0.005, -0.055, 0.94],
        [0.0, 0.125, 0.82],  # left shoulder
        [0.0, -0.125, 0.82],
        [0.0, 0.145, 0.63],  # left elbow
        [0.0, -0.145, 0.63],
        [0.02, 0.145, 0.485],  # left wrist
        [0.02, -0.145, 0.485],
        [0.0, 0.055, 0.53],  # left hip
        [0.0, -0.055, 0.53],
        [0.01, 0.055, 0.285],  # left knee
        [0.01, -0.055, 0.285],
        [0.0, 0.055, 0.045],  # left ankle
        [0.0, -0.055, 0.045],
    ]
)
_LEFT_LEG, _RIGHT_LEG = [13, 15], [14, 16]
_LEFT_ARM, _RIGHT_ARM = [7, 9], [8, 10]
# Body capsules that hide what is behind them: (joint a, joint b, radius m); the head is a ball.
_CAPSULES = ((5, 12, 0.13), (6, 11, 0.13), (5, 7, 0.05), (7, 9, 0.04), (6, 8, 0.05), (8, 10, 0.04),
             (11, 13, 0.07), (13, 15, 0.05), (12, 14, 0.07), (14, 16, 0.05), (0, 0, 0.11))  # fmt: skip
ROOM_HALF = 3.0
ROLES = ("walk_out_and_back", "cross", "stand", "stand_close", "circle")


@dataclass(frozen=True)
class DetectorNoise:
    """jitter_px: gaussian sd of every keypoint; drop: probability that a keypoint is missed;
    swap: probability that a detection has its left and right sides swapped; merge: probability
    that two people overlapping in a view (box IoU > 0.3) come out as one skeleton (the nearer's
    upper body, the farther's legs) instead of the farther one; false_positive: probability per
    view and frame of a detection of nobody (a person's shape somewhere else in the image)."""

    jitter_px: float = 2.0
    drop: float = 0.05
    swap: float = 0.02
    merge: float = 0.2
    false_positive: float = 0.03


@dataclass(frozen=True)
class PeopleScene:
    """cameras (V, calibrated); times ``[T]`` s; ids ``[T, P]`` (person id, -1 while out of the
    room); keypoints ``[T, P, 17, 3]`` world metres; heights ``[P]`` m; detections
    ``[T, V, Pmax, 17, 3]`` (px, conf; zeros in empty slots, Pmax = P + 1) and detection_person
    ``[T, V, Pmax]`` (index of the person of each slot; -1 for an empty slot and for a detection
    of nobody: a false positive, or a skeleton merging two people that holds as many confident
    keypoints of each; a merged one is otherwise labelled with the person of the majority)."""

    cameras: list[Camera]
    times: np.ndarray
    ids: np.ndarray
    keypoints: np.ndarray
    heights: np.ndarray
    detections: np.ndarray
    detection_person: np.ndarray


def sample_people_scene(
    n_people: int = 3,
    n_views: int = 4,
    frames: int = 300,
    seed: int = 0,
    fps: float = 30.0,
    noise: DetectorNoise | None = None,
) -> PeopleScene:
    """A random scene of ``n_people`` (2-5) seen by ``n_views`` cameras for ``frames`` frames."""
    if not 1 <= n_people <= len(ROLES):
        raise ValueError(f"sample_people_scene: n_people must be 1-{len(ROLES)}, got {n_people}")
    rng = np.random.default_rng(seed)
    cameras = sample_rig(n_views, rng)
    times = np.arange(frames) / fps
    heights = rng.uniform(1.5, 1.9, n_people)
    widths = rng.uniform(0.9, 1.1, n_people)
    keypoints = np.zeros((frames, n_people, 17, 3))
    for p in range(n_people):
        pos, heading, speed = _path(ROLES[p], times, rng)
        keypoints[:, p] = _skeletons(heights[p], widths[p], pos, heading, speed, times)
    inside = np.all(np.abs(keypoints[:, :, :, :2].mean(axis=2)) < ROOM_HALF, axis=-1)
    ids = np.where(inside, np.arange(1, n_people + 1)[None], -1)
    dets, who = _detect(cameras, keypoints, inside, rng, noise or DetectorNoise())
    return PeopleScene(cameras, times, ids, keypoints, heights, dets, who)


def sample_rig(n_views: int, rng: np.random.Generator) -> list[Camera]:
    """``n_views`` 640x480 cameras spread around the room near the walls, 2.2-2.8 m high."""
    cams = []
    start = rng.uniform(0, 2 * np.pi)
    for v in range(n_views):
        angle = start + 2 * np.pi * v / n_views + rng.uniform(-0.2, 0.2)
        radius = rng.uniform(3.6, 4.2)
        eye = (radius * np.cos(angle), radius * np.sin(angle), rng.uniform(2.2, 2.8))
        target = (rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(0.7, 1.1))
        cams.append(looking_at(f"cam{v + 1}", eye, target, (640, 480), rng.uniform(380.0, 480.0)))
    return cams


def _path(role: str, times: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground position ``[T, 2]``, heading ``[T]`` (rad) and speed ``[T]`` of one person."""
    j = lambda: rng.uniform(-0.3, 0.3, 2)  # noqa: E731
    if role == "walk_out_and_back":
        a, b, door = np.array([-2.2, -1.8]) + j(), np.array([2.2, 1.6]) + j(), np.array([4.6, 1.6])
        return _along([a, b, door, b, a], rng.uniform(1.0, 1.3), times, offset=1.5)
    if role == "cross":
        return _along([np.array([-2.2, 1.8]) + j(), np.array([2.2, -1.8]) + j()], rng.uniform(0.8, 1.2), times, offset=0.0)
    if role == "circle":
        angles = np.linspace(0, 2 * np.pi, 25)
        ring = [np.array([1.4 * np.cos(a), 1.4 * np.sin(a)]) for a in angles]
        return _along(ring, rng.uniform(0.8, 1.1), times, offset=0.0, loop=True)
    # by the wall, off the walkers' paths (0.5 m or more from them): people do not walk through
    # each other; the pair stands 0.55 m apart
    spot = np.array([1.9, 0.28 if role == "stand" else -0.27]) + rng.uniform(-0.05, 0.05, 2)
    sway = 0.03 * np.stack([np.sin(1.3 * times), np.cos(0.9 * times)], -1)
    heading = np.full(len(times), rng.uniform(-np.pi, np.pi)) + 0.3 * np.sin(0.4 * times)
    return spot + sway, heading, np.zeros(len(times))


def _along(points: list[np.ndarray], speed: float, times: np.ndarray, offset: float, loop: bool = False):
    """Walk the polyline ``points`` back and forth (or round, ``loop``) at ``speed``."""
    pts = np.array(points)
    if not loop:
        pts = np.concatenate([pts, pts[-2::-1]])
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=-1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s = (offset + speed * times) % cum[-1]
    k = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    frac = ((s - cum[k]) / seg[k])[:, None]
    pos = pts[k] + frac * (pts[k + 1] - pts[k])
    step = pts[k + 1] - pts[k]
    return pos, np.arctan2(step[:, 1], step[:, 0]), np.full(len(times), speed)


def skeleton_at(height: float, xy: tuple[float, float], heading: float = 0.0) -> np.ndarray:
    """World COCO-17 keypoints ``[17, 3]`` of a person of ``height`` standing at ``xy`` facing
    ``heading`` (rad from +x)."""
    one = np.ones(1)
    return _skeletons(height, 1.0, np.array([xy], float), heading * one, 0 * one, np.zeros(1))[0]


def _skeletons(height: float, width: float, pos: np.ndarray, heading: np.ndarray, speed: np.ndarray, times: np.ndarray):
    """World COCO-17 keypoints ``[T, 17, 3]`` of one person walking (swinging limbs) or standing."""
    body = np.tile(_STAND * [1.0, width, 1.0] * height, (len(times), 1, 1))
    dt = float(times[1] - times[0]) if len(times) > 1 else 0.0
    phase = 2 * np.pi * np.cumsum(speed * dt) / (0.8 * height)  # one gait cycle (two steps) per 0.8 height
    swing = np.where(speed > 0, np.sin(phase), 0.0)
    _swing(body, _LEFT_LEG, 11, 0.4 * swing)
    _swing(body, _RIGHT_LEG, 12, -0.4 * swing)
    _swing(body, _LEFT_ARM, 5, -0.35 * swing)
    _swing(body, _RIGHT_ARM, 6, 0.35 * swing)
    c, s = np.cos(heading), np.sin(heading)
    x, y = body[..., 0], body[..., 1]
    world = np.stack([c[:, None] * x - s[:, None] * y, s[:, None] * x + c[:, None] * y, body[..., 2]], -1)
    world[..., :2] += pos[:, None]
    return world


def _swing(body: np.ndarray, joints: list[int], pivot: int, angle: np.ndarray) -> None:
    """Rotate ``joints`` about the body's y axis through ``pivot`` by ``angle`` ``[T]`` (in place)."""
    rel = body[:, joints] - body[:, pivot : pivot + 1]
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x, z = rel[..., 0], rel[..., 2]
    body[:, joints, 0] = body[:, pivot : pivot + 1, 0] + c * x + s * z
    body[:, joints, 2] = body[:, pivot : pivot + 1, 2] - s * x + c * z


def _detect(cameras: list[Camera], keypoints: np.ndarray, inside: np.ndarray, rng: np.random.Generator, noise: DetectorNoise):
    T, P = keypoints.shape[:2]
    dets = np.zeros((T, len(cameras), P + 1, 17, 3))
    who = np.full((T, len(cameras), P + 1), -1)
    for v, cam in enumerate(cameras):
        px = cam.project(keypoints)  # [T, P, 17, 2]
        depth = cam.depth(keypoints)
        focal = float(np.asarray(cam.K)[0, 0])
        for t in range(T):
            hidden = _occluded(px[t], depth[t], focal, inside[t])
            found = {}
            for p in range(P):
                kp = _detection(px[t, p], depth[t, p], hidden[p], cam.image_size, rng, noise)
                if inside[t, p] and kp is not None:
                    found[p] = kp
            labels = {p: p for p in found}
            _merge_overlapping(found, labels, depth[t], rng, noise.merge)
            if found and rng.random() < noise.false_positive:
                source = found[min(found)].copy()
                source[:, :2] += rng.choice([-1, 1], 2) * rng.uniform(120, 300, 2)
                found[P], labels[P] = source, -1
            for slot, p in enumerate(rng.permutation(sorted(found))):
                dets[t, v, slot], who[t, v, slot] = found[p], labels[p]
    return dets, who


def _merge_overlapping(found: dict, labels: dict, depth: np.ndarray, rng: np.random.Generator, merge: float) -> None:
    """Replace the farther of two overlapping people by one skeleton of both (in place), labelled
    with the person who gave most of its confident keypoints (-1 on a tie)."""
    for p, q in itertools.combinations(sorted(found), 2):
        if p in found and q in found and _iou(found[p], found[q]) > 0.3 and rng.random() < merge:
            near, far = (p, q) if np.median(depth[p]) < np.median(depth[q]) else (q, p)
            mixed = found[near].copy()
            mixed[11:] = found[far][11:]
            confident = mixed[:, 2] >= 0.3
            near_count, far_count = confident[:11].sum(), confident[11:].sum()
            found[far], labels[far] = mixed, near if near_count > far_count else far if far_count > near_count else -1


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Box IoU of two detections ``[17, 3]`` (their keypoints with confidence > 0)."""
    boxes = [np.concatenate([kp[kp[:, 2] > 0, :2].min(0), kp[kp[:, 2] > 0, :2].max(0)]) for kp in (a, b)]
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = boxes
    w = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    h = max(0.0, min(ay1, by1) - max(ay0, by0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - w * h
    return float(w * h / union) if union > 0 else 0.0


def _detection(px, depth, hidden, size, rng, noise: DetectorNoise):
    """One detector output ``[17, 3]`` or None (fewer than 5 keypoints visible)."""
    jitter_px, drop = noise.jitter_px, noise.drop
    in_image = (depth > 0.2) & (px[:, 0] >= 0) & (px[:, 0] < size[0]) & (px[:, 1] >= 0) & (px[:, 1] < size[1])
    visible = in_image & ~hidden & (rng.random(17) >= drop)
    if visible.sum() < 5:
        return None
    out = np.zeros((17, 3))
    out[:, :2] = px + rng.normal(0, jitter_px, (17, 2))
    out[:, 2] = rng.uniform(0.6, 1.0, 17)
    low = in_image & hidden
    out[low, :2] += rng.normal(0, 4 * jitter_px, (int(low.sum()), 2))
    out[low, 2] = rng.uniform(0.05, 0.25, int(low.sum()))
    out[~visible & ~low] = 0.0
    return out[list(COCO17_LEFT_RIGHT)] if rng.random() < noise.swap else out


def _occluded(px: np.ndarray, depth: np.ndarray, focal: float, present: np.ndarray) -> np.ndarray:
    """``[P, 17]``: keypoints ``px`` ``[P, 17, 2]`` hidden behind a nearer person's body capsules."""
    P = len(px)
    hidden = np.zeros((P, 17), bool)
    a = np.array([c[0] for c in _CAPSULES])
    b = np.array([c[1] for c in _CAPSULES])
    r = np.array([c[2] for c in _CAPSULES])
    for q in range(P):
        if not present[q] or np.any(depth[q] <= 0.2):
            continue
        pa, pb = px[q, a], px[q, b]  # [S, 2]
        radius = r * focal / (0.5 * (depth[q, a] + depth[q, b]))
        behind = depth[:, :, None] > 0.5 * (depth[q, a] + depth[q, b])[None, None] + 0.1  # [P, 17, S]
        ab = pb - pa
        t = np.clip(np.sum((px[:, :, None] - pa) * ab, -1) / np.maximum(np.sum(ab * ab, -1), 1e-9), 0, 1)
        near = np.linalg.norm(px[:, :, None] - (pa + t[..., None] * ab), axis=-1) < radius
        mask = np.any(near & behind, -1)
        mask[q] = False
        hidden |= mask
    return hidden
