"""Hand-placed COCO-17 world skeletons (Z up, metres) in the postures the monitor tells apart, and
motions between them, for the monitoring tests. Heights are those of a 1.70 m adult."""

from __future__ import annotations

import numpy as np

from monitoring.state import Landmarks, Observation

# x (forward), y (left), z (up) of each COCO-17 keypoint, body facing +x, pelvis above the origin
_STANDING = [(0.08, 0, 1.60), (0.07, 0.03, 1.63), (0.07, -0.03, 1.63), (0.0, 0.07, 1.61), (0.0, -0.07, 1.61),
             (0, 0.18, 1.42), (0, -0.18, 1.42), (0, 0.22, 1.13), (0, -0.22, 1.13), (0.05, 0.22, 0.86),
             (0.05, -0.22, 0.86), (0, 0.09, 0.92), (0, -0.09, 0.92), (0.02, 0.1, 0.50), (0.02, -0.1, 0.50),
             (0, 0.1, 0.08), (0, -0.1, 0.08)]  # fmt: skip
_SITTING = [(0.05, 0, 1.20), (0.04, 0.03, 1.23), (0.04, -0.03, 1.23), (-0.03, 0.07, 1.21), (-0.03, -0.07, 1.21),
            (-0.03, 0.18, 1.02), (-0.03, -0.18, 1.02), (0, 0.22, 0.75), (0, -0.22, 0.75), (0.2, 0.2, 0.62),
            (0.2, -0.2, 0.62), (0, 0.09, 0.50), (0, -0.09, 0.50), (0.42, 0.1, 0.52), (0.42, -0.1, 0.52),
            (0.45, 0.1, 0.08), (0.45, -0.1, 0.08)]  # fmt: skip
_KNEELING = [(0.1, 0, 1.08), (0.09, 0.03, 1.11), (0.09, -0.03, 1.11), (0.02, 0.07, 1.09), (0.02, -0.07, 1.09),
             (0.02, 0.18, 0.90), (0.02, -0.18, 0.90), (0.1, 0.22, 0.65), (0.1, -0.22, 0.65), (0.3, 0.2, 0.45),
             (0.3, -0.2, 0.45), (0, 0.09, 0.42), (0, -0.09, 0.42), (0.35, 0.1, 0.45), (-0.4, -0.1, 0.10),
             (0.3, 0.1, 0.08), (-0.45, -0.1, 0.08)]  # fmt: skip
_CROUCHING = [(0.2, 0, 0.95), (0.19, 0.03, 0.98), (0.19, -0.03, 0.98), (0.12, 0.07, 0.96), (0.12, -0.07, 0.96),
              (0.1, 0.18, 0.78), (0.1, -0.18, 0.78), (0.25, 0.22, 0.6), (0.25, -0.22, 0.6), (0.35, 0.2, 0.45),
              (0.35, -0.2, 0.45), (-0.05, 0.09, 0.38), (-0.05, -0.09, 0.38), (0.3, 0.12, 0.55), (0.3, -0.12, 0.55),
              (0.05, 0.12, 0.08), (0.05, -0.12, 0.08)]  # fmt: skip

# kneeling upright on both knees (shins flat on the floor behind), the torso leaning forward a little
_KNEELING_UP = [(0.22, 0, 1.04), (0.21, 0.03, 1.07), (0.21, -0.03, 1.07), (0.14, 0.07, 1.05), (0.14, -0.07, 1.05),
                (0.1, 0.18, 0.90), (0.1, -0.18, 0.90), (0.12, 0.22, 0.68), (0.12, -0.22, 0.68), (0.2, 0.2, 0.45),
                (0.2, -0.2, 0.45), (0, 0.09, 0.62), (0, -0.09, 0.62), (0.05, 0.1, 0.10), (0.05, -0.1, 0.10),
                (-0.4, 0.1, 0.08), (-0.4, -0.1, 0.08)]  # fmt: skip
# sitting on the floor, upright, knees up a little, hands on the floor behind
_SITTING_FLOOR = [(0.05, 0, 0.82), (0.04, 0.03, 0.85), (0.04, -0.03, 0.85), (-0.03, 0.07, 0.83), (-0.03, -0.07, 0.83),
                  (-0.05, 0.18, 0.62), (-0.05, -0.18, 0.62), (-0.08, 0.22, 0.36), (-0.08, -0.22, 0.36), (-0.12, 0.22, 0.1),
                  (-0.12, -0.22, 0.1), (0, 0.09, 0.12), (0, -0.09, 0.12), (0.4, 0.1, 0.3), (0.4, -0.1, 0.3),
                  (0.75, 0.1, 0.08), (0.75, -0.1, 0.08)]  # fmt: skip


def _lying(height: float) -> list[tuple[float, float, float]]:
    """Lying on the back along +x (head at +x), the back at ``height`` above the floor."""
    standing = np.array(_STANDING)
    out = np.stack([standing[:, 2] - 0.92, standing[:, 1], height + 0.10 + 0.5 * standing[:, 0]], axis=1)
    return [tuple(p) for p in out]


POSES: dict[str, np.ndarray] = {
    "standing": np.array(_STANDING),
    "sitting": np.array(_SITTING),
    "crouching": np.array(_CROUCHING),
    "kneeling": np.array(_KNEELING),
    "kneeling_up": np.array(_KNEELING_UP),
    "sitting_floor": np.array(_SITTING_FLOOR),
    "on_floor": np.array(_lying(0.0)),
    "lying_bed": np.array(_lying(0.50)),
}


def keypoints(pose: str | np.ndarray, x: float = 0.0, y: float = 0.0) -> np.ndarray:
    """``[17, 4]`` world keypoints of a pose placed with its pelvis over (x, y), confidence 1."""
    points = POSES[pose] if isinstance(pose, str) else pose
    return np.hstack([points + np.array([x, y, 0.0]), np.ones((17, 1))])


def motion(keys: list[tuple[float, str, float, float]], fps: float = 10.0, noise: float = 0.0, seed: int = 0):
    """Frame-set times and keypoints of one person moving through keyframes ``(t, pose, x, y)``
    (linear blends between them); ``noise`` is a per-coordinate standard deviation in metres."""
    rng = np.random.default_rng(seed)
    times = np.arange(keys[0][0], keys[-1][0] + 1e-9, 1.0 / fps)
    frames = []
    for t in times:
        i = max(0, np.searchsorted([k[0] for k in keys], t, side="right") - 1)
        i = min(i, len(keys) - 2) if len(keys) > 1 else 0
        (t0, p0, x0, y0), (t1, p1, x1, y1) = keys[i], keys[min(i + 1, len(keys) - 1)]
        w = 0.0 if t1 == t0 else min(1.0, max(0.0, (t - t0) / (t1 - t0)))
        a, b = keypoints(p0, x0, y0), keypoints(p1, x1, y1)
        points = (1 - w) * a + w * b
        points[:, :3] += rng.normal(0, noise, (17, 3)) if noise else 0.0
        frames.append(points)
    return times, frames


def observe(person: int, points: np.ndarray) -> Observation:
    return Observation(person, Landmarks.from_keypoints(points))
